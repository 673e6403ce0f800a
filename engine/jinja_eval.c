/* jinja_eval.c - statement execution and expression evaluation, with jinja2's
 * scoping (a for-loop iteration and a macro call get their own scope; if does
 * not), sandboxed attribute lookup (attribute first for ".", item first for
 * "[]"), default-Undefined semantics and Python operators. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jinja_internal.h"

/* C recursion bound through jexec/jeval (macro recursion included). */
#define JE_MAX_CDEPTH 1200

enum { CTRL_NONE, CTRL_BREAK, CTRL_CONTINUE };

_Noreturn void jundef_fail(jctx *c, int line, jv u) {
    jfail(c, INF_EINVAL, line, "%s", u.u.undef ? u.u.undef : "undefined value");
}

void jstep(jrender *r, int line) {
    if (++r->steps > r->lim.max_steps)
        jfail(r->c, INF_ERANGE, line, "template ran past its bound of %llu steps",
              (unsigned long long)r->lim.max_steps);
}

jscope *jscope_new(jrender *r, jscope *parent) {
    jscope *s = jalloc(r->a, sizeof *s);
    memset(s, 0, sizeof *s);
    s->parent = parent;
    return s;
}

jv jscope_get(jscope *s, const char *name, bool *found) {
    for (; s; s = s->parent)
        for (size_t i = s->n; i-- > 0;)
            if (!strcmp(s->names[i], name)) { *found = true; return s->vals[i]; }
    *found = false;
    return jv_undef(NULL);
}

void jscope_set(jrender *r, jscope *s, const char *name, jv v) {
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->names[i], name)) { s->vals[i] = v; return; }
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        const char **nn = jalloc(r->a, cap * sizeof *nn);
        jv *nv = jalloc(r->a, cap * sizeof *nv);
        if (s->n) {
            memcpy(nn, s->names, s->n * sizeof *nn);
            memcpy(nv, s->vals, s->n * sizeof *nv);
        }
        s->names = nn;
        s->vals = nv;
        s->cap = cap;
    }
    s->names[s->n] = name;
    s->vals[s->n] = v;
    s->n++;
}

static const char *fmt_msg(jrender *r, const char *fmt, const char *a, const char *b) {
    size_t n = strlen(fmt) + strlen(a) + (b ? strlen(b) : 0) + 1;
    char *m = jalloc(r->a, n);
    snprintf(m, n, fmt, a, b);
    return m;
}

static const char *obj_repr(jv obj) {
    switch (obj.t) {
    case JV_NONE: return "None";
    case JV_DICT: return "dict object";
    case JV_LIST: return (obj.flags & JVF_GEN) ? "generator object" : (obj.flags & JVF_TUPLE) ? "tuple object" : "list object";
    case JV_STR: return "str object";
    case JV_INT: return "int object";
    case JV_FLOAT: return "float object";
    case JV_BOOL: return "bool object";
    case JV_NS: return "jinja2.utils.Namespace object";
    case JV_LOOP: return "jinja2.runtime.LoopContext object";
    case JV_MACRO: return "jinja2.runtime.Macro object";
    default: return "builtin_function_or_method object";
    }
}

static jv undef_attr(jrender *r, jv obj, const char *name) {
    return jv_undef(fmt_msg(r, "'%s' has no attribute '%s'", obj_repr(obj), name));
}

static jv undef_key(jrender *r, jv obj, jv key) {
    if (key.t == JV_STR) return undef_attr(r, obj, key.u.s->s);
    jbuf b;
    jbuf_init(&b, r->a, 4096);
    jv_write_repr(&b, key, 0);
    return jv_undef(fmt_msg(r, "'%s' has no element %s", obj_repr(obj), b.p ? b.p : ""));
}

