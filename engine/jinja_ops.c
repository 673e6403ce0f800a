/* jinja_ops.c - Python binary operators and the str / dict / list methods
 * templates call (message.content.split('</think>'), tool.items(), ...). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jinja_internal.h"

static jv mkstr(jrender *r, const char *s, size_t n) { return jv_str(r->a, s, n); }

_Noreturn static void type_err(jrender *r, int line, const char *op, jv a, jv b) {
    if (a.t == JV_UNDEF) jundef_fail(r->c, line, a);
    if (b.t == JV_UNDEF) jundef_fail(r->c, line, b);
    if (!strcmp(op, "+") && a.t == JV_STR)
        jfail(r->c, INF_EINVAL, line, "can only concatenate str (not \"%s\") to str", jv_type_name(b));
    if (!strcmp(op, "+") && a.t == JV_LIST)
        jfail(r->c, INF_EINVAL, line, "can only concatenate %s (not \"%s\") to %s", jv_type_name(a),
              jv_type_name(b), jv_type_name(a));
    jfail(r->c, INF_EINVAL, line, "unsupported operand type(s) for %s: '%s' and '%s'", op, jv_type_name(a),
          jv_type_name(b));
}

static int64_t as_int(jv v) { return v.t == JV_BOOL ? v.u.b : v.u.i; }

static jv repeat(jrender *r, int line, jv seq, int64_t k) {
    if (k < 0) k = 0;
    if (seq.t == JV_STR) {
        size_t n = seq.u.s->len;
        if (n && (uint64_t)k > r->lim.max_memory / n) jfail(r->c, INF_ERANGE, line, "repeated string too large");
        jbuf b;
        jbuf_init(&b, r->a, r->lim.max_memory);
        for (int64_t i = 0; i < k; i++) jbuf_put(&b, seq.u.s->s, n);
        jv out = jbuf_take(&b);
        out.flags = seq.flags & JVF_MARKUP;
        return out;
    }
    size_t n = seq.u.l->n;
    if (n && (uint64_t)k > r->lim.max_memory / (n * sizeof(jv))) jfail(r->c, INF_ERANGE, line, "repeated list too large");
    jv out = jv_list(r->a, n * (size_t)k);
    out.flags = seq.flags & JVF_TUPLE;
    for (int64_t i = 0; i < k; i++)
        for (size_t j = 0; j < n; j++) jlist_push(r->a, out.u.l, seq.u.l->v[j]);
    return out;
}

/* printf-style "fmt % args": %s %r %d %i %f %% (what templates use). */
static jv percent_format(jrender *r, int line, jv fmt, jv args) {
    jlist one = {1, 1, &args};
    jlist *al = (args.t == JV_LIST && (args.flags & JVF_TUPLE)) ? args.u.l : &one;
    size_t ai = 0;
    jbuf b;
    jbuf_init(&b, r->a, r->lim.max_output);
    const char *p = fmt.u.s->s;
    size_t n = fmt.u.s->len;
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '%') { jbuf_putc(&b, p[i]); continue; }
        if (++i >= n) jfail(r->c, INF_EINVAL, line, "incomplete format");
        char cv = p[i];
        if (cv == '%') { jbuf_putc(&b, '%'); continue; }
        if (ai >= al->n) jfail(r->c, INF_EINVAL, line, "not enough arguments for format string");
        jv a = al->v[ai++];
        if (cv == 's') jv_write_str(&b, a, 0);
        else if (cv == 'r') jv_write_repr(&b, a, 0);
        else if ((cv == 'd' || cv == 'i') && jv_is_num(a)) {
            jv iv = a.t == JV_FLOAT ? jv_int((int64_t)a.u.f) : jv_int(as_int(a));
            jv_write_str(&b, iv, 0);
        } else if (cv == 'f' && jv_is_num(a)) {
            char t[64];
            jbuf_put(&b, t, (size_t)snprintf(t, sizeof t, "%f", jv_num(a)));
        } else
            jfail(r->c, INF_EUNSUPPORTED, line, "format %%%c is not supported for %s", cv, jv_type_name(a));
    }
    if (ai < al->n) jfail(r->c, INF_EINVAL, line, "not all arguments converted during string formatting");
    return jbuf_take(&b);
}

