/* test_train.c — training end to end: a tiny data set in the Flickr8k
 * Karpathy layout (built here), loss going down, checkpoints, and resuming
 * an interrupted run giving exactly the weights of an uninterrupted one. */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image/image.h"
#include "imcap.h"
#include "testutil.h"
#include "train/train.h"


/* The fixture's training command with extra options; loud: without
 * --quiet (and without --val-every 10), so validation lines reach stderr. */
static char *train_cmd_as(const char *dir, int loud, const char *extra) {
    static char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "'%s' train --data '%s/dataset_flickr8k.json' --images '%s/Flicker8k_Dataset' --config '%s/config.json' "
             "--batch 8 --lr 5e-3 --warmup 5 --threads 2 --seed 3 %s %s",
             tu_exe(), dir, dir, dir, loud ? "" : "--val-every 10 --quiet", extra);
    return cmd;
}
static char *train_cmd(const char *dir, const char *extra) { return train_cmd_as(dir, 0, extra); }
static char *train_cmd_loud(const char *dir, const char *extra) { return train_cmd_as(dir, 1, extra); }

/* Adds "output": "deep" (format 2's deep output layer) to dir/config.json. */
static void make_config_deep(const char *dir) {
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    char *text = tu_read(path, NULL);
    cr_assert_not_null(text);
    cJSON *c = cJSON_Parse(text);
    cr_assert_not_null(c);
    cJSON_AddStringToObject(c, "output", "deep");
    char *out = cJSON_Print(c);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(out, f);
    fclose(f);
    cJSON_free(out), cJSON_Delete(c), free(text);
}

/* Loss falls, the best model and the checkpoint exist and load, and the
 * model then captions a training image with the right colour. */
static void end_to_end(const char *name, int deep) {
    const char *dir = tu_tmpdir(name);
    tu_flickr_fixture(dir, 24);
    if (deep) make_config_deep(dir);
    char extra[4200], *out = NULL, *err = NULL;
    snprintf(extra, sizeof extra, "--max-steps 60 --val-every 10 -o '%s/m.safetensors'", dir);
    int rc = tu_run(train_cmd_loud(dir, extra), &out, &err);
    cr_assert_eq(rc, 0, "exit %d: %s", rc, err);
    /* the validation lines show the loss; first and last are compared */
    double first = -1, last = -1;
    for (char *l = strstr(err, "loss "); l; l = strstr(l + 1, " loss ")) {
        double v = atof(strstr(l, "loss ") + 5);
        if (first < 0) first = v;
        last = v;
    }
    cr_assert(first > 0 && last > 0 && last < 0.6 * first, "loss did not fall: %g -> %g\n%s", first, last, err);
    free(out), free(err);
    char path[4200];
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    imcap_model *m;
    imcap_error e;
    cr_assert_eq(imcap_model_load(path, &m, &e), IMCAP_OK, "%s", e.msg);
    cr_assert_not_null(imcap_model_metadata(m, "imcap.train.command"));
    cr_expect_eq(m->cfg.deep_output, deep);
    cr_expect_eq(m->p.deep_h_w != NULL, deep, "deep_h is there exactly with the deep output layer");
    imcap_result *r;
    imcap_options opt;
    imcap_options_default(&opt);
    snprintf(path, sizeof path, "%s/Flicker8k_Dataset/1001_image.jpg.png", dir); /* i = 1: red, right */
    cr_assert_eq(imcap_caption_file(m, NULL, path, &opt, &r, &e), IMCAP_OK, "%s", e.msg);
    cr_expect(strstr(r->hyps[0].text, "red") != NULL, "caption of a red square: '%s'", r->hyps[0].text);
    imcap_result_free(r);
    imcap_model_free(m);
}

Test(train, flickr_layout_end_to_end) { end_to_end("train_e2e", 0); }
/* the same with Xu et al.'s deep output layer, with dropout on u */
Test(train, deep_output_end_to_end) { end_to_end("train_e2e_deep", 1); }

static void load_ckpt(const char *path, imcap_model **m, imcap_train_state *st) {
    imcap_error e;
    cr_assert_eq(imcap_checkpoint_load(path, m, st, &e), IMCAP_OK, "%s", e.msg);
}

/* Interrupted at step 7 and resumed: the final weights and Adam moments are
 * bit-identical to an uninterrupted run of 16 steps. */
