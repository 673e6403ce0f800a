/* engine.h - the inference engine: requests in, streamed token events out.
 *
 * An engine owns one model (GGUF file, backend, tokenizer) and a paged KV
 * cache, and serves many requests at once by continuous batching: each
 * engine_step() runs ONE backend forward over a batch packed from every
 * running sequence (decode tokens first, then prompt chunks), samples the
 * sequences whose pending tokens are all computed, and returns the events of
 * that iteration.
 *
 * Sampling: on a backend that can (CUDA) the logits stay on the device and
 * one kernel samples every row, so only the tokens and the requested
 * logprobs come back (see device_sampling). Steps where some row cannot,
 * and the CPU backend, copy the logits and use the CPU sampler (sampler.h),
 * which stays the reference. Seeded requests give the same tokens either way
 * (same modifiers, same RNG draw, same filters and draw order), up to float
 * rounding of the sums.
 *
 * Scheduling (see scheduler.c for the details):
 *   - Urgency: lower `priority` is more urgent; ties by arrival time, then by
 *     add order. Aging (config aging_ms > 0): a request's effective priority
 *     is priority - waited_ms / aging_ms (fractional), waited_ms counted from
 *     its arrival. Every request ages at the same rate, so the order is the
 *     static key priority * aging_ms + arrival_ms. Bound: a request of
 *     priority p that has waited W ms is scheduled before any request of
 *     priority > p - W / aging_ms that arrives now, so a steady stream of more
 *     urgent arrivals cannot starve it.
 *   - Chunked prefill (enable_chunked_prefill): a long prompt is computed in
 *     chunks of what is left of max_num_batched_tokens after the decode
 *     tokens, so decoding never stalls behind it. Off: a prompt is computed
 *     in one forward (engine_add rejects prompts longer than
 *     max_num_batched_tokens); only the recomputation of a preempted sequence
 *     longer than that is still split.
 *   - Preemption: when KV blocks run out, or max_num_seqs is reached and a
 *     more urgent request waits, the least urgent running sequence (latest
 *     arrival among equals) is preempted: its blocks are freed and it is
 *     requeued; later it recomputes prompt + tokens generated so far, emits
 *     nothing twice, and its sampler state carries on, so greedy and seeded
 *     outputs do not change. A sequence is only ever preempted for a strictly
 *     more urgent one, or (no victim left) by itself.
 *   - Prefix caching (enable_prefix_caching): admission reuses cached full KV
 *     blocks of an identical token prefix (those tokens are not computed and
 *     are reported as cached_tokens); newly filled blocks are registered after
 *     every forward.
 *
 * Threads: engine_add, engine_abort, engine_has_work and engine_n_inflight
 * may be called from any thread, also while engine_step runs (they only touch
 * a mutex-protected inbox, drained at the start of each step). Every other
 * function must be called from the one thread that steps the engine.
 */
#ifndef INF_ENGINE_H
#define INF_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "constraint.h"
#include "model.h"
#include "sampler.h"
#include "status.h"
#include "tokenizer.h"

#define ENGINE_ID_MAX 128 /* request ids are 1..128 bytes, no NUL inside */

typedef struct engine engine;

typedef struct engine_config {
    const char *backend;       /* "cpu", "cuda" (requires a GPU) or "auto" (CUDA when a
                                  device is found, else CPU); NULL = "auto" */
    int n_threads;             /* backend threads; <= 0: all cores */
    size_t kv_cache_bytes;     /* KV budget; 0: backend default (256 MiB) */
    int kv_block_size;         /* tokens per KV block; 0: 16 */
    backend_kv_type kv_type;   /* BACKEND_KV_F16 (default) or BACKEND_KV_F32 */
    int max_num_seqs;          /* running sequences at most; default 64 */
    int max_num_batched_tokens;/* tokens per forward at most; default 512;
                                  must be >= max_num_seqs */
    int max_model_len;         /* prompt + generated tokens at most; 0: the model's
                                  n_ctx_train. Capped at the KV capacity so one
                                  sequence always fits alone. */
    int enable_chunked_prefill;/* default 1 */
    int enable_prefix_caching; /* default 1 */
    int64_t aging_ms;          /* ms per priority level gained while waiting;
                                  0: no aging. Default 1000. At most 1e9. */
    uint64_t seed;             /* != 0: RNG seeds of unseeded requests derive from it
                                  (reproducible runs); 0: fresh OS entropy */
    /* CUDA: share (0, 1] of the device memory free after weights and
     * workspace that the KV cache takes; 0: the default 0.9. Ignored when
     * kv_cache_bytes is set (an explicit budget wins) and on the CPU. */
    double gpu_memory_fraction;
    /* 1 (default): on a backend that can (CUDA), a step whose sampled rows
     * are all device-samplable (sampler_device_ok: every sampling parameter
     * is supported, only very long penalty histories are not) keeps its
     * logits on the device and samples them there; only the tokens and the
     * requested logprobs come back. Other steps copy the logits and use the
     * CPU sampler, the reference. 0, or the environment variable
     * INFERNO_DEVICE_SAMPLING=0: always the CPU sampler. engine_get_config
     * reports the effective setting (0 on the CPU backend). */
    int device_sampling;
    /* 1: the CPU backend writes every page of its KV cache at creation, so
     * the whole budget is resident from the start. Without it the pages are
     * faulted in on first use, and with prefix caching (released blocks stay
     * cached; allocation takes never-used blocks first) resident memory
     * climbs request by request until every block was used once - bounded by
     * kv_cache_bytes, but it looks like a leak and a host short of memory
     * fails hours later instead of at start. Default 0 (tools, tests); the
     * worker sets it. Ignored on the GPU. */
    const char *cpu_isa;       /* CPU kernel set: "auto" (NULL), "scalar", "avx2", "avxvnni", "avx512";
                                  process-wide; a set above what the CPU has is an error */
    int kv_prefault;
    /* Clock in microseconds since the Unix epoch; NULL: CLOCK_REALTIME. Tests
     * pass a fake one so deadlines and timings are deterministic. */
    int64_t (*clock_us)(void *ctx);
    void *clock_ctx;
} engine_config;

