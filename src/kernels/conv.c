/* conv.c — 2-D convolution as im2col + one product (imcap_gemm) over every image. */
#include <string.h>

#include "kernels.h"
#include "simd.h"

/* The im2col matrix's rows are COL_PAD floats longer than its n*P columns:
 * with P a power of two (64x64, 32x32... outputs) rows a power of two apart
 * fall into the same L1 sets, and the product's reads down a column panel
 * evict each other (measured: the products ran at 40% of the FMA peak). */
#define COL_PAD 16
static size_t col_ld(size_t NP) { return NP + COL_PAD; }

size_t imcap_conv2d_col_size(int C, int k, int Ho, int Wo) { return (size_t)C * k * k * ((size_t)Ho * Wo + COL_PAD); }

/* The outputs o in [*lo, *hi) whose input o*s - pad + kk lies in [0, n); the
 * ones before lo and from hi on read the zero padding. Computed once per
 * kernel offset, so the copy loops below need no bounds check per element. */
static void inside(int kk, int s, int pad, int n, int n_out, int *lo, int *hi) {
    int first = pad - kk, last = n - 1 + pad - kk; /* o*s must lie in [first, last] */
    int l = first <= 0 ? 0 : (first + s - 1) / s;
    int h = last < 0 ? 0 : last / s + 1;
    if (h > n_out) h = n_out;
    if (l > h) l = h;
    *lo = l, *hi = h;
}

/* The zeros left and right of a row: at most pad elements, so a call to
 * memset (what the compiler makes of a loop) would cost more than the
 * stores. */
static inline void zero_few(float *d, int n) {
    switch (n) {
    case 2: d[1] = 0.0f; /* fallthrough */
    case 1: d[0] = 0.0f; /* fallthrough */
    case 0: return;
    default: memset(d, 0, (size_t)n * sizeof *d);
    }
}

/* One image: col[(c*k + ky)*k + kx][oy*Wo + ox] = in[c][oy*s - pad + ky][ox*s - pad + kx]
 * (0 outside). Row r of col starts at col + r*ldc (ldc = n*Ho*Wo when n
 * images share the matrix); channel c of the image starts at in + c*in_ch. */
static void im2col(float *col, size_t ldc, const float *in, size_t in_ch, int C, int H, int W, int k, int s, int pad,
                   int Ho, int Wo) {
    for (int c = 0; c < C; c++) {
        const float *plane = in + (size_t)c * in_ch;
        for (int ky = 0; ky < k; ky++) {
            int ylo, yhi;
            inside(ky, s, pad, H, Ho, &ylo, &yhi);
            for (int kx = 0; kx < k; kx++) {
                int xlo, xhi;
                inside(kx, s, pad, W, Wo, &xlo, &xhi);
                int nx = xhi - xlo, shift = kx - pad; /* input column = ox*s + shift */
                float *row = col + ((size_t)(c * k + ky) * k + kx) * ldc;
                memset(row, 0, (size_t)ylo * Wo * sizeof *row);
                memset(row + (size_t)yhi * Wo, 0, (size_t)(Ho - yhi) * Wo * sizeof *row);
                if (ylo == yhi) continue;
                const float *src = plane + (size_t)(ylo * s - pad + ky) * W; /* input row of output row ylo */
                if (s == 1 && Wo == W) {
                    /* a "same" conv: output rows ylo..yhi-1 read consecutive
                     * input rows with the same width, so the whole band is one
                     * copy shifted by `shift`; the few columns that belong to
                     * the padding are zeroed after it */
                    float *dst = row + (size_t)ylo * Wo;
                    size_t rows = (size_t)(yhi - ylo), len = rows * W, a = (size_t)(shift < 0 ? -shift : shift);
                    if (a < len) {
                        if (shift >= 0) memcpy(dst, src + a, (len - a) * sizeof *dst);
                        else memcpy(dst + a, src, (len - a) * sizeof *dst);
                    }
                    /* column by column: one strided store per row, no per-row branches */
                    for (int ox = 0; ox < xlo; ox++)
                        for (size_t r = 0; r < rows; r++) dst[r * Wo + ox] = 0.0f;
                    for (int ox = xhi; ox < Wo; ox++)
                        for (size_t r = 0; r < rows; r++) dst[r * Wo + ox] = 0.0f;
                    continue;
                }
                src += xlo * s + shift;
                for (int oy = ylo; oy < yhi; oy++, src += (size_t)s * W) {
                    float *dst = row + (size_t)oy * Wo;
                    zero_few(dst, xlo);
                    if (s == 1)
                        memcpy(dst + xlo, src, (size_t)nx * sizeof *dst);
                    else
                        for (int i = 0; i < nx; i++) dst[xlo + i] = src[(size_t)i * s];
                    zero_few(dst + xhi, Wo - xhi);
                }
            }
        }
    }
}

