/* batcher.c — many images decoded together (continuous batching).
 *
 * Up to `block` images are in flight. At every decoder step the live
 * hypotheses of all of them are stacked into one matrix, so each weight
 * matrix is read once per step for all of them instead of once per image;
 * an image whose search ends leaves the block, and images pushed since
 * are encoded together, a group at a time, and join it.
 *
 * Why the captions equal one-at-a-time decoding bit for bit: every row of
 * the decoder step is computed exactly as if alone (imcap_rows_affine and
 * the attention never mix rows), each image's search is the same
 * imcap_beam state machine as imcap_beam_search, and the encoder computes
 * each image as it does alone. So the output does not depend on `block`,
 * on the order images share steps in, or on the thread count.
 *
 * Memory (floats), with B = block, k = beam, S = image size:
 *   B * (3 S^2 staged input + L (D + A) + 2 Hd annotations and state)
 *   + B * 4k * T * (L + 2) histories (+ V per step when traced: never here)
 *   + B k * (4 Hd + 4 Hd + 2 D + A + L + E + D + V) step rows
 *   + the encoder's activations for ENC_GROUP images.
 * For the default model (S 64, L 64, D 66, A 128, Hd 256, T 24) and B 32,
 * beam 3: about 6 MB, whatever the number of images. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "image/image.h"
#include "util/util.h"

/* images encoded per encoder call: enough to share its products, few
 * enough that the activations stay small */
#define ENC_GROUP 8

enum { SLOT_FREE, SLOT_QUEUED, SLOT_DECODING, SLOT_DONE };

typedef struct {
    int state;
    uint64_t tag, seq;     /* seq: push order, for returning in a stable order */
    int width, height;
    float *input;          /* [3,S,S] preprocessed, until encoded */
    imcap_decoder_init init;
    imcap_beam beam;
    int row0, nrows;       /* this image's rows in the current step */
    double domain_score;
    imcap_result *res;
    imcap_status status;
    char msg[sizeof(((imcap_error *)0)->msg)];
} bslot;

struct imcap_batcher {
    const imcap_model *m;
    imcap_options opt;
    int block, k, T, rcap;
    uint64_t seq;
    int n_pending;         /* pushed and not returned */
    bslot *slots;
    imcap_encoder_acts enc;
    imcap_step_cache step;
    int *tokens;
    float *h, *c;          /* [rcap,Hd] the step's input rows, gathered */
    float *hs, *cs;        /* [block*k,Hd] each slot's live states, at rows slot*k.. */
    float *logp;
    const float **a_rows, **p_rows;
};

void imcap_batcher_free(imcap_batcher *b) {
    if (!b) return;
    for (int i = 0; b->slots && i < b->block; i++) {
        bslot *s = &b->slots[i];
        free(s->input);
        imcap_decoder_init_free(&s->init);
        imcap_beam_free(&s->beam);
        imcap_result_free(s->res);
    }
    free(b->slots);
    imcap_encoder_acts_free(&b->enc);
    imcap_step_cache_free(&b->step);
    free(b->tokens), free(b->h), free(b->c), free(b->hs), free(b->cs), free(b->logp);
    free(b->a_rows), free(b->p_rows);
    free(b);
}

