/* kafka_close.c - leaving the group with bounded waits (kin_close) and
 * freeing the handle (kin_free), whose librdkafka destroys run on a thread
 * that is abandoned if librdkafka hangs. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kafka_in_internal.h"

int kin_close(kin *k, int timeout_ms, inf_error *err) {
    long long deadline = kin_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    pthread_mutex_lock(&k->mu);
    if (k->closed) {
        pthread_mutex_unlock(&k->mu);
        return inf_error_set(err, INF_ESTATE, "kafka: consumer already closed");
    }
    k->closed = 1;
    kin_apply_flow(k); /* stop fetching */
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);
    for (int i = 0; i < k->n_parts; i++) {
        kin_part *p = &k->parts[i];
        if (p->assigned && p->stored >= 0)
            rd_kafka_topic_partition_list_add(l, k->topics[p->topic_index], p->partition)->offset = p->stored;
        p->dirty = 0;
    }
    k->dirty = 0;
    pthread_mutex_unlock(&k->mu);

    int rc = 0;
    /* Our outstanding async commit goes first, so it cannot land after the
     * final one and move the committed offset back. */
    for (;;) {
        pthread_mutex_lock(&k->mu);
        kin_serve_commits(k);
        int outstanding = k->commit_outstanding;
        pthread_mutex_unlock(&k->mu);
        if (!outstanding || kin_now_ms() >= deadline) break;
        kin_serve_consumer(k, 20);
    }
    /* Synchronous commit, bounded by the deadline: results arrive on our own
     * queue; a coordinator that is still being looked up is waited for. */
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
    while (l->cnt > 0) {
        rd_kafka_queue_t *q = rd_kafka_queue_new(k->rk);
        e = rd_kafka_commit_queue(k->rk, l, q, NULL, NULL);
        if (!e) {
            long long left = deadline - kin_now_ms();
            rd_kafka_event_t *ev = rd_kafka_queue_poll(q, left > 0 ? (int)left : 0);
            if (!ev) e = RD_KAFKA_RESP_ERR__TIMED_OUT;
            else {
                e = rd_kafka_event_error(ev);
                rd_kafka_event_destroy(ev);
            }
        }
        rd_kafka_queue_destroy(q);
        int retriable = e == RD_KAFKA_RESP_ERR__WAIT_COORD || e == RD_KAFKA_RESP_ERR__TRANSPORT ||
                        e == RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE || e == RD_KAFKA_RESP_ERR_NOT_COORDINATOR ||
                        e == RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS ||
                        e == RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT;
        if (!retriable || kin_now_ms() + 100 >= deadline) break;
        kin_serve_consumer(k, 100);
    }
    if (l->cnt > 0) {
        pthread_mutex_lock(&k->mu);
        if (e && e != RD_KAFKA_RESP_ERR__NO_OFFSET) {
            k->commit_errors++;
            kin_note_error(k, "final commit", rd_kafka_err2str(e));
            rc = inf_error_set(err, e == RD_KAFKA_RESP_ERR__TIMED_OUT ? INF_ETIMEOUT : INF_EIO,
                               "kafka: final offset commit failed: %s", rd_kafka_err2str(e));
        } else if (!e) {
            k->commits++;
        }
        pthread_mutex_unlock(&k->mu);
    }
    rd_kafka_topic_partition_list_destroy(l);

    /* Let pending dead letters reach the broker. */
    while (k->prod) {
        rd_kafka_poll(k->prod, 20);
        pthread_mutex_lock(&k->mu);
        kin_dlq_service(k);
        int pending = k->dlq_pending;
        pthread_mutex_unlock(&k->mu);
        if (pending == 0 || kin_now_ms() >= deadline) break;
    }

    /* Leave the group, serving the revocation ourselves so that the wait is
     * bounded (rd_kafka_consumer_close has no timeout). */
    rd_kafka_queue_io_event_enable(k->cq, -1, NULL, 0);
    rd_kafka_queue_destroy(k->cq);
    k->cq = NULL;
    rd_kafka_queue_t *q = rd_kafka_queue_new(k->rk);
    rd_kafka_error_t *ce = rd_kafka_consumer_close_queue(k->rk, q);
    if (ce) {
        if (!rc) rc = inf_error_set(err, INF_EIO, "kafka: consumer close: %s", rd_kafka_error_string(ce));
        rd_kafka_error_destroy(ce);
    } else {
        while (!rd_kafka_consumer_closed(k->rk)) {
            long long left = deadline - kin_now_ms();
            if (left <= 0) {
                if (!rc) rc = inf_error_set(err, INF_ETIMEOUT, "kafka: leaving the consumer group timed out");
                break;
            }
            rd_kafka_event_t *ev = rd_kafka_queue_poll(q, left < 100 ? (int)left : 100);
            if (!ev) continue;
            if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_REBALANCE)
                kin_handle_rebalance(k, rd_kafka_event_error(ev), rd_kafka_event_topic_partition_list(ev));
            rd_kafka_event_destroy(ev);
        }
    }
    rd_kafka_queue_destroy(q);
    return rc;
}

