/* backward.c — the loss and the whole model's backward pass for a set of
 * examples handled by one thread: encoder per example, decoder batched over
 * the examples with teacher forcing. Examples are processed longest first so
 * that at step t the rows still running are a prefix (as PyTorch's
 * pack_padded_sequence does): padding costs nothing and needs no mask. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "image/image.h"
#include "kernels/kernels.h"
#include "train.h"

struct imcap_trainer_worker {
    int cap, T;                  /* examples, steps */
    imcap_encoder_acts enc;      /* the cap images as one batch */
    imcap_decoder_init *init;    /* [cap] views into the contiguous arrays below */
    float *a, *p, *h0, *c0;      /* [cap,L,D], [cap,L,A], [cap,Hd] x 2 */
    float *pt;                   /* [A,L] the preparation's scratch */
    float *da, *dp, *dh0, *dc0, *dfeat, *prep_scratch;
    imcap_step_cache *steps;     /* [T] */
    imcap_step_scratch scratch;
    float *dh[2], *dc[2];        /* [cap,Hd] ping-pong */
    float *dlogits;              /* [cap,V] */
    float *lse;                  /* [T,cap] log-sum-exp of each row's logits, from the loss */
    float *dalpha, *alpha_sum;   /* [cap,L] */
    float *dalpha_t;             /* [cap,L] a step's: dalpha plus the attention targets' */
    float *masks;                /* [T,cap,F] dropout of fc's input (F = imcap_config_fc_in) */
    int *tokens;                 /* [cap] inputs of the current step */
    int *order;                  /* [cap] examples, longest first */
    uint8_t *cells;              /* [L] the cells inside a word's target objects */
    int *active;                 /* [T] rows still running at step t */
    float *grads;                /* imcap_trained_floats */
    int frozen;                  /* features arrive with the examples; no encoder */
    float *feat;                 /* frozen: [cap,D,L] the examples' features, widened */
    imcap_params g;
};

size_t imcap_trained_floats(const imcap_model *m, int frozen) {
    /* the block in name order: decoder.*, encoder.*, then stats.* (never trained) */
    size_t stats = imcap_param_table_prefix_offset(&m->tab, "stats.");
    if (!frozen) return stats;
    size_t enc = imcap_param_table_prefix_offset(&m->tab, "encoder."); /* total when the encoder has no weights */
    return enc < stats ? enc : stats;
}

imcap_trainer_worker *imcap_worker_new(const imcap_model *m, int cap, int frozen) {
    const imcap_config *c = &m->cfg;
    int L = c->L, D = c->D, A = c->attention_dim, Hd = c->hidden_dim, V = m->vocab.n, T = c->max_length + 1;
    imcap_trainer_worker *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->cap = cap, w->T = T, w->frozen = frozen;
    w->init = calloc((size_t)cap, sizeof *w->init);
    w->steps = calloc((size_t)T, sizeof *w->steps);
    int ok = w->init && w->steps &&
             (frozen ? (w->feat = imcap_aligned_alloc((size_t)cap * D * L * sizeof(float))) != NULL
                     : imcap_encoder_acts_init(&w->enc, c, cap, 1) == IMCAP_OK);
    for (int t = 0; ok && t < T; t++) ok = imcap_step_cache_alloc(&w->steps[t], c, V, cap) == IMCAP_OK;
    ok = ok && imcap_step_scratch_alloc(&w->scratch, c, cap) == IMCAP_OK;
    float **bufs[] = {&w->a, &w->p, &w->h0, &w->c0, &w->da, &w->dp, &w->dh0, &w->dc0, &w->dfeat, &w->prep_scratch,
                      &w->dh[0], &w->dh[1], &w->dc[0], &w->dc[1], &w->dlogits, &w->lse, &w->dalpha,
                      &w->alpha_sum, &w->masks, &w->grads, &w->dalpha_t};
    size_t sizes[] = {(size_t)cap * L * D, (size_t)cap * L * A, (size_t)cap * Hd, (size_t)cap * Hd,
                      (size_t)cap * L * D, (size_t)cap * L * A, (size_t)cap * Hd, (size_t)cap * Hd, (size_t)cap * D * L,
                      (size_t)D + Hd, (size_t)cap * Hd, (size_t)cap * Hd, (size_t)cap * Hd, (size_t)cap * Hd,
                      (size_t)cap * V, (size_t)T * cap, (size_t)cap * L, (size_t)cap * L, (size_t)T * cap * imcap_config_fc_in(c),
                      imcap_trained_floats(m, frozen), (size_t)cap * L};
    for (size_t k = 0; ok && k < sizeof sizes / sizeof sizes[0]; k++)
        ok = (*bufs[k] = imcap_aligned_alloc(sizes[k] * sizeof(float))) != NULL;
    w->tokens = calloc((size_t)cap, sizeof(int));
    w->order = calloc((size_t)cap, sizeof(int));
    w->cells = calloc((size_t)L, 1);
    w->active = calloc((size_t)T, sizeof(int));
    if (!ok || !w->tokens || !w->order || !w->active || !w->cells) {
        imcap_worker_free(w);
        return NULL;
    }
    if (!(w->pt = imcap_aligned_alloc((size_t)L * A * sizeof(float)))) {
        imcap_worker_free(w);
        return NULL;
    }
    for (int e = 0; e < cap; e++) {
        imcap_decoder_init *d = &w->init[e];
        d->a = w->a + (size_t)e * L * D, d->p = w->p + (size_t)e * L * A;
        d->h0 = w->h0 + (size_t)e * Hd, d->c0 = w->c0 + (size_t)e * Hd;
        d->pt = w->pt; /* scratch, shared: the examples are prepared one after the other */
        if (!(d->abar = imcap_aligned_alloc((size_t)D * sizeof(float)))) {
            imcap_worker_free(w);
            return NULL;
        }
    }
    imcap_params_point(&w->g, c, &m->tab, w->grads);
    return w;
}

