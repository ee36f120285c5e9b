/* trainer.c — the training loop: examples, shuffles, minibatches spread over
 * the threads, Adam, validation, best model, checkpoints, interruption. */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "decode/decode.h"
#include "eval/metrics.h"
#include "eval/objects.h"
#include "eval/score.h"
#include "calibrate.h"
#include "train.h"

typedef struct {
    int image;         /* index into ds / cache */
    int *tokens;       /* y_1..y_T, <end> included */
    int length;
    uint64_t id;
    uint16_t *att_objects; /* [length] --att-sup: the objects each target word names, or NULL */
} example_ref;

typedef struct {
    example_ref *ex;
    int n;
} example_set;

static void examples_free(example_set *s) {
    for (int i = 0; i < s->n; i++) free(s->ex[i].tokens), free(s->ex[i].att_objects);
    free(s->ex);
    memset(s, 0, sizeof *s);
}

static const char *const SELECT_NAMES[] = {"loss", "bleu4", "cider", "f1", "auto"};
const char *imcap_select_name(int select) {
    return select >= 0 && select <= IMCAP_SELECT_AUTO ? SELECT_NAMES[select] : "loss";
}
int imcap_select_parse(const char *name) {
    for (int i = 0; i < IMCAP_SELECT_AUTO; i++)
        if (!strcmp(name, SELECT_NAMES[i])) return i;
    return -1;
}

/* Xu et al. and the PyTorch tutorial weigh sum_i (1 - sum_t alpha_ti)^2
 * with lambda 1 after a mean over the L cells; imcap sums over the cells,
 * so the same strength is 1 / L (1/64 = 0.0156 for an 8x8 grid, what the
 * shipped model was trained with). A lambda of 1 over a sum swamps the
 * cross-entropy early on (the regulariser starts near L). */
float imcap_att_reg_default(const imcap_config *cfg) { return 1.0f / (float)(cfg->L > 0 ? cfg->L : 1); }

/* Every (image, caption) pair of the wanted splits whose image decoded.
 * Captions longer than max_length - 1 words are cut so <end> still fits.
 * scenes (the images' objects, n = 0 for none) give the pairs their
 * attention targets. */
static imcap_status collect(const imcap_dataset *ds, const imcap_image_cache *cache, const imcap_feature_cache *fc,
                            const imcap_vocab_index *ix, int train, int max_length, const imcap_scene *scenes,
                            example_set *out) {
    memset(out, 0, sizeof *out);
    int cap = 0;
    for (int i = 0; i < ds->n; i++) {
        imcap_split sp = ds->images[i].split;
        int want = train ? (sp == IMCAP_SPLIT_TRAIN || sp == IMCAP_SPLIT_RESTVAL) : sp == IMCAP_SPLIT_VAL;
        if (!want || !cache->ok[i] || (fc && !fc->ok[i])) continue;
        for (int j = 0; j < ds->images[i].n_sentences; j++) {
            const imcap_sentence *se = &ds->images[i].sentences[j];
            if (se->n_tokens == 0) continue;
            if (out->n == cap) {
                cap = cap ? 2 * cap : 1024;
                example_ref *ne = realloc(out->ex, (size_t)cap * sizeof *ne);
                if (!ne) return IMCAP_E_NOMEM;
                out->ex = ne;
            }
            int T = se->n_tokens < max_length - 1 ? se->n_tokens : max_length - 1;
            example_ref *e = &out->ex[out->n];
            e->tokens = malloc((size_t)(T + 1) * sizeof(int));
            if (!e->tokens) return IMCAP_E_NOMEM;
            for (int t = 0; t < T; t++) e->tokens[t] = imcap_vocab_lookup(ix, se->tokens[t]);
            e->tokens[T] = IMCAP_TOK_END;
            e->length = T + 1;
            e->att_objects = NULL;
            if (scenes && scenes[i].n > 0) {
                if (!(e->att_objects = malloc(((size_t)T + 1) * sizeof *e->att_objects))) return IMCAP_E_NOMEM;
                imcap_caption_word_objects(&scenes[i], T, (const char *const *)se->tokens, e->att_objects);
                e->att_objects[T] = 0;
            }
            e->image = i;
            e->id = (uint64_t)out->n;
            out->n++;
        }
    }
    return IMCAP_OK;
}

