/* kafka_dlq.c - the dead-letter producer: a bad request's raw value and key
 * go to the DLQ topic with headers saying why and where it came from. A copy
 * is confirmed by its delivery report; then kin_poll_dlq_acks hands the
 * message back so the caller can mark it done.
 *
 * Every accepted message comes back, because a message that never does
 * stays in flight forever and blocks its partition's commit (and a drain)
 * behind it. So: a copy bigger than the producer takes is cut to fit before
 * it is produced; transient failures (broker away, timeouts) are produced
 * again with a backoff for as long as it takes; permanent ones are not
 * retried as such: where size is the cause the next copy is smaller, and
 * after KIN_DLQ_MAX_PERMANENT refusals the copy is given up and the message
 * handed back without one (counted, kin_dlq_result says so). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka_in_internal.h"

#define DLQ_BACKOFF_MIN_MS 500
#define DLQ_BACKOFF_MAX_MS 30000
/* librdkafka counts 36 bytes of record framing besides key, value and
 * headers against message.max.bytes (RD_KAFKAP_MESSAGE_V2_MAX_OVERHEAD);
 * the rest is margin so our estimate is never the one that is short. */
#define DLQ_RECORD_OVERHEAD 128
#define DLQ_TRUNC_HDRS 96    /* x-inferno-truncated + x-inferno-original-size, bounded */
#define DLQ_REASON_MAX 1024  /* x-inferno-reason is cut to this */
#define DLQ_LOCAL_SHRINKS 8  /* local size refusals tried again at once, at most */

/* Serialized size of a header list, bounded above (varints at 5 bytes). */
static size_t hdrs_bytes(const rd_kafka_headers_t *h) {
    const char *name;
    const void *val;
    size_t size, n = 0;
    for (size_t i = 0; h && rd_kafka_header_get_all(h, i, &name, &val, &size) == 0; i++)
        n += 10 + strlen(name) + (val ? size : 0);
    return n;
}

/* Bytes the copy as planned counts against message.max.bytes (bounded above). */
static size_t copy_bytes(const kin_msg_i *mi) {
    return DLQ_RECORD_OVERHEAD + hdrs_bytes(mi->dlq_hdrs) + (mi->dlq_cut ? DLQ_TRUNC_HDRS : 0) +
           (mi->dlq_own_hdrs ? hdrs_bytes(mi->hdrs) : 0) + mi->dlq_key_len + mi->dlq_value_len;
}

/* Plans what the copy carries so that it fits mi->dlq_limit: everything if
 * it fits, else the value is cut. A key or own headers that would take more
 * than a quarter of the room are hostile (request ids are short): the key
 * is cut and the headers dropped, so the copy still carries the value's
 * start, which is what someone reading the DLQ needs. */
static void fit(kin_msg_i *mi) {
    const kin_msg *m = &mi->pub;
    size_t ours = hdrs_bytes(mi->dlq_hdrs), own = hdrs_bytes(mi->hdrs), lim = mi->dlq_limit;
    mi->dlq_key_len = m->key_len;
    mi->dlq_value_len = m->value_len;
    mi->dlq_own_hdrs = 1;
    mi->dlq_cut = 0;
    if (DLQ_RECORD_OVERHEAD + ours + own + m->key_len + m->value_len <= lim) return;
    mi->dlq_cut = 1;
    size_t fixed = DLQ_RECORD_OVERHEAD + ours + DLQ_TRUNC_HDRS;
    size_t budget = lim > fixed ? lim - fixed : 0;
    if (own > budget / 4) {
        mi->dlq_own_hdrs = 0;
        own = 0;
    }
    if (mi->dlq_key_len > budget / 4) mi->dlq_key_len = budget / 4;
    size_t room = budget - own - mi->dlq_key_len;
    if (mi->dlq_value_len > room) mi->dlq_value_len = room;
}

/* After a refusal for size: the next copy must fit a smaller record - the
 * request limit first (a broker takes what its request topics take), then
 * half of the last one. 0 when nothing is left to cut. */
static int shrink(kin *k, kin_msg_i *mi) {
    if (mi->dlq_value_len == 0 && mi->dlq_key_len == 0 && !mi->dlq_own_hdrs) return 0;
    size_t cur = copy_bytes(mi);
    size_t next = cur > k->max_message_bytes ? k->max_message_bytes : cur / 2;
    mi->dlq_limit = next < mi->dlq_limit ? next : mi->dlq_limit / 2;
    return 1;
}

