#define _POSIX_C_SOURCE 200809L
#include "util.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <stdatomic.h>
#include <dirent.h>
#include <signal.h>

const char *imcap_status_name(imcap_status s) {
    switch (s) {
    case IMCAP_OK: return "ok";
    case IMCAP_E_ARG: return "argument";
    case IMCAP_E_IO: return "io";
    case IMCAP_E_FORMAT: return "format";
    case IMCAP_E_IMAGE: return "image";
    case IMCAP_E_NOMEM: return "memory";
    case IMCAP_E_INTERRUPTED: return "interrupted";
    }
    return "unknown";
}

/* Messages start with a path and end with the reason; a path near PATH_MAX
 * would push the reason out of err->msg. Such a message keeps its head and
 * its tail around " ... ", cut at UTF-8 character boundaries. */
static void fit_message(char *dst, size_t cap, const char *full, size_t len) {
    size_t keep = (cap - 6) / 2, head = keep, tail = len - keep;
    while (head > 0 && ((unsigned char)full[head] & 0xC0) == 0x80) head--;
    while (tail < len && ((unsigned char)full[tail] & 0xC0) == 0x80) tail++;
    memcpy(dst, full, head);
    memcpy(dst + head, " ... ", 5);
    memcpy(dst + head + 5, full + tail, len - tail);
    dst[head + 5 + len - tail] = 0;
}

int imcap_msg_names(const char *msg, const char *path) {
    size_t n = strlen(path);
    if (!strncmp(msg, path, n)) return 1;
    const char *cut = strstr(msg, " ... ");
    return cut && cut > msg && (size_t)(cut - msg) < n && !strncmp(msg, path, (size_t)(cut - msg));
}

imcap_status imcap_fail(imcap_error *err, imcap_status s, const char *fmt, ...) {
    if (err) {
        va_list ap, again;
        va_start(ap, fmt);
        va_copy(again, ap);
        int n = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        char *full = n >= (int)sizeof err->msg ? malloc((size_t)n + 1) : NULL;
        if (full) { /* without memory, the plain truncation stays */
            vsnprintf(full, (size_t)n + 1, fmt, again);
            fit_message(err->msg, sizeof err->msg, full, (size_t)n);
            free(full);
        }
        va_end(again);
        err->status = s;
    }
    return s;
}

imcap_status imcap_read_stream(FILE *f, const char *name, unsigned char **data, size_t *size, imcap_error *err) {
    *data = NULL;
    *size = 0;
    /* the size up front saves the doubling copies; the loop still copes with
     * files that grow or are not regular (pipes, stdin) */
    struct stat st;
    size_t cap = (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) ? (size_t)st.st_size + 1 : 1 << 16, n = 0;
    unsigned char *buf = malloc(cap + 1);
    if (!buf) return imcap_fail(err, IMCAP_E_NOMEM, "%s: out of memory", name);
    for (;;) {
        if (n == cap) {
            unsigned char *nb = realloc(buf, cap * 2 + 1);
            if (!nb) { free(buf); return imcap_fail(err, IMCAP_E_NOMEM, "%s: out of memory", name); }
            buf = nb;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0) break;
    }
    if (ferror(f)) { free(buf); return imcap_fail(err, IMCAP_E_IO, "%s: read error", name); }
    buf[n] = 0;
    *data = buf;
    *size = n;
    return IMCAP_OK;
}

imcap_status imcap_read_file(const char *path, unsigned char **data, size_t *size, imcap_error *err) {
    *data = NULL;
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return imcap_fail(err, IMCAP_E_IO, "%s: cannot open: %s", path, strerror(errno));
    imcap_status s = imcap_read_stream(f, path, data, size, err);
    fclose(f);
    return s;
}

static atomic_uint tmp_counter;

imcap_status imcap_atomic_open(imcap_atomic_file *af, const char *path, imcap_error *err) {
    memset(af, 0, sizeof *af);
    size_t n = strlen(path) + 64;
    af->path = strdup(path);
    af->tmp = malloc(n);
    if (!af->path || !af->tmp) { imcap_atomic_abort(af); return imcap_fail(err, IMCAP_E_NOMEM, "%s: out of memory", path); }
    snprintf(af->tmp, n, "%s.tmp.%ld.%u", path, (long)getpid(), atomic_fetch_add(&tmp_counter, 1));
    af->f = fopen(af->tmp, "wb");
    if (!af->f) {
        imcap_status s = imcap_fail(err, IMCAP_E_IO, "%s: cannot create: %s", af->tmp, strerror(errno));
        free(af->tmp); af->tmp = NULL;
        imcap_atomic_abort(af);
        return s;
    }
    return IMCAP_OK;
}

