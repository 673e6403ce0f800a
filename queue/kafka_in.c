/* kafka_in.c - the group consumer over the priority request topics (see
 * kafka_in.h): per-topic queues for urgency order, pause/resume at the
 * in-flight cap, per-partition at-least-once offset tracking.
 *
 * Each assigned partition's fetch queue is forwarded to its topic's queue
 * (tq[i]); kin_poll reads the queues most urgent first, so when several
 * topics have messages ready the most urgent one wins. The consumer queue
 * itself then only carries rebalances, errors and commit results, which
 * kin_poll serves on every call, paused or not (max.poll.interval.ms). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kafka_in_internal.h"

long long kin_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void kin_note_error(kin *k, const char *what, const char *detail) {
    k->errors++;
    snprintf(k->last_error, sizeof k->last_error, "%s: %s", what, detail ? detail : "");
}

void kin_wake(kin *k) {
    char b = 1;
    ssize_t r = write(k->wake[1], &b, 1); /* full pipe: a wake-up is pending anyway */
    (void)r;
}

static int topic_index(const kin *k, const char *topic) {
    for (int i = 0; i < k->n_topics; i++)
        if (strcmp(k->topics[i], topic) == 0) return i;
    return -1;
}

static int find_part(const kin *k, int ti, int32_t partition) {
    for (int i = 0; i < k->n_parts; i++)
        if (k->parts[i].topic_index == ti && k->parts[i].partition == partition) return i;
    return -1;
}

static int get_part(kin *k, int ti, int32_t partition) {
    int i = find_part(k, ti, partition);
    if (i >= 0) return i;
    if (k->n_parts == k->cap_parts) {
        int nc = k->cap_parts ? k->cap_parts * 2 : 16;
        kin_part *p = realloc(k->parts, (size_t)nc * sizeof *p);
        if (!p) return -1;
        k->parts = p;
        k->cap_parts = nc;
    }
    kin_part *p = &k->parts[k->n_parts];
    memset(p, 0, sizeof *p);
    p->topic_index = ti;
    p->partition = partition;
    p->stored = -1;
    kin_otrack_init(&p->tr);
    return k->n_parts++;
}

/* In-flight level at which topic ti stops being read and is paused. */
static int threshold(const kin *k, int ti) { return k->max_inflight - ti * k->urgent_reserve; }

static int want_paused(const kin *k, int ti) { return k->closed || k->inflight >= threshold(k, ti); }

/* Brings librdkafka's pause state in line with the in-flight level: pauses
 * least urgent topics first, resumes most urgent first (lock held). */
void kin_apply_flow(kin *k) {
    for (int pass = 0; pass < 2; pass++) { /* 0: pause, 1: resume */
        rd_kafka_topic_partition_list_t *l = NULL;
        for (int step = 0; step < k->n_topics; step++) {
            int ti = pass == 0 ? k->n_topics - 1 - step : step;
            int want = pass == 0;
            for (int i = 0; i < k->n_parts; i++) {
                kin_part *p = &k->parts[i];
                if (!p->assigned || p->topic_index != ti || want_paused(k, ti) != want || p->paused == want) continue;
                if (!l) l = rd_kafka_topic_partition_list_new(8);
                rd_kafka_topic_partition_list_add(l, k->topics[ti], p->partition);
            }
        }
        if (!l) continue;
        rd_kafka_resp_err_t e = pass == 0 ? rd_kafka_pause_partitions(k->rk, l) : rd_kafka_resume_partitions(k->rk, l);
        if (e) kin_note_error(k, pass == 0 ? "pause" : "resume", rd_kafka_err2str(e));
        for (int j = 0; j < l->cnt; j++) {
            int pi = find_part(k, topic_index(k, l->elems[j].topic), l->elems[j].partition);
            if (pi >= 0 && !e && !l->elems[j].err) k->parts[pi].paused = pass == 0;
        }
        rd_kafka_topic_partition_list_destroy(l);
    }
}

/* Stores partition p's committable offset when it moved (lock held). */
static void store_part(kin *k, kin_part *p) {
    int64_t c = kin_otrack_committable(&p->tr);
    if (c < 0 || c == p->stored || !p->assigned) return;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, k->topics[p->topic_index], p->partition)->offset = c;
    rd_kafka_resp_err_t e = rd_kafka_offsets_store(k->rk, l);
    if (e || l->elems[0].err) {
        kin_note_error(k, "offset store", rd_kafka_err2str(e ? e : l->elems[0].err));
    } else {
        p->stored = c;
        p->dirty = 1;
        k->dirty = 1;
    }
    rd_kafka_topic_partition_list_destroy(l);
}