/* The adjoint of im2col: din[c][iy][ix] += every col entry that copied it.
 * Each element receives its terms in (ky, kx) order, as the bounds-checked
 * loop it replaces did, so gradients keep their bits. */
static void col2im_add(float *din, size_t in_ch, const float *col, size_t ldc, int C, int H, int W, int k, int s,
                       int pad, int Ho, int Wo) {
    for (int c = 0; c < C; c++) {
        float *plane = din + (size_t)c * in_ch;
        for (int ky = 0; ky < k; ky++) {
            int ylo, yhi;
            inside(ky, s, pad, H, Ho, &ylo, &yhi);
            for (int kx = 0; kx < k; kx++) {
                int xlo, xhi;
                inside(kx, s, pad, W, Wo, &xlo, &xhi);
                int nx = xhi - xlo, x0 = xlo * s - pad + kx;
                const float *row = col + ((size_t)(c * k + ky) * k + kx) * ldc;
                for (int oy = ylo; oy < yhi; oy++) {
                    float *dst = plane + (size_t)(oy * s - pad + ky) * W + x0;
                    const float *src = row + (size_t)oy * Wo + xlo;
                    if (s == 1)
                        for (int i = 0; i < nx; i++) dst[i] += src[i];
                    else
                        for (int i = 0; i < nx; i++) dst[(size_t)i * s] += src[i];
                }
            }
        }
    }
}

/* A 1x1 stride-1 unpadded conv whose images follow each other within a
 * channel needs no im2col: the input already is the [C, n*P] matrix, rows
 * in_ch apart (a group of a [C,N,H,W] batch as well as the whole). */
static int input_is_col(size_t in_img, size_t in_ch, int n, int H, int W, int k, int s, int pad) {
    (void)in_ch;
    return k == 1 && s == 1 && pad == 0 && (n == 1 || in_img == (size_t)H * W);
}

static const float *build_col(float *col, const float *in, size_t in_img, size_t in_ch, int n, int C, int H, int W,
                              int k, int s, int pad, int Ho, int Wo) {
    if (input_is_col(in_img, in_ch, n, H, W, k, s, pad)) return in;
    size_t P = (size_t)Ho * Wo, ldc = col_ld((size_t)n * P);
    for (int j = 0; j < n; j++) im2col(col + j * P, ldc, in + j * in_img, in_ch, C, H, W, k, s, pad, Ho, Wo);
    return col;
}

/* Images per product: as many as keep the group's im2col matrix within
 * about 1 MB, so that it is still in L2 when the product reads it (one
 * product over a whole training batch streams tens of MB through memory).
 * Columns are summed alone (imcap_gemm), so the grouping changes no bits of
 * the forward; the weight gradient adds the groups' sums in order. */
static int group_size(int n, int K, int P) {
    long g = (256L * 1024) / ((long)K * P);
    return g < 1 ? 1 : g > n ? n : (int)g;
}

