/* redis_internal.h - shared state of the redis_*.c files (not public). */
#ifndef INF_REDIS_INTERNAL_H
#define INF_REDIS_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "redis_out.h"

#define RDS_BUCKETS 1024

/* One queued XADD (plus optional EXPIRE), immutable once queued except for
 * `sent`/`skip`, which only the sender thread touches. */
typedef struct rds_entry {
    struct rds_entry *next;
    int is_final;
    int expire_s;      /* EXPIRE after the XADD; 0 none */
    void *ack_ctx;
    int sent;          /* times handed to Redis without a confirmed reply */
    int skip_xadd;     /* resend found it already written: only the EXPIRE */
    const char *claim_id; /* a claim (first start entry, XADD with ID 0-1, which only an
                             empty stream accepts): the request id, inside buf; else NULL */
    size_t bytes;      /* accounted against max_pending_bytes */
    int argc;
    const char **argv; /* argv[1] is the stream key */
    size_t *argvlen;
    char *buf;         /* storage of all arguments */
} rds_entry;

/* A stream another writer owned when this client's claim reached it: every
 * queued entry for it is dropped (never written into the other request's
 * stream) until its final entry, which removes the record. */
typedef struct rds_claimed {
    struct rds_claimed *next;
    char *key;
} rds_claimed;

/* A growable byte buffer. */
typedef struct rds_buf {
    char *p;
    size_t len, cap;
} rds_buf;

/* The open (not yet queued) token batch of one stream. */
typedef struct rds_open {
    struct rds_open *hnext;        /* hash chain */
    struct rds_open *prev, *next;  /* by opening time, oldest first */
    char *key;
    int seq;
    int n_tokens;
    int has_logprobs;
    double opened_ms;
    size_t bytes;                  /* currently accounted */
    rds_buf text, ids, logprobs;
} rds_open;

struct rds {
    rds_config cfg;        /* strings point into owned copies below */
    char *s_url, *s_out_prefix, *s_cancel_channel, *s_cancel_key_prefix, *s_workers_zset,
        *s_worker_key_prefix;
    rds_url url;

    pthread_mutex_t mu;    /* queue, open batches, acks, counters */
    pthread_cond_t wake;   /* sender: new work or stop */
    pthread_cond_t idle;   /* rds_flush: queue drained */
    rds_entry *head, *tail;
    size_t n_entries;
    size_t pending_bytes;
    rds_open *buckets[RDS_BUCKETS];
    rds_open *open_head, *open_tail;
    size_t n_open;
    void **acks;
    size_t acks_len, acks_cap;
    void **refused;        /* ack_ctx of final entries dropped: their stream was claimed */
    size_t refused_len, refused_cap;
    struct rds_claimed *claimed; /* streams whose claim failed: their entries are dropped */
    long long written, write_errors, reconnects;
    long long refusals;    /* commands refused for want of a permission or credentials */
    double last_publish_ms;
    char last_error[160];
    char last_refusal[RDS_REFUSAL_MAX];
    int stopping;
    atomic_int connected;
    pthread_t sender;
    int sender_started;

    /* cancel subscriber */
    pthread_mutex_t cmu;
    char (*cancel_ids)[RDS_ID_MAX + 1];
    size_t cancel_len, cancel_cap;
    long long cancels_received;
    int cancel_pipe[2];    /* rds_free writes a byte to wake the subscriber */
    pthread_t canceller;
    int canceller_started;

    /* query connection */
    pthread_mutex_t qmu;
    redisContext *qc;

    /* checker thread (redis_check.c): admission checks and heartbeats off
     * the caller's thread */
    pthread_mutex_t kmu;
    pthread_cond_t kwake;
    struct rds_chk *chk_head, *chk_tail;   /* waiting checks, submit order */
    rds_check_result *chk_res;             /* finished, not yet polled */
    size_t chk_res_len, chk_res_cap;
    double chk_pause_until;                /* monotonic: Redis failing, back off */
    int chk_backoff_ms;
    int hb_pending, hb_done, hb_ok, hb_ttl_s;
    int hb_running, hb_closed;             /* closed by rds_unregister: no more heartbeats */
    rds_worker_info hb_info;               /* strings point into hb_str */
    char hb_str[8][256];
    char hb_err[INF_ERROR_MSG_MAX];
    int kstopping;
    pthread_t checker;
    int checker_started;
};

/* One admission check waiting for the checker thread. */
typedef struct rds_chk {
    struct rds_chk *next;
    char *key;
    char id[RDS_ID_MAX + 1];
    void *ctx;
} rds_chk;

/* What a bounded scan of a reply stream found. */
typedef struct rds__scan {
    int has_final;
    int last_attempt;
    long entries;
} rds__scan;

double rds__now_ms(void);      /* monotonic */
long long rds__epoch_ms(void); /* wall clock */

/* Records msg as last_error (takes r->mu itself). */
void rds__set_last_error(rds *r, const char *msg);

/* 1 if a Redis error means the connection's user may not do this (NOPERM)
 * or is not who it claims (NOAUTH, WRONGPASS): only an operator fixes it. */
int rds__is_refusal(const char *msg);

/* Counts msg as a refusal and keeps it as last_refusal when rds__is_refusal
 * says so (takes r->mu itself; the caller must not hold it). Retrying such a
 * command is right (the ACL may be fixed), but silently retrying forever is
 * not: rds_stats hands the count and message to the caller to report. */
void rds__note_refusal(rds *r, const char *msg);

/* Formats Redis error reply redis_msg of command cmd on key (NULL: none)
 * into out, naming a missing permission as such. */
void rds__format_reply_error(char *out, size_t cap, const char *cmd, const char *key, const char *redis_msg);

/* Queue helpers (redis_out.c); callers hold r->mu where state is touched. */
void rds__abs_deadline(struct timespec *ts, double ms_from_now);
void rds__entry_free(rds_entry *e);
void rds__seal_expired(rds *r, double now, int all); /* all: every open batch */

/* The sender thread (redis_send.c). */
void *rds__sender_main(void *arg);

/* Appends ctx to a growable pointer list (caller holds r->mu); a failed
 * allocation keeps the list as it was and returns INF_ENOMEM. */
int rds__ptrs_push(void ***v, size_t *len, size_t *cap, void *ctx);

/* Cancel subscriber (redis_cancel.c). */
int rds__cancel_start(rds *r, inf_error *err);
void rds__cancel_stop(rds *r);

/* Query connection (redis_query.c). */
void rds__query_close(rds *r);

/* 1 if a Redis error reply may go away by itself (LOADING, OOM, NOPERM...):
 * the command is retried; others (WRONGTYPE) never succeed. */
int rds__transient_error(const char *redis_msg);

/* Scans stream_key (XRANGE pages, at most cfg.scan_max_entries entries) on
 * the query connection. With request_id set, the stream must belong to it:
 * INF_EEXIST when a start entry names another request, INF_EFORMAT when an
 * entry has no event field (a stream the worker did not write), the key is
 * not a stream, or the stream is longer than the bound. INF_EIO: connection
 * or transient error (retry). A missing key is an empty stream. */
int rds__scan_stream(rds *r, const char *stream_key, const char *request_id, rds__scan *out,
                     inf_error *err);

/* Checker thread (redis_check.c). */
int rds__checker_start(rds *r, inf_error *err);
void rds__checker_stop(rds *r);
void rds__heartbeat_close(rds *r);

#endif
