/* cmd_export.c — `imcap export CKPT -o M.safetensors`: a checkpoint's
 * current weights as a model that captions (a run's best model is OUT;
 * this is for the weights at the checkpoint's step). */
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "train/train.h"

static void usage(FILE *f) {
    fprintf(f, "usage: imcap export CHECKPOINT -o MODEL.safetensors [-q]\n\n"
               "Writes the weights a training checkpoint holds (the step it was written at, not the\n"
               "best model of the run) as a model file. Its metadata says which checkpoint and step\n"
               "it comes from and that these weights were not validated.\n"
               "Exit: 0 written, 2 usage error, 3 the checkpoint cannot be read or the model written.\n");
}

int run_export(int argc, char **argv) {
    const char *in = NULL, *out = NULL;
    int quiet = 0;
    int first = 0;
    const cli_opt opts[] = {CLI_OPT_OUTPUT(&out), CLI_OPT_QUIET(&quiet), CLI_END};
    int pr = cli_parse("export", argc, argv, opts, usage, &first);
    if (pr) return cli_parse_exit(pr);
    if (argc - first > 1) {
        fprintf(stderr, "imcap export: one checkpoint at a time ('%s' and '%s')\n", argv[first], argv[first + 1]);
        return EXIT_USAGE;
    }
    if (first < argc) in = argv[first];
    if (!in || !out) { usage(stderr); return EXIT_USAGE; }
    imcap_model *m = NULL;
    imcap_train_state st = {0};
    imcap_error err;
    if (imcap_checkpoint_load(in, &m, &st, &err) != IMCAP_OK) {
        fprintf(stderr, "imcap export: %s\n", err.msg);
        return EXIT_FATAL;
    }
    char meta[4200];
    snprintf(meta, sizeof meta, "not validated: the weights of checkpoint %s at step %ld", in, st.step);
    int rc = EXIT_FATAL;
    if (imcap_model_set_metadata(m, "imcap.train.val", meta) != IMCAP_OK ||
        imcap_model_set_metadata(m, "imcap.train.val_objects", "not validated") != IMCAP_OK) {
        fprintf(stderr, "imcap export: out of memory\n");
    } else if (imcap_model_save(m, out, &err) != IMCAP_OK) {
        fprintf(stderr, "imcap export: %s\n", err.msg);
    } else {
        if (!quiet) fprintf(stderr, "imcap export: step %ld of %s written to %s\n", st.step, in, out);
        rc = EXIT_ALL_OK;
    }
    imcap_train_state_free(&st);
    imcap_model_free(m);
    return rc;
}
