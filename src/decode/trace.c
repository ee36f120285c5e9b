/* trace.c — the spec's trace file: everything another implementation needs
 * to check this engine step by step. */
#include <stdlib.h>

#include "decode.h"
#include "image/image.h"
#include "util/util.h"

static void floats(imcap_buf *b, const float *v, int n) {
    imcap_buf_append(b, "[", 1);
    for (int i = 0; i < n; i++) {
        if (i) imcap_buf_append(b, ",", 1);
        imcap_buf_float(b, v[i]);
    }
    imcap_buf_append(b, "]", 1);
}

imcap_status imcap_caption_trace(const imcap_model *m, const imcap_image *img, const imcap_options *opt,
                                 const char *trace_path, imcap_result **out, imcap_error *err) {
    if (!out || !trace_path || !img) return imcap_fail(err, IMCAP_E_ARG, "imcap_caption_trace: out, img or trace_path is NULL");
    *out = NULL;
    /* the same checks as every other caption entry point */
    imcap_status s0 = imcap_check_options(m, opt, err);
    if (s0) return s0;
    imcap_workspace *ws = imcap_workspace_new(m);
    if (!ws) return imcap_fail(err, IMCAP_E_NOMEM, "out of memory for the workspace");
    float *logits = NULL;
    imcap_result *r = NULL;
    imcap_status s = imcap_image_to_input(img, &m->cfg, ws->enc.act[0], err);
    if (!s) {
        imcap_workspace_encode(ws);
        s = imcap_beam_search(ws, opt, &r, &logits, err);
    }
    if (s) {
        imcap_workspace_free(ws);
        return s;
    }
    r->image_width = img->width, r->image_height = img->height;
    imcap_result_set_domain(r, ws->domain_score);
    const imcap_config *c = &m->cfg;
    const imcap_hypothesis *h = &r->hyps[0];
    int V = m->vocab.n, L = c->L, S = c->image_size;
    imcap_buf b = {0};
    imcap_buf_append(&b, "{\"tokens\": [", 12);
    for (int t = 0; t < h->n_tokens; t++) imcap_buf_printf(&b, "%s%d", t ? "," : "", h->tokens[t]);
    imcap_buf_append(&b, "],\n\"logits\": [", 14);
    for (int t = 0; t < h->n_tokens; t++) {
        if (t) imcap_buf_append(&b, ",\n", 2);
        floats(&b, logits + (size_t)t * V, V);
    }
    imcap_buf_append(&b, "],\n\"attention\": [", 17);
    for (int t = 0; t < h->n_tokens; t++) {
        if (t) imcap_buf_append(&b, ",\n", 2);
        floats(&b, h->attention + (size_t)t * L, L);
    }
    imcap_buf_append(&b, "],\n\"annotations\": [", 19);
    for (int i = 0; i < L; i++) {
        if (i) imcap_buf_append(&b, ",\n", 2);
        floats(&b, ws->init.a + (size_t)i * c->D, c->D);
    }
    imcap_buf_append(&b, "],\n\"input\": [", 13);
    for (int ch = 0; ch < 3; ch++) {
        imcap_buf_append(&b, ch ? ",[" : "[", ch ? 2 : 1);
        for (int y = 0; y < S; y++) {
            if (y) imcap_buf_append(&b, ",\n", 2);
            floats(&b, ws->enc.act[0] + ((size_t)ch * S + y) * S, S);
        }
        imcap_buf_append(&b, "]", 1);
    }
    imcap_buf_append(&b, "]}\n", 3);
    s = b.oom ? imcap_fail(err, IMCAP_E_NOMEM, "%s: out of memory for the trace", trace_path)
              : imcap_write_file_atomic(trace_path, b.s, b.len, err);
    imcap_buf_free(&b);
    free(logits);
    imcap_workspace_free(ws);
    if (s) {
        imcap_result_free(r);
        return s;
    }
    *out = r;
    return IMCAP_OK;
}
