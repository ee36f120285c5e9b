/* simd_impl.c — the bodies behind simd.h, written once with GCC's generic
 * vectors (16 float lanes) and compiled three times by meson:
 *   IMCAP_SIMD_NAME=avx512  -mavx512f -mavx512dq -mavx2 -mfma -ffp-contract=fast
 *   IMCAP_SIMD_NAME=avx2    -mavx2 -mfma -ffp-contract=fast
 *   IMCAP_SIMD_NAME=generic (no flags; a*b+c stays two roundings)
 * The lane structure is the same in all three (a 16-lane vector is one zmm,
 * two ymm or four xmm registers), so the AVX builds agree bit for bit.
 * Only the register blocking differs between builds, and blocking never
 * changes the order in which one output is summed. */
#include <stdint.h>
#include <string.h>
#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include "simd.h"
#include "simd_ops.h"

#ifndef IMCAP_SIMD_NAME
#error "simd_impl.c is compiled by meson with -DIMCAP_SIMD_NAME=..."
#endif
#define CAT2(a, b) a##_##b
#define CAT(a, b) CAT2(a, b)
#define F(name) CAT(name, IMCAP_SIMD_NAME)
#define STR2(x) #x
#define STR(x) STR2(x)

#define AI static inline __attribute__((always_inline))

typedef float vf __attribute__((vector_size(64)));
typedef int32_t vi __attribute__((vector_size(64)));
typedef float vf_u __attribute__((vector_size(64), aligned(4), may_alias));
enum { LANES = 16 };

/* register blocking of imcap_rows_affine: outputs x rows per block */
#define GEMM_KC 64
#if defined(__AVX512F__)
#define GEMM_MB 4
#define GEMM_NV 4
#define BO1 8
#define BO 4
#define BN 4
#else
#define GEMM_MB 2
#define GEMM_NV 2
#define BO1 4
#define BO 2
#define BN 2
#endif

AI vf ld(const float *p) { return *(const vf_u *)p; }
AI void st(float *p, vf v) { *(vf_u *)p = v; }
/* the first n < 16 lanes (the rest zero), never touching memory past p + n */
#if defined(__AVX512F__)
AI vf ld_part(const float *p, int n) { return (vf)_mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1u), p); }
AI void st_part(float *p, vf v, int n) { _mm512_mask_storeu_ps(p, (__mmask16)((1u << n) - 1u), (__m512)v); }
#elif defined(__AVX2__)
AI __m256i lane_mask8(int n) {
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), idx);
}
AI vf ld_part(const float *p, int n) {
    __m256 lo = _mm256_maskload_ps(p, lane_mask8(n)), hi = _mm256_maskload_ps(p + 8, lane_mask8(n - 8));
    vf v;
    memcpy(&v, &lo, 32);
    memcpy((char *)&v + 32, &hi, 32);
    return v;
}
AI void st_part(float *p, vf v, int n) {
    __m256 lo, hi;
    memcpy(&lo, &v, 32);
    memcpy(&hi, (char *)&v + 32, 32);
    _mm256_maskstore_ps(p, lane_mask8(n), lo);
    _mm256_maskstore_ps(p + 8, lane_mask8(n - 8), hi);
}
#else
AI vf ld_part(const float *p, int n) {
    vf v = {0};
    for (int l = 0; l < n; l++) v[l] = p[l];
    return v;
}
AI void st_part(float *p, vf v, int n) {
    for (int l = 0; l < n; l++) p[l] = v[l];
}
#endif
/* a broadcast, not 0 + x (which costs an add and turns -0 into +0) */
AI vf splat(float x) { return (vf){x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x}; }
AI vf sel(vi m, vf a, vf b) { return (vf)(((vi)a & m) | ((vi)b & ~m)); }
AI vi splat_i(int32_t x) { return (vi){x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x}; }
/* all ones in the lanes below r */
AI vi lane_lt(int r) {
    const vi idx = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    return idx < splat_i(r);
}
/* r lanes (r <= 16): the loops below take 16 at a time and r at the end,
 * with one body for both */
AI vf ldn(const float *p, int r) { return r == LANES ? ld(p) : ld_part(p, r); }
AI void stn(float *p, vf v, int r) {
    if (r == LANES) st(p, v);
    else st_part(p, v, r);
}
AI int lanes_left(int n, int i) { return n - i < LANES ? n - i : LANES; }

/* ---------------------------------------------------------------- elementwise */

AI vf v_exp(vf x) {
    const float lo = -87.3365448f, hi = 88.3762626647949f;
    vi small = x < lo, big = x > hi, nan = x != x;
    vf xc = sel(small, splat(lo), x);
    xc = sel(big, splat(hi), xc);
    xc = sel(nan, splat(0.0f), xc);
    /* x = n ln2 + r, |r| <= ln2 / 2; n rounded to nearest with the 1.5 * 2^23 trick */
    vf n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    vf r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    vf z = r * r;
    vf y = splat(1.9875691500e-4f);
    y = y * r + 1.3981999507e-3f;
    y = y * r + 8.3334519073e-3f;
    y = y * r + 4.1665795894e-2f;
    y = y * r + 1.6666665459e-1f;
    y = y * r + 5.0000001201e-1f;
    y = y * z + r;
    y = y + 1.0f;
    vi e = (__builtin_convertvector(n, vi) + 127) << 23;
    y = y * (vf)e;
    y = sel(small, splat(0.0f), y);
    y = sel(big, splat(__builtin_inff()), y);
    return sel(nan, x, y);
}

/* tanh as a rational function (Eigen's minimax fit, odd degree 13 over even
 * degree 6, on |x| <= 7.905; +-1 from 9 on, where tanh rounds to it): 17 operations
 * and one division, 2.4x faster than 1 - 2 / (e^2x + 1) with a polynomial
 * near 0, and the attention evaluates 8,192 of them per row and step. Below
 * |x| = 0.0004, tanh(x) = x to the float. */
