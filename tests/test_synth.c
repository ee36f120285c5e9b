/* test_synth.c — the synthetic world (`imcap synth`) and the object /
 * attention metrics of eval/objects.h. */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/dataset.h"
#include "data/synth.h"
#include "eval/objects.h"
#include "testutil.h"

/* ---------------------------------------------------------------- helpers */

static int same_file(const char *a, const char *b) {
    size_t na, nb;
    char *x = tu_read(a, &na), *y = tu_read(b, &nb);
    int same = x && y && na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

static int exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

static void generate(const char *dir, uint64_t seed, long count, int side) {
    imcap_synth_params p = {.count = count, .seed = seed, .side = side, .fractions = {0.8, 0.1, 0.1}};
    imcap_error err;
    imcap_status s = imcap_synth_generate(&p, dir, &err);
    cr_assert_eq(s, IMCAP_OK, "%s", err.msg);
}

/* Compares two generated sets: dataset.json and every PNG. */
static int same_sets(const char *a, const char *b, long count) {
    char pa[4400], pb[4400];
    snprintf(pa, sizeof pa, "%s/dataset.json", a);
    snprintf(pb, sizeof pb, "%s/dataset.json", b);
    if (!same_file(pa, pb)) return 0;
    for (long i = 0; i < count; i++) {
        snprintf(pa, sizeof pa, "%s/images/%06ld.png", a, i);
        snprintf(pb, sizeof pb, "%s/images/%06ld.png", b, i);
        if (!same_file(pa, pb)) return 0;
    }
    return 1;
}

/* ---------------------------------------------------------------- determinism */

Test(synth, same_seed_same_bytes_any_thread_count) {
    char a[4096], b[4096], c[4096];
    snprintf(a, sizeof a, "%s", tu_tmpdir("synth_det_a"));
    snprintf(b, sizeof b, "%s", tu_tmpdir("synth_det_b"));
    snprintf(c, sizeof c, "%s", tu_tmpdir("synth_det_c"));
    omp_set_num_threads(1);
    generate(a, 11, 40, 64);
    omp_set_num_threads(2);
    generate(b, 11, 40, 64);
    cr_expect(same_sets(a, b, 40), "same seed, 1 vs 2 threads: the sets differ");
    generate(c, 12, 40, 64);
    char pa[4200], pc[4200];
    snprintf(pa, sizeof pa, "%s/dataset.json", a);
    snprintf(pc, sizeof pc, "%s/dataset.json", c);
    cr_expect(!same_file(pa, pc), "seeds 11 and 12 gave the same dataset.json");
    int differ = 0;
    for (int i = 0; i < 40; i++) {
        snprintf(pa, sizeof pa, "%s/images/%06d.png", a, i);
        snprintf(pc, sizeof pc, "%s/images/%06d.png", c, i);
        differ += !same_file(pa, pc);
    }
    cr_expect_eq(differ, 40, "seeds 11 and 12: only %d of 40 images differ", differ);
}

Test(synth, scene_is_a_function_of_seed_and_index) {
    /* scene 7 made alone equals scene 7 made after others (own streams) */
    imcap_synth_scene s1, s2;
    imcap_error err;
    cr_assert_eq(imcap_synth_scene_make(5, 7, 64, &s1, &err), IMCAP_OK);
    for (int i = 0; i < 7; i++) cr_assert_eq(imcap_synth_scene_make(5, i, 64, &s2, &err), IMCAP_OK);
    cr_assert_eq(imcap_synth_scene_make(5, 7, 64, &s2, &err), IMCAP_OK);
    cr_expect_eq(s1.n, s2.n);
    for (int k = 0; k < IMCAP_SYNTH_N_CAPTIONS; k++) cr_expect_str_eq(s1.captions[k].raw, s2.captions[k].raw);
    cr_expect_eq(imcap_synth_scene_make(5, 0, 8, &s1, &err), IMCAP_E_ARG, "side 8 accepted");
}

/* ---------------------------------------------------------------- captions */

/* The grammar's whole vocabulary (synth_caption.c's header). */
static const char *const grammar_words[] = {
    "a", "an", "two", "three", "four", "small", "large", "red", "green", "blue", "yellow", "purple", "orange",
    "white", "black", "circle", "square", "triangle", "star", "cross", "ring", "diamond", "circles", "squares",
    "triangles", "stars", "crosses", "rings", "diamonds", "to", "the", "left", "right", "of", "above", "over",
    "below", "under", "there", "is", "are", "picture", "image", "drawing", "and", NULL};

static int grammar_index(const char *w) {
    for (int i = 0; grammar_words[i]; i++)
        if (!strcmp(grammar_words[i], w)) return i;
    return -1;
}

/* The relation rule re-derived here from the pixel boxes, so the check does
 * not only trust the shared function: a LEFT of b iff a.x1/side + 0.03 <=
 * b.x0/side (and so on). */
static int rel_from_pixels(const cJSON *a, const cJSON *b, int rel, int side) {
    double A[4], B[4];
    for (int k = 0; k < 4; k++) {
        A[k] = cJSON_GetArrayItem(cJSON_GetObjectItem(a, "bbox"), k)->valuedouble / side;
        B[k] = cJSON_GetArrayItem(cJSON_GetObjectItem(b, "bbox"), k)->valuedouble / side;
    }
    switch (rel) {
    case IMCAP_REL_LEFT: return A[2] + 0.03 <= B[0] + 1e-6;
    case IMCAP_REL_RIGHT: return B[2] + 0.03 <= A[0] + 1e-6;
    case IMCAP_REL_ABOVE: return A[3] + 0.03 <= B[1] + 1e-6;
    default: return B[3] + 0.03 <= A[1] + 1e-6;
    }
}

Test(synth, every_caption_parses_back_to_its_scene) {
    const int n_scenes = 400, G = 8, side = 64;
    int used[64] = {0};
    long relations = 0, counted = 0, pointed = 0, mentions_checked = 0;
    int objects_hist[IMCAP_SYNTH_MAX_OBJECTS + 1] = {0};
    for (int i = 0; i < n_scenes; i++) {
        imcap_synth_scene sc;
        imcap_error err;
        cr_assert_eq(imcap_synth_scene_make(2024, i, side, &sc, &err), IMCAP_OK, "%s", err.msg);
        cr_assert(sc.n >= 1 && sc.n <= IMCAP_SYNTH_MAX_OBJECTS);
        objects_hist[sc.n]++;
        char *oj = imcap_synth_objects_json(&sc);
        imcap_scene scene;
        cr_assert_eq(imcap_scene_from_json(oj, &scene, &err), IMCAP_OK, "%s", err.msg);
        cJSON *objs = cJSON_Parse(oj);
        cr_assert_not_null(objs);
        free(oj);
        cr_assert_eq(scene.n, sc.n);
        for (int s = 0; s < IMCAP_SYNTH_N_CAPTIONS; s++) {
            const imcap_synth_caption *c = &sc.captions[s];
            cr_assert(c->n_words >= 4 && c->n_words <= IMCAP_SYNTH_MAX_WORDS, "scene %d: %d words", i, c->n_words);
            /* the spec's tokeniser gives exactly the caption's words */
            char **tok;
            int nt = imcap_tokenize(c->raw, &tok);
            cr_assert_eq(nt, c->n_words, "scene %d: \"%s\"", i, c->raw);
            for (int k = 0; k < nt; k++) {
                cr_assert_str_eq(tok[k], c->words[k]);
                int g = grammar_index(tok[k]);
                cr_assert(g >= 0, "scene %d: word \"%s\" is outside the grammar", i, tok[k]);
                used[g] = 1;
            }
            imcap_tokens_free(tok, nt);

            /* attention: at each shape word, one-hot on the cell holding the
             * named object's box centre; elsewhere uniform */
            float *att = calloc((size_t)c->n_words * G * G, sizeof *att);
            for (int k = 0; k < c->n_words; k++)
                for (int q = 0; q < G * G; q++) att[k * G * G + q] = 1.0f / (G * G);
            for (int m = 0; m < c->n_mentions; m++) {
                const imcap_synth_mention *me = &c->mentions[m];
                const imcap_synth_object *o = &sc.obj[me->object];
                /* the mention's words are the object's words */
                const char *sw = c->words[me->shape_word];
                cr_assert(!strcmp(sw, imcap_synth_shape_names[o->shape]) ||
                          !strcmp(sw, imcap_synth_shape_plurals[o->shape]), "scene %d: shape word \"%s\"", i, sw);
                int has_size = 0, has_colour = 0;
                for (int w = 0; w < me->n_words; w++) {
                    has_size |= !strcmp(c->words[me->words[w]], imcap_synth_size_names[o->size]);
                    has_colour |= !strcmp(c->words[me->words[w]], imcap_synth_colour_names[o->colour]);
                }
                cr_assert(has_size && has_colour, "scene %d caption %d: mention words of object %d", i, s,
                          me->object);
                mentions_checked++;
                float mx = 0.5f * (o->box.x0 + o->box.x1), my = 0.5f * (o->box.y0 + o->box.y1);
                int cell = (int)(my * G) * G + (int)(mx * G);
                float *map = att + (size_t)me->shape_word * G * G;
                memset(map, 0, sizeof(float) * G * G);
                map[cell] = 1;
            }
            cr_assert_eq(c->n_mentions, sc.n, "scene %d: %d mentions for %d objects", i, c->n_mentions, sc.n);

            imcap_object_stats st = {0};
            imcap_object_stats_add(&st, &scene, c->n_words, c->words, att, G, G);
            free(att);
            cr_assert(st.tp == sc.n && st.fp == 0 && st.fn == 0, "scene %d: \"%s\": tp %g fp %g fn %g", i, c->raw,
                      st.tp, st.fp, st.fn);
            cr_assert_eq(st.rel_correct, st.rel_total, "scene %d: \"%s\": a wrong relation", i, c->raw);
            cr_assert_eq(st.point_hits, sc.n, "scene %d: \"%s\": pointing %ld of %d", i, c->raw, st.point_hits, sc.n);
            relations += st.rel_total;
            pointed += st.point_total;

            /* relations against the pixel boxes; counts against the objects */
            imcap_parsed_caption pc;
            imcap_caption_parse(c->n_words, c->words, &pc);
            for (int m = 0; m < pc.n_mentions; m++) counted += pc.m[m].count > 1;
            for (int k = 0; k < pc.n_relations; k++) {
                const imcap_mention *ma = &pc.m[pc.r[k].a], *mb = &pc.m[pc.r[k].b];
                for (int oa = 0; oa < sc.n; oa++)
                    for (int ob = 0; ob < sc.n; ob++) {
                        const imcap_synth_object *A = &sc.obj[oa], *B = &sc.obj[ob];
                        if (A->shape == ma->shape && A->colour == ma->colour && A->size == ma->size &&
                            B->shape == mb->shape && B->colour == mb->colour && B->size == mb->size)
                            cr_assert(rel_from_pixels(cJSON_GetArrayItem(objs, oa), cJSON_GetArrayItem(objs, ob),
                                                      pc.r[k].rel, side),
                                      "scene %d: \"%s\": relation %d", i, c->raw, k);
                    }
            }
        }
        cJSON_Delete(objs);
    }
    /* every word of the grammar but the rare "four" shows up in 2000 captions */
    for (int g = 0; grammar_words[g]; g++)
        if (strcmp(grammar_words[g], "four")) cr_expect(used[g], "word \"%s\" never generated", grammar_words[g]);
    cr_expect_gt(relations, 1000, "only %ld relations stated", relations);
    cr_expect_gt(counted, 100, "only %ld counted mentions", counted);
    cr_expect_eq(pointed, mentions_checked);
    for (int n = 1; n <= IMCAP_SYNTH_MAX_OBJECTS; n++)
        cr_expect_gt(objects_hist[n], n_scenes / 10, "%d scenes with %d objects", objects_hist[n], n);
}

Test(synth, objects_are_drawn_where_the_json_says) {
    const int side = 64;
    unsigned char rgb[64 * 64 * 3];
    for (int i = 0; i < 60; i++) {
        imcap_synth_scene sc;
        imcap_error err;
        cr_assert_eq(imcap_synth_scene_make(99, i, side, &sc, &err), IMCAP_OK);
        imcap_synth_render(&sc, rgb);
        for (int k = 0; k < sc.n; k++) {
            const imcap_synth_object *o = &sc.obj[k];
            /* sizes: diameters 19..21% and 32.5..35.5% of the side */
            double d = 2 * o->radius / side;
            if (o->size == IMCAP_SIZE_SMALL) cr_expect(d >= 0.19 - 1e-6 && d <= 0.21 + 1e-6, "small %g", d);
            else cr_expect(d >= 0.325 - 1e-6 && d <= 0.355 + 1e-6, "large %g", d);
            cr_expect(o->bbox[0] >= 0 && o->bbox[1] >= 0 && o->bbox[2] <= side && o->bbox[3] <= side);
            /* a pixel well inside the shape has the fill colour, give or take
             * noise (sigma <= 4 + 2) and shading (<= 6%): 30 levels. The ring's
             * centre is a hole, so it is sampled on the band. */
            double px = o->cx, py = o->cy;
            if (o->shape == IMCAP_SHAPE_RING) px += 0.78 * o->radius;
            const unsigned char *p = rgb + ((size_t)(int)py * side + (int)px) * 3;
            for (int ch = 0; ch < 3; ch++)
                cr_expect(fabs(p[ch] - o->rgb[ch]) < 30, "scene %d object %d (%s): channel %d is %d, fill %.0f", i, k,
                          imcap_synth_shape_names[o->shape], ch, p[ch], o->rgb[ch]);
        }
        /* the background is not flat: many grey levels away from objects */
        int seen[256] = {0}, levels = 0;
        for (int y = 0; y < side; y++)
            for (int x = 0; x < side; x++) {
                int in = 0;
                for (int k = 0; k < sc.n; k++)
                    in |= x + 1 >= sc.obj[k].bbox[0] && x <= sc.obj[k].bbox[2] + 1 && y + 1 >= sc.obj[k].bbox[1] &&
                          y <= sc.obj[k].bbox[3] + 1;
                if (!in) seen[rgb[(y * side + x) * 3 + 1]] = 1;
            }
        for (int v = 0; v < 256; v++) levels += seen[v];
        cr_expect_gt(levels, 15, "scene %d: background has %d green levels", i, levels);
    }
}

/* ---------------------------------------------------------------- CLI */

Test(synth, cli_writes_a_loadable_data_set) {
    char dir[4096], lib[4096], cmd[8192];
    snprintf(dir, sizeof dir, "%s/set", tu_tmpdir("synth_cli"));
    snprintf(cmd, sizeof cmd, "'%s' synth --count 20 --seed 3 --size 64 -o '%s' --threads 2", tu_exe(), dir);
    char *err = NULL;
    int rc = tu_run(cmd, NULL, &err);
    cr_assert_eq(rc, 0, "exit %d: %s", rc, err);
    free(err);
    char path[4300];
    for (int i = 0; i < 20; i++) {
        snprintf(path, sizeof path, "%s/images/%06d.png", dir, i);
        cr_expect(exists(path), "%s missing", path);
    }
    snprintf(path, sizeof path, "%s/dataset.json", dir);
    char *text = tu_read(path, NULL);
    cr_assert_not_null(text);
    cJSON *root = cJSON_Parse(text);
    free(text);
    cr_assert_not_null(root, "dataset.json does not parse");
    cr_expect_str_eq(cJSON_GetObjectItem(root, "dataset")->valuestring, "synth");
    cJSON *images = cJSON_GetObjectItem(root, "images");
    cr_assert_eq(cJSON_GetArraySize(images), 20);
    int splits[3] = {0};
    cJSON *im;
    cJSON_ArrayForEach(im, images) {
        const char *sp = cJSON_GetObjectItem(im, "split")->valuestring;
        splits[!strcmp(sp, "val") ? 1 : !strcmp(sp, "test") ? 2 : 0]++;
        cr_expect_eq(cJSON_GetObjectItem(im, "width")->valueint, 64);
        cr_expect_eq(cJSON_GetArraySize(cJSON_GetObjectItem(im, "sentences")), 5);
        cr_expect_eq(cJSON_GetArraySize(cJSON_GetObjectItem(im, "mentions")), 5);
    }
    /* 0.8, 0.1, 0.1 of 20 */
    cr_expect(splits[0] == 16 && splits[1] == 2 && splits[2] == 2, "splits %d %d %d", splits[0], splits[1], splits[2]);
    cJSON_Delete(root);

    /* the data set loader reads it and the scorer reads its objects */
    imcap_dataset ds;
    imcap_error e;
    cr_assert_eq(imcap_dataset_load(path, dir, &ds, &e), IMCAP_OK, "%s", e.msg);
    cr_expect_eq(ds.n, 20);
    for (int i = 0; i < ds.n; i++) {
        imcap_scene scene;
        cr_expect_eq(imcap_scene_from_json(ds.images[i].objects_json, &scene, &e), IMCAP_OK, "%s", e.msg);
        cr_expect(scene.n >= 1);
    }
    imcap_dataset_free(&ds);

    /* the CLI with 2 threads and the library with 1 write the same bytes */
    snprintf(lib, sizeof lib, "%s", tu_tmpdir("synth_cli_lib"));
    omp_set_num_threads(1);
    generate(lib, 3, 20, 64);
    cr_expect(same_sets(dir, lib, 20), "CLI and library outputs differ");
}

Test(synth, cli_bad_arguments_exit_2) {
    const char *out = tu_tmpdir("synth_bad");
    const char *bad[] = {
        "",
        "--count 0 --seed 1 --out '%s'",
        "--count x --seed 1 --out '%s'",
        "--count 5 --out '%s'",
        "--count 5 --seed 1",
        "--count 5 --seed -1 --out '%s'",
        "--count 5 --seed 1 --size 8 --out '%s'",
        "--count 5 --seed 1 --size 100000 --out '%s'",
        "--count 5 --seed 1 --split-fractions 0.5,0.5,0.5 --out '%s'",
        "--count 5 --seed 1 --split-fractions 0.8,0.2 --out '%s'",
        "--count 5 --seed 1 --split-fractions a,b,c --out '%s'",
        "--count 5 --seed 1 --frobnicate --out '%s'",
        "--count 5 --seed 1 --out",
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        char args[1024], cmd[8192];
        snprintf(args, sizeof args, bad[k], out);
        snprintf(cmd, sizeof cmd, "'%s' synth %s", tu_exe(), args);
        char *err = NULL;
        int rc = tu_run(cmd, NULL, &err);
        cr_expect_eq(rc, 2, "`imcap synth %s`: exit %d", args, rc);
        cr_expect(err && strstr(err, "imcap"), "`imcap synth %s`: no message on stderr", args);
        free(err);
    }
    /* an output that cannot be created is fatal (3), with the path named */
    char cmd[8192], *err = NULL;
    snprintf(cmd, sizeof cmd, "touch '%s/file' && '%s' synth --count 2 --seed 1 -o '%s/file/sub'", out, tu_exe(),
             out);
    int rc = tu_run(cmd, NULL, &err);
    cr_expect_eq(rc, 3, "unwritable output: exit %d", rc);
    cr_expect(err && strstr(err, "file"), "message does not name the path: %s", err);
    free(err);
}

/* ---------------------------------------------------------------- metrics by hand */


static imcap_scene_object obj(int shape, int colour, int size, float x0, float y0, float x1, float y1) {
    imcap_scene_object o = {shape, colour, size, x0, y0, x1, y1};
    return o;
}

enum { RED = 0, GREEN = 1, BLUE = 2 };

static imcap_object_stats score(const imcap_scene *s, const char *const *w, int n, const float *att, int g) {
    imcap_object_stats st = {0};
    imcap_object_stats_add(&st, s, n, w, att, g, g);
    return st;
}

static imcap_object_stats score_words(const imcap_scene *s, const char *const *w, int n) {
    return score(s, w, n, NULL, 0);
}

Test(objects, wrong_colour_is_one_fp_and_one_fn) {
    imcap_scene s = {2, {obj(IMCAP_SHAPE_CIRCLE, RED, IMCAP_SIZE_LARGE, 0.10f, 0.10f, 0.40f, 0.40f),
                         obj(IMCAP_SHAPE_STAR, BLUE, IMCAP_SIZE_SMALL, 0.60f, 0.60f, 0.80f, 0.80f)}};
    const char *const w[] = {"a", "large", "green", "circle", "to", "the", "left", "of", "a", "small", "blue", "star"};
    imcap_object_stats st = score_words(&s, w, 12);
    cr_expect(st.tp == 1 && st.fp == 1 && st.fn == 1, "tp %g fp %g fn %g", st.tp, st.fp, st.fn);
    /* the green circle is not correctly named, so its relation is not scored */
    cr_expect_eq(st.rel_total, 0);
    /* P = R = 1/2 -> F1 = 1/2 */
    imcap_object_summary sum;
    imcap_object_stats_summary(&st, &sum);
    cr_expect_float_eq(sum.f1, 0.5, 1e-12);
}

Test(objects, relations_follow_the_geometry) {
    /* circle box ends at x 0.40, star starts at 0.60: 0.40 + 0.03 <= 0.60 so
     * the circle is left of the star; same numbers in y: above it */
    imcap_scene s = {2, {obj(IMCAP_SHAPE_CIRCLE, RED, IMCAP_SIZE_LARGE, 0.10f, 0.10f, 0.40f, 0.40f),
                         obj(IMCAP_SHAPE_STAR, BLUE, IMCAP_SIZE_SMALL, 0.60f, 0.60f, 0.80f, 0.80f)}};
    const char *const left[] = {"a", "large", "red", "circle", "to", "the", "left", "of", "a", "small", "blue", "star"};
    const char *const above[] = {"there", "is", "a", "large", "red", "circle", "over", "a", "small", "blue", "star"};
    const char *const below[] = {"a", "large", "red", "circle", "is", "below", "a", "small", "blue", "star"};
    const char *const right[] = {"a", "small", "blue", "star", "right", "of", "a", "large", "red", "circle"};
    imcap_object_stats st = score_words(&s, left, 12);
    cr_expect(st.tp == 2 && st.rel_total == 1 && st.rel_correct == 1);
    st = score_words(&s, above, 11);
    cr_expect(st.rel_total == 1 && st.rel_correct == 1);
    st = score_words(&s, below, 10);
    cr_expect(st.rel_total == 1 && st.rel_correct == 0);
    st = score_words(&s, right, 10);
    cr_expect(st.rel_total == 1 && st.rel_correct == 1);
    /* the gap rule: 0.41 + 0.03 > 0.43, so not left of */
    imcap_scene near = {2, {obj(IMCAP_SHAPE_CIRCLE, RED, IMCAP_SIZE_LARGE, 0.10f, 0.10f, 0.41f, 0.40f),
                            obj(IMCAP_SHAPE_STAR, BLUE, IMCAP_SIZE_SMALL, 0.43f, 0.10f, 0.60f, 0.40f)}};
    st = score_words(&near, left, 12);
    cr_expect(st.rel_total == 1 && st.rel_correct == 0);
}

/* Training's attention targets: each mention's words get the objects of
 * its description (both red circles for "two red circles"), a relation
 * phrase's words the partner named next, flagged, and the partner's words
 * flagged as such (--rel-weight); other words nothing. */
Test(objects, attention_targets_of_a_caption) {
    imcap_scene s = {3, {obj(IMCAP_SHAPE_CIRCLE, RED, IMCAP_SIZE_LARGE, 0.10f, 0.10f, 0.30f, 0.30f),
                         obj(IMCAP_SHAPE_STAR, BLUE, IMCAP_SIZE_SMALL, 0.60f, 0.60f, 0.80f, 0.80f),
                         obj(IMCAP_SHAPE_CIRCLE, RED, IMCAP_SIZE_LARGE, 0.10f, 0.60f, 0.30f, 0.80f)}};
    const char *const w[] = {"two", "large", "red", "circles", "to", "the", "left", "of", "a", "small", "blue",
                             "star", "and", "a", "green", "square"};
    uint16_t out[16];
    const unsigned R = IMCAP_ATT_RELATION, D = IMCAP_ATT_DESC, P = IMCAP_ATT_PARTNER;
    const uint16_t want[16] = {5 | D, 5 | D, 5 | D, 5, 2 | R, 2 | R, 2 | R, 2 | R, 2 | R, 2 | D | P, 2 | D | P, 2 | P,
                               0, 0, 0, 0};
    cr_expect_eq(imcap_caption_word_objects(&s, 16, w, out), 12);
    for (int i = 0; i < 16; i++) cr_expect_eq(out[i], want[i], "word %d '%s': %#x, want %#x", i, w[i], out[i], want[i]);
    /* the cells pointing and mass count: the grown box of each object */
    cr_expect(imcap_scene_cell_in(&s, 1, 0, 4, 4) && !imcap_scene_cell_in(&s, 1, 15, 4, 4));
    cr_expect(imcap_scene_cell_in(&s, 2, 15, 4, 4) && !imcap_scene_cell_in(&s, 2, 0, 4, 4));
}

Test(objects, relations_are_also_counted_by_axis) {
    imcap_scene s = {2, {obj(IMCAP_SHAPE_CIRCLE, RED, IMCAP_SIZE_LARGE, 0.10f, 0.10f, 0.40f, 0.40f),
                         obj(IMCAP_SHAPE_STAR, BLUE, IMCAP_SIZE_SMALL, 0.60f, 0.60f, 0.80f, 0.80f)}};
    const char *const wrong_lr[] = {"a", "large", "red", "circle", "right", "of", "a", "small", "blue", "star"};
    const char *const right_ab[] = {"a", "large", "red", "circle", "above", "a", "small", "blue", "star"};
    const char *const wrong_ab[] = {"a", "small", "blue", "star", "above", "a", "large", "red", "circle"};
    imcap_object_stats st = {0};
    imcap_object_stats_add(&st, &s, 10, wrong_lr, NULL, 0, 0);
    imcap_object_stats_add(&st, &s, 9, right_ab, NULL, 0, 0);
    imcap_object_stats_add(&st, &s, 9, wrong_ab, NULL, 0, 0);
    cr_expect(st.rel_axis_total[0] == 1 && st.rel_axis_correct[0] == 0, "left/right %ld of %ld",
              st.rel_axis_correct[0], st.rel_axis_total[0]);
    cr_expect(st.rel_axis_total[1] == 2 && st.rel_axis_correct[1] == 1, "above/below %ld of %ld",
              st.rel_axis_correct[1], st.rel_axis_total[1]);
    imcap_object_summary sum;
    imcap_object_stats_summary(&st, &sum);
    cr_expect_float_eq(sum.relations, 1.0 / 3, 1e-12);
    cr_expect_float_eq(sum.relations_axis[0], 0.0, 1e-12);
    cr_expect_float_eq(sum.relations_axis[1], 0.5, 1e-12);
    cr_expect(sum.n_relations_axis[0] + sum.n_relations_axis[1] == sum.n_relations);
}

Test(objects, counts_match_as_a_multiset) {
    imcap_scene two = {2, {obj(IMCAP_SHAPE_CIRCLE, RED, IMCAP_SIZE_SMALL, 0.1f, 0.1f, 0.2f, 0.2f),
                           obj(IMCAP_SHAPE_CIRCLE, RED, IMCAP_SIZE_SMALL, 0.5f, 0.5f, 0.6f, 0.6f)}};
    const char *const w2[] = {"two", "small", "red", "circles"};
    const char *const w1[] = {"a", "small", "red", "circle"};
    const char *const w3[] = {"three", "small", "red", "circles"};
    const char *const wp[] = {"small", "red", "circles"};      /* plural without count: 2 */
    const char *const wn[] = {"a", "red", "circle"};           /* no size: names nothing */
    const char *const ww[] = {"a", "small", "red", "circle", "and", "a", "small", "red", "circle"};
    imcap_object_stats st = score_words(&two, w2, 4);
    cr_expect(st.tp == 2 && st.fp == 0 && st.fn == 0, "two: tp %g fp %g fn %g", st.tp, st.fp, st.fn);
    st = score_words(&two, w1, 4);
    cr_expect(st.tp == 1 && st.fp == 0 && st.fn == 1);
    st = score_words(&two, w3, 4);
    cr_expect(st.tp == 2 && st.fp == 1 && st.fn == 0);
    st = score_words(&two, wp, 3);
    cr_expect(st.tp == 2 && st.fp == 0 && st.fn == 0);
    st = score_words(&two, wn, 3);
    cr_expect(st.tp == 0 && st.fp == 1 && st.fn == 2);
    st = score_words(&two, ww, 9);
    cr_expect(st.tp == 2 && st.fp == 0 && st.fn == 0);
    /* relation with a count: both circles (x1 0.2 and 0.6) left of a star at
     * x0 0.7 (0.6 + 0.03 <= 0.7); not both above it (second circle's y1 0.6
     * + 0.03 > star y0 0.5) */
    imcap_scene three = {3, {two.obj[0], two.obj[1], obj(IMCAP_SHAPE_STAR, BLUE, IMCAP_SIZE_LARGE, 0.7f, 0.5f, 0.95f, 0.8f)}};
    const char *const wl[] = {"two", "small", "red", "circles", "left", "of", "a", "large", "blue", "star"};
    const char *const wa[] = {"two", "small", "red", "circles", "above", "a", "large", "blue", "star"};
    st = score_words(&three, wl, 10);
    cr_expect(st.tp == 3 && st.rel_total == 1 && st.rel_correct == 1);
    st = score_words(&three, wa, 9);
    cr_expect(st.rel_total == 1 && st.rel_correct == 0);
    /* "a small red circle above a large blue star": one of the circles
     * (y1 0.2 + 0.03 <= 0.5) is */
    const char *const wa1[] = {"a", "small", "red", "circle", "above", "a", "large", "blue", "star"};
    st = score_words(&three, wa1, 9);
    cr_expect(st.rel_total == 1 && st.rel_correct == 1);
}

Test(objects, pointing_and_mass) {
    /* 4x4 grid: cell centres at 0.125, 0.375, 0.625, 0.875. The box
     * [0.30, 0.45] grown by one cell (0.25) is [0.05, 0.70]: centres 0.125,
     * 0.375 and 0.625 are inside, 0.875 is not -> a 3x3 block of cells. */
    imcap_scene s = {1, {obj(IMCAP_SHAPE_CIRCLE, RED, IMCAP_SIZE_SMALL, 0.30f, 0.30f, 0.45f, 0.45f)}};
    const char *const w[] = {"a", "small", "red", "circle"};
    float att[4 * 16];
    for (int i = 0; i < 4 * 16; i++) att[i] = 0;
    float *map = att + 3 * 16; /* the shape word is word 3 */

    map[2 * 4 + 2] = 1; /* cell (2, 2), centre (0.625, 0.625): inside */
    imcap_object_stats st = score(&s, w, 4, att, 4);
    cr_expect(st.point_total == 1 && st.point_hits == 1);
    cr_expect_float_eq(st.mass_sum, 1.0, 1e-9);

    map[2 * 4 + 2] = 0;
    map[3 * 4 + 3] = 1; /* cell (3, 3), centre (0.875, 0.875): outside */
    st = score(&s, w, 4, att, 4);
    cr_expect(st.point_total == 1 && st.point_hits == 0);
    cr_expect_float_eq(st.mass_sum, 0.0, 1e-9);

    map[3 * 4 + 3] = 0;
    map[0 * 4 + 2] = 1; /* cell (0, 2), centre (0.625, 0.125): inside (0.125 >= 0.05) */
    st = score(&s, w, 4, att, 4);
    cr_expect_eq(st.point_hits, 1);

    for (int i = 0; i < 16; i++) map[i] = 1.0f / 16; /* uniform: 9 of 16 cells count */
    st = score(&s, w, 4, att, 4);
    cr_expect_float_eq(st.mass_sum, 9.0 / 16, 1e-6);
    cr_expect_eq(st.point_hits, 1); /* tie: first maximum, cell (0, 0), centre inside */

    /* the map behind a word that is not the shape word does not matter */
    for (int i = 0; i < 16; i++) map[i] = 0;
    map[15] = 1;
    att[0 * 16 + 5] = 1;
    st = score(&s, w, 4, att, 4);
    cr_expect_eq(st.point_hits, 0);

    /* two identical circles at opposite corners, each mention's map on a
     * different one: both hits (the mention takes the circle it points at) */
    imcap_scene two = {2, {obj(IMCAP_SHAPE_CIRCLE, RED, IMCAP_SIZE_SMALL, 0.05f, 0.05f, 0.15f, 0.15f),
                           obj(IMCAP_SHAPE_CIRCLE, RED, IMCAP_SIZE_SMALL, 0.80f, 0.80f, 0.95f, 0.95f)}};
    const char *const ww[] = {"a", "small", "red", "circle", "and", "a", "small", "red", "circle"};
    float att2[9 * 16] = {0};
    att2[3 * 16 + 15] = 1; /* first mention points at the second circle */
    att2[8 * 16 + 0] = 1;  /* second mention at the first */
    st = score(&two, ww, 9, att2, 4);
    cr_expect(st.point_total == 2 && st.point_hits == 2, "hits %ld of %ld", st.point_hits, st.point_total);
    /* both point at the same circle: the second mention gets the other one
     * and misses */
    att2[8 * 16 + 0] = 0;
    att2[8 * 16 + 15] = 1;
    st = score(&two, ww, 9, att2, 4);
    cr_expect(st.point_total == 2 && st.point_hits == 1);

    imcap_object_summary sum;
    imcap_object_stats_summary(&st, &sum);
    cr_expect_float_eq(sum.pointing, 0.5, 1e-12);
    cr_expect_eq(sum.n_pointing, 2);
}

Test(objects, scene_json_errors_name_the_field) {
    imcap_scene s;
    imcap_error e;
    cr_expect_eq(imcap_scene_from_json("not json", &s, &e), IMCAP_E_FORMAT);
    cr_expect_eq(imcap_scene_from_json("{}", &s, &e), IMCAP_E_FORMAT);
    cr_expect_eq(imcap_scene_from_json(
                     "[{\"shape\": \"circle\", \"colour\": \"pink\", \"size\": \"small\", \"bbox_norm\": [0, 0, 1, 1]}]",
                     &s, &e),
                 IMCAP_E_FORMAT);
    cr_expect(strstr(e.msg, "objects[0].colour"), "%s", e.msg);
    cr_expect_eq(imcap_scene_from_json("[{\"shape\": \"circle\", \"colour\": \"red\", \"size\": \"small\", "
                                       "\"bbox\": [16, 16, 32, 48]}]",
                                       &s, &e),
                 IMCAP_E_FORMAT);
    cr_expect(strstr(e.msg, "bbox_norm"), "%s", e.msg);
    cr_expect_eq(imcap_scene_from_json("[{\"shape\": \"circle\", \"colour\": \"red\", \"size\": \"small\", "
                                       "\"bbox_norm\": [0.5, 0, 0.2, 1]}]",
                                       &s, &e),
                 IMCAP_E_FORMAT);
    /* normalised from pixels by the image size: 16/64 = 0.25, 48/64 = 0.75 */
    cr_assert_eq(imcap_scene_from_json_sized("[{\"shape\": \"circles\", \"colour\": \"red\", \"size\": \"small\", "
                                             "\"bbox\": [16, 16, 32, 48]}]",
                                             64, 64, &s, &e),
                 IMCAP_E_FORMAT, "a plural shape name was accepted");
    cr_assert_eq(imcap_scene_from_json_sized("[{\"shape\": \"ring\", \"colour\": \"red\", \"size\": \"small\", "
                                             "\"bbox\": [16, 16, 32, 48]}]",
                                             64, 64, &s, &e),
                 IMCAP_OK, "%s", e.msg);
    cr_expect(s.n == 1 && s.obj[0].shape == IMCAP_SHAPE_RING && s.obj[0].x0 == 0.25f && s.obj[0].y1 == 0.75f);
    /* more objects than a scene holds */
    char big[4096] = "[";
    for (int i = 0; i <= IMCAP_SCENE_MAX_OBJECTS; i++)
        strcat(big, i ? ", {\"shape\": \"ring\", \"colour\": \"red\", \"size\": \"small\", \"bbox_norm\": [0, 0, 1, 1]}"
                      : "{\"shape\": \"ring\", \"colour\": \"red\", \"size\": \"small\", \"bbox_norm\": [0, 0, 1, 1]}");
    strcat(big, "]");
    cr_expect_eq(imcap_scene_from_json(big, &s, &e), IMCAP_E_FORMAT);
}

Test(objects, parse_is_robust_to_odd_captions) {
    imcap_parsed_caption pc;
    /* a runaway caption: more mentions than the table holds still count */
    const char *w[200];
    for (int i = 0; i < 200; i += 2) w[i] = "small", w[i + 1] = "circle";
    imcap_caption_parse(200, w, &pc);
    cr_expect_eq(pc.n_mentions, IMCAP_CAPTION_MAX_MENTIONS);
    cr_expect_eq(pc.overflow_count, 100 - IMCAP_CAPTION_MAX_MENTIONS);
    /* NULL words, <unk>, nothing */
    const char *const odd[] = {"<unk>", NULL, "red", "large", "star", "beneath", "two", "blue", "small", "rings"};
    imcap_caption_parse(10, odd, &pc);
    cr_assert_eq(pc.n_mentions, 2);
    cr_expect(pc.m[0].shape == IMCAP_SHAPE_STAR && pc.m[0].colour == RED && pc.m[0].size == IMCAP_SIZE_LARGE &&
              pc.m[0].count == 1 && pc.m[0].first_word == 2 && pc.m[0].shape_word == 4);
    cr_expect(pc.m[1].shape == IMCAP_SHAPE_RING && pc.m[1].count == 2 && pc.m[1].first_word == 6);
    cr_expect(pc.n_relations == 1 && pc.r[0].rel == IMCAP_REL_BELOW && pc.r[0].a == 0 && pc.r[0].b == 1);
    imcap_caption_parse(0, NULL, &pc);
    cr_expect_eq(pc.n_mentions, 0);
}

/* --json: the summary as one JSON object on stdout; -q: nothing on stderr */
Test(synth, json_summary) {
    const char *dir = tu_tmpdir("synth_json");
    char cmd[4200], *out = NULL, *err = NULL;
    snprintf(cmd, sizeof cmd, "'%s' synth --count 4 --seed 2 --size 32 -q --json -o '%s/s'", tu_exe(), dir);
    cr_assert_eq(tu_run(cmd, &out, &err), 0, "%s", err);
    cr_expect_str_empty(err);
    cJSON *j = cJSON_Parse(out);
    cr_assert(j, "not JSON: %s", out);
    cr_expect_eq(cJSON_GetObjectItem(j, "count")->valueint, 4);
    cr_expect_eq(cJSON_GetObjectItem(j, "size")->valueint, 32);
    cJSON_Delete(j);
    free(out), free(err);
}
