/* jinja_parse.c - tokens to AST, following jinja2's parser.py (precedence,
 * where filters and tests bind, what each statement takes). Unknown filters
 * and tests fail here, as jinja2 fails them when compiling. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jinja_internal.h"

/* Nesting bound for expressions and blocks: keeps the parser's and the
 * evaluator's C recursion shallow whatever the template. */
#define JP_MAX_DEPTH 96

typedef struct parser {
    jctx *c;
    jarena *a;
    const jtok *t;
    size_t n, i;
    int depth;
    int loops; /* enclosing for loops (break/continue need one) */
} parser;

static const jtok *cur(parser *P) { return &P->t[P->i]; }
static const jtok *peek(parser *P, size_t k) { return &P->t[P->i + k < P->n ? P->i + k : P->n - 1]; }

static bool is_op(const jtok *t, const char *op) {
    return t->t == JT_OP && t->n == strlen(op) && memcmp(t->s, op, t->n) == 0;
}
static bool is_name(const jtok *t, const char *w) {
    return t->t == JT_NAME && t->n == strlen(w) && memcmp(t->s, w, t->n) == 0;
}

static const char *tok_desc(parser *P, const jtok *t) {
    switch (t->t) {
    case JT_EOF: return "end of template";
    case JT_BLOCK_END: return "end of statement block";
    case JT_VAR_END: return "end of print statement";
    case JT_BLOCK_BEGIN: return "begin of statement block";
    case JT_VAR_BEGIN: return "begin of print statement";
    case JT_DATA: return "template data";
    case JT_STRING: return "string";
    case JT_INT: return "integer";
    case JT_FLOAT: return "float";
    default: return jstrndup(P->a, t->s, t->n);
    }
}

_Noreturn static void unexpected(parser *P, const char *want) {
    const jtok *t = cur(P);
    if (want) jfail(P->c, INF_EFORMAT, t->line, "expected token '%s', got '%s'", want, tok_desc(P, t));
    jfail(P->c, INF_EFORMAT, t->line, "unexpected '%s'", tok_desc(P, t));
}

static void expect_op(parser *P, const char *op) {
    if (!is_op(cur(P), op)) unexpected(P, op);
    P->i++;
}

static const char *expect_name(parser *P) {
    const jtok *t = cur(P);
    if (t->t != JT_NAME) unexpected(P, "name");
    P->i++;
    return jstrndup(P->a, t->s, t->n);
}

static jnode *node(parser *P, int kind, int line) {
    jnode *x = jalloc(P->a, sizeof *x);
    memset(x, 0, sizeof *x);
    x->kind = (uint8_t)kind;
    x->line = line;
    return x;
}

typedef struct nvec { jnode **v; size_t n, cap; } nvec;
static void nv_push(parser *P, nvec *v, jnode *x) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 4;
        jnode **nn = jalloc(P->a, cap * sizeof *nn);
        if (v->n) memcpy(nn, v->v, v->n * sizeof *nn);
        v->v = nn;
        v->cap = cap;
    }
    v->v[v->n++] = x;
}
typedef struct svec { const char **v; size_t n, cap; } svec;
static void sv_push(parser *P, svec *v, const char *x) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 4;
        const char **nn = jalloc(P->a, cap * sizeof *nn);
        if (v->n) memcpy(nn, v->v, v->n * sizeof *nn);
        v->v = nn;
        v->cap = cap;
    }
    v->v[v->n++] = x;
}

static void enter(parser *P) {
    if (++P->depth > JP_MAX_DEPTH) jfail(P->c, INF_ERANGE, cur(P)->line, "template nested too deeply");
}
static void leave(parser *P) { P->depth--; }

static jnode *expr(parser *P);
static jnode *or_expr(parser *P);
static jnode *unary(parser *P, bool with_filter);
static jnode *primary(parser *P);
static jnode *postfix(parser *P, jnode *x);
static jnode *tuple_expr(parser *P, bool with_cond, bool explicit_parens);

/* (args) after '(' was seen: positional and name=value. */
static void call_args(parser *P, jnode *x) {
    expect_op(P, "(");
    nvec pos = {0}, kwv = {0};
    svec kwn = {0};
    while (!is_op(cur(P), ")")) {
        if (pos.n || kwn.n) expect_op(P, ",");
        if (is_op(cur(P), ")")) break;
        if (cur(P)->t == JT_NAME && is_op(peek(P, 1), "=")) {
            sv_push(P, &kwn, expect_name(P));
            P->i++;
            nv_push(P, &kwv, expr(P));
        } else {
            if (kwn.n) jfail(P->c, INF_EFORMAT, cur(P)->line, "positional argument follows keyword argument");
            nv_push(P, &pos, expr(P));
        }
    }
    P->i++;
    x->kids = pos.v;
    x->n = pos.n;
    x->kwn = kwn.v;
    x->kwv = kwv.v;
    x->nkw = kwn.n;
}