/* Hands m's planned copy to librdkafka once (lock held). */
static rd_kafka_resp_err_t produce_once(kin *k, kin_msg *m) {
    kin_msg_i *mi = (kin_msg_i *)m;
    rd_kafka_headers_t *h = rd_kafka_headers_copy(mi->dlq_hdrs);
    if (mi->dlq_cut) {
        char num[32];
        snprintf(num, sizeof num, "%zu", m->value_len);
        rd_kafka_header_add(h, "x-inferno-truncated", -1, "1", 1);
        rd_kafka_header_add(h, "x-inferno-original-size", -1, num, (ssize_t)strlen(num));
    }
    /* Keep the producer's own headers (tracing and the like) after ours. */
    const char *name;
    const void *val;
    size_t size;
    for (size_t i = 0; mi->dlq_own_hdrs && mi->hdrs && rd_kafka_header_get_all(mi->hdrs, i, &name, &val, &size) == 0;
         i++)
        rd_kafka_header_add(h, name, -1, val, val ? (ssize_t)size : 0);
    rd_kafka_resp_err_t e = rd_kafka_producev(
        k->prod, RD_KAFKA_V_TOPIC(k->dlq_topic), RD_KAFKA_V_KEY((void *)m->key, mi->dlq_key_len),
        RD_KAFKA_V_VALUE((void *)m->value, mi->dlq_value_len), RD_KAFKA_V_HEADERS(h),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(m), RD_KAFKA_V_END);
    if (e) rd_kafka_headers_destroy(h); /* librdkafka owns h only on success */
    mi->dlq_attempts++;
    return e;
}

/* Produces m's copy, cut to fit; a local size refusal (our estimate of
 * librdkafka's count was short) shrinks it and tries again at once. */
static rd_kafka_resp_err_t produce(kin *k, kin_msg *m) {
    kin_msg_i *mi = (kin_msg_i *)m;
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
    for (int i = 0; i < DLQ_LOCAL_SHRINKS; i++) {
        fit(mi);
        e = produce_once(k, m);
        if (e != RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE || !shrink(k, mi)) break;
    }
    return e;
}

static int size_error(rd_kafka_resp_err_t e) {
    return e == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE || e == RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE;
}

/* Errors that producing the same copy again cannot cure (the topic or the
 * record is refused as such). Unknown topics count too: a DLQ topic that
 * is being created gets the bounded attempts with backoff. */
static int permanent_error(rd_kafka_resp_err_t e) {
    switch (e) {
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
    case RD_KAFKA_RESP_ERR_INVALID_TIMESTAMP:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
    case RD_KAFKA_RESP_ERR_POLICY_VIOLATION:
    case RD_KAFKA_RESP_ERR_INVALID_REQUIRED_ACKS:
    case RD_KAFKA_RESP_ERR_UNSUPPORTED_FOR_MESSAGE_FORMAT:
    case RD_KAFKA_RESP_ERR_UNSUPPORTED_COMPRESSION_TYPE:
    case RD_KAFKA_RESP_ERR_UNSUPPORTED_VERSION:
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
    case RD_KAFKA_RESP_ERR__FATAL:
        return 1;
    default:
        return 0;
    }
}

static void schedule_retry(kin *k, kin_msg *m, long long delay_ms) {
    if (k->n_retry == k->cap_retry) {
        int nc = k->cap_retry ? k->cap_retry * 2 : 8;
        kin_dlq_retry *p = realloc(k->retry, (size_t)nc * sizeof *p);
        if (!p) return; /* cannot happen in practice; the message stays in flight (unacked) */
        k->retry = p;
        k->cap_retry = nc;
    }
    k->retry[k->n_retry++] = (kin_dlq_retry){m, kin_now_ms() + delay_ms};
}

static long long backoff_ms(int attempts) {
    long long b = DLQ_BACKOFF_MIN_MS;
    for (int i = 1; i < attempts && b < DLQ_BACKOFF_MAX_MS; i++) b *= 2;
    return b > DLQ_BACKOFF_MAX_MS ? DLQ_BACKOFF_MAX_MS : b;
}

/* m's copy is settled (delivered or given up): queue m for
 * kin_poll_dlq_acks (lock held). */
