/* fuzz_dataset.c — a Karpathy-split data set JSON through the reader (paths
 * resolved under a temporary image root) and the vocabulary built from it, as
 * `imcap train --config` and `imcap init --vocab-data` do. */
#include <stdlib.h>

#include "data/dataset.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fz_path("dataset.json");
    fz_write(path, data, size);
    imcap_dataset ds;
    imcap_error err = {0};
    imcap_status s = imcap_dataset_load(path, fz_dir(), &ds, &err);
    fz_check_error(s, &err);
    if (s != IMCAP_OK) return 0;
    imcap_vocab v;
    s = imcap_vocab_build(&ds, 1, &v, &err);
    fz_check_error(s, &err);
    if (s == IMCAP_OK) imcap_vocab_free(&v);
    imcap_dataset_free(&ds);
    return 0;
}
