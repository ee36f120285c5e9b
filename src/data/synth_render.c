/* synth_render.c — pixels of a synthetic scene: a textured, never flat
 * background (two-colour gradient, a low-contrast texture, faint clutter that
 * names nothing: thin lines, curves, soft blobs), the objects drawn with 5x5
 * supersampling, then sensor-like noise. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data/synth.h"
#include "util/util.h"

/* ---------------------------------------------------------------- shapes */

/* Outlines in units of the object's radius, x right, y down, centred so that
 * the unrotated shape's box is symmetric about its centre. The factors make
 * the shapes look about equally big at the same radius. */
#define MAXV 12
typedef struct {
    int n;
    float v[MAXV][2];
} outline;

static void shape_outline(int shape, outline *o) {
    o->n = 0;
    switch (shape) {
    case IMCAP_SHAPE_SQUARE: {
        static const float a = 0.80f;
        const float v[4][2] = {{-a, -a}, {a, -a}, {a, a}, {-a, a}};
        o->n = 4;
        memcpy(o->v, v, sizeof v);
        break;
    }
    case IMCAP_SHAPE_DIAMOND: {
        /* taller than wide, so that it never reads as a rotated square */
        const float v[4][2] = {{0, -1.0f}, {0.64f, 0}, {0, 1.0f}, {-0.64f, 0}};
        o->n = 4;
        memcpy(o->v, v, sizeof v);
        break;
    }
    case IMCAP_SHAPE_TRIANGLE: {
        const float R = 1.12f, h = 0.8660254f;
        const float v[3][2] = {{0, -R + R / 4}, {R * h, R / 2 + R / 4}, {-R * h, R / 2 + R / 4}};
        o->n = 3;
        memcpy(o->v, v, sizeof v);
        break;
    }
    case IMCAP_SHAPE_STAR: {
        const double R = 1.08, inner = 0.48 * R, shift = 0.5 * (R - R * sin(54 * M_PI / 180));
        o->n = 10;
        for (int k = 0; k < 10; k++) {
            double a = -M_PI / 2 + k * M_PI / 5, rr = k % 2 ? inner : R;
            o->v[k][0] = (float)(rr * cos(a));
            o->v[k][1] = (float)(rr * sin(a) + shift);
        }
        break;
    }
    case IMCAP_SHAPE_CROSS: {
        const float L = 0.95f, w = 0.34f;
        const float v[12][2] = {{-w, -L}, {w, -L}, {w, -w}, {L, -w},  {L, w},   {w, w},
                                {w, L},   {-w, L}, {-w, w}, {-L, w}, {-L, -w}, {-w, -w}};
        o->n = 12;
        memcpy(o->v, v, sizeof v);
        break;
    }
    default: break; /* circle, ring: analytic */
    }
}

void imcap_synth_shape_extent(int shape, float radius, float angle, float ext[4]);
void imcap_synth_shape_extent(int shape, float radius, float angle, float ext[4]) {
    outline o;
    shape_outline(shape, &o);
    if (o.n == 0) {
        ext[0] = ext[1] = -radius;
        ext[2] = ext[3] = radius;
        return;
    }
    double c = cos(angle), s = sin(angle);
    ext[0] = ext[1] = 1e9f;
    ext[2] = ext[3] = -1e9f;
    for (int k = 0; k < o.n; k++) {
        double x = o.v[k][0] * radius, y = o.v[k][1] * radius;
        float X = (float)(c * x - s * y), Y = (float)(s * x + c * y);
        if (X < ext[0]) ext[0] = X;
        if (X > ext[2]) ext[2] = X;
        if (Y < ext[1]) ext[1] = Y;
        if (Y > ext[3]) ext[3] = Y;
    }
}

