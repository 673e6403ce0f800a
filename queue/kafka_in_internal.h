/* kafka_in_internal.h - state shared by queue/kafka_in.c (consumer, flow
 * control, offsets) and queue/kafka_dlq.c (dead-letter producer). Not a
 * public interface. Locking: k->mu guards everything below except the
 * immutable config and handles; librdkafka callbacks take it themselves, and
 * it is never held across a blocking librdkafka call. */
#ifndef INF_KAFKA_IN_INTERNAL_H
#define INF_KAFKA_IN_INTERNAL_H

#include <librdkafka/rdkafka.h>
#include <pthread.h>

#include "kafka_in.h"
#include "kafka_offsets.h"

/* One topic-partition this consumer has seen assigned. */
typedef struct kin_part {
    int topic_index;
    int32_t partition;
    int assigned;
    int paused;       /* 1 paused, 0 running, -1 unknown (just assigned) */
    uint32_t epoch;   /* bumped on every assign/revoke: stale msgs move no offsets */
    kin_otrack tr;
    int64_t stored;   /* last value given to rd_kafka_offsets_store, -1 none */
    int dirty;        /* stored since the last commit */
} kin_part;

/* Private part of a kin_msg (the public struct is first). */
typedef struct kin_msg_i {
    kin_msg pub;
    int part_idx;
    uint32_t epoch;
    rd_kafka_headers_t *hdrs; /* the record's own headers, or NULL */
    /* Its DLQ copy (kafka_dlq.c), while one is pending: */
    rd_kafka_headers_t *dlq_hdrs; /* our x-inferno-* headers */
    int dlq_attempts;             /* produce attempts (backoff) */
    int dlq_refused;              /* permanent refusals (KIN_DLQ_MAX_PERMANENT) */
    size_t dlq_limit;             /* record size the copy must fit */
    size_t dlq_key_len, dlq_value_len; /* what the copy carries of key and value */
    int dlq_own_hdrs;             /* the record's own headers ride along */
    int dlq_cut;                  /* not the whole record: x-inferno-truncated */
    /* Once handed back by kin_poll_dlq_acks (kin_dlq_result): */
    int dlq_outcome;              /* kin_dlq_outcome */
    char dlq_why[160];            /* last delivery error, "" if none */
} kin_msg_i;

/* A DLQ copy waiting to be produced again after a failed delivery. */
typedef struct kin_dlq_retry {
    kin_msg *m;
    long long due_ms;
} kin_dlq_retry;

struct kin {
    pthread_mutex_t mu;
    char *topics[KIN_MAX_TOPICS];
    int n_topics;
    char *dlq_topic;
    int max_inflight, urgent_reserve, commit_interval_ms;
    size_t max_message_bytes;        /* kin_config's, resolved */
    size_t dlq_max_bytes;            /* the DLQ producer's effective message.max.bytes */

    rd_kafka_t *rk;                  /* group consumer */
    rd_kafka_t *prod;                /* DLQ producer, NULL without a DLQ topic */
    rd_kafka_queue_t *cq;            /* consumer queue handle (io events); NULL after close */
    rd_kafka_queue_t *tq[KIN_MAX_TOPICS]; /* per-topic queues, partitions forwarded here */
    rd_kafka_queue_t *pq;            /* producer main queue handle (io events) */
    int wake[2];                     /* pipe: librdkafka io events and kin_msg_done wake kin_poll */

    kin_part *parts;
    int n_parts, cap_parts;
    /* Messages that reached the consumer queue instead of a topic queue
     * (before forwarding took effect): FIFO per topic. */
    rd_kafka_message_t **stash[KIN_MAX_TOPICS];
    int stash_n[KIN_MAX_TOPICS], stash_cap[KIN_MAX_TOPICS];

    int inflight, closed, fatal, dirty, freeing;
    long long last_commit_ms;
    rd_kafka_queue_t *commitq;       /* results of our explicit commits */
    int commit_outstanding;          /* one explicit commit at a time keeps them in order */
    long long commit_sent_ms;

    kin_msg **acked; /* DLQ copies confirmed, for kin_poll_dlq_acks */
    int n_acked, cap_acked;
    kin_dlq_retry *retry;
    int n_retry, cap_retry;
    int dlq_pending;

    int brokers_up;
    long long received, done, commits, commit_errors, rebalances, dlq_sent, dlq_failed, errors;
    long long dlq_given_up, dlq_truncated;
    char last_error[256];
};

long long kin_now_ms(void);
/* Records a Kafka error for kin_stats (lock held). */
void kin_note_error(kin *k, const char *what, const char *detail);

/* kafka_in.c, used by kafka_close.c (lock held unless said otherwise) */
/* Pauses/resumes partitions to match the in-flight level. */
void kin_apply_flow(kin *k);
/* Collects results of explicit commits; never blocks. */
void kin_serve_commits(kin *k);
/* Serves the consumer queue for up to ms (lock NOT held; callbacks lock). */
void kin_serve_consumer(kin *k, int ms);
/* Applies an assignment or revocation (lock NOT held; takes it). */
void kin_handle_rebalance(kin *k, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts);

/* kafka_conf.c */
int kin_config_validate(const kin_config *c, inf_error *err);
/* New librdkafka configurations with the -X properties applied; caller
 * owns *out (rd_kafka_new takes it). */
int kin_consumer_conf(const kin_config *c, rd_kafka_conf_t **out, inf_error *err);
int kin_producer_conf(const kin_config *c, rd_kafka_conf_t **out, inf_error *err);
/* max_message_bytes with the default applied. */
size_t kin_max_message_bytes(const kin_config *c);
/* The value of a librdkafka integer property in conf (-1 if unreadable). */
long long kin_conf_num(const rd_kafka_conf_t *conf, const char *key);

/* kafka_dlq.c */
void kin_dlq_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque);
/* Re-produces due retries (lock held). */
void kin_dlq_service(kin *k);
/* Purges pending DLQ copies and frees every message the DLQ still holds
 * (kin_free; no lock needed, nothing else runs). */
void kin_dlq_free_lists(kin *k);
/* Frees a message's copies and headers. */
void kin_msg_destroy(kin_msg *m);

#endif
