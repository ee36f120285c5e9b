/* naive.c — see naive.h. Everything in double, one plain loop per formula
 * of docs/model-format.md; speed is irrelevant (tiny models only). */
#include "naive.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int why_set(char *why, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, n, fmt, ap);
    va_end(ap);
    return -1;
}

/* The tensor called name, checked against the shape the spec implies. */
static const float *tensor(const imcap_model *m, const char *name, int ndim, const int *shape, char *why, size_t wn,
                           int *bad) {
    for (int i = 0; i < m->tab.n; i++) {
        const imcap_tensor_info *t = &m->tab.t[i];
        if (strcmp(t->name, name)) continue;
        size_t count = 1;
        int ok = t->ndim == ndim;
        for (int d = 0; d < ndim && ok; d++) ok = t->shape[d] == shape[d], count *= (size_t)shape[d];
        if (!ok || t->count != count || t->offset + count > m->tab.total) {
            *bad = why_set(why, wn, "tensor %s has the wrong shape", name);
            return NULL;
        }
        return m->block + t->offset;
    }
    *bad = why_set(why, wn, "tensor %s is missing", name);
    return NULL;
}

static int get_int(const cJSON *o, const char *k, int *v) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(j)) return -1;
    *v = (int)j->valuedouble;
    return 0;
}