AI vf v_tanh(vf x) {
    const float c = 7.90531110763549805f;
    vf xc = sel(x > c, splat(c), x);
    xc = sel(xc < -c, splat(-c), xc);
    vf x2 = xc * xc;
    vf p = splat(-2.76076847742355e-16f);
    p = p * x2 + 2.00018790482477e-13f;
    p = p * x2 + -8.60467152213735e-11f;
    p = p * x2 + 5.12229709037114e-08f;
    p = p * x2 + 1.48572235717979e-05f;
    p = p * x2 + 6.37261928875436e-04f;
    p = p * x2 + 4.89352455891786e-03f;
    p = p * xc;
    vf q = splat(1.19825839466702e-06f);
    q = q * x2 + 1.18534705686654e-04f;
    q = q * x2 + 2.26843463243900e-03f;
    q = q * x2 + 4.89352518554385e-03f;
    vf ax = (vf)((vi)x & 0x7fffffff);
    vf r = sel(ax < 0.0004f, x, p / q); /* a NaN fails every comparison and stays NaN through p / q */
    /* beyond 9, tanh rounds to +-1 (the fit stops at 0.99999976) */
    vf one = (vf)((vi)splat(1.0f) | ((vi)x & INT32_MIN));
    return sel(ax >= 9.0f, one, r);
}

AI vf v_sigmoid(vf x) { return 1.0f / (1.0f + v_exp(-x)); }

#define ELEMENTWISE(name, fn)                                                                                          \
    static void F(name)(float *y, const float *x, size_t n) {                                                          \
        for (size_t i = 0; i < n; i += LANES) {                                                                        \
            int r = n - i < LANES ? (int)(n - i) : LANES;                                                              \
            stn(y + i, fn(ldn(x + i, r)), r);                                                                          \
        }                                                                                                              \
    }
ELEMENTWISE(vexp, v_exp)
ELEMENTWISE(vtanh, v_tanh)
ELEMENTWISE(vsigmoid, v_sigmoid)

/* ---------------------------------------------------------------- reductions */

/* The one summation tree for 16 lanes: s[i] += s[i+8], then +4, +2, +1.
 * reduce16 applies it to 16 vectors at once (transposing as it goes) and
 * returns their 16 sums in lane order; hsum applies it to one. */
#if defined(__clang__)
/* clang (the fuzz build, -Dfuzz=true) has no GCC __builtin_shuffle with a
 * mask operand; the same two-vector permutation, element by element. */
AI vf shuffle2(vf a, vf b, vi m) {
    vf r;
    for (int i = 0; i < 16; i++) {
        int k = m[i] & 31;
        r[i] = k < 16 ? a[k] : b[k - 16];
    }
    return r;
}
#else
#define shuffle2(a, b, m) __builtin_shuffle(a, b, m)
#endif
AI vf pairs(vf a, vf b, vi lo, vi hi) { return shuffle2(a, b, lo) + shuffle2(a, b, hi); }

AI vf reduce16(const vf *v) {
    const vi l1 = {0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23};
    const vi h1 = {8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31};
    const vi l2 = {0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27};
    const vi h2 = {4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31};
    const vi l3 = {0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29};
    const vi h3 = {2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31};
    const vi l4 = {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30};
    const vi h4 = {1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31};
    vf a[8], b[4], c[2];
    for (int j = 0; j < 8; j++) a[j] = pairs(v[2 * j], v[2 * j + 1], l1, h1);
    for (int j = 0; j < 4; j++) b[j] = pairs(a[2 * j], a[2 * j + 1], l2, h2);
    for (int j = 0; j < 2; j++) c[j] = pairs(b[2 * j], b[2 * j + 1], l3, h3);
    return pairs(c[0], c[1], l4, h4);
}

/* ---------------------------------------------------------------- products */

/* One block: BOx outputs x BNx rows, every pair with its own 16-lane
 * accumulator, summed over the segments' k in chunks of 16 (the last one
 * zero-padded), then reduced by reduce16. */
AI void block(float *y, size_t ldy, int n0, int o0, int BOx, int BNx, const imcap_mm_seg *seg, int nseg,
              const float *b0, const float *b1, int accumulate) {
    vf acc[16];
    for (int j = 0; j < 16; j++) acc[j] = (vf){0};
    for (int s = 0; s < nseg; s++) {
        const float *w = seg[s].w + (size_t)o0 * seg[s].ldw, *x = seg[s].x + (size_t)n0 * seg[s].ldx;
        size_t ldw = seg[s].ldw, ldx = seg[s].ldx;
        int k = seg[s].k, k0 = 0;
        for (; k0 + LANES <= k; k0 += LANES) {
            vf xv[4];
            for (int b = 0; b < BNx; b++) xv[b] = ld(x + b * ldx + k0);
            for (int a = 0; a < BOx; a++) {
                vf wv = ld(w + a * ldw + k0);
                /* fetch the next block's weight rows while this one computes:
                 * the hardware prefetchers do not follow BOx interleaved rows */
                __builtin_prefetch(w + (a + BOx) * ldw + k0 + 2 * LANES);
                for (int b = 0; b < BNx; b++) acc[a * BNx + b] += wv * xv[b];
            }
        }
        if (k0 < k) {
            int r = k - k0;
            vf xv[4];
            for (int b = 0; b < BNx; b++) xv[b] = ld_part(x + b * ldx + k0, r);
            for (int a = 0; a < BOx; a++) {
                vf wv = ld_part(w + a * ldw + k0, r);
                for (int b = 0; b < BNx; b++) acc[a * BNx + b] += wv * xv[b];
            }
        }
    }
    float out[16];
    st(out, reduce16(acc));
    for (int a = 0; a < BOx; a++) {
        int o = o0 + a;
        float bias = (b0 ? b0[o] : 0.0f) + (b1 ? b1[o] : 0.0f);
        for (int b = 0; b < BNx; b++) {
            float *yo = &y[(size_t)(n0 + b) * ldy + o];
            *yo = accumulate ? *yo + (out[a * BNx + b] + bias) : out[a * BNx + b] + bias;
        }
    }
}

/* Outputs o0 .. o0+BOx-1 (BOx == 1 for the tail) of rows n0 .. n1-1, in
 * blocks of BN rows, then 3, 2, 1. */
AI void rows_of_block(float *y, size_t ldy, int n0, int n1, int o0, int BOx, const imcap_mm_seg *seg, int nseg,
                      const float *b0, const float *b1, int acc) {
    int n = n0;
    for (; n + BN <= n1; n += BN) block(y, ldy, n, o0, BOx, BN, seg, nseg, b0, b1, acc);
#if BN > 2
    if (n1 - n == 3) { block(y, ldy, n, o0, BOx, 3, seg, nseg, b0, b1, acc); n += 3; }
#endif
    if (n1 - n >= 2) { block(y, ldy, n, o0, BOx, 2, seg, nseg, b0, b1, acc); n += 2; }
    if (n1 - n == 1) block(y, ldy, n, o0, BOx, 1, seg, nseg, b0, b1, acc);
}

