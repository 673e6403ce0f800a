/* redis_query.c - blocking queries on their own connection: final state of
 * a stream, cancel keys, discovery heartbeats. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis_internal.h"

void rds__query_close(rds *r) {
    pthread_mutex_lock(&r->qmu);
    if (r->qc) redisFree(r->qc);
    r->qc = NULL;
    pthread_mutex_unlock(&r->qmu);
}

/* Runs argv on the query connection (caller holds qmu), reconnecting once
 * if the connection was broken (e.g. Redis restarted since the last query).
 * Returns the reply (caller frees) or NULL with err filled: INF_EFORMAT for
 * an error reply that can never succeed (WRONGTYPE: the key is not what the
 * command needs), INF_EIO for connection trouble and transient refusals
 * (LOADING, NOPERM: an operator can fix those). */
static redisReply *qcmd(rds *r, int argc, const char **argv, const size_t *lens, inf_error *err) {
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!r->qc) {
            redisContext *c;
            if (rds_connect(&r->url, r->cfg.connect_timeout_ms, &c, err) != 0) {
                if (err) rds__note_refusal(r, err->msg); /* WRONGPASS: user or password wrong */
                return NULL;
            }
            r->qc = c;
        }
        redisReply *rep = redisCommandArgv(r->qc, argc, argv, lens);
        if (rep) {
            if (rep->type == REDIS_REPLY_ERROR) {
                int tr = rds__transient_error(rep->str);
                char msg[INF_ERROR_MSG_MAX];
                rds__format_reply_error(msg, sizeof msg, argv[0], rds__is_refusal(rep->str) && argc > 1 ? argv[1] : NULL,
                                        rep->str);
                inf_error_set(err, tr ? INF_EIO : INF_EFORMAT, "%s", msg);
                rds__note_refusal(r, msg);
                freeReplyObject(rep);
                return NULL;
            }
            return rep;
        }
        inf_error_set(err, INF_EIO, "redis %s: %s", argv[0], r->qc->errstr);
        redisFree(r->qc);
        r->qc = NULL;
    }
    return NULL;
}

static const char *kv_get(const redisReply *kv, const char *name) {
    for (size_t i = 0; i + 1 < kv->elements; i += 2)
        if (kv->element[i]->type == REDIS_REPLY_STRING && strcmp(kv->element[i]->str, name) == 0 &&
            kv->element[i + 1]->type == REDIS_REPLY_STRING)
            return kv->element[i + 1]->str;
    return NULL;
}

#define SCAN_PAGE 500

/* Looks at one entry; nonzero (permanent status, err set) stops the scan. */
static int scan_entry(const redisReply *ent, const char *key, const char *request_id, rds__scan *s,
                      inf_error *err) {
    const redisReply *kv = ent->element[1];
    const char *ev = kv_get(kv, "event");
    if (!ev) {
        if (!request_id) return 0;
        return inf_error_set(err, INF_EFORMAT, "reply stream %s holds entries the worker did not write (entry %s has no event field)",
                             key, ent->element[0]->type == REDIS_REPLY_STRING ? ent->element[0]->str : "?");
    }
    if (strcmp(ev, "done") == 0 || strcmp(ev, "error") == 0) s->has_final = 1;
    if (strcmp(ev, "start") == 0) {
        const char *owner = kv_get(kv, "request_id");
        if (request_id && (!owner || strcmp(owner, request_id) != 0))
            return inf_error_set(err, INF_EEXIST, "reply stream %s belongs to request %.128s", key,
                                 owner ? owner : "(none)");
        const char *a = kv_get(kv, "attempt");
        int v = a ? atoi(a) : 0;
        if (v > s->last_attempt) s->last_attempt = v;
    }
    return 0;
}

