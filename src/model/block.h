/* block.h — a residual block's forward pass (inference only). Internal. */
#ifndef IMCAP_BLOCK_H
#define IMCAP_BLOCK_H
#include "model.h"

/* x [in_c,in_h,in_w] -> y [out_c,out_h,out_w] (y must not be x). wt, wino:
 * the block's convs in panels or Winograd-transformed where
 * imcap_encoder_pack has them, else NULL. t:
 * three scratch buffers, each as large as the block's largest conv output;
 * col: im2col scratch for the block's largest conv. */
void imcap_block_forward(const imcap_layer *l, const imcap_block_view *v, float *const wt[4], float *const wino[4],
                         float *y, const float *x, float *t[3], float *col);
#endif
