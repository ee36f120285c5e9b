/* test_encoder.c — the encoder over n images against n single images, and
 * its lean kernels against the plain versions they replace.
 *
 * - im2col / col2im (no per-element bounds checks) against a naive
 *   bounds-checked version on odd shapes. They are static in conv.c, so they
 *   are reached through the conv with identity weights: with w = I[K,K] and
 *   b = 0 every product is x*1 or x*0 and every sum x + 0, all exact, so the
 *   conv's output IS the im2col matrix bit for bit, and its input gradient
 *   for dout = D is col2im(D).
 * - maxpool with argmax (2x2 stride-2 fast path) equals the plain loop,
 *   values and winners; without argmax (and with a relu folded into it)
 *   equals the argmax version bit for bit, NaN and ties included.
 * - forward over n images equals n single-image forwards bit for bit, at
 *   inference and in training mode, for the default config, one with
 *   stride-2 convs and one that starts without a conv. (It holds on any
 *   BLAS because the forward's products are per image; one product over n
 *   images fails this on OpenBLAS 0.3.21's Haswell kernels even for the
 *   default config, and on its other kernels for the stride-2 one.)
 * - the batched backward equals the sum of per-image backwards within
 *   1e-5 of each tensor's largest element (float summation order differs:
 *   one product over n*P columns instead of n products over P). */
#include <criterion/criterion.h>

#include "testutil.h"
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/simd.h"
#include "model/encoder.h"
#include "model/network.h"
#include "model/model.h"
#include "util/util.h"

static uint64_t rng_state;
static double urand(double lo, double hi) { return tu_urand(&rng_state, lo, hi); }
/* random values, none of them -0 (0 + -0 = +0 would break the identity trick) */
static float *rand_vec(size_t n, double lo, double hi) {
    float *v = malloc((n ? n : 1) * sizeof *v);
    cr_assert_not_null(v);
    for (size_t i = 0; i < n; i++) {
        v[i] = (float)urand(lo, hi);
        if (v[i] == 0.0f) v[i] = 0.5f;
    }
    return v;
}
static float *zeros(size_t n) {
    float *v = calloc(n ? n : 1, sizeof *v);
    cr_assert_not_null(v);
    return v;
}

/* ------------------------------------------------------------ im2col / col2im */

static float naive_at(const float *in, int C, int H, int W, int c, int y, int x) {
    (void)C;
    return (y >= 0 && y < H && x >= 0 && x < W) ? in[((size_t)c * H + y) * W + x] : 0.0f;
}

/* col[(c*k+ky)*k+kx][oy*Wo+ox] for one image [C,H,W] */
static void naive_im2col(float *col, const float *in, int C, int H, int W, int k, int s, int p, int Ho, int Wo) {
    for (int c = 0; c < C; c++)
        for (int ky = 0; ky < k; ky++)
            for (int kx = 0; kx < k; kx++)
                for (int oy = 0; oy < Ho; oy++)
                    for (int ox = 0; ox < Wo; ox++)
                        col[(((size_t)(c * k + ky) * k + kx) * Ho + oy) * Wo + ox] =
                            naive_at(in, C, H, W, c, oy * s - p + ky, ox * s - p + kx);
}

static void naive_col2im(float *din, const float *col, int C, int H, int W, int k, int s, int p, int Ho, int Wo) {
    for (int c = 0; c < C; c++)
        for (int ky = 0; ky < k; ky++)
            for (int kx = 0; kx < k; kx++)
                for (int oy = 0; oy < Ho; oy++)
                    for (int ox = 0; ox < Wo; ox++) {
                        int y = oy * s - p + ky, x = ox * s - p + kx;
                        if (y >= 0 && y < H && x >= 0 && x < W)
                            din[((size_t)c * H + y) * W + x] +=
                                col[(((size_t)(c * k + ky) * k + kx) * Ho + oy) * Wo + ox];
                    }
}

/* n images [n,C,H,W] (nchw) or [C,n,H,W]; the conv with identity weights
 * against the naive im2col of each image, then its input gradient against
 * the naive col2im. */