static const char *dotted_name(parser *P) {
    const char *nm = expect_name(P);
    while (is_op(cur(P), ".") && peek(P, 1)->t == JT_NAME) {
        P->i++;
        const char *more = expect_name(P);
        size_t l1 = strlen(nm), l2 = strlen(more);
        char *j = jalloc(P->a, l1 + l2 + 2);
        memcpy(j, nm, l1);
        j[l1] = '.';
        memcpy(j + l1 + 1, more, l2 + 1);
        nm = j;
    }
    return nm;
}

static jnode *filter(parser *P, jnode *in) {
    int line = cur(P)->line;
    jnode *f = node(P, JN_FILTER, line);
    f->name = dotted_name(P);
    if (!jfilter_exists(f->name)) jfail(P->c, INF_EFORMAT, line, "No filter named '%s'.", f->name);
    f->a = in;
    if (is_op(cur(P), "(")) call_args(P, f);
    return f;
}

static jnode *test(parser *P, jnode *in) {
    int line = cur(P)->line;
    P->i++; /* is */
    bool neg = false;
    if (is_name(cur(P), "not")) { neg = true; P->i++; }
    jnode *t = node(P, JN_TEST, line);
    t->name = dotted_name(P);
    if (!jtest_exists(t->name)) jfail(P->c, INF_EFORMAT, line, "No test named '%s'.", t->name);
    t->a = in;
    t->neg = neg;
    const jtok *c = cur(P);
    if (is_op(c, "(")) call_args(P, t);
    else if ((c->t == JT_NAME || c->t == JT_STRING || c->t == JT_INT || c->t == JT_FLOAT || is_op(c, "[") ||
              is_op(c, "{")) && !is_name(c, "else") && !is_name(c, "or") && !is_name(c, "and")) {
        if (is_name(c, "is")) jfail(P->c, INF_EFORMAT, c->line, "You cannot chain multiple tests with is");
        jnode *arg = postfix(P, primary(P));
        t->kids = jalloc(P->a, sizeof(jnode *));
        t->kids[0] = arg;
        t->n = 1;
    }
    return t;
}

static jnode *filter_expr(parser *P, jnode *x) {
    for (;;) {
        if (is_op(cur(P), "|")) { P->i++; x = filter(P, x); }
        else if (is_name(cur(P), "is")) x = test(P, x);
        else if (is_op(cur(P), "(")) {
            jnode *c = node(P, JN_CALL, cur(P)->line);
            c->a = x;
            call_args(P, c);
            x = c;
        } else
            return x;
    }
}

static jnode *subscript(parser *P, jnode *x) {
    const jtok *t = cur(P);
    if (is_op(t, ".")) {
        P->i++;
        const jtok *a = cur(P);
        if (a->t == JT_NAME) {
            jnode *g = node(P, JN_ATTR, t->line);
            g->a = x;
            g->name = expect_name(P);
            return g;
        }
        if (a->t == JT_INT) {
            jnode *g = node(P, JN_ITEM, t->line);
            g->a = x;
            g->b = node(P, JN_LIT, a->line);
            g->b->lit = jv_int(a->i);
            P->i++;
            return g;
        }
        unexpected(P, "name or number");
    }
    /* '[' subscripts: an index, a slice, or several (a tuple) */
    P->i++;
    nvec parts = {0};
    while (!is_op(cur(P), "]")) {
        if (parts.n) expect_op(P, ",");
        jnode *sub;
        int line = cur(P)->line;
        jnode *lo = NULL, *hi = NULL, *st = NULL;
        bool slice = false;
        if (!is_op(cur(P), ":")) lo = expr(P);
        if (is_op(cur(P), ":")) {
            slice = true;
            P->i++;
            if (!is_op(cur(P), "]") && !is_op(cur(P), ",") && !is_op(cur(P), ":")) hi = expr(P);
            if (is_op(cur(P), ":")) {
                P->i++;
                if (!is_op(cur(P), "]") && !is_op(cur(P), ",")) st = expr(P);
            }
        }
        if (slice) {
            sub = node(P, JN_SLICE, line);
            sub->b = lo;
            sub->c = hi;
            sub->d = st;
        } else
            sub = lo;
        nv_push(P, &parts, sub);
    }
    P->i++;
    if (!parts.n) jfail(P->c, INF_EFORMAT, t->line, "expected subscript expression");
    jnode *key;
    if (parts.n == 1) key = parts.v[0];
    else {
        key = node(P, JN_TUPLE, t->line);
        key->kids = parts.v;
        key->n = parts.n;
    }
    if (key->kind == JN_SLICE) {
        key->a = x;
        return key;
    }
    jnode *g = node(P, JN_ITEM, t->line);
    g->a = x;
    g->b = key;
    return g;
}

