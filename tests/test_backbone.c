/* test_backbone.c — format 2 models and `imcap init --backbone`: parity with
 * torchvision (scripts/backbone_parity.py; skipped only where /usr/bin/python3
 * has no torch / torchvision), and backbone files that must be refused with
 * the tensor named. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "testutil.h"
#include "train/train.h"

/* Runs imcap with args; returns the exit status, stderr in *err. */
static int imcap(const char *args, char **err) {
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "'%s' %s", tu_exe(), args);
    char *out = NULL;
    int rc = tu_run(cmd, &out, err);
    free(out);
    return rc;
}

/* Runs the parity script in dir (a tu_tmpdir) for args. */
static void parity_in(const char *dir, const char *args) {
    char cmd[2048];
    char *out = NULL, *err = NULL;
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' '%s' '%s' '%s' %s", tu_src("scripts/backbone_parity.py"), tu_exe(),
             dir, tu_src("tests/data/images/photo.jpg"), args);
    int rc = tu_run(cmd, &out, &err);
    if (rc == 77) cr_skip("torch / torchvision missing for /usr/bin/python3 (scripts/setup.sh --test-deps installs them): %s", err);
    fprintf(stderr, "backbone parity: %s", out ? out : "");
    cr_expect_eq(rc, 0, "parity failed for %s (exit %d):\n%s%s", args, rc, out ? out : "", err ? err : "");
    free(out), free(err);
}

/* the val losses printed by imcap train, in order */
static int val_losses(const char *log, double *out, int cap) {
    int n = 0;
    for (const char *p = log; p && (p = strstr(p, "val step")) && n < cap; p++) {
        const char *l = strstr(p, "loss ");
        if (l) out[n++] = atof(l + 5);
    }
    return n;
}

static void parity(const char *name, const char *args) { parity_in(tu_tmpdir(name), args); }

/* then the end-to-end case: that resnet18, frozen, under a decoder
 * trained on a small data set in the Flickr8k layout (scenes resized to
 * 224): the encoder's tensors stay byte-identical and the loss falls */
Test(parity, resnet18_then_frozen_training) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", tu_tmpdir("parity_r18"));
    parity_in(dir, "resnet18");
    char cmd[8192], *err = NULL;
    snprintf(cmd, sizeof cmd, "'%s' synth --count 48 --seed 21 -o '%s/data' >/dev/null 2>&1", tu_exe(), dir);
    cr_assert_eq(tu_run(cmd, NULL, NULL), 0);
    snprintf(cmd, sizeof cmd,
             "'%s' init --backbone resnet18 --backbone-weights '%s/resnet18.safetensors' --vocab-data '%s/data/dataset.json' "
             "--min-count 1 --config '%s/decoder.json' --seed 3 -o '%s/r18.safetensors'",
             tu_exe(), dir, dir, dir, dir);
    char dec[1100];
    snprintf(dec, sizeof dec, "%s/decoder.json", dir);
    const char *dj = "{\"embed_dim\": 32, \"hidden_dim\": 64, \"attention_dim\": 32, \"max_length\": 16}";
    tu_write(dec, dj, strlen(dj));
    cr_assert_eq(tu_run(cmd, NULL, &err), 0, "%s", err);
    free(err);
    snprintf(cmd, sizeof cmd,
             "'%s' train --data '%s/data/dataset.json' --images '%s/data' --init '%s/r18.safetensors' --freeze-encoder "
             "--batch 8 --max-steps 24 --val-every 8 --val-images 4 --att-reg 0.02 --lr 3e-3 --warmup 2 "
             "-o '%s/r18t.safetensors'",
             tu_exe(), dir, dir, dir, dir);
    cr_assert_eq(tu_run(cmd, NULL, &err), 0, "%s", err);
    double v[8];
    int nv = val_losses(err, v, 8);
    cr_expect(nv == 3 && v[2] < v[0], "the val loss did not fall (%d validations): %s", nv, err);
    free(err);
    imcap_error e;
    imcap_model *a, *b;
    imcap_train_state st;
    char pa[1100], pb[1100];
    snprintf(pa, sizeof pa, "%s/r18.safetensors", dir);
    snprintf(pb, sizeof pb, "%s/r18t.safetensors.ckpt", dir);
    cr_assert_eq(imcap_model_load(pa, &a, &e), IMCAP_OK, "%s", e.msg);
    cr_assert_eq(imcap_checkpoint_load(pb, &b, &st, &e), IMCAP_OK, "%s", e.msg);
    int ea = imcap_param_table_find(&a->tab, "encoder.0.weight"), eb = imcap_param_table_find(&b->tab, "encoder.0.weight");
    size_t start_a = a->tab.t[ea].offset, start_b = b->tab.t[eb].offset, n = 0;
    for (int i = 0; i < a->tab.n; i++)
        if (!strncmp(a->tab.t[i].name, "encoder.", 8)) n += a->tab.t[i].count;
    cr_expect(n > 11000000 && memcmp(a->block + start_a, b->block + start_b, n * sizeof(float)) == 0,
              "resnet18's %zu encoder floats changed", n);
    imcap_train_state_free(&st);
    imcap_model_free(a), imcap_model_free(b);
}
Test(parity, resnet50_layer3_grid14) { parity("parity_r50", "resnet50 --layer layer3 --grid 14"); }
Test(parity, vgg11_bn) { parity("parity_vgg11bn", "vgg11_bn"); }

