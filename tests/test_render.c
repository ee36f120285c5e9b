/* test_render.c — colour maps, upsampling, overlays, text, sheets, the HTML
 * viewer's escaping, file names, and `imcap attend`.
 *
 * Expected colours come from matplotlib's published tables (_viridis_data,
 * _inferno_data in matplotlib/_cm_listed.py; _jet_data segments in _cm.py),
 * typed here independently of src/render/colormap.c. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image/image.h"
#include "imcap.h"
#include "render/render.h"
#include "testutil.h"
#include "util/util.h"

/* matplotlib _viridis_data[0], [128], [255] and _inferno_data[0], [255]. */
static const float VIRIDIS_0[3] = {0.267004f, 0.004874f, 0.329415f};
static const float VIRIDIS_128[3] = {0.127568f, 0.566949f, 0.550556f};
static const float VIRIDIS_255[3] = {0.993248f, 0.906157f, 0.143936f};
static const float INFERNO_0[3] = {0.001462f, 0.000466f, 0.013866f};
static const float INFERNO_255[3] = {0.988362f, 0.998364f, 0.644924f};

/* ------------------------------------------------------------ fixtures */

/* A w x h image with a deterministic, non-uniform pattern, so blends with
 * it are distinguishable from blends with a flat colour. */
static imcap_image pattern(int w, int h) {
    imcap_image im = {w, h, malloc((size_t)w * h * 3)};
    cr_assert_not_null(im.rgb);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            unsigned char *p = im.rgb + 3 * ((size_t)y * w + x);
            p[0] = (unsigned char)((x * 5 + y * 3) % 256);
            p[1] = (unsigned char)((x * 7 + 40) % 256);
            p[2] = (unsigned char)((y * 11 + 90) % 256);
        }
    return im;
}

/* A fabricated caption result: n_hyps hypotheses over words[], word k of
 * hypothesis h attending one-hot to cell cells[(h + k) % n_cells] (with a
 * little mass elsewhere when smear > 0). Freed with imcap_result_free. */
static imcap_result *fake_result(int gh, int gw, int n_hyps, const char *const *words, int n_words, float smear) {
    imcap_result *r = calloc(1, sizeof *r);
    r->grid_h = gh, r->grid_w = gw;
    r->image_width = 0, r->image_height = 0;
    r->n_hyps = n_hyps;
    r->hyps = calloc((size_t)n_hyps, sizeof *r->hyps);
    int L = gh * gw;
    for (int h = 0; h < n_hyps; h++) {
        imcap_hypothesis *hy = &r->hyps[h];
        int T = n_words - h > 1 ? n_words - h : 1;
        hy->n_tokens = T;
        hy->tokens = calloc((size_t)T, sizeof(int));
        hy->logprobs = calloc((size_t)T, sizeof(float));
        hy->words = calloc((size_t)T, sizeof(char *));
        hy->attention = calloc((size_t)T * L, sizeof(float));
        imcap_buf text = {0};
        for (int k = 0; k < T; k++) {
            const char *w = words[(k + h) % n_words];
            hy->words[k] = strdup(w);
            hy->tokens[k] = strcmp(w, "<end>") ? 10 + k : IMCAP_TOK_END;
            hy->logprobs[k] = -0.25f * (k + 1) - 0.5f * h;
            hy->score += hy->logprobs[k];
            int cell = (7 * (h + k) + 3) % L;
            for (int i = 0; i < L; i++) hy->attention[(size_t)k * L + i] = smear / L;
            hy->attention[(size_t)k * L + cell] += 1.0f - smear;
            if (hy->tokens[k] != IMCAP_TOK_END) imcap_buf_printf(&text, "%s%s", text.len ? " " : "", w);
        }
        hy->finished = hy->tokens[T - 1] == IMCAP_TOK_END;
        hy->text = text.s ? text.s : strdup("");
    }
    return r;
}

static const unsigned char *px(const imcap_image *im, int x, int y) { return im->rgb + 3 * ((size_t)y * im->width + x); }

/* round((1 - a) * p + a * 255 * c), the blend documented in render.h. */
static void expect_blend(const unsigned char *got, const unsigned char *img, const float c[3], float a, int tol,
                         const char *what) {
    for (int k = 0; k < 3; k++) {
        double want = (1.0 - a) * img[k] + a * 255.0 * c[k];
        cr_expect(fabs(got[k] - want) <= tol + 0.5, "%s: channel %d is %d, expected %.2f (+-%d)", what, k, got[k], want,
                  tol);
    }
}

/* ------------------------------------------------------------ colour maps */

