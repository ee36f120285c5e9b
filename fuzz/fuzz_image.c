/* fuzz_image.c — an image file of any kind through the decoder and the
 * preprocessing the caption path applies (resize to the model's input,
 * normalise), as `imcap caption` does with an untrusted file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "image/image.h"

static imcap_config cfg;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    /* the shipped model's preprocessing: 224 x 224, ImageNet mean and std */
    char *json = fz_read_source("models/default_config.json", NULL);
    imcap_error err;
    if (imcap_config_parse(json, "default_config.json", &cfg, &err) != IMCAP_OK) {
        fprintf(stderr, "fuzz_image: %s\n", err.msg);
        abort();
    }
    free(json);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    imcap_image img = {0};
    imcap_error err = {0};
    imcap_status s = imcap_image_load_memory(data, size, "fuzz-input", &img, &err);
    fz_check_error(s, &err);
    if (s != IMCAP_OK) return 0;
    if (img.width < 1 || img.height < 1 || !img.rgb) abort(); /* a loaded image has pixels */
    /* every pixel is read, so a short buffer shows under ASan */
    unsigned sum = 0;
    for (size_t i = 0; i < (size_t)img.width * img.height * 3; i++) sum += img.rgb[i];
    (void)sum;
    size_t S = (size_t)cfg.image_size;
    float *in = malloc(3 * S * S * sizeof *in);
    if (in) {
        s = imcap_image_to_input(&img, &cfg, in, &err);
        fz_check_error(s, &err);
        free(in);
    }
    imcap_image_free(&img);
    return 0;
}
