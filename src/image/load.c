/* load.c — decoding image files into 8-bit RGB (spec, "Preprocessing" 1).
 *
 * stb_image (Debian's libstb) decodes JPEG, PNG, BMP, GIF (first frame), TGA,
 * PSD and PIC; the common PNG (8-bit, no palette or tRNS, not interlaced)
 * goes through png_fast.c first (libdeflate; stb's exact pixels, and stb
 * for anything it does not take); PNM is decoded here (see below); Radiance HDR is refused (stb
 * would tone-map it, which the spec does not define). What stb does with
 * req_comp=3, checked against stb_image.h v2.27 and by tests/test_image.c:
 *   - grey (1 channel) is replicated to R=G=B (stbi__convert_format 1->3);
 *   - grey+alpha and RGBA lose their alpha: the conversions 2->3 and 4->3 copy
 *     the colour and drop alpha, nothing is composited. A PNG tRNS chunk only
 *     adds an alpha channel, which is then dropped the same way;
 *   - palettes are expanded to RGB (a tRNS palette alpha is dropped);
 *   - 16-bit PNG samples are reduced by stbi__convert_16_to_8, which keeps
 *     the high byte (v >> 8), not a rounded v / 257;
 *   - GIF: only the first frame; pixels it leaves transparent come out black
 *     (stb clears its canvas to 0 and alpha is then dropped);
 *   - gAMA / iCCP / EXIF orientation are ignored, as the spec says.
 * Cut files: stb reads bytes past the end of the buffer as zeros, so for
 * several formats it would return a partly black picture for a truncated
 * file. Before decoding we check that the file holds everything its header
 * announces: the PNG chunk list up to IEND (png_check), the GIF blocks up to
 * the end of the first frame, the pixel array of uncompressed BMP and of
 * TGA (raw or RLE). Raw PNM is checked by its own decoder. JPEG needs no
 * check of ours: stb 2.27 requires a marker after each scan's entropy-coded
 * data, so every cut JPEG (baseline or progressive, even one missing only its
 * final EOI) fails with "expected marker" (tests/test_image.c cuts fixtures
 * at every byte). Should another stb version decode such files with the
 * missing blocks filled in, that test fails rather than grey creeping in
 * silently. PNG CRCs are not verified (stb ignores them).
 *
 * Thread safety: stb keeps its failure reason in a thread-local (the Debian
 * build has STBI_THREAD_LOCAL), and we never call the global setters
 * (stbi_set_flip_vertically_on_load, stbi_set_unpremultiply_on_load,
 * stbi_convert_iphone_png_to_rgb). A program that sets them itself changes
 * what we decode; imcap's own code never does.
 *
 * Why PNM is decoded here: stb reads only P5/P6 and returns samples unscaled
 * when maxval is neither 255 nor 65535 (a maxval-15 image would come out
 * nearly black), and it cannot read the plain formats P1-P3 or P4 bitmaps.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <stb_image.h>

#include "image/image.h"
#include "util/util.h"

void imcap_image_free(imcap_image *img) {
    if (!img) return;
    free(img->rgb);
    img->rgb = NULL;
    img->width = img->height = 0;
}

/* Refuses dimensions before anything of that size is allocated. */
static imcap_status check_size(const char *name, long long w, long long h, imcap_error *err) {
    if (w < 1 || h < 1) return imcap_fail(err, IMCAP_E_IMAGE, "%s: invalid image size %lldx%lld", name, w, h);
    if (w > IMCAP_MAX_SIDE || h > IMCAP_MAX_SIDE)
        return imcap_fail(err, IMCAP_E_IMAGE, "%s: %lldx%lld exceeds the limit of %d pixels per side", name, w, h,
                          IMCAP_MAX_SIDE);
    if (w * h > IMCAP_MAX_PIXELS)
        return imcap_fail(err, IMCAP_E_IMAGE, "%s: %lldx%lld (%lld pixels) exceeds the limit of %lld pixels", name, w,
                          h, w * h, (long long)IMCAP_MAX_PIXELS);
    return IMCAP_OK;
}

static int is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* ---------------------------------------------------------------- PNM */

typedef struct {
    const unsigned char *p, *end;
} cursor;

static void pnm_skip(cursor *c) {
    for (;;) {
        while (c->p < c->end && is_space(*c->p)) c->p++;
        if (c->p < c->end && *c->p == '#') {
            while (c->p < c->end && *c->p != '\n' && *c->p != '\r') c->p++;
            continue;
        }
        return;
    }
}

