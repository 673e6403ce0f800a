/* test_kvcache.c - block manager and prefix cache: deterministic scenarios and
 * a randomized run against a naive independent model (linear scans over
 * entries keyed by parent identity + token ids, counters instead of lists),
 * plus a shadow "backend" that records which exact token prefix each block's
 * K/V was computed for, so any wrong sharing shows up as wrong content. */
#include <stdio.h>
#include <string.h>

#include "kvcache.h"
#include "testutil.h"

static kv_pool *mkpool(int n_blocks, int bs) {
    kv_pool *p = NULL;
    inf_error e = {0};
    int rc = kv_pool_create(&p, n_blocks, bs, &e);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    return p;
}

static int check_(kv_pool *p, const kv_seq *const *seqs, int n) {
    inf_error e = {0};
    int rc = kv_pool_check(p, seqs, n, &e);
    if (rc) printf("\n  kv_pool_check: %s\n", e.msg);
    return rc;
}
#define CHECK_SEQS(p, ...)                                                           \
    do {                                                                             \
        const kv_seq *ss_[] = {__VA_ARGS__};                                         \
        CU_ASSERT_EQUAL(check_((p), ss_, (int)(sizeof ss_ / sizeof ss_[0])), 0);     \
    } while (0)
#define CHECK_NONE(p) CU_ASSERT_EQUAL(check_((p), NULL, 0), 0)

static kv_stats stats(const kv_pool *p) {
    kv_stats st;
    kv_pool_stats(p, &st);
    return st;
}

/* match + reserve the whole prompt; returns the matched token count. */
static int start(kv_pool *p, kv_seq *s, const int32_t *t, int n) {
    int m = kv_seq_match_prefix(p, s, t, n, NULL);
    CU_ASSERT(m >= 0);
    CU_ASSERT_EQUAL(kv_seq_reserve(p, s, n, NULL), 0);
    return m;
}

static void test_sizes(void) {
    CU_ASSERT_EQUAL(kv_block_bytes(2, 4, 8, 16, 2), (size_t)2 * 2 * 4 * 8 * 16 * 2);
    CU_ASSERT_EQUAL(kv_block_bytes(0, 4, 8, 16, 2), 0);
    CU_ASSERT_EQUAL(kv_block_bytes(2, 4, 8, 16, 0), 0);
    CU_ASSERT_EQUAL(kv_block_bytes(1 << 30, 1 << 30, 1 << 30, 1 << 30, 8), 0); /* overflow */
    CU_ASSERT_EQUAL(kv_blocks_for_budget(10000, 2, 4, 8, 16, 2), 2);
    CU_ASSERT_EQUAL(kv_blocks_for_budget(8191, 2, 4, 8, 16, 2), 1);
    CU_ASSERT_EQUAL(kv_blocks_for_budget(4095, 2, 4, 8, 16, 2), 0);
    CU_ASSERT_EQUAL(kv_blocks_for_budget(1 << 20, 2, 4, 8, -1, 2), 0);
    CU_ASSERT_EQUAL(kv_blocks_for_budget(SIZE_MAX, 1, 1, 1, 1, 1), INT32_MAX);

    int32_t a[2] = {1, 2}, b[2] = {2, 1};
    CU_ASSERT_EQUAL(kv_hash_block(7, a, 2), kv_hash_block(7, a, 2));
    CU_ASSERT_NOT_EQUAL(kv_hash_block(7, a, 2), kv_hash_block(7, b, 2));
    CU_ASSERT_NOT_EQUAL(kv_hash_block(7, a, 2), kv_hash_block(8, a, 2));
    CU_ASSERT_NOT_EQUAL(kv_hash_block(7, a, 2), kv_hash_block(7, a, 1));

    kv_pool *p = NULL;
    inf_error e = {0};
    CU_ASSERT_EQUAL(kv_pool_create(&p, 0, 16, &e), INF_EINVAL);
    CU_ASSERT_PTR_NULL(p);
    CU_ASSERT_EQUAL(kv_pool_create(&p, 4, 0, &e), INF_EINVAL);
    CU_ASSERT(strlen(e.msg) > 0);
}

