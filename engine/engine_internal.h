/* engine_internal.h - state shared by engine.c (API, inbox, events) and
 * scheduler.c (scheduling, forward, sampling). Not a public header. */
#ifndef INF_ENGINE_INTERNAL_H
#define INF_ENGINE_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#include "engine.h"
#include "gguf.h"
#include "grammar.h"
#include "kvcache.h"
#include "sampler.h"
#include "stopstr.h"
#include "tokenizer.h"

typedef enum eng_state {
    ENG_INBOX = 0,   /* added, not yet seen by a step */
    ENG_WAITING = 1, /* queued (new or preempted); holds no KV blocks */
    ENG_RUNNING = 2  /* admitted; holds KV blocks for its computed tokens */
} eng_state;

typedef struct eng_req {
    char id[ENGINE_ID_MAX + 1];
    void *user;
    int priority;
    int64_t deadline_us;  /* 0: none */
    int64_t arrival_us;
    int64_t key;          /* urgency: lower first (see engine.h, aging) */
    uint64_t seqno;       /* add order: the last tie-break */
    eng_state state;
    int abort_requested;

    /* prompt + generated tokens; the KV of [0, n_computed) is in seq */
    int32_t *tokens;
    int n_tokens, cap;
    int n_prompt;
    int n_computed;
    kv_seq seq;

    sampler *smp;
    stop_matcher *stop;
    tok_stream *detok;
    int logprobs;         /* params.logprobs */

    /* structured output (engine_grammar.c); gm NULL: unconstrained */
    grammar_matcher *gm;
    uint32_t *mask;       /* [grammar_mask_words] allowed tokens of the next step */
    int mask_rc;          /* the mask job's status (0: mask is valid) */
    int mask_n_allowed;
    char mask_msg[INF_ERROR_MSG_MAX];

    int cached_tokens;    /* prefix hit at first admission (usage) */
    int admitted_once;
    int was_preempted;    /* waiting after a preemption */
    int n_preemptions;
    int64_t first_sched_us, first_token_us, last_token_us; /* 0: not yet */

    /* scheduling scratch of the current step */
    int sched_n;          /* tokens planned this step (0: not planned) */
    int victim;           /* preempted during this step */
    struct eng_req *next; /* inbox link */
} eng_req;

/* One event plus the storage its pointers refer to. */
typedef struct eng_event_slot {
    engine_event ev;
    int32_t token;
    float logprob;
    sampler_logprob top[SAMPLER_MAX_LOGPROBS];
    char *text;      /* malloc'd, freed at the next step */
    char *message;   /* malloc'd */
} eng_event_slot;

typedef struct eng_abort {
    uint64_t seqno; /* the request in flight under that id when abort was called */
    struct eng_abort *next;
} eng_abort;

/* In-flight id set: chained hash table, guarded by engine.mu. */
typedef struct eng_id_node {
    struct eng_id_node *next;
    uint64_t hash;
    uint64_t seqno; /* of the request holding the id */
    char id[];
} eng_id_node;

struct engine {
    engine_config cfg;
    gguf_file *file;
    backend *be;
    tokenizer *tok;
    kv_pool *pool;
    model_desc desc;
    int n_vocab;
    int32_t eos_ids[2];
    int n_eos;
    int block_size;

    /* guarded by mu */
    pthread_mutex_t mu;
    eng_req *inbox_head, *inbox_tail;
    eng_abort *aborts;
    eng_id_node **ids;
    size_t ids_cap, n_inflight;
    uint64_t next_seqno;
    uint64_t entropy_ctr;
    int n_inbox;

    /* stepping thread only */
    eng_req **waiting; /* unsorted; sorted by key when scheduling */
    int n_waiting, cap_waiting;
    eng_req **running;
    int n_running, cap_running;

