/* jsonschema.c - JSON Schema -> GBNF (jsonschema.h).
 *
 * Every schema node becomes one rule s<N>; shared building blocks (strings,
 * numbers, any value, whitespace) are j-* rules written once at the end.
 * Objects list their properties in `properties` order; the optional ones are
 * handled by two rule chains (A_i: nothing written yet, B_i: something
 * written, so the next property needs a comma). Extra properties
 * (additionalProperties true or a schema) get keys that provably differ from
 * every declared name (a trie complement), so a parser never sees a declared
 * key twice. Integer bounds become digit-range expressions.
 */
#include "jsonschema.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gtext.h"
#include "regex.h"

#define JS_MAX_DEPTH 64
#define JS_INT_DIGITS 16 /* unbounded integers: at most this many digits */

typedef struct js_ref {
    const json_value *v;
    int id;
} js_ref;

typedef struct js {
    const json_value *root;
    gtext out;
    inf_error *err;
    int rc;
    int next_id;
    js_ref *refs;
    size_t n_refs, cap_refs;
    int depth;
} js;

static const char *ANY_RULES =
    "j-ws ::= | \" \"\n"
    "j-char ::= [^\"\\\\\\x00-\\x1F] | \"\\\\\" ([\"\\\\/bfnrt] | \"u\" ([0-9a-cA-CeEfF] [0-9a-fA-F]{3} | "
    "[dD] [0-7] [0-9a-fA-F]{2}))\n"
    "j-string ::= \"\\\"\" j-char* \"\\\"\"\n"
    "j-int ::= \"-\"? (\"0\" | [1-9] [0-9]{0,15})\n"
    "j-number ::= j-int (\".\" [0-9]{1,16})? ([eE] [-+]? [0-9]{1,2})?\n"
    "j-value ::= j-object | j-array | j-string | j-number | \"true\" | \"false\" | \"null\"\n"
    "j-object ::= \"{\" j-ws (j-string j-ws \":\" j-ws j-value j-ws (\",\" j-ws j-string j-ws \":\" j-ws j-value j-ws)*)? \"}\"\n"
    "j-array ::= \"[\" j-ws (j-value j-ws (\",\" j-ws j-value j-ws)*)? \"]\"\n"
    "j-keychar ::= [^\"\\\\\\x00-\\x1F]\n"
    "j-digit ::= [0-9]\n"
    "j-d2 ::= [0-9] [0-9]\n"
    "j-date ::= [0-9]{4} \"-\" (\"0\" [13578] | \"1\" [02]) \"-\" (\"0\" [1-9] | [12] [0-9] | \"3\" [01]) | "
    "[0-9]{4} \"-\" (\"0\" [469] | \"11\") \"-\" (\"0\" [1-9] | [12] [0-9] | \"30\") | "
    "[0-9]{4} \"-02-\" (\"0\" [1-9] | \"1\" [0-9] | \"2\" [0-8])\n"
    "j-time ::= ([01] [0-9] | \"2\" [0-3]) \":\" [0-5] [0-9] \":\" [0-5] [0-9] (\".\" [0-9]{1,6})? "
    "(\"Z\" | [+-] ([01] [0-9] | \"2\" [0-3]) \":\" [0-5] [0-9])\n"
    "j-hex ::= [0-9a-f]\n"
    "j-uuid ::= j-hex{8} \"-\" j-hex{4} \"-\" j-hex{4} \"-\" j-hex{4} \"-\" j-hex{12}\n";

const char *jsonschema_any_object_gbnf(void) {
    static char buf[4096];
    static int done;
    /* Built once; the text is constant (a race writes the same bytes). */
    if (!done) {
        snprintf(buf, sizeof buf, "root ::= j-object\n%s", ANY_RULES);
        done = 1;
    }
    return buf;
}

static int fail(js *j, int code, const char *path, const char *fmt, const char *arg) {
    if (j->rc) return j->rc;
    char what[256];
    snprintf(what, sizeof what, fmt, arg ? arg : "");
    j->rc = inf_error_set(j->err, code, "json schema: at %s: %s", *path ? path : "/", what);
    return j->rc;
}

/* ---- JSON text of a value (enum / const literals) ---- */