static void im2col_case(int n, int C, int H, int W, int k, int s, int p, int nchw) {
    if (H + 2 * p < k || W + 2 * p < k) return; /* no output: the config parser rejects it */
    int Ho = (H + 2 * p - k) / s + 1, Wo = (W + 2 * p - k) / s + 1, K = C * k * k, P = Ho * Wo;
    size_t plane = (size_t)H * W, nin = (size_t)n * C * plane;
    size_t in_img = nchw ? (size_t)C * plane : plane, in_ch = nchw ? plane : (size_t)n * plane;
    float *in = rand_vec(nin, -2, 2), *w = zeros((size_t)K * K), *b = zeros((size_t)K);
    for (int r = 0; r < K; r++) w[(size_t)r * K + r] = 1.0f;
    float *out = zeros((size_t)K * n * P), *col = zeros((size_t)n * imcap_conv2d_col_size(C, k, Ho, Wo)),
          *img = zeros((size_t)C * plane);
    float *want = zeros((size_t)K * P);
    imcap_conv2d_forward_n(out, (size_t)n * P, in, in_img, in_ch, w, b, n, C, H, W, K, k, s, p, col);
    for (int j = 0; j < n; j++) {
        for (int c = 0; c < C; c++) memcpy(img + c * plane, in + j * in_img + c * in_ch, plane * sizeof(float));
        naive_im2col(want, img, C, H, W, k, s, p, Ho, Wo);
        for (int r = 0; r < K; r++)
            cr_expect(!memcmp(out + ((size_t)r * n + j) * P, want + (size_t)r * P, (size_t)P * sizeof(float)),
                      "im2col n=%d C=%d %dx%d k=%d s=%d p=%d %s: image %d row %d differs", n, C, H, W, k, s, p,
                      nchw ? "nchw" : "cnhw", j, r);
    }
    /* col2im: dout = D with the identity weights gives din += col2im(D) */
    float *dout = rand_vec((size_t)K * n * P, -1, 1), *din = rand_vec(nin, -1, 1), *din0 = malloc(nin * sizeof(float));
    float *dw = zeros((size_t)K * K), *db = zeros((size_t)K), *dimg = zeros((size_t)C * plane),
          *dcol = zeros((size_t)K * P);
    cr_assert_not_null(din0);
    memcpy(din0, din, nin * sizeof(float));
    imcap_conv2d_backward_n(din, dw, db, dout, (size_t)n * P, in, in_img, in_ch, w, n, C, H, W, K, k, s, p, col);
    for (int j = 0; j < n; j++) {
        for (int c = 0; c < C; c++) memcpy(dimg + c * plane, din0 + j * in_img + c * in_ch, plane * sizeof(float));
        for (int r = 0; r < K; r++)
            memcpy(dcol + (size_t)r * P, dout + ((size_t)r * n + j) * P, (size_t)P * sizeof(float));
        naive_col2im(dimg, dcol, C, H, W, k, s, p, Ho, Wo);
        for (int c = 0; c < C; c++)
            cr_expect(!memcmp(din + j * in_img + c * in_ch, dimg + c * plane, plane * sizeof(float)),
                      "col2im n=%d C=%d %dx%d k=%d s=%d p=%d %s: image %d channel %d differs", n, C, H, W, k, s, p,
                      nchw ? "nchw" : "cnhw", j, c);
    }
    free(in), free(w), free(b), free(out), free(col), free(img), free(want);
    free(dout), free(din), free(din0), free(dw), free(db), free(dimg), free(dcol);
}

Test(im2col, odd_shapes_against_naive) {
    rng_state = 21;
    static const int ks[] = {1, 3, 5};
    for (int ki = 0; ki < 3; ki++)
        for (int s = 1; s <= 2; s++)
            for (int p = 0; p <= 2; p++) {
                int k = ks[ki];
                /* non-square, odd, and small enough that the padding meets
                 * both borders of a row (5 wide with k 5, pad 2) */
                im2col_case(1, 2, 7, 5, k, s, p, 1);
                im2col_case(3, 2, 6, 9, k, s, p, 1);
                im2col_case(3, 3, 5, 8, k, s, p, 0);
                im2col_case(2, 1, 2, 3, k, s, p, 0); /* fewer rows than most kernels */
            }
    im2col_case(1, 3, 1, 1, 3, 1, 1, 1); /* 1x1 image, 3x3 same conv: everything but the centre is padding */
    im2col_case(2, 2, 4, 4, 1, 1, 0, 0); /* 1x1 conv on [C,n,H,W]: the input is used as the matrix */
}

/* ------------------------------------------------------------ maxpool */

