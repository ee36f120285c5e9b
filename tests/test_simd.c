/* test_simd.c — the vectorised decoder kernels of src/kernels/simd.h, in
 * every build of simd_impl.c this CPU can run (imcap_simd_ops_get with
 * "avx512", "avx2", "generic"; the first one available is the reference
 * "table 0" the others are compared with).
 *
 *   simd_accuracy   imcap_vexp, imcap_vtanh, imcap_vsigmoid against the truth
 *                   computed in double (exp, tanh, 1 / (1 + exp(-x))) and
 *                   against glibc's float libm (expf, tanhf,
 *                   1 / (1 + expf(-x))), with the documented special ranges
 *                   (exp: 0 below -87.34, +inf above 88.38; tanh keeps the
 *                   sign and stays in [-1, 1]; sigmoid stays in [0, 1]).
 *                   Relative errors are in ulps of libm's float result (the
 *                   spacing of floats at expf(x), tanhf(x), 1/(1+expf(-x))).
 *                   Sampled run (the default, ~26 million values, OpenMP
 *                   threads): every multiple of 2^-20 in [-10, 10], every
 *                   509th float bit pattern of [-100, 100] (log-spaced:
 *                   ~16,500 per binade, down to the subnormals), the 8,192
 *                   smallest subnormals of each sign, and every float within
 *                   32,768 bit patterns of the points where the algorithm or
 *                   a threshold changes. IMCAP_SIMD_EXHAUSTIVE=1 takes every
 *                   float of [-100, 100] instead (2.2e9 values per function,
 *                   ~4 minutes each on 2 cores); the numbers in simd.h come
 *                   from that run, and the bounds below hold for it. Under
 *                   AddressSanitizer the sampled sweep is 4x coarser.
 *   simd_special    infinities, NaN, signed zeros, overflow and underflow at
 *                   every lane position of a 33-float call; lengths 0..65
 *                   around the 16-lane tail at every misalignment, inputs in
 *                   exactly-sized buffers (ASan sees a read past the end),
 *                   guard values around the outputs, in place.
 *   simd_tables     the AVX2 build gives the AVX-512 build's bits for every
 *                   function and shape; the portable build (no fused
 *                   multiply-add) stays within the measured bounds below.
 *                   (Without optimisation, as in meson's sanitizer build, GCC
 *                   fuses nothing: there all three builds give the same bits.)
 *   simd_rows       a row's result is bit-identical whether it is computed
 *                   alone or with up to 39 other rows (rows_affine,
 *                   attention_fused, lstm_cell): what lets imcap decode many
 *                   images together with exactly the one-at-a-time captions.
 *   simd_reference  rows_affine, attention_fused, lstm_cell against naive
 *                   double-precision versions.
 *
 * Every measured maximum is printed on stderr (meson test --print-errorlogs
 * or the test log shows it). */
#include <criterion/criterion.h>

#include "testutil.h"
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "kernels/simd.h"
#include "kernels/simd_ops.h"

/* ------------------------------------------------------------------ bounds
 * The maxima measured over every float of [-100, 100]
 * (IMCAP_SIMD_EXHAUSTIVE=1, the worst of the three tables; simd.h quotes
 * them) plus a small margin. In ulps of libm's result: */
#define EXP_ULP 1.05       /* imcap_vexp against exp(): 1.010 */
#define TANH_ULP_POLY 4.5  /* imcap_vtanh (a rational fit) against tanh(), |x| < 0.625: 4.372 */
#define TANH_ULP_EXP 7.0   /* |x| >= 0.625: 4.896 (generic, without fused multiply-adds, 6.882) */
#define SIG_ULP 2.55       /* imcap_vsigmoid where the result is >= FLT_MIN: 2.481 */
/* against libm's float result (quantised: the ulp distance of two floats) */
static const double LIBM_ULP[] = {1, 7, 4}; /* exp, tanh, sigmoid: measured 1, 5 (generic 7), 4 */
/* absolute errors */
#define EXP_ABS 5.2e-8  /* imcap_vexp for x <= 0 (results <= 1): 4.994e-8 */
#define TANH_ABS 4.2e-7 /* 2.918e-7 (generic 4.102e-7), near |x| = 5-6 where the fit is weakest */
#define SIG_ABS 9.2e-8  /* 8.931e-8 */
/* the portable build against the AVX builds, ulp distance of the results:
 * measured 1, 8, 4 (sigmoid: both within 2.5 ulp of the truth, on either side;
 * tanh: the rational fit's rounding differs without fused multiply-adds) */
static const double GEN_ULP_DIST[] = {1, 8, 4};
/* the thresholds documented in simd.h: exp gives 0 below EXP_LO, +inf above EXP_HI */
#define EXP_LO -87.3365448f
#define EXP_HI 88.3762626647949f
#define TANH_SWITCH 0.625f

/* ------------------------------------------------------------------ helpers */

static const char *const NAMES[] = {"avx512", "avx2", "generic"};

/* the tables this CPU runs, best first */
static int tables(const imcap_simd_ops **T) {
    int n = 0;
    for (int i = 0; i < 3; i++) {
        const imcap_simd_ops *t = imcap_simd_ops_get(NAMES[i]);
        if (t) T[n++] = t;
    }
    return n;
}
static int is_generic(const imcap_simd_ops *t) { return !strcmp(t->name, "generic"); }
/* two tables that must agree bit for bit: both vectorised with FMA */
static int must_match(const imcap_simd_ops *a, const imcap_simd_ops *b) { return !is_generic(a) && !is_generic(b); }

enum { FN_EXP, FN_TANH, FN_SIG, NFN };
static const char *const FN_NAMES[] = {"exp", "tanh", "sigmoid"};
typedef void (*elem_f)(float *, const float *, size_t);
static elem_f elem(const imcap_simd_ops *t, int fn) {
    return fn == FN_EXP ? t->vexp : fn == FN_TANH ? t->vtanh : t->vsigmoid;
}

static uint32_t bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static float from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
/* 1 / the spacing of floats at |v| (2^-149 for subnormals and 0) */
static double inv_ulp_of(float v) {
    uint32_t e = (bits(v) >> 23) & 0xff;
    if (e == 0) return 0x1p149;
    uint64_t d = (uint64_t)(150 - e + 1023) << 52;
    double r;
    memcpy(&r, &d, 8);
    return r;
}
/* floats as ordered integers: the ulp distance of a and b is |ord(a) - ord(b)| */
static int64_t ord(float f) {
    uint32_t u = bits(f);
    return (u & 0x80000000u) ? -(int64_t)(u & 0x7fffffffu) : (int64_t)u;
}
static double ulp_dist(float a, float b) {
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b) ? 0 : 1e30;
    return (double)llabs(ord(a) - ord(b));
}
static int same(float a, float b) { return bits(a) == bits(b) || (isnan(a) && isnan(b)); }

/* deterministic pseudo-random numbers in [lo, hi) (splitmix64) */
static uint64_t rng_state;
static double urand(double lo, double hi) { return tu_urand(&rng_state, lo, hi); }
static int irand(int lo, int hi) { return lo + (int)urand(0, hi - lo + 1); } /* [lo, hi] */
/* exactly n floats (ASan flags any access past them) */
static float *alloc_f(size_t n) {
    float *p = malloc((n ? n : 1) * sizeof *p);
    cr_assert(p);
    return p;
}
static float *rand_vec(size_t n, double lo, double hi) {
    float *v = alloc_f(n);
    for (size_t i = 0; i < n; i++) v[i] = (float)urand(lo, hi);
    return v;
}
static float *copy_f(const float *x, size_t n) {
    float *v = alloc_f(n);
    if (n) memcpy(v, x, n * sizeof *v);
    return v;
}
#define SENTINEL 0x7fc0dead /* a NaN no kernel produces */
static float *sentinel_vec(size_t n) {
    float *v = alloc_f(n);
    for (size_t i = 0; i < n; i++) v[i] = from_bits(SENTINEL);
    return v;
}

/* a maximum and where it was reached */
typedef struct {
    double v;
    float x;
} mx;
static void upd(mx *m, double v, float x) {
    if (v > m->v) m->v = v, m->x = x;
}
static void merge_mx(mx *m, mx o) {
    if (o.v > m->v) *m = o;
}

/* ------------------------------------------------------------------ accuracy */

/* The values swept: segments of k * 2^-20 (GRID) or of float bit patterns
 * lo, lo + step, ..., hi taken positive (POS) or negative (NEG). */
enum { GRID, POS, NEG };
typedef struct {
    int kind;
    uint32_t lo, hi, step;
} sweep_seg;
#define GRID_HALF (10u << 20) /* GRID: (u - GRID_HALF) * 2^-20, u in [0, 2 GRID_HALF] */
/* Under AddressSanitizer (meson's sanitizer build is -O0: the kernels run
 * ~30x slower) the sampled sweep is 4x coarser: every 4th multiple of 2^-20
 * and every 1021st bit pattern instead of every 509th. */
#if defined(__SANITIZE_ADDRESS__)
#define GRID_STEP 4
#define LOG_STEP 1021
#else
#define GRID_STEP 1
#define LOG_STEP 509
#endif
static size_t seg_count(const sweep_seg *s) { return (s->hi - s->lo) / s->step + 1; }
static float seg_value(const sweep_seg *s, size_t i) {
    uint32_t u = s->lo + (uint32_t)i * s->step;
    if (s->kind == GRID) return (float)(((double)u - GRID_HALF) * 0x1p-20);
    return from_bits(s->kind == NEG ? u | 0x80000000u : u);
}

static int sweep_segments(sweep_seg *s, int exhaustive) {
    const uint32_t top = bits(100.0f);
    int n = 0;
    if (exhaustive) {
        s[n++] = (sweep_seg){POS, 0, top, 1};
        s[n++] = (sweep_seg){NEG, 0, top, 1};
        return n;
    }
    s[n++] = (sweep_seg){GRID, 0, 2 * GRID_HALF, GRID_STEP};
    s[n++] = (sweep_seg){POS, 0, top, LOG_STEP};
    s[n++] = (sweep_seg){NEG, 0, top, LOG_STEP};
    s[n++] = (sweep_seg){POS, 0, 8191, 1};
    s[n++] = (sweep_seg){NEG, 0, 8191, 1};
    /* where the algorithm or a threshold changes: tanh's switch, FLT_MIN,
     * exp's flush to 0 and to +inf, libm's overflow, and 100 itself */
    const float edges[] = {TANH_SWITCH, FLT_MIN, -EXP_LO, EXP_HI, 88.72283935546875f, 100.0f};
    for (size_t e = 0; e < sizeof edges / sizeof *edges; e++) {
        uint32_t c = bits(edges[e]), lo = c - 32768, hi = c + 32768 > top ? top : c + 32768;
        s[n++] = (sweep_seg){POS, lo, hi, 1};
        s[n++] = (sweep_seg){NEG, lo, hi, 1};
    }
    return n;
}

