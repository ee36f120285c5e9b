/* bench.c — imcap-bench: model load, encoder, decoder step, captioning,
 * training and `imcap batch` speed, next to the machine's limits (sgemm,
 * sgemv, read bandwidth). bench/compare.py runs its groups one at a time,
 * interleaved with PyTorch's. See bench/README.md for what each number means. */
#include <cblas.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <omp.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "decode/decode.h"
#include "model/encoder.h"
#include "image/image.h"
#include "model/model.h"
#include "model/network.h"
#include "train/train.h"
#include "util/util.h"

extern char **environ;

#define MAX_OUTER 2    /* the two-threaded rows use two OpenMP threads */
#define RANDOM_VOCAB 50
#define TRAIN_BATCH 32
#define TRAIN_LENGTH 12
#define MAX_ROWS 96    /* the largest decoder step row */
#define STREAM_BIG (256u << 20) /* bytes of the memory-bandwidth buffer */

/* ------------------------------------------------------------ options */

typedef struct {
    const char *model_path;  /* NULL: models/default.safetensors if present, else random */
    const char *config_path; /* for the random model */
    const char *json_path;
    const char *imcap_path;  /* NULL: ../imcap next to this executable */
    const char *only;        /* comma list of groups, NULL: all */
    const char *caption_image; /* image file for the caption rows, NULL: random */
    int img_w, img_h;
    int quick, natural, single;
    int batch_count, encoder_batch;
    int min_reps;
    double min_time, rep_target;
} bench_opts;

static void usage(FILE *f) {
    fprintf(f,
            "usage: imcap-bench [--model M.safetensors | --config CFG.json] [--quick] [--json FILE]\n"
            "                   [--image WxH] [--min-time S] [--min-reps N] [--natural-length]\n"
            "                   [--imcap PATH] [--batch-count N] [--only GROUPS] [--single-thread]\n"
            "                   [--caption-image FILE] [--encoder-batch N]\n"
            "\n"
            "Prints a Markdown table of timings on stdout (progress on stderr).\n"
            "  --model M          model to time (default models/default.safetensors if present,\n"
            "                     else a random model from --config, default models/default_config.json,\n"
            "                     with a %d-word vocabulary)\n"
            "  --quick            fewer repetitions (min time 0.1 s, 3 reps): a smoke test, not numbers\n"
            "  --json FILE        also write the results as JSON\n"
            "  --image WxH        size of the random test image (default 640x480; the library resizes it)\n"
            "  --min-time S       repeat each measurement for at least S seconds (default 1)\n"
            "  --min-reps N       and at least N times (default 5)\n"
            "  --natural-length   let captions stop at <end> (default: <end> suppressed, so every\n"
            "                     caption runs max_length steps and the work per image is fixed)\n"
            "  --imcap PATH       the imcap executable for the `imcap batch` rows (default: ../imcap\n"
            "                     next to imcap-bench)\n"
            "  --batch-count N    images for the `imcap batch` rows (default 200)\n"
            "  --caption-image F  caption this image file in the caption rows instead of the random one\n"
            "                     (with --natural-length: the comparison with PyTorch)\n"
            "  --encoder-batch N  images per call in the `encoder batch` row (default 32)\n"
            "  --single-thread    only the one-thread rows\n"
            "  --only GROUPS      comma list of load,encoder,decoder,caption,sgemm,limits,train,batch\n",
            RANDOM_VOCAB);
}

static int want(const bench_opts *o, const char *group) {
    if (!o->only) return 1;
    size_t n = strlen(group);
    for (const char *p = o->only; (p = strstr(p, group)); p += n)
        if ((p == o->only || p[-1] == ',') && (p[n] == 0 || p[n] == ',')) return 1;
    return 0;
}

static int parse_args(int argc, char **argv, bench_opts *o) {
    memset(o, 0, sizeof *o);
    o->config_path = "models/default_config.json";
    o->img_w = 640, o->img_h = 480;
    o->batch_count = 200;
    o->encoder_batch = 32;
    o->min_reps = 5, o->min_time = 1.0, o->rep_target = 0.01;
    int min_reps = -1;
    double min_time = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); exit(0); }
        if (!strcmp(a, "--quick")) { o->quick = 1; continue; }
        if (!strcmp(a, "--natural-length")) { o->natural = 1; continue; }
        if (!strcmp(a, "--single-thread")) { o->single = 1; continue; }
        if (!v) { fprintf(stderr, "imcap-bench: %s: unknown option or missing value\n", a); return -1; }
        char *end = NULL;
        errno = 0;
        if (!strcmp(a, "--model")) o->model_path = v;
        else if (!strcmp(a, "--config")) o->config_path = v;
        else if (!strcmp(a, "--json")) o->json_path = v;
        else if (!strcmp(a, "--imcap")) o->imcap_path = v;
        else if (!strcmp(a, "--only")) o->only = v;
        else if (!strcmp(a, "--caption-image")) o->caption_image = v;
        else if (!strcmp(a, "--image")) {
            if (sscanf(v, "%dx%d", &o->img_w, &o->img_h) != 2 || o->img_w < 1 || o->img_h < 1 || o->img_w > 8192 ||
                o->img_h > 8192) {
                fprintf(stderr, "imcap-bench: --image: '%s' is not WxH with sides in 1..8192\n", v);
                return -1;
            }
        } else if (!strcmp(a, "--min-time")) {
            min_time = strtod(v, &end);
            if (errno || *end || !(min_time >= 0 && min_time <= 600)) {
                fprintf(stderr, "imcap-bench: --min-time: '%s' is not a number of seconds in [0, 600]\n", v);
                return -1;
            }
        } else if (!strcmp(a, "--min-reps") || !strcmp(a, "--batch-count") || !strcmp(a, "--encoder-batch")) {
            long n = strtol(v, &end, 10);
            if (errno || *end || n < 1 || n > 100000) {
                fprintf(stderr, "imcap-bench: %s: '%s' is not an integer in [1, 100000]\n", a, v);
                return -1;
            }
            if (!strcmp(a, "--min-reps")) min_reps = (int)n;
            else if (!strcmp(a, "--encoder-batch")) o->encoder_batch = (int)n;
            else o->batch_count = (int)n;
        } else {
            fprintf(stderr, "imcap-bench: unknown option '%s'\n", a);
            return -1;
        }
        i++;
    }
    if (o->only) {
        static const char *groups[] = {"load", "encoder", "decoder", "caption", "sgemm", "limits", "train", "batch"};
        char *copy = strdup(o->only), *save = NULL;
        for (char *g = strtok_r(copy, ",", &save); g; g = strtok_r(NULL, ",", &save)) {
            size_t k = 0;
            while (k < sizeof groups / sizeof groups[0] && strcmp(g, groups[k])) k++;
            if (k == sizeof groups / sizeof groups[0]) {
                fprintf(stderr, "imcap-bench: --only: unknown group '%s'\n", g);
                free(copy);
                return -1;
            }
        }
        free(copy);
    }
    if (o->quick) o->min_reps = 3, o->min_time = 0.1, o->rep_target = 0.002;
    if (min_reps > 0) o->min_reps = min_reps;
    if (min_time >= 0) o->min_time = min_time;
    if (o->model_path && strcmp(o->config_path, "models/default_config.json")) {
        fprintf(stderr, "imcap-bench: give --model or --config, not both\n");
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ results */

typedef struct {
    char name[48], threads[12], unit[16], rate_unit[20], note[256];
    double median, min, rate, gflops; /* rate and gflops at the median; 0: none */
    int reps;
    long inner;
    int ok;
} row;

typedef struct {
    row *r;
    int n, cap;
} table;

static row *table_add(table *t, const char *name, const char *threads, const char *unit) {
    if (t->n == t->cap) {
        int cap = t->cap ? 2 * t->cap : 32;
        row *nr = realloc(t->r, (size_t)cap * sizeof *nr);
        if (!nr) { fprintf(stderr, "imcap-bench: out of memory\n"); exit(3); }
        t->r = nr, t->cap = cap;
    }
    row *r = &t->r[t->n++];
    memset(r, 0, sizeof *r);
    snprintf(r->name, sizeof r->name, "%s", name);
    snprintf(r->threads, sizeof r->threads, "%s", threads);
    snprintf(r->unit, sizeof r->unit, "%s", unit);
    return r;
}

static void skip(row *r, const char *fmt, ...) IMCAP_PRINTF(2, 3);
static void skip(row *r, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->note, sizeof r->note, fmt, ap);
    va_end(ap);
    r->ok = 0;
    fprintf(stderr, "  %s [%s]: skipped: %s\n", r->name, r->threads, r->note);
}

