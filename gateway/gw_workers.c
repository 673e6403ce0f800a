/* gw_workers.c - see gw_workers.h. */
#include "gw_workers.h"

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "redis_out.h"

#define MAX_MODELS 64

typedef struct model {
    char name[256];
    gw_model_state st;
    long long done_sum; /* for the rate */
} model;

struct gw_workers {
    gw_workers_config cfg;
    char *zset, *prefix;
    rds_url u;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
    redisContext *c; /* poller's own */
    model models[MAX_MODELS];
    int n_models;
    gw_workers_health h;
    long long prev_done[MAX_MODELS];
    char prev_name[MAX_MODELS][256];
    long long prev_ms;
};

static long long epoch_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *hget(const redisReply *r, const char *k) {
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2)
        if (r->element[i]->str && !strcmp(r->element[i]->str, k)) return r->element[i + 1]->str;
    return NULL;
}

static long long hnum(const redisReply *r, const char *k) {
    const char *s = hget(r, k);
    return s ? atoll(s) : 0;
}

static int poll_once(gw_workers *w, inf_error *err) {
    if (!w->c && rds_connect(&w->u, 2000, &w->c, err) != 0) {
        w->c = NULL;
        return INF_EIO;
    }
    long long now = epoch_ms();
    redisReply *ids = redisCommand(w->c, "ZRANGEBYSCORE %s %lld +inf", w->zset, now - w->cfg.stale_ms);
    if (!ids || ids->type != REDIS_REPLY_ARRAY) {
        int rc = inf_error_set(err, INF_EIO, "workers: ZRANGEBYSCORE %s: %s", w->zset,
                               ids && ids->str ? ids->str : w->c->errstr);
        if (ids) freeReplyObject(ids);
        else {
            redisFree(w->c);
            w->c = NULL;
        }
        return rc;
    }
    for (size_t i = 0; i < ids->elements; i++)
        redisAppendCommand(w->c, "HGETALL %s%s", w->prefix, ids->element[i]->str ? ids->element[i]->str : "");
    model ms[MAX_MODELS];
    int nm = 0, live = 0, ready = 0, failed = 0;
    memset(ms, 0, sizeof ms);
    for (size_t i = 0; i < ids->elements; i++) {
        redisReply *h = NULL;
        if (redisGetReply(w->c, (void **)&h) != REDIS_OK) {
            failed = 1;
            break;
        }
        const char *name = hget(h, "model"), *status = hget(h, "status");
        long long seen = hnum(h, "last_seen");
        if (name && *name && seen >= now - w->cfg.stale_ms) {
            int k = 0;
            while (k < nm && strcmp(ms[k].name, name)) k++;
            if (k == nm && nm < MAX_MODELS) {
                snprintf(ms[nm].name, sizeof ms[nm].name, "%s", name);
                nm++;
            }
            if (k < nm) {
                gw_model_state *s = &ms[k].st;
                int is_ready = status && !strcmp(status, "ready");
                const char *ct = hget(h, "chat_template");
                s->live++;
                s->ready += is_ready;
                s->chat_template |= ct && (!strcmp(ct, "true") || !strcmp(ct, "1"));
                s->waiting += hnum(h, "waiting");
                s->running += hnum(h, "running");
                s->capacity += is_ready ? hnum(h, "max_num_seqs") : 0;
                long long st = hnum(h, "started_at") / 1000;
                if (st && (!s->created_s || st < s->created_s)) s->created_s = st;
                ms[k].done_sum += hnum(h, "requests_done") + hnum(h, "requests_failed");
                live++;
                ready += is_ready;
            }
        }
        freeReplyObject(h);
    }
    freeReplyObject(ids);
    if (failed) {
        redisFree(w->c);
        w->c = NULL;
        return inf_error_set(err, INF_EIO, "workers: HGETALL failed");
    }
    pthread_mutex_lock(&w->mu);
    double dt = w->prev_ms ? (double)(now - w->prev_ms) / 1000.0 : 0;
    for (int k = 0; k < nm; k++) {
        ms[k].st.requests_per_s = 0;
        for (int j = 0; j < MAX_MODELS && dt > 0; j++)
            if (!strcmp(w->prev_name[j], ms[k].name) && ms[k].done_sum >= w->prev_done[j]) {
                double rate = (double)(ms[k].done_sum - w->prev_done[j]) / dt;
                /* keep the previous estimate while heartbeats have not moved */
                for (int p = 0; p < w->n_models; p++)
                    if (!strcmp(w->models[p].name, ms[k].name) && rate == 0) rate = w->models[p].st.requests_per_s;
                ms[k].st.requests_per_s = rate;
            }
    }
    memset(w->prev_name, 0, sizeof w->prev_name);
    for (int k = 0; k < nm; k++) {
        snprintf(w->prev_name[k], sizeof w->prev_name[k], "%.255s", ms[k].name);
        w->prev_done[k] = ms[k].done_sum;
    }
    w->prev_ms = now;
    memcpy(w->models, ms, sizeof ms);
    w->n_models = nm;
    w->h.redis_ok = 1;
    w->h.live = live;
    w->h.ready = ready;
    w->h.polls++;
    w->h.last_poll_ms = now;
    pthread_mutex_unlock(&w->mu);
    return 0;
}

