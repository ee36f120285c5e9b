/* test_eval.c — BLEU, CIDEr-D, ROUGE-L against hand-computed values and
 * against a pure-Python port of pycocoevalcap (scripts/coco_metrics_reference.py,
 * whose output for tests/data/eval/coco_small.json is committed as
 * coco_small.expected.json), the report writers, and `imcap eval` end to end. */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/metrics.h"
#include "imcap.h"
#include "testutil.h"

/* ---------------------------------------------------------------- helpers */

/* A corpus built from space-separated captions (as the toolkit's scorers see
 * them after tokenisation). refs[i] is a NULL-terminated list. */
typedef struct {
    int n;
    imcap_eval_item *items;
    imcap_words *words;   /* every caption's word array, candidates and references */
    char **bufs;          /* the strdup'd texts the words point into */
    int n_words;
} corpus;

static imcap_words split_words(const char *s, char **buf) {
    *buf = strdup(s);
    int cap = 8, n = 0;
    const char **w = malloc((size_t)cap * sizeof *w);
    char *save = NULL;
    for (char *t = strtok_r(*buf, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
        if (n == cap) w = realloc(w, (size_t)(cap *= 2) * sizeof *w);
        w[n++] = t;
    }
    return (imcap_words){n, w};
}

static corpus corpus_make(int n, const char *const *cands, const char *const *const *refs) {
    corpus c = {0};
    int total = 0;
    for (int i = 0; i < n; i++) {
        total++;
        for (int k = 0; refs[i][k]; k++) total++;
    }
    c.n = n;
    c.items = calloc((size_t)n, sizeof *c.items);
    c.words = calloc((size_t)total, sizeof *c.words);
    c.bufs = calloc((size_t)total, sizeof *c.bufs);
    int m = 0;
    for (int i = 0; i < n; i++) {
        c.words[m] = split_words(cands[i], &c.bufs[m]);
        c.items[i].cand = c.words[m++];
        c.items[i].refs = &c.words[m];
        for (int k = 0; refs[i][k]; k++, m++) c.words[m] = split_words(refs[i][k], &c.bufs[m]);
        c.items[i].n_refs = (int)(&c.words[m] - c.items[i].refs);
    }
    c.n_words = m;
    return c;
}

static void corpus_free(corpus *c) {
    for (int i = 0; i < c->n_words; i++) {
        free((void *)c->words[i].w);
        free(c->bufs[i]);
    }
    free(c->words);
    free(c->bufs);
    free(c->items);
}

#define REFS(...) ((const char *const[]){__VA_ARGS__, NULL})

static cJSON *read_json(const char *path) {
    char *s = tu_read(path, NULL);
    cr_assert_not_null(s, "cannot read %s", path);
    cJSON *j = cJSON_Parse(s);
    free(s);
    cr_assert_not_null(j, "%s is not valid JSON", path);
    return j;
}

static double num(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    cr_assert(cJSON_IsNumber(v), "no number \"%s\"", key);
    return v->valuedouble;
}

/* ---------------------------------------------------------------- BLEU by hand */

Test(bleu, brevity_penalty_and_smoothing) {
    /* candidate "a cat sat" (3 words), one reference of 6 words containing it.
     * guess = [3, 2, 1, 0], correct = [3, 2, 1, 0]; ratio = (3 + 1e-15) / (6 + 1e-9)
     * = 0.5 (to 1e-10), so BP = exp(1 - 1/0.5) = e^-1 = 0.36787944.
     *   BLEU-1..3 = ((c + 1e-15) / (g + 1e-9))^(1/n) * BP = 1 * e^-1 = 0.36787944
     *   BLEU-4: the 4-gram term is (0 + 1e-15) / (0 + 1e-9) = 1e-6, so
     *           (1 * 1 * 1 * 1e-6)^(1/4) * e^-1 = 10^-1.5 * e^-1 = 0.031622777 * 0.36787944
     *           = 0.011633369 — the toolkit's smoothing, not 0. */
    corpus c = corpus_make(1, (const char *[]){"a cat sat"}, (const char *const *[]){REFS("a cat sat on the mat")});
    imcap_bleu_stats b;
    imcap_error err;
    cr_assert_eq(imcap_bleu(c.items, c.n, &b, &err), IMCAP_OK, "%s", err.msg);
    cr_expect_eq(b.testlen, 3);
    cr_expect_eq(b.reflen, 6);
    cr_expect_float_eq(b.ratio, 0.5, 1e-9);
    for (int k = 0; k < 3; k++) cr_expect_float_eq(b.bleu[k], 0.36787944, 1e-8, "BLEU-%d = %.10f", k + 1, b.bleu[k]);
    cr_expect_float_eq(b.bleu[3], 0.011633369, 1e-8, "BLEU-4 = %.10f", b.bleu[3]);
    corpus_free(&c);
}

Test(bleu, closest_reference_length_ties_go_to_the_shorter) {
    /* candidate "the dog runs fast" (4 words); references of 3 and 5 words are
     * equally close, the toolkit takes the shorter (min over (|l - 4|, l)),
     * so reflen = 3 < 4: no brevity penalty (with 5 it would be e^(1 - 5/4) = 0.7788).
     *   unigrams: the, dog, runs, fast all in some reference: 4/4
     *   bigrams:  "the dog", "dog runs" yes, "runs fast" no:    2/3
     *   trigrams: "the dog runs" yes, "dog runs fast" no:       1/2
     *   4-grams:  none:                                  (0 + 1e-15) / (1 + 1e-9)
     *   BLEU-1 = 1, BLEU-2 = sqrt(2/3) = 0.81649658, BLEU-3 = (1/3)^(1/3) = 0.69336127,
     *   BLEU-4 = (1/3 * 1e-15)^(1/4) = 1.3512002e-4 */
    corpus c = corpus_make(1, (const char *[]){"the dog runs fast"},
                           (const char *const *[]){REFS("the dog runs", "a dog runs very fast")});
    imcap_bleu_stats b;
    cr_assert_eq(imcap_bleu(c.items, c.n, &b, NULL), IMCAP_OK);
    cr_expect_eq(b.reflen, 3);
    cr_expect_float_eq(b.bleu[0], 1.0, 1e-8);
    cr_expect_float_eq(b.bleu[1], 0.81649658, 1e-8);
    cr_expect_float_eq(b.bleu[2], 0.69336127, 1e-8);
    cr_expect_float_eq(b.bleu[3], 1.3512002e-4, 1e-11);
    corpus_free(&c);
}

Test(bleu, corpus_brevity_penalty_and_clipping) {
    /* image A: "a dog on a red mat" (6) vs "a dog on grass" (4): "a" occurs twice
     *   but once in the reference, so it is clipped to 1: correct unigrams
     *   a 1 + dog 1 + on 1 = 3 of 6;
     * image B: "a cat" (2) vs "a cat on a sofa" (5): 2 of 2.
     * The penalty is computed once on the corpus totals, testlen 8 and reflen
     * 4 + 5 = 9: BP = exp(1 - 9/8) = e^-0.125 = 0.88249690 (A alone would have
     * none, B alone e^(1 - 5/2)). BLEU-1 = (3 + 2) / (6 + 2) * BP = 0.625 * 0.88249690
     * = 0.55156056. */
    corpus c = corpus_make(2, (const char *[]){"a dog on a red mat", "a cat"},
                           (const char *const *[]){REFS("a dog on grass"), REFS("a cat on a sofa")});
    imcap_bleu_stats b;
    cr_assert_eq(imcap_bleu(c.items, c.n, &b, NULL), IMCAP_OK);
    cr_expect_eq(b.testlen, 8);
    cr_expect_eq(b.reflen, 9);
    cr_expect_eq(b.correct[0], 5);
    cr_expect_eq(b.guess[0], 8);
    cr_expect_float_eq(b.bleu[0], 0.55156056, 1e-8, "BLEU-1 = %.10f", b.bleu[0]);
    corpus_free(&c);
}

/* ---------------------------------------------------------------- CIDEr-D by hand */

Test(cider, clipping) {
    /* Two images, one reference each, no word shared between them, so every
     * reference n-gram has df = 1 and every n-gram that is in no reference
     * df = 0 -> log(max(1, 0)) = 0: all weights are tf * (log 2 - 0) = tf * g, g = log 2.
     * Image 1: candidate "red red", reference "red circle".
     *   order 1: hyp {red: 2g}, |h| = 2g; ref {red: g, circle: g}, |r| = g sqrt 2;
     *            clipped dot = min(2g, g) * g = g^2 -> g^2 / (2g * g sqrt 2) = 1 / (2 sqrt 2)
     *            = 0.35355339 (unclipped it would be 2g^2 / ... = 0.70710678);
     *   order 2: "red red" is not in the reference -> 0; orders 3, 4: no n-grams -> 0;
     *   lengths (in bigrams) 1 and 1 -> no length penalty;
     *   score = 10 * (0.35355339 + 0 + 0 + 0) / 4 / 1 reference = 0.88388348.
     * Image 2: candidate = reference "blue square": orders 1 and 2 give cosine 1,
     *   orders 3, 4 give 0: 10 * (1 + 1) / 4 = 5.
     * CIDEr-D = (0.88388348 + 5) / 2 = 2.94194174. */
    corpus c = corpus_make(2, (const char *[]){"red red", "blue square"},
                           (const char *const *[]){REFS("red circle"), REFS("blue square")});
    double mean, per[2];
    imcap_error err;
    cr_assert_eq(imcap_cider_d(c.items, c.n, &mean, per, &err), IMCAP_OK, "%s", err.msg);
    cr_expect_float_eq(per[0], 0.88388348, 1e-8, "image 1: %.10f", per[0]);
    cr_expect_float_eq(per[1], 5.0, 1e-12);
    cr_expect_float_eq(mean, 2.94194174, 1e-8);
    corpus_free(&c);
}

Test(cider, gaussian_length_penalty) {
    /* As above (g = log 2 for every n-gram), image 1's candidate is now
     * "red circle on the left side of the picture" (9 words, 8 bigrams) for the
     * reference "red circle" (1 bigram): delta = 8 - 1 = 7 and the penalty is
     * e^(-7^2 / (2 * 6^2)) = e^(-49/72) = 0.50633562.
     *   order 1: hyp has 8 distinct words, "the" twice: |h| = g sqrt(7 + 4) = g sqrt 11;
     *            |r| = g sqrt 2; dot = g^2 (red) + g^2 (circle) -> 2 / sqrt 22 = 0.42640143
     *   order 2: 8 distinct bigrams, |h| = g sqrt 8; "red circle" shared, |r| = g
     *            -> 1 / sqrt 8 = 0.35355339
     *   order 3: the reference has no trigram: |r| = 0, the toolkit skips the
     *            division and the term stays 0; order 4 likewise.
     *   score = 10 * (0.42640143 + 0.35355339) * 0.50633562 / 4 = 0.98729727
     * Image 2 as before: 5. CIDEr-D = (0.98729727 + 5) / 2 = 2.99364863. */
    corpus c = corpus_make(2, (const char *[]){"red circle on the left side of the picture", "blue square"},
                           (const char *const *[]){REFS("red circle"), REFS("blue square")});
    double mean, per[2];
    cr_assert_eq(imcap_cider_d(c.items, c.n, &mean, per, NULL), IMCAP_OK);
    cr_expect_float_eq(per[0], 0.98729727, 1e-8, "image 1: %.10f", per[0]);
    cr_expect_float_eq(mean, 2.99364863, 1e-8);
    corpus_free(&c);
}

Test(cider, one_image_scores_zero) {
    /* with N = 1 every idf is log(1) - log(max(1, df)) = 0: all vectors are 0
     * and the toolkit returns 0 — CIDEr-D only means something over a set */
    corpus c = corpus_make(1, (const char *[]){"a red circle"}, (const char *const *[]){REFS("a red circle")});
    double mean;
    cr_assert_eq(imcap_cider_d(c.items, c.n, &mean, NULL, NULL), IMCAP_OK);
    cr_expect_eq(mean, 0.0);
    corpus_free(&c);
}

/* ---------------------------------------------------------------- ROUGE-L by hand */

Test(rouge, precision_and_recall_maximised_separately) {
    /* candidate "a cat on a mat" (5 words)
     *   ref 1 "a cat sat on the mat": LCS "a cat on mat" = 4 -> P 4/5 = 0.8, R 4/6
     *   ref 2 "mat":                  LCS 1               -> P 1/5,       R 1/1 = 1
     * the toolkit takes max P = 0.8 (ref 1) and max R = 1 (ref 2):
     *   (1 + 1.2^2) * 0.8 * 1 / (1 + 1.2^2 * 0.8) = 1.952 / 2.152 = 0.90706320
     * (the best single reference would give only 0.7155). */
    corpus c = corpus_make(1, (const char *[]){"a cat on a mat"},
                           (const char *const *[]){REFS("a cat sat on the mat", "mat")});
    double mean, per[1];
    cr_assert_eq(imcap_rouge_l(c.items, c.n, &mean, per, NULL), IMCAP_OK);
    cr_expect_float_eq(mean, 0.90706320, 1e-8, "%.10f", mean);
    cr_expect_float_eq(imcap_rouge_l_one(&c.items[0].cand, c.items[0].n_refs, c.items[0].refs), 0.90706320, 1e-8);
    corpus_free(&c);
}

Test(rouge, empty_captions) {
    /* the toolkit splits "" on " " into one empty word: an empty candidate
     * scores 0 against a real reference and 1 against an empty one */
    imcap_words empty = {0, NULL};
    const char *w[] = {"a", "cat"};
    imcap_words ref = {2, w};
    cr_expect_eq(imcap_rouge_l_one(&empty, 1, &ref), 0.0);
    cr_expect_eq(imcap_rouge_l_one(&empty, 1, &empty), 1.0);
    cr_expect_eq(imcap_rouge_l_one(&ref, 1, &empty), 0.0);
}

Test(metrics, bad_input_is_an_argument_error) {
    imcap_error err;
    imcap_bleu_stats b;
    double m;
    cr_expect_eq(imcap_bleu(NULL, 0, &b, &err), IMCAP_E_ARG);
    cr_expect_eq(imcap_cider_d(NULL, 0, &m, NULL, &err), IMCAP_E_ARG);
    cr_expect_eq(imcap_rouge_l(NULL, 0, &m, NULL, &err), IMCAP_E_ARG);
    const char *w[] = {"a"};
    imcap_eval_item it = {{1, w}, 0, NULL};
    cr_expect_eq(imcap_bleu(&it, 1, &b, &err), IMCAP_E_ARG);
    cr_expect(strstr(err.msg, "item 0") != NULL, "%s", err.msg);
    cr_expect_eq(imcap_cider_d(&it, 1, &m, NULL, &err), IMCAP_E_ARG);
    cr_expect_eq(imcap_rouge_l(&it, 1, &m, NULL, &err), IMCAP_E_ARG);
    imcap_words nullw = {2, NULL};
    imcap_eval_item it2 = {{1, w}, 1, &nullw};
    cr_expect_eq(imcap_cider_d(&it2, 1, &m, NULL, &err), IMCAP_E_ARG);
    cr_expect(strstr(err.msg, "reference 0") != NULL, "%s", err.msg);
}

/* ---------------------------------------------------------------- against the toolkit port */

Test(metrics, matches_pycocoevalcap_port) {
    /* coco_small.json: 8 images with 2-5 references each, among them a
     * candidate of repeated words (clipping), one of 2 words (no 3- or
     * 4-grams: zero norms), an empty one, one with no overlap, and a long one;
     * the corpus is shorter than its references (BLEU's penalty applies).
     * Expected values: scripts/coco_metrics_reference.py coco_small.json. */
    cJSON *in = read_json(tu_src("tests/data/eval/coco_small.json"));
    cJSON *ex = read_json(tu_src("tests/data/eval/coco_small.expected.json"));
    const cJSON *cands = cJSON_GetObjectItemCaseSensitive(in, "candidates");
    const cJSON *refs = cJSON_GetObjectItemCaseSensitive(in, "references");
    int n = cJSON_GetArraySize(refs);
    cr_assert_gt(n, 0);
    const char **cand_text = calloc((size_t)n, sizeof *cand_text);
    const char ***ref_text = calloc((size_t)n, sizeof *ref_text);
    const char **ids = calloc((size_t)n, sizeof *ids);
    int i = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, refs) {
        ids[i] = r->string;
        cand_text[i] = cJSON_GetObjectItemCaseSensitive(cands, r->string)->valuestring;
        int k = cJSON_GetArraySize(r);
        ref_text[i] = calloc((size_t)k + 1, sizeof **ref_text);
        for (int j = 0; j < k; j++) ref_text[i][j] = cJSON_GetArrayItem(r, j)->valuestring;
        i++;
    }
    corpus c = corpus_make(n, cand_text, (const char *const *const *)ref_text);
    imcap_caption_scores s;
    imcap_error err;
    cr_assert_eq(imcap_caption_scores_compute(c.items, c.n, &s, &err), IMCAP_OK, "%s", err.msg);
    const char *bk[4] = {"Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4"};
    for (int k = 0; k < 4; k++) cr_expect_float_eq(s.bleu.bleu[k], num(ex, bk[k]), 1e-6, "%s: %.12f", bk[k], s.bleu.bleu[k]);
    cr_expect_float_eq(s.cider_d, num(ex, "CIDEr"), 1e-6, "CIDEr: %.12f", s.cider_d);
    cr_expect_float_eq(s.rouge_l, num(ex, "ROUGE_L"), 1e-6, "ROUGE_L: %.12f", s.rouge_l);
    cr_expect_eq(s.bleu.testlen, (long)num(ex, "bleu_testlen"));
    cr_expect_eq(s.bleu.reflen, (long)num(ex, "bleu_reflen"));
    cr_expect_lt(s.bleu.ratio, 1.0, "the fixture is meant to exercise the brevity penalty");
    double *cider = calloc((size_t)n, sizeof *cider), *rouge = calloc((size_t)n, sizeof *rouge), m;
    cr_assert_eq(imcap_cider_d(c.items, c.n, &m, cider, NULL), IMCAP_OK);
    cr_assert_eq(imcap_rouge_l(c.items, c.n, &m, rouge, NULL), IMCAP_OK);
    const cJSON *pc = cJSON_GetObjectItemCaseSensitive(ex, "CIDEr_per_image");
    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(ex, "ROUGE_L_per_image");
    for (int k = 0; k < n; k++) {
        cr_expect_float_eq(cider[k], num(pc, ids[k]), 1e-6, "CIDEr-D of %s: %.12f", ids[k], cider[k]);
        cr_expect_float_eq(rouge[k], num(pr, ids[k]), 1e-6, "ROUGE-L of %s: %.12f", ids[k], rouge[k]);
    }
    free(cider);
    free(rouge);
    corpus_free(&c);
    for (int k = 0; k < n; k++) free(ref_text[k]);
    free(ref_text);
    free(cand_text);
    free(ids);
    cJSON_Delete(in);
    cJSON_Delete(ex);
}

