/* dataset.h — captioned image sets in the Karpathy split JSON layout
 * (dataset_coco.json, dataset_flickr8k.json), tokenisation and vocabulary. */
#ifndef IMCAP_DATASET_H
#define IMCAP_DATASET_H
#include <stdint.h>
#include "imcap.h"
#include "model/model.h"

typedef enum { IMCAP_SPLIT_TRAIN, IMCAP_SPLIT_VAL, IMCAP_SPLIT_TEST, IMCAP_SPLIT_RESTVAL, IMCAP_SPLIT_OTHER } imcap_split;

typedef struct {
    char *raw;          /* as in the file */
    int n_tokens;
    char **tokens;      /* tokenised per the spec (our tokeniser, not the file's "tokens") */
} imcap_sentence;

typedef struct {
    char *filename;     /* "filename" */
    char *filepath;     /* "filepath" or NULL (COCO puts images under e.g. val2014/) */
    char *path;         /* image_root/filepath/filename, checked to stay inside image_root */
    char *id;           /* "cocoid" or "imgid" as text, else the file name */
    imcap_split split;
    int n_sentences;
    imcap_sentence *sentences;
    char *objects_json; /* raw JSON text of the "objects" field (synthetic scenes), or NULL */
    char *extra_json;   /* raw JSON text of "mentions" (word positions per caption), or NULL */
} imcap_data_image;

typedef struct {
    int n;
    imcap_data_image *images;
    int n_refused;      /* entries refused (path escapes, malformed), reported in warnings */
    char **warnings;    /* n_warnings messages, each naming the file / entry */
    int n_warnings;
} imcap_dataset;

/* Loads the JSON; image_root may be NULL (paths then stay relative). */
imcap_status imcap_dataset_load(const char *json_path, const char *image_root, imcap_dataset *ds, imcap_error *err);
void imcap_dataset_free(imcap_dataset *ds);
imcap_split imcap_split_parse(const char *s);   /* "train", "val", "test", "restval" */
const char *imcap_split_name(imcap_split s);

/* Spec tokenisation: maximal runs of Unicode letters, digits and apostrophes
 * (' and U+2019 both written '), lower-cased with simple case mapping.
 * Returns the number of tokens; *tokens is a malloc'd array of malloc'd strings
 * (NULL when there are none). Returns -1 (and *tokens NULL) when out of memory. */
int imcap_tokenize(const char *text, char ***tokens);
void imcap_tokens_free(char **tokens, int n);

/* Vocabulary from the train split (train + restval): words seen at least
 * min_count times, ids from 4 on by descending count then UTF-8 byte order. */
imcap_status imcap_vocab_build(const imcap_dataset *ds, int min_count, imcap_vocab *v, imcap_error *err);
/* Word -> id (IMCAP_TOK_UNK when absent); lookup table owned by caller. */
typedef struct imcap_vocab_index imcap_vocab_index;
imcap_vocab_index *imcap_vocab_index_new(const imcap_vocab *v);
int imcap_vocab_lookup(const imcap_vocab_index *ix, const char *word);
void imcap_vocab_index_free(imcap_vocab_index *ix);
#endif
