/* synth.h — the synthetic scene world behind `imcap synth`: coloured shapes
 * on textured backgrounds, five reference captions per scene, and the ground
 * truth (objects, boxes, which words name which object) that eval/objects.c
 * scores captions and attention maps against.
 *
 * Implemented in synth.c (tables, geometry, the relation rule, the data set
 * writer), synth_render.c (pixels) and synth_caption.c (captions).
 *
 * Every scene is a pure function of (seed, index, size): its random streams
 * are seeded from a hash of the three, so a data set is the same bytes
 * whatever the number of threads and whatever range of indices is made. */
#ifndef IMCAP_SYNTH_H
#define IMCAP_SYNTH_H
#include <stdint.h>
#include "imcap.h"

#define IMCAP_SYNTH_N_SHAPES 7
#define IMCAP_SYNTH_N_COLOURS 8
#define IMCAP_SYNTH_N_SIZES 2
#define IMCAP_SYNTH_MAX_OBJECTS 4
#define IMCAP_SYNTH_N_CAPTIONS 5
/* No reference caption is longer than this many words, so a model with
 * max_length >= IMCAP_SYNTH_MAX_WORDS + 1 can emit every one plus <end>. */
#define IMCAP_SYNTH_MAX_WORDS 22
#define IMCAP_SYNTH_DEFAULT_SIZE 64
#define IMCAP_SYNTH_MIN_SIZE 32
#define IMCAP_SYNTH_MAX_SIZE 512

/* The relation rule's margin, as a fraction of the image side. */
#define IMCAP_SYNTH_REL_GAP 0.03

enum { IMCAP_SHAPE_CIRCLE, IMCAP_SHAPE_SQUARE, IMCAP_SHAPE_TRIANGLE, IMCAP_SHAPE_STAR,
       IMCAP_SHAPE_CROSS, IMCAP_SHAPE_RING, IMCAP_SHAPE_DIAMOND };
enum { IMCAP_SIZE_SMALL, IMCAP_SIZE_LARGE };
enum { IMCAP_REL_LEFT, IMCAP_REL_RIGHT, IMCAP_REL_ABOVE, IMCAP_REL_BELOW, IMCAP_REL_N };

/* Word tables, indexed by the enums above (constant data). */
extern const char *const imcap_synth_shape_names[IMCAP_SYNTH_N_SHAPES];   /* "circle" */
extern const char *const imcap_synth_shape_plurals[IMCAP_SYNTH_N_SHAPES]; /* "circles" */
extern const char *const imcap_synth_colour_names[IMCAP_SYNTH_N_COLOURS]; /* "red" */
extern const char *const imcap_synth_size_names[IMCAP_SYNTH_N_SIZES];     /* "small", "large" */
extern const char *const imcap_synth_relation_names[IMCAP_REL_N];         /* "left", "right", "above", "below" */

/* Word -> index, or -1 when the word is not one of the table's. The parser
 * accepts a few synonyms the generator never writes (it must read what a
 * model writes): "big"/"little" are not accepted (the generator's sizes are
 * "small"/"large" only), "one" counts 1, "beneath" is below. */
int imcap_synth_shape_word(const char *w, int *plural);
int imcap_synth_colour_word(const char *w);
int imcap_synth_size_word(const char *w);
int imcap_synth_count_word(const char *w);     /* "one".."four" -> 1..4, else 0 */
/* "left" -> LEFT, "right" -> RIGHT, "above"/"over" -> ABOVE,
 * "below"/"under"/"beneath" -> BELOW, else -1. */
int imcap_synth_relation_word(const char *w);

/* A box normalised to [0, 1] of the image, y growing downwards. */
typedef struct { float x0, y0, x1, y1; } imcap_synth_box;

