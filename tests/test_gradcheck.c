/* test_gradcheck.c — finite-difference checks of the training gradient
 * (issue 4, points 1 and 2).
 *
 * On tiny random models, the analytic gradient that imcap_worker_run leaves
 * in the worker's gradient block is compared, for every tensor of the
 * parameter table, with central differences of the loss
 *   L = (ce_sum + ce_extra_sum) / token_norm + att_reg * reg_sum / example_norm + sup_sum / token_norm
 * read from imcap_loss_stats, computed by perturbing m->block in place.
 *
 * Numerics (why these numbers; measured on these models):
 * - The forward runs in float32 (the loss is summed in double from float
 *   logits), so L ~ 2 carries a rounding noise of up to NOISE_L = 1e-7
 *   (measured: |analytic - numeric| * h stays below 1e-7 at every step size
 *   used). A central difference D(h) thus has noise ~1e-7 / h and a
 *   truncation error h^2 / 6 * L'''. We Richardson-extrapolate,
 *   (4 D(h/2) - D(h)) / 3 = L' + O(h^4), which lets h be large: STEP = 4e-2
 *   (parameters are O(0.1..1); the truncation left is < 1e-4 relative even
 *   on the most curved entries, and the noise ~3e-6). We divide by the step
 *   actually taken, (float)(p + h) - (float)(p - h).
 * - Relative error |a - n| / max(floor, |a| + |n|) with floor =
 *   max(1e-3, 2 NOISE_L / (TOL h)): below the floor FD noise would dominate
 *   (entries whose true gradient is ~0, e.g. full_att.bias, to which softmax
 *   is invariant), so such entries are held to an absolute error of
 *   TOL * floor, of which noise can use at most half.
 * - TOL = 1e-2. Measured worst errors are ~3e-3 (~1e-3 at STEP, the larger
 *   ones at small h on the first conv), so float noise stays well under it,
 *   while real bugs (a missing term, a wrong factor, a transposed index, a
 *   mask ignored) give errors of order 1e-1..1: see the negative controls,
 *   which assert the checker reports each of them.
 * - ReLU and max-pool have kinks; everything after the encoder is smooth
 *   (tanh, sigmoid, softmax, fixed dropout masks). For encoder tensors the
 *   step is halved from STEP (down to MIN_STEP at most) until the encoder's
 *   pattern (every ReLU's sign and every max-pool's winner, over the three
 *   images) is the same at p - h and at p + h as at p. The encoder is
 *   piecewise affine in any one parameter, and a max of affine functions
 *   with the same winner at both ends of an interval has it throughout, so
 *   then no kink lies in [p - h, p + h]. Entries with a kink closer than
 *   MIN_STEP are skipped and counted; the test asserts at most 20% of all
 *   entries are skipped and every tensor has enough checked entries (half of
 *   a small tensor, WANT of a large one), so it cannot pass by skipping.
 * - Dropout masks are a function of (seed, step, example id, t), so with a
 *   fixed seed and step the loss is a deterministic smooth function of the
 *   parameters and finite differences are valid. imcap_worker_run applies
 *   dropout only when gradients are requested (no_grad is evaluation mode),
 *   so with dropout the loss is read from a gradient-mode run (checked to be
 *   the loss the gradient belongs to, and to differ from the no_grad one). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "model/network.h"
#include "image/image.h"
#include "train/train.h"
#include "util/util.h"

#define TOL 1e-2
#define FLOOR 1e-3
#define NOISE_L 1e-7
#define STEP 4e-2
#define MIN_STEP 1e-3
#define SMALL 64
#define WANT 20
#define N_EX 3

static const char *VOCAB[] = {"<pad>", "<start>", "<end>", "<unk>", "red", "blue", "circle", "left", "of"};
#define NV ((int)(sizeof VOCAB / sizeof VOCAB[0]))

/* conv(3) -> relu -> maxpool -> conv(stride 2) -> relu -> coords: 12 -> 6 -> 3, D = 3 + 2, L = 9 */
static const char *CFG_COORDS =
    "{\"image_size\": 12, \"mean\": [0.485, 0.456, 0.406], \"std\": [0.229, 0.224, 0.225],"
    " \"encoder\": [{\"type\": \"conv\", \"out\": 4, \"kernel\": 3, \"stride\": 1, \"pad\": 1}, {\"type\": \"relu\"},"
    " {\"type\": \"maxpool\", \"kernel\": 2, \"stride\": 2},"
    " {\"type\": \"conv\", \"out\": 3, \"kernel\": 3, \"stride\": 2, \"pad\": 1}, {\"type\": \"relu\"},"
    " {\"type\": \"coords\"}],"
    " \"embed_dim\": 4, \"hidden_dim\": 5, \"attention_dim\": 3, \"max_length\": 6}";
