/* gw_redis.h - the gateway's reply-stream readers and its cancel/wake
 * control connection (hiredis, RESP2; own connections, never the worker's).
 *
 * A subscription (gw_sub) follows the reply streams of one HTTP request (n
 * legs for an n > 1 fan-out). Each subscription belongs to one of
 * n_readers reader threads; a reader runs
 *     XREAD COUNT 64 BLOCK 250 STREAMS <its streams...> <wake key> <ids...>
 * in a loop on its own connection and applies the reader rules of
 * docs/redis.md to every entry: a token entry whose seq is below the next
 * expected one is dropped, a start entry with a higher attempt resets the
 * leg (on_reset), and the first done/error entry ends the leg (nothing after
 * it is read). A new subscription joins a reader that is blocked in XREAD by
 * an XADD to that reader's wake key (WAKE_PREFIX + gateway id + ":wake:" + N,
 * one entry, trimmed), which makes the XREAD return at once; so joining costs
 * no polling delay.
 *
 * Threads and locks: every gw_sub_ops callback runs on the subscription's
 * reader thread with the reader's lock held (gw_sub_lock takes the same
 * lock), so callbacks and code between gw_sub_lock/unlock never run at the
 * same time for one subscription. Callbacks must not block or call
 * gw_sub_release. on_tick is called about every 250 ms for every live
 * subscription (timeouts, client checks). gw_rd_cancel and the wake-ups are
 * queued to the control thread and never block the caller on Redis.
 *
 * Redis commands used: XREAD, XADD/EXPIRE (wake keys), SET (cancel keys),
 * PUBLISH (cancel channel), plus AUTH/SELECT from the URL.
 */
#ifndef INF_GW_REDIS_H
#define INF_GW_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

typedef struct gw_rd gw_rd;
typedef struct gw_sub gw_sub;

typedef struct gw_rd_config {
    const char *url;               /* redis://... (required) */
    int n_readers;                 /* reader threads/connections, >= 1 */
    const char *wake_prefix;       /* "inferno:gw:" */
    const char *gateway_id;        /* part of the wake keys */
    const char *cancel_channel;    /* "inferno:cancel" */
    const char *cancel_key_prefix; /* "inferno:cancel:" */
} gw_rd_config;

/* One reply entry, parsed; strings point into the reply (valid during the
 * callback only). */
typedef struct gw_rd_entry {
    const char *event;                     /* start | token | done | error */
    int attempt, prompt_tokens;            /* start (prompt_tokens also in done) */
    int seq;                               /* token */
    const char *text;
    size_t text_len;
    const int32_t *ids;
    int n_ids;
    const float *logprobs;                 /* NULL unless the entry has them */
    const char *finish_reason;             /* done */
    int completion_tokens, cached_tokens;  /* done */
    const char *code, *message;            /* error */
} gw_rd_entry;

typedef struct gw_sub_ops {
    void (*on_start)(void *ctx, int leg, const gw_rd_entry *e);
    void (*on_reset)(void *ctx, int leg, const gw_rd_entry *e);  /* higher attempt: runs again from seq 0 */
    void (*on_tokens)(void *ctx, int leg, const gw_rd_entry *e); /* new tokens only (dedupe done) */
    void (*on_final)(void *ctx, int leg, const gw_rd_entry *e);  /* done or error; the leg is no longer read */
    void (*on_tick)(void *ctx, int64_t now_ms);                  /* monotonic ms */
} gw_sub_ops;

/* Connects lazily (retried with backoff) and starts the readers and the
 * control thread. *out freed with gw_rd_free. INF_EINVAL for a bad URL. */
int gw_rd_create(gw_rd **out, const gw_rd_config *cfg, inf_error *err);

/* Stops the threads and frees everything, subscriptions included (their
 * callbacks are not called again). NULL is fine. */
void gw_rd_free(gw_rd *rd);

/* Follows keys[0..n_keys) (copied) from their first entry, calling ops
 * with ctx. *out is set before the first callback can run (callbacks may
 * use it). 0, or INF_ENOMEM. */
int gw_sub_create(gw_rd *rd, const char *const *keys, int n_keys, const gw_sub_ops *ops, void *ctx, gw_sub **out);

void gw_sub_lock(gw_sub *s);
void gw_sub_unlock(gw_sub *s);

/* Under gw_sub_lock: 1 stops reading s (a slow client's buffer is full),
 * 0 reads on (the reader is woken). */
void gw_sub_set_paused(gw_sub *s, int paused);

/* Not under the lock: no callback runs for s after this returns; s itself
 * is freed later by its reader. */
void gw_sub_release(gw_sub *s);

/* Queues SET cancel_key_prefix+id 1 EX 3600 and PUBLISH cancel_channel id. */
void gw_rd_cancel(gw_rd *rd, const char *request_id);

typedef struct gw_rd_stats {
    int connected;          /* readers with a live connection */
    int subs;               /* live subscriptions */
    long long entries, wakes, cancels, errors;
} gw_rd_stats;

void gw_rd_get_stats(gw_rd *rd, gw_rd_stats *st);

#endif
