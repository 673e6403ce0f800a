/* kafka_in.h - the worker's Kafka side: one group consumer over the priority
 * request topics (index 0 most urgent), in-flight capping with pause/resume,
 * at-least-once offset tracking, and the dead-letter producer.
 *
 * Threading: kin_poll, kin_close and kin_free belong to one thread; the other
 * calls (kin_msg_done, kin_send_dlq, kin_poll_dlq_acks, kin_stats, ...) may
 * come from any thread: an internal mutex is never held while kin_poll
 * blocks, and kin_msg_done wakes a waiting kin_poll. librdkafka callbacks only
 * run inside kin_* calls.
 *
 * Liveness: call kin_poll at least every max.poll.interval.ms (default 5 min),
 * also while at the cap: that is what serves rebalances and heartbeats, and a
 * consumer that stops polling is thrown out of the group.
 *
 * At-least-once: a message returned by kin_poll is "in flight" until
 * kin_msg_done. Per partition, the offset stored/committed is the lowest
 * in-flight offset, or (none in flight) the last returned offset + 1; so a
 * crash or a lost partition redelivers exactly the unfinished messages (and
 * possibly some finished ones above an unfinished one). When a partition is
 * revoked its tracking is dropped: the in-flight messages stay valid, still
 * count towards max_inflight and must still be passed to kin_msg_done, but they
 * no longer move any offset (whoever gets the partition redelivers them).
 */
#ifndef INF_KAFKA_IN_H
#define INF_KAFKA_IN_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define KIN_MAX_TOPICS 3

typedef struct kin kin;

typedef struct kin_config {
    const char *brokers;                 /* bootstrap "host:port,..." (required) */
    const char *group;                   /* "inferno-workers" */
    const char *topics[KIN_MAX_TOPICS];  /* high, normal, low; urgency = index */
    int n_topics;                        /* 1..3; default 3 */
    const char *dlq_topic;               /* "inferno.requests.dlq"; NULL: no DLQ producer */
    const char *group_instance_id;       /* static membership (group.instance.id); NULL off.
                                          * A static member does not leave on close: its
                                          * partitions wait session.timeout.ms for it */
    int max_inflight;                    /* cap (default 64); partitions paused at the cap */
    int urgent_reserve;                  /* added: slots kept for more urgent topics: topic i is
                                          * paused (and not read) once inflight >=
                                          * max_inflight - i * urgent_reserve, so the lowest
                                          * priority pauses first; 0 (default): all at the cap */
    const char *const *props;            /* librdkafka passthrough "key=value" (-X) */
    int n_props;
    /* Added (0 = default): */
    int session_timeout_ms;              /* 10000 (the mock cluster needs >= 6000) */
    int max_poll_interval_ms;            /* 300000 */
    int commit_interval_ms;              /* 200: at most one explicit async commit per interval */
    int queued_max_kbytes;               /* 256: queued.max.messages.kbytes (small: do not hoard) */
    const char *client_id;               /* "inferno-worker" */
    int max_message_bytes;               /* request size limit (0: KIN_MAX_MESSAGE_DEFAULT); the
                                          * fetch and DLQ limits follow from it, see kin_create */
} kin_config;

/* max_message_bytes: the largest request value the worker serves. The
 * consumer's fetch.max.bytes and max.partition.fetch.bytes are 2 x
 * max_message_bytes (at least 1000000, which librdkafka requires of
 * fetch.max.bytes), receive.message.max.bytes that + 64 KiB (at least
 * librdkafka's 100000000), so a message somewhat over the limit is fetched
 * and rejected instead of stalling its partition (brokers hand out a record
 * bigger than the fetch limits anyway, alone, up to
 * receive.message.max.bytes). The DLQ producer's message.max.bytes is
 * max_message_bytes + KIN_DLQ_HEADROOM: a copy of any servable request fits
 * whole with its key and headers; bigger values are cut to fit
 * (kin_send_dlq). */
#define KIN_MAX_MESSAGE_DEFAULT 1048576
#define KIN_MAX_MESSAGE_MIN 1024
#define KIN_MAX_MESSAGE_MAX (256 * 1048576)
#define KIN_DLQ_HEADROOM 16384

/* Defaults as documented above (topics inferno.requests.{high,normal,low}).
 * All strings are static. */
kin_config kin_config_default(void);

