/* synth_caption.c — five reference captions per scene.
 *
 * Grammar (every word lower-case; 44 words in all):
 *   caption := [prefix] clause ("and" clause)*
 *   prefix  := "there is" | "there are" (agreeing with the first noun phrase)
 *            | "a picture of" | "an image of" | "a drawing of"
 *   clause  := NP | NP ["is" | "are"] REL NP        ("is"/"are" only without prefix)
 *   NP      := "a" SIZE COLOUR SHAPE | COUNT SIZE COLOUR SHAPES
 *   REL     := "to the left of" | "left of" | "to the right of" | "right of"
 *            | "above" | "over" | "below" | "under"
 *   COUNT   := "two" | "three"
 * Identical objects (same size, colour and shape) always form one noun
 * phrase with a count, and every object is named exactly once, so a caption
 * parses back to exactly the scene's objects. Noun phrases are paired up in
 * a random order; a pair is joined by a relation that holds for every member
 * of both (synth.c's rule; among those that hold, the one with the widest
 * clearance), or by "and" when none does (possible only with counts). With
 * an odd number of noun phrases one stands alone, first or last (last when
 * the clauses have a verb). */
#include <string.h>

#include "data/synth.h"
#include "util/util.h"

#define CAND_WORDS 48

typedef struct {
    int n_words;
    const char *words[CAND_WORDS];
    int n_mentions;
    imcap_synth_mention mentions[IMCAP_SYNTH_MAX_OBJECTS];
} candidate;

typedef struct {
    int shape, colour, size, n;
    int members[IMCAP_SYNTH_MAX_OBJECTS];
} group;

static int put(candidate *c, const char *w) {
    if (c->n_words < CAND_WORDS) c->words[c->n_words] = w;
    return c->n_words++;
}

static void noun_phrase(candidate *c, const group *g) {
    static const char *const counts[] = {"", "", "two", "three", "four"};
    int pos[4], np = 0;
    if (g->n == 1) put(c, "a");
    else pos[np++] = put(c, counts[g->n]);
    pos[np++] = put(c, imcap_synth_size_names[g->size]);
    pos[np++] = put(c, imcap_synth_colour_names[g->colour]);
    int shape_pos = put(c, g->n == 1 ? imcap_synth_shape_names[g->shape] : imcap_synth_shape_plurals[g->shape]);
    pos[np++] = shape_pos;
    for (int m = 0; m < g->n && c->n_mentions < IMCAP_SYNTH_MAX_OBJECTS; m++) {
        imcap_synth_mention *me = &c->mentions[c->n_mentions++];
        me->object = g->members[m];
        me->n_words = np;
        memcpy(me->words, pos, sizeof pos);
        me->shape_word = shape_pos;
    }
}

/* The relation from group a to group b that holds for every pair of
 * members and has the widest clearance; -1 when none holds for all. */
static int group_relation(const imcap_synth_scene *sc, const group *a, const group *b) {
    int best = -1;
    double best_gap = -1;
    for (int r = 0; r < IMCAP_REL_N; r++) {
        double gap = 1e9;
        for (int i = 0; i < a->n; i++)
            for (int j = 0; j < b->n; j++) {
                double g = imcap_synth_relation_gap(&sc->obj[a->members[i]].box, r, &sc->obj[b->members[j]].box);
                if (g < gap) gap = g;
            }
        if (gap >= 0 && gap > best_gap) best = r, best_gap = gap;
    }
    return best;
}

static void relation_phrase(candidate *c, int rel, int short_form) {
    switch (rel) {
    case IMCAP_REL_LEFT:
    case IMCAP_REL_RIGHT:
        if (!short_form) put(c, "to"), put(c, "the");
        put(c, rel == IMCAP_REL_LEFT ? "left" : "right");
        put(c, "of");
        break;
    case IMCAP_REL_ABOVE: put(c, short_form ? "over" : "above"); break;
    default: put(c, short_form ? "under" : "below"); break;
    }
}

typedef struct {
    int n_groups;
    group g[IMCAP_SYNTH_MAX_OBJECTS];
    int rel[IMCAP_SYNTH_MAX_OBJECTS][IMCAP_SYNTH_MAX_OBJECTS]; /* group_relation(i, j) */
    int n_perms;
    int perms[24][IMCAP_SYNTH_MAX_OBJECTS]; /* orders that relate the most pairs */
} plan;

static void permutations(plan *p, int *a, int k, int n, int *best) {
    if (k == n) {
        int score = 0;
        for (int i = 0; i + 1 < n; i += 2) score += p->rel[a[i]][a[i + 1]] >= 0;
        if (score > *best) *best = score, p->n_perms = 0;
        if (score == *best) memcpy(p->perms[p->n_perms++], a, sizeof(int) * IMCAP_SYNTH_MAX_OBJECTS);
        return;
    }
    for (int i = k; i < n; i++) {
        int t = a[k];
        a[k] = a[i], a[i] = t;
        permutations(p, a, k + 1, n, best);
        t = a[k], a[k] = a[i], a[i] = t;
    }
}

/* minimal: no prefix, no verb, short relation phrases — the shortest form
 * (at most 4 * 4 + 2 * 2 + 1 = 21 words), used when random forms run long. */