/* two max-pools, no coords: 12 -> 6 -> 3, D = 4, L = 9; the features come out of a max-pool */
static const char *CFG_POOLS =
    "{\"image_size\": 12, \"mean\": [0.485, 0.456, 0.406], \"std\": [0.229, 0.224, 0.225],"
    " \"encoder\": [{\"type\": \"conv\", \"out\": 4, \"kernel\": 3, \"stride\": 1, \"pad\": 1}, {\"type\": \"relu\"},"
    " {\"type\": \"maxpool\", \"kernel\": 2, \"stride\": 2},"
    " {\"type\": \"conv\", \"out\": 4, \"kernel\": 3, \"stride\": 1, \"pad\": 1}, {\"type\": \"relu\"},"
    " {\"type\": \"maxpool\", \"kernel\": 2, \"stride\": 2}],"
    " \"embed_dim\": 4, \"hidden_dim\": 5, \"attention_dim\": 3, \"max_length\": 6}";
/* a 1x1 grid: 8 -> conv stride 2 -> 4 -> maxpool 4 -> 1, D = 3 + 2, L = 1 (alpha == 1) */
static const char *CFG_GRID1 =
    "{\"image_size\": 8, \"mean\": [0.485, 0.456, 0.406], \"std\": [0.229, 0.224, 0.225],"
    " \"encoder\": [{\"type\": \"conv\", \"out\": 3, \"kernel\": 3, \"stride\": 2, \"pad\": 1}, {\"type\": \"relu\"},"
    " {\"type\": \"maxpool\", \"kernel\": 4, \"stride\": 4}, {\"type\": \"coords\"}],"
    " \"embed_dim\": 4, \"hidden_dim\": 5, \"attention_dim\": 3, \"max_length\": 6}";

/* CFG_COORDS with Xu et al.'s deep output layer (format 2): the logits come
 * from tanh(deep_h(h) + deep_z(z) + E y), so the embedding, the gated
 * context and h each reach them by a second path */
static const char *CFG_DEEP =
    "{\"image_size\": 12, \"mean\": [0.485, 0.456, 0.406], \"std\": [0.229, 0.224, 0.225],"
    " \"encoder\": [{\"type\": \"conv\", \"out\": 4, \"kernel\": 3, \"stride\": 1, \"pad\": 1}, {\"type\": \"relu\"},"
    " {\"type\": \"maxpool\", \"kernel\": 2, \"stride\": 2},"
    " {\"type\": \"conv\", \"out\": 3, \"kernel\": 3, \"stride\": 2, \"pad\": 1}, {\"type\": \"relu\"},"
    " {\"type\": \"coords\"}],"
    " \"embed_dim\": 4, \"hidden_dim\": 5, \"attention_dim\": 3, \"max_length\": 6, \"output\": \"deep\"}";

typedef struct {
    imcap_model *m;
    imcap_example ex[N_EX];
    unsigned char *rgb[N_EX];
    int tokens[N_EX][8];
    imcap_loss_options opt;
    double token_norm, example_norm;
    imcap_trainer_worker *eval; /* the worker that evaluates L */
    imcap_encoder_acts enc[N_EX]; /* for kink detection */
    int *sig0, *sig;               /* encoder kink signatures */
    size_t sig_len;
} fixture;

static imcap_model *make_model(const char *json, uint64_t seed) {
    imcap_config cfg;
    imcap_error err;
    memset(&err, 0, sizeof err);
    cr_assert_eq(imcap_config_parse(json, "test config", &cfg, &err), IMCAP_OK, "config: %s", err.msg);
    imcap_vocab v = {NV, (char **)VOCAB};
    imcap_model *m = NULL;
    cr_assert_eq(imcap_model_create(&cfg, &v, &m, &err), IMCAP_OK, "create: %s", err.msg);
    imcap_model_init_random(m, seed);
    /* The init leaves biases at 0 (forget gate 1): shift every parameter a
     * little so no tensor sits at a special point where a bug could hide
     * (a bias term dropped from the forward is invisible at 0). */
    imcap_rng r;
    imcap_rng_seed(&r, seed ^ 0x5eedULL);
    for (size_t k = 0; k < m->tab.total; k++) m->block[k] += (float)(0.1 * imcap_rng_normal(&r));
    imcap_model_sync(m);
    return m;
}

