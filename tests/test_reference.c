/* test_reference.c — the engine against an independent naive implementation
 * of the spec (tests/reference/naive.c: double precision, plain loops, no
 * BLAS, nothing from the library's kernels, encoder, decoder or beam code).
 *
 * Random tiny models (imcap_model_create + imcap_model_init_random, weights
 * then scaled up so the decoder produces captions of several tokens and the
 * beam has choices to make) caption random images; tokens, log-probs,
 * scores, attention maps and the trace file must agree with the reference
 * within 1e-4 * max(1, |value|), the spec's conformance tolerance. Where the
 * reference itself sees two candidates within 1e-4 of each other at a
 * decision the result depends on, the spec lets engines differ: such cases
 * are counted and skipped, and must stay rare. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode/decode.h"
#include "image/image.h"
#include "model/model.h"
#include "testutil.h"

/* tests/meson.build links only this file and testutil.c */
#include "reference/naive.c"

#define TOL 1e-4
#define CLOSE(got, want) (fabs((double)(got) - (double)(want)) <= TOL * fmax(1.0, fabs((double)(want))))

/* ------------------------------------------------------------ fixtures */

typedef struct {
    const char *config;   /* under tests/data/models */
    const char *words;
    uint64_t seed;
    float dec_scale;      /* multiplies every decoder weight after the init */
    float enc_scale;      /* multiplies every encoder weight */
    float emb_scale;      /* further multiplies the embedding */
    float end_bias;       /* added to fc.bias[<end>] so that some captions end early */
    const char *label;
} variant;

/* Scales chosen so that the captions run several tokens and beam 3 differs
 * from greedy on some images (the coverage test below checks both). */
static const variant VARIANTS[] = {
    {"tiny_config.json", "tiny_words.txt", 1, 5.0f, 1.0f, 15.0f, 0.0f, "tiny"},
    {"tiny_nocoords.json", "tiny_words.txt", 2, 3.0f, 1.0f, 1.0f, 0.0f, "no coords"},
    {"tiny_stride2.json", "tiny_words.txt", 3, 5.0f, 1.5f, 5.0f, 1.0f, "stride-2 conv, odd sizes"},
    {"tiny_grid1.json", "tiny_words.txt", 4, 5.0f, 1.0f, 15.0f, 1.0f, "1x1 grid"},
    {"tiny_config.json", "tiny_words60.txt", 5, 3.0f, 1.0f, 15.0f, 1.0f, "64-word vocabulary"},
    {"tiny_config.json", "tiny_words.txt", 6, 1.0f, 1.0f, 1.0f, 0.0f, "unscaled init"},
    {"tiny_deep.json", "tiny_words.txt", 7, 3.0f, 1.0f, 5.0f, 0.5f, "deep output layer"},
};
#define N_VARIANTS (sizeof VARIANTS / sizeof VARIANTS[0])

static char *vocab_json(const char *words_file) {
    size_t n;
    char *text = tu_read(tu_src(words_file), &n);
    cr_assert(text, "cannot read %s", words_file);
    size_t cap = n * 2 + 200;
    char *j = malloc(cap);
    strcpy(j, "[\"<pad>\", \"<start>\", \"<end>\", \"<unk>\"");
    for (char *save = NULL, *w = strtok_r(text, "\r\n", &save); w; w = strtok_r(NULL, "\r\n", &save))
        if (*w) strcat(j, ", \""), strcat(j, w), strcat(j, "\"");
    strcat(j, "]");
    free(text);
    return j;
}

static imcap_model *make_model(const variant *v) {
    char path[512];
    snprintf(path, sizeof path, "tests/data/models/%s", v->config);
    char *cfg_text = tu_read(tu_src(path), NULL);
    cr_assert(cfg_text, "cannot read %s", path);
    snprintf(path, sizeof path, "tests/data/models/%s", v->words);
    char *vj = vocab_json(path);
    imcap_error err;
    imcap_config cfg;
    imcap_vocab vocab;
    cr_assert_eq(imcap_config_parse(cfg_text, v->config, &cfg, &err), IMCAP_OK, "%s", err.msg);
    cr_assert_eq(imcap_vocab_parse(vj, v->words, &vocab, &err), IMCAP_OK, "%s", err.msg);
    imcap_model *m;
    cr_assert_eq(imcap_model_create(&cfg, &vocab, &m, &err), IMCAP_OK, "%s", err.msg);
    imcap_model_init_random(m, v->seed);
    for (int i = 0; i < m->tab.n; i++) {
        const imcap_tensor_info *t = &m->tab.t[i];
        float s = strncmp(t->name, "encoder.", 8) == 0 ? v->enc_scale : v->dec_scale;
        for (size_t k = 0; k < t->count; k++) m->block[t->offset + k] *= s;
        /* zero biases from the init would leave those terms untested */
        if (t->ndim == 1)
            for (size_t k = 0; k < t->count; k++)
                m->block[t->offset + k] += 0.1f * (float)sin(1.7 * (double)(k + 1) + (double)i);
    }
    m->p.fc_b[IMCAP_TOK_END] += v->end_bias;
    /* a strong embedding makes the next token depend on the previous one:
     * captions then follow chains that sometimes reach <end> late */
    for (size_t k = 0; k < (size_t)m->vocab.n * m->cfg.embed_dim; k++) m->p.embedding[k] *= v->emb_scale;
    imcap_model_sync(m);
    imcap_vocab_free(&vocab);
    free(vj), free(cfg_text);
    return m;
}

