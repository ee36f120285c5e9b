/* decoder.c — the soft-attention LSTM decoder of Xu et al. 2015 with the
 * spec's tanh on the initial state and inside the attention. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/simd.h"
#include "network.h"

imcap_status imcap_decoder_init_alloc(imcap_decoder_init *d, const imcap_config *cfg) {
    memset(d, 0, sizeof *d);
    d->a = imcap_aligned_alloc((size_t)cfg->L * cfg->D * sizeof(float));
    d->p = imcap_aligned_alloc((size_t)cfg->L * cfg->attention_dim * sizeof(float));
    d->abar = imcap_aligned_alloc((size_t)cfg->D * sizeof(float));
    d->h0 = imcap_aligned_alloc((size_t)cfg->hidden_dim * sizeof(float));
    d->c0 = imcap_aligned_alloc((size_t)cfg->hidden_dim * sizeof(float));
    d->pt = imcap_aligned_alloc((size_t)cfg->L * cfg->attention_dim * sizeof(float));
    if (!d->a || !d->p || !d->abar || !d->h0 || !d->c0 || !d->pt) {
        imcap_decoder_init_free(d);
        return IMCAP_E_NOMEM;
    }
    return IMCAP_OK;
}

void imcap_decoder_init_free(imcap_decoder_init *d) {
    free(d->a), free(d->p), free(d->abar), free(d->h0), free(d->c0), free(d->pt);
    memset(d, 0, sizeof *d);
}

void imcap_decoder_prepare_forward(const imcap_config *cfg, const imcap_params *p, const imcap_decoder_pack *pk,
                                   const float *feat, imcap_decoder_init *d) {
    int L = cfg->L, D = cfg->D, Hd = cfg->hidden_dim, A = cfg->attention_dim;
    for (int c = 0; c < D; c++) {
        const float *plane = feat + (size_t)c * L;
        float s = 0;
        for (int i = 0; i < L; i++) {
            d->a[(size_t)i * D + c] = plane[i];
            s += plane[i];
        }
        d->abar[c] = s / (float)L;
    }
    /* p = a W^T + b. With the pack, straight into p from a and W^T; in
     * training as p^T = W feat + b (feat [D,L] is already the product's
     * right-hand side), then transposed. Both sum each p[i][k] over d in
     * order with the same products: the same bits. */
    if (pk) {
        imcap_affine_p(d->p, (size_t)A, L, A, d->a, (size_t)D, pk->enc_att_wt, D, p->enc_att_b);
    } else {
        imcap_gemm(d->pt, (size_t)L, p->enc_att_w, (size_t)D, 1, feat, (size_t)L, A, L, D, p->enc_att_b, 0);
        for (int i = 0; i < L; i++)
            for (int k = 0; k < A; k++) d->p[(size_t)i * A + k] = d->pt[(size_t)k * L + i];
    }
    imcap_affine_forward(d->h0, d->abar, p->init_h_w, p->init_h_b, 1, D, Hd);
    imcap_affine_forward(d->c0, d->abar, p->init_c_w, p->init_c_b, 1, D, Hd);
    imcap_vtanh(d->h0, d->h0, (size_t)Hd);
    imcap_vtanh(d->c0, d->c0, (size_t)Hd);
}

void imcap_decoder_prepare_backward(const imcap_config *cfg, const imcap_params *p, const imcap_params *g,
                                    const imcap_decoder_init *d, float *da, const float *dp, const float *dh0,
                                    const float *dc0, float *dfeat, float *scratch) {
    int L = cfg->L, D = cfg->D, Hd = cfg->hidden_dim, A = cfg->attention_dim;
    /* without dfeat (a frozen encoder) only the weights' gradients are made */
    float *dabar = dfeat ? scratch : NULL, *dpre = scratch + D;
    /* da arrives from the attention; add what flows back through encoder_att */
    imcap_affine_backward(dfeat ? da : NULL, g->enc_att_w, g->enc_att_b, dp, d->a, p->enc_att_w, L, D, A);
    if (dabar) memset(dabar, 0, (size_t)D * sizeof(float));
    for (int j = 0; j < Hd; j++) dpre[j] = dh0[j] * (1.0f - d->h0[j] * d->h0[j]);
    imcap_affine_backward(dabar, g->init_h_w, g->init_h_b, dpre, d->abar, p->init_h_w, 1, D, Hd);
    for (int j = 0; j < Hd; j++) dpre[j] = dc0[j] * (1.0f - d->c0[j] * d->c0[j]);
    imcap_affine_backward(dabar, g->init_c_w, g->init_c_b, dpre, d->abar, p->init_c_w, 1, D, Hd);
    if (!dfeat) return;
    for (int c = 0; c < D; c++) {
        float *plane = dfeat + (size_t)c * L, add = dabar[c] / (float)L;
        for (int i = 0; i < L; i++) plane[i] = da[(size_t)i * D + c] + add;
    }
}