static void fixture_init(fixture *f, const char *json, float dropout, float att_reg, uint64_t seed) {
    memset(f, 0, sizeof *f);
    f->m = make_model(json, seed);
    int S = f->m->cfg.image_size;
    imcap_rng r;
    imcap_rng_seed(&r, seed * 7 + 1);
    /* lengths in no sorted order, so the worker's longest-first reordering is exercised */
    const int lengths[N_EX] = {4, 2, 6};
    long total = 0;
    for (int e = 0; e < N_EX; e++) {
        f->rgb[e] = malloc((size_t)S * S * 3);
        cr_assert_not_null(f->rgb[e]);
        for (int k = 0; k < S * S * 3; k++) f->rgb[e][k] = (unsigned char)imcap_rng_int(&r, 256);
        for (int t = 0; t < lengths[e] - 1; t++) f->tokens[e][t] = 3 + imcap_rng_int(&r, NV - 3);
        f->tokens[e][lengths[e] - 1] = IMCAP_TOK_END;
        f->ex[e].rgb = f->rgb[e];
        f->ex[e].tokens = f->tokens[e];
        f->ex[e].length = lengths[e];
        f->ex[e].id = 1000 + 17 * (uint64_t)e;
        total += lengths[e];
    }
    f->opt.att_reg = att_reg;
    f->opt.dropout = dropout;
    f->opt.seed = seed;
    f->opt.step = 3;
    f->token_norm = (double)total;
    f->example_norm = N_EX;
    f->eval = imcap_worker_new(f->m, N_EX, 0);
    cr_assert_not_null(f->eval);

    const imcap_config *c = &f->m->cfg;
    for (int e = 0; e < N_EX; e++) {
        cr_assert_eq(imcap_encoder_acts_init(&f->enc[e], c, 1, 1), IMCAP_OK);
        imcap_normalise(f->rgb[e], S, c->mean, c->std, f->enc[e].act[0]);
    }
    size_t per = 0;
    for (int i = 0; i < c->n_layers; i++) {
        const imcap_layer *l = &c->layers[i];
        if (l->type == IMCAP_LAYER_RELU || l->type == IMCAP_LAYER_MAXPOOL) per += (size_t)l->out_c * l->out_h * l->out_w;
    }
    f->sig_len = per * N_EX;
    f->sig0 = calloc(f->sig_len + 1, sizeof(int));
    f->sig = calloc(f->sig_len + 1, sizeof(int));
    cr_assert(f->sig0 && f->sig);
}

static void fixture_free(fixture *f) {
    for (int e = 0; e < N_EX; e++) free(f->rgb[e]), imcap_encoder_acts_free(&f->enc[e]);
    imcap_worker_free(f->eval);
    imcap_model_free(f->m);
    free(f->sig0), free(f->sig);
}

/* Which side of every ReLU kink each unit is on, and every max-pool's winners. */
static void encoder_signature(fixture *f, int *sig) {
    const imcap_config *c = &f->m->cfg;
    size_t k = 0;
    for (int e = 0; e < N_EX; e++) {
        imcap_encoder_forward(c, &f->m->p, NULL, &f->enc[e]);
        for (int i = 0; i < c->n_layers; i++) {
            const imcap_layer *l = &c->layers[i];
            size_t n = (size_t)l->out_c * l->out_h * l->out_w;
            if (l->type == IMCAP_LAYER_RELU)
                for (size_t j = 0; j < n; j++) sig[k++] = f->enc[e].act[i][j] > 0.0f;
            else if (l->type == IMCAP_LAYER_MAXPOOL)
                for (size_t j = 0; j < n; j++) sig[k++] = f->enc[e].argmax[i][j];
        }
    }
}

/* L from a run's stats (the header's formula; ce_extra_sum: --rel-weight's
 * extra share of the reweighted words' CE). */
static double objective(const fixture *f, const imcap_loss_stats *st) {
    return (st->ce_sum + st->ce_extra_sum) / f->token_norm + f->opt.att_reg * st->reg_sum / f->example_norm +
           st->sup_sum / f->token_norm;
}

/* L at the current parameters. Dropout is applied by the worker only in
 * gradient mode, so then the loss comes from a gradient-mode run (its
 * gradient is discarded). */
static double loss(fixture *f) {
    imcap_loss_stats st;
    memset(&st, 0, sizeof st);
    int no_grad = f->opt.dropout == 0.0f;
    if (!no_grad) memset(imcap_worker_grads(f->eval, NULL), 0, f->m->tab.total * sizeof(float));
    imcap_worker_run(f->eval, f->m, f->ex, N_EX, &f->opt, f->token_norm, f->example_norm, no_grad, &st);
    return objective(f, &st);
}

/* The analytic gradient, into a malloc'd copy. */
static float *analytic(fixture *f, imcap_trainer_worker *w, const imcap_loss_options *opt, imcap_loss_stats *st) {
    float *g = imcap_worker_grads(w, NULL);
    memset(g, 0, f->m->tab.total * sizeof(float));
    imcap_loss_stats local;
    memset(&local, 0, sizeof local);
    imcap_worker_run(w, f->m, f->ex, N_EX, opt, f->token_norm, f->example_norm, 0, st ? st : &local);
    float *copy = malloc(f->m->tab.total * sizeof(float));
    cr_assert_not_null(copy);
    memcpy(copy, g, f->m->tab.total * sizeof(float));
    return copy;
}