Test(train, resume_is_exact) {
    const char *dir = tu_tmpdir("train_resume");
    tu_flickr_fixture(dir, 24);
    char extra[4200], *err = NULL;
    snprintf(extra, sizeof extra, "--max-steps 16 --dropout 0.3 -o '%s/a.safetensors'", dir);
    int rc = tu_run(train_cmd(dir, extra), NULL, &err);
    cr_assert_eq(rc, 0, "%s", err);
    free(err);
    snprintf(extra, sizeof extra, "--max-steps 16 --dropout 0.3 --stop-after 7 -o '%s/b.safetensors'", dir);
    rc = tu_run(train_cmd(dir, extra), NULL, &err);
    cr_assert_eq(rc, 130, "an interrupted run exits 130: %d %s", rc, err);
    free(err);
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "'%s' train --data '%s/dataset_flickr8k.json' --images '%s/Flicker8k_Dataset' --resume '%s/b.safetensors.ckpt'"
             " --threads 2 --quiet -o '%s/b.safetensors'", tu_exe(), dir, dir, dir, dir);
    rc = tu_run(cmd, NULL, &err);
    cr_assert_eq(rc, 0, "resume: %s", err);
    free(err);
    char pa[4200], pb[4200];
    snprintf(pa, sizeof pa, "%s/a.safetensors.ckpt", dir);
    snprintf(pb, sizeof pb, "%s/b.safetensors.ckpt", dir);
    imcap_model *ma, *mb;
    imcap_train_state sa, sb;
    load_ckpt(pa, &ma, &sa);
    load_ckpt(pb, &mb, &sb);
    cr_assert_eq(sa.step, 16);
    cr_assert_eq(sb.step, 16);
    size_t n = ma->tab.total;
    cr_assert_eq(n, mb->tab.total);
    cr_assert(memcmp(ma->block, mb->block, n * sizeof(float)) == 0, "weights differ after resume");
    cr_assert(memcmp(sa.m, sb.m, n * sizeof(float)) == 0, "Adam m differs after resume");
    cr_assert(memcmp(sa.v, sb.v, n * sizeof(float)) == 0, "Adam v differs after resume");
    /* the recipe in the metadata is the command that started the run (the
     * interruption came before any validation), the resume beside it */
    const char *first = imcap_model_metadata(mb, "imcap.train.command"),
               *again = imcap_model_metadata(mb, "imcap.train.resume_command");
    cr_expect(first && strstr(first, "--stop-after 7") && !strstr(first, "--resume"), "train.command: %s", first);
    cr_expect(again && strstr(again, "--resume"), "train.resume_command: %s", again);
    /* and the run did train: the weights moved from the step-7 checkpoint's */
    imcap_train_state_free(&sa), imcap_train_state_free(&sb);
    imcap_model_free(ma), imcap_model_free(mb);
}

/* Missing images are reported, counted and skipped; bad options exit 2. */
Test(train, missing_images_and_usage) {
    const char *dir = tu_tmpdir("train_missing");
    tu_flickr_fixture(dir, 24);
    char path[4200];
    snprintf(path, sizeof path, "%s/Flicker8k_Dataset/1003_image.jpg.png", dir);
    cr_assert_eq(remove(path), 0);
    char extra[4200], *err = NULL;
    snprintf(extra, sizeof extra, "--max-steps 3 -o '%s/m.safetensors'", dir);
    int rc = tu_run(train_cmd(dir, extra), NULL, &err);
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert(strstr(err, "1003_image.jpg.png") != NULL, "the missing image is named: %s", err);
    cr_assert(strstr(err, "1 of 24 images could not be read") != NULL, "%s", err);
    free(err);
    rc = tu_run(train_cmd(dir, "--max-steps 3"), NULL, &err); /* no -o */
    cr_assert_eq(rc, 2, "%s", err);
    free(err);
    snprintf(extra, sizeof extra, "--batch 0 -o '%s/m.safetensors'", dir);
    rc = tu_run(train_cmd(dir, extra), NULL, &err);
    cr_assert_eq(rc, 2, "%s", err);
    free(err);
}

