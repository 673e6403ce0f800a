/* tok_bpe.c - byte-level BPE ("gpt2" vocabularies).
 *
 * Encoding a fragment: invalid UTF-8 bytes become U+FFFD (as llama.cpp does),
 * the text is split by the pre-tokenizer's regexes, each piece is mapped byte
 * by byte to GPT-2's printable code points, and adjacent symbols are merged by
 * rank (lowest first, ties leftmost) using tokenizer.ggml.merges.
 *
 * The pre-tokenizer regex lists per tokenizer.ggml.pre follow llama.cpp's
 * llama-vocab.cpp. They are applied in sequence: each regex splits every
 * current piece into its matches and the text between them, and sees one
 * piece at a time as its whole subject (so `$` and lookaheads stop at the
 * piece's end).
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
#define RE_LLAMA3                                                                           \
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|" \
    "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_QWEN2                                                                            \
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|" \
    "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
/* CJK ideographs and Hangul, as in the DeepSeek tokenizer.json files */
#define RE_DEEPSEEK_CJK "[\\x{4E00}-\\x{9FA5}\\x{0800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+"
/* DeepSeek LLM's letter class (cased letters, listed by range in its tokenizer.json) */
#define RE_DEEPSEEK_LETTERS \
    "\\s?["                 \
    "\\x{41}-\\x{5A}\\x{61}-\\x{7A}\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-" \
    "\\x{1BA}\\x{1BC}-\\x{1BF}\\x{1C4}-\\x{293}\\x{295}-\\x{2AF}\\x{370}-" \
    "\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}\\x{37F}\\x{386}\\x{388}-" \
    "\\x{38A}\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-\\x{481}\\x{48A}-" \
    "\\x{52F}\\x{531}-\\x{556}\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}\\x{13F8}-" \
    "\\x{13FD}\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}\\x{1D00}-\\x{1D2B}\\x{1D6B}-" \
    "\\x{1D77}\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}\\x{1F20}-" \
    "\\x{1F45}\\x{1F48}-\\x{1F4D}\\x{1F50}-" \
    "\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}\\x{1F80}-" \
    "\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}\\x{1FC6}-" \
    "\\x{1FCC}\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}\\x{1FF2}-" \
    "\\x{1FF4}\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}\\x{210A}-" \
    "\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}\\x{2126}\\x{2128}\\x{212A}-" \
    "\\x{212D}\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}\\x{2145}-" \
    "\\x{2149}\\x{214E}\\x{2183}\\x{2184}\\x{2C00}-\\x{2C7B}\\x{2C7E}-" \
    "\\x{2CE4}\\x{2CEB}-\\x{2CEE}\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}\\x{A680}-" \
    "\\x{A69B}\\x{A722}-\\x{A76F}\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}\\x{AB70}-" \
    "\\x{ABBF}\\x{FB00}-\\x{FB06}\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}\\x{FF41}-" \
    "\\x{FF5A}\\x{10400}-\\x{1044F}\\x{104B0}-\\x{104D3}\\x{104D8}-" \
    "\\x{104FB}\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}\\x{118A0}-" \
    "\\x{118DF}\\x{1E900}-\\x{1E943}" \
    "]+"

typedef struct pre_def {
    const char *names; /* NUL-separated aliases, ending with an empty name */
    const char *re[6]; /* NULL-terminated */
    int ignore_merges; /* a piece that is a whole token skips merging */
    int add_bos;       /* default for tokenizer.ggml.add_bos_token */
} pre_def;