static imcap_status step_cache_alloc(imcap_step_cache *s, const imcap_config *cfg, int V, int N, int for_backward) {
    memset(s, 0, sizeof *s);
    int L = cfg->L, D = cfg->D, Hd = cfg->hidden_dim, A = cfg->attention_dim, E = cfg->embed_dim;
    s->cap = N;
    /* inference (imcap_model's pack) keeps q and the gate side by side in
     * qg, and h_prev after the LSTM input in x; training keeps them apart */
    float **bufs[] = {&s->q, &s->tanh_pq, &s->alpha, &s->ctx, &s->gate, &s->x, &s->gates,
                      &s->c, &s->tanh_c, &s->h, &s->u, &s->h_fc, &s->logits, &s->qg};
    size_t sizes[] = {(size_t)A, (size_t)L * A, (size_t)L, (size_t)D, (size_t)D, (size_t)E + D + (for_backward ? 0 : Hd),
                      (size_t)4 * Hd, (size_t)Hd, (size_t)Hd, (size_t)Hd, (size_t)E, (size_t)imcap_config_fc_in(cfg),
                      (size_t)V, (size_t)A + D};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        int infer_only = bufs[k] == &s->qg, train_only = bufs[k] == &s->tanh_pq || bufs[k] == &s->q ||
                                                         bufs[k] == &s->gate || bufs[k] == &s->h_fc;
        if ((train_only && !for_backward) || (infer_only && for_backward)) continue;
        if (bufs[k] == &s->u && !cfg->deep_output) continue;
        if (!(*bufs[k] = imcap_aligned_alloc(sizes[k] * (size_t)N * sizeof(float)))) {
            imcap_step_cache_free(s);
            return IMCAP_E_NOMEM;
        }
    }
    return IMCAP_OK;
}

imcap_status imcap_step_cache_alloc(imcap_step_cache *s, const imcap_config *cfg, int V, int N) {
    return step_cache_alloc(s, cfg, V, N, 1);
}

imcap_status imcap_step_cache_alloc_infer(imcap_step_cache *s, const imcap_config *cfg, int V, int N) {
    return step_cache_alloc(s, cfg, V, N, 0);
}

void imcap_step_cache_free(imcap_step_cache *s) {
    free(s->q), free(s->tanh_pq), free(s->alpha), free(s->ctx), free(s->gate), free(s->x);
    free(s->gates), free(s->c), free(s->tanh_c), free(s->h), free(s->u), free(s->h_fc), free(s->logits), free(s->qg);
    memset(s, 0, sizeof *s);
}

/* Row n attends over a_rows[n] / p_rows[n] when the arrays are given,
 * otherwise over a + n * a_stride / p_att + n * p_stride. */
static const float *row_a(const float *const *a_rows, const float *a, size_t stride, int n) {
    return a_rows ? a_rows[n] : a + n * stride;
}

/* Xu et al.'s deep output layer (eq. 7, with the tanh of the authors'
 * code): u = tanh(deep_h(h) + deep_z(z) + E y) for N rows, z and E y read
 * from the LSTM input x (row stride ldx, [E y; z; ...]). Training and
 * inference share it, so both compute u with the same bits. */
static void deep_output_forward(const imcap_config *cfg, const imcap_params *p, int N, const float *h, const float *x,
                                size_t ldx, float *u) {
    int E = cfg->embed_dim, Hd = cfg->hidden_dim, D = cfg->D;
    imcap_mm_seg seg[2] = {{p->deep_h_w, (size_t)Hd, h, (size_t)Hd, Hd}, {p->deep_z_w, (size_t)D, x + E, ldx, D}};
    imcap_rows_affine(u, (size_t)E, N, E, seg, 2, p->deep_h_b, p->deep_z_b);
    for (int n = 0; n < N; n++)
        for (int e = 0; e < E; e++) u[(size_t)n * E + e] += x[n * ldx + e];
    imcap_vtanh(u, u, (size_t)N * E);
}

/* du [N,E] arrives at u (and is overwritten with the gradient before the
 * tanh); accumulates into dh [N,Hd], dx [N, ldx] (its E y and z parts) and
 * g's deep_h, deep_z. */
