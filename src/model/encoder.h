/* encoder.h — the convolutional encoder's forward (and backward) pass over
 * up to max_images images at once. Internal.
 *
 * The input act[0] is [n,3,S,S] and the output act[n_layers] is [n,D,H,W],
 * each image's block exactly as that image alone gives it.
 *
 * Inference (with_backward = 0) runs the images one after the other through
 * one image's buffers: they stay in cache (one product over 32 images is
 * slower per image here, its matrices spill to memory), relu works in place
 * and a relu followed by a maxpool is folded into the pool.
 *
 * Training (with_backward = 1) goes layer by layer over the n images laid
 * out [C,n,H,W] (channels outer), so that im2col of the n images is one
 * [K, n*P] matrix and the backward is one product per layer over all of
 * them: y = w col, dw += dout[O, n*P] col[K, n*P]^T and dcol = w^T dout.
 * imcap_gemm sums every output column alone, so each image keeps the bits
 * it gets alone.
 *
 * Memory, in floats, with per image I = 3*S*S, O_i = layer i's output size,
 * M = max(I, max O_i), K = the largest conv's im2col size (C*k*k*Ho*Wo) and
 * F = D*H*W, for n = max_images:
 *   inference: n*(I + F) + 2M + K
 *   training:  n*(I + sum of O_i over the layers that are not a relu + 2M +
 *              F) + Kg, + n*I when the first layer is not a conv, and
 *              n * (sum of O_i over the maxpools) ints for the winners;
 *              Kg = the largest conv's im2col for one group of images
 *              (imcap_conv2d_col_size_n: about 1 MB of columns).
 * The default model (64x64; 16/32/64/64 channels): inference 1.11 MB +
 * 66 KB per image; training 1.07 MB + 1.20 MB and 115 KB of ints per image. */
#ifndef IMCAP_ENCODER_H
#define IMCAP_ENCODER_H
#include "model.h"

typedef struct {
    int max_images, with_backward;
    /* act[0] = input [n,3,S,S]; act[n_layers] = features [n,D,H,W]. In
     * between, act[i+1] is layer i's output: training, [C,n,H,W] for all n
     * images (a relu works in place, act[i+1] == act[i], unless its input is
     * the image); inference, one image's scratch shared by the layers (a
     * folded relu aliases its input), so only the input and the features
     * mean anything after a forward. */
    float *act[IMCAP_MAX_LAYERS + 1];
    int *argmax[IMCAP_MAX_LAYERS]; /* with_backward: maxpool winners, indices into the layer's input */
    float *col;                    /* im2col scratch, the largest conv's (training: for max_images) */
    float *dbuf[2];                /* training: backward ping-pong, the largest activation, for max_images */
    float *blk[3];                 /* inference: a residual block's scratch, the largest activation each */
    float *domain_x;               /* inference: [max_images, F] each image's in-domain descriptor, when the config has one */
    float *domain_scratch;         /* the descriptor's scratch, and the scores' */
    double *domain_score;          /* [max_images]: inference, each image's domain score (model/domain.h) */
    float *x0;                     /* training: the input as [3,n,S,S] when the first layer is not a conv */
    float *last;                   /* training: the last layer's output [D,n,H,W], laid out as act[n_layers] */
    size_t max_act;                /* floats of the largest activation, per image */
    int n_owned;
    float *owned[IMCAP_MAX_LAYERS + 8]; /* what act[] and the rest point into, freed by _free */
} imcap_encoder_acts;

/* max_images >= 1: the largest n the forward and backward will be given.
 * with_backward: keep what imcap_encoder_backward_n needs (every layer's
 * output and the maxpool winners) and its scratch; IMCAP_E_ARG when the
 * config has a layer imcap cannot train (imcap_config_untrainable_layer). */
imcap_status imcap_encoder_acts_init(imcap_encoder_acts *e, const imcap_config *cfg, int max_images,
                                     int with_backward);
void imcap_encoder_acts_free(imcap_encoder_acts *e);
/* Runs every layer on the n images (1 <= n <= max_images) in e->act[0]; the
 * features end in e->act[n_layers]. Each image's features have the bits it
 * gets alone (and the same in both modes). pk: the model's encoder pack
 * (imcap_model.epack, in step with p), or NULL for none. */
void imcap_encoder_forward_n(const imcap_config *cfg, const imcap_params *p, const imcap_encoder_pack *pk,
                             imcap_encoder_acts *e, int n);
/* n = 1 */
void imcap_encoder_forward(const imcap_config *cfg, const imcap_params *p, const imcap_encoder_pack *pk,
                           imcap_encoder_acts *e);
/* After imcap_encoder_forward_n over the same n images (e made with
 * with_backward): dfeat [n,D,H,W], the gradient at the output; accumulates
 * into g the sum over the images, each conv's as one product over the n
 * images (equal to the per-image gradients summed up to float summation
 * order). */
void imcap_encoder_backward_n(const imcap_config *cfg, const imcap_params *p, const imcap_params *g,
                              imcap_encoder_acts *e, const float *dfeat, int n);
/* n = 1 */
void imcap_encoder_backward(const imcap_config *cfg, const imcap_params *p, const imcap_params *g,
                            imcap_encoder_acts *e, const float *dfeat);
static inline const float *imcap_encoder_output(const imcap_config *cfg, const imcap_encoder_acts *e) {
    return e->act[cfg->n_layers];
}

#endif
