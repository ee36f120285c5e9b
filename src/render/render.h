/* render.h — attention overlays, contact sheets and the offline HTML viewer.
 *
 * One renderer, driven by an imcap_result, shared by `imcap attend` and
 * `imcap batch`. Every function here is pure computation on caller-owned
 * buffers except imcap_render_write, which writes files atomically.
 *
 * How an overlay is made from the attention map of word k
 * (r->hyps[h].attention + k * grid_h * grid_w):
 *   1. the map is divided by its maximum, so the most attended cell is 1.0
 *      and every map uses the whole colour range (an all-zero or non-finite
 *      map becomes all zeros);
 *   2. it is upsampled bilinearly to the image size, the centre of cell
 *      (r, c) sitting at ((c + 0.5) / grid_w, (r + 0.5) / grid_h) of the
 *      image, clamped at the borders (smooth, not blocky);
 *   3. each value t goes through the colour map (matplotlib's lookup:
 *      entry floor(t * 256), clamped to 0..255);
 *   4. pixel = round((1 - alpha) * image + alpha * 255 * entry), per
 *      channel, with the table entry in [0, 1] (not pre-rounded to 8 bits).
 */
#ifndef IMCAP_RENDER_H
#define IMCAP_RENDER_H

#include <stddef.h>

#include "imcap.h"
#include "util/util.h"

/* ---------------------------------------------------------------- colour maps */

/* "viridis", "inferno", "jet" -> *out; returns 0, or -1 for an unknown name. */
int imcap_colormap_parse(const char *name, imcap_colormap *out);
const char *imcap_colormap_name(imcap_colormap c);
/* The 256 x 3 table, components in [0, 1]: matplotlib's published data for
 * viridis and inferno, matplotlib's segment data sampled at i/255 for jet. */
const float *imcap_colormap_table(imcap_colormap c);
/* The table entry for t: floor(t * 256) clamped to [0, 255] (NaN -> 0). */
int imcap_colormap_index(float t);
/* The entry for t as 8-bit RGB (each component round(v * 255)). */
void imcap_colormap_rgb8(imcap_colormap c, float t, unsigned char rgb[3]);

/* ---------------------------------------------------------------- maps */

/* out[i] = map[i] / max(map); returns that max. Negative and non-finite
 * values count as 0; when nothing is positive, out is all zeros. out may
 * equal map. */
float imcap_render_normalise(const float *map, int n, float *out);

/* Bilinear upsampling of a gh x gw grid to w x h (row-major): output pixel
 * (x, y) samples the grid at u = (x + 0.5) * gw / w - 0.5,
 * v = (y + 0.5) * gh / h - 0.5, clamped to [0, gw - 1] x [0, gh - 1].
 * Returns 0, or -1 for empty sizes or when out of memory. */
int imcap_render_upsample(const float *grid, int gh, int gw, float *out, int w, int h);

/* ---------------------------------------------------------------- options */

/* imcap_render_options and imcap_render_options_default: imcap.h */
/* Checks ranges; fills err naming the bad field. */
imcap_status imcap_render_options_check(const imcap_render_options *o, imcap_error *err);

/* ---------------------------------------------------------------- images */

/* A copy of img scaled (PIL-style bilinear, imcap_resize_rgb8) to fit in
 * max_w x max_h keeping its aspect ratio; never larger than the original
 * unless allow_upscale. out->rgb is malloc'd (imcap_image_free). */
imcap_status imcap_render_fit(const imcap_image *img, int max_w, int max_h, int allow_upscale, imcap_image *out,
                              imcap_error *err);

/* out = the overlay of map (gh x gw) over img, same size as img (see the top
 * of this file). out->rgb is malloc'd. */
imcap_status imcap_render_overlay(const imcap_image *img, const float *map, int gh, int gw,
                                  const imcap_render_options *o, imcap_image *out, imcap_error *err);

/* The overlay of word k of hypothesis h of r over img. */
imcap_status imcap_render_word(const imcap_image *img, const imcap_result *r, int h, int k,
                               const imcap_render_options *o, imcap_image *out, imcap_error *err);

/* ---------------------------------------------------------------- text */

typedef struct imcap_font imcap_font;

/* The font compiled into the library (DejaVu Sans unless -Dfont=... at
 * configure time). */