static void deep_output_backward(const imcap_config *cfg, const imcap_params *p, const imcap_params *g, int N,
                                 const float *h, const float *x, size_t ldx, const float *u, float *du, float *dh,
                                 float *dx) {
    int E = cfg->embed_dim, Hd = cfg->hidden_dim, D = cfg->D;
    for (size_t k = 0; k < (size_t)N * E; k++) du[k] *= 1.0f - u[k] * u[k];
    imcap_affine_backward(dh, g->deep_h_w, g->deep_h_b, du, h, p->deep_h_w, N, Hd, E);
    for (int n = 0; n < N; n++)
        for (int e = 0; e < E; e++) g->deep_z_b[e] += du[(size_t)n * E + e];
    imcap_gemm(g->deep_z_w, (size_t)D, du, 1, (size_t)E, x + E, ldx, E, D, N, NULL, 1);  /* du^T z */
    imcap_gemm(dx + E, ldx, du, (size_t)E, 1, p->deep_z_w, (size_t)D, N, D, E, NULL, 1); /* dz += du deep_z */
    for (int n = 0; n < N; n++)
        for (int e = 0; e < E; e++) dx[n * ldx + e] += du[(size_t)n * E + e];
}

/* fc's input: h, or u, computed here, with the deep output layer. */
static const float *fc_input(const imcap_config *cfg, const imcap_params *p, int N, size_t ldx, imcap_step_cache *s) {
    if (!cfg->deep_output) return s->h;
    deep_output_forward(cfg, p, N, s->h, s->x, ldx, s->u);
    return s->u;
}

/* Training's step: the products in dot form over the weights as stored
 * (they change at every step), with what the backward needs kept. */
static void step_train(const imcap_config *cfg, const imcap_params *p, int V, int N, const int *tokens,
                       const float *h_prev, const float *c_prev, const float *a, size_t a_stride, const float *p_att,
                       size_t p_stride, const float *dropout_mask, imcap_step_cache *s) {
    int L = cfg->L, D = cfg->D, Hd = cfg->hidden_dim, A = cfg->attention_dim, E = cfg->embed_dim, X = E + D;
    imcap_affine_forward(s->q, h_prev, p->dec_att_w, p->dec_att_b, N, Hd, A);
    imcap_affine_forward(s->gate, h_prev, p->f_beta_w, p->f_beta_b, N, Hd, D);
    imcap_sigmoid_forward(s->gate, s->gate, (size_t)N * D);
    for (int n = 0; n < N; n++) {
        imcap_attention_forward(s->ctx + (size_t)n * D, s->alpha + (size_t)n * L, s->tanh_pq + (size_t)n * L * A,
                                a + n * a_stride, p_att + n * p_stride, s->q + (size_t)n * A, p->full_att_w,
                                p->full_att_b[0], L, A, D);
        float *x = s->x + (size_t)n * X;
        memcpy(x, p->embedding + (size_t)tokens[n] * E, (size_t)E * sizeof(float));
        const float *g = s->gate + (size_t)n * D, *ctx = s->ctx + (size_t)n * D;
        for (int d = 0; d < D; d++) x[E + d] = g[d] * ctx[d];
    }
    imcap_lstm_forward(s->h, s->c, s->tanh_c, s->gates, s->x, h_prev, c_prev, p->w_ih, p->b_ih, p->w_hh, p->b_hh, N,
                       X, Hd);
    const float *fc_in = fc_input(cfg, p, N, (size_t)X, s);
    int F = imcap_config_fc_in(cfg);
    if (dropout_mask) {
        for (size_t k = 0; k < (size_t)N * F; k++) s->h_fc[k] = fc_in[k] * dropout_mask[k];
        fc_in = s->h_fc;
    }
    imcap_affine_forward(s->logits, fc_in, p->fc_w, p->fc_b, N, F, V);
}

/* Inference's step: three products over the transposed weights of the
 * pack (q with the gate, the LSTM gates over [E y; z; h_prev], fc), each
 * reading its weights once for all the rows. */
