/* gtext.h - a growable text buffer and GBNF literal writers, shared by the
 * translators that emit GBNF (jsonschema.c, regex.c, constraint.c).
 *
 * Errors are sticky: after an allocation failure every call is a no-op and
 * gtext_take fails, so emitters check once at the end. Not thread-safe. */
#ifndef INF_GTEXT_H
#define INF_GTEXT_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

typedef struct gtext {
    char *s;
    size_t len, cap;
    int failed;
} gtext;

void gtext_init(gtext *t);
void gtext_free(gtext *t);
void gtext_put(gtext *t, const char *s, size_t n);
void gtext_puts(gtext *t, const char *s);
void gtext_printf(gtext *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A GBNF string literal ("...") of bytes s[0..n), every byte escaped as
 * needed (non-ASCII bytes of valid UTF-8 are written as they are). */
void gtext_literal(gtext *t, const char *s, size_t n);
/* One code point as an escape usable inside a GBNF class or literal. */
void gtext_cp(gtext *t, uint32_t cp);
/* 1 if s[0..n) is valid UTF-8 (no overlongs, no surrogates). */
int gtext_valid_utf8(const char *s, size_t n);

/* Hands the NUL-terminated text to the caller (free) and resets t; INF_ENOMEM
 * if an earlier call failed. */
int gtext_take(gtext *t, char **out, inf_error *err);

#endif
