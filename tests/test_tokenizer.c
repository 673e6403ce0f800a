/* test_tokenizer.c - tokenizer suite.
 *
 * Truth sources: llama.cpp's tokenizer test pairs in ../shared/models/vocab
 * (.inp/.out), llama.cpp's prompt ids and generated text for stories260K
 * (../shared/ref). The synthetic-vocabulary tests against naive reference
 * implementations (no shared data needed) are in test_tok_synth.c.
 */
#include <CUnit/CUnit.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "testutil.h"
#include "tokenizer.h"

/* ---- helpers ------------------------------------------------------------------ */

static tokenizer *load_tok(const char *path) {
    gguf_file *f = NULL;
    inf_error err = {0};
    if (gguf_open(&f, path, &err)) {
        fprintf(stderr, "\n  cannot open %s: %s\n", path, err.msg);
        return NULL;
    }
    tokenizer *t = NULL;
    if (tok_create(&t, f, &err)) fprintf(stderr, "\n  tok_create(%s): %s\n", path, err.msg);
    gguf_close(f); /* the tokenizer must not depend on the file */
    return t;
}

/* Independent UTF-8 validator: decodes code points and checks the ranges. */
static int utf8_ok(const char *p, size_t n) {
    const unsigned char *s = (const unsigned char *)p;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i], need, cp;
        if (c < 0x80) { i++; continue; }
        if ((c & 0xE0) == 0xC0) need = 1, cp = c & 0x1F;
        else if ((c & 0xF0) == 0xE0) need = 2, cp = c & 0x0F;
        else if ((c & 0xF8) == 0xF0) need = 3, cp = c & 0x07;
        else return 0;
        if (i + need >= n) return 0;
        for (unsigned k = 1; k <= need; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        static const unsigned minv[4] = {0, 0x80, 0x800, 0x10000};
        if (cp < minv[need] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
        i += need + 1;
    }
    return 1;
}

typedef struct vtests {
    char *inp;        /* whole .inp file */
    char *out;        /* whole .out file */
    char **str;       /* test strings (point into inp) */
    size_t *len;
    char **ids;       /* expected id lines (point into out) */
    size_t n;
} vtests;

static void vtests_free(vtests *v) {
    free(v->inp);
    free(v->out);
    free(v->str);
    free(v->len);
    free(v->ids);
}

/* .inp: strings each followed by "\n__ggml_vocab_test__\n"; .out: one line each. */
static int vtests_load(vtests *v, const char *inp_path, const char *out_path) {
    static const char sep[] = "\n__ggml_vocab_test__\n";
    memset(v, 0, sizeof *v);
    size_t ilen, olen;
    v->inp = tu_read_file(inp_path, &ilen);
    v->out = tu_read_file(out_path, &olen);
    if (!v->inp || !v->out) return -1;
    size_t cap = 64;
    v->str = malloc(cap * sizeof *v->str);
    v->len = malloc(cap * sizeof *v->len);
    char *p = v->inp, *end = v->inp + ilen;
    while (p < end) {
        char *q = memmem(p, (size_t)(end - p), sep, sizeof sep - 1);
        if (!q) break;
        if (v->n == cap) {
            cap *= 2;
            v->str = realloc(v->str, cap * sizeof *v->str);
            v->len = realloc(v->len, cap * sizeof *v->len);
        }
        v->str[v->n] = p;
        v->len[v->n] = (size_t)(q - p);
        v->n++;
        p = q + sizeof sep - 1;
    }
    v->ids = malloc((v->n + 1) * sizeof *v->ids);
    char *o = v->out;
    for (size_t i = 0; i < v->n; i++) {
        if (!o || o >= v->out + olen) return -1;
        v->ids[i] = o;
        char *nl = strchr(o, '\n');
        if (nl) *nl = '\0';
        o = nl ? nl + 1 : NULL;
    }
    return 0;
}

/* Parses a line of space-separated ids; returns the count (max cap). */
static size_t parse_ids(const char *line, int32_t *ids, size_t cap) {
    size_t n = 0;
    while (*line) {
        char *e;
        long v = strtol(line, &e, 10);
        if (e == line) break;
        if (n < cap) ids[n] = (int32_t)v;
        n++;
        line = e;
    }
    return n;
}

static void print_escaped(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n') fputs("\\n", stderr);
        else if (c == '\t') fputs("\\t", stderr);
        else if (c < 0x20) fprintf(stderr, "\\x%02x", c);
        else fputc(c, stderr);
    }
}

static void print_ids(const char *label, const int32_t *ids, size_t n) {
    fprintf(stderr, "    %s:", label);
    for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
    fputc('\n', stderr);
}