int ref_model_init(ref_model *r, const imcap_model *m, char *why, size_t wn) {
    memset(r, 0, sizeof *r);
    const char *text = imcap_model_config_json(m);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    if (!j) return why_set(why, wn, "config JSON unreadable");
    int bad = 0;
    if (get_int(j, "image_size", &r->S) || get_int(j, "embed_dim", &r->E) || get_int(j, "hidden_dim", &r->Hd) ||
        get_int(j, "attention_dim", &r->A) || get_int(j, "max_length", &r->max_length))
        bad = why_set(why, wn, "config lacks a size");
    const cJSON *mean = cJSON_GetObjectItemCaseSensitive(j, "mean"), *std = cJSON_GetObjectItemCaseSensitive(j, "std");
    for (int c = 0; c < 3 && !bad; c++) {
        const cJSON *a = cJSON_GetArrayItem(mean, c), *b = cJSON_GetArrayItem(std, c);
        if (!cJSON_IsNumber(a) || !cJSON_IsNumber(b)) bad = why_set(why, wn, "config mean/std");
        else r->mean[c] = a->valuedouble, r->std[c] = b->valuedouble;
    }
    const cJSON *out = cJSON_GetObjectItemCaseSensitive(j, "output");
    r->deep = cJSON_IsString(out) && !strcmp(out->valuestring, "deep");
    const cJSON *enc = cJSON_GetObjectItemCaseSensitive(j, "encoder");
    int C = 3, H = r->S, W = r->S;
    r->n_layers = cJSON_GetArraySize(enc);
    if (r->n_layers > REF_MAX_LAYERS) bad = why_set(why, wn, "too many layers for the reference");
    for (int i = 0; i < r->n_layers && !bad; i++) {
        const cJSON *lj = cJSON_GetArrayItem(enc, i);
        const cJSON *ty = cJSON_GetObjectItemCaseSensitive(lj, "type");
        ref_layer *l = &r->layers[i];
        l->in_c = C, l->in_h = H, l->in_w = W;
        if (!cJSON_IsString(ty)) { bad = why_set(why, wn, "layer %d type", i); break; }
        if (!strcmp(ty->valuestring, "conv")) {
            l->type = REF_CONV;
            if (get_int(lj, "out", &l->out) || get_int(lj, "kernel", &l->k) || get_int(lj, "stride", &l->s) ||
                get_int(lj, "pad", &l->p)) { bad = why_set(why, wn, "layer %d fields", i); break; }
            /* output size of a zero-padded convolution, floored */
            C = l->out, H = (H + 2 * l->p - l->k) / l->s + 1, W = (W + 2 * l->p - l->k) / l->s + 1;
            char name[64];
            int ws[4] = {l->out, l->in_c, l->k, l->k};
            snprintf(name, sizeof name, "encoder.%d.weight", i);
            l->w = tensor(m, name, 4, ws, why, wn, &bad);
            snprintf(name, sizeof name, "encoder.%d.bias", i);
            l->b = tensor(m, name, 1, ws, why, wn, &bad);
        } else if (!strcmp(ty->valuestring, "relu")) {
            l->type = REF_RELU;
        } else if (!strcmp(ty->valuestring, "maxpool")) {
            l->type = REF_MAXPOOL;
            if (get_int(lj, "kernel", &l->k) || get_int(lj, "stride", &l->s)) {
                bad = why_set(why, wn, "layer %d fields", i);
                break;
            }
            H = (H - l->k) / l->s + 1, W = (W - l->k) / l->s + 1;
        } else if (!strcmp(ty->valuestring, "coords")) {
            l->type = REF_COORDS;
            C += 2;
        } else {
            bad = why_set(why, wn, "layer %d: unknown type", i);
        }
        l->out_c = C, l->out_h = H, l->out_w = W;
    }
    cJSON_Delete(j);
    if (bad) return -1;
    r->D = C, r->H = H, r->W = W, r->L = H * W;
    /* V: the rows of the embedding, as the spec defines it */
    for (int i = 0; i < m->tab.n; i++)
        if (!strcmp(m->tab.t[i].name, "decoder.embedding.weight")) r->V = m->tab.t[i].shape[0];
    if (r->V < 4) return why_set(why, wn, "no embedding");
    int D = r->D, Hd = r->Hd, A = r->A, E = r->E, V = r->V;
#define T2(field, name, d0, d1)                                         \
    do {                                                                \
        int sh[2] = {d0, d1};                                           \
        r->field = tensor(m, name, 2, sh, why, wn, &bad);               \
    } while (0)
#define T1(field, name, d0)                                             \
    do {                                                                \
        int sh[1] = {d0};                                               \
        r->field = tensor(m, name, 1, sh, why, wn, &bad);               \
    } while (0)
    T2(emb, "decoder.embedding.weight", V, E);
    T2(init_h_w, "decoder.init_h.weight", Hd, D);
    T1(init_h_b, "decoder.init_h.bias", Hd);
    T2(init_c_w, "decoder.init_c.weight", Hd, D);
    T1(init_c_b, "decoder.init_c.bias", Hd);
    T2(enc_att_w, "decoder.attention.encoder_att.weight", A, D);
    T1(enc_att_b, "decoder.attention.encoder_att.bias", A);
    T2(dec_att_w, "decoder.attention.decoder_att.weight", A, Hd);
    T1(dec_att_b, "decoder.attention.decoder_att.bias", A);
    T2(full_att_w, "decoder.attention.full_att.weight", 1, A);
    T1(full_att_b, "decoder.attention.full_att.bias", 1);
    T2(f_beta_w, "decoder.f_beta.weight", D, Hd);
    T1(f_beta_b, "decoder.f_beta.bias", D);
    T2(w_ih, "decoder.lstm.weight_ih", 4 * Hd, E + D);
    T1(b_ih, "decoder.lstm.bias_ih", 4 * Hd);
    T2(w_hh, "decoder.lstm.weight_hh", 4 * Hd, Hd);
    T1(b_hh, "decoder.lstm.bias_hh", 4 * Hd);
    if (r->deep) {
        T2(deep_h_w, "decoder.deep_h.weight", E, Hd);
        T1(deep_h_b, "decoder.deep_h.bias", E);
        T2(deep_z_w, "decoder.deep_z.weight", E, D);
        T1(deep_z_b, "decoder.deep_z.bias", E);
    }
    T2(fc_w, "decoder.fc.weight", V, r->deep ? E : Hd);
    T1(fc_b, "decoder.fc.bias", V);
#undef T1
#undef T2
    return bad ? -1 : 0;
}

