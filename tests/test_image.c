/* test_image.c — decoding, limits, malformed files, PIL-exact resizing,
 * normalisation and PNG output.
 *
 * Where expected values come from:
 *   - tests/data/images/manifest.txt and its files are written by
 *     scripts/make_image_fixtures.py: "resize" goldens are real PIL
 *     (Pillow 9.4) Image.resize(..., BILINEAR) outputs; "decode" expectations
 *     are the pixel values the script wrote into each file, transformed by the
 *     spec's decoding rules (JPEG: PIL's libjpeg decoding, with a tolerance).
 *   - Hand-computed values are worked out in the comment next to them.
 *   - Malformed files are built here, in tu_tmpdir.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stb_image.h>
#include "image/image.h"
#include "testutil.h"

/* A string literal and its length (embedded NULs included). */
#define LIT(s) s, sizeof(s) - 1

static const char *fixture(const char *name) {
    static char buf[4][4096];
    static int k;
    char *s = buf[k++ & 3];
    snprintf(s, 4096, "%s", tu_src("tests/data/images/"));
    strncat(s, name, 4096 - strlen(s) - 1);
    return s;
}

static void load_ok(const char *path, imcap_image *img) {
    imcap_error err = {0};
    imcap_status st = imcap_image_load(path, img, &err);
    cr_assert_eq(st, IMCAP_OK, "%s: %s", path, err.msg);
    cr_assert(img->rgb && img->width > 0 && img->height > 0);
}

/* Asserts that decoding fails with status want and a message naming path. */
static void expect_fail(const char *path, imcap_status want, const char *needle) {
    imcap_error err = {0};
    imcap_image img = {0};
    imcap_status st = imcap_image_load(path, &img, &err);
    cr_expect_eq(st, want, "%s: status %s, expected %s (%s)", path, imcap_status_name(st), imcap_status_name(want),
                 err.msg);
    cr_expect_null(img.rgb, "%s: pixels returned on failure", path);
    cr_expect(strstr(err.msg, path) != NULL, "message does not name the file: %s", err.msg);
    if (needle) cr_expect(strstr(err.msg, needle) != NULL, "message lacks \"%s\": %s", needle, err.msg);
    imcap_image_free(&img);
}

/* ---------------------------------------------------------------- fixtures */

typedef struct {
    char kind[16], a[128], b[128];
    int w, h, tol;
} mline;

static int read_manifest(mline *ls, int max) {
    size_t n;
    char *text = tu_read(fixture("manifest.txt"), &n);
    cr_assert(text, "tests/data/images/manifest.txt missing (run scripts/make_image_fixtures.py)");
    int k = 0;
    for (char *line = strtok(text, "\n"); line && k < max; line = strtok(NULL, "\n")) {
        if (line[0] == '#') continue;
        mline *m = &ls[k];
        memset(m, 0, sizeof *m);
        if (sscanf(line, "resize %127s %127s", m->a, m->b) == 2) {
            strcpy(m->kind, "resize");
            k++;
        } else if (sscanf(line, "decode %127s %d %d %127s %d", m->a, &m->w, &m->h, m->b, &m->tol) >= 4) {
            strcpy(m->kind, "decode");
            k++;
        } else {
            cr_assert_fail("bad manifest line: %s", line);
        }
    }
    free(text);
    return k;
}

Test(image, resize_matches_pil) {
    mline ls[64];
    int n = read_manifest(ls, 64), cases = 0, worst = 0;
    for (int i = 0; i < n; i++) {
        if (strcmp(ls[i].kind, "resize")) continue;
        imcap_image src, want;
        load_ok(fixture(ls[i].a), &src);
        load_ok(fixture(ls[i].b), &want);
        unsigned char *got = malloc((size_t)want.width * want.height * 3);
        imcap_error err = {0};
        cr_assert_eq(imcap_resize_rgb8(src.rgb, src.width, src.height, got, want.width, want.height, &err), IMCAP_OK,
                     "%s", err.msg);
        int maxd = 0;
        size_t ndiff = 0, total = (size_t)want.width * want.height * 3;
        for (size_t j = 0; j < total; j++) {
            int d = abs(got[j] - want.rgb[j]);
            if (d) ndiff++;
            if (d > maxd) maxd = d;
        }
        cr_log_info("resize %dx%d -> %dx%d: max |diff| vs PIL %d, %zu of %zu samples differ", src.width, src.height,
                    want.width, want.height, maxd, ndiff, total);
        /* The spec allows +-1; this implementation follows PIL's arithmetic
         * exactly, so anything but 0 is a regression. */
        cr_expect_eq(maxd, 0, "%s -> %s: max diff %d (%zu samples differ)", ls[i].a, ls[i].b, maxd, ndiff);
        if (maxd > worst) worst = maxd;
        free(got);
        imcap_image_free(&src);
        imcap_image_free(&want);
        cases++;
    }
    cr_log_info("resize: %d PIL goldens, worst max |diff| %d", cases, worst);
    cr_assert_geq(cases, 15, "expected the manifest's resize cases, found %d", cases);
}

Test(image, decode_fixtures) {
    mline ls[64];
    int n = read_manifest(ls, 64), cases = 0;
    for (int i = 0; i < n; i++) {
        if (strcmp(ls[i].kind, "decode")) continue;
        imcap_image img;
        load_ok(fixture(ls[i].a), &img);
        cr_expect_eq(img.width, ls[i].w, "%s: width", ls[i].a);
        cr_expect_eq(img.height, ls[i].h, "%s: height", ls[i].a);
        size_t n_exp;
        unsigned char *exp = (unsigned char *)tu_read(fixture(ls[i].b), &n_exp);
        cr_assert(exp && n_exp == (size_t)ls[i].w * ls[i].h * 3, "%s: bad expectation file", ls[i].b);
        if (img.width == ls[i].w && img.height == ls[i].h) {
            int maxd = 0;
            for (size_t j = 0; j < n_exp; j++) {
                int d = abs(img.rgb[j] - exp[j]);
                if (d > maxd) maxd = d;
            }
            cr_log_info("decode %s: max |diff| %d (tolerance %d)", ls[i].a, maxd, ls[i].tol);
            cr_expect_leq(maxd, ls[i].tol, "%s: max diff %d > %d", ls[i].a, maxd, ls[i].tol);
        }
        /* The in-memory entry point gives the same pixels. */
        size_t sz;
        char *bytes = tu_read(fixture(ls[i].a), &sz);
        imcap_image m;
        imcap_error err = {0};
        cr_assert_eq(imcap_image_load_memory(bytes, sz, ls[i].a, &m, &err), IMCAP_OK, "%s", err.msg);
        cr_expect(m.width == img.width && m.height == img.height &&
                  !memcmp(m.rgb, img.rgb, (size_t)img.width * img.height * 3), "%s: memory decode differs", ls[i].a);
        imcap_image_free(&m);
        free(bytes);
        free(exp);
        imcap_image_free(&img);
        cases++;
    }
    cr_assert_geq(cases, 20, "expected the manifest's decode cases, found %d", cases);
}