/* Sorted list of vocab files ggml-vocab-*.gguf in ../shared/models/vocab. */
static int list_vocabs(char names[][128], int cap) {
    const char *dir = tu_shared_file("models/vocab");
    if (!dir) return -1;
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < cap) {
        size_t l = strlen(e->d_name);
        if (strncmp(e->d_name, "ggml-vocab-", 11) == 0 && l > 5 && l < 120 &&
            strcmp(e->d_name + l - 5, ".gguf") == 0)
            snprintf(names[n++], 128, "%s", e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, 128, (int (*)(const void *, const void *))strcmp);
    return n;
}

static int vocab_model(const char *path, char *model, size_t cap) {
    gguf_file *f = NULL;
    if (gguf_open(&f, path, NULL)) return -1;
    int rc = gguf_get_cstr(f, "tokenizer.ggml.model", model, cap, NULL);
    gguf_close(f);
    return rc;
}

/* Runs fn over every llama/gpt2 vocabulary with its test strings. */
typedef void (*vocab_fn)(const char *name, tokenizer *t, const vtests *v);

static void for_each_vocab(vocab_fn fn) {
    char names[64][128];
    int n = list_vocabs(names, 64);
    if (n <= 0) {
        tu_skip("../shared/models/vocab is absent: llama.cpp vocabulary tests not run");
        return;
    }
    for (int i = 0; i < n; i++) {
        char rel[160], path[1200], inp[1300], out[1300], model[32];
        snprintf(rel, sizeof rel, "models/vocab/%.120s", names[i]);
        const char *full = tu_shared_file(rel);
        if (!full) continue;
        snprintf(path, sizeof path, "%s", full);
        if (vocab_model(path, model, sizeof model) != 0) {
            CU_FAIL("cannot read tokenizer.ggml.model of a vocabulary file");
            continue;
        }
        if (strcmp(model, "llama") != 0 && strcmp(model, "gpt2") != 0) continue;
        snprintf(inp, sizeof inp, "%s.inp", path);
        snprintf(out, sizeof out, "%s.out", path);
        vtests v;
        if (vtests_load(&v, inp, out) != 0) {
            CU_FAIL("cannot read a vocabulary's .inp/.out pair");
            vtests_free(&v);
            continue;
        }
        tokenizer *t = load_tok(path);
        CU_ASSERT_PTR_NOT_NULL(t);
        if (t) fn(names[i], t, &v);
        tok_free(t);
        vtests_free(&v);
    }
}

/* ---- llama.cpp reference pairs ------------------------------------------------- */

static void check_vocab(const char *name, tokenizer *t, const vtests *v) {
    size_t pass = 0;
    int32_t want[4096];
    for (size_t i = 0; i < v->n; i++) {
        size_t nw = parse_ids(v->ids[i], want, 4096);
        int32_t *got = NULL;
        size_t ng = 0;
        inf_error err = {0};
        int rc = tok_encode(t, v->str[i], v->len[i], 0, 0, &got, &ng, &err);
        int ok = rc == 0 && ng == nw && nw <= 4096 && (ng == 0 || !memcmp(got, want, ng * sizeof *got));
        if (ok) {
            pass++;
        } else {
            fprintf(stderr, "\n  %s #%zu mismatch (rc %d %s)\n    input: \"", name, i, rc, err.msg);
            print_escaped(v->str[i], v->len[i]);
            fputs("\"\n", stderr);
            print_ids("expected", want, nw < 4096 ? nw : 4096);
            print_ids("got     ", got, ng);
        }
        free(got);
    }
    fprintf(stderr, "\n  %-34s %zu/%zu lines match llama.cpp", name, pass, v->n);
    CU_ASSERT_EQUAL(pass, v->n);
    CU_ASSERT(v->n >= 40); /* the split must find every test string */
}

static void test_vocab_files(void) {
    for_each_vocab(check_vocab);
    fputc('\n', stderr);
}

/* decode(encode(x)) == x: byte-level BPE is lossless; SPM too once the
 * leading space it adds is stripped (these vocabularies have byte fallback). */
static void check_roundtrip(const char *name, tokenizer *t, const vtests *v) {
    size_t pass = 0;
    for (size_t i = 0; i < v->n; i++) {
        int32_t *ids = NULL;
        size_t n = 0;
        char *back = NULL;
        size_t blen = 0;
        CU_ASSERT_EQUAL_FATAL(tok_encode(t, v->str[i], v->len[i], 0, 0, &ids, &n, NULL), 0);
        CU_ASSERT_EQUAL(tok_decode(t, ids, n, TOK_DECODE_STRIP_SPACE, &back, &blen, NULL), 0);
        if (back && blen == v->len[i] && memcmp(back, v->str[i], blen) == 0) {
            pass++;
        } else {
            fprintf(stderr, "\n  %s round trip #%zu differs: \"", name, i);
            print_escaped(v->str[i], v->len[i]);
            fputs("\" -> \"", stderr);
            if (back) print_escaped(back, blen);
            fputs("\"\n", stderr);
        }
        free(ids);
        free(back);
    }
    CU_ASSERT_EQUAL(pass, v->n);
}

