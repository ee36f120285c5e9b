/* fuzz_model.c — a model file (safetensors container, header JSON, config,
 * vocabulary, tensors) through imcap_model_load_memory. A model that loads
 * must answer every query and survive a save/load round trip. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "model/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    imcap_model *m = NULL;
    imcap_error err = {0};
    imcap_status s = imcap_model_load_memory(data, size, "fuzz-model", &m, &err);
    fz_check_error(s, &err);
    if (s != IMCAP_OK) {
        if (m) abort(); /* the API promises *out NULL on failure */
        return 0;
    }
    imcap_model_info info;
    imcap_model_get_info(m, &info);
    for (int i = 0; i < info.vocab_size; i++)
        if (!imcap_model_word(m, i)) abort();
    if (imcap_model_word(m, info.vocab_size) || imcap_model_word(m, -1)) abort();
    if (!imcap_model_config_json(m)) abort();
    (void)imcap_model_metadata(m, "imcap.train.command");

    /* what loads must save and load again */
    unsigned char *out = NULL;
    size_t n = 0;
    s = imcap_model_serialize(m, &out, &n, &err);
    if (s == IMCAP_OK) {
        imcap_model *again = NULL;
        s = imcap_model_load_memory(out, n, "fuzz-model (saved again)", &again, &err);
        if (s != IMCAP_OK) {
            fprintf(stderr, "fuzz_model: a loaded model does not load once saved: %s\n", err.msg);
            abort();
        }
        imcap_model_free(again);
        free(out);
    } else if (s != IMCAP_E_NOMEM) {
        fprintf(stderr, "fuzz_model: a loaded model does not serialise: %s\n", err.msg);
        abort();
    }
    imcap_model_free(m);
    return 0;
}
