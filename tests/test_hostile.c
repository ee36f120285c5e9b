/* test_hostile.c — bounded cost of hostile input (issue 12, part 5).
 *
 * Every input here is built to make a careless reader allocate or loop
 * without end: a PNG whose header declares more pixels than the limits, a
 * zlib bomb under them, JSON nested 100000 deep, a model header that claims
 * 2^60 bytes or a vocabulary of millions of words, tensor shapes whose
 * product overflows, a data set of many tiny images, paths past PATH_MAX.
 * Each goes to the CLI, which runs under an address-space ceiling
 * (RLIMIT_AS, 1 GiB; not under ASan, whose shadow memory reserves terabytes
 * of address space) and a wall-clock ceiling (20 s, then SIGKILL). A case
 * passes when the run stays under both, exits as documented (non-zero for
 * bad input) and says which file and what was wrong on stderr. Each run's
 * time and peak RSS (wait4) are printed as "hostile: ..." lines, which
 * docs/reliability.md quotes. Inputs are generated here, so no large
 * file is committed. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "imcap.h"
#include "testutil.h"

#define CFG "tests/data/models/tiny_config.json"
#define WORDS "tests/data/models/tiny_words.txt"
/* model.h's IMCAP_MAX_VOCAB, which the test cannot include (it is not
 * public); the 2M-word case checks the message names this number */
#define IMCAP_MAX_VOCAB_WORDS 1000000
#define AS_LIMIT (1024L * 1024 * 1024)
#define TIME_LIMIT 20.0

/* ------------------------------------------------------------ processes */

static int under_asan(void) {
#if defined(__SANITIZE_ADDRESS__)
    return 1;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    return 1;
#endif
#endif
    /* the driver may be built without ASan while imcap is not */
    const char *o = getenv("ASAN_OPTIONS");
    return o != NULL;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct {
    int rc;       /* exit status, 128 + signal when killed */
    double secs;  /* wall clock */
    long rss_kb;  /* peak resident set (ru_maxrss) */
    int timed_out;
    char *err;    /* stderr */
} result;

static void result_free(result *r) { free(r->err); }

/* Runs `imcap ARGS` in dir under the ceilings; stdout is discarded. */
static result run(const char *name, const char *dir, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static result run(const char *name, const char *dir, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int need = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *args = malloc((size_t)need + 1);
    va_start(ap, fmt);
    vsnprintf(args, (size_t)need + 1, fmt, ap);
    va_end(ap);
    size_t cn = strlen(args) + strlen(tu_exe()) + 32;
    char *cmd = malloc(cn);
    snprintf(cmd, cn, "exec '%s' %s", tu_exe(), args);
    char errpath[4200];
    snprintf(errpath, sizeof errpath, "%s/stderr.%s", dir, name);
    int asan = under_asan();
    double t0 = now_s();
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        int nul = open("/dev/null", O_RDWR);
        int ef = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (nul < 0 || ef < 0 || chdir(dir) != 0) _exit(126);
        dup2(nul, 0), dup2(nul, 1), dup2(ef, 2);
        if (!asan) {
            struct rlimit rl = {AS_LIMIT, AS_LIMIT};
            if (setrlimit(RLIMIT_AS, &rl) != 0) _exit(125);
        }
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    free(cmd);
    free(args);
    result r = {0};
    int st = 0;
    struct rusage ru;
    for (;;) {
        pid_t w = wait4(pid, &st, WNOHANG, &ru);
        if (w == pid) break;
        cr_assert(w == 0 || errno == EINTR, "wait4: %s", strerror(errno));
        if (now_s() - t0 > TIME_LIMIT) {
            kill(pid, SIGKILL);
            while (wait4(pid, &st, 0, &ru) < 0 && errno == EINTR) {}
            r.timed_out = 1;
            break;
        }
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    r.secs = now_s() - t0;
    r.rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    r.rss_kb = ru.ru_maxrss;
    r.err = tu_read(errpath, NULL);
    cr_assert(r.err, "cannot read %s", errpath);
    fprintf(stderr, "hostile: %-28s rc=%d %7.3f s %8ld KB peak RSS%s\n", name, r.rc, r.secs, r.rss_kb,
            asan ? " (ASan, no RLIMIT_AS)" : "");
    cr_assert(!r.timed_out, "%s: still running after %.0f s (killed)", name, TIME_LIMIT);
    return r;
}

/* A refusal: non-zero exit (not a crash), stderr naming `file` and holding
 * `why`, which is the part of the message that names the limit or the fault. */
static void expect_refused(const char *name, const result *r, const char *file, const char *why) {
    cr_expect(r->rc != 0 && r->rc < 128, "%s: exit %d (want a refusal, not 0 or a signal); stderr: %s", name, r->rc,
              r->err);
    cr_expect(strstr(r->err, file) != NULL, "%s: stderr does not name %s: %s", name, file, r->err);
    cr_expect(strstr(r->err, why) != NULL, "%s: stderr does not say \"%s\": %s", name, why, r->err);
    cr_expect(!strstr(r->err, "AddressSanitizer") && !strstr(r->err, "runtime error"), "%s: sanitizer report: %s",
              name, r->err);
}

static void write_file(const char *dir, const char *name, const void *data, size_t n) {
    char p[4300];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    tu_write(p, data, n);
}

/* A work folder holding m.safetensors (the tiny random model). */
static const char *setup(const char *name) {
    static char d[4096];
    snprintf(d, sizeof d, "%s", tu_tmpdir(name));
    char cmd[12000];
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' init --config '%s' --vocab '%s' --seed 1 -o m.safetensors", d, tu_exe(),
             tu_src(CFG), tu_src(WORDS));
    cr_assert_eq(tu_run(cmd, NULL, NULL), 0, "%s", cmd);
    return d;
}

/* ------------------------------------------------------------ PNG */

static uint32_t crc_table[256];

static uint32_t crc32_png(const unsigned char *p, size_t n) {
    if (!crc_table[1])
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            crc_table[i] = c;
        }
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) c = crc_table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

typedef struct {
    unsigned char *b;
    size_t n, cap;
    uint64_t bits;
    int nbits;
} buf;

static void put(buf *o, const void *p, size_t n) {
    if (o->n + n > o->cap) {
        o->cap = (o->n + n) * 2;
        o->b = realloc(o->b, o->cap);
        cr_assert(o->b);
    }
    memcpy(o->b + o->n, p, n);
    o->n += n;
}

static void puts_(buf *o, const char *s) { put(o, s, strlen(s)); }

static void put32(buf *o, uint32_t v) {
    unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16), (unsigned char)(v >> 8), (unsigned char)v};
    put(o, b, 4);
}

