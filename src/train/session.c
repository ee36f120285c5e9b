/* session.c — imcap_train (imcap.h): a whole training run as one call.
 * The data set, the model (new, from weights, or a checkpoint with its
 * options reconciled), the image and feature caches (rank 0 builds them,
 * the other processes wait and open them), then imcap_train_run. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "train.h"

void imcap_train_request_init(imcap_train_request *r) {
    memset(r, 0, sizeof *r);
    double *unset[] = {&r->epochs, &r->max_steps, &r->batch, &r->grad_shards, &r->seed, &r->min_count,
                       &r->val_every, &r->val_images, &r->ckpt_every, &r->warmup, &r->lr, &r->min_lr_frac,
                       &r->weight_decay, &r->clip, &r->att_reg, &r->dropout, &r->freeze_encoder, &r->att_sup,
                       &r->att_sup_rel, &r->att_sup_desc, &r->rel_weight};
    for (size_t i = 0; i < sizeof unset / sizeof unset[0]; i++) *unset[i] = IMCAP_TRAIN_UNSET;
}

static int set(double v) { return v != IMCAP_TRAIN_UNSET; }

typedef struct {
    const imcap_train_callbacks *cb;
    int lead;
} ctx_t;

static void say(const ctx_t *c, const char *fmt, ...) IMCAP_PRINTF(2, 3);
static void say(const ctx_t *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    imcap_vtell(c->lead && c->cb ? c->cb->on_message : NULL, c->cb ? c->cb->ctx : NULL, fmt, ap);
    va_end(ap);
}

/* A new run's options: the request's, or the defaults. */
static imcap_status fresh_options(const imcap_train_request *r, imcap_train_options *o, imcap_error *err) {
    memset(o, 0, sizeof *o);
    imcap_adam_options_default(&o->adam);
    o->epochs = set(r->epochs) ? (int)r->epochs : 10;
    o->max_steps = set(r->max_steps) ? (long)r->max_steps : 0;
    o->batch = set(r->batch) ? (int)r->batch : 32;
    o->shards = set(r->grad_shards) ? (int)r->grad_shards : 0;
    o->seed = set(r->seed) ? (uint64_t)r->seed : 1;
    o->val_every = set(r->val_every) ? (long)r->val_every : 0;
    o->val_images = set(r->val_images) ? (int)r->val_images : 500;
    o->ckpt_every = set(r->ckpt_every) ? (long)r->ckpt_every : 500;
    if (set(r->warmup)) o->adam.warmup = (long)r->warmup;
    if (set(r->lr)) o->adam.lr = (float)r->lr;
    if (set(r->min_lr_frac)) o->adam.min_lr_frac = (float)r->min_lr_frac;
    if (set(r->weight_decay)) o->adam.weight_decay = (float)r->weight_decay;
    if (set(r->clip)) o->adam.clip = (float)r->clip;
    o->att_reg = set(r->att_reg) ? (float)r->att_reg : -1.0f; /* the model's default, once it exists */
    o->att_sup = set(r->att_sup) ? (float)r->att_sup : 0.0f;
    o->att_sup_rel = set(r->att_sup_rel) ? (float)r->att_sup_rel : 0.0f;
    o->att_sup_desc = set(r->att_sup_desc) ? (float)r->att_sup_desc : -1.0f;
    o->rel_weight = set(r->rel_weight) ? (float)r->rel_weight : 1.0f;
    o->dropout = set(r->dropout) ? (float)r->dropout : 0.5f;
    o->freeze_encoder = set(r->freeze_encoder) && r->freeze_encoder != 0;
    o->select = IMCAP_SELECT_LOSS;
    if (r->select && (o->select = imcap_select_parse(r->select)) < 0)
        return imcap_fail(err, IMCAP_E_ARG, "--select: '%s' is not one of loss, bleu4, cider, f1", r->select);
    return IMCAP_OK;
}

/* --resume with options: the ones that only steer the rest of the run
 * (schedule, regularisation, validation) replace the checkpoint's, with a
 * note; the ones that would make it another run are refused by name when
 * they differ. */
