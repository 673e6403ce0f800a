/* kvcache.h - paged KV-cache block manager with prefix caching.
 *
 * Bookkeeping only: the pool hands out block ids in [0, n_blocks); each backend
 * (CPU or GPU) owns the K/V storage arrays and indexes them by block id, so one
 * manager serves every backend. A block holds block_size consecutive token
 * positions of one sequence.
 *
 * Every block is in exactly one state:
 *   free       - refcount 0, no content worth keeping, on the free list;
 *   in use     - refcount > 0 (held by that many sequences);
 *   evictable  - refcount 0 but registered in the prefix cache, on an LRU list;
 *                a later request with the same prefix revives it.
 * Allocation takes the free list first and evicts the least recently released
 * evictable block only when the free list is empty.
 *
 * Prefix caching (vLLM style): a full block is keyed by a 64-bit hash chained
 * from its parent block's hash and its token ids. Lookups also compare the
 * stored token ids and the identity (registration serial) of the parent block,
 * so a hash collision can never make a sequence reuse a block whose content
 * belongs to a different prefix or position. Shared (cached) full blocks are
 * never written again, so no copy-on-write is needed.
 *
 * Not thread-safe: the scheduler drives it from one thread.
 */
#ifndef INF_KVCACHE_H
#define INF_KVCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define KV_DEFAULT_BLOCK_SIZE 16
/* Parent hash of a sequence's first block. */
#define KV_HASH_ROOT 0ULL

typedef struct kv_pool kv_pool;

/* A sequence's block table: blocks[i] holds token positions
 * [i*block_size, (i+1)*block_size). The fields after `cap` track which leading
 * full blocks are already registered in (or matched from) the prefix cache;
 * treat them as private to kvcache.c. */
typedef struct kv_seq {
    int32_t *blocks; /* owned by the seq; ids index the backend's K/V arrays */
    int n_blocks, cap;
    int n_committed;       /* leading full blocks already matched or committed */
    uint64_t chain_hash;   /* hash of block n_committed-1 (KV_HASH_ROOT if none) */
    int32_t chain_block;   /* cached block standing for block n_committed-1, or -1 */
    uint64_t chain_serial; /* its registration serial, to notice it was evicted */
} kv_seq;

typedef struct kv_stats {
    int n_blocks;           /* total */
    int n_used;             /* refcount > 0 */
    int n_free;             /* on the free list */
    int n_evictable;        /* cached with refcount 0 (reusable, evicted on demand) */
    int n_cached;           /* registered in the prefix cache (used or evictable) */
    uint64_t query_tokens;  /* prompt tokens passed to kv_seq_match_prefix */
    uint64_t hit_tokens;    /* of those, tokens covered by cached blocks */
    uint64_t n_evictions;   /* cached blocks dropped to satisfy an allocation */
} kv_stats;

/* Bytes one block needs in a backend: K and V for every layer, i.e.
 * 2 * n_layer * n_kv_heads * head_dim * block_size * bytes_per_elem.
 * Returns 0 for a non-positive argument or on overflow. */
size_t kv_block_bytes(int n_layer, int n_kv_heads, int head_dim, int block_size,
                      size_t bytes_per_elem);

/* How many whole blocks fit in budget_bytes (0 if none or on bad arguments;
 * capped at INT32_MAX since block ids are int32). */
int kv_blocks_for_budget(size_t budget_bytes, int n_layer, int n_kv_heads, int head_dim,
                         int block_size, size_t bytes_per_elem);

/* Content hash of one block chained from its parent's hash (KV_HASH_ROOT for
 * the first block). Pure function of its arguments. */
uint64_t kv_hash_block(uint64_t parent_hash, const int32_t *tokens, int n);

/* Creates a pool of n_blocks blocks of block_size tokens, all free. *out is
 * owned by the caller (kv_pool_free). INF_EINVAL / INF_ENOMEM on failure. */
int kv_pool_create(kv_pool **out, int n_blocks, int block_size, inf_error *err);

/* Frees the pool. Sequences still holding blocks must not be used with it
 * afterwards (their tables are theirs to kv_seq_free). NULL is a no-op. */
