/* metrics.h — caption metrics computed the way the COCO caption evaluation
 * toolkit (pycocoevalcap) computes them, and the `imcap eval` report.
 *
 *   BLEU-1..4  bleu_scorer.py, option "closest": corpus n-gram precisions
 *              with the counts clipped by each n-gram's largest count in one
 *              reference, the toolkit's tiny (1e-15) and small (1e-9)
 *              constants, and one brevity penalty from the corpus totals of
 *              candidate length and closest reference length (ties go to the
 *              shorter reference).
 *   CIDEr-D    cider_scorer.py: n = 1..4, TF-IDF vectors with document
 *              frequencies counted over the references of the evaluated set
 *              (an n-gram counts once per image), idf = log(N) - log(max(1, df))
 *              with N the number of images, candidate weights clipped by the
 *              reference's (min), a Gaussian penalty exp(-d^2 / (2 * 6^2)) on
 *              the length difference d — measured, as the toolkit does, in
 *              bigram counts —, the mean over n and over references, x 10.
 *   ROUGE-L    rouge.py: per image the largest LCS precision and the largest
 *              LCS recall over the references (each maximised separately),
 *              combined as an F-measure with beta = 1.2; mean over images.
 *
 * The toolkit runs the Stanford PTB tokenizer before scoring; imcap scores
 * the spec's tokens (dataset.h: imcap_tokenize) directly. For lower-case
 * captions of plain words (synthetic scenes, most COCO captions) the two
 * agree; they differ on clitics ("it's" is one token here, "it 's" there),
 * hyphenated and non-ASCII words. Given the same tokens, the numbers match
 * the toolkit's to rounding (scripts/coco_metrics_reference.py is a line by
 * line port used to produce the test's expected values). */
#ifndef IMCAP_METRICS_H
#define IMCAP_METRICS_H
#include <stdint.h>
#include "imcap.h"
#include "eval/objects.h"

/* ---------------------------------------------------------------- inputs */

/* A tokenised caption; the strings are borrowed. */
typedef struct {
    int n;
    const char *const *w;
} imcap_words;

/* One image: the caption being scored and its references (n_refs >= 1). */
typedef struct {
    imcap_words cand;
    int n_refs;
    const imcap_words *refs;
} imcap_eval_item;

/* ---------------------------------------------------------------- metrics */

typedef struct {
    double bleu[4];          /* BLEU-1..4 */
    long testlen, reflen;    /* corpus candidate length, summed closest reference lengths */
    long guess[4], correct[4];
    double ratio;            /* (testlen + 1e-15) / (reflen + 1e-9); brevity penalty when < 1 */
} imcap_bleu_stats;

/* All three return IMCAP_E_ARG (message naming the item) when n < 1, an
 * item has no reference or a NULL word array, IMCAP_E_NOMEM when out of
 * memory. per_image (n doubles, may be NULL) receives each image's score. */
imcap_status imcap_bleu(const imcap_eval_item *items, int n, imcap_bleu_stats *out, imcap_error *err);
imcap_status imcap_cider_d(const imcap_eval_item *items, int n, double *mean, double *per_image, imcap_error *err);
imcap_status imcap_rouge_l(const imcap_eval_item *items, int n, double *mean, double *per_image, imcap_error *err);

/* ROUGE-L of one caption (rouge.py's calc_score; an empty caption or
 * reference is taken, as the toolkit's split(" ") takes it, as one empty word). */
double imcap_rouge_l_one(const imcap_words *cand, int n_refs, const imcap_words *refs);

typedef struct {
    int n_images;
    imcap_bleu_stats bleu;
    double cider_d, rouge_l;
} imcap_caption_scores;

/* BLEU, CIDEr-D and ROUGE-L of the same items. */
imcap_status imcap_caption_scores_compute(const imcap_eval_item *items, int n, imcap_caption_scores *out,
                                          imcap_error *err);

/* ---------------------------------------------------------------- report */

