/* threadpool.h - a fixed pool of worker threads that run one parallel task at
 * a time (fork-join): every thread calls fn(ctx, ith, nth) and run() returns
 * when all have finished. The calling thread takes part as thread 0, so a pool
 * of n threads starts n-1 OS threads. Not re-entrant: one run() at a time. */
#ifndef INF_THREADPOOL_H
#define INF_THREADPOOL_H

#include "status.h"

typedef void (*inf_pool_fn)(void *ctx, int ith, int nth);

typedef struct inf_pool inf_pool;

/* Creates a pool of n_threads (<= 0: all online cores). */
int inf_pool_create(inf_pool **out, int n_threads, inf_error *err);

/* Joins and frees the threads. NULL is a no-op. */
void inf_pool_free(inf_pool *p);

/* Number of threads taking part in a run (>= 1). */
int inf_pool_size(const inf_pool *p);

/* Runs fn on every thread and waits for all of them. p may be NULL (runs fn(ctx,0,1)). */
void inf_pool_run(inf_pool *p, inf_pool_fn fn, void *ctx);

/* Splits [0,n) evenly: thread ith of nth gets [*lo,*hi). */
void inf_pool_range(long n, int ith, int nth, long *lo, long *hi);

#endif