void imcap_worker_free(imcap_trainer_worker *w) {
    if (!w) return;
    imcap_encoder_acts_free(&w->enc);
    for (int t = 0; w->steps && t < w->T; t++) imcap_step_cache_free(&w->steps[t]);
    imcap_step_scratch_free(&w->scratch);
    float *bufs[] = {w->a, w->p, w->h0, w->c0, w->da, w->dp, w->dh0, w->dc0, w->dfeat, w->prep_scratch,
                     w->dh[0], w->dh[1], w->dc[0], w->dc[1], w->dlogits, w->lse, w->dalpha, w->alpha_sum,
                     w->masks, w->grads, w->dalpha_t};
    for (size_t k = 0; k < sizeof bufs / sizeof bufs[0]; k++) free(bufs[k]);
    if (w->init)
        for (int e = 0; e < w->cap; e++) free(w->init[e].abar);
    free(w->pt);
    free(w->feat);
    free(w->init), free(w->steps), free(w->tokens), free(w->order), free(w->active), free(w->cells);
    free(w);
}

float *imcap_worker_grads(imcap_trainer_worker *w, imcap_params *views) {
    if (views) *views = w->g;
    return w->grads;
}

void imcap_worker_target(imcap_trainer_worker *w, const imcap_model *m, float *block) {
    imcap_params_point(&w->g, &m->cfg, &m->tab, block ? block : w->grads);
}

/* The attention target of an example at step t: how much of its attention
 * lies inside the objects its target word names (in_mask[i] = 1 for those
 * cells), or -1 when the word has no target or a zero weight; *lambda its
 * weight. */
static double target_mass(const imcap_example *e, int t, const imcap_loss_options *opt, const float *alpha, int gh,
                          int gw, uint8_t *in_mask, float *lambda) {
    if (!e->att_objects || !e->scene || !e->att_objects[t]) return -1;
    unsigned kind = e->att_objects[t];
    *lambda = kind & IMCAP_ATT_RELATION ? opt->att_sup_rel : kind & IMCAP_ATT_DESC ? opt->att_sup_desc : opt->att_sup;
    if (*lambda == 0) return -1;
    unsigned objects = e->att_objects[t] & 0xffu;
    double s = 0;
    for (int i = 0; i < gh * gw; i++) {
        in_mask[i] = (uint8_t)imcap_scene_cell_in(e->scene, objects, i, gh, gw);
        if (in_mask[i]) s += alpha[i];
    }
    return s;
}

/* The cross-entropy's weight at step t: --rel-weight's at a relation
 * phrase's words and its partner's, where the choice of partner and
 * relation is made; 1 elsewhere. */
static float ce_weight(const imcap_example *e, int t, const imcap_loss_options *opt) {
    if (!e->att_objects || opt->rel_weight <= 0 || opt->rel_weight == 1) return 1.0f;
    return e->att_objects[t] & (IMCAP_ATT_RELATION | IMCAP_ATT_PARTNER) ? opt->rel_weight : 1.0f;
}

/* a floor under the attention inside the targets, so -log stays finite */
#define TARGET_MASS_MIN 1e-6