/* An unsigned decimal after whitespace / comments: its value, -1 when there
 * is no number, -2 when it exceeds limit (its digits are consumed). */
static long pnm_number(cursor *c, long limit) {
    pnm_skip(c);
    if (c->p >= c->end || *c->p < '0' || *c->p > '9') return -1;
    long v = 0;
    int big = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        if (!big) {
            v = v * 10 + (*c->p - '0');
            if (v > limit) big = 1;
        }
        c->p++;
    }
    return big ? -2 : v;
}

/* maxval 255 is already 8-bit; 65535 follows the spec's 16-bit rule (high
 * byte); any other maxval is rescaled to 0..255, rounding half up. */
static unsigned char pnm_to8(unsigned v, unsigned maxval) {
    if (maxval == 255) return (unsigned char)v;
    if (maxval == 65535) return (unsigned char)(v >> 8);
    return (unsigned char)((v * 255u + maxval / 2) / maxval);
}

static imcap_status load_pnm(const unsigned char *data, size_t size, const char *name, imcap_image *out,
                             imcap_error *err) {
    cursor c = {data + 2, data + size};
    int kind = data[1] - '0';
    int plain = kind <= 3, bits = kind == 1 || kind == 4, ch = (kind == 3 || kind == 6) ? 3 : 1;
    long w = pnm_number(&c, 1000000000L), h = pnm_number(&c, 1000000000L);
    if (w == -1 || h == -1) return imcap_fail(err, IMCAP_E_IMAGE, "%s: PNM header: missing width or height", name);
    if (w == -2 || h == -2)
        return imcap_fail(err, IMCAP_E_IMAGE, "%s: PNM header: width or height exceeds the limit of %d pixels per side",
                          name, IMCAP_MAX_SIDE);
    imcap_status st = check_size(name, w, h, err);
    if (st) return st;
    long maxval = 1;
    if (!bits) {
        maxval = pnm_number(&c, 65535);
        if (maxval == -1) return imcap_fail(err, IMCAP_E_IMAGE, "%s: PNM header: missing maxval", name);
        if (maxval < 1 || maxval > 65535)
            return imcap_fail(err, IMCAP_E_IMAGE, "%s: PNM header: maxval must be 1..65535", name);
    }
    if (!plain) {
        /* Exactly one whitespace byte separates the header from raw data. */
        if (c.p >= c.end || !is_space(*c.p))
            return imcap_fail(err, IMCAP_E_IMAGE, "%s: PNM header: no whitespace before the pixel data", name);
        c.p++;
    }
    size_t npix = (size_t)w * (size_t)h, nsamp = npix * (size_t)ch;
    size_t avail = (size_t)(c.end - c.p);
    if (kind == 4 && avail < (size_t)((w + 7) / 8) * (size_t)h)
        return imcap_fail(err, IMCAP_E_IMAGE, "%s: truncated PBM data (%zu of %zu bytes)", name, avail,
                          (size_t)((w + 7) / 8) * (size_t)h);
    size_t bps = maxval > 255 ? 2 : 1;
    if ((kind == 5 || kind == 6) && avail / bps < nsamp)
        return imcap_fail(err, IMCAP_E_IMAGE, "%s: truncated PNM data (%zu of %zu bytes)", name, avail, nsamp * bps);

    unsigned char *rgb = malloc(npix * 3);
    if (!rgb) return imcap_fail(err, IMCAP_E_NOMEM, "%s: out of memory for %ldx%ld pixels", name, w, h);
    for (size_t i = 0; i < nsamp; i++) {
        unsigned v;
        if (kind == 1) {
            /* Plain PBM digits need no separators ("0110" is four samples). */
            pnm_skip(&c);
            if (c.p >= c.end || (*c.p != '0' && *c.p != '1')) {
                free(rgb);
                return imcap_fail(err, IMCAP_E_IMAGE, "%s: %s PBM data at sample %zu of %zu", name,
                                  c.p >= c.end ? "truncated" : "invalid", i, nsamp);
            }
            v = *c.p++ == '1' ? 0 : 255; /* 1 is black */
        } else if (kind == 4) {
            size_t y = i / (size_t)w, x = i % (size_t)w;
            v = (c.p[y * (size_t)((w + 7) / 8) + x / 8] >> (7 - x % 8)) & 1 ? 0 : 255;
        } else {
            long s;
            if (plain) {
                s = pnm_number(&c, 65535);
                if (s == -1) {
                    free(rgb);
                    return imcap_fail(err, IMCAP_E_IMAGE, "%s: %s PNM data at sample %zu of %zu", name,
                                      c.p >= c.end ? "truncated" : "invalid", i, nsamp);
                }
            } else {
                s = bps == 2 ? (long)c.p[2 * i] << 8 | c.p[2 * i + 1] : (long)c.p[i];
            }
            if (s < 0 || s > maxval) {
                free(rgb);
                return imcap_fail(err, IMCAP_E_IMAGE, "%s: PNM sample %zu exceeds maxval %ld", name, i, maxval);
            }
            v = pnm_to8((unsigned)s, (unsigned)maxval);
        }
        if (ch == 3) {
            rgb[i] = (unsigned char)v;
        } else {
            rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = (unsigned char)v;
        }
    }
    out->width = (int)w;
    out->height = (int)h;
    out->rgb = rgb;
    return IMCAP_OK;
}