/* ---- refusals, without torch: safetensors files written here */

typedef struct {
    const char *name, *dtype;
    int ndim;
    long long shape[4];
} tensor;

/* A safetensors file of the given tensors, zero-filled. */
static void write_st(const char *path, const tensor *t, int n) {
    char hdr[8192];
    size_t len = 0, off = 0;
    len += (size_t)snprintf(hdr + len, sizeof hdr - len, "{");
    for (int i = 0; i < n; i++) {
        size_t count = 1, es = !strcmp(t[i].dtype, "I64") ? 8 : !strcmp(t[i].dtype, "F32") ? 4 : 2;
        char shape[128] = "";
        size_t sl = 0;
        for (int d = 0; d < t[i].ndim; d++) {
            count *= (size_t)t[i].shape[d];
            sl += (size_t)snprintf(shape + sl, sizeof shape - sl, "%s%lld", d ? "," : "", t[i].shape[d]);
        }
        len += (size_t)snprintf(hdr + len, sizeof hdr - len, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[%s],\"data_offsets\":[%zu,%zu]}",
                                i ? "," : "", t[i].name, t[i].dtype, shape, off, off + count * es);
        off += count * es;
    }
    len += (size_t)snprintf(hdr + len, sizeof hdr - len, "}");
    while (len % 8) hdr[len++] = ' ';
    size_t total = 8 + len + off;
    unsigned char *b = calloc(1, total);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)len >> (8 * i));
    memcpy(b + 8, hdr, len);
    tu_write(path, b, total);
    free(b);
}

static const char *words(const char *dir) {
    static char p[1024];
    snprintf(p, sizeof p, "%s/words.txt", dir);
    tu_write(p, "a\nb\n", 4);
    return p;
}

/* imcap init --backbone resnet18 on file W must fail, naming each of want. */
static void refused(const char *dir, const char *w, const char *extra, const char *const *want) {
    char args[4096], *err = NULL;
    snprintf(args, sizeof args, "init --backbone resnet18 --backbone-weights '%s' --vocab '%s' -o '%s/m.safetensors' %s", w,
             words(dir), dir, extra ? extra : "");
    int rc = imcap(args, &err);
    cr_expect(rc != 0, "accepted %s", w);
    for (int i = 0; want[i]; i++) cr_expect(err && strstr(err, want[i]), "message \"%s\" lacks \"%s\"", err, want[i]);
    char out[1100];
    snprintf(out, sizeof out, "%s/m.safetensors", dir);
    FILE *f = fopen(out, "rb");
    cr_expect_null(f, "a model was written despite the error");
    if (f) fclose(f);
    free(err);
}

