/* fuzz_common.c — see fuzz_common.h. */
#include "fuzz_common.h"

#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

static char dir[PATH_MAX];

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

static void remove_dir(void) {
    if (dir[0]) nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

const char *fz_dir(void) {
    if (dir[0]) return dir;
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/imcap-fuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("fuzz: mkdtemp");
        abort();
    }
    atexit(remove_dir);
    return dir;
}

const char *fz_path(const char *name) {
    static char buf[PATH_MAX];
    snprintf(buf, sizeof buf, "%s/%s", fz_dir(), name);
    return buf;
}

void fz_write(const char *path, const uint8_t *d, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(d, 1, n, f) != n) || fclose(f) != 0) {
        perror(path);
        abort();
    }
}

const char *fz_source(const char *rel) {
    static char buf[PATH_MAX];
    const char *root = getenv("IMCAP_SOURCE_ROOT");
    snprintf(buf, sizeof buf, "%s/%s", root && *root ? root : IMCAP_FUZZ_SOURCE_ROOT, rel);
    return buf;
}

char *fz_read_source(const char *rel, size_t *size) {
    unsigned char *data;
    size_t n;
    imcap_error err;
    if (imcap_read_file(fz_source(rel), &data, &n, &err) != IMCAP_OK) {
        fprintf(stderr, "fuzz: %s\n", err.msg);
        abort();
    }
    if (size) *size = n;
    return (char *)data; /* imcap_read_file NUL-terminates */
}

void fz_check_error(imcap_status s, const imcap_error *err) {
    if (s != IMCAP_OK && !err->msg[0]) {
        fprintf(stderr, "fuzz: status %s with an empty message\n", imcap_status_name(s));
        abort();
    }
}
