/* block.c — torchvision's residual blocks at inference (format 2):
 *   BasicBlock:  y = relu(bn2(conv2(relu(bn1(conv1(x))))) + id)
 *   Bottleneck:  y = relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x)))))))) + id)
 * with id = bn(downsample conv(x)) when the block has a downsample, else x.
 * Every batch norm of a block uses eps 1e-5, as torchvision builds them. */
#include "kernels/kernels.h"
#include "block.h"

#define BLOCK_EPS 1e-5f

/* wt: the conv's weights in panels (imcap_encoder_pack), or NULL. The
 * transposed product needs a scratch as large as the output: a block
 * buffer no other conv of the block holds at the time. */
static void conv_bn(float *out, const float *in, const imcap_conv_shape *c, const float *w, const float *wt,
                    const imcap_bn_view *bn, int relu, float *col, float *scratch) {
    size_t P = (size_t)c->out_h * c->out_w;
    if (wt) {
        imcap_conv2d_forward_t(scratch, (size_t)c->out, in, wt, c->in_c, c->in_h, c->in_w, c->out, c->kernel,
                               c->stride, c->pad, col);
        imcap_batchnorm_infer_t(out, scratch, (size_t)c->out, c->out, P, bn->weight, bn->bias, bn->mean, bn->var,
                                BLOCK_EPS, relu);
        return;
    }
    imcap_conv2d_forward(out, in, w, NULL, c->in_c, c->in_h, c->in_w, c->out, c->kernel, c->stride, c->pad, col);
    imcap_batchnorm_infer(out, out, c->out, P, bn->weight, bn->bias, bn->mean, bn->var, BLOCK_EPS, relu);
}

void imcap_block_forward(const imcap_layer *l, const imcap_block_view *v, float *const wt[4], float *y,
                         const float *x, float *t[3], float *col) {
    const imcap_conv_shape *c = l->conv;
    int last = l->n_convs - 1;
    const float *in = x;
    /* t[k] holds conv k's output (k < last), t[2] the downsample's: t[2] is
     * free until the downsample, and t[0] is free by then */
    for (int k = 0; k < last; k++) {
        conv_bn(t[k], in, &c[k], v->conv[k], wt[k], &v->bn[k], 1, col, t[2]);
        in = t[k];
    }
    conv_bn(y, in, &c[last], v->conv[last], wt[last], &v->bn[last], 0, col, t[2]);
    const float *id = x;
    if (l->downsample) {
        const int d = IMCAP_BLOCK_DOWNSAMPLE;
        conv_bn(t[2], x, &c[d], v->conv[d], wt[d], &v->bn[d], 0, col, t[0]);
        id = t[2];
    }
    imcap_add_relu(y, y, id, (size_t)l->out_c * l->out_h * l->out_w);
}
