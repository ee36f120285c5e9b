/* fuzz_resume.c — an earlier `imcap batch` output (jsonl, csv or tsv) read as
 * `--resume` reads it: format detection from the first line, then record by
 * record, parsed, until the end, an incomplete last record or an error. */
#include <stdlib.h>

#include "batch/batch_walk.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fz_path("out.partial");
    fz_write(path, data, size);
    bw_reader r;
    if (bw_reader_open(&r, path) == 0) {
        bw_parsed p;
        int rc;
        long long end = r.end;
        while ((rc = bw_reader_next(&r, &p)) == 1) {
            if (!p.path) abort(); /* a record always names its image */
            if (r.end < end || r.end > (long long)size) abort(); /* resume truncates the file at r.end */
            end = r.end;
            bw_parsed_free(&p);
        }
        if (rc < 0 && !r.msg[0]) abort();
    } else if (!r.msg[0]) {
        abort();
    }
    bw_reader_close(&r);
    return 0;
}
