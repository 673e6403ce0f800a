/* fuzz_tokenizer.c - libFuzzer target for the tokenizers and the streaming
 * detokenizer (make fuzz).
 *
 * At start it loads every GGUF named in INFERNO_FUZZ_MODELS (colon-separated
 * paths or glob patterns), by default ../shared/models/stories260K.gguf and
 * ../shared/models/vocab/ggml-vocab-*.gguf (relative to the repository root,
 * where make runs it): SentencePiece and byte-level BPE vocabularies of
 * several pre-tokenizers. Files of an unsupported kind (bert) must be refused
 * with a message. Input layout:
 *   byte 0  which tokenizer (modulo their number; the default list is
 *           stories260K first, then the vocab files in name order)
 *   byte 1  bit 0 add_special, bit 1 parse_special, bit 2 id mode,
 *           bits 3-4 decode flags (TOK_DECODE_SPECIAL, TOK_DECODE_STRIP_SPACE)
 *   rest    text mode: bytes to encode (copied to an exactly-sized buffer)
 *           id mode: 3 bytes per id, mapped to -8 .. n_vocab+7 and, when the
 *           third byte is FF, INT32_MIN/INT32_MAX: out-of-range ids included
 * Checked beyond "no crash, no leak": ids in range; decode(encode(x)) == x
 * where the tokenizer is lossless (see lossless()); every stream chunk is
 * valid UTF-8 (own validator), out-of-range ids are refused with ERANGE and
 * change nothing, and the stream equals decode when decode is valid UTF-8.
 */
#include <glob.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "tokenizer.h"

enum { MAX_TOK = 64 };
static tokenizer *g_tok[MAX_TOK];
static char g_dropped[MAX_TOK][256]; /* BPE: bytes without a token, dropped as llama.cpp does */
static int g_n;

static void load(const char *path) {
    gguf_file *f = NULL;
    inf_error err = {0};
    if (g_n == MAX_TOK) return;
    if (gguf_open(&f, path, &err)) {
        fprintf(stderr, "fuzz_tokenizer: %s\n", err.msg);
        exit(1);
    }
    int rc = tok_create(&g_tok[g_n], f, &err);
    gguf_close(f);
    if (rc) {
        if (rc != INF_EUNSUPPORTED || !err.msg[0]) abort(); /* only an unknown kind may fail */
        fprintf(stderr, "fuzz_tokenizer: skipping %s: %s\n", path, err.msg);
        return;
    }
    tokenizer *t = g_tok[g_n];
    /* GPT-2's bytes_to_unicode: printable Latin-1 bytes are themselves, the
     * others 256, 257, ... in order; a byte is kept if its character is a token */
    for (int b = 0, next = 256; b < 256 && tok_model_kind(t) == TOK_MODEL_BPE; b++) {
        int printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        int cp = printable ? b : next++;
        char u[2] = {(char)cp, 0};
        if (cp >= 0x80) u[0] = (char)(0xC0 | cp >> 6), u[1] = (char)(0x80 | (cp & 0x3F));
        g_dropped[g_n][b] = tok_find(t, u, cp < 0x80 ? 1 : 2) < 0;
    }
    fprintf(stderr, "fuzz_tokenizer: %s (%d tokens)\n", path, tok_n_vocab(t));
    g_n++;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    const char *list = getenv("INFERNO_FUZZ_MODELS");
    char *copy = strdup(list && *list ? list
                                      : "../shared/models/stories260K.gguf:"
                                        "../shared/models/vocab/ggml-vocab-*.gguf");
    for (char *save = NULL, *p = strtok_r(copy, ":", &save); p; p = strtok_r(NULL, ":", &save)) {
        glob_t g;
        if (glob(p, 0, NULL, &g) == 0)
            for (size_t i = 0; i < g.gl_pathc; i++) load(g.gl_pathv[i]); /* glob sorts */
        globfree(&g);
    }
    free(copy);
    if (g_n == 0) {
        fprintf(stderr, "fuzz_tokenizer: no tokenizer loaded; set INFERNO_FUZZ_MODELS "
                        "(colon-separated GGUF paths or patterns)\n");
        exit(1);
    }
    return 0;
}

/* Length of the valid UTF-8 character at s[0..n), 0 if none (independent of
 * tok_stream.c: decodes the code point and checks its range). */
