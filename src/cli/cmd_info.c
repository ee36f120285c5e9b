/* cmd_info.c — `imcap info MODEL`: what a model file holds. */
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "util/util.h"
#include "model/model.h"

static void usage(FILE *f) {
    fprintf(f, "usage: imcap info [-m MODEL | MODEL] [--json]\n\n"
               "Prints the config, vocabulary size, parameter count and FLOPs per image of MODEL\n"
               "(default: $IMCAP_MODEL, else the shipped model). --json: one JSON object with\n"
               "the same facts (path, format, config, layers, image_size, grid, feature_dim,\n"
               "embed_dim, hidden_dim, attention_dim, max_length, vocab_size, parameters,\n"
               "encoder_flops, decoder_flops_per_token, domain, metadata).\n");
}

/* 0, or -1 out of memory (after saying so) */
static int info_json(const char *path, const imcap_model *m, const imcap_model_info *in) {
    imcap_buf b = {0};
    imcap_buf_append(&b, "{\"path\": ", 9);
    imcap_buf_json_string(&b, path);
    imcap_buf_printf(&b, ", \"format\": %d, \"config\": %s, \"layers\": %d, \"image_size\": %d, \"grid\": [%d, %d], "
                         "\"feature_dim\": %d, \"embed_dim\": %d, \"hidden_dim\": %d, \"attention_dim\": %d, "
                         "\"max_length\": %d, \"vocab_size\": %d, \"parameters\": %lld, \"encoder_flops\": %.0f, "
                         "\"decoder_flops_per_token\": %.0f, \"domain\": ",
                     in->format, imcap_model_config_json(m), in->n_encoder_layers, in->image_size, in->grid_h,
                     in->grid_w, in->feature_dim, in->embed_dim, in->hidden_dim, in->attention_dim, in->max_length,
                     in->vocab_size, (long long)in->n_params, in->encoder_flops, in->decoder_flops);
    const imcap_config *cc = &m->cfg;
    if (cc->has_domain)
        imcap_buf_printf(&b, "{\"layer\": %d, \"numbers\": %d, \"threshold\": %.9g}", cc->domain_layer, cc->domain_F,
                         cc->domain_threshold);
    else
        imcap_buf_append(&b, "null", 4);
    imcap_buf_append(&b, ", \"metadata\": {", 15);
    for (int i = 0; i < m->n_meta; i++) {
        if (i) imcap_buf_append(&b, ", ", 2);
        imcap_buf_json_string(&b, m->meta[i].key);
        imcap_buf_append(&b, ": ", 2);
        imcap_buf_json_string(&b, m->meta[i].value);
    }
    imcap_buf_append(&b, "}}\n", 3);
    int oom = b.oom;
    if (oom) fprintf(stderr, "imcap info: out of memory\n");
    else fwrite(b.s, 1, b.len, stdout);
    imcap_buf_free(&b);
    return oom ? -1 : 0;
}

int run_info(int argc, char **argv) {
    const char *path = NULL;
    int json = 0, first = 0;
    const cli_opt opts[] = {CLI_OPT_MODEL(&path), CLI_OPT_JSON(&json), CLI_END};
    int pr = cli_parse("info", argc, argv, opts, usage, &first);
    if (pr) return cli_parse_exit(pr);
    if (argc - first > 1 || (path && argc - first == 1)) {
        fprintf(stderr, "imcap info: one model at a time\n");
        return EXIT_USAGE;
    }
    if (argc - first == 1) path = argv[first];
    imcap_model *m = cli_load_model(path);
    if (!m) return EXIT_FATAL;
    char found[4096];
    const char *shown = path ? path : (cli_default_model_path(found, sizeof found) == 0 ? found : "(default)");
    imcap_model_info in;
    imcap_model_get_info(m, &in);
    if (json) {
        int rc = info_json(shown, m, &in) == 0 ? EXIT_ALL_OK : EXIT_FATAL;
        imcap_model_free(m);
        return rc;
    }
    printf("model:        %s\n", shown);
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
    printf("decoder:      embed %d, hidden %d, attention %d, max_length %d%s\n", in.embed_dim, in.hidden_dim,
           in.attention_dim, in.max_length, cc->deep_output ? "; deep output layer" : "");
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
