/* gallery.h — the offline gallery page of `imcap batch --html DIR`.
 *
 * DIR/index.html lists one card per image in the order they are added:
 * its thumbnail (DIR/<stem>_thumb.jpg, a relative link), caption, path,
 * size, score and error, linked to its attention viewer DIR/<stem>.html
 * (written by imcap_render_write with IMCAP_RENDER_HTML). Every piece of
 * text is HTML-escaped (imcap_buf_html); the page loads nothing from the
 * network and its small script (a text filter) holds no data.
 *
 * The page is streamed: each card is written to a temporary file as it is
 * added, so memory does not grow with the number of images, and the page
 * appears under its name only on commit. */
#ifndef IMCAP_GALLERY_H
#define IMCAP_GALLERY_H

#include "imcap.h"

#define IMCAP_GALLERY_THUMB_SUFFIX "_thumb.jpg"
#define IMCAP_GALLERY_THUMB_SIDE 192

typedef struct {
    const char *path;    /* the image's path as the records give it (any bytes) */
    const char *stem;    /* names its files; letters, digits, '-', '_', '.' only */
    const char *caption; /* NULL when there is none */
    const char *score;   /* as printed in the records; NULL when none */
    int width, height;   /* 0 when unknown */
    const char *error;   /* NULL when the image was captioned */
    int has_thumb;       /* <stem>_thumb.jpg exists in the gallery folder */
    int has_viewer;      /* <stem>.html exists in the gallery folder */
} imcap_gallery_item;

typedef struct imcap_gallery imcap_gallery;

/* Starts dir/index.html (dir must exist); title is shown as the heading. */
imcap_status imcap_gallery_open(const char *dir, const char *title, imcap_gallery **out, imcap_error *err);
imcap_status imcap_gallery_add(imcap_gallery *g, const imcap_gallery_item *it, imcap_error *err);
/* Finishes the page, renames it into place and frees g (also on failure). */
imcap_status imcap_gallery_commit(imcap_gallery *g, imcap_error *err);
/* Drops the unfinished page and frees g. NULL is a no-op. */
void imcap_gallery_abort(imcap_gallery *g);

/* Writes dir/<stem>_thumb.jpg: img scaled down (never up) to fit in
 * side x side, JPEG quality 85, atomically. */
imcap_status imcap_gallery_thumb(const imcap_image *img, const char *dir, const char *stem, int side,
                                 imcap_error *err);

#endif
