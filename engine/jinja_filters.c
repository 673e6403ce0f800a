/* jinja_filters.c - jinja2's filters and tests (as in jinja2 3.1's filters.py
 * and tests.py), Hugging Face's tojson, and the globals (range, namespace,
 * dict, raise_exception, strftime_now). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jinja_internal.h"

/* jinja2's sandbox refuses ranges longer than this (MAX_RANGE). */
#define JINJA_MAX_RANGE 100000

/* Every filter jinja2 knows: an unknown name fails at parse time like jinja2;
 * the ones after "batch" exist but are not implemented (a render error). */
static const char *filters[] = {
    "abs", "attr", "capitalize", "count", "d", "default", "dictsort", "e", "escape", "first", "float",
    "forceescape", "format", "indent", "int", "items", "join", "last", "length", "list", "lower", "map", "max",
    "min", "reject", "rejectattr", "replace", "reverse", "round", "safe", "select", "selectattr", "sort",
    "string", "sum", "title", "tojson", "trim", "unique", "upper", "wordcount", "center",
    "batch", "filesizeformat", "groupby", "pprint", "slice", "striptags", "truncate", "urlencode", "urlize",
    "wordwrap", "xmlattr", NULL};

static const char *tests[] = {
    "odd", "even", "divisibleby", "defined", "undefined", "filter", "test", "none", "boolean", "false", "true",
    "integer", "float", "lower", "upper", "string", "mapping", "number", "sequence", "iterable", "callable",
    "sameas", "escaped", "in", "==", "eq", "equalto", "!=", "ne", ">", "gt", "greaterthan", "ge", ">=", "<", "lt",
    "lessthan", "<=", "le", NULL};

static bool in_list(const char **l, const char *n) {
    for (size_t i = 0; l[i]; i++)
        if (!strcmp(l[i], n)) return true;
    return false;
}

bool jfilter_exists(const char *name) { return in_list(filters, name); }
bool jtest_exists(const char *name) { return in_list(tests, name); }

typedef struct fargs {
    jv *args;
    size_t nargs;
    const char **kwn;
    jv *kwv;
    size_t nkw;
} fargs;

/* Positional pos or keyword name (after the filtered value), else dflt. */
static jv A(const fargs *f, size_t pos, const char *name, jv dflt) {
    if (pos < f->nargs) return f->args[pos];
    for (size_t i = 0; i < f->nkw; i++)
        if (name && !strcmp(f->kwn[i], name)) return f->kwv[i];
    return dflt;
}

static jv S(jrender *r, jv v) {
    jv s = jv_to_str(r->a, v, r->lim.max_memory);
    if (v.t == JV_STR) s.flags = v.flags & JVF_MARKUP;
    return s;
}

static jv escape(jrender *r, jv v) {
    if (v.t == JV_STR && (v.flags & JVF_MARKUP)) return v;
    jv s = S(r, v);
    jbuf b;
    jbuf_init(&b, r->a, r->lim.max_memory);
    jv_write_escaped(&b, s.u.s->s, s.u.s->len);
    jv out = jbuf_take(&b);
    out.flags = JVF_MARKUP;
    return out;
}

/* environment.getitem over a dotted path ("function.name", "0"), as jinja2's
 * make_attrgetter does. */
static jv attr_path(jrender *r, int line, jv item, jv attr) {
    if (attr.t != JV_STR) return jgetitem(r, line, item, attr);
    const char *p = attr.u.s->s;
    size_t n = attr.u.s->len;
    for (size_t i = 0; i <= n;) {
        const char *dot = memchr(p + i, '.', n - i);
        size_t e = dot ? (size_t)(dot - p) : n;
        jv key;
        bool digits = e > i;
        for (size_t k = i; k < e; k++)
            if (p[k] < '0' || p[k] > '9') digits = false;
        if (digits) key = jv_int(strtoll(p + i, NULL, 10));
        else key = jv_str(r->a, p + i, e - i);
        item = jgetitem(r, line, item, key);
        i = e + 1;
        if (!dot) break;
    }
    return item;
}