Test(colormap, endpoints_match_published_tables) {
    const float *v = imcap_colormap_table(IMCAP_CMAP_VIRIDIS), *f = imcap_colormap_table(IMCAP_CMAP_INFERNO),
                *j = imcap_colormap_table(IMCAP_CMAP_JET);
    for (int k = 0; k < 3; k++) {
        cr_expect_float_eq(v[k], VIRIDIS_0[k], 1e-7);
        cr_expect_float_eq(v[3 * 128 + k], VIRIDIS_128[k], 1e-7);
        cr_expect_float_eq(v[3 * 255 + k], VIRIDIS_255[k], 1e-7);
        cr_expect_float_eq(f[k], INFERNO_0[k], 1e-7);
        cr_expect_float_eq(f[3 * 255 + k], INFERNO_255[k], 1e-7);
    }
    /* jet from matplotlib's segments: x = 0 -> (0, 0, 0.5), x = 1 -> (0.5, 0, 0);
     * x = 128/255: red on (0.35,0)-(0.66,1), green 1, blue on (0.34,1)-(0.65,0). */
    const float j0[3] = {0, 0, 0.5f}, j255[3] = {0.5f, 0, 0};
    double x = 128.0 / 255.0;
    const float j128[3] = {(float)((x - 0.35) / 0.31), 1.0f, (float)(1.0 - (x - 0.34) / 0.31)};
    for (int k = 0; k < 3; k++) {
        cr_expect_float_eq(j[k], j0[k], 1e-6);
        cr_expect_float_eq(j[3 * 255 + k], j255[k], 1e-6);
        cr_expect_float_eq(j[3 * 128 + k], j128[k], 1e-6);
    }
    /* The well-known 8-bit viridis ends: #440154 and #FDE725. */
    unsigned char c[3];
    imcap_colormap_rgb8(IMCAP_CMAP_VIRIDIS, 0.0f, c);
    cr_expect(c[0] == 0x44 && c[1] == 0x01 && c[2] == 0x54, "viridis(0) = %02x%02x%02x", c[0], c[1], c[2]);
    imcap_colormap_rgb8(IMCAP_CMAP_VIRIDIS, 1.0f, c);
    cr_expect(c[0] == 0xfd && c[1] == 0xe7 && c[2] == 0x25, "viridis(1) = %02x%02x%02x", c[0], c[1], c[2]);
}

Test(colormap, tables_are_smooth) {
    /* A mistyped digit in a 256-entry table shows up as a jump: neighbouring
     * entries of these maps differ by less than 0.03 per channel (jet's
     * steepest slope is 1/0.25 per unit, i.e. 0.016 per entry). */
    for (int m = 0; m < 3; m++) {
        const float *t = imcap_colormap_table((imcap_colormap)m);
        for (int i = 1; i < 256; i++)
            for (int k = 0; k < 3; k++)
                cr_expect(fabsf(t[3 * i + k] - t[3 * (i - 1) + k]) < 0.03f, "map %d entry %d channel %d jumps", m, i, k);
    }
}

Test(colormap, index_and_names) {
    /* matplotlib: floor(t * 256), 1.0 -> 255, clamped. */
    cr_expect_eq(imcap_colormap_index(0.0f), 0);
    cr_expect_eq(imcap_colormap_index(0.5f), 128);
    cr_expect_eq(imcap_colormap_index(1.0f / 256.0f), 1);
    cr_expect_eq(imcap_colormap_index(0.999f), 255);
    cr_expect_eq(imcap_colormap_index(1.0f), 255);
    cr_expect_eq(imcap_colormap_index(7.0f), 255);
    cr_expect_eq(imcap_colormap_index(-3.0f), 0);
    cr_expect_eq(imcap_colormap_index(NAN), 0);
    imcap_colormap c;
    cr_expect_eq(imcap_colormap_parse("inferno", &c), 0);
    cr_expect_eq(c, IMCAP_CMAP_INFERNO);
    cr_expect_eq(imcap_colormap_parse("jet", &c), 0);
    cr_expect_eq(c, IMCAP_CMAP_JET);
    cr_expect_eq(imcap_colormap_parse("Viridis", &c), -1);
    cr_expect_eq(imcap_colormap_parse("", &c), -1);
    cr_expect_str_eq(imcap_colormap_name(IMCAP_CMAP_VIRIDIS), "viridis");
}

/* ------------------------------------------------------------ maps */

Test(upsample, bilinear_with_cell_centres) {
    /* A 1x2 grid [a, b] to 4 pixels: centres at u = -0.25 (clamped), 0.25,
     * 0.75, 1.25 (clamped) -> a, 0.75a + 0.25b, 0.25a + 0.75b, b. */
    float g[2] = {1.0f, 5.0f}, out[4];
    cr_assert_eq(imcap_render_upsample(g, 1, 2, out, 4, 1), 0);
    cr_expect_float_eq(out[0], 1.0f, 1e-6);
    cr_expect_float_eq(out[1], 2.0f, 1e-6);
    cr_expect_float_eq(out[2], 4.0f, 1e-6);
    cr_expect_float_eq(out[3], 5.0f, 1e-6);
    /* Rows too: a 2x1 grid to 1x4 behaves the same vertically. */
    cr_assert_eq(imcap_render_upsample(g, 2, 1, out, 1, 4), 0);
    cr_expect_float_eq(out[1], 2.0f, 1e-6);
    cr_expect_float_eq(out[2], 4.0f, 1e-6);
    /* Same size is the identity; a constant grid stays constant. */
    float g4[4] = {0.1f, 0.2f, 0.3f, 0.4f}, o4[4], big[9 * 13];
    cr_assert_eq(imcap_render_upsample(g4, 2, 2, o4, 2, 2), 0);
    for (int i = 0; i < 4; i++) cr_expect_float_eq(o4[i], g4[i], 1e-7);
    float c4[4] = {0.7f, 0.7f, 0.7f, 0.7f};
    cr_assert_eq(imcap_render_upsample(c4, 2, 2, big, 13, 9), 0);
    for (int i = 0; i < 9 * 13; i++) cr_expect_float_eq(big[i], 0.7f, 1e-6);
    cr_expect_eq(imcap_render_upsample(g4, 0, 2, o4, 2, 2), -1);
}