imcap_status imcap_font_load_default(imcap_font **out, imcap_error *err);
/* A TrueType font from memory; ttf must outlive the font. */
imcap_status imcap_font_load_memory(const void *ttf, size_t n, const char *name, imcap_font **out,
                                    imcap_error *err);
void imcap_font_free(imcap_font *f);

/* Metrics at a text height of px pixels (ascent - descent == px). */
int imcap_text_ascent(const imcap_font *f, float px);
int imcap_text_line_height(const imcap_font *f, float px);
/* Advance width of UTF-8 text (invalid bytes count as U+FFFD). */
int imcap_text_width(const imcap_font *f, float px, const char *utf8);
/* Draws text with its baseline at y, starting at x, blended (anti-aliased)
 * in colour rgb; clipped to dst. */
void imcap_text_draw(const imcap_font *f, float px, const char *utf8, imcap_image *dst, int x, int y,
                     const unsigned char rgb[3]);
/* text, or its longest prefix of whole characters followed by "…", that is
 * at most max_w wide (malloc'd); NULL only when out of memory. */
char *imcap_text_fit(const imcap_font *f, float px, const char *utf8, int max_w);
/* Greedy word wrap at spaces into lines at most max_w wide (a word wider
 * than max_w is cut with "…"). Returns the line count; *lines is a malloc'd
 * array of malloc'd strings (imcap_text_lines_free). */
int imcap_text_wrap(const imcap_font *f, float px, const char *utf8, int max_w, char ***lines);
void imcap_text_lines_free(char **lines, int n);

/* The embedded font file (font_blob.c, generated at build time). */
const unsigned char *imcap_font_data(size_t *size);

/* ---------------------------------------------------------------- sheet */

/* The contact sheet of hypothesis h: the caption as the title, then a grid
 * of tiles — the original image, then one overlay per token (the final
 * <end> included) labelled "word" and "p=0.873" (exp of its log-prob).
 * font may be NULL (the embedded font is loaded). out->rgb is malloc'd. */
imcap_status imcap_render_sheet(const imcap_image *img, const imcap_result *r, int h, const imcap_font *font,
                                const imcap_render_options *o, imcap_image *out, imcap_error *err);

/* ---------------------------------------------------------------- HTML */

/* Appends s HTML-escaped for text and for quoted attribute values:
 * & < > " ' become entities; bytes that are not valid UTF-8 and C0 control
 * characters other than tab, LF and CR become U+FFFD. */
void imcap_buf_html(imcap_buf *b, const char *s);

/* The self-contained viewer page for one image (malloc'd, NUL-terminated,
 * *len without the NUL): every overlay of every hypothesis inlined as a
 * data: URI (JPEG or PNG, see html_jpeg_quality), nothing from the network. title is shown as the
 * heading (typically the image's file name; any bytes allowed). */
imcap_status imcap_render_html(const imcap_image *img, const imcap_result *r, const char *title,
                               const imcap_render_options *o, char **html, size_t *len, imcap_error *err);

/* ---------------------------------------------------------------- names */

/* File names built from words and image names use a safe subset:
 *   - ASCII letters, digits, '-', '_' and '.' are kept; every other byte
 *     (space, '/', '\\', quotes, '<', control and non-ASCII bytes...)
 *     becomes '_';
 *   - runs of '_' collapse to one;
 *   - leading and trailing '_', '.' and '-' are removed (no hidden files,
 *     no "." / "..", nothing that looks like an option);
 *   - the result is cut to IMCAP_NAME_MAX bytes (and trimmed again);
 *   - an empty result becomes fallback.
 * Writes at most cap bytes including the NUL; returns strlen(out). */
#define IMCAP_NAME_MAX 48
size_t imcap_sanitize_name(const char *in, const char *fallback, char *out, size_t cap);
/* imcap_render_stem: imcap.h */

/* ---------------------------------------------------------------- files */

/* imcap_render_write and its IMCAP_RENDER_* flags: imcap.h */

/* "_<NN>_<word>.png": what follows the stem in the name of overlay k
 * (cap >= IMCAP_NAME_MAX + 32 always suffices). The sheet is
 * "<stem>_sheet.png" and the viewer "<stem>.html". */
void imcap_render_overlay_suffix(int k, const char *word, char *out, size_t cap);

/* Checks that hypothesis h of r exists and has what rendering needs. */
imcap_status imcap_render_check_result(const imcap_result *r, int h, imcap_error *err);

#endif
