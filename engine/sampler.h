/* sampler.h - per-request token sampling: logits in, token out.
 *
 * Parameters follow vLLM / OpenAI semantics (see struct sampler_params). A
 * `sampler` holds one request's state: its own RNG (so a seeded request gives
 * the same tokens whatever else shares the batch), the token counts the
 * penalties need, and scratch buffers. It is not thread-safe; use one per
 * request (different samplers may run on different threads).
 *
 * Per step the caller does:
 *   sampler_sample(s, logits, n_vocab, &res, err);   pick a token
 *   sampler_accept(s, res.token, err);               record it (sample does not)
 *   sampler_check_finish(s, res.token, &stop_tok);   stop / length / go on
 * and feeds the detokenized text through a stop_matcher (stopstr.h) for stop
 * strings.
 */
#ifndef INF_SAMPLER_H
#define INF_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#include "sampler_mod.h"
#include "status.h"

#define SAMPLER_MAX_STOP 16           /* stop strings per request */
#define SAMPLER_MAX_STOP_LEN 256      /* bytes per stop string */
#define SAMPLER_MAX_STOP_TOKENS 1024  /* stop token ids per request */
#define SAMPLER_MAX_LOGIT_BIAS 4096   /* logit_bias entries per request */
#define SAMPLER_MAX_LOGPROBS 20       /* top-N logprobs */
#define SAMPLER_TEMPERATURE_MAX 100.0f
#define SAMPLER_REPETITION_MAX 10.0f
/* A request samples on the device only while its modifier list has at most
 * this many entries (sampler_device_ok): beyond that, uploading the list
 * would cost more than copying the logits row down. */
#define SAMPLER_DEVICE_MAX_MODS 16384
/* Temperatures below this are treated as greedy (as vLLM does), since
 * logits / T would overflow. */
#define SAMPLER_GREEDY_EPS 1e-5f

typedef struct sampler_logit_bias {
    int32_t token; /* 0 <= token < n_vocab; each token at most once */
    float bias;    /* [-100, 100], added to the logit */
} sampler_logit_bias;

/* Request parameters. The three lists are heap memory owned by the struct:
 * fill them with the sampler_params_add_* helpers (or malloc them yourself)
 * and release them with sampler_params_free. Counts of 0 mean "empty" and the
 * pointer may then be NULL. */
typedef struct sampler_params {
    /* 0 = greedy (argmax, ties to the lowest id); otherwise logits are divided
     * by it before the filters. Range [0, 100]. Default 1. */
    float temperature;
    /* Keep only the k most likely tokens. <= 0 (-1 or 0) = off; >= n_vocab is
     * also off in effect. Range: -1 or >= 0. Default -1. */
    int top_k;
    /* Nucleus: keep the smallest set of most likely tokens whose probability
     * (after temperature and top_k, renormalized) sums to >= top_p; a token is
     * kept iff the mass of the tokens ranked above it is < top_p. Range (0, 1];
     * 1 = off. Default 1. */
    float top_p;
    /* Keep tokens whose probability (after temperature) is >= min_p times the
     * top token's probability. Range [0, 1]; 0 = off. Default 0. */
    float min_p;
    /* HF / llama.cpp / vLLM style, over prompt + generated tokens: a logit > 0
     * is divided by it, a logit <= 0 multiplied by it. Range (0, 10]; 1 = off.
     * Default 1. */
    float repetition_penalty;
    /* OpenAI style, over generated tokens only: logit -= presence_penalty if
     * the token occurred at all, logit -= frequency_penalty * count. Range
     * [-2, 2] each; 0 = off. Default 0. */
    float presence_penalty;
    float frequency_penalty;
    /* OpenAI logit_bias: bias added to the token's logit after penalties. */
    sampler_logit_bias *logit_bias;
    size_t n_logit_bias;
    /* has_seed != 0: the request's RNG is seeded from `seed`, so the same
     * seed, parameters and logits give the same tokens. Otherwise the caller's
     * entropy (sampler_create) seeds it. Default: no seed. */
    int has_seed;
    uint64_t seed;
    /* Extra token ids that end generation ("stop", reported as the stop
     * reason). 0 <= id < n_vocab, at most SAMPLER_MAX_STOP_TOKENS. */
    int32_t *stop_token_ids;
    size_t n_stop_token_ids;
    /* Stop strings (NUL-terminated, non-empty, <= SAMPLER_MAX_STOP_LEN bytes,
     * at most SAMPLER_MAX_STOP); matched on the detokenized text by a
     * stop_matcher, output cut before the match. */
    char **stop;
    size_t n_stop;
    /* Nonzero: EOS neither ends generation nor is masked by min_tokens. */
    int ignore_eos;
    /* Until this many tokens were generated, EOS (unless ignore_eos) and the
     * stop token ids get logit -inf and do not end generation, and stop
     * strings are not matched. Range [0, max_tokens]. Default 0. */
    int min_tokens;
    /* Generation ends with "length" after this many tokens. Range >= 1.
     * Default 16 (OpenAI's default). */
    int max_tokens;
    /* Number of top alternatives to report: -1 = none (and the sampled
     * token's logprob is not computed), 0 = only the sampled token's logprob,
     * 1..20 = also the N most likely tokens. Default -1. */
    int logprobs;
} sampler_params;