/* Whether moving block[k] within p0 +- h crosses a ReLU or max-pool kink. The
 * encoder is piecewise affine in any one parameter (a conv is affine in its
 * weights and its input, ReLU and max-pool select among affine pieces; the
 * winner of a max of affine functions at both ends of an interval wins
 * throughout), so an unchanged pattern at p0 - h and p0 + h means no kink
 * anywhere in between. */
static int crosses_kink(fixture *f, size_t k, double h) {
    float *b = f->m->block, p0 = b[k];
    int kink = 0;
    for (int s = -1; s <= 1 && !kink; s += 2) {
        b[k] = (float)(p0 + s * h);
        encoder_signature(f, f->sig);
        kink = memcmp(f->sig, f->sig0, f->sig_len * sizeof(int)) != 0;
    }
    b[k] = p0;
    return kink;
}

/* Central difference with step h at block[k]. */
static double central(fixture *f, size_t k, double h) {
    float *b = f->m->block, p0 = b[k];
    float up = (float)(p0 + h), dn = (float)(p0 - h);
    b[k] = up;
    double lp = loss(f);
    b[k] = dn;
    double lm = loss(f);
    b[k] = p0;
    return (lp - lm) / ((double)up - (double)dn);
}

/* The FD estimate's own noise is ~NOISE_L / h, so the floor of the relative
 * error grows as h shrinks: at the floor, noise uses at most half of TOL. */
static double floor_at(double h) { return fmax(FLOOR, 2.0 * NOISE_L / (TOL * h)); }

static double rel_err(double a, double n, double floor) { return fabs(a - n) / fmax(floor, fabs(a) + fabs(n)); }

typedef struct {
    int checked, skipped;  /* skipped: a kink within MIN_STEP */
    double max_err, max_abs_grad, min_step;
    size_t worst;
} tensor_report;

/* Checks tensor ti: every entry of a tensor of <= SMALL entries, else random
 * distinct entries until WANT are checked (at most 3 * WANT tried). */
static tensor_report check_tensor(fixture *f, int ti, const float *grad, imcap_rng *r) {
    const imcap_tensor_info *t = &f->m->tab.t[ti];
    int is_encoder = strncmp(t->name, "encoder.", 8) == 0, all = t->count <= SMALL;
    tensor_report rep;
    memset(&rep, 0, sizeof rep);
    rep.min_step = STEP;
    unsigned char *seen = calloc(t->count, 1);
    cr_assert_not_null(seen);
    if (is_encoder) encoder_signature(f, f->sig0);
    size_t tries = all ? t->count : 3 * WANT;
    for (size_t i = 0; i < tries && (all || rep.checked < WANT); i++) {
        size_t j = i;
        if (!all) {
            do j = (size_t)imcap_rng_int(r, (int)t->count);
            while (seen[j]);
            seen[j] = 1;
        }
        size_t k = t->offset + j;
        double h = STEP;
        while (is_encoder && h >= MIN_STEP && crosses_kink(f, k, h)) h /= 2;
        if (h < MIN_STEP) {
            rep.skipped++;
            continue;
        }
        /* Richardson: D(h) = L' + c h^2 + O(h^4), so (4 D(h/2) - D(h)) / 3 = L' + O(h^4) */
        double num = (4.0 * central(f, k, h / 2) - central(f, k, h)) / 3.0;
        double e = rel_err(grad[k], num, floor_at(h));
        rep.checked++;
        rep.min_step = fmin(rep.min_step, h);
        rep.max_abs_grad = fmax(rep.max_abs_grad, fabs(grad[k]));
        if (e > rep.max_err || rep.checked == 1) rep.max_err = e, rep.worst = j;
    }
    free(seen);
    return rep;
}