/* the loop the kernels replace: ties to the first element, a NaN wins */
static void naive_pool(float *out, int *argmax, const float *in, int C, int H, int W, int k, int s) {
    int Ho = (H - k) / s + 1, Wo = (W - k) / s + 1;
    for (int c = 0; c < C; c++)
        for (int oy = 0; oy < Ho; oy++)
            for (int ox = 0; ox < Wo; ox++) {
                int best = (c * H + oy * s) * W + ox * s;
                float m = in[best];
                for (int ky = 0; ky < k; ky++)
                    for (int kx = 0; kx < k; kx++) {
                        int idx = (c * H + oy * s + ky) * W + ox * s + kx;
                        if (in[idx] > m || (in[idx] != in[idx] && m == m)) m = in[idx], best = idx;
                    }
                out[((size_t)c * Ho + oy) * Wo + ox] = m;
                argmax[((size_t)c * Ho + oy) * Wo + ox] = best;
            }
}

static void pool_case(int C, int H, int W, int k, int s) {
    int Ho = (H - k) / s + 1, Wo = (W - k) / s + 1;
    size_t nin = (size_t)C * H * W, nout = (size_t)C * Ho * Wo;
    float *in = malloc(nin * sizeof(float)), *relu = malloc(nin * sizeof(float));
    float *a = malloc(nout * sizeof(float)), *b = malloc(nout * sizeof(float));
    int *am = malloc(nout * sizeof(int));
    cr_assert(in && relu && a && b && am);
    for (size_t i = 0; i < nin; i++) {
        /* few distinct values, so windows have ties (and +0 / -0 ties), some NaNs of two payloads */
        double u = urand(0, 1);
        uint32_t bits;
        if (u < 0.03) bits = 0x7fc00001u;
        else if (u < 0.05) bits = 0xffc00002u;
        else {
            float v = (float)((int)urand(-3, 4));
            if (v == 0.0f && urand(0, 1) < 0.5) v = -0.0f;
            memcpy(&bits, &v, 4);
        }
        memcpy(&in[i], &bits, 4);
    }
    int *am2 = malloc(nout * sizeof(int));
    cr_assert_not_null(am2);
    naive_pool(b, am2, in, C, H, W, k, s);
    imcap_maxpool_forward(a, am, in, C, H, W, k, s);
    cr_expect(!memcmp(a, b, nout * sizeof(float)) && !memcmp(am, am2, nout * sizeof(int)),
              "maxpool %dx%dx%d k%d s%d: values or winners differ from the plain loop", C, H, W, k, s);
    free(am2);
    imcap_maxpool_infer(b, in, C, H, W, k, s, 0);
    cr_expect(!memcmp(a, b, nout * sizeof(float)), "maxpool %dx%dx%d k%d s%d: no-argmax differs", C, H, W, k, s);
    imcap_maxpool_forward(b, NULL, in, C, H, W, k, s);
    cr_expect(!memcmp(a, b, nout * sizeof(float)), "maxpool %dx%dx%d k%d s%d: argmax NULL differs", C, H, W, k, s);
    imcap_relu_forward(relu, in, nin);
    imcap_maxpool_forward(a, am, relu, C, H, W, k, s);
    imcap_maxpool_infer(b, in, C, H, W, k, s, 1);
    cr_expect(!memcmp(a, b, nout * sizeof(float)), "relu+maxpool %dx%dx%d k%d s%d differs", C, H, W, k, s);
    free(in), free(relu), free(a), free(b), free(am);
}

Test(maxpool_infer, equals_argmax_version) {
    rng_state = 22;
    pool_case(3, 8, 8, 2, 2);
    pool_case(2, 9, 7, 2, 2); /* odd: the last row and column are dropped */
    pool_case(2, 33, 35, 2, 2);
    pool_case(2, 9, 7, 3, 2);
    pool_case(2, 8, 10, 3, 3);
    pool_case(1, 6, 5, 2, 1);
    pool_case(1, 5, 5, 5, 1);
}

Test(maxpool_infer, nan_rule) {
    /* windows of 2x2 s2 over one 2x8 plane: [1 NaN; 5 2] -> the NaN wins;
     * [NaNa NaNb; 1 1] -> the first NaN (payload a); [-0 +0; -1 -2] -> -0
     * (the first of equal values); [+0 -0; ...] -> +0 */
    uint32_t na = 0x7fc00001u, nb = 0x7fc00002u;
    float qa, qb;
    memcpy(&qa, &na, 4), memcpy(&qb, &nb, 4);
    float in[16] = {1, qa, qa, qb, -0.0f, 0.0f, 0.0f, -0.0f, 5, 2, 1, 1, -1, -2, -1, -1}, out[4], rout[4];
    imcap_maxpool_infer(out, in, 1, 2, 8, 2, 2, 0);
    uint32_t bits[4];
    memcpy(bits, out, sizeof bits);
    cr_expect_eq(bits[0], na);
    cr_expect_eq(bits[1], na, "the first NaN stays: got %08x", bits[1]);
    cr_expect_eq(bits[2], 0x80000000u, "-0 then +0: the first wins, got %08x", bits[2]);
    cr_expect_eq(bits[3], 0x00000000u);
    /* relu first: NaN becomes 0 before the pool, so [1 NaN; 5 2] -> 5 */
    imcap_maxpool_infer(rout, in, 1, 2, 8, 2, 2, 1);
    cr_expect_eq(rout[0], 5.0f);
    cr_expect_eq(rout[1], 1.0f);
    memcpy(bits, rout + 2, 8);
    cr_expect_eq(bits[0], 0u, "relu gives +0, got %08x", bits[0]);
    cr_expect_eq(bits[1], 0u);
}

