/* cmd_eval.c — `imcap eval`: caption a split of a Karpathy-format data set
 * (or read another system's captions from a COCO results file) and score
 * them: BLEU-1..4, CIDEr-D, ROUGE-L, and on annotated synthetic scenes the
 * object, pointing, attention-mass and relation metrics. */
#include <errno.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cjson/cJSON.h>

#include "args.h"
#include "cli.h"
#include "data/dataset.h"
#include "eval/metrics.h"
#include "eval/objects.h"
#include "eval/score.h"
#include "util/util.h"
#include "util/json.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: imcap eval [-m M] --data D.json [--images DIR] [--split S] [--beam K]\n"
            "                  [-o DIR] [-j N] [--json]\n"
            "       imcap eval --data D.json --results R.json [--split S] [-o DIR] [--json]\n\n"
            "Scores captions of one split of a Karpathy-format data set (dataset_coco.json,\n"
            "dataset_flickr8k.json, or what `imcap synth` writes) against its reference\n"
            "captions: corpus BLEU-1..4 and CIDEr-D computed as the COCO caption evaluation\n"
            "toolkit computes them, and ROUGE-L. Captions and references are both tokenised\n"
            "with the model format's tokeniser (the toolkit uses the PTB tokenizer; the two\n"
            "agree on plain lower-case words). When the data set's images carry \"objects\"\n"
            "(synthetic scenes) it also reports object precision / recall / F1 and relation\n"
            "accuracy and, when a model runs, attention pointing accuracy and attention mass.\n\n"
            "With --model (or the default model), every image of the split is captioned.\n"
            "With --results, the captions come from R.json in the COCO results format\n"
            "[{\"image_id\": ..., \"caption\": \"...\"}, ...], image_id being the image's\n"
            "cocoid / imgid or its file name.\n\n"
            "  --data D.json      the data set (required)\n"
            "  --images DIR       folder the data set's filepath/filename are under\n"
            "                     (default: the folder of D.json)\n"
            "  --split S          train, val, test, restval or all (default test)\n"
            "  -m, --model M      model file (default: $IMCAP_MODEL, else the shipped model)\n"
            "  --beam K           beam width, 1 = greedy (default 3)\n"
            "  -j, --threads N    worker threads over images (default: all cores)\n"
            "  --results R.json   score these captions instead of running a model\n"
            "  -o, --output DIR   write DIR/metrics.json (and, with a model, DIR/results.json\n"
            "                     in the COCO results format); created if missing (--out: the\n"
            "                     old spelling)\n"
            "  --json             print metrics.json's object on stdout instead of the table\n\n"
            "The metrics table (or --json's object) goes to stdout; images that cannot be read or captioned,\n"
            "results for unknown images and images without a result go to stderr and are\n"
            "counted, never fatal.\n"
            "Exit: 0 every image of the split scored, 1 some could not be (failed to load or\n"
            "caption, no result, no reference), 2 usage error, 3 data set, results file or\n"
            "model not loadable, or an output not writable.\n");
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
        if (!strncmp(err->msg, path, strlen(path))) snprintf(msg, sizeof msg, "%s", err->msg);
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

/* Reads the results file into the entries; returns the exit status to use
 * when fatal (EXIT_FATAL) or 0. */
