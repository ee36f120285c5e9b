/* evaluate.c — imcap_eval (imcap.h): what `imcap eval` does, as one call.
 * Caption a split of a Karpathy-format data set (or read another system's
 * captions from a COCO results file) and score them: BLEU-1..4, CIDEr-D,
 * ROUGE-L, and on annotated synthetic scenes the object, pointing,
 * attention-mass and relation metrics, with the loop training's validation
 * uses (score.c). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

#include "data/dataset.h"
#include "eval/metrics.h"
#include "eval/objects.h"
#include "eval/score.h"
#include "util/json.h"
#include "util/util.h"

typedef struct {
    const imcap_eval_callbacks *cb;
} ctx_t;

static void note(const ctx_t *c, const char *fmt, ...) IMCAP_PRINTF(2, 3);
static void note(const ctx_t *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    imcap_vtell(c->cb ? c->cb->on_note : NULL, c->cb ? c->cb->ctx : NULL, fmt, ap);
    va_end(ap);
}

/* Past this many, messages about results that do not fit the split are only
 * counted: a results file for the wrong split would otherwise print one line
 * per image. Failed images are always named. */
#define MAX_REPORTED 20

/* One image of the split and what became of it. */
typedef struct {
    const imcap_data_image *im;
    int has_caption;
    char *caption;         /* the caption text */
    char **toks;           /* caption tokenised per the spec (what is scored) */
    int n_toks;
    char **words;          /* the emitted words, <end> dropped (model mode; else the tokens) */
    int n_words;
    float *attention;      /* n_words x grid_h x grid_w, only for annotated images */
    int grid_h, grid_w;
    char *error;           /* why captioning failed */
} entry;

static void entry_free(entry *e) {
    free(e->caption);
    imcap_tokens_free(e->toks, e->n_toks);
    if (e->words != e->toks && e->words) {
        for (int k = 0; k < e->n_words; k++) free(e->words[k]);
        free(e->words);
    }
    free(e->attention);
    free(e->error);
}


/* Sets the entry's caption and its spec tokens; -1 when out of memory. */
static int set_caption(entry *e, const char *text) {
    e->caption = strdup(text);
    if (!e->caption) return -1;
    e->n_toks = imcap_tokenize(text, &e->toks);
    if (e->n_toks < 0) { e->n_toks = 0; return -1; }
    e->has_caption = 1;
    return 0;
}

/* Images decoded together per thread; the results do not depend on it. */
#define EVAL_BLOCK 32

static void take_result(entry *e, imcap_result *r, imcap_status s, const imcap_error *err, int keep_att);

static imcap_status eval_load(void *ctx, size_t i, imcap_image *img, imcap_error *err) {
    return imcap_image_load(((entry *)ctx)[i].im->path, img, err);
}

static void eval_done(void *ctx, size_t i, imcap_result *r, imcap_status st, const imcap_error *err) {
    entry *e = &((entry *)ctx)[i];
    take_result(e, r, st, err, e->im->objects_json != NULL);
}

/* Fills e from its image's result, or e->error. */
static void take_result(entry *e, imcap_result *r, imcap_status s, const imcap_error *err, int keep_att) {
    if (s != IMCAP_OK) {
        const char *path = e->im->path;
        char msg[1400];
        if (imcap_msg_names(err->msg, path)) snprintf(msg, sizeof msg, "%s", err->msg);
        else snprintf(msg, sizeof msg, "%.300s: %.1000s", path, err->msg);
        e->error = strdup(msg);
        imcap_result_free(r);
        return;
    }
    const imcap_hypothesis *h = &r->hyps[0];
    int nw = h->n_tokens - (h->finished && h->n_tokens > 0 ? 1 : 0);
    int L = r->grid_h * r->grid_w;
    int oom = set_caption(e, h->text) != 0;
    e->words = calloc((size_t)(nw > 0 ? nw : 1), sizeof *e->words);
    if (!e->words) oom = 1;
    for (int k = 0; !oom && k < nw; k++) {
        if (!(e->words[k] = strdup(h->words[k]))) oom = 1;
        else e->n_words = k + 1;
    }
    if (!oom && keep_att && nw > 0 && h->attention) {
        e->attention = malloc((size_t)nw * (size_t)L * sizeof *e->attention);
        if (e->attention) {
            memcpy(e->attention, h->attention, (size_t)nw * (size_t)L * sizeof *e->attention);
            e->grid_h = r->grid_h;
            e->grid_w = r->grid_w;
        } else {
            oom = 1;
        }
    }
    if (oom) {
        e->has_caption = 0;
        e->error = strdup("out of memory");
    }
    imcap_result_free(r);
}