enum { BLOCK = 4096, NREG = 2 };
typedef struct {
    mx ulp[NREG];      /* |got - truth| / ulp(libm), per region */
    mx ulp_libm[NREG]; /* |got - libm| / ulp(libm) */
    mx abs;            /* |got - truth| over the function's absolute domain */
    mx dist;           /* ulp distance to table 0's result */
    long nbad, ndiff;  /* documented results not honoured; results not table 0's bits */
    float xbad, xdiff;
} tstats;
typedef struct {
    tstats t[3];
    mx libm_ulp[NREG]; /* libm's own error against the truth */
    long n, nreg[NREG];
} fstats;

static void merge_fstats(fstats *a, const fstats *b) {
    for (int k = 0; k < 3; k++) {
        tstats *x = &a->t[k];
        const tstats *y = &b->t[k];
        for (int r = 0; r < NREG; r++) merge_mx(&x->ulp[r], y->ulp[r]), merge_mx(&x->ulp_libm[r], y->ulp_libm[r]);
        merge_mx(&x->abs, y->abs), merge_mx(&x->dist, y->dist);
        if (y->nbad && !x->nbad) x->xbad = y->xbad;
        if (y->ndiff && !x->ndiff) x->xdiff = y->xdiff;
        x->nbad += y->nbad, x->ndiff += y->ndiff;
    }
    for (int r = 0; r < NREG; r++) merge_mx(&a->libm_ulp[r], b->libm_ulp[r]), a->nreg[r] += b->nreg[r];
    a->n += b->n;
}

typedef struct {
    float x[BLOCK], libm[BLOCK], y[3][BLOCK];
    double truth[BLOCK];
} work;

/* One block of values through every table; what is documented for each
 * function decides the region (-1: relative error not measured), the
 * absolute domain and the results that count as wrong whatever the error.
 * Inlined once per function (fn a constant). */
static inline __attribute__((always_inline)) void measure_block_fn(const int fn, work *w, size_t n,
                                                                   const imcap_simd_ops *const *T, int nt, fstats *S) {
    for (size_t i = 0; i < n; i++) {
        float x = w->x[i];
        switch (fn) {
        case FN_EXP: w->truth[i] = exp((double)x), w->libm[i] = expf(x); break;
        case FN_TANH: w->truth[i] = tanh((double)x), w->libm[i] = tanhf(x); break;
        default: w->truth[i] = 1.0 / (1.0 + exp(-(double)x)), w->libm[i] = 1.0f / (1.0f + expf(-x)); break;
        }
    }
    for (int k = 0; k < nt; k++) elem(T[k], fn)(w->y[k], w->x, n);
    for (size_t i = 0; i < n; i++) {
        float x = w->x[i], l = w->libm[i];
        double t = w->truth[i], iu = inv_ulp_of(l);
        int reg, absdom;
        switch (fn) {
        case FN_EXP: reg = x >= EXP_LO && x <= EXP_HI && l >= FLT_MIN ? 0 : -1, absdom = x <= 0; break;
        case FN_TANH: reg = fabsf(x) < TANH_SWITCH ? 0 : 1, absdom = 1; break;
        default: reg = t >= FLT_MIN ? 0 : -1, absdom = 1; break;
        }
        S->n++;
        if (reg >= 0) S->nreg[reg]++, upd(&S->libm_ulp[reg], fabs(l - t) * iu, x);
        for (int k = 0; k < nt; k++) {
            float g = w->y[k][i];
            tstats *s = &S->t[k];
            if (k > 0 && !same(g, w->y[0][i])) {
                if (!s->ndiff++) s->xdiff = x;
                upd(&s->dist, ulp_dist(g, w->y[0][i]), x);
            }
            int bad;
            switch (fn) {
            case FN_EXP:
                bad = x > EXP_HI   ? !(g == INFINITY)
                      : x < EXP_LO ? !(g == 0 && !signbit(g))
                                   : !(g > 0 && isfinite(g));
                break;
            case FN_TANH: bad = isnan(g) || fabsf(g) > 1 || !signbit(g) != !signbit(x); break;
            default: bad = isnan(g) || g < 0 || g > 1; break;
            }
            if (bad) {
                if (!s->nbad++) s->xbad = x;
                continue;
            }
            if (reg >= 0) upd(&s->ulp[reg], fabs(g - t) * iu, x), upd(&s->ulp_libm[reg], fabs(g - l) * iu, x);
            if (absdom) upd(&s->abs, fabs(g - t), x);
        }
    }
}
static void measure_block(int fn, work *w, size_t n, const imcap_simd_ops *const *T, int nt, fstats *S) {
    switch (fn) {
    case FN_EXP: measure_block_fn(FN_EXP, w, n, T, nt, S); break;
    case FN_TANH: measure_block_fn(FN_TANH, w, n, T, nt, S); break;
    default: measure_block_fn(FN_SIG, w, n, T, nt, S); break;
    }
}

static void sweep(int fn, const sweep_seg *seg, int nseg, const imcap_simd_ops *const *T, int nt, fstats *S,
                  int threads) {
    size_t first[64], nblocks = 0;
    for (int s = 0; s < nseg; s++) first[s] = nblocks, nblocks += (seg_count(&seg[s]) + BLOCK - 1) / BLOCK;
    (void)threads;
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
#endif
    {
        fstats local;
        memset(&local, 0, sizeof local);
        work *w = malloc(sizeof *w);
        cr_assert(w);
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 8)
#endif
        for (size_t b = 0; b < nblocks; b++) {
            int s = 0;
            while (s + 1 < nseg && first[s + 1] <= b) s++;
            size_t i0 = (b - first[s]) * BLOCK, cnt = seg_count(&seg[s]) - i0;
            if (cnt > BLOCK) cnt = BLOCK;
            for (size_t i = 0; i < cnt; i++) w->x[i] = seg_value(&seg[s], i0 + i);
            measure_block(fn, w, cnt, T, nt, &local);
        }
#ifdef _OPENMP
#pragma omp critical
#endif
        merge_fstats(S, &local);
        free(w);
    }
}

static void accuracy(int fn) {
    const imcap_simd_ops *T[3];
    int nt = tables(T);
    const char *ex = getenv("IMCAP_SIMD_EXHAUSTIVE");
    int exhaustive = ex && *ex && strcmp(ex, "0");
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads(); /* OMP_NUM_THREADS, else every processor */
#endif
    sweep_seg seg[64];
    int nseg = sweep_segments(seg, exhaustive);
    fstats *S = calloc(1, sizeof *S);
    cr_assert(S);
    sweep(fn, seg, nseg, T, nt, S, threads);

    const double ulp_bound[NFN][NREG] = {{EXP_ULP, 0}, {TANH_ULP_POLY, TANH_ULP_EXP}, {SIG_ULP, 0}};
    const double abs_bound[NFN] = {EXP_ABS, TANH_ABS, SIG_ABS};
    const char *reg_name[NFN][NREG] = {{"[-87.34, 88.38]", NULL}, {"|x| < 0.625", "|x| >= 0.625"}, {"result >= FLT_MIN", NULL}};
    fprintf(stderr, "\n%s: %ld values of [-100, 100] (%s)\n", FN_NAMES[fn], S->n, exhaustive ? "every float" : "sampled");
    for (int r = 0; r < NREG; r++)
        if (reg_name[fn][r])
            fprintf(stderr, "  libm itself, %s (%ld values): %.3f ulp at x = %.9g\n", reg_name[fn][r], S->nreg[r],
                    S->libm_ulp[r].v, S->libm_ulp[r].x);
    for (int k = 0; k < nt; k++) {
        tstats *s = &S->t[k];
        for (int r = 0; r < NREG; r++) {
            if (!reg_name[fn][r]) continue;
            fprintf(stderr, "  %-7s %s: %.3f ulp at x = %.9g; against libm %.3f ulp at x = %.9g\n", T[k]->name,
                    reg_name[fn][r], s->ulp[r].v, s->ulp[r].x, s->ulp_libm[r].v, s->ulp_libm[r].x);
            cr_expect(s->ulp[r].v <= ulp_bound[fn][r], "%s %s %s: %.3f ulp at x = %.9g (bound %.2f)", FN_NAMES[fn],
                      T[k]->name, reg_name[fn][r], s->ulp[r].v, s->ulp[r].x, ulp_bound[fn][r]);
            cr_expect(s->ulp_libm[r].v <= LIBM_ULP[fn], "%s %s %s: %.3f ulp from libm at x = %.9g (bound %.0f)",
                      FN_NAMES[fn], T[k]->name, reg_name[fn][r], s->ulp_libm[r].v, s->ulp_libm[r].x, LIBM_ULP[fn]);
        }
        fprintf(stderr, "  %-7s absolute %.4g at x = %.9g%s\n", T[k]->name, s->abs.v, s->abs.x,
                fn == FN_EXP ? " (x <= 0)" : "");
        cr_expect(s->abs.v <= abs_bound[fn], "%s %s: absolute error %.4g at x = %.9g (bound %.2g)", FN_NAMES[fn],
                  T[k]->name, s->abs.v, s->abs.x, abs_bound[fn]);
        static const char *const expected[] = {"0 below -87.34, +inf above 88.38, else finite and > 0",
                                               "the sign of x, |y| <= 1, no NaN", "in [0, 1], no NaN"};
        cr_expect(s->nbad == 0, "%s %s: %ld results not %s, the first at x = %.9g (bits %08x)", FN_NAMES[fn],
                  T[k]->name, s->nbad, expected[fn], s->xbad, bits(s->xbad));
        if (k == 0) continue;
        fprintf(stderr, "  %-7s against %s: %ld results differ, at most %.0f ulp (x = %.9g)\n", T[k]->name, T[0]->name,
                s->ndiff, s->dist.v, s->dist.x);
        if (must_match(T[k], T[0]))
            cr_expect(s->ndiff == 0, "%s: %s and %s differ in %ld results, first at x = %.9g (by up to %.0f ulp)",
                      FN_NAMES[fn], T[k]->name, T[0]->name, s->ndiff, s->xdiff, s->dist.v);
        else
            cr_expect(s->dist.v <= GEN_ULP_DIST[fn], "%s: %s is %.0f ulp from %s at x = %.9g (bound %.0f)",
                      FN_NAMES[fn], T[k]->name, s->dist.v, T[0]->name, s->dist.x, GEN_ULP_DIST[fn]);
    }
    free(S);
}