static void json_text(gtext *t, const json_value *v) {
    switch (v->type) {
    case JSON_NULL: gtext_puts(t, "null"); break;
    case JSON_BOOL: gtext_puts(t, v->boolean ? "true" : "false"); break;
    case JSON_NUMBER:
        if (v->number == floor(v->number) && fabs(v->number) < 1e15) gtext_printf(t, "%.0f", v->number);
        else gtext_printf(t, "%.17g", v->number);
        break;
    case JSON_STRING:
        gtext_puts(t, "\"");
        for (size_t i = 0; i < v->len; i++) {
            unsigned char c = (unsigned char)v->str[i];
            if (c == '"' || c == '\\') gtext_printf(t, "\\%c", c);
            else if (c < 0x20) gtext_printf(t, "\\u%04x", c);
            else gtext_put(t, (const char *)&v->str[i], 1);
        }
        gtext_puts(t, "\"");
        break;
    case JSON_ARRAY:
        gtext_puts(t, "[");
        for (size_t i = 0; i < v->n; i++) {
            if (i) gtext_puts(t, ",");
            json_text(t, &v->items[i]);
        }
        gtext_puts(t, "]");
        break;
    case JSON_OBJECT:
        gtext_puts(t, "{");
        for (size_t i = 0; i < v->n; i++) {
            if (i) gtext_puts(t, ",");
            json_value k = {0};
            k.type = JSON_STRING;
            k.str = v->keys[i];
            k.len = strlen(v->keys[i]);
            json_text(t, &k);
            gtext_puts(t, ":");
            json_text(t, &v->items[i]);
        }
        gtext_puts(t, "}");
        break;
    }
}

static void literal_of(js *j, const json_value *v) {
    gtext t;
    gtext_init(&t);
    json_text(&t, v);
    if (t.s && !gtext_valid_utf8(t.s, t.len)) {
        gtext_free(&t);
        fail(j, INF_EINVAL, "(enum/const)", "a string is not valid UTF-8%s", NULL);
        return;
    }
    gtext_literal(&j->out, t.s ? t.s : "", t.len);
    if (t.failed) j->out.failed = 1;
    gtext_free(&t);
}

/* ---- integer ranges ---- */

/* Same-length decimal strings lo <= hi: an expression for [lo, hi]. */
static void digit_range(gtext *t, const char *lo, const char *hi, size_t n) {
    if (!n) {
        gtext_puts(t, "\"\"");
        return;
    }
    if (lo[0] == hi[0]) {
        gtext_printf(t, "\"%c\" ", lo[0]);
        digit_range(t, lo + 1, hi + 1, n - 1);
        return;
    }
    int lo_zero = 1, hi_nine = 1;
    for (size_t i = 1; i < n; i++) {
        lo_zero &= lo[i] == '0';
        hi_nine &= hi[i] == '9';
    }
    char nines[24], zeros[24];
    memset(nines, '9', n);
    memset(zeros, '0', n);
    gtext_puts(t, "(");
    int first = 1;
    char mid_lo = lo_zero ? lo[0] : (char)(lo[0] + 1), mid_hi = hi_nine ? hi[0] : (char)(hi[0] - 1);
    if (!lo_zero) {
        gtext_printf(t, "\"%c\" (", lo[0]);
        digit_range(t, lo + 1, nines, n - 1);
        gtext_puts(t, ")");
        first = 0;
    }
    if (mid_lo <= mid_hi) {
        gtext_printf(t, "%s[%c-%c]", first ? "" : " | ", mid_lo, mid_hi);
        if (n > 1) gtext_printf(t, " [0-9]{%zu}", n - 1);
        first = 0;
    }
    if (!hi_nine) {
        gtext_printf(t, "%s\"%c\" (", first ? "" : " | ", hi[0]);
        digit_range(t, zeros, hi + 1, n - 1);
        gtext_puts(t, ")");
    }
    gtext_puts(t, ")");
}

/* Non-negative [a, b] without leading zeros. */
static void nonneg_range(gtext *t, uint64_t a, uint64_t b) {
    char sa[24], sb[24];
    int la = snprintf(sa, sizeof sa, "%llu", (unsigned long long)a);
    int lb = snprintf(sb, sizeof sb, "%llu", (unsigned long long)b);
    gtext_puts(t, "(");
    for (int L = la; L <= lb; L++) {
        char lo[24], hi[24];
        if (L == la) memcpy(lo, sa, (size_t)L);
        else {
            memset(lo, '0', (size_t)L);
            lo[0] = '1';
        }
        if (L == lb) memcpy(hi, sb, (size_t)L);
        else memset(hi, '9', (size_t)L);
        if (L > la) gtext_puts(t, " | ");
        digit_range(t, lo, hi, (size_t)L);
    }
    gtext_puts(t, ")");
}

