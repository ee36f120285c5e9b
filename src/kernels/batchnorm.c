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

/* channel c's P values, x[i * stride] for i < P, into y, plus r[i] when r
 * is given: bn, then the residual, then the ReLU, each rounded as the
 * separate passes round it */
static inline void channel(float *restrict y, const float *restrict x, size_t stride, size_t P, float alpha, float beta,
                           const float *restrict r, int relu) {
    for (size_t i = 0; i < P; i++) {
        float v = x[i * stride] * alpha + beta;
        if (r) v = v + r[i];
        y[i] = relu ? (v > 0.0f ? v : 0.0f) : v;
    }
}

void imcap_batchnorm_infer_ex(float *out, const float *in, size_t ch_stride, size_t px_stride, int C, size_t P,
                              const imcap_bn_params *bn, const float *residual, int relu) {
    for (int c = 0; c < C; c++) {
        float alpha, beta;
        coefficients(c, bn->weight, bn->bias, bn->mean, bn->var, bn->eps, &alpha, &beta);
        const float *x = in + (size_t)c * ch_stride, *r = residual ? residual + (size_t)c * P : NULL;
        float *y = out + (size_t)c * P;
        /* the common cases with constant strides and flags, so they vectorise */
        if (px_stride == 1 && !r)
            relu ? channel(y, x, 1, P, alpha, beta, NULL, 1) : channel(y, x, 1, P, alpha, beta, NULL, 0);
        else if (px_stride == 1)
            relu ? channel(y, x, 1, P, alpha, beta, r, 1) : channel(y, x, 1, P, alpha, beta, r, 0);
        else
            channel(y, x, px_stride, P, alpha, beta, r, relu);
    }
}

void imcap_batchnorm_infer(float *out, const float *in, int C, size_t P, const float *weight, const float *bias,
                           const float *mean, const float *var, float eps, int relu) {
    imcap_bn_params bn = {weight, bias, mean, var, eps};
    imcap_batchnorm_infer_ex(out, in, P, 1, C, P, &bn, NULL, relu);
}

void imcap_add_relu(float *out, const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float v = a[i] + b[i];
        out[i] = v > 0.0f ? v : 0.0f;
    }
}