/* Runs the check over every tensor; returns the number of tensors failing. */
static int check_all(fixture *f, const float *grad, const char *label, int verbose) {
    imcap_rng r;
    imcap_rng_seed(&r, 99);
    int failing = 0, checked = 0, skipped = 0;
    double overall = 0;
    for (int ti = 0; ti < f->m->tab.n; ti++) {
        const imcap_tensor_info *t = &f->m->tab.t[ti];
        tensor_report rep = check_tensor(f, ti, grad, &r);
        checked += rep.checked;
        skipped += rep.skipped;
        overall = fmax(overall, rep.max_err);
        /* a tensor passes only if enough of it was actually checked */
        int enough = rep.checked >= (t->count <= SMALL ? ((int)t->count + 1) / 2 : WANT);
        int bad = rep.max_err > TOL || !enough;
        failing += bad;
        if (verbose || bad)
            fprintf(stderr, "%-13s %-38s n=%-4zu checked %2d skipped %2d  min h %.2e  max|g| %.2e  max rel err %.2e%s\n",
                    label, t->name, t->count, rep.checked, rep.skipped, rep.min_step, rep.max_abs_grad, rep.max_err,
                    bad ? (enough ? "  <-- FAIL" : "  <-- too few checked") : "");
        if (bad && verbose && rep.checked)
            fprintf(stderr, "    worst entry %zu: analytic %.6e\n", rep.worst, grad[t->offset + rep.worst]);
    }
    if (verbose) {
        fprintf(stderr, "%s: %d tensors, %d entries checked, %d skipped (kinks), max rel err %.2e (tol %.0e)\n",
                label, f->m->tab.n, checked, skipped, overall, TOL);
        /* the check must not pass by skipping */
        cr_expect_leq(skipped * 5, checked + skipped, "%s: %d of %d entries skipped", label, skipped,
                      checked + skipped);
    }
    return failing;
}

static void run_gradcheck(const char *json, float dropout, uint64_t seed, const char *label) {
    fixture f;
    fixture_init(&f, json, dropout, 0.3f, seed);
    /* every tensor of the table the config implies is there, and checked below */
    int expect = 19 + 4 * f.m->cfg.deep_output;
    for (int i = 0; i < f.m->cfg.n_layers; i++) expect += 2 * (f.m->cfg.layers[i].type == IMCAP_LAYER_CONV);
    cr_assert_eq(f.m->tab.n, expect);

    imcap_loss_stats st;
    memset(&st, 0, sizeof st);
    float *g = analytic(&f, f.eval, &f.opt, &st);
    cr_assert_eq(st.n_tokens, (long)f.token_norm);
    cr_assert_eq(st.n_examples, N_EX);
    double l_grad = objective(&f, &st);
    /* the loss FD differentiates is the loss the gradient belongs to */
    cr_assert_eq(loss(&f), l_grad, "%s: loss %.9g vs gradient-run loss %.9g", label, loss(&f), l_grad);
    if (dropout > 0) {
        /* and dropout really acts (else the dropout variant would be vacuous) */
        imcap_loss_stats ev;
        memset(&ev, 0, sizeof ev);
        imcap_worker_run(f.eval, f.m, f.ex, N_EX, &f.opt, f.token_norm, f.example_norm, 1, &ev);
        cr_assert_neq(ev.ce_sum, st.ce_sum, "%s: dropout changed nothing", label);
    }
    int failing = check_all(&f, g, label, 1);
    cr_expect_eq(failing, 0, "%s: %d tensors fail the gradient check", label, failing);
    free(g);
    fixture_free(&f);
}

Test(gradcheck, coords_no_dropout) { run_gradcheck(CFG_COORDS, 0.0f, 11, "coords/p=0"); }
Test(gradcheck, coords_dropout) { run_gradcheck(CFG_COORDS, 0.3f, 12, "coords/p=0.3"); }
Test(gradcheck, two_pools_no_dropout) { run_gradcheck(CFG_POOLS, 0.0f, 13, "pools/p=0"); }
Test(gradcheck, two_pools_dropout) { run_gradcheck(CFG_POOLS, 0.3f, 14, "pools/p=0.3"); }
/* L = 1: alpha == 1, so the attention tensors' gradients are exactly 0 */
Test(gradcheck, grid_1x1_no_dropout) { run_gradcheck(CFG_GRID1, 0.0f, 15, "1x1/p=0"); }
Test(gradcheck, grid_1x1_dropout) { run_gradcheck(CFG_GRID1, 0.3f, 16, "1x1/p=0.3"); }

Test(gradcheck, deep_output_no_dropout) { run_gradcheck(CFG_DEEP, 0.0f, 17, "deep/p=0"); }
Test(gradcheck, deep_output_dropout) { run_gradcheck(CFG_DEEP, 0.3f, 18, "deep/p=0.3"); }

/* Attention targets (train --att-sup): a 3 x 3 grid, two objects whose
 * grown boxes cover the top-left and the bottom-right four cells, and
 * words naming the first, the second, both or neither. The gradient of
 * att_sup * -log(attention inside) is checked with the rest, and leaving it
 * out must fail the attention tensors. */
