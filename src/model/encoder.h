/* encoder.h — the convolutional encoder's forward (and backward) pass over
 * one image. Internal. */
#ifndef IMCAP_ENCODER_H
#define IMCAP_ENCODER_H
#include "model.h"

typedef struct {
    float *act[IMCAP_MAX_LAYERS + 1]; /* act[0] = input [3,S,S]; act[i+1] = output of layer i */
    int *argmax[IMCAP_MAX_LAYERS];    /* maxpool winners */
    float *col;                       /* im2col scratch, the largest conv's */
    float *dbuf[2];                   /* backward ping-pong, the largest activation */
    size_t max_act;
} imcap_encoder_acts;

imcap_status imcap_encoder_acts_init(imcap_encoder_acts *e, const imcap_config *cfg, int with_backward);
void imcap_encoder_acts_free(imcap_encoder_acts *e);
/* Runs every layer on e->act[0]; the features [D, H, W] end in e->act[n_layers]. */
void imcap_encoder_forward(const imcap_config *cfg, const imcap_params *p, imcap_encoder_acts *e);
/* dfeat [D,H,W]: gradient at the encoder output; accumulates into g. */
void imcap_encoder_backward(const imcap_config *cfg, const imcap_params *p, const imcap_params *g,
                            imcap_encoder_acts *e, const float *dfeat);
static inline const float *imcap_encoder_output(const imcap_config *cfg, const imcap_encoder_acts *e) {
    return e->act[cfg->n_layers];
}

#endif