void kv_pool_free(kv_pool *pool);

int kv_pool_block_size(const kv_pool *pool);
int kv_pool_n_blocks(const kv_pool *pool);

/* Blocks an allocation could get right now: free + evictable cached. Note a
 * kv_seq_match_prefix that revives evictable blocks lowers this. */
int kv_pool_n_available(const kv_pool *pool);

/* Reference count of one block (-1 if the id is out of range). For tests and
 * for backends asserting they only write private blocks. */
int kv_pool_block_refcount(const kv_pool *pool, int32_t block);

/* Fills *st with the current counters. */
void kv_pool_stats(const kv_pool *pool, kv_stats *st);

/* hit_tokens / query_tokens, 0 when nothing was queried. */
double kv_stats_hit_rate(const kv_stats *st);

/* Full invariant check, O(n_blocks + table + seq blocks): every block in
 * exactly one state, free list / LRU list / hash table consistent, and every
 * refcount equal to the number of references from the given live sequences
 * (which must be all sequences holding blocks of this pool). Returns 0 or
 * INF_ESTATE naming the first violation (INF_ENOMEM if scratch allocation fails). */
int kv_pool_check(const kv_pool *pool, const kv_seq *const *seqs, int n_seqs, inf_error *err);

/* Test hook: keeps only the low `bits` bits (0..64) of every block hash, so
 * tests can force collisions (bits = 0: all hashes equal). Only allowed while
 * nothing is cached (INF_ESTATE otherwise). */
int kv_pool_test_set_hash_bits(kv_pool *pool, int bits, inf_error *err);

/* Makes an empty sequence (no memory allocated yet). */
void kv_seq_init(kv_seq *seq);

/* Frees the table memory. Does not touch any pool: call kv_seq_release first
 * or the blocks' references leak. */
void kv_seq_free(kv_seq *seq);

/* Blocks kv_seq_reserve(pool, seq, n_tokens_total) would have to allocate
 * (0 if the seq already has room). */
int kv_seq_blocks_needed(const kv_pool *pool, const kv_seq *seq, int n_tokens_total);

/* Grows seq's table so that n_tokens_total tokens fit (never shrinks). New
 * blocks are private (refcount 1), taken from the free list, else by evicting
 * LRU cached blocks. INF_EFULL, with nothing changed, when the pool cannot
 * supply them all; INF_ENOMEM if the table cannot grow. */
int kv_seq_reserve(kv_pool *pool, kv_seq *seq, int n_tokens_total, inf_error *err);

/* For an empty seq and its prompt: takes a reference on the longest run of
 * cached full blocks matching tokens from the start and appends them to seq's
 * table. Only blocks ending strictly before the last prompt token are matched,
 * so at least one token is always left to compute (the model needs its
 * logits). Returns the number of tokens covered (a multiple of block_size,
 * < n_tokens), or INF_EINVAL / INF_ESTATE (seq not empty) / INF_ENOMEM. */
int kv_seq_match_prefix(kv_pool *pool, kv_seq *seq, const int32_t *tokens, int n_tokens,
                        inf_error *err);

/* Tells the pool that the first n_computed tokens of `tokens` (the seq's full
 * token list; the prefix already committed must be unchanged) now have their
 * K/V in seq's blocks, and registers the newly completed full blocks in the
 * prefix cache. If an identical block is already cached, that one stays
 * registered and seq's copy stays private. If the cached block standing for
 * seq's last committed block was evicted meanwhile, seq's later blocks are not
 * registered (they could never be matched without their parent). Call as often
 * as convenient; O(1) per newly completed block. */
int kv_seq_commit_full_blocks(kv_pool *pool, kv_seq *seq, const int32_t *tokens,
                              int n_computed, inf_error *err);

/* Drops every reference seq holds and empties its table (memory is kept for
 * reuse). Cached blocks reaching refcount 0 become evictable, the seq's last
 * block first, so a prefix outlives its continuations; private ones go back to
 * the free list. */
void kv_seq_release(kv_pool *pool, kv_seq *seq);

#endif
