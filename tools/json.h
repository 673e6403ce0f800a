/* json.h - a small JSON reader (DOM) and string escaper for the command-line
 * tools (batch prompt files, --json output). Strict RFC 8259 parsing with
 * depth and size limits; not a streaming parser. */
#ifndef INF_JSON_H
#define INF_JSON_H

#include <stdio.h>
#include <stddef.h>

#include "status.h"

typedef enum json_type {
    JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT
} json_type;

typedef struct json_value json_value;
struct json_value {
    json_type type;
    int boolean;
    double number;
    char *str;       /* JSON_STRING: decoded UTF-8, NUL-terminated (may hold NULs: see len) */
    size_t len;      /* string length in bytes */
    json_value *items; /* ARRAY / OBJECT values */
    char **keys;       /* OBJECT keys (NUL-terminated) */
    size_t n;
};

/* Parses text[0..len) into *out (caller frees with json_free). INF_EFORMAT
 * with the byte offset and reason on bad input. */
int json_parse(const char *text, size_t len, json_value *out, inf_error *err);

/* Frees what json_parse allocated inside v (not v itself). */
void json_free(json_value *v);

/* Object member by key, or NULL. */
const json_value *json_get(const json_value *obj, const char *key);

/* Writes bytes as a JSON string literal (quotes included), escaping control
 * characters; invalid UTF-8 bytes are written as U+FFFD. */
void json_write_str(FILE *out, const char *s, size_t len);

#endif
