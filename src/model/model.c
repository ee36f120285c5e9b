/* model.c — model lifetime, random initialisation and introspection. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/simd.h"
#include "model.h"
#include "util/util.h"

void *imcap_aligned_alloc(size_t bytes) {
    size_t rounded = (bytes + 63) / 64 * 64;
    void *p = aligned_alloc(64, rounded ? rounded : 64);
    if (p) memset(p, 0, rounded ? rounded : 64);
    return p;
}

void imcap_model_free(imcap_model *m) {
    if (!m) return;
    imcap_vocab_free(&m->vocab);
    for (int i = 0; i < m->n_meta; i++) free(m->meta[i].key), free(m->meta[i].value);
    free(m->meta);
    free(m->config_json);
    free(m->block);
    imcap_decoder_pack *k = &m->pack;
    free(k->enc_att_wt), free(k->qg_wt), free(k->qg_b), free(k->gates_wt), free(k->gates_b), free(k->gates_emb), free(k->fc_wt);
    for (int i = 0; i < IMCAP_MAX_LAYERS; i++)
        for (int j = 0; j < 4; j++) free(m->epack.wt[i][j]), free(m->epack.wino[i][j]);
    free(m);
}

imcap_status imcap_model_pack_alloc(imcap_model *m, imcap_error *err) {
    const imcap_config *c = &m->cfg;
    size_t Hd = (size_t)c->hidden_dim, AD = (size_t)c->attention_dim + c->D, X = (size_t)c->embed_dim + c->D + Hd;
    imcap_decoder_pack *k = &m->pack;
    /* zeroed (imcap_aligned_alloc): a last panel's padding is read, never stored, by the products */
    k->enc_att_wt = imcap_aligned_alloc(imcap_panel_floats(c->attention_dim, c->D) * sizeof(float));
    k->qg_wt = imcap_aligned_alloc(imcap_panel_floats((int)AD, (int)Hd) * sizeof(float));
    k->qg_b = imcap_aligned_alloc(AD * sizeof(float));
    k->gates_wt = imcap_aligned_alloc(imcap_panel_floats(4 * (int)Hd, (int)X) * sizeof(float));
    k->gates_b = imcap_aligned_alloc(4 * Hd * sizeof(float));
    /* a few dozen outputs fill too few 16-lane vectors of the outer form
     * (measured: 49 words, 32 rows: 20 us against 10 in dot form) */
    int pack_fc = m->vocab.n >= IMCAP_PACK_MIN_V;
    size_t table = (size_t)m->vocab.n * 4 * Hd;
    if (table <= IMCAP_GATES_TABLE_MAX && !(k->gates_emb = imcap_aligned_alloc(table * sizeof(float))))
        return imcap_fail(err, IMCAP_E_NOMEM, "out of memory for the decoder's transposed weights");
    if (pack_fc) k->fc_wt = imcap_aligned_alloc(imcap_panel_floats(m->vocab.n, imcap_config_fc_in(c)) * sizeof(float));
    if (!k->enc_att_wt || !k->qg_wt || !k->qg_b || !k->gates_wt || !k->gates_b || (pack_fc && !k->fc_wt))
        return imcap_fail(err, IMCAP_E_NOMEM, "out of memory for the decoder's transposed weights");
    for (int i = 0; i < c->n_layers; i++) {
        const imcap_layer *l = &c->layers[i];
        if (l->type != IMCAP_LAYER_BASIC && l->type != IMCAP_LAYER_BOTTLENECK) continue;
        for (int j = 0; j < 4; j++) {
            const imcap_conv_shape *cs = &l->conv[j];
            if (!m->p.enc_block[i].conv[j]) continue;
            if (imcap_winograd_fits(cs->kernel, cs->stride, cs->pad, cs->out_h, cs->out_w)) {
                if (!(m->epack.wino[i][j] =
                          imcap_aligned_alloc(imcap_winograd_weights_floats(cs->out, cs->in_c) * sizeof(float))))
                    return imcap_fail(err, IMCAP_E_NOMEM, "out of memory for the encoder's Winograd weights");
                continue;
            }
            if (!imcap_conv_runs_transposed(cs->out, cs->out_h * cs->out_w)) continue;
            int K = cs->in_c * cs->kernel * cs->kernel;
            if (!(m->epack.wt[i][j] = imcap_aligned_alloc(imcap_panel_floats(cs->out, K) * sizeof(float))))
                return imcap_fail(err, IMCAP_E_NOMEM, "out of memory for the encoder's transposed weights");
        }
    }
    imcap_model_sync(m);
    return IMCAP_OK;
}

