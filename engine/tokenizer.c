/* tokenizer.c - vocabulary loading, special-token splitting, encode driver
 * and decoding (see tokenizer.h). The SPM and BPE merge loops live in
 * tok_spm.c and tok_bpe.c, the streaming detokenizer in tok_stream.c.
 */
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

/* ---- small containers ------------------------------------------------------ */

int tok_vec_push(tok_vec *v, int32_t id) {
    if (v->n == v->cap) {
        size_t nc = v->cap ? v->cap * 2 : 64;
        int32_t *p = realloc(v->v, nc * sizeof *p);
        if (!p) return INF_ENOMEM;
        v->v = p;
        v->cap = nc;
    }
    v->v[v->n++] = id;
    return 0;
}

static int bigram_before(const tok_bigram *a, const tok_bigram *b) {
    return a->pri > b->pri || (a->pri == b->pri && a->left < b->left);
}

int tok_heap_push(tok_heap *hp, tok_bigram b) {
    if (hp->n == hp->cap) {
        size_t nc = hp->cap ? hp->cap * 2 : 64;
        tok_bigram *p = realloc(hp->h, nc * sizeof *p);
        if (!p) return INF_ENOMEM;
        hp->h = p;
        hp->cap = nc;
    }
    size_t i = hp->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!bigram_before(&b, &hp->h[parent])) break;
        hp->h[i] = hp->h[parent];
        i = parent;
    }
    hp->h[i] = b;
    return 0;
}

tok_bigram tok_heap_pop(tok_heap *hp) {
    tok_bigram top = hp->h[0];
    tok_bigram last = hp->h[--hp->n];
    size_t i = 0, n = hp->n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && bigram_before(&hp->h[c + 1], &hp->h[c])) c++;
        if (!bigram_before(&hp->h[c], &last)) break;
        hp->h[i] = hp->h[c];
        i = c;
    }
    if (n) hp->h[i] = last;
    return top;
}

/* ---- string table ------------------------------------------------------------ */

static uint32_t str_hash(const char *s, size_t len) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    return (uint32_t)(h ^ (h >> 32));
}

static int strtab_init(tok_strtab *st, int32_t expect) {
    memset(st, 0, sizeof *st);
    uint32_t cap = 64;
    while (cap < (uint32_t)expect * 2u + 16u) cap <<= 1;
    st->slots = malloc(cap * sizeof *st->slots);
    st->cap = expect > 16 ? expect : 16;
    st->off = malloc((size_t)st->cap * sizeof *st->off);
    st->len = malloc((size_t)st->cap * sizeof *st->len);
    if (!st->slots || !st->off || !st->len) return INF_ENOMEM;
    memset(st->slots, 0xff, cap * sizeof *st->slots);
    st->mask = cap - 1;
    return 0;
}

static void strtab_free(tok_strtab *st) {
    free(st->arena);
    free(st->off);
    free(st->len);
    free(st->slots);
}

static const char *strtab_str(const tok_strtab *st, int32_t id) { return st->arena + st->off[id]; }

int32_t tok_strtab_find(const tok_strtab *st, const char *s, size_t len) {
    uint32_t i = str_hash(s, len) & st->mask;
    for (;;) {
        int32_t id = st->slots[i];
        if (id < 0) return -1;
        if (st->len[id] == len && memcmp(strtab_str(st, id), s, len) == 0) return id;
        i = (i + 1) & st->mask;
    }
}

static int strtab_grow_index(tok_strtab *st) {
    uint32_t cap = (st->mask + 1) * 2;
    int32_t *slots = malloc(cap * sizeof *slots);
    if (!slots) return INF_ENOMEM;
    memset(slots, 0xff, cap * sizeof *slots);
    for (uint32_t j = 0; j <= st->mask; j++) {
        int32_t id = st->slots[j];
        if (id < 0) continue;
        uint32_t i = str_hash(strtab_str(st, id), st->len[id]) & (cap - 1);
        while (slots[i] >= 0) i = (i + 1) & (cap - 1);
        slots[i] = id;
    }
    free(st->slots);
    st->slots = slots;
    st->mask = cap - 1;
    return 0;
}

