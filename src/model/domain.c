/* domain.c — the in-domain check's descriptor and statistics (see domain.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "domain.h"
#include "kernels/simd.h"
#include "util/util.h"

int imcap_domain_size(int C) { return 4 * C + C * (C - 1) / 2; }

size_t imcap_domain_scratch_size(int C, int P) { return (size_t)C * P + (size_t)C * C; }

void imcap_domain_descriptor(const float *a, size_t ch_stride, int C, int P, float *x, float *scratch) {
    float *xc = scratch, *g = scratch + (size_t)C * P; /* centred channels [C, P], their products [C, C] */
    float sd[256];
    for (int c = 0; c < C; c++) {
        imcap_channel_moments(a + (size_t)c * ch_stride, xc + (size_t)c * P, P, x + 4 * c);
        sd[c] = x[4 * c + 1];
    }
    /* every channel against every other: one product of the centred rows */
    imcap_mm_seg seg = {xc, (size_t)P, xc, (size_t)P, P};
    imcap_rows_affine(g, (size_t)C, C, C, &seg, 1, NULL, NULL);
    float *r = x + 4 * C;
    for (int c = 0; c < C; c++)
        for (int d = c + 1; d < C; d++) {
            float den = sd[c] * sd[d];
            *r++ = den > 1e-12f ? g[(size_t)c * C + d] / P / den : 0.0f;
        }
}

/* Rows of the precision per product: the block's own columns plus the
 * ones after it (the ones before are the blocks above, by symmetry). */
enum { RAW_BLOCK = 16 };

size_t imcap_domain_raw_scratch_size(int n, int F) { return (size_t)n * (2 * (size_t)F + RAW_BLOCK); }

/* z^T S z for symmetric S over the upper triangle only, half the bytes of
 * the full matrix (at one image the read of S is the whole cost): row block
 * [r0, r1) contributes sum_{i in block} z_i (S_i[r0..r1) z[r0..r1) +
 * S_i[r1..F) 2 z[r1..F)), one product of two segments per block. */
void imcap_domain_raw_n(const float *x, int n, const float *mean, const float *precision, int F, float *scratch,
                        double *out) {
    float *z = scratch, *z2 = scratch + (size_t)n * F, *y = z2 + (size_t)n * F;
    for (int i = 0; i < n; i++) {
        out[i] = 0;
        for (int j = 0; j < F; j++) {
            size_t at = (size_t)i * F + j;
            z[at] = x[at] - mean[j];
            z2[at] = 2.0f * z[at];
        }
    }
    for (int r0 = 0; r0 < F; r0 += RAW_BLOCK) {
        int r1 = r0 + RAW_BLOCK < F ? r0 + RAW_BLOCK : F, h = r1 - r0;
        imcap_mm_seg seg[2] = {{precision + (size_t)r0 * F + r0, (size_t)F, z + r0, (size_t)F, h},
                               {precision + (size_t)r0 * F + r1, (size_t)F, z2 + r1, (size_t)F, F - r1}};
        imcap_rows_affine(y, (size_t)h, n, h, seg, r1 < F ? 2 : 1, NULL, NULL);
        for (int i = 0; i < n; i++)
            for (int r = r0; r < r1; r++) out[i] += (double)z[(size_t)i * F + r] * y[(size_t)i * h + r - r0];
    }
    for (int i = 0; i < n; i++) out[i] /= F;
}


static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* In place: A (n x n, symmetric positive definite) -> its inverse, by
 * Cholesky A = L L^T. -1 when A is not positive definite. */
