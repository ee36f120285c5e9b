/* tokenize.c — the spec's caption tokeniser ("Tokenisation of reference
 * captions" in docs/model-format.md).
 *
 * A word is a maximal run of code points that are Unicode letters (general
 * category L*), decimal digits (Nd) or apostrophes (U+0027 and U+2019, both
 * emitted as U+0027). The spec says "Unicode digits"; we read that as Nd, the
 * digits proper, so that superscripts, fractions and Roman-numeral letters
 * (No, Nl) separate words instead of gluing to them. Everything else,
 * combining marks included, separates words: the spec names no normalisation,
 * so text is taken code point by code point as written. Bytes that are not
 * valid UTF-8 are separators too, one byte at a time. Lower-casing is
 * utf8proc's simple (one code point to one code point) mapping. */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "dataset.h"

static int word_char(utf8proc_int32_t c) {
    if (c == '\'' || c == 0x2019) return 1;
    switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_ND:
        return 1;
    default:
        return 0;
    }
}

void imcap_tokens_free(char **tokens, int n) {
    if (!tokens) return;
    for (int i = 0; i < n; i++) free(tokens[i]);
    free(tokens);
}

/* Returns -1 when out of memory (tokens then NULL). */
int imcap_tokenize(const char *text, char ***tokens) {
    *tokens = NULL;
    if (!text) return 0;
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)text;
    size_t len = strlen(text);
    /* A word's lower-cased form never needs more than 4 bytes per code point,
     * and a code point takes at least one input byte. */
    char *word = malloc(4 * len + 1);
    char **out = NULL;
    int n = 0, cap = 0;
    size_t wlen = 0;
    if (!word) return -1;
    size_t i = 0;
    for (;;) {
        utf8proc_int32_t c = -1;
        utf8proc_ssize_t step = 0;
        if (i < len) {
            step = utf8proc_iterate(p + i, (utf8proc_ssize_t)(len - i), &c);
            if (step <= 0) { c = -1; step = 1; }
        }
        int inside = i < len && c >= 0 && word_char(c);
        if (inside) {
            utf8proc_int32_t lc = (c == 0x2019) ? '\'' : utf8proc_tolower(c);
            wlen += (size_t)utf8proc_encode_char(lc, (utf8proc_uint8_t *)word + wlen);
        } else if (wlen) {
            if (n == cap) {
                int ncap = cap ? cap * 2 : 16;
                char **no = realloc(out, (size_t)ncap * sizeof *no);
                if (!no) goto oom;
                out = no;
                cap = ncap;
            }
            out[n] = malloc(wlen + 1);
            if (!out[n]) goto oom;
            memcpy(out[n], word, wlen);
            out[n][wlen] = 0;
            n++;
            wlen = 0;
        }
        if (i >= len) break;
        i += (size_t)step;
    }
    free(word);
    *tokens = out;
    return n;
oom:
    free(word);
    imcap_tokens_free(out, n);
    return -1;
}