Test(gradcheck, attention_targets) {
    fixture f;
    fixture_init(&f, CFG_COORDS, 0.0f, 0.3f, 23);
    cr_assert_eq(f.m->cfg.H * f.m->cfg.W, 9);
    imcap_scene scene = {2, {{0, 0, 0, 0.0f, 0.0f, 0.3f, 0.3f}, {0, 0, 0, 0.75f, 0.75f, 0.95f, 0.95f}}};
    const unsigned R = IMCAP_ATT_RELATION, D = IMCAP_ATT_DESC;
    const uint16_t who[N_EX][8] = {{1 | D, 0, 2 | R, 0}, {3, 0}, {0, 2 | D, 2, 1 | R, 3, 0}};
    for (int e = 0; e < N_EX; e++) f.ex[e].att_objects = who[e], f.ex[e].scene = &scene;
    int inside = 0;
    for (int i = 0; i < 9; i++) inside += imcap_scene_cell_in(&scene, 1, i, 3, 3) + imcap_scene_cell_in(&scene, 2, i, 3, 3);
    cr_assert_eq(inside, 8, "each object's grown box holds four cells");
    f.opt.att_sup = 0.7f, f.opt.att_sup_rel = 1.3f, f.opt.att_sup_desc = 0.4f;
    imcap_loss_stats st;
    memset(&st, 0, sizeof st);
    float *g = analytic(&f, f.eval, &f.opt, &st);
    cr_assert_eq(st.n_sup, 7, "the words with targets");
    cr_assert_gt(st.sup_sum, 0.5, "-log of attention masses below 1");
    double l_grad = objective(&f, &st);
    cr_assert_eq(loss(&f), l_grad, "loss %.9g vs gradient-run loss %.9g", loss(&f), l_grad);
    int failing = check_all(&f, g, "targets", 1);
    cr_expect_eq(failing, 0, "targets: %d tensors fail the gradient check", failing);

    /* the targets' gradient left out: the attention tensors fail */
    imcap_loss_options nosup = f.opt;
    nosup.att_sup = 0.0f, nosup.att_sup_rel = 0.0f, nosup.att_sup_desc = 0.0f;
    float *g_nosup = analytic(&f, f.eval, &nosup, NULL);
    imcap_rng r;
    imcap_rng_seed(&r, 6);
    int fa = imcap_param_table_find(&f.m->tab, "decoder.attention.full_att.weight");
    cr_assert_geq(fa, 0);
    tensor_report rep = check_tensor(&f, fa, g_nosup, &r);
    cr_expect_gt(rep.max_err, TOL, "a missing attention-target gradient went unnoticed (err %.2e)", rep.max_err);
    /* and the relation phrases' weight ignored (their words taken at att_sup's) */
    imcap_loss_options norel = f.opt;
    norel.att_sup_rel = norel.att_sup;
    float *g_norel = analytic(&f, f.eval, &norel, NULL);
    rep = check_tensor(&f, fa, g_norel, &r);
    cr_expect_gt(rep.max_err, TOL, "the relation targets' weight went unnoticed (err %.2e)", rep.max_err);
    /* and the description words' weight ignored */
    imcap_loss_options nodesc = f.opt;
    nodesc.att_sup_desc = nodesc.att_sup;
    float *g_nodesc = analytic(&f, f.eval, &nodesc, NULL);
    rep = check_tensor(&f, fa, g_nodesc, &r);
    cr_expect_gt(rep.max_err, TOL, "the description words' weight went unnoticed (err %.2e)", rep.max_err);
    free(g), free(g_nosup), free(g_norel), free(g_nodesc);
    fixture_free(&f);
}

/* --rel-weight: a relation phrase's words and its partner's
 * (IMCAP_ATT_RELATION, IMCAP_ATT_PARTNER) count W times in the CE. The
 * gradient of the weighted loss is checked, and the weight ignored must
 * fail the output layer. */
Test(gradcheck, relation_weight) {
    fixture f;
    fixture_init(&f, CFG_COORDS, 0.0f, 0.3f, 24);
    imcap_scene scene = {2, {{0, 0, 0, 0.0f, 0.0f, 0.3f, 0.3f}, {0, 0, 0, 0.75f, 0.75f, 0.95f, 0.95f}}};
    const unsigned R = IMCAP_ATT_RELATION, P = IMCAP_ATT_PARTNER;
    const uint16_t who[N_EX][8] = {{1, 0, 2 | R, 2 | P, 0}, {3, 0}, {0, 2, 2 | R, 1 | P, 1 | P, 0}};
    for (int e = 0; e < N_EX; e++) f.ex[e].att_objects = who[e], f.ex[e].scene = &scene;
    f.opt.rel_weight = 2.5f;
    imcap_loss_stats st;
    memset(&st, 0, sizeof st);
    float *g = analytic(&f, f.eval, &f.opt, &st);
    cr_assert_eq(st.n_sup, 0, "no attention targets: the CE's weights alone");
    cr_assert_gt(st.ce_extra_sum, 0.0, "the four reweighted words add 1.5 x their CE");
    cr_assert_lt(st.ce_extra_sum, 1.5 * st.ce_sum, "and only theirs");
    cr_assert_eq(loss(&f), objective(&f, &st), "loss %.9g vs gradient-run loss %.9g", loss(&f), objective(&f, &st));
    int failing = check_all(&f, g, "relation weight", 1);
    cr_expect_eq(failing, 0, "relation weight: %d tensors fail the gradient check", failing);

    /* the weight ignored: the output layer's gradient is that of another loss */
    imcap_loss_options plain = f.opt;
    plain.rel_weight = 1.0f;
    memset(&st, 0, sizeof st);
    float *g_plain = analytic(&f, f.eval, &plain, &st);
    cr_expect_eq(st.ce_extra_sum, 0.0, "weight 1 adds nothing");
    imcap_rng r;
    imcap_rng_seed(&r, 7);
    int fc = imcap_param_table_find(&f.m->tab, "decoder.fc.weight");
    cr_assert_geq(fc, 0);
    tensor_report rep = check_tensor(&f, fc, g_plain, &r);
    cr_expect_gt(rep.max_err, TOL, "the relation weight went unnoticed (err %.2e)", rep.max_err);
    free(g), free(g_plain);
    fixture_free(&f);
}