/* ------------------------------------------------------------ relu */

Test(relu, backward_passes_where_positive_and_keeps_bits_elsewhere) {
    /* din -0 where nothing passes stays -0 (adding +0 would make it +0); a
     * NaN gradient passes only where the output is positive */
    float out[6] = {1, 0, -1, 2, 0, 3}, dout[6] = {0.5f, 7, 7, -0.0f, NAN, 0.25f};
    float din[6] = {-0.0f, -0.0f, 1, 2, 3, -0.0f};
    imcap_relu_backward(din, dout, out, 6);
    uint32_t bits[6];
    memcpy(bits, din, sizeof bits);
    cr_expect_eq(din[0], 0.5f);
    cr_expect_eq(bits[1], 0x80000000u, "-0 kept, got %08x", bits[1]);
    cr_expect_eq(din[2], 1.0f);
    cr_expect_eq(din[3], 2.0f);
    cr_expect_eq(din[4], 3.0f, "a NaN where the output is 0 does not pass");
    cr_expect_eq(din[5], 0.25f);
}

/* ------------------------------------------------------------ the encoder */

static const char *DEFAULT_CFG =
    "{\"image_size\": 64, \"mean\": [0.485, 0.456, 0.406], \"std\": [0.229, 0.224, 0.225], \"encoder\": ["
    "{\"type\": \"conv\", \"out\": 16, \"kernel\": 3, \"stride\": 1, \"pad\": 1}, {\"type\": \"relu\"},"
    "{\"type\": \"maxpool\", \"kernel\": 2, \"stride\": 2},"
    "{\"type\": \"conv\", \"out\": 32, \"kernel\": 3, \"stride\": 1, \"pad\": 1}, {\"type\": \"relu\"},"
    "{\"type\": \"maxpool\", \"kernel\": 2, \"stride\": 2},"
    "{\"type\": \"conv\", \"out\": 64, \"kernel\": 3, \"stride\": 1, \"pad\": 1}, {\"type\": \"relu\"},"
    "{\"type\": \"maxpool\", \"kernel\": 2, \"stride\": 2},"
    "{\"type\": \"conv\", \"out\": 64, \"kernel\": 3, \"stride\": 1, \"pad\": 1}, {\"type\": \"relu\"},"
    "{\"type\": \"coords\"}],"
    " \"embed_dim\": 64, \"hidden_dim\": 256, \"attention_dim\": 128, \"max_length\": 24}";

/* stride-2 convs (one unpadded, one with a 5x5 kernel), a 3x3 stride-2 pool */
static const char *STRIDE2_CFG =
    "{\"image_size\": 37, \"mean\": [0.5, 0.5, 0.5], \"std\": [0.25, 0.25, 0.25], \"encoder\": ["
    "{\"type\": \"conv\", \"out\": 8, \"kernel\": 3, \"stride\": 2, \"pad\": 1}, {\"type\": \"relu\"},"
    "{\"type\": \"conv\", \"out\": 12, \"kernel\": 5, \"stride\": 2, \"pad\": 2}, {\"type\": \"relu\"},"
    "{\"type\": \"maxpool\", \"kernel\": 3, \"stride\": 2},"
    "{\"type\": \"conv\", \"out\": 10, \"kernel\": 3, \"stride\": 2, \"pad\": 0}, {\"type\": \"relu\"},"
    "{\"type\": \"coords\"}],"
    " \"embed_dim\": 8, \"hidden_dim\": 8, \"attention_dim\": 8, \"max_length\": 6}";

/* no conv first (the input is re-laid out), coords in the middle, a 1x1 conv
 * (no im2col), a relu last */