static void test_roundtrip(void) { for_each_vocab(check_roundtrip); }

/* Streaming: every chunk is complete UTF-8 and the chunks add up to decode(). */
static int g_held_seen; /* some token's bytes were held back (checks the test bites) */

static void check_stream(const char *name, tokenizer *t, const vtests *v) {
    tok_stream *s = NULL;
    CU_ASSERT_EQUAL_FATAL(tok_stream_create(&s, t, TOK_DECODE_STRIP_SPACE, NULL), 0);
    for (size_t i = 0; i < v->n; i++) {
        int32_t *ids = NULL;
        size_t n = 0;
        char *whole = NULL;
        size_t wlen = 0;
        CU_ASSERT_EQUAL_FATAL(tok_encode(t, v->str[i], v->len[i], 1, 0, &ids, &n, NULL), 0);
        CU_ASSERT_EQUAL(tok_decode(t, ids, n, TOK_DECODE_STRIP_SPACE, &whole, &wlen, NULL), 0);
        char *acc = malloc(4 * wlen + 16);
        size_t alen = 0;
        for (size_t k = 0; k < n; k++) {
            const char *o, *piece;
            size_t ol, pl;
            CU_ASSERT_EQUAL(tok_stream_push(s, ids[k], &o, &ol, NULL), 0);
            CU_ASSERT(utf8_ok(o, ol));
            tok_piece(t, ids[k], 0, &piece, &pl, NULL);
            if (pl > 0 && ol == 0) g_held_seen = 1;
            if (alen + ol <= 4 * wlen + 16) memcpy(acc + alen, o, ol);
            alen += ol;
        }
        const char *o;
        size_t ol;
        CU_ASSERT_EQUAL(tok_stream_finish(s, &o, &ol, NULL), 0);
        CU_ASSERT_EQUAL(ol, 0); /* input was valid UTF-8: nothing left over */
        int same = alen == wlen && memcmp(acc, whole, wlen) == 0;
        CU_ASSERT(same);
        if (!same) fprintf(stderr, "\n  %s stream #%zu differs from decode\n", name, i);
        free(acc);
        free(whole);
        free(ids);
    }
    tok_stream_free(s);
}

static void test_stream_vocabs(void) {
    g_held_seen = 0;
    for_each_vocab(check_stream);
    if (tu_shared_file("models/vocab")) CU_ASSERT(g_held_seen);
}

/* Byte tokens of a 4-byte emoji fed one by one: nothing until the last. */
static void test_stream_bytes(void) {
    const char *path = tu_shared_file("models/vocab/ggml-vocab-llama-spm.gguf");
    if (!path) {
        tu_skip("ggml-vocab-llama-spm.gguf is absent");
        return;
    }
    tokenizer *t = load_tok(path);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    tok_stream *s = NULL;
    CU_ASSERT_EQUAL_FATAL(tok_stream_create(&s, t, 0, NULL), 0);
    int32_t b[256];
    for (int i = 0; i < 256; i++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", i);
        b[i] = tok_find(t, name, 6);
        CU_ASSERT_EQUAL(tok_token_type(t, b[i]), TOK_TYPE_BYTE);
    }
    const char *o;
    size_t ol;
    /* U+1F999 = F0 9F A6 99 */
    const unsigned char emoji[4] = {0xF0, 0x9F, 0xA6, 0x99};
    for (int k = 0; k < 4; k++) {
        CU_ASSERT_EQUAL(tok_stream_push(s, b[emoji[k]], &o, &ol, NULL), 0);
        if (k < 3) CU_ASSERT_EQUAL(ol, 0);
    }
    CU_ASSERT(ol == 4 && memcmp(o, emoji, 4) == 0);
    /* ASCII passes straight through, also right after a completed character */
    CU_ASSERT_EQUAL(tok_stream_push(s, b['A'], &o, &ol, NULL), 0);
    CU_ASSERT(ol == 1 && o[0] == 'A');
    /* F0 then 'A': F0 is an invalid subpart -> U+FFFD, then 'A' */
    tok_stream_push(s, b[0xF0], &o, &ol, NULL);
    CU_ASSERT_EQUAL(ol, 0);
    tok_stream_push(s, b['A'], &o, &ol, NULL);
    CU_ASSERT(ol == 4 && memcmp(o, "\xEF\xBF\xBD" "A", 4) == 0);
    /* lone continuation byte */
    tok_stream_push(s, b[0x80], &o, &ol, NULL);
    CU_ASSERT(ol == 3 && memcmp(o, "\xEF\xBF\xBD", 3) == 0);
    /* E0 80: overlong start -> two replacement characters (Unicode's practice) */
    tok_stream_push(s, b[0xE0], &o, &ol, NULL);
    CU_ASSERT_EQUAL(ol, 0);
    tok_stream_push(s, b[0x80], &o, &ol, NULL);
    CU_ASSERT(ol == 6 && memcmp(o, "\xEF\xBF\xBD\xEF\xBF\xBD", 6) == 0);
    /* a truncated euro sign (E2 82 ..) at the end flushes as one U+FFFD */
    tok_stream_push(s, b[0xE2], &o, &ol, NULL);
    tok_stream_push(s, b[0x82], &o, &ol, NULL);
    CU_ASSERT_EQUAL(ol, 0);
    CU_ASSERT_EQUAL(tok_stream_finish(s, &o, &ol, NULL), 0);
    CU_ASSERT(ol == 3 && memcmp(o, "\xEF\xBF\xBD", 3) == 0);
    /* a normal piece completing a held lead byte: C3 + "\xA9" is é; here the
     * continuation arrives inside a multi-byte piece of a real token */
    tok_stream_push(s, b[0xC3], &o, &ol, NULL);
    CU_ASSERT_EQUAL(ol, 0);
    tok_stream_push(s, b[0xA9], &o, &ol, NULL);
    CU_ASSERT(ol == 2 && memcmp(o, "\xC3\xA9", 2) == 0);
    /* out-of-range ids are refused */
    inf_error err = {0};
    CU_ASSERT_EQUAL(tok_stream_push(s, tok_n_vocab(t), &o, &ol, &err), INF_ERANGE);
    tok_stream_free(s);
    tok_free(t);
}

