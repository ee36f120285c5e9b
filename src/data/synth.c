/* synth.c — the synthetic world's tables, scene layout, relation rule and
 * the data set writer behind `imcap synth`.
 *
 * dataset.json (Karpathy split layout, one image entry per line):
 *   {"images": [
 *     {"filename": "000000.png", "filepath": "images", "imgid": 0, "split": "train",
 *      "width": 64, "height": 64,
 *      "sentences": [{"tokens": [...], "raw": "...", "imgid": 0, "sentid": 0}, x5],
 *      "sentids": [0, 1, 2, 3, 4],
 *      "objects": [{"shape": "circle", "colour": "red", "size": "large",
 *                   "bbox": [x0, y0, x1, y1],      pixels, 2 decimals
 *                   "bbox_norm": [x0, y0, x1, y1], bbox / side, 9 significant digits
 *                   "cx": .., "cy": ..}],          centre of the shape, pixels
 *      "mentions": [per sentence: [{"object": i, "words": [positions], "shape_word": p}]]},
 *     ...],
 *   "dataset": "synth"}
 * Token positions count from 0 in "tokens"; the captions are lower-case
 * ASCII words separated by single spaces, so the spec's tokeniser gives the
 * same tokens. "bbox_norm" carries the normalised box so that the "objects"
 * array alone is enough to score a caption (eval/objects.c). */
#include "data/synth.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "image/image.h"
#include "util/util.h"

const char *const imcap_synth_shape_names[IMCAP_SYNTH_N_SHAPES] = {"circle", "square", "triangle", "star",
                                                                   "cross",  "ring",   "diamond"};
const char *const imcap_synth_shape_plurals[IMCAP_SYNTH_N_SHAPES] = {"circles", "squares", "triangles", "stars",
                                                                     "crosses", "rings",   "diamonds"};
const char *const imcap_synth_colour_names[IMCAP_SYNTH_N_COLOURS] = {"red",    "green",  "blue",  "yellow",
                                                                     "purple", "orange", "white", "black"};
const char *const imcap_synth_size_names[IMCAP_SYNTH_N_SIZES] = {"small", "large"};
const char *const imcap_synth_relation_names[IMCAP_REL_N] = {"left", "right", "above", "below"};

/* Fill colours before jitter. Chosen saturated (or near white / black) while
 * the backgrounds stay greyish mid-tones (synth_render.c), so every colour
 * stands out from every background and, after +-8% brightness and +-10
 * levels per channel, from every other colour (the closest pair, red and
 * orange, differ by 100 levels of green). */
static const float base_rgb[IMCAP_SYNTH_N_COLOURS][3] = {
    {215, 35, 35},   /* red */
    {40, 170, 60},   /* green */
    {35, 75, 220},   /* blue */
    {240, 215, 40},  /* yellow */
    {140, 50, 190},  /* purple */
    {250, 135, 20},  /* orange */
    {245, 245, 245}, /* white */
    {22, 22, 22},    /* black */
};

static int find(const char *const *table, int n, const char *w) {
    for (int i = 0; i < n; i++)
        if (!strcmp(table[i], w)) return i;
    return -1;
}

int imcap_synth_shape_word(const char *w, int *plural) {
    int i = find(imcap_synth_shape_names, IMCAP_SYNTH_N_SHAPES, w);
    if (i >= 0) {
        if (plural) *plural = 0;
        return i;
    }
    i = find(imcap_synth_shape_plurals, IMCAP_SYNTH_N_SHAPES, w);
    if (plural) *plural = i >= 0;
    return i;
}

int imcap_synth_colour_word(const char *w) { return find(imcap_synth_colour_names, IMCAP_SYNTH_N_COLOURS, w); }
int imcap_synth_size_word(const char *w) { return find(imcap_synth_size_names, IMCAP_SYNTH_N_SIZES, w); }

int imcap_synth_count_word(const char *w) {
    static const char *const counts[] = {"one", "two", "three", "four"};
    return find(counts, 4, w) + 1;
}

