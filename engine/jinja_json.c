/* jinja_json.c - JSON text to template values (as Python's json.loads builds
 * them: insertion-ordered dicts, int vs float kept, duplicate keys keep the
 * first position and the last value) and values to JSON (json.dumps with
 * ensure_ascii=False, indent, separators, sort_keys). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jinja_internal.h"

#define JJSON_MAX_DEPTH 128

typedef struct jp {
    jctx *c;
    jarena *a;
    const char *what;
    const char *s;
    size_t n, i;
} jp;

_Noreturn static void bad(jp *p, const char *why) {
    jfail(p->c, INF_EFORMAT, 0, "%s: invalid JSON at byte %zu: %s", p->what, p->i, why);
}

static void ws(jp *p) {
    while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r'))
        p->i++;
}

static int hex4(jp *p) {
    if (p->n - p->i < 4) bad(p, "short \\u escape");
    int v = 0;
    for (int k = 0; k < 4; k++) {
        char ch = p->s[p->i++];
        v <<= 4;
        if (ch >= '0' && ch <= '9') v |= ch - '0';
        else if (ch >= 'a' && ch <= 'f') v |= ch - 'a' + 10;
        else if (ch >= 'A' && ch <= 'F') v |= ch - 'A' + 10;
        else bad(p, "bad \\u escape");
    }
    return v;
}

static void put_u8(jbuf *b, int cp) {
    char o[4];
    size_t n;
    if (cp < 0x80) { o[0] = (char)cp; n = 1; }
    else if (cp < 0x800) { o[0] = (char)(0xc0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3f)); n = 2; }
    else if (cp < 0x10000) {
        o[0] = (char)(0xe0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f)); n = 3;
    } else {
        o[0] = (char)(0xf0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        o[2] = (char)(0x80 | ((cp >> 6) & 0x3f)); o[3] = (char)(0x80 | (cp & 0x3f)); n = 4;
    }
    jbuf_put(b, o, n);
}

static jv pstring(jp *p) {
    p->i++; /* opening quote */
    jbuf b;
    jbuf_init(&b, p->a, (size_t)-1 / 2);
    for (;;) {
        if (p->i >= p->n) bad(p, "unterminated string");
        unsigned char ch = (unsigned char)p->s[p->i];
        if (ch == '"') { p->i++; break; }
        if (ch < 0x20) bad(p, "control character in string");
        if (ch == '\\') {
            p->i++;
            if (p->i >= p->n) bad(p, "unterminated string");
            char e = p->s[p->i++];
            switch (e) {
            case '"': jbuf_putc(&b, '"'); break;
            case '\\': jbuf_putc(&b, '\\'); break;
            case '/': jbuf_putc(&b, '/'); break;
            case 'b': jbuf_putc(&b, '\b'); break;
            case 'f': jbuf_putc(&b, '\f'); break;
            case 'n': jbuf_putc(&b, '\n'); break;
            case 'r': jbuf_putc(&b, '\r'); break;
            case 't': jbuf_putc(&b, '\t'); break;
            case 'u': {
                int cp = hex4(p);
                if (cp >= 0xd800 && cp < 0xdc00) {
                    if (p->n - p->i < 6 || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u') bad(p, "lone surrogate");
                    p->i += 2;
                    int lo = hex4(p);
                    if (lo < 0xdc00 || lo >= 0xe000) bad(p, "lone surrogate");
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                } else if (cp >= 0xdc00 && cp < 0xe000)
                    bad(p, "lone surrogate");
                put_u8(&b, cp);
                break;
            }
            default: bad(p, "bad escape");
            }
            continue;
        }
        size_t adv;
        int cp = ju8_decode(p->s + p->i, p->n - p->i, &adv);
        if (ch >= 0x80 && adv == 1) bad(p, "invalid UTF-8");
        if (cp >= 0xd800 && cp < 0xe000) bad(p, "invalid UTF-8");
        jbuf_put(&b, p->s + p->i, adv);
        p->i += adv;
    }
    return jbuf_take(&b);
}

static jv pvalue(jp *p, int depth);