/* A checkpoint that is not one is refused by name. */
Test(train, bad_checkpoint) {
    const char *dir = tu_tmpdir("train_badckpt");
    char path[4200];
    snprintf(path, sizeof path, "%s/x.ckpt", dir);
    tu_write(path, "IMCAPCK1\xff\xff", 10);
    imcap_model *m;
    imcap_train_state st;
    imcap_error e;
    cr_assert_neq(imcap_checkpoint_load(path, &m, &st, &e), IMCAP_OK);
    cr_assert(strstr(e.msg, "x.ckpt") != NULL, "%s", e.msg);
}

/* Training from --init keeps the lineage: the starting model's command is
 * recorded as imcap.train.init_command next to the new run's command. */
Test(train, init_keeps_lineage) {
    const char *dir = tu_tmpdir("train_lineage");
    tu_flickr_fixture(dir, 24);
    char extra[4200], cmd[8192], *err = NULL;
    snprintf(extra, sizeof extra, "--max-steps 3 -o '%s/a.safetensors'", dir);
    cr_assert_eq(tu_run(train_cmd(dir, extra), NULL, &err), 0, "%s", err);
    free(err);
    snprintf(cmd, sizeof cmd,
             "'%s' train --data '%s/dataset_flickr8k.json' --images '%s/Flicker8k_Dataset' --init '%s/a.safetensors'"
             " --max-steps 2 --batch 8 --quiet -o '%s/b.safetensors'", tu_exe(), dir, dir, dir, dir);
    cr_assert_eq(tu_run(cmd, NULL, &err), 0, "%s", err);
    free(err);
    char path[4200];
    snprintf(path, sizeof path, "%s/b.safetensors", dir);
    imcap_model *m;
    imcap_error e;
    cr_assert_eq(imcap_model_load(path, &m, &e), IMCAP_OK, "%s", e.msg);
    const char *now = imcap_model_metadata(m, "imcap.train.command"), *before = imcap_model_metadata(m, "imcap.train.init_command");
    cr_assert(now && strstr(now, "--init") != NULL, "%s", now ? now : "(none)");
    cr_assert(before && strstr(before, "--config") != NULL, "%s", before ? before : "(none)");
    imcap_model_free(m);
}

static char *model_meta(const char *path, const char *key) {
    imcap_model *m;
    imcap_error e;
    cr_assert_eq(imcap_model_load(path, &m, &e), IMCAP_OK, "%s", e.msg);
    const char *v = imcap_model_metadata(m, key);
    char *copy = v ? strdup(v) : NULL;
    imcap_model_free(m);
    return copy;
}

/* "Best" is the lowest validation loss by default: of three validations the
 * one kept is the one whose loss was lowest (the step-20 model at loss 3.49
 * used to win over step 60's 2.89 because F1 + pointing was 0 at both). */
Test(train, best_is_lowest_val_loss_by_default) {
    const char *dir = tu_tmpdir("train_select");
    tu_flickr_fixture(dir, 24);
    char extra[4200], *err = NULL, path[4200];
    snprintf(extra, sizeof extra, "--max-steps 30 --val-every 10 -o '%s/m.safetensors'", dir);
    cr_assert_eq(tu_run(train_cmd_loud(dir, extra), NULL, &err), 0, "%s", err);
    double best = 1e30;
    long best_step = -1;
    for (const char *p = err; (p = strstr(p, "val step ")); p++) {
        long step;
        double loss;
        if (sscanf(p, "val step %ld: loss %lf", &step, &loss) == 2 && loss < best) best = loss, best_step = step;
    }
    cr_assert(best_step > 0, "no validation lines: %s", err);
    cr_expect(strstr(err, "best model (by loss)") != NULL, "%s", err);
    free(err);
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    char *val = model_meta(path, "imcap.train.val"), want[64];
    snprintf(want, sizeof want, "step %ld, val loss", best_step);
    cr_expect(val && strstr(val, want) == val, "kept \"%s\", the lowest val loss was at step %ld", val, best_step);
    free(val);
    /* --select f1 on a data set without object annotations is refused, by name */
    snprintf(extra, sizeof extra, "--max-steps 3 --select f1 -o '%s/f.safetensors'", dir);
    cr_expect_neq(tu_run(train_cmd(dir, extra), NULL, &err), 0);
    cr_expect(err && strstr(err, "--select f1"), "%s", err);
    free(err);
    snprintf(extra, sizeof extra, "--max-steps 3 --select blue -o '%s/f.safetensors'", dir);
    cr_expect_eq(tu_run(train_cmd(dir, extra), NULL, &err), 2);
    cr_expect(err && strstr(err, "'blue'"), "%s", err);
    free(err);
}

