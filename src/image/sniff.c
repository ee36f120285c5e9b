/* sniff.c — "does this look like an image imcap decodes?" from the first
 * bytes alone, for callers that walk a directory or read stdin.
 *
 * Recognised: what imcap_image_format (load.c) names, but HDR: JPEG, PNG,
 * GIF, BMP, PSD, PNM (P1..P6) and PIC. TGA has no magic
 * number (its header starts with arbitrary ID-length / colour-map bytes), so
 * it cannot be sniffed reliably: callers accept *.tga by extension and
 * imcap_image_load decodes it (stb tries TGA last, after every format that has
 * a signature). Radiance HDR is deliberately not recognised: the library
 * refuses it (see load.c). */
#include <string.h>

#include "image/image.h"

int imcap_image_sniff(const void *head, size_t n) {
    if (!head) return 0;
    const char *f = imcap_image_format(head, n);
    return f != NULL && strcmp(f, "HDR") != 0;
}
