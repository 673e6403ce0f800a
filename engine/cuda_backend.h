/* cuda_backend.h - extras of the CUDA backend beyond backend.h: load and
 * graph statistics for benchmarks, a switch for decode graphs, and the
 * device-sampling hook (sample from the last forward's logits without
 * copying them to the host). The functions exist in every build; without
 * CUDA they return INF_EUNSUPPORTED. */
#ifndef INF_CUDA_BACKEND_H
#define INF_CUDA_BACKEND_H

#include <stdint.h>

#include "backend.h"

typedef struct backend_cuda_stats {
    double weight_bytes;    /* bytes of weights on the device */
    double load_seconds;    /* time to stream them there */
    double kv_bytes;        /* bytes of KV cache allocated */
    uint64_t graph_captures, graph_launches;
    int act_dt;             /* infk_dt of float weights / GEMM inputs */
} backend_cuda_stats;

/* Fills *st for a backend made by backend_cuda_create (INF_EINVAL otherwise). */
int backend_cuda_stats_get(const backend *b, backend_cuda_stats *st, inf_error *err);

/* Turns decode CUDA graphs on (default, unless INFERNO_CUDA_GRAPHS=0) or off;
 * turning them off frees the captured graphs. */
int backend_cuda_set_graphs(backend *b, int enable, inf_error *err);

/* Device sampling, one row per logits row of the LAST forward (in batch
 * order of its need_logits tokens). Row i: p[i] (see sampler.h for the
 * meaning) and its modifier entries. Host arrays in, host arrays out
 * (tokens[n], logprobs[n]); only those cross the bus. */
typedef struct backend_cuda_sample_row {
    float temperature, top_p, min_p;
    int top_k;
    float repetition_penalty, presence_penalty, frequency_penalty;
    double u;          /* uniform in [0, 1) from the request's RNG */
    int want_logprob;
    int n_mod;         /* entries of this row in mods, in order */
} backend_cuda_sample_row;

typedef struct backend_cuda_sample_mod {
    int32_t token;
    int32_t rep;       /* token in prompt or output: repetition penalty applies */
    int32_t gen_count; /* times generated: frequency / presence */
    int32_t mask;      /* 1: -inf (min_tokens) */
    float bias;        /* logit bias */
} backend_cuda_sample_mod;

/* Samples n rows (n = the number of logits rows of the last forward).
 * INF_EINVAL with the row named when a row's logits are NaN/+inf or all
 * masked. The last forward's device logits are modified. */
int backend_cuda_sample(backend *b, const backend_cuda_sample_row *rows, int n,
                        const backend_cuda_sample_mod *mods, int n_mods, int32_t *tokens,
                        float *logprobs, inf_error *err);

#endif