/* Appends s as a new string id; when index is set, the hash index maps s to
 * it (replacing an earlier equal string, as llama.cpp's map keeps the last). */
static int32_t strtab_add(tok_strtab *st, const char *s, size_t len, int index) {
    if (len > UINT32_MAX || st->n == INT32_MAX) return INF_ERANGE;
    if (st->n == st->cap) {
        int32_t nc = st->cap > INT32_MAX / 2 ? INT32_MAX : st->cap * 2;
        uint64_t *o = realloc(st->off, (size_t)nc * sizeof *o);
        if (!o) return INF_ENOMEM;
        st->off = o;
        uint32_t *l = realloc(st->len, (size_t)nc * sizeof *l);
        if (!l) return INF_ENOMEM;
        st->len = l;
        st->cap = nc;
    }
    if (st->arena_len + len + 1 > st->arena_cap) {
        size_t nc = st->arena_cap ? st->arena_cap : 4096;
        while (nc < st->arena_len + len + 1) nc *= 2;
        char *a = realloc(st->arena, nc);
        if (!a) return INF_ENOMEM;
        st->arena = a;
        st->arena_cap = nc;
    }
    if (len) memcpy(st->arena + st->arena_len, s, len);
    st->arena[st->arena_len + len] = '\0';
    int32_t id = st->n++;
    st->off[id] = st->arena_len;
    st->len[id] = (uint32_t)len;
    st->arena_len += len + 1;
    if (!index) return id;
    if ((uint32_t)st->n * 2u > st->mask && strtab_grow_index(st)) return INF_ENOMEM;
    uint32_t i = str_hash(s, len) & st->mask;
    for (;;) {
        int32_t o = st->slots[i];
        if (o < 0 || (st->len[o] == len && memcmp(strtab_str(st, o), s, len) == 0)) break;
        i = (i + 1) & st->mask;
    }
    st->slots[i] = id;
    return id;
}

int32_t tok_strtab_intern(tok_strtab *st, const char *s, size_t len) {
    int32_t id = tok_strtab_find(st, s, len);
    return id >= 0 ? id : strtab_add(st, s, len, 1);
}

/* ---- loading ----------------------------------------------------------------- */

/* Reads an optional token id key; an absent or out-of-range value keeps *id
 * (llama.cpp ignores ids outside the vocabulary, e.g. 0xFFFFFFFF for "none"). */
static int read_id(const gguf_file *f, const char *key, int32_t n_vocab, int32_t *id,
                   inf_error *err) {
    int64_t v;
    int rc = gguf_get_i64(f, key, &v, err);
    if (rc == INF_ENOTFOUND) return 0;
    if (rc) return rc;
    if (v >= 0 && v < n_vocab) *id = (int32_t)v;
    return 0;
}

static int read_flag(const gguf_file *f, const char *key, int *flag, inf_error *err) {
    int rc = gguf_get_bool(f, key, flag, err);
    return rc == INF_ENOTFOUND ? 0 : rc;
}