static imcap_status resume_options(const ctx_t *c, const imcap_train_request *r, const imcap_train_options *given,
                                   imcap_train_options *ck, imcap_error *err) {
#define REFUSE(was_set, name, now, was)                                                                          \
    if ((was_set) && (double)(now) != (double)(was))                                                             \
        return imcap_fail(err, IMCAP_E_ARG,                                                                      \
                          "%s: %s %g differs from the checkpoint's %g; a resumed run keeps it (start a new run " \
                          "to change it)", r->resume, name, (double)(now), (double)(was));
#define APPLY(was_set, name, field)                                                                              \
    if ((was_set) && (double)ck->field != (double)given->field) {                                                \
        say(c, "note: resuming with %s %g (the checkpoint's was %g)", name, (double)given->field,                \
            (double)ck->field);                                                                                  \
        ck->field = given->field;                                                                                \
    }
    REFUSE(set(r->batch), "--batch", given->batch, ck->batch);
    REFUSE(set(r->seed), "--seed", given->seed, ck->seed);
    REFUSE(set(r->freeze_encoder), "--freeze-encoder", given->freeze_encoder, ck->freeze_encoder);
    REFUSE(set(r->grad_shards), "--grad-shards", given->shards, ck->shards);
    if (r->select && given->select != ck->select)
        return imcap_fail(err, IMCAP_E_ARG,
                          "%s: --select %s differs from the checkpoint's %s; the best model so far was chosen by it",
                          r->resume, imcap_select_name(given->select), imcap_select_name(ck->select));
    if (set(r->min_count))
        return imcap_fail(err, IMCAP_E_ARG,
                          "%s: --min-count builds a new vocabulary (--config); a resumed run keeps its own", r->resume);
    APPLY(set(r->epochs), "--epochs", epochs);
    APPLY(set(r->max_steps), "--max-steps", max_steps);
    APPLY(set(r->lr), "--lr", adam.lr);
    APPLY(set(r->warmup), "--warmup", adam.warmup);
    APPLY(set(r->min_lr_frac), "--min-lr-frac", adam.min_lr_frac);
    APPLY(set(r->weight_decay), "--weight-decay", adam.weight_decay);
    APPLY(set(r->clip), "--clip", adam.clip);
    APPLY(set(r->att_reg), "--att-reg", att_reg);
    APPLY(set(r->att_sup), "--att-sup", att_sup);
    APPLY(set(r->att_sup_rel), "--att-sup-rel", att_sup_rel);
    APPLY(set(r->att_sup_desc), "--att-sup-desc", att_sup_desc);
    APPLY(set(r->rel_weight), "--rel-weight", rel_weight);
    APPLY(set(r->dropout), "--dropout", dropout);
    APPLY(set(r->val_every), "--val-every", val_every);
    APPLY(set(r->val_images), "--val-images", val_images);
    APPLY(set(r->ckpt_every), "--ckpt-every", ckpt_every);
#undef REFUSE
#undef APPLY
    return IMCAP_OK;
}

/* The model to train: a checkpoint's, weights to start from, or new. */
/* The command that started a run is the model's recipe
 * ("imcap.train.command", set from the first step on, so a checkpoint
 * carries it); the commands that resumed it are kept beside it, in order
 * ("imcap.train.resume_command", joined by " ; "), instead of replacing it. */
static imcap_status record_command(imcap_model *m, const imcap_train_request *r, imcap_train_options *o,
                                   imcap_error *err) {
    o->command = NULL;
    if (!r->command) return IMCAP_OK;
    const char *first = imcap_model_metadata(m, "imcap.train.command");
    if (!r->resume || !first) {
        o->command = r->command;
        if (imcap_model_set_metadata(m, "imcap.train.command", r->command))
            return imcap_fail(err, IMCAP_E_NOMEM, "out of memory for the model's metadata");
        return IMCAP_OK;
    }
    const char *before = imcap_model_metadata(m, "imcap.train.resume_command");
    imcap_buf b = {0};
    imcap_buf_printf(&b, "%s%s%s", before ? before : "", before ? " ; " : "", r->command);
    imcap_status s = b.oom ? IMCAP_E_NOMEM : imcap_model_set_metadata(m, "imcap.train.resume_command", b.s);
    imcap_buf_free(&b);
    return s ? imcap_fail(err, IMCAP_E_NOMEM, "out of memory for the model's metadata") : IMCAP_OK;
}