/* Commits stored offsets asynchronously, at most once per interval and one
 * at a time: a commit stuck behind a coordinator outage must not land after
 * a newer one (lock held). */
static void maybe_commit(kin *k, int force) {
    long long now = kin_now_ms();
    if (!k->dirty || (!force && now - k->last_commit_ms < k->commit_interval_ms)) return;
    if (k->commit_outstanding && now - k->commit_sent_ms < 15000) return;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);
    for (int i = 0; i < k->n_parts; i++) {
        kin_part *p = &k->parts[i];
        if (!p->assigned || !p->dirty || p->stored < 0) continue;
        rd_kafka_topic_partition_list_add(l, k->topics[p->topic_index], p->partition)->offset = p->stored;
        p->dirty = 0;
    }
    k->dirty = 0;
    k->last_commit_ms = now;
    if (l->cnt > 0) {
        rd_kafka_resp_err_t e = rd_kafka_commit_queue(k->rk, l, k->commitq, NULL, NULL);
        if (e) {
            kin_note_error(k, "commit", rd_kafka_err2str(e));
        } else {
            k->commit_outstanding = 1;
            k->commit_sent_ms = now;
        }
    }
    rd_kafka_topic_partition_list_destroy(l);
}

/* Marks every stored offset for the next commit (after a failed one). */
static void recommit_all(kin *k) {
    for (int i = 0; i < k->n_parts; i++)
        if (k->parts[i].assigned && k->parts[i].stored >= 0) k->parts[i].dirty = 1;
    k->dirty = 1;
}

/* Collects results of our explicit commits (lock held; never blocks). */
void kin_serve_commits(kin *k) {
    rd_kafka_event_t *ev;
    while ((ev = rd_kafka_queue_poll(k->commitq, 0)) != NULL) {
        if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_OFFSET_COMMIT) {
            rd_kafka_resp_err_t e = rd_kafka_event_error(ev);
            k->commit_outstanding = 0;
            if (!e) {
                k->commits++;
                k->brokers_up = 1;
            } else if (e != RD_KAFKA_RESP_ERR__NO_OFFSET) {
                k->commit_errors++;
                kin_note_error(k, "commit", rd_kafka_err2str(e));
                recommit_all(k);
            }
        }
        rd_kafka_event_destroy(ev);
    }
}

static void stash_drop_partition(kin *k, int ti, int32_t partition) {
    int w = 0;
    for (int j = 0; j < k->stash_n[ti]; j++) {
        rd_kafka_message_t *m = k->stash[ti][j];
        if (m->partition == partition) rd_kafka_message_destroy(m);
        else k->stash[ti][w++] = m;
    }
    k->stash_n[ti] = w;
}

/* Rebalance: from the callback (kin_poll) or a close-queue event (kin_close).
 * Takes the lock itself. */
