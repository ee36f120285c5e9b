/* cli.h — the command-line front end: the only code that prints or exits.
 * Exit codes: 0 all inputs done, 1 some inputs failed, 2 usage error,
 * 3 a fatal error (model or data set cannot be loaded, output not writable). */
#ifndef IMCAP_CLI_H
#define IMCAP_CLI_H
#include "imcap.h"
#include "util/util.h"

enum { EXIT_ALL_OK = 0, EXIT_SOME_FAILED = 1, EXIT_USAGE = 2, EXIT_FATAL = 3 };

int run_caption(int argc, char **argv);
int run_info(int argc, char **argv);
/* Progress and skipped images of a cache build (imcap_cache_callbacks):
 * "LABEL done/total" on one updating line on a terminal, else a line every
 * `every` images; "imcap CMD: skipped: MSG" for an unreadable image. */
typedef struct {
    const char *cmd, *label;
    int every, tty, quiet;
} cli_count_ctx;
void cli_count_progress(void *ctx, int done, int total);
void cli_skipped_image(void *ctx, const char *msg);

/* "imcap CMD ARGS..." (cut at cap) for a model's metadata: what made it. */
void cli_command_line(char *buf, size_t cap, int argc, char **argv);
/* The in-domain check in outputs: `"domain_score": x, "in_domain": b, `
 * (nothing when the model has no statistics), and the one-line warning on
 * stderr for an atypical image (in_domain 0). */
void cli_domain_json(imcap_buf *b, const imcap_result *r);
void cli_warn_domain(const char *cmd, const char *path, int in_domain, double domain_score);
int run_calibrate(int argc, char **argv);
int run_init(int argc, char **argv);
int run_synth(int argc, char **argv);
int run_eval(int argc, char **argv);
int run_train(int argc, char **argv);
int run_attend(int argc, char **argv);
int run_batch(int argc, char **argv);
int run_merge(int argc, char **argv);
int run_export(int argc, char **argv);

/* argv[0] of the process, for finding the default model next to the binary. */
extern const char *cli_argv0;

/* Loads --model PATH, or the default model when path is NULL: next to the
 * executable (../models/, ./models/, ../share/imcap/), then the install
 * prefix. Prints the error and returns NULL on failure. */
imcap_model *cli_load_model(const char *path);
/* Resolves the default model's path into buf; returns 0 when found. */
int cli_default_model_path(char *buf, size_t n);


/* mkdir -p: 0, or -1 with errno set (ENOTDIR when path exists as a file). */
int cli_make_dirs(const char *path);

/* Limits OpenBLAS and OpenMP to n threads (n <= 0: all cores). */
void cli_set_threads(int n);
#endif