size_t imcap_conv2d_col_size_n(int n, int C, int k, int Ho, int Wo) {
    int K = C * k * k, P = Ho * Wo;
    return (size_t)K * ((size_t)group_size(n, K, P) * P + COL_PAD);
}

/* The direct convolution (imcap_conv_direct) replaces im2col's copy of
 * every input k*k times by one zero-padded copy. It needs rows that fill
 * most of their 16-lane vectors: a narrow map (8 wide, 7 wide) would leave
 * half the lanes idle, and there im2col's matrix, whose columns run on
 * across rows and images, keeps the vectors full. A strided conv takes its
 * input split into phases (conv_direct_strided), which pays only with full
 * vectors (measured, 3x3 stride 2: 28 wide 84 GFLOP/s direct against 96 by
 * im2col; ResNet's 7x7 stem, 112 wide: 97 against 58); k > stride keeps
 * the phases smaller than the im2col matrix whose scratch they use. */
static int use_direct(int k, int stride, int Wo) {
    int vectors = (Wo + 15) / 16;
    if (stride > 1) return k > stride && Wo % 16 == 0;
    return k > 1 && Wo >= 14 && 8 * Wo >= 7 * 16 * vectors;
}

/* Floats of scratch conv_direct_image needs: the phases, 16 readable floats
 * after them, the tap offsets. */
static size_t direct_scratch(int C, int H, int W, int k, int s, int pad) {
    size_t Hq = (size_t)(H + 2 * pad + s - 1) / s, Wq = (size_t)(W + 2 * pad + s - 1) / s;
    return (size_t)C * s * s * Hq * Wq + 16 + (size_t)C * k * k;
}

/* A strided conv reads every s-th input of a row, which no vector load
 * does. Split into s x s phases, phase (py, px) of channel c holding the
 * padded input's [y*s + py][x*s + px] at [y][x] (Hq x Wq), output (oy, ox)
 * of tap (c, ky, kx) is phase (ky % s, kx % s) of c at (oy + ky/s,
 * ox + kx/s): consecutive outputs read consecutive floats, and the taps
 * keep im2col's order, so the bits are the im2col product's. */
static void conv_direct_strided(float *out, size_t ld, const float *in, size_t in_ch, const float *w, const float *b,
                                int C, int H, int W, int O, int k, int s, int pad, float *scratch) {
    int Hp = H + 2 * pad, Wp = W + 2 * pad, Ho = (Hp - k) / s + 1, Wo = (Wp - k) / s + 1, K = C * k * k;
    int Hq = (Hp + s - 1) / s, Wq = (Wp + s - 1) / s;
    size_t plane = (size_t)Hq * Wq, padded = (size_t)C * s * s * plane + 16;
    float *xp = scratch;
    int32_t *koff = (int32_t *)(scratch + padded);
    memset(xp, 0, padded * sizeof *xp);
    for (int c = 0; c < C; c++)
        for (int y = 0; y < H; y++) {
            int py = (y + pad) % s, yq = (y + pad) / s;
            const float *src = in + (size_t)c * in_ch + (size_t)y * W;
            for (int px = 0; px < s; px++) {
                int x0 = ((px - pad) % s + s) % s; /* the first x with (x + pad) % s == px */
                float *dst = xp + ((size_t)(c * s + py) * s + px) * plane + (size_t)yq * Wq + (x0 + pad) / s;
                for (int x = x0, i = 0; x < W; x += s, i++) dst[i] = src[x];
            }
        }
    for (int c = 0, t = 0; c < C; c++)
        for (int ky = 0; ky < k; ky++)
            for (int kx = 0; kx < k; kx++)
                koff[t++] = (int32_t)(((size_t)(c * s + ky % s) * s + kx % s) * plane + (size_t)(ky / s) * Wq + kx / s);
    imcap_conv_direct(out, ld, w, O, K, xp, koff, Wq, Ho, Wo, b);
}

