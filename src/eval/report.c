/* report.c — the `imcap eval` outputs: metrics as JSON and as a table, and
 * captions in the COCO results format. Formatting only; the CLI prints. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "util/util.h"

#define LIT(b, s) imcap_buf_append((b), (s), sizeof(s) - 1)

imcap_status imcap_caption_scores_compute(const imcap_eval_item *items, int n, imcap_caption_scores *out,
                                          imcap_error *err) {
    memset(out, 0, sizeof *out);
    imcap_status st = imcap_bleu(items, n, &out->bleu, err);
    if (!st) st = imcap_cider_d(items, n, &out->cider_d, NULL, err);
    if (!st) st = imcap_rouge_l(items, n, &out->rouge_l, NULL, err);
    if (!st) out->n_images = n;
    return st;
}

/* A number, or null when it is not one (an empty denominator upstream). */
static void json_num(imcap_buf *b, double v) {
    if (isfinite(v)) imcap_buf_printf(b, "%.12g", v);
    else LIT(b, "null");
}

static void json_key(imcap_buf *b, const char *k, int *first) {
    if (!*first) LIT(b, ",");
    LIT(b, "\n  ");
    *first = 0;
    imcap_buf_json_string(b, k);
    LIT(b, ": ");
}

static void json_str_or_null(imcap_buf *b, const char *s) {
    if (s) imcap_buf_json_string(b, s);
    else LIT(b, "null");
}

/* The text, or NULL (and nothing) when a write ran out of memory: a report
 * cut short must not pass for a whole one. */
static char *buf_or_null(imcap_buf *b) {
    if (!b->oom) return b->s;
    imcap_buf_free(b);
    return NULL;
}

char *imcap_eval_report_json(const imcap_eval_report *r) {
    imcap_buf b = {0};
    int first = 1;
    LIT(&b, "{");
    json_key(&b, "split", &first);
    json_str_or_null(&b, r->split);
    json_key(&b, "data", &first);
    json_str_or_null(&b, r->data_path);
    json_key(&b, "model", &first);
    json_str_or_null(&b, r->model_path);
    json_key(&b, "results", &first);
    json_str_or_null(&b, r->results_path);
    if (r->model_path) {
        json_key(&b, "beam", &first);
        imcap_buf_printf(&b, "%d", r->beam);
    }
    json_key(&b, "n_images", &first);
    imcap_buf_printf(&b, "%d", r->have_scores ? r->scores.n_images : 0);
    static const char *bleu_keys[4] = {"Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4"};
    for (int k = 0; k < 4; k++) {
        json_key(&b, bleu_keys[k], &first);
        json_num(&b, r->have_scores ? r->scores.bleu.bleu[k] : NAN);
    }
    json_key(&b, "CIDEr", &first);
    json_num(&b, r->have_scores ? r->scores.cider_d : NAN);
    json_key(&b, "ROUGE_L", &first);
    json_num(&b, r->have_scores ? r->scores.rouge_l : NAN);
    if (r->have_scores) {
        const imcap_bleu_stats *s = &r->scores.bleu;
        json_key(&b, "bleu_counts", &first);
        imcap_buf_printf(&b, "{\"testlen\": %ld, \"reflen\": %ld, \"ratio\": ", s->testlen, s->reflen);
        json_num(&b, s->ratio);
        imcap_buf_printf(&b, ", \"guess\": [%ld, %ld, %ld, %ld], \"correct\": [%ld, %ld, %ld, %ld]}",
                         s->guess[0], s->guess[1], s->guess[2], s->guess[3],
                         s->correct[0], s->correct[1], s->correct[2], s->correct[3]);
    }
    if (r->have_objects) {
        const imcap_object_summary *o = &r->objects;
        json_key(&b, "objects", &first);
        imcap_buf_printf(&b, "{\"images\": %ld, \"precision\": ", r->object_images);
        json_num(&b, o->precision);
        LIT(&b, ", \"recall\": ");
        json_num(&b, o->recall);
        LIT(&b, ", \"f1\": ");
        json_num(&b, o->f1);
        LIT(&b, ", \"pointing\": ");
        json_num(&b, r->have_attention && o->n_pointing > 0 ? o->pointing : NAN);
        imcap_buf_printf(&b, ", \"n_pointing\": %ld, \"attention_mass\": ", r->have_attention ? o->n_pointing : 0L);
        json_num(&b, r->have_attention && o->n_pointing > 0 ? o->mass : NAN);
        LIT(&b, ", \"relations\": ");
        json_num(&b, o->n_relations > 0 ? o->relations : NAN);
        imcap_buf_printf(&b, ", \"n_relations\": %ld", o->n_relations);
        static const char *const axis_key[2] = {"left_right", "above_below"};
        for (int a = 0; a < 2; a++) {
            imcap_buf_printf(&b, ", \"relations_%s\": ", axis_key[a]);
            json_num(&b, o->n_relations_axis[a] > 0 ? o->relations_axis[a] : NAN);
            imcap_buf_printf(&b, ", \"n_relations_%s\": %ld", axis_key[a], o->n_relations_axis[a]);
        }
        LIT(&b, "}");
    }
    json_key(&b, "counts", &first);
    imcap_buf_printf(&b,
                     "{\"split_images\": %d, \"scored\": %d, \"failed\": %d, \"no_result\": %d, "
                     "\"no_references\": %d, \"unknown_ids\": %d, \"duplicates\": %d, \"refused\": %d}",
                     r->n_split, r->n_scored, r->n_failed, r->n_no_result, r->n_no_refs, r->n_unknown_ids,
                     r->n_duplicates, r->n_refused);
    LIT(&b, "\n}\n");
    return buf_or_null(&b);
}