/* ---------------------------------------------------------------- report writers */

Test(report, results_file_and_metrics_json) {
    const char *dir = tu_tmpdir("report");
    char path[4096];
    snprintf(path, sizeof path, "%s/results.json", dir);
    imcap_result_entry e[] = {{"391895", "a man \"quoted\""}, {"img_01.png", "two cats"}, {"0", ""}, {"007", "x"}};
    imcap_error err;
    cr_assert_eq(imcap_results_write(path, e, 4, &err), IMCAP_OK, "%s", err.msg);
    cJSON *j = read_json(path);
    cr_assert_eq(cJSON_GetArraySize(j), 4);
    const cJSON *a = cJSON_GetArrayItem(j, 0), *b = cJSON_GetArrayItem(j, 1);
    cr_expect(cJSON_IsNumber(cJSON_GetObjectItem(a, "image_id")), "a numeric id is written as a number");
    cr_expect_eq(num(a, "image_id"), 391895);
    cr_expect_str_eq(cJSON_GetObjectItem(a, "caption")->valuestring, "a man \"quoted\"");
    cr_expect_str_eq(cJSON_GetObjectItem(b, "image_id")->valuestring, "img_01.png");
    cr_expect(cJSON_IsNumber(cJSON_GetObjectItem(cJSON_GetArrayItem(j, 2), "image_id")));
    cr_expect(cJSON_IsString(cJSON_GetObjectItem(cJSON_GetArrayItem(j, 3), "image_id")),
              "a leading zero would be lost as a number: kept as a string");
    cJSON_Delete(j);

    imcap_eval_report r;
    memset(&r, 0, sizeof r);
    r.split = "test";
    r.have_scores = 1;
    r.scores.n_images = 3;
    r.scores.bleu.bleu[3] = 0.25;
    r.scores.cider_d = 1.5;
    r.n_split = 4;
    r.n_scored = 3;
    r.n_failed = 1;
    snprintf(path, sizeof path, "%s/metrics.json", dir);
    cr_assert_eq(imcap_eval_report_write(&r, path, &err), IMCAP_OK, "%s", err.msg);
    j = read_json(path);
    cr_expect_float_eq(num(j, "Bleu_4"), 0.25, 1e-12);
    cr_expect_float_eq(num(j, "CIDEr"), 1.5, 1e-12);
    cr_expect_eq(num(cJSON_GetObjectItem(j, "counts"), "failed"), 1);
    cr_expect_null(cJSON_GetObjectItem(j, "objects"), "no object section without annotations");
    cJSON_Delete(j);
    char *t = imcap_eval_report_table(&r);
    cr_expect(strstr(t, "BLEU-4") && strstr(t, "0.2500") && strstr(t, "1 failed"), "%s", t);
    free(t);
}

