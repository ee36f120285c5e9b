/* test_threads.c — 8 threads caption through the public API (include/imcap.h
 * only, linked with libimcap.so) with one shared model, and every result is
 * bit-identical to captioning the same image alone on one thread.
 *
 * A plain program, not Criterion: it must also run inside the
 * ThreadSanitizer build (Criterion cannot run under TSan, see
 * docs/reliability.md), where it is the in-process half of the check: the
 * model, the images, the read-only accessors and imcap_caption_many's
 * OpenMP workers are shared between threads there. Each case starts its
 * threads together on a barrier so that they really overlap.
 *
 * Cases (8 threads each):
 *   workspace  imcap_caption_image, one imcap_workspace per thread, and the
 *              model's read-only accessors (info, words, config, metadata)
 *   file       imcap_caption_file with a NULL workspace (decode + caption)
 *   batcher    one imcap_batcher (block 4) per thread
 *   many       imcap_caption_many with 8 OpenMP workers, block 2
 *   load       8 threads load the same model file at once (the JSON parse
 *              lock, src/util/json.c), each then captions with its own copy
 *
 * Prints one line per case and "threads: N passed, N failed"; exits 1 on any
 * failure. Needs IMCAP_SOURCE_ROOT (set by meson) for the model and the
 * images in samples/. */
#include <imcap.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NTHREADS 8
#define MAX_IMAGES 12
#define PER_THREAD 6 /* images per thread per case: thread t takes t, t+1, ... (mod n) */

static const char *root;
static imcap_model *model;
static imcap_options opt;
static int n_images;
static char paths[MAX_IMAGES][4096];
static imcap_image images[MAX_IMAGES];
static imcap_result *ref[MAX_IMAGES]; /* captioned alone, on the main thread */
static pthread_barrier_t start;

/* one slot per thread: written by that thread only, read after the join */
static struct {
    int failures;
    char msg[512];
} slot[NTHREADS];

static void fail(int t, const char *fmt, ...) {
    if (slot[t].failures++) return; /* keep the first message */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(slot[t].msg, sizeof slot[t].msg, fmt, ap);
    va_end(ap);
}

static int same_floats(const float *a, const float *b, size_t n) {
    return n == 0 || (a && b && memcmp(a, b, n * sizeof *a) == 0);
}

/* "" when r is bit-identical to the reference result of image i, else what differs */
static const char *differs(const imcap_result *r, int i) {
    const imcap_result *e = ref[i];
    if (!r) return "no result";
    if (r->grid_h != e->grid_h || r->grid_w != e->grid_w || r->image_width != e->image_width ||
        r->image_height != e->image_height)
        return "grid or image size";
    if (memcmp(&r->domain_score, &e->domain_score, sizeof r->domain_score) || r->in_domain != e->in_domain)
        return "domain score";
    if (r->n_hyps != e->n_hyps) return "number of hypotheses";
    size_t L = (size_t)e->grid_h * (size_t)e->grid_w;
    for (int h = 0; h < e->n_hyps; h++) {
        const imcap_hypothesis *a = &r->hyps[h], *b = &e->hyps[h];
        if (a->n_tokens != b->n_tokens || memcmp(a->tokens, b->tokens, (size_t)b->n_tokens * sizeof *b->tokens))
            return "tokens";
        if (!same_floats(a->logprobs, b->logprobs, (size_t)b->n_tokens)) return "log-probabilities";
        if (!same_floats(a->attention, b->attention, (size_t)b->n_tokens * L)) return "attention";
        if (memcmp(&a->score, &b->score, sizeof a->score) || a->finished != b->finished) return "score";
        if (strcmp(a->text, b->text)) return "text";
        for (int k = 0; k < b->n_tokens; k++)
            if (strcmp(a->words[k], b->words[k])) return "words";
    }
    return "";
}

static void check(int t, const char *what, const imcap_result *r, int i) {
    const char *d = differs(r, i);
    if (*d) fail(t, "thread %d, %s, %s: %s differ from one thread's", t, what, paths[i], d);
}

/* ---- the cases: each runs on NTHREADS threads, t = 0..NTHREADS-1 */

