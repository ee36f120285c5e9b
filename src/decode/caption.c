/* caption.c — the public captioning entry points: image -> input tensor ->
 * encoder -> beam search -> result. */
#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "image/image.h"
#include "util/util.h"

void imcap_options_default(imcap_options *opt) {
    memset(opt, 0, sizeof *opt);
    opt->beam = 3;
    opt->length_alpha = 0.7f;
}

imcap_status imcap_check_options(const imcap_model *m, const imcap_options *opt, imcap_error *err) {
    if (!m) return imcap_fail(err, IMCAP_E_ARG, "no model");
    if (!opt) return imcap_fail(err, IMCAP_E_ARG, "no options");
    if (opt->beam < 1 || opt->beam > 1000) return imcap_fail(err, IMCAP_E_ARG, "beam width %d outside [1, 1000]", opt->beam);
    if (opt->max_length < 0 || opt->max_length > 1024)
        return imcap_fail(err, IMCAP_E_ARG, "max_length %d outside [0, 1024]", opt->max_length);
    return IMCAP_OK;
}

/* Shared by the plain and the traced paths: encode img into ws, then search. */
static imcap_status caption_with(const imcap_model *m, imcap_workspace *ws, const imcap_image *img,
                                 const imcap_options *opt, imcap_result **out, float **logits, imcap_error *err) {
    imcap_status s = imcap_image_to_input(img, &m->cfg, ws->enc.act[0], err);
    if (s) return s;
    imcap_workspace_encode(ws);
    s = imcap_beam_search(ws, opt, out, logits, err);
    if (s == IMCAP_OK) (*out)->image_width = img->width, (*out)->image_height = img->height;
    return s;
}

imcap_status imcap_caption_image(const imcap_model *m, imcap_workspace *ws, const imcap_image *img,
                                 const imcap_options *opt, imcap_result **out, imcap_error *err) {
    if (!out) return imcap_fail(err, IMCAP_E_ARG, "imcap_caption_image: out is NULL");
    *out = NULL;
    imcap_status s = imcap_check_options(m, opt, err);
    if (s) return s;
    if (!img || !img->rgb || img->width < 1 || img->height < 1) return imcap_fail(err, IMCAP_E_ARG, "empty image");
    if (ws && ws->model != m) return imcap_fail(err, IMCAP_E_ARG, "workspace belongs to another model");
    imcap_workspace *own = ws ? NULL : imcap_workspace_new(m);
    if (!ws && !own) return imcap_fail(err, IMCAP_E_NOMEM, "out of memory for the workspace");
    s = caption_with(m, ws ? ws : own, img, opt, out, NULL, err);
    imcap_workspace_free(own);
    return s;
}

imcap_status imcap_caption_file(const imcap_model *m, imcap_workspace *ws, const char *path,
                                const imcap_options *opt, imcap_result **out, imcap_error *err) {
    if (!out) return imcap_fail(err, IMCAP_E_ARG, "imcap_caption_file: out is NULL");
    *out = NULL;
    imcap_status s = imcap_check_options(m, opt, err);
    if (s) return s;
    imcap_image img;
    if ((s = imcap_image_load(path, &img, err))) return s;
    s = imcap_caption_image(m, ws, &img, opt, out, err);
    if (s && err && !strstr(err->msg, path)) {
        imcap_buf b = {0};
        imcap_buf_printf(&b, "%s: %s", path, err->msg);
        snprintf(err->msg, sizeof err->msg, "%.1000s", b.s);
        imcap_buf_free(&b);
    }
    imcap_image_free(&img);
    return s;
}


imcap_status imcap_caption_images(const imcap_model *m, int n, const imcap_image *imgs, const imcap_options *opt,
                                  int block, imcap_result **out, imcap_status *status, imcap_error *err) {
    if (n < 0 || (n > 0 && (!imgs || !out))) return imcap_fail(err, IMCAP_E_ARG, "imcap_caption_images: bad arguments");
    for (int i = 0; i < n; i++) out[i] = NULL;
    imcap_batcher *b;
    imcap_status s = imcap_batcher_new(m, opt, block, &b, err);
    if (s) return s;
    /* the failure reported is the one of the lowest index */
    int next = 0, first_bad = n;
    imcap_status bad_status = IMCAP_OK;
    imcap_error e, bad_err = {0};
    while (next < n || imcap_batcher_pending(b) > 0) {
        while (next < n && imcap_batcher_space(b) > 0) {
            imcap_status ps = imcap_batcher_push(b, &imgs[next], (uint64_t)next, &e);
            if (ps) {
                if (status) status[next] = ps;
                if (next < first_bad) first_bad = next, bad_status = ps, bad_err = e;
            }
            next++;
        }
        uint64_t tag;
        imcap_result *r;
        imcap_status ns = imcap_batcher_next(b, &tag, &r, &e);
        if (ns == IMCAP_OK && !r) continue;
        if (status) status[tag] = ns;
        if (ns && (int)tag < first_bad) first_bad = (int)tag, bad_status = ns, bad_err = e;
        out[tag] = r;
    }
    imcap_batcher_free(b);
    if (first_bad == n) return IMCAP_OK;
    return imcap_fail(err, bad_status, "image %d: %.900s", first_bad, bad_err.msg);
}
