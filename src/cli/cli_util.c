/* cli_util.c — pieces every command shares: model lookup, option values,
 * thread settings. */
#include <errno.h>
#include <limits.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "batch/batch_walk.h"
#include "cli.h"
#include "util/util.h"

#ifndef IMCAP_DEFAULT_MODEL_DIR
#define IMCAP_DEFAULT_MODEL_DIR "/usr/local/share/imcap"
#endif

static int readable(const char *p) { return access(p, R_OK) == 0; }

int cli_default_model_path(char *buf, size_t n) {
    const char *env = getenv("IMCAP_MODEL");
    if (env && *env) {
        snprintf(buf, n, "%s", env);
        return 0; /* even when unreadable: the load names the file and the variable's choice stands */
    }
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len > 0) {
        exe[len] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) *slash = 0;
        /* build tree (build/imcap -> ../models), source-relative, installed prefix */
        static const char *rel[] = {"../models/default.safetensors", "models/default.safetensors",
                                    "../share/imcap/default.safetensors", "../../models/default.safetensors"};
        for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
            snprintf(buf, n, "%s/%s", exe, rel[i]);
            if (readable(buf)) return 0;
        }
    }
#ifdef IMCAP_SOURCE_MODEL_DIR
    snprintf(buf, n, "%s/default.safetensors", IMCAP_SOURCE_MODEL_DIR);
    if (readable(buf)) return 0;
#endif
    snprintf(buf, n, "%s/default.safetensors", IMCAP_DEFAULT_MODEL_DIR);
    return readable(buf) ? 0 : -1;
}

imcap_model *cli_load_model(const char *path) {
    char found[PATH_MAX + 64];
    int path_given = path != NULL;
    if (!path) {
        if (cli_default_model_path(found, sizeof found) != 0) {
            fprintf(stderr, "imcap: no default model found next to the executable or in %s; pass --model FILE "
                            "or set IMCAP_MODEL\n", IMCAP_DEFAULT_MODEL_DIR);
            return NULL;
        }
        path = found;
    }
    imcap_model *m = NULL;
    imcap_error err;
    if (imcap_model_load(path, &m, &err) != IMCAP_OK) {
        const char *env = getenv("IMCAP_MODEL");
        int from_env = !path_given && env && *env;
        fprintf(stderr, "imcap: %s%s\n", err.msg, from_env ? " (the model IMCAP_MODEL names)" : "");
        return NULL;
    }
    return m;
}

int cli_stdout_write(const char *cmd, const void *data, size_t n) {
    static int reported;
    if (fwrite(data, 1, n, stdout) == n && fflush(stdout) == 0 && !ferror(stdout)) return 0;
    if (!reported) fprintf(stderr, "imcap %s: standard output: %s\n", cmd, errno ? strerror(errno) : "write failed");
    reported = 1;
    return -1;
}

void cli_set_threads(int n) {
    if (n <= 0) n = omp_get_num_procs();
    /* the library's products are its own single-threaded kernels
     * (src/kernels/simd.h): OpenMP's threads are the only ones */
    omp_set_num_threads(n);
}

int cli_make_dirs(const char *path) {
    if (!*path) {
        errno = ENOENT;
        return -1;
    }
    return imcap_make_dirs(path, NULL) == IMCAP_OK ? 0 : -1;
}

void cli_domain_json(imcap_buf *b, const imcap_result *r) {
    if (r->in_domain < 0) return;
    bw_domain_fields(b, r->domain_score, r->in_domain);
    imcap_buf_append(b, ", ", 2);
}

void cli_warn_domain(const char *cmd, const char *path, int in_domain, double domain_score) {
    if (in_domain != 0) return;
    fprintf(stderr,
            "imcap %s: warning: %s is unlike the images this model was trained on (domain score %.3g, above 1): "
            "its caption is unreliable\n",
            cmd, path, domain_score);
}

void cli_command_line(char *buf, size_t cap, int argc, char **argv) {
    size_t len = 0;
    buf[0] = 0;
    for (int i = 0; i < argc && len + 2 < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", i ? " " : "imcap ", argv[i]);
}

void cli_count_progress(void *ctx, int done, int total) {
    const cli_count_ctx *c = ctx;
    if (c->quiet) return;
    if (c->tty) fprintf(stderr, "\r%s %d/%d%s", c->label, done, total, done == total ? "\n" : "");
    else if (done == total || done % c->every == 0) fprintf(stderr, "%s %d/%d\n", c->label, done, total);
}

void cli_skipped_image(void *ctx, const char *msg) {
    fprintf(stderr, "imcap %s: skipped: %s\n", ((const cli_count_ctx *)ctx)->cmd, msg);
}
