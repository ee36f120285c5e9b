/* workspace.c — activations reused across images by one thread. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"

imcap_workspace *imcap_workspace_new(const imcap_model *m) {
    if (!m) return NULL;
    imcap_workspace *ws = calloc(1, sizeof *ws);
    if (!ws) return NULL;
    ws->model = m;
    if (imcap_encoder_acts_init(&ws->enc, &m->cfg, 1, 0) != IMCAP_OK || imcap_decoder_init_alloc(&ws->init, &m->cfg) != IMCAP_OK ||
        imcap_workspace_reserve(ws, 3) != IMCAP_OK) {
        imcap_workspace_free(ws);
        return NULL;
    }
    return ws;
}

void imcap_workspace_free(imcap_workspace *ws) {
    if (!ws) return;
    imcap_encoder_acts_free(&ws->enc);
    imcap_decoder_init_free(&ws->init);
    imcap_step_cache_free(&ws->step);
    free(ws->h), free(ws->c), free(ws->logp), free(ws->tokens);
    free(ws);
}

imcap_status imcap_workspace_reserve(imcap_workspace *ws, int k) {
    if (k <= ws->cap) return IMCAP_OK;
    const imcap_model *m = ws->model;
    int Hd = m->cfg.hidden_dim, V = m->vocab.n;
    imcap_step_cache_free(&ws->step);
    free(ws->h), free(ws->c), free(ws->logp), free(ws->tokens);
    ws->tokens = malloc((size_t)k * sizeof(int));
    ws->h = imcap_aligned_alloc((size_t)k * Hd * sizeof(float));
    ws->c = imcap_aligned_alloc((size_t)k * Hd * sizeof(float));
    ws->logp = imcap_aligned_alloc((size_t)k * V * sizeof(float));
    ws->cap = 0;
    if (!ws->tokens || !ws->h || !ws->c || !ws->logp || imcap_step_cache_alloc_infer(&ws->step, &m->cfg, V, k) != IMCAP_OK)
        return IMCAP_E_NOMEM;
    ws->cap = k;
    return IMCAP_OK;
}

void imcap_workspace_encode(imcap_workspace *ws) {
    const imcap_model *m = ws->model;
    imcap_encoder_forward(&m->cfg, &m->p, &m->epack, &ws->enc);
    const float *feat = imcap_encoder_output(&m->cfg, &ws->enc);
    imcap_decoder_prepare_forward(&m->cfg, &m->p, &m->pack, feat, &ws->init);
    ws->domain_score = ws->enc.domain_score ? ws->enc.domain_score[0] : NAN;
}

void imcap_result_set_domain(imcap_result *res, double score) {
    res->domain_score = score;
    res->in_domain = score != score ? -1 : score <= 1.0;
}
