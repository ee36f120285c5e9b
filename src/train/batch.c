/* batch.c — one minibatch over the threads (see imcap_worker_pool). */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "train.h"

imcap_status imcap_pool_init(imcap_worker_pool *p, const imcap_model *m, int threads, int batch, int frozen) {
    memset(p, 0, sizeof *p);
    if (threads < 1 || threads > 64 || batch < 1) return IMCAP_E_ARG;
    p->w = calloc((size_t)threads, sizeof *p->w);
    if (!p->w) return IMCAP_E_NOMEM;
    p->nthreads = threads;
    p->n_grad = imcap_trained_floats(m, frozen);
    int per_thread = (batch + threads - 1) / threads;
    for (int t = 0; t < threads; t++)
        if (!(p->w[t] = imcap_worker_new(m, per_thread, frozen))) {
            imcap_pool_free(p);
            return IMCAP_E_NOMEM;
        }
    return IMCAP_OK;
}

void imcap_pool_free(imcap_worker_pool *p) {
    for (int t = 0; p->w && t < p->nthreads; t++) imcap_worker_free(p->w[t]);
    free(p->w);
    memset(p, 0, sizeof *p);
}

void imcap_pool_run(imcap_worker_pool *p, const imcap_model *m, const imcap_example *ex, int n,
                    const imcap_loss_options *lo, int no_grad, float *grad_out, imcap_loss_stats *stats) {
    double tokens = 0;
    for (int i = 0; i < n; i++) tokens += ex[i].length;
    imcap_loss_stats part[64];
    memset(part, 0, sizeof part);
    int T = p->nthreads;
#pragma omp parallel num_threads(T)
    {
        int t = omp_get_thread_num();
        int lo_i = (int)((long)n * t / T), hi_i = (int)((long)n * (t + 1) / T);
        float *g = imcap_worker_grads(p->w[t], NULL);
        if (!no_grad) memset(g, 0, p->n_grad * sizeof(float));
        if (hi_i > lo_i) imcap_worker_run(p->w[t], m, ex + lo_i, hi_i - lo_i, lo, tokens, n, no_grad, &part[t]);
    }
    for (int t = 0; t < T; t++) {
        stats->ce_sum += part[t].ce_sum, stats->reg_sum += part[t].reg_sum;
        stats->n_tokens += part[t].n_tokens, stats->n_examples += part[t].n_examples, stats->correct += part[t].correct;
    }
    if (no_grad) return;
    size_t total = p->n_grad;
#pragma omp parallel for num_threads(T) schedule(static)
    for (size_t k = 0; k < total; k++) {
        float s = 0;
        for (int t = 0; t < T; t++) s += imcap_worker_grads(p->w[t], NULL)[k];
        grad_out[k] = s;
    }
}
