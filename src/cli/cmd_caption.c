/* cmd_caption.c — `imcap caption`: one line (or JSON object) per image. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "util/util.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: imcap caption [--model M] [--beam K] [--threads N] [--json] [--trace FILE]\n"
            "                     [--max-length T] [--length-norm ALPHA] IMAGE...\n\n"
            "Captions each IMAGE. Output on stdout, in the order given:\n"
            "  plain   one line per image: PATH<TAB>caption\n"
            "  --json  one JSON object per line: image, caption, words, tokens, logprobs,\n"
            "          score, finished, grid [H, W], attention [[H*W floats] per token];\n"
            "          words/tokens/logprobs/attention cover every emitted token,\n"
            "          the final <end> included\n\n"
            "  --model M          model file (default: the shipped model)\n"
            "  --beam K           beam width, 1 = greedy (default 3)\n"
            "  --threads N        worker threads over images (default: all cores)\n"
            "  --trace FILE       write the spec's trace file for the first image\n"
            "  --max-length T     stop after T tokens (default: the model's max_length)\n"
            "  --length-norm A    rank finished beams by score / length^A (default: off)\n\n"
            "Errors go to stderr, one line per failed image; the others are still captioned.\n"
            "Exit: 0 all captioned, 1 some images failed, 2 usage error, 3 model not loadable.\n");
}

static void json_record(imcap_buf *b, const char *path, const imcap_result *r) {
    const imcap_hypothesis *h = &r->hyps[0];
    int L = r->grid_h * r->grid_w;
    imcap_buf_append(b, "{\"image\": ", 10);
    imcap_buf_json_string(b, path);
    imcap_buf_append(b, ", \"caption\": ", 13);
    imcap_buf_json_string(b, h->text);
    imcap_buf_append(b, ", \"words\": [", 12);
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
    imcap_buf_printf(b, "], \"score\": %.9g, ", h->score);
    cli_domain_json(b, r);
    imcap_buf_printf(b, "\"finished\": %s, \"grid\": [%d, %d], \"attention\": [", h->finished ? "true" : "false",
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
    int json;
    caption_slot *slots;
    size_t window;
    int failures;
} caption_run;

static imcap_status run_load(void *ctx, size_t i, imcap_image *img, imcap_error *err) {
    return imcap_image_load(((caption_run *)ctx)->images[i], img, err);
}

static void run_done(void *ctx, size_t i, imcap_result *r, imcap_status st, const imcap_error *err) {
    caption_run *run = ctx;
    caption_slot *sl = &run->slots[i % run->window];
    const char *path = run->images[i];
    sl->out.len = 0;
    sl->ok = st == IMCAP_OK;
    if (sl->ok) {
        sl->domain_score = r->domain_score, sl->in_domain = r->in_domain;
        if (run->json) json_record(&sl->out, path, r);
        else imcap_buf_printf(&sl->out, "%s\t%s\n", path, r->hyps[0].text);
        if (sl->out.oom) sl->ok = 0, snprintf(sl->err, sizeof sl->err, "%.1000s: out of memory", path);
    } else if (!strncmp(err->msg, path, strlen(path))) {
        snprintf(sl->err, sizeof sl->err, "%s", err->msg);
    } else {
        snprintf(sl->err, sizeof sl->err, "%.100s: %.1000s", path, err->msg);
    }
    imcap_result_free(r);
}

static void run_emit(void *ctx, size_t i) {
    caption_run *run = ctx;
    caption_slot *sl = &run->slots[i % run->window];
    if (sl->ok) {
        fwrite(sl->out.s, 1, sl->out.len, stdout);
        fflush(stdout);
        if (!run->json) cli_warn_domain("caption", run->images[i], sl->in_domain, sl->domain_score);
    } else {
        fprintf(stderr, "imcap caption: %s\n", sl->err);
        run->failures++;
    }
}

int run_caption(int argc, char **argv) {
    const char *model_path = NULL, *trace = NULL;
    int json = 0, threads = 0;
    imcap_options opt;
    imcap_options_default(&opt);
    int first_image = argc;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return EXIT_ALL_OK; }
        else if (!strcmp(a, "--model")) { if (!v) goto missing; model_path = v, i++; }
        else if (!strcmp(a, "--beam")) { if (cli_parse_int(a, v, 1, 1000, &opt.beam)) return EXIT_USAGE; i++; }
        else if (!strcmp(a, "--threads")) { if (cli_parse_int(a, v, 1, 1024, &threads)) return EXIT_USAGE; i++; }
        else if (!strcmp(a, "--max-length")) { if (cli_parse_int(a, v, 1, 1024, &opt.max_length)) return EXIT_USAGE; i++; }
        else if (!strcmp(a, "--length-norm")) {
            double al;
            if (cli_parse_float(a, v, 0.0, 10.0, &al)) return EXIT_USAGE;
            opt.length_norm = 1, opt.length_alpha = (float)al, i++;
        } else if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "--trace")) { if (!v) goto missing; trace = v, i++; }
        else if (!strcmp(a, "--")) { first_image = i + 1; break; }
        else if (a[0] == '-' && a[1]) { fprintf(stderr, "imcap caption: unknown option '%s'\n", a); usage(stderr); return EXIT_USAGE; }
        else { first_image = i; break; }
        continue;
    missing:
        fprintf(stderr, "imcap caption: %s needs a value\n", a);
        return EXIT_USAGE;
    }
    int n = argc - first_image;
    if (n <= 0) {
        fprintf(stderr, "imcap caption: no images given\n");
        usage(stderr);
        return EXIT_USAGE;
    }
    char **images = argv + first_image;
    cli_set_threads(threads);
    imcap_model *m = cli_load_model(model_path);
    if (!m) return EXIT_FATAL;

    if (trace && write_trace(m, images[0], &opt, trace) != 0) fprintf(stderr, "imcap caption: no trace written\n");
    caption_run run = {images, json, NULL, imcap_caption_many_window(omp_get_max_threads(), CAPTION_BLOCK), 0};
    run.slots = calloc(run.window, sizeof *run.slots);
    imcap_many_io io = {run_load, run_done, run_emit, &run, NULL, NULL};
    imcap_error err;
    if (!run.slots) {
        fprintf(stderr, "imcap caption: out of memory\n");
        imcap_model_free(m);
        return EXIT_FATAL;
    }
    if (imcap_caption_many(m, (size_t)n, &opt, CAPTION_BLOCK, 0, &io, NULL, &err) != IMCAP_OK) {
        fprintf(stderr, "imcap caption: %s\n", err.msg);
        run.failures++;
    }
    for (size_t k = 0; k < run.window; k++) imcap_buf_free(&run.slots[k].out);
    free(run.slots);
    int failures = run.failures;
    imcap_model_free(m);
    return failures ? EXIT_SOME_FAILED : EXIT_ALL_OK;
}
