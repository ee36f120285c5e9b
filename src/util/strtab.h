/* strtab.h — an open-addressing hash table from borrowed strings to longs
 * (FNV-1a, linear probing, kept at most half full). */
#ifndef IMCAP_STRTAB_H
#define IMCAP_STRTAB_H
#include <stddef.h>

typedef struct {
    const char *key; /* NULL: empty slot */
    long value;
} imcap_strtab_slot;

typedef struct {
    imcap_strtab_slot *s;
    size_t cap, n; /* cap is a power of two */
} imcap_strtab;

/* Room for about `want` keys before the first growth; -1 when out of memory. */
int imcap_strtab_init(imcap_strtab *t, size_t want);
void imcap_strtab_free(imcap_strtab *t);
/* The slot holding key, or the empty slot where it would go. */
imcap_strtab_slot *imcap_strtab_find(const imcap_strtab *t, const char *key);
/* The slot for key, inserted with value 0 when new; NULL when out of memory.
 * The key is borrowed: it must outlive the table. */
imcap_strtab_slot *imcap_strtab_upsert(imcap_strtab *t, const char *key);
#endif
