/* fuzz_common.h — what every harness shares: a private temporary folder
 * (the only place a harness writes), fixtures from the source tree, and the
 * library's error contract checked on every failure. */
#ifndef IMCAP_FUZZ_COMMON_H
#define IMCAP_FUZZ_COMMON_H
#include <stddef.h>
#include <stdint.h>

#include "imcap.h"

/* The harness's folder under $TMPDIR (made on first use, removed with its
 * contents at exit), and name inside it in a static buffer. */
const char *fz_dir(void);
const char *fz_path(const char *name);
/* Writes n bytes to path (replacing it); aborts when it cannot, since a
 * harness that silently tests nothing is worse than one that stops. */
void fz_write(const char *path, const uint8_t *d, size_t n);
/* A fixture of the source tree (IMCAP_SOURCE_ROOT/rel), in a static buffer. */
const char *fz_source(const char *rel);
/* The whole fixture, NUL-terminated (malloc'd); aborts when missing. */
char *fz_read_source(const char *rel, size_t *size);
/* A failed call must say why: aborts when status is an error whose
 * message is empty. */
void fz_check_error(imcap_status s, const imcap_error *err);

#endif
