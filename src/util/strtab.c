/* strtab.c — see strtab.h. */
#include "strtab.h"
#include "util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t hash_str(const char *s) {
    uint64_t h = imcap_fnv1a64(IMCAP_FNV_OFFSET, s, strlen(s));
    return h ^ (h >> 29);
}

int imcap_strtab_init(imcap_strtab *t, size_t want) {
    size_t cap = 64;
    while (cap < 2 * want) cap *= 2;
    t->s = calloc(cap, sizeof *t->s);
    t->cap = cap;
    t->n = 0;
    return t->s ? 0 : -1;
}

void imcap_strtab_free(imcap_strtab *t) {
    free(t->s);
    memset(t, 0, sizeof *t);
}

imcap_strtab_slot *imcap_strtab_find(const imcap_strtab *t, const char *key) {
    size_t m = t->cap - 1, i = (size_t)hash_str(key) & m;
    while (t->s[i].key && strcmp(t->s[i].key, key) != 0) i = (i + 1) & m;
    return &t->s[i];
}

static int grow(imcap_strtab *t) {
    imcap_strtab nt;
    if (imcap_strtab_init(&nt, t->cap) != 0) return -1;
    for (size_t i = 0; i < t->cap; i++)
        if (t->s[i].key) *imcap_strtab_find(&nt, t->s[i].key) = t->s[i];
    nt.n = t->n;
    free(t->s);
    *t = nt;
    return 0;
}

imcap_strtab_slot *imcap_strtab_upsert(imcap_strtab *t, const char *key) {
    if (2 * (t->n + 1) > t->cap && grow(t) != 0) return NULL;
    imcap_strtab_slot *s = imcap_strtab_find(t, key);
    if (!s->key) {
        s->key = key;
        s->value = 0;
        t->n++;
    }
    return s;
}
