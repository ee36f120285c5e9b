/* cache.h — images decoded and resized once into a memory-mapped file, so
 * training epochs never decode an image again. */
#ifndef IMCAP_CACHE_H
#define IMCAP_CACHE_H
#include <stdint.h>
#include "data/dataset.h"

typedef struct {
    int S, n;
    const unsigned char *ok;   /* [n] 1 when image i was decoded */
    const unsigned char *pix;  /* [n, S, S, 3] */
    void *map;
    size_t map_size;
} imcap_image_cache;

/* Called for every image that cannot be read (the message names it), and
 * with progress (done of total) while building. Both may be NULL. */
typedef struct {
    void (*on_error)(void *ctx, const char *msg);
    void (*on_progress)(void *ctx, int done, int total);
    void *ctx;
} imcap_cache_callbacks;

/* Opens path when it holds the cache of exactly these images (same paths,
 * sizes, modification times and S); otherwise builds it (OpenMP over
 * images), writing a temporary file renamed into place. n_failed receives
 * the images that could not be decoded. */
imcap_status imcap_cache_open(const char *path, const imcap_dataset *ds, int S, const imcap_cache_callbacks *cb,
                              imcap_image_cache *c, int *n_failed, imcap_error *err);
void imcap_cache_close(imcap_image_cache *c);

static inline const unsigned char *imcap_cache_image(const imcap_image_cache *c, int i) {
    return c->pix + (size_t)i * c->S * c->S * 3;
}
#endif
