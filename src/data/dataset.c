/* dataset.c — the Karpathy split JSON (dataset_coco.json, dataset_flickr8k.json,
 * dataset_flickr30k.json and what `imcap synth` writes):
 *
 *   {"images": [{"filename": "x.jpg", "filepath": "val2014", "split": "test",
 *                "cocoid": 42, "imgid": 7,
 *                "sentences": [{"raw": "A dog.", "tokens": ["a", "dog"]}, ...],
 *                "objects": [...], "mentions": [...]}, ...]}
 *
 * Captions are tokenised again from "raw" with the spec's tokeniser: the
 * file's "tokens" come from whichever tokeniser its author used and would
 * not match what the model is trained and scored on. Image files are not
 * opened here; whoever reads them reports and skips the missing ones. */
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "util/util.h"
#include "util/json.h"

/* Past this many stored warnings only a count is kept: a broken COCO-sized
 * file would otherwise produce hundreds of thousands of messages. */
#define MAX_WARNINGS 200

static const char *split_names[] = {"train", "val", "test", "restval", "other"};

imcap_split imcap_split_parse(const char *s) {
    if (s)
        for (int i = 0; i < IMCAP_SPLIT_OTHER; i++)
            if (!strcmp(s, split_names[i])) return (imcap_split)i;
    return IMCAP_SPLIT_OTHER;
}

const char *imcap_split_name(imcap_split s) {
    return (s >= IMCAP_SPLIT_TRAIN && s <= IMCAP_SPLIT_OTHER) ? split_names[s] : "other";
}

typedef struct {
    imcap_dataset *ds;
    int suppressed;
    int oom;
} loader;

static void warn(loader *L, const char *fmt, ...) IMCAP_PRINTF(2, 3);
static void warn(loader *L, const char *fmt, ...) {
    imcap_dataset *ds = L->ds;
    if (ds->n_warnings >= MAX_WARNINGS) {
        L->suppressed++;
        return;
    }
    if (ds->n_warnings % 16 == 0) {
        char **nw = realloc(ds->warnings, (size_t)(ds->n_warnings + 16) * sizeof *nw);
        if (!nw) { L->oom = 1; return; }
        ds->warnings = nw;
    }
    va_list ap;
    va_start(ap, fmt);
    char tmp[1024];
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    char *w = strdup(tmp);
    if (!w) { L->oom = 1; return; }
    ds->warnings[ds->n_warnings++] = w;
}

static void free_image(imcap_data_image *im) {
    free(im->filename);
    free(im->filepath);
    free(im->path);
    free(im->id);
    for (int k = 0; k < im->n_sentences; k++) {
        free(im->sentences[k].raw);
        imcap_tokens_free(im->sentences[k].tokens, im->sentences[k].n_tokens);
    }
    free(im->sentences);
    free(im->objects_json);
    free(im->extra_json);
    memset(im, 0, sizeof *im);
}

void imcap_dataset_free(imcap_dataset *ds) {
    if (!ds) return;
    for (int i = 0; i < ds->n; i++) free_image(&ds->images[i]);
    free(ds->images);
    for (int i = 0; i < ds->n_warnings; i++) free(ds->warnings[i]);
    free(ds->warnings);
    memset(ds, 0, sizeof *ds);
}

/* Why a relative path would leave the directory it is joined to, or NULL
 * when it stays inside: absolute, or a ".." component anywhere. Symbolic
 * links inside the image root are the owner's business and not followed. */
static const char *path_escape_reason(const char *p) {
    if (p[0] == '/') return "is an absolute path";
    const char *s = p;
    while (*s) {
        const char *e = strchr(s, '/');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n == 2 && s[0] == '.' && s[1] == '.') return "contains a '..' component";
        if (!e) break;
        s = e + 1;
    }
    return NULL;
}

static char *xstrdup(loader *L, const char *s) {
    char *d = strdup(s);
    if (!d) L->oom = 1;
    return d;
}

static char *join_path(loader *L, const char *root, const char *dir, const char *file) {
    imcap_buf b = {0};
    if (root && *root) {
        imcap_buf_append(&b, root, strlen(root));
        if (root[strlen(root) - 1] != '/') imcap_buf_append(&b, "/", 1);
    }
    if (dir && *dir) {
        imcap_buf_append(&b, dir, strlen(dir));
        if (dir[strlen(dir) - 1] != '/') imcap_buf_append(&b, "/", 1);
    }
    imcap_buf_append(&b, file, strlen(file));
    if (!b.s) L->oom = 1;
    return b.s;
}

/* The caption's text: "raw", else the file's "tokens" joined by spaces (they
 * are tokenised again all the same, so both routes give spec tokens). */
