/* kernels.h — the numerical layers, each x_forward next to x_backward with
 * the same arguments (llm.c style). Single-threaded: parallelism lives in the
 * callers' outer loops (images, examples); matrix products go to simd.h's
 * imcap_rows_affine / imcap_gemm (no packing; every output summed alone, so a
 * row or an image never changes bits with the company it is computed in).
 * Backward functions ACCUMULATE (+=) into every d-prefixed output, so callers
 * zero gradients once per step. Layouts are row-major. */
#ifndef IMCAP_KERNELS_H
#define IMCAP_KERNELS_H
#include <stddef.h>

/* ---- conv2d: in [C,H,W] -> out [O,Ho,Wo], weights [O,C,k,k], zero padding.
 * col is scratch of imcap_conv2d_col_size() floats (im2col matrix). */
size_t imcap_conv2d_col_size(int C, int k, int Ho, int Wo);
/* The scratch the _n functions below need for n images: they take the
 * images in groups whose im2col matrix stays near 1 MB. */
size_t imcap_conv2d_col_size_n(int n, int C, int k, int Ho, int Wo);
void imcap_conv2d_forward(float *out, const float *in, const float *w, const float *b, int C, int H, int W, int O,
                          int k, int stride, int pad, float *col);
/* din may be NULL (first layer: no input gradient needed); db is NULL for a
 * conv without bias. col is rebuilt
 * from in, so the caller need not keep it from the forward pass. */
void imcap_conv2d_backward(float *din, float *dw, float *db, const float *dout, const float *in, const float *w,
                           int C, int H, int W, int O, int k, int stride, int pad, float *col);
/* The same over n images as one product w[O,K] col[K, n*Ho*Wo]. Channel c of
 * image j is the H*W plane at in + j*in_img + c*in_ch: [n,C,H,W] has
 * in_img = C*H*W, in_ch = H*W; [C,n,H,W] has in_img = H*W, in_ch = n*H*W.
 * Output (and dout) rows are ld >= n*Ho*Wo apart: image j's output p of
 * channel o is out[o*ld + j*Ho*Wo + p], so one image's product can write into
 * a [O, N, Ho, Wo] batch (out + j*Ho*Wo, ld = N*Ho*Wo). din has the layout of
 * in. col: imcap_conv2d_col_size_n() floats. dw and db sum over the
 * images. Every image gets the bits of imcap_conv2d_forward alone, whatever
 * n and the strides (imcap_gemm sums each column alone). */
void imcap_conv2d_forward_n(float *out, size_t ld, const float *in, size_t in_img, size_t in_ch, const float *w,
                            const float *b, int n, int C, int H, int W, int O, int k, int stride, int pad,
                            float *col);
void imcap_conv2d_backward_n(float *din, float *dw, float *db, const float *dout, size_t ld, const float *in,
                             size_t in_img, size_t in_ch, const float *w, int n, int C, int H, int W, int O, int k,
                             int stride, int pad, float *col);

/* Inference, transposed: out_t[p*ldt + o] = out[o][p] of
 * imcap_conv2d_forward without bias, to the bit, from wp, the weights in
 * panels (imcap_panel_put(wp, C*k*k, 0, 0, w, O, C*k*k)). For outputs of too
 * few pixels to fill 16-lane vectors; imcap_conv_runs_transposed(O, P)
 * says when (O outputs, P = Ho*Wo pixels). */
void imcap_conv2d_forward_t(float *out_t, size_t ldt, const float *in, const float *wp, int C, int H, int W, int O,
                            int k, int stride, int pad, float *col);
int imcap_conv_runs_transposed(int O, int P);

/* ---- 3x3 stride-1 "same" convolution by Winograd's F(2x2, 3x3)
 * (winograd.c): 16 multiplications per 2x2 outputs instead of 36, not the
 * direct convolution's bits (it rounds differently; within a few units of
 * float's precision of the sum of |w x| over the window), so only for the
 * pretrained backbones, never for format 1's conv layers.
 * imcap_winograd_fits: k 3, stride 1, pad 1 (an odd map is computed to
 * the next even size, the extra outputs dropped). u:
 * imcap_winograd_weights_floats(O, C) floats made once from w [O,C,3,3];
 * scratch: imcap_winograd_scratch(C, O, H, W) floats. in [C,H,W] -> out
 * [O,H,W] (+ bias[o] if bias). */
int imcap_winograd_fits(int k, int stride, int pad, int Ho, int Wo);
size_t imcap_winograd_weights_floats(int O, int C);
void imcap_winograd_weights(float *u, const float *w, int O, int C);
size_t imcap_winograd_scratch(int C, int O, int Ho, int Wo);
void imcap_conv_winograd(float *out, const float *in, const float *u, const float *bias, int C, int H, int W, int O,
                         float *scratch);

/* ---- relu (out may be in) */
void imcap_relu_forward(float *out, const float *in, size_t n);
void imcap_relu_backward(float *din, const float *dout, const float *out, size_t n);

/* ---- maxpool (square, no padding, floor): argmax [C,Ho,Wo] saves the
 * winning input index; ties go to the first (row-major) element and a NaN
 * wins, as PyTorch. argmax may be NULL (then as imcap_maxpool_infer). */
void imcap_maxpool_forward(float *out, int *argmax, const float *in, int C, int H, int W, int k, int stride);
void imcap_maxpool_backward(float *din, const float *dout, const int *argmax, int C, int Ho, int Wo);
/* Inference only (no backward): the same maxima without recording winners,
 * 2x2 stride-2 windows vectorised. relu != 0 pools relu(in) instead, a ReLU
 * directly followed by the pool in one pass, with the bits of the two. */