static jv sorted(jrender *r, int line, jlist *l, bool reverse, bool case_sensitive, jv attr) {
    size_t n = l->n;
    jv out = jv_list(r->a, n);
    jv *keys = jalloc(r->a, (n ? n : 1) * sizeof(jv));
    for (size_t i = 0; i < n; i++) {
        jv k = attr.t == JV_NONE ? l->v[i] : attr_path(r, line, l->v[i], attr);
        if (!case_sensitive && k.t == JV_STR) k = jstr_case(r, k, 'l');
        keys[i] = k;
        out.u.l->v[i] = l->v[i];
    }
    out.u.l->n = n;
    /* stable insertion sort: Python's sort is stable, lists here are small */
    for (size_t i = 1; i < n; i++) {
        jv kv = keys[i], vv = out.u.l->v[i];
        size_t j = i;
        while (j > 0) {
            int c = jv_cmp(r->c, line, keys[j - 1], kv, 0);
            if (reverse ? c >= 0 : c <= 0) break;
            keys[j] = keys[j - 1];
            out.u.l->v[j] = out.u.l->v[j - 1];
            j--;
        }
        keys[j] = kv;
        out.u.l->v[j] = vv;
        jstep(r, line);
    }
    return out;
}

static jv do_tojson(jrender *r, int line, jv in, const fargs *f) {
    jv ensure_ascii = A(f, 0, "ensure_ascii", jv_bool(false));
    jv indent = A(f, 1, "indent", jv_none());
    jv seps = A(f, 2, "separators", jv_none());
    jv sort = A(f, 3, "sort_keys", jv_bool(false));
    if (jv_truthy(ensure_ascii)) jfail(r->c, INF_EUNSUPPORTED, line, "tojson(ensure_ascii=True) is not supported");
    const char *ind = NULL, *isep = NULL, *ksep = NULL;
    if (indent.t == JV_INT || indent.t == JV_BOOL) {
        int64_t k = indent.t == JV_INT ? indent.u.i : indent.u.b;
        if (k > 1000) k = 1000;
        char *sp = jalloc(r->a, (size_t)(k > 0 ? k : 0) + 1);
        int64_t i;
        for (i = 0; i < k; i++) sp[i] = ' ';
        sp[k > 0 ? k : 0] = 0;
        ind = sp;
    } else if (indent.t == JV_STR)
        ind = indent.u.s->s;
    else if (indent.t != JV_NONE)
        jfail(r->c, INF_EINVAL, line, "indent must be an int or a str");
    if (seps.t == JV_LIST && seps.u.l->n == 2 && seps.u.l->v[0].t == JV_STR && seps.u.l->v[1].t == JV_STR) {
        isep = seps.u.l->v[0].u.s->s;
        ksep = seps.u.l->v[1].u.s->s;
    } else if (seps.t != JV_NONE)
        jfail(r->c, INF_EINVAL, line, "separators must be a pair of strings");
    jbuf b;
    jbuf_init(&b, r->a, r->lim.max_output);
    jjson_dump(r->c, line, &b, in, ind, isep, ksep, jv_truthy(sort), 0);
    return jbuf_take(&b);
}

static jv do_indent(jrender *r, jv s, const fargs *f) {
    jv width = A(f, 0, "width", jv_int(4));
    bool first = jv_truthy(A(f, 1, "first", jv_bool(false)));
    bool blank = jv_truthy(A(f, 2, "blank", jv_bool(false)));
    jv ind;
    if (width.t == JV_STR) ind = width;
    else {
        int64_t k = width.t == JV_INT ? width.u.i : 4;
        if (k < 0) k = 0;
        if (k > 1000) k = 1000;
        char sp[1001];
        memset(sp, ' ', (size_t)k);
        ind = jv_str(r->a, sp, (size_t)k);
    }
    s = S(r, s);
    /* s += "\n"; lines = s.splitlines() (Python's line boundaries) */
    const char *p = s.u.s->s;
    size_t n = s.u.s->len;
    char *q = jalloc(r->a, n + 2);
    memcpy(q, p, n);
    q[n] = '\n';
    q[n + 1] = 0;
    p = q;
    n++;
    jv lines = jv_list(r->a, 0);
    for (size_t i = 0, st = 0; i < n;) {
        size_t ad;
        int cp = ju8_decode(p + i, n - i, &ad);
        bool br = cp == '\n' || cp == '\r' || cp == 0x0b || cp == 0x0c || (cp >= 0x1c && cp <= 0x1e) || cp == 0x85 ||
                  cp == 0x2028 || cp == 0x2029;
        if (br) {
            jlist_push(r->a, lines.u.l, jv_str(r->a, p + st, i - st));
            if (cp == '\r' && i + 1 < n && p[i + 1] == '\n') ad = 2;
            st = i + ad;
        }
        i += ad;
    }
    jbuf b;
    jbuf_init(&b, r->a, r->lim.max_output);
    if (first) jbuf_put(&b, ind.u.s->s, ind.u.s->len);
    for (size_t i = 0; i < lines.u.l->n; i++) {
        jv ln = lines.u.l->v[i];
        if (i) {
            jbuf_putc(&b, '\n');
            if (blank || ln.u.s->len) jbuf_put(&b, ind.u.s->s, ind.u.s->len);
        }
        jbuf_put(&b, ln.u.s->s, ln.u.s->len);
    }
    jv out = jbuf_take(&b);
    out.flags = s.flags & JVF_MARKUP;
    return out;
}

