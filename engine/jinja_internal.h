/* jinja_internal.h - shared between the jinja_* files: arena, values, tokens,
 * AST, render state. Errors inside the lexer, parser and evaluator unwind by
 * longjmp to the entry point (jinja_template_create / jinja_render); every
 * allocation they make lives in an arena freed there, so unwinding leaks
 * nothing. */
#ifndef INF_JINJA_INTERNAL_H
#define INF_JINJA_INTERNAL_H

#include <setjmp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jinja.h"

/* ---- arena ---------------------------------------------------------------- */
typedef struct jarena_chunk jarena_chunk;
typedef struct jarena {
    jarena_chunk *head;
    size_t used, cap_total; /* bytes handed out / bound */
    struct jctx *ctx;       /* where to report running out */
} jarena;

/* Error/unwind context shared by lexer, parser and evaluator. */
typedef struct jctx {
    jmp_buf jb;
    inf_error *err;
    int code;
    jarena *arena;
} jctx;

_Noreturn void jfail(jctx *c, int code, int line, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void *jalloc(jarena *a, size_t n);
void jarena_free(jarena *a);
char *jstrndup(jarena *a, const char *s, size_t n);

/* ---- values --------------------------------------------------------------- */
typedef enum jv_type {
    JV_UNDEF, JV_NONE, JV_BOOL, JV_INT, JV_FLOAT, JV_STR, JV_LIST, JV_DICT, JV_NS,
    JV_MACRO, JV_BUILTIN, JV_METHOD, JV_LOOP
} jv_type;

/* JVF_GEN: a list that Python would hold as a generator (what map, select,
 * items... return): always true, no len(), not JSON serializable. */
enum { JVF_MARKUP = 1, JVF_TUPLE = 2, JVF_GEN = 4 };

typedef struct jstr { size_t len; char s[]; } jstr;
typedef struct jlist jlist;
typedef struct jdict jdict;
typedef struct jmacro jmacro;
typedef struct jmethod jmethod;
typedef struct jloop jloop;

typedef struct jv {
    uint8_t t, flags;
    union {
        bool b;
        int64_t i;
        double f;
        jstr *s;
        jlist *l;
        jdict *d;
        jmacro *m;
        int bi; /* JV_BUILTIN: index of the global function */
        jmethod *me;
        jloop *lp;
        const char *undef; /* JV_UNDEF: the message an error would carry, or NULL */
    } u;
} jv;

struct jlist { size_t n, cap; jv *v; };
struct jdict { size_t n, cap; jv *k, *v; };
struct jmethod { jv self; const char *name; };
struct jloop { jlist *items; size_t i; };

/* jinja_value.c */
jv jv_undef(const char *msg);
jv jv_none(void);
jv jv_bool(bool b);
jv jv_int(int64_t i);
jv jv_float(double f);
jv jv_str(jarena *a, const char *s, size_t n);
jv jv_cstr(jarena *a, const char *s);
jv jv_list(jarena *a, size_t cap);
jv jv_dict(jarena *a, size_t cap);
void jlist_push(jarena *a, jlist *l, jv v);
/* Sets d[k] = v keeping the first insertion position of k (Python dicts). */
void jdict_set(jarena *a, jdict *d, jv k, jv v);
/* d[k] or NULL. */
jv *jdict_get(jdict *d, jv k);
jv *jdict_gets(jdict *d, const char *k);

bool jv_truthy(jv v);
bool jv_is_num(jv v); /* int, float or bool */
double jv_num(jv v);
bool jv_eq(jctx *c, jv a, jv b, int depth);
/* Python ordering; fails (TypeError text) when the types do not order. */
int jv_cmp(jctx *c, int line, jv a, jv b, int depth);
const char *jv_type_name(jv v); /* Python's type name: "str", "int", ... */

/* Growable output buffer in the arena, bounded by max bytes. */
typedef struct jbuf { char *p; size_t n, cap, max; jarena *a; int line; } jbuf;
void jbuf_init(jbuf *b, jarena *a, size_t max);
void jbuf_put(jbuf *b, const char *s, size_t n);
void jbuf_putc(jbuf *b, char ch);
jv jbuf_take(jbuf *b);

/* str(v) and repr(v) as Python writes them, appended to b. */
void jv_write_str(jbuf *b, jv v, int depth);
void jv_write_repr(jbuf *b, jv v, int depth);
void jv_write_float(jbuf *b, double f);
jv jv_to_str(jarena *a, jv v, size_t max);
/* Markup escaping (markupsafe): & < > ' " */
void jv_write_escaped(jbuf *b, const char *s, size_t n);

/* UTF-8 helpers: code point count, byte offset of the k-th code point. */
size_t ju8_len(const char *s, size_t n);
size_t ju8_offset(const char *s, size_t n, size_t k);
int ju8_decode(const char *s, size_t n, size_t *adv); /* code point, or the byte for bad input */
bool ju_isspace(int cp); /* Python str.isspace() */
size_t ju_space_at(const char *s, size_t n); /* bytes of one whitespace char at s, or 0 */
size_t ju_space_before(const char *s, size_t n); /* bytes of one whitespace char ending at s+n */

/* jinja_json.c */
/* JSON text to a value; on error fails with INF_EFORMAT through c. */
jv jjson_parse(jctx *c, jarena *a, const char *what, const char *s, size_t n);
/* Python json.dumps(v, ensure_ascii=False, indent, separators, sort_keys). indent
 * NULL = none; item_sep/key_sep NULL = the defaults for the indent. */
void jjson_dump(jctx *c, int line, jbuf *b, jv v, const char *indent, const char *item_sep,
                const char *key_sep, bool sort_keys, int depth);

/* ---- tokens and AST ------------------------------------------------------- */
typedef enum jtok_type {
    JT_EOF, JT_DATA, JT_VAR_BEGIN, JT_VAR_END, JT_BLOCK_BEGIN, JT_BLOCK_END,
    JT_NAME, JT_STRING, JT_INT, JT_FLOAT, JT_OP
} jtok_type;

typedef struct jtok {
    uint8_t t;
    int line;
    const char *s; /* JT_NAME/JT_OP/JT_DATA/JT_STRING text (decoded for strings) */
    size_t n;
    int64_t i;
    double f;
} jtok;

/* jinja_lex.c: tokens of the whole template (normalized newlines, HF's
 * trim_blocks / lstrip_blocks). */
void jlex(jctx *c, jarena *a, const char *src, size_t len, jtok **out, size_t *n);

typedef enum jnode_kind {
    /* expressions */
    JN_LIT, JN_NAME, JN_LIST, JN_TUPLE, JN_DICT, JN_ATTR, JN_ITEM, JN_SLICE, JN_CALL,
    JN_FILTER, JN_TEST, JN_NEG, JN_POS, JN_NOT, JN_AND, JN_OR, JN_BIN, JN_CMP, JN_COND,
    /* statements */
    JN_BODY, JN_DATA, JN_OUT, JN_IF, JN_FOR, JN_SET, JN_SETBLOCK, JN_MACRO, JN_CALLBLOCK,
    JN_FILTERBLOCK, JN_BREAK, JN_CONTINUE
} jnode_kind;

typedef struct jnode jnode;
struct jnode {
    uint8_t kind;
    uint8_t neg;  /* JN_TEST: "is not" */
    int line;
    const char *name; /* JN_NAME, JN_ATTR, JN_FILTER, JN_TEST, JN_MACRO, JN_SET target */
    const char *op;   /* JN_BIN operator; JN_CMP: ops[] below */
    jv lit;           /* JN_LIT, JN_DATA */
    jnode *a, *b, *c, *d;
    jnode **kids;      /* list items, dict k/v pairs, call positional args, body */
    size_t n;
    const char **kwn;  /* call keyword names / macro params / for targets / cmp ops */
    jnode **kwv;       /* call keyword values / macro defaults (NULL = none) */
    size_t nkw;
};

/* jinja_parse.c */
jnode *jparse(jctx *c, jarena *a, const jtok *toks, size_t n);

/* ---- render state --------------------------------------------------------- */
typedef struct jscope jscope;
struct jscope {
    jscope *parent;
    size_t n, cap;
    const char **names;
    jv *vals;
};

struct jmacro {
    const jnode *def;    /* JN_MACRO (or the caller body for a call block) */
    jscope *closure;
    jv caller;           /* for a call block's macro: the caller macro */
};

typedef struct jrender {
    jctx *c;
    jarena *a;
    jscope *root;
    jinja_limits lim;
    uint64_t steps;
    int depth;      /* macro call nesting */
    int cdepth;     /* C recursion through exec/eval */
    time_t now;
    int line;       /* line of the node being evaluated */
    int ctrl;       /* pending break (1) / continue (2) */
} jrender;

/* jinja_eval.c */
jv jeval(jrender *r, jscope *s, const jnode *e);
void jexec(jrender *r, jscope *s, const jnode *st, jbuf *out);
jv jcall(jrender *r, int line, jv fn, jv *args, size_t nargs, const char **kwn, jv *kwv, size_t nkw);
jv jgetattr(jrender *r, int line, jv obj, const char *name);
jv jgetitem(jrender *r, int line, jv obj, jv key);
_Noreturn void jundef_fail(jctx *c, int line, jv u);
/* Python iteration of v as a list (dict: keys, str: characters). */
jlist *jiter(jrender *r, int line, jv v);
jv jbinop(jrender *r, int line, const char *op, jv a, jv b);
jv jscope_get(jscope *s, const char *name, bool *found);
void jscope_set(jrender *r, jscope *s, const char *name, jv v);
jscope *jscope_new(jrender *r, jscope *parent);
void jstep(jrender *r, int line);

/* jinja_filters.c */
bool jfilter_exists(const char *name);
bool jtest_exists(const char *name);
jv jfilter(jrender *r, int line, const char *name, jv in, jv *args, size_t nargs, const char **kwn,
           jv *kwv, size_t nkw);
bool jtest(jrender *r, int line, const char *name, jv in, jv *args, size_t nargs);
/* Attribute names that Python's str/dict/list expose as methods. */
bool jmethod_exists(jv self, const char *name);
jv jmethod_call(jrender *r, int line, jmethod *m, jv *args, size_t nargs, const char **kwn, jv *kwv,
                size_t nkw);
/* jinja_ops.c: Python str methods shared with the filters. which: 1 left, 2
 * right, 3 both; chars NULL = whitespace. mode: 'u' 'l' 't' (title) 'c'. */
jv jstr_strip(jrender *r, jv s, const char *chars, size_t nchars, int which);
jv jstr_case(jrender *r, jv s, char mode);
jv jstr_replace(jrender *r, jv s, jv old, jv new_, int64_t count);
/* Global functions: index by name or -1; call. */
int jbuiltin_find(const char *name);
const char *jbuiltin_name(int i);
jv jbuiltin_call(jrender *r, int line, int bi, jv *args, size_t nargs, const char **kwn, jv *kwv,
                 size_t nkw);

#endif