/* ---- properties over random bytes --------------------------------------------- */

/* Length of the valid UTF-8 character at s[0..n), 0 if there is none: the
 * shortest prefix utf8_ok accepts is exactly one character. */
static size_t first_char(const unsigned char *s, size_t n) {
    for (size_t k = 1; k <= 4 && k <= n; k++)
        if (utf8_ok((const char *)s, k)) return k;
    return 0;
}

/* Whether s[0..m) begins some valid character longer than m (brute force:
 * try every second byte, pad with 0x80), so the oracle below shares no code
 * with tok_stream.c. */
static int char_prefix(const unsigned char *s, size_t m) {
    for (unsigned x = 0x80; x <= 0xBF; x++) {
        unsigned char b[4] = {0x80, (unsigned char)x, 0x80, 0x80};
        memcpy(b, s, m);
        if (first_char(b, 4) > m) return 1;
        if (m > 1) break; /* the second byte is given: nothing else to try */
    }
    return 0;
}

/* Expected repair of arbitrary bytes. per_byte: every byte outside a valid
 * character becomes U+FFFD (BPE's input rule); else one U+FFFD per maximal
 * invalid subpart (Unicode's practice; tok_stream). Returns the length. */
static size_t utf8_repair(const char *in, size_t n, int per_byte, char *out) {
    const unsigned char *s = (const unsigned char *)in;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t k = first_char(s + i, n - i);
        if (k) {
            memcpy(out + o, s + i, k);
            o += k;
            i += k;
            continue;
        }
        size_t m = 1;
        while (!per_byte && m < 3 && i + m < n && char_prefix(s + i, m + 1)) m++;
        memcpy(out + o, "\xEF\xBF\xBD", 3);
        o += 3;
        i += m;
    }
    return o;
}

/* Random text built from pieces that hit the tokenizers' edge cases: spaces
 * (SPM escapes them to 3 bytes), multi-byte characters and, with raw set,
 * stray and truncated sequences, lead bytes right before a space (the SPM
 * overflow), surrogates, overlongs, bytes never valid in UTF-8. */
static size_t rand_text(uint64_t *rng, char *buf, size_t cap, int raw) {
    static const char *const ok[] = {"a", "Z", "7", " ", "  ", "\n", "\t", ".", "'s", "\xC3\xA9",
                                     "\xE2\x82\xAC", "\xF0\x9F\x98\x80", "\xE4\xB8\xAD", "Hello",
                                     "<", "|", "\r\n", "42", "\xD0\xAF",
                                     "\xF1\xA9\xA9\xA9" /* refact has no F1 token (fuzz) */};
    static const char *const bad[] = {"\xC3", "\xC3 ", "\xE2\x82", "\xF0\x9F\x98", "\x80", "\xBF",
                                      "\xFF", "\xC0\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80",
                                      "\xE2\x96", "\xF0 "};
    size_t n = 0, pieces = tu_rand_u64(rng) % 24;
    for (size_t p = 0; p < pieces; p++) {
        uint64_t r = tu_rand_u64(rng);
        char one[2] = {(char)(r >> 8), 0};
        const char *pc = !raw || r % 3 ? ok[(r >> 16) % (sizeof ok / sizeof *ok)]
                         : r % 2       ? bad[(r >> 16) % (sizeof bad / sizeof *bad)]
                                       : one;
        size_t pl = pc == one ? 1 : strlen(pc);
        if (n + pl > cap) break;
        memcpy(buf + n, pc, pl);
        n += pl;
    }
    return n;
}

