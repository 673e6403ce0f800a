/* jinja_value.c - arena, values and their Python semantics (truthiness,
 * equality, ordering, str/repr, float repr), UTF-8 helpers. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jinja_internal.h"

/* Deeper values than this fail (Python raises RecursionError near 1000). */
#define JV_MAX_DEPTH 200

struct jarena_chunk {
    jarena_chunk *next;
    size_t used, cap;
    max_align_t data[];
};

_Noreturn void jfail(jctx *c, int code, int line, const char *fmt, ...) {
    char msg[INF_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (line > 0)
        inf_error_set(c->err, code, "template line %d: %s", line, msg);
    else
        inf_error_set(c->err, code, "template: %s", msg);
    c->code = code;
    longjmp(c->jb, 1);
}

void *jalloc(jarena *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (n > a->cap_total || a->used > a->cap_total - n)
        jfail(a->ctx, INF_ERANGE, 0, "memory bound of %zu bytes exceeded", a->cap_total);
    jarena_chunk *h = a->head;
    if (!h || h->cap - h->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        h = malloc(sizeof *h + cap);
        if (!h) jfail(a->ctx, INF_ENOMEM, 0, "out of memory");
        h->cap = cap;
        h->used = 0;
        h->next = a->head;
        a->head = h;
    }
    void *p = (char *)h->data + h->used;
    h->used += n;
    a->used += n;
    return p;
}

void jarena_free(jarena *a) {
    jarena_chunk *h = a->head;
    while (h) {
        jarena_chunk *nx = h->next;
        free(h);
        h = nx;
    }
    a->head = NULL;
    a->used = 0;
}

char *jstrndup(jarena *a, const char *s, size_t n) {
    char *p = jalloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

jv jv_undef(const char *msg) { jv v = {.t = JV_UNDEF}; v.u.undef = msg; return v; }
jv jv_none(void) { jv v = {.t = JV_NONE}; return v; }
jv jv_bool(bool b) { jv v = {.t = JV_BOOL}; v.u.b = b; return v; }
jv jv_int(int64_t i) { jv v = {.t = JV_INT}; v.u.i = i; return v; }
jv jv_float(double f) { jv v = {.t = JV_FLOAT}; v.u.f = f; return v; }

jv jv_str(jarena *a, const char *s, size_t n) {
    jstr *p = jalloc(a, sizeof *p + n + 1);
    p->len = n;
    if (n) memcpy(p->s, s, n);
    p->s[n] = 0;
    jv v = {.t = JV_STR};
    v.u.s = p;
    return v;
}

jv jv_cstr(jarena *a, const char *s) { return jv_str(a, s, strlen(s)); }

jv jv_list(jarena *a, size_t cap) {
    jlist *l = jalloc(a, sizeof *l);
    l->n = 0;
    l->cap = cap;
    l->v = cap ? jalloc(a, cap * sizeof(jv)) : NULL;
    jv v = {.t = JV_LIST};
    v.u.l = l;
    return v;
}

jv jv_dict(jarena *a, size_t cap) {
    jdict *d = jalloc(a, sizeof *d);
    d->n = 0;
    d->cap = cap;
    d->k = cap ? jalloc(a, cap * sizeof(jv)) : NULL;
    d->v = cap ? jalloc(a, cap * sizeof(jv)) : NULL;
    jv v = {.t = JV_DICT};
    v.u.d = d;
    return v;
}

void jlist_push(jarena *a, jlist *l, jv v) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4;
        jv *nv = jalloc(a, cap * sizeof(jv));
        if (l->n) memcpy(nv, l->v, l->n * sizeof(jv));
        l->v = nv;
        l->cap = cap;
    }
    l->v[l->n++] = v;
}

/* Dict keys compare as Python does for hashable keys (1 == 1.0 == True). */
static bool key_eq(jv a, jv b) {
    if (a.t == JV_STR && b.t == JV_STR)
        return a.u.s->len == b.u.s->len && memcmp(a.u.s->s, b.u.s->s, a.u.s->len) == 0;
    if (jv_is_num(a) && jv_is_num(b)) return jv_num(a) == jv_num(b);
    if (a.t == JV_NONE && b.t == JV_NONE) return true;
    if (a.t == JV_UNDEF && b.t == JV_UNDEF) return true;
    return false;
}