static const char *ODD_CFG =
    "{\"image_size\": 20, \"mean\": [0.5, 0.5, 0.5], \"std\": [0.25, 0.25, 0.25], \"encoder\": ["
    "{\"type\": \"maxpool\", \"kernel\": 2, \"stride\": 2}, {\"type\": \"relu\"},"
    "{\"type\": \"conv\", \"out\": 6, \"kernel\": 3, \"stride\": 1, \"pad\": 1}, {\"type\": \"coords\"},"
    "{\"type\": \"conv\", \"out\": 5, \"kernel\": 1, \"stride\": 1, \"pad\": 0}, {\"type\": \"relu\"},"
    "{\"type\": \"maxpool\", \"kernel\": 2, \"stride\": 2}, {\"type\": \"relu\"}],"
    " \"embed_dim\": 8, \"hidden_dim\": 8, \"attention_dim\": 8, \"max_length\": 6}";

static const char *WORDS[] = {"<pad>", "<start>", "<end>", "<unk>", "a"};

static imcap_model *make_model(const char *json, uint64_t seed) {
    imcap_config cfg;
    imcap_error err;
    memset(&err, 0, sizeof err);
    cr_assert_eq(imcap_config_parse(json, "test config", &cfg, &err), IMCAP_OK, "config: %s", err.msg);
    imcap_vocab v = {5, (char **)WORDS};
    imcap_model *m = NULL;
    cr_assert_eq(imcap_model_create(&cfg, &v, &m, &err), IMCAP_OK, "create: %s", err.msg);
    imcap_model_init_random(m, seed);
    /* non-zero biases: the bias-then-product order is part of what is checked */
    imcap_rng r;
    imcap_rng_seed(&r, seed + 1);
    for (size_t k = 0; k < m->tab.total; k++) m->block[k] += (float)(0.05 * imcap_rng_normal(&r));
    imcap_model_sync(m);
    return m;
}

static size_t feat_size(const imcap_config *c) {
    const imcap_layer *l = &c->layers[c->n_layers - 1];
    return (size_t)l->out_c * l->out_h * l->out_w;
}

/* forward_n over n images against each image alone, bit for bit, in both modes */
static void forward_case(const char *json, int n, uint64_t seed) {
    imcap_model *m = make_model(json, seed);
    const imcap_config *c = &m->cfg;
    size_t in = (size_t)3 * c->image_size * c->image_size, F = feat_size(c);
    float *imgs = rand_vec(n * in, -2.5, 2.5), *alone = malloc(n * F * sizeof(float));
    cr_assert_not_null(alone);
    imcap_encoder_acts one;
    cr_assert_eq(imcap_encoder_acts_init(&one, c, 1, 0), IMCAP_OK);
    for (int j = 0; j < n; j++) {
        memcpy(one.act[0], imgs + j * in, in * sizeof(float));
        imcap_encoder_forward(c, &m->p, &m->epack, &one);
        memcpy(alone + j * F, imcap_encoder_output(c, &one), F * sizeof(float));
    }
    imcap_encoder_acts_free(&one);
    for (int wb = 0; wb <= 1; wb++) {
        imcap_encoder_acts e;
        cr_assert_eq(imcap_encoder_acts_init(&e, c, n + 2, wb), IMCAP_OK); /* more room than used */
        memcpy(e.act[0], imgs, n * in * sizeof(float));
        imcap_encoder_forward_n(c, &m->p, &m->epack, &e, n);
        const float *out = imcap_encoder_output(c, &e);
        for (int j = 0; j < n; j++)
            cr_expect(!memcmp(out + j * F, alone + j * F, F * sizeof(float)),
                      "image %d of %d (with_backward %d) differs from the image alone", j, n, wb);
        cr_expect(!memcmp(e.act[0], imgs, n * in * sizeof(float)), "the forward changed its input");
        imcap_encoder_acts_free(&e);
    }
    free(imgs), free(alone);
    imcap_model_free(m);
}

Test(encoder, forward_n_equals_single_images_default) {
    rng_state = 31;
    forward_case(DEFAULT_CFG, 1, 5);
    forward_case(DEFAULT_CFG, 3, 6);
    forward_case(DEFAULT_CFG, 32, 7);
}

Test(encoder, forward_n_equals_single_images_stride2) {
    rng_state = 32;
    for (int n = 1; n <= 9; n += 2) forward_case(STRIDE2_CFG, n, 8 + n);
}

Test(encoder, forward_n_equals_single_images_odd_layers) {
    rng_state = 33;
    for (int n = 1; n <= 4; n++) forward_case(ODD_CFG, n, 20 + n);
}

