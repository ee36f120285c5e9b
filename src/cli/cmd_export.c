/* cmd_export.c — `imcap export CKPT -o M.safetensors`: a checkpoint's
 * current weights as a model that captions (a run's best model is OUT;
 * this is for the weights at the checkpoint's step). */
#include <stdio.h>
#include <string.h>

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
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return EXIT_ALL_OK; }
        if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) { quiet = 1; continue; }
        if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            if (i + 1 >= argc) { fprintf(stderr, "imcap export: %s needs a file\n", a); return EXIT_USAGE; }
            out = argv[++i];
            continue;
        }
        if (a[0] == '-' && a[1]) { fprintf(stderr, "imcap export: unknown option '%s'\n", a); usage(stderr); return EXIT_USAGE; }
        if (in) { fprintf(stderr, "imcap export: one checkpoint at a time ('%s' and '%s')\n", in, a); return EXIT_USAGE; }
        in = a;
    }
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
