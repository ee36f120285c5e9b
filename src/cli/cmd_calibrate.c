/* cmd_calibrate.c — `imcap calibrate`: fit a model's in-domain statistics
 * (how typical an image is of its training images) to a data set. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "cli.h"
#include "data/cache.h"
#include "data/dataset.h"
#include "train/calibrate.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: imcap calibrate --data D.json --images DIR [--model M] -o OUT.safetensors [options]\n\n"
            "Adds in-domain statistics to a model: the mean and spread of its encoder's features\n"
            "over the train (+restval) images of a Karpathy-format data set, and a threshold set\n"
            "on the val images so that about 1%% of them would be flagged. Captions then report\n"
            "how typical each image is (\"domain_score\", \"in_domain\"), and imcap warns when an\n"
            "image is unlike what the model learnt from. `imcap train` does this at its end.\n\n"
            "  --model M        the model (default: the shipped model)\n"
            "  --quantile Q     of the val images' scores, the threshold (default 0.99)\n"
            "  --max-train N    use at most N training images, evenly spread (default 20000, 0 = all)\n"
            "  --layer N        describe encoder layer N (default: its second ReLU of at most 64 channels,\n"
            "                   or the max-pool right after it)\n"
            "  --cache FILE     preprocessed image cache (default OUT.cache)\n"
            "  -j, --threads N  worker threads (default: all cores); the result does not depend on it\n"
            "  -q, --quiet      no progress lines or summary\n"
            "  --json           the statistics as one JSON object on stdout: layer, channels, train_images,\n"
            "                   threshold, quantile, val_images, val_flagged, output\n");
}

int run_calibrate(int argc, char **argv) {
    const char *data = NULL, *images = NULL, *model = NULL, *out = NULL, *cache_path = NULL;
    int threads = 0, quiet = 0, json = 0;
    imcap_calibrate_options co = {0.99, 20000, -1};
    double quantile = co.quantile;
    int first = 0;
    const cli_opt opts[] = {
        CLI_OPT_MODEL(&model),
        CLI_OPT_OUTPUT(&out),
        CLI_OPT_THREADS(&threads),
        CLI_OPT_QUIET(&quiet),
        CLI_OPT_JSON(&json),
        {"data", 0, CLI_STR, &data, 0, 0, NULL, NULL},
        {"images", 0, CLI_STR, &images, 0, 0, NULL, NULL},
        {"cache", 0, CLI_STR, &cache_path, 0, 0, NULL, NULL},
        {"layer", 0, CLI_INT, &co.layer, 0, 1000, NULL, NULL},
        {"max-train", 0, CLI_INT, &co.max_train, 0, 2000000000, NULL, NULL},
        {"quantile", 0, CLI_FLOAT, &quantile, 0.5, 0.999999, NULL, NULL},
        CLI_END,
    };
    int pr = cli_parse("calibrate", argc, argv, opts, usage, &first);
    if (pr) return cli_parse_exit(pr);
    if (cli_no_positionals("calibrate", argc, argv, first, NULL, usage)) return EXIT_USAGE;
    co.quantile = quantile;
    if (!data || !images || !out) {
        fprintf(stderr, "imcap calibrate: --data, --images and -o are required\n");
        usage(stderr);
        return EXIT_USAGE;
    }
    if (!threads) threads = sysconf(_SC_NPROCESSORS_ONLN) > 0 ? (int)sysconf(_SC_NPROCESSORS_ONLN) : 1;
    cli_set_threads(threads);
    char cache_buf[4096];
    if (!cache_path) snprintf(cache_buf, sizeof cache_buf, "%s.cache", out), cache_path = cache_buf;
    imcap_model *m = cli_load_model(model);
    if (!m) return EXIT_FATAL;
    imcap_error err;
    imcap_dataset ds;
    int rc = EXIT_FATAL;
    if (imcap_dataset_load(data, images, &ds, &err) != IMCAP_OK) {
        fprintf(stderr, "imcap calibrate: %s\n", err.msg);
        imcap_model_free(m);
        return EXIT_FATAL;
    }
    cli_count_ctx cc = {"calibrate", "caching images", 8192, isatty(2), quiet};
    imcap_cache_callbacks cb = {cli_skipped_image, cli_count_progress, &cc};
    for (int i = 0; i < ds.n_warnings; i++) fprintf(stderr, "imcap calibrate: %s\n", ds.warnings[i]);
    imcap_image_cache cache;
    int failed = 0;
    if (imcap_cache_open(cache_path, &ds, m->cfg.image_size, &cb, &cache, &failed, &err) != IMCAP_OK) {
        fprintf(stderr, "imcap calibrate: %s\n", err.msg);
        goto done;
    }
    if (failed) fprintf(stderr, "imcap calibrate: %d of %d images could not be read and are skipped\n", failed, ds.n);
    if (imcap_calibrate(&m, &ds, &cache, NULL, &co, &err) != IMCAP_OK) {
        fprintf(stderr, "imcap calibrate: %s\n", err.msg);
        imcap_cache_close(&cache);
        goto done;
    }
    imcap_cache_close(&cache);
    const imcap_config *c = &m->cfg;
    if (!quiet)
        fprintf(stderr,
                "imcap calibrate: encoder layer %d (%s, %d channels) described on %d train images; threshold %.4g = the "
                "%g quantile of %d val images' scores (%d of them above it)\n",
                c->domain_layer, imcap_layer_type_name(c->layers[c->domain_layer].type), c->layers[c->domain_layer].out_c,
                c->domain_train_images, c->domain_threshold, c->domain_quantile, c->domain_val_images,
                c->domain_val_flagged);
    char cmd[4096];
    cli_command_line(cmd, sizeof cmd, argc, argv);
    if (imcap_model_set_metadata(m, "imcap.calibrate.command", cmd) != IMCAP_OK) {
        fprintf(stderr, "imcap calibrate: out of memory\n");
        goto done;
    }
    if (imcap_model_save(m, out, &err) != IMCAP_OK) {
        fprintf(stderr, "imcap calibrate: %s\n", err.msg);
        goto done;
    }
    rc = EXIT_ALL_OK;
    if (json) {
        imcap_buf b = {0};
        imcap_buf_printf(&b, "{\"layer\": %d, \"channels\": %d, \"train_images\": %d, \"threshold\": ", c->domain_layer,
                         c->layers[c->domain_layer].out_c, c->domain_train_images);
        imcap_buf_number(&b, c->domain_threshold, 9);
        imcap_buf_append(&b, ", \"quantile\": ", 14);
        imcap_buf_number(&b, c->domain_quantile, 9);
        imcap_buf_printf(&b, ", \"val_images\": %d, \"val_flagged\": %d, \"output\": ", c->domain_val_images,
                         c->domain_val_flagged);
        imcap_buf_json_string(&b, out);
        imcap_buf_append(&b, "}\n", 2);
        if (b.oom || cli_stdout_write("calibrate", b.s, b.len)) rc = EXIT_FATAL;
        imcap_buf_free(&b);
    }
done:
    imcap_dataset_free(&ds);
    imcap_model_free(m);
    return rc;
}