/* the batched backward against the per-image backwards summed */
static void backward_case(const char *json, int n, uint64_t seed) {
    imcap_model *m = make_model(json, seed);
    const imcap_config *c = &m->cfg;
    size_t in = (size_t)3 * c->image_size * c->image_size, F = feat_size(c), T = m->tab.total;
    float *imgs = rand_vec(n * in, -2.5, 2.5), *dfeat = rand_vec(n * F, -1, 1);
    float *g1 = zeros(T), *g2 = zeros(T);
    imcap_params v1, v2;
    imcap_params_point(&v1, c, &m->tab, g1);
    imcap_params_point(&v2, c, &m->tab, g2);
    imcap_encoder_acts e;
    cr_assert_eq(imcap_encoder_acts_init(&e, c, 1, 1), IMCAP_OK);
    for (int j = 0; j < n; j++) {
        memcpy(e.act[0], imgs + j * in, in * sizeof(float));
        imcap_encoder_forward(c, &m->p, &m->epack, &e);
        imcap_encoder_backward(c, &m->p, &v1, &e, dfeat + j * F);
    }
    imcap_encoder_acts_free(&e);
    cr_assert_eq(imcap_encoder_acts_init(&e, c, n, 1), IMCAP_OK);
    memcpy(e.act[0], imgs, n * in * sizeof(float));
    imcap_encoder_forward_n(c, &m->p, &m->epack, &e, n);
    imcap_encoder_backward_n(c, &m->p, &v2, &e, dfeat, n);
    imcap_encoder_acts_free(&e);
    int nonzero = 0;
    for (int t = 0; t < m->tab.n; t++) {
        const imcap_tensor_info *ti = &m->tab.t[t];
        double big = 0;
        for (size_t k = 0; k < ti->count; k++) big = fmax(big, fabs(g1[ti->offset + k]));
        nonzero += big > 0;
        for (size_t k = 0; k < ti->count; k++) {
            double a = g1[ti->offset + k], b = g2[ti->offset + k];
            cr_expect(fabs(a - b) <= 1e-5 * big, "%s[%zu]: per image %.9g, batched %.9g (largest %.3g), n=%d",
                      ti->name, k, a, b, big, n);
        }
    }
    cr_expect_gt(nonzero, 0, "no gradient at all");
    free(imgs), free(dfeat), free(g1), free(g2);
    imcap_model_free(m);
}

/* A strided conv whose output rows fill whole 16-lane vectors runs direct
 * from its input split into phases; every output must keep the bits of the
 * im2col product, for ResNet's stem and for other strides and pads. */
Test(encoder, strided_direct_conv_is_the_im2col_product) {
    rng_state = 36;
    /* C, H, W, O, k, s, pad: output widths 32, 16, 16, 48 */
    const int shapes[][7] = {{3, 64, 64, 16, 7, 2, 3}, {5, 9, 32, 7, 3, 2, 1}, {2, 11, 47, 9, 5, 3, 2},
                             {4, 6, 96, 20, 3, 2, 1}};
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        int C = shapes[si][0], H = shapes[si][1], W = shapes[si][2], O = shapes[si][3], k = shapes[si][4],
            st = shapes[si][5], p = shapes[si][6];
        int Ho = (H + 2 * p - k) / st + 1, Wo = (W + 2 * p - k) / st + 1, K = C * k * k, P = Ho * Wo;
        cr_assert_eq(Wo % 16, 0, "shape %zu must fill its vectors", si);
        float *in = rand_vec((size_t)C * H * W, -1, 1), *w = rand_vec((size_t)O * K, -1, 1), *b = rand_vec(O, -1, 1);
        float *col = malloc(imcap_conv2d_col_size(C, k, Ho, Wo) * sizeof(float)), *cm = malloc((size_t)K * P * 4);
        float *got = malloc((size_t)O * P * 4), *want = malloc((size_t)O * P * 4);
        cr_assert(col && cm && got && want);
        imcap_conv2d_forward(got, in, w, b, C, H, W, O, k, st, p, col);
        naive_im2col(cm, in, C, H, W, k, st, p, Ho, Wo);
        imcap_gemm(want, (size_t)P, w, (size_t)K, 1, cm, (size_t)P, O, P, K, b, 0);
        cr_expect(!memcmp(got, want, (size_t)O * P * sizeof(float)), "C%d %dx%d O%d k%d s%d p%d: not the im2col bits", C,
                  H, W, O, k, st, p);
        free(in), free(w), free(b), free(col), free(cm), free(got), free(want);
    }
}

/* The features of img through m's encoder with the pack pk (NULL: none);
 * malloc'ed, imcap_config_feat_size floats. */
