/* safetensors.c — reading and writing the model container (format v1).
 *
 * Loading validates everything before a model is returned: header length,
 * JSON (duplicate keys refused), metadata, dtypes, shapes against the config,
 * offsets that tile the byte buffer exactly, the vocabulary. Tensors are
 * copied (and F16/BF16 widened) into one contiguous F32 block. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json_check.h"
#include "model.h"
#include "util/util.h"

#define MAX_HEADER 100000000ULL

typedef struct {
    const char *name;
    int dtype_size; /* 4 = F32, 2 = F16 or BF16 */
    int is_bf16;
    uint64_t begin, end;
    int table_index;
} entry;

static float half_to_float(uint16_t h) {
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

static float bf16_to_float(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static int by_begin(const void *a, const void *b) {
    const entry *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : (x->end < y->end ? -1 : x->end > y->end);
}

static imcap_status read_metadata(const cJSON *md, const char *where, imcap_model *m, imcap_error *err) {
    if (!cJSON_IsObject(md)) return imcap_fail(err, IMCAP_E_FORMAT, "%s: __metadata__ must be an object of strings", where);
    const char *fmt = NULL, *config = NULL, *vocab = NULL;
    int extra = 0;
    for (const cJSON *c = md->child; c; c = c->next) {
        if (!cJSON_IsString(c))
            return imcap_fail(err, IMCAP_E_FORMAT, "%s: __metadata__ value of \"%s\" is not a string", where, c->string);
        if (strcmp(c->string, "imcap.format") == 0) fmt = c->valuestring;
        else if (strcmp(c->string, "imcap.config") == 0) config = c->valuestring;
        else if (strcmp(c->string, "imcap.vocab") == 0) vocab = c->valuestring;
        else extra++;
    }
    if (!fmt) return imcap_fail(err, IMCAP_E_FORMAT, "%s: __metadata__ has no \"imcap.format\"", where);
    if (strcmp(fmt, "1") != 0)
        return imcap_fail(err, IMCAP_E_FORMAT, "%s: imcap.format is \"%s\"; this reader knows format \"1\"", where, fmt);
    if (!config) return imcap_fail(err, IMCAP_E_FORMAT, "%s: __metadata__ has no \"imcap.config\"", where);
    if (!vocab) return imcap_fail(err, IMCAP_E_FORMAT, "%s: __metadata__ has no \"imcap.vocab\"", where);
    char ctx[1100];
    snprintf(ctx, sizeof ctx, "%s: imcap.config", where);
    imcap_status s = imcap_config_parse(config, ctx, &m->cfg, err);
    if (s) return s;
    m->config_json = strdup(config);
    if ((s = imcap_vocab_parse(vocab, where, &m->vocab, err))) return s;
    m->meta = calloc((size_t)extra + 1, sizeof *m->meta);
    if (!m->config_json || !m->meta) return imcap_fail(err, IMCAP_E_NOMEM, "%s: out of memory", where);
    for (const cJSON *c = md->child; c; c = c->next) {
        if (strncmp(c->string, "imcap.", 6) == 0 &&
            (!strcmp(c->string, "imcap.format") || !strcmp(c->string, "imcap.config") || !strcmp(c->string, "imcap.vocab")))
            continue;
        m->meta[m->n_meta].key = strdup(c->string);
        m->meta[m->n_meta].value = strdup(c->valuestring);
        m->n_meta++;
    }
    return IMCAP_OK;
}

static imcap_status parse_entry(const cJSON *e, const char *where, uint64_t bufsize, const imcap_param_table *tab,
                                entry *out, imcap_error *err) {
    const char *name = e->string;
    out->name = name;
    if (!cJSON_IsObject(e)) return imcap_fail(err, IMCAP_E_FORMAT, "%s: tensor \"%s\": entry must be an object", where, name);
    out->table_index = imcap_param_table_find(tab, name);
    if (out->table_index < 0)
        return imcap_fail(err, IMCAP_E_FORMAT, "%s: unexpected tensor \"%s\" (not part of the model the config describes)",
                          where, name);
    const imcap_tensor_info *ti = &tab->t[out->table_index];
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *of = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt)) return imcap_fail(err, IMCAP_E_FORMAT, "%s: tensor \"%s\": missing \"dtype\"", where, name);
    if (!strcmp(dt->valuestring, "F32")) out->dtype_size = 4;
    else if (!strcmp(dt->valuestring, "F16")) out->dtype_size = 2;
    else if (!strcmp(dt->valuestring, "BF16")) out->dtype_size = 2, out->is_bf16 = 1;
    else
        return imcap_fail(err, IMCAP_E_FORMAT, "%s: tensor \"%s\": dtype \"%s\" is not supported (F32, F16, BF16)", where,
                          name, dt->valuestring);
    if (!cJSON_IsArray(sh)) return imcap_fail(err, IMCAP_E_FORMAT, "%s: tensor \"%s\": missing \"shape\" array", where, name);
    int nd = cJSON_GetArraySize(sh);
    char got[128] = "", want[128] = "";
    int ok = nd == ti->ndim;
    size_t len = 0;
    for (int i = 0; i < nd && i < 8; i++) {
        long long d;
        if (imcap_json_int(cJSON_GetArrayItem(sh, i), 0, 1LL << 40, &d) != 0)
            return imcap_fail(err, IMCAP_E_FORMAT, "%s: tensor \"%s\": shape[%d] is not a non-negative integer", where, name, i);
        len += (size_t)snprintf(got + len, sizeof got - len, "%s%lld", i ? ", " : "", d);
        if (i < ti->ndim && d != ti->shape[i]) ok = 0;
    }
    len = 0;
    for (int i = 0; i < ti->ndim; i++) len += (size_t)snprintf(want + len, sizeof want - len, "%s%d", i ? ", " : "", ti->shape[i]);
    if (!ok)
        return imcap_fail(err, IMCAP_E_FORMAT, "%s: tensor \"%s\": shape [%s] disagrees with the config, which implies [%s]",
                          where, name, got, want);
    long long b, en;
    if (!cJSON_IsArray(of) || cJSON_GetArraySize(of) != 2 || imcap_json_int(cJSON_GetArrayItem(of, 0), 0, 1LL << 52, &b) ||
        imcap_json_int(cJSON_GetArrayItem(of, 1), 0, 1LL << 52, &en))
        return imcap_fail(err, IMCAP_E_FORMAT, "%s: tensor \"%s\": \"data_offsets\" must be [begin, end] integers", where, name);
    if (en < b) return imcap_fail(err, IMCAP_E_FORMAT, "%s: tensor \"%s\": data_offsets end %lld before begin %lld", where, name, en, b);
    if ((uint64_t)en > bufsize)
        return imcap_fail(err, IMCAP_E_FORMAT, "%s: tensor \"%s\": data_offsets [%lld, %lld] run past the end of the data (%llu bytes)",
                          where, name, b, en, (unsigned long long)bufsize);
    if ((uint64_t)(en - b) != ti->count * (uint64_t)out->dtype_size)
        return imcap_fail(err, IMCAP_E_FORMAT, "%s: tensor \"%s\": data_offsets span %lld bytes; dtype %s and shape [%s] need %llu",
                          where, name, en - b, dt->valuestring, want, (unsigned long long)(ti->count * out->dtype_size));
    out->begin = (uint64_t)b, out->end = (uint64_t)en;
    return IMCAP_OK;
}

