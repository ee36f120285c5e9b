/* consumer.c — a program outside the project, built against the installed
 * library exactly as a user would: `cc consumer.c $(pkg-config --cflags
 * --libs imcap)`. It loads a model, captions an image and prints
 * "PATH<TAB>caption"; scripts/install_check.sh compares that with the CLI.
 * Given a folder too, it writes the image's overlays, contact sheet and
 * viewer there with the rendering API. */
#include <imcap.h>
#include <stdio.h>

int main(int argc, char **argv) {
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: consumer MODEL IMAGE [OUTDIR]\n");
        return 2;
    }
    imcap_error err;
    imcap_model *m;
    if (imcap_model_load(argv[1], &m, &err) != IMCAP_OK) {
        fprintf(stderr, "consumer: %s\n", err.msg);
        return 1;
    }
    imcap_options opt;
    imcap_options_default(&opt);
    imcap_result *r;
    int rc = 0;
    if (imcap_caption_file(m, NULL, argv[2], &opt, &r, &err) == IMCAP_OK) {
        printf("%s\t%s\n", argv[2], r->hyps[0].text);
        if (argc == 4) {
            imcap_image img = {0};
            imcap_render_options ro;
            imcap_render_options_default(&ro);
            char stem[64];
            imcap_render_stem(argv[2], stem, sizeof stem);
            if (imcap_image_load(argv[2], &img, &err) != IMCAP_OK ||
                imcap_render_write(&img, r, argv[3], stem, argv[2], &ro, IMCAP_RENDER_ALL, &err) != IMCAP_OK) {
                fprintf(stderr, "consumer: %s\n", err.msg);
                rc = 1;
            }
            imcap_image_free(&img);
        }
        imcap_result_free(r);
    } else {
        fprintf(stderr, "consumer: %s\n", err.msg);
        rc = 1;
    }
    imcap_model_free(m);
    return rc;
}