jv *jdict_get(jdict *d, jv k) {
    for (size_t i = 0; i < d->n; i++)
        if (key_eq(d->k[i], k)) return &d->v[i];
    return NULL;
}

jv *jdict_gets(jdict *d, const char *k) {
    size_t n = strlen(k);
    for (size_t i = 0; i < d->n; i++)
        if (d->k[i].t == JV_STR && d->k[i].u.s->len == n && memcmp(d->k[i].u.s->s, k, n) == 0)
            return &d->v[i];
    return NULL;
}

void jdict_set(jarena *a, jdict *d, jv k, jv v) {
    jv *p = jdict_get(d, k);
    if (p) { *p = v; return; }
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 4;
        jv *nk = jalloc(a, cap * sizeof(jv)), *nv = jalloc(a, cap * sizeof(jv));
        if (d->n) {
            memcpy(nk, d->k, d->n * sizeof(jv));
            memcpy(nv, d->v, d->n * sizeof(jv));
        }
        d->k = nk;
        d->v = nv;
        d->cap = cap;
    }
    d->k[d->n] = k;
    d->v[d->n] = v;
    d->n++;
}

bool jv_truthy(jv v) {
    switch (v.t) {
    case JV_UNDEF: case JV_NONE: return false;
    case JV_BOOL: return v.u.b;
    case JV_INT: return v.u.i != 0;
    case JV_FLOAT: return v.u.f != 0.0;
    case JV_STR: return v.u.s->len != 0;
    case JV_LIST: return (v.flags & JVF_GEN) || v.u.l->n != 0;
    case JV_DICT: return v.u.d->n != 0;
    default: return true;
    }
}

bool jv_is_num(jv v) { return v.t == JV_INT || v.t == JV_FLOAT || v.t == JV_BOOL; }

double jv_num(jv v) {
    if (v.t == JV_INT) return (double)v.u.i;
    if (v.t == JV_FLOAT) return v.u.f;
    if (v.t == JV_BOOL) return v.u.b;
    return 0;
}

static void deep(jctx *c, int depth) {
    if (depth > JV_MAX_DEPTH) jfail(c, INF_ERANGE, 0, "maximum recursion depth exceeded in a value");
}

bool jv_eq(jctx *c, jv a, jv b, int depth) {
    deep(c, depth);
    if (jv_is_num(a) && jv_is_num(b)) {
        if (a.t != JV_FLOAT && b.t != JV_FLOAT)
            return (a.t == JV_INT ? a.u.i : a.u.b) == (b.t == JV_INT ? b.u.i : b.u.b);
        return jv_num(a) == jv_num(b);
    }
    if (a.t != b.t) return false;
    switch (a.t) {
    case JV_UNDEF: case JV_NONE: return true;
    case JV_STR: return key_eq(a, b);
    case JV_LIST:
        if ((a.flags & (JVF_TUPLE | JVF_GEN)) || (b.flags & (JVF_TUPLE | JVF_GEN))) {
            if ((a.flags & JVF_GEN) || (b.flags & JVF_GEN)) return a.u.l == b.u.l;
        }
        if ((a.flags & JVF_TUPLE) != (b.flags & JVF_TUPLE) || a.u.l->n != b.u.l->n) return false;
        for (size_t i = 0; i < a.u.l->n; i++)
            if (!jv_eq(c, a.u.l->v[i], b.u.l->v[i], depth + 1)) return false;
        return true;
    case JV_DICT:
        if (a.u.d->n != b.u.d->n) return false;
        for (size_t i = 0; i < a.u.d->n; i++) {
            jv *o = jdict_get(b.u.d, a.u.d->k[i]);
            if (!o || !jv_eq(c, a.u.d->v[i], *o, depth + 1)) return false;
        }
        return true;
    case JV_NS: return a.u.d == b.u.d;
    case JV_MACRO: return a.u.m == b.u.m;
    case JV_BUILTIN: return a.u.bi == b.u.bi;
    case JV_METHOD: return a.u.me == b.u.me;
    case JV_LOOP: return a.u.lp == b.u.lp;
    default: return false;
    }
}

