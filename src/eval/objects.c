/* objects.c — scoring a caption of a synthetic scene against its ground
 * truth: object precision / recall, attention pointing and mass, relation
 * accuracy. Every rule is stated in objects.h next to the declarations. */
#include "eval/objects.h"

#include <math.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "data/synth.h"
#include "util/util.h"
#include "util/json.h"

static imcap_status word_field(const cJSON *o, int i, const char *name, int (*lookup)(const char *), int *out,
                               imcap_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsString(v))
        return imcap_fail(err, IMCAP_E_FORMAT, "objects[%d].%s: missing or not a string", i, name);
    *out = lookup(v->valuestring);
    if (*out < 0)
        return imcap_fail(err, IMCAP_E_FORMAT, "objects[%d].%s: unknown %s '%.64s'", i, name, name, v->valuestring);
    return IMCAP_OK;
}

static int shape_lookup(const char *w) {
    int plural;
    int s = imcap_synth_shape_word(w, &plural);
    return plural ? -1 : s;
}

static imcap_status box_field(const cJSON *o, int i, const char *name, double sx, double sy, float box[4],
                              imcap_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 4)
        return imcap_fail(err, IMCAP_E_FORMAT, "objects[%d].%s: not an array of 4 numbers", i, name);
    for (int k = 0; k < 4; k++) {
        const cJSON *e = cJSON_GetArrayItem(v, k);
        if (!cJSON_IsNumber(e) || !isfinite(e->valuedouble))
            return imcap_fail(err, IMCAP_E_FORMAT, "objects[%d].%s[%d]: not a finite number", i, name, k);
        box[k] = (float)(e->valuedouble / (k % 2 ? sy : sx));
    }
    if (!(box[0] <= box[2] && box[1] <= box[3]))
        return imcap_fail(err, IMCAP_E_FORMAT, "objects[%d].%s: x0 > x1 or y0 > y1", i, name);
    return IMCAP_OK;
}

imcap_status imcap_scene_from_json_sized(const char *objects_json, int width, int height, imcap_scene *scene,
                                         imcap_error *err) {
    memset(scene, 0, sizeof *scene);
    if (!objects_json) return imcap_fail(err, IMCAP_E_FORMAT, "objects: missing");
    cJSON *root = imcap_json_parse_string(objects_json);
    if (!root) return imcap_fail(err, IMCAP_E_FORMAT, "objects: not valid JSON");
    imcap_status st = IMCAP_OK;
    if (!cJSON_IsArray(root)) {
        st = imcap_fail(err, IMCAP_E_FORMAT, "objects: not an array");
    } else if (cJSON_GetArraySize(root) > IMCAP_SCENE_MAX_OBJECTS) {
        st = imcap_fail(err, IMCAP_E_FORMAT, "objects: %d objects, more than the %d supported",
                        cJSON_GetArraySize(root), IMCAP_SCENE_MAX_OBJECTS);
    } else {
        int i = 0;
        const cJSON *o;
        cJSON_ArrayForEach(o, root) {
            imcap_scene_object *so = &scene->obj[i];
            float b[4];
            if (!cJSON_IsObject(o)) st = imcap_fail(err, IMCAP_E_FORMAT, "objects[%d]: not an object", i);
            if (!st) st = word_field(o, i, "shape", shape_lookup, &so->shape, err);
            if (!st) st = word_field(o, i, "colour", imcap_synth_colour_word, &so->colour, err);
            if (!st) st = word_field(o, i, "size", imcap_synth_size_word, &so->size, err);
            if (!st) {
                if (cJSON_GetObjectItemCaseSensitive(o, "bbox_norm")) st = box_field(o, i, "bbox_norm", 1, 1, b, err);
                else if (width > 0 && height > 0) st = box_field(o, i, "bbox", width, height, b, err);
                else st = imcap_fail(err, IMCAP_E_FORMAT, "objects[%d]: no bbox_norm, and no image size to normalise bbox", i);
            }
            if (st) break;
            so->x0 = b[0], so->y0 = b[1], so->x1 = b[2], so->y1 = b[3];
            i++;
        }
        scene->n = st ? 0 : i;
    }
    cJSON_Delete(root);
    return st;
}