/* deflate writes its bits LSB first; Huffman codes are sent MSB first */
static void bits(buf *o, uint32_t v, int n) {
    o->bits |= (uint64_t)v << o->nbits;
    o->nbits += n;
    while (o->nbits >= 8) {
        unsigned char c = (unsigned char)o->bits;
        put(o, &c, 1);
        o->bits >>= 8, o->nbits -= 8;
    }
}

static void huff(buf *o, uint32_t code, int n) {
    uint32_t r = 0;
    for (int i = 0; i < n; i++) r |= ((code >> i) & 1) << (n - 1 - i);
    bits(o, r, n);
}

/* A zlib stream inflating to `len` zero bytes: one fixed-Huffman block,
 * a literal 0 and then copies of 258 bytes at distance 1 (13 bits each,
 * a ratio of about 160:1); a tail shorter than 3 bytes goes as literals. */
static void zlib_zeros(buf *o, uint64_t len) {
    unsigned char hdr[2] = {0x78, 0x01};
    put(o, hdr, 2);
    bits(o, 1, 1); /* BFINAL */
    bits(o, 1, 2); /* BTYPE = 01, fixed Huffman */
    uint64_t left = len;
    huff(o, 0x30, 8), left--; /* literal 0: codes 0x30.. for 0-143, 8 bits */
    while (left >= 3) {
        uint64_t l = left > 258 ? 258 : left;
        if (left - l > 0 && left - l < 3) l = left - 3; /* never leave a tail of 1-2 unless it cannot be helped */
        if (l < 3) break;
        /* lengths 3..258: symbols 257..285 with extra bits */
        static const int base[] = {3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31,
                                   35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
        static const int extra[] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
        int s = 28;
        while (base[s] > (int)l) s--;
        int sym = 257 + s;
        if (sym <= 279) huff(o, (uint32_t)(sym - 256), 7); /* 256-279: 7-bit codes from 0 */
        else huff(o, (uint32_t)(0xC0 + sym - 280), 8);    /* 280-287: 8-bit codes from 0xC0 */
        bits(o, (uint32_t)((int)l - base[s]), extra[s]);
        huff(o, 0, 5); /* distance code 0 = distance 1 */
        left -= l;
    }
    while (left--) huff(o, 0x30, 8);
    huff(o, 0, 7); /* end of block (256) */
    if (o->nbits) bits(o, 0, 8 - o->nbits);
    /* Adler-32 of zeros: a stays 1, b adds 1 per byte */
    put32(o, (uint32_t)((len % 65521) << 16 | 1));
}

static void chunk(buf *o, const char *type, const unsigned char *d, size_t n) {
    put32(o, (uint32_t)n);
    size_t at = o->n;
    put(o, type, 4);
    if (n) put(o, d, n);
    put32(o, crc32_png(o->b + at, n + 4));
}

/* A black 8-bit RGB PNG of w x h whose IDAT inflates to the whole image
 * (filter byte 0 and zeros on every row), or to at most `cap` bytes of it. */
static buf png_black(uint32_t w, uint32_t h, uint64_t cap) {
    buf o = {0};
    put(&o, "\x89PNG\r\n\x1a\n", 8);
    unsigned char ihdr[13] = {(unsigned char)(w >> 24), (unsigned char)(w >> 16), (unsigned char)(w >> 8), (unsigned char)w,
                              (unsigned char)(h >> 24), (unsigned char)(h >> 16), (unsigned char)(h >> 8), (unsigned char)h,
                              8, 2, 0, 0, 0};
    chunk(&o, "IHDR", ihdr, 13);
    uint64_t raw = (uint64_t)h * (1 + 3 * (uint64_t)w);
    buf z = {0};
    zlib_zeros(&z, raw < cap ? raw : cap);
    chunk(&o, "IDAT", z.b, z.n);
    free(z.b);
    chunk(&o, "IEND", NULL, 0);
    return o;
}

/* The PNG writer above is checked on a small image, which must caption:
 * otherwise the refusals below could come from a broken file, not a limit. */
Test(hostile, png_writer_makes_valid_png) {
    const char *d = setup("hostile-pngok");
    buf p = png_black(40, 30, UINT64_MAX);
    write_file(d, "small.png", p.b, p.n);
    free(p.b);
    result r = run("png-small-valid", d, "caption -m m.safetensors --beam 1 small.png");
    cr_expect_eq(r.rc, 0, "a valid 40x30 PNG is refused: %s", r.err);
    result_free(&r);
}

Test(hostile, png_side_bomb) {
    const char *d = setup("hostile-side");
    /* 60000 x 60000 declared; the IDAT inflates to 64 MiB, enough to hurt
     * if a decoder started on it */
    buf p = png_black(60000, 60000, 64ull << 20);
    write_file(d, "side.png", p.b, p.n);
    cr_assert_lt(p.n, 1u << 20, "the bomb is meant to be small (%zu bytes)", p.n);
    free(p.b);
    result r = run("png-60000x60000", d, "caption -m m.safetensors side.png");
    expect_refused("png-60000x60000", &r, "side.png", "exceeds the limit of 16384 pixels per side");
    cr_expect_lt(r.secs, 2.0, "refused in %.2f s, not before decoding", r.secs);
    result_free(&r);
}

Test(hostile, png_pixel_bomb) {
    const char *d = setup("hostile-pixels");
    /* both sides within IMCAP_MAX_SIDE, the product over IMCAP_MAX_PIXELS */
    cr_assert_leq(16384, IMCAP_MAX_SIDE);
    cr_assert_gt(16384LL * 16384, IMCAP_MAX_PIXELS);
    buf p = png_black(16384, 16384, 64ull << 20);
    write_file(d, "pixels.png", p.b, p.n);
    free(p.b);
    result r = run("png-16384x16384", d, "caption -m m.safetensors pixels.png");
    char why[128];
    snprintf(why, sizeof why, "exceeds the limit of %lld pixels", (long long)IMCAP_MAX_PIXELS);
    expect_refused("png-16384x16384", &r, "pixels.png", why);
    cr_expect_lt(r.secs, 2.0, "refused in %.2f s, not before decoding", r.secs);
    result_free(&r);
}

/* The largest image the limits let through, really inflated (192 MiB of
 * RGB from a 1.2 MB file): captioned, within the ceilings. */
Test(hostile, png_at_the_limit, .timeout = 120) {
    const char *d = setup("hostile-atlimit");
    uint32_t w = IMCAP_MAX_SIDE, h = (uint32_t)(IMCAP_MAX_PIXELS / IMCAP_MAX_SIDE);
    buf p = png_black(w, h, UINT64_MAX);
    write_file(d, "limit.png", p.b, p.n);
    free(p.b);
    result r = run("png-16384x4096-inflated", d, "caption -m m.safetensors --beam 1 limit.png");
    cr_expect_eq(r.rc, 0, "an image at the limits is not captioned: %s", r.err);
    result_free(&r);
}

/* A BMP header declaring 60000 x 60000 goes through stb's path, not png_fast. */
Test(hostile, bmp_side_bomb) {
    const char *d = setup("hostile-bmp");
    unsigned char b[64] = {'B', 'M'};
    uint32_t v[] = {0, 0, 54, 40, 60000, 60000};
    uint32_t fields[] = {2, 6, 10, 14, 18, 22};
    for (int i = 0; i < 6; i++)
        for (int k = 0; k < 4; k++) b[fields[i] + k] = (unsigned char)(v[i] >> (8 * k));
    b[26] = 1, b[28] = 24; /* planes, bits per pixel */
    write_file(d, "side.bmp", b, sizeof b);
    result r = run("bmp-60000x60000", d, "caption -m m.safetensors side.bmp");
    expect_refused("bmp-60000x60000", &r, "side.bmp", "16384");
    result_free(&r);
}

/* ------------------------------------------------------------ JSON */

static char *nested(size_t depth, const char *open) {
    size_t k = strlen(open);
    char *s = malloc(depth * k + 1);
    for (size_t i = 0; i < depth; i++) memcpy(s + i * k, open, k);
    s[depth * k] = 0;
    return s;
}

Test(hostile, deep_json_data_set_and_results) {
    const char *d = setup("hostile-json");
    char *arr = nested(100000, "["), *obj = nested(100000, "{\"a\":");
    write_file(d, "deep.json", arr, strlen(arr));
    write_file(d, "deepobj.json", obj, strlen(obj));
    free(arr), free(obj);
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' synth --count 2 --size 32 --seed 1 -o syn", d, tu_exe());
    cr_assert_eq(tu_run(cmd, NULL, NULL), 0);

    result r = run("eval-data-deep[", d, "eval -m m.safetensors --data deep.json");
    expect_refused("eval-data-deep[", &r, "deep.json", "nested deeper than");
    result_free(&r);
    r = run("eval-data-deep{", d, "eval -m m.safetensors --data deepobj.json");
    expect_refused("eval-data-deep{", &r, "deepobj.json", "nested deeper than");
    result_free(&r);
    r = run("eval-results-deep[", d, "eval --data syn/dataset.json --split all --results deep.json");
    expect_refused("eval-results-deep[", &r, "deep.json", "nested deeper than");
    result_free(&r);
    r = run("train-data-deep[", d, "train --data deep.json --images . --config '%s' -o t.safetensors -q", tu_src(CFG));
    expect_refused("train-data-deep[", &r, "deep.json", "nested deeper than");
    result_free(&r);
}

/* ------------------------------------------------------------ models */

/* A safetensors file: the 8-byte little-endian length `n` (which may lie)
 * followed by `hdr` and `data_len` zero bytes. */
static void write_st(const char *dir, const char *name, uint64_t n, const char *hdr, size_t data_len) {
    size_t hl = strlen(hdr);
    unsigned char *b = calloc(8 + hl + data_len + 1, 1);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(n >> (8 * i));
    memcpy(b + 8, hdr, hl);
    write_file(dir, name, b, 8 + hl + data_len);
    free(b);
}

Test(hostile, model_headers) {
    const char *d = setup("hostile-model");
    buf p = png_black(32, 32, UINT64_MAX);
    write_file(d, "x.png", p.b, p.n);
    free(p.b);

    char *deep = nested(100000, "{\"a\":");
    write_st(d, "deep.safetensors", strlen(deep), deep, 0);
    free(deep);
    result r = run("model-header-deep", d, "caption -m deep.safetensors x.png");
    expect_refused("model-header-deep", &r, "deep.safetensors", "nested deeper than");
    result_free(&r);

    write_st(d, "huge.safetensors", 1ull << 60, "{}", 0);
    r = run("model-header-2^60", d, "caption -m huge.safetensors x.png");
    expect_refused("model-header-2^60", &r, "huge.safetensors", "exceeds the limit of");
    result_free(&r);

    /* within the limit, but longer than the file */
    write_st(d, "long.safetensors", 99000000, "{}", 0);
    r = run("model-header-past-eof", d, "caption -m long.safetensors x.png");
    expect_refused("model-header-past-eof", &r, "long.safetensors", "runs past the end of the file");
    result_free(&r);

    /* 2^40 per side (the largest the reader takes) over 4 dimensions: 2^160 elements */
    const char *ovf = "{\"t\": {\"dtype\": \"F32\", \"shape\": [1099511627776, 1099511627776, 1099511627776, "
                      "1099511627776], \"data_offsets\": [0, 4]}}";
    write_st(d, "ovf.safetensors", strlen(ovf), ovf, 4);
    r = run("model-shape-overflow", d, "caption -m ovf.safetensors x.png");
    expect_refused("model-shape-overflow", &r, "ovf.safetensors", "data_offsets span 4 bytes");
    result_free(&r);

    /* a product that wraps 64 bits to exactly the span */
    const char *wrap = "{\"t\": {\"dtype\": \"U8\", \"shape\": [4294967296, 4294967296, 4], \"data_offsets\": [0, 0]}}";
    write_st(d, "wrap.safetensors", strlen(wrap), wrap, 0);
    r = run("model-shape-wraps-to-0", d, "caption -m wrap.safetensors x.png");
    expect_refused("model-shape-wraps-to-0", &r, "wrap.safetensors", "data_offsets span 0 bytes");
    result_free(&r);

    const char *dims = "{\"t\": {\"dtype\": \"U8\", \"shape\": [1,1,1,1,1,1,1,1,1], \"data_offsets\": [0, 1]}}";
    write_st(d, "dims.safetensors", strlen(dims), dims, 1);
    r = run("model-9-dims", d, "caption -m dims.safetensors x.png");
    expect_refused("model-9-dims", &r, "dims.safetensors", "9 dimensions (at most 8)");
    result_free(&r);
}

/* JSON-escapes s into o (for a JSON text stored as a metadata string). */
static void put_escaped(buf *o, const char *s) {
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') put(o, "\\", 1);
        if (*s == '\n') put(o, "\\n", 2);
        else put(o, s, 1);
    }
}