Test(refuse, wrong_shape_dtype_missing_extra) {
    const char *dir = tu_tmpdir("bb_refuse");
    char w[1024];
    snprintf(w, sizeof w, "%s/w.safetensors", dir);
    /* conv1 of a 3x3 stem: not resnet18's 7x7 */
    write_st(w, (tensor[]){{"conv1.weight", "F32", 4, {64, 3, 3, 3}}}, 1);
    refused(dir, w, NULL, (const char *[]){"conv1.weight", "[64, 3, 3, 3]", "[64, 3, 7, 7]", NULL});
    /* the right shape as integers */
    write_st(w, (tensor[]){{"conv1.weight", "I64", 4, {64, 3, 7, 7}}}, 1);
    refused(dir, w, NULL, (const char *[]){"conv1.weight", "I64", NULL});
    /* right so far, then nothing else: the first missing tensor is named */
    write_st(w, (tensor[]){{"conv1.weight", "F16", 4, {64, 3, 7, 7}}}, 1);
    refused(dir, w, NULL, (const char *[]){"bn1.", "missing", NULL});
    /* a tensor of another network (resnet50's third conv in a block) */
    write_st(w, (tensor[]){{"conv1.weight", "F32", 4, {64, 3, 7, 7}}, {"layer1.0.conv3.weight", "F32", 4, {256, 64, 1, 1}}}, 2);
    refused(dir, w, NULL, (const char *[]){"layer1.0.conv3.weight", "resnet18", NULL});
    /* classifier tensors and num_batches_tracked are ignored, so the first missing is still bn1's */
    write_st(w, (tensor[]){{"conv1.weight", "F32", 4, {64, 3, 7, 7}}, {"fc.weight", "F32", 2, {10, 512}},
                          {"bn1.num_batches_tracked", "I64", 0, {0}}},
             3);
    refused(dir, w, NULL, (const char *[]){"bn1.", "missing", NULL});
    /* an imcap model is not a backbone */
    refused(dir, tu_src("models/default.safetensors"), NULL, (const char *[]){"decoder.", "resnet18", NULL});
    /* a cut file */
    tu_write(w, "\x10\0\0\0\0\0\0\0{\"a\":", 13);
    refused(dir, w, NULL, (const char *[]){w, "header", NULL});
    /* no such file */
    snprintf(w, sizeof w, "%s/absent.safetensors", dir);
    refused(dir, w, NULL, (const char *[]){w, NULL});
}

Test(refuse, arguments) {
    const char *dir = tu_tmpdir("bb_args");
    char w[1024], args[4096], *err = NULL;
    snprintf(w, sizeof w, "%s/w.safetensors", dir);
    write_st(w, (tensor[]){{"conv1.weight", "F32", 4, {64, 3, 7, 7}}}, 1);
    refused(dir, w, "--backbone-layer layer5", (const char *[]){"layer5", NULL});
    snprintf(args, sizeof args, "init --backbone resnet19 --backbone-weights '%s' --vocab '%s' -o '%s/m.safetensors'", w,
             words(dir), dir);
    cr_expect_eq(imcap(args, &err), 2);
    cr_expect(err && strstr(err, "resnet19") && strstr(err, "resnet101") && strstr(err, "vgg16_bn"), "%s", err);
    free(err);
    snprintf(args, sizeof args, "init --backbone resnet18 --vocab '%s' -o '%s/m.safetensors'", words(dir), dir);
    cr_expect_eq(imcap(args, &err), 2, "--backbone without --backbone-weights");
    free(err);
    snprintf(args, sizeof args, "init --config x.json --grid 7 --vocab '%s' -o '%s/m.safetensors'", words(dir), dir);
    cr_expect_eq(imcap(args, &err), 2, "--grid without --backbone");
    free(err);
    /* an unknown field in the decoder config */
    char dec[1100];
    snprintf(dec, sizeof dec, "%s/dec.json", dir);
    tu_write(dec, "{\"hidden_dim\": 8, \"dropout\": 0.5}", 34);
    snprintf(args, sizeof args, "--config '%s'", dec);
    refused(dir, w, args, (const char *[]){"dropout", "dec.json", NULL});
}

