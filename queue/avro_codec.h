/* avro_codec.h - the inferno.v1.InferenceRequest Avro contract: decoding a
 * Kafka message value into an inf_request, encoding one, and the small schema
 * registry that lets producers with older/newer compatible schemas interoperate.
 *
 * Accepted framings (detected from the first bytes, see docs/protocol.md):
 *   Confluent wire format   0x00, 4-byte big-endian schema id, Avro binary
 *   Avro single-object      0xC3 0x01, 8-byte little-endian CRC-64-AVRO
 *                           fingerprint of the writer schema's canonical form,
 *                           Avro binary
 *   bare Avro binary        written with our current schema
 * Those prefixes cannot begin a bare message: its first field is request_id,
 * whose length byte would mean "empty" (0x00) or "negative" (0xC3).
 *
 * Untrusted input is bounded before avro-c sees it: the whole message is
 * pre-scanned against the writer schema (inf_avro_scan) so that no string,
 * array or map length can make avro-c allocate more than the message implies.
 *
 * Thread safety: a registry is built single-threaded at start, then may be
 * shared read-only by any number of threads calling inf_avro_decode/encode.
 */
#ifndef INF_AVRO_CODEC_H
#define INF_AVRO_CODEC_H

#include <avro.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define INF_REQUEST_ID_MAX 128

/* Full name of the reader schema compiled into this module. */
#define INF_AVRO_REQUEST_SCHEMA_NAME "inferno.v1.InferenceRequest"

typedef struct inf_logit_bias {
    int32_t token_id;
    float bias;
} inf_logit_bias;

typedef struct inf_kv {
    char *key;
    char *value;
} inf_kv;

/* One conversation turn (field messages). NULL = absent; role is never NULL
 * in a decoded request. tool_calls is JSON text, not parsed here. */
typedef struct inf_chat_message {
    char *role;
    char *content;
    char *name;
    char *tool_call_id;
    char *tool_calls;
    char *reasoning_content;
} inf_chat_message;

/* A decoded request. Every pointer is owned by the struct and released by
 * inf_request_free. Optional Avro unions are "has_x + x" pairs (or NULL
 * pointers for strings/arrays). */
typedef struct inf_request {
    char request_id[INF_REQUEST_ID_MAX + 1];
    char *prompt;                 /* NULL unless the prompt text was given */
    int32_t *prompt_token_ids;    /* NULL unless token ids were given */
    size_t n_prompt_token_ids;
    int32_t max_tokens;           /* 256 */
    int32_t min_tokens;           /* 0 */
    float temperature;            /* 1.0 */
    int32_t top_k;                /* -1 = disabled */
    float top_p;                  /* 1.0 */
    float min_p;                  /* 0.0 */
    float repetition_penalty;     /* 1.0 */
    float presence_penalty;       /* 0.0 */
    float frequency_penalty;      /* 0.0 */
    bool has_seed;
    int64_t seed;
    char **stop;                  /* n_stop NUL-terminated strings */
    size_t n_stop;
    int32_t *stop_token_ids;
    size_t n_stop_token_ids;
    bool ignore_eos;              /* false */
    bool has_logprobs;
    int32_t logprobs;
    inf_logit_bias *logit_bias;
    size_t n_logit_bias;
    bool has_priority;            /* overrides the topic's priority */
    int32_t priority;
    bool has_deadline_ms;
    int64_t deadline_ms;          /* Unix epoch milliseconds */
    char *reply_stream;           /* NULL = worker default */
    bool stream;                  /* true */
    inf_kv *metadata;
    size_t n_metadata;
    /* Chat requests: a conversation for the model's chat template. */
    inf_chat_message *messages;   /* NULL unless messages were given */
    size_t n_messages;
    char *tools;                  /* JSON text of the OpenAI tools array, or NULL */
    bool add_generation_prompt;   /* true */
    char *chat_template_kwargs;   /* JSON object text, or NULL */
    /* Constraints on the output; at most one is set. The JSON text of
     * response_format is not parsed here: its consumer checks it. */
    char *response_format;        /* OpenAI shape, or NULL */
    char *grammar;                /* GBNF, or NULL */
    char *regex;                  /* or NULL */
    char **choice;                /* NULL unless given; then n_choice >= 1 */
    size_t n_choice;
} inf_request;

