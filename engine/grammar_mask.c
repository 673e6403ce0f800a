/* grammar_mask.c - token masks: the vocabulary's token trie and one walk of
 * it per mask (grammar.h), with the per-grammar mask cache.
 *
 * The trie is stored in depth-first order; node i's children follow it as a
 * sibling chain. A walk advances the matcher state once per edge and only
 * along bytes that some stack's top accepts, so a state inside a JSON string
 * visits most of the trie but a state expecting `:` visits a handful of
 * nodes. A mask depends only on the state (and the vocabulary), so it is
 * cached by state: grammars are shared by many requests and states repeat.
 */
#include <stdlib.h>
#include <string.h>

#include "grammar_internal.h"

typedef struct trie_node {
    uint32_t child;   /* first child (0: none; the root is node 0) */
    uint32_t sibling; /* next sibling (0: none) */
    uint32_t tok_off, tok_n; /* ids ending exactly here: ids[tok_off .. +tok_n) */
    uint8_t byte;
} trie_node;

struct grammar_vocab {
    int32_t n_vocab;
    int strip_space;
    uint8_t *bytes;      /* all pieces back to back */
    uint32_t *off, *len; /* [n_vocab] piece of id (len 0: never allowed) */
    uint8_t *eog;        /* [n_vocab] 1: end of generation */
    int32_t *eog_ids;
    size_t n_eog;
    trie_node *nodes;
    size_t n_nodes;
    int32_t *ids;        /* token ids in trie order */
    size_t max_len;
};

static int cmp_piece(const void *a, const void *b, void *ctx) {
    const grammar_vocab *v = ctx;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    uint32_t lx = v->len[x], ly = v->len[y], l = lx < ly ? lx : ly;
    int c = memcmp(v->bytes + v->off[x], v->bytes + v->off[y], l);
    if (c) return c;
    if (lx != ly) return lx < ly ? -1 : 1;
    return x < y ? -1 : x > y;
}

