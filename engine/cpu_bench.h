/* cpu_bench.h - micro-benchmarks of the CPU kernels for `make bench`: matmul
 * throughput per weight type and the machine's streaming read bandwidth (the
 * ceiling for decode, which streams every weight once per token). */
#ifndef INF_CPU_BENCH_H
#define INF_CPU_BENCH_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"
#include "threadpool.h"

typedef struct cpu_bench_result {
    double seconds; /* per cpu_matmul call (best of the timed calls) */
    double gbps;    /* weight bytes read per second, 1e9 bytes */
    double gflops;  /* 2 * rows * cols * n_tok per second, 1e9 */
    int calls;      /* timed calls */
} cpu_bench_result;

/* Times cpu_matmul for a rows x cols matrix of `type` (random weights it
 * allocates and frees) on n_tok tokens, using `pool` (NULL: one thread), for at
 * least min_seconds. Returns 0, or INF_EUNSUPPORTED / INF_EINVAL / INF_ENOMEM. */
int cpu_bench_matmul(inf_pool *pool, int type, int64_t rows, int64_t cols, int n_tok,
                     double min_seconds, cpu_bench_result *out, inf_error *err);

/* Streaming read bandwidth in GB/s (1e9 bytes) over a buffer of `bytes`
 * (use well above the last-level cache), split across the pool; best of
 * repeated passes for at least min_seconds. Returns a negative INF_E* code
 * (as a double) if the buffer cannot be allocated. */
double cpu_bench_memory_bandwidth(inf_pool *pool, size_t bytes, double min_seconds);

/* Peak arithmetic throughput of the machine across the pool, the compute
 * floor for prefill: int8 = 0 measures F32 FMA (2 flops per lane), int8 = 1
 * the u8 x s8 dot products the quantized kernels of a fast engine use
 * (AVX512-VNNI vpdpbusd, else AVX2 vpmaddubsw + vpmaddwd; 2 ops per
 * multiply-add), each with the widest ISA this CPU has, in independent
 * register-resident chains; best of repeated passes for at least min_seconds.
 * GFLOP/s (GOP/s for int8), 1e9; 0 where the CPU has neither path. `isa`
 * (may be NULL) gets the path's name. */
double cpu_bench_peak_gflops(inf_pool *pool, int int8, double min_seconds, const char **isa);

#endif