/* Validates cfg, creates the consumer (subscribed, cooperative-sticky,
 * enable.auto.offset.store=false, auto.offset.reset=earliest unless -X says
 * otherwise) and, when dlq_topic is set, the DLQ producer. Each "key=value" in
 * props is applied to the consumer and to the producer where it applies; a
 * malformed entry, an unknown key or a bad value fails with INF_EINVAL and a
 * message naming it. So does an override that contradicts max_message_bytes
 * (the message names both values): fetch.max.bytes or
 * max.partition.fetch.bytes below max_message_bytes, receive.message.max.bytes
 * below fetch.max.bytes + 512, the producer's message.max.bytes below
 * max_message_bytes + KIN_DLQ_HEADROOM; larger values are fine. Does not wait
 * for the brokers (they may be down: librdkafka retries). Defaults besides:
 * fetch.wait.max.ms=100, queued.min.messages=64, auto commit of stored offsets
 * every second (on top of kin_msg_done's own commits). A "consumer." or
 * "producer." prefix sends a property to that client only; unprefixed ones go
 * where librdkafka applies them. cfg's strings are copied. Caller frees *out
 * with kin_free. */
int kin_create(kin **out, const kin_config *cfg, inf_error *err);

/* Destroys the handle without committing anything further (what was already
 * committed stays; uncommitted work is redelivered). Call kin_close first for a
 * clean exit. Frees messages still waiting in kin_poll_dlq_acks's queue but not
 * in-flight kin_msg objects the caller holds (free those with kin_msg_done
 * before, or kin_msg_free). The consumer destroy is bounded (5 s): if
 * librdkafka hangs (seen after a coordinator went down) the handle is leaked
 * rather than hanging the caller. NULL is fine. */
void kin_free(kin *k);

typedef struct kin_msg {
    int topic_index;     /* 0 = most urgent */
    const char *topic;   /* owned by the kin handle (valid until kin_free) */
    int32_t partition;
    int64_t offset;
    const void *key;     /* copies owned by the msg; NUL-terminated (not counted in _len); NULL if none */
    size_t key_len;
    const void *value;   /* NULL if the record had no value */
    size_t value_len;
    /* Added: */
    int64_t timestamp_ms; /* record timestamp, -1 if unknown */
    /* The caller's, never read or written by kin (NULL at kin_poll): handed
     * back with the message in DLQ acknowledgements (kin_poll_dlq_acks). */
    void *user;
} kin_msg;

/* Waits up to timeout_ms (0: no wait) for a request. Returns 0 with *out set
 * (caller owns it until kin_msg_done), or 0 with *out NULL on timeout. Never
 * returns a message while kin_inflight >= max_inflight: then it keeps serving
 * the consumer (rebalances, heartbeats, max.poll.interval.ms, commits, DLQ
 * delivery reports) with every partition paused. When several topics have
 * messages ready, the most urgent topic's is returned first. Errors from
 * Kafka (broker down, ...) are not returned: librdkafka retries; see
 * kin_stats. Returns INF_ESTATE after kin_close. */
int kin_poll(kin *k, int timeout_ms, kin_msg **out, inf_error *err);

/* The request reached its final entry (Redis or the DLQ): marks m's offset
 * done, frees m, stores the highest offset below which everything on that
 * partition is done (never beyond an unfinished offset) and schedules an async
 * commit; decrements inflight and resumes paused partitions, most urgent
 * first. m from a since revoked partition only decrements inflight. */
void kin_msg_done(kin *k, kin_msg *m);

/* Frees m WITHOUT marking it done (it stays unfinished: its partition's
 * committed offset cannot pass it until the partition is revoked or the
 * process restarts); still decrements inflight. For shutdown paths. */
void kin_msg_free(kin *k, kin_msg *m);

/* Produces m's raw value and key to the DLQ topic with headers
 * x-inferno-reason (cut to 1 KiB), x-inferno-source-topic,
 * x-inferno-source-partition, x-inferno-source-offset, x-inferno-request-id
 * (when known), plus m's own headers. A copy that does not fit the producer's
 * message.max.bytes (or that the broker refuses as too large) is truncated:
 * the value is cut to fit, with headers x-inferno-truncated: "1" and
 * x-inferno-original-size: <value bytes>; a huge key or huge own headers
 * are cut or dropped too (the value first goes to 0 bytes).
 * Async: m is handed back by kin_poll_dlq_acks once its copy was delivered
 * or given up, so every accepted message comes back. Transient failures
 * (broker away, timeouts) are produced again with a backoff of 0.5-30 s for
 * as long as it takes; permanent ones (too large, invalid record, topic
 * authorization, unknown topic, ...) get a truncated copy where size is the
 * cause, and after KIN_DLQ_MAX_PERMANENT refused attempts the copy is given
 * up (kin_stats dlq_given_up, kin_dlq_result). The caller keeps ownership of
 * m meanwhile but must not free it or call kin_msg_done on it before then.
 * INF_EFULL when the producer queue is full (call again later), INF_ESTATE
 * without a DLQ topic or while m has a copy pending. */