static jv loop_attr(jrender *r, jloop *lp, const char *name, bool *ok) {
    size_t n = lp->items->n, i = lp->i;
    *ok = true;
    if (!strcmp(name, "index")) return jv_int((int64_t)i + 1);
    if (!strcmp(name, "index0")) return jv_int((int64_t)i);
    if (!strcmp(name, "revindex")) return jv_int((int64_t)(n - i));
    if (!strcmp(name, "revindex0")) return jv_int((int64_t)(n - i - 1));
    if (!strcmp(name, "first")) return jv_bool(i == 0);
    if (!strcmp(name, "last")) return jv_bool(i + 1 == n);
    if (!strcmp(name, "length")) return jv_int((int64_t)n);
    if (!strcmp(name, "depth")) return jv_int(1);
    if (!strcmp(name, "depth0")) return jv_int(0);
    if (!strcmp(name, "previtem"))
        return i > 0 ? lp->items->v[i - 1] : jv_undef("there is no previous item");
    if (!strcmp(name, "nextitem"))
        return i + 1 < n ? lp->items->v[i + 1] : jv_undef("there is no next item");
    *ok = false;
    return jv_undef(NULL);
}

jv jgetattr(jrender *r, int line, jv obj, const char *name) {
    switch (obj.t) {
    case JV_UNDEF: jundef_fail(r->c, line, obj);
    case JV_DICT: {
        if (jmethod_exists(obj, name)) break;
        jv *p = jdict_gets(obj.u.d, name);
        if (p) return *p;
        return undef_attr(r, obj, name);
    }
    case JV_NS: {
        jv *p = jdict_gets(obj.u.d, name);
        if (p) return *p;
        return undef_attr(r, obj, name);
    }
    case JV_LOOP: {
        bool ok;
        jv v = loop_attr(r, obj.u.lp, name, &ok);
        if (ok) return v;
        return undef_attr(r, obj, name);
    }
    default: break;
    }
    if (jmethod_exists(obj, name)) {
        jmethod *m = jalloc(r->a, sizeof *m);
        m->self = obj;
        m->name = name;
        jv v = {.t = JV_METHOD};
        v.u.me = m;
        return v;
    }
    return undef_attr(r, obj, name);
}

/* Python's slice index adjustment. */
static void slice_idx(int64_t len, jv lo, jv hi, jv st, int64_t *start, int64_t *stop, int64_t *step, jrender *r,
                      int line) {
    *step = st.t == JV_NONE ? 1 : st.u.i;
    if (*step == 0) jfail(r->c, INF_EINVAL, line, "slice step cannot be zero");
    int64_t dlo = *step < 0 ? len - 1 : 0, dhi = *step < 0 ? -1 : len;
    if (lo.t == JV_NONE) *start = dlo;
    else {
        *start = lo.u.i;
        if (*start < 0) { *start += len; if (*start < 0) *start = *step < 0 ? -1 : 0; }
        else if (*start >= len) *start = *step < 0 ? len - 1 : len;
    }
    if (hi.t == JV_NONE) *stop = dhi;
    else {
        *stop = hi.u.i;
        if (*stop < 0) { *stop += len; if (*stop < 0) *stop = *step < 0 ? -1 : 0; }
        else if (*stop >= len) *stop = *step < 0 ? len - 1 : len;
    }
}

static jv slice_int(jrender *r, int line, jv v) {
    if (v.t == JV_NONE || v.t == JV_INT) return v;
    if (v.t == JV_BOOL) return jv_int(v.u.b);
    if (v.t == JV_UNDEF) return jv_none();
    jfail(r->c, INF_EINVAL, line, "slice indices must be integers or None or have an __index__ method");
}

static jv do_slice(jrender *r, int line, jv obj, jv lo, jv hi, jv st) {
    lo = slice_int(r, line, lo);
    hi = slice_int(r, line, hi);
    st = slice_int(r, line, st);
    int64_t a, b, s;
    if (obj.t == JV_LIST) {
        slice_idx((int64_t)obj.u.l->n, lo, hi, st, &a, &b, &s, r, line);
        jv out = jv_list(r->a, 0);
        out.flags = obj.flags & JVF_TUPLE;
        for (int64_t i = a; s > 0 ? i < b : i > b; i += s) jlist_push(r->a, out.u.l, obj.u.l->v[i]);
        return out;
    }
    if (obj.t == JV_STR) {
        const char *p = obj.u.s->s;
        size_t n = obj.u.s->len, cl = ju8_len(p, n);
        slice_idx((int64_t)cl, lo, hi, st, &a, &b, &s, r, line);
        if (cl == n && s == 1) return jv_str(r->a, p + a, a < b ? (size_t)(b - a) : 0);
        /* code point offsets once, then pick */
        size_t *off = jalloc(r->a, (cl + 1) * sizeof *off);
        for (size_t i = 0, k = 0; k <= cl; k++) {
            off[k] = i;
            if (i < n) { size_t ad; ju8_decode(p + i, n - i, &ad); i += ad; }
        }
        jbuf bb;
        jbuf_init(&bb, r->a, n + 1);
        for (int64_t i = a; s > 0 ? i < b : i > b; i += s) jbuf_put(&bb, p + off[i], off[i + 1] - off[i]);
        jv out = jbuf_take(&bb);
        return out;
    }
    if (obj.t == JV_UNDEF) jundef_fail(r->c, line, obj);
    return jv_undef(fmt_msg(r, "'%s' object is not subscriptable%s", jv_type_name(obj), ""));
}

