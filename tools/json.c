/* json.c - small strict JSON reader and string writer (see json.h). */
#include "json.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MAX_DEPTH 64

typedef struct parser {
    const char *s;
    size_t len, pos;
    inf_error *err;
} parser;

static int fail(parser *p, const char *why) {
    return inf_error_set(p->err, INF_EFORMAT, "JSON error at byte %zu: %s", p->pos, why);
}

static void skip_ws(parser *p) {
    while (p->pos < p->len && strchr(" \t\r\n", p->s[p->pos]) && p->s[p->pos]) p->pos++;
}

static int parse_value(parser *p, json_value *v, int depth);

static int hex4(parser *p, uint32_t *out) {
    if (p->pos + 4 > p->len) return fail(p, "truncated \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p->s[p->pos++];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (uint32_t)(c - 'A' + 10);
        else return fail(p, "bad hex digit in \\u escape");
    }
    *out = v;
    return 0;
}

static size_t put_utf8(char *o, uint32_t cp) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F)); return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F)); return 4;
}

/* Parses a string literal at p->pos (at the opening quote). Output is never
 * longer than the input, so one allocation of the remaining length suffices. */
static int parse_string(parser *p, char **out, size_t *out_len) {
    p->pos++;
    size_t start = p->pos, end = start;
    while (end < p->len && p->s[end] != '"') end += p->s[end] == '\\' ? 2 : 1;
    if (end >= p->len) return fail(p, "unterminated string");
    char *buf = malloc(end - start + 1), *o = buf;
    if (!buf) return inf_error_set(p->err, INF_ENOMEM, "out of memory");
    while (p->pos < end) {
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c < 0x20) { free(buf); return fail(p, "control character in string"); }
        if (c != '\\') { *o++ = (char)c; p->pos++; continue; }
        p->pos++;
        char e = p->s[p->pos++];
        uint32_t cp;
        switch (e) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '/': *o++ = '/'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u':
            if (hex4(p, &cp)) { free(buf); return p->err ? p->err->code : INF_EFORMAT; }
            if (cp >= 0xD800 && cp < 0xDC00 && p->pos + 6 <= end && p->s[p->pos] == '\\' &&
                p->s[p->pos + 1] == 'u') {
                uint32_t lo;
                p->pos += 2;
                if (hex4(p, &lo)) { free(buf); return INF_EFORMAT; }
                if (lo >= 0xDC00 && lo < 0xE000) cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                else cp = 0xFFFD;
            } else if (cp >= 0xD800 && cp < 0xE000) {
                cp = 0xFFFD;
            }
            o += put_utf8(o, cp);
            break;
        default: free(buf); return fail(p, "bad escape");
        }
    }
    p->pos = end + 1;
    *o = '\0';
    *out = buf;
    *out_len = (size_t)(o - buf);
    return 0;
}

static int parse_number(parser *p, json_value *v) {
    const char *start = p->s + p->pos;
    size_t i = p->pos;
    if (i < p->len && p->s[i] == '-') i++;
    if (i >= p->len || !(p->s[i] >= '0' && p->s[i] <= '9')) return fail(p, "bad number");
    while (i < p->len && strchr("0123456789+-.eE", p->s[i]) && p->s[i]) i++;
    char tmp[64];
    size_t n = i - p->pos;
    if (n >= sizeof tmp) return fail(p, "number too long");
    memcpy(tmp, start, n);
    tmp[n] = '\0';
    char *e;
    v->number = strtod(tmp, &e);
    if (*e || !isfinite(v->number)) return fail(p, "bad number");
    v->type = JSON_NUMBER;
    p->pos = i;
    return 0;
}

static int grow(json_value *v, size_t *cap, int with_keys) {
    if (v->n < *cap) return 0;
    size_t nc = *cap ? *cap * 2 : 4;
    json_value *items = realloc(v->items, nc * sizeof *items);
    if (!items) return INF_ENOMEM;
    v->items = items;
    if (with_keys) {
        char **keys = realloc(v->keys, nc * sizeof *keys);
        if (!keys) return INF_ENOMEM;
        v->keys = keys;
    }
    *cap = nc;
    return 0;
}