/* The rename that makes a file appear is only durable once its folder is
 * synced: without it a power cut can bring back the old file (or none)
 * after later writes that depended on the new one reached the disk. Some
 * file systems refuse fsync on a folder (EINVAL); that is not an error. */
int imcap_sync_parent_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (!dir) return -1;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc = 0;
    free(dir);
    if (fd < 0) return -1;
    if (fsync(fd) != 0 && errno != EINVAL && errno != EROFS) rc = -1;
    close(fd);
    return rc;
}

imcap_status imcap_atomic_commit(imcap_atomic_file *af, imcap_error *err) {
    /* errno of the write that set the stream's error flag is gone by now;
     * a failure below gives a fresh one, and fflush retries what is left in
     * the buffer, so a full disk usually says so */
    int bad = ferror(af->f), e = 0;
    if (fflush(af->f) != 0) bad = 1, e = errno;
    if (fsync(fileno(af->f)) != 0 && errno != EINVAL) bad = 1, e = e ? e : errno;
    if (fclose(af->f) != 0) bad = 1, e = e ? e : errno;
    af->f = NULL;
    if (bad) {
        imcap_status s = e ? imcap_fail(err, IMCAP_E_IO, "%s: write failed: %s", af->path, strerror(e))
                           : imcap_fail(err, IMCAP_E_IO, "%s: write failed (disk full or I/O error)", af->path);
        imcap_atomic_abort(af);
        return s;
    }
    if (rename(af->tmp, af->path) != 0) {
        imcap_status s = imcap_fail(err, IMCAP_E_IO, "%s: cannot rename into place: %s", af->path, strerror(errno));
        imcap_atomic_abort(af);
        return s;
    }
    imcap_sync_parent_dir(af->path);
    free(af->tmp);
    free(af->path);
    memset(af, 0, sizeof *af);
    return IMCAP_OK;
}

void imcap_atomic_abort(imcap_atomic_file *af) {
    if (af->f) fclose(af->f);
    if (af->tmp) remove(af->tmp);
    free(af->tmp);
    free(af->path);
    memset(af, 0, sizeof *af);
}

/* "<base>.tmp.<pid>.<n>" with base non-empty (or equal to want when given):
 * the pid, else 0. */
static long tmp_owner(const char *name, const char *want) {
    const char *t = NULL;
    for (const char *p = strstr(name, ".tmp."); p; p = strstr(p + 1, ".tmp.")) t = p;
    if (!t || t == name) return 0;
    if (want && (strlen(want) != (size_t)(t - name) || strncmp(name, want, (size_t)(t - name)) != 0)) return 0;
    char *end;
    errno = 0;
    long pid = strtol(t + 5, &end, 10);
    if (errno || pid <= 0 || *end != '.' || !end[1]) return 0;
    for (const char *d = end + 1; *d; d++)
        if (*d < '0' || *d > '9') return 0;
    return pid;
}

int imcap_atomic_sweep(const char *dir, const char *base) {
    DIR *d = opendir(dir && *dir ? dir : ".");
    if (!d) return -1;
    int removed = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        long pid = tmp_owner(de->d_name, base);
        /* a live writer's file is left alone; EPERM means alive too. Our own
         * pid counts as dead: the caller has not started writing yet, so
         * such a file is from an earlier process that had the same pid. */
        if (!pid || (pid != (long)getpid() && (kill((pid_t)pid, 0) == 0 || errno != ESRCH))) continue;
        char *p = imcap_path_join(dir && *dir ? dir : ".", de->d_name, NULL);
        if (p && unlink(p) == 0) removed++;
        free(p);
    }
    closedir(d);
    return removed;
}

int imcap_atomic_sweep_path(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return imcap_atomic_sweep(".", path);
    char *dir = strndup(path, slash == path ? 1 : (size_t)(slash - path));
    if (!dir) return -1;
    int n = slash[1] ? imcap_atomic_sweep(dir, slash + 1) : 0;
    free(dir);
    return n;
}

