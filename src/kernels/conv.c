/* conv.c — 2-D convolution as im2col + one sgemm per image. */
#include <cblas.h>
#include <string.h>

#include "kernels.h"

size_t imcap_conv2d_col_size(int C, int k, int Ho, int Wo) { return (size_t)C * k * k * Ho * Wo; }

/* col[(c*k + ky)*k + kx][oy*Wo + ox] = in[c][oy*s - pad + ky][ox*s - pad + kx] (0 outside) */
static void im2col(float *col, const float *in, int C, int H, int W, int k, int s, int pad, int Ho, int Wo) {
    for (int c = 0; c < C; c++)
        for (int ky = 0; ky < k; ky++)
            for (int kx = 0; kx < k; kx++) {
                float *row = col + ((size_t)(c * k + ky) * k + kx) * Ho * Wo;
                for (int oy = 0; oy < Ho; oy++) {
                    int iy = oy * s - pad + ky;
                    float *dst = row + (size_t)oy * Wo;
                    if (iy < 0 || iy >= H) {
                        memset(dst, 0, (size_t)Wo * sizeof *dst);
                        continue;
                    }
                    const float *src = in + ((size_t)c * H + iy) * W;
                    for (int ox = 0; ox < Wo; ox++) {
                        int ix = ox * s - pad + kx;
                        dst[ox] = (ix >= 0 && ix < W) ? src[ix] : 0.0f;
                    }
                }
            }
}

static void col2im_add(float *din, const float *col, int C, int H, int W, int k, int s, int pad, int Ho, int Wo) {
    for (int c = 0; c < C; c++)
        for (int ky = 0; ky < k; ky++)
            for (int kx = 0; kx < k; kx++) {
                const float *row = col + ((size_t)(c * k + ky) * k + kx) * Ho * Wo;
                for (int oy = 0; oy < Ho; oy++) {
                    int iy = oy * s - pad + ky;
                    if (iy < 0 || iy >= H) continue;
                    float *dst = din + ((size_t)c * H + iy) * W;
                    const float *src = row + (size_t)oy * Wo;
                    for (int ox = 0; ox < Wo; ox++) {
                        int ix = ox * s - pad + kx;
                        if (ix >= 0 && ix < W) dst[ix] += src[ox];
                    }
                }
            }
}

void imcap_conv2d_forward(float *out, const float *in, const float *w, const float *b, int C, int H, int W, int O,
                          int k, int stride, int pad, float *col) {
    int Ho = (H + 2 * pad - k) / stride + 1, Wo = (W + 2 * pad - k) / stride + 1, P = Ho * Wo, K = C * k * k;
    im2col(col, in, C, H, W, k, stride, pad, Ho, Wo);
    for (int o = 0; o < O; o++)
        for (int i = 0; i < P; i++) out[(size_t)o * P + i] = b[o];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, O, P, K, 1.0f, w, K, col, P, 1.0f, out, P);
}

void imcap_conv2d_backward(float *din, float *dw, float *db, const float *dout, const float *in, const float *w,
                           int C, int H, int W, int O, int k, int stride, int pad, float *col) {
    int Ho = (H + 2 * pad - k) / stride + 1, Wo = (W + 2 * pad - k) / stride + 1, P = Ho * Wo, K = C * k * k;
    for (int o = 0; o < O; o++) {
        const float *d = dout + (size_t)o * P;
        float s = 0;
        for (int i = 0; i < P; i++) s += d[i];
        db[o] += s;
    }
    im2col(col, in, C, H, W, k, stride, pad, Ho, Wo);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, O, K, P, 1.0f, dout, P, col, P, 1.0f, dw, K);
    if (!din) return;
    /* dcol = w^T dout, reusing col */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, P, O, 1.0f, w, K, dout, P, 0.0f, col, P);
    col2im_add(din, col, C, H, W, k, stride, pad, Ho, Wo);
}
