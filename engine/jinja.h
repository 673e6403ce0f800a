/* jinja.h - a Jinja2 template interpreter for chat templates.
 *
 * Written for one job: rendering the chat templates instruct models ship
 * (tokenizer.chat_template) byte for byte as Hugging Face transformers renders
 * them, i.e. as python3-jinja2's ImmutableSandboxedEnvironment(trim_blocks=True,
 * lstrip_blocks=True, extensions=[loopcontrols]) with HF's tojson filter and the
 * globals raise_exception and strftime_now. Python semantics are kept where
 * templates rely on them (truthiness, int vs float printing, str/list/dict
 * operations, insertion-ordered dicts, jinja2's default Undefined).
 *
 * Templates and variables are untrusted: parsing and rendering are bounded in
 * nesting depth, loop iterations/steps, output bytes and memory (jinja_limits);
 * every failure is an inf_error naming the template line, never a crash.
 *
 * Threading: a jinja_template is immutable after jinja_template_create and may
 * be rendered from several threads at once; each render has its own state.
 */
#ifndef INF_JINJA_H
#define INF_JINJA_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "status.h"

typedef struct jinja_template jinja_template;

/* Parses src[0..len) (UTF-8). On failure *out is NULL and err says what and at
 * which line (INF_EFORMAT for syntax errors, INF_ENOMEM past the size bound).
 * The caller owns *out (jinja_template_destroy). src is copied. */
int jinja_template_create(jinja_template **out, const char *src, size_t len, inf_error *err);
void jinja_template_destroy(jinja_template *t);

/* One template variable. Exactly one of json / str is set: json is JSON text
 * (an object becomes an insertion-ordered dict, integers stay integers), str
 * a plain string of str_len bytes. */
typedef struct jinja_var {
    const char *name;
    const char *json;
    size_t json_len;
    const char *str;
    size_t str_len;
} jinja_var;

/* Bounds for one render; 0 in a field means its default (in brackets). */
typedef struct jinja_limits {
    size_t max_output;  /* bytes of rendered text, also per captured block [4 MiB] */
    size_t max_memory;  /* bytes of values the render may allocate [64 MiB] */
    uint64_t max_steps; /* statements + loop iterations + calls [10,000,000] */
    int max_depth;      /* nested macro calls [64] */
} jinja_limits;

typedef struct jinja_render_args {
    const jinja_var *vars;
    size_t n_vars;
    jinja_limits limits;
    time_t now; /* strftime_now's clock (local time); 0 = time(NULL) */
} jinja_render_args;

/* Renders t. On success *out is a malloc'd NUL-terminated string of *out_len
 * bytes owned by the caller (free()). On failure *out is NULL and err holds
 * "template line N: MESSAGE" where MESSAGE is what jinja2 would raise
 * (raise_exception's text verbatim); codes: INF_EINVAL template refused or
 * failed, INF_EFORMAT a variable's JSON is malformed, INF_ERANGE a bound hit,
 * INF_ENOMEM allocation failure. */
int jinja_render(const jinja_template *t, const jinja_render_args *args, char **out, size_t *out_len,
                 inf_error *err);

/* Checks that s[0..n) is JSON as jinja_var takes it; INF_EFORMAT with
 * "WHAT: invalid JSON at byte N: reason" otherwise. */
int jinja_json_check(const char *what, const char *s, size_t n, inf_error *err);

/* 1 if s[0..n) is a JSON object (checked as above), else INF_EFORMAT. */
int jinja_json_check_object(const char *what, const char *s, size_t n, inf_error *err);

/* Calls fn for each member of the JSON object s[0..n): name (NUL-terminated)
 * and the member's JSON text. Stops at fn's non-zero return and returns it. */
int jinja_json_members(const char *s, size_t n, int (*fn)(void *ctx, const char *name, const char *json, size_t len),
                       void *ctx, inf_error *err);

#endif
