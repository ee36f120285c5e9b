/* simd_ops.h — the table of one build of simd_impl.c. simd.c dispatches
 * through the best table the CPU supports; tests compare the tables. */
#ifndef IMCAP_SIMD_OPS_H
#define IMCAP_SIMD_OPS_H
#include <stddef.h>

#include "simd.h"

typedef struct {
    const char *name;
    void (*vexp)(float *y, const float *x, size_t n);
    void (*vtanh)(float *y, const float *x, size_t n);
    void (*vsigmoid)(float *y, const float *x, size_t n);
    void (*rows_affine)(float *y, size_t ldy, int N, int M, const imcap_mm_seg *seg, int nseg, const float *b0,
                        const float *b1, int accumulate);
    double (*sumsq)(const float *g, size_t n);
    void (*channel_moments)(const float *v, float *u, int n, float out[4]);
    void (*adam_update)(float *p, const float *g, float *m, float *v, size_t n, float scale, float beta1, float beta2,
                        float step_size, float inv_bc2, float eps, float lr_wd);
    void (*gemm)(float *C, size_t ldc, const float *a, size_t ars, size_t acs, const float *B, size_t ldb, int M, int N,
                 int K, const float *bias, int accumulate);
    void (*gemm_p)(float *C, size_t ldc, const float *a, size_t ars, size_t acs, const float *wp, int M, int N, int K,
                   int k0, int k1, int load, int finish, const float *bcol);
    void (*conv_direct)(float *C, size_t ldc, const float *a, int M, int K, const float *xp, const int32_t *koff,
                        int Wp, int Ho, int Wo, const float *bias);
    void (*conv_direct_flat)(float *C, size_t ldc, const float *a, int M, int K, const float *xp, const int32_t *koff,
                             const uint8_t *tapx, int kw, int pad, int Wo, int P, const float *bias);
    void (*attention_fused)(float *ctx, float *alpha, float *tanh_pq, const float *a, const float *p, const float *q,
                            const float *w, float b, int L, int A, int D);
    void (*attention_backward)(float *da, float *dp, float *dq, float *dw, float *db, const float *dctx,
                               const float *dalpha_extra, const float *a, const float *alpha, const float *tanh_pq,
                               const float *w, int L, int A, int D, float *scratch);
    void (*lstm_cell)(float *h, float *c, float *tanh_c, float *gates, const float *c_prev, int N, int H);
    void (*pool2x2_row)(float *out, const float *r0, const float *r1, int Wo, int relu);
    void (*winograd_in)(float *V, const float *in, int C, int H, int W, int i0, int i1, float *plane, float *h);
    void (*winograd_out)(float *out, const float *Mt, const float *bias, int O, int H, int W, int i0, int i1);
} imcap_simd_ops;

extern const imcap_simd_ops imcap_simd_ops_generic;
#if defined(__x86_64__)
extern const imcap_simd_ops imcap_simd_ops_avx2;
extern const imcap_simd_ops imcap_simd_ops_avx512;
#endif

/* The build for name ("avx512", "avx2", "generic"), or NULL when this CPU
 * cannot run it. NULL name: the best one. */
const imcap_simd_ops *imcap_simd_ops_get(const char *name);
#endif