void imcap_model_sync(imcap_model *m) {
    const imcap_config *c = &m->cfg;
    const imcap_params *p = &m->p;
    imcap_decoder_pack *k = &m->pack;
    int Hd = c->hidden_dim, A = c->attention_dim, D = c->D, X = c->embed_dim + c->D, V = m->vocab.n;
    imcap_panel_put(k->enc_att_wt, D, 0, 0, p->enc_att_w, A, D);
    imcap_panel_put(k->qg_wt, Hd, 0, 0, p->dec_att_w, A, Hd);
    imcap_panel_put(k->qg_wt, Hd, A, 0, p->f_beta_w, D, Hd);
    memcpy(k->qg_b, p->dec_att_b, (size_t)A * sizeof(float));
    memcpy(k->qg_b + A, p->f_beta_b, (size_t)D * sizeof(float));
    imcap_panel_put(k->gates_wt, X + Hd, 0, 0, p->w_ih, 4 * Hd, X);
    imcap_panel_put(k->gates_wt, X + Hd, 0, X, p->w_hh, 4 * Hd, Hd);
    for (int o = 0; o < 4 * Hd; o++) k->gates_b[o] = p->b_ih[o] + p->b_hh[o];
    if (k->gates_emb)
        imcap_gemm_p_range(k->gates_emb, (size_t)4 * Hd, p->embedding, (size_t)c->embed_dim, 1, k->gates_wt, V, 4 * Hd,
                           X + Hd, 0, c->embed_dim, 0, 0, NULL);
    int F = imcap_config_fc_in(c);
    if (k->fc_wt) imcap_panel_put(k->fc_wt, F, 0, 0, p->fc_w, V, F);
    for (int i = 0; i < c->n_layers; i++)
        for (int j = 0; j < 4; j++)
            if (m->epack.wt[i][j]) {
                const imcap_conv_shape *cs = &c->layers[i].conv[j];
                int K = cs->in_c * cs->kernel * cs->kernel;
                imcap_panel_put(m->epack.wt[i][j], K, 0, 0, p->enc_block[i].conv[j], cs->out, K);
            } else if (m->epack.wino[i][j]) {
                const imcap_conv_shape *cs = &c->layers[i].conv[j];
                imcap_winograd_weights(m->epack.wino[i][j], p->enc_block[i].conv[j], cs->out, cs->in_c);
            }
}

imcap_status imcap_model_reshape(const imcap_model *m, const imcap_config *cfg, imcap_model **out, imcap_error *err) {
    imcap_status s = imcap_model_create(cfg, &m->vocab, out, err);
    if (s) return s;
    imcap_model *r = *out;
    for (int i = 0; i < r->tab.n; i++) {
        int k = imcap_param_table_find(&m->tab, r->tab.t[i].name);
        if (k >= 0 && m->tab.t[k].count == r->tab.t[i].count)
            memcpy(r->block + r->tab.t[i].offset, m->block + m->tab.t[k].offset, r->tab.t[i].count * sizeof(float));
    }
    imcap_model_sync(r);
    for (int i = 0; i < m->n_meta; i++)
        if (imcap_model_set_metadata(r, m->meta[i].key, m->meta[i].value)) {
            imcap_model_free(r);
            *out = NULL;
            return imcap_fail(err, IMCAP_E_NOMEM, "out of memory");
        }
    return IMCAP_OK;
}

imcap_status imcap_model_copy_encoder(imcap_model *dst, const imcap_model *src, const char *src_name, imcap_error *err) {
    char *a = imcap_config_encoder_json(&dst->cfg), *b = imcap_config_encoder_json(&src->cfg);
    int same = a && b && strcmp(a, b) == 0;
    free(a), free(b);
    if (!same)
        return imcap_fail(err, IMCAP_E_ARG,
                          "%s: its encoder (image size, mean, std or layers) is not the config's, so its weights "
                          "do not fit",
                          src_name);
    for (int i = 0; i < dst->tab.n; i++) {
        const imcap_tensor_info *t = &dst->tab.t[i];
        if (strncmp(t->name, "encoder.", 8)) continue;
        int k = imcap_param_table_find(&src->tab, t->name);
        if (k < 0 || src->tab.t[k].count != t->count) /* equal encoder configs imply equal tensors */
            return imcap_fail(err, IMCAP_E_FORMAT, "%s: tensor %s does not match", src_name, t->name);
        memcpy(dst->block + t->offset, src->block + src->tab.t[k].offset, t->count * sizeof(float));
    }
    imcap_model_sync(dst);
    return IMCAP_OK;
}

