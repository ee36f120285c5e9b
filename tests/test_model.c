/* test_model.c — model config parsing, the safetensors container (save/load
 * round trip, F16/BF16 widening) and a corpus of malformed model files, built
 * here from a valid one so nothing binary is committed.
 *
 * Where the expectations come from: docs/model-format.md. Its "Tensor names"
 * table is re-derived here from the config with cJSON (spec_tensors), without
 * using config.c or params.c; its "Container" rules give the header checks;
 * every refusal must name the file and the offending tensor or field, so each
 * malformed case lists the names its message must contain. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "imcap.h"
#include "model/model.h"
#include "testutil.h"

/* ------------------------------------------------------------ fixtures */

static char *read_rel(const char *rel) {
    char *s = tu_read(tu_src(rel), NULL);
    cr_assert_not_null(s, "cannot read %s", rel);
    return s;
}

static char *tiny_config(void) { return read_rel("tests/data/models/tiny_config.json"); }

/* The spec's vocabulary layout: the four special tokens, then tiny_words.txt
 * one token per line. cJSON_free the result. */
static char *tiny_vocab_json(void) {
    char *words = read_rel("tests/data/models/tiny_words.txt");
    cJSON *a = cJSON_CreateArray();
    static const char *sp[4] = {"<pad>", "<start>", "<end>", "<unk>"};
    for (int i = 0; i < 4; i++) cJSON_AddItemToArray(a, cJSON_CreateString(sp[i]));
    char *save = NULL;
    for (char *w = strtok_r(words, "\r\n", &save); w; w = strtok_r(NULL, "\r\n", &save))
        if (*w) cJSON_AddItemToArray(a, cJSON_CreateString(w));
    char *s = cJSON_PrintUnformatted(a);
    cJSON_Delete(a);
    free(words);
    return s;
}

static imcap_model *make_model(const char *cfg_json, const char *vocab_json, uint64_t seed) {
    imcap_config cfg;
    imcap_vocab v;
    imcap_error err;
    imcap_model *m = NULL;
    cr_assert_eq(imcap_config_parse(cfg_json, "test config", &cfg, &err), IMCAP_OK, "%s", err.msg);
    cr_assert_eq(imcap_vocab_parse(vocab_json, "test vocab", &v, &err), IMCAP_OK, "%s", err.msg);
    cr_assert_eq(imcap_model_create(&cfg, &v, &m, &err), IMCAP_OK, "%s", err.msg);
    imcap_vocab_free(&v);
    imcap_model_init_random(m, seed);
    return m;
}

static void save_model(const imcap_model *m, const char *path) {
    imcap_error err;
    cr_assert_eq(imcap_model_save(m, path, &err), IMCAP_OK, "%s", err.msg);
}

/* A valid tiny model with one provenance entry. */
static void save_tiny(const char *path, uint64_t seed) {
    char *c = tiny_config(), *v = tiny_vocab_json();
    imcap_model *m = make_model(c, v, seed);
    cr_assert_eq(imcap_model_set_metadata(m, "imcap.test.note", "made by test_model.c"), IMCAP_OK);
    save_model(m, path);
    imcap_model_free(m);
    free(c);
    cJSON_free(v);
}

static imcap_model *load_ok(const char *path) {
    imcap_model *m = NULL;
    imcap_error err;
    cr_assert_eq(imcap_model_load(path, &m, &err), IMCAP_OK, "%s", err.msg);
    cr_assert_not_null(m);
    return m;
}

/* tu_tmpdir's buffer is a rotating slot: keep a copy. */
static void tmpdir(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s", tu_tmpdir(name)); }

static void rm_rf(const char *dir) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0);
}

/* Names in dir other than those listed (NULL-terminated): leftovers such as
 * temporary files of an atomic write. Returns how many. */
static int stray_files(const char *dir, const char **expected) {
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        int known = 0;
        for (int i = 0; expected[i]; i++) known |= !strcmp(e->d_name, expected[i]);
        if (!known) {
            cr_log_warn("unexpected file %s/%s", dir, e->d_name);
            n++;
        }
    }
    closedir(d);
    return n;
}

/* ------------------------------------------------------------ the spec's tensor table */

typedef struct {
    char name[64];
    int ndim;
    long long shape[4];
} spec_tensor;

static int geti(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    cr_assert(cJSON_IsNumber(v), "config field %s", k);
    return v->valueint;
}

static void spec_add(spec_tensor *t, int *n, const char *name, int ndim, long long a, long long b, long long c,
                     long long d) {
    spec_tensor *x = &t[(*n)++];
    snprintf(x->name, sizeof x->name, "%s", name);
    x->ndim = ndim;
    x->shape[0] = a, x->shape[1] = b, x->shape[2] = c, x->shape[3] = d;
}

static int by_spec_name(const void *a, const void *b) {
    return strcmp(((const spec_tensor *)a)->name, ((const spec_tensor *)b)->name);
}

/* The "Tensor names" table of the spec for a config and V, sorted by name;
 * D, H, W by the spec's layer rules (conv: (h + 2p - k) / s + 1, maxpool
 * floored without padding, coords adds two channels). */
static int spec_tensors(const char *cfg_json, int V, spec_tensor *out, int *pD, int *pH, int *pW) {
    cJSON *c = cJSON_Parse(cfg_json);
    cr_assert_not_null(c);
    int S = geti(c, "image_size"), ch = 3, h = S, w = S, n = 0, i = 0;
    const cJSON *l;
    char name[64];
    cJSON_ArrayForEach(l, cJSON_GetObjectItemCaseSensitive(c, "encoder")) {
        const char *type = cJSON_GetObjectItemCaseSensitive(l, "type")->valuestring;
        if (!strcmp(type, "conv")) {
            int o = geti(l, "out"), k = geti(l, "kernel"), s = geti(l, "stride"), p = geti(l, "pad");
            snprintf(name, sizeof name, "encoder.%d.weight", i);
            spec_add(out, &n, name, 4, o, ch, k, k);
            snprintf(name, sizeof name, "encoder.%d.bias", i);
            spec_add(out, &n, name, 1, o, 0, 0, 0);
            ch = o, h = (h + 2 * p - k) / s + 1, w = (w + 2 * p - k) / s + 1;
        } else if (!strcmp(type, "maxpool")) {
            int k = geti(l, "kernel"), s = geti(l, "stride");
            h = (h - k) / s + 1, w = (w - k) / s + 1;
        } else if (!strcmp(type, "coords")) {
            ch += 2;
        }
        i++;
    }
    int E = geti(c, "embed_dim"), Hd = geti(c, "hidden_dim"), A = geti(c, "attention_dim"), D = ch;
    spec_add(out, &n, "decoder.embedding.weight", 2, V, E, 0, 0);
    spec_add(out, &n, "decoder.init_h.weight", 2, Hd, D, 0, 0);
    spec_add(out, &n, "decoder.init_h.bias", 1, Hd, 0, 0, 0);
    spec_add(out, &n, "decoder.init_c.weight", 2, Hd, D, 0, 0);
    spec_add(out, &n, "decoder.init_c.bias", 1, Hd, 0, 0, 0);
    spec_add(out, &n, "decoder.attention.encoder_att.weight", 2, A, D, 0, 0);
    spec_add(out, &n, "decoder.attention.encoder_att.bias", 1, A, 0, 0, 0);
    spec_add(out, &n, "decoder.attention.decoder_att.weight", 2, A, Hd, 0, 0);
    spec_add(out, &n, "decoder.attention.decoder_att.bias", 1, A, 0, 0, 0);
    spec_add(out, &n, "decoder.attention.full_att.weight", 2, 1, A, 0, 0);
    spec_add(out, &n, "decoder.attention.full_att.bias", 1, 1, 0, 0, 0);
    spec_add(out, &n, "decoder.f_beta.weight", 2, D, Hd, 0, 0);
    spec_add(out, &n, "decoder.f_beta.bias", 1, D, 0, 0, 0);
    spec_add(out, &n, "decoder.lstm.weight_ih", 2, 4LL * Hd, E + D, 0, 0);
    spec_add(out, &n, "decoder.lstm.bias_ih", 1, 4LL * Hd, 0, 0, 0);
    spec_add(out, &n, "decoder.lstm.weight_hh", 2, 4LL * Hd, Hd, 0, 0);
    spec_add(out, &n, "decoder.lstm.bias_hh", 1, 4LL * Hd, 0, 0, 0);
    spec_add(out, &n, "decoder.fc.weight", 2, V, Hd, 0, 0);
    spec_add(out, &n, "decoder.fc.bias", 1, V, 0, 0, 0);
    qsort(out, (size_t)n, sizeof *out, by_spec_name);
    if (pD) *pD = D;
    if (pH) *pH = h;
    if (pW) *pW = w;
    cJSON_Delete(c);
    return n;
}

static long long spec_count(const spec_tensor *t) {
    long long c = 1;
    for (int d = 0; d < t->ndim; d++) c *= t->shape[d];
    return c;
}

static int vocab_len(const char *vocab_json) {
    cJSON *a = cJSON_Parse(vocab_json);
    int n = cJSON_GetArraySize(a);
    cJSON_Delete(a);
    return n;
}

/* ------------------------------------------------------------ container surgery */

static uint64_t rd64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static void wr64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* A model file taken apart: the metadata object and each tensor's bytes. */
typedef struct {
    char name[96];
    char dtype[16];
    int ndim;
    long long shape[8];
    unsigned char *bytes;
    size_t nbytes;
} part;

typedef struct {
    cJSON *meta;
    int n;
    part t[256];
} parts;

