/* sniff.c — "does this look like an image imcap decodes?" from the first
 * bytes alone, for callers that walk a directory or read stdin.
 *
 * Recognised: JPEG, PNG, GIF, BMP, PSD and PNM (P1..P6). TGA has no magic
 * number (its header starts with arbitrary ID-length / colour-map bytes), so
 * it cannot be sniffed reliably: callers accept *.tga by extension and
 * imcap_image_load decodes it (stb tries TGA last, after every format that has
 * a signature). Radiance HDR is deliberately not recognised: the library
 * refuses it (see load.c). */
#include <string.h>

#include "image/image.h"

static int has_prefix(const unsigned char *h, size_t n, const char *magic, size_t len) {
    return n >= len && memcmp(h, magic, len) == 0;
}

static int is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

int imcap_image_sniff(const void *head, size_t n) {
    const unsigned char *h = head;
    if (!h) return 0;
    if (has_prefix(h, n, "\xFF\xD8\xFF", 3)) return 1;
    if (has_prefix(h, n, "\x89PNG\r\n\x1a\n", 8)) return 1;
    if (has_prefix(h, n, "GIF87a", 6) || has_prefix(h, n, "GIF89a", 6)) return 1;
    /* "BM" alone is too weak (a text file may start with it): also require a
     * known DIB header size at offset 14, as stb's own BMP test does. */
    if (n >= 18 && h[0] == 'B' && h[1] == 'M') {
        unsigned hsz = h[14] | (unsigned)h[15] << 8 | (unsigned)h[16] << 16 | (unsigned)h[17] << 24;
        if (hsz == 12 || hsz == 40 || hsz == 56 || hsz == 108 || hsz == 124) return 1;
    }
    if (has_prefix(h, n, "8BPS\x00\x01", 6)) return 1;
    /* Netpbm: 'P', the format digit, then whitespace or a comment (this keeps
     * words such as "P1X" in text files out). P7 (PAM) is not decoded. */
    if (n >= 3 && h[0] == 'P' && h[1] >= '1' && h[1] <= '6' && (is_space(h[2]) || h[2] == '#')) return 1;
    return 0;
}
