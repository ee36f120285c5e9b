/* encoder.c — the convolutional encoder: a torch.nn.Sequential of conv,
 * relu, maxpool and coords layers over n images (see encoder.h for the
 * layouts and why the forward's products are per image). */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "block.h"
#include "encoder.h"

static size_t in_size(const imcap_layer *l) { return (size_t)l->in_c * l->in_h * l->in_w; }
static size_t out_size(const imcap_layer *l) { return (size_t)l->out_c * l->out_h * l->out_w; }

static float *own(imcap_encoder_acts *e, size_t floats) {
    float *b = imcap_aligned_alloc(floats * sizeof(float));
    if (b) e->owned[e->n_owned++] = b;
    return b;
}

/* [a, b, P] -> [b, a, P] */
static void swap_outer(float *dst, const float *src, int a, int b, size_t P) {
    for (int i = 0; i < a; i++)
        for (int j = 0; j < b; j++)
            memcpy(dst + ((size_t)j * a + i) * P, src + ((size_t)i * b + j) * P, P * sizeof *dst);
}

/* Training: what layer i reads and writes. The first layer reads the
 * images as [n,3,S,S] when it is a conv (its im2col takes any layout),
 * otherwise the copy in x0 laid out [3,n,S,S] like everything after it. */
static float *output_of(const imcap_config *cfg, const imcap_encoder_acts *e, int i) {
    return i == cfg->n_layers - 1 ? e->last : e->act[i + 1];
}
static const float *input_of(const imcap_config *cfg, const imcap_encoder_acts *e, int i) {
    if (i > 0) return output_of(cfg, e, i - 1);
    return e->x0 ? e->x0 : e->act[0];
}

/* At inference a relu directly followed by a maxpool is done by the pool. */
static int folded_relu(const imcap_config *cfg, int i) {
    /* the in-domain descriptor reads the layer's own output */
    return cfg->layers[i].type == IMCAP_LAYER_RELU && i + 1 < cfg->n_layers && !(cfg->has_domain && cfg->domain_layer == i) &&
           cfg->layers[i + 1].type == IMCAP_LAYER_MAXPOOL && cfg->layers[i + 1].pad == 0;
}

/* At inference a relu directly after a batch norm (VGG-bn, the ResNet stem)
 * is done in the batch norm's pass, with the same bits; not when either
 * output is the in-domain descriptor's, nor for the last layer (it writes
 * the output block). */
static int relu_in_batchnorm(const imcap_config *cfg, int i) {
    return cfg->layers[i].type == IMCAP_LAYER_RELU && i > 0 && i + 1 < cfg->n_layers &&
           cfg->layers[i - 1].type == IMCAP_LAYER_BATCHNORM && !folded_relu(cfg, i) &&
           !(cfg->has_domain && (cfg->domain_layer == i || cfg->domain_layer == i - 1));
}