static jnode *postfix(parser *P, jnode *x) {
    for (;;) {
        if (is_op(cur(P), ".") || is_op(cur(P), "[")) x = subscript(P, x);
        else if (is_op(cur(P), "(")) {
            jnode *c = node(P, JN_CALL, cur(P)->line);
            c->a = x;
            call_args(P, c);
            x = c;
        } else
            return x;
    }
}

static jnode *primary(parser *P) {
    const jtok *t = cur(P);
    enter(P);
    jnode *x;
    if (t->t == JT_NAME) {
        x = node(P, JN_LIT, t->line);
        if (is_name(t, "true") || is_name(t, "True")) x->lit = jv_bool(true);
        else if (is_name(t, "false") || is_name(t, "False")) x->lit = jv_bool(false);
        else if (is_name(t, "none") || is_name(t, "None")) x->lit = jv_none();
        else {
            x->kind = JN_NAME;
            x->name = jstrndup(P->a, t->s, t->n);
        }
        P->i++;
    } else if (t->t == JT_STRING) {
        /* adjacent literals concatenate */
        jbuf b;
        jbuf_init(&b, P->a, (size_t)-1 / 2);
        while (cur(P)->t == JT_STRING) {
            jbuf_put(&b, cur(P)->s, cur(P)->n);
            P->i++;
        }
        x = node(P, JN_LIT, t->line);
        x->lit = jbuf_take(&b);
    } else if (t->t == JT_INT) {
        x = node(P, JN_LIT, t->line);
        x->lit = jv_int(t->i);
        P->i++;
    } else if (t->t == JT_FLOAT) {
        x = node(P, JN_LIT, t->line);
        x->lit = jv_float(t->f);
        P->i++;
    } else if (is_op(t, "(")) {
        P->i++;
        x = tuple_expr(P, true, true);
        expect_op(P, ")");
    } else if (is_op(t, "[")) {
        P->i++;
        nvec items = {0};
        while (!is_op(cur(P), "]")) {
            if (items.n) expect_op(P, ",");
            if (is_op(cur(P), "]")) break;
            nv_push(P, &items, expr(P));
        }
        P->i++;
        x = node(P, JN_LIST, t->line);
        x->kids = items.v;
        x->n = items.n;
    } else if (is_op(t, "{")) {
        P->i++;
        nvec items = {0};
        while (!is_op(cur(P), "}")) {
            if (items.n) expect_op(P, ",");
            if (is_op(cur(P), "}")) break;
            nv_push(P, &items, expr(P));
            expect_op(P, ":");
            nv_push(P, &items, expr(P));
        }
        P->i++;
        x = node(P, JN_DICT, t->line);
        x->kids = items.v;
        x->n = items.n;
    } else
        unexpected(P, NULL);
    leave(P);
    return x;
}

static jnode *unary(parser *P, bool with_filter) {
    const jtok *t = cur(P);
    jnode *x;
    enter(P);
    if (is_op(t, "-") || is_op(t, "+")) {
        P->i++;
        x = node(P, is_op(t, "-") ? JN_NEG : JN_POS, t->line);
        x->a = unary(P, false);
    } else
        x = primary(P);
    x = postfix(P, x);
    if (with_filter) x = filter_expr(P, x);
    leave(P);
    return x;
}

static jnode *bin(parser *P, int line, const char *op, jnode *a, jnode *b) {
    jnode *x = node(P, JN_BIN, line);
    x->op = op;
    x->a = a;
    x->b = b;
    return x;
}

static jnode *pow_expr(parser *P) {
    jnode *x = unary(P, true);
    while (is_op(cur(P), "**")) {
        int line = cur(P)->line;
        P->i++;
        x = bin(P, line, "**", x, unary(P, true));
    }
    return x;
}

