/* grammar_parse.c - GBNF text -> the byte-level automaton (grammar_internal.h).
 *
 * The parser follows llama.cpp's GBNF semantics (see grammar.h): repetitions
 * are rewritten into generated rules (S* -> S' ::= S S' | ""), groups become
 * generated rules, and character classes are compiled to UTF-8 byte ranges
 * (a class with only one-byte members is a single byte-set element; wider
 * ones a generated rule with one alternative per byte-range sequence).
 */
#include <stdlib.h>
#include <string.h>

#include "grammar_internal.h"

#define P_ALT 3u /* parse-time alternative separator (never in a compiled grammar) */

typedef struct prule {
    uint32_t *e;
    size_t n, cap;
    const char *name; /* points into the source; NULL for generated rules */
    size_t name_len;
    uint32_t base;    /* the named rule a generated rule belongs to (for messages) */
    int defined;
    size_t ref_at;    /* offset of the first reference (undefined-rule messages) */
} prule;

typedef struct parser {
    const char *src;
    size_t len, pos;
    prule *rules;
    size_t n_rules, cap_rules;
    gram_set *sets;
    size_t n_sets, cap_sets;
    size_t total; /* elements so far, for GRAMMAR_MAX_ELEMS */
    inf_error *err;
} parser;

/* ---- errors and positions ---- */

static void line_col(const parser *p, size_t at, int *line, int *col) {
    int l = 1, c = 1;
    for (size_t i = 0; i < at && i < p->len; i++) {
        if (p->src[i] == '\n') {
            l++;
            c = 1;
        } else {
            c++;
        }
    }
    *line = l;
    *col = c;
}

static int syntax(parser *p, const char *what) {
    int l, c;
    line_col(p, p->pos, &l, &c);
    return inf_error_set(p->err, INF_EFORMAT, "grammar: line %d, column %d: %s", l, c, what);
}

static int oom(parser *p) { return inf_error_set(p->err, INF_ENOMEM, "grammar: out of memory"); }

static int peek(const parser *p, size_t k) { return p->pos + k < p->len ? (unsigned char)p->src[p->pos + k] : 0; }

static int at_end(const parser *p) { return p->pos >= p->len; }

/* ---- rules and element lists ---- */

static int new_rule(parser *p, const char *name, size_t name_len, uint32_t base, uint32_t *id) {
    if (p->n_rules == p->cap_rules) {
        size_t cap = p->cap_rules ? 2 * p->cap_rules : 32;
        prule *r = realloc(p->rules, cap * sizeof *r);
        if (!r) return oom(p);
        p->rules = r;
        p->cap_rules = cap;
    }
    prule *r = &p->rules[p->n_rules];
    memset(r, 0, sizeof *r);
    r->name = name;
    r->name_len = name_len;
    r->base = name ? (uint32_t)p->n_rules : base;
    *id = (uint32_t)p->n_rules++;
    return 0;
}

/* The id of the named rule, created (undefined) when first seen. */
static int rule_id(parser *p, const char *name, size_t len, uint32_t *id) {
    for (size_t i = 0; i < p->n_rules; i++)
        if (p->rules[i].name && p->rules[i].name_len == len && !memcmp(p->rules[i].name, name, len)) {
            *id = (uint32_t)i;
            return 0;
        }
    int rc = new_rule(p, name, len, 0, id);
    if (!rc) p->rules[*id].ref_at = (size_t)(name - p->src);
    return rc;
}

static int push(parser *p, uint32_t rid, uint32_t e) {
    prule *r = &p->rules[rid];
    if (++p->total > GRAMMAR_MAX_ELEMS)
        return inf_error_set(p->err, INF_ERANGE, "grammar: more than %u elements after expanding repetitions",
                             GRAMMAR_MAX_ELEMS);
    if (r->n == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 16;
        uint32_t *q = realloc(r->e, cap * sizeof *q);
        if (!q) return oom(p);
        r->e = q;
        r->cap = cap;
    }
    r->e[r->n++] = e;
    return 0;
}

/* Index of set s in the set table (deduplicated). */
static int set_index(parser *p, const gram_set *s, uint32_t *idx) {
    for (size_t i = 0; i < p->n_sets; i++)
        if (!memcmp(&p->sets[i], s, sizeof *s)) {
            *idx = (uint32_t)i;
            return 0;
        }
    if (p->n_sets == p->cap_sets) {
        size_t cap = p->cap_sets ? 2 * p->cap_sets : 64;
        gram_set *q = realloc(p->sets, cap * sizeof *q);
        if (!q) return oom(p);
        p->sets = q;
        p->cap_sets = cap;
    }
    p->sets[p->n_sets] = *s;
    *idx = (uint32_t)p->n_sets++;
    return 0;
}

