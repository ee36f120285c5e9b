/* test_kernels.c — every kernel of src/kernels/kernels.h on small cases whose
 * expected values are worked out by hand in the comments, and every
 * *_backward against central finite differences of its own forward.
 *
 * Finite differences: the loss is L = sum_j r_j out_j with fixed random r,
 * summed in double; each input element is moved by +-EPS (1e-2) and
 * (L+ - L-) / (2 EPS) is compared with the analytic gradient. The forward
 * is float, so the loss carries a rounding error of about 6e-8 * sum |r out|
 * (~1e-6 for these sizes), which becomes ~5e-5 after dividing by 2 EPS; the
 * truncation error EPS^2/6 * |L'''| is ~2e-5 for these smooth O(1)
 * functions. FD_TOL = 1e-3 * max(1, |g|) leaves a margin of >10x over both
 * (the worst disagreement measured on these cases is 3e-5), while a wrong
 * term in a backward (a missing factor, a transposed index)
 * is off by O(0.1..1). Kinks (relu at 0, maxpool ties) are kept more than
 * EPS away from every input. Gradient buffers are pre-filled with a known
 * value to check that backward functions accumulate (+=) as documented. */
#include <criterion/criterion.h>

#include "testutil.h"
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"

#define EPS 1e-2
#ifndef FD_TOL
#define FD_TOL 1e-3
#endif
#define PREFILL 0.25f

static void expect_vec(const float *got, const double *want, size_t n, double tol, const char *what) {
    for (size_t i = 0; i < n; i++)
        cr_expect(fabs((double)got[i] - want[i]) <= tol * fmax(1.0, fabs(want[i])), "%s[%zu] = %.9g, expected %.9g",
                  what, i, got[i], want[i]);
}

/* deterministic pseudo-random numbers in [lo, hi) (splitmix64) */
static uint64_t rng_state;
static double urand(double lo, double hi) { return tu_urand(&rng_state, lo, hi); }
static float *rand_vec(size_t n, double lo, double hi) {
    float *v = malloc((n ? n : 1) * sizeof *v);
    for (size_t i = 0; i < n; i++) v[i] = (float)urand(lo, hi);
    return v;
}
static float *filled(size_t n, float x) {
    float *v = malloc((n ? n : 1) * sizeof *v);
    for (size_t i = 0; i < n; i++) v[i] = x;
    return v;
}
static double dot_d(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}
/* analytic gradient g (prefilled with PREFILL, so g - PREFILL is the
 * gradient) against the numeric one, computed by loss(ctx) while param[i]
 * is moved. */
typedef double (*loss_fn)(void *ctx);
static void check_grad(const char *what, float *param, size_t n, const float *g, loss_fn loss, void *ctx) {
    for (size_t i = 0; i < n; i++) {
        float keep = param[i];
        param[i] = (float)(keep + EPS);
        double lp = loss(ctx);
        param[i] = (float)(keep - EPS);
        double lm = loss(ctx);
        param[i] = keep;
        /* the step actually taken in float, not the nominal EPS */
        double h = ((double)(float)(keep + EPS) - (double)(float)(keep - EPS));
        double num = (lp - lm) / h;
        double ana = (double)g[i] - PREFILL;
        cr_expect(fabs(ana - num) <= FD_TOL * fmax(1.0, fabs(num)), "%s: d/d[%zu] analytic %.7g numeric %.7g", what, i,
                  ana, num);
    }
}

/* ------------------------------------------------------------------ conv2d */

static void conv(float *out, const float *in, const float *w, const float *b, int C, int H, int W, int O, int k,
                 int s, int p) {
    int Ho = (H + 2 * p - k) / s + 1, Wo = (W + 2 * p - k) / s + 1;
    float *col = malloc(imcap_conv2d_col_size(C, k, Ho, Wo) * sizeof(float) + 64);
    imcap_conv2d_forward(out, in, w, b, C, H, W, O, k, s, p, col);
    free(col);
}

