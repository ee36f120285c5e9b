/* cider.c — CIDEr-D as pycocoevalcap's cider_scorer.py computes it (n = 4,
 * sigma = 6). The steps, in that file's order:
 *   df(g)    = number of images whose references (any of them) contain g;
 *   ref_len  = log(N), N = number of images scored;
 *   vec(s)   = for each n-gram g of s: count(g) * (ref_len - log(max(1, df(g)))),
 *              norm_n = the L2 norm of the order-n part, length = the number
 *              of bigrams of s (the toolkit's "n == 1" is the bigram index);
 *   sim(h,r) = per order n: sum over h's n-grams of min(vh, vr) * vr, divided
 *              by norm_h * norm_r when both are non-zero, times
 *              e^(-(len_h - len_r)^2 / (2 sigma^2));
 *   image    = 10 * mean over n of (sum over references of sim) / n_refs;
 *   CIDEr-D  = mean over images. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "util/util.h"

#define SIGMA 6.0

/* Fills each entry's v with its TF-IDF weight; norm[4] and the bigram count. */
static void counts2vec(imcap_ngram_list *l, const imcap_ngram_map *df, double ref_len, double norm[4], long *length) {
    for (int k = 0; k < 4; k++) norm[k] = 0;
    *length = 0;
    for (int e = 0; e < l->len; e++) {
        double d = log(fmax(1.0, (double)imcap_ngram_map_get(df, &l->e[e].g)));
        int o = l->e[e].g.order - 1;
        l->e[e].v = (double)l->e[e].count * (ref_len - d);
        norm[o] += l->e[e].v * l->e[e].v;
        if (o == 1) *length += l->e[e].count;
    }
    for (int k = 0; k < 4; k++) norm[k] = sqrt(norm[k]);
}

static void sim(const imcap_ngram_list *h, const imcap_ngram_list *r, const double nh[4], const double nr[4],
                long lh, long lr, double val[4]) {
    double delta = (double)(lh - lr);
    for (int k = 0; k < 4; k++) val[k] = 0;
    /* both lists are sorted the same way: one merge pass finds the common n-grams */
    int j = 0;
    for (int i = 0; i < h->len; i++) {
        while (j < r->len && imcap_ngram_cmp(&r->e[j].g, &h->e[i].g) < 0) j++;
        if (j < r->len && imcap_ngram_cmp(&r->e[j].g, &h->e[i].g) == 0) {
            double vh = h->e[i].v, vr = r->e[j].v;
            val[h->e[i].g.order - 1] += fmin(vh, vr) * vr;
        }
    }
    double pen = pow(M_E, -(delta * delta) / (2 * SIGMA * SIGMA));
    for (int k = 0; k < 4; k++) {
        if (nh[k] != 0 && nr[k] != 0) val[k] /= nh[k] * nr[k];
        val[k] *= pen;
    }
}

static int cmp_ngram(const void *a, const void *b) { return imcap_ngram_cmp(a, b); }

imcap_status imcap_cider_d(const imcap_eval_item *items, int n, double *mean, double *per_image, imcap_error *err) {
    *mean = 0;
    imcap_cooked c;
    imcap_status st = imcap_cook(items, n, 4, &c, err);
    if (st) return st;
    imcap_ngram_map *df = imcap_ngram_map_new();
    imcap_ngram *seen = NULL;
    size_t seen_cap = 0;
    if (!df) goto oom;
    /* document frequency: each distinct n-gram of an image's references once */
    for (int i = 0; i < n; i++) {
        size_t total = 0;
        for (int r = 0; r < c.n_refs[i]; r++) total += (size_t)c.refs[i][r].len;
        if (total > seen_cap) {
            imcap_ngram *ns = realloc(seen, total * sizeof *ns);
            if (!ns) goto oom;
            seen = ns;
            seen_cap = total;
        }
        size_t m = 0;
        for (int r = 0; r < c.n_refs[i]; r++)
            for (int e = 0; e < c.refs[i][r].len; e++) seen[m++] = c.refs[i][r].e[e].g;
        qsort(seen, m, sizeof *seen, cmp_ngram);
        for (size_t e = 0; e < m; e++)
            if (e == 0 || imcap_ngram_cmp(&seen[e - 1], &seen[e]) != 0)
                if (imcap_ngram_map_add(df, &seen[e], 1) != 0) goto oom;
    }
    free(seen);
    seen = NULL;
    double ref_len = log((double)n), sum = 0;
    for (int i = 0; i < n; i++) {
        double nh[4], nr[4], score[4] = {0, 0, 0, 0}, val[4];
        long lh, lr;
        counts2vec(&c.cand[i], df, ref_len, nh, &lh);
        for (int r = 0; r < c.n_refs[i]; r++) {
            counts2vec(&c.refs[i][r], df, ref_len, nr, &lr);
            sim(&c.cand[i], &c.refs[i][r], nh, nr, lh, lr, val);
            for (int k = 0; k < 4; k++) score[k] += val[k];
        }
        double avg = (score[0] + score[1] + score[2] + score[3]) / 4;
        avg /= c.n_refs[i];
        avg *= 10.0;
        if (per_image) per_image[i] = avg;
        sum += avg;
    }
    *mean = sum / n;
    imcap_ngram_map_free(df);
    imcap_cooked_free(&c);
    return IMCAP_OK;
oom:
    free(seen);
    imcap_ngram_map_free(df);
    imcap_cooked_free(&c);
    return imcap_fail(err, IMCAP_E_NOMEM, "CIDEr-D: out of memory");
}
