/* backbone.c — a model whose encoder is a pretrained torchvision / timm
 * network (ResNet 18-152, VGG 11-19 with or without batch norm) cut after a
 * chosen layer, read from its state_dict in a safetensors file.
 *
 * The network is written as a format-2 encoder: ResNet as conv (no bias),
 * batchnorm, relu, maxpool (pad 1), then one basic / bottleneck layer per
 * block; VGG's `features` as conv, [batchnorm], relu and maxpool layers with
 * the same indices. The file is checked against the WHOLE network (every
 * tensor present, none extra, shapes and dtypes right), not just the part
 * kept, so a file made for another architecture is refused by name.
 * Classifier tensors and batch norms' num_batches_tracked are ignored. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "backbone.h"
#include "st_file.h"
#include "util/util.h"
#include "util/json.h"

typedef struct {
    const char *name;
    int bottleneck;           /* resnet: block type */
    int blocks[4];            /* resnet: blocks per stage */
    const signed char *vgg;   /* vgg: channel list, -1 = max-pool, 0 ends it */
    int bn;                   /* vgg: batch norm after each conv */
} arch;

static const signed char V_A[] = {1, -1, 2, -1, 4, 4, -1, 8, 8, -1, 8, 8, -1, 0};
static const signed char V_B[] = {1, 1, -1, 2, 2, -1, 4, 4, -1, 8, 8, -1, 8, 8, -1, 0};
static const signed char V_D[] = {1, 1, -1, 2, 2, -1, 4, 4, 4, -1, 8, 8, 8, -1, 8, 8, 8, -1, 0};
static const signed char V_E[] = {1, 1, -1, 2, 2, -1, 4, 4, 4, 4, -1, 8, 8, 8, 8, -1, 8, 8, 8, 8, -1, 0};

/* vgg channel entries are in units of 64 */
static const arch archs[] = {
    {"resnet18", 0, {2, 2, 2, 2}, NULL, 0},   {"resnet34", 0, {3, 4, 6, 3}, NULL, 0},
    {"resnet50", 1, {3, 4, 6, 3}, NULL, 0},   {"resnet101", 1, {3, 4, 23, 3}, NULL, 0},
    {"resnet152", 1, {3, 8, 36, 3}, NULL, 0}, {"vgg11", 0, {0}, V_A, 0},
    {"vgg13", 0, {0}, V_B, 0},                {"vgg16", 0, {0}, V_D, 0},
    {"vgg19", 0, {0}, V_E, 0},                {"vgg11_bn", 0, {0}, V_A, 1},
    {"vgg13_bn", 0, {0}, V_B, 1},             {"vgg16_bn", 0, {0}, V_D, 1},
    {"vgg19_bn", 0, {0}, V_E, 1},
};

const char *imcap_backbone_names(void) {
    return "resnet18, resnet34, resnet50, resnet101, resnet152, vgg11, vgg13, vgg16, vgg19, vgg11_bn, vgg13_bn, "
           "vgg16_bn, vgg19_bn";
}

static const arch *find_arch(const char *name) {
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++)
        if (!strcmp(archs[i].name, name)) return &archs[i];
    return NULL;
}

/* ---------------------------------------------------------------- layers */

typedef struct {
    cJSON *layers;   /* the whole network's encoder array */
    int stage_end[4]; /* resnet: layers up to and including stage k */
    int n;
} network;

static cJSON *layer_obj(const char *type) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", type);
    return o;
}

static void add_conv(cJSON *arr, int out, int k, int s, int p, int bias) {
    cJSON *o = layer_obj("conv");
    cJSON_AddNumberToObject(o, "out", out);
    cJSON_AddNumberToObject(o, "kernel", k);
    cJSON_AddNumberToObject(o, "stride", s);
    cJSON_AddNumberToObject(o, "pad", p);
    if (!bias) cJSON_AddFalseToObject(o, "bias");
    cJSON_AddItemToArray(arr, o);
}

static void add_pool(cJSON *arr, int k, int s, int p) {
    cJSON *o = layer_obj("maxpool");
    cJSON_AddNumberToObject(o, "kernel", k);
    cJSON_AddNumberToObject(o, "stride", s);
    if (p) cJSON_AddNumberToObject(o, "pad", p);
    cJSON_AddItemToArray(arr, o);
}

static void add_bn(cJSON *arr) {
    cJSON *o = layer_obj("batchnorm");
    cJSON_AddNumberToObject(o, "eps", 1e-5);
    cJSON_AddItemToArray(arr, o);
}

