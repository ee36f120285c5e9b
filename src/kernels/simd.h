/* simd.h — the decoder's hot loops, vectorised for AVX-512 and AVX2 (+FMA)
 * and chosen at run time from the CPU, with a portable fallback.
 *
 * Every function is compiled three times from simd_impl.c (meson builds it
 * with -mavx512f..., with -mavx2 -mfma, and with no flags) and simd.c picks
 * one per call from __builtin_cpu_supports. All three run the same
 * operations on 16 lanes in the same order, so:
 *
 *   - the AVX-512 and the AVX2+FMA builds give identical bits; the portable
 *     build differs only where the others fuse a multiply-add (last bits);
 *   - a row's result never depends on how many rows are computed with it
 *     (imcap_rows_affine reduces each (row, output) pair in a fixed order,
 *     whatever the blocking), which is what lets imcap decode many images
 *     together and still produce exactly the captions of one-at-a-time.
 *
 * Accuracy of the elementwise functions over every float in [-100, 100],
 * measured by tests/test_simd.c, Test(simd_accuracy, exp | tanh | sigmoid),
 * run with IMCAP_SIMD_EXHAUSTIVE=1 (the default run samples 26 million of
 * those floats and asserts these maxima plus a small margin). Errors against
 * the truth computed in double, in ulps of glibc's float result (expf, tanhf,
 * 1 / (1 + expf(-x))); the worst of the three builds:
 *   imcap_vexp      Cephes' expf: max relative error 1.01 ulp (glibc's expf:
 *                   0.50), never more than 1 ulp from expf; absolute error
 *                   5.0e-8 at most for x <= 0. 0 below -87.34 (libm:
 *                   subnormals down to -103.97), +inf above 88.38 (libm:
 *                   88.72), NaN stays NaN
 *   imcap_vtanh     a rational minimax fit (Eigen's: odd degree 13 over even
 *                   degree 6) on |x| < 7.905, x itself below 0.0004, +-1 from
 *                   9 on: max 4.37 ulp for |x| < 0.625, 4.90 ulp above (glibc's
 *                   tanhf: 2.19), never more than 5 ulp from tanhf; max
 *                   absolute error 2.9e-7 (near |x| = 5.1). 2.4x faster than
 *                   the exp-based form (0.32 against 0.77 ns per value here),
 *                   and the attention evaluates 8,192 of them per row and step
 *   imcap_vsigmoid  1 / (1 + e^-x): max relative error 2.48 ulp where the
 *                   result is >= FLT_MIN (the same formula with glibc's expf:
 *                   2.48 too), never more than 4 ulp from it; max absolute
 *                   error 8.9e-8; 0 below -88.38 (e^-x overflows)
 * The portable build's results are within 1 (exp), 8 (tanh), 4 (sigmoid)
 * ulp of the AVX builds' (tanh: 6.9 ulp from the truth, 4.1e-7 absolute).
 */
#ifndef IMCAP_SIMD_H
#define IMCAP_SIMD_H
#include <stddef.h>
#include <stdint.h>

void imcap_vexp(float *y, const float *x, size_t n);
void imcap_vtanh(float *y, const float *x, size_t n);
void imcap_vsigmoid(float *y, const float *x, size_t n);

/* One input segment of a product: rows of w (stride ldw) against rows of x
 * (stride ldx), k columns each. */
typedef struct {
    const float *w;
    size_t ldw;
    const float *x;
    size_t ldx;
    int k;
} imcap_mm_seg;

/* y[n * ldy + o] = sum_s sum_k seg[s].w[o*ldw + k] * seg[s].x[n*ldx + k] + (b0[o] + b1[o])
 * for n < N, o < M; b0, b1 may be NULL. Several segments make one product
 * over their concatenated inputs (the LSTM's [E y; z; h]) without copying
 * the weights side by side. Reads each weight once per block of rows and
 * never repacks: the cost of one row is a pass over the weights (gemv). */
void imcap_rows_affine(float *y, size_t ldy, int N, int M, const imcap_mm_seg *seg, int nseg, const float *b0,
                       const float *b1);

/* y[n * ldy + o] += sum_s sum_k seg[s].w[o*ldw + k] * seg[s].x[n*ldx + k]
 * (the sum formed first, then added): gradients of weights in dot form. */
void imcap_rows_affine_acc(float *y, size_t ldy, int N, int M, const imcap_mm_seg *seg, int nseg);

/* Adam's two loops: the squared norm of g (in double, a fixed order) and
 * AdamW's elementwise update (see train/adam.c for the formula). */