/* Netpbm variants PIL does not write; expected values worked out by hand. */
Test(image, pnm_plain_and_maxval) {
    const char *dir = tu_tmpdir("image_pnm");
    struct {
        const char *name, *data;
        size_t len;
        int w, h;
        unsigned char grey[6]; /* grey images: one value per pixel */
    } g[] = {
        /* P1: 1 is black. */
        {"a.pbm", LIT("P1\n3 2\n1 0 1\n0 1 0\n"), 3, 2, {0, 255, 0, 255, 0, 255}},
        /* Plain PBM needs no separators between digits. */
        {"b.pbm", LIT("P1 3 2 101010"), 3, 2, {0, 255, 0, 255, 0, 255}},
        /* maxval 15: round(v * 255 / 15): 0, 255, and 7 -> 119. */
        {"c.pgm", LIT("P2\n3 1\n15\n0 15 7\n"), 3, 1, {0, 255, 119}},
        /* Comments anywhere in the header and data. */
        {"d.pgm", LIT("P2 # c1\n2 # c2\n1\n# c3\n255\n10 # c4\n20\n"), 2, 1, {10, 20}},
        /* 16-bit raw with maxval 1023: 1023 -> 255, 512 -> (512*255+511)/1023 = 128. */
        {"e.pgm", LIT("P5\n2 1\n1023\n\x03\xff\x02\x00"), 2, 1, {255, 128}},
        /* 16-bit raw with maxval 65535: high byte, 0x80ff -> 0x80 = 128. */
        {"f.pgm", LIT("P5 1 1 65535 \x80\xff"), 1, 1, {128}},
    };
    for (size_t i = 0; i < sizeof g / sizeof g[0]; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, g[i].name);
        tu_write(path, g[i].data, g[i].len);
        imcap_image img;
        load_ok(path, &img);
        cr_expect_eq(img.width, g[i].w, "%s", g[i].name);
        cr_expect_eq(img.height, g[i].h, "%s", g[i].name);
        for (int p = 0; p < g[i].w * g[i].h; p++)
            for (int c = 0; c < 3; c++)
                cr_expect_eq(img.rgb[3 * p + c], g[i].grey[p], "%s pixel %d channel %d: %d, expected %d", g[i].name,
                             p, c, img.rgb[3 * p + c], g[i].grey[p]);
        imcap_image_free(&img);
    }
    /* P3 keeps channels apart. */
    char path[4200];
    snprintf(path, sizeof path, "%s/g.ppm", dir);
    static const char p3[] = "P3\n2 1\n255\n1 2 3 250 251 252\n";
    tu_write(path, p3, sizeof p3 - 1);
    imcap_image img;
    load_ok(path, &img);
    const unsigned char want[6] = {1, 2, 3, 250, 251, 252};
    cr_expect(img.width == 2 && img.height == 1 && !memcmp(img.rgb, want, 6));
    imcap_image_free(&img);
}

/* ---------------------------------------------------------------- malformed */

static uint32_t crc32_of(const unsigned char *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    }
    return c ^ 0xFFFFFFFFu;
}

static void put_be32(unsigned char *p, uint32_t v) {
    p[0] = v >> 24;
    p[1] = v >> 16;
    p[2] = v >> 8;
    p[3] = v;
}

/* A structurally complete PNG (signature, IHDR with a valid CRC, a tiny IDAT,
 * IEND) that declares w x h: only the declared size is wrong. */
static size_t png_with_size(unsigned char *b, uint32_t w, uint32_t h) {
    static const unsigned char idat[] = {0, 0, 0, 10, 'I', 'D', 'A', 'T', 0x78, 0x9c, 0x63, 0x60, 0, 0, 0, 2, 0, 1, 0, 0, 0, 0};
    static const unsigned char iend[] = {0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xAE, 0x42, 0x60, 0x82};
    memcpy(b, "\x89PNG\r\n\x1a\n", 8);
    put_be32(b + 8, 13);
    memcpy(b + 12, "IHDR", 4);
    put_be32(b + 16, w);
    put_be32(b + 20, h);
    memcpy(b + 24, "\x08\x02\x00\x00\x00", 5); /* 8-bit RGB */
    put_be32(b + 29, crc32_of(b + 12, 17));
    memcpy(b + 33, idat, sizeof idat);
    memcpy(b + 33 + sizeof idat, iend, sizeof iend);
    return 33 + sizeof idat + sizeof iend;
}

