/* cmd_merge.c — `imcap merge`: joins the outputs of `imcap batch --shard`
 * runs into the output one run over all the inputs would have written.
 *
 * Each shard output is sorted by path, so the join is a k-way merge that
 * holds one record per shard: memory does not grow with the corpus. The
 * records are copied byte for byte. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "args.h"
#include "cli.h"
#include "cli/batch_walk.h"
#include "render/gallery.h"
#include "util/util.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: imcap merge -o OUT [--html DIR] [-q] SHARD_OUTPUT...\n"
            "       (options may come anywhere; the old form `imcap merge OUT SHARD...` still works)\n\n"
            "Joins the outputs of `imcap batch --shard I/N` runs (jsonl, csv or tsv, detected\n"
            "from their first line) into OUT ('-' for stdout), exactly as one `imcap batch` over\n"
            "all the inputs would have written it: records in sorted path order, one header.\n"
            "Refuses outputs of different formats, a path found twice, files that are not\n"
            "sorted or end in an incomplete record (an unfinished run: finish it with\n"
            "`imcap batch --resume`), and an OUT that is one of the inputs.\n\n"
            "  -o, --output OUT  the merged file ('-': stdout)\n"
            "  --html DIR   also write DIR/index.html, the gallery of all the records, linking\n"
            "               the thumbnails and viewers the shards wrote with --html DIR\n"
            "  -q, --quiet  no summary on stderr\n\n"
            "Exit: 0 merged, 2 usage error, 3 an input is missing, malformed or inconsistent,\n"
            "or OUT cannot be written.\n");
}

typedef struct {
    bw_reader r;
    bw_parsed p; /* the current record (p.path NULL when done) */
    int live;
} shard;

/* Advances s; returns 0 or -1 after printing why. */
static int advance(shard *s) {
    char *prev = s->p.path; /* kept to check the order */
    s->p.path = NULL;
    bw_parsed_free(&s->p);
    int rc = bw_reader_next(&s->r, &s->p);
    int ok = 0;
    if (rc == 1) {
        if (prev && strcmp(prev, s->p.path) >= 0) {
            fprintf(stderr, "imcap merge: %s:%lld: records are not in sorted path order (not a finished imcap batch "
                            "output?)\n", s->r.name, s->r.line - 1);
            ok = -1;
        }
    } else if (rc == 0) {
        s->live = 0;
    } else if (rc == 2) {
        fprintf(stderr, "imcap merge: %s: the last record is incomplete (an unfinished run? finish it with "
                        "imcap batch --resume)\n", s->r.name);
        ok = -1;
    } else {
        fprintf(stderr, "imcap merge: %s\n", s->r.msg);
        ok = -1;
    }
    free(prev);
    return ok;
}