void kin_handle_rebalance(kin *k, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts) {
    const char *proto = rd_kafka_rebalance_protocol(k->rk);
    /* NULL during close: we always asked for cooperative-sticky, unless -X
     * overrode the strategy, and then an eager unassign below is right. */
    int coop = proto && strcmp(proto, "COOPERATIVE") == 0;
    rd_kafka_error_t *ferr = NULL;
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
    pthread_mutex_lock(&k->mu);
    k->rebalances++;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        for (int j = 0; j < parts->cnt; j++) {
            int ti = topic_index(k, parts->elems[j].topic);
            if (ti < 0) continue;
            /* Route this partition's messages to its topic queue before the
             * fetcher starts; librdkafka keeps an application forward. */
            rd_kafka_queue_t *pq = rd_kafka_queue_get_partition(k->rk, parts->elems[j].topic, parts->elems[j].partition);
            if (pq) {
                rd_kafka_queue_forward(pq, k->tq[ti]);
                rd_kafka_queue_destroy(pq);
            }
            int pi = get_part(k, ti, parts->elems[j].partition);
            if (pi < 0) continue;
            kin_part *p = &k->parts[pi];
            kin_otrack_reset(&p->tr);
            p->assigned = 1;
            p->paused = -1;
            p->epoch++;
            p->stored = -1;
            p->dirty = 0;
        }
        if (coop) ferr = rd_kafka_incremental_assign(k->rk, parts);
        else e = rd_kafka_assign(k->rk, parts);
        kin_apply_flow(k); /* pause state does not survive assignment: re-apply */
    } else {
        /* Revoked or lost (or an error): drop tracking. Unfinished messages
         * are redelivered to the next owner from the offset we stored, which
         * auto commit flushes before the partitions go. */
        rd_kafka_topic_partition_list_t *rev = parts;
        for (int j = 0; rev && j < rev->cnt; j++) {
            int ti = topic_index(k, rev->elems[j].topic);
            int pi = ti < 0 ? -1 : find_part(k, ti, rev->elems[j].partition);
            if (pi < 0) continue;
            kin_part *p = &k->parts[pi];
            kin_otrack_reset(&p->tr);
            p->assigned = 0;
            p->paused = 0;
            p->epoch++;
            p->dirty = 0;
            stash_drop_partition(k, ti, p->partition);
        }
        if (err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) kin_note_error(k, "rebalance", rd_kafka_err2str(err));
        if (coop) ferr = rd_kafka_incremental_unassign(k->rk, parts);
        else if (proto || err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) e = rd_kafka_assign(k->rk, NULL);
        else {
            ferr = rd_kafka_incremental_unassign(k->rk, parts);
            if (ferr) { /* eager assignment after all */
                rd_kafka_error_destroy(ferr);
                ferr = NULL;
                e = rd_kafka_assign(k->rk, NULL);
            }
        }
    }
    if (ferr) {
        kin_note_error(k, "rebalance", rd_kafka_error_string(ferr));
        rd_kafka_error_destroy(ferr);
    }
    if (e) kin_note_error(k, "rebalance", rd_kafka_err2str(e));
    pthread_mutex_unlock(&k->mu);
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts,
                         void *opaque) {
    (void)rk;
    kin_handle_rebalance(opaque, err, parts);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
    kin *k = opaque;
    pthread_mutex_lock(&k->mu);
    kin_note_error(k, rd_kafka_name(rk), reason);
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) k->brokers_up = 0;
    if (err == RD_KAFKA_RESP_ERR__FATAL) k->fatal = 1;
    pthread_mutex_unlock(&k->mu);
}

static void commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *offsets,
                      void *opaque) {
    (void)rk;
    (void)offsets;
    kin *k = opaque;
    pthread_mutex_lock(&k->mu);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        k->commits++;
        k->brokers_up = 1;
    } else if (err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
        k->commit_errors++;
        kin_note_error(k, "auto commit", rd_kafka_err2str(err));
        recommit_all(k);
    }
    pthread_mutex_unlock(&k->mu);
}

/* Keeps a message that came through the consumer queue (lock held). */
static void stash_push(kin *k, rd_kafka_message_t *m) {
    int ti = m->rkt ? topic_index(k, rd_kafka_topic_name(m->rkt)) : -1;
    if (m->err || ti < 0 || find_part(k, ti, m->partition) < 0) {
        if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) kin_note_error(k, "consumer", rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
        return;
    }
    if (k->stash_n[ti] == k->stash_cap[ti]) {
        int nc = k->stash_cap[ti] ? k->stash_cap[ti] * 2 : 8;
        rd_kafka_message_t **p = realloc(k->stash[ti], (size_t)nc * sizeof *p);
        if (!p) { /* not tracked, so redelivered after a restart or rebalance */
            rd_kafka_message_destroy(m);
            return;
        }
        k->stash[ti] = p;
        k->stash_cap[ti] = nc;
    }
    k->stash[ti][k->stash_n[ti]++] = m;
}

static rd_kafka_message_t *stash_pop(kin *k, int ti) {
    if (k->stash_n[ti] == 0) return NULL;
    rd_kafka_message_t *m = k->stash[ti][0];
    memmove(k->stash[ti], k->stash[ti] + 1, (size_t)(k->stash_n[ti] - 1) * sizeof *k->stash[ti]);
    k->stash_n[ti]--;
    return m;
}