/* The defaults listed above. */
engine_config engine_config_default(void);

typedef struct engine_request {
    const char *id;                 /* 1..ENGINE_ID_MAX bytes; copied */
    /* Prompt: either text (prompt, prompt_len; prompt_len 0 = strlen) which
     * the engine tokenizes, or token ids (prompt_tokens non-NULL, copied). */
    const char *prompt;
    size_t prompt_len;
    const int32_t *prompt_tokens;
    int n_prompt_tokens;
    const sampler_params *params;   /* NULL: sampler_params_default(); deep-copied */
    int priority;                   /* lower = more urgent; any int */
    int64_t deadline_ms;            /* epoch ms; 0: none */
    int64_t arrival_ms;             /* epoch ms; 0: now (when engine_add runs) */
    int add_special;                /* text prompts: add BOS/EOS as the vocab asks */
    int parse_special;              /* text prompts: recognise special-token texts */
    void *user;                     /* opaque; handed back in every event */
    /* Structured output (constraint.h); NULL or kind NONE: unconstrained.
     * Compiled at engine_add (cached by content, so requests sharing a
     * schema compile it once); an invalid one fails engine_add with the
     * compiler's message (INF_EINVAL, INF_EFORMAT, INF_EUNSUPPORTED or
     * INF_ERANGE), wrapped as "request 'ID': ...". Every step the request's
     * tokens are masked to those the grammar allows (EOS only where it can
     * end); it finishes with STOP once the grammar is complete and nothing
     * can follow, or at EOS, and with LENGTH at max_tokens (the text may then
     * be incomplete). Borrowed: nothing is kept after engine_add. */
    const constraint_spec *constraint;
} engine_request;

/* A request with add_special = 1 and everything else 0 / NULL. */
engine_request engine_request_default(void);

typedef enum engine_event_type {
    /* New token(s) of a request. The first one of a request has first = 1
     * (that is the "first token" event; ttft_ms is set). */
    ENGINE_EVENT_TOKEN = 1,
    /* Final: the request finished (reason, usage, timings). */
    ENGINE_EVENT_FINISHED = 2,
    /* Final: the request failed after it was accepted (code, message). */
    ENGINE_EVENT_ERROR = 3
} engine_event_type;

typedef enum engine_finish_reason {
    ENGINE_FINISH_NONE = 0,
    ENGINE_FINISH_STOP = 1,     /* EOS, a stop token id or a stop string */
    ENGINE_FINISH_LENGTH = 2,   /* max_tokens or max_model_len reached */
    ENGINE_FINISH_ABORT = 3,    /* engine_abort */
    ENGINE_FINISH_DEADLINE = 4  /* deadline_ms passed */
} engine_finish_reason;

typedef struct engine_usage {
    int prompt_tokens;
    int completion_tokens;
    int cached_tokens;   /* prompt tokens served from the prefix cache at first admission */
} engine_usage;

typedef struct engine_timings {
    double queue_ms;     /* arrival -> first scheduled (-1 if never scheduled) */
    double ttft_ms;      /* arrival -> first token (-1 if none) */
    double e2e_ms;       /* arrival -> final event */
} engine_timings;

/* One event. All pointers are owned by the engine and stay valid until the
 * next engine_step or engine_close. Exactly one final event (FINISHED or
 * ERROR) is produced per accepted request; after it the id may be reused. */
