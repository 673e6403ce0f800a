/* chat.c - conversation -> template variables -> rendered prompt text. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"

/* A growable heap string (the messages JSON we build). */
typedef struct sbuf { char *p; size_t n, cap; int oom; } sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) { b->oom = 1; return; }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}
static void sb_puts(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_json_str(sbuf *b, const char *s) {
    sb_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char e[8];
        if (*p == '"') sb_put(b, "\\\"", 2);
        else if (*p == '\\') sb_put(b, "\\\\", 2);
        else if (*p < 0x20) { snprintf(e, sizeof e, "\\u%04x", *p); sb_put(b, e, 6); }
        else sb_put(b, (const char *)p, 1);
    }
    sb_put(b, "\"", 1);
}

static void member(sbuf *b, const char *key, const char *val) {
    sb_puts(b, ", ");
    sb_json_str(b, key);
    sb_puts(b, ": ");
    if (val) sb_json_str(b, val);
    else sb_puts(b, "null");
}

/* The messages array as JSON text (content null when absent). */
static int messages_json(const chat_render_args *a, sbuf *b, inf_error *err) {
    sb_puts(b, "[");
    for (size_t i = 0; i < a->n_messages; i++) {
        const chat_message *m = &a->messages[i];
        if (!m->role) return inf_error_set(err, INF_EINVAL, "messages[%zu]: no role", i);
        sb_puts(b, i ? ", {\"role\": " : "{\"role\": ");
        sb_json_str(b, m->role);
        member(b, "content", m->content);
        if (m->name) member(b, "name", m->name);
        if (m->tool_call_id) member(b, "tool_call_id", m->tool_call_id);
        if (m->tool_calls) {
            char what[64];
            snprintf(what, sizeof what, "messages[%zu].tool_calls", i);
            int rc = jinja_json_check(what, m->tool_calls, strlen(m->tool_calls), err);
            if (rc) return rc;
            sb_puts(b, ", \"tool_calls\": ");
            sb_puts(b, m->tool_calls);
        }
        if (m->reasoning_content) member(b, "reasoning_content", m->reasoning_content);
        sb_puts(b, "}");
    }
    sb_puts(b, "]");
    return b->oom ? inf_error_set(err, INF_ENOMEM, "chat: out of memory") : 0;
}

typedef struct kw_ctx {
    jinja_var *vars;
    size_t n, cap;
    char **owned; /* names and JSON texts we copied */
    size_t n_owned;
    inf_error *err;
} kw_ctx;

static const char *reserved[] = {"messages", "tools", "add_generation_prompt", "bos_token", "eos_token", NULL};

static char *own(kw_ctx *k, const char *s, size_t n) {
    char *p = malloc(n + 1);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = 0;
    k->owned[k->n_owned++] = p;
    return p;
}

static int add_kw(void *ctx, const char *name, const char *json, size_t len) {
    kw_ctx *k = ctx;
    for (size_t i = 0; reserved[i]; i++)
        if (!strcmp(reserved[i], name))
            return inf_error_set(k->err, INF_EINVAL,
                                 "chat_template_kwargs: '%s' is set by the request itself and may not be given here",
                                 name);
    if (k->n == k->cap) return inf_error_set(k->err, INF_ERANGE, "chat_template_kwargs: more than %zu members", k->cap - 5);
    char *nm = own(k, name, strlen(name)), *js = nm ? own(k, json, len) : NULL;
    if (!js) return inf_error_set(k->err, INF_ENOMEM, "chat: out of memory");
    k->vars[k->n++] = (jinja_var){.name = nm, .json = js, .json_len = len};
    return 0;
}

#define CHAT_MAX_KWARGS 64

