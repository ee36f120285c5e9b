/* batch_walk.h — what `imcap batch` and `imcap merge` share: finding the
 * images under the arguments, ordering and sharding them, the file names of
 * rendered outputs, and writing and reading the record formats.
 *
 * Which files are images (inside a folder; a file named on the command line
 * is always taken, and reported as a failed record when it does not decode):
 *   - a regular file (symlinks followed) whose first bytes are a format the
 *     library decodes (imcap_image_sniff: JPEG, PNG, GIF, BMP, PSD, PNM);
 *   - or, unless its name starts with '.', one whose extension is an image
 *     extension (.jpg .jpeg .jpe .png .gif .bmp .tga .psd .pnm .ppm .pgm
 *     .pbm, any case): TGA has no magic number, and a corrupt or unreadable
 *     "photo.jpg" is reported as a failed record rather than skipped.
 *     Hidden files must sniff as images (macOS "._photo.jpg" files do not).
 * Folders are walked in byte order of their entries; with recursion, each
 * folder (st_dev, st_ino) is walked once, so symlink loops and folders
 * reached twice through links are visited once. A folder that cannot be read
 * is an error record. FIFOs, devices and sockets are never opened.
 *
 * Order: paths sorted by bytes (strcmp), duplicates removed.
 * Shards: --shard I/N keeps the paths with fnv1a64(path) % N == I - 1; a
 * path's shard depends on the path alone, so machines that list the same
 * corpus agree with no coordination, and a file added later does not move
 * the others between shards. */
#ifndef IMCAP_BATCH_WALK_H
#define IMCAP_BATCH_WALK_H

#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "util/util.h"

typedef struct {
    dev_t dev;
    ino_t ino;
} bw_fileid;

/* 0 and *id filled, or -1 (errno set) when path cannot be stat'ed. */
int bw_fileid_of(const char *path, bw_fileid *id);

typedef struct {
    char *path;
    char *error; /* NULL: an image to caption; else the message of its error record */
} bw_item;

typedef struct {
    bw_item *v;
    size_t n, cap;
} bw_list;

typedef struct {
    int recursive;
    const bw_fileid *skip_dirs; /* output folders: never walked into */
    size_t n_skip_dirs;
    const bw_fileid *forbid;    /* output files, which must not be inputs */
    size_t n_forbid;
    /* what the walk saw */
    size_t n_dirs, n_skipped_files, n_skipped_subdirs, n_repeated_dirs, n_output_dirs;
    char *forbidden;            /* malloc'd: the first input that is in forbid */
} bw_walk;

/* Collects the inputs named by args into out (unsorted). 0, or -1 when out
 * of memory. */
int bw_collect(char *const *args, int nargs, bw_walk *w, bw_list *out);
void bw_walk_free(bw_walk *w);
void bw_sort_unique(bw_list *l);
void bw_list_free(bw_list *l);
/* Index of path in a sorted list, or (size_t)-1. */
size_t bw_find(const bw_list *l, const char *path);

uint64_t bw_hash(const char *s); /* FNV-1a, 64 bits */
/* "I/N" with 1 <= I <= N <= 1000000: 0, or -1. */
int bw_parse_shard(const char *s, int *index, int *count);
/* Keeps the items of shard index (1-based) of count, in order. */
void bw_shard(bw_list *l, int index, int count);

/* The stem of the files rendered for path: imcap_render_stem(path), '-' and
 * the low 48 bits of bw_hash(path) in hex ("dir/My cat.jpg" ->
 * "My_cat-0123456789ab"): a function of the path alone, so it is the same
 * in every run and shard, and two images never share one. */
#define BW_STEM_MAX 72
void bw_stem(const char *path, char out[BW_STEM_MAX]);


/* ------------------------------------------------------------ records */

typedef enum { BW_JSONL = 0, BW_CSV, BW_TSV } bw_format;

int bw_format_parse(const char *s, bw_format *f); /* "jsonl" "csv" "tsv": 0, or -1 */
const char *bw_format_name(bw_format f);

/* One output record. A field that is absent (caption NULL, has_score 0,
 * width 0, has_ms 0, error NULL) is left out of a JSON record and empty in
 * a CSV/TSV one. */
typedef struct {
    const char *path;
    const char *caption;
    int has_score;
    double score;
    int in_domain;          /* -1: the model has no in-domain statistics */
    double domain_score;
    int n_words;
    char *const *words;
    const float *logprobs;
    int width, height;
    int has_ms;
    double ms;
    const char *error;
} bw_record;

/* The CSV/TSV header line (nothing for jsonl). timing: with the ms column;
 * domain: with the domain_score and in_domain columns (files written before
 * them have none). */
void bw_write_header(imcap_buf *b, bw_format f, int timing, int domain);
/* One record, with its final newline. JSON strings carry bytes that are not
 * UTF-8 as lone surrogates U+DC80..U+DCFF (Python's "surrogateescape"),
 * so every path reads back byte for byte. */
void bw_write_record(imcap_buf *b, bw_format f, int timing, int domain, const bw_record *r);
/* `"domain_score": x, "in_domain": b` (the in-domain check's JSON fields) */
void bw_domain_fields(imcap_buf *b, double domain_score, int in_domain);

/* A record read back: malloc'd strings, NULL when absent. */
typedef struct {
    char *path, *caption, *score, *error;
    int width, height;
    int has_ms;
} bw_parsed;
void bw_parsed_free(bw_parsed *p);

typedef struct {
    FILE *f;
    char *name;
    int known;         /* format detected (the file is not empty) */
    bw_format fmt;
    int timing;        /* csv/tsv: the header has the ms column */
    int domain;        /* csv/tsv: the header has the domain_score and in_domain columns */
    imcap_buf rec;     /* raw bytes of the last record read, newline included */
    long long off;     /* its offset in the file */
    long long end;     /* offset just past the last complete record or header */
    long long line;    /* its first line number (1-based) */
    char *line_buf;
    size_t line_cap;
    char msg[1200];
} bw_reader;

/* Opens path and detects its format from the first line: a JSON record
 * (jsonl) or a csv/tsv header written by bw_write_header. 0 on success
 * (known is 0 when the file is empty or holds only part of a header); -1
 * with r->msg when it cannot be opened or is not a batch output. */
int bw_reader_open(bw_reader *r, const char *path);
/* Reads the next record into r->rec and, when p is not NULL, parses it.
 * Returns 1 for a record, 0 at the end, 2 when the last record is
 * incomplete (an interrupted write; r->end is where the complete ones end),
 * -1 with r->msg when a record is malformed. */
int bw_reader_next(bw_reader *r, bw_parsed *p);
void bw_reader_close(bw_reader *r);

/* Parses one raw record of format f (as bw_reader_next does; csv/tsv
 * columns as timing and domain say). 0, -1 (malformed: msg says why) or -2
 * (out of memory). */
int bw_parse_record(bw_format f, int timing, int domain, const char *rec, size_t n, bw_parsed *p, char *msg,
                    size_t msg_cap);

/* ------------------------------------------------------------ gallery */

struct imcap_gallery;
/* Adds the card of a parsed record to the gallery of folder dir, linking
 * the thumbnail and viewer of bw_stem(path) when those files exist there. */
imcap_status bw_gallery_add(struct imcap_gallery *g, const char *dir, const bw_parsed *p, imcap_error *err);

#endif
