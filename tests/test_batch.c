/* test_batch.c — `imcap batch` and `imcap merge` end to end.
 *
 * The model is random (imcap init with tests/data/models/tiny_config.json,
 * seed 1) and the images come from `imcap synth --size 32`, so every run is
 * fast; captions are whatever that model says, and no test depends on their
 * text: the expected records are derived from the files each test creates
 * (which are images, which are corrupt, which are not images at all) and
 * from a reference run of the same command (single-threaded, uninterrupted,
 * unsharded). Parsers of the output here (CSV, TSV) are written from
 * RFC 4180 and the documented escapes, independently of src/cli. */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "imcap.h"
#include "testutil.h"

#define CFG "tests/data/models/tiny_config.json"
#define WORDS "tests/data/models/tiny_words.txt"

/* ------------------------------------------------------------ helpers */

/* Runs `cd DIR && [ENV] imcap ARGS`; out/err may be NULL. */
static int vrun(const char *dir, const char *env, char **out, char **err, const char *fmt, va_list ap) {
    char args[8192], cmd[12000];
    vsnprintf(args, sizeof args, fmt, ap);
    snprintf(cmd, sizeof cmd, "cd '%s' && %s '%s' %s", dir, env, tu_exe(), args);
    char *o = NULL, *e = NULL;
    int rc = tu_run(cmd, &o, &e);
    cr_assert(o && e, "cannot capture the output of %s", cmd);
    if (out) *out = o;
    else free(o);
    if (err) *err = e;
    else free(e);
    return rc;
}

