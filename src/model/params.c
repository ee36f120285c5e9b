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

void imcap_param_table_build(const imcap_config *cfg, int V, imcap_param_table *tab) {
    memset(tab, 0, sizeof *tab);
    char name[64];
    for (int i = 0; i < cfg->n_layers; i++) {
        const imcap_layer *l = &cfg->layers[i];
        if (l->type != IMCAP_LAYER_CONV) continue;
        snprintf(name, sizeof name, "encoder.%d.weight", i);
        add(tab, name, 4, l->out, l->in_c, l->kernel, l->kernel);
        snprintf(name, sizeof name, "encoder.%d.bias", i);
        add(tab, name, 1, l->out, 0, 0, 0);
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
    add(tab, "decoder.fc.weight", 2, V, Hd, 0, 0);
    add(tab, "decoder.fc.bias", 1, V, 0, 0, 0);
    qsort(tab->t, (size_t)tab->n, sizeof tab->t[0], by_name);
    size_t off = 0;
    for (int i = 0; i < tab->n; i++) {
        tab->t[i].offset = off;
        off += tab->t[i].count;
    }
    tab->total = off;
}

int imcap_param_table_find(const imcap_param_table *tab, const char *name) {
    for (int i = 0; i < tab->n; i++)
        if (strcmp(tab->t[i].name, name) == 0) return i;
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
        if (cfg->layers[i].type != IMCAP_LAYER_CONV) continue;
        snprintf(name, sizeof name, "encoder.%d.weight", i);
        p->enc_w[i] = view(tab, block, name);
        snprintf(name, sizeof name, "encoder.%d.bias", i);
        p->enc_b[i] = view(tab, block, name);
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
    p->fc_w = view(tab, block, "decoder.fc.weight");
    p->fc_b = view(tab, block, "decoder.fc.bias");
}
