/* grammar_match.c - the stack-set matcher (grammar_internal.h, grammar.h).
 *
 * Advancing a state by a byte: every stack whose top byte set holds the byte
 * moves its top one element on, then is expanded until its top is a byte set
 * again: GE_END pops a frame (an empty stack means the sentence may end
 * here), GE_REF replaces the top by its return position and pushes each
 * alternative of the rule, one stack per alternative. A reference that is the
 * last element of its alternative drops its own frame first (a tail call),
 * so right-recursive repetitions (S' ::= S S' | "") keep stacks short. The
 * results are sorted and deduplicated, which keeps states canonical (and
 * their hash a cache key) and ambiguous grammars bounded.
 */
#include <stdlib.h>
#include <string.h>

#include "grammar_internal.h"

int gram_scratch_init(gram_scratch *s) {
    memset(s, 0, sizeof *s);
    s->stk = malloc((GRAMMAR_MAX_DEPTH + 2) * sizeof *s->stk);
    return s->stk ? 0 : -1;
}

void gram_scratch_free(gram_scratch *s) {
    free(s->stk);
    free(s->recs);
    free(s->offs);
    memset(s, 0, sizeof *s);
}

typedef struct expand_ctx {
    const grammar *g;
    gram_scratch *s;
    inf_error *err;
    int rc;
    int calls; /* recursion depth of expand (long chains of references) */
} expand_ctx;

static int grow(uint32_t **buf, size_t *cap, size_t need) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 256;
    while (c < need) c *= 2;
    uint32_t *q = realloc(*buf, c * sizeof *q);
    if (!q) return -1;
    *buf = q;
    *cap = c;
    return 0;
}

static void emit(expand_ctx *x, const uint32_t *stk, size_t n) {
    gram_scratch *s = x->s;
    /* Bound the work of one byte too: many parallel parses, each deep, cost
     * stacks x depth per byte (e.g. `[^\n]+{284}` is ambiguous at every byte). */
    if (s->n_offs >= 4 * (size_t)GRAMMAR_MAX_STACKS || s->n_recs + n + 1 > GRAMMAR_MAX_STATE_WORDS) {
        x->rc = inf_error_set(x->err, INF_ERANGE, "grammar: more than %d parallel parses (ambiguous grammar)",
                              GRAMMAR_MAX_STACKS);
        return;
    }
    if (grow(&s->recs, &s->cap_recs, s->n_recs + n + 1) || grow(&s->offs, &s->cap_offs, s->n_offs + 1)) {
        x->rc = inf_error_set(x->err, INF_ENOMEM, "grammar: out of memory");
        return;
    }
    s->offs[s->n_offs++] = (uint32_t)s->n_recs;
    s->recs[s->n_recs++] = (uint32_t)n;
    memcpy(s->recs + s->n_recs, stk, n * sizeof *stk);
    s->n_recs += n;
}

/* Expands the stack stk[0..n) (its top may be any element) into records.
 * stk has room for GRAMMAR_MAX_DEPTH + 1 entries; it is restored on return. */
static void expand(expand_ctx *x, uint32_t *stk, size_t n) {
    const grammar *g = x->g;
    while (!x->rc) {
        if (n == 0) {
            emit(x, stk, 0);
            return;
        }
        uint32_t p = stk[n - 1], e = g->elems[p];
        switch (GE_KIND(e)) {
        case GE_END:
            n--; /* pop: the parent's top already points past its reference */
            continue;
        case GE_TERM:
            emit(x, stk, n);
            return;
        default: {
            uint32_t r = GE_ARG(e);
            int tail = GE_KIND(g->elems[p + 1]) == GE_END;
            size_t base = tail ? n - 1 : n;
            if (base >= GRAMMAR_MAX_DEPTH) {
                x->rc = inf_error_set(x->err, INF_ERANGE, "grammar: nesting deeper than %d", GRAMMAR_MAX_DEPTH);
                return;
            }
            if (x->calls >= 4 * GRAMMAR_MAX_DEPTH) {
                x->rc = inf_error_set(x->err, INF_ERANGE, "grammar: references nested deeper than %d",
                                      4 * GRAMMAR_MAX_DEPTH);
                return;
            }
            uint32_t saved = stk[n - 1], saved_base = stk[base];
            if (!tail) stk[n - 1] = p + 1;
            x->calls++;
            for (uint32_t a = g->rule_alt[r]; a < g->rule_alt[r + 1] && !x->rc; a++) {
                stk[base] = g->alt_start[a];
                expand(x, stk, base + 1);
            }
            x->calls--;
            stk[base] = saved_base;
            stk[n - 1] = saved;
            return;
        }
        }
    }
}