/* Ctrl-C (a real SIGINT) after the first step, long before any validation:
 * exit 130, and OUT is a model that captions, marked "not validated". */
Test(train, sigint_before_validation_leaves_a_model) {
    const char *dir = tu_tmpdir("train_sigint");
    tu_flickr_fixture(dir, 24);
    char extra[4200], cmd[12000], *err = NULL, path[4200];
    snprintf(extra, sizeof extra, "--max-steps 100000 --val-every 100000 --ckpt-every 1 -o '%s/m.safetensors' 2>'%s/err.txt'",
             dir, dir);
    /* the checkpoint written after every step says the first step is done */
    snprintf(cmd, sizeof cmd,
             "%s & pid=$!; i=0; while [ ! -e '%s/m.safetensors.ckpt' ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; "
             "kill -INT $pid; wait $pid",
             train_cmd(dir, extra), dir);
    int rc = tu_run(cmd, NULL, NULL);
    snprintf(path, sizeof path, "%s/err.txt", dir);
    err = tu_read(path, NULL);
    cr_assert_eq(rc, 130, "exit %d: %s", rc, err);
    cr_expect(err && strstr(err, "not yet validated"), "%s", err);
    free(err);
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    char *val = model_meta(path, "imcap.train.val");
    cr_expect(val && strstr(val, "not validated: interrupted at step"), "%s", val);
    free(val);
    snprintf(cmd, sizeof cmd, "'%s' caption --model '%s' '%s/Flicker8k_Dataset/1000_image.jpg.png'", tu_exe(), path, dir);
    char *out = NULL;
    cr_expect_eq(tu_run(cmd, &out, &err), 0, "caption refused the interrupted run's model: %s", err);
    free(out), free(err);
}

/* --resume honours what only steers the rest of the run (with a note) and
 * refuses, by name, what would make another run; `imcap export` turns the
 * checkpoint into a model that captions. The default --att-reg is 1/cells
 * (a 4x4 grid here: 0.0625), recorded in the checkpoint. */
Test(train, resume_options_export_and_default_att_reg) {
    const char *dir = tu_tmpdir("train_resume_opts");
    tu_flickr_fixture(dir, 24);
    char extra[4200], cmd[12000], *err = NULL, path[4200];
    snprintf(extra, sizeof extra, "--max-steps 12 --stop-after 4 -o '%s/m.safetensors'", dir);
    cr_assert_eq(tu_run(train_cmd(dir, extra), NULL, &err), 130, "%s", err);
    free(err);
    snprintf(path, sizeof path, "%s/m.safetensors.ckpt", dir);
    size_t n;
    char *ck = tu_read(path, &n);
    cr_assert_not_null(ck);
    cr_expect(memmem(ck, n, "\"att_reg\":0.0625", 16) != NULL, "the default att-reg is not 1/16");
    free(ck);
    const char *base = "'%s' train --data '%s/dataset_flickr8k.json' --images '%s/Flicker8k_Dataset' --resume '%s' "
                       "--threads 2 -q -o '%s/m.safetensors' %s";
    snprintf(cmd, sizeof cmd, base, tu_exe(), dir, dir, path, dir, "--batch 4");
    cr_expect_eq(tu_run(cmd, NULL, &err), 2);
    cr_expect(err && strstr(err, "--batch 4 differs from the checkpoint's 8"), "%s", err);
    free(err);
    snprintf(cmd, sizeof cmd, base, tu_exe(), dir, dir, path, dir, "--select bleu4");
    cr_expect_eq(tu_run(cmd, NULL, &err), 2);
    cr_expect(err && strstr(err, "--select bleu4 differs"), "%s", err);
    free(err);
    /* export before the resume moves the checkpoint on */
    char model[4200];
    snprintf(model, sizeof model, "%s/exported.safetensors", dir);
    snprintf(cmd, sizeof cmd, "'%s' export '%s' -o '%s'", tu_exe(), path, model);
    cr_assert_eq(tu_run(cmd, NULL, &err), 0, "%s", err);
    free(err);
    char *val = model_meta(model, "imcap.train.val");
    cr_expect(val && strstr(val, "at step 4"), "%s", val);
    free(val);
    snprintf(cmd, sizeof cmd, base, tu_exe(), dir, dir, path, dir, "--lr 0.002 --val-every 6");
    cr_assert_eq(tu_run(cmd, NULL, &err), 0, "%s", err);
    cr_expect(err && strstr(err, "note: resuming with --lr 0.002 (the checkpoint's was 0.005)") &&
                  strstr(err, "--val-every 6"), "%s", err);
    free(err);
    imcap_model *rm;
    imcap_train_state rs;
    load_ckpt(path, &rm, &rs);
    cr_expect(rs.opt.adam.lr == 0.002f && rs.opt.val_every == 6 && rs.step == 12, "lr %g, val_every %ld, step %ld",
              rs.opt.adam.lr, rs.opt.val_every, rs.step);
    imcap_train_state_free(&rs);
    imcap_model_free(rm);
    snprintf(cmd, sizeof cmd, "'%s' export '%s/nope.ckpt' -o '%s'", tu_exe(), dir, model);
    cr_expect_eq(tu_run(cmd, NULL, &err), 3);
    cr_expect(err && strstr(err, "nope.ckpt"), "%s", err);
    free(err);
}