/* Id / file name -> entry index, sorted for bsearch. */
typedef struct {
    const char *key;
    int index;
} key_index;

static int cmp_key(const void *a, const void *b) {
    const key_index *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : (x->index > y->index) - (x->index < y->index);
}

static int lookup(const key_index *t, int n, const char *key) {
    /* the first of equal keys: the earliest image with that id wins */
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (strcmp(t[mid].key, key) < 0) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && !strcmp(t[lo].key, key) ? t[lo].index : -1;
}

/* Reads the results file into the entries. */
static imcap_status read_results(const ctx_t *c, const char *path, entry *ents, int n, const char *split,
                                 imcap_eval_report *rep, imcap_error *err) {
    unsigned char *data;
    size_t size;
    imcap_status s = imcap_read_file(path, &data, &size, err);
    if (s) return s;
    const char *end = NULL;
    cJSON *root = imcap_json_parse((const char *)data, size + 1, &end, 1);
    if (!root) {
        if (imcap_json_too_deep((const char *)data, end))
            s = imcap_fail(err, IMCAP_E_FORMAT, "%s: JSON nested deeper than %d levels, the limit (at byte %ld)", path,
                           IMCAP_JSON_MAX_DEPTH, (long)(end - (const char *)data));
        else
            s = imcap_fail(err, IMCAP_E_FORMAT, "%s: not valid JSON (error near byte %ld)", path,
                           end ? (long)(end - (const char *)data) : 0L);
        free(data);
        return s;
    }
    free(data);
    if (!cJSON_IsArray(root)) {
        cJSON_Delete(root);
        return imcap_fail(err, IMCAP_E_FORMAT, "%s: not a COCO results file: the top level must be an array of "
                                               "{\"image_id\", \"caption\"} objects", path);
    }
    key_index *ids = malloc((size_t)(n ? n : 1) * sizeof *ids), *names = malloc((size_t)(n ? n : 1) * sizeof *names);
    if (!ids || !names) {
        free(ids), free(names), cJSON_Delete(root);
        return imcap_fail(err, IMCAP_E_NOMEM, "out of memory");
    }
    for (int i = 0; i < n; i++) {
        ids[i] = (key_index){ents[i].im->id, i};
        names[i] = (key_index){ents[i].im->filename, i};
    }
    qsort(ids, (size_t)n, sizeof *ids, cmp_key);
    qsort(names, (size_t)n, sizeof *names, cmp_key);
    int k = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, root) {
        const cJSON *iid = cJSON_GetObjectItemCaseSensitive(r, "image_id");
        const cJSON *cap = cJSON_GetObjectItemCaseSensitive(r, "caption");
        char idbuf[64];
        const char *key = NULL;
        /* in range before the cast, which is undefined beyond long long (1e300) */
        if (cJSON_IsNumber(iid) && iid->valuedouble >= -0x1p63 && iid->valuedouble < 0x1p63 &&
            iid->valuedouble == (double)(long long)iid->valuedouble) {
            snprintf(idbuf, sizeof idbuf, "%lld", (long long)iid->valuedouble);
            key = idbuf;
        } else if (cJSON_IsString(iid)) {
            key = iid->valuestring;
        }
        if (!cJSON_IsObject(r) || !key || !cJSON_IsString(cap)) {
            note(c, "%s: result [%d] needs an integer or string \"image_id\" and a string \"caption\"; skipped", path,
                 k);
            rep->n_unknown_ids++;
            k++;
            continue;
        }
        int i = lookup(ids, n, key);
        if (i < 0) i = lookup(names, n, key);
        if (i < 0) {
            if (rep->n_unknown_ids < MAX_REPORTED)
                note(c, "%s: result [%d]: image_id %s is not an image of split %s; ignored", path, k, key, split);
            rep->n_unknown_ids++;
        } else if (ents[i].has_caption) {
            if (rep->n_duplicates < MAX_REPORTED)
                note(c, "%s: result [%d]: a second caption for image %s; ignored (the first counts)", path, k, key);
            rep->n_duplicates++;
        } else if (set_caption(&ents[i], cap->valuestring) != 0) {
            s = imcap_fail(err, IMCAP_E_NOMEM, "out of memory");
            break;
        } else {
            ents[i].words = ents[i].toks;
            ents[i].n_words = ents[i].n_toks;
        }
        k++;
    }
    if (rep->n_unknown_ids > MAX_REPORTED)
        note(c, "%s: %d results in all for images not in split %s", path, rep->n_unknown_ids, split);
    if (rep->n_duplicates > MAX_REPORTED)
        note(c, "%s: %d duplicate results in all", path, rep->n_duplicates);
    free(ids);
    free(names);
    cJSON_Delete(root);
    return s;
}