static parts *parts_read(const char *path) {
    size_t n;
    unsigned char *d = (unsigned char *)tu_read(path, &n);
    cr_assert(d && n >= 8, "%s", path);
    uint64_t hl = rd64(d);
    cr_assert(hl <= n - 8);
    cJSON *root = cJSON_ParseWithLength((const char *)d + 8, (size_t)hl);
    cr_assert_not_null(root, "%s: header", path);
    parts *p = calloc(1, sizeof *p);
    p->meta = cJSON_DetachItemFromObjectCaseSensitive(root, "__metadata__");
    const cJSON *e;
    cJSON_ArrayForEach(e, root) {
        part *t = &p->t[p->n++];
        snprintf(t->name, sizeof t->name, "%s", e->string);
        snprintf(t->dtype, sizeof t->dtype, "%s", cJSON_GetObjectItemCaseSensitive(e, "dtype")->valuestring);
        const cJSON *x;
        cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(e, "shape")) t->shape[t->ndim++] = (long long)x->valuedouble;
        const cJSON *of = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
        size_t b = (size_t)cJSON_GetArrayItem(of, 0)->valuedouble, en = (size_t)cJSON_GetArrayItem(of, 1)->valuedouble;
        t->nbytes = en - b;
        t->bytes = malloc(t->nbytes + 1);
        memcpy(t->bytes, d + 8 + hl + b, t->nbytes);
    }
    cJSON_Delete(root);
    free(d);
    return p;
}

static void parts_free(parts *p) {
    for (int i = 0; i < p->n; i++) free(p->t[i].bytes);
    cJSON_Delete(p->meta);
    free(p);
}

static part *parts_get(parts *p, const char *name) {
    for (int i = 0; i < p->n; i++)
        if (!strcmp(p->t[i].name, name)) return &p->t[i];
    cr_assert_fail("no tensor %s", name);
    return NULL;
}

static void parts_remove(parts *p, const char *name) {
    part *t = parts_get(p, name);
    free(t->bytes);
    *t = p->t[--p->n];
}

static part *parts_add(parts *p, const char *name, const char *dtype, int ndim, const long long *shape, size_t nbytes) {
    part *t = &p->t[p->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    snprintf(t->dtype, sizeof t->dtype, "%s", dtype);
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->nbytes = nbytes;
    t->bytes = calloc(1, nbytes + 1);
    return t;
}

static int by_part_name(const void *a, const void *b) { return strcmp(((const part *)a)->name, ((const part *)b)->name); }

/* Lays the tensors out in ascending name order, as the spec's writers do, and
 * returns the header object (to be altered further or written) and the
 * byte buffer. */
static cJSON *parts_layout(parts *p, unsigned char **buf, size_t *len) {
    qsort(p->t, (size_t)p->n, sizeof p->t[0], by_part_name);
    cJSON *root = cJSON_CreateObject();
    if (p->meta) cJSON_AddItemToObject(root, "__metadata__", cJSON_Duplicate(p->meta, 1));
    size_t total = 0;
    for (int i = 0; i < p->n; i++) total += p->t[i].nbytes;
    *buf = malloc(total + 1);
    size_t off = 0;
    for (int i = 0; i < p->n; i++) {
        part *t = &p->t[i];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "dtype", t->dtype);
        cJSON *sh = cJSON_AddArrayToObject(e, "shape");
        for (int d = 0; d < t->ndim; d++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->shape[d]));
        cJSON *of = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)(off + t->nbytes)));
        cJSON_AddItemToObject(root, t->name, e);
        memcpy(*buf + off, t->bytes, t->nbytes);
        off += t->nbytes;
    }
    *len = total;
    return root;
}

/* 8-byte length, the header padded with spaces to a multiple of 8, the buffer. */
static void write_container(const char *path, const char *text, size_t tlen, const unsigned char *buf, size_t len) {
    size_t hl = (tlen + 7) / 8 * 8, n = 8 + hl + len;
    unsigned char *f = malloc(n);
    wr64(f, hl);
    memcpy(f + 8, text, tlen);
    memset(f + 8 + tlen, ' ', hl - tlen);
    if (len) memcpy(f + 8 + hl, buf, len);
    tu_write(path, f, n);
    free(f);
}

static void write_root(const char *path, cJSON *root, const unsigned char *buf, size_t len) {
    char *t = cJSON_PrintUnformatted(root);
    write_container(path, t, strlen(t), buf, len);
    cJSON_free(t);
}

static void parts_write(parts *p, const char *path) {
    unsigned char *buf;
    size_t len;
    cJSON *root = parts_layout(p, &buf, &len);
    write_root(path, root, buf, len);
    cJSON_Delete(root);
    free(buf);
}

static void meta_set(parts *p, const char *key, const char *val) {
    if (cJSON_GetObjectItemCaseSensitive(p->meta, key))
        cJSON_ReplaceItemInObjectCaseSensitive(p->meta, key, cJSON_CreateString(val));
    else cJSON_AddStringToObject(p->meta, key, val);
}

/* The JSON text held by a metadata entry, parsed. */
static cJSON *meta_json(parts *p, const char *key) {
    cJSON *v = cJSON_Parse(cJSON_GetObjectItemCaseSensitive(p->meta, key)->valuestring);
    cr_assert_not_null(v, "%s", key);
    return v;
}

static void meta_set_json(parts *p, const char *key, cJSON *v) {
    char *t = cJSON_PrintUnformatted(v);
    meta_set(p, key, t);
    cJSON_free(t);
    cJSON_Delete(v);
}

static cJSON *entry_of(cJSON *root, const char *name) {
    cJSON *e = cJSON_GetObjectItemCaseSensitive(root, name);
    cr_assert_not_null(e, "%s", name);
    return e;
}

static void set_offsets(cJSON *root, const char *name, double b, double e) {
    cJSON *of = cJSON_GetObjectItemCaseSensitive(entry_of(root, name), "data_offsets");
    cJSON_ReplaceItemInArray(of, 0, cJSON_CreateNumber(b));
    cJSON_ReplaceItemInArray(of, 1, cJSON_CreateNumber(e));
}

static double offset_of(cJSON *root, const char *name, int which) {
    return cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(entry_of(root, name), "data_offsets"), which)->valuedouble;
}

/* ------------------------------------------------------------ config parsing */

#define WHERE "cfgtest.json"

/* The tiny config with an edit applied, as text (cJSON_free). */
typedef void (*cfg_edit)(cJSON *cfg, const void *arg);

static char *tiny_edited(cfg_edit edit, const void *arg) {
    char *t = tiny_config();
    cJSON *c = cJSON_Parse(t);
    free(t);
    cr_assert_not_null(c);
    edit(c, arg);
    char *s = cJSON_PrintUnformatted(c);
    cJSON_Delete(c);
    return s;
}

static cJSON *layer(cJSON *cfg, int i) { return cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(cfg, "encoder"), i); }

/* Expects imcap_config_parse to refuse text with a message naming WHERE and
 * every one of the names. */
static void expect_config_refused(const char *text, const char *const *names) {
    imcap_config cfg;
    imcap_error err = {0};
    imcap_status s = imcap_config_parse(text, WHERE, &cfg, &err);
    cr_expect_eq(s, IMCAP_E_FORMAT, "accepted or wrong status %d for %s", s, text);
    cr_expect(strstr(err.msg, WHERE) != NULL, "message \"%s\" does not name the source", err.msg);
    for (int i = 0; names[i]; i++)
        cr_expect(strstr(err.msg, names[i]) != NULL, "message \"%s\" does not name \"%s\" (config %s)", err.msg, names[i],
                  text);
}

static void del_key(cJSON *c, const void *k) { cJSON_DeleteItemFromObjectCaseSensitive(c, k); }

Test(config, tiny_parses_with_spec_shapes) {
    char *t = tiny_config(), *v = tiny_vocab_json();
    imcap_config cfg;
    imcap_error err;
    cr_assert_eq(imcap_config_parse(t, WHERE, &cfg, &err), IMCAP_OK, "%s", err.msg);
    spec_tensor st[IMCAP_MAX_TENSORS];
    int D, H, W;
    spec_tensors(t, vocab_len(v), st, &D, &H, &W);
    cr_expect_eq(cfg.D, D);
    cr_expect_eq(cfg.H, H);
    cr_expect_eq(cfg.W, W);
    cr_expect_eq(cfg.L, H * W);
    cr_expect_eq(cfg.n_layers, 6);
    /* the canonical text parses back to the same config */
    char *again = imcap_config_to_json(&cfg);
    imcap_config cfg2;
    cr_assert_eq(imcap_config_parse(again, WHERE, &cfg2, &err), IMCAP_OK, "%s", err.msg);
    cr_expect(memcmp(&cfg, &cfg2, sizeof cfg) == 0, "config changed through imcap_config_to_json: %s", again);
    free(again);
    free(t);
    cJSON_free(v);
}

Test(config, each_required_field_missing) {
    static const char *fields[] = {"image_size", "mean", "std", "encoder", "embed_dim", "hidden_dim", "attention_dim",
                                   "max_length"};
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
        char *s = tiny_edited(del_key, fields[i]);
        expect_config_refused(s, (const char *[]){fields[i], NULL});
        cJSON_free(s);
    }
}

typedef struct {
    int layer;
    const char *key;
} layer_key;

static void del_layer_key(cJSON *c, const void *a) {
    const layer_key *lk = a;
    cJSON_DeleteItemFromObjectCaseSensitive(layer(c, lk->layer), lk->key);
}

Test(config, each_layer_field_missing) {
    /* tiny_config: 0 conv, 2 maxpool */
    static const layer_key cases[] = {{0, "type"}, {0, "out"}, {0, "kernel"}, {0, "stride"},
                                      {0, "pad"},  {2, "kernel"}, {2, "stride"}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *s = tiny_edited(del_layer_key, &cases[i]);
        expect_config_refused(s, (const char *[]){cases[i].key, NULL});
        cJSON_free(s);
    }
}

static void add_top_key(cJSON *c, const void *k) { cJSON_AddNumberToObject(c, k, 0.5); }

Test(config, unknown_top_level_key) {
    char *s = tiny_edited(add_top_key, "dropout");
    expect_config_refused(s, (const char *[]){"dropout", NULL});
    cJSON_free(s);
}

static void set_output(cJSON *c, const void *v) {
    if (v) cJSON_AddStringToObject(c, "output", v);
    else cJSON_AddNumberToObject(c, "output", 1);
}

/* "output": "deep" (format 2) adds deep_h and deep_z and narrows fc to
 * embed_dim; "linear" is format 1's decoder; anything else is refused */