/* Rows are taken in chunks small enough that the chunk's inputs stay in L1;
 * within a chunk the outputs are the outer loop, so each block of weight
 * rows is read from memory once per chunk and reused from L1 by all its
 * rows. One row alone uses taller blocks (BO1 outputs): it is a gemv, bound
 * by the stream of weights. */
static void F(rows_affine)(float *y, size_t ldy, int N, int M, const imcap_mm_seg *seg, int nseg, const float *b0,
                           const float *b1, int acc) {
    enum { CHUNK = 4 * BN };
    if (N == 1) {
        int o = 0;
        for (; o + BO1 <= M; o += BO1) block(y, ldy, 0, o, BO1, 1, seg, nseg, b0, b1, acc);
        for (; o < M; o++) block(y, ldy, 0, o, 1, 1, seg, nseg, b0, b1, acc);
        return;
    }
    for (int c0 = 0; c0 < N; c0 += CHUNK) {
        int c1 = c0 + CHUNK < N ? c0 + CHUNK : N, o = 0;
        for (; o + BO <= M; o += BO) rows_of_block(y, ldy, c0, c1, o, BO, seg, nseg, b0, b1, acc);
        for (; o < M; o++) rows_of_block(y, ldy, c0, c1, o, 1, seg, nseg, b0, b1, acc);
    }
}

/* ---------------------------------------------------------------- products, outer form */

/* C[m * ldc + n] (+)= sum_k A(m, k) B[k * ldb + n] + bias[m], with
 * A(m, k) = a[m * ars + k * acs]: every output is one lane summed over k in
 * order, so it depends neither on the blocking, nor on N (how many pixels or
 * images share the call), nor on the build. A's elements are broadcast, B's
 * rows are read as vectors: no packing. */
/* One block over k in [k0, k1). phase: 0 the whole sum (C = (C if acc_c)
 * + sum + bias); 1 the first slice (C = partial sum); 2 a middle slice
 * (C = C + slice, continuing the same accumulators); 3 the last (then
 * + bias). Slices reload the running sums into the accumulators, so every
 * output is the same sequence of fused multiply-adds as in one pass. */
AI void gemm_block(float *C, size_t ldc, const float *a, size_t ars, size_t acs, const float *B, size_t ldb, int k0,
                   int k1, const float *bias, const float *bcol, int acc_c, int phase, int m0, int MBx, int n0, int NV,
                   int r) {
    vf acc[GEMM_MB][GEMM_NV];
    for (int i = 0; i < MBx; i++) {
        float *c = C + (size_t)(m0 + i) * ldc + n0;
        for (int v = 0; v < NV; v++) {
            int rv = v == NV - 1 ? r : LANES;
            acc[i][v] = phase >= 2 ? ldn(c + v * LANES, rv) : (vf){0};
        }
    }
    const float *arow[GEMM_MB];
    for (int i = 0; i < MBx; i++) arow[i] = a + (size_t)(m0 + i) * ars;
    for (int k = k0; k < k1; k++) {
        const float *b = B + (size_t)k * ldb;
        vf bv[GEMM_NV];
        for (int v = 0; v < NV; v++) bv[v] = ldn(b + v * LANES, v < NV - 1 ? LANES : r);
        for (int i = 0; i < MBx; i++) {
            vf av = splat(arow[i][(size_t)k * acs]);
            for (int v = 0; v < NV; v++) acc[i][v] += av * bv[v];
        }
    }
    for (int i = 0; i < MBx; i++) {
        float *c = C + (size_t)(m0 + i) * ldc + n0;
        vf add = splat(bias ? bias[m0 + i] : 0.0f);
        for (int v = 0; v < NV; v++) {
            int rv = v == NV - 1 ? r : LANES;
            vf out = acc[i][v];
            if (phase == 0 || phase == 3) out = out + (bcol ? ldn(bcol + n0 + v * LANES, rv) : add);
            if (phase == 0 && acc_c) out = ldn(c + v * LANES, rv) + out;
            stn(c + v * LANES, out, rv);
        }
    }
}

/* Rows m0.. of one column panel (NV vectors, the last r lanes wide): full
 * blocks of GEMM_MB rows, then one block of the rows left (each size its own
 * unrolled copy: a one-row block would be latency bound). */
AI void gemm_panel(float *C, size_t ldc, const float *a, size_t ars, size_t acs, const float *B, size_t ldb, int M,
                   int k0, int k1, const float *bias, const float *bcol, int acc_c, int phase, int n0, int NV, int r) {
    int m0 = 0;
#define GB(MBx) gemm_block(C, ldc, a, ars, acs, B, ldb, k0, k1, bias, bcol, acc_c, phase, m0, MBx, n0, NV, r)
    for (; m0 + GEMM_MB <= M; m0 += GEMM_MB) GB(GEMM_MB);
    switch (M - m0) {
#if GEMM_MB > 5
    case 5: GB(5); break;
#endif
#if GEMM_MB > 4
    case 4: GB(4); break;
#endif
#if GEMM_MB > 3
    case 3: GB(3); break;
#endif
#if GEMM_MB > 2
    case 2: GB(2); break;
#endif
    case 1: GB(1); break;
    default: break;
    }
#undef GB
}

/* Every column panel for k in [k0, k1). B is row-major (pstride 0: column
 * n of row k at B[k * ldb + n]) or in IMCAP_PANEL-wide panels (column n of
 * row k at B[(n / IMCAP_PANEL) * pstride + k * IMCAP_PANEL + n % IMCAP_PANEL]):
 * a register panel never straddles two storage panels. */