static const pre_def k_pre[] = {
    {"default\0",
     {"[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]", NULL}, 0, 0},
    {"llama3\0llama-v3\0llama-bpe\0falcon3\0", {RE_LLAMA3, NULL}, 1, 1},
    {"dbrx\0smaug-bpe\0chatglm-bpe\0", {RE_LLAMA3, NULL}, 0, 0},
    {"qwen2\0stablelm2\0deepseek-r1-qwen\0megrez\0", {RE_QWEN2, NULL}, 0, 0},
    {"deepseek-llm\0",
     {"[\r\n]", RE_DEEPSEEK_LETTERS,
      "\\s?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}]+",
      "\\s+$", RE_DEEPSEEK_CJK, "\\p{N}+"},
     0, 0},
    {"deepseek-coder\0",
     {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", RE_DEEPSEEK_CJK, "\\p{N}", NULL}, 0, 0},
    {"deepseek-v3\0",
     {"\\p{N}{1,3}", "[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+",
      "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+|"
      " ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
      NULL},
     0, 0},
    {"falcon\0", {"[\\p{P}\\$\\+<=>\\^~\\|`]+", RE_GPT2, "[0-9][0-9][0-9]", NULL}, 0, 0},
    {"starcoder\0refact\0command-r\0smollm\0codeshell\0exaone\0minerva-7b\0",
     {"\\p{N}", RE_GPT2, NULL}, 0, 0},
    {"gpt-2\0mpt\0olmo\0jais\0phi-2\0roberta-bpe\0gigachat\0jina-es\0jina-de\0jina-v1-en\0"
     "jina-v2-es\0jina-v2-de\0jina-v2-code\0",
     {RE_GPT2, NULL}, 0, 0},
    {"poro-chat\0bloom\0gpt3-finnish\0",
     {" ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{0964}\\x{06D4}\\x{060C})]+", NULL}, 0, 0},
    {"viking\0",
     {" ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{0964}\\x{06D4}\\x{060C})]+", "\\p{N}",
      NULL},
     0, 0},
};

static const pre_def *find_pre(const char *name) {
    for (size_t i = 0; i < sizeof k_pre / sizeof k_pre[0]; i++)
        for (const char *n = k_pre[i].names; *n; n += strlen(n) + 1)
            if (strcmp(n, name) == 0) return &k_pre[i];
    return NULL;
}

/* ---- byte map --------------------------------------------------------------- */

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the
 * rest (controls, space, 0x7F-0xA0, 0xAD) to 256, 257, ... in byte order. */
static void build_byte_map(tokenizer *t) {
    int next = 256;
    for (int i = 0; i < 324; i++) t->cp_byte[i] = -1;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        t->byte_cp[b] = (uint16_t)(printable ? b : next++);
        t->cp_byte[t->byte_cp[b]] = (int16_t)b;
    }
}

static size_t put_cp(char *dst, uint32_t cp) {
    if (cp < 0x80) {
        dst[0] = (char)cp;
        return 1;
    }
    dst[0] = (char)(0xC0 | (cp >> 6)); /* all mapped code points are below 0x800 */
    dst[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
}

size_t tok_bpe_unmap(const tokenizer *t, const char *s, size_t len, char *dst) {
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        int k = tok_utf8_seq((const unsigned char *)s + i, len - i);
        if (k <= 0) { /* not a mapped character: keep the byte as is */
            dst[n++] = s[i++];
            continue;
        }
        const unsigned char *u = (const unsigned char *)s + i;
        uint32_t cp = k == 1 ? u[0] : k == 2 ? ((uint32_t)(u[0] & 0x1F) << 6 | (u[1] & 0x3F)) : 0xFFFF;
        if (cp < 324 && t->cp_byte[cp] >= 0) {
            dst[n++] = (char)t->cp_byte[cp];
        } else { /* a character outside the byte map: keep it verbatim */
            memcpy(dst + n, s + i, (size_t)k);
            n += (size_t)k;
        }
        i += (size_t)k;
    }
    return n;
}

/* ---- merges -------------------------------------------------------------------- */

static uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

static const tok_merge *find_merge(const tokenizer *t, int32_t l, int32_t r) {
    uint64_t key = (uint64_t)(uint32_t)l << 32 | (uint32_t)r;
    for (uint64_t i = mix64(key) & t->merge_mask;; i = (i + 1) & t->merge_mask) {
        const tok_merge *m = &t->merges[i];
        if (m->key == key) return m;
        if (m->key == UINT64_MAX) return NULL;
    }
}

static int load_merges(tokenizer *t, const gguf_file *f, inf_error *err) {
    const gguf_kv *kv;
    int rc = gguf_get_arr(f, "tokenizer.ggml.merges", GGUF_VT_STRING, &kv, err);
    if (rc == INF_ENOTFOUND)
        return inf_error_set(err, INF_EFORMAT, "%s: a gpt2 tokenizer needs tokenizer.ggml.merges",
                             f->path);
    if (rc) return rc;
    if (kv->arr_n > INT32_MAX / 4)
        return inf_error_set(err, INF_EFORMAT, "%s: tokenizer.ggml.merges has %llu entries", f->path,
                             (unsigned long long)kv->arr_n);
    uint64_t cap = 64;
    while (cap < kv->arr_n * 2 + 16) cap <<= 1;
    t->merges = malloc(cap * sizeof *t->merges);
    if (!t->merges) return inf_error_set(err, INF_ENOMEM, "out of memory loading merges");
    for (uint64_t i = 0; i < cap; i++) t->merges[i].key = UINT64_MAX;
    t->merge_mask = cap - 1;
    char *buf = NULL;
    size_t bufcap = 0;
    for (uint64_t i = 0; i < kv->arr_n; i++) {
        const char *s = kv->arr_strs[i].ptr;
        size_t len = (size_t)kv->arr_strs[i].len;
        /* split at the first space after position 0, as llama.cpp does */
        const char *sp = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
        if (!sp) continue; /* llama.cpp records such an entry as an unusable ("","") merge */
        size_t ll = (size_t)(sp - s), rl = len - ll - 1;
        if (ll + rl > bufcap) {
            bufcap = (ll + rl) * 2 + 64;
            char *nb = realloc(buf, bufcap);
            if (!nb) {
                free(buf);
                return inf_error_set(err, INF_ENOMEM, "out of memory loading merges");
            }
            buf = nb;
        }
        memcpy(buf, s, ll);
        memcpy(buf + ll, sp + 1, rl);
        int32_t l = tok_strtab_intern(&t->st, s, ll);
        int32_t r = l >= 0 ? tok_strtab_intern(&t->st, sp + 1, rl) : l;
        int32_t res = r >= 0 ? tok_strtab_intern(&t->st, buf, ll + rl) : r;
        if (res < 0) {
            free(buf);
            return inf_error_set(err, res, "%s: cannot store merge %llu", f->path,
                                 (unsigned long long)i);
        }
        uint64_t key = (uint64_t)(uint32_t)l << 32 | (uint32_t)r;
        uint64_t j = mix64(key) & t->merge_mask;
        while (t->merges[j].key != UINT64_MAX && t->merges[j].key != key) j = (j + 1) & t->merge_mask;
        if (t->merges[j].key == key) continue; /* duplicate pair: the first (best) rank wins */
        t->merges[j] = (tok_merge){.key = key, .rank = (int32_t)i, .result = res};
    }
    free(buf);
    return 0;
}

/* ---- loading ---------------------------------------------------------------------- */

int tok_bpe_load(tokenizer *t, const gguf_file *f, int flags, inf_error *err) {
    char pre[64];
    int rc = gguf_get_cstr(f, "tokenizer.ggml.pre", pre, sizeof pre, err);
    if (rc == INF_ENOTFOUND) strcpy(pre, "default"); /* older files: llama.cpp uses default */
    else if (rc) return rc;
    const pre_def *def = find_pre(pre);
    if (!def) {
        if (!(flags & TOK_CREATE_PRE_FALLBACK))
            return inf_error_set(err, INF_EUNSUPPORTED,
                                 "%s: pre-tokenizer '%s' (tokenizer.ggml.pre) is not supported",
                                 f->path, pre);
        def = &k_pre[0];
        t->pre_fallback = 1;
        strcpy(pre, "default");
    }
    strcpy(t->pre, pre);
    t->ignore_merges = def->ignore_merges;
    t->add_bos = def->add_bos;
    build_byte_map(t);
    if ((rc = load_merges(t, f, err))) return rc;

    int n = 0;
    while (n < 6 && def->re[n]) n++;
    t->re = calloc((size_t)n, sizeof *t->re);
    if (!t->re) return inf_error_set(err, INF_ENOMEM, "out of memory compiling regexes");
    for (int i = 0; i < n; i++) {
        int ec;
        PCRE2_SIZE eo;
        pcre2_code *code = pcre2_compile((PCRE2_SPTR)def->re[i], PCRE2_ZERO_TERMINATED,
                                         PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &ec, &eo, NULL);
        if (!code) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(ec, msg, sizeof msg);
            return inf_error_set(err, INF_EUNSUPPORTED,
                                 "pre-tokenizer '%s': regex %d does not compile at offset %zu: %s",
                                 pre, i, (size_t)eo, (const char *)msg);
        }
        pcre2_jit_compile(code, PCRE2_JIT_COMPLETE); /* optional: falls back to the interpreter */
        t->re[i] = code;
        t->n_re = i + 1;
    }
    return 0;
}