imcap_status imcap_write_file_atomic(const char *path, const void *data, size_t size, imcap_error *err) {
    imcap_atomic_file af;
    imcap_status s = imcap_atomic_open(&af, path, err);
    if (s) return s;
    if (size && fwrite(data, 1, size, af.f) != size) {
        imcap_atomic_abort(&af);
        return imcap_fail(err, IMCAP_E_IO, "%s: write failed: %s", path, strerror(errno));
    }
    return imcap_atomic_commit(&af, err);
}

uint64_t imcap_mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

float imcap_half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
    if (exp == 0) {
        if (mant == 0) bits = sign;
        else { /* subnormal: renormalise */
            exp = 127 - 15 + 1;
            while (!(mant & 0x400)) mant <<= 1, exp--;
            bits = sign | (exp << 23) | ((mant & 0x3ff) << 13);
        }
    } else if (exp == 31) bits = sign | 0x7f800000 | (mant << 13);
    else bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* F. Giesen's float_to_half_fast3_rtne: subnormals rounded by the FPU
 * (adding a magic number aligns the mantissa), normals by adding half an
 * ulp minus one plus the mantissa's odd bit. */
uint16_t imcap_float_to_half(float f) {
    const uint32_t f32_inf = 255u << 23, f16_max = (127u + 16) << 23;
    const uint32_t denorm_magic = ((127u - 15) + (23 - 10) + 1) << 23;
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = u & 0x80000000u;
    u ^= sign;
    uint16_t o;
    if (u >= f16_max) {
        o = u > f32_inf ? 0x7e00 : 0x7c00;
    } else if (u < (113u << 23)) {
        float a, m;
        memcpy(&a, &u, 4);
        memcpy(&m, &denorm_magic, 4);
        a += m;
        memcpy(&u, &a, 4);
        o = (uint16_t)(u - denorm_magic);
    } else {
        uint32_t odd = (u >> 13) & 1;
        u += ((uint32_t)(15 - 127) << 23) + 0xfff + odd;
        o = (uint16_t)(u >> 13);
    }
    return (uint16_t)(o | (sign >> 16));
}

uint64_t imcap_fnv1a64(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = imcap_mix64(*x);
    *x += 0x9e3779b97f4a7c15ULL;
    return z;
}