typedef enum inf_avro_framing {
    INF_AVRO_FRAMING_BARE = 0,
    INF_AVRO_FRAMING_CONFLUENT = 1,
    INF_AVRO_FRAMING_SINGLE_OBJECT = 2
} inf_avro_framing;

/* Bounds applied to untrusted messages. Zero fields take the defaults. */
typedef struct inf_avro_limits {
    size_t max_message_bytes; /* whole Kafka value, framing included; 1 MiB */
    size_t max_string_bytes;  /* any one string/bytes value; 1 MiB */
    size_t max_items;         /* array + map items in one message; 1 Mi */
    int max_depth;            /* schema nesting while scanning; 32 */
} inf_avro_limits;

#define INF_AVRO_DEFAULT_MAX_MESSAGE (1u << 20)
#define INF_AVRO_DEFAULT_MAX_STRING (1u << 20)
#define INF_AVRO_DEFAULT_MAX_ITEMS (1u << 20)
#define INF_AVRO_DEFAULT_MAX_DEPTH 32

/* What a decode learned about a message, filled even when decoding fails
 * (as far as it got), so the caller can route an error reply. */
typedef struct inf_avro_meta {
    inf_avro_framing framing;
    int32_t schema_id;      /* Confluent id, or -1 */
    uint64_t fingerprint;   /* writer schema fingerprint, 0 if unknown */
    char request_id[INF_REQUEST_ID_MAX + 1]; /* "" unless a valid id was read */
} inf_avro_meta;

typedef struct inf_avro_registry inf_avro_registry;

/* ---- requests ---------------------------------------------------------- */

/* Sets every field to the schema default (no prompt, empty request_id). */
void inf_request_init(inf_request *req);

/* Frees everything req owns and re-initialises it to defaults. */
void inf_request_free(inf_request *req);

/* True when s is 1-128 chars of [A-Za-z0-9._:-]. */
bool inf_request_id_valid(const char *s);

/* Checks the semantic rules of the contract (valid request_id, exactly one
 * of prompt/prompt_token_ids/messages, at most one output constraint,
 * value ranges in docs/protocol.md). Returns 0,
 * INF_EFORMAT (structure) or INF_ERANGE (a parameter out of range). */
int inf_request_validate(const inf_request *req, inf_error *err);

/* ---- registry ---------------------------------------------------------- */

/* Creates a registry that knows our compiled-in schema (no Confluent id)
 * with default limits. Caller frees with inf_avro_registry_free. */
int inf_avro_registry_create(inf_avro_registry **out, inf_error *err);

void inf_avro_registry_free(inf_avro_registry *reg);

/* Replaces the limits (zero fields mean the defaults). */
void inf_avro_registry_set_limits(inf_avro_registry *reg, const inf_avro_limits *lim);

/* Current effective limits. */
inf_avro_limits inf_avro_registry_limits(const inf_avro_registry *reg);

/* Registers a writer schema (JSON text). It must resolve against our reader
 * schema (reader fields it lacks need defaults). confluent_id >= 0 also maps
 * that id to it; a negative id registers by fingerprint only. Registering an
 * already known schema just adds the id. *fingerprint_out (may be NULL) gets
 * its CRC-64-AVRO fingerprint. INF_EEXIST if the id maps to another schema. */
int inf_avro_registry_add(inf_avro_registry *reg, const char *schema_json,
                          int32_t confluent_id, uint64_t *fingerprint_out,
                          inf_error *err);

/* inf_avro_registry_add with the schema read from an .avsc file. */
int inf_avro_registry_add_file(inf_avro_registry *reg, const char *path,
                               int32_t confluent_id, uint64_t *fingerprint_out,
                               inf_error *err);

