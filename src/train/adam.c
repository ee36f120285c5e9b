/* adam.c — Adam (Kingma & Ba) with decoupled weight decay (AdamW), global
 * gradient-norm clipping, linear warm-up and cosine decay. */
#include <math.h>

#include "kernels/simd.h"
#include "train.h"

void imcap_adam_options_default(imcap_adam_options *o) {
    o->lr = 1e-3f, o->beta1 = 0.9f, o->beta2 = 0.999f, o->eps = 1e-8f;
    o->weight_decay = 0.0f, o->clip = 5.0f;
    o->warmup = 200, o->total_steps = 0, o->min_lr_frac = 0.05f;
}

float imcap_lr_at(const imcap_adam_options *o, long step) {
    if (o->warmup > 0 && step < o->warmup) return o->lr * (float)(step + 1) / (float)o->warmup;
    if (o->total_steps <= o->warmup) return o->lr;
    double progress = (double)(step - o->warmup) / (double)(o->total_steps - o->warmup);
    if (progress > 1) progress = 1;
    double cosine = 0.5 * (1.0 + cos(M_PI * progress));
    return (float)(o->lr * (o->min_lr_frac + (1.0 - o->min_lr_frac) * cosine));
}

double imcap_adam_step(const imcap_adam_options *o, long step, float *p, float *g, float *m, float *v, size_t n) {
    double norm = sqrt(imcap_sumsq(g, n));
    float scale = (o->clip > 0 && norm > o->clip) ? (float)(o->clip / norm) : 1.0f;
    float lr = imcap_lr_at(o, step - 1);
    double bc1 = 1.0 - pow(o->beta1, (double)step), bc2 = 1.0 - pow(o->beta2, (double)step);
    float step_size = (float)(lr / bc1), inv_bc2 = (float)(1.0 / bc2);
    /* m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; p -= step m / (sqrt(v / bc2) + eps) + lr wd p */
    imcap_adam_update(p, g, m, v, n, scale, o->beta1, o->beta2, step_size, inv_bc2, o->eps, lr * o->weight_decay);
    return norm;
}