/* ------------------------------------------------------------ timing */

/* One unit of work for thread tid; returns nonzero on failure (the context
 * keeps the message). */
typedef int (*work_fn)(void *ctx, int tid);

/* outer threads each run `inner` units; returns the wall time. */
static int run_once(work_fn f, void *ctx, int outer, long inner, double *t) {
    int fail = 0;
    double t0 = imcap_now();
    if (outer == 1) {
        for (long i = 0; i < inner && !fail; i++) fail = f(ctx, 0);
    } else {
#pragma omp parallel num_threads(outer) reduction(| : fail)
        {
            int tid = omp_get_thread_num();
            for (long i = 0; i < inner && !fail; i++) fail = f(ctx, tid);
        }
    }
    *t = imcap_now() - t0;
    return fail;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Warm-up, then repetitions until both min_time and min_reps are reached.
 * Fast work is grouped into reps of `inner` calls (at least rep_target
 * seconds) so the clock's resolution and call overhead do not show.
 * Fills r->median / r->min with seconds per call per thread, i.e. the
 * wall time divided by the calls all threads made: for the two-threaded
 * rows that is the inverse of the throughput. */
static int measure(const bench_opts *o, row *r, work_fn f, void *ctx, int outer, int blas) {
    openblas_set_num_threads(blas);
    fprintf(stderr, "  %s [%s] ...", r->name, r->threads);
    fflush(stderr);
    double t;
    if (run_once(f, ctx, outer, 1, &t) || run_once(f, ctx, outer, 1, &t)) {
        fprintf(stderr, " failed\n");
        return -1;
    }
    long inner = t >= o->rep_target ? 1 : (long)ceil(o->rep_target / (t > 1e-9 ? t : 1e-9));
    if (inner > 1000000) inner = 1000000;
    int cap = 64, n = 0;
    double *ts = malloc((size_t)cap * sizeof *ts);
    double start = imcap_now() - (inner == 1 ? t : 0);
    /* slow work: the run after the warm-up already is a repetition */
    if (ts && inner == 1) ts[n++] = t / outer;
    while (ts && (n < o->min_reps || imcap_now() - start < o->min_time) && n < 100000) {
        if (run_once(f, ctx, outer, inner, &t)) {
            free(ts);
            fprintf(stderr, " failed\n");
            return -1;
        }
        if (n == cap) {
            double *nt = realloc(ts, (size_t)(cap *= 2) * sizeof *ts);
            if (!nt) break;
            ts = nt;
        }
        ts[n++] = t / ((double)inner * outer);
    }
    if (!ts || n == 0) { free(ts); return -1; }
    qsort(ts, (size_t)n, sizeof *ts, cmp_double);
    r->median = n % 2 ? ts[n / 2] : 0.5 * (ts[n / 2 - 1] + ts[n / 2]);
    r->min = ts[0];
    r->reps = n, r->inner = inner, r->ok = 1;
    free(ts);
    fprintf(stderr, " %.4g ms (%d reps x %ld)\n", r->median * 1e3, n, inner);
    /* OpenBLAS's pthread workers spin for a while after a product; let them
     * sleep so they do not steal a core from the next measurement. */
    if (blas > 1) usleep(250000);
    openblas_set_num_threads(1);
    return 0;
}

/* ------------------------------------------------------------ machine */

static void cpu_model(char *buf, size_t n) {
    snprintf(buf, n, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10)) continue;
        char *c = strchr(line, ':');
        if (!c) continue;
        c++;
        while (*c == ' ' || *c == '\t') c++;
        c[strcspn(c, "\n")] = 0;
        snprintf(buf, n, "%s", c);
        break;
    }
    fclose(f);
}

static void loadavg(char *buf, size_t n) {
    snprintf(buf, n, "unknown");
    FILE *f = fopen("/proc/loadavg", "r");
    if (!f) return;
    double a, b, c;
    if (fscanf(f, "%lf %lf %lf", &a, &b, &c) == 3) snprintf(buf, n, "%.2f %.2f %.2f", a, b, c);
    fclose(f);
}

static const char *blas_parallel_name(void) {
    switch (openblas_get_parallel()) {
    case 0: return "sequential";
    case 1: return "pthreads";
    case 2: return "OpenMP";
    default: return "unknown threading";
    }
}

static int omp_threads_granted(int want_n) {
    int got = 0;
#pragma omp parallel num_threads(want_n)
    {
#pragma omp single
        got = omp_get_num_threads();
    }
    return got;
}

/* ------------------------------------------------------------ temporary files */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

static void rm_tree(const char *dir) {
    if (dir && *dir) nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}


/* ------------------------------------------------------------ model */

static imcap_status random_model(const char *config_path, imcap_model **out, imcap_error *err) {
    unsigned char *text;
    size_t size;
    imcap_status s = imcap_read_file(config_path, &text, &size, err);
    if (s) return s;
    imcap_config cfg;
    s = imcap_config_parse((const char *)text, config_path, &cfg, err);
    free(text);
    if (s) return s;
    imcap_vocab v = {RANDOM_VOCAB, calloc(RANDOM_VOCAB, sizeof(char *))};
    if (!v.words) return imcap_fail(err, IMCAP_E_NOMEM, "out of memory");
    static const char *sp[4] = {"<pad>", "<start>", "<end>", "<unk>"};
    for (int i = 0; i < RANDOM_VOCAB; i++) {
        char w[16];
        snprintf(w, sizeof w, "w%02d", i);
        v.words[i] = strdup(i < 4 ? sp[i] : w);
        if (!v.words[i]) { imcap_vocab_free(&v); return imcap_fail(err, IMCAP_E_NOMEM, "out of memory"); }
    }
    s = imcap_model_create(&cfg, &v, out, err);
    imcap_vocab_free(&v);
    if (s) return s;
    imcap_model_init_random(*out, 1);
    return IMCAP_OK;
}

/* ------------------------------------------------------------ work: load */

typedef struct {
    const char *path;
    char err[1024];
} load_ctx;

static int work_load(void *vctx, int tid) {
    (void)tid;
    load_ctx *c = vctx;
    imcap_model *m;
    imcap_error e;
    if (imcap_model_load(c->path, &m, &e) != IMCAP_OK) {
        snprintf(c->err, sizeof c->err, "%s", e.msg);
        return 1;
    }
    imcap_model_free(m);
    return 0;
}

/* ------------------------------------------------------------ work: encoder, decoder, caption */

