/* vocab_build.c — the vocabulary from the training captions, and a word -> id
 * index over any vocabulary, both over util/strtab.h. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "util/strtab.h"
#include "util/util.h"

static const char *specials[4] = {"<pad>", "<start>", "<end>", "<unk>"};

typedef struct {
    const char *word;
    long count;
} word_count;

static int by_count_then_bytes(const void *a, const void *b) {
    const word_count *x = a, *y = b;
    if (x->count != y->count) return x->count > y->count ? -1 : 1;
    return strcmp(x->word, y->word); /* strcmp compares as unsigned char: UTF-8 byte order */
}

imcap_status imcap_vocab_build(const imcap_dataset *ds, int min_count, imcap_vocab *v, imcap_error *err) {
    memset(v, 0, sizeof *v);
    if (min_count < 1) min_count = 1;
    imcap_strtab t;
    if (imcap_strtab_init(&t, 1024) != 0) return imcap_fail(err, IMCAP_E_NOMEM, "building the vocabulary: out of memory");
    for (int i = 0; i < ds->n; i++) {
        const imcap_data_image *im = &ds->images[i];
        if (im->split != IMCAP_SPLIT_TRAIN && im->split != IMCAP_SPLIT_RESTVAL) continue;
        for (int k = 0; k < im->n_sentences; k++)
            for (int j = 0; j < im->sentences[k].n_tokens; j++) {
                imcap_strtab_slot *s = imcap_strtab_upsert(&t, im->sentences[k].tokens[j]);
                if (!s) { free(t.s); return imcap_fail(err, IMCAP_E_NOMEM, "building the vocabulary: out of memory"); }
                s->value++;
            }
    }
    word_count *wc = malloc((t.n ? t.n : 1) * sizeof *wc);
    if (!wc) { free(t.s); return imcap_fail(err, IMCAP_E_NOMEM, "building the vocabulary: out of memory"); }
    size_t nw = 0;
    for (size_t i = 0; i < t.cap; i++)
        if (t.s[i].key && t.s[i].value >= min_count) wc[nw++] = (word_count){t.s[i].key, t.s[i].value};
    if (nw + 4 > IMCAP_MAX_VOCAB) { /* a model with it could not be loaded (model.h) */
        free(wc), free(t.s);
        return imcap_fail(err, IMCAP_E_FORMAT, "building the vocabulary: %zu words seen at least %d times, more than the vocabulary size limit of %d (raise --min-count)",
                          nw + 4, min_count, IMCAP_MAX_VOCAB);
    }
    qsort(wc, nw, sizeof *wc, by_count_then_bytes);
    v->words = calloc(nw + 4, sizeof *v->words);
    imcap_status st = IMCAP_OK;
    if (!v->words) st = IMCAP_E_NOMEM;
    for (size_t i = 0; !st && i < nw + 4; i++) {
        v->words[i] = strdup(i < 4 ? specials[i] : wc[i - 4].word);
        if (!v->words[i]) st = IMCAP_E_NOMEM;
        else v->n = (int)i + 1;
    }
    free(wc);
    free(t.s);
    if (st) {
        imcap_vocab_free(v);
        return imcap_fail(err, st, "building the vocabulary: out of memory");
    }
    return IMCAP_OK;
}

struct imcap_vocab_index {
    imcap_strtab t;
    char **words; /* copies, so the index does not depend on the vocabulary's lifetime */
    int n;
};

imcap_vocab_index *imcap_vocab_index_new(const imcap_vocab *v) {
    imcap_vocab_index *ix = calloc(1, sizeof *ix);
    if (!ix) return NULL;
    if (imcap_strtab_init(&ix->t, (size_t)v->n) != 0) { free(ix); return NULL; }
    ix->words = calloc((size_t)(v->n ? v->n : 1), sizeof *ix->words);
    if (!ix->words) { imcap_vocab_index_free(ix); return NULL; }
    for (int i = 0; i < v->n; i++) {
        ix->words[i] = strdup(v->words[i]);
        if (!ix->words[i]) { imcap_vocab_index_free(ix); return NULL; }
        ix->n = i + 1;
        imcap_strtab_slot *s = imcap_strtab_upsert(&ix->t, ix->words[i]);
        if (!s) { imcap_vocab_index_free(ix); return NULL; }
        /* a word listed twice keeps its first id, as a linear search would */
        if (s->value == 0) s->value = i + 1;
    }
    return ix;
}

int imcap_vocab_lookup(const imcap_vocab_index *ix, const char *word) {
    if (!ix || !word) return IMCAP_TOK_UNK;
    const imcap_strtab_slot *s = imcap_strtab_find(&ix->t, word);
    return s->key ? (int)(s->value - 1) : IMCAP_TOK_UNK;
}

void imcap_vocab_index_free(imcap_vocab_index *ix) {
    if (!ix) return;
    for (int i = 0; i < ix->n; i++) free(ix->words[i]);
    free(ix->words);
    free(ix->t.s);
    free(ix);
}