Test(image, refuses_huge_declared_sizes) {
    const char *dir = tu_tmpdir("image_huge");
    char path[4200];
    unsigned char b[256];
    size_t n;

    snprintf(path, sizeof path, "%s/big.png", dir);
    n = png_with_size(b, 70000, 70000);
    tu_write(path, b, n);
    expect_fail(path, IMCAP_E_IMAGE, "70000x70000 exceeds the limit of 16384 pixels per side");

    snprintf(path, sizeof path, "%s/wide.png", dir);
    n = png_with_size(b, 100000, 1);
    tu_write(path, b, n);
    expect_fail(path, IMCAP_E_IMAGE, "16384 pixels per side");

    /* Each side is allowed, the product is not: 10000 * 10000 > 64 Mi. */
    snprintf(path, sizeof path, "%s/many.png", dir);
    n = png_with_size(b, 10000, 10000);
    tu_write(path, b, n);
    expect_fail(path, IMCAP_E_IMAGE, "exceeds the limit of 67108864 pixels");

    /* The largest PNG size stb can represent: must still be refused by us. */
    snprintf(path, sizeof path, "%s/max.png", dir);
    n = png_with_size(b, 0xFFFFFFFFu, 0xFFFFFFFFu);
    tu_write(path, b, n);
    expect_fail(path, IMCAP_E_IMAGE, "pixels per side");

    /* JPEG: SOI, SOF0 declaring 60000 x 50000 with 3 components, EOI. */
    static const unsigned char jpg[] = {0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x11, 0x08, 0xC3, 0x50, 0xEA, 0x60, 0x03, 0x01,
                                        0x22, 0x00, 0x02, 0x11, 0x01, 0x03, 0x11, 0x01, 0xFF, 0xD9};
    snprintf(path, sizeof path, "%s/big.jpg", dir);
    tu_write(path, jpg, sizeof jpg);
    expect_fail(path, IMCAP_E_IMAGE, "60000x50000 exceeds the limit");

    /* GIF logical screen 65535 x 2. */
    static const unsigned char gif[] = {'G', 'I', 'F', '8', '9', 'a', 0xFF, 0xFF, 0x02, 0x00, 0x00, 0x00, 0x00, 0x3B};
    snprintf(path, sizeof path, "%s/big.gif", dir);
    tu_write(path, gif, sizeof gif);
    expect_fail(path, IMCAP_E_IMAGE, "65535x2 exceeds the limit");

    /* BMP, BITMAPINFOHEADER, 20000 x -20000 (top-down). */
    unsigned char bmp[54] = {'B', 'M'};
    bmp[10] = 54;
    bmp[14] = 40;
    bmp[18] = 0x20, bmp[19] = 0x4E;                            /* 20000 */
    bmp[22] = 0xE0, bmp[23] = 0xB1, bmp[24] = 0xFF, bmp[25] = 0xFF; /* -20000 */
    bmp[26] = 1;
    bmp[28] = 24;
    snprintf(path, sizeof path, "%s/big.bmp", dir);
    tu_write(path, bmp, sizeof bmp);
    expect_fail(path, IMCAP_E_IMAGE, "20000x20000 exceeds the limit");

    snprintf(path, sizeof path, "%s/big.ppm", dir);
    static const char bigppm[] = "P6\n100000 100000\n255\n";
    tu_write(path, bigppm, sizeof bigppm - 1);
    expect_fail(path, IMCAP_E_IMAGE, "100000x100000 exceeds the limit");
    snprintf(path, sizeof path, "%s/huge.ppm", dir);
    static const char hugeppm[] = "P6\n99999999999999999999 1\n255\n";
    tu_write(path, hugeppm, sizeof hugeppm - 1);
    expect_fail(path, IMCAP_E_IMAGE, "exceeds the limit");

    /* TGA has no magic: the limit is applied to what stb's header parse reports.
     * Uncompressed true-colour, 40000 x 3, 24 bpp. */
    unsigned char tga[18] = {0, 0, 2};
    tga[12] = 0x40, tga[13] = 0x9C; /* 40000 */
    tga[14] = 3;
    tga[16] = 24;
    snprintf(path, sizeof path, "%s/big.tga", dir);
    tu_write(path, tga, sizeof tga);
    expect_fail(path, IMCAP_E_IMAGE, "40000x3 exceeds the limit");
}

Test(image, refuses_malformed_files) {
    const char *dir = tu_tmpdir("image_bad");
    char path[4200];

    snprintf(path, sizeof path, "%s/x.png", dir);
    tu_write(path, "", 0);
    expect_fail(path, IMCAP_E_IMAGE, "empty file");

    snprintf(path, sizeof path, "%s/x.jpg", dir);
    const char *text = "This is a text file, not a JPEG.\nSecond line.\n";
    tu_write(path, text, strlen(text));
    expect_fail(path, IMCAP_E_IMAGE, "not a recognised image (stb: ");

    /* Starts with the BMP magic "BM" but is text: not taken for a BMP
     * (whose garbage "dimensions" would give a misleading message). */
    snprintf(path, sizeof path, "%s/x.bmp", dir);
    text = "BMW and other car brands, a list.\n";
    tu_write(path, text, strlen(text));
    expect_fail(path, IMCAP_E_IMAGE, "not a recognised image (stb: ");

    snprintf(path, sizeof path, "%s/missing.png", dir);
    expect_fail(path, IMCAP_E_IO, "cannot open");
    expect_fail(dir, IMCAP_E_IO, "directory");

    snprintf(path, sizeof path, "%s/x.hdr", dir);
    static const char hdr[] = "#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 1 +X 1\n\x80\x80\x80\x81";
    tu_write(path, hdr, sizeof hdr - 1);
    expect_fail(path, IMCAP_E_IMAGE, "HDR");

    /* A Huffman table whose 16 code counts add up to more than 256: stb
     * 2.27 would write past its tables (seen with an ASan/UBSan-instrumented
     * stb), so load.c refuses it before stb parses anything. */
    /* SOI, an empty COM segment, DHT (AC table 0, 16 counts of 20), EOI. */
    unsigned char jpg[2 + 4 + 4 + 17 + 2] = {0xFF, 0xD8, 0xFF, 0xFE, 0x00, 0x02, 0xFF, 0xC4, 0x00, 19, 0x10};
    for (int i = 0; i < 16; i++) jpg[11 + i] = 20; /* 320 codes */
    jpg[27] = 0xFF, jpg[28] = 0xD9;
    snprintf(path, sizeof path, "%s/dht.jpg", dir);
    tu_write(path, jpg, sizeof jpg);
    expect_fail(path, IMCAP_E_IMAGE, "Huffman table declares 320 codes");

    struct {
        const char *name, *data;
        size_t len;
        const char *needle;
    } pnm[] = {
        {"t.ppm", LIT("P6\n3 2\n255\nabcde"), "truncated"},
        {"t16.pgm", LIT("P5\n2 1\n65535\n\x01\x02\x03"), "truncated"},
        {"t.pbm", LIT("P4\n9 2\n\xff"), "truncated"},
        {"t1.pbm", LIT("P1\n2 2\n1 0 1"), "truncated"},
        {"bad1.pbm", LIT("P1\n2 1\n1 2"), "invalid"},
        {"v.pgm", LIT("P2\n2 1\n15\n3 16\n"), "exceeds maxval"},
        {"v8.pgm", LIT("P5\n1 1\n100\n\xc8"), "exceeds maxval"},
        {"m0.pgm", LIT("P5\n2 1\n0\n\x01\x02"), "maxval"},
        {"m1.pgm", LIT("P5\n2 1\n70000\n\x01\x02"), "maxval"},
        {"nm.pgm", LIT("P5\n2 1\n"), "missing maxval"},
        {"nw.ppm", LIT("P3\n"), "missing width"},
        {"z.ppm", LIT("P6\n0 5\n255\n"), "invalid image size"},
        {"g.pgm", LIT("P2\n2 1\n255\n12 x\n"), "invalid"},
        {"nows.ppm", LIT("P6\n1 1\n255"), "no whitespace"},
    };
    for (size_t i = 0; i < sizeof pnm / sizeof pnm[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, pnm[i].name);
        tu_write(path, pnm[i].data, pnm[i].len);
        expect_fail(path, IMCAP_E_IMAGE, pnm[i].needle);
    }
}