void imcap_maxpool_infer(float *out, const float *in, int C, int H, int W, int k, int stride, int relu);

/* Format 2, inference only: padding as torch.nn.MaxPool2d (pad <= k/2;
 * padded cells never win). pad 0 is imcap_maxpool_infer without relu. */
void imcap_maxpool_pad_infer(float *out, const float *in, int C, int H, int W, int k, int stride, int pad);

/* ---- format 2's inference-only layers (imcap trains none of them).
 * Batch norm in eval mode over C planes of P values (out may be in);
 * relu != 0 applies a ReLU after it in the same pass. */
void imcap_batchnorm_infer(float *out, const float *in, int C, size_t P, const float *weight, const float *bias,
                           const float *mean, const float *var, float eps, int relu);
/* The same with the input's layout given (value p of channel c at
 * in[c*ch_stride + p*px_stride]: [C,P] is (P, 1), a transposed conv's
 * [P,C] output with rows ldt apart is (1, ldt)) into out [C,P], and a
 * residual [C,P] (or NULL) added before the ReLU: a residual block's end
 * in one pass, with the bits of the three passes. */
typedef struct {
    const float *weight, *bias, *mean, *var;
    float eps;
} imcap_bn_params;
void imcap_batchnorm_infer_ex(float *out, const float *in, size_t ch_stride, size_t px_stride, int C, size_t P,
                              const imcap_bn_params *bn, const float *residual, int relu);
/* out = relu(a + b): a residual block's end (out may be a or b) */
void imcap_add_relu(float *out, const float *a, const float *b, size_t n);
/* [C,H,W] -> [C,Ho,Wo], torch's adaptive_avg_pool2d */
void imcap_adaptive_avgpool_forward(float *out, const float *in, int C, int H, int W, int Ho, int Wo);

/* ---- coords: [C,H,W] -> [C+2,H,W], channel C = x, C+1 = y in (-1, 1);
 * out may be in (with room for the two channels) */
void imcap_coords_forward(float *out, const float *in, int C, int H, int W);
void imcap_coords_backward(float *din, const float *dout, int C, int H, int W);
/* The same over n images laid out [C,n,H,W] -> [C+2,n,H,W]. */
void imcap_coords_forward_n(float *out, const float *in, int n, int C, int H, int W);
void imcap_coords_backward_n(float *din, const float *dout, int n, int C, int H, int W);

/* ---- affine: y[N,out] = x[N,in] w[out,in]^T + b[out] (b may be NULL) */
void imcap_affine_forward(float *y, const float *x, const float *w, const float *b, int N, int in, int out);
/* dx, dw, db may each be NULL when not wanted. */
void imcap_affine_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int N,
                           int in, int out);

/* ---- LSTM cell (PyTorch gate order i, f, g, o):
 * gates = x w_ih^T + b_ih + h_prev w_hh^T + b_hh; saves activated gates [N,4H],
 * c, tanh(c); h = o * tanh(c). */
void imcap_lstm_forward(float *h, float *c, float *tanh_c, float *gates, const float *x, const float *h_prev,
                        const float *c_prev, const float *w_ih, const float *b_ih, const float *w_hh,
                        const float *b_hh, int N, int In, int H);
/* dh, dc: gradients arriving at h and c (dc may be NULL). scratch: [N,4H]. */
void imcap_lstm_backward(float *dx, float *dh_prev, float *dc_prev, float *dw_ih, float *db_ih, float *dw_hh,
                         float *db_hh, const float *dh, const float *dc, const float *x, const float *h_prev,
                         const float *c_prev, const float *gates, const float *tanh_c, const float *w_ih,
                         const float *w_hh, int N, int In, int H, float *scratch);

/* ---- soft attention for one query (Xu et al. 2015, Bahdanau scoring):
 * e_i = w . tanh(p_i + q) + b, alpha = softmax_i(e), ctx = sum_i alpha_i a_i.
 * a [L,D] annotations, p [L,A] = encoder_att(a), q [A] = decoder_att(h).
 * Saves tanh_pq [L,A] and alpha [L]. */
void imcap_attention_forward(float *ctx, float *alpha, float *tanh_pq, const float *a, const float *p, const float *q,
                             const float *w, float b, int L, int A, int D);
/* dalpha_extra [L] (may be NULL) is a gradient arriving directly at alpha
 * (the attention regulariser). da, dp may be NULL. scratch: [L]. */
void imcap_attention_backward(float *da, float *dp, float *dq, float *dw, float *db, const float *dctx,
                              const float *dalpha_extra, const float *a, const float *alpha, const float *tanh_pq,
                              const float *w, int L, int A, int D, float *scratch);

/* ---- softmax / log-softmax over n values (max-subtracted, float) */
void imcap_softmax_forward(float *out, const float *in, int n);
void imcap_softmax_backward(float *din, const float *dout, const float *out, int n);
void imcap_log_softmax_forward(float *out, const float *in, int n);
void imcap_log_softmax_backward(float *din, const float *dout, const float *out, int n);

/* ---- small elementwise helpers shared by the decoder */
void imcap_sigmoid_forward(float *out, const float *in, size_t n);
void imcap_sigmoid_backward(float *din, const float *dout, const float *out, size_t n);
#endif