int grammar_vocab_create(grammar_vocab **out, const tokenizer *t, const grammar_vocab_config *cfg,
                         inf_error *err) {
    grammar_vocab_config dflt = {0, NULL, 0};
    if (!cfg) cfg = &dflt;
    *out = NULL;
    int32_t n = tok_n_vocab(t);
    grammar_vocab *v = calloc(1, sizeof *v);
    if (!v) return inf_error_set(err, INF_ENOMEM, "grammar: out of memory building the token trie");
    v->n_vocab = n;
    v->strip_space = cfg->strip_space;
    v->off = calloc((size_t)n + 1, sizeof *v->off);
    v->len = calloc((size_t)n + 1, sizeof *v->len);
    v->eog = calloc((size_t)n + 1, 1);
    v->eog_ids = calloc((size_t)n + 1, sizeof *v->eog_ids);
    v->ids = malloc(((size_t)n + 1) * sizeof *v->ids);
    size_t total = 0;
    int rc = 0;
    if (!v->off || !v->len || !v->eog || !v->eog_ids || !v->ids) goto oom;
    for (int32_t id = 0; id < n; id++) {
        const char *b;
        size_t l;
        if (tok_piece(t, id, 0, &b, &l, NULL)) l = 0;
        total += l;
    }
    v->bytes = malloc(total + 1);
    if (!v->bytes) goto oom;
    total = 0;
    size_t n_ids = 0;
    for (int32_t id = 0; id < n; id++) {
        const char *b;
        size_t l = 0;
        int is_eog = 0;
        if (cfg->eog) {
            for (size_t k = 0; k < cfg->n_eog; k++) is_eog |= cfg->eog[k] == id;
        } else {
            is_eog = tok_is_eog(t, id);
        }
        if (is_eog) {
            v->eog[id] = 1;
            v->eog_ids[v->n_eog++] = id;
        }
        int type = tok_token_type(t, id);
        if (!v->eog[id] && type != TOK_TYPE_CONTROL && type != TOK_TYPE_UNKNOWN && type != TOK_TYPE_UNUSED &&
            !tok_piece(t, id, 0, &b, &l, NULL) && l) {
            memcpy(v->bytes + total, b, l);
            v->off[id] = (uint32_t)total;
            v->len[id] = (uint32_t)l;
            total += l;
            v->ids[n_ids++] = id;
            if (l > v->max_len) v->max_len = l;
        }
    }
    qsort_r(v->ids, n_ids, sizeof *v->ids, cmp_piece, v);
    /* Nodes: at most one per byte of every piece, plus the root. */
    v->nodes = calloc(total + 1, sizeof *v->nodes);
    uint32_t *path = malloc((v->max_len + 1) * sizeof *path);
    if (!v->nodes || !path) {
        free(path);
        goto oom;
    }
    v->n_nodes = 1;
    size_t depth = 0; /* path[0..depth] = the nodes of the previous piece's prefix */
    path[0] = 0;
    const uint8_t *prev = NULL;
    size_t prev_len = 0;
    for (size_t k = 0; k < n_ids; k++) {
        int32_t id = v->ids[k];
        const uint8_t *b = v->bytes + v->off[id];
        size_t l = v->len[id], common = 0;
        while (common < l && common < prev_len && prev[common] == b[common]) common++;
        depth = common;
        for (size_t d = common; d < l; d++) {
            uint32_t parent = path[d], nn = (uint32_t)v->n_nodes++;
            v->nodes[nn].byte = b[d];
            /* Sorted input: a new child is always the last of its parent's children. */
            if (!v->nodes[parent].child) {
                v->nodes[parent].child = nn;
            } else {
                uint32_t c = v->nodes[parent].child;
                while (v->nodes[c].sibling) c = v->nodes[c].sibling;
                v->nodes[c].sibling = nn;
            }
            path[d + 1] = nn;
            depth = d + 1;
        }
        trie_node *leaf = &v->nodes[path[l]];
        if (!leaf->tok_n) leaf->tok_off = (uint32_t)k;
        leaf->tok_n++;
        prev = b;
        prev_len = l;
        (void)depth;
    }
    free(path);
    *out = v;
    return rc;
oom:
    grammar_vocab_free(v);
    return inf_error_set(err, INF_ENOMEM, "grammar: out of memory building the token trie");
}

void grammar_vocab_free(grammar_vocab *v) {
    if (!v) return;
    free(v->bytes);
    free(v->off);
    free(v->len);
    free(v->eog);
    free(v->eog_ids);
    free(v->nodes);
    free(v->ids);
    free(v);
}

int32_t grammar_vocab_n(const grammar_vocab *v) { return v->n_vocab; }

size_t grammar_mask_words(const grammar_vocab *v) { return ((size_t)v->n_vocab + 31) / 32; }

const uint8_t *grammar_vocab_bytes(const grammar_vocab *v, int32_t id, size_t at, size_t *len) {
    if (id < 0 || id >= v->n_vocab) {
        *len = 0;
        return NULL;
    }
    const uint8_t *b = v->bytes + v->off[id];
    size_t l = v->len[id];
    if (at == 0 && v->strip_space && l && b[0] == ' ') {
        b++;
        l--;
    }
    *len = l;
    return b;
}

/* ---- the walk ---- */

const uint32_t *gram_matcher_state(const grammar_matcher *m, size_t *len, gram_scratch **s, grammar **g);

typedef struct walk {
    const grammar *g;
    const grammar_vocab *v;
    gram_scratch *s;
    uint32_t *bits;
    int n_allowed;
    uint32_t **st;   /* [max_len + 1] state per depth */
    size_t *st_len, *st_cap;
    inf_error *err;
} walk;

static void allow_node(walk *w, const trie_node *nd, int skip_space_tokens) {
    for (uint32_t i = 0; i < nd->tok_n; i++) {
        int32_t id = w->v->ids[nd->tok_off + i];
        if (skip_space_tokens && w->v->len[id] == 1) continue; /* " " alone strips to nothing */
        if (!(w->bits[id >> 5] >> (id & 31) & 1u)) {
            w->bits[id >> 5] |= 1u << (id & 31);
            w->n_allowed++;
        }
    }
}

