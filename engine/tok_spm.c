/* tok_spm.c - SentencePiece-style BPE ("llama" vocabularies).
 *
 * The text is escaped (space -> U+2581, optional leading U+2581) and split
 * into UTF-8 characters; adjacent pairs whose concatenation is a token go into
 * a priority queue by that token's score (ties: leftmost first), and the best
 * pair is merged until none is left. Symbols that are not tokens fall back to
 * <0xNN> byte tokens. This reproduces llama.cpp's llm_tokenizer_spm.
 *
 * One deliberate difference: llama.cpp cuts a symbol by the length its lead
 * byte announces, so a stray lead byte swallows the bytes after it (C3 before
 * an escaped space took E2 and left 96 81 as two more symbols, more symbols
 * than input bytes). Here every byte that does not begin a complete, valid
 * UTF-8 character is a symbol of its own (it falls back to its byte token)
 * and never takes the following bytes. Valid UTF-8 tokenizes identically.
 */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

typedef struct spm_sym {
    uint32_t start, len; /* span of the escaped text; len 0 once merged away */
    int32_t prev, next;
} spm_sym;

static int try_pair(const tokenizer *t, const char *s, const spm_sym *sy, int32_t l, int32_t r,
                    tok_heap *hp) {
    if (l < 0 || r < 0) return 0;
    uint32_t size = sy[l].len + sy[r].len;
    int32_t id = tok_strtab_find(&t->st, s + sy[l].start, size);
    if (id < 0 || id >= t->n_vocab) return 0;
    tok_bigram b = {.pri = t->scores[id], .left = l, .right = r, .size = size, .result = id};
    return tok_heap_push(hp, b);
}

static int emit_bytes(const tokenizer *t, const char *s, size_t n, tok_vec *out, inf_error *err) {
    for (size_t i = 0; i < n; i++) {
        unsigned char b = (unsigned char)s[i];
        int32_t id = t->byte_tok[b];
        if (id < 0) id = tok_find(t, s + i, 1);
        if (id < 0) id = t->unk;
        if (id < 0)
            return inf_error_set(err, INF_EFORMAT,
                                 "byte 0x%02X has no token and the vocabulary has no <unk>", b);
        if (tok_vec_push(out, id)) return inf_error_set(err, INF_ENOMEM, "out of memory tokenizing");
    }
    return 0;
}

int tok_spm_encode(const tokenizer *t, const char *text, size_t len, int add_prefix,
                   tok_vec *out, inf_error *err) {
    if (len == 0) return 0; /* llama.cpp: an empty fragment yields nothing, prefix or not */
    if (len > (INT32_MAX - 3) / 3) /* symbol indices are int32_t */
        return inf_error_set(err, INF_ERANGE, "text of %zu bytes is too long to tokenize", len);
    size_t cap = 3 * len + 3; /* each byte escapes to at most 3, plus the prefix */
    char *s = malloc(cap);
    spm_sym *sy = NULL;
    tok_heap hp = {0};
    int rc = 0;
    if (!s) goto oom;

    size_t n = 0;
    if (add_prefix) {
        memcpy(s, "\xe2\x96\x81", 3);
        n = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(s + n, "\xe2\x96\x81", 3);
            n += 3;
        } else {
            s[n++] = text[i];
        }
    }

    /* every symbol has at least one byte, so the escaped text's length bounds
     * the symbol count (sizing by the input length overflowed) */
    if (!(sy = malloc(n * sizeof *sy))) goto oom;
    int32_t ns = 0;
    for (uint32_t off = 0; off < n;) {
        int k = tok_utf8_seq((const unsigned char *)s + off, n - off);
        uint32_t cl = k > 0 ? (uint32_t)k : 1;
        sy[ns] = (spm_sym){.start = off, .len = cl, .prev = ns - 1, .next = -1};
        if (ns > 0) sy[ns - 1].next = ns;
        ns++;
        off += cl;
    }
    for (int32_t i = 1; i < ns; i++)
        if (try_pair(t, s, sy, i - 1, i, &hp)) goto oom;

    while (hp.n) {
        tok_bigram b = tok_heap_pop(&hp);
        spm_sym *l = &sy[b.left], *r = &sy[b.right];
        /* stale: one side was merged elsewhere since this pair was queued */
        if (l->len == 0 || r->len == 0 || l->len + r->len != b.size) continue;
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0) sy[r->next].prev = b.left;
        if (try_pair(t, s, sy, l->prev, b.left, &hp) || try_pair(t, s, sy, b.left, l->next, &hp))
            goto oom;
    }

    for (int32_t i = 0; i >= 0 && ns > 0; i = sy[i].next) {
        int32_t id = tok_strtab_find(&t->st, s + sy[i].start, sy[i].len);
        if (id >= 0 && id < t->n_vocab) {
            if (tok_vec_push(out, id)) goto oom;
        } else if ((rc = emit_bytes(t, s + sy[i].start, sy[i].len, out, err))) {
            goto done;
        }
    }
    goto done;
oom:
    rc = inf_error_set(err, INF_ENOMEM, "out of memory tokenizing %zu bytes", len);
done:
    free(s);
    free(sy);
    free(hp.h);
    return rc;
}
