/* objects.h — scoring captions of synthetic scenes against their ground
 * truth: object mentions (size, colour, shape, counts), attention pointing,
 * attention mass in the named objects' boxes, spatial relations.
 * Implemented in caption_parse.c (caption -> mentions and relations) and
 * objects.c (matching and statistics). */
#ifndef IMCAP_OBJECTS_H
#define IMCAP_OBJECTS_H
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

/* Parses the "objects" JSON array that `imcap synth` writes for an image. */
imcap_status imcap_scene_from_json(const char *objects_json, imcap_scene *scene, imcap_error *err);

/* Running totals over a set of captions; zero-initialise, then add. */
typedef struct {
    double tp, fp, fn;                 /* object mentions, counts included */
    long point_hits, point_total;      /* attention argmax inside grown box */
    double mass_sum;                   /* attention mass inside grown box, summed */
    long rel_correct, rel_total;       /* generated relations that the geometry agrees with */
    long images;
} imcap_object_stats;

/* Scores one caption: words[k] is the k-th emitted word (no <end>); attention
 * (may be NULL) is n_words x (grid_h * grid_w), the map behind each word. */
void imcap_object_stats_add(imcap_object_stats *st, const imcap_scene *scene, int n_words,
                            const char *const *words, const float *attention, int grid_h, int grid_w);

typedef struct {
    double precision, recall, f1, pointing, mass, relations;
    long n_pointing, n_relations;
} imcap_object_summary;

void imcap_object_stats_summary(const imcap_object_stats *st, imcap_object_summary *out);
#endif