Test(simd_accuracy, exp) { accuracy(FN_EXP); }
Test(simd_accuracy, tanh) { accuracy(FN_TANH); }
Test(simd_accuracy, sigmoid) { accuracy(FN_SIG); }

/* ------------------------------------------------------------------ special values */

typedef struct {
    int fn;
    float x, want; /* want NaN: any NaN; otherwise these exact bits (signed zeros) */
} special;

Test(simd_special, values_at_every_lane) {
    const special cases[] = {
        {FN_EXP, -INFINITY, 0.0f},     {FN_EXP, INFINITY, INFINITY}, {FN_EXP, NAN, NAN},
        {FN_EXP, -NAN, NAN},           {FN_EXP, -1000, 0.0f},        {FN_EXP, 1000, INFINITY},
        {FN_EXP, 0.0f, 1},             {FN_EXP, -0.0f, 1},           {FN_EXP, -90, 0.0f},
        {FN_TANH, -INFINITY, -1},      {FN_TANH, INFINITY, 1},       {FN_TANH, 0.0f, 0.0f},
        {FN_TANH, -0.0f, -0.0f},       {FN_TANH, NAN, NAN},          {FN_TANH, -NAN, NAN},
        {FN_TANH, 1000, 1},            {FN_TANH, -1000, -1},         {FN_TANH, 1e-40f, 1e-40f},
        {FN_TANH, -1e-40f, -1e-40f},   {FN_TANH, FLT_MIN, FLT_MIN},  {FN_TANH, -FLT_MIN, -FLT_MIN},
        {FN_SIG, INFINITY, 1},         {FN_SIG, -INFINITY, 0.0f},    {FN_SIG, NAN, NAN},
        {FN_SIG, -NAN, NAN},           {FN_SIG, 0.0f, 0.5f},         {FN_SIG, -0.0f, 0.5f},
        {FN_SIG, 1000, 1},             {FN_SIG, -1000, 0.0f},
    };
    enum { LEN = 33 };
    const imcap_simd_ops *T[3];
    int nt = tables(T);
    rng_state = 1;
    float x[LEN], base[LEN], y[LEN];
    for (int i = 0; i < LEN; i++) x[i] = (float)urand(-3, 3);
    for (int k = 0; k < nt; k++)
        for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
            const special *sc = &cases[c];
            elem_f f = elem(T[k], sc->fn);
            f(base, x, LEN);
            int nwrong = 0, first = -1, nleak = 0;
            float got = 0;
            for (int p = 0; p < LEN; p++) {
                float xs[LEN];
                memcpy(xs, x, sizeof xs);
                xs[p] = sc->x;
                f(y, xs, LEN);
                int ok = isnan(sc->want) ? isnan(y[p]) : bits(y[p]) == bits(sc->want);
                if (!ok && !nwrong++) first = p, got = y[p];
                for (int j = 0; j < LEN; j++) nleak += j != p && !same(y[j], base[j]);
            }
            cr_expect(nwrong == 0, "%s %s(%g) = %g (bits %08x), expected %g (bits %08x), at %d of %d lanes (first %d)",
                      T[k]->name, FN_NAMES[sc->fn], sc->x, got, bits(got), sc->want, bits(sc->want), nwrong, LEN,
                      first);
            cr_expect(nleak == 0, "%s %s(%g) changed %d results in other lanes", T[k]->name, FN_NAMES[sc->fn], sc->x,
                      nleak);
        }
}

Test(simd_special, lengths_alignment_in_place) {
    const imcap_simd_ops *T[3];
    int nt = tables(T);
    rng_state = 2;
    enum { MAXLEN = 65, GUARD = 16 };
    float vals[MAXLEN], ref[MAXLEN];
    for (int i = 0; i < MAXLEN; i++) vals[i] = (float)urand(-12, 12);
    for (int k = 0; k < nt; k++)
        for (int fn = 0; fn < NFN; fn++) {
            elem_f f = elem(T[k], fn);
            f(ref, vals, MAXLEN); /* every lane through the full-vector path but the last */
            for (int len = 0; len <= MAXLEN; len++)
                for (int off = 0; off < 16; off++) {
                    /* x ends exactly where its allocation ends */
                    void *xm = NULL, *ym = NULL;
                    cr_assert(!posix_memalign(&xm, 64, (size_t)(off + len + (off + len == 0)) * sizeof(float)));
                    cr_assert(!posix_memalign(&ym, 64, (size_t)(off + len + GUARD) * sizeof(float)));
                    float *xs = (float *)xm + off, *yb = ym, *ys = yb + off;
                    memcpy(xs, vals, (size_t)len * sizeof(float));
                    for (int i = 0; i < off + len + GUARD; i++) yb[i] = from_bits(SENTINEL);
                    f(ys, xs, (size_t)len);
                    for (int i = 0; i < len; i++)
                        cr_expect(same(ys[i], ref[i]), "%s %s, length %d at offset %d: [%d] = %.9g, expected %.9g",
                                  T[k]->name, FN_NAMES[fn], len, off, i, ys[i], ref[i]);
                    for (int i = 0; i < off; i++)
                        cr_expect(bits(yb[i]) == SENTINEL, "%s %s, length %d at offset %d: wrote before y", T[k]->name,
                                  FN_NAMES[fn], len, off);
                    for (int i = len; i < len + GUARD; i++)
                        cr_expect(bits(ys[i]) == SENTINEL, "%s %s, length %d at offset %d: wrote y[%d]", T[k]->name,
                                  FN_NAMES[fn], len, off, i);
                    /* in place */
                    f(xs, xs, (size_t)len);
                    for (int i = 0; i < len; i++)
                        cr_expect(same(xs[i], ref[i]), "%s %s in place, length %d at offset %d: [%d] = %.9g, expected %.9g",
                                  T[k]->name, FN_NAMES[fn], len, off, i, xs[i], ref[i]);
                    free(xm), free(ym);
                }
        }
}

Test(simd_special, dispatch) {
    const imcap_simd_ops *T[3];
    int nt = tables(T);
    cr_assert(nt >= 1 && is_generic(T[nt - 1]), "the generic table is always available");
    for (int k = 0; k < nt; k++) cr_expect_eq(T[k], imcap_simd_ops_get(T[k]->name));
    cr_expect_eq(imcap_simd_ops_get(NULL), T[0], "NULL picks the best table");
    cr_expect_str_eq(imcap_simd_name(), T[0]->name);
    cr_expect_null(imcap_simd_ops_get("sse9"));
    fprintf(stderr, "tables: ");
    for (int k = 0; k < nt; k++) fprintf(stderr, "%s%s", T[k]->name, k + 1 < nt ? ", " : "\n");
    /* the public entry points are table 0 */
    rng_state = 3;
    enum { LEN = 100 };
    float *x = rand_vec(LEN, -20, 20), a[LEN], b[LEN];
    void (*pub[NFN])(float *, const float *, size_t) = {imcap_vexp, imcap_vtanh, imcap_vsigmoid};
    for (int fn = 0; fn < NFN; fn++) {
        pub[fn](a, x, LEN);
        elem(T[0], fn)(b, x, LEN);
        cr_expect(!memcmp(a, b, sizeof a), "imcap_v%s is not %s's", FN_NAMES[fn], T[0]->name);
    }
    free(x);
}

/* ------------------------------------------------------------------ rows_affine cases */

typedef struct {
    int N, M, nseg, acc;
    imcap_mm_seg seg[3];
    float *w[3], *x[3], *b0, *b1;
    float *y0; /* acc: the values y holds before the call, [N, M] */
    size_t ldy;
} mm_case;

/* random weights and inputs in [-1, 1); k per segment in [1, 100], one in
 * four a multiple of 16; strides wider than k when pad; every buffer exactly
 * as long as the kernel may read. acc: y += the product (the table's
 * accumulate flag, imcap_rows_affine_acc: no biases). */
static void mm_make(mm_case *c, int N, int M, int nseg, int bias_mask, int pad, int acc) {
    memset(c, 0, sizeof *c);
    c->N = N, c->M = M, c->nseg = nseg, c->acc = acc;
    if (acc) bias_mask = 0, c->y0 = rand_vec((size_t)N * M, -1, 1);
    for (int s = 0; s < nseg; s++) {
        int k = irand(0, 3) == 0 ? 16 * irand(1, 6) : irand(1, 100);
        size_t ldw = (size_t)k + (pad ? irand(0, 5) : 0), ldx = (size_t)k + (pad ? irand(0, 5) : 0);
        c->w[s] = rand_vec((size_t)(M - 1) * ldw + k, -1, 1);
        c->x[s] = rand_vec((size_t)(N - 1) * ldx + k, -1, 1);
        c->seg[s] = (imcap_mm_seg){c->w[s], ldw, c->x[s], ldx, k};
    }
    c->b0 = bias_mask & 1 ? rand_vec(M, -1, 1) : NULL;
    c->b1 = bias_mask & 2 ? rand_vec(M, -1, 1) : NULL;
    c->ldy = (size_t)M + (pad ? 3 : 0);
}
static void mm_free(mm_case *c) {
    for (int s = 0; s < c->nseg; s++) free(c->w[s]), free(c->x[s]);
    free(c->b0), free(c->b1), free(c->y0);
}
static size_t mm_ysize(const mm_case *c) { return (size_t)(c->N - 1) * c->ldy + c->M; }
/* y (malloc'd) = the table's product (added onto y0 when acc); the padding
 * between rows must stay untouched */
