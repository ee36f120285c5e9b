/* text_metrics.c — imcap_caption_metrics (imcap.h): what `imcap eval`
 * reports for captions and references given as text. Both sides are
 * tokenised as eval tokenises a data set's sentences and a model's
 * captions (imcap_tokenize), then scored by the same code. */
#include <stdlib.h>
#include <string.h>

#include "data/dataset.h"
#include "eval/metrics.h"
#include "util/util.h"

imcap_status imcap_caption_metrics(const char *const *captions, const char *const *const *refs, const int *n_refs,
                                   int n, imcap_metrics *out, imcap_error *err) {
    if (out) memset(out, 0, sizeof *out);
    if (!captions || !refs || !n_refs || !out || n < 1)
        return imcap_fail(err, IMCAP_E_ARG, "imcap_caption_metrics: no captions to score");
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        if (!captions[i] || !refs[i] || n_refs[i] < 1)
            return imcap_fail(err, IMCAP_E_ARG, "caption %d: %s", i,
                              !captions[i] ? "NULL text" : "no reference caption");
        total += (size_t)n_refs[i];
    }
    imcap_eval_item *items = calloc((size_t)n, sizeof *items);
    imcap_words *words = calloc(total, sizeof *words);
    char ***toks = calloc((size_t)n + total, sizeof *toks);
    int *n_toks = calloc((size_t)n + total, sizeof *n_toks);
    static const char *const no_words[1] = {""};
    imcap_status s = IMCAP_OK;
    if (!items || !words || !toks || !n_toks) {
        s = imcap_fail(err, IMCAP_E_NOMEM, "out of memory for %d captions", n);
        goto done;
    }
    size_t t = 0, w = 0;
    for (int i = 0; i < n && !s; i++) {
        int k = imcap_tokenize(captions[i], &toks[t]);
        if (k < 0) {
            s = imcap_fail(err, IMCAP_E_NOMEM, "out of memory tokenising caption %d", i);
            break;
        }
        n_toks[t] = k;
        /* an empty caption scores zero, as in eval */
        items[i].cand = (imcap_words){k, toks[t] ? (const char *const *)toks[t] : no_words};
        t++;
        items[i].n_refs = n_refs[i];
        items[i].refs = &words[w];
        for (int j = 0; j < n_refs[i]; j++, t++, w++) {
            const char *text = refs[i][j] ? refs[i][j] : "";
            if ((k = imcap_tokenize(text, &toks[t])) < 0) {
                s = imcap_fail(err, IMCAP_E_NOMEM, "out of memory tokenising a reference of caption %d", i);
                break;
            }
            n_toks[t] = k;
            words[w] = (imcap_words){k, toks[t] ? (const char *const *)toks[t] : no_words};
        }
    }
    imcap_caption_scores cs;
    if (!s && !(s = imcap_caption_scores_compute(items, n, &cs, err))) {
        for (int k = 0; k < 4; k++) out->bleu[k] = cs.bleu.bleu[k];
        out->cider_d = cs.cider_d, out->rouge_l = cs.rouge_l, out->n_images = n;
    }
done:
    for (size_t k = 0; toks && k < (size_t)n + total; k++) imcap_tokens_free(toks[k], n_toks[k]);
    free(items), free(words), free(toks), free(n_toks);
    return s;
}
