/* checkpoint.c — training state in one atomically written file:
 *   "IMCAPCK1", u64 JSON length, JSON (step, best score, options), padding to
 *   8, u64 model bytes, the model file (safetensors), Adam m, Adam v. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "train.h"
#include "util/json.h"

imcap_status imcap_train_state_init(imcap_train_state *st, const imcap_model *m) {
    memset(st, 0, sizeof *st);
    st->m = imcap_aligned_alloc(m->tab.total * sizeof(float));
    st->v = imcap_aligned_alloc(m->tab.total * sizeof(float));
    st->best_score = 0, st->have_best = 0;
    if (!st->m || !st->v) {
        imcap_train_state_free(st);
        return IMCAP_E_NOMEM;
    }
    return IMCAP_OK;
}

void imcap_train_state_free(imcap_train_state *st) {
    free(st->m), free(st->v);
    st->m = st->v = NULL;
}

static cJSON *options_json(const imcap_train_options *o) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "epochs", o->epochs);
    cJSON_AddNumberToObject(j, "max_steps", (double)o->max_steps);
    cJSON_AddNumberToObject(j, "batch", o->batch);
    cJSON_AddNumberToObject(j, "threads", o->threads);
    cJSON_AddNumberToObject(j, "shards", o->shards);
    cJSON_AddNumberToObject(j, "lr", o->adam.lr);
    cJSON_AddNumberToObject(j, "beta1", o->adam.beta1);
    cJSON_AddNumberToObject(j, "beta2", o->adam.beta2);
    cJSON_AddNumberToObject(j, "eps", o->adam.eps);
    cJSON_AddNumberToObject(j, "weight_decay", o->adam.weight_decay);
    cJSON_AddNumberToObject(j, "clip", o->adam.clip);
    cJSON_AddNumberToObject(j, "warmup", (double)o->adam.warmup);
    cJSON_AddNumberToObject(j, "min_lr_frac", o->adam.min_lr_frac);
    cJSON_AddNumberToObject(j, "att_reg", o->att_reg);
    cJSON_AddNumberToObject(j, "att_sup", o->att_sup);
    cJSON_AddNumberToObject(j, "att_sup_rel", o->att_sup_rel);
    cJSON_AddNumberToObject(j, "att_sup_desc", o->att_sup_desc);
    cJSON_AddNumberToObject(j, "rel_weight", o->rel_weight);
    cJSON_AddNumberToObject(j, "dropout", o->dropout);
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)o->seed);
    cJSON_AddStringToObject(j, "seed", seed);
    cJSON_AddNumberToObject(j, "val_every", (double)o->val_every);
    cJSON_AddNumberToObject(j, "val_images", o->val_images);
    cJSON_AddNumberToObject(j, "ckpt_every", (double)o->ckpt_every);
    cJSON_AddBoolToObject(j, "freeze_encoder", o->freeze_encoder);
    cJSON_AddStringToObject(j, "select", imcap_select_name(o->select));
    return j;
}

static double num(const cJSON *o, const char *k, double dflt) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(it) ? it->valuedouble : dflt;
}

/* An integer field of the header: the value (dflt when absent), or *bad set
 * to k when it does not fit the type it is read into, where converting it
 * would be undefined behaviour (found by fuzz_train: "step": 7e31). */
static double whole(const cJSON *o, const char *k, double dflt, int is_long, const char **bad) {
    double v = num(o, k, dflt);
    double lim = is_long ? 0x1p63 : 0x1p31; /* long is 64-bit on every platform imcap builds on */
    if (v >= -lim && v < lim) return v;
    if (!*bad) *bad = k;
    return 0;
}

/* NULL, or the name of the first field out of range. */
static const char *options_from_json(const cJSON *j, imcap_train_options *o) {
    const char *bad = NULL;
    o->epochs = (int)whole(j, "epochs", o->epochs, 0, &bad);
    o->freeze_encoder = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "freeze_encoder"));
    o->max_steps = (long)whole(j, "max_steps", (double)o->max_steps, 1, &bad);
    o->batch = (int)whole(j, "batch", o->batch, 0, &bad);
    o->threads = (int)whole(j, "threads", o->threads, 0, &bad);
    /* before shards existed, each thread summed one shard */
    o->shards = (int)whole(j, "shards", o->threads, 0, &bad);
    o->adam.lr = (float)num(j, "lr", o->adam.lr);
    o->adam.beta1 = (float)num(j, "beta1", o->adam.beta1);
    o->adam.beta2 = (float)num(j, "beta2", o->adam.beta2);
    o->adam.eps = (float)num(j, "eps", o->adam.eps);
    o->adam.weight_decay = (float)num(j, "weight_decay", o->adam.weight_decay);
    o->adam.clip = (float)num(j, "clip", o->adam.clip);
    o->adam.warmup = (long)whole(j, "warmup", (double)o->adam.warmup, 1, &bad);
    o->adam.min_lr_frac = (float)num(j, "min_lr_frac", o->adam.min_lr_frac);
    o->att_reg = (float)num(j, "att_reg", o->att_reg);
    o->att_sup = (float)num(j, "att_sup", 0.0); /* checkpoints before --att-sup had none */
    o->att_sup_rel = (float)num(j, "att_sup_rel", 0.0);
    o->att_sup_desc = (float)num(j, "att_sup_desc", -1.0); /* before it: --att-sup's */
    o->rel_weight = (float)num(j, "rel_weight", 1.0);
    o->dropout = (float)num(j, "dropout", o->dropout);
    const cJSON *seed = cJSON_GetObjectItemCaseSensitive(j, "seed");
    if (cJSON_IsString(seed)) o->seed = strtoull(seed->valuestring, NULL, 10);
    o->val_every = (long)whole(j, "val_every", (double)o->val_every, 1, &bad);
    o->val_images = (int)whole(j, "val_images", o->val_images, 0, &bad);
    o->ckpt_every = (long)whole(j, "ckpt_every", (double)o->ckpt_every, 1, &bad);
    const cJSON *sel = cJSON_GetObjectItemCaseSensitive(j, "select");
    int k = cJSON_IsString(sel) ? imcap_select_parse(sel->valuestring) : -1;
    /* a checkpoint from before --select keeps the rule it was made with */
    o->select = k >= 0 ? k : IMCAP_SELECT_AUTO;
    return bad;
}