jv jgetitem(jrender *r, int line, jv obj, jv key) {
    switch (obj.t) {
    case JV_UNDEF: jundef_fail(r->c, line, obj);
    case JV_DICT: {
        jv *p = jdict_get(obj.u.d, key);
        if (p) return *p;
        break;
    }
    case JV_LIST:
        if (obj.flags & JVF_GEN) break;
        if (key.t == JV_INT || key.t == JV_BOOL) {
            int64_t i = key.t == JV_INT ? key.u.i : key.u.b, n = (int64_t)obj.u.l->n;
            if (i < 0) i += n;
            if (i >= 0 && i < n) return obj.u.l->v[i];
            return undef_key(r, obj, key);
        }
        break;
    case JV_STR:
        if (key.t == JV_INT || key.t == JV_BOOL) {
            int64_t i = key.t == JV_INT ? key.u.i : key.u.b;
            const char *p = obj.u.s->s;
            size_t n = obj.u.s->len;
            int64_t cl = (int64_t)ju8_len(p, n);
            if (i < 0) i += cl;
            if (i >= 0 && i < cl) {
                size_t o = ju8_offset(p, n, (size_t)i), ad;
                ju8_decode(p + o, n - o, &ad);
                return jv_str(r->a, p + o, ad);
            }
            return undef_key(r, obj, key);
        }
        break;
    default: break;
    }
    if (key.t == JV_STR) return jgetattr(r, line, obj, key.u.s->s);
    return undef_key(r, obj, key);
}

jlist *jiter(jrender *r, int line, jv v) {
    switch (v.t) {
    case JV_LIST: return v.u.l;
    case JV_UNDEF: { jv l = jv_list(r->a, 0); return l.u.l; }
    case JV_DICT: {
        jv l = jv_list(r->a, v.u.d->n);
        for (size_t i = 0; i < v.u.d->n; i++) jlist_push(r->a, l.u.l, v.u.d->k[i]);
        return l.u.l;
    }
    case JV_STR: {
        jv l = jv_list(r->a, 0);
        const char *p = v.u.s->s;
        size_t n = v.u.s->len;
        for (size_t i = 0; i < n;) {
            size_t ad;
            ju8_decode(p + i, n - i, &ad);
            jlist_push(r->a, l.u.l, jv_str(r->a, p + i, ad));
            i += ad;
        }
        return l.u.l;
    }
    default:
        jfail(r->c, INF_EINVAL, line, "'%s' object is not iterable", jv_type_name(v));
    }
}

static bool contains(jrender *r, int line, jv item, jv seq) {
    if (seq.t == JV_STR) {
        if (item.t == JV_UNDEF) jundef_fail(r->c, line, item);
        if (item.t != JV_STR)
            jfail(r->c, INF_EINVAL, line, "'in <string>' requires string as left operand, not %s", jv_type_name(item));
        if (!item.u.s->len) return true;
        return memmem(seq.u.s->s, seq.u.s->len, item.u.s->s, item.u.s->len) != NULL;
    }
    if (seq.t == JV_DICT) return jdict_get(seq.u.d, item) != NULL;
    if (seq.t == JV_NS || seq.t == JV_LOOP || seq.t == JV_MACRO || seq.t == JV_METHOD || seq.t == JV_BUILTIN ||
        seq.t == JV_NONE || seq.t == JV_INT || seq.t == JV_FLOAT || seq.t == JV_BOOL)
        jfail(r->c, INF_EINVAL, line, "argument of type '%s' is not iterable", jv_type_name(seq));
    jlist *l = jiter(r, line, seq);
    for (size_t i = 0; i < l->n; i++)
        if (jv_eq(r->c, item, l->v[i], 0)) return true;
    return false;
}

