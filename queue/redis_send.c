/* redis_send.c - the sender thread: takes entries from the head of the
 * queue, pipelines XADD (+ EXPIRE) for a batch, removes an entry only after
 * Redis replied, and reconnects with backoff (50 ms doubling to 2 s). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "redis_internal.h"

#define BATCH_MAX_ENTRIES 256
#define BATCH_MAX_BYTES (1u << 20)
#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 2000

/* Redis errors that may go away (restart, failover, memory freed, ACL
 * fixed): keep the entry and retry. Others (WRONGTYPE, syntax) never will. */
int rds__transient_error(const char *s) {
    static const char *const pre[] = {"OOM", "LOADING", "BUSY", "READONLY", "NOAUTH", "NOPERM",
                                      "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "MISCONF",
                                      "NOREPLICAS", "WRONGPASS"};
    for (size_t i = 0; i < sizeof pre / sizeof pre[0]; i++)
        if (strncmp(s, pre[i], strlen(pre[i])) == 0) return 1;
    return 0;
}

/* An error reply to a look-up: the look-up failed, which must not read as
 * "not written" (that would resend an entry already in the stream). -2,
 * with the error (e.g. NOPERM naming the command) in msg. */
static int lookup_refused(redisReply *rep, const char *cmd, const char *key, char *msg, size_t cap) {
    rds__format_reply_error(msg, cap, cmd, key, rep->str);
    freeReplyObject(rep);
    return -2;
}

/* 1 if the stream's last entry is a final one, 0 if not, -1 on I/O error,
 * -2 on an error reply (msg says which). */
static int last_is_final(redisContext *c, const char *key, char *msg, size_t cap) {
    redisReply *rep = redisCommand(c, "XREVRANGE %s + - COUNT 1", key);
    if (!rep) return -1;
    if (rep->type == REDIS_REPLY_ERROR) return lookup_refused(rep, "XREVRANGE", key, msg, cap);
    int fin = 0;
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 1) {
        redisReply *ent = rep->element[0];
        if (ent->type == REDIS_REPLY_ARRAY && ent->elements == 2 &&
            ent->element[1]->type == REDIS_REPLY_ARRAY) {
            redisReply *kv = ent->element[1];
            for (size_t i = 0; i + 1 < kv->elements; i += 2)
                if (kv->element[i]->str && strcmp(kv->element[i]->str, "event") == 0 &&
                    kv->element[i + 1]->str &&
                    (strcmp(kv->element[i + 1]->str, "done") == 0 ||
                     strcmp(kv->element[i + 1]->str, "error") == 0))
                    fin = 1;
        }
    }
    freeReplyObject(rep);
    return fin;
}

/* 1 if the stream's first entry is the start entry of request_id (a claim
 * sent before without a confirmed reply was executed), 0 if not, -1 on I/O
 * error, -2 on an error reply (msg says which). */
static int first_is_claim(redisContext *c, const char *key, const char *request_id, char *msg, size_t cap) {
    redisReply *rep = redisCommand(c, "XRANGE %s - + COUNT 1", key);
    if (!rep) return -1;
    if (rep->type == REDIS_REPLY_ERROR) return lookup_refused(rep, "XRANGE", key, msg, cap);
    int mine = 0;
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 1) {
        redisReply *ent = rep->element[0];
        if (ent->type == REDIS_REPLY_ARRAY && ent->elements == 2 && ent->element[1]->type == REDIS_REPLY_ARRAY) {
            redisReply *kv = ent->element[1];
            int start = 0, id = 0;
            for (size_t i = 0; i + 1 < kv->elements; i += 2) {
                const char *k = kv->element[i]->str, *v = kv->element[i + 1]->str;
                if (!k || !v) continue;
                if (!strcmp(k, "event") && !strcmp(v, "start")) start = 1;
                if (!strcmp(k, "request_id") && !strcmp(v, request_id)) id = 1;
            }
            mine = start && id;
        }
    }
    freeReplyObject(rep);
    return mine;
}

enum { SEND_OK = 0, SEND_CONN = 1, SEND_TRANSIENT = 2 };

typedef struct batch_result {
    int n_done;        /* leading entries finished (written or dropped) */
    int n_written;     /* of those, XADDs Redis confirmed (or found written) */
    int n_rejected;    /* of those, rejected permanently */
    int claim_refused[BATCH_MAX_ENTRIES]; /* 1: that entry was a claim the stream refused */
    char errmsg[RDS_REFUSAL_MAX];
} batch_result;

