/* backbone.h — a model on a pretrained torchvision / timm backbone
 * (`imcap init --backbone`). Internal. */
#ifndef IMCAP_BACKBONE_H
#define IMCAP_BACKBONE_H
#include "model.h"

typedef struct {
    const char *arch;          /* resnet18 ... resnet152, vgg11 ... vgg19, vggNN_bn */
    const char *weights;       /* the state_dict as safetensors */
    const char *layer;         /* NULL: layer4 (ResNet), through the last ReLU (VGG) */
    int grid;                  /* > 0: adaptive average pooling to grid x grid */
    int image_size;            /* 0: 224 */
    int coords;                /* append a coords layer */
    const char *decoder_where; /* names the decoder config in messages */
} imcap_backbone_spec;

/* The supported architectures, comma-separated, for messages and --help. */
const char *imcap_backbone_names(void);
/* decoder_json: {"embed_dim", "hidden_dim", "attention_dim", "max_length"},
 * each optional (512, 512, 512, 50), or NULL. The decoder is initialised at
 * random from seed as imcap_model_init_random does; the encoder holds the
 * file's weights. Every problem with the file names the tensor. */
imcap_status imcap_backbone_model_create(const imcap_backbone_spec *b, const char *decoder_json,
                                         const imcap_vocab *vocab, uint64_t seed, imcap_model **out, imcap_error *err);
#endif
