/* sampler_filter.c - the sampler's ranking and filters (see sampler.h):
 * temperature, top_k (heap select), top_p (bucketed nucleus, ranking only the
 * bucket where the cut falls), min_p, the inverse-CDF draw in id order, and
 * the raw top-N logprobs. State and the pipeline: sampler.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sampler_internal.h"

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
void smp_raw_logprobs(sampler *s, const float *logits, sampler_result *out, double *lse) {
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
int smp_filter(sampler *s, const float *logits, kept *k, inf_error *err) {
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
        k->thr_id = INT32_MAX;
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
    if (smp_reserve((void **)&s->cand, &s->cap_cand, need, sizeof *s->cand))
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
    /* min_p: a threshold; the top token always passes, so m stays >= 1. The
     * worst kept token (in the total order) bounds the prefix. */
    int r = 0;
    k->thr = INFINITY;
    k->thr_id = -1;
    for (int i = 0; i < m; i++)
        if (passes_min_p(c[i].l, mx, k->inv_t, log_min_p)) {
            if (better(k->thr, k->thr_id, c[i].l, c[i].id)) {
                k->thr = c[i].l;
                k->thr_id = c[i].id;
            }
            c[r++] = c[i];
        }
    m = r;
    for (int i = 0; i < m; i++) {
        c[i].l = weight(c[i].l, mx, k->inv_t);
        k->z += c[i].l;
    }
    k->n = m;
    return 0;
}

static int cmp_cand_id(const void *a, const void *b) {
    const cand *x = a, *y = b;
    return (x->id > y->id) - (x->id < y->id);
}

/* Inverse-CDF draw with u in [0, 1), walking the kept tokens in id order (as
 * the device kernel does): the first token whose cumulative weight exceeds
 * u * z, or the last kept one when rounding leaves u * z at the total. A
 * small candidate list is sorted by id; otherwise the vocabulary is scanned
 * against the prefix bound. Reorders s->cand. */
int32_t smp_draw(sampler *s, const float *logits, const kept *k, double u) {
    if (k->greedy) return k->argmax;
    double target = u * k->z, cum = 0.0;
    int32_t last = k->argmax;
    if (!k->full && (size_t)k->n * 16 < (size_t)s->n_vocab) {
        cand *c = s->cand;
        qsort(c, (size_t)k->n, sizeof *c, cmp_cand_id);
        for (int i = 0; i < k->n; i++) {
            cum += c[i].l;
            if (target < cum) return c[i].id;
        }
        return c[k->n - 1].id;
    }
    for (int i = 0; i < s->n_vocab; i++) {
        float l = logits[i];
        if (l == -INFINITY || l < k->thr || (l == k->thr && i > k->thr_id)) continue;
        cum += weight(l, k->mx, k->inv_t);
        last = i;
        if (target < cum) return i;
    }
    return last; /* rounding left target just above the sum */
}

int sampler_candidates(sampler *s, float *logits, int n_vocab, int32_t *ids, float *probs,
                       int *n_out, inf_error *err) {
    int rc = smp_check_vocab(s, logits, n_vocab, err);
    if (rc) return rc;
    if ((rc = smp_apply_modifiers(s, logits, err))) return rc;
    kept k;
    if ((rc = smp_filter(s, logits, &k, err))) return rc;
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