Test(config, deep_output_layer) {
    char *deep = tiny_edited(set_output, "deep"), *lin = tiny_edited(set_output, "linear"), *t = tiny_config();
    imcap_config c, cl, c0;
    imcap_error err;
    cr_assert_eq(imcap_config_parse(deep, WHERE, &c, &err), IMCAP_OK, "%s", err.msg);
    cr_assert_eq(imcap_config_parse(lin, WHERE, &cl, &err), IMCAP_OK, "%s", err.msg);
    cr_assert_eq(imcap_config_parse(t, WHERE, &c0, &err), IMCAP_OK, "%s", err.msg);
    cr_expect(c.deep_output && c.format == 2 && imcap_config_fc_in(&c) == c.embed_dim);
    cr_expect(memcmp(&cl, &c0, sizeof cl) == 0, "\"linear\" is not the same config as no \"output\"");
    char *again = imcap_config_to_json(&c), *again0 = imcap_config_to_json(&c0);
    imcap_config c2;
    cr_assert_eq(imcap_config_parse(again, WHERE, &c2, &err), IMCAP_OK, "%s", err.msg);
    cr_expect(memcmp(&c, &c2, sizeof c) == 0, "config changed through imcap_config_to_json: %s", again);
    cr_expect(strstr(again0, "output") == NULL, "a format-1 config's canonical text gained a field: %s", again0);
    imcap_param_table tab;
    imcap_param_table_build(&c, 20, &tab);
    int fc = imcap_param_table_find(&tab, "decoder.fc.weight"), dh = imcap_param_table_find(&tab, "decoder.deep_h.weight"),
        dz = imcap_param_table_find(&tab, "decoder.deep_z.weight");
    cr_assert(fc >= 0 && dh >= 0 && dz >= 0 && imcap_param_table_find(&tab, "decoder.deep_z.bias") >= 0);
    cr_expect(tab.t[fc].shape[0] == 20 && tab.t[fc].shape[1] == c.embed_dim);
    cr_expect(tab.t[dh].shape[0] == c.embed_dim && tab.t[dh].shape[1] == c.hidden_dim);
    cr_expect(tab.t[dz].shape[0] == c.embed_dim && tab.t[dz].shape[1] == c.D);
    imcap_param_table_build(&c0, 20, &tab);
    cr_expect(imcap_param_table_find(&tab, "decoder.deep_h.weight") < 0);
    char *bad = tiny_edited(set_output, "shallow"), *num = tiny_edited(set_output, NULL);
    expect_config_refused(bad, (const char *[]){"output", "deep", NULL});
    expect_config_refused(num, (const char *[]){"output", NULL});
    free(again), free(again0), free(t);
    cJSON_free(deep), cJSON_free(lin), cJSON_free(bad), cJSON_free(num);
}

static void add_layer_key(cJSON *c, const void *a) {
    const layer_key *lk = a;
    cJSON_AddNumberToObject(layer(c, lk->layer), lk->key, 1);
}

Test(config, unknown_layer_key) {
    /* maxpool has no ceil_mode and relu/coords no fields at all (spec, Config) */
    static const layer_key cases[] = {{0, "dilation"}, {2, "ceil_mode"}, {1, "out"}, {5, "kernel"}, {0, "Kernel"}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *s = tiny_edited(add_layer_key, &cases[i]);
        expect_config_refused(s, (const char *[]){cases[i].key, NULL});
        cJSON_free(s);
    }
}

static void set_type(cJSON *c, const void *t) {
    cJSON_ReplaceItemInObjectCaseSensitive(layer(c, 1), "type", cJSON_CreateString(t));
}

Test(config, unknown_layer_type) {
    static const char *types[] = {"gelu", "Conv", "BatchNorm2d", "avgpool", ""};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
        char *s = tiny_edited(set_type, types[i]);
        char quoted[64];
        snprintf(quoted, sizeof quoted, "\"%s\"", types[i]);
        expect_config_refused(s, (const char *[]){quoted, NULL});
        cJSON_free(s);
    }
}

Test(config, layer_type_not_a_string) {
    char *t = tiny_config();
    cJSON *c = cJSON_Parse(t);
    cJSON_ReplaceItemInObjectCaseSensitive(layer(c, 1), "type", cJSON_CreateNumber(3));
    char *s = cJSON_PrintUnformatted(c);
    expect_config_refused(s, (const char *[]){"type", NULL});
    cJSON_free(s);
    cJSON_Delete(c);
    free(t);
}

typedef struct {
    int layer; /* -1: top level */
    const char *key;
    const char *value_json;
} bad_value;

static void set_value(cJSON *c, const void *a) {
    const bad_value *b = a;
    cJSON *obj = b->layer < 0 ? c : layer(c, b->layer);
    cJSON *v = cJSON_Parse(b->value_json);
    cr_assert_not_null(v, "%s", b->value_json);
    cJSON_ReplaceItemInObjectCaseSensitive(obj, b->key, v);
}

