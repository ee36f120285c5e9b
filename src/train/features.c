/* features.c — the feature cache (see features.h). */
#include <errno.h>
#include <fcntl.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "calibrate.h"
#include "features.h"
#include "image/image.h"
#include "model/encoder.h"
#include "util/util.h"

#define HDR 40

static size_t flags_size(int n) { return ((size_t)n + 63) / 64 * 64; }

/* What the encoder computes from: preprocessing, layers and their tensors
 * (the decoder's sizes and weights do not change a feature). */
static uint64_t encoder_key(const imcap_model *m) {
    char *text = imcap_config_encoder_json(&m->cfg);
    uint64_t h = imcap_fnv1a64(IMCAP_FNV_OFFSET, text ? text : "", text ? strlen(text) : 0);
    free(text);
    for (int i = 0; i < m->tab.n; i++) {
        const imcap_tensor_info *t = &m->tab.t[i];
        if (strncmp(t->name, "encoder.", 8)) continue;
        h = imcap_fnv1a64(h, t->name, strlen(t->name) + 1);
        h = imcap_fnv1a64(h, m->block + t->offset, t->count * sizeof(float));
    }
    /* and how: features made before the blocks' 3x3 convs ran by Winograd
     * rounded differently, so a cache of them is stale for such a model */
    int wino = 0;
    for (int i = 0; i < IMCAP_MAX_LAYERS; i++)
        for (int j = 0; j < 4; j++) wino |= m->epack.wino[i][j] != NULL;
    if (wino) h = imcap_fnv1a64(h, "winograd F(2x2,3x3)", 19);
    return h;
}

static uint64_t image_key(const imcap_image_cache *images, int i) {
    if (!images->ok[i]) return 0;
    return imcap_fnv1a64(IMCAP_FNV_OFFSET, imcap_cache_image(images, i), (size_t)images->S * images->S * 3);
}

static size_t file_size(int n, int D, int L, int G) {
    return HDR + (size_t)n * 8 + flags_size(n) + (size_t)n * D * L * 2 + (size_t)n * G * 4;
}

/* Maps path when it holds exactly these keys; *matches = 0 otherwise. */
static imcap_status map_file(const char *path, imcap_feature_cache *fc, int n, int D, int L, int layer, int G,
                             uint64_t ekey, const uint64_t *ikeys, int *matches, imcap_error *err) {
    *matches = 0;
    size_t want = file_size(n, D, L, G);
    void *map;
    imcap_status ms = imcap_map_cache_file(path, want, &map, err);
    if (ms || !map) return ms;
    const unsigned char *b = map;
    uint64_t k;
    uint32_t dims[6];
    memcpy(&k, b + 8, 8), memcpy(dims, b + 16, 24);
    int same = memcmp(b, "IMCAPFT2", 8) == 0 && k == ekey && dims[0] == (uint32_t)n && dims[1] == (uint32_t)D &&
               dims[2] == (uint32_t)L && dims[4] == (uint32_t)layer && dims[5] == (uint32_t)G &&
               memcmp(b + HDR, ikeys, (size_t)n * 8) == 0;
    if (!same) {
        munmap(map, want);
        return IMCAP_OK;
    }
    fc->n = n, fc->D = D, fc->L = L, fc->map = map, fc->map_size = want;
    fc->ok = b + HDR + (size_t)n * 8;
    fc->feat = (const uint16_t *)(b + HDR + (size_t)n * 8 + flags_size(n));
    fc->domain_layer = layer, fc->G = G;
    fc->desc = (const float *)(b + HDR + (size_t)n * 8 + flags_size(n) + (size_t)n * D * L * 2);
    *matches = 1;
    return IMCAP_OK;
}

