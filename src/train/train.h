/* train.h — training in C: the loss and the backward pass over a batch,
 * Adam with warm-up and decay, checkpoints, and the training loop. Internal;
 * the CLI drives it through imcap_train_run. */
#ifndef IMCAP_TRAIN_H
#define IMCAP_TRAIN_H
#include <stdint.h>

#include "model/network.h"
#include "util/util.h"

/* One example: an image already resized to S x S (8-bit RGB) and its target
 * tokens y_1..y_T with the final <end> (no <start>). */
typedef struct {
    const unsigned char *rgb;
    const int *tokens;
    int length;       /* T, <end> included */
    uint64_t id;      /* stable example id: seeds its dropout masks */
} imcap_example;

typedef struct {
    float att_reg;    /* lambda of Xu et al.'s sum_i (1 - sum_t alpha_ti)^2, per example */
    float dropout;    /* probability of zeroing h before fc */
    uint64_t seed;    /* with the step and the example id, seeds the masks */
    long step;
} imcap_loss_options;

typedef struct {
    double ce_sum;    /* summed cross-entropy over target tokens */
    double reg_sum;   /* summed regulariser over examples (before lambda) */
    long n_tokens, n_examples;
    long correct;     /* teacher-forced argmax == target */
} imcap_loss_stats;

/* Per-thread buffers for forward + backward of up to cap examples. */
typedef struct imcap_trainer_worker imcap_trainer_worker;
imcap_trainer_worker *imcap_worker_new(const imcap_model *m, int cap);
void imcap_worker_free(imcap_trainer_worker *w);
/* The gradient block of this worker (tab.total floats), views in *views. */
float *imcap_worker_grads(imcap_trainer_worker *w, imcap_params *views);

/* Forward and backward for n examples (n <= cap): accumulates into the
 * worker's gradient block the gradient of
 *   (sum of CE over all tokens) / token_norm + att_reg * sum_examples reg / example_norm
 * and adds to stats. With no_grad set, only the forward and stats run. */
void imcap_worker_run(imcap_trainer_worker *w, const imcap_model *m, const imcap_example *ex, int n,
                      const imcap_loss_options *opt, double token_norm, double example_norm, int no_grad,
                      imcap_loss_stats *stats);

/* ---- Adam with decoupled weight decay, warm-up, decay, clipping */

typedef struct {
    float lr, beta1, beta2, eps, weight_decay, clip;
    long warmup, total_steps;
    float min_lr_frac;     /* cosine decay to lr * min_lr_frac at total_steps */
} imcap_adam_options;

void imcap_adam_options_default(imcap_adam_options *o);
float imcap_lr_at(const imcap_adam_options *o, long step);
/* Clips g to o->clip global norm (0: no clipping) and updates p, m, v in
 * place for step (1-based). Returns the norm before clipping. */
double imcap_adam_step(const imcap_adam_options *o, long step, float *p, float *g, float *m, float *v, size_t n);
#endif
