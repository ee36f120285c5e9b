/* cmd_batch.c — `imcap batch`: caption folders of images into one record
 * per image, in sorted path order, resumable and shardable.
 *
 * Output with -o OUT: records are appended to OUT.partial and flushed one
 * by one; when every input has a record, OUT.partial becomes OUT (renamed
 * as it is when it holds this run's records only, in order; rewritten in
 * path order when --resume brought records of an earlier run). So OUT only
 * ever appears complete, and a run stopped in any way leaves complete
 * records in OUT.partial (at most the record being written when the
 * process was killed is cut short; --resume drops that tail).
 *
 * Parallelism: each OpenMP thread decodes a block of up to --block images
 * together (an imcap_batcher: every live hypothesis of the block is one row
 * of one product per decoder step; finished images leave, new ones join),
 * taking images in sorted order, at most a window (4 x threads x block)
 * ahead of the first record not yet written. A reorder buffer writes each record as soon as all
 * earlier ones are written. Captions are the same for any --block and
 * --threads. Memory holds the sorted path list, the threads' blocks and one
 * window of records, whatever the number of images. */
#include <errno.h>
#include <fcntl.h>
#include <omp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "args.h"
#include "cli.h"
#include "cli/batch_walk.h"
#include "render/gallery.h"
#include "render/render.h"
#include "util/util.h"

#define PLAIN_PROGRESS_SECONDS 10.0
#define DEFAULT_BLOCK 32

static void usage(FILE *f) {
    fprintf(f,
            "usage: imcap batch [-o OUT] [--format jsonl|csv|tsv] [-r] [-j N] [--resume]\n"
            "                   [--shard I/N] [--overlays DIR] [--html DIR] [-m M] [--beam K]\n"
            "                   [--max-length T] [--block B] [--no-timing] [-q] [--files-from F]\n"
            "                   DIR|FILE...   (options may come anywhere; -- ends them)\n\n"
            "Captions every image under the DIRs (by content: JPEG, PNG, GIF, BMP, PSD, PNM;\n"
            "and files with an image extension, .tga included) and every FILE, in sorted\n"
            "path order (bytes), one record per image.\n\n"
            "  -o, --output OUT   output file (default or -: stdout). Written as OUT.partial, record\n"
            "                     by record, and renamed to OUT when every image has its record\n"
            "  --format F         jsonl (default; csv/tsv when OUT ends in .csv/.tsv), csv, tsv\n"
            "  -r, --recursive    walk subfolders too (each folder once: symlink loops are safe)\n"
            "  -j, --threads N    worker threads (default: all cores)\n"
            "  --files-from F     also the folders / images listed in F, one per line (-: stdin)\n"
            "  --block B          images decoded together by each thread (default 32): their\n"
            "                     hypotheses share every decoder step; the captions do not\n"
            "                     depend on B, the speed and the memory do\n"
            "  --resume           continue an interrupted run: keep the records in OUT and\n"
            "                     OUT.partial, caption only the images without one (and retry\n"
            "                     the failed ones), then write OUT in sorted order\n"
            "  --shard I/N        only the inputs with fnv1a64(path) %% N == I-1 (1 <= I <= N);\n"
            "                     join the N outputs with `imcap merge`\n"
            "  --overlays DIR     per image: one attention overlay PNG per word and a contact sheet\n"
            "  --html DIR         DIR/index.html, an offline gallery (thumbnails, captions), each\n"
            "                     image linked to its attention viewer DIR/<stem>.html\n"
            "  -m, --model M      model file (default: $IMCAP_MODEL, else the shipped model)\n"
            "  --beam K           beam width, 1 = greedy (default 3)\n"
            "  --max-length T     stop after T tokens (default: the model's max_length)\n"
            "  --no-timing        leave out the ms field, so two runs give identical bytes\n"
            "  -q, --quiet        no progress or summary on stderr (errors still appear)\n\n"
            "Records: path, caption, score (sum of log-probs), width, height (of the image),\n"
            "ms (from taking the image to its record: decoding, captioning in a block with\n"
            "others, rendering) and error (for a failed image);\n"
            "jsonl also has words and logprobs (every emitted token, the final <end> included).\n"
            "csv: RFC 4180 quoting; tsv: \\\\, \\t, \\n, \\r escaped; both with a header line.\n"
            "Rendered files are named <stem>-<12 hex digits of the path's hash>.\n\n"
            "Ctrl-C (SIGINT) or SIGTERM: stop taking images, write every finished record,\n"
            "exit 130 (143 for SIGTERM); rerun with --resume to finish.\n"
            "Exit: 0 all captioned, 1 some images failed, 2 usage error, 3 fatal (model not\n"
            "loadable, output not writable), 130/143 interrupted.\n");
}

/* ------------------------------------------------------------ signals */

static volatile sig_atomic_t g_stop; /* the signal that asked to stop */
static volatile sig_atomic_t g_halt; /* take no more images: a signal or a fatal error */