imcap_status imcap_batcher_new(const imcap_model *m, const imcap_options *opt, int block, imcap_batcher **out,
                               imcap_error *err) {
    if (!out) return imcap_fail(err, IMCAP_E_ARG, "imcap_batcher_new: out is NULL");
    *out = NULL;
    imcap_status s = imcap_check_options(m, opt, err);
    if (s) return s;
    if (block < 1 || block > 4096) return imcap_fail(err, IMCAP_E_ARG, "block of %d images outside [1, 4096]", block);
    const imcap_config *cfg = &m->cfg;
    int V = m->vocab.n, Hd = cfg->hidden_dim, S = cfg->image_size;
    imcap_batcher *b = calloc(1, sizeof *b);
    if (!b) return imcap_fail(err, IMCAP_E_NOMEM, "out of memory for the batcher");
    b->m = m, b->opt = *opt, b->block = block, b->k = opt->beam;
    b->T = opt->max_length > 0 ? opt->max_length : cfg->max_length;
    b->rcap = block * b->k;
    int ok = (b->slots = calloc((size_t)block, sizeof *b->slots)) != NULL;
    for (int i = 0; ok && i < block; i++) {
        bslot *sl = &b->slots[i];
        ok = (sl->input = imcap_aligned_alloc((size_t)3 * S * S * sizeof(float))) != NULL &&
             imcap_decoder_init_alloc(&sl->init, cfg) == IMCAP_OK &&
             imcap_beam_init(&sl->beam, b->k, b->T, cfg->L, V, 0) == IMCAP_OK;
    }
    ok = ok && imcap_encoder_acts_init(&b->enc, cfg, ENC_GROUP, 0) == IMCAP_OK;
    ok = ok && imcap_step_cache_alloc_infer(&b->step, cfg, V, b->rcap) == IMCAP_OK;
    size_t rh = (size_t)b->rcap * Hd * sizeof(float);
    ok = ok && (b->tokens = malloc((size_t)b->rcap * sizeof(int))) && (b->h = imcap_aligned_alloc(rh)) &&
         (b->c = imcap_aligned_alloc(rh)) && (b->hs = imcap_aligned_alloc(rh)) && (b->cs = imcap_aligned_alloc(rh)) &&
         (b->logp = imcap_aligned_alloc((size_t)b->rcap * V * sizeof(float))) &&
         (b->a_rows = malloc((size_t)b->rcap * sizeof *b->a_rows)) &&
         (b->p_rows = malloc((size_t)b->rcap * sizeof *b->p_rows));
    if (!ok) {
        imcap_batcher_free(b);
        return imcap_fail(err, IMCAP_E_NOMEM, "out of memory for a batcher of %d images", block);
    }
    *out = b;
    return IMCAP_OK;
}

int imcap_batcher_space(const imcap_batcher *b) { return b ? b->block - b->n_pending : 0; }
int imcap_batcher_pending(const imcap_batcher *b) { return b ? b->n_pending : 0; }

imcap_status imcap_batcher_push(imcap_batcher *b, const imcap_image *img, uint64_t tag, imcap_error *err) {
    if (!b) return imcap_fail(err, IMCAP_E_ARG, "no batcher");
    if (!img || !img->rgb || img->width < 1 || img->height < 1) return imcap_fail(err, IMCAP_E_ARG, "empty image");
    bslot *sl = NULL;
    for (int i = 0; i < b->block && !sl; i++)
        if (b->slots[i].state == SLOT_FREE) sl = &b->slots[i];
    if (!sl) return imcap_fail(err, IMCAP_E_ARG, "the batcher is full (%d images): take a result first", b->block);
    imcap_status s = imcap_image_to_input(img, &b->m->cfg, sl->input, err);
    if (s) return s;
    sl->state = SLOT_QUEUED;
    sl->tag = tag, sl->seq = b->seq++;
    sl->width = img->width, sl->height = img->height;
    b->n_pending++;
    return IMCAP_OK;
}

/* Encodes the queued images, ENC_GROUP at a time, and starts their search. */
static void encode_queued(imcap_batcher *b) {
    const imcap_model *m = b->m;
    const imcap_config *cfg = &m->cfg;
    size_t in_floats = (size_t)3 * cfg->image_size * cfg->image_size, feat = (size_t)cfg->D * cfg->L;
    bslot *group[ENC_GROUP];
    int i = 0;
    while (i < b->block) {
        int n = 0;
        for (; i < b->block && n < ENC_GROUP; i++)
            if (b->slots[i].state == SLOT_QUEUED) {
                group[n] = &b->slots[i];
                memcpy(b->enc.act[0] + n * in_floats, group[n]->input, in_floats * sizeof(float));
                n++;
            }
        if (n == 0) break;
        imcap_encoder_forward_n(cfg, &m->p, &m->epack, &b->enc, n);
        const float *out = imcap_encoder_output(cfg, &b->enc);
        for (int j = 0; j < n; j++) {
            imcap_decoder_prepare_forward(cfg, &m->p, &m->pack, out + j * feat, &group[j]->init);
            group[j]->domain_score = b->enc.domain_score ? b->enc.domain_score[j] : NAN;
            imcap_beam_reset(&group[j]->beam);
            group[j]->state = SLOT_DECODING;
        }
    }
}