/* torchvision's ResNet and VGG `features`, layer for layer. */
static void build_network(const arch *a, network *net) {
    memset(net, 0, sizeof *net);
    cJSON *arr = net->layers = cJSON_CreateArray();
    if (a->vgg) {
        for (const signed char *v = a->vgg; *v; v++) {
            if (*v < 0) { add_pool(arr, 2, 2, 0); continue; }
            add_conv(arr, 64 * *v, 3, 1, 1, 1);
            if (a->bn) add_bn(arr);
            cJSON_AddItemToArray(arr, layer_obj("relu"));
        }
    } else {
        add_conv(arr, 64, 7, 2, 3, 0);
        add_bn(arr);
        cJSON_AddItemToArray(arr, layer_obj("relu"));
        add_pool(arr, 3, 2, 1);
        int inplanes = 64, exp = a->bottleneck ? 4 : 1;
        for (int st = 0; st < 4; st++) {
            int planes = 64 << st;
            for (int b = 0; b < a->blocks[st]; b++) {
                int stride = b == 0 && st > 0 ? 2 : 1;
                cJSON *o = layer_obj(a->bottleneck ? "bottleneck" : "basic");
                cJSON_AddNumberToObject(o, "planes", planes);
                cJSON_AddNumberToObject(o, "stride", stride);
                cJSON_AddBoolToObject(o, "downsample", stride != 1 || inplanes != planes * exp);
                cJSON_AddItemToArray(arr, o);
                inplanes = planes * exp;
            }
            net->stage_end[st] = cJSON_GetArraySize(arr);
        }
    }
    net->n = cJSON_GetArraySize(arr);
}

/* How many of the network's layers LAYER keeps; 0 with a message when it
 * names no layer of the network. */
static int cut_of(const arch *a, const network *net, const char *layer, imcap_error *err) {
    if (a->vgg) {
        if (!layer) {
            /* `features` without its final max-pool: through the last ReLU */
            return net->n - 1;
        }
        char *end;
        if (strncmp(layer, "features.", 9) == 0) {
            long k = strtol(layer + 9, &end, 10);
            if (end != layer + 9 && !*end && k >= 0 && k < net->n) return (int)k + 1;
        }
        imcap_fail(err, IMCAP_E_ARG, "--backbone-layer \"%s\": %s has features.0 to features.%d", layer, a->name,
                   net->n - 1);
        return 0;
    }
    if (!layer) return net->stage_end[3];
    for (int st = 0; st < 4; st++) {
        char name[16];
        snprintf(name, sizeof name, "layer%d", st + 1);
        if (!strcmp(layer, name)) return net->stage_end[st];
    }
    imcap_fail(err, IMCAP_E_ARG, "--backbone-layer \"%s\": a ResNet is cut after layer1, layer2, layer3 or layer4", layer);
    return 0;
}

/* ---------------------------------------------------------------- names */

/* The torchvision name of an imcap encoder tensor ("encoder.4.conv1.weight"
 * -> "layer1.0.conv1.weight"). */
static void torch_name(const arch *a, const network *net, const char *ours, char *out, size_t cap) {
    int i = atoi(ours + 8);
    const char *rest = strchr(ours + 8, '.') + 1;
    if (a->vgg) { snprintf(out, cap, "features.%d.%s", i, rest); return; }
    if (i == 0) { snprintf(out, cap, "conv1.%s", rest); return; }
    if (i == 1) { snprintf(out, cap, "bn1.%s", rest); return; }
    int st = 0, first = 4;
    while (i >= net->stage_end[st]) first = net->stage_end[st++];
    snprintf(out, cap, "layer%d.%d.%s", st + 1, i - first, rest);
}

static int ignored(const char *name) {
    static const char *heads[] = {"fc.", "classifier.", "head.", "pre_logits.", NULL};
    for (int i = 0; heads[i]; i++)
        if (!strncmp(name, heads[i], strlen(heads[i]))) return 1;
    size_t n = strlen(name), t = strlen(".num_batches_tracked");
    return n > t && !strcmp(name + n - t, ".num_batches_tracked");
}

static void shape_text(char *buf, size_t cap, int ndim, const long long *d) {
    size_t len = 0;
    buf[0] = 0;
    for (int i = 0; i < ndim; i++) len += (size_t)snprintf(buf + len, cap - len, "%s%lld", i ? ", " : "", d[i]);
}

/* ---------------------------------------------------------------- model */

/* The config text: the network cut after LAYER, the pool and coords, and
 * the decoder's sizes from decoder_json (NULL: the defaults). */