const char *jv_type_name(jv v) {
    switch (v.t) {
    case JV_UNDEF: return "Undefined";
    case JV_NONE: return "NoneType";
    case JV_BOOL: return "bool";
    case JV_INT: return "int";
    case JV_FLOAT: return "float";
    case JV_STR: return (v.flags & JVF_MARKUP) ? "Markup" : "str";
    case JV_LIST: return (v.flags & JVF_GEN) ? "generator" : (v.flags & JVF_TUPLE) ? "tuple" : "list";
    case JV_DICT: return "dict";
    case JV_NS: return "Namespace";
    case JV_MACRO: return "Macro";
    case JV_LOOP: return "LoopContext";
    default: return "builtin_function_or_method";
    }
}

int jv_cmp(jctx *c, int line, jv a, jv b, int depth) {
    deep(c, depth);
    if (jv_is_num(a) && jv_is_num(b)) {
        if (a.t != JV_FLOAT && b.t != JV_FLOAT) {
            int64_t x = a.t == JV_INT ? a.u.i : a.u.b, y = b.t == JV_INT ? b.u.i : b.u.b;
            return x < y ? -1 : x > y;
        }
        double x = jv_num(a), y = jv_num(b);
        return x < y ? -1 : x > y; /* NaN compares equal here; Python: all false */
    }
    if (a.t == JV_STR && b.t == JV_STR) {
        size_t n = a.u.s->len < b.u.s->len ? a.u.s->len : b.u.s->len;
        int r = memcmp(a.u.s->s, b.u.s->s, n); /* UTF-8 byte order = code point order */
        if (r) return r < 0 ? -1 : 1;
        return a.u.s->len < b.u.s->len ? -1 : a.u.s->len > b.u.s->len;
    }
    if (a.t == JV_LIST && b.t == JV_LIST && (a.flags & JVF_TUPLE) == (b.flags & JVF_TUPLE)) {
        size_t n = a.u.l->n < b.u.l->n ? a.u.l->n : b.u.l->n;
        for (size_t i = 0; i < n; i++) {
            if (jv_eq(c, a.u.l->v[i], b.u.l->v[i], depth + 1)) continue;
            return jv_cmp(c, line, a.u.l->v[i], b.u.l->v[i], depth + 1);
        }
        return a.u.l->n < b.u.l->n ? -1 : a.u.l->n > b.u.l->n;
    }
    if (a.t == JV_UNDEF) jundef_fail(c, line, a);
    if (b.t == JV_UNDEF) jundef_fail(c, line, b);
    jfail(c, INF_EINVAL, line, "'<' not supported between instances of '%s' and '%s'", jv_type_name(a),
          jv_type_name(b));
}

/* ---- buffers ---------------------------------------------------------------- */
void jbuf_init(jbuf *b, jarena *a, size_t max) {
    b->p = NULL;
    b->n = b->cap = 0;
    b->max = max;
    b->a = a;
    b->line = 0;
}

void jbuf_put(jbuf *b, const char *s, size_t n) {
    if (!n) return;
    if (n > b->max || b->n > b->max - n)
        jfail(b->a->ctx, INF_ERANGE, b->line, "output bound of %zu bytes exceeded", b->max);
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1) cap *= 2;
        char *np = jalloc(b->a, cap);
        if (b->n) memcpy(np, b->p, b->n);
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

void jbuf_putc(jbuf *b, char ch) { jbuf_put(b, &ch, 1); }

jv jbuf_take(jbuf *b) { return jv_str(b->a, b->p ? b->p : "", b->n); }

/* ---- str / repr ------------------------------------------------------------- */
/* Python's float repr: the shortest digits that round-trip, positional when the
 * decimal exponent is in [-4, 16), else d.ddde+XX. */
