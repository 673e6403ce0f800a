/* sampler.c - per-request sampling (see sampler.h). Parameters live in
 * sampler_params.c.
 *
 * Temperature is never written into the logits array: the filters and the
 * draw work on weights exp((l - max) / T) computed on the fly. That keeps the
 * array's untouched entries equal to the raw logits, so the sampled token's
 * raw logprob can be recovered from the array plus the raw values of the few
 * entries the modifiers changed, without copying n_vocab floats.
 *
 * The modifiers of a step (penalties, logit bias, min_tokens mask) are first
 * built as a sampler_mod list (one entry per token, sampler_mod.h) and then
 * applied with sampler_mod_apply. The device path (sampler_device_row) hands
 * the very same list to the CUDA kernel, which applies it with the same
 * function, and draws its uniform number the same way, so a seeded request
 * gives the same tokens on either path.
 */
#include "sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sampler_internal.h"

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

/* Index of token's entry, or -1 (nothing is added). */
static long hist_find(const sampler *s, int32_t token) {
    size_t mask = s->n_slots - 1, j = slot_of(token, mask);
    for (; s->slots[j]; j = (j + 1) & mask)
        if (s->hist[s->slots[j] - 1].token == token) return (long)s->slots[j] - 1;
    return -1;
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
    free(s->mods);
    free(s->raw);
    free(s->xslots);
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

/* ---- scratch ---- */

int smp_reserve(void **buf, size_t *cap, size_t n, size_t elem) {
    if (n <= *cap) return 0;
    void *q = realloc(*buf, n * elem);
    if (!q) return -1;
    *buf = q;
    *cap = n;
    return 0;
}

int smp_check_vocab(const sampler *s, const float *logits, int n_vocab, inf_error *err) {
    if (!logits) return inf_error_set(err, INF_EINVAL, "logits are NULL");
    if (n_vocab != s->n_vocab)
        return inf_error_set(err, INF_EINVAL, "n_vocab must be %d (as at create), got %d",
                             s->n_vocab, n_vocab);
    return 0;
}

/* ---- modifiers (shared by the host and the device path) ---- */

static int mask_on(const sampler *s) { return s->n_generated < s->p.min_tokens; }

size_t sampler_mods_bound(const sampler *s) {
    const sampler_params *p = &s->p;
    return (s->track ? s->n_hist : 0) + p->n_logit_bias +
           (mask_on(s) ? s->n_eos + p->n_stop_token_ids : 0);
}

/* Grows s->mods and s->raw to n entries. */
static int reserve_mods(sampler *s, size_t n) {
    if (n <= s->cap_mods) return 0;
    sampler_mod *m = realloc(s->mods, n * sizeof *m);
    if (!m) return -1;
    s->mods = m;
    float *r = realloc(s->raw, n * sizeof *r);
    if (!r) return -1;
    s->raw = r;
    s->cap_mods = n;
    return 0;
}

/* The mod entry of token t in m[0..*n), appended (all zero but the token) if
 * absent. History tokens are m[0..n_hist) in history order; the others are
 * found through xslots (size mask + 1, zeroed by the caller). */
static sampler_mod *mod_of(sampler *s, sampler_mod *m, int *n, int32_t t, size_t mask) {
    if (s->track) {
        long h = hist_find(s, t);
        if (h >= 0) return &m[h];
    }
    size_t j = slot_of(t, mask);
    for (; s->xslots[j]; j = (j + 1) & mask)
        if (m[s->xslots[j] - 1].token == t) return &m[s->xslots[j] - 1];
    sampler_mod *e = &m[*n];
    memset(e, 0, sizeof *e);
    e->token = t;
    s->xslots[j] = (uint32_t)++*n;
    return e;
}

/* Builds this step's modifier list into m (capacity sampler_mods_bound(s)):
 * the history with its counts when penalties are on (every history token gets
 * the repetition flag: the history holds the prompt only when that penalty
 * is on), then the logit bias, then, while min_tokens is not reached, the
 * mask of EOS (unless ignore_eos) and of the stop token ids. One entry per
 * token; *n_out gets the count. */
static int build_mods(sampler *s, sampler_mod *m, int *n_out, inf_error *err) {
    const sampler_params *p = &s->p;
    int n = 0;
    if (s->track)
        for (size_t i = 0; i < s->n_hist; i++)
            m[n++] = (sampler_mod){s->hist[i].token, 1, (int32_t)s->hist[i].gen_count, 0, 0.0f};
    int mask = mask_on(s);
    size_t n_extra = p->n_logit_bias + (mask ? s->n_eos + p->n_stop_token_ids : 0);
    if (n_extra) {
        size_t cap = 16;
        while (cap < 2 * n_extra) cap *= 2;
        if (smp_reserve((void **)&s->xslots, &s->cap_xslots, cap, sizeof *s->xslots))
            return inf_error_set(err, INF_ENOMEM, "out of memory for sampler scratch");
        memset(s->xslots, 0, cap * sizeof *s->xslots);
        for (size_t i = 0; i < p->n_logit_bias; i++)
            mod_of(s, m, &n, p->logit_bias[i].token, cap - 1)->bias = p->logit_bias[i].bias;
        if (mask) {
            if (!p->ignore_eos)
                for (size_t i = 0; i < s->n_eos; i++) mod_of(s, m, &n, s->eos[i], cap - 1)->mask = 1;
            for (size_t i = 0; i < p->n_stop_token_ids; i++)
                mod_of(s, m, &n, p->stop_token_ids[i], cap - 1)->mask = 1;
        }
    }
    *n_out = n;
    return 0;
}

/* Penalties, logit bias and the min_tokens mask: builds the list into
 * s->mods and applies it to logits, keeping each changed entry's raw value. */
/* The grammar mask: disallowed tokens to -inf, after the modifiers (the
 * device kernel applies the same bits at the same point). */
static void apply_allowed(const sampler *s, float *logits) {
    const uint32_t *a = s->allowed;
    if (!a) return;
    for (int w = 0; w * 32 < s->n_vocab; w++) {
        uint32_t bits = a[w];
        if (bits == 0xFFFFFFFFu) continue;
        int end = (w + 1) * 32 < s->n_vocab ? (w + 1) * 32 : s->n_vocab;
        for (int t = w * 32; t < end; t++)
            if (!(bits >> (t & 31) & 1u)) logits[t] = -INFINITY;
    }
}

void sampler_set_allowed(sampler *s, const uint32_t *bits) { s->allowed = bits; }

const uint32_t *sampler_get_allowed(const sampler *s) { return s->allowed; }

int smp_apply_modifiers(sampler *s, float *logits, inf_error *err) {
    const sampler_params *p = &s->p;
    size_t need = sampler_mods_bound(s);
    s->n_mods = 0;
    if (!need) {
        apply_allowed(s, logits);
        return 0;
    }
    if (reserve_mods(s, need))
        return inf_error_set(err, INF_ENOMEM, "out of memory for sampler scratch");
    int n = 0, rc = build_mods(s, s->mods, &n, err);
    if (rc) return rc;
    for (int i = 0; i < n; i++) {
        int32_t t = s->mods[i].token;
        s->raw[i] = logits[t];
        logits[t] = sampler_mod_apply(logits[t], &s->mods[i], p->repetition_penalty,
                                      p->presence_penalty, p->frequency_penalty);
    }
    s->n_mods = (size_t)n;
    apply_allowed(s, logits);
    return 0;
}

int sampler_sample(sampler *s, float *logits, int n_vocab, sampler_result *out, inf_error *err) {
    int rc = smp_check_vocab(s, logits, n_vocab, err);
    if (rc) return rc;
    int want_lp = s->p.logprobs >= 0;
    double lse = 0.0;
    out->n_top = 0;
    out->logprob = NAN;
    if (want_lp) smp_raw_logprobs(s, logits, out, &lse);
    if ((rc = smp_apply_modifiers(s, logits, err))) return rc;
    kept k;
    if ((rc = smp_filter(s, logits, &k, err))) return rc;
    double u = rng_uniform(s->rng); /* exactly one draw per step, as sampler_device_row */
    int32_t t = smp_draw(s, logits, &k, u);
    out->token = t;
    if (want_lp) {
        float raw = logits[t];
        for (size_t i = 0; i < s->n_mods; i++)
            if (s->mods[i].token == t) {
                raw = s->raw[i];
                break;
            }
        out->logprob = (float)((double)raw - lse);
    }
    return 0;
}

int sampler_device_ok(const sampler *s) {
    return sampler_mods_bound(s) <= SAMPLER_DEVICE_MAX_MODS;
}

int sampler_device_row(sampler *s, sampler_row *row, sampler_mod *mods, size_t cap,
                       inf_error *err) {
    const sampler_params *p = &s->p;
    if (cap < sampler_mods_bound(s))
        return inf_error_set(err, INF_EINVAL, "sampler_device_row: room for %zu modifiers, %zu needed",
                             cap, sampler_mods_bound(s));
    int n = 0, rc = build_mods(s, mods, &n, err);
    if (rc) return rc;
    memset(row, 0, sizeof *row);
    row->temperature = p->temperature;
    row->top_p = p->top_p;
    row->min_p = p->min_p;
    row->top_k = p->top_k;
    row->repetition_penalty = p->repetition_penalty;
    row->presence_penalty = p->presence_penalty;
    row->frequency_penalty = p->frequency_penalty;
    row->want_logprob = p->logprobs >= 0;
    row->n_top = p->logprobs > 0 ? (p->logprobs < s->n_vocab ? p->logprobs : s->n_vocab) : 0;
    row->n_mod = n;
    row->u = rng_uniform(s->rng); /* the one draw sampler_sample makes */
    return 0;
}