static size_t char_len(const unsigned char *s, size_t n) {
    unsigned c = s[0], need, cp;
    if (c < 0x80) return 1;
    if ((c & 0xE0) == 0xC0) need = 1, cp = c & 0x1F;
    else if ((c & 0xF0) == 0xE0) need = 2, cp = c & 0x0F;
    else if ((c & 0xF8) == 0xF0) need = 3, cp = c & 0x07;
    else return 0;
    if (need >= n) return 0;
    for (unsigned k = 1; k <= need; k++) {
        if ((s[k] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (s[k] & 0x3F);
    }
    static const unsigned minv[4] = {0, 0x80, 0x800, 0x10000};
    if (cp < minv[need] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return need + 1;
}

static int utf8_ok(const char *p, size_t n) {
    for (size_t i = 0, k; i < n; i += k)
        if (!(k = char_len((const unsigned char *)p + i, n - i))) return 0;
    return 1;
}

/* Whether decode(encode(x)) must give x back: no special-kind token was
 * matched (their pieces are not the text, and a space prefix follows them),
 * SPM: x has no U+2581 (it reads as a space); BPE: x is valid UTF-8 (bad
 * bytes read as U+FFFD) and has no byte the vocabulary drops. */
static int lossless(int ti, const char *x, size_t n, const int32_t *ids, size_t ni) {
    const tokenizer *t = g_tok[ti];
    for (size_t k = 0; k < ni; k++)
        if (tok_token_type(t, ids[k]) != TOK_TYPE_NORMAL && tok_token_type(t, ids[k]) != TOK_TYPE_BYTE)
            return 0;
    if (tok_model_kind(t) == TOK_MODEL_SPM) return !memmem(x, n, "\xE2\x96\x81", 3);
    for (size_t i = 0; i < n; i++)
        if (g_dropped[ti][(unsigned char)x[i]]) return 0;
    return utf8_ok(x, n);
}

/* Streams ids; every chunk valid UTF-8, out-of-range ids refused. Returns the
 * concatenated output (malloc'd) in *out. */
static size_t stream(const tokenizer *t, const int32_t *ids, size_t n, int flags, char **out) {
    tok_stream *s = NULL;
    if (tok_stream_create(&s, t, flags, NULL)) abort();
    size_t cap = 64, len = 0;
    char *acc = malloc(cap);
    for (size_t k = 0; k <= n && acc; k++) {
        const char *o;
        size_t ol;
        inf_error err = {0};
        int rc = k < n ? tok_stream_push(s, ids[k], &o, &ol, &err) : tok_stream_finish(s, &o, &ol, &err);
        int in_range = k == n || (ids[k] >= 0 && ids[k] < tok_n_vocab(t));
        if (rc != (in_range ? 0 : INF_ERANGE) || (rc && (!err.msg[0] || ol))) abort();
        if (!utf8_ok(o, ol)) abort();
        while (len + ol > cap) acc = realloc(acc, cap *= 2);
        if (!acc) break;
        memcpy(acc + len, o, ol);
        len += ol;
    }
    tok_stream_free(s);
    *out = acc;
    return acc ? len : 0;
}

/* The stream must equal decode of the in-range ids whenever that is valid. */
static void check_stream(const tokenizer *t, const int32_t *ids, size_t n, int flags) {
    int32_t *in = malloc((n ? n : 1) * sizeof *in);
    size_t nin = 0;
    for (size_t k = 0; in && k < n; k++)
        if (ids[k] >= 0 && ids[k] < tok_n_vocab(t)) in[nin++] = ids[k];
    char *dec = NULL, *st = NULL;
    size_t dl = 0;
    if (!in || tok_decode(t, in, nin, flags, &dec, &dl, NULL)) abort();
    if (nin < n && tok_decode(t, ids, n, flags, &st, NULL, NULL) != INF_ERANGE) abort();
    size_t sl = stream(t, ids, n, flags, &st);
    if (utf8_ok(dec, dl) && (sl != dl || memcmp(st, dec, dl))) abort();
    free(st);
    free(dec);
    free(in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    int ti = data[0] % g_n, mode = data[1];
    const tokenizer *t = g_tok[ti];
    int flags = (mode & 8 ? TOK_DECODE_SPECIAL : 0) | (mode & 16 ? TOK_DECODE_STRIP_SPACE : 0);
    data += 2;
    size -= 2;
    if (mode & 4) { /* id mode */
        size_t n = size / 3;
        int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
        if (!ids) return 0;
        int64_t span = (int64_t)tok_n_vocab(t) + 16;
        for (size_t k = 0; k < n; k++) {
            const uint8_t *p = data + 3 * k;
            uint32_t v = p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16;
            ids[k] = p[2] == 0xFF ? (p[0] & 1 ? INT32_MAX : INT32_MIN) : (int32_t)(v % span) - 8;
        }
        check_stream(t, ids, n, flags);
        free(ids);
        return 0;
    }
    char *x = malloc(size ? size : 1);
    if (!x) return 0;
    if (size) memcpy(x, data, size);
    int32_t *ids = NULL;
    size_t ni = 0;
    inf_error err = {0};
    if (tok_encode(t, x, size, mode & 1, mode & 2, &ids, &ni, &err)) {
        fprintf(stderr, "encode failed: %s\n", err.msg);
        abort(); /* any bytes are text */
    }
    for (size_t k = 0; k < ni; k++)
        if (ids[k] < 0 || ids[k] >= tok_n_vocab(t)) abort();
    if (!(mode & 3)) { /* the round trip is defined for plain text only */
        char *back = NULL;
        size_t bl = 0;
        if (tok_decode(t, ids, ni, TOK_DECODE_STRIP_SPACE, &back, &bl, NULL)) abort();
        if (lossless(ti, x, size, ids, ni) && (bl != size || memcmp(back, x, size))) abort();
        free(back);
    }
    check_stream(t, ids, ni, flags);
    free(ids);
    free(x);
    return 0;
}