static int read_results(const char *path, entry *ents, int n, const char *split, imcap_eval_report *rep) {
    imcap_error err;
    unsigned char *data;
    size_t size;
    if (imcap_read_file(path, &data, &size, &err) != IMCAP_OK) {
        fprintf(stderr, "imcap eval: %s\n", err.msg);
        return EXIT_FATAL;
    }
    const char *end = NULL;
    cJSON *root = imcap_json_parse((const char *)data, size + 1, &end, 1);
    if (!root) {
        fprintf(stderr, "imcap eval: %s: not valid JSON (error near byte %ld)\n", path,
                end ? (long)(end - (const char *)data) : 0L);
        free(data);
        return EXIT_FATAL;
    }
    free(data);
    if (!cJSON_IsArray(root)) {
        fprintf(stderr, "imcap eval: %s: not a COCO results file: the top level must be an array of "
                        "{\"image_id\", \"caption\"} objects\n", path);
        cJSON_Delete(root);
        return EXIT_FATAL;
    }
    key_index *ids = malloc((size_t)(n ? n : 1) * sizeof *ids), *names = malloc((size_t)(n ? n : 1) * sizeof *names);
    if (!ids || !names) {
        fprintf(stderr, "imcap eval: out of memory\n");
        free(ids), free(names), cJSON_Delete(root);
        return EXIT_FATAL;
    }
    for (int i = 0; i < n; i++) {
        ids[i] = (key_index){ents[i].im->id, i};
        names[i] = (key_index){ents[i].im->filename, i};
    }
    qsort(ids, (size_t)n, sizeof *ids, cmp_key);
    qsort(names, (size_t)n, sizeof *names, cmp_key);
    int k = 0, status = 0;
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
            fprintf(stderr, "imcap eval: %s: result [%d] needs an integer or string \"image_id\" and a string "
                            "\"caption\"; skipped\n", path, k);
            rep->n_unknown_ids++;
            k++;
            continue;
        }
        int i = lookup(ids, n, key);
        if (i < 0) i = lookup(names, n, key);
        if (i < 0) {
            if (rep->n_unknown_ids < MAX_REPORTED)
                fprintf(stderr, "imcap eval: %s: result [%d]: image_id %s is not an image of split %s; ignored\n",
                        path, k, key, split);
            rep->n_unknown_ids++;
        } else if (ents[i].has_caption) {
            if (rep->n_duplicates < MAX_REPORTED)
                fprintf(stderr, "imcap eval: %s: result [%d]: a second caption for image %s; ignored (the first counts)\n",
                    path, k, key);
            rep->n_duplicates++;
        } else if (set_caption(&ents[i], cap->valuestring) != 0) {
            fprintf(stderr, "imcap eval: out of memory\n");
            status = EXIT_FATAL;
            break;
        } else {
            ents[i].words = ents[i].toks;
            ents[i].n_words = ents[i].n_toks;
        }
        k++;
    }
    if (rep->n_unknown_ids > MAX_REPORTED)
        fprintf(stderr, "imcap eval: %s: %d results in all for images not in split %s\n", path, rep->n_unknown_ids, split);
    if (rep->n_duplicates > MAX_REPORTED)
        fprintf(stderr, "imcap eval: %s: %d duplicate results in all\n", path, rep->n_duplicates);
    free(ids);
    free(names);
    cJSON_Delete(root);
    return status;
}

static char *dirname_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    if (slash == path) return strdup("/");
    char *d = strndup(path, (size_t)(slash - path));
    return d;
}

/* What imcap_score_split left out, on stderr with the image named. */
typedef struct {
    const char *data_path;
    const imcap_scored *sc;
} eval_note_ctx;

static void eval_note(void *ctx, int i, const char *why) {
    const eval_note_ctx *c = ctx;
    fprintf(stderr, "imcap eval: %s: image %s (%s): %s\n", c->data_path, c->sc[i].im->id, c->sc[i].im->filename, why);
}