static void enter(jrender *r, int line) {
    if (++r->cdepth > JE_MAX_CDEPTH) jfail(r->c, INF_ERANGE, line, "maximum recursion depth exceeded");
}

/* Evaluates a filter chain whose innermost input is in (filter blocks, set
 * blocks) or its own operand. */
static jv eval_filter(jrender *r, jscope *s, const jnode *f, const jv *in) {
    jv x = !f->a ? *in : f->a->kind == JN_FILTER ? eval_filter(r, s, f->a, in) : jeval(r, s, f->a);
    jv *args = f->n ? jalloc(r->a, f->n * sizeof(jv)) : NULL;
    jv *kwv = f->nkw ? jalloc(r->a, f->nkw * sizeof(jv)) : NULL;
    for (size_t i = 0; i < f->n; i++) args[i] = jeval(r, s, f->kids[i]);
    for (size_t i = 0; i < f->nkw; i++) kwv[i] = jeval(r, s, f->kwv[i]);
    r->line = f->line;
    return jfilter(r, f->line, f->name, x, args, f->n, f->kwn, kwv, f->nkw);
}

static jv eval_call(jrender *r, jscope *s, const jnode *e, jv caller) {
    jv fn = jeval(r, s, e->a);
    jv *args = e->n ? jalloc(r->a, e->n * sizeof(jv)) : NULL;
    size_t nkw = e->nkw + (caller.t == JV_MACRO);
    jv *kwv = nkw ? jalloc(r->a, nkw * sizeof(jv)) : NULL;
    const char **kwn = nkw ? jalloc(r->a, nkw * sizeof(char *)) : NULL;
    for (size_t i = 0; i < e->n; i++) args[i] = jeval(r, s, e->kids[i]);
    for (size_t i = 0; i < e->nkw; i++) {
        kwv[i] = jeval(r, s, e->kwv[i]);
        kwn[i] = e->kwn[i];
    }
    if (caller.t == JV_MACRO) {
        kwn[e->nkw] = "caller";
        kwv[e->nkw] = caller;
    }
    return jcall(r, e->line, fn, args, e->n, kwn, kwv, nkw);
}

