/* affine.c — y = x w^T + b over a batch of rows (torch.nn.Linear). The
 * forward goes through imcap_rows_affine, which never repacks the weights
 * and computes every row the same way whatever N is; the backward's
 * products through imcap_gemm. */
#include "kernels.h"
#include "simd.h"

void imcap_affine_forward(float *y, const float *x, const float *w, const float *b, int N, int in, int out) {
    imcap_mm_seg seg = {w, (size_t)in, x, (size_t)in, in};
    imcap_rows_affine(y, (size_t)out, N, out, &seg, 1, b, NULL);
}

void imcap_affine_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int N,
                           int in, int out) {
    if (db)
        for (int n = 0; n < N; n++)
            for (int o = 0; o < out; o++) db[o] += dy[(size_t)n * out + o];
    if (dw) imcap_gemm(dw, (size_t)in, dy, 1, (size_t)out, x, (size_t)in, out, in, N, NULL, 1);      /* dy^T x */
    if (dx) imcap_gemm(dx, (size_t)in, dy, (size_t)out, 1, w, (size_t)in, N, in, out, NULL, 1);      /* dy w */
}
