/* beam.c — the spec's beam search (Decoding section); greedy is width 1.
 *
 * Scores are sums of log_softmax(logits)[token] accumulated in double.
 * Each step expands every live hypothesis by all V tokens and keeps the best
 * `width` candidates, higher score first, ties to the lower
 * parent_rank * V + token. A kept <end> finishes its hypothesis (the <end>
 * included) and narrows the beam by one. After max_length steps the live
 * hypotheses join the finished ones without <end>. The answer is the
 * finished hypothesis with the highest score, a tie going to the one that
 * finished first. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "kernels/kernels.h"
#include "util/util.h"

static int better(const imcap_beam_cand *a, const imcap_beam_cand *b) { return a->score > b->score || (a->score == b->score && a->idx < b->idx); }

static int hist_alloc(imcap_beam_hist *h, int T, int L, int V, int with_logits) {
    memset(h, 0, sizeof *h);
    h->tok = malloc((size_t)T * sizeof(int));
    h->lp = malloc((size_t)T * sizeof(float));
    h->att = malloc((size_t)T * L * sizeof(float));
    if (with_logits) h->logits = malloc((size_t)T * V * sizeof(float));
    return h->tok && h->lp && h->att && (!with_logits || h->logits);
}

static void hist_free(imcap_beam_hist *h) { free(h->tok), free(h->lp), free(h->att), free(h->logits); }

static void hist_copy(imcap_beam_hist *dst, const imcap_beam_hist *src, int L, int V) {
    dst->n = src->n, dst->score = src->score, dst->finished = src->finished;
    memcpy(dst->tok, src->tok, (size_t)src->n * sizeof(int));
    memcpy(dst->lp, src->lp, (size_t)src->n * sizeof(float));
    memcpy(dst->att, src->att, (size_t)src->n * L * sizeof(float));
    if (src->logits) memcpy(dst->logits, src->logits, (size_t)src->n * V * sizeof(float));
}

/* Fills one public hypothesis from a history. */
static imcap_status export_hyp(const imcap_model *m, const imcap_beam_hist *h, int L, imcap_hypothesis *out) {
    memset(out, 0, sizeof *out);
    int n = h->n;
    out->n_tokens = n;
    out->score = h->score;
    out->finished = h->finished;
    out->tokens = malloc((size_t)(n ? n : 1) * sizeof(int));
    out->logprobs = malloc((size_t)(n ? n : 1) * sizeof(float));
    out->attention = malloc((size_t)(n ? n : 1) * L * sizeof(float));
    out->words = calloc((size_t)(n ? n : 1), sizeof(char *));
    if (!out->tokens || !out->logprobs || !out->attention || !out->words) return IMCAP_E_NOMEM;
    memcpy(out->tokens, h->tok, (size_t)n * sizeof(int));
    memcpy(out->logprobs, h->lp, (size_t)n * sizeof(float));
    memcpy(out->attention, h->att, (size_t)n * L * sizeof(float));
    imcap_buf text = {0};
    imcap_buf_append(&text, "", 0);
    int nw = (n > 0 && h->tok[n - 1] == IMCAP_TOK_END) ? n - 1 : n;
    for (int t = 0; t < n; t++) {
        const char *w = imcap_model_word(m, h->tok[t]);
        if (!(out->words[t] = strdup(w))) {
            imcap_buf_free(&text);
            return IMCAP_E_NOMEM;
        }
        if (t < nw) {
            if (t) imcap_buf_append(&text, " ", 1);
            imcap_buf_append(&text, w, strlen(w));
        }
    }
    if (text.oom) {
        imcap_buf_free(&text);
        return IMCAP_E_NOMEM;
    }
    out->text = text.s;
    return IMCAP_OK;
}

void imcap_result_free(imcap_result *r) {
    if (!r) return;
    for (int i = 0; i < r->n_hyps; i++) {
        imcap_hypothesis *h = &r->hyps[i];
        for (int t = 0; t < h->n_tokens && h->words; t++) free(h->words[t]);
        free(h->words), free(h->tokens), free(h->logprobs), free(h->attention), free(h->text);
    }
    free(r->hyps);
    free(r);
}

static double rank_key(const imcap_beam_hist *h, const imcap_options *opt) {
    if (!opt->length_norm || h->n == 0) return h->score;
    return h->score / pow((double)h->n, (double)opt->length_alpha);
}

