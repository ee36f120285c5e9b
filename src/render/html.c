/* html.c — the offline attention viewer: one self-contained page per image.
 *
 * Everything the page shows comes from the library's renderer (overlays are
 * inlined as data: PNGs) and every piece of text is HTML-escaped. The script
 * holds no data: it reads the words and image URIs from the DOM, so no
 * untrusted string ever lands inside <script>. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image/image.h"
#include "render/render.h"

/* Longer side of the viewer's images at least (enlarged when smaller). */
#define VIEW_MIN_SIDE 384

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void buf_base64(imcap_buf *b, const unsigned char *d, size_t n) {
    char q[4];
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)d[i] << 16;
        if (i + 1 < n) v |= (unsigned)d[i + 1] << 8;
        if (i + 2 < n) v |= d[i + 2];
        q[0] = b64[(v >> 18) & 63];
        q[1] = b64[(v >> 12) & 63];
        q[2] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
        q[3] = i + 2 < n ? b64[v & 63] : '=';
        imcap_buf_append(b, q, 4);
    }
}

/* A data: URI for im. JPEG by default: a 512-px photo overlay is ~50 KB as
 * JPEG against ~400 KB as PNG, and a viewer holds one per word of every
 * hypothesis (the exact pixels are in the PNG files beside it). */
static imcap_status buf_image_uri(imcap_buf *b, const imcap_image *im, const imcap_render_options *o,
                                  imcap_error *err) {
    imcap_buf raw = {0};
    const char *mime = "image/png";
    if (o->html_jpeg_quality > 0) {
        mime = "image/jpeg";
        if (imcap_jpeg_encode(im->rgb, im->width, im->height, o->html_jpeg_quality, &raw) != 0) imcap_buf_free(&raw);
    } else {
        int len = 0;
        unsigned char *png = imcap_png_encode(im->rgb, im->width, im->height, 3, &len);
        if (png && len > 0) imcap_buf_append(&raw, (const char *)png, (size_t)len);
        free(png);
    }
    if (!raw.len) {
        imcap_buf_free(&raw);
        return imcap_fail(err, IMCAP_E_NOMEM, "render: cannot encode a %dx%d %s", im->width, im->height, mime);
    }
    imcap_buf_printf(b, "data:%s;base64,", mime);
    buf_base64(b, (const unsigned char *)raw.s, raw.len);
    imcap_buf_free(&raw);
    return IMCAP_OK;
}

static const char page_style[] =
    ":root{color-scheme:light dark;--acc:#2f6fdf}\n"
    "body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:1.2em auto;max-width:64em;"
    "padding:0 1em}\n"
    "h1{font-size:1.15em;font-weight:600;margin:.2em 0 .6em;overflow-wrap:anywhere}\n"
    "#stage{margin:0 0 .4em}\n"
    "#view{display:block;max-width:100%;height:auto;border-radius:4px;background:#8884}\n"
    "#status{min-height:1.5em;margin:.2em 0 .6em;overflow-wrap:anywhere}\n"
    ".legend{display:flex;align-items:center;gap:.5em;font-size:.8em;opacity:.8;margin-bottom:.8em}\n"
    ".legend span.bar{display:inline-block;width:10em;height:.8em;border-radius:2px}\n"
    ".hyp{margin:.5em 0;padding:.35em .6em;border-left:4px solid transparent;border-radius:3px}\n"
    ".hyp.sel{border-left-color:var(--acc);background:#2f6fdf14}\n"
    ".meta{font-size:.82em;opacity:.75;margin-bottom:.2em}\n"
    ".ood{background:#fde8e8;color:#8a1010;border:1px solid #e0a0a0;padding:.4em .6em;max-width:40em}\n"
    "button.w{font:inherit;margin:.12em .08em;padding:.15em .45em;border:1px solid #8888;border-radius:4px;"
    "background:transparent;color:inherit;cursor:pointer;overflow-wrap:anywhere;max-width:100%}\n"
    "button.w small{opacity:.6;margin-left:.35em;font-size:.72em}\n"
    "button.w.end{font-style:italic}\n"
    "button.w.on{background:var(--acc);border-color:var(--acc);color:#fff}\n"
    "h2{font-size:1em;margin:1.2em 0 .3em}\n"
    ".help{font-size:.8em;opacity:.7;margin-top:1.5em}\n"
    "kbd{border:1px solid #8888;border-radius:3px;padding:0 .3em;font-size:.9em}\n";

/* Hover, click or focus shows a word; arrows step through the current
 * caption (left of the first word is the original), up/down switch caption.
 * view's data-h / data-k say what is shown (used by tests). */
