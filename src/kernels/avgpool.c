/* avgpool.c — adaptive average pooling to Ho x Wo, torch's
 * adaptive_avg_pool2d: output cell o along an axis of n inputs averages
 * inputs floor(o*n/No) .. ceil((o+1)*n/No) - 1 (windows may overlap when n is
 * not a multiple of No), summed row by row and divided by the window's
 * height, then its width, as torch's CPU kernel does. Inference only. */
#include "kernels.h"

static int start_of(int o, int n, int No) { return (int)((long long)o * n / No); }
static int end_of(int o, int n, int No) { return (int)(((long long)(o + 1) * n + No - 1) / No); }

void imcap_adaptive_avgpool_forward(float *out, const float *in, int C, int H, int W, int Ho, int Wo) {
    for (int c = 0; c < C; c++) {
        const float *plane = in + (size_t)c * H * W;
        for (int oy = 0; oy < Ho; oy++) {
            int y0 = start_of(oy, H, Ho), y1 = end_of(oy, H, Ho);
            for (int ox = 0; ox < Wo; ox++) {
                int x0 = start_of(ox, W, Wo), x1 = end_of(ox, W, Wo);
                float sum = 0.0f;
                for (int y = y0; y < y1; y++)
                    for (int x = x0; x < x1; x++) sum += plane[(size_t)y * W + x];
                out[((size_t)c * Ho + oy) * Wo + ox] = sum / (float)(y1 - y0) / (float)(x1 - x0);
            }
        }
    }
}
