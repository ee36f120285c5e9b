/* cmd_train.c — `imcap train`: progress on stderr, Ctrl-C checkpoints. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "cli.h"
#include "data/cache.h"
#include "data/dataset.h"
#include "mpi.h"
#include "train/train.h"
#include "util/util.h"

static volatile sig_atomic_t stop_flag;
static void on_sigint(int sig) {
    (void)sig;
    stop_flag = 1;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: imcap train --data D.json --images DIR (--config CFG.json | --init M | --resume CKPT)\n"
            "                   -o OUT.safetensors [options]\n\n"
            "Trains on the train (+restval) split of a Karpathy-format data set, validates on\n"
            "the val split, and keeps the best model in OUT (see --select).\n\n"
            "  --epochs E         passes over the (image, caption) pairs (default 10)\n"
            "  --max-steps N      stop after N steps instead\n"
            "  --batch B          examples per step (default 32)\n"
            "  --lr X             peak learning rate (default 1e-3), --warmup N steps (default 200)\n"
            "  --min-lr-frac F    cosine decay to lr * F at the end (default 0.05)\n"
            "  --weight-decay W   decoupled (AdamW) weight decay (default 0)\n"
            "  --clip C           gradient-norm clipping (default 5, 0 = off)\n"
            "  --att-reg L        lambda of sum_i (1 - sum_t alpha_ti)^2 per example (default 1/cells,\n"
            "                     0.0156 for an 8x8 grid: Xu et al.'s lambda 1 over the mean of the cells)\n"
            "  --select WHAT      what \"best\" means at validation: loss (default; the lowest\n"
            "                     validation cross-entropy), bleu4, cider, or f1 ((object F1 +\n"
            "                     pointing) / 2, synthetic scenes only); a tie keeps the earlier\n"
            "  --dropout P        dropout before fc (default 0.5)\n"
            "  --min-count N      vocabulary: words seen at least N times in train (default 1; with --config)\n"
            "  --seed S           shuffles, dropout and --config initialisation (default 1)\n"
            "  -j, --threads N    worker threads per process (default: all cores)\n"
            "  --grad-shards S    the batch's gradient is summed over S fixed shards, each computed\n"
            "                     alone: results depend on S (and the seed), not on --threads or\n"
            "                     the number of MPI processes (default: threads x processes)\n"
            "  --val-every N      steps between validations (default: once per epoch)\n"
            "  --val-images N     val images captioned per validation (default 500, 0 = all)\n"
            "  --ckpt CKPT        checkpoint file (default OUT.ckpt), --ckpt-every N steps (default 500)\n"
            "  --cache FILE       preprocessed image cache (default OUT.cache)\n"
            "  --freeze-encoder   train the decoder alone: the encoder's output for every image is\n"
            "                     computed once into a feature cache and the encoder is left as it is\n"
            "                     (needed for pretrained backbones: imcap cannot train batch norms)\n"
            "  --features FILE    the feature cache (default OUT.features; half precision,\n"
            "                     rebuilt when the encoder or an image changes)\n"
            "  --resume CKPT      continue a run exactly where its checkpoint left it. Options given\n"
            "                     with it replace the checkpoint's (a note says so), except those\n"
            "                     that would make another run (--batch, --seed, --select,\n"
            "                     --grad-shards, --freeze-encoder, --min-count), which are refused\n"
            "                     when they differ\n"
            "  -q, --quiet        no progress or validation lines\n\n"
            "Ctrl-C writes a checkpoint and exits 130; --resume continues as if never interrupted.\n"
            "OUT always captions after a run that did one step: stopped before its first\n"
            "validation, it holds the current weights (marked \"not validated\" in its metadata).\n"
            "`imcap export CKPT -o M.safetensors` writes a checkpoint's weights as a model.\n\n"
            "Several processes (data-parallel, over MPI): mpirun -np R imcap train ... Each\n"
            "process computes its share of the shards of every batch; rank 0 alone validates,\n"
            "reports and writes OUT and the checkpoint. The weights are byte-identical to one\n"
            "process with the same --grad-shards. --resume works with any number of processes.\n");
}

typedef struct {
    int tty, quiet;
    double last_line;
} progress_ctx;

static void fmt_time(char *b, size_t n, double s) {
    if (s < 0 || s > 1e7) s = 0;
    long t = (long)s;
    snprintf(b, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
}

static void on_progress(void *ctx, const imcap_train_progress *p) {
    progress_ctx *c = ctx;
    if (c->quiet) return;
    char eta[32];
    fmt_time(eta, sizeof eta, p->eta_s);
    if (c->tty) {
        int width = 24, fill = (int)(width * (double)p->step / (p->total_steps ? p->total_steps : 1));
        char bar[32];
        for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
        bar[width] = 0;
        fprintf(stderr, "\r[%s] step %ld/%ld ep %d ce %.4f att-reg %.4f acc %.3f lr %.2e %.1f ex/s ETA %s  ", bar,
                p->step, p->total_steps, p->epoch, p->ce, p->reg, p->token_accuracy, p->lr, p->examples_per_s, eta);
        fflush(stderr);
    } else {
        double now = (double)p->step;
        if (p->step == p->total_steps || now - c->last_line >= 50) {
            fprintf(stderr, "step %ld/%ld epoch %d ce %.4f att-reg %.4f acc %.3f |g| %.2f lr %.2e %.1f ex/s ETA %s\n",
                    p->step, p->total_steps, p->epoch, p->ce, p->reg, p->token_accuracy, p->grad_norm, p->lr,
                    p->examples_per_s, eta);
            c->last_line = now;
        }
    }
}

static void on_validation(void *ctx, const imcap_val_report *v) {
    progress_ctx *c = ctx;
    if (c->quiet) return;
    if (c->tty) fprintf(stderr, "\n");
    fprintf(stderr, "val step %ld: loss %.4f BLEU-4 %.4f CIDEr-D %.4f", v->step, v->val_loss, v->bleu4, v->cider);
    if (v->have_objects)
        fprintf(stderr, " F1 %.4f pointing %.4f mass %.4f relations %.4f", v->f1, v->pointing, v->mass, v->relations);
    fprintf(stderr, " (%d images)%s\n", v->n_images, v->is_best ? " best: saved" : "");
}

static void on_message(void *ctx, const char *msg) {
    (void)ctx;
    fprintf(stderr, "imcap train: %s\n", msg);
}

/* Which options the command line gave: --resume applies or refuses them. */
typedef struct {
    int epochs, max_steps, batch, seed, min_count, val_every, val_images, ckpt_every, warmup, lr, min_lr_frac;
    int weight_decay, clip, att_reg, dropout, select, freeze, shards;
} given_opts;