/* A file cut anywhere is refused with a message naming it, or, when the cut
 * only removed bytes the picture does not need (a GIF's second frame, a TGA
 * footer, a BMP's last row padding), decoded to exactly the whole file's
 * picture; never to a partial one (stb alone would fill the missing part with
 * zeros for PNG, BMP, TGA and GIF; load.c checks completeness first). */
Test(image, truncated_files_are_errors) {
    const char *names[] = {"rgb8.png", "palette.png", "grey16.png", "photo.jpg", "photo_prog.jpg",
                           "smooth_grey.jpg", "anim.gif", "rgb.bmp", "rgb.tga", "rgb_rle.tga",
                           "rgb.ppm", "grey16.pgm", "bits.pbm"};
    for (size_t f = 0; f < sizeof names / sizeof names[0]; f++) {
        size_t n;
        unsigned char *full = (unsigned char *)tu_read(fixture(names[f]), &n);
        cr_assert(full && n > 16, "%s", names[f]);
        imcap_image whole;
        imcap_error err = {0};
        cr_assert_eq(imcap_image_load_memory(full, n, names[f], &whole, &err), IMCAP_OK, "%s", err.msg);
        const char *ext = strrchr(names[f], '.');
        int strict = strcmp(ext, ".gif") && strcmp(ext, ".bmp") && strcmp(ext, ".tga");
        int refused = 0, same = 0, differ = 0;
        for (size_t cut = 1; cut < n; cut++) {
            unsigned char *buf = malloc(cut); /* exact size: ASan sees over-reads */
            memcpy(buf, full, cut);
            imcap_image img = {0};
            imcap_status st = imcap_image_load_memory(buf, cut, names[f], &img, &err);
            if (st == IMCAP_OK) {
                int identical = img.width == whole.width && img.height == whole.height &&
                                !memcmp(img.rgb, whole.rgb, (size_t)whole.width * whole.height * 3);
                cr_expect(identical, "%s cut to %zu of %zu bytes was decoded into a different picture", names[f], cut,
                          n);
                /* PNG ends with IEND, JPEG with EOI, and these PNM files
                 * with their last sample: any cut must be refused. */
                cr_expect(!strict, "%s cut to %zu of %zu bytes was accepted", names[f], cut, n);
                same += identical;
                differ += !identical;
            } else {
                cr_expect_eq(st, IMCAP_E_IMAGE, "%s cut to %zu: status %s", names[f], cut, imcap_status_name(st));
                cr_expect(strstr(err.msg, names[f]) != NULL, "message does not name the file: %s", err.msg);
                refused++;
            }
            imcap_image_free(&img);
            free(buf);
        }
        cr_log_info("%s: %d cuts refused, %d decoded identically, %d decoded differently", names[f], refused, same,
                    differ);
        imcap_image_free(&whole);
        free(full);
    }
    /* Through the file API too, for the messages. */
    const char *dir = tu_tmpdir("image_trunc");
    struct {
        const char *name;
        size_t drop;
        const char *needle;
    } c[] = {{"rgb8.png", 20, "truncated PNG"}, {"photo.jpg", 700, "truncated or corrupt JPEG"},
             {"rgb.bmp", 2, "truncated BMP"}, {"rgb.tga", 30, "truncated TGA"}, {"anim.gif", 150, "truncated GIF"}};
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        size_t n;
        char path[4200], *full = tu_read(fixture(c[i].name), &n);
        cr_assert(full && n > c[i].drop);
        snprintf(path, sizeof path, "%s/cut_%s", dir, c[i].name);
        tu_write(path, full, n - c[i].drop);
        expect_fail(path, IMCAP_E_IMAGE, c[i].needle);
        free(full);
    }
}

/* Truncations and byte corruptions of every container: no crash, no leak
 * (ASan), and either a clean error naming the file or a sane image. */
