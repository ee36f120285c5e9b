/* config.c — the model config: strict parsing (unknown keys refused by name)
 * and the shapes every encoder layer implies. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "json_check.h"
#include "model.h"
#include "util/util.h"

#define MAX_DIM 65536
#define MAX_IMAGE 4096

static const char *top_keys[] = {"image_size", "mean", "std", "encoder", "embed_dim",
                                 "hidden_dim", "attention_dim", "max_length", NULL};

static int in_list(const char *s, const char **list) {
    for (int i = 0; list[i]; i++)
        if (strcmp(s, list[i]) == 0) return 1;
    return 0;
}

static imcap_status get_int(const cJSON *obj, const char *key, long long lo, long long hi, int *out,
                            const char *where, const char *ctx, imcap_error *err) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it) return imcap_fail(err, IMCAP_E_FORMAT, "%s: %smissing field \"%s\"", where, ctx, key);
    long long v;
    if (imcap_json_int(it, lo, hi, &v) != 0)
        return imcap_fail(err, IMCAP_E_FORMAT, "%s: %sfield \"%s\" must be an integer in [%lld, %lld]", where, ctx,
                          key, lo, hi);
    *out = (int)v;
    return IMCAP_OK;
}

static imcap_status get_vec3(const cJSON *obj, const char *key, float out[3], int positive, const char *where,
                             imcap_error *err) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it) return imcap_fail(err, IMCAP_E_FORMAT, "%s: missing field \"%s\"", where, key);
    if (!cJSON_IsArray(it) || cJSON_GetArraySize(it) != 3)
        return imcap_fail(err, IMCAP_E_FORMAT, "%s: field \"%s\" must be an array of 3 numbers", where, key);
    for (int c = 0; c < 3; c++) {
        const cJSON *v = cJSON_GetArrayItem(it, c);
        if (!cJSON_IsNumber(v) || (positive && !(v->valuedouble > 0)))
            return imcap_fail(err, IMCAP_E_FORMAT, "%s: field \"%s\"[%d] must be a %snumber", where, key, c,
                              positive ? "positive " : "");
        out[c] = (float)v->valuedouble;
    }
    return IMCAP_OK;
}

static imcap_status parse_layer(const cJSON *lj, int idx, imcap_layer *l, const char *where, imcap_error *err) {
    char ctx[64];
    snprintf(ctx, sizeof ctx, "encoder[%d]: ", idx);
    if (!cJSON_IsObject(lj)) return imcap_fail(err, IMCAP_E_FORMAT, "%s: %smust be an object", where, ctx);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(lj, "type");
    if (!cJSON_IsString(t)) return imcap_fail(err, IMCAP_E_FORMAT, "%s: %smissing string field \"type\"", where, ctx);
    static const char *conv_keys[] = {"type", "out", "kernel", "stride", "pad", NULL};
    static const char *pool_keys[] = {"type", "kernel", "stride", NULL};
    static const char *bare_keys[] = {"type", NULL};
    const char **allowed;
    memset(l, 0, sizeof *l);
    if (strcmp(t->valuestring, "conv") == 0) l->type = IMCAP_LAYER_CONV, allowed = conv_keys;
    else if (strcmp(t->valuestring, "relu") == 0) l->type = IMCAP_LAYER_RELU, allowed = bare_keys;
    else if (strcmp(t->valuestring, "maxpool") == 0) l->type = IMCAP_LAYER_MAXPOOL, allowed = pool_keys;
    else if (strcmp(t->valuestring, "coords") == 0) l->type = IMCAP_LAYER_COORDS, allowed = bare_keys;
    else
        return imcap_fail(err, IMCAP_E_FORMAT, "%s: %sunknown layer type \"%s\" (known: conv, relu, maxpool, coords)",
                          where, ctx, t->valuestring);
    for (const cJSON *c = lj->child; c; c = c->next)
        if (!in_list(c->string, allowed))
            return imcap_fail(err, IMCAP_E_FORMAT, "%s: %sunknown field \"%s\" for layer type \"%s\"", where, ctx,
                              c->string, t->valuestring);
    imcap_status s = IMCAP_OK;
    if (l->type == IMCAP_LAYER_CONV) {
        if ((s = get_int(lj, "out", 1, MAX_DIM, &l->out, where, ctx, err))) return s;
        if ((s = get_int(lj, "kernel", 1, 64, &l->kernel, where, ctx, err))) return s;
        if ((s = get_int(lj, "stride", 1, 64, &l->stride, where, ctx, err))) return s;
        if ((s = get_int(lj, "pad", 0, 64, &l->pad, where, ctx, err))) return s;
    } else if (l->type == IMCAP_LAYER_MAXPOOL) {
        if ((s = get_int(lj, "kernel", 1, 64, &l->kernel, where, ctx, err))) return s;
        if ((s = get_int(lj, "stride", 1, 64, &l->stride, where, ctx, err))) return s;
    }
    return IMCAP_OK;
}

/* Derives each layer's input and output shapes from the image size. */
static imcap_status derive_shapes(imcap_config *cfg, const char *where, imcap_error *err) {
    int c = 3, h = cfg->image_size, w = cfg->image_size;
    for (int i = 0; i < cfg->n_layers; i++) {
        imcap_layer *l = &cfg->layers[i];
        l->in_c = c, l->in_h = h, l->in_w = w;
        switch (l->type) {
        case IMCAP_LAYER_CONV:
            h = (h + 2 * l->pad - l->kernel) / l->stride + 1;
            w = (w + 2 * l->pad - l->kernel) / l->stride + 1;
            if (l->in_h + 2 * l->pad < l->kernel)
                return imcap_fail(err, IMCAP_E_FORMAT, "%s: encoder[%d]: conv kernel %d larger than its padded input %dx%d",
                                  where, i, l->kernel, l->in_h + 2 * l->pad, l->in_w + 2 * l->pad);
            c = l->out;
            break;
        case IMCAP_LAYER_MAXPOOL:
            if (h < l->kernel)
                return imcap_fail(err, IMCAP_E_FORMAT, "%s: encoder[%d]: maxpool kernel %d larger than its input %dx%d",
                                  where, i, l->kernel, h, w);
            h = (h - l->kernel) / l->stride + 1;
            w = (w - l->kernel) / l->stride + 1;
            break;
        case IMCAP_LAYER_COORDS:
            c += 2;
            if (c > MAX_DIM) return imcap_fail(err, IMCAP_E_FORMAT, "%s: encoder[%d]: too many channels", where, i);
            break;
        case IMCAP_LAYER_RELU: break;
        }
        l->out_c = c, l->out_h = h, l->out_w = w;
    }
    cfg->D = c, cfg->H = h, cfg->W = w, cfg->L = h * w;
    return IMCAP_OK;
}

