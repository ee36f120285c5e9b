/* resize.c — 8-bit RGB resize that reproduces PIL's
 * Image.resize(size, Image.BILINEAR) bit for bit (spec, "Preprocessing" 2).
 *
 * Follows Pillow's src/libImaging/Resample.c (precompute_coeffs,
 * normalize_coeffs_8bpc, ImagingResampleHorizontal/Vertical_8bpc,
 * ImagingResampleInner), including its exact floating-point expressions and
 * their order, because a different but "equivalent" formula changes the
 * rounding of some coefficients and hence of some pixels:
 *   - scale = in / out, filterscale = max(scale, 1), support = 1 * filterscale;
 *   - output pixel xx has centre (xx + 0.5) * scale and reads input pixels
 *     xmin = (int)(centre - support + 0.5) (>= 0) up to
 *     (int)(centre + support + 0.5) (<= in), exclusive, i.e. edges clamp by
 *     truncating the window, not by repeating pixels;
 *   - weights triangle((x + xmin - centre + 0.5) / filterscale), divided by
 *     their sum in double, then fixed point with 22 fractional bits, rounded
 *     half away from zero;
 *   - horizontal pass first (only when the width changes, and only over the
 *     rows the vertical pass reads), rounded to 8 bits, then the vertical pass
 *     (only when the height changes); each sum starts at 1 << 21 (rounding)
 *     and is clipped to 0..255 after >> 22.
 * Every weight of the triangle filter is >= 0, so sums are never negative and
 * stay far below 2^31 (255 * 2^22 plus rounding slack). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "image/image.h"
#include "util/util.h"

#define PRECISION_BITS (32 - 8 - 2)

typedef struct {
    int ksize;       /* coefficients per output pixel (upper bound) */
    int *bounds;     /* per output pixel: first input index, count */
    int32_t *k;      /* out * ksize fixed-point weights */
} coeffs;

static double triangle(double x) {
    if (x < 0.0) x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

static void coeffs_free(coeffs *c) {
    free(c->bounds);
    free(c->k);
    c->bounds = NULL;
    c->k = NULL;
}

static imcap_status coeffs_build(int in, int out, coeffs *c, imcap_error *err) {
    memset(c, 0, sizeof *c);
    /* PIL passes the box as floats and computes (double)(in1 - in0) / out. */
    double scale = (double)(float)in / out;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 1.0 * filterscale;
    c->ksize = (int)ceil(support) * 2 + 1; /* <= 2 * IMCAP_MAX_SIDE + 1 */
    size_t ksize = (size_t)c->ksize;
    double *w = malloc(ksize * sizeof *w);
    c->k = calloc((size_t)out * ksize, sizeof *c->k);
    c->bounds = malloc((size_t)out * 2 * sizeof *c->bounds);
    if (!w || !c->k || !c->bounds) {
        free(w);
        coeffs_free(c);
        return imcap_fail(err, IMCAP_E_NOMEM, "resize: out of memory for %d -> %d coefficients", in, out);
    }
    for (int xx = 0; xx < out; xx++) {
        double center = (xx + 0.5) * scale;
        double ww = 0.0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in) xmax = in;
        xmax -= xmin;
        for (int x = 0; x < xmax; x++) {
            w[x] = triangle((x + xmin - center + 0.5) * ss);
            ww += w[x];
        }
        int32_t *k = c->k + (size_t)xx * ksize;
        for (int x = 0; x < xmax; x++) {
            double v = ww != 0.0 ? w[x] / ww : w[x];
            k[x] = v < 0 ? (int32_t)(-0.5 + v * (1 << PRECISION_BITS)) : (int32_t)(0.5 + v * (1 << PRECISION_BITS));
        }
        c->bounds[2 * xx] = xmin;
        c->bounds[2 * xx + 1] = xmax;
    }
    free(w);
    return IMCAP_OK;
}

static unsigned char clip8(int32_t ss) {
    if (ss < 0) return 0;
    int32_t v = ss >> PRECISION_BITS;
    return (unsigned char)(v > 255 ? 255 : v);
}