static void test_exhaust(void) {
    kv_pool *p = mkpool(8, 4);
    kv_seq a, b, c;
    kv_seq_init(&a);
    kv_seq_init(&b);
    kv_seq_init(&c);
    inf_error e = {0};
    CHECK_NONE(p);
    CU_ASSERT_EQUAL(kv_seq_blocks_needed(p, &a, 20), 5);
    CU_ASSERT_EQUAL(kv_seq_reserve(p, &a, 20, &e), 0);
    CU_ASSERT_EQUAL(a.n_blocks, 5);
    CU_ASSERT_EQUAL(kv_seq_blocks_needed(p, &a, 20), 0);
    CU_ASSERT_EQUAL(kv_seq_blocks_needed(p, &a, 21), 1);
    CU_ASSERT_EQUAL(kv_pool_n_available(p), 3);
    CHECK_SEQS(p, &a, &b);

    CU_ASSERT_EQUAL(kv_seq_blocks_needed(p, &b, 16), 4);
    CU_ASSERT_EQUAL(kv_seq_reserve(p, &b, 16, &e), INF_EFULL);
    CU_ASSERT(strlen(e.msg) > 0);
    CU_ASSERT_EQUAL(b.n_blocks, 0);
    CU_ASSERT_EQUAL(stats(p).n_free, 3);
    CHECK_SEQS(p, &a, &b);
    CU_ASSERT_EQUAL(kv_seq_reserve(p, &b, 12, &e), 0);
    CU_ASSERT_EQUAL(kv_pool_n_available(p), 0);
    CU_ASSERT_EQUAL(kv_seq_reserve(p, &a, 21, &e), INF_EFULL);
    CU_ASSERT_EQUAL(a.n_blocks, 5);
    CU_ASSERT_EQUAL(kv_seq_reserve(p, &a, 20, &e), 0); /* already fits */
    CU_ASSERT_EQUAL(kv_seq_reserve(p, &b, 0, &e), 0);
    CHECK_SEQS(p, &a, &b);

    /* Every id handed out exactly once. */
    int seen[8] = {0};
    for (int i = 0; i < a.n_blocks; i++) seen[a.blocks[i]]++;
    for (int i = 0; i < b.n_blocks; i++) seen[b.blocks[i]]++;
    for (int i = 0; i < 8; i++) CU_ASSERT_EQUAL(seen[i], 1);

    kv_seq_release(p, &a);
    CU_ASSERT_EQUAL(a.n_blocks, 0);
    kv_stats st = stats(p);
    CU_ASSERT_EQUAL(st.n_free, 5);
    CU_ASSERT_EQUAL(st.n_used, 3);
    CHECK_SEQS(p, &a, &b);
    kv_seq_release(p, &b);
    st = stats(p);
    CU_ASSERT_EQUAL(st.n_free, 8);
    CU_ASSERT_EQUAL(st.n_used, 0);
    CU_ASSERT_EQUAL(st.n_evictable, 0);
    CHECK_NONE(p);

    CU_ASSERT_EQUAL(kv_seq_reserve(p, &c, 33, &e), INF_EFULL);
    CU_ASSERT_EQUAL(kv_seq_reserve(p, &c, 32, &e), 0);
    CHECK_SEQS(p, &c);
    kv_seq_release(p, &c);
    CHECK_NONE(p);
    kv_seq_free(&a);
    kv_seq_free(&b);
    kv_seq_free(&c);
    kv_pool_free(p);
}