/* Returns the defaults listed above, with empty lists (nothing to free). */
sampler_params sampler_params_default(void);

/* Checks every field against the ranges above for a vocabulary of n_vocab
 * tokens; on failure the message names the parameter, its allowed range and
 * the value, e.g. "top_p must be in (0, 1], got 1.5". NaN / inf are rejected. */
int sampler_params_validate(const sampler_params *p, int n_vocab, inf_error *err);

/* Deep copy: *dst gets its own lists (free with sampler_params_free). dst's
 * previous contents are overwritten, not freed. On failure dst is empty. */
int sampler_params_copy(sampler_params *dst, const sampler_params *src, inf_error *err);

/* Frees the lists and leaves *p with empty lists (other fields kept). NULL ok. */
void sampler_params_free(sampler_params *p);

/* Append to the lists (copying s); ranges are checked by validate, except
 * that the list-length limits and empty / overlong stop strings are refused here. */
int sampler_params_add_stop(sampler_params *p, const char *s, inf_error *err);
int sampler_params_add_stop_token(sampler_params *p, int32_t token, inf_error *err);
int sampler_params_add_logit_bias(sampler_params *p, int32_t token, float bias,
                                  inf_error *err);

typedef struct sampler_logprob {
    int32_t token;
    float logprob;
} sampler_logprob;

/* What sampler_sample chose. Logprobs are log-softmax of the RAW logits as
 * passed in (before penalties, bias, masks and temperature): that is the
 * model's own distribution, which is what OpenAI clients compare across
 * requests (vLLM's default "raw_logprobs" choice). */
typedef struct sampler_result {
    int32_t token;
    float logprob; /* of `token`; NAN when params.logprobs < 0 */
    int n_top;     /* = min(params.logprobs, n_vocab), 0 when logprobs <= 0 */
    sampler_logprob top[SAMPLER_MAX_LOGPROBS]; /* most likely first, ties by id */
} sampler_result;

typedef struct sampler sampler;

/* Creates a sampler for one request. p is validated and deep-copied (the
 * caller keeps ownership of p). eos_ids: the model's end-of-sequence token
 * id(s) (may be empty). prompt: the prompt tokens, used only by the
 * repetition penalty (not kept). entropy seeds the RNG when p->has_seed is 0;
 * pass fresh randomness (e.g. getrandom) per request. Free with sampler_free. */
int sampler_create(sampler **out, const sampler_params *p, int n_vocab, const int32_t *eos_ids,
                   size_t n_eos, const int32_t *prompt, size_t n_prompt, uint64_t entropy,
                   inf_error *err);

/* Frees the sampler. NULL is a no-op. */
void sampler_free(sampler *s);

/* The sampler's copy of the parameters (owned by the sampler). */
const sampler_params *sampler_get_params(const sampler *s);

/* Number of tokens accepted so far. */
int sampler_n_generated(const sampler *s);

/* Picks the next token from logits[n_vocab] (n_vocab must match create).
 * Applies, in order: repetition / frequency / presence penalties, logit bias,
 * the min_tokens mask, temperature, top_k, top_p, min_p, then draws one
 * uniform number u from the request's RNG (also when greedy, so every step
 * uses exactly one draw) and samples (or takes the argmax when greedy).
 * The filters keep a prefix of the total order "larger logit first, ties to
 * the lower id" (so on exact ties at a top_k / top_p cut the lower ids stay);
 * the draw walks the kept tokens in id order and takes the first whose
 * cumulative weight exceeds u times the kept total (the device kernel does
 * the same, see sampler_device_row).
 * logits is scratch: on return it holds the logits after penalties, bias and
 * mask (temperature and the filters are not applied to the array).
 * Logits may be -inf (masked); NaN or +inf is an INF_EINVAL error, as is a
 * step where every token is masked. Does not update the history: call
 * sampler_accept with the token actually used. Cost O(n_vocab) plus
 * O(k log k) for top_k = k; top_p without top_k buckets the tokens by logit
 * and ranks only those in the bucket where the nucleus ends (the sampler then
 * keeps 8 * n_vocab bytes of scratch). No full sort in any case. */