jv jbinop(jrender *r, int line, const char *op, jv a, jv b) {
    if (!strcmp(op, "~")) {
        jbuf bb;
        jbuf_init(&bb, r->a, r->lim.max_output);
        jv_write_str(&bb, a, 0);
        jv_write_str(&bb, b, 0);
        return jbuf_take(&bb);
    }
    if (a.t == JV_UNDEF) jundef_fail(r->c, line, a);
    if (b.t == JV_UNDEF) jundef_fail(r->c, line, b);
    bool num = jv_is_num(a) && jv_is_num(b);
    bool ints = num && a.t != JV_FLOAT && b.t != JV_FLOAT;
    char o = op[0];
    if (o == '+') {
        if (ints) {
            int64_t x;
            if (__builtin_add_overflow(as_int(a), as_int(b), &x)) jfail(r->c, INF_ERANGE, line, "integer overflow");
            return jv_int(x);
        }
        if (num) return jv_float(jv_num(a) + jv_num(b));
        if (a.t == JV_STR && b.t == JV_STR) {
            bool ma = a.flags & JVF_MARKUP, mb = b.flags & JVF_MARKUP;
            jbuf bb;
            jbuf_init(&bb, r->a, r->lim.max_memory);
            /* markupsafe: Markup + str escapes the str, and str + Markup too */
            if (mb && !ma) jv_write_escaped(&bb, a.u.s->s, a.u.s->len);
            else jbuf_put(&bb, a.u.s->s, a.u.s->len);
            if (ma && !mb) jv_write_escaped(&bb, b.u.s->s, b.u.s->len);
            else jbuf_put(&bb, b.u.s->s, b.u.s->len);
            jv out = jbuf_take(&bb);
            if (ma || mb) out.flags = JVF_MARKUP;
            return out;
        }
        if (a.t == JV_LIST && b.t == JV_LIST && a.flags == b.flags && !(a.flags & JVF_GEN)) {
            jv out = jv_list(r->a, a.u.l->n + b.u.l->n);
            out.flags = a.flags & JVF_TUPLE;
            for (size_t i = 0; i < a.u.l->n; i++) jlist_push(r->a, out.u.l, a.u.l->v[i]);
            for (size_t i = 0; i < b.u.l->n; i++) jlist_push(r->a, out.u.l, b.u.l->v[i]);
            return out;
        }
        type_err(r, line, op, a, b);
    }
    if (o == '-' && !op[1]) {
        if (ints) {
            int64_t x;
            if (__builtin_sub_overflow(as_int(a), as_int(b), &x)) jfail(r->c, INF_ERANGE, line, "integer overflow");
            return jv_int(x);
        }
        if (num) return jv_float(jv_num(a) - jv_num(b));
        type_err(r, line, op, a, b);
    }
    if (!strcmp(op, "*")) {
        if (ints) {
            int64_t x;
            if (__builtin_mul_overflow(as_int(a), as_int(b), &x)) jfail(r->c, INF_ERANGE, line, "integer overflow");
            return jv_int(x);
        }
        if (num) return jv_float(jv_num(a) * jv_num(b));
        if ((a.t == JV_STR || a.t == JV_LIST) && (b.t == JV_INT || b.t == JV_BOOL)) return repeat(r, line, a, as_int(b));
        if ((b.t == JV_STR || b.t == JV_LIST) && (a.t == JV_INT || a.t == JV_BOOL)) return repeat(r, line, b, as_int(a));
        if ((a.t == JV_STR || a.t == JV_LIST) && b.t != JV_FLOAT)
            jfail(r->c, INF_EINVAL, line, "can't multiply sequence by non-int of type '%s'", jv_type_name(b));
        type_err(r, line, op, a, b);
    }
    if (!strcmp(op, "/")) {
        if (!num) type_err(r, line, op, a, b);
        if (jv_num(b) == 0) jfail(r->c, INF_EINVAL, line, "division by zero");
        return jv_float(jv_num(a) / jv_num(b));
    }
    if (!strcmp(op, "//") || !strcmp(op, "%")) {
        bool mod = o == '%';
        if (mod && a.t == JV_STR) return percent_format(r, line, a, b);
        if (!num) type_err(r, line, op, a, b);
        if (ints) {
            int64_t x = as_int(a), y = as_int(b);
            if (y == 0) jfail(r->c, INF_EINVAL, line, "integer division or modulo by zero");
            if (x == INT64_MIN && y == -1) {
                if (mod) return jv_int(0);
                jfail(r->c, INF_ERANGE, line, "integer overflow");
            }
            int64_t q = x / y, m = x % y;
            if (m != 0 && ((m < 0) != (y < 0))) { q--; m += y; }
            return jv_int(mod ? m : q);
        }
        double x = jv_num(a), y = jv_num(b);
        if (y == 0) jfail(r->c, INF_EINVAL, line, mod ? "float modulo" : "float floor division by zero");
        double m = fmod(x, y);
        if (m != 0 && ((m < 0) != (y < 0))) m += y;
        if (mod) return jv_float(m == 0 ? copysign(0.0, y) : m);
        return jv_float(floor(x / y));
    }
    if (!strcmp(op, "**")) {
        if (!num) type_err(r, line, op, a, b);
        if (ints && as_int(b) >= 0) {
            int64_t base = as_int(a), e = as_int(b), res = 1;
            while (e--) {
                if (__builtin_mul_overflow(res, base, &res)) jfail(r->c, INF_ERANGE, line, "integer overflow");
                if (res == 0 || res == 1) break;
            }
            return jv_int(res);
        }
        if (jv_num(a) == 0 && jv_num(b) < 0) jfail(r->c, INF_EINVAL, line, "0.0 cannot be raised to a negative power");
        return jv_float(pow(jv_num(a), jv_num(b)));
    }
    jfail(r->c, INF_EINVAL, line, "unknown operator %s", op);
}

