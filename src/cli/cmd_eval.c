/* cmd_eval.c — `imcap eval`: argv to imcap_eval (src/eval/evaluate.c); the
 * report on stdout, what happened to each image on stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "util/util.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: imcap eval [-m M] --data D.json [--images DIR] [--split S] [--beam K]\n"
            "                  [-o DIR] [-j N] [--json]\n"
            "       imcap eval --data D.json --results R.json [--split S] [-o DIR] [--json]\n\n"
            "Scores captions of one split of a Karpathy-format data set (dataset_coco.json,\n"
            "dataset_flickr8k.json, or what `imcap synth` writes) against its reference\n"
            "captions: corpus BLEU-1..4 and CIDEr-D computed as the COCO caption evaluation\n"
            "toolkit computes them, and ROUGE-L. Captions and references are both tokenised\n"
            "with the model format's tokeniser (the toolkit uses the PTB tokenizer; the two\n"
            "agree on plain lower-case words). When the data set's images carry \"objects\"\n"
            "(synthetic scenes) it also reports object precision / recall / F1 and relation\n"
            "accuracy and, when a model runs, attention pointing accuracy and attention mass.\n\n"
            "With --model (or the default model), every image of the split is captioned.\n"
            "With --results, the captions come from R.json in the COCO results format\n"
            "[{\"image_id\": ..., \"caption\": \"...\"}, ...], image_id being the image's\n"
            "cocoid / imgid or its file name.\n\n"
            "  --data D.json      the data set (required)\n"
            "  --images DIR       folder the data set's filepath/filename are under\n"
            "                     (default: the folder of D.json)\n"
            "  --split S          train, val, test, restval or all (default test)\n"
            "  -m, --model M      model file (default: $IMCAP_MODEL, else the shipped model)\n"
            "  --beam K           beam width, 1 = greedy (default 3)\n"
            "  -j, --threads N    worker threads over images (default: all cores)\n"
            "  --results R.json   score these captions instead of running a model\n"
            "  -o, --output DIR   write DIR/metrics.json (and, with a model, DIR/results.json\n"
            "                     in the COCO results format); created if missing (--out: the\n"
            "                     old spelling)\n"
            "  --json             print metrics.json's object on stdout instead of the table\n\n"
            "The metrics table (or --json's object) goes to stdout; images that cannot be read or captioned,\n"
            "results for unknown images and images without a result go to stderr and are\n"
            "counted, never fatal.\n"
            "Exit: 0 every image of the split scored, 1 some could not be (failed to load or\n"
            "caption, no result, no reference), 2 usage error, 3 data set, results file or\n"
            "model not loadable, or an output not writable.\n");
}

static void on_note(void *ctx, const char *msg) {
    (void)ctx;
    fprintf(stderr, "imcap eval: %s\n", msg);
}

int run_eval(int argc, char **argv) {
    const char *model_path = NULL;
    int threads = 0, beam_given = 0, json = 0, first = 0;
    char found[4096];
    imcap_eval_request r;
    memset(&r, 0, sizeof r);
    imcap_options_default(&r.caption);
    const cli_opt opts[] = {
        CLI_OPT_MODEL(&model_path),
        CLI_OPT_THREADS(&threads),
        CLI_OPT_OUTPUT(&r.out_dir),
        CLI_OPT_JSON(&json),
        {"data", 0, CLI_STR, &r.data, 0, 0, NULL, NULL},
        {"images", 0, CLI_STR, &r.images, 0, 0, NULL, NULL},
        {"split", 0, CLI_STR, &r.split, 0, 0, NULL, NULL},
        {"results", 0, CLI_STR, &r.results, 0, 0, NULL, NULL},
        {"beam", 0, CLI_INT, &r.caption.beam, 1, 1000, &beam_given, NULL},
        CLI_DEPRECATED("out", CLI_STR, &r.out_dir, "-o/--output"),
        CLI_END,
    };
    int pr = cli_parse("eval", argc, argv, opts, usage, &first);
    if (pr) return cli_parse_exit(pr);
    if (cli_no_positionals("eval", argc, argv, first, "the data set is --data D.json", usage)) return EXIT_USAGE;
    if (!r.data) {
        fprintf(stderr, "imcap eval: --data D.json is required\n");
        usage(stderr);
        return EXIT_USAGE;
    }
    if (r.results && (model_path || beam_given)) {
        fprintf(stderr, "imcap eval: --results scores a results file; it does not go with --model or --beam\n");
        return EXIT_USAGE;
    }
    const char *split = r.split ? r.split : "test";
    if (strcmp(split, "all") && strcmp(split, "train") && strcmp(split, "val") && strcmp(split, "test") &&
        strcmp(split, "restval")) {
        fprintf(stderr, "imcap eval: --split '%s': expected train, val, test, restval or all\n", split);
        return EXIT_USAGE;
    }
    imcap_model *m = NULL;
    if (!r.results) {
        cli_set_threads(threads);
        if (!(m = cli_load_model(model_path))) return EXIT_FATAL;
        if (!model_path && cli_default_model_path(found, sizeof found) == 0) model_path = found;
        r.model = m, r.model_path = model_path, r.threads = threads;
    }
    imcap_eval_callbacks cb = {NULL, on_note};
    imcap_eval_outcome out;
    imcap_error err;
    imcap_status s = imcap_eval(&r, &cb, &out, &err);
    imcap_model_free(m);
    if (s) {
        fprintf(stderr, "imcap eval: %s\n", err.msg);
        return s == IMCAP_E_ARG ? EXIT_USAGE : EXIT_FATAL;
    }
    const char *text = json ? out.json : out.table;
    int bad = cli_stdout_write("eval", text, strlen(text));
    int some = out.n_failed || out.n_no_result || out.n_no_refs;
    imcap_eval_outcome_free(&out);
    return bad ? EXIT_FATAL : some ? EXIT_SOME_FAILED : EXIT_ALL_OK;
}