Test(config, non_integer_and_out_of_range_values) {
    static const bad_value cases[] = {
        {-1, "image_size", "16.5"}, {-1, "image_size", "\"16\""}, {-1, "image_size", "0"},
        {-1, "embed_dim", "true"},  {-1, "hidden_dim", "null"},   {-1, "attention_dim", "[6]"},
        {-1, "max_length", "-3"},   {-1, "max_length", "1e300"},  {-1, "embed_dim", "0"},
        {0, "out", "4.25"},         {0, "out", "0"},              {0, "kernel", "\"3\""},
        {0, "stride", "0"},         {0, "pad", "-1"},             {2, "kernel", "2.5"},
        {2, "stride", "{}"},        {-1, "mean", "[0.5, 0.5]"},   {-1, "std", "[0.2, 0, 0.2]"},
        {-1, "std", "\"0.2\""},     {-1, "mean", "[0.5, \"a\", 0.5]"}, {-1, "encoder", "{}"},
        /* numbers JSON allows but a float cannot hold: infinite, or rounding to 0 (a fuzz finding) */
        {-1, "mean", "[0.5, 4.3e40, 0.5]"}, {-1, "std", "[0.2, 1e-50, 0.2]"}, {-1, "std", "[0.2, 1e39, 0.2]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *s = tiny_edited(set_value, &cases[i]);
        expect_config_refused(s, (const char *[]){cases[i].key, NULL});
        cJSON_free(s);
    }
}

Test(config, batchnorm_eps_must_survive_as_a_float) {
    static const char *eps[] = {"1e-50", "0", "1", "-0.001", "\"0.001\""};
    for (size_t i = 0; i < sizeof eps / sizeof *eps; i++) {
        char text[512];
        snprintf(text, sizeof text,
                 "{\"image_size\": 8, \"mean\": [0.5, 0.5, 0.5], \"std\": [0.25, 0.25, 0.25], \"encoder\": ["
                 "{\"type\": \"conv\", \"out\": 4, \"kernel\": 3, \"stride\": 1, \"pad\": 1, \"bias\": false},"
                 "{\"type\": \"batchnorm\", \"eps\": %s}], \"embed_dim\": 4, \"hidden_dim\": 4,"
                 " \"attention_dim\": 4, \"max_length\": 4}",
                 eps[i]);
        expect_config_refused(text, (const char *[]){"eps", NULL});
    }
}

Test(config, kernel_larger_than_input) {
    /* image 16: conv k3 p1 -> 16, maxpool 2/2 -> 8, conv s2 p0 -> 3 (tiny_config) */
    static const bad_value cases[] = {
        {0, "kernel", "19"}, /* 16 + 2*1 < 19 */
        {2, "kernel", "17"}, /* maxpool over 16 */
        {3, "kernel", "9"},  /* conv over 8, no padding */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *s = tiny_edited(set_value, &cases[i]);
        expect_config_refused(s, (const char *[]){"kernel", NULL});
        cJSON_free(s);
    }
}

static void dup_top(cJSON *c, const void *k) { cJSON_AddNumberToObject(c, k, cJSON_GetObjectItem(c, k)->valuedouble); }

Test(config, duplicate_key_and_bad_text) {
    char *s = tiny_edited(dup_top, "hidden_dim");
    expect_config_refused(s, (const char *[]){"hidden_dim", NULL});
    cJSON_free(s);
    expect_config_refused("{\"image_size\": 16,", (const char *[]){NULL});
    expect_config_refused("[1, 2]", (const char *[]){NULL});
    expect_config_refused("", (const char *[]){NULL});
}

static void many_layers(cJSON *c, const void *a) {
    (void)a;
    cJSON *enc = cJSON_CreateArray();
    for (int i = 0; i < IMCAP_MAX_LAYERS + 1; i++) {
        cJSON *l = cJSON_CreateObject();
        cJSON_AddStringToObject(l, "type", "relu");
        cJSON_AddItemToArray(enc, l);
    }
    cJSON_ReplaceItemInObjectCaseSensitive(c, "encoder", enc);
}

Test(config, too_many_layers) {
    char *s = tiny_edited(many_layers, NULL);
    expect_config_refused(s, (const char *[]){"encoder", NULL});
    cJSON_free(s);
}

/* ------------------------------------------------------------ round trip */

static void expect_same_model(const imcap_model *a, const imcap_model *b) {
    cr_expect(memcmp(&a->cfg, &b->cfg, sizeof a->cfg) == 0, "config differs");
    cr_expect_str_eq(imcap_model_config_json(a), imcap_model_config_json(b));
    cr_assert_eq(a->vocab.n, b->vocab.n);
    for (int i = 0; i < a->vocab.n; i++) cr_expect_str_eq(imcap_model_word(a, i), imcap_model_word(b, i));
    cr_expect_null(imcap_model_word(b, a->vocab.n));
    cr_expect_null(imcap_model_word(b, -1));
    cr_assert_eq(a->tab.total, b->tab.total);
    cr_assert_eq(a->tab.n, b->tab.n);
    /* bit-identical floats, compared as bytes so -0.0 and NaN payloads count */
    cr_expect(memcmp(a->block, b->block, a->tab.total * sizeof(float)) == 0, "parameters differ");
    imcap_model_info ia, ib;
    imcap_model_get_info(a, &ia);
    imcap_model_get_info(b, &ib);
    cr_expect(memcmp(&ia, &ib, sizeof ia) == 0, "model info differs");
}

Test(roundtrip, tiny_model_bit_identical) {
    char dir[4096], path[4200];
    tmpdir(dir, sizeof dir, "model_roundtrip");
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    char *c = tiny_config(), *v = tiny_vocab_json();
    imcap_model *m = make_model(c, v, 42);
    /* special values must survive too */
    m->block[0] = -0.0f;
    m->block[1] = 1e-45f; /* denormal */
    m->block[2] = 3.4028235e38f;
    cr_assert_eq(imcap_model_set_metadata(m, "imcap.train.command", "imcap train --epochs 3"), IMCAP_OK);
    cr_assert_eq(imcap_model_set_metadata(m, "imcap.odd", "quote \" backslash \\ tab \t newline \n é ✓"), IMCAP_OK);
    save_model(m, path);
    imcap_model *m2 = load_ok(path);
    expect_same_model(m, m2);
    cr_expect_str_eq(imcap_model_metadata(m2, "imcap.train.command"), "imcap train --epochs 3");
    cr_expect_str_eq(imcap_model_metadata(m2, "imcap.odd"), "quote \" backslash \\ tab \t newline \n é ✓");
    cr_expect_null(imcap_model_metadata(m2, "imcap.absent"));
    /* the reserved keys are the model's config and vocabulary, not provenance */
    cr_expect_null(imcap_model_metadata(m2, "imcap.format"));

    /* the same file loaded from memory */
    size_t n;
    char *data = tu_read(path, &n);
    imcap_model *m3 = NULL;
    imcap_error err;
    cr_assert_eq(imcap_model_load_memory(data, n, "mem", &m3, &err), IMCAP_OK, "%s", err.msg);
    expect_same_model(m, m3);
    free(data);

    /* info against the spec's tensor table */
    spec_tensor st[IMCAP_MAX_TENSORS];
    int D, H, W, nt = spec_tensors(c, vocab_len(v), st, &D, &H, &W);
    long long total = 0;
    for (int i = 0; i < nt; i++) total += spec_count(&st[i]);
    imcap_model_info in;
    imcap_model_get_info(m2, &in);
    cr_expect_eq(in.n_params, total);
    cr_expect_eq(in.vocab_size, vocab_len(v));
    cr_expect_eq(in.feature_dim, D);
    cr_expect_eq(in.grid_h, H);
    cr_expect_eq(in.grid_w, W);
    cr_expect_eq(in.image_size, 16);
    cr_expect_eq(in.max_length, 8);

    imcap_model_free(m);
    imcap_model_free(m2);
    imcap_model_free(m3);
    free(c);
    cJSON_free(v);
    cr_expect_eq(stray_files(dir, (const char *[]){"m.safetensors", NULL}), 0);
    rm_rf(dir);
}

Test(roundtrip, unusual_vocabulary_strings) {
    char dir[4096], path[4200];
    tmpdir(dir, sizeof dir, "model_vocab_escape");
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    char *c = tiny_config();
    const char *vocab = "[\"<pad>\", \"<start>\", \"<end>\", \"<unk>\", \"don't\", \"\\\"q\\\"\", \"back\\\\slash\","
                        " \"caf\\u00e9\", \"\\u4e2d\", \"tab\\there\", \"\\ud83d\\ude00\", \"<pad2>\"]";
    imcap_model *m = make_model(c, vocab, 5);
    save_model(m, path);
    imcap_model *m2 = load_ok(path);
    expect_same_model(m, m2);
    cr_expect_str_eq(imcap_model_word(m2, 5), "\"q\"");
    cr_expect_str_eq(imcap_model_word(m2, 7), "caf\xc3\xa9");
    cr_expect_str_eq(imcap_model_word(m2, 10), "\xf0\x9f\x98\x80");
    imcap_model_free(m);
    imcap_model_free(m2);
    free(c);
    rm_rf(dir);
}

Test(roundtrip, save_is_deterministic_and_load_save_idempotent) {
    char dir[4096], a[4200], b[4200], cpath[4200];
    tmpdir(dir, sizeof dir, "model_determinism");
    snprintf(a, sizeof a, "%s/a.safetensors", dir);
    snprintf(b, sizeof b, "%s/b.safetensors", dir);
    snprintf(cpath, sizeof cpath, "%s/c.safetensors", dir);
    save_tiny(a, 9);
    save_tiny(b, 9);
    imcap_model *m = load_ok(a);
    save_model(m, cpath);
    imcap_model_free(m);
    size_t na, nb, nc;
    char *da = tu_read(a, &na), *db = tu_read(b, &nb), *dc = tu_read(cpath, &nc);
    cr_expect(na == nb && memcmp(da, db, na) == 0, "same seed, different bytes");
    cr_expect(na == nc && memcmp(da, dc, na) == 0, "load then save changed the bytes");
    /* a different seed changes the weights, not the size */
    save_tiny(b, 10);
    free(db);
    db = tu_read(b, &nb);
    cr_expect(na == nb && memcmp(da, db, na) != 0);
    free(da), free(db), free(dc);
    rm_rf(dir);
}

/* Checks the file against the spec's Container section and tensor table. */
Test(roundtrip, header_layout_follows_the_spec) {
    char dir[4096], path[4200];
    tmpdir(dir, sizeof dir, "model_header");
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    save_tiny(path, 3);
    size_t size;
    unsigned char *d = (unsigned char *)tu_read(path, &size);
    cr_assert_geq(size, 8);
    uint64_t n = rd64(d);
    cr_expect_eq(n % 8, 0, "header length %llu is not a multiple of 8", (unsigned long long)n);
    cr_assert_leq(n, size - 8);
    cJSON *root = cJSON_ParseWithLength((const char *)d + 8, (size_t)n);
    cr_assert_not_null(root, "header is not JSON");
    /* padding: spaces only after the JSON object */
    const char *hdr = (const char *)d + 8;
    size_t jl = n;
    while (jl > 0 && hdr[jl - 1] == ' ') jl--;
    cr_expect_eq(hdr[jl - 1], '}', "the header ends with something other than spaces after the object");
    cr_expect_lt(n - jl, 8, "more padding than needed");

    const cJSON *md = cJSON_GetObjectItemCaseSensitive(root, "__metadata__");
    cr_assert(cJSON_IsObject(md));
    cr_expect_str_eq(cJSON_GetObjectItemCaseSensitive(md, "imcap.format")->valuestring, "1");
    const char *cfg_text = cJSON_GetObjectItemCaseSensitive(md, "imcap.config")->valuestring;
    const char *voc_text = cJSON_GetObjectItemCaseSensitive(md, "imcap.vocab")->valuestring;
    cr_expect_str_eq(cJSON_GetObjectItemCaseSensitive(md, "imcap.test.note")->valuestring, "made by test_model.c");
    char *v = tiny_vocab_json();
    cJSON *va = cJSON_Parse(voc_text), *vb = cJSON_Parse(v);
    cr_expect(cJSON_Compare(va, vb, 1), "imcap.vocab %s != %s", voc_text, v);
    cJSON_Delete(va), cJSON_Delete(vb);

    spec_tensor st[IMCAP_MAX_TENSORS];
    int nt = spec_tensors(cfg_text, vocab_len(v), st, NULL, NULL, NULL);
    cr_expect_eq(cJSON_GetArraySize(root) - 1, nt, "tensor count");
    /* spec_tensors is sorted by name: walking it must walk the buffer from 0 */
    uint64_t pos = 0, bufsize = size - 8 - n;
    for (int i = 0; i < nt; i++) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, st[i].name);
        cr_assert_not_null(e, "tensor %s missing from the header", st[i].name);
        cr_expect_str_eq(cJSON_GetObjectItemCaseSensitive(e, "dtype")->valuestring, "F32");
        const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
        cr_assert_eq(cJSON_GetArraySize(sh), st[i].ndim, "%s", st[i].name);
        for (int k = 0; k < st[i].ndim; k++)
            cr_expect_eq((long long)cJSON_GetArrayItem(sh, k)->valuedouble, st[i].shape[k], "%s shape[%d]", st[i].name, k);
        const cJSON *of = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
        uint64_t b = (uint64_t)cJSON_GetArrayItem(of, 0)->valuedouble, en = (uint64_t)cJSON_GetArrayItem(of, 1)->valuedouble;
        cr_expect_eq(b, pos, "%s starts at %llu, expected %llu (ascending name order, no gaps)", st[i].name,
                     (unsigned long long)b, (unsigned long long)pos);
        cr_expect_eq(en - b, 4 * (uint64_t)spec_count(&st[i]), "%s byte size", st[i].name);
        pos = en;
    }
    cr_expect_eq(pos, bufsize, "the tensors do not cover the buffer exactly");
    long long params = 0;
    for (int i = 0; i < nt; i++) params += spec_count(&st[i]);
    cr_expect_eq(size, 8 + n + 4 * (uint64_t)params, "file size %zu for %lld F32 parameters", size, params);
    cJSON_Delete(root);
    free(d);
    cJSON_free(v);
    rm_rf(dir);
}

Test(roundtrip, save_errors_and_atomicity) {
    char dir[4096], path[4200], bad[4200];
    tmpdir(dir, sizeof dir, "model_save_err");
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    snprintf(bad, sizeof bad, "%s/no/such/dir/m.safetensors", dir);
    char *c = tiny_config(), *v = tiny_vocab_json();
    imcap_model *m = make_model(c, v, 1);
    imcap_error err = {0};
    imcap_status s = imcap_model_save(m, bad, &err);
    cr_expect_eq(s, IMCAP_E_IO, "%s", err.msg);
    cr_expect(strstr(err.msg, bad) != NULL, "message \"%s\" does not name the path", err.msg);
    /* replacing an existing file leaves no temporary file behind */
    tu_write(path, "old", 3);
    save_model(m, path);
    imcap_model *m2 = load_ok(path);
    expect_same_model(m, m2);
    cr_expect_eq(stray_files(dir, (const char *[]){"m.safetensors", NULL}), 0);
    imcap_model_free(m);
    imcap_model_free(m2);
    free(c);
    cJSON_free(v);
    rm_rf(dir);
}