static void int_range(gtext *t, int has_lo, int64_t lo, int has_hi, int64_t hi) {
    const int64_t cap = 9999999999999999LL; /* 16 digits */
    if (!has_lo) lo = hi < -cap ? hi - cap : -cap;
    if (!has_hi) hi = lo > cap ? lo + cap : cap;
    int first = 1;
    gtext_puts(t, "(");
    if (lo < 0) {
        uint64_t x = hi < 0 ? (uint64_t)(-(hi + 1)) + 1 : 1, y = (uint64_t)(-(lo + 1)) + 1;
        gtext_puts(t, "\"-\" ");
        nonneg_range(t, x, y);
        first = 0;
    }
    if (hi >= 0) {
        if (!first) gtext_puts(t, " | ");
        nonneg_range(t, lo > 0 ? (uint64_t)lo : 0, (uint64_t)hi);
    }
    gtext_puts(t, ")");
}

/* ---- keywords ---- */

static const char *const KNOWN[] = {
    "type", "properties", "required", "additionalProperties", "enum", "const", "anyOf", "oneOf", "items",
    "minItems", "maxItems", "minLength", "maxLength", "minimum", "maximum", "exclusiveMinimum",
    "exclusiveMaximum", "pattern", "$ref", "$defs", "definitions", "format",
    /* annotations */
    "title", "description", "$schema", "$id", "$comment", "default", "examples", "deprecated", "readOnly",
    "writeOnly", NULL};

static int check_keywords(js *j, const json_value *s, const char *path) {
    for (size_t i = 0; i < s->n; i++) {
        int ok = 0;
        for (const char *const *k = KNOWN; *k && !ok; k++) ok = !strcmp(*k, s->keys[i]);
        if (!ok) return fail(j, INF_EUNSUPPORTED, path, "keyword '%.64s' is not supported", s->keys[i]);
    }
    return 0;
}

static int get_count(js *j, const json_value *s, const char *key, const char *path, long *out) {
    const json_value *v = json_get(s, key);
    if (!v) return 0;
    if (v->type != JSON_NUMBER || v->number < 0 || v->number != floor(v->number) || v->number > 100000)
        return fail(j, INF_EINVAL, path, "'%s' must be a non-negative integer (at most 100000)", key);
    *out = (long)v->number;
    return 1;
}

static int gen(js *j, const json_value *s, const char *path);

static void child_path(char *buf, size_t cap, const char *path, const char *a, const char *b) {
    snprintf(buf, cap, "%s/%s%s%s", path, a, b ? "/" : "", b ? b : "");
}

/* ---- strings ---- */

static void gen_string(js *j, const json_value *s, const char *path, int id) {
    long mn = 0, mx = -1;
    int has_mn = get_count(j, s, "minLength", path, &mn), has_mx = get_count(j, s, "maxLength", path, &mx);
    const json_value *pat = json_get(s, "pattern"), *fmt = json_get(s, "format");
    if (j->rc) return;
    if (has_mn && has_mx && mx < mn) {
        fail(j, INF_EINVAL, path, "maxLength is below minLength%s", NULL);
        return;
    }
    if (fmt) {
        if (fmt->type != JSON_STRING) {
            fail(j, INF_EINVAL, path, "'format' must be a string%s", NULL);
            return;
        }
        if (pat || has_mn || has_mx) {
            fail(j, INF_EUNSUPPORTED, path, "'format' together with pattern, minLength or maxLength is not supported%s",
                 NULL);
            return;
        }
        const char *rule = !strcmp(fmt->str, "date") ? "j-date" : !strcmp(fmt->str, "time") ? "j-time"
                           : !strcmp(fmt->str, "uuid") ? "j-uuid" : !strcmp(fmt->str, "date-time") ? "dt" : NULL;
        if (!rule) {
            fail(j, INF_EUNSUPPORTED, path,
                 "format '%.64s' is not supported (supported: date, time, date-time, uuid)", fmt->str);
            return;
        }
        if (!strcmp(rule, "dt")) gtext_printf(&j->out, "s%d ::= \"\\\"\" j-date \"T\" j-time \"\\\"\"\n", id);
        else gtext_printf(&j->out, "s%d ::= \"\\\"\" %s \"\\\"\"\n", id, rule);
        return;
    }
    if (pat) {
        if (pat->type != JSON_STRING) {
            fail(j, INF_EINVAL, path, "'pattern' must be a string%s", NULL);
            return;
        }
        if (has_mn || has_mx) {
            fail(j, INF_EUNSUPPORTED, path, "'pattern' together with minLength or maxLength is not supported%s", NULL);
            return;
        }
        char name[32];
        snprintf(name, sizeof name, "s%d-pat", id);
        regex_gbnf_opts o = {name, 1, 1};
        inf_error rerr = {0};
        int rc = regex_to_gbnf(pat->str, pat->len, &o, &j->out, &rerr);
        if (rc) {
            fail(j, rc, path, "pattern: %.200s", rerr.msg);
            return;
        }
        gtext_printf(&j->out, "s%d ::= \"\\\"\" %s \"\\\"\"\n", id, name);
        return;
    }
    if (!has_mn && !has_mx) gtext_printf(&j->out, "s%d ::= j-string\n", id);
    else if (!has_mx) gtext_printf(&j->out, "s%d ::= \"\\\"\" j-char{%ld,} \"\\\"\"\n", id, mn);
    else gtext_printf(&j->out, "s%d ::= \"\\\"\" j-char{%ld,%ld} \"\\\"\"\n", id, mn, mx);
}