static void step_infer(const imcap_config *cfg, const imcap_params *p, const imcap_decoder_pack *pk, int V, int N,
                       const int *tokens, const float *h_prev, const float *c_prev, const float *a, size_t a_stride,
                       const float *p_att, size_t p_stride, const float *const *a_rows, const float *const *p_rows,
                       imcap_step_cache *s) {
    int L = cfg->L, D = cfg->D, Hd = cfg->hidden_dim, A = cfg->attention_dim, E = cfg->embed_dim, X = E + D + Hd;
    size_t QG = (size_t)A + D;
    imcap_affine_p(s->qg, QG, N, (int)QG, h_prev, (size_t)Hd, pk->qg_wt, Hd, pk->qg_b);
    for (int n = 0; n < N; n++) {
        float *q = s->qg + (size_t)n * QG, *g = q + A;
        imcap_sigmoid_forward(g, g, (size_t)D);
        imcap_attention_forward(s->ctx + (size_t)n * D, s->alpha + (size_t)n * L, NULL, row_a(a_rows, a, a_stride, n),
                                row_a(p_rows, p_att, p_stride, n), q, p->full_att_w, p->full_att_b[0], L, A, D);
        float *x = s->x + (size_t)n * X;
        memcpy(x, p->embedding + (size_t)tokens[n] * E, (size_t)E * sizeof(float));
        const float *ctx = s->ctx + (size_t)n * D;
        for (int d = 0; d < D; d++) x[E + d] = g[d] * ctx[d];
        memcpy(x + E + D, h_prev + (size_t)n * Hd, (size_t)Hd * sizeof(float));
    }
    if (pk->gates_emb) { /* the sums over E y are the word's row of the table: continue from them */
        for (int n = 0; n < N; n++)
            memcpy(s->gates + (size_t)n * 4 * Hd, pk->gates_emb + (size_t)tokens[n] * 4 * Hd,
                   (size_t)4 * Hd * sizeof(float));
        imcap_gemm_p_range(s->gates, (size_t)4 * Hd, s->x, (size_t)X, 1, pk->gates_wt, N, 4 * Hd, X, E, X, 1, 1,
                           pk->gates_b);
    } else
        imcap_affine_p(s->gates, (size_t)4 * Hd, N, 4 * Hd, s->x, (size_t)X, pk->gates_wt, X, pk->gates_b);
    imcap_lstm_cell(s->h, s->c, s->tanh_c, s->gates, c_prev, N, Hd);
    const float *fc_in = fc_input(cfg, p, N, (size_t)X, s);
    int F = imcap_config_fc_in(cfg);
    if (pk->fc_wt) imcap_affine_p(s->logits, (size_t)V, N, V, fc_in, (size_t)F, pk->fc_wt, F, p->fc_b);
    else imcap_affine_forward(s->logits, fc_in, p->fc_w, p->fc_b, N, F, V);
}

void imcap_decoder_step_forward(const imcap_config *cfg, const imcap_params *p, int V, int N, const int *tokens,
                                const float *h_prev, const float *c_prev, const float *a, size_t a_stride,
                                const float *p_att, size_t p_stride, const float *dropout_mask, imcap_step_cache *s) {
    step_train(cfg, p, V, N, tokens, h_prev, c_prev, a, a_stride, p_att, p_stride, dropout_mask, s);
}

void imcap_decoder_step_infer(const imcap_model *m, int N, const int *tokens, const float *h_prev,
                              const float *c_prev, const float *a, size_t a_stride, const float *p_att,
                              size_t p_stride, imcap_step_cache *s) {
    step_infer(&m->cfg, &m->p, &m->pack, m->vocab.n, N, tokens, h_prev, c_prev, a, a_stride, p_att, p_stride, NULL,
               NULL, s);
}

void imcap_decoder_step_infer_rows(const imcap_model *m, int N, const int *tokens, const float *h_prev,
                                   const float *c_prev, const float *const *a_rows, const float *const *p_rows,
                                   imcap_step_cache *s) {
    step_infer(&m->cfg, &m->p, &m->pack, m->vocab.n, N, tokens, h_prev, c_prev, NULL, 0, NULL, 0, a_rows, p_rows, s);
}

imcap_status imcap_step_scratch_alloc(imcap_step_scratch *w, const imcap_config *cfg, int N) {
    memset(w, 0, sizeof *w);
    int L = cfg->L, D = cfg->D, Hd = cfg->hidden_dim, A = cfg->attention_dim, E = cfg->embed_dim;
    w->cap = N;
    float **bufs[] = {&w->dh_fc, &w->dh, &w->dx, &w->dgate, &w->dctx, &w->dq, &w->lstm, &w->att};
    size_t sizes[] = {(size_t)imcap_config_fc_in(cfg) * N, (size_t)Hd * N, (size_t)(E + D) * N, (size_t)D * N, (size_t)D * N,
                      (size_t)A * N, (size_t)4 * Hd * N, (size_t)L};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++)
        if (!(*bufs[k] = imcap_aligned_alloc(sizes[k] * sizeof(float)))) {
            imcap_step_scratch_free(w);
            return IMCAP_E_NOMEM;
        }
    return IMCAP_OK;
}