static float *mm_run(const imcap_simd_ops *t, const mm_case *c) {
    float *y = sentinel_vec(mm_ysize(c));
    if (c->acc)
        for (int n = 0; n < c->N; n++) memcpy(y + n * c->ldy, c->y0 + (size_t)n * c->M, (size_t)c->M * sizeof *y);
    t->rows_affine(y, c->ldy, c->N, c->M, c->seg, c->nseg, c->b0, c->b1, c->acc);
    for (int n = 0; n < c->N; n++)
        for (size_t o = 0; o < c->ldy && n * c->ldy + o < mm_ysize(c); o++) {
            int written = bits(y[n * c->ldy + o]) != SENTINEL;
            cr_expect(written == (o < (size_t)c->M), "%s rows_affine N=%d M=%d: y[%d][%zu] %s", t->name, c->N, c->M,
                      n, o, written ? "written in the padding" : "not written");
        }
    return y;
}
/* the exact value of y[n][o] and sum |w x| + |b0| + |b1| (+ |y0| when acc) */
static double mm_ref(const mm_case *c, int n, int o, double *scale) {
    double s = 0, a = 0;
    for (int g = 0; g < c->nseg; g++) {
        const imcap_mm_seg *sg = &c->seg[g];
        for (int k = 0; k < sg->k; k++) {
            double p = (double)sg->w[o * sg->ldw + k] * sg->x[n * sg->ldx + k];
            s += p, a += fabs(p);
        }
    }
    if (c->b0) s += c->b0[o], a += fabs(c->b0[o]);
    if (c->b1) s += c->b1[o], a += fabs(c->b1[o]);
    if (c->acc) s += c->y0[(size_t)n * c->M + o], a += fabs(c->y0[(size_t)n * c->M + o]);
    *scale = a;
    return s;
}
static const char *mm_desc(const mm_case *c) {
    static char d[160];
    int p = snprintf(d, sizeof d, "N=%d M=%d k=", c->N, c->M);
    for (int s = 0; s < c->nseg; s++) p += snprintf(d + p, sizeof d - p, "%s%d", s ? "," : "", c->seg[s].k);
    snprintf(d + p, sizeof d - p, " b0%s b1%s%s", c->b0 ? "" : "=NULL", c->b1 ? "" : "=NULL", c->acc ? " accumulate" : "");
    return d;
}

/* the shapes of simd_tables and simd_reference: every N in 1..40 with each
 * segment count, M cycling through the tail cases and random */
static const int MS[] = {1, 2, 3, 4, 5, 7, 15, 16, 17, 31, 33, 47, 64, 70};
#define NMS ((int)(sizeof MS / sizeof *MS))
typedef void (*mm_visit)(const mm_case *c, const imcap_simd_ops *const *T, int nt, void *ctx);
static void mm_shapes(mm_visit visit, void *ctx) {
    const imcap_simd_ops *T[3];
    int nt = tables(T);
    for (int nseg = 1; nseg <= 3; nseg++)
        for (int N = 1; N <= 40; N++)
            for (int r = 0; r < 3; r++) {
                int M = r == 0 ? MS[(N + nseg) % NMS] : irand(1, 70);
                mm_case c;
                mm_make(&c, N, M, nseg, (N + r) & 3, (N + r + nseg) & 1, (N + r) % 5 == 0);
                visit(&c, T, nt, ctx);
                mm_free(&c);
            }
}

/* ------------------------------------------------------------------ attention, lstm cases */

typedef struct {
    int L, A, D;
    float *a, *p, *q, *w, b;
} att_case;
static void att_make(att_case *c, int L, int A, int D) {
    c->L = L, c->A = A, c->D = D;
    c->a = rand_vec((size_t)L * D, -1, 1);
    c->p = rand_vec((size_t)L * A, -2, 2);
    c->q = rand_vec(A, -2, 2);
    c->w = rand_vec(A, -1, 1);
    c->b = (float)urand(-1, 1);
}
static void att_free(att_case *c) { free(c->a), free(c->p), free(c->q), free(c->w); }
typedef struct {
    float *ctx, *alpha, *tanh_pq;
} att_out;
/* outputs in exactly-sized buffers prefilled with the sentinel; tanh_pq
 * NULL unless keep */
static att_out att_run(const imcap_simd_ops *t, const att_case *c, int keep) {
    att_out o = {sentinel_vec(c->D), sentinel_vec(c->L), keep ? sentinel_vec((size_t)c->L * c->A) : NULL};
    t->attention_fused(o.ctx, o.alpha, o.tanh_pq, c->a, c->p, c->q, c->w, c->b, c->L, c->A, c->D);
    return o;
}
static void att_out_free(att_out *o) { free(o->ctx), free(o->alpha), free(o->tanh_pq); }
static const int ATT_L[] = {1, 5, 16, 17, 64}, ATT_A[] = {1, 16, 100, 128}, ATT_D[] = {1, 66};

typedef struct {
    int N, H;
    float *gates, *c_prev; /* gates: the pre-activations, [N, 4H] */
} lstm_case;
typedef struct {
    float *h, *c, *tanh_c, *gates;
} lstm_out;
static lstm_out lstm_run(const imcap_simd_ops *t, const lstm_case *lc) {
    size_t nh = (size_t)lc->N * lc->H;
    lstm_out o = {sentinel_vec(nh), sentinel_vec(nh), sentinel_vec(nh), copy_f(lc->gates, 4 * nh)};
    t->lstm_cell(o.h, o.c, o.tanh_c, o.gates, lc->c_prev, lc->N, lc->H);
    return o;
}
static void lstm_out_free(lstm_out *o) { free(o->h), free(o->c), free(o->tanh_c), free(o->gates); }
static const int LSTM_N[] = {1, 2, 3, 5, 8}, LSTM_H[] = {1, 2, 15, 16, 17, 33, 64, 100};

/* ------------------------------------------------------------------ tables agree */

/* relative distance of the portable build's products to the AVX ones,
 * |y_gen - y_avx| / sum |w x|: measured 1.1e-7 at most */
#define GEN_MM_REL 3e-7
/* absolute distances of the portable build's attention and LSTM outputs
 * (all O(1)) to the AVX ones: measured 4.9e-7 and 2.4e-7 */
#define GEN_ATT_ABS 1e-6
#define GEN_LSTM_ABS 5e-7

typedef struct {
    double gen_rel;
    long cases, mismatches;
} mm_tables_ctx;
static void mm_tables_visit(const mm_case *c, const imcap_simd_ops *const *T, int nt, void *vctx) {
    mm_tables_ctx *ctx = vctx;
    float *y0 = mm_run(T[0], c);
    for (int k = 1; k < nt; k++) {
        float *y = mm_run(T[k], c);
        for (int n = 0; n < c->N; n++)
            for (int o = 0; o < c->M; o++) {
                float a = y[n * c->ldy + o], b = y0[n * c->ldy + o];
                if (must_match(T[k], T[0])) {
                    if (!same(a, b)) ctx->mismatches++;
                    cr_expect(same(a, b), "rows_affine %s: %s y[%d][%d] = %.9g, %s %.9g", mm_desc(c), T[k]->name, n,
                              o, a, T[0]->name, b);
                } else {
                    double scale;
                    mm_ref(c, n, o, &scale);
                    double rel = fabs((double)a - b) / (scale > 0 ? scale : 1);
                    if (rel > ctx->gen_rel) ctx->gen_rel = rel;
                    cr_expect(rel <= GEN_MM_REL, "rows_affine %s: %s y[%d][%d] = %.9g, %s %.9g (%.3g of sum|wx|)",
                              mm_desc(c), T[k]->name, n, o, a, T[0]->name, b, rel);
                }
            }
        free(y);
    }
    ctx->cases++;
    free(y0);
}

Test(simd_tables, rows_affine) {
    rng_state = 10;
    mm_tables_ctx ctx = {0};
    mm_shapes(mm_tables_visit, &ctx);
    fprintf(stderr, "rows_affine: %ld shapes; AVX tables differ in %ld results; generic at most %.3g of sum|wx|\n",
            ctx.cases, ctx.mismatches, ctx.gen_rel);
}

static void cmp_arrays(const char *what, const float *a, const float *b, size_t n, int exact, double tol, double *maxd,
                       const char *desc) {
    for (size_t i = 0; i < n; i++) {
        if (exact) {
            cr_expect(same(a[i], b[i]), "%s %s[%zu] = %.9g, expected the bits of %.9g", desc, what, i, a[i], b[i]);
        } else {
            double d = fabs((double)a[i] - b[i]);
            if (isnan(d)) d = INFINITY;
            if (d > *maxd) *maxd = d;
            cr_expect(d <= tol, "%s %s[%zu] = %.9g, expected %.9g within %g", desc, what, i, a[i], b[i], tol);
        }
    }
}

Test(simd_tables, attention_fused) {
    const imcap_simd_ops *T[3];
    int nt = tables(T);
    rng_state = 11;
    double gen = 0;
    for (size_t li = 0; li < sizeof ATT_L / sizeof *ATT_L; li++)
        for (size_t ai = 0; ai < sizeof ATT_A / sizeof *ATT_A; ai++)
            for (size_t di = 0; di < sizeof ATT_D / sizeof *ATT_D; di++)
                for (int keep = 0; keep <= 1; keep++) {
                    att_case c;
                    att_make(&c, ATT_L[li], ATT_A[ai], ATT_D[di]);
                    att_out o0 = att_run(T[0], &c, keep);
                    for (int k = 1; k < nt; k++) {
                        att_out o = att_run(T[k], &c, keep);
                        int ex = must_match(T[k], T[0]);
                        char desc[96];
                        snprintf(desc, sizeof desc, "%s vs %s, L=%d A=%d D=%d keep=%d:", T[k]->name, T[0]->name, c.L,
                                 c.A, c.D, keep);
                        cmp_arrays("ctx", o.ctx, o0.ctx, c.D, ex, GEN_ATT_ABS, &gen, desc);
                        cmp_arrays("alpha", o.alpha, o0.alpha, c.L, ex, GEN_ATT_ABS, &gen, desc);
                        if (keep)
                            cmp_arrays("tanh_pq", o.tanh_pq, o0.tanh_pq, (size_t)c.L * c.A, ex, GEN_ATT_ABS, &gen,
                                       desc);
                        att_out_free(&o);
                    }
                    /* keeping tanh_pq changes nothing else */
                    if (keep) {
                        att_out o = att_run(T[0], &c, 0);
                        char desc[64];
                        snprintf(desc, sizeof desc, "%s L=%d A=%d D=%d, tanh_pq NULL:", T[0]->name, c.L, c.A, c.D);
                        cmp_arrays("ctx", o.ctx, o0.ctx, c.D, 1, 0, &gen, desc);
                        cmp_arrays("alpha", o.alpha, o0.alpha, c.L, 1, 0, &gen, desc);
                        att_out_free(&o);
                    }
                    att_out_free(&o0);
                    att_free(&c);
                }
    fprintf(stderr, "attention_fused: generic at most %.3g from the AVX tables\n", gen);
}