/* ---- integers and numbers ---- */

static int bound(js *j, const json_value *s, const char *key, const char *path, double *out) {
    const json_value *v = json_get(s, key);
    if (!v) return 0;
    if (v->type != JSON_NUMBER || !isfinite(v->number) || fabs(v->number) > 9e15)
        return fail(j, INF_EINVAL, path, "'%s' must be a number of magnitude at most 9e15", key) ? 0 : 0;
    *out = v->number;
    return 1;
}

static void gen_integer(js *j, const json_value *s, const char *path, int id) {
    double a = 0, b = 0, xa = 0, xb = 0;
    int ha = bound(j, s, "minimum", path, &a), hb = bound(j, s, "maximum", path, &b);
    int hxa = bound(j, s, "exclusiveMinimum", path, &xa), hxb = bound(j, s, "exclusiveMaximum", path, &xb);
    if (j->rc) return;
    int has_lo = ha || hxa, has_hi = hb || hxb;
    int64_t lo = INT64_MIN, hi = INT64_MAX;
    if (ha) lo = (int64_t)ceil(a);
    if (hxa && (int64_t)floor(xa) + 1 > lo) lo = (int64_t)floor(xa) + 1;
    if (hb) hi = (int64_t)floor(b);
    if (hxb && (int64_t)ceil(xb) - 1 < hi) hi = (int64_t)ceil(xb) - 1;
    if (!has_lo && !has_hi) {
        gtext_printf(&j->out, "s%d ::= j-int\n", id);
        return;
    }
    if (has_lo && has_hi && hi < lo) {
        fail(j, INF_EINVAL, path, "no integer lies between the bounds%s", NULL);
        return;
    }
    gtext_printf(&j->out, "s%d ::= ", id);
    int_range(&j->out, has_lo, lo, has_hi, hi);
    gtext_puts(&j->out, "\n");
}

/* ---- arrays ---- */

static void gen_array(js *j, const json_value *s, const char *path, int id) {
    long mn = 0, mx = -1;
    get_count(j, s, "minItems", path, &mn);
    int has_mx = get_count(j, s, "maxItems", path, &mx);
    const json_value *items = json_get(s, "items");
    if (j->rc) return;
    if (has_mx && mx < mn) {
        fail(j, INF_EINVAL, path, "maxItems is below minItems%s", NULL);
        return;
    }
    char item[32] = "j-value";
    if (items) {
        if (items->type == JSON_ARRAY) {
            fail(j, INF_EUNSUPPORTED, path, "'items' as an array (tuple validation) is not supported%s", NULL);
            return;
        }
        char cp[512];
        child_path(cp, sizeof cp, path, "items", NULL);
        int cid = gen(j, items, cp);
        if (cid < 0) return;
        snprintf(item, sizeof item, "s%d", cid);
    }
    if (has_mx && mx == 0) {
        gtext_printf(&j->out, "s%d ::= \"[\" j-ws \"]\"\n", id);
        return;
    }
    long rest_mn = mn > 0 ? mn - 1 : 0;
    gtext_printf(&j->out, "s%d ::= \"[\" j-ws %s%s j-ws (\",\" j-ws %s j-ws)", id, mn == 0 ? "(" : "", item, item);
    if (has_mx) gtext_printf(&j->out, "{%ld,%ld}", rest_mn, mx - 1);
    else if (rest_mn) gtext_printf(&j->out, "{%ld,}", rest_mn);
    else gtext_puts(&j->out, "*");
    gtext_printf(&j->out, "%s \"]\"\n", mn == 0 ? ")?" : "");
}