imcap_status imcap_config_parse(const char *json, const char *where, imcap_config *cfg, imcap_error *err) {
    memset(cfg, 0, sizeof *cfg);
    cJSON *root = cJSON_Parse(json);
    if (!root) return imcap_fail(err, IMCAP_E_FORMAT, "%s: config is not valid JSON", where);
    imcap_status s = IMCAP_OK;
    const char *dup = imcap_json_find_duplicate(root);
    if (dup) { s = imcap_fail(err, IMCAP_E_FORMAT, "%s: duplicate key \"%s\" in config", where, dup); goto done; }
    if (!cJSON_IsObject(root)) { s = imcap_fail(err, IMCAP_E_FORMAT, "%s: config must be a JSON object", where); goto done; }
    for (const cJSON *c = root->child; c; c = c->next)
        if (!in_list(c->string, top_keys)) {
            s = imcap_fail(err, IMCAP_E_FORMAT, "%s: unknown config field \"%s\"", where, c->string);
            goto done;
        }
    if ((s = get_int(root, "image_size", 1, MAX_IMAGE, &cfg->image_size, where, "", err))) goto done;
    if ((s = get_vec3(root, "mean", cfg->mean, 0, where, err))) goto done;
    if ((s = get_vec3(root, "std", cfg->std, 1, where, err))) goto done;
    if ((s = get_int(root, "embed_dim", 1, MAX_DIM, &cfg->embed_dim, where, "", err))) goto done;
    if ((s = get_int(root, "hidden_dim", 1, MAX_DIM, &cfg->hidden_dim, where, "", err))) goto done;
    if ((s = get_int(root, "attention_dim", 1, MAX_DIM, &cfg->attention_dim, where, "", err))) goto done;
    if ((s = get_int(root, "max_length", 1, 1024, &cfg->max_length, where, "", err))) goto done;
    const cJSON *enc = cJSON_GetObjectItemCaseSensitive(root, "encoder");
    if (!enc) { s = imcap_fail(err, IMCAP_E_FORMAT, "%s: missing field \"encoder\"", where); goto done; }
    if (!cJSON_IsArray(enc)) { s = imcap_fail(err, IMCAP_E_FORMAT, "%s: field \"encoder\" must be an array", where); goto done; }
    int n = cJSON_GetArraySize(enc);
    if (n > IMCAP_MAX_LAYERS) {
        s = imcap_fail(err, IMCAP_E_FORMAT, "%s: encoder has %d layers (at most %d)", where, n, IMCAP_MAX_LAYERS);
        goto done;
    }
    cfg->n_layers = n;
    int i = 0;
    for (const cJSON *lj = enc->child; lj; lj = lj->next, i++)
        if ((s = parse_layer(lj, i, &cfg->layers[i], where, err))) goto done;
    s = derive_shapes(cfg, where, err);
done:
    cJSON_Delete(root);
    return s;
}

