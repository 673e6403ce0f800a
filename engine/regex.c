/* regex.c - regular expressions -> GBNF (regex.h).
 *
 * A recursive-descent parser writes GBNF expressions as it goes: a group
 * becomes ( ... ), a quantified atom ( atom ){m,n}, a class [ ... ] with
 * every member written as an escape. In JSON-string mode characters are
 * written as they must appear inside a JSON string literal. */
#include "regex.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct rx {
    const char *s;
    size_t len, pos;
    const regex_gbnf_opts *o;
    inf_error *err;
    int rc;
    int depth;
    int top_alt;   /* a '|' at the top level */
} rx;

typedef struct cp_rng {
    uint32_t lo, hi;
} cp_rng;

typedef struct cls {
    cp_rng *r;
    size_t n, cap;
    int neg;
} cls;

static int fail(rx *x, int code, const char *what) {
    if (!x->rc) x->rc = inf_error_set(x->err, code, "regex: at offset %zu: %s", x->pos, what);
    return x->rc;
}

static int peek(const rx *x) { return x->pos < x->len ? (unsigned char)x->s[x->pos] : -1; }

static int next_cp(rx *x, uint32_t *cp) {
    unsigned c = (unsigned char)x->s[x->pos];
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (!n || x->pos + n > x->len) return fail(x, INF_EFORMAT, "invalid UTF-8");
    uint32_t v = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
    for (size_t i = 1; i < n; i++) {
        unsigned b = (unsigned char)x->s[x->pos + i];
        if ((b & 0xC0) != 0x80) return fail(x, INF_EFORMAT, "invalid UTF-8");
        v = (v << 6) | (b & 0x3F);
    }
    if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return fail(x, INF_EFORMAT, "invalid UTF-8");
    x->pos += n;
    *cp = v;
    return 0;
}

static void cls_add(rx *x, cls *c, uint32_t lo, uint32_t hi) {
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 8;
        cp_rng *q = realloc(c->r, cap * sizeof *q);
        if (!q) {
            fail(x, INF_ENOMEM, "out of memory");
            return;
        }
        c->r = q;
        c->cap = cap;
    }
    c->r[c->n++] = (cp_rng){lo, hi};
}

static int cmp_rng(const void *a, const void *b) {
    const cp_rng *p = a, *q = b;
    return p->lo < q->lo ? -1 : p->lo > q->lo;
}

/* Sorted, merged, negation applied, surrogates removed. */
static void cls_normalize(rx *x, cls *c) {
    if (c->n) qsort(c->r, c->n, sizeof *c->r, cmp_rng);
    size_t m = 0;
    for (size_t i = 0; i < c->n; i++) {
        if (m && c->r[i].lo <= c->r[m - 1].hi + 1) {
            if (c->r[i].hi > c->r[m - 1].hi) c->r[m - 1].hi = c->r[i].hi;
        } else {
            c->r[m++] = c->r[i];
        }
    }
    c->n = m;
    cls out = {0};
    uint32_t next = 0;
    for (size_t i = 0; i <= c->n; i++) {
        uint32_t lo = i < c->n ? c->r[i].lo : 0x110000;
        if (c->neg) {
            if (lo > next) {
                cls_add(x, &out, next, lo - 1);
            }
            if (i < c->n) next = c->r[i].hi + 1;
        } else if (i < c->n) {
            cls_add(x, &out, c->r[i].lo, c->r[i].hi);
        }
    }
    free(c->r);
    *c = out;
    /* Cut out the surrogates. */
    cls res = {0};
    for (size_t i = 0; i < c->n; i++) {
        cp_rng r = c->r[i];
        if (r.hi < 0xD800 || r.lo > 0xDFFF) cls_add(x, &res, r.lo, r.hi);
        else {
            if (r.lo < 0xD800) cls_add(x, &res, r.lo, 0xD7FF);
            if (r.hi > 0xDFFF) cls_add(x, &res, 0xE000, r.hi);
        }
    }
    free(c->r);
    *c = res;
}