/* Pipelines the batch; the leading n_done entries are finished. */
static int send_batch(redisContext *c, rds_entry **b, int n, batch_result *res) {
    memset(res, 0, sizeof *res);
    /* A final entry sent before without a confirmed reply may already be in
     * the stream: look before resending it (never a second final). The
     * earlier unconfirmed entries of that stream were executed before it
     * on the same connection, so they are skipped too. */
    for (int i = 0; i < n; i++) {
        rds_entry *e = b[i];
        if (e->claim_id && e->sent > 0 && !e->skip_xadd) {
            int mine = first_is_claim(c, e->argv[1], e->claim_id, res->errmsg, sizeof res->errmsg);
            if (mine == -2) return SEND_TRANSIENT;
            if (mine < 0) {
                snprintf(res->errmsg, sizeof res->errmsg, "redis: %s", c->errstr);
                return SEND_CONN;
            }
            if (mine) e->skip_xadd = 1;
            continue;
        }
        if (!e->is_final || e->sent == 0 || e->skip_xadd) continue;
        int fin = last_is_final(c, e->argv[1], res->errmsg, sizeof res->errmsg);
        if (fin == -2) return SEND_TRANSIENT;
        if (fin < 0) {
            snprintf(res->errmsg, sizeof res->errmsg, "redis: %s", c->errstr);
            return SEND_CONN;
        }
        if (fin) {
            e->skip_xadd = 1;
            for (int j = 0; j < i; j++)
                if (b[j]->sent > 0 && strcmp(b[j]->argv[1], e->argv[1]) == 0) b[j]->skip_xadd = 1;
        }
    }
    char ex[16];
    for (int i = 0; i < n; i++) {
        rds_entry *e = b[i];
        if (!e->skip_xadd) redisAppendCommandArgv(c, e->argc, e->argv, e->argvlen);
        if (e->expire_s > 0) {
            snprintf(ex, sizeof ex, "%d", e->expire_s);
            const char *av[3] = {"EXPIRE", e->argv[1], ex};
            redisAppendCommandArgv(c, 3, av, NULL);
        }
        e->sent++;
    }
    for (int i = 0; i < n; i++) {
        rds_entry *e = b[i];
        int ncmd = (e->skip_xadd ? 0 : 1) + (e->expire_s > 0 ? 1 : 0);
        int rejected = 0;
        for (int k = 0; k < ncmd; k++) {
            redisReply *rep = NULL;
            if (redisGetReply(c, (void **)&rep) != REDIS_OK || !rep) {
                snprintf(res->errmsg, sizeof res->errmsg, "redis: %s", c->errstr);
                return SEND_CONN;
            }
            if (rep->type == REDIS_REPLY_ERROR) {
                rds__format_reply_error(res->errmsg, sizeof res->errmsg, k == 0 && !e->skip_xadd ? "XADD" : "EXPIRE",
                                        e->argv[1], rep->str);
                int tr = rds__transient_error(rep->str);
                freeReplyObject(rep);
                /* Stop here: later replies may be fine, but entries after a
                 * failed one must not count as written before it. */
                if (tr) return SEND_TRANSIENT;
                if (k == 0 && !e->skip_xadd) rejected = 1;
                if (k == 0 && !e->skip_xadd && e->claim_id) res->claim_refused[i] = 1;
                continue;
            }
            freeReplyObject(rep);
        }
        res->n_done++;
        if (rejected) res->n_rejected++;
        else res->n_written++;
    }
    return SEND_OK;
}

/* Removes the leading n finished entries; queues acks of final ones. */
static void retire(rds *r, int n) {
    for (int i = 0; i < n; i++) {
        rds_entry *e = r->head;
        r->head = e->next;
        if (!r->head) r->tail = NULL;
        r->n_entries--;
        r->pending_bytes -= e->bytes;
        /* a failed push would lose an ack; with 64+ slots preallocated in
         * rds_create this only happens under real memory exhaustion */
        if (e->is_final && e->ack_ctx) rds__ptrs_push(&r->acks, &r->acks_len, &r->acks_cap, e->ack_ctx);
        rds__entry_free(e);
    }
}

static rds_claimed **claimed_find(rds *r, const char *key) {
    for (rds_claimed **pp = &r->claimed; *pp; pp = &(*pp)->next)
        if (!strcmp((*pp)->key, key)) return pp;
    return NULL;
}

/* The claim of key was refused: another request owns the stream. */
static void claimed_add(rds *r, const char *key) {
    if (claimed_find(r, key)) return;
    rds_claimed *c = calloc(1, sizeof *c);
    if (c && (c->key = strdup(key))) {
        c->next = r->claimed;
        r->claimed = c;
    } else {
        free(c);
    }
}

/* Drops the head entries whose stream was claimed by another writer; the
 * final entry's ack goes to rds_poll_refused and ends the record. */
static void drop_claimed(rds *r) {
    rds_claimed **pp;
    while (r->head && r->claimed && (pp = claimed_find(r, r->head->argv[1]))) {
        rds_entry *e = r->head;
        r->head = e->next;
        if (!r->head) r->tail = NULL;
        r->n_entries--;
        r->pending_bytes -= e->bytes;
        r->write_errors++;
        if (e->is_final) {
            if (e->ack_ctx) rds__ptrs_push(&r->refused, &r->refused_len, &r->refused_cap, e->ack_ctx);
            rds_claimed *c = *pp;
            *pp = c->next;
            free(c->key);
            free(c);
        }
        rds__entry_free(e);
    }
}

