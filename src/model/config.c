/* config.c — the model config: strict parsing (unknown keys refused by name)
 * and the shapes every encoder layer implies. */
#include <cjson/cJSON.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "json_check.h"
#include "model.h"
#include "util/util.h"
#include "util/json.h"

#define MAX_DIM 65536
#define MAX_IMAGE 4096
/* floats of one layer's output (or a conv's im2col matrix) for one image */
#define MAX_ACTIVATION (1LL << 28)

static const char *top_keys[] = {"image_size", "mean", "std", "encoder", "embed_dim", "hidden_dim",
                                 "attention_dim", "max_length", "output", "domain", NULL};

static int in_list(const char *s, const char *const *list) {
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
        /* judged as the float the model computes with: 1e40 is a JSON number but an infinite
         * float, and a std below FLT_MIN divides to infinity */
        float f = cJSON_IsNumber(v) ? (float)v->valuedouble : NAN;
        if (!isfinite(f) || (positive && !(f >= FLT_MIN)))
            return imcap_fail(err, IMCAP_E_FORMAT, "%s: field \"%s\"[%d] must be a %snumber within float range", where,
                              key, c, positive ? "positive " : "");
        out[c] = f;
    }
    return IMCAP_OK;
}

static const struct {
    const char *name;
    imcap_layer_type type;
    const char *keys[7]; /* NULL-terminated */
} layer_kinds[] = {
    {"conv", IMCAP_LAYER_CONV, {"type", "out", "kernel", "stride", "pad", "bias"}},
    {"relu", IMCAP_LAYER_RELU, {"type"}},
    {"maxpool", IMCAP_LAYER_MAXPOOL, {"type", "kernel", "stride", "pad"}},
    {"coords", IMCAP_LAYER_COORDS, {"type"}},
    {"batchnorm", IMCAP_LAYER_BATCHNORM, {"type", "eps"}},
    {"basic", IMCAP_LAYER_BASIC, {"type", "planes", "stride", "downsample"}},
    {"bottleneck", IMCAP_LAYER_BOTTLENECK, {"type", "planes", "stride", "downsample"}},
    {"adaptive_avgpool", IMCAP_LAYER_AVGPOOL, {"type", "out"}},
};
enum { N_KINDS = sizeof layer_kinds / sizeof layer_kinds[0] };

const char *imcap_layer_type_name(imcap_layer_type t) {
    for (int k = 0; k < N_KINDS; k++)
        if (layer_kinds[k].type == t) return layer_kinds[k].name;
    return "?";
}


static imcap_status get_bool(const cJSON *obj, const char *key, int *out, const char *where, const char *ctx,
                             imcap_error *err) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it) return imcap_fail(err, IMCAP_E_FORMAT, "%s: %smissing field \"%s\"", where, ctx, key);
    if (!cJSON_IsBool(it)) return imcap_fail(err, IMCAP_E_FORMAT, "%s: %sfield \"%s\" must be true or false", where, ctx, key);
    *out = cJSON_IsTrue(it);
    return IMCAP_OK;
}