static int imcap_in(const char *dir, char **out, char **err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int imcap_in(const char *dir, char **out, char **err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = vrun(dir, "", out, err, fmt, ap);
    va_end(ap);
    return rc;
}

/* The same, interrupted by a SIGINT once `stop` records are written
 * (IMCAP_BATCH_STOP_AFTER: the process raises the signal itself, so the
 * stop comes at a known point and goes through the real handler). */
static int imcap_stop(const char *dir, int stop, char **out, char **err, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int imcap_stop(const char *dir, int stop, char **out, char **err, const char *fmt, ...) {
    char env[64];
    snprintf(env, sizeof env, "IMCAP_BATCH_STOP_AFTER=%d", stop);
    va_list ap;
    va_start(ap, fmt);
    int rc = vrun(dir, env, out, err, fmt, ap);
    va_end(ap);
    return rc;
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...) {
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return tu_run(cmd, NULL, NULL);
}

static void copy_file(const char *from, const char *to) {
    size_t n;
    char *d = tu_read(from, &n);
    cr_assert(d, "cannot read %s", from);
    tu_write(to, d, n);
    free(d);
}

/* A work folder with m.safetensors (random tiny model) and synth/images/
 * holding n 32x32 PNGs 000000.png ... */
static const char *setup_dir(const char *name, int n) {
    static char d[4096];
    snprintf(d, sizeof d, "%s", tu_tmpdir(name));
    cr_assert_eq(imcap_in(d, NULL, NULL, "init --config '%s' --vocab '%s' --seed 1 -o m.safetensors", tu_src(CFG),
                          tu_src(WORDS)),
                 0);
    cr_assert_eq(imcap_in(d, NULL, NULL, "synth --count %d --size 32 --seed 1 -o synth", n), 0);
    return d; /* one per test process */
}

static void synth_image(const char *dir, int k, const char *to) {
    char from[4300];
    snprintf(from, sizeof from, "%s/synth/images/%06d.png", dir, k);
    char *dst = tu_path(dir, to);
    copy_file(from, dst);
    free(dst);
}

/* The mixed folder dir/mix. Fills want[] with the records the walk must
 * give (path relative to dir, and whether it is a failed record); returns
 * their count. */
typedef struct {
    const char *path;
    int error;
} expect;

static int build_mixed(const char *dir, expect *want) {
    int n = 0, k = 0;
    cr_assert_eq(sh("mkdir -p '%s/mix/sub/deeper' '%s/mix/empty dir'", dir, dir), 0);
    /* good images, some with awkward names */
    static const char *good[] = {
        "mix/a.png",           "mix/with space.png",   "mix/quo\"te's.png", "mix/na\xc3\xafve-\xe6\x97\xa5\xe6\x9c\xac.png",
        "mix/a,b.png",         "mix/new\nline.png",    "mix/<b>&\"'x.png",  "mix/sub/x.png",
        "mix/sub/deeper/y.png", "mix/noext",           "mix/.hidden.png",   "mix/back\\slash.png",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        synth_image(dir, k++, good[i]);
        want[n++] = (expect){good[i], 0};
    }
    char *p;
    /* corrupt: a PNG cut after 100 bytes, and text named .jpg */
    char src[4300];
    snprintf(src, sizeof src, "%s/synth/images/%06d.png", dir, k++);
    size_t len;
    char *png = tu_read(src, &len);
    p = tu_path(dir, "mix/trunc.png");
    tu_write(p, png, 100);
    free(p), free(png);
    want[n++] = (expect){"mix/trunc.png", 1};
    p = tu_path(dir, "mix/fake.jpg");
    tu_write(p, "hello\n", 6);
    free(p);
    want[n++] = (expect){"mix/fake.jpg", 1};
    /* a dangling link with an image name: a failed record */
    cr_assert_eq(sh("cd '%s/mix' && ln -s nowhere dangling.png", dir), 0);
    want[n++] = (expect){"mix/dangling.png", 1};
    /* not images: skipped silently */
    p = tu_path(dir, "mix/notes.txt");
    tu_write(p, "P7 not an image\n", 16);
    free(p);
    p = tu_path(dir, "mix/._a.jpg"); /* AppleDouble junk: hidden, does not sniff */
    tu_write(p, "\x00\x05\x16\x07", 4);
    free(p);
    /* a FIFO with an image name: never opened (opening it would block) */
    cr_assert_eq(sh("mkfifo '%s/mix/pipe.png'", dir), 0);
    /* a symlink loop: mix/sub/loop -> mix */
    cr_assert_eq(sh("cd '%s/mix/sub' && ln -s .. loop", dir), 0);
    return n;
}

static int cmp_expect(const void *a, const void *b) {
    return strcmp(((const expect *)a)->path, ((const expect *)b)->path);
}

/* ------------------------------------------------------------ parsers */

typedef struct {
    int n;
    char **f[4096];
    int nf[4096];
} table;

static void table_free(table *t) {
    for (int i = 0; i < t->n; i++) {
        for (int j = 0; j < t->nf[i]; j++) free(t->f[i][j]);
        free(t->f[i]);
    }
    t->n = 0;
}

static void add_field(table *t, const char *s, size_t n) {
    int r = t->n;
    t->f[r] = realloc(t->f[r], sizeof(char *) * (size_t)(t->nf[r] + 1));
    char *c = malloc(n + 1);
    memcpy(c, s, n);
    c[n] = 0;
    t->f[r][t->nf[r]++] = c;
}

/* RFC 4180: fields separated by commas, quoted fields may hold commas,
 * newlines and doubled quotes; records end with a newline. */
static void parse_csv(const char *s, table *t) {
    memset(t, 0, sizeof *t);
    char *tmp = malloc(strlen(s) + 1);
    while (*s) {
        size_t k = 0;
        if (*s == '"') {
            s++;
            for (;;) {
                cr_assert(*s, "unterminated quoted CSV field");
                if (*s == '"' && s[1] == '"') tmp[k++] = '"', s += 2;
                else if (*s == '"') { s++; break; }
                else tmp[k++] = *s++;
            }
        } else {
            while (*s && *s != ',' && *s != '\n') {
                cr_assert(*s != '"', "a quote inside an unquoted CSV field");
                tmp[k++] = *s++;
            }
        }
        add_field(t, tmp, k);
        if (*s == ',') s++;
        else {
            cr_assert_eq(*s, '\n', "a CSV record does not end with a newline");
            s++;
            t->n++;
        }
    }
    free(tmp);
}

/* TSV: tab-separated, one record per line, \\ \t \n \r escaped. */
static void parse_tsv(const char *s, table *t) {
    memset(t, 0, sizeof *t);
    char *tmp = malloc(strlen(s) + 1);
    while (*s) {
        size_t k = 0;
        while (*s && *s != '\t' && *s != '\n') {
            if (*s == '\\') {
                s++;
                tmp[k++] = *s == 't' ? '\t' : *s == 'n' ? '\n' : *s == 'r' ? '\r' : *s;
                s++;
            } else {
                tmp[k++] = *s++;
            }
        }
        add_field(t, tmp, k);
        if (*s == '\t') s++;
        else {
            cr_assert_eq(*s, '\n');
            s++;
            t->n++;
        }
    }
    free(tmp);
}

static int count_lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

/* "(N captioned in this run" from the summary on stderr, or -1. */
static int captioned_now(const char *err) {
    const char *p = strstr(err, "images/s (");
    int n = -1;
    if (p && sscanf(p, "images/s (%d captioned", &n) != 1) n = -1;
    return n;
}

/* Checks a table of records against want (sorted): header, paths in order,
 * error column set exactly for the failed ones, the in-domain columns empty
 * (these tests' random model has no statistics). */
static void check_table(const table *t, const expect *want, int n, int timing) {
    int cols = (timing ? 7 : 6) + 2;
    cr_assert_eq(t->n, n + 1, "%d records, want %d", t->n - 1, n);
    cr_assert_eq(t->nf[0], cols);
    cr_expect_str_eq(t->f[0][0], "path");
    cr_expect_str_eq(t->f[0][cols - 1], "error");
    cr_expect_str_eq(t->f[0][3], "domain_score");
    cr_expect_str_eq(t->f[0][4], "in_domain");
    for (int i = 0; i < n; i++) {
        char **f = t->f[i + 1];
        cr_assert_eq(t->nf[i + 1], cols, "record %d has %d fields", i, t->nf[i + 1]);
        cr_expect_str_eq(f[0], want[i].path);
        cr_expect_eq(*f[cols - 1] != 0, want[i].error, "%s: error field '%s'", want[i].path, f[cols - 1]);
        /* width and height are the synth images' 32x32 for good ones */
        if (!want[i].error) {
            cr_expect_str_eq(f[5], "32");
            cr_expect_str_eq(f[6], "32");
            cr_expect_neq(*f[2], 0, "no score for %s", want[i].path);
            cr_expect(!*f[3] && !*f[4], "domain columns '%s' '%s' without statistics", f[3], f[4]);
        } else {
            cr_expect_eq(*f[2], 0, "a score for the failed %s", want[i].path);
            cr_expect(!*f[3] && !*f[4], "domain columns for the failed %s", want[i].path);
        }
    }
}

/* ------------------------------------------------------------ tests */

Test(batch, mixed_folder_recursive_all_formats_and_threads) {
    const char *d = setup_dir("batch_mixed", 20);
    expect want[64];
    int n = build_mixed(d, want);
    qsort(want, (size_t)n, sizeof *want, cmp_expect);
    const char *fmts[] = {"tsv", "csv", "jsonl"};
    for (int f = 0; f < 3; f++) {
        char *o1, *o2, *e1, *e2;
        /* some images fail, so exit 1 */
        cr_assert_eq(imcap_in(d, &o1, &e1, "batch --model m.safetensors -r --threads 1 --no-timing --format %s mix",
                              fmts[f]), 1, "%s", e1);
        cr_assert_eq(imcap_in(d, &o2, &e2, "batch --model m.safetensors -r --threads 2 --no-timing --format %s mix",
                              fmts[f]), 1, "%s", e2);
        cr_expect_str_eq(o1, o2, "--threads 1 and 2 differ (%s)", fmts[f]);
        cr_expect(strstr(e1, "3 failed"), "summary: %s", e1);
        cr_expect(strstr(e1, "symlink loop"), "the loop is not reported: %s", e1);
        table t;
        if (f == 0) {
            parse_tsv(o1, &t);
            check_table(&t, want, n, 0);
            table_free(&t);
        } else if (f == 1) {
            parse_csv(o1, &t);
            check_table(&t, want, n, 0);
            table_free(&t);
        } else {
            /* one JSON object per line, in the same order */
            cr_assert_eq(count_lines(o1), n);
            char *line = o1;
            for (int i = 0; i < n; i++) {
                char *nl = strchr(line, '\n');
                *nl = 0;
                cJSON *j = cJSON_Parse(line);
                cr_assert(j, "not JSON: %s", line);
                cr_expect_str_eq(cJSON_GetObjectItem(j, "path")->valuestring, want[i].path);
                cr_expect_eq(cJSON_GetObjectItem(j, "error") != NULL, want[i].error, "%s", line);
                if (!want[i].error) {
                    cJSON *w = cJSON_GetObjectItem(j, "words"), *lp = cJSON_GetObjectItem(j, "logprobs");
                    cr_expect(cJSON_IsArray(w) && cJSON_IsArray(lp) && cJSON_GetArraySize(w) == cJSON_GetArraySize(lp) &&
                              cJSON_GetArraySize(w) >= 1, "%s", line);
                    cr_expect(!cJSON_GetObjectItem(j, "ms"), "--no-timing still wrote ms");
                }
                cJSON_Delete(j);
                line = nl + 1;
            }
        }
        free(o1), free(o2), free(e1), free(e2);
    }
    /* without --recursive: mix/sub is not walked, and stderr says so */
    char *o, *e;
    imcap_in(d, &o, &e, "batch --model m.safetensors --format tsv --no-timing mix");
    cr_expect(!strstr(o, "mix/sub/"), "a subfolder walked without -r");
    cr_expect(strstr(e, "--recursive"), "%s", e);
    free(o), free(e);
}

Test(batch, paths_that_are_not_utf8_round_trip) {
    const char *d = setup_dir("batch_bytes", 2);
    cr_assert_eq(sh("mkdir -p '%s/raw'", d), 0);
    synth_image(d, 0, "raw/bad\xff\xfe.png");
    synth_image(d, 1, "raw/ok.png");
    char *o, *e;
    cr_assert_eq(imcap_in(d, &o, &e, "batch --model m.safetensors --no-timing raw -o out.jsonl"), 0, "%s", e);
    free(o), free(e);
    char *p = tu_path(d, "out.jsonl");
    char *out = tu_read(p, NULL);
    /* bytes that are not UTF-8 are written as U+DC80+byte (Python's
     * surrogateescape), so the line is valid JSON text */
    cr_expect(strstr(out, "\"path\": \"raw/bad\\udcff\\udcfe.png\""), "%s", out);
    /* and they read back: a resumed run finds both records and redoes nothing */
    cr_assert_eq(imcap_in(d, &o, &e, "batch --model m.safetensors --no-timing raw -o out.jsonl --resume"), 0, "%s", e);
    cr_expect_eq(captioned_now(e), 0, "%s", e);
    char *again = tu_read(p, NULL);
    cr_expect_str_eq(again, out);
    free(o), free(e), free(p), free(out), free(again);
}

Test(batch, default_output_has_timing_and_summary) {
    const char *d = setup_dir("batch_stdout", 3);
    char *o, *e;
    cr_assert_eq(imcap_in(d, &o, &e, "batch --model m.safetensors synth/images"), 0, "%s", e);
    cr_assert_eq(count_lines(o), 3);
    char *line = o;
    for (int i = 0; i < 3; i++) {
        char *nl = strchr(line, '\n');
        *nl = 0;
        cJSON *j = cJSON_Parse(line);
        cr_assert(j);
        cJSON *ms = cJSON_GetObjectItem(j, "ms");
        cr_expect(cJSON_IsNumber(ms) && ms->valuedouble >= 0, "%s", line);
        cr_expect_eq(cJSON_GetObjectItem(j, "width")->valueint, 32);
        cJSON_Delete(j);
        line = nl + 1;
    }
    cr_expect(strstr(e, "3 images, 0 failed"), "%s", e);
    cr_expect(strstr(e, "images/s"), "%s", e);
    free(o), free(e);
    /* --quiet: nothing on stderr */
    cr_assert_eq(imcap_in(d, &o, &e, "batch --quiet --model m.safetensors synth/images"), 0);
    cr_expect_str_eq(e, "");
    free(o), free(e);
}

static int records_in(const char *file, int csv, int *failed) {
    char *s = tu_read(file, NULL);
    cr_assert(s, "cannot read %s", file);
    table t;
    if (csv) parse_csv(s, &t);
    else parse_tsv(s, &t);
    int n = t.n - 1;
    *failed = 0;
    for (int i = 1; i < t.n; i++) *failed += *t.f[i][t.nf[i] - 1] != 0;
    table_free(&t);
    free(s);
    return n;
}

/* Interrupts a run (IMCAP_BATCH_STOP_AFTER=K makes the process raise a
 * real SIGINT once K records are written), resumes it and is interrupted
 * again, then finishes; the result must equal an uninterrupted run's, and
 * each run must caption only what has no successful record yet. A stop
 * after K records leaves at least K: the images already taken are finished
 * and written too: with one thread at most its decoding block (--block,
 * 32), with more at most the reorder window (4 x threads x block). */
static void resume_case(const char *fmt, int n_synth, int threads, int stop1, int stop2) {
    char name[64];
    snprintf(name, sizeof name, "batch_resume_%s", fmt);
    const char *d = setup_dir(name, n_synth);
    expect want[64];
    int n_mixed = build_mixed(d, want);
    int csv = fmt[0] == 'c';
    const char *args = "batch --model m.safetensors -r --no-timing synth/images mix";
    char *o, *e;
    cr_assert_eq(imcap_in(d, &o, &e, "%s --threads 2 -o ref.%s", args, fmt), 1, "%s", e);
    free(o), free(e);
    char ref[4200], out[4200], partial[4300];
    snprintf(ref, sizeof ref, "%s/ref.%s", d, fmt);
    snprintf(out, sizeof out, "%s/out.%s", d, fmt);
    snprintf(partial, sizeof partial, "%s.partial", out);
    int failed;
    int total = records_in(ref, csv, &failed);
    cr_assert_eq(total, n_synth + n_mixed);

    /* interrupted: exit 130, no OUT, complete records in OUT.partial */
    cr_assert_eq(imcap_stop(d, stop1, &o, &e, "%s --threads %d -o out.%s", args, threads, fmt),
                 130, "%s", e);
    cr_expect(strstr(e, "--resume"), "%s", e);
    free(o), free(e);
    cr_assert(!tu_exists(out), "OUT exists after an interrupted run");
    int failed1, done1 = records_in(partial, csv, &failed1);
    int ahead = threads == 1 ? 32 : 4 * threads * 32;
    cr_expect(done1 >= stop1 && done1 < stop1 + ahead, "%d records after a stop at %d", done1, stop1);
    /* without --resume the partial file is refused and left alone */
    cr_expect_eq(imcap_in(d, &o, &e, "%s -o out.%s", args, fmt), 3);
    cr_expect(strstr(e, "--resume"), "%s", e);
    free(o), free(e);
    cr_assert_eq(records_in(partial, csv, &failed), done1);

    /* a kill -9 in the middle of a write: a torn last record */
    FILE *f = fopen(partial, "ab");
    fputs(csv ? "\"synth/images/torn" : "synth/images/torn\tred", f);
    fclose(f);

    /* second run, interrupted too: it appends after the complete records */
    cr_assert_eq(imcap_stop(d, stop2, &o, &e, "%s --threads %d -o out.%s --resume", args,
                          threads, fmt), 130, "%s", e);
    /* it redid only the inputs without a successful record: total minus
     * the first run's successes */
    cr_expect(strstr(e, "to caption"), "%s", e);
    free(o), free(e);
    int failed2, done2 = records_in(partial, csv, &failed2);
    cr_expect(done2 >= done1 + stop2 && done2 < done1 + stop2 + ahead, "%d records", done2);

    /* last run: a failed image's record is retried (a deterministic failure
     * fails again), a successful one never is, so the successful records so
     * far are done2 - failed2 distinct paths, and this run captions the rest */
    cr_assert_eq(imcap_in(d, &o, &e, "%s --threads 2 -o out.%s --resume", args, fmt), 1, "%s", e);
    cr_expect_eq(captioned_now(e), total - (done2 - failed2), "%s", e);
    free(o), free(e);
    cr_assert(!tu_exists(partial), "OUT.partial left behind");
    char *a = tu_read(ref, NULL), *b = tu_read(out, NULL);
    cr_assert(b);
    cr_expect_str_eq(b, a, "the resumed output differs from an uninterrupted run's");
    free(a), free(b);
}

Test(batch, resume_after_interrupt_tsv_one_thread) { resume_case("tsv", 60, 1, 17, 9); }
/* 150 synth images: however many records the first stop lets through
 * (< 64 more), the second run still has more than 30 + 64 left */
Test(batch, resume_after_interrupt_csv_two_threads) { resume_case("csv", 150, 2, 5, 30); }

Test(batch, resume_jsonl_and_a_grown_corpus) {
    const char *d = setup_dir("batch_resume_jsonl", 40);
    const char *args = "batch --model m.safetensors --no-timing synth/images";
    char *o, *e;
    cr_assert_eq(sh("cd '%s' && mkdir more && cp synth/images/00000[0-4].png more/", d), 0);
    cr_assert_eq(imcap_in(d, &o, &e, "%s -o ref.jsonl", args), 0, "%s", e);
    free(o), free(e);
    cr_assert_eq(imcap_stop(d, 11, &o, &e, "%s -o out.jsonl", args), 130, "%s", e);
    free(o), free(e);
    char *pp = tu_path(d, "out.jsonl.partial");
    char *part = tu_read(pp, NULL);
    int done = count_lines(part);
    cr_expect_geq(done, 11);
    free(part);
    FILE *f = fopen(pp, "ab");
    fputs("{\"path\": \"synth/images/0000", f); /* torn */
    fclose(f);
    cr_assert_eq(imcap_in(d, &o, &e, "%s -o out.jsonl --resume", args), 0, "%s", e);
    cr_expect_eq(captioned_now(e), 40 - done, "%s", e);
    free(o), free(e);
    char *rp = tu_path(d, "ref.jsonl"), *op = tu_path(d, "out.jsonl");
    char *r = tu_read(rp, NULL), *x = tu_read(op, NULL);
    cr_expect_str_eq(x, r);
    free(r), free(x);
    /* the corpus grows: --resume over a complete OUT captions only the new
     * images, and OUT equals a fresh run over everything */
    cr_assert_eq(imcap_in(d, &o, &e, "%s more -o ref2.jsonl", args), 0, "%s", e);
    free(o), free(e);
    cr_assert_eq(imcap_in(d, &o, &e, "%s more -o out.jsonl --resume", args), 0, "%s", e);
    cr_expect_eq(captioned_now(e), 5, "%s", e);
    free(o), free(e);
    char *rp2 = tu_path(d, "ref2.jsonl");
    r = tu_read(rp2, NULL), x = tu_read(op, NULL);
    cr_expect_str_eq(x, r);
    free(r), free(x), free(rp), free(rp2), free(op), free(pp);
}

Test(batch, shards_through_gnu_parallel_merge_to_a_single_run) {
    if (sh("command -v parallel") != 0) cr_skip("GNU parallel is not installed");
    const char *d = setup_dir("batch_shard", 30);
    expect want[64];
    build_mixed(d, want);
    const char *args = "batch --model m.safetensors -r --no-timing --quiet synth/images mix";
    char *o, *e;
    cr_assert_eq(imcap_in(d, &o, &e, "%s -o ref.jsonl", args), 1, "%s", e);
    free(o), free(e);
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "cd '%s' && parallel --will-cite --halt never '%s' %s --shard {}/3 -o shard{}.jsonl ::: 1 2 3", d,
             tu_exe(), args);
    /* each shard has failures (exit 1) or not: parallel exits with the
     * number of failed jobs; what matters is the merged output */
    int rc = tu_run(cmd, &o, &e);
    cr_assert(rc >= 0 && rc <= 3, "parallel: %d %s", rc, e);
    free(o), free(e);
    cr_assert_eq(imcap_in(d, &o, &e, "merge all.jsonl shard1.jsonl shard2.jsonl shard3.jsonl"), 0, "%s", e);
    free(o), free(e);
    char *rp = tu_path(d, "ref.jsonl"), *ap = tu_path(d, "all.jsonl");
    char *r = tu_read(rp, NULL), *a = tu_read(ap, NULL);
    cr_expect_str_eq(a, r, "merged shards differ from a single run");
    /* the shards split the inputs: their record counts add up */
    int sum = 0;
    for (int s = 1; s <= 3; s++) {
        char name[64];
        snprintf(name, sizeof name, "shard%d.jsonl", s);
        char *sp = tu_path(d, name), *t = tu_read(sp, NULL);
        sum += count_lines(t);
        free(sp), free(t);
    }
    cr_expect_eq(sum, count_lines(r));
    free(r), free(a), free(rp), free(ap);

    /* csv shards, merged in another order: the same as a single csv run */
    cr_assert_eq(imcap_in(d, &o, &e, "%s -o ref.csv", args), 1);
    free(o), free(e);
    for (int s = 1; s <= 3; s++) {
        imcap_in(d, &o, &e, "%s --shard %d/3 -o shard%d.csv", args, s, s);
        free(o), free(e);
    }
    cr_assert_eq(imcap_in(d, &o, &e, "merge - shard3.csv shard1.csv shard2.csv"), 0, "%s", e);
    char *refcsv = tu_path(d, "ref.csv"), *rc2 = tu_read(refcsv, NULL);
    cr_expect_str_eq(o, rc2);
    free(o), free(e), free(refcsv), free(rc2);

    /* refused: mixed formats, a duplicate path, OUT among the inputs, an
     * unfinished run's file */
    cr_expect_eq(imcap_in(d, &o, &e, "merge x.jsonl shard1.jsonl shard2.csv"), 3);
    cr_expect(strstr(e, "one format"), "%s", e);
    free(o), free(e);
    cr_assert_eq(sh("cd '%s' && cp shard1.jsonl copy.jsonl", d), 0);
    cr_expect_eq(imcap_in(d, &o, &e, "merge x.jsonl shard1.jsonl copy.jsonl"), 3);
    cr_expect(strstr(e, "in both"), "%s", e);
    free(o), free(e);
    cr_expect_eq(imcap_in(d, &o, &e, "merge shard2.jsonl shard1.jsonl shard2.jsonl"), 2);
    free(o), free(e);
    char *xp = tu_path(d, "x.jsonl");
    cr_expect(!tu_exists(xp), "a refused merge left its output");
    free(xp);
    /* an unsorted file (records swapped) */
    cr_assert_eq(sh("cd '%s' && (sed -n 2p shard2.jsonl; sed -n 1p shard2.jsonl) > swapped.jsonl", d), 0);
    cr_expect_eq(imcap_in(d, &o, &e, "merge y.jsonl swapped.jsonl"), 3);
    cr_expect(strstr(e, "sorted"), "%s", e);
    free(o), free(e);
    /* what no writer produces is refused, never copied on (regressions
     * from mutating valid records): a NUL byte inside a number, a number
     * that is not JSON's, a bare CR in an unquoted csv field */
    cr_assert_eq(sh("cd '%s' && printf '{\"path\": \"a.png\", \"caption\": \"x\", \"score\": 1\\0002}\\n' > nul.jsonl && "
                    "printf '{\"path\": \"a.png\", \"caption\": \"x\", \"score\": 1.2.3e}\\n' > num.jsonl && "
                    "h=$(head -1 shard1.csv) && n=$(echo \"$h\" | awk -F, '{print NF}') && "
                    "rec=\"a.png,x$(printf '\\r')y,1.5\" && for i in $(seq 4 $n); do rec=\"$rec,\"; done && "
                    "printf '%%s\\n%%s\\n' \"$h\" \"$rec\" > cr.csv", d), 0);
    const char *bad[3] = {"nul.jsonl", "num.jsonl", "cr.csv"};
    for (int k = 0; k < 3; k++) {
        cr_expect_eq(imcap_in(d, &o, &e, "merge -o z.out %s", bad[k]), 3, "%s accepted", bad[k]);
        cr_expect(strstr(e, bad[k]), "the message does not name %s: %s", bad[k], e);
        free(o), free(e);
    }
    char *zp = tu_path(d, "z.out");
    cr_expect(!tu_exists(zp), "a refused merge left its output");
    free(zp);
}

Test(batch, gallery_and_overlays_are_escaped_and_offline) {
    const char *d = setup_dir("batch_gallery", 20);
    expect want[64];
    int n = build_mixed(d, want);
    char *o, *e;
    cr_assert_eq(imcap_in(d, &o, &e, "batch --model m.safetensors -r --html gal --overlays ov -o out.jsonl mix"), 1,
                 "%s", e);
    free(o), free(e);
    char *gp = tu_path(d, "gal/index.html");
    char *html = tu_read(gp, NULL);
    cr_assert(html, "no gallery");
    /* every record has a card */
    int cards = 0;
    for (const char *p = html; (p = strstr(p, "<figure")); p++) cards++;
    cr_expect_eq(cards, n);
    /* the name mix/<b>&"'x.png appears escaped, never raw */
    cr_expect(strstr(html, "mix/&lt;b&gt;&amp;&quot;&#39;x.png"), "escaped name missing");
    cr_expect(!strstr(html, "<b>"), "a raw tag from a file name");
    cr_expect(!strstr(html, "'x.png"), "a raw quote from a file name");
    /* offline: no URL with a scheme or a protocol-relative one */
    cr_expect(!strstr(html, "http:") && !strstr(html, "https:") && !strstr(html, "src=\"//") &&
              !strstr(html, "href=\"//"), "the gallery loads something from the network");
    /* every link and image in it exists in the gallery folder */
    int links = 0;
    for (const char *p = html; (p = strstr(p, "href=\"")); ) {
        p += 6;
        const char *q = strchr(p, '"');
        char name[512];
        snprintf(name, sizeof name, "gal/%.*s", (int)(q - p), p);
        char *fp = tu_path(d, name);
        cr_expect(tu_exists(fp), "broken link %s", name);
        free(fp);
        links++;
    }
    int thumbs = 0;
    for (const char *p = html; (p = strstr(p, "src=\"")); ) {
        p += 5;
        const char *q = strchr(p, '"');
        char name[512];
        snprintf(name, sizeof name, "gal/%.*s", (int)(q - p), p);
        char *fp = tu_path(d, name);
        cr_expect(tu_exists(fp), "missing thumbnail %s", name);
        free(fp);
        thumbs++;
    }
    /* 12 good images (build_mixed): one thumbnail each, two links each
     * (the thumbnail and "attention") */
    cr_expect_eq(thumbs, 12);
    cr_expect_eq(links, 24);
    /* error messages are shown */
    cr_expect(strstr(html, "mix/trunc.png: "), "no error shown for trunc.png");
    free(html), free(gp);
    /* overlays: a contact sheet per good image */
    cr_assert_eq(sh("test $(ls '%s/ov' | grep -c '_sheet.png$') -eq 12", d), 0);
    /* nothing was written into the input folder */
    cr_assert_eq(sh("test -z \"$(cd '%s/mix' && find . -name '*_sheet.png' -o -name '*.html' -o -name '*_thumb.jpg')\"",
                    d), 0);
}

Test(batch, refuses_to_write_over_inputs) {
    const char *d = setup_dir("batch_refuse", 3);
    char *o, *e;
    char *a = tu_path(d, "synth/images/000001.png");
    size_t n0;
    char *before = tu_read(a, &n0);
    /* OUT is a file the walk finds */
    cr_expect_eq(imcap_in(d, &o, &e, "batch --model m.safetensors synth/images -o synth/images/000001.png"), 2);
    cr_expect(strstr(e, "refusing"), "%s", e);
    free(o), free(e);
    /* OUT is a file named as an input */
    cr_expect_eq(imcap_in(d, &o, &e, "batch --model m.safetensors synth/images/000001.png -o synth/images/000001.png"),
                 2);
    free(o), free(e);
    size_t n1;
    char *after = tu_read(a, &n1);
    cr_assert_eq(n0, n1);
    cr_expect_eq(memcmp(before, after, n0), 0, "an input was modified");
    free(before), free(after), free(a);
    /* rendered files into an input folder */
    cr_expect_eq(imcap_in(d, &o, &e, "batch --model m.safetensors synth/images --html synth/images"), 2);
    cr_expect(strstr(e, "refusing"), "%s", e);
    free(o), free(e);
    cr_assert_eq(sh("test $(ls '%s/synth/images' | wc -l) -eq 3", d), 0);
    /* no partial file left behind by any of these */
    cr_assert_eq(sh("test -z \"$(find '%s' -name '*.partial')\"", d), 0);
}

Test(batch, resume_refuses_what_it_cannot_continue) {
    const char *d = setup_dir("batch_resume_refuse", 4);
    char *o, *e;
    cr_assert_eq(imcap_in(d, &o, &e, "batch -q --model m.safetensors synth/images -o out.csv"), 0, "%s", e);
    free(o), free(e);
    char *op = tu_path(d, "out.csv");
    char *before = tu_read(op, NULL);
    /* another format, or the timing variant, than the run to continue */
    cr_expect_eq(imcap_in(d, &o, &e, "batch --model m.safetensors synth/images -o out.csv --resume --format tsv"), 3);
    cr_expect(strstr(e, "--format"), "%s", e);
    free(o), free(e);
    cr_expect_eq(imcap_in(d, &o, &e, "batch --model m.safetensors synth/images -o out.csv --resume --no-timing"), 3);
    free(o), free(e);
    /* a file that is not an imcap batch output */
    char *np = tu_path(d, "notes.jsonl");
    tu_write(np, "hello\n", 6);
    cr_expect_eq(imcap_in(d, &o, &e, "batch --model m.safetensors synth/images -o notes.jsonl --resume"), 3);
    cr_expect(strstr(e, "not an imcap batch output"), "%s", e);
    free(o), free(e);
    char *after = tu_read(op, NULL), *notes = tu_read(np, NULL);
    cr_expect_str_eq(after, before, "a refused --resume changed OUT");
    cr_expect_str_eq(notes, "hello\n");
    /* and none of them left an OUT.partial that would block the next run */
    cr_assert_eq(sh("test -z \"$(find '%s' -name '*.partial')\"", d), 0);
    /* a resumed run whose inputs shrank drops the records of the others */
    cr_assert_eq(sh("cd '%s' && mkdir less && cp synth/images/00000[01].png less/ && rm synth/images/000003.png", d), 0);
    cr_assert_eq(imcap_in(d, &o, &e, "batch --model m.safetensors synth/images -o out.csv --resume"), 0, "%s", e);
    cr_expect_eq(captioned_now(e), 0, "%s", e);
    cr_expect(strstr(e, "left out"), "%s", e);
    free(o), free(e);
    char *shrunk = tu_read(op, NULL);
    cr_expect_eq(count_lines(shrunk), 1 + 3, "header + the 3 images left");
    cr_expect(!strstr(shrunk, "000003.png"));
    free(before), free(after), free(notes), free(np), free(op), free(shrunk);
}

Test(batch, usage_errors) {
    const char *d = setup_dir("batch_usage", 1);
    const char *bad[] = {"--shard 0/3", "--shard 4/3", "--shard 1/0", "--shard a/b", "--shard 1/", "--format xml",
                         "--resume", "--threads 0", "--bogus", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *o, *e;
        const char *inputs = *bad[i] ? "synth/images" : "";
        cr_expect_eq(imcap_in(d, &o, &e, "batch --model m.safetensors %s %s", bad[i], inputs), 2, "'%s': %s", bad[i],
                     e);
        free(o), free(e);
    }
    /* a model that cannot be loaded is fatal */
    char *o, *e;
    cr_expect_eq(imcap_in(d, &o, &e, "batch --model nonexistent.safetensors synth/images"), 3);
    free(o), free(e);
    cr_expect_eq(imcap_in(d, &o, &e, "merge only-out.jsonl"), 2);
    free(o), free(e);
    cr_expect_eq(imcap_in(d, &o, &e, "merge out.jsonl missing.jsonl"), 3);
    free(o), free(e);
}

/* The in-domain columns of csv/tsv: filled with the shipped model; a file
 * written before them keeps its layout on --resume; merge refuses to mix
 * the two layouts. */
Test(batch, domain_columns_and_the_older_layout) {
    const char *d = tu_tmpdir("batch_domain");
    char cmd[4096], *out = NULL, *err = NULL;
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/in' && cp '%s' '%s' '%s' '%s/in/'", d, tu_src("samples/scene_00.png"),
             tu_src("samples/scene_01.png"), tu_src("tests/data/images/photo.jpg"), d);
    cr_assert_eq(tu_run(cmd, NULL, NULL), 0);
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' batch in -o new.csv --no-timing -q", d, tu_exe());
    cr_assert_eq(tu_run(cmd, NULL, &err), 0, "%s", err);
    free(err);
    snprintf(cmd, sizeof cmd, "%s/new.csv", d);
    size_t n;
    char *csv = tu_read(cmd, &n);
    cr_assert_not_null(csv);
    cr_expect(!strncmp(csv, "path,caption,score,domain_score,in_domain,width,height,error\n", 60), "%.80s", csv);
    cr_expect(strstr(csv, ",true,") && strstr(csv, "photo.jpg,") && strstr(csv, ",false,"), "%s", csv);
    free(csv);
    /* an output written before the domain columns, cut after one record, resumed */
    snprintf(cmd, sizeof cmd,
             "cd '%s' && printf 'path,caption,score,width,height,error\\nin/photo.jpg,old caption,-1.5,64,48,\\n' > old.csv && "
             "'%s' batch in -o old.csv --no-timing -q --resume && cat old.csv",
             d, tu_exe());
    cr_assert_eq(tu_run(cmd, &out, &err), 0, "%s", err);
    cr_expect(out && !strncmp(out, "path,caption,score,width,height,error\n", 38), "the layout changed: %s", out);
    cr_expect(out && strstr(out, "old caption") && strstr(out, "scene_01.png"), "%s", out);
    cr_expect(out && !strstr(out, "true") && !strstr(out, "false"), "domain values in the old layout: %s", out);
    free(out), free(err);
    /* merge refuses the mix */
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' merge merged.csv new.csv old.csv", d, tu_exe());
    cr_expect_neq(tu_run(cmd, NULL, &err), 0);
    cr_expect(err && strstr(err, "without domain columns"), "%s", err);
    free(err);
}