static int in_cls(const cls *c, uint32_t cp) {
    for (size_t i = 0; i < c->n; i++)
        if (cp >= c->r[i].lo && cp <= c->r[i].hi) return 1;
    return 0;
}

/* Writes the (normalized, positive) class as GBNF; in JSON mode controls are
 * dropped and `"` `\` become their escaped forms. */
static void write_cls(rx *x, cls *c, gtext *t) {
    if (!x->o->json_string) {
        if (!c->n) {
            fail(x, INF_EINVAL, "the class matches no character");
            return;
        }
        gtext_puts(t, "[");
        for (size_t i = 0; i < c->n; i++) {
            gtext_cp(t, c->r[i].lo);
            if (c->r[i].hi != c->r[i].lo) {
                gtext_puts(t, "-");
                gtext_cp(t, c->r[i].hi);
            }
        }
        gtext_puts(t, "]");
        return;
    }
    int q = in_cls(c, '"'), b = in_cls(c, '\\');
    cls k = {0};
    for (size_t i = 0; i < c->n; i++) {
        uint32_t lo = c->r[i].lo < 0x20 ? 0x20 : c->r[i].lo, hi = c->r[i].hi;
        if (lo > hi) continue;
        /* split around '"' (0x22) and '\\' (0x5C) */
        uint32_t cut[2] = {'"', '\\'};
        for (int j = 0; j < 2 && lo <= hi; j++) {
            if (cut[j] < lo || cut[j] > hi) continue;
            if (cut[j] > lo) cls_add(x, &k, lo, cut[j] - 1);
            lo = cut[j] + 1;
        }
        if (lo <= hi) cls_add(x, &k, lo, hi);
    }
    int parts = (k.n > 0) + q + b;
    if (!parts) {
        free(k.r);
        fail(x, INF_EINVAL, "the class matches no character allowed in a JSON string");
        return;
    }
    if (parts > 1) gtext_puts(t, "(");
    int first = 1;
    if (k.n) {
        gtext_puts(t, "[");
        for (size_t i = 0; i < k.n; i++) {
            gtext_cp(t, k.r[i].lo);
            if (k.r[i].hi != k.r[i].lo) {
                gtext_puts(t, "-");
                gtext_cp(t, k.r[i].hi);
            }
        }
        gtext_puts(t, "]");
        first = 0;
    }
    if (q) {
        gtext_puts(t, first ? "\"\\\\\\\"\"" : " | \"\\\\\\\"\"");
        first = 0;
    }
    if (b) gtext_puts(t, first ? "\"\\\\\\\\\"" : " | \"\\\\\\\\\"");
    if (parts > 1) gtext_puts(t, ")");
    free(k.r);
}

static void write_char(rx *x, uint32_t cp, gtext *t) {
    if (x->o->json_string && (cp < 0x20 || cp == '"' || cp == '\\')) {
        char buf[8];
        int n = cp == '"' ? snprintf(buf, sizeof buf, "\\\"") : cp == '\\' ? snprintf(buf, sizeof buf, "\\\\")
                                                                            : snprintf(buf, sizeof buf, "\\u%04x", cp);
        gtext_literal(t, buf, (size_t)n);
        return;
    }
    gtext_puts(t, "[");
    gtext_cp(t, cp);
    gtext_puts(t, "]");
}

/* Class escapes \d \w \s and their complements (ASCII meanings). */
static int class_escape(rx *x, int e, cls *c) {
    switch (e) {
    case 'd': cls_add(x, c, '0', '9'); return 1;
    case 'w': cls_add(x, c, 'a', 'z'); cls_add(x, c, 'A', 'Z'); cls_add(x, c, '0', '9'); cls_add(x, c, '_', '_'); return 1;
    case 's': cls_add(x, c, '\t', '\r'); cls_add(x, c, ' ', ' '); return 1;
    case 'D': cls_add(x, c, 0, 0x2F); cls_add(x, c, 0x3A, 0x7F); return 1;
    case 'W': cls_add(x, c, 0, 0x2F); cls_add(x, c, 0x3A, 0x40); cls_add(x, c, 0x5B, 0x5E); cls_add(x, c, 0x60, 0x60);
              cls_add(x, c, 0x7B, 0x7F); return 1;
    case 'S': cls_add(x, c, 0, 0x08); cls_add(x, c, 0x0E, 0x1B); cls_add(x, c, 0x21, 0x7F); return 1;
    default: return 0;
    }
}

