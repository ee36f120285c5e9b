/* imcap.h — image captioning with soft attention (Xu et al. 2015), in C.
 *
 * QUICK START
 *
 *     imcap_error err;
 *     imcap_model *m;
 *     if (imcap_model_load("models/default.safetensors", &m, &err) != IMCAP_OK) {
 *         fprintf(stderr, "%s\n", err.msg);      // names the file and the field
 *         return 1;
 *     }
 *     imcap_options opt;
 *     imcap_options_default(&opt);               // beam 3, no length normalisation
 *     imcap_result *r;
 *     if (imcap_caption_file(m, NULL, "photo.jpg", &opt, &r, &err) == IMCAP_OK) {
 *         const imcap_hypothesis *best = &r->hyps[0];
 *         printf("%s\n", best->text);
 *         // best->attention + k * r->grid_h * r->grid_w is the map behind word k
 *         imcap_result_free(r);
 *     }
 *     imcap_model_free(m);
 *
 * CONVENTIONS
 *
 *   - Every fallible function returns an imcap_status and, on failure, fills
 *     the caller's imcap_error with a message that names the file and the
 *     offending field or tensor. The library never prints, never exits and
 *     never reads the environment.
 *   - Every object created by imcap_X_new / _load / a caption call is released
 *     by the matching imcap_X_free. Passing NULL to a _free is a no-op.
 *   - A loaded model is immutable: any number of threads may caption with it
 *     at once, each with its own imcap_workspace (or NULL, which allocates a
 *     temporary one per call).
 *   - Threads: the library's products are its own kernels (no BLAS), and it
 *     uses OpenMP only where documented; it never changes the global thread
 *     settings.
 *   - Building against it: `pkg-config --cflags --libs imcap` (libimcap.so.1;
 *     the soname's number changes when the ABI does). Only the IMCAP_API
 *     functions below are exported.
 *
 * The model file format is specified in docs/model-format.md (a copy of the
 * project's contract); decoding follows its "Decoding" section exactly.
 */
#ifndef IMCAP_H
#define IMCAP_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What libimcap.so exports: the declarations below and nothing else (the
 * library is built with -fvisibility=hidden). */
#if defined(__GNUC__) || defined(__clang__)
#define IMCAP_API __attribute__((visibility("default")))
#else
#define IMCAP_API
#endif

#define IMCAP_VERSION "0.1.0"
/* the newest model format this library reads (it reads every older one) */
#define IMCAP_FORMAT_VERSION 2

/* Images larger than this on either side, or with more pixels than
 * IMCAP_MAX_PIXELS, are refused before decoding (a crafted header can
 * declare a size that would exhaust memory). */
#define IMCAP_MAX_SIDE 16384
#define IMCAP_MAX_PIXELS (64LL * 1024 * 1024)

/* ---------------------------------------------------------------- errors */

typedef enum {
    IMCAP_OK = 0,
    IMCAP_E_ARG,         /* invalid argument from the caller */
    IMCAP_E_IO,          /* a file cannot be opened, read or written */
    IMCAP_E_FORMAT,      /* a model, data set or results file is malformed */
    IMCAP_E_IMAGE,       /* an image cannot be decoded or is too large */
    IMCAP_E_NOMEM,       /* out of memory */
    IMCAP_E_INTERRUPTED, /* a long operation was asked to stop */
} imcap_status;

typedef struct {
    imcap_status status;
    char msg[1024];
} imcap_error;

/* A short stable name for a status ("ok", "io", "format", ...). */
IMCAP_API const char *imcap_status_name(imcap_status s);

/* ---------------------------------------------------------------- model */

typedef struct imcap_model imcap_model;

/* Loads a model in the safetensors-based format v1. The file is memory
 * mapped and validated completely (header, JSON, dtypes, offsets, shapes,
 * vocabulary) before anything is returned; on failure *out is NULL. */
IMCAP_API imcap_status imcap_model_load(const char *path, imcap_model **out, imcap_error *err);

/* Loads a model from a buffer holding the whole file (name is used in error
 * messages only). The buffer is not retained. */
