#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char slots[8][4096];
static int slot;

static const char *env_or(const char *name, const char *dflt) {
    const char *v = getenv(name);
    return v && *v ? v : dflt;
}

const char *tu_src(const char *rel) {
    char *s = slots[slot++ & 7];
    snprintf(s, 4096, "%s/%s", env_or("IMCAP_SOURCE_ROOT", "."), rel);
    return s;
}

const char *tu_exe(void) { return env_or("IMCAP_EXE", "./imcap"); }

const char *tu_tmpdir(const char *name) {
    char *s = slots[slot++ & 7];
    snprintf(s, 4096, "%s/test-tmp/%s.%ld", env_or("IMCAP_BUILD_ROOT", "."), name, (long)getpid());
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", s, s);
    if (system(cmd) != 0) abort();
    return s;
}

char *tu_read(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) { if (n) *n = 0; return NULL; }
    size_t cap = 4096, len = 0;
    char *b = malloc(cap + 1);
    size_t r;
    while ((r = fread(b + len, 1, cap - len, f)) > 0) {
        len += r;
        if (len == cap) { cap *= 2; b = realloc(b, cap + 1); }
    }
    fclose(f);
    b[len] = 0;
    if (n) *n = len;
    return b;
}

void tu_write(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (n) fwrite(data, 1, n, f);
    fclose(f);
}

int tu_run(const char *cmd, char **out, char **err) {
    char of[] = "/tmp/imcap-tu-outXXXXXX", ef[] = "/tmp/imcap-tu-errXXXXXX";
    int fo = mkstemp(of), fe = mkstemp(ef);
    close(fo);
    close(fe);
    size_t n = strlen(cmd) + 200;
    char *full = malloc(n);
    snprintf(full, n, "( %s ) >'%s' 2>'%s' </dev/null", cmd, of, ef);
    int st = system(full);
    free(full);
    if (out) *out = tu_read(of, NULL);
    if (err) *err = tu_read(ef, NULL);
    unlink(of);
    unlink(ef);
    if (st == -1) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

double tu_urand(uint64_t *state, double lo, double hi) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return lo + (hi - lo) * ((z >> 11) * (1.0 / 9007199254740992.0));
}