/* ---------------------------------------------------------------- one image's beam */

void imcap_beam_free(imcap_beam *b) {
    for (int i = 0; b->slots && i < 2 * b->k; i++) hist_free(&b->slots[i]);
    for (int i = 0; b->done && i < 2 * b->k; i++) hist_free(&b->done[i]);
    free(b->slots), free(b->done), free(b->best);
    memset(b, 0, sizeof *b);
}

imcap_status imcap_beam_init(imcap_beam *b, int k, int T, int L, int V, int with_logits) {
    memset(b, 0, sizeof *b);
    b->k = k, b->T = T, b->L = L, b->V = V;
    /* live[0..nl) and next[] swap each step; done[] collects finished ones */
    b->slots = calloc((size_t)2 * k, sizeof *b->slots);
    b->done = calloc((size_t)2 * k, sizeof *b->done);
    b->best = malloc((size_t)k * sizeof *b->best);
    int ok = b->slots && b->done && b->best;
    for (int i = 0; ok && i < 2 * k; i++) ok = hist_alloc(&b->slots[i], T, L, V, with_logits);
    for (int i = 0; ok && i < 2 * k; i++) ok = hist_alloc(&b->done[i], T, L, V, with_logits);
    if (!ok) {
        imcap_beam_free(b);
        return IMCAP_E_NOMEM;
    }
    imcap_beam_reset(b);
    return IMCAP_OK;
}

void imcap_beam_reset(imcap_beam *b) {
    b->live = b->slots, b->next = b->slots + b->k;
    b->nl = 1, b->ndone = 0, b->width = b->k, b->step = 0;
    b->live[0].n = 0, b->live[0].score = 0.0, b->live[0].finished = 0;
}

int imcap_beam_finished(const imcap_beam *b) { return b->step >= b->T || b->width <= 0 || b->nl == 0; }

int imcap_beam_tokens(const imcap_beam *b, int *tokens) {
    if (imcap_beam_finished(b)) return 0;
    for (int r = 0; r < b->nl; r++) tokens[r] = b->live[r].n ? b->live[r].tok[b->live[r].n - 1] : IMCAP_TOK_START;
    return b->nl;
}

int imcap_beam_advance(imcap_beam *b, const float *logits, const float *alpha, const float *h, const float *c, int Hd,
                       float *logp, float *h_out, float *c_out) {
    int V = b->V, L = b->L, nl = b->nl, width = b->width, nb = 0;
    imcap_beam_cand *best = b->best;
    for (int r = 0; r < nl; r++) {
        float *lp = logp + (size_t)r * V;
        imcap_log_softmax_forward(lp, logits + (size_t)r * V, V);
        for (int v = 0; v < V; v++) {
            imcap_beam_cand cd = {b->live[r].score + (double)lp[v], (long)r * V + v};
            if (nb == width && !better(&cd, &best[nb - 1])) continue;
            int pos = nb < width ? nb++ : nb - 1;
            while (pos > 0 && better(&cd, &best[pos - 1])) best[pos] = best[pos - 1], pos--;
            best[pos] = cd;
        }
    }
    int nn = 0;
    for (int j = 0; j < nb; j++) {
        int r = (int)(best[j].idx / V), v = (int)(best[j].idx % V);
        int fin = v == IMCAP_TOK_END;
        imcap_beam_hist *child = fin ? &b->done[b->ndone++] : &b->next[nn];
        hist_copy(child, &b->live[r], L, V);
        int t = child->n++;
        child->tok[t] = v;
        child->lp[t] = logp[(size_t)r * V + v];
        child->score = best[j].score;
        memcpy(child->att + (size_t)t * L, alpha + (size_t)r * L, (size_t)L * sizeof(float));
        if (child->logits) memcpy(child->logits + (size_t)t * V, logits + (size_t)r * V, (size_t)V * sizeof(float));
        if (fin) {
            child->finished = 1;
            b->width--;
        } else {
            memcpy(h_out + (size_t)nn * Hd, h + (size_t)r * Hd, (size_t)Hd * sizeof(float));
            memcpy(c_out + (size_t)nn * Hd, c + (size_t)r * Hd, (size_t)Hd * sizeof(float));
            nn++;
        }
    }
    imcap_beam_hist *tmp = b->live;
    b->live = b->next, b->next = tmp;
    b->nl = nn;
    b->step++;
    return nn;
}

