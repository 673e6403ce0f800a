/* redis_check.c - the checker thread: admission checks of reply streams
 * (ownership, final state, cancel key) and heartbeats, so that the caller's
 * loop never waits on Redis. One check at a time on the query connection;
 * while Redis fails (connection lost, timeout, LOADING, NOPERM) every check
 * waits behind a shared backoff, because they all need the same Redis; an
 * error that belongs to one message (WRONGTYPE, a stream of another
 * request) ends that check at once and never holds the others back. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis_internal.h"

#define CHK_BACKOFF_MIN_MS 100
#define CHK_BACKOFF_MAX_MS 5000

int rds_reply_key_allowed(const rds *r, const char *key) {
    size_t n = strlen(r->cfg.out_prefix);
    return key && strncmp(key, r->cfg.out_prefix, n) == 0 && key[n] != '\0';
}

/* Appends a result (caller holds kmu). */
static int push_result(rds *r, const rds_check_result *res) {
    if (r->chk_res_len == r->chk_res_cap) {
        size_t cap = r->chk_res_cap ? 2 * r->chk_res_cap : 32;
        rds_check_result *n = realloc(r->chk_res, cap * sizeof *n);
        if (!n) return INF_ENOMEM;
        r->chk_res = n;
        r->chk_res_cap = cap;
    }
    r->chk_res[r->chk_res_len++] = *res;
    return 0;
}

int rds_check_submit(rds *r, const char *stream_key, const char *request_id, void *ctx, inf_error *err) {
    if (!stream_key || !*stream_key) return inf_error_set(err, INF_EINVAL, "redis check: empty stream key");
    if (!request_id || !*request_id || strlen(request_id) > RDS_ID_MAX)
        return inf_error_set(err, INF_EINVAL, "redis check: request id must be 1..%d bytes", RDS_ID_MAX);
    rds_chk *c = calloc(1, sizeof *c);
    if (!c || !(c->key = strdup(stream_key))) {
        free(c);
        return inf_error_set(err, INF_ENOMEM, "redis check: out of memory");
    }
    snprintf(c->id, sizeof c->id, "%s", request_id);
    c->ctx = ctx;
    pthread_mutex_lock(&r->kmu);
    if (r->chk_tail) r->chk_tail->next = c;
    else r->chk_head = c;
    r->chk_tail = c;
    pthread_cond_signal(&r->kwake);
    pthread_mutex_unlock(&r->kmu);
    return 0;
}

int rds_poll_checks(rds *r, rds_check_result *out, int max) {
    pthread_mutex_lock(&r->kmu);
    int n = (int)(r->chk_res_len < (size_t)max ? r->chk_res_len : (size_t)max);
    if (n > 0) {
        memcpy(out, r->chk_res, (size_t)n * sizeof *out);
        memmove(r->chk_res, r->chk_res + n, (r->chk_res_len - (size_t)n) * sizeof *out);
        r->chk_res_len -= (size_t)n;
    }
    pthread_mutex_unlock(&r->kmu);
    return n;
}

void rds_heartbeat_post(rds *r, const rds_worker_info *info, int ttl_s) {
    pthread_mutex_lock(&r->kmu);
    if (r->hb_closed) {
        pthread_mutex_unlock(&r->kmu);
        return;
    }
    r->hb_info = *info;
    const char *src[8] = {info->id, info->host, info->model, info->backend,
                          info->device, info->status, info->version, info->topics};
    const char **dst[8] = {&r->hb_info.id, &r->hb_info.host, &r->hb_info.model, &r->hb_info.backend,
                           &r->hb_info.device, &r->hb_info.status, &r->hb_info.version, &r->hb_info.topics};
    for (int i = 0; i < 8; i++) {
        snprintf(r->hb_str[i], sizeof r->hb_str[i], "%s", src[i] ? src[i] : "");
        *dst[i] = r->hb_str[i];
    }
    r->hb_ttl_s = ttl_s;
    r->hb_pending = 1;
    pthread_cond_signal(&r->kwake);
    pthread_mutex_unlock(&r->kmu);
}

int rds_heartbeat_poll(rds *r, int *ok, char *msg, size_t cap) {
    pthread_mutex_lock(&r->kmu);
    int done = r->hb_done;
    if (done) {
        *ok = r->hb_ok;
        if (msg && cap) snprintf(msg, cap, "%s", r->hb_err);
        r->hb_done = 0;
    }
    pthread_mutex_unlock(&r->kmu);
    return done;
}