/* A model header whose imcap.vocab lists `words` words (and no tensors: a
 * reader that checks what it can before the vocabulary still has to read
 * the vocabulary to know the tensors' shapes). */
static void vocab_model(const char *dir, const char *name, long words) {
    char *cfg = tu_read(tu_src(CFG), NULL);
    cr_assert(cfg);
    buf h = {0};
    puts_(&h, "{\"__metadata__\": {\"imcap.format\": \"1\", \"imcap.config\": \"");
    put_escaped(&h, cfg);
    free(cfg);
    puts_(&h, "\", \"imcap.vocab\": \"[\\\"<pad>\\\", \\\"<start>\\\", \\\"<end>\\\", \\\"<unk>\\\"");
    char w[32];
    for (long i = 0; i < words - 4; i++) put(&h, w, (size_t)snprintf(w, sizeof w, ", \\\"w%ld\\\"", i));
    put(&h, "]\"}}", 4);
    put(&h, "", 1);
    h.n--;
    write_st(dir, name, h.n, (const char *)h.b, 0);
    free(h.b);
}

Test(hostile, huge_vocabulary, .timeout = 120) {
    const char *d = setup("hostile-vocab");
    buf p = png_black(32, 32, UINT64_MAX);
    write_file(d, "x.png", p.b, p.n);
    free(p.b);
    /* 10 million words do not fit in the header limit (about 140 MB) */
    vocab_model(d, "v10m.safetensors", 10000000);
    result r = run("vocab-10M-words", d, "caption -m v10m.safetensors x.png");
    expect_refused("vocab-10M-words", &r, "v10m.safetensors", "exceeds the limit of");
    result_free(&r);
    /* 2 million fit (about 30 MB): refused by the vocabulary limit */
    vocab_model(d, "v2m.safetensors", 2000000);
    r = run("vocab-2M-words", d, "caption -m v2m.safetensors x.png");
    expect_refused("vocab-2M-words", &r, "v2m.safetensors", "more than 1000000 entries, the vocabulary size limit");
    result_free(&r);
    /* at the limit the vocabulary is read, and the file is refused for what
     * comes next (it has no tensors) */
    vocab_model(d, "v1m.safetensors", IMCAP_MAX_VOCAB_WORDS);
    r = run("vocab-1M-words", d, "caption -m v1m.safetensors x.png");
    expect_refused("vocab-1M-words", &r, "v1m.safetensors", "missing tensor");
    result_free(&r);
}

