/* testutil.h — helpers shared by the Criterion tests. */
#ifndef IMCAP_TESTUTIL_H
#define IMCAP_TESTUTIL_H
#include <stddef.h>
#include <stdint.h>

/* $IMCAP_SOURCE_ROOT/rel (static buffer rotated over 8 slots). */
const char *tu_src(const char *rel);
/* A fresh empty directory under the build tree for this test's files. */
const char *tu_tmpdir(const char *name);
/* Path of the imcap executable under test. */
const char *tu_exe(void);
/* Runs a shell command; returns its exit status (0..255) and captures
 * stdout / stderr into malloc'd strings when the pointers are non-NULL. */
int tu_run(const char *cmd, char **out, char **err);
/* Writes bytes to path (not atomic: tests only). */
void tu_write(const char *path, const void *data, size_t n);
char *tu_read(const char *path, size_t *n);
/* Deterministic pseudo-random double in [lo, hi) from *state (splitmix64). */
double tu_urand(uint64_t *state, double lo, double hi);
/* dir/name, malloc'd. */
char *tu_path(const char *dir, const char *name);
/* Whether path exists (a dangling symlink counts). */
int tu_exists(const char *path);
/* In dir: a Flickr8k-shaped data set of n 24x24 pictures (a red or blue
 * square on the left or right of a grey field; learnable in a few dozen
 * steps) as dataset_flickr8k.json and Flicker8k_Dataset/, and a tiny
 * config.json for it. */
void tu_flickr_fixture(const char *dir, int n);
#endif
