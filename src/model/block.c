/* block.c — torchvision's residual blocks at inference (format 2):
 *   BasicBlock:  y = relu(bn2(conv2(relu(bn1(conv1(x))))) + id)
 *   Bottleneck:  y = relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x)))))))) + id)
 * with id = bn(downsample conv(x)) when the block has a downsample, else x.
 * Every batch norm of a block uses eps 1e-5, as torchvision builds them. */
#include "kernels/kernels.h"
#include "block.h"

#define BLOCK_EPS 1e-5f

static void conv_bn(float *out, const float *in, const imcap_conv_shape *c, const float *w, const imcap_bn_view *bn,
                    int relu, float *col) {
    imcap_conv2d_forward(out, in, w, NULL, c->in_c, c->in_h, c->in_w, c->out, c->kernel, c->stride, c->pad, col);
    imcap_batchnorm_infer(out, out, c->out, (size_t)c->out_h * c->out_w, bn->weight, bn->bias, bn->mean, bn->var,
                          BLOCK_EPS, relu);
}

void imcap_block_forward(const imcap_layer *l, const imcap_block_view *v, float *y, const float *x, float *t[3],
                         float *col) {
    const imcap_conv_shape *c = l->conv;
    int last = l->n_convs - 1;
    const float *in = x;
    for (int k = 0; k < last; k++) {
        conv_bn(t[k], in, &c[k], v->conv[k], &v->bn[k], 1, col);
        in = t[k];
    }
    conv_bn(y, in, &c[last], v->conv[last], &v->bn[last], 0, col);
    const float *id = x;
    if (l->downsample) {
        const int d = IMCAP_BLOCK_DOWNSAMPLE;
        conv_bn(t[2], x, &c[d], v->conv[d], &v->bn[d], 0, col);
        id = t[2];
    }
    imcap_add_relu(y, y, id, (size_t)l->out_c * l->out_h * l->out_w);
}