double imcap_sumsq(const float *g, size_t n);
/* One channel's moments for the in-domain descriptor (model/domain.h): out =
 * {mean, population std, mean |z|^3 (0 when std <= 1e-6), max} of v[0..n),
 * u = v - mean; sums in 16 lanes in a fixed order. */
void imcap_channel_moments(const float *v, float *u, int n, float out[4]);
void imcap_adam_update(float *p, const float *g, float *m, float *v, size_t n, float scale, float beta1, float beta2,
                       float step_size, float inv_bc2, float eps, float lr_wd);

/* The product in outer form, for the convolutions and the backward passes:
 *   C[m*ldc + n] = (accumulate ? C[m*ldc + n] : 0) + (sum_k A(m,k) B[k*ldb + n] + bias[m])
 * with A(m,k) = a[m*ars + k*acs] (so A or its transpose, any layout) and
 * bias NULL or [M]. Every output is summed over k in order: a column's value
 * never depends on N (how many pixels or images share the call), on the
 * blocking or on the AVX build. Reads B's rows as vectors; never packs.
 * C must not overlap A or B (partial sums go through C).
 * Convolution: C = out [O,P], A = w [O,K] (ars K, acs 1), B = im2col [K,P]. */
void imcap_gemm(float *C, size_t ldc, const float *a, size_t ars, size_t acs, const float *B, size_t ldb, int M, int N,
                int K, const float *bias, int accumulate);

/* An affine map of N rows with the weights of M outputs over K inputs
 * stored in panels (as imcap_decoder_pack lays them out at load):
 *   y[n*ldy + o] = sum_k x[n*ldx + k] W(o, k) + bias[o]   (bias may be NULL)
 * for n < N, o < M, with W(o, k) = wp[(o / IMCAP_PANEL) * IMCAP_PANEL * K
 * + k * IMCAP_PANEL + o % IMCAP_PANEL]: the outputs in groups of
 * IMCAP_PANEL, each group's weights one contiguous [K, IMCAP_PANEL] block
 * (the last group padded; imcap_panel_floats(M, K) floats in all). A row's
 * product then streams each block front to back, where a plain transposed
 * [K, M] matrix would read 256 bytes per 4 KB page and defeat the
 * prefetchers. imcap_gemm with the rows as A: each output summed over k in
 * order (so a row's values do not depend on N or on the other rows), the
 * weights read as vectors along the outputs and reused by up to four rows
 * at once; one row is a gemv at the speed of the weight stream. */
#define IMCAP_PANEL 64
void imcap_affine_p(float *y, size_t ldy, int N, int M, const float *x, size_t ldx, const float *wp, int K,
                    const float *bias);
size_t imcap_panel_floats(int M, int K);
/* imcap_gemm with B in panels (N outputs over K, as imcap_affine_p's
 * weights) and a bias along the columns (bcol [N] or NULL):
 *   C[m*ldc + n] = sum_k A(m,k) B(k,n) + bcol[n],  A(m,k) = a[m*ars + k*acs]
 * each output summed over k in order, as imcap_gemm sums it. A convolution
 * whose output has too few pixels to fill 16-lane vectors (7 x 7) runs
 * transposed through it: C = out^T [P,O], A = im2col^T (ars 1, acs its row
 * stride), B = w^T, so its vectors run along the outputs instead, with the
 * bits of imcap_gemm(out, w, im2col). */
void imcap_gemm_p(float *C, size_t ldc, const float *a, size_t ars, size_t acs, const float *wp, int M, int N, int K,
                  const float *bcol);
/* imcap_gemm_p over k in [k0, k1) only (K is still the panels' full
 * depth): each output's sum starts from C's value (load) or from zero, and
 * bcol is added at the end only if finish. Splitting a product at any k
 * (the first part without finish, the second with load) gives the bits of
 * imcap_gemm_p: a sum over k in order, continued. The decoder keeps the
 * first part of the LSTM gates, over the embedding, per word. */
void imcap_gemm_p_range(float *C, size_t ldc, const float *a, size_t ars, size_t acs, const float *wp, int M, int N,
                        int K, int k0, int k1, int load, int finish, const float *bcol);
/* Puts w [out, in] (row-major, as the model file stores a weight) at
 * outputs o0.. and inputs k0.. of the paneled K-input matrix wp. */
void imcap_panel_put(float *wp, int K, int o0, int k0, const float *w, int out, int in);