IMCAP_API imcap_status imcap_model_load_memory(const void *data, size_t size, const char *name,
                                               imcap_model **out, imcap_error *err);

/* Writes the model to path atomically (temporary name, then rename). */
IMCAP_API imcap_status imcap_model_save(const imcap_model *m, const char *path, imcap_error *err);

IMCAP_API void imcap_model_free(imcap_model *m);

typedef struct {
    int format;          /* the model format the model needs: 1, or 2 (batch norm, residual blocks, ...) */
    int image_size;      /* S: the encoder's input is [3, S, S] */
    int embed_dim, hidden_dim, attention_dim, max_length;
    int vocab_size;      /* V */
    int feature_dim;     /* D: channels of the encoder output */
    int grid_h, grid_w;  /* H, W: the attention grid; L = H * W */
    int n_encoder_layers;
    int64_t n_params;
    double encoder_flops;    /* multiply-adds x 2, per image */
    double decoder_flops;    /* per decoded token, one hypothesis */
} imcap_model_info;

IMCAP_API void imcap_model_get_info(const imcap_model *m, imcap_model_info *info);

/* The vocabulary string of token id, or NULL when id is out of range. */
IMCAP_API const char *imcap_model_word(const imcap_model *m, int id);

/* The config as JSON text (owned by the model) and a metadata value
 * (NULL when absent), e.g. "imcap.train.command". */
IMCAP_API const char *imcap_model_config_json(const imcap_model *m);
IMCAP_API const char *imcap_model_metadata(const imcap_model *m, const char *key);

enum { IMCAP_TOK_PAD = 0, IMCAP_TOK_START = 1, IMCAP_TOK_END = 2, IMCAP_TOK_UNK = 3 };

/* ---------------------------------------------------------------- images */

typedef struct {
    int width, height;
    unsigned char *rgb; /* width * height * 3 bytes, row-major, 8-bit RGB */
} imcap_image;

/* Decodes JPEG, PNG, BMP, GIF (first frame), TGA, PSD, HDR-free PNM... into
 * 8-bit RGB as the spec says: grey replicated, alpha dropped, 16-bit samples
 * keep their high byte. Dimensions are checked before decoding. */
IMCAP_API imcap_status imcap_image_load(const char *path, imcap_image *out, imcap_error *err);
IMCAP_API imcap_status imcap_image_load_memory(const void *data, size_t size, const char *name,
                                               imcap_image *out, imcap_error *err);
IMCAP_API void imcap_image_free(imcap_image *img);

/* Returns 1 when the first bytes look like an image format imcap decodes. */
IMCAP_API int imcap_image_sniff(const void *head, size_t n);

/* ---------------------------------------------------------------- captioning */

typedef struct {
    int beam;            /* 1 = greedy; default 3 */
    int max_length;      /* 0 = the model's max_length */
    int length_norm;     /* 0 (default): rank by summed log-probability, as the
                            spec says; 1: rank finished hypotheses by
                            score / length^length_alpha (an option) */
    float length_alpha;  /* default 0.7, used only with length_norm */
} imcap_options;

IMCAP_API void imcap_options_default(imcap_options *opt);

typedef struct {
    int n_tokens;        /* y_1..y_T, the final <end> included when emitted */
    int *tokens;
    float *logprobs;     /* log_softmax(logits_t)[y_t] per token */
    char **words;        /* vocabulary string per token ("<end>" included) */
    float *attention;    /* n_tokens x (grid_h * grid_w): alpha per step */
    double score;        /* sum of logprobs, accumulated in double */
    int finished;        /* 1 when it ended with <end> */
    char *text;          /* the caption: words, final <end> removed, joined by ' ' */
} imcap_hypothesis;

typedef struct {
    int grid_h, grid_w;
    int image_width, image_height; /* of the decoded image, before resizing */
    /* How typical the image is of the model's training images (the in-domain
     * check): domain_score <= 1 is typical (in_domain 1); above 1 the image
     * is unlike anything the model learnt from and its caption is
     * unreliable (in_domain 0). A model without in-domain statistics gives
     * NaN and in_domain -1 (`imcap calibrate` adds them). */
    double domain_score;
    int in_domain;
    int n_hyps;          /* >= 1; hyps[0] is the answer */
    imcap_hypothesis *hyps; /* best first (beam search: every finished and
                               leftover hypothesis, in ranking order) */
} imcap_result;

