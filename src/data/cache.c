/* cache.c — the preprocessed image cache (see cache.h).
 * Layout: "IMCAPCH1", u32 S, u32 n, u64 key, n bytes of ok flags padded to
 * 64, then n * S * S * 3 pixels. The key hashes S and every image's path,
 * size and modification time, so a changed data set rebuilds the cache. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/cache.h"
#include "image/image.h"
#include "util/util.h"

#define HDR 24


static uint64_t cache_key(const imcap_dataset *ds, int S) {
    uint64_t h = imcap_fnv1a64(IMCAP_FNV_OFFSET, &S, sizeof S);
    for (int i = 0; i < ds->n; i++) {
        const char *p = ds->images[i].path;
        h = imcap_fnv1a64(h, p, strlen(p) + 1);
        struct stat st;
        int64_t meta[2] = {-1, -1};
        if (stat(p, &st) == 0) meta[0] = st.st_size, meta[1] = st.st_mtime;
        h = imcap_fnv1a64(h, meta, sizeof meta);
    }
    return h;
}

static size_t flags_size(int n) { return ((size_t)n + 63) / 64 * 64; }

static imcap_status map_file(const char *path, imcap_image_cache *c, int S, int n, uint64_t key, int *matches,
                             imcap_error *err) {
    *matches = 0;
    size_t want = HDR + flags_size(n) + (size_t)n * S * S * 3;
    void *map;
    imcap_status ms = imcap_map_cache_file(path, want, &map, err);
    if (ms || !map) return ms;
    const unsigned char *b = map;
    uint32_t s32, n32;
    uint64_t k;
    memcpy(&s32, b + 8, 4), memcpy(&n32, b + 12, 4), memcpy(&k, b + 16, 8);
    if (memcmp(b, "IMCAPCH1", 8) != 0 || s32 != (uint32_t)S || n32 != (uint32_t)n || k != key) {
        munmap(map, want);
        return IMCAP_OK;
    }
    c->S = S, c->n = n, c->map = map, c->map_size = want;
    c->ok = b + HDR;
    c->pix = b + HDR + flags_size(n);
    *matches = 1;
    return IMCAP_OK;
}

imcap_status imcap_cache_open(const char *path, const imcap_dataset *ds, int S, const imcap_cache_callbacks *cb,
                              imcap_image_cache *c, int *n_failed, imcap_error *err) {
    memset(c, 0, sizeof *c);
    *n_failed = 0;
    int n = ds->n, matches;
    uint64_t key = cache_key(ds, S);
    imcap_status s = map_file(path, c, S, n, key, &matches, err);
    if (s || matches) {
        if (matches)
            for (int i = 0; i < n; i++) *n_failed += !c->ok[i];
        return s;
    }
    imcap_atomic_file af;
    if ((s = imcap_atomic_open(&af, path, err))) return s;
    int fd = fileno(af.f);
    size_t img_bytes = (size_t)S * S * 3, fl = flags_size(n);
    unsigned char *flags = calloc(fl, 1);
    unsigned char hdr[HDR];
    uint32_t s32 = (uint32_t)S, n32 = (uint32_t)n;
    memcpy(hdr, "IMCAPCH1", 8), memcpy(hdr + 8, &s32, 4), memcpy(hdr + 12, &n32, 4), memcpy(hdr + 16, &key, 8);
    int io_ok = flags != NULL && ftruncate(fd, (off_t)(HDR + fl + (size_t)n * img_bytes)) == 0;
    int done = 0, failed = 0;
#pragma omp parallel for schedule(dynamic, 4) reduction(+ : failed)
    for (int i = 0; i < n; i++) {
        int still_ok;
#pragma omp atomic read
        still_ok = io_ok;
        if (!still_ok) continue;
        imcap_error e;
        imcap_image img;
        unsigned char *px = malloc(img_bytes);
        imcap_status st = px ? imcap_image_load(ds->images[i].path, &img, &e) : imcap_fail(&e, IMCAP_E_NOMEM, "out of memory");
        if (st == IMCAP_OK) {
            if (img.width == S && img.height == S) memcpy(px, img.rgb, img_bytes);
            else st = imcap_resize_rgb8(img.rgb, img.width, img.height, px, S, S, &e);
            imcap_image_free(&img);
        }
        if (st == IMCAP_OK) {
            flags[i] = 1;
            if (pwrite(fd, px, img_bytes, (off_t)(HDR + fl + (size_t)i * img_bytes)) != (ssize_t)img_bytes) {
#pragma omp atomic write
                io_ok = 0;
            }
        } else {
            failed++;
#pragma omp critical(imcap_cache_cb)
            if (cb && cb->on_error) cb->on_error(cb->ctx, e.msg);
        }
        free(px);
        int d;
#pragma omp atomic capture
        d = ++done;
        if (cb && cb->on_progress && (d % 256 == 0 || d == n)) {
#pragma omp critical(imcap_cache_cb)
            cb->on_progress(cb->ctx, d, n);
        }
    }
    if (io_ok) io_ok = pwrite(fd, hdr, HDR, 0) == HDR && pwrite(fd, flags, fl, HDR) == (ssize_t)fl;
    free(flags);
    if (!io_ok) {
        imcap_atomic_abort(&af);
        return imcap_fail(err, IMCAP_E_IO, "%s: cannot write the image cache: %s", path, strerror(errno));
    }
    if ((s = imcap_atomic_commit(&af, err))) return s;
    *n_failed = failed;
    s = map_file(path, c, S, n, key, &matches, err);
    if (!s && !matches) s = imcap_fail(err, IMCAP_E_IO, "%s: the cache just written does not read back", path);
    return s;
}

void imcap_cache_close(imcap_image_cache *c) {
    if (c->map) munmap(c->map, c->map_size);
    memset(c, 0, sizeof *c);
}