static imcap_status make_model(const ctx_t *c, const imcap_train_request *r, const imcap_train_options *given,
                               const imcap_dataset *ds, imcap_model **m, imcap_train_state *st, imcap_error *err) {
    imcap_status s;
    if (r->resume) {
        if ((s = imcap_checkpoint_load(r->resume, m, st, err))) return s;
        if ((s = resume_options(c, r, given, &st->opt, err))) return s;
        st->opt.stop_after = given->stop_after;
        say(c, "resuming %s at step %ld", r->resume, st->step);
        return IMCAP_OK;
    }
    if (r->init) {
        if ((s = imcap_model_load(r->init, m, err))) return s;
        /* keep the lineage: the run that made the starting weights */
        const char *prev = imcap_model_metadata(*m, "imcap.train.command");
        if (prev) {
            char *copy = strdup(prev);
            s = copy ? imcap_model_set_metadata(*m, "imcap.train.init_command", copy) : IMCAP_E_NOMEM;
            free(copy);
            if (s) return imcap_fail(err, IMCAP_E_NOMEM, "out of memory copying %s's metadata", r->init);
        }
    } else {
        unsigned char *text = NULL;
        size_t size;
        imcap_config cfg;
        imcap_vocab v = {0};
        int min_count = set(r->min_count) ? (int)r->min_count : 1;
        s = imcap_read_file(r->config, &text, &size, err);
        if (!s) s = imcap_config_parse((char *)text, r->config, &cfg, err);
        free(text);
        if (!s) s = imcap_vocab_build(ds, min_count, &v, err);
        if (!s) s = imcap_model_create(&cfg, &v, m, err);
        imcap_vocab_free(&v);
        if (s) return s;
        imcap_model_init_random(*m, given->seed);
    }
    if (imcap_train_state_init(st, *m) != IMCAP_OK) return imcap_fail(err, IMCAP_E_NOMEM, "out of memory");
    st->opt = *given;
    if (st->opt.att_reg < 0) st->opt.att_reg = imcap_att_reg_default(&(*m)->cfg);
    return IMCAP_OK;
}

typedef struct {
    const imcap_train_callbacks *cb;
    const char *what;
    int lead;
} count_ctx;

static void count_progress(void *ctx, int done, int total) {
    const count_ctx *c = ctx;
    if (c->lead && c->cb && c->cb->on_count) c->cb->on_count(c->cb->ctx, c->what, done, total);
}

static void skipped_image(void *ctx, const char *msg) {
    const count_ctx *c = ctx;
    if (c->lead && c->cb && c->cb->on_message) {
        char buf[1400];
        snprintf(buf, sizeof buf, "skipped: %s", msg);
        c->cb->on_message(c->cb->ctx, buf);
    }
}

/* Every process waits here for all (rank 0 builds the caches first). */
static int barrier(const imcap_train_comm *comm) {
    int token = 0;
    return comm && comm->size > 1 ? comm->bcast(comm->ctx, 0, &token, sizeof token) : 0;
}

static char *with_suffix(const char *path, const char *given, const char *suffix) {
    if (given) return strdup(given);
    size_t n = strlen(path) + strlen(suffix) + 1;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s%s", path, suffix);
    return s;
}

