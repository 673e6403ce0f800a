/* jinja_lex.c - the template lexer, following jinja2's lexer.py rule for rule
 * with trim_blocks=True and lstrip_blocks=True (the Hugging Face setup):
 *   - newlines normalized to \n, one trailing newline dropped;
 *   - "{%-", "{{-", "{#-" strip all whitespace before the tag, "-%}" etc. after;
 *   - trim_blocks: one \n right after "%}" or "#}" is dropped ("+%}" keeps it);
 *   - lstrip_blocks: spaces from the line start up to "{%" or "{#" are dropped
 *     ("{%+" keeps them), never before "{{".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jinja_internal.h"

typedef struct lexer {
    jctx *c;
    jarena *a;
    const char *s;
    size_t n, i;
    int line;
    jtok *t;
    size_t nt, capt;
    bool line_starting; /* the last match ended with a newline (jinja2's line_starting) */
} lexer;

static jtok *push(lexer *L, int type, int line, const char *s, size_t n) {
    if (L->nt == L->capt) {
        size_t cap = L->capt ? L->capt * 2 : 64;
        jtok *nt = jalloc(L->a, cap * sizeof *nt);
        if (L->nt) memcpy(nt, L->t, L->nt * sizeof *nt);
        L->t = nt;
        L->capt = cap;
    }
    jtok *t = &L->t[L->nt++];
    memset(t, 0, sizeof *t);
    t->t = (uint8_t)type;
    t->line = line;
    t->s = s;
    t->n = n;
    return t;
}

static void adv(lexer *L, size_t k) {
    for (size_t j = 0; j < k; j++)
        if (L->s[L->i + j] == '\n') L->line++;
    L->i += k;
}

static size_t skip_ws(const char *s, size_t n, size_t i) {
    size_t w;
    while (i < n && (w = ju_space_at(s + i, n - i))) i += w;
    return i;
}

/* Emits the data text s[st..en) with the strip rule of the tag that follows
 * (sign '-', '+' or 0; is_var: the tag is "{{"). */
static void emit_data(lexer *L, size_t st, size_t en, char sign, bool is_var) {
    const char *s = L->s;
    int line = L->line;
    if (sign == '-') {
        size_t w;
        while (en > st && (w = ju_space_before(s + st, en - st))) en -= w;
    } else if (sign != '+' && !is_var) {
        size_t l_pos = en;
        while (l_pos > st && s[l_pos - 1] != '\n') l_pos--;
        if (l_pos > st || L->line_starting) {
            size_t k = l_pos;
            k = skip_ws(s, en, k);
            if (k == en && en > l_pos) en = l_pos;
        }
    }
    if (en > st) push(L, JT_DATA, line, s + st, en - st);
}