/* ------------------------------------------------------------ the library */

typedef struct {
    char *s;
    size_t n;
} sink_buf;

static int to_buf(void *ctx, const void *data, size_t n) {
    sink_buf *b = ctx;
    char *s = realloc(b->s, b->n + n + 1);
    if (!s) return -1;
    memcpy(s + b->n, data, n);
    b->s = s, b->n += n, b->s[b->n] = 0;
    return 0;
}

/* What a library user does with imcap.h alone: batch runs over two shards
 * into files, then imcap_merge, and one run into a sink: both equal the
 * CLI's one run, byte for byte. */
Test(batch, library_batch_shards_and_merge) {
    const char *d = setup_dir("batch_library", 12);
    char *o, *e;
    char *mp = tu_path(d, "m.safetensors"), *images = tu_path(d, "synth/images");
    cr_assert_eq(imcap_in(d, &o, &e, "batch -q --no-timing --model m.safetensors '%s' -o cli.jsonl", images), 0, "%s", e);
    free(o), free(e);
    imcap_model *m = NULL;
    imcap_error err;
    cr_assert_eq(imcap_model_load(mp, &m, &err), IMCAP_OK, "%s", err.msg);
    const char *inputs[] = {images};
    char *shard_out[2];
    for (int i = 0; i < 2; i++) {
        char name[32];
        snprintf(name, sizeof name, "shard%d.jsonl", i + 1);
        shard_out[i] = tu_path(d, name);
        imcap_batch_options bo;
        imcap_batch_options_default(&bo);
        bo.inputs = inputs, bo.n_inputs = 1, bo.out = shard_out[i], bo.timing = 0;
        bo.shard_index = i + 1, bo.shard_count = 2, bo.threads = 1;
        imcap_batch_summary sum;
        cr_assert_eq(imcap_batch_run(m, &bo, NULL, &sum, &err), IMCAP_OK, "%s", err.msg);
        cr_expect_eq(sum.written, sum.inputs);
    }
    char *merged = tu_path(d, "merged.jsonl");
    imcap_merge_summary ms;
    cr_assert_eq(imcap_merge((const char *const *)shard_out, 2, merged, NULL, &ms, &err), IMCAP_OK, "%s", err.msg);
    cr_expect_eq(ms.records, 12);
    char *cli_path = tu_path(d, "cli.jsonl");
    char *cli = tu_read(cli_path, NULL), *lib = tu_read(merged, NULL);
    cr_expect_str_eq(lib, cli, "imcap_batch_run shards + imcap_merge differ from imcap batch");

    /* one run into a sink, with a csv layout; and a refusal by name */
    sink_buf sb = {0};
    imcap_batch_callbacks cb = {&sb, to_buf, NULL, NULL, NULL};
    imcap_batch_options bo;
    imcap_batch_options_default(&bo);
    bo.inputs = inputs, bo.n_inputs = 1, bo.timing = 0;
    cr_assert_eq(imcap_batch_run(m, &bo, &cb, NULL, &err), IMCAP_OK, "%s", err.msg);
    cr_expect_str_eq(sb.s, cli, "the sink got other bytes than imcap batch's stdout");
    bo.resume = 1;
    cr_expect_eq(imcap_batch_run(m, &bo, &cb, NULL, &err), IMCAP_E_ARG);
    cr_expect(strstr(err.msg, "--resume"), "%s", err.msg);
    cr_expect_eq(imcap_merge((const char *const *)shard_out, 2, shard_out[0], NULL, NULL, &err), IMCAP_E_ARG);
    cr_expect(strstr(err.msg, shard_out[0]), "%s", err.msg);
    free(sb.s);
    free(cli), free(lib), free(cli_path), free(merged), free(mp), free(images);
    for (int i = 0; i < 2; i++) free(shard_out[i]);
    imcap_model_free(m);
}

