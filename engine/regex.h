/* regex.h - regular expressions -> GBNF rules (grammar.h), so a regex
 * constraint runs on the same automaton as grammars and schemas.
 *
 * Syntax (Python re / ECMAScript subset): literals, `.` (any character but
 * \n), [classes] with ranges, negation and escapes, \d \w \s \D \W \S (ASCII
 * meanings; \D \W \S are their ASCII complements, so every generated string
 * also matches under Python's Unicode rules), \n \t \r \f \v \0 \xHH \uHHHH
 * and escaped punctuation, groups ( ) (?: ) (?P<n> ) (?<n> ), `|`, the
 * quantifiers * + ? {m} {m,} {m,n} {,n} (a lazy `?` suffix is accepted: it
 * does not change the language), ^ at the start and $ at the end. Refused
 * with INF_EUNSUPPORTED and the offset: backreferences, lookaround, \b \B,
 * inline flags, anchors elsewhere, possessive quantifiers.
 */
#ifndef INF_REGEX_H
#define INF_REGEX_H

#include <stddef.h>

#include "gtext.h"
#include "status.h"

typedef struct regex_gbnf_opts {
    /* Name of the rule that matches the whole regex; helper rules get it as
     * a prefix ("NAME-r3"). */
    const char *rule;
    /* 1: characters as they appear inside a JSON string: `"` and `\` are
     * written escaped, control characters are left out. */
    int json_string;
    /* 1: search semantics (JSON Schema pattern): unless anchored with ^ / $,
     * anything may come before / after the match. 0: full match. */
    int search;
} regex_gbnf_opts;

/* Appends the rules for re[0..len) (len 0 = strlen) to out. Errors:
 * INF_EFORMAT "regex: at offset K: <what>" for bad syntax,
 * INF_EUNSUPPORTED for the refused features. */
int regex_to_gbnf(const char *re, size_t len, const regex_gbnf_opts *o, gtext *out, inf_error *err);

#endif