void imcap_step_scratch_free(imcap_step_scratch *w) {
    free(w->dh_fc), free(w->dh), free(w->dx), free(w->dgate), free(w->dctx), free(w->dq), free(w->lstm), free(w->att);
    memset(w, 0, sizeof *w);
}

void imcap_decoder_step_backward(const imcap_config *cfg, const imcap_params *p, const imcap_params *g, int V, int N,
                                 const int *tokens, const float *h_prev, const float *c_prev, const float *a,
                                 size_t a_stride, const float *dropout_mask, const imcap_step_cache *s,
                                 const float *dlogits, const float *dh_next, const float *dc_next,
                                 const float *dalpha_extra, float *dh_prev, float *dc_prev, float *da, float *dp,
                                 size_t p_stride, imcap_step_scratch *w) {
    int L = cfg->L, D = cfg->D, Hd = cfg->hidden_dim, A = cfg->attention_dim, E = cfg->embed_dim, X = E + D;
    size_t NH = (size_t)N * Hd;
    /* fc, then dropout, then the gradient arriving from step t+1 */
    int F = imcap_config_fc_in(cfg);
    size_t NF = (size_t)N * F;
    memset(w->dh_fc, 0, NF * sizeof(float));
    const float *fc_in = dropout_mask ? s->h_fc : cfg->deep_output ? s->u : s->h;
    imcap_affine_backward(w->dh_fc, g->fc_w, g->fc_b, dlogits, fc_in, p->fc_w, N, F, V);
    memset(w->dx, 0, (size_t)N * X * sizeof(float));
    if (!cfg->deep_output) {
        for (size_t k = 0; k < NH; k++)
            w->dh[k] = w->dh_fc[k] * (dropout_mask ? dropout_mask[k] : 1.0f) + (dh_next ? dh_next[k] : 0.0f);
    } else {
        /* the dropout was on u; deep_output_backward adds into dh and into dx's E y and z */
        if (dropout_mask)
            for (size_t k = 0; k < NF; k++) w->dh_fc[k] *= dropout_mask[k];
        for (size_t k = 0; k < NH; k++) w->dh[k] = dh_next ? dh_next[k] : 0.0f;
        deep_output_backward(cfg, p, g, N, s->h, s->x, (size_t)X, s->u, w->dh_fc, w->dh, w->dx);
    }
    imcap_lstm_backward(w->dx, dh_prev, dc_prev, g->w_ih, g->b_ih, g->w_hh, g->b_hh, w->dh, dc_next, s->x, h_prev,
                        c_prev, s->gates, s->tanh_c, p->w_ih, p->w_hh, N, X, Hd, w->lstm);
    memset(w->dq, 0, (size_t)N * A * sizeof(float));
    for (int n = 0; n < N; n++) {
        const float *dx = w->dx + (size_t)n * X;
        float *demb = g->embedding + (size_t)tokens[n] * E;
        for (int e = 0; e < E; e++) demb[e] += dx[e];
        const float *gate = s->gate + (size_t)n * D, *ctx = s->ctx + (size_t)n * D;
        float *dgate = w->dgate + (size_t)n * D, *dctx = w->dctx + (size_t)n * D;
        for (int d = 0; d < D; d++) {
            float dz = dx[E + d];
            dctx[d] = dz * gate[d];
            dgate[d] = dz * ctx[d] * gate[d] * (1.0f - gate[d]); /* through the sigmoid */
        }
        imcap_attention_backward(da ? da + n * a_stride : NULL, dp ? dp + n * p_stride : NULL, w->dq + (size_t)n * A,
                                 g->full_att_w, g->full_att_b, dctx, dalpha_extra ? dalpha_extra + (size_t)n * L : NULL,
                                 a + n * a_stride, s->alpha + (size_t)n * L, s->tanh_pq + (size_t)n * L * A,
                                 p->full_att_w, L, A, D, w->att);
    }
    imcap_affine_backward(dh_prev, g->f_beta_w, g->f_beta_b, w->dgate, h_prev, p->f_beta_w, N, Hd, D);
    imcap_affine_backward(dh_prev, g->dec_att_w, g->dec_att_b, w->dq, h_prev, p->dec_att_w, N, Hd, A);
}