static void on_signal(int sig) { g_stop = sig, g_halt = 1; }

static void install_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    /* A second Ctrl-C kills at once: the records written so far stay. */
    sa.sa_flags = SA_RESETHAND;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* ------------------------------------------------------------ state */

typedef struct {
    /* options */
    const char *out_path; /* NULL: stdout */
    bw_format fmt;
    int timing, quiet, resume;
    int domain;           /* csv/tsv: the domain columns (a resumed file keeps its own layout) */
    int layout_fixed;     /* domain taken from an earlier output */
    const char *overlays, *html;
    const imcap_model *m;
    imcap_options opt;
    int block;            /* images decoded together per thread */
    imcap_render_options ro;

    /* inputs */
    bw_list items;
    size_t *todo; /* indices into items of the images to caption now */
    size_t n_todo;

    /* output */
    FILE *out;
    char *partial;
    int partial_fd;
    long long out_off; /* resume: where the next record lands in OUT.partial */
    /* resume: where each input's record is (src 0 none, 1 OUT, 2 OUT.partial) */
    long long *rec_off;
    uint32_t *rec_len;
    unsigned char *rec_src;
    unsigned char *rec_failed;
    int rewrite; /* OUT is rewritten from the index at the end */
    imcap_gallery *gallery; /* fed as records are written (when !rewrite) */

    /* progress */
    size_t written, failed;
    double t0, last_report;
    int tty;
    long stop_after;
    int fatal;
    char fatal_msg[1200];
    int created_partial; /* a fresh OUT.partial of this run, removed if it ends up with no record */
} batch;

typedef struct {
    int done;       /* 0 waiting, 1 record ready, 2 record of a failed image */
    double t0;      /* when the image was taken */
    imcap_buf rec;
    char why[1400]; /* a failed image: the message, for stderr too */
} slot;

/* ------------------------------------------------------------ progress */

static void fmt_duration(double s, char *out, size_t n) {
    if (!(s >= 0) || s > 1e8) snprintf(out, n, "?");
    else if (s < 60) snprintf(out, n, "%.0fs", s);
    else if (s < 3600) snprintf(out, n, "%dm%02ds", (int)(s / 60), (int)s % 60);
    else snprintf(out, n, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
}

static void progress(batch *b, int final) {
    if (b->quiet) return;
    double now = imcap_now(), el = now - b->t0;
    if (!final && now - b->last_report < (b->tty ? 0.25 : PLAIN_PROGRESS_SECONDS)) return;
    b->last_report = now;
    if (final) {
        if (b->tty) fprintf(stderr, "\r\033[K");
        return;
    }
    double rate = el > 0 ? b->written / el : 0;
    char eta[32];
    fmt_duration(rate > 0 ? (b->n_todo - b->written) / rate : -1, eta, sizeof eta);
    fprintf(stderr, "%simcap batch: %zu/%zu images (%.0f%%), %.1f images/s, ETA %s%s", b->tty ? "\r\033[K" : "",
            b->written, b->n_todo, b->n_todo ? 100.0 * b->written / b->n_todo : 100.0, rate, eta, b->tty ? "" : "\n");
    fflush(stderr);
}

/* ------------------------------------------------------------ one image */

/* The record of one image: res is its result, or msg says why it has none.
 * Rendering (overlays, viewer, thumbnail) decodes the image again, so that
 * no decoded image is held while it waits in the decoding block. */
static void make_record(const batch *b, const bw_item *it, const imcap_result *res, const char *fail, double t0,
                        imcap_buf *rec, int *failed, char why[1400]) {
    bw_record r = {.path = it->path, .in_domain = -1};
    imcap_error err;
    imcap_image img = {0};
    char msg[1400];
    if (fail) {
        r.error = fail;
    } else {
        r.width = res->image_width, r.height = res->image_height;
        const imcap_hypothesis *h = &res->hyps[0];
        r.caption = h->text ? h->text : "";
        r.has_score = 1, r.score = h->score;
        r.in_domain = res->in_domain, r.domain_score = res->domain_score;
        r.n_words = h->n_tokens, r.words = h->words, r.logprobs = h->logprobs;
        if (b->overlays || b->html) {
            char stem[BW_STEM_MAX];
            bw_stem(it->path, stem);
            imcap_status s = imcap_image_load(it->path, &img, &err);
            int same = b->overlays && b->html && !strcmp(b->overlays, b->html);
            if (!s && b->overlays)
                s = imcap_render_write(&img, res, b->overlays, stem, it->path, &b->ro,
                                       IMCAP_RENDER_OVERLAYS | IMCAP_RENDER_SHEET | (same ? IMCAP_RENDER_HTML : 0),
                                       &err);
            if (!s && b->html && !same) s = imcap_render_write(&img, res, b->html, stem, it->path, &b->ro,
                                                               IMCAP_RENDER_HTML, &err);
            if (!s && b->html) s = imcap_gallery_thumb(&img, b->html, stem, IMCAP_GALLERY_THUMB_SIDE, &err);
            if (s) {
                snprintf(msg, sizeof msg, "%s: %s", it->path, err.msg);
                if (strncmp(err.msg, it->path, strlen(it->path)) == 0) snprintf(msg, sizeof msg, "%s", err.msg);
                r.error = msg;
            }
        }
    }
    r.has_ms = 1;
    r.ms = (imcap_now() - t0) * 1000.0;
    rec->len = 0;
    bw_write_record(rec, b->fmt, b->timing, b->domain, &r);
    *failed = r.error != NULL;
    if (r.error) snprintf(why, 1400, "%s", r.error);
    imcap_image_free(&img);
}

/* ------------------------------------------------------------ output */

static void set_fatal(batch *b, const char *fmt, ...) IMCAP_PRINTF(2, 3);
static void set_fatal(batch *b, const char *fmt, ...) {
    if (b->fatal) return;
    b->fatal = 1;
    g_halt = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->fatal_msg, sizeof b->fatal_msg, fmt, ap);
    va_end(ap);
}