Test(image, corrupt_inputs_never_crash) {
    const char *names[] = {"rgb.bmp", "rgb.tga", "rgb_rle.tga", "anim.gif", "smooth.jpg", "rgba8.png",
                           "palette_trns.png", "rgb.ppm", "bits.pbm", "grey16.pgm"};
    uint64_t rng = 12345;
    int ok = 0, bad = 0;
    for (size_t f = 0; f < sizeof names / sizeof names[0]; f++) {
        size_t n;
        unsigned char *full = (unsigned char *)tu_read(fixture(names[f]), &n);
        cr_assert(full);
        for (int trial = 0; trial < 300; trial++) {
            /* Exact-size heap copy, so ASan sees any read past the end. */
            size_t len = trial < 100 ? (size_t)trial * n / 100 : n;
            unsigned char *buf = malloc(len ? len : 1);
            memcpy(buf, full, len);
            if (trial >= 100)
                for (int k = 0; k < 1 + trial % 4; k++) {
                    rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
                    buf[(rng >> 33) % len] = (unsigned char)(rng >> 13);
                }
            imcap_error err = {0};
            imcap_image img = {0};
            imcap_status st = imcap_image_load_memory(buf, len, names[f], &img, &err);
            if (st == IMCAP_OK) {
                cr_expect(img.rgb && img.width >= 1 && img.height >= 1 && img.width <= IMCAP_MAX_SIDE &&
                          img.height <= IMCAP_MAX_SIDE, "%s trial %d", names[f], trial);
                ok++;
            } else {
                cr_expect_eq(st, IMCAP_E_IMAGE, "%s trial %d: %s", names[f], trial, imcap_status_name(st));
                cr_expect(strstr(err.msg, names[f]) != NULL, "message does not name the file: %s", err.msg);
                cr_expect_null(img.rgb);
                bad++;
            }
            imcap_image_free(&img);
            free(buf);
        }
        free(full);
    }
    cr_log_info("corrupted inputs: %d decoded, %d refused", ok, bad);
}

Test(image, load_arguments) {
    imcap_error err = {0};
    imcap_image img;
    cr_expect_eq(imcap_image_load(NULL, &img, &err), IMCAP_E_ARG);
    cr_expect_eq(imcap_image_load(fixture("rgb8.png"), NULL, &err), IMCAP_E_ARG);
    cr_expect_eq(imcap_image_load_memory("x", 1, "m", NULL, &err), IMCAP_E_ARG);
    cr_expect_eq(imcap_image_load_memory(NULL, 0, "m.png", &img, &err), IMCAP_E_IMAGE);
    cr_expect(strstr(err.msg, "m.png: empty file") != NULL, "%s", err.msg);
    imcap_image_free(NULL);
    imcap_image_free(&img);
}

/* ---------------------------------------------------------------- sniff */

static int sniff_exact(const void *p, size_t n) {
    /* Exact-size heap copy: ASan flags any read beyond n. */
    unsigned char *b = malloc(n ? n : 1);
    memcpy(b, p, n);
    int r = imcap_image_sniff(b, n);
    free(b);
    return r;
}

Test(image, sniff) {
    const char *yes[] = {"smooth.jpg", "rgb8.png", "anim.gif", "rgb.bmp", "rgb.ppm", "grey.pgm", "bits.pbm"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        size_t n;
        char *d = tu_read(fixture(yes[i]), &n);
        cr_expect_eq(sniff_exact(d, n < 32 ? n : 32), 1, "%s not sniffed", yes[i]);
        free(d);
    }
    cr_expect_eq(sniff_exact(LIT("P1\n1 1\n0")), 1);
    cr_expect_eq(sniff_exact(LIT("P3 1 1 255 0 0 0")), 1);
    cr_expect_eq(sniff_exact(LIT("GIF87a")), 1);
    cr_expect_eq(sniff_exact(LIT("8BPS\x00\x01")), 1);
    /* Not images, or too short to tell. */
    cr_expect_eq(sniff_exact(LIT("This is text")), 0);
    cr_expect_eq(sniff_exact(LIT("BMW is a car brand, not a bitmap")), 0);
    cr_expect_eq(sniff_exact(LIT("P7\nWIDTH 1")), 0);
    cr_expect_eq(sniff_exact(LIT("P1X")), 0);
    cr_expect_eq(sniff_exact(LIT("#?RADIANCE\n")), 0);
    cr_expect_eq(sniff_exact(LIT("\x89PNG\r\n\x1a")), 0);
    cr_expect_eq(sniff_exact(LIT("\xFF\xD8")), 0);
    cr_expect_eq(sniff_exact(LIT("")), 0);
    cr_expect_eq(imcap_image_sniff(NULL, 10), 0);
    /* TGA cannot be sniffed (no magic): documented in sniff.c. */
    size_t n;
    char *d = tu_read(fixture("rgb.tga"), &n);
    cr_expect_eq(sniff_exact(d, n), 0);
    free(d);
}

/* ---------------------------------------------------------------- resize */

Test(image, resize_by_hand) {
    imcap_error err = {0};
    /* 2x1 -> 1x1: scale 2, support 2, centre 1.0, window [0, 2) with weights
     * tri(-0.25) = tri(0.25) = 0.75, normalised 0.5 each = 2^21 in fixed
     * point. (10 + 21) * 2^21 + 2^21 = 32 * 2^21 -> >> 22 = 16 (15.5 rounds up). */
    const unsigned char a[6] = {10, 0, 255, 21, 1, 255};
    unsigned char out[6];
    cr_assert_eq(imcap_resize_rgb8(a, 2, 1, out, 1, 1, &err), IMCAP_OK, "%s", err.msg);
    cr_expect(out[0] == 16 && out[1] == 1 && out[2] == 255, "got %d %d %d", out[0], out[1], out[2]);

    /* 3x1 -> 2x1 (grey): scale 1.5, support 1.5, filter argument divided by 1.5.
     * x=0: centre 0.75, window [0, 2): tri(-1/6) = 5/6, tri(1/2) = 1/2,
     *      normalised 0.625, 0.375 -> 0.375 * 90 = 33.75 -> 34.
     * x=1: centre 2.25, window [1, 3): tri(-1/2), tri(1/6) -> 0.375 * 90 +
     *      0.625 * 180 = 146.25 -> 146. */
    const unsigned char b[9] = {0, 0, 0, 90, 90, 90, 180, 180, 180};
    cr_assert_eq(imcap_resize_rgb8(b, 3, 1, out, 2, 1, &err), IMCAP_OK);
    cr_expect(out[0] == 34 && out[3] == 146 && out[1] == 34 && out[5] == 146, "got %d %d", out[0], out[3]);
    /* The same along the other axis (vertical pass only). */
    cr_assert_eq(imcap_resize_rgb8(b, 1, 3, out, 1, 2, &err), IMCAP_OK);
    cr_expect(out[0] == 34 && out[3] == 146, "got %d %d", out[0], out[3]);
}

