/* threadpool.c - fork-join pool (see threadpool.h).
 *
 * A run is published by bumping a generation counter; workers spin on it for a
 * short while (a forward pass issues hundreds of runs per token with little
 * serial work between them, so a sleeping worker would cost a futex wake-up of
 * tens of microseconds each time) and then sleep on it with a futex. The caller
 * runs its share as thread 0 and waits, the same way, for a pending counter to
 * drop to zero. Linux-only (futex), like the rest of the worker.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "threadpool.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* How long an idle thread spins before sleeping. Long enough to cover the
 * serial work between two runs of a forward pass, short enough not to burn a
 * core once the model is idle. */
#define POOL_SPIN_NS 200000L

typedef struct pool_worker {
    struct inf_pool *pool;
    int ith;
} pool_worker;

struct inf_pool {
    int n;
    long spin_ns; /* 0 when oversubscribed: spinning would steal the core a peer needs */
    pthread_t *threads;
    pool_worker *workers;
    inf_pool_fn fn; /* written by the caller before gen is bumped (release) */
    void *ctx;
    int stop;
    _Alignas(64) atomic_int gen;      /* futex word: bumped once per run */
    atomic_int n_sleeping;            /* workers inside futex_wait on gen */
    _Alignas(64) atomic_int pending;  /* futex word: workers still running this run */
    atomic_int caller_sleeping;       /* caller inside futex_wait on pending */
};

static void futex_wait(atomic_int *addr, int val) {
    syscall(SYS_futex, (int *)addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void futex_wake(atomic_int *addr, int n) {
    syscall(SYS_futex, (int *)addr, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

/* Spins until *word != val or spin_ns elapses; returns the last value seen. */
static int spin_while_equal(atomic_int *word, int val, long spin_ns) {
    int v = atomic_load_explicit(word, memory_order_acquire);
    if (v != val || spin_ns <= 0) return v;
    long deadline = now_ns() + spin_ns;
    for (unsigned i = 1;; i++) {
        cpu_relax();
        v = atomic_load_explicit(word, memory_order_acquire);
        if (v != val) return v;
        if ((i & 63) == 0 && now_ns() > deadline) return v;
    }
}

static void *worker_main(void *arg) {
    pool_worker *w = arg;
    inf_pool *p = w->pool;
    int last = 0; /* gen before any run: the caller may publish run 1 before we get here */
    for (;;) {
        int g = spin_while_equal(&p->gen, last, p->spin_ns);
        while (g == last) {
            /* Dekker with the caller: it bumps gen then reads n_sleeping; we
             * bump n_sleeping then (in the kernel) re-read gen. */
            atomic_fetch_add(&p->n_sleeping, 1);
            futex_wait(&p->gen, last);
            atomic_fetch_sub(&p->n_sleeping, 1);
            g = atomic_load_explicit(&p->gen, memory_order_acquire);
        }
        last = g;
        if (p->stop) break;
        p->fn(p->ctx, w->ith, p->n);
        if (atomic_fetch_sub(&p->pending, 1) == 1 && atomic_load(&p->caller_sleeping))
            futex_wake(&p->pending, 1);
    }
    return NULL;
}

static void pool_join(inf_pool *p, int started) {
    p->stop = 1;
    atomic_fetch_add(&p->gen, 1);
    futex_wake(&p->gen, INT_MAX);
    for (int i = 0; i < started; i++) pthread_join(p->threads[i], NULL);
}

int inf_pool_create(inf_pool **out, int n_threads, inf_error *err) {
    *out = NULL;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (ncpu < 1) ncpu = 1;
    if (n_threads <= 0) n_threads = (int)(ncpu > 1024 ? 1024 : ncpu);
    if (n_threads > 1024)
        return inf_error_set(err, INF_ERANGE, "thread pool size %d exceeds the limit of 1024", n_threads);
    inf_pool *p = aligned_alloc(64, (sizeof *p + 63) / 64 * 64);
    if (!p) return inf_error_set(err, INF_ENOMEM, "out of memory allocating the thread pool");
    memset(p, 0, sizeof *p);
    p->n = n_threads;
    p->spin_ns = n_threads <= ncpu ? POOL_SPIN_NS : 0;
    atomic_init(&p->gen, 0);
    atomic_init(&p->n_sleeping, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->caller_sleeping, 0);
    if (n_threads > 1) {
        p->threads = calloc((size_t)n_threads - 1, sizeof *p->threads);
        p->workers = calloc((size_t)n_threads - 1, sizeof *p->workers);
        if (!p->threads || !p->workers) {
            free(p->threads);
            free(p->workers);
            free(p);
            return inf_error_set(err, INF_ENOMEM, "out of memory allocating the thread pool");
        }
        for (int i = 0; i < n_threads - 1; i++) {
            p->workers[i].pool = p;
            p->workers[i].ith = i + 1;
            int rc = pthread_create(&p->threads[i], NULL, worker_main, &p->workers[i]);
            if (rc != 0) {
                pool_join(p, i);
                free(p->threads);
                free(p->workers);
                free(p);
                return inf_error_set(err, INF_EIO, "cannot start pool thread %d of %d: %s", i + 1,
                                     n_threads, strerror(rc));
            }
        }
    }
    *out = p;
    return 0;
}

void inf_pool_free(inf_pool *p) {
    if (!p) return;
    pool_join(p, p->n - 1);
    free(p->threads);
    free(p->workers);
    free(p);
}

int inf_pool_size(const inf_pool *p) { return p ? p->n : 1; }

void inf_pool_run(inf_pool *p, inf_pool_fn fn, void *ctx) {
    if (!p || p->n == 1) {
        fn(ctx, 0, 1);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    atomic_store_explicit(&p->pending, p->n - 1, memory_order_relaxed);
    atomic_fetch_add(&p->gen, 1); /* seq_cst: publishes fn/ctx/pending */
    if (atomic_load(&p->n_sleeping) > 0) futex_wake(&p->gen, INT_MAX);

    fn(ctx, 0, p->n);

    /* Workers usually finish within microseconds of us; spin, then sleep. */
    long deadline = p->spin_ns > 0 ? now_ns() + p->spin_ns : 0;
    unsigned i = 0;
    int v;
    while ((v = atomic_load_explicit(&p->pending, memory_order_acquire)) != 0) {
        if ((++i & 63) == 0 && now_ns() > deadline) break;
        cpu_relax();
    }
    if (v != 0) {
        atomic_store(&p->caller_sleeping, 1);
        while ((v = atomic_load(&p->pending)) != 0) futex_wait(&p->pending, v);
        atomic_store(&p->caller_sleeping, 0);
    }
    atomic_thread_fence(memory_order_acquire);
}

void inf_pool_range(long n, int ith, int nth, long *lo, long *hi) {
    if (nth < 1) nth = 1;
    if (n < 0) n = 0;
    /* 128-bit product: n * ith overflows long for n near LONG_MAX / nth. */
    *lo = (long)((__int128)n * ith / nth);
    *hi = (long)((__int128)n * (ith + 1) / nth);
}
