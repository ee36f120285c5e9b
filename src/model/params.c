/* params.c — the parameter table a config implies, and named views into a
 * contiguous block laid out in ascending tensor-name order (the order the
 * safetensors writer uses, so saving is one write of the block). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

static void add(imcap_param_table *tab, const char *name, int ndim, int d0, int d1, int d2, int d3) {
    imcap_tensor_info *t = &tab->t[tab->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    int d[4] = {d0, d1, d2, d3};
    t->count = 1;
    for (int i = 0; i < ndim; i++) t->shape[i] = d[i], t->count *= (size_t)d[i];
}

static int by_name(const void *a, const void *b) {
    return strcmp(((const imcap_tensor_info *)a)->name, ((const imcap_tensor_info *)b)->name);
}

static const char *bn_fields[4] = {"weight", "bias", "running_mean", "running_var"};

/* The names of a block's pieces, as torchvision's BasicBlock / Bottleneck
 * name their modules. */
static const char *block_conv_name[4] = {"conv1", "conv2", "conv3", "downsample.0"};
static const char *block_bn_name[4] = {"bn1", "bn2", "bn3", "downsample.1"};

static void add_bn(imcap_param_table *tab, const char *prefix, int C) {
    char name[64];
    for (int f = 0; f < 4; f++) {
        snprintf(name, sizeof name, "%s.%s", prefix, bn_fields[f]);
        add(tab, name, 1, C, 0, 0, 0);
    }
}

/* Whether slot k of imcap_layer.conv (a conv and the batch norm after it)
 * exists in the block. */
static int block_has(const imcap_layer *l, int k) {
    return k < l->n_convs || (k == IMCAP_BLOCK_DOWNSAMPLE && l->downsample);
}

void imcap_param_table_build(const imcap_config *cfg, int V, imcap_param_table *tab) {
    memset(tab, 0, sizeof *tab);
    char name[64], prefix[48];
    for (int i = 0; i < cfg->n_layers; i++) {
        const imcap_layer *l = &cfg->layers[i];
        switch (l->type) {
        case IMCAP_LAYER_CONV:
            snprintf(name, sizeof name, "encoder.%d.weight", i);
            add(tab, name, 4, l->out, l->in_c, l->kernel, l->kernel);
            if (l->bias) {
                snprintf(name, sizeof name, "encoder.%d.bias", i);
                add(tab, name, 1, l->out, 0, 0, 0);
            }
            break;
        case IMCAP_LAYER_BATCHNORM:
            snprintf(prefix, sizeof prefix, "encoder.%d", i);
            add_bn(tab, prefix, l->in_c);
            break;
        case IMCAP_LAYER_BASIC:
        case IMCAP_LAYER_BOTTLENECK:
            for (int k = 0; k < 4; k++) {
                if (!block_has(l, k)) continue;
                const imcap_conv_shape *c = &l->conv[k];
                snprintf(name, sizeof name, "encoder.%d.%s.weight", i, block_conv_name[k]);
                add(tab, name, 4, c->out, c->in_c, c->kernel, c->kernel);
                snprintf(prefix, sizeof prefix, "encoder.%d.%s", i, block_bn_name[k]);
                add_bn(tab, prefix, c->out);
            }
            break;
        default: break;
        }
    }
    int E = cfg->embed_dim, Hd = cfg->hidden_dim, A = cfg->attention_dim, D = cfg->D;
    add(tab, "decoder.embedding.weight", 2, V, E, 0, 0);
    add(tab, "decoder.init_h.weight", 2, Hd, D, 0, 0);
    add(tab, "decoder.init_h.bias", 1, Hd, 0, 0, 0);
    add(tab, "decoder.init_c.weight", 2, Hd, D, 0, 0);
    add(tab, "decoder.init_c.bias", 1, Hd, 0, 0, 0);
    add(tab, "decoder.attention.encoder_att.weight", 2, A, D, 0, 0);
    add(tab, "decoder.attention.encoder_att.bias", 1, A, 0, 0, 0);
    add(tab, "decoder.attention.decoder_att.weight", 2, A, Hd, 0, 0);
    add(tab, "decoder.attention.decoder_att.bias", 1, A, 0, 0, 0);
    add(tab, "decoder.attention.full_att.weight", 2, 1, A, 0, 0);
    add(tab, "decoder.attention.full_att.bias", 1, 1, 0, 0, 0);
    add(tab, "decoder.f_beta.weight", 2, D, Hd, 0, 0);
    add(tab, "decoder.f_beta.bias", 1, D, 0, 0, 0);
    add(tab, "decoder.lstm.weight_ih", 2, 4 * Hd, E + D, 0, 0);
    add(tab, "decoder.lstm.bias_ih", 1, 4 * Hd, 0, 0, 0);
    add(tab, "decoder.lstm.weight_hh", 2, 4 * Hd, Hd, 0, 0);
    add(tab, "decoder.lstm.bias_hh", 1, 4 * Hd, 0, 0, 0);
    if (cfg->deep_output) {
        add(tab, "decoder.deep_h.weight", 2, E, Hd, 0, 0);
        add(tab, "decoder.deep_h.bias", 1, E, 0, 0, 0);
        add(tab, "decoder.deep_z.weight", 2, E, D, 0, 0);
        add(tab, "decoder.deep_z.bias", 1, E, 0, 0, 0);
    }
    add(tab, "decoder.fc.weight", 2, V, imcap_config_fc_in(cfg), 0, 0);
    add(tab, "decoder.fc.bias", 1, V, 0, 0, 0);
    if (cfg->has_domain) { /* "stats." sorts after every trained tensor */
        add(tab, "stats.domain.mean", 1, cfg->domain_F, 0, 0, 0);
        add(tab, "stats.domain.precision", 2, cfg->domain_F, cfg->domain_F, 0, 0);
    }
    qsort(tab->t, (size_t)tab->n, sizeof tab->t[0], by_name);
    size_t off = 0;
    for (int i = 0; i < tab->n; i++) {
        tab->t[i].offset = off;
        off += tab->t[i].count;
    }
    tab->total = off;
}