/* --att-sup: every train image's objects (n = 0 for an image without). */
static imcap_status load_scenes(const imcap_dataset *ds, imcap_scene **out, imcap_error *err) {
    imcap_scene *sc = calloc((size_t)(ds->n > 0 ? ds->n : 1), sizeof *sc);
    if (!sc) return imcap_fail(err, IMCAP_E_NOMEM, "--att-sup: out of memory for the scenes' objects");
    int any = 0;
    for (int i = 0; i < ds->n; i++) {
        const imcap_data_image *im = &ds->images[i];
        if (!im->objects_json || (im->split != IMCAP_SPLIT_TRAIN && im->split != IMCAP_SPLIT_RESTVAL)) continue;
        imcap_error e;
        if (imcap_scene_from_json(im->objects_json, &sc[i], &e)) {
            free(sc);
            return imcap_fail(err, IMCAP_E_ARG, "attention targets: image %s: %s", im->filename, e.msg);
        }
        any = 1;
    }
    if (!any) {
        free(sc);
        return imcap_fail(err, IMCAP_E_ARG,
                          "--att-sup, --att-sup-rel and --rel-weight need object annotations (\"objects\", as imcap "
                          "synth writes them) in the train split; this data set has none");
    }
    *out = sc;
    return IMCAP_OK;
}

