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
    if (s == IMCAP_OK) {
        (*out)->image_width = img->width, (*out)->image_height = img->height;
        imcap_result_set_domain(*out, ws->domain_score);
    }
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


/* imcap_caption_images over imcap_caption_many: one thread, the caller's
 * images lent as they are, results stored by index */
typedef struct {
    const imcap_image *imgs;
    imcap_result **out;
    imcap_status *status;
    int first_bad;
    imcap_status bad_status;
    imcap_error bad_err;
} images_run;

static imcap_status images_load(void *ctx, size_t i, imcap_image *img, imcap_error *err) {
    (void)err;
    *img = ((images_run *)ctx)->imgs[i];
    return IMCAP_OK;
}

static void images_release(void *ctx, size_t i, imcap_image *img) { (void)ctx, (void)i, (void)img; }

static void images_done(void *ctx, size_t i, imcap_result *res, imcap_status st, const imcap_error *err) {
    images_run *r = ctx;
    r->out[i] = res;
    if (r->status) r->status[i] = st;
    if (st && (int)i < r->first_bad) r->first_bad = (int)i, r->bad_status = st, r->bad_err = *err;
}

imcap_status imcap_caption_images(const imcap_model *m, int n, const imcap_image *imgs, const imcap_options *opt,
                                  int block, imcap_result **out, imcap_status *status, imcap_error *err) {
    if (n < 0 || (n > 0 && (!imgs || !out))) return imcap_fail(err, IMCAP_E_ARG, "imcap_caption_images: bad arguments");
    for (int i = 0; i < n; i++) out[i] = NULL;
    images_run r = {imgs, out, status, n, IMCAP_OK, {0}};
    imcap_many_io io = {images_load, images_done, NULL, &r, NULL, images_release};
    imcap_status s = imcap_caption_many(m, (size_t)n, opt, block, 1, &io, NULL, err);
    if (s) return s;
    /* the failure reported is the one of the lowest index */
    if (r.first_bad == n) return IMCAP_OK;
    return imcap_fail(err, r.bad_status, "image %d: %.900s", r.first_bad, r.bad_err.msg);
}
