/* redis_out.h - the worker's Redis side: reply streams, cancellation,
 * discovery heartbeats (hiredis 0.14.1: RESP2 only, no TLS).
 *
 * Output. Every request streams into its own Redis stream (default key
 * "inferno:out:{request_id}") with entries of plain string fields (see
 * docs/redis.md for the field list):
 *   event=start  request_id worker attempt prompt_tokens
 *   event=token  seq text ids [logprobs]     (several tokens may coalesce)
 *   event=done   finish_reason usage timings [metadata]
 *   event=error  code message
 * The rds_emit_* calls never block on Redis: they copy the entry into a
 * bounded in-memory queue (INF_EFULL once max_pending_bytes would be
 * exceeded) and a background sender thread pipelines XADD key MAXLEN ~ N * ...
 * commands, reconnecting with exponential backoff (50 ms doubling to 2 s)
 * while Redis is away. Guarantees:
 *   - per stream, entries reach Redis in emit order; an accepted entry is
 *     removed from the queue only after Redis answered its XADD, so nothing
 *     accepted is lost while the process lives;
 *   - token entries of one stream coalesce: one entry carries the
 *     concatenated text and all ids of the tokens emitted within flush_ms
 *     (or until flush_tokens tokens); the open batch is always flushed
 *     before a done/error entry of that stream;
 *   - after the final entry (done/error) the stream gets EXPIRE expire_s;
 *   - rds_poll_acks hands back the ack_ctx of a final entry only after Redis
 *     confirmed it (the worker commits Kafka offsets after that).
 * At-least-once caveat: if a connection breaks after Redis wrote an entry but
 * before its reply arrived, the entry is sent again, so a token (or start)
 * entry can appear twice. Subscribers drop a token entry whose seq is below
 * the next expected seq. A final entry is never duplicated this way: before
 * resending a final entry whose first send was unconfirmed, the sender looks
 * at the stream's last entry and skips the XADD if it already is a final
 * entry. Subscribers should stop at the first done/error entry anyway.
 *
 * Reply-stream ownership. A stream belongs to the request its `start`
 * entries name (field request_id). Admission checks (rds_check_submit) refuse
 * a stream that holds a start entry of another request, an entry without an
 * `event` field (a stream the worker did not write), a key of another type,
 * or more than scan_max_entries entries; every such refusal is permanent for
 * that message. Reply keys outside out_prefix are refused by the caller
 * (rds_reply_key_allowed).
 *
 * Threads: every function may be called from any thread. rds_create starts
 * the sender thread, the checker thread (admission checks and asynchronous
 * heartbeats, so a slow or stopped Redis never blocks the caller) and (when
 * cancel_channel is set) the cancel subscriber thread; the blocking queries
 * (rds_final_state, rds_cancel_key_exists, rds_heartbeat, rds_unregister)
 * share a mutex-protected connection with the checker and block for at most
 * about 2 * connect_timeout_ms per command.
 */
#ifndef INF_REDIS_OUT_H
#define INF_REDIS_OUT_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define RDS_ID_MAX 128 /* request ids are 1..128 bytes */
#define RDS_REFUSAL_MAX 320 /* rds_stats_t.last_refusal */

typedef struct rds rds;
struct redisContext; /* hiredis */

typedef struct rds_config {
    const char *url;              /* redis://[user:pass@]host:port[/db]; default redis://127.0.0.1:6379 */
    const char *out_prefix;       /* "inferno:out:" */
    long stream_maxlen;           /* 10000: XADD MAXLEN ~ N; <= 0: no trimming */
    int expire_s;                 /* 3600: EXPIRE after the final entry; <= 0: none */
    int flush_ms;                 /* 20: token batch flushed at most this late */
    int flush_tokens;             /* 16: ... or once it holds this many tokens; 1 = no coalescing */
    size_t max_pending_bytes;     /* 64 MiB: queued entries above this -> INF_EFULL */
    int connect_timeout_ms;       /* 2000: connect and per-command timeout */
    const char *cancel_channel;   /* "inferno:cancel"; NULL or "": no subscriber thread */
    const char *cancel_key_prefix;/* "inferno:cancel:" */
    const char *workers_zset;     /* "inferno:workers" */
    const char *worker_key_prefix;/* "inferno:worker:" */
    /* additions */
    int open_expire_s;            /* 86400: EXPIRE set with the start entry so a stream
                                     orphaned by a crash without retry still goes away;
                                     the final entry's EXPIRE replaces it. <= 0: none */
    int free_flush_ms;            /* 2000: rds_free waits this long for pending entries */
    long scan_max_entries;        /* 20000: admission checks read at most this many entries
                                     of a stream; a longer one is refused (permanent) */
    void (*notify)(void *arg);    /* NULL, or called (checker thread) whenever a check result or
                                     heartbeat outcome is ready, so a waiting loop wakes up */
    void *notify_arg;
} rds_config;

/* Defaults listed above. */
rds_config rds_config_default(void);

/* Parsed Redis URL. */
typedef struct rds_url {
    char host[256];
    int port;          /* default 6379 */
    char user[128];    /* "" = no user (AUTH pass, or no AUTH) */
    char pass[256];    /* "" = no AUTH */
    int db;            /* default 0 */
} rds_url;

