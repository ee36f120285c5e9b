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
    unsigned char *z = malloc(idat ? idat : 1), *raw = malloc(raw_size), *out = malloc((size_t)w * h * 3);
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