_Static_assert(IMCAP_PANEL % (GEMM_NV * LANES) == 0, "a register panel must sit inside a storage panel");
AI void gemm_slice(float *C, size_t ldc, const float *a, size_t ars, size_t acs, const float *B, size_t ldb,
                   size_t pstride, int M, int N, int k0, int k1, const float *bias, const float *bcol, int acc_c,
                   int phase) {
#define BCOL(n) (pstride ? B + (size_t)((n) / IMCAP_PANEL) * pstride + (n) % IMCAP_PANEL : B + (n))
#define LDB (pstride ? (size_t)IMCAP_PANEL : ldb)
    int n0 = 0;
    for (; n0 + GEMM_NV * LANES <= N; n0 += GEMM_NV * LANES)
        gemm_panel(C, ldc, a, ars, acs, BCOL(n0), LDB, M, k0, k1, bias, bcol, acc_c, phase, n0, GEMM_NV, LANES);
    int left = N - n0;
    if (left > 0) {
        int nv = (left + LANES - 1) / LANES, r = left - (nv - 1) * LANES;
        const float *bc = BCOL(n0);
        switch (nv) {
        case GEMM_NV: gemm_panel(C, ldc, a, ars, acs, bc, LDB, M, k0, k1, bias, bcol, acc_c, phase, n0, GEMM_NV, r); break;
#if GEMM_NV > 3
        case 3: gemm_panel(C, ldc, a, ars, acs, bc, LDB, M, k0, k1, bias, bcol, acc_c, phase, n0, 3, r); break;
#endif
#if GEMM_NV > 2
        case 2: gemm_panel(C, ldc, a, ars, acs, bc, LDB, M, k0, k1, bias, bcol, acc_c, phase, n0, 2, r); break;
#endif
        case 1: gemm_panel(C, ldc, a, ars, acs, bc, LDB, M, k0, k1, bias, bcol, acc_c, phase, n0, 1, r); break;
        default: break;
        }
    }
#undef BCOL
#undef LDB
}

/* k is taken in slices of GEMM_KC rows of B, so that a column panel's slice
 * (GEMM_KC x 64 floats) stays in L1 while every block of rows of A uses
 * it; a long k in one pass reads each panel from L2 once per block of rows.
 * The running sums go through C between slices (see gemm_block), which
 * needs C to start empty: accumulate takes k in one pass. k in [k0, k1):
 * load starts from the sums in C (gemm_block's phase 2) instead of zero,
 * and the bias is added after k1 only if finish is set, so a product split
 * at any k has the bits of the product in one piece. */
AI void gemm_body(float *C, size_t ldc, const float *a, size_t ars, size_t acs, const float *B, size_t ldb,
                  size_t pstride, int M, int N, int k0, int k1, int load, int finish, const float *bias,
                  const float *bcol, int accumulate) {
#define PHASE(ld, fin) ((ld) ? ((fin) ? 3 : 2) : ((fin) ? 0 : 1))
    /* rows that fit one register block reuse nothing from L1 across blocks:
     * one pass streams each panel front to back */
    if (accumulate || k1 - k0 <= GEMM_KC || M <= GEMM_MB) {
        gemm_slice(C, ldc, a, ars, acs, B, ldb, pstride, M, N, k0, k1, bias, bcol, accumulate, PHASE(load, finish));
        return;
    }
    for (int s0 = k0; s0 < k1; s0 += GEMM_KC) {
        int s1 = s0 + GEMM_KC < k1 ? s0 + GEMM_KC : k1;
        gemm_slice(C, ldc, a, ars, acs, B, ldb, pstride, M, N, s0, s1, bias, bcol, 0,
                   PHASE(load || s0 > k0, finish && s1 == k1));
    }
#undef PHASE
}

static void F(gemm)(float *C, size_t ldc, const float *a, size_t ars, size_t acs, const float *B, size_t ldb, int M,
                    int N, int K, const float *bias, int accumulate) {
    gemm_body(C, ldc, a, ars, acs, B, ldb, 0, M, N, 0, K, 0, 1, bias, NULL, accumulate);
}

/* imcap_gemm_p_range (simd.h): B in panels, the bias along B's columns. */
static void F(gemm_p)(float *C, size_t ldc, const float *a, size_t ars, size_t acs, const float *wp, int M, int N,
                      int K, int k0, int k1, int load, int finish, const float *bcol) {
    gemm_body(C, ldc, a, ars, acs, wp, 0, (size_t)K * IMCAP_PANEL, M, N, k0, k1, load, finish, NULL, bcol, 0);
}

/* ------------------------------------------------------- direct convolution */

/* imcap_conv_direct (simd.h): the output pixels are taken as vectors of up
 * to 16 along one output row; vector v of a panel starts at xp + bpos[v]
 * (its first pixel's tap-0 input), writes C + cpos[v] and has rl[v] lanes.
 * Tap k adds koff[k] to every start, so a vector's input for tap k is one
 * load; the lanes past rl[v] read what follows (zero padding, the next
 * row) and are never stored. The sums, slices and bias are gemm_block's,
 * one to one. mk (imcap_conv_direct_flat): vector v's input for tap k is
 * masked by mk[v][tapx[k]], its lanes whose tap column falls outside the
 * row set to +0, the value im2col would have copied there. */
AI void conv_block(float *C, size_t ldc, const float *a, size_t K, const float *xp, const int32_t *koff,
                   const uint8_t *tapx, const vi (*mk)[IMCAP_FLAT_KMAX], const size_t *bpos, const size_t *cpos,
                   const int *rl, int k0, int k1, const float *bias, int phase, int m0, int MBx, int NV) {
    vf acc[GEMM_MB][GEMM_NV];
    for (int i = 0; i < MBx; i++)
        for (int v = 0; v < NV; v++)
            acc[i][v] = phase >= 2 ? ldn(C + (size_t)(m0 + i) * ldc + cpos[v], rl[v]) : (vf){0};
    const float *arow[GEMM_MB], *bp[GEMM_NV];
    for (int i = 0; i < MBx; i++) arow[i] = a + (size_t)(m0 + i) * K;
    for (int v = 0; v < NV; v++) bp[v] = xp + bpos[v];
    for (int k = k0; k < k1; k++) {
        size_t o = (size_t)koff[k];
        vf bv[GEMM_NV];
        if (mk)
            for (int v = 0; v < NV; v++) bv[v] = (vf)((vi)ld(bp[v] + o) & mk[v][tapx[k]]);
        else
            for (int v = 0; v < NV; v++) bv[v] = ld(bp[v] + o);
        for (int i = 0; i < MBx; i++) {
            vf av = splat(arow[i][k]);
            for (int v = 0; v < NV; v++) acc[i][v] += av * bv[v];
        }
    }
    for (int i = 0; i < MBx; i++) {
        vf add = splat(bias ? bias[m0 + i] : 0.0f);
        for (int v = 0; v < NV; v++) {
            vf out = acc[i][v];
            if (phase == 0 || phase == 3) out = out + add;
            stn(C + (size_t)(m0 + i) * ldc + cpos[v], out, rl[v]);
        }
    }
}