static void gallery_record(batch *b, const char *rec, size_t len) {
    if (!b->gallery) return;
    bw_parsed p;
    char why[256];
    imcap_error err;
    if (bw_parse_record(b->fmt, b->timing, b->domain, rec, len, &p, why, sizeof why) == 0) {
        if (bw_gallery_add(b->gallery, b->html, &p, &err) != IMCAP_OK) set_fatal(b, "imcap batch: %s", err.msg);
    }
    bw_parsed_free(&p);
}

/* Writes the record of items[i] (called in sorted order). */
static void emit(batch *b, size_t i, const imcap_buf *rec, int failed) {
    if (b->fatal) return;
    if (rec->oom) {
        set_fatal(b, "imcap batch: out of memory for the record of %s", b->items.v[i].path);
        return;
    }
    if (fwrite(rec->s, 1, rec->len, b->out) != rec->len || fflush(b->out) != 0) {
        set_fatal(b, "imcap batch: %s: write failed: %s", b->partial ? b->partial : "stdout", strerror(errno));
        return;
    }
    if (b->rec_src) {
        b->rec_src[i] = 2;
        b->rec_off[i] = b->out_off;
        b->rec_len[i] = (uint32_t)rec->len;
        b->rec_failed[i] = (unsigned char)failed;
        b->out_off += (long long)rec->len;
    }
    b->written++;
    b->failed += failed != 0;
    if (!b->rewrite) gallery_record(b, rec->s, rec->len);
    if (b->stop_after > 0 && (long)b->written == b->stop_after) raise(SIGINT);
    progress(b, 0);
}

/* ------------------------------------------------------------ the run */

/* imcap_caption_many's callbacks: images are taken in sorted order, their
 * records made in the worker threads (rendering included) and written in
 * order, one at a time. */
typedef struct {
    batch *b;
    slot *slots;
    size_t window;
} run_ctx;

static imcap_status run_load(void *vctx, size_t k, imcap_image *img, imcap_error *err) {
    run_ctx *c = vctx;
    c->slots[k % c->window].t0 = imcap_now();
    const bw_item *it = &c->b->items.v[c->b->todo[k]];
    if (it->error) {
        snprintf(err->msg, sizeof err->msg, "%s", it->error);
        return err->status = IMCAP_E_IMAGE;
    }
    return imcap_image_load(it->path, img, err);
}

static void run_done(void *vctx, size_t k, imcap_result *res, imcap_status st, const imcap_error *err) {
    run_ctx *c = vctx;
    slot *sl = &c->slots[k % c->window];
    const bw_item *it = &c->b->items.v[c->b->todo[k]];
    char msg[1400];
    const char *fail = NULL;
    if (st) {
        /* image errors name the file already; others get the path in front */
        if (it->error || !strncmp(err->msg, it->path, strlen(it->path))) fail = err->msg;
        else snprintf(msg, sizeof msg, "%s: %s", it->path, err->msg), fail = msg;
    }
    int failed;
    make_record(c->b, it, res, fail, sl->t0, &sl->rec, &failed, sl->why);
    sl->done = failed ? 2 : 1;
    imcap_result_free(res);
}

static void run_emit(void *vctx, size_t k) {
    run_ctx *c = vctx;
    slot *sl = &c->slots[k % c->window];
    /* a failed image is a record and, like every error, a line on stderr
     * (-q silences progress and the summary, not errors) */
    if (sl->done == 2) fprintf(stderr, "imcap batch: %s\n", sl->why);
    emit(c->b, c->b->todo[k], &sl->rec, sl->done == 2);
    sl->done = 0;
}

