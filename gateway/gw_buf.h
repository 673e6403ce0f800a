/* gw_buf.h - a growable byte buffer with the JSON writers the gateway's
 * responses are built from. Single-threaded (the owner's lock, if any).
 * Allocation failure is sticky: once an append fails, b->oom stays set and
 * later appends do nothing, so a builder checks once at the end. */
#ifndef INF_GW_BUF_H
#define INF_GW_BUF_H

#include <stddef.h>

typedef struct gw_buf {
    char *p;     /* NUL-terminated while len < cap */
    size_t len, cap;
    size_t off;  /* bytes already consumed from the front (gw_buf_consume) */
    int oom;
} gw_buf;

void gw_buf_free(gw_buf *b);
void gw_buf_put(gw_buf *b, const void *s, size_t n);
void gw_buf_puts(gw_buf *b, const char *s);
void gw_buf_printf(gw_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends s[0..n) as a JSON string literal (quotes included). Control
 * characters are escaped, invalid UTF-8 becomes U+FFFD. */
void gw_buf_json_str(gw_buf *b, const char *s, size_t n);

/* Appends a finite double as JSON (non-finite: null; -inf logprobs: -9999.0,
 * the floor OpenAI uses). */
void gw_buf_json_num(gw_buf *b, double x);

/* Bytes not yet consumed. */
static inline size_t gw_buf_avail(const gw_buf *b) { return b->len - b->off; }

/* Drops n bytes from the front (compacts when the front half is consumed). */
void gw_buf_consume(gw_buf *b, size_t n);

/* Length of the longest prefix of s[0..n) that does not end inside a UTF-8
 * sequence: text deltas are held back at that boundary so a character split
 * over two reply entries is sent whole. */
size_t gw_utf8_complete_prefix(const char *s, size_t n);

#endif
