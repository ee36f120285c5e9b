/* cmd_info.c — `imcap info MODEL`: what a model file holds. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "model/model.h"

int run_info(int argc, char **argv) {
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: imcap info [MODEL]\n\nPrints the config, vocabulary size, parameter count and FLOPs per image\n"
                   "of MODEL (default: the shipped model).\n");
            return EXIT_ALL_OK;
        }
        if (argv[i][0] == '-') { fprintf(stderr, "imcap info: unknown option '%s'\n", argv[i]); return EXIT_USAGE; }
        if (path) { fprintf(stderr, "imcap info: one model at a time\n"); return EXIT_USAGE; }
        path = argv[i];
    }
    imcap_model *m = cli_load_model(path);
    if (!m) return EXIT_FATAL;
    imcap_model_info in;
    imcap_model_get_info(m, &in);
    char found[4096];
    printf("model:        %s\n", path ? path : (cli_default_model_path(found, sizeof found) == 0 ? found : "(default)"));
    printf("format:       %d\n", in.format);
    printf("config:       %s\n", imcap_model_config_json(m));
    printf("encoder:      %d layers, input 3x%dx%d -> features %dx%dx%d (L = %d cells of D = %d)\n", in.n_encoder_layers,
           in.image_size, in.image_size, in.feature_dim, in.grid_h, in.grid_w, in.grid_h * in.grid_w, in.feature_dim);
    const imcap_config *cc = &m->cfg;
    if (cc->has_domain)
        printf("in-domain:    encoder layer %d (%s, %d channels), %d numbers per image; threshold %.4g (the %g quantile "
               "of %d held-out images' scores) from %d training images\n",
               cc->domain_layer, imcap_layer_type_name(cc->layers[cc->domain_layer].type),
               cc->layers[cc->domain_layer].out_c, cc->domain_F, cc->domain_threshold, cc->domain_quantile,
               cc->domain_val_images, cc->domain_train_images);
    else
        printf("in-domain:    no statistics (captions cannot say how typical an image is; see imcap calibrate)\n");
    printf("decoder:      embed %d, hidden %d, attention %d, max_length %d\n", in.embed_dim, in.hidden_dim,
           in.attention_dim, in.max_length);
    printf("vocabulary:   %d tokens\n", in.vocab_size);
    printf("parameters:   %lld (%.2f MB as F32)\n", (long long)in.n_params, in.n_params * 4.0 / 1e6);
    printf("FLOPs/image:  %.1f M encoder + %.2f M per decoded token per hypothesis\n", in.encoder_flops / 1e6,
           in.decoder_flops / 1e6);
    printf("              = %.1f M for a greedy caption of max_length tokens\n",
           (in.encoder_flops + in.decoder_flops * in.max_length) / 1e6);
    const imcap_model *mm = m;
    for (int i = 0; i < mm->n_meta; i++) printf("metadata:     %s = %s\n", mm->meta[i].key, mm->meta[i].value);
    imcap_model_free(m);
    return EXIT_ALL_OK;
}
