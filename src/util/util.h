/* util.h — small shared pieces: error reporting, atomic files, RNG, timing. */
#ifndef IMCAP_UTIL_H
#define IMCAP_UTIL_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include "imcap.h"

#if defined(__GNUC__)
#define IMCAP_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define IMCAP_PRINTF(a, b)
#endif

/* Fills err (may be NULL) and returns s, so callers can write
 * `return imcap_fail(err, IMCAP_E_IO, "%s: cannot open: %s", path, strerror(errno));` */
imcap_status imcap_fail(imcap_error *err, imcap_status s, const char *fmt, ...) IMCAP_PRINTF(3, 4);
/* 1 when an error message from imcap_fail starts with path, whole or, in a
 * message shortened around " ... " (a path near PATH_MAX), as far as the
 * cut: callers then do not put the path in front a second time. */
int imcap_msg_names(const char *msg, const char *path);

/* Maps a cache file read-only (shared) when it is exactly want bytes long:
 * *map (munmap it with want), or NULL when the file is absent or of another
 * size, i.e. a cache to build. An error only when mapping fails. */
imcap_status imcap_map_cache_file(const char *path, size_t want, void **map, imcap_error *err);

/* Reads a whole file into a malloc'd buffer (NUL-terminated for convenience). */
imcap_status imcap_read_file(const char *path, unsigned char **data, size_t *size, imcap_error *err);
/* The rest of an open stream (stdin, a pipe), NUL-terminated; name is for
 * messages. */
imcap_status imcap_read_stream(FILE *f, const char *name, unsigned char **data, size_t *size, imcap_error *err);

/* Atomic output: write to "<path>.tmp.<pid>.<n>" in the same directory, then
 * rename over path on commit. abort removes the temporary file. */
typedef struct {
    FILE *f;
    char *path;
    char *tmp;
} imcap_atomic_file;

imcap_status imcap_atomic_open(imcap_atomic_file *af, const char *path, imcap_error *err);
imcap_status imcap_atomic_commit(imcap_atomic_file *af, imcap_error *err);
void imcap_atomic_abort(imcap_atomic_file *af);
/* A process killed between open and commit leaves its temporary file
 * behind. These remove, in dir, the "<base>.tmp.<pid>.<n>" files (any base
 * when base is NULL) whose process is gone; _path sweeps the temporary files
 * of one final path. Call before this process writes them: files with its
 * own pid are taken for an earlier process's. Returns the count removed, -1
 * when dir cannot be read. */
int imcap_atomic_sweep(const char *dir, const char *base);
int imcap_atomic_sweep_path(const char *path);
/* fsync of the folder holding path, so that a rename into it survives a
 * power cut; 0, or -1 (errno set) when the folder cannot be synced. */
int imcap_sync_parent_dir(const char *path);
/* dir + '/' + name + suffix (malloc'd; NULL when out of memory): no slash
 * is added after an empty dir or one ending in '/'; suffix may be NULL. */
char *imcap_path_join(const char *dir, const char *name, const char *suffix);

/* mkdir -p: every missing component created; IMCAP_E_IO naming the one that
 * failed (errno set: ENOTDIR when a component is not a directory). */
imcap_status imcap_make_dirs(const char *path, imcap_error *err);

imcap_status imcap_write_file_atomic(const char *path, const void *data, size_t size, imcap_error *err);

/* SplitMix64's finaliser (x + golden gamma, then two xor-multiply rounds):
 * a well-mixed 64-bit function of x, for seeding streams from indices. */
uint64_t imcap_mix64(uint64_t x);
/* FNV-1a 64 over n bytes, continuing from h (start with IMCAP_FNV_OFFSET). */
#define IMCAP_FNV_OFFSET 0xcbf29ce484222325ULL
uint64_t imcap_fnv1a64(uint64_t h, const void *data, size_t n);

/* IEEE half precision: widening is exact; narrowing rounds to nearest, ties
 * to even, overflowing to infinity (NaN stays NaN). */
float imcap_half_to_float(uint16_t h);
uint16_t imcap_float_to_half(float f);

/* xoshiro256** — deterministic, with a state that checkpoints can save. */
typedef struct { uint64_t s[4]; } imcap_rng;
void imcap_rng_seed(imcap_rng *r, uint64_t seed);
uint64_t imcap_rng_next(imcap_rng *r);
double imcap_rng_uniform(imcap_rng *r);       /* [0, 1) */
int imcap_rng_int(imcap_rng *r, int n);       /* [0, n) */
double imcap_rng_normal(imcap_rng *r);        /* N(0, 1), Box-Muller */

double imcap_now(void); /* monotonic seconds */
void imcap_sleep(double seconds);

/* Growable string buffer. Out of memory makes it sticky-failed (oom set,
 * later appends ignored) rather than aborting: callers check oom once. */
typedef struct { char *s; size_t len, cap; int oom; } imcap_buf;
void imcap_buf_printf(imcap_buf *b, const char *fmt, ...) IMCAP_PRINTF(2, 3);
void imcap_buf_append(imcap_buf *b, const char *s, size_t n);
void imcap_buf_free(imcap_buf *b);
/* Appends a JSON string literal (quoted, escaped) for s; bytes that are not
 * valid UTF-8 become \udcXX (Python's surrogateescape: lossless). */
void imcap_buf_json_string(imcap_buf *b, const char *s);
/* Appends s as a tab-separated field: \\ \t \n \r escaped. */
void imcap_buf_tsv_field(imcap_buf *b, const char *s);
/* v with `digits` significant digits, or null when not finite (JSON). */
void imcap_buf_number(imcap_buf *b, double v, int digits);
/* Appends a float so that it reads back exactly ("%.9g"), null when not finite. */
void imcap_buf_float(imcap_buf *b, float v);

/* A message for a caller's callback: formatted (up to 2047 bytes) and
 * handed to fn(ctx, msg); nothing when fn is NULL. */
void imcap_vtell(void (*fn)(void *ctx, const char *msg), void *ctx, const char *fmt, va_list ap);
#endif
