/* png_fast.c — the common PNG decoded quickly: 8-bit grey, grey+alpha, RGB
 * or RGBA, not interlaced, with no PLTE or tRNS chunk. stb_image's inflate
 * takes about 130 us on a 64x64 scene here; libdeflate, which inflates the
 * whole stream at once, a fraction of that.
 *
 * The pixels are exactly stb's: PNG is lossless, and what stb does after
 * inflating (unfiltering, grey replicated, alpha dropped) is done the same
 * way. Anything else, and any problem at all (a bad filter byte, a stream
 * that is too short or too long, an Adler-32 mismatch stb would not have
 * checked, an unknown critical chunk), returns 0 so that stb decodes the
 * file and gives its own verdict: the fast path never changes what imcap
 * accepts or refuses, or the pixels it returns. */
#include <libdeflate.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "image/image.h"

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int paeth(int a, int b, int c) {
    int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
    return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/* spare bytes after the inflated rows, for paeth_row_px's 4-byte loads */
#define RAW_SLACK 1

#if defined(__SSE2__)
#include <emmintrin.h>
/* Paeth for 3- or 4-byte pixels, a pixel's channels at once in 16-bit lanes
 * (as libpng's SSE2 filters do): the left neighbour is the only serial
 * dependency, and it is one pixel, not one byte, per step. The predictor
 * and its ties are paeth()'s: a if |p-a| is smallest, else b if |p-b|
 * <= |p-c|, else c. */
/* four bytes, whatever the pixel size: a 3-byte pixel's fourth lane is
 * the next byte (raw has one spare byte after its last row, see
 * RAW_SLACK), never stored; loading exactly 3 bytes would stall on the
 * partial stores */
static __m128i px_load(const unsigned char *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return _mm_unpacklo_epi8(_mm_cvtsi32_si128((int)v), _mm_setzero_si128());
}
static __m128i abs16(__m128i x) {
    __m128i neg = _mm_cmplt_epi16(x, _mm_setzero_si128());
    return _mm_sub_epi16(_mm_xor_si128(x, neg), neg);
}
static __m128i pick(__m128i m, __m128i t, __m128i e) { return _mm_or_si128(_mm_and_si128(m, t), _mm_andnot_si128(m, e)); }
static void paeth_row_px(unsigned char *c, const unsigned char *prev, size_t stride, int bpp) {
    __m128i a = _mm_setzero_si128(), cc = _mm_setzero_si128();
    for (size_t i = 0; i < stride; i += (size_t)bpp) {
        __m128i b = px_load(prev + i), d = px_load(c + i);
        __m128i pa = _mm_sub_epi16(b, cc), pb = _mm_sub_epi16(a, cc);
        __m128i pc = abs16(_mm_add_epi16(pa, pb));
        pa = abs16(pa), pb = abs16(pb);
        __m128i small = _mm_min_epi16(pc, _mm_min_epi16(pa, pb));
        __m128i pred = pick(_mm_cmpeq_epi16(small, pa), a, pick(_mm_cmpeq_epi16(small, pb), b, cc));
        d = _mm_and_si128(_mm_add_epi16(d, pred), _mm_set1_epi16(0xff));
        uint32_t out = (uint32_t)_mm_cvtsi128_si32(_mm_packus_epi16(d, d));
        memcpy(c + i, &out, (size_t)bpp);
        a = d, cc = b;
    }
}
#endif

/* Undoes the filters in place: raw holds h rows of 1 + stride bytes; the
 * row before the first is zeros (PNG's rule). One loop per filter type. */
static int unfilter(unsigned char *raw, int h, size_t stride, int bpp) {
    unsigned char *prev = NULL;
    size_t k = (size_t)bpp;
    for (int y = 0; y < h; y++) {
        unsigned char *row = raw + (size_t)y * (stride + 1), *c = row + 1;
        switch (row[0]) {
        case 0: break;
        case 1:
            for (size_t i = k; i < stride; i++) c[i] = (unsigned char)(c[i] + c[i - k]);
            break;
        case 2:
            if (prev)
                for (size_t i = 0; i < stride; i++) c[i] = (unsigned char)(c[i] + prev[i]);
            break;
        case 3:
            if (prev) {
                for (size_t i = 0; i < k && i < stride; i++) c[i] = (unsigned char)(c[i] + (prev[i] >> 1));
                for (size_t i = k; i < stride; i++) c[i] = (unsigned char)(c[i] + ((c[i - k] + prev[i]) >> 1));
            } else {
                for (size_t i = k; i < stride; i++) c[i] = (unsigned char)(c[i] + (c[i - k] >> 1));
            }
            break;
        case 4:
            if (prev) {
#if defined(__SSE2__)
                if (k == 3 || k == 4) {
                    paeth_row_px(c, prev, stride, bpp);
                    break;
                }
#endif
                for (size_t i = 0; i < k && i < stride; i++) c[i] = (unsigned char)(c[i] + prev[i]);
                for (size_t i = k; i < stride; i++) c[i] = (unsigned char)(c[i] + paeth(c[i - k], prev[i], prev[i - k]));
            } else { /* paeth(a, 0, 0) = a */
                for (size_t i = k; i < stride; i++) c[i] = (unsigned char)(c[i] + c[i - k]);
            }
            break;
        default: return -1;
        }
        prev = c;
    }
    return 0;
}

int imcap_png_decode_fast(const unsigned char *d, size_t n, int *w_out, int *h_out, unsigned char **rgb) {
    *rgb = NULL;
    if (n < 33 || memcmp(d + 8, "\0\0\0\x0dIHDR", 8) != 0) return 0;
    uint32_t w = be32(d + 16), h = be32(d + 20);
    int depth = d[24], type = d[25], ch = type == 0 ? 1 : type == 2 ? 3 : type == 4 ? 2 : type == 6 ? 4 : 0;
    if (!w || !h || depth != 8 || !ch || d[26] || d[27] || d[28]) return 0;
    /* the IDAT data, concatenated; every other chunk ancillary (and not tRNS / CgBI) */
    size_t idat = 0, off = 33;
    for (;;) {
        if (n - off < 12) return 0;
        uint32_t len = be32(d + off);
        const unsigned char *t = d + off + 4;
        if (len > n - off - 12) return 0;
        if (!memcmp(t, "IEND", 4)) break;
        if (!memcmp(t, "IDAT", 4)) idat += len;
        else if (!(t[0] & 0x20) || !memcmp(t, "tRNS", 4) || !memcmp(t, "CgBI", 4)) return 0;
        off += 12 + (size_t)len;
    }
    size_t stride = (size_t)w * ch, raw_size = (stride + 1) * h;
    unsigned char *z = malloc(idat ? idat : 1), *raw = malloc(raw_size + RAW_SLACK), *out = malloc((size_t)w * h * 3);
    int ok = z && raw && out;
    size_t pos = 0;
    for (off = 33; ok;) {
        uint32_t len = be32(d + off);
        const unsigned char *t = d + off + 4;
        if (!memcmp(t, "IEND", 4)) break;
        if (!memcmp(t, "IDAT", 4)) memcpy(z + pos, t + 4, len), pos += len;
        off += 12 + (size_t)len;
    }
    struct libdeflate_decompressor *dec = ok ? libdeflate_alloc_decompressor() : NULL;
    if (raw) raw[raw_size] = 0; /* the slack byte: read, never used, but never uninitialised */
    ok = dec && libdeflate_zlib_decompress(dec, z, idat, raw, raw_size, NULL) == LIBDEFLATE_SUCCESS &&
         unfilter(raw, (int)h, stride, ch) == 0;
    if (dec) libdeflate_free_decompressor(dec);
    free(z);
    if (ok && ch == 3) {
        for (size_t y = 0; y < h; y++) memcpy(out + y * stride, raw + y * (stride + 1) + 1, stride);
    } else if (ok) {
        for (size_t y = 0; y < h; y++) {
            const unsigned char *s = raw + y * (stride + 1) + 1;
            unsigned char *o = out + y * (size_t)w * 3;
            for (size_t x = 0; x < w; x++, s += ch, o += 3) {
                if (ch <= 2) o[0] = o[1] = o[2] = s[0];
                else o[0] = s[0], o[1] = s[1], o[2] = s[2];
            }
        }
    }
    free(raw);
    if (!ok) {
        free(out);
        return 0;
    }
    *w_out = (int)w, *h_out = (int)h, *rgb = out;
    return 1;
}
