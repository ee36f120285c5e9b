/* args.c — the shared option parser (args.h) on getopt_long. */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"

static int set_value(const char *cmd, const cli_opt *o, const char *spelled, const char *v) {
    char *end;
    errno = 0;
    switch (o->kind) {
    case CLI_FLAG: *(int *)o->dst = 1; return 0;
    case CLI_STR: *(const char **)o->dst = v; return 0;
    case CLI_INT:
    case CLI_LONG: {
        long long x = strtoll(v, &end, 10);
        if (errno || end == v || *end || (double)x < o->lo || (double)x > o->hi) { /* lo, hi may be +-1e300 */
            fprintf(stderr, "imcap %s: %s: '%s' is not an integer in [%.0f, %.0f]\n", cmd, spelled, v, o->lo, o->hi);
            return -1;
        }
        if (o->kind == CLI_INT) *(int *)o->dst = (int)x;
        else *(long *)o->dst = (long)x;
        return 0;
    }
    case CLI_FLOAT: {
        double x = strtod(v, &end);
        if (errno || end == v || *end || !(x >= o->lo && x <= o->hi)) {
            fprintf(stderr, "imcap %s: %s: '%s' is not a number in [%g, %g]\n", cmd, spelled, v, o->lo, o->hi);
            return -1;
        }
        *(double *)o->dst = x;
        return 0;
    }
    }
    return -1;
}

int cli_parse(const char *cmd, int argc, char **argv, const cli_opt *opts, void (*usage)(FILE *), int *first_pos) {
    int n = 0;
    while (opts[n].name) n++;
    struct option *lo = calloc((size_t)n + 2, sizeof *lo);
    char *shorts = malloc(3 * (size_t)n + 8);
    char **pos = malloc(((size_t)argc + 1) * sizeof *pos);
    int rc = 0, npos = 0;
    if (!lo || !shorts || !pos) {
        fprintf(stderr, "imcap %s: out of memory\n", cmd);
        free(lo), free(shorts), free(pos);
        return -2;
    }
    /* '-': non-options come back in order as code 1 (whatever
     * POSIXLY_CORRECT says); ':': a missing value is reported as ':' */
    size_t k = 0;
    shorts[k++] = '-', shorts[k++] = ':', shorts[k++] = 'h';
    for (int i = 0; i < n; i++) {
        lo[i].name = opts[i].name;
        lo[i].has_arg = opts[i].kind == CLI_FLAG ? no_argument : required_argument;
        lo[i].val = 256 + i;
        if (opts[i].short_name) {
            shorts[k++] = opts[i].short_name;
            if (opts[i].kind != CLI_FLAG) shorts[k++] = ':';
        }
    }
    shorts[k] = 0;
    lo[n].name = "help", lo[n].val = 'h';
    opterr = 0;
    optind = 0; /* glibc: a full reset, for a second parse in one process */
    int c;
    while (rc == 0 && (c = getopt_long(argc, argv, shorts, lo, NULL)) != -1) {
        const char *spelled = argv[optind - 1];
        if (c == 1) {
            pos[npos++] = optarg;
            continue;
        }
        if (c == 'h') {
            if (usage) usage(stdout);
            rc = 1;
            break;
        }
        if (c == '?' || c == ':') {
            char opt[64];
            if (optopt && optopt < 256) snprintf(opt, sizeof opt, "-%c", optopt);
            else snprintf(opt, sizeof opt, "%.60s", spelled);
            /* "--opt=value" of a flag, or a value missing at the end */
            char *eq = strchr(opt, '=');
            if (eq) *eq = 0;
            if (c == '?') fprintf(stderr, "imcap %s: unknown option '%s'\n", cmd, opt);
            else fprintf(stderr, "imcap %s: %s needs a value\n", cmd, opt);
            if (usage && c == '?') fprintf(stderr, "(imcap %s --help lists its options)\n", cmd);
            rc = -1;
            break;
        }
        int i = -1;
        if (c >= 256) i = c - 256;
        else
            for (int j = 0; j < n && i < 0; j++)
                if (opts[j].short_name == c) i = j;
        if (i < 0) { rc = -1; break; }
        const cli_opt *o = &opts[i];
        char name[80];
        if (c >= 256) snprintf(name, sizeof name, "--%s", o->name);
        else snprintf(name, sizeof name, "-%c", c);
        if (o->deprecated)
            fprintf(stderr, "imcap %s: note: --%s is an old spelling; use %s\n", cmd, o->name, o->deprecated);
        if (set_value(cmd, o, name, optarg) != 0) { rc = -1; break; }
        if (o->given) *o->given = 1;
    }
    if (rc == 0) {
        /* after "--": the rest, as given */
        for (int i = optind; i < argc; i++) pos[npos++] = argv[i];
        *first_pos = argc - npos;
        memcpy(argv + *first_pos, pos, (size_t)npos * sizeof *pos);
    }
    free(lo), free(shorts), free(pos);
    return rc;
}

int cli_no_positionals(const char *cmd, int argc, char **argv, int first, const char *hint, void (*usage)(FILE *)) {
    if (first >= argc) return 0;
    fprintf(stderr, "imcap %s: unexpected argument '%s'%s%s%s\n", cmd, argv[first], hint ? " (" : "", hint ? hint : "",
            hint ? ")" : "");
    if (usage) usage(stderr);
    return -1;
}

int cli_read_list(const char *cmd, const char *path, char ***list, int *n) {
    FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
    if (!f) {
        fprintf(stderr, "imcap %s: %s: %s\n", cmd, path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = 0;
    while ((len = getline(&line, &cap, f)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (len == 0) continue;
        char **grown = realloc(*list, (size_t)(*n + 1) * sizeof *grown);
        char *copy = strdup(line);
        if (!grown || !copy) {
            free(copy);
            if (grown) *list = grown;
            fprintf(stderr, "imcap %s: %s: out of memory\n", cmd, path);
            rc = -1;
            break;
        }
        *list = grown;
        (*list)[(*n)++] = copy;
    }
    if (rc == 0 && ferror(f)) {
        fprintf(stderr, "imcap %s: %s: read error\n", cmd, strcmp(path, "-") ? path : "(stdin)");
        rc = -1;
    }
    free(line);
    if (f != stdin) fclose(f);
    return rc;
}

int cli_inputs(const char *cmd, char **args, int nargs, const char *files_from, char ***inputs, int *n) {
    char **listed = NULL;
    int nlisted = 0;
    *inputs = NULL, *n = 0;
    if (files_from && cli_read_list(cmd, files_from, &listed, &nlisted) != 0) {
        cli_inputs_free(listed, nlisted, 0);
        return 2;
    }
    char **all = malloc(((size_t)nargs + (size_t)nlisted + 1) * sizeof *all);
    if (!all) {
        cli_inputs_free(listed, nlisted, 0);
        fprintf(stderr, "imcap %s: out of memory\n", cmd);
        return 3;
    }
    for (int i = 0; i < nargs; i++) all[i] = args[i];
    for (int i = 0; i < nlisted; i++) all[nargs + i] = listed[i];
    all[nargs + nlisted] = NULL;
    free(listed);
    *inputs = all, *n = nargs + nlisted;
    return 0;
}

void cli_inputs_free(char **inputs, int n, int nargs) {
    for (int i = nargs; inputs && i < n; i++) free(inputs[i]);
    free(inputs);
}
