/* calibrate.c — see calibrate.h. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "calibrate.h"
#include "image/image.h"
#include "model/encoder.h"
#include "util/util.h"

int imcap_calibrate_default_layer(const imcap_config *cfg) {
    int first = -1, second = -1, any = -1;
    for (int i = 0; i < cfg->n_layers; i++) {
        const imcap_layer *l = &cfg->layers[i];
        if (l->out_c > IMCAP_DOMAIN_MAX_C) continue;
        if (any < 0) any = i;
        if (l->type != IMCAP_LAYER_RELU) continue;
        if (first < 0) first = i;
        else if (second < 0) second = i;
    }
    int relu = second >= 0 ? second : first;
    if (relu < 0) return any;
    /* a max-pool right after it: the same statistics, on a quarter of the cells */
    if (relu + 1 < cfg->n_layers && cfg->layers[relu + 1].type == IMCAP_LAYER_MAXPOOL) return relu + 1;
    return relu;
}

/* The descriptors of images idx[0..n) into x [n, F]. */
static imcap_status describe(const imcap_model *m, const imcap_image_cache *cache, const int *idx, int n, float *x,
                             imcap_error *err) {
    const imcap_config *c = &m->cfg;
    int S = c->image_size, F = c->domain_F, threads = omp_get_max_threads(), ok = 1, made = 0;
    imcap_encoder_acts *acts = calloc((size_t)threads, sizeof *acts);
    if (!acts) ok = 0;
    for (int t = 0; ok && t < threads; t++, made++)
        if (imcap_encoder_acts_init(&acts[t], c, 1, 0) != IMCAP_OK) ok = 0;
    if (ok) {
#pragma omp parallel for schedule(dynamic, 4) num_threads(threads)
        for (int k = 0; k < n; k++) {
            imcap_encoder_acts *e = &acts[omp_get_thread_num()];
            imcap_normalise(imcap_cache_image(cache, idx[k]), S, c->mean, c->std, e->act[0]);
            imcap_encoder_forward(c, &m->p, &m->epack, e);
            memcpy(x + (size_t)k * F, e->domain_x, (size_t)F * sizeof(float));
        }
    }
    for (int t = 0; t < made; t++) imcap_encoder_acts_free(&acts[t]);
    free(acts);
    return ok ? IMCAP_OK : imcap_fail(err, IMCAP_E_NOMEM, "out of memory for the in-domain statistics");
}

imcap_status imcap_calibrate(imcap_model **mp, const imcap_dataset *ds, const imcap_image_cache *cache,
                             const imcap_feature_cache *fc, const imcap_calibrate_options *opt, imcap_error *err) {
    const imcap_model *m0 = *mp;
    double q = opt && opt->quantile > 0 ? opt->quantile : 0.99;
    int max_train = opt ? opt->max_train : 0;
    int layer = opt && opt->layer >= 0 ? opt->layer : imcap_calibrate_default_layer(&m0->cfg);
    if (cache->S != m0->cfg.image_size)
        return imcap_fail(err, IMCAP_E_ARG, "image cache is %dpx, the model wants %dpx", cache->S, m0->cfg.image_size);
    imcap_config cfg = m0->cfg;
    if (imcap_config_set_domain(&cfg, layer))
        return imcap_fail(err, IMCAP_E_ARG, "no encoder layer of at most %d channels to describe (layer %d)",
                          IMCAP_DOMAIN_MAX_C, layer);
    /* threshold 0 until fitted: the encoder describes the images without scoring them */
    cfg.domain_threshold = 0, cfg.domain_quantile = q;
    imcap_model *m = NULL;
    imcap_status s = imcap_model_reshape(m0, &cfg, &m, err);
    if (s) return s;
    int *tr = malloc((size_t)(ds->n ? ds->n : 1) * sizeof(int)), *va = malloc((size_t)(ds->n ? ds->n : 1) * sizeof(int));
    int nt = 0, nv = 0, F = cfg.domain_F;
    float *x = NULL; /* the train images' descriptors, then the val images' */
    if (!tr || !va) { s = imcap_fail(err, IMCAP_E_NOMEM, "out of memory"); goto done; }
    for (int i = 0; i < ds->n; i++) {
        if (!cache->ok[i] || (fc && fc->n == ds->n && !fc->ok[i])) continue;
        imcap_split sp = ds->images[i].split;
        if (sp == IMCAP_SPLIT_TRAIN || sp == IMCAP_SPLIT_RESTVAL) tr[nt++] = i;
        else if (sp == IMCAP_SPLIT_VAL) va[nv++] = i;
    }
    if (max_train > 0 && nt > max_train) { /* evenly spread, in order */
        for (int k = 0; k < max_train; k++) tr[k] = tr[(int)((long long)k * nt / max_train)];
        nt = max_train;
    }
    if (nt < 2 || nv < 1) {
        s = imcap_fail(err, IMCAP_E_ARG,
                       "in-domain statistics need 2 or more train images and 1 or more val images (the data set has %d "
                       "and %d readable ones)",
                       nt, nv);
        goto done;
    }
    memcpy(tr + nt, va, (size_t)nv * sizeof *tr); /* one list: one pass of the encoder */
    x = malloc((size_t)(nt + nv) * F * sizeof(float));
    if (!x) { s = imcap_fail(err, IMCAP_E_NOMEM, "out of memory for the in-domain statistics"); goto done; }
    if (fc && fc->G == F && fc->domain_layer == layer && fc->n == ds->n) {
        for (int k = 0; k < nt + nv; k++) memcpy(x + (size_t)k * F, fc->desc + (size_t)tr[k] * F, (size_t)F * sizeof(float));
    } else if ((s = describe(m, cache, tr, nt + nv, x, err))) {
        goto done;
    }
    double threshold;
    int flagged;
    if ((s = imcap_domain_fit(x, nt, x + (size_t)nt * F, nv, F, q, m->p.domain_mean, m->p.domain_precision, &threshold,
                              &flagged, err)))
        goto done;
    m->cfg.domain_threshold = threshold;
    m->cfg.domain_train_images = nt, m->cfg.domain_val_images = nv, m->cfg.domain_val_flagged = flagged;
    char *json = imcap_config_to_json(&m->cfg);
    if (!json) { s = imcap_fail(err, IMCAP_E_NOMEM, "out of memory"); goto done; }
    free(m->config_json);
    m->config_json = json;
done:
    free(tr), free(va), free(x);
    if (s) {
        imcap_model_free(m);
        return s;
    }
    imcap_model_free(*mp);
    *mp = m;
    return IMCAP_OK;
}