typedef struct {
    const char *data_path;     /* may be NULL */
    const char *model_path;    /* NULL when scoring a results file */
    const char *results_path;  /* the results file scored, or NULL */
    const char *split;         /* e.g. "test" */
    int beam;                  /* 0 when no model ran */

    int have_scores;           /* 0 when no image could be scored */
    imcap_caption_scores scores;

    int have_objects;          /* the data set carries object annotations */
    imcap_object_summary objects;
    long object_images;        /* images whose objects were scored */
    int have_attention;        /* pointing and mass are meaningful (a model ran) */

    /* counts of what happened to the split's images */
    int n_split;               /* images in the split */
    int n_scored;              /* images that entered the metrics */
    int n_failed;              /* images that could not be captioned (model mode) */
    int n_no_result;           /* images without a result (results mode) */
    int n_no_refs;             /* images without reference captions */
    int n_unknown_ids;         /* results whose image_id is not in the split */
    int n_duplicates;          /* second and later results for one image (ignored) */
    int n_refused;             /* data set entries refused at load */
} imcap_eval_report;

/* The metrics as a JSON object (malloc'd text, COCO key names "Bleu_1".."Bleu_4",
 * "CIDEr", "ROUGE_L" plus imcap's own fields). */
char *imcap_eval_report_json(const imcap_eval_report *r);
/* A human-readable table (malloc'd text, ends in a newline). */
char *imcap_eval_report_table(const imcap_eval_report *r);
/* imcap_eval_report_json written to path atomically. */
imcap_status imcap_eval_report_write(const imcap_eval_report *r, const char *path, imcap_error *err);

/* COCO results format: [{"image_id": ..., "caption": "..."}, ...]. An id made
 * only of digits is written as a number (as COCO's cocoid), any other as a
 * string. Written atomically. */
typedef struct {
    const char *image_id;
    const char *caption;
} imcap_result_entry;
imcap_status imcap_results_write(const char *path, const imcap_result_entry *e, int n, imcap_error *err);

/* ---------------------------------------------------------------- internal: n-grams (ngram.c) */

#define IMCAP_NGRAM_MAX 4

/* Words are interned to ids >= 1; unused positions of w are 0. */
typedef struct {
    uint32_t w[IMCAP_NGRAM_MAX];
    int order;               /* 1..4 */
} imcap_ngram;

typedef struct {
    imcap_ngram g;
    int count;
    double v;                /* scratch for the metric (CIDEr-D: the TF-IDF weight) */
} imcap_ngram_count;

/* A sentence's distinct n-grams of orders 1..max_n with their counts, sorted
 * by imcap_ngram_cmp (order first), so two lists can be merged. */
typedef struct {
    int len;
    imcap_ngram_count *e;
} imcap_ngram_list;

int imcap_ngram_cmp(const imcap_ngram *a, const imcap_ngram *b);
/* The entry for g, or NULL. */
const imcap_ngram_count *imcap_ngram_find(const imcap_ngram_list *l, const imcap_ngram *g);
void imcap_ngram_list_free(imcap_ngram_list *l);

/* Candidates and references of a corpus, interned and counted. */
typedef struct {
    int n_items;
    imcap_ngram_list *cand;  /* [n_items] */
    imcap_ngram_list **refs; /* [n_items][n_refs[i]] */
    int *n_refs;             /* [n_items] */
} imcap_cooked;

/* Checks the items (see imcap_bleu) and cooks them with n-grams up to max_n. */
imcap_status imcap_cook(const imcap_eval_item *items, int n, int max_n, imcap_cooked *c, imcap_error *err);
void imcap_cooked_free(imcap_cooked *c);

/* n-gram -> count hash map (CIDEr-D's document frequencies). */
typedef struct imcap_ngram_map imcap_ngram_map;
imcap_ngram_map *imcap_ngram_map_new(void);
/* Adds delta to g's count; -1 when out of memory. */
int imcap_ngram_map_add(imcap_ngram_map *m, const imcap_ngram *g, long delta);
long imcap_ngram_map_get(const imcap_ngram_map *m, const imcap_ngram *g);
void imcap_ngram_map_free(imcap_ngram_map *m);

#endif