Test(simd_tables, lstm_cell) {
    const imcap_simd_ops *T[3];
    int nt = tables(T);
    rng_state = 12;
    double gen = 0;
    for (size_t ni = 0; ni < sizeof LSTM_N / sizeof *LSTM_N; ni++)
        for (size_t hi = 0; hi < sizeof LSTM_H / sizeof *LSTM_H; hi++) {
            lstm_case lc = {LSTM_N[ni], LSTM_H[hi], NULL, NULL};
            size_t nh = (size_t)lc.N * lc.H;
            lc.gates = rand_vec(4 * nh, -8, 8);
            lc.c_prev = rand_vec(nh, -3, 3);
            lstm_out o0 = lstm_run(T[0], &lc);
            for (int k = 1; k < nt; k++) {
                lstm_out o = lstm_run(T[k], &lc);
                int ex = must_match(T[k], T[0]);
                char desc[64];
                snprintf(desc, sizeof desc, "%s vs %s, N=%d H=%d:", T[k]->name, T[0]->name, lc.N, lc.H);
                cmp_arrays("h", o.h, o0.h, nh, ex, GEN_LSTM_ABS, &gen, desc);
                cmp_arrays("c", o.c, o0.c, nh, ex, GEN_LSTM_ABS, &gen, desc);
                cmp_arrays("tanh_c", o.tanh_c, o0.tanh_c, nh, ex, GEN_LSTM_ABS, &gen, desc);
                cmp_arrays("gates", o.gates, o0.gates, 4 * nh, ex, GEN_LSTM_ABS, &gen, desc);
                lstm_out_free(&o);
            }
            lstm_out_free(&o0);
            free(lc.gates), free(lc.c_prev);
        }
    fprintf(stderr, "lstm_cell: generic at most %.3g from the AVX tables\n", gen);
}

/* ------------------------------------------------------------------ row independence */

Test(simd_rows, rows_affine) {
    const imcap_simd_ops *T[3];
    int nt = tables(T);
    rng_state = 20;
    long rows = 0;
    for (int k = 0; k < nt; k++)
        for (int nseg = 1; nseg <= 3; nseg++)
            for (int N = 1; N <= 40; N++) {
                mm_case c;
                mm_make(&c, N, irand(1, 70), nseg, N & 3, N & 1, N % 5 == 0);
                float *y = mm_run(T[k], &c);
                for (int n = 0; n < N; n++) {
                    /* the row alone, copied to a fresh buffer at another alignment */
                    mm_case one = c;
                    one.N = 1;
                    if (c.acc) one.y0 = c.y0 + (size_t)n * c.M;
                    float *xr[3];
                    for (int s = 0; s < nseg; s++) {
                        int off = n % 4;
                        xr[s] = alloc_f((size_t)off + c.seg[s].k);
                        memcpy(xr[s] + off, c.x[s] + (size_t)n * c.seg[s].ldx, (size_t)c.seg[s].k * sizeof(float));
                        one.seg[s].x = xr[s] + off;
                    }
                    float *y1 = mm_run(T[k], &one);
                    for (int o = 0; o < c.M; o++)
                        cr_expect(same(y1[o], y[n * c.ldy + o]),
                                  "%s rows_affine %s: row %d alone gives y[%d] = %.9g, with the others %.9g",
                                  T[k]->name, mm_desc(&c), n, o, y1[o], y[n * c.ldy + o]);
                    for (int s = 0; s < nseg; s++) free(xr[s]);
                    free(y1);
                    rows++;
                }
                free(y);
                mm_free(&c);
            }
    fprintf(stderr, "rows_affine: %ld rows checked alone against within N = 1..40\n", rows);
}

Test(simd_rows, attention_fused) {
    /* Q queries against the same annotations, one call each: into slices of
     * shared output arrays prefilled with one value, and alone into fresh
     * buffers prefilled with another; alpha is scratch too, so nothing
     * left in it may leak into the result. */
    const imcap_simd_ops *T[3];
    int nt = tables(T);
    rng_state = 21;
    enum { Q = 40 };
    for (int k = 0; k < nt; k++)
        for (size_t li = 0; li < sizeof ATT_L / sizeof *ATT_L; li++) {
            att_case c;
            att_make(&c, ATT_L[li], ATT_A[(li + k) % 4], 66);
            float *qs = rand_vec((size_t)Q * c.A, -2, 2);
            float *ctx = alloc_f((size_t)Q * c.D), *alpha = alloc_f((size_t)Q * c.L),
                  *tq = alloc_f((size_t)Q * c.L * c.A);
            for (size_t i = 0; i < (size_t)Q * c.L; i++) alpha[i] = 1e30f;
            for (int j = 0; j < Q; j++)
                T[k]->attention_fused(ctx + (size_t)j * c.D, alpha + (size_t)j * c.L, tq + (size_t)j * c.L * c.A, c.a,
                                      c.p, qs + (size_t)j * c.A, c.w, c.b, c.L, c.A, c.D);
            for (int j = Q - 1; j >= 0; j--) {
                float *q0 = c.q;
                c.q = copy_f(qs + (size_t)j * c.A, c.A);
                att_out o = att_run(T[k], &c, j & 1);
                char desc[96];
                snprintf(desc, sizeof desc, "%s L=%d A=%d, query %d alone:", T[k]->name, c.L, c.A, j);
                cmp_arrays("ctx", o.ctx, ctx + (size_t)j * c.D, c.D, 1, 0, NULL, desc);
                cmp_arrays("alpha", o.alpha, alpha + (size_t)j * c.L, c.L, 1, 0, NULL, desc);
                if (o.tanh_pq) cmp_arrays("tanh_pq", o.tanh_pq, tq + (size_t)j * c.L * c.A, (size_t)c.L * c.A, 1, 0, NULL, desc);
                att_out_free(&o);
                free(c.q);
                c.q = q0;
            }
            free(qs), free(ctx), free(alpha), free(tq);
            att_free(&c);
        }
}

Test(simd_rows, lstm_cell) {
    const imcap_simd_ops *T[3];
    int nt = tables(T);
    rng_state = 22;
    for (int k = 0; k < nt; k++)
        for (int N = 1; N <= 40; N++) {
            int H = LSTM_H[N % 8];
            lstm_case lc = {N, H, rand_vec((size_t)4 * N * H, -8, 8), rand_vec((size_t)N * H, -3, 3)};
            lstm_out all = lstm_run(T[k], &lc);
            for (int n = 0; n < N; n++) {
                lstm_case one = {1, H, copy_f(lc.gates + (size_t)n * 4 * H, 4 * (size_t)H),
                                 copy_f(lc.c_prev + (size_t)n * H, H)};
                lstm_out o = lstm_run(T[k], &one);
                char desc[80];
                snprintf(desc, sizeof desc, "%s lstm_cell N=%d H=%d, row %d alone:", T[k]->name, N, H, n);
                size_t r = (size_t)n * H;
                cmp_arrays("h", o.h, all.h + r, H, 1, 0, NULL, desc);
                cmp_arrays("c", o.c, all.c + r, H, 1, 0, NULL, desc);
                cmp_arrays("tanh_c", o.tanh_c, all.tanh_c + r, H, 1, 0, NULL, desc);
                cmp_arrays("gates", o.gates, all.gates + 4 * r, 4 * (size_t)H, 1, 0, NULL, desc);
                lstm_out_free(&o);
                free(one.gates), free(one.c_prev);
            }
            lstm_out_free(&all);
            free(lc.gates), free(lc.c_prev);
        }
}

/* ------------------------------------------------------------------ against double precision */

/* |y - exact| / (sum |w x| + |b0| + |b1| (+ |y0|)): float sums of <= 300
 * terms; measured 1.2e-7 */
#define REF_MM_REL 1e-5
/* attention: tanh_pq against tanh of the same float p + q (imcap_vtanh's
 * bound); alpha and ctx (all O(1)) against the double computation from p,
 * q: measured 1.9e-7 and 3.8e-7 */
#define REF_TANH_ABS TANH_ABS
#define REF_ALPHA_ABS 1e-6
#define REF_CTX_ABS 1e-6
/* lstm_cell: the activated gates (the elementwise bounds), and c, tanh(c),
 * h (|c| <= 4): measured 4.3e-7 */
#define REF_GATE_ABS TANH_ABS /* the larger of the sigmoid and tanh bounds */
#define REF_CELL_ABS 1e-6

typedef struct {
    double rel;
} mm_ref_ctx;
static void mm_ref_visit(const mm_case *c, const imcap_simd_ops *const *T, int nt, void *vctx) {
    mm_ref_ctx *ctx = vctx;
    for (int k = 0; k < nt; k++) {
        float *y = mm_run(T[k], c);
        for (int n = 0; n < c->N; n++)
            for (int o = 0; o < c->M; o++) {
                double scale, want = mm_ref(c, n, o, &scale), got = y[n * c->ldy + o];
                double rel = fabs(got - want) / (scale > 0 ? scale : 1);
                if (isnan(rel)) rel = INFINITY;
                if (rel > ctx->rel) ctx->rel = rel;
                cr_expect(rel <= REF_MM_REL, "%s rows_affine %s: y[%d][%d] = %.9g, exact %.9g (%.3g of sum|wx|)",
                          T[k]->name, mm_desc(c), n, o, got, want, rel);
            }
        free(y);
    }
}

Test(simd_reference, rows_affine) {
    rng_state = 30;
    mm_ref_ctx ctx = {0};
    mm_shapes(mm_ref_visit, &ctx);
    fprintf(stderr, "rows_affine: at most %.3g of sum|wx| from the exact product\n", ctx.rel);
}

