/* cmd_caption.c — `imcap caption`: one line (or JSON object) per image. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "util/util.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: imcap caption [OPTIONS] IMAGE... (options may come anywhere; -- ends them)\n\n"
            "Captions each IMAGE (`-`: an image's bytes on stdin). Output on stdout, in order:\n"
            "  plain   one line per image: PATH<TAB>caption, with \\, tab, newline and CR in\n"
            "          PATH written as \\\\, \\t, \\n, \\r (as imcap batch's tsv)\n"
            "  --json  one JSON object per line, the fields of imcap batch's jsonl records:\n"
            "          path, caption, score, [domain_score, in_domain,] words, tokens,\n"
            "          logprobs, finished, grid [H, W], attention [[H*W floats] per token]\n"
            "          (words/tokens/logprobs/attention cover every emitted token, the final\n"
            "          <end> included); an image that fails is {\"path\": ..., \"error\": ...}.\n"
            "          Bytes of a path that are not UTF-8 are written as \\udcXX.\n\n"
            "  -m, --model M      model file (default: $IMCAP_MODEL, else the shipped model)\n"
            "  --beam K           beam width, 1 = greedy (default 3)\n"
            "  -j, --threads N    worker threads over images (default: all cores)\n"
            "  --files-from F     also caption the paths listed in F, one per line (-: stdin)\n"
            "  --trace FILE       write the spec's trace file for the first image\n"
            "  --max-length T     stop after T tokens (default: the model's max_length)\n"
            "  --length-norm A    rank finished beams by score / length^A (default: off)\n"
            "  -q, --quiet        no warnings on stderr (errors still go there)\n\n"
            "Errors go to stderr, one line per failed image; the others are still captioned.\n"
            "Exit: 0 all captioned, 1 some images failed, 2 usage error, 3 model not loadable or\n"
            "the --trace file not written (the captions are still printed).\n");
}

static void json_record(imcap_buf *b, const char *path, const imcap_result *r) {
    const imcap_hypothesis *h = &r->hyps[0];
    int L = r->grid_h * r->grid_w;
    imcap_buf_append(b, "{\"path\": ", 9);
    imcap_buf_json_string(b, path);
    imcap_buf_append(b, ", \"caption\": ", 13);
    imcap_buf_json_string(b, h->text);
    imcap_buf_append(b, ", \"score\": ", 11);
    imcap_buf_number(b, h->score, 9);
    imcap_buf_append(b, ", ", 2);
    cli_domain_json(b, r);
    imcap_buf_append(b, "\"words\": [", 10);
    for (int t = 0; t < h->n_tokens; t++) {
        if (t) imcap_buf_append(b, ", ", 2);
        imcap_buf_json_string(b, h->words[t]);
    }
    imcap_buf_append(b, "], \"tokens\": [", 14);
    for (int t = 0; t < h->n_tokens; t++) imcap_buf_printf(b, "%s%d", t ? ", " : "", h->tokens[t]);
    imcap_buf_append(b, "], \"logprobs\": [", 16);
    for (int t = 0; t < h->n_tokens; t++) {
        if (t) imcap_buf_append(b, ", ", 2);
        imcap_buf_float(b, h->logprobs[t]);
    }
    imcap_buf_printf(b, "], \"finished\": %s, \"grid\": [%d, %d], \"attention\": [", h->finished ? "true" : "false",
                     r->grid_h, r->grid_w);
    for (int t = 0; t < h->n_tokens; t++) {
        imcap_buf_append(b, t ? ", [" : "[", t ? 3 : 1);
        for (int i = 0; i < L; i++) {
            if (i) imcap_buf_append(b, ",", 1);
            imcap_buf_float(b, h->attention[(size_t)t * L + i]);
        }
        imcap_buf_append(b, "]", 1);
    }
    imcap_buf_append(b, "]}\n", 3);
}

static int write_trace(const imcap_model *m, const char *path, const imcap_options *opt, const char *trace) {
    imcap_error err;
    imcap_image img;
    imcap_result *r = NULL;
    if (imcap_image_load(path, &img, &err) != IMCAP_OK) {
        fprintf(stderr, "imcap caption: %s\n", err.msg);
        return -1;
    }
    imcap_status s = imcap_caption_trace(m, &img, opt, trace, &r, &err);
    if (s != IMCAP_OK) fprintf(stderr, "imcap caption: %s\n", err.msg);
    imcap_result_free(r);
    imcap_image_free(&img);
    return s == IMCAP_OK ? 0 : -1;
}

/* Images decoded together per thread (imcap_caption_many); the output does
 * not depend on it. */