/* ---- methods ------------------------------------------------------------------ */
static const char *str_methods[] = {
    "capitalize", "casefold", "center", "count", "encode", "endswith", "expandtabs", "find", "format",
    "format_map", "index", "isalnum", "isalpha", "isascii", "isdecimal", "isdigit", "isidentifier", "islower",
    "isnumeric", "isprintable", "isspace", "istitle", "isupper", "join", "ljust", "lower", "lstrip",
    "maketrans", "partition", "removeprefix", "removesuffix", "replace", "rfind", "rindex", "rjust",
    "rpartition", "rsplit", "rstrip", "split", "splitlines", "startswith", "strip", "swapcase", "title",
    "translate", "upper", "zfill", NULL};
/* The ImmutableSandboxedEnvironment hides the mutating ones (append, pop, ...). */
static const char *dict_methods[] = {"copy", "fromkeys", "get", "items", "keys", "values", NULL};
static const char *list_methods[] = {"copy", "count", "index", NULL};

static bool in_set(const char **set, const char *name) {
    for (size_t i = 0; set[i]; i++)
        if (!strcmp(set[i], name)) return true;
    return false;
}

bool jmethod_exists(jv self, const char *name) {
    if (self.t == JV_STR) return in_set(str_methods, name);
    if (self.t == JV_DICT) return in_set(dict_methods, name);
    if (self.t == JV_LIST && !(self.flags & JVF_GEN)) return in_set(list_methods, name);
    return false;
}

static bool cp_in(int cp, const char *chars, size_t n) {
    for (size_t i = 0; i < n;) {
        size_t ad;
        if (ju8_decode(chars + i, n - i, &ad) == cp) return true;
        i += ad;
    }
    return false;
}

/* Python str.strip family: chars NULL = whitespace. which: 1 left, 2 right, 3 both. */
jv jstr_strip(jrender *r, jv s, const char *chars, size_t nchars, int which) {
    const char *p = s.u.s->s;
    size_t a = 0, b = s.u.s->len;
    if (which & 1)
        while (a < b) {
            size_t ad;
            int cp = ju8_decode(p + a, b - a, &ad);
            if (chars ? !cp_in(cp, chars, nchars) : !ju_isspace(cp)) break;
            a += ad;
        }
    if (which & 2)
        while (b > a) {
            size_t st = b - 1;
            while (st > a && b - st < 4 && ((unsigned char)p[st] & 0xc0) == 0x80) st--;
            size_t ad;
            int cp = ju8_decode(p + st, b - st, &ad);
            if (st + ad != b) { st = b - 1; cp = (unsigned char)p[st]; }
            if (chars ? !cp_in(cp, chars, nchars) : !ju_isspace(cp)) break;
            b = st;
        }
    return mkstr(r, p + a, b - a);
}