void imcap_rng_seed(imcap_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t imcap_rng_next(imcap_rng *r) {
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t; s[3] = rotl(s[3], 45);
    return out;
}

double imcap_rng_uniform(imcap_rng *r) { return (double)(imcap_rng_next(r) >> 11) * 0x1.0p-53; }

int imcap_rng_int(imcap_rng *r, int n) { return n <= 1 ? 0 : (int)(imcap_rng_uniform(r) * n); }

double imcap_rng_normal(imcap_rng *r) {
    double u1 = imcap_rng_uniform(r), u2 = imcap_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

double imcap_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void imcap_sleep(double seconds) {
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static int buf_reserve(imcap_buf *b, size_t extra) {
    if (b->oom) return -1;
    if (b->len + extra + 1 <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) cap *= 2;
    char *ns = realloc(b->s, cap);
    if (!ns) {
        b->oom = 1;
        return -1;
    }
    b->s = ns;
    b->cap = cap;
    return 0;
}

void imcap_buf_append(imcap_buf *b, const char *s, size_t n) {
    if (buf_reserve(b, n) != 0) return;
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

void imcap_buf_printf(imcap_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || buf_reserve(b, (size_t)n) != 0) return;
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void imcap_buf_free(imcap_buf *b) {
    free(b->s);
    memset(b, 0, sizeof *b);
}

/* Length of the valid UTF-8 sequence at p (n bytes left), or 0. Overlong
 * forms, surrogates and code points past U+10FFFF are not valid. */
static size_t utf8_len(const unsigned char *p, size_t n) {
    unsigned c = p[0];
    if (c < 0x80) return 1;
    size_t len;
    unsigned cp;
    if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07;
    else return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (p[i] & 0x3F);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0;
    return len;
}

/* The one JSON string escaper of every imcap output. A byte that is not
 * part of valid UTF-8 (file names can hold anything) becomes \udcXX, as
 * Python's surrogateescape writes it: lossless, so a path read back
 * (batch --resume, merge, os.fsencode in Python) names the same file. */
void imcap_buf_json_string(imcap_buf *b, const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    size_t left = strlen(s);
    imcap_buf_append(b, "\"", 1);
    while (left) {
        unsigned c = *p;
        size_t k = 1;
        if (c == '"') imcap_buf_append(b, "\\\"", 2);
        else if (c == '\\') imcap_buf_append(b, "\\\\", 2);
        else if (c == '\n') imcap_buf_append(b, "\\n", 2);
        else if (c == '\r') imcap_buf_append(b, "\\r", 2);
        else if (c == '\t') imcap_buf_append(b, "\\t", 2);
        else if (c < 0x20 || c == 0x7f) imcap_buf_printf(b, "\\u%04x", c);
        else if (c < 0x80) imcap_buf_append(b, (const char *)p, 1);
        else if ((k = utf8_len(p, left)) > 0) imcap_buf_append(b, (const char *)p, k);
        else {
            imcap_buf_printf(b, "\\udc%02x", c);
            k = 1;
        }
        p += k, left -= k;
    }
    imcap_buf_append(b, "\"", 1);
}

/* A field of a tab-separated line: backslash, tab, newline and CR as the
 * escapes \\, \t, \n, \r; everything else as it is. */
void imcap_buf_tsv_field(imcap_buf *b, const char *s) {
    if (!s) return;
    for (const char *p = s; *p; p++) {
        switch (*p) {
        case '\\': imcap_buf_append(b, "\\\\", 2); break;
        case '\t': imcap_buf_append(b, "\\t", 2); break;
        case '\n': imcap_buf_append(b, "\\n", 2); break;
        case '\r': imcap_buf_append(b, "\\r", 2); break;
        default: imcap_buf_append(b, p, 1);
        }
    }
}

void imcap_buf_float(imcap_buf *b, float v) { imcap_buf_number(b, (double)v, 9); }

/* JSON has no NaN or infinity: a non-finite number is written as null, in
 * every output (a model with a non-finite weight gives such scores). */
void imcap_buf_number(imcap_buf *b, double v, int digits) {
    if (isnan(v) || isinf(v)) { imcap_buf_append(b, "null", 4); return; }
    imcap_buf_printf(b, "%.*g", digits, v);
}

/* mkdir -p, naming the component that failed; errno is left set. */
imcap_status imcap_make_dirs(const char *path, imcap_error *err) {
    size_t n = strlen(path);
    char *p = malloc(n + 1);
    if (!p) return imcap_fail(err, IMCAP_E_NOMEM, "%s: out of memory", path);
    memcpy(p, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != 0) continue;
        char c = p[i];
        p[i] = 0;
        struct stat st;
        if (mkdir(p, 0777) != 0 && errno != EEXIST) {
            int e = errno;
            imcap_status s = imcap_fail(err, IMCAP_E_IO, "%s: cannot create directory: %s", p, strerror(e));
            free(p);
            errno = e;
            return s;
        }
        if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) {
            errno = ENOTDIR;
            imcap_status s = imcap_fail(err, IMCAP_E_IO, "%s: not a directory", p);
            free(p);
            return s;
        }
        p[i] = c;
    }
    free(p);
    return IMCAP_OK;
}

char *imcap_path_join(const char *dir, const char *name, const char *suffix) {
    if (!dir) dir = "";
    if (!suffix) suffix = "";
    size_t a = strlen(dir), b = strlen(name), c = strlen(suffix);
    char *p = malloc(a + b + c + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    if (a && dir[a - 1] != '/') p[a++] = '/';
    memcpy(p + a, name, b);
    memcpy(p + a + b, suffix, c + 1);
    return p;
}

imcap_status imcap_map_cache_file(const char *path, size_t want, void **map, imcap_error *err) {
    *map = NULL;
    int fd = open(path, O_RDONLY);
    if (fd < 0 && errno == ENOENT) return IMCAP_OK; /* absent: build it */
    /* unreadable (permissions, no descriptors left) is not absent: a
     * rebuild would overwrite a cache someone else may own */
    if (fd < 0) return imcap_fail(err, IMCAP_E_IO, "%s: cannot open the cache: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || (size_t)st.st_size != want) {
        close(fd);
        return IMCAP_OK;
    }
    void *m = mmap(NULL, want, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED) return imcap_fail(err, IMCAP_E_IO, "%s: cannot map: %s", path, strerror(errno));
    *map = m;
    return IMCAP_OK;
}

void imcap_vtell(void (*fn)(void *ctx, const char *msg), void *ctx, const char *fmt, va_list ap) {
    if (!fn) return;
    char msg[2048]; /* room for an error message (1024) with a path in front */
    vsnprintf(msg, sizeof msg, fmt, ap);
    fn(ctx, msg);
}
