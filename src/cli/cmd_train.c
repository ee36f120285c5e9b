/* cmd_train.c — `imcap train`: argv to imcap_train (src/train/session.c);
 * progress on stderr, Ctrl-C checkpoints, MPI when an MPI launcher
 * started it (mpi.c). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "cli.h"
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
            "  --att-sup L        attention targets (synthetic scenes, whose \"objects\" say where each\n"
            "                     thing is): L times -log(attention inside the objects a reference\n"
            "                     word names), per word, for the words of each object mention\n"
            "                     (default 0: none)\n"
            "  --att-sup-desc L   the weight of a mention's words before its noun (count, size,\n"
            "                     colour) apart (default: --att-sup's)\n"
            "  --att-sup-rel L    the same for the words of a relation phrase (\"to the left of a\"),\n"
            "                     whose targets are the objects the caption names next (default 0)\n"
            "  --rel-weight W     the cross-entropy's weight at a relation phrase's words and at the\n"
            "                     words of the partner it names (synthetic scenes; default 1)\n"
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
            "  -q, --quiet        no progress or validation lines\n"
            "  --json             at the end, one JSON object on stdout: step, model (OUT or null),\n"
            "                     checkpoint, select, grad_shards, examples, seconds\n\n"
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

static void on_count(void *ctx, const char *what, int done, int total) {
    const progress_ctx *c = ctx;
    cli_count_ctx cc = {"train", what, 8192, c->tty, c->quiet};
    cli_count_progress(&cc, done, total);
}

int run_train(int argc, char **argv) {
    imcap_train_request r;
    imcap_train_request_init(&r);
    int quiet = 0, first = 0, threads = 0, epochs = -1, batch = -1, shards = -1, seed = -1, min_count = -1;
    int val_images = -1, freeze = 0, json = 0;
    long max_steps = -1, val_every = -1, ckpt_every = -1, stop_after = 0, warmup = -1;
    double lr = -1, min_lr_frac = -1, wd = -1, clip = -1, att_reg = -1, dropout = -1;
    double att_sup = -1, att_sup_rel = -1, att_sup_desc = -1, rel_weight = -1;
    int freeze_given = 0;
    const cli_opt opts[] = {
        CLI_OPT_OUTPUT(&r.out),
        /* the trainer's limit, not the shared 1024: refused here, before any work */
        {"threads", 'j', CLI_INT, &threads, 1, 64, NULL, NULL},
        CLI_OPT_QUIET(&quiet),
        CLI_OPT_JSON(&json),
        {"data", 0, CLI_STR, &r.data, 0, 0, NULL, NULL},
        {"images", 0, CLI_STR, &r.images, 0, 0, NULL, NULL},
        {"config", 0, CLI_STR, &r.config, 0, 0, NULL, NULL},
        {"init", 0, CLI_STR, &r.init, 0, 0, NULL, NULL},
        {"resume", 0, CLI_STR, &r.resume, 0, 0, NULL, NULL},
        {"ckpt", 0, CLI_STR, &r.ckpt, 0, 0, NULL, NULL},
        {"cache", 0, CLI_STR, &r.cache, 0, 0, NULL, NULL},
        {"features", 0, CLI_STR, &r.features, 0, 0, NULL, NULL},
        {"select", 0, CLI_STR, &r.select, 0, 0, NULL, NULL},
        {"freeze-encoder", 0, CLI_FLAG, &freeze, 0, 0, &freeze_given, NULL},
        {"epochs", 0, CLI_INT, &epochs, 1, 1000000, NULL, NULL},
        {"max-steps", 0, CLI_LONG, &max_steps, 1, 2000000000, NULL, NULL},
        {"batch", 0, CLI_INT, &batch, 1, 4096, NULL, NULL},
        {"grad-shards", 0, CLI_INT, &shards, 1, 1024, NULL, NULL},
        {"seed", 0, CLI_INT, &seed, 0, 2147483647, NULL, NULL},
        {"min-count", 0, CLI_INT, &min_count, 1, 1000000, NULL, NULL},
        {"val-every", 0, CLI_LONG, &val_every, 1, 2000000000, NULL, NULL},
        {"val-images", 0, CLI_INT, &val_images, 0, 2000000000, NULL, NULL},
        {"ckpt-every", 0, CLI_LONG, &ckpt_every, 0, 2000000000, NULL, NULL},
        {"stop-after", 0, CLI_LONG, &stop_after, 1, 2000000000, NULL, NULL},
        {"warmup", 0, CLI_LONG, &warmup, 0, 2000000000, NULL, NULL},
        {"lr", 0, CLI_FLOAT, &lr, 1e-8, 10, NULL, NULL},
        {"min-lr-frac", 0, CLI_FLOAT, &min_lr_frac, 0, 1, NULL, NULL},
        {"weight-decay", 0, CLI_FLOAT, &wd, 0, 1, NULL, NULL},
        {"clip", 0, CLI_FLOAT, &clip, 0, 1e6, NULL, NULL},
        {"att-reg", 0, CLI_FLOAT, &att_reg, 0, 1e3, NULL, NULL},
        {"att-sup", 0, CLI_FLOAT, &att_sup, 0, 1e3, NULL, NULL},
        {"att-sup-rel", 0, CLI_FLOAT, &att_sup_rel, 0, 1e3, NULL, NULL},
        {"att-sup-desc", 0, CLI_FLOAT, &att_sup_desc, 0, 1e3, NULL, NULL},
        {"rel-weight", 0, CLI_FLOAT, &rel_weight, 0.01, 1e3, NULL, NULL},
        {"dropout", 0, CLI_FLOAT, &dropout, 0, 0.95, NULL, NULL},
        CLI_END,
    };
    int pr = cli_parse("train", argc, argv, opts, usage, &first);
    if (pr) return cli_parse_exit(pr);
    if (cli_no_positionals("train", argc, argv, first, NULL, usage)) return EXIT_USAGE;
    if (r.select && imcap_select_parse(r.select) < 0) {
        fprintf(stderr, "imcap train: --select: '%s' is not one of loss, bleu4, cider, f1\n", r.select);
        return EXIT_USAGE;
    }
    if (!r.data || !r.images || !r.out || (!!r.config + !!r.init + !!r.resume) != 1) {
        fprintf(stderr, "imcap train: --data, --images, -o and exactly one of --config, --init, --resume are required\n");
        usage(stderr);
        return EXIT_USAGE;
    }
    /* an option left out stays unset: the default, or the checkpoint's */
    r.epochs = epochs, r.max_steps = (double)max_steps, r.batch = batch, r.grad_shards = shards, r.seed = seed;
    r.min_count = min_count, r.val_every = (double)val_every, r.val_images = val_images;
    r.ckpt_every = (double)ckpt_every, r.warmup = (double)warmup, r.lr = lr, r.min_lr_frac = min_lr_frac;
    r.weight_decay = wd, r.clip = clip, r.att_reg = att_reg, r.dropout = dropout;
    r.att_sup = att_sup, r.att_sup_rel = att_sup_rel, r.att_sup_desc = att_sup_desc, r.rel_weight = rel_weight;
    r.freeze_encoder = freeze_given ? 1 : IMCAP_TRAIN_UNSET;
    r.stop_after = stop_after;
    if (!threads) threads = sysconf(_SC_NPROCESSORS_ONLN) > 0 ? (int)sysconf(_SC_NPROCESSORS_ONLN) : 1;
    r.threads = threads > 64 ? 64 : threads;
    char cmd[4096];
    cli_command_line(cmd, sizeof cmd, argc, argv);
    r.command = cmd;

    imcap_train_comm comm;
    if (cli_mpi_start(NULL, NULL, &comm)) return EXIT_FATAL;
    int lead = comm.rank == 0, many = comm.size > 1;
    cli_set_threads(r.threads);
    progress_ctx pc = {isatty(2), quiet || !lead, -1e9};
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    imcap_train_callbacks cb = {on_progress, on_validation, on_message, &pc, &stop_flag, many ? &comm : NULL,
                                on_count};
    imcap_train_outcome res;
    imcap_error err;
    imcap_status s = imcap_train(&r, &cb, &res, &err);
    if (pc.tty && !pc.quiet) fprintf(stderr, "\n");
    if (many) {
        int first, end;
        imcap_shard_range(res.grad_shards, comm.rank, comm.size, &first, &end);
        fprintf(stderr, "imcap train: rank %d of %d: %.0f examples (%d of %d shards per batch) in %.2f s, %.1f ex/s\n",
                comm.rank, comm.size, res.examples, end - first, res.grad_shards, res.seconds,
                res.seconds > 0 ? res.examples / res.seconds : 0.0);
    }
    int rc;
    if (s == IMCAP_E_INTERRUPTED) {
        if (lead) fprintf(stderr, "imcap train: %s\n", err.msg);
        rc = 130;
    } else if (s) {
        fprintf(stderr, "imcap train: %s\n", err.msg);
        rc = s == IMCAP_E_ARG && r.resume ? EXIT_USAGE : EXIT_FATAL;
    } else {
        const char *ckpt = r.ckpt ? r.ckpt : NULL;
        char buf[4096];
        if (!ckpt) snprintf(buf, sizeof buf, "%s.ckpt", r.out), ckpt = buf;
        if (!lead) {
        } else if (res.wrote_model) {
            fprintf(stderr, "imcap train: done at step %ld; best model (by %s) in %s, checkpoint in %s\n", res.step,
                    res.select, r.out, ckpt);
        } else {
            fprintf(stderr, "imcap train: done at step %ld, but no model was written to %s; checkpoint in %s "
                            "(imcap export writes its weights as a model)\n", res.step, r.out, ckpt);
        }
        rc = EXIT_ALL_OK;
        if (json && lead) {
            imcap_buf b = {0};
            imcap_buf_printf(&b, "{\"step\": %ld, \"model\": ", res.step);
            if (res.wrote_model) imcap_buf_json_string(&b, r.out);
            else imcap_buf_append(&b, "null", 4);
            imcap_buf_append(&b, ", \"checkpoint\": ", 16);
            imcap_buf_json_string(&b, ckpt);
            imcap_buf_printf(&b, ", \"select\": \"%s\", \"grad_shards\": %d, \"examples\": %.0f, \"seconds\": ",
                             res.select, res.grad_shards, res.examples);
            imcap_buf_number(&b, res.seconds, 6);
            imcap_buf_append(&b, "}\n", 2);
            if (b.oom || cli_stdout_write("train", b.s, b.len)) rc = EXIT_FATAL;
            imcap_buf_free(&b);
        }
    }
    cli_mpi_finish(&comm, rc != EXIT_ALL_OK && rc != 130);
    return rc;
}