/* Simple case mapping: ASCII, Latin-1, Greek and Cyrillic basic letters. */
static int cp_upper(int c) {
    if (c >= 'a' && c <= 'z') return c - 32;
    if ((c >= 0xe0 && c <= 0xfe && c != 0xf7)) return c - 32;
    if (c == 0xff) return 0x178;
    if (c >= 0x3b1 && c <= 0x3c9 && c != 0x3c2) return c - 32;
    if (c == 0x3c2) return 0x3a3;
    if (c >= 0x430 && c <= 0x44f) return c - 32;
    if (c >= 0x450 && c <= 0x45f) return c - 80;
    return c;
}
static int cp_lower(int c) {
    if (c >= 'A' && c <= 'Z') return c + 32;
    if ((c >= 0xc0 && c <= 0xde && c != 0xd7)) return c + 32;
    if (c == 0x178) return 0xff;
    if (c >= 0x391 && c <= 0x3a9 && c != 0x3a2) return c + 32;
    if (c >= 0x410 && c <= 0x42f) return c + 32;
    if (c >= 0x400 && c <= 0x40f) return c + 80;
    return c;
}
static bool cp_cased(int c) { return cp_upper(c) != c || cp_lower(c) != c; }

static void put_cp(jbuf *b, int cp) {
    char o[4];
    size_t n;
    if (cp < 0x80) { o[0] = (char)cp; n = 1; }
    else if (cp < 0x800) { o[0] = (char)(0xc0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3f)); n = 2; }
    else if (cp < 0x10000) {
        o[0] = (char)(0xe0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3f)); o[2] = (char)(0x80 | (cp & 0x3f)); n = 3;
    } else {
        o[0] = (char)(0xf0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        o[2] = (char)(0x80 | ((cp >> 6) & 0x3f)); o[3] = (char)(0x80 | (cp & 0x3f)); n = 4;
    }
    jbuf_put(b, o, n);
}

/* mode: 'u' upper, 'l' lower, 't' title, 'c' capitalize */
jv jstr_case(jrender *r, jv s, char mode) {
    jbuf b;
    jbuf_init(&b, r->a, s.u.s->len * 2 + 16);
    const char *p = s.u.s->s;
    size_t n = s.u.s->len;
    bool prev_cased = false, first = true;
    for (size_t i = 0; i < n;) {
        size_t ad;
        int cp = ju8_decode(p + i, n - i, &ad);
        bool bad = ad == 1 && (unsigned char)p[i] >= 0x80;
        int o = cp;
        if (!bad) {
            if (mode == 'u') o = cp_upper(cp);
            else if (mode == 'l') o = cp_lower(cp);
            else if (mode == 'c') o = first ? cp_upper(cp) : cp_lower(cp);
            else {
                o = prev_cased ? cp_lower(cp) : cp_upper(cp);
                /* letters we cannot map still count as cased (é, ö ...) */
                prev_cased = cp_cased(cp) || (cp >= 0x80 && cp != 0xa0 && !ju_isspace(cp) && cp < 0x2000);
            }
        }
        if (bad || (o == cp)) jbuf_put(&b, p + i, ad);
        else put_cp(&b, o);
        first = false;
        i += ad;
    }
    return jbuf_take(&b);
}