IMCAP_API void imcap_result_free(imcap_result *r);

/* Activations reused across calls; one per thread. */
typedef struct imcap_workspace imcap_workspace;
IMCAP_API imcap_workspace *imcap_workspace_new(const imcap_model *m);
IMCAP_API void imcap_workspace_free(imcap_workspace *ws);

/* ws may be NULL (a temporary workspace is used). */
IMCAP_API imcap_status imcap_caption_file(const imcap_model *m, imcap_workspace *ws, const char *path,
                                          const imcap_options *opt, imcap_result **out, imcap_error *err);
IMCAP_API imcap_status imcap_caption_image(const imcap_model *m, imcap_workspace *ws, const imcap_image *img,
                                           const imcap_options *opt, imcap_result **out, imcap_error *err);

/* ---------------------------------------------------------------- many images
 *
 * Images decoded together (continuous batching, as LLM servers do): the live
 * hypotheses of up to `block` images are stacked into one matrix at every
 * decoder step, so the weights are read once per step for all of them; an
 * image whose caption ends leaves the block and a new one joins it. The
 * results are exactly imcap_caption_image's, image by image (same tokens,
 * same scores, bit for bit on one machine), whatever `block` is.
 *
 *     imcap_batcher *b;
 *     imcap_batcher_new(m, &opt, 32, &b, &err);
 *     for (each image i) {
 *         while (imcap_batcher_space(b) == 0) take_one(b);   // imcap_batcher_next
 *         imcap_batcher_push(b, &img_i, i, &err);            // img_i may be freed now
 *     }
 *     while (imcap_batcher_pending(b) > 0) take_one(b);
 *     imcap_batcher_free(b);
 *
 * A batcher belongs to one thread; several threads use one batcher each
 * with one shared model. Memory is bounded by `block` (see batcher.c). */
typedef struct imcap_batcher imcap_batcher;
IMCAP_API imcap_status imcap_batcher_new(const imcap_model *m, const imcap_options *opt, int block, imcap_batcher **out,
                                         imcap_error *err);
IMCAP_API void imcap_batcher_free(imcap_batcher *b);
/* Images that can be pushed before one must be taken; images in flight. */
IMCAP_API int imcap_batcher_space(const imcap_batcher *b);
IMCAP_API int imcap_batcher_pending(const imcap_batcher *b);
/* Preprocesses img (the caller keeps ownership) and queues it with tag. */
IMCAP_API imcap_status imcap_batcher_push(imcap_batcher *b, const imcap_image *img, uint64_t tag, imcap_error *err);
/* Decodes until an image is finished and returns it: *tag as pushed and
 * *res (free with imcap_result_free), or its error status. Images finished
 * at the same step come out in push order. With nothing pending: IMCAP_OK
 * and *res = NULL. */
IMCAP_API imcap_status imcap_batcher_next(imcap_batcher *b, uint64_t *tag, imcap_result **res, imcap_error *err);

/* n images through one batcher of `block`: out[i] receives image i's result
 * (NULL when it failed; status[i], when status is non-NULL, says why).
 * Returns IMCAP_OK when every image was captioned, otherwise the status of
 * the failed image with the lowest index (err names that index). */
IMCAP_API imcap_status imcap_caption_images(const imcap_model *m, int n, const imcap_image *imgs, const imcap_options *opt,
                                            int block, imcap_result **out, imcap_status *status, imcap_error *err);

