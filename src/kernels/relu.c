/* relu.c */
#include "kernels.h"

void imcap_relu_forward(float *out, const float *in, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = in[i] > 0.0f ? in[i] : 0.0f;
}

/* The gradient passes where the output is positive (PyTorch: where in > 0).
 * A select rather than a branch, so the loop vectorises; din keeps its bits
 * where nothing passes (adding 0 would turn -0 into +0). */
void imcap_relu_backward(float *din, const float *dout, const float *out, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float d = din[i], s = d + dout[i];
        din[i] = out[i] > 0.0f ? s : d;
    }
}
