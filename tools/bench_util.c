/* bench_util.c - timing, statistics and memory bandwidth for inferno-bench. */
#include "bench_util.h"

#include <stdlib.h>
#include <time.h>

#include "cpu_bench.h"
#include "threadpool.h"

double bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

uint64_t bench_rand(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double bench_median(double *v, int n) {
    if (n <= 0) return 0;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double bench_memory_bandwidth(int n_threads) {
    inf_pool *pool = NULL;
    if (inf_pool_create(&pool, n_threads, NULL)) return 0;
    double gbps = cpu_bench_memory_bandwidth(pool, (size_t)1 << 30, 0.5);
    inf_pool_free(pool);
    return gbps > 0 ? gbps : 0;
}