static jnode *math2(parser *P) {
    jnode *x = pow_expr(P);
    for (;;) {
        const jtok *t = cur(P);
        const char *op = is_op(t, "*") ? "*" : is_op(t, "/") ? "/" : is_op(t, "//") ? "//" : is_op(t, "%") ? "%" : NULL;
        if (!op) return x;
        P->i++;
        x = bin(P, t->line, op, x, pow_expr(P));
    }
}

static jnode *concat(parser *P) {
    jnode *x = math2(P);
    while (is_op(cur(P), "~")) {
        int line = cur(P)->line;
        P->i++;
        x = bin(P, line, "~", x, math2(P));
    }
    return x;
}

static jnode *math1(parser *P) {
    jnode *x = concat(P);
    for (;;) {
        const jtok *t = cur(P);
        const char *op = is_op(t, "+") ? "+" : is_op(t, "-") ? "-" : NULL;
        if (!op) return x;
        P->i++;
        x = bin(P, t->line, op, x, concat(P));
    }
}

static jnode *compare(parser *P) {
    int line = cur(P)->line;
    jnode *first = math1(P);
    nvec rhs = {0};
    svec ops = {0};
    for (;;) {
        const jtok *t = cur(P);
        const char *op = NULL;
        if (t->t == JT_OP) {
            static const char *cmp[] = {"==", "!=", "<", "<=", ">", ">="};
            for (size_t k = 0; k < 6; k++)
                if (is_op(t, cmp[k])) op = cmp[k];
            if (op) P->i++;
        } else if (is_name(t, "in")) {
            op = "in";
            P->i++;
        } else if (is_name(t, "not") && is_name(peek(P, 1), "in")) {
            op = "notin";
            P->i += 2;
        }
        if (!op) break;
        sv_push(P, &ops, op);
        nv_push(P, &rhs, math1(P));
    }
    if (!ops.n) return first;
    jnode *x = node(P, JN_CMP, line);
    x->a = first;
    x->kids = rhs.v;
    x->n = rhs.n;
    x->kwn = ops.v;
    return x;
}

static jnode *not_expr(parser *P) {
    if (is_name(cur(P), "not")) {
        jnode *x = node(P, JN_NOT, cur(P)->line);
        P->i++;
        enter(P);
        x->a = not_expr(P);
        leave(P);
        return x;
    }
    return compare(P);
}

static jnode *and_expr(parser *P) {
    jnode *x = not_expr(P);
    while (is_name(cur(P), "and")) {
        jnode *y = node(P, JN_AND, cur(P)->line);
        P->i++;
        y->a = x;
        y->b = not_expr(P);
        x = y;
    }
    return x;
}

static jnode *or_expr(parser *P) {
    jnode *x = and_expr(P);
    while (is_name(cur(P), "or")) {
        jnode *y = node(P, JN_OR, cur(P)->line);
        P->i++;
        y->a = x;
        y->b = and_expr(P);
        x = y;
    }
    return x;
}

static jnode *cond_expr(parser *P) {
    jnode *x = or_expr(P);
    while (is_name(cur(P), "if")) {
        jnode *c = node(P, JN_COND, cur(P)->line);
        P->i++;
        c->a = or_expr(P);
        if (is_name(cur(P), "else")) {
            P->i++;
            enter(P);
            c->c = cond_expr(P);
            leave(P);
        }
        c->b = x;
        x = c;
    }
    return x;
}

static jnode *expr(parser *P) {
    enter(P);
    jnode *x = cond_expr(P);
    leave(P);
    return x;
}

/* jinja2's parse_tuple: a, b, ... (a tuple when a comma appears). */
static jnode *tuple_expr(parser *P, bool with_cond, bool explicit_parens) {
    int line = cur(P)->line;
    nvec items = {0};
    bool comma = false;
    for (;;) {
        if (items.n) {
            if (!is_op(cur(P), ",")) break;
            P->i++;
            comma = true;
        }
        const jtok *t = cur(P);
        if (t->t == JT_VAR_END || t->t == JT_BLOCK_END || is_op(t, ")") || (items.n && is_name(t, "if")) ||
            (items.n && is_name(t, "recursive")))
            break;
        if (is_name(t, "in") && items.n) break;
        nv_push(P, &items, with_cond ? expr(P) : or_expr(P));
    }
    if (!comma && items.n == 1) return items.v[0];
    if (!items.n && !explicit_parens) unexpected(P, NULL);
    jnode *x = node(P, JN_TUPLE, line);
    x->kids = items.v;
    x->n = items.n;
    return x;
}