static int spd_inverse(double *A, int n) {
    for (int j = 0; j < n; j++) { /* L in the lower triangle */
        double d = A[(size_t)j * n + j];
        for (int k = 0; k < j; k++) d -= A[(size_t)j * n + k] * A[(size_t)j * n + k];
        if (!(d > 0)) return -1;
        d = sqrt(d);
        A[(size_t)j * n + j] = d;
        for (int i = j + 1; i < n; i++) {
            double s = A[(size_t)i * n + j];
            for (int k = 0; k < j; k++) s -= A[(size_t)i * n + k] * A[(size_t)j * n + k];
            A[(size_t)i * n + j] = s / d;
        }
    }
    /* L^-1 in the lower triangle */
    for (int j = 0; j < n; j++) {
        A[(size_t)j * n + j] = 1.0 / A[(size_t)j * n + j];
        for (int i = j + 1; i < n; i++) {
            double s = 0;
            for (int k = j; k < i; k++) s -= A[(size_t)i * n + k] * A[(size_t)k * n + j];
            A[(size_t)i * n + j] = s / A[(size_t)i * n + i];
        }
    }
    /* A^-1 = L^-T L^-1: entry (i, j), i <= j, is sum_k>=j Linv[k][i] Linv[k][j] */
    for (int i = 0; i < n; i++)
        for (int j = i; j < n; j++) {
            double s = 0;
            for (int k = j; k < n; k++) s += A[(size_t)k * n + i] * A[(size_t)k * n + j];
            A[(size_t)i * n + j] = s; /* upper triangle: the lower one still holds L^-1 */
        }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < i; j++) A[(size_t)i * n + j] = A[(size_t)j * n + i];
    return 0;
}

imcap_status imcap_domain_fit(const float *train, int n, const float *val, int m, int F, double q, float *mean,
                              float *precision, double *threshold, int *flagged, imcap_error *err) {
    if (n < 2 || m < 1 || F < 1 || !(q > 0 && q < 1))
        return imcap_fail(err, IMCAP_E_ARG, "in-domain statistics need 2 or more training images and 1 or more held-out "
                                            "images (got %d and %d)", n, m);
    double *mu = calloc((size_t)F, sizeof(double)), *cov = calloc((size_t)F * F, sizeof(double));
    double *z = malloc((size_t)F * sizeof(double)), *scores = malloc((size_t)m * sizeof(double));
    if (!mu || !cov || !z || !scores) {
        free(mu), free(cov), free(z), free(scores);
        return imcap_fail(err, IMCAP_E_NOMEM, "out of memory for %d x %d covariance", F, F);
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < F; j++) mu[j] += train[(size_t)i * F + j];
    for (int j = 0; j < F; j++) mu[j] /= n;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < F; j++) z[j] = train[(size_t)i * F + j] - mu[j];
        for (int a = 0; a < F; a++) {
            double za = z[a];
            double *row = cov + (size_t)a * F;
            for (int b = a; b < F; b++) row[b] += za * z[b];
        }
    }
    double tr = 0;
    for (int a = 0; a < F; a++) {
        for (int b = a; b < F; b++) cov[(size_t)a * F + b] /= (n - 1), cov[(size_t)b * F + a] = cov[(size_t)a * F + b];
        tr += cov[(size_t)a * F + a];
    }
    /* the ridge keeps the inverse finite where the training images never
     * vary (and tames the noise of F^2 / 2 estimated covariances) */
    double ridge = 1e-4 * (tr > 0 ? tr / F : 1.0);
    for (int a = 0; a < F; a++) cov[(size_t)a * F + a] += ridge;
    imcap_status s = IMCAP_OK;
    if (spd_inverse(cov, F) != 0) {
        s = imcap_fail(err, IMCAP_E_ARG, "the descriptors' covariance is not positive definite");
    } else {
        for (int j = 0; j < F; j++) mean[j] = (float)mu[j];
        for (size_t k = 0; k < (size_t)F * F; k++) precision[k] = (float)cov[k];
        float *tmp = malloc(imcap_domain_raw_scratch_size(64, F) * sizeof(float));
        if (!tmp) {
            free(mu), free(cov), free(z), free(scores);
            return imcap_fail(err, IMCAP_E_NOMEM, "out of memory");
        }
        for (int i = 0; i < m; i += 64)
            imcap_domain_raw_n(val + (size_t)i * F, m - i < 64 ? m - i : 64, mean, precision, F, tmp, scores + i);
        free(tmp);
        qsort(scores, (size_t)m, sizeof *scores, cmp_double);
        int k = (int)ceil(q * m) - 1;
        k = k < 0 ? 0 : k >= m ? m - 1 : k;
        *threshold = scores[k] > 0 ? scores[k] : 1e-12;
        *flagged = 0;
        for (int i = 0; i < m; i++) *flagged += scores[i] > *threshold;
    }
    free(mu), free(cov), free(z), free(scores);
    return s;
}