Test(upsample, smooth_not_blocky) {
    /* One-hot cell (2, 4) of a 5x7 grid over 49x35 pixels (7-px cells):
     * along row 17 (the cell's centre row) the values rise strictly from
     * the neighbouring cell's centre (x = 24, value 0) to this one's
     * (x = 31, value 1) — blocky nearest-cell upsampling would be flat. */
    float g[35] = {0}, up[49 * 35];
    g[2 * 7 + 4] = 1.0f;
    cr_assert_eq(imcap_render_upsample(g, 5, 7, up, 49, 35), 0);
    cr_expect_float_eq(up[17 * 49 + 24], 0.0f, 1e-6);
    cr_expect_float_eq(up[17 * 49 + 31], 1.0f, 1e-6);
    for (int x = 25; x <= 31; x++) cr_expect_gt(up[17 * 49 + x], up[17 * 49 + x - 1], "x = %d", x);
    /* Exactly between two centres: x + 0.5 = 28 -> u = 3.5 -> 0.5. */
    cr_expect_float_eq(0.5f * (up[17 * 49 + 27] + up[17 * 49 + 28]), 0.5f, 1e-6);
}

Test(upsample, normalise_divides_by_max) {
    float m[4] = {0.1f, 0.4f, -1.0f, NAN}, o[4];
    cr_expect_float_eq(imcap_render_normalise(m, 4, o), 0.4f, 1e-7);
    cr_expect_float_eq(o[0], 0.25f, 1e-6);
    cr_expect_float_eq(o[1], 1.0f, 1e-7);
    cr_expect_float_eq(o[2], 0.0f, 1e-7);
    cr_expect_float_eq(o[3], 0.0f, 1e-7);
    float z[3] = {0, 0, 0};
    cr_expect_float_eq(imcap_render_normalise(z, 3, z), 0.0f, 1e-7);
    cr_expect(z[0] == 0 && z[1] == 0 && z[2] == 0);
}

/* ------------------------------------------------------------ overlays */

Test(overlay, one_hot_puts_peak_colour_on_its_cell) {
    /* 49x35 image, 5x7 grid: cell (r, c) covers x in [7c, 7c + 7), y in
     * [7r, 7r + 7) and its centre is pixel (7c + 3, 7r + 3) exactly. */
    imcap_image img = pattern(49, 35), out;
    imcap_render_options o;
    imcap_render_options_default(&o);
    cr_expect_float_eq(o.alpha, 0.6f, 1e-7);
    cr_expect_eq(o.colormap, IMCAP_CMAP_VIRIDIS);
    float map[35] = {0};
    map[2 * 7 + 4] = 0.37f; /* any positive value: maps are divided by their max */
    imcap_error err;
    cr_assert_eq(imcap_render_overlay(&img, map, 5, 7, &o, &out, &err), IMCAP_OK, "%s", err.msg);
    cr_assert(out.width == 49 && out.height == 35);
    expect_blend(px(&out, 31, 17), px(&img, 31, 17), VIRIDIS_255, 0.6f, 1, "centre of the attended cell");
    expect_blend(px(&out, 0, 0), px(&img, 0, 0), VIRIDIS_0, 0.6f, 1, "far corner");
    expect_blend(px(&out, 48, 34), px(&img, 48, 34), VIRIDIS_0, 0.6f, 1, "other corner");
    expect_blend(px(&out, 24, 17), px(&img, 24, 17), VIRIDIS_0, 0.6f, 1, "centre of the next cell");
    /* The pixels that got the top colour entries all lie inside the cell. */
    float up[49 * 35], g[35];
    imcap_render_normalise(map, 35, g);
    imcap_render_upsample(g, 5, 7, up, 49, 35);
    int inside = 0;
    for (int y = 0; y < 35; y++)
        for (int x = 0; x < 49; x++)
            if (up[y * 49 + x] >= 0.9f) {
                cr_expect(x >= 28 && x < 35 && y >= 14 && y < 21, "peak colour at (%d, %d), outside the cell", x, y);
                inside++;
            }
    cr_expect_gt(inside, 0);
    imcap_image_free(&out);

    /* inferno, alpha 0.3, and an image whose size is not a multiple of the
     * grid: cell (2, 4)'s centre is at (64.29, 40) of 100x80. Pixel (64, 39)
     * samples the grid at u = 64.5 * 7/100 - 0.5 = 4.015,
     * v = 39.5 * 5/80 - 0.5 = 1.96875: weight (1 - 0.015)(1 - 0.03125)
     * = 0.9542 -> entry floor(0.9542 * 256) = 244, _inferno_data[244]. */
    static const float INFERNO_244[3] = {0.946903f, 0.943348f, 0.474970f};
    imcap_image big = pattern(100, 80);
    o.colormap = IMCAP_CMAP_INFERNO;
    o.alpha = 0.3f;
    cr_assert_eq(imcap_render_overlay(&big, map, 5, 7, &o, &out, &err), IMCAP_OK, "%s", err.msg);
    expect_blend(px(&out, 64, 39), px(&big, 64, 39), INFERNO_244, 0.3f, 1, "near the cell centre");
    expect_blend(px(&out, 2, 77), px(&big, 2, 77), INFERNO_0, 0.3f, 1, "far corner");
    imcap_image_free(&out);
    imcap_image_free(&big);
    imcap_image_free(&img);
}