static int parse_container(parser *p, json_value *v, int depth, int is_obj) {
    v->type = is_obj ? JSON_OBJECT : JSON_ARRAY;
    char close = is_obj ? '}' : ']';
    size_t cap = 0;
    p->pos++;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == close) { p->pos++; return 0; }
    for (;;) {
        if (grow(v, &cap, is_obj)) return inf_error_set(p->err, INF_ENOMEM, "out of memory");
        json_value *item = &v->items[v->n];
        memset(item, 0, sizeof *item);
        if (is_obj) {
            skip_ws(p);
            size_t kl;
            if (p->pos >= p->len || p->s[p->pos] != '"') return fail(p, "expected object key");
            if (parse_string(p, &v->keys[v->n], &kl)) return INF_EFORMAT;
            skip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != ':') { free(v->keys[v->n]); return fail(p, "expected ':'"); }
            p->pos++;
        }
        int rc = parse_value(p, item, depth + 1);
        v->n++;
        if (rc) return rc;
        skip_ws(p);
        if (p->pos < p->len && p->s[p->pos] == ',') { p->pos++; continue; }
        if (p->pos < p->len && p->s[p->pos] == close) { p->pos++; return 0; }
        return fail(p, is_obj ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static int parse_value(parser *p, json_value *v, int depth) {
    if (depth > JSON_MAX_DEPTH) return fail(p, "nesting too deep");
    skip_ws(p);
    if (p->pos >= p->len) return fail(p, "unexpected end of input");
    char c = p->s[p->pos];
    if (c == '{' || c == '[') return parse_container(p, v, depth, c == '{');
    if (c == '"') {
        v->type = JSON_STRING;
        return parse_string(p, &v->str, &v->len);
    }
    if (c == '-' || (c >= '0' && c <= '9')) return parse_number(p, v);
    static const struct { const char *lit; json_type t; int b; } lits[] = {
        {"true", JSON_BOOL, 1}, {"false", JSON_BOOL, 0}, {"null", JSON_NULL, 0}};
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(lits[i].lit);
        if (p->len - p->pos >= n && memcmp(p->s + p->pos, lits[i].lit, n) == 0) {
            v->type = lits[i].t;
            v->boolean = lits[i].b;
            p->pos += n;
            return 0;
        }
    }
    return fail(p, "unexpected character");
}

int json_parse(const char *text, size_t len, json_value *out, inf_error *err) {
    parser p = {text, len, 0, err};
    memset(out, 0, sizeof *out);
    int rc = parse_value(&p, out, 0);
    if (!rc) {
        skip_ws(&p);
        if (p.pos != p.len) rc = fail(&p, "trailing characters");
    }
    if (rc) json_free(out);
    return rc;
}

void json_free(json_value *v) {
    if (!v) return;
    for (size_t i = 0; i < v->n; i++) {
        json_free(&v->items[i]);
        if (v->keys) free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->str);
    memset(v, 0, sizeof *v);
}

const json_value *json_get(const json_value *obj, const char *key) {
    if (!obj || obj->type != JSON_OBJECT) return NULL;
    for (size_t i = 0; i < obj->n; i++)
        if (strcmp(obj->keys[i], key) == 0) return &obj->items[i];
    return NULL;
}

/* Length of the valid UTF-8 sequence at s (0 if invalid). */
static size_t utf8_len(const unsigned char *s, size_t n) {
    if (s[0] < 0x80) return 1;
    size_t need = (s[0] & 0xE0) == 0xC0 ? 2 : (s[0] & 0xF0) == 0xE0 ? 3 : (s[0] & 0xF8) == 0xF0 ? 4 : 0;
    if (!need || need > n || (need == 2 && s[0] < 0xC2)) return 0;
    for (size_t i = 1; i < need; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    if (need == 3 && s[0] == 0xE0 && s[1] < 0xA0) return 0;
    if (need == 3 && s[0] == 0xED && s[1] >= 0xA0) return 0;
    if (need == 4 && (s[0] > 0xF4 || (s[0] == 0xF0 && s[1] < 0x90) || (s[0] == 0xF4 && s[1] >= 0x90)))
        return 0;
    return need;
}

void json_write_str(FILE *out, const char *s, size_t len) {
    const unsigned char *u = (const unsigned char *)s;
    fputc('"', out);
    for (size_t i = 0; i < len;) {
        unsigned char c = u[i];
        if (c == '"' || c == '\\') { fputc('\\', out); fputc(c, out); i++; continue; }
        if (c == '\n') { fputs("\\n", out); i++; continue; }
        if (c == '\r') { fputs("\\r", out); i++; continue; }
        if (c == '\t') { fputs("\\t", out); i++; continue; }
        if (c < 0x20 || c == 0x7F) { fprintf(out, "\\u%04x", c); i++; continue; }
        size_t n = utf8_len(u + i, len - i);
        if (!n) { fputs("\xEF\xBF\xBD", out); i++; continue; }
        fwrite(u + i, 1, n, out);
        i += n;
    }
    fputc('"', out);
}
