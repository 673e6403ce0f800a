/* bench_util.h - timing, statistics and machine measurements for inferno-bench. */
#ifndef INF_BENCH_UTIL_H
#define INF_BENCH_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Monotonic seconds. */
double bench_now(void);

/* splitmix64 step. */
uint64_t bench_rand(uint64_t *state);

/* Median of n values (sorts v in place); 0 when n == 0. */
double bench_median(double *v, int n);

/* Streaming-read bandwidth in GB/s with n_threads readers over a 1 GiB
 * buffer (cpu_bench_memory_bandwidth: best of passes for 0.5 s); 0 on failure. */
double bench_memory_bandwidth(int n_threads);

/* Engine throughput table (tools/bench_engine.c). */
void bench_concurrency(const char *models_dir, int quick);

/* Structured-output overhead table (tools/bench_constraint.c). */
void bench_constraint(const char *models_dir, int quick);

/* One-file modes: --file F [--batched NPL,PP,TG] | --floors (tools/bench_file.c);
 * argv as main's. Returns the exit status. */
int bench_file_main(int argc, char **argv);

#endif
