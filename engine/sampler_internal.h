/* sampler_internal.h - the sampler's state, shared by sampler.c (lifecycle,
 * history, modifiers, the step, device rows) and sampler_filter.c (ranking,
 * temperature / top_k / top_p / min_p, the draw). Not a public header. */
#ifndef INF_SAMPLER_INTERNAL_H
#define INF_SAMPLER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "sampler.h"

/* One token of the history (prompt or generated): how often it was generated. */
typedef struct hist_entry {
    int32_t token;
    uint32_t gen_count;
} hist_entry;

typedef struct cand {
    float l; /* logit, later overwritten by its weight */
    int32_t id;
} cand;

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
    sampler_mod *mods;  /* this step's modifier list */
    float *raw;         /* [n_mods] each modified token's logit before the modifiers */
    size_t n_mods, cap_mods;
    uint32_t *xslots;   /* token -> mod index + 1 for the entries not in the history */
    const uint32_t *allowed; /* grammar mask (borrowed), NULL: none */
    size_t cap_xslots;
};

/* Result of the filters. The kept set is always a prefix of the total order
 * (larger logit first, ties to the lower id): every finite token i with
 * logits[i] > thr, or logits[i] == thr and i <= thr_id. When no filter needs
 * ranking (full = 1) that is all there is; otherwise cand[0..n) also lists
 * the kept tokens (weights in .l, any order). Weights are
 * exp((l - mx) * inv_t). */
typedef struct kept {
    int greedy;
    int32_t argmax;
    float mx;
    double inv_t;
    int full;
    float thr;
    int32_t thr_id;
    int n;
    double z; /* sum of kept weights */
} kept;

/* Grows *buf (elem-sized entries, capacity *cap) to hold n; 0 or -1 (out of
 * memory, *buf unchanged). */
int smp_reserve(void **buf, size_t *cap, size_t n, size_t elem);

/* INF_EINVAL unless logits is non-NULL and n_vocab is the sampler's. */
int smp_check_vocab(const sampler *s, const float *logits, int n_vocab, inf_error *err);

/* Builds this step's modifier list into s->mods and applies it to logits,
 * keeping each changed entry's raw value in s->raw (sampler.c). */
int smp_apply_modifiers(sampler *s, float *logits, inf_error *err);

/* sampler_filter.c: top-N raw logprobs of out and the raw log-softmax
 * normalizer *lse; the filters into *k (scratch in s->cand); the draw. */
void smp_raw_logprobs(sampler *s, const float *logits, sampler_result *out, double *lse);
int smp_filter(sampler *s, const float *logits, kept *k, inf_error *err);
int32_t smp_draw(sampler *s, const float *logits, const kept *k, double u);

#endif