/* *v2 is set when the layer uses anything format 1 does not have. */
static imcap_status parse_layer(const cJSON *lj, int idx, imcap_layer *l, int *v2, const char *where, imcap_error *err) {
    char ctx[64];
    snprintf(ctx, sizeof ctx, "encoder[%d]: ", idx);
    if (!cJSON_IsObject(lj)) return imcap_fail(err, IMCAP_E_FORMAT, "%s: %smust be an object", where, ctx);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(lj, "type");
    if (!cJSON_IsString(t)) return imcap_fail(err, IMCAP_E_FORMAT, "%s: %smissing string field \"type\"", where, ctx);
    memset(l, 0, sizeof *l);
    int kind = -1;
    for (int k = 0; k < N_KINDS; k++)
        if (strcmp(t->valuestring, layer_kinds[k].name) == 0) kind = k;
    if (kind < 0)
        return imcap_fail(err, IMCAP_E_FORMAT,
                          "%s: %sunknown layer type \"%s\" (known: conv, relu, maxpool, coords, batchnorm, basic, "
                          "bottleneck, adaptive_avgpool)",
                          where, ctx, t->valuestring);
    l->type = layer_kinds[kind].type;
    for (const cJSON *c = lj->child; c; c = c->next)
        if (!in_list(c->string, layer_kinds[kind].keys))
            return imcap_fail(err, IMCAP_E_FORMAT, "%s: %sunknown field \"%s\" for layer type \"%s\"", where, ctx,
                              c->string, t->valuestring);
    if (l->type >= IMCAP_LAYER_BATCHNORM) *v2 = 1;
    imcap_status s = IMCAP_OK;
    switch (l->type) {
    case IMCAP_LAYER_CONV:
        if ((s = get_int(lj, "out", 1, MAX_DIM, &l->out, where, ctx, err))) return s;
        if ((s = get_int(lj, "kernel", 1, 64, &l->kernel, where, ctx, err))) return s;
        if ((s = get_int(lj, "stride", 1, 64, &l->stride, where, ctx, err))) return s;
        if ((s = get_int(lj, "pad", 0, 64, &l->pad, where, ctx, err))) return s;
        l->bias = 1;
        if (cJSON_GetObjectItemCaseSensitive(lj, "bias")) {
            *v2 = 1;
            if ((s = get_bool(lj, "bias", &l->bias, where, ctx, err))) return s;
        }
        break;
    case IMCAP_LAYER_MAXPOOL:
        if ((s = get_int(lj, "kernel", 1, 64, &l->kernel, where, ctx, err))) return s;
        if ((s = get_int(lj, "stride", 1, 64, &l->stride, where, ctx, err))) return s;
        if (cJSON_GetObjectItemCaseSensitive(lj, "pad")) {
            *v2 = 1;
            /* torch.nn.MaxPool2d: "pad should be at most half of kernel size" */
            if ((s = get_int(lj, "pad", 0, l->kernel / 2, &l->pad, where, ctx, err))) return s;
        }
        break;
    case IMCAP_LAYER_BATCHNORM: {
        l->eps = 1e-5f; /* torch.nn.BatchNorm2d's default, which torchvision uses */
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(lj, "eps");
        if (e) {
            /* a float, as the model uses it: 1e-50 would round to 0 */
            float f = cJSON_IsNumber(e) ? (float)e->valuedouble : NAN;
            if (!(f >= FLT_MIN) || !(f < 1))
                return imcap_fail(err, IMCAP_E_FORMAT, "%s: %sfield \"eps\" must be a number in [%g, 1)", where,
                                  ctx, FLT_MIN);
            l->eps = f;
        }
        break;
    }
    case IMCAP_LAYER_BASIC:
    case IMCAP_LAYER_BOTTLENECK:
        if ((s = get_int(lj, "planes", 1, MAX_DIM / 4, &l->planes, where, ctx, err))) return s;
        if ((s = get_int(lj, "stride", 1, 64, &l->stride, where, ctx, err))) return s;
        if ((s = get_bool(lj, "downsample", &l->downsample, where, ctx, err))) return s;
        break;
    case IMCAP_LAYER_AVGPOOL:
        if ((s = get_int(lj, "out", 1, MAX_IMAGE, &l->out, where, ctx, err))) return s;
        break;
    case IMCAP_LAYER_RELU:
    case IMCAP_LAYER_COORDS: break;
    }
    return IMCAP_OK;
}

int imcap_config_set_domain(imcap_config *cfg, int layer) {
    if (layer < 0 || layer >= cfg->n_layers || cfg->layers[layer].out_c > IMCAP_DOMAIN_MAX_C) return -1;
    cfg->has_domain = 1, cfg->domain_layer = layer;
    cfg->domain_F = imcap_domain_size(cfg->layers[layer].out_c);
    cfg->format = 2;
    return 0;
}

/* The in-domain check (format 2): which layer's output it describes, its
 * threshold, and where they came from. */