void jv_write_float(jbuf *b, double f) {
    if (isnan(f)) { jbuf_put(b, "nan", 3); return; }
    if (isinf(f)) { jbuf_put(b, f < 0 ? "-inf" : "inf", f < 0 ? 4 : 3); return; }
    char tmp[64];
    int p;
    for (p = 1; p <= 17; p++) {
        snprintf(tmp, sizeof tmp, "%.*e", p - 1, f);
        if (strtod(tmp, NULL) == f) break;
    }
    /* tmp = [-]d.ddde[+-]XX */
    char digits[32];
    int nd = 0;
    const char *q = tmp;
    bool neg = false;
    if (*q == '-') { neg = true; q++; }
    for (; *q && *q != 'e'; q++)
        if (*q >= '0' && *q <= '9') digits[nd++] = *q;
    int exp10 = atoi(q + 1);
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    int decpt = exp10 + 1; /* value = 0.d1d2... * 10^decpt */
    char out[64];
    int o = 0;
    if (neg) out[o++] = '-';
    if (decpt > -4 && decpt <= 16) {
        if (decpt <= 0) {
            out[o++] = '0';
            out[o++] = '.';
            for (int i = 0; i < -decpt; i++) out[o++] = '0';
            for (int i = 0; i < nd; i++) out[o++] = digits[i];
        } else {
            for (int i = 0; i < decpt; i++) out[o++] = i < nd ? digits[i] : '0';
            out[o++] = '.';
            if (nd > decpt)
                for (int i = decpt; i < nd; i++) out[o++] = digits[i];
            else
                out[o++] = '0';
        }
    } else {
        out[o++] = digits[0];
        if (nd > 1) {
            out[o++] = '.';
            for (int i = 1; i < nd; i++) out[o++] = digits[i];
        }
        o += snprintf(out + o, sizeof out - o, "e%c%02d", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
    }
    jbuf_put(b, out, o);
}

static void write_str_repr(jbuf *b, const char *s, size_t n) {
    bool has_sq = memchr(s, '\'', n) != NULL, has_dq = memchr(s, '"', n) != NULL;
    char q = has_sq && !has_dq ? '"' : '\'';
    jbuf_putc(b, q);
    for (size_t i = 0; i < n;) {
        size_t adv;
        int cp = ju8_decode(s + i, n - i, &adv);
        char esc[16];
        if (cp == q || cp == '\\') { esc[0] = '\\'; esc[1] = (char)cp; jbuf_put(b, esc, 2); }
        else if (cp == '\n') jbuf_put(b, "\\n", 2);
        else if (cp == '\r') jbuf_put(b, "\\r", 2);
        else if (cp == '\t') jbuf_put(b, "\\t", 2);
        else if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0)) {
            snprintf(esc, sizeof esc, "\\x%02x", cp);
            jbuf_put(b, esc, 4);
        } else if (cp == 0xad || (cp >= 0x2028 && cp <= 0x2029) || (cp >= 0x200b && cp <= 0x200f)) {
            snprintf(esc, sizeof esc, "\\u%04x", cp);
            jbuf_put(b, esc, 6);
        } else
            jbuf_put(b, s + i, adv);
        i += adv;
    }
    jbuf_putc(b, q);
}

void jv_write_repr(jbuf *b, jv v, int depth) {
    deep(b->a->ctx, depth);
    switch (v.t) {
    case JV_STR: write_str_repr(b, v.u.s->s, v.u.s->len); return;
    case JV_UNDEF: jbuf_put(b, "Undefined", 9); return;
    case JV_LIST: {
        if (v.flags & JVF_GEN) { jbuf_put(b, "<generator object>", 18); return; }
        bool tup = v.flags & JVF_TUPLE;
        jbuf_putc(b, tup ? '(' : '[');
        for (size_t i = 0; i < v.u.l->n; i++) {
            if (i) jbuf_put(b, ", ", 2);
            jv_write_repr(b, v.u.l->v[i], depth + 1);
        }
        if (tup && v.u.l->n == 1) jbuf_putc(b, ',');
        jbuf_putc(b, tup ? ')' : ']');
        return;
    }
    case JV_DICT:
        jbuf_putc(b, '{');
        for (size_t i = 0; i < v.u.d->n; i++) {
            if (i) jbuf_put(b, ", ", 2);
            jv_write_repr(b, v.u.d->k[i], depth + 1);
            jbuf_put(b, ": ", 2);
            jv_write_repr(b, v.u.d->v[i], depth + 1);
        }
        jbuf_putc(b, '}');
        return;
    default: jv_write_str(b, v, depth);
    }
}

