/* gtext.c - see gtext.h. */
#include "gtext.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void gtext_init(gtext *t) { memset(t, 0, sizeof *t); }

void gtext_free(gtext *t) {
    free(t->s);
    memset(t, 0, sizeof *t);
}

static int reserve(gtext *t, size_t n) {
    if (t->failed) return -1;
    if (t->len + n + 1 <= t->cap) return 0;
    size_t c = t->cap ? t->cap : 256;
    while (c < t->len + n + 1) c *= 2;
    char *q = realloc(t->s, c);
    if (!q) {
        t->failed = 1;
        return -1;
    }
    t->s = q;
    t->cap = c;
    return 0;
}

void gtext_put(gtext *t, const char *s, size_t n) {
    if (reserve(t, n)) return;
    memcpy(t->s + t->len, s, n);
    t->len += n;
    t->s[t->len] = 0;
}

void gtext_puts(gtext *t, const char *s) { gtext_put(t, s, strlen(s)); }

void gtext_printf(gtext *t, const char *fmt, ...) {
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0) {
        t->failed = 1;
        return;
    }
    if ((size_t)n < sizeof buf) {
        gtext_put(t, buf, (size_t)n);
        return;
    }
    if (reserve(t, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(t->s + t->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    t->len += (size_t)n;
}

void gtext_cp(gtext *t, uint32_t cp) {
    if (cp > 0xFFFF) gtext_printf(t, "\\U%08X", (unsigned)cp);
    else if (cp > 0xFF) gtext_printf(t, "\\u%04X", (unsigned)cp);
    else gtext_printf(t, "\\x%02X", (unsigned)cp);
}

void gtext_literal(gtext *t, const char *s, size_t n) {
    gtext_put(t, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            gtext_put(t, e, 2);
        } else if (c < 0x20 || c == 0x7F) {
            gtext_printf(t, "\\x%02X", c);
        } else {
            gtext_put(t, (const char *)&s[i], 1);
        }
    }
    gtext_put(t, "\"", 1);
}

int gtext_take(gtext *t, char **out, inf_error *err) {
    *out = NULL;
    if (t->failed || reserve(t, 0)) {
        gtext_free(t);
        return inf_error_set(err, INF_ENOMEM, "out of memory writing a grammar");
    }
    *out = t->s;
    memset(t, 0, sizeof *t);
    return 0;
}

static size_t cp_len(unsigned char c) { return c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : 4; }

int gtext_valid_utf8(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t l = cp_len(c);
        if ((c >= 0x80 && c < 0xC2) || c > 0xF4 || i + l > n) return 0;
        uint32_t cp = l == 1 ? c : l == 2 ? (c & 0x1Fu) : l == 3 ? (c & 0x0Fu) : (c & 0x07u);
        for (size_t k = 1; k < l; k++) {
            unsigned char b = (unsigned char)s[i + k];
            if ((b & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (b & 0x3Fu);
        }
        static const uint32_t min_of[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min_of[l] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
        i += l;
    }
    return 1;
}

