/* kvcache.c - paged KV-cache block manager with prefix caching (see kvcache.h).
 *
 * Per-block state lives in parallel arrays indexed by block id. The free list
 * and the LRU list of evictable blocks share one pair of intrusive prev/next
 * arrays (a block is on at most one list). The prefix cache is an open-
 * addressing table of block ids with linear probing and backward-shift
 * deletion, so no tombstones build up as blocks are evicted.
 */
#include "kvcache.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { KV_FREE = 0, KV_USED = 1, KV_EVICTABLE = 2 };

typedef struct kv_list {
    int32_t head, tail;
    int count;
} kv_list;

struct kv_pool {
    int n_blocks, block_size;
    int32_t *refcnt;
    uint8_t *state;
    int32_t *prev, *next;     /* links for whichever list the block is on */
    uint64_t *hash;           /* valid while serial != 0 */
    uint64_t *serial;         /* registration serial, 0 = not cached */
    uint64_t *parent_serial;  /* serial of the parent block at registration, 0 = root */
    int32_t *tokens;          /* n_blocks * block_size token ids of cached blocks */
    int32_t *table;           /* block ids, -1 = empty slot */
    size_t table_mask;
    int n_cached;
    kv_list free_list, lru;   /* lru: head = least recently released */
    uint64_t next_serial;
    uint64_t hash_mask;
    uint64_t query_tokens, hit_tokens, n_evictions;
};

/* ---- hashing ---------------------------------------------------------- */

static uint64_t mix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

uint64_t kv_hash_block(uint64_t parent_hash, const int32_t *tokens, int n) {
    uint64_t h = mix64(parent_hash ^ 0x6a09e667f3bcc909ULL);
    for (int i = 0; i < n; i++) {
        h ^= (uint64_t)(uint32_t)tokens[i];
        h *= 0x9e3779b97f4a7c15ULL;
        h ^= h >> 29;
    }
    return mix64(h ^ (uint64_t)(uint32_t)n);
}

/* ---- sizing ----------------------------------------------------------- */

size_t kv_block_bytes(int n_layer, int n_kv_heads, int head_dim, int block_size,
                      size_t bytes_per_elem) {
    if (n_layer <= 0 || n_kv_heads <= 0 || head_dim <= 0 || block_size <= 0 || bytes_per_elem == 0)
        return 0;
    size_t f[5] = {(size_t)n_layer, (size_t)n_kv_heads, (size_t)head_dim, (size_t)block_size,
                   bytes_per_elem};
    size_t v = 2;
    for (int i = 0; i < 5; i++) {
        if (v > SIZE_MAX / f[i]) return 0;
        v *= f[i];
    }
    return v;
}

int kv_blocks_for_budget(size_t budget_bytes, int n_layer, int n_kv_heads, int head_dim,
                         int block_size, size_t bytes_per_elem) {
    size_t bb = kv_block_bytes(n_layer, n_kv_heads, head_dim, block_size, bytes_per_elem);
    if (bb == 0) return 0;
    size_t n = budget_bytes / bb;
    return n > (size_t)INT32_MAX ? INT32_MAX : (int)n;
}

/* ---- intrusive lists -------------------------------------------------- */

static void list_push_tail(kv_pool *p, kv_list *l, int32_t b) {
    p->prev[b] = l->tail;
    p->next[b] = -1;
    if (l->tail >= 0) p->next[l->tail] = b;
    else l->head = b;
    l->tail = b;
    l->count++;
}

static void list_push_head(kv_pool *p, kv_list *l, int32_t b) {
    p->prev[b] = -1;
    p->next[b] = l->head;
    if (l->head >= 0) p->prev[l->head] = b;
    else l->tail = b;
    l->head = b;
    l->count++;
}

static void list_remove(kv_pool *p, kv_list *l, int32_t b) {
    int32_t pv = p->prev[b], nx = p->next[b];
    if (pv >= 0) p->next[pv] = nx;
    else l->head = nx;
    if (nx >= 0) p->prev[nx] = pv;
    else l->tail = pv;
    p->prev[b] = p->next[b] = -1;
    l->count--;
}

/* ---- hash table ------------------------------------------------------- */

static size_t table_home(const kv_pool *p, uint64_t h) { return (size_t)h & p->table_mask; }