typedef struct engine_event {
    engine_event_type type;
    char id[ENGINE_ID_MAX + 1];
    void *user;

    /* TOKEN. A request's text is the concatenation of its TOKEN events'
     * text; on abort / deadline, bytes still held back are dropped. */
    const int32_t *tokens;      /* new token ids (in practice one per step) */
    int n_tokens;
    /* Text ready to send: detokenized (never partial UTF-8), stop strings
     * removed, possibly empty (bytes held back while they might start a stop
     * string). Not NUL-terminated; may be NULL when text_len is 0. */
    const char *text;
    size_t text_len;
    /* Only when the request's params.logprobs >= 0: logprobs[i] of tokens[i],
     * and n_top alternatives per token in top_logprobs[i * n_top ...]. */
    const float *logprobs;
    const sampler_logprob *top_logprobs;
    int n_top;
    int first;                  /* 1 on the request's first TOKEN event */
    double ttft_ms;             /* first: arrival -> now */
    double itl_ms;              /* not first: ms since the previous token */

    /* FINISHED */
    engine_finish_reason reason;
    int stop_index;             /* index of the matched stop string, else -1 */
    int32_t stop_token;         /* stop token id that matched (not EOS), else -1 */
    engine_usage usage;
    engine_timings timings;
    int n_preemptions;

    /* ERROR */
    int code;                   /* INF_E* */
    const char *message;
} engine_event;

typedef struct engine_stats {
    int n_running;
    int n_waiting;              /* includes preempted ones and the inbox */
    int n_preempted_waiting;    /* waiting after a preemption */
    uint64_t n_preemptions;     /* total so far */
    int kv_blocks_used;         /* refcount > 0 */
    int kv_blocks_total;
    int kv_blocks_cached;       /* registered in the prefix cache */
    uint64_t prefix_query_tokens; /* prompt tokens looked up at admission */
    uint64_t prefix_hit_tokens;   /* of those, served from cached blocks */
    double prefix_hit_rate;       /* hit / query, 0 if none */
    uint64_t prompt_tokens_computed;   /* forward tokens at prompt positions (recomputes included) */
    uint64_t recomputed_tokens;        /* forward tokens at generated positions after a preemption */
    uint64_t generated_tokens;         /* tokens sampled */
    uint64_t n_steps;                  /* forwards run */
    uint64_t device_sampled_rows;      /* tokens sampled on the device (no logits copy) */
    uint64_t host_sampled_rows;        /* tokens sampled by the CPU sampler on copied logits */
    uint64_t n_finished, n_errors;     /* final events so far */
    uint64_t constrained_rows;         /* tokens sampled under a grammar mask */
    uint64_t constraint_compiles;      /* constraints compiled (cache misses) */
    uint64_t constraint_cache_hits;    /* constraints served compiled from the cache */
    double mask_ms;                    /* total time computing masks (beside the forward) */
    /* Throughput since the previous engine_stats call (or engine_open). */
    double prompt_tokens_per_s;
    double generated_tokens_per_s;
} engine_stats;

/* Opens model_path, creates the backend, the tokenizer and the KV pool.
 * cfg NULL: engine_config_default(). On success *out is owned by the caller
 * (engine_close). Errors name the file or the bad setting. */
int engine_open(engine **out, const engine_config *cfg, const char *model_path, inf_error *err);

/* Frees everything; requests still in flight are dropped without events.
 * NULL is a no-op. */
void engine_close(engine *e);

/* Validates and enqueues a request (everything in *req is copied). Errors,
 * with nothing enqueued and no event to follow: INF_EINVAL (bad id, empty
 * prompt, invalid params - the message names the parameter, a prompt of
 * max_model_len tokens or more, a prompt over max_num_batched_tokens with
 * chunked prefill off), INF_EEXIST (the id is still in flight). Thread-safe. */
int engine_add(engine *e, const engine_request *req, inf_error *err);

/* Asks to abort request id: it finishes with ENGINE_FINISH_ABORT at the next
 * step and frees its blocks. INF_ENOTFOUND if no such request is in flight
 * (e.g. it already had its final event). Thread-safe. */
int engine_abort(engine *e, const char *id);

/* Runs one iteration: applies adds/aborts, finishes aborted and expired
 * requests, schedules, runs one forward and samples. *events / *n_events get
 * this iteration's events (owned by the engine, valid until the next
 * engine_step or engine_close). Returns a negative code only when the engine
 * itself failed (e.g. out of memory); per-request failures are ERROR events. */
int engine_step(engine *e, const engine_event **events, int *n_events, inf_error *err);

/* 1 if any request is in flight (inbox, waiting or running). Thread-safe. */
int engine_has_work(engine *e);

/* Requests in flight (accepted, final event not yet returned). Thread-safe. */
int engine_n_inflight(engine *e);

/* Fills *st (see engine_stats; the rates cover the time since the last call). */
void engine_stats_get(engine *e, engine_stats *st);

/* Consistency check for tests: KV pool invariants (kv_pool_check over every
 * running sequence), waiting sequences hold no blocks, limits respected.
 * 0 or INF_ESTATE naming the violation. */
int engine_check_invariants(engine *e, inf_error *err);

/* Read-only access for callers (CLI, worker). Owned by the engine. */
const tokenizer *engine_tokenizer(const engine *e);
const model_desc *engine_model_desc(const engine *e);
const engine_config *engine_get_config(const engine *e); /* with defaults resolved */
const char *engine_device(const engine *e);               /* backend description */
const char *engine_backend_name(const engine *e);         /* backend in use: "cpu", "cuda" */

/* "stop", "length", "abort", "deadline" (or "none"). Static. */
const char *engine_finish_name(engine_finish_reason r);

#endif
