/* fuzz_train.c — the JSON a training run reads: the model config of
 * `imcap train --config CFG.json` and the header of a checkpoint read back
 * by `imcap train --resume CKPT` (step, best score, the run's options). The
 * same input is tried as both: as a config it must parse into a config whose
 * canonical JSON parses to the same text; as a checkpoint header it is
 * spliced into an otherwise valid checkpoint of a tiny model. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "model/model.h"
#include "train/train.h"

static unsigned char *model_bytes; /* a tiny model's file */
static size_t model_size, moment_bytes;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    char *json = fz_read_source("tests/data/models/tiny_config.json", NULL);
    imcap_config cfg;
    imcap_error err;
    char *words[] = {"<pad>", "<start>", "<end>", "<unk>", "a", "red", "circle"};
    imcap_vocab v = {(int)(sizeof words / sizeof *words), words};
    imcap_model *m = NULL;
    if (imcap_config_parse(json, "tiny_config.json", &cfg, &err) != IMCAP_OK ||
        imcap_model_create(&cfg, &v, &m, &err) != IMCAP_OK) {
        fprintf(stderr, "fuzz_train: %s\n", err.msg);
        abort();
    }
    free(json);
    imcap_model_init_random(m, 1);
    moment_bytes = 2 * m->tab.total * sizeof(float);
    if (imcap_model_serialize(m, &model_bytes, &model_size, &err) != IMCAP_OK) abort();
    imcap_model_free(m);
    return 0;
}

static void as_config(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (!text) return;
    memcpy(text, data, size);
    text[size] = 0;
    imcap_config cfg;
    imcap_error err = {0};
    imcap_status s = imcap_config_parse(text, "fuzz-config", &cfg, &err);
    fz_check_error(s, &err);
    free(text);
    if (s != IMCAP_OK) return;
    /* `imcap init` stores the canonical form in the model: it must read back as itself */
    char *canon = imcap_config_to_json(&cfg);
    if (!canon) return;
    imcap_config again;
    if (imcap_config_parse(canon, "canonical config", &again, &err) != IMCAP_OK) {
        fprintf(stderr, "fuzz_train: the canonical JSON of a valid config does not parse: %s\n%s\n", err.msg, canon);
        abort();
    }
    char *canon2 = imcap_config_to_json(&again);
    if (canon2 && strcmp(canon, canon2) != 0) {
        fprintf(stderr, "fuzz_train: canonical config JSON changes on a round trip:\n%s\n%s\n", canon, canon2);
        abort();
    }
    free(canon2);
    free(canon);
}

static void put_u64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }

static void as_checkpoint(const uint8_t *data, size_t size) {
    size_t padded = (size + 7) / 8 * 8;
    size_t total = 16 + padded + 8 + model_size + moment_bytes;
    unsigned char *ck = calloc(total, 1);
    if (!ck) return;
    memcpy(ck, "IMCAPCK1", 8);
    put_u64(ck + 8, padded);
    memcpy(ck + 16, data, size);
    memset(ck + 16 + size, ' ', padded - size);
    put_u64(ck + 16 + padded, model_size);
    memcpy(ck + 24 + padded, model_bytes, model_size);
    const char *path = fz_path("run.ckpt");
    fz_write(path, ck, total);
    free(ck);
    imcap_model *m = NULL;
    imcap_train_state st;
    imcap_error err = {0};
    imcap_status s = imcap_checkpoint_load(path, &m, &st, &err);
    fz_check_error(s, &err);
    if (s != IMCAP_OK) return;
    imcap_train_state_free(&st);
    imcap_model_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    as_config(data, size);
    as_checkpoint(data, size);
    return 0;
}
