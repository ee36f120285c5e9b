/* json.h — thread-safe cJSON parsing (see json.c). */
#ifndef IMCAP_UTIL_JSON_H
#define IMCAP_UTIL_JSON_H
#include <cjson/cJSON.h>
#include <stddef.h>
#include <string.h>

/* cJSON_ParseWithLengthOpts under the library's lock; *end (when given)
 * receives where parsing stopped, which on failure is the error position. */
cJSON *imcap_json_parse(const char *text, size_t len, const char **end, int require_null_terminated);
/* cJSON_Parse of a NUL-terminated string, under the same lock. */
cJSON *imcap_json_parse_string(const char *text);
#endif