/* Even-odd crossing test; the star is not convex. */
static int in_outline(const outline *o, float x, float y) {
    int in = 0;
    for (int i = 0, j = o->n - 1; i < o->n; j = i++) {
        float xi = o->v[i][0], yi = o->v[i][1], xj = o->v[j][0], yj = o->v[j][1];
        if ((yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi) in = !in;
    }
    return in;
}

static int inside(int shape, const outline *o, float x, float y) {
    float d2 = x * x + y * y;
    if (shape == IMCAP_SHAPE_CIRCLE) return d2 <= 1.0f;
    if (shape == IMCAP_SHAPE_RING) return d2 <= 1.0f && d2 >= 0.56f * 0.56f;
    return in_outline(o, x, y);
}

#define SS 5

static void draw_object(float *img, int side, const imcap_synth_object *ob, imcap_rng *r) {
    outline o;
    shape_outline(ob->shape, &o);
    double c = cos(ob->angle), s = sin(ob->angle), inv_r = 1.0 / ob->radius;
    /* mild directional shading keeps flat fills from looking pasted on */
    double sh_a = imcap_rng_uniform(r) * 2 * M_PI, sh_k = 0.06 * (2 * imcap_rng_uniform(r) - 1);
    double sh_x = cos(sh_a) * sh_k, sh_y = sin(sh_a) * sh_k;
    int x0 = (int)floor(ob->bbox[0]) - 1, y0 = (int)floor(ob->bbox[1]) - 1;
    int x1 = (int)ceil(ob->bbox[2]) + 1, y1 = (int)ceil(ob->bbox[3]) + 1;
    if (x0 < 0) x0 = 0;
    if (y0 < 0) y0 = 0;
    if (x1 > side) x1 = side;
    if (y1 > side) y1 = side;
    for (int py = y0; py < y1; py++)
        for (int px = x0; px < x1; px++) {
            int hits = 0;
            for (int sy = 0; sy < SS; sy++)
                for (int sx = 0; sx < SS; sx++) {
                    double dx = px + (sx + 0.5) / SS - ob->cx, dy = py + (sy + 0.5) / SS - ob->cy;
                    /* into the shape's frame: rotate by -angle, scale by 1/radius */
                    float lx = (float)((c * dx + s * dy) * inv_r), ly = (float)((-s * dx + c * dy) * inv_r);
                    hits += inside(ob->shape, &o, lx, ly);
                }
            if (!hits) continue;
            float a = (float)hits / (SS * SS);
            double ux = (px + 0.5 - ob->cx) * inv_r, uy = (py + 0.5 - ob->cy) * inv_r;
            float shade = (float)(1.0 + sh_x * ux + sh_y * uy);
            float *p = img + ((size_t)py * side + px) * 3;
            for (int k = 0; k < 3; k++) p[k] += a * (ob->rgb[k] * shade - p[k]);
        }
}

/* ---------------------------------------------------------------- background */

static double uni(imcap_rng *r, double lo, double hi) { return lo + (hi - lo) * imcap_rng_uniform(r); }

/* A greyish mid-tone: low saturation, value 0.36..0.66, so saturated fills,
 * white and black all stand out from it. */
static void bg_colour(imcap_rng *r, double hue, double val, float out[3]) {
    double sat = uni(r, 0.02, 0.20);
    double h = fmod(hue, 1.0) * 6, f = h - floor(h);
    double p = val * (1 - sat), q = val * (1 - sat * f), t = val * (1 - sat * (1 - f));
    double rgb[3];
    switch ((int)h % 6) {
    case 0: rgb[0] = val, rgb[1] = t, rgb[2] = p; break;
    case 1: rgb[0] = q, rgb[1] = val, rgb[2] = p; break;
    case 2: rgb[0] = p, rgb[1] = val, rgb[2] = t; break;
    case 3: rgb[0] = p, rgb[1] = q, rgb[2] = val; break;
    case 4: rgb[0] = t, rgb[1] = p, rgb[2] = val; break;
    default: rgb[0] = val, rgb[1] = p, rgb[2] = q; break;
    }
    for (int k = 0; k < 3; k++) out[k] = (float)(255 * rgb[k]);
}

static float clampf(float v, float lo, float hi) { return v < lo ? lo : v > hi ? hi : v; }

static void add_lum(float *img, size_t i, float v) {
    img[3 * i] += v;
    img[3 * i + 1] += v;
    img[3 * i + 2] += v;
}

static void gradient(float *img, int S, imcap_rng *r) {
    double hue = imcap_rng_uniform(r), val = uni(r, 0.40, 0.62);
    float c0[3], c1[3];
    bg_colour(r, hue, val, c0);
    bg_colour(r, hue + uni(r, -0.15, 0.15), clampf((float)(val + uni(r, -0.14, 0.14)), 0.36f, 0.66f), c1);
    int radial = imcap_rng_uniform(r) < 0.3;
    double ang = uni(r, 0, 2 * M_PI), ca = cos(ang), sa = sin(ang);
    double rcx = uni(r, 0, S), rcy = uni(r, 0, S);
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            double u = (x + 0.5) / S - 0.5, v = (y + 0.5) / S - 0.5, t;
            if (radial) t = hypot(x + 0.5 - rcx, y + 0.5 - rcy) / (S * 1.1);
            else t = 0.5 + (u * ca + v * sa) / 1.4143;
            t = clampf((float)t, 0, 1);
            float *p = img + ((size_t)y * S + x) * 3;
            for (int k = 0; k < 3; k++) p[k] = (float)(c0[k] + t * (c1[k] - c0[k]));
        }
}