/* Warnings a demanding user wants before a wasted run. */
Test(train, warns_on_warmup_and_small_data) {
    const char *dir = tu_tmpdir("train_warn");
    tu_flickr_fixture(dir, 24);
    char extra[4200], *err = NULL;
    snprintf(extra, sizeof extra, "--max-steps 3 --warmup 10 -o '%s/m.safetensors'", dir);
    cr_assert_eq(tu_run(train_cmd_loud(dir, extra), NULL, &err), 0, "%s", err);
    cr_expect(strstr(err, "--warmup 10 >= the run's 3 steps"), "%s", err);
    free(err);
    snprintf(extra, sizeof extra, "--max-steps 2 --batch 4096 -o '%s/m2.safetensors'", dir);
    cr_assert_eq(tu_run(train_cmd_loud(dir, extra), NULL, &err), 0, "%s", err);
    cr_expect(strstr(err, "fewer than one batch of 4096"), "%s", err);
    free(err);
}

/* Training's validation and `imcap eval` share one scoring loop: the BLEU-4
 * recorded with the best model is what eval reports for that model on the
 * same val images, greedy. */
Test(train, validation_scores_are_evals) {
    const char *dir = tu_tmpdir("train_val_eval");
    tu_flickr_fixture(dir, 24);
    char extra[4200], cmd[12000], path[4200], *err = NULL, *out = NULL;
    snprintf(extra, sizeof extra, "--max-steps 20 -o '%s/m.safetensors'", dir);
    cr_assert_eq(tu_run(train_cmd(dir, extra), NULL, &err), 0, "%s", err);
    free(err);
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    char *val = model_meta(path, "imcap.train.val");
    const char *b = val ? strstr(val, "BLEU-4 ") : NULL;
    cr_assert(b, "no BLEU-4 in the model's metadata: %s", val ? val : "(none)");
    double trained = atof(b + 7);
    snprintf(cmd, sizeof cmd,
             "'%s' eval --json -m '%s' --data '%s/dataset_flickr8k.json' --images '%s/Flicker8k_Dataset' --split val "
             "--beam 1",
             tu_exe(), path, dir, dir);
    cr_assert_eq(tu_run(cmd, &out, &err), 0, "%s", err);
    const char *e = strstr(out, "\"Bleu_4\": ");
    cr_assert(e, "%s", out);
    double evaluated = atof(e + 10);
    cr_expect(fabs(evaluated - trained) < 0.00005, "validation said BLEU-4 %.4f, eval says %.6f", trained, evaluated);
    free(val), free(out), free(err);
}

/* ------------------------------------------------------------ the library */

typedef struct {
    int progress, validations, messages;
    long last_step;
} lib_seen;

static void lib_progress(void *ctx, const imcap_train_progress *p) {
    lib_seen *s = ctx;
    s->progress++, s->last_step = p->step;
}
static void lib_validation(void *ctx, const imcap_val_report *v) {
    (void)v;
    ((lib_seen *)ctx)->validations++;
}
static void lib_message(void *ctx, const char *msg) {
    (void)msg;
    ((lib_seen *)ctx)->messages++;
}

/* imcap_train from imcap.h alone: a run with callbacks, then a resume that
 * would make another run, refused by name, and one that goes on. */