imcap_status imcap_encoder_acts_init(imcap_encoder_acts *e, const imcap_config *cfg, int max_images,
                                     int with_backward) {
    memset(e, 0, sizeof *e);
    if (max_images < 1) return IMCAP_E_ARG;
    e->max_images = max_images, e->with_backward = with_backward;
    int nl = cfg->n_layers;
    if (with_backward && imcap_config_untrainable_layer(cfg) >= 0) return IMCAP_E_ARG;
    size_t S = (size_t)cfg->image_size, I = 3 * S * S, M = I, K = 1;
    /* training keeps every image: n of everything; inference runs the images
     * one after the other through one image's buffers */
    size_t n = (size_t)max_images, nb = with_backward ? n : 1;
    int blocks = 0;
    for (int i = 0; i < nl; i++) {
        const imcap_layer *l = &cfg->layers[i];
        if (out_size(l) > M) M = out_size(l);
        if (l->type == IMCAP_LAYER_CONV) {
            size_t c = imcap_conv2d_col_size_n((int)nb, l->in_c, l->kernel, l->out_h, l->out_w);
            if (c > K) K = c;
        }
        if (l->type == IMCAP_LAYER_BASIC || l->type == IMCAP_LAYER_BOTTLENECK) {
            blocks = 1;
            for (int k = 0; k < 4; k++) {
                const imcap_conv_shape *c = &l->conv[k];
                if (c->out == 0) continue; /* no such conv in this block */
                size_t o = (size_t)c->out * c->out_h * c->out_w, cs = imcap_conv2d_col_size(c->in_c, c->kernel, c->out_h, c->out_w);
                if (imcap_winograd_fits(c->kernel, c->stride, c->pad, c->out_h, c->out_w)) {
                    size_t ws = imcap_winograd_scratch(c->in_c, c->out, c->out_h, c->out_w);
                    if (ws > cs) cs = ws; /* the pack runs it by Winograd (imcap_model_pack_alloc) */
                }
                if (o > M) M = o;
                if (cs > K) K = cs;
            }
        }
    }
    e->max_act = M;
    /* maxpool winners are int indices into n images' activations */
    if (nb * M > INT_MAX) return IMCAP_E_ARG;
    if (!(e->act[0] = own(e, n * I))) goto nomem;
    if (nl == 0) return IMCAP_OK; /* act[0] is the output */
    const imcap_layer *last = &cfg->layers[nl - 1];
    if (!(e->col = own(e, K)) || !(e->act[nl] = own(e, n * out_size(last)))) goto nomem;
    if (with_backward && cfg->layers[0].type != IMCAP_LAYER_CONV && !(e->x0 = own(e, n * I))) goto nomem;
    float *pp[2] = {NULL, NULL};
    for (int k = 0; k < 2; k++) {
        float *buf = own(e, nb * M);
        if (!buf) goto nomem;
        if (with_backward) e->dbuf[k] = buf;
        else pp[k] = buf;
    }
    if (cfg->has_domain && !with_backward) { /* training never reads them */
        /* the scratch serves the descriptor of one image, then the scores of n */
        const imcap_layer *dl = &cfg->layers[cfg->domain_layer];
        size_t sd = imcap_domain_scratch_size(dl->out_c, dl->out_h * dl->out_w), ss = imcap_domain_raw_scratch_size((int)n, cfg->domain_F);
        if (!(e->domain_x = own(e, n * (size_t)cfg->domain_F)) || !(e->domain_scratch = own(e, sd > ss ? sd : ss)) ||
            !(e->domain_score = (double *)own(e, 2 * n)))
            goto nomem;
    }
    if (blocks)
        for (int k = 0; k < 3; k++)
            if (!(e->blk[k] = own(e, M))) goto nomem;
    if (!with_backward) {
        /* which of the two buffers each layer but the last writes (the last
         * writes the output); imcap_encoder_forward_n follows the same rules */
        float *cur = NULL; /* the image */
        for (int i = 0; i < nl - 1; i++) {
            const imcap_layer *l = &cfg->layers[i];
            float *y;
            if (folded_relu(cfg, i)) y = cur;
            else if (cur && (l->type == IMCAP_LAYER_RELU || l->type == IMCAP_LAYER_COORDS ||
                             l->type == IMCAP_LAYER_BATCHNORM))
                y = cur;
            else y = cur == pp[0] ? pp[1] : pp[0];
            e->act[i + 1] = y ? y : e->act[0];
            cur = y;
        }
        return IMCAP_OK;
    }
    float *input = e->x0 ? e->x0 : e->act[0], *cur = input;
    for (int i = 0; i < nl; i++) {
        const imcap_layer *l = &cfg->layers[i];
        /* a relu works in place, but never over the image */
        float *y = cur != input && l->type == IMCAP_LAYER_RELU ? cur : own(e, n * out_size(l));
        if (!y) goto nomem;
        if (l->type == IMCAP_LAYER_MAXPOOL && !(e->argmax[i] = calloc(n * out_size(l), sizeof(int)))) goto nomem;
        if (i < nl - 1) e->act[i + 1] = y;
        else e->last = y;
        cur = y;
    }
    return IMCAP_OK;
nomem:
    imcap_encoder_acts_free(e);
    return IMCAP_E_NOMEM;
}

void imcap_encoder_acts_free(imcap_encoder_acts *e) {
    for (int i = 0; i < e->n_owned; i++) free(e->owned[i]);
    for (int i = 0; i < IMCAP_MAX_LAYERS; i++) free(e->argmax[i]);
    memset(e, 0, sizeof *e);
}

/* Inference: image j alone through every layer, in one image's buffers
 * (they stay in cache), its features into block j of the output. */