/* ---- statements ------------------------------------------------------------- */
static jnode *subparse(parser *P, const char *const *ends, const char **which);

static void block_end(parser *P) {
    if (cur(P)->t != JT_BLOCK_END) unexpected(P, "end of statement block");
    P->i++;
}

/* for/set targets: name, or "a, b", or "(a, b)". */
static void targets(parser *P, svec *out) {
    bool paren = false;
    if (is_op(cur(P), "(")) { paren = true; P->i++; }
    for (;;) {
        sv_push(P, out, expect_name(P));
        if (!is_op(cur(P), ",")) break;
        P->i++;
        if (paren && is_op(cur(P), ")")) break;
    }
    if (paren) expect_op(P, ")");
}

static void params(parser *P, jnode *m) {
    svec names = {0};
    nvec defs = {0};
    expect_op(P, "(");
    while (!is_op(cur(P), ")")) {
        if (names.n) expect_op(P, ",");
        if (is_op(cur(P), ")")) break;
        sv_push(P, &names, expect_name(P));
        if (is_op(cur(P), "=")) {
            P->i++;
            nv_push(P, &defs, expr(P));
        } else {
            if (defs.n && defs.v[defs.n - 1])
                jfail(P->c, INF_EFORMAT, cur(P)->line, "non-default argument follows default argument");
            nv_push(P, &defs, NULL);
        }
    }
    P->i++;
    m->kwn = names.v;
    m->kwv = defs.v;
    m->nkw = names.n;
}

static jnode *filter_chain(parser *P, jnode *in) {
    jnode *x = filter(P, in);
    while (is_op(cur(P), "|")) {
        P->i++;
        x = filter(P, x);
    }
    return x;
}

static jnode *statement(parser *P) {
    const jtok *t = cur(P);
    int line = t->line;
    if (t->t != JT_NAME) unexpected(P, NULL);
    enter(P);
    jnode *x;
    const char *which;
    if (is_name(t, "if")) {
        P->i++;
        x = node(P, JN_IF, line);
        jnode *n = x;
        n->a = tuple_expr(P, true, false);
        block_end(P);
        for (;;) {
            static const char *const e[] = {"elif", "else", "endif", NULL};
            n->b = subparse(P, e, &which);
            if (!strcmp(which, "elif")) {
                jnode *m = node(P, JN_IF, cur(P)->line);
                P->i++;
                m->a = tuple_expr(P, true, false);
                block_end(P);
                n->c = m;
                n = m;
                continue;
            }
            if (!strcmp(which, "else")) {
                P->i++;
                block_end(P);
                static const char *const e2[] = {"endif", NULL};
                n->c = subparse(P, e2, &which);
            }
            break;
        }
        P->i++;
    } else if (is_name(t, "for")) {
        P->i++;
        x = node(P, JN_FOR, line);
        svec tg = {0};
        targets(P, &tg);
        x->kwn = tg.v;
        x->nkw = tg.n;
        if (!is_name(cur(P), "in")) unexpected(P, "in");
        P->i++;
        x->a = tuple_expr(P, false, false);
        if (is_name(cur(P), "if")) {
            P->i++;
            x->d = expr(P);
        }
        if (is_name(cur(P), "recursive")) jfail(P->c, INF_EUNSUPPORTED, line, "recursive loops are not supported");
        block_end(P);
        static const char *const e[] = {"endfor", "else", NULL};
        P->loops++;
        x->b = subparse(P, e, &which);
        P->loops--;
        if (!strcmp(which, "else")) {
            P->i++;
            block_end(P);
            static const char *const e2[] = {"endfor", NULL};
            x->c = subparse(P, e2, &which);
        }
        P->i++;
    } else if (is_name(t, "set")) {
        P->i++;
        svec tg = {0};
        const char *attr_of = NULL;
        if (cur(P)->t == JT_NAME && is_op(peek(P, 1), ".")) {
            attr_of = expect_name(P);
            P->i++;
            sv_push(P, &tg, expect_name(P));
        } else
            targets(P, &tg);
        if (is_op(cur(P), "=")) {
            P->i++;
            x = node(P, JN_SET, line);
            x->a = tuple_expr(P, true, false);
        } else {
            if (attr_of || tg.n != 1) unexpected(P, "=");
            x = node(P, JN_SETBLOCK, line);
            if (is_op(cur(P), "|")) {
                P->i++;
                x->c = filter_chain(P, NULL);
            }
            block_end(P);
            static const char *const e[] = {"endset", NULL};
            x->b = subparse(P, e, &which);
            P->i++;
        }
        x->name = attr_of;
        x->kwn = tg.v;
        x->nkw = tg.n;
    } else if (is_name(t, "macro")) {
        P->i++;
        x = node(P, JN_MACRO, line);
        x->name = expect_name(P);
        params(P, x);
        block_end(P);
        static const char *const e[] = {"endmacro", NULL};
        int loops = P->loops;
        P->loops = 0;
        x->b = subparse(P, e, &which);
        P->loops = loops;
        P->i++;
        if (cur(P)->t == JT_NAME) P->i++; /* endmacro NAME */
    } else if (is_name(t, "call")) {
        P->i++;
        x = node(P, JN_CALLBLOCK, line);
        if (is_op(cur(P), "(")) params(P, x);
        x->a = expr(P);
        if (x->a->kind != JN_CALL) jfail(P->c, INF_EFORMAT, line, "expected call");
        block_end(P);
        static const char *const e[] = {"endcall", NULL};
        x->b = subparse(P, e, &which);
        P->i++;
    } else if (is_name(t, "filter")) {
        P->i++;
        x = node(P, JN_FILTERBLOCK, line);
        x->c = filter_chain(P, NULL);
        block_end(P);
        static const char *const e[] = {"endfilter", NULL};
        x->b = subparse(P, e, &which);
        P->i++;
    } else if (is_name(t, "break") || is_name(t, "continue")) {
        if (!P->loops) jfail(P->c, INF_EFORMAT, line, "'%s' outside loop", is_name(t, "break") ? "break" : "continue");
        x = node(P, is_name(t, "break") ? JN_BREAK : JN_CONTINUE, line);
        P->i++;
    } else {
        const char *nm = jstrndup(P->a, t->s, t->n);
        jfail(P->c, INF_EFORMAT, line, "Encountered unknown tag '%s'.", nm);
    }
    block_end(P);
    leave(P);
    return x;
}