Test(overlay, alpha_extremes_and_scale_invariance) {
    imcap_image img = pattern(21, 14), a0, a1, s1, s10;
    imcap_render_options o;
    imcap_render_options_default(&o);
    float map[6] = {0.1f, 0.2f, 0.05f, 0.3f, 0.15f, 0.2f}, map10[6];
    for (int i = 0; i < 6; i++) map10[i] = 10 * map[i];
    imcap_error err;
    o.alpha = 0.0f;
    cr_assert_eq(imcap_render_overlay(&img, map, 2, 3, &o, &a0, &err), IMCAP_OK);
    cr_expect_arr_eq(a0.rgb, img.rgb, 21 * 14 * 3, "alpha 0 leaves the image as it is");
    o.alpha = 1.0f;
    cr_assert_eq(imcap_render_overlay(&img, map, 2, 3, &o, &a1, &err), IMCAP_OK);
    /* alpha 1: pure colour; cell (1, 0) holds the max, its centre pixel
     * (x = 3, y = 10) is entry 255. */
    expect_blend(px(&a1, 3, 10), px(&img, 3, 10), VIRIDIS_255, 1.0f, 0, "alpha 1 at the max cell");
    o.alpha = 0.6f;
    cr_assert_eq(imcap_render_overlay(&img, map, 2, 3, &o, &s1, &err), IMCAP_OK);
    cr_assert_eq(imcap_render_overlay(&img, map10, 2, 3, &o, &s10, &err), IMCAP_OK);
    cr_expect_arr_eq(s1.rgb, s10.rgb, 21 * 14 * 3, "a map and 10x the map look the same");
    /* A second cell at half the max gets the middle of the map (entry 128):
     * cell (0, 1) = 0.2 of max 0.3 -> 0.667 -> entry 170; use cell (0, 2)
     * = 0.05 / 0.3 -> entry floor(0.1667 * 256) = 42. */
    const float *t = imcap_colormap_table(IMCAP_CMAP_VIRIDIS);
    expect_blend(px(&s1, 17, 3), px(&img, 17, 3), t + 3 * 42, 0.6f, 1, "cell at 1/6 of the max");
    imcap_image_free(&a0);
    o.alpha = 1.5f;
    cr_expect_eq(imcap_render_overlay(&img, map, 2, 3, &o, &a0, &err), IMCAP_E_ARG);
    cr_expect_null(a0.rgb);
    cr_expect(strstr(err.msg, "alpha") != NULL, "%s", err.msg);
    imcap_image_free(&a1), imcap_image_free(&s1), imcap_image_free(&s10), imcap_image_free(&img);
    imcap_image_free(&a0);
}

Test(overlay, fit_caps_the_longer_side) {
    imcap_image img = pattern(300, 120), out;
    imcap_error err;
    cr_assert_eq(imcap_render_fit(&img, 100, 100, 0, &out, &err), IMCAP_OK, "%s", err.msg);
    cr_expect(out.width == 100 && out.height == 40, "%dx%d", out.width, out.height);
    imcap_image_free(&out);
    cr_assert_eq(imcap_render_fit(&img, 1000, 1000, 0, &out, &err), IMCAP_OK);
    cr_expect(out.width == 300 && out.height == 120, "never enlarged without allow_upscale");
    cr_expect_arr_eq(out.rgb, img.rgb, 300 * 120 * 3);
    imcap_image_free(&out);
    cr_assert_eq(imcap_render_fit(&img, 600, 600, 1, &out, &err), IMCAP_OK);
    cr_expect(out.width == 600 && out.height == 240, "%dx%d", out.width, out.height);
    imcap_image_free(&out);
    imcap_image_free(&img);
}

/* ------------------------------------------------------------ text */

