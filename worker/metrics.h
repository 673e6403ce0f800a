/* metrics.h - the worker's metrics and health state (docs/operations.md).
 *
 * Two threads meet here and nowhere else: the worker's loop thread records
 * events (a request finished, a token came, Redis confirmed an entry) and
 * copies a snapshot of engine, Kafka and Redis state (wm_update) at a fixed
 * interval; the HTTP thread (http.c) renders /metrics, /healthz and /readyz
 * from that state. Every function takes the one mutex inside, so the HTTP
 * thread never calls into the engine, the consumer or the Redis client.
 *
 * Names and histogram buckets follow vLLM's (vllm:X -> inferno_X); the text
 * format is Prometheus 0.0.4.
 */
#ifndef INF_WORKER_METRICS_H
#define INF_WORKER_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "kafka_in.h"
#include "redis_out.h"
#include "status.h"

typedef struct wmetrics wmetrics;

/* How a request ended, for inferno_requests_total{outcome}. */
typedef enum wm_outcome {
    WM_DONE = 0,   /* finished: stop or length */
    WM_ERROR,      /* the engine failed it (event=error) */
    WM_ABORT,      /* cancelled or aborted at shutdown */
    WM_DEADLINE,   /* its deadline passed */
    WM_DLQ,        /* rejected: dead-lettered (bad message, invalid request) */
    WM_N_OUTCOMES
} wm_outcome;

/* Static facts shown in inferno_info and used for labels; copied. */
typedef struct wm_info {
    const char *worker_id, *version, *model;
    const char *topics[KIN_MAX_TOPICS]; /* most urgent first */
    int n_topics;
    int max_model_len;                  /* token histograms' top bucket; 0: 8192 */
    int stall_ms;                       /* /healthz fails when the loop stalls longer */
} wm_info;

/* The periodic snapshot the loop thread hands over with wm_update. */
typedef struct wm_gauges {
    const char *state;          /* static: starting | ready | draining | stopped */
    int64_t progress_age_ms;    /* requests wait and nothing moved for this long; -1: none wait */
    const char *backend, *device; /* static or engine-owned: copied */
    int model_loaded;
    int in_flight;              /* Kafka messages taken and not finished */
    int pending;                /* decoded, not yet in the engine */
    engine_stats engine;
    kin_stats_t kafka;
    rds_stats_t redis;
    int64_t last_heartbeat_ms;  /* monotonic ms of the last successful heartbeat; 0 none */
    long long heartbeat_failures;
    int heartbeat_ok;           /* the last heartbeat reached Redis */
} wm_gauges;

/* Creates the state (no thread). *out is owned by the caller (wm_free). */
int wm_create(wmetrics **out, const wm_info *info, inf_error *err);

/* Frees it; the HTTP server using it must be stopped first. NULL is fine. */
void wm_free(wmetrics *m);

/* The loop went round once (monotonic ms): feeds /healthz. */
void wm_loop_tick(wmetrics *m, int64_t mono_ms);

/* Copies the snapshot (g is not kept). */
void wm_update(wmetrics *m, const wm_gauges *g);

/* One request reached its final state; topic_index is its source topic. */
void wm_request_final(wmetrics *m, int topic_index, wm_outcome o);

/* A finished request's timings (ms, < 0 = unknown) and token counts. */
void wm_observe_finished(wmetrics *m, double queue_ms, double ttft_ms, double e2e_ms, int prompt_tokens,
                         int generation_tokens);

/* Gap between two tokens of one request (ms); n_tokens tokens arrived. */
void wm_observe_itl(wmetrics *m, double itl_ms, int n_tokens);

/* Time from queueing a final entry to Redis confirming it (ms). */
void wm_observe_publish(wmetrics *m, double ms);

/* Renders every metric as Prometheus text (format 0.0.4) into a malloc'd,
 * NUL-terminated buffer (*out; caller frees; *len without the NUL). */
int wm_render(wmetrics *m, int64_t now_mono_ms, char **out, size_t *len, inf_error *err);

/* /healthz and /readyz: writes a JSON object into body (cap bytes) and
 * returns the HTTP status, 200 or 503. Healthy: the loop went round within
 * stall_ms (or it has not started yet: the model is loading). Ready: model
 * loaded, state ready (not draining), Kafka partitions assigned, Redis
 * reachable (the last heartbeat was written, and the output connection is up
 * or has nothing to write: it connects lazily). */
int wm_healthz(wmetrics *m, int64_t now_mono_ms, char *body, size_t cap);
int wm_readyz(wmetrics *m, int64_t now_mono_ms, char *body, size_t cap);

/* Monotonic clock in ms (the one every *_mono_ms argument uses). */
int64_t wm_mono_ms(void);

#endif
