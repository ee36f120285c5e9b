/* image.h — decoding, limits, resizing and normalisation (internal part;
 * imcap_image_load and friends are public in imcap.h). */
#ifndef IMCAP_IMAGE_H
#define IMCAP_IMAGE_H
#include "imcap.h"
#include "model/model.h"
#include "util/util.h"

/* The format the first bytes announce ("JPEG", "PNG", "GIF", "BMP", "PSD",
 * "PNM", "PIC", "HDR"), or NULL. TGA has no magic number. */
const char *imcap_image_format(const unsigned char *d, size_t n);

/* Resizes 8-bit RGB exactly as PIL's Image.resize(..., BILINEAR): separable
 * triangle filter, support scaled by the downscale factor, pixel centres at
 * i + 0.5, horizontal pass then vertical, 22-bit fixed-point coefficients,
 * rounded 8-bit intermediate and result. dst is dw * dh * 3 bytes. */
imcap_status imcap_resize_rgb8(const unsigned char *src, int sw, int sh, unsigned char *dst, int dw, int dh,
                               imcap_error *err);

/* x = (p / 255 - mean[c]) / std[c], laid out [3, S, S]. rgb is S*S*3. */
void imcap_normalise(const unsigned char *rgb, int S, const float mean[3], const float std[3], float *out);

/* Decoded image -> the encoder's input [3, S, S] (resize when needed). */
imcap_status imcap_image_to_input(const imcap_image *img, const imcap_config *cfg, float *out, imcap_error *err);

/* Writes 8-bit RGB (channels 3) or RGBA (4) as PNG, atomically. */
imcap_status imcap_png_write(const char *path, const unsigned char *pix, int w, int h, int channels, imcap_error *err);
/* Appends rgb (8-bit RGB) as a JPEG of the given quality (1..100) to out;
 * 0, or -1 on bad arguments / out of memory. */
int imcap_jpeg_encode(const unsigned char *rgb, int w, int h, int quality, imcap_buf *out);
/* Encodes PNG into a malloc'd buffer (for inlining into HTML). */
unsigned char *imcap_png_encode(const unsigned char *pix, int w, int h, int channels, int *out_len);
/* The common PNG (8-bit grey, grey+alpha, RGB, RGBA; not interlaced; no
 * PLTE or tRNS) through libdeflate: 1 and *rgb (malloc'd, w*h*3, stb's exact
 * pixels), or 0 when stb must decode the file (any other kind, any problem).
 * The caller has checked the chunk list and the size limits. */
int imcap_png_decode_fast(const unsigned char *d, size_t n, int *w, int *h, unsigned char **rgb);

#endif