/* Walks the children of node `at`, the state at depth d being w->st[d]. */
static int walk_children(walk *w, uint32_t at, size_t d) {
    gram_set first;
    gram_first_bytes(w->g, w->st[d], w->st_len[d], &first);
    for (uint32_t c = w->v->nodes[at].child; c; c = w->v->nodes[c].sibling) {
        const trie_node *nd = &w->v->nodes[c];
        if (!gram_set_has(&first, nd->byte)) continue;
        int rc = gram_advance(w->g, w->s, w->st[d], w->st_len[d], nd->byte, &w->st[d + 1], &w->st_len[d + 1],
                              &w->st_cap[d + 1], w->err);
        if (rc) return rc;
        if (!w->st_len[d + 1]) continue;
        allow_node(w, nd, 0);
        if (nd->child && (rc = walk_children(w, c, d + 1))) return rc;
    }
    return 0;
}

static int compute_mask(walk *w, const uint32_t *state, size_t len, int first_strip) {
    w->st[0] = (uint32_t *)state;
    w->st_len[0] = len;
    int rc = walk_children(w, 0, 0);
    if (!rc && first_strip) {
        /* Stripped view of the first token: " xyz" counts as "xyz", so the
         * subtree under the root's ' ' child is walked from the start state. */
        for (uint32_t c = w->v->nodes[0].child; c && !rc; c = w->v->nodes[c].sibling)
            if (w->v->nodes[c].byte == ' ') {
                gram_set first;
                gram_first_bytes(w->g, state, len, &first);
                for (uint32_t k = w->v->nodes[c].child; k && !rc; k = w->v->nodes[k].sibling) {
                    const trie_node *nd = &w->v->nodes[k];
                    if (!gram_set_has(&first, nd->byte)) continue;
                    rc = gram_advance(w->g, w->s, state, len, nd->byte, &w->st[1], &w->st_len[1], &w->st_cap[1],
                                      w->err);
                    if (rc || !w->st_len[1]) continue;
                    allow_node(w, nd, 0);
                    if (nd->child) rc = walk_children(w, k, 1);
                }
            }
    }
    if (!rc && gram_state_accepting(state, len))
        for (size_t i = 0; i < w->v->n_eog; i++) {
            int32_t id = w->v->eog_ids[i];
            w->bits[id >> 5] |= 1u << (id & 31);
            w->n_allowed++;
        }
    return rc;
}

static int cache_get(grammar *g, const grammar_vocab *v, uint64_t h, const uint32_t *state, size_t len,
                     uint32_t *bits, size_t words, int *n_allowed) {
    int hit = 0;
    pthread_mutex_lock(&g->mu);
    if (g->cache) {
        for (size_t i = h & (GRAM_CACHE_SLOTS - 1);; i = (i + 1) & (GRAM_CACHE_SLOTS - 1)) {
            gram_mask_entry *e = &g->cache[i];
            if (!e->bits) break;
            if (e->hash == h && e->vocab == v && e->state_len == len && !memcmp(e->state, state, len * 4)) {
                memcpy(bits, e->bits, words * sizeof *bits);
                *n_allowed = e->n_allowed;
                hit = 1;
                break;
            }
        }
    }
    pthread_mutex_unlock(&g->mu);
    return hit;
}