/* Stream output of ids, concatenated; returns 0 or the first error code.
 * Every chunk must be valid UTF-8. */
static int stream_all(const tokenizer *t, const int32_t *ids, size_t n, int flags, char *acc,
                      size_t *alen) {
    tok_stream *s = NULL;
    int rc = tok_stream_create(&s, t, flags, NULL);
    *alen = 0;
    for (size_t k = 0; !rc && k <= n; k++) {
        const char *o;
        size_t ol;
        int r = k < n ? tok_stream_push(s, ids[k], &o, &ol, NULL) : tok_stream_finish(s, &o, &ol, NULL);
        int in_range = k == n || (ids[k] >= 0 && ids[k] < tok_n_vocab(t));
        if (r != (in_range ? 0 : INF_ERANGE)) rc = r ? r : INF_EINVAL;
        if (!utf8_ok(o, ol)) rc = INF_EFORMAT;
        memcpy(acc + *alen, o, ol);
        *alen += ol;
    }
    tok_stream_free(s);
    return rc;
}

static int g_props_failed;

/* Reports input x (and the output y, when there is one). */
static void prop_fail(const char *name, const char *what, const char *x, size_t n, const char *y,
                      size_t yn) {
    if (g_props_failed++ < 8) {
        fprintf(stderr, "\n  %s: %s for \"", name, what);
        print_escaped(x, n);
        fputs(y ? "\" -> \"" : "", stderr);
        if (y) print_escaped(y, yn);
        fputs("\"\n", stderr);
    }
}

/* For one tokenizer and many random texts: encode never fails and yields ids
 * in range (every special-token mode); decode(encode(x)) == x where the
 * tokenizer is lossless (SPM with byte fallback: any bytes without U+2581;
 * BPE: each bad byte reads as U+FFFD, and a byte with no token is dropped, as
 * llama.cpp does: falcon and refact lack some); the stream equals the
 * repaired decode; random id sequences (out of range too) stream safely. */
static void check_props(const char *name, const tokenizer *t, uint64_t seed) {
    enum { CAP = 160, OUT = 4 * CAP * 8 };
    static char x[CAP], want[3 * CAP + 8], got[OUT], rep[3 * OUT];
    uint64_t rng = seed;
    int spm = tok_model_kind(t) == TOK_MODEL_SPM;
    /* BPE bytes without a token: by GPT-2's bytes_to_unicode, printable
     * Latin-1 bytes are themselves, the others 256, 257, ... in order */
    char dropped[256] = {0};
    for (int b = 0, next = 256; b < 256 && !spm; b++) {
        int cp = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE ? b : next++;
        char u[2] = {(char)(cp < 0x80 ? cp : 0xC0 | cp >> 6), (char)(0x80 | (cp & 0x3F))};
        dropped[b] = tok_find(t, u, cp < 0x80 ? 1 : 2) < 0;
    }
    for (int iter = 0; iter < 400; iter++) {
        size_t n = rand_text(&rng, x, CAP, iter % 2);
        int32_t *ids = NULL;
        size_t ni = 0;
        for (int mode = 0; mode < 4; mode++) {
            if (tok_encode(t, x, n, mode & 1, mode >> 1, &ids, &ni, NULL) != 0) {
                prop_fail(name, "encode failed", x, n, NULL, 0);
                break;
            }
            for (size_t k = 0; k < ni; k++)
                if (ids[k] < 0 || ids[k] >= tok_n_vocab(t))
                    prop_fail(name, "id out of range", x, n, NULL, 0);
            free(ids);
        }
        CU_ASSERT_EQUAL_FATAL(tok_encode(t, x, n, 0, 0, &ids, &ni, NULL), 0);
        char *back = NULL;
        size_t blen = 0;
        CU_ASSERT_EQUAL_FATAL(tok_decode(t, ids, ni, TOK_DECODE_STRIP_SPACE, &back, &blen, NULL), 0);
        size_t wl = spm ? n : utf8_repair(x, n, 1, want), kept = 0;
        if (spm) memcpy(want, x, n);
        for (size_t k = 0; k < wl; k++) /* BPE maps the repaired text byte by byte */
            if (!dropped[(unsigned char)want[k]]) want[kept++] = want[k];
        wl = kept;
        if ((!spm || !memmem(x, n, "\xE2\x96\x81", 3)) && (blen != wl || memcmp(back, want, wl)))
            prop_fail(name, "decode(encode(x)) != x", x, n, back, blen);
        size_t gl, rl = blen < CAP * 8 ? utf8_repair(back, blen, 0, rep) : 0;
        if (blen < CAP * 8 && (stream_all(t, ids, ni, TOK_DECODE_STRIP_SPACE, got, &gl) != 0 ||
                               gl != rl || memcmp(got, rep, rl)))
            prop_fail(name, "stream != repaired decode", x, n, got, gl);
        free(back);
        free(ids);

        /* random ids: mostly byte/short tokens, some anywhere, some out of range */
        int32_t rid[24], in[24];
        size_t nr = tu_rand_u64(&rng) % 24, nin = 0;
        for (size_t k = 0; k < nr; k++) {
            uint64_t r = tu_rand_u64(&rng);
            rid[k] = r % 7 == 0 ? (int32_t)(r >> 32) : r % 7 == 1 ? tok_n_vocab(t) + (int32_t)(r % 3)
                   : (int32_t)((r >> 8) % (uint64_t)(r % 2 ? 300 : tok_n_vocab(t)));
            if (rid[k] >= 0 && rid[k] < tok_n_vocab(t)) in[nin++] = rid[k];
        }
        int flags = iter % 3 == 0 ? 0 : iter % 3 == 1 ? TOK_DECODE_SPECIAL : TOK_DECODE_STRIP_SPACE;
        CU_ASSERT_EQUAL_FATAL(tok_decode(t, in, nin, flags, &back, &blen, NULL), 0);
        rl = blen < CAP * 8 ? utf8_repair(back, blen, 0, rep) : 0;
        if (blen < CAP * 8 && (stream_all(t, rid, nr, flags, got, &gl) != 0 || gl != rl || memcmp(got, rep, rl)))
            prop_fail(name, "stream of random ids != repaired decode", back, blen, got, gl);
        free(back);
    }
}