static void cmp_double(const char *what, const float *got, const double *want, size_t n, double tol, double *maxd,
                       const char *desc) {
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (isnan(d)) d = INFINITY;
        if (d > *maxd) *maxd = d;
        cr_expect(d <= tol, "%s %s[%zu] = %.9g, expected %.9g within %g", desc, what, i, got[i], want[i], tol);
    }
}

Test(simd_reference, attention_fused) {
    const imcap_simd_ops *T[3];
    int nt = tables(T);
    rng_state = 31;
    double mt = 0, ma = 0, mc = 0;
    for (size_t li = 0; li < sizeof ATT_L / sizeof *ATT_L; li++)
        for (size_t ai = 0; ai < sizeof ATT_A / sizeof *ATT_A; ai++)
            for (size_t di = 0; di < sizeof ATT_D / sizeof *ATT_D; di++) {
                att_case c;
                att_make(&c, ATT_L[li], ATT_A[ai], ATT_D[di]);
                int L = c.L, A = c.A, D = c.D;
                double *t = malloc(sizeof(double) * L * A), *e = malloc(sizeof(double) * L),
                       *ctx = calloc(D, sizeof(double)), m = -INFINITY, sum = 0;
                for (int i = 0; i < L; i++) {
                    e[i] = c.b;
                    for (int j = 0; j < A; j++) {
                        t[i * A + j] = tanh((double)(float)(c.p[i * A + j] + c.q[j]));
                        e[i] += (double)c.w[j] * tanh((double)c.p[i * A + j] + c.q[j]);
                    }
                    m = fmax(m, e[i]);
                }
                for (int i = 0; i < L; i++) sum += (e[i] = exp(e[i] - m));
                for (int i = 0; i < L; i++) {
                    e[i] /= sum;
                    for (int d = 0; d < D; d++) ctx[d] += e[i] * c.a[i * D + d];
                }
                for (int k = 0; k < nt; k++) {
                    att_out o = att_run(T[k], &c, 1);
                    char desc[64];
                    snprintf(desc, sizeof desc, "%s attention L=%d A=%d D=%d:", T[k]->name, L, A, D);
                    cmp_double("tanh_pq", o.tanh_pq, t, (size_t)L * A, REF_TANH_ABS, &mt, desc);
                    cmp_double("alpha", o.alpha, e, L, REF_ALPHA_ABS, &ma, desc);
                    cmp_double("ctx", o.ctx, ctx, D, REF_CTX_ABS, &mc, desc);
                    att_out_free(&o);
                }
                free(t), free(e), free(ctx);
                att_free(&c);
            }
    fprintf(stderr, "attention_fused against double: tanh_pq %.3g, alpha %.3g, ctx %.3g\n", mt, ma, mc);
}

static double sig_d(double x) { return 1.0 / (1.0 + exp(-x)); }

Test(simd_reference, lstm_cell) {
    const imcap_simd_ops *T[3];
    int nt = tables(T);
    rng_state = 32;
    double mg = 0, mcell = 0;
    for (size_t ni = 0; ni < sizeof LSTM_N / sizeof *LSTM_N; ni++)
        for (size_t hi = 0; hi < sizeof LSTM_H / sizeof *LSTM_H; hi++) {
            int N = LSTM_N[ni], H = LSTM_H[hi];
            size_t nh = (size_t)N * H;
            lstm_case lc = {N, H, rand_vec(4 * nh, -8, 8), rand_vec(nh, -3, 3)};
            double *g = malloc(sizeof(double) * 4 * nh), *cc = malloc(sizeof(double) * nh),
                   *tc = malloc(sizeof(double) * nh), *h = malloc(sizeof(double) * nh);
            for (int n = 0; n < N; n++)
                for (int j = 0; j < H; j++) {
                    const float *pre = lc.gates + (size_t)n * 4 * H;
                    double *gn = g + (size_t)n * 4 * H;
                    gn[j] = sig_d(pre[j]);                   /* i */
                    gn[H + j] = sig_d(pre[H + j]);           /* f */
                    gn[2 * H + j] = tanh((double)pre[2 * H + j]); /* g */
                    gn[3 * H + j] = sig_d(pre[3 * H + j]);   /* o */
                    size_t r = (size_t)n * H + j;
                    cc[r] = gn[H + j] * lc.c_prev[r] + gn[j] * gn[2 * H + j];
                    tc[r] = tanh(cc[r]);
                    h[r] = gn[3 * H + j] * tc[r];
                }
            for (int k = 0; k < nt; k++) {
                lstm_out o = lstm_run(T[k], &lc);
                char desc[64];
                snprintf(desc, sizeof desc, "%s lstm_cell N=%d H=%d:", T[k]->name, N, H);
                cmp_double("gates", o.gates, g, 4 * nh, REF_GATE_ABS, &mg, desc);
                cmp_double("c", o.c, cc, nh, REF_CELL_ABS, &mcell, desc);
                cmp_double("tanh_c", o.tanh_c, tc, nh, REF_CELL_ABS, &mcell, desc);
                cmp_double("h", o.h, h, nh, REF_CELL_ABS, &mcell, desc);
                lstm_out_free(&o);
            }
            free(g), free(cc), free(tc), free(h);
            free(lc.gates), free(lc.c_prev);
        }
    fprintf(stderr, "lstm_cell against double: gates %.3g, c/tanh_c/h %.3g\n", mg, mcell);
}

/* ---- imcap_gemm (outer form), the optimiser's loops */

/* C (+)= A B + bias with A given by strides: against double, every table;
 * AVX2 = AVX-512 bit for bit; a column's value does not depend on how many
 * columns share the call (the property the encoder's batches rely on). */
Test(simd_tables, gemm) {
    const imcap_simd_ops *T[3];
    int nt = tables(T);
    const int shapes[][3] = {{1, 1, 1}, {6, 32, 27}, {7, 33, 5}, {16, 100, 144}, {3, 17, 1}, {13, 65, 40}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
        for (int trans = 0; trans < 2; trans++)
            for (int acc = 0; acc < 2; acc++) {
                int M = shapes[si][0], N = shapes[si][1], K = shapes[si][2];
                size_t ldc = (size_t)N + 3, ldb = (size_t)N + 1;
                float *a = rand_vec((size_t)M * K, -1, 1), *B = rand_vec((size_t)K * ldb, -1, 1);
                float *bias = rand_vec((size_t)M, -1, 1), *C0 = rand_vec((size_t)M * ldc, -1, 1);
                size_t ars = trans ? 1 : (size_t)K, acs = trans ? (size_t)M : 1;
                float *out[3];
                for (int t = 0; t < nt; t++) {
                    out[t] = copy_f(C0, (size_t)M * ldc);
                    T[t]->gemm(out[t], ldc, a, ars, acs, B, ldb, M, N, K, bias, acc);
                    for (int m = 0; m < M; m++)
                        for (int n = 0; n < N; n++) {
                            double s = 0, mag = 0;
                            for (int k = 0; k < K; k++) {
                                double p = (double)a[m * ars + k * acs] * B[(size_t)k * ldb + n];
                                s += p, mag += fabs(p);
                            }
                            double want = (acc ? C0[m * ldc + n] : 0.0) + s + bias[m];
                            mag += fabs(bias[m]) + (acc ? fabs(C0[m * ldc + n]) : 0.0);
                            cr_assert(fabs(out[t][m * ldc + n] - want) <= 3e-7 * mag + 1e-30,
                                      "%s gemm %dx%dx%d trans %d acc %d at (%d,%d): %g, want %g", T[t]->name, M, N, K,
                                      trans, acc, m, n, out[t][m * ldc + n], want);
                        }
                    for (int m = 0; m < M; m++) /* the padding between rows is untouched */
                        for (size_t n = (size_t)N; n < ldc; n++) cr_assert(same(out[t][m * ldc + n], C0[m * ldc + n]));
                    /* one column alone gives that column's bits */
                    for (int n = 0; n < N; n += 1 + N / 4) {
                        float *one = alloc_f((size_t)M), *bcol = alloc_f((size_t)K);
                        for (int k = 0; k < K; k++) bcol[k] = B[(size_t)k * ldb + n];
                        for (int m = 0; m < M; m++) one[m] = C0[m * ldc + n];
                        T[t]->gemm(one, 1, a, ars, acs, bcol, 1, M, 1, K, bias, acc);
                        for (int m = 0; m < M; m++)
                            cr_assert(same(one[m], out[t][m * ldc + n]), "%s gemm: column %d alone differs", T[t]->name,
                                      n);
                        free(one), free(bcol);
                    }
                }
                for (int t = 1; t < nt; t++)
                    if (must_match(T[0], T[t]))
                        for (size_t i = 0; i < (size_t)M * ldc; i++)
                            cr_assert(same(out[0][i], out[t][i]), "gemm: %s and %s differ", T[0]->name, T[t]->name);
                for (int t = 0; t < nt; t++) free(out[t]);
                free(a), free(B), free(bias), free(C0);
            }
}

/* The flat direct convolution (vectors across row ends, lanes outside the
 * row masked to +0) is the im2col product too, on every table: "same"
 * convs of 3, 5 and 7 taps, maps narrower than a vector, one pixel wide,
 * and taps in slices (large weights). */
Test(simd_tables, conv_direct_flat) {
    const imcap_simd_ops *T[3];
    int nt = tables(T);
    /* C, H, W, O, k (pad = k / 2) */
    const int shapes[][5] = {{3, 14, 14, 16, 3}, {5, 7, 7, 9, 3},  {2, 9, 5, 7, 5},    {4, 3, 1, 5, 3},
                             {2, 1, 20, 3, 7},   {6, 5, 13, 4, 3}, {64, 7, 7, 300, 3}}; /* the last: taps in slices */
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        int C = shapes[si][0], H = shapes[si][1], W = shapes[si][2], O = shapes[si][3], k = shapes[si][4], pad = k / 2;
        int K = C * k * k, P = H * W;
        size_t plane = (size_t)(H + 2 * pad) * W, ldc = (size_t)P + 5, lead = 16, n = lead + C * plane + pad + 32;
        float *in = rand_vec((size_t)C * H * W, -1, 1), *w = rand_vec((size_t)O * K, -1, 1);
        float *bias = rand_vec((size_t)O, -1, 1), *buf = alloc_f(n), *col = alloc_f((size_t)K * P);
        /* what the masked lanes read is NaN: a lane that leaked would show */
        for (size_t i = 0; i < n; i++) buf[i] = NAN;
        for (int c = 0; c < C; c++)
            for (int y = -pad; y < H + pad; y++)
                for (int x = 0; x < W; x++)
                    buf[lead + c * plane + (size_t)(y + pad) * W + x] = y < 0 || y >= H ? 0.0f : in[(c * H + y) * W + x];
        int32_t *koff = malloc(sizeof(int32_t) * K);
        uint8_t *tapx = malloc((size_t)K);
        cr_assert(koff && tapx);
        for (int c = 0, t = 0; c < C; c++)
            for (int ky = 0; ky < k; ky++)
                for (int kx = 0; kx < k; kx++, t++) {
                    koff[t] = (int32_t)(c * plane + (size_t)ky * W + kx), tapx[t] = (uint8_t)kx;
                    for (int p = 0; p < P; p++) {
                        int y = p / W + ky - pad, x = p % W + kx - pad;
                        col[(size_t)t * P + p] = y < 0 || y >= H || x < 0 || x >= W ? 0.0f : in[(c * H + y) * W + x];
                    }
                }
        for (int t = 0; t < nt; t++) {
            float *want = sentinel_vec((size_t)O * ldc), *got = sentinel_vec((size_t)O * ldc);
            T[t]->gemm(want, ldc, w, (size_t)K, 1, col, (size_t)P, O, P, K, bias, 0);
            T[t]->conv_direct_flat(got, ldc, w, O, K, buf + lead - pad, koff, tapx, k, pad, W, P, bias);
            for (size_t i = 0; i < (size_t)O * ldc; i++)
                cr_assert(same(got[i], want[i]), "%s conv_direct_flat C%d %dx%d O%d k%d: [%zu] = %.9g, gemm %.9g",
                          T[t]->name, C, H, W, O, k, i, got[i], want[i]);
            free(want), free(got);
        }
        free(in), free(w), free(bias), free(buf), free(col), free(koff), free(tapx);
    }
}