static imcap_status parse_domain(const cJSON *dj, imcap_config *cfg, const char *where, imcap_error *err) {
    static const char *keys[] = {"layer", "threshold", "quantile", "train_images", "val_images", "val_flagged", NULL};
    if (!cJSON_IsObject(dj)) return imcap_fail(err, IMCAP_E_FORMAT, "%s: field \"domain\" must be an object", where);
    for (const cJSON *c = dj->child; c; c = c->next)
        if (!in_list(c->string, keys))
            return imcap_fail(err, IMCAP_E_FORMAT, "%s: unknown field \"%s\" in \"domain\"", where, c->string);
    imcap_status s;
    int layer;
    if ((s = get_int(dj, "layer", 0, cfg->n_layers - 1, &layer, where, "domain: ", err))) return s;
    if (imcap_config_set_domain(cfg, layer))
        return imcap_fail(err, IMCAP_E_FORMAT, "%s: domain: layer %d has %d channels (at most %d)", where, layer,
                          cfg->layers[layer].out_c, IMCAP_DOMAIN_MAX_C);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(dj, "threshold");
    if (!cJSON_IsNumber(t) || !(t->valuedouble > 0) || !(t->valuedouble < 1e300))
        return imcap_fail(err, IMCAP_E_FORMAT, "%s: domain: \"threshold\" must be a positive number", where);
    cfg->domain_threshold = t->valuedouble;
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(dj, "quantile");
    if (q && (!cJSON_IsNumber(q) || !(q->valuedouble > 0 && q->valuedouble < 1)))
        return imcap_fail(err, IMCAP_E_FORMAT, "%s: domain: \"quantile\" must be a number in (0, 1)", where);
    cfg->domain_quantile = q ? q->valuedouble : 0;
    int *counts[3] = {&cfg->domain_train_images, &cfg->domain_val_images, &cfg->domain_val_flagged};
    for (int k = 0; k < 3; k++)
        if (cJSON_GetObjectItemCaseSensitive(dj, keys[3 + k]) &&
            (s = get_int(dj, keys[3 + k], 0, 2000000000, counts[k], where, "domain: ", err)))
            return s;
    return IMCAP_OK;
}

/* A conv's output size, or an error when its kernel does not fit. */
static imcap_status conv_shape(imcap_conv_shape *c, int in_c, int in_h, int in_w, int out, int k, int s, int pad,
                               const char *where, int idx, const char *what, imcap_error *err) {
    *c = (imcap_conv_shape){in_c, in_h, in_w, out, k, s, pad, 0, 0};
    if (in_h + 2 * pad < k || in_w + 2 * pad < k)
        return imcap_fail(err, IMCAP_E_FORMAT, "%s: encoder[%d]: %s kernel %d larger than its padded input %dx%d", where,
                          idx, what, k, in_h + 2 * pad, in_w + 2 * pad);
    c->out_h = (in_h + 2 * pad - k) / s + 1;
    c->out_w = (in_w + 2 * pad - k) / s + 1;
    return IMCAP_OK;
}

/* torchvision's blocks: BasicBlock is 3x3 (stride) -> 3x3; Bottleneck is
 * 1x1 -> 3x3 (stride) -> 1x1 with 4x the planes; the downsample is a 1x1 conv
 * with the block's stride. */
static imcap_status block_shapes(imcap_layer *l, int idx, const char *where, imcap_error *err) {
    int P = l->planes, bottleneck = l->type == IMCAP_LAYER_BOTTLENECK, out = bottleneck ? 4 * P : P;
    imcap_status s;
    imcap_conv_shape *c = l->conv;
    if (bottleneck) {
        l->n_convs = 3;
        if ((s = conv_shape(&c[0], l->in_c, l->in_h, l->in_w, P, 1, 1, 0, where, idx, "conv1", err))) return s;
        if ((s = conv_shape(&c[1], P, c[0].out_h, c[0].out_w, P, 3, l->stride, 1, where, idx, "conv2", err))) return s;
        if ((s = conv_shape(&c[2], P, c[1].out_h, c[1].out_w, out, 1, 1, 0, where, idx, "conv3", err))) return s;
    } else {
        l->n_convs = 2;
        if ((s = conv_shape(&c[0], l->in_c, l->in_h, l->in_w, P, 3, l->stride, 1, where, idx, "conv1", err))) return s;
        if ((s = conv_shape(&c[1], P, c[0].out_h, c[0].out_w, P, 3, 1, 1, where, idx, "conv2", err))) return s;
    }
    const imcap_conv_shape *last = &c[l->n_convs - 1];
    if (l->downsample) {
        if ((s = conv_shape(&c[IMCAP_BLOCK_DOWNSAMPLE], l->in_c, l->in_h, l->in_w, out, 1, l->stride, 0, where, idx,
                            "downsample", err)))
            return s;
    } else if (l->stride != 1 || l->in_c != out) {
        return imcap_fail(err, IMCAP_E_FORMAT,
                          "%s: encoder[%d]: a %s block with stride %d from %d to %d channels needs \"downsample\": true",
                          where, idx, imcap_layer_type_name(l->type), l->stride, l->in_c, out);
    }
    l->out_c = out, l->out_h = last->out_h, l->out_w = last->out_w;
    return IMCAP_OK;
}