/* The checker must be able to fail: corrupted gradients are reported. */
Test(gradcheck, negative_controls) {
    fixture f;
    fixture_init(&f, CFG_COORDS, 0.3f, 0.3f, 21);
    float *g = analytic(&f, f.eval, &f.opt, NULL);
    imcap_rng r;
    imcap_rng_seed(&r, 5);

    /* 1. one entry of fc.weight with its sign flipped */
    int fc = imcap_param_table_find(&f.m->tab, "decoder.fc.weight");
    cr_assert_geq(fc, 0);
    float *bad = malloc(f.m->tab.total * sizeof(float));
    memcpy(bad, g, f.m->tab.total * sizeof(float));
    size_t k = f.m->tab.t[fc].offset + 7;
    cr_assert_gt(fabsf(g[k]), 1e-3f, "pick an entry with a visible gradient");
    bad[k] = -bad[k];
    tensor_report rep = check_tensor(&f, fc, bad, &r);
    cr_expect_gt(rep.max_err, TOL, "a sign flip went unnoticed (err %.2e)", rep.max_err);
    rep = check_tensor(&f, fc, g, &r);
    cr_expect_leq(rep.max_err, TOL, "the uncorrupted tensor passes");

    /* 2. a 10% scale error over a whole tensor (the lstm's weight_hh):
     * |0.1 g| / (2.1 |g|) = 4.8e-2 > TOL wherever |g| is above the floor */
    int hh = imcap_param_table_find(&f.m->tab, "decoder.lstm.weight_hh");
    cr_assert_geq(hh, 0);
    memcpy(bad, g, f.m->tab.total * sizeof(float));
    for (size_t j = 0; j < f.m->tab.t[hh].count; j++) bad[f.m->tab.t[hh].offset + j] *= 1.1f;
    rep = check_tensor(&f, hh, bad, &r);
    cr_expect_gt(rep.max_err, TOL, "a 10%% scale error went unnoticed (err %.2e)", rep.max_err);

    /* 3. a plausible bug: the regulariser's gradient left out. The attention
     * tensors must then fail, which also shows att_reg matters here. */
    imcap_loss_options noreg = f.opt;
    noreg.att_reg = 0.0f;
    float *g_noreg = analytic(&f, f.eval, &noreg, NULL);
    int fa = imcap_param_table_find(&f.m->tab, "decoder.attention.full_att.weight");
    cr_assert_geq(fa, 0);
    rep = check_tensor(&f, fa, g_noreg, &r);
    cr_expect_gt(rep.max_err, TOL, "missing regulariser gradient went unnoticed (err %.2e)", rep.max_err);

    /* 4. another: the gradient computed without dropout while the loss has it */
    imcap_loss_options nodrop = f.opt;
    nodrop.dropout = 0.0f;
    float *g_nodrop = analytic(&f, f.eval, &nodrop, NULL);
    int fcb = imcap_param_table_find(&f.m->tab, "decoder.fc.weight");
    rep = check_tensor(&f, fcb, g_nodrop, &r);
    cr_expect_gt(rep.max_err, TOL, "ignoring the dropout masks went unnoticed (err %.2e)", rep.max_err);

    /* 5. the whole-model checker counts failing tensors */
    memcpy(bad, g, f.m->tab.total * sizeof(float));
    int e0 = imcap_param_table_find(&f.m->tab, "encoder.0.weight");
    cr_assert_geq(e0, 0);
    for (size_t j = 0; j < f.m->tab.t[e0].count; j++) bad[f.m->tab.t[e0].offset + j] *= -1.0f;
    cr_expect_eq(check_all(&f, bad, "negative control", 0), 1);

    free(bad), free(g), free(g_noreg), free(g_nodrop);
    fixture_free(&f);
}

