/* png.c — PNG and JPEG output (attention overlays, viewer pages, gallery
 * thumbnails) through stb_image_write; files written atomically. */
#include <limits.h>
#include <stdlib.h>

#include <stb_image_write.h>

#include "image/image.h"
#include "util/util.h"

/* libstb exports this encoder, but stb_image_write.h declares it only inside
 * its implementation section (which must not be compiled here: the
 * implementation lives in libstb.so). The signature is that of v1.16. */
unsigned char *stbi_write_png_to_mem(const unsigned char *pixels, int stride_bytes, int x, int y, int n, int *out_len);

/* stb computes (w * channels + 1) * h in int. */
static int png_args_ok(const unsigned char *pix, int w, int h, int channels) {
    return pix && w >= 1 && h >= 1 && (channels == 3 || channels == 4) &&
           (long long)(w * (long long)channels + 1) * h < INT_MAX / 2;
}

/* The buffer comes from STBIW_MALLOC, malloc in libstb's default build, so
 * the caller releases it with free(). stb reads two globals
 * (stbi_write_png_compression_level, stbi_write_force_png_filter) that imcap
 * never sets. */
unsigned char *imcap_png_encode(const unsigned char *pix, int w, int h, int channels, int *out_len) {
    if (out_len) *out_len = 0;
    if (!out_len || !png_args_ok(pix, w, h, channels)) return NULL;
    return stbi_write_png_to_mem(pix, w * channels, w, h, channels, out_len);
}

imcap_status imcap_png_write(const char *path, const unsigned char *pix, int w, int h, int channels, imcap_error *err) {
    if (!path) return imcap_fail(err, IMCAP_E_ARG, "imcap_png_write: path is NULL");
    if (!png_args_ok(pix, w, h, channels))
        return imcap_fail(err, IMCAP_E_ARG, "%s: cannot write a %dx%d PNG with %d channels%s", path, w, h, channels,
                          pix ? "" : " (no pixels)");
    int len = 0;
    unsigned char *png = imcap_png_encode(pix, w, h, channels, &len);
    if (!png) return imcap_fail(err, IMCAP_E_NOMEM, "%s: out of memory encoding a %dx%d PNG", path, w, h);
    imcap_status st = imcap_write_file_atomic(path, png, (size_t)len, err);
    free(png);
    return st;
}

static void jpeg_sink(void *ctx, void *data, int n) {
    if (n > 0) imcap_buf_append(ctx, data, (size_t)n);
}

int imcap_jpeg_encode(const unsigned char *rgb, int w, int h, int quality, imcap_buf *out) {
    if (!rgb || w < 1 || h < 1 || quality < 1 || quality > 100) return -1;
    size_t before = out->len;
    if (!stbi_write_jpg_to_func(jpeg_sink, out, w, h, 3, rgb, quality) || out->oom || out->len == before) return -1;
    return 0;
}
