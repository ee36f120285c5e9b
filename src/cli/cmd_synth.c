/* cmd_synth.c — `imcap synth`: writes a synthetic captioned scene data set. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "data/synth.h"
#include "util/util.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: imcap synth --count N --seed S --out DIR [--size PX] [--split-fractions T,V,E] [--threads N]\n"
            "\n"
            "Generates N scenes of coloured shapes on textured backgrounds, five captions each:\n"
            "  DIR/images/NNNNNN.png   PX x PX RGB (default %d; %d..%d)\n"
            "  DIR/dataset.json        Karpathy split layout, with per image \"width\", \"height\",\n"
            "                          \"objects\" (shape, colour, size, bbox, bbox_norm, cx, cy) and\n"
            "                          \"mentions\" (per caption, the words naming each object)\n"
            "The same seed gives the same bytes, whatever the thread count.\n"
            "  --split-fractions   train, val, test shares (default 0.8,0.1,0.1); the first scenes\n"
            "                      are train, then val, then test\n"
            "  --threads N         threads (default: all cores)\n",
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
    const char *out = NULL;
    int have_seed = 0, threads = 0, count = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return EXIT_ALL_OK;
        } else if (!strcmp(a, "--count")) {
            if (cli_parse_int(a, v, 1, 100000000, &count)) return EXIT_USAGE;
            p.count = count;
            i++;
        } else if (!strcmp(a, "--seed")) {
            char *end;
            errno = 0;
            if (!v || *v == '-' || (p.seed = strtoull(v, &end, 10), errno || end == v || *end)) {
                fprintf(stderr, "imcap synth: --seed: '%s' is not a non-negative integer\n", v ? v : "");
                return EXIT_USAGE;
            }
            have_seed = 1;
            i++;
        } else if (!strcmp(a, "--size")) {
            if (cli_parse_int(a, v, IMCAP_SYNTH_MIN_SIZE, IMCAP_SYNTH_MAX_SIZE, &p.side)) return EXIT_USAGE;
            i++;
        } else if (!strcmp(a, "--split-fractions")) {
            if (parse_fractions(v, p.fractions)) return EXIT_USAGE;
            i++;
        } else if (!strcmp(a, "--out") || !strcmp(a, "-o")) {
            if (!v) {
                fprintf(stderr, "imcap synth: %s needs a value\n", a);
                return EXIT_USAGE;
            }
            out = v;
            i++;
        } else if (!strcmp(a, "--threads")) {
            if (cli_parse_int(a, v, 1, 1024, &threads)) return EXIT_USAGE;
            i++;
        } else {
            fprintf(stderr, "imcap synth: unknown option '%s'\n\n", a);
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (p.count < 0 || !have_seed || !out) {
        fprintf(stderr, "imcap synth: --count, --seed and --out are required\n\n");
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
    fprintf(stderr, "imcap synth: %ld scenes of %dx%d px in %s/ (%.1f s)\n", p.count, p.side, p.side, out,
            imcap_now() - t0);
    return EXIT_ALL_OK;
}