static float *features_with(const imcap_model *m, const imcap_encoder_pack *pk, const float *img) {
    const imcap_config *c = &m->cfg;
    size_t in = (size_t)3 * c->image_size * c->image_size, F = feat_size(c);
    float *out = malloc(F * sizeof(float));
    cr_assert_not_null(out);
    imcap_encoder_acts e;
    cr_assert_eq(imcap_encoder_acts_init(&e, c, 1, 0), IMCAP_OK);
    memcpy(e.act[0], img, in * sizeof(float));
    imcap_encoder_forward(c, &m->p, pk, &e);
    memcpy(out, imcap_encoder_output(c, &e), F * sizeof(float));
    imcap_encoder_acts_free(&e);
    return out;
}

/* ResNet's layer4 at 224 ends in 7 x 7 maps: those convs run transposed
 * from the model's encoder pack. The same bits as without the pack, and
 * the pack must be there for the config below (6 x 6 outputs). The pack's
 * Winograd convs (the 12 x 12 basic block) are left out here: they round
 * differently (next test). */
Test(encoder, block_pack_keeps_the_bits) {
    rng_state = 37;
    const char *json =
        "{\"image_size\": 48, \"mean\": [0.485, 0.456, 0.406], \"std\": [0.229, 0.224, 0.225], \"encoder\": ["
        "{\"type\": \"conv\", \"out\": 16, \"kernel\": 7, \"stride\": 2, \"pad\": 3, \"bias\": false},"
        "{\"type\": \"batchnorm\"}, {\"type\": \"relu\"}, {\"type\": \"maxpool\", \"kernel\": 3, \"stride\": 2, \"pad\": 1},"
        "{\"type\": \"basic\", \"planes\": 16, \"stride\": 1, \"downsample\": false},"
        "{\"type\": \"bottleneck\", \"planes\": 16, \"stride\": 2, \"downsample\": true},"
        "{\"type\": \"basic\", \"planes\": 32, \"stride\": 1, \"downsample\": true}],"
        " \"embed_dim\": 8, \"hidden_dim\": 8, \"attention_dim\": 8, \"max_length\": 6}";
    imcap_model *m = make_model(json, 41);
    const imcap_config *c = &m->cfg;
    int packed = 0;
    for (int i = 0; i < c->n_layers; i++)
        for (int j = 0; j < 4; j++) packed += m->epack.wt[i][j] != NULL;
    cr_assert_eq(packed, 3 + 1, "the 6 x 6 convs but the 3x3 stride-1 ones (bottleneck conv2, conv3, downsample; "
                                "basic downsample)");
    size_t in = (size_t)3 * c->image_size * c->image_size, F = feat_size(c);
    float *img = rand_vec(in, -2.5, 2.5);
    imcap_encoder_pack transposed = m->epack;
    memset(transposed.wino, 0, sizeof transposed.wino);
    float *with = features_with(m, &transposed, img), *without = features_with(m, NULL, img);
    cr_expect(!memcmp(with, without, F * sizeof(float)), "the pack changed the features");
    double norm = 0;
    for (size_t i = 0; i < F; i++) norm += fabs(with[i]);
    cr_expect(norm > 0, "the features are all zero: nothing was compared");
    free(img), free(with), free(without);
    imcap_model_free(m);
}

/* The blocks' 3x3 stride-1 convs run by Winograd's F(2x2, 3x3) from the
 * pack, odd maps (7 x 7 in ResNet's layer4 at 224; 9 x 9 below) too: the
 * pack must have them where they fit and only there, and the
 * features must agree with the direct convolutions' to torchvision
 * parity's 1e-4 x max(1, |v|) (in fact a few units of float's precision). */