void tok_bpe_free(tokenizer *t) {
    for (int i = 0; i < t->n_re; i++) pcre2_code_free((pcre2_code *)t->re[i]);
    free(t->re);
    free(t->merges);
}

/* ---- encoding ----------------------------------------------------------------------- */

typedef struct span {
    size_t off, len;
} span;

typedef struct span_vec {
    span *v;
    size_t n, cap;
} span_vec;

static int span_push(span_vec *sv, size_t off, size_t len) {
    if (sv->n == sv->cap) {
        size_t nc = sv->cap ? sv->cap * 2 : 32;
        span *p = realloc(sv->v, nc * sizeof *p);
        if (!p) return INF_ENOMEM;
        sv->v = p;
        sv->cap = nc;
    }
    sv->v[sv->n++] = (span){off, len};
    return 0;
}

/* Splits every span of in by regex re into out (matches and the gaps between). */
static int split_one(const pcre2_code *re, const char *s, const span_vec *in, span_vec *out,
                     inf_error *err) {
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    if (!md) return inf_error_set(err, INF_ENOMEM, "out of memory matching a regex");
    int rc = 0;
    out->n = 0;
    for (size_t k = 0; k < in->n && !rc; k++) {
        PCRE2_SPTR subj = (PCRE2_SPTR)(s + in->v[k].off);
        size_t n = in->v[k].len, pos = 0, from = 0;
        while (from < n) {
            int m = pcre2_match(re, subj, n, from, PCRE2_NO_UTF_CHECK, md, NULL);
            if (m == PCRE2_ERROR_JIT_STACKLIMIT) /* very long piece: the interpreter copes */
                m = pcre2_match(re, subj, n, from, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, NULL);
            if (m == PCRE2_ERROR_NOMATCH) break;
            if (m < 0) {
                PCRE2_UCHAR msg[160];
                pcre2_get_error_message(m, msg, sizeof msg);
                rc = inf_error_set(err, INF_EUNSUPPORTED, "pre-tokenizer regex failed: %s",
                                   (const char *)msg);
                break;
            }
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            size_t ms = ov[0], me = ov[1];
            if (me == ms) { /* empty match: contributes nothing, step one character */
                int cl = tok_utf8_seq(subj + ms, n - ms);
                from = ms + (size_t)(cl > 0 ? cl : 1);
                continue;
            }
            if ((ms > pos && span_push(out, in->v[k].off + pos, ms - pos)) ||
                span_push(out, in->v[k].off + ms, me - ms)) {
                rc = inf_error_set(err, INF_ENOMEM, "out of memory splitting text");
                break;
            }
            pos = from = me;
        }
        if (!rc && pos < n && span_push(out, in->v[k].off + pos, n - pos))
            rc = inf_error_set(err, INF_ENOMEM, "out of memory splitting text");
    }
    pcre2_match_data_free(md);
    return rc;
}