static jv pnumber(jp *p) {
    size_t st = p->i;
    bool isf = false;
    if (p->s[p->i] == '-') p->i++;
    if (p->i < p->n && p->s[p->i] == '0') p->i++;
    else if (p->i < p->n && p->s[p->i] >= '1' && p->s[p->i] <= '9')
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    else
        bad(p, "bad number");
    if (p->i < p->n && p->s[p->i] == '.') {
        isf = true;
        p->i++;
        if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9') bad(p, "bad number");
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    }
    if (p->i < p->n && (p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
        isf = true;
        p->i++;
        if (p->i < p->n && (p->s[p->i] == '+' || p->s[p->i] == '-')) p->i++;
        if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9') bad(p, "bad number");
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    }
    char tmp[64];
    size_t len = p->i - st;
    if (len >= sizeof tmp) {
        if (!isf) bad(p, "integer out of range");
        char *big = jstrndup(p->a, p->s + st, len);
        return jv_float(strtod(big, NULL));
    }
    memcpy(tmp, p->s + st, len);
    tmp[len] = 0;
    if (isf) return jv_float(strtod(tmp, NULL));
    errno = 0;
    long long v = strtoll(tmp, NULL, 10);
    if (errno == ERANGE) bad(p, "integer out of range"); /* Python would keep a bigint */
    return jv_int(v);
}

static bool lit(jp *p, const char *w) {
    size_t n = strlen(w);
    if (p->n - p->i >= n && memcmp(p->s + p->i, w, n) == 0) { p->i += n; return true; }
    return false;
}

static jv pvalue(jp *p, int depth) {
    if (depth > JJSON_MAX_DEPTH) bad(p, "nested too deeply");
    ws(p);
    if (p->i >= p->n) bad(p, "unexpected end");
    char ch = p->s[p->i];
    if (ch == '"') return pstring(p);
    if (ch == '{') {
        p->i++;
        jv d = jv_dict(p->a, 0);
        ws(p);
        if (p->i < p->n && p->s[p->i] == '}') { p->i++; return d; }
        for (;;) {
            ws(p);
            if (p->i >= p->n || p->s[p->i] != '"') bad(p, "expected a key string");
            jv k = pstring(p);
            ws(p);
            if (p->i >= p->n || p->s[p->i] != ':') bad(p, "expected ':'");
            p->i++;
            jv v = pvalue(p, depth + 1);
            jdict_set(p->a, d.u.d, k, v);
            ws(p);
            if (p->i < p->n && p->s[p->i] == ',') { p->i++; continue; }
            if (p->i < p->n && p->s[p->i] == '}') { p->i++; return d; }
            bad(p, "expected ',' or '}'");
        }
    }
    if (ch == '[') {
        p->i++;
        jv l = jv_list(p->a, 0);
        ws(p);
        if (p->i < p->n && p->s[p->i] == ']') { p->i++; return l; }
        for (;;) {
            jlist_push(p->a, l.u.l, pvalue(p, depth + 1));
            ws(p);
            if (p->i < p->n && p->s[p->i] == ',') { p->i++; continue; }
            if (p->i < p->n && p->s[p->i] == ']') { p->i++; return l; }
            bad(p, "expected ',' or ']'");
        }
    }
    if (lit(p, "true")) return jv_bool(true);
    if (lit(p, "false")) return jv_bool(false);
    if (lit(p, "null")) return jv_none();
    /* Python's json.loads also takes these three. */
    if (lit(p, "NaN")) return jv_float(NAN);
    if (lit(p, "Infinity")) return jv_float(INFINITY);
    if (lit(p, "-Infinity")) return jv_float(-INFINITY);
    if (ch == '-' || (ch >= '0' && ch <= '9')) return pnumber(p);
    bad(p, "unexpected character");
}

jv jjson_parse(jctx *c, jarena *a, const char *what, const char *s, size_t n) {
    jp p = {.c = c, .a = a, .what = what, .s = s, .n = n, .i = 0};
    jv v = pvalue(&p, 0);
    ws(&p);
    if (p.i != p.n) bad(&p, "extra data after the value");
    return v;
}

/* ---- dump --------------------------------------------------------------------- */
static void dump_str(jbuf *b, const char *s, size_t n) {
    jbuf_putc(b, '"');
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x20 && ch != '"' && ch != '\\') continue;
        jbuf_put(b, s + run, i - run);
        char e[8];
        switch (ch) {
        case '"': jbuf_put(b, "\\\"", 2); break;
        case '\\': jbuf_put(b, "\\\\", 2); break;
        case '\n': jbuf_put(b, "\\n", 2); break;
        case '\r': jbuf_put(b, "\\r", 2); break;
        case '\t': jbuf_put(b, "\\t", 2); break;
        case '\b': jbuf_put(b, "\\b", 2); break;
        case '\f': jbuf_put(b, "\\f", 2); break;
        default: snprintf(e, sizeof e, "\\u%04x", ch); jbuf_put(b, e, 6);
        }
        run = i + 1;
    }
    jbuf_put(b, s + run, n - run);
    jbuf_putc(b, '"');
}

