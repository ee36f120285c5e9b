/* batchnorm.c — batch normalisation in eval mode (running statistics), as
 * torch.nn.BatchNorm2d computes it on the CPU: per channel
 * alpha = weight / sqrt(var + eps), beta = bias - mean * alpha, then
 * y = x * alpha + beta. Inference only: imcap trains no batch norm. */
#include <math.h>

#include "kernels.h"

void imcap_batchnorm_infer(float *out, const float *in, int C, size_t P, const float *weight, const float *bias,
                           const float *mean, const float *var, float eps, int relu) {
    for (int c = 0; c < C; c++) {
        float alpha = weight[c] * (1.0f / sqrtf(var[c] + eps)), beta = bias[c] - mean[c] * alpha;
        const float *x = in + (size_t)c * P;
        float *y = out + (size_t)c * P;
        if (relu)
            for (size_t i = 0; i < P; i++) {
                float v = x[i] * alpha + beta;
                y[i] = v > 0.0f ? v : 0.0f;
            }
        else
            for (size_t i = 0; i < P; i++) y[i] = x[i] * alpha + beta;
    }
}

void imcap_add_relu(float *out, const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float v = a[i] + b[i];
        out[i] = v > 0.0f ? v : 0.0f;
    }
}
