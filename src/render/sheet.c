/* sheet.c — the contact sheet: caption, original, one labelled tile per word. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "render/render.h"

static const unsigned char ink[3] = {24, 24, 28}, muted[3] = {100, 100, 110}, rule[3] = {205, 205, 212};

static void fill(imcap_image *im, int x0, int y0, int w, int h, const unsigned char c[3]) {
    for (int y = y0 < 0 ? 0 : y0; y < y0 + h && y < im->height; y++)
        for (int x = x0 < 0 ? 0 : x0; x < x0 + w && x < im->width; x++) memcpy(im->rgb + 3 * ((size_t)y * im->width + x), c, 3);
}

static void blit(imcap_image *dst, const imcap_image *src, int x0, int y0) {
    for (int y = 0; y < src->height; y++) {
        int yy = y0 + y;
        if (yy < 0 || yy >= dst->height) continue;
        int x = x0 < 0 ? -x0 : 0, xe = src->width;
        if (x0 + xe > dst->width) xe = dst->width - x0;
        if (xe > x)
            memcpy(dst->rgb + 3 * ((size_t)yy * dst->width + x0 + x), src->rgb + 3 * ((size_t)y * src->width + x),
                   3 * (size_t)(xe - x));
    }
}

/* A hairline frame just outside a tile, so bright tiles do not melt into
 * the white page. */
static void frame(imcap_image *im, int x, int y, int w, int h) {
    fill(im, x - 1, y - 1, w + 2, 1, rule);
    fill(im, x - 1, y + h, w + 2, 1, rule);
    fill(im, x - 1, y, 1, h, rule);
    fill(im, x + w, y, 1, h, rule);
}

