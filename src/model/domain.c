/* domain.c — the in-domain check's descriptor and statistics (see domain.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "domain.h"
#include "util/util.h"

int imcap_domain_size(int C) { return 4 * C + C * (C - 1) / 2; }

void imcap_domain_descriptor(const float *a, size_t ch_stride, int C, int P, float *x) {
    double *mu = malloc((size_t)C * 2 * sizeof(double)), *sd = mu ? mu + C : NULL;
    if (!mu) { /* the caller's descriptor stays as it was: not worth a status for 2 KB */
        return;
    }
    for (int c = 0; c < C; c++) {
        const float *v = a + (size_t)c * ch_stride;
        double s = 0, mx = -INFINITY;
        for (int p = 0; p < P; p++) s += v[p], mx = v[p] > mx ? v[p] : mx;
        double m = s / P, ss = 0;
        for (int p = 0; p < P; p++) ss += (v[p] - m) * (v[p] - m);
        double sdev = sqrt(ss / P);
        double s3 = 0, inv = sdev > 1e-6 ? 1.0 / sdev : 0.0; /* a constant channel has no shape */
        for (int p = 0; p < P; p++) {
            double z = fabs(v[p] - m) * inv;
            s3 += z * z * z;
        }
        mu[c] = m, sd[c] = sdev;
        x[4 * c] = (float)m, x[4 * c + 1] = (float)sdev, x[4 * c + 2] = (float)(s3 / P), x[4 * c + 3] = (float)mx;
    }
    float *r = x + 4 * C;
    for (int c = 0; c < C; c++)
        for (int d = c + 1; d < C; d++) {
            const float *u = a + (size_t)c * ch_stride, *v = a + (size_t)d * ch_stride;
            double s = 0;
            for (int p = 0; p < P; p++) s += (u[p] - mu[c]) * (v[p] - mu[d]);
            double den = sd[c] * sd[d];
            *r++ = (float)(den > 1e-12 ? s / P / den : 0.0);
        }
    free(mu);
}

double imcap_domain_raw(const float *x, const float *mean, const float *precision, int F) {
    double *z = malloc((size_t)F * sizeof(double)), q = 0;
    if (!z) return NAN;
    for (int j = 0; j < F; j++) z[j] = (double)x[j] - mean[j];
    for (int i = 0; i < F; i++) {
        const float *row = precision + (size_t)i * F;
        double s = 0;
        for (int j = 0; j < F; j++) s += row[j] * z[j];
        q += z[i] * s;
    }
    free(z);
    return q / F;
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
        for (int i = 0; i < m; i++) scores[i] = imcap_domain_raw(val + (size_t)i * F, mean, precision, F);
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
