/* upsample.c — attention maps from grid cells to image pixels. */
#include <math.h>
#include <stdlib.h>

#include "render/render.h"

float imcap_render_normalise(const float *map, int n, float *out) {
    float mx = 0.0f;
    for (int i = 0; i < n; i++)
        if (isfinite(map[i]) && map[i] > mx) mx = map[i];
    /* Dividing by the max (not by the sum) gives every word's map the full
     * colour range: attention spread over many cells would otherwise look
     * uniformly dark. */
    for (int i = 0; i < n; i++) {
        float v = map[i];
        out[i] = (mx > 0.0f && isfinite(v) && v > 0.0f) ? v / mx : 0.0f;
    }
    return mx;
}

/* For each output coordinate, the two source cells and the weight of the
 * second, with cell centres at (c + 0.5) / n of the extent. */
static void taps(int n_src, int n_dst, int *i0, int *i1, float *f) {
    for (int x = 0; x < n_dst; x++) {
        double u = (x + 0.5) * (double)n_src / n_dst - 0.5;
        if (u < 0) u = 0;
        if (u > n_src - 1) u = n_src - 1;
        int a = (int)floor(u);
        if (a > n_src - 1) a = n_src - 1;
        i0[x] = a;
        i1[x] = a + 1 < n_src ? a + 1 : a;
        f[x] = (float)(u - a);
    }
}

int imcap_render_upsample(const float *grid, int gh, int gw, float *out, int w, int h) {
    if (gh <= 0 || gw <= 0 || w <= 0 || h <= 0) return -1;
    int *xi = malloc(sizeof(int) * 2 * ((size_t)w + h));
    float *xf = malloc(sizeof(float) * ((size_t)w + h));
    float *rows = malloc(sizeof(float) * (size_t)gh * w);
    if (!xi || !xf || !rows) {
        free(xi), free(xf), free(rows);
        return -1;
    }
    int *x0 = xi, *x1 = xi + w, *y0 = xi + 2 * w, *y1 = xi + 2 * w + h;
    float *fx = xf, *fy = xf + w;
    taps(gw, w, x0, x1, fx);
    taps(gh, h, y0, y1, fy);
    /* Separable: interpolate along x for each grid row, then along y. */
    for (int r = 0; r < gh; r++) {
        const float *g = grid + (size_t)r * gw;
        float *o = rows + (size_t)r * w;
        for (int x = 0; x < w; x++) o[x] = g[x0[x]] + fx[x] * (g[x1[x]] - g[x0[x]]);
    }
    for (int y = 0; y < h; y++) {
        const float *a = rows + (size_t)y0[y] * w, *b = rows + (size_t)y1[y] * w;
        float t = fy[y];
        float *o = out + (size_t)y * w;
        for (int x = 0; x < w; x++) o[x] = a[x] + t * (b[x] - a[x]);
    }
    free(xi);
    free(xf);
    free(rows);
    return 0;
}