static void make_candidate(const plan *p, imcap_rng *r, int minimal, candidate *c) {
    memset(c, 0, sizeof *c);
    const int *perm = p->perms[imcap_rng_int(r, p->n_perms)];
    int k = p->n_groups;
    double u = imcap_rng_uniform(r);
    int prefix = minimal ? 0 : u < 0.4 ? 0 : u < 0.55 ? 1 : u < 0.7 ? 2 : u < 0.85 ? 3 : 4;
    int verb = !minimal && prefix == 0 && k >= 2 && imcap_rng_uniform(r) < 0.35;
    /* clauses: (a, rel, b) with rel -1 for a lone noun phrase */
    int cl[IMCAP_SYNTH_MAX_OBJECTS][3], ncl = 0;
    for (int i = 0; i + 1 < k; i += 2) {
        int a = perm[i], b = perm[i + 1];
        if (p->rel[a][b] >= 0) {
            cl[ncl][0] = a, cl[ncl][1] = p->rel[a][b], cl[ncl][2] = b, ncl++;
        } else {
            cl[ncl][0] = a, cl[ncl][1] = -1, ncl++;
            cl[ncl][0] = b, cl[ncl][1] = -1, ncl++;
        }
    }
    if (k % 2) {
        int lone = perm[k - 1];
        /* first or last; last when clauses have a verb, or "X and Y is
         * left of Z" would read as a plural subject with a singular verb */
        if (k > 1 && imcap_rng_uniform(r) < 0.5 && !verb) {
            memmove(cl[1], cl[0], sizeof(cl[0]) * ncl);
            cl[0][0] = lone, cl[0][1] = -1;
        } else {
            cl[ncl][0] = lone, cl[ncl][1] = -1;
        }
        ncl++;
    }
    switch (prefix) {
    case 1: put(c, "there"), put(c, p->g[cl[0][0]].n > 1 ? "are" : "is"); break;
    case 2: put(c, "a"), put(c, "picture"), put(c, "of"); break;
    case 3: put(c, "an"), put(c, "image"), put(c, "of"); break;
    case 4: put(c, "a"), put(c, "drawing"), put(c, "of"); break;
    default: break;
    }
    for (int i = 0; i < ncl; i++) {
        if (i) put(c, "and");
        const group *a = &p->g[cl[i][0]];
        noun_phrase(c, a);
        if (cl[i][1] < 0) continue;
        if (verb) put(c, a->n > 1 ? "are" : "is");
        relation_phrase(c, cl[i][1], minimal || imcap_rng_uniform(r) < 0.35);
        noun_phrase(c, &p->g[cl[i][2]]);
    }
}

static void store(imcap_synth_caption *out, const candidate *c) {
    memset(out, 0, sizeof *out);
    out->n_words = c->n_words;
    size_t len = 0;
    for (int i = 0; i < c->n_words; i++) {
        out->words[i] = c->words[i];
        size_t wl = strlen(c->words[i]);
        if (i) out->raw[len++] = ' ';
        memcpy(out->raw + len, c->words[i], wl);
        len += wl;
    }
    out->raw[len] = 0;
    out->n_mentions = c->n_mentions;
    memcpy(out->mentions, c->mentions, sizeof c->mentions);
}

static int same_words(const imcap_synth_caption *a, const candidate *c) {
    if (a->n_words != c->n_words) return 0;
    for (int i = 0; i < c->n_words; i++)
        if (strcmp(a->words[i], c->words[i])) return 0;
    return 1;
}

void imcap_synth_write_captions(imcap_synth_scene *sc, uint64_t caption_seed) {
    imcap_rng r;
    imcap_rng_seed(&r, caption_seed);
    plan p;
    memset(&p, 0, sizeof p);
    for (int i = 0; i < sc->n; i++) {
        const imcap_synth_object *o = &sc->obj[i];
        int g = 0;
        while (g < p.n_groups && !(p.g[g].shape == o->shape && p.g[g].colour == o->colour && p.g[g].size == o->size))
            g++;
        if (g == p.n_groups) {
            p.g[g].shape = o->shape, p.g[g].colour = o->colour, p.g[g].size = o->size;
            p.n_groups++;
        }
        p.g[g].members[p.g[g].n++] = i;
    }
    for (int a = 0; a < p.n_groups; a++)
        for (int b = 0; b < p.n_groups; b++) p.rel[a][b] = a == b ? -1 : group_relation(sc, &p.g[a], &p.g[b]);
    int order[IMCAP_SYNTH_MAX_OBJECTS] = {0, 1, 2, 3}, best = -1;
    permutations(&p, order, 0, p.n_groups, &best);

    for (int s = 0; s < IMCAP_SYNTH_N_CAPTIONS; s++) {
        candidate c, fallback;
        int have_fallback = 0, done = 0;
        /* Up to 40 draws for a caption that is short enough and new; small
         * scenes have fewer distinct phrasings than five, so repeats are
         * allowed after that. */
        for (int t = 0; t < 40 && !done; t++) {
            make_candidate(&p, &r, 0, &c);
            if (c.n_words > IMCAP_SYNTH_MAX_WORDS) continue;
            if (!have_fallback) fallback = c, have_fallback = 1;
            int dup = 0;
            for (int q = 0; q < s; q++) dup |= same_words(&sc->captions[q], &c);
            if (!dup) done = 1;
        }
        if (!done) {
            if (have_fallback) c = fallback;
            else make_candidate(&p, &r, 1, &c);
        }
        store(&sc->captions[s], &c);
    }
}