#define CAPTION_BLOCK 32

typedef struct {
    imcap_buf out;  /* the image's line or JSON object */
    int ok;
    double domain_score;
    int in_domain;
    char err[1200];
} caption_slot;

typedef struct {
    char **images;
    int json, quiet;
    caption_slot *slots;
    size_t window;
    int failures;
    int stdout_failed;
    unsigned char *stdin_bytes; /* the image `-` stands for, read once */
    size_t stdin_size;
} caption_run;

static int is_stdin(const char *path) { return !strcmp(path, "-"); }

static imcap_status run_load(void *ctx, size_t i, imcap_image *img, imcap_error *err) {
    caption_run *run = ctx;
    if (is_stdin(run->images[i]))
        return imcap_image_load_memory(run->stdin_bytes, run->stdin_size, "(stdin)", img, err);
    return imcap_image_load(run->images[i], img, err);
}

static void run_done(void *ctx, size_t i, imcap_result *r, imcap_status st, const imcap_error *err) {
    caption_run *run = ctx;
    caption_slot *sl = &run->slots[i % run->window];
    const char *path = run->images[i];
    sl->out.len = 0, sl->out.oom = 0; /* the slot's previous image may have run out of memory */
    sl->ok = st == IMCAP_OK;
    if (sl->ok) {
        sl->domain_score = r->domain_score, sl->in_domain = r->in_domain;
        if (run->json) {
            json_record(&sl->out, path, r);
        } else {
            imcap_buf_tsv_field(&sl->out, path);
            imcap_buf_printf(&sl->out, "\t%s\n", r->hyps[0].text);
        }
        if (sl->out.oom) sl->ok = 0, snprintf(sl->err, sizeof sl->err, "%.1000s: out of memory", path);
    } else if (imcap_msg_names(err->msg, path)) {
        snprintf(sl->err, sizeof sl->err, "%s", err->msg);
    } else {
        snprintf(sl->err, sizeof sl->err, "%.100s: %.1000s", path, err->msg);
    }
    if (!sl->ok && run->json) { /* the failure is a record too, as in imcap batch */
        sl->out.len = 0, sl->out.oom = 0;
        imcap_buf_append(&sl->out, "{\"path\": ", 9);
        imcap_buf_json_string(&sl->out, path);
        imcap_buf_append(&sl->out, ", \"error\": ", 11);
        imcap_buf_json_string(&sl->out, sl->err);
        imcap_buf_append(&sl->out, "}\n", 2);
    }
    imcap_result_free(r);
}

static void run_emit(void *ctx, size_t i) {
    caption_run *run = ctx;
    caption_slot *sl = &run->slots[i % run->window];
    if ((sl->ok || (run->json && !sl->out.oom)) && cli_stdout_write("caption", sl->out.s, sl->out.len))
        run->stdout_failed = 1;
    if (sl->ok) {
        if (!run->json && !run->quiet) cli_warn_domain("caption", run->images[i], sl->in_domain, sl->domain_score);
    } else {
        fprintf(stderr, "imcap caption: %s\n", sl->err);
        run->failures++;
    }
}

