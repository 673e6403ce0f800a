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

/* ---- peak compute ---------------------------------------------------------- */

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define PEAK_ITERS 200000L

/* 16 independent chains: enough to cover FMA latency x ports on current
 * cores (AVX-512 has 32 registers; the AVX2 forms use 12 of 16). */
__attribute__((target("avx512f"))) static float peak_f32_avx512(long iters) {
    __m512 a0 = _mm512_set1_ps(1.0f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    __m512 a8 = a0, a9 = a0, a10 = a0, a11 = a0, a12 = a0, a13 = a0, a14 = a0, a15 = a0;
    const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
    for (long i = 0; i < iters; i++) {
        a0 = _mm512_fmadd_ps(a0, m, c); a1 = _mm512_fmadd_ps(a1, m, c);
        a2 = _mm512_fmadd_ps(a2, m, c); a3 = _mm512_fmadd_ps(a3, m, c);
        a4 = _mm512_fmadd_ps(a4, m, c); a5 = _mm512_fmadd_ps(a5, m, c);
        a6 = _mm512_fmadd_ps(a6, m, c); a7 = _mm512_fmadd_ps(a7, m, c);
        a8 = _mm512_fmadd_ps(a8, m, c); a9 = _mm512_fmadd_ps(a9, m, c);
        a10 = _mm512_fmadd_ps(a10, m, c); a11 = _mm512_fmadd_ps(a11, m, c);
        a12 = _mm512_fmadd_ps(a12, m, c); a13 = _mm512_fmadd_ps(a13, m, c);
        a14 = _mm512_fmadd_ps(a14, m, c); a15 = _mm512_fmadd_ps(a15, m, c);
        __asm__ volatile("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5), "+v"(a6), "+v"(a7));
        __asm__ volatile("" : "+v"(a8), "+v"(a9), "+v"(a10), "+v"(a11), "+v"(a12), "+v"(a13), "+v"(a14), "+v"(a15));
    }
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                             _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)),
                                       _mm512_add_ps(_mm512_add_ps(a12, a13), _mm512_add_ps(a14, a15))));
    return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) static float peak_f32_avx2(long iters) {
    __m256 a0 = _mm256_set1_ps(1.0f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    __m256 a8 = a0, a9 = a0, a10 = a0, a11 = a0;
    const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    for (long i = 0; i < iters; i++) {
        a0 = _mm256_fmadd_ps(a0, m, c); a1 = _mm256_fmadd_ps(a1, m, c);
        a2 = _mm256_fmadd_ps(a2, m, c); a3 = _mm256_fmadd_ps(a3, m, c);
        a4 = _mm256_fmadd_ps(a4, m, c); a5 = _mm256_fmadd_ps(a5, m, c);
        a6 = _mm256_fmadd_ps(a6, m, c); a7 = _mm256_fmadd_ps(a7, m, c);
        a8 = _mm256_fmadd_ps(a8, m, c); a9 = _mm256_fmadd_ps(a9, m, c);
        a10 = _mm256_fmadd_ps(a10, m, c); a11 = _mm256_fmadd_ps(a11, m, c);
        __asm__ volatile("" : "+x"(a0), "+x"(a1), "+x"(a2), "+x"(a3), "+x"(a4), "+x"(a5));
        __asm__ volatile("" : "+x"(a6), "+x"(a7), "+x"(a8), "+x"(a9), "+x"(a10), "+x"(a11));
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
    float v[8];
    _mm256_storeu_ps(v, s);
    return v[0] + v[7];
}

__attribute__((target("avx512f,avx512vnni"))) static float peak_i8_vnni512(long iters) {
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    __m512i a8 = a0, a9 = a0, a10 = a0, a11 = a0, a12 = a0, a13 = a0, a14 = a0, a15 = a0;
    const __m512i u = _mm512_set1_epi8(3), s = _mm512_set1_epi8(-5);
    for (long i = 0; i < iters; i++) {
        a0 = _mm512_dpbusd_epi32(a0, u, s); a1 = _mm512_dpbusd_epi32(a1, u, s);
        a2 = _mm512_dpbusd_epi32(a2, u, s); a3 = _mm512_dpbusd_epi32(a3, u, s);
        a4 = _mm512_dpbusd_epi32(a4, u, s); a5 = _mm512_dpbusd_epi32(a5, u, s);
        a6 = _mm512_dpbusd_epi32(a6, u, s); a7 = _mm512_dpbusd_epi32(a7, u, s);
        a8 = _mm512_dpbusd_epi32(a8, u, s); a9 = _mm512_dpbusd_epi32(a9, u, s);
        a10 = _mm512_dpbusd_epi32(a10, u, s); a11 = _mm512_dpbusd_epi32(a11, u, s);
        a12 = _mm512_dpbusd_epi32(a12, u, s); a13 = _mm512_dpbusd_epi32(a13, u, s);
        a14 = _mm512_dpbusd_epi32(a14, u, s); a15 = _mm512_dpbusd_epi32(a15, u, s);
        __asm__ volatile("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5), "+v"(a6), "+v"(a7));
        __asm__ volatile("" : "+v"(a8), "+v"(a9), "+v"(a10), "+v"(a11), "+v"(a12), "+v"(a13), "+v"(a14), "+v"(a15));
    }
    __m512i t = _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(a0, a1), _mm512_add_epi32(a2, a3)),
                                 _mm512_add_epi32(_mm512_add_epi32(a4, a5), _mm512_add_epi32(a6, a7)));
    t = _mm512_add_epi32(t, _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(a8, a9), _mm512_add_epi32(a10, a11)),
                                             _mm512_add_epi32(_mm512_add_epi32(a12, a13), _mm512_add_epi32(a14, a15))));
    return (float)_mm512_reduce_add_epi32(t);
}

