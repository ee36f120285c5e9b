/* test_util.c — JSON string escaping, atomic files, the RNG. */
#include <criterion/criterion.h>
#include <math.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "util/util.h"

static char *json(const char *s) {
    imcap_buf b = {0};
    imcap_buf_json_string(&b, s);
    return b.s;
}

Test(util, json_string_escapes) {
    char *j = json("a\"b\\c\nd\te\x01");
    cr_assert_str_eq(j, "\"a\\\"b\\\\c\\nd\\te\\u0001\"");
    free(j);
    j = json("caf\xc3\xa9 \xe2\x80\x99 \xf0\x9f\x98\x80"); /* valid UTF-8 passes through */
    cr_assert_str_eq(j, "\"caf\xc3\xa9 \xe2\x80\x99 \xf0\x9f\x98\x80\"");
    free(j);
}

Test(util, json_string_escapes_invalid_utf8_losslessly) {
    /* a lone continuation byte, a truncated sequence, an overlong '/', a
     * surrogate: each byte as \udcXX (Python's surrogateescape), DEL as \u007f */
    char *j = json("x\x80y\xc3z\xc0\xafw\xed\xa0\x80\x7f");
    cr_assert_str_eq(j, "\"x\\udc80y\\udcc3z\\udcc0\\udcafw\\udced\\udca0\\udc80\\u007f\"");
    free(j);
}

Test(util, tsv_field_escapes) {
    imcap_buf b = {0};
    imcap_buf_tsv_field(&b, "a\tb\nc\rd\\e");
    cr_assert_str_eq(b.s, "a\\tb\\nc\\rd\\\\e");
    imcap_buf_free(&b);
}

static int count_files(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

Test(util, atomic_write_leaves_no_temporary) {
    const char *dir = tu_tmpdir("util_atomic");
    char path[4200];
    snprintf(path, sizeof path, "%s/out.txt", dir);
    imcap_error err;
    cr_assert_eq(imcap_write_file_atomic(path, "old", 3, &err), IMCAP_OK);
    imcap_atomic_file af;
    cr_assert_eq(imcap_atomic_open(&af, path, &err), IMCAP_OK);
    fputs("half-written", af.f);
    imcap_atomic_abort(&af); /* an interrupted writer: the old file stays whole */
    char *got = tu_read(path, NULL);
    cr_assert_str_eq(got, "old");
    free(got);
    cr_assert_eq(count_files(dir), 1);
    cr_assert_eq(imcap_write_file_atomic(path, "new", 3, &err), IMCAP_OK);
    got = tu_read(path, NULL);
    cr_assert_str_eq(got, "new");
    free(got);
    cr_assert_eq(count_files(dir), 1);
    snprintf(path, sizeof path, "%s/no/such/dir/x", dir);
    cr_assert_eq(imcap_write_file_atomic(path, "x", 1, &err), IMCAP_E_IO);
    cr_assert(strstr(err.msg, "no/such/dir") != NULL, "%s", err.msg);
}

Test(util, rng_is_deterministic_and_uniformish) {
    imcap_rng a, b;
    imcap_rng_seed(&a, 42);
    imcap_rng_seed(&b, 42);
    double sum = 0;
    for (int i = 0; i < 10000; i++) {
        uint64_t x = imcap_rng_next(&a);
        cr_assert_eq(x, imcap_rng_next(&b));
    }
    imcap_rng_seed(&a, 43);
    for (int i = 0; i < 100000; i++) {
        double u = imcap_rng_uniform(&a);
        cr_assert(u >= 0 && u < 1);
        sum += u;
    }
    /* mean of 1e5 uniforms: sd 0.29 / sqrt(1e5) = 9e-4; 5 sd */
    cr_assert(sum / 100000 > 0.5 - 0.0046 && sum / 100000 < 0.5 + 0.0046, "mean %g", sum / 100000);
}

/* ---- half precision (the feature cache) */

Test(half, round_trip_and_rounding) {
    for (uint32_t h = 0; h < 65536; h++) {
        float f = imcap_half_to_float((uint16_t)h);
        if (f != f) continue; /* NaN payloads: stay NaN */
        cr_expect_eq(imcap_float_to_half(f), h, "half %04x -> %g -> %04x", h, f, imcap_float_to_half(f));
    }
    cr_expect_eq(imcap_float_to_half(1.0f), 0x3c00);
    cr_expect_eq(imcap_float_to_half(-2.0f), 0xc000);
    cr_expect_eq(imcap_float_to_half(65504.0f), 0x7bff);
    cr_expect_eq(imcap_float_to_half(65520.0f), 0x7c00, "rounds up to infinity");
    cr_expect_eq(imcap_float_to_half(65519.0f), 0x7bff);
    cr_expect_eq(imcap_float_to_half(ldexpf(1.0f, -24)), 0x0001, "smallest subnormal");
    cr_expect_eq(imcap_float_to_half(ldexpf(1.0f, -26)), 0x0000, "below half the smallest: zero");
    cr_expect_eq(imcap_float_to_half(1.0f + ldexpf(1.0f, -11)), 0x3c00, "a tie goes to even");
    cr_expect_eq(imcap_float_to_half(1.0f + 3 * ldexpf(1.0f, -11)), 0x3c02, "a tie goes to even (up)");
    cr_expect_eq(imcap_float_to_half(1.0f + ldexpf(1.0f, -11) + ldexpf(1.0f, -20)), 0x3c01, "above the tie");
    cr_expect(imcap_float_to_half(NAN) & 0x7c00 && imcap_float_to_half(NAN) & 0x3ff, "NaN stays NaN");
    cr_expect_eq(imcap_float_to_half(INFINITY), 0x7c00);
}
