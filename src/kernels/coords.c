/* coords.c — appends the cell coordinates as two channels, so the decoder
 * can tell where each annotation vector sits (spatial words need it). */
#include <string.h>

#include "kernels.h"

void imcap_coords_forward(float *out, const float *in, int C, int H, int W) {
    size_t plane = (size_t)H * W;
    if (out != in) memmove(out, in, (size_t)C * plane * sizeof *out);
    float *xs = out + (size_t)C * plane, *ys = xs + plane;
    for (int i = 0; i < H; i++)
        for (int j = 0; j < W; j++) {
            xs[i * W + j] = 2.0f * ((float)j + 0.5f) / (float)W - 1.0f;
            ys[i * W + j] = 2.0f * ((float)i + 0.5f) / (float)H - 1.0f;
        }
}

void imcap_coords_backward(float *din, const float *dout, int C, int H, int W) {
    size_t n = (size_t)C * H * W;
    for (size_t i = 0; i < n; i++) din[i] += dout[i];
}
