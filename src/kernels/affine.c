/* affine.c — y = x w^T + b over a batch of rows (torch.nn.Linear). The
 * forward goes through imcap_rows_affine, which never repacks the weights
 * and computes every row the same way whatever N is; the backward's
 * products are over a whole batch, where OpenBLAS's packing pays off. */
#include <cblas.h>

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
    if (dw) cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, N, 1.0f, dy, out, x, in, 1.0f, dw, in);
    if (dx) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, in, out, 1.0f, dy, out, w, in, 1.0f, dx, in);
}