static void hand_back(kin *k, kin_msg *m, int outcome) {
    kin_msg_i *mi = (kin_msg_i *)m;
    kin_msg **p = k->acked;
    if (k->n_acked == k->cap_acked) {
        int nc = k->cap_acked ? k->cap_acked * 2 : 16;
        p = realloc(k->acked, (size_t)nc * sizeof *p);
        if (p) {
            k->acked = p;
            k->cap_acked = nc;
        }
    }
    if (k->n_acked == k->cap_acked) { /* no memory to queue it: go round again later */
        schedule_retry(k, m, DLQ_BACKOFF_MIN_MS);
        return;
    }
    rd_kafka_headers_destroy(mi->dlq_hdrs);
    mi->dlq_hdrs = NULL;
    mi->dlq_outcome = outcome;
    if (outcome == KIN_DLQ_GAVE_UP) k->dlq_given_up++;
    if (outcome == KIN_DLQ_TRUNCATED) k->dlq_truncated++;
    k->acked[k->n_acked++] = m;
    k->dlq_pending--;
}

/* One attempt of m's copy failed with e (lock held): transient errors are
 * retried with backoff; permanent ones shrink the copy where size is the
 * cause and, after KIN_DLQ_MAX_PERMANENT of them, give it up. */
static void on_failure(kin *k, kin_msg *m, rd_kafka_resp_err_t e, const char *what) {
    kin_msg_i *mi = (kin_msg_i *)m;
    k->dlq_failed++;
    snprintf(mi->dlq_why, sizeof mi->dlq_why, "%s", rd_kafka_err2str(e));
    kin_note_error(k, what, rd_kafka_err2str(e));
    if (!permanent_error(e)) {
        schedule_retry(k, m, backoff_ms(mi->dlq_attempts));
        return;
    }
    mi->dlq_refused++;
    if (mi->dlq_refused >= KIN_DLQ_MAX_PERMANENT || (size_error(e) && !shrink(k, mi))) {
        char why[sizeof mi->dlq_why];
        snprintf(why, sizeof why, "given up after %d refused attempt(s): %s", mi->dlq_refused, rd_kafka_err2str(e));
        snprintf(mi->dlq_why, sizeof mi->dlq_why, "%s", why);
        kin_note_error(k, "dead-letter copy", why);
        hand_back(k, m, KIN_DLQ_GAVE_UP);
        return;
    }
    /* a smaller copy may go at once; other refusals wait a little */
    schedule_retry(k, m, size_error(e) ? 0 : backoff_ms(mi->dlq_refused));
}

int kin_send_dlq(kin *k, const kin_msg *cm, const char *reason, const char *request_id_or_null, inf_error *err) {
    if (!k->prod) return inf_error_set(err, INF_ESTATE, "kafka: no dead-letter topic configured");
    kin_msg *m = (kin_msg *)cm; /* the private part is ours to use while the copy is pending */
    kin_msg_i *mi = (kin_msg_i *)m;
    if (mi->dlq_hdrs) return inf_error_set(err, INF_ESTATE, "kafka: message already has a pending DLQ copy");
    rd_kafka_headers_t *h = rd_kafka_headers_new(8);
    if (!h) return inf_error_set(err, INF_ENOMEM, "kafka: out of memory");
    char num[32];
    const char *r = reason ? reason : "unspecified";
    size_t rl = strlen(r);
    rd_kafka_header_add(h, "x-inferno-reason", -1, r, (ssize_t)(rl > DLQ_REASON_MAX ? DLQ_REASON_MAX : rl));
    rd_kafka_header_add(h, "x-inferno-source-topic", -1, m->topic, (ssize_t)strlen(m->topic));
    snprintf(num, sizeof num, "%" PRId32, m->partition);
    rd_kafka_header_add(h, "x-inferno-source-partition", -1, num, (ssize_t)strlen(num));
    snprintf(num, sizeof num, "%" PRId64, m->offset);
    rd_kafka_header_add(h, "x-inferno-source-offset", -1, num, (ssize_t)strlen(num));
    if (request_id_or_null)
        rd_kafka_header_add(h, "x-inferno-request-id", -1, request_id_or_null, (ssize_t)strlen(request_id_or_null));
    pthread_mutex_lock(&k->mu);
    mi->dlq_hdrs = h;
    mi->dlq_attempts = 0;
    mi->dlq_refused = 0;
    mi->dlq_limit = k->dlq_max_bytes;
    mi->dlq_outcome = KIN_DLQ_DELIVERED;
    mi->dlq_why[0] = '\0';
    rd_kafka_resp_err_t e = produce(k, m);
    int rc = 0;
    if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        rc = inf_error_set(err, INF_EFULL, "kafka: dead-letter producer queue is full; retry later");
        rd_kafka_headers_destroy(h);
        mi->dlq_hdrs = NULL;
    } else {
        /* Accepted: from here on m comes back through kin_poll_dlq_acks,
         * whatever happens to its copy. */
        k->dlq_pending++;
        k->dlq_sent++;
        if (e) on_failure(k, m, e, "dead-letter produce");
    }
    pthread_mutex_unlock(&k->mu);
    if (!rc) kin_wake(k); /* a copy given up at once is ready for kin_poll_dlq_acks */
    return rc;
}

