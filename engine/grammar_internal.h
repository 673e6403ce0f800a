/* grammar_internal.h - the compiled automaton shared by grammar_parse.c
 * (GBNF -> elements), grammar_match.c (stack-set matcher) and grammar_mask.c
 * (token trie, masks, mask cache). Not a public header.
 *
 * Elements are uint32: kind in the top two bits, argument below. Every
 * alternative of every rule is a run of elements ended by GE_END. A GE_TERM
 * matches one byte of its 256-bit set; a GE_REF enters a rule.
 *
 * A state is a flat uint32 buffer of stacks, each written as its length n
 * followed by n element positions, bottom first; the top is always a GE_TERM
 * position (or n is 0: the sentence is complete). States are canonical
 * (stacks sorted, no duplicates), so equal states are equal buffers. */
#ifndef INF_GRAMMAR_INTERNAL_H
#define INF_GRAMMAR_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "grammar.h"

#define GE_END 0u
#define GE_TERM 1u
#define GE_REF 2u
#define GE_KIND(e) ((e) >> 30)
#define GE_ARG(e) ((e) & 0x3fffffffu)
#define GE_MAKE(k, a) (((uint32_t)(k) << 30) | (uint32_t)(a))

typedef struct gram_set {
    uint32_t w[8];
} gram_set;

static inline int gram_set_has(const gram_set *s, unsigned b) { return (s->w[b >> 5] >> (b & 31)) & 1u; }

/* One cached mask: a state and the mask computed for it. */
typedef struct gram_mask_entry {
    uint64_t hash;
    const void *vocab;   /* the grammar_vocab it was computed for */
    uint32_t *state;     /* copy of the state buffer */
    size_t state_len;
    uint32_t *bits;
    int n_allowed;
} gram_mask_entry;

#define GRAM_CACHE_SLOTS 1024 /* open addressing; cleared when half full */

struct grammar {
    pthread_mutex_t mu; /* refs and the mask cache */
    int refs;
    uint32_t *elems;
    size_t n_elems;
    gram_set *sets;
    size_t n_sets;
    uint32_t *alt_start; /* [n_alts] first element of each alternative */
    uint32_t *rule_alt;  /* [n_rules + 1] alternatives of rule r: rule_alt[r] .. rule_alt[r+1] */
    size_t n_rules;
    uint32_t root;
    uint32_t *init;      /* the start state */
    size_t init_len;
    gram_mask_entry *cache; /* [GRAM_CACHE_SLOTS] */
    size_t cache_used;
};

/* grammar_match.c: the state that follows state[0..len) after byte b into
 * *out (grown as needed, *out_cap its capacity in uint32). *out_len 0 means
 * no stack accepted b. Errors: INF_ERANGE (limits), INF_ENOMEM. */
typedef struct gram_scratch {
    uint32_t *stk;       /* [GRAMMAR_MAX_DEPTH + 1] expansion stack */
    uint32_t *recs;      /* emitted stack records before sorting */
    size_t n_recs, cap_recs;
    uint32_t *offs;      /* record offsets */
    size_t n_offs, cap_offs;
    const uint32_t *sort_base;
} gram_scratch;

int gram_scratch_init(gram_scratch *s);
void gram_scratch_free(gram_scratch *s);
int gram_advance(const grammar *g, gram_scratch *s, const uint32_t *state, size_t len, uint8_t b,
                 uint32_t **out, size_t *out_len, size_t *out_cap, inf_error *err);
/* The start state of g into *out (malloc'd). */
int gram_initial(const grammar *g, gram_scratch *s, uint32_t **out, size_t *out_len, inf_error *err);
/* The union of the byte sets on top of the stacks of a state. */
void gram_first_bytes(const grammar *g, const uint32_t *state, size_t len, gram_set *out);
int gram_state_accepting(const uint32_t *state, size_t len);
uint64_t gram_state_hash(const uint32_t *state, size_t len);

#endif
