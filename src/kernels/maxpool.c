/* maxpool.c — square max pooling, output size floored; padding (format 2,
 * inference only) as torch.nn.MaxPool2d: padded cells never win. */
#include "kernels.h"
#include "simd.h"

/* Whether x replaces the maximum m so far: strict > keeps the first maximum;
 * a NaN wins and the first NaN stays, as in PyTorch */
static inline int wins(float x, float m) { return x > m || (x != x && m == m); }
static inline float take(float m, float x) { return wins(x, m) ? x : m; }

/* One output row of 2x2 stride-2 windows with their winners, as the loop
 * below but with selects, which vectorise: r0 is the index of the window
 * row's first element in `in`. */
static void pool2x2_argmax(float *restrict out, int *restrict argmax, const float *restrict in, int r0, int W, int Wo) {
    const float *a = in + r0, *c = a + W;
    for (int ox = 0; ox < Wo; ox++) {
        float m = a[2 * ox], x;
        int best = r0 + 2 * ox, t;
        x = a[2 * ox + 1], t = wins(x, m);
        m = t ? x : m, best = t ? r0 + 2 * ox + 1 : best;
        x = c[2 * ox], t = wins(x, m);
        m = t ? x : m, best = t ? r0 + W + 2 * ox : best;
        x = c[2 * ox + 1], t = wins(x, m);
        m = t ? x : m, best = t ? r0 + W + 2 * ox + 1 : best;
        out[ox] = m;
        argmax[ox] = best;
    }
}

void imcap_maxpool_forward(float *out, int *argmax, const float *in, int C, int H, int W, int k, int stride) {
    if (!argmax) {
        imcap_maxpool_infer(out, in, C, H, W, k, stride, 0);
        return;
    }
    int Ho = (H - k) / stride + 1, Wo = (W - k) / stride + 1;
    if (k == 2 && stride == 2) {
        for (int c = 0; c < C; c++)
            for (int oy = 0; oy < Ho; oy++)
                pool2x2_argmax(out + ((size_t)c * Ho + oy) * Wo, argmax + ((size_t)c * Ho + oy) * Wo, in,
                               (c * H + 2 * oy) * W, W, Wo);
        return;
    }
    for (int c = 0; c < C; c++)
        for (int oy = 0; oy < Ho; oy++)
            for (int ox = 0; ox < Wo; ox++) {
                int best = (c * H + oy * stride) * W + ox * stride;
                float m = in[best];
                for (int ky = 0; ky < k; ky++)
                    for (int kx = 0; kx < k; kx++) {
                        int idx = (c * H + oy * stride + ky) * W + ox * stride + kx;
                        if (wins(in[idx], m)) m = in[idx], best = idx;
                    }
                size_t o = ((size_t)c * Ho + oy) * Wo + ox;
                out[o] = m;
                argmax[o] = best;
            }
}

void imcap_maxpool_backward(float *din, const float *dout, const int *argmax, int C, int Ho, int Wo) {
    size_t n = (size_t)C * Ho * Wo;
    for (size_t i = 0; i < n; i++) din[argmax[i]] += dout[i];
}

void imcap_maxpool_infer(float *out, const float *in, int C, int H, int W, int k, int stride, int relu) {
    int Ho = (H - k) / stride + 1, Wo = (W - k) / stride + 1;
    for (int c = 0; c < C; c++) {
        const float *plane = in + (size_t)c * H * W;
        float *op = out + (size_t)c * Ho * Wo;
        if (k == 2 && stride == 2) {
            for (int oy = 0; oy < Ho; oy++)
                imcap_pool2x2_row(op + (size_t)oy * Wo, plane + (size_t)2 * oy * W, plane + (size_t)(2 * oy + 1) * W, Wo,
                                  relu);
            continue;
        }
        for (int oy = 0; oy < Ho; oy++)
            for (int ox = 0; ox < Wo; ox++) {
                const float *win = plane + (size_t)oy * stride * W + (size_t)ox * stride;
                float m = relu ? 0.0f : win[0];
                for (int ky = 0; ky < k; ky++)
                    for (int kx = 0; kx < k; kx++) {
                        float x = win[(size_t)ky * W + kx];
                        m = relu ? (x > m ? x : m) : take(m, x);
                    }
                op[(size_t)oy * Wo + ox] = m;
            }
    }
}

/* Window ox of one input row, clipped to [0, W): the fold of take over its
 * columns in order. */
static float row_window(const float *row, int W, int ox, int k, int stride, int pad) {
    int x0 = ox * stride - pad, x1 = x0 + k;
    if (x0 < 0) x0 = 0;
    if (x1 > W) x1 = W;
    float m = row[x0];
    for (int x = x0 + 1; x < x1; x++) m = take(m, row[x]);
    return m;
}

/* hm[i] = window o0 + i of one input row, i < n. The windows that lie
 * inside the row need no clipping; ResNet's stem pool (3 wide, stride 2)
 * gets its own loop, which the compiler vectorises. */
static void row_windows(float *restrict hm, const float *restrict row, int W, int o0, int n, int k, int stride,
                        int pad) {
    int lo = (pad + stride - 1) / stride, hi = W - k + pad < 0 ? 0 : (W - k + pad) / stride + 1;
    int i = 0;
    for (; i < n && o0 + i < lo; i++) hm[i] = row_window(row, W, o0 + i, k, stride, pad);
    int end = hi - o0 < n ? hi - o0 : n;
    if (k == 3 && stride == 2) {
        const float *r = row + 2 * o0 - pad;
        for (; i < end; i++) hm[i] = take(take(r[2 * i], r[2 * i + 1]), r[2 * i + 2]);
    }
    for (; i < end; i++) hm[i] = row_window(row, W, o0 + i, k, stride, pad);
    for (; i < n; i++) hm[i] = row_window(row, W, o0 + i, k, stride, pad);
}

/* Separable: each row's window maxima, then their fold down the window's
 * rows. The fold of take (first NaN, else first maximum) over the window in
 * row-major order picks the same element as the fold over the rows of each
 * row's fold, so the result is the row-major loop's to the bit. */
void imcap_maxpool_pad_infer(float *out, const float *in, int C, int H, int W, int k, int stride, int pad) {
    if (pad == 0) {
        imcap_maxpool_infer(out, in, C, H, W, k, stride, 0);
        return;
    }
    enum { CHUNK = 128 };
    float hm[CHUNK];
    int Ho = (H + 2 * pad - k) / stride + 1, Wo = (W + 2 * pad - k) / stride + 1;
    for (int c = 0; c < C; c++) {
        const float *plane = in + (size_t)c * H * W;
        float *op = out + (size_t)c * Ho * Wo;
        for (int oy = 0; oy < Ho; oy++) {
            /* pad <= k/2, so every window holds at least one input */
            int y0 = oy * stride - pad, y1 = y0 + k;
            if (y0 < 0) y0 = 0;
            if (y1 > H) y1 = H;
            for (int o0 = 0; o0 < Wo; o0 += CHUNK) {
                int n = Wo - o0 < CHUNK ? Wo - o0 : CHUNK;
                float *dst = op + (size_t)oy * Wo + o0;
                row_windows(dst, plane + (size_t)y0 * W, W, o0, n, k, stride, pad);
                for (int y = y0 + 1; y < y1; y++) {
                    row_windows(hm, plane + (size_t)y * W, W, o0, n, k, stride, pad);
                    for (int i = 0; i < n; i++) dst[i] = take(dst[i], hm[i]);
                }
            }
        }
    }
}