imcap_status imcap_checkpoint_save(const char *path, const imcap_model *m, const imcap_train_state *st,
                                   imcap_error *err) {
    unsigned char *model;
    size_t msize;
    imcap_status s = imcap_model_serialize(m, &model, &msize, err);
    if (s) return s;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "step", (double)st->step);
    cJSON_AddNumberToObject(j, "best_score", st->best_score);
    cJSON_AddBoolToObject(j, "have_best", st->have_best);
    cJSON_AddItemToObject(j, "options", options_json(&st->opt));
    char *text = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    size_t tl = strlen(text), padded = (tl + 7) / 8 * 8;
    uint64_t tl64 = padded, ms64 = msize;
    imcap_atomic_file af;
    if ((s = imcap_atomic_open(&af, path, err))) { free(text), free(model); return s; }
    int ok = fwrite("IMCAPCK1", 1, 8, af.f) == 8 && fwrite(&tl64, 8, 1, af.f) == 1 && fwrite(text, 1, tl, af.f) == tl;
    for (size_t i = tl; ok && i < padded; i++) ok = fputc(' ', af.f) != EOF;
    ok = ok && fwrite(&ms64, 8, 1, af.f) == 1 && fwrite(model, 1, msize, af.f) == msize &&
         fwrite(st->m, sizeof(float), m->tab.total, af.f) == m->tab.total &&
         fwrite(st->v, sizeof(float), m->tab.total, af.f) == m->tab.total;
    int e = errno; /* of the write that failed; abort's remove() may change it */
    free(text), free(model);
    if (!ok) {
        imcap_atomic_abort(&af);
        return imcap_fail(err, IMCAP_E_IO, "%s: cannot write the checkpoint: %s", path, strerror(e));
    }
    return imcap_atomic_commit(&af, err);
}

imcap_status imcap_checkpoint_load(const char *path, imcap_model **out, imcap_train_state *st, imcap_error *err) {
    *out = NULL;
    unsigned char *data;
    size_t size;
    imcap_status s = imcap_read_file(path, &data, &size, err);
    if (s) return s;
    uint64_t tl = 0, ms = 0;
    cJSON *j = NULL;
    imcap_model *m = NULL;
    if (size < 16 || memcmp(data, "IMCAPCK1", 8) != 0) {
        s = imcap_fail(err, IMCAP_E_FORMAT, "%s: not an imcap checkpoint", path);
        goto done;
    }
    memcpy(&tl, data + 8, 8);
    if (tl > size - 16 || size - 16 - tl < 8) { s = imcap_fail(err, IMCAP_E_FORMAT, "%s: truncated checkpoint", path); goto done; }
    j = imcap_json_parse((const char *)data + 16, (size_t)tl, NULL, 0);
    memcpy(&ms, data + 16 + tl, 8);
    if (!j || ms > size - 24 - tl) { s = imcap_fail(err, IMCAP_E_FORMAT, "%s: damaged checkpoint header", path); goto done; }
    char where[1100];
    snprintf(where, sizeof where, "%s (model)", path);
    if ((s = imcap_model_load_memory(data + 24 + tl, (size_t)ms, where, &m, err))) goto done;
    size_t n = m->tab.total, off = 24 + tl + ms;
    if (size - off != 2 * n * sizeof(float)) {
        s = imcap_fail(err, IMCAP_E_FORMAT, "%s: Adam moments have %zu bytes, expected %zu", path, size - off, 2 * n * sizeof(float));
        goto done;
    }
    if ((s = imcap_train_state_init(st, m))) { s = imcap_fail(err, s, "out of memory"); goto done; }
    memcpy(st->m, data + off, n * sizeof(float));
    memcpy(st->v, data + off + n * sizeof(float), n * sizeof(float));
    const char *bad = NULL;
    st->step = (long)whole(j, "step", 0, 1, &bad);
    st->best_score = num(j, "best_score", -1);
    const cJSON *hb = cJSON_GetObjectItemCaseSensitive(j, "have_best");
    /* before "have_best", scores were >= 0 and -1 meant none */
    st->have_best = hb ? cJSON_IsTrue(hb) : st->best_score > -1;
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(j, "options");
    if (o && !bad) bad = options_from_json(o, &st->opt);
    if (bad) {
        imcap_train_state_free(st);
        s = imcap_fail(err, IMCAP_E_FORMAT, "%s: damaged checkpoint header: \"%s\" is out of range", path, bad);
        goto done;
    }
    *out = m;
    m = NULL;
done:
    cJSON_Delete(j);
    imcap_model_free(m);
    free(data);
    return s;
}