/* splitmix-style hash: a mask depends only on (seed, step, example, t). */

void imcap_worker_run(imcap_trainer_worker *w, const imcap_model *m, const imcap_example *ex, int n,
                      const imcap_loss_options *opt, double token_norm, double example_norm, int no_grad,
                      imcap_loss_stats *stats) {
    const imcap_config *c = &m->cfg;
    const imcap_params *P = &m->p;
    int L = c->L, D = c->D, A = c->attention_dim, Hd = c->hidden_dim, V = m->vocab.n, S = c->image_size;
    int Fd = imcap_config_fc_in(c);
    /* longest first, ties by position: deterministic */
    for (int i = 0; i < n; i++) {
        int j = i;
        while (j > 0 && ex[w->order[j - 1]].length < ex[i].length) w->order[j] = w->order[j - 1], j--;
        w->order[j] = i;
    }
    int T = ex[w->order[0]].length;
    if (T > w->T) T = w->T;

    const float *feat;
    if (w->frozen) {
        for (int r = 0; r < n; r++) {
            const uint16_t *h = ex[w->order[r]].feat;
            float *f = w->feat + (size_t)r * D * L;
            for (size_t k = 0; k < (size_t)D * L; k++) f[k] = imcap_half_to_float(h[k]);
        }
        feat = w->feat;
    } else {
        for (int r = 0; r < n; r++)
            imcap_normalise(ex[w->order[r]].rgb, S, c->mean, c->std, w->enc.act[0] + (size_t)r * 3 * S * S);
        imcap_encoder_forward_n(c, P, NULL, &w->enc, n);
        feat = imcap_encoder_output(c, &w->enc);
    }
    for (int r = 0; r < n; r++) imcap_decoder_prepare_forward(c, P, NULL, feat + (size_t)r * D * L, &w->init[r]);
    int use_dropout = opt->dropout > 0 && !no_grad;
    float keep_scale = use_dropout ? 1.0f / (1.0f - opt->dropout) : 1.0f;
    memset(w->alpha_sum, 0, (size_t)n * L * sizeof(float));
    int *active = w->active;
    for (int t = 0; t < T; t++) {
        int N = 0;
        while (N < n && ex[w->order[N]].length > t) N++;
        active[t] = N;
        for (int r = 0; r < N; r++) w->tokens[r] = t == 0 ? IMCAP_TOK_START : ex[w->order[r]].tokens[t - 1];
        const float *hp = t == 0 ? w->h0 : w->steps[t - 1].h, *cp = t == 0 ? w->c0 : w->steps[t - 1].c;
        float *mask = NULL;
        if (use_dropout) {
            mask = w->masks + (size_t)t * w->cap * Fd;
            for (int r = 0; r < N; r++) {
                imcap_rng rng;
                imcap_rng_seed(&rng, imcap_mix64(opt->seed ^ imcap_mix64((uint64_t)opt->step * 1000003ULL + ex[w->order[r]].id)) ^ (uint64_t)t);
                for (int j = 0; j < Fd; j++)
                    mask[(size_t)r * Fd + j] = imcap_rng_uniform(&rng) < opt->dropout ? 0.0f : keep_scale;
            }
        }
        imcap_decoder_step_forward(c, P, V, N, w->tokens, hp, cp, w->a, (size_t)L * D, w->p, (size_t)L * A, mask,
                                   &w->steps[t]);
        for (int r = 0; r < N; r++) {
            const float *al = w->steps[t].alpha + (size_t)r * L;
            for (int i = 0; i < L; i++) w->alpha_sum[(size_t)r * L + i] += al[i];
        }
    }
    /* the loss */
    for (int r = 0; r < n; r++) {
        double reg = 0;
        for (int i = 0; i < L; i++) {
            double d = 1.0 - w->alpha_sum[(size_t)r * L + i];
            reg += d * d;
            w->dalpha[(size_t)r * L + i] = (float)(-2.0 * opt->att_reg * d / example_norm);
        }
        stats->reg_sum += reg;
    }
    stats->n_examples += n;
    for (int t = 0; t < T; t++)
        for (int r = 0; r < active[t]; r++) {
            const float *lg = w->steps[t].logits + (size_t)r * V;
            int y = ex[w->order[r]].tokens[t], best = 0;
            float mx = lg[0];
            for (int v = 1; v < V; v++)
                if (lg[v] > mx) mx = lg[v], best = v;
            double s = 0;
            for (int v = 0; v < V; v++) s += exp((double)(lg[v] - mx));
            double lse = mx + log(s);
            w->lse[(size_t)t * w->cap + r] = (float)lse; /* the backward's softmax reuses it */
            double ce = -(lg[y] - lse);
            stats->ce_sum += ce;
            stats->ce_extra_sum += (ce_weight(&ex[w->order[r]], t, opt) - 1.0) * ce;
            stats->n_tokens++;
            stats->correct += best == y;
            float lambda;
            double in = target_mass(&ex[w->order[r]], t, opt, w->steps[t].alpha + (size_t)r * L, c->H, c->W, w->cells,
                                    &lambda);
            if (in >= 0) stats->sup_sum += lambda * -log(in > TARGET_MASS_MIN ? in : TARGET_MASS_MIN), stats->n_sup++;
        }
    if (no_grad) {
        return;
    }

    /* backward through the decoder steps, last first; a frozen encoder needs
     * no gradient at the annotations */
    float *da = w->frozen ? NULL : w->da;
    if (da) memset(da, 0, (size_t)n * L * D * sizeof(float));
    memset(w->dp, 0, (size_t)n * L * A * sizeof(float));
    float *dh_next = NULL, *dc_next = NULL;
    int cur = 0;
    for (int t = T - 1; t >= 0; t--) {
        int N = active[t];
        const imcap_step_cache *s = &w->steps[t];
        for (int r = 0; r < N; r++) {
            float *dl = w->dlogits + (size_t)r * V;
            const float *lg = s->logits + (size_t)r * V;
            float lse = w->lse[(size_t)t * w->cap + r];
            float inv = (float)(ce_weight(&ex[w->order[r]], t, opt) / token_norm);
            for (int v = 0; v < V; v++) dl[v] = expf(lg[v] - lse) * inv; /* weight x softmax / token_norm */
            dl[ex[w->order[r]].tokens[t]] -= inv;
            w->tokens[r] = t == 0 ? IMCAP_TOK_START : ex[w->order[r]].tokens[t - 1];
        }
        /* the attention targets: d(-log s)/d alpha_i = -1 / s inside them */
        const float *dalpha = opt->att_reg != 0 ? w->dalpha : NULL;
        for (int r = 0; r < N; r++) {
            const float *al = s->alpha + (size_t)r * L;
            float lambda;
            double in = target_mass(&ex[w->order[r]], t, opt, al, c->H, c->W, w->cells, &lambda);
            if (in < 0) continue;
            if (dalpha != w->dalpha_t) {
                if (dalpha) memcpy(w->dalpha_t, dalpha, (size_t)N * L * sizeof(float));
                else memset(w->dalpha_t, 0, (size_t)N * L * sizeof(float));
                dalpha = w->dalpha_t;
            }
            float g = in > TARGET_MASS_MIN ? (float)(-lambda / (in * token_norm)) : 0.0f;
            for (int i = 0; i < L; i++)
                if (w->cells[i]) w->dalpha_t[(size_t)r * L + i] += g;
        }
        const float *hp = t == 0 ? w->h0 : w->steps[t - 1].h, *cp = t == 0 ? w->c0 : w->steps[t - 1].c;
        float *dhp = t == 0 ? w->dh0 : w->dh[cur], *dcp = t == 0 ? w->dc0 : w->dc[cur];
        memset(dhp, 0, (size_t)n * Hd * sizeof(float));
        memset(dcp, 0, (size_t)n * Hd * sizeof(float));
        imcap_decoder_step_backward(c, P, &w->g, V, N, w->tokens, hp, cp, w->a, (size_t)L * D,
                                    use_dropout ? w->masks + (size_t)t * w->cap * Fd : NULL, s, w->dlogits, dh_next,
                                    dc_next, dalpha, dhp, dcp, da, w->dp,
                                    (size_t)L * A, &w->scratch);
        dh_next = dhp, dc_next = dcp;
        cur ^= 1;
    }
    /* through the initial state and encoder_att into the encoder */
    for (int r = 0; r < n; r++)
        imcap_decoder_prepare_backward(c, P, &w->g, &w->init[r], da ? da + (size_t)r * L * D : NULL,
                                       w->dp + (size_t)r * L * A, w->dh0 + (size_t)r * Hd, w->dc0 + (size_t)r * Hd,
                                       da ? w->dfeat + (size_t)r * D * L : NULL, w->prep_scratch);
    if (!w->frozen) imcap_encoder_backward_n(c, P, &w->g, &w->enc, w->dfeat, n);
}
