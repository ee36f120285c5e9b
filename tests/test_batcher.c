/* test_batcher.c — many images decoded together give exactly the results of
 * one image at a time.
 *
 * The shipped model captions 200 synthetic scenes (and a few odd images: a
 * 1x1 pixel, a 640x480 gradient) through imcap_caption_images with blocks
 * of 1, 2, 3, 7, 32 and 500 images, greedy, beam 3 and beam 5, and through
 * the batcher API directly with images pushed and taken in an irregular
 * rhythm. Every result must equal imcap_caption_image's for that image bit
 * for bit: tokens, log-probabilities, scores, attention maps, and every
 * hypothesis of the beam. (Bit equality holds because every row of a
 * decoder step is computed as if alone: src/kernels/simd.h.) */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/synth.h"
#include "imcap.h"
#include "testutil.h"

#define N_SCENES 200
#define N_IMAGES (N_SCENES + 2)

static imcap_model *model;
static imcap_image imgs[N_IMAGES];

static void setup(void) {
    imcap_error err;
    cr_assert_eq(imcap_model_load(tu_src("models/default.safetensors"), &model, &err), IMCAP_OK, "%s", err.msg);
    for (int i = 0; i < N_SCENES; i++) {
        imcap_synth_scene sc;
        cr_assert_eq(imcap_synth_scene_make(777, i, 64, &sc, &err), IMCAP_OK, "%s", err.msg);
        imgs[i].width = imgs[i].height = 64;
        imgs[i].rgb = malloc(64 * 64 * 3);
        imcap_synth_render(&sc, imgs[i].rgb);
    }
    imcap_image *one = &imgs[N_SCENES], *big = &imgs[N_SCENES + 1];
    one->width = one->height = 1;
    one->rgb = malloc(3);
    memcpy(one->rgb, "\x80\x10\xf0", 3);
    big->width = 640, big->height = 480;
    big->rgb = malloc(640 * 480 * 3);
    for (int y = 0; y < 480; y++)
        for (int x = 0; x < 640; x++) {
            unsigned char *p = big->rgb + ((size_t)y * 640 + x) * 3;
            p[0] = (unsigned char)x, p[1] = (unsigned char)y, p[2] = (unsigned char)(x ^ y);
        }
}

static void teardown(void) {
    for (int i = 0; i < N_IMAGES; i++) free(imgs[i].rgb);
    imcap_model_free(model);
}

static void expect_same(const imcap_result *a, const imcap_result *b, int img, int block) {
    cr_assert(a && b);
    cr_assert_eq(a->n_hyps, b->n_hyps, "image %d block %d: %d hypotheses, alone %d", img, block, a->n_hyps, b->n_hyps);
    cr_assert_eq(a->image_width, b->image_width);
    cr_assert_eq(a->image_height, b->image_height);
    int L = a->grid_h * a->grid_w;
    for (int h = 0; h < a->n_hyps; h++) {
        const imcap_hypothesis *x = &a->hyps[h], *y = &b->hyps[h];
        cr_assert_eq(x->n_tokens, y->n_tokens, "image %d block %d hyp %d: length", img, block, h);
        cr_assert_str_eq(x->text, y->text, "image %d block %d hyp %d", img, block, h);
        cr_assert_eq(memcmp(x->tokens, y->tokens, (size_t)x->n_tokens * sizeof(int)), 0);
        cr_assert_eq(memcmp(x->logprobs, y->logprobs, (size_t)x->n_tokens * sizeof(float)), 0,
                     "image %d block %d hyp %d: log-probs differ", img, block, h);
        cr_assert_eq(memcmp(x->attention, y->attention, (size_t)x->n_tokens * L * sizeof(float)), 0,
                     "image %d block %d hyp %d: attention differs", img, block, h);
        cr_assert_eq(x->score, y->score, "image %d block %d hyp %d: score %.9g alone %.9g", img, block, h, x->score,
                     y->score);
        cr_assert_eq(x->finished, y->finished);
    }
}

static void alone(const imcap_options *opt, imcap_result **ref) {
    imcap_error err;
    imcap_workspace *ws = imcap_workspace_new(model);
    for (int i = 0; i < N_IMAGES; i++)
        cr_assert_eq(imcap_caption_image(model, ws, &imgs[i], opt, &ref[i], &err), IMCAP_OK, "%s", err.msg);
    imcap_workspace_free(ws);
}