int kin_send_dlq(kin *k, const kin_msg *m, const char *reason, const char *request_id_or_null, inf_error *err);

#define KIN_DLQ_MAX_PERMANENT 5

/* Fills msgs with up to max messages whose DLQ copy was delivered or given
 * up; returns how many. The caller then calls kin_msg_done on each (its
 * offset moves either way: a copy that can never be delivered must not
 * block the partition) after looking at kin_dlq_result if it cares. */
int kin_poll_dlq_acks(kin *k, kin_msg **msgs, int max);

typedef enum kin_dlq_outcome {
    KIN_DLQ_DELIVERED = 0, /* the whole copy is on the DLQ topic */
    KIN_DLQ_TRUNCATED = 1, /* a truncated copy is (x-inferno-truncated) */
    KIN_DLQ_GAVE_UP = 2    /* permanently refused: no copy */
} kin_dlq_outcome;

/* How the DLQ copy of m (from kin_poll_dlq_acks, before kin_msg_done) ended;
 * *value_bytes (may be NULL): value bytes the delivered copy carried; *why
 * (may be NULL): the last delivery error ("" if none), valid until
 * kin_msg_done. */
kin_dlq_outcome kin_dlq_result(const kin_msg *m, size_t *value_bytes, const char **why);

/* Makes a kin_poll that is waiting (or the next one) return at once, e.g.
 * because another thread has work for the caller's loop. Any thread;
 * async-signal-unsafe only in that it writes to a pipe. */
void kin_wake(kin *k);

/* Messages returned by kin_poll and not yet done/freed. */
int kin_inflight(const kin *k);

/* Partitions currently assigned to this consumer. */
int kin_assigned(const kin *k);

#define KIN_STATS_MAX_PARTS 64

typedef struct kin_part_stats {
    int topic_index;
    int32_t partition;
    int paused;
    int inflight;         /* tracked unfinished messages */
    int64_t stored;       /* next offset to commit (-1: none yet) */
    int64_t high_watermark; /* -1 unknown */
    int64_t lag;          /* high_watermark - stored (or - position), -1 unknown */
} kin_part_stats;

typedef struct kin_stats_t {
    int assigned, paused, inflight, max_inflight;
    int dlq_pending;              /* sent to the DLQ, not yet confirmed */
    int brokers_up;               /* 0: all brokers down (last reported) */
    int queued[KIN_MAX_TOPICS];   /* fetched locally, not yet returned by kin_poll (approximate) */
    long long received, done, commits, commit_errors, rebalances, errors;
    long long dlq_sent;           /* messages handed to the DLQ (kin_send_dlq accepted) */
    long long dlq_failed;         /* failed delivery attempts of DLQ copies (each retry counts) */
    long long dlq_given_up;       /* copies given up (permanent errors), messages handed back */
    long long dlq_truncated;      /* copies delivered truncated */
    char last_error[256];         /* last Kafka error, "" if none */
    int n_parts;                  /* entries in parts (at most KIN_STATS_MAX_PARTS) */
    kin_part_stats parts[KIN_STATS_MAX_PARTS];
} kin_stats_t;

/* Snapshot of counters and per-partition state. */
void kin_stats(kin *k, kin_stats_t *st);

/* Pauses everything, commits what is done synchronously (retrying while the
 * coordinator is being looked up), waits for pending DLQ deliveries and leaves
 * the group, all within timeout_ms. Returns INF_ETIMEOUT/INF_EIO (with the
 * reason) when the final commit or the leave did not complete; what was not
 * committed is redelivered later, never lost. In-flight messages stay valid
 * for kin_msg_done/kin_msg_free but move no offsets any more. Call once; then
 * kin_free. */
int kin_close(kin *k, int timeout_ms, inf_error *err);

#endif