static const char page_script[] =
    "(function(){'use strict';\n"
    "var view=document.getElementById('view'),status=document.getElementById('status'),"
    "orig=document.getElementById('orig');\n"
    "var hyps=Array.prototype.slice.call(document.querySelectorAll('.hyp'));\n"
    "var cur={h:0,k:0};\n"
    "function words(h){return Array.prototype.slice.call(hyps[h].querySelectorAll('button.w'));}\n"
    "function show(h,k){\n"
    "  var ws=words(h);if(k<-1)k=-1;if(k>ws.length-1)k=ws.length-1;cur={h:h,k:k};\n"
    "  var b=k<0?orig:ws[k];\n"
    "  view.src=b.getAttribute('data-img');view.setAttribute('data-h',h);view.setAttribute('data-k',k);\n"
    "  Array.prototype.forEach.call(document.querySelectorAll('.on'),function(e){e.classList.remove('on');});\n"
    "  b.classList.add('on');\n"
    "  hyps.forEach(function(e,i){e.classList.toggle('sel',i===h);});\n"
    "  status.textContent=k<0?'original image':'word '+(k+1)+' of '+ws.length+': '+b.getAttribute('data-word')"
    "+'  (p = '+b.getAttribute('data-p')+')';\n"
    "  view.alt=status.textContent;\n"
    "}\n"
    "hyps.forEach(function(e,h){words(h).forEach(function(b,k){\n"
    "  var f=function(){show(h,k);};\n"
    "  b.addEventListener('mouseenter',f);b.addEventListener('click',f);b.addEventListener('focus',f);\n"
    "});});\n"
    "var fo=function(){show(cur.h,-1);};\n"
    "orig.addEventListener('mouseenter',fo);orig.addEventListener('click',fo);orig.addEventListener('focus',fo);\n"
    "document.addEventListener('keydown',function(e){\n"
    "  if(e.altKey||e.ctrlKey||e.metaKey)return;\n"
    "  if(e.key==='ArrowRight'){show(cur.h,cur.k+1);}\n"
    "  else if(e.key==='ArrowLeft'){show(cur.h,cur.k-1);}\n"
    "  else if(e.key==='ArrowDown'&&cur.h+1<hyps.length){show(cur.h+1,Math.max(cur.k,0));}\n"
    "  else if(e.key==='ArrowUp'&&cur.h>0){show(cur.h-1,Math.max(cur.k,0));}\n"
    "  else return;\n"
    "  e.preventDefault();\n"
    "});\n"
    "show(0,words(0).length?0:-1);\n"
    "})();\n";

static void buf_legend(imcap_buf *b, imcap_colormap cm) {
    const float *t = imcap_colormap_table(cm);
    imcap_buf_printf(b, "<div class=\"legend\">attention: low <span class=\"bar\" style=\"background:"
                        "linear-gradient(to right");
    for (int i = 0; i <= 16; i++) {
        int e = i * 255 / 16;
        imcap_buf_printf(b, ",rgb(%d,%d,%d)", (int)lrintf(t[3 * e] * 255), (int)lrintf(t[3 * e + 1] * 255),
                         (int)lrintf(t[3 * e + 2] * 255));
    }
    imcap_buf_printf(b, ")\"></span> high <span>(each word's map scaled to its maximum)</span></div>\n");
}