static bool is_name_start(char ch) { return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_'; }
static bool is_name_char(char ch) { return is_name_start(ch) || (ch >= '0' && ch <= '9'); }
static bool is_digit(char ch) { return ch >= '0' && ch <= '9'; }

static size_t digits_us(const char *s, size_t n, size_t i) {
    /* (\d+_)*\d+ */
    size_t st = i;
    while (i < n && is_digit(s[i])) {
        i++;
        if (i + 1 < n && s[i] == '_' && is_digit(s[i + 1])) i++;
    }
    return i > st ? i : st;
}

static void put_u8(jbuf *b, long cp) {
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

static int hexv(char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* Python's unicode-escape decoding of a string literal's body. */
static void unescape(lexer *L, int line, const char *s, size_t n, jtok *t) {
    jbuf b;
    jbuf_init(&b, L->a, (size_t)-1 / 2);
    for (size_t i = 0; i < n;) {
        if (s[i] != '\\' || i + 1 >= n) { jbuf_putc(&b, s[i++]); continue; }
        char e = s[i + 1];
        i += 2;
        switch (e) {
        case '\n': break;
        case '\\': jbuf_putc(&b, '\\'); break;
        case '\'': jbuf_putc(&b, '\''); break;
        case '"': jbuf_putc(&b, '"'); break;
        case 'a': jbuf_putc(&b, 7); break;
        case 'b': jbuf_putc(&b, 8); break;
        case 'f': jbuf_putc(&b, 12); break;
        case 'n': jbuf_putc(&b, '\n'); break;
        case 'r': jbuf_putc(&b, '\r'); break;
        case 't': jbuf_putc(&b, '\t'); break;
        case 'v': jbuf_putc(&b, 11); break;
        case 'x': case 'u': case 'U': {
            int want = e == 'x' ? 2 : e == 'u' ? 4 : 8;
            long cp = 0;
            for (int k = 0; k < want; k++) {
                int h = i < n ? hexv(s[i]) : -1;
                if (h < 0)
                    jfail(L->c, INF_EFORMAT, line, "truncated \\%c%s escape", e,
                          e == 'x' ? "XX" : e == 'u' ? "XXXX" : "XXXXXXXX");
                cp = cp * 16 + h;
                i++;
            }
            if (cp > 0x10ffff) jfail(L->c, INF_EFORMAT, line, "illegal Unicode character");
            if (cp >= 0xd800 && cp < 0xe000)
                jfail(L->c, INF_EFORMAT, line, "surrogate escape in a string literal is not supported");
            put_u8(&b, cp);
            break;
        }
        default:
            if (e >= '0' && e <= '7') {
                long cp = e - '0';
                for (int k = 0; k < 2 && i < n && s[i] >= '0' && s[i] <= '7'; k++) cp = cp * 8 + (s[i++] - '0');
                put_u8(&b, cp);
            } else if (e == 'N') {
                jfail(L->c, INF_EUNSUPPORTED, line, "\\N{...} escapes are not supported");
            } else {
                jbuf_putc(&b, '\\');
                i--; /* the character after the backslash is kept as is */
            }
        }
    }
    t->s = b.p ? b.p : "";
    t->n = b.n;
}

static const char *ops2[] = {"//", "**", "==", "!=", ">=", "<="};
static const char ops1[] = "+-/*%~[](){}><=.:|,;";

/* Inside "{{ }}" or "{% %}": tokens until the end tag. */
static void lex_tag(lexer *L, bool is_block) {
    const char *s = L->s;
    size_t n = L->n;
    int depth = 0; /* brackets open: end tags do not match inside (jinja2's balancing_stack) */
    int start_line = L->line;
    for (;;) {
        if (L->i >= n) jfail(L->c, INF_EFORMAT, start_line, "unexpected end of template, expected end of %s",
                             is_block ? "statement block" : "print statement");
        size_t i = L->i;
        if (depth == 0) {
            if (is_block) {
                if (n - i >= 3 && s[i] == '+' && s[i + 1] == '%' && s[i + 2] == '}') {
                    push(L, JT_BLOCK_END, L->line, s + i, 3);
                    adv(L, 3);
                    L->line_starting = false;
                    return;
                }
                if (n - i >= 3 && s[i] == '-' && s[i + 1] == '%' && s[i + 2] == '}') {
                    push(L, JT_BLOCK_END, L->line, s + i, 3);
                    size_t e = skip_ws(s, n, i + 3);
                    L->line_starting = e > i + 3 && s[e - 1] == '\n';
                    adv(L, e - i);
                    return;
                }
                if (n - i >= 2 && s[i] == '%' && s[i + 1] == '}') {
                    push(L, JT_BLOCK_END, L->line, s + i, 2);
                    size_t e = i + 2;
                    if (e < n && s[e] == '\n') e++;
                    L->line_starting = s[e - 1] == '\n';
                    adv(L, e - i);
                    return;
                }
            } else {
                if (n - i >= 3 && s[i] == '-' && s[i + 1] == '}' && s[i + 2] == '}') {
                    push(L, JT_VAR_END, L->line, s + i, 3);
                    size_t e = skip_ws(s, n, i + 3);
                    L->line_starting = e > i + 3 && s[e - 1] == '\n';
                    adv(L, e - i);
                    return;
                }
                if (n - i >= 2 && s[i] == '}' && s[i + 1] == '}') {
                    push(L, JT_VAR_END, L->line, s + i, 2);
                    adv(L, 2);
                    L->line_starting = false;
                    return;
                }
            }
        }
        size_t w = skip_ws(s, n, i);
        if (w > i) { adv(L, w - i); continue; }
        char ch = s[i];
        int line = L->line;
        if (is_digit(ch) && !(i > 0 && s[i - 1] == '.')) {
            /* float first, as jinja2's rules are ordered */
            size_t e = digits_us(s, n, i);
            size_t f = e;
            bool isf = false;
            if (f + 1 < n && s[f] == '.' && is_digit(s[f + 1])) { f = digits_us(s, n, f + 1); isf = true; }
            if (f < n && s[f] == 'e') {
                size_t g = f + 1;
                if (g < n && (s[g] == '+' || s[g] == '-')) g++;
                if (g < n && is_digit(s[g])) { f = digits_us(s, n, g); isf = true; }
            }
            char tmp[128];
            size_t k = 0;
            if (isf) {
                for (size_t j = i; j < f && k < sizeof tmp - 1; j++)
                    if (s[j] != '_') tmp[k++] = s[j];
                tmp[k] = 0;
                jtok *t = push(L, JT_FLOAT, line, s + i, f - i);
                t->f = strtod(tmp, NULL);
                adv(L, f - i);
                continue;
            }
            int base = 10;
            size_t j = i;
            if (ch == '0' && i + 1 < n && (s[i + 1] == 'x' || s[i + 1] == 'o' || s[i + 1] == 'b')) {
                base = s[i + 1] == 'x' ? 16 : s[i + 1] == 'o' ? 8 : 2;
                j = i + 2;
                e = j;
                while (e < n && (s[e] == '_' || (hexv(s[e]) >= 0 && hexv(s[e]) < base))) e++;
            } else if (ch == '0') {
                e = i + 1;
                while (e < n && (s[e] == '0' || (s[e] == '_' && e + 1 < n && s[e + 1] == '0'))) e++;
            }
            uint64_t v = 0;
            for (size_t q = j; q < e; q++) {
                if (s[q] == '_') continue;
                uint64_t nv = v * (uint64_t)base + (uint64_t)hexv(s[q]);
                if (nv / (uint64_t)base != v || nv > (uint64_t)INT64_MAX)
                    jfail(L->c, INF_EUNSUPPORTED, line, "integer literal too large");
                v = nv;
            }
            jtok *t = push(L, JT_INT, line, s + i, e - i);
            t->i = (int64_t)v;
            adv(L, e - i);
            continue;
        }
        if (is_name_start(ch)) {
            size_t e = i + 1;
            while (e < n && is_name_char(s[e])) e++;
            push(L, JT_NAME, line, s + i, e - i);
            adv(L, e - i);
            continue;
        }
        if (ch == '\'' || ch == '"') {
            size_t e = i + 1;
            while (e < n && s[e] != ch) e += (s[e] == '\\' && e + 1 < n) ? 2 : 1;
            if (e >= n) jfail(L->c, INF_EFORMAT, line, "unexpected char %s at %zu", ch == '"' ? "'\"'" : "\"'\"", i);
            jtok *t = push(L, JT_STRING, line, NULL, 0);
            unescape(L, line, s + i + 1, e - i - 1, t);
            adv(L, e + 1 - i);
            continue;
        }
        size_t ol = 0;
        for (size_t k = 0; k < sizeof ops2 / sizeof *ops2; k++)
            if (n - i >= 2 && s[i] == ops2[k][0] && s[i + 1] == ops2[k][1]) ol = 2;
        if (!ol && strchr(ops1, ch) && ch) ol = 1;
        if (!ol) jfail(L->c, INF_EFORMAT, line, "unexpected char '%c' at %zu", ch, i);
        if (ol == 1 && (ch == '(' || ch == '[' || ch == '{')) depth++;
        if (ol == 1 && (ch == ')' || ch == ']' || ch == '}')) {
            if (depth == 0) jfail(L->c, INF_EFORMAT, line, "unexpected '%c'", ch);
            depth--;
        }
        push(L, JT_OP, line, s + i, ol);
        adv(L, ol);
    }
}

/* "{%[-+]?\s*raw\s*(-%}\s*|%})" at i: returns the length or 0. */
static size_t match_raw(const char *s, size_t n, size_t i, const char *word, bool *strip_after) {
    size_t j = i + 2;
    if (j < n && (s[j] == '-' || s[j] == '+')) j++;
    j = skip_ws(s, n, j);
    size_t wl = strlen(word);
    if (n - j < wl || memcmp(s + j, word, wl)) return 0;
    j += wl;
    if (j < n && is_name_char(s[j])) return 0;
    j = skip_ws(s, n, j);
    *strip_after = false;
    if (n - j >= 3 && s[j] == '-' && s[j + 1] == '%' && s[j + 2] == '}') { *strip_after = true; return j + 3 - i; }
    if (n - j >= 3 && s[j] == '+' && s[j + 1] == '%' && s[j + 2] == '}') return j + 3 - i;
    if (n - j >= 2 && s[j] == '%' && s[j + 1] == '}') return j + 2 - i;
    return 0;
}

void jlex(jctx *c, jarena *a, const char *src, size_t len, jtok **out, size_t *nout) {
    /* normalize newlines and drop one trailing newline (keep_trailing_newline=False) */
    char *s = jalloc(a, len + 1);
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\r') {
            s[n++] = '\n';
            if (i + 1 < len && src[i + 1] == '\n') i++;
        } else
            s[n++] = src[i];
    }
    if (n && s[n - 1] == '\n') n--;
    s[n] = 0;
    lexer L = {.c = c, .a = a, .s = s, .n = n, .i = 0, .line = 1, .line_starting = true};
    while (L.i < n) {
        size_t st = L.i, j = st;
        const char *tag = NULL;
        while (j + 1 < n) {
            if (s[j] == '{' && (s[j + 1] == '{' || s[j + 1] == '%' || s[j + 1] == '#')) { tag = s + j; break; }
            j++;
        }
        if (!tag) {
            push(&L, JT_DATA, L.line, s + st, n - st);
            adv(&L, n - st);
            break;
        }
        char kind = tag[1];
        char sign = (j + 2 < n && (s[j + 2] == '-' || s[j + 2] == '+')) ? s[j + 2] : 0;
        emit_data(&L, st, j, sign, kind == '{');
        adv(&L, j - st);
        int tag_line = L.line;
        bool strip_after;
        size_t rl;
        if (kind == '%' && (rl = match_raw(s, n, j, "raw", &strip_after))) {
            adv(&L, rl);
            size_t k = L.i;
            if (strip_after) k = skip_ws(s, n, k);
            adv(&L, k - L.i);
            size_t body = L.i, q = body;
            for (;; q++) {
                if (q + 1 >= n) jfail(c, INF_EFORMAT, tag_line, "Missing end of raw directive");
                if (s[q] == '{' && s[q + 1] == '%' && (rl = match_raw(s, n, q, "endraw", &strip_after))) break;
            }
            char esign = (q + 2 < n && (s[q + 2] == '-' || s[q + 2] == '+')) ? s[q + 2] : 0;
            L.line_starting = false;
            emit_data(&L, body, q, esign, false);
            adv(&L, q - body);
            size_t e = q + rl;
            /* endraw's end takes trim_blocks, like any block end */
            if (!strip_after && s[e - 2] == '%' && s[e - 3] != '+' && e < n && s[e] == '\n') e++;
            if (strip_after) e = skip_ws(s, n, e);
            L.line_starting = s[e - 1] == '\n';
            adv(&L, e - q);
            continue;
        }
        adv(&L, 2 + (sign ? 1 : 0));
        L.line_starting = false;
        if (kind == '#') {
            size_t q = L.i;
            for (;; q++) {
                if (q + 1 >= n) jfail(c, INF_EFORMAT, tag_line, "Missing end of comment tag");
                if (s[q] == '#' && s[q + 1] == '}') break;
            }
            size_t e = q + 2;
            if (q > L.i && s[q - 1] == '-') e = skip_ws(s, n, e);
            else if (!(q > L.i && s[q - 1] == '+') && e < n && s[e] == '\n') e++;
            L.line_starting = s[e - 1] == '\n';
            adv(&L, e - L.i);
            continue;
        }
        push(&L, kind == '{' ? JT_VAR_BEGIN : JT_BLOCK_BEGIN, tag_line, tag, 2);
        lex_tag(&L, kind == '%');
    }
    push(&L, JT_EOF, L.line, s + n, 0);
    *out = L.t;
    *nout = L.nt;
}
