/* tsan_canary.c — proves the ThreadSanitizer build can see (tests/tsan_canary.sh):
 *   tsan_canary        the OpenMP constructs imcap uses (parallel, for with a
 *                      dynamic schedule, named critical, atomic, reduction),
 *                      each ordering its shared data: TSan must stay silent,
 *                      which it does only when Archer tells it what libomp
 *                      orders (otherwise the critical sections are races);
 *   tsan_canary race   the same with one unprotected increment: TSan must
 *                      report it, in this file. */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    int race = argc > 1 && !strcmp(argv[1], "race");
    long in_critical = 0, atomic_sum = 0, reduced = 0, unprotected = 0;
    int per_thread[4] = {0};
#pragma omp parallel num_threads(4)
    {
#pragma omp for schedule(dynamic, 1) reduction(+ : reduced)
        for (int i = 0; i < 64; i++) {
#pragma omp critical(canary)
            in_critical += i;
#pragma omp atomic
            atomic_sum += i;
            reduced += i;
        }
#pragma omp for schedule(static)
        for (int t = 0; t < 4; t++) per_thread[t] = t; /* disjoint elements */
        if (race) unprotected++;                            /* the planted race */
    }
    printf("%ld %ld %ld %d %ld\n", in_critical, atomic_sum, reduced, per_thread[3], unprotected);
    return in_critical == 2016 && atomic_sum == 2016 && reduced == 2016 ? 0 : 1;
}
