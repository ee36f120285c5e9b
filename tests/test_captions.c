/* test_captions.c — captions do not change by accident.
 *
 * tests/data/fixtures/captions_*.tsv hold the shipped model's captions and
 * scores on samples/ and on 1,000 synthetic scenes (imcap synth --count 1000
 * --seed 4242), greedy and beam 3, as the engine produced them before any
 * speed work (scripts/make_caption_fixtures.sh). Every build must reproduce
 * the captions exactly, through every path that decodes: imcap batch with 1
 * and 2 threads and decoding blocks of 1, 7 and 32 images, and imcap caption
 * with many files. Scores may move by float
 * summation order only (vectorised tanh/exp, fused products): |diff| <= 2e-4
 * on a sum of about 15 log-probabilities. */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define SCORE_TOL 2e-4

typedef struct {
    char name[64];
    char caption[512];
    double score;
} row;

static int load_fixture(const char *rel, row *rows, int cap) {
    FILE *f = fopen(tu_src(rel), "r");
    cr_assert(f, "missing fixture %s", rel);
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof line, f) && n < cap) {
        char *t1 = strchr(line, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
        cr_assert(t1 && t2, "%s: malformed line %d", rel, n + 1);
        *t1 = *t2 = 0;
        snprintf(rows[n].name, sizeof rows[n].name, "%.63s", line);
        snprintf(rows[n].caption, sizeof rows[n].caption, "%s", t1 + 1);
        rows[n].score = atof(t2 + 1);
        n++;
    }
    fclose(f);
    return n;
}

static const char *base(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* Compares imcap's jsonl output (one record per image, in fixture order)
 * with the fixture rows. */
static void compare_jsonl(const char *what, const char *jsonl, const row *rows, int n) {
    const char *p = jsonl;
    int i = 0, caption_diffs = 0;
    double worst = 0;
    while (*p && i < n) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        cJSON *r = cJSON_ParseWithLength(p, len);
        cr_assert(r, "%s: record %d is not JSON", what, i);
        const char *path = cJSON_GetStringValue(cJSON_GetObjectItem(r, "path"));
        const char *cap = cJSON_GetStringValue(cJSON_GetObjectItem(r, "caption"));
        cJSON *sc = cJSON_GetObjectItem(r, "score");
        cr_assert(path && cap && cJSON_IsNumber(sc), "%s: record %d lacks path/caption/score", what, i);
        cr_assert_str_eq(base(path), rows[i].name, "%s: record %d is %s, expected %s", what, i, base(path),
                         rows[i].name);
        if (strcmp(cap, rows[i].caption) != 0) {
            if (caption_diffs++ < 5)
                cr_log_error("%s: %s: \"%s\", fixture \"%s\"", what, rows[i].name, cap, rows[i].caption);
        }
        double d = fabs(sc->valuedouble - rows[i].score);
        if (d > worst) worst = d;
        cJSON_Delete(r);
        i++;
        p = nl ? nl + 1 : p + len;
    }
    cr_assert_eq(i, n, "%s: %d records, fixture has %d", what, i, n);
    cr_assert_eq(caption_diffs, 0, "%s: %d of %d captions differ from the fixture", what, caption_diffs, n);
    cr_assert(worst <= SCORE_TOL, "%s: a score moved by %g (> %g)", what, worst, SCORE_TOL);
}

static char *run_ok(const char *cmd) {
    char *out = NULL, *err = NULL;
    int rc = tu_run(cmd, &out, &err);
    cr_assert_eq(rc, 0, "%s: exit %d\n%s", cmd, rc, err ? err : "");
    free(err);
    return out;
}

static void check_batch(const char *dir, const char *fixture, int beam, const char *extra) {
    static row rows[1000];
    int n = load_fixture(fixture, rows, 1000);
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' batch -q --no-timing --beam %d %s '%s'", tu_exe(), beam, extra, dir);
    char *out = run_ok(cmd);
    compare_jsonl(cmd, out, rows, n);
    free(out);
}

static const char *synth_dir(void) {
    static char dir[4096];
    if (dir[0]) return dir;
    snprintf(dir, sizeof dir, "%s", tu_tmpdir("captions-synth"));
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' synth --count 1000 --seed 4242 --size 64 --split-fractions 0,0,1 -o '%s'",
             tu_exe(), dir);
    free(run_ok(cmd));
    strncat(dir, "/images", sizeof dir - strlen(dir) - 1);
    return dir;
}

Test(captions, samples_greedy_and_beam3) {
    check_batch(tu_src("samples"), "tests/data/fixtures/captions_samples_beam1.tsv", 1, "--threads 1");
    check_batch(tu_src("samples"), "tests/data/fixtures/captions_samples_beam3.tsv", 3, "--threads 1");
}

Test(captions, synthetic_1000_greedy, .timeout = 900) {
    const char *dir = synth_dir();
    check_batch(dir, "tests/data/fixtures/captions_synth4242_beam1.tsv", 1, "--threads 1");
    check_batch(dir, "tests/data/fixtures/captions_synth4242_beam1.tsv", 1, "--threads 2 --block 7");
}

Test(captions, synthetic_1000_beam3, .timeout = 900) {
    const char *dir = synth_dir();
    check_batch(dir, "tests/data/fixtures/captions_synth4242_beam3.tsv", 3, "--threads 1 --block 1");
    check_batch(dir, "tests/data/fixtures/captions_synth4242_beam3.tsv", 3, "--threads 2");
}

/* imcap caption over the 1,000 files at once: PATH<TAB>caption lines */
Test(captions, caption_command_many_files, .timeout = 900) {
    const char *dir = synth_dir();
    static row rows[1000];
    for (int beam = 1; beam <= 3; beam += 2) {
        char fx[128], cmd[8192];
        snprintf(fx, sizeof fx, "tests/data/fixtures/captions_synth4242_beam%d.tsv", beam);
        int n = load_fixture(fx, rows, 1000);
        snprintf(cmd, sizeof cmd, "cd '%s' && '%s' caption --beam %d --threads 2 *.png", dir, tu_exe(), beam);
        char *out = run_ok(cmd), *p = out;
        int i = 0, diffs = 0;
        for (; *p && i < n; i++) {
            char *nl = strchr(p, '\n'), *tab = strchr(p, '\t');
            cr_assert(nl && tab && tab < nl, "line %d of imcap caption is not PATH<TAB>caption", i);
            *nl = *tab = 0;
            cr_assert_str_eq(p, rows[i].name);
            if (strcmp(tab + 1, rows[i].caption) && diffs++ < 5)
                cr_log_error("beam %d: %s: \"%s\", fixture \"%s\"", beam, p, tab + 1, rows[i].caption);
            p = nl + 1;
        }
        cr_assert_eq(i, n);
        cr_assert_eq(diffs, 0, "beam %d: %d captions differ", beam, diffs);
        free(out);
    }
}