static void run_parallel(batch *b) {
    int nthreads = omp_get_max_threads();
    run_ctx c = {b, NULL, imcap_caption_many_window(nthreads, b->block)};
    if (!(c.slots = calloc(c.window, sizeof *c.slots))) {
        set_fatal(b, "imcap batch: out of memory");
        return;
    }
    imcap_many_io io = {run_load, run_done, run_emit, &c, &g_halt, NULL};
    imcap_error err;
    if (imcap_caption_many(b->m, b->n_todo, &b->opt, b->block, nthreads, &io, NULL, &err) != IMCAP_OK)
        set_fatal(b, "imcap batch: %s", err.msg);
    for (size_t s = 0; s < c.window; s++) imcap_buf_free(&c.slots[s].rec);
    free(c.slots);
}

/* Reads the records of an earlier run from path (src 1 = OUT, 2 =
 * OUT.partial) into the index. Returns 0, or -1 after printing why. For the
 * partial file, *complete_end is where its complete records end. */
static int load_previous(batch *b, const char *path, int src, long long *complete_end, size_t *n_records,
                         size_t *n_dropped) {
    bw_reader r;
    if (bw_reader_open(&r, path) != 0) {
        fprintf(stderr, "imcap batch: %s\n", r.msg);
        bw_reader_close(&r);
        return -1;
    }
    if (r.known && (r.fmt != b->fmt || (r.fmt != BW_JSONL && r.timing != b->timing))) {
        fprintf(stderr, "imcap batch: %s holds %s records%s, but this run writes %s%s: use the same --format and "
                        "--no-timing as the first run\n",
                path, bw_format_name(r.fmt), r.fmt != BW_JSONL && !r.timing ? " without ms" : "", bw_format_name(b->fmt),
                b->fmt != BW_JSONL && !b->timing ? " without ms" : "");
        bw_reader_close(&r);
        return -1;
    }
    if (r.known && r.fmt != BW_JSONL) {
        if (!b->layout_fixed) {
            b->domain = r.domain, b->layout_fixed = 1;
        } else if (r.domain != b->domain) {
            fprintf(stderr, "imcap batch: %s %s the domain_score and in_domain columns and the other output does%s\n",
                    path, r.domain ? "has" : "lacks", r.domain ? " not" : "");
            bw_reader_close(&r);
            return -1;
        }
    }
    int rc, first = 1;
    bw_parsed p;
    while ((rc = bw_reader_next(&r, &p)) == 1) {
        if (first && r.fmt == BW_JSONL && p.has_ms != b->timing) {
            fprintf(stderr, "imcap batch: %s was written %s --no-timing; pass the same options to --resume it\n",
                    path, p.has_ms ? "without" : "with");
            bw_parsed_free(&p);
            bw_reader_close(&r);
            return -1;
        }
        first = 0;
        size_t i = bw_find(&b->items, p.path);
        if (i == (size_t)-1) {
            (*n_dropped)++;
        } else {
            b->rec_src[i] = (unsigned char)src;
            b->rec_off[i] = r.off;
            b->rec_len[i] = (uint32_t)r.rec.len;
            b->rec_failed[i] = p.error != NULL;
            (*n_records)++;
        }
        bw_parsed_free(&p);
    }
    if (rc < 0) {
        fprintf(stderr, "imcap batch: %s\n", r.msg);
        bw_reader_close(&r);
        return -1;
    }
    if (rc == 2 && src == 1) {
        fprintf(stderr, "imcap batch: %s: the last record is incomplete; not an output of imcap batch?\n", path);
        bw_reader_close(&r);
        return -1;
    }
    if (complete_end) *complete_end = r.end;
    bw_reader_close(&r);
    return 0;
}

