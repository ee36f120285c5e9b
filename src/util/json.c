/* json.c — every cJSON parse of the library goes through here. cJSON keeps
 * the position of its last parse error in one global, written by every
 * parse (reset at the start, set on failure); two threads loading models at
 * once would race on it. The parses are short, so one lock serialises them. */
#include <pthread.h>

#include "json.h"

static pthread_mutex_t parse_lock = PTHREAD_MUTEX_INITIALIZER;

cJSON *imcap_json_parse(const char *text, size_t len, const char **end, int require_null_terminated) {
    const char *stop = NULL;
    pthread_mutex_lock(&parse_lock);
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &stop, require_null_terminated);
    pthread_mutex_unlock(&parse_lock);
    if (end) *end = stop;
    return root;
}

cJSON *imcap_json_parse_string(const char *text) {
    return imcap_json_parse(text, text ? strlen(text) + 1 : 0, NULL, 0);
}

int imcap_json_too_deep(const char *text, const char *stop) {
    if (!text || !stop || stop < text) return 0;
    long depth = 0;
    int in_string = 0;
    /* brackets inside strings do not nest; an escaped quote does not end one */
    for (const char *p = text; p <= stop && *p; p++) {
        if (in_string) {
            if (*p == '\\' && p + 1 <= stop) p++;
            else if (*p == '"') in_string = 0;
        } else if (*p == '"') {
            in_string = 1;
        } else if (*p == '[' || *p == '{') {
            if (++depth > IMCAP_JSON_MAX_DEPTH) return 1;
        } else if (*p == ']' || *p == '}') {
            depth--;
        }
    }
    return 0;
}
