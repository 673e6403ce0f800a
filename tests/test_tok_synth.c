/* test_tok_synth.c - tokenizer tests that need no shared data: small
 * synthetic vocabularies written with the GGUF writer, tokenized by the
 * module and by naive O(n^2) reference implementations of SPM (best score
 * first) and BPE (lowest rank first, gpt-2 split) written here from the
 * algorithms' definitions; plus the error paths of tok_create.
 */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "testutil.h"
#include "tokenizer.h"

static void print_ids(const char *label, const int32_t *ids, size_t n) {
    fprintf(stderr, "    %s:", label);
    for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
    fputc('\n', stderr);
}

/* Writes a tokenizer-only GGUF. */
static int write_vocab(const char *path, const char *model, const char *pre, const char **toks,
                       size_t n, const float *scores, const int32_t *types, const char **merges,
                       size_t nm) {
    gguf_writer *w = gguf_writer_new();
    if (!w) return -1;
    uint64_t lens[512];
    gguf_writer_set_str(w, "general.architecture", "llama");
    gguf_writer_set_str(w, "tokenizer.ggml.model", model);
    if (pre) gguf_writer_set_str(w, "tokenizer.ggml.pre", pre);
    for (size_t i = 0; i < n; i++) lens[i] = strlen(toks[i]);
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, lens, n);
    if (scores) gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_VT_FLOAT32, scores, n);
    if (types) gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_VT_INT32, types, n);
    if (merges) {
        for (size_t i = 0; i < nm; i++) lens[i] = strlen(merges[i]);
        gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", merges, lens, nm);
    }
    inf_error err = {0};
    int rc = gguf_writer_write(w, path, &err);
    if (rc) fprintf(stderr, "\n  writing %s: %s\n", path, err.msg);
    gguf_writer_free(w);
    return rc;
}

static int open_synth(const char *path, int flags, tokenizer **t, inf_error *err) {
    gguf_file *f = NULL;
    int rc = gguf_open(&f, path, err);
    if (rc) return rc;
    rc = tok_create_ex(t, f, flags, err);
    gguf_close(f);
    return rc;
}

#define SP "\xe2\x96\x81" /* U+2581 */

/* SPM reference: merge the best-scoring adjacent pair (leftmost on ties) that
 * forms a vocabulary piece until none does; unknown symbols become bytes. */
static size_t naive_spm(const char **toks, const float *scores, size_t nt, const char *text,
                        int32_t *out) {
    char e[1024];
    size_t el = 0, st[300], ln[300], ns = 0, no = 0;
    memcpy(e, SP, 3);
    el = 3;
    for (const char *p = text; *p; p++) {
        if (*p == ' ') {
            memcpy(e + el, SP, 3);
            el += 3;
        } else {
            e[el++] = *p;
        }
    }
    for (size_t i = 0; i < el;) {
        unsigned char c = (unsigned char)e[i];
        size_t l = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
        st[ns] = i;
        ln[ns++] = l;
        i += l;
    }
    for (;;) {
        long best = -1;
        float bs = 0;
        for (size_t i = 0; i + 1 < ns; i++) {
            size_t l = ln[i] + ln[i + 1];
            for (size_t k = 0; k < nt; k++) {
                if (strlen(toks[k]) == l && memcmp(toks[k], e + st[i], l) == 0) {
                    if (best < 0 || scores[k] > bs) best = (long)i, bs = scores[k];
                    break;
                }
            }
        }
        if (best < 0) break;
        ln[best] += ln[best + 1];
        memmove(st + best + 1, st + best + 2, (ns - best - 2) * sizeof *st);
        memmove(ln + best + 1, ln + best + 2, (ns - best - 2) * sizeof *ln);
        ns--;
    }
    for (size_t i = 0; i < ns; i++) {
        long id = -1;
        for (size_t k = 0; k < nt && id < 0; k++)
            if (strlen(toks[k]) == ln[i] && memcmp(toks[k], e + st[i], ln[i]) == 0) id = (long)k;
        if (id >= 0) {
            out[no++] = (int32_t)id;
        } else {
            for (size_t b = 0; b < ln[i]; b++) out[no++] = 3 + (unsigned char)e[st[i] + b];
        }
    }
    return no;
}

