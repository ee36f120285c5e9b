/* ngram.c — word interning, per-sentence n-gram counts and an n-gram hash
 * map: the common ground of BLEU and CIDEr-D. Words become small integer ids
 * so that n-grams are fixed-size keys; a sentence's n-grams are kept as a
 * sorted array (captions are short, and sorted arrays merge in one pass). */
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "util/strtab.h"
#include "util/util.h"

/* ---------------------------------------------------------------- words */

/* The word's id (>= 1, in order of first appearance), 0 when out of memory. */
static uint32_t word_id(imcap_strtab *t, const char *w) {
    imcap_strtab_slot *s = imcap_strtab_upsert(t, w);
    if (!s) return 0;
    if (s->value == 0) s->value = (long)t->n;
    return (uint32_t)s->value;
}

/* ---------------------------------------------------------------- n-gram lists */

int imcap_ngram_cmp(const imcap_ngram *a, const imcap_ngram *b) {
    if (a->order != b->order) return a->order < b->order ? -1 : 1;
    for (int k = 0; k < IMCAP_NGRAM_MAX; k++)
        if (a->w[k] != b->w[k]) return a->w[k] < b->w[k] ? -1 : 1;
    return 0;
}

static int cmp_count(const void *a, const void *b) {
    return imcap_ngram_cmp(&((const imcap_ngram_count *)a)->g, &((const imcap_ngram_count *)b)->g);
}