static void texture(float *img, int S, imcap_rng *r) {
    int kind = imcap_rng_int(r, 3);
    if (kind == 0) { /* stripes or a weave */
        double f1 = uni(r, 3, 10), a1 = uni(r, 0, M_PI), ph1 = uni(r, 0, 2 * M_PI);
        double f2 = uni(r, 3, 10), a2 = a1 + uni(r, M_PI / 4, 3 * M_PI / 4), ph2 = uni(r, 0, 2 * M_PI);
        int weave = imcap_rng_uniform(r) < 0.4;
        double amp = uni(r, 3, 8);
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++) {
                double u = (x + 0.5) / S, v = (y + 0.5) / S;
                double w = sin(2 * M_PI * f1 * (u * cos(a1) + v * sin(a1)) + ph1);
                if (weave) w *= sin(2 * M_PI * f2 * (u * cos(a2) + v * sin(a2)) + ph2);
                add_lum(img, (size_t)y * S + x, (float)(amp * w));
            }
    } else { /* value noise, coarse (mottled) or fine (grainy) */
        int G = kind == 1 ? 3 + imcap_rng_int(r, 4) : 10 + imcap_rng_int(r, 8);
        double amp = kind == 1 ? uni(r, 6, 14) : uni(r, 3, 7);
        float grid[19 * 19];
        for (int i = 0; i < (G + 1) * (G + 1); i++) grid[i] = (float)uni(r, -1, 1);
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++) {
                double gx = (x + 0.5) / S * G, gy = (y + 0.5) / S * G;
                int ix = (int)gx, iy = (int)gy;
                if (ix >= G) ix = G - 1;
                if (iy >= G) iy = G - 1;
                double fx = gx - ix, fy = gy - iy;
                fx = fx * fx * (3 - 2 * fx);
                fy = fy * fy * (3 - 2 * fy);
                const float *g = grid + iy * (G + 1) + ix;
                double v = (1 - fy) * ((1 - fx) * g[0] + fx * g[1]) + fy * ((1 - fx) * g[G + 1] + fx * g[G + 2]);
                add_lum(img, (size_t)y * S + x, (float)(amp * v));
            }
    }
}

static double seg_dist2(double px, double py, double ax, double ay, double bx, double by) {
    double vx = bx - ax, vy = by - ay, wx = px - ax, wy = py - ay;
    double l2 = vx * vx + vy * vy, t = l2 > 0 ? (wx * vx + wy * vy) / l2 : 0;
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    double dx = wx - t * vx, dy = wy - t * vy;
    return dx * dx + dy * dy;
}

/* Faint clutter: thin straight or bent lines and soft blobs, +-10..28 grey
 * levels, too faint and shapeless to be named. */