/* ---- objects ---- */

typedef struct key_trie_job {
    const char **keys;
    size_t n, depth;
    int id;
} key_trie_job;

static int cmp_cstr(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* Rule x<id>: the rest of a key (after its first depth bytes, shared by
 * keys[0..n)) that differs from every one of them, then the closing quote. */
static void key_complement(js *j, const char **keys, size_t n, size_t depth, int id) {
    gtext *t = &j->out;
    gtext_printf(t, "x%d ::= ", id);
    int terminal = 0;
    size_t i = 0;
    if (keys[0][depth] == 0) {
        terminal = 1;
        i = 1;
    }
    int first = 1;
    if (!terminal) {
        gtext_puts(t, "\"\\\"\"");
        first = 0;
    }
    /* children: distinct next bytes that are plain key characters */
    gtext excl;
    gtext_init(&excl);
    typedef struct { size_t lo, hi; int id; } kid;
    kid kids[256];
    int n_kids = 0, nonascii = 0;
    while (i < n) {
        unsigned char c = (unsigned char)keys[i][depth];
        size_t k = i + 1;
        while (k < n && (unsigned char)keys[k][depth] == c) k++;
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            int cid = j->next_id++;
            gtext_printf(t, "%s\"%s%c\" x%d", first ? "" : " | ", c == '"' ? "\\" : "", c, cid);
            gtext_cp(&excl, c);
            kids[n_kids++] = (kid){i, k, cid};
            first = 0;
        } else if (c >= 0x80) {
            nonascii = 1;
        }
        i = k;
    }
    /* A non-ASCII next character is not followed down the trie, so the
     * "already differs" class must not offer any non-ASCII character. */
    if (nonascii) gtext_puts(&excl, "\\x80-\\U0010FFFF");
    /* any other first character: the key already differs */
    gtext_printf(t, "%s[^\"\\\\\\x00-\\x1F%s] j-keychar* \"\\\"\"\n", first ? "" : " | ", excl.s ? excl.s : "");
    gtext_free(&excl);
    for (int k = 0; k < n_kids; k++) key_complement(j, keys + kids[k].lo, kids[k].hi - kids[k].lo, depth + 1, kids[k].id);
}

