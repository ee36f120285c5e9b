/* cmd_synth.c — `imcap synth`: writes a synthetic captioned scene data set. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "data/synth.h"
#include "util/util.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: imcap synth --count N --seed S -o DIR [--size PX] [--split-fractions T,V,E] [-j N]\n"
            "                   [-q] [--json]\n"
            "       (-o/--output DIR; --out, the old spelling, still works)\n"
            "\n"
            "Generates N scenes of coloured shapes on textured backgrounds, five captions each:\n"
            "  DIR/images/NNNNNN.png   PX x PX RGB (default %d; %d..%d)\n"
            "  DIR/dataset.json        Karpathy split layout, with per image \"width\", \"height\",\n"
            "                          \"objects\" (shape, colour, size, bbox, bbox_norm, cx, cy) and\n"
            "                          \"mentions\" (per caption, the words naming each object)\n"
            "The same seed gives the same bytes, whatever the thread count.\n"
            "  --split-fractions   train, val, test shares (default 0.8,0.1,0.1); the first scenes\n"
            "                      are train, then val, then test\n"
            "  -j, --threads N     threads (default: all cores)\n"
            "  -q, --quiet         no summary on stderr\n"
            "  --json              the summary as one JSON object on stdout: count, size, output, seconds\n",
            IMCAP_SYNTH_DEFAULT_SIZE, IMCAP_SYNTH_MIN_SIZE, IMCAP_SYNTH_MAX_SIZE);
}

static int parse_fractions(const char *val, double f[3]) {
    if (!val) {
        fprintf(stderr, "imcap synth: --split-fractions needs a value\n");
        return -1;
    }
    const char *p = val;
    for (int k = 0; k < 3; k++) {
        char *end;
        errno = 0;
        f[k] = strtod(p, &end);
        if (errno || end == p || !(f[k] >= 0 && f[k] <= 1) || (k < 2 ? *end != ',' : *end != 0)) {
            fprintf(stderr, "imcap synth: --split-fractions: '%s' is not three numbers in [0, 1] like 0.8,0.1,0.1\n",
                    val);
            return -1;
        }
        p = end + 1;
    }
    double s = f[0] + f[1] + f[2];
    if (s < 1 - 1e-6 || s > 1 + 1e-6) {
        fprintf(stderr, "imcap synth: --split-fractions: '%s' sums to %g, not 1\n", val, s);
        return -1;
    }
    return 0;
}

int run_synth(int argc, char **argv) {
    imcap_synth_params p = {.count = -1, .side = IMCAP_SYNTH_DEFAULT_SIZE, .fractions = {0.8, 0.1, 0.1}};
    const char *out = NULL, *seed = NULL, *fractions = NULL;
    int have_seed = 0, threads = 0, count = -1, first = 0, quiet = 0, json = 0;
    const cli_opt opts[] = {
        CLI_OPT_OUTPUT(&out),
        CLI_OPT_THREADS(&threads),
        CLI_OPT_QUIET(&quiet),
        CLI_OPT_JSON(&json),
        {"count", 0, CLI_INT, &count, 1, 100000000, NULL, NULL},
        {"seed", 0, CLI_STR, &seed, 0, 0, NULL, NULL},
        {"size", 0, CLI_INT, &p.side, IMCAP_SYNTH_MIN_SIZE, IMCAP_SYNTH_MAX_SIZE, NULL, NULL},
        {"split-fractions", 0, CLI_STR, &fractions, 0, 0, NULL, NULL},
        CLI_DEPRECATED("out", CLI_STR, &out, "-o/--output"),
        CLI_END,
    };
    int pr = cli_parse("synth", argc, argv, opts, usage, &first);
    if (pr) return cli_parse_exit(pr);
    if (cli_no_positionals("synth", argc, argv, first, "the folder is -o DIR", usage)) return EXIT_USAGE;
    p.count = count;
    if (seed) {
        char *end;
        errno = 0;
        if (*seed == '-' || (p.seed = strtoull(seed, &end, 10), errno || end == seed || *end)) {
            fprintf(stderr, "imcap synth: --seed: '%s' is not a non-negative integer\n", seed);
            return EXIT_USAGE;
        }
        have_seed = 1;
    }
    if (fractions && parse_fractions(fractions, p.fractions)) return EXIT_USAGE;
    if (p.count < 0 || !have_seed || !out) {
        fprintf(stderr, "imcap synth: --count, --seed and -o DIR are required\n\n");
        usage(stderr);
        return EXIT_USAGE;
    }
    cli_set_threads(threads);
    imcap_error err;
    double t0 = imcap_now();
    if (imcap_synth_generate(&p, out, &err) != IMCAP_OK) {
        fprintf(stderr, "imcap synth: %s\n", err.msg);
        return EXIT_FATAL;
    }
    double seconds = imcap_now() - t0;
    if (!quiet) fprintf(stderr, "imcap synth: %ld scenes of %dx%d px in %s/ (%.1f s)\n", p.count, p.side, p.side, out, seconds);
    if (json) {
        imcap_buf b = {0};
        imcap_buf_printf(&b, "{\"count\": %ld, \"size\": %d, \"output\": ", p.count, p.side);
        imcap_buf_json_string(&b, out);
        imcap_buf_append(&b, ", \"seconds\": ", 13);
        imcap_buf_number(&b, seconds, 6);
        imcap_buf_append(&b, "}\n", 2);
        int bad = b.oom || cli_stdout_write("synth", b.s, b.len);
        imcap_buf_free(&b);
        if (bad) return EXIT_FATAL;
    }
    return EXIT_ALL_OK;
}
