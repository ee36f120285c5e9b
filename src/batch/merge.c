/* merge.c — imcap_merge (imcap.h): joins the outputs of batch runs over
 * shards of one corpus into the output one run over all of it would have
 * written.
 *
 * Each shard output is sorted by path, so the join is a k-way merge that
 * holds one record per shard: memory does not grow with the corpus. The
 * records are copied byte for byte. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch/batch_walk.h"
#include "render/gallery.h"
#include "util/util.h"

typedef struct {
    bw_reader r;
    bw_parsed p; /* the current record (p.path NULL when done) */
    int live;
} shard;

/* Advances s; IMCAP_OK, or the failure in err. */
static imcap_status advance(shard *s, imcap_error *err) {
    char *prev = s->p.path; /* kept to check the order */
    s->p.path = NULL;
    bw_parsed_free(&s->p);
    int rc = bw_reader_next(&s->r, &s->p);
    imcap_status st = IMCAP_OK;
    if (rc == 1) {
        if (prev && strcmp(prev, s->p.path) >= 0)
            st = imcap_fail(err, IMCAP_E_FORMAT,
                            "%s:%lld: records are not in sorted path order (not a finished imcap batch output?)",
                            s->r.name, s->r.line - 1);
    } else if (rc == 0) {
        s->live = 0;
    } else if (rc == 2) {
        st = imcap_fail(err, IMCAP_E_FORMAT,
                        "%s: the last record is incomplete (an unfinished run? finish it with imcap batch --resume)",
                        s->r.name);
    } else {
        st = imcap_fail(err, IMCAP_E_FORMAT, "%s", s->r.msg);
    }
    free(prev);
    return st;
}

/* OUT must not be an input, no input may be given twice, and an unfinished
 * run's .partial is not an output. */
static imcap_status check_inputs(const char *const *names, int k, const char *out, imcap_error *err) {
    bw_fileid *ids = calloc((size_t)k + 1, sizeof *ids);
    if (!ids) return imcap_fail(err, IMCAP_E_NOMEM, "out of memory");
    imcap_status st = IMCAP_OK;
    int have_out = out && bw_fileid_of(out, &ids[k]) == 0;
    for (int i = 0; i < k && !st; i++) {
        size_t len = strlen(names[i]);
        if (len > 8 && !strcmp(names[i] + len - 8, ".partial"))
            st = imcap_fail(err, IMCAP_E_ARG,
                            "%s is the file of an unfinished run; finish it with imcap batch --resume and merge its "
                            "output", names[i]);
        else if (bw_fileid_of(names[i], &ids[i]) != 0)
            st = imcap_fail(err, IMCAP_E_IO, "%s: %s", names[i], strerror(errno));
        else if (have_out && ids[i].dev == ids[k].dev && ids[i].ino == ids[k].ino)
            st = imcap_fail(err, IMCAP_E_ARG, "refusing to write over an input: %s is the output", names[i]);
        for (int j = 0; j < i && !st; j++)
            if (ids[i].dev == ids[j].dev && ids[i].ino == ids[j].ino)
                st = imcap_fail(err, IMCAP_E_IO, "%s and %s are the same file", names[j], names[i]);
    }
    free(ids);
    return st;
}

static const char *layout(const bw_reader *r, char *buf, size_t n) {
    snprintf(buf, n, "%s%s%s", bw_format_name(r->fmt), r->timing ? "" : " without ms",
             r->fmt != BW_JSONL && !r->domain ? " without domain columns" : "");
    return buf;
}

/* Writes data to the output: the atomic file, or the caller's sink. */
static int put(FILE *f, const imcap_merge_options *o, const void *data, size_t n) {
    if (f) return fwrite(data, 1, n, f) == n ? 0 : -1;
    return o && o->sink ? o->sink(o->ctx, data, n) : -1;
}