/* Every vocabulary in ../shared/models/vocab and stories260K. Unsupported
 * kinds (bert) must be refused cleanly. */
static void test_props(void) {
    char names[64][128];
    int n = list_vocabs(names, 64);
    const char *stories = tu_shared_file("models/stories260K.gguf");
    if (n <= 0 && !stories) {
        tu_skip("../shared/models is absent: tokenizer property tests not run");
        return;
    }
    g_props_failed = 0;
    int checked = 0;
    for (int i = 0; i <= n; i++) {
        char rel[160], path[1200];
        snprintf(rel, sizeof rel, "models/vocab/%.120s", i < n ? names[i] : "");
        const char *full = i < n ? tu_shared_file(rel) : stories;
        if (!full) continue;
        snprintf(path, sizeof path, "%s", full);
        gguf_file *f = NULL;
        inf_error err = {0};
        CU_ASSERT_EQUAL_FATAL(gguf_open(&f, path, &err), 0);
        tokenizer *t = NULL;
        int rc = tok_create(&t, f, &err);
        gguf_close(f);
        if (rc) { /* only the unsupported kind may fail, with a message naming it */
            CU_ASSERT_EQUAL(rc, INF_EUNSUPPORTED);
            CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "not supported"));
            continue;
        }
        check_props(i < n ? names[i] : "stories260K.gguf", t, 0x5eed0000u + (uint64_t)i);
        tok_free(t);
        checked++;
    }
    fprintf(stderr, "\n  %d tokenizers, 400 random texts each", checked);
    CU_ASSERT(checked >= 1);
    CU_ASSERT_EQUAL(g_props_failed, 0);
}

/* issue 11: an invalid lead byte before a space swallowed part of the escaped
 * space and split the rest into more symbols than input bytes (heap overflow).
 * Stray bytes are single byte-fallback symbols; the spaces still merge. */
static void test_spm_stray_lead(void) {
    const char *path = tu_shared_file("models/stories260K.gguf");
    if (!path) {
        tu_skip("stories260K.gguf is absent");
        return;
    }
    tokenizer *t = load_tok(path);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    static const char x[] = "a\xC3 b\xC3 c\xC3 d\xC3 e";
    int32_t *ids = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL_FATAL(tok_encode(t, x, sizeof x - 1, 1, 0, &ids, &n, NULL), 0);
    int32_t c3 = tok_find(t, "<0xC3>", 6), sp_b = tok_find(t, "\xE2\x96\x81" "b", 4);
    size_t n_c3 = 0, n_spb = 0;
    for (size_t k = 0; k < n; k++) {
        n_c3 += ids[k] == c3;
        n_spb += ids[k] == sp_b;
    }
    CU_ASSERT_EQUAL(n_c3, 4);
    if (sp_b >= 0) CU_ASSERT_EQUAL(n_spb, 1); /* "▁b" is whole again, not E2 96 81 bytes */
    char *back = NULL;
    size_t bl = 0;
    CU_ASSERT_EQUAL(tok_decode(t, ids, n, TOK_DECODE_STRIP_SPACE, &back, &bl, NULL), 0);
    CU_ASSERT(bl == sizeof x - 1 && memcmp(back, x, bl) == 0);
    free(back);
    free(ids);
    tok_free(t);
}

