/* kafka_dlq.c - the dead-letter producer: a bad request's raw value and key
 * go to the DLQ topic with headers saying why and where it came from. A copy
 * is confirmed by its delivery report (then kin_poll_dlq_acks hands the
 * message back so the caller can mark it done); a failed delivery is produced
 * again after a backoff, so an accepted bad message is never dropped. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka_in_internal.h"

#define DLQ_BACKOFF_MIN_MS 500
#define DLQ_BACKOFF_MAX_MS 30000

/* Hands m's pending DLQ copy to librdkafka (lock held). */
static rd_kafka_resp_err_t produce(kin *k, kin_msg *m) {
    kin_msg_i *mi = (kin_msg_i *)m;
    rd_kafka_headers_t *h = rd_kafka_headers_copy(mi->dlq_hdrs);
    rd_kafka_resp_err_t e = rd_kafka_producev(
        k->prod, RD_KAFKA_V_TOPIC(k->dlq_topic), RD_KAFKA_V_KEY((void *)m->key, m->key_len),
        RD_KAFKA_V_VALUE((void *)m->value, m->value_len), RD_KAFKA_V_HEADERS(h),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(m), RD_KAFKA_V_END);
    if (e) rd_kafka_headers_destroy(h); /* librdkafka owns h only on success */
    mi->dlq_attempts++;
    return e;
}

static void schedule_retry(kin *k, kin_msg *m) {
    kin_msg_i *mi = (kin_msg_i *)m;
    if (k->n_retry == k->cap_retry) {
        int nc = k->cap_retry ? k->cap_retry * 2 : 8;
        kin_dlq_retry *p = realloc(k->retry, (size_t)nc * sizeof *p);
        if (!p) return; /* cannot happen in practice; the message stays in flight (unacked) */
        k->retry = p;
        k->cap_retry = nc;
    }
    long long backoff = DLQ_BACKOFF_MIN_MS;
    for (int i = 1; i < mi->dlq_attempts && backoff < DLQ_BACKOFF_MAX_MS; i++) backoff *= 2;
    if (backoff > DLQ_BACKOFF_MAX_MS) backoff = DLQ_BACKOFF_MAX_MS;
    k->retry[k->n_retry++] = (kin_dlq_retry){m, kin_now_ms() + backoff};
}

int kin_send_dlq(kin *k, const kin_msg *cm, const char *reason, const char *request_id_or_null, inf_error *err) {
    if (!k->prod) return inf_error_set(err, INF_ESTATE, "kafka: no dead-letter topic configured");
    kin_msg *m = (kin_msg *)cm; /* the private part is ours to use while the copy is pending */
    kin_msg_i *mi = (kin_msg_i *)m;
    if (mi->dlq_hdrs) return inf_error_set(err, INF_ESTATE, "kafka: message already has a pending DLQ copy");
    rd_kafka_headers_t *h = rd_kafka_headers_new(8);
    char num[32];
    const char *r = reason ? reason : "unspecified";
    rd_kafka_header_add(h, "x-inferno-reason", -1, r, (ssize_t)strlen(r));
    rd_kafka_header_add(h, "x-inferno-source-topic", -1, m->topic, (ssize_t)strlen(m->topic));
    snprintf(num, sizeof num, "%" PRId32, m->partition);
    rd_kafka_header_add(h, "x-inferno-source-partition", -1, num, (ssize_t)strlen(num));
    snprintf(num, sizeof num, "%" PRId64, m->offset);
    rd_kafka_header_add(h, "x-inferno-source-offset", -1, num, (ssize_t)strlen(num));
    if (request_id_or_null)
        rd_kafka_header_add(h, "x-inferno-request-id", -1, request_id_or_null, (ssize_t)strlen(request_id_or_null));
    /* Keep the producer's own headers (tracing and the like) after ours. */
    const char *name;
    const void *val;
    size_t size;
    for (size_t i = 0; mi->hdrs && rd_kafka_header_get_all(mi->hdrs, i, &name, &val, &size) == 0; i++)
        rd_kafka_header_add(h, name, -1, val, val ? (ssize_t)size : 0);
    pthread_mutex_lock(&k->mu);
    mi->dlq_hdrs = h;
    mi->dlq_attempts = 0;
    rd_kafka_resp_err_t e = produce(k, m);
    int rc = 0;
    if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        rc = inf_error_set(err, INF_EFULL, "kafka: dead-letter producer queue is full; retry later");
    } else if (e) {
        rc = inf_error_set(err, INF_EIO, "kafka: cannot produce to dead-letter topic %s: %s", k->dlq_topic,
                           rd_kafka_err2str(e));
    }
    if (rc) {
        rd_kafka_headers_destroy(h);
        mi->dlq_hdrs = NULL;
    } else {
        k->dlq_pending++;
        k->dlq_sent++;
    }
    pthread_mutex_unlock(&k->mu);
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
        rd_kafka_headers_destroy(mi->dlq_hdrs);
        mi->dlq_hdrs = NULL;
        kin_msg **p = k->acked;
        if (k->n_acked == k->cap_acked) {
            int nc = k->cap_acked ? k->cap_acked * 2 : 16;
            p = realloc(k->acked, (size_t)nc * sizeof *p);
            if (p) {
                k->acked = p;
                k->cap_acked = nc;
            }
        }
        if (k->n_acked < k->cap_acked) {
            k->acked[k->n_acked++] = m;
            k->dlq_pending--;
        } else {
            schedule_retry(k, m); /* no memory to queue the ack: send again later */
        }
    } else {
        k->dlq_failed++;
        kin_note_error(k, "dead-letter delivery", rd_kafka_err2str(rm->err));
        schedule_retry(k, m);
    }
    pthread_mutex_unlock(&k->mu);
    kin_wake(k);
}

void kin_dlq_service(kin *k) {
    if (!k->prod || k->n_retry == 0) return;
    long long now = kin_now_ms();
    int w = 0;
    for (int i = 0; i < k->n_retry; i++) {
        kin_dlq_retry r = k->retry[i];
        if (r.due_ms <= now) {
            rd_kafka_resp_err_t e = produce(k, r.m);
            if (!e) continue;
            kin_note_error(k, "dead-letter produce", rd_kafka_err2str(e));
            r.due_ms = now + DLQ_BACKOFF_MIN_MS;
        }
        k->retry[w++] = r;
    }
    k->n_retry = w;
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
