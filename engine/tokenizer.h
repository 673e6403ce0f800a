/* tokenizer.h - text <-> token ids, built from the tokenizer.* metadata of a GGUF file.
 *
 * Two vocabulary kinds are supported, matching llama.cpp's behaviour:
 *   - tokenizer.ggml.model = "llama": SentencePiece-style BPE driven by token
 *     scores, spaces escaped to U+2581, an optional leading space
 *     (tokenizer.ggml.add_space_prefix, default on) and byte fallback to the
 *     <0xNN> tokens.
 *   - tokenizer.ggml.model = "gpt2": byte-level BPE driven by
 *     tokenizer.ggml.merges, after the regex pre-tokenizer split named by
 *     tokenizer.ggml.pre (PCRE2, Unicode properties, JIT when available).
 *
 * A tokenizer is immutable after creation: every function taking a
 * `const tokenizer *` may be called from several threads at once. It copies
 * everything it needs, so the gguf_file may be closed right after tok_create.
 */
#ifndef INF_TOKENIZER_H
#define INF_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "gguf.h"
#include "status.h"

typedef struct tokenizer tokenizer;

/* tokenizer.ggml.model */
typedef enum tok_model {
    TOK_MODEL_SPM = 1, /* "llama" */
    TOK_MODEL_BPE = 2  /* "gpt2" */
} tok_model;

/* tokenizer.ggml.token_type values (llama.cpp numbering). */
typedef enum tok_type {
    TOK_TYPE_NORMAL = 1,
    TOK_TYPE_UNKNOWN = 2,
    TOK_TYPE_CONTROL = 3,
    TOK_TYPE_USER_DEFINED = 4,
    TOK_TYPE_UNUSED = 5,
    TOK_TYPE_BYTE = 6
} tok_type;

/* tok_create_ex flags */
enum {
    /* An unknown tokenizer.ggml.pre falls back to the "default" split instead
     * of failing; tok_pre_fallback() then returns 1 so the caller can warn. */
    TOK_CREATE_PRE_FALLBACK = 1
};

/* Decode flags (tok_piece, tok_decode, tok_stream_create). */
enum {
    /* Render control/unknown tokens as their text (e.g. "<s>"); by default
     * they decode to nothing. User-defined tokens always render their text. */
    TOK_DECODE_SPECIAL = 1,
    /* Drop one leading space of the output if this vocabulary adds a space
     * prefix when encoding (SPM), so decode(encode(x)) == x. */
    TOK_DECODE_STRIP_SPACE = 2
};

/* Builds a tokenizer from f's tokenizer.* metadata. Fails with
 * INF_EUNSUPPORTED for other tokenizer models (the message names it) and for
 * an unknown tokenizer.ggml.pre, INF_EFORMAT for inconsistent metadata. On
 * success *out is owned by the caller (tok_free). */
int tok_create(tokenizer **out, const gguf_file *f, inf_error *err);

/* As tok_create, with TOK_CREATE_* flags. */
int tok_create_ex(tokenizer **out, const gguf_file *f, int flags, inf_error *err);

/* Frees the tokenizer. NULL is a no-op. */
void tok_free(tokenizer *t);

/* ---- vocabulary facts ------------------------------------------------------ */

int32_t tok_n_vocab(const tokenizer *t);
tok_model tok_model_kind(const tokenizer *t);
/* The pre-tokenizer in use ("default", "llama3", ...; "" for SPM). Owned by t. */
const char *tok_pre_name(const tokenizer *t);
/* 1 if an unknown pre name was replaced by "default" (TOK_CREATE_PRE_FALLBACK). */
int tok_pre_fallback(const tokenizer *t);