static void random_text(uint64_t *rng, const char *const *alpha, size_t na, char *buf, size_t maxlen) {
    size_t n = (size_t)(tu_rand_u64(rng) % maxlen), o = 0;
    for (size_t i = 0; i < n; i++) {
        const char *a = alpha[tu_rand_u64(rng) % na];
        memcpy(buf + o, a, strlen(a));
        o += strlen(a);
    }
    buf[o] = '\0';
}

static void test_synth_spm(void) {
    static const char *pieces[] = {SP, "a", "b", "c", "ab", "bc", "ca", "abc", SP "a", SP "ab",
                                   SP "b", "bb", "cab", SP SP, "aa", "bca", SP SP SP};
    size_t np = sizeof pieces / sizeof pieces[0], nt = 3 + 256 + np;
    const char *toks[3 + 256 + 32];
    char bytes[256][8];
    float scores[3 + 256 + 32];
    int32_t types[3 + 256 + 32];
    toks[0] = "<unk>", toks[1] = "<s>", toks[2] = "</s>";
    types[0] = TOK_TYPE_UNKNOWN, types[1] = types[2] = TOK_TYPE_CONTROL;
    for (int b = 0; b < 256; b++) {
        snprintf(bytes[b], 8, "<0x%02X>", b);
        toks[3 + b] = bytes[b];
        types[3 + b] = TOK_TYPE_BYTE;
    }
    for (size_t i = 0; i < nt; i++) scores[i] = 0;
    uint64_t rng = 42;
    for (int round = 0; round < 4; round++) {
        /* small integer scores make ties common, exercising the leftmost rule */
        for (size_t i = 0; i < np; i++) {
            toks[259 + i] = pieces[i];
            types[259 + i] = TOK_TYPE_NORMAL;
            scores[259 + i] = (float)(-(int)(tu_rand_u64(&rng) % 4));
        }
        const char *path = tu_tmpfile("synth-spm.gguf");
        CU_ASSERT_EQUAL_FATAL(write_vocab(path, "llama", NULL, toks, nt, scores, types, NULL, 0), 0);
        tokenizer *t = NULL;
        inf_error err = {0};
        CU_ASSERT_EQUAL_FATAL(open_synth(path, 0, &t, &err), 0);
        static const char *const alpha[] = {"a", "b", "c", " ", "\xc3\xa9", "x"};
        for (int k = 0; k < 150; k++) {
            char text[256];
            random_text(&rng, alpha, 6, text, 40);
            int32_t want[1024], *got = NULL;
            size_t nw = *text ? naive_spm(toks, scores, nt, text, want) : 0, ng = 0;
            CU_ASSERT_EQUAL_FATAL(tok_encode(t, text, strlen(text), 0, 0, &got, &ng, NULL), 0);
            int ok = ng == nw && (nw == 0 || memcmp(got, want, nw * sizeof *got) == 0);
            CU_ASSERT(ok);
            if (!ok) {
                fprintf(stderr, "\n  SPM \"%s\"\n", text);
                print_ids("naive", want, nw);
                print_ids("got  ", got, ng);
            }
            char *back = NULL;
            CU_ASSERT_EQUAL(tok_decode(t, got, ng, TOK_DECODE_STRIP_SPACE, &back, NULL, NULL), 0);
            CU_ASSERT_STRING_EQUAL(back, text);
            free(back);
            free(got);
        }
        tok_free(t);
    }
}

/* GPT-2's byte-to-code-point table, written out independently. */
static unsigned gpt2_cp(unsigned b) {
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) return b;
    unsigned n = 0;
    for (unsigned x = 0; x < b; x++)
        if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255))) n++;
    return 256 + n;
}