/* ---- special tokens ------------------------------------------------------------ */

static void test_parse_special(void) {
    const char *path = tu_shared_file("models/vocab/ggml-vocab-llama-spm.gguf");
    if (!path) {
        tu_skip("ggml-vocab-llama-spm.gguf is absent");
        return;
    }
    char inp[1200], out[1200];
    snprintf(inp, sizeof inp, "%s.inp", path);
    snprintf(out, sizeof out, "%s.out", path);
    vtests v;
    CU_ASSERT_EQUAL_FATAL(vtests_load(&v, inp, out), 0);
    int32_t hello[64];
    size_t nh = 0;
    for (size_t i = 0; i < v.n; i++)
        if (v.len[i] == 5 && memcmp(v.str[i], "Hello", 5) == 0) nh = parse_ids(v.ids[i], hello, 64);
    CU_ASSERT_FATAL(nh > 0 && nh < 60);
    tokenizer *t = load_tok(path);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT_EQUAL(tok_bos(t), 1);
    CU_ASSERT_EQUAL(tok_eos(t), 2);
    CU_ASSERT(tok_add_bos(t));

    /* "<s>Hello</s>" with special parsing: BOS, the ids of "Hello" (a space
     * prefix follows a special token, as at the start), EOS */
    const char *txt = "<s>Hello</s>";
    int32_t *ids = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL_FATAL(tok_encode(t, txt, strlen(txt), 0, 1, &ids, &n, NULL), 0);
    CU_ASSERT_EQUAL(n, nh + 2);
    if (n == nh + 2) {
        CU_ASSERT_EQUAL(ids[0], 1);
        CU_ASSERT(memcmp(ids + 1, hello, nh * sizeof *ids) == 0);
        CU_ASSERT_EQUAL(ids[n - 1], 2);
    }
    char *back = NULL;
    CU_ASSERT_EQUAL(tok_decode(t, ids, n, TOK_DECODE_SPECIAL, &back, NULL, NULL), 0);
    CU_ASSERT_STRING_EQUAL(back, "<s> Hello</s>");
    free(back);
    CU_ASSERT_EQUAL(tok_decode(t, ids, n, TOK_DECODE_STRIP_SPACE, &back, NULL, NULL), 0);
    CU_ASSERT_STRING_EQUAL(back, "Hello"); /* control tokens decode to nothing */
    free(back);
    free(ids);

    /* without special parsing the same text is plain text */
    CU_ASSERT_EQUAL_FATAL(tok_encode(t, txt, strlen(txt), 1, 0, &ids, &n, NULL), 0);
    CU_ASSERT(n > 4 && ids[0] == 1);
    for (size_t i = 1; i < n; i++) CU_ASSERT(ids[i] != 1 && ids[i] != 2);
    CU_ASSERT_EQUAL(tok_decode(t, ids, n, TOK_DECODE_STRIP_SPACE, &back, NULL, NULL), 0);
    CU_ASSERT_STRING_EQUAL(back, txt);
    free(back);
    free(ids);

    /* empty text: only BOS with add_special, nothing without */
    CU_ASSERT_EQUAL(tok_encode(t, "", 0, 1, 1, &ids, &n, NULL), 0);
    CU_ASSERT(n == 1 && ids[0] == 1);
    free(ids);
    CU_ASSERT_EQUAL(tok_encode(t, "", 0, 0, 1, &ids, &n, NULL), 0);
    CU_ASSERT_EQUAL(n, 0);
    free(ids);
    tok_free(t);
    vtests_free(&v);
}

/* ---- stories260K against llama.cpp's server ------------------------------------ */

