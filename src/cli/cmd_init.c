/* cmd_init.c — `imcap init`: a randomly initialised model, for tests and as
 * the start of training. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "data/dataset.h"
#include "model/backbone.h"
#include "model/model.h"
#include "util/util.h"

static void usage(FILE *f) {
    fprintf(f, "usage: imcap init --config CFG.json [--encoder-from M] VOCABULARY [--seed N] -o MODEL.safetensors\n"
               "       imcap init --backbone ARCH --backbone-weights W.safetensors [--backbone-layer LAYER]\n"
               "                  [--grid N] [--image-size S] [--coords] [--config DECODER.json]\n"
               "                  VOCABULARY [--seed N] -o MODEL.safetensors\n\n"
               "VOCABULARY is --vocab WORDS.txt, one token per line (<pad> <start> <end> <unk> are\n"
               "prepended unless the file already starts with them), or --vocab-data D.json\n"
               "[--min-count N]: the words of the train (+restval) captions of a Karpathy-format\n"
               "data set seen at least N times (default 5), as imcap train --config builds it. Weights: He-normal for the convs,\n"
               "Xavier-uniform for the affine maps, U(-0.1, 0.1) for the embedding, zero biases\n"
               "(LSTM forget gate bias 1). --encoder-from M takes the encoder's weights from model M,\n"
               "whose encoder (image size, mean, std, layers) must be CFG's: a new decoder over a\n"
               "trained encoder (train it with --freeze-encoder).\n\n"
               "With --backbone the encoder is a pretrained network from its torchvision or timm\n"
               "state_dict saved as safetensors (W.safetensors), cut after LAYER:\n"
               "  ARCH     %s\n"
               "  LAYER    ResNet: layer1..layer4 (default layer4); VGG: features.N (default:\n"
               "           through the last ReLU, i.e. features without its final max-pool)\n"
               "  --grid N adaptive average pooling of the features to N x N cells\n"
               "  --coords append the two coordinate channels (format's coords layer)\n"
               "  S        input size (default 224); mean and std are ImageNet's\n"
               "DECODER.json may set embed_dim, hidden_dim, attention_dim (default 512 each)\n"
               "and max_length (default 50).\n",
            imcap_backbone_names());
}

/* Reads WORDS.txt into v (specials first). */
static int read_words(const char *path, imcap_vocab *v) {
    unsigned char *data;
    size_t size;
    imcap_error err;
    if (imcap_read_file(path, &data, &size, &err)) { fprintf(stderr, "imcap init: %s\n", err.msg); return -1; }
    imcap_buf json = {0};
    imcap_buf_append(&json, "[", 1);
    static const char *sp[4] = {"<pad>", "<start>", "<end>", "<unk>"};
    int n = 0, line = 0, has_specials = 1;
    char *save = NULL;
    /* the specials are prepended only when the file does not start with them */
    char *copy = strdup((char *)data);
    char *tok = strtok_r(copy, "\n", &save);
    for (int k = 0; k < 4; k++, tok = tok ? strtok_r(NULL, "\n", &save) : NULL) {
        if (tok) { size_t l = strlen(tok); if (l && tok[l - 1] == '\r') tok[l - 1] = 0; }
        if (!tok || strcmp(tok, sp[k])) { has_specials = 0; break; }
    }
    free(copy);
    if (!has_specials)
        for (int k = 0; k < 4; k++) { imcap_buf_printf(&json, "%s\"%s\"", n ? ", " : "", sp[k]); n++; }
    save = NULL;
    for (char *w = strtok_r((char *)data, "\n", &save); w; w = strtok_r(NULL, "\n", &save)) {
        line++;
        size_t l = strlen(w);
        if (l && w[l - 1] == '\r') w[--l] = 0;
        if (!l) continue;
        if (n) imcap_buf_append(&json, ", ", 2);
        imcap_buf_json_string(&json, w);
        n++;
    }
    imcap_buf_append(&json, "]", 1);
    free(data);
    if (json.oom) {
        imcap_buf_free(&json);
        fprintf(stderr, "imcap init: %s: out of memory\n", path);
        return -1;
    }
    imcap_status s = imcap_vocab_parse(json.s, path, v, &err);
    imcap_buf_free(&json);
    if (s) { fprintf(stderr, "imcap init: %s\n", err.msg); return -1; }
    return 0;
}

