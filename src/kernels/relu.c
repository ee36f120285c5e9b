/* relu.c */
#include <stdint.h>
#include <string.h>

#include "kernels.h"

void imcap_relu_forward(float *out, const float *in, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = in[i] > 0.0f ? in[i] : 0.0f;
}

/* The gradient passes where the output is positive (PyTorch: where in > 0).
 * Elsewhere -0 is added, which leaves din's bits as they are (adding +0
 * would turn -0 into +0). The choice is made with a bit mask: the compiler
 * keeps a float select as a branch and the loop would not vectorise. */
void imcap_relu_backward(float *din, const float *dout, const float *out, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t pass = -(uint32_t)(out[i] > 0.0f), bits;
        memcpy(&bits, &dout[i], sizeof bits);
        bits = (bits & pass) | (0x80000000u & ~pass);
        float g;
        memcpy(&g, &bits, sizeof g);
        din[i] += g;
    }
}