int rds__scan_stream(rds *r, const char *key, const char *request_id, rds__scan *s, inf_error *err) {
    memset(s, 0, sizeof *s);
    if (!key || !*key) return inf_error_set(err, INF_EINVAL, "redis: empty stream key");
    char start[64] = "-";
    long max = r->cfg.scan_max_entries > 0 ? r->cfg.scan_max_entries : 20000;
    char count[16];
    snprintf(count, sizeof count, "%d", SCAN_PAGE);
    int rc = 0;
    pthread_mutex_lock(&r->qmu);
    /* Page through the stream. The cursor moves from the last entry of every
     * page whatever that entry holds, and the total is bounded: the stream
     * may be one the worker did not write. */
    for (;;) {
        const char *argv[6] = {"XRANGE", key, start, "+", "COUNT", count};
        redisReply *rep = qcmd(r, 6, argv, NULL, err);
        if (!rep) {
            rc = err ? err->code : INF_EIO;
            if (rc == INF_EFORMAT && err && strstr(err->msg, "WRONGTYPE"))
                rc = inf_error_set(err, INF_EFORMAT, "reply stream key %s holds a value that is not a stream", key);
            break;
        }
        if (rep->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(rep);
            rc = inf_error_set(err, INF_EIO, "redis XRANGE %s: unexpected reply", key);
            break;
        }
        size_t n = rep->elements;
        for (size_t i = 0; i < n && !rc; i++) {
            redisReply *ent = rep->element[i];
            if (ent->type != REDIS_REPLY_ARRAY || ent->elements != 2 || ent->element[0]->type != REDIS_REPLY_STRING ||
                ent->element[1]->type != REDIS_REPLY_ARRAY) {
                rc = inf_error_set(err, INF_EFORMAT, "redis XRANGE %s: malformed entry", key);
                break;
            }
            rc = scan_entry(ent, key, request_id, s, err);
            if (i + 1 == n) snprintf(start, sizeof start, "(%s", ent->element[0]->str); /* exclusive */
        }
        freeReplyObject(rep);
        s->entries += (long)n;
        if (rc || n < SCAN_PAGE) break;
        if (s->entries >= max) {
            rc = inf_error_set(err, INF_EFORMAT, "reply stream %s holds more than %ld entries", key, max);
            break;
        }
    }
    pthread_mutex_unlock(&r->qmu);
    return rc;
}

int rds_final_state(rds *r, const char *stream_key, int *has_final, int *last_attempt,
                    inf_error *err) {
    rds__scan s;
    int rc = rds__scan_stream(r, stream_key, NULL, &s, err);
    *has_final = rc ? 0 : s.has_final;
    *last_attempt = rc ? 0 : s.last_attempt;
    return rc;
}

int rds_cancel_key_exists(rds *r, const char *request_id, int *exists, inf_error *err) {
    *exists = 0;
    if (!request_id || !*request_id) return inf_error_set(err, INF_EINVAL, "redis: empty request id");
    char key[1200];
    int n = snprintf(key, sizeof key, "%s%s", r->cfg.cancel_key_prefix, request_id);
    if (n < 0 || (size_t)n >= sizeof key) return inf_error_set(err, INF_EINVAL, "redis: cancel key too long");
    pthread_mutex_lock(&r->qmu);
    const char *argv[2] = {"EXISTS", key};
    redisReply *rep = qcmd(r, 2, argv, NULL, err);
    int rc = 0;
    if (!rep) rc = INF_EIO;
    else {
        *exists = rep->type == REDIS_REPLY_INTEGER && rep->integer > 0;
        freeReplyObject(rep);
    }
    pthread_mutex_unlock(&r->qmu);
    return rc;
}

