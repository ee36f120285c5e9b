/* cmd_merge.c — `imcap merge`: argv to imcap_merge (src/batch/merge.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
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
            "  -q, --quiet  no summary on stderr\n"
            "  --json       the summary as one JSON object on stdout (needs -o OUT): records,\n"
            "               errors, inputs, output\n\n"
            "Exit: 0 merged, 2 usage error, 3 an input is missing, malformed or inconsistent,\n"
            "or OUT cannot be written.\n");
}

static int to_stdout(void *ctx, const void *data, size_t n) {
    (void)ctx;
    return cli_stdout_write("merge", data, n);
}

int run_merge(int argc, char **argv) {
    const char *html = NULL, *output = NULL;
    int quiet = 0, first = 0, json = 0;
    const cli_opt opts[] = {
        CLI_OPT_OUTPUT(&output),
        CLI_OPT_QUIET(&quiet),
        CLI_OPT_JSON(&json),
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
    const char *out = strcmp(output, "-") ? output : NULL;
    if (json && !out) {
        fprintf(stderr, "imcap merge: --json prints the summary on stdout, where the records go with -o -\n");
        return EXIT_USAGE;
    }
    imcap_merge_options mo = {html, to_stdout, NULL};
    imcap_merge_summary sum;
    imcap_error err;
    imcap_status s = imcap_merge((const char *const *)argv + first, argc - first, out, &mo, &sum, &err);
    if (s) {
        fprintf(stderr, "imcap merge: %s\n", err.msg);
        return s == IMCAP_E_ARG ? EXIT_USAGE : EXIT_FATAL;
    }
    if (sum.empty) fprintf(stderr, "imcap merge: warning: every input is empty\n");
    if (json) {
        imcap_buf b = {0};
        imcap_buf_printf(&b, "{\"records\": %zu, \"errors\": %zu, \"inputs\": %d, \"output\": ", sum.records,
                         sum.errors, argc - first);
        imcap_buf_json_string(&b, out);
        imcap_buf_append(&b, "}\n", 2);
        int bad = b.oom || cli_stdout_write("merge", b.s, b.len);
        imcap_buf_free(&b);
        if (bad) return EXIT_FATAL;
    }
    if (!quiet)
        fprintf(stderr, "imcap merge: %zu record%s from %d file%s, %zu with an error%s%s\n", sum.records,
                sum.records == 1 ? "" : "s", argc - first, argc - first == 1 ? "" : "s", sum.errors, out ? " -> " : "",
                out ? out : "");
    return EXIT_ALL_OK;
}