static char *dirname_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    if (slash == path) return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

/* What imcap_score_split left out, with the image named. */
typedef struct {
    const ctx_t *c;
    const char *data_path;
    const imcap_scored *sc;
} note_ctx;

static void score_note(void *ctx, int i, const char *why) {
    const note_ctx *nc = ctx;
    note(nc->c, "%s: image %s (%s): %s", nc->data_path, nc->sc[i].im->id, nc->sc[i].im->filename, why);
}

/* DIR/results.json (with a model) and DIR/metrics.json. */
static imcap_status write_outputs(const imcap_eval_request *r, const entry *ents, int n, const imcap_eval_report *rep,
                                  imcap_error *err) {
    imcap_status s = imcap_make_dirs(r->out_dir, err);
    if (s) return s;
    size_t plen = strlen(r->out_dir) + 32;
    char *path = malloc(plen);
    if (!path) return imcap_fail(err, IMCAP_E_NOMEM, "out of memory");
    if (!r->results) {
        imcap_result_entry *re = calloc((size_t)(n ? n : 1), sizeof *re);
        int nr = 0;
        for (int i = 0; re && i < n; i++)
            if (ents[i].has_caption) re[nr++] = (imcap_result_entry){ents[i].im->id, ents[i].caption};
        snprintf(path, plen, "%s/results.json", r->out_dir);
        s = re ? imcap_results_write(path, re, nr, err) : imcap_fail(err, IMCAP_E_NOMEM, "out of memory");
        free(re);
    }
    snprintf(path, plen, "%s/metrics.json", r->out_dir);
    if (!s) s = imcap_eval_report_write(rep, path, err);
    free(path);
    return s;
}

void imcap_eval_outcome_free(imcap_eval_outcome *o) {
    if (!o) return;
    free(o->table), free(o->json);
    o->table = o->json = NULL;
}