/* Parses "<0xNN>"; returns the byte or -1. */
static int parse_byte_token(const char *s, size_t len) {
    if (len != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10
              : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

/* Precomputes the bytes each token decodes to (llama.cpp token_to_piece). */
static int build_pieces(tokenizer *t) {
    const tok_strtab *st = &t->st;
    size_t total = 0;
    for (int32_t i = 0; i < t->n_vocab; i++) total += st->len[i];
    t->pieces = malloc(total + 1);
    t->piece_off = malloc((size_t)t->n_vocab * sizeof *t->piece_off);
    t->piece_len = malloc((size_t)t->n_vocab * sizeof *t->piece_len);
    if (!t->pieces || !t->piece_off || !t->piece_len) return INF_ENOMEM;
    size_t pos = 0;
    for (int32_t i = 0; i < t->n_vocab; i++) {
        const char *s = strtab_str(st, i);
        size_t len = st->len[i], n = 0;
        char *dst = t->pieces + pos;
        int type = t->types[i];
        if (type == TOK_TYPE_CONTROL || type == TOK_TYPE_UNKNOWN || type == TOK_TYPE_USER_DEFINED) {
            memcpy(dst, s, len);
            n = len;
        } else if (type == TOK_TYPE_UNUSED) {
            n = 0;
        } else if (t->model == TOK_MODEL_SPM) {
            int b = type == TOK_TYPE_BYTE ? parse_byte_token(s, len) : -1;
            if (b >= 0) {
                dst[n++] = (char)b;
            } else {
                /* U+2581 (E2 96 81) is the escaped space; it is 3 bytes, so the
                 * unescaped piece never outgrows the text */
                for (size_t k = 0; k < len;) {
                    if (k + 3 <= len && memcmp(s + k, "\xe2\x96\x81", 3) == 0) {
                        dst[n++] = ' ';
                        k += 3;
                    } else {
                        dst[n++] = s[k++];
                    }
                }
            }
        } else {
            n = tok_bpe_unmap(t, s, len, dst);
        }
        t->piece_off[i] = pos;
        t->piece_len[i] = (uint32_t)n;
        pos += n;
    }
    return 0;
}

typedef struct special_key {
    uint32_t first, len;
    int32_t id;
} special_key;

static int special_cmp(const void *a, const void *b) {
    const special_key *x = a, *y = b;
    if (x->first != y->first) return x->first < y->first ? -1 : 1;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static int is_special_type(int ty) {
    return ty == TOK_TYPE_CONTROL || ty == TOK_TYPE_UNKNOWN || ty == TOK_TYPE_USER_DEFINED;
}

/* Collects the tokens whose text is matched literally in the input, grouped
 * by first byte and longest first so the scan can stop at the first hit. */
static int build_specials(tokenizer *t) {
    size_t n = 0;
    for (int32_t i = 0; i < t->n_vocab; i++)
        if (is_special_type(t->types[i]) && t->st.len[i] > 0) n++;
    special_key *keys = malloc((n ? n : 1) * sizeof *keys);
    t->special = malloc((n ? n : 1) * sizeof *t->special);
    if (!keys || !t->special) {
        free(keys);
        return INF_ENOMEM;
    }
    n = 0;
    for (int32_t i = 0; i < t->n_vocab; i++) {
        if (!is_special_type(t->types[i]) || t->st.len[i] == 0) continue;
        keys[n].first = (unsigned char)strtab_str(&t->st, i)[0];
        keys[n].len = t->st.len[i];
        keys[n].id = i;
        n++;
    }
    qsort(keys, n, sizeof *keys, special_cmp);
    size_t k = 0;
    for (uint32_t b = 0; b < 256; b++) {
        t->bucket[b] = (uint32_t)k;
        while (k < n && keys[k].first == b) {
            t->special[k] = keys[k].id;
            k++;
        }
    }
    t->bucket[256] = (uint32_t)k;
    free(keys);
    return 0;
}

static int load_vocab(tokenizer *t, const gguf_file *f, inf_error *err) {
    const gguf_kv *toks, *scores = NULL, *types = NULL;
    int rc = gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_VT_STRING, &toks, err);
    if (rc == INF_ENOTFOUND)
        return inf_error_set(err, INF_EFORMAT, "%s: tokenizer.ggml.tokens is missing", f->path);
    if (rc) return rc;
    if (toks->arr_n == 0 || toks->arr_n > INT32_MAX / 2)
        return inf_error_set(err, INF_EFORMAT, "%s: tokenizer.ggml.tokens has %llu entries",
                             f->path, (unsigned long long)toks->arr_n);
    t->n_vocab = (int32_t)toks->arr_n;
    rc = gguf_get_arr(f, "tokenizer.ggml.scores", -1, &scores, err);
    if (rc && rc != INF_ENOTFOUND) return rc;
    if (rc == 0 && scores->arr_n != toks->arr_n)
        return inf_error_set(err, INF_EFORMAT, "%s: tokenizer.ggml.scores has %llu entries, expected %d",
                             f->path, (unsigned long long)scores->arr_n, t->n_vocab);
    if (rc == 0 && scores->arr_type == GGUF_VT_STRING)
        return inf_error_set(err, INF_EFORMAT, "%s: tokenizer.ggml.scores is not numeric", f->path);
    if (rc) scores = NULL;
    rc = gguf_get_arr(f, "tokenizer.ggml.token_type", -1, &types, err);
    if (rc && rc != INF_ENOTFOUND) return rc;
    if (rc == 0 && (types->arr_n != toks->arr_n || types->arr_type == GGUF_VT_STRING))
        return inf_error_set(err, INF_EFORMAT,
                             "%s: tokenizer.ggml.token_type is not %d integers", f->path, t->n_vocab);
    if (rc) types = NULL;
    if (err) inf_error_clear(err);

    t->scores = malloc((size_t)t->n_vocab * sizeof *t->scores);
    t->types = malloc((size_t)t->n_vocab);
    if (!t->scores || !t->types || strtab_init(&t->st, t->n_vocab))
        return inf_error_set(err, INF_ENOMEM, "out of memory loading a %d-token vocabulary", t->n_vocab);
    for (int32_t i = 0; i < t->n_vocab; i++) {
        int32_t id = strtab_add(&t->st, toks->arr_strs[i].ptr, toks->arr_strs[i].len, 1);
        if (id < 0) return inf_error_set(err, id, "%s: cannot store token %d", f->path, i);
        t->scores[i] = scores ? (float)gguf_arr_get_f64(scores, (uint64_t)i) : 0.0f;
        int64_t ty = types ? gguf_arr_get_i64(types, (uint64_t)i) : TOK_TYPE_NORMAL;
        /* llama.cpp treats unknown type codes as undefined; normal is the safe reading */
        t->types[i] = (uint8_t)(ty >= TOK_TYPE_NORMAL && ty <= TOK_TYPE_BYTE ? ty : TOK_TYPE_NORMAL);
    }
    return 0;
}

int tok_create_ex(tokenizer **out, const gguf_file *f, int flags, inf_error *err) {
    if (!out || !f) return inf_error_set(err, INF_EINVAL, "tok_create: NULL argument");
    *out = NULL;
    char model[64];
    int rc = gguf_get_cstr(f, "tokenizer.ggml.model", model, sizeof model, err);
    if (rc == INF_ENOTFOUND)
        return inf_error_set(err, INF_EFORMAT, "%s: tokenizer.ggml.model is missing", f->path);
    if (rc) return rc;
    tok_model kind;
    if (strcmp(model, "llama") == 0) kind = TOK_MODEL_SPM;
    else if (strcmp(model, "gpt2") == 0) kind = TOK_MODEL_BPE;
    else
        return inf_error_set(err, INF_EUNSUPPORTED,
                             "%s: tokenizer model '%s' is not supported (only 'llama' and 'gpt2')",
                             f->path, model);

    tokenizer *t = calloc(1, sizeof *t);
    if (!t) return inf_error_set(err, INF_ENOMEM, "out of memory creating a tokenizer");
    t->model = kind;
    t->bos = t->eos = t->eot = t->unk = t->pad = -1;
    for (int b = 0; b < 256; b++) t->byte_tok[b] = -1;
    rc = load_vocab(t, f, err);
    if (rc) goto fail;

    if (kind == TOK_MODEL_SPM) {
        /* llama.cpp's SPM defaults; the keys below override them */
        if (t->n_vocab > 2) {
            t->unk = 0;
            t->bos = 1;
            t->eos = 2;
        }
        t->add_bos = 1;
        t->add_space_prefix = 1;
        char buf[8];
        for (int b = 0; b < 256; b++) {
            snprintf(buf, sizeof buf, "<0x%02X>", b);
            t->byte_tok[b] = tok_strtab_find(&t->st, buf, 6);
        }
    } else {
        rc = tok_bpe_load(t, f, flags, err); /* sets pre, add_bos default, regexes */
        if (rc) goto fail;
    }

    if ((rc = read_id(f, "tokenizer.ggml.bos_token_id", t->n_vocab, &t->bos, err)) ||
        (rc = read_id(f, "tokenizer.ggml.eos_token_id", t->n_vocab, &t->eos, err)) ||
        (rc = read_id(f, "tokenizer.ggml.eot_token_id", t->n_vocab, &t->eot, err)) ||
        (rc = read_id(f, "tokenizer.ggml.unknown_token_id", t->n_vocab, &t->unk, err)) ||
        (rc = read_id(f, "tokenizer.ggml.padding_token_id", t->n_vocab, &t->pad, err)) ||
        (rc = read_flag(f, "tokenizer.ggml.add_bos_token", &t->add_bos, err)) ||
        (rc = read_flag(f, "tokenizer.ggml.add_eos_token", &t->add_eos, err)))
        goto fail;
    if (kind == TOK_MODEL_SPM &&
        (rc = read_flag(f, "tokenizer.ggml.add_space_prefix", &t->add_space_prefix, err)))
        goto fail;
    if (t->add_bos && t->bos < 0) t->add_bos = 0;
    if (t->add_eos && t->eos < 0) t->add_eos = 0;

    if (build_pieces(t) || build_specials(t)) {
        rc = inf_error_set(err, INF_ENOMEM, "out of memory building the tokenizer tables");
        goto fail;
    }
    *out = t;
    return 0;
fail:
    tok_free(t);
    return rc;
}

int tok_create(tokenizer **out, const gguf_file *f, inf_error *err) {
    return tok_create_ex(out, f, 0, err);
}

void tok_free(tokenizer *t) {
    if (!t) return;
    if (t->model == TOK_MODEL_BPE) tok_bpe_free(t);
    strtab_free(&t->st);
    free(t->scores);
    free(t->types);
    free(t->pieces);
    free(t->piece_off);
    free(t->piece_len);
    free(t->special);
    free(t);
}

/* ---- accessors ------------------------------------------------------------ */

int32_t tok_n_vocab(const tokenizer *t) { return t->n_vocab; }
tok_model tok_model_kind(const tokenizer *t) { return t->model; }
const char *tok_pre_name(const tokenizer *t) { return t->pre; }
int tok_pre_fallback(const tokenizer *t) { return t->pre_fallback; }
int32_t tok_bos(const tokenizer *t) { return t->bos; }
int32_t tok_eos(const tokenizer *t) { return t->eos; }
int32_t tok_eot(const tokenizer *t) { return t->eot; }
int32_t tok_unk(const tokenizer *t) { return t->unk; }
int32_t tok_pad(const tokenizer *t) { return t->pad; }
int tok_add_bos(const tokenizer *t) { return t->add_bos; }
int tok_add_eos(const tokenizer *t) { return t->add_eos; }
int tok_add_space_prefix(const tokenizer *t) { return t->add_space_prefix; }

int tok_is_eog(const tokenizer *t, int32_t id) {
    return id >= 0 && (id == t->eos || id == t->eot);
}

int tok_token_type(const tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_vocab ? t->types[id] : 0;
}

const char *tok_token_text(const tokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->n_vocab) return NULL;
    if (len) *len = t->st.len[id];
    return strtab_str(&t->st, id);
}

int32_t tok_find(const tokenizer *t, const char *text, size_t len) {
    int32_t id = tok_strtab_find(&t->st, text, len);
    return id < t->n_vocab ? id : -1;
}

/* ---- encoding --------------------------------------------------------------- */

static int encode_raw(const tokenizer *t, const char *s, size_t len, int after_special,
                      tok_vec *out, inf_error *err) {
    if (t->model == TOK_MODEL_SPM)
        return tok_spm_encode(t, s, len, t->add_space_prefix && after_special, out, err);
    return len ? tok_bpe_encode(t, s, len, out, err) : 0;
}

int tok_encode(const tokenizer *t, const char *text, size_t len, int add_special,
               int parse_special, int32_t **ids, size_t *n_ids, inf_error *err) {
    if (!t || !ids || !n_ids || (!text && len))
        return inf_error_set(err, INF_EINVAL, "tok_encode: NULL argument");
    *ids = NULL;
    *n_ids = 0;
    tok_vec out = {0};
    int rc = 0;
    if (add_special && t->add_bos && (rc = tok_vec_push(&out, t->bos))) goto oom;

    /* SPM adds its space prefix at the start and after every special token
     * (llama.cpp's is_prev_special); an empty raw fragment adds nothing. */
    int after_special = 1;
    size_t start = 0, i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)text[i];
        int32_t hit = -1;
        for (uint32_t k = t->bucket[c]; k < t->bucket[c + 1]; k++) {
            int32_t id = t->special[k];
            int ty = t->types[id];
            if (!parse_special && (ty == TOK_TYPE_CONTROL || ty == TOK_TYPE_UNKNOWN)) continue;
            size_t sl = t->st.len[id];
            if (sl <= len - i && memcmp(text + i, strtab_str(&t->st, id), sl) == 0) {
                hit = id;
                break;
            }
        }
        if (hit < 0) {
            i++;
            continue;
        }
        if (i > start &&
            (rc = encode_raw(t, text + start, i - start, after_special, &out, err)))
            goto fail;
        if ((rc = tok_vec_push(&out, hit))) goto oom;
        after_special = 1;
        i += t->st.len[hit];
        start = i;
    }
    if (len > start && (rc = encode_raw(t, text + start, len - start, after_special, &out, err)))
        goto fail;
    if (add_special && t->add_eos && (rc = tok_vec_push(&out, t->eos))) goto oom;
    *ids = out.v;
    *n_ids = out.n;
    return 0;
