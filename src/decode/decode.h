/* decode.h — turning an image into hypotheses: the per-thread workspace and
 * the spec's beam search (greedy is beam 1). Internal. */
#ifndef IMCAP_DECODE_H
#define IMCAP_DECODE_H
#include "imcap.h"
#include "model/network.h"

struct imcap_workspace {
    const imcap_model *model;
    imcap_encoder_acts enc;
    imcap_decoder_init init;
    imcap_step_cache step;   /* rows: beam capacity */
    float *h, *c;            /* [cap, Hd] state of the live hypotheses */
    float *logp;             /* [cap, V] */
    int *tokens;             /* [cap] */
    int cap;
    double domain_score;     /* of the image encoded last */
};

/* Fills res's domain_score and in_domain from a score (NaN: no statistics). */
void imcap_result_set_domain(imcap_result *res, double score);

/* ---- one image's beam search, step by step (greedy is width 1), so that
 * one image alone (imcap_beam_search) and many images decoded together
 * (the batcher) run exactly the same rules. */
typedef struct {
    int n;
    double score;
    int finished;
    int *tok;
    float *lp, *att, *logits; /* logits only when traced */
} imcap_beam_hist;

typedef struct {
    double score;
    long idx; /* parent_rank * V + token */
} imcap_beam_cand;

typedef struct {
    int k, T, L, V;
    imcap_beam_hist *slots, *done;  /* 2k each, allocated once */
    imcap_beam_hist *live, *next;
    imcap_beam_cand *best;          /* [k] */
    int nl, ndone, width, step;
} imcap_beam;

imcap_status imcap_beam_init(imcap_beam *b, int k, int T, int L, int V, int with_logits);
void imcap_beam_reset(imcap_beam *b);   /* a new image: one empty live hypothesis */
void imcap_beam_free(imcap_beam *b);
int imcap_beam_finished(const imcap_beam *b);
/* The input token of each live hypothesis; returns their number (0: done). */
int imcap_beam_tokens(const imcap_beam *b, int *tokens);
/* One step: logits [nl,V], alpha [nl,L], h, c [nl,Hd] are the decoder's
 * outputs for the live rows; logp is scratch [nl,V]. The surviving
 * children's states are written to h_out, c_out rows 0.. (which must not
 * overlap h, c). Returns the number of live hypotheses. */
int imcap_beam_advance(imcap_beam *b, const float *logits, const float *alpha, const float *h, const float *c, int Hd,
                       float *logp, float *h_out, float *c_out);
/* Ranks the hypotheses into a result (and the best one's logits, when the
 * beam was made with_logits and logits is non-NULL). */
imcap_status imcap_beam_result(imcap_beam *b, const imcap_model *m, const imcap_options *opt, imcap_result **out,
                               float **logits, imcap_error *err);

/* The checks every captioning entry point makes on its options. */
imcap_status imcap_check_options(const imcap_model *m, const imcap_options *opt, imcap_error *err);
/* imcap_caption_many with a second stop flag, the caller's own (imcap batch
 * stops taking images on a fatal write error as on the user's signal). */
imcap_status imcap_caption_many_halt(const imcap_model *m, size_t n, const imcap_options *opt, int block,
                                     int threads, const imcap_many_io *io, const volatile sig_atomic_t *halt,
                                     size_t *n_done, imcap_error *err);

/* Makes room for k live hypotheses. */
imcap_status imcap_workspace_reserve(imcap_workspace *ws, int k);

/* Runs the encoder and the decoder preparation on ws->enc.act[0], which the
 * caller has filled with the preprocessed input. */
void imcap_workspace_encode(imcap_workspace *ws);

/* Beam search on the encoded image. When logits is non-NULL it receives a
 * malloc'd [n_tokens, V] array of the best hypothesis's logits (for traces). */
imcap_status imcap_beam_search(imcap_workspace *ws, const imcap_options *opt, imcap_result **out, float **logits,
                               imcap_error *err);
#endif
