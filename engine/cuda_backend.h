/* cuda_backend.h - extras of the CUDA backend beyond backend.h: load and
 * graph statistics for benchmarks, a switch for decode graphs, and the
 * device-sampling hook (sample from the last forward's logits without
 * copying them to the host). The functions exist in every build; without
 * CUDA they return INF_EUNSUPPORTED. */
#ifndef INF_CUDA_BACKEND_H
#define INF_CUDA_BACKEND_H

#include <stdint.h>

#include "backend.h"
#include "sampler_mod.h"

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
 * order of its need_logits tokens); typically that forward ran with
 * logits == NULL (backend.h), so nothing but the results crosses the bus.
 * Row i: rows[i] (sampler_mod.h: parameters and the uniform number the
 * request's RNG drew) and its rows[i].n_mod modifier entries, which follow
 * those of the rows before it in mods. Fill both with sampler_device_row
 * (sampler.h): the kernel applies the CPU sampler's steps, tie rules and draw
 * order, so a seeded request gives the CPU sampler's tokens. */
typedef sampler_row backend_cuda_sample_row;
typedef sampler_mod backend_cuda_sample_mod;

/* Where the results go: host arrays owned by the caller. */
typedef struct backend_cuda_sample_out {
    int32_t *tokens;       /* [n] sampled ids (-1 where the row failed) */
    float *logprobs;       /* [n] raw logprob of the token; NAN unless want_logprob */
    int32_t *status;       /* [n] 0 ok, 1 a logit was NaN/+inf, 2 every token masked;
                              NULL: a failed row fails the call (INF_EINVAL naming it) */
    int32_t *top_tokens;   /* [sum of n_top] row i's n_top most likely raw tokens, best
                              first (ties by id), after those of the rows before it;
                              may be NULL when no row has n_top > 0 */
    float *top_logprobs;   /* [sum of n_top] their raw logprobs */
} backend_cuda_sample_out;

/* Samples the n rows (n = the number of logits rows of the last forward;
 * INF_ESTATE otherwise, or when they were sampled already: the kernel
 * modifies the device logits, so once per forward). Only the rows and
 * modifiers go up and only the tokens, logprobs and top-N entries come down.
 * Waits for the stream (a forward's asynchronous failure surfaces here). */
int backend_cuda_sample(backend *b, const backend_cuda_sample_row *rows, int n,
                        const backend_cuda_sample_mod *mods, int n_mods,
                        const backend_cuda_sample_out *out, inf_error *err);

/* The same with per-row token masks (structured output, grammar.h): masks
 * NULL, or masks[i] NULL for an unconstrained row, else (n_vocab + 31) / 32
 * words with bit t set where token t is allowed. The bits go up with the
 * rows (one copy) and the kernel sets the other logits to -inf after the
 * modifiers, as sampler_set_allowed does on the host. */
int backend_cuda_sample_masked(backend *b, const backend_cuda_sample_row *rows, int n,
                               const backend_cuda_sample_mod *mods, int n_mods, const uint32_t *const *masks,
                               const backend_cuda_sample_out *out, inf_error *err);

#endif