/* The order of epoch e: a Fisher-Yates shuffle seeded by (seed, e). */
static void epoch_order(int *perm, int n, uint64_t seed, int epoch) {
    imcap_rng r;
    imcap_rng_seed(&r, seed * 0x9e3779b97f4a7c15ULL + (uint64_t)epoch + 1);
    for (int i = 0; i < n; i++) perm[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(imcap_rng_next(&r) % (uint64_t)(i + 1));
        int t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
}

typedef struct {
    imcap_worker_pool pool;
    int batch_size;    /* examples per step: --batch, or fewer when the data set has fewer */
    imcap_example *batch;
    const imcap_feature_cache *features; /* frozen encoder: the examples' features */
    const imcap_scene *scenes;           /* --att-sup: every image's objects (n = 0: none), or NULL */
} pool;

static int run_batch(pool *p, const imcap_model *m, int n, const imcap_loss_options *lo, int no_grad, float *grad_out,
                     imcap_loss_stats *stats) {
    return imcap_pool_run(&p->pool, m, p->batch, n, lo, no_grad, grad_out, stats);
}

/* Rank 0 tells the others, after every step, whether to stop (a failure
 * anywhere ends the whole job instead: the CLI aborts it). */
enum { CTL_GO, CTL_STOP };
static int share_control(const imcap_train_comm *c, int *ctl) {
    return c && c->size > 1 && c->bcast(c->ctx, 0, ctl, sizeof *ctl);
}

static void fill_batch(pool *p, const example_set *set, const int *idx, int n, const imcap_image_cache *cache) {
    for (int i = 0; i < n; i++) {
        const example_ref *e = &set->ex[idx[i]];
        p->batch[i].rgb = imcap_cache_image(cache, e->image);
        p->batch[i].feat = p->features ? imcap_features_of(p->features, e->image) : NULL;
        p->batch[i].tokens = e->tokens;
        p->batch[i].length = e->length;
        p->batch[i].id = e->id;
        p->batch[i].att_objects = e->att_objects;
        p->batch[i].scene = p->scenes && e->att_objects ? &p->scenes[e->image] : NULL;
    }
}

/* The metadata says what OUT holds ("not validated" above all): a model
 * saved without it would mislead, so a failure fails the run. */
static imcap_status set_meta(imcap_model *m, const char *key, const char *value, imcap_error *err) {
    if (imcap_model_set_metadata(m, key, value) != IMCAP_OK)
        return imcap_fail(err, IMCAP_E_NOMEM, "out of memory setting the model's %s", key);
    return IMCAP_OK;
}

static void message(const imcap_train_callbacks *cb, const char *fmt, ...) IMCAP_PRINTF(2, 3);
static void message(const imcap_train_callbacks *cb, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    imcap_vtell(cb ? cb->on_message : NULL, cb ? cb->ctx : NULL, fmt, ap);
    va_end(ap);
}

/* Validation: teacher-forced loss over the val pairs, greedy captions of up
 * to val_images val images scored with BLEU/CIDEr-D and, on synthetic
 * scenes, the object and attention metrics. */
/* validation images come from the cache, already resized */
typedef struct {
    const imcap_image_cache *cache;
    const int *imgs;
    imcap_result **res;
} val_io;

/* the cache's pixels are lent, not copied (val_release does nothing) */
static imcap_status val_load(void *ctx, size_t k, imcap_image *img, imcap_error *err) {
    (void)err;
    const val_io *v = ctx;
    img->width = img->height = v->cache->S;
    img->rgb = (unsigned char *)imcap_cache_image(v->cache, v->imgs[k]);
    return IMCAP_OK;
}

static void val_release(void *ctx, size_t k, imcap_image *img) { (void)ctx, (void)k, (void)img; }

static void val_done(void *ctx, size_t k, imcap_result *res, imcap_status st, const imcap_error *err) {
    (void)st, (void)err;
    ((val_io *)ctx)->res[k] = res;
}

static imcap_status validate(pool *p, const imcap_model *m, const imcap_dataset *ds, const imcap_image_cache *cache,
                             const example_set *val, const imcap_train_options *o, imcap_val_report *rep,
                             imcap_error *err) {
    imcap_loss_options lo = {0};
    imcap_loss_stats st = {0};
    int B = p->batch_size, ni = 0;
    int *idx = malloc((size_t)B * sizeof(int)), *imgs = malloc((size_t)(ds->n ? ds->n : 1) * sizeof(int));
    if (!idx || !imgs) {
        free(idx), free(imgs);
        return imcap_fail(err, IMCAP_E_NOMEM, "validation: out of memory");
    }
    for (int start = 0; start < val->n; start += B) {
        int n = val->n - start < B ? val->n - start : B;
        for (int i = 0; i < n; i++) idx[i] = start + i;
        fill_batch(p, val, idx, n, cache);
        if (run_batch(p, m, n, &lo, 1, NULL, &st)) {
            free(idx), free(imgs);
            return imcap_fail(err, IMCAP_E_NOMEM, "validation: out of memory");
        }
    }
    free(idx);
    rep->val_loss = st.n_tokens ? st.ce_sum / st.n_tokens : 0;

    for (int i = 0; i < ds->n; i++)
        if (ds->images[i].split == IMCAP_SPLIT_VAL && cache->ok[i] && ds->images[i].n_sentences > 0 &&
            (o->val_images <= 0 || ni < o->val_images))
            imgs[ni++] = i;
    rep->n_images = ni;
    rep->score = -rep->val_loss;
    if (ni == 0) {
        free(imgs);
        return IMCAP_OK;
    }
    imcap_result **res = calloc((size_t)ni, sizeof *res);
    imcap_scored *sc = calloc((size_t)ni, sizeof *sc);
    if (!res || !sc) {
        free(res), free(sc), free(imgs);
        return imcap_fail(err, IMCAP_E_NOMEM, "validation: out of memory");
    }
    imcap_options copt;
    imcap_options_default(&copt);
    copt.beam = 1;
    val_io vio = {cache, imgs, res};
    imcap_many_io io = {val_load, val_done, NULL, &vio, NULL, val_release};
    imcap_error me;
    /* a failure leaves its res[k] NULL: it is left out of the scores */
    imcap_caption_many(m, (size_t)ni, &copt, 32, p->pool.nthreads, &io, NULL, &me);
    for (int k = 0; k < ni; k++) {
        sc[k].im = &ds->images[imgs[k]];
        if (!res[k]) continue;
        const imcap_hypothesis *h = &res[k]->hyps[0];
        sc[k].caption = h->text;
        sc[k].n_words = h->n_tokens - (h->finished && h->n_tokens > 0 ? 1 : 0);
        sc[k].words = (const char *const *)h->words;
        sc[k].attention = h->attention, sc[k].grid_h = res[k]->grid_h, sc[k].grid_w = res[k]->grid_w;
    }
    /* the scoring `imcap eval` does, so the score that picks the best model
     * is the one eval reports */
    imcap_split_scores ss;
    imcap_status s = imcap_score_split(sc, ni, NULL, NULL, &ss, err);
    if (s == IMCAP_OK && ss.have_scores) rep->bleu4 = ss.scores.bleu.bleu[3], rep->cider = ss.scores.cider_d;
    int have_objects = s == IMCAP_OK && ss.object_images > 0;
    rep->have_objects = have_objects;
    if (have_objects) {
        const imcap_object_summary *sum = &ss.objects;
        rep->f1 = sum->f1, rep->pointing = sum->pointing, rep->mass = sum->mass, rep->relations = sum->relations;
    }
    switch (o->select) {
    case IMCAP_SELECT_BLEU4: rep->score = rep->bleu4; break;
    case IMCAP_SELECT_CIDER: rep->score = rep->cider; break;
    case IMCAP_SELECT_F1: rep->score = (rep->f1 + rep->pointing) / 2; break;
    case IMCAP_SELECT_AUTO: rep->score = have_objects ? (rep->f1 + rep->pointing) / 2 : rep->bleu4; break;
    default: rep->score = -rep->val_loss;
    }
    for (int k = 0; k < ni; k++) imcap_result_free(res[k]);
    free(res), free(sc), free(imgs);
    return s;
}

imcap_status imcap_train_run(imcap_model *m, imcap_train_state *st, const imcap_dataset *ds,
                             const imcap_image_cache *cache, const imcap_feature_cache *features,
                             const imcap_train_callbacks *cb, imcap_error *err) {
    const imcap_train_options *o = &st->opt;
    imcap_status s = IMCAP_OK;
    const imcap_train_comm *comm = cb ? cb->comm : NULL;
    int rank = comm ? comm->rank : 0, nproc = comm ? comm->size : 1;
    if (rank != 0) cb = NULL; /* rank 0 alone reports, validates and writes */
    if (o->batch < 1 || o->threads < 1 || o->threads > 64)
        return imcap_fail(err, IMCAP_E_ARG, "batch (%d) and threads (%d) must be positive, threads at most 64", o->batch,
                          o->threads);
    if (o->shards == 0) st->opt.shards = o->threads * nproc;
    if (o->shards < 1 || o->shards > o->batch)
        return imcap_fail(err, IMCAP_E_ARG, "--grad-shards %d must be between 1 and the batch (%d)", o->shards,
                          o->batch);
    int fixed = imcap_config_untrainable_layer(&m->cfg), frozen = o->freeze_encoder;
    if (frozen && (!features || features->n != ds->n || features->D != m->cfg.D || features->L != m->cfg.L))
        return imcap_fail(err, IMCAP_E_ARG, "a frozen encoder needs the feature cache of these images and this model");
    if (!frozen) features = NULL;
    if (fixed >= 0 && !frozen)
        return imcap_fail(err, IMCAP_E_ARG,
                          "the model's encoder[%d] is a %s layer, which imcap cannot train; train the decoder alone "
                          "with --freeze-encoder",
                          fixed, imcap_layer_type_name(m->cfg.layers[fixed].type));
    if (cache->S != m->cfg.image_size)
        return imcap_fail(err, IMCAP_E_ARG, "image cache is %dpx, the model wants %dpx", cache->S, m->cfg.image_size);
    imcap_vocab_index *ix = imcap_vocab_index_new(&m->vocab);
    example_set train = {0}, val = {0};
    imcap_scene *scenes = NULL;
    pool p = {0};
    float *grad = NULL;
    int *perm = NULL;
    int rel_weighted = o->rel_weight > 0 && o->rel_weight != 1;
    if ((o->att_sup > 0 || o->att_sup_rel > 0 || o->att_sup_desc > 0 || rel_weighted) &&
        (s = load_scenes(ds, &scenes, err)))
        goto done;
    if (!ix || collect(ds, cache, features, ix, 1, m->cfg.max_length, scenes, &train) ||
        collect(ds, cache, features, ix, 0, m->cfg.max_length, NULL, &val)) {
        s = imcap_fail(err, IMCAP_E_NOMEM, "out of memory collecting the examples");
        goto done;
    }
    if (train.n == 0) {
        s = imcap_fail(err, IMCAP_E_ARG, "no training pairs (image, caption): the data set's train split is empty");
        goto done;
    }
    /* the options keep the batch asked for (a resumed run compares them);
     * the steps take what there is (shards past the examples are empty) */
    int B = o->batch < train.n ? o->batch : train.n;
    if (B < o->batch)
        message(cb, "warning: %d training pairs (image, caption), fewer than one batch of %d: batches of %d", train.n,
                o->batch, B);
    if (o->select == IMCAP_SELECT_F1) {
        int objects = 0;
        for (int i = 0; i < ds->n && !objects; i++) objects = ds->images[i].split == IMCAP_SPLIT_VAL && ds->images[i].objects_json;
        if (!objects) {
            s = imcap_fail(err, IMCAP_E_ARG, "--select f1 needs object annotations (synthetic scenes) in the val split; "
                                             "this data set has none: use loss, bleu4 or cider");
            goto done;
        }
    }
    long per_epoch = train.n / B;
    long total = o->max_steps > 0 ? o->max_steps : per_epoch * o->epochs;
    imcap_adam_options adam = o->adam;
    adam.total_steps = total;
    message(cb, "%d training pairs, %d validation pairs, %ld steps per epoch, %ld steps", train.n, val.n, per_epoch, total);
    if (adam.warmup >= total && st->step < total)
        message(cb, "warning: --warmup %ld >= the run's %ld steps: the learning rate never reaches its peak (--lr)",
                adam.warmup, total);

    p.batch_size = B;
    p.batch = calloc((size_t)B, sizeof *p.batch);
    p.features = features;
    p.scenes = scenes;
    size_t n_train = imcap_trained_floats(m, frozen);
    grad = imcap_aligned_alloc(n_train * sizeof(float));
    perm = malloc((size_t)train.n * sizeof(int));
    if (!p.batch || !grad || !perm ||
        imcap_pool_init(&p.pool, m, o->threads, o->shards, B, frozen, comm) != IMCAP_OK) {
        s = imcap_fail(err, IMCAP_E_NOMEM, "out of memory for training buffers");
        goto done;
    }

    int cur_epoch = -1;
    double t0 = imcap_now(), last_t = t0;
    long start_step = st->step;
    imcap_train_progress pr = {0};
    double ema_loss = -1;
    while (st->step < total) {
        long step = st->step;
        int epoch = (int)(step / per_epoch);
        if (epoch != cur_epoch) epoch_order(perm, train.n, o->seed, epoch), cur_epoch = epoch;
        fill_batch(&p, &train, perm + (step % per_epoch) * B, B, cache);
        imcap_loss_options lo = {.att_reg = o->att_reg, .dropout = o->dropout, .seed = o->seed, .step = step,
                                 .att_sup = o->att_sup, .att_sup_rel = o->att_sup_rel,
                                 .att_sup_desc = o->att_sup_desc < 0 ? o->att_sup : o->att_sup_desc,
                                 .rel_weight = o->rel_weight};
        imcap_loss_stats ls = {0};
        if (run_batch(&p, m, B, &lo, 0, grad, &ls)) {
            s = imcap_fail(err, IMCAP_E_IO, "step %ld: the gradient could not be summed over the processes", step + 1);
            goto done;
        }
        /* a frozen encoder's tensors are after the decoder's: Adam (and its
         * weight decay) never touches them */
        double norm = imcap_adam_step(&adam, step + 1, m->block, grad, st->m, st->v, n_train);
        st->step = step + 1;

        double ce = ls.ce_sum / ls.n_tokens, reg = ls.reg_sum / ls.n_examples;
        double loss = ce + o->att_reg * reg + (ls.sup_sum + ls.ce_extra_sum) / ls.n_tokens;
        ema_loss = ema_loss < 0 ? loss : 0.95 * ema_loss + 0.05 * loss;
        double now = imcap_now();
        pr.step = st->step, pr.total_steps = total, pr.epoch = epoch;
        pr.loss = ema_loss, pr.ce = ce, pr.reg = o->att_reg * reg, pr.token_accuracy = (double)ls.correct / ls.n_tokens;
        pr.grad_norm = norm, pr.lr = imcap_lr_at(&adam, step);
        pr.examples_per_s = (double)(st->step - start_step) * B / (now - t0);
        pr.eta_s = (total - st->step) * B / (pr.examples_per_s > 0 ? pr.examples_per_s : 1);
        if (cb && cb->on_progress && (now - last_t > 0.25 || st->step == total)) {
            cb->on_progress(cb->ctx, &pr);
            last_t = now;
        }
        if (!isfinite(loss)) {
            s = imcap_fail(err, IMCAP_E_ARG, "training diverged at step %ld (loss %g); lower --lr", st->step, loss);
            goto done;
        }
        long ve = o->val_every > 0 ? o->val_every : per_epoch;
        if (rank == 0 && (st->step % ve == 0 || st->step == total)) {
            imcap_val_report rep = {0};
            rep.step = st->step, rep.epoch = epoch;
            imcap_model_sync(m); /* the captions below decode with the weights just updated */
            if ((s = validate(&p, m, ds, cache, &val, o, &rep, err))) goto done;
            if (!st->have_best || rep.n_images == 0 || rep.score > st->best_score) {
                rep.is_best = 1;
                st->best_score = rep.score, st->have_best = 1;
                char meta[512];
                snprintf(meta, sizeof meta, "step %ld, val loss %.4f, BLEU-4 %.4f, CIDEr-D %.4f%s", st->step, rep.val_loss,
                         rep.bleu4, rep.cider, rep.have_objects ? " (objects in val_metrics)" : "");
                if ((s = set_meta(m, "imcap.train.val", meta, err))) goto done;
                if (rep.have_objects) {
                    snprintf(meta, sizeof meta, "object F1 %.4f, pointing %.4f, mass %.4f, relations %.4f", rep.f1,
                             rep.pointing, rep.mass, rep.relations);
                    if ((s = set_meta(m, "imcap.train.val_objects", meta, err))) goto done;
                }
                if (o->command && (s = set_meta(m, "imcap.train.command", o->command, err))) goto done;
                if ((s = imcap_model_save(m, o->out_path, err))) goto done;
            }
            if (cb && cb->on_validation) cb->on_validation(cb->ctx, &rep);
        }
        int stop = (cb && cb->stop && *cb->stop) || (o->stop_after > 0 && st->step == o->stop_after);
        int ctl = stop ? CTL_STOP : CTL_GO;
        if (share_control(comm, &ctl)) {
            s = imcap_fail(err, IMCAP_E_IO, "step %ld: lost contact with rank 0", st->step);
            goto done;
        }
        stop = ctl == CTL_STOP;
        if (rank == 0 && ((o->ckpt_every > 0 && st->step % o->ckpt_every == 0) || stop || st->step == total)) {
            if ((s = imcap_checkpoint_save(o->ckpt_path, m, st, err))) goto done;
        }
        if (stop && st->step < total) {
            /* a run stopped before its first validation still leaves a
             * model that captions: the current weights, marked as such */
            const char *what = "the best model so far is in";
            if (rank != 0) {
                s = imcap_fail(err, IMCAP_E_INTERRUPTED, "interrupted at step %ld (rank 0 wrote the checkpoint)",
                               st->step);
                goto done;
            }
            if (!st->have_best) {
                char meta[128];
                snprintf(meta, sizeof meta, "not validated: interrupted at step %ld", st->step);
                if ((s = set_meta(m, "imcap.train.val", meta, err))) goto done;
                if (o->command && (s = set_meta(m, "imcap.train.command", o->command, err))) goto done;
                if ((s = imcap_model_save(m, o->out_path, err))) goto done;
                what = "the current (not yet validated) weights are in";
            }
            s = imcap_fail(err, IMCAP_E_INTERRUPTED, "interrupted at step %ld; checkpoint written to %s; %s %s", st->step,
                           o->ckpt_path, what, o->out_path);
            goto done;
        }
    }
    /* the best model learns what its training images look like: the in-domain
     * check's statistics (a data set without val images gets none) */
    if (s == IMCAP_OK && st->step >= total && rank == 0) {
        imcap_model *best = NULL;
        imcap_error e2;
        if (imcap_model_load(o->out_path, &best, &e2) == IMCAP_OK) {
            imcap_calibrate_options co = {0.99, 20000, best->cfg.has_domain ? best->cfg.domain_layer : -1};
            if (imcap_calibrate(&best, ds, cache, features, &co, &e2) == IMCAP_OK &&
                imcap_model_save(best, o->out_path, &e2) == IMCAP_OK)
                message(cb, "in-domain statistics in %s: threshold %.4g (%d of %d val images above it)", o->out_path,
                        best->cfg.domain_threshold, best->cfg.domain_val_flagged, best->cfg.domain_val_images);
            else
                message(cb, "no in-domain statistics for %s: %s", o->out_path, e2.msg);
            imcap_model_free(best);
        }
    }
done:
    st->work_examples = p.pool.examples, st->work_seconds = p.pool.seconds;
    imcap_model_sync(m); /* whoever captions with m next sees its last weights */
    imcap_pool_free(&p.pool);
    free(p.batch), free(grad), free(perm);
    examples_free(&train), examples_free(&val);
    free(scenes);
    imcap_vocab_index_free(ix);
    return s;
}