/* The AVX2 int8 dot as llama.cpp's AVX2 kernels do it: u8 x s8 pairs to s16,
 * pairs of s16 to s32, accumulate (3 instructions per 32 multiply-adds). */
__attribute__((target("avx2"))) static float peak_i8_avx2(long iters) {
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    __m256i w[8];
    for (int j = 0; j < 8; j++) w[j] = _mm256_set1_epi8((char)(3 + j));
    const __m256i *wp = w, s = _mm256_set1_epi8(-5), one = _mm256_set1_epi16(1);
    /* The u8 operand comes from L1 (as weights do), a fresh load per chain:
     * the barrier on wp keeps the compiler from sharing one product. */
#define I8STEP(a, j) a = _mm256_add_epi32(a, _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_load_si256(wp + j), s), one))
    for (long i = 0; i < iters; i++) {
        __asm__ volatile("" : "+r"(wp));
        I8STEP(a0, 0); I8STEP(a1, 1); I8STEP(a2, 2); I8STEP(a3, 3);
        I8STEP(a4, 4); I8STEP(a5, 5); I8STEP(a6, 6); I8STEP(a7, 7);
        __asm__ volatile("" : "+x"(a0), "+x"(a1), "+x"(a2), "+x"(a3), "+x"(a4), "+x"(a5), "+x"(a6), "+x"(a7));
    }
#undef I8STEP
    __m256i t = _mm256_add_epi32(_mm256_add_epi32(_mm256_add_epi32(a0, a1), _mm256_add_epi32(a2, a3)),
                                 _mm256_add_epi32(_mm256_add_epi32(a4, a5), _mm256_add_epi32(a6, a7)));
    return (float)_mm256_extract_epi32(t, 0);
}
#endif

typedef struct peak_task {
    int kind; /* 1 f32 avx512, 2 f32 avx2, 3 i8 vnni512, 4 i8 avx2 */
    long iters;
    float sink[64];
} peak_task;

static void peak_worker(void *ctx, int ith, int nth) {
    (void)nth;
    peak_task *t = ctx;
    float r = 0;
#if defined(__x86_64__) || defined(__i386__)
    switch (t->kind) {
    case 1: r = peak_f32_avx512(t->iters); break;
    case 2: r = peak_f32_avx2(t->iters); break;
    case 3: r = peak_i8_vnni512(t->iters); break;
    case 4: r = peak_i8_avx2(t->iters); break;
    }
#endif
    t->sink[ith % 64] = r;
}

double cpu_bench_peak_gflops(inf_pool *pool, int int8, double min_seconds, const char **isa) {
    peak_task t = {.kind = 0, .iters = PEAK_ITERS};
    double ops_per_iter = 0; /* per thread */
    const char *name = "none";
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (!int8 && __builtin_cpu_supports("avx512f")) t.kind = 1, ops_per_iter = 16 * 16 * 2, name = "avx512f fma";
    else if (!int8 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        t.kind = 2, ops_per_iter = 12 * 8 * 2, name = "avx2 fma";
    else if (int8 && __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512f"))
        t.kind = 3, ops_per_iter = 16 * 64 * 2, name = "avx512 vnni vpdpbusd";
    else if (int8 && __builtin_cpu_supports("avx2"))
        t.kind = 4, ops_per_iter = 8 * 32 * 2, name = "avx2 vpmaddubsw";
#endif
    if (isa) *isa = name;
    if (!t.kind) return 0;
    inf_pool_run(pool, peak_worker, &t); /* warm-up: clocks, pages */
    double best = 1e30, start = now_s();
    for (int i = 0; i < 3 || now_s() - start < min_seconds; i++) {
        double t0 = now_s();
        inf_pool_run(pool, peak_worker, &t);
        double dt = now_s() - t0;
        if (dt < best) best = dt;
    }
    return ops_per_iter * (double)t.iters * inf_pool_size(pool) / best * 1e-9;
}