imcap_status imcap_eval(const imcap_eval_request *r, const imcap_eval_callbacks *cb, imcap_eval_outcome *out,
                        imcap_error *err) {
    if (out) memset(out, 0, sizeof *out);
    if (!r || !r->data || !out) return imcap_fail(err, IMCAP_E_ARG, "imcap_eval: the data set (--data) is required");
    if (!!r->model == !!r->results)
        return imcap_fail(err, IMCAP_E_ARG, "imcap_eval: a model to caption with, or a results file, not both");
    const char *split_name = r->split ? r->split : "test";
    int all_splits = !strcmp(split_name, "all");
    imcap_split split = imcap_split_parse(split_name);
    if (!all_splits && split == IMCAP_SPLIT_OTHER)
        return imcap_fail(err, IMCAP_E_ARG, "--split '%s': expected train, val, test, restval or all", split_name);
    ctx_t c = {cb};

    char *root_dir = r->images ? strdup(r->images) : dirname_of(r->data);
    if (!root_dir) return imcap_fail(err, IMCAP_E_NOMEM, "out of memory");
    imcap_dataset ds;
    imcap_status s = imcap_dataset_load(r->data, root_dir, &ds, err);
    free(root_dir);
    if (s) return s;
    for (int i = 0; i < ds.n_warnings; i++) note(&c, "warning: %s", ds.warnings[i]);

    imcap_eval_report rep;
    memset(&rep, 0, sizeof rep);
    rep.data_path = r->data, rep.results_path = r->results, rep.split = split_name, rep.n_refused = ds.n_refused;
    int n = 0, annotated = 0;
    for (int i = 0; i < ds.n; i++)
        if (all_splits || ds.images[i].split == split) n++;
    entry *ents = calloc((size_t)(n ? n : 1), sizeof *ents);
    imcap_scored *sc = calloc((size_t)(n ? n : 1), sizeof *sc);
    if (!ents || !sc) {
        s = imcap_fail(err, IMCAP_E_NOMEM, "out of memory");
        goto done;
    }
    for (int i = 0, j = 0; i < ds.n; i++)
        if (all_splits || ds.images[i].split == split) {
            ents[j++].im = &ds.images[i];
            if (ds.images[i].objects_json) annotated = 1;
        }
    rep.n_split = n;
    if (n == 0) {
        s = imcap_fail(err, IMCAP_E_FORMAT, "%s: no image in split %s", r->data, split_name);
        goto done;
    }
    if (r->results) {
        if ((s = read_results(&c, r->results, ents, n, split_name, &rep, err))) goto done;
        for (int i = 0; i < n; i++)
            if (!ents[i].has_caption) {
                if (rep.n_no_result < MAX_REPORTED)
                    note(&c, "%s: no result for image %s (%s)", r->results, ents[i].im->id, ents[i].im->filename);
                rep.n_no_result++;
            }
        if (rep.n_no_result > MAX_REPORTED)
            note(&c, "%s: %d images of split %s in all have no result", r->results, rep.n_no_result, split_name);
    } else {
        rep.model_path = r->model_path;
        rep.beam = r->caption.beam;
        rep.have_attention = 1;
        note(&c, "captioning %d images of split %s (beam %d)", n, split_name, r->caption.beam);
        imcap_many_io io = {eval_load, eval_done, NULL, ents, NULL, NULL};
        if ((s = imcap_caption_many(r->model, (size_t)n, &r->caption, EVAL_BLOCK, r->threads, &io, NULL, err)))
            goto done;
        for (int i = 0; i < n; i++)
            if (ents[i].error) {
                note(&c, "%s", ents[i].error);
                rep.n_failed++;
            }
    }

    /* scoring, in the data set's order: the loop training's validation uses too */
    for (int i = 0; i < n; i++) {
        const entry *e = &ents[i];
        sc[i] = (imcap_scored){e->im, e->has_caption ? e->caption : NULL, e->n_words, (const char *const *)e->words,
                               e->attention, e->grid_h, e->grid_w};
    }
    imcap_split_scores ss;
    note_ctx nc = {&c, r->data, sc};
    if ((s = imcap_score_split(sc, n, score_note, &nc, &ss, err))) goto done;
    rep.n_scored = ss.n_scored, rep.n_no_refs = ss.n_no_refs;
    rep.have_scores = ss.have_scores, rep.scores = ss.scores;
    rep.have_objects = ss.have_objects || annotated, rep.objects = ss.objects, rep.object_images = ss.object_images;
    if (!(out->table = imcap_eval_report_table(&rep)) || !(out->json = imcap_eval_report_json(&rep))) {
        s = imcap_fail(err, IMCAP_E_NOMEM, "out of memory");
        goto done;
    }
    if (r->out_dir && (s = write_outputs(r, ents, n, &rep, err))) goto done;
    out->n_split = n, out->n_scored = rep.n_scored, out->n_failed = rep.n_failed;
    out->n_no_result = rep.n_no_result, out->n_no_refs = rep.n_no_refs;
    out->n_unknown_ids = rep.n_unknown_ids, out->n_duplicates = rep.n_duplicates;
    out->have_scores = rep.have_scores;
    for (int k = 0; k < 4; k++) out->scores.bleu[k] = rep.scores.bleu.bleu[k];
    out->scores.cider_d = rep.scores.cider_d, out->scores.rouge_l = rep.scores.rouge_l;
    out->scores.n_images = rep.scores.n_images;
    out->have_objects = rep.have_objects, out->object_images = rep.object_images;
    out->object_f1 = rep.objects.f1, out->object_precision = rep.objects.precision;
    out->object_recall = rep.objects.recall, out->relations = rep.objects.relations;
    out->pointing = rep.objects.pointing, out->mass = rep.objects.mass;
done:
    if (s) imcap_eval_outcome_free(out);
    for (int i = 0; ents && i < n; i++) entry_free(&ents[i]);
    free(ents), free(sc);
    imcap_dataset_free(&ds);
    return s;
}
