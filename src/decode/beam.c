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

typedef struct {
    int n;
    double score;
    int finished;
    int *tok;
    float *lp, *att, *logits; /* logits only when traced */
} hist;

typedef struct {
    double score;
    long idx; /* parent_rank * V + token */
} cand;

static int better(const cand *a, const cand *b) { return a->score > b->score || (a->score == b->score && a->idx < b->idx); }

static int hist_alloc(hist *h, int T, int L, int V, int with_logits) {
    memset(h, 0, sizeof *h);
    h->tok = malloc((size_t)T * sizeof(int));
    h->lp = malloc((size_t)T * sizeof(float));
    h->att = malloc((size_t)T * L * sizeof(float));
    if (with_logits) h->logits = malloc((size_t)T * V * sizeof(float));
    return h->tok && h->lp && h->att && (!with_logits || h->logits);
}

static void hist_free(hist *h) { free(h->tok), free(h->lp), free(h->att), free(h->logits); }

static void hist_copy(hist *dst, const hist *src, int L, int V) {
    dst->n = src->n, dst->score = src->score, dst->finished = src->finished;
    memcpy(dst->tok, src->tok, (size_t)src->n * sizeof(int));
    memcpy(dst->lp, src->lp, (size_t)src->n * sizeof(float));
    memcpy(dst->att, src->att, (size_t)src->n * L * sizeof(float));
    if (src->logits) memcpy(dst->logits, src->logits, (size_t)src->n * V * sizeof(float));
}

/* Fills one public hypothesis from a history. */
static imcap_status export_hyp(const imcap_model *m, const hist *h, int L, imcap_hypothesis *out) {
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
        if (!(out->words[t] = strdup(w))) return IMCAP_E_NOMEM;
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

static double rank_key(const hist *h, const imcap_options *opt) {
    if (!opt->length_norm || h->n == 0) return h->score;
    return h->score / pow((double)h->n, (double)opt->length_alpha);
}

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

    /* live[0..nl) and next[] swap each step; done[] collects finished ones */
    int nslots = 2 * k, ndone_cap = 2 * k;
    hist *slots = calloc((size_t)nslots, sizeof *slots), *done = calloc((size_t)ndone_cap, sizeof *done);
    cand *best = malloc((size_t)k * sizeof *best);
    int *tokens = malloc((size_t)k * sizeof(int));
    float *hn = malloc((size_t)k * Hd * sizeof(float)), *cn = malloc((size_t)k * Hd * sizeof(float));
    imcap_status st = IMCAP_OK;
    int ok = slots && done && best && tokens && hn && cn;
    for (int i = 0; ok && i < nslots; i++) ok = hist_alloc(&slots[i], T, L, V, logits != NULL);
    for (int i = 0; ok && i < ndone_cap; i++) ok = hist_alloc(&done[i], T, L, V, logits != NULL);
    if (!ok) { st = imcap_fail(err, IMCAP_E_NOMEM, "out of memory for beam search"); goto out; }

    hist *live = slots, *next = slots + k;
    int nl = 1, ndone = 0, width = k;
    live[0].n = 0, live[0].score = 0.0;
    memcpy(ws->h, ws->init.h0, (size_t)Hd * sizeof(float));
    memcpy(ws->c, ws->init.c0, (size_t)Hd * sizeof(float));
    imcap_step_cache *s = &ws->step;

    for (int step = 0; step < T && width > 0; step++) {
        for (int r = 0; r < nl; r++) tokens[r] = live[r].n ? live[r].tok[live[r].n - 1] : IMCAP_TOK_START;
        imcap_decoder_step_forward(cfg, &m->p, V, nl, tokens, ws->h, ws->c, ws->init.a, 0, ws->init.p, 0, NULL, s);
        int nb = 0;
        for (int r = 0; r < nl; r++) {
            float *lp = ws->logp + (size_t)r * V;
            imcap_log_softmax_forward(lp, s->logits + (size_t)r * V, V);
            for (int v = 0; v < V; v++) {
                cand c = {live[r].score + (double)lp[v], (long)r * V + v};
                if (nb == width && !better(&c, &best[nb - 1])) continue;
                int pos = nb < width ? nb++ : nb - 1;
                while (pos > 0 && better(&c, &best[pos - 1])) best[pos] = best[pos - 1], pos--;
                best[pos] = c;
            }
        }
        int nn = 0, kept = nb;
        for (int j = 0; j < kept; j++) {
            int r = (int)(best[j].idx / V), v = (int)(best[j].idx % V);
            int fin = v == IMCAP_TOK_END;
            hist *child = fin ? &done[ndone++] : &next[nn];
            hist_copy(child, &live[r], L, V);
            int t = child->n++;
            child->tok[t] = v;
            child->lp[t] = ws->logp[(size_t)r * V + v];
            child->score = best[j].score;
            memcpy(child->att + (size_t)t * L, s->alpha + (size_t)r * L, (size_t)L * sizeof(float));
            if (logits) memcpy(child->logits + (size_t)t * V, s->logits + (size_t)r * V, (size_t)V * sizeof(float));
            if (fin) {
                child->finished = 1;
                width--;
            } else {
                memcpy(hn + (size_t)nn * Hd, s->h + (size_t)r * Hd, (size_t)Hd * sizeof(float));
                memcpy(cn + (size_t)nn * Hd, s->c + (size_t)r * Hd, (size_t)Hd * sizeof(float));
                nn++;
            }
        }
        memcpy(ws->h, hn, (size_t)nn * Hd * sizeof(float));
        memcpy(ws->c, cn, (size_t)nn * Hd * sizeof(float));
        hist *tmp = live;
        live = next, next = tmp;
        nl = nn;
    }
    for (int r = 0; r < nl; r++) { /* unfinished: join without <end> */
        hist_copy(&done[ndone], &live[r], L, V);
        done[ndone++].finished = 0;
    }

    /* rank: best key first, earlier finish on ties (a stable insertion sort) */
    int *order = malloc((size_t)ndone * sizeof(int));
    imcap_result *res = calloc(1, sizeof *res);
    if (!order || !res) {
        free(order), free(res);
        st = imcap_fail(err, IMCAP_E_NOMEM, "out of memory");
        goto out;
    }
    for (int i = 0; i < ndone; i++) {
        int j = i;
        while (j > 0 && rank_key(&done[i], opt) > rank_key(&done[order[j - 1]], opt)) order[j] = order[j - 1], j--;
        order[j] = i;
    }
    res->grid_h = cfg->H, res->grid_w = cfg->W;
    res->hyps = calloc((size_t)ndone, sizeof *res->hyps);
    if (!res->hyps) st = IMCAP_E_NOMEM;
    for (int i = 0; i < ndone && st == IMCAP_OK; i++) {
        res->n_hyps = i + 1;
        st = export_hyp(m, &done[order[i]], L, &res->hyps[i]);
    }
    if (st == IMCAP_OK && logits) {
        const hist *b = &done[order[0]];
        *logits = malloc((size_t)(b->n ? b->n : 1) * V * sizeof(float));
        if (!*logits) st = IMCAP_E_NOMEM;
        else memcpy(*logits, b->logits, (size_t)b->n * V * sizeof(float));
    }
    free(order);
    if (st != IMCAP_OK) {
        imcap_result_free(res);
        st = imcap_fail(err, st, "out of memory while building the result");
        goto out;
    }
    *out = res;
out:
    for (int i = 0; slots && i < nslots; i++) hist_free(&slots[i]);
    for (int i = 0; done && i < ndone_cap; i++) hist_free(&done[i]);
    free(slots), free(done), free(best), free(tokens), free(hn), free(cn);
    return st;
}
