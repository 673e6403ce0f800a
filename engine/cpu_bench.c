/* cpu_bench.c - kernel micro-benchmarks (see cpu_bench.h). */
#include "cpu_bench.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpu_ops.h"
#include "cpu_ops_impl.h"

#define CPU_BENCH_COLD_BYTES ((size_t)128 << 20)

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t next_rand(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float rand_unit(uint64_t *s) { return (float)((next_rand(s) >> 40) * (2.0 / 16777216.0) - 1.0); }

/* Plausible weights for `type`: the kernels' speed does not depend on the values,
 * but NaNs or denormals could. */
static int fill_weights(int type, int64_t rows, int64_t cols, uint8_t *buf, size_t *row_bytes) {
    uint64_t s = 1234;
    switch (type) {
    case GGML_TYPE_F32: *row_bytes = (size_t)cols * 4; break;
    case GGML_TYPE_F16:
    case GGML_TYPE_BF16: *row_bytes = (size_t)cols * 2; break;
    case GGML_TYPE_Q8_0: *row_bytes = (size_t)cols / 32 * sizeof(block_q8_0); break;
    case GGML_TYPE_Q4_0: *row_bytes = (size_t)cols / 32 * sizeof(block_q4_0); break;
    default: return INF_EUNSUPPORTED;
    }
    if (!buf) return 0;
    size_t n = (size_t)rows * (size_t)cols;
    if (type == GGML_TYPE_F32) {
        float *f = (float *)buf;
        for (size_t i = 0; i < n; i++) f[i] = rand_unit(&s) * 0.05f;
    } else if (type == GGML_TYPE_F16 || type == GGML_TYPE_BF16) {
        uint16_t *h = (uint16_t *)buf;
        for (size_t i = 0; i < n; i++) {
            float f = rand_unit(&s) * 0.05f;
            uint32_t b;
            memcpy(&b, &f, 4);
            h[i] = type == GGML_TYPE_F16 ? cpu_f32_to_f16_scalar(f) : (uint16_t)(b >> 16);
        }
    } else if (type == GGML_TYPE_Q8_0) {
        block_q8_0 *b = (block_q8_0 *)buf;
        for (size_t i = 0; i < n / 32; i++) {
            b[i].d = cpu_f32_to_f16_scalar(0.001f);
            for (int j = 0; j < 32; j++) b[i].qs[j] = (int8_t)(next_rand(&s) % 255 - 127);
        }
    } else {
        block_q4_0 *b = (block_q4_0 *)buf;
        for (size_t i = 0; i < n / 32; i++) {
            b[i].d = cpu_f32_to_f16_scalar(0.01f);
            for (int j = 0; j < 16; j++) b[i].qs[j] = (uint8_t)next_rand(&s);
        }
    }
    return 0;
}

int cpu_bench_matmul(inf_pool *pool, int type, int64_t rows, int64_t cols, int n_tok,
                     double min_seconds, cpu_bench_result *out, inf_error *err) {
    memset(out, 0, sizeof *out);
    size_t rb;
    if (!cpu_matmul_supports(type) || fill_weights(type, rows, cols, NULL, &rb))
        return inf_error_set(err, INF_EUNSUPPORTED, "matmul does not support weight type %d", type);
    if (rows <= 0 || cols <= 0 || n_tok <= 0 ||
        ((type == GGML_TYPE_Q8_0 || type == GGML_TYPE_Q4_0) && cols % 32))
        return inf_error_set(err, INF_EINVAL, "bad benchmark shape %lld x %lld x %d", (long long)rows,
                             (long long)cols, n_tok);
    /* Enough copies of the matrix to overflow the last-level cache, cycled
     * through: a model's weights are never cache-resident at decode time. */
    size_t mat = ((size_t)rows * rb + 63) & ~(size_t)63;
    size_t copies = mat >= CPU_BENCH_COLD_BYTES ? 1 : (CPU_BENCH_COLD_BYTES + mat - 1) / mat;
    uint8_t *w = aligned_alloc(64, mat * copies);
    float *x = malloc(sizeof(float) * (size_t)cols * (size_t)n_tok);
    float *y = malloc(sizeof(float) * (size_t)rows * (size_t)n_tok);
    if (!w || !x || !y) {
        free(w);
        free(x);
        free(y);
        return inf_error_set(err, INF_ENOMEM, "out of memory for a %lld x %lld benchmark matrix",
                             (long long)rows, (long long)cols);
    }
    for (size_t c = 0; c < copies; c++) fill_weights(type, rows, cols, w + c * mat, &rb);
    uint64_t s = 99;
    for (size_t i = 0; i < (size_t)cols * (size_t)n_tok; i++) x[i] = rand_unit(&s);
    cpu_weight cw = {.type = type, .rows = rows, .cols = cols, .row_bytes = rb, .data = w};
    cpu_scratch scratch = {0};
    int rc = cpu_matmul(pool, &scratch, &cw, x, cols, n_tok, y, rows); /* warm-up */
    double best = 1e30, start = now_s();
    int calls = 0;
    while (rc == 0 && (calls < 3 || now_s() - start < min_seconds)) {
        cw.data = w + (size_t)calls % copies * mat;
        double t0 = now_s();
        rc = cpu_matmul(pool, &scratch, &cw, x, cols, n_tok, y, rows);
        double dt = now_s() - t0;
        if (dt < best) best = dt;
        calls++;
    }
    if (rc == 0) {
        out->seconds = best;
        out->gbps = (double)rows * (double)rb / best * 1e-9;
        out->gflops = 2.0 * (double)rows * (double)cols * n_tok / best * 1e-9;
        out->calls = calls;
    } else {
        rc = inf_error_set(err, rc, "cpu_matmul failed during the benchmark");
    }
    cpu_scratch_free(&scratch);
    free(w);
    free(x);
    free(y);
    return rc;
}

typedef struct bw_task {
    const float *buf;
    long n;
    float sink[64];
} bw_task;

/* GCC vector extension (not intrinsics). Eight streams read in lockstep, as
 * a decode tile reads eight weight rows: one stream alone is limited by the
 * prefetcher, not by DRAM. */
typedef float bw_v8 __attribute__((vector_size(32), aligned(4)));

static void bw_worker(void *ctx, int ith, int nth) {
    bw_task *t = ctx;
    long lo, hi;
    inf_pool_range(t->n / 64, ith, nth, &lo, &hi);
    long per = (hi - lo) / 8 * 8; /* vectors per stream */
    const bw_v8 *p = (const bw_v8 *)(t->buf + lo * 64);
    bw_v8 a[8] = {{0}};
    for (long i = 0; i < per; i++)
        for (int j = 0; j < 8; j++) a[j] += p[j * per + i];
    bw_v8 s = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
    t->sink[ith % 64] = s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
}

double cpu_bench_memory_bandwidth(inf_pool *pool, size_t bytes, double min_seconds) {
    bytes &= ~(size_t)255;
    float *buf = aligned_alloc(64, bytes ? bytes : 256);
    if (!buf) return INF_ENOMEM;
    memset(buf, 0, bytes);
    bw_task t = {.buf = buf, .n = (long)(bytes / sizeof(float))};
    inf_pool_run(pool, bw_worker, &t);
    double best = 1e30, start = now_s();
    for (int i = 0; i < 3 || now_s() - start < min_seconds; i++) {
        double t0 = now_s();
        inf_pool_run(pool, bw_worker, &t);
        double dt = now_s() - t0;
        if (dt < best) best = dt;
    }
    free(buf);
    long per_thread = (long)(bytes / sizeof(float)) / 64 / inf_pool_size(pool) / 8 * 8;
    return (double)per_thread * 8 * 32 * inf_pool_size(pool) / best * 1e-9;
}
