/* batchnorm.c — batch normalisation in eval mode (running statistics), as
 * torch.nn.BatchNorm2d computes it on the CPU: per channel
 * alpha = weight / sqrt(var + eps), beta = bias - mean * alpha, then
 * y = x * alpha + beta. Inference only: imcap trains no batch norm. */
#include <math.h>

#include "kernels.h"

static inline void coefficients(int c, const float *weight, const float *bias, const float *mean, const float *var,
                                float eps, float *alpha, float *beta) {
    *alpha = weight[c] * (1.0f / sqrtf(var[c] + eps));
    *beta = bias[c] - mean[c] * *alpha;
}

/* channel c's P values, x[i * stride] for i < P, into y */
static inline void channel(float *restrict y, const float *restrict x, size_t stride, size_t P, float alpha, float beta,
                           int relu) {
    if (relu)
        for (size_t i = 0; i < P; i++) {
            float v = x[i * stride] * alpha + beta;
            y[i] = v > 0.0f ? v : 0.0f;
        }
    else
        for (size_t i = 0; i < P; i++) y[i] = x[i * stride] * alpha + beta;
}

void imcap_batchnorm_infer(float *out, const float *in, int C, size_t P, const float *weight, const float *bias,
                           const float *mean, const float *var, float eps, int relu) {
    for (int c = 0; c < C; c++) {
        float alpha, beta;
        coefficients(c, weight, bias, mean, var, eps, &alpha, &beta);
        channel(out + (size_t)c * P, in + (size_t)c * P, 1, P, alpha, beta, relu);
    }
}

void imcap_batchnorm_infer_t(float *out, const float *in_t, size_t ldt, int C, size_t P, const float *weight,
                             const float *bias, const float *mean, const float *var, float eps, int relu) {
    for (int c = 0; c < C; c++) {
        float alpha, beta;
        coefficients(c, weight, bias, mean, var, eps, &alpha, &beta);
        channel(out + (size_t)c * P, in_t + c, ldt, P, alpha, beta, relu);
    }
}

void imcap_add_relu(float *out, const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float v = a[i] + b[i];
        out[i] = v > 0.0f ? v : 0.0f;
    }
}