/* Decodes a JSON string literal starting at p (at the quote) into out. */
static size_t json_str(const char *p, char *out, size_t cap) {
    size_t n = 0;
    if (*p++ != '"') return 0;
    while (*p && *p != '"' && n + 4 < cap) {
        if (*p != '\\') {
            out[n++] = *p++;
            continue;
        }
        p++;
        char c = *p++;
        switch (c) {
        case 'n': out[n++] = '\n'; break;
        case 't': out[n++] = '\t'; break;
        case 'r': out[n++] = '\r'; break;
        case 'b': out[n++] = '\b'; break;
        case 'f': out[n++] = '\f'; break;
        case 'u': {
            unsigned cp = (unsigned)strtoul((char[5]){p[0], p[1], p[2], p[3], 0}, NULL, 16);
            p += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && p[0] == '\\' && p[1] == 'u') {
                unsigned lo = (unsigned)strtoul((char[5]){p[2], p[3], p[4], p[5], 0}, NULL, 16);
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                p += 6;
            }
            if (cp < 0x80) out[n++] = (char)cp;
            else if (cp < 0x800) {
                out[n++] = (char)(0xC0 | cp >> 6);
                out[n++] = (char)(0x80 | (cp & 0x3F));
            } else if (cp < 0x10000) {
                out[n++] = (char)(0xE0 | cp >> 12);
                out[n++] = (char)(0x80 | (cp >> 6 & 0x3F));
                out[n++] = (char)(0x80 | (cp & 0x3F));
            } else {
                out[n++] = (char)(0xF0 | cp >> 18);
                out[n++] = (char)(0x80 | (cp >> 12 & 0x3F));
                out[n++] = (char)(0x80 | (cp >> 6 & 0x3F));
                out[n++] = (char)(0x80 | (cp & 0x3F));
            }
            break;
        }
        default: out[n++] = c; break;
        }
    }
    out[n] = '\0';
    return n;
}

static void test_stories(void) {
    const char *path = tu_shared_file("models/stories260K.gguf");
    if (!path) {
        tu_skip("stories260K.gguf is absent");
        return;
    }
    tokenizer *t = load_tok(path);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT_EQUAL(tok_n_vocab(t), 512);
    CU_ASSERT_EQUAL(tok_model_kind(t), TOK_MODEL_SPM);
    CU_ASSERT(tok_add_bos(t)); /* no add_bos key: SPM adds BOS, as llama.cpp */
    CU_ASSERT_EQUAL(tok_pad(t), -1); /* 0xFFFFFFFF means none */
    int32_t *ids = NULL;
    size_t n = 0;
    static const int32_t want[] = {1, 403, 407, 261, 378};
    CU_ASSERT_EQUAL_FATAL(tok_encode(t, "Once upon a time", 16, 1, 0, &ids, &n, NULL), 0);
    CU_ASSERT(n == 5 && memcmp(ids, want, sizeof want) == 0);
    free(ids);

    const char *tsv = tu_shared_file("ref/stories260K_greedy.tsv");
    if (!tsv) {
        tu_skip("ref/stories260K_greedy.tsv is absent");
        tok_free(t);
        return;
    }
    char *all = tu_read_file(tsv, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(all);
    int rows = 0;
    char *save = NULL;
    for (char *line = strtok_r(all, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] != '"') continue; /* comment and header */
        char *col[7] = {0};
        int nc = 0;
        for (char *c = line; c && nc < 7; nc++) {
            col[nc] = c;
            c = strchr(c, '\t');
            if (c) *c++ = '\0';
        }
        if (nc < 5) continue;
        static char prompt[8192], text[8192];
        int32_t pids[2048], gids[256];
        size_t plen = json_str(col[0], prompt, sizeof prompt);
        size_t np = parse_ids(col[2], pids, 2048), ng = parse_ids(col[3], gids, 256);
        json_str(col[4], text, sizeof text);
        CU_ASSERT_EQUAL_FATAL(tok_encode(t, prompt, plen, 1, 1, &ids, &n, NULL), 0);
        int ok = n == np && memcmp(ids, pids, n * sizeof *ids) == 0;
        CU_ASSERT(ok);
        if (!ok) {
            fprintf(stderr, "\n  stories prompt \"%s\"\n", prompt);
            print_ids("expected", pids, np);
            print_ids("got     ", ids, n);
        }
        free(ids);
        /* the server's generated text is the plain concatenation of pieces */
        char *dec = NULL;
        CU_ASSERT_EQUAL(tok_decode(t, gids, ng, 0, &dec, NULL, NULL), 0);
        CU_ASSERT_STRING_EQUAL(dec, text);
        free(dec);
        rows++;
    }
    CU_ASSERT_EQUAL(rows, 8);
    free(all);
    tok_free(t);
}


void test_register_tokenizer(void) {
    CU_pSuite s = CU_add_suite("tokenizer", NULL, NULL);
    CU_add_test(s, "llama.cpp vocab test pairs", test_vocab_files);
    CU_add_test(s, "round trip decode(encode(x))", test_roundtrip);
    CU_add_test(s, "stream equals decode, valid UTF-8", test_stream_vocabs);
    CU_add_test(s, "stream holds split characters", test_stream_bytes);
    CU_add_test(s, "parse_special <s> </s>", test_parse_special);
    CU_add_test(s, "stories260K prompts and text", test_stories);
    CU_add_test(s, "SPM stray lead byte before a space", test_spm_stray_lead);
    CU_add_test(s, "properties over random bytes, every vocabulary", test_props);
}