imcap_status imcap_render_html(const imcap_image *img, const imcap_result *r, const char *title,
                               const imcap_render_options *o, char **html, size_t *len, imcap_error *err) {
    *html = NULL;
    if (len) *len = 0;
    imcap_status s = imcap_render_options_check(o, err);
    for (int h = 0; !s && r && h < r->n_hyps; h++) s = imcap_render_check_result(r, h, err);
    if (!s) s = imcap_render_check_result(r, 0, err);
    if (s) return s;
    imcap_image base = {0}, ov = {0};
    imcap_buf b = {0};
    /* Small images (the synthetic scenes are 64 px) are enlarged before the
     * maps go over them, so the heat maps stay smooth on screen. */
    int side = img->width > img->height ? img->width : img->height;
    int fit = o->max_side > 0 && o->max_side < side ? o->max_side : side;
    if (fit < VIEW_MIN_SIDE) fit = VIEW_MIN_SIDE;
    if ((s = imcap_render_fit(img, fit, fit, fit > side, &base, err))) return s;
    int dw = base.width, dh = base.height;

    imcap_buf_printf(&b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                         "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
                         "img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'\">\n"
                         "<meta name=\"generator\" content=\"imcap %s\">\n<title>",
                     IMCAP_VERSION);
    imcap_buf_html(&b, title);
    imcap_buf_printf(&b, " \xE2\x80\x94 imcap attention</title>\n<style>\n%s</style>\n</head>\n<body>\n<h1>",
                     page_style);
    imcap_buf_html(&b, title);
    imcap_buf_printf(&b, "</h1>\n");
    if (r->in_domain == 0)
        imcap_buf_printf(&b, "<p class=\"ood\" role=\"alert\"><strong>Unreliable caption:</strong> this image is unlike "
                             "the images the model was trained on (domain score %.3g; at most 1 is typical).</p>\n",
                         r->domain_score);
    else if (r->in_domain == 1)
        imcap_buf_printf(&b, "<p class=\"meta\">domain score %.3g: a typical image for this model (at most 1)</p>\n",
                         r->domain_score);
    imcap_buf_printf(&b, "<div id=\"stage\"><img id=\"view\" width=\"%d\" height=\"%d\" alt=\"\" src=\"", dw,
                     dh);
    /* The first word's overlay (or the original) is the initial image so
     * the page shows something even with scripts off. */
    const imcap_hypothesis *h0 = &r->hyps[0];
    if (h0->n_tokens > 0) {
        if ((s = imcap_render_word(&base, r, 0, 0, o, &ov, err)) || (s = buf_image_uri(&b, &ov, o, err))) goto fail;
        imcap_image_free(&ov);
    } else if ((s = buf_image_uri(&b, &base, o, err))) {
        goto fail;
    }
    imcap_buf_printf(&b, "\"></div>\n<div id=\"status\" aria-live=\"polite\"></div>\n");
    buf_legend(&b, o->colormap);
    imcap_buf_printf(&b, "<div><button class=\"w orig\" id=\"orig\" data-word=\"original\" data-p=\"\" data-img=\"");
    if ((s = buf_image_uri(&b, &base, o, err))) goto fail;
    imcap_buf_printf(&b, "\">original image</button></div>\n");
    size_t L = (size_t)r->grid_h * r->grid_w;
    for (int h = 0; h < r->n_hyps; h++) {
        const imcap_hypothesis *hy = &r->hyps[h];
        if (h == 1) imcap_buf_printf(&b, "<h2>Alternative captions (beam search)</h2>\n");
        imcap_buf_printf(&b, "<div class=\"hyp\" data-h=\"%d\">\n<div class=\"meta\">#%d \xC2\xB7 score %.3f "
                             "(sum of log-probs) \xC2\xB7 %s \xC2\xB7 <span class=\"text\">",
                         h, h + 1, hy->score, hy->finished ? "finished" : "unfinished");
        imcap_buf_html(&b, hy->text ? hy->text : "");
        imcap_buf_printf(&b, "</span></div>\n<div class=\"words\">");
        for (int k = 0; k < hy->n_tokens; k++) {
            const char *w = hy->words[k] ? hy->words[k] : "";
            double p = exp((double)hy->logprobs[k]);
            int is_end = hy->tokens && hy->tokens[k] == IMCAP_TOK_END;
            imcap_buf_printf(&b, "<button class=\"w%s\" data-k=\"%d\" data-p=\"%.3f\" data-word=\"",
                             is_end ? " end" : "", k, p);
            imcap_buf_html(&b, w);
            imcap_buf_printf(&b, "\" title=\"p = %.3f\" data-img=\"", p);
            if ((s = imcap_render_overlay(&base, hy->attention + (size_t)k * L, r->grid_h, r->grid_w, o, &ov, err)) ||
                (s = buf_image_uri(&b, &ov, o, err)))
                goto fail;
            imcap_image_free(&ov);
            imcap_buf_printf(&b, "\">");
            imcap_buf_html(&b, w);
            imcap_buf_printf(&b, "<small>%.2f</small></button>", p);
        }
        imcap_buf_printf(&b, "</div>\n</div>\n");
    }
    imcap_buf_printf(&b, "<p class=\"help\">Hover over or click a word to see where the model looked while "
                         "emitting it. <kbd>\xE2\x86\x90</kbd> <kbd>\xE2\x86\x92</kbd> step through the words");
    if (r->n_hyps > 1) imcap_buf_printf(&b, ", <kbd>\xE2\x86\x91</kbd> <kbd>\xE2\x86\x93</kbd> switch caption");
    imcap_buf_printf(&b, ". Image %dx%d, attention grid %dx%d, colour map %s, alpha %.2f.</p>\n"
                         "<script>\n%s</script>\n</body>\n</html>\n",
                     r->image_width > 0 ? r->image_width : img->width,
                     r->image_height > 0 ? r->image_height : img->height, r->grid_h, r->grid_w,
                     imcap_colormap_name(o->colormap), (double)o->alpha, page_script);
    imcap_image_free(&base);
    if (b.oom) { /* a page cut short must not be written as if whole */
        imcap_buf_free(&b);
        return imcap_fail(err, IMCAP_E_NOMEM, "render: out of memory for the viewer page");
    }
    *html = b.s;
    if (len) *len = b.len;
    return IMCAP_OK;
fail:
    imcap_image_free(&ov);
    imcap_image_free(&base);
    imcap_buf_free(&b);
    return s;
}
