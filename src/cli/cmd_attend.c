/* cmd_attend.c — `imcap attend`: attention overlays, a contact sheet and an
 * offline HTML viewer per image. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "args.h"
#include "cli.h"
#include "render/render.h"
#include "util/util.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: imcap attend [-m M] [--beam K] [--colormap viridis|inferno|jet] [--alpha A]\n"
            "                    [--max-side PX] [--tile PX] -o OUTDIR IMAGE...\n"
            "                    (options may come anywhere; -- ends them)\n\n"
            "Captions each IMAGE and writes into OUTDIR (created if missing):\n"
            "  <stem>_<NN>_<word>.png  the image with the attention map of word NN (00, 01, ...,\n"
            "                          the final <end> included) blended over it\n"
            "  <stem>_sheet.png        contact sheet: the caption, the original and one\n"
            "                          labelled tile (word, probability) per word\n"
            "  <stem>.html             offline viewer: hover or click a word, arrow keys step;\n"
            "                          with --beam K > 1 every hypothesis can be viewed\n"
            "<stem> is the image's file name without its extension and <word> the word, both\n"
            "reduced to letters, digits, '-', '_' and '.' (anything else becomes '_', runs\n"
            "collapse, leading/trailing '_' '.' '-' are dropped, 48 bytes at most). When two\n"
            "images would write the same file, the later stem gets -2, -3, ...\n"
            "Maps are scaled to their maximum, upsampled bilinearly and coloured.\n\n"
            "  -m, --model M    model file (default: $IMCAP_MODEL, else the shipped model)\n"
            "  --beam K         beam width, 1 = greedy (default 3)\n"
            "  --colormap NAME  viridis (default), inferno or jet\n"
            "  --alpha A        weight of the colours in the blend, 0..1 (default 0.6)\n"
            "  --max-side PX    overlays and viewer: scale the image down to at most PX on its\n"
            "                   longer side, 0 = never (default 512)\n"
            "  --tile PX        contact-sheet tile size (default 224)\n"
            "  -o, --output DIR output folder (required)\n\n"
            "stdout: one line per image: PATH<TAB>caption<TAB>OUTDIR/<stem>.html\n"
            "Errors go to stderr, one line per failed image; the others are still processed.\n"
            "Exit: 0 all done, 1 some images failed, 2 usage error, 3 model not loadable or\n"
            "OUTDIR not writable.\n");
}


typedef struct {
    char **v;
    int n, cap;
} strset;

static int strset_has(const strset *s, const char *x) {
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->v[i], x)) return 1;
    return 0;
}

/* 0, or -1 out of memory (the set unchanged) */
static int strset_add(strset *s, const char *x) {
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 64;
        char **g = realloc(s->v, sizeof *g * (size_t)cap);
        if (!g) return -1;
        s->v = g, s->cap = cap;
    }
    char *copy = strdup(x);
    if (!copy) return -1;
    s->v[s->n++] = copy;
    return 0;
}

static void strset_free(strset *s) {
    for (int i = 0; i < s->n; i++) free(s->v[i]);
    free(s->v);
}

typedef struct {
    dev_t dev;
    ino_t ino;
} file_id;

/* The output names of one image with the given stem. */
static int plan(const imcap_result *r, const char *stem, strset *names) {
    char suffix[IMCAP_NAME_MAX + 32];
    imcap_buf b = {0};
    const imcap_hypothesis *h = &r->hyps[0];
    for (int k = 0; k <= h->n_tokens + 1; k++) {
        if (k < h->n_tokens) imcap_render_overlay_suffix(k, h->words[k], suffix, sizeof suffix);
        else snprintf(suffix, sizeof suffix, "%s", k == h->n_tokens ? "_sheet.png" : ".html");
        b.len = 0;
        imcap_buf_printf(&b, "%s%s", stem, suffix);
        if (b.oom || strset_add(names, b.s) != 0) {
            b.oom = 1;
            break;
        }
    }
    int oom = b.oom;
    imcap_buf_free(&b);
    return oom ? -1 : 0;
}

/* A stem for this image whose files clash neither with files written
 * earlier in this run nor with any input image. 0, or -1 out of memory. */
static int choose_stem(const char *path, const imcap_result *r, const char *outdir, strset *written,
                       const file_id *inputs, int n_inputs, char *stem, size_t cap) {
    char base[IMCAP_NAME_MAX + 1];
    imcap_render_stem(path, base, sizeof base);
    for (int attempt = 1;; attempt++) {
        if (attempt == 1) snprintf(stem, cap, "%s", base);
        else snprintf(stem, cap, "%s-%d", base, attempt);
        strset names = {0};
        if (plan(r, stem, &names) != 0) {
            strset_free(&names);
            return -1;
        }
        int clash = 0, oom = 0;
        imcap_buf full = {0};
        for (int i = 0; i < names.n && !clash; i++) {
            if (strset_has(written, names.v[i])) clash = 1;
            full.len = 0;
            imcap_buf_printf(&full, "%s/%s", outdir, names.v[i]);
            struct stat st;
            if (full.oom) {
                oom = 1;
                break;
            }
            if (!clash && stat(full.s, &st) == 0)
                for (int j = 0; j < n_inputs; j++)
                    if (inputs[j].dev == st.st_dev && inputs[j].ino == st.st_ino) clash = 1;
        }
        imcap_buf_free(&full);
        if (!clash && !oom)
            for (int i = 0; i < names.n && !oom; i++) oom = strset_add(written, names.v[i]) != 0;
        strset_free(&names);
        if (oom) return -1;
        if (!clash) return 0;
    }
}