/* Copies a fetched record into a caller-owned kin_msg (NULL: no memory). */
static kin_msg *make_msg(kin *k, int ti, int pi, const rd_kafka_message_t *m) {
    size_t kl = m->key ? m->key_len : 0, vl = m->payload ? m->len : 0;
    kin_msg_i *mi = malloc(sizeof *mi + kl + 1 + vl + 1);
    if (!mi) return NULL;
    char *data = (char *)(mi + 1);
    memset(mi, 0, sizeof *mi);
    mi->pub.topic_index = ti;
    mi->pub.topic = k->topics[ti];
    mi->pub.partition = m->partition;
    mi->pub.offset = m->offset;
    if (m->key) {
        memcpy(data, m->key, kl);
        data[kl] = '\0';
        mi->pub.key = data;
        mi->pub.key_len = kl;
    }
    if (m->payload) {
        memcpy(data + kl + 1, m->payload, vl);
        data[kl + 1 + vl] = '\0';
        mi->pub.value = data + kl + 1;
        mi->pub.value_len = vl;
    }
    rd_kafka_timestamp_type_t tt;
    int64_t ts = rd_kafka_message_timestamp(m, &tt);
    mi->pub.timestamp_ms = tt == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? -1 : ts;
    rd_kafka_headers_t *h = NULL;
    if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR && h) mi->hdrs = rd_kafka_headers_copy(h);
    mi->part_idx = pi;
    mi->epoch = k->parts[pi].epoch;
    return &mi->pub;
}

/* Takes the most urgent deliverable message, or NULL (lock held). */
static kin_msg *pick(kin *k) {
    for (int ti = 0; ti < k->n_topics; ti++) {
        if (want_paused(k, ti)) continue;
        for (;;) {
            rd_kafka_message_t *m = stash_pop(k, ti);
            if (!m) m = rd_kafka_consume_queue(k->tq[ti], 0);
            if (!m) break;
            int pi = find_part(k, ti, m->partition);
            if (m->err || pi < 0 || !k->parts[pi].assigned) {
                /* Errors are retried by librdkafka; a record of a partition
                 * we no longer own goes to its new owner. */
                if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                    kin_note_error(k, "fetch", rd_kafka_message_errstr(m));
                rd_kafka_message_destroy(m);
                continue;
            }
            kin_msg *out = make_msg(k, ti, pi, m);
            if (out && kin_otrack_add(&k->parts[pi].tr, m->offset) != 0) {
                kin_msg_destroy(out);
                out = NULL;
            }
            rd_kafka_message_destroy(m);
            if (!out) {
                /* Out of memory: the record is skipped for now but not lost:
                 * nothing is stored past it until the partition is reassigned
                 * or the process restarts, which redelivers it. */
                kin_note_error(k, "consumer", "out of memory copying a record");
                continue;
            }
            k->brokers_up = 1;
            k->received++;
            k->inflight++;
            store_part(k, &k->parts[pi]);
            kin_apply_flow(k);
            return out;
        }
    }
    return NULL;
}