/* ---------------------------------------------------------------- stb */

/* Walks the PNG chunk list up to IEND, so a cut file is refused even where
 * stb would return the rows it managed to inflate. */
static imcap_status png_check(const unsigned char *d, size_t n, const char *name, imcap_error *err) {
    size_t off = 8;
    for (;;) {
        if (n - off < 12) return imcap_fail(err, IMCAP_E_IMAGE, "%s: truncated PNG (no IEND chunk)", name);
        uint32_t len = be32(d + off);
        char type[5];
        memcpy(type, d + off + 4, 4);
        type[4] = 0;
        for (int i = 0; i < 4; i++)
            if (!((type[i] >= 'A' && type[i] <= 'Z') || (type[i] >= 'a' && type[i] <= 'z'))) type[i] = '?';
        if (len > 0x7fffffffu)
            return imcap_fail(err, IMCAP_E_IMAGE, "%s: corrupt PNG: chunk %s has length %lu", name, type,
                              (unsigned long)len);
        if (n - off - 12 < len)
            return imcap_fail(err, IMCAP_E_IMAGE, "%s: truncated PNG (file ends inside chunk %s)", name, type);
        if (memcmp(type, "IEND", 4) == 0) return IMCAP_OK;
        off += 12 + (size_t)len;
    }
}

static uint32_t le32(const unsigned char *p) {
    return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

/* The dimensions a header declares, read here rather than by stbi_info
 * because stb refuses large sizes itself with a bare "too large", and we
 * want the limit named. Returns 0 when not found (stb then judges). */
static int header_dims(const char *fmt, const unsigned char *d, size_t n, long long *w, long long *h) {
    if (!fmt) return 0;
    if (!strcmp(fmt, "PNG") && n >= 24 && be32(d + 8) == 13 && !memcmp(d + 12, "IHDR", 4)) {
        *w = be32(d + 16);
        *h = be32(d + 20);
        return 1;
    }
    if (!strcmp(fmt, "GIF") && n >= 10) {
        *w = d[6] | d[7] << 8;
        *h = d[8] | d[9] << 8;
        return 1;
    }
    if (!strcmp(fmt, "PSD") && n >= 22) {
        *h = be32(d + 14);
        *w = be32(d + 18);
        return 1;
    }
    if (!strcmp(fmt, "BMP") && n >= 26) {
        uint32_t hsz = le32(d + 14);
        if (hsz == 12) {
            *w = d[18] | d[19] << 8;
            *h = d[20] | d[21] << 8;
        } else {
            *w = (int32_t)le32(d + 18);
            *h = (int32_t)le32(d + 22);
            if (*h < 0) *h = -*h; /* negative height: rows stored top-down */
        }
        return 1;
    }
    if (!strcmp(fmt, "JPEG")) {
        /* Marker segments up to the first SOFn (or SOS: no frame header). */
        size_t off = 2;
        while (off + 4 <= n) {
            if (d[off] != 0xFF) return 0;
            unsigned m = d[off + 1];
            if (m == 0xFF) { off++; continue; } /* fill byte */
            if (m == 0x01 || (m >= 0xD0 && m <= 0xD8)) { off += 2; continue; }
            if (m == 0xDA || m == 0xD9) return 0;
            size_t len = (size_t)d[off + 2] << 8 | d[off + 3];
            if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC) {
                if (off + 9 > n) return 0;
                *h = d[off + 5] << 8 | d[off + 6];
                *w = d[off + 7] << 8 | d[off + 8];
                return *w > 0 && *h > 0; /* height 0 means "given later by DNL" */
            }
            if (len < 2) return 0;
            off += 2 + len;
        }
    }
    return 0;
}