int rds_heartbeat(rds *r, const rds_worker_info *w, int ttl_s, inf_error *err) {
    if (!w || !w->id || !*w->id) return inf_error_set(err, INF_EINVAL, "redis heartbeat: worker id missing");
    if (ttl_s <= 0) return inf_error_set(err, INF_EINVAL, "redis heartbeat: ttl must be > 0");
    char key[512];
    int kn = snprintf(key, sizeof key, "%s%s", r->cfg.worker_key_prefix, w->id);
    if (kn < 0 || (size_t)kn >= sizeof key) return inf_error_set(err, INF_EINVAL, "redis heartbeat: id too long");
    long long now = rds__epoch_ms();
    char num[11][32];
    snprintf(num[0], 32, "%d", w->pid);
    snprintf(num[1], 32, "%d", w->max_num_seqs);
    snprintf(num[2], 32, "%d", w->running);
    snprintf(num[3], 32, "%d", w->waiting);
    snprintf(num[4], 32, "%d", w->kv_used);
    snprintf(num[5], 32, "%d", w->kv_total);
    snprintf(num[6], 32, "%.2f", w->tokens_per_s);
    snprintf(num[7], 32, "%lld", w->done);
    snprintf(num[8], 32, "%lld", w->failed);
    snprintf(num[9], 32, "%lld", w->started_at_ms);
    snprintf(num[10], 32, "%lld", now);
#define S(x) ((x) ? (x) : "")
    const char *hset[] = {"HSET", key,
                          "id", w->id,
                          "host", S(w->host),
                          "pid", num[0],
                          "model", S(w->model),
                          "backend", S(w->backend),
                          "device", S(w->device),
                          "status", S(w->status),
                          "max_num_seqs", num[1],
                          "running", num[2],
                          "waiting", num[3],
                          "kv_blocks_used", num[4],
                          "kv_blocks_total", num[5],
                          "tokens_per_s", num[6],
                          "requests_done", num[7],
                          "requests_failed", num[8],
                          "started_at", num[9],
                          "last_seen", num[10],
                          "version", S(w->version),
                          "topics", S(w->topics),
                          "chat_template", w->chat_template ? "true" : "false"};
#undef S
    char ttl[16], old[32];
    snprintf(ttl, sizeof ttl, "%d", ttl_s);
    snprintf(old, sizeof old, "%lld", now - 3LL * ttl_s * 1000);
    const char *expire[] = {"EXPIRE", key, ttl};
    const char *zadd[] = {"ZADD", r->cfg.workers_zset, num[10], w->id};
    const char *zrem[] = {"ZREMRANGEBYSCORE", r->cfg.workers_zset, "-inf", old};
    int rc = 0;
    pthread_mutex_lock(&r->qmu);
    const char **cmds[4] = {hset, expire, zadd, zrem};
    int argcs[4] = {(int)(sizeof hset / sizeof *hset), 3, 4, 4};
    for (int i = 0; i < 4 && rc == 0; i++) {
        redisReply *rep = qcmd(r, argcs[i], cmds[i], NULL, err);
        if (!rep) rc = INF_EIO;
        else freeReplyObject(rep);
    }
    pthread_mutex_unlock(&r->qmu);
    return rc;
}

int rds_unregister(rds *r, const char *worker_id, inf_error *err) {
    if (!worker_id || !*worker_id) return inf_error_set(err, INF_EINVAL, "redis unregister: worker id missing");
    char key[512];
    int kn = snprintf(key, sizeof key, "%s%s", r->cfg.worker_key_prefix, worker_id);
    if (kn < 0 || (size_t)kn >= sizeof key) return inf_error_set(err, INF_EINVAL, "redis unregister: id too long");
    rds__heartbeat_close(r);
    const char *del[] = {"DEL", key};
    const char *zrem[] = {"ZREM", r->cfg.workers_zset, worker_id};
    int rc = 0;
    pthread_mutex_lock(&r->qmu);
    redisReply *rep = qcmd(r, 2, del, NULL, err);
    if (!rep) rc = INF_EIO;
    else freeReplyObject(rep);
    if (rc == 0) {
        rep = qcmd(r, 3, zrem, NULL, err);
        if (!rep) rc = INF_EIO;
        else freeReplyObject(rep);
    }
    pthread_mutex_unlock(&r->qmu);
    return rc;
}
