/* score.c — see score.h. */
#include <stdlib.h>
#include <string.h>

#include "eval/objects.h"
#include "score.h"
#include "util/util.h"

imcap_status imcap_score_split(const imcap_scored *c, int n, void (*note)(void *ctx, int i, const char *why),
                               void *ctx, imcap_split_scores *out, imcap_error *err) {
    memset(out, 0, sizeof *out);
    size_t n_refs = 0;
    for (int i = 0; i < n; i++) n_refs += c[i].caption ? (size_t)c[i].im->n_sentences : 0;
    imcap_eval_item *items = calloc((size_t)(n ? n : 1), sizeof *items);
    imcap_words *refs = calloc(n_refs ? n_refs : 1, sizeof *refs);
    char ***toks = calloc((size_t)(n ? n : 1), sizeof *toks);
    int *n_toks = calloc((size_t)(n ? n : 1), sizeof *n_toks);
    imcap_status s = IMCAP_OK;
    if (!items || !refs || !toks || !n_toks) {
        s = imcap_fail(err, IMCAP_E_NOMEM, "scoring: out of memory for %d images", n);
        goto done;
    }
    static const char *const no_words[1] = {""};
    int ni = 0;
    size_t rk = 0;
    for (int i = 0; i < n; i++) {
        const imcap_scored *e = &c[i];
        if (!e->caption) continue;
        if (e->im->n_sentences == 0) {
            out->n_no_refs++;
            if (note) note(ctx, i, "no reference caption; not scored");
            continue;
        }
        int k = imcap_tokenize(e->caption, &toks[i]);
        if (k < 0) {
            s = imcap_fail(err, IMCAP_E_NOMEM, "scoring: out of memory tokenising a caption");
            goto done;
        }
        n_toks[i] = k;
        items[ni].cand = (imcap_words){k, toks[i] ? (const char *const *)toks[i] : no_words}; /* an empty caption */
        items[ni].n_refs = e->im->n_sentences;
        items[ni].refs = &refs[rk];
        for (int j = 0; j < e->im->n_sentences; j++)
            refs[rk++] = (imcap_words){e->im->sentences[j].n_tokens, (const char *const *)e->im->sentences[j].tokens};
        ni++;
    }
    out->n_scored = ni;
    if (ni > 0) {
        if ((s = imcap_caption_scores_compute(items, ni, &out->scores, err))) goto done;
        out->have_scores = 1;
    }
    imcap_object_stats st;
    memset(&st, 0, sizeof st);
    for (int i = 0; i < n; i++) {
        const imcap_scored *e = &c[i];
        if (!e->im->objects_json) continue;
        out->have_objects = 1;
        if (!e->caption) continue;
        imcap_scene scene;
        imcap_error e2;
        if (imcap_scene_from_json(e->im->objects_json, &scene, &e2) != IMCAP_OK) {
            out->object_errors++;
            if (note) note(ctx, i, e2.msg);
            continue;
        }
        imcap_object_stats_add(&st, &scene, e->n_words, e->words, e->attention, e->grid_h, e->grid_w);
        out->object_images++;
    }
    imcap_object_stats_summary(&st, &out->objects);
done:
    for (int i = 0; toks && n_toks && i < n; i++) imcap_tokens_free(toks[i], n_toks[i]);
    free(items), free(refs), free(toks), free(n_toks);
    return s;
}