/* THE RELATION RULE, shared by the generator (which states a relation only
 * when it holds) and the evaluator (which checks generated relations):
 *   a LEFT of b   iff  a.x1 + GAP <= b.x0
 *   a RIGHT of b  iff  b.x1 + GAP <= a.x0
 *   a ABOVE b     iff  a.y1 + GAP <= b.y0
 *   a BELOW b     iff  b.y1 + GAP <= a.y0
 * i.e. the boxes are apart along that axis by at least GAP =
 * IMCAP_SYNTH_REL_GAP of the image side (so the centres are apart by more
 * than half the sum of the two objects' extents in that axis). Computed in
 * double from the float boxes; both sides use the very floats stored in
 * dataset.json ("bbox_norm", written with 9 significant digits). Returns 1
 * when the relation holds. */
int imcap_synth_relation_holds(const imcap_synth_box *a, int rel, const imcap_synth_box *b);
/* The clearance of that relation (b.x0 - a.x1 - GAP for LEFT, ...); >= 0
 * exactly when it holds. */
double imcap_synth_relation_gap(const imcap_synth_box *a, int rel, const imcap_synth_box *b);

typedef struct {
    int shape, colour, size;
    float cx, cy;          /* centre of the shape, pixels (pixel i covers [i, i+1)) */
    float radius;          /* the shape's nominal radius, pixels */
    float angle;           /* rotation, radians */
    float rgb[3];          /* fill colour after jitter, 0..255 */
    float bbox[4];         /* x0, y0, x1, y1 in pixels, rounded to 0.01 */
    imcap_synth_box box;   /* bbox / side, as stored in "bbox_norm" */
} imcap_synth_object;

/* Which words of a caption name object `object` (token positions, from 0):
 * the count word of a plural ("two"), the size, the colour and the shape
 * noun, in caption order; the article "a" is not included. */
typedef struct {
    int object;
    int n_words;
    int words[4];
    int shape_word;
} imcap_synth_mention;

typedef struct {
    int n_words;
    const char *words[IMCAP_SYNTH_MAX_WORDS]; /* point into constant tables */
    char raw[256];                            /* words joined by one space */
    int n_mentions;                           /* one per object of the scene */
    imcap_synth_mention mentions[IMCAP_SYNTH_MAX_OBJECTS];
} imcap_synth_caption;

typedef struct {
    int side;              /* image width = height, pixels */
    uint64_t render_seed;  /* the pixels' own random stream */
    int n;
    imcap_synth_object obj[IMCAP_SYNTH_MAX_OBJECTS];
    imcap_synth_caption captions[IMCAP_SYNTH_N_CAPTIONS];
} imcap_synth_scene;

/* Lays out scene `index` of the world with this seed: objects, boxes and
 * captions (no pixels). side in [IMCAP_SYNTH_MIN_SIZE, IMCAP_SYNTH_MAX_SIZE]. */
imcap_status imcap_synth_scene_make(uint64_t seed, long index, int side, imcap_synth_scene *sc, imcap_error *err);

/* Draws the scene into rgb (side * side * 3 bytes). */
void imcap_synth_render(const imcap_synth_scene *sc, unsigned char *rgb);

/* Writes the five captions of a scene (synth_caption.c; called by
 * imcap_synth_scene_make with the scene's caption stream). */
void imcap_synth_write_captions(imcap_synth_scene *sc, uint64_t caption_seed);

/* The scene's "objects" JSON array exactly as dataset.json holds it
 * (malloc'd text; NULL when out of memory). */
char *imcap_synth_objects_json(const imcap_synth_scene *sc);

typedef struct {
    long count;            /* scenes, >= 1 */
    uint64_t seed;
    int side;              /* image side, pixels */
    double fractions[3];   /* train, val, test; sum 1 */
} imcap_synth_params;

/* Generates count scenes into out_dir: out_dir/images/NNNNNN.png and
 * out_dir/dataset.json (Karpathy layout plus "width", "height", "objects"
 * and "mentions" per image; see synth.c). Directories are created as needed;
 * every file is written under a temporary name and renamed, dataset.json
 * last. The first round(count * f_train) indices are "train", the next
 * round(count * f_val) "val", the rest "test".
 * Uses OpenMP across scenes (the current default team size); the output does
 * not depend on the number of threads. */
imcap_status imcap_synth_generate(const imcap_synth_params *p, const char *out_dir, imcap_error *err);
#endif
