/* affine.c — y = x w^T + b over a batch of rows (torch.nn.Linear). */
#include <cblas.h>

#include "kernels.h"

void imcap_affine_forward(float *y, const float *x, const float *w, const float *b, int N, int in, int out) {
    for (int n = 0; n < N; n++)
        for (int o = 0; o < out; o++) y[(size_t)n * out + o] = b ? b[o] : 0.0f;
    if (N == 1)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, out, in, 1.0f, w, in, x, 1, 1.0f, y, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, out, in, 1.0f, x, in, w, in, 1.0f, y, out);
}

void imcap_affine_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int N,
                           int in, int out) {
    if (db)
        for (int n = 0; n < N; n++)
            for (int o = 0; o < out; o++) db[o] += dy[(size_t)n * out + o];
    if (dw) cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, N, 1.0f, dy, out, x, in, 1.0f, dw, in);
    if (dx) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, in, out, 1.0f, dy, out, w, in, 1.0f, dx, in);
}