int imcap_synth_relation_word(const char *w) {
    if (!strcmp(w, "left")) return IMCAP_REL_LEFT;
    if (!strcmp(w, "right")) return IMCAP_REL_RIGHT;
    if (!strcmp(w, "above") || !strcmp(w, "over")) return IMCAP_REL_ABOVE;
    if (!strcmp(w, "below") || !strcmp(w, "under") || !strcmp(w, "beneath")) return IMCAP_REL_BELOW;
    return -1;
}

double imcap_synth_relation_gap(const imcap_synth_box *a, int rel, const imcap_synth_box *b) {
    switch (rel) {
    case IMCAP_REL_LEFT: return (double)b->x0 - (double)a->x1 - IMCAP_SYNTH_REL_GAP;
    case IMCAP_REL_RIGHT: return (double)a->x0 - (double)b->x1 - IMCAP_SYNTH_REL_GAP;
    case IMCAP_REL_ABOVE: return (double)b->y0 - (double)a->y1 - IMCAP_SYNTH_REL_GAP;
    case IMCAP_REL_BELOW: return (double)a->y0 - (double)b->y1 - IMCAP_SYNTH_REL_GAP;
    }
    return -1.0;
}

int imcap_synth_relation_holds(const imcap_synth_box *a, int rel, const imcap_synth_box *b) {
    return imcap_synth_relation_gap(a, rel, b) >= 0.0;
}

static double uni(imcap_rng *r, double lo, double hi) { return lo + (hi - lo) * imcap_rng_uniform(r); }

/* Extent of a shape around its centre (synth_render.c). */
void imcap_synth_shape_extent(int shape, float radius, float angle, float ext[4]);

static float round2(double v) { return (float)(round(v * 100.0) / 100.0); }

static void set_box(imcap_synth_object *o, int side) {
    float ext[4];
    imcap_synth_shape_extent(o->shape, o->radius, o->angle, ext);
    o->bbox[0] = round2(o->cx + ext[0]);
    o->bbox[1] = round2(o->cy + ext[1]);
    o->bbox[2] = round2(o->cx + ext[2]);
    o->bbox[3] = round2(o->cy + ext[3]);
    o->box.x0 = (float)(o->bbox[0] / (double)side);
    o->box.y0 = (float)(o->bbox[1] / (double)side);
    o->box.x1 = (float)(o->bbox[2] / (double)side);
    o->box.y1 = (float)(o->bbox[3] / (double)side);
}

/* Two objects are placed acceptably when some relation holds between them,
 * i.e. their boxes are apart by the relation gap along at least one axis:
 * no overlap at all, and every pair of objects has a relation to state. */
static int apart(const imcap_synth_object *a, const imcap_synth_object *b) {
    for (int r = 0; r < IMCAP_REL_N; r++)
        if (imcap_synth_relation_holds(&a->box, r, &b->box)) return 1;
    return 0;
}

static float draw_radius(imcap_rng *r, int size, int side) {
    /* Diameters of 20% (small) and 34% (large) of the side, +-1 / +-1.5
     * points: clearly two sizes at any jitter. */
    double d = size == IMCAP_SIZE_LARGE ? uni(r, 0.325, 0.355) : uni(r, 0.19, 0.21);
    return (float)(0.5 * d * side);
}

static int place(imcap_synth_scene *sc, int i, imcap_rng *r) {
    imcap_synth_object *o = &sc->obj[i];
    float ext[4];
    imcap_synth_shape_extent(o->shape, o->radius, o->angle, ext);
    double lo_x = 1.0 - ext[0], hi_x = sc->side - 1.0 - ext[2];
    double lo_y = 1.0 - ext[1], hi_y = sc->side - 1.0 - ext[3];
    for (int t = 0; t < 200; t++) {
        o->cx = (float)uni(r, lo_x, hi_x);
        o->cy = (float)uni(r, lo_y, hi_y);
        set_box(o, sc->side);
        int ok = 1;
        for (int j = 0; j < i && ok; j++) ok = apart(o, &sc->obj[j]);
        if (ok) return 1;
    }
    return 0;
}

static int same_key(const imcap_synth_object *a, const imcap_synth_object *b) {
    return a->shape == b->shape && a->colour == b->colour && a->size == b->size;
}