/* select/reject/selectattr/rejectattr: keep items where test (or truthiness) == want. */
static jv do_select(jrender *r, int line, jv in, const fargs *f, bool by_attr, bool want) {
    size_t a0 = by_attr ? 1 : 0;
    /* jinja2's _select_or_reject iterates only a true value (None -> nothing) */
    jlist *l = jv_truthy(in) ? jiter(r, line, in) : jv_list(r->a, 0).u.l;
    jv attr = by_attr ? A(f, 0, "attribute", jv_none()) : jv_none();
    jv out = jv_list(r->a, 0);
    const char *tname = NULL;
    if (f->nargs > a0) {
        if (f->args[a0].t != JV_STR) jfail(r->c, INF_EINVAL, line, "the test name must be a string");
        tname = f->args[a0].u.s->s;
        if (!jtest_exists(tname)) jfail(r->c, INF_EINVAL, line, "No test named '%s'.", tname);
    }
    for (size_t i = 0; i < l->n; i++) {
        jstep(r, line);
        jv x = by_attr ? attr_path(r, line, l->v[i], attr) : l->v[i];
        bool t = tname ? jtest(r, line, tname, x, f->args + a0 + 1, f->nargs - a0 - 1) : jv_truthy(x);
        if (t == want) jlist_push(r->a, out.u.l, l->v[i]);
    }
    out.flags = JVF_GEN;
    return out;
}

static jv do_map(jrender *r, int line, jv in, const fargs *f) {
    jlist *l = jiter(r, line, in);
    jv out = jv_list(r->a, l->n);
    jv attr = A(f, (size_t)-1, "attribute", jv_undef(NULL));
    if (attr.t != JV_UNDEF || !f->nargs) {
        jv dflt = A(f, (size_t)-1, "default", jv_undef(NULL));
        for (size_t i = 0; i < l->n; i++) {
            jv x = attr_path(r, line, l->v[i], attr);
            if (x.t == JV_UNDEF && dflt.t != JV_UNDEF) x = dflt;
            jlist_push(r->a, out.u.l, x);
        }
        out.flags = JVF_GEN;
        return out;
    }
    if (f->args[0].t != JV_STR) jfail(r->c, INF_EINVAL, line, "map needs a filter name");
    const char *fn = f->args[0].u.s->s;
    if (!jfilter_exists(fn)) jfail(r->c, INF_EINVAL, line, "No filter named '%s'.", fn);
    for (size_t i = 0; i < l->n; i++)
        jlist_push(r->a, out.u.l, jfilter(r, line, fn, l->v[i], f->args + 1, f->nargs - 1, f->kwn, f->kwv, f->nkw));
    out.flags = JVF_GEN;
    return out;
}

static jv to_int(jrender *r, int line, jv v, jv dflt, int base) {
    if (v.t == JV_UNDEF) jundef_fail(r->c, line, v);
    if (v.t == JV_INT) return v;
    if (v.t == JV_BOOL) return jv_int(v.u.b);
    if (v.t == JV_FLOAT) {
        if (isnan(v.u.f) || isinf(v.u.f) || fabs(v.u.f) >= 9.2e18) return dflt;
        return jv_int((int64_t)v.u.f);
    }
    if (v.t == JV_STR) {
        jv t = jstr_strip(r, v, NULL, 0, 3);
        char buf[64];
        size_t k = 0;
        for (size_t i = 0; i < t.u.s->len && k < sizeof buf - 1; i++)
            if (t.u.s->s[i] != '_') buf[k++] = t.u.s->s[i];
        buf[k] = 0;
        if (k && k < sizeof buf - 1) {
            char *end;
            long long x = strtoll(buf, &end, base);
            if (!*end) return jv_int(x);
            double d = strtod(buf, &end);
            if (!*end && !isnan(d) && !isinf(d) && fabs(d) < 9.2e18) return jv_int((int64_t)d);
        }
        return dflt;
    }
    return dflt;
}