/* The padded copy of one image, its tap offsets after it; fits in the
 * im2col scratch (C (H+2p)(W+2p) + 16 + K floats against K (P + COL_PAD)). */
static void conv_direct_image(float *out, size_t ld, const float *in, size_t in_ch, const float *w, const float *b,
                              int C, int H, int W, int O, int k, int s, int pad, float *scratch) {
    if (s > 1) {
        conv_direct_strided(out, ld, in, in_ch, w, b, C, H, W, O, k, s, pad, scratch);
        return;
    }
    int Hp = H + 2 * pad, Wp = W + 2 * pad, Ho = Hp - k + 1, Wo = Wp - k + 1, K = C * k * k;
    size_t plane = (size_t)Hp * Wp, padded = (size_t)C * plane + 16;
    float *xp = scratch;
    int32_t *koff = (int32_t *)(scratch + padded);
    for (int c = 0; c < C; c++) {
        float *dst = xp + (size_t)c * plane;
        const float *src = in + (size_t)c * in_ch;
        memset(dst, 0, (size_t)pad * Wp * sizeof *dst);
        for (int y = 0; y < H; y++) {
            float *row = dst + (size_t)(y + pad) * Wp;
            zero_few(row, pad);
            memcpy(row + pad, src + (size_t)y * W, (size_t)W * sizeof *row);
            zero_few(row + pad + W, pad);
        }
        memset(dst + (size_t)(H + pad) * Wp, 0, (size_t)pad * Wp * sizeof *dst);
    }
    memset(xp + (size_t)C * plane, 0, 16 * sizeof *xp);
    for (int c = 0, t = 0; c < C; c++)
        for (int ky = 0; ky < k; ky++)
            for (int kx = 0; kx < k; kx++) koff[t++] = (int32_t)((size_t)c * plane + (size_t)ky * Wp + kx);
    imcap_conv_direct(out, ld, w, O, K, xp, koff, Wp, Ho, Wo, b);
}

/* The flat direct convolution (imcap_conv_direct_flat) for a stride-1
 * "same" conv: its vectors run on across row ends, so a 14- or 28-wide map
 * fills every lane (ResNet-50's 3x3 convs at 56 and 28 wide: 99 -> 108-110
 * GFLOP/s, 14 wide: 98 -> 102, measured here) where rows of
 * their own fill 7 in 8. Taken when it fills more lanes than rows do. */
static int use_flat(int k, int stride, int pad, int H, int W) {
    if (stride != 1 || k < 2 || k > IMCAP_FLAT_KMAX || 2 * pad != k - 1) return 0;
    long P = (long)H * W, flat = (P + 15) / 16 * 16, rows = (long)H * ((W + 15) / 16 * 16);
    return flat < rows;
}

static size_t flat_scratch(int C, int H, int W, int k, int pad) {
    return 16 + (size_t)C * (H + 2 * pad) * W + (size_t)pad + 32 + (size_t)C * k * k + ((size_t)C * k * k + 3) / 4;
}

static void conv_flat_image(float *out, size_t ld, const float *in, size_t in_ch, const float *w, const float *b,
                            int C, int H, int W, int O, int k, int pad, float *scratch) {
    size_t plane = (size_t)(H + 2 * pad) * W, body = (size_t)C * plane, K = (size_t)C * k * k;
    float *buf = scratch; /* 16 floats, the planes, pad + 32 floats: what the vectors read around them */
    memset(buf, 0, 16 * sizeof *buf);
    for (int c = 0; c < C; c++) {
        float *dst = buf + 16 + (size_t)c * plane;
        memset(dst, 0, (size_t)pad * W * sizeof *dst);
        memcpy(dst + (size_t)pad * W, in + (size_t)c * in_ch, (size_t)H * W * sizeof *dst);
        memset(dst + (size_t)(H + pad) * W, 0, (size_t)pad * W * sizeof *dst);
    }
    memset(buf + 16 + body, 0, ((size_t)pad + 32) * sizeof *buf);
    int32_t *koff = (int32_t *)(buf + 16 + body + pad + 32);
    uint8_t *tapx = (uint8_t *)(koff + K);
    for (int c = 0, t = 0; c < C; c++)
        for (int ky = 0; ky < k; ky++)
            for (int kx = 0; kx < k; kx++, t++) {
                koff[t] = (int32_t)((size_t)c * plane + (size_t)ky * W + kx);
                tapx[t] = (uint8_t)kx;
            }
    imcap_conv_direct_flat(out, ld, w, O, (int)K, buf + 16 - pad, koff, tapx, k, pad, W, H * W, b);
}