Test(roundtrip, load_io_errors) {
    char dir[4096], path[4200];
    tmpdir(dir, sizeof dir, "model_load_io");
    snprintf(path, sizeof path, "%s/absent.safetensors", dir);
    imcap_model *m = (imcap_model *)&m;
    imcap_error err = {0};
    cr_expect_eq(imcap_model_load(path, &m, &err), IMCAP_E_IO, "%s", err.msg);
    cr_expect_null(m);
    cr_expect(strstr(err.msg, path) != NULL, "%s", err.msg);
    m = (imcap_model *)&m;
    imcap_status s = imcap_model_load(dir, &m, &err); /* a directory */
    cr_expect(s == IMCAP_E_IO || s == IMCAP_E_FORMAT, "%s", err.msg);
    cr_expect_null(m);
    cr_expect(strstr(err.msg, dir) != NULL, "%s", err.msg);
    rm_rf(dir);
}

/* ------------------------------------------------------------ F16 / BF16 */

/* IEEE 754 binary16, from its definition. */
static float ref_half(uint16_t h) {
    int s = h >> 15, e = (h >> 10) & 31, mant = h & 1023;
    double v;
    if (e == 0) v = ldexp(mant, -24);
    else if (e == 31) v = mant ? NAN : INFINITY;
    else v = ldexp(1024 + mant, e - 25);
    return (float)(s ? -v : v);
}

/* bfloat16 is the top half of a binary32. */
static float ref_bf16(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static int same_float(float a, float b) {
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b) && signbit(a) == signbit(b);
    return memcmp(&a, &b, 4) == 0;
}

/* Rewrites every tensor of a saved model in dtypes[i % ndt], with element k
 * of the whole model (counted in name order) holding the 16-bit pattern
 * k % 65536; F32 tensors hold the widened value. Loads it and compares. */
static void check_widening(const char *cfg_text, const char **dtypes, int ndt) {
    char dir[4096], src[4200], dst[4200];
    tmpdir(dir, sizeof dir, "model_widen");
    snprintf(src, sizeof src, "%s/f32.safetensors", dir);
    snprintf(dst, sizeof dst, "%s/half.safetensors", dir);
    char *v = tiny_vocab_json();
    imcap_model *m = make_model(cfg_text, v, 2);
    save_model(m, src);
    imcap_model_free(m);
    parts *p = parts_read(src);
    qsort(p->t, (size_t)p->n, sizeof p->t[0], by_part_name);
    uint32_t k = 0;
    size_t total = 0;
    float **expect = calloc((size_t)p->n, sizeof *expect);
    for (int i = 0; i < p->n; i++) {
        part *t = &p->t[i];
        const char *dt = dtypes[i % ndt];
        size_t cnt = t->nbytes / 4;
        total += cnt;
        expect[i] = malloc(cnt * sizeof(float) + 1);
        free(t->bytes);
        snprintf(t->dtype, sizeof t->dtype, "%s", dt);
        int two = strcmp(dt, "F32") != 0;
        t->nbytes = cnt * (two ? 2 : 4);
        t->bytes = malloc(t->nbytes + 1);
        for (size_t j = 0; j < cnt; j++, k++) {
            uint16_t h = (uint16_t)(k & 0xffff);
            float f = !strcmp(dt, "BF16") ? ref_bf16(h) : ref_half(h);
            expect[i][j] = f;
            if (two) t->bytes[2 * j] = (unsigned char)(h & 0xff), t->bytes[2 * j + 1] = (unsigned char)(h >> 8);
            else memcpy(t->bytes + 4 * j, &f, 4);
        }
    }
    parts_write(p, dst);
    imcap_model *h = load_ok(dst);
    cr_assert_eq(h->tab.total, total);
    int bad = 0;
    for (int i = 0; i < p->n; i++) {
        int ti = imcap_param_table_find(&h->tab, p->t[i].name);
        cr_assert_geq(ti, 0, "%s", p->t[i].name);
        const float *got = h->block + h->tab.t[ti].offset;
        for (size_t j = 0; j < h->tab.t[ti].count; j++)
            if (!same_float(got[j], expect[i][j]) && bad++ < 10)
                cr_log_error("%s %s[%zu]: got %a, expected %a", p->t[i].dtype, p->t[i].name, j, (double)got[j],
                             (double)expect[i][j]);
    }
    cr_expect_eq(bad, 0, "%d values widened wrongly", bad);
    imcap_model_free(h);
    for (int i = 0; i < p->n; i++) free(expect[i]);
    free(expect);
    parts_free(p);
    cJSON_free(v);
    rm_rf(dir);
}

static void wide_embed(cJSON *c, const void *a) {
    (void)a;
    cJSON_ReplaceItemInObjectCaseSensitive(c, "embed_dim", cJSON_CreateNumber(6000));
}

/* embed_dim 6000 gives > 65536 values, so every 16-bit pattern is seen
 * (zeros, subnormals, infinities, NaNs). */
Test(widening, f16_every_pattern) {
    char *c = tiny_edited(wide_embed, NULL);
    check_widening(c, (const char *[]){"F16"}, 1);
    cJSON_free(c);
}

Test(widening, bf16_every_pattern) {
    char *c = tiny_edited(wide_embed, NULL);
    check_widening(c, (const char *[]){"BF16"}, 1);
    cJSON_free(c);
}

/* Mixed dtypes in one file: after 2-byte tensors with an odd element count
 * (decoder.attention.full_att.bias has 1) the following tensors start at
 * offsets that are not multiples of 4. */
Test(widening, mixed_dtypes_unaligned) {
    char *c = tiny_config();
    check_widening(c, (const char *[]){"F16", "F32", "BF16"}, 3);
    free(c);
}

/* ------------------------------------------------------------ malformed files */

typedef struct {
    int n;
    char alt[6][256];
} want_t;

/* The message must contain one of the '|'-separated alternatives. */
static void want(want_t *w, const char *alts) { snprintf(w->alt[w->n++], sizeof w->alt[0], "%s", alts); }

static int has_any(const char *msg, const char *alts) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", alts);
    char *save = NULL;
    for (char *a = strtok_r(buf, "|", &save); a; a = strtok_r(NULL, "|", &save))
        if (strstr(msg, a)) return 1;
    return 0;
}

static void expect_message(const char *id, const char *msg, const char *name, const want_t *w) {
    cr_expect(strstr(msg, name) != NULL, "%s: message \"%s\" does not name the file %s", id, msg, name);
    for (int i = 0; i < w->n; i++)
        cr_expect(has_any(msg, w->alt[i]), "%s: message \"%s\" contains none of \"%s\"", id, msg, w->alt[i]);
}

typedef void (*make_fn)(const char *valid, const char *bad, want_t *w);

static void run_bad(const char *id, make_fn make) {
    char dir[4096], valid[4200], bad[4200];
    tmpdir(dir, sizeof dir, id);
    snprintf(valid, sizeof valid, "%s/valid.safetensors", dir);
    snprintf(bad, sizeof bad, "%s/%s.safetensors", dir, id);
    save_tiny(valid, 7);
    imcap_model_free(load_ok(valid)); /* the base is sound */
    want_t w = {0};
    make(valid, bad, &w);

    imcap_error err = {0};
    imcap_model *m = (imcap_model *)&err;
    imcap_status s = imcap_model_load(bad, &m, &err);
    cr_expect(s == IMCAP_E_FORMAT || s == IMCAP_E_IO, "%s: status %s: %s", id, imcap_status_name(s), err.msg);
    cr_expect_null(m, "%s: *out is not NULL after a failed load", id);
    if (s == IMCAP_OK && m) imcap_model_free(m);
    cr_expect_eq(err.status, s, "%s", id);
    expect_message(id, err.msg, bad, &w);
    cr_log_info("%s", err.msg);

    struct stat st;
    cr_assert_eq(stat(bad, &st), 0);
    if (st.st_size < (1 << 24)) { /* the sparse 100 MB header case is only loaded from its file */
        size_t n;
        char *data = tu_read(bad, &n);
        char name[160];
        snprintf(name, sizeof name, "memory:%s", id);
        imcap_error e2 = {0};
        m = (imcap_model *)&e2;
        imcap_status s2 = imcap_model_load_memory(n ? data : NULL, n, name, &m, &e2);
        cr_expect_eq(s2, IMCAP_E_FORMAT, "%s from memory: status %s: %s", id, imcap_status_name(s2), e2.msg);
        cr_expect_null(m, "%s: *out is not NULL after a failed load from memory", id);
        if (s2 == IMCAP_OK && m) imcap_model_free(m);
        expect_message(id, e2.msg, name, &w);
        free(data);
    }

    /* the CLI: exit 3, the message on stderr, nothing on stdout */
    char cmd[9000], *out = NULL, *errs = NULL;
    snprintf(cmd, sizeof cmd, "'%s' info '%s'", tu_exe(), bad);
    int rc = tu_run(cmd, &out, &errs);
    cr_expect_eq(rc, 3, "%s: imcap info exited %d; stderr: %s", id, rc, errs ? errs : "");
    cr_expect(out && !out[0], "%s: imcap info printed on stdout: %s", id, out ? out : "(null)");
    if (errs) expect_message(id, errs, bad, &w);
    free(out);
    free(errs);
    rm_rf(dir);
}