/* ---- a format-2 model made from a config: written as format 2, loaded,
 * captioned; and the shipped format-1 model still saves as format 1 */
Test(format2, config_round_trip_and_caption) {
    const char *dir = tu_tmpdir("fmt2");
    const char *cfg =
        "{\"image_size\": 40, \"mean\": [0.5, 0.5, 0.5], \"std\": [0.25, 0.25, 0.25], \"encoder\": ["
        "{\"type\": \"conv\", \"out\": 8, \"kernel\": 3, \"stride\": 2, \"pad\": 1, \"bias\": false},"
        "{\"type\": \"batchnorm\", \"eps\": 0.001}, {\"type\": \"relu\"},"
        "{\"type\": \"maxpool\", \"kernel\": 3, \"stride\": 2, \"pad\": 1},"
        "{\"type\": \"basic\", \"planes\": 8, \"stride\": 1, \"downsample\": false},"
        "{\"type\": \"bottleneck\", \"planes\": 4, \"stride\": 2, \"downsample\": true},"
        "{\"type\": \"adaptive_avgpool\", \"out\": 3}, {\"type\": \"coords\"}],"
        " \"embed_dim\": 8, \"hidden_dim\": 8, \"attention_dim\": 8, \"max_length\": 4}";
    char p[1100], m[1100], args[4096], *err = NULL, *out = NULL;
    snprintf(p, sizeof p, "%s/cfg.json", dir);
    tu_write(p, cfg, strlen(cfg));
    snprintf(m, sizeof m, "%s/m.safetensors", dir);
    snprintf(args, sizeof args, "init --config '%s' --vocab '%s' -o '%s'", p, words(dir), m);
    cr_assert_eq(imcap(args, &err), 0, "%s", err);
    free(err);
    size_t n;
    char *file = tu_read(m, &n);
    cr_assert_not_null(file);
    cr_expect(memmem(file, n, "\"imcap.format\":\"2\"", 18) != NULL, "format 2 not written");
    cr_expect(memmem(file, n, "encoder.5.downsample.1.running_var", 34) != NULL, "torchvision names inside a block");
    cr_expect(memmem(file, n, "encoder.1.running_mean", 22) != NULL);
    cr_expect(memmem(file, n, "encoder.0.bias", 14) == NULL, "a conv without bias has no bias tensor");
    free(file);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "'%s' info '%s'", tu_exe(), m);
    cr_expect_eq(tu_run(cmd, &out, &err), 0, "%s", err);
    cr_expect(out && strstr(out, "3x3"), "grid 3x3 from the adaptive pool: %s", out);
    free(out), free(err);
    snprintf(cmd, sizeof cmd, "'%s' caption --model '%s' '%s'", tu_exe(), m, tu_src("samples/scene_00.png"));
    cr_expect_eq(tu_run(cmd, &out, &err), 0, "%s", err);
    free(out), free(err);
    /* format 1 stays format 1 when saved again (init writes the shipped config) */
    snprintf(cmd, sizeof cmd, "'%s' init --config '%s' --vocab '%s' -o '%s/v1.safetensors'", tu_exe(),
             tu_src("models/default_config.json"), words(dir), dir);
    cr_assert_eq(tu_run(cmd, NULL, NULL), 0);
    snprintf(p, sizeof p, "%s/v1.safetensors", dir);
    file = tu_read(p, &n);
    cr_expect(file && memmem(file, n, "\"imcap.format\":\"1\"", 18) != NULL, "a format-1 model must be written as format 1");
    free(file);
}