static void clutter(float *img, int S, imcap_rng *r) {
    int n = 1 + imcap_rng_int(r, 5);
    for (int it = 0; it < n; it++) {
        int kind = imcap_rng_int(r, 3);
        float delta = (float)(uni(r, 10, 28) * (imcap_rng_uniform(r) < 0.5 ? -1 : 1));
        if (kind < 2) {
            /* a polyline: straight (kind 0) or a bent quadratic curve (kind 1) */
            double ax = uni(r, -0.2, 1.2) * S, ay = uni(r, -0.2, 1.2) * S;
            double bx = uni(r, -0.2, 1.2) * S, by = uni(r, -0.2, 1.2) * S;
            double mx = (ax + bx) / 2 + (kind ? uni(r, -0.3, 0.3) * S : 0);
            double my = (ay + by) / 2 + (kind ? uni(r, -0.3, 0.3) * S : 0);
            double w = uni(r, 0.6, 1.6);
            double pts[9][2];
            for (int k = 0; k <= 8; k++) {
                double t = k / 8.0;
                pts[k][0] = (1 - t) * (1 - t) * ax + 2 * t * (1 - t) * mx + t * t * bx;
                pts[k][1] = (1 - t) * (1 - t) * ay + 2 * t * (1 - t) * my + t * t * by;
            }
            /* only pixels near the curve's bounding box can be touched */
            double lo_x = 1e9, lo_y = 1e9, hi_x = -1e9, hi_y = -1e9, reach = w / 2 + 0.5;
            for (int k = 0; k <= 8; k++) {
                if (pts[k][0] < lo_x) lo_x = pts[k][0];
                if (pts[k][0] > hi_x) hi_x = pts[k][0];
                if (pts[k][1] < lo_y) lo_y = pts[k][1];
                if (pts[k][1] > hi_y) hi_y = pts[k][1];
            }
            int x0 = (int)fmax(0, floor(lo_x - reach)), x1 = (int)fmin(S, ceil(hi_x + reach));
            int y0 = (int)fmax(0, floor(lo_y - reach)), y1 = (int)fmin(S, ceil(hi_y + reach));
            for (int y = y0; y < y1; y++)
                for (int x = x0; x < x1; x++) {
                    double d2 = 1e18;
                    for (int k = 0; k < 8; k++) {
                        double dd = seg_dist2(x + 0.5, y + 0.5, pts[k][0], pts[k][1], pts[k + 1][0], pts[k + 1][1]);
                        if (dd < d2) d2 = dd;
                    }
                    if (d2 >= reach * reach) continue;
                    float cov = clampf((float)(reach - sqrt(d2)), 0, 1);
                    if (cov > 0) add_lum(img, (size_t)y * S + x, delta * cov);
                }
        } else {
            double cx = uni(r, 0, S), cy = uni(r, 0, S), sg = uni(r, 0.05, 0.14) * S;
            double inv = 1.0 / (2 * sg * sg);
            for (int y = 0; y < S; y++)
                for (int x = 0; x < S; x++) {
                    double dx = x + 0.5 - cx, dy = y + 0.5 - cy;
                    add_lum(img, (size_t)y * S + x, (float)(0.6 * delta * exp(-(dx * dx + dy * dy) * inv)));
                }
        }
    }
}

/* Pixel noise needs no exact Gaussian: the sum of four 16-bit uniforms
 * from one draw (variance 4/12, rescaled to 1) is close and ~10x cheaper. */
static float approx_normal(imcap_rng *r) {
    uint64_t v = imcap_rng_next(r);
    float s = (float)(v & 0xffff) + (float)(v >> 16 & 0xffff) + (float)(v >> 32 & 0xffff) + (float)(v >> 48);
    return (s / 65536.0f - 2.0f) * 1.7320508f;
}

void imcap_synth_render(const imcap_synth_scene *sc, unsigned char *rgb) {
    int S = sc->side;
    size_t np = (size_t)S * S;
    float *img = malloc(np * 3 * sizeof *img);
    imcap_rng r;
    imcap_rng_seed(&r, sc->render_seed);
    if (!img) { /* keep the contract (pixels written) even without memory: mid grey */
        memset(rgb, 128, np * 3);
        return;
    }
    gradient(img, S, &r);
    texture(img, S, &r);
    clutter(img, S, &r);
    for (int i = 0; i < sc->n; i++) draw_object(img, S, &sc->obj[i], &r);
    float sigma = (float)uni(&r, 1.5, 4.0);
    for (size_t i = 0; i < np; i++) {
        float lum = sigma * approx_normal(&r);
        for (int k = 0; k < 3; k++) {
            float v = img[3 * i + k] + lum + 0.5f * sigma * approx_normal(&r);
            rgb[3 * i + k] = (unsigned char)lrintf(clampf(v, 0, 255));
        }
    }
    free(img);
}