Test(text, measures_and_draws) {
    imcap_font *f;
    imcap_error err;
    cr_assert_eq(imcap_font_load_default(&f, &err), IMCAP_OK, "%s", err.msg);
    int w4 = imcap_text_width(f, 20, "Hell"), w5 = imcap_text_width(f, 20, "Hello");
    cr_expect(w4 > 10 && w5 > w4, "%d %d", w4, w5);
    cr_expect_gt(imcap_text_width(f, 40, "Hello"), w5 + w5 / 2);
    cr_expect_eq(imcap_text_width(f, 20, ""), 0);
    cr_expect_gt(imcap_text_width(f, 20, "\xff\xfe"), 0, "invalid UTF-8 is drawn as U+FFFD, not skipped");
    /* "H" in black on white: dark pixels only between the pen and its
     * advance, and none below the baseline (H has no descender). */
    imcap_image im = {60, 40, malloc(60 * 40 * 3)};
    memset(im.rgb, 255, 60 * 40 * 3);
    const unsigned char black[3] = {0, 0, 0};
    int wh = imcap_text_width(f, 24, "H");
    imcap_text_draw(f, 24, "H", &im, 10, 30, black);
    int dark = 0;
    for (int y = 0; y < 40; y++)
        for (int x = 0; x < 60; x++)
            if (px(&im, x, y)[0] < 128) {
                dark++;
                cr_expect(x >= 10 && x <= 10 + wh && y < 31, "ink at (%d, %d)", x, y);
            }
    cr_expect_gt(dark, 30);
    /* Clipping: drawing far outside must not crash or write. */
    imcap_text_draw(f, 24, "clipped", &im, -500, -500, black);
    imcap_text_draw(f, 24, "clipped", &im, 58, 39, black);
    free(im.rgb);

    char *fit = imcap_text_fit(f, 15, "a rather long label that will not fit", 80);
    cr_assert_not_null(fit);
    cr_expect_leq(imcap_text_width(f, 15, fit), 80);
    cr_expect(strlen(fit) >= 3 && !strcmp(fit + strlen(fit) - 3, "\xE2\x80\xA6"), "ends with an ellipsis: %s", fit);
    free(fit);
    fit = imcap_text_fit(f, 15, "short", 80);
    cr_expect_str_eq(fit, "short");
    free(fit);

    char **lines;
    const char *cap = "a small red circle to the left of a big blue square";
    int n = imcap_text_wrap(f, 15, cap, 120, &lines);
    cr_assert_gt(n, 1);
    imcap_buf joined = {0};
    for (int i = 0; i < n; i++) {
        cr_expect_leq(imcap_text_width(f, 15, lines[i]), 120, "line %d '%s'", i, lines[i]);
        imcap_buf_printf(&joined, "%s%s", i ? " " : "", lines[i]);
    }
    cr_expect_str_eq(joined.s, cap);
    imcap_buf_free(&joined);
    imcap_text_lines_free(lines, n);
    imcap_font_free(f);
    cr_expect_neq(imcap_font_load_memory("nope", 4, "bogus.ttf", &f, &err), IMCAP_OK);
    cr_expect(strstr(err.msg, "bogus.ttf") != NULL, "%s", err.msg);
}

/* ------------------------------------------------------------ sheet */

/* Position of sub inside im at or after (row-major) index `from`, or -1. */
static long find_tile(const imcap_image *im, const imcap_image *sub, long from) {
    for (long pos = from; pos < (long)im->width * im->height; pos++) {
        int x = (int)(pos % im->width), y = (int)(pos / im->width);
        if (x + sub->width > im->width || y + sub->height > im->height) continue;
        int ok = 1;
        for (int r = 0; r < sub->height && ok; r++)
            ok = !memcmp(px(im, x, y + r), px(sub, 0, r), 3 * (size_t)sub->width);
        if (ok) return pos;
    }
    return -1;
}

Test(sheet, original_and_one_labelled_tile_per_word) {
    const char *words[] = {"a", "red", "circle", "<end>"};
    imcap_result *r = fake_result(4, 4, 1, words, 4, 0.0f);
    imcap_image img = pattern(64, 48), sheet, tile0;
    imcap_render_options o;
    imcap_render_options_default(&o);
    o.tile_side = 100;
    imcap_error err;
    cr_assert_eq(imcap_render_sheet(&img, r, 0, NULL, &o, &sheet, &err), IMCAP_OK, "%s", err.msg);
    /* Each tile is the image enlarged to 100x75 (overlaid for words), found
     * verbatim in the sheet, in reading order. */
    cr_assert_eq(imcap_render_fit(&img, 100, 100, 1, &tile0, &err), IMCAP_OK);
    cr_assert(tile0.width == 100 && tile0.height == 75);
    long pos = find_tile(&sheet, &tile0, 0);
    cr_assert_geq(pos, 0, "original tile not in the sheet");
    /* Title above the tiles: some ink in the rows above the first tile. */
    int title_ink = 0;
    for (int y = 0; y < pos / sheet.width; y++)
        for (int x = 0; x < sheet.width; x++) title_ink += px(&sheet, x, y)[0] < 100;
    cr_expect_gt(title_ink, 50, "the caption is drawn as the title");
    for (int k = 0; k < 4; k++) {
        imcap_image ov;
        cr_assert_eq(imcap_render_word(&tile0, r, 0, k, &o, &ov, &err), IMCAP_OK);
        long p = find_tile(&sheet, &ov, pos + 1);
        cr_expect_gt(p, pos, "tile of word %d missing or out of order", k);
        /* The label under the tile has ink (word and probability). */
        int x = (int)(p % sheet.width), y = (int)(p / sheet.width) + ov.height, ink = 0;
        for (int yy = y + 2; yy < y + 22 && yy < sheet.height; yy++)
            for (int xx = x; xx < x + ov.width; xx++) ink += px(&sheet, xx, yy)[0] < 160;
        cr_expect_gt(ink, 20, "label of word %d", k);
        if (p > pos) pos = p;
        imcap_image_free(&ov);
    }
    imcap_image_free(&sheet);
    cr_expect_eq(imcap_render_sheet(&img, r, 1, NULL, &o, &sheet, &err), IMCAP_E_ARG, "no hypothesis 1");
    cr_expect_null(sheet.rgb);
    imcap_image_free(&tile0);
    imcap_image_free(&img);
    imcap_result_free(r);
}

/* ------------------------------------------------------------ names */

static const char *san(const char *in) {
    static char out[IMCAP_NAME_MAX + 1];
    imcap_sanitize_name(in, "word", out, sizeof out);
    return out;
}