/* ------------------------------------------------------------ many small */

/* A data set of n images with one sentence each, and a results file with a
 * caption for each; returns the seconds eval takes to score it. */
static double many(const char *d, int n, const char *tag) {
    buf ds = {0}, rs = {0};
    put(&ds, "{\"images\": [", 12);
    put(&rs, "[", 1);
    char e[256];
    for (int i = 0; i < n; i++) {
        put(&ds, e, (size_t)snprintf(e, sizeof e,
                                     "%s{\"filename\": \"%d.png\", \"imgid\": %d, \"split\": \"test\", \"sentences\": "
                                     "[{\"raw\": \"a red circle\", \"tokens\": [\"a\", \"red\", \"circle\"]}]}",
                                     i ? "," : "", i, i));
        put(&rs, e, (size_t)snprintf(e, sizeof e, "%s{\"image_id\": %d, \"caption\": \"a red circle\"}", i ? "," : "", i));
    }
    put(&ds, "]}", 2);
    put(&rs, "]", 1);
    char dn[64], rn[64], name[64];
    snprintf(dn, sizeof dn, "many%s.json", tag);
    snprintf(rn, sizeof rn, "res%s.json", tag);
    snprintf(name, sizeof name, "eval-%s-images", tag);
    write_file(d, dn, ds.b, ds.n);
    write_file(d, rn, rs.b, rs.n);
    fprintf(stderr, "hostile: %s: data set %zu bytes, results %zu bytes\n", name, ds.n, rs.n);
    free(ds.b), free(rs.b);
    result r = run(name, d, "eval --data %s --results %s --json", dn, rn);
    cr_expect_eq(r.rc, 0, "%s: %s", name, r.err);
    double t = r.secs;
    result_free(&r);
    return t;
}

