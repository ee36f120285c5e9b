/* text.c — anti-aliased labels with stb_truetype (implementation in
 * libstb.so, so no STB_TRUETYPE_IMPLEMENTATION here). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <stb_truetype.h>
#include <utf8proc.h>

#include "render/render.h"

struct imcap_font {
    stbtt_fontinfo info;
    int ascent, descent, line_gap; /* font units */
};

static const char ellipsis[] = "\xE2\x80\xA6"; /* U+2026 */

imcap_status imcap_font_load_memory(const void *ttf, size_t n, const char *name, imcap_font **out,
                                    imcap_error *err) {
    *out = NULL;
    const unsigned char *d = ttf;
    /* stb_truetype trusts the tables it is given; the size check and the
     * offset lookup only reject what is obviously not a font. Fonts come from
     * the build, never from users. */
    if (!d || n < 12) return imcap_fail(err, IMCAP_E_FORMAT, "%s: not a TrueType font (%zu bytes)", name, n);
    int off = stbtt_GetFontOffsetForIndex(d, 0);
    if (off < 0 || (size_t)off >= n) return imcap_fail(err, IMCAP_E_FORMAT, "%s: not a TrueType font", name);
    imcap_font *f = calloc(1, sizeof *f);
    if (!f) return imcap_fail(err, IMCAP_E_NOMEM, "%s: out of memory", name);
    if (!stbtt_InitFont(&f->info, d, off)) {
        free(f);
        return imcap_fail(err, IMCAP_E_FORMAT, "%s: not a TrueType font (tables missing)", name);
    }
    stbtt_GetFontVMetrics(&f->info, &f->ascent, &f->descent, &f->line_gap);
    if (f->ascent - f->descent <= 0) {
        free(f);
        return imcap_fail(err, IMCAP_E_FORMAT, "%s: font has no vertical extent", name);
    }
    *out = f;
    return IMCAP_OK;
}

imcap_status imcap_font_load_default(imcap_font **out, imcap_error *err) {
    size_t n;
    const unsigned char *d = imcap_font_data(&n);
    return imcap_font_load_memory(d, n, "embedded font", out, err);
}

void imcap_font_free(imcap_font *f) { free(f); }

static float scale_of(const imcap_font *f, float px) { return stbtt_ScaleForPixelHeight(&f->info, px); }

int imcap_text_ascent(const imcap_font *f, float px) { return (int)ceilf(f->ascent * scale_of(f, px)); }

int imcap_text_line_height(const imcap_font *f, float px) {
    return (int)ceilf((f->ascent - f->descent + f->line_gap) * scale_of(f, px));
}

/* Next code point of s (n bytes left); invalid bytes are one U+FFFD each. */
static int next_cp(const unsigned char *s, size_t n, int *cp) {
    utf8proc_int32_t c;
    utf8proc_ssize_t k = utf8proc_iterate(s, (utf8proc_ssize_t)n, &c);
    if (k <= 0) {
        *cp = 0xFFFD;
        return 1;
    }
    *cp = c;
    return (int)k;
}

/* Walks the glyphs of s, calling draw (when non-NULL) at each pen position;
 * returns the advance width in pixels (unrounded). */
static float layout(const imcap_font *f, float px, const char *s, imcap_image *dst, int x, int y,
                    const unsigned char rgb[3]) {
    float sc = scale_of(f, px), pen = 0.0f;
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    size_t left = strlen((const char *)p);
    int prev = 0;
    while (left > 0) {
        int cp, k = next_cp(p, left, &cp);
        p += k, left -= (size_t)k;
        if (cp < 0x20) cp = 0xFFFD; /* controls have no glyph; make them visible */
        int g = stbtt_FindGlyphIndex(&f->info, cp);
        if (prev) pen += sc * stbtt_GetGlyphKernAdvance(&f->info, prev, g);
        int adv, lsb;
        stbtt_GetGlyphHMetrics(&f->info, g, &adv, &lsb);
        if (dst) {
            float gx = x + pen;
            int ix = (int)floorf(gx);
            int w, h, xo, yo;
            unsigned char *bm = stbtt_GetGlyphBitmapSubpixel(&f->info, sc, sc, gx - ix, 0.0f, g, &w, &h, &xo, &yo);
            if (bm) {
                for (int r = 0; r < h; r++) {
                    int yy = y + yo + r;
                    if (yy < 0 || yy >= dst->height) continue;
                    for (int c = 0; c < w; c++) {
                        int xx = ix + xo + c;
                        if (xx < 0 || xx >= dst->width) continue;
                        int a = bm[r * w + c];
                        if (!a) continue;
                        unsigned char *o = dst->rgb + 3 * ((size_t)yy * dst->width + xx);
                        for (int q = 0; q < 3; q++) o[q] = (unsigned char)((o[q] * (255 - a) + rgb[q] * a + 127) / 255);
                    }
                }
                stbtt_FreeBitmap(bm, NULL);
            }
        }
        pen += sc * adv;
        prev = g;
    }
    return pen;
}