imcap_status imcap_features_open(const char *path, const imcap_model *m, const imcap_image_cache *images,
                                 const imcap_cache_callbacks *cb, imcap_feature_cache *fc, int *rebuilt,
                                 imcap_error *err) {
    memset(fc, 0, sizeof *fc);
    *rebuilt = 0;
    /* the forward also describes the in-domain layer (the model's, or the
     * one imcap calibrate would choose): a copy of the config that says so */
    imcap_config cfg = m->cfg;
    if (!cfg.has_domain) imcap_config_set_domain(&cfg, imcap_calibrate_default_layer(&cfg)); /* -1: none */
    cfg.domain_threshold = 0; /* describe, never score */
    const imcap_config *c = &cfg;
    int n = images->n, D = c->D, L = c->L, S = c->image_size, layer = c->has_domain ? c->domain_layer : -1;
    int G = c->domain_F;
    if (images->S != S) return imcap_fail(err, IMCAP_E_ARG, "image cache is %dpx, the model wants %dpx", images->S, S);
    uint64_t ekey = encoder_key(m);
    uint64_t *ikeys = malloc((size_t)(n ? n : 1) * 8);
    if (!ikeys) return imcap_fail(err, IMCAP_E_NOMEM, "out of memory");
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) ikeys[i] = image_key(images, i);
    int matches;
    imcap_status s = map_file(path, fc, n, D, L, layer, G, ekey, ikeys, &matches, err);
    if (s || matches) {
        free(ikeys);
        return s;
    }
    *rebuilt = 1;
    imcap_atomic_file af;
    if ((s = imcap_atomic_open(&af, path, err))) {
        free(ikeys);
        return s;
    }
    int fd = fileno(af.f);
    size_t fl = flags_size(n), per = (size_t)D * L, base = HDR + (size_t)n * 8 + fl, dbase = base + (size_t)n * per * 2;
    unsigned char *flags = calloc(fl, 1);
    int threads = omp_get_max_threads();
    imcap_encoder_acts *acts = calloc((size_t)threads, sizeof *acts);
    uint16_t *half = malloc((size_t)threads * per * 2);
    int io_ok = flags && acts && half && ftruncate(fd, (off_t)file_size(n, D, L, G)) == 0;
    int made = 0, acts_ok = 1;
    for (int t = 0; io_ok && t < threads; t++, made++)
        if (imcap_encoder_acts_init(&acts[t], c, 1, 0) != IMCAP_OK) io_ok = acts_ok = 0;
    int done = 0;
    if (io_ok) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
        for (int i = 0; i < n; i++) {
            int still_ok;
#pragma omp atomic read
            still_ok = io_ok;
            if (!still_ok || !images->ok[i]) continue;
            int t = omp_get_thread_num();
            imcap_encoder_acts *e = &acts[t];
            imcap_normalise(imcap_cache_image(images, i), S, c->mean, c->std, e->act[0]);
            imcap_encoder_forward(c, &m->p, &m->epack, e);
            const float *f = imcap_encoder_output(c, e);
            uint16_t *h = half + (size_t)t * per;
            for (size_t k = 0; k < per; k++) h[k] = imcap_float_to_half(f[k]);
            if (pwrite(fd, h, per * 2, (off_t)(base + (size_t)i * per * 2)) != (ssize_t)(per * 2) ||
                (G && pwrite(fd, e->domain_x, (size_t)G * 4, (off_t)(dbase + (size_t)i * G * 4)) != (ssize_t)G * 4)) {
#pragma omp atomic write
                io_ok = 0;
            }
            flags[i] = 1;
            int d;
#pragma omp atomic capture
            d = ++done;
            if (cb && cb->on_progress && (d % 64 == 0)) {
#pragma omp critical(imcap_features_cb)
                cb->on_progress(cb->ctx, d, n);
            }
        }
    }
    if (cb && cb->on_progress && io_ok) cb->on_progress(cb->ctx, n, n);
    if (io_ok) {
        unsigned char hdr[HDR] = {0};
        uint32_t dims[6] = {(uint32_t)n, (uint32_t)D, (uint32_t)L, 0, (uint32_t)layer, (uint32_t)G};
        memcpy(hdr, "IMCAPFT2", 8), memcpy(hdr + 8, &ekey, 8), memcpy(hdr + 16, dims, 24);
        io_ok = pwrite(fd, hdr, HDR, 0) == HDR && pwrite(fd, ikeys, (size_t)n * 8, HDR) == (ssize_t)((size_t)n * 8) &&
                pwrite(fd, flags, fl, HDR + (size_t)n * 8) == (ssize_t)fl;
    }
    int oom = !flags || !acts || !half || !acts_ok;
    for (int t = 0; t < made; t++) imcap_encoder_acts_free(&acts[t]);
    free(acts), free(half), free(flags);
    if (!io_ok) {
        imcap_atomic_abort(&af);
        free(ikeys);
        if (oom) return imcap_fail(err, IMCAP_E_NOMEM, "%s: out of memory building the feature cache", path);
        return imcap_fail(err, IMCAP_E_IO, "%s: cannot write the feature cache: %s", path, strerror(errno));
    }
    if ((s = imcap_atomic_commit(&af, err))) {
        free(ikeys);
        return s;
    }
    s = map_file(path, fc, n, D, L, layer, G, ekey, ikeys, &matches, err);
    free(ikeys);
    if (!s && !matches) s = imcap_fail(err, IMCAP_E_IO, "%s: the feature cache just written does not read back", path);
    return s;
}

void imcap_features_close(imcap_feature_cache *fc) {
    if (fc->map) munmap(fc->map, fc->map_size);
    memset(fc, 0, sizeof *fc);
}