/* Writes OUT from the index: every input's record, in sorted order. */
static int rewrite_output(batch *b, size_t *n_failed) {
    FILE *src[3] = {NULL, NULL, NULL};
    imcap_atomic_file af;
    imcap_error err;
    imcap_buf rec = {0};
    int rc = -1;
    *n_failed = 0;
    if (imcap_atomic_open(&af, b->out_path, &err) != IMCAP_OK) {
        fprintf(stderr, "imcap batch: %s\n", err.msg);
        return -1;
    }
    src[1] = fopen(b->out_path, "rb");
    src[2] = fopen(b->partial, "rb");
    imcap_buf_printf(&rec, "%s", "");
    rec.len = 0;
    bw_write_header(&rec, b->fmt, b->timing, b->domain);
    if (rec.oom || fwrite(rec.s, 1, rec.len, af.f) != rec.len) {
        fprintf(stderr, "imcap batch: %s: cannot write the header\n", b->out_path);
        goto done;
    }
    for (size_t i = 0; i < b->items.n; i++) {
        int s = b->rec_src[i];
        if (!s) {
            fprintf(stderr, "imcap batch: internal error: %s has no record\n", b->items.v[i].path);
            goto done;
        }
        FILE *f = src[s];
        rec.len = 0;
        imcap_buf_printf(&rec, "%*s", (int)b->rec_len[i], "");
        if (rec.oom) {
            fprintf(stderr, "imcap batch: out of memory reading back the record of %s\n", b->items.v[i].path);
            goto done;
        }
        if (!f || fseeko(f, b->rec_off[i], SEEK_SET) != 0 || fread(rec.s, 1, b->rec_len[i], f) != b->rec_len[i]) {
            fprintf(stderr, "imcap batch: %s: cannot read back a record: %s\n", s == 1 ? b->out_path : b->partial,
                    strerror(errno));
            goto done;
        }
        if (fwrite(rec.s, 1, rec.len, af.f) != rec.len) {
            fprintf(stderr, "imcap batch: %s: write failed: %s\n", af.tmp, strerror(errno));
            goto done;
        }
        *n_failed += b->rec_failed[i];
        gallery_record(b, rec.s, rec.len);
        if (b->fatal) {
            fprintf(stderr, "%s\n", b->fatal_msg);
            goto done;
        }
    }
    if (imcap_atomic_commit(&af, &err) != IMCAP_OK) {
        fprintf(stderr, "imcap batch: %s\n", err.msg);
        goto done;
    }
    rc = 0;
done:
    if (rc) imcap_atomic_abort(&af);
    for (int s = 1; s < 3; s++)
        if (src[s]) fclose(src[s]);
    imcap_buf_free(&rec);
    return rc;
}

static void batch_free(batch *b) {
    bw_list_free(&b->items);
    free(b->todo);
    free(b->partial);
    free(b->rec_off);
    free(b->rec_len);
    free(b->rec_src);
    free(b->rec_failed);
    imcap_gallery_abort(b->gallery);
    b->gallery = NULL;
}

static void print_walk(const batch *b, const bw_walk *w, size_t n_prior) {
    if (b->quiet) return;
    imcap_buf s = {0};
    imcap_buf_printf(&s, "imcap batch: %zu input%s", b->items.n, b->items.n == 1 ? "" : "s");
    if (n_prior) imcap_buf_printf(&s, ", %zu with a record from an earlier run", n_prior);
    imcap_buf_printf(&s, ", %zu to caption", b->n_todo);
    if (w->n_skipped_files) imcap_buf_printf(&s, "; skipped %zu non-image file%s", w->n_skipped_files,
                                             w->n_skipped_files == 1 ? "" : "s");
    if (w->n_skipped_subdirs)
        imcap_buf_printf(&s, "; skipped %zu subfolder%s (add --recursive)", w->n_skipped_subdirs,
                         w->n_skipped_subdirs == 1 ? "" : "s");
    if (w->n_repeated_dirs)
        imcap_buf_printf(&s, "; %zu folder%s reached again through a link (symlink loop?) walked only once",
                         w->n_repeated_dirs, w->n_repeated_dirs == 1 ? "" : "s");
    if (w->n_output_dirs) imcap_buf_printf(&s, "; not walking into the output folder");
    fprintf(stderr, "%s\n", s.s);
    imcap_buf_free(&s);
}

