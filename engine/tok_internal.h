/* tok_internal.h - shared internals of the tokenizer module (tokenizer.c,
 * tok_spm.c, tok_bpe.c, tok_stream.c). Not part of the public API. */
#ifndef INF_TOK_INTERNAL_H
#define INF_TOK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer.h"

/* Growable id list used while encoding. */
typedef struct tok_vec {
    int32_t *v;
    size_t n, cap;
} tok_vec;

int tok_vec_push(tok_vec *v, int32_t id);

/* String table with a hash index: every string has an id (its index). The
 * first n_vocab strings are the vocabulary (so a string id below n_vocab is a
 * token id); BPE appends merge parts that are not tokens after them. */
typedef struct tok_strtab {
    char *arena;
    size_t arena_len, arena_cap;
    uint64_t *off;    /* per string: offset into arena */
    uint32_t *len;    /* per string: byte length */
    int32_t n, cap;
    int32_t *slots;   /* hash index: string id or -1 */
    uint32_t mask;    /* slots size - 1 */
} tok_strtab;

/* Looks up s; returns its string id or -1. */
int32_t tok_strtab_find(const tok_strtab *st, const char *s, size_t len);

/* Merge table (BPE): (left string id, right string id) -> rank, result id. */
typedef struct tok_merge {
    uint64_t key; /* left << 32 | right; UINT64_MAX when the slot is empty */
    int32_t rank;
    int32_t result;
} tok_merge;

/* Bigram candidate for the merge loops: higher pri first, then smaller left. */
typedef struct tok_bigram {
    double pri;
    int32_t left, right;
    uint32_t size;
    int32_t result; /* BPE: string id of the merged symbol */
} tok_bigram;

typedef struct tok_heap {
    tok_bigram *h;
    size_t n, cap;
} tok_heap;

int tok_heap_push(tok_heap *hp, tok_bigram b);
tok_bigram tok_heap_pop(tok_heap *hp);

struct tokenizer {
    tok_model model;
    char pre[64];
    int pre_fallback;
    int32_t n_vocab;

    tok_strtab st;
    float *scores;   /* n_vocab */
    uint8_t *types;  /* n_vocab, TOK_TYPE_* */

    /* Decoded bytes of every token (see tok_piece). */
    char *pieces;
    uint64_t *piece_off;
    uint32_t *piece_len;

    int32_t bos, eos, eot, unk, pad;
    int add_bos, add_eos, add_space_prefix;

    /* Special texts (control, unknown, user-defined), bucketed by first byte,
     * each bucket longest first: ids special[bucket[b] .. bucket[b+1]). */
    int32_t *special;
    uint32_t bucket[257];

    /* SPM: id of <0xNN> per byte, or -1. */
    int32_t byte_tok[256];

    /* BPE */
    tok_merge *merges;
    uint64_t merge_mask;
    int ignore_merges;
    uint16_t byte_cp[256];  /* GPT-2 byte -> code point */
    int16_t cp_byte[324];   /* inverse, -1 where unmapped */
    void **re;              /* pcre2_code_8 *, n_re of them */
    int n_re;
};

/* Length of the well-formed UTF-8 sequence at s[0..n): >0 its length, 0 if it
 * is a valid prefix cut short by n, -k if the first k bytes are a maximal
 * invalid subpart. n must be >= 1. */
int tok_utf8_seq(const unsigned char *s, size_t n);

/* SPM: encodes one raw text fragment, appending to out. */
int tok_spm_encode(const tokenizer *t, const char *text, size_t len, int add_prefix,
                   tok_vec *out, inf_error *err);

/* BPE: sets up the byte map, merges and regexes from f. */
int tok_bpe_load(tokenizer *t, const gguf_file *f, int flags, inf_error *err);
void tok_bpe_free(tokenizer *t);
/* BPE: encodes one raw text fragment, appending to out. */
int tok_bpe_encode(const tokenizer *t, const char *text, size_t len, tok_vec *out,
                   inf_error *err);
/* BPE: decodes a byte-mapped vocabulary text into raw bytes (dst has room
 * for len bytes); returns the decoded length. */
size_t tok_bpe_unmap(const tokenizer *t, const char *s, size_t len, char *dst);

/* Adds string s (copied) to the table if absent; returns its id or a negative status. */
int32_t tok_strtab_intern(tok_strtab *st, const char *s, size_t len);

#endif
