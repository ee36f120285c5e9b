/* winograd.c — 3x3 stride-1 convolutions by Winograd's F(2x2, 3x3)
 * (Lavin and Gray 2016, "Fast Algorithms for Convolutional Neural
 * Networks"): each 2x2 block of outputs of each (output, input) channel
 * pair costs 16 multiplications instead of 36, as 16 products
 *   M_xi^T [T, O] = V_xi^T [T, C] U_xi^T [C, O]   (xi = 0..15, T tiles)
 * between transforms that only add. U = G g G^T is made once per model
 * (imcap_winograd_weights), V = B^T d B per image, the output A^T m A
 * (simd_impl.c: imcap_winograd_in, imcap_winograd_out). An odd map is
 * computed to the next even size and the extra outputs dropped.
 *
 * Not the bits of the direct convolution: each output is summed in another
 * order and through the transforms' additions, so it differs in the last
 * places (the test bounds it by 1e-5 of the sum of |w x| over the window).
 * Used only where that is allowed: the pretrained backbones' residual
 * blocks, whose parity with torchvision is checked to 1e-4; the plain conv
 * layers of format 1 (the shipped model) never come here, so their
 * captions keep their bits. */
#include "kernels.h"
#include "simd.h"

int imcap_winograd_fits(int k, int stride, int pad, int Ho, int Wo) {
    return k == 3 && stride == 1 && pad == 1 && Ho >= 2 && Wo >= 2;
}

size_t imcap_winograd_weights_floats(int O, int C) { return 16 * imcap_panel_floats(O, C); }

/* U = G g G^T with G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1], in
 * double, rounded once; U_xi (xi = 4 * row + column) as imcap_gemm_p's
 * weights of O outputs over C inputs, in panels (simd.h), one after the
 * other. */
void imcap_winograd_weights(float *u, const float *w, int O, int C) {
    static const double G[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
    size_t pf = imcap_panel_floats(O, C);
    for (int o = 0; o < O; o++)
        for (int c = 0; c < C; c++) {
            const float *g = w + ((size_t)o * C + c) * 9;
            double t[4][3];
            for (int a = 0; a < 4; a++)
                for (int j = 0; j < 3; j++) t[a][j] = G[a][0] * g[j] + G[a][1] * g[3 + j] + G[a][2] * g[6 + j];
            size_t at = ((size_t)(o / IMCAP_PANEL) * C + c) * IMCAP_PANEL + o % IMCAP_PANEL;
            for (int a = 0; a < 4; a++)
                for (int b = 0; b < 4; b++)
                    u[(size_t)(4 * a + b) * pf + at] = (float)(t[a][0] * G[b][0] + t[a][1] * G[b][1] + t[a][2] * G[b][2]);
        }
}

/* Tile rows per pass: with small weights (ResNet's layer1: 16 x 64 x 64
 * floats, 256 KB), a few tile rows at a time, so that V and M of a pass
 * (16 x (C + O) floats per tile) stay in L2 with U, instead of 3 MB each
 * going out to L3 and back; larger weights would then be read once per
 * pass, so those convs take every tile in one. */
#define WINO_L2_BYTES (512u * 1024u)
static int rows_per_pass(int C, int O, int Ho, int Wo) {
    int th = (Ho + 1) / 2, tw = (Wo + 1) / 2;
    size_t u = 16 * imcap_panel_floats(O, C) * sizeof(float), row = (size_t)16 * (C + O) * tw * sizeof(float);
    if (u > WINO_L2_BYTES / 2) return th;
    int r = (int)(WINO_L2_BYTES / row);
    return r < 1 ? 1 : r > th ? th : r;
}

size_t imcap_winograd_scratch(int C, int O, int Ho, int Wo) {
    int R = rows_per_pass(C, O, Ho, Wo), tw = (Wo + 1) / 2;
    size_t T = (size_t)R * tw, rows = 2 * (size_t)R + 2;
    /* V and Mt of a pass, then its padded input rows and their transforms */
    return 16 * T * ((size_t)C + O) + rows * (2 * (size_t)tw + 2) + rows * 4 * (size_t)tw;
}

void imcap_conv_winograd(float *out, const float *in, const float *u, const float *bias, int C, int H, int W, int O,
                         float *scratch) {
    int R = rows_per_pass(C, O, H, W), th = (H + 1) / 2, tw = (W + 1) / 2;
    size_t pf = imcap_panel_floats(O, C), Tmax = (size_t)R * tw;
    float *V = scratch, *M = V + 16 * (size_t)C * Tmax, *plane = M + 16 * (size_t)O * Tmax;
    float *h = plane + (2 * (size_t)R + 2) * (2 * (size_t)tw + 2);
    for (int i0 = 0; i0 < th; i0 += R) {
        int i1 = i0 + R < th ? i0 + R : th;
        size_t T = (size_t)(i1 - i0) * tw;
        imcap_winograd_in(V, in, C, H, W, i0, i1, plane, h);
        /* transposed (M_xi^T [T, O] = V_xi^T U_xi^T): the vectors run along
         * the outputs, which fill them whatever the number of tiles (49 at
         * 14 x 14) */
        for (int xi = 0; xi < 16; xi++)
            imcap_gemm_p(M + (size_t)xi * O * T, (size_t)O, V + (size_t)xi * C * T, 1, T, u + xi * pf, (int)T, O, C,
                         NULL);
        imcap_winograd_out(out, M, bias, O, H, W, i0, i1);
    }
}
