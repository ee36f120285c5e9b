/* st_file.c — parsing the safetensors container (see st_file.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utf8proc.h>

#include "json_check.h"
#include "st_file.h"
#include "util/util.h"
#include "util/json.h"

#define MAX_HEADER 100000000ULL

/* The dtypes of the safetensors specification and their sizes. */
static const struct {
    const char *name;
    int size;
} dtypes[] = {{"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4}, {"I16", 2}, {"I8", 1},
              {"U64", 8}, {"U32", 4}, {"U16", 2}, {"U8", 1}, {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1}};

static float bf16_to_float(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static int by_begin(const void *a, const void *b) {
    const imcap_st_entry *x = *(imcap_st_entry *const *)a, *y = *(imcap_st_entry *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : (x->end < y->end ? -1 : x->end > y->end);
}

static imcap_status parse_entry(const cJSON *e, const char *where, uint64_t bufsize, imcap_st_entry *out,
                                imcap_error *err) {
    const char *name = e->string;
    memset(out, 0, sizeof *out);
    out->name = name, out->json = e;
    if (!cJSON_IsObject(e)) return imcap_fail(err, IMCAP_E_FORMAT, "%s: tensor \"%s\": entry must be an object", where, name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *of = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt)) return imcap_fail(err, IMCAP_E_FORMAT, "%s: tensor \"%s\": missing \"dtype\"", where, name);
    out->dtype = dt->valuestring;
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (!strcmp(dt->valuestring, dtypes[i].name)) out->dtype_size = dtypes[i].size;
    if (!out->dtype_size)
        return imcap_fail(err, IMCAP_E_FORMAT, "%s: tensor \"%s\": dtype \"%s\" is not a safetensors dtype", where, name,
                          dt->valuestring);
    if (!cJSON_IsArray(sh)) return imcap_fail(err, IMCAP_E_FORMAT, "%s: tensor \"%s\": missing \"shape\" array", where, name);
    out->ndim = cJSON_GetArraySize(sh);
    if (out->ndim > IMCAP_ST_MAX_DIMS)
        return imcap_fail(err, IMCAP_E_FORMAT, "%s: tensor \"%s\": %d dimensions (at most %d)", where, name, out->ndim,
                          IMCAP_ST_MAX_DIMS);
    out->count = 1;
    for (int i = 0; i < out->ndim; i++) {
        long long d;
        if (imcap_json_int(cJSON_GetArrayItem(sh, i), 0, 1LL << 40, &d) != 0)
            return imcap_fail(err, IMCAP_E_FORMAT, "%s: tensor \"%s\": shape[%d] is not a non-negative integer", where, name, i);
        out->shape[i] = d;
        /* saturate: a product past the buffer is refused below anyway */
        out->count = d && out->count > (1ULL << 52) / (uint64_t)d ? (1ULL << 52) : out->count * (uint64_t)d;
    }
    long long b, en;
    if (!cJSON_IsArray(of) || cJSON_GetArraySize(of) != 2 || imcap_json_int(cJSON_GetArrayItem(of, 0), 0, 1LL << 52, &b) ||
        imcap_json_int(cJSON_GetArrayItem(of, 1), 0, 1LL << 52, &en))
        return imcap_fail(err, IMCAP_E_FORMAT, "%s: tensor \"%s\": \"data_offsets\" must be [begin, end] integers", where, name);
    if (en < b) return imcap_fail(err, IMCAP_E_FORMAT, "%s: tensor \"%s\": data_offsets end %lld before begin %lld", where, name, en, b);
    if ((uint64_t)en > bufsize)
        return imcap_fail(err, IMCAP_E_FORMAT, "%s: tensor \"%s\": data_offsets [%lld, %lld] run past the end of the data (%llu bytes)",
                          where, name, b, en, (unsigned long long)bufsize);
    if ((uint64_t)(en - b) != out->count * (uint64_t)out->dtype_size) {
        char shape[160] = "";
        size_t len = 0;
        for (int i = 0; i < out->ndim; i++)
            len += (size_t)snprintf(shape + len, sizeof shape - len, "%s%lld", i ? ", " : "", (long long)out->shape[i]);
        return imcap_fail(err, IMCAP_E_FORMAT, "%s: tensor \"%s\": data_offsets span %lld bytes; dtype %s and shape [%s] need %llu",
                          where, name, en - b, dt->valuestring, shape,
                          (unsigned long long)(out->count * (uint64_t)out->dtype_size));
    }
    out->begin = (uint64_t)b, out->end = (uint64_t)en;
    return IMCAP_OK;
}

imcap_status imcap_st_parse(const unsigned char *data, size_t size, const char *where, imcap_st_file *f,
                            imcap_error *err) {
    memset(f, 0, sizeof *f);
    if (size < 8)
        return imcap_fail(err, IMCAP_E_FORMAT, "%s: truncated: %zu bytes, shorter than the 8-byte header length", where, size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | data[i];
    if (n > MAX_HEADER)
        return imcap_fail(err, IMCAP_E_FORMAT, "%s: header length %llu exceeds the limit of %llu bytes", where,
                          (unsigned long long)n, MAX_HEADER);
    if (n > size - 8)
        return imcap_fail(err, IMCAP_E_FORMAT, "%s: header length %llu runs past the end of the file (%zu bytes)", where,
                          (unsigned long long)n, size);
    if (n == 0) return imcap_fail(err, IMCAP_E_FORMAT, "%s: header is empty", where);
    /* the header is UTF-8 JSON (safetensors and the model format say so):
     * a vocabulary word with a stray byte is refused, not loaded */
    for (size_t i = 0; i < n;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(data + 8 + i, (utf8proc_ssize_t)(n - i), &cp);
        if (k <= 0)
            return imcap_fail(err, IMCAP_E_FORMAT, "%s: header is not UTF-8 (invalid byte 0x%02x at byte %zu of the header)",
                              where, data[8 + i], i);
        i += (size_t)k;
    }
    const char *end = NULL;
    cJSON *root = imcap_json_parse((const char *)data + 8, (size_t)n, &end, 0);
    if (!root) {
        /* on failure cJSON points end at the error (the global error pointer is not thread-safe) */
        long off = end ? (long)(end - (const char *)data - 8) : -1;
        if (imcap_json_too_deep((const char *)data + 8, end))
            return imcap_fail(err, IMCAP_E_FORMAT, "%s: header JSON nested deeper than %d levels, the limit (at byte %ld of the header)",
                              where, IMCAP_JSON_MAX_DEPTH, off);
        return imcap_fail(err, IMCAP_E_FORMAT, "%s: header is not valid JSON (error near byte %ld of the header)", where, off);
    }
    f->root = root;
    imcap_status s = IMCAP_OK;
    imcap_st_entry **order = NULL;
    for (const char *p = end; p < (const char *)data + 8 + n; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && *p != 0) {
            s = imcap_fail(err, IMCAP_E_FORMAT, "%s: header has trailing bytes after its JSON object", where);
            goto fail;
        }
    if (!cJSON_IsObject(root)) { s = imcap_fail(err, IMCAP_E_FORMAT, "%s: header must be a JSON object", where); goto fail; }
    const char *dup = imcap_json_find_duplicate(root);
    if (dup) { s = imcap_fail(err, IMCAP_E_FORMAT, "%s: duplicate key \"%s\" in the header", where, dup); goto fail; }
    f->metadata = cJSON_GetObjectItemCaseSensitive(root, "__metadata__");
    f->data = data + 8 + n, f->data_size = size - 8 - n;
    int count = cJSON_GetArraySize(root) - (f->metadata != NULL);
    f->entries = calloc((size_t)count + 1, sizeof *f->entries);
    order = calloc((size_t)count + 1, sizeof *order);
    if (!f->entries || !order) { s = imcap_fail(err, IMCAP_E_NOMEM, "%s: out of memory", where); goto fail; }
    for (const cJSON *e = root->child; e; e = e->next) {
        if (e == f->metadata) continue;
        if ((s = parse_entry(e, where, f->data_size, &f->entries[f->n], err))) goto fail;
        order[f->n] = &f->entries[f->n];
        f->n++;
    }
    qsort(order, (size_t)f->n, sizeof *order, by_begin);
    uint64_t pos = 0;
    for (int j = 0; j < f->n; j++) {
        if (order[j]->begin < pos) {
            s = imcap_fail(err, IMCAP_E_FORMAT, "%s: tensor \"%s\" overlaps tensor \"%s\" in the data buffer", where,
                           order[j]->name, order[j - 1]->name);
            goto fail;
        }
        if (order[j]->begin > pos) {
            s = imcap_fail(err, IMCAP_E_FORMAT, "%s: tensor \"%s\": %llu unused bytes before it in the data buffer", where,
                           order[j]->name, (unsigned long long)(order[j]->begin - pos));
            goto fail;
        }
        pos = order[j]->end;
    }
    if (pos != f->data_size) {
        s = imcap_fail(err, IMCAP_E_FORMAT, "%s: %llu bytes after the last tensor (the tensors must cover the data exactly)",
                       where, (unsigned long long)(f->data_size - pos));
        goto fail;
    }
    free(order);
    return IMCAP_OK;
fail:
    free(order);
    imcap_st_close(f);
    return s;
}

imcap_status imcap_st_map(const char *path, const char *what, void **map, size_t *size, imcap_error *err) {
    *map = NULL, *size = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return imcap_fail(err, IMCAP_E_IO, "%s: cannot open %s: %s", path, what, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return imcap_fail(err, IMCAP_E_IO, "%s: not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return imcap_fail(err, IMCAP_E_FORMAT, "%s: truncated: 0 bytes, shorter than the 8-byte header length", path);
    }
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) return imcap_fail(err, IMCAP_E_IO, "%s: cannot map: %s", path, strerror(errno));
    *map = m, *size = (size_t)st.st_size;
    return IMCAP_OK;
}

imcap_status imcap_st_open(const char *path, imcap_st_file *f, imcap_error *err) {
    memset(f, 0, sizeof *f);
    void *map;
    size_t size;
    imcap_status s = imcap_st_map(path, "safetensors file", &map, &size, err);
    if (s) return s;
    if ((s = imcap_st_parse(map, size, path, f, err))) {
        munmap(map, size);
        return s;
    }
    f->map = map, f->map_size = size;
    return IMCAP_OK;
}

void imcap_st_close(imcap_st_file *f) {
    cJSON_Delete(f->root);
    free(f->entries);
    if (f->map) munmap(f->map, f->map_size);
    memset(f, 0, sizeof *f);
}

const imcap_st_entry *imcap_st_find(const imcap_st_file *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->entries[i].name, name) == 0) return &f->entries[i];
    return NULL;
}

int imcap_st_is_float(const imcap_st_entry *e) {
    return !strcmp(e->dtype, "F32") || !strcmp(e->dtype, "F16") || !strcmp(e->dtype, "BF16");
}

void imcap_st_read_f32(const imcap_st_file *f, const imcap_st_entry *e, float *dst) {
    const unsigned char *src = f->data + e->begin;
    if (!strcmp(e->dtype, "F32")) {
        memcpy(dst, src, e->count * 4); /* little-endian host assumed (x86-64, aarch64) */
        return;
    }
    int bf16 = !strcmp(e->dtype, "BF16");
    for (uint64_t i = 0; i < e->count; i++) {
        uint16_t h = (uint16_t)(src[2 * i] | (src[2 * i + 1] << 8));
        dst[i] = bf16 ? bf16_to_float(h) : imcap_half_to_float(h);
    }
}