int run_eval(int argc, char **argv) {
    const char *model_path = NULL, *data_path = NULL, *images_dir = NULL, *split_name = "test";
    const char *results_path = NULL, *out_dir = NULL;
    int threads = 0, beam_given = 0;
    char found[4096];
    imcap_options opt;
    imcap_options_default(&opt);
    int json = 0, first = 0;
    const cli_opt opts[] = {
        CLI_OPT_MODEL(&model_path),
        CLI_OPT_THREADS(&threads),
        CLI_OPT_OUTPUT(&out_dir),
        CLI_OPT_JSON(&json),
        {"data", 0, CLI_STR, &data_path, 0, 0, NULL, NULL},
        {"images", 0, CLI_STR, &images_dir, 0, 0, NULL, NULL},
        {"split", 0, CLI_STR, &split_name, 0, 0, NULL, NULL},
        {"results", 0, CLI_STR, &results_path, 0, 0, NULL, NULL},
        {"beam", 0, CLI_INT, &opt.beam, 1, 1000, &beam_given, NULL},
        CLI_DEPRECATED("out", CLI_STR, &out_dir, "-o/--output"),
        CLI_END,
    };
    int pr = cli_parse("eval", argc, argv, opts, usage, &first);
    if (pr) return cli_parse_exit(pr);
    if (cli_no_positionals("eval", argc, argv, first, "the data set is --data D.json", usage)) return EXIT_USAGE;
    if (!data_path) {
        fprintf(stderr, "imcap eval: --data D.json is required\n");
        usage(stderr);
        return EXIT_USAGE;
    }
    if (results_path && (model_path || beam_given)) {
        fprintf(stderr, "imcap eval: --results scores a results file; it does not go with --model or --beam\n");
        return EXIT_USAGE;
    }
    int all_splits = !strcmp(split_name, "all");
    imcap_split split = imcap_split_parse(split_name);
    if (!all_splits && split == IMCAP_SPLIT_OTHER) {
        fprintf(stderr, "imcap eval: --split '%s': expected train, val, test, restval or all\n", split_name);
        return EXIT_USAGE;
    }

    /* the data set */
    char *root_dir = images_dir ? strdup(images_dir) : dirname_of(data_path);
    imcap_dataset ds;
    imcap_error err;
    if (!root_dir || imcap_dataset_load(data_path, root_dir, &ds, &err) != IMCAP_OK) {
        fprintf(stderr, "imcap eval: %s\n", root_dir ? err.msg : "out of memory");
        free(root_dir);
        return EXIT_FATAL;
    }
    free(root_dir);
    for (int i = 0; i < ds.n_warnings; i++) fprintf(stderr, "imcap eval: warning: %s\n", ds.warnings[i]);

    imcap_eval_report rep;
    memset(&rep, 0, sizeof rep);
    rep.data_path = data_path;
    rep.results_path = results_path;
    rep.split = split_name;
    rep.n_refused = ds.n_refused;
    int n = 0, annotated = 0;
    for (int i = 0; i < ds.n; i++)
        if (all_splits || ds.images[i].split == split) n++;
    entry *ents = calloc((size_t)(n ? n : 1), sizeof *ents);
    if (!ents) {
        fprintf(stderr, "imcap eval: out of memory\n");
        imcap_dataset_free(&ds);
        return EXIT_FATAL;
    }
    for (int i = 0, j = 0; i < ds.n; i++)
        if (all_splits || ds.images[i].split == split) {
            ents[j++].im = &ds.images[i];
            if (ds.images[i].objects_json) annotated = 1;
        }
    rep.n_split = n;
    int status = EXIT_ALL_OK;
    imcap_model *m = NULL;
    if (n == 0) {
        fprintf(stderr, "imcap eval: %s: no image in split %s\n", data_path, split_name);
        status = EXIT_FATAL;
        goto done;
    }
    if (results_path) {
        status = read_results(results_path, ents, n, split_name, &rep);
        if (status) goto done;
        for (int i = 0; i < n; i++)
            if (!ents[i].has_caption) {
                if (rep.n_no_result < MAX_REPORTED)
                    fprintf(stderr, "imcap eval: %s: no result for image %s (%s)\n", results_path, ents[i].im->id,
                            ents[i].im->filename);
                rep.n_no_result++;
            }
        if (rep.n_no_result > MAX_REPORTED)
            fprintf(stderr, "imcap eval: %s: %d images of split %s in all have no result\n", results_path,
                    rep.n_no_result, split_name);
    } else {
        cli_set_threads(threads);
        m = cli_load_model(model_path);
        if (!m) { status = EXIT_FATAL; goto done; }
        if (!model_path && cli_default_model_path(found, sizeof found) == 0) model_path = found;
        rep.model_path = model_path;
        rep.beam = opt.beam;
        rep.have_attention = 1;
        fprintf(stderr, "imcap eval: captioning %d images of split %s (beam %d)\n", n, split_name, opt.beam);
        imcap_many_io io = {eval_load, eval_done, NULL, ents, NULL, NULL};
        imcap_error err;
        if (imcap_caption_many(m, (size_t)n, &opt, EVAL_BLOCK, 0, &io, NULL, &err) != IMCAP_OK) {
            fprintf(stderr, "imcap eval: %s\n", err.msg);
            status = EXIT_FATAL;
            goto done;
        }
        for (int i = 0; i < n; i++)
            if (ents[i].error) {
                fprintf(stderr, "imcap eval: %s\n", ents[i].error);
                rep.n_failed++;
            }
    }

    /* scoring, in the data set's order: the loop training's validation uses too */
    {
        imcap_scored *sc = calloc((size_t)(n ? n : 1), sizeof *sc);
        if (!sc) {
            fprintf(stderr, "imcap eval: out of memory\n");
            status = EXIT_FATAL;
            goto done;
        }
        for (int i = 0; i < n; i++) {
            const entry *e = &ents[i];
            sc[i] = (imcap_scored){e->im, e->has_caption ? e->caption : NULL, e->n_words, (const char *const *)e->words,
                                   e->attention, e->grid_h, e->grid_w};
        }
        imcap_split_scores ss;
        eval_note_ctx nc = {data_path, sc};
        imcap_status st = imcap_score_split(sc, n, eval_note, &nc, &ss, &err);
        free(sc);
        if (st != IMCAP_OK) {
            fprintf(stderr, "imcap eval: %s\n", err.msg);
            status = EXIT_FATAL;
            goto done;
        }
        rep.n_scored = ss.n_scored, rep.n_no_refs = ss.n_no_refs;
        rep.have_scores = ss.have_scores, rep.scores = ss.scores;
        rep.have_objects = ss.have_objects || annotated, rep.objects = ss.objects, rep.object_images = ss.object_images;
    }

    char *table = json ? imcap_eval_report_json(&rep) : imcap_eval_report_table(&rep);
    if (!table) {
        fprintf(stderr, "imcap eval: out of memory\n");
        status = EXIT_FATAL;
        goto done;
    }
    fputs(table, stdout);
    fflush(stdout);
    free(table);

    if (out_dir) {
        if (cli_make_dirs(out_dir) != 0) {
            fprintf(stderr, "imcap eval: %s: cannot create the output folder: %s\n", out_dir, strerror(errno));
            status = EXIT_FATAL;
            goto done;
        }
        size_t plen = strlen(out_dir) + 32;
        char *path = malloc(plen);
        if (!path) { status = EXIT_FATAL; goto done; }
        if (!results_path) {
            imcap_result_entry *re = calloc((size_t)(n ? n : 1), sizeof *re);
            int nr = 0;
            for (int i = 0; re && i < n; i++)
                if (ents[i].has_caption) re[nr++] = (imcap_result_entry){ents[i].im->id, ents[i].caption};
            snprintf(path, plen, "%s/results.json", out_dir);
            if (!re || imcap_results_write(path, re, nr, &err) != IMCAP_OK) {
                fprintf(stderr, "imcap eval: %s\n", re ? err.msg : "out of memory");
                status = EXIT_FATAL;
            }
            free(re);
        }
        snprintf(path, plen, "%s/metrics.json", out_dir);
        if (status != EXIT_FATAL && imcap_eval_report_write(&rep, path, &err) != IMCAP_OK) {
            fprintf(stderr, "imcap eval: %s\n", err.msg);
            status = EXIT_FATAL;
        }
        free(path);
        if (status == EXIT_FATAL) goto done;
    }
    if (rep.n_failed || rep.n_no_result || rep.n_no_refs) status = EXIT_SOME_FAILED;

done:
    for (int i = 0; i < n; i++) entry_free(&ents[i]);
    free(ents);
    imcap_model_free(m);
    imcap_dataset_free(&ds);
    return status;
}
