/* convs.c — imcap-bench-convs: every convolution shape of ResNet-50 to
 * layer4 at 224 x 224, batch 1, timed alone through the path the encoder
 * takes for it (imcap_conv2d_forward: direct, flat direct, phase-split or
 * im2col product; for the 7 x 7 maps also the transposed product over
 * packed weights, imcap_conv2d_forward_t, checked bit for bit against the
 * plain one). One thread, random weights and input; the best of seven
 * rounds of at least 50 ms each. The sum weights each shape by how many
 * times the network has it: the encoder's time without its other layers,
 * with weights and input hot in cache. Then the shipped model's four convs,
 * direct against Winograd (small_encoder_table).
 *
 *   build-bench/bench/imcap-bench-convs
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/kernels.h"
#include "kernels/simd.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

typedef struct {
    const char *name;
    int C, H, O, k, s, p, count;
} conv_shape;

/* ResNet-50's convs in order: stem, then per stage the first block's
 * conv1 ("c1a"), the other blocks' conv1, conv2 (the first block's with
 * stride 2 from layer2 on), conv3 and the downsample */
static const conv_shape SHAPES[] = {
    {"stem 7x7 s2", 3, 224, 64, 7, 2, 3, 1},
    {"layer1 conv1 (first)", 64, 56, 64, 1, 1, 0, 1},
    {"layer1 conv1", 256, 56, 64, 1, 1, 0, 2},
    {"layer1 conv2 3x3", 64, 56, 64, 3, 1, 1, 3},
    {"layer1 conv3", 64, 56, 256, 1, 1, 0, 3},
    {"layer1 downsample", 64, 56, 256, 1, 1, 0, 1},
    {"layer2 conv1 (first)", 256, 56, 128, 1, 1, 0, 1},
    {"layer2 conv1", 512, 28, 128, 1, 1, 0, 3},
    {"layer2 conv2 3x3 s2", 128, 56, 128, 3, 2, 1, 1},
    {"layer2 conv2 3x3", 128, 28, 128, 3, 1, 1, 3},
    {"layer2 conv3", 128, 28, 512, 1, 1, 0, 4},
    {"layer2 downsample s2", 256, 56, 512, 1, 2, 0, 1},
    {"layer3 conv1 (first)", 512, 28, 256, 1, 1, 0, 1},
    {"layer3 conv1", 1024, 14, 256, 1, 1, 0, 5},
    {"layer3 conv2 3x3 s2", 256, 28, 256, 3, 2, 1, 1},
    {"layer3 conv2 3x3", 256, 14, 256, 3, 1, 1, 5},
    {"layer3 conv3", 256, 14, 1024, 1, 1, 0, 6},
    {"layer3 downsample s2", 512, 28, 1024, 1, 2, 0, 1},
    {"layer4 conv1 (first)", 1024, 14, 512, 1, 1, 0, 1},
    {"layer4 conv1", 2048, 7, 512, 1, 1, 0, 2},
    {"layer4 conv2 3x3 s2", 512, 14, 512, 3, 2, 1, 1},
    {"layer4 conv2 3x3", 512, 7, 512, 3, 1, 1, 2},
    {"layer4 conv3", 512, 7, 2048, 1, 1, 0, 3},
    {"layer4 downsample s2", 1024, 14, 2048, 1, 2, 0, 1},
};

static float *random_floats(size_t n, unsigned *state) {
    float *v = malloc(n * sizeof *v);
    if (!v) exit(1);
    for (size_t i = 0; i < n; i++) {
        *state = *state * 1664525u + 1013904223u;
        v[i] = (float)(*state >> 8) / 16777216.0f - 0.5f;
    }
    return v;
}

/* The best of seven rounds of at least 50 ms each, in seconds per call. */
#define BEST_OF_SEVEN(best, call)                                  \
    do {                                                           \
        best = 1e9;                                                \
        for (int r_ = 0; r_ < 7; r_++) {                           \
            double t_ = now();                                     \
            int n_ = 0;                                            \
            do call, n_++;                                         \
            while (now() - t_ < 0.05);                             \
            double d_ = (now() - t_) / n_;                         \
            best = d_ < best ? d_ : best;                          \
        }                                                          \
    } while (0)

/* The shipped model's 3x3 convs (64 x 64 input, models/default_config.json)
 * through the path the encoder takes (direct), against Winograd's
 * F(2x2, 3x3), which the encoder keeps for pretrained backbones: what
 * Winograd would save on the small model, and how far its rounding moves
 * the outputs. */