/* The shortest decimal that reads back as the same float (0.485, not 0.485000014). */
static void short_float(imcap_buf *b, float v) {
    char tmp[32];
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, (double)v);
        if (strtof(tmp, NULL) == v) break;
    }
    imcap_buf_printf(b, "%s", tmp);
}

char *imcap_config_to_json(const imcap_config *cfg) {
    imcap_buf b = {0};
    imcap_buf_printf(&b, "{\"image_size\": %d, \"mean\": [", cfg->image_size);
    for (int c = 0; c < 3; c++) imcap_buf_printf(&b, "%s", c ? ", " : ""), short_float(&b, cfg->mean[c]);
    imcap_buf_printf(&b, "], \"std\": [");
    for (int c = 0; c < 3; c++) imcap_buf_printf(&b, "%s", c ? ", " : ""), short_float(&b, cfg->std[c]);
    imcap_buf_printf(&b, "], \"encoder\": [");
    for (int i = 0; i < cfg->n_layers; i++) {
        const imcap_layer *l = &cfg->layers[i];
        if (i) imcap_buf_printf(&b, ", ");
        switch (l->type) {
        case IMCAP_LAYER_CONV:
            imcap_buf_printf(&b, "{\"type\": \"conv\", \"out\": %d, \"kernel\": %d, \"stride\": %d, \"pad\": %d}", l->out,
                             l->kernel, l->stride, l->pad);
            break;
        case IMCAP_LAYER_RELU: imcap_buf_printf(&b, "{\"type\": \"relu\"}"); break;
        case IMCAP_LAYER_MAXPOOL:
            imcap_buf_printf(&b, "{\"type\": \"maxpool\", \"kernel\": %d, \"stride\": %d}", l->kernel, l->stride);
            break;
        case IMCAP_LAYER_COORDS: imcap_buf_printf(&b, "{\"type\": \"coords\"}"); break;
        }
    }
    imcap_buf_printf(&b, "], \"embed_dim\": %d, \"hidden_dim\": %d, \"attention_dim\": %d, \"max_length\": %d}",
                     cfg->embed_dim, cfg->hidden_dim, cfg->attention_dim, cfg->max_length);
    if (b.oom) imcap_buf_free(&b);
    return b.s;
}