/* Derives each layer's input and output shapes from the image size. */
static imcap_status derive_shapes(imcap_config *cfg, const char *where, imcap_error *err) {
    int c = 3, h = cfg->image_size, w = cfg->image_size;
    for (int i = 0; i < cfg->n_layers; i++) {
        imcap_layer *l = &cfg->layers[i];
        l->in_c = c, l->in_h = h, l->in_w = w;
        imcap_status s;
        switch (l->type) {
        case IMCAP_LAYER_CONV: {
            imcap_conv_shape cs;
            if ((s = conv_shape(&cs, c, h, w, l->out, l->kernel, l->stride, l->pad, where, i, "conv", err))) return s;
            h = cs.out_h, w = cs.out_w, c = l->out;
            break;
        }
        case IMCAP_LAYER_MAXPOOL:
            if (h + 2 * l->pad < l->kernel || w + 2 * l->pad < l->kernel)
                return imcap_fail(err, IMCAP_E_FORMAT, "%s: encoder[%d]: maxpool kernel %d larger than its input %dx%d",
                                  where, i, l->kernel, h + 2 * l->pad, w + 2 * l->pad);
            h = (h + 2 * l->pad - l->kernel) / l->stride + 1;
            w = (w + 2 * l->pad - l->kernel) / l->stride + 1;
            break;
        case IMCAP_LAYER_COORDS:
            c += 2;
            if (c > MAX_DIM) return imcap_fail(err, IMCAP_E_FORMAT, "%s: encoder[%d]: too many channels", where, i);
            break;
        case IMCAP_LAYER_BASIC:
        case IMCAP_LAYER_BOTTLENECK:
            if ((s = block_shapes(l, i, where, err))) return s;
            c = l->out_c, h = l->out_h, w = l->out_w;
            break;
        case IMCAP_LAYER_AVGPOOL: h = w = l->out; break;
        case IMCAP_LAYER_RELU:
        case IMCAP_LAYER_BATCHNORM: break;
        }
        l->out_c = c, l->out_h = h, l->out_w = w;
        /* what one image needs at this layer (its output, and a conv's
         * im2col matrix), bounded before anything is allocated: a small
         * file must not ask for many GiB */
        long long act = (long long)c * h * w;
        long long col = l->type == IMCAP_LAYER_CONV ? (long long)l->in_c * l->kernel * l->kernel * h * w : 0;
        if (act > MAX_ACTIVATION || col > MAX_ACTIVATION)
            return imcap_fail(err, IMCAP_E_FORMAT,
                              "%s: encoder[%d]: %lld floats per image (%dx%dx%d%s), more than the limit %lld (1 GiB)",
                              where, i, act > col ? act : col, c, h, w, col > act ? ", its im2col matrix" : "",
                              (long long)MAX_ACTIVATION);
    }
    cfg->D = c, cfg->H = h, cfg->W = w, cfg->L = h * w;
    return IMCAP_OK;
}

int imcap_config_untrainable_layer(const imcap_config *cfg) {
    for (int i = 0; i < cfg->n_layers; i++) {
        const imcap_layer *l = &cfg->layers[i];
        if (l->type >= IMCAP_LAYER_BATCHNORM || (l->type == IMCAP_LAYER_MAXPOOL && l->pad)) return i;
    }
    return -1;
}