int sampler_sample(sampler *s, float *logits, int n_vocab, sampler_result *out, inf_error *err);

/* The candidate set the next sampler_sample call would draw from, without
 * drawing: applies the same steps to logits (modified as by sample), writes
 * the kept token ids and their renormalized probabilities (both arrays of
 * n_vocab capacity, order unspecified) and *n_out. Greedy gives one token
 * with probability 1. For tests and for explaining a choice. */
int sampler_candidates(sampler *s, float *logits, int n_vocab, int32_t *ids, float *probs,
                       int *n_out, inf_error *err);

/* ---- device sampling (the CUDA backend samples; see cuda_backend.h) ----
 *
 * Per step, instead of sampler_sample on host logits:
 *   if every row's sampler_device_ok(s):
 *     sampler_device_row(s, &row, mods, cap, err)   per row (draws u)
 *     backend_cuda_sample(...)                      all rows at once
 *     sampler_accept(s, token, err)                 as usual
 * Same modifier list, same arithmetic (sampler_mod.h), same u, same filters
 * and draw order: a seeded request gives the same tokens on either path, up
 * to float rounding of the sums (and the logits themselves). */

/* Upper bound of the modifier entries this step needs (history when
 * penalties are on + logit_bias + EOS / stop ids while min_tokens masks). */
size_t sampler_mods_bound(const sampler *s);

/* 1 if this step can be sampled on the device: its modifier list is at most
 * SAMPLER_DEVICE_MAX_MODS entries. Every parameter (greedy, temperature,
 * top_k, top_p, min_p, penalties, logit bias, min_tokens, logprobs up to 20)
 * is supported there; only the list length (long prompts with a repetition
 * penalty) sends a step back to the host. */
int sampler_device_ok(const sampler *s);

/* Fills *row and mods[0..row->n_mod) (cap >= sampler_mods_bound(s) entries,
 * caller-owned) with this step exactly as sampler_sample would apply it, and
 * draws row->u from the request's RNG: one draw, as sampler_sample makes. The
 * history is not updated: call sampler_accept with the token the device
 * picked. INF_EINVAL when cap is too small (nothing drawn then). */
int sampler_device_row(sampler *s, sampler_row *row, sampler_mod *mods, size_t cap,
                       inf_error *err);

/* Constrained generation (grammar.h): bits[(n_vocab + 31) / 32], bit t set
 * when token t is allowed (bit t % 32 of word t / 32). The sampler keeps the
 * pointer (borrowed; the caller owns the buffer and may change its contents
 * between steps) and, at every later sampler_sample / sampler_candidates, sets
 * the logit of every disallowed token to -inf after the modifiers (penalties,
 * bias, min_tokens), so temperature, top_k / top_p / min_p and the draw see
 * only allowed tokens. Raw logprobs stay those of the unmasked logits. NULL
 * removes the mask. The device path takes the same bits per row
 * (backend_cuda_sample's masks). */
void sampler_set_allowed(sampler *s, const uint32_t *bits);
const uint32_t *sampler_get_allowed(const sampler *s);

/* Records that `token` was generated (counts for the penalties and for
 * min_tokens / max_tokens). 0 <= token < n_vocab. */
int sampler_accept(sampler *s, int32_t token, inf_error *err);

typedef enum sampler_finish {
    SAMPLER_FINISH_NONE = 0,   /* keep generating */
    SAMPLER_FINISH_STOP = 1,   /* EOS or a stop token id ("stop") */
    SAMPLER_FINISH_LENGTH = 2  /* max_tokens reached ("length") */
} sampler_finish;

/* Whether the just-accepted `token` ends generation. Call after
 * sampler_accept(s, token). Before min_tokens tokens were generated nothing
 * stops. Otherwise EOS (unless ignore_eos) or a stop token id -> STOP, checked
 * before max_tokens -> LENGTH. *stop_token (may be NULL) gets the token id when
 * a stop token id matched (vLLM's stop_reason), else -1. */
sampler_finish sampler_check_finish(const sampler *s, int32_t token, int32_t *stop_token);

/* "stop", "length" or NULL for NONE (static strings). */
const char *sampler_finish_name(sampler_finish f);

#endif