/* A stride-1 convolution straight from its zero-padded input, without
 * im2col: xp [Cin][Hp][Wp] (the input with its padding in place), and
 * koff[k] the offset in xp of tap k = (c*kh + ky)*kw + kx (c*Hp*Wp + ky*Wp
 * + kx); output pixel (y, x) of tap k is xp[koff[k] + y*Wp + x], and
 *   C[m*ldc + y*Wo + x] = sum_k a[m*K + k] xp[koff[k] + y*Wp + x] + bias[m]
 * for m < M, y < Ho, x < Wo. The same fused multiply-adds in the same order
 * as imcap_gemm over the im2col matrix, so the same bits. Reads up to 15
 * floats past the last tap's last input: xp needs that many readable
 * floats after it (their values never reach C). */
void imcap_conv_direct(float *C, size_t ldc, const float *a, int M, int K, const float *xp, const int32_t *koff, int Wp,
                       int Ho, int Wo, const float *bias);

/* A stride-1 "same" convolution (Wo = W) whose vectors run on across row
 * ends: a map of 14 x 14 fills 13 vectors of 16 instead of 14 of which two
 * lanes in eight idle. xp holds the input with its pad zero rows above and
 * below each channel and no side padding (rows Wo apart, channels
 * plane = (H + 2 pad) Wo apart), shifted so that output q of tap
 * k = (c*kw + ky)*kw + kx reads xp[koff[k] + q], koff[k] = c*plane +
 * ky*Wo + kx; tapx[k] = kx. A lane whose column x = q % Wo reads outside
 * the row (x + kx - pad outside [0, Wo)) takes +0 instead:
 *   C[m*ldc + q] = sum_k a[m*K + k] (inside ? xp[koff[k] + q] : 0) + bias[m]
 * for q < P = Ho*Wo, kw <= IMCAP_FLAT_KMAX: the bits of imcap_gemm over the
 * im2col matrix. Reads xp[koff[k] + q] for q up to P rounded up to 16. */
#define IMCAP_FLAT_KMAX 8
void imcap_conv_direct_flat(float *C, size_t ldc, const float *a, int M, int K, const float *xp, const int32_t *koff,
                            const uint8_t *tapx, int kw, int pad, int Wo, int P, const float *bias);

/* Soft attention for one query, fused: e_i = w . tanh(p_i + q) + b,
 * alpha = softmax(e), ctx = sum_i alpha_i a_i. tanh_pq [L,A] receives the
 * tanh values when non-NULL (training keeps them for the backward);
 * inference passes NULL and no per-cell value is stored. */
void imcap_attention_fused(float *ctx, float *alpha, float *tanh_pq, const float *a, const float *p, const float *q,
                           const float *w, float b, int L, int A, int D);

/* imcap_attention_backward's body (kernels.h), vectorised. */
void imcap_attention_backward_simd(float *da, float *dp, float *dq, float *dw, float *db, const float *dctx,
                                   const float *dalpha_extra, const float *a, const float *alpha,
                                   const float *tanh_pq, const float *w, int L, int A, int D, float *scratch);

/* The LSTM cell's pointwise part: gates [N,4H] hold the pre-activations
 * (i, f, g, o) and receive the activations; c, tanh_c, h [N,H]. */
void imcap_lstm_cell(float *h, float *c, float *tanh_c, float *gates, const float *c_prev, int N, int H);

/* One output row of a 2x2 stride-2 max-pool over input rows r0, r1 (2*Wo
 * values each), with maxpool.c's rules (ties: the first; a NaN wins);
 * relu: the ReLU folded in (the largest positive value, else +0). */
void imcap_pool2x2_row(float *out, const float *r0, const float *r1, int Wo, int relu);

/* Which build simd.c dispatches to: "avx512", "avx2" or "generic". */
const char *imcap_simd_name(void);
/* Winograd F(2x2, 3x3)'s transforms (winograd.c has the products), for
 * in [C,H,W] and out [O,H,W], over the T = (i1 - i0) * tw tiles of tile
 * rows [i0, i1) (tile (i, j): outputs 2i..2i+1, 2j..2j+1; tw = ceil(W/2),
 * an odd map's last tiles cut): V [16][C][T] = B^T d B of each channel's
 * tiles (plane: (2 (i1 - i0) + 2)(2 tw + 2) floats, h: (2 (i1 - i0) + 2)
 * * 4 tw floats of scratch), and out = A^T m A (+ bias[o]) from the
 * transposed products Mt [16][T][O].
 * Additions only: the same bits on every build. */
void imcap_winograd_in(float *V, const float *in, int C, int H, int W, int i0, int i1, float *plane, float *h);
void imcap_winograd_out(float *out, const float *Mt, const float *bias, int O, int H, int W, int i0, int i1);

#endif
