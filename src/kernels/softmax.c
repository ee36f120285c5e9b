/* softmax.c — softmax, log-softmax and the sigmoid, with their gradients. */
#include <math.h>

#include "kernels.h"
#include "simd.h"

void imcap_softmax_forward(float *out, const float *in, int n) {
    float m = in[0];
    for (int i = 1; i < n; i++) m = in[i] > m ? in[i] : m;
    float s = 0;
    for (int i = 0; i < n; i++) s += (out[i] = expf(in[i] - m));
    float inv = 1.0f / s;
    for (int i = 0; i < n; i++) out[i] *= inv;
}

void imcap_softmax_backward(float *din, const float *dout, const float *out, int n) {
    float dot = 0;
    for (int i = 0; i < n; i++) dot += dout[i] * out[i];
    for (int i = 0; i < n; i++) din[i] += out[i] * (dout[i] - dot);
}

void imcap_log_softmax_forward(float *out, const float *in, int n) {
    float m = in[0];
    for (int i = 1; i < n; i++) m = in[i] > m ? in[i] : m;
    double s = 0; /* the normaliser in double: V can be tens of thousands */
    for (int i = 0; i < n; i++) s += exp((double)(in[i] - m));
    /* (x - max) - log(sum): as PyTorch, and exact for large logits */
    float ls = (float)log(s);
    for (int i = 0; i < n; i++) out[i] = (in[i] - m) - ls;
}

void imcap_log_softmax_backward(float *din, const float *dout, const float *out, int n) {
    float s = 0;
    for (int i = 0; i < n; i++) s += dout[i];
    for (int i = 0; i < n; i++) din[i] += dout[i] - expf(out[i]) * s;
}

void imcap_sigmoid_forward(float *out, const float *in, size_t n) { imcap_vsigmoid(out, in, n); }

void imcap_sigmoid_backward(float *din, const float *dout, const float *out, size_t n) {
    for (size_t i = 0; i < n; i++) din[i] += dout[i] * out[i] * (1.0f - out[i]);
}