/* Training the encoder of a model that has batch norms is refused by name. */
Test(format2, training_the_encoder_is_refused) {
    const char *dir = tu_tmpdir("fmt2_train");
    const char *cfg = "{\"image_size\": 16, \"mean\": [0.5, 0.5, 0.5], \"std\": [0.25, 0.25, 0.25], \"encoder\": ["
                      "{\"type\": \"conv\", \"out\": 4, \"kernel\": 3, \"stride\": 1, \"pad\": 1, \"bias\": false},"
                      "{\"type\": \"batchnorm\"}, {\"type\": \"relu\"}],"
                      " \"embed_dim\": 8, \"hidden_dim\": 8, \"attention_dim\": 8, \"max_length\": 4}";
    char p[1100], m[1100], cmd[4096], *err = NULL;
    snprintf(p, sizeof p, "%s/cfg.json", dir);
    tu_write(p, cfg, strlen(cfg));
    snprintf(m, sizeof m, "%s/m.safetensors", dir);
    snprintf(cmd, sizeof cmd, "'%s' init --config '%s' --vocab '%s' -o '%s'", tu_exe(), p, words(dir), m);
    cr_assert_eq(tu_run(cmd, NULL, NULL), 0);
    snprintf(cmd, sizeof cmd, "'%s' synth --count 8 --seed 5 --size 32 -o '%s/data' >/dev/null 2>&1", tu_exe(), dir);
    cr_assert_eq(tu_run(cmd, NULL, NULL), 0);
    snprintf(cmd, sizeof cmd,
             "'%s' train --data '%s/data/dataset.json' --images '%s/data/images' --init '%s' --batch 2 --max-steps 1 "
             "-o '%s/out.safetensors' --quiet",
             tu_exe(), dir, dir, m, dir);
    int rc = tu_run(cmd, NULL, &err);
    cr_expect(rc != 0, "training a batchnorm encoder was accepted");
    cr_expect(err && strstr(err, "batchnorm") && strstr(err, "--freeze-encoder"), "%s", err);
    free(err);
}

/* ---- decoder training over a frozen encoder and its feature cache */

/* The floats of every tensor whose name starts with prefix, in table order. */
static float *tensors_with(const imcap_model *m, const char *prefix, size_t *n) {
    size_t total = 0;
    for (int i = 0; i < m->tab.n; i++)
        if (!strncmp(m->tab.t[i].name, prefix, strlen(prefix))) total += m->tab.t[i].count;
    float *out = malloc((total ? total : 1) * sizeof(float)), *p = out;
    for (int i = 0; i < m->tab.n; i++)
        if (!strncmp(m->tab.t[i].name, prefix, strlen(prefix))) {
            memcpy(p, m->block + m->tab.t[i].offset, m->tab.t[i].count * sizeof(float));
            p += m->tab.t[i].count;
        }
    *n = total;
    return out;
}