jv jfilter(jrender *r, int line, const char *name, jv in, jv *args, size_t nargs, const char **kwn, jv *kwv,
           size_t nkw) {
    fargs F = {args, nargs, kwn, kwv, nkw}, *f = &F;
    jv none = jv_none();
    jstep(r, line);
    if (!strcmp(name, "default") || !strcmp(name, "d")) {
        jv dv = A(f, 0, "default_value", jv_str(r->a, "", 0));
        bool boolean = jv_truthy(A(f, 1, "boolean", jv_bool(false)));
        if (in.t == JV_UNDEF || (boolean && !jv_truthy(in))) return dv;
        return in;
    }
    if (!strcmp(name, "length") || !strcmp(name, "count")) {
        switch (in.t) {
        case JV_UNDEF: return jv_int(0);
        case JV_STR: return jv_int((int64_t)ju8_len(in.u.s->s, in.u.s->len));
        case JV_LIST:
            if (in.flags & JVF_GEN) jfail(r->c, INF_EINVAL, line, "object of type 'generator' has no len()");
            return jv_int((int64_t)in.u.l->n);
        case JV_DICT: return jv_int((int64_t)in.u.d->n);
        default: jfail(r->c, INF_EINVAL, line, "object of type '%s' has no len()", jv_type_name(in));
        }
    }
    if (!strcmp(name, "tojson")) return do_tojson(r, line, in, f);
    if (!strcmp(name, "safe")) { jv s = S(r, in); s.flags = JVF_MARKUP; return s; }
    if (!strcmp(name, "escape") || !strcmp(name, "e") || !strcmp(name, "forceescape")) return escape(r, in);
    if (!strcmp(name, "string")) return S(r, in);
    if (!strcmp(name, "trim")) {
        jv ch = A(f, 0, "chars", none);
        jv s = S(r, in);
        if (ch.t == JV_STR) return jstr_strip(r, s, ch.u.s->s, ch.u.s->len, 3);
        return jstr_strip(r, s, NULL, 0, 3);
    }
    if (!strcmp(name, "upper")) return jstr_case(r, S(r, in), 'u');
    if (!strcmp(name, "lower")) return jstr_case(r, S(r, in), 'l');
    if (!strcmp(name, "title")) return jstr_case(r, S(r, in), 't');
    if (!strcmp(name, "capitalize")) return jstr_case(r, S(r, in), 'c');
    if (!strcmp(name, "replace")) {
        jv s = S(r, in), o = S(r, A(f, 0, "old", jv_str(r->a, "", 0))), nw = S(r, A(f, 1, "new", jv_str(r->a, "", 0)));
        jv cnt = A(f, 2, "count", none);
        return jstr_replace(r, s, o, nw, cnt.t == JV_INT ? cnt.u.i : -1);
    }
    if (!strcmp(name, "items")) {
        if (in.t == JV_UNDEF) return jv_list(r->a, 0);
        if (in.t != JV_DICT) jfail(r->c, INF_EINVAL, line, "Can only get item pairs from a mapping.");
        jmethod m = {in, "items"};
        jv out = jmethod_call(r, line, &m, NULL, 0, NULL, NULL, 0);
        out.flags = JVF_GEN;
        return out;
    }
    if (!strcmp(name, "list")) {
        jlist *l = jiter(r, line, in);
        jv out = jv_list(r->a, l->n);
        for (size_t i = 0; i < l->n; i++) jlist_push(r->a, out.u.l, l->v[i]);
        return out;
    }
    if (!strcmp(name, "first") || !strcmp(name, "last")) {
        jlist *l = jiter(r, line, in);
        if (!l->n) return jv_undef(name[0] == 'f' ? "No first item, sequence was empty." : "No last item, sequence was empty.");
        return name[0] == 'f' ? l->v[0] : l->v[l->n - 1];
    }
    if (!strcmp(name, "join")) {
        jv d = A(f, 0, "d", jv_str(r->a, "", 0));
        jv attr = A(f, 1, "attribute", none);
        jlist *l = jiter(r, line, in);
        bool markup = d.t == JV_STR && (d.flags & JVF_MARKUP);
        for (size_t i = 0; i < l->n && !markup; i++)
            if (l->v[i].t == JV_STR && (l->v[i].flags & JVF_MARKUP)) markup = true;
        jbuf b;
        jbuf_init(&b, r->a, r->lim.max_memory);
        jv ds = markup ? escape(r, d) : S(r, d);
        for (size_t i = 0; i < l->n; i++) {
            jv x = attr.t == JV_NONE ? l->v[i] : attr_path(r, line, l->v[i], attr);
            jv xs = markup ? escape(r, x) : S(r, x);
            if (i) jbuf_put(&b, ds.u.s->s, ds.u.s->len);
            jbuf_put(&b, xs.u.s->s, xs.u.s->len);
        }
        jv out = jbuf_take(&b);
        if (markup) out.flags = JVF_MARKUP;
        return out;
    }
    if (!strcmp(name, "selectattr")) return do_select(r, line, in, f, true, true);
    if (!strcmp(name, "rejectattr")) return do_select(r, line, in, f, true, false);
    if (!strcmp(name, "select")) return do_select(r, line, in, f, false, true);
    if (!strcmp(name, "reject")) return do_select(r, line, in, f, false, false);
    if (!strcmp(name, "map")) return do_map(r, line, in, f);
    if (!strcmp(name, "int")) {
        jv dflt = A(f, 0, "default", jv_int(0));
        jv base = A(f, 1, "base", jv_int(10));
        int b = base.t == JV_INT && base.u.i >= 2 && base.u.i <= 36 ? (int)base.u.i : 10;
        return to_int(r, line, in, dflt, b);
    }
    if (!strcmp(name, "float")) {
        jv dflt = A(f, 0, "default", jv_float(0.0));
        if (in.t == JV_UNDEF) jundef_fail(r->c, line, in);
        if (jv_is_num(in)) return jv_float(jv_num(in));
        if (in.t == JV_STR) {
            jv t = jstr_strip(r, in, NULL, 0, 3);
            char *end;
            double d = strtod(t.u.s->s, &end);
            if (t.u.s->len && !*end) return jv_float(d);
        }
        return dflt;
    }
    if (!strcmp(name, "abs")) {
        if (in.t == JV_INT) return jv_int(in.u.i < 0 ? -in.u.i : in.u.i);
        if (in.t == JV_BOOL) return jv_int(in.u.b);
        if (in.t == JV_FLOAT) return jv_float(fabs(in.u.f));
        jfail(r->c, INF_EINVAL, line, "bad operand type for abs(): '%s'", jv_type_name(in));
    }
    if (!strcmp(name, "round")) {
        jv prec = A(f, 0, "precision", jv_int(0));
        jv method = A(f, 1, "method", jv_cstr(r->a, "common"));
        if (!jv_is_num(in)) jfail(r->c, INF_EINVAL, line, "round() needs a number");
        double x = jv_num(in), m = pow(10.0, (double)(prec.t == JV_INT ? prec.u.i : 0)), y = x * m;
        const char *md = method.t == JV_STR ? method.u.s->s : "common";
        if (!strcmp(md, "ceil")) y = ceil(y);
        else if (!strcmp(md, "floor")) y = floor(y);
        else if (!strcmp(md, "common")) y = nearbyint(y); /* Python rounds half to even */
        else jfail(r->c, INF_EINVAL, line, "method must be 'common', 'ceil' or 'floor'");
        return jv_float(y / m);
    }
    if (!strcmp(name, "unique")) {
        bool cs = jv_truthy(A(f, 0, "case_sensitive", jv_bool(false)));
        jv attr = A(f, 1, "attribute", none);
        jlist *l = jiter(r, line, in);
        jv out = jv_list(r->a, 0), seen = jv_list(r->a, 0);
        for (size_t i = 0; i < l->n; i++) {
            jv k = attr.t == JV_NONE ? l->v[i] : attr_path(r, line, l->v[i], attr);
            if (!cs && k.t == JV_STR) k = jstr_case(r, k, 'l');
            bool dup = false;
            for (size_t j = 0; j < seen.u.l->n && !dup; j++) dup = jv_eq(r->c, seen.u.l->v[j], k, 0);
            jstep(r, line);
            if (dup) continue;
            jlist_push(r->a, seen.u.l, k);
            jlist_push(r->a, out.u.l, l->v[i]);
        }
        out.flags = JVF_GEN;
        return out;
    }
    if (!strcmp(name, "sort")) {
        bool rev = jv_truthy(A(f, 0, "reverse", jv_bool(false)));
        bool cs = jv_truthy(A(f, 1, "case_sensitive", jv_bool(false)));
        return sorted(r, line, jiter(r, line, in), rev, cs, A(f, 2, "attribute", none));
    }
    if (!strcmp(name, "dictsort")) {
        if (in.t != JV_DICT) jfail(r->c, INF_EINVAL, line, "You can only sort by either \"key\" or \"value\"");
        bool cs = jv_truthy(A(f, 0, "case_sensitive", jv_bool(false)));
        jv by = A(f, 1, "by", jv_cstr(r->a, "key"));
        bool rev = jv_truthy(A(f, 2, "reverse", jv_bool(false)));
        jmethod m = {in, "items"};
        jv items = jmethod_call(r, line, &m, NULL, 0, NULL, NULL, 0);
        bool byv = by.t == JV_STR && !strcmp(by.u.s->s, "value");
        return sorted(r, line, items.u.l, rev, cs, jv_int(byv ? 1 : 0));
    }
    if (!strcmp(name, "reverse")) {
        if (in.t == JV_STR) {
            jv st = jv_int(-1);
            (void)st;
            jlist *l = jiter(r, line, in);
            jbuf b;
            jbuf_init(&b, r->a, in.u.s->len + 1);
            for (size_t i = l->n; i-- > 0;) jbuf_put(&b, l->v[i].u.s->s, l->v[i].u.s->len);
            return jbuf_take(&b);
        }
        jlist *l = jiter(r, line, in);
        jv out = jv_list(r->a, l->n);
        for (size_t i = l->n; i-- > 0;) jlist_push(r->a, out.u.l, l->v[i]);
        out.flags = JVF_GEN; /* a list_reverseiterator */
        return out;
    }
    if (!strcmp(name, "sum")) {
        jv attr = A(f, 0, "attribute", none);
        jv acc = A(f, 1, "start", jv_int(0));
        jlist *l = jiter(r, line, in);
        for (size_t i = 0; i < l->n; i++)
            acc = jbinop(r, line, "+", acc, attr.t == JV_NONE ? l->v[i] : attr_path(r, line, l->v[i], attr));
        return acc;
    }
    if (!strcmp(name, "min") || !strcmp(name, "max")) {
        bool cs = jv_truthy(A(f, 0, "case_sensitive", jv_bool(false)));
        jv attr = A(f, 1, "attribute", none);
        jv s = sorted(r, line, jiter(r, line, in), false, cs, attr);
        if (!s.u.l->n) return jv_undef("No aggregated item, sequence was empty.");
        return name[1] == 'i' ? s.u.l->v[0] : s.u.l->v[s.u.l->n - 1];
    }
    if (!strcmp(name, "attr")) {
        jv nm = A(f, 0, "name", none);
        if (nm.t != JV_STR) return jv_undef("attribute name must be a string");
        return jgetattr(r, line, in, nm.u.s->s);
    }
    if (!strcmp(name, "indent")) return do_indent(r, in, f);
    if (!strcmp(name, "format")) {
        jv tup = jv_list(r->a, nargs);
        tup.flags = JVF_TUPLE;
        for (size_t i = 0; i < nargs; i++) jlist_push(r->a, tup.u.l, args[i]);
        return jbinop(r, line, "%", S(r, in), tup);
    }
    if (!strcmp(name, "wordcount")) {
        jv s = S(r, in);
        int64_t c = 0;
        bool inw = false;
        for (size_t i = 0; i < s.u.s->len; i++) {
            char ch = s.u.s->s[i];
            bool w = (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' ||
                     (unsigned char)ch >= 0x80;
            if (w && !inw) c++;
            inw = w;
        }
        return jv_int(c);
    }
    if (!strcmp(name, "center")) {
        jv s = S(r, in);
        int64_t w = A(f, 0, "width", jv_int(80)).u.i, len = (int64_t)ju8_len(s.u.s->s, s.u.s->len);
        if (w > 100000) w = 100000;
        if (w <= len) return s;
        int64_t pad = w - len, left = pad / 2 + (pad & w & 1);
        jbuf b;
        jbuf_init(&b, r->a, r->lim.max_memory);
        for (int64_t i = 0; i < left; i++) jbuf_putc(&b, ' ');
        jbuf_put(&b, s.u.s->s, s.u.s->len);
        for (int64_t i = 0; i < pad - left; i++) jbuf_putc(&b, ' ');
        return jbuf_take(&b);
    }
    jfail(r->c, INF_EUNSUPPORTED, line, "the filter '%s' is not supported", name);
}

bool jtest(jrender *r, int line, const char *name, jv in, jv *args, size_t nargs) {
    jv a0 = nargs ? args[0] : jv_undef("missing test argument");
    if (!strcmp(name, "defined")) return in.t != JV_UNDEF;
    if (!strcmp(name, "undefined")) return in.t == JV_UNDEF;
    if (!strcmp(name, "none")) return in.t == JV_NONE;
    if (!strcmp(name, "boolean")) return in.t == JV_BOOL;
    if (!strcmp(name, "false")) return in.t == JV_BOOL && !in.u.b;
    if (!strcmp(name, "true")) return in.t == JV_BOOL && in.u.b;
    if (!strcmp(name, "integer")) return in.t == JV_INT;
    if (!strcmp(name, "float")) return in.t == JV_FLOAT;
    if (!strcmp(name, "number")) return jv_is_num(in);
    if (!strcmp(name, "string")) return in.t == JV_STR;
    if (!strcmp(name, "mapping")) return in.t == JV_DICT;
    if (!strcmp(name, "iterable") || !strcmp(name, "sequence"))
        return in.t == JV_STR || in.t == JV_LIST || in.t == JV_DICT || in.t == JV_UNDEF;
    if (!strcmp(name, "callable")) return in.t == JV_MACRO || in.t == JV_BUILTIN || in.t == JV_METHOD;
    if (!strcmp(name, "escaped")) return in.t == JV_STR && (in.flags & JVF_MARKUP);
    if (!strcmp(name, "filter")) return in.t == JV_STR && jfilter_exists(in.u.s->s);
    if (!strcmp(name, "test")) return in.t == JV_STR && jtest_exists(in.u.s->s);
    if (!strcmp(name, "lower") || !strcmp(name, "upper")) {
        if (in.t != JV_STR) return false;
        jv s = jstr_case(r, in, name[0] == 'l' ? 'l' : 'u');
        bool cased = false;
        for (size_t i = 0; i < in.u.s->len; i++) {
            char ch = in.u.s->s[i];
            if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')) cased = true;
        }
        return cased && jv_eq(r->c, s, in, 0);
    }
    if (!strcmp(name, "odd") || !strcmp(name, "even") || !strcmp(name, "divisibleby")) {
        if (in.t == JV_UNDEF) jundef_fail(r->c, line, in);
        jv d = name[0] == 'd' ? a0 : jv_int(2);
        jv m = jbinop(r, line, "%", in, d);
        bool zero = !jv_truthy(m);
        return name[0] == 'o' ? !zero : zero;
    }
    if (!strcmp(name, "sameas")) {
        if (in.t != a0.t) return false;
        if (in.t == JV_NONE || in.t == JV_UNDEF) return true;
        if (in.t == JV_BOOL) return in.u.b == a0.u.b;
        if (in.t == JV_INT) return in.u.i == a0.u.i && in.u.i >= -5 && in.u.i <= 256; /* CPython small ints */
        return memcmp(&in.u, &a0.u, sizeof in.u) == 0;
    }
    if (!strcmp(name, "in")) {
        jv seq = a0;
        if (seq.t == JV_STR) {
            if (in.t != JV_STR) jfail(r->c, INF_EINVAL, line, "'in <string>' requires string as left operand, not %s", jv_type_name(in));
            return !in.u.s->len || memmem(seq.u.s->s, seq.u.s->len, in.u.s->s, in.u.s->len);
        }
        if (seq.t == JV_DICT) return jdict_get(seq.u.d, in) != NULL;
        jlist *l = jiter(r, line, seq);
        for (size_t i = 0; i < l->n; i++)
            if (jv_eq(r->c, in, l->v[i], 0)) return true;
        return false;
    }
    if (!strcmp(name, "==") || !strcmp(name, "eq") || !strcmp(name, "equalto")) return jv_eq(r->c, in, a0, 0);
    if (!strcmp(name, "!=") || !strcmp(name, "ne")) return !jv_eq(r->c, in, a0, 0);
    int c = jv_cmp(r->c, line, in, a0, 0);
    if (!strcmp(name, ">") || !strcmp(name, "gt") || !strcmp(name, "greaterthan")) return c > 0;
    if (!strcmp(name, ">=") || !strcmp(name, "ge")) return c >= 0;
    if (!strcmp(name, "<") || !strcmp(name, "lt") || !strcmp(name, "lessthan")) return c < 0;
    return c <= 0;
}

/* ---- globals ------------------------------------------------------------------ */
static const char *builtins[] = {"range", "namespace", "dict", "raise_exception", "strftime_now", "cycler",
                                 "joiner", "lipsum", NULL};

int jbuiltin_find(const char *name) {
    for (int i = 0; builtins[i]; i++)
        if (!strcmp(builtins[i], name)) return i;
    return -1;
}

const char *jbuiltin_name(int i) { return builtins[i]; }

jv jbuiltin_call(jrender *r, int line, int bi, jv *args, size_t nargs, const char **kwn, jv *kwv, size_t nkw) {
    const char *nm = builtins[bi];
    jstep(r, line);
    if (!strcmp(nm, "raise_exception")) {
        jv m = nargs ? jv_to_str(r->a, args[0], 4096) : jv_cstr(r->a, "");
        jfail(r->c, INF_EINVAL, line, "%s", m.u.s->s);
    }
    if (!strcmp(nm, "range")) {
        int64_t a = 0, b, s = 1;
        for (size_t i = 0; i < nargs; i++)
            if (args[i].t != JV_INT && args[i].t != JV_BOOL)
                jfail(r->c, INF_EINVAL, line, "'%s' object cannot be interpreted as an integer", jv_type_name(args[i]));
        if (nargs == 1) b = args[0].u.i;
        else if (nargs == 2 || nargs == 3) {
            a = args[0].u.i;
            b = args[1].u.i;
            if (nargs == 3) s = args[2].u.i;
        } else
            jfail(r->c, INF_EINVAL, line, "range expected at most 3 arguments, got %zu", nargs);
        if (s == 0) jfail(r->c, INF_EINVAL, line, "range() arg 3 must not be zero");
        double cnt = s > 0 ? ceil(((double)b - (double)a) / (double)s) : ceil(((double)a - (double)b) / (double)-s);
        if (cnt < 0) cnt = 0;
        if (cnt > JINJA_MAX_RANGE)
            jfail(r->c, INF_ERANGE, line, "Range too big. The sandbox blocks ranges larger than MAX_RANGE (%d).", JINJA_MAX_RANGE);
        jv out = jv_list(r->a, (size_t)cnt);
        for (int64_t i = 0, x = a; i < (int64_t)cnt; i++, x += s) jlist_push(r->a, out.u.l, jv_int(x));
        return out;
    }
    if (!strcmp(nm, "namespace") || !strcmp(nm, "dict")) {
        jv d = jv_dict(r->a, nkw);
        for (size_t i = 0; i < nargs; i++) {
            if (args[i].t != JV_DICT && args[i].t != JV_NS)
                jfail(r->c, INF_EINVAL, line, "%s() positional arguments must be mappings", nm);
            for (size_t k = 0; k < args[i].u.d->n; k++) jdict_set(r->a, d.u.d, args[i].u.d->k[k], args[i].u.d->v[k]);
        }
        for (size_t i = 0; i < nkw; i++) jdict_set(r->a, d.u.d, jv_cstr(r->a, kwn[i]), kwv[i]);
        if (nm[0] == 'n') d.t = JV_NS;
        return d;
    }
    if (!strcmp(nm, "strftime_now")) {
        if (nargs < 1 || args[0].t != JV_STR) jfail(r->c, INF_EINVAL, line, "strftime_now needs a format string");
        struct tm tm;
        time_t now = r->now;
        localtime_r(&now, &tm);
        char buf[512];
        size_t n = args[0].u.s->len ? strftime(buf, sizeof buf, args[0].u.s->s, &tm) : 0;
        return jv_str(r->a, buf, n);
    }
    jfail(r->c, INF_EUNSUPPORTED, line, "the global '%s' is not supported", nm);
}
