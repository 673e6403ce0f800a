/* tok_stream.c - UTF-8 checking and the streaming detokenizer (see tokenizer.h). */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

int tok_utf8_seq(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    int len;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c == 0xE0) len = 3, lo = 0xA0;           /* no overlongs */
    else if (c >= 0xE1 && c <= 0xEC) len = 3;
    else if (c == 0xED) len = 3, hi = 0x9F;           /* no surrogates */
    else if (c >= 0xEE && c <= 0xEF) len = 3;
    else if (c == 0xF0) len = 4, lo = 0x90;           /* no overlongs */
    else if (c >= 0xF1 && c <= 0xF3) len = 4;
    else if (c == 0xF4) len = 4, hi = 0x8F;           /* nothing above U+10FFFF */
    else return -1;
    for (int k = 1; k < len; k++) {
        if ((size_t)k >= n) return 0;
        if (s[k] < lo || s[k] > hi) return -k;
        lo = 0x80;
        hi = 0xBF;
    }
    return len;
}

struct tok_stream {
    const tokenizer *t;
    int flags;
    int started;            /* some byte was already produced (leading-space rule) */
    unsigned char held[4];  /* valid prefix of an unfinished character */
    size_t n_held;
    char *buf;
    size_t cap;
};

int tok_stream_create(tok_stream **out, const tokenizer *t, int flags, inf_error *err) {
    if (!out || !t) return inf_error_set(err, INF_EINVAL, "tok_stream_create: NULL argument");
    tok_stream *s = calloc(1, sizeof *s);
    if (!s) return inf_error_set(err, INF_ENOMEM, "out of memory creating a detokenizer");
    s->t = t;
    s->flags = flags;
    *out = s;
    return 0;
}

void tok_stream_free(tok_stream *s) {
    if (!s) return;
    free(s->buf);
    free(s);
}

void tok_stream_reset(tok_stream *s) {
    s->started = 0;
    s->n_held = 0;
}

static int reserve(tok_stream *s, size_t need, inf_error *err) {
    if (need <= s->cap) return 0;
    size_t nc = s->cap ? s->cap : 64;
    while (nc < need) nc *= 2;
    char *p = realloc(s->buf, nc);
    if (!p) return inf_error_set(err, INF_ENOMEM, "out of memory in the detokenizer");
    s->buf = p;
    s->cap = nc;
    return 0;
}

/* Copies complete characters of held+piece to s->buf, keeps an unfinished
 * tail in held, and replaces invalid subparts with U+FFFD. */
static size_t assemble(tok_stream *s, const unsigned char *p, size_t n) {
    size_t o = 0;
    unsigned char tmp[8];
    /* finish a held character first: at most 3 bytes of p can complete it */
    while (s->n_held) {
        size_t take = n < 4 - s->n_held ? n : 4 - s->n_held;
        memcpy(tmp, s->held, s->n_held);
        memcpy(tmp + s->n_held, p, take);
        size_t tn = s->n_held + take;
        int k = tok_utf8_seq(tmp, tn);
        if (k == 0) { /* still unfinished: all of p was consumed */
            memcpy(s->held, tmp, tn);
            s->n_held = tn;
            return o;
        }
        size_t used = (size_t)(k > 0 ? k : -k); /* bytes of tmp that form the unit */
        if (k > 0) {
            memcpy(s->buf + o, tmp, used);
            o += used;
        } else {
            memcpy(s->buf + o, "\xef\xbf\xbd", 3);
            o += 3;
        }
        if (used >= s->n_held) {
            p += used - s->n_held;
            n -= used - s->n_held;
            s->n_held = 0;
        } else { /* the invalid unit ended inside the held bytes: re-scan the rest */
            memmove(s->held, s->held + used, s->n_held - used);
            s->n_held -= used;
        }
    }
    for (size_t i = 0; i < n;) {
        int k = tok_utf8_seq(p + i, n - i);
        if (k > 0) {
            memcpy(s->buf + o, p + i, (size_t)k);
            o += (size_t)k;
            i += (size_t)k;
        } else if (k == 0) {
            memcpy(s->held, p + i, n - i);
            s->n_held = n - i;
            break;
        } else {
            memcpy(s->buf + o, "\xef\xbf\xbd", 3);
            o += 3;
            i += (size_t)-k;
        }
    }
    return o;
}

int tok_stream_push(tok_stream *s, int32_t id, const char **out, size_t *out_len,
                    inf_error *err) {
    const char *p;
    size_t n;
    *out = "";
    *out_len = 0;
    int rc = tok_piece(s->t, id, s->flags, &p, &n, err);
    if (rc) return rc;
    if (n && !s->started) {
        s->started = 1;
        if ((s->flags & TOK_DECODE_STRIP_SPACE) && s->t->add_space_prefix && p[0] == ' ') {
            p++;
            n--;
        }
    }
    /* every input byte yields at most 3 output bytes (U+FFFD) */
    if ((rc = reserve(s, 3 * (n + s->n_held) + 1, err))) return rc;
    *out_len = assemble(s, (const unsigned char *)p, n);
    *out = s->buf;
    return 0;
}

int tok_stream_finish(tok_stream *s, const char **out, size_t *out_len, inf_error *err) {
    *out = "";
    *out_len = 0;
    if (s->n_held) {
        /* a held tail is always one valid-but-unfinished prefix: one U+FFFD */
        int rc = reserve(s, 4, err);
        if (rc) return rc;
        memcpy(s->buf, "\xef\xbf\xbd", 3);
        *out = s->buf;
        *out_len = 3;
    }
    tok_stream_reset(s);
    return 0;
}