AI void conv_panel(float *C, size_t ldc, const float *a, int M, size_t K, const float *xp, const int32_t *koff,
                   const uint8_t *tapx, const vi (*mk)[IMCAP_FLAT_KMAX], const size_t *bpos, const size_t *cpos,
                   const int *rl, int k0, int k1, const float *bias, int phase, int NV) {
    int m0 = 0;
#define CB(MBx) conv_block(C, ldc, a, K, xp, koff, tapx, mk, bpos, cpos, rl, k0, k1, bias, phase, m0, MBx, NV)
    for (; m0 + GEMM_MB <= M; m0 += GEMM_MB) CB(GEMM_MB);
    switch (M - m0) {
#if GEMM_MB > 3
    case 3: CB(3); break;
#endif
#if GEMM_MB > 2
    case 2: CB(2); break;
#endif
    case 1: CB(1); break;
    default: break;
    }
#undef CB
}

/* one panel of nv vectors, unmasked (mk NULL) or masked */
AI void conv_panel_nv(float *C, size_t ldc, const float *a, int M, size_t K, const float *xp, const int32_t *koff,
                      const uint8_t *tapx, const vi (*mk)[IMCAP_FLAT_KMAX], const size_t *bpos, const size_t *cpos,
                      const int *rl, int k0, int k1, const float *bias, int phase, int nv) {
#define CP(NVx) conv_panel(C, ldc, a, M, K, xp, koff, tapx, mk, bpos, cpos, rl, k0, k1, bias, phase, NVx)
    switch (nv) {
    case GEMM_NV: CP(GEMM_NV); break;
#if GEMM_NV > 3
    case 3: CP(3); break;
#endif
#if GEMM_NV > 2
    case 2: CP(2); break;
#endif
    case 1: CP(1); break;
    default: break;
    }
#undef CP
}

/* A panel's inputs over every tap are a few rows of each channel, already
 * in L1, so k needs no slicing for their sake; the whole sum in one pass
 * keeps the partial sums out of C (a 32x1024 output is 128 KB, through L2
 * at every slice). Only weights too large to stay in L2 across the panels
 * are taken in slices of at most DIRECT_SLICE floats, equal in size: a
 * 64-tap slice (imcap_gemm's) costs a ResNet's 3x3 convs 12% (measured:
 * 87.5 against 99 GFLOP/s at 128 channels, 28 x 28), for the stores and
 * reloads of the running sums. Slicing never changes the bits. */
#define DIRECT_SLICE 131072
static int direct_kc(int M, int K) {
    size_t slices = ((size_t)M * K + DIRECT_SLICE - 1) / DIRECT_SLICE;
    return (int)(((size_t)K + slices - 1) / slices);
}

static void F(conv_direct)(float *C, size_t ldc, const float *a, int M, int K, const float *xp, const int32_t *koff,
                           int Wp, int Ho, int Wo, const float *bias) {
    int kc = direct_kc(M, K);
    for (int k0 = 0; k0 < K; k0 += kc) {
        int k1 = k0 + kc < K ? k0 + kc : K;
        int phase = K <= kc ? 0 : k0 == 0 ? 1 : k1 == K ? 3 : 2;
        int y = 0, x = 0;
        while (y < Ho) {
            size_t bpos[GEMM_NV], cpos[GEMM_NV];
            int rl[GEMM_NV], nv = 0;
            for (; nv < GEMM_NV && y < Ho; nv++) {
                bpos[nv] = (size_t)y * Wp + x, cpos[nv] = (size_t)y * Wo + x;
                rl[nv] = Wo - x < LANES ? Wo - x : LANES;
                if ((x += LANES) >= Wo) x = 0, y++;
            }
            conv_panel_nv(C, ldc, a, M, (size_t)K, xp, koff, NULL, NULL, bpos, cpos, rl, k0, k1, bias, phase, nv);
        }
    }
}

/* imcap_conv_direct_flat (simd.h): vectors of 16 consecutive pixels of the
 * whole map, across row ends; a lane whose tap column leaves the row is
 * masked to +0 (each vector's masks for the kw tap columns made once per
 * panel). */
static void F(conv_direct_flat)(float *C, size_t ldc, const float *a, int M, int K, const float *xp,
                                const int32_t *koff, const uint8_t *tapx, int kw, int pad, int Wo, int P,
                                const float *bias) {
    int kc = direct_kc(M, K);
    for (int k0 = 0; k0 < K; k0 += kc) {
        int k1 = k0 + kc < K ? k0 + kc : K;
        int phase = K <= kc ? 0 : k0 == 0 ? 1 : k1 == K ? 3 : 2;
        /* the vectors shared out evenly among the panels: 13 vectors (14 x 14)
         * as 4 + 3 + 3 + 3, not 4 + 4 + 4 + 1, whose last panel of one
         * vector would load a vector per four multiply-adds */
        int V = (P + LANES - 1) / LANES, np = (V + GEMM_NV - 1) / GEMM_NV;
        for (int i = 0, q0 = 0; i < np; i++) {
            int want = V / np + (i < V % np);
            size_t pos[GEMM_NV];
            int rl[GEMM_NV], nv = 0;
            vi mk[GEMM_NV][IMCAP_FLAT_KMAX];
            for (int q = q0; nv < want; nv++, q += LANES, q0 += LANES) {
                pos[nv] = (size_t)q, rl[nv] = P - q < LANES ? P - q : LANES;
                for (int kx = 0; kx < kw; kx++)
                    for (int l = 0; l < LANES; l++) {
                        int col = (q + l) % Wo + kx - pad;
                        mk[nv][kx][l] = col >= 0 && col < Wo ? -1 : 0;
                    }
            }
            conv_panel_nv(C, ldc, a, M, (size_t)K, xp, koff, tapx, (const vi(*)[IMCAP_FLAT_KMAX])mk, pos, pos, rl, k0,
                          k1, bias, phase, nv);
        }
    }
}

/* ---------------------------------------------------------------- attention */

/* w . tanh(p_i + q) over lanes k..k+r-1 (also stored in ti when given).
 * The loops call it with r = LANES, a constant that turns ldn into plain
 * loads in the hot path, and once with the tail's r. */
AI vf score_chunk(const float *pi, const float *q, const float *w, float *ti, int k, int r) {
    vf t = v_tanh(ldn(pi + k, r) + ldn(q + k, r));
    if (ti) stn(ti + k, t, r);
    return ldn(w + k, r) * t;
}

