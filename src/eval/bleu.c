/* bleu.c — corpus BLEU-1..4 as pycocoevalcap's bleu_scorer.py computes it
 * with option "closest" (the option its Bleu wrapper passes). Step by step,
 * as there:
 *   per image: testlen = candidate length; reflen = the reference length
 *     closest to testlen, the shorter on a tie (min over (|l - testlen|, l));
 *     guess[k] = max(0, testlen - k); correct[k] = sum over the candidate's
 *     (k+1)-grams of min(count, largest count in any one reference);
 *   corpus: the sums of those; BLEU-n = (prod_{k<n} (correct[k] + 1e-15) /
 *     (guess[k] + 1e-9))^(1/n), times exp(1 - 1/ratio) when
 *     ratio = (testlen + 1e-15) / (reflen + 1e-9) is below 1. */
#include <math.h>
#include <string.h>

#include "metrics.h"
#include "util/util.h"

imcap_status imcap_bleu(const imcap_eval_item *items, int n, imcap_bleu_stats *out, imcap_error *err) {
    memset(out, 0, sizeof *out);
    imcap_cooked c;
    imcap_status st = imcap_cook(items, n, 4, &c, err);
    if (st) return st;
    const double small = 1e-9, tiny = 1e-15;
    for (int i = 0; i < n; i++) {
        int testlen = items[i].cand.n;
        int best = -1;
        for (int r = 0; r < items[i].n_refs; r++) {
            int l = items[i].refs[r].n, d = l > testlen ? l - testlen : testlen - l;
            int bd = best > testlen ? best - testlen : testlen - best;
            if (best < 0 || d < bd || (d == bd && l < best)) best = l;
        }
        out->testlen += testlen;
        out->reflen += best;
        for (int k = 0; k < 4; k++) out->guess[k] += testlen - k > 0 ? testlen - k : 0;
        const imcap_ngram_list *cand = &c.cand[i];
        for (int e = 0; e < cand->len; e++) {
            int maxref = 0;
            for (int r = 0; r < items[i].n_refs; r++) {
                const imcap_ngram_count *f = imcap_ngram_find(&c.refs[i][r], &cand->e[e].g);
                if (f && f->count > maxref) maxref = f->count;
            }
            int cnt = cand->e[e].count;
            out->correct[cand->e[e].g.order - 1] += cnt < maxref ? cnt : maxref;
        }
    }
    imcap_cooked_free(&c);
    out->ratio = ((double)out->testlen + tiny) / ((double)out->reflen + small);
    for (int nn = 1; nn <= 4; nn++) {
        double b = 1.0;
        for (int k = 0; k < nn; k++) b *= ((double)out->correct[k] + tiny) / ((double)out->guess[k] + small);
        b = pow(b, 1.0 / nn);
        if (out->ratio < 1) b *= exp(1 - 1 / out->ratio);
        out->bleu[nn - 1] = b;
    }
    return IMCAP_OK;
}