/* ---------------------------------------------------------------- imcap eval */

static int run(char **out, char **err, const char *fmt, ...) {
    char cmd[16384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return tu_run(cmd, out, err);
}

Test(cli, eval_results_file) {
    /* karpathy_small.json holds coco_small.json's references as raw text
     * (capitals, full stops, "!" that the tokeniser drops) in split test, plus
     * image 109 without a result and train / val images; results_small.json
     * has the candidates, a duplicate for 101, ids 999 (unknown) and 201 (a
     * train image), and names image 108 by file name. The scores must be the
     * toolkit port's for coco_small.json. */
    const char *dir = tu_tmpdir("cli_eval");
    char *out, *err;
    int rc = run(&out, &err, "'%s' eval --data '%s' --results '%s' -o '%s/o'", tu_exe(),
                 tu_src("tests/data/eval/karpathy_small.json"), tu_src("tests/data/eval/results_small.json"), dir);
    cr_expect_eq(rc, 1, "an image without a result: exit 1 (stderr: %s)", err);
    cr_expect(strstr(out, "BLEU-1") && strstr(out, "CIDEr-D") && strstr(out, "ROUGE-L"), "table: %s", out);
    cr_expect(strstr(err, "999") != NULL, "unknown id reported: %s", err);
    cr_expect(strstr(err, "201") != NULL, "an image of another split is unknown here: %s", err);
    cr_expect(strstr(err, "no result for image 109") != NULL, "%s", err);
    cr_expect(strstr(err, "second caption for image 101") != NULL, "%s", err);
    free(out);
    free(err);
    char path[4096];
    snprintf(path, sizeof path, "%s/o/metrics.json", dir);
    cJSON *m = read_json(path);
    cJSON *ex = read_json(tu_src("tests/data/eval/coco_small.expected.json"));
    const char *keys[] = {"Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "CIDEr", "ROUGE_L"};
    for (int k = 0; k < 6; k++) cr_expect_float_eq(num(m, keys[k]), num(ex, keys[k]), 1e-6, "%s", keys[k]);
    const cJSON *counts = cJSON_GetObjectItem(m, "counts");
    cr_expect_eq(num(counts, "split_images"), 9);
    cr_expect_eq(num(counts, "scored"), 8);
    cr_expect_eq(num(counts, "no_result"), 1);
    cr_expect_eq(num(counts, "unknown_ids"), 2);
    cr_expect_eq(num(counts, "duplicates"), 1);
    cJSON_Delete(m);
    cJSON_Delete(ex);
    snprintf(path, sizeof path, "%s/o/results.json", dir);
    cr_expect_null(tu_read(path, NULL), "results mode does not write a results file");

    /* every test image with a result: exit 0 */
    snprintf(path, sizeof path, "%s/all.json", dir);
    const char *all = "[{\"image_id\": 101, \"caption\": \"a man\"}, {\"image_id\": 102, \"caption\": \"a dog\"},"
                      " {\"image_id\": 103, \"caption\": \"cats\"}, {\"image_id\": 104, \"caption\": \"people\"},"
                      " {\"image_id\": 105, \"caption\": \"a plane\"}, {\"image_id\": 106, \"caption\": \"a bus\"},"
                      " {\"image_id\": 107, \"caption\": \"a bus\"}, {\"image_id\": 108, \"caption\": \"food\"},"
                      " {\"image_id\": \"109\", \"caption\": \"a cat\"}]";
    tu_write(path, all, strlen(all));
    rc = run(&out, &err, "'%s' eval --data '%s' --results '%s'", tu_exe(), tu_src("tests/data/eval/karpathy_small.json"), path);
    cr_expect_eq(rc, 0, "stderr: %s", err);
    free(out);
    free(err);
}

Test(cli, eval_usage_and_fatal_errors) {
    const char *dir = tu_tmpdir("cli_eval_bad");
    const char *data = tu_src("tests/data/eval/karpathy_small.json");
    char *out, *err;
    cr_expect_eq(run(&out, &err, "'%s' eval --help", tu_exe()), 0);
    cr_expect(strstr(out, "--results") && strstr(out, "--split"), "%s", out);
    free(out), free(err);
    cr_expect_eq(run(NULL, NULL, "'%s' eval", tu_exe()), 2, "no --data");
    cr_expect_eq(run(NULL, NULL, "'%s' eval --data '%s' --results x --model y", tu_exe(), data), 2);
    cr_expect_eq(run(NULL, NULL, "'%s' eval --data '%s' --split nosuch", tu_exe(), data), 2);
    cr_expect_eq(run(NULL, NULL, "'%s' eval --data '%s' --bogus", tu_exe(), data), 2);
    cr_expect_eq(run(NULL, NULL, "'%s' eval --data '%s' --beam 0", tu_exe(), data), 2);
    cr_expect_eq(run(NULL, NULL, "'%s' eval --data", tu_exe()), 2);

    char path[4096];
    snprintf(path, sizeof path, "%s/broken.json", dir);
    tu_write(path, "[{\"image_id\": 1, ", 17);
    cr_expect_eq(run(&out, &err, "'%s' eval --data '%s' --results '%s'", tu_exe(), data, path), 3);
    cr_expect(strstr(err, "broken.json") && strstr(err, "not valid JSON"), "%s", err);
    free(out), free(err);
    snprintf(path, sizeof path, "%s/object.json", dir);
    tu_write(path, "{\"image_id\": 1}", 15);
    cr_expect_eq(run(&out, &err, "'%s' eval --data '%s' --results '%s'", tu_exe(), data, path), 3);
    cr_expect(strstr(err, "object.json") && strstr(err, "array"), "%s", err);
    free(out), free(err);
    cr_expect_eq(run(&out, &err, "'%s' eval --data '%s/none.json' --results '%s'", tu_exe(), dir, path), 3);
    cr_expect(strstr(err, "none.json") != NULL, "%s", err);
    free(out), free(err);
    snprintf(path, sizeof path, "%s/bad_data.json", dir);
    tu_write(path, "{\"images\": 3}", 13);
    cr_expect_eq(run(&out, &err, "'%s' eval --data '%s' --results '%s'", tu_exe(), path, path), 3);
    cr_expect(strstr(err, "bad_data.json") && strstr(err, "\"images\""), "%s", err);
    free(out), free(err);
    /* a split with no image */
    cr_expect_eq(run(&out, &err, "'%s' eval --data '%s' --split restval --results x", tu_exe(), data), 3);
    cr_expect(strstr(err, "no image in split restval") != NULL, "%s", err);
    free(out), free(err);
    /* an entry with a bad image_id or caption is reported, the rest scored */
    snprintf(path, sizeof path, "%s/entries.json", dir);
    const char *ent = "[{\"image_id\": 101}, {\"image_id\": [1], \"caption\": \"x\"}, 7]";
    tu_write(path, ent, strlen(ent));
    cr_expect_eq(run(&out, &err, "'%s' eval --data '%s' --results '%s'", tu_exe(), data, path), 1);
    cr_expect(strstr(err, "result [0]") && strstr(err, "result [1]") && strstr(err, "result [2]"), "%s", err);
    cr_expect(strstr(out, "no image could be scored") != NULL, "%s", out);
    free(out), free(err);
}

/* A synthetic data set with object annotations and a random model: the
 * object metrics appear; captioning from a model writes results.json, and
 * scoring that file again gives the same numbers. */
Test(cli, eval_model_and_objects) {
    const char *dir = tu_tmpdir("cli_eval_model");
    char *out, *err;
    int rc = run(&out, &err, "'%s' synth --count 6 --seed 11 --split-fractions 0.5,0,0.5 -o '%s/syn'", tu_exe(), dir);
    cr_assert_eq(rc, 0, "synth: %s", err);
    free(out), free(err);
    char path[4096];
    /* results = each test image's first reference: every object named right */
    snprintf(path, sizeof path, "%s/syn/dataset.json", dir);
    cJSON *ds = read_json(path);
    cJSON *res = cJSON_CreateArray();
    int n_test = 0;
    const cJSON *im;
    cJSON_ArrayForEach(im, cJSON_GetObjectItem(ds, "images")) {
        if (strcmp(cJSON_GetObjectItem(im, "split")->valuestring, "test")) continue;
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "image_id", cJSON_GetObjectItem(im, "filename")->valuestring);
        const cJSON *s0 = cJSON_GetArrayItem(cJSON_GetObjectItem(im, "sentences"), 0);
        cJSON_AddStringToObject(e, "caption", cJSON_GetObjectItem(s0, "raw")->valuestring);
        cJSON_AddItemToArray(res, e);
        n_test++;
    }
    cr_assert_eq(n_test, 3);
    char *rs = cJSON_Print(res);
    snprintf(path, sizeof path, "%s/refs_as_results.json", dir);
    tu_write(path, rs, strlen(rs));
    free(rs);
    cJSON_Delete(res);
    cJSON_Delete(ds);
    char data[4096];
    snprintf(data, sizeof data, "%s/syn/dataset.json", dir);
    rc = run(&out, &err, "'%s' eval --data '%s' --results '%s' -o '%s/r'", tu_exe(), data, path, dir);
    cr_expect_eq(rc, 0, "%s", err);
    cr_expect(strstr(out, "object F1") != NULL, "%s", out);
    cr_expect(strstr(out, "pointing") == NULL, "no attention without a model: %s", out);
    free(out), free(err);
    snprintf(path, sizeof path, "%s/r/metrics.json", dir);
    cJSON *m = read_json(path);
    const cJSON *obj = cJSON_GetObjectItem(m, "objects");
    cr_assert_not_null(obj);
    cr_expect_float_eq(num(obj, "precision"), 1.0, 1e-12, "a reference caption names exactly its scene's objects");
    cr_expect_float_eq(num(obj, "recall"), 1.0, 1e-12);
    cr_expect_float_eq(num(m, "ROUGE_L"), 1.0, 1e-12, "the candidate is one of the references");
    cJSON_Delete(m);

    /* a random model: captions are noise, but every stage runs */
    const char *words = "a\nlarge\nsmall\nred\nblue\ncircle\nsquare\nleft\nof\nthe\n";
    char vocab[4096], model[4096];
    snprintf(vocab, sizeof vocab, "%s/words.txt", dir);
    tu_write(vocab, words, strlen(words));
    snprintf(model, sizeof model, "%s/m.safetensors", dir);
    rc = run(&out, &err, "'%s' init --config '%s' --vocab '%s' --seed 5 -o '%s'", tu_exe(),
             tu_src("models/default_config.json"), vocab, model);
    cr_assert_eq(rc, 0, "init: %s", err);
    free(out), free(err);
    rc = run(&out, &err, "'%s' eval --model '%s' --data '%s' --beam 2 --threads 2 -o '%s/m'", tu_exe(), model, data, dir);
    cr_expect_eq(rc, 0, "%s", err);
    cr_expect(strstr(out, "pointing accuracy") && strstr(out, "attention mass"), "%s", out);
    free(out), free(err);
    snprintf(path, sizeof path, "%s/m/results.json", dir);
    cJSON *r = read_json(path);
    cr_expect_eq(cJSON_GetArraySize(r), 3);
    cJSON_Delete(r);
    char m1[4096];
    snprintf(m1, sizeof m1, "%s/m/metrics.json", dir);
    rc = run(&out, &err, "'%s' eval --data '%s' --results '%s' -o '%s/again'", tu_exe(), data, path, dir);
    cr_expect_eq(rc, 0, "%s", err);
    free(out), free(err);
    snprintf(path, sizeof path, "%s/again/metrics.json", dir);
    cJSON *a = read_json(m1), *b = read_json(path);
    const char *keys[] = {"Bleu_1", "Bleu_4", "CIDEr", "ROUGE_L"};
    for (int k = 0; k < 4; k++) {
        const cJSON *x = cJSON_GetObjectItem(a, keys[k]), *y = cJSON_GetObjectItem(b, keys[k]);
        cr_expect(cJSON_IsNumber(x) && cJSON_IsNumber(y) && fabs(x->valuedouble - y->valuedouble) < 1e-9,
                  "%s: model run and its results file score the same", keys[k]);
    }
    cJSON_Delete(a);
    cJSON_Delete(b);
}

Test(cli, eval_missing_images_are_counted_not_fatal) {
    /* two readable images and one missing file: the missing one is reported
     * and counted, the others are captioned and scored, exit 1 */
    const char *dir = tu_tmpdir("cli_eval_missing");
    char *out, *err, path[4096], model[4096];
    const char *words = "a\ncat\n";
    snprintf(path, sizeof path, "%s/words.txt", dir);
    tu_write(path, words, strlen(words));
    snprintf(model, sizeof model, "%s/m.safetensors", dir);
    int rc = run(&out, &err, "'%s' init --config '%s' --vocab '%s' -o '%s'", tu_exe(),
                 tu_src("models/default_config.json"), path, model);
    cr_assert_eq(rc, 0, "init: %s", err);
    free(out), free(err);
    const char *ds = "{\"images\": ["
                     " {\"filename\": \"checker_5x7.png\", \"split\": \"test\", \"cocoid\": 1, \"sentences\": [{\"raw\": \"a cat\"}]},"
                     " {\"filename\": \"not_there.png\", \"split\": \"test\", \"cocoid\": 2, \"sentences\": [{\"raw\": \"a cat\"}]},"
                     " {\"filename\": \"bits.pbm\", \"split\": \"test\", \"cocoid\": 3, \"sentences\": [{\"raw\": \"a cat\"}]}]}";
    snprintf(path, sizeof path, "%s/d.json", dir);
    tu_write(path, ds, strlen(ds));
    rc = run(&out, &err, "'%s' eval --model '%s' --data '%s' --images '%s' --beam 1 -o '%s/o'", tu_exe(), model, path,
             tu_src("tests/data/images"), dir);
    cr_expect_eq(rc, 1, "%s", err);
    cr_expect(strstr(err, "not_there.png") != NULL, "the missing image is named: %s", err);
    cr_expect(strstr(out, "2 scored") && strstr(out, "1 failed"), "%s", out);
    free(out), free(err);
    snprintf(path, sizeof path, "%s/o/results.json", dir);
    cJSON *r = read_json(path);
    cr_expect_eq(cJSON_GetArraySize(r), 2);
    cJSON_Delete(r);
}

/* The public entry point over text gives the port's numbers too. */
Test(metrics, public_text_api_matches_pycocoevalcap_port) {
    cJSON *in = read_json(tu_src("tests/data/eval/coco_small.json"));
    cJSON *ex = read_json(tu_src("tests/data/eval/coco_small.expected.json"));
    const cJSON *cands = cJSON_GetObjectItemCaseSensitive(in, "candidates");
    const cJSON *refs = cJSON_GetObjectItemCaseSensitive(in, "references");
    int n = cJSON_GetArraySize(refs), i = 0;
    const char **cand = calloc((size_t)n, sizeof *cand);
    const char ***ref = calloc((size_t)n, sizeof *ref);
    int *n_refs = calloc((size_t)n, sizeof *n_refs);
    const cJSON *r;
    cJSON_ArrayForEach(r, refs) {
        cand[i] = cJSON_GetObjectItemCaseSensitive(cands, r->string)->valuestring;
        n_refs[i] = cJSON_GetArraySize(r);
        ref[i] = calloc((size_t)n_refs[i], sizeof **ref);
        for (int j = 0; j < n_refs[i]; j++) ref[i][j] = cJSON_GetArrayItem(r, j)->valuestring;
        i++;
    }
    imcap_metrics m;
    imcap_error err;
    cr_assert_eq(imcap_caption_metrics(cand, (const char *const *const *)ref, n_refs, n, &m, &err), IMCAP_OK, "%s",
                 err.msg);
    const char *bk[4] = {"Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4"};
    for (int k = 0; k < 4; k++) cr_expect_float_eq(m.bleu[k], num(ex, bk[k]), 1e-6, "%s: %.12f", bk[k], m.bleu[k]);
    cr_expect_float_eq(m.cider_d, num(ex, "CIDEr"), 1e-6, "CIDEr: %.12f", m.cider_d);
    cr_expect_float_eq(m.rouge_l, num(ex, "ROUGE_L"), 1e-6, "ROUGE_L: %.12f", m.rouge_l);
    cr_expect_eq(m.n_images, n);
    /* capitals and punctuation are tokenised away, as eval does */
    const char *c2[] = {"A Man, riding a HORSE."};
    const char *r2a[] = {"a man riding a horse"};
    const char *const *r2[] = {r2a};
    int one = 1;
    cr_assert_eq(imcap_caption_metrics(c2, r2, &one, 1, &m, &err), IMCAP_OK, "%s", err.msg);
    cr_expect_float_eq(m.bleu[0], 1.0, 1e-9);
    int zero = 0;
    cr_expect_eq(imcap_caption_metrics(c2, r2, &zero, 1, &m, &err), IMCAP_E_ARG);
    cr_expect(strstr(err.msg, "no reference"), "%s", err.msg);
    for (int k = 0; k < n; k++) free(ref[k]);
    free(ref), free(cand), free(n_refs);
    cJSON_Delete(in);
    cJSON_Delete(ex);
}

/* imcap_eval from imcap.h alone: a results file scored, the report's text,
 * the notes, and the same numbers as the CLI's metrics.json. */
static void count_note(void *ctx, const char *msg) {
    (void)msg;
    (*(int *)ctx)++;
}

Test(metrics, public_eval_call) {
    imcap_eval_request r;
    memset(&r, 0, sizeof r);
    imcap_options_default(&r.caption);
    r.data = tu_src("tests/data/eval/karpathy_small.json");
    r.results = tu_src("tests/data/eval/results_small.json");
    r.split = "all";
    int notes = 0;
    imcap_eval_callbacks cb = {&notes, count_note};
    imcap_eval_outcome out;
    imcap_error err;
    cr_assert_eq(imcap_eval(&r, &cb, &out, &err), IMCAP_OK, "%s", err.msg);
    cr_expect_gt(out.n_split, 0);
    cr_expect(out.table && strstr(out.table, "BLEU"), "%s", out.table ? out.table : "(none)");
    cJSON *j = cJSON_Parse(out.json);
    cr_assert(j, "not JSON: %s", out.json);
    cr_expect_float_eq(cJSON_GetObjectItem(j, "Bleu_4")->valuedouble, out.scores.bleu[3], 1e-9);
    cr_expect_float_eq(cJSON_GetObjectItem(j, "CIDEr")->valuedouble, out.scores.cider_d, 1e-9);
    cJSON_Delete(j);
    /* the CLI's figures are the library's */
    char cmd[8192], *o = NULL, *e = NULL;
    snprintf(cmd, sizeof cmd, "'%s' eval --json --split all --data '%s' --results '%s'", tu_exe(), r.data, r.results);
    tu_run(cmd, &o, &e);
    cr_expect_str_eq(o, out.json);
    free(o), free(e);
    imcap_eval_outcome_free(&out);
    /* neither a model nor results: refused */
    r.results = NULL;
    cr_expect_eq(imcap_eval(&r, &cb, &out, &err), IMCAP_E_ARG);
}