imcap_status imcap_train(const imcap_train_request *r, const imcap_train_callbacks *cb, imcap_train_outcome *out,
                         imcap_error *err) {
    if (out) memset(out, 0, sizeof *out);
    if (!r || !r->data || !r->images || !r->out || (!!r->config + !!r->init + !!r->resume) != 1)
        return imcap_fail(err, IMCAP_E_ARG,
                          "--data, --images, -o and exactly one of --config, --init, --resume are required");
    if (r->threads < 0 || r->threads > 64) return imcap_fail(err, IMCAP_E_ARG, "%d threads: 1 to 64", r->threads);
    const imcap_train_comm *comm = cb ? cb->comm : NULL;
    ctx_t c = {cb, !comm || comm->rank == 0};
    imcap_train_options given;
    imcap_status s = fresh_options(r, &given, err);
    if (s) return s;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    given.threads = r->threads ? r->threads : cores < 1 ? 1 : cores > 64 ? 64 : (int)cores;
    given.stop_after = r->stop_after;

    imcap_dataset ds;
    if ((s = imcap_dataset_load(r->data, r->images, &ds, err))) return s;
    for (int i = 0; i < ds.n_warnings; i++) say(&c, "%s", ds.warnings[i]);
    imcap_model *m = NULL;
    imcap_train_state st = {0};
    imcap_image_cache cache = {0};
    imcap_feature_cache features = {0};
    char *ckpt = with_suffix(r->out, r->ckpt, ".ckpt"), *cache_path = with_suffix(r->out, r->cache, ".cache");
    char *features_path = with_suffix(r->out, r->features, ".features");
    if (!ckpt || !cache_path || !features_path) {
        s = imcap_fail(err, IMCAP_E_NOMEM, "out of memory");
        goto done;
    }
    if ((s = make_model(&c, r, &given, &ds, &m, &st, err))) goto done;
    st.opt.threads = given.threads; /* a checkpoint's shards keep the run the same */
    st.opt.out_path = r->out, st.opt.ckpt_path = ckpt;
    if ((s = record_command(m, r, &st.opt, err))) goto done;

    /* rank 0 alone writes these (another machine's ranks would take its
     * live temporary files for a dead process's) */
    const char *written[] = {r->out, ckpt, cache_path, features_path};
    int swept = 0;
    for (int i = 0; c.lead && i < 4; i++) {
        int k = imcap_atomic_sweep_path(written[i]);
        if (k > 0) swept += k;
    }
    if (swept) say(&c, "removed %d temporary file%s left by a killed run", swept, swept == 1 ? "" : "s");

    /* rank 0 builds the caches; the others wait, then open what it wrote */
    count_ctx cc = {cb, "caching images", c.lead}, fc = {cb, "encoding images", c.lead};
    imcap_cache_callbacks ccb = {skipped_image, count_progress, &cc};
    int failed = 0;
    if (!c.lead && barrier(comm)) {
        s = imcap_fail(err, IMCAP_E_IO, "lost contact with rank 0 while it built the caches");
        goto done;
    }
    if ((s = imcap_cache_open(cache_path, &ds, m->cfg.image_size, &ccb, &cache, &failed, err))) goto done;
    if (failed) say(&c, "%d of %d images could not be read and are skipped", failed, ds.n);
    if (st.opt.freeze_encoder) {
        imcap_cache_callbacks fcb = {NULL, count_progress, &fc};
        int rebuilt = 0;
        double t0 = imcap_now();
        if ((s = imcap_features_open(features_path, m, &cache, &fcb, &features, &rebuilt, err))) goto done;
        say(&c, "%s feature cache %s (%d images, %dx%d features each)", rebuilt ? "built" : "reusing", features_path,
            features.n, m->cfg.D, m->cfg.L);
        if (rebuilt) say(&c, "feature cache built in %.1f s", imcap_now() - t0);
        /* the ranks after 0 open what rank 0 has just written: building it
         * again means they disagree about the encoder or the images */
        if (rebuilt && !c.lead && cb && cb->on_message) {
            char buf[1400];
            snprintf(buf, sizeof buf, "rank %d: rebuilt the feature cache %s that rank 0 wrote", comm->rank,
                     features_path);
            cb->on_message(cb->ctx, buf);
        }
    }
    if (c.lead && barrier(comm)) {
        s = imcap_fail(err, IMCAP_E_IO, "lost contact with the other processes after building the caches");
        goto done;
    }
    say(&c, "vocabulary %d, %lld parameters%s, %d threads%s", m->vocab.n, (long long)m->tab.total,
        st.opt.freeze_encoder ? " (encoder frozen)" : "", st.opt.threads, comm && comm->size > 1 ? " per process" : "");
    s = imcap_train_run(m, &st, &ds, &cache, st.opt.freeze_encoder ? &features : NULL, cb, err);
    if (out) {
        out->step = st.step, out->wrote_model = c.lead && st.have_best, out->grad_shards = st.opt.shards;
        out->select = imcap_select_name(st.opt.select);
        out->examples = st.work_examples, out->seconds = st.work_seconds;
        /* an interrupted run before its first validation wrote its weights */
        if (s == IMCAP_E_INTERRUPTED && c.lead) out->wrote_model = 1;
    }
done:
    imcap_features_close(&features);
    imcap_cache_close(&cache);
    imcap_train_state_free(&st);
    imcap_model_free(m);
    imcap_dataset_free(&ds);
    free(ckpt), free(cache_path), free(features_path);
    return s;
}