void jv_write_str(jbuf *b, jv v, int depth) {
    char tmp[32];
    switch (v.t) {
    case JV_UNDEF: return;
    case JV_NONE: jbuf_put(b, "None", 4); return;
    case JV_BOOL: jbuf_put(b, v.u.b ? "True" : "False", v.u.b ? 4 : 5); return;
    case JV_INT: jbuf_put(b, tmp, (size_t)snprintf(tmp, sizeof tmp, "%lld", (long long)v.u.i)); return;
    case JV_FLOAT: jv_write_float(b, v.u.f); return;
    case JV_STR: jbuf_put(b, v.u.s->s, v.u.s->len); return;
    case JV_LIST: case JV_DICT: jv_write_repr(b, v, depth); return;
    case JV_NS: {
        jbuf_put(b, "<Namespace ", 11);
        jv d = v;
        d.t = JV_DICT;
        jv_write_repr(b, d, depth + 1);
        jbuf_putc(b, '>');
        return;
    }
    case JV_MACRO: jbuf_put(b, "<Macro>", 7); return;
    case JV_LOOP: jbuf_put(b, "<LoopContext>", 13); return;
    default: jbuf_put(b, "<built-in function>", 19); return;
    }
}

jv jv_to_str(jarena *a, jv v, size_t max) {
    if (v.t == JV_STR) return v;
    jbuf b;
    jbuf_init(&b, a, max);
    jv_write_str(&b, v, 0);
    return jbuf_take(&b);
}

void jv_write_escaped(jbuf *b, const char *s, size_t n) {
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        const char *e = NULL;
        switch (s[i]) {
        case '&': e = "&amp;"; break;
        case '<': e = "&lt;"; break;
        case '>': e = "&gt;"; break;
        case '\'': e = "&#39;"; break;
        case '"': e = "&#34;"; break;
        default: continue;
        }
        jbuf_put(b, s + run, i - run);
        jbuf_put(b, e, strlen(e));
        run = i + 1;
    }
    jbuf_put(b, s + run, n - run);
}

/* ---- UTF-8 ------------------------------------------------------------------- */
int ju8_decode(const char *s, size_t n, size_t *adv) {
    const unsigned char *u = (const unsigned char *)s;
    *adv = 1;
    if (u[0] < 0x80) return u[0];
    int need, cp;
    if ((u[0] & 0xe0) == 0xc0) { need = 1; cp = u[0] & 0x1f; }
    else if ((u[0] & 0xf0) == 0xe0) { need = 2; cp = u[0] & 0x0f; }
    else if ((u[0] & 0xf8) == 0xf0) { need = 3; cp = u[0] & 0x07; }
    else return u[0];
    if ((size_t)need >= n) return u[0];
    for (int i = 1; i <= need; i++) {
        if ((u[i] & 0xc0) != 0x80) return u[0];
        cp = (cp << 6) | (u[i] & 0x3f);
    }
    *adv = (size_t)need + 1;
    return cp;
}

size_t ju8_len(const char *s, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; k++) {
        size_t adv;
        ju8_decode(s + i, n - i, &adv);
        i += adv;
    }
    return k;
}

size_t ju8_offset(const char *s, size_t n, size_t k) {
    size_t i = 0;
    while (k-- && i < n) {
        size_t adv;
        ju8_decode(s + i, n - i, &adv);
        i += adv;
    }
    return i;
}

bool ju_isspace(int cp) {
    return (cp >= 9 && cp <= 13) || (cp >= 0x1c && cp <= 0x20) || cp == 0x85 || cp == 0xa0 ||
           cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 ||
           cp == 0x202f || cp == 0x205f || cp == 0x3000;
}

size_t ju_space_at(const char *s, size_t n) {
    if (!n) return 0;
    size_t adv;
    int cp = ju8_decode(s, n, &adv);
    return ju_isspace(cp) ? adv : 0;
}

size_t ju_space_before(const char *s, size_t n) {
    if (!n) return 0;
    size_t st = n - 1;
    while (st > 0 && n - st < 4 && ((unsigned char)s[st] & 0xc0) == 0x80) st--;
    size_t adv;
    int cp = ju8_decode(s + st, n - st, &adv);
    if (st + adv != n) { cp = (unsigned char)s[n - 1]; st = n - 1; }
    return ju_isspace(cp) ? n - st : 0;
}
