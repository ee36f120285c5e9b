/* network.h — the forward (and backward) passes of the whole model:
 * the encoder over one image, the decoder's per-image preparation and its
 * step over a batch of rows (beam hypotheses or training examples). */
#ifndef IMCAP_NETWORK_H
#define IMCAP_NETWORK_H
#include "encoder.h"
#include "model.h"

/* ---- decoder: per-image preparation */

typedef struct {
    float *a;     /* [L,D] annotation vectors, a_i = column i of the features */
    float *p;     /* [L,A] encoder_att(a_i) */
    float *abar;  /* [D] */
    float *h0, *c0; /* [Hd] tanh(init_h(abar)), tanh(init_c(abar)) */
    float *pt;    /* [A,L] scratch: encoder_att as one product over the feature map [D,L], then transposed to p */
} imcap_decoder_init;

imcap_status imcap_decoder_init_alloc(imcap_decoder_init *d, const imcap_config *cfg);
void imcap_decoder_init_free(imcap_decoder_init *d);
/* pk: the model's pack at inference (encoder_att from its transposed
 * weights), NULL in training; the same bits either way. */
void imcap_decoder_prepare_forward(const imcap_config *cfg, const imcap_params *p, const imcap_decoder_pack *pk,
                                   const float *feat, imcap_decoder_init *d);
/* da [L,D], dp [L,A], dh0, dc0 [Hd] arrive; writes dfeat [D,L] (overwrites)
 * and accumulates into g. da is used as scratch (the gradient through
 * encoder_att is added to it). dfeat NULL (a frozen encoder): only g, and da
 * is not read (may be NULL). scratch: [D + Hd] floats. */
void imcap_decoder_prepare_backward(const imcap_config *cfg, const imcap_params *p, const imcap_params *g,
                                    const imcap_decoder_init *d, float *da, const float *dp, const float *dh0,
                                    const float *dc0, float *dfeat, float *scratch);

/* ---- decoder: one step for N rows */

typedef struct {
    int cap;          /* rows allocated */
    float *q;         /* [N,A] decoder_att(h_prev) */
    float *tanh_pq;   /* [N,L,A] for the backward; NULL at inference */
    float *alpha;     /* [N,L] the attention maps */
    float *ctx;       /* [N,D] sum_i alpha_i a_i */
    float *gate;      /* [N,D] sigmoid(f_beta(h_prev)) */
    float *x;         /* [N,E+D] LSTM input */
    float *gates;     /* [N,4Hd] activated */
    float *c, *tanh_c, *h; /* [N,Hd] */
    float *u;         /* [N,E] deep output only: tanh(deep_h(h) + deep_z(z) + E y) */
    float *h_fc;      /* [N,F] training: fc's input (h, or u with the deep output) with dropout applied */
    float *logits;    /* [N,V] */
    float *qg;        /* inference: [N,A+D] q and the gate side by side (q and gate are then NULL, x is [N,E+D+Hd]) */
} imcap_step_cache;

imcap_status imcap_step_cache_alloc(imcap_step_cache *s, const imcap_config *cfg, int V, int N);
/* For inference only: no tanh_pq (the backward's copy of every cell's tanh). */
imcap_status imcap_step_cache_alloc_infer(imcap_step_cache *s, const imcap_config *cfg, int V, int N);
void imcap_step_cache_free(imcap_step_cache *s);

/* Training's step. Row n reads a + n * a_stride and p + n * p_stride.
 * dropout_mask [N,F] (F = imcap_config_fc_in: h, or u with the deep
 * output) scales fc's input (NULL: none). s from
 * imcap_step_cache_alloc. */
void imcap_decoder_step_forward(const imcap_config *cfg, const imcap_params *p, int V, int N, const int *tokens,
                                const float *h_prev, const float *c_prev, const float *a, size_t a_stride,
                                const float *p_att, size_t p_stride, const float *dropout_mask, imcap_step_cache *s);

/* Inference's step, over m's transposed weights (m->pack, which must be in
 * step with the weights: imcap_model_sync); s from
 * imcap_step_cache_alloc_infer. The same maths as the training step; the
 * products sum in another order, so values agree to float rounding.
 * _infer: row n reads a + n * a_stride and p + n * p_stride (stride 0: one
 * image shared by every row, as in beam search); _rows: row n attends over
 * a_rows[n] [L,D] and p_rows[n] [L,A] (many images decoded together).
 * Every row's result is bit-identical to computing it alone. */
void imcap_decoder_step_infer(const imcap_model *m, int N, const int *tokens, const float *h_prev,
                              const float *c_prev, const float *a, size_t a_stride, const float *p_att,
                              size_t p_stride, imcap_step_cache *s);
void imcap_decoder_step_infer_rows(const imcap_model *m, int N, const int *tokens, const float *h_prev,
                                   const float *c_prev, const float *const *a_rows, const float *const *p_rows,
                                   imcap_step_cache *s);

typedef struct {
    float *dh_fc, *dh, *dx, *dgate, *dctx, *dq, *lstm, *att; /* sized for cap rows; dh_fc: [N,F] */
    int cap;
} imcap_step_scratch;

imcap_status imcap_step_scratch_alloc(imcap_step_scratch *w, const imcap_config *cfg, int N);
void imcap_step_scratch_free(imcap_step_scratch *w);

/* dlogits [N,V]; dh_next, dc_next [N,Hd] from step t+1 (NULL at the last);
 * dalpha_extra [N,L] (NULL: none). Accumulates dh_prev, dc_prev [N,Hd],
 * da, dp (row n at n * stride, as in the forward) and the parameter grads. */
void imcap_decoder_step_backward(const imcap_config *cfg, const imcap_params *p, const imcap_params *g, int V, int N,
                                 const int *tokens, const float *h_prev, const float *c_prev, const float *a,
                                 size_t a_stride, const float *dropout_mask, const imcap_step_cache *s,
                                 const float *dlogits, const float *dh_next, const float *dc_next,
                                 const float *dalpha_extra, float *dh_prev, float *dc_prev, float *da, float *dp,
                                 size_t p_stride, imcap_step_scratch *w);
#endif