jv jeval(jrender *r, jscope *s, const jnode *e) {
    enter(r, e->line);
    jv v;
    switch (e->kind) {
    case JN_LIT: v = e->lit; break;
    case JN_NAME: {
        bool found;
        v = jscope_get(s, e->name, &found);
        if (!found) {
            int bi = jbuiltin_find(e->name);
            if (bi >= 0) { v.t = JV_BUILTIN; v.flags = 0; v.u.bi = bi; }
            else v = jv_undef(fmt_msg(r, "'%s' is undefined%s", e->name, ""));
        }
        break;
    }
    case JN_LIST: case JN_TUPLE:
        v = jv_list(r->a, e->n);
        if (e->kind == JN_TUPLE) v.flags = JVF_TUPLE;
        for (size_t i = 0; i < e->n; i++) jlist_push(r->a, v.u.l, jeval(r, s, e->kids[i]));
        break;
    case JN_DICT:
        v = jv_dict(r->a, e->n / 2);
        for (size_t i = 0; i + 1 < e->n; i += 2) {
            jv k = jeval(r, s, e->kids[i]);
            if (k.t == JV_LIST && !(k.flags & JVF_TUPLE)) jfail(r->c, INF_EINVAL, e->line, "unhashable type: 'list'");
            if (k.t == JV_DICT) jfail(r->c, INF_EINVAL, e->line, "unhashable type: 'dict'");
            jdict_set(r->a, v.u.d, k, jeval(r, s, e->kids[i + 1]));
        }
        break;
    case JN_ATTR: v = jgetattr(r, e->line, jeval(r, s, e->a), e->name); break;
    case JN_ITEM: {
        jv o = jeval(r, s, e->a);
        v = jgetitem(r, e->line, o, jeval(r, s, e->b));
        break;
    }
    case JN_SLICE: {
        jv o = jeval(r, s, e->a);
        jv lo = e->b ? jeval(r, s, e->b) : jv_none(), hi = e->c ? jeval(r, s, e->c) : jv_none(),
           st = e->d ? jeval(r, s, e->d) : jv_none();
        if (o.t == JV_UNDEF) jundef_fail(r->c, e->line, o);
        v = do_slice(r, e->line, o, lo, hi, st);
        break;
    }
    case JN_CALL: v = eval_call(r, s, e, jv_undef(NULL)); break;
    case JN_FILTER: v = eval_filter(r, s, e, NULL); break;
    case JN_TEST: {
        jv x = jeval(r, s, e->a);
        jv *args = e->n ? jalloc(r->a, e->n * sizeof(jv)) : NULL;
        for (size_t i = 0; i < e->n; i++) args[i] = jeval(r, s, e->kids[i]);
        bool t = jtest(r, e->line, e->name, x, args, e->n);
        v = jv_bool(e->neg ? !t : t);
        break;
    }
    case JN_NEG: case JN_POS: {
        jv x = jeval(r, s, e->a);
        if (x.t == JV_UNDEF) jundef_fail(r->c, e->line, x);
        if (x.t == JV_BOOL) x = jv_int(x.u.b);
        if (x.t == JV_INT) {
            if (e->kind == JN_NEG && x.u.i == INT64_MIN) jfail(r->c, INF_ERANGE, e->line, "integer overflow");
            v = e->kind == JN_NEG ? jv_int(-x.u.i) : x;
        } else if (x.t == JV_FLOAT)
            v = e->kind == JN_NEG ? jv_float(-x.u.f) : x;
        else
            jfail(r->c, INF_EINVAL, e->line, "bad operand type for unary %c: '%s'", e->kind == JN_NEG ? '-' : '+',
                  jv_type_name(x));
        break;
    }
    case JN_NOT: v = jv_bool(!jv_truthy(jeval(r, s, e->a))); break;
    case JN_AND: v = jeval(r, s, e->a); if (jv_truthy(v)) v = jeval(r, s, e->b); break;
    case JN_OR: v = jeval(r, s, e->a); if (!jv_truthy(v)) v = jeval(r, s, e->b); break;
    case JN_BIN: {
        jv a = jeval(r, s, e->a), b = jeval(r, s, e->b);
        r->line = e->line;
        v = jbinop(r, e->line, e->op, a, b);
        break;
    }
    case JN_CMP: {
        jv a = jeval(r, s, e->a);
        v = jv_bool(true);
        for (size_t i = 0; i < e->n; i++) {
            jv b = jeval(r, s, e->kids[i]);
            const char *op = e->kwn[i];
            bool t;
            if (!strcmp(op, "==")) t = jv_eq(r->c, a, b, 0);
            else if (!strcmp(op, "!=")) t = !jv_eq(r->c, a, b, 0);
            else if (!strcmp(op, "in")) t = contains(r, e->line, a, b);
            else if (!strcmp(op, "notin")) t = !contains(r, e->line, a, b);
            else {
                int c = jv_cmp(r->c, e->line, a, b, 0);
                t = !strcmp(op, "<") ? c < 0 : !strcmp(op, "<=") ? c <= 0 : !strcmp(op, ">") ? c > 0 : c >= 0;
            }
            if (!t) { v = jv_bool(false); break; }
            a = b;
        }
        break;
    }
    case JN_COND:
        if (jv_truthy(jeval(r, s, e->a))) v = jeval(r, s, e->b);
        else if (e->c) v = jeval(r, s, e->c);
        else v = jv_undef("the inline if-expression evaluated to false and no else section was defined.");
        break;
    default: jfail(r->c, INF_EINVAL, e->line, "statement used as an expression");
    }
    r->cdepth--;
    return v;
}

