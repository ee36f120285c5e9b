/* fuzz_merge.c — `imcap merge` over shard outputs. The input holds up to
 * four shards separated by a line "@@shard"; the merged file and its HTML
 * gallery go to the harness's temporary folder. The merge logic is internal to
 * the CLI's merge command, so the command itself runs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "fuzz_common.h"

#define MAX_SHARDS 4
static const char sep[] = "\n@@shard\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char names[MAX_SHARDS][4096], out[4096], html[4096];
    char *argv[8 + MAX_SHARDS];
    int argc = 0;
    snprintf(out, sizeof out, "%s", fz_path("merged"));
    snprintf(html, sizeof html, "%s", fz_path("html"));
    argv[argc++] = "merge";
    argv[argc++] = "-q";
    argv[argc++] = "-o";
    argv[argc++] = out;
    argv[argc++] = "--html";
    argv[argc++] = html;
    size_t at = 0;
    for (int k = 0; k < MAX_SHARDS && at <= size; k++) {
        const uint8_t *next = k + 1 < MAX_SHARDS ? memmem(data + at, size - at, sep, sizeof sep - 1) : NULL;
        size_t len = next ? (size_t)(next - (data + at)) + 1 : size - at; /* the shard keeps its last newline */
        char name[32];
        snprintf(name, sizeof name, "shard%d.jsonl", k);
        snprintf(names[k], sizeof names[k], "%s", fz_path(name));
        fz_write(names[k], data + at, len);
        argv[argc++] = names[k];
        at = next ? (size_t)(next - data) + sizeof sep - 1 : size + 1;
    }
    argv[argc] = NULL;
    int rc = run_merge(argc, argv);
    if (rc < 0 || rc > 3) abort(); /* the documented exit statuses */
    return 0;
}
