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
    float *de = scratch;
    /* dalpha_i = dctx . a_i (+ the regulariser's direct term) */
    for (int i = 0; i < L; i++) {
        const float *ai = a + (size_t)i * D;
        float s = dalpha_extra ? dalpha_extra[i] : 0.0f;
        for (int d = 0; d < D; d++) s += dctx[d] * ai[d];
        de[i] = s;
        if (da) {
            float *dai = da + (size_t)i * D;
            for (int d = 0; d < D; d++) dai[d] += alpha[i] * dctx[d];
        }
    }
    float dot = 0;
    for (int i = 0; i < L; i++) dot += de[i] * alpha[i];
    for (int i = 0; i < L; i++) de[i] = alpha[i] * (de[i] - dot);
    for (int i = 0; i < L; i++) {
        const float *t = tanh_pq + (size_t)i * A;
        float *dpi = dp ? dp + (size_t)i * A : NULL;
        *db += de[i];
        for (int k = 0; k < A; k++) {
            dw[k] += de[i] * t[k];
            float g = de[i] * w[k] * (1.0f - t[k] * t[k]);
            dq[k] += g;
            if (dpi) dpi[k] += g;
        }
    }
}