static void forward_image(const imcap_config *cfg, const imcap_params *p, const imcap_encoder_pack *pk,
                          imcap_encoder_acts *e, int j) {
    static float *const none[4];
    int nl = cfg->n_layers, S = cfg->image_size;
    const float *x = e->act[0] + (size_t)j * 3 * S * S;
    for (int i = 0; i < nl; i++) {
        const imcap_layer *l = &cfg->layers[i];
        float *y = i == nl - 1 ? e->act[nl] + (size_t)j * out_size(l) : e->act[i + 1];
        switch (l->type) {
        case IMCAP_LAYER_CONV:
            imcap_conv2d_forward(y, x, p->enc_w[i], p->enc_b[i], l->in_c, l->in_h, l->in_w, l->out, l->kernel,
                                 l->stride, l->pad, e->col);
            break;
        case IMCAP_LAYER_RELU:
            if (folded_relu(cfg, i) || relu_in_batchnorm(cfg, i)) continue; /* the pool / batch norm applied it */
            imcap_relu_forward(y, x, in_size(l));
            break;
        case IMCAP_LAYER_MAXPOOL:
            if (l->pad) imcap_maxpool_pad_infer(y, x, l->in_c, l->in_h, l->in_w, l->kernel, l->stride, l->pad);
            else imcap_maxpool_infer(y, x, l->in_c, l->in_h, l->in_w, l->kernel, l->stride, i > 0 && folded_relu(cfg, i - 1));
            break;
        case IMCAP_LAYER_COORDS: imcap_coords_forward(y, x, l->in_c, l->in_h, l->in_w); break;
        case IMCAP_LAYER_BATCHNORM:
            imcap_batchnorm_infer(y, x, l->in_c, (size_t)l->in_h * l->in_w, p->enc_w[i], p->enc_b[i], p->enc_mean[i],
                                  p->enc_var[i], l->eps, i + 1 < nl && relu_in_batchnorm(cfg, i + 1));
            break;
        case IMCAP_LAYER_BASIC:
        case IMCAP_LAYER_BOTTLENECK: imcap_block_forward(l, &p->enc_block[i], pk ? pk->wt[i] : none, pk ? pk->wino[i] : none, y, x, e->blk,
                                                         e->col);
            break;
        case IMCAP_LAYER_AVGPOOL: imcap_adaptive_avgpool_forward(y, x, l->in_c, l->in_h, l->in_w, l->out, l->out); break;
        }
        if (cfg->has_domain && cfg->domain_layer == i)
            imcap_domain_descriptor(y, (size_t)l->out_h * l->out_w, l->out_c, l->out_h * l->out_w,
                                    e->domain_x + (size_t)j * cfg->domain_F, e->domain_scratch);
        x = y;
    }
}

/* Training: layer by layer over the n images laid out [C,n,H,W], keeping
 * every output for the backward; each conv is one product over the n images
 * (imcap_gemm sums every column alone, so each image keeps its bits). */
static void forward_batch(const imcap_config *cfg, const imcap_params *p, imcap_encoder_acts *e, int n) {
    int nl = cfg->n_layers, S = cfg->image_size;
    if (e->x0) swap_outer(e->x0, e->act[0], n, 3, (size_t)S * S);
    for (int i = 0; i < nl; i++) {
        const imcap_layer *l = &cfg->layers[i];
        const float *in = input_of(cfg, e, i);
        float *out = output_of(cfg, e, i);
        size_t plane = (size_t)l->in_h * l->in_w, P = (size_t)l->out_h * l->out_w;
        switch (l->type) {
        case IMCAP_LAYER_CONV: {
            int nchw = in == e->act[0]; /* channel c of image j: in + j*in_img + c*in_ch */
            size_t in_img = nchw ? (size_t)l->in_c * plane : plane, in_ch = nchw ? plane : (size_t)n * plane;
            imcap_conv2d_forward_n(out, (size_t)n * P, in, in_img, in_ch, p->enc_w[i], p->enc_b[i], n, l->in_c,
                                   l->in_h, l->in_w, l->out, l->kernel, l->stride, l->pad, e->col);
            break;
        }
        case IMCAP_LAYER_RELU: imcap_relu_forward(out, in, (size_t)n * in_size(l)); break;
        case IMCAP_LAYER_MAXPOOL:
            imcap_maxpool_forward(out, e->argmax[i], in, l->in_c * n, l->in_h, l->in_w, l->kernel, l->stride);
            break;
        case IMCAP_LAYER_COORDS: imcap_coords_forward_n(out, in, n, l->in_c, l->in_h, l->in_w); break;
        default: break; /* untrainable layers: refused by imcap_encoder_acts_init */
        }
    }
    const imcap_layer *last = &cfg->layers[nl - 1];
    swap_outer(e->act[nl], e->last, last->out_c, n, (size_t)last->out_h * last->out_w);
}