    /* forward scratch */
    int32_t *b_tokens, *b_pos, *b_seq;
    uint8_t *b_need;
    backend_seq *b_seqs;
    uint8_t *b_seqs_logits; /* [max_num_seqs] 1: sequence s gets a logits row */
    eng_req **plan;    /* [max_num_seqs] sequences of the step's batch */
    eng_req **snap;    /* [max_num_seqs] running set, sorted, while planning */
    float *logits;
    /* device sampling (dev_sampling: on for this engine), one entry per row */
    int dev_sampling;
    sampler_row *d_rows;      /* [max_num_seqs] */
    eng_req **d_req;          /* [max_num_seqs] the row's request (NULL: none) */
    uint32_t **d_masks;       /* [max_num_seqs] the row's token mask (NULL: none) */
    sampler_mod *d_mods;      /* [cap_d_mods] every row's modifiers */
    size_t cap_d_mods;
    int32_t *d_tok, *d_status, *d_top_tok; /* [max_num_seqs], [.. * 20] */
    float *d_lp, *d_top_lp;

    eng_event_slot *ev;
    int n_ev, cap_ev;
    engine_event *ev_flat; /* what engine_step hands out */
    int cap_flat;

    /* structured output (engine_grammar.c) */
    constraint_cache *ccache;
    pthread_mutex_t gmu;          /* creating gvocab (engine_add runs on any thread) */
    grammar_vocab *gvocab;        /* built at the first constrained request */
    struct eng_mask_pool *mpool;  /* the thread that computes masks beside the forward */
    int dev_masks;                /* the device sampler takes per-row token masks */
    uint64_t constrained_rows;
    double mask_ms;

    /* counters */
    uint64_t n_preemptions, prefix_query, prefix_hit;
    uint64_t prompt_computed, recomputed, generated, n_steps, n_finished, n_errors;
    uint64_t device_rows, host_rows; /* rows sampled on the device / on the host */
    uint64_t last_prompt_computed, last_generated;
    int64_t last_stats_us;
};

/* engine.c */
int64_t eng_now_us(const engine *e);
/* Removes id from the in-flight set (final event emitted). */
void eng_ids_remove(engine *e, const char *id);
void eng_req_free(engine *e, eng_req *r);
/* Appends an event slot (zeroed, id/user filled); NULL on out of memory. */
eng_event_slot *eng_event_new(engine *e, engine_event_type type, const eng_req *r);
/* Emits the final event of r (FINISHED with reason, or ERROR when code != 0),
 * releases its blocks, removes it from the id set and frees it. The caller
 * has already unlinked r from the waiting/running lists. */
int eng_finish(engine *e, eng_req *r, engine_finish_reason reason, int code, const char *msg,
               int stop_index, int32_t stop_token);
int eng_list_push(eng_req ***arr, int *n, int *cap, eng_req *r);
void eng_list_remove(eng_req **arr, int *n, eng_req *r);

/* engine_grammar.c: structured output */
int eng_gram_init(engine *e, inf_error *err);
void eng_gram_close(engine *e);
/* Compiles (through the cache) and attaches r's constraint; r->smp exists. */
int eng_gram_attach(engine *e, eng_req *r, const constraint_spec *c, inf_error *err);
void eng_gram_req_free(eng_req *r);
/* Starts computing the next mask of every constrained reqs[i] with
 * sample[i] set, on the mask thread (inline when it cannot start); returns
 * at once. eng_gram_masks_wait joins; then r->mask_rc says per request
 * whether r->mask is valid (a dead end is an error too). */
void eng_gram_masks_start(engine *e, eng_req **reqs, const uint8_t *sample, int n);
void eng_gram_masks_wait(engine *e);
/* Advances r's matcher over the sampled token; *done = 1 when the grammar
 * is complete and nothing can follow. */
int eng_gram_accept(engine *e, eng_req *r, int32_t tok, int *done, inf_error *err);

/* scheduler.c */
/* Applies the inbox, aborts and deadlines, schedules and runs one forward. */
int sched_step(engine *e, inf_error *err);
/* a more urgent than b: < 0 */
int sched_cmp(const eng_req *a, const eng_req *b);

#endif