static jv str_split(jrender *r, int line, jv s, jv sep, int64_t maxsplit) {
    jv out = jv_list(r->a, 0);
    const char *p = s.u.s->s;
    size_t n = s.u.s->len;
    if (sep.t == JV_NONE || sep.t == JV_UNDEF) {
        size_t i = 0;
        for (;;) {
            size_t w;
            while (i < n && (w = ju_space_at(p + i, n - i))) i += w;
            if (i >= n) break;
            if (maxsplit >= 0 && (int64_t)out.u.l->n >= maxsplit) {
                size_t e = n, ww;
                while (e > i && (ww = ju_space_before(p + i, e - i))) e -= ww;
                jlist_push(r->a, out.u.l, mkstr(r, p + i, e - i));
                break;
            }
            size_t st = i;
            while (i < n && !ju_space_at(p + i, n - i)) {
                size_t ad;
                ju8_decode(p + i, n - i, &ad);
                i += ad;
            }
            jlist_push(r->a, out.u.l, mkstr(r, p + st, i - st));
        }
        return out;
    }
    if (sep.t != JV_STR) jfail(r->c, INF_EINVAL, line, "must be str or None, not %s", jv_type_name(sep));
    size_t sl = sep.u.s->len;
    if (!sl) jfail(r->c, INF_EINVAL, line, "empty separator");
    size_t i = 0;
    for (;;) {
        const char *hit = (maxsplit < 0 || (int64_t)out.u.l->n < maxsplit) ? memmem(p + i, n - i, sep.u.s->s, sl) : NULL;
        if (!hit) { jlist_push(r->a, out.u.l, mkstr(r, p + i, n - i)); break; }
        jlist_push(r->a, out.u.l, mkstr(r, p + i, (size_t)(hit - (p + i))));
        i = (size_t)(hit - p) + sl;
    }
    return out;
}

jv jstr_replace(jrender *r, jv s, jv old, jv new_, int64_t count) {
    jbuf b;
    jbuf_init(&b, r->a, r->lim.max_memory);
    const char *p = s.u.s->s;
    size_t n = s.u.s->len, ol = old.u.s->len;
    if (!ol) { /* inserts between characters, as Python does */
        int64_t k = 0;
        for (size_t i = 0;; k++) {
            if (count < 0 || k < count) jbuf_put(&b, new_.u.s->s, new_.u.s->len);
            if (i >= n) break;
            size_t ad;
            ju8_decode(p + i, n - i, &ad);
            jbuf_put(&b, p + i, ad);
            i += ad;
        }
        return jbuf_take(&b);
    }
    size_t i = 0;
    int64_t k = 0;
    while (count < 0 || k < count) {
        const char *hit = memmem(p + i, n - i, old.u.s->s, ol);
        if (!hit) break;
        jbuf_put(&b, p + i, (size_t)(hit - (p + i)));
        jbuf_put(&b, new_.u.s->s, new_.u.s->len);
        i = (size_t)(hit - p) + ol;
        k++;
    }
    jbuf_put(&b, p + i, n - i);
    return jbuf_take(&b);
}

static bool affix(jrender *r, int line, jv s, jv a, bool end) {
    if (a.t == JV_LIST && (a.flags & JVF_TUPLE)) {
        for (size_t i = 0; i < a.u.l->n; i++)
            if (affix(r, line, s, a.u.l->v[i], end)) return true;
        return false;
    }
    if (a.t != JV_STR)
        jfail(r->c, INF_EINVAL, line, "%s first arg must be str or a tuple of str, not %s", end ? "endswith" : "startswith",
              jv_type_name(a));
    size_t n = s.u.s->len, k = a.u.s->len;
    if (k > n) return false;
    return memcmp(s.u.s->s + (end ? n - k : 0), a.u.s->s, k) == 0;
}

static jv arg(jv *args, size_t nargs, const char **kwn, jv *kwv, size_t nkw, size_t pos, const char *name, jv dflt) {
    if (pos < nargs) return args[pos];
    for (size_t i = 0; i < nkw; i++)
        if (!strcmp(kwn[i], name)) return kwv[i];
    return dflt;
}

static void need_str(jrender *r, int line, jv v, const char *what) {
    if (v.t == JV_UNDEF) jundef_fail(r->c, line, v);
    if (v.t != JV_STR) jfail(r->c, INF_EINVAL, line, "%s must be str, not %s", what, jv_type_name(v));
}

static int64_t need_int(jrender *r, int line, jv v) {
    if (v.t == JV_INT) return v.u.i;
    if (v.t == JV_BOOL) return v.u.b;
    if (v.t == JV_UNDEF) jundef_fail(r->c, line, v);
    jfail(r->c, INF_EINVAL, line, "'%s' object cannot be interpreted as an integer", jv_type_name(v));
}

