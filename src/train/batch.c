/* batch.c — one minibatch over shards, threads and processes (see
 * imcap_worker_pool in train.h). */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "train.h"

/* floats per piece of the gradient passed along the ranks (256 KB) */
enum { MAX_SHARDS = 1024, CHAIN_PIECE = 65536 };

void imcap_shard_range(int shards, int rank, int size, int *first, int *end) {
    *first = (int)((long)shards * rank / size);
    *end = (int)((long)shards * (rank + 1) / size);
}

/* examples [*lo, *hi) of shard s of a batch of n */
static void shard_examples(int n, int shards, int s, int *lo, int *hi) {
    *lo = (int)((long)n * s / shards);
    *hi = (int)((long)n * (s + 1) / shards);
}

/* the shards [*a, *b) of [0, count) that thread t of T computes */
static void thread_shards(int count, int t, int T, int *a, int *b) {
    *a = (int)((long)count * t / T);
    *b = (int)((long)count * (t + 1) / T);
}

imcap_status imcap_pool_init(imcap_worker_pool *p, const imcap_model *m, int threads, int shards, int batch,
                             int frozen, const imcap_train_comm *comm) {
    memset(p, 0, sizeof *p);
    if (threads < 1 || threads > 64 || batch < 1 || shards < 1 || shards > MAX_SHARDS) return IMCAP_E_ARG;
    int rank = comm ? comm->rank : 0, size = comm ? comm->size : 1;
    p->nthreads = threads, p->shards = shards, p->comm = comm;
    imcap_shard_range(shards, rank, size, &p->shard0, &p->shard1);
    p->n_grad = imcap_trained_floats(m, frozen);
    int local = p->shard1 - p->shard0;
    p->w = calloc((size_t)threads, sizeof *p->w);
    p->g = calloc((size_t)(local > 0 ? local : 1), sizeof *p->g);
    if (!p->w || !p->g) {
        imcap_pool_free(p);
        return IMCAP_E_NOMEM;
    }
    int per_shard = (batch + shards - 1) / shards;
    for (int t = 0; t < threads; t++)
        if (!(p->w[t] = imcap_worker_new(m, per_shard, frozen))) {
            imcap_pool_free(p);
            return IMCAP_E_NOMEM;
        }
    /* a thread's first shard sums into its worker's block; only a thread
     * with several shards needs more (S = T needs none) */
    for (int t = 0; t < threads; t++) {
        int a, b;
        thread_shards(local, t, threads, &a, &b);
        for (int i = a; i < b; i++) {
            p->g[i] = i == a ? imcap_worker_grads(p->w[t], NULL) : imcap_aligned_alloc(p->n_grad * sizeof(float));
            if (!p->g[i]) {
                imcap_pool_free(p);
                return IMCAP_E_NOMEM;
            }
        }
    }
    return IMCAP_OK;
}

void imcap_pool_free(imcap_worker_pool *p) {
    int local = p->shard1 - p->shard0;
    for (int t = 0; p->g && p->w && t < p->nthreads; t++) {
        int a, b;
        thread_shards(local, t, p->nthreads, &a, &b);
        for (int i = a + 1; i < b; i++) free(p->g[i]);
    }
    for (int t = 0; p->w && t < p->nthreads; t++) imcap_worker_free(p->w[t]);
    free(p->w), free(p->g);
    memset(p, 0, sizeof *p);
}

static void add_stats(imcap_loss_stats *to, const imcap_loss_stats *s) {
    to->ce_sum += s->ce_sum, to->reg_sum += s->reg_sum;
    to->n_tokens += s->n_tokens, to->n_examples += s->n_examples, to->correct += s->correct;
    to->sup_sum += s->sup_sum, to->n_sup += s->n_sup, to->ce_extra_sum += s->ce_extra_sum;
}

int imcap_pool_run(imcap_worker_pool *p, const imcap_model *m, const imcap_example *ex, int n,
                   const imcap_loss_options *lo, int no_grad, float *grad_out, imcap_loss_stats *stats) {
    double tokens = 0;
    for (int i = 0; i < n; i++) tokens += ex[i].length;
    /* validation computes every shard here; training this process's own */
    int first = no_grad ? 0 : p->shard0, count = no_grad ? p->shards : p->shard1 - p->shard0;
    imcap_loss_stats *part = calloc((size_t)(count > 0 ? count : 1), sizeof *part);
    if (!part) return -1;
    int T = p->nthreads;
    double t0 = imcap_now();
#pragma omp parallel num_threads(T)
    {
        int t = omp_get_thread_num(), a, b;
        thread_shards(count, t, T, &a, &b);
        for (int i = a; i < b; i++) {
            int lo_i, hi_i;
            shard_examples(n, p->shards, first + i, &lo_i, &hi_i);
            float *g = no_grad ? NULL : p->g[i];
            if (g) memset(g, 0, p->n_grad * sizeof(float));
            imcap_worker_target(p->w[t], m, g);
            if (hi_i > lo_i) imcap_worker_run(p->w[t], m, ex + lo_i, hi_i - lo_i, lo, tokens, n, no_grad, &part[i]);
        }
    }
    if (!no_grad) {
        int lo_i, hi_i, lo_e, hi_e;
        shard_examples(n, p->shards, p->shard0, &lo_i, &hi_i);
        shard_examples(n, p->shards, p->shard1 - 1, &lo_e, &hi_e);
        p->examples += count > 0 ? hi_e - lo_i : 0;
        p->seconds += imcap_now() - t0;
    }
    int rank = p->comm && !no_grad ? p->comm->rank : 0, size = p->comm && !no_grad ? p->comm->size : 1;
    const imcap_train_comm *c = p->comm;
    int bad = 0;
    /* the stats of the shards before this process's arrive from the
     * previous rank, then the gradient's running sum, a piece at a time:
     * each piece moves on as soon as this process has added its shards to
     * it, so the ranks work on different pieces at once (a pipeline: the
     * whole chain costs about one gradient's transfer, not one per rank) */
    if (rank > 0) bad = c->recv(c->ctx, rank - 1, stats, sizeof *stats);
    for (int i = 0; i < count; i++) add_stats(stats, &part[i]);
    free(part);
    if (!bad && rank < size - 1) bad = c->send(c->ctx, rank + 1, stats, sizeof *stats);
    if (!no_grad) {
        size_t total = p->n_grad;
        float *const *g = p->g;
        for (size_t k0 = 0; k0 < total && !bad; k0 += CHAIN_PIECE) {
            size_t k1 = k0 + CHAIN_PIECE < total ? k0 + CHAIN_PIECE : total;
            if (rank > 0) bad = c->recv(c->ctx, rank - 1, grad_out + k0, (k1 - k0) * sizeof(float));
            else memset(grad_out + k0, 0, (k1 - k0) * sizeof(float));
#pragma omp parallel for num_threads(T) schedule(static)
            for (size_t k = k0; k < k1; k++) {
                float s = grad_out[k];
                for (int i = 0; i < count; i++) s += g[i][k];
                grad_out[k] = s;
            }
            if (!bad && rank < size - 1) bad = c->send(c->ctx, rank + 1, grad_out + k0, (k1 - k0) * sizeof(float));
        }
    }
    if (size > 1 && !bad)
        bad = (!no_grad && c->bcast(c->ctx, size - 1, grad_out, p->n_grad * sizeof(float))) ||
              c->bcast(c->ctx, size - 1, stats, sizeof *stats);
    return bad;
}