static void gen_object(js *j, const json_value *s, const char *path, int id) {
    const json_value *props = json_get(s, "properties"), *req = json_get(s, "required"),
                     *addl = json_get(s, "additionalProperties");
    if (props && props->type != JSON_OBJECT) {
        fail(j, INF_EINVAL, path, "'properties' must be an object%s", NULL);
        return;
    }
    if (req && req->type != JSON_ARRAY) {
        fail(j, INF_EINVAL, path, "'required' must be an array%s", NULL);
        return;
    }
    size_t np = props ? props->n : 0, nr = req ? req->n : 0;
    for (size_t r = 0; r < nr; r++) {
        if (req->items[r].type != JSON_STRING) {
            fail(j, INF_EINVAL, path, "'required' must list strings%s", NULL);
            return;
        }
        if (!props || !json_get(props, req->items[r].str)) {
            fail(j, INF_EUNSUPPORTED, path, "required property '%.64s' is not in 'properties'", req->items[r].str);
            return;
        }
    }
    /* additionalProperties: absent or false -> none; true -> any value; a schema -> its rule */
    char extra[32] = "";
    if (addl && addl->type == JSON_BOOL) {
        if (addl->boolean) snprintf(extra, sizeof extra, "j-value");
    } else if (addl) {
        char cp[512];
        child_path(cp, sizeof cp, path, "additionalProperties", NULL);
        int cid = gen(j, addl, cp);
        if (cid < 0) return;
        snprintf(extra, sizeof extra, "s%d", cid);
    }
    int *vid = calloc(np + 1, sizeof *vid);
    if (!vid) {
        fail(j, INF_ENOMEM, path, "out of memory%s", NULL);
        return;
    }
    for (size_t i = 0; i < np && !j->rc; i++)
        if (!gtext_valid_utf8(props->keys[i], strlen(props->keys[i])))
            fail(j, INF_EINVAL, path, "a property name is not valid UTF-8%s", NULL);
    for (size_t i = 0; i < np && !j->rc; i++) {
        char cp[512];
        child_path(cp, sizeof cp, path, "properties", props->keys[i]);
        vid[i] = gen(j, &props->items[i], cp);
    }
    if (j->rc) {
        free(vid);
        return;
    }
    int base = j->next_id;
    j->next_id += 2 * (int)np + 4;
    /* kv_i: "\"key\"" ws ":" ws value ws  (inline); A_i = a<base+i>, B_i = b<base+i> */
    gtext *t = &j->out;
    gtext_printf(t, "s%d ::= \"{\" j-ws o%dA0 \"}\"\n", id, base);
    for (size_t i = 0; i <= np; i++) {
        if (i == np) {
            if (extra[0]) {
                int xid = j->next_id++;
                gtext_printf(t, "o%dA%zu ::= (o%dX (\",\" j-ws o%dX)*)?\n", base, i, base, base);
                gtext_printf(t, "o%dB%zu ::= (\",\" j-ws o%dX)*\n", base, i, base);
                gtext_printf(t, "o%dX ::= \"\\\"\" x%d j-ws \":\" j-ws %s j-ws\n", base, xid, extra);
                if (np) {
                    const char **keys = malloc(np * sizeof *keys);
                    if (!keys) {
                        fail(j, INF_ENOMEM, path, "out of memory%s", NULL);
                        break;
                    }
                    for (size_t k = 0; k < np; k++) keys[k] = props->keys[k];
                    qsort(keys, np, sizeof *keys, cmp_cstr);
                    key_complement(j, keys, np, 0, xid);
                    free(keys);
                } else {
                    gtext_printf(t, "x%d ::= j-keychar* \"\\\"\"\n", xid);
                }
            } else {
                gtext_printf(t, "o%dA%zu ::= \"\"\no%dB%zu ::= \"\"\n", base, i, base, i);
            }
            break;
        }
        int required = 0;
        for (size_t r = 0; r < nr; r++) required |= !strcmp(req->items[r].str, props->keys[i]);
        json_value kv = {0};
        kv.type = JSON_STRING;
        kv.str = props->keys[i];
        kv.len = strlen(props->keys[i]);
        gtext key;
        gtext_init(&key);
        json_text(&key, &kv);
        gtext lit;
        gtext_init(&lit);
        gtext_literal(&lit, key.s ? key.s : "", key.len);
        gtext_printf(t, "o%dA%zu ::= %s j-ws \":\" j-ws s%d j-ws o%dB%zu", base, i, lit.s ? lit.s : "\"\"", vid[i], base,
                     i + 1);
        if (!required) gtext_printf(t, " | o%dA%zu", base, i + 1);
        gtext_printf(t, "\no%dB%zu ::= \",\" j-ws %s j-ws \":\" j-ws s%d j-ws o%dB%zu", base, i, lit.s ? lit.s : "\"\"",
                     vid[i], base, i + 1);
        if (!required) gtext_printf(t, " | o%dB%zu", base, i + 1);
        gtext_puts(t, "\n");
        if (key.failed || lit.failed) t->failed = 1;
        gtext_free(&key);
        gtext_free(&lit);
    }
    free(vid);
}

/* ---- dispatch ---- */

static const json_value *resolve_ref(js *j, const char *ref, const char *path) {
    if (!strcmp(ref, "#")) return j->root;
    const char *pre[] = {"#/$defs/", "#/definitions/"};
    for (int k = 0; k < 2; k++) {
        size_t l = strlen(pre[k]);
        if (strncmp(ref, pre[k], l)) continue;
        const json_value *defs = json_get(j->root, k ? "definitions" : "$defs");
        const json_value *d = defs && defs->type == JSON_OBJECT ? json_get(defs, ref + l) : NULL;
        if (!d) fail(j, INF_EINVAL, path, "$ref '%.100s' does not name a definition of this schema", ref);
        return d;
    }
    fail(j, INF_EUNSUPPORTED, path,
         "$ref '%.100s' is not supported (only \"#\", \"#/$defs/NAME\" and \"#/definitions/NAME\")", ref);
    return NULL;
}