static const char *stem(const char *path) {
    static char out[IMCAP_NAME_MAX + 1];
    imcap_render_stem(path, out, sizeof out);
    return out;
}

Test(names, sanitising) {
    cr_expect_str_eq(san("dog"), "dog");
    cr_expect_str_eq(san("Hot-Dog_2.0"), "Hot-Dog_2.0");
    cr_expect_str_eq(san("a b/c"), "a_b_c");
    cr_expect_str_eq(san("<end>"), "end");
    cr_expect_str_eq(san("<script>alert(1)</script>"), "script_alert_1_script");
    cr_expect_str_eq(san("../../etc/passwd"), "etc_passwd");
    cr_expect_str_eq(san("..."), "word");
    cr_expect_str_eq(san(""), "word");
    cr_expect_str_eq(san(NULL), "word");
    cr_expect_str_eq(san("-rf"), "rf");
    cr_expect_str_eq(san("caf\xC3\xA9 au lait"), "caf_au_lait");
    cr_expect_str_eq(san("\"quoted\" & 'single'"), "quoted_single");
    cr_expect_str_eq(san("tab\tnew\nline"), "tab_new_line");
    char longw[200];
    memset(longw, 'x', sizeof longw - 1);
    longw[sizeof longw - 1] = 0;
    cr_expect_eq(strlen(san(longw)), IMCAP_NAME_MAX);
    /* The cut never leaves a trailing separator. */
    char cut[IMCAP_NAME_MAX + 10];
    memset(cut, 'y', sizeof cut - 1);
    cut[IMCAP_NAME_MAX - 1] = ' ';
    cut[sizeof cut - 1] = 0;
    cr_expect_eq(strlen(san(cut)), IMCAP_NAME_MAX - 1);
    /* Every output byte is in the safe set. */
    char all[256];
    for (int i = 1; i < 256; i++) all[i - 1] = (char)i;
    all[255] = 0;
    for (const char *p = san(all); *p; p++) cr_expect(strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.", *p));
    char small[4];
    cr_expect_eq(imcap_sanitize_name("abcdef", "w", small, sizeof small), 3);
    cr_expect_str_eq(small, "abc");

    cr_expect_str_eq(stem("dir/My Photo (1).JPG"), "My_Photo_1");
    cr_expect_str_eq(stem("archive.tar.gz"), "archive.tar");
    cr_expect_str_eq(stem("/a/b/.hidden"), "hidden");
    cr_expect_str_eq(stem("noext"), "noext");
    cr_expect_str_eq(stem("x/<b>\"q\"&y.png"), "b_q_y");
    cr_expect_str_eq(stem("dir/"), "dir");
    cr_expect_str_eq(stem(""), "image");
    cr_expect_str_eq(stem("/"), "image");
    char suffix[IMCAP_NAME_MAX + 32];
    imcap_render_overlay_suffix(3, "<end>", suffix, sizeof suffix);
    cr_expect_str_eq(suffix, "_03_end.png");
    imcap_render_overlay_suffix(12, "sm\xC3\xB6rg\xC3\xA5s", suffix, sizeof suffix);
    cr_expect_str_eq(suffix, "_12_sm_rg_s.png");
}

/* ------------------------------------------------------------ HTML */

static int count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

Test(html, escaping) {
    imcap_buf b = {0};
    imcap_buf_html(&b, "<script>alert(\"x\")</script> & 'y'");
    cr_expect_str_eq(b.s, "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;");
    b.len = 0;
    imcap_buf_html(&b, "t\xC3\xA4" "ble \xE2\x86\x92 ok");
    cr_expect_str_eq(b.s, "t\xC3\xA4" "ble \xE2\x86\x92 ok", "valid UTF-8 is kept");
    b.len = 0;
    imcap_buf_html(&b, "bad\xff\xC3 \x01x\ty");
    cr_expect_str_eq(b.s, "bad\xEF\xBF\xBD\xEF\xBF\xBD \xEF\xBF\xBDx\ty", "invalid bytes and controls -> U+FFFD");
    b.len = 0;
    imcap_buf_html(&b, "&amp;");
    cr_expect_str_eq(b.s, "&amp;amp;", "entities are not trusted");
    imcap_buf_free(&b);
}

Test(html, viewer_escapes_hostile_names_and_is_offline) {
    const char *words[] = {"<script>alert(1)</script>", "\"><img src=x onerror=alert(2)>", "fish&chips", "it's",
                           "t\xC3\xA4" "ble", "<end>"};
    imcap_result *r = fake_result(3, 3, 3, words, 6, 0.2f);
    imcap_image img = pattern(40, 30);
    imcap_render_options o;
    imcap_render_options_default(&o);
    char *html;
    size_t len;
    imcap_error err;
    const char *title = "<script>alert('t')</script>\"&.png";
    cr_assert_eq(imcap_render_html(&img, r, title, &o, &html, &len, &err), IMCAP_OK, "%s", err.msg);
    cr_expect_eq(strlen(html), len);
    /* Our own script is the only one; no raw markup from the data. */
    cr_expect_eq(count(html, "<script"), 1, "exactly one <script> (the viewer's own)");
    cr_expect_eq(count(html, "<img"), 1, "exactly one <img> (the view)");
    cr_expect_eq(count(html, "onerror"), count(html, "onerror=alert(2)&gt;"), "onerror only inside escaped text");
    cr_expect(strstr(html, "alert(1)</script>") == NULL);
    cr_expect(strstr(html, "&lt;script&gt;alert(1)&lt;/script&gt;") != NULL);
    cr_expect(strstr(html, "&quot;&gt;&lt;img src=x onerror=alert(2)&gt;") != NULL);
    cr_expect(strstr(html, "fish&amp;chips") != NULL);
    cr_expect(strstr(html, "it&#39;s") != NULL);
    cr_expect(strstr(html, "t\xC3\xA4" "ble") != NULL);
    cr_expect(strstr(html, "&lt;script&gt;alert(&#39;t&#39;)&lt;/script&gt;&quot;&amp;.png") != NULL, "title escaped");
    /* Offline: nothing fetched from anywhere. */
    cr_expect(strstr(html, "http:") == NULL && strstr(html, "https:") == NULL && strstr(html, "src=\"//") == NULL);
    cr_expect(strstr(html, "<link") == NULL);
    /* One inline image per word of every hypothesis, plus the original and
     * the initial view. */
    int want = 2;
    for (int h = 0; h < r->n_hyps; h++) want += r->hyps[h].n_tokens;
    cr_expect_eq(count(html, "data:image/jpeg;base64,"), want);
    cr_expect_eq(count(html, "class=\"hyp\""), 3, "every hypothesis is listed");
    cr_expect(strstr(html, "Alternative captions") != NULL);
    free(html);
    /* PNG when asked. */
    o.html_jpeg_quality = 0;
    cr_assert_eq(imcap_render_html(&img, r, "x", &o, &html, &len, &err), IMCAP_OK, "%s", err.msg);
    cr_expect_eq(count(html, "data:image/png;base64,iVBORw0KGgo"), want);
    free(html);
    imcap_image_free(&img);
    imcap_result_free(r);
}

/* ------------------------------------------------------------ files */

Test(files, write_all_outputs_atomically) {
    const char *words[] = {"a", "big dog", "<end>"};
    imcap_result *r = fake_result(8, 8, 2, words, 3, 0.1f);
    imcap_image img = pattern(700, 350);
    imcap_render_options o;
    imcap_render_options_default(&o);
    o.max_side = 200;
    const char *dir = tu_tmpdir("render_write");
    imcap_error err;
    cr_assert_eq(imcap_render_write(&img, r, dir, "pic", "pic.png", &o, IMCAP_RENDER_ALL, &err), IMCAP_OK, "%s",
                 err.msg);
    const char *names[] = {"pic_00_a.png", "pic_01_big_dog.png", "pic_02_end.png", "pic_sheet.png", "pic.html"};
    char path[4300];
    imcap_image base;
    cr_assert_eq(imcap_render_fit(&img, 200, 200, 0, &base, &err), IMCAP_OK);
    for (int i = 0; i < 5; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        size_t n = 0;
        char *data = tu_read(path, &n);
        cr_expect(data && n > 0, "%s missing", names[i]);
        free(data);
        if (i < 3) {
            /* The file holds exactly the overlay, at the capped size. */
            imcap_image got, want;
            cr_assert_eq(imcap_image_load(path, &got, &err), IMCAP_OK, "%s", err.msg);
            cr_expect(got.width == 200 && got.height == 100, "%dx%d", got.width, got.height);
            cr_assert_eq(imcap_render_word(&base, r, 0, i, &o, &want, &err), IMCAP_OK);
            cr_expect_arr_eq(got.rgb, want.rgb, (size_t)200 * 100 * 3, "%s", names[i]);
            imcap_image_free(&got);
            imcap_image_free(&want);
        }
    }
    /* Nothing else in the folder: no temporary files left behind. */
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    int entries = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            entries++;
            cr_expect(strstr(e->d_name, ".tmp") == NULL, "left over: %s", e->d_name);
        }
    closedir(d);
    cr_expect_eq(entries, 5);
    /* An output folder that does not exist: an error naming the file. */
    snprintf(path, sizeof path, "%s/missing/dir", dir);
    cr_expect_neq(imcap_render_write(&img, r, path, "pic", NULL, &o, IMCAP_RENDER_SHEET, &err), IMCAP_OK);
    cr_expect(strstr(err.msg, "pic_sheet.png") != NULL, "%s", err.msg);
    imcap_image_free(&base);
    imcap_image_free(&img);
    imcap_result_free(r);
}