Test(train, library_train_call) {
    const char *d = tu_tmpdir("train_library");
    tu_flickr_fixture(d, 24);
    char data[4200], images[4200], cfg[4200], out[4200], ckpt[4300];
    snprintf(data, sizeof data, "%s/dataset_flickr8k.json", d);
    snprintf(images, sizeof images, "%s/Flicker8k_Dataset", d);
    snprintf(cfg, sizeof cfg, "%s/config.json", d);
    snprintf(out, sizeof out, "%s/lib.safetensors", d);
    snprintf(ckpt, sizeof ckpt, "%s.ckpt", out);
    imcap_train_request r;
    imcap_train_request_init(&r);
    r.data = data, r.images = images, r.config = cfg, r.out = out, r.threads = 1;
    r.batch = 8, r.max_steps = 12, r.val_every = 6, r.lr = 5e-3, r.warmup = 2, r.seed = 3;
    lib_seen seen = {0};
    imcap_train_callbacks cb = {lib_progress, lib_validation, lib_message, &seen, NULL, NULL, NULL};
    imcap_train_outcome res;
    imcap_error err;
    cr_assert_eq(imcap_train(&r, &cb, &res, &err), IMCAP_OK, "%s", err.msg);
    cr_expect_eq(res.step, 12);
    cr_expect(res.wrote_model);
    cr_expect_eq(res.grad_shards, 1, "one thread, one shard");
    cr_expect_gt(seen.progress, 0);
    cr_expect_eq(seen.last_step, 12);
    cr_expect_eq(seen.validations, 2);
    cr_expect_gt(seen.messages, 0);
    imcap_model *m = NULL;
    cr_assert_eq(imcap_model_load(out, &m, &err), IMCAP_OK, "%s", err.msg);
    imcap_model_free(m);

    imcap_train_request_init(&r);
    r.data = data, r.images = images, r.resume = ckpt, r.out = out, r.threads = 1, r.batch = 4;
    cr_expect_eq(imcap_train(&r, &cb, &res, &err), IMCAP_E_ARG);
    cr_expect(strstr(err.msg, "--batch"), "%s", err.msg);
    r.batch = IMCAP_TRAIN_UNSET, r.max_steps = 14;
    cr_assert_eq(imcap_train(&r, &cb, &res, &err), IMCAP_OK, "%s", err.msg);
    cr_expect_eq(res.step, 14);
}

/* train --json: the run's outcome as one JSON object on stdout */
Test(train, json_outcome) {
    const char *d = tu_tmpdir("train_json");
    tu_flickr_fixture(d, 16);
    char *cmd = train_cmd(d, "--max-steps 4 --json -o j.safetensors");
    char full[9000], *o = NULL, *e = NULL;
    snprintf(full, sizeof full, "cd '%s' && %s", d, cmd);
    cr_assert_eq(tu_run(full, &o, &e), 0, "%s", e);
    cJSON *j = cJSON_Parse(o);
    cr_assert(j, "not JSON: %s", o);
    cr_expect_eq(cJSON_GetObjectItem(j, "step")->valueint, 4);
    cr_expect_str_eq(cJSON_GetObjectItem(j, "model")->valuestring, "j.safetensors");
    cr_expect_str_eq(cJSON_GetObjectItem(j, "select")->valuestring, "loss");
    cJSON_Delete(j);
    free(o), free(e);
}

/* fuzz_train's finding: a checkpoint header whose "step" (or an integer
 * option) does not fit a long was cast anyway (undefined) and loaded; it is
 * refused, naming the file and the field. The header is the regression file,
 * spliced into a checkpoint of a tiny model that is otherwise valid. */