oom:
    rc = inf_error_set(err, INF_ENOMEM, "out of memory while tokenizing %zu bytes", len);
fail:
    free(out.v);
    return rc;
}

/* ---- decoding ---------------------------------------------------------------- */

int tok_piece(const tokenizer *t, int32_t id, int flags, const char **bytes, size_t *len,
              inf_error *err) {
    if (id < 0 || id >= t->n_vocab)
        return inf_error_set(err, INF_ERANGE, "token id %d is outside the vocabulary (0..%d)", id,
                             t->n_vocab - 1);
    int ty = t->types[id];
    *bytes = t->pieces + t->piece_off[id];
    *len = t->piece_len[id];
    if (!(flags & TOK_DECODE_SPECIAL) && (ty == TOK_TYPE_CONTROL || ty == TOK_TYPE_UNKNOWN))
        *len = 0;
    return 0;
}

int tok_decode(const tokenizer *t, const int32_t *ids, size_t n, int flags, char **out,
               size_t *out_len, inf_error *err) {
    if (!t || !out || (!ids && n)) return inf_error_set(err, INF_EINVAL, "tok_decode: NULL argument");
    *out = NULL;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        const char *p = NULL;
        size_t l = 0;
        int rc = tok_piece(t, ids[i], flags, &p, &l, err);
        if (rc) return rc;
        total += l;
    }
    char *buf = malloc(total + 1);
    if (!buf) return inf_error_set(err, INF_ENOMEM, "out of memory decoding %zu tokens", n);
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        const char *p = NULL;
        size_t l = 0;
        tok_piece(t, ids[i], flags, &p, &l, NULL);
        memcpy(buf + pos, p, l);
        pos += l;
    }
    buf[pos] = '\0';
    if ((flags & TOK_DECODE_STRIP_SPACE) && t->add_space_prefix && pos > 0 && buf[0] == ' ') {
        memmove(buf, buf + 1, pos);
        pos--;
    }
    *out = buf;
    if (out_len) *out_len = pos;
    return 0;
}