static int only_annotations_besides(const json_value *s, const char *kw) {
    static const char *const ok[] = {"title", "description", "$schema", "$id", "$comment", "default", "examples",
                                     "deprecated", "readOnly", "writeOnly", "$defs", "definitions", NULL};
    for (size_t i = 0; i < s->n; i++) {
        if (!strcmp(s->keys[i], kw)) continue;
        int fine = 0;
        for (const char *const *k = ok; *k && !fine; k++) fine = !strcmp(*k, s->keys[i]);
        if (!fine) return 0;
    }
    return 1;
}

static void gen_typed(js *j, const json_value *s, const char *type, const char *path, int id) {
    if (!strcmp(type, "string")) gen_string(j, s, path, id);
    else if (!strcmp(type, "integer")) gen_integer(j, s, path, id);
    else if (!strcmp(type, "number")) {
        if (json_get(s, "minimum") || json_get(s, "maximum") || json_get(s, "exclusiveMinimum") ||
            json_get(s, "exclusiveMaximum"))
            fail(j, INF_EUNSUPPORTED, path, "minimum / maximum are supported for integers only, not for type number%s",
                 NULL);
        else gtext_printf(&j->out, "s%d ::= j-number\n", id);
    } else if (!strcmp(type, "boolean")) gtext_printf(&j->out, "s%d ::= \"true\" | \"false\"\n", id);
    else if (!strcmp(type, "null")) gtext_printf(&j->out, "s%d ::= \"null\"\n", id);
    else if (!strcmp(type, "object")) gen_object(j, s, path, id);
    else if (!strcmp(type, "array")) gen_array(j, s, path, id);
    else fail(j, INF_EINVAL, path, "unknown type '%.64s'", type);
}

