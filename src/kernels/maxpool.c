/* maxpool.c — square max pooling without padding, output size floored. */
#include "kernels.h"

void imcap_maxpool_forward(float *out, int *argmax, const float *in, int C, int H, int W, int k, int stride) {
    int Ho = (H - k) / stride + 1, Wo = (W - k) / stride + 1;
    for (int c = 0; c < C; c++)
        for (int oy = 0; oy < Ho; oy++)
            for (int ox = 0; ox < Wo; ox++) {
                int best = (c * H + oy * stride) * W + ox * stride;
                float m = in[best];
                for (int ky = 0; ky < k; ky++)
                    for (int kx = 0; kx < k; kx++) {
                        int idx = (c * H + oy * stride + ky) * W + ox * stride + kx;
                        /* strict > keeps the first maximum; a NaN wins, as in PyTorch */
                        if (in[idx] > m || (in[idx] != in[idx] && m == m)) m = in[idx], best = idx;
                    }
                size_t o = ((size_t)c * Ho + oy) * Wo + ox;
                out[o] = m;
                if (argmax) argmax[o] = best;
            }
}

void imcap_maxpool_backward(float *din, const float *dout, const int *argmax, int C, int Ho, int Wo) {
    size_t n = (size_t)C * Ho * Wo;
    for (size_t i = 0; i < n; i++) din[argmax[i]] += dout[i];
}