static const int32_t *block_tokens(const kv_pool *p, int32_t b) {
    return p->tokens + (size_t)b * (size_t)p->block_size;
}

static int32_t table_find(const kv_pool *p, uint64_t h, uint64_t parent_serial,
                          const int32_t *toks) {
    size_t bytes = (size_t)p->block_size * sizeof(int32_t);
    for (size_t i = table_home(p, h);; i = (i + 1) & p->table_mask) {
        int32_t b = p->table[i];
        if (b < 0) return -1;
        if (p->hash[b] == h && p->parent_serial[b] == parent_serial &&
            memcmp(block_tokens(p, b), toks, bytes) == 0)
            return b;
    }
}

/* The table holds at most n_blocks entries in >= 2*n_blocks slots, so an
 * empty slot always ends the probe. */
static void table_insert(kv_pool *p, int32_t b) {
    size_t i = table_home(p, p->hash[b]);
    while (p->table[i] >= 0) i = (i + 1) & p->table_mask;
    p->table[i] = b;
    p->n_cached++;
}

static void table_remove(kv_pool *p, int32_t b) {
    size_t i = table_home(p, p->hash[b]);
    while (p->table[i] != b) i = (i + 1) & p->table_mask;
    /* Backward shift: pull later entries of the probe run into the hole when
     * their home slot does not lie cyclically in (hole, their slot]. */
    size_t j = i;
    for (;;) {
        j = (j + 1) & p->table_mask;
        int32_t c = p->table[j];
        if (c < 0) break;
        size_t k = table_home(p, p->hash[c]);
        int stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            p->table[i] = c;
            i = j;
        }
    }
    p->table[i] = -1;
    p->n_cached--;
}

/* ---- block state transitions ------------------------------------------ */

static void uncache(kv_pool *p, int32_t b) {
    table_remove(p, b);
    p->serial[b] = 0;
    p->parent_serial[b] = 0;
    p->hash[b] = 0;
}

/* Caller has checked that a block is available. */
static int32_t alloc_block(kv_pool *p) {
    int32_t b;
    if (p->free_list.count > 0) {
        b = p->free_list.head;
        list_remove(p, &p->free_list, b);
    } else {
        b = p->lru.head;
        list_remove(p, &p->lru, b);
        uncache(p, b);
        p->n_evictions++;
    }
    p->state[b] = KV_USED;
    p->refcnt[b] = 1;
    return b;
}

static void block_ref(kv_pool *p, int32_t b) {
    if (p->refcnt[b] == 0) {
        list_remove(p, &p->lru, b);
        p->state[b] = KV_USED;
    }
    p->refcnt[b]++;
}

static void block_unref(kv_pool *p, int32_t b) {
    if (--p->refcnt[b] > 0) return;
    if (p->serial[b] != 0) {
        p->state[b] = KV_EVICTABLE;
        list_push_tail(p, &p->lru, b);
    } else {
        p->state[b] = KV_FREE;
        list_push_head(p, &p->free_list, b);
    }
}

/* ---- pool ------------------------------------------------------------- */