Test(encoder, block_winograd_agrees_with_the_direct_conv) {
    rng_state = 43;
    const char *json =
        "{\"image_size\": 72, \"mean\": [0.485, 0.456, 0.406], \"std\": [0.229, 0.224, 0.225], \"encoder\": ["
        "{\"type\": \"conv\", \"out\": 16, \"kernel\": 7, \"stride\": 2, \"pad\": 3, \"bias\": false},"
        "{\"type\": \"batchnorm\"}, {\"type\": \"relu\"}, {\"type\": \"maxpool\", \"kernel\": 3, \"stride\": 2, \"pad\": 1},"
        "{\"type\": \"basic\", \"planes\": 16, \"stride\": 1, \"downsample\": false},"
        "{\"type\": \"bottleneck\", \"planes\": 16, \"stride\": 1, \"downsample\": true},"
        "{\"type\": \"basic\", \"planes\": 24, \"stride\": 2, \"downsample\": true}],"
        " \"embed_dim\": 8, \"hidden_dim\": 8, \"attention_dim\": 8, \"max_length\": 6}";
    imcap_model *m = make_model(json, 47);
    const imcap_config *c = &m->cfg;
    int wino = 0;
    for (int i = 0; i < c->n_layers; i++)
        for (int j = 0; j < 4; j++) {
            const imcap_conv_shape *cs = &c->layers[i].conv[j];
            int fits = cs->out && cs->kernel == 3 && cs->stride == 1;
            cr_expect_eq(m->epack.wino[i][j] != NULL, fits, "layer %d conv %d: Winograd weights %s", i, j,
                         fits ? "missing" : "where they do not fit");
            wino += m->epack.wino[i][j] != NULL;
        }
    /* 18 x 18 maps: basic conv1, conv2; bottleneck conv2; the stride-2 block's 9 x 9 conv2 */
    cr_assert_eq(wino, 4);
    size_t in = (size_t)3 * c->image_size * c->image_size, F = feat_size(c);
    float *img = rand_vec(in, -2.5, 2.5);
    float *with = features_with(m, &m->epack, img), *want = features_with(m, NULL, img);
    double worst = 0, norm = 0, diff = 0;
    for (size_t i = 0; i < F; i++) {
        double d = fabs((double)with[i] - want[i]) / fmax(1.0, fabs(want[i]));
        worst = fmax(worst, d), norm += fabs(want[i]), diff += with[i] != want[i];
    }
    cr_expect(norm > 0, "the features are all zero: nothing was compared");
    cr_expect(diff > 0, "no feature changed: the Winograd convs did not run");
    cr_expect(worst <= 1e-4, "Winograd features differ by %.3g x max(1, |v|)", worst);
    free(img), free(with), free(want);
    imcap_model_free(m);
}

Test(encoder, backward_n_equals_summed_single_images) {
    rng_state = 41;
    backward_case(DEFAULT_CFG, 4, 3);
    backward_case(STRIDE2_CFG, 5, 4);
    backward_case(ODD_CFG, 3, 5);
}

Test(encoder, memory_and_arguments) {
    imcap_model *m = make_model(DEFAULT_CFG, 1);
    imcap_encoder_acts e;
    cr_expect_eq(imcap_encoder_acts_init(&e, &m->cfg, 0, 0), IMCAP_E_ARG);
    cr_assert_eq(imcap_encoder_acts_init(&e, &m->cfg, 4, 0), IMCAP_OK);
    cr_expect_null(e.dbuf[0], "no backward scratch at inference");
    cr_expect_null(e.argmax[2], "no argmax at inference");
    imcap_encoder_acts_free(&e);
    cr_assert_eq(imcap_encoder_acts_init(&e, &m->cfg, 4, 1), IMCAP_OK);
    cr_expect_not_null(e.argmax[2]);
    cr_expect_eq(e.act[2], e.act[1], "relu works in place");
    imcap_encoder_acts_free(&e);
    imcap_model_free(m);
}

/* Inference prepares each image from the model's transposed encoder_att
 * (the pack), training from the weights as stored: the same bits. */
Test(encoder, prepare_with_pack_equals_training_form) {
    imcap_model *m = make_model(DEFAULT_CFG, 77);
    const imcap_config *c = &m->cfg;
    size_t F = feat_size(c);
    float *feat = rand_vec(F, -2, 2);
    imcap_decoder_init a, b;
    cr_assert_eq(imcap_decoder_init_alloc(&a, c), IMCAP_OK);
    cr_assert_eq(imcap_decoder_init_alloc(&b, c), IMCAP_OK);
    imcap_decoder_prepare_forward(c, &m->p, &m->pack, feat, &a);
    imcap_decoder_prepare_forward(c, &m->p, NULL, feat, &b);
    size_t LA = (size_t)c->L * c->attention_dim, LD = (size_t)c->L * c->D, H = (size_t)c->hidden_dim;
    cr_expect(!memcmp(a.p, b.p, LA * sizeof(float)), "encoder_att differs");
    cr_expect(!memcmp(a.a, b.a, LD * sizeof(float)) && !memcmp(a.h0, b.h0, H * sizeof(float)) &&
              !memcmp(a.c0, b.c0, H * sizeof(float)));
    imcap_decoder_init_free(&a), imcap_decoder_init_free(&b);
    free(feat);
    imcap_model_free(m);
}