imcap_status imcap_model_create(const imcap_config *cfg, const imcap_vocab *vocab, imcap_model **out, imcap_error *err) {
    *out = NULL;
    imcap_model *m = calloc(1, sizeof *m);
    if (!m) return imcap_fail(err, IMCAP_E_NOMEM, "out of memory");
    m->cfg = *cfg;
    m->config_json = imcap_config_to_json(cfg);
    m->vocab.words = calloc((size_t)vocab->n, sizeof(char *));
    m->meta = calloc(1, sizeof *m->meta);
    if (!m->vocab.words || !m->meta || !m->config_json) {
        imcap_model_free(m);
        return imcap_fail(err, IMCAP_E_NOMEM, "out of memory");
    }
    m->vocab.n = vocab->n;
    for (int i = 0; i < vocab->n; i++)
        if (!(m->vocab.words[i] = strdup(vocab->words[i]))) {
            imcap_model_free(m);
            return imcap_fail(err, IMCAP_E_NOMEM, "out of memory for the vocabulary");
        }
    imcap_param_table_build(cfg, vocab->n, &m->tab);
    m->block = imcap_aligned_alloc(m->tab.total * sizeof(float));
    if (!m->block) { imcap_model_free(m); return imcap_fail(err, IMCAP_E_NOMEM, "out of memory for %zu parameters", m->tab.total); }
    imcap_params_point(&m->p, &m->cfg, &m->tab, m->block);
    imcap_status s = imcap_model_pack_alloc(m, err);
    if (s) { imcap_model_free(m); return s; }
    *out = m;
    return IMCAP_OK;
}

static void fill_normal(float *w, size_t n, double sd, imcap_rng *r) {
    for (size_t i = 0; i < n; i++) w[i] = (float)(sd * imcap_rng_normal(r));
}
static void fill_uniform(float *w, size_t n, double a, imcap_rng *r) {
    for (size_t i = 0; i < n; i++) w[i] = (float)(a * (2.0 * imcap_rng_uniform(r) - 1.0));
}
static void fill_const(float *w, size_t n, float v) {
    for (size_t i = 0; i < n; i++) w[i] = v;
}

/* Xavier-uniform for a [fan_out, fan_in] matrix. */
static void xavier(float *w, int fan_out, int fan_in, imcap_rng *r) {
    fill_uniform(w, (size_t)fan_out * fan_in, sqrt(6.0 / (fan_in + fan_out)), r);
}

void imcap_model_init_random(imcap_model *m, uint64_t seed) {
    imcap_rng r;
    imcap_rng_seed(&r, seed);
    const imcap_config *c = &m->cfg;
    imcap_params *p = &m->p;
    memset(m->block, 0, m->tab.total * sizeof(float));
    for (int i = 0; i < c->n_layers; i++) {
        const imcap_layer *l = &c->layers[i];
        if (l->type == IMCAP_LAYER_CONV) {
            int fan_in = l->in_c * l->kernel * l->kernel; /* He: the layers feed ReLUs */
            fill_normal(p->enc_w[i], (size_t)l->out * fan_in, sqrt(2.0 / fan_in), &r);
        } else if (l->type == IMCAP_LAYER_BATCHNORM) {
            fill_const(p->enc_w[i], (size_t)l->in_c, 1.0f); /* torch's BatchNorm2d: weight 1, variance 1 */
            fill_const(p->enc_var[i], (size_t)l->in_c, 1.0f);
        } else if (l->type == IMCAP_LAYER_BASIC || l->type == IMCAP_LAYER_BOTTLENECK) {
            const imcap_block_view *b = &p->enc_block[i];
            for (int k = 0; k < 4; k++) {
                const imcap_conv_shape *cs = &l->conv[k];
                if (!b->conv[k]) continue;
                int fan_in = cs->in_c * cs->kernel * cs->kernel;
                fill_normal(b->conv[k], (size_t)cs->out * fan_in, sqrt(2.0 / fan_in), &r);
                fill_const(b->bn[k].weight, (size_t)cs->out, 1.0f);
                fill_const(b->bn[k].var, (size_t)cs->out, 1.0f);
            }
        }
    }
    int V = m->vocab.n, E = c->embed_dim, Hd = c->hidden_dim, A = c->attention_dim, D = c->D;
    fill_uniform(p->embedding, (size_t)V * E, 0.1, &r);
    xavier(p->init_h_w, Hd, D, &r);
    xavier(p->init_c_w, Hd, D, &r);
    xavier(p->enc_att_w, A, D, &r);
    xavier(p->dec_att_w, A, Hd, &r);
    xavier(p->full_att_w, 1, A, &r);
    xavier(p->f_beta_w, D, Hd, &r);
    xavier(p->w_ih, 4 * Hd, E + D, &r);
    xavier(p->w_hh, 4 * Hd, Hd, &r);
    xavier(p->fc_w, V, imcap_config_fc_in(c), &r);
    if (c->deep_output) { /* after every format-1 tensor: the same seed gives a format-1 model the same weights */
        xavier(p->deep_h_w, E, Hd, &r);
        xavier(p->deep_z_w, E, D, &r);
    }
    for (int j = Hd; j < 2 * Hd; j++) p->b_ih[j] = 1.0f; /* forget gate starts open */
    imcap_model_sync(m);
}

