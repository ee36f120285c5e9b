/* gallery.c — the streamed, offline index page of `imcap batch --html`. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image/image.h"

#include "render/gallery.h"
#include "render/render.h"
#include "util/util.h"

/* Appends a string literal (its length is known at compile time). */
#define LIT(b, s) imcap_buf_append((b), s, sizeof s - 1)

struct imcap_gallery {
    imcap_atomic_file af;
    char *path;
    long n, n_failed;
};

static const char gallery_style[] =
    ":root{color-scheme:light dark}\n"
    "body{font:14px/1.4 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:1em auto;max-width:90em;"
    "padding:0 1em}\n"
    "h1{font-size:1.15em;font-weight:600;overflow-wrap:anywhere}\n"
    "#bar{display:flex;gap:1em;align-items:center;margin:.5em 0 1em}\n"
    "#q{font:inherit;padding:.25em .5em;min-width:18em}\n"
    "#grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:12px}\n"
    "figure.card{margin:0;padding:6px;border:1px solid #8884;border-radius:6px;overflow-wrap:anywhere}\n"
    "figure.card[hidden]{display:none}\n"
    "figure.card.err{border-color:#d33}\n"
    ".card .ph{display:block;width:100%;height:160px;background:#8882;border-radius:4px}\n"
    ".card img{display:block;width:100%;height:160px;object-fit:contain;background:#8882;border-radius:4px}\n"
    ".cap{display:block;font-weight:600;margin:.3em 0 .1em}\n"
    ".path,.meta{display:block;font-size:.82em;opacity:.75}\n"
    ".error{display:block;font-size:.85em;color:#d33}\n";

/* Hides the cards whose text does not contain the query; reads the DOM only. */
static const char gallery_script[] =
    "(function(){var q=document.getElementById('q');if(!q)return;q.hidden=false;\n"
    "q.addEventListener('input',function(){var s=q.value.toLowerCase();\n"
    "document.querySelectorAll('figure.card').forEach(function(c){\n"
    "c.hidden=s!==''&&c.textContent.toLowerCase().indexOf(s)<0;});});})();\n";

imcap_status imcap_gallery_open(const char *dir, const char *title, imcap_gallery **out, imcap_error *err) {
    *out = NULL;
    if (!dir || !*dir) return imcap_fail(err, IMCAP_E_ARG, "gallery: no output directory");
    imcap_gallery *g = calloc(1, sizeof *g);
    if (g) g->path = imcap_path_join(dir, "index.html", NULL);
    if (!g || !g->path) {
        free(g);
        return imcap_fail(err, IMCAP_E_NOMEM, "gallery: out of memory");
    }
    imcap_status s = imcap_atomic_open(&g->af, g->path, err);
    if (s) {
        free(g->path);
        free(g);
        return s;
    }
    imcap_buf b = {0};
    const char *t = title ? title : "imcap gallery";
    imcap_buf_printf(&b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                         "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\n<title>");
    imcap_buf_html(&b, t);
    imcap_buf_printf(&b, "</title>\n<style>\n%s</style>\n</head>\n<body>\n<h1>", gallery_style);
    imcap_buf_html(&b, t);
    imcap_buf_printf(&b, "</h1>\n<div id=\"bar\"><input id=\"q\" type=\"search\" placeholder=\"filter by caption, "
                         "path or error\" hidden></div>\n<div id=\"grid\">\n");
    int ok = !b.oom && fwrite(b.s, 1, b.len, g->af.f) == b.len;
    imcap_buf_free(&b);
    if (!ok) {
        imcap_atomic_abort(&g->af);
        free(g->path);
        free(g);
        return imcap_fail(err, IMCAP_E_IO, "gallery: cannot write the page's start (out of memory or a write error)");
    }
    *out = g;
    return IMCAP_OK;
}