/* the backward's update of w, q and p_i over lanes k..k+r-1 */
AI void grad_chunk(float *dw, float *dq, float *dpi, const float *t, const float *w, vf dei, int k, int r) {
    vf tk = ldn(t + k, r), g = dei * ldn(w + k, r) * (1.0f - tk * tk);
    stn(dw + k, ldn(dw + k, r) + dei * tk, r);
    stn(dq + k, ldn(dq + k, r) + g, r);
    if (dpi) stn(dpi + k, ldn(dpi + k, r) + g, r);
}

static void F(attention_fused)(float *ctx, float *alpha, float *tanh_pq, const float *a, const float *p,
                               const float *q, const float *w, float b, int L, int A, int D) {
    /* scores, 16 cells at a time so that one reduce16 finishes them */
    for (int i0 = 0; i0 < L; i0 += 16) {
        int nc = L - i0 < 16 ? L - i0 : 16;
        vf acc[16];
        for (int j = 0; j < 16; j++) acc[j] = (vf){0};
        for (int j = 0; j < nc; j++) {
            const float *pi = p + (size_t)(i0 + j) * A;
            float *ti = tanh_pq ? tanh_pq + (size_t)(i0 + j) * A : NULL;
            int k = 0;
            for (; k + LANES <= A; k += LANES) acc[j] += score_chunk(pi, q, w, ti, k, LANES);
            if (k < A) acc[j] += score_chunk(pi, q, w, ti, k, A - k);
        }
        float e[16];
        st(e, reduce16(acc));
        for (int j = 0; j < nc; j++) alpha[i0 + j] = e[j] + b;
    }
    /* softmax over the L cells; lanes past L must add nothing to the sum */
    float m = alpha[0];
    for (int i = 1; i < L; i++) m = alpha[i] > m ? alpha[i] : m;
    const vi lane = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    vf sum = {0};
    for (int i = 0; i < L; i += LANES) {
        int r = lanes_left(L, i);
        vf e = sel(lane < r, v_exp(ldn(alpha + i, r) - m), splat(0.0f));
        stn(alpha + i, e, r);
        sum += e;
    }
    vf zero[16] = {sum};
    float s[16];
    st(s, reduce16(zero));
    float inv = 1.0f / s[0];
    for (int i = 0; i < L; i += LANES) {
        int r = lanes_left(L, i);
        stn(alpha + i, ldn(alpha + i, r) * inv, r);
    }
    /* ctx = sum_i alpha_i a_i, cells in order; up to eight vectors of d
     * at a time, so that eight chains of dependent multiply-adds overlap
     * (one at a time, each waited on the latency of the last) */
    for (int d0 = 0; d0 < D; d0 += 8 * LANES) {
        int left = D - d0, nv = left >= 8 * LANES ? 8 : (left + LANES - 1) / LANES;
        vf c[8];
        for (int v = 0; v < nv; v++) c[v] = (vf){0};
        for (int j = 0; j < L; j++) {
            const float *aj = a + (size_t)j * D + d0;
            for (int v = 0; v < nv; v++) c[v] += alpha[j] * ldn(aj + v * LANES, lanes_left(left, v * LANES));
        }
        for (int v = 0; v < nv; v++) stn(ctx + d0 + v * LANES, c[v], lanes_left(left, v * LANES));
    }
}

/* The attention's backward for one query (kernels.h documents the
 * arguments): de_i = dalpha_i + dctx . a_i, through the softmax, then into
 * w, b, q and p through tanh' = 1 - t^2. */
static void F(attention_backward)(float *da, float *dp, float *dq, float *dw, float *db, const float *dctx,
                                  const float *dalpha_extra, const float *a, const float *alpha, const float *tanh_pq,
                                  const float *w, int L, int A, int D, float *de) {
    for (int i0 = 0; i0 < L; i0 += 16) {
        int nc = L - i0 < 16 ? L - i0 : 16;
        vf acc[16];
        for (int j = 0; j < 16; j++) acc[j] = (vf){0};
        for (int j = 0; j < nc; j++) {
            const float *ai = a + (size_t)(i0 + j) * D;
            float *dai = da ? da + (size_t)(i0 + j) * D : NULL;
            vf al = splat(alpha[i0 + j]);
            for (int d = 0; d < D; d += LANES) {
                int r = lanes_left(D, d);
                vf g = ldn(dctx + d, r);
                acc[j] += g * ldn(ai + d, r);
                if (dai) stn(dai + d, ldn(dai + d, r) + al * g, r);
            }
        }
        float e[16];
        st(e, reduce16(acc));
        for (int j = 0; j < nc; j++) de[i0 + j] = e[j] + (dalpha_extra ? dalpha_extra[i0 + j] : 0.0f);
    }
    double dot = 0;
    for (int i = 0; i < L; i++) dot += (double)de[i] * alpha[i];
    float sum = 0;
    for (int i = 0; i < L; i++) {
        de[i] = alpha[i] * (de[i] - (float)dot);
        sum += de[i];
    }
    *db += sum;
    for (int i = 0; i < L; i++) {
        const float *t = tanh_pq + (size_t)i * A;
        float *dpi = dp ? dp + (size_t)i * A : NULL;
        vf dei = splat(de[i]);
        int k = 0;
        for (; k + LANES <= A; k += LANES) grad_chunk(dw, dq, dpi, t, w, dei, k, LANES);
        if (k < A) grad_chunk(dw, dq, dpi, t, w, dei, k, A - k);
    }
}

/* ---------------------------------------------------------------- max-pool */

/* One output row of 2x2 stride-2 windows over input rows r0, r1, sixteen
 * outputs at a time (even and odd columns split by one shuffle each). The
 * selects are maxpool.c's: without relu, strict > keeps the first maximum
 * and a NaN wins, the first NaN staying; with relu folded in, the largest
 * positive value or +0. */
AI vf take_v(vf m, vf x) { return sel((x > m) | ((x != x) & (m == m)), x, m); }
AI vf pool16(vf a0, vf a1, vf b0, vf b1, int relu) {
    const vi ev = {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30};
    const vi od = {1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31};
    vf a = shuffle2(a0, a1, ev), b = shuffle2(a0, a1, od);
    vf c = shuffle2(b0, b1, ev), d = shuffle2(b0, b1, od);
    if (relu) {
        vf m = (vf){0};
        m = sel(a > m, a, m), m = sel(b > m, b, m), m = sel(c > m, c, m), m = sel(d > m, d, m);
        return m;
    }
    return take_v(take_v(take_v(a, b), c), d);
}