static char *sentence_text(loader *L, const cJSON *sent) {
    const cJSON *raw = cJSON_GetObjectItemCaseSensitive(sent, "raw");
    if (cJSON_IsString(raw)) return xstrdup(L, raw->valuestring);
    const cJSON *toks = cJSON_GetObjectItemCaseSensitive(sent, "tokens");
    if (!cJSON_IsArray(toks)) return NULL;
    imcap_buf b = {0};
    const cJSON *t;
    cJSON_ArrayForEach(t, toks) {
        if (!cJSON_IsString(t)) continue;
        if (b.len) imcap_buf_append(&b, " ", 1);
        imcap_buf_append(&b, t->valuestring, strlen(t->valuestring));
    }
    if (!b.s) imcap_buf_append(&b, "", 0);
    return b.s;
}

static char *id_text(loader *L, const cJSON *v) {
    char tmp[64];
    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        /* in range before the cast, which is undefined beyond int64 (fuzz_dataset: 1e119) */
        if (d >= -0x1p63 && d < 0x1p63 && d == (double)(int64_t)d) snprintf(tmp, sizeof tmp, "%" PRId64, (int64_t)d);
        else snprintf(tmp, sizeof tmp, "%.17g", d);
        return xstrdup(L, tmp);
    }
    if (cJSON_IsString(v) && v->valuestring[0]) return xstrdup(L, v->valuestring);
    return NULL;
}

static char *print_field(loader *L, const cJSON *v) {
    if (!v) return NULL;
    char *s = cJSON_PrintUnformatted(v);
    if (!s) L->oom = 1;
    return s;
}

/* Fills *im from entry i; returns 0 when the entry is refused (warning
 * already recorded). */
static int load_image(loader *L, const char *json_path, const char *image_root, int i,
                      const cJSON *e, imcap_data_image *im) {
    memset(im, 0, sizeof *im);
    if (!cJSON_IsObject(e)) {
        warn(L, "%s: images[%d] is not an object; skipped", json_path, i);
        return 0;
    }
    const cJSON *fn = cJSON_GetObjectItemCaseSensitive(e, "filename");
    if (!cJSON_IsString(fn) || !fn->valuestring[0]) {
        warn(L, "%s: images[%d] has no \"filename\" string; skipped", json_path, i);
        return 0;
    }
    const char *why;
    if ((why = path_escape_reason(fn->valuestring))) {
        warn(L, "%s: images[%d] (\"%s\"): \"filename\" %s, which would leave the image folder; refused",
             json_path, i, fn->valuestring, why);
        return 0;
    }
    const cJSON *fp = cJSON_GetObjectItemCaseSensitive(e, "filepath");
    if (fp && !cJSON_IsNull(fp) && !cJSON_IsString(fp)) {
        warn(L, "%s: images[%d] (\"%s\"): \"filepath\" is not a string; skipped", json_path, i, fn->valuestring);
        return 0;
    }
    if (cJSON_IsString(fp) && (why = path_escape_reason(fp->valuestring))) {
        warn(L, "%s: images[%d] (\"%s\"): \"filepath\" \"%s\" %s, which would leave the image folder; refused",
             json_path, i, fn->valuestring, fp->valuestring, why);
        return 0;
    }
    const cJSON *sents = cJSON_GetObjectItemCaseSensitive(e, "sentences");
    if (sents && !cJSON_IsArray(sents)) {
        warn(L, "%s: images[%d] (\"%s\"): \"sentences\" is not an array; skipped", json_path, i, fn->valuestring);
        return 0;
    }
    im->filename = xstrdup(L, fn->valuestring);
    im->filepath = cJSON_IsString(fp) && fp->valuestring[0] ? xstrdup(L, fp->valuestring) : NULL;
    im->path = join_path(L, image_root, im->filepath, fn->valuestring);
    const cJSON *idv = cJSON_GetObjectItemCaseSensitive(e, "cocoid");
    im->id = id_text(L, idv);
    if (!im->id) im->id = id_text(L, cJSON_GetObjectItemCaseSensitive(e, "imgid"));
    if (!im->id) im->id = xstrdup(L, fn->valuestring);
    const cJSON *sp = cJSON_GetObjectItemCaseSensitive(e, "split");
    im->split = imcap_split_parse(cJSON_IsString(sp) ? sp->valuestring : NULL);
    int ns = sents ? cJSON_GetArraySize(sents) : 0;
    if (ns > 0) {
        im->sentences = calloc((size_t)ns, sizeof *im->sentences);
        if (!im->sentences) { L->oom = 1; return 1; }
    }
    int k = 0;
    const cJSON *s;
    if (sents) cJSON_ArrayForEach(s, sents) {
        char *text = cJSON_IsObject(s) ? sentence_text(L, s) : NULL;
        if (!text) {
            if (!L->oom)
                warn(L, "%s: images[%d] (\"%s\"): sentences[%d] has neither \"raw\" nor \"tokens\"; caption skipped",
                     json_path, i, fn->valuestring, k);
            k++;
            continue;
        }
        imcap_sentence *dst = &im->sentences[im->n_sentences];
        dst->raw = text;
        dst->n_tokens = imcap_tokenize(text, &dst->tokens);
        im->n_sentences++;
        if (dst->n_tokens < 0) { dst->n_tokens = 0; L->oom = 1; return 1; }
        k++;
    }
    im->objects_json = print_field(L, cJSON_GetObjectItemCaseSensitive(e, "objects"));
    im->extra_json = print_field(L, cJSON_GetObjectItemCaseSensitive(e, "mentions"));
    return 1;
}