static uint64_t rng;
static uint32_t rnd(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

/* random RGB, smooth blobs plus noise so the resize has structure to keep */
static imcap_image rand_image(int w, int h, uint64_t seed) {
    imcap_image img = {w, h, malloc((size_t)w * h * 3)};
    rng = seed * 2654435761u + 1;
    double fx = 0.3 + (rnd() % 100) / 200.0, fy = 0.2 + (rnd() % 100) / 150.0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                double v = 128 + 80 * sin(fx * x + c) * cos(fy * y - c) + (double)(rnd() % 61) - 30;
                img.rgb[((size_t)y * w + x) * 3 + c] = (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
    return img;
}

/* ------------------------------------------------------------ comparison */

typedef struct {
    int cases, ambiguous, compared;
    int beam_differs;      /* beam 3 best != greedy */
    int long_finished;     /* best hypothesis ended with <end> after >= 3 tokens */
    int unfinished;        /* best hypothesis hit max_length */
    int leftovers;         /* a result holding an unfinished leftover next to a finished one */
    int total_tokens;
} stats;

static void run_reference(const ref_model *rm, const float *input, ref_prep *pp) {
    double *a = ref_encode(rm, input);
    ref_prepare(rm, a, pp);
}

/* Library result against the reference; what names the case. */
static void compare(const imcap_model *m, const imcap_result *res, const ref_result *ref, const ref_model *rm,
                    const char *what) {
    cr_expect_eq(res->grid_h, rm->H, "%s: grid_h %d, expected %d", what, res->grid_h, rm->H);
    cr_expect_eq(res->grid_w, rm->W, "%s: grid_w %d, expected %d", what, res->grid_w, rm->W);
    cr_expect_eq(res->n_hyps, ref->n_hyps, "%s: %d hypotheses, expected %d", what, res->n_hyps, ref->n_hyps);
    int nh = res->n_hyps < ref->n_hyps ? res->n_hyps : ref->n_hyps;
    for (int j = 0; j < nh; j++) {
        const imcap_hypothesis *h = &res->hyps[j];
        const ref_hyp *g = &ref->hyps[j];
        cr_expect_eq(h->n_tokens, g->n, "%s hyp %d: %d tokens, expected %d", what, j, h->n_tokens, g->n);
        if (h->n_tokens != g->n) continue;
        for (int t = 0; t < g->n; t++) {
            cr_expect_eq(h->tokens[t], g->tokens[t], "%s hyp %d token %d: %d, expected %d", what, j, t, h->tokens[t],
                         g->tokens[t]);
            cr_expect(CLOSE(h->logprobs[t], g->logprobs[t]), "%s hyp %d logprob %d: %.7g, expected %.7g", what, j, t,
                      h->logprobs[t], g->logprobs[t]);
            cr_expect_str_eq(h->words[t], imcap_model_word(m, g->tokens[t]), "%s hyp %d word %d", what, j, t);
            for (int i = 0; i < rm->L; i++)
                cr_expect(CLOSE(h->attention[(size_t)t * rm->L + i], g->alpha[(size_t)t * rm->L + i]),
                          "%s hyp %d alpha[%d][%d]: %.7g, expected %.7g", what, j, t, i,
                          h->attention[(size_t)t * rm->L + i], g->alpha[(size_t)t * rm->L + i]);
        }
        cr_expect(CLOSE(h->score, g->score), "%s hyp %d score %.9g, expected %.9g", what, j, h->score, g->score);
        cr_expect_eq(h->finished, g->finished, "%s hyp %d finished %d, expected %d", what, j, h->finished,
                     g->finished);
        /* text: the words, a final <end> removed, joined by one space */
        char text[4096] = "";
        int nw = (g->n && g->tokens[g->n - 1] == IMCAP_TOK_END) ? g->n - 1 : g->n;
        for (int t = 0; t < nw; t++) {
            if (t) strcat(text, " ");
            strcat(text, imcap_model_word(m, g->tokens[t]));
        }
        cr_expect_str_eq(h->text, text, "%s hyp %d text", what, j);
    }
}

/* One model, one input, one beam width: library vs reference. */
static void check_case(const imcap_model *m, imcap_workspace *ws, const imcap_image *img, const ref_model *rm,
                       const ref_prep *pp, int beam, int max_length, stats *st, ref_result *greedy_out,
                       const char *label) {
    char what[256];
    snprintf(what, sizeof what, "[%s, %dx%d image, beam %d, max_length %d]", label, img->width, img->height, beam,
             max_length);
    imcap_options opt;
    imcap_options_default(&opt);
    opt.beam = beam;
    opt.max_length = max_length;
    imcap_result *res = NULL;
    imcap_error err;
    cr_assert_eq(imcap_caption_image(m, ws, img, &opt, &res, &err), IMCAP_OK, "%s: %s", what, err.msg);
    cr_expect_eq(res->image_width, img->width, "%s: image_width", what);
    cr_expect_eq(res->image_height, img->height, "%s: image_height", what);
    ref_result ref;
    ref_beam(pp, beam, max_length, &ref);
    if (beam == 1) {
        /* the reference's beam 1 must equal its separately written greedy */
        ref_result g;
        ref_greedy(pp, max_length, &g);
        cr_expect_eq(g.hyps[0].n, ref.hyps[0].n, "%s: reference greedy and beam 1 disagree", what);
        for (int t = 0; t < g.hyps[0].n && t < ref.hyps[0].n; t++)
            cr_expect_eq(g.hyps[0].tokens[t], ref.hyps[0].tokens[t], "%s: reference greedy != beam 1", what);
        if (greedy_out) *greedy_out = g;
        else ref_result_free(&g);
    }
    st->cases++;
    if (ref.min_gap < TOL) {
        st->ambiguous++;
    } else {
        st->compared++;
        compare(m, res, &ref, rm, what);
    }
    const ref_hyp *b = &ref.hyps[0];
    st->total_tokens += b->n;
    if (b->finished && b->n >= 3) st->long_finished++;
    if (!b->finished) st->unfinished++;
    int any_f = 0, any_u = 0;
    for (int j = 0; j < ref.n_hyps; j++) any_f |= ref.hyps[j].finished, any_u |= !ref.hyps[j].finished;
    if (any_f && any_u) st->leftovers++;
    if (beam == 3 && greedy_out) {
        const ref_hyp *g = &greedy_out->hyps[0];
        int same = g->n == b->n;
        for (int t = 0; same && t < b->n; t++) same = g->tokens[t] == b->tokens[t];
        if (!same) st->beam_differs++;
    }
    ref_result_free(&ref);
    imcap_result_free(res);
}

static const int IMG_SIZES[][2] = {{0, 0}, {0, 0}, {23, 11}, {7, 30}, {40, 40}};
#define N_IMAGES (sizeof IMG_SIZES / sizeof IMG_SIZES[0])

Test(reference, models_match_the_naive_forward_and_beam_search, .timeout = 300) {
    stats st = {0};
    for (size_t vi = 0; vi < N_VARIANTS; vi++) {
        const variant *v = &VARIANTS[vi];
        imcap_model *m = make_model(v);
        ref_model rm;
        char why[256];
        cr_assert_eq(ref_model_init(&rm, m, why, sizeof why), 0, "%s: %s", v->label, why);
        imcap_model_info info;
        imcap_model_get_info(m, &info);
        cr_expect_eq(info.feature_dim, rm.D, "%s: D", v->label);
        cr_expect_eq(info.grid_h, rm.H, "%s: H", v->label);
        cr_expect_eq(info.grid_w, rm.W, "%s: W", v->label);
        cr_expect_eq(info.vocab_size, rm.V, "%s: V", v->label);
        /* one workspace reused across every call: stale state would show */
        imcap_workspace *ws = imcap_workspace_new(m);
        cr_assert(ws);
        float *input = malloc((size_t)3 * rm.S * rm.S * sizeof(float));
        double *want = malloc((size_t)3 * rm.S * rm.S * sizeof(double));
        for (size_t ii = 0; ii < N_IMAGES; ii++) {
            int w = IMG_SIZES[ii][0] ? IMG_SIZES[ii][0] : rm.S, h = IMG_SIZES[ii][1] ? IMG_SIZES[ii][1] : rm.S;
            imcap_image img = rand_image(w, h, 100 * vi + ii);
            imcap_error err;
            cr_assert_eq(imcap_image_to_input(&img, &m->cfg, input, &err), IMCAP_OK, "%s", err.msg);
            /* preprocessing: exact at image_size; within one grey level of
             * the plain PIL-style resize otherwise (the spec's tolerance) */
            size_t n = (size_t)3 * rm.S * rm.S;
            if (w == rm.S && h == rm.S) {
                ref_normalise(&rm, img.rgb, want);
                for (size_t k = 0; k < n; k++)
                    cr_expect(fabs(input[k] - want[k]) <= 1e-5 * fmax(1, fabs(want[k])),
                              "%s: input[%zu] %.7g, expected %.7g", v->label, k, input[k], want[k]);
            } else {
                unsigned char *rs = malloc((size_t)rm.S * rm.S * 3);
                ref_resize(img.rgb, w, h, rs, rm.S, rm.S);
                ref_normalise(&rm, rs, want);
                for (size_t k = 0; k < n; k++) {
                    double lvl = 1.0 / 255.0 / rm.std[k / ((size_t)rm.S * rm.S)];
                    cr_expect(fabs(input[k] - want[k]) <= lvl + 1e-5, "%s %dx%d: input[%zu] %.7g, expected %.7g +- 1 level",
                              v->label, w, h, k, input[k], want[k]);
                }
                free(rs);
            }
            ref_prep pp;
            run_reference(&rm, input, &pp);
            ref_result greedy = {0};
            char label[128];
            snprintf(label, sizeof label, "%s #%zu", v->label, ii);
            static const int beams[] = {1, 2, 3, 5};
            for (size_t bi = 0; bi < 4; bi++)
                check_case(m, ws, &img, &rm, &pp, beams[bi], 0, &st, &greedy, label);
            /* a max_length below the model's cuts the search short */
            check_case(m, ws, &img, &rm, &pp, 3, 2, &st, NULL, label);
            /* NULL workspace: a temporary one, same answer */
            check_case(m, NULL, &img, &rm, &pp, 2, 0, &st, NULL, label);
            ref_result_free(&greedy);
            ref_prep_free(&pp);
            imcap_image_free(&img);
        }
        free(input), free(want);
        imcap_workspace_free(ws);
        imcap_model_free(m);
    }
    fprintf(stderr, "reference: %d cases, %d compared, %d skipped as near ties, %d beam-3 != greedy, "
                "%d long finished, %d unfinished, %d with leftovers, %.2f tokens per best hypothesis",
                st.cases, st.compared, st.ambiguous, st.beam_differs, st.long_finished, st.unfinished, st.leftovers,
                (double)st.total_tokens / st.cases);
    fprintf(stderr, "\n");
    /* the checks above must not hold vacuously */
    cr_expect(st.ambiguous * 10 <= st.cases, "%d of %d cases had near ties: too many to be a fair check",
              st.ambiguous, st.cases);
    cr_expect(st.beam_differs >= 1, "beam 3 never differs from greedy: the beam search is not exercised");
    cr_expect(st.long_finished >= 1, "no caption ends with <end> after 3 tokens or more");
    cr_expect(st.unfinished >= 1, "no caption reaches max_length");
    cr_expect(st.leftovers >= 1, "no result mixes finished and leftover hypotheses");
    cr_expect((double)st.total_tokens / st.cases >= 2.5, "captions too short (%.2f tokens on average)",
              (double)st.total_tokens / st.cases);
}

/* A random input tensor fed straight to the workspace (values beyond what an
 * image gives), through the internal encode + beam search path. */
Test(reference, random_input_tensor_through_the_workspace) {
    stats st = {0};
    for (size_t vi = 0; vi < N_VARIANTS; vi++) {
        imcap_model *m = make_model(&VARIANTS[vi]);
        ref_model rm;
        char why[256];
        cr_assert_eq(ref_model_init(&rm, m, why, sizeof why), 0, "%s", why);
        imcap_workspace *ws = imcap_workspace_new(m);
        cr_assert(ws);
        rng = 77 + vi;
        size_t n = (size_t)3 * rm.S * rm.S;
        for (size_t k = 0; k < n; k++) ws->enc.act[0][k] = (float)((int)(rnd() % 6001) - 3000) / 1000.0f;
        ref_prep pp;
        run_reference(&rm, ws->enc.act[0], &pp);
        imcap_workspace_encode(ws);
        /* annotations */
        for (int i = 0; i < rm.L; i++)
            for (int d = 0; d < rm.D; d++)
                cr_expect(CLOSE(ws->init.a[(size_t)i * rm.D + d], pp.a[(size_t)i * rm.D + d]),
                          "%s: a[%d][%d] %.7g, expected %.7g", VARIANTS[vi].label, i, d, ws->init.a[(size_t)i * rm.D + d],
                          pp.a[(size_t)i * rm.D + d]);
        for (int beam = 1; beam <= 4; beam += 3) {
            imcap_options opt;
            imcap_options_default(&opt);
            opt.beam = beam;
            imcap_result *res;
            float *logits = NULL;
            imcap_error err;
            cr_assert_eq(imcap_beam_search(ws, &opt, &res, &logits, &err), IMCAP_OK, "%s", err.msg);
            ref_result ref;
            ref_beam(&pp, beam, 0, &ref);
            char what[128];
            snprintf(what, sizeof what, "[%s, random tensor, beam %d]", VARIANTS[vi].label, beam);
            st.cases++;
            if (ref.min_gap < TOL) {
                st.ambiguous++;
            } else {
                compare(m, res, &ref, &rm, what);
                const ref_hyp *b = &ref.hyps[0];
                for (int t = 0; t < b->n && t < res->hyps[0].n_tokens; t++)
                    for (int v = 0; v < rm.V; v++)
                        cr_expect(CLOSE(logits[(size_t)t * rm.V + v], b->logits[(size_t)t * rm.V + v]),
                                  "%s logits[%d][%d] %.7g, expected %.7g", what, t, v, logits[(size_t)t * rm.V + v],
                                  b->logits[(size_t)t * rm.V + v]);
            }
            free(logits);
            ref_result_free(&ref);
            imcap_result_free(res);
        }
        ref_prep_free(&pp);
        imcap_workspace_free(ws);
        imcap_model_free(m);
    }
    cr_expect(st.ambiguous * 4 <= st.cases, "%d of %d cases were near ties", st.ambiguous, st.cases);
}

/* Exact ties. With fc.weight = fc.bias = 0 every logit is 0, every token
 * has log-probability -ln V, and every decision is a tie that the spec's
 * rules settle: candidates by the lower parent_rank * V + token, the final
 * ranking by the earlier finished. Both engines see bit-identical tied
 * scores here, so the tokens are compared without the near-tie escape.
 * Hand-derived results for V = 11, max_length T = 8:
 *   beam 1: argmax ties go to id 0: [0]*8, unfinished, score -8 ln 11.
 *   beam 2: step 1 keeps tokens 0, 1 of the only parent; every later step
 *           keeps tokens 0, 1 of parent 0; leftovers [0]*8 then [0]*7+[1],
 *           tied: the first-joined (rank 0) ranks first.
 *   beam 3: step 1 keeps 0, 1, 2: [<end>] finishes (score -ln 11), width 2,
 *           then as beam 2: ranking [<end>], [0]*8, [0]*7+[1].
 * With V = 5 and beam 10 (width above V), two <end>s finish in the same
 * step with equal scores: step 1 keeps all 5 tokens ([<end>] finishes,
 * width 9, live [0] [1] [3] [4]); step 2 keeps parent 0's 5 tokens and
 * parent 1's tokens 0, 1, 2, 3, so [0 <end>] and [1 <end>] finish tied and
 * must rank in that order. */
Test(reference, exact_ties_follow_the_spec) {
    static const variant flat[] = {
        {"tiny_config.json", "tiny_words.txt", 7, 1.0f, 1.0f, 1.0f, 0.0f, "flat logits, V=11"},
        {"tiny_config.json", "tiny_words1.txt", 8, 1.0f, 1.0f, 1.0f, 0.0f, "flat logits, V=5"},
    };
    for (int fi = 0; fi < 2; fi++) {
        imcap_model *m = make_model(&flat[fi]);
        int V = m->vocab.n;
        memset(m->p.fc_w, 0, (size_t)V * m->cfg.hidden_dim * sizeof(float));
        memset(m->p.fc_b, 0, (size_t)V * sizeof(float));
        imcap_model_sync(m);
        ref_model rm;
        char why[256];
        cr_assert_eq(ref_model_init(&rm, m, why, sizeof why), 0, "%s", why);
        imcap_image img = rand_image(rm.S, rm.S, 4242);
        float *input = malloc((size_t)3 * rm.S * rm.S * sizeof(float));
        imcap_error err;
        cr_assert_eq(imcap_image_to_input(&img, &m->cfg, input, &err), IMCAP_OK, "%s", err.msg);
        ref_prep pp;
        run_reference(&rm, input, &pp);
        static const int beams[] = {1, 2, 3, 5, 10};
        for (size_t bi = 0; bi < sizeof beams / sizeof beams[0]; bi++) {
            int k = beams[bi];
            imcap_options opt;
            imcap_options_default(&opt);
            opt.beam = k;
            imcap_result *res;
            cr_assert_eq(imcap_caption_image(m, NULL, &img, &opt, &res, &err), IMCAP_OK, "%s", err.msg);
            ref_result ref;
            ref_beam(&pp, k, 0, &ref);
            char what[128];
            snprintf(what, sizeof what, "[%s, beam %d]", flat[fi].label, k);
            compare(m, res, &ref, &rm, what);
            const int T = rm.max_length;
            const double lnV = log((double)V);
            if (V == 11 && k <= 3) {
                int base = k == 3; /* beam 3: [<end>] first */
                cr_expect_eq(res->n_hyps, k == 1 ? 1 : 2 + base, "%s: n_hyps %d", what, res->n_hyps);
                if (base) {
                    cr_expect_eq(res->hyps[0].n_tokens, 1, "%s: [<end>] first", what);
                    cr_expect_eq(res->hyps[0].tokens[0], IMCAP_TOK_END, "%s: [<end>] first", what);
                    cr_expect(fabs(res->hyps[0].score + lnV) < 1e-5, "%s: score %g, expected -ln 11", what,
                              res->hyps[0].score);
                }
                for (int j = base; j < res->n_hyps; j++) {
                    const imcap_hypothesis *h = &res->hyps[j];
                    cr_expect_eq(h->n_tokens, T, "%s hyp %d: %d tokens", what, j, h->n_tokens);
                    cr_expect_eq(h->finished, 0, "%s hyp %d finished", what, j);
                    for (int t = 0; t < h->n_tokens; t++)
                        cr_expect_eq(h->tokens[t], (j > base && t == T - 1) ? 1 : 0, "%s hyp %d token %d = %d", what,
                                     j, t, h->tokens[t]);
                    cr_expect(fabs(h->score + T * lnV) < 1e-4, "%s: score %g, expected -%d ln 11", what, h->score, T);
                }
            }
            if (V == 5 && k == 10) {
                cr_assert(res->n_hyps >= 3, "%s: %d hypotheses", what, res->n_hyps);
                int want[3][2] = {{IMCAP_TOK_END, -1}, {0, IMCAP_TOK_END}, {1, IMCAP_TOK_END}};
                for (int j = 0; j < 3; j++) {
                    const imcap_hypothesis *h = &res->hyps[j];
                    int n = want[j][1] < 0 ? 1 : 2;
                    cr_expect_eq(h->n_tokens, n, "%s hyp %d: %d tokens, expected %d", what, j, h->n_tokens, n);
                    for (int t = 0; t < n && t < h->n_tokens; t++)
                        cr_expect_eq(h->tokens[t], want[j][t], "%s hyp %d token %d = %d, expected %d", what, j, t,
                                     h->tokens[t], want[j][t]);
                }
            }
            ref_result_free(&ref);
            imcap_result_free(res);
        }
        ref_prep_free(&pp);
        free(input);
        imcap_image_free(&img);
        imcap_model_free(m);
    }
}

/* ------------------------------------------------------------ trace file */

static double jnum(const cJSON *a, int i) {
    const cJSON *x = cJSON_GetArrayItem(a, i);
    cr_assert(cJSON_IsNumber(x), "trace: item %d is not a number", i);
    return x->valuedouble;
}

Test(reference, trace_file_matches, .timeout = 120) {
    char dir[4096]; /* tu_tmpdir's buffer is reused by later tu_src calls */
    snprintf(dir, sizeof dir, "%s", tu_tmpdir("reference-trace"));
    int cases = 0, compared = 0;
    for (size_t vi = 0; vi < N_VARIANTS; vi++) {
        imcap_model *m = make_model(&VARIANTS[vi]);
        ref_model rm;
        char why[256];
        cr_assert_eq(ref_model_init(&rm, m, why, sizeof why), 0, "%s", why);
        for (int ii = 0; ii < 2; ii++) {
            int w = ii ? 29 : rm.S, h = ii ? 17 : rm.S;
            imcap_image img = rand_image(w, h, 1000 + 10 * vi + (size_t)ii);
            float *input = malloc((size_t)3 * rm.S * rm.S * sizeof(float));
            imcap_error err;
            cr_assert_eq(imcap_image_to_input(&img, &m->cfg, input, &err), IMCAP_OK, "%s", err.msg);
            ref_prep pp;
            run_reference(&rm, input, &pp);
            for (int beam = 1; beam <= 3; beam += 2) {
                char path[4200], what[160];
                snprintf(path, sizeof path, "%s/trace-%zu-%d-%d.json", dir, vi, ii, beam);
                snprintf(what, sizeof what, "[trace %s, %dx%d, beam %d]", VARIANTS[vi].label, w, h, beam);
                imcap_options opt;
                imcap_options_default(&opt);
                opt.beam = beam;
                imcap_result *res;
                cr_assert_eq(imcap_caption_trace(m, &img, &opt, path, &res, &err), IMCAP_OK, "%s", err.msg);
                size_t len;
                char *text = tu_read(path, &len);
                cr_assert(text, "%s: no trace file", what);
                /* a stray NUL byte would end the JSON text early for any C
                 * reader; report it, then drop it to check the numbers */
                size_t nul = strlen(text);
                cr_expect_eq(nul, len, "%s: the trace has a NUL byte at offset %zu (not valid JSON)", what, nul);
                size_t o = 0;
                for (size_t k = 0; k < len; k++)
                    if (text[k]) text[o++] = text[k];
                text[o] = 0;
                cJSON *j = cJSON_Parse(text);
                cr_assert(j, "%s: trace is not JSON", what);
                const cJSON *tok = cJSON_GetObjectItemCaseSensitive(j, "tokens"),
                            *lg = cJSON_GetObjectItemCaseSensitive(j, "logits"),
                            *at = cJSON_GetObjectItemCaseSensitive(j, "attention"),
                            *an = cJSON_GetObjectItemCaseSensitive(j, "annotations"),
                            *in = cJSON_GetObjectItemCaseSensitive(j, "input");
                cr_assert(cJSON_IsArray(tok) && cJSON_IsArray(lg) && cJSON_IsArray(at) && cJSON_IsArray(an) &&
                              cJSON_IsArray(in),
                          "%s: a trace field is missing", what);
                /* input [3][S][S]: the preprocessed image */
                cr_assert_eq(cJSON_GetArraySize(in), 3, "%s: input channels", what);
                for (int c = 0; c < 3; c++) {
                    const cJSON *ch = cJSON_GetArrayItem(in, c);
                    cr_assert_eq(cJSON_GetArraySize(ch), rm.S, "%s: input rows", what);
                    for (int y = 0; y < rm.S; y++) {
                        const cJSON *row = cJSON_GetArrayItem(ch, y);
                        cr_assert_eq(cJSON_GetArraySize(row), rm.S, "%s: input cols", what);
                        for (int x = 0; x < rm.S; x++) {
                            double want = input[((size_t)c * rm.S + y) * rm.S + x];
                            cr_expect(CLOSE(jnum(row, x), want), "%s: input[%d][%d][%d] %.7g, expected %.7g", what,
                                      c, y, x, jnum(row, x), want);
                        }
                    }
                }
                /* annotations [L][D] */
                cr_assert_eq(cJSON_GetArraySize(an), rm.L, "%s: annotation rows", what);
                for (int i = 0; i < rm.L; i++) {
                    const cJSON *row = cJSON_GetArrayItem(an, i);
                    cr_assert_eq(cJSON_GetArraySize(row), rm.D, "%s: annotation size", what);
                    for (int d = 0; d < rm.D; d++)
                        cr_expect(CLOSE(jnum(row, d), pp.a[(size_t)i * rm.D + d]), "%s: a[%d][%d] %.7g, expected %.7g",
                                  what, i, d, jnum(row, d), pp.a[(size_t)i * rm.D + d]);
                }
                ref_result ref;
                ref_beam(&pp, beam, 0, &ref);
                cases++;
                if (ref.min_gap >= TOL) {
                    compared++;
                    const ref_hyp *b = &ref.hyps[0];
                    cr_expect_eq(cJSON_GetArraySize(tok), b->n, "%s: %d tokens, expected %d", what,
                                 cJSON_GetArraySize(tok), b->n);
                    cr_expect_eq(cJSON_GetArraySize(lg), b->n, "%s: logits rows", what);
                    cr_expect_eq(cJSON_GetArraySize(at), b->n, "%s: attention rows", what);
                    int T = cJSON_GetArraySize(tok);
                    if (T > b->n) T = b->n;
                    for (int t = 0; t < T; t++) {
                        cr_expect_eq((int)jnum(tok, t), b->tokens[t], "%s: token %d", what, t);
                        const cJSON *lrow = cJSON_GetArrayItem(lg, t), *arow = cJSON_GetArrayItem(at, t);
                        cr_assert_eq(cJSON_GetArraySize(lrow), rm.V, "%s: logits size", what);
                        cr_assert_eq(cJSON_GetArraySize(arow), rm.L, "%s: attention size", what);
                        for (int v = 0; v < rm.V; v++)
                            cr_expect(CLOSE(jnum(lrow, v), b->logits[(size_t)t * rm.V + v]),
                                      "%s: logits[%d][%d] %.7g, expected %.7g", what, t, v, jnum(lrow, v),
                                      b->logits[(size_t)t * rm.V + v]);
                        for (int i = 0; i < rm.L; i++)
                            cr_expect(CLOSE(jnum(arow, i), b->alpha[(size_t)t * rm.L + i]),
                                      "%s: attention[%d][%d] %.7g, expected %.7g", what, t, i, jnum(arow, i),
                                      b->alpha[(size_t)t * rm.L + i]);
                    }
                    /* the trace and the returned result describe the same hypothesis */
                    cr_expect_eq(res->hyps[0].n_tokens, cJSON_GetArraySize(tok), "%s: result vs trace", what);
                }
                ref_result_free(&ref);
                cJSON_Delete(j);
                free(text);
                imcap_result_free(res);
            }
            ref_prep_free(&pp);
            free(input);
            imcap_image_free(&img);
        }
        imcap_model_free(m);
    }
    cr_expect(compared * 10 >= cases * 8, "only %d of %d trace cases compared", compared, cases);
}

/* ------------------------------------------------------------ numpy script */

static int have_numpy(void) { return tu_run("/usr/bin/python3 -c 'import numpy'", NULL, NULL) == 0; }

Test(reference, numpy_script_agrees_with_the_engine, .timeout = 300) {
    if (!have_numpy()) cr_skip("/usr/bin/python3 with numpy is not available (apt-get install python3-numpy)");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", tu_tmpdir("reference-numpy"));
    char cmd[32768];
    int checked = 0;
    /* variants: tiny, stride-2 (odd sizes), 1x1 grid, large vocabulary, deep output layer */
    static const size_t which[] = {0, 2, 3, 4, 6};
    for (size_t wi = 0; wi < sizeof which / sizeof which[0]; wi++) {
        size_t vi = which[wi];
        imcap_model *m = make_model(&VARIANTS[vi]);
        char model[4200], image[4200], trace[4200];
        snprintf(model, sizeof model, "%s/model%zu.safetensors", dir, vi);
        snprintf(image, sizeof image, "%s/image%zu.png", dir, vi);
        imcap_error err;
        cr_assert_eq(imcap_model_save(m, model, &err), IMCAP_OK, "%s", err.msg);
        imcap_model_info info;
        imcap_model_get_info(m, &info);
        /* an image at image_size for the tiny models, resized for the others */
        int w = vi % 2 ? 31 : info.image_size, h = vi % 2 ? 19 : info.image_size;
        imcap_image img = rand_image(w, h, 500 + vi);
        cr_assert_eq(imcap_png_write(image, img.rgb, w, h, 3, &err), IMCAP_OK, "%s", err.msg);
        imcap_image_free(&img);
        /* beam 1 and 3 on the first model, beam 3 on the others: each run
         * of the script costs a numpy start-up (~1 s here) */
        for (int beam = wi ? 3 : 1; beam <= 3; beam += 2) {
            snprintf(trace, sizeof trace, "%s/trace%zu-%d.json", dir, vi, beam);
            snprintf(cmd, sizeof cmd, "'%s' caption --model '%s' --beam %d --trace '%s' '%s'", tu_exe(), model, beam,
                     trace, image);
            char *out = NULL, *errs = NULL;
            int rc = tu_run(cmd, &out, &errs);
            cr_assert_eq(rc, 0, "%s -> %d: %s", cmd, rc, errs ? errs : "");
            free(out), free(errs);
            snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' '%s' '%s' --beam %d", tu_src("scripts/reference_numpy.py"),
                     model, trace, beam);
            rc = tu_run(cmd, &out, &errs);
            cr_expect_eq(rc, 0, "%s -> %d\n%s%s", cmd, rc, out ? out : "", errs ? errs : "");
            free(out), free(errs);
            checked++;
        }
        imcap_model_free(m);
    }
    cr_expect_eq(checked, 6);
    /* the script must be able to fail: a trace with one logit moved by 0.01
     * (well over 1e-4) is rejected */
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c \"import json,sys; t=json.loads(open(sys.argv[1]).read().replace(chr(0),'')); "
             "t['logits'][0][1]+=0.01; "
             "json.dump(t, open(sys.argv[2],'w'))\" '%s/trace0-1.json' '%s/bad.json' && "
             "/usr/bin/python3 '%s' '%s/model0.safetensors' '%s/bad.json' --beam 1",
             dir, dir, tu_src("scripts/reference_numpy.py"), dir, dir);
    char *out = NULL, *errs = NULL;
    int rc = tu_run(cmd, &out, &errs);
    cr_expect_eq(rc, 1, "a tampered trace must make the script exit 1, got %d\n%s%s", rc, out ? out : "",
                 errs ? errs : "");
    free(out), free(errs);
}