imcap_status imcap_model_set_metadata(imcap_model *m, const char *key, const char *value) {
    for (int i = 0; i < m->n_meta; i++)
        if (strcmp(m->meta[i].key, key) == 0) {
            char *v = strdup(value);
            if (!v) return IMCAP_E_NOMEM;
            free(m->meta[i].value);
            m->meta[i].value = v;
            return IMCAP_OK;
        }
    imcap_meta_entry *nm = realloc(m->meta, (size_t)(m->n_meta + 1) * sizeof *nm);
    if (!nm) return IMCAP_E_NOMEM;
    m->meta = nm;
    char *k = strdup(key), *v = strdup(value);
    if (!k || !v) {
        free(k), free(v);
        return IMCAP_E_NOMEM;
    }
    m->meta[m->n_meta].key = k, m->meta[m->n_meta].value = v;
    m->n_meta++;
    return IMCAP_OK;
}

const char *imcap_model_metadata(const imcap_model *m, const char *key) {
    for (int i = 0; i < m->n_meta; i++)
        if (strcmp(m->meta[i].key, key) == 0) return m->meta[i].value;
    return NULL;
}

const char *imcap_model_config_json(const imcap_model *m) { return m->config_json; }

const char *imcap_model_word(const imcap_model *m, int id) {
    return id >= 0 && id < m->vocab.n ? m->vocab.words[id] : NULL;
}

void imcap_model_get_info(const imcap_model *m, imcap_model_info *info) {
    const imcap_config *c = &m->cfg;
    memset(info, 0, sizeof *info);
    info->format = c->format;
    info->image_size = c->image_size;
    info->embed_dim = c->embed_dim;
    info->hidden_dim = c->hidden_dim;
    info->attention_dim = c->attention_dim;
    info->max_length = c->max_length;
    info->vocab_size = m->vocab.n;
    info->feature_dim = c->D;
    info->grid_h = c->H;
    info->grid_w = c->W;
    info->n_encoder_layers = c->n_layers;
    info->n_params = (int64_t)imcap_param_table_prefix_offset(&m->tab, "stats."); /* statistics are not parameters */
    double enc = 0;
    for (int i = 0; i < c->n_layers; i++) {
        const imcap_layer *l = &c->layers[i];
        if (l->type == IMCAP_LAYER_CONV)
            enc += 2.0 * l->out_c * l->out_h * l->out_w * l->in_c * l->kernel * l->kernel;
        if (l->type == IMCAP_LAYER_BASIC || l->type == IMCAP_LAYER_BOTTLENECK)
            for (int k = 0; k < 4; k++) {
                const imcap_conv_shape *cs = &l->conv[k];
                enc += 2.0 * cs->out * cs->out_h * cs->out_w * cs->in_c * cs->kernel * cs->kernel;
            }
    }
    double L = c->L, D = c->D, A = c->attention_dim, Hd = c->hidden_dim, E = c->embed_dim, V = m->vocab.n;
    enc += 2.0 * L * D * A + 2.0 * 2.0 * Hd * D; /* encoder_att over the cells, init_h / init_c */
    info->encoder_flops = enc;
    info->decoder_flops = 2.0 * A * Hd + 3.0 * L * A + 2.0 * D * Hd + 2.0 * L * D + 2.0 * 4 * Hd * (E + D + Hd) +
                          2.0 * V * imcap_config_fc_in(&m->cfg) + (m->cfg.deep_output ? 2.0 * E * (Hd + D) : 0.0);
}
