/* json.h — thread-safe cJSON parsing (see json.c). */
#ifndef IMCAP_UTIL_JSON_H
#define IMCAP_UTIL_JSON_H
#include <cjson/cJSON.h>
#include <stddef.h>
#include <string.h>

/* cJSON_ParseWithLengthOpts under the library's lock; *end (when given)
 * receives where parsing stopped, which on failure is the error position. */
cJSON *imcap_json_parse(const char *text, size_t len, const char **end, int require_null_terminated);
/* cJSON refuses nesting deeper than CJSON_NESTING_LIMIT (1000 in Debian's
 * 1.7.15) without saying why; after a failed parse this tells whether the
 * nesting up to the error position `stop` went past it, so the message can
 * name the limit rather than a syntax error. */
#define IMCAP_JSON_MAX_DEPTH CJSON_NESTING_LIMIT
int imcap_json_too_deep(const char *text, const char *stop);
/* cJSON_Parse of a NUL-terminated string, under the same lock. */
cJSON *imcap_json_parse_string(const char *text);
#endif