static void case_workspace(int t) {
    imcap_workspace *ws = imcap_workspace_new(model);
    if (!ws) { fail(t, "thread %d: imcap_workspace_new failed", t); return; }
    imcap_model_info info;
    imcap_model_get_info(model, &info);
    for (int k = 0; k < PER_THREAD; k++) {
        int i = (t + k) % n_images;
        imcap_result *r = NULL;
        imcap_error err;
        if (imcap_caption_image(model, ws, &images[i], &opt, &r, &err) != IMCAP_OK) {
            fail(t, "thread %d: %s: %s", t, paths[i], err.msg);
            continue;
        }
        check(t, "imcap_caption_image", r, i);
        /* the read-only accessors, at the same time as the others caption */
        for (int h = 0; h < r->hyps[0].n_tokens; h++)
            if (strcmp(imcap_model_word(model, r->hyps[0].tokens[h]), r->hyps[0].words[h]))
                fail(t, "thread %d: imcap_model_word disagrees with the result", t);
        imcap_result_free(r);
    }
    imcap_model_info again;
    imcap_model_get_info(model, &again);
    if (memcmp(&info, &again, sizeof info) || !imcap_model_config_json(model) ||
        imcap_model_word(model, info.vocab_size) != NULL)
        fail(t, "thread %d: the model's information changed", t);
    (void)imcap_model_metadata(model, "imcap.train.command");
    imcap_workspace_free(ws);
}

static void case_file(int t) {
    for (int k = 0; k < PER_THREAD; k++) {
        int i = (t + k) % n_images;
        imcap_result *r = NULL;
        imcap_error err;
        if (imcap_caption_file(model, NULL, paths[i], &opt, &r, &err) != IMCAP_OK) {
            fail(t, "thread %d: %s: %s", t, paths[i], err.msg);
            continue;
        }
        check(t, "imcap_caption_file", r, i);
        imcap_result_free(r);
    }
}

static void take_one(int t, imcap_batcher *b) {
    uint64_t tag = 0;
    imcap_result *r = NULL;
    imcap_error err;
    imcap_status s = imcap_batcher_next(b, &tag, &r, &err);
    if (s != IMCAP_OK) fail(t, "thread %d: imcap_batcher_next: %s", t, err.msg);
    else if (tag >= (uint64_t)n_images) fail(t, "thread %d: imcap_batcher_next: tag %llu", t, (unsigned long long)tag);
    else check(t, "imcap_batcher", r, (int)tag);
    imcap_result_free(r);
}

static void case_batcher(int t) {
    imcap_batcher *b = NULL;
    imcap_error err;
    if (imcap_batcher_new(model, &opt, 4, &b, &err) != IMCAP_OK) {
        fail(t, "thread %d: imcap_batcher_new: %s", t, err.msg);
        return;
    }
    for (int k = 0; k < PER_THREAD; k++) {
        int i = (t + k) % n_images;
        while (imcap_batcher_space(b) == 0) take_one(t, b);
        if (imcap_batcher_push(b, &images[i], (uint64_t)i, &err) != IMCAP_OK)
            fail(t, "thread %d: imcap_batcher_push %s: %s", t, paths[i], err.msg);
    }
    while (imcap_batcher_pending(b) > 0) take_one(t, b);
    imcap_batcher_free(b);
}

/* imcap_caption_many: its callbacks run on its OpenMP workers */
typedef struct {
    imcap_result *res[MAX_IMAGES];
    int status[MAX_IMAGES];
    size_t emitted; /* emit is called one at a time, in index order */
    int out_of_order;
} many_ctx;

static imcap_status many_load(void *ctx, size_t i, imcap_image *img, imcap_error *err) {
    (void)ctx, (void)err;
    *img = images[i]; /* lent: many_release keeps it */
    return IMCAP_OK;
}
static void many_release(void *ctx, size_t i, imcap_image *img) { (void)ctx, (void)i, (void)img; }
static void many_done(void *ctx, size_t i, imcap_result *res, imcap_status st, const imcap_error *err) {
    (void)err;
    many_ctx *c = ctx;
    c->res[i] = res;
    c->status[i] = (int)st;
}
static void many_emit(void *ctx, size_t i) {
    many_ctx *c = ctx;
    if (i != c->emitted || !c->res[i]) c->out_of_order = 1;
    c->emitted++;
}

