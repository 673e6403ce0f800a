/* gw_workers.h - what the live workers announce (docs/redis.md, "Worker
 * discovery"), read by an own thread every poll_ms on an own connection:
 * ZRANGEBYSCORE workers_zset (now - stale_ms) +inf, then HGETALL of each
 * heartbeat hash. The snapshot is grouped by model (the heartbeat's
 * `model` field) and answers /v1/models, model_not_found, the chat
 * template check and backpressure (ready workers, queued work, rate).
 *
 * Threads: every call may come from any thread (the snapshot is under a
 * mutex and copied out).
 */
#ifndef INF_GW_WORKERS_H
#define INF_GW_WORKERS_H

#include "gw_buf.h"
#include "status.h"

typedef struct gw_workers gw_workers;

typedef struct gw_workers_config {
    const char *url;
    const char *zset;        /* inferno:workers */
    const char *key_prefix;  /* inferno:worker: */
    int poll_ms;
    int stale_ms;            /* heartbeats older than this are ignored */
} gw_workers_config;

typedef struct gw_model_state {
    int live, ready;         /* workers announcing the model; of those with status ready */
    int chat_template;       /* some live worker says chat_template=true */
    long long waiting;       /* sum of their `waiting` */
    long long running, capacity; /* sum of running, of max_num_seqs */
    double requests_per_s;   /* finished requests per second (requests_done over the last polls) */
    long long created_s;     /* earliest started_at, Unix seconds */
} gw_model_state;

int gw_workers_create(gw_workers **out, const gw_workers_config *cfg, inf_error *err);
void gw_workers_free(gw_workers *w);

/* 1 and *st when some live worker announces model, else 0. */
int gw_workers_model(gw_workers *w, const char *model, gw_model_state *st);

/* The /v1/models body: {"object":"list","data":[{"id","object":"model",
 * "created","owned_by":"inferno"}, ...]} for every model a live worker
 * announces. */
void gw_workers_models_json(gw_workers *w, gw_buf *out);

typedef struct gw_workers_health {
    int redis_ok;            /* the last poll succeeded */
    int live, ready;         /* over all models */
    long long polls;
    long long last_poll_ms;  /* epoch ms */
} gw_workers_health;

void gw_workers_get_health(gw_workers *w, gw_workers_health *h);

/* Polls once now (blocking; for tests and start-up). */
int gw_workers_poll_now(gw_workers *w, inf_error *err);

#endif