int kv_pool_create(kv_pool **out, int n_blocks, int block_size, inf_error *err) {
    if (!out) return inf_error_set(err, INF_EINVAL, "kv_pool_create: out is NULL");
    *out = NULL;
    if (n_blocks <= 0 || block_size <= 0)
        return inf_error_set(err, INF_EINVAL,
                             "kv_pool_create: n_blocks (%d) and block_size (%d) must be positive",
                             n_blocks, block_size);
    size_t nb = (size_t)n_blocks;
    if (nb > (SIZE_MAX / sizeof(int32_t)) / (size_t)block_size)
        return inf_error_set(err, INF_EINVAL, "kv_pool_create: %d blocks of %d tokens is too large",
                             n_blocks, block_size);
    size_t tcap = 8;
    while (tcap < 2 * nb) tcap *= 2;

    kv_pool *p = calloc(1, sizeof *p);
    if (!p) return inf_error_set(err, INF_ENOMEM, "kv_pool_create: out of memory");
    p->n_blocks = n_blocks;
    p->block_size = block_size;
    p->refcnt = calloc(nb, sizeof *p->refcnt);
    p->state = calloc(nb, sizeof *p->state);
    p->prev = malloc(nb * sizeof *p->prev);
    p->next = malloc(nb * sizeof *p->next);
    p->hash = calloc(nb, sizeof *p->hash);
    p->serial = calloc(nb, sizeof *p->serial);
    p->parent_serial = calloc(nb, sizeof *p->parent_serial);
    p->tokens = calloc(nb * (size_t)block_size, sizeof *p->tokens);
    p->table = malloc(tcap * sizeof *p->table);
    if (!p->refcnt || !p->state || !p->prev || !p->next || !p->hash || !p->serial ||
        !p->parent_serial || !p->tokens || !p->table) {
        kv_pool_free(p);
        return inf_error_set(err, INF_ENOMEM, "kv_pool_create: out of memory for %d blocks",
                             n_blocks);
    }
    p->table_mask = tcap - 1;
    for (size_t i = 0; i < tcap; i++) p->table[i] = -1;
    p->free_list = (kv_list){-1, -1, 0};
    p->lru = (kv_list){-1, -1, 0};
    /* Ascending ids so a fresh pool hands out 0, 1, 2, ... */
    for (int32_t b = 0; b < n_blocks; b++) list_push_tail(p, &p->free_list, b);
    p->next_serial = 1;
    p->hash_mask = UINT64_MAX;
    *out = p;
    return 0;
}

void kv_pool_free(kv_pool *p) {
    if (!p) return;
    free(p->refcnt);
    free(p->state);
    free(p->prev);
    free(p->next);
    free(p->hash);
    free(p->serial);
    free(p->parent_serial);
    free(p->tokens);
    free(p->table);
    free(p);
}

int kv_pool_block_size(const kv_pool *p) { return p->block_size; }
int kv_pool_n_blocks(const kv_pool *p) { return p->n_blocks; }
int kv_pool_n_available(const kv_pool *p) { return p->free_list.count + p->lru.count; }

int kv_pool_block_refcount(const kv_pool *p, int32_t block) {
    if (block < 0 || block >= p->n_blocks) return -1;
    return p->refcnt[block];
}

void kv_pool_stats(const kv_pool *p, kv_stats *st) {
    st->n_blocks = p->n_blocks;
    st->n_free = p->free_list.count;
    st->n_evictable = p->lru.count;
    st->n_used = p->n_blocks - p->free_list.count - p->lru.count;
    st->n_cached = p->n_cached;
    st->query_tokens = p->query_tokens;
    st->hit_tokens = p->hit_tokens;
    st->n_evictions = p->n_evictions;
}

double kv_stats_hit_rate(const kv_stats *st) {
    return st->query_tokens ? (double)st->hit_tokens / (double)st->query_tokens : 0.0;
}

int kv_pool_test_set_hash_bits(kv_pool *p, int bits, inf_error *err) {
    if (bits < 0 || bits > 64)
        return inf_error_set(err, INF_EINVAL, "kv_pool_test_set_hash_bits: bits %d not in 0..64",
                             bits);
    if (p->n_cached != 0)
        return inf_error_set(err, INF_ESTATE,
                             "kv_pool_test_set_hash_bits: %d blocks are cached under the old hash",
                             p->n_cached);
    p->hash_mask = bits == 64 ? UINT64_MAX : (((uint64_t)1 << bits) - 1);
    return 0;
}

/* Walks one list checking links, membership state and count. */
static int check_list(const kv_pool *p, const kv_list *l, int want_state, const char *name,
                      inf_error *err) {
    int n = 0;
    int32_t prev = -1;
    for (int32_t b = l->head; b >= 0; b = p->next[b]) {
        if (b >= p->n_blocks || n >= p->n_blocks)
            return inf_error_set(err, INF_ESTATE, "kv check: %s list is corrupt (bad id or cycle)",
                                 name);
        if (p->prev[b] != prev)
            return inf_error_set(err, INF_ESTATE, "kv check: %s list back link of block %d is wrong",
                                 name, (int)b);
        if (p->state[b] != want_state)
            return inf_error_set(err, INF_ESTATE, "kv check: block %d on the %s list has state %d",
                                 (int)b, name, (int)p->state[b]);
        prev = b;
        n++;
    }
    if (l->tail != prev || n != l->count)
        return inf_error_set(err, INF_ESTATE, "kv check: %s list has %d blocks, count says %d",
                             name, n, l->count);
    return 0;
}