/* Special ids, -1 when the vocabulary has none. */
int32_t tok_bos(const tokenizer *t);
int32_t tok_eos(const tokenizer *t);
int32_t tok_eot(const tokenizer *t); /* tokenizer.ggml.eot_token_id */
int32_t tok_unk(const tokenizer *t);
int32_t tok_pad(const tokenizer *t);
/* Whether encode(add_special=1) prepends BOS / appends EOS. */
int tok_add_bos(const tokenizer *t);
int tok_add_eos(const tokenizer *t);
/* Whether SPM encoding prefixes a space (always 0 for BPE). */
int tok_add_space_prefix(const tokenizer *t);

/* 1 if id ends generation (EOS or EOT). */
int tok_is_eog(const tokenizer *t, int32_t id);

/* Token type of id (TOK_TYPE_*), or 0 if id is out of range. */
int tok_token_type(const tokenizer *t, int32_t id);

/* The raw vocabulary text of id (as stored in the GGUF: U+2581 for spaces in
 * SPM, byte-mapped characters in BPE). Owned by t; NULL if id is out of range. */
const char *tok_token_text(const tokenizer *t, int32_t id, size_t *len);

/* The id whose vocabulary text is exactly text[0..len), or -1. */
int32_t tok_find(const tokenizer *t, const char *text, size_t len);

/* ---- encoding ------------------------------------------------------------- */

/* Tokenizes text[0..len) (bytes, normally UTF-8). add_special adds BOS/EOS as
 * the vocabulary asks. parse_special recognises the texts of control and
 * unknown tokens in the input; user-defined tokens are always recognised (as
 * llama.cpp does). Special texts are matched leftmost-longest; the pieces
 * between them are encoded normally. On success *ids is malloc'd (caller
 * frees; NULL when *n_ids is 0). Invalid UTF-8 is accepted: SPM gives every
 * byte outside a valid character its byte token (it never takes the bytes
 * after it, unlike llama.cpp), BPE treats each bad byte as U+FFFD (as
 * llama.cpp). */
int tok_encode(const tokenizer *t, const char *text, size_t len, int add_special,
               int parse_special, int32_t **ids, size_t *n_ids, inf_error *err);

/* ---- decoding ------------------------------------------------------------- */

/* The bytes one token decodes to (TOK_DECODE_SPECIAL honoured; STRIP_SPACE
 * ignored). Points into t; may be empty and may be a partial UTF-8 sequence.
 * INF_ERANGE for an id outside the vocabulary. */
int tok_piece(const tokenizer *t, int32_t id, int flags, const char **bytes, size_t *len,
              inf_error *err);

/* Concatenated raw bytes of ids (TOK_DECODE_* flags). *out is malloc'd and
 * NUL-terminated (caller frees); it is not repaired if the ids end inside a
 * UTF-8 sequence (use tok_stream for that). */
int tok_decode(const tokenizer *t, const int32_t *ids, size_t n, int flags, char **out,
               size_t *out_len, inf_error *err);

/* ---- streaming detokenizer -------------------------------------------------- */

/* Fed one id at a time, returns only complete, valid UTF-8: bytes of a
 * character split across tokens are held back until it completes. An invalid
 * sequence becomes U+FFFD (one per maximal invalid subpart, as Unicode
 * recommends); tok_stream_finish turns a still-incomplete tail into U+FFFD.
 * For valid UTF-8 the concatenated output equals tok_decode with the same
 * flags. Not thread-safe; one per generation. */
typedef struct tok_stream tok_stream;

/* Creates a stream over t (which must outlive it) with TOK_DECODE_* flags. */
int tok_stream_create(tok_stream **out, const tokenizer *t, int flags, inf_error *err);
void tok_stream_free(tok_stream *s);
/* Forgets held bytes and the leading-space state, for reuse. */
void tok_stream_reset(tok_stream *s);

/* Adds id; *out and *out_len receive the bytes now ready (possibly none). *out
 * points into s and stays valid until the next call on s. */
int tok_stream_push(tok_stream *s, int32_t id, const char **out, size_t *out_len,
                    inf_error *err);

/* Flushes held bytes (as U+FFFD) and resets s. Same output convention. */
int tok_stream_finish(tok_stream *s, const char **out, size_t *out_len, inf_error *err);

#endif
