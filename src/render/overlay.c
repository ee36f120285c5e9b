/* overlay.c — attention overlays and the files `imcap attend` writes. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image/image.h"
#include "render/render.h"

void imcap_render_options_default(imcap_render_options *o) {
    memset(o, 0, sizeof *o);
    o->colormap = IMCAP_CMAP_VIRIDIS;
    o->alpha = 0.6f;
    o->max_side = 512;
    o->tile_side = 224;
    o->label_px = 15.0f;
    o->title_px = 20.0f;
    o->html_jpeg_quality = 90;
}

imcap_status imcap_render_options_check(const imcap_render_options *o, imcap_error *err) {
    if (!o) return imcap_fail(err, IMCAP_E_ARG, "render options: NULL");
    if (!imcap_colormap_name(o->colormap) || !strcmp(imcap_colormap_name(o->colormap), "?"))
        return imcap_fail(err, IMCAP_E_ARG, "render options: colormap %d is unknown", (int)o->colormap);
    if (!(o->alpha >= 0.0f && o->alpha <= 1.0f))
        return imcap_fail(err, IMCAP_E_ARG, "render options: alpha %g is not in [0, 1]", (double)o->alpha);
    if (o->max_side < 0 || o->max_side > IMCAP_MAX_SIDE)
        return imcap_fail(err, IMCAP_E_ARG, "render options: max_side %d is not in [0, %d]", o->max_side,
                          IMCAP_MAX_SIDE);
    if (o->tile_side < 16 || o->tile_side > 4096)
        return imcap_fail(err, IMCAP_E_ARG, "render options: tile_side %d is not in [16, 4096]", o->tile_side);
    if (!(o->label_px >= 4.0f && o->label_px <= 200.0f) || !(o->title_px >= 4.0f && o->title_px <= 200.0f))
        return imcap_fail(err, IMCAP_E_ARG, "render options: text sizes must be in [4, 200] pixels");
    if (o->html_jpeg_quality < 0 || o->html_jpeg_quality > 100)
        return imcap_fail(err, IMCAP_E_ARG, "render options: html_jpeg_quality %d is not in [0, 100]",
                          o->html_jpeg_quality);
    return IMCAP_OK;
}

imcap_status imcap_render_fit(const imcap_image *img, int max_w, int max_h, int allow_upscale, imcap_image *out,
                              imcap_error *err) {
    memset(out, 0, sizeof *out);
    if (!img || !img->rgb || img->width <= 0 || img->height <= 0)
        return imcap_fail(err, IMCAP_E_ARG, "render: empty image");
    int w = img->width, h = img->height;
    if (max_w > 0 && max_h > 0) {
        double s = fmin((double)max_w / w, (double)max_h / h);
        if (s < 1.0 || allow_upscale) {
            w = (int)lround(img->width * s);
            h = (int)lround(img->height * s);
            if (w < 1) w = 1;
            if (h < 1) h = 1;
        }
    }
    size_t n = (size_t)w * h * 3;
    out->rgb = malloc(n);
    if (!out->rgb) return imcap_fail(err, IMCAP_E_NOMEM, "render: out of memory for a %dx%d image", w, h);
    out->width = w;
    out->height = h;
    if (w == img->width && h == img->height) {
        memcpy(out->rgb, img->rgb, n);
        return IMCAP_OK;
    }
    imcap_status s = imcap_resize_rgb8(img->rgb, img->width, img->height, out->rgb, w, h, err);
    if (s) imcap_image_free(out);
    return s;
}

imcap_status imcap_render_overlay(const imcap_image *img, const float *map, int gh, int gw,
                                  const imcap_render_options *o, imcap_image *out, imcap_error *err) {
    memset(out, 0, sizeof *out);
    imcap_status s = imcap_render_options_check(o, err);
    if (s) return s;
    if (!img || !img->rgb || img->width <= 0 || img->height <= 0)
        return imcap_fail(err, IMCAP_E_ARG, "render: empty image");
    if (!map || gh <= 0 || gw <= 0) return imcap_fail(err, IMCAP_E_ARG, "render: empty attention map");
    int w = img->width, h = img->height;
    size_t np = (size_t)w * h;
    float *grid = malloc(sizeof(float) * (size_t)gh * gw);
    float *up = malloc(sizeof(float) * np);
    out->rgb = malloc(np * 3);
    if (!grid || !up || !out->rgb || (imcap_render_normalise(map, gh * gw, grid),
                                      imcap_render_upsample(grid, gh, gw, up, w, h)) != 0) {
        free(grid), free(up);
        imcap_image_free(out);
        return imcap_fail(err, IMCAP_E_NOMEM, "render: out of memory for a %dx%d overlay", w, h);
    }
    out->width = w;
    out->height = h;
    /* Blend in float against the table itself, so a pixel is exactly
     * round((1 - a) * image + a * 255 * colour). */
    const float *tab = imcap_colormap_table(o->colormap);
    float a = o->alpha, keep = 1.0f - a, col[256 * 3];
    for (int i = 0; i < 256 * 3; i++) col[i] = a * 255.0f * tab[i];
    for (size_t i = 0; i < np; i++) {
        const float *c = col + 3 * imcap_colormap_index(up[i]);
        const unsigned char *p = img->rgb + 3 * i;
        unsigned char *q = out->rgb + 3 * i;
        for (int k = 0; k < 3; k++) {
            long v = lrintf(keep * p[k] + c[k]);
            q[k] = (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
    free(grid);
    free(up);
    return IMCAP_OK;
}

imcap_status imcap_render_check_result(const imcap_result *r, int h, imcap_error *err) {
    if (!r || r->n_hyps < 1 || !r->hyps) return imcap_fail(err, IMCAP_E_ARG, "render: empty caption result");
    if (r->grid_h <= 0 || r->grid_w <= 0)
        return imcap_fail(err, IMCAP_E_ARG, "render: attention grid %dx%d is empty", r->grid_h, r->grid_w);
    if (h < 0 || h >= r->n_hyps)
        return imcap_fail(err, IMCAP_E_ARG, "render: hypothesis %d of %d does not exist", h, r->n_hyps);
    const imcap_hypothesis *hy = &r->hyps[h];
    if (hy->n_tokens < 0 || (hy->n_tokens > 0 && (!hy->attention || !hy->words || !hy->logprobs)))
        return imcap_fail(err, IMCAP_E_ARG, "render: hypothesis %d has no attention, words or log-probs", h);
    return IMCAP_OK;
}

imcap_status imcap_render_word(const imcap_image *img, const imcap_result *r, int h, int k,
                               const imcap_render_options *o, imcap_image *out, imcap_error *err) {
    memset(out, 0, sizeof *out);
    imcap_status s = imcap_render_check_result(r, h, err);
    if (s) return s;
    if (k < 0 || k >= r->hyps[h].n_tokens)
        return imcap_fail(err, IMCAP_E_ARG, "render: word %d of hypothesis %d does not exist", k, h);
    size_t L = (size_t)r->grid_h * r->grid_w;
    return imcap_render_overlay(img, r->hyps[h].attention + (size_t)k * L, r->grid_h, r->grid_w, o, out, err);
}

void imcap_render_overlay_suffix(int k, const char *word, char *out, size_t cap) {
    char w[IMCAP_NAME_MAX + 1];
    imcap_sanitize_name(word, "word", w, sizeof w);
    snprintf(out, cap, "_%02d_%s.png", k, w);
}

/* outdir/<stem><suffix>, malloc'd. */

imcap_status imcap_render_write(const imcap_image *img, const imcap_result *r, const char *outdir, const char *stem,
                                const char *title, const imcap_render_options *o, int what, imcap_error *err) {
    imcap_status s = imcap_render_options_check(o, err);
    if (!s) s = imcap_render_check_result(r, 0, err);
    if (s) return s;
    if (!outdir || !stem || !*stem) return imcap_fail(err, IMCAP_E_ARG, "render: no output directory or stem");
    char *path = NULL;
    if (what & IMCAP_RENDER_OVERLAYS) {
        imcap_image base;
        if ((s = imcap_render_fit(img, o->max_side, o->max_side, 0, &base, err))) return s;
        const imcap_hypothesis *hy = &r->hyps[0];
        for (int k = 0; k < hy->n_tokens && !s; k++) {
            imcap_image ov;
            if ((s = imcap_render_word(&base, r, 0, k, o, &ov, err))) break;
            char suffix[IMCAP_NAME_MAX + 32];
            imcap_render_overlay_suffix(k, hy->words[k], suffix, sizeof suffix);
            if (!(path = imcap_path_join(outdir, stem, suffix))) s = imcap_fail(err, IMCAP_E_NOMEM, "render: out of memory");
            else s = imcap_png_write(path, ov.rgb, ov.width, ov.height, 3, err);
            free(path);
            imcap_image_free(&ov);
        }
        imcap_image_free(&base);
        if (s) return s;
    }
    if (what & IMCAP_RENDER_SHEET) {
        imcap_image sheet;
        if ((s = imcap_render_sheet(img, r, 0, NULL, o, &sheet, err))) return s;
        if (!(path = imcap_path_join(outdir, stem, "_sheet.png"))) s = imcap_fail(err, IMCAP_E_NOMEM, "render: out of memory");
        else s = imcap_png_write(path, sheet.rgb, sheet.width, sheet.height, 3, err);
        free(path);
        imcap_image_free(&sheet);
        if (s) return s;
    }
    if (what & IMCAP_RENDER_HTML) {
        char *html;
        size_t len;
        if ((s = imcap_render_html(img, r, title ? title : stem, o, &html, &len, err))) return s;
        if (!(path = imcap_path_join(outdir, stem, ".html"))) s = imcap_fail(err, IMCAP_E_NOMEM, "render: out of memory");
        else s = imcap_write_file_atomic(path, html, len, err);
        free(path);
        free(html);
    }
    return s;
}
