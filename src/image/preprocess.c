/* preprocess.c — decoded image -> the encoder's input (spec, "Preprocessing"
 * 2 and 3). */
#include <stdlib.h>

#include "image/image.h"
#include "util/util.h"

/* The same float32 operations, in the same order, as torchvision's
 * ToTensor (uint8 -> float, then / 255) followed by Normalize
 * ((x - mean) / std): three correctly rounded single-precision steps. A
 * double-precision or reciprocal-multiply version differs in the last bit for
 * some pixel values. No multiply-add is involved, so FMA contraction cannot
 * change the result either. */
void imcap_normalise(const unsigned char *rgb, int S, const float mean[3], const float std[3], float *out) {
    size_t plane = (size_t)S * (size_t)S;
    for (int c = 0; c < 3; c++) {
        /* 256 values per channel, each by the formula (two divisions), then
         * looked up: the same bits at a fraction of the divisions */
        float m = mean[c], s = std[c], table[256];
        for (int v = 0; v < 256; v++) table[v] = ((float)v / 255.0f - m) / s;
        float *o = out + (size_t)c * plane;
        const unsigned char *px = rgb + c;
        for (size_t i = 0; i < plane; i++) o[i] = table[px[3 * i]];
    }
}

imcap_status imcap_image_to_input(const imcap_image *img, const imcap_config *cfg, float *out, imcap_error *err) {
    if (!img || !cfg || !out) return imcap_fail(err, IMCAP_E_ARG, "imcap_image_to_input: NULL argument");
    if (!img->rgb || img->width < 1 || img->height < 1)
        return imcap_fail(err, IMCAP_E_ARG, "imcap_image_to_input: empty image (%dx%d)", img->width, img->height);
    int S = cfg->image_size;
    if (S < 1) return imcap_fail(err, IMCAP_E_ARG, "imcap_image_to_input: invalid image_size %d", S);
    if (img->width == S && img->height == S) {
        imcap_normalise(img->rgb, S, cfg->mean, cfg->std, out);
        return IMCAP_OK;
    }
    unsigned char *tmp = malloc((size_t)S * (size_t)S * 3);
    if (!tmp) return imcap_fail(err, IMCAP_E_NOMEM, "imcap_image_to_input: out of memory for %dx%d pixels", S, S);
    imcap_status st = imcap_resize_rgb8(img->rgb, img->width, img->height, tmp, S, S, err);
    if (st == IMCAP_OK) imcap_normalise(tmp, S, cfg->mean, cfg->std, out);
    free(tmp);
    return st;
}
