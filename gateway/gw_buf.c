/* gw_buf.c - see gw_buf.h. */
#include "gw_buf.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void gw_buf_free(gw_buf *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

static int reserve(gw_buf *b, size_t extra) {
    if (b->oom) return -1;
    if (b->len + extra + 1 <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

void gw_buf_put(gw_buf *b, const void *s, size_t n) {
    if (reserve(b, n)) return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void gw_buf_puts(gw_buf *b, const char *s) { gw_buf_put(b, s, strlen(s)); }

void gw_buf_printf(gw_buf *b, const char *fmt, ...) {
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof tmp) {
        gw_buf_put(b, tmp, (size_t)n);
        return;
    }
    if (reserve(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* Length of the valid UTF-8 sequence at s (1-4), or 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t k;
    uint32_t cp;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) { k = 2; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { k = 3; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { k = 4; cp = c & 0x07; }
    else return 0;
    if (n < k) return 0;
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((k == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (k == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0;
    return k;
}

void gw_buf_json_str(gw_buf *b, const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    gw_buf_put(b, "\"", 1);
    size_t run = 0; /* start of the pending run of plain bytes */
    for (size_t i = 0; i < n;) {
        unsigned c = u[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            i++;
            continue;
        }
        if (c >= 0x80) {
            size_t k = utf8_seq(u + i, n - i);
            if (k) {
                i += k;
                continue;
            }
        }
        gw_buf_put(b, s + run, i - run);
        char esc[8];
        switch (c) {
        case '"': gw_buf_put(b, "\\\"", 2); break;
        case '\\': gw_buf_put(b, "\\\\", 2); break;
        case '\n': gw_buf_put(b, "\\n", 2); break;
        case '\r': gw_buf_put(b, "\\r", 2); break;
        case '\t': gw_buf_put(b, "\\t", 2); break;
        default:
            if (c < 0x20) {
                snprintf(esc, sizeof esc, "\\u%04x", c);
                gw_buf_put(b, esc, 6);
            } else {
                gw_buf_put(b, "\xEF\xBF\xBD", 3); /* invalid byte: U+FFFD */
            }
        }
        i++;
        run = i;
    }
    gw_buf_put(b, s + run, n - run);
    gw_buf_put(b, "\"", 1);
}

void gw_buf_json_num(gw_buf *b, double x) {
    if (isinf(x) && x < 0) x = -9999.0;
    if (!isfinite(x)) {
        gw_buf_puts(b, "null");
        return;
    }
    gw_buf_printf(b, "%.9g", x);
}

void gw_buf_consume(gw_buf *b, size_t n) {
    b->off += n;
    if (b->off >= b->len) {
        b->off = b->len = 0;
        if (b->p) b->p[0] = '\0';
    } else if (b->off > b->cap / 2) {
        memmove(b->p, b->p + b->off, b->len - b->off + 1);
        b->len -= b->off;
        b->off = 0;
    }
}

size_t gw_utf8_complete_prefix(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    /* look back at most 3 bytes for the lead byte of an unfinished sequence */
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        unsigned c = u[n - back];
        if ((c & 0xC0) == 0x80) continue; /* continuation byte */
        size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        return need > back ? n - back : n;
    }
    return n;
}