typedef struct bpe_sym {
    uint32_t len;  /* bytes of the mapped word; 0 once merged away */
    uint32_t start;
    int32_t sid;   /* string id of the symbol's text, -1 if unknown */
    int32_t prev, next;
} bpe_sym;

static int add_pair(const tokenizer *t, bpe_sym *sy, int32_t l, int32_t r, tok_heap *hp) {
    if (l < 0 || r < 0 || sy[l].sid < 0 || sy[r].sid < 0) return 0;
    const tok_merge *m = find_merge(t, sy[l].sid, sy[r].sid);
    if (!m) return 0;
    tok_bigram b = {.pri = -(double)m->rank, .left = l, .right = r,
                    .size = sy[l].len + sy[r].len, .result = m->result};
    return tok_heap_push(hp, b);
}

/* Merges one mapped word w[0..n) and appends its tokens. */
static int bpe_word(const tokenizer *t, const char *w, size_t n, bpe_sym *sy, tok_heap *hp,
                    tok_vec *out) {
    if (t->ignore_merges) {
        int32_t id = tok_find(t, w, n);
        if (id >= 0) return tok_vec_push(out, id);
    }
    int32_t ns = 0;
    for (size_t off = 0; off < n;) {
        int cl = tok_utf8_seq((const unsigned char *)w + off, n - off);
        size_t l = cl > 0 ? (size_t)cl : 1; /* mapped text is valid UTF-8; be safe anyway */
        sy[ns] = (bpe_sym){.len = (uint32_t)l, .start = (uint32_t)off,
                           .sid = tok_strtab_find(&t->st, w + off, l), .prev = ns - 1, .next = -1};
        if (ns > 0) sy[ns - 1].next = ns;
        ns++;
        off += l;
    }
    hp->n = 0;
    for (int32_t i = 1; i < ns; i++)
        if (add_pair(t, sy, i - 1, i, hp)) return INF_ENOMEM;
    while (hp->n) {
        tok_bigram b = tok_heap_pop(hp);
        bpe_sym *l = &sy[b.left], *r = &sy[b.right];
        if (l->len == 0 || r->len == 0 || l->len + r->len != b.size) continue; /* stale */
        l->len += r->len;
        l->sid = b.result;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0) sy[r->next].prev = b.left;
        if (add_pair(t, sy, l->prev, b.left, hp) || add_pair(t, sy, b.left, l->next, hp))
            return INF_ENOMEM;
    }
    for (int32_t i = 0; i >= 0 && ns > 0; i = sy[i].next) {
        if (sy[i].sid >= 0 && sy[i].sid < t->n_vocab) {
            if (tok_vec_push(out, sy[i].sid)) return INF_ENOMEM;
            continue;
        }
        /* not a token: llama.cpp emits whichever single bytes are tokens */
        for (uint32_t k = 0; k < sy[i].len; k++) {
            int32_t id = tok_find(t, w + sy[i].start + k, 1);
            if (id >= 0 && tok_vec_push(out, id)) return INF_ENOMEM;
        }
    }
    return 0;
}