static int batch_main(batch *B, char **inputs, int n_inputs, const char *model_path, int threads, int recursive,
                      int shard_i, int shard_n) {
    int rc = EXIT_FATAL;
    struct stat st;
    bw_fileid forbid[2], skip[2];
    size_t n_forbid = 0, n_skip = 0;
    bw_walk w;
    memset(&w, 0, sizeof w);
    imcap_error err;
    size_t n_prior = 0, n_dropped = 0;

    if (B->out_path) {
        if (stat(B->out_path, &st) == 0) {
            if (S_ISDIR(st.st_mode)) {
                fprintf(stderr, "imcap batch: -o %s is a folder; give a file name\n", B->out_path);
                rc = EXIT_USAGE;
                goto out;
            }
            forbid[n_forbid].dev = st.st_dev, forbid[n_forbid++].ino = st.st_ino;
        }
        size_t n = strlen(B->out_path) + 16;
        if (!(B->partial = malloc(n))) goto oom;
        snprintf(B->partial, n, "%s.partial", B->out_path);
        if (stat(B->partial, &st) == 0) forbid[n_forbid].dev = st.st_dev, forbid[n_forbid++].ino = st.st_ino;
    }
    const char *dirs[2] = {B->overlays, B->html};
    for (int d = 0; d < 2; d++) {
        if (!dirs[d] || stat(dirs[d], &st) != 0) continue;
        if (!S_ISDIR(st.st_mode)) {
            fprintf(stderr, "imcap batch: %s %s is not a folder\n", d ? "--html" : "--overlays", dirs[d]);
            rc = EXIT_USAGE;
            goto out;
        }
        skip[n_skip].dev = st.st_dev, skip[n_skip++].ino = st.st_ino;
    }
    /* Rendered files never go among the inputs: an output folder is not
     * walked, so it cannot also be an input folder. */
    for (int a = 0; a < n_inputs; a++) {
        if (stat(inputs[a], &st) != 0 || !S_ISDIR(st.st_mode)) continue;
        for (size_t k = 0; k < n_skip; k++)
            if (skip[k].dev == st.st_dev && skip[k].ino == st.st_ino) {
                fprintf(stderr, "imcap batch: refusing to write rendered files into the input folder %s; "
                                "choose another --overlays/--html folder\n", inputs[a]);
                rc = EXIT_USAGE;
                goto out;
            }
    }

    w.recursive = recursive;
    w.skip_dirs = skip, w.n_skip_dirs = n_skip;
    w.forbid = forbid, w.n_forbid = n_forbid;
    if (bw_collect(inputs, n_inputs, &w, &B->items)) goto oom;
    if (w.forbidden) {
        fprintf(stderr, "imcap batch: refusing to write over an input: %s is the output%s; choose another -o\n",
                w.forbidden, B->partial ? " (or its .partial file)" : "");
        rc = EXIT_USAGE;
        goto out;
    }
    bw_sort_unique(&B->items);
    if (shard_n) bw_shard(&B->items, shard_i, shard_n);

    for (int d = 0; d < 2; d++)
        if (dirs[d] && (cli_make_dirs(dirs[d]) != 0 || access(dirs[d], W_OK | X_OK) != 0)) {
            fprintf(stderr, "imcap batch: %s: cannot create the output folder: %s\n", dirs[d], strerror(errno));
            goto out;
        }

    cli_set_threads(threads);
    if (!(B->m = cli_load_model(model_path))) goto out;

    size_t n = B->items.n;
    if (B->out_path) {
        int existed = access(B->partial, F_OK) == 0;
        int fd = open(B->partial, B->resume ? O_RDWR | O_CREAT | O_CLOEXEC : O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                      0666);
        if (fd < 0) {
            if (errno == EEXIST)
                fprintf(stderr, "imcap batch: %s exists: an earlier run was interrupted; rerun with --resume to "
                                "continue it, or delete it to start again\n", B->partial);
            else fprintf(stderr, "imcap batch: %s: cannot create: %s\n", B->partial, strerror(errno));
            goto out;
        }
        B->partial_fd = fd;
        B->created_partial = !existed;
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            fprintf(stderr, "imcap batch: %s: another imcap batch is writing it (%s)\n", B->partial, strerror(errno));
            goto out;
        }
        /* a run killed while it wrote OUT (or a rendered file) left its
         * temporary file; the lock says no batch for OUT is writing now */
        int swept = imcap_atomic_sweep_path(B->out_path);
        if (swept < 0) swept = 0;
        for (int d = 0; d < 2; d++) {
            int k = dirs[d] ? imcap_atomic_sweep(dirs[d], NULL) : 0;
            if (k > 0) swept += k;
        }
        if (swept && !B->quiet)
            fprintf(stderr, "imcap batch: removed %d temporary file%s left by a killed run\n", swept, swept == 1 ? "" : "s");
        long long end = 0;
        if (B->resume) {
            B->rec_off = calloc(n ? n : 1, sizeof *B->rec_off);
            B->rec_len = calloc(n ? n : 1, sizeof *B->rec_len);
            B->rec_src = calloc(n ? n : 1, 1);
            B->rec_failed = calloc(n ? n : 1, 1);
            if (!B->rec_off || !B->rec_len || !B->rec_src || !B->rec_failed) goto oom;
            if (stat(B->out_path, &st) == 0 && load_previous(B, B->out_path, 1, NULL, &n_prior, &n_dropped)) goto out;
            if (load_previous(B, B->partial, 2, &end, &n_prior, &n_dropped)) goto out;
            /* Drop the tail an interrupted write may have left. */
            if (ftruncate(fd, end) != 0 || lseek(fd, end, SEEK_SET) != end) {
                fprintf(stderr, "imcap batch: %s: cannot truncate: %s\n", B->partial, strerror(errno));
                goto out;
            }
            /* Records of an earlier run (even ones now dropped) are in the
             * files: OUT must be rebuilt from the index, in order. */
            B->rewrite = n_prior > 0 || n_dropped > 0;
            if (n_dropped && !B->quiet)
                fprintf(stderr, "imcap batch: %zu earlier record%s for paths no longer among the inputs will be left "
                                "out of %s\n", n_dropped, n_dropped == 1 ? "" : "s", B->out_path);
        }
        if (!(B->out = fdopen(fd, "wb"))) {
            fprintf(stderr, "imcap batch: %s: %s\n", B->partial, strerror(errno));
            goto out;
        }
        B->partial_fd = -1; /* owned by B->out now */
        B->out_off = end;
        if (end == 0) {
            imcap_buf h = {0};
            bw_write_header(&h, B->fmt, B->timing, B->domain);
            if (h.oom || (h.len && fwrite(h.s, 1, h.len, B->out) != h.len))
                set_fatal(B, "imcap batch: %s: cannot write the header", B->partial);
            B->out_off = (long long)h.len;
            imcap_buf_free(&h);
        }
    } else {
        B->out = stdout;
        imcap_buf h = {0};
        bw_write_header(&h, B->fmt, B->timing, B->domain);
        if (h.oom || (h.len && fwrite(h.s, 1, h.len, stdout) != h.len)) set_fatal(B, "imcap batch: stdout: cannot write the header");
        imcap_buf_free(&h);
    }

    if (!(B->todo = malloc((n ? n : 1) * sizeof *B->todo))) goto oom;
    for (size_t i = 0; i < n; i++)
        if (!B->rec_src || !B->rec_src[i] || B->rec_failed[i]) B->todo[B->n_todo++] = i;
    n_prior = 0;
    for (size_t i = 0; B->rec_src && i < n; i++) n_prior += B->rec_src[i] && !B->rec_failed[i];

    if (B->html) {
        imcap_buf title = {0};
        imcap_buf_printf(&title, "imcap batch: %s", inputs[0]);
        if (n_inputs > 1) imcap_buf_printf(&title, " and %d more", n_inputs - 1);
        imcap_status s = imcap_gallery_open(B->html, title.s, &B->gallery, &err);
        imcap_buf_free(&title);
        if (s) {
            fprintf(stderr, "imcap batch: %s\n", err.msg);
            goto out;
        }
    }
    print_walk(B, &w, n_prior);

    install_signals();
    const char *sa = getenv("IMCAP_BATCH_STOP_AFTER"); /* tests: interrupt after this many records */
    B->stop_after = sa ? atol(sa) : 0;
    B->tty = isatty(STDERR_FILENO);
    B->t0 = B->last_report = imcap_now();
    if (B->n_todo && !B->fatal) run_parallel(B);
    double elapsed = imcap_now() - B->t0;
    progress(B, 1);
    int sig = g_stop;

    if (B->out_path) {
        int bad = fflush(B->out) != 0 || ferror(B->out);
        if (fsync(fileno(B->out)) != 0 && errno != EINVAL) bad = 1;
        if (fclose(B->out) != 0) bad = 1;
        B->out = NULL;
        if (bad) set_fatal(B, "imcap batch: %s: write failed: %s", B->partial, strerror(errno));
    } else if (fflush(stdout) != 0) {
        set_fatal(B, "imcap batch: stdout: write failed: %s", strerror(errno));
    }
    if (B->fatal) {
        fprintf(stderr, "%s\n", B->fatal_msg);
        if (B->out_path) fprintf(stderr, "imcap batch: the %zu records written are kept in %s (--resume continues)\n",
                                 B->written, B->partial);
        goto out;
    }
    if (sig) {
        fprintf(stderr, "imcap batch: interrupted (%s): %zu of %zu images captioned in this run%s%s%s\n",
                    sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "signal", B->written, B->n_todo,
                    B->out_path ? "; every finished record is in " : "", B->out_path ? B->partial : "",
                    B->out_path ? ": rerun the same command with --resume to finish" : "");
        rc = 128 + sig;
        goto out;
    }

    size_t n_failed = B->failed;
    if (B->out_path) {
        if (!B->rewrite) {
            if (rename(B->partial, B->out_path) != 0) {
                fprintf(stderr, "imcap batch: cannot rename %s to %s: %s\n", B->partial, B->out_path, strerror(errno));
                goto out;
            }
            imcap_sync_parent_dir(B->out_path); /* OUT survives a power cut from here on */
        } else {
            if (rewrite_output(B, &n_failed)) goto out;
            if (unlink(B->partial) != 0)
                fprintf(stderr, "imcap batch: warning: %s: cannot remove: %s\n", B->partial, strerror(errno));
        }
    }
    if (B->gallery) {
        imcap_status s = imcap_gallery_commit(B->gallery, &err);
        B->gallery = NULL;
        if (s) {
            fprintf(stderr, "imcap batch: %s\n", err.msg);
            goto out;
        }
    }
    if (!B->quiet) {
        fprintf(stderr, "imcap batch: %zu image%s, %zu failed, %.1f images/s (%zu captioned in this run in %.1f s",
                n, n == 1 ? "" : "s", n_failed, elapsed > 0 ? B->written / elapsed : 0.0, B->written, elapsed);
        if (n_prior) fprintf(stderr, ", %zu from an earlier run", n_prior);
        fprintf(stderr, ")%s%s\n", B->out_path ? " -> " : "", B->out_path ? B->out_path : "");
    }
    rc = n_failed ? EXIT_SOME_FAILED : EXIT_ALL_OK;
    goto out;