static void dump_float(jbuf *b, double f) {
    if (isnan(f)) jbuf_put(b, "NaN", 3);
    else if (isinf(f)) jbuf_put(b, f < 0 ? "-Infinity" : "Infinity", f < 0 ? 9 : 8);
    else jv_write_float(b, f);
}

static void newline_indent(jbuf *b, const char *indent, int level) {
    jbuf_putc(b, '\n');
    size_t il = strlen(indent);
    for (int i = 0; i < level; i++) jbuf_put(b, indent, il);
}

typedef struct dump_opts {
    jctx *c;
    int line;
    const char *indent, *item_sep, *key_sep;
    bool sort_keys;
} dump_opts;

static void dump(const dump_opts *o, jbuf *b, jv v, int level) {
    if (level > JJSON_MAX_DEPTH) jfail(o->c, INF_ERANGE, o->line, "maximum recursion depth exceeded in tojson");
    char tmp[32];
    switch (v.t) {
    case JV_NONE: jbuf_put(b, "null", 4); return;
    case JV_BOOL: jbuf_put(b, v.u.b ? "true" : "false", v.u.b ? 4 : 5); return;
    case JV_INT: jbuf_put(b, tmp, (size_t)snprintf(tmp, sizeof tmp, "%lld", (long long)v.u.i)); return;
    case JV_FLOAT: dump_float(b, v.u.f); return;
    case JV_STR: dump_str(b, v.u.s->s, v.u.s->len); return;
    case JV_LIST:
        if (v.flags & JVF_GEN) break;
        if (!v.u.l->n) { jbuf_put(b, "[]", 2); return; }
        jbuf_putc(b, '[');
        for (size_t i = 0; i < v.u.l->n; i++) {
            if (i) jbuf_put(b, o->item_sep, strlen(o->item_sep));
            if (o->indent) newline_indent(b, o->indent, level + 1);
            dump(o, b, v.u.l->v[i], level + 1);
        }
        if (o->indent) newline_indent(b, o->indent, level);
        jbuf_putc(b, ']');
        return;
    case JV_DICT: {
        jdict *d = v.u.d;
        if (!d->n) { jbuf_put(b, "{}", 2); return; }
        size_t *ord = jalloc(b->a, d->n * sizeof *ord);
        for (size_t i = 0; i < d->n; i++) ord[i] = i;
        if (o->sort_keys) { /* insertion sort: stable, dicts here are small */
            for (size_t i = 1; i < d->n; i++) {
                size_t k = ord[i], j = i;
                while (j > 0 && jv_cmp(o->c, o->line, d->k[ord[j - 1]], d->k[k], 0) > 0) {
                    ord[j] = ord[j - 1];
                    j--;
                }
                ord[j] = k;
            }
        }
        jbuf_putc(b, '{');
        for (size_t x = 0; x < d->n; x++) {
            size_t i = ord[x];
            if (x) jbuf_put(b, o->item_sep, strlen(o->item_sep));
            if (o->indent) newline_indent(b, o->indent, level + 1);
            jv k = d->k[i];
            if (k.t == JV_STR) dump_str(b, k.u.s->s, k.u.s->len);
            else if (k.t == JV_INT || k.t == JV_BOOL || k.t == JV_NONE || k.t == JV_FLOAT) {
                jbuf kb;
                jbuf_init(&kb, b->a, b->max);
                dump(o, &kb, k, level + 1);
                dump_str(b, kb.p, kb.n);
            } else
                jfail(o->c, INF_EINVAL, o->line, "keys must be str, int, float, bool or None, not %s",
                      jv_type_name(k));
            jbuf_put(b, o->key_sep, strlen(o->key_sep));
            dump(o, b, d->v[i], level + 1);
        }
        if (o->indent) newline_indent(b, o->indent, level);
        jbuf_putc(b, '}');
        return;
    }
    default: break;
    }
    jfail(o->c, INF_EINVAL, o->line, "Object of type %s is not JSON serializable", jv_type_name(v));
}

void jjson_dump(jctx *c, int line, jbuf *b, jv v, const char *indent, const char *item_sep,
                const char *key_sep, bool sort_keys, int depth) {
    dump_opts o = {.c = c, .line = line, .indent = indent, .sort_keys = sort_keys};
    o.item_sep = item_sep ? item_sep : indent ? "," : ", ";
    o.key_sep = key_sep ? key_sep : ": ";
    dump(&o, b, v, depth);
}