static imcap_status load_buffer(const unsigned char *data, size_t size, const char *where, imcap_model **out,
                                 imcap_error *err) {
    *out = NULL;
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
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts((const char *)data + 8, (size_t)n, &end, 0);
    if (!root) {
        /* on failure cJSON points end at the error (the global error pointer is not thread-safe) */
        long off = end ? (long)(end - (const char *)data - 8) : -1;
        return imcap_fail(err, IMCAP_E_FORMAT, "%s: header is not valid JSON (error near byte %ld of the header)", where, off);
    }
    imcap_status s = IMCAP_OK;
    imcap_model *m = calloc(1, sizeof *m);
    entry *ents = NULL;
    if (!m) { s = imcap_fail(err, IMCAP_E_NOMEM, "%s: out of memory", where); goto fail; }
    for (const char *p = end; p < (const char *)data + 8 + n; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && *p != 0) {
            s = imcap_fail(err, IMCAP_E_FORMAT, "%s: header has trailing bytes after its JSON object", where);
            goto fail;
        }
    if (!cJSON_IsObject(root)) { s = imcap_fail(err, IMCAP_E_FORMAT, "%s: header must be a JSON object", where); goto fail; }
    const char *dup = imcap_json_find_duplicate(root);
    if (dup) { s = imcap_fail(err, IMCAP_E_FORMAT, "%s: duplicate key \"%s\" in the header", where, dup); goto fail; }
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(root, "__metadata__");
    if (!md) { s = imcap_fail(err, IMCAP_E_FORMAT, "%s: header has no __metadata__ (imcap.format, imcap.config, imcap.vocab)", where); goto fail; }
    if ((s = read_metadata(md, where, m, err))) goto fail;
    imcap_param_table_build(&m->cfg, m->vocab.n, &m->tab);
    uint64_t bufsize = size - 8 - n;
    int count = cJSON_GetArraySize(root) - 1;
    ents = calloc((size_t)count + 1, sizeof *ents);
    if (!ents) { s = imcap_fail(err, IMCAP_E_NOMEM, "%s: out of memory", where); goto fail; }
    int k = 0;
    for (const cJSON *e = root->child; e; e = e->next) {
        if (e == md) continue;
        if ((s = parse_entry(e, where, bufsize, &m->tab, &ents[k], err))) goto fail;
        k++;
    }
    for (int i = 0; i < m->tab.n; i++) {
        int found = 0;
        for (int j = 0; j < count && !found; j++) found = ents[j].table_index == i;
        if (!found) { s = imcap_fail(err, IMCAP_E_FORMAT, "%s: missing tensor \"%s\"", where, m->tab.t[i].name); goto fail; }
    }
    qsort(ents, (size_t)count, sizeof *ents, by_begin);
    uint64_t pos = 0;
    for (int j = 0; j < count; j++) {
        if (ents[j].begin < pos) {
            s = imcap_fail(err, IMCAP_E_FORMAT, "%s: tensor \"%s\" overlaps tensor \"%s\" in the data buffer", where,
                           ents[j].name, ents[j - 1].name);
            goto fail;
        }
        if (ents[j].begin > pos) {
            s = imcap_fail(err, IMCAP_E_FORMAT, "%s: tensor \"%s\": %llu unused bytes before it in the data buffer", where,
                           ents[j].name, (unsigned long long)(ents[j].begin - pos));
            goto fail;
        }
        pos = ents[j].end;
    }
    if (pos != bufsize) {
        s = imcap_fail(err, IMCAP_E_FORMAT, "%s: %llu bytes after the last tensor (the tensors must cover the data exactly)",
                       where, (unsigned long long)(bufsize - pos));
        goto fail;
    }
    m->block = imcap_aligned_alloc(m->tab.total * sizeof(float));
    if (!m->block) { s = imcap_fail(err, IMCAP_E_NOMEM, "%s: out of memory for %zu parameters", where, m->tab.total); goto fail; }
    const unsigned char *buf = data + 8 + n;
    for (int j = 0; j < count; j++) {
        const imcap_tensor_info *ti = &m->tab.t[ents[j].table_index];
        float *dst = m->block + ti->offset;
        const unsigned char *src = buf + ents[j].begin;
        if (ents[j].dtype_size == 4) {
            memcpy(dst, src, ti->count * 4); /* little-endian host assumed (x86-64, aarch64) */
        } else {
            for (size_t i = 0; i < ti->count; i++) {
                uint16_t h = (uint16_t)(src[2 * i] | (src[2 * i + 1] << 8));
                dst[i] = ents[j].is_bf16 ? bf16_to_float(h) : half_to_float(h);
            }
        }
    }
    imcap_params_point(&m->p, &m->cfg, &m->tab, m->block);
    free(ents);
    cJSON_Delete(root);
    *out = m;
    return IMCAP_OK;
fail:
    free(ents);
    cJSON_Delete(root);
    imcap_model_free(m);
    return s;
}