static imcap_status config_text(const imcap_backbone_spec *b, const network *net, int cut, const char *decoder_json,
                                char **out, imcap_error *err) {
    static const char *dec_keys[] = {"embed_dim", "hidden_dim", "attention_dim", "max_length"};
    /* the PyTorch tutorial's sizes (sgrvinod): 512 everywhere */
    static const int dec_defaults[] = {512, 512, 512, 50};
    cJSON *root = decoder_json ? imcap_json_parse_string(decoder_json) : cJSON_CreateObject();
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return imcap_fail(err, IMCAP_E_FORMAT, "%s: decoder config must be a JSON object", b->decoder_where);
    }
    for (const cJSON *c = root->child; c; c = c->next) {
        int known = 0;
        for (int k = 0; k < 4; k++) known |= !strcmp(c->string, dec_keys[k]);
        if (!known) {
            imcap_status s = imcap_fail(err, IMCAP_E_FORMAT,
                                        "%s: unknown decoder config field \"%s\" (known: embed_dim, hidden_dim, "
                                        "attention_dim, max_length)",
                                        b->decoder_where, c->string);
            cJSON_Delete(root);
            return s;
        }
    }
    for (int k = 0; k < 4; k++)
        if (!cJSON_GetObjectItemCaseSensitive(root, dec_keys[k])) cJSON_AddNumberToObject(root, dec_keys[k], dec_defaults[k]);
    cJSON_AddNumberToObject(root, "image_size", b->image_size ? b->image_size : 224);
    static const double mean[3] = {0.485, 0.456, 0.406}, sd[3] = {0.229, 0.224, 0.225};
    cJSON_AddItemToObject(root, "mean", cJSON_CreateDoubleArray(mean, 3));
    cJSON_AddItemToObject(root, "std", cJSON_CreateDoubleArray(sd, 3));
    cJSON *enc = cJSON_CreateArray();
    for (int i = 0; i < cut; i++) cJSON_AddItemToArray(enc, cJSON_Duplicate(cJSON_GetArrayItem(net->layers, i), 1));
    if (b->grid) {
        cJSON *o = layer_obj("adaptive_avgpool");
        cJSON_AddNumberToObject(o, "out", b->grid);
        cJSON_AddItemToArray(enc, o);
    }
    if (b->coords) cJSON_AddItemToArray(enc, layer_obj("coords"));
    cJSON_AddItemToObject(root, "encoder", enc);
    *out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return *out ? IMCAP_OK : imcap_fail(err, IMCAP_E_NOMEM, "out of memory");
}

/* Checks every tensor of the file against the whole network and copies the
 * ones of the kept layers into m. */