int run_attend(int argc, char **argv) {
    const char *model_path = NULL, *outdir = NULL;
    imcap_options opt;
    imcap_options_default(&opt);
    imcap_render_options ro;
    imcap_render_options_default(&ro);
    const char *colormap = NULL;
    double alpha = ro.alpha;
    int first = 0;
    const cli_opt opts[] = {
        CLI_OPT_MODEL(&model_path),
        CLI_OPT_OUTPUT(&outdir),
        {"beam", 0, CLI_INT, &opt.beam, 1, 1000, NULL, NULL},
        {"colormap", 0, CLI_STR, &colormap, 0, 0, NULL, NULL},
        {"max-side", 0, CLI_INT, &ro.max_side, 0, IMCAP_MAX_SIDE, NULL, NULL},
        {"tile", 0, CLI_INT, &ro.tile_side, 16, 4096, NULL, NULL},
        {"alpha", 0, CLI_FLOAT, &alpha, 0, 1, NULL, NULL},
        CLI_END,
    };
    int pr = cli_parse("attend", argc, argv, opts, usage, &first);
    if (pr) return cli_parse_exit(pr);
    ro.alpha = (float)alpha;
    if (colormap && imcap_colormap_parse(colormap, &ro.colormap)) {
        fprintf(stderr, "imcap attend: --colormap: '%s' is not viridis, inferno or jet\n", colormap);
        usage(stderr);
        return EXIT_USAGE;
    }
    int n = argc - first;
    char **images = calloc((size_t)n + 1, sizeof *images);
    if (!images) { fprintf(stderr, "imcap attend: out of memory\n"); return EXIT_FATAL; }
    for (int i = 0; i < n; i++) images[i] = argv[first + i];
    if (!outdir) {
        fprintf(stderr, "imcap attend: -o OUTDIR is required\n");
        goto usage_error;
    }
    if (n == 0) {
        fprintf(stderr, "imcap attend: no images given\n");
        goto usage_error;
    }
    if (cli_make_dirs(outdir) != 0 || access(outdir, W_OK | X_OK) != 0) {
        fprintf(stderr, "imcap attend: %s: cannot create the output folder: %s\n", outdir, strerror(errno));
        free(images);
        return EXIT_FATAL;
    }
    cli_set_threads(0);
    imcap_model *m = cli_load_model(model_path);
    if (!m) {
        free(images);
        return EXIT_FATAL;
    }
    imcap_workspace *ws = imcap_workspace_new(m);
    file_id *ids = calloc((size_t)n, sizeof *ids);
    if (!ws || !ids) {
        fprintf(stderr, "imcap attend: out of memory\n");
        imcap_workspace_free(ws);
        imcap_model_free(m);
        free(ids);
        free(images);
        return EXIT_FATAL;
    }
    int n_ids = 0;
    for (int i = 0; i < n; i++) {
        struct stat st;
        if (stat(images[i], &st) == 0) ids[n_ids].dev = st.st_dev, ids[n_ids++].ino = st.st_ino;
    }
    strset written = {0};
    int failures = 0, stdout_failed = 0;
    for (int i = 0; i < n; i++) {
        imcap_error err;
        imcap_image img = {0};
        imcap_result *r = NULL;
        imcap_status s = imcap_image_load(images[i], &img, &err);
        if (s) {
            fprintf(stderr, "imcap attend: %s\n", err.msg);
            failures++;
            continue;
        }
        s = imcap_caption_image(m, ws, &img, &opt, &r, &err);
        if (s) {
            fprintf(stderr, "imcap attend: %s: %s\n", images[i], err.msg);
        } else {
            char stem[IMCAP_NAME_MAX + 16];
            if (choose_stem(images[i], r, outdir, &written, ids, n_ids, stem, sizeof stem) != 0)
                s = imcap_fail(&err, IMCAP_E_NOMEM, "out of memory choosing the output names");
            else s = imcap_render_write(&img, r, outdir, stem, images[i], &ro, IMCAP_RENDER_ALL, &err);
            if (s) fprintf(stderr, "imcap attend: %s: %s\n", images[i], err.msg);
            else {
                char *viewer = imcap_path_join(outdir, stem, ".html");
                if (!viewer) {
                    s = IMCAP_E_NOMEM;
                    fprintf(stderr, "imcap attend: %s: out of memory\n", images[i]);
                } else {
                    /* the line format caption's plain output has: paths tsv-escaped */
                    imcap_buf line = {0};
                    imcap_buf_tsv_field(&line, images[i]);
                    imcap_buf_printf(&line, "\t%s\t", r->hyps[0].text);
                    imcap_buf_tsv_field(&line, viewer);
                    imcap_buf_append(&line, "\n", 1);
                    if (line.oom) {
                        s = IMCAP_E_NOMEM;
                        fprintf(stderr, "imcap attend: %s: out of memory\n", images[i]);
                    } else if (cli_stdout_write("attend", line.s, line.len)) {
                        stdout_failed = 1;
                    }
                    imcap_buf_free(&line);
                }
                free(viewer);
                cli_warn_domain("attend", images[i], r->in_domain, r->domain_score);
            }
        }
        if (s) failures++;
        imcap_result_free(r);
        imcap_image_free(&img);
    }
    strset_free(&written);
    free(ids);
    imcap_workspace_free(ws);
    imcap_model_free(m);
    free(images);
    return stdout_failed ? EXIT_FATAL : failures ? EXIT_SOME_FAILED : EXIT_ALL_OK;
usage_error:
    usage(stderr);
    free(images);
    return EXIT_USAGE;
}