int run_merge(int argc, char **argv) {
    const char *html = NULL, *out_path = NULL, *output = NULL;
    int quiet = 0, first = 0;
    const cli_opt opts[] = {
        CLI_OPT_OUTPUT(&output),
        CLI_OPT_QUIET(&quiet),
        {"html", 0, CLI_STR, &html, 0, 0, NULL, NULL},
        CLI_END,
    };
    int pr = cli_parse("merge", argc, argv, opts, usage, &first);
    if (pr) return cli_parse_exit(pr);
    if (html && !*html) {
        fprintf(stderr, "imcap merge: --html needs a folder\n");
        return EXIT_USAGE;
    }
    if (!output) { /* the old form: OUT first */
        if (argc - first >= 2)
            fprintf(stderr, "imcap merge: note: OUT as the first argument is the old form; use -o %s\n", argv[first]);
        output = first < argc ? argv[first++] : NULL;
    }
    if (!output || argc - first < 1) {
        fprintf(stderr, "imcap merge: give -o OUT and at least one shard output\n");
        usage(stderr);
        return EXIT_USAGE;
    }
    out_path = strcmp(output, "-") ? output : NULL;
    char **names = argv + first;
    int k = argc - first;

    /* OUT must not be an input, and no input may be given twice. */
    bw_fileid *ids = calloc((size_t)k + 1, sizeof *ids);
    if (!ids) { fprintf(stderr, "imcap merge: out of memory\n"); return EXIT_FATAL; }
    int have_out = out_path && bw_fileid_of(out_path, &ids[k]) == 0;
    for (int i = 0; i < k; i++) {
        size_t len = strlen(names[i]);
        if (len > 8 && !strcmp(names[i] + len - 8, ".partial")) {
            fprintf(stderr, "imcap merge: %s is the file of an unfinished run; finish it with imcap batch --resume "
                            "and merge its output\n", names[i]);
            free(ids);
            return EXIT_USAGE;
        }
        if (bw_fileid_of(names[i], &ids[i]) != 0) {
            fprintf(stderr, "imcap merge: %s: %s\n", names[i], strerror(errno));
            free(ids);
            return EXIT_FATAL;
        }
        if (have_out && ids[i].dev == ids[k].dev && ids[i].ino == ids[k].ino) {
            fprintf(stderr, "imcap merge: refusing to write over an input: %s is the output\n", names[i]);
            free(ids);
            return EXIT_USAGE;
        }
        for (int j = 0; j < i; j++)
            if (ids[i].dev == ids[j].dev && ids[i].ino == ids[j].ino) {
                fprintf(stderr, "imcap merge: %s and %s are the same file\n", names[j], names[i]);
                free(ids);
                return EXIT_FATAL;
            }
    }
    free(ids);

    int rc = EXIT_FATAL;
    shard *s = calloc((size_t)k, sizeof *s);
    imcap_atomic_file af = {0};
    imcap_gallery *gallery = NULL;
    imcap_error err;
    FILE *out = stdout;
    int known = -1; /* index of the first shard whose format is known */
    int jsonl_ms = -1;
    if (!s) goto done;
    for (int i = 0; i < k; i++) {
        if (bw_reader_open(&s[i].r, names[i]) != 0) {
            fprintf(stderr, "imcap merge: %s\n", s[i].r.msg);
            goto done;
        }
        s[i].live = s[i].r.known;
        if (!s[i].r.known) continue;
        if (known < 0) known = i;
        else if (s[i].r.fmt != s[known].r.fmt || s[i].r.timing != s[known].r.timing ||
                 (s[i].r.fmt != BW_JSONL && s[i].r.domain != s[known].r.domain)) {
            fprintf(stderr, "imcap merge: %s is %s%s%s but %s is %s%s%s: shard outputs must have one format\n",
                    names[known], bw_format_name(s[known].r.fmt), s[known].r.timing ? "" : " without ms",
                    s[known].r.fmt != BW_JSONL && !s[known].r.domain ? " without domain columns" : "", names[i],
                    bw_format_name(s[i].r.fmt), s[i].r.timing ? "" : " without ms",
                    s[i].r.fmt != BW_JSONL && !s[i].r.domain ? " without domain columns" : "");
            goto done;
        }
        if (advance(&s[i])) goto done;
        if (s[i].live && s[i].r.fmt == BW_JSONL) {
            if (jsonl_ms < 0) jsonl_ms = s[i].p.has_ms;
            else if (jsonl_ms != s[i].p.has_ms) {
                fprintf(stderr, "imcap merge: some jsonl inputs have the ms field and others not (--no-timing): "
                                "shard outputs must have one format\n");
                goto done;
            }
        }
    }
    if (known < 0) {
        fprintf(stderr, "imcap merge: warning: every input is empty\n");
    }
    if (out_path) {
        if (imcap_atomic_open(&af, out_path, &err) != IMCAP_OK) {
            fprintf(stderr, "imcap merge: %s\n", err.msg);
            goto done;
        }
        out = af.f;
    }
    if (html) {
        if (cli_make_dirs(html) != 0) {
            fprintf(stderr, "imcap merge: %s: cannot create the folder: %s\n", html, strerror(errno));
            goto done;
        }
        if (imcap_gallery_open(html, "imcap merge", &gallery, &err) != IMCAP_OK) {
            fprintf(stderr, "imcap merge: %s\n", err.msg);
            goto done;
        }
    }
    if (known >= 0) {
        imcap_buf h = {0};
        bw_write_header(&h, s[known].r.fmt, s[known].r.timing, s[known].r.domain);
        int bad = h.oom || (h.len && fwrite(h.s, 1, h.len, out) != h.len);
        imcap_buf_free(&h);
        if (bad) {
            fprintf(stderr, "imcap merge: cannot write the header\n");
            goto done;
        }
    }
    size_t n_records = 0, n_errors = 0;
    for (;;) {
        int best = -1;
        for (int i = 0; i < k; i++) {
            if (!s[i].live) continue;
            if (best < 0) {
                best = i;
                continue;
            }
            int c = strcmp(s[i].p.path, s[best].p.path);
            if (c == 0) {
                fprintf(stderr, "imcap merge: %s has a record in both %s and %s: were two shards run with the same "
                                "--shard, or one output given twice?\n", s[i].p.path, names[best], names[i]);
                goto done;
            }
            if (c < 0) best = i;
        }
        if (best < 0) break;
        shard *b = &s[best];
        if (fwrite(b->r.rec.s, 1, b->r.rec.len, out) != b->r.rec.len) {
            fprintf(stderr, "imcap merge: %s: write failed: %s\n", out_path ? out_path : "stdout", strerror(errno));
            goto done;
        }
        n_records++;
        n_errors += b->p.error != NULL;
        if (gallery && bw_gallery_add(gallery, html, &b->p, &err) != IMCAP_OK) {
            fprintf(stderr, "imcap merge: %s\n", err.msg);
            goto done;
        }
        if (advance(b)) goto done;
    }
    if (out_path) {
        if (imcap_atomic_commit(&af, &err) != IMCAP_OK) {
            fprintf(stderr, "imcap merge: %s\n", err.msg);
            goto done;
        }
    } else if (fflush(stdout) != 0) {
        fprintf(stderr, "imcap merge: stdout: write failed: %s\n", strerror(errno));
        goto done;
    }
    if (gallery) {
        imcap_status st = imcap_gallery_commit(gallery, &err);
        gallery = NULL;
        if (st != IMCAP_OK) {
            fprintf(stderr, "imcap merge: %s\n", err.msg);
            goto done;
        }
    }
    if (!quiet)
        fprintf(stderr, "imcap merge: %zu record%s from %d file%s, %zu with an error%s%s\n", n_records,
                n_records == 1 ? "" : "s", k, k == 1 ? "" : "s", n_errors, out_path ? " -> " : "",
                out_path ? out_path : "");
    rc = EXIT_ALL_OK;
done:
    if (af.f) imcap_atomic_abort(&af);
    imcap_gallery_abort(gallery);
    if (s)
        for (int i = 0; i < k; i++) {
            bw_parsed_free(&s[i].p);
            bw_reader_close(&s[i].r);
        }
    free(s);
    return rc;
}