imcap_status imcap_gallery_add(imcap_gallery *g, const imcap_gallery_item *it, imcap_error *err) {
    if (!g || !it || !it->path) return imcap_fail(err, IMCAP_E_ARG, "gallery: no item");
    imcap_buf b = {0};
    g->n++;
    if (it->error) g->n_failed++;
    const char *stem = it->stem && *it->stem ? it->stem : NULL;
    imcap_buf_printf(&b, "<figure class=\"card%s\">", it->error ? " err" : "");
    /* The thumbnail links to the viewer when both exist; the caption is the
     * image's alt text, so the card still reads without images. */
    if (stem && it->has_viewer) {
        LIT(&b, "<a href=\"");
        imcap_buf_html(&b, stem);
        LIT(&b, ".html\">");
    }
    if (stem && it->has_thumb) {
        LIT(&b, "<img loading=\"lazy\" src=\"");
        imcap_buf_html(&b, stem);
        imcap_buf_printf(&b, "%s\" alt=\"", IMCAP_GALLERY_THUMB_SUFFIX);
        imcap_buf_html(&b, it->caption ? it->caption : "");
        LIT(&b, "\">");
    } else {
        LIT(&b, "<span class=\"ph\"></span>");
    }
    if (stem && it->has_viewer) LIT(&b, "</a>");
    LIT(&b, "<figcaption>");
    if (it->caption) {
        LIT(&b, "<span class=\"cap\">");
        imcap_buf_html(&b, it->caption);
        LIT(&b, "</span>");
    }
    LIT(&b, "<span class=\"path\">");
    imcap_buf_html(&b, it->path);
    LIT(&b, "</span>");
    if ((it->width > 0 && it->height > 0) || it->score) {
        LIT(&b, "<span class=\"meta\">");
        if (it->width > 0 && it->height > 0) imcap_buf_printf(&b, "%d\xC3\x97%d", it->width, it->height);
        if (it->score) {
            if (it->width > 0) LIT(&b, " \xC2\xB7 score ");
            else LIT(&b, "score ");
            imcap_buf_html(&b, it->score);
        }
        if (stem && it->has_viewer) {
            LIT(&b, " \xC2\xB7 <a href=\"");
            imcap_buf_html(&b, stem);
            LIT(&b, ".html\">attention</a>");
        }
        LIT(&b, "</span>");
    }
    if (it->error) {
        LIT(&b, "<span class=\"error\">");
        imcap_buf_html(&b, it->error);
        LIT(&b, "</span>");
    }
    LIT(&b, "</figcaption></figure>\n");
    if (b.oom) {
        imcap_buf_free(&b);
        return imcap_fail(err, IMCAP_E_NOMEM, "%s: out of memory for a gallery entry", g->af.tmp);
    }
    size_t w = fwrite(b.s, 1, b.len, g->af.f);
    size_t len = b.len;
    imcap_buf_free(&b);
    if (w != len) return imcap_fail(err, IMCAP_E_IO, "%s: write failed: %s", g->af.tmp, strerror(errno));
    return IMCAP_OK;
}

imcap_status imcap_gallery_commit(imcap_gallery *g, imcap_error *err) {
    if (!g) return imcap_fail(err, IMCAP_E_ARG, "gallery: none open");
    fprintf(g->af.f, "</div>\n<p class=\"meta\">%ld image%s, %ld failed \xC2\xB7 written by imcap %s</p>\n<script>\n%s"
                     "</script>\n</body>\n</html>\n",
            g->n, g->n == 1 ? "" : "s", g->n_failed, IMCAP_VERSION, gallery_script);
    imcap_status s = imcap_atomic_commit(&g->af, err);
    free(g->path);
    free(g);
    return s;
}

void imcap_gallery_abort(imcap_gallery *g) {
    if (!g) return;
    imcap_atomic_abort(&g->af);
    free(g->path);
    free(g);
}

imcap_status imcap_gallery_thumb(const imcap_image *img, const char *dir, const char *stem, int side,
                                 imcap_error *err) {
    if (!img || !img->rgb || !dir || !*dir || !stem || !*stem || side < 1)
        return imcap_fail(err, IMCAP_E_ARG, "gallery: bad thumbnail arguments");
    imcap_image t;
    imcap_status s = imcap_render_fit(img, side, side, 0, &t, err);
    if (s) return s;
    imcap_buf jpg = {0};
    if (imcap_jpeg_encode(t.rgb, t.width, t.height, 85, &jpg) != 0) {
        imcap_buf_free(&jpg);
        imcap_image_free(&t);
        return imcap_fail(err, IMCAP_E_NOMEM, "gallery: cannot encode a %dx%d thumbnail", t.width, t.height);
    }
    imcap_image_free(&t);
    char *path = imcap_path_join(dir, stem, IMCAP_GALLERY_THUMB_SUFFIX);
    s = path ? imcap_write_file_atomic(path, jpg.s, jpg.len, err) : imcap_fail(err, IMCAP_E_NOMEM, "gallery: out of memory");
    free(path);
    imcap_buf_free(&jpg);
    return s;
}