/* --resume with options: the ones that only steer the rest of the run
 * (schedule, regularisation, validation, length) replace the checkpoint's,
 * with a note; the ones that would make it another run are refused by name
 * when they differ. Returns -1 after printing the refusal. */
#define APPLY(flag, name, field)                                                                                   \
    if (g->flag && (double)ck->field != (double)o->field) {                                                        \
        fprintf(stderr, "imcap train: note: resuming with %s %g (the checkpoint's was %g)\n", name, (double)o->field, \
                (double)ck->field);                                                                                \
        ck->field = o->field;                                                                                      \
    }
#define REFUSE(flag, name, now, was)                                                                               \
    if (g->flag && (double)(now) != (double)(was)) {                                                               \
        fprintf(stderr, "imcap train: %s: %s %g differs from the checkpoint's %g; a resumed run keeps it (start a "  \
                        "new run, or --init from the model, to change it)\n", path, name, (double)(now), (double)(was)); \
        return -1;                                                                                                 \
    }
static int resume_options(const char *path, imcap_train_options *ck, const imcap_train_options *o,
                          const given_opts *g, int seed) {
    REFUSE(batch, "--batch", o->batch, ck->batch);
    REFUSE(seed, "--seed", seed, ck->seed);
    REFUSE(freeze, "--freeze-encoder", o->freeze_encoder, ck->freeze_encoder);
    REFUSE(shards, "--grad-shards", o->shards, ck->shards);
    if (g->select && o->select != ck->select) {
        fprintf(stderr, "imcap train: %s: --select %s differs from the checkpoint's %s; the best model so far was chosen "
                        "by it (start a new run, or --init from the model, to change it)\n",
                path, imcap_select_name(o->select), imcap_select_name(ck->select));
        return -1;
    }
    if (g->min_count) {
        fprintf(stderr, "imcap train: %s: --min-count builds a new vocabulary (--config); a resumed run keeps its own\n", path);
        return -1;
    }
    APPLY(epochs, "--epochs", epochs);
    APPLY(max_steps, "--max-steps", max_steps);
    APPLY(lr, "--lr", adam.lr);
    APPLY(warmup, "--warmup", adam.warmup);
    APPLY(min_lr_frac, "--min-lr-frac", adam.min_lr_frac);
    APPLY(weight_decay, "--weight-decay", adam.weight_decay);
    APPLY(clip, "--clip", adam.clip);
    APPLY(att_reg, "--att-reg", att_reg);
    APPLY(dropout, "--dropout", dropout);
    APPLY(val_every, "--val-every", val_every);
    APPLY(val_images, "--val-images", val_images);
    APPLY(ckpt_every, "--ckpt-every", ckpt_every);
    ck->stop_after = o->stop_after;
    return 0;
}
#undef APPLY
#undef REFUSE