imcap_status imcap_model_load_memory(const void *data, size_t size, const char *name, imcap_model **out,
                                     imcap_error *err) {
    if (!out) return imcap_fail(err, IMCAP_E_ARG, "imcap_model_load_memory: out is NULL");
    *out = NULL;
    if (!data && size) return imcap_fail(err, IMCAP_E_ARG, "imcap_model_load_memory: data is NULL");
    return load_buffer(data, size, name ? name : "(memory)", out, err);
}

imcap_status imcap_model_load(const char *path, imcap_model **out, imcap_error *err) {
    if (!path || !out) return imcap_fail(err, IMCAP_E_ARG, "imcap_model_load: path or out is NULL");
    *out = NULL;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return imcap_fail(err, IMCAP_E_IO, "%s: cannot open model: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return imcap_fail(err, IMCAP_E_IO, "%s: not a regular file", path);
    }
    size_t size = (size_t)st.st_size;
    if (size == 0) {
        close(fd);
        return imcap_fail(err, IMCAP_E_FORMAT, "%s: truncated: 0 bytes, shorter than the 8-byte header length", path);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return imcap_fail(err, IMCAP_E_IO, "%s: cannot map: %s", path, strerror(errno));
    imcap_status s = load_buffer(map, size, path, out, err);
    munmap(map, size);
    return s;
}

imcap_status imcap_model_serialize(const imcap_model *m, unsigned char **data, size_t *size, imcap_error *err) {
    *data = NULL, *size = 0;
    cJSON *root = cJSON_CreateObject(), *md = cJSON_CreateObject();
    cJSON_AddItemToObject(root, "__metadata__", md);
    cJSON_AddStringToObject(md, "imcap.format", "1");
    char *cfg = imcap_config_to_json(&m->cfg), *voc = imcap_vocab_to_json(&m->vocab);
    if (!cfg || !voc) {
        free(cfg), free(voc);
        cJSON_Delete(root);
        return imcap_fail(err, IMCAP_E_NOMEM, "out of memory");
    }
    cJSON_AddStringToObject(md, "imcap.config", cfg);
    cJSON_AddStringToObject(md, "imcap.vocab", voc);
    free(cfg);
    free(voc);
    for (int i = 0; i < m->n_meta; i++) cJSON_AddStringToObject(md, m->meta[i].key, m->meta[i].value);
    for (int i = 0; i < m->tab.n; i++) { /* the table is already in ascending name order */
        const imcap_tensor_info *t = &m->tab.t[i];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "dtype", "F32");
        cJSON *sh = cJSON_AddArrayToObject(e, "shape");
        for (int d = 0; d < t->ndim; d++) cJSON_AddItemToArray(sh, cJSON_CreateNumber(t->shape[d]));
        cJSON *of = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)(t->offset * 4)));
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)((t->offset + t->count) * 4)));
        cJSON_AddItemToObject(root, t->name, e);
    }
    char *hdr = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!hdr) return imcap_fail(err, IMCAP_E_NOMEM, "out of memory");
    size_t hl = strlen(hdr), padded = (hl + 7) / 8 * 8, total = 8 + padded + m->tab.total * sizeof(float);
    unsigned char *buf = malloc(total);
    if (!buf) { free(hdr); return imcap_fail(err, IMCAP_E_NOMEM, "out of memory"); }
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    memcpy(buf + 8, hdr, hl);
    memset(buf + 8 + hl, ' ', padded - hl);
    memcpy(buf + 8 + padded, m->block, m->tab.total * sizeof(float));
    free(hdr);
    *data = buf, *size = total;
    return IMCAP_OK;
}

imcap_status imcap_model_save(const imcap_model *m, const char *path, imcap_error *err) {
    if (!m || !path) return imcap_fail(err, IMCAP_E_ARG, "imcap_model_save: model or path is NULL");
    unsigned char *data;
    size_t size;
    imcap_status s = imcap_model_serialize(m, &data, &size, err);
    if (s) return s;
    s = imcap_write_file_atomic(path, data, size, err);
    free(data);
    return s;
}
