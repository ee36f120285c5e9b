/* simd.c — picks the build of simd_impl.c that this CPU runs best. The
 * check is a read of libgcc's CPU model (filled once at start-up), cheap
 * enough to repeat on every call, so there is no state of our own. */
#include <string.h>

#include "simd_ops.h"

static int cpu_has_avx512(void) {
#if defined(__x86_64__)
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

static int cpu_has_avx2(void) {
#if defined(__x86_64__)
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

const imcap_simd_ops *imcap_simd_ops_get(const char *name) {
#if defined(__x86_64__)
    if (!name) return cpu_has_avx512() ? &imcap_simd_ops_avx512 : cpu_has_avx2() ? &imcap_simd_ops_avx2
                                                                                 : &imcap_simd_ops_generic;
    if (!strcmp(name, "avx512")) return cpu_has_avx512() ? &imcap_simd_ops_avx512 : NULL;
    if (!strcmp(name, "avx2")) return cpu_has_avx2() ? &imcap_simd_ops_avx2 : NULL;
#else
    if (!name) return &imcap_simd_ops_generic;
#endif
    return !strcmp(name, "generic") ? &imcap_simd_ops_generic : NULL;
}

static const imcap_simd_ops *best(void) { return imcap_simd_ops_get(NULL); }

void imcap_vexp(float *y, const float *x, size_t n) { best()->vexp(y, x, n); }
void imcap_vtanh(float *y, const float *x, size_t n) { best()->vtanh(y, x, n); }
void imcap_vsigmoid(float *y, const float *x, size_t n) { best()->vsigmoid(y, x, n); }

void imcap_rows_affine(float *y, size_t ldy, int N, int M, const imcap_mm_seg *seg, int nseg, const float *b0,
                       const float *b1) {
    best()->rows_affine(y, ldy, N, M, seg, nseg, b0, b1, 0);
}

void imcap_rows_affine_acc(float *y, size_t ldy, int N, int M, const imcap_mm_seg *seg, int nseg) {
    best()->rows_affine(y, ldy, N, M, seg, nseg, NULL, NULL, 1);
}

double imcap_sumsq(const float *g, size_t n) { return best()->sumsq(g, n); }
void imcap_channel_moments(const float *v, float *u, int n, float out[4]) { best()->channel_moments(v, u, n, out); }

void imcap_adam_update(float *p, const float *g, float *m, float *v, size_t n, float scale, float beta1, float beta2,
                       float step_size, float inv_bc2, float eps, float lr_wd) {
    best()->adam_update(p, g, m, v, n, scale, beta1, beta2, step_size, inv_bc2, eps, lr_wd);
}

void imcap_gemm(float *C, size_t ldc, const float *a, size_t ars, size_t acs, const float *B, size_t ldb, int M, int N,
                int K, const float *bias, int accumulate) {
    best()->gemm(C, ldc, a, ars, acs, B, ldb, M, N, K, bias, accumulate);
}

void imcap_affine_p(float *y, size_t ldy, int N, int M, const float *x, size_t ldx, const float *wp, int K,
                    const float *bias) {
    best()->gemm_p(y, ldy, x, ldx, 1, wp, N, M, K, 0, K, 0, 1, bias);
}

void imcap_gemm_p(float *C, size_t ldc, const float *a, size_t ars, size_t acs, const float *wp, int M, int N, int K,
                  const float *bcol) {
    best()->gemm_p(C, ldc, a, ars, acs, wp, M, N, K, 0, K, 0, 1, bcol);
}

void imcap_gemm_p_range(float *C, size_t ldc, const float *a, size_t ars, size_t acs, const float *wp, int M, int N,
                        int K, int k0, int k1, int load, int finish, const float *bcol) {
    best()->gemm_p(C, ldc, a, ars, acs, wp, M, N, K, k0, k1, load, finish, bcol);
}

size_t imcap_panel_floats(int M, int K) {
    return (size_t)((M + IMCAP_PANEL - 1) / IMCAP_PANEL) * IMCAP_PANEL * (size_t)K;
}

void imcap_panel_put(float *wp, int K, int o0, int k0, const float *w, int out, int in) {
    for (int o = 0; o < out; o++) {
        int n = o0 + o;
        float *panel = wp + (size_t)(n / IMCAP_PANEL) * IMCAP_PANEL * (size_t)K + n % IMCAP_PANEL;
        for (int k = 0; k < in; k++) panel[(size_t)(k0 + k) * IMCAP_PANEL] = w[(size_t)o * in + k];
    }
}

void imcap_conv_direct(float *C, size_t ldc, const float *a, int M, int K, const float *xp, const int32_t *koff, int Wp,
                       int Ho, int Wo, const float *bias) {
    best()->conv_direct(C, ldc, a, M, K, xp, koff, Wp, Ho, Wo, bias);
}

void imcap_conv_direct_flat(float *C, size_t ldc, const float *a, int M, int K, const float *xp, const int32_t *koff,
                            const uint8_t *tapx, int kw, int pad, int Wo, int P, const float *bias) {
    best()->conv_direct_flat(C, ldc, a, M, K, xp, koff, tapx, kw, pad, Wo, P, bias);
}

void imcap_attention_fused(float *ctx, float *alpha, float *tanh_pq, const float *a, const float *p, const float *q,
                           const float *w, float b, int L, int A, int D) {
    best()->attention_fused(ctx, alpha, tanh_pq, a, p, q, w, b, L, A, D);
}

void imcap_attention_backward_simd(float *da, float *dp, float *dq, float *dw, float *db, const float *dctx,
                                   const float *dalpha_extra, const float *a, const float *alpha,
                                   const float *tanh_pq, const float *w, int L, int A, int D, float *scratch) {
    best()->attention_backward(da, dp, dq, dw, db, dctx, dalpha_extra, a, alpha, tanh_pq, w, L, A, D, scratch);
}

void imcap_lstm_cell(float *h, float *c, float *tanh_c, float *gates, const float *c_prev, int N, int H) {
    best()->lstm_cell(h, c, tanh_c, gates, c_prev, N, H);
}

const char *imcap_simd_name(void) { return best()->name; }

void imcap_pool2x2_row(float *out, const float *r0, const float *r1, int Wo, int relu) {
    best()->pool2x2_row(out, r0, r1, Wo, relu);
}

void imcap_winograd_in(float *V, const float *in, int C, int H, int W, int i0, int i1, float *plane, float *h) {
    best()->winograd_in(V, in, C, H, W, i0, i1, plane, h);
}

void imcap_winograd_out(float *out, const float *Mt, const float *bias, int O, int H, int W, int i0, int i1) {
    best()->winograd_out(out, Mt, bias, O, H, W, i0, i1);
}
