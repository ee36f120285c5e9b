/* st_file.h — the safetensors container, whatever it holds: the model files
 * (safetensors.c) and pretrained backbones from torchvision / timm
 * (backbone.c). Internal.
 *
 * imcap_st_parse checks everything the container itself promises: the header
 * length, JSON with no duplicate key, a known dtype, a shape, offsets inside
 * the buffer whose span matches dtype x shape, and tensors that tile the
 * buffer exactly (no gap, no overlap, nothing after the last). What the
 * tensors must be is the caller's business. */
#ifndef IMCAP_ST_FILE_H
#define IMCAP_ST_FILE_H
#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "imcap.h"

#define IMCAP_ST_MAX_DIMS 8

typedef struct {
    const char *name;  /* owned by the file's parsed header */
    const char *dtype; /* "F32", "F16", "I64", ... */
    int dtype_size;    /* bytes per element */
    int ndim;
    int64_t shape[IMCAP_ST_MAX_DIMS];
    uint64_t count;    /* elements */
    uint64_t begin, end;
    const cJSON *json; /* the header entry, for callers that check more */
} imcap_st_entry;

typedef struct {
    cJSON *root;
    const cJSON *metadata;      /* the __metadata__ object, NULL when absent */
    const unsigned char *data;  /* the byte buffer after the header */
    uint64_t data_size;
    int n;
    imcap_st_entry *entries;    /* in header order */
    void *map;                  /* imcap_st_open's mapping */
    size_t map_size;
} imcap_st_file;

/* where names the file in messages. bytes must outlive f. */
imcap_status imcap_st_parse(const unsigned char *bytes, size_t size, const char *where, imcap_st_file *f,
                            imcap_error *err);
/* Maps a whole regular, non-empty file read-only (munmap it); what names it
 * in the message when it cannot be opened ("model"). */
imcap_status imcap_st_map(const char *path, const char *what, void **map, size_t *size, imcap_error *err);
/* Maps the file read-only and parses it. */
imcap_status imcap_st_open(const char *path, imcap_st_file *f, imcap_error *err);
void imcap_st_close(imcap_st_file *f);
const imcap_st_entry *imcap_st_find(const imcap_st_file *f, const char *name);
/* F32, F16 or BF16: can be read as floats */
int imcap_st_is_float(const imcap_st_entry *e);
/* Widens a float entry's elements into dst (count floats). */
void imcap_st_read_f32(const imcap_st_file *f, const imcap_st_entry *e, float *dst);
#endif