/* Many images over several threads, each decoding a block of `block` images
 * together, results handed back in index order: what `imcap batch`,
 * `imcap caption` with many files and `imcap eval` run on. OpenMP runs
 * `threads` workers (0: OpenMP's default); the caller keeps OpenBLAS on one
 * thread. The callbacks:
 *   load  (worker threads, any order) decode image i into *img; a non-OK
 *         status (with err) fails the image without decoding it;
 *   done  (worker threads, any order, once per image) its result, owned by
 *         the callee (NULL when it failed: st and err->msg say why);
 *   emit  (one at a time, in index order, after done; may be NULL).
 * Images are started in index order, at most imcap_caption_many_window()
 * ahead of the first one not yet emitted (size reorder buffers by it). When
 * *stop becomes non-zero no new image is started; every started one is
 * finished and emitted, so the emitted images are always 0..*n_done-1.
 * The results are the same for any block and thread count. */
typedef struct {
    imcap_status (*load)(void *ctx, size_t i, imcap_image *img, imcap_error *err);
    void (*done)(void *ctx, size_t i, imcap_result *res, imcap_status st, const imcap_error *err);
    void (*emit)(void *ctx, size_t i);
    void *ctx;
    volatile sig_atomic_t *stop; /* may be NULL */
    /* called once the image from load has been preprocessed (it is not kept);
     * NULL: imcap_image_free. A load that lends pixels it owns (a cache, an
     * array) passes a release that does nothing, and nothing is copied. */
    void (*release)(void *ctx, size_t i, imcap_image *img);
} imcap_many_io;

IMCAP_API size_t imcap_caption_many_window(int threads, int block);
IMCAP_API imcap_status imcap_caption_many(const imcap_model *m, size_t n, const imcap_options *opt, int block, int threads,
                                          const imcap_many_io *io, size_t *n_done, imcap_error *err);

/* Captions img and writes the spec's trace file (tokens, logits and attention
 * per step of the chosen hypothesis, the annotation vectors and the
 * preprocessed input) to trace_path, atomically. */
IMCAP_API imcap_status imcap_caption_trace(const imcap_model *m, const imcap_image *img,
                                           const imcap_options *opt, const char *trace_path,
                                           imcap_result **out, imcap_error *err);

/* ---------------------------------------------------------------- rendering
 *
 * Where the model looked, as files: one overlay PNG per word (its attention
 * map scaled to its maximum, upsampled bilinearly, coloured and blended over
 * the image), a contact sheet, and an offline HTML viewer. What `imcap
 * attend` and `imcap batch --overlays/--html` write. */

typedef enum { IMCAP_CMAP_VIRIDIS = 0, IMCAP_CMAP_INFERNO, IMCAP_CMAP_JET } imcap_colormap;

typedef struct {
    imcap_colormap colormap; /* default viridis */
    float alpha;             /* weight of the colour in the blend, [0, 1]; default 0.6 */
    int max_side;            /* overlays and the viewer: the image is scaled down
                                so that its longer side is at most this (0: never);
                                default 512. The viewer also enlarges images whose
                                longer side is under 384 px to 384. */
    int tile_side;           /* contact sheet: each tile fits in tile_side^2; default 224 */
    float label_px;          /* contact sheet: label text height in pixels; default 15 */
    float title_px;          /* contact sheet: caption text height; default 20 */
    int html_jpeg_quality;   /* viewer: images inlined as JPEG of this quality
                                (1..100; default 90), or as PNG when 0 */
} imcap_render_options;

IMCAP_API void imcap_render_options_default(imcap_render_options *o);

enum {
    IMCAP_RENDER_OVERLAYS = 1, /* <stem>_<NN>_<word>.png per token of hyps[0] */
    IMCAP_RENDER_SHEET = 2,    /* <stem>_sheet.png */
    IMCAP_RENDER_HTML = 4,     /* <stem>.html */
    IMCAP_RENDER_ALL = 7,
};

/* Writes the outputs selected by what into outdir (which must exist), each
 * atomically: NN is the token index from 00 (two digits, more past 99), word
 * reduced to letters, digits, '-', '_' and '.' (anything else '_', 48 bytes
 * at most); stem is used as given (pass imcap_render_stem's, made unique by
 * the caller). title: the viewer page's
 * heading (the image's path, say). img is the decoded image at its own
 * resolution, r its result. */
IMCAP_API imcap_status imcap_render_write(const imcap_image *img, const imcap_result *r, const char *outdir,
                                          const char *stem, const char *title, const imcap_render_options *o,
                                          int what, imcap_error *err);

