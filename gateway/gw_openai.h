/* gw_openai.h - the OpenAI request bodies the gateway accepts and the
 * response bodies it writes (OpenAI API reference shapes), independent of
 * HTTP and of the queue so they can be tested alone.
 *
 * Parsing: gw_params_parse validates a /v1/completions or
 * /v1/chat/completions body and fills a gw_params (owned strings, freed by
 * gw_params_free). Unknown parameters are ignored (as OpenAI does); a known
 * one with an invalid value fails with HTTP 400 and an error naming it
 * (gw_apierr.param). Extensions: vLLM's top_k, min_p, repetition_penalty,
 * min_tokens, ignore_eos, stop_token_ids, guided_regex / guided_choice /
 * guided_grammar, chat_template_kwargs, add_generation_prompt, and priority
 * (0 high .. 2 low, or "high" | "normal" | "low").
 *
 * Writing: gw_fmt_* append to a gw_buf; the caller owns the buffer. All
 * functions are pure (no globals, no locks); any thread.
 */
#ifndef INF_GW_OPENAI_H
#define INF_GW_OPENAI_H

#include <stddef.h>
#include <stdint.h>

#include "avro_codec.h"
#include "gw_buf.h"
#include "status.h"

typedef enum gw_api { GW_API_COMPLETIONS = 0, GW_API_CHAT = 1 } gw_api;

/* An error as OpenAI reports it: HTTP status and the error object. */
typedef struct gw_apierr {
    int status;        /* 400, 401, 404, 413, 429, 500, 503, 504 */
    char type[32];     /* invalid_request_error | authentication_error | rate_limit_error | server_error | ... */
    char param[64];    /* "" = null */
    char code[48];     /* "" = null */
    char message[512];
} gw_apierr;

/* Fills e and returns -1 (so callers can `return gw_apierr_set(...)`). */
int gw_apierr_set(gw_apierr *e, int status, const char *type, const char *param, const char *code,
                  const char *fmt, ...) __attribute__((format(printf, 6, 7)));

typedef struct gw_msg {
    char *role, *content, *name, *tool_call_id, *tool_calls, *reasoning_content; /* NULL = absent */
} gw_msg;

typedef struct gw_params {
    gw_api api;
    char *model;
    /* completions: one or more prompts (a batch), text or token ids */
    char **prompts;
    int32_t **prompt_ids;  /* per prompt: NULL, or n_prompt_ids[i] ids */
    size_t *n_prompt_ids;
    size_t n_prompts;
    int echo;
    /* chat */
    gw_msg *messages;
    size_t n_messages;
    char *tools;                /* JSON text or NULL */
    char *chat_template_kwargs; /* JSON text or NULL */
    int add_generation_prompt;  /* default 1 */
    /* constraints */
    char *response_format;      /* JSON text or NULL (type "text" is dropped) */
    char *grammar, *regex;
    char **choice;
    size_t n_choice;
    /* sampling */
    int n;                      /* 1..128 */
    int stream, include_usage;
    int max_tokens;             /* resolved: completions 16, chat 256 when not given */
    float temperature, top_p, min_p, repetition_penalty, presence_penalty, frequency_penalty;
    int top_k, min_tokens, ignore_eos;
    int has_seed;
    int64_t seed;
    char **stop;
    size_t n_stop;
    int32_t *stop_token_ids;
    size_t n_stop_token_ids;
    inf_logit_bias *logit_bias;
    size_t n_logit_bias;
    int logprobs;               /* -1: none; else top alternatives asked for (0..20) */
    int priority;               /* -1: not in the body */
    char *user;
} gw_params;

/* Parses and validates body[0..len) for api. 0, or -1 with *e filled
 * (status 400: bad JSON, a missing or invalid parameter). *p is freed on
 * failure. */
int gw_params_parse(gw_api api, const char *body, size_t len, gw_params *p, gw_apierr *e);

void gw_params_free(gw_params *p);

/* "high" | "normal" | "low" | "0".."2" -> 0..2; -1 otherwise. */
int gw_priority_parse(const char *s);

/* Builds the queue request of one leg: prompt (or messages) prompt_index,
 * the sampling parameters, request_id, deadline_ms (0: none) and
 * metadata {"user": ...} when user was given. *r is initialised here and
 * owned by the caller (inf_request_free). INF_ENOMEM or 0. */
int gw_params_to_request(const gw_params *p, size_t prompt_index, const char *request_id, int64_t deadline_ms,
                         inf_request *r, inf_error *err);

/* The chat fields of a leg (messages, tools, chat_template_kwargs,
 * add_generation_prompt) and the constraints (response_format, grammar,
 * regex, choice) into r (gw_chat.c). INF_ENOMEM or 0. */
int gw_chat_to_request(const gw_params *p, inf_request *r, inf_error *err);

/* ---- responses ---------------------------------------------------------- */

/* What every chunk / body of one HTTP response shares. */
typedef struct gw_resp {
    gw_api api;
    const char *id;       /* "chatcmpl-..." / "cmpl-..." */
    long long created;    /* Unix seconds */
    const char *model;
    int include_usage;    /* stream_options.include_usage: "usage": null in every chunk, totals at the end */
    int logprobs;         /* -1: no logprobs objects */
} gw_resp;

/* Token details of one reply entry (or a whole answer). */
typedef struct gw_tokens {
    const char *text;     /* text of these tokens (one entry's text delta) */
    size_t text_len;
    const int32_t *ids;
    const float *logprobs; /* NULL or n floats */
    int n;
    long text_offset;     /* completions logprobs: offset of text in the whole completion */
} gw_tokens;

/* The error body {"error":{"message","type","param","code"}}. */
void gw_fmt_error(gw_buf *b, const gw_apierr *e);

/* "data: {...}\n\n" for choice index: the first chat chunk (delta.role =
 * "assistant", content ""). */
void gw_fmt_chunk_role(gw_buf *b, const gw_resp *r, int index);

/* A content chunk: delta.content / text = t's text, logprobs of t when asked. */
void gw_fmt_chunk_text(gw_buf *b, const gw_resp *r, int index, const gw_tokens *t);

/* The last chunk of a choice: empty delta (chat) or text "" with finish_reason. */
void gw_fmt_chunk_finish(gw_buf *b, const gw_resp *r, int index, const char *finish_reason);

/* The usage chunk (choices [], usage totals) sent before [DONE] when
 * include_usage is set. */
void gw_fmt_chunk_usage(gw_buf *b, const gw_resp *r, int prompt_tokens, int completion_tokens);

/* "data: [DONE]\n\n" */
void gw_fmt_done(gw_buf *b);

/* One choice of a non-streamed answer. */
typedef struct gw_choice {
    gw_tokens tok;        /* the whole answer */
    const char *finish_reason;
} gw_choice;

/* The whole non-streamed body: chat.completion or text_completion. */
void gw_fmt_body(gw_buf *b, const gw_resp *r, const gw_choice *choices, int n_choices, int prompt_tokens,
                 int completion_tokens);

/* OpenAI's finish_reason for the worker's (stop | length | abort | deadline). */
const char *gw_finish_reason(const char *worker_reason);

#endif
