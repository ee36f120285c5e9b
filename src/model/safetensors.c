/* safetensors.c — reading and writing model files (formats 1 and 2).
 *
 * Loading validates everything before a model is returned: the container
 * (st_file.c: header length, JSON with no duplicate key, offsets that tile
 * the byte buffer exactly), then the metadata, float dtypes, shapes against
 * the config, the vocabulary. Tensors are copied (and F16/BF16 widened) into
 * one contiguous F32 block. */
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
#include "st_file.h"
#include "util/util.h"

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
    if (strcmp(fmt, "1") != 0 && strcmp(fmt, "2") != 0)
        return imcap_fail(err, IMCAP_E_FORMAT, "%s: imcap.format is \"%s\"; this reader knows formats \"1\" and \"2\"",
                          where, fmt);
    if (!config) return imcap_fail(err, IMCAP_E_FORMAT, "%s: __metadata__ has no \"imcap.config\"", where);
    if (!vocab) return imcap_fail(err, IMCAP_E_FORMAT, "%s: __metadata__ has no \"imcap.vocab\"", where);
    char ctx[1100];
    snprintf(ctx, sizeof ctx, "%s: imcap.config", where);
    imcap_status s = imcap_config_parse(config, ctx, &m->cfg, err);
    if (s) return s;
    if (m->cfg.format > 1 && fmt[0] == '1')
        return imcap_fail(err, IMCAP_E_FORMAT, "%s: the config uses format 2's layers or fields, but imcap.format is \"1\"",
                          ctx);
    m->config_json = strdup(config);
    if ((s = imcap_vocab_parse(vocab, where, &m->vocab, err))) return s;
    m->meta = calloc((size_t)extra + 1, sizeof *m->meta);
    if (!m->config_json || !m->meta) return imcap_fail(err, IMCAP_E_NOMEM, "%s: out of memory", where);
    for (const cJSON *c = md->child; c; c = c->next) {
        if (strncmp(c->string, "imcap.", 6) == 0 &&
            (!strcmp(c->string, "imcap.format") || !strcmp(c->string, "imcap.config") || !strcmp(c->string, "imcap.vocab")))
            continue;
        char *k = strdup(c->string), *v = strdup(c->valuestring);
        if (!k || !v) {
            free(k), free(v);
            return imcap_fail(err, IMCAP_E_NOMEM, "%s: out of memory", where);
        }
        m->meta[m->n_meta].key = k, m->meta[m->n_meta].value = v;
        m->n_meta++;
    }
    return IMCAP_OK;
}

/* What the model needs of a tensor the container holds: a name of the
 * table, a float dtype, the shape the config implies. */
static imcap_status check_entry(const imcap_st_entry *e, const char *where, const imcap_param_table *tab, int *index,
                                imcap_error *err) {
    *index = imcap_param_table_find(tab, e->name);
    if (*index < 0)
        return imcap_fail(err, IMCAP_E_FORMAT, "%s: unexpected tensor \"%s\" (not part of the model the config describes)",
                          where, e->name);
    const imcap_tensor_info *ti = &tab->t[*index];
    if (!imcap_st_is_float(e))
        return imcap_fail(err, IMCAP_E_FORMAT, "%s: tensor \"%s\": dtype \"%s\" is not supported (F32, F16, BF16)", where,
                          e->name, e->dtype);
    int ok = e->ndim == ti->ndim;
    char got[160] = "", want[128] = "";
    size_t len = 0;
    for (int i = 0; i < e->ndim; i++) {
        len += (size_t)snprintf(got + len, sizeof got - len, "%s%lld", i ? ", " : "", (long long)e->shape[i]);
        if (i < ti->ndim && e->shape[i] != ti->shape[i]) ok = 0;
    }
    len = 0;
    for (int i = 0; i < ti->ndim; i++) len += (size_t)snprintf(want + len, sizeof want - len, "%s%d", i ? ", " : "", ti->shape[i]);
    if (!ok)
        return imcap_fail(err, IMCAP_E_FORMAT, "%s: tensor \"%s\": shape [%s] disagrees with the config, which implies [%s]",
                          where, e->name, got, want);
    return IMCAP_OK;
}

