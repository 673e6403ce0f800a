/* sampler.c - per-request sampling (see sampler.h). Parameters live in
 * sampler_params.c.
 *
 * Temperature is never written into the logits array: the filters and the
 * draw work on weights exp((l - max) / T) computed on the fly. That keeps the
 * array's untouched entries equal to the raw logits, so the sampled token's
 * raw logprob can be recovered from the array plus a short log of the entries
 * the penalties / bias / mask changed, without copying n_vocab floats.
 */
#include "sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* One token of the history (prompt or generated): how often it was generated. */
typedef struct hist_entry {
    int32_t token;
    uint32_t gen_count;
} hist_entry;

typedef struct cand {
    float l; /* logit, later overwritten by its weight */
    int32_t id;
} cand;

typedef struct saved_logit {
    int32_t id;
    float raw;
} saved_logit;

struct sampler {
    sampler_params p;
    int n_vocab;
    int32_t *eos;
    size_t n_eos;
    uint64_t rng[4]; /* xoshiro256** */
    int n_generated;
    int track; /* penalties active: keep the history table */
    /* History: entries in insertion order plus an open-addressing index
     * (slot = entry index + 1, 0 = empty) sized to a power of two. */
    hist_entry *hist;
    size_t n_hist, cap_hist;
    uint32_t *slots;
    size_t n_slots;
    /* Scratch, grown on demand and kept for the next step. */
    cand *cand;
    size_t cap_cand;
    saved_logit *saved;
    size_t n_saved, cap_saved;
};

