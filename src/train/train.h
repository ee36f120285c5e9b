/* train.h — training in C: the loss and the backward pass over a batch,
 * Adam with warm-up and decay, checkpoints, and the training loop. Internal;
 * the CLI drives it through imcap_train_run. */
#ifndef IMCAP_TRAIN_H
#define IMCAP_TRAIN_H
#include <signal.h>
#include <stdint.h>

#include "model/network.h"
#include "util/util.h"
#include "data/cache.h"
#include "data/dataset.h"
#include "features.h"
#include "eval/objects.h"

/* One example: an image already resized to S x S (8-bit RGB) and its target
 * tokens y_1..y_T with the final <end> (no <start>). */
typedef struct {
    const unsigned char *rgb;
    const uint16_t *feat;   /* frozen encoder: the image's features [D, L] in half precision, rgb unused */
    const int *tokens;
    int length;       /* T, <end> included */
    uint64_t id;      /* stable example id: seeds its dropout masks */
    /* attention targets (--att-sup), or NULL: per target token, the objects
     * of scene it names, IMCAP_ATT_RELATION for a relation phrase's words
     * (imcap_caption_word_objects; 0: none) */
    const uint16_t *att_objects;
    const imcap_scene *scene;
} imcap_example;

typedef struct {
    float att_reg;    /* lambda of Xu et al.'s sum_i (1 - sum_t alpha_ti)^2, per example */
    float dropout;    /* probability of zeroing h before fc */
    uint64_t seed;    /* with the step and the example id, seeds the masks */
    long step;
    float att_sup;    /* lambda of the attention targets' -log (attention inside the named objects), per token */
    float att_sup_rel; /* the same for the words of a relation phrase (targets: the partner named next) */
    float att_sup_desc; /* the same for a mention's words before its noun (count, size, colour) */
    float rel_weight;   /* the cross-entropy's weight at a relation phrase's words and its partner's (0 or 1: 1) */
} imcap_loss_options;

typedef struct {
    double ce_sum;    /* summed cross-entropy over target tokens */
    double reg_sum;   /* summed regulariser over examples (before lambda) */
    long n_tokens, n_examples;
    long correct;     /* teacher-forced argmax == target */
    double sup_sum;   /* summed lambda x -log (attention mass inside the named objects) over the words with targets */
    long n_sup;       /* words with targets */
    double ce_extra_sum; /* (rel_weight - 1) x CE summed over the reweighted words: the loss adds it to ce_sum */
} imcap_loss_stats;

/* Per-thread buffers for forward + backward of up to cap examples. frozen:
 * the examples carry their features (imcap_example.feat), the encoder is
 * neither run nor trained, and the gradient block covers only the decoder
 * (imcap_trained_floats). */
typedef struct imcap_trainer_worker imcap_trainer_worker;
imcap_trainer_worker *imcap_worker_new(const imcap_model *m, int cap, int frozen);
void imcap_worker_free(imcap_trainer_worker *w);
/* How many floats of the parameter block training changes: the block is in
 * name order, decoder.* then encoder.* then stats.* (the in-domain
 * statistics, never trained): all but the statistics, or with a frozen
 * encoder the decoder's alone. */
size_t imcap_trained_floats(const imcap_model *m, int frozen);
/* The gradient block of this worker (imcap_trained_floats), views in *views
 * (with a frozen encoder its views point past the block: never use them). */
float *imcap_worker_grads(imcap_trainer_worker *w, imcap_params *views);
/* Where imcap_worker_run accumulates: block (imcap_trained_floats), or
 * the worker's own block when NULL. */
void imcap_worker_target(imcap_trainer_worker *w, const imcap_model *m, float *block);

/* Forward and backward for n examples (n <= cap): accumulates into the
 * worker's gradient block the gradient of
 *   (sum of CE over all tokens) / token_norm + att_reg * sum_examples reg / example_norm
 *     + (sum over the tokens with targets of lambda_t * -log sum_{i in R_t} alpha_i) / token_norm
 * (R_t: the cells inside the objects token t names; lambda_t: att_sup for
 * a noun, att_sup_desc for the words before it, att_sup_rel for a relation
 * phrase's words), where a relation phrase's words and its partner's
 * (IMCAP_ATT_RELATION, IMCAP_ATT_PARTNER) count rel_weight times in the sum
 * of CE (the extra in stats->ce_extra_sum), and adds to stats. With no_grad
 * set, only the forward and stats run. */
void imcap_worker_run(imcap_trainer_worker *w, const imcap_model *m, const imcap_example *ex, int n,
                      const imcap_loss_options *opt, double token_norm, double example_norm, int no_grad,
                      imcap_loss_stats *stats);


/* ---- a batch spread over shards, threads and processes
 *
 * A batch of n examples is cut into `shards` contiguous shards (shard s:
 * examples [n s / S, n (s + 1) / S)). Each shard's gradient is computed
 * alone, with its examples as one batch, and the batch's gradient is
 *   ((0 + g_0) + g_1) + ... + g_{S-1}   (float, element by element)
 * So the result depends on S and on nothing else: not on how many threads
 * share the shards, nor on how many processes. Process r of R computes
 * shards [S r / R, S (r + 1) / R); the running sum passes from process to
 * process in rank order (each adds its shards), and the last broadcasts it.
 * One process with T threads and S = T computes exactly what imcap did
 * before shards existed (one shard per thread). */