/* Fingerprint of our compiled-in reader schema. */
uint64_t inf_avro_registry_reader_fingerprint(const inf_avro_registry *reg);

/* ---- decode / encode --------------------------------------------------- */

/* Decodes one Kafka message value into *out (initialised here; on success the
 * caller owns it and calls inf_request_free; on failure it is left freed).
 * meta (may be NULL) reports framing, schema and request_id. Errors:
 * INF_EFORMAT for malformed/oversize/unknown-schema messages, INF_ERANGE for
 * out-of-range parameters, INF_ENOMEM. */
int inf_avro_decode(const inf_avro_registry *reg, const void *buf, size_t len,
                    inf_request *out, inf_avro_meta *meta, inf_error *err);

/* Encodes req with our current schema (cached in reg) and the chosen framing (confluent_id
 * is written for INF_AVRO_FRAMING_CONFLUENT, ignored otherwise). The request
 * is not validated, so tests can build invalid messages. *out is malloc'd,
 * caller frees. */
int inf_avro_encode(const inf_avro_registry *reg, const inf_request *req,
                    inf_avro_framing framing,
                    int32_t confluent_id, uint8_t **out, size_t *out_len,
                    inf_error *err);

/* Prepends the framing header for a body already encoded with a writer
 * schema of the given fingerprint/id. *out malloc'd, caller frees. */
int inf_avro_frame(inf_avro_framing framing, int32_t confluent_id,
                   uint64_t fingerprint, const void *body, size_t body_len,
                   uint8_t **out, size_t *out_len, inf_error *err);

/* Our compiled-in schema, JSON text (static storage). */
const char *inf_avro_request_schema_json(void);

/* ---- schema tools (avro_canon.c, avro_scan.c) -------------------------- */

/* CRC-64-AVRO (the Avro spec's Rabin fingerprint) of a byte string. */
uint64_t inf_avro_crc64(const void *data, size_t len);

/* Parsing Canonical Form of a parsed schema. *out malloc'd, caller frees. */
int inf_avro_canonical_form(avro_schema_t schema, char **out, inf_error *err);

/* Parses schema_json and returns its Parsing Canonical Form and/or its
 * fingerprint (either output may be NULL). */
int inf_avro_schema_fingerprint(const char *schema_json, char **canonical_out,
                                uint64_t *fingerprint_out, inf_error *err);

/* Builds (as JSON text) the reader schema restricted to what the writer
 * provides: reader record fields the writer lacks are dropped so avro-c's
 * resolver (which has no default support) accepts the pair; the caller then
 * supplies defaults itself. has_default(record_fullname, field) says which
 * dropped fields are allowed. *out malloc'd, caller frees. */
int inf_avro_project_reader(avro_schema_t writer, avro_schema_t reader,
                            bool (*has_default)(const char *record, const char *field),
                            char **out, inf_error *err);

/* Checks, by the Avro spec's resolution rules, that data written with
 * `writer` can be read as `reader` where every reader field exists in the
 * writer (as after inf_avro_project_reader); every branch of a writer union
 * must resolve. Returns 0 or INF_EFORMAT naming the offending field. */
int inf_avro_check_resolvable(avro_schema_t writer, avro_schema_t reader, inf_error *err);

/* Walks buf as an Avro binary value of `schema` without allocating anything
 * from its lengths: checks every length against the remaining bytes and the
 * limits, every union/enum index, the nesting depth, and that the value ends
 * exactly at len. If id_out is non-NULL and the top-level record has a string
 * field "request_id" of at most INF_REQUEST_ID_MAX bytes, they are copied
 * there (NUL-terminated; id_out holds INF_REQUEST_ID_MAX+1) as soon as read, even if a later part
 * fails. lim is used as given (NULL means the defaults). Returns 0 or
 * INF_EFORMAT. */
int inf_avro_scan(avro_schema_t schema, const uint8_t *buf, size_t len,
                  const inf_avro_limits *lim, char *id_out, inf_error *err);

#endif