static int cmp_rec(const void *a, const void *b, void *ctx) {
    const uint32_t *base = ctx;
    const uint32_t *x = base + *(const uint32_t *)a, *y = base + *(const uint32_t *)b;
    if (x[0] != y[0]) return x[0] < y[0] ? -1 : 1;
    for (uint32_t i = 1; i <= x[0]; i++)
        if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
    return 0;
}

/* Sorts and deduplicates the records into *out. */
static int collect(expand_ctx *x, uint32_t **out, size_t *out_len, size_t *out_cap) {
    gram_scratch *s = x->s;
    if (x->rc) return x->rc;
    if (s->n_offs > 1) qsort_r(s->offs, s->n_offs, sizeof *s->offs, cmp_rec, s->recs);
    size_t len = 0, n_unique = 0;
    if (grow(out, out_cap, s->n_recs + 1))
        return inf_error_set(x->err, INF_ENOMEM, "grammar: out of memory");
    const uint32_t *prev = NULL;
    for (size_t i = 0; i < s->n_offs; i++) {
        const uint32_t *r = s->recs + s->offs[i];
        if (prev && prev[0] == r[0] && !memcmp(prev + 1, r + 1, r[0] * sizeof *r)) continue;
        memcpy(*out + len, r, (r[0] + 1) * sizeof *r);
        len += r[0] + 1;
        prev = r;
        n_unique++;
    }
    if (n_unique > GRAMMAR_MAX_STACKS)
        return inf_error_set(x->err, INF_ERANGE, "grammar: more than %d parallel parses (ambiguous grammar)",
                             GRAMMAR_MAX_STACKS);
    *out_len = len;
    return 0;
}

int gram_initial(const grammar *g, gram_scratch *s, uint32_t **out, size_t *out_len, inf_error *err) {
    expand_ctx x = {g, s, err, 0, 0};
    s->n_recs = s->n_offs = 0;
    for (uint32_t a = g->rule_alt[g->root]; a < g->rule_alt[g->root + 1] && !x.rc; a++) {
        s->stk[0] = g->alt_start[a];
        expand(&x, s->stk, 1);
    }
    size_t cap = 0;
    *out = NULL;
    int rc = collect(&x, out, out_len, &cap);
    if (rc) {
        free(*out);
        *out = NULL;
    }
    return rc;
}

int gram_advance(const grammar *g, gram_scratch *s, const uint32_t *state, size_t len, uint8_t b,
                 uint32_t **out, size_t *out_len, size_t *out_cap, inf_error *err) {
    expand_ctx x = {g, s, err, 0, 0};
    s->n_recs = s->n_offs = 0;
    for (size_t i = 0; i < len && !x.rc;) {
        uint32_t n = state[i];
        if (n) {
            uint32_t top = state[i + n];
            if (gram_set_has(&g->sets[GE_ARG(g->elems[top])], b)) {
                memcpy(s->stk, state + i + 1, (n - 1) * sizeof *state);
                s->stk[n - 1] = top + 1;
                expand(&x, s->stk, n);
            }
        }
        i += n + 1;
    }
    return collect(&x, out, out_len, out_cap);
}

void gram_first_bytes(const grammar *g, const uint32_t *state, size_t len, gram_set *out) {
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < len;) {
        uint32_t n = state[i];
        if (n) {
            const gram_set *s = &g->sets[GE_ARG(g->elems[state[i + n]])];
            for (int k = 0; k < 8; k++) out->w[k] |= s->w[k];
        }
        i += n + 1;
    }
}

int gram_state_accepting(const uint32_t *state, size_t len) {
    /* Records are sorted by length first: an empty stack comes first. */
    return len > 0 && state[0] == 0;
}

uint64_t gram_state_hash(const uint32_t *state, size_t len) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) {
        h ^= state[i];
        h *= 1099511628211ull;
        h ^= h >> 29;
    }
    return h;
}

/* ---- public matcher ---- */

struct grammar_matcher {
    grammar *g;
    uint32_t *state, *next;
    size_t len, cap, next_cap;
    size_t n_bytes;
    gram_scratch s;
};

