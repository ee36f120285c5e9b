/* objects.h — scoring captions of synthetic scenes against their ground
 * truth: object mentions (size, colour, shape, counts), attention pointing,
 * attention mass in the named objects' boxes, spatial relations.
 * Implemented in caption_parse.c (caption -> mentions and relations) and
 * objects.c (matching and statistics). */
#ifndef IMCAP_OBJECTS_H
#define IMCAP_OBJECTS_H
#include <stdint.h>

#include "imcap.h"

#define IMCAP_SCENE_MAX_OBJECTS 8

typedef struct {
    int shape, colour, size;   /* indices into the synth world's tables (data/synth.h) */
    float x0, y0, x1, y1;      /* bounding box, normalised to [0, 1] of the image */
} imcap_scene_object;

typedef struct {
    int n;
    imcap_scene_object obj[IMCAP_SCENE_MAX_OBJECTS];
} imcap_scene;

/* Parses the "objects" JSON array that `imcap synth` writes for an image.
 * Each object needs "shape", "colour", "size" (words of data/synth.h's
 * tables) and "bbox_norm" [x0, y0, x1, y1] in [0, 1]. The message of an
 * error names the object and the field ("objects[2].colour: ..."); callers
 * prefix the file and image. */
imcap_status imcap_scene_from_json(const char *objects_json, imcap_scene *scene, imcap_error *err);
/* The same, but objects without "bbox_norm" are normalised from their pixel
 * "bbox" by the image's width and height (the image entry's "width" and
 * "height"); width, height <= 0 means unknown. */
imcap_status imcap_scene_from_json_sized(const char *objects_json, int width, int height, imcap_scene *scene,
                                         imcap_error *err);

/* ---- caption parsing (caption_parse.c)
 * A mention is a shape noun (singular or plural) together with the run of
 * size, colour and count words right before it ("two small red circles");
 * the word nearest the noun wins if a run repeats one kind. Count: the count
 * word ("one".."four"), else 2 for a plural noun, else 1. A missing size or
 * colour leaves -1: such a mention names no object (it counts as false
 * positives). A relation links two consecutive mentions when a relation word
 * (left, right, above/over, below/under/beneath) stands between the first
 * one's noun and the second one's first word: "X to the left of Y" gives
 * (X, LEFT, Y); the first relation word there wins. */
#define IMCAP_CAPTION_MAX_MENTIONS 64

typedef struct {
    int shape, colour, size;   /* -1 when absent */
    int count;
    int first_word, shape_word; /* word positions */
} imcap_mention;

typedef struct {
    int a, rel, b;             /* mention indices; rel is IMCAP_REL_* (data/synth.h) */
} imcap_relation;

typedef struct {
    int n_mentions;
    imcap_mention m[IMCAP_CAPTION_MAX_MENTIONS];
    int n_relations;
    imcap_relation r[IMCAP_CAPTION_MAX_MENTIONS];
    int overflow_count;        /* summed counts of mentions past the table's end */
} imcap_parsed_caption;

void imcap_caption_parse(int n_words, const char *const *words, imcap_parsed_caption *out);

/* Running totals over a set of captions; zero-initialise, then add. */
typedef struct {
    double tp, fp, fn;                 /* object mentions, counts included */
    long point_hits, point_total;      /* attention argmax inside grown box */
    double mass_sum;                   /* attention mass inside grown box, summed */
    long rel_correct, rel_total;       /* generated relations that the geometry agrees with */
    long rel_axis_correct[2], rel_axis_total[2]; /* the same by axis: [0] left/right, [1] above/below */
    long images;
} imcap_object_stats;

/* Scores one caption: words[k] is the k-th emitted word (no <end>); attention
 * (may be NULL) is n_words x (grid_h * grid_w), the map behind each word.
 *
 * OBJECTS. Mentions are taken in caption order; a mention of count c whose
 * (size, colour, shape) has k ground-truth objects not yet taken takes
 * t = min(c, k) of them: tp += t, fp += c - t. Objects never taken are fn.
 * (Multiset matching: "two small red circles" against two such objects is
 * 2 tp; against three, 2 tp and 1 fn; "a large green circle" when the
 * circle is red, 1 fp and 1 fn.)
 *
 * POINTING (only with attention). Grid cell (r, c) of the H x W map covers
 * [c/W, (c+1)/W) x [r/H, (r+1)/H) of the image; its centre is
 * ((c + 0.5)/W, (r + 0.5)/H). An object's grown box is its box widened by one
 * cell on every side: [x0 - 1/W, x1 + 1/W] x [y0 - 1/H, y1 + 1/H] (closed).
 * A cell counts as inside a grown box when its centre lies in it — so every
 * cell that overlaps the object's box counts, and no cell farther than 1.5
 * cells from it. For a mention that took t > 0 objects, the map is the one
 * behind its shape word; its argmax is the first maximum in row-major order.
 * Which of several identical objects it took: those whose grown box holds
 * the argmax cell first, then in index order. The mention's region is the
 * union of the taken objects' grown boxes; each taken object counts once:
 * point_total += t, point_hits += t when the argmax cell is inside the
 * region, mass_sum += t * (sum of the map over the cells inside the region,
 * each cell once).
 *
 * RELATIONS. A parsed relation (X, rel, Y) is scored when both X and Y took
 * at least one object. It is correct when some min(count, available)
 * objects with X's description and as many with Y's (disjoint when the
 * descriptions coincide) satisfy the relation pairwise, per
 * imcap_synth_relation_holds (data/synth.h) — the rule the generator uses,
 * so every reference caption's relations are correct. */
void imcap_object_stats_add(imcap_object_stats *st, const imcap_scene *scene, int n_words,
                            const char *const *words, const float *attention, int grid_h, int grid_w);

/* Attention targets for training (imcap train --att-sup, --att-sup-rel):
 * the scene's objects that each word of a reference caption names. Every
 * parsed mention with a size, a colour and a shape gives its words, from
 * its first (count, size or colour) to its shape noun, the bit mask of the
 * scene's objects of that description (bit i: scene->obj[i]), the objects
 * whose region pointing and mass score at that noun; the words before the
 * noun also carry IMCAP_ATT_DESC. The words of a parsed
 * relation's phrase ("to the left of a", between the first mention's noun
 * and the second's first word) get the second mention's objects, with
 * IMCAP_ATT_RELATION set: the partner the caption goes on to name. The
 * partner's own words (the second mention of a relation) also carry
 * IMCAP_ATT_PARTNER (imcap train --rel-weight). Every other word gets 0.
 * out has n_words entries. Returns the number of words given objects. */
#define IMCAP_ATT_RELATION 0x100u
#define IMCAP_ATT_DESC 0x200u
#define IMCAP_ATT_PARTNER 0x400u
int imcap_caption_word_objects(const imcap_scene *scene, int n_words, const char *const *words, uint16_t *out);
/* 1 when cell `cell` of a grid_h x grid_w grid (row-major) counts as inside
 * the objects of mask: its centre lies in one of their grown boxes, the
 * region pointing and mass use. */
int imcap_scene_cell_in(const imcap_scene *scene, unsigned mask, int cell, int grid_h, int grid_w);

typedef struct {
    double precision, recall, f1, pointing, mass, relations;
    long n_pointing, n_relations;
    /* relation accuracy by axis, [0] left/right and [1] above/below: a model
     * blind along one axis shows here, where the mixed figure hides it */
    double relations_axis[2];
    long n_relations_axis[2];
} imcap_object_summary;

void imcap_object_stats_summary(const imcap_object_stats *st, imcap_object_summary *out);
#endif
