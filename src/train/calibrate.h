/* calibrate.h — fitting a model's in-domain statistics (model/domain.h) to
 * a data set: descriptors of the train (+ restval) images give the
 * statistics, the val images the threshold. Internal; `imcap calibrate` and
 * the end of `imcap train` use it. */
#ifndef IMCAP_CALIBRATE_H
#define IMCAP_CALIBRATE_H
#include "data/cache.h"
#include "data/dataset.h"
#include "features.h"
#include "model/model.h"

typedef struct {
    double quantile;   /* of the val images' raw scores, the threshold (0: 0.99) */
    int max_train;     /* use at most this many training images, evenly spread (0: all) */
    int layer;         /* the encoder layer described; -1: imcap_calibrate_default_layer */
} imcap_calibrate_options;

/* The second ReLU layer with at most 64 channels (the first when there is
 * one) or the max-pool right after it, else the first layer with at most 64
 * channels; -1 when none. */
int imcap_calibrate_default_layer(const imcap_config *cfg);
/* Replaces *m by a copy with in-domain statistics (the config gains its
 * "domain" object: format 2). Images come from cache (one entry per ds
 * image), or their descriptors from fc (a frozen encoder's feature cache
 * that describes the same layer; NULL: none) without running the encoder.
 * OpenMP over images; the result does not depend on the threads. */
imcap_status imcap_calibrate(imcap_model **m, const imcap_dataset *ds, const imcap_image_cache *cache,
                             const imcap_feature_cache *fc, const imcap_calibrate_options *opt, imcap_error *err);
#endif
