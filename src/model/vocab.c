/* vocab.c — the vocabulary stored in the model's metadata. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "util/util.h"
#include "util/json.h"

static const char *specials[4] = {"<pad>", "<start>", "<end>", "<unk>"};

void imcap_vocab_free(imcap_vocab *v) {
    if (!v) return;
    for (int i = 0; i < v->n; i++) free(v->words[i]);
    free(v->words);
    v->words = NULL;
    v->n = 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* 1 when the JSON array text has more than `limit` top-level elements
 * (`limit` commas between them), counted without building them; a
 * malformed text is refused by the parse that follows. */
static int more_items_than(const char *s, long limit) {
    long depth = 0, commas = 0;
    int in_string = 0;
    for (; *s; s++) {
        if (in_string) {
            if (*s == '\\' && s[1]) s++;
            else if (*s == '"') in_string = 0;
        } else if (*s == '"') {
            in_string = 1;
        } else if (*s == '[' || *s == '{') {
            depth++;
        } else if (*s == ']' || *s == '}') {
            depth--;
        } else if (*s == ',' && depth == 1 && ++commas >= limit) {
            return 1;
        }
    }
    return 0;
}

imcap_status imcap_vocab_parse(const char *json, const char *where, imcap_vocab *v, imcap_error *err) {
    memset(v, 0, sizeof *v);
    if (json && more_items_than(json, IMCAP_MAX_VOCAB))
        return imcap_fail(err, IMCAP_E_FORMAT, "%s: imcap.vocab has more than %d entries, the vocabulary size limit", where,
                          IMCAP_MAX_VOCAB);
    cJSON *root = imcap_json_parse_string(json);
    if (!root) return imcap_fail(err, IMCAP_E_FORMAT, "%s: imcap.vocab is not valid JSON", where);
    imcap_status s = IMCAP_OK;
    if (!cJSON_IsArray(root)) { s = imcap_fail(err, IMCAP_E_FORMAT, "%s: imcap.vocab must be a JSON array of strings", where); goto done; }
    int n = cJSON_GetArraySize(root);
    if (n < 4) { s = imcap_fail(err, IMCAP_E_FORMAT, "%s: imcap.vocab has %d entries; it must start with <pad>, <start>, <end>, <unk>", where, n); goto done; }
    if (n > IMCAP_MAX_VOCAB) { s = imcap_fail(err, IMCAP_E_FORMAT, "%s: imcap.vocab has %d entries, more than the vocabulary size limit of %d", where, n, IMCAP_MAX_VOCAB); goto done; }
    v->words = calloc((size_t)n, sizeof *v->words);
    if (!v->words) { s = imcap_fail(err, IMCAP_E_NOMEM, "%s: out of memory", where); goto done; }
    int i = 0;
    for (const cJSON *c = root->child; c; c = c->next, i++) {
        if (!cJSON_IsString(c)) { s = imcap_fail(err, IMCAP_E_FORMAT, "%s: imcap.vocab[%d] is not a string", where, i); goto done; }
        if (!c->valuestring[0]) { s = imcap_fail(err, IMCAP_E_FORMAT, "%s: imcap.vocab[%d] is an empty string", where, i); goto done; }
        if (i < 4 && strcmp(c->valuestring, specials[i]) != 0) {
            s = imcap_fail(err, IMCAP_E_FORMAT, "%s: imcap.vocab[%d] is \"%s\"; id %d must be \"%s\" (ids 0..3 are <pad>, <start>, <end>, <unk>)",
                           where, i, c->valuestring, i, specials[i]);
            goto done;
        }
        v->words[i] = strdup(c->valuestring);
        v->n = i + 1;
        if (!v->words[i]) { s = imcap_fail(err, IMCAP_E_NOMEM, "%s: out of memory", where); goto done; }
    }
    char **sorted = malloc((size_t)n * sizeof *sorted);
    if (!sorted) { s = imcap_fail(err, IMCAP_E_NOMEM, "%s: out of memory", where); goto done; }
    memcpy(sorted, v->words, (size_t)n * sizeof *sorted);
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_str);
    for (int k = 1; k < n; k++)
        if (strcmp(sorted[k - 1], sorted[k]) == 0) {
            s = imcap_fail(err, IMCAP_E_FORMAT, "%s: imcap.vocab has the token \"%s\" twice", where, sorted[k]);
            break;
        }
    free(sorted);
done:
    cJSON_Delete(root);
    if (s) imcap_vocab_free(v);
    return s;
}

char *imcap_vocab_to_json(const imcap_vocab *v) {
    imcap_buf b = {0};
    imcap_buf_append(&b, "[", 1);
    for (int i = 0; i < v->n; i++) {
        if (i) imcap_buf_append(&b, ", ", 2);
        imcap_buf_json_string(&b, v->words[i]);
    }
    imcap_buf_append(&b, "]", 1);
    if (b.oom) imcap_buf_free(&b);
    return b.s;
}