Test(conv2d, valid_2x2_kernel) {
    /* in 3x3 = 1..9 row-major, kernel 2x2 of ones, bias 0.5, no padding:
     * out(0,0) = 1+2+4+5 = 12, (0,1) = 2+3+5+6 = 16, (1,0) = 4+5+7+8 = 24,
     * (1,1) = 5+6+8+9 = 28, each + 0.5 */
    float in[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, w[4] = {1, 1, 1, 1}, b[1] = {0.5f}, out[4];
    conv(out, in, w, b, 1, 3, 3, 1, 2, 1, 0);
    double want[4] = {12.5, 16.5, 24.5, 28.5};
    expect_vec(out, want, 4, 1e-6, "out");
}

Test(conv2d, padding_asymmetric_kernel) {
    /* in 2x2 = [1 2; 3 4], kernel 3x3 = [1 2 3; 4 5 6; 7 8 9], pad 1, no bias
     * (b NULL is not documented, so b = 0). Output (oy,ox) covers input rows
     * oy-1..oy+1, cols ox-1..ox+1; only in-range inputs count:
     * (0,0): in(0,0)w(1,1) + in(0,1)w(1,2) + in(1,0)w(2,1) + in(1,1)w(2,2) = 5+12+24+36 = 77
     * (0,1): in(0,0)w(1,0) + in(0,1)w(1,1) + in(1,0)w(2,0) + in(1,1)w(2,1) = 4+10+21+32 = 67
     * (1,0): in(0,0)w(0,1) + in(0,1)w(0,2) + in(1,0)w(1,1) + in(1,1)w(1,2) = 2+6+15+24 = 47
     * (1,1): in(0,0)w(0,0) + in(0,1)w(0,1) + in(1,0)w(1,0) + in(1,1)w(1,1) = 1+4+12+20 = 37 */
    float in[4] = {1, 2, 3, 4}, w[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, b[1] = {0}, out[4];
    conv(out, in, w, b, 1, 2, 2, 1, 3, 1, 1);
    double want[4] = {77, 67, 47, 37};
    expect_vec(out, want, 4, 1e-6, "out");
}

Test(conv2d, stride2_padding) {
    /* in 5x5 with in(i,j) = 5i + j, kernel 3x3 of ones, stride 2, pad 1:
     * Ho = (5 + 2 - 3) / 2 + 1 = 3. Output (oy,ox) sums rows 2oy-1..2oy+1,
     * cols 2ox-1..2ox+1 that fall inside:
     * (0,0): rows 0-1, cols 0-1: 0+1+5+6 = 12
     * (0,1): rows 0-1, cols 1-3: (1+2+3)+(6+7+8) = 27
     * (0,2): rows 0-1, cols 3-4: 3+4+8+9 = 24
     * (1,0): rows 1-3, cols 0-1: 5+6+10+11+15+16 = 63
     * (1,1): rows 1-3, cols 1-3: 9 values centred on 12 = 108
     * (1,2): rows 1-3, cols 3-4: 8+9+13+14+18+19 = 81
     * (2,0): rows 3-4, cols 0-1: 15+16+20+21 = 72
     * (2,1): rows 3-4, cols 1-3: (16+17+18)+(21+22+23) = 117
     * (2,2): rows 3-4, cols 3-4: 18+19+23+24 = 84; bias -1 on all */
    float in[25], w[9], b[1] = {-1}, out[9];
    for (int i = 0; i < 25; i++) in[i] = (float)i;
    for (int i = 0; i < 9; i++) w[i] = 1;
    conv(out, in, w, b, 1, 5, 5, 1, 3, 2, 1);
    double want[9] = {11, 26, 23, 62, 107, 80, 71, 116, 83};
    expect_vec(out, want, 9, 1e-6, "out");
}

Test(conv2d, stride2_even_no_overlap) {
    /* in 4x4 = 0..15, kernel 2x2 = [1 10; 100 1000], stride 2, no pad:
     * each output = in(2oy,2ox) + 10 in(2oy,2ox+1) + 100 in(2oy+1,2ox) + 1000 in(2oy+1,2ox+1)
     * (0,0): 0 + 10 + 400 + 5000 = 5410; (0,1): 2 + 30 + 600 + 7000 = 7632
     * (1,0): 8 + 90 + 1200 + 13000 = 14298; (1,1): 10 + 110 + 1400 + 15000 = 16520 */
    float in[16], w[4] = {1, 10, 100, 1000}, b[1] = {0}, out[4];
    for (int i = 0; i < 16; i++) in[i] = (float)i;
    conv(out, in, w, b, 1, 4, 4, 1, 2, 2, 0);
    double want[4] = {5410, 7632, 14298, 16520};
    expect_vec(out, want, 4, 1e-6, "out");
}

Test(conv2d, multi_channel) {
    /* C = 2, O = 2, 2x2 input, 2x2 kernel, no pad: a 1x1 output per filter,
     * out[o] = sum_c sum_ij w[o,c,i,j] in[c,i,j] + b[o].
     * in c0 = [1 2; 3 4], c1 = [5 6; 7 8]
     * w[0]: c0 = [1 0; 0 0], c1 = [0 0; 0 1], b0 = 0   -> 1 + 8 = 9
     * w[1]: c0 = [1 1; 1 1], c1 = [-1 0; 1 0], b1 = -1 -> 10 + (-5 + 7) - 1 = 11 */
    float in[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    float w[16] = {1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, -1, 0, 1, 0};
    float b[2] = {0, -1}, out[2];
    conv(out, in, w, b, 2, 2, 2, 2, 2, 1, 0);
    double want[2] = {9, 11};
    expect_vec(out, want, 2, 1e-6, "out");
}

Test(conv2d, multi_channel_padded_layout) {
    /* C = 2, O = 3, 1x2 input (H=1, W=2), 1x1 kernel: a per-pixel matrix
     * product, checks the [O,Ho,Wo] output layout.
     * in c0 = [1 2], c1 = [3 4]; w = [[1 0], [0 1], [1 -1]], b = [0, 0, 0.5]
     * out o0 = [1 2], o1 = [3 4], o2 = [1-3+0.5, 2-4+0.5] = [-1.5 -1.5] */
    float in[4] = {1, 2, 3, 4}, w[6] = {1, 0, 0, 1, 1, -1}, b[3] = {0, 0, 0.5f}, out[6];
    conv(out, in, w, b, 2, 1, 2, 3, 1, 1, 0);
    double want[6] = {1, 2, 3, 4, -1.5, -1.5};
    expect_vec(out, want, 6, 1e-6, "out");
}

/* Winograd's F(2x2, 3x3) against the convolution in double: within
 * 1e-5 of the window's sum of |w x| (float's precision times the
 * transforms' growth is about 1e-6; a wrong tap or a lost tile is of the
 * order of the sum itself), with bias, for even and odd maps, one tile row
 * and many, and ResNet's layer1 shape (taken a few tile rows per pass). */
Test(conv2d, winograd_is_the_convolution) {
    rng_state = 91;
    const int shapes[][4] = {{3, 5, 7, 5}, {20, 9, 12, 33}, {16, 2, 2, 8}, {64, 56, 56, 64}, {40, 7, 7, 70}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        int C = shapes[si][0], H = shapes[si][1], W = shapes[si][2], O = shapes[si][3];
        cr_assert(imcap_winograd_fits(3, 1, 1, H, W));
        float *in = rand_vec((size_t)C * H * W, -2, 2), *w = rand_vec((size_t)O * C * 9, -1, 1);
        float *b = rand_vec((size_t)O, -1, 1), *out = malloc((size_t)O * H * W * sizeof(float));
        float *u = malloc(imcap_winograd_weights_floats(O, C) * sizeof(float));
        float *scratch = malloc(imcap_winograd_scratch(C, O, H, W) * sizeof(float));
        cr_assert(out && u && scratch);
        imcap_winograd_weights(u, w, O, C);
        imcap_conv_winograd(out, in, u, b, C, H, W, O, scratch);
        for (int o = 0; o < O; o++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    double ref = b[o], mag = fabs(b[o]);
                    for (int c = 0; c < C; c++)
                        for (int ky = 0; ky < 3; ky++)
                            for (int kx = 0; kx < 3; kx++) {
                                int iy = y + ky - 1, ix = x + kx - 1;
                                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                                double t = (double)w[((size_t)o * C + c) * 9 + ky * 3 + kx] *
                                           in[((size_t)c * H + iy) * W + ix];
                                ref += t, mag += fabs(t);
                            }
                    float got = out[((size_t)o * H + y) * W + x];
                    cr_assert(fabs(got - ref) <= 1e-5 * mag, "C%d %dx%d O%d at (%d,%d,%d): %.9g, want %.9g (sum |w x| %.3g)",
                              C, H, W, O, o, y, x, got, ref, mag);
                }
        free(in), free(w), free(b), free(out), free(u), free(scratch);
    }
}

/* backward of conv2d, all geometries the models use */
typedef struct {
    float *in, *w, *b, *r, *out, *col;
    int C, H, W, O, k, s, p, Ho, Wo;
} conv_ctx;
static double conv_loss(void *vc) {
    conv_ctx *c = vc;
    imcap_conv2d_forward(c->out, c->in, c->w, c->b, c->C, c->H, c->W, c->O, c->k, c->s, c->p, c->col);
    return dot_d(c->out, c->r, (size_t)c->O * c->Ho * c->Wo);
}
static void conv_grad_case(int C, int H, int W, int O, int k, int s, int p, int with_din) {
    conv_ctx c = {.C = C, .H = H, .W = W, .O = O, .k = k, .s = s, .p = p};
    c.Ho = (H + 2 * p - k) / s + 1;
    c.Wo = (W + 2 * p - k) / s + 1;
    size_t nin = (size_t)C * H * W, nw = (size_t)O * C * k * k, nout = (size_t)O * c.Ho * c.Wo;
    c.in = rand_vec(nin, -1, 1);
    c.w = rand_vec(nw, -1, 1);
    c.b = rand_vec(O, -1, 1);
    c.r = rand_vec(nout, -1, 1);
    c.out = malloc(nout * sizeof(float));
    c.col = malloc(imcap_conv2d_col_size(C, k, c.Ho, c.Wo) * sizeof(float) + 64);
    float *din = filled(nin, PREFILL), *dw = filled(nw, PREFILL), *db = filled(O, PREFILL);
    imcap_conv2d_backward(with_din ? din : NULL, dw, db, c.r, c.in, c.w, C, H, W, O, k, s, p, c.col);
    if (with_din) check_grad("conv din", c.in, nin, din, conv_loss, &c);
    check_grad("conv dw", c.w, nw, dw, conv_loss, &c);
    check_grad("conv db", c.b, O, db, conv_loss, &c);
    free(c.in), free(c.w), free(c.b), free(c.r), free(c.out), free(c.col), free(din), free(dw), free(db);
}

Test(conv2d, backward_finite_differences) {
    rng_state = 11;
    conv_grad_case(2, 5, 5, 3, 3, 1, 1, 1);
    conv_grad_case(3, 6, 5, 2, 3, 2, 1, 1); /* stride 2, H != W */
    conv_grad_case(2, 7, 7, 2, 3, 2, 0, 1); /* stride 2, no padding, odd */
    conv_grad_case(3, 4, 4, 2, 2, 1, 0, 0); /* din NULL */
}

/* ------------------------------------------------------------------ relu */

Test(relu, forward_backward) {
    /* max(0, x); the gradient passes where the output is positive only */
    float in[5] = {-2, -0.0f, 0, 0.5f, 3}, out[5];
    imcap_relu_forward(out, in, 5);
    double want[5] = {0, 0, 0, 0.5, 3};
    expect_vec(out, want, 5, 0, "relu");
    float dout[5] = {1, 2, 3, 4, 5}, din[5] = {PREFILL, PREFILL, PREFILL, PREFILL, PREFILL};
    imcap_relu_backward(din, dout, out, 5);
    double wantd[5] = {PREFILL, PREFILL, PREFILL, PREFILL + 4, PREFILL + 5};
    expect_vec(din, wantd, 5, 0, "din");
}

Test(relu, in_place) {
    float x[3] = {-1, 2, -3};
    imcap_relu_forward(x, x, 3);
    double want[3] = {0, 2, 0};
    expect_vec(x, want, 3, 0, "relu in place");
}

/* ------------------------------------------------------------------ maxpool */

Test(maxpool, basic_and_argmax) {
    /* 1x4x4, k = 2, s = 2:
     *  1  2 |  5  3        window maxima: 6 (idx 5), 7 (idx 6)
     *  4  6 |  7  0                      12 (idx 13), 15 (idx 11)
     * ------+------
     *  9 11 | 13 15
     * 10 12 | 14  8 */
    float in[16] = {1, 2, 5, 3, 4, 6, 7, 0, 9, 11, 13, 15, 10, 12, 14, 8}, out[4];
    int am[4];
    imcap_maxpool_forward(out, am, in, 1, 4, 4, 2, 2);
    double want[4] = {6, 7, 12, 15};
    expect_vec(out, want, 4, 0, "max");
    int wam[4] = {5, 6, 13, 11};
    for (int i = 0; i < 4; i++) cr_expect_eq(am[i], wam[i], "argmax[%d] = %d, expected %d", i, am[i], wam[i]);
    float dout[4] = {1, 2, 3, 4}, din[16];
    for (int i = 0; i < 16; i++) din[i] = PREFILL;
    imcap_maxpool_backward(din, dout, am, 1, 2, 2);
    for (int i = 0; i < 16; i++) {
        double w = PREFILL + (i == 5 ? 1 : i == 6 ? 2 : i == 13 ? 3 : i == 11 ? 4 : 0);
        cr_expect_eq(din[i], (float)w, "din[%d] = %g, expected %g", i, din[i], w);
    }
}

Test(maxpool, ties_go_to_first) {
    /* 2 channels 2x2, one window each. c0 all equal to 3: the first (index 0)
     * wins. c1 = [1 5; 5 5]: the first 5 in row-major order, index 4 + 1 = 5. */
    float in[8] = {3, 3, 3, 3, 1, 5, 5, 5}, out[2];
    int am[2];
    imcap_maxpool_forward(out, am, in, 2, 2, 2, 2, 2);
    cr_expect_eq(out[0], 3.0f);
    cr_expect_eq(out[1], 5.0f);
    cr_expect_eq(am[0], 0, "tie in channel 0 went to %d", am[0]);
    cr_expect_eq(am[1], 5, "tie in channel 1 went to %d", am[1]);
}

Test(maxpool, odd_size_floors) {
    /* 1x5x5, k = 2, s = 2: Ho = (5 - 2) / 2 + 1 = 2, the last row and column
     * are dropped. in(i,j) = i + j except the dropped row/col hold 100, which
     * must not appear. Windows: (0,0) max in(1,1) = 2; (0,1) max in(1,3) = 4;
     * (1,0) max in(3,1) = 4; (1,1) max in(3,3) = 6. */
    float in[25], out[4];
    int am[4];
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 5; j++) in[i * 5 + j] = (i == 4 || j == 4) ? 100.0f : (float)(i + j);
    imcap_maxpool_forward(out, am, in, 1, 5, 5, 2, 2);
    double want[4] = {2, 4, 4, 6};
    expect_vec(out, want, 4, 0, "max");
    /* k = 3, s = 2 on the same input overlaps: Ho = (5-3)/2 + 1 = 2 and the
     * windows at offset 2 reach row/col 4: (0,0) rows 0-2 cols 0-2: 4;
     * (0,1) cols 2-4: 100; (1,0): 100; (1,1): 100 */
    imcap_maxpool_forward(out, am, in, 1, 5, 5, 3, 2);
    double want3[4] = {4, 100, 100, 100};
    expect_vec(out, want3, 4, 0, "max k3");
    cr_expect_eq(am[0], 2 * 5 + 2, "in(2,2) is the max of the first 3x3 window (4), got %d", am[0]);
    cr_expect_eq(am[1], 0 * 5 + 4, "first 100 of window (0,1) is in(0,4), got %d", am[1]);
}

Test(maxpool, backward_finite_differences) {
    /* distinct values 0.1 apart (a shuffled ramp), so no window has two
     * inputs within 2 EPS of each other: the max is differentiable there */
    rng_state = 12;
    int C = 2, H = 7, W = 6, k = 3, s = 2, Ho = (H - k) / s + 1, Wo = (W - k) / s + 1;
    size_t nin = (size_t)C * H * W, nout = (size_t)C * Ho * Wo;
    float *in = malloc(nin * sizeof(float)), *out = malloc(nout * sizeof(float)), *r = rand_vec(nout, -1, 1);
    int *am = malloc(nout * sizeof(int));
    for (size_t i = 0; i < nin; i++) in[i] = (float)(0.1 * (double)i - 4);
    for (size_t i = nin - 1; i > 0; i--) {
        size_t j = (size_t)urand(0, (double)(i + 1));
        float t = in[i];
        in[i] = in[j], in[j] = t;
    }
    imcap_maxpool_forward(out, am, in, C, H, W, k, s);
    float *din = filled(nin, PREFILL);
    imcap_maxpool_backward(din, r, am, C, Ho, Wo);
    for (size_t i = 0; i < nin; i++) {
        float keep = in[i];
        double l[2];
        for (int sgn = 0; sgn < 2; sgn++) {
            in[i] = (float)(keep + (sgn ? -EPS : EPS));
            imcap_maxpool_forward(out, am, in, C, H, W, k, s);
            l[sgn] = dot_d(out, r, nout);
        }
        in[i] = keep;
        double num = (l[0] - l[1]) / ((double)(float)(keep + EPS) - (double)(float)(keep - EPS));
        cr_expect(fabs(din[i] - PREFILL - num) <= FD_TOL * fmax(1, fabs(num)), "maxpool din[%zu] %g vs %g", i,
                  din[i] - PREFILL, num);
    }
    free(in), free(out), free(r), free(am), free(din);
}

/* ------------------------------------------------------------------ coords */

Test(coords, grid_2x3) {
    /* C = 1, H = 2, W = 3: x = 2 (j + 0.5) / 3 - 1 = -2/3, 0, 2/3 by column;
     * y = 2 (i + 0.5) / 2 - 1 = -1/2, 1/2 by row. Channel 0 is copied. */
    float in[6] = {1, 2, 3, 4, 5, 6}, out[18];
    imcap_coords_forward(out, in, 1, 2, 3);
    double want[18] = {1,          2, 3,         4,          5, 6,          /* copy */
                       -2.0 / 3.0, 0, 2.0 / 3.0, -2.0 / 3.0, 0, 2.0 / 3.0, /* x */
                       -0.5,       -0.5, -0.5,   0.5,        0.5, 0.5};    /* y */
    expect_vec(out, want, 18, 1e-7, "coords");
    /* backward: the input gradient is the gradient of the copied channels */
    float dout[18], din[6];
    for (int i = 0; i < 18; i++) dout[i] = (float)(i + 1);
    for (int i = 0; i < 6; i++) din[i] = PREFILL;
    imcap_coords_backward(din, dout, 1, 2, 3);
    double wantd[6] = {PREFILL + 1, PREFILL + 2, PREFILL + 3, PREFILL + 4, PREFILL + 5, PREFILL + 6};
    expect_vec(din, wantd, 6, 0, "din");
}

Test(coords, grid_1x1_two_channels) {
    /* H = W = 1: x = 2 * 0.5 / 1 - 1 = 0, y = 0 */
    float in[2] = {7, -7}, out[4];
    imcap_coords_forward(out, in, 2, 1, 1);
    double want[4] = {7, -7, 0, 0};
    expect_vec(out, want, 4, 0, "coords 1x1");
}

/* ------------------------------------------------------------------ affine */

Test(affine, single_row) {
    /* x = [1 2], w = [[1 0], [0 1], [1 1]], b = [0.5 -1 0]:
     * y = [1 + 0.5, 2 - 1, 3 + 0] = [1.5 1 3] */
    float x[2] = {1, 2}, w[6] = {1, 0, 0, 1, 1, 1}, b[3] = {0.5f, -1, 0}, y[3];
    imcap_affine_forward(y, x, w, b, 1, 2, 3);
    double want[3] = {1.5, 1, 3};
    expect_vec(y, want, 3, 1e-7, "y");
}

Test(affine, several_rows_no_bias) {
    /* rows x0 = [1 2], x1 = [-1 3], x2 = [0 0]; w = [[2 -1], [0.5 4]], b NULL
     * y0 = [2 - 2, 0.5 + 8] = [0 8.5]; y1 = [-2 - 3, -0.5 + 12] = [-5 11.5]; y2 = 0 */
    float x[6] = {1, 2, -1, 3, 0, 0}, w[4] = {2, -1, 0.5f, 4}, y[6];
    imcap_affine_forward(y, x, w, NULL, 3, 2, 2);
    double want[6] = {0, 8.5, -5, 11.5, 0, 0};
    expect_vec(y, want, 6, 1e-7, "y");
    float b[2] = {1, -1};
    imcap_affine_forward(y, x, w, b, 3, 2, 2);
    double wantb[6] = {1, 7.5, -4, 10.5, 1, -1};
    expect_vec(y, wantb, 6, 1e-7, "y with bias");
}

typedef struct {
    float *x, *w, *b, *r, *y;
    int N, in, out;
} aff_ctx;
static double aff_loss(void *vc) {
    aff_ctx *c = vc;
    imcap_affine_forward(c->y, c->x, c->w, c->b, c->N, c->in, c->out);
    return dot_d(c->y, c->r, (size_t)c->N * c->out);
}
Test(affine, backward_finite_differences) {
    rng_state = 13;
    int shapes[2][3] = {{1, 4, 3}, {5, 3, 6}};
    for (int sI = 0; sI < 2; sI++) {
        aff_ctx c = {.N = shapes[sI][0], .in = shapes[sI][1], .out = shapes[sI][2]};
        size_t nx = (size_t)c.N * c.in, nw = (size_t)c.in * c.out, ny = (size_t)c.N * c.out;
        c.x = rand_vec(nx, -1, 1), c.w = rand_vec(nw, -1, 1), c.b = rand_vec(c.out, -1, 1);
        c.r = rand_vec(ny, -1, 1), c.y = malloc(ny * sizeof(float));
        float *dx = filled(nx, PREFILL), *dw = filled(nw, PREFILL), *db = filled(c.out, PREFILL);
        imcap_affine_backward(dx, dw, db, c.r, c.x, c.w, c.N, c.in, c.out);
        check_grad("affine dx", c.x, nx, dx, aff_loss, &c);
        check_grad("affine dw", c.w, nw, dw, aff_loss, &c);
        check_grad("affine db", c.b, c.out, db, aff_loss, &c);
        /* NULL outputs are allowed and leave the others unchanged */
        float *dw2 = filled(nw, PREFILL);
        imcap_affine_backward(NULL, dw2, NULL, c.r, c.x, c.w, c.N, c.in, c.out);
        for (size_t i = 0; i < nw; i++) cr_expect_float_eq(dw2[i], dw[i], 1e-6);
        free(c.x), free(c.w), free(c.b), free(c.r), free(c.y), free(dx), free(dw), free(db), free(dw2);
    }
}

/* ------------------------------------------------------------------ LSTM */

Test(lstm, one_step_by_hand) {
    /* N = 1, In = 1, H = 1, x = 1, h_prev = 0.5, c_prev = 0.5.
     * pre-activations (order i, f, g, o) = w_ih x + b_ih + w_hh h_prev + b_hh:
     *   i: ln3 + 0 + 0 + 0            = ln 3  -> sigmoid = 3/4
     *   f: 0.5 + 0 + (-2)(0.5) + 0.5  = 0     -> sigmoid = 1/2
     *   g: ln2 + 0 + 0 + 0            = ln 2  -> tanh = (2 - 1/2)/(2 + 1/2) = 0.6
     *   o: 0 + (-ln3) + 0 + 0         = -ln 3 -> sigmoid = 1/4
     * c = f c_prev + i g = 0.25 + 0.45 = 0.7; h = o tanh(0.7) = 0.25 * 0.604367777 */
    float x[1] = {1}, hp[1] = {0.5f}, cp[1] = {0.5f};
    float w_ih[4] = {(float)log(3.0), 0.5f, (float)log(2.0), 0};
    float b_ih[4] = {0, 0, 0, (float)-log(3.0)};
    float w_hh[4] = {0, -2, 0, 0}, b_hh[4] = {0, 0.5f, 0, 0};
    float h[1], c[1], tc[1], gates[4];
    imcap_lstm_forward(h, c, tc, gates, x, hp, cp, w_ih, b_ih, w_hh, b_hh, 1, 1, 1);
    double wg[4] = {0.75, 0.5, 0.6, 0.25};
    expect_vec(gates, wg, 4, 1e-6, "gates");
    double wc[1] = {0.7}, wtc[1] = {0.6043677771171636}, wh[1] = {0.25 * 0.6043677771171636};
    expect_vec(c, wc, 1, 1e-6, "c");
    expect_vec(tc, wtc, 1, 1e-6, "tanh c");
    expect_vec(h, wh, 1, 1e-6, "h");
}

Test(lstm, two_units_two_rows_layout) {
    /* H = 2, In = 1, N = 2, all weights zero but b_ih, so every gate is
     * sigmoid/tanh of its bias, the same for both rows:
     * b_ih rows (i0 i1 f0 f1 g0 g1 o0 o1) = (ln3, 0, 0, 0, ln2, -ln2, 0, ln3)
     * i = (3/4, 1/2), f = (1/2, 1/2), g = (0.6, -0.6), o = (1/2, 3/4)
     * row 0: c_prev = (1, -1) -> c = (0.5 + 0.45, -0.5 - 0.3) = (0.95, -0.8)
     * row 1: c_prev = (0, 2)  -> c = (0.45, 1 - 0.3) = (0.45, 0.7)
     * h = o tanh(c): tanh(0.95) = 0.739783051, tanh(-0.8) = -0.664036770,
     * tanh(0.45) = 0.421899005, tanh(0.7) = 0.604367777 */
    float x[2] = {5, -5}, hp[4] = {1, 2, 3, 4}, cp[4] = {1, -1, 0, 2};
    float w_ih[8] = {0}, w_hh[16] = {0}, b_hh[8] = {0};
    float l3 = (float)log(3.0), l2 = (float)log(2.0);
    float b_ih[8] = {l3, 0, 0, 0, l2, -l2, 0, l3};
    float h[4], c[4], tc[4], gates[16];
    imcap_lstm_forward(h, c, tc, gates, x, hp, cp, w_ih, b_ih, w_hh, b_hh, 2, 1, 2);
    double wc[4] = {0.95, -0.8, 0.45, 0.7};
    double wh[4] = {0.5 * 0.7397830512740043, 0.75 * -0.6640367702678489, 0.5 * 0.4218990052500079,
                    0.75 * 0.6043677771171636};
    expect_vec(c, wc, 4, 1e-6, "c");
    expect_vec(h, wh, 4, 1e-6, "h");
    double wg[8] = {0.75, 0.5, 0.5, 0.5, 0.6, -0.6, 0.5, 0.75};
    expect_vec(gates, wg, 8, 1e-6, "gates row 0");
    expect_vec(gates + 8, wg, 8, 1e-6, "gates row 1");
}

typedef struct {
    float *x, *hp, *cp, *w_ih, *b_ih, *w_hh, *b_hh, *rh, *rc;
    float *h, *c, *tc, *gates;
    int N, In, H;
} lstm_ctx;
static double lstm_loss(void *vc) {
    lstm_ctx *s = vc;
    imcap_lstm_forward(s->h, s->c, s->tc, s->gates, s->x, s->hp, s->cp, s->w_ih, s->b_ih, s->w_hh, s->b_hh, s->N,
                       s->In, s->H);
    size_t n = (size_t)s->N * s->H;
    return dot_d(s->h, s->rh, n) + dot_d(s->c, s->rc, n);
}
Test(lstm, backward_finite_differences) {
    rng_state = 14;
    lstm_ctx s = {.N = 2, .In = 3, .H = 2};
    size_t nx = (size_t)s.N * s.In, nh = (size_t)s.N * s.H, nwi = (size_t)4 * s.H * s.In, nwh = (size_t)4 * s.H * s.H;
    s.x = rand_vec(nx, -1, 1), s.hp = rand_vec(nh, -1, 1), s.cp = rand_vec(nh, -1, 1);
    s.w_ih = rand_vec(nwi, -1, 1), s.b_ih = rand_vec(4 * s.H, -1, 1);
    s.w_hh = rand_vec(nwh, -1, 1), s.b_hh = rand_vec(4 * s.H, -1, 1);
    s.rh = rand_vec(nh, -1, 1), s.rc = rand_vec(nh, -1, 1);
    s.h = malloc(nh * 4), s.c = malloc(nh * 4), s.tc = malloc(nh * 4), s.gates = malloc(4 * nh * 4);
    lstm_loss(&s); /* the backward reads the saved gates and tanh(c) */
    float *dx = filled(nx, PREFILL), *dhp = filled(nh, PREFILL), *dcp = filled(nh, PREFILL);
    float *dwi = filled(nwi, PREFILL), *dbi = filled(4 * s.H, PREFILL), *dwh = filled(nwh, PREFILL),
          *dbh = filled(4 * s.H, PREFILL), *scratch = malloc(4 * nh * 4);
    imcap_lstm_backward(dx, dhp, dcp, dwi, dbi, dwh, dbh, s.rh, s.rc, s.x, s.hp, s.cp, s.gates, s.tc, s.w_ih, s.w_hh,
                        s.N, s.In, s.H, scratch);
    check_grad("lstm dx", s.x, nx, dx, lstm_loss, &s);
    check_grad("lstm dh_prev", s.hp, nh, dhp, lstm_loss, &s);
    check_grad("lstm dc_prev", s.cp, nh, dcp, lstm_loss, &s);
    check_grad("lstm dw_ih", s.w_ih, nwi, dwi, lstm_loss, &s);
    check_grad("lstm db_ih", s.b_ih, 4 * s.H, dbi, lstm_loss, &s);
    check_grad("lstm dw_hh", s.w_hh, nwh, dwh, lstm_loss, &s);
    check_grad("lstm db_hh", s.b_hh, 4 * s.H, dbh, lstm_loss, &s);
    /* dc NULL: only h carries a gradient; compare with a loss on h alone */
    memset(s.rc, 0, nh * 4);
    lstm_loss(&s);
    float *dx2 = filled(nx, PREFILL), *dcp2 = filled(nh, PREFILL), *dhp2 = filled(nh, PREFILL);
    float *dwi2 = filled(nwi, PREFILL), *dbi2 = filled(4 * s.H, PREFILL), *dwh2 = filled(nwh, PREFILL),
          *dbh2 = filled(4 * s.H, PREFILL);
    imcap_lstm_backward(dx2, dhp2, dcp2, dwi2, dbi2, dwh2, dbh2, s.rh, NULL, s.x, s.hp, s.cp, s.gates, s.tc, s.w_ih,
                        s.w_hh, s.N, s.In, s.H, scratch);
    check_grad("lstm dx (dc NULL)", s.x, nx, dx2, lstm_loss, &s);
    check_grad("lstm dc_prev (dc NULL)", s.cp, nh, dcp2, lstm_loss, &s);
    free(s.x), free(s.hp), free(s.cp), free(s.w_ih), free(s.b_ih), free(s.w_hh), free(s.b_hh), free(s.rh), free(s.rc);
    free(s.h), free(s.c), free(s.tc), free(s.gates), free(dx), free(dhp), free(dcp), free(dwi), free(dbi), free(dwh);
    free(dbh), free(scratch), free(dx2), free(dcp2), free(dhp2), free(dwi2), free(dbi2), free(dwh2), free(dbh2);
}

/* ------------------------------------------------------------------ attention */

Test(attention, uniform_scores_give_the_mean) {
    /* w = 0: every e_i = b whatever p and q are, so alpha_i = 1/L and ctx is
     * the mean annotation. L = 4, D = 2, a = (1,0) (3,4) (5,-8) (-1,8):
     * mean = (8/4, 4/4) = (2, 1) */
    float a[8] = {1, 0, 3, 4, 5, -8, -1, 8};
    float p[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, q[3] = {-1, 0, 1}, w[3] = {0, 0, 0};
    float ctx[2], alpha[4], tpq[12];
    imcap_attention_forward(ctx, alpha, tpq, a, p, q, w, 3.5f, 4, 3, 2);
    double wa[4] = {0.25, 0.25, 0.25, 0.25}, wctx[2] = {2, 1};
    expect_vec(alpha, wa, 4, 1e-6, "alpha");
    expect_vec(ctx, wctx, 2, 1e-6, "ctx");
    /* saved tanh(p + q), e.g. tanh(1 - 1) = 0, tanh(2 + 0), tanh(3 + 1) */
    double wt[3] = {0, tanh(2.0), tanh(4.0)};
    expect_vec(tpq, wt, 3, 1e-6, "tanh_pq");
}

Test(attention, weighted_by_hand) {
    /* L = 2, A = 1, D = 2. p = (0, 1), q = 0 -> tanh(p + q) = (0, tanh 1);
     * w = ln3 / tanh(1), b = -7 (cancels in the softmax) -> e = (0, ln 3) - 7
     * alpha = (1, 3) / 4; a0 = (4, 0), a1 = (0, 8): ctx = (1, 6) */
    float a[4] = {4, 0, 0, 8}, p[2] = {0, 1}, q[1] = {0}, w[1] = {(float)(log(3.0) / tanh(1.0))};
    float ctx[2], alpha[2], tpq[2];
    imcap_attention_forward(ctx, alpha, tpq, a, p, q, w, -7, 2, 1, 2);
    double wa[2] = {0.25, 0.75}, wctx[2] = {1, 6};
    expect_vec(alpha, wa, 2, 1e-6, "alpha");
    expect_vec(ctx, wctx, 2, 1e-6, "ctx");
}

Test(attention, large_scores_stay_finite) {
    /* w = 1e4: e = 1e4 * tanh(p) = (~1e4, 0, ~-1e4) -> alpha = (1, 0, 0), ctx = a0 */
    float a[3] = {2, 3, 4}, p[3] = {5, 0, -5}, q[1] = {0}, w[1] = {1e4f};
    float ctx[1], alpha[3], tpq[3];
    imcap_attention_forward(ctx, alpha, tpq, a, p, q, w, 0, 3, 1, 1);
    double wa[3] = {1, 0, 0}, wctx[1] = {2};
    expect_vec(alpha, wa, 3, 1e-6, "alpha");
    expect_vec(ctx, wctx, 1, 1e-6, "ctx");
}

typedef struct {
    float *a, *p, *q, *w, b, *rctx, *ralpha, *ctx, *alpha, *tpq;
    int L, A, D;
} att_ctx;
static double att_loss(void *vc) {
    att_ctx *s = vc;
    imcap_attention_forward(s->ctx, s->alpha, s->tpq, s->a, s->p, s->q, s->w, s->b, s->L, s->A, s->D);
    return dot_d(s->ctx, s->rctx, s->D) + dot_d(s->alpha, s->ralpha, s->L);
}
Test(attention, backward_finite_differences) {
    rng_state = 15;
    att_ctx s = {.L = 5, .A = 3, .D = 4};
    size_t na = (size_t)s.L * s.D, np = (size_t)s.L * s.A;
    s.a = rand_vec(na, -1, 1), s.p = rand_vec(np, -1, 1), s.q = rand_vec(s.A, -1, 1), s.w = rand_vec(s.A, -2, 2);
    s.b = 0.3f;
    s.rctx = rand_vec(s.D, -1, 1), s.ralpha = rand_vec(s.L, -1, 1);
    s.ctx = malloc(s.D * 4), s.alpha = malloc(s.L * 4), s.tpq = malloc(np * 4);
    att_loss(&s);
    float *da = filled(na, PREFILL), *dp = filled(np, PREFILL), *dq = filled(s.A, PREFILL), *dw = filled(s.A, PREFILL);
    float db = PREFILL, *scratch = malloc(s.L * 4);
    imcap_attention_backward(da, dp, dq, dw, &db, s.rctx, s.ralpha, s.a, s.alpha, s.tpq, s.w, s.L, s.A, s.D, scratch);
    check_grad("attention da", s.a, na, da, att_loss, &s);
    check_grad("attention dp", s.p, np, dp, att_loss, &s);
    check_grad("attention dq", s.q, s.A, dq, att_loss, &s);
    check_grad("attention dw", s.w, s.A, dw, att_loss, &s);
    check_grad("attention db", &s.b, 1, &db, att_loss, &s);
    /* the softmax is shift invariant: the numeric gradient of b is 0 */
    cr_expect(fabs(db - PREFILL) < 1e-5, "db = %g, expected 0", db - PREFILL);
    /* dalpha_extra NULL, da/dp NULL: only the ctx term */
    memset(s.ralpha, 0, s.L * 4);
    att_loss(&s);
    float *dq2 = filled(s.A, PREFILL), *dw2 = filled(s.A, PREFILL), db2 = PREFILL;
    imcap_attention_backward(NULL, NULL, dq2, dw2, &db2, s.rctx, NULL, s.a, s.alpha, s.tpq, s.w, s.L, s.A, s.D,
                             scratch);
    check_grad("attention dq (no extra)", s.q, s.A, dq2, att_loss, &s);
    check_grad("attention dw (no extra)", s.w, s.A, dw2, att_loss, &s);
    free(s.a), free(s.p), free(s.q), free(s.w), free(s.rctx), free(s.ralpha), free(s.ctx), free(s.alpha);
    free(s.tpq), free(da), free(dp), free(dq), free(dw), free(scratch), free(dq2), free(dw2);
}

/* ------------------------------------------------------------------ softmax */

Test(softmax, small_and_large) {
    /* softmax(1,2,3) = (1, e, e^2) / (1 + e + e^2), 1 + e + e^2 = 11.107337927
     * = (0.0900305732, 0.2447284711, 0.6652409558); a shift by 1000 changes
     * nothing, and a naive exp(1000) would overflow */
    float in[3] = {1, 2, 3}, big[3] = {1000, 1001, 1002}, out[3];
    double want[3] = {0.0900305731703805, 0.2447284710547977, 0.6652409557748218};
    imcap_softmax_forward(out, in, 3);
    expect_vec(out, want, 3, 1e-6, "softmax");
    imcap_softmax_forward(out, big, 3);
    expect_vec(out, want, 3, 1e-6, "softmax large");
    float neg[3] = {-1000, -999, -998};
    imcap_softmax_forward(out, neg, 3);
    expect_vec(out, want, 3, 1e-6, "softmax very negative");
    /* one element: 1 */
    float one[1] = {-5};
    imcap_softmax_forward(out, one, 1);
    cr_expect_float_eq(out[0], 1.0f, 1e-7);
}

Test(softmax, log_softmax_small_and_large) {
    /* log_softmax(1,2,3) = (1,2,3) - ln(1 + e + e^2) ... with the shift by the
     * max: (-2, -1, 0) - ln(1 + e^-1 + e^-2) = (-2, -1, 0) - 0.4076059644 */
    float in[3] = {1, 2, 3}, out[3];
    double want[3] = {-2.4076059644443806, -1.4076059644443806, -0.4076059644443806};
    imcap_log_softmax_forward(out, in, 3);
    expect_vec(out, want, 3, 1e-6, "log_softmax");
    /* (0, -1000): exp(-1000) underflows, the result must still be finite:
     * (-log(1 + e^-1000), -1000 - log(1 + e^-1000)) = (0, -1000) */
    float far[2] = {0, -1000};
    imcap_log_softmax_forward(out, far, 2);
    double wfar[2] = {0, -1000};
    expect_vec(out, wfar, 2, 1e-6, "log_softmax far apart");
}

Test(softmax, log_softmax_keeps_precision_for_large_logits) {
    /* Max-subtracted means (x_i - m) - log(sum exp(x_j - m)): x_i - m is
     * exact in float, so the result for (1000, 1001, 1002) is the same
     * (-2, -1, 0) - 0.4076059644 as for (1, 2, 3), to a float ulp of the
     * result. Computing x_i - (m + log s) instead rounds m + log s to the
     * ulp of 1000 (6e-5) and loses ~1e-5; at 3e38 it loses everything:
     * two equal logits must give (-ln 2, -ln 2), not (0, 0). */
    float big[3] = {1000, 1001, 1002}, out[3];
    double want[3] = {-2.4076059644443806, -1.4076059644443806, -0.4076059644443806};
    imcap_log_softmax_forward(out, big, 3);
    expect_vec(out, want, 3, 1e-6, "log_softmax large");
    float eq[2] = {3e38f, 3e38f};
    imcap_log_softmax_forward(out, eq, 2);
    double weq[2] = {-log(2.0), -log(2.0)};
    expect_vec(out, weq, 2, 1e-6, "log_softmax huge ties");
}

Test(sigmoid, values) {
    /* sigmoid(0) = 1/2, sigmoid(ln 3) = 3/4, sigmoid(-ln 3) = 1/4; saturates
     * without NaN at +-100 */
    float in[5] = {0, (float)log(3.0), (float)-log(3.0), 100, -100}, out[5];
    imcap_sigmoid_forward(out, in, 5);
    double want[5] = {0.5, 0.75, 0.25, 1, 0};
    expect_vec(out, want, 5, 1e-6, "sigmoid");
}

typedef struct {
    float *in, *out, *r;
    int n, kind; /* 0 softmax, 1 log-softmax, 2 sigmoid */
} sm_ctx;
static double sm_loss(void *vc) {
    sm_ctx *s = vc;
    if (s->kind == 0) imcap_softmax_forward(s->out, s->in, s->n);
    else if (s->kind == 1) imcap_log_softmax_forward(s->out, s->in, s->n);
    else imcap_sigmoid_forward(s->out, s->in, (size_t)s->n);
    return dot_d(s->out, s->r, s->n);
}
Test(softmax, backward_finite_differences) {
    rng_state = 16;
    static const char *names[3] = {"softmax din", "log_softmax din", "sigmoid din"};
    for (int kind = 0; kind < 3; kind++) {
        sm_ctx s = {.n = 7, .kind = kind};
        s.in = rand_vec(7, -2, 2), s.out = malloc(7 * 4), s.r = rand_vec(7, -1, 1);
        sm_loss(&s);
        float *din = filled(7, PREFILL);
        if (kind == 0) imcap_softmax_backward(din, s.r, s.out, 7);
        else if (kind == 1) imcap_log_softmax_backward(din, s.r, s.out, 7);
        else imcap_sigmoid_backward(din, s.r, s.out, 7);
        check_grad(names[kind], s.in, 7, din, sm_loss, &s);
        free(s.in), free(s.out), free(s.r), free(din);
    }
}

/* ------------------------------------------------------------------ conv vs loops */

Test(conv2d, matches_plain_loops_on_random_input) {
    /* a direct 7-loop convolution in double as the reference, over several
     * geometries (the fast path is im2col + sgemm) */
    rng_state = 17;
    int geo[][7] = {{3, 9, 9, 4, 3, 1, 1}, {2, 8, 7, 3, 3, 2, 1}, {4, 6, 6, 5, 1, 1, 0},
                    {1, 11, 11, 2, 5, 3, 2}, {3, 5, 5, 2, 5, 1, 2}};
    for (size_t gI = 0; gI < sizeof geo / sizeof geo[0]; gI++) {
        int C = geo[gI][0], H = geo[gI][1], W = geo[gI][2], O = geo[gI][3], k = geo[gI][4], s = geo[gI][5],
            p = geo[gI][6];
        int Ho = (H + 2 * p - k) / s + 1, Wo = (W + 2 * p - k) / s + 1;
        float *in = rand_vec((size_t)C * H * W, -1, 1), *w = rand_vec((size_t)O * C * k * k, -1, 1),
              *b = rand_vec(O, -1, 1), *out = malloc((size_t)O * Ho * Wo * 4);
        conv(out, in, w, b, C, H, W, O, k, s, p);
        for (int o = 0; o < O; o++)
            for (int y = 0; y < Ho; y++)
                for (int x = 0; x < Wo; x++) {
                    double acc = b[o];
                    for (int c = 0; c < C; c++)
                        for (int ky = 0; ky < k; ky++)
                            for (int kx = 0; kx < k; kx++) {
                                int iy = y * s - p + ky, ix = x * s - p + kx;
                                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                                acc += (double)w[((o * C + c) * k + ky) * k + kx] * in[(c * H + iy) * W + ix];
                            }
                    float got = out[(o * Ho + y) * Wo + x];
                    cr_expect(fabs(got - acc) <= 1e-5 * fmax(1, fabs(acc)), "geometry %zu out[%d,%d,%d] %g vs %g", gI,
                              o, y, x, got, acc);
                }
        free(in), free(w), free(b), free(out);
    }
}

/* ---- format 2's inference layers */

Test(format2_kernels, adaptive_avgpool_windows_as_torch) {
    /* a 5-row, 1-column plane of 0..4 pooled to 3: rows {0,1}, {1,2,3}, {3,4} */
    float in[5] = {0, 1, 2, 3, 4}, out[3];
    imcap_adaptive_avgpool_forward(out, in, 1, 5, 1, 3, 1);
    cr_expect_float_eq(out[0], 0.5f, 1e-7);
    cr_expect_float_eq(out[1], 2.0f, 1e-7);
    cr_expect_float_eq(out[2], 3.5f, 1e-7);
    /* upsampling 2 -> 3 repeats: rows {0}, {0,1}, {1} */
    float in2[2] = {1, 3}, out2[3];
    imcap_adaptive_avgpool_forward(out2, in2, 1, 2, 1, 3, 1);
    cr_expect(out2[0] == 1.0f && out2[1] == 2.0f && out2[2] == 3.0f);
    /* 4x4 -> 2x2 is a 2x2 mean per quadrant, per channel */
    float q[2 * 16], o[2 * 4];
    for (int i = 0; i < 32; i++) q[i] = (float)i;
    imcap_adaptive_avgpool_forward(o, q, 2, 4, 4, 2, 2);
    cr_expect_float_eq(o[0], (0 + 1 + 4 + 5) / 4.0f, 1e-6);
    cr_expect_float_eq(o[7], (26 + 27 + 30 + 31) / 4.0f, 1e-6);
}

Test(format2_kernels, padded_maxpool_ignores_padding) {
    /* all-negative input: a -inf padding never wins, a zero padding would */
    float in[9], out[4];
    for (int i = 0; i < 9; i++) in[i] = -1.0f - (float)i;
    imcap_maxpool_pad_infer(out, in, 1, 3, 3, 3, 2, 1); /* ResNet's stem pool on 3x3: 2x2 out */
    /* windows: rows/cols {0,1} and {1,2} */
    cr_expect(out[0] == -1.0f && out[1] == -2.0f && out[2] == -4.0f && out[3] == -5.0f, "%g %g %g %g", out[0], out[1],
              out[2], out[3]);
    /* pad 0 is the unpadded pool */
    float a[4], b[4];
    float x[16];
    for (int i = 0; i < 16; i++) x[i] = (float)((i * 7) % 5);
    imcap_maxpool_pad_infer(a, x, 1, 4, 4, 2, 2, 0);
    imcap_maxpool_infer(b, x, 1, 4, 4, 2, 2, 0);
    cr_expect_arr_eq(a, b, sizeof a);
}

/* The padded pool is separable (rows, then columns); the loop it replaced
 * folded each window in row-major order. Same element, to the bit, with
 * NaNs, signed zeros and ties, for every window shape and border. */
static float pool_take(float m, float x) { return x > m || (x != x && m == m) ? x : m; }
Test(format2_kernels, padded_maxpool_is_the_row_major_fold) {
    const int shapes[][3] = {{3, 2, 1}, {3, 1, 1}, {2, 2, 1}, {5, 2, 2}, {3, 3, 1}, {4, 1, 2}};
    for (size_t t = 0; t < sizeof shapes / sizeof *shapes; t++)
        for (int H = 1; H <= 9; H += 2)
            for (int W = 1; W <= 300; W += W < 20 ? 1 : 137) {
                int k = shapes[t][0], s = shapes[t][1], pad = shapes[t][2];
                if (H + 2 * pad < k || W + 2 * pad < k) continue;
                int Ho = (H + 2 * pad - k) / s + 1, Wo = (W + 2 * pad - k) / s + 1;
                float *in = malloc(sizeof(float) * 2 * H * W), *got = malloc(sizeof(float) * 2 * Ho * Wo);
                uint32_t r = 12345u + (uint32_t)(H * 1000 + W);
                for (int i = 0; i < 2 * H * W; i++) {
                    r = r * 1664525u + 1013904223u;
                    int v = (int)(r >> 24) % 11;
                    in[i] = v == 0 ? NAN : v == 1 ? -0.0f : v == 2 ? 0.0f : (float)(v % 4) - 2.0f;
                    if (v == 3) in[i] = (r & 256) ? -NAN : NAN; /* two NaN signs: which one is kept shows */
                }
                imcap_maxpool_pad_infer(got, in, 2, H, W, k, s, pad);
                for (int c = 0; c < 2; c++)
                    for (int oy = 0; oy < Ho; oy++)
                        for (int ox = 0; ox < Wo; ox++) {
                            int y0 = oy * s - pad, x0 = ox * s - pad, y1 = y0 + k, x1 = x0 + k;
                            y0 = y0 < 0 ? 0 : y0, x0 = x0 < 0 ? 0 : x0, y1 = y1 > H ? H : y1, x1 = x1 > W ? W : x1;
                            const float *pl = in + (size_t)c * H * W;
                            float m = pl[y0 * W + x0];
                            for (int y = y0; y < y1; y++)
                                for (int x = x0; x < x1; x++) m = pool_take(m, pl[y * W + x]);
                            float g = got[(c * Ho + oy) * Wo + ox];
                            cr_assert(!memcmp(&g, &m, sizeof g), "k %d s %d pad %d H %d W %d: (%d,%d,%d) %g vs %g", k, s,
                                      pad, H, W, c, oy, ox, g, m);
                        }
                free(in);
                free(got);
            }
}

Test(format2_kernels, batchnorm_eval_and_residual_relu) {
    float x[4] = {1, -2, 3, 0.5f}, y[4];
    float w[2] = {2, 0.5f}, b[2] = {0.1f, -1}, mu[2] = {1, -1}, var[2] = {3, 0.25f};
    imcap_batchnorm_infer(y, x, 2, 2, w, b, mu, var, 1e-5f, 0);
    for (int i = 0; i < 4; i++) {
        int c = i / 2;
        double want = (x[i] - mu[c]) / sqrt(var[c] + 1e-5) * w[c] + b[c];
        cr_expect(fabs(y[i] - want) < 1e-6, "bn %d: %g vs %g", i, y[i], want);
    }
    float r[4];
    imcap_batchnorm_infer(r, x, 2, 2, w, b, mu, var, 1e-5f, 1);
    for (int i = 0; i < 4; i++) cr_expect_eq(r[i], y[i] > 0 ? y[i] : 0.0f);
    float s[4];
    imcap_add_relu(s, x, y, 4);
    for (int i = 0; i < 4; i++) cr_expect_eq(s[i], x[i] + y[i] > 0 ? x[i] + y[i] : 0.0f);
    /* one pass of bn, residual and ReLU = the passes one after the other,
     * from [C,P] and from the transposed [P,C] */
    imcap_bn_params bp = {w, b, mu, var, 1e-5f};
    float xt[4] = {x[0], x[2], x[1], x[3]}, res[4] = {0.5f, 3, -7, 0.25f}, u[4], ut[4], sep[4];
    imcap_batchnorm_infer_ex(u, x, 2, 1, 2, 2, &bp, res, 1);
    imcap_batchnorm_infer_ex(ut, xt, 1, 2, 2, 2, &bp, res, 1);
    imcap_add_relu(sep, y, res, 4);
    cr_expect_arr_eq(u, sep, sizeof u);
    cr_expect_arr_eq(ut, sep, sizeof ut);
    imcap_batchnorm_infer_ex(ut, xt, 1, 2, 2, 2, &bp, NULL, 0);
    cr_expect_arr_eq(ut, y, sizeof ut);
}
