/* constraint.h - what a request may constrain its output to, translated to
 * one GBNF grammar (grammar.h) and compiled once per distinct content.
 *
 * Kinds: a GBNF grammar, a JSON Schema (jsonschema.h), any JSON object, a
 * regular expression matched in full (regex.h), a choice among strings (a
 * trie, so shared prefixes are one path), or an OpenAI response_format JSON
 * text ({"type":"text"} constrains nothing, {"type":"json_object"},
 * {"type":"json_schema","json_schema":{"name":...,"schema":{...},
 * "strict":true}}).
 *
 * Errors name the kind and what is wrong and where ("json schema: at
 * /properties/age: ...", "regex: at offset 3: ...", "grammar: line 2, column
 * 5: ..."); they are INF_EINVAL, INF_EFORMAT, INF_EUNSUPPORTED or INF_ERANGE
 * and are meant to be shown to the requester as they are.
 */
#ifndef INF_CONSTRAINT_H
#define INF_CONSTRAINT_H

#include <stddef.h>
#include <stdint.h>

#include "grammar.h"
#include "status.h"

typedef enum constraint_kind {
    CONSTRAINT_NONE = 0,
    CONSTRAINT_GRAMMAR = 1,         /* text: GBNF */
    CONSTRAINT_JSON_SCHEMA = 2,     /* text: a JSON Schema document */
    CONSTRAINT_JSON_OBJECT = 3,     /* any JSON object; text unused */
    CONSTRAINT_REGEX = 4,           /* text: a regular expression, matched in full */
    CONSTRAINT_CHOICE = 5,          /* exactly one of choices[0..n_choices) */
    CONSTRAINT_RESPONSE_FORMAT = 6  /* text: OpenAI response_format JSON */
} constraint_kind;

/* Borrowed pointers; nothing is kept after the call that takes it. */
typedef struct constraint_spec {
    constraint_kind kind;
    const char *text;
    size_t len;                 /* 0: strlen(text) */
    const char *const *choices; /* CHOICE: NUL-terminated UTF-8 strings */
    size_t n_choices;           /* >= 1 for CHOICE */
} constraint_spec;

/* "grammar", "json_schema", ... (static). */
const char *constraint_kind_name(constraint_kind k);

/* The GBNF text for spec (malloc'd, caller frees), or *gbnf = NULL when the
 * spec constrains nothing (NONE, response_format {"type":"text"}). */
int constraint_to_gbnf(const constraint_spec *spec, char **gbnf, inf_error *err);

/* Compiled grammars by content hash: many requests share a schema, and
 * compiling it (and the masks its grammar caches) is paid once. Thread-safe. */
typedef struct constraint_cache constraint_cache;

/* At most max_entries grammars are kept (0: 64); the oldest goes first. */
int constraint_cache_create(constraint_cache **out, size_t max_entries, inf_error *err);
void constraint_cache_free(constraint_cache *c);

/* The compiled grammar of spec: *out is a new reference (grammar_free), or
 * NULL when the spec constrains nothing. Errors as constraint_to_gbnf and
 * grammar_parse (failed compilations are not cached). */
int constraint_cache_get(constraint_cache *c, const constraint_spec *spec, grammar **out, inf_error *err);

/* Lookups served from the cache / compiled, since create. */
void constraint_cache_counts(constraint_cache *c, uint64_t *hits, uint64_t *misses);

#endif
