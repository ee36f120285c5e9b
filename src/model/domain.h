/* domain.h — how typical an image is of the images a model was trained on
 * (the in-domain check). Internal.
 *
 * The descriptor of an image is taken from the output a [C, P] of one
 * encoder layer (the config's "domain" "layer", an early one: texture and
 * colour statistics separate photographs from drawings and synthetic scenes
 * better than the last layer, which is trained to name objects): per
 * channel its mean, standard deviation, mean |z|^3 and maximum, then the
 * correlation of every pair of channels (c < d, row by row):
 * F = 4C + C(C-1)/2 numbers. A model's statistics are the descriptors' mean
 * and the inverse of their covariance (ridge 1e-4 x the mean variance
 * added to the diagonal) over its training images, as the tensors
 * stats.domain.mean [F] and stats.domain.precision [F, F]. An image's raw
 * score is the squared Mahalanobis distance divided by F; its domain score
 * is raw / threshold, where the threshold is a high quantile of the raw
 * scores of held-out images of the training domain. At most 1 is typical.
 * docs/model-format.md has the exact definition. */
#ifndef IMCAP_DOMAIN_H
#define IMCAP_DOMAIN_H
#include <stddef.h>

#include "imcap.h"

/* F for a layer of C channels */
int imcap_domain_size(int C);
/* Floats of scratch imcap_domain_descriptor needs. */
size_t imcap_domain_scratch_size(int C, int P);
/* Channel c of the layer's output is a + c * ch_stride, P values (C <= 256).
 * x [F]. Computed in float (sums in 16 fixed lanes, the channel products as
 * one imcap_rows_affine): the bits depend on the image alone. */
void imcap_domain_descriptor(const float *a, size_t ch_stride, int C, int P, float *x, float *scratch);
/* (x - mean)^T precision (x - mean) / F for n descriptors x [n, F] at once
 * (the matrix is read once for all of them, and only its upper triangle:
 * the precision is symmetric); scratch: imcap_domain_raw_scratch_size. */
size_t imcap_domain_raw_scratch_size(int n, int F);
void imcap_domain_raw_n(const float *x, int n, const float *mean, const float *precision, int F, float *scratch,
                        double *out);
/* From descriptors of training images (n x F) and held-out ones (m x F):
 * mean, precision and the threshold (the q quantile of the held-out raw
 * scores, nearest rank); *flagged: held-out images above it. */
imcap_status imcap_domain_fit(const float *train, int n, const float *val, int m, int F, double q, float *mean,
                              float *precision, double *threshold, int *flagged, imcap_error *err);
#endif
