/* kernels.h — the numerical layers, each x_forward next to x_backward with
 * the same arguments (llm.c style). Single-threaded: parallelism lives in the
 * callers' outer loops (images, examples); matrix products go to OpenBLAS.
 * Backward functions ACCUMULATE (+=) into every d-prefixed output, so callers
 * zero gradients once per step. Layouts are row-major. */
#ifndef IMCAP_KERNELS_H
#define IMCAP_KERNELS_H
#include <stddef.h>

/* ---- conv2d: in [C,H,W] -> out [O,Ho,Wo], weights [O,C,k,k], zero padding.
 * col is scratch of imcap_conv2d_col_size() floats (im2col matrix). */
size_t imcap_conv2d_col_size(int C, int k, int Ho, int Wo);
void imcap_conv2d_forward(float *out, const float *in, const float *w, const float *b, int C, int H, int W, int O,
                          int k, int stride, int pad, float *col);
/* din may be NULL (first layer: no input gradient needed). col is rebuilt
 * from in, so the caller need not keep it from the forward pass. */
void imcap_conv2d_backward(float *din, float *dw, float *db, const float *dout, const float *in, const float *w,
                           int C, int H, int W, int O, int k, int stride, int pad, float *col);

/* ---- relu */
void imcap_relu_forward(float *out, const float *in, size_t n);
void imcap_relu_backward(float *din, const float *dout, const float *out, size_t n);

/* ---- maxpool (square, no padding, floor): argmax [C,Ho,Wo] saves the
 * winning input index; ties go to the first (row-major) element, as PyTorch. */
void imcap_maxpool_forward(float *out, int *argmax, const float *in, int C, int H, int W, int k, int stride);
void imcap_maxpool_backward(float *din, const float *dout, const int *argmax, int C, int Ho, int Wo);

/* ---- coords: [C,H,W] -> [C+2,H,W], channel C = x, C+1 = y in (-1, 1) */
void imcap_coords_forward(float *out, const float *in, int C, int H, int W);
void imcap_coords_backward(float *din, const float *dout, int C, int H, int W);

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