/* Runs check c on the query connection (no lock held). */
static int run_check(rds *r, const rds_chk *c, rds_check_result *res) {
    memset(res, 0, sizeof *res);
    res->ctx = c->ctx;
    inf_error err = {0};
    rds__scan s;
    int rc = rds__scan_stream(r, c->key, c->id, &s, &err);
    if (!rc && !s.has_final) rc = rds_cancel_key_exists(r, c->id, &res->cancelled, &err);
    res->status = rc;
    if (rc) {
        snprintf(res->message, sizeof res->message, "%s", err.msg);
    } else {
        res->has_final = s.has_final;
        res->last_attempt = s.last_attempt;
    }
    return rc;
}

static void *checker_main(void *arg) {
    rds *r = arg;
    pthread_mutex_lock(&r->kmu);
    while (!r->kstopping) {
        double now = rds__now_ms();
        if (r->hb_pending) {
            rds_worker_info info = r->hb_info;
            char str[8][256];
            memcpy(str, r->hb_str, sizeof str);
            const char **f[8] = {&info.id, &info.host, &info.model, &info.backend,
                                 &info.device, &info.status, &info.version, &info.topics};
            for (int i = 0; i < 8; i++) *f[i] = str[i];
            int ttl = r->hb_ttl_s;
            r->hb_pending = 0;
            r->hb_running = 1;
            pthread_mutex_unlock(&r->kmu);
            inf_error err = {0};
            int rc = rds_heartbeat(r, &info, ttl, &err);
            pthread_mutex_lock(&r->kmu);
            r->hb_running = 0;
            r->hb_done = 1;
            r->hb_ok = rc == 0;
            snprintf(r->hb_err, sizeof r->hb_err, "%s", rc ? err.msg : "");
            continue;
        }
        if (!r->chk_head || now < r->chk_pause_until) {
            struct timespec ts;
            rds__abs_deadline(&ts, r->chk_head ? r->chk_pause_until - now : 1000);
            pthread_cond_timedwait(&r->kwake, &r->kmu, &ts);
            continue;
        }
        rds_chk *c = r->chk_head;
        pthread_mutex_unlock(&r->kmu);
        rds_check_result res;
        int rc = run_check(r, c, &res);
        pthread_mutex_lock(&r->kmu);
        if (rc == INF_EIO) {
            /* Redis is the problem, not this message: keep it first in line
             * and let every check wait out the backoff. */
            r->chk_backoff_ms = r->chk_backoff_ms ? 2 * r->chk_backoff_ms : CHK_BACKOFF_MIN_MS;
            if (r->chk_backoff_ms > CHK_BACKOFF_MAX_MS) r->chk_backoff_ms = CHK_BACKOFF_MAX_MS;
            r->chk_pause_until = rds__now_ms() + r->chk_backoff_ms;
            push_result(r, &res); /* informational: the caller may log it */
            continue;
        }
        r->chk_backoff_ms = 0;
        if (push_result(r, &res) != 0) {
            r->chk_pause_until = rds__now_ms() + CHK_BACKOFF_MIN_MS; /* no memory: try again later */
            continue;
        }
        r->chk_head = c->next;
        if (!r->chk_head) r->chk_tail = NULL;
        free(c->key);
        free(c);
        if (r->cfg.notify) r->cfg.notify(r->cfg.notify_arg);
    }
    pthread_mutex_unlock(&r->kmu);
    return NULL;
}

int rds__checker_start(rds *r, inf_error *err) {
    if (pthread_create(&r->checker, NULL, checker_main, r) != 0)
        return inf_error_set(err, INF_EIO, "redis: cannot start the checker thread");
    r->checker_started = 1;
    return 0;
}

/* Called by rds_unregister: no posted heartbeat may land after the DEL. */
void rds__heartbeat_close(rds *r) {
    pthread_mutex_lock(&r->kmu);
    r->hb_closed = 1;
    r->hb_pending = 0;
    while (r->hb_running) {
        pthread_mutex_unlock(&r->kmu);
        struct timespec d = {0, 2000000};
        nanosleep(&d, NULL);
        pthread_mutex_lock(&r->kmu);
    }
    pthread_mutex_unlock(&r->kmu);
}

void rds__checker_stop(rds *r) {
    if (r->checker_started) {
        pthread_mutex_lock(&r->kmu);
        r->kstopping = 1;
        pthread_cond_signal(&r->kwake);
        pthread_mutex_unlock(&r->kmu);
        pthread_join(r->checker, NULL);
        r->checker_started = 0;
    }
    while (r->chk_head) {
        rds_chk *c = r->chk_head;
        r->chk_head = c->next;
        free(c->key);
        free(c);
    }
    r->chk_tail = NULL;
    free(r->chk_res);
    r->chk_res = NULL;
    r->chk_res_len = r->chk_res_cap = 0;
}
