#include "json_check.h"
#include "util/strtab.h"

#include <math.h>
#include <string.h>

/* A hash set of the keys: a crafted header may hold very many. */
static const char *duplicate_key(const cJSON *obj) {
    int n = 0;
    for (const cJSON *c = obj->child; c; c = c->next) n++;
    if (n < 2) return NULL;
    imcap_strtab t;
    if (imcap_strtab_init(&t, (size_t)n) != 0) return NULL;
    const char *dup = NULL;
    for (const cJSON *c = obj->child; c && !dup; c = c->next) {
        if (!c->string) continue;
        imcap_strtab_slot *s = imcap_strtab_upsert(&t, c->string);
        if (s && s->value++) dup = c->string;
    }
    imcap_strtab_free(&t);
    return dup;
}

const char *imcap_json_find_duplicate(const cJSON *node) {
    if (!node) return NULL;
    if (cJSON_IsObject(node)) {
        const char *d = duplicate_key(node);
        if (d) return d;
    }
    for (const cJSON *c = node->child; c; c = c->next) {
        const char *d = imcap_json_find_duplicate(c);
        if (d) return d;
    }
    return NULL;
}

int imcap_json_int(const cJSON *item, long long lo, long long hi, long long *out) {
    if (!cJSON_IsNumber(item)) return -1;
    double v = item->valuedouble;
    if (!isfinite(v) || v != floor(v) || v < (double)lo || v > (double)hi) return -1;
    *out = (long long)v;
    return 0;
}