int chat_render(const jinja_template *t, const chat_render_args *a, char **out, size_t *out_len, inf_error *err) {
    *out = NULL;
    if (out_len) *out_len = 0;
    sbuf mj = {0};
    jinja_var vars[5 + CHAT_MAX_KWARGS];
    char *owned[2 * CHAT_MAX_KWARGS];
    kw_ctx k = {.vars = vars, .n = 0, .cap = 5 + CHAT_MAX_KWARGS, .owned = owned, .err = err};
    int rc = 0;
    const char *msgs = a->messages_json;
    size_t msgs_len = a->messages_json_len;
    if (!msgs) {
        if ((rc = messages_json(a, &mj, err))) goto done;
        msgs = mj.p;
        msgs_len = mj.n;
    }
    /* JSON of each field is checked here so the error names the field */
    if ((rc = jinja_json_check("messages", msgs, msgs_len, err))) goto done;
    vars[k.n++] = (jinja_var){.name = "messages", .json = msgs, .json_len = msgs_len};
    if (a->tools_json) {
        if ((rc = jinja_json_check("tools", a->tools_json, strlen(a->tools_json), err))) goto done;
        vars[k.n++] = (jinja_var){.name = "tools", .json = a->tools_json, .json_len = strlen(a->tools_json)};
    }
    const char *agp = a->add_generation_prompt ? "true" : "false";
    vars[k.n++] = (jinja_var){.name = "add_generation_prompt", .json = agp, .json_len = strlen(agp)};
    const char *bos = a->bos_token ? a->bos_token : "", *eos = a->eos_token ? a->eos_token : "";
    vars[k.n++] = (jinja_var){.name = "bos_token", .str = bos, .str_len = strlen(bos)};
    vars[k.n++] = (jinja_var){.name = "eos_token", .str = eos, .str_len = strlen(eos)};
    if (a->kwargs_json && (rc = jinja_json_members(a->kwargs_json, strlen(a->kwargs_json), add_kw, &k, err)))
        goto done;
    jinja_render_args ra = {.vars = vars, .n_vars = k.n, .limits = a->limits, .now = a->now};
    rc = jinja_render(t, &ra, out, out_len, err);
done:
    for (size_t i = 0; i < k.n_owned; i++) free(owned[i]);
    free(mj.p);
    return rc;
}

int chat_template_from_gguf(const gguf_file *f, char **out, size_t *len, inf_error *err) {
    *out = NULL;
    if (len) *len = 0;
    gguf_str s;
    int rc = gguf_get_str(f, "tokenizer.chat_template", &s, err);
    if (rc == INF_ENOTFOUND) {
        inf_error_clear(err);
        return 0;
    }
    if (rc) return rc;
    char *p = malloc(s.len + 1);
    if (!p) return inf_error_set(err, INF_ENOMEM, "chat template: out of memory");
    memcpy(p, s.ptr, s.len);
    p[s.len] = 0;
    *out = p;
    if (len) *len = s.len;
    return 0;
}

static const char *token_text(const tokenizer *t, int32_t id) {
    size_t n;
    const char *s = id >= 0 ? tok_token_text(t, id, &n) : NULL;
    return s ? s : "";
}

const char *chat_bos_text(const tokenizer *t) { return token_text(t, tok_bos(t)); }
const char *chat_eos_text(const tokenizer *t) { return token_text(t, tok_eos(t)); }

int chat_tokenize(const tokenizer *t, const char *text, size_t len, int32_t **ids, size_t *n_ids, inf_error *err) {
    *ids = NULL;
    *n_ids = 0;
    int32_t *v = NULL;
    size_t n = 0;
    int rc = tok_encode(t, text, len, 0, 1, &v, &n, err);
    if (rc) return rc;
    int32_t bos = tok_bos(t);
    if (tok_add_bos(t) && bos >= 0 && !(n && v[0] == bos)) {
        int32_t *w = malloc((n + 1) * sizeof *w);
        if (!w) {
            free(v);
            return inf_error_set(err, INF_ENOMEM, "chat: out of memory");
        }
        w[0] = bos;
        if (n) memcpy(w + 1, v, n * sizeof *w);
        free(v);
        v = w;
        n++;
    }
    *ids = v;
    *n_ids = n;
    return 0;
}