/* The score reads only the precision's upper triangle (model/domain.c):
 * a matrix that is not symmetric would mean something else. */
static imcap_status check_symmetric(const float *S, int F, const char *where, imcap_error *err) {
    for (int i = 0; i < F; i++)
        for (int j = i + 1; j < F; j++)
            if (S[(size_t)i * F + j] != S[(size_t)j * F + i])
                return imcap_fail(err, IMCAP_E_FORMAT,
                                  "%s: tensor \"stats.domain.precision\" is not symmetric: [%d][%d] = %.9g but [%d][%d] = %.9g",
                                  where, i, j, S[(size_t)i * F + j], j, i, S[(size_t)j * F + i]);
    return IMCAP_OK;
}

static imcap_status load_buffer(const unsigned char *data, size_t size, const char *where, imcap_model **out,
                                 imcap_error *err) {
    *out = NULL;
    imcap_st_file f;
    imcap_status s = imcap_st_parse(data, size, where, &f, err);
    if (s) return s;
    int *index = NULL;
    imcap_model *m = calloc(1, sizeof *m);
    if (!m) { s = imcap_fail(err, IMCAP_E_NOMEM, "%s: out of memory", where); goto fail; }
    if (!f.metadata) { s = imcap_fail(err, IMCAP_E_FORMAT, "%s: header has no __metadata__ (imcap.format, imcap.config, imcap.vocab)", where); goto fail; }
    if ((s = read_metadata(f.metadata, where, m, err))) goto fail;
    imcap_param_table_build(&m->cfg, m->vocab.n, &m->tab);
    index = calloc((size_t)f.n + 1, sizeof *index);
    char *seen = calloc((size_t)m->tab.n + 1, 1);
    if (!index || !seen) { free(seen); s = imcap_fail(err, IMCAP_E_NOMEM, "%s: out of memory", where); goto fail; }
    for (int j = 0; j < f.n; j++) {
        if ((s = check_entry(&f.entries[j], where, &m->tab, &index[j], err))) { free(seen); goto fail; }
        seen[index[j]] = 1;
    }
    for (int i = 0; i < m->tab.n; i++)
        if (!seen[i]) {
            s = imcap_fail(err, IMCAP_E_FORMAT, "%s: missing tensor \"%s\"", where, m->tab.t[i].name);
            free(seen);
            goto fail;
        }
    free(seen);
    m->block = imcap_aligned_alloc(m->tab.total * sizeof(float));
    if (!m->block) { s = imcap_fail(err, IMCAP_E_NOMEM, "%s: out of memory for %zu parameters", where, m->tab.total); goto fail; }
    for (int j = 0; j < f.n; j++) imcap_st_read_f32(&f, &f.entries[j], m->block + m->tab.t[index[j]].offset);
    imcap_params_point(&m->p, &m->cfg, &m->tab, m->block);
    if (m->cfg.has_domain && (s = check_symmetric(m->p.domain_precision, m->cfg.domain_F, where, err))) goto fail;
    if ((s = imcap_model_pack_alloc(m, err))) goto fail;
    free(index);
    imcap_st_close(&f);
    *out = m;
    return IMCAP_OK;
fail:
    free(index);
    imcap_st_close(&f);
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
    void *map;
    size_t size;
    imcap_status st = imcap_st_map(path, "model", &map, &size, err);
    if (st) return st;
    imcap_status s = load_buffer(map, size, path, out, err);
    munmap(map, size);
    return s;
}

imcap_status imcap_model_serialize(const imcap_model *m, unsigned char **data, size_t *size, imcap_error *err) {
    *data = NULL, *size = 0;
    cJSON *root = cJSON_CreateObject(), *md = cJSON_CreateObject();
    cJSON_AddItemToObject(root, "__metadata__", md);
    /* the lowest version that holds the model: a format-1 model stays readable by format-1 readers */
    cJSON_AddStringToObject(md, "imcap.format", m->cfg.format > 1 ? "2" : "1");
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