/* The sanitised stem of a path: its last component without the last
 * extension ("dir/My photo (1).JPG" -> "My_photo_1"); fallback "image". */
IMCAP_API size_t imcap_render_stem(const char *path, char *out, size_t cap);

/* ---------------------------------------------------------------- training
 *
 * What `imcap train` does, as one call: the train (+ restval) split of a
 * Karpathy-split data set (or `imcap synth`'s scenes), validation on its
 * val split, the best model in out, a checkpoint, in C on the CPU
 * (docs: README "Training your own model"). */

/* Data-parallel training over several processes: the library knows no
 * transport, the caller gives it these three operations (the CLI: over
 * MPI). Each returns 0, or non-zero when the transport failed (the run then
 * ends with an error). */
typedef struct {
    int rank, size;
    void *ctx;
    int (*send)(void *ctx, int to, const void *buf, size_t bytes);
    int (*recv)(void *ctx, int from, void *buf, size_t bytes);
    int (*bcast)(void *ctx, int root, void *buf, size_t bytes);
} imcap_train_comm;

typedef struct {
    long step, total_steps;
    int epoch;
    double loss, ce, reg, token_accuracy, grad_norm, examples_per_s, eta_s; /* loss: smoothed ce + reg of the
                                                                               * step; reg: lambda x regulariser */
    float lr;
} imcap_train_progress;

typedef struct {
    long step;
    int epoch;
    double val_loss, bleu4, cider;
    int have_objects;
    double f1, pointing, mass, relations;
    double score;          /* the selected figure, higher is better (the loss negated) */
    int is_best;
    int n_images;
} imcap_val_report;

typedef struct {
    void (*on_progress)(void *ctx, const imcap_train_progress *p);
    void (*on_validation)(void *ctx, const imcap_val_report *v);
    void (*on_message)(void *ctx, const char *msg);
    void *ctx;
    volatile sig_atomic_t *stop; /* set from a signal handler: checkpoint and return */
    const imcap_train_comm *comm; /* several processes (NULL: one); only rank 0 calls the callbacks above,
                                   * validates and writes files, and its stop flag stops them all */
    /* images cached or encoded (what: "caching images", "encoding images") */
    void (*on_count)(void *ctx, const char *what, int done, int total);
} imcap_train_callbacks;

/* The run's options: IMCAP_TRAIN_UNSET takes the default (the numbers of
 * `imcap train --help`) or, with resume, the checkpoint's. With resume, an
 * option that is set replaces the checkpoint's (a message says so) when it
 * only steers the rest of the run, and is refused by name (IMCAP_E_ARG)
 * when it would make another run (batch, seed, select, grad_shards,
 * freeze_encoder, min_count). */
#define IMCAP_TRAIN_UNSET (-1)
typedef struct {
    const char *data, *images;    /* the data set JSON and its image folder */
    const char *config;           /* exactly one of: a new model from this config (vocabulary from data), */
    const char *init;             /*   the weights of this model to start from, */
    const char *resume;           /*   or this checkpoint, continued exactly */
    const char *out;              /* the best model */
    const char *ckpt, *cache, *features; /* NULL: OUT.ckpt, OUT.cache, OUT.features */
    const char *command;          /* recorded in the model's metadata (may be NULL) */
    const char *select;           /* "loss" (default), "bleu4", "cider", "f1" */
    int threads;                  /* per process; 0: every core (at most 64) */
    double epochs, max_steps, batch, grad_shards, seed, min_count, val_every, val_images, ckpt_every;
    double warmup, lr, min_lr_frac, weight_decay, clip, att_reg, dropout, freeze_encoder;
    long stop_after;              /* testing aid: stop as if interrupted after this step (0: never) */
    double att_sup;               /* attention targets' weight (scenes with "objects"; default 0) */
    double att_sup_rel;           /* relation phrases' attention targets' weight (default 0) */
    double att_sup_desc;          /* a mention's words before its noun (default: att_sup) */
    double rel_weight;            /* cross-entropy weight of relation phrases and their partners (default 1) */
} imcap_train_request;