/* Runs the librdkafka destroys on a thread so a hang (seen after a
 * coordinator went down) cannot hang the caller: after a bound the thread
 * and the handles are abandoned. */
typedef struct destroyer {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    rd_kafka_t *rk, *prod;
    int no_close, finished, abandoned;
} destroyer;

static void *destroy_thread(void *arg) {
    destroyer *d = arg;
    if (d->prod) rd_kafka_destroy(d->prod);
    if (d->rk) rd_kafka_destroy_flags(d->rk, d->no_close ? RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE : 0);
    pthread_mutex_lock(&d->mu);
    d->finished = 1;
    int abandoned = d->abandoned;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
    if (abandoned) {
        pthread_mutex_destroy(&d->mu);
        pthread_cond_destroy(&d->cv);
        free(d);
    }
    return NULL;
}

/* 0 when the handles were destroyed within ms, -1 when abandoned. */
static int bounded_destroy(rd_kafka_t *rk, rd_kafka_t *prod, int no_close, int ms) {
    destroyer *d = calloc(1, sizeof *d);
    pthread_t th;
    if (!d) return -1;
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    d->rk = rk;
    d->prod = prod;
    d->no_close = no_close;
    if (pthread_create(&th, NULL, destroy_thread, d) != 0) {
        destroy_thread(d); /* no thread: destroy inline */
        pthread_mutex_destroy(&d->mu);
        pthread_cond_destroy(&d->cv);
        free(d);
        return 0;
    }
    pthread_detach(th);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&d->mu);
    while (!d->finished)
        if (pthread_cond_timedwait(&d->cv, &d->mu, &until) != 0) break;
    int finished = d->finished;
    if (!finished) d->abandoned = 1;
    pthread_mutex_unlock(&d->mu);
    if (!finished) return -1;
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
    free(d);
    return 0;
}

void kin_free(kin *k) {
    if (!k) return;
    int ok = 1;
    if (k->rk || k->prod) {
        if (k->cq) {
            rd_kafka_queue_io_event_enable(k->cq, -1, NULL, 0);
            rd_kafka_queue_destroy(k->cq);
        }
        for (int i = 0; i < k->n_topics; i++)
            if (k->tq[i]) {
                rd_kafka_queue_io_event_enable(k->tq[i], -1, NULL, 0);
                rd_kafka_queue_destroy(k->tq[i]);
            }
        if (k->pq) {
            rd_kafka_queue_io_event_enable(k->pq, -1, NULL, 0);
            rd_kafka_queue_destroy(k->pq);
        }
        if (k->commitq) rd_kafka_queue_destroy(k->commitq);
        for (int i = 0; i < k->n_topics; i++)
            for (int j = 0; j < k->stash_n[i]; j++) rd_kafka_message_destroy(k->stash[i][j]);
        kin_dlq_free_lists(k);
        /* Not closed: a crash-like exit (no commit, no leave). */
        ok = bounded_destroy(k->rk, k->prod, !k->closed, 5000) == 0;
    }
    if (!ok) return; /* librdkafka may still touch k's pipe: leak it all */
    for (int i = 0; i < 2; i++)
        if (k->wake[i] >= 0) close(k->wake[i]);
    for (int i = 0; i < k->n_parts; i++) kin_otrack_reset(&k->parts[i].tr);
    free(k->parts);
    for (int i = 0; i < KIN_MAX_TOPICS; i++) {
        free(k->stash[i]);
        free(k->topics[i]);
    }
    free(k->dlq_topic);
    pthread_mutex_destroy(&k->mu);
    free(k);
}
