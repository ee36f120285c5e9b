/* model.h — the model as the engine sees it: config, vocabulary and one
 * contiguous parameter block with named views (llm.c style). Internal. */
#ifndef IMCAP_MODEL_H
#define IMCAP_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include "imcap.h"
#include "domain.h"

#define IMCAP_MAX_LAYERS 64
/* a bottleneck block with a downsample has 20 tensors (4 convs, 4 batch norms) */
#define IMCAP_MAX_LAYER_TENSORS 20
#define IMCAP_MAX_TENSORS (IMCAP_MAX_LAYER_TENSORS * IMCAP_MAX_LAYERS + 32)

/* Format 1: conv, relu, maxpool (unpadded), coords. Format 2 adds the rest
 * and a conv's "bias": false and a maxpool's "pad" (docs/model-format.md). */
typedef enum {
    IMCAP_LAYER_CONV,
    IMCAP_LAYER_RELU,
    IMCAP_LAYER_MAXPOOL,
    IMCAP_LAYER_COORDS,
    IMCAP_LAYER_BATCHNORM,  /* eval mode: running statistics */
    IMCAP_LAYER_BASIC,      /* torchvision's BasicBlock */
    IMCAP_LAYER_BOTTLENECK, /* torchvision's Bottleneck (stride on the 3x3, "ResNet v1.5") */
    IMCAP_LAYER_AVGPOOL     /* adaptive average pooling to out x out */
} imcap_layer_type;

/* One convolution's shapes (the convs inside a residual block). */
typedef struct {
    int in_c, in_h, in_w, out, kernel, stride, pad, out_h, out_w;
} imcap_conv_shape;

/* Inside a block: conv1, conv2, conv3 (bottleneck only), then the downsample. */
enum { IMCAP_BLOCK_DOWNSAMPLE = 3 };

typedef struct {
    imcap_layer_type type;
    int out, kernel, stride, pad;       /* as in the config (conv: out,k,s,p; maxpool: k,s,p; avgpool: out) */
    int bias;                           /* conv: 1 unless "bias": false */
    float eps;                          /* batchnorm */
    int planes, downsample;             /* blocks */
    int in_c, in_h, in_w;               /* derived: input shape */
    int out_c, out_h, out_w;            /* derived: output shape */
    int n_convs;                        /* derived, blocks: 2 (basic) or 3 (bottleneck) */
    imcap_conv_shape conv[4];           /* derived, blocks: conv1..3 and [IMCAP_BLOCK_DOWNSAMPLE] */
} imcap_layer;

typedef struct {
    int format;                         /* derived: 1, or 2 when a layer needs format 2 */
    int image_size;
    float mean[3], std[3];
    int n_layers;
    imcap_layer layers[IMCAP_MAX_LAYERS];
    int embed_dim, hidden_dim, attention_dim, max_length;
    /* format 2, optional: Xu et al.'s deep output layer, logits from
     * tanh(deep_h(h_t) + deep_z(z_t) + E y_{t-1}) instead of from h_t */
    int deep_output;
    /* the in-domain check (format 2, optional; model/domain.h): its
     * descriptor is taken from encoder layer domain_layer's output */
    int has_domain, domain_layer;
    double domain_threshold, domain_quantile;
    int domain_train_images, domain_val_images, domain_val_flagged;
    /* derived */
    int D, H, W, L;
    int domain_F;                       /* descriptor size, 0 without a domain check */
} imcap_config;

/* The width of fc's input: embed_dim with the deep output layer, else hidden_dim. */
static inline int imcap_config_fc_in(const imcap_config *cfg) {
    return cfg->deep_output ? cfg->embed_dim : cfg->hidden_dim;
}

/* Parses and validates config JSON text; derives every layer's shapes.
 * where names the source in messages ("model.safetensors: imcap.config"). */
imcap_status imcap_config_parse(const char *json, const char *where, imcap_config *cfg, imcap_error *err);
/* Serialises the config back to canonical JSON text (malloc'd). */
char *imcap_config_to_json(const imcap_config *cfg);
/* The canonical JSON of what the encoder computes from: preprocessing and
 * layers (the decoder's sizes and the in-domain check left out). Two
 * configs whose encoder JSON is equal take the same encoder tensors. */
char *imcap_config_encoder_json(const imcap_config *cfg);
/* The in-domain check describes a layer of at most this many channels. */
#define IMCAP_DOMAIN_MAX_C 64
/* Makes cfg describe layer for the in-domain check (has_domain, domain_F,
 * format 2; threshold and provenance untouched); -1 when the layer does not
 * exist or is too wide. */
