/* test_domain.c — the in-domain check: the shipped model flags photographs
 * and accepts unseen scenes of its own world; `imcap calibrate` writes
 * statistics that load back and give the same scores; every output carries
 * the score; malformed "domain" configs are refused by name. Photographs
 * come from Debian packages through scripts/fetch_photos.sh (the test
 * command runs it; the photo test skips, saying so, when they are absent). */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/domain.h"
#include "model/model.h"
#include "testutil.h"

static int run(const char *cmd, char **out, char **err) { return tu_run(cmd, out, err); }

/* "in_domain": true/false count over a JSONL file's records */
static void count_jsonl(const char *path, int *n, int *in, double *max_score, double *min_score) {
    size_t len;
    char *s = tu_read(path, &len);
    cr_assert_not_null(s, "%s", path);
    *n = *in = 0;
    *max_score = -1, *min_score = 1e300;
    for (char *p = s; (p = strstr(p, "\"domain_score\": ")); p++) {
        double v = atof(p + 16);
        char *q = strstr(p, "\"in_domain\": ");
        cr_assert_not_null(q);
        (*n)++;
        *in += !strncmp(q + 13, "true", 4);
        cr_expect_eq(v <= 1.0, !strncmp(q + 13, "true", 4), "in_domain disagrees with the score %g", v);
        if (v > *max_score) *max_score = v;
        if (v < *min_score) *min_score = v;
    }
    free(s);
}

Test(shipped, flags_photographs_and_accepts_unseen_scenes) {
    const char *dir = tu_tmpdir("domain_shipped");
    char cmd[4096], photos[1024];
    const char *env = getenv("IMCAP_PHOTOS");
    snprintf(photos, sizeof photos, "%s", env ? env : tu_src("build/photos"));
    /* unseen scenes: a seed no model was trained or calibrated on */
    snprintf(cmd, sizeof cmd, "'%s' synth --count 500 --seed 777001 -o '%s/scenes' >/dev/null 2>&1", tu_exe(), dir);
    cr_assert_eq(run(cmd, NULL, NULL), 0);
    snprintf(cmd, sizeof cmd, "'%s' batch '%s/scenes/images' -o '%s/scenes.jsonl' -q", tu_exe(), dir, dir);
    cr_assert_eq(run(cmd, NULL, NULL), 0);
    int n, in;
    double mx, mn;
    snprintf(cmd, sizeof cmd, "%s/scenes.jsonl", dir);
    count_jsonl(cmd, &n, &in, &mx, &mn);
    cr_expect_eq(n, 500);
    fprintf(stderr, "domain: %d of %d unseen scenes in domain (highest score %.3g)\n", in, n, mx);
    cr_expect(in >= 0.98 * n, "only %d of %d unseen scenes accepted", in, n);

    DIR *d = opendir(photos);
    if (!d) cr_skip("no photographs in %s (scripts/fetch_photos.sh fetches them; the test command runs it)", photos);
    closedir(d);
    snprintf(cmd, sizeof cmd, "'%s' batch '%s' -o '%s/photos.jsonl' -q", tu_exe(), photos, dir);
    cr_assert_eq(run(cmd, NULL, NULL), 0);
    snprintf(cmd, sizeof cmd, "%s/photos.jsonl", dir);
    count_jsonl(cmd, &n, &in, &mx, &mn);
    fprintf(stderr, "domain: %d of %d photographs flagged (lowest score %.3g)\n", n - in, n, mn);
    cr_expect(n >= 15, "only %d photographs in %s", n, photos);
    cr_expect(n - in >= 0.95 * n, "only %d of %d photographs flagged", n - in, n);
}

