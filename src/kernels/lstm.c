/* lstm.c — one LSTM cell step for a batch of rows, PyTorch's gate order
 * (input, forget, cell, output) and its two bias vectors. */
#include <string.h>

#include "kernels.h"
#include "simd.h"

void imcap_lstm_forward(float *h, float *c, float *tanh_c, float *gates, const float *x, const float *h_prev,
                        const float *c_prev, const float *w_ih, const float *b_ih, const float *w_hh,
                        const float *b_hh, int N, int In, int H) {
    /* one product over [x; h_prev] against [w_ih w_hh], read in place */
    imcap_mm_seg seg[2] = {{w_ih, (size_t)In, x, (size_t)In, In}, {w_hh, (size_t)H, h_prev, (size_t)H, H}};
    imcap_rows_affine(gates, (size_t)4 * H, N, 4 * H, seg, 2, b_ih, b_hh);
    imcap_lstm_cell(h, c, tanh_c, gates, c_prev, N, H);
}

void imcap_lstm_backward(float *dx, float *dh_prev, float *dc_prev, float *dw_ih, float *db_ih, float *dw_hh,
                         float *db_hh, const float *dh, const float *dc, const float *x, const float *h_prev,
                         const float *c_prev, const float *gates, const float *tanh_c, const float *w_ih,
                         const float *w_hh, int N, int In, int H, float *scratch) {
    int G = 4 * H;
    float *dpre = scratch; /* gradient at the gates before their activations */
    for (int n = 0; n < N; n++) {
        const float *gt = gates + (size_t)n * G;
        float *dp = dpre + (size_t)n * G;
        for (int j = 0; j < H; j++) {
            size_t k = (size_t)n * H + j;
            float i = gt[j], f = gt[H + j], g = gt[2 * H + j], o = gt[3 * H + j], tc = tanh_c[k];
            float dct = dh[k] * o * (1.0f - tc * tc) + (dc ? dc[k] : 0.0f);
            dp[j] = dct * g * i * (1.0f - i);
            dp[H + j] = dct * c_prev[k] * f * (1.0f - f);
            dp[2 * H + j] = dct * i * (1.0f - g * g);
            dp[3 * H + j] = dh[k] * tc * o * (1.0f - o);
            if (dc_prev) dc_prev[k] += dct * f;
        }
        for (int g = 0; g < G; g++) {
            db_ih[g] += dp[g];
            db_hh[g] += dp[g];
        }
    }
    imcap_gemm(dw_ih, (size_t)In, dpre, 1, (size_t)G, x, (size_t)In, G, In, N, NULL, 1);      /* dpre^T x */
    imcap_gemm(dw_hh, (size_t)H, dpre, 1, (size_t)G, h_prev, (size_t)H, G, H, N, NULL, 1);  /* dpre^T h_prev */
    if (dx) imcap_gemm(dx, (size_t)In, dpre, (size_t)G, 1, w_ih, (size_t)In, N, In, G, NULL, 1);
    if (dh_prev) imcap_gemm(dh_prev, (size_t)H, dpre, (size_t)G, 1, w_hh, (size_t)H, N, H, G, NULL, 1);
}