static int check_blocks(const kv_pool *p, const int32_t *want_ref, const uint8_t *in_table,
                        inf_error *err) {
    int n_free = 0, n_evict = 0, n_hashed = 0;
    for (int32_t b = 0; b < p->n_blocks; b++) {
        int st = p->state[b], cached = p->serial[b] != 0;
        n_hashed += cached;
        if (p->refcnt[b] != want_ref[b])
            return inf_error_set(err, INF_ESTATE,
                                 "kv check: block %d has refcount %d but live seqs hold %d",
                                 (int)b, (int)p->refcnt[b], (int)want_ref[b]);
        if (in_table[b] != (cached ? 1 : 0))
            return inf_error_set(err, INF_ESTATE,
                                 "kv check: block %d is %scached but appears %d times in the table",
                                 (int)b, cached ? "" : "not ", (int)in_table[b]);
        if (cached && p->parent_serial[b] >= p->serial[b])
            return inf_error_set(err, INF_ESTATE, "kv check: block %d registered before its parent",
                                 (int)b);
        if (cached && p->hash[b] != (p->hash[b] & p->hash_mask))
            return inf_error_set(err, INF_ESTATE, "kv check: block %d hash exceeds the hash mask",
                                 (int)b);
        switch (st) {
        case KV_FREE:
            if (p->refcnt[b] != 0 || cached)
                return inf_error_set(err, INF_ESTATE, "kv check: free block %d is referenced or cached",
                                     (int)b);
            n_free++;
            break;
        case KV_USED:
            if (p->refcnt[b] <= 0)
                return inf_error_set(err, INF_ESTATE, "kv check: used block %d has refcount %d",
                                     (int)b, (int)p->refcnt[b]);
            if (p->prev[b] != -1 || p->next[b] != -1)
                return inf_error_set(err, INF_ESTATE, "kv check: used block %d is linked on a list",
                                     (int)b);
            break;
        case KV_EVICTABLE:
            if (p->refcnt[b] != 0 || !cached)
                return inf_error_set(err, INF_ESTATE,
                                     "kv check: evictable block %d is referenced or not cached", (int)b);
            n_evict++;
            break;
        default:
            return inf_error_set(err, INF_ESTATE, "kv check: block %d has unknown state %d", (int)b, st);
        }
    }
    if (n_free != p->free_list.count || n_evict != p->lru.count)
        return inf_error_set(err, INF_ESTATE,
                             "kv check: %d free / %d evictable blocks but lists hold %d / %d", n_free,
                             n_evict, p->free_list.count, p->lru.count);
    if (n_hashed != p->n_cached)
        return inf_error_set(err, INF_ESTATE, "kv check: %d cached blocks but counter says %d",
                             n_hashed, p->n_cached);
    return 0;
}

