/* coords.c — appends the cell coordinates as two channels, so the decoder
 * can tell where each annotation vector sits (spatial words need it). */
#include <string.h>

#include "kernels.h"

void imcap_coords_forward_n(float *out, const float *in, int n, int C, int H, int W) {
    size_t plane = (size_t)H * W, per = (size_t)n * plane;
    if (out != in) memmove(out, in, (size_t)C * per * sizeof *out);
    float *xs = out + (size_t)C * per, *ys = xs + per;
    for (int i = 0; i < H; i++)
        for (int j = 0; j < W; j++) {
            xs[i * W + j] = 2.0f * ((float)j + 0.5f) / (float)W - 1.0f;
            ys[i * W + j] = 2.0f * ((float)i + 0.5f) / (float)H - 1.0f;
        }
    for (int k = 1; k < n; k++) {
        memcpy(xs + k * plane, xs, plane * sizeof *xs);
        memcpy(ys + k * plane, ys, plane * sizeof *ys);
    }
}

void imcap_coords_backward_n(float *din, const float *dout, int n, int C, int H, int W) {
    size_t m = (size_t)n * C * H * W;
    for (size_t i = 0; i < m; i++) din[i] += dout[i];
}

void imcap_coords_forward(float *out, const float *in, int C, int H, int W) {
    imcap_coords_forward_n(out, in, 1, C, H, W);
}

void imcap_coords_backward(float *din, const float *dout, int C, int H, int W) {
    imcap_coords_backward_n(din, dout, 1, C, H, W);
}
