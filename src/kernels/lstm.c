/* lstm.c — one LSTM cell step for a batch of rows, PyTorch's gate order
 * (input, forget, cell, output) and its two bias vectors. */
#include <cblas.h>
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
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, G, In, N, 1.0f, dpre, G, x, In, 1.0f, dw_ih, In);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, G, H, N, 1.0f, dpre, G, h_prev, H, 1.0f, dw_hh, H);
    if (dx) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, In, G, 1.0f, dpre, G, w_ih, In, 1.0f, dx, In);
    if (dh_prev) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, H, G, 1.0f, dpre, G, w_hh, H, 1.0f, dh_prev, H);
}