static void row(imcap_buf *b, const char *name, double v, const char *note) {
    if (isfinite(v)) imcap_buf_printf(b, "  %-20s %8.4f%s%s\n", name, v, note ? "  " : "", note ? note : "");
    else imcap_buf_printf(b, "  %-20s %8s%s%s\n", name, "-", note ? "  " : "", note ? note : "");
}

char *imcap_eval_report_table(const imcap_eval_report *r) {
    imcap_buf b = {0};
    imcap_buf_printf(&b, "split %s: %d images, %d scored", r->split ? r->split : "all", r->n_split, r->n_scored);
    if (r->n_failed) imcap_buf_printf(&b, ", %d failed", r->n_failed);
    if (r->n_no_result) imcap_buf_printf(&b, ", %d without a result", r->n_no_result);
    if (r->n_no_refs) imcap_buf_printf(&b, ", %d without references", r->n_no_refs);
    if (r->n_unknown_ids) imcap_buf_printf(&b, ", %d results for unknown images", r->n_unknown_ids);
    if (r->n_duplicates) imcap_buf_printf(&b, ", %d duplicate results ignored", r->n_duplicates);
    if (r->n_refused) imcap_buf_printf(&b, ", %d data set entries refused", r->n_refused);
    LIT(&b, "\n");
    if (r->have_scores) {
        const imcap_caption_scores *s = &r->scores;
        char note[128];
        row(&b, "BLEU-1", s->bleu.bleu[0], NULL);
        row(&b, "BLEU-2", s->bleu.bleu[1], NULL);
        row(&b, "BLEU-3", s->bleu.bleu[2], NULL);
        snprintf(note, sizeof note, "(length ratio %.3f)", s->bleu.ratio);
        row(&b, "BLEU-4", s->bleu.bleu[3], note);
        row(&b, "CIDEr-D", s->cider_d, NULL);
        row(&b, "ROUGE-L", s->rouge_l, NULL);
    } else {
        imcap_buf_printf(&b, "  no image could be scored\n");
    }
    if (r->have_objects) {
        const imcap_object_summary *o = &r->objects;
        char note[128];
        snprintf(note, sizeof note, "(%ld images)", r->object_images);
        row(&b, "object precision", o->precision, note);
        row(&b, "object recall", o->recall, NULL);
        row(&b, "object F1", o->f1, NULL);
        if (r->have_attention) {
            snprintf(note, sizeof note, "(%ld objects)", o->n_pointing);
            row(&b, "pointing accuracy", o->n_pointing > 0 ? o->pointing : NAN, note);
            row(&b, "attention mass", o->n_pointing > 0 ? o->mass : NAN, NULL);
        }
        snprintf(note, sizeof note, "(%ld relations)", o->n_relations);
        row(&b, "relation accuracy", o->n_relations > 0 ? o->relations : NAN, note);
        static const char *const axis_row[2] = {"  left / right", "  above / below"};
        for (int a = 0; a < 2; a++) {
            snprintf(note, sizeof note, "(%ld relations)", o->n_relations_axis[a]);
            row(&b, axis_row[a], o->n_relations_axis[a] > 0 ? o->relations_axis[a] : NAN, note);
        }
    }
    return buf_or_null(&b);
}

imcap_status imcap_eval_report_write(const imcap_eval_report *r, const char *path, imcap_error *err) {
    char *s = imcap_eval_report_json(r);
    if (!s) return imcap_fail(err, IMCAP_E_NOMEM, "%s: out of memory for the metrics", path);
    imcap_status st = imcap_write_file_atomic(path, s, strlen(s), err);
    free(s);
    return st;
}

static int all_digits(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > 15) return 0; /* beyond 15 digits a JSON reader's double may not hold it */
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9') return 0;
    return n == 1 || s[0] != '0';
}

imcap_status imcap_results_write(const char *path, const imcap_result_entry *e, int n, imcap_error *err) {
    imcap_buf b = {0};
    LIT(&b, "[");
    for (int i = 0; i < n; i++) {
        if (i) LIT(&b, ",");
        LIT(&b, "\n {\"image_id\": ");
        if (all_digits(e[i].image_id)) imcap_buf_append(&b, e[i].image_id, strlen(e[i].image_id));
        else imcap_buf_json_string(&b, e[i].image_id);
        LIT(&b, ", \"caption\": ");
        imcap_buf_json_string(&b, e[i].caption ? e[i].caption : "");
        LIT(&b, "}");
    }
    if (n) LIT(&b, "\n");
    LIT(&b, "]\n");
    imcap_status st = b.oom ? imcap_fail(err, IMCAP_E_NOMEM, "%s: out of memory for the results", path)
                            : imcap_write_file_atomic(path, b.s, b.len, err);
    imcap_buf_free(&b);
    return st;
}
