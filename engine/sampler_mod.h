/* sampler_mod.h - one sampling step of one request as plain data, shared by
 * the CPU sampler (sampler.c), the CUDA backend's device sampling
 * (cuda_backend.h) and its kernel (kernels/sample.cu).
 *
 * A step is a sampler_row (the request's parameters plus the uniform number
 * its RNG drew for this step) and the row's sampler_mod entries: one per
 * token whose logit the penalties, the logit bias or the min_tokens mask
 * change, each token at most once. sampler_mod_apply is THE modifier
 * arithmetic; the CPU sampler and the kernel both call it, so both paths give
 * bit-identical modified logits. Plain C (and CUDA C++); no allocation.
 */
#ifndef INF_SAMPLER_MOD_H
#define INF_SAMPLER_MOD_H

#include <math.h>
#include <stdint.h>

/* One token's modifiers, applied in this order: repetition penalty (if rep),
 * then -= gen_count * frequency + presence (if gen_count > 0), then += bias,
 * then -inf (if mask). */
typedef struct sampler_mod {
    int32_t token;
    int32_t rep;       /* token in prompt or output: the repetition penalty applies */
    int32_t gen_count; /* times generated: frequency / presence penalties */
    int32_t mask;      /* 1: logit -inf (min_tokens not reached: EOS, stop token ids) */
    float bias;        /* logit bias (0: none) */
} sampler_mod;

/* One row: the request's parameters (see sampler_params in sampler.h) and the
 * uniform number of this step. */
typedef struct sampler_row {
    float temperature, top_p, min_p;
    int top_k;
    float repetition_penalty, presence_penalty, frequency_penalty;
    double u;          /* uniform in [0, 1) from the request's RNG */
    int want_logprob;  /* 1: the sampled token's raw logprob (params.logprobs >= 0) */
    int n_top;         /* 0..20: also the n_top most likely tokens (raw logprobs) */
    int n_mod;         /* entries of this row in the modifier list, in order */
} sampler_row;

/* Exact IEEE single operations, never contracted into FMAs (the host C
 * compiler in ISO mode does not contract; nvcc would, so device code uses
 * the _rn intrinsics). */
#if defined(__CUDACC__)
#define SMP_HD __host__ __device__ __forceinline__
#else
#define SMP_HD static inline
#endif
#if defined(__CUDA_ARCH__)
#define SMP_MUL(a, b) __fmul_rn((a), (b))
#define SMP_DIV(a, b) __fdiv_rn((a), (b))
#define SMP_ADD(a, b) __fadd_rn((a), (b))
#define SMP_SUB(a, b) __fsub_rn((a), (b))
#else
#define SMP_MUL(a, b) ((a) * (b))
#define SMP_DIV(a, b) ((a) / (b))
#define SMP_ADD(a, b) ((a) + (b))
#define SMP_SUB(a, b) ((a) - (b))
#endif

/* The modified value of logit l under m (rp, pp, fp: the row's repetition,
 * presence and frequency penalties). */
SMP_HD float sampler_mod_apply(float l, const sampler_mod *m, float rp, float pp, float fp) {
    if (m->rep && rp != 1.0f) l = l > 0.0f ? SMP_DIV(l, rp) : SMP_MUL(l, rp);
    if (m->gen_count) l = SMP_SUB(l, SMP_ADD(SMP_MUL((float)m->gen_count, fp), pp));
    if (m->bias != 0.0f) l = SMP_ADD(l, m->bias);
    if (m->mask) l = -INFINITY;
    return l;
}

#endif