int kv_pool_check(const kv_pool *p, const kv_seq *const *seqs, int n_seqs, inf_error *err) {
    if (!p || n_seqs < 0 || (n_seqs > 0 && !seqs))
        return inf_error_set(err, INF_EINVAL, "kv_pool_check: bad arguments");
    int rc = check_list(p, &p->free_list, KV_FREE, "free", err);
    if (rc) return rc;
    if ((rc = check_list(p, &p->lru, KV_EVICTABLE, "LRU", err))) return rc;

    size_t nb = (size_t)p->n_blocks;
    int32_t *want_ref = calloc(nb, sizeof *want_ref);
    int32_t *seen_in = malloc(nb * sizeof *seen_in); /* last seq index holding the block */
    uint8_t *in_table = calloc(nb, 1);
    if (!want_ref || !seen_in || !in_table) {
        rc = inf_error_set(err, INF_ENOMEM, "kv_pool_check: out of memory");
        goto done;
    }
    for (size_t b = 0; b < nb; b++) seen_in[b] = -1;

    int table_entries = 0;
    for (size_t i = 0; i <= p->table_mask; i++) {
        int32_t b = p->table[i];
        if (b < 0) continue;
        table_entries++;
        if (b >= p->n_blocks) {
            rc = inf_error_set(err, INF_ESTATE, "kv check: table slot %zu holds bad id %d", i, (int)b);
            goto done;
        }
        if (in_table[b] < 2) in_table[b]++;
        /* Every slot between the entry's home and its position must be full,
         * or lookups would stop before reaching it. */
        for (size_t k = table_home(p, p->hash[b]); k != i; k = (k + 1) & p->table_mask) {
            if (p->table[k] < 0) {
                rc = inf_error_set(err, INF_ESTATE, "kv check: cached block %d unreachable in table",
                                   (int)b);
                goto done;
            }
        }
    }
    if (table_entries != p->n_cached) {
        rc = inf_error_set(err, INF_ESTATE, "kv check: table holds %d entries, counter says %d",
                           table_entries, p->n_cached);
        goto done;
    }

    for (int s = 0; s < n_seqs; s++) {
        const kv_seq *q = seqs[s];
        if (!q || q->n_blocks < 0 || q->n_blocks > q->cap || (q->n_blocks > 0 && !q->blocks) ||
            q->n_committed < 0 || q->n_committed > q->n_blocks) {
            rc = inf_error_set(err, INF_ESTATE, "kv check: seq %d has an inconsistent table", s);
            goto done;
        }
        for (int i = 0; i < q->n_blocks; i++) {
            int32_t b = q->blocks[i];
            if (b < 0 || b >= p->n_blocks) {
                rc = inf_error_set(err, INF_ESTATE, "kv check: seq %d entry %d has bad id %d", s, i,
                                   (int)b);
                goto done;
            }
            if (seen_in[b] == s) {
                rc = inf_error_set(err, INF_ESTATE, "kv check: seq %d holds block %d twice", s, (int)b);
                goto done;
            }
            seen_in[b] = s;
            want_ref[b]++;
            /* Blocks a seq may still write must be private; committed ones may be shared. */
            if (i >= q->n_committed && (p->serial[b] != 0 || p->refcnt[b] != 1)) {
                rc = inf_error_set(err, INF_ESTATE,
                                   "kv check: seq %d block %d (id %d) past its committed prefix is shared",
                                   s, i, (int)b);
                goto done;
            }
        }
    }
    rc = check_blocks(p, want_ref, in_table, err);
done:
    free(want_ref);
    free(seen_in);
    free(in_table);
    return rc;
}

/* ---- sequences -------------------------------------------------------- */

void kv_seq_init(kv_seq *s) {
    memset(s, 0, sizeof *s);
    s->chain_hash = KV_HASH_ROOT;
    s->chain_block = -1;
}

void kv_seq_free(kv_seq *s) {
    if (!s) return;
    free(s->blocks);
    kv_seq_init(s);
}

static int seq_grow(kv_seq *s, int want, inf_error *err) {
    if (want <= s->cap) return 0;
    int cap = s->cap ? s->cap : 8;
    while (cap < want) cap = cap > INT32_MAX / 2 ? want : cap * 2;
    int32_t *nb = realloc(s->blocks, (size_t)cap * sizeof *nb);
    if (!nb) return inf_error_set(err, INF_ENOMEM, "kv seq: out of memory for %d block ids", cap);
    s->blocks = nb;
    s->cap = cap;
    return 0;
}

int kv_seq_blocks_needed(const kv_pool *p, const kv_seq *s, int n_tokens_total) {
    if (n_tokens_total <= 0) return 0;
    int need = (int)(((int64_t)n_tokens_total + p->block_size - 1) / p->block_size);
    return need > s->n_blocks ? need - s->n_blocks : 0;
}

int kv_seq_reserve(kv_pool *p, kv_seq *s, int n_tokens_total, inf_error *err) {
    if (!p || !s || n_tokens_total < 0)
        return inf_error_set(err, INF_EINVAL, "kv_seq_reserve: bad arguments");
    int need = kv_seq_blocks_needed(p, s, n_tokens_total);
    if (need == 0) return 0;
    int avail = kv_pool_n_available(p);
    if (need > avail)
        return inf_error_set(err, INF_EFULL,
                             "kv_seq_reserve: %d tokens need %d more blocks but only %d are available",
                             n_tokens_total, need, avail);
    int rc = seq_grow(s, s->n_blocks + need, err);
    if (rc) return rc;
    for (int k = 0; k < need; k++) s->blocks[s->n_blocks++] = alloc_block(p);
    return 0;
}