static imcap_status load_weights(const arch *a, const network *net, int cut, const char *path, imcap_model *m,
                                 imcap_error *err) {
    /* the whole network's tensors, from a config of all of it at 224 px
     * (which every network accepts; the tensors' shapes do not depend on it) */
    char *full_text = NULL;
    imcap_config *cfg = calloc(1, sizeof *cfg);
    imcap_param_table *tab = calloc(1, sizeof *tab);
    char **names = NULL;
    imcap_st_file f = {0};
    imcap_status s = IMCAP_OK;
    if (!cfg || !tab) { s = imcap_fail(err, IMCAP_E_NOMEM, "out of memory"); goto done; }
    if ((s = config_text(&(imcap_backbone_spec){.decoder_where = a->name}, net, net->n, NULL, &full_text, err)) ||
        (s = imcap_config_parse(full_text, a->name, cfg, err)))
        goto done;
    imcap_param_table_build(cfg, 4, tab);
    if ((s = imcap_st_open(path, &f, err))) goto done;
    names = calloc((size_t)tab->n, sizeof *names);
    if (!names) { s = imcap_fail(err, IMCAP_E_NOMEM, "out of memory"); goto done; }
    for (int i = 0; i < tab->n; i++) {
        if (strncmp(tab->t[i].name, "encoder.", 8)) continue;
        char tn[96];
        torch_name(a, net, tab->t[i].name, tn, sizeof tn);
        if (!(names[i] = strdup(tn))) { s = imcap_fail(err, IMCAP_E_NOMEM, "out of memory"); goto done; }
    }
    /* every tensor in the file: ignored, or one of the network's with its shape and a float dtype */
    for (int j = 0; j < f.n; j++) {
        const imcap_st_entry *e = &f.entries[j];
        if (ignored(e->name)) continue;
        int i = 0;
        while (i < tab->n && !(names[i] && !strcmp(names[i], e->name))) i++;
        if (i == tab->n) {
            s = imcap_fail(err, IMCAP_E_FORMAT, "%s: tensor \"%s\" is not part of %s (is this file for another network?)",
                           path, e->name, a->name);
            goto done;
        }
        const imcap_tensor_info *t = &tab->t[i];
        long long want[4], got[IMCAP_ST_MAX_DIMS];
        int same = e->ndim == t->ndim;
        for (int d = 0; d < t->ndim; d++) want[d] = t->shape[d];
        for (int d = 0; d < e->ndim; d++) got[d] = e->shape[d], same = same && (d >= t->ndim || got[d] == want[d]);
        if (!same) {
            char ws[96], gs[160];
            shape_text(ws, sizeof ws, t->ndim, want);
            shape_text(gs, sizeof gs, e->ndim, got);
            s = imcap_fail(err, IMCAP_E_FORMAT, "%s: tensor \"%s\" has shape [%s]; %s needs [%s]", path, e->name, gs,
                           a->name, ws);
            goto done;
        }
        if (!imcap_st_is_float(e)) {
            s = imcap_fail(err, IMCAP_E_FORMAT, "%s: tensor \"%s\" has dtype %s; imcap reads F32, F16 and BF16 weights",
                           path, e->name, e->dtype);
            goto done;
        }
    }
    for (int i = 0; i < tab->n; i++)
        if (names[i] && !imcap_st_find(&f, names[i])) {
            s = imcap_fail(err, IMCAP_E_FORMAT, "%s: tensor \"%s\" of %s is missing", path, names[i], a->name);
            goto done;
        }
    /* the kept layers' tensors: the model's own names are the network's for
     * the first `cut` layers */
    for (int i = 0; i < tab->n; i++) {
        if (!names[i] || atoi(tab->t[i].name + 8) >= cut) continue;
        int k = imcap_param_table_find(&m->tab, tab->t[i].name);
        if (k < 0) { s = imcap_fail(err, IMCAP_E_ARG, "%s: internal: no tensor %s", path, tab->t[i].name); goto done; }
        imcap_st_read_f32(&f, imcap_st_find(&f, names[i]), m->block + m->tab.t[k].offset);
    }
done:
    if (names)
        for (int i = 0; i < tab->n; i++) free(names[i]);
    free(names);
    imcap_st_close(&f);
    free(tab);
    free(cfg);
    cJSON_free(full_text);
    return s;
}

imcap_status imcap_backbone_model_create(const imcap_backbone_spec *b, const char *decoder_json,
                                         const imcap_vocab *vocab, uint64_t seed, imcap_model **out, imcap_error *err) {
    *out = NULL;
    const arch *a = b->arch ? find_arch(b->arch) : NULL;
    if (!a)
        return imcap_fail(err, IMCAP_E_ARG, "unknown backbone \"%s\" (known: %s)", b->arch ? b->arch : "(none)",
                          imcap_backbone_names());
    if (b->grid < 0 || b->grid > 4096) return imcap_fail(err, IMCAP_E_ARG, "--grid must be 1..4096");
    network net;
    build_network(a, &net);
    imcap_status s = IMCAP_OK;
    char *text = NULL;
    imcap_config *cfg = calloc(1, sizeof *cfg);
    imcap_model *m = NULL;
    int cut = cut_of(a, &net, b->layer, err);
    if (!cut) { s = IMCAP_E_ARG; goto done; }
    if (!cfg) { s = imcap_fail(err, IMCAP_E_NOMEM, "out of memory"); goto done; }
    if ((s = config_text(b, &net, cut, decoder_json, &text, err))) goto done;
    char where[64];
    snprintf(where, sizeof where, "%s encoder", a->name);
    if ((s = imcap_config_parse(text, where, cfg, err))) goto done;
    if ((s = imcap_model_create(cfg, vocab, &m, err))) goto done;
    imcap_model_init_random(m, seed);
    if ((s = load_weights(a, &net, cut, b->weights, m, err))) goto done;
    imcap_model_sync(m);
    char note[256];
    snprintf(note, sizeof note, "%s through %s", a->name,
             b->layer ? b->layer : a->vgg ? "its last ReLU" : "layer4");
    if (imcap_model_set_metadata(m, "imcap.backbone", note)) { s = imcap_fail(err, IMCAP_E_NOMEM, "out of memory"); goto done; }
done:
    cJSON_Delete(net.layers);
    cJSON_free(text);
    free(cfg);
    if (s) imcap_model_free(m);
    else *out = m;
    return s;
}
