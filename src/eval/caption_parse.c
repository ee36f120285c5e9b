/* caption_parse.c — a caption's words back into (size, colour, shape)
 * mentions with counts, and the spatial relations between consecutive
 * mentions. The rules are in objects.h; the words are data/synth.h's. */
#include <string.h>

#include "data/synth.h"
#include "eval/objects.h"

void imcap_caption_parse(int n_words, const char *const *words, imcap_parsed_caption *out) {
    memset(out, 0, sizeof *out);
    int prev = -1; /* index of the previous mention, -1 before the first */
    for (int k = 0; k < n_words; k++) {
        int plural = 0;
        int shape = words[k] ? imcap_synth_shape_word(words[k], &plural) : -1;
        if (shape < 0) continue;
        int size = -1, colour = -1, count = 0, j = k - 1;
        /* walking back from the noun, so the nearest word of each kind wins */
        for (; j >= 0 && words[j]; j--) {
            int v;
            if ((v = imcap_synth_size_word(words[j])) >= 0) {
                if (size < 0) size = v;
            } else if ((v = imcap_synth_colour_word(words[j])) >= 0) {
                if (colour < 0) colour = v;
            } else if ((v = imcap_synth_count_word(words[j])) > 0) {
                if (count == 0) count = v;
            } else {
                break;
            }
        }
        if (count == 0) count = plural ? 2 : 1;
        if (out->n_mentions == IMCAP_CAPTION_MAX_MENTIONS) {
            out->overflow_count += count;
            continue;
        }
        imcap_mention *m = &out->m[out->n_mentions];
        m->shape = shape, m->colour = colour, m->size = size, m->count = count;
        m->first_word = j + 1, m->shape_word = k;
        if (prev >= 0) {
            for (int w = out->m[prev].shape_word + 1; w < m->first_word; w++) {
                int rel = words[w] ? imcap_synth_relation_word(words[w]) : -1;
                if (rel >= 0) {
                    imcap_relation *r = &out->r[out->n_relations++];
                    r->a = prev, r->rel = rel, r->b = out->n_mentions;
                    break;
                }
            }
        }
        prev = out->n_mentions++;
    }
}