grammar *grammar_ref(grammar *g) {
    pthread_mutex_lock(&g->mu);
    g->refs++;
    pthread_mutex_unlock(&g->mu);
    return g;
}

void grammar_free(grammar *g) {
    if (!g) return;
    pthread_mutex_lock(&g->mu);
    int last = --g->refs <= 0;
    pthread_mutex_unlock(&g->mu);
    if (!last) return;
    if (g->cache) {
        for (size_t i = 0; i < GRAM_CACHE_SLOTS; i++) {
            free(g->cache[i].state);
            free(g->cache[i].bits);
        }
        free(g->cache);
    }
    free(g->elems);
    free(g->sets);
    free(g->alt_start);
    free(g->rule_alt);
    free(g->init);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

int grammar_matcher_create(grammar_matcher **out, grammar *g, inf_error *err) {
    *out = NULL;
    grammar_matcher *m = calloc(1, sizeof *m);
    if (!m || gram_scratch_init(&m->s)) {
        free(m);
        return inf_error_set(err, INF_ENOMEM, "grammar: out of memory creating a matcher");
    }
    m->state = malloc((g->init_len + 1) * sizeof *m->state);
    if (!m->state) {
        gram_scratch_free(&m->s);
        free(m);
        return inf_error_set(err, INF_ENOMEM, "grammar: out of memory creating a matcher");
    }
    memcpy(m->state, g->init, g->init_len * sizeof *m->state);
    m->len = g->init_len;
    m->cap = g->init_len + 1;
    m->g = grammar_ref(g);
    *out = m;
    return 0;
}

void grammar_matcher_free(grammar_matcher *m) {
    if (!m) return;
    grammar_free(m->g);
    free(m->state);
    free(m->next);
    gram_scratch_free(&m->s);
    free(m);
}

int grammar_matcher_accept_bytes(grammar_matcher *m, const void *bytes, size_t n, inf_error *err) {
    const uint8_t *b = bytes;
    /* Work on copies so a rejected byte leaves the state unchanged. */
    uint32_t *cur = NULL, *nxt = NULL;
    size_t cur_len = m->len, cur_cap = 0, nxt_cap = 0, nxt_len = 0;
    if (!n) return 0;
    cur = malloc((m->len + 1) * sizeof *cur);
    if (!cur) return inf_error_set(err, INF_ENOMEM, "grammar: out of memory");
    memcpy(cur, m->state, m->len * sizeof *cur);
    cur_cap = m->len + 1;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        rc = gram_advance(m->g, &m->s, cur, cur_len, b[i], &nxt, &nxt_len, &nxt_cap, err);
        if (!rc && !nxt_len)
            rc = inf_error_set(err, INF_EINVAL, "grammar rejects byte 0x%02X at output offset %zu", b[i],
                               m->n_bytes + i);
        if (rc) break;
        uint32_t *t = cur;
        size_t tc = cur_cap;
        cur = nxt;
        cur_cap = nxt_cap;
        cur_len = nxt_len;
        nxt = t;
        nxt_cap = tc;
    }
    if (!rc) {
        free(m->state);
        m->state = cur;
        m->cap = cur_cap;
        m->len = cur_len;
        m->n_bytes += n;
        cur = NULL;
    }
    free(cur);
    free(nxt);
    return rc;
}

int grammar_matcher_can_end(const grammar_matcher *m) { return gram_state_accepting(m->state, m->len); }

int grammar_matcher_done(const grammar_matcher *m) { return m->len == 1 && m->state[0] == 0; }

size_t grammar_matcher_n_bytes(const grammar_matcher *m) { return m->n_bytes; }

/* Internal access for grammar_mask.c. */
const uint32_t *gram_matcher_state(const grammar_matcher *m, size_t *len, gram_scratch **s, grammar **g) {
    *len = m->len;
    *s = (gram_scratch *)&m->s;
    *g = m->g;
    return m->state;
}

int grammar_accepts(const grammar *g, const char *s, size_t n, inf_error *err) {
    grammar_matcher *m;
    int rc = grammar_matcher_create(&m, (grammar *)g, err);
    if (rc) return rc;
    rc = grammar_matcher_accept_bytes(m, s, n, err);
    int ok = 0;
    if (rc == INF_EINVAL) rc = 0;
    else if (!rc) ok = grammar_matcher_can_end(m);
    grammar_matcher_free(m);
    return rc ? rc : ok;
}