static void check_blocks(int beam) {
    imcap_options opt;
    imcap_options_default(&opt);
    opt.beam = beam;
    static imcap_result *ref[N_IMAGES], *got[N_IMAGES];
    alone(&opt, ref);
    const int blocks[] = {1, 2, 3, 7, 32, 500};
    for (size_t b = 0; b < sizeof blocks / sizeof blocks[0]; b++) {
        imcap_error err;
        imcap_status st[N_IMAGES];
        cr_assert_eq(imcap_caption_images(model, N_IMAGES, imgs, &opt, blocks[b], got, st, &err), IMCAP_OK, "%s",
                     err.msg);
        for (int i = 0; i < N_IMAGES; i++) {
            cr_assert_eq(st[i], IMCAP_OK);
            expect_same(got[i], ref[i], i, blocks[b]);
            imcap_result_free(got[i]);
        }
    }
    for (int i = 0; i < N_IMAGES; i++) imcap_result_free(ref[i]);
}

Test(batcher, greedy_any_block_equals_alone, .init = setup, .fini = teardown) { check_blocks(1); }
Test(batcher, beam3_any_block_equals_alone, .init = setup, .fini = teardown) { check_blocks(3); }
Test(batcher, beam5_any_block_equals_alone, .init = setup, .fini = teardown) { check_blocks(5); }

/* Pushes in bursts of varying size, takes one or two results in between:
 * results come back once each, with their own tags, equal to alone. */
Test(batcher, irregular_push_and_take, .init = setup, .fini = teardown) {
    imcap_options opt;
    imcap_options_default(&opt);
    static imcap_result *ref[N_IMAGES];
    alone(&opt, ref);
    imcap_batcher *b;
    imcap_error err;
    cr_assert_eq(imcap_batcher_new(model, &opt, 9, &b, &err), IMCAP_OK, "%s", err.msg);
    int next = 0, seen[N_IMAGES] = {0}, n_seen = 0, round = 0;
    while (n_seen < N_IMAGES) {
        int burst = 1 + (round * 7) % 5;
        for (int j = 0; j < burst && next < N_IMAGES && imcap_batcher_space(b) > 0; j++, next++)
            cr_assert_eq(imcap_batcher_push(b, &imgs[next], 1000 + (uint64_t)next, &err), IMCAP_OK, "%s", err.msg);
        int takes = 1 + round % 2;
        for (int j = 0; j < takes && imcap_batcher_pending(b) > 0; j++) {
            uint64_t tag;
            imcap_result *r;
            cr_assert_eq(imcap_batcher_next(b, &tag, &r, &err), IMCAP_OK, "%s", err.msg);
            cr_assert(r);
            int i = (int)(tag - 1000);
            cr_assert(i >= 0 && i < next && !seen[i], "tag %llu unexpected", (unsigned long long)tag);
            seen[i] = 1, n_seen++;
            expect_same(r, ref[i], i, 9);
            imcap_result_free(r);
        }
        round++;
    }
    uint64_t tag;
    imcap_result *r = (imcap_result *)1;
    cr_assert_eq(imcap_batcher_next(b, &tag, &r, &err), IMCAP_OK);
    cr_assert_null(r, "nothing pending: no result");
    imcap_batcher_free(b);
    for (int i = 0; i < N_IMAGES; i++) imcap_result_free(ref[i]);
}

Test(batcher, bad_arguments, .init = setup, .fini = teardown) {
    imcap_options opt;
    imcap_options_default(&opt);
    imcap_batcher *b = (imcap_batcher *)1;
    imcap_error err;
    cr_assert_eq(imcap_batcher_new(model, &opt, 0, &b, &err), IMCAP_E_ARG);
    cr_assert_null(b);
    opt.beam = 0;
    cr_assert_eq(imcap_batcher_new(model, &opt, 4, &b, &err), IMCAP_E_ARG);
    cr_assert_null(b);
    opt.beam = 2;
    cr_assert_eq(imcap_batcher_new(model, &opt, 1, &b, &err), IMCAP_OK, "%s", err.msg);
    imcap_image empty = {0};
    cr_assert_eq(imcap_batcher_push(b, &empty, 0, &err), IMCAP_E_ARG);
    cr_assert_eq(imcap_batcher_push(b, &imgs[0], 0, &err), IMCAP_OK, "%s", err.msg);
    cr_assert_eq(imcap_batcher_space(b), 0);
    cr_assert_eq(imcap_batcher_push(b, &imgs[1], 1, &err), IMCAP_E_ARG, "a full batcher refuses");
    cr_assert(strstr(err.msg, "full"), "%s", err.msg);
    imcap_batcher_free(b);
    imcap_batcher_free(NULL);
}

