/* fuzz_results.c — a COCO results file (the captions of another system)
 * scored by `imcap eval --results` against the references of a fixed data set
 * (tests/data/eval/karpathy_small.json, every split). The reader is internal
 * to the CLI's eval command, so the command itself runs; its report goes to
 * stdout, which scripts/fuzz.sh closes. */
#include <stdlib.h>

#include "cli/cli.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char data_path[4096];
    if (!data_path[0]) snprintf(data_path, sizeof data_path, "%s", fz_source("tests/data/eval/karpathy_small.json"));
    char results[4096];
    snprintf(results, sizeof results, "%s", fz_path("results.json"));
    fz_write(results, data, size);
    char *argv[] = {"eval", "--data", data_path, "--results", results, "--split", "all", "--json", NULL};
    int rc = run_eval((int)(sizeof argv / sizeof *argv) - 1, argv);
    if (rc < 0 || rc > 3) abort(); /* the documented exit statuses */
    return 0;
}