imcap_status imcap_scene_from_json(const char *objects_json, imcap_scene *scene, imcap_error *err) {
    return imcap_scene_from_json_sized(objects_json, 0, 0, scene, err);
}

static int same_desc(const imcap_scene_object *o, const imcap_mention *m) {
    return o->shape == m->shape && o->colour == m->colour && o->size == m->size;
}

static imcap_synth_box box_of(const imcap_scene_object *o) {
    imcap_synth_box b = {o->x0, o->y0, o->x1, o->y1};
    return b;
}

/* Cell centres against the grown box; see objects.h. */
static int in_grown(const imcap_scene_object *o, double cx, double cy, int gh, int gw) {
    return cx >= o->x0 - 1.0 / gw && cx <= o->x1 + 1.0 / gw && cy >= o->y0 - 1.0 / gh && cy <= o->y1 + 1.0 / gh;
}

static int in_region(const imcap_scene *s, unsigned mask, int cell, int gh, int gw) {
    double cx = (cell % gw + 0.5) / gw, cy = (cell / gw + 0.5) / gh;
    for (int i = 0; i < s->n; i++)
        if ((mask >> i & 1) && in_grown(&s->obj[i], cx, cy, gh, gw)) return 1;
    return 0;
}

static int popcount(unsigned v) {
    int n = 0;
    for (; v; v &= v - 1) n++;
    return n;
}

/* Some kx objects of set X and ky of set Y (disjoint) with every pair in
 * relation rel; X, Y are bit masks over the scene's objects. */
static int relation_true(const imcap_scene *s, unsigned X, int kx, int rel, unsigned Y, int ky) {
    for (unsigned a = X;; a = (a - 1) & X) {
        if (popcount(a) == kx) {
            for (unsigned b = Y;; b = (b - 1) & Y) {
                if (popcount(b) == ky && !(a & b)) {
                    int ok = 1;
                    for (int i = 0; i < s->n && ok; i++)
                        for (int j = 0; j < s->n && ok; j++)
                            if ((a >> i & 1) && (b >> j & 1)) {
                                imcap_synth_box bi = box_of(&s->obj[i]), bj = box_of(&s->obj[j]);
                                ok = imcap_synth_relation_holds(&bi, rel, &bj);
                            }
                    if (ok) return 1;
                }
                if (!b) break;
            }
        }
        if (!a) break;
    }
    return 0;
}

static unsigned desc_mask(const imcap_scene *s, const imcap_mention *m) {
    unsigned mask = 0;
    for (int i = 0; i < s->n; i++)
        if (same_desc(&s->obj[i], m)) mask |= 1u << i;
    return mask;
}

int imcap_scene_cell_in(const imcap_scene *scene, unsigned mask, int cell, int grid_h, int grid_w) {
    return in_region(scene, mask, cell, grid_h, grid_w);
}

static unsigned named_objects(const imcap_scene *scene, const imcap_mention *m) {
    return m->shape < 0 || m->colour < 0 || m->size < 0 ? 0 : desc_mask(scene, m);
}

int imcap_caption_word_objects(const imcap_scene *scene, int n_words, const char *const *words, uint16_t *out) {
    imcap_parsed_caption parsed;
    imcap_caption_parse(n_words, words, &parsed);
    for (int w = 0; w < n_words; w++) out[w] = 0;
    int marked = 0;
    for (int i = 0; i < parsed.n_mentions; i++) {
        const imcap_mention *m = &parsed.m[i];
        unsigned mask = named_objects(scene, m);
        for (int w = m->first_word; mask && w <= m->shape_word && w < n_words; w++) {
            marked += !out[w];
            out[w] = (uint16_t)(mask | (w < m->shape_word ? IMCAP_ATT_DESC : 0));
        }
    }
    for (int k = 0; k < parsed.n_relations; k++) {
        const imcap_mention *a = &parsed.m[parsed.r[k].a], *b = &parsed.m[parsed.r[k].b];
        unsigned mask = named_objects(scene, b);
        for (int w = a->shape_word + 1; mask && w < b->first_word && w < n_words; w++) {
            marked += !out[w];
            out[w] = (uint16_t)(mask | IMCAP_ATT_RELATION);
        }
        for (int w = b->first_word; mask && w <= b->shape_word && w < n_words; w++) out[w] |= IMCAP_ATT_PARTNER;
    }
    return marked;
}