static void small_encoder_table(unsigned *rng) {
    static const int SMALL[][3] = {{3, 64, 16}, {16, 32, 32}, {32, 16, 64}, {64, 8, 64}}; /* C, H = W, O */
    double direct = 0, wino = 0;
    printf("\nThe shipped model's convs (3x3, stride 1, pad 1), direct against Winograd F(2x2, 3x3):\n\n"
           "| conv | direct us | GFLOP/s | Winograd us | largest |difference| |\n|---|---:|---:|---:|---:|\n");
    for (size_t i = 0; i < sizeof SMALL / sizeof *SMALL; i++) {
        int C = SMALL[i][0], H = SMALL[i][1], O = SMALL[i][2];
        size_t cs = imcap_conv2d_col_size(C, 3, H, H), ws = imcap_winograd_scratch(C, O, H, H);
        size_t uf = imcap_winograd_weights_floats(O, C);
        float *in = random_floats((size_t)C * H * H, rng), *w = random_floats((size_t)O * C * 9, rng);
        float *b = random_floats((size_t)O, rng), *out = malloc(sizeof(float) * O * H * H);
        float *ow = malloc(sizeof(float) * O * H * H), *col = aligned_alloc(64, ((cs > ws ? cs : ws) * 4 + 63) / 64 * 64);
        float *u = aligned_alloc(64, (uf * 4 + 63) / 64 * 64);
        if (!out || !ow || !col || !u) exit(1);
        imcap_winograd_weights(u, w, O, C);
        double td, tw;
        BEST_OF_SEVEN(td, imcap_conv2d_forward(out, in, w, b, C, H, H, O, 3, 1, 1, col));
        BEST_OF_SEVEN(tw, imcap_conv_winograd(ow, in, u, b, C, H, H, O, col));
        double diff = 0;
        for (size_t k = 0; k < (size_t)O * H * H; k++) diff = fmax(diff, fabs((double)out[k] - ow[k]));
        printf("| %d -> %d at %dx%d | %.1f | %.1f | %.1f | %.1e |\n", C, O, H, H, td * 1e6,
               2.0 * O * C * 9 * H * H / td * 1e-9, tw * 1e6, diff);
        direct += td, wino += fmin(td, tw);
        free(in), free(w), free(b), free(out), free(ow), free(col), free(u);
    }
    printf("\nAll four direct: %.1f us; each by the faster of the two: %.1f us\n", direct * 1e6, wino * 1e6);
}

int main(void) {
    unsigned rng = 1;
    double total = 0, flops = 0;
    printf("| conv | times in the net | imcap_conv2d_forward ms | GFLOP/s | transposed ms | GFLOP/s |\n"
           "|---|---:|---:|---:|---:|---:|\n");
    for (size_t i = 0; i < sizeof SHAPES / sizeof *SHAPES; i++) {
        const conv_shape *l = &SHAPES[i];
        int Ho = (l->H + 2 * l->p - l->k) / l->s + 1, K = l->C * l->k * l->k, P = Ho * Ho;
        float *in = random_floats((size_t)l->C * l->H * l->H, &rng), *w = random_floats((size_t)l->O * K, &rng);
        float *out = malloc(sizeof(float) * l->O * P), *col = malloc(imcap_conv2d_col_size(l->C, l->k, Ho, Ho) * 4);
        if (!out || !col) return 1;
        double fl = 2.0 * l->O * K * P, best;
        BEST_OF_SEVEN(best, imcap_conv2d_forward(out, in, w, NULL, l->C, l->H, l->H, l->O, l->k, l->s, l->p, col));
        double plain = best;
        char tcol[64] = "—", tflops[32] = "—";
        int used = imcap_conv_runs_transposed(l->O, P);
        if (used) {
            float *wp = aligned_alloc(64, (imcap_panel_floats(l->O, K) * sizeof(float) + 63) / 64 * 64);
            float *ot = malloc(sizeof(float) * l->O * P);
            if (!wp || !ot) return 1;
            memset(wp, 0, imcap_panel_floats(l->O, K) * sizeof(float));
            imcap_panel_put(wp, K, 0, 0, w, l->O, K);
            double bt;
            BEST_OF_SEVEN(bt, imcap_conv2d_forward_t(ot, (size_t)l->O, in, wp, l->C, l->H, l->H, l->O, l->k, l->s,
                                                     l->p, col));
            for (int o = 0; o < l->O; o++)
                for (int p = 0; p < P; p++)
                    if (memcmp(&ot[(size_t)p * l->O + o], &out[(size_t)o * P + p], sizeof(float))) {
                        fprintf(stderr, "imcap-bench-convs: %s: the transposed product differs\n", l->name);
                        return 1;
                    }
            snprintf(tcol, sizeof tcol, "%.2f", bt * 1e3);
            snprintf(tflops, sizeof tflops, "%.1f", fl / bt * 1e-9);
            best = bt; /* the encoder takes the transposed path here */
            free(wp), free(ot);
        }
        printf("| %s | %d | %.2f | %.1f | %s | %s |\n", l->name, l->count, plain * 1e3, fl / plain * 1e-9, tcol, tflops);
        total += best * l->count, flops += fl * l->count;
        free(in), free(w), free(out), free(col);
    }
    printf("\nAll convs as the encoder runs them: %.1f ms, %.2f GFLOP, %.1f GFLOP/s (%s kernels)\n", total * 1e3,
           flops * 1e-9, flops / total * 1e-9, imcap_simd_name());
    small_encoder_table(&rng);
    return 0;
}