static void forward_group(float *out, size_t ld, const float *in, size_t in_img, size_t in_ch, const float *w,
                          const float *b, int n, int C, int H, int W, int O, int k, int stride, int pad, float *col) {
    int Ho = (H + 2 * pad - k) / stride + 1, Wo = (W + 2 * pad - k) / stride + 1, K = C * k * k;
    if (use_flat(k, stride, pad, H, W) && flat_scratch(C, H, W, k, pad) <= imcap_conv2d_col_size(C, k, Ho, Wo)) {
        for (int j = 0; j < n; j++)
            conv_flat_image(out + (size_t)j * Ho * Wo, ld, in + j * in_img, in_ch, w, b, C, H, W, O, k, pad, col);
        return;
    }
    if (use_direct(k, stride, Wo) && direct_scratch(C, H, W, k, stride, pad) <= imcap_conv2d_col_size(C, k, Ho, Wo)) {
        for (int j = 0; j < n; j++)
            conv_direct_image(out + (size_t)j * Ho * Wo, ld, in + j * in_img, in_ch, w, b, C, H, W, O, k, stride, pad,
                              col);
        return;
    }
    int NP = n * Ho * Wo;
    const float *B = build_col(col, in, in_img, in_ch, n, C, H, W, k, stride, pad, Ho, Wo);
    size_t ldb = B == in ? in_ch : col_ld((size_t)NP);
    imcap_gemm(out, ld, w, (size_t)K, 1, B, ldb, O, NP, K, b, 0);
}

void imcap_conv2d_forward_n(float *out, size_t ld, const float *in, size_t in_img, size_t in_ch, const float *w,
                            const float *b, int n, int C, int H, int W, int O, int k, int stride, int pad,
                            float *col) {
    int Ho = (H + 2 * pad - k) / stride + 1, Wo = (W + 2 * pad - k) / stride + 1, P = Ho * Wo;
    int g = group_size(n, C * k * k, P);
    for (int j0 = 0; j0 < n; j0 += g)
        forward_group(out + (size_t)j0 * P, ld, in + j0 * in_img, in_img, in_ch, w, b, n - j0 < g ? n - j0 : g, C, H,
                      W, O, k, stride, pad, col);
}

static void backward_group(float *din, float *dw, const float *dout, size_t ld, const float *in, size_t in_img,
                           size_t in_ch, const float *w, int n, int C, int H, int W, int O, int k, int stride, int pad,
                           float *col) {
    int Ho = (H + 2 * pad - k) / stride + 1, Wo = (W + 2 * pad - k) / stride + 1, K = C * k * k;
    int P = Ho * Wo, NP = n * P;
    const float *B = build_col(col, in, in_img, in_ch, n, C, H, W, k, stride, pad, Ho, Wo);
    size_t ldb = B == in ? in_ch : col_ld((size_t)NP);
    /* dw[o, kk] += sum_p dout[o, p] col[kk, p]: dot products over the
     * pixels, a slice of pixels at a time so that the rows of a block stay
     * in cache (a slice's sums are added to dw one after the other) */
    enum { SLICE = 2048 };
    for (int p0 = 0; p0 < NP; p0 += SLICE) {
        imcap_mm_seg seg = {B + p0, ldb, dout + p0, ld, NP - p0 < SLICE ? NP - p0 : SLICE};
        imcap_rows_affine_acc(dw, (size_t)K, O, K, &seg, 1);
    }
    if (!din) return;
    /* dcol = w^T dout, into col (B may be the input itself) */
    imcap_gemm(col, col_ld((size_t)NP), w, 1, (size_t)K, dout, ld, K, NP, O, NULL, 0);
    for (int j = 0; j < n; j++)
        col2im_add(din + j * in_img, in_ch, col + (size_t)j * P, col_ld((size_t)NP), C, H, W, k, stride, pad, Ho, Wo);
}

