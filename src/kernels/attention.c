/* attention.c — soft attention over the annotation grid for one query. */
#include "kernels.h"
#include "simd.h"

void imcap_attention_forward(float *ctx, float *alpha, float *tanh_pq, const float *a, const float *p, const float *q,
                             const float *w, float b, int L, int A, int D) {
    imcap_attention_fused(ctx, alpha, tanh_pq, a, p, q, w, b, L, A, D);
}

void imcap_attention_backward(float *da, float *dp, float *dq, float *dw, float *db, const float *dctx,
                              const float *dalpha_extra, const float *a, const float *alpha, const float *tanh_pq,
                              const float *w, int L, int A, int D, float *scratch) {
    imcap_attention_backward_simd(da, dp, dq, dw, db, dctx, dalpha_extra, a, alpha, tanh_pq, w, L, A, D, scratch);
}