/* The weights of every output pixel sum to 2^22 up to rounding, so a flat
 * image stays flat whatever the sizes. */
Test(image, resize_keeps_flat_images_flat) {
    imcap_error err = {0};
    const int sizes[][4] = {{1, 1, 224, 224}, {640, 480, 224, 224}, {224, 224, 7, 300}, {3, 1000, 1000, 3}};
    const unsigned char vals[] = {0, 1, 128, 254, 255};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (size_t v = 0; v < sizeof vals; v++) {
            int sw = sizes[s][0], sh = sizes[s][1], dw = sizes[s][2], dh = sizes[s][3];
            unsigned char *src = malloc((size_t)sw * sh * 3), *dst = malloc((size_t)dw * dh * 3);
            memset(src, vals[v], (size_t)sw * sh * 3);
            cr_assert_eq(imcap_resize_rgb8(src, sw, sh, dst, dw, dh, &err), IMCAP_OK, "%s", err.msg);
            size_t bad = 0;
            for (size_t i = 0; i < (size_t)dw * dh * 3; i++) bad += dst[i] != vals[v];
            cr_expect_eq(bad, 0, "%dx%d -> %dx%d of %d: %zu samples changed", sw, sh, dw, dh, vals[v], bad);
            free(src);
            free(dst);
        }
}