void imcap_object_stats_add(imcap_object_stats *st, const imcap_scene *scene, int n_words,
                            const char *const *words, const float *attention, int grid_h, int grid_w) {
    imcap_parsed_caption parsed, *pc = &parsed;
    imcap_caption_parse(n_words, words, pc);
    st->images++;
    st->fp += pc->overflow_count;
    unsigned taken_all = 0;
    int took[IMCAP_CAPTION_MAX_MENTIONS];
    int L = grid_h * grid_w;
    int use_att = attention && grid_h > 0 && grid_w > 0;
    for (int i = 0; i < pc->n_mentions; i++) {
        const imcap_mention *m = &pc->m[i];
        unsigned avail = desc_mask(scene, m) & ~taken_all;
        int t = popcount(avail) < m->count ? popcount(avail) : m->count;
        took[i] = t;
        st->tp += t;
        st->fp += m->count - t;
        if (t == 0) continue;
        const float *map = use_att ? attention + (size_t)m->shape_word * L : NULL;
        int arg = 0;
        if (map)
            for (int c = 1; c < L; c++)
                if (map[c] > map[arg]) arg = c;
        unsigned mine = 0;
        int need = t;
        /* objects holding the argmax first, then index order */
        for (int pass = map ? 0 : 1; pass < 2; pass++)
            for (int o = 0; o < scene->n && need; o++) {
                if (!(avail >> o & 1) || (mine >> o & 1)) continue;
                if (pass == 0 && !in_region(scene, 1u << o, arg, grid_h, grid_w)) continue;
                mine |= 1u << o;
                need--;
            }
        taken_all |= mine;
        if (!map) continue;
        double mass = 0;
        for (int c = 0; c < L; c++)
            if (in_region(scene, mine, c, grid_h, grid_w)) mass += map[c];
        st->point_total += t;
        if (in_region(scene, mine, arg, grid_h, grid_w)) st->point_hits += t;
        st->mass_sum += t * mass;
    }
    st->fn += scene->n - popcount(taken_all);
    for (int k = 0; k < pc->n_relations; k++) {
        const imcap_relation *r = &pc->r[k];
        if (!took[r->a] || !took[r->b]) continue;
        const imcap_mention *a = &pc->m[r->a], *b = &pc->m[r->b];
        unsigned X = desc_mask(scene, a), Y = desc_mask(scene, b);
        int kx = a->count < popcount(X) ? a->count : popcount(X);
        int ky = b->count < popcount(Y) ? b->count : popcount(Y);
        int axis = r->rel == IMCAP_REL_ABOVE || r->rel == IMCAP_REL_BELOW, ok = relation_true(scene, X, kx, r->rel, Y, ky);
        st->rel_total++, st->rel_axis_total[axis]++;
        st->rel_correct += ok, st->rel_axis_correct[axis] += ok;
    }
}

void imcap_object_stats_summary(const imcap_object_stats *st, imcap_object_summary *out) {
    memset(out, 0, sizeof *out);
    out->precision = st->tp + st->fp > 0 ? st->tp / (st->tp + st->fp) : 0;
    out->recall = st->tp + st->fn > 0 ? st->tp / (st->tp + st->fn) : 0;
    out->f1 = out->precision + out->recall > 0 ? 2 * out->precision * out->recall / (out->precision + out->recall) : 0;
    out->pointing = st->point_total ? (double)st->point_hits / st->point_total : 0;
    out->mass = st->point_total ? st->mass_sum / st->point_total : 0;
    out->relations = st->rel_total ? (double)st->rel_correct / st->rel_total : 0;
    out->n_pointing = st->point_total;
    out->n_relations = st->rel_total;
    for (int a = 0; a < 2; a++) {
        out->relations_axis[a] = st->rel_axis_total[a] ? (double)st->rel_axis_correct[a] / st->rel_axis_total[a] : 0;
        out->n_relations_axis[a] = st->rel_axis_total[a];
    }
}