/* Writes the rule for schema s; returns its id or -1. */
static int gen(js *j, const json_value *s, const char *path) {
    if (j->rc) return -1;
    for (size_t i = 0; i < j->n_refs; i++)
        if (j->refs[i].v == s) return j->refs[i].id;
    if (++j->depth > JS_MAX_DEPTH) {
        fail(j, INF_ERANGE, path, "schema nested deeper than 64 levels%s", NULL);
        return -1;
    }
    int id = j->next_id++;
    /* Remember the node before descending, so recursive $refs find it. */
    if (j->n_refs == j->cap_refs) {
        size_t cap = j->cap_refs ? 2 * j->cap_refs : 32;
        js_ref *q = realloc(j->refs, cap * sizeof *q);
        if (!q) {
            fail(j, INF_ENOMEM, path, "out of memory%s", NULL);
            return -1;
        }
        j->refs = q;
        j->cap_refs = cap;
    }
    j->refs[j->n_refs++] = (js_ref){s, id};
    if (s->type == JSON_BOOL) {
        if (s->boolean) gtext_printf(&j->out, "s%d ::= j-value\n", id);
        else fail(j, INF_EUNSUPPORTED, path, "schema false matches nothing%s", NULL);
        j->depth--;
        return j->rc ? -1 : id;
    }
    if (s->type != JSON_OBJECT) {
        fail(j, INF_EINVAL, path, "a schema must be an object or a boolean%s", NULL);
        return -1;
    }
    if (check_keywords(j, s, path)) return -1;
    const json_value *ref = json_get(s, "$ref"), *en = json_get(s, "enum"), *cst = json_get(s, "const"),
                     *any = json_get(s, "anyOf"), *one = json_get(s, "oneOf"), *type = json_get(s, "type");
    if (ref) {
        if (ref->type != JSON_STRING) fail(j, INF_EINVAL, path, "'$ref' must be a string%s", NULL);
        else if (!only_annotations_besides(s, "$ref"))
            fail(j, INF_EUNSUPPORTED, path, "'$ref' together with other keywords is not supported%s", NULL);
        const json_value *target = j->rc ? NULL : resolve_ref(j, ref->str, path);
        int tid = target ? gen(j, target, ref->str) : -1;
        if (tid >= 0) gtext_printf(&j->out, "s%d ::= s%d\n", id, tid);
    } else if (any || one) {
        const json_value *list = any ? any : one;
        const char *kw = any ? "anyOf" : "oneOf";
        if (any && one) fail(j, INF_EUNSUPPORTED, path, "anyOf together with oneOf is not supported%s", NULL);
        else if (list->type != JSON_ARRAY || !list->n) fail(j, INF_EINVAL, path, "'%s' must be a non-empty array", kw);
        else if (!only_annotations_besides(s, kw))
            fail(j, INF_EUNSUPPORTED, path, "'%s' together with other keywords is not supported", kw);
        int *ids = j->rc ? NULL : calloc(list->n, sizeof *ids);
        for (size_t i = 0; ids && i < list->n && !j->rc; i++) {
            char cp[512], idx[24];
            snprintf(idx, sizeof idx, "%zu", i);
            child_path(cp, sizeof cp, path, kw, idx);
            ids[i] = gen(j, &list->items[i], cp);
        }
        if (ids && !j->rc) {
            gtext_printf(&j->out, "s%d ::= ", id);
            for (size_t i = 0; i < list->n; i++) gtext_printf(&j->out, "%ss%d", i ? " | " : "", ids[i]);
            gtext_puts(&j->out, "\n");
        }
        free(ids);
    } else if (cst) {
        gtext_printf(&j->out, "s%d ::= ", id);
        literal_of(j, cst);
        gtext_puts(&j->out, "\n");
    } else if (en) {
        if (en->type != JSON_ARRAY || !en->n) fail(j, INF_EINVAL, path, "'enum' must be a non-empty array%s", NULL);
        else {
            gtext_printf(&j->out, "s%d ::= ", id);
            for (size_t i = 0; i < en->n; i++) {
                if (i) gtext_puts(&j->out, " | ");
                literal_of(j, &en->items[i]);
            }
            gtext_puts(&j->out, "\n");
        }
    } else if (type) {
        if (type->type == JSON_STRING) {
            gen_typed(j, s, type->str, path, id);
        } else if (type->type == JSON_ARRAY && type->n) {
            int sub = j->next_id;
            j->next_id += (int)type->n;
            gtext_printf(&j->out, "s%d ::= ", id);
            for (size_t i = 0; i < type->n; i++) gtext_printf(&j->out, "%ss%d", i ? " | " : "", sub + (int)i);
            gtext_puts(&j->out, "\n");
            for (size_t i = 0; i < type->n && !j->rc; i++) {
                if (type->items[i].type != JSON_STRING) fail(j, INF_EINVAL, path, "'type' must list strings%s", NULL);
                else gen_typed(j, s, type->items[i].str, path, sub + (int)i);
            }
        } else {
            fail(j, INF_EINVAL, path, "'type' must be a string or a non-empty array of strings%s", NULL);
        }
    } else if (json_get(s, "properties") || json_get(s, "required") || json_get(s, "additionalProperties")) {
        gen_object(j, s, path, id);
    } else if (json_get(s, "items") || json_get(s, "minItems") || json_get(s, "maxItems")) {
        gen_array(j, s, path, id);
    } else if (json_get(s, "minLength") || json_get(s, "maxLength") || json_get(s, "pattern") ||
               json_get(s, "format")) {
        gen_string(j, s, path, id);
    } else if (json_get(s, "minimum") || json_get(s, "maximum") || json_get(s, "exclusiveMinimum") ||
               json_get(s, "exclusiveMaximum")) {
        fail(j, INF_EUNSUPPORTED, path, "minimum / maximum without type integer are not supported%s", NULL);
    } else {
        gtext_printf(&j->out, "s%d ::= j-value\n", id);
    }
    j->depth--;
    return j->rc ? -1 : id;
}

int jsonschema_value_to_gbnf(const json_value *schema, char **gbnf, inf_error *err) {
    *gbnf = NULL;
    js j;
    memset(&j, 0, sizeof j);
    j.root = schema;
    j.err = err;
    gtext_init(&j.out);
    int id = gen(&j, schema, "");
    if (!j.rc) {
        gtext_printf(&j.out, "root ::= s%d\n", id);
        gtext_puts(&j.out, ANY_RULES);
    }
    free(j.refs);
    if (j.rc) {
        gtext_free(&j.out);
        return j.rc;
    }
    return gtext_take(&j.out, gbnf, err);
}

int jsonschema_value_text(const json_value *v, char **out, inf_error *err) {
    gtext t;
    gtext_init(&t);
    json_text(&t, v);
    return gtext_take(&t, out, err);
}

int jsonschema_to_gbnf(const char *text, size_t len, char **gbnf, inf_error *err) {
    *gbnf = NULL;
    json_value v;
    inf_error jerr = {0};
    if (json_parse(text, len, &v, &jerr)) return inf_error_set(err, INF_EFORMAT, "json schema: %s", jerr.msg);
    int rc = jsonschema_value_to_gbnf(&v, gbnf, err);
    json_free(&v);
    return rc;
}