void kin_dlq_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *rm, void *opaque) {
    (void)rk;
    kin *k = opaque;
    kin_msg *m = rm->_private;
    if (!m) return;
    kin_msg_i *mi = (kin_msg_i *)m;
    pthread_mutex_lock(&k->mu);
    if (k->freeing) { /* purged by kin_free */
        k->dlq_pending--;
        kin_msg_destroy(m);
    } else if (rm->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        k->brokers_up = 1;
        hand_back(k, m, mi->dlq_cut ? KIN_DLQ_TRUNCATED : KIN_DLQ_DELIVERED);
    } else {
        on_failure(k, m, rm->err, "dead-letter delivery");
    }
    pthread_mutex_unlock(&k->mu);
    kin_wake(k);
}

void kin_dlq_service(kin *k) {
    if (!k->prod || k->n_retry == 0) return;
    long long now = kin_now_ms();
    /* Take the due ones out first: a failure below may queue a retry. */
    int n_due = 0;
    kin_msg *due[64];
    int w = 0;
    for (int i = 0; i < k->n_retry; i++) {
        if (k->retry[i].due_ms <= now && n_due < (int)(sizeof due / sizeof *due)) due[n_due++] = k->retry[i].m;
        else k->retry[w++] = k->retry[i];
    }
    k->n_retry = w;
    for (int i = 0; i < n_due; i++) {
        rd_kafka_resp_err_t e = produce(k, due[i]);
        if (e) on_failure(k, due[i], e, "dead-letter produce");
    }
}

int kin_poll_dlq_acks(kin *k, kin_msg **msgs, int max) {
    if (!k->prod || max <= 0) return 0;
    rd_kafka_poll(k->prod, 0);
    pthread_mutex_lock(&k->mu);
    kin_dlq_service(k);
    int n = k->n_acked < max ? k->n_acked : max;
    if (n > 0) {
        memcpy(msgs, k->acked, (size_t)n * sizeof *msgs);
        memmove(k->acked, k->acked + n, (size_t)(k->n_acked - n) * sizeof *k->acked);
        k->n_acked -= n;
    }
    pthread_mutex_unlock(&k->mu);
    return n;
}

kin_dlq_outcome kin_dlq_result(const kin_msg *m, size_t *value_bytes, const char **why) {
    const kin_msg_i *mi = (const kin_msg_i *)m;
    if (value_bytes) *value_bytes = mi->dlq_outcome == KIN_DLQ_GAVE_UP ? 0 : mi->dlq_value_len;
    if (why) *why = mi->dlq_why;
    return (kin_dlq_outcome)mi->dlq_outcome;
}

void kin_dlq_free_lists(kin *k) {
    if (k->prod) {
        pthread_mutex_lock(&k->mu);
        k->freeing = 1;
        pthread_mutex_unlock(&k->mu);
        rd_kafka_purge(k->prod, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT | RD_KAFKA_PURGE_F_NON_BLOCKING);
        /* Purged copies come back as delivery reports; serve them to free
         * their messages (bounded: a stuck request is leaked, not waited on). */
        long long end = kin_now_ms() + 1000;
        for (;;) {
            pthread_mutex_lock(&k->mu);
            int pending = k->dlq_pending - k->n_retry;
            pthread_mutex_unlock(&k->mu);
            if (pending <= 0 || kin_now_ms() >= end) break;
            rd_kafka_poll(k->prod, 50);
        }
    }
    for (int i = 0; i < k->n_acked; i++) kin_msg_destroy(k->acked[i]);
    for (int i = 0; i < k->n_retry; i++) kin_msg_destroy(k->retry[i].m);
    free(k->acked);
    free(k->retry);
    k->acked = NULL;
    k->retry = NULL;
    k->n_acked = k->n_retry = 0;
}