Test(hostile, many_tiny_images_linear, .timeout = 120) {
    const char *d = setup("hostile-many");
    double t1 = many(d, 25000, "25k");
    double t4 = many(d, 100000, "100k");
    /* four times the input: linear is about 4x, quadratic 16x; the slack
     * absorbs start-up and a busy machine */
    cr_expect_lt(t4, 8 * t1 + 1.0, "100k images took %.2f s, 25k took %.2f s: not linear", t4, t1);
}

/* ------------------------------------------------------------ paths */

Test(hostile, path_beyond_path_max) {
    const char *d = setup("hostile-path");
    size_t n = PATH_MAX + 100;
    char *p = malloc(n + 8);
    for (size_t i = 0; i < n; i += 2) p[i] = 'a', p[i + 1] = '/';
    memcpy(p + n, "x.png", 6);
    char *q = malloc(n + 8); /* one component longer than NAME_MAX */
    memset(q, 'b', n);
    memcpy(q + n, ".png", 5);
    result r = run("caption-path>PATH_MAX", d, "caption -m m.safetensors %s", p);
    expect_refused("caption-path>PATH_MAX", &r, "a/a/a/", "too long");
    result_free(&r);
    r = run("caption-name>NAME_MAX", d, "caption -m m.safetensors %s", q);
    expect_refused("caption-name>NAME_MAX", &r, "bbbb.png", "too long");
    result_free(&r);
    /* batch writes a failed record and exits 1; the record says why */
    r = run("batch-path>PATH_MAX", d, "batch -m m.safetensors %s -o out.jsonl", p);
    cr_expect_eq(r.rc, 1, "batch-path>PATH_MAX: exit %d: %s", r.rc, r.err);
    cr_expect(strstr(r.err, "1 failed"), "batch-path>PATH_MAX: %s", r.err);
    result_free(&r);
    char op[4300];
    snprintf(op, sizeof op, "%s/out.jsonl", d);
    char *rec = tu_read(op, NULL);
    cr_assert(rec, "batch wrote no %s", op);
    cr_expect(strstr(rec, "\"error\"") && strstr(rec, "a/a/a/") && strstr(rec, "too long"),
              "the failed record does not name the path and the reason: %.300s", rec);
    free(rec);
    r = run("model-path>PATH_MAX", d, "caption -m %s x.png", p);
    expect_refused("model-path>PATH_MAX", &r, "a/a/a/", "too long");
    result_free(&r);
    free(p), free(q);
}