/* ------------------------------------------------------------ CLI */

/* A random model from `imcap init` (8x8 grid, 64-px input); returns its path. */
static const char *random_model(const char *dir) {
    static char model[4200];
    char vocab[4200], cmd[9000];
    snprintf(vocab, sizeof vocab, "%s/words.txt", dir);
    const char *w = "a\nred\nblue\ncircle\nsquare\nleft\nright\n";
    tu_write(vocab, w, strlen(w));
    snprintf(model, sizeof model, "%s/model.safetensors", dir);
    snprintf(cmd, sizeof cmd, "'%s' init --config '%s' --vocab '%s' --seed 3 -o '%s'", tu_exe(),
             tu_src("models/default_config.json"), vocab, model);
    char *err = NULL;
    int rc = tu_run(cmd, NULL, &err);
    cr_assert_eq(rc, 0, "imcap init failed: %s", err ? err : "");
    free(err);
    return model;
}

Test(cli, attend_writes_everything_and_reports_bad_images, .timeout = 120) {
    const char *dir = tu_tmpdir("attend_cli");
    const char *model = random_model(dir);
    char good[4300], hostile[4300], bad[4300], out[4300], cmd[24000];
    imcap_image img = pattern(90, 60);
    imcap_error err;
    snprintf(good, sizeof good, "%s/good.png", dir);
    snprintf(hostile, sizeof hostile, "%s/<b>q&x.png", dir);
    snprintf(bad, sizeof bad, "%s/corrupt.png", dir);
    cr_assert_eq(imcap_png_write(good, img.rgb, 90, 60, 3, &err), IMCAP_OK, "%s", err.msg);
    cr_assert_eq(imcap_png_write(hostile, img.rgb, 90, 60, 3, &err), IMCAP_OK, "%s", err.msg);
    tu_write(bad, "\x89PNG\r\n\x1a\nnot really", 18);
    snprintf(out, sizeof out, "%s/out/nested", dir);
    snprintf(cmd, sizeof cmd, "'%s' attend --model '%s' --beam 2 --colormap inferno --alpha 0.5 '%s' '%s' '%s' -o '%s'",
             tu_exe(), model, good, bad, hostile, out);
    char *so = NULL, *se = NULL;
    int rc = tu_run(cmd, &so, &se);
    cr_expect_eq(rc, 1, "one bad image -> exit 1; stderr: %s", se);
    cr_expect(strstr(se, "corrupt.png") != NULL, "the error names the file: %s", se);
    cr_expect_eq(count(se, "\n"), 1, "one error line: %s", se);
    cr_expect_eq(count(so, "\n"), 2, "one stdout line per good image: %s", so);
    /* The good images' files, read back by the sheet and viewer names. */
    char p[4400];
    const char *expect[] = {"good_sheet.png", "good.html", "b_q_x_sheet.png", "b_q_x.html"};
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", out, expect[i]);
        size_t n = 0;
        char *d = tu_read(p, &n);
        cr_expect(d && n > 0, "%s missing", expect[i]);
        if (i == 3) {
            cr_expect(strstr(d, "&lt;b&gt;q&amp;x.png") != NULL, "file name escaped in the viewer");
            cr_expect(strstr(d, "<b>q") == NULL);
        }
        free(d);
    }
    /* Overlays: <stem>_00_<word>.png exists for the first word. */
    snprintf(p, sizeof p, "ls '%s' | grep -c '^good_[0-9][0-9]_.*\\.png$'", out);
    char *cnt = NULL;
    tu_run(p, &cnt, NULL);
    cr_expect_gt(atoi(cnt ? cnt : "0"), 0, "overlay files written");
    free(cnt);
    free(so), free(se);

    /* Usage errors: exit 2; an output folder that cannot exist: exit 3. */
    snprintf(cmd, sizeof cmd, "'%s' attend --model '%s' '%s'", tu_exe(), model, good);
    cr_expect_eq(tu_run(cmd, NULL, NULL), 2, "no -o");
    snprintf(cmd, sizeof cmd, "'%s' attend --colormap rainbow '%s' -o '%s'", tu_exe(), good, out);
    cr_expect_eq(tu_run(cmd, NULL, NULL), 2, "unknown colormap");
    snprintf(cmd, sizeof cmd, "'%s' attend --alpha 2 '%s' -o '%s'", tu_exe(), good, out);
    cr_expect_eq(tu_run(cmd, NULL, NULL), 2, "alpha out of range");
    snprintf(cmd, sizeof cmd, "'%s' attend --model '%s' '%s' -o '%s/sub'", tu_exe(), model, good, good);
    cr_expect_eq(tu_run(cmd, NULL, NULL), 3, "output folder under a file");
    imcap_image_free(&img);
}