int kin_create(kin **out, const kin_config *cfg, inf_error *err) {
    *out = NULL;
    int rc = kin_config_validate(cfg, err);
    if (rc) return rc;
    kin *k = calloc(1, sizeof *k);
    if (!k) return inf_error_set(err, INF_ENOMEM, "kafka: out of memory");
    pthread_mutex_init(&k->mu, NULL);
    k->wake[0] = k->wake[1] = -1;
    k->n_topics = cfg->n_topics;
    k->max_inflight = cfg->max_inflight;
    k->urgent_reserve = cfg->urgent_reserve;
    k->commit_interval_ms = cfg->commit_interval_ms ? cfg->commit_interval_ms : 200;
    k->max_message_bytes = kin_max_message_bytes(cfg);
    k->brokers_up = 1;
    for (int i = 0; i < k->n_topics; i++)
        if (!(k->topics[i] = strdup(cfg->topics[i]))) rc = INF_ENOMEM;
    if (cfg->dlq_topic && !(k->dlq_topic = strdup(cfg->dlq_topic))) rc = INF_ENOMEM;
    if (rc) {
        kin_free(k);
        return inf_error_set(err, INF_ENOMEM, "kafka: out of memory");
    }
    if (pipe(k->wake) != 0) {
        rc = inf_error_set(err, INF_EIO, "kafka: pipe: %s", strerror(errno));
        kin_free(k);
        return rc;
    }
    for (int i = 0; i < 2; i++) {
        fcntl(k->wake[i], F_SETFL, fcntl(k->wake[i], F_GETFL) | O_NONBLOCK);
        fcntl(k->wake[i], F_SETFD, FD_CLOEXEC);
    }

    rd_kafka_conf_t *pconf = NULL, *cconf = NULL;
    if (k->dlq_topic && (rc = kin_producer_conf(cfg, &pconf, err)) != 0) {
        kin_free(k);
        return rc;
    }
    if (pconf) k->dlq_max_bytes = (size_t)kin_conf_num(pconf, "message.max.bytes"); /* copies are cut to this */
    if ((rc = kin_consumer_conf(cfg, &cconf, err)) != 0) {
        if (pconf) rd_kafka_conf_destroy(pconf);
        kin_free(k);
        return rc;
    }
    char errstr[512];
    rd_kafka_conf_set_opaque(cconf, k);
    rd_kafka_conf_set_rebalance_cb(cconf, rebalance_cb);
    rd_kafka_conf_set_error_cb(cconf, error_cb);
    rd_kafka_conf_set_offset_commit_cb(cconf, commit_cb);
    k->rk = rd_kafka_new(RD_KAFKA_CONSUMER, cconf, errstr, sizeof errstr);
    if (!k->rk) {
        rd_kafka_conf_destroy(cconf);
        if (pconf) rd_kafka_conf_destroy(pconf);
        kin_free(k);
        return inf_error_set(err, INF_EINVAL, "kafka: cannot create the consumer: %s", errstr);
    }
    if (pconf) {
        rd_kafka_conf_set_opaque(pconf, k);
        rd_kafka_conf_set_error_cb(pconf, error_cb);
        rd_kafka_conf_set_dr_msg_cb(pconf, kin_dlq_dr_cb);
        k->prod = rd_kafka_new(RD_KAFKA_PRODUCER, pconf, errstr, sizeof errstr);
        if (!k->prod) {
            rd_kafka_conf_destroy(pconf);
            kin_free(k);
            return inf_error_set(err, INF_EINVAL, "kafka: cannot create the dead-letter producer: %s", errstr);
        }
        k->pq = rd_kafka_queue_get_main(k->prod);
        rd_kafka_queue_io_event_enable(k->pq, k->wake[1], "p", 1);
    }
    rd_kafka_poll_set_consumer(k->rk);
    k->commitq = rd_kafka_queue_new(k->rk);
    k->cq = rd_kafka_queue_get_consumer(k->rk);
    rd_kafka_queue_io_event_enable(k->cq, k->wake[1], "c", 1);
    for (int i = 0; i < k->n_topics; i++) {
        k->tq[i] = rd_kafka_queue_new(k->rk);
        rd_kafka_queue_io_event_enable(k->tq[i], k->wake[1], "t", 1);
    }
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(k->n_topics);
    for (int i = 0; i < k->n_topics; i++)
        rd_kafka_topic_partition_list_add(sub, k->topics[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(k->rk, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    if (e) {
        kin_free(k);
        return inf_error_set(err, INF_EIO, "kafka: subscribe failed: %s", rd_kafka_err2str(e));
    }
    *out = k;
    return 0;
}

/* Serves the consumer queue (rebalances, errors, auto-commit results; the
 * callbacks lock themselves), waiting up to ms for the first op; stray
 * records are stashed. */
void kin_serve_consumer(kin *k, int ms) {
    for (int j = 0; j < 64; j++) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(k->rk, j == 0 ? ms : 0);
        if (!m) break;
        pthread_mutex_lock(&k->mu);
        stash_push(k, m);
        pthread_mutex_unlock(&k->mu);
    }
}

int kin_poll(kin *k, int timeout_ms, kin_msg **out, inf_error *err) {
    *out = NULL;
    long long deadline = kin_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        char buf[64];
        while (read(k->wake[0], buf, sizeof buf) > 0) {
        }
        pthread_mutex_lock(&k->mu);
        int closed = k->closed, fatal = k->fatal;
        pthread_mutex_unlock(&k->mu);
        if (closed) return inf_error_set(err, INF_ESTATE, "kafka: consumer is closed");
        if (fatal) {
            char fe[256];
            rd_kafka_fatal_error(k->rk, fe, sizeof fe);
            return inf_error_set(err, INF_EIO, "kafka: fatal consumer error: %s", fe);
        }
        kin_serve_consumer(k, 0);
        if (k->prod) rd_kafka_poll(k->prod, 0);
        pthread_mutex_lock(&k->mu);
        kin_dlq_service(k);
        kin_serve_commits(k);
        maybe_commit(k, 0);
        kin_apply_flow(k);
        *out = pick(k);
        pthread_mutex_unlock(&k->mu);
        if (*out) return 0;
        long long left = deadline - kin_now_ms();
        if (left <= 0) return 0;
        /* librdkafka writes to the pipe when a queue turns non-empty, and
         * kin_msg_done when capacity frees; the cap on the wait only bounds
         * the cost of a missed wake-up and keeps commits timely. */
        struct pollfd pf = {k->wake[0], POLLIN, 0};
        int wait = left < 100 ? (int)left : 100;
        if (poll(&pf, 1, wait) < 0 && errno != EINTR) return inf_error_set(err, INF_EIO, "kafka: poll: %s", strerror(errno));
    }
}

void kin_msg_destroy(kin_msg *m) {
    kin_msg_i *mi = (kin_msg_i *)m;
    if (mi->hdrs) rd_kafka_headers_destroy(mi->hdrs);
    if (mi->dlq_hdrs) rd_kafka_headers_destroy(mi->dlq_hdrs);
    free(mi);
}

static void msg_release(kin *k, kin_msg *m, int done) {
    kin_msg_i *mi = (kin_msg_i *)m;
    pthread_mutex_lock(&k->mu);
    if (mi->part_idx >= 0 && mi->part_idx < k->n_parts) {
        kin_part *p = &k->parts[mi->part_idx];
        if (done && p->assigned && p->epoch == mi->epoch && kin_otrack_done(&p->tr, m->offset) == 0)
            store_part(k, p);
    }
    if (done) k->done++;
    k->inflight--;
    if (!k->closed) {
        kin_apply_flow(k);
        maybe_commit(k, 0);
    }
    pthread_mutex_unlock(&k->mu);
    kin_msg_destroy(m);
    kin_wake(k);
}

void kin_msg_done(kin *k, kin_msg *m) {
    if (k && m) msg_release(k, m, 1);
}

void kin_msg_free(kin *k, kin_msg *m) {
    if (k && m) msg_release(k, m, 0);
}

int kin_inflight(const kin *k) {
    kin *kk = (kin *)k;
    pthread_mutex_lock(&kk->mu);
    int n = k->inflight;
    pthread_mutex_unlock(&kk->mu);
    return n;
}

int kin_assigned(const kin *k) {
    kin *kk = (kin *)k;
    int n = 0;
    pthread_mutex_lock(&kk->mu);
    for (int i = 0; i < k->n_parts; i++) n += k->parts[i].assigned;
    pthread_mutex_unlock(&kk->mu);
    return n;
}

void kin_stats(kin *k, kin_stats_t *st) {
    memset(st, 0, sizeof *st);
    pthread_mutex_lock(&k->mu);
    st->inflight = k->inflight;
    st->max_inflight = k->max_inflight;
    st->dlq_pending = k->dlq_pending;
    st->brokers_up = k->brokers_up;
    st->received = k->received;
    st->done = k->done;
    st->commits = k->commits;
    st->commit_errors = k->commit_errors;
    st->rebalances = k->rebalances;
    st->dlq_sent = k->dlq_sent;
    st->dlq_failed = k->dlq_failed;
    st->dlq_given_up = k->dlq_given_up;
    st->dlq_truncated = k->dlq_truncated;
    st->errors = k->errors;
    snprintf(st->last_error, sizeof st->last_error, "%s", k->last_error);
    for (int i = 0; i < k->n_topics; i++) st->queued[i] = k->stash_n[i] + (k->tq[i] ? (int)rd_kafka_queue_length(k->tq[i]) : 0);
    for (int i = 0; i < k->n_parts; i++) {
        kin_part *p = &k->parts[i];
        if (!p->assigned) continue;
        st->assigned++;
        st->paused += p->paused == 1;
        if (st->n_parts >= KIN_STATS_MAX_PARTS) continue;
        kin_part_stats *ps = &st->parts[st->n_parts++];
        ps->topic_index = p->topic_index;
        ps->partition = p->partition;
        ps->paused = p->paused == 1;
        ps->inflight = p->tr.n;
        ps->stored = p->stored;
        int64_t lo = -1, hi = -1;
        ps->high_watermark = -1;
        ps->lag = -1;
        if (rd_kafka_get_watermark_offsets(k->rk, k->topics[p->topic_index], p->partition, &lo, &hi) == 0 && hi >= 0) {
            ps->high_watermark = hi;
            int64_t base = p->stored >= 0 ? p->stored : -1;
            if (base >= 0) ps->lag = hi > base ? hi - base : 0;
        }
    }
    pthread_mutex_unlock(&k->mu);
}