static unsigned le16(const unsigned char *p) { return p[0] | (unsigned)p[1] << 8; }

static imcap_status truncated(const char *name, const char *fmt, imcap_error *err) {
    return imcap_fail(err, IMCAP_E_IMAGE, "%s: truncated %s image (the file ends before the data its header announces)",
                      name, fmt);
}

/* GIF: walks the blocks up to the end of the first frame (the only one
 * decoded); stb would return a partly black frame for a cut file. */
static imcap_status gif_check(const unsigned char *d, size_t n, const char *name, imcap_error *err) {
    size_t off = 13;
    if (n < off) return truncated(name, "GIF", err);
    if (d[10] & 0x80) off += (size_t)3 << ((d[10] & 7) + 1); /* global colour table */
    for (;;) {
        if (off >= n) return truncated(name, "GIF", err);
        unsigned b = d[off++];
        if (b == 0x2C) { /* image descriptor */
            if (n - off < 10) return truncated(name, "GIF", err);
            unsigned flags = d[off + 8];
            off += 9;
            if (flags & 0x80) off += (size_t)3 << ((flags & 7) + 1);
            off++; /* LZW minimum code size */
        } else if (b == 0x21) { /* extension: label, then sub-blocks */
            off++;
        } else {
            return IMCAP_OK; /* trailer or garbage: stb's decoder judges */
        }
        for (;;) { /* sub-blocks, up to the empty one */
            if (off >= n) return truncated(name, "GIF", err);
            unsigned len = d[off++];
            if (len == 0) break;
            off += len;
        }
        if (b == 0x2C) return IMCAP_OK;
    }
}

/* BMP: stb reads missing pixel rows as zeros. RLE and other compressions
 * are left to stb (which refuses what it cannot read). */
static imcap_status bmp_check(const unsigned char *d, size_t n, const char *name, imcap_error *err) {
    /* a file that ends inside its own headers (14 bytes, then the DIB
     * header whose size the sniffer read) is cut short, whatever stb makes
     * of the zeros it would read instead */
    if (n >= 18 && n < 14 + (size_t)le32(d + 14)) return truncated(name, "BMP", err);
    if (n < 30) return IMCAP_OK;
    uint32_t off = le32(d + 10), hsz = le32(d + 14), comp = 0;
    long long w, h;
    unsigned bpp;
    if (hsz == 12) {
        w = le16(d + 18);
        h = le16(d + 20);
        bpp = le16(d + 24);
    } else {
        if (n < 34) return IMCAP_OK;
        w = (int32_t)le32(d + 18);
        h = (int32_t)le32(d + 22);
        if (h < 0) h = -h;
        bpp = le16(d + 28);
        comp = le32(d + 30);
    }
    if ((comp != 0 && comp != 3 && comp != 6) || w < 1 || h < 1 || bpp < 1 || bpp > 32 || off < 14 + hsz)
        return IMCAP_OK;
    /* Rows are padded to 4 bytes; the last row's padding may be missing. */
    size_t row = ((size_t)w * bpp + 31) / 32 * 4;
    size_t need = (size_t)off + row * (size_t)(h - 1) + ((size_t)w * bpp + 7) / 8;
    if (n < need) return truncated(name, "BMP", err);
    return IMCAP_OK;
}

/* TGA (the header stbi_info accepted): stb reads missing pixels as zeros. */
static imcap_status tga_check(const unsigned char *d, size_t n, const char *name, imcap_error *err) {
    if (n < 18) return truncated(name, "TGA", err);
    unsigned type = d[2], bpp = d[16];
    size_t off = 18 + (size_t)d[0];
    if (d[1] == 1) off += (size_t)le16(d + 5) * ((d[7] + 7u) / 8);
    size_t px = (bpp + 7) / 8, npx = (size_t)le16(d + 12) * le16(d + 14);
    if (px == 0) return IMCAP_OK;
    if (type < 8) {
        if (n < off || (n - off) / px < npx) return truncated(name, "TGA", err);
        return IMCAP_OK;
    }
    for (size_t done = 0; done < npx;) { /* RLE packets */
        if (off >= n) return truncated(name, "TGA", err);
        unsigned hb = d[off++];
        size_t cnt = (hb & 0x7f) + 1, bytes = hb & 0x80 ? px : cnt * px;
        if (n - off < bytes) return truncated(name, "TGA", err);
        off += bytes;
        done += cnt;
    }
    return IMCAP_OK;
}