/* Statements until a block whose first name is in ends (not consumed; *which
 * says which), or to the end of the template when ends is NULL. */
static jnode *subparse(parser *P, const char *const *ends, const char **which) {
    nvec body = {0};
    int line = cur(P)->line;
    for (;;) {
        const jtok *t = cur(P);
        if (t->t == JT_EOF) {
            if (ends) jfail(P->c, INF_EFORMAT, t->line, "Unexpected end of template. Jinja was looking for the following tags: '%s'.", ends[0]);
            break;
        }
        if (t->t == JT_DATA) {
            jnode *d = node(P, JN_DATA, t->line);
            d->lit = jv_str(P->a, t->s, t->n);
            nv_push(P, &body, d);
            P->i++;
        } else if (t->t == JT_VAR_BEGIN) {
            P->i++;
            jnode *o = node(P, JN_OUT, t->line);
            o->a = tuple_expr(P, true, false);
            if (cur(P)->t != JT_VAR_END) unexpected(P, "end of print statement");
            P->i++;
            nv_push(P, &body, o);
        } else if (t->t == JT_BLOCK_BEGIN) {
            P->i++;
            const jtok *nm = cur(P);
            if (ends && nm->t == JT_NAME)
                for (size_t k = 0; ends[k]; k++)
                    if (is_name(nm, ends[k])) {
                        *which = ends[k];
                        jnode *b = node(P, JN_BODY, line);
                        b->kids = body.v;
                        b->n = body.n;
                        return b;
                    }
            if (nm->t == JT_NAME && (is_name(nm, "endif") || is_name(nm, "endfor") || is_name(nm, "else") ||
                                     is_name(nm, "elif") || is_name(nm, "endmacro") || is_name(nm, "endset") ||
                                     is_name(nm, "endcall") || is_name(nm, "endfilter")))
                jfail(P->c, INF_EFORMAT, nm->line, "Encountered unknown tag '%s'.", jstrndup(P->a, nm->s, nm->n));
            nv_push(P, &body, statement(P));
        } else
            unexpected(P, NULL);
    }
    jnode *b = node(P, JN_BODY, line);
    b->kids = body.v;
    b->n = body.n;
    return b;
}

jnode *jparse(jctx *c, jarena *a, const jtok *toks, size_t n) {
    parser P = {.c = c, .a = a, .t = toks, .n = n, .i = 0};
    const char *which = NULL;
    return subparse(&P, NULL, &which);
}