/* How the examples are split over workers (threads) must not change the
 * gradient beyond float rounding: 3 in one call vs 2 + 1 in two workers
 * (both ways round: {0,1}+{2} and {0}+{1,2}), the blocks summed. All runs use
 * the global token_norm and example_norm. Tolerance 1e-5 relative to the
 * tensor's largest entry: the only difference is the order of float
 * operations (GEMM over 3 rows vs 2, GEMV for 1 row, one more addition),
 * ~6e-8 relative per operation over a few dozen terms; measured ~1e-7.
 * full_att.bias is analytically 0 (softmax ignores a shift of every score):
 * what it holds is the rounding residue of terms as large as the other
 * attention gradients, so it is checked to be ~0 (<= 1e-5 of the block's
 * largest entry) instead; other scales are floored at 1e-3 of that entry.
 * The loss sums differ by the rounding of float logits: 1e-7 relative. */
static void split_check(const char *json, float dropout, uint64_t seed) {
    fixture f;
    fixture_init(&f, json, dropout, 0.3f, seed);
    size_t n = f.m->tab.total;
    imcap_loss_stats s_all;
    memset(&s_all, 0, sizeof s_all);
    float *g_all = analytic(&f, f.eval, &f.opt, &s_all);
    /* the same worker again: bit-identical (no state leaks between runs) */
    float *g_again = analytic(&f, f.eval, &f.opt, NULL);
    cr_expect_eq(memcmp(g_all, g_again, n * sizeof(float)), 0, "a second run of the same worker differs");
    double block_max = 0;
    for (size_t j = 0; j < n; j++) block_max = fmax(block_max, fabs(g_all[j]));

    imcap_trainer_worker *wa = imcap_worker_new(f.m, 2, 0), *wb = imcap_worker_new(f.m, 2, 0);
    cr_assert(wa && wb);
    float *ga = imcap_worker_grads(wa, NULL), *gb = imcap_worker_grads(wb, NULL);
    double worst = 0;
    for (int first = 1; first <= 2; first++) {
        imcap_loss_stats s_a, s_b;
        memset(&s_a, 0, sizeof s_a), memset(&s_b, 0, sizeof s_b);
        memset(ga, 0, n * sizeof(float)), memset(gb, 0, n * sizeof(float));
        imcap_worker_run(wa, f.m, f.ex, first, &f.opt, f.token_norm, f.example_norm, 0, &s_a);
        imcap_worker_run(wb, f.m, f.ex + first, N_EX - first, &f.opt, f.token_norm, f.example_norm, 0, &s_b);
        cr_expect_eq(s_a.n_tokens + s_b.n_tokens, s_all.n_tokens);
        cr_expect_eq(s_a.n_examples + s_b.n_examples, s_all.n_examples);
        cr_expect_float_eq(s_a.ce_sum + s_b.ce_sum, s_all.ce_sum, 1e-7 * s_all.ce_sum);
        cr_expect_float_eq(s_a.reg_sum + s_b.reg_sum, s_all.reg_sum, 1e-7 * s_all.reg_sum + 1e-12);
        for (int ti = 0; ti < f.m->tab.n; ti++) {
            const imcap_tensor_info *t = &f.m->tab.t[ti];
            double mx = 0, diff = 0;
            for (size_t j = t->offset; j < t->offset + t->count; j++) {
                mx = fmax(mx, fabs(g_all[j]));
                diff = fmax(diff, fabs((double)g_all[j] - ((double)ga[j] + (double)gb[j])));
            }
            if (!strcmp(t->name, "decoder.attention.full_att.bias")) {
                /* analytically 0: both results must be rounding residue only */
                double sum = (double)ga[t->offset] + (double)gb[t->offset];
                cr_expect_leq(fabs(g_all[t->offset]), 1e-5 * block_max, "full_att.bias gradient %.3e is not ~0",
                              g_all[t->offset]);
                cr_expect_leq(fabs(sum), 1e-5 * block_max, "full_att.bias gradient %.3e is not ~0", sum);
                continue;
            }
            double rel = diff / fmax(mx, 1e-3 * block_max);
            worst = fmax(worst, rel);
            cr_expect_leq(rel, 1e-5, "%s: split %d+%d changes the gradient by %.2e relative", t->name, first,
                          N_EX - first, rel);
        }
    }
    fprintf(stderr, "split 2+1 and 1+2 vs 3 (dropout %.1f): max relative difference %.2e\n", dropout, worst);
    imcap_worker_free(wa), imcap_worker_free(wb);
    free(g_all), free(g_again);
    fixture_free(&f);
}

Test(gradcheck, split_over_workers) {
    split_check(CFG_COORDS, 0.0f, 31);
    split_check(CFG_POOLS, 0.3f, 32);
}