int run_init(int argc, char **argv) {
    const char *cfg_path = NULL, *vocab_path = NULL, *vocab_data = NULL, *out = NULL;
    imcap_backbone_spec bb = {0};
    const char *encoder_from = NULL;
    int seed = 1, min_count = 5;
    int first = 0;
    const cli_opt opts[] = {
        CLI_OPT_OUTPUT(&out),
        {"config", 0, CLI_STR, &cfg_path, 0, 0, NULL, NULL},
        {"vocab", 0, CLI_STR, &vocab_path, 0, 0, NULL, NULL},
        {"vocab-data", 0, CLI_STR, &vocab_data, 0, 0, NULL, NULL},
        {"min-count", 0, CLI_INT, &min_count, 1, 1000000, NULL, NULL},
        {"seed", 0, CLI_INT, &seed, 0, 2147483647, NULL, NULL},
        {"encoder-from", 0, CLI_STR, &encoder_from, 0, 0, NULL, NULL},
        {"backbone", 0, CLI_STR, &bb.arch, 0, 0, NULL, NULL},
        {"backbone-weights", 0, CLI_STR, &bb.weights, 0, 0, NULL, NULL},
        {"backbone-layer", 0, CLI_STR, &bb.layer, 0, 0, NULL, NULL},
        {"grid", 0, CLI_INT, &bb.grid, 1, 4096, NULL, NULL},
        {"image-size", 0, CLI_INT, &bb.image_size, 1, 4096, NULL, NULL},
        {"coords", 0, CLI_FLAG, &bb.coords, 0, 0, NULL, NULL},
        CLI_END,
    };
    int pr = cli_parse("init", argc, argv, opts, usage, &first);
    if (pr) return cli_parse_exit(pr);
    if (cli_no_positionals("init", argc, argv, first, NULL, usage)) return EXIT_USAGE;
    int backbone = bb.arch || bb.weights;
    if (backbone && (!bb.arch || !bb.weights)) {
        fprintf(stderr, "imcap init: --backbone and --backbone-weights go together\n");
        return EXIT_USAGE;
    }
    if (backbone && encoder_from) {
        fprintf(stderr, "imcap init: --encoder-from goes with --config, not --backbone\n");
        return EXIT_USAGE;
    }
    if (!backbone && (bb.layer || bb.grid || bb.image_size || bb.coords)) {
        fprintf(stderr, "imcap init: --backbone-layer, --grid, --image-size and --coords need --backbone\n");
        return EXIT_USAGE;
    }
    if ((!cfg_path && !backbone) || !!vocab_path == !!vocab_data || !out) {
        fprintf(stderr, "imcap init: %sone of --vocab and --vocab-data, and -o are required\n",
                backbone ? "" : "--config (or --backbone), ");
        usage(stderr);
        return EXIT_USAGE;
    }
    imcap_error err;
    unsigned char *text = NULL;
    size_t size;
    if (cfg_path && imcap_read_file(cfg_path, &text, &size, &err)) {
        fprintf(stderr, "imcap init: %s\n", err.msg);
        return EXIT_FATAL;
    }
    imcap_vocab v;
    if (vocab_path && read_words(vocab_path, &v)) { free(text); return EXIT_FATAL; }
    if (vocab_data) {
        imcap_dataset ds;
        imcap_status vs = imcap_dataset_load(vocab_data, ".", &ds, &err);
        if (!vs) vs = imcap_vocab_build(&ds, min_count, &v, &err), imcap_dataset_free(&ds);
        if (vs) {
            fprintf(stderr, "imcap init: %s\n", err.msg);
            free(text);
            return EXIT_FATAL;
        }
    }
    imcap_model *m = NULL;
    imcap_status s;
    if (backbone) {
        bb.decoder_where = cfg_path;
        s = imcap_backbone_model_create(&bb, (const char *)text, &v, (uint64_t)seed, &m, &err);
    } else {
        imcap_config cfg;
        s = imcap_config_parse((char *)text, cfg_path, &cfg, &err);
        if (!s && (s = imcap_model_create(&cfg, &v, &m, &err)) == IMCAP_OK) imcap_model_init_random(m, (uint64_t)seed);
        if (!s && encoder_from) {
            imcap_model *src = NULL;
            s = imcap_model_load(encoder_from, &src, &err);
            if (!s) s = imcap_model_copy_encoder(m, src, encoder_from, &err);
            imcap_model_free(src);
            if (!s && imcap_model_set_metadata(m, "imcap.init.encoder_from", encoder_from))
                s = imcap_fail(&err, IMCAP_E_NOMEM, "out of memory");
        }
    }
    free(text);
    imcap_vocab_free(&v);
    if (s) { fprintf(stderr, "imcap init: %s\n", err.msg); return s == IMCAP_E_ARG ? EXIT_USAGE : EXIT_FATAL; }
    char seedtxt[32];
    snprintf(seedtxt, sizeof seedtxt, "%d", seed);
    imcap_model_set_metadata(m, "imcap.init.seed", seedtxt);
    s = imcap_model_save(m, out, &err);
    imcap_model_free(m);
    if (s) { fprintf(stderr, "imcap init: %s\n", err.msg); return EXIT_FATAL; }
    return EXIT_ALL_OK;
}