int imcap_config_set_domain(imcap_config *cfg, int layer);
/* -1 when imcap can train the whole encoder (format 1's layers, and convs
 * without bias); else the index of the first layer it has no backward for. */
int imcap_config_untrainable_layer(const imcap_config *cfg);
const char *imcap_layer_type_name(imcap_layer_type t);

/* One tensor of the parameter table: its name, shape and place in the block. */
typedef struct {
    char name[64];
    int ndim;
    int shape[4];
    size_t offset, count; /* in floats */
} imcap_tensor_info;

/* Named views into a parameter-shaped block (parameters, gradients, Adam
 * moments all use the same struct). NULL for encoder layers without weights. */
/* A batch norm's tensors: weight (gamma), bias (beta), running mean and variance. */
typedef struct {
    float *weight, *bias, *mean, *var;
} imcap_bn_view;

/* A residual block's tensors, indexed as imcap_layer.conv. */
typedef struct {
    float *conv[4];
    imcap_bn_view bn[4];
} imcap_block_view;

typedef struct {
    /* conv: weight, bias (NULL without one); batchnorm: weight, bias */
    float *enc_w[IMCAP_MAX_LAYERS], *enc_b[IMCAP_MAX_LAYERS];
    float *enc_mean[IMCAP_MAX_LAYERS], *enc_var[IMCAP_MAX_LAYERS]; /* batchnorm: running statistics */
    imcap_block_view enc_block[IMCAP_MAX_LAYERS];
    float *domain_mean, *domain_precision; /* [F], [F, F]: statistics, never trained */
    float *embedding;                  /* [V, E] */
    float *init_h_w, *init_h_b;        /* [Hd, D], [Hd] */
    float *init_c_w, *init_c_b;
    float *enc_att_w, *enc_att_b;      /* [A, D], [A] */
    float *dec_att_w, *dec_att_b;      /* [A, Hd], [A] */
    float *full_att_w, *full_att_b;    /* [1, A], [1] */
    float *f_beta_w, *f_beta_b;        /* [D, Hd], [D] */
    float *w_ih, *b_ih;                /* [4Hd, E+D], [4Hd] */
    float *w_hh, *b_hh;                /* [4Hd, Hd], [4Hd] */
    float *deep_h_w, *deep_h_b;        /* deep output only: [E, Hd], [E] */
    float *deep_z_w, *deep_z_b;        /* deep output only: [E, D], [E] */
    float *fc_w, *fc_b;                /* [V, F], [V]: F = imcap_config_fc_in */
} imcap_params;

/* The table of tensors the config implies, in ascending name order (the
 * order writers lay them out in, and the order of the block). */
typedef struct {
    int n;
    imcap_tensor_info t[IMCAP_MAX_TENSORS];
    size_t total; /* floats */
} imcap_param_table;

void imcap_param_table_build(const imcap_config *cfg, int vocab_size, imcap_param_table *tab);
int imcap_param_table_find(const imcap_param_table *tab, const char *name);
/* Where the first tensor whose name starts with prefix begins in the block
 * (the table is in name order: "decoder.", "encoder.", "stats."), or total. */
size_t imcap_param_table_prefix_offset(const imcap_param_table *tab, const char *prefix);
/* Points every view of p into block according to tab. */
void imcap_params_point(imcap_params *p, const imcap_config *cfg, const imcap_param_table *tab, float *block);

/* Words in a vocabulary, the special tokens included. Real ones hold 10^4 to
 * 2.6 * 10^5; the cap keeps what a hostile header can make the loader build
 * (a cJSON node and a copy per word, ~190 bytes each) near 200 MB. */
#define IMCAP_MAX_VOCAB 1000000

typedef struct {
    int n;
    char **words; /* n strings; 0..3 are the special tokens */
} imcap_vocab;

void imcap_vocab_free(imcap_vocab *v);
/* Parses the metadata's JSON array of token strings and checks it. */
imcap_status imcap_vocab_parse(const char *json, const char *where, imcap_vocab *v, imcap_error *err);
char *imcap_vocab_to_json(const imcap_vocab *v);

typedef struct {
    char *key, *value;
} imcap_meta_entry;

/* Up to this many floats (4 MB), the pack keeps the LSTM gates' embedding
 * part per word: V * 4 Hd floats, 0.2 MB for the shipped model. */
#define IMCAP_GATES_TABLE_MAX (1u << 20)

