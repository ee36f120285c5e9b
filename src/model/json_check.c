#include "json_check.h"

#include <math.h>
#include <string.h>

const char *imcap_json_find_duplicate(const cJSON *node) {
    if (!node) return NULL;
    if (cJSON_IsObject(node)) {
        for (const cJSON *a = node->child; a; a = a->next)
            for (const cJSON *b = a->next; b; b = b->next)
                if (a->string && b->string && strcmp(a->string, b->string) == 0) return a->string;
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