static void set_range(gram_set *s, unsigned lo, unsigned hi) {
    for (unsigned b = lo; b <= hi; b++) s->w[b >> 5] |= 1u << (b & 31);
}

static int push_term(parser *p, uint32_t rid, unsigned lo, unsigned hi) {
    gram_set s;
    memset(&s, 0, sizeof s);
    set_range(&s, lo, hi);
    uint32_t idx;
    int rc = set_index(p, &s, &idx);
    return rc ? rc : push(p, rid, GE_MAKE(GE_TERM, idx));
}

/* ---- characters ---- */

static int utf8_encode(uint32_t c, uint8_t *b) {
    if (c < 0x80) { b[0] = (uint8_t)c; return 1; }
    if (c < 0x800) { b[0] = (uint8_t)(0xC0 | (c >> 6)); b[1] = (uint8_t)(0x80 | (c & 0x3F)); return 2; }
    if (c < 0x10000) {
        b[0] = (uint8_t)(0xE0 | (c >> 12));
        b[1] = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
        b[2] = (uint8_t)(0x80 | (c & 0x3F));
        return 3;
    }
    b[0] = (uint8_t)(0xF0 | (c >> 18));
    b[1] = (uint8_t)(0x80 | ((c >> 12) & 0x3F));
    b[2] = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
    b[3] = (uint8_t)(0x80 | (c & 0x3F));
    return 4;
}