/* JPEG: walks every marker segment, through the entropy-coded data of each
 * scan (progressive files define Huffman tables between scans), to refuse a
 * Huffman table declaring more than 256 codes: stb 2.27 does not check that
 * and writes past its code tables (found with an instrumented stb). */
static imcap_status jpeg_check(const unsigned char *d, size_t n, const char *name, imcap_error *err) {
    size_t off = 2;
    while (off + 4 <= n) {
        if (d[off] != 0xFF) {
            off++; /* entropy-coded data: stuffed 0xFF 0x00 and RSTn are skipped below */
            continue;
        }
        unsigned m = d[off + 1];
        if (m == 0xFF) { off++; continue; }
        if (m == 0x00 || m == 0x01 || (m >= 0xD0 && m <= 0xD8)) { off += 2; continue; }
        if (m == 0xD9) return IMCAP_OK;
        size_t len = (size_t)d[off + 2] << 8 | d[off + 3];
        if (len < 2) return IMCAP_OK; /* stb reports it */
        if (m == 0xC4) {
            /* Mirrors stb's loop, which builds each table before checking
             * the segment length, and reads zeros past the end. */
            long rem = (long)len - 2;
            size_t p = off + 4;
            while (rem > 0 && p + 17 <= n) {
                unsigned codes = 0;
                for (int i = 1; i <= 16; i++) codes += d[p + i];
                if (codes > 256)
                    return imcap_fail(err, IMCAP_E_IMAGE,
                                      "%s: corrupt JPEG: a Huffman table declares %u codes (at most 256)", name, codes);
                rem -= 17 + (long)codes;
                p += 17 + codes;
            }
        }
        off += 2 + len;
    }
    return IMCAP_OK;
}

const char *imcap_image_format(const unsigned char *d, size_t n) {
    if (n >= 3 && memcmp(d, "\xFF\xD8\xFF", 3) == 0) return "JPEG";
    if (n >= 8 && memcmp(d, "\x89PNG\r\n\x1a\n", 8) == 0) return "PNG";
    if (n >= 6 && (memcmp(d, "GIF87a", 6) == 0 || memcmp(d, "GIF89a", 6) == 0)) return "GIF";
    /* "BM" and "8BPS" are weak alone (a text file may start so): also
     * require a known DIB header size (as stb's own BMP test) / PSD version 1.
     * Netpbm: 'P', the digit, then whitespace or a comment. */
    if (n >= 18 && d[0] == 'B' && d[1] == 'M') {
        uint32_t hsz = le32(d + 14);
        if (hsz == 12 || hsz == 40 || hsz == 56 || hsz == 108 || hsz == 124) return "BMP";
    }
    if (n >= 6 && memcmp(d, "8BPS\x00\x01", 6) == 0) return "PSD";
    if (n >= 3 && d[0] == 'P' && d[1] >= '1' && d[1] <= '6' && (is_space(d[2]) || d[2] == '#')) return "PNM";
    if (n >= 4 && memcmp(d, "S\x80\xF6\x34", 4) == 0) return "PIC";
    if ((n >= 11 && memcmp(d, "#?RADIANCE\n", 11) == 0) || (n >= 7 && memcmp(d, "#?RGBE\n", 7) == 0)) return "HDR";
    return NULL;
}