static void F(pool2x2_row)(float *out, const float *r0, const float *r1, int Wo, int relu) {
    int ox = 0;
    for (; ox + LANES <= Wo; ox += LANES) {
        const float *p = r0 + 2 * ox, *q = r1 + 2 * ox;
        st(out + ox, pool16(ld(p), ld(p + LANES), ld(q), ld(q + LANES), relu));
    }
    if (ox < Wo) {
        int r = Wo - ox, n0 = 2 * r < LANES ? 2 * r : LANES, n1 = 2 * r - n0;
        const float *p = r0 + 2 * ox, *q = r1 + 2 * ox;
        vf a0 = ldn(p, n0), b0 = ldn(q, n0);
        vf a1 = n1 > 0 ? ld_part(p + LANES, n1) : (vf){0}, b1 = n1 > 0 ? ld_part(q + LANES, n1) : (vf){0};
        st_part(out + ox, pool16(a0, a1, b0, b1, relu), r);
    }
}

/* ---------------------------------------------------------------- LSTM cell */

static void F(lstm_cell)(float *h, float *c, float *tanh_c, float *gates, const float *c_prev, int N, int H) {
    for (int n = 0; n < N; n++) {
        float *gt = gates + (size_t)n * 4 * H;
        size_t off = (size_t)n * H;
        for (int j = 0; j < H; j += LANES) {
            int r = lanes_left(H, j);
            vf i = v_sigmoid(ldn(gt + j, r)), f = v_sigmoid(ldn(gt + H + j, r));
            vf g = v_tanh(ldn(gt + 2 * H + j, r)), o = v_sigmoid(ldn(gt + 3 * H + j, r));
            stn(gt + j, i, r), stn(gt + H + j, f, r), stn(gt + 2 * H + j, g, r), stn(gt + 3 * H + j, o, r);
            vf cc = f * ldn(c_prev + off + j, r) + i * g;
            vf tc = v_tanh(cc);
            stn(c + off + j, cc, r), stn(tanh_c + off + j, tc, r), stn(h + off + j, o * tc, r);
        }
    }
}

/* ---------------------------------------------------------------- optimiser */

/* sum of g_i^2 in double, 16 partial sums (one per lane), then the fixed tree */
static double F(sumsq)(const float *g, size_t n) {
    double acc[16] = {0};
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int l = 0; l < 16; l++) acc[l] += (double)g[i + l] * (double)g[i + l];
    for (int l = 0; i + (size_t)l < n; l++) acc[l] += (double)g[i + l] * (double)g[i + l];
    for (int w = 8; w >= 1; w /= 2)
        for (int l = 0; l < w; l++) acc[l] += acc[l + w];
    return acc[0];
}

/* One channel's moments for the in-domain descriptor (model/domain.h):
 * out = {mean, population std, mean |z|^3 (0 when std <= 1e-6), max}, and
 * u = v - mean. Every sum in 16 lanes, added in a fixed order. */
static void F(channel_moments)(const float *v, float *u, int n, float out[4]) {
    vf s = {0}, mx = splat(v[0]), q = {0}, c = {0};
    for (int i = 0; i < n; i += LANES) {
        int r = lanes_left(n, i);
        vf x = ldn(v + i, r); /* the tail's empty lanes are 0: they add nothing, but must not win the max */
        s += x;
        mx = sel(r < LANES ? lane_lt(r) & (x > mx) : x > mx, x, mx);
    }
    double sum = 0;
    float top = mx[0];
    for (int l = 0; l < LANES; l++) sum += s[l], top = mx[l] > top ? mx[l] : top;
    float m = (float)(sum / n);
    vf mv = splat(m);
    for (int i = 0; i < n; i += LANES) {
        int r = lanes_left(n, i);
        vf d = ldn(v + i, r) - mv;
        if (r < LANES) d = sel(lane_lt(r), d, (vf){0}); /* not -m in the empty lanes */
        stn(u + i, d, r);
        q += d * d;
    }
    double ss = 0;
    for (int l = 0; l < LANES; l++) ss += q[l];
    float sd = (float)__builtin_sqrt(ss / n), inv = sd > 1e-6f ? 1.0f / sd : 0.0f;
    vf iv = splat(inv);
    const vi sign = splat_i(0x7fffffff);
    for (int i = 0; i < n; i += LANES) {
        int r = lanes_left(n, i);
        vf z = (vf)((vi)ldn(u + i, r) & sign) * iv; /* empty lanes load 0 */
        c += z * z * z;
    }
    double cube = 0;
    for (int l = 0; l < LANES; l++) cube += c[l];
    out[0] = m, out[1] = sd, out[2] = (float)(cube / n), out[3] = top;
}

/* AdamW's update, elementwise (meson adds -fno-math-errno so that sqrtf
 * vectorises; it is correctly rounded either way) */
static void F(adam_update)(float *p, const float *g, float *m, float *v, size_t n, float scale, float beta1,
                           float beta2, float step_size, float inv_bc2, float eps, float lr_wd) {
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] * scale;
        m[i] = beta1 * m[i] + (1.0f - beta1) * gi;
        v[i] = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        float denom = __builtin_sqrtf(v[i] * inv_bc2) + eps;
        p[i] -= step_size * m[i] / denom + lr_wd * p[i];
    }
}

/* ------------------------------------------------- Winograd's transforms */

/* imcap_winograd_in (simd.h): V_xi[c][t] for the tiles of tile rows
 * [i0, i1) of every channel. Their padded input rows 2 i0 .. 2 i1 + 1, each
 * row's horizontal transform over the columns 2j..2j+3 (16 tiles at a
 * time, the last ones masked: the row's even and odd columns split by one
 * shuffle each), then the
 * vertical one over rows 2i..2i+3. Additions only, so every build gives
 * the same bits. */