imcap_status imcap_render_sheet(const imcap_image *img, const imcap_result *r, int h, const imcap_font *font,
                                const imcap_render_options *o, imcap_image *out, imcap_error *err) {
    memset(out, 0, sizeof *out);
    imcap_status s = imcap_render_options_check(o, err);
    if (!s) s = imcap_render_check_result(r, h, err);
    if (s) return s;
    imcap_font *own = NULL;
    if (!font) {
        if ((s = imcap_font_load_default(&own, err))) return s;
        font = own;
    }
    const imcap_hypothesis *hy = &r->hyps[h];
    imcap_image tile0 = {0}, ov = {0};
    char **title = NULL;
    int n_title = 0;
    /* Tiles share the image's aspect ratio; small images are enlarged so
     * the labels are not wider than the pictures. */
    if ((s = imcap_render_fit(img, o->tile_side, o->tile_side, 1, &tile0, err))) goto done;
    int tw = tile0.width, th = tile0.height;
    int n = 1 + hy->n_tokens;
    int margin = 16, gap = 14, pad = 5;
    int label_lh = imcap_text_line_height(font, o->label_px);
    int cell_h = th + pad + label_lh;
    /* Columns for a roughly 4:3 page. */
    int cols = (int)ceil(sqrt(n * (double)cell_h / tw * 4.0 / 3.0));
    if (cols > n) cols = n;
    if (cols > 8) cols = 8;
    if (cols < 1) cols = 1;
    int rows = (n + cols - 1) / cols;
    int W = 2 * margin + cols * tw + (cols - 1) * gap;
    if (W < 320) W = 320;
    const char *caption = hy->text && *hy->text ? hy->text : "(empty caption)";
    n_title = imcap_text_wrap(font, o->title_px, caption, W - 2 * margin, &title);
    if (n_title < 0) {
        s = imcap_fail(err, IMCAP_E_NOMEM, "render: out of memory");
        goto done;
    }
    int title_lh = imcap_text_line_height(font, o->title_px);
    int top = margin + n_title * title_lh + label_lh + gap;
    int H = top + rows * cell_h + (rows - 1) * gap + margin;
    out->width = W;
    out->height = H;
    out->rgb = malloc((size_t)W * H * 3);
    if (!out->rgb) {
        s = imcap_fail(err, IMCAP_E_NOMEM, "render: out of memory for a %dx%d sheet", W, H);
        goto done;
    }
    memset(out->rgb, 255, (size_t)W * H * 3);
    int title_asc = imcap_text_ascent(font, o->title_px), label_asc = imcap_text_ascent(font, o->label_px);
    for (int i = 0; i < n_title; i++)
        imcap_text_draw(font, o->title_px, title[i], out, margin, margin + title_asc + i * title_lh, ink);
    char sub[256], dom[96] = "";
    if (r->in_domain == 0) snprintf(dom, sizeof dom, "UNRELIABLE: unlike the training images (domain score %.3g) \xC2\xB7 ", r->domain_score);
    else if (r->in_domain == 1) snprintf(dom, sizeof dom, "domain score %.2g \xC2\xB7 ", r->domain_score);
    snprintf(sub, sizeof sub, "%sscore %.3f (sum of log-probs) \xC2\xB7 %s \xC2\xB7 colour map %s, alpha %.2f", dom,
             hy->score, hy->finished ? "finished" : "unfinished", imcap_colormap_name(o->colormap),
             (double)o->alpha);
    /* imcap_text_fit is NULL only out of memory: a sheet with a label
     * missing must not be written as if whole */
    char *sub_fit = imcap_text_fit(font, o->label_px, sub, W - 2 * margin);
    if (!sub_fit) {
        s = imcap_fail(err, IMCAP_E_NOMEM, "render: out of memory for the contact sheet's labels");
        goto done;
    }
    imcap_text_draw(font, o->label_px, sub_fit, out, margin, margin + n_title * title_lh + label_asc, muted);
    free(sub_fit);
    size_t L = (size_t)r->grid_h * r->grid_w;
    for (int t = 0; t < n; t++) {
        int x = margin + (t % cols) * (tw + gap), y = top + (t / cols) * (cell_h + gap);
        const imcap_image *tile = &tile0;
        if (t > 0) {
            if ((s = imcap_render_overlay(&tile0, hy->attention + (size_t)(t - 1) * L, r->grid_h, r->grid_w, o, &ov,
                                          err)))
                goto done;
            tile = &ov;
        }
        blit(out, tile, x, y);
        frame(out, x, y, tw, th);
        int base = y + th + pad + label_asc;
        if (t == 0) {
            char *lab = imcap_text_fit(font, o->label_px, "original", tw);
            if (!lab) {
                s = imcap_fail(err, IMCAP_E_NOMEM, "render: out of memory for the contact sheet's labels");
                goto done;
            }
            imcap_text_draw(font, o->label_px, lab, out, x, base, muted);
            free(lab);
        } else {
            char prob[32];
            snprintf(prob, sizeof prob, "p=%.3f", exp((double)hy->logprobs[t - 1]));
            int pw = imcap_text_width(font, o->label_px, prob);
            int room = tw - pw - 8;
            if (room < tw / 3) { /* a narrow tile: the word matters more */
                room = tw;
                pw = -1;
            }
            char *word = imcap_text_fit(font, o->label_px, hy->words[t - 1] ? hy->words[t - 1] : "", room);
            if (!word) {
                s = imcap_fail(err, IMCAP_E_NOMEM, "render: out of memory for the contact sheet's labels");
                goto done;
            }
            imcap_text_draw(font, o->label_px, word, out, x, base, ink);
            free(word);
            if (pw >= 0) imcap_text_draw(font, o->label_px, prob, out, x + tw - pw, base, muted);
        }
        imcap_image_free(&ov);
    }
done:
    if (s) imcap_image_free(out);
    imcap_image_free(&ov);
    imcap_image_free(&tile0);
    imcap_text_lines_free(title, n_title > 0 ? n_title : 0);
    imcap_font_free(own);
    return s;
}