imcap_status imcap_beam_result(imcap_beam *b, const imcap_model *m, const imcap_options *opt, imcap_result **out,
                               float **logits, imcap_error *err) {
    const imcap_config *cfg = &m->cfg;
    int L = b->L, V = b->V, ndone;
    imcap_status st = IMCAP_OK;
    *out = NULL;
    if (logits) *logits = NULL;
    for (int r = 0; r < b->nl; r++) { /* unfinished: join without <end> */
        hist_copy(&b->done[b->ndone], &b->live[r], L, V);
        b->done[b->ndone++].finished = 0;
    }
    b->nl = 0;
    ndone = b->ndone;
    imcap_beam_hist *done = b->done;

    /* rank: best key first, earlier finish on ties (a stable insertion sort) */
    int *order = malloc((size_t)(ndone ? ndone : 1) * sizeof(int));
    imcap_result *res = calloc(1, sizeof *res);
    if (!order || !res) {
        free(order), free(res);
        return imcap_fail(err, IMCAP_E_NOMEM, "out of memory");
    }
    for (int i = 0; i < ndone; i++) {
        int j = i;
        while (j > 0 && rank_key(&done[i], opt) > rank_key(&done[order[j - 1]], opt)) order[j] = order[j - 1], j--;
        order[j] = i;
    }
    res->grid_h = cfg->H, res->grid_w = cfg->W;
    imcap_result_set_domain(res, NAN); /* the caller knows the image's */
    res->hyps = calloc((size_t)(ndone ? ndone : 1), sizeof *res->hyps);
    if (!res->hyps) st = IMCAP_E_NOMEM;
    for (int i = 0; i < ndone && st == IMCAP_OK; i++) {
        res->n_hyps = i + 1;
        st = export_hyp(m, &done[order[i]], L, &res->hyps[i]);
    }
    if (st == IMCAP_OK && logits) {
        const imcap_beam_hist *h = &done[order[0]];
        *logits = malloc((size_t)(h->n ? h->n : 1) * V * sizeof(float));
        if (!*logits) st = IMCAP_E_NOMEM;
        else if (h->logits) memcpy(*logits, h->logits, (size_t)h->n * V * sizeof(float));
    }
    free(order);
    if (st != IMCAP_OK) {
        imcap_result_free(res);
        if (logits) free(*logits), *logits = NULL;
        return imcap_fail(err, st, "out of memory while building the result");
    }
    *out = res;
    return IMCAP_OK;
}

/* ---------------------------------------------------------------- one image, start to end */

imcap_status imcap_beam_search(imcap_workspace *ws, const imcap_options *opt, imcap_result **out, float **logits,
                               imcap_error *err) {
    const imcap_model *m = ws->model;
    const imcap_config *cfg = &m->cfg;
    int k = opt->beam, V = m->vocab.n, L = cfg->L, Hd = cfg->hidden_dim;
    int T = opt->max_length > 0 ? opt->max_length : cfg->max_length;
    *out = NULL;
    if (logits) *logits = NULL;
    if (k < 1) return imcap_fail(err, IMCAP_E_ARG, "beam width must be at least 1 (got %d)", k);
    if (imcap_workspace_reserve(ws, k) != IMCAP_OK) return imcap_fail(err, IMCAP_E_NOMEM, "out of memory for beam %d", k);
    imcap_beam b;
    if (imcap_beam_init(&b, k, T, L, V, logits != NULL) != IMCAP_OK)
        return imcap_fail(err, IMCAP_E_NOMEM, "out of memory for beam search");
    int *tokens = ws->tokens;
    memcpy(ws->h, ws->init.h0, (size_t)Hd * sizeof(float));
    memcpy(ws->c, ws->init.c0, (size_t)Hd * sizeof(float));
    imcap_step_cache *s = &ws->step;
    int nl;
    while ((nl = imcap_beam_tokens(&b, tokens)) > 0) {
        imcap_decoder_step_infer(m, nl, tokens, ws->h, ws->c, ws->init.a, 0, ws->init.p, 0, s);
        imcap_beam_advance(&b, s->logits, s->alpha, s->h, s->c, Hd, ws->logp, ws->h, ws->c);
    }
    imcap_status st = imcap_beam_result(&b, m, opt, out, logits, err);
    imcap_beam_free(&b);
    return st;
}