static int hexv(int c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* A single-character escape after the backslash (pos at the letter); *cp
 * gets it. 0 ok; the caller handled class escapes already. */
static int char_escape(rx *x, uint32_t *cp) {
    int e = peek(x);
    if (e < 0) return fail(x, INF_EFORMAT, "trailing backslash");
    int nh = e == 'x' ? 2 : e == 'u' ? 4 : 0;
    if (nh) {
        uint32_t v = 0;
        for (int i = 1; i <= nh; i++) {
            int h = x->pos + (size_t)i < x->len ? hexv((unsigned char)x->s[x->pos + (size_t)i]) : -1;
            if (h < 0) return fail(x, INF_EFORMAT, nh == 2 ? "expecting 2 hex digits after \\x" : "expecting 4 hex digits after \\u");
            v = (v << 4) | (uint32_t)h;
        }
        if (v >= 0xD800 && v <= 0xDFFF) return fail(x, INF_EUNSUPPORTED, "surrogate escapes are not supported");
        x->pos += 1 + (size_t)nh;
        *cp = v;
        return 0;
    }
    static const char *simple = "ntrfv0", *vals = "\n\t\r\f\v";
    const char *q = strchr(simple, e);
    if (q && e) {
        *cp = e == '0' ? 0 : (uint32_t)(unsigned char)vals[q - simple];
        x->pos++;
        return 0;
    }
    if (e >= '1' && e <= '9') return fail(x, INF_EUNSUPPORTED, "backreferences are not supported");
    if (e == 'b' || e == 'B') return fail(x, INF_EUNSUPPORTED, "word boundaries (\\b, \\B) are not supported");
    if (e == 'A' || e == 'Z' || e == 'z' || e == 'G')
        return fail(x, INF_EUNSUPPORTED, "anchors other than ^ at the start and $ at the end are not supported");
    if ((e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z')) return fail(x, INF_EFORMAT, "unknown escape");
    return next_cp(x, cp); /* escaped punctuation or any other character stands for itself */
}

static void parse_class(rx *x, gtext *t) {
    x->pos++; /* [ */
    cls c = {0};
    if (peek(x) == '^') {
        c.neg = 1;
        x->pos++;
    }
    int first = 1;
    while (!x->rc) {
        int ch = peek(x);
        if (ch < 0) {
            fail(x, INF_EFORMAT, "unterminated character class");
            break;
        }
        if (ch == ']' && !first) {
            x->pos++;
            break;
        }
        first = 0;
        uint32_t lo;
        if (ch == '\\') {
            x->pos++;
            if (class_escape(x, peek(x), &c)) {
                x->pos++;
                continue;
            }
            if (peek(x) == 'b') { /* \b in a class is backspace */
                x->pos++;
                lo = 8;
            } else if (char_escape(x, &lo)) {
                break;
            }
        } else if (next_cp(x, &lo)) {
            break;
        }
        uint32_t hi = lo;
        if (peek(x) == '-' && x->pos + 1 < x->len && x->s[x->pos + 1] != ']') {
            x->pos++;
            if (peek(x) == '\\') {
                x->pos++;
                if (char_escape(x, &hi)) break;
            } else if (next_cp(x, &hi)) {
                break;
            }
            if (hi < lo) {
                fail(x, INF_EFORMAT, "character range is reversed");
                break;
            }
        }
        cls_add(x, &c, lo, hi);
    }
    if (!x->rc) {
        cls_normalize(x, &c);
        write_cls(x, &c, t);
    }
    free(c.r);
}

static void parse_alt(rx *x, gtext *t);

/* {m}, {m,}, {m,n}, {,n}: 1 and the bounds if pos is at one, else 0. */
static int parse_braces(rx *x, int *min, int *max) {
    size_t p = x->pos + 1;
    long a = -1, b = -1;
    while (p < x->len && x->s[p] >= '0' && x->s[p] <= '9') {
        a = (a < 0 ? 0 : a) * 10 + (x->s[p] - '0');
        if (a > 100000) a = 100000;
        p++;
    }
    int comma = 0;
    if (p < x->len && x->s[p] == ',') {
        comma = 1;
        p++;
        while (p < x->len && x->s[p] >= '0' && x->s[p] <= '9') {
            b = (b < 0 ? 0 : b) * 10 + (x->s[p] - '0');
            if (b > 100000) b = 100000;
            p++;
        }
    }
    if (p >= x->len || x->s[p] != '}' || (a < 0 && b < 0)) return 0;
    *min = a < 0 ? 0 : (int)a;
    *max = comma ? (b < 0 ? -1 : (int)b) : (int)a;
    x->pos = p + 1;
    return 1;
}

static void parse_seq(rx *x, gtext *t) {
    int empty = 1;
    while (!x->rc) {
        int c = peek(x);
        if (c < 0 || c == '|' || c == ')') break;
        gtext atom;
        gtext_init(&atom);
        size_t at = x->pos;
        if (c == '(') {
            x->pos++;
            if (peek(x) == '?') {
                x->pos++;
                int d = peek(x);
                if (d == ':') x->pos++;
                else if (d == 'P' && x->pos + 1 < x->len && x->s[x->pos + 1] == '<') {
                    while (x->pos < x->len && x->s[x->pos] != '>') x->pos++;
                    x->pos++;
                } else if (d == '<' && x->pos + 1 < x->len && x->s[x->pos + 1] != '=' && x->s[x->pos + 1] != '!') {
                    while (x->pos < x->len && x->s[x->pos] != '>') x->pos++;
                    x->pos++;
                } else if (d == '=' || d == '!' || d == '<') {
                    fail(x, INF_EUNSUPPORTED, "lookaround is not supported");
                } else {
                    fail(x, INF_EUNSUPPORTED, "inline flags and other (? groups are not supported");
                }
            }
            if (++x->depth > 200) fail(x, INF_ERANGE, "groups nested deeper than 200");
            gtext_puts(&atom, "(");
            parse_alt(x, &atom);
            gtext_puts(&atom, ")");
            x->depth--;
            if (!x->rc && peek(x) != ')') fail(x, INF_EFORMAT, "missing ')'");
            x->pos++;
        } else if (c == '[') {
            parse_class(x, &atom);
        } else if (c == '.') {
            x->pos++;
            cls k = {0};
            k.neg = 1;
            cls_add(x, &k, '\n', '\n');
            cls_normalize(x, &k);
            write_cls(x, &k, &atom);
            free(k.r);
        } else if (c == '^') {
            if (x->pos != 0) fail(x, INF_EUNSUPPORTED, "^ is supported only at the start");
            x->pos++;
            gtext_free(&atom);
            continue;
        } else if (c == '$') {
            if (x->pos + 1 != x->len) fail(x, INF_EUNSUPPORTED, "$ is supported only at the end");
            x->pos++;
            gtext_free(&atom);
            continue;
        } else if (c == '*' || c == '+' || c == '?') {
            fail(x, INF_EFORMAT, "nothing to repeat");
        } else if (c == '\\') {
            x->pos++;
            cls k = {0};
            if (class_escape(x, peek(x), &k)) {
                x->pos++;
                cls_normalize(x, &k);
                write_cls(x, &k, &atom);
            } else {
                uint32_t cp;
                if (!char_escape(x, &cp)) write_char(x, cp, &atom);
            }
            free(k.r);
        } else {
            uint32_t cp;
            if (!next_cp(x, &cp)) write_char(x, cp, &atom);
        }
        (void)at;
        /* quantifier */
        int min = 1, max = 1, q = 0;
        c = peek(x);
        if (!x->rc && (c == '*' || c == '+' || c == '?')) {
            x->pos++;
            min = c == '+' ? 1 : 0;
            max = c == '?' ? 1 : -1;
            q = 1;
        } else if (!x->rc && c == '{' && parse_braces(x, &min, &max)) {
            q = 1;
            if (max >= 0 && max < min) fail(x, INF_EFORMAT, "repetition maximum is below its minimum");
            if (min > 10000 || max > 10000) fail(x, INF_ERANGE, "repetition count above 10000");
        }
        if (q && !x->rc) {
            if (peek(x) == '?') x->pos++; /* lazy: same language */
            else if (peek(x) == '+') fail(x, INF_EUNSUPPORTED, "possessive quantifiers are not supported");
            if (peek(x) == '*' || peek(x) == '+' || peek(x) == '?' ||
                (peek(x) == '{' && x->pos + 1 < x->len && x->s[x->pos + 1] >= '0' && x->s[x->pos + 1] <= '9'))
                fail(x, INF_EFORMAT, "multiple repeat");
        }
        if (!x->rc) {
            if (!empty) gtext_puts(t, " ");
            if (q) {
                gtext_puts(t, "(");
                gtext_put(t, atom.s ? atom.s : "", atom.len);
                if (min == 0 && max == -1) gtext_puts(t, ")*");
                else if (min == 1 && max == -1) gtext_puts(t, ")+");
                else if (min == 0 && max == 1) gtext_puts(t, ")?");
                else if (max < 0) gtext_printf(t, "){%d,}", min);
                else gtext_printf(t, "){%d,%d}", min, max);
            } else {
                gtext_put(t, atom.s ? atom.s : "", atom.len);
            }
            empty = 0;
        }
        gtext_free(&atom);
    }
    if (empty) gtext_puts(t, "\"\"");
}

static void parse_alt(rx *x, gtext *t) {
    parse_seq(x, t);
    while (!x->rc && peek(x) == '|') {
        if (x->depth == 0) x->top_alt = 1;
        x->pos++;
        gtext_puts(t, " | ");
        parse_seq(x, t);
    }
}

int regex_to_gbnf(const char *re, size_t len, const regex_gbnf_opts *o, gtext *out, inf_error *err) {
    if (!re) return inf_error_set(err, INF_EINVAL, "regex: NULL");
    if (!len) len = strlen(re);
    rx x = {re, len, 0, o, err, 0, 0, 0};
    gtext body;
    gtext_init(&body);
    parse_alt(&x, &body);
    if (!x.rc && x.pos < len) fail(&x, INF_EFORMAT, "unbalanced ')'");
    int anch_start = len && re[0] == '^', anch_end = len && re[len - 1] == '$' && (len < 2 || re[len - 2] != '\\');
    if (!x.rc && o->search && x.top_alt && (anch_start || anch_end))
        fail(&x, INF_EUNSUPPORTED, "anchors with a top-level '|' are not supported (group the alternatives)");
    if (x.rc) {
        gtext_free(&body);
        return x.rc;
    }
    int pre = o->search && !anch_start, post = o->search && !anch_end;
    gtext_printf(out, "%s ::= ", o->rule);
    if (pre) gtext_printf(out, "%s-any* ", o->rule);
    gtext_puts(out, "(");
    gtext_put(out, body.s ? body.s : "\"\"", body.s ? body.len : 2);
    gtext_puts(out, ")");
    if (post) gtext_printf(out, " %s-any*", o->rule);
    gtext_puts(out, "\n");
    if (pre || post) {
        if (o->json_string) gtext_printf(out, "%s-any ::= [^\"\\\\\\x00-\\x1F] | \"\\\\\\\"\" | \"\\\\\\\\\"\n", o->rule);
        else gtext_printf(out, "%s-any ::= [^\\n]\n", o->rule);
    }
    gtext_free(&body);
    return out->failed ? inf_error_set(err, INF_ENOMEM, "regex: out of memory") : 0;
}
