/* block.c — torchvision's residual blocks at inference (format 2):
 *   BasicBlock:  y = relu(bn2(conv2(relu(bn1(conv1(x))))) + id)
 *   Bottleneck:  y = relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x)))))))) + id)
 * with id = bn(downsample conv(x)) when the block has a downsample, else x.
 * Every batch norm of a block uses eps 1e-5, as torchvision builds them. */
#include "kernels/kernels.h"
#include "block.h"

#define BLOCK_EPS 1e-5f

/* conv, batch norm, then (res) the residual and (relu) the ReLU. wt: the
 * conv's weights in panels, wino: Winograd-transformed (imcap_encoder_pack),
 * or NULL. The transposed product needs a scratch as large as the output;
 * Winograd's fits in col (imcap_model_pack_alloc checks). */
static void conv_bn(float *out, const float *in, const imcap_conv_shape *c, const float *w, const float *wt,
                    const float *wino, const imcap_bn_view *bn, const float *res, int relu, float *col,
                    float *scratch) {
    size_t P = (size_t)c->out_h * c->out_w;
    imcap_bn_params b = {bn->weight, bn->bias, bn->mean, bn->var, BLOCK_EPS};
    if (wino) {
        imcap_conv_winograd(out, in, wino, NULL, c->in_c, c->in_h, c->in_w, c->out, col);
        imcap_batchnorm_infer_ex(out, out, P, 1, c->out, P, &b, res, relu);
        return;
    }
    if (wt) {
        imcap_conv2d_forward_t(scratch, (size_t)c->out, in, wt, c->in_c, c->in_h, c->in_w, c->out, c->kernel,
                               c->stride, c->pad, col);
        imcap_batchnorm_infer_ex(out, scratch, 1, (size_t)c->out, c->out, P, &b, res, relu);
        return;
    }
    imcap_conv2d_forward(out, in, w, NULL, c->in_c, c->in_h, c->in_w, c->out, c->kernel, c->stride, c->pad, col);
    imcap_batchnorm_infer_ex(out, out, P, 1, c->out, P, &b, res, relu);
}

/* t[k] holds conv k's output (k < last), t[2] the downsample's. Scratch
 * for a transposed conv: t[2] until the downsample is made; then, for the
 * downsample and the last conv, whichever of t[0], t[1] the last conv does
 * not read. */
void imcap_block_forward(const imcap_layer *l, const imcap_block_view *v, float *const wt[4], float *const wino[4],
                         float *y, const float *x, float *t[3], float *col) {
    const imcap_conv_shape *c = l->conv;
    int last = l->n_convs - 1;
    const float *in = x;
    for (int k = 0; k < last; k++) {
        conv_bn(t[k], in, &c[k], v->conv[k], wt[k], wino[k], &v->bn[k], NULL, 1, col, t[2]);
        in = t[k];
    }
    float *spare = t[last == 1 ? 1 : 0];
    const float *id = x;
    if (l->downsample) {
        const int d = IMCAP_BLOCK_DOWNSAMPLE;
        conv_bn(t[2], x, &c[d], v->conv[d], wt[d], wino[d], &v->bn[d], NULL, 0, col, spare);
        id = t[2];
    }
    conv_bn(y, in, &c[last], v->conv[last], wt[last], wino[last], &v->bn[last], id, 1, col, spare);
}
