/* many.c — many images over several threads, each thread decoding a block
 * of them together (an imcap_batcher), results handed back in index order.
 *
 * Threads take images in index order from one counter, at most a window
 * ahead of the first image not yet emitted, so the caller's reorder buffer
 * is bounded (imcap_caption_many_window). Taking an image and checking the
 * stop flag are one step under the lock, so the images started are always a
 * prefix 0..k of the list, and every image started is finished and emitted,
 * even after a stop. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "util/util.h"

size_t imcap_caption_many_window(int threads, int block) {
    size_t w = (size_t)4 * (size_t)(threads > 0 ? threads : 1) * (size_t)(block > 0 ? block : 1);
    return w < 64 ? 64 : w;
}

typedef struct {
    const imcap_many_io *io;
    size_t n, window, claim, next;
    unsigned char *done; /* [window] ring: image finished, not yet emitted */
    int fatal;
    const volatile sig_atomic_t *halt; /* the caller's own reason to stop (imcap_caption_many_halt) */
    imcap_status fatal_status;
    char fatal_msg[sizeof(((imcap_error *)0)->msg)];
} many;

/* Inside critical(imcap_many): marks image k finished, emits every image
 * that is now next in order. */
static void finish_locked(many *mn, size_t k) {
    mn->done[k % mn->window] = 1;
    while (mn->next < mn->n && mn->done[mn->next % mn->window]) {
        mn->done[mn->next % mn->window] = 0;
        if (mn->io->emit) mn->io->emit(mn->io->ctx, mn->next);
        mn->next++;
    }
}

static int stopped(const many *mn) {
    return mn->fatal || (mn->io->stop && *mn->io->stop) || (mn->halt && *mn->halt);
}

static void worker(many *mn, const imcap_model *m, const imcap_options *opt, int block) {
    const imcap_many_io *io = mn->io;
    imcap_batcher *bt = NULL;
    imcap_error err;
    if (imcap_batcher_new(m, opt, block, &bt, &err) != IMCAP_OK) {
#pragma omp critical(imcap_many)
        if (!mn->fatal) {
            mn->fatal = 1, mn->fatal_status = err.status;
            snprintf(mn->fatal_msg, sizeof mn->fatal_msg, "%s", err.msg);
        }
        return;
    }
    for (;;) {
        int window_full = 0;
        while (imcap_batcher_space(bt) > 0) {
            size_t k = SIZE_MAX;
#pragma omp critical(imcap_many)
            {
                window_full = mn->claim < mn->n && mn->claim >= mn->next + mn->window;
                if (mn->claim < mn->n && !window_full && !stopped(mn)) k = mn->claim++;
            }
            if (k == SIZE_MAX) break;
            imcap_image img = {0};
            /* a callback that fails without a message still gets one */
            imcap_fail(&err, IMCAP_E_IMAGE, "image %zu: it could not be loaded", k);
            imcap_status s = io->load(io->ctx, k, &img, &err);
            if (s == IMCAP_OK) s = imcap_batcher_push(bt, &img, (uint64_t)k, &err);
            if (io->release) io->release(io->ctx, k, &img);
            else imcap_image_free(&img);
            if (s != IMCAP_OK) {
                io->done(io->ctx, k, NULL, s, &err);
#pragma omp critical(imcap_many)
                finish_locked(mn, k);
            }
        }
        if (imcap_batcher_pending(bt) == 0) {
            int finished;
#pragma omp critical(imcap_many)
            finished = mn->claim >= mn->n || stopped(mn);
            if (finished) break;
            if (window_full) imcap_sleep(0.0002); /* other threads hold the window's first images */
            continue;
        }
        uint64_t tag;
        imcap_result *res = NULL;
        imcap_status s = imcap_batcher_next(bt, &tag, &res, &err);
        io->done(io->ctx, (size_t)tag, res, s, &err);
#pragma omp critical(imcap_many)
        finish_locked(mn, (size_t)tag);
    }
    imcap_batcher_free(bt);
}

imcap_status imcap_caption_many(const imcap_model *m, size_t n, const imcap_options *opt, int block, int threads,
                                const imcap_many_io *io, size_t *n_done, imcap_error *err) {
    return imcap_caption_many_halt(m, n, opt, block, threads, io, NULL, n_done, err);
}

imcap_status imcap_caption_many_halt(const imcap_model *m, size_t n, const imcap_options *opt, int block,
                                     int threads, const imcap_many_io *io, const volatile sig_atomic_t *halt,
                                     size_t *n_done, imcap_error *err) {
    if (n_done) *n_done = 0;
    if (!io || !io->load || !io->done) return imcap_fail(err, IMCAP_E_ARG, "imcap_caption_many: no callbacks");
    imcap_status s = imcap_check_options(m, opt, err);
    if (s) return s;
    if (block < 1 || block > 4096) return imcap_fail(err, IMCAP_E_ARG, "block of %d images outside [1, 4096]", block);
    if (threads < 0 || threads > 4096) return imcap_fail(err, IMCAP_E_ARG, "%d threads", threads);
    int T = threads > 0 ? threads : omp_get_max_threads();
    many mn = {.io = io, .n = n, .window = imcap_caption_many_window(T, block), .halt = halt};
    if (!(mn.done = calloc(mn.window, 1))) return imcap_fail(err, IMCAP_E_NOMEM, "out of memory");
    if (n > 0) {
#pragma omp parallel num_threads(T)
        worker(&mn, m, opt, block);
    }
    free(mn.done);
    if (n_done) *n_done = mn.next;
    if (mn.fatal) return imcap_fail(err, mn.fatal_status, "%s", mn.fatal_msg);
    return IMCAP_OK;
}
