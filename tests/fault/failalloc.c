/* failalloc.c — an LD_PRELOAD shim for the allocation-failure test
 * (tests/test_failalloc.c). With IMCAP_FAIL_AT=n in the environment, the
 * n-th allocation made by the program's own code (the imcap executable,
 * which holds the library's core) returns NULL; allocations by the C
 * library, OpenMP or cJSON for themselves are passed through and not
 * counted. The one it fails is announced on stderr ("failalloc: failed
 * allocation n"), so the test knows whether it injected anything. With
 * IMCAP_FAIL_COUNT set it only counts, and prints the total at exit. */
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

static uintptr_t lo, hi;         /* the main program's text */
static long fail_at = -1, count; /* which allocation fails; how many so far */
static int armed, counting;

static int main_range(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size, (void)data;
    if (info->dlpi_name && info->dlpi_name[0]) return 0; /* the first, unnamed entry is the program */
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *p = &info->dlpi_phdr[i];
        if (p->p_type != PT_LOAD || !(p->p_flags & PF_X)) continue;
        uintptr_t a = info->dlpi_addr + p->p_vaddr, b = a + p->p_memsz;
        if (!lo || a < lo) lo = a;
        if (b > hi) hi = b;
    }
    return 1;
}

static void report(void) {
    if (counting) fprintf(stderr, "failalloc: %ld allocations\n", count);
}

__attribute__((constructor)) static void init(void) {
    const char *at = getenv("IMCAP_FAIL_AT");
    counting = getenv("IMCAP_FAIL_COUNT") != NULL;
    if (at) fail_at = atol(at);
    dl_iterate_phdr(main_range, NULL);
    if (counting) atexit(report);
    armed = 1;
}

/* 1: this allocation fails */
static int fail_here(void *caller) {
    uintptr_t c = (uintptr_t)caller;
    if (!armed || c < lo || c >= hi) return 0;
    long n = __atomic_add_fetch(&count, 1, __ATOMIC_SEQ_CST);
    if (n != fail_at) return 0;
    static const char msg[] = "failalloc: failed allocation\n";
    if (write(2, msg, sizeof msg - 1) < 0) { /* nothing to do */ }
    return 1;
}

void *malloc(size_t n) { return fail_here(__builtin_return_address(0)) ? NULL : __libc_malloc(n); }
void *calloc(size_t a, size_t b) { return fail_here(__builtin_return_address(0)) ? NULL : __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { return fail_here(__builtin_return_address(0)) ? NULL : __libc_realloc(p, n); }
void *aligned_alloc(size_t al, size_t n) { return fail_here(__builtin_return_address(0)) ? NULL : __libc_memalign(al, n); }
int posix_memalign(void **out, size_t al, size_t n) {
    if (fail_here(__builtin_return_address(0))) return 12; /* ENOMEM */
    void *p = __libc_memalign(al, n);
    if (!p) return 12;
    *out = p;
    return 0;
}
char *strdup(const char *s) {
    if (fail_here(__builtin_return_address(0))) return NULL;
    size_t n = strlen(s) + 1;
    char *d = __libc_malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}