/* The decoder's step weights laid out for inference's products
 * (imcap_affine_p: outputs in IMCAP_PANEL-wide panels, each panel's
 * weights contiguous, inputs major): q and the context gate in one product
 * over h_prev, the LSTM gates in one product over [E y; z; h_prev]. Derived
 * from p: imcap_model_sync must follow any change to the weights before
 * the model decodes again (the trainer does so before validating). */
typedef struct {
    float *enc_att_wt;         /* A outputs over D: encoder_att, for the per-image preparation */
    float *qg_wt, *qg_b;       /* A + D outputs over Hd: decoder_att | f_beta; [A + D] */
    float *gates_wt, *gates_b; /* 4 Hd outputs over E + D + Hd: [w_ih | w_hh]; b_ih + b_hh */
    float *gates_emb;          /* [V, 4 Hd]: per word, the gates' sums over its embedding (the first E inputs,
                                * no bias), so that a step continues from them instead of multiplying E y;
                                * NULL when the table would pass IMCAP_GATES_TABLE_MAX floats (large vocabularies) */
    float *fc_wt;              /* V outputs over imcap_config_fc_in (its bias is fc_b); NULL for a small vocabulary (below
                                * IMCAP_PACK_MIN_V words: fc_w in dot form is faster there) */
} imcap_decoder_pack;

/* The residual blocks' convs whose output is too few pixels per image to
 * fill 16-lane vectors (ResNet's layer4 at 224: 7 x 7) but the 3x3
 * stride-1 ones (wino, below), their weights in panels for the transposed
 * product (imcap_conv2d_forward_t): wt[i][k] for conv k of layer i
 * (imcap_layer.conv's indices), NULL for every other conv. A copy of those
 * weights (ResNet-50: 9.7 M floats, 39 MB) bought for 77% -> 100% of the
 * vector lanes. */
typedef struct {
    float *wt[IMCAP_MAX_LAYERS][4];
    /* The residual blocks' 3x3 stride-1 convs (which then never run
     * transposed), their weights Winograd-transformed
     * (imcap_winograd_weights): 16 multiplications per 2x2 outputs instead
     * of 36, at the price of other rounding (within torchvision parity's
     * 1e-4). ResNet-50 at 224: 13 convs, 14.6 M floats (58 MB). */
    float *wino[IMCAP_MAX_LAYERS][4];
} imcap_encoder_pack;

struct imcap_model {
    imcap_config cfg;
    char *config_json;
    imcap_vocab vocab;
    imcap_param_table tab;
    float *block;          /* tab.total floats, 64-byte aligned */
    imcap_params p;
    imcap_decoder_pack pack; /* from p; see imcap_model_sync */
    imcap_encoder_pack epack; /* from p; see imcap_model_sync */
    int n_meta;            /* extra __metadata__ entries, kept for provenance */
    imcap_meta_entry *meta;
};

#define IMCAP_PACK_MIN_V 128
/* Brings m->pack and m->epack up to date with the weights in m->block. */
void imcap_model_sync(imcap_model *m);
/* Allocates m->pack for m's shapes and fills it (after the block is read). */
imcap_status imcap_model_pack_alloc(imcap_model *m, imcap_error *err);

/* A copy of m with cfg instead of its config (same vocabulary and metadata):
 * every tensor both configs have is copied by name, the others are zero. */
imcap_status imcap_model_reshape(const imcap_model *m, const imcap_config *cfg, imcap_model **out, imcap_error *err);
/* Copies the encoder's tensors (every "encoder.*") of src into dst, whose
 * encoder must be the same (imcap_config_encoder_json); the decoder and the
 * in-domain statistics of dst are left as they are. src_name names src in
 * the message. */
imcap_status imcap_model_copy_encoder(imcap_model *dst, const imcap_model *src, const char *src_name, imcap_error *err);


/* Creates a model with the given config and vocabulary (copied) and a
 * zeroed parameter block. */
imcap_status imcap_model_create(const imcap_config *cfg, const imcap_vocab *vocab, imcap_model **out, imcap_error *err);
/* Scaled random init: He for convs, Xavier for affine maps, N(0, 0.1) for
 * the embedding, zero biases (forget-gate bias 1). */
void imcap_model_init_random(imcap_model *m, uint64_t seed);
/* Sets (or replaces) a metadata entry written by imcap_model_save. */
imcap_status imcap_model_set_metadata(imcap_model *m, const char *key, const char *value);

void *imcap_aligned_alloc(size_t bytes);   /* 64-byte aligned, zeroed; free with free() */

#endif

/* The model file in memory (malloc'd): what imcap_model_save writes. */
imcap_status imcap_model_serialize(const imcap_model *m, unsigned char **data, size_t *size, imcap_error *err);
