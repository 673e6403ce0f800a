/* test_kv_memory.c - suite "kv_memory": the worker's memory stays bounded
 * under sustained load (issue 11; `make soak` measures the same on a whole
 * deployment). The growth once reported (RSS +70 KB per request for
 * thousands of requests) was the CPU KV cache being faulted in block by
 * block: with prefix caching, released full blocks stay cached and
 * allocation takes never-used blocks first, so every block is touched once
 * before any is reused. These tests pin the two properties that make the
 * memory flat: the pool never hands out more than its n_blocks distinct
 * blocks however many sequences pass (evicting cached ones instead), and a
 * backend created with kv_prefault has its whole KV cache resident from the
 * start. No timing and no RSS reading. */
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "gguf.h"
#include "kvcache.h"
#include "model_random.h"
#include "testutil.h"

/* 5,000 sequences with distinct prompts (40..103 tokens, 8..40 generated)
 * through a 64-block pool with prefix caching: at most 64 distinct block
 * ids ever, the free list is used up before the first eviction (the
 * first-touch order), evictions afterwards, and the pool's invariants hold. */
static void test_pool_bounded(void) {
    enum { NB = 64, BS = 16, NSEQ = 5000 };
    kv_pool *p = NULL;
    inf_error err = {0};
    CU_ASSERT_EQUAL_FATAL(kv_pool_create(&p, NB, BS, &err), 0);
    uint8_t seen[NB] = {0};
    int distinct = 0, evicted_before_full = 0;
    uint64_t rng = 42;
    int32_t toks[160];
    kv_seq s;
    kv_seq_init(&s);
    for (int q = 0; q < NSEQ; q++) {
        int n_prompt = 40 + (int)(tu_rand_u64(&rng) % 64), n_gen = 8 + (int)(tu_rand_u64(&rng) % 33);
        /* a shared first block now and then: some prefix hits, as in service */
        for (int i = 0; i < n_prompt + n_gen; i++)
            toks[i] = (q % 4 == 0 && i < BS) ? i : (int32_t)(tu_rand_u64(&rng) % 32000);
        int hit = kv_seq_match_prefix(p, &s, toks, n_prompt, &err);
        CU_ASSERT_FATAL(hit >= 0);
        CU_ASSERT_EQUAL_FATAL(kv_seq_reserve(p, &s, n_prompt + n_gen, &err), 0);
        CU_ASSERT_EQUAL_FATAL(kv_seq_commit_full_blocks(p, &s, toks, n_prompt + n_gen, &err), 0);
        for (int b = 0; b < s.n_blocks; b++) {
            int32_t id = s.blocks[b];
            CU_ASSERT_FATAL(id >= 0 && id < NB);
            if (!seen[id]) {
                seen[id] = 1;
                distinct++;
            }
        }
        kv_stats st;
        kv_pool_stats(p, &st);
        if (distinct < NB && st.n_evictions > 0) evicted_before_full = 1;
        CU_ASSERT_EQUAL(st.n_used + st.n_free + st.n_evictable, NB);
        CU_ASSERT(st.n_cached <= NB);
        const kv_seq *live[1] = {&s};
        if (q % 500 == 0) CU_ASSERT_EQUAL(kv_pool_check(p, live, 1, &err), 0);
        kv_seq_release(p, &s);
    }
    kv_stats st;
    kv_pool_stats(p, &st);
    CU_ASSERT_EQUAL(distinct, NB);     /* every block used... */
    CU_ASSERT_EQUAL(evicted_before_full, 0); /* ...each once before any cached one was evicted */
    CU_ASSERT(st.n_evictions > 0);     /* and then reused, never more blocks */
    CU_ASSERT(st.hit_tokens > 0);
    CU_ASSERT_EQUAL(st.n_used, 0);
    CU_ASSERT_EQUAL(kv_pool_check(p, NULL, 0, &err), 0);
    kv_seq_free(&s);
    kv_pool_free(p);
}

static backend *cpu_backend_with(gguf_file *f, size_t kv_bytes, int prefault) {
    backend_config cfg = backend_config_default();
    cfg.kv_cache_bytes = kv_bytes;
    cfg.n_threads = 1;
    cfg.max_batch_tokens = 64;
    cfg.kv_prefault = prefault;
    backend *b = NULL;
    inf_error err = {0};
    if (backend_cpu_create(&b, f, &cfg, &err) != 0) fprintf(stderr, "\n    backend: %s\n", err.msg);
    return b;
}

/* kv_prefault: the whole KV cache is resident right after creation (the
 * worker sets it). Without it the pages of a fresh cache are not (each K
 * and V array is 64 MiB: malloc maps such sizes fresh, never from the heap). */
static void test_prefault_resident(void) {
    const char *path = tu_tmpfile("kvmem.gguf");
    model_random_opts o = {2, 64, 4, 2, 96, 300, 256, GGML_TYPE_F32, 0, 0, "llama", 10000.0f, NULL, 5};
    CU_ASSERT_EQUAL_FATAL(model_random_write(path, &o, NULL), 0);
    gguf_file *f = NULL;
    inf_error err = {0};
    CU_ASSERT_EQUAL_FATAL(gguf_open(&f, path, &err), 0);
    const size_t kv = (size_t)128 << 20;
    backend *lazy = cpu_backend_with(f, kv, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(lazy);
    size_t total = 0, res = backend_cpu_kv_resident(lazy, &total);
    CU_ASSERT(total > kv / 2 && total <= kv);
    CU_ASSERT(res < total / 4);
    fprintf(stderr, "\n    KV %zu bytes: %zu resident lazily", total, res);
    backend_free(lazy);
    backend *eager = cpu_backend_with(f, kv, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(eager);
    res = backend_cpu_kv_resident(eager, &total);
    CU_ASSERT_EQUAL(res, total);
    fprintf(stderr, ", %zu with kv_prefault\n", res);
    backend_free(eager);
    gguf_close(f);
}

void test_register_kv_memory(void) {
    CU_pSuite s = CU_add_suite("kv_memory", NULL, NULL);
    CU_add_test(s, "pool: at most n_blocks distinct blocks, free list first", test_pool_bounded);
    CU_add_test(s, "kv_prefault: the KV cache resident at creation", test_prefault_resident);
}