imcap_status imcap_synth_scene_make(uint64_t seed, long index, int side, imcap_synth_scene *sc, imcap_error *err) {
    if (side < IMCAP_SYNTH_MIN_SIZE || side > IMCAP_SYNTH_MAX_SIZE)
        return imcap_fail(err, IMCAP_E_ARG, "synth: image size %d is outside [%d, %d]", side, IMCAP_SYNTH_MIN_SIZE,
                          IMCAP_SYNTH_MAX_SIZE);
    if (index < 0) return imcap_fail(err, IMCAP_E_ARG, "synth: negative scene index %ld", index);
    memset(sc, 0, sizeof *sc);
    /* well-spread stream seeds: scene i of seed s shares no stream with scene j of seed t */
    uint64_t base = imcap_mix64(imcap_mix64(seed) + (uint64_t)index);
    imcap_rng r;
    imcap_rng_seed(&r, base);
    sc->side = side;
    sc->render_seed = imcap_mix64(base ^ 0x52454e4445524e47ULL);

    int n = 1 + imcap_rng_int(&r, IMCAP_SYNTH_MAX_OBJECTS);
    imcap_synth_object *o = sc->obj;
    for (int i = 0; i < n; i++) {
        o[i].shape = imcap_rng_int(&r, IMCAP_SYNTH_N_SHAPES);
        o[i].colour = imcap_rng_int(&r, IMCAP_SYNTH_N_COLOURS);
        o[i].size = imcap_rng_int(&r, IMCAP_SYNTH_N_SIZES);
    }
    /* Identical objects are rare by chance (1 in 112 per pair), so counts
     * ("two small red circles") are made on purpose. */
    int dup = 0;
    if (n >= 2 && imcap_rng_uniform(&r) < 0.35) {
        o[1].shape = o[0].shape, o[1].colour = o[0].colour, o[1].size = o[0].size;
        dup = 1;
        if (n >= 3 && imcap_rng_uniform(&r) < 0.3) o[2].shape = o[0].shape, o[2].colour = o[0].colour, o[2].size = o[0].size, dup = 2;
    }
    if (n == 4 && dup < 2 && imcap_rng_uniform(&r) < 0.25)
        o[3].shape = o[2].shape, o[3].colour = o[2].colour, o[3].size = o[2].size;

    for (int i = 0; i < n; i++) {
        double bright = uni(&r, 0.92, 1.08);
        for (int c = 0; c < 3; c++) {
            double v = base_rgb[o[i].colour][c] * bright + uni(&r, -10, 10);
            o[i].rgb[c] = (float)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
        o[i].radius = draw_radius(&r, o[i].size, side);
        int round_shape = o[i].shape == IMCAP_SHAPE_CIRCLE || o[i].shape == IMCAP_SHAPE_RING;
        o[i].angle = round_shape ? 0.0f : (float)uni(&r, -15 * M_PI / 180, 15 * M_PI / 180);
    }

    /* Place in order; an object that does not fit is made small (when no
     * other object shares its description, so counts stay true) or dropped. */
    int placed = 0;
    for (int i = 0; i < n; i++) {
        sc->obj[placed] = o[i];
        int ok = place(sc, placed, &r);
        if (!ok && sc->obj[placed].size == IMCAP_SIZE_LARGE) {
            int shared = 0;
            for (int j = 0; j < n; j++)
                if (j != i && same_key(&o[i], &o[j])) shared = 1;
            if (!shared) {
                sc->obj[placed].size = IMCAP_SIZE_SMALL;
                sc->obj[placed].radius = draw_radius(&r, IMCAP_SIZE_SMALL, side);
                ok = place(sc, placed, &r);
            }
        }
        if (ok) placed++;
    }
    sc->n = placed;
    imcap_synth_write_captions(sc, imcap_mix64(base ^ 0x43415054494f4e53ULL));
    return IMCAP_OK;
}

#define APPEND(b, lit) imcap_buf_append((b), (lit), strlen(lit))

static void json_box(imcap_buf *b, const float v[4], int pixels) {
    APPEND(b, "[");
    for (int k = 0; k < 4; k++) {
        if (k) APPEND(b, ", ");
        if (pixels) imcap_buf_printf(b, "%.2f", (double)v[k]);
        else imcap_buf_float(b, v[k]);
    }
    APPEND(b, "]");
}

static void objects_json(imcap_buf *b, const imcap_synth_scene *sc) {
    APPEND(b, "[");
    for (int i = 0; i < sc->n; i++) {
        const imcap_synth_object *o = &sc->obj[i];
        float nb[4] = {o->box.x0, o->box.y0, o->box.x1, o->box.y1};
        imcap_buf_printf(b, "%s{\"shape\": \"%s\", \"colour\": \"%s\", \"size\": \"%s\", \"bbox\": ", i ? ", " : "",
                         imcap_synth_shape_names[o->shape], imcap_synth_colour_names[o->colour],
                         imcap_synth_size_names[o->size]);
        json_box(b, o->bbox, 1);
        APPEND(b, ", \"bbox_norm\": ");
        json_box(b, nb, 0);
        imcap_buf_printf(b, ", \"cx\": %.2f, \"cy\": %.2f}", (double)round2(o->cx), (double)round2(o->cy));
    }
    APPEND(b, "]");
}

char *imcap_synth_objects_json(const imcap_synth_scene *sc) {
    imcap_buf b = {0};
    objects_json(&b, sc);
    return b.s;
}

static const char *split_name(long i, long n_train, long n_val) {
    return i < n_train ? "train" : i < n_train + n_val ? "val" : "test";
}

static void image_json(imcap_buf *b, const imcap_synth_scene *sc, long index, const char *split) {
    imcap_buf_printf(b,
                     "{\"filename\": \"%06ld.png\", \"filepath\": \"images\", \"imgid\": %ld, \"split\": \"%s\", "
                     "\"width\": %d, \"height\": %d, \"sentences\": [",
                     index, index, split, sc->side, sc->side);
    for (int s = 0; s < IMCAP_SYNTH_N_CAPTIONS; s++) {
        const imcap_synth_caption *c = &sc->captions[s];
        APPEND(b, s ? ", {\"tokens\": [" : "{\"tokens\": [");
        for (int k = 0; k < c->n_words; k++) {
            if (k) APPEND(b, ", ");
            imcap_buf_json_string(b, c->words[k]);
        }
        APPEND(b, "], \"raw\": ");
        imcap_buf_json_string(b, c->raw);
        imcap_buf_printf(b, ", \"imgid\": %ld, \"sentid\": %ld}", index, index * IMCAP_SYNTH_N_CAPTIONS + s);
    }
    APPEND(b, "], \"sentids\": [");
    for (int s = 0; s < IMCAP_SYNTH_N_CAPTIONS; s++)
        imcap_buf_printf(b, "%s%ld", s ? ", " : "", index * IMCAP_SYNTH_N_CAPTIONS + s);
    APPEND(b, "], \"objects\": ");
    objects_json(b, sc);
    APPEND(b, ", \"mentions\": [");
    for (int s = 0; s < IMCAP_SYNTH_N_CAPTIONS; s++) {
        const imcap_synth_caption *c = &sc->captions[s];
        APPEND(b, s ? ", [" : "[");
        for (int m = 0; m < c->n_mentions; m++) {
            const imcap_synth_mention *me = &c->mentions[m];
            imcap_buf_printf(b, "%s{\"object\": %d, \"words\": [", m ? ", " : "", me->object);
            for (int k = 0; k < me->n_words; k++) imcap_buf_printf(b, "%s%d", k ? ", " : "", me->words[k]);
            imcap_buf_printf(b, "], \"shape_word\": %d}", me->shape_word);
        }
        APPEND(b, "]");
    }
    APPEND(b, "]}");
}


/* Scenes are made in blocks: each block in parallel (one scene per
 * iteration, each with its own streams), then its JSON is appended in index
 * order, so memory stays bounded and the bytes do not depend on threads. */
#define BLOCK 512

imcap_status imcap_synth_generate(const imcap_synth_params *p, const char *out_dir, imcap_error *err) {
    if (p->count < 1) return imcap_fail(err, IMCAP_E_ARG, "synth: count must be at least 1 (got %ld)", p->count);
    if (p->side < IMCAP_SYNTH_MIN_SIZE || p->side > IMCAP_SYNTH_MAX_SIZE)
        return imcap_fail(err, IMCAP_E_ARG, "synth: image size %d is outside [%d, %d]", p->side,
                          IMCAP_SYNTH_MIN_SIZE, IMCAP_SYNTH_MAX_SIZE);
    double fsum = 0;
    for (int k = 0; k < 3; k++) {
        if (!(p->fractions[k] >= 0 && p->fractions[k] <= 1))
            return imcap_fail(err, IMCAP_E_ARG, "synth: split fraction %g is outside [0, 1]", p->fractions[k]);
        fsum += p->fractions[k];
    }
    if (fabs(fsum - 1.0) > 1e-6)
        return imcap_fail(err, IMCAP_E_ARG, "synth: split fractions sum to %g, not 1", fsum);
    long n_train = lround(p->count * p->fractions[0]);
    long n_val = lround(p->count * p->fractions[1]);
    if (n_train > p->count) n_train = p->count;
    if (n_val > p->count - n_train) n_val = p->count - n_train;

    size_t dl = strlen(out_dir);
    char *images_dir = malloc(dl + 16), *json_path = malloc(dl + 16);
    if (!images_dir || !json_path) {
        free(images_dir);
        free(json_path);
        return imcap_fail(err, IMCAP_E_NOMEM, "%s: out of memory", out_dir);
    }
    snprintf(images_dir, dl + 16, "%s/images", out_dir);
    snprintf(json_path, dl + 16, "%s/dataset.json", out_dir);
    imcap_status st = imcap_make_dirs(images_dir, err);
    imcap_atomic_file af = {0};
    if (!st) st = imcap_atomic_open(&af, json_path, err);
    if (st) {
        free(images_dir);
        free(json_path);
        return st;
    }
    fputs("{\"images\": [\n", af.f);

    imcap_buf *bufs = calloc(BLOCK, sizeof *bufs);
    imcap_status *stats = calloc(BLOCK, sizeof *stats);
    imcap_error *errs = calloc(BLOCK, sizeof *errs);
    if (!bufs || !stats || !errs) st = imcap_fail(err, IMCAP_E_NOMEM, "%s: out of memory", out_dir);
    for (long start = 0; start < p->count && !st; start += BLOCK) {
        int nb = (int)(p->count - start < BLOCK ? p->count - start : BLOCK);
#pragma omp parallel for schedule(dynamic, 4)
        for (int k = 0; k < nb; k++) {
            long i = start + k;
            imcap_synth_scene sc;
            stats[k] = imcap_synth_scene_make(p->seed, i, p->side, &sc, &errs[k]);
            if (stats[k]) continue;
            unsigned char *rgb = malloc((size_t)p->side * p->side * 3);
            size_t pl = dl + 32;
            char *png = malloc(pl);
            if (!rgb || !png) {
                stats[k] = imcap_fail(&errs[k], IMCAP_E_NOMEM, "%s: out of memory", out_dir);
            } else {
                imcap_synth_render(&sc, rgb);
                snprintf(png, pl, "%s/%06ld.png", images_dir, i);
                stats[k] = imcap_png_write(png, rgb, p->side, p->side, 3, &errs[k]);
                if (!stats[k]) image_json(&bufs[k], &sc, i, split_name(i, n_train, n_val));
            }
            free(rgb);
            free(png);
        }
        for (int k = 0; k < nb && !st; k++) {
            if (stats[k]) {
                st = stats[k];
                if (err) *err = errs[k];
                break;
            }
            if (start + k) fputs(",\n", af.f);
            fwrite(bufs[k].s, 1, bufs[k].len, af.f);
        }
        for (int k = 0; k < nb; k++) imcap_buf_free(&bufs[k]);
    }
    free(bufs);
    free(stats);
    free(errs);
    if (!st) {
        fputs("\n], \"dataset\": \"synth\"}\n", af.f);
        st = imcap_atomic_commit(&af, err);
    } else {
        imcap_atomic_abort(&af);
    }
    free(images_dir);
    free(json_path);
    return st;
}
