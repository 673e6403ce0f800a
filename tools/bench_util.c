/* bench_util.c - timing, statistics and memory bandwidth for inferno-bench. */
#include "bench_util.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

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

typedef struct bw_job {
    const uint64_t *buf;
    size_t n;
    uint64_t sums[64];
} bw_job;

static void bw_worker(void *ctx, int ith, int nth) {
    bw_job *j = ctx;
    long lo, hi;
    inf_pool_range((long)j->n, ith, nth, &lo, &hi);
    uint64_t a = 0, b = 0, c = 0, d = 0;
    for (long i = lo; i + 4 <= hi; i += 4) {
        a += j->buf[i];
        b += j->buf[i + 1];
        c += j->buf[i + 2];
        d += j->buf[i + 3];
    }
    j->sums[ith % 64] = a ^ b ^ c ^ d;
}

double bench_memory_bandwidth(int n_threads) {
    size_t bytes = (size_t)1 << 30;
    uint64_t *buf = malloc(bytes);
    if (!buf) return 0;
    memset(buf, 1, bytes);
    inf_pool *pool = NULL;
    if (inf_pool_create(&pool, n_threads, NULL)) { free(buf); return 0; }
    bw_job job = {buf, bytes / 8, {0}};
    double v[5];
    for (int r = 0; r < 5; r++) {
        double t0 = bench_now();
        inf_pool_run(pool, bw_worker, &job);
        v[r] = bytes / (bench_now() - t0) / 1e9;
    }
    inf_pool_free(pool);
    free(buf);
    return bench_median(v, 5);
}