int tok_bpe_encode(const tokenizer *t, const char *text, size_t len, tok_vec *out,
                   inf_error *err) {
    if (len > SIZE_MAX / 8 || len > UINT32_MAX / 3)
        return inf_error_set(err, INF_ERANGE, "text of %zu bytes is too long to tokenize", len);
    /* worst case: every byte invalid -> 3 bytes of U+FFFD */
    char *s = malloc(3 * len + 1);
    char *w = NULL;
    bpe_sym *sy = NULL;
    span_vec a = {0}, b = {0};
    tok_heap hp = {0};
    int rc = 0;
    if (!s) goto oom;

    size_t n = 0;
    for (size_t i = 0; i < len;) {
        int k = tok_utf8_seq((const unsigned char *)text + i, len - i);
        if (k > 0) {
            memcpy(s + n, text + i, (size_t)k);
            n += (size_t)k;
            i += (size_t)k;
        } else {
            memcpy(s + n, "\xef\xbf\xbd", 3);
            n += 3;
            i++;
        }
    }

    if (span_push(&a, 0, n)) goto oom;
    for (int r = 0; r < t->n_re; r++) {
        if ((rc = split_one((const pcre2_code *)t->re[r], s, &a, &b, err))) goto done;
        span_vec tmp = a;
        a = b;
        b = tmp;
    }
    size_t maxlen = 0;
    for (size_t k = 0; k < a.n; k++)
        if (a.v[k].len > maxlen) maxlen = a.v[k].len;
    /* a mapped byte takes at most 2 bytes; a symbol at least 1 */
    w = malloc(2 * maxlen + 1);
    sy = malloc((2 * maxlen + 1) * sizeof *sy);
    if (!w || !sy) goto oom;
    for (size_t k = 0; k < a.n; k++) {
        size_t wn = 0;
        for (size_t i = 0; i < a.v[k].len; i++)
            wn += put_cp(w + wn, t->byte_cp[(unsigned char)s[a.v[k].off + i]]);
        if (bpe_word(t, w, wn, sy, &hp, out)) goto oom;
    }
    goto done;
oom:
    rc = inf_error_set(err, INF_ENOMEM, "out of memory tokenizing %zu bytes", len);
done:
    free(s);
    free(w);
    free(sy);
    free(a.v);
    free(b.v);
    free(hp.h);
    return rc;
}