typedef struct {
    const imcap_model *m;
    imcap_workspace *ws[MAX_OUTER];
    /* decoder step */
    int N, rows; /* rows: every row has its own image (imcap_decoder_step_forward_rows) */
    imcap_step_cache sc[MAX_OUTER];
    float *h[MAX_OUTER], *c[MAX_OUTER];
    int tokens[MAX_OUTER][MAX_ROWS];
    float *img_a[MAX_OUTER], *img_p[MAX_OUTER]; /* [n_img,L,D], [n_img,L,A] copies of the encoded image */
    const float *a_rows[MAX_OUTER][MAX_ROWS], *p_rows[MAX_OUTER][MAX_ROWS];
    /* encoder over several images at once */
    imcap_encoder_acts encn[MAX_OUTER];
    int n_images;
    /* captioning */
    imcap_image img;
    imcap_options opt;
    int ntok[MAX_OUTER];
    char err[MAX_OUTER][1024];
} net_ctx;

static int work_encoder(void *vctx, int tid) {
    net_ctx *c = vctx;
    const imcap_model *m = c->m;
    imcap_workspace *ws = c->ws[tid];
    imcap_encoder_forward(&m->cfg, &m->p, &m->epack, &ws->enc);
    imcap_decoder_prepare_forward(&m->cfg, &m->p, &m->pack, imcap_encoder_output(&m->cfg, &ws->enc), &ws->init);
    return 0;
}

static int work_encoder_n(void *vctx, int tid) {
    net_ctx *c = vctx;
    const imcap_model *m = c->m;
    imcap_workspace *ws = c->ws[tid];
    imcap_encoder_forward_n(&m->cfg, &m->p, &m->epack, &c->encn[tid], c->n_images);
    /* outputs [n, D, H, W], one image after the other */
    const float *out = imcap_encoder_output(&m->cfg, &c->encn[tid]);
    size_t per = (size_t)m->cfg.D * m->cfg.L;
    for (int i = 0; i < c->n_images; i++) imcap_decoder_prepare_forward(&m->cfg, &m->p, &m->pack, out + i * per, &ws->init);
    return 0;
}

static int work_step(void *vctx, int tid) {
    net_ctx *c = vctx;
    const imcap_model *m = c->m;
    imcap_workspace *ws = c->ws[tid];
    /* Same inputs every call: the cost of a step does not depend on them. */
    if (c->rows)
        imcap_decoder_step_infer_rows(m, c->N, c->tokens[tid], c->h[tid], c->c[tid], c->a_rows[tid], c->p_rows[tid],
                                      &c->sc[tid]);
    else
        imcap_decoder_step_infer(m, c->N, c->tokens[tid], c->h[tid], c->c[tid], ws->init.a, 0, ws->init.p, 0,
                                 &c->sc[tid]);
    return 0;
}

static int work_caption(void *vctx, int tid) {
    net_ctx *c = vctx;
    imcap_result *r;
    imcap_error e;
    if (imcap_caption_image(c->m, c->ws[tid], &c->img, &c->opt, &r, &e) != IMCAP_OK) {
        snprintf(c->err[tid], sizeof c->err[tid], "%s", e.msg);
        return 1;
    }
    c->ntok[tid] = r->hyps[0].n_tokens;
    imcap_result_free(r);
    return 0;
}

/* ------------------------------------------------------------ work: sgemm */

typedef struct {
    int n;
    float *a, *b, *c;
} gemm_ctx;

static int work_sgemm(void *vctx, int tid) {
    (void)tid;
    gemm_ctx *g = vctx;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g->n, g->n, g->n, 1.0f, g->a, g->n, g->b, g->n, 0.0f, g->c,
                g->n);
    return 0;
}

/* ------------------------------------------------------------ work: the machine's limits */

/* y[M] = W[M,K] x[K] (sgemv) or C[Mr,M] = X[Mr,K] W^T (sgemm): the shapes of
 * the decoder's LSTM gates, one row and Mr rows. */
typedef struct {
    int rows, M, K;
    float *w, *x, *y;
} gemv_ctx;

static int work_sgemv(void *vctx, int tid) {
    (void)tid;
    gemv_ctx *g = vctx;
    if (g->rows == 1)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, g->M, g->K, 1.0f, g->w, g->K, g->x, 1, 0.0f, g->y, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, g->rows, g->M, g->K, 1.0f, g->x, g->K, g->w, g->K, 0.0f,
                    g->y, g->M);
    return 0;
}

typedef struct {
    const float *buf;
    size_t n;
    volatile float sink;
} stream_ctx;

/* A streaming sum with 8 independent vector accumulators, so that the loads
 * and not the additions' latency set the pace. */
typedef float v8f __attribute__((vector_size(32)));
#define STREAM_BODY                                                                 \
    const v8f *v = (const v8f *)x;                                                  \
    size_t nv = n / 8, i = 0;                                                       \
    v8f s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0}, s4 = {0}, s5 = {0}, s6 = {0}, s7 = {0}; \
    for (; i + 8 <= nv; i += 8) {                                                   \
        s0 += v[i], s1 += v[i + 1], s2 += v[i + 2], s3 += v[i + 3];                 \
        s4 += v[i + 4], s5 += v[i + 5], s6 += v[i + 6], s7 += v[i + 7];             \
    }                                                                               \
    for (; i < nv; i++) s0 += v[i];                                                 \
    v8f t = ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7));                     \
    float r = 0;                                                                    \
    for (int k = 0; k < 8; k++) r += t[k];                                          \
    for (size_t j = nv * 8; j < n; j++) r += x[j];                                  \
    return r;

static float stream_sum_generic(const float *x, size_t n) { STREAM_BODY }
#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx2"))) static float stream_sum_avx2(const float *x, size_t n) { STREAM_BODY }
#endif

static float (*stream_sum)(const float *, size_t) = stream_sum_generic;

static void stream_pick(void) {
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) stream_sum = stream_sum_avx2;
#endif
}

static int work_stream(void *vctx, int tid) {
    (void)tid;
    stream_ctx *c = vctx;
    c->sink = stream_sum(c->buf, c->n);
    return 0;
}

/* The bytes of the weights one decoder step reads for one row (the per-step
 * matrices and biases, and one embedding row; not the per-image encoder_att,
 * init_h, init_c). With the pack's per-word table of the gates' embedding
 * sums (imcap_decoder_pack.gates_emb), a row reads its word's 4 Hd sums
 * instead of the E columns of w_ih (and still the embedding row, which the
 * step copies into [E y; z; h]). */
static double decoder_step_weight_bytes(const imcap_model *m, int V) {
    const imcap_config *c = &m->cfg;
    double A = c->attention_dim, Hd = c->hidden_dim, D = c->D, E = c->embed_dim;
    double gates_in = m->pack.gates_emb ? 4 * Hd * D + 4 * Hd : 4 * Hd * (E + D);
    double floats = (A * Hd + A) + (A + 1) + (D * Hd + D) + (gates_in + 4 * Hd * Hd + 8 * Hd) + (V * Hd + V) + E;
    return 4 * floats;
}

/* ------------------------------------------------------------ work: training */

typedef struct {
    imcap_model *m; /* a private copy: Adam changes it */
    int T;
    imcap_worker_pool pool;
    imcap_example ex[TRAIN_BATCH];
    unsigned char *rgb;
    int *tokens;
    float *grad, *am, *av;
    imcap_adam_options adam;
    imcap_loss_options lo;
    long step;
} train_ctx;

static int work_train(void *vctx, int tid) {
    (void)tid;
    train_ctx *c = vctx;
    imcap_loss_stats st = {0};
    c->lo.step = c->step;
    imcap_pool_run(&c->pool, c->m, c->ex, TRAIN_BATCH, &c->lo, 0, c->grad, &st);
    imcap_adam_step(&c->adam, c->step + 1, c->m->block, c->grad, c->am, c->av, c->m->tab.total);
    c->step++;
    return !(st.n_tokens == (long)TRAIN_BATCH * TRAIN_LENGTH && isfinite(st.ce_sum));
}