/* Whether to encode the queued images before the next step. A caller
 * that refills the block as images finish queues one or two at a time;
 * encoding them at once would run the encoder (and the in-domain score's
 * read of the precision) at batch 1. So they wait, while the others
 * decode, until a full group is queued, or nothing else is decoding.
 * Waiting changes no bits: each image is encoded and decoded as alone. */
static int should_encode(const imcap_batcher *b) {
    int queued = 0, decoding = 0, group = b->block < ENC_GROUP ? b->block : ENC_GROUP;
    for (int i = 0; i < b->block; i++) {
        queued += b->slots[i].state == SLOT_QUEUED;
        decoding += b->slots[i].state == SLOT_DECODING;
    }
    return queued > 0 && (decoding == 0 || queued >= group);
}

/* One decoder step over the live rows of every decoding image. */
static void step_all(imcap_batcher *b) {
    const imcap_model *m = b->m;
    const imcap_config *cfg = &m->cfg;
    int Hd = cfg->hidden_dim, V = m->vocab.n, L = cfg->L, R = 0;
    size_t hb = (size_t)Hd * sizeof(float);
    for (int i = 0; i < b->block; i++) {
        bslot *sl = &b->slots[i];
        if (sl->state != SLOT_DECODING) continue;
        sl->row0 = R;
        sl->nrows = imcap_beam_tokens(&sl->beam, b->tokens + R);
        const float *hsrc = sl->beam.step == 0 ? sl->init.h0 : b->hs + (size_t)i * b->k * Hd;
        const float *csrc = sl->beam.step == 0 ? sl->init.c0 : b->cs + (size_t)i * b->k * Hd;
        memcpy(b->h + (size_t)R * Hd, hsrc, sl->nrows * hb);
        memcpy(b->c + (size_t)R * Hd, csrc, sl->nrows * hb);
        for (int r = 0; r < sl->nrows; r++) b->a_rows[R + r] = sl->init.a, b->p_rows[R + r] = sl->init.p;
        R += sl->nrows;
    }
    if (R == 0) return;
    imcap_step_cache *s = &b->step;
    imcap_decoder_step_infer_rows(m, R, b->tokens, b->h, b->c, b->a_rows, b->p_rows, s);
    for (int i = 0; i < b->block; i++) {
        bslot *sl = &b->slots[i];
        if (sl->state != SLOT_DECODING) continue;
        size_t o = (size_t)sl->row0;
        imcap_beam_advance(&sl->beam, s->logits + o * V, s->alpha + o * L, s->h + o * Hd, s->c + o * Hd, Hd,
                           b->logp + o * V, b->hs + (size_t)i * b->k * Hd, b->cs + (size_t)i * b->k * Hd);
        if (imcap_beam_finished(&sl->beam)) {
            imcap_error e;
            sl->status = imcap_beam_result(&sl->beam, m, &b->opt, &sl->res, NULL, &e);
            if (sl->status == IMCAP_OK) {
                sl->res->image_width = sl->width, sl->res->image_height = sl->height;
                imcap_result_set_domain(sl->res, sl->domain_score);
            }
            else snprintf(sl->msg, sizeof sl->msg, "%s", e.msg);
            sl->state = SLOT_DONE;
        }
    }
}

imcap_status imcap_batcher_next(imcap_batcher *b, uint64_t *tag, imcap_result **res, imcap_error *err) {
    if (!b || !tag || !res) return imcap_fail(err, IMCAP_E_ARG, "imcap_batcher_next: NULL argument");
    *res = NULL;
    for (;;) {
        /* finished images leave in push order among those done */
        bslot *first = NULL;
        for (int i = 0; i < b->block; i++) {
            bslot *sl = &b->slots[i];
            if (sl->state == SLOT_DONE && (!first || sl->seq < first->seq)) first = sl;
        }
        if (first) {
            *tag = first->tag;
            imcap_status st = first->status;
            if (st == IMCAP_OK) *res = first->res;
            else imcap_fail(err, st, "%s", first->msg);
            first->res = NULL;
            first->state = SLOT_FREE;
            b->n_pending--;
            return st;
        }
        if (b->n_pending == 0) return IMCAP_OK;
        if (should_encode(b)) encode_queued(b);
        step_all(b);
    }
}