oom:
    fprintf(stderr, "imcap batch: out of memory\n");
    rc = EXIT_FATAL;
out:
    if (B->out && B->out != stdout) fclose(B->out);
    if (B->partial_fd >= 0) close(B->partial_fd);
    if (B->created_partial && B->written == 0 && rc != EXIT_ALL_OK && rc != EXIT_SOME_FAILED) unlink(B->partial);
    imcap_model_free((imcap_model *)B->m);
    bw_walk_free(&w);
    batch_free(B);
    free(inputs);
    return rc;
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

int run_batch(int argc, char **argv) {
    batch B;
    memset(&B, 0, sizeof B);
    B.partial_fd = -1;
    B.timing = 1;
    B.domain = 1;
    B.block = DEFAULT_BLOCK;
    imcap_options_default(&B.opt);
    imcap_render_options_default(&B.ro);
    const char *model_path = NULL, *fmt_name = NULL;
    int threads = 0, recursive = 0, shard_i = 0, shard_n = 0;
    const char *out = NULL, *shard = NULL, *files_from = NULL;
    int no_timing = 0, first = 0;
    const cli_opt opts[] = {
        CLI_OPT_MODEL(&model_path),
        CLI_OPT_OUTPUT(&out),
        CLI_OPT_THREADS(&threads),
        CLI_OPT_QUIET(&B.quiet),
        {"format", 0, CLI_STR, &fmt_name, 0, 0, NULL, NULL},
        {"overlays", 0, CLI_STR, &B.overlays, 0, 0, NULL, NULL},
        {"html", 0, CLI_STR, &B.html, 0, 0, NULL, NULL},
        {"shard", 0, CLI_STR, &shard, 0, 0, NULL, NULL},
        {"beam", 0, CLI_INT, &B.opt.beam, 1, 1000, NULL, NULL},
        {"max-length", 0, CLI_INT, &B.opt.max_length, 1, 1024, NULL, NULL},
        {"block", 0, CLI_INT, &B.block, 1, 4096, NULL, NULL},
        {"recursive", 'r', CLI_FLAG, &recursive, 0, 0, NULL, NULL},
        {"resume", 0, CLI_FLAG, &B.resume, 0, 0, NULL, NULL},
        {"no-timing", 0, CLI_FLAG, &no_timing, 0, 0, NULL, NULL},
        {"files-from", 0, CLI_STR, &files_from, 0, 0, NULL, NULL},
        CLI_END,
    };
    int pr = cli_parse("batch", argc, argv, opts, usage, &first);
    if (pr) return cli_parse_exit(pr);
    if (no_timing) B.timing = 0;
    if (out) B.out_path = strcmp(out, "-") ? out : NULL;
    const char *empty = out && !*out ? "-o" : fmt_name && !*fmt_name ? "--format" : B.overlays && !*B.overlays ? "--overlays"
                      : B.html && !*B.html ? "--html" : NULL;
    if (empty) {
        fprintf(stderr, "imcap batch: %s needs a value\n", empty);
        usage(stderr);
        return EXIT_USAGE;
    }
    if (shard && bw_parse_shard(shard, &shard_i, &shard_n)) {
        fprintf(stderr, "imcap batch: --shard: '%s' is not I/N with 1 <= I <= N\n", shard);
        usage(stderr);
        return EXIT_USAGE;
    }
    char **listed = NULL;
    int n_listed = 0;
    if (files_from && cli_read_list("batch", files_from, &listed, &n_listed) != 0) return EXIT_USAGE;
    int n_inputs = argc - first + n_listed;
    char **inputs = calloc((size_t)n_inputs + 1, sizeof *inputs);
    if (!inputs) { fprintf(stderr, "imcap batch: out of memory\n"); return EXIT_FATAL; }
    for (int i = first; i < argc; i++) inputs[i - first] = argv[i];
    for (int i = 0; i < n_listed; i++) inputs[argc - first + i] = listed[i];
    free(listed); /* the strings live on in inputs, for the rest of the process */
    if (n_inputs == 0) {
        fprintf(stderr, "imcap batch: no folders or images given\n");
        goto usage_error;
    }
    B.fmt = BW_JSONL;
    if (fmt_name) {
        if (bw_format_parse(fmt_name, &B.fmt)) {
            fprintf(stderr, "imcap batch: --format: '%s' is not jsonl, csv or tsv\n", fmt_name);
            goto usage_error;
        }
    } else if (B.out_path && ends_with(B.out_path, ".csv")) B.fmt = BW_CSV;
    else if (B.out_path && ends_with(B.out_path, ".tsv")) B.fmt = BW_TSV;
    if (B.resume && !B.out_path) {
        fprintf(stderr, "imcap batch: --resume needs -o OUT (the output of the run to continue)\n");
        goto usage_error;
    }
    return batch_main(&B, inputs, n_inputs, model_path, threads, recursive, shard_i, shard_n);
usage_error:
    usage(stderr);
    free(inputs);
    return EXIT_USAGE;
}