typedef struct {
    long step;                    /* steps done */
    int wrote_model;              /* out holds a model of this run (validated, or the interrupted weights) */
    int grad_shards;              /* what the run used */
    const char *select;           /* what "best" meant: "loss", "bleu4", "cider", "f1" */
    double examples, seconds;     /* this process's share of the work */
} imcap_train_outcome;

IMCAP_API void imcap_train_request_init(imcap_train_request *r);
/* IMCAP_E_INTERRUPTED when *cb->stop was set: a checkpoint is written and
 * resume continues it. */
IMCAP_API imcap_status imcap_train(const imcap_train_request *r, const imcap_train_callbacks *cb,
                                   imcap_train_outcome *out, imcap_error *err);

/* ---------------------------------------------------------------- caption metrics
 *
 * What `imcap eval` reports, for captions and references given as text:
 * BLEU-1..4 (corpus level, as coco-caption computes it), CIDEr-D (document
 * frequencies over these images) and ROUGE-L, checked against the
 * pycocoevalcap port to 1e-6. captions[i] is scored against refs[i][0..
 * n_refs[i]), both tokenised as eval does (docs/model-format.md: runs of
 * letters, digits and apostrophes, lower-cased). An empty caption scores
 * zero; an image without references is IMCAP_E_ARG. */
typedef struct {
    double bleu[4];   /* BLEU-1..4 */
    double cider_d;
    double rouge_l;
    int n_images;
} imcap_metrics;

IMCAP_API imcap_status imcap_caption_metrics(const char *const *captions, const char *const *const *refs,
                                             const int *n_refs, int n, imcap_metrics *out, imcap_error *err);

/* What `imcap eval` does, as one call: the images of one split of a
 * Karpathy-format data set captioned by model (or the captions of a COCO
 * results file [{"image_id", "caption"}]) scored against the split's
 * references, plus the object, pointing, attention-mass and relation
 * metrics on annotated synthetic scenes. Images that fail, results for
 * unknown images and images without a result are counted and reported
 * through on_note (one line each, at most 20 of a kind), never fatal. */
typedef struct {
    const char *data;         /* the data set JSON (required) */
    const char *images;       /* the folder its file names are under (NULL: the data set's folder) */
    const char *split;        /* "train", "val", "test" (NULL), "restval" or "all" */
    const imcap_model *model; /* caption with this model, or */
    const char *results;      /* score this COCO results file */
    const char *model_path;   /* recorded in metrics.json (may be NULL) */
    imcap_options caption;    /* the search (imcap_options_default: beam 3) */
    int threads;              /* 0: the OpenMP default */
    const char *out_dir;      /* also DIR/metrics.json and, with a model, DIR/results.json (NULL: none) */
} imcap_eval_request;

typedef struct {
    void *ctx;
    void (*on_note)(void *ctx, const char *msg);
} imcap_eval_callbacks;

typedef struct {
    int n_split, n_scored;    /* images in the split; scored by the caption metrics */
    int n_failed, n_no_result, n_no_refs, n_unknown_ids, n_duplicates;
    int have_scores;
    imcap_metrics scores;
    int have_objects;         /* annotated scenes: */
    long object_images;
    double object_precision, object_recall, object_f1, relations, pointing, mass;
    char *table, *json;       /* the report as `imcap eval` prints it, and metrics.json's object */
} imcap_eval_outcome;

IMCAP_API imcap_status imcap_eval(const imcap_eval_request *r, const imcap_eval_callbacks *cb, imcap_eval_outcome *out,
                                  imcap_error *err);
IMCAP_API void imcap_eval_outcome_free(imcap_eval_outcome *o);

