/* naive.h — an independent, deliberately plain implementation of the model
 * format's forward pass and decoding (docs/model-format.md), in double
 * precision, for checking the engine. Written from the spec only: plain
 * loops, no BLAS, nothing from src/kernels, src/model's encoder/decoder or
 * src/decode. It reads the config JSON itself (cJSON) and finds every
 * tensor by its spec name in the model's parameter table. */
#ifndef IMCAP_TEST_NAIVE_H
#define IMCAP_TEST_NAIVE_H
#include "model/model.h"

#define REF_MAX_LAYERS 32

enum { REF_CONV, REF_RELU, REF_MAXPOOL, REF_COORDS };

typedef struct {
    int type, out, k, s, p;
    int in_c, in_h, in_w, out_c, out_h, out_w;
    const float *w, *b; /* conv only */
} ref_layer;

typedef struct {
    int S;
    double mean[3], std[3];
    int n_layers;
    ref_layer layers[REF_MAX_LAYERS];
    int E, Hd, A, max_length, V;
    int deep; /* "output": "deep" (Format 2) */
    int D, H, W, L;
    const float *emb, *init_h_w, *init_h_b, *init_c_w, *init_c_b, *enc_att_w, *enc_att_b, *dec_att_w, *dec_att_b,
        *full_att_w, *full_att_b, *f_beta_w, *f_beta_b, *w_ih, *b_ih, *w_hh, *b_hh, *fc_w, *fc_b;
    const float *deep_h_w, *deep_h_b, *deep_z_w, *deep_z_b; /* deep output only */
} ref_model;

/* Fills r from the model's config JSON and parameter table; 0 on success,
 * -1 with a message in why otherwise (a tensor missing or mis-shaped). */
int ref_model_init(ref_model *r, const imcap_model *m, char *why, size_t why_size);

/* x = (p / 255 - mean[c]) / std[c] for an image already S x S. */
void ref_normalise(const ref_model *r, const unsigned char *rgb, double *out);
/* PIL's Image.resize(BILINEAR) written plainly in double (triangle filter,
 * support scaled by the downscale factor, horizontal then vertical pass,
 * rounded 8-bit intermediate and result). dst is dw * dh * 3 bytes. */
void ref_resize(const unsigned char *src, int sw, int sh, unsigned char *dst, int dw, int dh);

/* Encoder + annotations: input [3,S,S] -> a [L,D] (malloc'd). */
double *ref_encode(const ref_model *r, const float *input);

typedef struct {
    const ref_model *r;
    double *a;           /* [L,D] */
    double *p;           /* [L,A] encoder_att(a_i) */
    double *h0, *c0;     /* [Hd] */
} ref_prep;

void ref_prepare(const ref_model *r, double *a, ref_prep *pp); /* takes a */
void ref_prep_free(ref_prep *pp);

/* One decoder step from (h, c) with the previous token y: writes h2, c2
 * [Hd], logits [V] and alpha [L]. */
void ref_step(const ref_prep *pp, int y, const double *h, const double *c, double *h2, double *c2, double *logits,
              double *alpha);

typedef struct {
    int n;             /* tokens y_1..y_n */
    int *tokens;
    double *logprobs;  /* [n] */
    double *logits;    /* [n, V] */
    double *alpha;     /* [n, L] */
    double score;
    int finished;
    double *h, *c;     /* state after the last token */
} ref_hyp;

typedef struct {
    int n_hyps;
    ref_hyp *hyps;     /* ranking order: score desc, ties to the earlier finished */
    /* the smallest score gap the result depends on: between the last kept
     * and the first dropped candidate at every step, and between neighbours
     * of the final ranking. Below 1e-4 the spec allows engines to differ. */
    double min_gap;
} ref_result;

/* Beam search of width k exactly as the spec's Decoding section says;
 * max_length 0 = the model's. */
void ref_beam(const ref_prep *pp, int k, int max_length, ref_result *out);
/* Greedy decoding (argmax, lowest id on exact ties), written separately. */
void ref_greedy(const ref_prep *pp, int max_length, ref_result *out);
void ref_result_free(ref_result *res);
#endif