void imcap_conv2d_backward_n(float *din, float *dw, float *db, const float *dout, size_t ld, const float *in,
                             size_t in_img, size_t in_ch, const float *w, int n, int C, int H, int W, int O, int k,
                             int stride, int pad, float *col) {
    int Ho = (H + 2 * pad - k) / stride + 1, Wo = (W + 2 * pad - k) / stride + 1, K = C * k * k;
    int P = Ho * Wo, NP = n * P;
    for (int o = 0; db && o < O; o++) {
        /* eight partial sums: one chain of n*P dependent adds is the
         * slowest part of the backward outside the products */
        const float *d = dout + (size_t)o * ld;
        float part[8] = {0};
        int i = 0;
        for (; i + 8 <= NP; i += 8)
            for (int q = 0; q < 8; q++) part[q] += d[i + q];
        float s = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
        for (; i < NP; i++) s += d[i];
        db[o] += s;
    }
    int g = group_size(n, K, P);
    for (int j0 = 0; j0 < n; j0 += g)
        backward_group(din ? din + j0 * in_img : NULL, dw, dout + (size_t)j0 * P, ld, in + j0 * in_img, in_img, in_ch,
                       w, n - j0 < g ? n - j0 : g, C, H, W, O, k, stride, pad, col);
}

int imcap_conv_runs_transposed(int O, int P) {
    int vectors = (P + 15) / 16;
    return O % 16 == 0 && 100 * P < 85 * 16 * vectors;
}

void imcap_conv2d_forward_t(float *out_t, size_t ldt, const float *in, const float *wp, int C, int H, int W, int O,
                            int k, int stride, int pad, float *col) {
    int Ho = (H + 2 * pad - k) / stride + 1, Wo = (W + 2 * pad - k) / stride + 1, P = Ho * Wo;
    size_t plane = (size_t)H * W;
    const float *B = build_col(col, in, (size_t)C * plane, plane, 1, C, H, W, k, stride, pad, Ho, Wo);
    size_t ldb = B == in ? plane : col_ld((size_t)P);
    imcap_gemm_p(out_t, ldt, B, 1, ldb, wp, P, O, C * k * k, NULL);
}

void imcap_conv2d_forward(float *out, const float *in, const float *w, const float *b, int C, int H, int W, int O,
                          int k, int stride, int pad, float *col) {
    size_t plane = (size_t)H * W;
    size_t P = (size_t)((H + 2 * pad - k) / stride + 1) * ((W + 2 * pad - k) / stride + 1);
    imcap_conv2d_forward_n(out, P, in, (size_t)C * plane, plane, w, b, 1, C, H, W, O, k, stride, pad, col);
}

void imcap_conv2d_backward(float *din, float *dw, float *db, const float *dout, const float *in, const float *w,
                           int C, int H, int W, int O, int k, int stride, int pad, float *col) {
    size_t plane = (size_t)H * W;
    size_t P = (size_t)((H + 2 * pad - k) / stride + 1) * ((W + 2 * pad - k) / stride + 1);
    imcap_conv2d_backward_n(din, dw, db, dout, P, in, (size_t)C * plane, plane, w, 1, C, H, W, O, k, stride, pad, col);
}