int run_caption(int argc, char **argv) {
    const char *model_path = NULL, *trace = NULL, *files_from = NULL;
    int trace_failed = 0;
    int json = 0, threads = 0, quiet = 0, norm_given = 0;
    double alpha = 0;
    imcap_options opt;
    imcap_options_default(&opt);
    const cli_opt opts[] = {
        CLI_OPT_MODEL(&model_path),
        CLI_OPT_THREADS(&threads),
        CLI_OPT_JSON(&json),
        CLI_OPT_QUIET(&quiet),
        {"beam", 0, CLI_INT, &opt.beam, 1, 1000, NULL, NULL},
        {"max-length", 0, CLI_INT, &opt.max_length, 1, 1024, NULL, NULL},
        {"length-norm", 0, CLI_FLOAT, &alpha, 0, 10, &norm_given, NULL},
        {"trace", 0, CLI_STR, &trace, 0, 0, NULL, NULL},
        {"files-from", 0, CLI_STR, &files_from, 0, 0, NULL, NULL},
        CLI_END,
    };
    int first = 0, pr = cli_parse("caption", argc, argv, opts, usage, &first);
    if (pr) return cli_parse_exit(pr);
    if (norm_given) opt.length_norm = 1, opt.length_alpha = (float)alpha;
    /* the images: the arguments, then --files-from's lines */
    char **images;
    int n, rc = cli_inputs("caption", argv + first, argc - first, files_from, &images, &n), from_stdin = 0;
    if (rc) return rc;
    rc = EXIT_FATAL;
    caption_run run = {0};
    imcap_model *m = NULL;
    for (int i = 0; i < n; i++) from_stdin += is_stdin(images[i]);
    if (n <= 0) {
        fprintf(stderr, "imcap caption: no images given\n");
        usage(stderr);
        rc = EXIT_USAGE;
        goto done;
    }
    if (from_stdin && files_from && is_stdin(files_from)) {
        fprintf(stderr, "imcap caption: stdin cannot hold both the list of paths (--files-from -) and an image (-)\n");
        rc = EXIT_USAGE;
        goto done;
    }
    if (from_stdin) {
        imcap_error e;
        if (imcap_read_stream(stdin, "(stdin)", &run.stdin_bytes, &run.stdin_size, &e) != IMCAP_OK) {
            fprintf(stderr, "imcap caption: %s\n", e.msg);
            goto done;
        }
    }
    cli_set_threads(threads);
    if (!(m = cli_load_model(model_path))) goto done;

    if (trace) {
        if (is_stdin(images[0])) fprintf(stderr, "imcap caption: --trace needs a file, not stdin; no trace written\n");
        else if (write_trace(m, images[0], &opt, trace) != 0) {
            fprintf(stderr, "imcap caption: no trace written\n");
            trace_failed = 1; /* a full disk must not look like success */
        }
    }
    run.images = images, run.json = json, run.quiet = quiet;
    run.window = imcap_caption_many_window(omp_get_max_threads(), CAPTION_BLOCK);
    run.slots = calloc(run.window, sizeof *run.slots);
    imcap_many_io io = {run_load, run_done, run_emit, &run, NULL, NULL};
    imcap_error err;
    if (!run.slots) {
        fprintf(stderr, "imcap caption: out of memory\n");
        goto done;
    }
    if (imcap_caption_many(m, (size_t)n, &opt, CAPTION_BLOCK, 0, &io, NULL, &err) != IMCAP_OK) {
        fprintf(stderr, "imcap caption: %s\n", err.msg);
        run.failures++;
    }
    rc = trace_failed || run.stdout_failed ? EXIT_FATAL : run.failures ? EXIT_SOME_FAILED : EXIT_ALL_OK;
done:
    for (size_t k = 0; run.slots && k < run.window; k++) imcap_buf_free(&run.slots[k].out);
    free(run.slots);
    free(run.stdin_bytes);
    cli_inputs_free(images, n, argc - first);
    imcap_model_free(m);
    return rc;
}