/* ------------------------------------------------------------ preprocessing */

void ref_normalise(const ref_model *r, const unsigned char *rgb, double *out) {
    int S = r->S;
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++)
                out[((size_t)c * S + y) * S + x] =
                    ((double)rgb[((size_t)y * S + x) * 3 + c] / 255.0 - r->mean[c]) / r->std[c];
}

static double triangle(double x) {
    x = fabs(x);
    return x < 1 ? 1 - x : 0;
}

/* one 1-D pass of PIL's resampling: n_out samples from n_in along one axis
 * of an interleaved RGB image; get/put address the samples of a line */
static void resample_line(const unsigned char *in, int n_in, int in_step, unsigned char *out, int n_out,
                          int out_step) {
    double scale = (double)n_in / n_out, fs = scale > 1 ? scale : 1, support = fs;
    for (int o = 0; o < n_out; o++) {
        double centre = (o + 0.5) * scale;
        int lo = (int)(centre - support + 0.5), hi = (int)(centre + support + 0.5);
        if (lo < 0) lo = 0;
        if (hi > n_in) hi = n_in;
        double wsum = 0, acc[3] = {0, 0, 0};
        for (int i = lo; i < hi; i++) {
            double w = triangle((i - centre + 0.5) / fs);
            wsum += w;
            for (int c = 0; c < 3; c++) acc[c] += w * in[(size_t)i * in_step + c];
        }
        for (int c = 0; c < 3; c++) {
            double v = wsum > 0 ? acc[c] / wsum : 0;
            v = floor(v + 0.5);
            out[(size_t)o * out_step + c] = (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
}

void ref_resize(const unsigned char *src, int sw, int sh, unsigned char *dst, int dw, int dh) {
    /* horizontal pass to dw x sh, then vertical to dw x dh; a pass whose size
     * does not change is skipped (PIL does the same) */
    unsigned char *mid = malloc((size_t)dw * sh * 3);
    for (int y = 0; y < sh; y++) {
        if (dw == sw) memcpy(mid + (size_t)y * dw * 3, src + (size_t)y * sw * 3, (size_t)sw * 3);
        else resample_line(src + (size_t)y * sw * 3, sw, 3, mid + (size_t)y * dw * 3, dw, 3);
    }
    for (int x = 0; x < dw; x++) {
        if (dh == sh)
            for (int y = 0; y < dh; y++) memcpy(dst + ((size_t)y * dw + x) * 3, mid + ((size_t)y * dw + x) * 3, 3);
        else resample_line(mid + (size_t)x * 3, sh, dw * 3, dst + (size_t)x * 3, dh, dw * 3);
    }
    free(mid);
}

/* ------------------------------------------------------------ encoder */

double *ref_encode(const ref_model *r, const float *input) {
    size_t n = (size_t)3 * r->S * r->S;
    double *cur = malloc(n * sizeof *cur);
    for (size_t i = 0; i < n; i++) cur[i] = input[i];
    for (int li = 0; li < r->n_layers; li++) {
        const ref_layer *l = &r->layers[li];
        int C = l->in_c, H = l->in_h, W = l->in_w, O = l->out_c, Ho = l->out_h, Wo = l->out_w;
        double *nx = calloc((size_t)O * Ho * Wo, sizeof *nx);
        for (int o = 0; o < O; o++)
            for (int y = 0; y < Ho; y++)
                for (int x = 0; x < Wo; x++) {
                    double v = 0;
                    if (l->type == REF_CONV) {
                        v = l->b[o];
                        for (int c = 0; c < C; c++)
                            for (int ky = 0; ky < l->k; ky++)
                                for (int kx = 0; kx < l->k; kx++) {
                                    int iy = y * l->s - l->p + ky, ix = x * l->s - l->p + kx;
                                    if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue; /* zero padding */
                                    v += (double)l->w[(((size_t)o * C + c) * l->k + ky) * l->k + kx] *
                                         cur[((size_t)c * H + iy) * W + ix];
                                }
                    } else if (l->type == REF_RELU) {
                        v = cur[((size_t)o * H + y) * W + x];
                        if (!(v > 0)) v = 0;
                    } else if (l->type == REF_MAXPOOL) {
                        v = -INFINITY;
                        for (int ky = 0; ky < l->k; ky++)
                            for (int kx = 0; kx < l->k; kx++) {
                                double u = cur[((size_t)o * H + y * l->s + ky) * W + x * l->s + kx];
                                if (u > v) v = u;
                            }
                    } else { /* coords */
                        if (o < C) v = cur[((size_t)o * H + y) * W + x];
                        else if (o == C) v = 2.0 * (x + 0.5) / W - 1;
                        else v = 2.0 * (y + 0.5) / H - 1;
                    }
                    nx[((size_t)o * Ho + y) * Wo + x] = v;
                }
        free(cur);
        cur = nx;
    }
    /* annotations: a_i is column i = y * W + x of the [D, H, W] features */
    double *a = malloc((size_t)r->L * r->D * sizeof *a);
    for (int i = 0; i < r->L; i++)
        for (int d = 0; d < r->D; d++) a[(size_t)i * r->D + d] = cur[(size_t)d * r->L + i];
    free(cur);
    return a;
}

/* ------------------------------------------------------------ decoder */

/* y[out] = W[out, in] x + b */
static void affine(double *y, const float *w, const float *b, const double *x, int in, int out) {
    for (int o = 0; o < out; o++) {
        double s = b ? b[o] : 0;
        for (int i = 0; i < in; i++) s += (double)w[(size_t)o * in + i] * x[i];
        y[o] = s;
    }
}
static double sigmoid(double x) { return 1 / (1 + exp(-x)); }

void ref_prepare(const ref_model *r, double *a, ref_prep *pp) {
    int L = r->L, D = r->D, A = r->A, Hd = r->Hd;
    pp->r = r;
    pp->a = a;
    pp->p = malloc((size_t)L * A * sizeof(double));
    pp->h0 = malloc((size_t)Hd * sizeof(double));
    pp->c0 = malloc((size_t)Hd * sizeof(double));
    double *abar = calloc((size_t)D, sizeof(double));
    for (int i = 0; i < L; i++)
        for (int d = 0; d < D; d++) abar[d] += a[(size_t)i * D + d];
    for (int d = 0; d < D; d++) abar[d] /= L;
    affine(pp->h0, r->init_h_w, r->init_h_b, abar, D, Hd);
    affine(pp->c0, r->init_c_w, r->init_c_b, abar, D, Hd);
    for (int j = 0; j < Hd; j++) pp->h0[j] = tanh(pp->h0[j]), pp->c0[j] = tanh(pp->c0[j]);
    for (int i = 0; i < L; i++) affine(pp->p + (size_t)i * A, r->enc_att_w, r->enc_att_b, a + (size_t)i * D, D, A);
    free(abar);
}

void ref_prep_free(ref_prep *pp) {
    free(pp->a), free(pp->p), free(pp->h0), free(pp->c0);
    memset(pp, 0, sizeof *pp);
}

void ref_step(const ref_prep *pp, int y, const double *h, const double *c, double *h2, double *c2, double *logits,
              double *alpha) {
    const ref_model *r = pp->r;
    int L = r->L, D = r->D, A = r->A, Hd = r->Hd, E = r->E, V = r->V;
    double *q = malloc(A * sizeof(double)), *e = malloc(L * sizeof(double)), *t = malloc(A * sizeof(double));
    double *gate = malloc(D * sizeof(double)), *x = malloc((E + D) * sizeof(double));
    double *g = malloc(4 * Hd * sizeof(double)), *g2 = malloc(4 * Hd * sizeof(double));
    /* e_i = full_att(tanh(p_i + decoder_att(h))) */
    affine(q, r->dec_att_w, r->dec_att_b, h, Hd, A);
    for (int i = 0; i < L; i++) {
        for (int k = 0; k < A; k++) t[k] = tanh(pp->p[(size_t)i * A + k] + q[k]);
        affine(&e[i], r->full_att_w, r->full_att_b, t, A, 1);
    }
    /* alpha = softmax(e), shifted by the max */
    double mx = e[0], sum = 0;
    for (int i = 1; i < L; i++) mx = e[i] > mx ? e[i] : mx;
    for (int i = 0; i < L; i++) sum += (alpha[i] = exp(e[i] - mx));
    for (int i = 0; i < L; i++) alpha[i] /= sum;
    /* z = sigmoid(f_beta(h)) * sum_i alpha_i a_i; x = [E[y], z] */
    affine(gate, r->f_beta_w, r->f_beta_b, h, Hd, D);
    for (int k = 0; k < E; k++) x[k] = r->emb[(size_t)y * E + k];
    for (int d = 0; d < D; d++) {
        double s = 0;
        for (int i = 0; i < L; i++) s += alpha[i] * pp->a[(size_t)i * D + d];
        x[E + d] = sigmoid(gate[d]) * s;
    }
    /* LSTMCell, gate order i, f, g, o */
    affine(g, r->w_ih, r->b_ih, x, E + D, 4 * Hd);
    affine(g2, r->w_hh, r->b_hh, h, Hd, 4 * Hd);
    for (int j = 0; j < Hd; j++) {
        double gi = sigmoid(g[j] + g2[j]), gf = sigmoid(g[Hd + j] + g2[Hd + j]);
        double gg = tanh(g[2 * Hd + j] + g2[2 * Hd + j]), go = sigmoid(g[3 * Hd + j] + g2[3 * Hd + j]);
        c2[j] = gf * c[j] + gi * gg;
        h2[j] = go * tanh(c2[j]);
    }
    if (r->deep) {
        /* u = tanh(deep_h(h_t) + deep_z(z) + E[y]) */
        double *u = malloc(E * sizeof(double)), *uz = malloc(E * sizeof(double));
        affine(u, r->deep_h_w, r->deep_h_b, h2, Hd, E);
        affine(uz, r->deep_z_w, r->deep_z_b, x + E, D, E);
        for (int k = 0; k < E; k++) u[k] = tanh(u[k] + uz[k] + x[k]);
        affine(logits, r->fc_w, r->fc_b, u, E, V);
        free(u), free(uz);
    } else {
        affine(logits, r->fc_w, r->fc_b, h2, Hd, V);
    }
    free(q), free(e), free(t), free(gate), free(x), free(g), free(g2);
}

static void log_softmax(double *out, const double *in, int n) {
    double mx = in[0], s = 0;
    for (int i = 1; i < n; i++) mx = in[i] > mx ? in[i] : mx;
    for (int i = 0; i < n; i++) s += exp(in[i] - mx);
    double lse = mx + log(s);
    for (int i = 0; i < n; i++) out[i] = in[i] - lse;
}

/* ------------------------------------------------------------ decoding */

static void hyp_alloc(ref_hyp *h, const ref_model *r, int T) {
    memset(h, 0, sizeof *h);
    h->tokens = malloc((size_t)(T + 1) * sizeof(int));
    h->logprobs = malloc((size_t)(T + 1) * sizeof(double));
    h->logits = malloc((size_t)(T + 1) * r->V * sizeof(double));
    h->alpha = malloc((size_t)(T + 1) * r->L * sizeof(double));
    h->h = malloc((size_t)r->Hd * sizeof(double));
    h->c = malloc((size_t)r->Hd * sizeof(double));
}
static void hyp_free(ref_hyp *h) {
    free(h->tokens), free(h->logprobs), free(h->logits), free(h->alpha), free(h->h), free(h->c);
}
static void hyp_copy(ref_hyp *dst, const ref_hyp *src, const ref_model *r) {
    int n = src->n;
    dst->n = n, dst->score = src->score, dst->finished = src->finished;
    memcpy(dst->tokens, src->tokens, (size_t)n * sizeof(int));
    memcpy(dst->logprobs, src->logprobs, (size_t)n * sizeof(double));
    memcpy(dst->logits, src->logits, (size_t)n * r->V * sizeof(double));
    memcpy(dst->alpha, src->alpha, (size_t)n * r->L * sizeof(double));
    memcpy(dst->h, src->h, (size_t)r->Hd * sizeof(double));
    memcpy(dst->c, src->c, (size_t)r->Hd * sizeof(double));
}

typedef struct {
    double score;
    long idx; /* parent_rank * V + token */
} cand;

/* higher score first, ties to the lower parent_rank * V + token */
static int cand_cmp(const void *pa, const void *pb) {
    const cand *a = pa, *b = pb;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    return (a->idx > b->idx) - (a->idx < b->idx);
}

void ref_beam(const ref_prep *pp, int k, int max_length, ref_result *out) {
    const ref_model *r = pp->r;
    int V = r->V, L = r->L, T = max_length > 0 ? max_length : r->max_length;
    /* at most k finished + k live ever exist */
    ref_hyp *live = malloc((size_t)k * sizeof *live), *nlive = malloc((size_t)k * sizeof *nlive);
    ref_hyp *done = malloc((size_t)2 * k * sizeof *done);
    for (int i = 0; i < k; i++) hyp_alloc(&live[i], r, T), hyp_alloc(&nlive[i], r, T);
    for (int i = 0; i < 2 * k; i++) hyp_alloc(&done[i], r, T);
    int nl = 1, nd = 0, width = k;
    live[0].n = 0, live[0].score = 0, live[0].finished = 0;
    memcpy(live[0].h, pp->h0, (size_t)r->Hd * sizeof(double));
    memcpy(live[0].c, pp->c0, (size_t)r->Hd * sizeof(double));
    double min_gap = INFINITY;
    double *logits = malloc((size_t)k * V * sizeof(double)), *lp = malloc((size_t)k * V * sizeof(double));
    double *alpha = malloc((size_t)k * L * sizeof(double));
    double *h2 = malloc((size_t)k * r->Hd * sizeof(double)), *c2 = malloc((size_t)k * r->Hd * sizeof(double));
    cand *cands = malloc((size_t)k * V * sizeof *cands);
    for (int step = 0; step < T && width > 0; step++) {
        int nc = 0;
        for (int p = 0; p < nl; p++) {
            int y = live[p].n ? live[p].tokens[live[p].n - 1] : IMCAP_TOK_START;
            ref_step(pp, y, live[p].h, live[p].c, h2 + (size_t)p * r->Hd, c2 + (size_t)p * r->Hd,
                     logits + (size_t)p * V, alpha + (size_t)p * L);
            log_softmax(lp + (size_t)p * V, logits + (size_t)p * V, V);
            for (int v = 0; v < V; v++) cands[nc++] = (cand){live[p].score + lp[(size_t)p * V + v], (long)p * V + v};
        }
        qsort(cands, (size_t)nc, sizeof *cands, cand_cmp);
        int keep = width < nc ? width : nc;
        if (keep < nc && cands[keep - 1].score - cands[keep].score < min_gap)
            min_gap = cands[keep - 1].score - cands[keep].score;
        int nn = 0, w2 = width;
        for (int j = 0; j < keep; j++) {
            int p = (int)(cands[j].idx / V), v = (int)(cands[j].idx % V);
            int is_end = v == IMCAP_TOK_END;
            ref_hyp *dst = is_end ? &done[nd++] : &nlive[nn++];
            hyp_copy(dst, &live[p], r);
            dst->tokens[dst->n] = v;
            dst->logprobs[dst->n] = lp[(size_t)p * V + v];
            memcpy(dst->logits + (size_t)dst->n * V, logits + (size_t)p * V, (size_t)V * sizeof(double));
            memcpy(dst->alpha + (size_t)dst->n * L, alpha + (size_t)p * L, (size_t)L * sizeof(double));
            dst->n++;
            dst->score = cands[j].score;
            memcpy(dst->h, h2 + (size_t)p * r->Hd, (size_t)r->Hd * sizeof(double));
            memcpy(dst->c, c2 + (size_t)p * r->Hd, (size_t)r->Hd * sizeof(double));
            if (is_end) dst->finished = 1, w2--;
        }
        width = w2;
        ref_hyp *tmp = live;
        live = nlive, nlive = tmp, nl = nn;
    }
    /* leftover live hypotheses join the finished ones, after them */
    for (int p = 0; p < nl; p++) hyp_copy(&done[nd++], &live[p], r);
    /* ranking: score desc; a stable insertion sort keeps finishing order on ties */
    for (int i = 1; i < nd; i++)
        for (int j = i; j > 0 && done[j].score > done[j - 1].score; j--) {
            ref_hyp t = done[j];
            done[j] = done[j - 1], done[j - 1] = t;
        }
    for (int i = 1; i < nd; i++)
        if (done[i - 1].score - done[i].score < min_gap) min_gap = done[i - 1].score - done[i].score;
    out->n_hyps = nd;
    out->hyps = malloc((size_t)nd * sizeof *out->hyps);
    for (int i = 0; i < nd; i++) out->hyps[i] = done[i];
    for (int i = nd; i < 2 * k; i++) hyp_free(&done[i]);
    out->min_gap = min_gap;
    for (int i = 0; i < k; i++) hyp_free(&live[i]), hyp_free(&nlive[i]);
    free(live), free(nlive), free(done), free(logits), free(lp), free(alpha), free(h2), free(c2), free(cands);
}

void ref_greedy(const ref_prep *pp, int max_length, ref_result *out) {
    const ref_model *r = pp->r;
    int V = r->V, L = r->L, T = max_length > 0 ? max_length : r->max_length;
    ref_hyp *h = malloc(sizeof *h);
    hyp_alloc(h, r, T);
    memcpy(h->h, pp->h0, (size_t)r->Hd * sizeof(double));
    memcpy(h->c, pp->c0, (size_t)r->Hd * sizeof(double));
    double *lp = malloc((size_t)V * sizeof(double)), *h2 = malloc((size_t)r->Hd * sizeof(double)),
           *c2 = malloc((size_t)r->Hd * sizeof(double));
    double min_gap = INFINITY;
    int y = IMCAP_TOK_START;
    while (h->n < T) {
        double *lg = h->logits + (size_t)h->n * V;
        ref_step(pp, y, h->h, h->c, h2, c2, lg, h->alpha + (size_t)h->n * L);
        memcpy(h->h, h2, (size_t)r->Hd * sizeof(double));
        memcpy(h->c, c2, (size_t)r->Hd * sizeof(double));
        /* strict > : on an exact tie the lowest id stays */
        int best = 0;
        for (int v = 1; v < V; v++)
            if (lg[v] > lg[best]) best = v;
        for (int v = 0; v < V; v++)
            if (v != best && lg[best] - lg[v] < min_gap) min_gap = lg[best] - lg[v];
        log_softmax(lp, lg, V);
        h->tokens[h->n] = best;
        h->logprobs[h->n] = lp[best];
        h->score += lp[best];
        h->n++;
        y = best;
        if (best == IMCAP_TOK_END) {
            h->finished = 1;
            break;
        }
    }
    free(lp), free(h2), free(c2);
    out->n_hyps = 1;
    out->hyps = h;
    out->min_gap = min_gap;
}

void ref_result_free(ref_result *res) {
    for (int i = 0; i < res->n_hyps; i++) hyp_free(&res->hyps[i]);
    free(res->hyps);
    memset(res, 0, sizeof *res);
}
