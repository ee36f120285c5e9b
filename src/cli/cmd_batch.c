/* cmd_batch.c — `imcap batch`: argv to imcap_batch_run (src/batch/batch.c,
 * which has the rules of the output, resume and parallelism); progress,
 * failed images and the summary on stderr; signals stop the run. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "cli.h"
#include "batch/batch_walk.h"
#include "util/util.h"

#define PLAIN_PROGRESS_SECONDS 10.0

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
            "  -q, --quiet        no progress or summary on stderr (errors still appear)\n"
            "  --json             the summary as one JSON object on stdout (needs -o OUT): inputs,\n"
            "                     prior, captioned, failed, seconds, images_per_s, output\n\n"
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

static void on_signal(int sig) { g_stop = sig; }

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

/* ------------------------------------------------------------ reports */

typedef struct {
    int quiet, tty;
    double last_report;
    long stop_after; /* tests: interrupt after this many records (IMCAP_BATCH_STOP_AFTER) */
} report;

static void fmt_duration(double s, char *out, size_t n) {
    if (!(s >= 0) || s > 1e8) snprintf(out, n, "?");
    else if (s < 60) snprintf(out, n, "%.0fs", s);
    else if (s < 3600) snprintf(out, n, "%dm%02ds", (int)(s / 60), (int)s % 60);
    else snprintf(out, n, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
}

static void on_record(void *ctx, size_t written, size_t total, double el) {
    report *r = ctx;
    if (r->stop_after > 0 && (long)written == r->stop_after) raise(SIGINT);
    if (r->quiet) return;
    double now = imcap_now();
    if (now - r->last_report < (r->tty ? 0.25 : PLAIN_PROGRESS_SECONDS)) return;
    r->last_report = now;
    double rate = el > 0 ? written / el : 0;
    char eta[32];
    fmt_duration(rate > 0 ? (total - written) / rate : -1, eta, sizeof eta);
    fprintf(stderr, "%simcap batch: %zu/%zu images (%.0f%%), %.1f images/s, ETA %s%s", r->tty ? "\r\033[K" : "",
            written, total, total ? 100.0 * written / total : 100.0, rate, eta, r->tty ? "" : "\n");
    fflush(stderr);
}

static void end_progress(report *r) {
    if (!r->quiet && r->tty && r->last_report > 0) fprintf(stderr, "\r\033[K");
}

/* -q silences progress, notes and the summary, not errors */
static void on_note(void *ctx, const char *msg) {
    if (!((report *)ctx)->quiet) fprintf(stderr, "imcap batch: %s\n", msg);
}

static void on_failed(void *ctx, const char *msg) {
    report *r = ctx;
    if (!r->quiet && r->tty && r->last_report > 0) fprintf(stderr, "\r\033[K");
    fprintf(stderr, "imcap batch: %s\n", msg);
}

static int to_stdout(void *ctx, const void *data, size_t n) {
    (void)ctx;
    return cli_stdout_write("batch", data, n);
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

/* ------------------------------------------------------------ the run */

static void summary_json(const imcap_batch_options *B, const imcap_batch_summary *sum) {
    imcap_buf b = {0};
    imcap_buf_printf(&b, "{\"inputs\": %zu, \"prior\": %zu, \"captioned\": %zu, \"failed\": %zu, \"seconds\": ",
                     sum->inputs, sum->prior, sum->written, sum->failed);
    imcap_buf_number(&b, sum->seconds, 6);
    imcap_buf_append(&b, ", \"images_per_s\": ", 18);
    imcap_buf_number(&b, sum->seconds > 0 ? sum->written / sum->seconds : 0.0, 6);
    imcap_buf_append(&b, ", \"output\": ", 12);
    imcap_buf_json_string(&b, B->out);
    imcap_buf_append(&b, "}\n", 2);
    if (b.oom) fprintf(stderr, "imcap batch: out of memory\n");
    else cli_stdout_write("batch", b.s, b.len);
    imcap_buf_free(&b);
}

static int batch_run(imcap_batch_options *B, const char *model_path, int quiet, int json) {
    cli_set_threads(B->threads);
    imcap_model *m = cli_load_model(model_path);
    if (!m) return EXIT_FATAL;
    const char *sa = getenv("IMCAP_BATCH_STOP_AFTER");
    report r = {quiet, isatty(STDERR_FILENO), 0, sa ? atol(sa) : 0};
    imcap_batch_callbacks cb = {&r, to_stdout, on_note, on_failed, on_record};
    install_signals();
    B->stop = &g_stop;
    imcap_batch_summary sum;
    imcap_error err;
    imcap_status s = imcap_batch_run(m, B, &cb, &sum, &err);
    end_progress(&r);
    imcap_model_free(m);
    if (s == IMCAP_E_INTERRUPTED) {
        int sig = g_stop ? g_stop : SIGINT;
        fprintf(stderr, "imcap batch: %s (%s)\n", err.msg, sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "signal");
        return 128 + sig;
    }
    if (s) {
        fprintf(stderr, "imcap batch: %s\n", err.msg);
        return s == IMCAP_E_ARG ? EXIT_USAGE : EXIT_FATAL;
    }
    if (json) summary_json(B, &sum);
    if (!quiet) {
        fprintf(stderr, "imcap batch: %zu image%s, %zu failed, %.1f images/s (%zu captioned in this run in %.1f s",
                sum.inputs, sum.inputs == 1 ? "" : "s", sum.failed, sum.seconds > 0 ? sum.written / sum.seconds : 0.0,
                sum.written, sum.seconds);
        if (sum.prior) fprintf(stderr, ", %zu from an earlier run", sum.prior);
        fprintf(stderr, ")%s%s\n", B->out ? " -> " : "", B->out ? B->out : "");
    }
    return sum.failed ? EXIT_SOME_FAILED : EXIT_ALL_OK;
}

int run_batch(int argc, char **argv) {
    imcap_batch_options B;
    imcap_batch_options_default(&B);
    int quiet = 0, resume = 0;
    const char *overlays = NULL, *html = NULL;
    const char *model_path = NULL, *fmt_name = NULL;
    int threads = 0, recursive = 0, shard_i = 0, shard_n = 0;
    const char *out = NULL, *shard = NULL, *files_from = NULL;
    int no_timing = 0, first = 0, json = 0;
    const cli_opt opts[] = {
        CLI_OPT_MODEL(&model_path),
        CLI_OPT_OUTPUT(&out),
        CLI_OPT_THREADS(&threads),
        CLI_OPT_QUIET(&quiet),
        CLI_OPT_JSON(&json),
        {"format", 0, CLI_STR, &fmt_name, 0, 0, NULL, NULL},
        {"overlays", 0, CLI_STR, &overlays, 0, 0, NULL, NULL},
        {"html", 0, CLI_STR, &html, 0, 0, NULL, NULL},
        {"shard", 0, CLI_STR, &shard, 0, 0, NULL, NULL},
        {"beam", 0, CLI_INT, &B.caption.beam, 1, 1000, NULL, NULL},
        {"max-length", 0, CLI_INT, &B.caption.max_length, 1, 1024, NULL, NULL},
        {"block", 0, CLI_INT, &B.block, 1, 4096, NULL, NULL},
        {"recursive", 'r', CLI_FLAG, &recursive, 0, 0, NULL, NULL},
        {"resume", 0, CLI_FLAG, &resume, 0, 0, NULL, NULL},
        {"no-timing", 0, CLI_FLAG, &no_timing, 0, 0, NULL, NULL},
        {"files-from", 0, CLI_STR, &files_from, 0, 0, NULL, NULL},
        CLI_END,
    };
    int pr = cli_parse("batch", argc, argv, opts, usage, &first);
    if (pr) return cli_parse_exit(pr);
    if (no_timing) B.timing = 0;
    if (out) B.out = strcmp(out, "-") ? out : NULL;
    B.resume = resume, B.overlays_dir = overlays, B.html_dir = html;
    const char *empty = out && !*out ? "-o" : fmt_name && !*fmt_name ? "--format" : overlays && !*overlays ? "--overlays"
                      : html && !*html ? "--html" : NULL;
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
    char **inputs;
    int n_inputs, rc = cli_inputs("batch", argv + first, argc - first, files_from, &inputs, &n_inputs);
    if (rc) return rc;
    if (n_inputs == 0) {
        fprintf(stderr, "imcap batch: no folders or images given\n");
        goto usage_error;
    }
    bw_format fmt = BW_JSONL;
    if (fmt_name) {
        if (bw_format_parse(fmt_name, &fmt)) {
            fprintf(stderr, "imcap batch: --format: '%s' is not jsonl, csv or tsv\n", fmt_name);
            goto usage_error;
        }
    } else if (B.out && ends_with(B.out, ".csv")) fmt = BW_CSV;
    else if (B.out && ends_with(B.out, ".tsv")) fmt = BW_TSV;
    B.format = (imcap_record_format)fmt;
    if (B.resume && !B.out) {
        fprintf(stderr, "imcap batch: --resume needs -o OUT (the output of the run to continue)\n");
        goto usage_error;
    }
    B.inputs = (const char *const *)inputs, B.n_inputs = n_inputs, B.recursive = recursive;
    B.shard_index = shard_i, B.shard_count = shard_n, B.threads = threads;
    if (json && !B.out) {
        fprintf(stderr, "imcap batch: --json prints the summary on stdout, where the records go without -o OUT\n");
        goto usage_error;
    }
    rc = batch_run(&B, model_path, quiet, json);
    cli_inputs_free(inputs, n_inputs, argc - first);
    return rc;
usage_error:
    usage(stderr);
    cli_inputs_free(inputs, n_inputs, argc - first);
    return EXIT_USAGE;
}