Test(outputs, caption_json_plain_warning_batch_and_viewer) {
    const char *dir = tu_tmpdir("domain_outputs");
    char cmd[4096], *out = NULL, *err = NULL;
    const char *photo = tu_src("tests/data/images/photo.jpg"), *scene = tu_src("samples/scene_00.png");
    /* plain: the caption on stdout, one warning line on stderr for the atypical image only */
    snprintf(cmd, sizeof cmd, "'%s' caption '%s' '%s'", tu_exe(), scene, photo);
    cr_assert_eq(run(cmd, &out, &err), 0, "%s", err);
    cr_expect(err && strstr(err, "photo.jpg is unlike the images") && strstr(err, "unreliable"), "%s", err);
    cr_expect(!strstr(err, "scene_00"), "a scene was flagged: %s", err);
    cr_expect(out && strstr(out, "scene_00.png\t") && strstr(out, "photo.jpg\t"), "%s", out);
    free(out), free(err);
    /* JSON: the fields, no warning */
    snprintf(cmd, sizeof cmd, "'%s' caption --json '%s' '%s'", tu_exe(), scene, photo);
    cr_assert_eq(run(cmd, &out, &err), 0, "%s", err);
    cr_expect(out && strstr(out, "\"in_domain\": true") && strstr(out, "\"in_domain\": false"), "%s", out);
    cr_expect(err && !strstr(err, "warning"), "%s", err);
    free(out), free(err);
    /* batch records */
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/in' && cp '%s' '%s' '%s/in/' && '%s' batch '%s/in' -o '%s/o.jsonl' -q", dir,
             scene, photo, dir, tu_exe(), dir, dir);
    cr_assert_eq(run(cmd, NULL, NULL), 0);
    int n, in;
    double mx, mn;
    snprintf(cmd, sizeof cmd, "%s/o.jsonl", dir);
    count_jsonl(cmd, &n, &in, &mx, &mn);
    cr_expect(n == 2 && in == 1, "%d records, %d in domain", n, in);
    /* attend: warning, and the viewer says so */
    snprintf(cmd, sizeof cmd, "'%s' attend -o '%s/att' '%s'", tu_exe(), dir, photo);
    cr_assert_eq(run(cmd, &out, &err), 0, "%s", err);
    cr_expect(err && strstr(err, "imcap attend: warning"), "%s", err);
    free(out), free(err);
    snprintf(cmd, sizeof cmd, "%s/att/photo.html", dir);
    size_t len;
    char *html = tu_read(cmd, &len);
    cr_expect(html && strstr(html, "Unreliable caption"), "the viewer does not warn");
    free(html);
}

Test(calibrate, round_trip_same_scores_and_refusals) {
    const char *dir = tu_tmpdir("domain_cal");
    char cmd[4096], *err = NULL, *out = NULL;
    snprintf(cmd, sizeof cmd, "'%s' synth --count 300 --seed 4321 -o '%s/d' >/dev/null 2>&1", tu_exe(), dir);
    cr_assert_eq(run(cmd, NULL, NULL), 0);
    snprintf(cmd, sizeof cmd, "'%s' calibrate --data '%s/d/dataset.json' --images '%s/d' --threads 2 -o '%s/m.safetensors'",
             tu_exe(), dir, dir, dir);
    cr_assert_eq(run(cmd, NULL, &err), 0, "%s", err);
    cr_expect(err && strstr(err, "encoder layer 5 (maxpool, 32 channels)") && strstr(err, "240 train images"), "%s", err);
    free(err);
    /* the metadata records the command, which differs: compare the statistics through the library instead */
    imcap_error e;
    imcap_model *a, *b;
    snprintf(cmd, sizeof cmd,
             "'%s' calibrate --data '%s/d/dataset.json' --images '%s/d' --threads 1 -o '%s/m1.safetensors' -q --json",
             tu_exe(), dir, dir, dir);
    cr_assert_eq(run(cmd, &out, NULL), 0);
    /* --json: the statistics on stdout, the ones the model holds */
    cJSON *js = cJSON_Parse(out);
    cr_assert(js, "not JSON: %s", out);
    cr_expect_eq(cJSON_GetObjectItem(js, "layer")->valueint, 5);
    cr_expect_eq(cJSON_GetObjectItem(js, "train_images")->valueint, 240);
    double json_threshold = cJSON_GetObjectItem(js, "threshold")->valuedouble;
    cJSON_Delete(js);
    free(out);
    out = NULL;
    char pa[1100], pb[1100];
    snprintf(pa, sizeof pa, "%s/m.safetensors", dir);
    snprintf(pb, sizeof pb, "%s/m1.safetensors", dir);
    cr_assert_eq(imcap_model_load(pa, &a, &e), IMCAP_OK, "%s", e.msg);
    cr_assert_eq(imcap_model_load(pb, &b, &e), IMCAP_OK, "%s", e.msg);
    cr_expect(a->cfg.has_domain && a->cfg.domain_layer == 5 && a->cfg.domain_F == 4 * 32 + 32 * 31 / 2);
    cr_expect(a->cfg.domain_threshold == b->cfg.domain_threshold, "threads changed the threshold");
    cr_expect_float_eq(json_threshold, b->cfg.domain_threshold, 1e-6 * b->cfg.domain_threshold, "%g", json_threshold);
    cr_expect(memcmp(a->block, b->block, a->tab.total * sizeof(float)) == 0, "threads changed the statistics");
    imcap_model_free(a), imcap_model_free(b);
    /* saved and loaded: the same scores */
    snprintf(cmd, sizeof cmd, "'%s' caption --json --model '%s/m.safetensors' '%s'", tu_exe(), dir,
             tu_src("samples/scene_03.png"));
    cr_assert_eq(run(cmd, &out, NULL), 0);
    cr_expect(out && strstr(out, "\"domain_score\": "), "%s", out);
    free(out);
    /* a model without statistics says nothing */
    snprintf(cmd, sizeof cmd, "'%s' init --config '%s' --vocab '%s' -o '%s/plain.safetensors' && '%s' caption --json --model "
             "'%s/plain.safetensors' '%s'",
             tu_exe(), tu_src("models/default_config.json"), tu_src("tests/data/models/tiny_words.txt"), dir, tu_exe(), dir,
             tu_src("samples/scene_03.png"));
    cr_assert_eq(run(cmd, &out, &err), 0, "%s", err);
    cr_expect(out && !strstr(out, "domain_score") && err && !strstr(err, "warning"), "%s %s", out, err);
    free(out), free(err);
}

