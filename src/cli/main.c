/* main.c — `imcap COMMAND ...`: dispatches to the run_<command> functions. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

const char *cli_argv0 = "imcap";

typedef struct {
    const char *name;
    int (*run)(int, char **);
    const char *summary;
} command;

static const command commands[] = {
    {"caption", run_caption, "caption images (plain lines or JSON, optional trace)"},
    {"attend", run_attend, "write attention overlays, a contact sheet and an HTML viewer"},
    {"batch", run_batch, "caption folders of images to JSONL/CSV/TSV, resumable, shardable"},
    {"merge", run_merge, "join the outputs of sharded batch runs"},
    {"eval", run_eval, "score captions: BLEU, CIDEr-D, ROUGE-L, objects, attention"},
    {"train", run_train, "train a model on a Karpathy-format data set"},
    {"synth", run_synth, "generate a synthetic captioned scene data set"},
    {"init", run_init, "write a new model (random, or on a pretrained backbone)"},
    {"export", run_export, "write a training checkpoint's weights as a model"},
    {"calibrate", run_calibrate, "add in-domain statistics to a model (flags atypical images)"},
    {"info", run_info, "print a model's config, vocabulary size, parameters and FLOPs"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: imcap COMMAND [OPTIONS] ...\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n`imcap COMMAND --help` describes a command; `imcap -V` (--version) prints the version.\n"
               "exit codes: 0 all inputs done, 1 some inputs failed, 2 usage error, 3 fatal error\n");
}

int main(int argc, char **argv) {
    cli_argv0 = argv[0];
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return EXIT_ALL_OK;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V") || !strcmp(argv[1], "version")) {
        printf("imcap %s (model format %d)\n", IMCAP_VERSION, IMCAP_FORMAT_VERSION);
        return EXIT_ALL_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "imcap: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return EXIT_USAGE;
}