/* ---- macros and calls -------------------------------------------------------- */
static jv call_macro(jrender *r, int line, jmacro *m, jv *args, size_t nargs, const char **kwn, jv *kwv,
                     size_t nkw) {
    const jnode *d = m->def;
    const char *mname = d->kind == JN_MACRO ? d->name : "caller";
    if (nargs > d->nkw)
        jfail(r->c, INF_EINVAL, line, "macro '%s' takes not more than %zu argument(s)", mname, d->nkw);
    if (++r->depth > r->lim.max_depth)
        jfail(r->c, INF_ERANGE, line, "macro calls nested deeper than %d", r->lim.max_depth);
    jstep(r, line);
    jscope *s = jscope_new(r, m->closure);
    jv caller = jv_undef("'caller' is undefined");
    for (size_t k = 0; k < nkw; k++) {
        if (!strcmp(kwn[k], "caller")) { caller = kwv[k]; continue; }
        size_t p = 0;
        while (p < d->nkw && strcmp(d->kwn[p], kwn[k])) p++;
        if (p == d->nkw) jfail(r->c, INF_EINVAL, line, "macro '%s' takes no keyword argument '%s'", mname, kwn[k]);
        if (p < nargs) jfail(r->c, INF_EINVAL, line, "macro '%s' got multiple values for argument '%s'", mname, kwn[k]);
    }
    for (size_t p = 0; p < d->nkw; p++) {
        jv v;
        bool have = false;
        if (p < nargs) { v = args[p]; have = true; }
        for (size_t k = 0; !have && k < nkw; k++)
            if (!strcmp(kwn[k], d->kwn[p])) { v = kwv[k]; have = true; }
        if (!have) {
            if (d->kwv && d->kwv[p]) v = jeval(r, s, d->kwv[p]);
            else v = jv_undef(fmt_msg(r, "parameter '%s' was not provided%s", d->kwn[p], ""));
        }
        jscope_set(r, s, d->kwn[p], v);
    }
    jscope_set(r, s, "caller", caller);
    jscope_set(r, s, "varargs", (jv){.t = JV_LIST, .flags = JVF_TUPLE, .u.l = jv_list(r->a, 0).u.l});
    jscope_set(r, s, "kwargs", jv_dict(r->a, 0));
    jbuf out;
    jbuf_init(&out, r->a, r->lim.max_output);
    out.line = line;
    jexec(r, s, d->b, &out);
    r->depth--;
    return jbuf_take(&out);
}

jv jcall(jrender *r, int line, jv fn, jv *args, size_t nargs, const char **kwn, jv *kwv, size_t nkw) {
    r->line = line;
    switch (fn.t) {
    case JV_MACRO: return call_macro(r, line, fn.u.m, args, nargs, kwn, kwv, nkw);
    case JV_BUILTIN: return jbuiltin_call(r, line, fn.u.bi, args, nargs, kwn, kwv, nkw);
    case JV_METHOD: return jmethod_call(r, line, fn.u.me, args, nargs, kwn, kwv, nkw);
    case JV_UNDEF: jundef_fail(r->c, line, fn);
    default: jfail(r->c, INF_EINVAL, line, "'%s' object is not callable", jv_type_name(fn));
    }
}

/* ---- statements ------------------------------------------------------------- */
static void assign_targets(jrender *r, jscope *s, int line, const char **names, size_t n, jv v) {
    if (n == 1) { jscope_set(r, s, names[0], v); return; }
    jlist *l = jiter(r, line, v);
    if (l->n != n)
        jfail(r->c, INF_EINVAL, line, l->n > n ? "too many values to unpack (expected %zu)"
                                              : "not enough values to unpack (expected %zu)", n);
    for (size_t i = 0; i < n; i++) jscope_set(r, s, names[i], l->v[i]);
}

static jv capture(jrender *r, jscope *s, const jnode *body, int line) {
    jbuf b;
    jbuf_init(&b, r->a, r->lim.max_output);
    b.line = line;
    jexec(r, s, body, &b);
    return jbuf_take(&b);
}

