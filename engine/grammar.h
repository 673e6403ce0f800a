/* grammar.h - constrained generation: GBNF grammars compiled to a byte-level
 * pushdown automaton, a stack-set matcher over it, and per-token masks.
 *
 * Format: llama.cpp's GBNF (rules `name ::= alternatives`, "literals" with
 * \n \r \t \\ \" \[ \] \xHH \uHHHH \UHHHHHHHH escapes, [character classes]
 * with ranges and ^ negation, `.` for any character, ( groups ), `|`,
 * `*` `+` `?` `{m}` `{m,}` `{m,n}` `{,n}`, # comments; a rule ends at a
 * newline outside parentheses; the start rule is `root`). Left-recursive
 * grammars are refused (the matcher expands rules depth first).
 *
 * Compilation turns every character class into UTF-8 byte ranges, so the
 * automaton reads bytes: a character split across two tokens is matched byte
 * by byte, and only valid UTF-8 (no surrogates, no overlongs) can be
 * produced. A matcher state is a set of stacks of element positions (the top
 * of each stack is a byte-set element); a byte advances every stack whose top
 * accepts it.
 *
 * Token masks (grammar_vocab + grammar_matcher_fill_mask): the vocabulary's
 * token byte strings (tok_piece: byte-fallback <0xNN> tokens are one byte,
 * byte-level BPE tokens their decoded bytes) are arranged in a trie, so a mask
 * is one depth-first walk that advances the state once per trie edge and
 * prunes every subtree the state rejects, instead of |V| separate matches.
 * End-of-generation tokens are allowed exactly where the grammar can end.
 * Masks are cached per grammar by matcher state (many requests share a
 * grammar and its states recur, e.g. "inside a string").
 *
 * Ownership and threads: a grammar is immutable after grammar_parse except
 * for its mask cache, which a mutex guards; share one grammar between many
 * matchers on any threads (grammar_ref / grammar_free count references). A
 * grammar_vocab is immutable. A matcher belongs to one request and is not
 * thread-safe.
 */
#ifndef INF_GRAMMAR_H
#define INF_GRAMMAR_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"
#include "tokenizer.h"

/* Limits that keep hostile input bounded. */
#define GRAMMAR_MAX_TEXT (1u << 20)     /* bytes of GBNF text */
#define GRAMMAR_MAX_ELEMS (1u << 20)    /* compiled elements (after repetition expansion) */
#define GRAMMAR_MAX_REPEAT 10000        /* m and n of {m,n} */
#define GRAMMAR_MAX_STACKS 4096         /* stacks in one matcher state */
#define GRAMMAR_MAX_DEPTH 1024          /* frames in one stack */
#define GRAMMAR_MAX_STATE_WORDS (1u << 18) /* stack entries in one state, all stacks together */

typedef struct grammar grammar;

/* Parses and compiles GBNF text[0..len) (len 0 = strlen). On success *out has
 * one reference (grammar_free). Errors: INF_EFORMAT with "grammar: line L,
 * column C: <what>" for syntax errors, INF_EINVAL for an undefined rule, a
 * missing root rule, a rule defined twice or left recursion (the message
 * names the rule), INF_ERANGE past the limits above, INF_ENOMEM. */
int grammar_parse(grammar **out, const char *text, size_t len, inf_error *err);

/* Adds a reference; returns g. Thread-safe. */
grammar *grammar_ref(grammar *g);

/* Drops a reference; the last one frees. NULL is a no-op. Thread-safe. */
void grammar_free(grammar *g);

/* Compiled size (elements, rules), for tests and logs. */
size_t grammar_n_elems(const grammar *g);
size_t grammar_n_rules(const grammar *g);

/* 1 if bytes s[0..n) are a complete sentence of g, 0 if not; negative on
 * failure (out of memory, a state past GRAMMAR_MAX_STACKS). For tests. */
int grammar_accepts(const grammar *g, const char *s, size_t n, inf_error *err);

/* ---- matcher ---------------------------------------------------------------- */

typedef struct grammar_matcher grammar_matcher;

/* A matcher at the start of g (takes a reference on g). */
int grammar_matcher_create(grammar_matcher **out, grammar *g, inf_error *err);
void grammar_matcher_free(grammar_matcher *m);

/* Feeds bytes. 0: accepted (the state advanced); INF_EINVAL "grammar rejects
 * byte 0xNN at output offset K" with the state unchanged; INF_ERANGE when the
 * state would pass GRAMMAR_MAX_STACKS or GRAMMAR_MAX_DEPTH; INF_ENOMEM. */
int grammar_matcher_accept_bytes(grammar_matcher *m, const void *bytes, size_t n, inf_error *err);

/* 1 if what was fed so far is a complete sentence. */
int grammar_matcher_can_end(const grammar_matcher *m);

/* 1 if it is complete and nothing can follow (only end-of-generation). */
int grammar_matcher_done(const grammar_matcher *m);

/* Bytes accepted so far. */
size_t grammar_matcher_n_bytes(const grammar_matcher *m);

/* ---- token masks ------------------------------------------------------------- */

typedef struct grammar_vocab grammar_vocab;

typedef struct grammar_vocab_config {
    /* 1 when the output text drops one leading space of the first token
     * (TOK_DECODE_STRIP_SPACE), so the grammar sees the bytes the caller sees. */
    int strip_space;
    /* The tokens that end generation (allowed where the grammar can end);
     * NULL: those tok_is_eog names. */
    const int32_t *eog;
    size_t n_eog;
} grammar_vocab_config;

/* Builds the token trie of t (nothing of t is kept: the bytes are copied).
 * Control, unknown and unused tokens and tokens that decode to nothing are
 * never allowed, except the end-of-generation tokens where the grammar can
 * end. cfg NULL: all defaults (0 / NULL). */
int grammar_vocab_create(grammar_vocab **out, const tokenizer *t, const grammar_vocab_config *cfg,
                         inf_error *err);
void grammar_vocab_free(grammar_vocab *v);
int32_t grammar_vocab_n(const grammar_vocab *v);

/* 32-bit words in a mask of v: (n_vocab + 31) / 32. Bit t of word t / 32 is
 * (1u << (t % 32)). */
size_t grammar_mask_words(const grammar_vocab *v);

/* Writes the allowed-token bitmask of m's current state into
 * bits[grammar_mask_words(v)]. Uses and fills the grammar's mask cache.
 * *n_allowed (may be NULL) gets the number of allowed tokens; 0 means the
 * state is a dead end (cannot happen for a grammar whose every rule can
 * finish, but a grammar like `root ::= "a" x` `x ::= x-free-loop` might). */
int grammar_matcher_fill_mask(grammar_matcher *m, const grammar_vocab *v, uint32_t *bits,
                              int *n_allowed, inf_error *err);

/* Advances m over token id's bytes (the first token of an output with
 * strip_space loses its leading space). An end-of-generation token is
 * accepted only where the grammar can end and leaves the state as it is.
 * INF_EINVAL naming the token when the grammar rejects it. */
int grammar_matcher_accept_token(grammar_matcher *m, const grammar_vocab *v, int32_t id,
                                 inf_error *err);

/* The bytes token id contributes at output offset `at` (0: first token). */
const uint8_t *grammar_vocab_bytes(const grammar_vocab *v, int32_t id, size_t at, size_t *len);

#endif