/* ---------------------------------------------------------------- folders into records
 *
 * What `imcap batch` and `imcap merge` do, as library calls (docs/batch.md
 * has the record fields, the formats and the resume and shard rules).
 *
 * imcap_batch_run captions every image under the inputs (folders walked,
 * images recognised by their bytes; files named are always taken and a bad
 * one is a record with an error) in sorted path order, one record per
 * image. With out: records go to OUT.partial as they finish, flushed one by
 * one, and OUT.partial becomes OUT when every input has its record, so OUT
 * only ever appears complete. resume keeps the records of an earlier run
 * (OUT and OUT.partial) and captions only the images without one (and the
 * failed ones). *stop set (a signal): no more images are taken, every
 * finished record is written, IMCAP_E_INTERRUPTED; resume continues. The
 * records are the same for any block and threads. Refusals of the
 * arguments (OUT a folder or one of the inputs, rendered files into an
 * input folder, resume without out) are IMCAP_E_ARG. */
typedef enum { IMCAP_RECORDS_JSONL = 0, IMCAP_RECORDS_CSV, IMCAP_RECORDS_TSV } imcap_record_format;

typedef struct {
    const char *const *inputs;    /* folders and image files */
    int n_inputs;
    int recursive;                /* walk subfolders too (each folder once) */
    const char *out;              /* the output file; NULL: records go to the sink callback */
    imcap_record_format format;   /* default jsonl */
    int timing;                   /* the ms field (default 1; 0: two runs give identical bytes) */
    int resume;
    int shard_index, shard_count; /* shard_count > 0: only the inputs with fnv1a64(path) % count == index - 1 */
    const char *overlays_dir;     /* per image: an overlay per word and a contact sheet (NULL: none) */
    const char *html_dir;         /* an offline gallery and a viewer per image (NULL: none) */
    imcap_options caption;        /* beam, max_length */
    imcap_render_options render;
    int block;                    /* images decoded together by each thread (default 32) */
    int threads;                  /* 0: the OpenMP default */
    volatile sig_atomic_t *stop;  /* may be NULL */
} imcap_batch_options;

typedef struct {
    void *ctx;
    /* out == NULL: where the records go (0, or non-zero to fail the run) */
    int (*sink)(void *ctx, const void *data, size_t n);
    /* what the walk saw, temporary files of a killed run removed, earlier
     * records left out: one line, no newline */
    void (*on_note)(void *ctx, const char *msg);
    /* an image that failed: its record holds the same message */
    void (*on_failed)(void *ctx, const char *msg);
    /* after each record: written of total in this run, seconds since it started */
    void (*on_record)(void *ctx, size_t written, size_t total, double seconds);
} imcap_batch_callbacks;

typedef struct {
    size_t inputs;      /* images (and failed inputs) after the walk and the shard */
    size_t prior;       /* with a good record from an earlier run */
    size_t todo;        /* captioned (or tried) in this run */
    size_t written;     /* records written in this run */
    size_t failed;      /* records with an error in the output */
    double seconds;
} imcap_batch_summary;

IMCAP_API void imcap_batch_options_default(imcap_batch_options *o);
IMCAP_API imcap_status imcap_batch_run(const imcap_model *m, const imcap_batch_options *o,
                                       const imcap_batch_callbacks *cb, imcap_batch_summary *sum, imcap_error *err);

/* Joins the outputs of batch runs over shards of one corpus (shard_count
 * N, each sorted by path) into exactly what one run over all of it would
 * have written: one header, records in path order, copied byte for byte.
 * IMCAP_E_ARG: an unfinished run's OUT.partial among the inputs, or out one
 * of them; IMCAP_E_FORMAT: outputs of two formats, a path in two inputs,
 * unsorted records, an incomplete last record. out is written atomically;
 * with out NULL the bytes go to o->sink. */
typedef struct {
    const char *html_dir; /* also DIR/index.html, the gallery of every record (NULL: none) */
    int (*sink)(void *ctx, const void *data, size_t n);
    void *ctx;
} imcap_merge_options;

typedef struct {
    size_t records, errors; /* records written; those with an error */
    int empty;              /* every input was empty */
} imcap_merge_summary;

IMCAP_API imcap_status imcap_merge(const char *const *inputs, int n, const char *out, const imcap_merge_options *o,
                                   imcap_merge_summary *sum, imcap_error *err);

#ifdef __cplusplus
}
#endif
#endif /* IMCAP_H */