/* --json: the summaries of batch and merge as one JSON object on stdout */
Test(batch, json_summaries) {
    const char *d = setup_dir("batch_json", 5);
    char *o, *e;
    cr_assert_eq(imcap_in(d, &o, &e, "batch -q --json --model m.safetensors synth/images -o a.jsonl"), 0, "%s", e);
    cJSON *j = cJSON_Parse(o);
    cr_assert(j, "not JSON: %s", o);
    cr_expect_eq(cJSON_GetObjectItem(j, "inputs")->valueint, 5);
    cr_expect_eq(cJSON_GetObjectItem(j, "captioned")->valueint, 5);
    cr_expect_eq(cJSON_GetObjectItem(j, "failed")->valueint, 0);
    cr_expect_str_eq(cJSON_GetObjectItem(j, "output")->valuestring, "a.jsonl");
    cJSON_Delete(j);
    free(o), free(e);
    cr_assert_eq(imcap_in(d, &o, &e, "merge -q --json -o m.jsonl a.jsonl"), 0, "%s", e);
    j = cJSON_Parse(o);
    cr_assert(j, "not JSON: %s", o);
    cr_expect_eq(cJSON_GetObjectItem(j, "records")->valueint, 5);
    cJSON_Delete(j);
    free(o), free(e);
    /* without -o the records own stdout */
    cr_expect_eq(imcap_in(d, &o, &e, "batch --json --model m.safetensors synth/images"), 2);
    cr_expect(strstr(e, "--json"), "%s", e);
    free(o), free(e);
}
