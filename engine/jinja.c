/* jinja.c - entry points: parse a template once, render it many times. Each
 * call sets up its own arena and unwind point (jinja_internal.h). */
#include <stdlib.h>
#include <string.h>

#include "jinja_internal.h"

/* Templates beyond this are refused before lexing (chat templates are a few KiB). */
#define JINJA_MAX_SOURCE (1u << 20)

struct jinja_template {
    jarena arena;
    jctx ctx;
    jnode *root;
};

int jinja_template_create(jinja_template **out, const char *src, size_t len, inf_error *err) {
    *out = NULL;
    if (len > JINJA_MAX_SOURCE)
        return inf_error_set(err, INF_ENOMEM, "template: %zu bytes is over the bound of %u", len, JINJA_MAX_SOURCE);
    jinja_template *t = calloc(1, sizeof *t);
    if (!t) return inf_error_set(err, INF_ENOMEM, "template: out of memory");
    t->arena.cap_total = (size_t)64 << 20;
    t->arena.ctx = &t->ctx;
    t->ctx.err = err;
    t->ctx.arena = &t->arena;
    if (setjmp(t->ctx.jb)) {
        int code = t->ctx.code;
        jarena_free(&t->arena);
        free(t);
        return code;
    }
    jtok *toks;
    size_t n;
    jlex(&t->ctx, &t->arena, src, len, &toks, &n);
    t->root = jparse(&t->ctx, &t->arena, toks, n);
    t->ctx.err = NULL;
    *out = t;
    return 0;
}

void jinja_template_destroy(jinja_template *t) {
    if (!t) return;
    jarena_free(&t->arena);
    free(t);
}

int jinja_render(const jinja_template *t, const jinja_render_args *args, char **out, size_t *out_len,
                 inf_error *err) {
    *out = NULL;
    if (out_len) *out_len = 0;
    jctx ctx = {.err = err};
    jarena arena = {.ctx = &ctx};
    jrender r = {.c = &ctx, .a = &arena};
    r.lim = args->limits;
    if (!r.lim.max_output) r.lim.max_output = (size_t)4 << 20;
    if (!r.lim.max_memory) r.lim.max_memory = (size_t)64 << 20;
    if (!r.lim.max_steps) r.lim.max_steps = 10000000;
    if (!r.lim.max_depth) r.lim.max_depth = 64;
    arena.cap_total = r.lim.max_memory;
    ctx.arena = &arena;
    r.now = args->now ? args->now : time(NULL);
    if (setjmp(ctx.jb)) {
        jarena_free(&arena);
        return ctx.code;
    }
    r.root = jscope_new(&r, NULL);
    for (size_t i = 0; i < args->n_vars; i++) {
        const jinja_var *v = &args->vars[i];
        jv x = v->str ? jv_str(&arena, v->str, v->str_len)
                      : jjson_parse(&ctx, &arena, v->name, v->json ? v->json : "null", v->json ? v->json_len : 4);
        jscope_set(&r, r.root, v->name, x);
    }
    jbuf b;
    jbuf_init(&b, &arena, r.lim.max_output);
    jexec(&r, r.root, t->root, &b);
    char *s = malloc(b.n + 1);
    if (!s) {
        jarena_free(&arena);
        return inf_error_set(err, INF_ENOMEM, "template: out of memory");
    }
    if (b.n) memcpy(s, b.p, b.n);
    s[b.n] = 0;
    *out = s;
    if (out_len) *out_len = b.n;
    jarena_free(&arena);
    return 0;
}

static int json_check(const char *what, const char *s, size_t n, bool object, inf_error *err) {
    jctx ctx = {.err = err};
    jarena arena = {.ctx = &ctx, .cap_total = (size_t)64 << 20};
    ctx.arena = &arena;
    if (setjmp(ctx.jb)) {
        jarena_free(&arena);
        return ctx.code;
    }
    jv v = jjson_parse(&ctx, &arena, what, s, n);
    jarena_free(&arena);
    if (object && v.t != JV_DICT) return inf_error_set(err, INF_EFORMAT, "template: %s: not a JSON object", what);
    return 0;
}

int jinja_json_check(const char *what, const char *s, size_t n, inf_error *err) {
    return json_check(what, s, n, false, err);
}

int jinja_json_check_object(const char *what, const char *s, size_t n, inf_error *err) {
    return json_check(what, s, n, true, err);
}

int jinja_json_members(const char *s, size_t n, int (*fn)(void *ctx, const char *name, const char *json, size_t len),
                       void *fctx, inf_error *err) {
    jctx ctx = {.err = err};
    jarena arena = {.ctx = &ctx, .cap_total = (size_t)64 << 20};
    ctx.arena = &arena;
    if (setjmp(ctx.jb)) {
        jarena_free(&arena);
        return ctx.code;
    }
    jv v = jjson_parse(&ctx, &arena, "chat_template_kwargs", s, n);
    if (v.t != JV_DICT) jfail(&ctx, INF_EFORMAT, 0, "chat_template_kwargs: not a JSON object");
    int rc = 0;
    for (size_t i = 0; i < v.u.d->n && !rc; i++) {
        jbuf b;
        jbuf_init(&b, &arena, (size_t)64 << 20);
        jjson_dump(&ctx, 0, &b, v.u.d->v[i], NULL, NULL, NULL, false, 0);
        rc = fn(fctx, v.u.d->k[i].u.s->s, b.p ? b.p : "", b.n);
    }
    jarena_free(&arena);
    return rc;
}