/* ---- imcap_caption_many: threads, order, failures, stop */

typedef struct {
    imcap_result *ref[N_IMAGES];
    int n_done[N_IMAGES], emitted[N_IMAGES], n_emitted, order_ok, stop_at, mismatches;
    size_t window, max_ahead;
    volatile sig_atomic_t stop;
} many_ctx;

static imcap_status many_load(void *vctx, size_t i, imcap_image *img, imcap_error *err) {
    (void)vctx;
    if (i % 17 == 5) { /* some images fail before decoding */
        snprintf(err->msg, sizeof err->msg, "image %zu: refused by the test", i);
        return err->status = IMCAP_E_IMAGE;
    }
    img->width = imgs[i].width, img->height = imgs[i].height;
    size_t n = (size_t)img->width * img->height * 3;
    img->rgb = malloc(n);
    memcpy(img->rgb, imgs[i].rgb, n);
    return IMCAP_OK;
}

static void many_done(void *vctx, size_t i, imcap_result *res, imcap_status st, const imcap_error *err) {
    many_ctx *c = vctx;
#pragma omp atomic
    c->n_done[i]++;
    if (i % 17 == 5) {
        if (st != IMCAP_E_IMAGE || res || !strstr(err->msg, "refused by the test")) {
#pragma omp atomic
            c->mismatches++;
        }
        return;
    }
    if (st != IMCAP_OK || !res || strcmp(res->hyps[0].text, c->ref[i]->hyps[0].text) != 0 ||
        res->hyps[0].score != c->ref[i]->hyps[0].score) {
#pragma omp atomic
        c->mismatches++;
    }
    imcap_result_free(res);
}

static void many_emit(void *vctx, size_t i) {
    many_ctx *c = vctx;
    if ((int)i != c->n_emitted || c->n_done[i] != 1) c->order_ok = 0;
    c->emitted[i]++;
    c->n_emitted++;
    if (c->stop_at && c->n_emitted == c->stop_at) c->stop = 1;
}

static void run_many(int threads, int block, int stop_at) {
    imcap_options opt;
    imcap_options_default(&opt);
    static many_ctx c;
    memset(&c, 0, sizeof c);
    c.order_ok = 1, c.stop_at = stop_at;
    alone(&opt, c.ref);
    imcap_many_io io = {many_load, many_done, many_emit, &c, &c.stop, NULL};
    imcap_error err;
    size_t n_done = 0;
    cr_assert_eq(imcap_caption_many(model, N_IMAGES, &opt, block, threads, &io, &n_done, &err), IMCAP_OK, "%s",
                 err.msg);
    cr_assert(c.order_ok, "threads %d block %d: emitted out of order or before done", threads, block);
    cr_assert_eq(c.mismatches, 0, "threads %d block %d: %d results differ from alone", threads, block, c.mismatches);
    cr_assert_eq((int)n_done, c.n_emitted);
    if (!stop_at) {
        cr_assert_eq(c.n_emitted, N_IMAGES);
    } else {
        /* the images started are a prefix, all of them finished and emitted */
        cr_assert_geq(c.n_emitted, stop_at);
        cr_assert_lt((size_t)c.n_emitted, (size_t)stop_at + imcap_caption_many_window(threads, block));
    }
    for (int i = 0; i < N_IMAGES; i++) {
        int want = i < c.n_emitted ? 1 : 0;
        cr_assert_eq(c.n_done[i], want, "image %d: done %d times", i, c.n_done[i]);
        cr_assert_eq(c.emitted[i], want, "image %d: emitted %d times", i, c.emitted[i]);
        imcap_result_free(c.ref[i]);
    }
}

Test(caption_many, one_thread_in_order, .init = setup, .fini = teardown) { run_many(1, 5, 0); }
Test(caption_many, two_threads_in_order, .init = setup, .fini = teardown) { run_many(2, 3, 0); }
Test(caption_many, two_threads_block_1, .init = setup, .fini = teardown) { run_many(2, 1, 0); }
Test(caption_many, stop_leaves_an_emitted_prefix, .init = setup, .fini = teardown) {
    run_many(1, 4, 10);
    run_many(2, 4, 37);
}