void imcap_encoder_forward_n(const imcap_config *cfg, const imcap_params *p, const imcap_encoder_pack *pk,
                             imcap_encoder_acts *e, int n) {
    if (cfg->n_layers == 0 || n < 1 || n > e->max_images) return;
    if (e->with_backward) {
        forward_batch(cfg, p, e, n);
        return;
    }
    for (int j = 0; j < n; j++) forward_image(cfg, p, pk, e, j);
    /* the images' domain scores in one product (the statistics read once);
     * a threshold of 0 means the statistics are still being made */
    if (cfg->has_domain && cfg->domain_threshold > 0) {
        imcap_domain_raw_n(e->domain_x, n, p->domain_mean, p->domain_precision, cfg->domain_F, e->domain_scratch,
                           e->domain_score);
        for (int j = 0; j < n; j++) e->domain_score[j] /= cfg->domain_threshold;
    }
}

void imcap_encoder_forward(const imcap_config *cfg, const imcap_params *p, const imcap_encoder_pack *pk,
                           imcap_encoder_acts *e) {
    imcap_encoder_forward_n(cfg, p, pk, e, 1);
}

void imcap_encoder_backward_n(const imcap_config *cfg, const imcap_params *p, const imcap_params *g,
                              imcap_encoder_acts *e, const float *dfeat, int n) {
    int nl = cfg->n_layers;
    if (nl == 0 || n < 1 || n > e->max_images || !e->with_backward) return;
    /* the image itself needs no gradient: stop after the first conv's weights */
    int first_conv = nl;
    for (int i = nl - 1; i >= 0; i--)
        if (cfg->layers[i].type == IMCAP_LAYER_CONV) first_conv = i;
    const imcap_layer *last = &cfg->layers[nl - 1];
    float *dout = e->dbuf[0];
    swap_outer(dout, dfeat, n, last->out_c, (size_t)last->out_h * last->out_w);
    for (int i = nl - 1; i >= 0; i--) {
        const imcap_layer *l = &cfg->layers[i];
        size_t nin = (size_t)n * in_size(l), plane = (size_t)l->in_h * l->in_w;
        int need_din = i > first_conv;
        float *din = dout == e->dbuf[0] ? e->dbuf[1] : e->dbuf[0];
        if (need_din) memset(din, 0, nin * sizeof(float));
        switch (l->type) {
        case IMCAP_LAYER_CONV: {
            const float *in = input_of(cfg, e, i);
            int nchw = in == e->act[0];
            size_t in_img = nchw ? (size_t)l->in_c * plane : plane, in_ch = nchw ? plane : (size_t)n * plane;
            imcap_conv2d_backward_n(need_din ? din : NULL, g->enc_w[i], g->enc_b[i], dout,
                                    (size_t)n * l->out_h * l->out_w, in, in_img, in_ch, p->enc_w[i], n, l->in_c,
                                    l->in_h, l->in_w, l->out, l->kernel, l->stride, l->pad, e->col);
            break;
        }
        case IMCAP_LAYER_RELU:
            if (need_din) imcap_relu_backward(din, dout, output_of(cfg, e, i), nin);
            break;
        case IMCAP_LAYER_MAXPOOL:
            if (need_din) imcap_maxpool_backward(din, dout, e->argmax[i], l->out_c * n, l->out_h, l->out_w);
            break;
        case IMCAP_LAYER_COORDS:
            if (need_din) imcap_coords_backward_n(din, dout, n, l->in_c, l->in_h, l->in_w);
            break;
        default: break; /* untrainable layers: refused by imcap_encoder_acts_init */
        }
        if (!need_din) return;
        dout = din;
    }
}

void imcap_encoder_backward(const imcap_config *cfg, const imcap_params *p, const imcap_params *g,
                            imcap_encoder_acts *e, const float *dfeat) {
    imcap_encoder_backward_n(cfg, p, g, e, dfeat, 1);
}
