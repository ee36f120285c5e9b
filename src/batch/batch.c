/* batch.c — imcap_batch_run (imcap.h): folders of images into one record
 * per image, in sorted path order, resumable and shardable.
 *
 * Output with out: records are appended to OUT.partial and flushed one by
 * one; when every input has a record, OUT.partial becomes OUT (renamed as
 * it is when it holds this run's records only, in order; rewritten in path
 * order when resume brought records of an earlier run). So OUT only ever
 * appears complete, and a run stopped in any way leaves complete records in
 * OUT.partial (at most the record being written when the process was
 * killed is cut short; resume drops that tail).
 *
 * Parallelism: each OpenMP thread decodes a block of up to `block` images
 * together (an imcap_batcher), taking images in sorted order, at most a
 * window (4 x threads x block) ahead of the first record not yet written.
 * A reorder buffer writes each record as soon as all earlier ones are
 * written. Memory holds the sorted path list, the threads' blocks and one
 * window of records, whatever the number of images. */
#include <errno.h>
#include <fcntl.h>
#include <omp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "batch/batch_walk.h"
#include "decode/decode.h"
#include "render/gallery.h"
#include "render/render.h"
#include "util/util.h"

#define DEFAULT_BLOCK 32

void imcap_batch_options_default(imcap_batch_options *o) {
    memset(o, 0, sizeof *o);
    o->format = IMCAP_RECORDS_JSONL;
    o->timing = 1;
    o->block = DEFAULT_BLOCK;
    imcap_options_default(&o->caption);
    imcap_render_options_default(&o->render);
}

/* ------------------------------------------------------------ state */

typedef struct {
    /* options */
    const imcap_batch_options *o;
    const imcap_batch_callbacks *cb;
    const char *out_path; /* NULL: the sink */
    bw_format fmt;
    int timing, resume;
    int domain;           /* csv/tsv: the domain columns (a resumed file keeps its own layout) */
    int layout_fixed;     /* domain taken from an earlier output */
    const char *overlays, *html;
    const imcap_model *m;
    int block;

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
    double t0;
    volatile sig_atomic_t halt; /* take no more images: a fatal error (the caller's stop is o->stop) */
    int fatal;
    imcap_error fatal_err;
    int created_partial; /* a fresh OUT.partial of this run, removed if it ends up with no record */
} batch;

typedef struct {
    int done;       /* 0 waiting, 1 record ready, 2 record of a failed image */
    double t0;      /* when the image was taken */
    imcap_buf rec;
    char why[1400]; /* a failed image: the message */
} slot;