jv jmethod_call(jrender *r, int line, jmethod *m, jv *args, size_t nargs, const char **kwn, jv *kwv, size_t nkw) {
    jv self = m->self;
    const char *nm = m->name;
    jv none = jv_none();
    jstep(r, line);
    if (self.t == JV_STR) {
        if (!strcmp(nm, "strip") || !strcmp(nm, "lstrip") || !strcmp(nm, "rstrip")) {
            jv ch = arg(args, nargs, kwn, kwv, nkw, 0, "chars", none);
            if (ch.t != JV_NONE) need_str(r, line, ch, "chars");
            int which = nm[0] == 'l' ? 1 : nm[0] == 'r' ? 2 : 3;
            return jstr_strip(r, self, ch.t == JV_STR ? ch.u.s->s : NULL, ch.t == JV_STR ? ch.u.s->len : 0, which);
        }
        if (!strcmp(nm, "split")) {
            jv sep = arg(args, nargs, kwn, kwv, nkw, 0, "sep", none);
            jv mx = arg(args, nargs, kwn, kwv, nkw, 1, "maxsplit", jv_int(-1));
            return str_split(r, line, self, sep, need_int(r, line, mx));
        }
        if (!strcmp(nm, "startswith") || !strcmp(nm, "endswith")) {
            if (nargs < 1) jfail(r->c, INF_EINVAL, line, "%s() takes at least 1 argument (0 given)", nm);
            return jv_bool(affix(r, line, self, args[0], nm[0] == 'e'));
        }
        if (!strcmp(nm, "upper")) return jstr_case(r, self, 'u');
        if (!strcmp(nm, "lower") || !strcmp(nm, "casefold")) return jstr_case(r, self, 'l');
        if (!strcmp(nm, "title")) return jstr_case(r, self, 't');
        if (!strcmp(nm, "capitalize")) return jstr_case(r, self, 'c');
        if (!strcmp(nm, "replace")) {
            if (nargs < 2) jfail(r->c, INF_EINVAL, line, "replace expected at least 2 arguments, got %zu", nargs);
            need_str(r, line, args[0], "replace() argument 1");
            need_str(r, line, args[1], "replace() argument 2");
            jv cnt = arg(args, nargs, kwn, kwv, nkw, 2, "count", jv_int(-1));
            return jstr_replace(r, self, args[0], args[1], need_int(r, line, cnt));
        }
        if (!strcmp(nm, "find") || !strcmp(nm, "count") || !strcmp(nm, "index") || !strcmp(nm, "rfind")) {
            if (nargs < 1) jfail(r->c, INF_EINVAL, line, "%s() takes at least 1 argument (0 given)", nm);
            need_str(r, line, args[0], "argument");
            const char *p = self.u.s->s, *q = args[0].u.s->s;
            size_t n = self.u.s->len, k = args[0].u.s->len;
            if (!strcmp(nm, "count")) {
                if (!k) return jv_int((int64_t)ju8_len(p, n) + 1);
                int64_t c = 0;
                for (const char *h = p; (h = memmem(h, n - (size_t)(h - p), q, k)); h += k) c++;
                return jv_int(c);
            }
            const char *hit = NULL;
            if (!strcmp(nm, "rfind")) {
                for (size_t i = n + 1; i-- > 0;)
                    if (i + k <= n && !memcmp(p + i, q, k)) { hit = p + i; break; }
            } else
                hit = k ? memmem(p, n, q, k) : p;
            if (!hit) {
                if (!strcmp(nm, "index")) jfail(r->c, INF_EINVAL, line, "substring not found");
                return jv_int(-1);
            }
            return jv_int((int64_t)ju8_len(p, (size_t)(hit - p)));
        }
        if (!strcmp(nm, "join")) {
            if (nargs < 1) jfail(r->c, INF_EINVAL, line, "join() takes exactly one argument (0 given)");
            jlist *l = jiter(r, line, args[0]);
            jbuf b;
            jbuf_init(&b, r->a, r->lim.max_memory);
            for (size_t i = 0; i < l->n; i++) {
                if (l->v[i].t != JV_STR)
                    jfail(r->c, INF_EINVAL, line, "sequence item %zu: expected str instance, %s found", i,
                          jv_type_name(l->v[i]));
                if (i) jbuf_put(&b, self.u.s->s, self.u.s->len);
                jbuf_put(&b, l->v[i].u.s->s, l->v[i].u.s->len);
            }
            return jbuf_take(&b);
        }
        if (!strcmp(nm, "removeprefix") || !strcmp(nm, "removesuffix")) {
            if (nargs < 1) jfail(r->c, INF_EINVAL, line, "%s() takes exactly one argument (0 given)", nm);
            need_str(r, line, args[0], "argument");
            bool suf = nm[6] == 's';
            if (!affix(r, line, self, args[0], suf)) return self;
            size_t k = args[0].u.s->len;
            return mkstr(r, self.u.s->s + (suf ? 0 : k), self.u.s->len - k);
        }
        if (!strcmp(nm, "isspace") || !strcmp(nm, "isdigit") || !strcmp(nm, "isalpha") || !strcmp(nm, "isalnum") ||
            !strcmp(nm, "isupper") || !strcmp(nm, "islower")) {
            const char *p = self.u.s->s;
            size_t n = self.u.s->len;
            bool any_cased = false, ok = n > 0;
            for (size_t i = 0; i < n && ok;) {
                size_t ad;
                int cp = ju8_decode(p + i, n - i, &ad);
                i += ad;
                if (!strcmp(nm, "isspace")) ok = ju_isspace(cp);
                else if (!strcmp(nm, "isdigit")) ok = cp >= '0' && cp <= '9';
                else if (!strcmp(nm, "isalpha")) ok = cp_cased(cp) || cp >= 0x80;
                else if (!strcmp(nm, "isalnum")) ok = cp_cased(cp) || cp >= 0x80 || (cp >= '0' && cp <= '9');
                else if (cp_cased(cp)) {
                    any_cased = true;
                    ok = nm[2] == 'u' ? cp_upper(cp) == cp : cp_lower(cp) == cp;
                }
            }
            if (!strcmp(nm, "isupper") || !strcmp(nm, "islower")) ok = ok && any_cased;
            return jv_bool(ok);
        }
        jfail(r->c, INF_EUNSUPPORTED, line, "str.%s() is not supported", nm);
    }
    if (self.t == JV_DICT) {
        jdict *d = self.u.d;
        if (!strcmp(nm, "items") || !strcmp(nm, "keys") || !strcmp(nm, "values")) {
            jv out = jv_list(r->a, d->n);
            for (size_t i = 0; i < d->n; i++) {
                if (nm[0] == 'k') jlist_push(r->a, out.u.l, d->k[i]);
                else if (nm[0] == 'v') jlist_push(r->a, out.u.l, d->v[i]);
                else {
                    jv t = jv_list(r->a, 2);
                    t.flags = JVF_TUPLE;
                    jlist_push(r->a, t.u.l, d->k[i]);
                    jlist_push(r->a, t.u.l, d->v[i]);
                    jlist_push(r->a, out.u.l, t);
                }
            }
            return out;
        }
        if (!strcmp(nm, "get")) {
            if (nargs < 1) jfail(r->c, INF_EINVAL, line, "get expected at least 1 argument, got 0");
            jv *p = jdict_get(d, args[0]);
            return p ? *p : nargs > 1 ? args[1] : none;
        }
        if (!strcmp(nm, "copy")) {
            jv out = jv_dict(r->a, d->n);
            for (size_t i = 0; i < d->n; i++) jdict_set(r->a, out.u.d, d->k[i], d->v[i]);
            return out;
        }
        jfail(r->c, INF_EUNSUPPORTED, line, "dict.%s() is not supported", nm);
    }
    if (self.t == JV_LIST) {
        jlist *l = self.u.l;
        if (!strcmp(nm, "count") || !strcmp(nm, "index")) {
            if (nargs < 1) jfail(r->c, INF_EINVAL, line, "%s() takes exactly one argument (0 given)", nm);
            int64_t c = 0;
            for (size_t i = 0; i < l->n; i++)
                if (jv_eq(r->c, l->v[i], args[0], 0)) {
                    if (nm[0] == 'i') return jv_int((int64_t)i);
                    c++;
                }
            if (nm[0] == 'i') jfail(r->c, INF_EINVAL, line, "value is not in list");
            return jv_int(c);
        }
        if (!strcmp(nm, "copy")) {
            jv out = jv_list(r->a, l->n);
            for (size_t i = 0; i < l->n; i++) jlist_push(r->a, out.u.l, l->v[i]);
            return out;
        }
    }
    jfail(r->c, INF_EUNSUPPORTED, line, "%s.%s() is not supported", jv_type_name(self), nm);
}