/* ---- RNG: splitmix64 to expand the seed, xoshiro256** for the stream ---- */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(uint64_t *s) {
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

/* Uniform in [0, 1) with 53 random bits. */
static double rng_uniform(uint64_t *s) { return (double)(rng_next(s) >> 11) * 0x1.0p-53; }

/* ---- history table ---- */

static size_t slot_of(int32_t token, size_t mask) {
    return (size_t)((uint32_t)token * 2654435761u) & mask;
}

static int hist_rehash(sampler *s, size_t n_slots) {
    uint32_t *sl = calloc(n_slots, sizeof *sl);
    if (!sl) return -1;
    for (size_t i = 0; i < s->n_hist; i++) {
        size_t j = slot_of(s->hist[i].token, n_slots - 1);
        while (sl[j]) j = (j + 1) & (n_slots - 1);
        sl[j] = (uint32_t)(i + 1);
    }
    free(s->slots);
    s->slots = sl;
    s->n_slots = n_slots;
    return 0;
}

/* Finds token's entry, adding a zeroed one if absent; NULL when out of memory. */
static hist_entry *hist_get(sampler *s, int32_t token) {
    size_t mask = s->n_slots - 1, j = slot_of(token, mask);
    for (; s->slots[j]; j = (j + 1) & mask)
        if (s->hist[s->slots[j] - 1].token == token) return &s->hist[s->slots[j] - 1];
    if (s->n_hist == s->cap_hist) {
        size_t cap = s->cap_hist ? 2 * s->cap_hist : 64;
        hist_entry *h = realloc(s->hist, cap * sizeof *h);
        if (!h) return NULL;
        s->hist = h;
        s->cap_hist = cap;
    }
    hist_entry *e = &s->hist[s->n_hist++];
    e->token = token;
    e->gen_count = 0;
    s->slots[j] = (uint32_t)s->n_hist;
    /* Keep the load factor <= 1/2 so probes stay short. */
    if (2 * s->n_hist > s->n_slots && hist_rehash(s, 2 * s->n_slots)) {
        s->n_hist--;
        s->slots[j] = 0;
        return NULL;
    }
    return e; /* hist itself did not move: only the index was rebuilt */
}

/* ---- lifecycle ---- */

int sampler_create(sampler **out, const sampler_params *p, int n_vocab, const int32_t *eos_ids,
                   size_t n_eos, const int32_t *prompt, size_t n_prompt, uint64_t entropy,
                   inf_error *err) {
    *out = NULL;
    int rc = sampler_params_validate(p, n_vocab, err);
    if (rc) return rc;
    for (size_t i = 0; i < n_eos; i++)
        if (eos_ids[i] < 0 || eos_ids[i] >= n_vocab)
            return inf_error_set(err, INF_EINVAL, "eos token id must be in [0, %d), got %d",
                                 n_vocab, (int)eos_ids[i]);
    for (size_t i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= n_vocab)
            return inf_error_set(err, INF_EINVAL,
                                 "prompt token %zu must be in [0, %d), got %d", i, n_vocab,
                                 (int)prompt[i]);
    sampler *s = calloc(1, sizeof *s);
    if (!s) return inf_error_set(err, INF_ENOMEM, "out of memory creating a sampler");
    if ((rc = sampler_params_copy(&s->p, p, err))) {
        free(s);
        return rc;
    }
    s->n_vocab = n_vocab;
    if (n_eos) {
        s->eos = malloc(n_eos * sizeof *s->eos);
        if (!s->eos) goto oom;
        memcpy(s->eos, eos_ids, n_eos * sizeof *s->eos);
        s->n_eos = n_eos;
    }
    uint64_t x = p->has_seed ? p->seed : entropy;
    for (int i = 0; i < 4; i++) s->rng[i] = splitmix64(&x);
    s->track = p->repetition_penalty != 1.0f || p->presence_penalty != 0.0f ||
               p->frequency_penalty != 0.0f;
    if (s->track) {
        if (hist_rehash(s, 128)) goto oom;
        /* The prompt only matters to the repetition penalty. */
        if (p->repetition_penalty != 1.0f)
            for (size_t i = 0; i < n_prompt; i++)
                if (!hist_get(s, prompt[i])) goto oom;
    }
    *out = s;
    return 0;
oom:
    sampler_free(s);
    return inf_error_set(err, INF_ENOMEM, "out of memory creating a sampler");
}

void sampler_free(sampler *s) {
    if (!s) return;
    sampler_params_free(&s->p);
    free(s->eos);
    free(s->hist);
    free(s->slots);
    free(s->cand);
    free(s->saved);
    free(s);
}

const sampler_params *sampler_get_params(const sampler *s) { return &s->p; }

int sampler_n_generated(const sampler *s) { return s->n_generated; }

int sampler_accept(sampler *s, int32_t token, inf_error *err) {
    if (token < 0 || token >= s->n_vocab)
        return inf_error_set(err, INF_EINVAL, "accepted token must be in [0, %d), got %d",
                             s->n_vocab, (int)token);
    if (s->track) {
        hist_entry *e = hist_get(s, token);
        if (!e) return inf_error_set(err, INF_ENOMEM, "out of memory recording a token");
        e->gen_count++;
    }
    s->n_generated++;
    return 0;
}

static int is_eos(const sampler *s, int32_t t) {
    for (size_t i = 0; i < s->n_eos; i++)
        if (s->eos[i] == t) return 1;
    return 0;
}

static int is_stop_token(const sampler *s, int32_t t) {
    for (size_t i = 0; i < s->p.n_stop_token_ids; i++)
        if (s->p.stop_token_ids[i] == t) return 1;
    return 0;
}

sampler_finish sampler_check_finish(const sampler *s, int32_t token, int32_t *stop_token) {
    if (stop_token) *stop_token = -1;
    /* As vLLM: no stop condition counts before min_tokens (EOS and stop ids
     * are masked then anyway; this covers tokens the caller forced). */
    if (s->n_generated < s->p.min_tokens) return SAMPLER_FINISH_NONE;
    if (!s->p.ignore_eos && is_eos(s, token)) return SAMPLER_FINISH_STOP;
    if (is_stop_token(s, token)) {
        if (stop_token) *stop_token = token;
        return SAMPLER_FINISH_STOP;
    }
    if (s->n_generated >= s->p.max_tokens) return SAMPLER_FINISH_LENGTH;
    return SAMPLER_FINISH_NONE;
}

const char *sampler_finish_name(sampler_finish f) {
    switch (f) {
    case SAMPLER_FINISH_STOP: return "stop";
    case SAMPLER_FINISH_LENGTH: return "length";
    default: return NULL;
    }
}

/* ---- ordering helpers ---- */

/* Total order used everywhere: larger logit first, ties to the lower id, so
 * every selection is deterministic. */
static int better(float la, int32_t ia, float lb, int32_t ib) {
    return la > lb || (la == lb && ia < ib);
}

static int cmp_cand(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (better(x->l, x->id, y->l, y->id)) return -1;
    if (better(y->l, y->id, x->l, x->id)) return 1;
    return 0;
}

/* Heap of the k best seen so far with the worst at the root. */
static void heap_sift_down(cand *h, int n, int i) {
    for (;;) {
        int w = i, l = 2 * i + 1, r = l + 1;
        if (l < n && better(h[w].l, h[w].id, h[l].l, h[l].id)) w = l;
        if (r < n && better(h[w].l, h[w].id, h[r].l, h[r].id)) w = r;
        if (w == i) return;
        cand t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

/* The k best of logits[0..n) (skipping -inf when skip_neg_inf) into out,
 * sorted best first; returns how many (<= k). O(n log k), mostly O(n). */
static int top_k_select(const float *logits, int n, int k, int skip_neg_inf, cand *out) {
    int m = 0;
    for (int i = 0; i < n; i++) {
        float l = logits[i];
        if (skip_neg_inf && l == -INFINITY) continue;
        if (m < k) {
            out[m].l = l;
            out[m].id = i;
            m++;
            if (m == k)
                for (int j = k / 2 - 1; j >= 0; j--) heap_sift_down(out, k, j);
        } else if (better(l, i, out[0].l, out[0].id)) {
            out[0].l = l;
            out[0].id = i;
            heap_sift_down(out, k, 0);
        }
    }
    qsort(out, (size_t)m, sizeof *out, cmp_cand);
    return m;
}

static void swap_cand(cand *a, cand *b) {
    cand t = *a;
    *a = *b;
    *b = t;
}

/* Reorders a[0..n) so that its c best come first (in any order). Quickselect
 * with median-of-3 pivots; the order is total (ids differ), so Lomuto
 * partitioning cannot degrade on ties. Falls back to a full sort of the
 * remaining range if unlucky pivots keep it from converging. */
static void select_best(cand *a, int n, int c) {
    int lo = 0, hi = n - 1, rounds = 0;
    if (c <= 0 || c >= n) return;
    while (lo < hi) {
        if (++rounds > 64) {
            qsort(a + lo, (size_t)(hi - lo + 1), sizeof *a, cmp_cand);
            return;
        }
        int mid = lo + (hi - lo) / 2;
        if (better(a[mid].l, a[mid].id, a[lo].l, a[lo].id)) swap_cand(&a[mid], &a[lo]);
        if (better(a[hi].l, a[hi].id, a[lo].l, a[lo].id)) swap_cand(&a[hi], &a[lo]);
        if (better(a[mid].l, a[mid].id, a[hi].l, a[hi].id)) swap_cand(&a[mid], &a[hi]);
        /* a[hi] is now the median of the three: use it as the pivot. */
        cand pv = a[hi];
        int st = lo;
        for (int i = lo; i < hi; i++)
            if (better(a[i].l, a[i].id, pv.l, pv.id)) swap_cand(&a[i], &a[st++]);
        swap_cand(&a[st], &a[hi]);
        if (st == c || st == c - 1) return;
        if (st > c) hi = st - 1;
        else lo = st + 1;
    }
}

/* ---- the per-step pipeline ---- */

static int reserve(void **buf, size_t *cap, size_t n, size_t elem) {
    if (n <= *cap) return 0;
    void *q = realloc(*buf, n * elem);
    if (!q) return -1;
    *buf = q;
    *cap = n;
    return 0;
}

static void set_logit(sampler *s, float *logits, int32_t id, float v, int save) {
    if (save) {
        s->saved[s->n_saved].id = id;
        s->saved[s->n_saved].raw = logits[id];
        s->n_saved++;
    }
    logits[id] = v;
}

/* Penalties, logit bias and the min_tokens mask, in that order. With save,
 * the first value each changed entry had is logged in s->saved. */
static int apply_modifiers(sampler *s, float *logits, int save, inf_error *err) {
    const sampler_params *p = &s->p;
    int mask = s->n_generated < p->min_tokens;
    s->n_saved = 0;
    if (save) {
        size_t need = (s->track ? s->n_hist : 0) + p->n_logit_bias +
                      (mask ? s->n_eos + p->n_stop_token_ids : 0);
        if (reserve((void **)&s->saved, &s->cap_saved, need ? need : 1, sizeof *s->saved))
            return inf_error_set(err, INF_ENOMEM, "out of memory for sampler scratch");
    }
    if (s->track) {
        float rp = p->repetition_penalty;
        for (size_t i = 0; i < s->n_hist; i++) {
            const hist_entry *e = &s->hist[i];
            float l = logits[e->token];
            if (rp != 1.0f) l = l > 0.0f ? l / rp : l * rp;
            if (e->gen_count)
                l -= (float)e->gen_count * p->frequency_penalty + p->presence_penalty;
            set_logit(s, logits, e->token, l, save);
        }
    }
    for (size_t i = 0; i < p->n_logit_bias; i++) {
        int32_t t = p->logit_bias[i].token;
        set_logit(s, logits, t, logits[t] + p->logit_bias[i].bias, save);
    }
    if (mask) {
        if (!p->ignore_eos)
            for (size_t i = 0; i < s->n_eos; i++) set_logit(s, logits, s->eos[i], -INFINITY, save);
        for (size_t i = 0; i < p->n_stop_token_ids; i++)
            set_logit(s, logits, p->stop_token_ids[i], -INFINITY, save);
    }
    return 0;
}

/* Max of x[0..n) into *mx; returns nonzero if some entry is NaN or +inf.
 * Eight independent lanes, branch-free, so the compiler vectorizes it even at
 * -O2: this pass is all a greedy step costs. */
static int scan_max(const float *x, int n, float *mx) {
    float m8[8];
    int b8[8], i = 0, bad = 0;
    float m = -INFINITY;
    for (int j = 0; j < 8; j++) {
        m8[j] = -INFINITY;
        b8[j] = 0;
    }
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) {
            float l = x[i + j];
            b8[j] |= (l != l) | (l == INFINITY);
            m8[j] = l > m8[j] ? l : m8[j];
        }
    for (; i < n; i++) {
        float l = x[i];
        bad |= (l != l) | (l == INFINITY);
        m = l > m ? l : m;
    }
    for (int j = 0; j < 8; j++) {
        bad |= b8[j];
        m = m8[j] > m ? m8[j] : m;
    }
    *mx = m;
    return bad;
}

/* Top-N of the raw logits and their log-softmax normalizer. */
static void raw_logprobs(sampler *s, const float *logits, sampler_result *out, double *lse) {
    int n = s->n_vocab;
    float mx;
    scan_max(logits, n, &mx); /* NaN / +inf: filter() reports them */
    double sum = 0.0;
    if (mx != -INFINITY)
        for (int i = 0; i < n; i++) sum += expf(logits[i] - mx);
    *lse = mx == -INFINITY ? -INFINITY : (double)mx + log(sum);
    out->n_top = 0;
    int k = s->p.logprobs < n ? s->p.logprobs : n;
    if (k > 0) {
        cand top[SAMPLER_MAX_LOGPROBS];
        out->n_top = top_k_select(logits, n, k, 0, top);
        for (int i = 0; i < out->n_top; i++) {
            out->top[i].token = top[i].id;
            out->top[i].logprob = (float)((double)top[i].l - *lse);
        }
    }
}

/* Result of the filters: either cand[0..n) (weights in .l, any order) or,
 * when no filter needs ranking (full = 1), "every token i with
 * logits[i] >= thr", weighted exp((l - mx) * inv_t). */
typedef struct kept {
    int greedy;
    int32_t argmax;
    float mx;
    double inv_t;
    int full;
    float thr;
    int n;
    double z; /* sum of kept weights */
} kept;

static float weight(float l, float mx, double inv_t) {
    return expf((float)(((double)l - mx) * inv_t));
}

/* keep_mask for min_p on a value already known finite: p_i >= min_p * p_max. */
static int passes_min_p(float l, float mx, double inv_t, double log_min_p) {
    return ((double)l - mx) * inv_t >= log_min_p;
}

/* Keeps c[0..m) best-first while the mass ranked before a token is below
 * target (cum starts at the mass already kept); c[lo..sorted_end) is sorted.
 * Ranks only as far as the nucleus reaches: selects the next chunk of best
 * tokens and sorts just that, doubling the chunk each round. Returns the
 * kept end. */
static int nucleus_scan(cand *c, int lo, int m, int sorted_end, float mx, double inv_t,
                        double cum, double target) {
    int r = lo, chunk = 64;
    while (r < m) {
        if (r == sorted_end) {
            int cn = chunk < m - r ? chunk : m - r;
            select_best(c + r, m - r, cn);
            qsort(c + r, (size_t)cn, sizeof *c, cmp_cand);
            sorted_end = r + cn;
            chunk *= 2;
        }
        if (cum >= target) break;
        cum += weight(c[r].l, mx, inv_t);
        r++;
    }
    return r;
}

#define NUC_BUCKETS 2048
#define NUC_RANGE 24.0 /* scaled-logit span of the buckets; lower ones share the last */

static int nuc_bucket(float l, float mx, double inv_t) {
    double b = ((double)mx - l) * inv_t * (NUC_BUCKETS / NUC_RANGE);
    return b < NUC_BUCKETS - 1 ? (int)b : NUC_BUCKETS - 1;
}

/* top_p on candidates c[0..m) (all finite, max mx); sorted says they are
 * already best-first. Returns the kept count, kept tokens in c[0..) in any
 * order. A token is kept iff the mass ranked above it is < top_p of the total.
 * Unsorted input is first bucketed by logit: buckets wholly above the cut are
 * kept and those below dropped without any sorting, so only the tokens of the
 * one bucket the cut falls in get ranked. */
static int nucleus(cand *c, int m, int sorted, float mx, double inv_t, float top_p) {
    if (sorted) {
        double z = 0.0;
        for (int i = 0; i < m; i++) z += weight(c[i].l, mx, inv_t);
        return nucleus_scan(c, 0, m, m, mx, inv_t, 0.0, (double)top_p * z);
    }
    double mass[NUC_BUCKETS] = {0}, z = 0.0;
    for (int i = 0; i < m; i++) {
        double w = weight(c[i].l, mx, inv_t);
        mass[nuc_bucket(c[i].l, mx, inv_t)] += w;
        z += w;
    }
    double target = (double)top_p * z, cum = 0.0;
    int cut = 0;
    while (cut < NUC_BUCKETS - 1 && cum + mass[cut] < target) cum += mass[cut++];
    /* Front: buckets above the cut, then the cut bucket; the rest is dropped. */
    int nk = 0;
    for (int i = 0; i < m; i++)
        if (nuc_bucket(c[i].l, mx, inv_t) < cut) swap_cand(&c[i], &c[nk++]);
    int nb = nk;
    for (int i = nk; i < m; i++)
        if (nuc_bucket(c[i].l, mx, inv_t) == cut) swap_cand(&c[i], &c[nb++]);
    return nucleus_scan(c, nk, nb, nk, mx, inv_t, cum, target);
}

/* Runs temperature, top_k, top_p and min_p on the modified logits. */
static int filter(sampler *s, const float *logits, kept *k, inf_error *err) {
    const sampler_params *p = &s->p;
    int n = s->n_vocab, argmax = 0;
    float mx;
    int bad = scan_max(logits, n, &mx);
    if (bad)
        for (int i = 0; i < n; i++)
            if (isnan(logits[i]) || logits[i] == INFINITY)
                return inf_error_set(err, INF_EINVAL,
                                     "logit %d is %g; logits must be finite or -inf", i,
                                     (double)logits[i]);
    if (mx == -INFINITY)
        return inf_error_set(err, INF_EINVAL, "every token is masked (all logits are -inf)");
    while (logits[argmax] != mx) argmax++; /* the lowest id wins ties */
    memset(k, 0, sizeof *k);
    k->argmax = argmax;
    k->mx = mx;
    if (p->temperature < SAMPLER_GREEDY_EPS) {
        k->greedy = 1;
        k->n = 1;
        k->z = 1.0;
        return 0;
    }
    k->inv_t = 1.0 / (double)p->temperature;
    double log_min_p = p->min_p > 0.0f ? log((double)p->min_p) : -INFINITY;
    int use_top_k = p->top_k > 0 && p->top_k < n;
    int use_top_p = p->top_p < 1.0f;
    if (!use_top_k && !use_top_p) {
        /* No ranking needed: min_p is a threshold on the logit. */
        k->full = 1;
        k->thr = -INFINITY;
        for (int i = 0; i < n; i++) {
            float l = logits[i];
            if (l == -INFINITY || !passes_min_p(l, mx, k->inv_t, log_min_p)) continue;
            if (l < k->thr || k->thr == -INFINITY) k->thr = l;
            k->n++;
            k->z += weight(l, mx, k->inv_t);
        }
        return 0;
    }
    size_t need = use_top_k ? (size_t)p->top_k : (size_t)n;
    if (reserve((void **)&s->cand, &s->cap_cand, need, sizeof *s->cand))
        return inf_error_set(err, INF_ENOMEM, "out of memory for sampler scratch");
    cand *c = s->cand;
    int m, sorted;
    if (use_top_k) {
        m = top_k_select(logits, n, p->top_k, 1, c);
        sorted = 1;
    } else {
        m = 0;
        for (int i = 0; i < n; i++)
            if (logits[i] != -INFINITY) {
                c[m].l = logits[i];
                c[m].id = i;
                m++;
            }
        sorted = 0;
    }
    if (use_top_p) m = nucleus(c, m, sorted, mx, k->inv_t, p->top_p);
    /* min_p: a threshold; the top token always passes, so m stays >= 1. */
    int r = 0;
    for (int i = 0; i < m; i++)
        if (passes_min_p(c[i].l, mx, k->inv_t, log_min_p)) c[r++] = c[i];
    m = r;
    for (int i = 0; i < m; i++) {
        c[i].l = weight(c[i].l, mx, k->inv_t);
        k->z += c[i].l;
    }
    k->n = m;
    return 0;
}

/* Inverse-CDF draw with u in [0, 1). */
static int32_t draw(const sampler *s, const float *logits, const kept *k, double u) {
    if (k->greedy) return k->argmax;
    double target = u * k->z, cum = 0.0;
    int32_t last = k->argmax;
    if (k->full) {
        for (int i = 0; i < s->n_vocab; i++) {
            float l = logits[i];
            if (l == -INFINITY || l < k->thr) continue;
            cum += weight(l, k->mx, k->inv_t);
            last = i;
            if (target < cum) return i;
        }
        return last; /* rounding left target just above the sum */
    }
    for (int i = 0; i < k->n; i++) {
        cum += s->cand[i].l;
        if (target < cum) return s->cand[i].id;
    }
    return s->cand[k->n - 1].id;
}

static int check_vocab(const sampler *s, const float *logits, int n_vocab, inf_error *err) {
    if (!logits) return inf_error_set(err, INF_EINVAL, "logits are NULL");
    if (n_vocab != s->n_vocab)
        return inf_error_set(err, INF_EINVAL, "n_vocab must be %d (as at create), got %d",
                             s->n_vocab, n_vocab);
    return 0;
}

int sampler_sample(sampler *s, float *logits, int n_vocab, sampler_result *out, inf_error *err) {
    int rc = check_vocab(s, logits, n_vocab, err);
    if (rc) return rc;
    int want_lp = s->p.logprobs >= 0;
    double lse = 0.0;
    out->n_top = 0;
    out->logprob = NAN;
    if (want_lp) raw_logprobs(s, logits, out, &lse);
    if ((rc = apply_modifiers(s, logits, want_lp, err))) return rc;
    kept k;
    if ((rc = filter(s, logits, &k, err))) return rc;
    double u = rng_uniform(s->rng);
    int32_t t = draw(s, logits, &k, u);
    out->token = t;
    if (want_lp) {
        float raw = logits[t];
        for (size_t i = 0; i < s->n_saved; i++)
            if (s->saved[i].id == t) {
                raw = s->saved[i].raw;
                break;
            }
        out->logprob = (float)((double)raw - lse);
    }
    return 0;
}

int sampler_candidates(sampler *s, float *logits, int n_vocab, int32_t *ids, float *probs,
                       int *n_out, inf_error *err) {
    int rc = check_vocab(s, logits, n_vocab, err);
    if (rc) return rc;
    if ((rc = apply_modifiers(s, logits, 0, err))) return rc;
    kept k;
    if ((rc = filter(s, logits, &k, err))) return rc;
    int m = 0;
    if (k.greedy) {
        ids[0] = k.argmax;
        probs[0] = 1.0f;
        m = 1;
    } else if (k.full) {
        for (int i = 0; i < n_vocab; i++) {
            float l = logits[i];
            if (l == -INFINITY || l < k.thr) continue;
            ids[m] = i;
            probs[m] = (float)(weight(l, k.mx, k.inv_t) / k.z);
            m++;
        }
    } else {
        for (int i = 0; i < k.n; i++) {
            ids[m] = s->cand[i].id;
            probs[m] = (float)(s->cand[i].l / k.z);
            m++;
        }
    }
    *n_out = m;
    return 0;
}