imcap_status imcap_merge(const char *const *inputs, int n, const char *out, const imcap_merge_options *o,
                         imcap_merge_summary *sum, imcap_error *err) {
    if (sum) memset(sum, 0, sizeof *sum);
    if (!inputs || n < 1) return imcap_fail(err, IMCAP_E_ARG, "no shard outputs to merge");
    if (!out && !(o && o->sink)) return imcap_fail(err, IMCAP_E_ARG, "imcap_merge: no output file and no sink");
    const char *html = o ? o->html_dir : NULL;
    if (html && !*html) return imcap_fail(err, IMCAP_E_ARG, "the gallery folder is empty");
    imcap_status st = check_inputs(inputs, n, out, err);
    if (st) return st;

    shard *s = calloc((size_t)n, sizeof *s);
    imcap_atomic_file af = {0};
    imcap_gallery *gallery = NULL;
    int known = -1; /* the first shard whose format is known */
    int jsonl_ms = -1;
    size_t n_records = 0, n_errors = 0;
    if (!s) return imcap_fail(err, IMCAP_E_NOMEM, "out of memory");
    for (int i = 0; i < n && !st; i++) {
        if (bw_reader_open(&s[i].r, inputs[i]) != 0) {
            st = imcap_fail(err, IMCAP_E_IO, "%s", s[i].r.msg);
            break;
        }
        s[i].live = s[i].r.known;
        if (!s[i].r.known) continue;
        if (known < 0) known = i;
        else if (s[i].r.fmt != s[known].r.fmt || s[i].r.timing != s[known].r.timing ||
                 (s[i].r.fmt != BW_JSONL && s[i].r.domain != s[known].r.domain)) {
            char a[64], b[64];
            st = imcap_fail(err, IMCAP_E_FORMAT, "%s is %s but %s is %s: shard outputs must have one format",
                            inputs[known], layout(&s[known].r, a, sizeof a), inputs[i], layout(&s[i].r, b, sizeof b));
            break;
        }
        if ((st = advance(&s[i], err))) break;
        if (s[i].live && s[i].r.fmt == BW_JSONL) {
            if (jsonl_ms < 0) jsonl_ms = s[i].p.has_ms;
            else if (jsonl_ms != s[i].p.has_ms)
                st = imcap_fail(err, IMCAP_E_FORMAT, "some jsonl inputs have the ms field and others not "
                                                     "(--no-timing): shard outputs must have one format");
        }
    }
    if (!st && out) st = imcap_atomic_open(&af, out, err);
    if (!st && html) {
        st = imcap_make_dirs(html, err);
        if (!st) st = imcap_gallery_open(html, "imcap merge", &gallery, err);
    }
    if (!st && known >= 0) {
        imcap_buf h = {0};
        bw_write_header(&h, s[known].r.fmt, s[known].r.timing, s[known].r.domain);
        if (h.oom || (h.len && put(af.f, o, h.s, h.len)))
            st = imcap_fail(err, IMCAP_E_IO, "%s: cannot write the header", out ? af.tmp : "the output");
        imcap_buf_free(&h);
    }
    while (!st) {
        int best = -1;
        for (int i = 0; i < n && !st; i++) {
            if (!s[i].live) continue;
            if (best < 0) {
                best = i;
                continue;
            }
            int c = strcmp(s[i].p.path, s[best].p.path);
            if (c == 0)
                st = imcap_fail(err, IMCAP_E_FORMAT,
                                "%s has a record in both %s and %s: were two shards run with the same --shard, or "
                                "one output given twice?", s[i].p.path, inputs[best], inputs[i]);
            if (c < 0) best = i;
        }
        if (st || best < 0) break;
        shard *b = &s[best];
        if (put(af.f, o, b->r.rec.s, b->r.rec.len)) {
            st = imcap_fail(err, IMCAP_E_IO, "%s: write failed: %s", out ? af.tmp : "the output", strerror(errno));
            break;
        }
        n_records++;
        n_errors += b->p.error != NULL;
        if (gallery && (st = bw_gallery_add(gallery, html, &b->p, err))) break;
        st = advance(b, err);
    }
    if (!st && out) st = imcap_atomic_commit(&af, err);
    if (!st && gallery) {
        st = imcap_gallery_commit(gallery, err);
        gallery = NULL;
    }
    if (st && af.f) imcap_atomic_abort(&af);
    imcap_gallery_abort(gallery);
    for (int i = 0; i < n; i++) {
        bw_parsed_free(&s[i].p);
        bw_reader_close(&s[i].r);
    }
    free(s);
    if (!st && sum) sum->records = n_records, sum->errors = n_errors, sum->empty = known < 0;
    return st;
}