static void train_ctx_free(train_ctx *c) {
    imcap_pool_free(&c->pool);
    free(c->rgb), free(c->tokens), free(c->grad), free(c->am), free(c->av);
    imcap_model_free(c->m);
    memset(c, 0, sizeof *c);
}

static int train_ctx_init(train_ctx *c, const imcap_model *src, int T, imcap_error *err) {
    memset(c, 0, sizeof *c);
    if (imcap_model_create(&src->cfg, &src->vocab, &c->m, err) != IMCAP_OK) return -1;
    memcpy(c->m->block, src->block, src->tab.total * sizeof(float));
    const imcap_model *m = c->m;
    int S = m->cfg.image_size, V = m->vocab.n;
    size_t img_bytes = (size_t)S * S * 3;
    c->T = T;
    c->rgb = malloc(TRAIN_BATCH * img_bytes);
    c->tokens = malloc(TRAIN_BATCH * TRAIN_LENGTH * sizeof(int));
    c->grad = imcap_aligned_alloc(m->tab.total * sizeof(float));
    c->am = imcap_aligned_alloc(m->tab.total * sizeof(float));
    c->av = imcap_aligned_alloc(m->tab.total * sizeof(float));
    int ok = c->rgb && c->tokens && c->grad && c->am && c->av && imcap_pool_init(&c->pool, m, T, T, TRAIN_BATCH, 0, NULL) == IMCAP_OK;
    if (!ok) {
        train_ctx_free(c);
        imcap_fail(err, IMCAP_E_NOMEM, "out of memory for the training buffers");
        return -1;
    }
    imcap_rng r;
    imcap_rng_seed(&r, 7);
    for (size_t i = 0; i < TRAIN_BATCH * img_bytes; i++) c->rgb[i] = (unsigned char)(imcap_rng_next(&r) >> 56);
    int max_len = m->cfg.max_length < TRAIN_LENGTH ? m->cfg.max_length : TRAIN_LENGTH;
    for (int e = 0; e < TRAIN_BATCH; e++) {
        int *tk = c->tokens + e * TRAIN_LENGTH;
        for (int t = 0; t < max_len - 1; t++) tk[t] = V > 4 ? 4 + imcap_rng_int(&r, V - 4) : IMCAP_TOK_UNK;
        tk[max_len - 1] = IMCAP_TOK_END;
        c->ex[e] = (imcap_example){.rgb = c->rgb + e * img_bytes, .tokens = tk, .length = max_len, .id = (uint64_t)e};
    }
    imcap_adam_options_default(&c->adam);
    /* imcap train's defaults */
    c->lo.att_reg = 1.0f, c->lo.dropout = 0.5f, c->lo.seed = 1;
    return 0;
}

/* ------------------------------------------------------------ work: imcap batch */

typedef struct {
    char **argv;
    const char *err_path;
    const char *out_path;
    char err[1024];
} spawn_ctx;

/* Runs argv with stdout to /dev/null (or out) and stderr to err_path;
 * returns the exit status, or -1 when it could not run. */
static int spawn_wait(char **argv, const char *err_path) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, err_path ? err_path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc) return -1;
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

/* The last line of a file, for error notes. */
static void last_line(const char *path, char *buf, size_t n) {
    buf[0] = 0;
    FILE *f = fopen(path, "r");
    if (!f) return;
    char line[1024];
    while (fgets(line, sizeof line, f))
        if (line[0] != '\n') {
            size_t l = strcspn(line, "\n");
            if (l >= n) l = n - 1;
            memcpy(buf, line, l);
            buf[l] = 0;
        }
    fclose(f);
}

static int work_spawn(void *vctx, int tid) {
    (void)tid;
    spawn_ctx *c = vctx;
    if (c->out_path) remove(c->out_path);
    int rc = spawn_wait(c->argv, c->err_path);
    if (rc == 0) return 0;
    char tail[512];
    last_line(c->err_path, tail, sizeof tail);
    snprintf(c->err, sizeof c->err, "%s exited with %d%s%s", c->argv[0], rc, tail[0] ? ": " : "", tail);
    return 1;
}

/* ------------------------------------------------------------ output */

/* Three significant digits or so, whatever the magnitude. */
static const char *fmt_value(char *buf, size_t n, double v, int ok) {
    if (!ok || v <= 0) snprintf(buf, n, "—");
    else if (v >= 100) snprintf(buf, n, "%.0f", v);
    else if (v >= 10) snprintf(buf, n, "%.1f", v);
    else if (v >= 1) snprintf(buf, n, "%.2f", v);
    else snprintf(buf, n, "%.3g", v);
    return buf;
}

static void print_table(FILE *f, const table *t) {
    fprintf(f, "| measurement | threads | median | min | unit | throughput (median) | GFLOP/s | reps | notes |\n");
    fprintf(f, "|---|---|---:|---:|---|---:|---:|---:|---|\n");
    for (int i = 0; i < t->n; i++) {
        const row *r = &t->r[i];
        char a[32], b[32], c[32], d[32], reps[48];
        if (r->ok && r->reps == 0) snprintf(reps, sizeof reps, "derived");
        else if (r->ok) snprintf(reps, sizeof reps, "%d×%ld", r->reps, r->inner);
        else snprintf(reps, sizeof reps, "—");
        fprintf(f, "| %s | %s | %s | %s | %s | %s%s%s | %s | %s | %s |\n", r->name, r->threads,
                fmt_value(a, sizeof a, r->median * 1e3, r->ok), fmt_value(b, sizeof b, r->min * 1e3, r->ok), r->unit,
                fmt_value(c, sizeof c, r->rate, r->ok), r->ok && r->rate > 0 ? " " : "", r->ok && r->rate > 0 ? r->rate_unit : "",
                fmt_value(d, sizeof d, r->gflops, r->ok), reps, r->note);
    }
}

static void json_row(imcap_buf *b, const row *r, int last) {
    imcap_buf_printf(b, "    {\"name\": ");
    imcap_buf_json_string(b, r->name);
    imcap_buf_printf(b, ", \"threads\": ");
    imcap_buf_json_string(b, r->threads);
    imcap_buf_printf(b, ", \"ok\": %s, \"unit\": ", r->ok ? "true" : "false");
    imcap_buf_json_string(b, r->unit);
    if (r->ok) {
        imcap_buf_printf(b, ", \"median\": %.6g, \"min\": %.6g, \"reps\": %d, \"inner\": %ld", r->median * 1e3, r->min * 1e3,
                         r->reps, r->inner);
        if (r->rate > 0) {
            imcap_buf_printf(b, ", \"throughput\": %.6g, \"throughput_unit\": ", r->rate);
            imcap_buf_json_string(b, r->rate_unit);
        }
        if (r->gflops > 0) imcap_buf_printf(b, ", \"gflops\": %.6g", r->gflops);
    }
    imcap_buf_printf(b, ", \"note\": ");
    imcap_buf_json_string(b, r->note);
    imcap_buf_printf(b, "}%s\n", last ? "" : ",");
}

/* ------------------------------------------------------------ main */

typedef struct {
    char cpu[256], load_start[64], load_end[64], date[64], blas[512], compiler[128], model_desc[1024];
    char image_desc[256], length_desc[256], timing_desc[256], omp_note[128];
    int cores, omp_procs;
} machine_info;

