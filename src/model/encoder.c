/* encoder.c — the convolutional encoder: a torch.nn.Sequential of conv,
 * relu, maxpool and coords layers over one image. */
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "encoder.h"

imcap_status imcap_encoder_acts_init(imcap_encoder_acts *e, const imcap_config *cfg, int with_backward) {
    memset(e, 0, sizeof *e);
    size_t max_col = 1;
    e->max_act = (size_t)3 * cfg->image_size * cfg->image_size;
    e->act[0] = imcap_aligned_alloc(e->max_act * sizeof(float));
    if (!e->act[0]) return IMCAP_E_NOMEM;
    for (int i = 0; i < cfg->n_layers; i++) {
        const imcap_layer *l = &cfg->layers[i];
        size_t n = (size_t)l->out_c * l->out_h * l->out_w;
        if (n > e->max_act) e->max_act = n;
        e->act[i + 1] = imcap_aligned_alloc(n * sizeof(float));
        if (!e->act[i + 1]) return IMCAP_E_NOMEM;
        if (l->type == IMCAP_LAYER_MAXPOOL) {
            e->argmax[i] = calloc(n, sizeof(int));
            if (!e->argmax[i]) return IMCAP_E_NOMEM;
        }
        if (l->type == IMCAP_LAYER_CONV) {
            size_t c = imcap_conv2d_col_size(l->in_c, l->kernel, l->out_h, l->out_w);
            if (c > max_col) max_col = c;
        }
    }
    e->col = imcap_aligned_alloc(max_col * sizeof(float));
    if (!e->col) return IMCAP_E_NOMEM;
    if (with_backward)
        for (int k = 0; k < 2; k++)
            if (!(e->dbuf[k] = imcap_aligned_alloc(e->max_act * sizeof(float)))) return IMCAP_E_NOMEM;
    return IMCAP_OK;
}

void imcap_encoder_acts_free(imcap_encoder_acts *e) {
    for (int i = 0; i <= IMCAP_MAX_LAYERS; i++) free(e->act[i]);
    for (int i = 0; i < IMCAP_MAX_LAYERS; i++) free(e->argmax[i]);
    free(e->col);
    free(e->dbuf[0]);
    free(e->dbuf[1]);
    memset(e, 0, sizeof *e);
}

void imcap_encoder_forward(const imcap_config *cfg, const imcap_params *p, imcap_encoder_acts *e) {
    for (int i = 0; i < cfg->n_layers; i++) {
        const imcap_layer *l = &cfg->layers[i];
        const float *in = e->act[i];
        float *out = e->act[i + 1];
        switch (l->type) {
        case IMCAP_LAYER_CONV:
            imcap_conv2d_forward(out, in, p->enc_w[i], p->enc_b[i], l->in_c, l->in_h, l->in_w, l->out, l->kernel,
                                 l->stride, l->pad, e->col);
            break;
        case IMCAP_LAYER_RELU: imcap_relu_forward(out, in, (size_t)l->in_c * l->in_h * l->in_w); break;
        case IMCAP_LAYER_MAXPOOL:
            imcap_maxpool_forward(out, e->argmax[i], in, l->in_c, l->in_h, l->in_w, l->kernel, l->stride);
            break;
        case IMCAP_LAYER_COORDS: imcap_coords_forward(out, in, l->in_c, l->in_h, l->in_w); break;
        }
    }
}

void imcap_encoder_backward(const imcap_config *cfg, const imcap_params *p, const imcap_params *g,
                            imcap_encoder_acts *e, const float *dfeat) {
    int n = cfg->n_layers;
    if (n == 0) return;
    const imcap_layer *last = &cfg->layers[n - 1];
    float *dout = e->dbuf[0];
    memcpy(dout, dfeat, (size_t)last->out_c * last->out_h * last->out_w * sizeof(float));
    for (int i = n - 1; i >= 0; i--) {
        const imcap_layer *l = &cfg->layers[i];
        size_t nin = (size_t)l->in_c * l->in_h * l->in_w;
        /* the image itself needs no gradient: stop after the first conv's weights */
        int need_din = 0;
        for (int j = 0; j < i; j++) need_din |= cfg->layers[j].type == IMCAP_LAYER_CONV;
        float *din = dout == e->dbuf[0] ? e->dbuf[1] : e->dbuf[0];
        if (need_din) memset(din, 0, nin * sizeof(float));
        switch (l->type) {
        case IMCAP_LAYER_CONV:
            imcap_conv2d_backward(need_din ? din : NULL, g->enc_w[i], g->enc_b[i], dout, e->act[i], p->enc_w[i],
                                  l->in_c, l->in_h, l->in_w, l->out, l->kernel, l->stride, l->pad, e->col);
            break;
        case IMCAP_LAYER_RELU:
            if (need_din) imcap_relu_backward(din, dout, e->act[i + 1], nin);
            break;
        case IMCAP_LAYER_MAXPOOL:
            if (need_din) imcap_maxpool_backward(din, dout, e->argmax[i], l->out_c, l->out_h, l->out_w);
            break;
        case IMCAP_LAYER_COORDS:
            if (need_din) imcap_coords_backward(din, dout, l->in_c, l->in_h, l->in_w);
            break;
        }
        if (!need_din) return;
        dout = din;
    }
}