/* the table is sorted by name (a ResNet-152 has about 800 tensors) */
int imcap_param_table_find(const imcap_param_table *tab, const char *name) {
    int lo = 0, hi = tab->n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2, c = strcmp(tab->t[mid].name, name);
        if (c == 0) return mid;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return -1;
}

static float *view(const imcap_param_table *tab, float *block, const char *name) {
    int i = imcap_param_table_find(tab, name);
    return i < 0 ? NULL : block + tab->t[i].offset;
}

void imcap_params_point(imcap_params *p, const imcap_config *cfg, const imcap_param_table *tab, float *block) {
    memset(p, 0, sizeof *p);
    char name[64];
    for (int i = 0; i < cfg->n_layers; i++) {
        const imcap_layer *l = &cfg->layers[i];
        switch (l->type) {
        case IMCAP_LAYER_CONV:
        case IMCAP_LAYER_BATCHNORM:
            snprintf(name, sizeof name, "encoder.%d.weight", i);
            p->enc_w[i] = view(tab, block, name);
            snprintf(name, sizeof name, "encoder.%d.bias", i);
            p->enc_b[i] = view(tab, block, name);
            snprintf(name, sizeof name, "encoder.%d.running_mean", i);
            p->enc_mean[i] = view(tab, block, name);
            snprintf(name, sizeof name, "encoder.%d.running_var", i);
            p->enc_var[i] = view(tab, block, name);
            break;
        case IMCAP_LAYER_BASIC:
        case IMCAP_LAYER_BOTTLENECK:
            for (int k = 0; k < 4; k++) {
                if (!block_has(l, k)) continue;
                imcap_block_view *b = &p->enc_block[i];
                snprintf(name, sizeof name, "encoder.%d.%s.weight", i, block_conv_name[k]);
                b->conv[k] = view(tab, block, name);
                float **f[4] = {&b->bn[k].weight, &b->bn[k].bias, &b->bn[k].mean, &b->bn[k].var};
                for (int q = 0; q < 4; q++) {
                    snprintf(name, sizeof name, "encoder.%d.%s.%s", i, block_bn_name[k], bn_fields[q]);
                    *f[q] = view(tab, block, name);
                }
            }
            break;
        default: break;
        }
    }
    p->embedding = view(tab, block, "decoder.embedding.weight");
    p->init_h_w = view(tab, block, "decoder.init_h.weight");
    p->init_h_b = view(tab, block, "decoder.init_h.bias");
    p->init_c_w = view(tab, block, "decoder.init_c.weight");
    p->init_c_b = view(tab, block, "decoder.init_c.bias");
    p->enc_att_w = view(tab, block, "decoder.attention.encoder_att.weight");
    p->enc_att_b = view(tab, block, "decoder.attention.encoder_att.bias");
    p->dec_att_w = view(tab, block, "decoder.attention.decoder_att.weight");
    p->dec_att_b = view(tab, block, "decoder.attention.decoder_att.bias");
    p->full_att_w = view(tab, block, "decoder.attention.full_att.weight");
    p->full_att_b = view(tab, block, "decoder.attention.full_att.bias");
    p->f_beta_w = view(tab, block, "decoder.f_beta.weight");
    p->f_beta_b = view(tab, block, "decoder.f_beta.bias");
    p->w_ih = view(tab, block, "decoder.lstm.weight_ih");
    p->b_ih = view(tab, block, "decoder.lstm.bias_ih");
    p->w_hh = view(tab, block, "decoder.lstm.weight_hh");
    p->b_hh = view(tab, block, "decoder.lstm.bias_hh");
    p->deep_h_w = view(tab, block, "decoder.deep_h.weight");
    p->deep_h_b = view(tab, block, "decoder.deep_h.bias");
    p->deep_z_w = view(tab, block, "decoder.deep_z.weight");
    p->deep_z_b = view(tab, block, "decoder.deep_z.bias");
    p->fc_w = view(tab, block, "decoder.fc.weight");
    p->fc_b = view(tab, block, "decoder.fc.bias");
    p->domain_mean = view(tab, block, "stats.domain.mean");
    p->domain_precision = view(tab, block, "stats.domain.precision");
}

size_t imcap_param_table_prefix_offset(const imcap_param_table *tab, const char *prefix) {
    size_t n = strlen(prefix);
    for (int i = 0; i < tab->n; i++)
        if (!strncmp(tab->t[i].name, prefix, n)) return tab->t[i].offset;
    return tab->total;
}
