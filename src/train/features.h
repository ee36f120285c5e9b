/* features.h — the encoder's output for every training image, computed once
 * into a memory-mapped file, so that training a decoder over a frozen
 * encoder (`imcap train --freeze-encoder`) never runs the encoder again.
 *
 * Layout (little-endian): "IMCAPFT2", u64 encoder key, u32 n, u32 D, u32 L,
 * u32 0, u32 domain layer, u32 G, then n u64 image keys, n bytes of ok flags
 * padded to 64 bytes, n * D * L IEEE half floats (image i's [D, L] block as
 * the encoder gives it, channel-major), then n * G floats: each image's
 * in-domain descriptor (model/domain.h) of that layer, so that the
 * statistics written at the end of training need no second pass of the
 * encoder. The encoder key hashes the config's preprocessing and
 * encoder layers and every encoder tensor's bits; an image key hashes the
 * S x S pixels the encoder sees (from the image cache). A file whose keys,
 * sizes or length disagree is stale: it is rebuilt, never read. Half
 * precision halves the file (ResNet-101 at 7x7 on 8,000 images: 1.6 GB);
 * the decoder trains on the rounded features, and captioning later sees the
 * encoder's own floats (a difference below half precision's 2^-11 relative
 * step). Internal. */
#ifndef IMCAP_FEATURES_H
#define IMCAP_FEATURES_H
#include <stdint.h>

#include "data/cache.h"
#include "model/model.h"

typedef struct {
    int n, D, L;
    const unsigned char *ok;  /* [n] 1 when image i's features are there */
    const uint16_t *feat;     /* [n, D, L] half floats */
    int domain_layer, G;      /* the layer the descriptors describe and their size */
    const float *desc;        /* [n, G] */
    void *map;
    size_t map_size;
} imcap_feature_cache;

/* Opens path when it holds these features (same encoder, same pixels);
 * otherwise builds it from the images (OpenMP over images), writing a
 * temporary file renamed into place. *rebuilt says which happened; cb's
 * on_progress reports images done while building (cb may be NULL). */
imcap_status imcap_features_open(const char *path, const imcap_model *m, const imcap_image_cache *images,
                                 const imcap_cache_callbacks *cb, imcap_feature_cache *fc, int *rebuilt,
                                 imcap_error *err);
void imcap_features_close(imcap_feature_cache *fc);

static inline const uint16_t *imcap_features_of(const imcap_feature_cache *fc, int i) {
    return fc->feat + (size_t)i * fc->D * fc->L;
}
#endif
