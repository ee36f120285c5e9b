/* score.h — one split's captions scored against their data set: the loop
 * `imcap eval` and training's validation share, so that the number that
 * picks the best model during training is the one eval reports. */
#ifndef IMCAP_EVAL_SCORE_H
#define IMCAP_EVAL_SCORE_H
#include "data/dataset.h"
#include "eval/metrics.h"

/* One captioned image of the split. */
typedef struct {
    const imcap_data_image *im;      /* its references and, on synthetic scenes, objects */
    const char *caption;             /* the caption text; NULL: not captioned, left out */
    int n_words;                     /* the emitted words, <end> left out: what the */
    const char *const *words;        /*   object metrics read */
    const float *attention;          /* n_words x grid_h x grid_w, or NULL: no pointing / mass */
    int grid_h, grid_w;
} imcap_scored;

typedef struct {
    int n_scored;                    /* captions scored by BLEU / CIDEr-D / ROUGE-L */
    int n_no_refs;                   /* captioned images without a reference: left out */
    int have_scores;                 /* n_scored > 0 */
    imcap_caption_scores scores;
    int have_objects;                /* some image of the split carries objects */
    long object_images;              /* images whose objects were scored */
    int object_errors;               /* images whose objects could not be read */
    imcap_object_summary objects;
} imcap_split_scores;

/* Scores the captions of c[0..n): each caption tokenised as the format's
 * tokeniser does (imcap_tokenize), BLEU-1..4, CIDEr-D and ROUGE-L over the
 * images with references; object and relation metrics (and, with
 * attention, pointing and mass) over those with objects. note, when given,
 * hears of every image left out of a metric and why (no reference,
 * unreadable objects); the library itself never prints. */
imcap_status imcap_score_split(const imcap_scored *c, int n, void (*note)(void *ctx, int i, const char *why),
                               void *ctx, imcap_split_scores *out, imcap_error *err);
#endif