Test(train, checkpoint_header_number_out_of_range) {
    const char *dir = tu_tmpdir("train_ckpt_range");
    char *text = tu_read(tu_src("tests/data/models/tiny_config.json"), NULL);
    imcap_config cfg;
    imcap_error e;
    cr_assert_eq(imcap_config_parse(text, "tiny_config.json", &cfg, &e), IMCAP_OK, "%s", e.msg);
    free(text);
    char *words[] = {"<pad>", "<start>", "<end>", "<unk>", "a"};
    imcap_vocab v = {5, words};
    imcap_model *m;
    cr_assert_eq(imcap_model_create(&cfg, &v, &m, &e), IMCAP_OK, "%s", e.msg);
    unsigned char *model;
    size_t msize;
    cr_assert_eq(imcap_model_serialize(m, &model, &msize, &e), IMCAP_OK, "%s", e.msg);
    size_t moments = 2 * m->tab.total * sizeof(float);
    imcap_model_free(m);

    size_t hl;
    char *header = tu_read(tu_src("tests/data/fuzz-regressions/fuzz_train/step_7e31.json"), &hl);
    size_t padded = (hl + 7) / 8 * 8, total = 24 + padded + msize + moments;
    unsigned char *ck = calloc(total, 1);
    uint64_t n64 = padded, m64 = msize;
    memcpy(ck, "IMCAPCK1", 8);
    memcpy(ck + 8, &n64, 8);
    memcpy(ck + 16, header, hl);
    memset(ck + 16 + hl, ' ', padded - hl);
    memcpy(ck + 16 + padded, &m64, 8);
    memcpy(ck + 24 + padded, model, msize);
    char path[4200];
    snprintf(path, sizeof path, "%s/big_step.ckpt", dir);
    tu_write(path, ck, total);
    imcap_train_state st;
    cr_assert_neq(imcap_checkpoint_load(path, &m, &st, &e), IMCAP_OK);
    cr_expect(strstr(e.msg, "big_step.ckpt") && strstr(e.msg, "\"step\" is out of range"), "%s", e.msg);
    cr_expect_null(m);

    /* the same header with a step in range loads */
    memcpy(ck + 16, "{\"step\": 7}", 11);
    memset(ck + 16 + 11, ' ', padded - 11);
    tu_write(path, ck, total);
    cr_assert_eq(imcap_checkpoint_load(path, &m, &st, &e), IMCAP_OK, "%s", e.msg);
    cr_expect_eq(st.step, 7);
    imcap_train_state_free(&st);
    imcap_model_free(m);
    free(ck), free(header), free(model);
}

/* --att-sup, --rel-weight: refused by name on a data set without "objects"
 * (the Flickr layout fixture), and on synthetic scenes a run that takes
 * them keeps them in its checkpoint (a resumed run goes on with them).
 * Their gradients are checked in test_gradcheck (gradcheck/attention_targets,
 * gradcheck/relation_weight). */
Test(train, attention_targets_option) {
    const char *dir = tu_tmpdir("train_att_sup");
    tu_flickr_fixture(dir, 24);
    char extra[4200], cmd[8192], *err = NULL;
    snprintf(extra, sizeof extra, "--max-steps 3 --att-sup 1 -o '%s/m.safetensors'", dir);
    int rc = tu_run(train_cmd(dir, extra), NULL, &err);
    cr_expect_neq(rc, 0, "a data set without objects was taken");
    cr_expect(err && strstr(err, "--att-sup, --att-sup-rel and --rel-weight need object annotations"), "%s", err);
    free(err);
    snprintf(extra, sizeof extra, "--max-steps 3 --rel-weight 2 -o '%s/m.safetensors'", dir);
    rc = tu_run(train_cmd(dir, extra), NULL, &err);
    cr_expect_neq(rc, 0, "--rel-weight on a data set without objects was taken");
    cr_expect(err && strstr(err, "need object annotations"), "%s", err);
    free(err);

    snprintf(cmd, sizeof cmd, "'%s' synth --count 40 --seed 9 -q -o '%s/scenes'", tu_exe(), dir);
    cr_assert_eq(tu_run(cmd, NULL, NULL), 0);
    snprintf(cmd, sizeof cmd,
             "'%s' train --data '%s/scenes/dataset.json' --images '%s/scenes' --config '%s/config.json' --batch 8 "
             "--max-steps 4 --val-images 4 --att-sup 1.5 --rel-weight 2.5 --threads 2 -q -o '%s/s.safetensors'",
             tu_exe(), dir, dir, dir, dir);
    rc = tu_run(cmd, NULL, &err);
    cr_assert_eq(rc, 0, "%s", err);
    free(err);
    char path[4200];
    snprintf(path, sizeof path, "%s/s.safetensors.ckpt", dir);
    imcap_model *m;
    imcap_train_state st;
    imcap_error e;
    cr_assert_eq(imcap_checkpoint_load(path, &m, &st, &e), IMCAP_OK, "%s", e.msg);
    cr_expect_eq(st.opt.att_sup, 1.5f);
    cr_expect_eq(st.opt.rel_weight, 2.5f);
    imcap_train_state_free(&st);
    imcap_model_free(m);
}