Test(files, empty_caption_still_renders) {
    /* A hypothesis with no tokens (a decoder stopped at once): the sheet is
     * the original alone, the viewer shows the original, no overlay files. */
    const char *words[] = {"x"};
    imcap_result *r = fake_result(2, 2, 1, words, 1, 0.0f);
    imcap_hypothesis *hy = &r->hyps[0];
    free(hy->words[0]);
    hy->n_tokens = 0;
    imcap_image img = pattern(30, 20);
    imcap_render_options o;
    imcap_render_options_default(&o);
    const char *dir = tu_tmpdir("render_empty");
    imcap_error err;
    cr_assert_eq(imcap_render_write(&img, r, dir, "e", "e.png", &o, IMCAP_RENDER_ALL, &err), IMCAP_OK, "%s", err.msg);
    char path[4200];
    snprintf(path, sizeof path, "%s/e.html", dir);
    char *html = tu_read(path, NULL);
    cr_assert_not_null(html);
    cr_expect_eq(count(html, "data:image/"), 2, "the original, as the view and as its button");
    free(html);
    snprintf(path, sizeof path, "%s/e_sheet.png", dir);
    imcap_image sheet;
    cr_expect_eq(imcap_image_load(path, &sheet, &err), IMCAP_OK, "%s", err.msg);
    imcap_image_free(&sheet);
    imcap_image_free(&img);
    imcap_result_free(r);
}