/* dst rows 0..rows-1 come from src rows row0..row0+rows-1. */
static void pass_horizontal(const unsigned char *src, int sw, int row0, int rows, unsigned char *dst, int dw,
                            const coeffs *c) {
    for (int yy = 0; yy < rows; yy++) {
        const unsigned char *in = src + (size_t)(yy + row0) * (size_t)sw * 3;
        unsigned char *o = dst + (size_t)yy * (size_t)dw * 3;
        for (int xx = 0; xx < dw; xx++) {
            int xmin = c->bounds[2 * xx], xmax = c->bounds[2 * xx + 1];
            const int32_t *k = c->k + (size_t)xx * (size_t)c->ksize;
            int32_t s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
            for (int x = 0; x < xmax; x++) {
                const unsigned char *p = in + (size_t)(x + xmin) * 3;
                s0 += p[0] * k[x];
                s1 += p[1] * k[x];
                s2 += p[2] * k[x];
            }
            o[3 * xx] = clip8(s0);
            o[3 * xx + 1] = clip8(s1);
            o[3 * xx + 2] = clip8(s2);
        }
    }
}

/* src rows are relative: bounds were shifted by the first row it holds. */
static void pass_vertical(const unsigned char *src, int w, int row0, unsigned char *dst, int dh, const coeffs *c) {
    size_t stride = (size_t)w * 3;
    for (int yy = 0; yy < dh; yy++) {
        int ymin = c->bounds[2 * yy] - row0, ymax = c->bounds[2 * yy + 1];
        const int32_t *k = c->k + (size_t)yy * (size_t)c->ksize;
        unsigned char *o = dst + (size_t)yy * stride;
        for (size_t i = 0; i < stride; i++) {
            int32_t s = 1 << (PRECISION_BITS - 1);
            for (int y = 0; y < ymax; y++) s += src[(size_t)(y + ymin) * stride + i] * k[y];
            o[i] = clip8(s);
        }
    }
}

imcap_status imcap_resize_rgb8(const unsigned char *src, int sw, int sh, unsigned char *dst, int dw, int dh,
                               imcap_error *err) {
    if (!src || !dst) return imcap_fail(err, IMCAP_E_ARG, "resize: %s pixel buffer is NULL", src ? "destination" : "source");
    if (sw < 1 || sh < 1 || dw < 1 || dh < 1)
        return imcap_fail(err, IMCAP_E_ARG, "resize: invalid size %dx%d -> %dx%d (sides must be >= 1)", sw, sh, dw, dh);
    /* The same limits as decoded images: nothing larger can reach here from a
     * file, and they keep every size computation far from overflow. */
    if (sw > IMCAP_MAX_SIDE || sh > IMCAP_MAX_SIDE || dw > IMCAP_MAX_SIDE || dh > IMCAP_MAX_SIDE ||
        (long long)sw * sh > IMCAP_MAX_PIXELS || (long long)dw * dh > IMCAP_MAX_PIXELS)
        return imcap_fail(err, IMCAP_E_ARG, "resize: %dx%d -> %dx%d exceeds the image limits (%d per side, %lld pixels)",
                          sw, sh, dw, dh, IMCAP_MAX_SIDE, (long long)IMCAP_MAX_PIXELS);
    int need_h = dw != sw, need_v = dh != sh;
    if (!need_h && !need_v) {
        memmove(dst, src, (size_t)sw * (size_t)sh * 3);
        return IMCAP_OK;
    }

    coeffs cv = {0}, ch = {0};
    imcap_status st = coeffs_build(sh, dh, &cv, err);
    if (st) return st;
    if (!need_h) {
        pass_vertical(src, sw, 0, dst, dh, &cv);
        coeffs_free(&cv);
        return IMCAP_OK;
    }
    st = coeffs_build(sw, dw, &ch, err);
    if (st) {
        coeffs_free(&cv);
        return st;
    }
    if (!need_v) {
        pass_horizontal(src, sw, 0, sh, dst, dw, &ch);
        coeffs_free(&ch);
        coeffs_free(&cv);
        return IMCAP_OK;
    }
    /* Only the source rows the vertical pass reads go through the first pass. */
    int first = cv.bounds[0], last = cv.bounds[2 * (dh - 1)] + cv.bounds[2 * (dh - 1) + 1];
    int rows = last - first;
    unsigned char *tmp = malloc((size_t)dw * (size_t)rows * 3);
    if (!tmp) {
        coeffs_free(&ch);
        coeffs_free(&cv);
        return imcap_fail(err, IMCAP_E_NOMEM, "resize: out of memory for a %dx%d intermediate image", dw, rows);
    }
    pass_horizontal(src, sw, first, rows, tmp, dw, &ch);
    pass_vertical(tmp, dw, first, dst, dh, &cv);
    free(tmp);
    coeffs_free(&ch);
    coeffs_free(&cv);
    return IMCAP_OK;
}