static size_t cp_utf8(unsigned cp, char *o) {
    if (cp < 0x80) return o[0] = (char)cp, 1;
    o[0] = (char)(0xC0 | cp >> 6);
    o[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
}

static long find_str(const char **list, size_t n, const char *s, size_t len) {
    for (size_t k = 0; k < n; k++)
        if (strlen(list[k]) == len && memcmp(list[k], s, len) == 0) return (long)k;
    return -1;
}

/* BPE reference for texts over {a,b,c,space} with the gpt-2 split. */
static size_t naive_bpe(const char **toks, size_t nt, const char **merges, size_t nm,
                        const char *text, int32_t *out) {
    size_t n = strlen(text), no = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        if (text[i] != ' ') {
            while (j < n && text[j] != ' ') j++;
        } else if (i + 1 < n && text[i + 1] != ' ') {
            j = i + 1;
            while (j < n && text[j] != ' ') j++;
        } else {
            while (j < n && text[j] == ' ') j++;
            if (j < n) j--; /* \s+(?!\S): leave the last space to the word */
        }
        /* symbols: mapped characters of text[i..j) */
        char sym[128][64];
        size_t ns = 0;
        for (size_t k = i; k < j; k++) {
            size_t l = cp_utf8(gpt2_cp((unsigned char)text[k]), sym[ns]);
            sym[ns++][l] = '\0';
        }
        for (;;) {
            long best = -1, br = 0;
            for (size_t k = 0; k + 1 < ns; k++) {
                char m[160];
                snprintf(m, sizeof m, "%.63s %.63s", sym[k], sym[k + 1]);
                long r = find_str(merges, nm, m, strlen(m));
                if (r >= 0 && (best < 0 || r < br)) best = (long)k, br = r;
            }
            if (best < 0) break;
            size_t bl = strlen(sym[best]), rl = strlen(sym[best + 1]);
            memcpy(sym[best] + bl, sym[best + 1], rl + 1);
            memmove(sym + best + 1, sym + best + 2, (ns - best - 2) * sizeof sym[0]);
            ns--;
        }
        for (size_t k = 0; k < ns; k++) {
            long id = find_str(toks, nt, sym[k], strlen(sym[k]));
            if (id >= 0) {
                out[no++] = (int32_t)id;
                continue;
            }
            for (size_t b = 0; sym[k][b]; b++) {
                long bid = find_str(toks, nt, sym[k] + b, 1);
                if (bid >= 0) out[no++] = (int32_t)bid;
            }
        }
        i = j;
    }
    return no;
}

#define G "\xc4\xa0" /* mapped space, U+0120 */

static int make_bpe(const char *path, const char *model, const char *pre, const char ***toks_out,
                    size_t *nt_out, const char **merges, size_t nm) {
    static char bytes[256][4];
    static const char *toks[300];
    size_t nt = 0;
    for (unsigned b = 0; b < 256; b++) {
        size_t l = cp_utf8(gpt2_cp(b), bytes[b]);
        bytes[b][l] = '\0';
        toks[nt++] = bytes[b];
    }
    /* every merge result is a token except "cc" (a merge whose result is not
     * in the vocabulary can still be merged further) */
    static char res[64][32];
    for (size_t i = 0; i < nm; i++) {
        const char *sp = strchr(merges[i], ' ');
        snprintf(res[i], 32, "%.*s%s", (int)(sp - merges[i]), merges[i], sp + 1);
        if (strcmp(res[i], "cc") != 0 && find_str(toks, nt, res[i], strlen(res[i])) < 0)
            toks[nt++] = res[i];
    }
    toks[nt++] = "<|endoftext|>";
    *toks_out = toks;
    *nt_out = nt;
    int32_t types[300];
    for (size_t i = 0; i < nt; i++) types[i] = TOK_TYPE_NORMAL;
    types[nt - 1] = TOK_TYPE_CONTROL;
    return write_vocab(path, model, pre, toks, nt, NULL, types, nm ? merges : NULL, nm);
}

static const char *k_merges[] = {"a b", "b c", "ab c", G " a", G "a b", "c a", G " " G, "a a",
                                 "c c", "cc a", "b b", G " b", "bc a", "a bc", G "ab c"};