imcap_status imcap_config_parse(const char *json, const char *where, imcap_config *cfg, imcap_error *err) {
    memset(cfg, 0, sizeof *cfg);
    cJSON *root = imcap_json_parse_string(json);
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
    int i = 0, v2 = 0;
    for (const cJSON *lj = enc->child; lj; lj = lj->next, i++)
        if ((s = parse_layer(lj, i, &cfg->layers[i], &v2, where, err))) goto done;
    const cJSON *out = cJSON_GetObjectItemCaseSensitive(root, "output");
    if (out) {
        if (cJSON_IsString(out) && !strcmp(out->valuestring, "deep")) cfg->deep_output = 1, v2 = 1;
        else if (!cJSON_IsString(out) || strcmp(out->valuestring, "linear")) {
            s = imcap_fail(err, IMCAP_E_FORMAT, "%s: field \"output\" must be \"linear\" or \"deep\"", where);
            goto done;
        }
    }
    cfg->format = v2 ? 2 : 1;
    if ((s = derive_shapes(cfg, where, err))) goto done;
    const cJSON *dom = cJSON_GetObjectItemCaseSensitive(root, "domain");
    if (dom) s = parse_domain(dom, cfg, where, err);
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
            imcap_buf_printf(&b, "{\"type\": \"conv\", \"out\": %d, \"kernel\": %d, \"stride\": %d, \"pad\": %d%s}", l->out,
                             l->kernel, l->stride, l->pad, l->bias ? "" : ", \"bias\": false");
            break;
        case IMCAP_LAYER_MAXPOOL:
            imcap_buf_printf(&b, "{\"type\": \"maxpool\", \"kernel\": %d, \"stride\": %d", l->kernel, l->stride);
            if (l->pad) imcap_buf_printf(&b, ", \"pad\": %d", l->pad);
            imcap_buf_printf(&b, "}");
            break;
        case IMCAP_LAYER_BATCHNORM:
            imcap_buf_printf(&b, "{\"type\": \"batchnorm\", \"eps\": ");
            short_float(&b, l->eps);
            imcap_buf_printf(&b, "}");
            break;
        case IMCAP_LAYER_BASIC:
        case IMCAP_LAYER_BOTTLENECK:
            imcap_buf_printf(&b, "{\"type\": \"%s\", \"planes\": %d, \"stride\": %d, \"downsample\": %s}",
                             imcap_layer_type_name(l->type), l->planes, l->stride, l->downsample ? "true" : "false");
            break;
        case IMCAP_LAYER_AVGPOOL: imcap_buf_printf(&b, "{\"type\": \"adaptive_avgpool\", \"out\": %d}", l->out); break;
        case IMCAP_LAYER_RELU:
        case IMCAP_LAYER_COORDS: imcap_buf_printf(&b, "{\"type\": \"%s\"}", imcap_layer_type_name(l->type)); break;
        }
    }
    imcap_buf_printf(&b, "], \"embed_dim\": %d, \"hidden_dim\": %d, \"attention_dim\": %d, \"max_length\": %d",
                     cfg->embed_dim, cfg->hidden_dim, cfg->attention_dim, cfg->max_length);
    if (cfg->deep_output) imcap_buf_printf(&b, ", \"output\": \"deep\"");
    if (cfg->has_domain)
        imcap_buf_printf(&b,
                         ", \"domain\": {\"layer\": %d, \"threshold\": %.17g, \"quantile\": %.17g, \"train_images\": %d, "
                         "\"val_images\": %d, \"val_flagged\": %d}",
                         cfg->domain_layer, cfg->domain_threshold, cfg->domain_quantile, cfg->domain_train_images,
                         cfg->domain_val_images, cfg->domain_val_flagged);
    imcap_buf_printf(&b, "}");
    if (b.oom) imcap_buf_free(&b);
    return b.s;
}

char *imcap_config_encoder_json(const imcap_config *cfg) {
    imcap_config c = *cfg;
    c.embed_dim = c.hidden_dim = c.attention_dim = c.max_length = c.deep_output = 0;
    c.has_domain = 0; /* calibrating a model does not change what its encoder computes */
    return imcap_config_to_json(&c);
}