/* Parses redis://[[user]:pass@]host[:port][/db] (host may be [v6addr];
 * user/pass may be %XX-encoded). Rejects other schemes (rediss:// - hiredis
 * 0.14 has no TLS), empty hosts, ports outside 1..65535, non-numeric db,
 * query strings, and says which part is wrong in err. */
int rds_url_parse(const char *url, rds_url *out, inf_error *err);

/* Connects to u with timeout_ms for connect and for every command, then
 * sends AUTH [user] pass and SELECT db as needed. On success *out is a
 * blocking hiredis context owned by the caller (redisFree). Useful for
 * programs/tests that read streams (loadgen) with the same URL rules. */
int rds_connect(const rds_url *u, int timeout_ms, struct redisContext **out, inf_error *err);

/* Creates the client: validates cfg (URL included) and starts the threads.
 * Connecting is lazy and retried with backoff, so Redis being down at start
 * is not an error. *out is freed with rds_free. cfg strings are copied. */
int rds_create(rds **out, const rds_config *cfg, inf_error *err);

/* Stops the threads after trying (for at most free_flush_ms) to write what is
 * still queued, then frees everything. Unpolled ack_ctx pointers are simply
 * forgotten (they belong to the caller). NULL is a no-op. */
void rds_free(rds *r);

/* ---- output (non-blocking; INF_EFULL when over max_pending_bytes) ------- */

/* Queues event=start with request_id, worker, attempt, prompt_tokens.
 * A preceding open token batch of the same stream is flushed first. */
int rds_emit_start(rds *r, const char *stream_key, const char *request_id, const char *worker_id,
                   int attempt, int prompt_tokens, inf_error *err);

/* Adds tokens to the stream's open token batch: text (text_len bytes, any
 * bytes allowed) is appended, ids (n_ids >= 0) and logprobs (NULL or n_ids
 * floats) too. The resulting entry carries seq = the seq of the first emit
 * in the batch, text = concatenation, ids/logprobs space-separated. The
 * worker passes seq = 0-based index of the first completion token in ids. */
int rds_emit_token(rds *r, const char *stream_key, int seq, const char *text, size_t text_len,
                   const int32_t *ids, int n_ids, const float *logprobs, inf_error *err);

/* Queues event=done (flushing the open token batch first) followed by
 * EXPIRE. metadata_json (may be NULL) is stored verbatim in field metadata.
 * ack_ctx (if not NULL) is returned by rds_poll_acks once Redis confirmed. */
int rds_emit_done(rds *r, const char *stream_key, const char *finish_reason, int prompt_tokens,
                  int completion_tokens, int cached_tokens, double queue_ms, double ttft_ms,
                  double e2e_ms, const char *metadata_json, void *ack_ctx, inf_error *err);

/* Queues event=error with code and message (flushing the open token batch
 * first) followed by EXPIRE; ack_ctx as for rds_emit_done. */
int rds_emit_error(rds *r, const char *stream_key, const char *code, const char *message,
                   void *ack_ctx, inf_error *err);

/* Moves up to max ack_ctx pointers of confirmed final entries into ctxs (in
 * confirmation order) and returns how many. Also returns the ack of a final
 * entry that Redis rejected permanently (e.g. WRONGTYPE: the key is not a
 * stream), because retrying could never succeed; rds_stats counts those in
 * write_errors. */
int rds_poll_acks(rds *r, void **ctxs, int max);

/* Claims. A start entry with attempt 1 is written with the explicit entry
 * ID 0-1, which Redis accepts only on an empty or missing stream: the first
 * request to reach a stream owns it. When another writer got there first
 * (or the key is not a stream), that request's entries are dropped, never
 * written (no other entry of its stream is in flight
 * before Redis answered), and the ack_ctx of its final entry comes back here
 * instead of rds_poll_acks; rds_stats counts the dropped entries in
 * write_errors. Moves up to max such ack_ctx into ctxs; returns how many. */
int rds_poll_refused(rds *r, void **ctxs, int max);

/* Writes the stream key for request_id into out: reply_stream when non-NULL
 * and non-empty, else out_prefix + request_id. Returns the key length, or
 * INF_ERANGE if it does not fit in cap. */
int rds_stream_key(const rds *r, const char *request_id, const char *reply_stream, char *out,
                   size_t cap);

/* Blocks until every entry accepted so far (open token batches included)
 * has been confirmed or timeout_ms passed: 0 or INF_ETIMEOUT. */
int rds_flush(rds *r, int timeout_ms, inf_error *err);

/* 1 if key may be used as a reply stream: it starts with out_prefix and has
 * at least one byte after it. Any other key (another application's, the
 * worker's own heartbeat keys) is never written. */
int rds_reply_key_allowed(const rds *r, const char *key);

/* ---- admission checks (non-blocking; answered by the checker thread) --- */