static void *poll_main(void *arg) {
    gw_workers *w = arg;
    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        pthread_mutex_unlock(&w->mu);
        inf_error err = {0};
        if (poll_once(w, &err) != 0) {
            pthread_mutex_lock(&w->mu);
            w->h.redis_ok = 0;
            pthread_mutex_unlock(&w->mu);
        }
        pthread_mutex_lock(&w->mu);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        long long ns = ts.tv_nsec + (long long)w->cfg.poll_ms * 1000000LL;
        ts.tv_sec += ns / 1000000000LL;
        ts.tv_nsec = ns % 1000000000LL;
        if (!w->stop) pthread_cond_timedwait(&w->cv, &w->mu, &ts);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

int gw_workers_create(gw_workers **out, const gw_workers_config *cfg, inf_error *err) {
    *out = NULL;
    gw_workers *w = calloc(1, sizeof *w);
    if (!w) return inf_error_set(err, INF_ENOMEM, "out of memory");
    w->cfg = *cfg;
    if (rds_url_parse(cfg->url, &w->u, err) != 0) {
        free(w);
        return INF_EINVAL;
    }
    w->zset = strdup(cfg->zset);
    w->prefix = strdup(cfg->key_prefix);
    if (!w->zset || !w->prefix) {
        free(w->zset);
        free(w->prefix);
        free(w);
        return inf_error_set(err, INF_ENOMEM, "out of memory");
    }
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    if (pthread_create(&w->th, NULL, poll_main, w) != 0) {
        free(w->zset);
        free(w->prefix);
        free(w);
        return inf_error_set(err, INF_EIO, "cannot start the heartbeat thread");
    }
    *out = w;
    return 0;
}

void gw_workers_free(gw_workers *w) {
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->th, NULL);
    if (w->c) redisFree(w->c);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w->zset);
    free(w->prefix);
    free(w);
}

int gw_workers_poll_now(gw_workers *w, inf_error *err) {
    /* the poller thread owns w->c: ask it to go round instead of racing it */
    pthread_mutex_lock(&w->mu);
    long long polls = w->h.polls;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    for (int i = 0; i < 400; i++) {
        pthread_mutex_lock(&w->mu);
        int done = w->h.polls > polls;
        pthread_mutex_unlock(&w->mu);
        if (done) return 0;
        usleep(5000);
    }
    return inf_error_set(err, INF_ETIMEOUT, "workers: no heartbeat poll within 2 s");
}

int gw_workers_model(gw_workers *w, const char *name, gw_model_state *st) {
    int found = 0;
    pthread_mutex_lock(&w->mu);
    for (int k = 0; k < w->n_models && !found; k++)
        if (!strcmp(w->models[k].name, name)) {
            *st = w->models[k].st;
            found = 1;
        }
    pthread_mutex_unlock(&w->mu);
    return found;
}

void gw_workers_models_json(gw_workers *w, gw_buf *out) {
    gw_buf_puts(out, "{\"object\":\"list\",\"data\":[");
    pthread_mutex_lock(&w->mu);
    for (int k = 0; k < w->n_models; k++) {
        gw_buf_puts(out, k ? ",{\"id\":" : "{\"id\":");
        gw_buf_json_str(out, w->models[k].name, strlen(w->models[k].name));
        gw_buf_printf(out, ",\"object\":\"model\",\"created\":%lld,\"owned_by\":\"inferno\"}",
                      w->models[k].st.created_s);
    }
    pthread_mutex_unlock(&w->mu);
    gw_buf_puts(out, "]}");
}

void gw_workers_get_health(gw_workers *w, gw_workers_health *h) {
    pthread_mutex_lock(&w->mu);
    *h = w->h;
    pthread_mutex_unlock(&w->mu);
}