static void F(winograd_in)(float *restrict V, const float *in, int C, int H, int W, int i0, int i1,
                           float *restrict plane, float *restrict h) {
    const vi ev = {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30};
    const vi od = {1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31};
    int tw = (W + 1) / 2, Wp = 2 * tw + 2, rows = 2 * (i1 - i0) + 2; /* an odd map: one more zero column, row */
    size_t T = (size_t)(i1 - i0) * tw, CT = (size_t)C * T;
    memset(plane, 0, (size_t)rows * Wp * sizeof(float));
    for (int c = 0; c < C; c++) {
        const float *x = in + (size_t)c * H * W;
        for (int y = 0; y < rows; y++) { /* padded row 2 i0 + y is input row 2 i0 + y - 1; the others stay 0 */
            int sy = 2 * i0 + y - 1;
            if (sy >= 0 && sy < H) memcpy(plane + (size_t)y * Wp + 1, x + (size_t)sy * W, W * sizeof(float));
        }
        for (int y = 0; y < rows; y++) {
            const float *r = plane + (size_t)y * Wp;
            float *h0 = h + (size_t)y * 4 * tw, *h1 = h0 + tw, *h2 = h1 + tw, *h3 = h2 + tw;
            for (int j = 0; j < tw; j += LANES) {
                /* n tiles read r[2j .. 2j + 2n + 1]: the row's end when n < 16 */
                int n = lanes_left(tw, j), e = 2 * n + 2, ea = e < LANES ? e : LANES, e2 = e - 2 < LANES ? e - 2 : LANES;
                vf a = ldn(r + 2 * j, ea), b = ldn(r + 2 * j + LANES, e - ea), a2 = ldn(r + 2 * j + 2, e2),
                   b2 = ldn(r + 2 * j + 2 + LANES, e - 2 - e2);
                vf x0 = shuffle2(a, b, ev), x1 = shuffle2(a, b, od), x2 = shuffle2(a2, b2, ev),
                   x3 = shuffle2(a2, b2, od);
                stn(h0 + j, x0 - x2, n), stn(h1 + j, x1 + x2, n), stn(h2 + j, x2 - x1, n), stn(h3 + j, x1 - x3, n);
            }
        }
        for (int i = 0; i < i1 - i0; i++) {
            const float *r0 = h + (size_t)(2 * i) * 4 * tw, *r1 = r0 + 4 * tw, *r2 = r1 + 4 * tw, *r3 = r2 + 4 * tw;
            float *v = V + (size_t)c * T + (size_t)i * tw;
            for (int b = 0; b < 4; b++) {
                const float *a0 = r0 + b * tw, *a1 = r1 + b * tw, *a2 = r2 + b * tw, *a3 = r3 + b * tw;
                float *v0 = v + (size_t)b * CT, *v1 = v0 + 4 * CT, *v2 = v1 + 4 * CT, *v3 = v2 + 4 * CT;
                for (int j = 0; j < tw; j += LANES) {
                    int n = lanes_left(tw, j);
                    vf p0 = ldn(a0 + j, n), p1 = ldn(a1 + j, n), p2 = ldn(a2 + j, n), p3 = ldn(a3 + j, n);
                    stn(v0 + j, p0 - p2, n), stn(v1 + j, p1 + p2, n), stn(v2 + j, p2 - p1, n), stn(v3 + j, p1 - p3, n);
                }
            }
        }
    }
}

/* imcap_winograd_out (simd.h): out[o][2i+r][2j+s] = (A^T m A)[r][s] + bias[o],
 * A^T = [1 1 1 0; 0 1 -1 -1], for the tiles of tile rows [i0, i1) from Mt
 * [16][T][O]: 16 outputs at a time, each lane's four values stored into
 * its own output plane. */
static void F(winograd_out)(float *restrict out, const float *Mt, const float *bias, int O, int H, int W, int i0,
                            int i1) {
    int tw = (W + 1) / 2;
    size_t T = (size_t)(i1 - i0) * tw, TO = T * O, HW = (size_t)H * W;
    for (size_t t = 0; t < T; t++) {
        size_t i = i0 + t / tw, j = t % tw;
        int right = 2 * (int)j + 1 < W, below = 2 * (int)i + 1 < H; /* an odd map's last tiles are cut */
        float *y = out + 2 * i * W + 2 * j;
        const float *m = Mt + t * O;
        for (int o = 0; o < O; o += LANES) {
            int n = lanes_left(O, o);
#define MV(a, c) ldn(m + (size_t)(4 * (a) + (c)) * TO + o, n)
            vf s00 = MV(0, 0) + MV(1, 0) + MV(2, 0), s01 = MV(0, 1) + MV(1, 1) + MV(2, 1);
            vf s02 = MV(0, 2) + MV(1, 2) + MV(2, 2), s03 = MV(0, 3) + MV(1, 3) + MV(2, 3);
            vf s10 = MV(1, 0) - MV(2, 0) - MV(3, 0), s11 = MV(1, 1) - MV(2, 1) - MV(3, 1);
            vf s12 = MV(1, 2) - MV(2, 2) - MV(3, 2), s13 = MV(1, 3) - MV(2, 3) - MV(3, 3);
#undef MV
            vf b = bias ? ldn(bias + o, n) : (vf){0};
            vf y00 = s00 + s01 + s02 + b, y01 = s01 - s02 - s03 + b;
            vf y10 = s10 + s11 + s12 + b, y11 = s11 - s12 - s13 + b;
            if (right && below)
                for (int l = 0; l < n; l++) {
                    float *p = y + (size_t)(o + l) * HW;
                    p[0] = y00[l], p[1] = y01[l], p[W] = y10[l], p[W + 1] = y11[l];
                }
            else
                for (int l = 0; l < n; l++) {
                    float *p = y + (size_t)(o + l) * HW;
                    p[0] = y00[l];
                    if (right) p[1] = y01[l];
                    if (below) p[W] = y10[l];
                }
        }
    }
}

const imcap_simd_ops F(imcap_simd_ops) = {
    .sumsq = F(sumsq),
    .channel_moments = F(channel_moments),
    .adam_update = F(adam_update),
    .name = STR(IMCAP_SIMD_NAME),
    .vexp = F(vexp),
    .vtanh = F(vtanh),
    .vsigmoid = F(vsigmoid),
    .rows_affine = F(rows_affine),
    .gemm = F(gemm),
    .gemm_p = F(gemm_p),
    .conv_direct = F(conv_direct),
    .conv_direct_flat = F(conv_direct_flat),
    .attention_fused = F(attention_fused),
    .attention_backward = F(attention_backward),
    .lstm_cell = F(lstm_cell),
    .pool2x2_row = F(pool2x2_row),
    .winograd_in = F(winograd_in),
    .winograd_out = F(winograd_out),
};