static void exec_for(jrender *r, jscope *s, const jnode *st, jbuf *out) {
    jv seq = jeval(r, s, st->a);
    jlist *items = jiter(r, st->line, seq);
    if (st->d) { /* "for x in xs if cond": the loop sees only the kept items */
        jv kept = jv_list(r->a, 0);
        for (size_t i = 0; i < items->n; i++) {
            jstep(r, st->line);
            jscope *fs = jscope_new(r, s);
            assign_targets(r, fs, st->line, st->kwn, st->nkw, items->v[i]);
            if (jv_truthy(jeval(r, fs, st->d))) jlist_push(r->a, kept.u.l, items->v[i]);
        }
        items = kept.u.l;
    }
    jloop *lp = jalloc(r->a, sizeof *lp);
    lp->items = items;
    for (size_t i = 0; i < items->n; i++) {
        jstep(r, st->line);
        lp->i = i;
        jscope *is = jscope_new(r, s);
        jv lv = {.t = JV_LOOP};
        lv.u.lp = lp;
        jscope_set(r, is, "loop", lv);
        assign_targets(r, is, st->line, st->kwn, st->nkw, items->v[i]);
        jexec(r, is, st->b, out);
        if (r->ctrl == CTRL_BREAK) { r->ctrl = CTRL_NONE; break; }
        if (r->ctrl == CTRL_CONTINUE) r->ctrl = CTRL_NONE;
    }
    if (!items->n && st->c) jexec(r, s, st->c, out);
}

void jexec(jrender *r, jscope *s, const jnode *st, jbuf *out) {
    enter(r, st->line);
    out->line = st->line;
    switch (st->kind) {
    case JN_BODY:
        for (size_t i = 0; i < st->n && r->ctrl == CTRL_NONE; i++) jexec(r, s, st->kids[i], out);
        break;
    case JN_DATA: jbuf_put(out, st->lit.u.s->s, st->lit.u.s->len); break;
    case JN_OUT: {
        jstep(r, st->line);
        jv v = jeval(r, s, st->a);
        out->line = st->line;
        jv_write_str(out, v, 0);
        break;
    }
    case JN_IF:
        jstep(r, st->line);
        if (jv_truthy(jeval(r, s, st->a))) jexec(r, s, st->b, out);
        else if (st->c) jexec(r, s, st->c, out);
        break;
    case JN_FOR: exec_for(r, s, st, out); break;
    case JN_SET: {
        jstep(r, st->line);
        jv v = jeval(r, s, st->a);
        if (st->name) {
            bool found;
            jv ns = jscope_get(s, st->name, &found);
            if (ns.t != JV_NS) jfail(r->c, INF_EINVAL, st->line, "cannot assign attribute on non-namespace object");
            jdict_set(r->a, ns.u.d, jv_cstr(r->a, st->kwn[0]), v);
        } else
            assign_targets(r, s, st->line, st->kwn, st->nkw, v);
        break;
    }
    case JN_SETBLOCK: {
        jstep(r, st->line);
        jv v = capture(r, s, st->b, st->line);
        if (st->c) v = eval_filter(r, s, st->c, &v);
        jscope_set(r, s, st->kwn[0], v);
        break;
    }
    case JN_FILTERBLOCK: {
        jstep(r, st->line);
        jv v = capture(r, s, st->b, st->line);
        v = eval_filter(r, s, st->c, &v);
        out->line = st->line;
        jv_write_str(out, v, 0);
        break;
    }
    case JN_MACRO: {
        jmacro *m = jalloc(r->a, sizeof *m);
        m->def = st;
        m->closure = s;
        m->caller = jv_undef(NULL);
        jv v = {.t = JV_MACRO};
        v.u.m = m;
        jscope_set(r, s, st->name, v);
        break;
    }
    case JN_CALLBLOCK: {
        jstep(r, st->line);
        jmacro *m = jalloc(r->a, sizeof *m);
        m->def = st;
        m->closure = s;
        m->caller = jv_undef(NULL);
        jv caller = {.t = JV_MACRO};
        caller.u.m = m;
        jv v = eval_call(r, s, st->a, caller);
        out->line = st->line;
        jv_write_str(out, v, 0);
        break;
    }
    case JN_BREAK: r->ctrl = CTRL_BREAK; break;
    case JN_CONTINUE: r->ctrl = CTRL_CONTINUE; break;
    default: jfail(r->c, INF_EINVAL, st->line, "expression used as a statement");
    }
    r->cdepth--;
}