imcap_status imcap_image_load_memory(const void *data, size_t size, const char *name, imcap_image *out,
                                     imcap_error *err) {
    if (!name) name = "<memory>";
    if (!out) return imcap_fail(err, IMCAP_E_ARG, "%s: imcap_image_load_memory: out is NULL", name);
    memset(out, 0, sizeof *out);
    if (!data && size) return imcap_fail(err, IMCAP_E_ARG, "%s: imcap_image_load_memory: data is NULL", name);
    if (size == 0) return imcap_fail(err, IMCAP_E_IMAGE, "%s: empty file", name);
    const unsigned char *d = data;
    const char *fmt = imcap_image_format(d, size);
    if (fmt && strcmp(fmt, "HDR") == 0)
        return imcap_fail(err, IMCAP_E_IMAGE,
                          "%s: Radiance HDR images are not supported (the spec decodes 8- and 16-bit images only)",
                          name);
    if (fmt && strcmp(fmt, "PNM") == 0) return load_pnm(d, size, name, out, err);
    /* stb takes "P5" or "P6" followed by anything as PNM, and its reader goes
     * on when the pixels are missing (fuzz_image: "P56\n\n6653 722..." read
     * out of bounds inside stb). PNM is load_pnm's alone, which needs the white
     * space the format puts after its magic number. */
    if (!fmt && size >= 2 && d[0] == 'P' && d[1] >= '1' && d[1] <= '6')
        return imcap_fail(err, IMCAP_E_IMAGE, "%s: corrupt PNM header: no white space after the magic number P%c",
                          name, d[1]);
    long long hw, hh;
    if (header_dims(fmt, d, size, &hw, &hh)) {
        imcap_status st = check_size(name, hw, hh, err);
        if (st) return st;
    }
    if (size > INT_MAX) /* stb takes the length as an int */
        return imcap_fail(err, IMCAP_E_IMAGE, "%s: file too large to decode (%zu bytes)", name, size);
    if (fmt && strcmp(fmt, "PNG") == 0) {
        imcap_status st = png_check(d, size, name, err);
        if (st) return st;
        int fw, fh;
        unsigned char *fpx;
        if (imcap_png_decode_fast(d, size, &fw, &fh, &fpx)) { /* the sizes were checked above (IHDR) */
            out->width = fw, out->height = fh, out->rgb = fpx;
            return IMCAP_OK;
        }
    }
    if (fmt && strcmp(fmt, "JPEG") == 0) { /* before stbi_info, which parses the tables too */
        imcap_status st = jpeg_check(d, size, name, err);
        if (st) return st;
    }

    int w = 0, h = 0, comp = 0;
    if (!stbi_info_from_memory(d, (int)size, &w, &h, &comp)) {
        const char *why = stbi_failure_reason();
        if (!why) why = "unknown error";
        if (fmt) return imcap_fail(err, IMCAP_E_IMAGE, "%s: corrupt or unsupported %s image (stb: %s)", name, fmt, why);
        return imcap_fail(err, IMCAP_E_IMAGE, "%s: not a recognised image (stb: %s)", name, why);
    }
    imcap_status st = check_size(name, w, h, err);
    if (st) return st;
    /* stb reads past-the-end bytes as zeros: refuse cut files first. With no
     * signature, stbi_info accepted the file as TGA (the only format stb
     * tries that has none). */
    if (!fmt) st = tga_check(d, size, name, err);
    else if (!strcmp(fmt, "GIF")) st = gif_check(d, size, name, err);
    else if (!strcmp(fmt, "BMP")) st = bmp_check(d, size, name, err);
    if (st) return st;

    int w2 = 0, h2 = 0, c2 = 0;
    unsigned char *px = stbi_load_from_memory(d, (int)size, &w2, &h2, &c2, 3);
    if (!px) {
        const char *why = stbi_failure_reason();
        if (!why) why = "unknown error";
        if (strcmp(why, "outofmem") == 0)
            return imcap_fail(err, IMCAP_E_NOMEM, "%s: out of memory decoding %dx%d pixels", name, w, h);
        /* stb reports a cut JPEG as a missing marker after the scan data. */
        int cut_jpeg = fmt && !strcmp(fmt, "JPEG") && memcmp(d + size - 2, "\xFF\xD9", 2) != 0;
        if (!strcmp(why, "outofdata") || cut_jpeg)
            return imcap_fail(err, IMCAP_E_IMAGE, "%s: truncated or corrupt %s image (stb: %s)", name,
                              fmt ? fmt : "TGA", why);
        return imcap_fail(err, IMCAP_E_IMAGE, "%s: cannot decode %s image (stb: %s)", name, fmt ? fmt : "TGA", why);
    }
    /* stb's pixel buffer comes from STBI_MALLOC, which is malloc in libstb's
     * default build, so imcap_image_free can release it with free(). */
    if (w2 != w || h2 != h) {
        st = check_size(name, w2, h2, err);
        if (st) {
            stbi_image_free(px);
            return st;
        }
    }
    out->width = w2;
    out->height = h2;
    out->rgb = px;
    return IMCAP_OK;
}

imcap_status imcap_image_load(const char *path, imcap_image *out, imcap_error *err) {
    if (out) memset(out, 0, sizeof *out);
    if (!path || !out) return imcap_fail(err, IMCAP_E_ARG, "imcap_image_load: %s is NULL", path ? "out" : "path");
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        return imcap_fail(err, IMCAP_E_IO, "%s: is a directory, not an image file", path);
    unsigned char *data;
    size_t size;
    imcap_status st = imcap_read_file(path, &data, &size, err);
    if (st) return st;
    st = imcap_image_load_memory(data, size, path, out, err);
    free(data);
    return st;
}
