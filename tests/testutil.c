#include "testutil.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "image/image.h"

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

/* A Flickr8k-shaped data set: "filename" only (no "filepath"), "imgid",
 * five "sentences" with "tokens" and "raw", splits train/val/test. The
 * pictures: a red or blue square on the left or right of a grey field, so the
 * captions are learnable in a few dozen steps. */
void tu_flickr_fixture(const char *dir, int n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/Flicker8k_Dataset", dir);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", path);
    cr_assert_eq(system(cmd), 0);
    FILE *f;
    snprintf(path, sizeof path, "%s/dataset_flickr8k.json", dir);
    f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "{\"dataset\": \"flickr8k\", \"images\": [\n");
    unsigned char px[24 * 24 * 3];
    for (int i = 0; i < n; i++) {
        int red = i % 2, left = (i / 2) % 2;
        for (int y = 0; y < 24; y++)
            for (int x = 0; x < 24; x++) {
                unsigned char *p = px + (y * 24 + x) * 3;
                int in = y >= 8 && y < 16 && (left ? (x >= 2 && x < 10) : (x >= 14 && x < 22));
                p[0] = in ? (red ? 220 : 20) : (unsigned char)(110 + (x * 7 + y * 3 + i) % 20);
                p[1] = in ? 30 : p[0];
                p[2] = in ? (red ? 20 : 220) : p[0];
            }
        char name[64];
        snprintf(name, sizeof name, "%d_image.jpg.png", 1000 + i);
        snprintf(path, sizeof path, "%s/Flicker8k_Dataset/%s", dir, name);
        imcap_error err;
        cr_assert_eq(imcap_png_write(path, px, 24, 24, 3, &err), IMCAP_OK, "%s", err.msg);
        const char *split = i < n - 4 ? "train" : (i < n - 2 ? "val" : "test");
        const char *colour = red ? "red" : "blue", *side = left ? "left" : "right";
        fprintf(f, "%s{\"filename\": \"%s\", \"imgid\": %d, \"split\": \"%s\", \"sentids\": [0,1,2,3,4], \"sentences\": [",
                i ? ",\n" : "", name, i, split);
        for (int s = 0; s < 5; s++)
            fprintf(f, "%s{\"tokens\": [\"a\", \"%s\", \"square\", \"on\", \"the\", \"%s\"], \"raw\": \"A %s square on the %s%s\", \"imgid\": %d, \"sentid\": %d}",
                    s ? ", " : "", colour, side, colour, side, s % 2 ? "." : "", i, i * 5 + s);
        fprintf(f, "]}");
    }
    fprintf(f, "\n]}\n");
    fclose(f);
    snprintf(path, sizeof path, "%s/config.json", dir);
    f = fopen(path, "w");
    fprintf(f, "{\"image_size\": 16, \"mean\": [0.5, 0.5, 0.5], \"std\": [0.25, 0.25, 0.25], \"encoder\": ["
               "{\"type\": \"conv\", \"out\": 8, \"kernel\": 3, \"stride\": 1, \"pad\": 1}, {\"type\": \"relu\"},"
               "{\"type\": \"maxpool\", \"kernel\": 2, \"stride\": 2}, {\"type\": \"conv\", \"out\": 8, \"kernel\": 3,"
               " \"stride\": 1, \"pad\": 1}, {\"type\": \"relu\"}, {\"type\": \"maxpool\", \"kernel\": 2, \"stride\": 2},"
               " {\"type\": \"coords\"}], \"embed_dim\": 16, \"hidden_dim\": 32, \"attention_dim\": 16, \"max_length\": 10}\n");
    fclose(f);
}

char *tu_path(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

int tu_exists(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0;
}