const imcap_ngram_count *imcap_ngram_find(const imcap_ngram_list *l, const imcap_ngram *g) {
    int lo = 0, hi = l->len;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        int c = imcap_ngram_cmp(&l->e[mid].g, g);
        if (c == 0) return &l->e[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

void imcap_ngram_list_free(imcap_ngram_list *l) {
    if (!l) return;
    free(l->e);
    l->e = NULL;
    l->len = 0;
}

/* Counts the n-grams of orders 1..max_n of ids[0..n); -1 when out of memory. */
static int cook(const uint32_t *ids, int n, int max_n, imcap_ngram_list *out) {
    out->len = 0;
    out->e = NULL;
    size_t total = 0;
    for (int k = 1; k <= max_n; k++)
        if (n - k + 1 > 0) total += (size_t)(n - k + 1);
    if (!total) return 0;
    imcap_ngram_count *e = calloc(total, sizeof *e);
    if (!e) return -1;
    size_t m = 0;
    for (int k = 1; k <= max_n; k++)
        for (int i = 0; i + k <= n; i++) {
            e[m].g.order = k;
            for (int j = 0; j < k; j++) e[m].g.w[j] = ids[i + j];
            e[m].count = 1;
            m++;
        }
    qsort(e, m, sizeof *e, cmp_count);
    size_t d = 0;
    for (size_t i = 0; i < m; i++) {
        if (d && imcap_ngram_cmp(&e[d - 1].g, &e[i].g) == 0) e[d - 1].count++;
        else e[d++] = e[i];
    }
    out->e = e;
    out->len = (int)d;
    return 0;
}

void imcap_cooked_free(imcap_cooked *c) {
    if (!c) return;
    for (int i = 0; i < c->n_items; i++) {
        if (c->cand) imcap_ngram_list_free(&c->cand[i]);
        if (c->refs && c->refs[i]) {
            for (int k = 0; k < c->n_refs[i]; k++) imcap_ngram_list_free(&c->refs[i][k]);
            free(c->refs[i]);
        }
    }
    free(c->cand);
    free(c->refs);
    free(c->n_refs);
    memset(c, 0, sizeof *c);
}

static imcap_status check_words(const imcap_words *w, int item, int ref, imcap_error *err) {
    if (w->n < 0 || (w->n > 0 && !w->w)) {
        if (ref < 0) return imcap_fail(err, IMCAP_E_ARG, "metrics: item %d: the candidate has no word array", item);
        return imcap_fail(err, IMCAP_E_ARG, "metrics: item %d: reference %d has no word array", item, ref);
    }
    for (int k = 0; k < w->n; k++)
        if (!w->w[k]) return imcap_fail(err, IMCAP_E_ARG, "metrics: item %d: word %d is NULL", item, k);
    return IMCAP_OK;
}

imcap_status imcap_cook(const imcap_eval_item *items, int n, int max_n, imcap_cooked *c, imcap_error *err) {
    memset(c, 0, sizeof *c);
    if (n < 1 || !items) return imcap_fail(err, IMCAP_E_ARG, "metrics: no captions to score");
    if (max_n < 1 || max_n > IMCAP_NGRAM_MAX) return imcap_fail(err, IMCAP_E_ARG, "metrics: n-gram order %d out of range", max_n);
    int longest = 0;
    for (int i = 0; i < n; i++) {
        if (items[i].n_refs < 1 || !items[i].refs)
            return imcap_fail(err, IMCAP_E_ARG, "metrics: item %d has no reference caption", i);
        imcap_status s = check_words(&items[i].cand, i, -1, err);
        if (s) return s;
        if (items[i].cand.n > longest) longest = items[i].cand.n;
        for (int k = 0; k < items[i].n_refs; k++) {
            if ((s = check_words(&items[i].refs[k], i, k, err))) return s;
            if (items[i].refs[k].n > longest) longest = items[i].refs[k].n;
        }
    }
    imcap_strtab t;
    uint32_t *ids = malloc(((size_t)longest + 1) * sizeof *ids);
    c->cand = calloc((size_t)n, sizeof *c->cand);
    c->refs = calloc((size_t)n, sizeof *c->refs);
    c->n_refs = calloc((size_t)n, sizeof *c->n_refs);
    t.s = NULL;
    if (!ids || !c->cand || !c->refs || !c->n_refs || imcap_strtab_init(&t, 1024) != 0) goto oom;
    for (int i = 0; i < n; i++) {
        c->n_items = i + 1;
        for (int k = -1; k < items[i].n_refs; k++) {
            const imcap_words *w = k < 0 ? &items[i].cand : &items[i].refs[k];
            for (int j = 0; j < w->n; j++)
                if (!(ids[j] = word_id(&t, w->w[j]))) goto oom;
            if (k < 0) {
                if (cook(ids, w->n, max_n, &c->cand[i]) != 0) goto oom;
                c->refs[i] = calloc((size_t)items[i].n_refs, sizeof *c->refs[i]);
                if (!c->refs[i]) goto oom;
                c->n_refs[i] = items[i].n_refs;
            } else if (cook(ids, w->n, max_n, &c->refs[i][k]) != 0) {
                goto oom;
            }
        }
    }
    free(ids);
    free(t.s);
    return IMCAP_OK;
oom:
    free(ids);
    free(t.s);
    imcap_cooked_free(c);
    return imcap_fail(err, IMCAP_E_NOMEM, "metrics: out of memory");
}

/* ---------------------------------------------------------------- n-gram map */

typedef struct {
    imcap_ngram g; /* order 0: empty */
    long count;
} map_slot;

struct imcap_ngram_map {
    map_slot *s;
    size_t cap, n;
};

static uint64_t hash_ngram(const imcap_ngram *g) {
    uint64_t h = (uint64_t)g->order * 0x9e3779b97f4a7c15ULL;
    for (int k = 0; k < IMCAP_NGRAM_MAX; k++) {
        h ^= g->w[k];
        h *= 0xbf58476d1ce4e5b9ULL;
        h ^= h >> 31;
    }
    return h;
}

static map_slot *map_find(const imcap_ngram_map *m, const imcap_ngram *g) {
    size_t mask = m->cap - 1, i = (size_t)hash_ngram(g) & mask;
    while (m->s[i].g.order && imcap_ngram_cmp(&m->s[i].g, g) != 0) i = (i + 1) & mask;
    return &m->s[i];
}

imcap_ngram_map *imcap_ngram_map_new(void) {
    imcap_ngram_map *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->cap = 1024;
    m->s = calloc(m->cap, sizeof *m->s);
    if (!m->s) { free(m); return NULL; }
    return m;
}

int imcap_ngram_map_add(imcap_ngram_map *m, const imcap_ngram *g, long delta) {
    if (2 * (m->n + 1) > m->cap) {
        imcap_ngram_map nm = {calloc(m->cap * 2, sizeof(map_slot)), m->cap * 2, m->n};
        if (!nm.s) return -1;
        for (size_t i = 0; i < m->cap; i++)
            if (m->s[i].g.order) *map_find(&nm, &m->s[i].g) = m->s[i];
        free(m->s);
        *m = nm;
    }
    map_slot *s = map_find(m, g);
    if (!s->g.order) {
        s->g = *g;
        s->count = 0;
        m->n++;
    }
    s->count += delta;
    return 0;
}

long imcap_ngram_map_get(const imcap_ngram_map *m, const imcap_ngram *g) {
    const map_slot *s = map_find(m, g);
    return s->g.order ? s->count : 0;
}

void imcap_ngram_map_free(imcap_ngram_map *m) {
    if (!m) return;
    free(m->s);
    free(m);
}
