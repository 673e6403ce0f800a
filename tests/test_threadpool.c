/* test_threadpool.c - fork-join pool: every index runs exactly once per run,
 * writes are visible across the fork and the join, range splitting. */
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include "threadpool.h"

typedef struct count_ctx {
    atomic_int calls[16];
    atomic_int bad_nth;
    int expect_nth;
    long *slots;    /* per-thread slot written in the run, read after the join */
    long round;     /* written by the caller before the run, read by workers */
    atomic_long seen_round_errors;
} count_ctx;

static void count_fn(void *ctx, int ith, int nth) {
    count_ctx *c = ctx;
    if (nth != c->expect_nth || ith < 0 || ith >= nth) atomic_fetch_add(&c->bad_nth, 1);
    else atomic_fetch_add(&c->calls[ith], 1);
    if (c->slots) {
        /* sees the caller's pre-run write, publishes its own for after the join */
        if (c->slots[ith] != c->round - 1) atomic_fetch_add(&c->seen_round_errors, 1);
        c->slots[ith] = c->round;
    }
}

static void run_many(int n_threads, int runs, int sleep_every) {
    inf_pool *p = NULL;
    CU_ASSERT_EQUAL_FATAL(inf_pool_create(&p, n_threads, NULL), 0);
    CU_ASSERT_EQUAL(inf_pool_size(p), n_threads);
    count_ctx c = {.expect_nth = n_threads};
    long slots[16] = {0};
    c.slots = slots;
    long mismatch = 0;
    for (int r = 1; r <= runs; r++) {
        c.round = r;
        if (sleep_every && r % sleep_every == 0) {
            /* let the workers give up spinning and sleep on the futex */
            struct timespec ts = {0, 2000000};
            nanosleep(&ts, NULL);
        }
        inf_pool_run(p, count_fn, &c);
        for (int i = 0; i < n_threads; i++)
            if (slots[i] != r) mismatch++;
    }
    CU_ASSERT_EQUAL(mismatch, 0);
    CU_ASSERT_EQUAL(atomic_load(&c.bad_nth), 0);
    CU_ASSERT_EQUAL(atomic_load(&c.seen_round_errors), 0);
    long wrong = 0;
    for (int i = 0; i < n_threads; i++)
        if (atomic_load(&c.calls[i]) != runs) wrong++;
    CU_ASSERT_EQUAL(wrong, 0);
    inf_pool_free(p);
}

static void test_every_index_once(void) {
    run_many(1, 200, 0);
    run_many(2, 5000, 0);
    run_many(3, 2000, 0); /* more threads than cores on a 2-core box */
    run_many(8, 500, 0);
}

static void test_after_sleeping(void) {
    run_many(2, 40, 3);
    run_many(4, 30, 2);
}

static void test_default_size_and_null(void) {
    inf_pool *p = NULL;
    CU_ASSERT_EQUAL_FATAL(inf_pool_create(&p, 0, NULL), 0);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    CU_ASSERT_EQUAL(inf_pool_size(p), ncpu);
    inf_pool_free(p);
    inf_pool_free(NULL);
    CU_ASSERT_EQUAL(inf_pool_size(NULL), 1);
    count_ctx c = {.expect_nth = 1};
    inf_pool_run(NULL, count_fn, &c);
    CU_ASSERT_EQUAL(atomic_load(&c.calls[0]), 1);
    CU_ASSERT_EQUAL(atomic_load(&c.bad_nth), 0);
}

/* Parallel sum over a split range equals the serial sum (every element
 * visited once, no overlap). */
typedef struct sum_ctx {
    const int *v;
    long n;
    long partial[16];
} sum_ctx;

static void sum_fn(void *ctx, int ith, int nth) {
    sum_ctx *s = ctx;
    long lo, hi, acc = 0;
    inf_pool_range(s->n, ith, nth, &lo, &hi);
    for (long i = lo; i < hi; i++) acc += s->v[i];
    s->partial[ith] = acc;
}

static void test_parallel_sum(void) {
    inf_pool *p = NULL;
    CU_ASSERT_EQUAL_FATAL(inf_pool_create(&p, 3, NULL), 0);
    uint64_t st = 5;
    int *v = malloc(100003 * sizeof(int));
    for (int i = 0; i < 100003; i++) v[i] = (int)(tu_rand_u64(&st) % 1000);
    for (long n = 0; n < 100003; n = n * 3 + 1) {
        long ref = 0;
        for (long i = 0; i < n; i++) ref += v[i];
        sum_ctx s = {.v = v, .n = n};
        inf_pool_run(p, sum_fn, &s);
        CU_ASSERT_EQUAL(s.partial[0] + s.partial[1] + s.partial[2], ref);
    }
    free(v);
    inf_pool_free(p);
}

static void test_range(void) {
    long bad = 0;
    for (int nth = 1; nth <= 9; nth++)
        for (long n = 0; n < 200; n++) {
            long prev_hi = 0, mn = n, mx = 0;
            for (int i = 0; i < nth; i++) {
                long lo, hi;
                inf_pool_range(n, i, nth, &lo, &hi);
                if (lo != prev_hi || hi < lo) bad++;
                prev_hi = hi;
                if (hi - lo < mn) mn = hi - lo;
                if (hi - lo > mx) mx = hi - lo;
            }
            if (prev_hi != n || mx - mn > 1) bad++; /* covers [0,n), balanced */
        }
    CU_ASSERT_EQUAL(bad, 0);
    long lo, hi; /* no overflow near the top of the range */
    inf_pool_range(0x7fffffffffffffffL, 1, 2, &lo, &hi);
    CU_ASSERT_EQUAL(hi, 0x7fffffffffffffffL);
    CU_ASSERT(lo > 0 && lo < hi);
}

void test_register_threadpool(void) {
    CU_pSuite s = CU_add_suite("threadpool", NULL, NULL);
    CU_add_test(s, "every index exactly once per run", test_every_index_once);
    CU_add_test(s, "runs after workers slept", test_after_sleeping);
    CU_add_test(s, "default size, NULL pool", test_default_size_and_null);
    CU_add_test(s, "parallel sum over ranges", test_parallel_sum);
    CU_add_test(s, "range split", test_range);
}