/* The product with B in panels is imcap_gemm with its operands swapped: a
 * conv computed transposed (out^T = col^T w^T) has the bits of the conv,
 * on every table, for pixel counts that split vectors and long k (slices). */
Test(simd_tables, gemm_p_is_the_transposed_gemm) {
    const imcap_simd_ops *T[3];
    int nt = tables(T);
    const int shapes[][3] = {{16, 49, 30}, {64, 49, 300}, {80, 9, 7}, {16, 1, 1}, {144, 36, 129}}; /* O, P, K */
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        int O = shapes[si][0], P = shapes[si][1], K = shapes[si][2];
        size_t ldb = (size_t)P + 3;
        float *w = rand_vec((size_t)O * K, -1, 1), *col = rand_vec((size_t)K * ldb, -1, 1);
        float *wp = alloc_f(imcap_panel_floats(O, K)), *want = alloc_f((size_t)O * P), *got = alloc_f((size_t)P * O);
        imcap_panel_put(wp, K, 0, 0, w, O, K);
        for (int t = 0; t < nt; t++) {
            T[t]->gemm(want, (size_t)P, w, (size_t)K, 1, col, ldb, O, P, K, NULL, 0);
            T[t]->gemm_p(got, (size_t)O, col, 1, ldb, wp, P, O, K, 0, K, 0, 1, NULL);
            for (int o = 0; o < O; o++)
                for (int p = 0; p < P; p++)
                    cr_assert(same(got[(size_t)p * O + o], want[(size_t)o * P + p]),
                              "%s gemm_p O%d P%d K%d at (%d,%d): %.9g, gemm %.9g", T[t]->name, O, P, K, o, p,
                              got[(size_t)p * O + o], want[(size_t)o * P + p]);
        }
        free(w), free(col), free(wp), free(want), free(got);
    }
}

/* A product split at any k (the first part left without its bias, the
 * second continuing from C and adding it) has the bits of the product in
 * one piece, on every table: the decoder keeps the LSTM gates' sums over
 * the embedding per word and continues them at every step. Rows of one
 * register block and of several, k in one slice and in many. */
Test(simd_tables, gemm_p_split_at_any_k_keeps_the_bits) {
    const imcap_simd_ops *T[3];
    int nt = tables(T);
    const int shapes[][3] = {{1, 1024, 386}, {3, 1024, 386}, {37, 200, 300}, {5, 70, 64}}; /* M rows, N, K */
    const int splits[] = {1, 17, 64, 65, 200};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        int M = shapes[si][0], N = shapes[si][1], K = shapes[si][2];
        size_t lda = (size_t)K + 5;
        float *w = rand_vec((size_t)N * K, -1, 1), *a = rand_vec((size_t)M * lda, -1, 1), *b = rand_vec((size_t)N, -1, 1);
        float *wp = alloc_f(imcap_panel_floats(N, K)), *want = alloc_f((size_t)M * N), *got = alloc_f((size_t)M * N);
        imcap_panel_put(wp, K, 0, 0, w, N, K);
        for (int t = 0; t < nt; t++) {
            T[t]->gemm_p(want, (size_t)N, a, lda, 1, wp, M, N, K, 0, K, 0, 1, b);
            for (size_t sp = 0; sp < sizeof splits / sizeof splits[0]; sp++) {
                int k = splits[sp];
                if (k >= K) continue;
                T[t]->gemm_p(got, (size_t)N, a, lda, 1, wp, M, N, K, 0, k, 0, 0, b);
                T[t]->gemm_p(got, (size_t)N, a, lda, 1, wp, M, N, K, k, K, 1, 1, b);
                for (size_t i = 0; i < (size_t)M * N; i++)
                    cr_assert(same(got[i], want[i]), "%s gemm_p M%d N%d K%d split at %d: [%zu] = %.9g, whole %.9g",
                              T[t]->name, M, N, K, k, i, got[i], want[i]);
            }
        }
        free(w), free(a), free(b), free(wp), free(want), free(got);
    }
}

/* The direct convolution is the im2col product without the matrix: every
 * table's conv_direct gives the bits of its own gemm over the im2col
 * matrix (the encoder's outputs must not depend on which path a layer
 * takes), for rows that fill, overrun and split 16-lane vectors and for
 * taps in one pass and in slices (large weights); rows' padding untouched. */
Test(simd_tables, conv_direct) {
    const imcap_simd_ops *T[3];
    int nt = tables(T);
    /* C, H, W, O, k, pad */
    const int shapes[][6] = {{3, 16, 16, 16, 3, 1}, {8, 5, 17, 7, 3, 1}, {20, 4, 33, 5, 3, 1},
                             {2, 3, 64, 3, 3, 1},   {4, 6, 14, 9, 3, 0}, {3, 9, 20, 2, 5, 2},
                             {64, 3, 16, 260, 3, 1}}; /* the last: weights past 512 KB, taps in slices */
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        int C = shapes[si][0], H = shapes[si][1], W = shapes[si][2], O = shapes[si][3], k = shapes[si][4],
            pad = shapes[si][5];
        int Hp = H + 2 * pad, Wp = W + 2 * pad, Ho = Hp - k + 1, Wo = Wp - k + 1, K = C * k * k, P = Ho * Wo;
        size_t plane = (size_t)Hp * Wp, ldc = (size_t)P + 5;
        float *in = rand_vec((size_t)C * H * W, -1, 1), *w = rand_vec((size_t)O * K, -1, 1);
        float *bias = rand_vec((size_t)O, -1, 1), *xp = alloc_f((size_t)C * plane + 16);
        float *col = alloc_f((size_t)K * P);
        int32_t koff[1024];
        for (size_t i = 0; i < (size_t)C * plane + 16; i++) xp[i] = i < (size_t)C * plane ? 0.0f : NAN;
        for (int c = 0; c < C; c++)
            for (int y = 0; y < H; y++)
                memcpy(xp + c * plane + (size_t)(y + pad) * Wp + pad, in + ((size_t)c * H + y) * W, W * sizeof(float));
        for (int c = 0, t = 0; c < C; c++)
            for (int ky = 0; ky < k; ky++)
                for (int kx = 0; kx < k; kx++, t++) {
                    koff[t] = (int32_t)(c * plane + (size_t)ky * Wp + kx);
                    for (int p = 0; p < P; p++) col[(size_t)t * P + p] = xp[koff[t] + (p / Wo) * Wp + p % Wo];
                }
        float *out[3];
        for (int t = 0; t < nt; t++) {
            float *want = sentinel_vec((size_t)O * ldc);
            out[t] = sentinel_vec((size_t)O * ldc);
            T[t]->gemm(want, ldc, w, (size_t)K, 1, col, (size_t)P, O, P, K, bias, 0);
            T[t]->conv_direct(out[t], ldc, w, O, K, xp, koff, Wp, Ho, Wo, bias);
            for (size_t i = 0; i < (size_t)O * ldc; i++)
                cr_assert(same(out[t][i], want[i]), "%s conv_direct C%d %dx%d O%d k%d pad%d: [%zu] = %.9g, gemm %.9g",
                          T[t]->name, C, H, W, O, k, pad, i, out[t][i], want[i]);
            free(want);
        }
        for (int t = 1; t < nt; t++)
            if (must_match(T[0], T[t]))
                for (size_t i = 0; i < (size_t)O * ldc; i++)
                    cr_assert(same(out[0][i], out[t][i]), "conv_direct: %s and %s differ", T[0]->name, T[t]->name);
        for (int t = 0; t < nt; t++) free(out[t]);
        free(in), free(w), free(bias), free(xp), free(col);
    }
}