static void case_many(int t) {
    if (t != 0) return; /* one caller; the library starts the NTHREADS workers */
    many_ctx c = {0};
    imcap_many_io io = {.load = many_load, .done = many_done, .emit = many_emit, .release = many_release, .ctx = &c};
    size_t n_done = 0;
    imcap_error err;
    if (imcap_caption_many(model, (size_t)n_images, &opt, 2, NTHREADS, &io, &n_done, &err) != IMCAP_OK)
        fail(t, "imcap_caption_many: %s", err.msg);
    if (n_done != (size_t)n_images || c.emitted != (size_t)n_images || c.out_of_order)
        fail(t, "imcap_caption_many: %zu done, %zu emitted%s", n_done, c.emitted,
             c.out_of_order ? ", out of order" : "");
    for (int i = 0; i < n_images; i++) {
        if (c.status[i] != IMCAP_OK) fail(t, "imcap_caption_many: %s failed", paths[i]);
        check(t, "imcap_caption_many", c.res[i], i);
        imcap_result_free(c.res[i]);
    }
}

static void case_load(int t) {
    char path[4200];
    snprintf(path, sizeof path, "%s/models/default.safetensors", root);
    imcap_model *m = NULL;
    imcap_error err;
    if (imcap_model_load(path, &m, &err) != IMCAP_OK) {
        fail(t, "thread %d: imcap_model_load: %s", t, err.msg);
        return;
    }
    int i = t % n_images;
    imcap_result *r = NULL;
    if (imcap_caption_image(m, NULL, &images[i], &opt, &r, &err) != IMCAP_OK)
        fail(t, "thread %d: %s: %s", t, paths[i], err.msg);
    else
        check(t, "a model loaded on this thread", r, i);
    imcap_result_free(r);
    imcap_model_free(m);
}

/* ---- driver */

typedef struct {
    int t;
    void (*fn)(int);
} job;

static void *run_job(void *arg) {
    job *j = arg;
    pthread_barrier_wait(&start);
    j->fn(j->t);
    return NULL;
}

static int run_case(const char *name, void (*fn)(int)) {
    pthread_t th[NTHREADS];
    job jobs[NTHREADS];
    memset(slot, 0, sizeof slot);
    pthread_barrier_init(&start, NULL, NTHREADS);
    int made = 0;
    for (; made < NTHREADS; made++) {
        jobs[made] = (job){made, fn};
        if (pthread_create(&th[made], NULL, run_job, &jobs[made])) break;
    }
    if (made < NTHREADS) {
        /* cannot happen on a sane system; the barrier would never open */
        fprintf(stderr, "test_threads: pthread_create failed\n");
        exit(1);
    }
    for (int t = 0; t < NTHREADS; t++) pthread_join(th[t], NULL);
    pthread_barrier_destroy(&start);
    int failures = 0;
    for (int t = 0; t < NTHREADS; t++)
        if (slot[t].failures) {
            if (!failures) printf("FAIL %s: %s\n", name, slot[t].msg);
            failures += slot[t].failures;
        }
    if (!failures) printf("ok   %s\n", name);
    fflush(stdout);
    return failures == 0;
}

int main(void) {
    root = getenv("IMCAP_SOURCE_ROOT");
    if (!root) root = ".";
    imcap_error err;
    char path[4200];
    snprintf(path, sizeof path, "%s/models/default.safetensors", root);
    if (imcap_model_load(path, &model, &err) != IMCAP_OK) {
        fprintf(stderr, "test_threads: %s\n", err.msg);
        return 1;
    }
    imcap_options_default(&opt);
    for (int i = 0; i < MAX_IMAGES; i++) {
        snprintf(paths[i], sizeof paths[i], "%s/samples/scene_%02d.png", root, i);
        if (imcap_image_load(paths[i], &images[i], &err) != IMCAP_OK) {
            fprintf(stderr, "test_threads: %s\n", err.msg);
            return 1;
        }
        n_images++;
    }
    /* the reference: every image alone, on this thread */
    for (int i = 0; i < n_images; i++)
        if (imcap_caption_image(model, NULL, &images[i], &opt, &ref[i], &err) != IMCAP_OK) {
            fprintf(stderr, "test_threads: %s\n", err.msg);
            return 1;
        }

    static const struct {
        const char *name;
        void (*fn)(int);
    } cases[] = {{"workspace", case_workspace}, {"file", case_file}, {"batcher", case_batcher},
                 {"many", case_many},           {"load", case_load}};
    int n = (int)(sizeof cases / sizeof cases[0]), passed = 0;
    for (int c = 0; c < n; c++) passed += run_case(cases[c].name, cases[c].fn);
    printf("threads: %d passed, %d failed\n", passed, n - passed);

    for (int i = 0; i < n_images; i++) imcap_result_free(ref[i]), imcap_image_free(&images[i]);
    imcap_model_free(model);
    return passed == n ? 0 : 1;
}
