/* args.h — one command-line grammar for every command.
 *
 * Each command lists its options in a table of cli_opt and calls
 * cli_parse once. The grammar (GNU getopt_long's):
 *   - options may come before, between or after the positional arguments;
 *   - `--` ends the options (everything after it is positional, even "-x");
 *   - a value follows its option (`--beam 3`, `--beam=3`, `-j2`, `-j 2`);
 *   - the shared options are spelled the same everywhere: -m/--model,
 *     -o/--output, -j/--threads, -q/--quiet, -v/--verbose, --json,
 *     -h/--help (the CLI_OPT_* macros below);
 *   - an old spelling (CLI_DEPRECATED) still works and says on stderr what
 *     replaces it.
 * Errors name the command and the option, and exit code 2 follows. */
#ifndef IMCAP_CLI_ARGS_H
#define IMCAP_CLI_ARGS_H
#include <stdio.h>

typedef enum {
    CLI_FLAG,  /* int *: set to 1 */
    CLI_INT,   /* int *: in [lo, hi] */
    CLI_LONG,  /* long *: in [lo, hi] */
    CLI_FLOAT, /* double *: in [lo, hi] */
    CLI_STR,   /* const char **: the argument itself */
} cli_kind;

typedef struct {
    const char *name;       /* long name without "--" */
    char short_name;        /* 0: none */
    cli_kind kind;
    void *dst;
    double lo, hi;          /* CLI_INT, CLI_LONG, CLI_FLOAT */
    int *given;             /* NULL, or set to 1 when the option appears */
    const char *deprecated; /* non-NULL: an old spelling; the note names this replacement */
} cli_opt;

#define CLI_END {NULL, 0, CLI_FLAG, NULL, 0, 0, NULL, NULL}
#define CLI_OPT_MODEL(dst) {"model", 'm', CLI_STR, (dst), 0, 0, NULL, NULL}
#define CLI_OPT_OUTPUT(dst) {"output", 'o', CLI_STR, (dst), 0, 0, NULL, NULL}
#define CLI_OPT_THREADS(dst) {"threads", 'j', CLI_INT, (dst), 1, 1024, NULL, NULL}
#define CLI_OPT_QUIET(dst) {"quiet", 'q', CLI_FLAG, (dst), 0, 0, NULL, NULL}
#define CLI_OPT_VERBOSE(dst) {"verbose", 'v', CLI_FLAG, (dst), 0, 0, NULL, NULL}
#define CLI_OPT_JSON(dst) {"json", 0, CLI_FLAG, (dst), 0, 0, NULL, NULL}
#define CLI_DEPRECATED(name, kind, dst, instead) {(name), 0, (kind), (dst), -1e300, 1e300, NULL, (instead)}

/* Parses argv[1..] against opts (ended by CLI_END). -h/--help prints
 * usage(stdout) and returns 1 (the caller exits 0); a usage error prints a
 * line naming cmd and the option and returns -1 (exit 2); out of memory, -2
 * (exit 3). On success
 * (0), argv[*first_pos .. argc) are the positional arguments in order.
 * argv is permuted in place. */
int cli_parse(const char *cmd, int argc, char **argv, const cli_opt *opts, void (*usage)(FILE *), int *first_pos);
/* For commands that take no positional argument: 0 when argv[first..] is
 * empty, else -1 after a usage error naming the first one (hint, when not
 * NULL, says where that value belongs). */
int cli_no_positionals(const char *cmd, int argc, char **argv, int first, const char *hint, void (*usage)(FILE *));

/* The exit code for cli_parse's non-zero result: 0 after --help, 2 for a
 * usage error, 3 when it ran out of memory (-2). */
static inline int cli_parse_exit(int pr) { return pr > 0 ? 0 : pr == -2 ? 3 : 2; }

/* Reads a list of paths, one per line (no trailing newline or CR kept,
 * empty lines skipped), from FILE or from stdin when path is "-". Appends to
 * *list (grown with realloc; each entry malloc'd). Returns 0, or -1 after
 * printing an error naming cmd and the file. */
int cli_read_list(const char *cmd, const char *path, char ***list, int *n);
/* The inputs of a command: its positional arguments, then the lines of
 * files_from (when not NULL). *inputs is malloc'd (NULL-terminated); the
 * arguments are borrowed, the listed paths owned: cli_inputs_free. Returns
 * 0, or the exit code after printing why (2 the list cannot be read, 3 out
 * of memory). */
int cli_inputs(const char *cmd, char **args, int nargs, const char *files_from, char ***inputs, int *n);
void cli_inputs_free(char **inputs, int n, int nargs);
#endif