/* Line and column of byte offset off, for parse errors people can find. */
static void locate(const char *text, size_t off, int *line, int *col) {
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off && text[i]; i++) {
        if (text[i] == '\n') { (*line)++; *col = 1; }
        else (*col)++;
    }
}

imcap_status imcap_dataset_load(const char *json_path, const char *image_root, imcap_dataset *ds, imcap_error *err) {
    memset(ds, 0, sizeof *ds);
    if (!json_path) return imcap_fail(err, IMCAP_E_ARG, "imcap_dataset_load: no data set path");
    unsigned char *data;
    size_t size;
    imcap_status st = imcap_read_file(json_path, &data, &size, err);
    if (st) return st;
    if (strlen((const char *)data) != size) {
        free(data);
        return imcap_fail(err, IMCAP_E_FORMAT, "%s: not a JSON text (it contains a NUL byte)", json_path);
    }
    const char *end = NULL;
    cJSON *root = imcap_json_parse((const char *)data, size + 1, &end, 1);
    if (!root) {
        size_t off = end ? (size_t)(end - (const char *)data) : 0;
        int line, col;
        locate((const char *)data, off, &line, &col);
        int deep = imcap_json_too_deep((const char *)data, end);
        free(data);
        if (deep)
            return imcap_fail(err, IMCAP_E_FORMAT, "%s: JSON nested deeper than %d levels, the limit (at line %d, column %d, byte %zu)",
                              json_path, IMCAP_JSON_MAX_DEPTH, line, col, off);
        return imcap_fail(err, IMCAP_E_FORMAT, "%s: not valid JSON (error near line %d, column %d, byte %zu)",
                          json_path, line, col, off);
    }
    free(data);
    const cJSON *imgs = cJSON_IsObject(root) ? cJSON_GetObjectItemCaseSensitive(root, "images") : NULL;
    if (!cJSON_IsArray(imgs)) {
        cJSON_Delete(root);
        return imcap_fail(err, IMCAP_E_FORMAT,
                          "%s: %s; a Karpathy-format data set is {\"images\": [{\"filename\", \"split\", \"sentences\": [...]}, ...]}",
                          json_path, !cJSON_IsObject(root) ? "the top level is not a JSON object"
                                     : !imgs ? "no \"images\" field" : "\"images\" is not an array");
    }
    int n = cJSON_GetArraySize(imgs);
    loader L = {ds, 0, 0};
    if (n > 0) {
        ds->images = calloc((size_t)n, sizeof *ds->images);
        if (!ds->images) { cJSON_Delete(root); return imcap_fail(err, IMCAP_E_NOMEM, "%s: out of memory", json_path); }
    }
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, imgs) {
        imcap_data_image *im = &ds->images[ds->n];
        if (load_image(&L, json_path, image_root, i, e, im)) ds->n++;
        else { free_image(im); ds->n_refused++; }
        if (L.oom) break;
        i++;
    }
    cJSON_Delete(root);
    if (L.suppressed && !L.oom) {
        char tmp[256];
        snprintf(tmp, sizeof tmp, "%s: %d more warnings not shown", json_path, L.suppressed);
        char *w = strdup(tmp);
        char **nw = realloc(ds->warnings, (size_t)(ds->n_warnings + 1) * sizeof *nw);
        if (nw) ds->warnings = nw;
        if (w && nw) ds->warnings[ds->n_warnings++] = w;
        else free(w);
    }
    if (L.oom) {
        imcap_dataset_free(ds);
        return imcap_fail(err, IMCAP_E_NOMEM, "%s: out of memory", json_path);
    }
    return IMCAP_OK;
}