static void test_share(void) {
    kv_pool *p = mkpool(16, 4);
    int32_t P[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    int32_t Q[11] = {1, 2, 3, 4, 5, 6, 7, 8, 20, 21, 22};
    kv_seq a, b, c;
    kv_seq_init(&a);
    kv_seq_init(&b);
    kv_seq_init(&c);
    CU_ASSERT_EQUAL(start(p, &a, P, 10), 0);
    CU_ASSERT_EQUAL(kv_seq_commit_full_blocks(p, &a, P, 10, NULL), 0);
    CU_ASSERT_EQUAL(stats(p).n_cached, 2);
    CHECK_SEQS(p, &a);

    CU_ASSERT_EQUAL(kv_seq_match_prefix(p, &b, Q, 11, NULL), 8);
    CU_ASSERT_EQUAL(b.n_blocks, 2);
    CU_ASSERT_EQUAL(b.blocks[0], a.blocks[0]);
    CU_ASSERT_EQUAL(b.blocks[1], a.blocks[1]);
    CU_ASSERT_EQUAL(kv_pool_block_refcount(p, a.blocks[0]), 2);
    CU_ASSERT_EQUAL(kv_pool_block_refcount(p, a.blocks[1]), 2);
    kv_stats st = stats(p);
    CU_ASSERT_EQUAL(st.hit_tokens, 8);
    CU_ASSERT_EQUAL(st.query_tokens, 21);
    CU_ASSERT_DOUBLE_EQUAL(kv_stats_hit_rate(&st), 8.0 / 21.0, 1e-12);
    CU_ASSERT_EQUAL(kv_seq_reserve(p, &b, 11, NULL), 0);
    CU_ASSERT_EQUAL(b.n_blocks, 3);
    CU_ASSERT_NOT_EQUAL(b.blocks[2], a.blocks[2]);
    CU_ASSERT_EQUAL(kv_pool_block_refcount(p, b.blocks[2]), 1);
    CU_ASSERT_EQUAL(stats(p).n_used, 4);
    CHECK_SEQS(p, &a, &b);
    CU_ASSERT_EQUAL(kv_seq_commit_full_blocks(p, &b, Q, 11, NULL), 0);
    CU_ASSERT_EQUAL(stats(p).n_cached, 2);
    CHECK_SEQS(p, &a, &b);

    int32_t shared0 = a.blocks[0], shared1 = a.blocks[1];
    kv_seq_release(p, &a);
    CU_ASSERT_EQUAL(kv_pool_block_refcount(p, shared0), 1);
    CU_ASSERT_EQUAL(kv_pool_block_refcount(p, shared1), 1);
    st = stats(p);
    CU_ASSERT_EQUAL(st.n_used, 3);
    CU_ASSERT_EQUAL(st.n_free, 13);
    CHECK_SEQS(p, &b);
    kv_seq_release(p, &b);
    st = stats(p);
    CU_ASSERT_EQUAL(st.n_evictable, 2);
    CU_ASSERT_EQUAL(st.n_cached, 2);
    CU_ASSERT_EQUAL(st.n_free, 14);
    CHECK_NONE(p);

    /* A released prefix is revived, not recomputed. */
    CU_ASSERT_EQUAL(kv_seq_match_prefix(p, &c, P, 10, NULL), 8);
    CU_ASSERT_EQUAL(c.blocks[0], shared0);
    CU_ASSERT_EQUAL(c.blocks[1], shared1);
    st = stats(p);
    CU_ASSERT_EQUAL(st.n_evictable, 0);
    CU_ASSERT_EQUAL(st.n_used, 2);
    CU_ASSERT_EQUAL(st.hit_tokens, 16);
    CHECK_SEQS(p, &c);
    kv_seq_release(p, &c);
    kv_seq_free(&a);
    kv_seq_free(&b);
    kv_seq_free(&c);
    kv_pool_free(p);
}

static void test_diverge(void) {
    kv_pool *p = mkpool(16, 4);
    int32_t A[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    int32_t B[12] = {1, 2, 3, 4, 5, 6, 99, 100, 9, 10, 11, 12};
    kv_seq a, b;
    kv_seq_init(&a);
    kv_seq_init(&b);
    start(p, &a, A, 12);
    /* Commit in pieces: only completed blocks get registered. */
    CU_ASSERT_EQUAL(kv_seq_commit_full_blocks(p, &a, A, 3, NULL), 0);
    CU_ASSERT_EQUAL(stats(p).n_cached, 0);
    CU_ASSERT_EQUAL(kv_seq_commit_full_blocks(p, &a, A, 5, NULL), 0);
    CU_ASSERT_EQUAL(stats(p).n_cached, 1);
    CU_ASSERT_EQUAL(kv_seq_commit_full_blocks(p, &a, A, 12, NULL), 0);
    CU_ASSERT_EQUAL(stats(p).n_cached, 3);
    CU_ASSERT_EQUAL(kv_seq_commit_full_blocks(p, &a, A, 12, NULL), 0); /* idempotent */
    CU_ASSERT_EQUAL(stats(p).n_cached, 3);
    CHECK_SEQS(p, &a);

    CU_ASSERT_EQUAL(start(p, &b, B, 12), 4);
    CU_ASSERT_EQUAL(b.blocks[0], a.blocks[0]);
    CU_ASSERT_NOT_EQUAL(b.blocks[1], a.blocks[1]);
    CU_ASSERT_NOT_EQUAL(b.blocks[2], a.blocks[2]);
    CU_ASSERT_EQUAL(kv_pool_block_refcount(p, b.blocks[1]), 1);
    CU_ASSERT_EQUAL(kv_seq_commit_full_blocks(p, &b, B, 12, NULL), 0);
    CU_ASSERT_EQUAL(stats(p).n_cached, 5); /* B's own blocks 1,2 differ from A's */
    CHECK_SEQS(p, &a, &b);

    /* Errors leave state alone. */
    inf_error e = {0};
    CU_ASSERT_EQUAL(kv_seq_match_prefix(p, &b, B, 12, &e), INF_ESTATE);
    CU_ASSERT_EQUAL(kv_seq_commit_full_blocks(p, &b, B, 13, &e), INF_EINVAL);
    CU_ASSERT_EQUAL(kv_seq_reserve(p, &b, -1, &e), INF_EINVAL);
    CHECK_SEQS(p, &a, &b);
    kv_seq_release(p, &a);
    kv_seq_release(p, &b);
    CHECK_NONE(p);
    kv_seq_free(&a);
    kv_seq_free(&b);
    kv_pool_free(p);
}

static void test_cap(void) {
    kv_pool *p = mkpool(16, 4);
    int32_t T[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    kv_seq a, b;
    kv_seq_init(&a);
    kv_seq_init(&b);
    start(p, &a, T, 8);
    CU_ASSERT_EQUAL(kv_seq_commit_full_blocks(p, &a, T, 8, NULL), 0);
    CU_ASSERT_EQUAL(stats(p).n_cached, 2);
    kv_seq_release(p, &a);

    /* Whole prompt cached: the last block is left to compute. */
    CU_ASSERT_EQUAL(kv_seq_match_prefix(p, &b, T, 8, NULL), 4);
    CU_ASSERT_EQUAL(b.n_blocks, 1);
    kv_seq_release(p, &b);
    CU_ASSERT_EQUAL(kv_seq_match_prefix(p, &b, T, 9, NULL), 8);
    kv_seq_release(p, &b);
    CU_ASSERT_EQUAL(kv_seq_match_prefix(p, &b, T, 5, NULL), 4);
    kv_seq_release(p, &b);
    CU_ASSERT_EQUAL(kv_seq_match_prefix(p, &b, T, 4, NULL), 0);
    CU_ASSERT_EQUAL(kv_seq_match_prefix(p, &b, T, 1, NULL), 0);
    CU_ASSERT_EQUAL(kv_seq_match_prefix(p, &b, T, 0, NULL), 0);
    CU_ASSERT_EQUAL(b.n_blocks, 0);
    CU_ASSERT_EQUAL(stats(p).query_tokens, 8 + 8 + 9 + 5 + 4 + 1);
    CU_ASSERT_EQUAL(stats(p).hit_tokens, 4 + 8 + 4);
    CHECK_SEQS(p, &b);
    kv_seq_free(&a);
    kv_seq_free(&b);
    kv_pool_free(p);
}

/* One full block + one token, committed and released: leaves one evictable block. */
static void cache_one(kv_pool *p, const int32_t *t) {
    kv_seq s;
    kv_seq_init(&s);
    start(p, &s, t, 3);
    CU_ASSERT_EQUAL(kv_seq_commit_full_blocks(p, &s, t, 3, NULL), 0);
    kv_seq_release(p, &s);
    kv_seq_free(&s);
}

static int probe(kv_pool *p, const int32_t *t, int n) {
    kv_seq s;
    kv_seq_init(&s);
    int m = kv_seq_match_prefix(p, &s, t, n, NULL);
    kv_seq_release(p, &s);
    kv_seq_free(&s);
    return m;
}

static void test_lru(void) {
    kv_pool *p = mkpool(4, 2);
    int32_t A[3] = {1, 1, 101}, B[3] = {2, 2, 102}, C[3] = {3, 3, 103};
    cache_one(p, A);
    cache_one(p, B);
    cache_one(p, C);
    kv_stats st = stats(p);
    CU_ASSERT_EQUAL(st.n_evictable, 3);
    CU_ASSERT_EQUAL(st.n_free, 1);
    CHECK_NONE(p);

    /* Touch B: LRU order becomes A, C, B. */
    CU_ASSERT_EQUAL(probe(p, B, 3), 2);
    kv_seq t;
    kv_seq_init(&t);
    CU_ASSERT_EQUAL(kv_seq_reserve(p, &t, 2, NULL), 0); /* free list first */
    CU_ASSERT_EQUAL(stats(p).n_evictions, 0);
    CU_ASSERT_EQUAL(kv_seq_reserve(p, &t, 4, NULL), 0); /* evicts A */
    CU_ASSERT_EQUAL(stats(p).n_evictions, 1);
    CU_ASSERT_EQUAL(kv_pool_block_refcount(p, t.blocks[1]), 1);
    CHECK_SEQS(p, &t);
    CU_ASSERT_EQUAL(probe(p, A, 3), 0);
    CU_ASSERT_EQUAL(probe(p, C, 3), 2);  /* order now B, C */
    CU_ASSERT_EQUAL(kv_seq_reserve(p, &t, 6, NULL), 0); /* evicts B */
    CU_ASSERT_EQUAL(kv_seq_reserve(p, &t, 9, NULL), INF_EFULL);
    CU_ASSERT_EQUAL(probe(p, B, 3), 0);
    CU_ASSERT_EQUAL(probe(p, C, 3), 2);
    st = stats(p);
    CU_ASSERT_EQUAL(st.n_cached, 1);
    CU_ASSERT_EQUAL(st.n_evictions, 2);
    CHECK_SEQS(p, &t);
    kv_seq_release(p, &t);
    CU_ASSERT_EQUAL(stats(p).n_free, 3);
    CHECK_NONE(p);
    /* A evicted block id re-registers cleanly under new content. */
    cache_one(p, A);
    CU_ASSERT_EQUAL(probe(p, A, 3), 2);
    CHECK_NONE(p);
    kv_seq_free(&t);
    kv_pool_free(p);

    /* A released sequence's tail block is evicted before its head. */
    p = mkpool(3, 2);
    int32_t P[5] = {1, 1, 2, 2, 3};
    kv_seq s;
    kv_seq_init(&s);
    start(p, &s, P, 5);
    CU_ASSERT_EQUAL(kv_seq_commit_full_blocks(p, &s, P, 5, NULL), 0);
    kv_seq_release(p, &s);
    CU_ASSERT_EQUAL(probe(p, P, 5), 4);
    CU_ASSERT_EQUAL(kv_seq_reserve(p, &s, 4, NULL), 0); /* free + one eviction */
    CU_ASSERT_EQUAL(probe(p, P, 5), 2);
    CHECK_SEQS(p, &s);
    kv_seq_release(p, &s);
    kv_seq_free(&s);
    kv_pool_free(p);
}

static void test_dup_commit(void) {
    kv_pool *p = mkpool(16, 4);
    int32_t P[9] = {4, 4, 4, 4, 5, 5, 5, 5, 6};
    kv_seq a, b, c;
    kv_seq_init(&a);
    kv_seq_init(&b);
    kv_seq_init(&c);
    /* Two identical prompts prefilled side by side. */
    CU_ASSERT_EQUAL(start(p, &a, P, 9), 0);
    CU_ASSERT_EQUAL(start(p, &b, P, 9), 0);
    CU_ASSERT_EQUAL(kv_seq_commit_full_blocks(p, &a, P, 9, NULL), 0);
    CU_ASSERT_EQUAL(kv_seq_commit_full_blocks(p, &b, P, 9, NULL), 0);
    CU_ASSERT_EQUAL(stats(p).n_cached, 2);
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_NOT_EQUAL(a.blocks[i], b.blocks[i]);
        CU_ASSERT_EQUAL(kv_pool_block_refcount(p, b.blocks[i]), 1);
    }
    CHECK_SEQS(p, &a, &b);
    kv_seq_release(p, &b); /* b's private copies go straight back to the free list */
    CU_ASSERT_EQUAL(stats(p).n_free, 13);
    CU_ASSERT_EQUAL(stats(p).n_evictable, 0);
    int32_t a0 = a.blocks[0], a1 = a.blocks[1];
    kv_seq_release(p, &a);
    CU_ASSERT_EQUAL(stats(p).n_evictable, 2);
    CU_ASSERT_EQUAL(kv_seq_match_prefix(p, &c, P, 9, NULL), 8);
    CU_ASSERT_EQUAL(c.blocks[0], a0);
    CU_ASSERT_EQUAL(c.blocks[1], a1);
    CHECK_SEQS(p, &c);
    kv_seq_release(p, &c);
    kv_seq_free(&a);
    kv_seq_free(&b);
    kv_seq_free(&c);
    kv_pool_free(p);
}

/* With every hash forced equal, identical block tokens at another position or
 * under another parent must still not match. */
static void test_collision(void) {
    kv_pool *p = mkpool(16, 2);
    inf_error e = {0};
    CU_ASSERT_EQUAL(kv_pool_test_set_hash_bits(p, 65, &e), INF_EINVAL);
    CU_ASSERT_EQUAL(kv_pool_test_set_hash_bits(p, 0, &e), 0);
    int32_t A[5] = {5, 5, 7, 7, 9}, F[5] = {3, 3, 7, 7, 4};
    kv_seq a, f, s;
    kv_seq_init(&a);
    kv_seq_init(&f);
    kv_seq_init(&s);
    start(p, &a, A, 5);
    CU_ASSERT_EQUAL(kv_seq_commit_full_blocks(p, &a, A, 5, NULL), 0);
    CU_ASSERT_EQUAL(kv_pool_test_set_hash_bits(p, 64, &e), INF_ESTATE);
    start(p, &f, F, 5);
    CU_ASSERT_EQUAL(kv_seq_commit_full_blocks(p, &f, F, 5, NULL), 0);
    CU_ASSERT_EQUAL(stats(p).n_cached, 4);
    CHECK_SEQS(p, &a, &f);

    int32_t B[3] = {7, 7, 1};          /* [7,7] cached only at position 1 */
    int32_t C[5] = {6, 6, 7, 7, 9};    /* unknown parent */
    int32_t D[5] = {5, 5, 7, 8, 1};    /* diverges inside block 1 */
    CU_ASSERT_EQUAL(probe(p, B, 3), 0);
    CU_ASSERT_EQUAL(probe(p, C, 5), 0);
    CU_ASSERT_EQUAL(probe(p, D, 5), 2);

    int32_t G[5] = {3, 3, 7, 7, 8}, H[5] = {5, 5, 7, 7, 8};
    CU_ASSERT_EQUAL(kv_seq_match_prefix(p, &s, G, 5, NULL), 4);
    CU_ASSERT_EQUAL(s.blocks[0], f.blocks[0]);
    CU_ASSERT_EQUAL(s.blocks[1], f.blocks[1]);
    kv_seq_release(p, &s);
    CU_ASSERT_EQUAL(kv_seq_match_prefix(p, &s, H, 5, NULL), 4);
    CU_ASSERT_EQUAL(s.blocks[0], a.blocks[0]);
    CU_ASSERT_EQUAL(s.blocks[1], a.blocks[1]);
    CHECK_SEQS(p, &a, &f, &s);
    kv_seq_release(p, &s);
    kv_seq_release(p, &a);
    kv_seq_release(p, &f);
    CHECK_NONE(p);
    kv_seq_free(&a);
    kv_seq_free(&f);
    kv_seq_free(&s);
    kv_pool_free(p);
}

static void test_check_detects(void) {
    kv_pool *p = mkpool(4, 2);
    kv_seq a;
    kv_seq_init(&a);
    CU_ASSERT_EQUAL(kv_seq_reserve(p, &a, 4, NULL), 0);
    inf_error e = {0};
    CU_ASSERT_EQUAL(kv_pool_check(p, NULL, 0, &e), INF_ESTATE); /* a's refs unaccounted */
    const kv_seq *twice[2] = {&a, &a};
    CU_ASSERT_EQUAL(kv_pool_check(p, twice, 2, &e), INF_ESTATE);
    kv_seq copy = a;
    int32_t ids[2] = {a.blocks[0], a.blocks[0]};
    copy.blocks = ids;
    const kv_seq *dup[1] = {&copy};
    CU_ASSERT_EQUAL(kv_pool_check(p, dup, 1, &e), INF_ESTATE);
    CHECK_SEQS(p, &a);
    kv_seq_release(p, &a);
    kv_seq_free(&a);
    kv_pool_free(p);
}

/* ---- randomized run against a naive model ----------------------------- */

#define M_MAXLEN 40
#define M_NSEQ 5
#define M_MAXBS 8
#define M_MAXBLK 32

typedef struct {
    int id, parent, ref; /* parent: entry id, 0 = root */
    uint64_t stamp;      /* when ref last dropped to 0 */
    int32_t block;       /* the pool block registered for it */
    int32_t toks[M_MAXBS];
} m_entry;

typedef struct {
    int bs, n_free, n_ent, next_id;
    m_entry ent[M_MAXBLK]; /* live entries only */
    uint64_t clock, query, hit, evictions;
    int dups, breaks; /* coverage counters */
} m_pool;

typedef struct {
    int active, n_toks, n_computed, n_blocks, n_committed, chain_id;
    int32_t toks[M_MAXLEN];
    int ent_id[M_MAXLEN]; /* per block: entry id, 0 = private */
} m_seq;

typedef struct {
    int pos0, filled;
    int32_t pref[M_MAXLEN];
} shadow_blk;

static int m_find_id(const m_pool *m, int id) {
    for (int i = 0; i < m->n_ent; i++)
        if (m->ent[i].id == id) return i;
    return -1;
}

static int m_find(const m_pool *m, int parent, const int32_t *t) {
    for (int i = 0; i < m->n_ent; i++)
        if (m->ent[i].parent == parent && memcmp(m->ent[i].toks, t, (size_t)m->bs * 4) == 0)
            return i;
    return -1;
}

static int m_evictable(const m_pool *m) {
    int n = 0;
    for (int i = 0; i < m->n_ent; i++) n += m->ent[i].ref == 0;
    return n;
}

static void m_alloc(m_pool *m) {
    if (m->n_free > 0) {
        m->n_free--;
        return;
    }
    int best = -1;
    for (int i = 0; i < m->n_ent; i++)
        if (m->ent[i].ref == 0 && (best < 0 || m->ent[i].stamp < m->ent[best].stamp)) best = i;
    m->ent[best] = m->ent[--m->n_ent];
    m->evictions++;
}

static void m_release(m_pool *m, m_seq *s) {
    for (int i = s->n_blocks - 1; i >= 0; i--) {
        if (s->ent_id[i]) {
            m_entry *e = &m->ent[m_find_id(m, s->ent_id[i])];
            if (--e->ref == 0) e->stamp = ++m->clock;
        } else {
            m->n_free++;
        }
    }
    s->n_blocks = s->n_committed = s->chain_id = 0;
    s->active = 0;
}

static int m_match(m_pool *m, m_seq *s, const int32_t *t, int n, int32_t *blocks_out) {
    m->query += (uint64_t)n;
    int max = n > 0 ? (n - 1) / m->bs : 0, parent = 0, k = 0;
    for (; k < max; k++) {
        int i = m_find(m, parent, t + k * m->bs);
        if (i < 0) break;
        m->ent[i].ref++;
        s->ent_id[k] = parent = m->ent[i].id;
        blocks_out[k] = m->ent[i].block;
    }
    s->n_blocks = s->n_committed = k;
    s->chain_id = parent;
    m->hit += (uint64_t)k * (uint64_t)m->bs;
    return k * m->bs;
}

static int m_reserve(m_pool *m, m_seq *s, int n) {
    int need = (n + m->bs - 1) / m->bs - s->n_blocks;
    if (need <= 0) return 0;
    if (need > m->n_free + m_evictable(m)) return INF_EFULL;
    for (int k = 0; k < need; k++) {
        m_alloc(m);
        s->ent_id[s->n_blocks++] = 0;
    }
    return 0;
}

static void m_commit(m_pool *m, m_seq *s, const kv_seq *real) {
    for (int i = s->n_committed; i < s->n_computed / m->bs; i++) {
        if (i > 0 && m_find_id(m, s->chain_id) < 0) { /* parent evicted */
            m->breaks++;
            break;
        }
        int parent = i > 0 ? s->chain_id : 0;
        const int32_t *t = s->toks + i * m->bs;
        int k = m_find(m, parent, t);
        if (k >= 0) {
            m->dups++;
            s->chain_id = m->ent[k].id;
        } else {
            m_entry *e = &m->ent[m->n_ent++];
            e->id = ++m->next_id;
            e->parent = parent;
            e->ref = 1;
            e->stamp = 0;
            e->block = real->blocks[i];
            memcpy(e->toks, t, (size_t)m->bs * 4);
            s->ent_id[i] = s->chain_id = e->id;
        }
        s->n_committed = i + 1;
    }
}

typedef struct {
    int n_blocks, bs, hash_bits, alphabet, iters;
    uint64_t seed;
} m_config;

#define REQ(c)                                                                       \
    do {                                                                             \
        if (!(c)) {                                                                  \
            printf("\n  config %d iter %d: failed %s (line %d)\n", ci, it, #c, __LINE__); \
            CU_FAIL("model mismatch");                                               \
            goto out;                                                                \
        }                                                                            \
    } while (0)

static void run_model(int ci, const m_config *cf) {
    uint64_t rng = cf->seed;
    int bs = cf->bs, it = -1;
    kv_pool *p = mkpool(cf->n_blocks, bs);
    REQ(kv_pool_test_set_hash_bits(p, cf->hash_bits, NULL) == 0);
    static m_pool m;
    memset(&m, 0, sizeof m);
    m.bs = bs;
    m.n_free = cf->n_blocks;
    m_seq ms[M_NSEQ];
    kv_seq ks[M_NSEQ];
    const kv_seq *kptr[M_NSEQ];
    memset(ms, 0, sizeof ms);
    for (int i = 0; i < M_NSEQ; i++) {
        kv_seq_init(&ks[i]);
        kptr[i] = &ks[i];
    }
    static shadow_blk sh[M_MAXBLK];
    memset(sh, 0, sizeof sh);
    int32_t base[3][M_MAXLEN];
    for (int b = 0; b < 3; b++)
        for (int i = 0; i < M_MAXLEN; i++) base[b][i] = 1 + (int32_t)(tu_rand_u64(&rng) % 3);
    int n_efull = 0, n_hits = 0;

    for (it = 0; it < cf->iters; it++) {
        int si = (int)(tu_rand_u64(&rng) % M_NSEQ);
        m_seq *s = &ms[si];
        kv_seq *k = &ks[si];
        int op = (int)(tu_rand_u64(&rng) % 10), do_reserve = 0;
        if (!s->active) {
            /* New request: a shared base prefix then random tokens. */
            int n = 1 + (int)(tu_rand_u64(&rng) % (M_MAXLEN * 3 / 4));
            int l1 = (int)(tu_rand_u64(&rng) % (unsigned)(n + 1));
            const int32_t *bp = base[tu_rand_u64(&rng) % 3];
            for (int i = 0; i < n; i++)
                s->toks[i] = i < l1 ? bp[i]
                                    : 1 + (int32_t)(tu_rand_u64(&rng) % (uint64_t)cf->alphabet);
            s->n_toks = n;
            int32_t want[M_MAXLEN];
            int got = kv_seq_match_prefix(p, k, s->toks, n, NULL);
            int exp = m_match(&m, s, s->toks, n, want);
            REQ(got == exp);
            n_hits += got > 0;
            for (int j = 0; j < got / bs; j++) {
                int32_t b = k->blocks[j];
                REQ(b == want[j]);
                REQ(sh[b].pos0 == j * bs && sh[b].filled == bs);
                REQ(memcmp(sh[b].pref, s->toks, (size_t)(j + 1) * (size_t)bs * 4) == 0);
            }
            s->n_computed = got;
            s->active = 1;
            op = -1;
            do_reserve = 1; /* the prompt */
        }
        if (op >= 0 && op <= 4 && s->n_computed < s->n_toks) {
            /* Compute some tokens: the shadow backend writes their K/V. */
            int n = 1 + (int)(tu_rand_u64(&rng) % (unsigned)(s->n_toks - s->n_computed));
            for (int pos = s->n_computed; pos < s->n_computed + n; pos++) {
                int j = pos / bs;
                int32_t b = k->blocks[j];
                REQ(kv_pool_block_refcount(p, b) == 1);
                REQ(sh[b].pos0 == j * bs && sh[b].filled == pos % bs);
                memcpy(sh[b].pref, s->toks, (size_t)(pos + 1) * 4);
                sh[b].filled++;
            }
            s->n_computed += n;
            REQ(kv_seq_commit_full_blocks(p, k, s->toks, s->n_computed, NULL) == 0);
            m_commit(&m, s, k);
        } else if (op == 5) {
            kv_seq_release(p, k);
            m_release(&m, s);
        } else if (op == 6) {
            REQ(kv_seq_commit_full_blocks(p, k, s->toks, s->n_computed, NULL) == 0);
            m_commit(&m, s, k);
        } else if (op >= 7 && s->n_computed == s->n_toks) {
            /* Decode: append tokens; a finished sequence goes away. */
            if (s->n_toks == M_MAXLEN) {
                kv_seq_release(p, k);
                m_release(&m, s);
            } else {
                int add = 1 + (int)(tu_rand_u64(&rng) % 3);
                for (int i = 0; i < add && s->n_toks < M_MAXLEN; i++)
                    s->toks[s->n_toks++] =
                        1 + (int32_t)(tu_rand_u64(&rng) % (uint64_t)cf->alphabet);
                do_reserve = 1;
            }
        }
        if (do_reserve) {
            int old = k->n_blocks;
            REQ(kv_seq_blocks_needed(p, k, s->n_toks) ==
                (s->n_toks + bs - 1) / bs - s->n_blocks);
            int rc = kv_seq_reserve(p, k, s->n_toks, NULL);
            REQ(rc == m_reserve(&m, s, s->n_toks));
            if (rc == INF_EFULL) {
                n_efull++;
                kv_seq_release(p, k); /* preempted */
                m_release(&m, s);
            }
            for (int j = old; j < k->n_blocks; j++) {
                sh[k->blocks[j]].pos0 = j * bs;
                sh[k->blocks[j]].filled = 0;
            }
        }
        kv_stats st = stats(p);
        REQ(st.n_free == m.n_free);
        REQ(st.n_evictable == m_evictable(&m));
        REQ(st.n_cached == m.n_ent);
        REQ(st.query_tokens == m.query && st.hit_tokens == m.hit);
        REQ(st.n_evictions == m.evictions);
        REQ(k->n_blocks == s->n_blocks);
        for (int q = 0; q < M_NSEQ; q++) REQ(ms[q].active || ks[q].n_blocks == 0);
        for (int i = 0; i < m.n_ent; i++)
            REQ(kv_pool_block_refcount(p, m.ent[i].block) == m.ent[i].ref);
        REQ(check_(p, kptr, M_NSEQ) == 0);
    }
    printf("[cfg %d: %d hits, %d EFULL, %llu evictions, %d dups, %d breaks] ", ci, n_hits,
           n_efull, (unsigned long long)m.evictions, m.dups, m.breaks);
    CU_ASSERT(n_hits > 0);
    CU_ASSERT(n_efull > 0);
    CU_ASSERT(m.evictions > 0);
out:
    for (int i = 0; i < M_NSEQ; i++) {
        kv_seq_release(p, &ks[i]);
        kv_seq_free(&ks[i]);
    }
    kv_pool_free(p);
}

static void test_random_model(void) {
    static const m_config cfgs[] = {
        {20, 4, 64, 3, 4000, 1},
        {16, 2, 2, 2, 4000, 2},
        {24, 1, 0, 2, 3000, 3},
        {12, 3, 64, 4, 3000, 4},
        {12, 8, 1, 2, 3000, 5},
    };
    for (int i = 0; i < (int)(sizeof cfgs / sizeof cfgs[0]); i++) run_model(i, &cfgs[i]);
}

void test_register_kvcache(void) {
    CU_pSuite s = CU_add_suite("kvcache", NULL, NULL);
    CU_add_test(s, "sizes and hash", test_sizes);
    CU_add_test(s, "exhaustion and release", test_exhaust);
    CU_add_test(s, "prefix sharing", test_share);
    CU_add_test(s, "divergence inside a block", test_diverge);
    CU_add_test(s, "full-prompt match capped", test_cap);
    CU_add_test(s, "LRU eviction", test_lru);
    CU_add_test(s, "duplicate commit stays private", test_dup_commit);
    CU_add_test(s, "hash collisions harmless", test_collision);
    CU_add_test(s, "check detects corruption", test_check_detects);
    CU_add_test(s, "randomized vs model", test_random_model);
}