static void refused(const char *domain, const char *want) {
    char text[2048];
    snprintf(text, sizeof text,
             "{\"image_size\": 16, \"mean\": [0, 0, 0], \"std\": [1, 1, 1], \"encoder\": [{\"type\": \"conv\", \"out\": 4, "
             "\"kernel\": 3, \"stride\": 1, \"pad\": 1}, {\"type\": \"relu\"}], \"embed_dim\": 4, \"hidden_dim\": 4, "
             "\"attention_dim\": 4, \"max_length\": 4, \"domain\": %s}",
             domain);
    imcap_config cfg;
    imcap_error err = {0};
    cr_expect_eq(imcap_config_parse(text, "cfg", &cfg, &err), IMCAP_E_FORMAT, "accepted %s", domain);
    cr_expect(strstr(err.msg, want), "\"%s\" lacks \"%s\"", err.msg, want);
}

Test(calibrate, malformed_domain_configs) {
    refused("[]", "\"domain\" must be an object");
    refused("{\"layer\": 1}", "threshold");
    refused("{\"layer\": 2, \"threshold\": 1}", "layer");
    refused("{\"layer\": 1, \"threshold\": -1}", "threshold");
    refused("{\"layer\": 1, \"threshold\": 1, \"ridge\": 0.1}", "ridge");
    refused("{\"layer\": 1, \"threshold\": 1, \"quantile\": 1.5}", "quantile");
    imcap_config cfg;
    imcap_error err;
    const char *ok = "{\"image_size\": 16, \"mean\": [0, 0, 0], \"std\": [1, 1, 1], \"encoder\": [{\"type\": \"conv\", "
                     "\"out\": 4, \"kernel\": 3, \"stride\": 1, \"pad\": 1}, {\"type\": \"relu\"}], \"embed_dim\": 4, "
                     "\"hidden_dim\": 4, \"attention_dim\": 4, \"max_length\": 4, \"domain\": {\"layer\": 1, \"threshold\": 2.5}}";
    cr_assert_eq(imcap_config_parse(ok, "cfg", &cfg, &err), IMCAP_OK, "%s", err.msg);
    cr_expect(cfg.format == 2 && cfg.has_domain && cfg.domain_F == 4 * 4 + 6);
}

/* The score reads the precision's upper triangle only: it must equal the
 * full quadratic form (in double) of the shipped statistics, and a file
 * whose precision is not symmetric is refused by name. */
Test(calibrate, score_from_upper_triangle_and_asymmetric_precision_refused) {
    imcap_model *m;
    imcap_error e;
    cr_assert_eq(imcap_model_load(tu_src("models/default.safetensors"), &m, &e), IMCAP_OK, "%s", e.msg);
    int F = m->cfg.domain_F, n = 5;
    float *x = malloc((size_t)n * F * sizeof *x), *scratch = malloc(imcap_domain_raw_scratch_size(n, F) * sizeof(float));
    double got[5];
    unsigned r = 7;
    for (int i = 0; i < n * F; i++) {
        r = r * 1103515245u + 12345u;
        x[i] = m->p.domain_mean[i % F] + ((float)(r >> 8) / 16777216.0f - 0.5f) * 0.2f;
    }
    imcap_domain_raw_n(x, n, m->p.domain_mean, m->p.domain_precision, F, scratch, got);
    for (int i = 0; i < n; i++) {
        double q = 0, mag = 0;
        for (int a = 0; a < F; a++)
            for (int b = 0; b < F; b++) {
                double t = ((double)x[i * F + a] - m->p.domain_mean[a]) * m->p.domain_precision[(size_t)a * F + b] *
                           ((double)x[i * F + b] - m->p.domain_mean[b]);
                q += t, mag += fabs(t);
            }
        cr_expect(fabs(got[i] - q / F) <= 1e-5 * mag / F, "image %d: %.9g, full form %.9g", i, got[i], q / F);
    }
    free(x), free(scratch);
    m->p.domain_precision[3 * F + 1] += 1.0f;
    unsigned char *data;
    size_t size;
    cr_assert_eq(imcap_model_serialize(m, &data, &size, &e), IMCAP_OK, "%s", e.msg);
    imcap_model *bad = NULL;
    cr_expect_eq(imcap_model_load_memory(data, size, "asym.safetensors", &bad, &e), IMCAP_E_FORMAT);
    cr_expect(strstr(e.msg, "asym.safetensors") && strstr(e.msg, "stats.domain.precision") && strstr(e.msg, "not symmetric"),
              "%s", e.msg);
    cr_expect_null(bad);
    free(data);
    imcap_model_free(m);
}