typedef struct {
    int nthreads, shards;
    int shard0, shard1;  /* this process's shards */
    size_t n_grad;       /* floats per gradient block */
    imcap_trainer_worker **w;
    float **g;           /* [shard1 - shard0] gradient blocks: a thread's first is its worker's own */
    float *acc;          /* n_grad + stats: the running sum passed between processes */
    const imcap_train_comm *comm;
    double examples, seconds; /* this process's share of the work so far */
} imcap_worker_pool;

/* Shards over processes: the first and one past the last of rank r. */
void imcap_shard_range(int shards, int rank, int size, int *first, int *end);
imcap_status imcap_pool_init(imcap_worker_pool *p, const imcap_model *m, int threads, int shards, int batch,
                             int frozen, const imcap_train_comm *comm);
void imcap_pool_free(imcap_worker_pool *p);
/* Loss normalised by the batch's tokens and examples; grad_out (n_grad
 * floats) receives the summed gradient unless no_grad, and the stats are
 * added (summed shard by shard, in order). With no_grad the process
 * computes every shard itself and talks to no other (validation runs on
 * rank 0 alone). Returns non-zero when the transport failed. */
int imcap_pool_run(imcap_worker_pool *p, const imcap_model *m, const imcap_example *ex, int n,
                   const imcap_loss_options *lo, int no_grad, float *grad_out, imcap_loss_stats *stats);

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

/* ---- the training loop */

typedef struct {
    int epochs;            /* passes over the (image, caption) pairs */
    long max_steps;        /* 0: epochs decide */
    int batch;
    int threads;           /* OpenMP workers per process */
    int shards;            /* the batch's gradient is summed shard by shard (see imcap_worker_pool): the
                            * result depends on it, not on threads or processes; 0: threads x processes */
    imcap_adam_options adam;
    float att_reg, dropout;
    float att_sup;         /* attention targets' weight (0: none; needs scenes with "objects") */
    float att_sup_rel;     /* the relation phrases' targets' weight (0: none) */
    float att_sup_desc;    /* the mention's words before the noun (< 0: att_sup) */
    float rel_weight;      /* CE weight of relation phrases and their partners (1: none; needs "objects") */
    uint64_t seed;
    long val_every;        /* steps between validations (0: once per epoch) */
    int val_images;        /* val images captioned per validation (0: all) */
    long ckpt_every;       /* steps between checkpoints (0: only at the end / on stop) */
    long stop_after;       /* testing aid: act as if interrupted after this step (0: never) */
    int freeze_encoder;    /* train the decoder alone, on the feature cache */
    int select;            /* what "best" means: imcap_select */
    const char *out_path;  /* best model by validation score */
    const char *ckpt_path; /* checkpoint, written atomically */
    const char *command;   /* recorded in the model's metadata */
} imcap_train_options;

/* The validation figure that picks the best model. IMCAP_SELECT_AUTO is the
 * rule of checkpoints written before --select existed ((F1 + pointing) / 2
 * on synthetic scenes, BLEU-4 otherwise); it is kept for them only. */
typedef enum { IMCAP_SELECT_LOSS, IMCAP_SELECT_BLEU4, IMCAP_SELECT_CIDER, IMCAP_SELECT_F1, IMCAP_SELECT_AUTO } imcap_select;
const char *imcap_select_name(int select);
/* "loss", "bleu4", "cider", "f1" -> 0..3; -1 for anything else. */
int imcap_select_parse(const char *name);
/* The default --att-reg: 1 / L for a grid of L cells (see train.c). */
float imcap_att_reg_default(const imcap_config *cfg);


/* Optimiser state, saved in checkpoints with the weights. */
typedef struct {
    float *m, *v;          /* Adam moments, tab.total floats each */
    long step;             /* steps done */
    double best_score;     /* best validation score so far (when have_best) */
    int have_best;         /* a validated best model has been written to out_path */
    double work_examples, work_seconds; /* after a run: this process's examples and compute time (not saved) */
    imcap_train_options opt; /* the options the run started with */
} imcap_train_state;

imcap_status imcap_train_state_init(imcap_train_state *st, const imcap_model *m);
void imcap_train_state_free(imcap_train_state *st);

/* Checkpoint: the model file, Adam moments, step, best score and options,
 * in one file written atomically. The RNG needs no state: shuffles and
 * dropout masks are pure functions of (seed, epoch / step, example). */
imcap_status imcap_checkpoint_save(const char *path, const imcap_model *m, const imcap_train_state *st,
                                   imcap_error *err);
imcap_status imcap_checkpoint_load(const char *path, imcap_model **m, imcap_train_state *st, imcap_error *err);

/* Trains m in place on the train (+ restval) split of ds, validating on the
 * val split; images come from cache (one entry per ds image), and with
 * st->opt.freeze_encoder their features from features (NULL otherwise).
 * st carries the optimiser state (fresh or from a checkpoint). Returns
 * IMCAP_E_INTERRUPTED after writing a checkpoint when *cb->stop was set. */
imcap_status imcap_train_run(imcap_model *m, imcap_train_state *st, const imcap_dataset *ds,
                             const imcap_image_cache *cache, const imcap_feature_cache *features,
                             const imcap_train_callbacks *cb, imcap_error *err);
#endif
