/* json_check.h — strict helpers over cJSON for the model format. Internal. */
#ifndef IMCAP_JSON_CHECK_H
#define IMCAP_JSON_CHECK_H
#include <cjson/cJSON.h>

/* Returns the first duplicated key found anywhere under node (depth first),
 * or NULL. cJSON keeps duplicates as separate children, so this can see them. */
const char *imcap_json_find_duplicate(const cJSON *node);

/* Reads an integral number in [lo, hi]; returns 0 on success. */
int imcap_json_int(const cJSON *item, long long lo, long long hi, long long *out);
#endif