int kv_seq_match_prefix(kv_pool *p, kv_seq *s, const int32_t *tokens, int n_tokens,
                        inf_error *err) {
    if (!p || !s || n_tokens < 0 || (n_tokens > 0 && !tokens))
        return inf_error_set(err, INF_EINVAL, "kv_seq_match_prefix: bad arguments");
    if (s->n_blocks != 0)
        return inf_error_set(err, INF_ESTATE,
                             "kv_seq_match_prefix: the sequence already holds %d blocks", s->n_blocks);
    int bs = p->block_size;
    /* Block m ends at token (m+1)*bs - 1, which must be before the last token. */
    int max_blocks = n_tokens > 0 ? (n_tokens - 1) / bs : 0;
    int rc = seq_grow(s, max_blocks, err);
    if (rc) return rc;
    p->query_tokens += (uint64_t)n_tokens;

    uint64_t h = KV_HASH_ROOT, parent = 0;
    int m = 0;
    for (; m < max_blocks; m++) {
        const int32_t *t = tokens + (size_t)m * (size_t)bs;
        uint64_t hm = kv_hash_block(h, t, bs) & p->hash_mask;
        int32_t b = table_find(p, hm, parent, t);
        if (b < 0) break;
        block_ref(p, b);
        s->blocks[s->n_blocks++] = b;
        h = hm;
        parent = p->serial[b];
    }
    s->n_committed = m;
    s->chain_hash = h;
    s->chain_block = m > 0 ? s->blocks[m - 1] : -1;
    s->chain_serial = parent;
    p->hit_tokens += (uint64_t)m * (uint64_t)bs;
    return m * bs;
}

int kv_seq_commit_full_blocks(kv_pool *p, kv_seq *s, const int32_t *tokens, int n_computed,
                              inf_error *err) {
    if (!p || !s || n_computed < 0 || (n_computed > 0 && !tokens))
        return inf_error_set(err, INF_EINVAL, "kv_seq_commit_full_blocks: bad arguments");
    int bs = p->block_size;
    if ((int64_t)n_computed > (int64_t)s->n_blocks * bs)
        return inf_error_set(err, INF_EINVAL,
                             "kv_seq_commit_full_blocks: %d tokens computed but only %d blocks reserved",
                             n_computed, s->n_blocks);
    int n_full = n_computed / bs;
    for (int i = s->n_committed; i < n_full; i++) {
        int32_t own = s->blocks[i];
        if (p->refcnt[own] != 1 || p->serial[own] != 0)
            return inf_error_set(err, INF_ESTATE,
                                 "kv_seq_commit_full_blocks: block %d (id %d) is not private", i,
                                 (int)own);
    }
    for (int i = s->n_committed; i < n_full; i++) {
        uint64_t parent = 0;
        if (i > 0) {
            if (s->chain_block < 0 || p->serial[s->chain_block] != s->chain_serial) {
                /* The parent was evicted: nothing below it is reachable any more. */
                s->chain_block = -1;
                s->chain_serial = 0;
                break;
            }
            parent = s->chain_serial;
        }
        const int32_t *t = tokens + (size_t)i * (size_t)bs;
        uint64_t h = kv_hash_block(s->chain_hash, t, bs) & p->hash_mask;
        int32_t b = table_find(p, h, parent, t);
        if (b < 0) {
            b = s->blocks[i];
            p->hash[b] = h;
            p->parent_serial[b] = parent;
            p->serial[b] = p->next_serial++;
            memcpy(p->tokens + (size_t)b * (size_t)bs, t, (size_t)bs * sizeof *t);
            table_insert(p, b);
        }
        s->chain_hash = h;
        s->chain_block = b;
        s->chain_serial = p->serial[b];
        s->n_committed = i + 1;
    }
    return 0;
}

void kv_seq_release(kv_pool *p, kv_seq *s) {
    /* Last block first: LRU evicts the tail of a prefix before its head. */
    for (int i = s->n_blocks - 1; i >= 0; i--) block_unref(p, s->blocks[i]);
    s->n_blocks = 0;
    s->n_committed = 0;
    s->chain_hash = KV_HASH_ROOT;
    s->chain_block = -1;
    s->chain_serial = 0;
}