Test(image, resize_arguments) {
    imcap_error err = {0};
    unsigned char px[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, out[12];
    cr_expect_eq(imcap_resize_rgb8(px, 0, 1, out, 1, 1, &err), IMCAP_E_ARG);
    cr_expect(strstr(err.msg, "resize") != NULL, "%s", err.msg);
    cr_expect_eq(imcap_resize_rgb8(px, 2, 2, out, 2, -1, &err), IMCAP_E_ARG);
    cr_expect_eq(imcap_resize_rgb8(NULL, 2, 2, out, 1, 1, &err), IMCAP_E_ARG);
    cr_expect_eq(imcap_resize_rgb8(px, 2, 2, NULL, 1, 1, &err), IMCAP_E_ARG);
    /* Same size: a copy (PIL returns a copy too). */
    cr_expect_eq(imcap_resize_rgb8(px, 2, 2, out, 2, 2, &err), IMCAP_OK);
    cr_expect(!memcmp(px, out, 12));
    /* Sizes beyond the image limits are refused before any allocation. */
    cr_expect_eq(imcap_resize_rgb8(px, 2, 2, out, 2147483647, 2147483647, &err), IMCAP_E_ARG);
    cr_expect(strstr(err.msg, "exceeds the image limits") != NULL, "%s", err.msg);
    cr_expect_eq(imcap_resize_rgb8(px, 2, 2, out, IMCAP_MAX_SIDE + 1, 1, &err), IMCAP_E_ARG);
    cr_expect_eq(imcap_resize_rgb8(px, 2, 2, out, IMCAP_MAX_SIDE, IMCAP_MAX_SIDE, &err), IMCAP_E_ARG);
}

/* ---------------------------------------------------------------- normalise */

Test(image, normalise_by_hand) {
    /* 2x2 image; mean 0.5, std 0.5 gives x = 2p/255 - 1: 0 -> -1, 255 -> 1
     * exactly; 51 -> 0.2 -> -0.6; 102 -> 0.4 -> -0.2. */
    const unsigned char rgb[12] = {0, 255, 51, 255, 0, 102, 51, 102, 0, 102, 51, 255};
    const float half[3] = {0.5f, 0.5f, 0.5f};
    float out[12];
    imcap_normalise(rgb, 2, half, half, out);
    /* Layout [3, S, S]: channel-major. */
    const float want[12] = {-1, 1, -0.6f, -0.2f, /* R of pixels 0..3 */ 1, -1, -0.2f, -0.6f, /* G */
                            -0.6f, -0.2f, -1, 1 /* B */};
    for (int i = 0; i < 12; i++) cr_expect(fabsf(out[i] - want[i]) < 1e-6f, "out[%d] = %.9g, want %.9g", i, out[i], want[i]);
    cr_expect_eq(out[0], -1.0f);
    cr_expect_eq(out[1], 1.0f);

    /* ImageNet statistics: p = 128, R: (128/255 - 0.485) / 0.229
     * = (0.50196078 - 0.485) / 0.229 = 0.0740645 (by hand, 6 digits). */
    const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    unsigned char grey[3] = {128, 128, 128};
    float o3[3];
    imcap_normalise(grey, 1, mean, std, o3);
    cr_expect(fabsf(o3[0] - 0.0740645f) < 2e-6f, "%.9g", o3[0]);
    /* G: (0.50196078 - 0.456) / 0.224 = 0.2051821; B: (0.50196078 - 0.406) / 0.225 = 0.4264924. */
    cr_expect(fabsf(o3[1] - 0.2051821f) < 2e-6f, "%.9g", o3[1]);
    cr_expect(fabsf(o3[2] - 0.4264924f) < 2e-6f, "%.9g", o3[2]);
}

/* Bit-exact against torchvision's op sequence, ToTensor (float(p) / 255)
 * then Normalize ((x - mean) / std), each op rounded to float32, for every
 * byte value; and this differs from a double-precision evaluation for some
 * values, so the check has teeth. */
Test(image, normalise_is_float32_torchvision) {
    const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    unsigned char rgb[16 * 16 * 3];
    for (int i = 0; i < 256; i++) rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = (unsigned char)i;
    float out[3 * 256];
    imcap_normalise(rgb, 16, mean, std, out);
    int differs_from_double = 0;
    for (int c = 0; c < 3; c++)
        for (int p = 0; p < 256; p++) {
            volatile float x = (float)p / 255.0f;
            volatile float d = x - mean[c];
            volatile float want = d / std[c];
            cr_expect_eq(out[c * 256 + p], want, "c %d p %d: %.9g vs %.9g", c, p, out[c * 256 + p], want);
            float dbl = (float)(((double)p / 255.0 - (double)mean[c]) / (double)std[c]);
            differs_from_double += dbl != want;
        }
    cr_expect_gt(differs_from_double, 0);
}

Test(image, to_input) {
    imcap_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.image_size = 4;
    for (int c = 0; c < 3; c++) cfg.mean[c] = 0.25f * (float)c, cfg.std[c] = 0.5f + 0.1f * (float)c;
    imcap_image img;
    load_ok(fixture("checker_5x7.png"), &img);
    float got[48], want[48];
    unsigned char r[48];
    imcap_error err = {0};
    cr_assert_eq(imcap_image_to_input(&img, &cfg, got, &err), IMCAP_OK, "%s", err.msg);
    cr_assert_eq(imcap_resize_rgb8(img.rgb, 5, 7, r, 4, 4, &err), IMCAP_OK);
    imcap_normalise(r, 4, cfg.mean, cfg.std, want);
    cr_expect(!memcmp(got, want, sizeof got), "resize + normalise differs");
    imcap_image_free(&img);

    /* Already S x S: no resampling at all. */
    unsigned char px[48];
    for (int i = 0; i < 48; i++) px[i] = (unsigned char)(i * 5);
    imcap_image sq = {4, 4, px};
    cr_assert_eq(imcap_image_to_input(&sq, &cfg, got, &err), IMCAP_OK);
    imcap_normalise(px, 4, cfg.mean, cfg.std, want);
    cr_expect(!memcmp(got, want, sizeof got));

    imcap_image empty = {0, 0, NULL};
    cr_expect_eq(imcap_image_to_input(&empty, &cfg, got, &err), IMCAP_E_ARG);
    cr_expect_eq(imcap_image_to_input(NULL, &cfg, got, &err), IMCAP_E_ARG);
}

/* ---------------------------------------------------------------- PNG out */

Test(image, png_write_round_trip) {
    const char *dir = tu_tmpdir("image_png");
    char path[4200];
    unsigned char rgba[5 * 3 * 4], rgb[5 * 3 * 3];
    for (int i = 0; i < 15; i++) {
        for (int c = 0; c < 3; c++) rgb[3 * i + c] = rgba[4 * i + c] = (unsigned char)(i * 17 + c * 80);
        rgba[4 * i + 3] = (unsigned char)(i * 13);
    }
    imcap_error err = {0};
    for (int ch = 3; ch <= 4; ch++) {
        snprintf(path, sizeof path, "%s/out%d.png", dir, ch);
        cr_assert_eq(imcap_png_write(path, ch == 3 ? rgb : rgba, 5, 3, ch, &err), IMCAP_OK, "%s", err.msg);
        imcap_image img;
        load_ok(path, &img);
        cr_expect(img.width == 5 && img.height == 3 && !memcmp(img.rgb, rgb, sizeof rgb), "channels %d", ch);
        imcap_image_free(&img);
    }
    /* Written atomically: nothing but the two outputs is left behind. */
    DIR *dd = opendir(dir);
    int files = 0;
    for (struct dirent *e; (e = readdir(dd));)
        if (e->d_name[0] != '.') files++;
    closedir(dd);
    cr_expect_eq(files, 2);

    int len = 0;
    unsigned char *png = imcap_png_encode(rgb, 5, 3, 3, &len);
    cr_assert(png && len > 8 && !memcmp(png, "\x89PNG\r\n\x1a\n", 8));
    imcap_image m;
    cr_assert_eq(imcap_image_load_memory(png, (size_t)len, "mem.png", &m, &err), IMCAP_OK, "%s", err.msg);
    cr_expect(!memcmp(m.rgb, rgb, sizeof rgb));
    imcap_image_free(&m);
    free(png);

    cr_expect_null(imcap_png_encode(rgb, 5, 3, 2, &len));
    cr_expect_eq(len, 0);
    snprintf(path, sizeof path, "%s/bad.png", dir);
    cr_expect_eq(imcap_png_write(path, rgb, 0, 3, 3, &err), IMCAP_E_ARG);
    cr_expect(strstr(err.msg, path) != NULL, "%s", err.msg);
    snprintf(path, sizeof path, "%s/no/such/dir/x.png", dir);
    cr_expect_eq(imcap_png_write(path, rgb, 5, 3, 3, &err), IMCAP_E_IO);
}

/* The fast PNG path (libdeflate) gives stb's exact pixels for every PNG it
 * takes, and leaves the others to stb: the fixtures (grey, grey+alpha,
 * RGB, RGBA, 16-bit, palette, interlaced) and synthetic scenes, whose rows
 * use every filter type (stb_image_write picks one per row). */
Test(png_fast, same_pixels_as_stb) {
    const char *dir = tu_tmpdir("png_fast");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' synth --count 40 --seed 3 --size 96 -o '%s/s' >/dev/null 2>&1", tu_exe(), dir);
    cr_assert_eq(tu_run(cmd, NULL, NULL), 0);
    const char *dirs[2] = {tu_src("tests/data/images"), NULL};
    char sdir[1100];
    snprintf(sdir, sizeof sdir, "%s/s/images", dir);
    dirs[1] = sdir;
    int fast = 0, slow = 0;
    for (int k = 0; k < 2; k++) {
        DIR *dh = opendir(dirs[k]);
        cr_assert_not_null(dh, "%s", dirs[k]);
        struct dirent *de;
        while ((de = readdir(dh))) {
            size_t l = strlen(de->d_name);
            if (l < 4 || strcmp(de->d_name + l - 4, ".png")) continue;
            char path[2300];
            snprintf(path, sizeof path, "%s/%s", dirs[k], de->d_name);
            size_t n;
            char *data = tu_read(path, &n);
            cr_assert_not_null(data);
            int w, h, sw, sh, sc;
            unsigned char *px;
            unsigned char *ref = stbi_load_from_memory((unsigned char *)data, (int)n, &sw, &sh, &sc, 3);
            if (imcap_png_decode_fast((unsigned char *)data, n, &w, &h, &px)) {
                fast++;
                cr_assert_not_null(ref, "%s: the fast path decoded what stb refuses", path);
                cr_expect(w == sw && h == sh && memcmp(px, ref, (size_t)w * h * 3) == 0, "%s: pixels differ from stb", path);
                free(px);
            } else {
                slow++;
            }
            stbi_image_free(ref);
            free(data);
        }
        closedir(dh);
    }
    fprintf(stderr, "png_fast: %d PNGs through libdeflate, %d left to stb\n", fast, slow);
    cr_expect(fast >= 40 && slow >= 3, "fast %d, stb %d", fast, slow);
}

/* Noise with smooth gradients makes stb_image_write choose every filter,
 * Paeth included, for 3- and 4-byte pixels (the vectorised Paeth) at odd
 * widths; the fast path must give stb's pixels, the last pixel of the last
 * row included. */
Test(png_fast, paeth_rows_rgb_and_rgba) {
    const char *dir = tu_tmpdir("png_paeth");
    unsigned r = 12345;
    for (int ch = 3; ch <= 4; ch++)
        for (int w = 1; w <= 41; w += 8) {
            int h = 9 + w % 5;
            unsigned char *pix = malloc((size_t)w * h * ch);
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                    for (int c = 0; c < ch; c++) {
                        r = r * 1103515245u + 12345u;
                        pix[((size_t)y * w + x) * ch + c] = (unsigned char)(x * 7 + y * 5 * c + ((r >> 16) & 15));
                    }
            char path[1100];
            snprintf(path, sizeof path, "%s/p%d_%d.png", dir, ch, w);
            imcap_error err;
            cr_assert_eq(imcap_png_write(path, pix, w, h, ch, &err), IMCAP_OK, "%s", err.msg);
            size_t n;
            char *data = tu_read(path, &n);
            int fw, fh, sw, sh, sc;
            unsigned char *px = NULL, *ref = stbi_load_from_memory((unsigned char *)data, (int)n, &sw, &sh, &sc, 3);
            cr_assert_eq(imcap_png_decode_fast((unsigned char *)data, n, &fw, &fh, &px), 1, "%s: not on the fast path", path);
            cr_assert(ref && fw == sw && fh == sh);
            cr_expect(!memcmp(px, ref, (size_t)w * h * 3), "%s: pixels differ from stb's", path);
            free(px), stbi_image_free(ref), free(data), free(pix);
        }
}

/* A corrupt stream (a flipped byte in the middle of the IDAT data) is not
 * taken by the fast path: stb's verdict stands. */
Test(png_fast, corrupt_data_goes_to_stb) {
    size_t n;
    char *data = tu_read(tu_src("tests/data/images/rgb8.png"), &n);
    cr_assert_not_null(data);
    int w, h;
    unsigned char *px;
    cr_assert_eq(imcap_png_decode_fast((unsigned char *)data, n, &w, &h, &px), 1);
    free(px);
    char *idat = memmem(data, n, "IDAT", 4);
    cr_assert_not_null(idat);
    idat[4 + 20] ^= 0x55;
    cr_expect_eq(imcap_png_decode_fast((unsigned char *)data, n, &w, &h, &px), 0);
    free(data);
}

/* Every prefix of an 8-bit paletted BMP that ends before its last row's
 * pixels is refused as truncated, the ones that end inside the headers
 * included (a cut to 29-33 bytes used to be captioned, exit 0); only the
 * last row's padding may be missing. */
Test(bmp, every_short_prefix_is_refused) {
    enum { W = 2, H = 2, PAL = 256 * 4, OFF = 14 + 40 + PAL, ROW = 4, SIZE = OFF + ROW * H };
    unsigned char f[SIZE];
    memset(f, 0, sizeof f);
    f[0] = 'B', f[1] = 'M';
    f[2] = SIZE & 255, f[3] = SIZE >> 8;
    f[10] = OFF & 255, f[11] = OFF >> 8;
    f[14] = 40;               /* BITMAPINFOHEADER */
    f[18] = W, f[22] = H;     /* width, height (bottom-up) */
    f[26] = 1, f[28] = 8;     /* planes, bits per pixel */
    for (int i = 0; i < 256; i++) f[54 + 4 * i] = f[55 + 4 * i] = f[56 + 4 * i] = (unsigned char)i;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) f[OFF + y * ROW + x] = (unsigned char)(60 * y + 100 * x + 20);
    imcap_image img;
    imcap_error err;
    cr_assert_eq(imcap_image_load_memory(f, SIZE, "full.bmp", &img, &err), IMCAP_OK, "%s", err.msg);
    imcap_image_free(&img);
    for (size_t n = 18; n < (size_t)OFF + ROW + W; n++) {
        imcap_status s = imcap_image_load_memory(f, n, "cut.bmp", &img, &err);
        cr_expect_neq(s, IMCAP_OK, "a BMP cut to %zu of %d bytes loaded", n, SIZE);
        if (s == IMCAP_OK) imcap_image_free(&img);
        else cr_expect(strstr(err.msg, "cut.bmp"), "%s", err.msg);
    }
}

/* fuzz_image's finding: "P5" or "P6" followed by no white space is not PNM to
 * imcap, but stb took it as PNM and read past the 18 bytes of pixel data it
 * did not have. Every such file is refused before stb sees it. */
Test(image, pnm_magic_without_space_is_refused) {
    const char *p = tu_src("tests/data/fuzz-regressions/fuzz_image/pnm_no_space_after_magic.pgm");
    imcap_image img;
    imcap_error err;
    cr_assert_eq(imcap_image_load(p, &img, &err), IMCAP_E_IMAGE, "%s", err.msg);
    cr_expect(strstr(err.msg, "pnm_no_space_after_magic.pgm") && strstr(err.msg, "PNM"), "%s", err.msg);
    cr_expect_null(img.rgb);
    static const char p6[] = "P6" "2 1 255 abcdef";
    cr_expect_eq(imcap_image_load_memory(p6, sizeof p6 - 1, "p6", &img, &err), IMCAP_E_IMAGE, "%s", err.msg);
}