typedef struct rds_check_result {
    void *ctx;          /* as passed to rds_check_submit */
    int status;         /* 0: checked (fields below valid);
                           INF_EIO: Redis unreachable or refusing for now - the check is
                           retried by itself (backoff 100 ms doubling to 5 s) and reported
                           again; message says why (e.g. NOPERM naming the command);
                           other negative: permanent for this message (INF_EEXIST: the
                           stream belongs to another request; INF_EFORMAT: wrong key
                           type, foreign entries, too long); message says which */
    int has_final;      /* the stream already holds a done/error entry */
    int last_attempt;   /* highest attempt among its start entries, 0 if none */
    int cancelled;      /* cancel_key_prefix + request_id exists (only when !has_final) */
    char message[INF_ERROR_MSG_MAX];
} rds_check_result;

/* Queues a check of stream_key for request_id (ownership as above, final
 * state, cancel key). Copies its arguments; the result comes back from
 * rds_poll_checks with ctx. Checks are answered in submit order while Redis
 * works; INF_ENOMEM or INF_EINVAL (empty key, bad id). */
int rds_check_submit(rds *r, const char *stream_key, const char *request_id, void *ctx, inf_error *err);

/* Moves up to max finished results into out (oldest first); returns how
 * many. A result with status INF_EIO is informational: its check stays
 * queued and will be reported again. */
int rds_poll_checks(rds *r, rds_check_result *out, int max);

/* ---- queries (blocking, own connection, bounded by timeouts) ----------- */

/* Reads the stream (at most scan_max_entries entries, else INF_EFORMAT):
 * *has_final = 1 if it holds an event=done or event=error entry,
 * *last_attempt = highest attempt among its start entries (0 if none). A
 * missing key gives 0/0; a key of another type is INF_EFORMAT. */
int rds_final_state(rds *r, const char *stream_key, int *has_final, int *last_attempt,
                    inf_error *err);

/* *exists = 1 if cancel_key_prefix + request_id exists. */
int rds_cancel_key_exists(rds *r, const char *request_id, int *exists, inf_error *err);

/* ---- cancellation pub/sub ---------------------------------------------- */

/* Copies up to max request ids published on cancel_channel since the last
 * poll (oldest first) into ids and returns how many. Messages that are not a
 * valid id (1..128 chars) are ignored; ids arriving while the subscriber is
 * reconnecting are missed, which is why producers also SET the cancel key. */
int rds_poll_cancels(rds *r, char (*ids)[RDS_ID_MAX + 1], int max);

/* ---- discovery -------------------------------------------------------- */

typedef struct rds_worker_info {
    const char *id, *host, *model, *backend, *device, *status, *version, *topics;
    int pid, max_num_seqs, running, waiting, kv_used, kv_total;
    double tokens_per_s;
    long long done, failed, started_at_ms;
    int chat_template;  /* added: the model carries tokenizer.chat_template (field chat_template true|false) */
} rds_worker_info;

/* HSET worker_key_prefix+id with every field of info plus last_seen (epoch
 * ms), EXPIRE ttl_s, ZADD workers_zset last_seen id, and ZREMRANGEBYSCORE of
 * members not seen for 3 * ttl_s. NULL strings are written as "". */
int rds_heartbeat(rds *r, const rds_worker_info *info, int ttl_s, inf_error *err);

/* Queues a heartbeat (as rds_heartbeat) for the checker thread; a newer one
 * replaces one not yet sent. Strings are copied (each cut at 255 bytes). */
void rds_heartbeat_post(rds *r, const rds_worker_info *info, int ttl_s);

/* 1 if a posted heartbeat finished since the last call: *ok says whether
 * it succeeded, msg (cap bytes) why not. 0 otherwise. */
int rds_heartbeat_poll(rds *r, int *ok, char *msg, size_t cap);

/* DEL worker_key_prefix+worker_id and ZREM workers_zset worker_id. From
 * then on rds_heartbeat_post is ignored (a posted heartbeat cannot land
 * after the DEL and bring the worker back to life). */
int rds_unregister(rds *r, const char *worker_id, inf_error *err);

/* ---- health ----------------------------------------------------------- */

/* 1 while the sender's connection is up (last command succeeded). */
int rds_connected(const rds *r);

typedef struct rds_stats_t {
    size_t pending_entries;     /* queued, not yet confirmed (open batches count as one each) */
    size_t pending_bytes;       /* bytes accounted against max_pending_bytes */
    long long entries_written;  /* XADDs confirmed */
    long long write_errors;     /* failed batches + entries rejected by Redis */
    long long reconnects;       /* successful connects after the first */
    long long cancels_received; /* valid ids received on cancel_channel */
    long long refusals;         /* commands Redis refused for want of a permission (NOPERM) or
                                   credentials (NOAUTH, WRONGPASS), on any of the client's
                                   connections: sender, checker/queries, cancel subscriber.
                                   Each is retried, but only an operator can fix it */
    char last_refusal[RDS_REFUSAL_MAX]; /* the latest of those, naming command, key or channel */
    double last_publish_ms;     /* latency of the last confirmed pipelined batch */
    int connected;              /* = rds_connected */
    char last_error[160];       /* last connection/write error, "" if none yet */
} rds_stats_t;

/* Snapshot of the counters. */
void rds_stats(rds *r, rds_stats_t *out);

#endif