static int run_train_process(imcap_train_options *op, const given_opts *gp, const imcap_train_comm *comm,
                             const char *data, const char *images, const char *config, const char *init,
                             const char *resume, const char *out, const char *ckpt, const char *cache_path,
                             const char *features_path, const char *cmd, int min_count, int quiet, int threads,
                             int seed);

int run_train(int argc, char **argv) {
    const char *data = NULL, *images = NULL, *config = NULL, *init = NULL, *resume = NULL, *out = NULL;
    const char *ckpt = NULL, *cache_path = NULL, *features_path = NULL;
    int min_count = 1, quiet = 0, threads = 0, seed = 1;
    imcap_train_options o;
    memset(&o, 0, sizeof o);
    imcap_adam_options_default(&o.adam);
    o.epochs = 10, o.batch = 32, o.att_reg = -1.0f, o.dropout = 0.5f, o.val_images = 500, o.ckpt_every = 500;
    o.select = IMCAP_SELECT_LOSS;
    given_opts g = {0};
    const char *select = NULL;
    long max_steps = 0, val_every = 0, ckpt_every = o.ckpt_every, stop_after = 0, warmup = o.adam.warmup;
    double lr = o.adam.lr, min_lr_frac = o.adam.min_lr_frac, wd = o.adam.weight_decay, clip = o.adam.clip;
    double att_reg = -1, dropout = o.dropout;
    int first = 0;
    const cli_opt opts[] = {
        CLI_OPT_OUTPUT(&out),
        /* the trainer's limit, not the shared 1024: refused here, before any work */
        {"threads", 'j', CLI_INT, &threads, 1, 64, NULL, NULL},
        CLI_OPT_QUIET(&quiet),
        {"data", 0, CLI_STR, &data, 0, 0, NULL, NULL},
        {"images", 0, CLI_STR, &images, 0, 0, NULL, NULL},
        {"config", 0, CLI_STR, &config, 0, 0, NULL, NULL},
        {"init", 0, CLI_STR, &init, 0, 0, NULL, NULL},
        {"resume", 0, CLI_STR, &resume, 0, 0, NULL, NULL},
        {"ckpt", 0, CLI_STR, &ckpt, 0, 0, NULL, NULL},
        {"cache", 0, CLI_STR, &cache_path, 0, 0, NULL, NULL},
        {"features", 0, CLI_STR, &features_path, 0, 0, NULL, NULL},
        {"select", 0, CLI_STR, &select, 0, 0, &g.select, NULL},
        {"freeze-encoder", 0, CLI_FLAG, &o.freeze_encoder, 0, 0, &g.freeze, NULL},
        {"epochs", 0, CLI_INT, &o.epochs, 1, 1000000, &g.epochs, NULL},
        {"max-steps", 0, CLI_LONG, &max_steps, 1, 2000000000, &g.max_steps, NULL},
        {"batch", 0, CLI_INT, &o.batch, 1, 4096, &g.batch, NULL},
        {"grad-shards", 0, CLI_INT, &o.shards, 1, 1024, &g.shards, NULL},
        {"seed", 0, CLI_INT, &seed, 0, 2147483647, &g.seed, NULL},
        {"min-count", 0, CLI_INT, &min_count, 1, 1000000, &g.min_count, NULL},
        {"val-every", 0, CLI_LONG, &val_every, 1, 2000000000, &g.val_every, NULL},
        {"val-images", 0, CLI_INT, &o.val_images, 0, 2000000000, &g.val_images, NULL},
        {"ckpt-every", 0, CLI_LONG, &ckpt_every, 0, 2000000000, &g.ckpt_every, NULL},
        {"stop-after", 0, CLI_LONG, &stop_after, 1, 2000000000, NULL, NULL},
        {"warmup", 0, CLI_LONG, &warmup, 0, 2000000000, &g.warmup, NULL},
        {"lr", 0, CLI_FLOAT, &lr, 1e-8, 10, &g.lr, NULL},
        {"min-lr-frac", 0, CLI_FLOAT, &min_lr_frac, 0, 1, &g.min_lr_frac, NULL},
        {"weight-decay", 0, CLI_FLOAT, &wd, 0, 1, &g.weight_decay, NULL},
        {"clip", 0, CLI_FLOAT, &clip, 0, 1e6, &g.clip, NULL},
        {"att-reg", 0, CLI_FLOAT, &att_reg, 0, 1e3, &g.att_reg, NULL},
        {"dropout", 0, CLI_FLOAT, &dropout, 0, 0.95, &g.dropout, NULL},
        CLI_END,
    };
    int pr = cli_parse("train", argc, argv, opts, usage, &first);
    if (pr) return cli_parse_exit(pr);
    if (cli_no_positionals("train", argc, argv, first, NULL, usage)) return EXIT_USAGE;
    if (select && (o.select = imcap_select_parse(select)) < 0) {
        fprintf(stderr, "imcap train: --select: '%s' is not one of loss, bleu4, cider, f1\n", select);
        return EXIT_USAGE;
    }
    o.max_steps = max_steps, o.val_every = val_every, o.ckpt_every = ckpt_every, o.stop_after = stop_after;
    o.adam.warmup = warmup, o.adam.lr = (float)lr, o.adam.min_lr_frac = (float)min_lr_frac;
    o.adam.weight_decay = (float)wd, o.adam.clip = (float)clip, o.att_reg = (float)att_reg, o.dropout = (float)dropout;
    if (!data || !images || !out || (!!config + !!init + !!resume) != 1) {
        fprintf(stderr, "imcap train: --data, --images, -o and exactly one of --config, --init, --resume are required\n");
        usage(stderr);
        return EXIT_USAGE;
    }
    if (!threads) threads = sysconf(_SC_NPROCESSORS_ONLN) > 0 ? (int)sysconf(_SC_NPROCESSORS_ONLN) : 1;
    if (threads > 64) threads = 64;
    o.threads = threads;
    o.seed = (uint64_t)seed;
    char ckpt_buf[4096], cache_buf[4096], features_buf[4096], cmd[4096];
    if (!ckpt) snprintf(ckpt_buf, sizeof ckpt_buf, "%s.ckpt", out), ckpt = ckpt_buf;
    if (!cache_path) snprintf(cache_buf, sizeof cache_buf, "%s.cache", out), cache_path = cache_buf;
    if (!features_path) snprintf(features_buf, sizeof features_buf, "%s.features", out), features_path = features_buf;
    cli_command_line(cmd, sizeof cmd, argc, argv);

    imcap_train_comm comm;
    if (cli_mpi_start(NULL, NULL, &comm)) return EXIT_FATAL;
    int rc = run_train_process(&o, &g, &comm, data, images, config, init, resume, out, ckpt, cache_path,
                               features_path, cmd, min_count, quiet || comm.rank != 0, threads, seed);
    cli_mpi_finish(&comm, rc != EXIT_ALL_OK && rc != 130);
    return rc;
}