Test(frozen, resnet_like_encoder_stays_byte_identical_and_the_loss_falls) {
    const char *dir = tu_tmpdir("frozen");
    /* a ResNet-18 in miniature, as imcap init --backbone would write it */
    const char *cfg = "{\"image_size\": 64, \"mean\": [0.485, 0.456, 0.406], \"std\": [0.229, 0.224, 0.225], \"encoder\": ["
                      "{\"type\": \"conv\", \"out\": 16, \"kernel\": 7, \"stride\": 2, \"pad\": 3, \"bias\": false},"
                      "{\"type\": \"batchnorm\"}, {\"type\": \"relu\"}, {\"type\": \"maxpool\", \"kernel\": 3, \"stride\": 2, \"pad\": 1},"
                      "{\"type\": \"basic\", \"planes\": 16, \"stride\": 1, \"downsample\": false},"
                      "{\"type\": \"basic\", \"planes\": 32, \"stride\": 2, \"downsample\": true}, {\"type\": \"coords\"}],"
                      " \"embed_dim\": 32, \"hidden_dim\": 64, \"attention_dim\": 32, \"max_length\": 16}";
    char p[1100], cmd[8192], *err = NULL;
    snprintf(p, sizeof p, "%s/cfg.json", dir);
    tu_write(p, cfg, strlen(cfg));
    snprintf(cmd, sizeof cmd, "'%s' synth --count 120 --seed 11 --size 64 -o '%s/data' >/dev/null 2>&1", tu_exe(), dir);
    cr_assert_eq(tu_run(cmd, NULL, NULL), 0);
    /* m0: the config's random model with the data set's vocabulary (one
     * frozen step, which leaves the encoder as initialised) */
    const char *make_fmt = "'%s' train --data '%s/data/dataset.json' --images '%s/data' --config '%s' --seed %d "
                           "--freeze-encoder --batch 16 --max-steps 1 --val-images 1 --features '%s/f0' -o '%s/m0.safetensors'";
    snprintf(cmd, sizeof cmd, make_fmt, tu_exe(), dir, dir, p, 4, dir, dir);
    cr_assert_eq(tu_run(cmd, NULL, &err), 0, "%s", err);
    free(err);
    const char *train_fmt = "'%s' train --data '%s/data/dataset.json' --images '%s/data' --init '%s/m0.safetensors' "
                            "--freeze-encoder --batch 16 --max-steps 40 --val-every 10 --val-images 8 --att-reg 0.02 "
                            "--lr 3e-3 --warmup 5 --threads 2 -o '%s/m1.safetensors'";
    snprintf(cmd, sizeof cmd, train_fmt, tu_exe(), dir, dir, dir, dir);
    cr_assert_eq(tu_run(cmd, NULL, &err), 0, "%s", err);
    cr_expect(err && strstr(err, "built feature cache"), "%s", err);
    /* the in-domain statistics at the end come from the cache's descriptors */
    cr_expect(err && strstr(err, "in-domain statistics in"), "%s", err);
    double v[8];
    int nv = val_losses(err, v, 8);
    cr_assert_eq(nv, 4, "four validations expected: %s", err);
    cr_expect(v[3] < v[0] - 0.2, "the val loss did not fall: %g -> %g", v[0], v[3]);
    free(err);

    imcap_error e;
    imcap_model *a, *b;
    char ma[1100], mb[1100];
    snprintf(ma, sizeof ma, "%s/m0.safetensors", dir);
    snprintf(mb, sizeof mb, "%s/m1.safetensors.ckpt", dir); /* the last step's weights live in the checkpoint */
    cr_assert_eq(imcap_model_load(ma, &a, &e), IMCAP_OK, "%s", e.msg);
    imcap_train_state st;
    cr_assert_eq(imcap_checkpoint_load(mb, &b, &st, &e), IMCAP_OK, "%s", e.msg);
    size_t na, nb;
    float *ea = tensors_with(a, "encoder.", &na), *eb = tensors_with(b, "encoder.", &nb);
    cr_assert_eq(na, nb);
    cr_expect(na > 10000 && memcmp(ea, eb, na * sizeof(float)) == 0, "the frozen encoder changed");
    free(ea), free(eb);
    float *da = tensors_with(a, "decoder.", &na), *db = tensors_with(b, "decoder.", &nb);
    cr_expect(memcmp(da, db, na * sizeof(float)) != 0, "the decoder did not train");
    free(da), free(db);
    imcap_train_state_free(&st);
    imcap_model_free(a);
    imcap_model_free(b);

    /* a second run reuses the cache; a different encoder rebuilds it */
    snprintf(cmd, sizeof cmd, train_fmt, tu_exe(), dir, dir, dir, dir);
    strcat(cmd, " --max-steps 1 --val-every 1");
    cr_assert_eq(tu_run(cmd, NULL, &err), 0, "%s", err);
    cr_expect(err && strstr(err, "reusing feature cache"), "%s", err);
    free(err);
    snprintf(cmd, sizeof cmd, make_fmt, tu_exe(), dir, dir, p, 5, dir, dir);
    cr_assert_eq(tu_run(cmd, NULL, NULL), 0);
    snprintf(cmd, sizeof cmd, train_fmt, tu_exe(), dir, dir, dir, dir);
    strcat(cmd, " --max-steps 1 --val-every 1");
    cr_assert_eq(tu_run(cmd, NULL, &err), 0, "%s", err);
    cr_expect(err && strstr(err, "built feature cache"), "a stale cache was reused: %s", err);
    free(err);
}