#define MALFORMED(id)                                                                                                  \
    static void make_##id(const char *valid, const char *bad, want_t *w);                                             \
    Test(malformed, id) { run_bad(#id, make_##id); }                                                                   \
    static void make_##id(const char *valid, const char *bad, want_t *w)

/* Rewrites the valid file through parts with fn applied. */
#define VIA_PARTS(...)                                                                                                \
    do {                                                                                                               \
        parts *p = parts_read(valid);                                                                                  \
        __VA_ARGS__;                                                                                                   \
        parts_write(p, bad);                                                                                           \
        parts_free(p);                                                                                                 \
    } while (0)

/* The header object after layout, edited, then written. */
#define VIA_ROOT(...)                                                                                                 \
    do {                                                                                                               \
        parts *p = parts_read(valid);                                                                                  \
        unsigned char *buf;                                                                                            \
        size_t len;                                                                                                    \
        cJSON *root = parts_layout(p, &buf, &len);                                                                     \
        __VA_ARGS__;                                                                                                   \
        write_root(bad, root, buf, len);                                                                               \
        cJSON_Delete(root);                                                                                            \
        free(buf);                                                                                                     \
        parts_free(p);                                                                                                 \
    } while (0)

static unsigned char *read_valid(const char *valid, size_t *n) {
    unsigned char *d = (unsigned char *)tu_read(valid, n);
    cr_assert_not_null(d);
    return d;
}

MALFORMED(empty_file) {
    (void)valid;
    tu_write(bad, "", 0);
    want(w, "truncated|empty|short");
}

MALFORMED(shorter_than_length) {
    size_t n;
    unsigned char *d = read_valid(valid, &n);
    tu_write(bad, d, 5);
    free(d);
    want(w, "truncated|short");
}

MALFORMED(cut_in_header) {
    size_t n;
    unsigned char *d = read_valid(valid, &n);
    tu_write(bad, d, 8 + rd64(d) / 2);
    free(d);
    want(w, "header");
}

/* Cut inside the last tensor: the message names it (the one with the
 * largest end offset, read from the header). */
MALFORMED(cut_in_data) {
    size_t n;
    unsigned char *d = read_valid(valid, &n);
    uint64_t hl = rd64(d);
    cJSON *root = cJSON_ParseWithLength((const char *)d + 8, (size_t)hl);
    const cJSON *e;
    double best = -1;
    cJSON_ArrayForEach(e, root) {
        if (!strcmp(e->string, "__metadata__")) continue;
        double en = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(e, "data_offsets"), 1)->valuedouble;
        if (en > best) best = en, snprintf(w->alt[0], sizeof w->alt[0], "%s", e->string);
    }
    w->n = 1;
    cJSON_Delete(root);
    tu_write(bad, d, n - 6);
    free(d);
}

MALFORMED(header_length_past_end) {
    size_t n;
    unsigned char *d = read_valid(valid, &n);
    wr64(d, n - 8 + 8);
    tu_write(bad, d, n);
    free(d);
    want(w, "header");
}

/* A length above the limit in a (sparse) file long enough to hold it, so the
 * limit is the only thing wrong. */
MALFORMED(header_length_over_limit) {
    size_t n;
    unsigned char *d = read_valid(valid, &n);
    uint64_t hl = 100000008;
    wr64(d, hl);
    tu_write(bad, d, n);
    free(d);
    cr_assert_eq(truncate(bad, (off_t)(8 + hl + 64)), 0);
    want(w, "header");
    want(w, "100000000|100,000,000|limit|too large|exceeds");
}

MALFORMED(header_length_huge) {
    size_t n;
    unsigned char *d = read_valid(valid, &n);
    wr64(d, UINT64_MAX - 7);
    tu_write(bad, d, n);
    free(d);
    want(w, "header");
}

MALFORMED(header_length_zero) {
    size_t n;
    unsigned char *d = read_valid(valid, &n);
    wr64(d, 0);
    tu_write(bad, d, n);
    free(d);
    want(w, "header");
}

MALFORMED(bad_json) {
    size_t n;
    unsigned char *d = read_valid(valid, &n);
    uint64_t hl = rd64(d);
    /* blank out the second half of the header: an unterminated object */
    memset(d + 8 + hl / 2, ' ', hl - hl / 2);
    tu_write(bad, d, n);
    free(d);
    want(w, "JSON|json");
}

MALFORMED(header_not_object) {
    (void)valid;
    const char *t = "[1, 2, 3]";
    write_container(bad, t, strlen(t), (const unsigned char *)"\0\0\0\0", 4);
    want(w, "object");
}

MALFORMED(header_trailing_garbage) {
    size_t n;
    unsigned char *d = read_valid(valid, &n);
    uint64_t hl = rd64(d);
    /* the padding must be spaces: put a character after the object */
    size_t j = hl;
    while (j > 0 && d[8 + j - 1] == ' ') j--;
    if (j == hl) { /* no padding to spare: rebuild with a longer header */
        free(d);
        VIA_PARTS(meta_set(p, "imcap.pad", "x"));
        d = read_valid(bad, &n);
        hl = rd64(d);
        j = hl;
        while (j > 0 && d[8 + j - 1] == ' ') j--;
    }
    cr_assert_lt(j, hl);
    d[8 + j] = 'x';
    tu_write(bad, d, n);
    free(d);
    want(w, "header");
}

MALFORMED(duplicate_tensor_key) {
    VIA_ROOT(cJSON_AddItemToObject(root, "decoder.fc.bias", cJSON_Duplicate(entry_of(root, "decoder.fc.bias"), 1)));
    want(w, "decoder.fc.bias");
    want(w, "duplicate|twice");
}

MALFORMED(duplicate_metadata_key) {
    VIA_ROOT(cJSON_AddStringToObject(cJSON_GetObjectItemCaseSensitive(root, "__metadata__"), "imcap.format", "1"));
    want(w, "imcap.format");
    want(w, "duplicate|twice");
}

MALFORMED(duplicate_key_in_tensor_entry) {
    VIA_ROOT(cJSON_AddStringToObject(entry_of(root, "decoder.fc.bias"), "dtype", "F32"));
    want(w, "dtype");
    want(w, "duplicate|twice");
}

MALFORMED(duplicate_key_in_config_text) {
    VIA_PARTS({
        cJSON *c = meta_json(p, "imcap.config");
        cJSON_AddNumberToObject(c, "hidden_dim", cJSON_GetObjectItem(c, "hidden_dim")->valuedouble);
        meta_set_json(p, "imcap.config", c);
    });
    want(w, "hidden_dim");
    want(w, "duplicate|twice");
}

MALFORMED(duplicate_key_in_config_layer) {
    VIA_PARTS({
        cJSON *c = meta_json(p, "imcap.config");
        cJSON_AddNumberToObject(layer(c, 0), "kernel", 3);
        meta_set_json(p, "imcap.config", c);
    });
    want(w, "kernel");
    want(w, "duplicate|twice");
}

MALFORMED(dtype_i64) {
    VIA_PARTS({
        part *t = parts_get(p, "decoder.fc.bias");
        size_t cnt = t->nbytes / 4;
        free(t->bytes);
        t->nbytes = 8 * cnt; /* the right size for I64, so only the dtype is wrong */
        t->bytes = calloc(1, t->nbytes);
        snprintf(t->dtype, sizeof t->dtype, "I64");
    });
    want(w, "decoder.fc.bias");
    want(w, "I64");
}

MALFORMED(dtype_f64) {
    VIA_PARTS({
        part *t = parts_get(p, "decoder.init_h.bias");
        size_t cnt = t->nbytes / 4;
        free(t->bytes);
        t->nbytes = 8 * cnt;
        t->bytes = calloc(1, t->nbytes);
        snprintf(t->dtype, sizeof t->dtype, "F64");
    });
    want(w, "decoder.init_h.bias");
    want(w, "F64");
}

MALFORMED(dtype_missing) {
    VIA_ROOT(cJSON_DeleteItemFromObjectCaseSensitive(entry_of(root, "decoder.f_beta.bias"), "dtype"));
    want(w, "decoder.f_beta.bias");
    want(w, "dtype");
}

MALFORMED(f16_with_f32_size) {
    VIA_PARTS(snprintf(parts_get(p, "decoder.lstm.bias_hh")->dtype, 16, "F16"));
    want(w, "decoder.lstm.bias_hh");
}

MALFORMED(shape_transposed) {
    VIA_PARTS({
        part *t = parts_get(p, "decoder.init_h.weight");
        long long a = t->shape[0];
        t->shape[0] = t->shape[1], t->shape[1] = a; /* same byte size */
    });
    want(w, "decoder.init_h.weight");
}

MALFORMED(shape_extra_dimension) {
    VIA_PARTS({
        part *t = parts_get(p, "decoder.fc.bias");
        t->shape[t->ndim++] = 1;
    });
    want(w, "decoder.fc.bias");
}

MALFORMED(shape_for_another_vocabulary) {
    VIA_PARTS({
        part *t = parts_get(p, "decoder.embedding.weight");
        t->shape[0] += 1;
        free(t->bytes);
        t->nbytes = (size_t)(t->shape[0] * t->shape[1] * 4);
        t->bytes = calloc(1, t->nbytes);
    });
    want(w, "decoder.embedding.weight");
}

MALFORMED(shape_not_integer) {
    VIA_ROOT(cJSON_ReplaceItemInArray(cJSON_GetObjectItemCaseSensitive(entry_of(root, "decoder.fc.bias"), "shape"), 0,
                                      cJSON_CreateString("11")));
    want(w, "decoder.fc.bias");
}

MALFORMED(data_offsets_size_mismatch) {
    VIA_PARTS(parts_get(p, "decoder.attention.full_att.weight")->nbytes -= 4);
    want(w, "decoder.attention.full_att.weight");
}

/* Tensor 5 in name order moved back 4 bytes: it overlaps tensor 4. */
MALFORMED(overlapping_offsets) {
    VIA_ROOT({
        const char *a = p->t[4].name, *b = p->t[5].name;
        set_offsets(root, b, offset_of(root, b, 0) - 4, offset_of(root, b, 1) - 4);
        want(w, b);
        want(w, a);
    });
}

/* Two tensors of the same size pointing at the same bytes; the buffer is
 * still fully used because the file keeps its length. */
MALFORMED(same_offsets_twice) {
    VIA_ROOT({
        const char *a = "decoder.attention.decoder_att.bias", *b = "decoder.attention.encoder_att.bias";
        set_offsets(root, b, offset_of(root, a, 0), offset_of(root, a, 1));
        char alts[256];
        snprintf(alts, sizeof alts, "%s|%s", a, b);
        want(w, alts);
    });
}

/* Four unused bytes before tensor 5. */
MALFORMED(gap_between_tensors) {
    VIA_ROOT({
        double at = offset_of(root, p->t[5].name, 0);
        unsigned char *nb = calloc(1, len + 4);
        memcpy(nb, buf, (size_t)at);
        memcpy(nb + (size_t)at + 4, buf + (size_t)at, len - (size_t)at);
        free(buf);
        buf = nb, len += 4;
        for (int i = 5; i < p->n; i++)
            set_offsets(root, p->t[i].name, offset_of(root, p->t[i].name, 0) + 4, offset_of(root, p->t[i].name, 1) + 4);
        char alts[256];
        snprintf(alts, sizeof alts, "%s|%s", p->t[4].name, p->t[5].name);
        want(w, alts);
    });
}

MALFORMED(offsets_past_end) {
    VIA_ROOT({
        const char *last = p->t[p->n - 1].name;
        set_offsets(root, last, offset_of(root, last, 0) + 4, offset_of(root, last, 1) + 4);
        want(w, last);
    });
}

MALFORMED(offsets_negative) {
    VIA_ROOT(set_offsets(root, p->t[0].name, -4, offset_of(root, p->t[0].name, 1)); want(w, p->t[0].name));
}

MALFORMED(offsets_end_before_begin) {
    VIA_ROOT({
        const char *t = p->t[3].name;
        set_offsets(root, t, offset_of(root, t, 1), offset_of(root, t, 0));
        want(w, t);
    });
}

MALFORMED(bytes_after_last_tensor) {
    VIA_ROOT({
        buf = realloc(buf, len + 8);
        memset(buf + len, 0, 8);
        len += 8;
    });
    want(w, "after|trailing|extra|unused|cover");
}

MALFORMED(missing_tensor) {
    VIA_PARTS(parts_remove(p, "decoder.attention.full_att.bias"));
    want(w, "decoder.attention.full_att.bias");
}

MALFORMED(missing_conv_tensor) {
    VIA_PARTS(parts_remove(p, "encoder.3.bias"));
    want(w, "encoder.3.bias");
}

MALFORMED(extra_tensor) {
    VIA_PARTS(parts_add(p, "decoder.extra.weight", "F32", 1, (long long[]){2}, 8));
    want(w, "decoder.extra.weight");
}

/* Layer 1 is a relu: it has no weights. */
MALFORMED(extra_weight_for_relu) {
    VIA_PARTS(parts_add(p, "encoder.1.weight", "F32", 4, (long long[]){4, 4, 3, 3}, 4 * 144));
    want(w, "encoder.1.weight");
}

MALFORMED(unknown_layer_type) {
    VIA_PARTS({
        cJSON *c = meta_json(p, "imcap.config");
        cJSON_ReplaceItemInObjectCaseSensitive(layer(c, 1), "type", cJSON_CreateString("gelu"));
        meta_set_json(p, "imcap.config", c);
    });
    want(w, "gelu");
    want(w, "imcap.config");
}

MALFORMED(unknown_config_key) {
    VIA_PARTS({
        cJSON *c = meta_json(p, "imcap.config");
        cJSON_AddNumberToObject(c, "dropout", 0.5);
        meta_set_json(p, "imcap.config", c);
    });
    want(w, "dropout");
}

MALFORMED(unknown_layer_key) {
    VIA_PARTS({
        cJSON *c = meta_json(p, "imcap.config");
        cJSON_AddNumberToObject(layer(c, 0), "dilation", 1);
        meta_set_json(p, "imcap.config", c);
    });
    want(w, "dilation");
}

MALFORMED(config_missing_field) {
    VIA_PARTS({
        cJSON *c = meta_json(p, "imcap.config");
        cJSON_DeleteItemFromObjectCaseSensitive(c, "attention_dim");
        meta_set_json(p, "imcap.config", c);
    });
    want(w, "attention_dim");
}

MALFORMED(config_not_json) {
    VIA_PARTS(meta_set(p, "imcap.config", "{\"image_size\": 16,"));
    want(w, "imcap.config|config");
}

MALFORMED(config_absent) {
    VIA_PARTS(cJSON_DeleteItemFromObjectCaseSensitive(p->meta, "imcap.config"));
    want(w, "imcap.config");
}

MALFORMED(format_absent) {
    VIA_PARTS(cJSON_DeleteItemFromObjectCaseSensitive(p->meta, "imcap.format"));
    want(w, "imcap.format");
}

MALFORMED(format_wrong_version) {
    VIA_PARTS(meta_set(p, "imcap.format", "3"));
    want(w, "imcap.format");
}

/* a format-2 field in a file that says format 1 */
MALFORMED(format_1_with_format_2_field) {
    VIA_PARTS({
        cJSON *c = meta_json(p, "imcap.config");
        cJSON_AddNumberToObject(layer(c, 2), "pad", 0);
        meta_set_json(p, "imcap.config", c);
    });
    want(w, "format 2");
    want(w, "imcap.format");
}

/* the deep output layer in a file that says format 1 */
MALFORMED(format_1_with_deep_output) {
    VIA_PARTS({
        cJSON *c = meta_json(p, "imcap.config");
        cJSON_AddStringToObject(c, "output", "deep");
        meta_set_json(p, "imcap.config", c);
    });
    want(w, "format 2");
    want(w, "imcap.format");
}

MALFORMED(format_not_a_string) {
    VIA_PARTS(cJSON_ReplaceItemInObjectCaseSensitive(p->meta, "imcap.format", cJSON_CreateNumber(1)));
    want(w, "imcap.format");
}

MALFORMED(metadata_absent) {
    VIA_PARTS({
        cJSON_Delete(p->meta);
        p->meta = NULL;
    });
    want(w, "__metadata__|imcap.format");
}

MALFORMED(metadata_value_not_string) {
    VIA_PARTS(cJSON_AddNumberToObject(p->meta, "imcap.epochs", 3));
    want(w, "imcap.epochs");
}

/* Same length as the valid vocabulary, so only the special tokens are wrong. */
MALFORMED(vocab_without_special_tokens) {
    VIA_PARTS({
        cJSON *v = meta_json(p, "imcap.vocab");
        static const char *plain[4] = {"pad", "start", "end", "unk"};
        for (int i = 0; i < 4; i++) cJSON_ReplaceItemInArray(v, i, cJSON_CreateString(plain[i]));
        meta_set_json(p, "imcap.vocab", v);
    });
    want(w, "imcap.vocab");
    want(w, "<pad>");
}

MALFORMED(vocab_special_tokens_swapped) {
    VIA_PARTS({
        cJSON *v = meta_json(p, "imcap.vocab");
        cJSON_ReplaceItemInArray(v, 1, cJSON_CreateString("<end>"));
        cJSON_ReplaceItemInArray(v, 2, cJSON_CreateString("<start>"));
        meta_set_json(p, "imcap.vocab", v);
    });
    want(w, "imcap.vocab");
    want(w, "<start>|<end>");
}

MALFORMED(vocab_duplicate) {
    VIA_PARTS({
        cJSON *v = meta_json(p, "imcap.vocab");
        int n = cJSON_GetArraySize(v);
        cJSON_ReplaceItemInArray(v, n - 1, cJSON_CreateString(cJSON_GetArrayItem(v, 5)->valuestring));
        want(w, cJSON_GetArrayItem(v, 5)->valuestring);
        meta_set_json(p, "imcap.vocab", v);
    });
    want(w, "imcap.vocab");
    want(w, "duplicate|twice");
}

MALFORMED(vocab_special_token_twice) {
    VIA_PARTS({
        cJSON *v = meta_json(p, "imcap.vocab");
        cJSON_ReplaceItemInArray(v, cJSON_GetArraySize(v) - 1, cJSON_CreateString("<unk>"));
        meta_set_json(p, "imcap.vocab", v);
    });
    want(w, "imcap.vocab");
    want(w, "<unk>");
}

MALFORMED(vocab_empty_string) {
    VIA_PARTS({
        cJSON *v = meta_json(p, "imcap.vocab");
        cJSON_ReplaceItemInArray(v, cJSON_GetArraySize(v) - 1, cJSON_CreateString(""));
        meta_set_json(p, "imcap.vocab", v);
    });
    want(w, "imcap.vocab");
    want(w, "empty|\"\"");
}

MALFORMED(vocab_not_strings) {
    VIA_PARTS({
        cJSON *v = meta_json(p, "imcap.vocab");
        cJSON_ReplaceItemInArray(v, 6, cJSON_CreateNumber(6));
        meta_set_json(p, "imcap.vocab", v);
    });
    want(w, "imcap.vocab");
}

MALFORMED(vocab_not_an_array) {
    VIA_PARTS(meta_set(p, "imcap.vocab", "{\"0\": \"<pad>\"}"));
    want(w, "imcap.vocab");
}

/* One word more than the tensors were made for: a tensor whose rows are V
 * is named. */
MALFORMED(vocab_longer_than_tensors) {
    VIA_PARTS({
        cJSON *v = meta_json(p, "imcap.vocab");
        cJSON_AddItemToArray(v, cJSON_CreateString("green"));
        meta_set_json(p, "imcap.vocab", v);
    });
    want(w, "decoder.embedding.weight|decoder.fc.weight|decoder.fc.bias");
}

/* Models load from many threads at once (cJSON's parse-error global is the
 * only shared state; the library serialises its parses): eight threads, each
 * loading the shipped model and a malformed one, get the same weights and
 * the same message. */
typedef struct {
    imcap_model *m;
    imcap_status bad;
    char msg[1024];
} load_job;

static void *load_both(void *arg) {
    load_job *j = arg;
    imcap_error e;
    if (imcap_model_load(tu_src("models/default.safetensors"), &j->m, &e) != IMCAP_OK) j->m = NULL;
    /* a header that is not JSON: the parser's error position is the message */
    static const char json[] = "{\"__metadata__\": {\"imcap.format\": \"1\"}, \"x\": [1, 2,,]}";
    char bad[8 + sizeof json];
    uint64_t n = sizeof json - 1;
    memcpy(bad, &n, 8);
    memcpy(bad + 8, json, sizeof json - 1);
    imcap_model *b = NULL;
    j->bad = imcap_model_load_memory(bad, 8 + (size_t)n, "bad.safetensors", &b, &e);
    snprintf(j->msg, sizeof j->msg, "%s", e.msg);
    imcap_model_free(b);
    return NULL;
}

Test(model, loads_from_eight_threads_at_once) {
    pthread_t th[8];
    load_job jobs[8];
    memset(jobs, 0, sizeof jobs);
    for (int i = 0; i < 8; i++) cr_assert_eq(pthread_create(&th[i], NULL, load_both, &jobs[i]), 0);
    for (int i = 0; i < 8; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 8; i++) {
        cr_assert_not_null(jobs[i].m, "thread %d could not load the shipped model", i);
        cr_expect_eq(jobs[i].m->tab.total, jobs[0].m->tab.total);
        cr_expect(!memcmp(jobs[i].m->block, jobs[0].m->block, jobs[0].m->tab.total * sizeof(float)), "thread %d", i);
        cr_expect_eq(jobs[i].bad, IMCAP_E_FORMAT, "thread %d accepted the malformed header", i);
        cr_expect_str_eq(jobs[i].msg, jobs[0].msg);
        cr_expect(strstr(jobs[i].msg, "bad.safetensors"), "%s", jobs[i].msg);
    }
    for (int i = 0; i < 8; i++) imcap_model_free(jobs[i].m);
}

/* The trace entry point checks its options as every other one does. */
Test(model, trace_validates_its_options) {
    imcap_model *m;
    imcap_error e;
    cr_assert_eq(imcap_model_load(tu_src("models/default.safetensors"), &m, &e), IMCAP_OK, "%s", e.msg);
    imcap_image img;
    cr_assert_eq(imcap_image_load(tu_src("samples/scene_00.png"), &img, &e), IMCAP_OK, "%s", e.msg);
    const char *dir = tu_tmpdir("trace_opts");
    char path[4200];
    snprintf(path, sizeof path, "%s/t.json", dir);
    imcap_result *r = NULL;
    cr_expect_eq(imcap_caption_trace(m, &img, NULL, path, &r, &e), IMCAP_E_ARG);
    cr_expect(strstr(e.msg, "options"), "%s", e.msg);
    imcap_options opt;
    imcap_options_default(&opt);
    opt.beam = 5000;
    cr_expect_eq(imcap_caption_trace(m, &img, &opt, path, &r, &e), IMCAP_E_ARG);
    cr_expect(strstr(e.msg, "5000"), "%s", e.msg);
    cr_expect_null(r);
    cr_expect_neq(access(path, F_OK), 0, "a refused trace wrote its file");
    imcap_image_free(&img);
    imcap_model_free(m);
}

/* A non-finite weight makes non-finite scores; JSON has no NaN, so every
 * JSON output writes them as null (and stays JSON): caption --json and
 * batch's jsonl records. */
Test(model, non_finite_scores_are_json_null) {
    imcap_model *m;
    imcap_error e;
    cr_assert_eq(imcap_model_load(tu_src("models/default.safetensors"), &m, &e), IMCAP_OK, "%s", e.msg);
    for (int v = 0; v < m->vocab.n; v++) m->p.fc_b[v] = NAN;
    imcap_model_sync(m);
    const char *dir = tu_tmpdir("nan_model");
    char path[4200], cmd[9000], out_path[4200];
    snprintf(path, sizeof path, "%s/nan.safetensors", dir);
    cr_assert_eq(imcap_model_save(m, path, &e), IMCAP_OK, "%s", e.msg);
    imcap_model_free(m);
    snprintf(cmd, sizeof cmd, "'%s' caption --json -m '%s' --beam 1 '%s'", tu_exe(), path, tu_src("samples/scene_00.png"));
    char *out = NULL, *err = NULL;
    tu_run(cmd, &out, &err);
    cJSON *j = cJSON_Parse(out ? out : "");
    cr_assert_not_null(j, "caption --json with NaN scores is not JSON: %s", out);
    const cJSON *sc = cJSON_GetObjectItem(j, "score");
    cr_expect(sc && cJSON_IsNull(sc), "score: %s", out);
    cJSON_Delete(j);
    free(out), free(err);
    snprintf(out_path, sizeof out_path, "%s/r.jsonl", dir);
    snprintf(cmd, sizeof cmd, "'%s' batch -q -m '%s' --beam 1 -o '%s' '%s'", tu_exe(), path, out_path,
             tu_src("samples/scene_00.png"));
    tu_run(cmd, NULL, NULL);
    size_t n;
    char *rec = tu_read(out_path, &n);
    cr_assert_not_null(rec);
    j = cJSON_Parse(rec);
    cr_expect(j && cJSON_IsNull(cJSON_GetObjectItem(j, "score")), "batch record: %s", rec);
    cJSON_Delete(j);
    free(rec);
}

/* The header must be UTF-8 JSON: a vocabulary word with a stray byte is
 * refused by name (it used to load). */
Test(model, header_that_is_not_utf8_is_refused) {
    imcap_model *m;
    imcap_error e;
    cr_assert_eq(imcap_model_load(tu_src("models/default.safetensors"), &m, &e), IMCAP_OK, "%s", e.msg);
    unsigned char *data;
    size_t size;
    cr_assert_eq(imcap_model_serialize(m, &data, &size, &e), IMCAP_OK, "%s", e.msg);
    imcap_model_free(m);
    /* "square" in the vocabulary (inside the metadata string, its quotes
     * escaped) becomes "squ\xffre" */
    unsigned char *w = memmem(data, size, "\\\"square\\\"", 10);
    cr_assert_not_null(w, "no \"square\" in the header");
    w[5] = 0xff;
    imcap_model *bad = NULL;
    cr_expect_eq(imcap_model_load_memory(data, size, "stray.safetensors", &bad, &e), IMCAP_E_FORMAT);
    cr_expect(strstr(e.msg, "stray.safetensors") && strstr(e.msg, "not UTF-8"), "%s", e.msg);
    cr_expect_null(bad);
    free(data);
}

/* A small config that would need many GiB per image is refused at parse:
 * a layer's output, or a conv's im2col matrix, above 2^28 floats. */
Test(config, memory_per_image_is_bounded) {
    imcap_config cfg;
    imcap_error err;
    const char *big_out = "{\"image_size\": 1024, \"mean\": [0,0,0], \"std\": [1,1,1], \"encoder\": ["
                          "{\"type\": \"conv\", \"out\": 4096, \"kernel\": 1, \"stride\": 1, \"pad\": 0}],"
                          " \"embed_dim\": 8, \"hidden_dim\": 8, \"attention_dim\": 8, \"max_length\": 4}";
    cr_expect_eq(imcap_config_parse(big_out, "big.json", &cfg, &err), IMCAP_E_FORMAT);
    cr_expect(strstr(err.msg, "big.json") && strstr(err.msg, "encoder[0]") && strstr(err.msg, "limit"), "%s", err.msg);
    const char *big_col = "{\"image_size\": 1024, \"mean\": [0,0,0], \"std\": [1,1,1], \"encoder\": ["
                          "{\"type\": \"conv\", \"out\": 64, \"kernel\": 3, \"stride\": 1, \"pad\": 1},"
                          "{\"type\": \"conv\", \"out\": 8, \"kernel\": 11, \"stride\": 1, \"pad\": 5}],"
                          " \"embed_dim\": 8, \"hidden_dim\": 8, \"attention_dim\": 8, \"max_length\": 4}";
    cr_expect_eq(imcap_config_parse(big_col, "col.json", &cfg, &err), IMCAP_E_FORMAT);
    cr_expect(strstr(err.msg, "encoder[1]") && strstr(err.msg, "im2col"), "%s", err.msg);
    /* the largest real backbone at 224 px is far inside */
    const char *ok = "{\"image_size\": 224, \"mean\": [0,0,0], \"std\": [1,1,1], \"encoder\": ["
                     "{\"type\": \"conv\", \"out\": 64, \"kernel\": 7, \"stride\": 2, \"pad\": 3}],"
                     " \"embed_dim\": 8, \"hidden_dim\": 8, \"attention_dim\": 8, \"max_length\": 4}";
    cr_expect_eq(imcap_config_parse(ok, "ok.json", &cfg, &err), IMCAP_OK, "%s", err.msg);
}

/* ---- a new decoder over a trained encoder (imcap init --encoder-from) */

static void bigger_decoder(cJSON *c, const void *a) {
    (void)a;
    cJSON_ReplaceItemInObjectCaseSensitive(c, "hidden_dim", cJSON_CreateNumber(12));
}
static void other_mean(cJSON *c, const void *a) {
    (void)a;
    cJSON *m = cJSON_GetObjectItemCaseSensitive(c, "mean");
    cJSON_ReplaceItemInArray(m, 0, cJSON_CreateNumber(0.25));
}

Test(model, copy_encoder_takes_the_encoder_and_nothing_else) {
    char *c = tiny_config(), *v = tiny_vocab_json(), *c2 = tiny_edited(bigger_decoder, NULL);
    imcap_model *src = make_model(c, v, 1), *dst = make_model(c2, v, 2), *before = make_model(c2, v, 2);
    imcap_error err = {0};
    cr_assert_eq(imcap_model_copy_encoder(dst, src, "src.safetensors", &err), IMCAP_OK, "%s", err.msg);
    int encoders = 0;
    for (int i = 0; i < dst->tab.n; i++) {
        const imcap_tensor_info *t = &dst->tab.t[i];
        const float *got = dst->block + t->offset;
        if (!strncmp(t->name, "encoder.", 8)) {
            int k = imcap_param_table_find(&src->tab, t->name);
            cr_assert(k >= 0);
            cr_expect(memcmp(got, src->block + src->tab.t[k].offset, t->count * sizeof(float)) == 0, "%s", t->name);
            encoders++;
        } else {
            cr_expect(memcmp(got, before->block + t->offset, t->count * sizeof(float)) == 0, "%s changed", t->name);
        }
    }
    cr_expect(encoders > 0);
    /* an encoder that computes something else is refused, naming the source */
    char *c3 = tiny_edited(other_mean, NULL);
    imcap_model *other = make_model(c3, v, 3);
    cr_expect_eq(imcap_model_copy_encoder(other, src, "src.safetensors", &err), IMCAP_E_ARG);
    cr_expect(strstr(err.msg, "src.safetensors") && strstr(err.msg, "encoder"), "%s", err.msg);
    imcap_model_free(src), imcap_model_free(dst), imcap_model_free(before), imcap_model_free(other);
    free(c), cJSON_free(v), cJSON_free(c2), cJSON_free(c3);
}