static void note(const batch *b, const char *fmt, ...) IMCAP_PRINTF(2, 3);
static void note(const batch *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    imcap_vtell(b->cb ? b->cb->on_note : NULL, b->cb ? b->cb->ctx : NULL, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------ one image */

/* The record of one image: res is its result, or fail says why it has none.
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
                s = imcap_render_write(&img, res, b->overlays, stem, it->path, &b->o->render,
                                       IMCAP_RENDER_OVERLAYS | IMCAP_RENDER_SHEET | (same ? IMCAP_RENDER_HTML : 0),
                                       &err);
            if (!s && b->html && !same) s = imcap_render_write(&img, res, b->html, stem, it->path, &b->o->render,
                                                               IMCAP_RENDER_HTML, &err);
            if (!s && b->html) s = imcap_gallery_thumb(&img, b->html, stem, IMCAP_GALLERY_THUMB_SIDE, &err);
            if (s) {
                snprintf(msg, sizeof msg, "%s: %s", it->path, err.msg);
                if (imcap_msg_names(err.msg, it->path)) snprintf(msg, sizeof msg, "%s", err.msg);
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

/* The first fatal error stops the run (no more images are taken). */
static void set_fatal(batch *b, imcap_status st, const char *fmt, ...) IMCAP_PRINTF(3, 4);
static void set_fatal(batch *b, imcap_status st, const char *fmt, ...) {
    if (b->fatal) return;
    b->fatal = 1;
    b->halt = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->fatal_err.msg, sizeof b->fatal_err.msg, fmt, ap);
    va_end(ap);
    b->fatal_err.status = st;
}

static int put(batch *b, const void *data, size_t n) {
    if (b->out) return fwrite(data, 1, n, b->out) == n && fflush(b->out) == 0 ? 0 : -1;
    return b->cb && b->cb->sink ? b->cb->sink(b->cb->ctx, data, n) : -1;
}

static void gallery_record(batch *b, const char *rec, size_t len) {
    if (!b->gallery) return;
    bw_parsed p;
    char why[256];
    imcap_error err;
    int pr = bw_parse_record(b->fmt, b->timing, b->domain, rec, len, &p, why, sizeof why);
    if (pr == 0) {
        if (bw_gallery_add(b->gallery, b->html, &p, &err) != IMCAP_OK) set_fatal(b, err.status, "%s", err.msg);
    } else if (pr == -2) {
        set_fatal(b, IMCAP_E_NOMEM, "out of memory for the gallery");
    }
    bw_parsed_free(&p);
}

/* Writes the record of items[i] (called in sorted order). */
static void emit(batch *b, size_t i, const imcap_buf *rec, int failed) {
    if (b->fatal) return;
    if (rec->oom) {
        set_fatal(b, IMCAP_E_NOMEM, "out of memory for the record of %s", b->items.v[i].path);
        return;
    }
    if (put(b, rec->s, rec->len)) {
        set_fatal(b, IMCAP_E_IO, "%s: write failed: %s", b->partial ? b->partial : "the output",
                  errno ? strerror(errno) : "the sink refused it");
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
    if (b->cb && b->cb->on_record) b->cb->on_record(b->cb->ctx, b->written, b->n_todo, imcap_now() - b->t0);
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
        return imcap_fail(err, IMCAP_E_IMAGE, "%s", it->error); /* keeps the reason of a long one */
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
        if (it->error || imcap_msg_names(err->msg, it->path)) fail = err->msg;
        else snprintf(msg, sizeof msg, "%s: %s", it->path, err->msg), fail = msg;
    }
    int failed;
    make_record(c->b, it, res, fail, sl->t0, &sl->rec, &failed, sl->why);
    sl->done = failed ? 2 : 1;
    imcap_result_free(res);
}

static void run_emit(void *vctx, size_t k) {
    run_ctx *c = vctx;
    batch *b = c->b;
    slot *sl = &c->slots[k % c->window];
    /* a failed image is a record and, like every error, reported */
    if (sl->done == 2 && b->cb && b->cb->on_failed) b->cb->on_failed(b->cb->ctx, sl->why);
    emit(b, b->todo[k], &sl->rec, sl->done == 2);
    sl->done = 0;
}

static void run_parallel(batch *b) {
    int nthreads = b->o->threads > 0 ? b->o->threads : omp_get_max_threads();
    run_ctx c = {b, NULL, imcap_caption_many_window(nthreads, b->block)};
    if (!(c.slots = calloc(c.window, sizeof *c.slots))) {
        set_fatal(b, IMCAP_E_NOMEM, "out of memory");
        return;
    }
    imcap_many_io io = {run_load, run_done, run_emit, &c, b->o->stop, NULL};
    imcap_error err;
    if (imcap_caption_many_halt(b->m, b->n_todo, &b->o->caption, b->block, nthreads, &io, &b->halt, NULL, &err) !=
        IMCAP_OK)
        set_fatal(b, err.status, "%s", err.msg);
    for (size_t s = 0; s < c.window; s++) imcap_buf_free(&c.slots[s].rec);
    free(c.slots);
}

/* Reads the records of an earlier run from path (src 1 = OUT, 2 =
 * OUT.partial) into the index. For the partial file, *complete_end is where
 * its complete records end. */
static imcap_status load_previous(batch *b, const char *path, int src, long long *complete_end, size_t *n_records,
                                  size_t *n_dropped, imcap_error *err) {
    bw_reader r;
    imcap_status st = IMCAP_OK;
    if (bw_reader_open(&r, path) != 0) {
        st = imcap_fail(err, IMCAP_E_IO, "%s", r.msg);
        goto done;
    }
    if (r.known && (r.fmt != b->fmt || (r.fmt != BW_JSONL && r.timing != b->timing))) {
        st = imcap_fail(err, IMCAP_E_FORMAT,
                        "%s holds %s records%s, but this run writes %s%s: use the same --format and --no-timing as "
                        "the first run",
                        path, bw_format_name(r.fmt), r.fmt != BW_JSONL && !r.timing ? " without ms" : "",
                        bw_format_name(b->fmt), b->fmt != BW_JSONL && !b->timing ? " without ms" : "");
        goto done;
    }
    if (r.known && r.fmt != BW_JSONL) {
        if (!b->layout_fixed) {
            b->domain = r.domain, b->layout_fixed = 1;
        } else if (r.domain != b->domain) {
            st = imcap_fail(err, IMCAP_E_FORMAT, "%s %s the domain_score and in_domain columns and the other output does%s",
                            path, r.domain ? "has" : "lacks", r.domain ? " not" : "");
            goto done;
        }
    }
    int rc, first = 1;
    bw_parsed p;
    while ((rc = bw_reader_next(&r, &p)) == 1) {
        if (first && r.fmt == BW_JSONL && p.has_ms != b->timing) {
            st = imcap_fail(err, IMCAP_E_FORMAT, "%s was written %s --no-timing; pass the same options to --resume it",
                            path, p.has_ms ? "without" : "with");
            bw_parsed_free(&p);
            goto done;
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
    if (rc < 0) st = imcap_fail(err, IMCAP_E_FORMAT, "%s", r.msg);
    else if (rc == 2 && src == 1)
        st = imcap_fail(err, IMCAP_E_FORMAT, "%s: the last record is incomplete; not an output of imcap batch?", path);
    else if (complete_end) *complete_end = r.end;
done:
    bw_reader_close(&r);
    return st;
}

/* Writes OUT from the index: every input's record, in sorted order. */
static imcap_status rewrite_output(batch *b, size_t *n_failed, imcap_error *err) {
    FILE *src[3] = {NULL, NULL, NULL};
    imcap_atomic_file af;
    imcap_buf rec = {0};
    imcap_status st;
    *n_failed = 0;
    if ((st = imcap_atomic_open(&af, b->out_path, err))) return st;
    src[1] = fopen(b->out_path, "rb");
    src[2] = fopen(b->partial, "rb");
    bw_write_header(&rec, b->fmt, b->timing, b->domain);
    if (rec.oom || (rec.len && fwrite(rec.s, 1, rec.len, af.f) != rec.len)) { /* jsonl has no header */
        st = imcap_fail(err, IMCAP_E_IO, "%s: cannot write the header", af.tmp);
        goto done;
    }
    for (size_t i = 0; i < b->items.n; i++) {
        int s = b->rec_src[i];
        if (!s) {
            st = imcap_fail(err, IMCAP_E_ARG, "internal error: %s has no record", b->items.v[i].path);
            goto done;
        }
        FILE *f = src[s];
        rec.len = 0;
        imcap_buf_printf(&rec, "%*s", (int)b->rec_len[i], "");
        if (rec.oom) {
            st = imcap_fail(err, IMCAP_E_NOMEM, "out of memory reading back the record of %s", b->items.v[i].path);
            goto done;
        }
        if (!f || fseeko(f, b->rec_off[i], SEEK_SET) != 0 || fread(rec.s, 1, b->rec_len[i], f) != b->rec_len[i]) {
            st = imcap_fail(err, IMCAP_E_IO, "%s: cannot read back a record: %s", s == 1 ? b->out_path : b->partial,
                            strerror(errno));
            goto done;
        }
        if (fwrite(rec.s, 1, rec.len, af.f) != rec.len) {
            st = imcap_fail(err, IMCAP_E_IO, "%s: write failed: %s", af.tmp, strerror(errno));
            goto done;
        }
        *n_failed += b->rec_failed[i];
        gallery_record(b, rec.s, rec.len);
        if (b->fatal) {
            *err = b->fatal_err;
            st = err->status;
            goto done;
        }
    }
    st = imcap_atomic_commit(&af, err);
done:
    if (st && af.f) imcap_atomic_abort(&af);
    for (int s = 1; s < 3; s++)
        if (src[s]) fclose(src[s]);
    imcap_buf_free(&rec);
    return st;
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

static void note_walk(const batch *b, const bw_walk *w, size_t n_prior) {
    if (!b->cb || !b->cb->on_note) return;
    imcap_buf s = {0};
    imcap_buf_printf(&s, "%zu input%s", b->items.n, b->items.n == 1 ? "" : "s");
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
    if (!s.oom) b->cb->on_note(b->cb->ctx, s.s);
    imcap_buf_free(&s);
}

/* The output file, its .partial and the rendering folders, checked against
 * the inputs before anything is written. */
static imcap_status check_outputs(batch *B, bw_fileid *forbid, size_t *n_forbid, bw_fileid *skip, size_t *n_skip,
                                  imcap_error *err) {
    const imcap_batch_options *o = B->o;
    struct stat st;
    if (B->out_path) {
        if (stat(B->out_path, &st) == 0) {
            if (S_ISDIR(st.st_mode))
                return imcap_fail(err, IMCAP_E_ARG, "-o %s is a folder; give a file name", B->out_path);
            forbid[*n_forbid].dev = st.st_dev, forbid[(*n_forbid)++].ino = st.st_ino;
        }
        size_t n = strlen(B->out_path) + 16;
        if (!(B->partial = malloc(n))) return imcap_fail(err, IMCAP_E_NOMEM, "out of memory");
        snprintf(B->partial, n, "%s.partial", B->out_path);
        if (stat(B->partial, &st) == 0) forbid[*n_forbid].dev = st.st_dev, forbid[(*n_forbid)++].ino = st.st_ino;
    }
    const char *dirs[2] = {B->overlays, B->html};
    for (int d = 0; d < 2; d++) {
        if (!dirs[d] || stat(dirs[d], &st) != 0) continue;
        if (!S_ISDIR(st.st_mode))
            return imcap_fail(err, IMCAP_E_ARG, "%s %s is not a folder", d ? "--html" : "--overlays", dirs[d]);
        skip[*n_skip].dev = st.st_dev, skip[(*n_skip)++].ino = st.st_ino;
    }
    /* Rendered files never go among the inputs: an output folder is not
     * walked, so it cannot also be an input folder. */
    for (int a = 0; a < o->n_inputs; a++) {
        if (stat(o->inputs[a], &st) != 0 || !S_ISDIR(st.st_mode)) continue;
        for (size_t k = 0; k < *n_skip; k++)
            if (skip[k].dev == st.st_dev && skip[k].ino == st.st_ino)
                return imcap_fail(err, IMCAP_E_ARG,
                                  "refusing to write rendered files into the input folder %s; choose another "
                                  "--overlays/--html folder", o->inputs[a]);
    }
    return IMCAP_OK;
}

/* Opens (or, resuming, reopens and reads back) OUT.partial under an
 * exclusive lock, and writes the header of a new one. */
static imcap_status open_output(batch *B, size_t *n_prior, size_t *n_dropped, imcap_error *err) {
    struct stat st;
    size_t n = B->items.n;
    int existed = access(B->partial, F_OK) == 0;
    int fd = open(B->partial, B->resume ? O_RDWR | O_CREAT | O_CLOEXEC : O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                  0666);
    if (fd < 0) {
        if (errno == EEXIST)
            return imcap_fail(err, IMCAP_E_IO, "%s exists: an earlier run was interrupted; rerun with --resume to "
                                               "continue it, or delete it to start again", B->partial);
        return imcap_fail(err, IMCAP_E_IO, "%s: cannot create: %s", B->partial, strerror(errno));
    }
    B->partial_fd = fd;
    B->created_partial = !existed;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0)
        return imcap_fail(err, IMCAP_E_IO, "%s: another imcap batch is writing it (%s)", B->partial, strerror(errno));
    /* a run killed while it wrote OUT (or a rendered file) left its
     * temporary file; the lock says no batch for OUT is writing now */
    int swept = imcap_atomic_sweep_path(B->out_path);
    if (swept < 0) swept = 0;
    const char *dirs[2] = {B->overlays, B->html};
    for (int d = 0; d < 2; d++) {
        int k = dirs[d] ? imcap_atomic_sweep(dirs[d], NULL) : 0;
        if (k > 0) swept += k;
    }
    if (swept) note(B, "removed %d temporary file%s left by a killed run", swept, swept == 1 ? "" : "s");
    long long end = 0;
    imcap_status s;
    if (B->resume) {
        B->rec_off = calloc(n ? n : 1, sizeof *B->rec_off);
        B->rec_len = calloc(n ? n : 1, sizeof *B->rec_len);
        B->rec_src = calloc(n ? n : 1, 1);
        B->rec_failed = calloc(n ? n : 1, 1);
        if (!B->rec_off || !B->rec_len || !B->rec_src || !B->rec_failed)
            return imcap_fail(err, IMCAP_E_NOMEM, "out of memory");
        if (stat(B->out_path, &st) == 0 && (s = load_previous(B, B->out_path, 1, NULL, n_prior, n_dropped, err)))
            return s;
        if ((s = load_previous(B, B->partial, 2, &end, n_prior, n_dropped, err))) return s;
        /* Drop the tail an interrupted write may have left. */
        if (ftruncate(fd, end) != 0 || lseek(fd, end, SEEK_SET) != end)
            return imcap_fail(err, IMCAP_E_IO, "%s: cannot truncate: %s", B->partial, strerror(errno));
        /* Records of an earlier run (even ones now dropped) are in the
         * files: OUT must be rebuilt from the index, in order. */
        B->rewrite = *n_prior > 0 || *n_dropped > 0;
        if (*n_dropped)
            note(B, "%zu earlier record%s for paths no longer among the inputs will be left out of %s", *n_dropped,
                 *n_dropped == 1 ? "" : "s", B->out_path);
    }
    if (!(B->out = fdopen(fd, "wb"))) return imcap_fail(err, IMCAP_E_IO, "%s: %s", B->partial, strerror(errno));
    B->partial_fd = -1; /* owned by B->out now */
    B->out_off = end;
    if (end == 0) {
        imcap_buf h = {0};
        bw_write_header(&h, B->fmt, B->timing, B->domain);
        if (h.oom || (h.len && put(B, h.s, h.len))) set_fatal(B, IMCAP_E_IO, "%s: cannot write the header", B->partial);
        B->out_off = (long long)h.len;
        imcap_buf_free(&h);
    }
    return IMCAP_OK;
}

/* OUT.partial becomes OUT: renamed, or rewritten in order from the index. */
static imcap_status finish_output(batch *B, size_t *n_failed, imcap_error *err) {
    if (!B->rewrite) {
        if (rename(B->partial, B->out_path) != 0)
            return imcap_fail(err, IMCAP_E_IO, "cannot rename %s to %s: %s", B->partial, B->out_path, strerror(errno));
        imcap_sync_parent_dir(B->out_path); /* OUT survives a power cut from here on */
        return IMCAP_OK;
    }
    imcap_status s = rewrite_output(B, n_failed, err);
    if (!s && unlink(B->partial) != 0) note(B, "warning: %s: cannot remove: %s", B->partial, strerror(errno));
    return s;
}

imcap_status imcap_batch_run(const imcap_model *m, const imcap_batch_options *o, const imcap_batch_callbacks *cb,
                             imcap_batch_summary *sum, imcap_error *err) {
    if (sum) memset(sum, 0, sizeof *sum);
    if (!m || !o || !o->inputs || o->n_inputs < 1) return imcap_fail(err, IMCAP_E_ARG, "no folders or images given");
    if (o->resume && !o->out)
        return imcap_fail(err, IMCAP_E_ARG, "--resume needs -o OUT (the output of the run to continue)");
    if (!o->out && !(cb && cb->sink)) return imcap_fail(err, IMCAP_E_ARG, "imcap_batch_run: no output file and no sink");
    if (o->block < 1 || o->block > 4096) return imcap_fail(err, IMCAP_E_ARG, "block %d outside [1, 4096]", o->block);
    if (o->shard_count < 0 || (o->shard_count > 0 && (o->shard_index < 1 || o->shard_index > o->shard_count)))
        return imcap_fail(err, IMCAP_E_ARG, "shard %d/%d: not I/N with 1 <= I <= N", o->shard_index, o->shard_count);
    if ((int)o->format < 0 || o->format > IMCAP_RECORDS_TSV)
        return imcap_fail(err, IMCAP_E_ARG, "unknown record format %d", (int)o->format);
    batch b_, *B = &b_;
    memset(B, 0, sizeof *B);
    B->o = o, B->cb = cb, B->m = m;
    B->out_path = o->out, B->fmt = (bw_format)o->format, B->timing = !!o->timing, B->resume = o->resume;
    B->domain = 1, B->overlays = o->overlays_dir, B->html = o->html_dir, B->block = o->block;
    B->partial_fd = -1;
    imcap_status s;
    bw_fileid forbid[2], skip[2];
    size_t n_forbid = 0, n_skip = 0, n_prior = 0, n_dropped = 0;
    bw_walk w;
    memset(&w, 0, sizeof w);

    if ((s = check_outputs(B, forbid, &n_forbid, skip, &n_skip, err))) goto out;
    w.recursive = o->recursive;
    w.skip_dirs = skip, w.n_skip_dirs = n_skip;
    w.forbid = forbid, w.n_forbid = n_forbid;
    if (bw_collect((char *const *)o->inputs, o->n_inputs, &w, &B->items)) {
        s = imcap_fail(err, IMCAP_E_NOMEM, "out of memory listing the inputs");
        goto out;
    }
    if (w.forbidden) {
        s = imcap_fail(err, IMCAP_E_ARG, "refusing to write over an input: %s is the output%s; choose another -o",
                       w.forbidden, B->partial ? " (or its .partial file)" : "");
        goto out;
    }
    bw_sort_unique(&B->items);
    if (o->shard_count) bw_shard(&B->items, o->shard_index, o->shard_count);
    const char *dirs[2] = {B->overlays, B->html};
    for (int d = 0; d < 2; d++)
        if (dirs[d] && ((s = imcap_make_dirs(dirs[d], err)) || access(dirs[d], W_OK | X_OK) != 0)) {
            s = imcap_fail(err, IMCAP_E_IO, "%s: cannot create the output folder: %s", dirs[d], s ? err->msg : strerror(errno));
            goto out;
        }

    size_t n = B->items.n;
    if (B->out_path) {
        if ((s = open_output(B, &n_prior, &n_dropped, err))) goto out;
    } else {
        imcap_buf h = {0};
        bw_write_header(&h, B->fmt, B->timing, B->domain);
        if (h.oom || (h.len && put(B, h.s, h.len))) set_fatal(B, IMCAP_E_IO, "the output: cannot write the header");
        imcap_buf_free(&h);
    }

    if (!(B->todo = malloc((n ? n : 1) * sizeof *B->todo))) {
        s = imcap_fail(err, IMCAP_E_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        if (!B->rec_src || !B->rec_src[i] || B->rec_failed[i]) B->todo[B->n_todo++] = i;
    n_prior = 0;
    for (size_t i = 0; B->rec_src && i < n; i++) n_prior += B->rec_src[i] && !B->rec_failed[i];

    if (B->html) {
        imcap_buf title = {0};
        imcap_buf_printf(&title, "imcap batch: %s", o->inputs[0]);
        if (o->n_inputs > 1) imcap_buf_printf(&title, " and %d more", o->n_inputs - 1);
        s = title.oom ? imcap_fail(err, IMCAP_E_NOMEM, "out of memory")
                      : imcap_gallery_open(B->html, title.s, &B->gallery, err);
        imcap_buf_free(&title);
        if (s) goto out;
    }
    note_walk(B, &w, n_prior);

    B->t0 = imcap_now();
    if (B->n_todo && !B->fatal && !(o->stop && *o->stop)) run_parallel(B);
    double elapsed = imcap_now() - B->t0;
    if (sum) {
        sum->inputs = n, sum->prior = n_prior, sum->todo = B->n_todo, sum->written = B->written;
        sum->failed = B->failed, sum->seconds = elapsed;
    }

    if (B->out_path) {
        int bad = fflush(B->out) != 0 || ferror(B->out);
        if (fsync(fileno(B->out)) != 0 && errno != EINVAL) bad = 1;
        if (fclose(B->out) != 0) bad = 1;
        B->out = NULL;
        if (bad) set_fatal(B, IMCAP_E_IO, "%s: write failed: %s", B->partial, strerror(errno));
    }
    if (B->fatal) {
        s = imcap_fail(err, B->fatal_err.status ? B->fatal_err.status : IMCAP_E_IO, "%s%s%s%s", B->fatal_err.msg,
                       B->out_path ? "; the records written are kept in " : "", B->out_path ? B->partial : "",
                       B->out_path ? " (--resume continues)" : "");
        goto out;
    }
    if (o->stop && *o->stop) {
        s = imcap_fail(err, IMCAP_E_INTERRUPTED, "interrupted: %zu of %zu images captioned in this run%s%s%s",
                       B->written, B->n_todo, B->out_path ? "; every finished record is in " : "",
                       B->out_path ? B->partial : "",
                       B->out_path ? ": rerun the same command with --resume to finish" : "");
        goto out;
    }
    size_t n_failed = B->failed;
    if (B->out_path && (s = finish_output(B, &n_failed, err))) goto out;
    if (B->gallery) {
        s = imcap_gallery_commit(B->gallery, err);
        B->gallery = NULL;
        if (s) goto out;
    }
    if (sum) sum->failed = n_failed;
    s = IMCAP_OK;
out:
    if (B->out) fclose(B->out);
    if (B->partial_fd >= 0) close(B->partial_fd);
    if (B->created_partial && B->written == 0 && s != IMCAP_OK) unlink(B->partial);
    bw_walk_free(&w);
    batch_free(B);
    return s;
}