static void cache_put(grammar *g, const grammar_vocab *v, uint64_t h, const uint32_t *state, size_t len,
                      const uint32_t *bits, size_t words, int n_allowed) {
    uint32_t *sc = malloc((len + 1) * sizeof *sc), *bc = malloc(words * sizeof *bc);
    if (!sc || !bc) {
        free(sc);
        free(bc);
        return; /* the cache is only an optimization */
    }
    memcpy(sc, state, len * sizeof *sc);
    memcpy(bc, bits, words * sizeof *bc);
    pthread_mutex_lock(&g->mu);
    if (!g->cache) g->cache = calloc(GRAM_CACHE_SLOTS, sizeof *g->cache);
    if (g->cache && 2 * g->cache_used >= GRAM_CACHE_SLOTS) {
        for (size_t i = 0; i < GRAM_CACHE_SLOTS; i++) {
            free(g->cache[i].state);
            free(g->cache[i].bits);
        }
        memset(g->cache, 0, GRAM_CACHE_SLOTS * sizeof *g->cache);
        g->cache_used = 0;
    }
    if (g->cache) {
        size_t i = h & (GRAM_CACHE_SLOTS - 1);
        while (g->cache[i].bits) i = (i + 1) & (GRAM_CACHE_SLOTS - 1);
        g->cache[i] = (gram_mask_entry){h, v, sc, len, bc, n_allowed};
        g->cache_used++;
        sc = NULL;
        bc = NULL;
    }
    pthread_mutex_unlock(&g->mu);
    free(sc);
    free(bc);
}

int grammar_matcher_fill_mask(grammar_matcher *m, const grammar_vocab *v, uint32_t *bits, int *n_allowed,
                              inf_error *err) {
    size_t len;
    gram_scratch *s;
    grammar *g;
    const uint32_t *state = gram_matcher_state(m, &len, &s, &g);
    size_t words = grammar_mask_words(v);
    int first_strip = v->strip_space && grammar_matcher_n_bytes(m) == 0;
    uint64_t h = gram_state_hash(state, len) ^ (first_strip ? 0x9E3779B97F4A7C15ull : 0);
    int na = 0;
    if (cache_get(g, v, h, state, len, bits, words, &na)) {
        if (n_allowed) *n_allowed = na;
        return 0;
    }
    memset(bits, 0, words * sizeof *bits);
    walk w = {g, v, s, bits, 0, NULL, NULL, NULL, err};
    size_t depth = v->max_len + 2;
    w.st = calloc(depth, sizeof *w.st);
    w.st_len = calloc(depth, sizeof *w.st_len);
    w.st_cap = calloc(depth, sizeof *w.st_cap);
    int rc = 0;
    if (!w.st || !w.st_len || !w.st_cap) rc = inf_error_set(err, INF_ENOMEM, "grammar: out of memory for a mask");
    else rc = compute_mask(&w, state, len, first_strip);
    if (w.st)
        for (size_t d = 1; d < depth; d++) free(w.st[d]);
    free(w.st);
    free(w.st_len);
    free(w.st_cap);
    if (rc) return rc;
    cache_put(g, v, h, state, len, bits, words, w.n_allowed);
    if (n_allowed) *n_allowed = w.n_allowed;
    return 0;
}

int grammar_matcher_accept_token(grammar_matcher *m, const grammar_vocab *v, int32_t id, inf_error *err) {
    if (id < 0 || id >= v->n_vocab)
        return inf_error_set(err, INF_EINVAL, "grammar: token %d is outside the vocabulary", (int)id);
    if (v->eog[id]) {
        if (grammar_matcher_can_end(m)) return 0;
        return inf_error_set(err, INF_EINVAL, "grammar: end of generation (token %d) before the grammar is complete",
                             (int)id);
    }
    size_t len;
    const uint8_t *b = grammar_vocab_bytes(v, id, grammar_matcher_n_bytes(m), &len);
    if (!len)
        return inf_error_set(err, INF_EINVAL, "grammar: token %d is not allowed by the grammar (no text)", (int)id);
    inf_error e2 = {0};
    int rc = grammar_matcher_accept_bytes(m, b, len, &e2);
    if (rc == INF_EINVAL) return inf_error_set(err, rc, "grammar: token %d is not allowed here (%s)", (int)id, e2.msg);
    if (rc) return inf_error_set(err, rc, "%s", e2.msg);
    return 0;
}