/* One process's run (of comm->size); only rank 0 prints progress. */
static int run_train_process(imcap_train_options *op, const given_opts *gp, const imcap_train_comm *comm,
                             const char *data, const char *images, const char *config, const char *init,
                             const char *resume, const char *out, const char *ckpt, const char *cache_path,
                             const char *features_path, const char *cmd, int min_count, int quiet, int threads,
                             int seed) {
    imcap_train_options o = *op;
    const given_opts g = *gp;
    int lead = comm->rank == 0, many = comm->size > 1;
    imcap_error err;
    imcap_dataset ds;
    if (imcap_dataset_load(data, images, &ds, &err) != IMCAP_OK) {
        fprintf(stderr, "imcap train: %s\n", err.msg);
        return EXIT_FATAL;
    }
    for (int i = 0; lead && i < ds.n_warnings; i++) fprintf(stderr, "imcap train: %s\n", ds.warnings[i]);

    imcap_model *m = NULL;
    imcap_train_state st = {0};
    int rc = EXIT_FATAL;
    imcap_image_cache cache = {0};
    imcap_feature_cache features = {0};
    if (resume) {
        if (imcap_checkpoint_load(resume, &m, &st, &err) != IMCAP_OK) { fprintf(stderr, "imcap train: %s\n", err.msg); goto done; }
        if (resume_options(resume, &st.opt, &o, &g, seed) != 0) { rc = EXIT_USAGE; goto done; }
        st.opt.threads = threads; /* the checkpoint's shards keep the run the same */
        if (lead) fprintf(stderr, "imcap train: resuming %s at step %ld\n", resume, st.step);
    } else {
        if (init) {
            if (!(m = cli_load_model(init))) goto done;
            /* keep the lineage: the run that made the starting weights */
            const char *prev = imcap_model_metadata(m, "imcap.train.command");
            if (prev) {
                char *copy = strdup(prev);
                if (copy) imcap_model_set_metadata(m, "imcap.train.init_command", copy);
                free(copy);
            }
        } else {
            unsigned char *text = NULL;
            size_t size;
            imcap_config cfg;
            imcap_vocab v = {0};
            int bad = imcap_read_file(config, &text, &size, &err) || imcap_config_parse((char *)text, config, &cfg, &err);
            free(text);
            bad = bad || imcap_vocab_build(&ds, min_count, &v, &err) || imcap_model_create(&cfg, &v, &m, &err);
            imcap_vocab_free(&v);
            if (bad) {
                fprintf(stderr, "imcap train: %s\n", err.msg);
                goto done;
            }
            imcap_model_init_random(m, (uint64_t)seed);
        }
        if (imcap_train_state_init(&st, m) != IMCAP_OK) { fprintf(stderr, "imcap train: out of memory\n"); goto done; }
        if (o.att_reg < 0) o.att_reg = imcap_att_reg_default(&m->cfg);
        st.opt = o;
    }
    st.opt.out_path = out, st.opt.ckpt_path = ckpt, st.opt.command = cmd;
    /* a run killed while it wrote one of its files left the temporary one */
    const char *written[] = {out, ckpt, cache_path, features_path};
    int swept = 0;
    /* rank 0 alone writes these (another machine's ranks would take its
     * live temporary files for a dead process's) */
    for (int i = 0; lead && i < 4; i++) {
        int k = imcap_atomic_sweep_path(written[i]);
        if (k > 0) swept += k;
    }
    if (swept && !quiet)
        fprintf(stderr, "imcap train: removed %d temporary file%s left by a killed run\n", swept, swept == 1 ? "" : "s");
    cli_set_threads(threads);
    progress_ctx pc = {isatty(2), quiet, -1e9};
    cli_count_ctx cache_cc = {"train", "caching images", 8192, pc.tty, quiet};
    imcap_cache_callbacks ccb = {lead ? cli_skipped_image : NULL, cli_count_progress, &cache_cc};
    int failed = 0;
    /* rank 0 builds the caches; the others wait, then open what it wrote */
    if (!lead && cli_mpi_barrier(comm)) goto done;
    if (imcap_cache_open(cache_path, &ds, m->cfg.image_size, &ccb, &cache, &failed, &err) != IMCAP_OK) {
        fprintf(stderr, "imcap train: %s\n", err.msg);
        goto done;
    }
    if (failed && lead) fprintf(stderr, "imcap train: %d of %d images could not be read and are skipped\n", failed, ds.n);
    if (st.opt.freeze_encoder) {
        cli_count_ctx feat_cc = {"train", "encoding images", 4096, pc.tty, quiet};
        imcap_cache_callbacks fcb = {NULL, cli_count_progress, &feat_cc};
        int rebuilt = 0;
        double t0 = imcap_now();
        if (imcap_features_open(features_path, m, &cache, &fcb, &features, &rebuilt, &err) != IMCAP_OK) {
            fprintf(stderr, "imcap train: %s\n", err.msg);
            goto done;
        }
        if (!quiet)
            fprintf(stderr, "imcap train: %s feature cache %s (%d images, %dx%d features each)\n",
                    rebuilt ? "built" : "reusing", features_path, features.n, m->cfg.D, m->cfg.L);
        if (rebuilt && !quiet) fprintf(stderr, "imcap train: feature cache built in %.1f s\n", imcap_now() - t0);
        /* the ranks after 0 open what rank 0 has just written: building it
         * again means they disagree about the encoder or the images */
        if (rebuilt && !lead)
            fprintf(stderr, "imcap train: rank %d: rebuilt the feature cache %s that rank 0 wrote\n", comm->rank,
                    features_path);
    }
    if (lead && cli_mpi_barrier(comm)) goto done;
    if (lead)
        fprintf(stderr, "imcap train: vocabulary %d, %lld parameters%s, %d threads%s\n", m->vocab.n,
                (long long)m->tab.total, st.opt.freeze_encoder ? " (encoder frozen)" : "", threads,
                many ? " per process" : "");
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    imcap_train_callbacks cb = {on_progress, on_validation, on_message, &pc, &stop_flag, many ? comm : NULL};
    imcap_status s = imcap_train_run(m, &st, &ds, &cache, st.opt.freeze_encoder ? &features : NULL, &cb, &err);
    if (pc.tty && !quiet) fprintf(stderr, "\n");
    if (many)
        fprintf(stderr, "imcap train: rank %d of %d: %.0f examples (%d of %d shards per batch) in %.2f s, %.1f ex/s\n",
                comm->rank, comm->size, st.work_examples, st.opt.shards * (comm->rank + 1) / comm->size -
                st.opt.shards * comm->rank / comm->size, st.opt.shards, st.work_seconds,
                st.work_seconds > 0 ? st.work_examples / st.work_seconds : 0.0);
    if (s == IMCAP_E_INTERRUPTED) {
        if (!lead) { rc = 130; goto done; }
        fprintf(stderr, "imcap train: %s\n", err.msg);
        rc = 130;
    } else if (s) {
        fprintf(stderr, "imcap train: %s\n", err.msg);
    } else if (!lead) {
        rc = EXIT_ALL_OK;
    } else {
        if (st.have_best)
            fprintf(stderr, "imcap train: done at step %ld; best model (by %s) in %s, checkpoint in %s\n", st.step,
                    imcap_select_name(st.opt.select), out, ckpt);
        else
            fprintf(stderr, "imcap train: done at step %ld, but no model was written to %s; checkpoint in %s "
                            "(imcap export writes its weights as a model)\n", st.step, out, ckpt);
        rc = EXIT_ALL_OK;
    }
done:
    imcap_features_close(&features);
    imcap_cache_close(&cache);
    imcap_train_state_free(&st);
    imcap_model_free(m);
    imcap_dataset_free(&ds);
    return rc;
}