/* Decodes one UTF-8 character of the source; -1 if invalid. */
static int decode_src(parser *p, uint32_t *cp) {
    unsigned c0 = (unsigned)peek(p, 0);
    int n = c0 < 0x80 ? 1 : (c0 >> 5) == 6 ? 2 : (c0 >> 4) == 14 ? 3 : (c0 >> 3) == 30 ? 4 : 0;
    if (!n || p->pos + (size_t)n > p->len) return -1;
    uint32_t c = n == 1 ? c0 : n == 2 ? (c0 & 0x1F) : n == 3 ? (c0 & 0x0F) : (c0 & 0x07);
    for (int i = 1; i < n; i++) {
        unsigned b = (unsigned)peek(p, (size_t)i);
        if ((b & 0xC0) != 0x80) return -1;
        c = (c << 6) | (b & 0x3F);
    }
    static const uint32_t min_of[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (c < min_of[n] || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return -1;
    p->pos += (size_t)n;
    *cp = c;
    return 0;
}

static int hexval(int c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* One character of a literal or class, escapes included. */
static int parse_char(parser *p, uint32_t *cp) {
    if (at_end(p)) return syntax(p, "unexpected end of input");
    if (peek(p, 0) != '\\') {
        if (decode_src(p, cp)) return syntax(p, "invalid UTF-8 in the grammar text");
        return 0;
    }
    int e = peek(p, 1);
    int nhex = e == 'x' ? 2 : e == 'u' ? 4 : e == 'U' ? 8 : 0;
    if (nhex) {
        uint32_t v = 0;
        for (int i = 0; i < nhex; i++) {
            int h = hexval(peek(p, 2 + (size_t)i));
            if (h < 0) {
                p->pos += 2;
                return syntax(p, nhex == 2 ? "expecting 2 hex digits after \\x"
                                  : nhex == 4 ? "expecting 4 hex digits after \\u"
                                              : "expecting 8 hex digits after \\U");
            }
            v = (v << 4) | (uint32_t)h;
        }
        if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
            return syntax(p, "escape is not a Unicode scalar value");
        p->pos += 2 + (size_t)nhex;
        *cp = v;
        return 0;
    }
    switch (e) {
    case 't': *cp = '\t'; break;
    case 'r': *cp = '\r'; break;
    case 'n': *cp = '\n'; break;
    case '\\': case '"': case '[': case ']': *cp = (uint32_t)e; break;
    default: return syntax(p, "unknown escape");
    }
    p->pos += 2;
    return 0;
}

/* ---- code point classes -> UTF-8 byte ranges ---- */

typedef struct cp_range {
    uint32_t lo, hi;
} cp_range;

static int cmp_range(const void *a, const void *b) {
    const cp_range *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* Sorts and merges r[0..n); returns the new count. */
static size_t normalize(cp_range *r, size_t n) {
    if (!n) return 0;
    qsort(r, n, sizeof *r, cmp_range);
    size_t m = 0;
    for (size_t i = 1; i < n; i++) {
        if (r[i].lo <= r[m].hi + 1) {
            if (r[i].hi > r[m].hi) r[m].hi = r[i].hi;
        } else {
            r[++m] = r[i];
        }
    }
    return m + 1;
}

typedef struct class_out {
    parser *p;
    gram_set single; /* one-byte members */
    int has_single;
    uint32_t rid;    /* generated rule receiving multi-byte alternatives */
    int has_multi;
} class_out;

/* Emits the byte-range sequences of [lo, hi], which have one encoded length. */
static int split_same_len(class_out *o, uint32_t lo, uint32_t hi) {
    uint8_t a[4], b[4];
    int n = utf8_encode(lo, a);
    if (n == 1) {
        set_range(&o->single, lo, hi);
        o->has_single = 1;
        return 0;
    }
    for (int i = 1; i < n; i++) {
        uint32_t m = (1u << (6 * i)) - 1;
        if ((lo & ~m) != (hi & ~m)) {
            if (lo & m) {
                int rc = split_same_len(o, lo, lo | m);
                return rc ? rc : split_same_len(o, (lo | m) + 1, hi);
            }
            if ((hi & m) != m) {
                int rc = split_same_len(o, lo, (hi & ~m) - 1);
                return rc ? rc : split_same_len(o, hi & ~m, hi);
            }
        }
    }
    utf8_encode(hi, b);
    parser *p = o->p;
    if (o->has_multi) {
        int rc = push(p, o->rid, GE_MAKE(P_ALT, 0));
        if (rc) return rc;
    }
    o->has_multi = 1;
    for (int k = 0; k < n; k++) {
        int rc = push_term(p, o->rid, a[k], b[k]);
        if (rc) return rc;
    }
    return 0;
}

/* Appends to rule `into` one element matching exactly one character of the
 * normalized ranges r[0..n) (no surrogates inside). */
static int emit_class(parser *p, uint32_t into, const cp_range *r, size_t n) {
    class_out o;
    memset(&o, 0, sizeof o);
    o.p = p;
    int rc = new_rule(p, NULL, 0, p->rules[into].base, &o.rid);
    if (rc) return rc;
    static const uint32_t bounds[] = {0x7F, 0x7FF, 0xFFFF, 0x10FFFF};
    for (size_t i = 0; i < n; i++) {
        uint32_t lo = r[i].lo;
        for (int k = 0; k < 4 && lo <= r[i].hi; k++) {
            if (lo > bounds[k]) continue;
            uint32_t hi = r[i].hi < bounds[k] ? r[i].hi : bounds[k];
            if ((rc = split_same_len(&o, lo, hi))) return rc;
            lo = hi + 1;
        }
    }
    uint32_t idx;
    if (o.has_single && (rc = set_index(p, &o.single, &idx))) return rc;
    if (!o.has_multi) {
        /* One byte-set element inline; the generated rule stays empty and unused. */
        p->rules[o.rid].defined = 1;
        if ((rc = push(p, o.rid, GE_MAKE(GE_TERM, idx)))) return rc;
        return push(p, into, GE_MAKE(GE_TERM, idx));
    }
    if (o.has_single) {
        if ((rc = push(p, o.rid, GE_MAKE(P_ALT, 0)))) return rc;
        if ((rc = push(p, o.rid, GE_MAKE(GE_TERM, idx)))) return rc;
    }
    p->rules[o.rid].defined = 1;
    return push(p, into, GE_MAKE(GE_REF, o.rid));
}

/* Removes surrogates and, when negate, complements over the scalar values.
 * out has room for 2 * n + 4 ranges. */
static size_t finish_ranges(cp_range *r, size_t n, int negate, cp_range *out) {
    n = normalize(r, n);
    cp_range *tmp = out + n + 2; /* second half of out */
    size_t m = 0;
    if (negate) {
        uint32_t next = 0;
        for (size_t i = 0; i < n; i++) {
            if (r[i].lo > next) tmp[m++] = (cp_range){next, r[i].lo - 1};
            next = r[i].hi + 1;
        }
        if (next <= 0x10FFFF) tmp[m++] = (cp_range){next, 0x10FFFF};
    } else {
        memcpy(tmp, r, n * sizeof *r);
        m = n;
    }
    size_t k = 0;
    for (size_t i = 0; i < m; i++) {
        cp_range x = tmp[i];
        if (x.hi < 0xD800 || x.lo > 0xDFFF) {
            out[k++] = x;
            continue;
        }
        if (x.lo < 0xD800) out[k++] = (cp_range){x.lo, 0xD7FF};
        if (x.hi > 0xDFFF) out[k++] = (cp_range){0xE000, x.hi};
    }
    return k;
}

static int parse_class(parser *p, uint32_t into) {
    p->pos++; /* [ */
    int negate = 0;
    if (peek(p, 0) == '^') {
        negate = 1;
        p->pos++;
    }
    size_t cap = 16, n = 0;
    cp_range *r = malloc((cap + 2) * sizeof *r), *fin = NULL;
    if (!r) return oom(p);
    int rc = 0;
    while (!at_end(p) && peek(p, 0) != ']') {
        uint32_t lo, hi;
        if ((rc = parse_char(p, &lo))) goto out;
        hi = lo;
        if (peek(p, 0) == '-' && peek(p, 1) != ']' && p->pos + 1 < p->len) {
            p->pos++;
            if ((rc = parse_char(p, &hi))) goto out;
            if (hi < lo) {
                rc = syntax(p, "character range is reversed");
                goto out;
            }
        }
        if (n == cap) {
            cp_range *q = realloc(r, (2 * cap + 2) * sizeof *q);
            if (!q) {
                rc = oom(p);
                goto out;
            }
            r = q;
            cap *= 2;
        }
        r[n++] = (cp_range){lo, hi};
    }
    if (at_end(p)) {
        rc = syntax(p, "unexpected end of input in a character class");
        goto out;
    }
    p->pos++; /* ] */
    fin = malloc((2 * n + 8) * sizeof *fin);
    if (!fin) {
        rc = oom(p);
        goto out;
    }
    size_t m = finish_ranges(r, n, negate, fin);
    if (!m) {
        rc = syntax(p, "character class matches no character");
        goto out;
    }
    rc = emit_class(p, into, fin, m);
out:
    free(r);
    free(fin);
    return rc;
}

/* ---- structure ---- */

static int is_word(int c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

static void skip_space(parser *p, int newline_ok) {
    while (!at_end(p)) {
        int c = peek(p, 0);
        if (c == '#') {
            while (!at_end(p) && peek(p, 0) != '\n' && peek(p, 0) != '\r') p->pos++;
        } else if (c == ' ' || c == '\t' || (newline_ok && (c == '\n' || c == '\r'))) {
            p->pos++;
        } else {
            break;
        }
    }
}

static int parse_int(parser *p, int *v) {
    if (!(peek(p, 0) >= '0' && peek(p, 0) <= '9')) return syntax(p, "expecting an integer");
    long x = 0;
    while (peek(p, 0) >= '0' && peek(p, 0) <= '9') {
        x = x * 10 + (peek(p, 0) - '0');
        if (x > GRAMMAR_MAX_REPEAT)
            return inf_error_set(p->err, INF_ERANGE, "grammar: repetition count above %d", GRAMMAR_MAX_REPEAT);
        p->pos++;
    }
    *v = (int)x;
    return 0;
}

static int parse_alternates(parser *p, uint32_t rid, int nested);

/* S{min,max} (max < 0: unbounded) applied to rule rid's elements from `from`. */
static int repeat(parser *p, uint32_t rid, size_t from, int min, int max) {
    prule *r = &p->rules[rid];
    size_t plen = r->n - from;
    if (!plen) return syntax(p, "expecting an item before the repetition operator");
    uint32_t *prev = malloc(plen * sizeof *prev);
    if (!prev) return oom(p);
    memcpy(prev, r->e + from, plen * sizeof *prev);
    int rc = 0;
    if (min == 0) {
        p->total -= r->n - from;
        r->n = from;
    }
    for (int i = 1; i < min && !rc; i++)
        for (size_t k = 0; k < plen && !rc; k++) rc = push(p, rid, prev[k]);
    /* The optional tail: S' ::= S S' | "" (unbounded), or max - min nested
     * optional copies S'(x) ::= S S'(x-1) | "". */
    int n_opt = max < 0 ? 1 : max - min;
    uint32_t last = 0;
    for (int i = 0; i < n_opt && !rc; i++) {
        uint32_t gid;
        if ((rc = new_rule(p, NULL, 0, p->rules[rid].base, &gid))) break;
        for (size_t k = 0; k < plen && !rc; k++) rc = push(p, gid, prev[k]);
        if (!rc && (i > 0 || max < 0)) rc = push(p, gid, GE_MAKE(GE_REF, max < 0 ? gid : last));
        if (!rc) rc = push(p, gid, GE_MAKE(P_ALT, 0));
        p->rules[gid].defined = 1;
        last = gid;
    }
    if (!rc && n_opt > 0) rc = push(p, rid, GE_MAKE(GE_REF, last));
    free(prev);
    return rc;
}

static int parse_sequence(parser *p, uint32_t rid, int nested) {
    size_t last = p->rules[rid].n;
    int rc = 0;
    while (!at_end(p) && !rc) {
        int c = peek(p, 0);
        if (c == '"') {
            p->pos++;
            last = p->rules[rid].n;
            while (!rc && peek(p, 0) != '"') {
                if (at_end(p)) return syntax(p, "unexpected end of input in a literal");
                uint32_t cp;
                uint8_t b[4];
                if ((rc = parse_char(p, &cp))) return rc;
                int n = utf8_encode(cp, b);
                for (int i = 0; i < n && !rc; i++) rc = push_term(p, rid, b[i], b[i]);
            }
            p->pos++;
            skip_space(p, nested);
        } else if (c == '[') {
            last = p->rules[rid].n;
            rc = parse_class(p, rid);
            skip_space(p, nested);
        } else if (c == '.') {
            last = p->rules[rid].n;
            p->pos++;
            cp_range any[2] = {{0, 0xD7FF}, {0xE000, 0x10FFFF}};
            rc = emit_class(p, rid, any, 2);
            skip_space(p, nested);
        } else if (is_word(c)) {
            size_t s = p->pos;
            while (is_word(peek(p, 0))) p->pos++;
            uint32_t ref;
            if ((rc = rule_id(p, p->src + s, p->pos - s, &ref))) return rc;
            last = p->rules[rid].n;
            rc = push(p, rid, GE_MAKE(GE_REF, ref));
            skip_space(p, nested);
        } else if (c == '(') {
            p->pos++;
            skip_space(p, 1);
            uint32_t gid;
            if ((rc = new_rule(p, NULL, 0, p->rules[rid].base, &gid))) return rc;
            if ((rc = parse_alternates(p, gid, 1))) return rc;
            p->rules[gid].defined = 1;
            if (peek(p, 0) != ')') return syntax(p, "expecting ')'");
            p->pos++;
            last = p->rules[rid].n;
            rc = push(p, rid, GE_MAKE(GE_REF, gid));
            skip_space(p, nested);
        } else if (c == '*' || c == '+' || c == '?') {
            p->pos++;
            skip_space(p, nested);
            rc = repeat(p, rid, last, c == '+' ? 1 : 0, c == '?' ? 1 : -1);
        } else if (c == '{') {
            p->pos++;
            skip_space(p, nested);
            int min = 0, max = -1;
            if (peek(p, 0) != ',') {
                if ((rc = parse_int(p, &min))) return rc;
                skip_space(p, nested);
            }
            if (peek(p, 0) == '}') {
                max = min;
            } else if (peek(p, 0) == ',') {
                p->pos++;
                skip_space(p, nested);
                if (peek(p, 0) >= '0' && peek(p, 0) <= '9') {
                    if ((rc = parse_int(p, &max))) return rc;
                    skip_space(p, nested);
                }
                if (peek(p, 0) != '}') return syntax(p, "expecting '}'");
            } else {
                return syntax(p, "expecting ',' or '}'");
            }
            if (max >= 0 && max < min) return syntax(p, "repetition maximum is below its minimum");
            p->pos++;
            skip_space(p, nested);
            rc = repeat(p, rid, last, min, max);
        } else {
            break;
        }
    }
    return rc;
}

static int parse_alternates(parser *p, uint32_t rid, int nested) {
    int rc = parse_sequence(p, rid, nested);
    while (!rc && peek(p, 0) == '|') {
        p->pos++;
        skip_space(p, 1);
        if (!(rc = push(p, rid, GE_MAKE(P_ALT, 0)))) rc = parse_sequence(p, rid, nested);
    }
    return rc;
}

static int parse_rule(parser *p) {
    size_t s = p->pos;
    if (!is_word(peek(p, 0))) return syntax(p, "expecting a rule name");
    while (is_word(peek(p, 0))) p->pos++;
    uint32_t rid;
    int rc = rule_id(p, p->src + s, p->pos - s, &rid);
    if (rc) return rc;
    if (p->rules[rid].defined) {
        p->pos = s;
        return inf_error_set(p->err, INF_EINVAL, "grammar: rule '%.*s' is defined twice",
                             (int)(p->rules[rid].name_len > 64 ? 64 : p->rules[rid].name_len), p->rules[rid].name);
    }
    p->rules[rid].defined = 1;
    skip_space(p, 0);
    if (!(peek(p, 0) == ':' && peek(p, 1) == ':' && peek(p, 2) == '=')) return syntax(p, "expecting ::=");
    p->pos += 3;
    skip_space(p, 1);
    if ((rc = parse_alternates(p, rid, 0))) return rc;
    if (peek(p, 0) == '\r') p->pos += peek(p, 1) == '\n' ? 2 : 1;
    else if (peek(p, 0) == '\n') p->pos++;
    else if (!at_end(p)) return syntax(p, "expecting newline or end");
    skip_space(p, 1);
    return 0;
}

/* ---- checks and flattening ---- */

static int name_of(const parser *p, uint32_t r, const char **name) {
    const prule *b = &p->rules[p->rules[r].base];
    *name = b->name ? b->name : "?";
    return b->name ? (int)(b->name_len > 64 ? 64 : b->name_len) : 1;
}

/* Left recursion: a rule reaching itself through leading positions whose
 * preceding elements can all match the empty string. */
static int check_left_recursion(parser *p) {
    size_t n = p->n_rules;
    uint8_t *nullable = calloc(n, 1), *color = calloc(n, 1);
    uint32_t *stack = malloc((2 * n + 1) * sizeof *stack);
    int rc = 0;
    if (!nullable || !color || !stack) {
        rc = oom(p);
        goto out;
    }
    for (int changed = 1; changed;) {
        changed = 0;
        for (size_t r = 0; r < n; r++) {
            if (nullable[r]) continue;
            const prule *R = &p->rules[r];
            int ok = 1;
            for (size_t i = 0; i <= R->n; i++) {
                if (i == R->n || GE_KIND(R->e[i]) == P_ALT) {
                    if (ok) {
                        nullable[r] = 1;
                        changed = 1;
                        break;
                    }
                    ok = 1;
                    continue;
                }
                uint32_t e = R->e[i];
                if (GE_KIND(e) == GE_TERM || (GE_KIND(e) == GE_REF && !nullable[GE_ARG(e)])) ok = 0;
            }
        }
    }
    /* Iterative DFS over "leading reference" edges; color 1 = on the path. */
    for (size_t r0 = 0; r0 < n && !rc; r0++) {
        if (color[r0]) continue;
        size_t sp = 0;
        stack[sp++] = (uint32_t)r0;
        stack[sp++] = 0;
        color[r0] = 1;
        while (sp && !rc) {
            uint32_t r = stack[sp - 2], i = stack[sp - 1];
            const prule *R = &p->rules[r];
            /* next leading reference at or after i */
            int lead = 1;
            for (size_t k = 0; k < i && k < R->n; k++) {
                uint32_t e = R->e[k];
                if (GE_KIND(e) == P_ALT) lead = 1;
                else if (GE_KIND(e) == GE_TERM || (GE_KIND(e) == GE_REF && !nullable[GE_ARG(e)])) lead = 0;
            }
            uint32_t child = UINT32_MAX;
            for (; i < R->n; i++) {
                uint32_t e = R->e[i];
                if (GE_KIND(e) == P_ALT) {
                    lead = 1;
                    continue;
                }
                if (lead && GE_KIND(e) == GE_REF) {
                    child = GE_ARG(e);
                    i++;
                    break;
                }
                if (GE_KIND(e) == GE_TERM || (GE_KIND(e) == GE_REF && !nullable[GE_ARG(e)])) lead = 0;
            }
            stack[sp - 1] = i;
            if (child == UINT32_MAX) {
                color[r] = 2;
                sp -= 2;
            } else if (color[child] == 1) {
                const char *nm;
                int nl = name_of(p, child, &nm);
                rc = inf_error_set(p->err, INF_EINVAL, "grammar: rule '%.*s' is left-recursive", nl, nm);
            } else if (!color[child]) {
                color[child] = 1;
                stack[sp++] = child;
                stack[sp++] = 0;
            }
        }
    }
out:
    free(nullable);
    free(color);
    free(stack);
    return rc;
}

static int flatten(parser *p, grammar *g) {
    size_t n_alts = 0, n_el = 0;
    for (size_t r = 0; r < p->n_rules; r++) {
        n_alts++;
        for (size_t i = 0; i < p->rules[r].n; i++)
            if (GE_KIND(p->rules[r].e[i]) == P_ALT) n_alts++;
        n_el += p->rules[r].n + 1;
    }
    g->elems = malloc(n_el * sizeof *g->elems);
    g->alt_start = malloc(n_alts * sizeof *g->alt_start);
    g->rule_alt = malloc((p->n_rules + 1) * sizeof *g->rule_alt);
    if (!g->elems || !g->alt_start || !g->rule_alt) return oom(p);
    size_t e = 0, a = 0;
    for (size_t r = 0; r < p->n_rules; r++) {
        g->rule_alt[r] = (uint32_t)a;
        g->alt_start[a++] = (uint32_t)e;
        for (size_t i = 0; i < p->rules[r].n; i++) {
            uint32_t x = p->rules[r].e[i];
            if (GE_KIND(x) == P_ALT) {
                g->elems[e++] = GE_MAKE(GE_END, 0);
                g->alt_start[a++] = (uint32_t)e;
            } else {
                g->elems[e++] = x;
            }
        }
        g->elems[e++] = GE_MAKE(GE_END, 0);
    }
    g->rule_alt[p->n_rules] = (uint32_t)a;
    g->n_elems = e;
    g->n_rules = p->n_rules;
    g->sets = p->sets;
    g->n_sets = p->n_sets;
    p->sets = NULL;
    return 0;
}

int grammar_parse(grammar **out, const char *text, size_t len, inf_error *err) {
    *out = NULL;
    if (!text) return inf_error_set(err, INF_EINVAL, "grammar: text is NULL");
    if (!len) len = strlen(text);
    if (len > GRAMMAR_MAX_TEXT)
        return inf_error_set(err, INF_ERANGE, "grammar: text is %zu bytes, at most %u", len, GRAMMAR_MAX_TEXT);
    parser p;
    memset(&p, 0, sizeof p);
    p.src = text;
    p.len = len;
    p.err = err;
    grammar *g = NULL;
    skip_space(&p, 1);
    int rc = 0;
    while (!rc && !at_end(&p)) rc = parse_rule(&p);
    uint32_t root = 0;
    int have_root = 0;
    for (size_t i = 0; !rc && i < p.n_rules; i++) {
        const prule *r = &p.rules[i];
        if (!r->defined) {
            int l, c;
            line_col(&p, r->ref_at, &l, &c);
            rc = inf_error_set(err, INF_EINVAL, "grammar: line %d, column %d: undefined rule '%.*s'", l, c,
                               (int)(r->name_len > 64 ? 64 : r->name_len), r->name);
        }
        if (r->name && r->name_len == 4 && !memcmp(r->name, "root", 4)) {
            root = (uint32_t)i;
            have_root = 1;
        }
    }
    if (!rc && !have_root) rc = inf_error_set(err, INF_EINVAL, "grammar: no rule named 'root'");
    if (!rc) rc = check_left_recursion(&p);
    if (!rc) {
        g = calloc(1, sizeof *g);
        if (!g) rc = oom(&p);
    }
    if (!rc) {
        pthread_mutex_init(&g->mu, NULL);
        g->refs = 1;
        g->root = root;
        rc = flatten(&p, g);
    }
    if (!rc) {
        gram_scratch s;
        if (gram_scratch_init(&s)) rc = oom(&p);
        else {
            rc = gram_initial(g, &s, &g->init, &g->init_len, err);
            gram_scratch_free(&s);
        }
    }
    for (size_t i = 0; i < p.n_rules; i++) free(p.rules[i].e);
    free(p.rules);
    free(p.sets);
    if (rc) {
        grammar_free(g);
        return rc;
    }
    *out = g;
    return 0;
}

size_t grammar_n_elems(const grammar *g) { return g->n_elems; }
size_t grammar_n_rules(const grammar *g) { return g->n_rules; }
