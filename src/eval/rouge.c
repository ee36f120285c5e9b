/* rouge.c — ROUGE-L as pycocoevalcap's rouge.py computes it: for each
 * reference the LCS length l, precision l / |c| and recall l / |r|; the
 * largest precision and the largest recall (each over all references, not
 * necessarily from the same one) give
 *   score = (1 + beta^2) P R / (R + beta^2 P), beta = 1.2, or 0 when P or R is 0;
 * the corpus score is the mean over images. */
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "util/util.h"

#define BETA 1.2

/* The toolkit splits the caption text on " ": an empty caption is one empty
 * word, which matches an empty reference. */
static const char *const empty_word[1] = {""};

static void as_split(const imcap_words *w, int *n, const char *const **v) {
    if (w->n == 0) {
        *n = 1;
        *v = empty_word;
    } else {
        *n = w->n;
        *v = w->w;
    }
}

/* Length of the longest common subsequence; row holds nb + 1 ints. */
static int lcs(int na, const char *const *a, int nb, const char *const *b, int *row) {
    for (int j = 0; j <= nb; j++) row[j] = 0;
    for (int i = 1; i <= na; i++) {
        int diag = 0; /* row[j - 1] of the previous line */
        for (int j = 1; j <= nb; j++) {
            int up = row[j];
            if (strcmp(a[i - 1], b[j - 1]) == 0) row[j] = diag + 1;
            else if (row[j - 1] > row[j]) row[j] = row[j - 1];
            diag = up;
        }
    }
    return row[nb];
}

static double rouge_one(const imcap_words *cand, int n_refs, const imcap_words *refs, int *row) {
    int nc, nr;
    const char *const *c, *const *r;
    as_split(cand, &nc, &c);
    double pmax = 0, rmax = 0;
    for (int k = 0; k < n_refs; k++) {
        as_split(&refs[k], &nr, &r);
        int l = lcs(nr, r, nc, c, row);
        double p = l / (double)nc, q = l / (double)nr;
        if (k == 0 || p > pmax) pmax = p;
        if (k == 0 || q > rmax) rmax = q;
    }
    const double b2 = BETA * BETA;
    if (pmax != 0 && rmax != 0) return ((1 + b2) * pmax * rmax) / (rmax + b2 * pmax);
    return 0.0;
}

double imcap_rouge_l_one(const imcap_words *cand, int n_refs, const imcap_words *refs) {
    int *row = malloc(((size_t)(cand->n > 0 ? cand->n : 1) + 1) * sizeof *row);
    if (!row) return 0.0;
    double s = rouge_one(cand, n_refs, refs, row);
    free(row);
    return s;
}

imcap_status imcap_rouge_l(const imcap_eval_item *items, int n, double *mean, double *per_image, imcap_error *err) {
    *mean = 0;
    if (n < 1 || !items) return imcap_fail(err, IMCAP_E_ARG, "metrics: no captions to score");
    int longest = 1;
    for (int i = 0; i < n; i++) {
        if (items[i].n_refs < 1 || !items[i].refs)
            return imcap_fail(err, IMCAP_E_ARG, "metrics: item %d has no reference caption", i);
        if (items[i].cand.n < 0 || (items[i].cand.n > 0 && !items[i].cand.w))
            return imcap_fail(err, IMCAP_E_ARG, "metrics: item %d: the candidate has no word array", i);
        for (int k = 0; k < items[i].n_refs; k++)
            if (items[i].refs[k].n < 0 || (items[i].refs[k].n > 0 && !items[i].refs[k].w))
                return imcap_fail(err, IMCAP_E_ARG, "metrics: item %d: reference %d has no word array", i, k);
        if (items[i].cand.n > longest) longest = items[i].cand.n;
    }
    int *row = malloc(((size_t)longest + 1) * sizeof *row);
    if (!row) return imcap_fail(err, IMCAP_E_NOMEM, "ROUGE-L: out of memory");
    double sum = 0;
    for (int i = 0; i < n; i++) {
        double s = rouge_one(&items[i].cand, items[i].n_refs, items[i].refs, row);
        if (per_image) per_image[i] = s;
        sum += s;
    }
    free(row);
    *mean = sum / n;
    return IMCAP_OK;
}
