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
    int cap;
};

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