int imcap_text_width(const imcap_font *f, float px, const char *utf8) {
    return (int)ceilf(layout(f, px, utf8, NULL, 0, 0, NULL));
}

void imcap_text_draw(const imcap_font *f, float px, const char *utf8, imcap_image *dst, int x, int y,
                     const unsigned char rgb[3]) {
    layout(f, px, utf8, dst, x, y, rgb);
}

char *imcap_text_fit(const imcap_font *f, float px, const char *utf8, int max_w) {
    const char *s = utf8 ? utf8 : "";
    size_t n = strlen(s);
    if (imcap_text_width(f, px, s) <= max_w) return strdup(s);
    char *buf = malloc(n + sizeof ellipsis);
    if (!buf) return NULL;
    /* Offsets of character starts, longest first, until prefix + "…" fits. */
    size_t best = 0, pos = 0;
    while (pos < n) {
        int cp;
        size_t k = (size_t)next_cp((const unsigned char *)s + pos, n - pos, &cp);
        memcpy(buf, s, pos + k);
        memcpy(buf + pos + k, ellipsis, sizeof ellipsis);
        if (imcap_text_width(f, px, buf) > max_w) break;
        pos += k;
        best = pos;
    }
    memcpy(buf, s, best);
    memcpy(buf + best, ellipsis, sizeof ellipsis);
    return buf;
}

void imcap_text_lines_free(char **lines, int n) {
    for (int i = 0; lines && i < n; i++) free(lines[i]);
    free(lines);
}

static int push_line(const imcap_font *f, float px, int max_w, char ***out, int *count, int *cap,
                     const char *line) {
    if (*count == *cap) {
        int nc = *cap ? *cap * 2 : 4;
        char **grown = realloc(*out, sizeof **out * nc);
        if (!grown) return -1;
        *out = grown, *cap = nc;
    }
    char *fitted = imcap_text_fit(f, px, line, max_w);
    if (!fitted) return -1;
    (*out)[(*count)++] = fitted;
    return 0;
}

int imcap_text_wrap(const imcap_font *f, float px, const char *utf8, int max_w, char ***lines) {
    const char *s = utf8 ? utf8 : "";
    size_t n = strlen(s), len = 0;
    int count = 0, cap = 0;
    char **out = NULL;
    char *line = malloc(n + 2), *trial = malloc(n + 2);
    if (!line || !trial) goto oom;
    line[0] = 0;
    for (size_t i = 0; i < n;) {
        while (i < n && s[i] == ' ') i++;
        size_t j = i;
        while (j < n && s[j] != ' ') j++;
        if (j == i) break;
        size_t tl = len;
        memcpy(trial, line, len);
        if (tl) trial[tl++] = ' ';
        memcpy(trial + tl, s + i, j - i);
        tl += j - i;
        trial[tl] = 0;
        if (len && imcap_text_width(f, px, trial) > max_w) {
            /* The word starts a new line; a single word wider than the
             * line is cut with "…" when its line is pushed. */
            if (push_line(f, px, max_w, &out, &count, &cap, line)) goto oom;
            memcpy(line, s + i, j - i);
            len = j - i;
            line[len] = 0;
        } else {
            memcpy(line, trial, tl + 1);
            len = tl;
        }
        i = j;
    }
    if (len && push_line(f, px, max_w, &out, &count, &cap, line)) goto oom;
    free(line);
    free(trial);
    *lines = out;
    return count;
oom:
    imcap_text_lines_free(out, count);
    free(line);
    free(trial);
    *lines = NULL;
    return -1;
}