Test(simd_tables, sumsq_and_adam) {
    const imcap_simd_ops *T[3];
    int nt = tables(T);
    const size_t lens[] = {0, 1, 15, 16, 17, 1000, 4099};
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        size_t n = lens[li];
        float *g = rand_vec(n ? n : 1, -2, 2);
        double want = 0;
        for (size_t i = 0; i < n; i++) want += (double)g[i] * g[i];
        double first = 0;
        for (int t = 0; t < nt; t++) {
            double got = T[t]->sumsq(g, n);
            cr_assert(fabs(got - want) <= 1e-12 * (want + 1), "%s sumsq(%zu) = %.17g, want %.17g", T[t]->name, n, got,
                      want);
            if (t == 0) first = got;
            else cr_assert_eq(got, first, "sumsq: %s and %s differ", T[0]->name, T[t]->name); /* no FMA in doubles */
        }
        /* AdamW against the formula in double */
        float *p0 = rand_vec(n ? n : 1, -1, 1), *m0 = rand_vec(n ? n : 1, -0.1, 0.1), *v0 = rand_vec(n ? n : 1, 0, 0.01);
        const float scale = 0.7f, b1 = 0.9f, b2 = 0.999f, step = 1e-3f, ib2 = 3.0f, eps = 1e-8f, wd = 1e-4f;
        for (int t = 0; t < nt; t++) {
            float *p = copy_f(p0, n ? n : 1), *m = copy_f(m0, n ? n : 1), *v = copy_f(v0, n ? n : 1);
            T[t]->adam_update(p, g, m, v, n, scale, b1, b2, step, ib2, eps, wd);
            for (size_t i = 0; i < n; i++) {
                double gi = (double)g[i] * scale, mi = b1 * (double)m0[i] + (1 - (double)b1) * gi;
                double vi = b2 * (double)v0[i] + (1 - (double)b2) * gi * gi;
                double pi = p0[i] - (step * mi / (sqrt(vi * ib2) + eps) + wd * (double)p0[i]);
                /* float rounding of each term, relative to the terms (they may cancel) */
                double mmag = fabs(b1 * (double)m0[i]) + fabs((1 - (double)b1) * gi);
                double vmag = fabs(b2 * (double)v0[i]) + fabs((1 - (double)b2) * gi * gi);
                double pmag = fabs(p0[i]) + fabs(step * mmag / (sqrt(vi * ib2) + eps)) + fabs(wd * (double)p0[i]);
                cr_assert(fabs(m[i] - mi) <= 1e-6 * mmag, "%s adam m[%zu]: %.9g, want %.9g", T[t]->name, i, m[i], mi);
                cr_assert(fabs(v[i] - vi) <= 1e-6 * vmag, "%s adam v[%zu]: %.9g, want %.9g", T[t]->name, i, v[i], vi);
                cr_assert(fabs(p[i] - pi) <= 1e-6 * pmag, "%s adam p[%zu]: %.9g, want %.9g", T[t]->name, i, p[i], pi);
            }
            free(p), free(m), free(v);
        }
        free(g), free(p0), free(m0), free(v0);
    }
}

/* 2x2 stride-2 max-pool rows: every table against the scalar rule (ties to
 * the first, a NaN wins and the first NaN stays; relu folded: the largest
 * positive value or +0), widths around the 16-lane tail, NaN, -0, ties. */
static float take_ref(float m, float x) { return (x > m || (x != x && m == m)) ? x : m; }

Test(simd_tables, pool2x2_row) {
    const imcap_simd_ops *T[3];
    int nt = tables(T);
    const float specials[] = {0.0f, -0.0f, NAN, 1.0f, 1.0f, -INFINITY, INFINITY, -1.0f};
    for (int Wo = 1; Wo <= 40; Wo++)
        for (int relu = 0; relu < 2; relu++)
            for (int t = 0; t < nt; t++) {
                float *r0 = rand_vec((size_t)2 * Wo, -1, 1), *r1 = rand_vec((size_t)2 * Wo, -1, 1);
                for (int i = 0; i < 2 * Wo; i += 3) r0[i] = specials[(i / 3) % 8], r1[(i + 1) % (2 * Wo)] = r0[i];
                float *out = sentinel_vec((size_t)Wo + 1);
                T[t]->pool2x2_row(out, r0, r1, Wo, relu);
                for (int ox = 0; ox < Wo; ox++) {
                    float a = r0[2 * ox], b = r0[2 * ox + 1], c = r1[2 * ox], d = r1[2 * ox + 1], want;
                    if (relu) {
                        want = 0.0f;
                        want = a > want ? a : want, want = b > want ? b : want;
                        want = c > want ? c : want, want = d > want ? d : want;
                    } else {
                        want = take_ref(take_ref(take_ref(a, b), c), d);
                    }
                    cr_assert(same(out[ox], want), "%s pool2x2 Wo=%d relu=%d at %d: %g, want %g", T[t]->name, Wo, relu,
                              ox, out[ox], want);
                }
                cr_assert(bits(out[Wo]) == SENTINEL, "%s pool2x2 wrote past Wo", T[t]->name);
                free(r0), free(r1), free(out);
            }
}

/* The attention's backward: every table against a double computation of
 * the same formulas, AVX2 = AVX-512 bit for bit. */
Test(simd_tables, attention_backward) {
    const imcap_simd_ops *T[3];
    int nt = tables(T);
    const int shapes[][3] = {{1, 1, 1}, {5, 16, 66}, {17, 100, 3}, {64, 128, 66}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        int L = shapes[si][0], A = shapes[si][1], D = shapes[si][2];
        float *a = rand_vec((size_t)L * D, -1, 1), *t = rand_vec((size_t)L * A, -0.99, 0.99);
        float *w = rand_vec((size_t)A, -1, 1), *dctx = rand_vec((size_t)D, -1, 1), *dal = rand_vec((size_t)L, -1, 1);
        float *alpha = rand_vec((size_t)L, 0.01, 1);
        double z = 0;
        for (int i = 0; i < L; i++) z += alpha[i];
        for (int i = 0; i < L; i++) alpha[i] = (float)(alpha[i] / z);
        /* the truth in double */
        double *de = calloc((size_t)L, sizeof *de), dot = 0, db = 0;
        for (int i = 0; i < L; i++) {
            double s = dal[i];
            for (int d = 0; d < D; d++) s += (double)dctx[d] * a[(size_t)i * D + d];
            de[i] = s, dot += s * alpha[i];
        }
        for (int i = 0; i < L; i++) de[i] = alpha[i] * (de[i] - dot), db += de[i];
        float *out[3][5];
        for (int k = 0; k < nt; k++) {
            float *da = alloc_f((size_t)L * D), *dp = alloc_f((size_t)L * A), *dq = alloc_f((size_t)A),
                  *dw = alloc_f((size_t)A), *dbv = alloc_f(1), *scratch = alloc_f((size_t)L);
            memset(da, 0, (size_t)L * D * sizeof(float)), memset(dp, 0, (size_t)L * A * sizeof(float));
            memset(dq, 0, (size_t)A * sizeof(float)), memset(dw, 0, (size_t)A * sizeof(float)), dbv[0] = 0;
            T[k]->attention_backward(da, dp, dq, dw, dbv, dctx, dal, a, alpha, t, w, L, A, D, scratch);
            cr_assert(fabs(dbv[0] - db) <= 1e-5, "%s attention_backward db %g, want %g", T[k]->name, dbv[0], db);
            for (int i = 0; i < L; i++)
                for (int d = 0; d < D; d++)
                    cr_assert(fabs(da[(size_t)i * D + d] - (double)alpha[i] * dctx[d]) <= 1e-6, "%s da", T[k]->name);
            for (int c = 0; c < A; c++) {
                double sw = 0, sq = 0;
                for (int i = 0; i < L; i++) {
                    double tk = t[(size_t)i * A + c], g = de[i] * w[c] * (1 - tk * tk);
                    sw += de[i] * tk, sq += g;
                    cr_assert(fabs(dp[(size_t)i * A + c] - g) <= 1e-5, "%s dp[%d,%d]", T[k]->name, i, c);
                }
                cr_assert(fabs(dw[c] - sw) <= 1e-5 * (1 + fabs(sw)), "%s dw[%d]: %g, want %g", T[k]->name, c, dw[c], sw);
                cr_assert(fabs(dq[c] - sq) <= 1e-5 * (1 + fabs(sq)), "%s dq[%d]: %g, want %g", T[k]->name, c, dq[c], sq);
            }
            out[k][0] = da, out[k][1] = dp, out[k][2] = dq, out[k][3] = dw, out[k][4] = dbv;
            free(scratch);
        }
        size_t len[5] = {(size_t)L * D, (size_t)L * A, (size_t)A, (size_t)A, 1};
        for (int k = 1; k < nt; k++)
            if (must_match(T[0], T[k]))
                for (int j = 0; j < 5; j++)
                    for (size_t i = 0; i < len[j]; i++)
                        cr_assert(same(out[0][j][i], out[k][j][i]), "attention_backward: %s and %s differ", T[0]->name,
                                  T[k]->name);
        for (int k = 0; k < nt; k++)
            for (int j = 0; j < 5; j++) free(out[k][j]);
        free(a), free(t), free(w), free(dctx), free(dal), free(alpha), free(de);
    }
}

/* the in-domain descriptor's per-channel moments, against double sums, for
 * lengths with and without a tail */
Test(simd_moments, against_double) {
    int lens[] = {1, 3, 15, 16, 17, 100, 1024, 3137};
    uint64_t st = 99;
    for (size_t t = 0; t < sizeof lens / sizeof *lens; t++) {
        int n = lens[t];
        float *v = malloc((size_t)n * sizeof(float)), *u = malloc((size_t)n * sizeof(float)), out[4];
        for (int i = 0; i < n; i++) v[i] = (float)tu_urand(&st, -3, 5);
        imcap_channel_moments(v, u, n, out);
        double m = 0, mx = v[0], ss = 0, c3 = 0;
        for (int i = 0; i < n; i++) m += v[i], mx = v[i] > mx ? v[i] : mx;
        m /= n;
        for (int i = 0; i < n; i++) ss += (v[i] - m) * (v[i] - m);
        double sd = sqrt(ss / n);
        for (int i = 0; i < n; i++) {
            double z = sd > 1e-6 ? fabs(v[i] - m) / sd : 0;
            c3 += z * z * z;
        }
        c3 /= n;
        cr_expect(fabs(out[0] - m) < 1e-5 && fabs(out[1] - sd) < 1e-5 * (1 + sd) && fabs(out[2] - c3) < 1e-4 * (1 + c3) &&
                      out[3] == (float)mx,
                  "n %d: %g %g %g %g vs %g %g %g %g", n, out[0], out[1], out[2], out[3], m, sd, c3, mx);
        for (int i = 0; i < n; i++) cr_expect(fabsf(u[i] - (v[i] - out[0])) == 0.0f, "u[%d]", i);
        free(v), free(u);
    }
}