static void test_synth_bpe(void) {
    size_t nm = sizeof k_merges / sizeof k_merges[0], nt;
    const char **toks;
    const char *path = tu_tmpfile("synth-bpe.gguf");
    CU_ASSERT_EQUAL_FATAL(make_bpe(path, "gpt2", "gpt-2", &toks, &nt, k_merges, nm), 0);
    tokenizer *t = NULL;
    inf_error err = {0};
    CU_ASSERT_EQUAL_FATAL(open_synth(path, 0, &t, &err), 0);
    CU_ASSERT_EQUAL(tok_model_kind(t), TOK_MODEL_BPE);
    CU_ASSERT_EQUAL(tok_add_bos(t), 0); /* gpt2 without the key: no BOS */
    CU_ASSERT_STRING_EQUAL(tok_pre_name(t), "gpt-2");
    uint64_t rng = 7;
    static const char *const alpha[] = {"a", "b", "c", " ", "a", "c"};
    for (int k = 0; k < 400; k++) {
        char text[256];
        random_text(&rng, alpha, 6, text, 48);
        int32_t want[1024], *got = NULL;
        size_t nw = naive_bpe(toks, nt, k_merges, nm, text, want), ng = 0;
        CU_ASSERT_EQUAL_FATAL(tok_encode(t, text, strlen(text), 1, 1, &got, &ng, NULL), 0);
        int ok = ng == nw && (nw == 0 || memcmp(got, want, nw * sizeof *got) == 0);
        CU_ASSERT(ok);
        if (!ok) {
            fprintf(stderr, "\n  BPE \"%s\"\n", text);
            print_ids("naive", want, nw);
            print_ids("got  ", got, ng);
        }
        char *back = NULL;
        CU_ASSERT_EQUAL(tok_decode(t, got, ng, TOK_DECODE_STRIP_SPACE, &back, NULL, NULL), 0);
        CU_ASSERT_STRING_EQUAL(back, text); /* BPE never strips a space */
        free(back);
        free(got);
    }
    /* control token text is recognised only with parse_special */
    int32_t *ids = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL(tok_encode(t, "a<|endoftext|>", 14, 0, 1, &ids, &n, NULL), 0);
    CU_ASSERT(n == 2 && ids[1] == (int32_t)nt - 1);
    free(ids);
    CU_ASSERT_EQUAL(tok_encode(t, "a<|endoftext|>", 14, 0, 0, &ids, &n, NULL), 0);
    CU_ASSERT(n > 2);
    for (size_t i = 0; i < n; i++) CU_ASSERT(ids[i] != (int32_t)nt - 1);
    free(ids);
    tok_free(t);
}

static void test_unsupported(void) {
    size_t nm = sizeof k_merges / sizeof k_merges[0], nt;
    const char **toks;
    const char *path = tu_tmpfile("synth-bad.gguf");
    tokenizer *t = NULL;
    inf_error err = {0};

    CU_ASSERT_EQUAL_FATAL(make_bpe(path, "bert", "default", &toks, &nt, k_merges, nm), 0);
    CU_ASSERT_EQUAL(open_synth(path, 0, &t, &err), INF_EUNSUPPORTED);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "'bert'"));
    CU_ASSERT_PTR_NULL(t);

    CU_ASSERT_EQUAL_FATAL(make_bpe(path, "gpt2", "no-such-pre", &toks, &nt, k_merges, nm), 0);
    CU_ASSERT_EQUAL(open_synth(path, 0, &t, &err), INF_EUNSUPPORTED);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "no-such-pre"));
    CU_ASSERT_EQUAL_FATAL(open_synth(path, TOK_CREATE_PRE_FALLBACK, &t, &err), 0);
    CU_ASSERT_EQUAL(tok_pre_fallback(t), 1);
    CU_ASSERT_STRING_EQUAL(tok_pre_name(t), "default");
    tok_free(t);
    t = NULL;

    CU_ASSERT_EQUAL_FATAL(make_bpe(path, "gpt2", "gpt-2", &toks, &nt, k_merges, 0), 0);
    CU_ASSERT_EQUAL(open_synth(path, 0, &t, &err), INF_EFORMAT); /* no merges */

    const char *bert = tu_shared_file("models/vocab/ggml-vocab-bert-bge.gguf");
    if (!bert) {
        tu_skip("ggml-vocab-bert-bge.gguf is absent");
        return;
    }
    CU_ASSERT_EQUAL(open_synth(bert, 0, &t, &err), INF_EUNSUPPORTED);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "bert"));
}

void test_register_tok_synth(void) {
    CU_pSuite s = CU_add_suite("tok_synth", NULL, NULL);
    CU_add_test(s, "SPM vs naive reference", test_synth_spm);
    CU_add_test(s, "BPE vs naive reference", test_synth_bpe);
    CU_add_test(s, "unsupported model and pre", test_unsupported);
}