/* rds__note_refusal for the sender, which holds r->mu. */
static void note_refusal_locked(rds *r, const char *msg) {
    if (!rds__is_refusal(msg)) return;
    r->refusals++;
    snprintf(r->last_refusal, sizeof r->last_refusal, "%.*s", RDS_REFUSAL_MAX - 1, msg);
}

void *rds__sender_main(void *arg) {
    rds *r = arg;
    redisContext *c = NULL;
    int backoff = 0, ever = 0;
    double next_connect = 0, stop_deadline = 0;
    rds_entry *batch[BATCH_MAX_ENTRIES], *claims[BATCH_MAX_ENTRIES];
    pthread_mutex_lock(&r->mu);
    for (;;) {
        double now = rds__now_ms();
        if (r->stopping && stop_deadline == 0) stop_deadline = now + r->cfg.free_flush_ms;
        rds__seal_expired(r, now, r->stopping);
        if (!r->head) {
            if (!r->open_head) pthread_cond_broadcast(&r->idle);
            if (r->stopping && !r->open_head) break;
            struct timespec ts;
            rds__abs_deadline(&ts, r->open_head ? r->open_head->opened_ms + r->cfg.flush_ms - now : 1000);
            pthread_cond_timedwait(&r->wake, &r->mu, &ts);
            continue;
        }
        if (r->stopping && now >= stop_deadline) break;
        if (!c) {
            if (now < next_connect) {
                double until = next_connect;
                if (r->stopping && stop_deadline < until) until = stop_deadline;
                struct timespec ts;
                rds__abs_deadline(&ts, until - now);
                pthread_cond_timedwait(&r->wake, &r->mu, &ts);
                continue;
            }
            pthread_mutex_unlock(&r->mu);
            inf_error e = {0};
            int rc = rds_connect(&r->url, r->cfg.connect_timeout_ms, &c, &e);
            pthread_mutex_lock(&r->mu);
            if (rc) {
                snprintf(r->last_error, sizeof r->last_error, "%.159s", e.msg);
                note_refusal_locked(r, e.msg);
                backoff = backoff ? (backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2)
                                  : BACKOFF_MIN_MS;
                next_connect = rds__now_ms() + backoff;
                continue;
            }
            if (ever) r->reconnects++;
            ever = 1;
            atomic_store(&r->connected, 1);
        }
        drop_claimed(r);
        if (!r->head) continue;
        int n = 0, n_claims = 0;
        size_t bytes = 0;
        for (rds_entry *e = r->head; e && n < BATCH_MAX_ENTRIES && bytes < BATCH_MAX_BYTES;
             e = e->next) {
            /* An entry of a refused stream waits to reach the head (dropped
             * there). Claims of several streams share a batch, but no other
             * entry of a claimed stream rides along: nothing of it is in
             * flight before Redis said whether the stream is ours. */
            if (n > 0 && r->claimed && claimed_find(r, e->argv[1])) break;
            int behind_claim = 0;
            for (int i = 0; i < n_claims && !behind_claim; i++)
                behind_claim = !strcmp(claims[i]->argv[1], e->argv[1]);
            if (behind_claim) break;
            batch[n++] = e;
            bytes += e->bytes;
            if (e->claim_id && !e->skip_xadd) claims[n_claims++] = e;
        }
        pthread_mutex_unlock(&r->mu);
        batch_result res;
        double t0 = rds__now_ms();
        int rc = send_batch(c, batch, n, &res);
        double dt = rds__now_ms() - t0;
        pthread_mutex_lock(&r->mu);
        for (int i = 0; i < res.n_done; i++)
            if (res.claim_refused[i]) claimed_add(r, batch[i]->argv[1]);
        retire(r, res.n_done);
        r->written += res.n_written;
        r->write_errors += res.n_rejected;
        if (res.errmsg[0]) {
            snprintf(r->last_error, sizeof r->last_error, "%.159s", res.errmsg);
            note_refusal_locked(r, res.errmsg);
        }
        if (rc == SEND_OK) {
            r->last_publish_ms = dt;
            backoff = 0;
        } else {
            r->write_errors++;
            redisFree(c);
            c = NULL;
            atomic_store(&r->connected, 0);
            backoff = backoff ? (backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2)
                              : BACKOFF_MIN_MS;
            /* A dropped connection is retried at once (Redis may be back
             * already); a transient refusal waits out the backoff. */
            next_connect = rc == SEND_CONN && backoff == BACKOFF_MIN_MS ? 0 : rds__now_ms() + backoff;
        }
    }
    pthread_cond_broadcast(&r->idle);
    pthread_mutex_unlock(&r->mu);
    if (c) redisFree(c);
    atomic_store(&r->connected, 0);
    return NULL;
}