int main(int argc, char **argv) {
    bench_opts o;
    if (parse_args(argc, argv, &o)) {
        usage(stderr);
        return 2;
    }
    int failures = 0;
    machine_info mi;
    memset(&mi, 0, sizeof mi);
    cpu_model(mi.cpu, sizeof mi.cpu);
    loadavg(mi.load_start, sizeof mi.load_start);
    time_t now = time(NULL);
    strftime(mi.date, sizeof mi.date, "%Y-%m-%d %H:%M:%S %Z", localtime(&now));
    mi.cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
    mi.omp_procs = omp_get_num_procs();
    char *cfgs = openblas_get_config();
    snprintf(mi.blas, sizeof mi.blas, "%s (core %s, %s)", cfgs ? cfgs : "?", openblas_get_corename(),
             blas_parallel_name());
#if defined(__clang__)
    snprintf(mi.compiler, sizeof mi.compiler, "clang %s", __clang_version__);
#elif defined(__GNUC__)
    snprintf(mi.compiler, sizeof mi.compiler, "GCC %s", __VERSION__);
#else
    snprintf(mi.compiler, sizeof mi.compiler, "unknown compiler");
#endif
#ifdef __OPTIMIZE__
    strncat(mi.compiler, ", optimised build", sizeof mi.compiler - strlen(mi.compiler) - 1);
#else
    strncat(mi.compiler, ", NOT optimised (debug build: numbers are meaningless)",
            sizeof mi.compiler - strlen(mi.compiler) - 1);
#endif
    int granted = omp_threads_granted(MAX_OUTER);
    if (granted < MAX_OUTER)
        snprintf(mi.omp_note, sizeof mi.omp_note, "OpenMP granted only %d thread(s): the two-threaded rows are not",
                 granted);

    /* ---- temporary directory */
    const char *tmproot = getenv("TMPDIR");
    char *tmpdir = imcap_path_join(tmproot && *tmproot ? tmproot : "/tmp", "imcap-bench-XXXXXX", NULL);
    if (!tmpdir || !mkdtemp(tmpdir)) {
        fprintf(stderr, "imcap-bench: cannot create a temporary directory: %s\n", strerror(errno));
        return 3;
    }

    /* ---- the model */
    imcap_error err;
    imcap_model *m = NULL;
    char *model_file = NULL;
    struct stat sb;
    const char *model_path = o.model_path;
    /* an explicit --config means a random model of that shape */
    int config_given = strcmp(o.config_path, "models/default_config.json") != 0;
    if (!model_path && !config_given && stat("models/default.safetensors", &sb) == 0)
        model_path = "models/default.safetensors";
    if (model_path) {
        model_file = strdup(model_path);
        if (imcap_model_load(model_path, &m, &err) != IMCAP_OK) {
            fprintf(stderr, "imcap-bench: %s\n", err.msg);
            rm_tree(tmpdir);
            return 3;
        }
        snprintf(mi.model_desc, sizeof mi.model_desc, "%s%s", model_path,
                 o.model_path ? "" : " (the default model)");
    } else {
        imcap_model *rm;
        model_file = imcap_path_join(tmpdir, "random.safetensors", NULL);
        if (random_model(o.config_path, &rm, &err) != IMCAP_OK || imcap_model_save(rm, model_file, &err) != IMCAP_OK) {
            fprintf(stderr, "imcap-bench: %s\n(no models/default.safetensors: run from the repository root, or give "
                            "--model or --config)\n",
                    err.msg);
            rm_tree(tmpdir);
            return 3;
        }
        imcap_model_free(rm);
        if (imcap_model_load(model_file, &m, &err) != IMCAP_OK) {
            fprintf(stderr, "imcap-bench: %s\n", err.msg);
            rm_tree(tmpdir);
            return 3;
        }
        snprintf(mi.model_desc, sizeof mi.model_desc,
                 "RANDOM model: %s with a %d-word vocabulary, seed 1, via "
                 "imcap_model_create + imcap_model_init_random, saved to a temporary file",
                 o.config_path, RANDOM_VOCAB);
    }
    imcap_model_info info;
    imcap_model_get_info(m, &info);
    stat(model_file, &sb);
    double file_mb = (double)sb.st_size / 1e6;
    {
        size_t l = strlen(mi.model_desc);
        snprintf(mi.model_desc + l, sizeof mi.model_desc - l,
                 ". Input %dx%d, grid %dx%d, D %d, embed %d, hidden %d, attention %d, vocabulary %d, max_length %d; "
                 "%lld parameters (%.2f MB file); %.2f MFLOP/image (encoder + decoder preparation), "
                 "%.3f MFLOP/token/hypothesis",
                 info.image_size, info.image_size, info.grid_h, info.grid_w, info.feature_dim, info.embed_dim,
                 info.hidden_dim, info.attention_dim, info.vocab_size, info.max_length, (long long)info.n_params,
                 file_mb, info.encoder_flops / 1e6, info.decoder_flops / 1e6);
    }
    snprintf(mi.timing_desc, sizeof mi.timing_desc,
             "%s: one warm-up, then repetitions until at least %.3g s and %d repetitions; fast work is grouped into "
             "repetitions of at least %.3g ms; median and minimum over repetitions",
             o.quick ? "QUICK mode" : "full mode", o.min_time, o.min_reps, o.rep_target * 1e3);

    table tab = {0};
    int S = info.image_size, V = info.vocab_size;

    /* ---- model load */
    if (want(&o, "load")) {
        load_ctx lc = {model_file, ""};
        row *r = table_add(&tab, "model load", "1", "ms");
        if (measure(&o, r, work_load, &lc, 1, 1)) {
            skip(r, "failed: %s", lc.err), failures++;
        } else {
            r->rate = file_mb / r->median, snprintf(r->rate_unit, sizeof r->rate_unit, "MB/s");
            snprintf(r->note, sizeof r->note, "imcap_model_load + free, %.2f MB, file in the page cache", file_mb);
        }
    }

    /* ---- per-thread workspaces with the test image encoded */
    net_ctx nc;
    memset(&nc, 0, sizeof nc);
    nc.m = m;
    if (o.caption_image) {
        if (imcap_image_load(o.caption_image, &nc.img, &err) != IMCAP_OK) {
            fprintf(stderr, "imcap-bench: %s\n", err.msg);
            rm_tree(tmpdir);
            return 3;
        }
    } else {
        nc.img.width = o.img_w, nc.img.height = o.img_h;
        nc.img.rgb = malloc((size_t)o.img_w * o.img_h * 3);
        imcap_rng r;
        imcap_rng_seed(&r, 1);
        for (size_t i = 0; nc.img.rgb && i < (size_t)o.img_w * o.img_h * 3; i++)
            nc.img.rgb[i] = (unsigned char)(imcap_rng_next(&r) >> 56);
    }
    int ok = nc.img.rgb != NULL;
    for (int t = 0; ok && t < MAX_OUTER; t++) {
        ok = (nc.ws[t] = imcap_workspace_new(m)) != NULL;
        ok = ok && imcap_image_to_input(&nc.img, &m->cfg, nc.ws[t]->enc.act[0], &err) == IMCAP_OK;
        if (ok) imcap_workspace_encode(nc.ws[t]);
    }
    if (!ok) {
        fprintf(stderr, "imcap-bench: cannot prepare the workspaces: %s\n", err.msg);
        rm_tree(tmpdir);
        return 3;
    }
    if (o.caption_image)
        snprintf(mi.image_desc, sizeof mi.image_desc, "%s (%dx%d%s)", o.caption_image, nc.img.width, nc.img.height,
                 nc.img.width == S && nc.img.height == S ? ", no resize needed" : ", resized inside the caption calls");
    else
        snprintf(mi.image_desc, sizeof mi.image_desc,
                 "%dx%d random RGB (seed 1), resized to %dx%d inside the caption calls", o.img_w, o.img_h, S, S);

    /* ---- encoder */
    if (want(&o, "encoder")) {
        struct { const char *th; int outer, blas; } cf[] = {{"1", 1, 1}, {"2 omp", 2, 1}, {"2 blas", 1, 2}};
        for (size_t k = 0; k < (o.single ? 1 : sizeof cf / sizeof cf[0]); k++) {
            row *r = table_add(&tab, "encoder", cf[k].th, "ms/image");
            if (measure(&o, r, work_encoder, &nc, cf[k].outer, cf[k].blas)) { skip(r, "failed"), failures++; continue; }
            r->rate = 1 / r->median, snprintf(r->rate_unit, sizeof r->rate_unit, "images/s");
            r->gflops = info.encoder_flops / r->median / 1e9;
            snprintf(r->note, sizeof r->note, "imcap_encoder_forward + imcap_decoder_prepare_forward");
        }
        /* Several images per encoder call. Switched on by bench/meson.build
         * when src/model/encoder.h declares imcap_encoder_forward_n. */
        char bname[48];
        snprintf(bname, sizeof bname, "encoder batch %d", o.encoder_batch);
        for (int k = 0; k < (o.single ? 1 : 2); k++) {
            row *r = table_add(&tab, bname, k ? "2 omp" : "1", "ms/image");
            int n = o.encoder_batch;
            nc.n_images = n;
            size_t in = (size_t)3 * S * S;
            int eok = 1;
            for (int t = 0; t < MAX_OUTER; t++) eok = eok && imcap_encoder_acts_init(&nc.encn[t], &m->cfg, n, 0) == IMCAP_OK;
            for (int t = 0; eok && t < MAX_OUTER; t++)
                for (int i = 0; i < n; i++)
                    memcpy(nc.encn[t].act[0] + i * in, nc.ws[t]->enc.act[0], in * sizeof(float));
            if (!eok) {
                skip(r, "out of memory"), failures++;
            } else if (measure(&o, r, work_encoder_n, &nc, k + 1, 1)) {
                skip(r, "failed"), failures++;
            } else {
                r->median /= n, r->min /= n;
                r->rate = 1 / r->median, snprintf(r->rate_unit, sizeof r->rate_unit, "images/s");
                r->gflops = info.encoder_flops / r->median / 1e9;
                snprintf(r->note, sizeof r->note,
                         "imcap_encoder_forward_n over %d images + imcap_decoder_prepare_forward per image", n);
            }
            for (int t = 0; t < MAX_OUTER; t++) imcap_encoder_acts_free(&nc.encn[t]);
        }
    }

    /* ---- decoder step */
    if (want(&o, "decoder")) {
        int Hd = info.hidden_dim, L = m->cfg.L, D = m->cfg.D, A = m->cfg.attention_dim;
        static const int Ns[] = {1, 3, 32, 96};
        for (size_t ni = 0; ni < sizeof Ns / sizeof Ns[0]; ni++) {
            int N = Ns[ni];
            /* 1 and 3 rows: one image (greedy, beam 3); 32 and 96 rows: rows of
             * 32 images (greedy or beam 3 over 32 images at once) */
            int n_img = N >= 32 ? 32 : 1, per_img = N / n_img;
            nc.N = N, nc.rows = N >= 32;
            ok = 1;
            for (int t = 0; ok && t < MAX_OUTER; t++) {
                ok = imcap_step_cache_alloc_infer(&nc.sc[t], &m->cfg, V, N) == IMCAP_OK;
                if (ok && nc.rows) {
                    nc.img_a[t] = imcap_aligned_alloc((size_t)n_img * L * D * sizeof(float));
                    nc.img_p[t] = imcap_aligned_alloc((size_t)n_img * L * A * sizeof(float));
                    ok = nc.img_a[t] && nc.img_p[t];
                    for (int i = 0; ok && i < n_img; i++) {
                        memcpy(nc.img_a[t] + (size_t)i * L * D, nc.ws[t]->init.a, (size_t)L * D * sizeof(float));
                        memcpy(nc.img_p[t] + (size_t)i * L * A, nc.ws[t]->init.p, (size_t)L * A * sizeof(float));
                    }
                    for (int n = 0; ok && n < N; n++) {
                        nc.a_rows[t][n] = nc.img_a[t] + (size_t)(n / per_img) * L * D;
                        nc.p_rows[t][n] = nc.img_p[t] + (size_t)(n / per_img) * L * A;
                    }
                }
                nc.h[t] = imcap_aligned_alloc((size_t)N * Hd * sizeof(float));
                nc.c[t] = imcap_aligned_alloc((size_t)N * Hd * sizeof(float));
                ok = ok && nc.h[t] && nc.c[t];
                for (int n = 0; ok && n < N; n++) {
                    memcpy(nc.h[t] + (size_t)n * Hd, nc.ws[t]->init.h0, (size_t)Hd * sizeof(float));
                    memcpy(nc.c[t] + (size_t)n * Hd, nc.ws[t]->init.c0, (size_t)Hd * sizeof(float));
                    nc.tokens[t][n] = n == 0 ? IMCAP_TOK_START : V > 4 ? 4 + n % (V - 4) : IMCAP_TOK_UNK;
                }
            }
            char name[48];
            snprintf(name, sizeof name, "decoder step N=%d", N);
            struct { const char *th; int outer; } cf[] = {{"1", 1}, {"2 omp", 2}};
            for (size_t k = 0; k < (o.single ? 1 : sizeof cf / sizeof cf[0]); k++) {
                row *r = table_add(&tab, name, cf[k].th, "ms/step");
                if (!ok) { skip(r, "out of memory"), failures++; continue; }
                if (measure(&o, r, work_step, &nc, cf[k].outer, 1)) { skip(r, "failed"), failures++; continue; }
                r->rate = N / r->median, snprintf(r->rate_unit, sizeof r->rate_unit, "tokens/s");
                r->gflops = N * info.decoder_flops / r->median / 1e9;
                if (N == 1) snprintf(r->note, sizeof r->note, "imcap_decoder_step_infer, 1 row: ms/token of greedy");
                else if (!nc.rows)
                    snprintf(r->note, sizeof r->note, "imcap_decoder_step_infer, %d rows of one image (beam %d): "
                             "%.4g ms per row-token", N, N, r->median * 1e3 / N);
                else
                    snprintf(r->note, sizeof r->note, "imcap_decoder_step_infer_rows, %d rows of %d images (%s): "
                             "%.4g ms per row-token", N, n_img, per_img == 1 ? "greedy" : "beam 3",
                             r->median * 1e3 / N);
            }
            for (int t = 0; t < MAX_OUTER; t++) {
                imcap_step_cache_free(&nc.sc[t]);
                free(nc.h[t]), free(nc.c[t]), free(nc.img_a[t]), free(nc.img_p[t]);
                nc.h[t] = nc.c[t] = nc.img_a[t] = nc.img_p[t] = NULL;
            }
        }
    }

    /* ---- end-to-end captioning */
    if (want(&o, "caption")) {
        /* A fixed amount of work per image whatever the weights: with <end>
         * made impossible every hypothesis runs max_length steps. */
        float saved_end_bias = m->p.fc_b[IMCAP_TOK_END];
        if (!o.natural) m->p.fc_b[IMCAP_TOK_END] = -1e4f;
        snprintf(mi.length_desc, sizeof mi.length_desc, "%s",
                 o.natural ? "captions stop at <end> (--natural-length): tokens vary with the model"
                           : "<end> suppressed (its fc bias set to -1e4 in the bench's copy) so every caption runs "
                             "max_length steps; opt.max_length = the model's max_length");
        int beams[2] = {1, 3};
        for (int b = 0; b < 2; b++) {
            imcap_options_default(&nc.opt);
            nc.opt.beam = beams[b];
            nc.opt.max_length = info.max_length;
            char name[48];
            snprintf(name, sizeof name, beams[b] == 1 ? "caption greedy" : "caption beam %d", beams[b]);
            struct { const char *th; int outer; } cf[] = {{"1", 1}, {"2 omp", 2}};
            for (size_t k = 0; k < (o.single ? 1 : sizeof cf / sizeof cf[0]); k++) {
                row *r = table_add(&tab, name, cf[k].th, "ms/image");
                nc.ntok[0] = nc.ntok[1] = 0;
                if (measure(&o, r, work_caption, &nc, cf[k].outer, 1)) {
                    skip(r, "failed: %s", nc.err[0][0] ? nc.err[0] : nc.err[1]), failures++;
                    continue;
                }
                int T = nc.ntok[0];
                r->rate = 1 / r->median, snprintf(r->rate_unit, sizeof r->rate_unit, "images/s");
                if (!o.natural) {
                    double rows = beams[b] == 1 ? T : 1 + (double)beams[b] * (T - 1);
                    r->gflops = (info.encoder_flops + rows * info.decoder_flops) / r->median / 1e9;
                }
                snprintf(r->note, sizeof r->note, "imcap_caption_image, %d tokens: %.4g ms/token", T,
                         T ? r->median * 1e3 / T : 0.0);
            }
        }
        m->p.fc_b[IMCAP_TOK_END] = saved_end_bias;
    }
    for (int t = 0; t < MAX_OUTER; t++) imcap_workspace_free(nc.ws[t]);
    if (o.caption_image) imcap_image_free(&nc.img);
    else free(nc.img.rgb);

    /* ---- sgemm */
    if (want(&o, "sgemm")) {
        int sizes[2] = {256, 1024};
        for (int k = 0; k < 2; k++) {
            int n = sizes[k];
            gemm_ctx g = {n, imcap_aligned_alloc((size_t)n * n * sizeof(float)),
                          imcap_aligned_alloc((size_t)n * n * sizeof(float)),
                          imcap_aligned_alloc((size_t)n * n * sizeof(float))};
            if (g.a && g.b) {
                imcap_rng r;
                imcap_rng_seed(&r, 3);
                for (size_t i = 0; i < (size_t)n * n; i++)
                    g.a[i] = (float)imcap_rng_uniform(&r) - 0.5f, g.b[i] = (float)imcap_rng_uniform(&r) - 0.5f;
            }
            char name[48];
            snprintf(name, sizeof name, "sgemm n=%d", n);
            for (int blas = 1; blas <= (o.single ? 1 : 2); blas++) {
                row *r = table_add(&tab, name, blas == 1 ? "1" : "2 blas", "ms");
                if (!g.a || !g.b || !g.c) { skip(r, "out of memory"), failures++; continue; }
                if (measure(&o, r, work_sgemm, &g, 1, blas)) { skip(r, "failed"), failures++; continue; }
                r->gflops = 2.0 * n * n * n / r->median / 1e9;
                snprintf(r->note, sizeof r->note, "cblas_sgemm %dx%dx%d, row-major, no transposes", n, n, n);
            }
            free(g.a), free(g.b), free(g.c);
        }
    }

    /* ---- the machine's limits: BLAS at the decoder's shapes, read bandwidth */
    if (want(&o, "limits")) {
        openblas_set_num_threads(1);
        int M = 4 * info.hidden_dim, K = info.embed_dim + info.feature_dim + info.hidden_dim;
        struct { int rows, M, K; const char *what; } gs[] = {
            {1, M, K, "the LSTM gates of one decoder row: [w_ih w_hh] times [x; h]"},
            {32, M, K, "the LSTM gates of 32 rows"},
            {1024, 1024, 1024, "a big product, the BLAS's peak"}};
        for (size_t k = 0; k < sizeof gs / sizeof gs[0]; k++) {
            char name[48];
            if (gs[k].rows == 1) snprintf(name, sizeof name, "sgemv %dx%d", gs[k].M, gs[k].K);
            else snprintf(name, sizeof name, "sgemm %dx%dx%d", gs[k].rows, gs[k].M, gs[k].K);
            row *r = table_add(&tab, name, "1", "ms");
            gemv_ctx g = {gs[k].rows, gs[k].M, gs[k].K, imcap_aligned_alloc((size_t)gs[k].M * gs[k].K * sizeof(float)),
                          imcap_aligned_alloc((size_t)gs[k].rows * gs[k].K * sizeof(float)),
                          imcap_aligned_alloc((size_t)gs[k].rows * gs[k].M * sizeof(float))};
            if (!g.w || !g.x || !g.y) {
                skip(r, "out of memory"), failures++;
            } else {
                imcap_rng rr;
                imcap_rng_seed(&rr, 3);
                for (size_t i = 0; i < (size_t)gs[k].M * gs[k].K; i++) g.w[i] = (float)imcap_rng_uniform(&rr) - 0.5f;
                for (size_t i = 0; i < (size_t)gs[k].rows * gs[k].K; i++) g.x[i] = (float)imcap_rng_uniform(&rr) - 0.5f;
                if (measure(&o, r, work_sgemv, &g, 1, 1)) {
                    skip(r, "failed"), failures++;
                } else {
                    r->gflops = 2.0 * gs[k].rows * gs[k].M * gs[k].K / r->median / 1e9;
                    snprintf(r->note, sizeof r->note, "cblas_%s, 1 thread: %s", gs[k].rows == 1 ? "sgemv" : "sgemm",
                             gs[k].what);
                }
            }
            free(g.w), free(g.x), free(g.y);
        }
        stream_pick();
        double wbytes = decoder_step_weight_bytes(m, V);
        double bw[2] = {0, 0};
        size_t sizes[2] = {((size_t)wbytes + 31) / 32 * 32, STREAM_BIG};
        for (int k = 0; k < 2; k++) {
            char name[48];
            if (k == 0) snprintf(name, sizeof name, "read %.2f MB", sizes[k] / 1e6);
            else snprintf(name, sizeof name, "read %u MiB", (unsigned)(sizes[k] >> 20));
            row *r = table_add(&tab, name, "1", "ms");
            float *buf = imcap_aligned_alloc(sizes[k]);
            if (!buf) { skip(r, "out of memory"), failures++; continue; }
            for (size_t i = 0; i < sizes[k] / sizeof(float); i++) buf[i] = (float)(i & 7);
            stream_ctx sc = {buf, sizes[k] / sizeof(float), 0};
            if (measure(&o, r, work_stream, &sc, 1, 1)) {
                skip(r, "failed"), failures++;
            } else {
                bw[k] = sizes[k] / r->median / 1e9;
                r->rate = bw[k], snprintf(r->rate_unit, sizeof r->rate_unit, "GB/s");
                snprintf(r->note, sizeof r->note, "%s",
                         k == 0 ? "streaming sum over a buffer the size of the decoder step's weights (fits L2)"
                                : "streaming sum over 256 MiB: memory bandwidth (unless the last-level cache holds part of it)");
            }
            free(buf);
        }
        for (int k = 0; k < 2; k++) {
            row *r = table_add(&tab, k == 0 ? "decoder step limit (cache)" : "decoder step limit (memory)", "1", "ms/step");
            if (bw[k] <= 0) { skip(r, "no bandwidth measured"); continue; }
            r->ok = 1, r->reps = 0, r->inner = 0;
            r->median = r->min = wbytes / (bw[k] * 1e9);
            snprintf(r->note, sizeof r->note,
                     "derived: %.3f MB of decoder step weights (one row) / %.3g GB/s: the least a 1-row step can take "
                     "when it reads every weight once",
                     wbytes / 1e6, bw[k]);
        }
    }

    /* ---- training */
    if (want(&o, "train")) {
        for (int T = 1; T <= (o.single ? 1 : 2); T++) {
            row *r = table_add(&tab, "train step", T == 1 ? "1" : "2 omp", "ms/batch");
            train_ctx tc;
            if (train_ctx_init(&tc, m, T, &err)) { skip(r, "%s", err.msg), failures++; continue; }
            openblas_set_num_threads(1); /* the limit rows' library: kept to one thread next to OpenMP */
            if (measure(&o, r, work_train, &tc, 1, 1)) {
                skip(r, "failed (a non-finite loss or a wrong token count)"), failures++;
            } else {
                r->rate = TRAIN_BATCH / r->median, snprintf(r->rate_unit, sizeof r->rate_unit, "examples/s");
                snprintf(r->note, sizeof r->note,
                         "batch %d of length %d: imcap_worker_run fwd+bwd split as the trainer does, gradient sum, Adam",
                         TRAIN_BATCH, tc.ex[0].length);
            }
            train_ctx_free(&tc);
        }
    }

    /* ---- imcap batch */
    if (want(&o, "batch")) {
        char *imcap = NULL;
        if (o.imcap_path) {
            imcap = strdup(o.imcap_path);
        } else {
            char self[4096];
            ssize_t l = readlink("/proc/self/exe", self, sizeof self - 1);
            if (l > 0) {
                self[l] = 0;
                char *slash = strrchr(self, '/');
                if (slash) *slash = 0;
                char *rel = imcap_path_join(self, "../imcap", NULL);
                imcap = rel ? realpath(rel, NULL) : NULL;
                if (!imcap) imcap = rel;
                else free(rel);
            }
        }
        char *errf = imcap_path_join(tmpdir, "stderr.txt", NULL);
        char *help_argv[] = {imcap, "batch", "--help", NULL};
        int have = imcap && access(imcap, X_OK) == 0 && spawn_wait(help_argv, errf) == 0;
        char note[512];
        snprintf(note, sizeof note, "%s batch --help did not exit 0: no `imcap batch` yet",
                 imcap ? imcap : "imcap");
        char *synth_dir = imcap_path_join(tmpdir, "synth", NULL);
        char *img_dir = synth_dir ? imcap_path_join(synth_dir, "images", NULL) : NULL;
        char *out = imcap_path_join(tmpdir, "batch.out", NULL);
        if (have) {
            char count[16];
            snprintf(count, sizeof count, "%d", o.batch_count);
            char *synth_argv[] = {imcap, "synth", "--count", count, "--size", "64", "--seed", "1",
                                  "-o", synth_dir, NULL};
            fprintf(stderr, "  generating %d images with imcap synth ...\n", o.batch_count);
            int rc = spawn_wait(synth_argv, errf);
            if (rc) {
                char tail[512];
                last_line(errf, tail, sizeof tail);
                snprintf(note, sizeof note, "imcap synth exited with %d: %s", rc, tail);
                have = 0;
                failures++;
            }
        }
        for (int T = 1; T <= (o.single ? 1 : 2); T++) {
            row *r = table_add(&tab, "imcap batch", T == 1 ? "1" : "2", "ms/image");
            if (!have) { skip(r, "%s", note); continue; }
            char th[8];
            snprintf(th, sizeof th, "%d", T);
            char *bargv[] = {imcap, "batch", "--model", model_file, "--threads", th, "-o", out, img_dir, NULL};
            spawn_ctx sc = {bargv, errf, out, ""};
            /* each run is a whole process: no inner grouping needed */
            if (measure(&o, r, work_spawn, &sc, 1, 1)) { skip(r, "failed: %s", sc.err), failures++; continue; }
            r->median /= o.batch_count, r->min /= o.batch_count;
            r->rate = 1 / r->median, snprintf(r->rate_unit, sizeof r->rate_unit, "images/s");
            snprintf(r->note, sizeof r->note,
                     "`imcap batch --threads %d` over %d PNGs (%dx%d, imcap synth): whole process, model load and "
                     "PNG decoding included; its default beam, natural length",
                     T, o.batch_count, 64, 64);
        }
        free(imcap), free(errf), free(synth_dir), free(img_dir), free(out);
    }

    loadavg(mi.load_end, sizeof mi.load_end);

    /* ---- report */
    printf("## imcap-bench %s\n\n", IMCAP_VERSION);
    printf("- Date: %s\n", mi.date);
    printf("- CPU: %s; %d cores online (OpenMP sees %d)%s%s\n", mi.cpu, mi.cores, mi.omp_procs,
           mi.omp_note[0] ? "; " : "", mi.omp_note);
    printf("- OpenBLAS: %s\n", mi.blas);
    printf("- Compiler: %s\n", mi.compiler);
    printf("- Load average (1, 5, 15 min): %s at the start, %s at the end\n", mi.load_start, mi.load_end);
    printf("- Model: %s\n", mi.model_desc);
    printf("- Test image: %s\n", mi.image_desc);
    if (mi.length_desc[0]) printf("- Caption length: %s\n", mi.length_desc);
    printf("- Timing: %s\n\n", mi.timing_desc);
    print_table(stdout, &tab);
    printf("\nThreads: `1` = one thread, OpenBLAS pinned to 1 thread; `2 omp` = two OpenMP threads each working on "
           "its own image (or decoder, or half the training batch), OpenBLAS pinned to 1 thread inside, times are "
           "wall time / total work (the inverse of the throughput); `2 blas` = one image, OpenBLAS allowed 2 "
           "threads; for `imcap batch`, its --threads value.\n");
    fflush(stdout);

    if (o.json_path) {
        imcap_buf b = {0};
        imcap_buf_printf(&b, "{\n  \"version\": ");
        imcap_buf_json_string(&b, IMCAP_VERSION);
        const char *keys[] = {"date", "cpu", "openblas", "compiler", "load_start", "load_end", "model", "image",
                              "caption_length", "timing"};
        const char *vals[] = {mi.date, mi.cpu, mi.blas, mi.compiler, mi.load_start, mi.load_end, mi.model_desc,
                              mi.image_desc, mi.length_desc, mi.timing_desc};
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
            imcap_buf_printf(&b, ",\n  \"%s\": ", keys[k]);
            imcap_buf_json_string(&b, vals[k]);
        }
        imcap_buf_printf(&b, ",\n  \"cores\": %d,\n  \"quick\": %s,\n  \"random_model\": %s,\n  \"model_info\": {",
                         mi.cores, o.quick ? "true" : "false", model_path ? "false" : "true");
        imcap_buf_printf(&b,
                         "\"image_size\": %d, \"grid\": [%d, %d], \"feature_dim\": %d, \"vocab_size\": %d, "
                         "\"max_length\": %d, \"n_params\": %lld, \"encoder_flops\": %.6g, \"decoder_flops\": %.6g},\n",
                         info.image_size, info.grid_h, info.grid_w, info.feature_dim, info.vocab_size, info.max_length,
                         (long long)info.n_params, info.encoder_flops, info.decoder_flops);
        imcap_buf_printf(&b, "  \"results\": [\n");
        for (int i = 0; i < tab.n; i++) json_row(&b, &tab.r[i], i == tab.n - 1);
        imcap_buf_printf(&b, "  ]\n}\n");
        if (imcap_write_file_atomic(o.json_path, b.s, b.len, &err) != IMCAP_OK) {
            fprintf(stderr, "imcap-bench: %s\n", err.msg);
            failures++;
        }
        imcap_buf_free(&b);
    }

    free(tab.r);
    imcap_model_free(m);
    free(model_file);
    rm_tree(tmpdir);
    free(tmpdir);
    return failures ? 1 : 0;
}
