/* redis_out.c - reply streams: bounded queue, token coalescing, lifecycle
 * (the sender thread that writes them is in redis_send.c).
 *
 * Data flow: rds_emit_* (any thread, under r->mu) either append to a
 * stream's open token batch (rds_open) or seal it and append complete XADD
 * entries to one FIFO. Because every entry of a stream goes through the same
 * FIFO in emit order, per-stream order is the FIFO order. Only the sender
 * thread removes entries, and only from the head, after Redis replied.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "redis_internal.h"

#define ENTRY_OVERHEAD 96 /* per-entry bookkeeping charged to pending bytes */

/* ---- small helpers ------------------------------------------------------ */

static int buf_add(rds_buf *b, const void *p, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1) cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) return INF_ENOMEM;
        b->p = np;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = 0;
    return 0;
}

void rds__abs_deadline(struct timespec *ts, double ms_from_now) {
    clock_gettime(CLOCK_REALTIME, ts);
    if (ms_from_now < 0) ms_from_now = 0;
    long long ns = ts->tv_nsec + (long long)(ms_from_now * 1e6);
    ts->tv_sec += ns / 1000000000LL;
    ts->tv_nsec = ns % 1000000000LL;
}

static unsigned hash_key(const char *s) {
    unsigned h = 2166136261u;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
    return h % RDS_BUCKETS;
}

void rds__set_last_error(rds *r, const char *msg) {
    pthread_mutex_lock(&r->mu);
    snprintf(r->last_error, sizeof r->last_error, "%s", msg);
    pthread_mutex_unlock(&r->mu);
}

int rds__is_refusal(const char *msg) {
    return msg && (strstr(msg, "NOPERM") || strstr(msg, "NOAUTH") || strstr(msg, "WRONGPASS"));
}

void rds__note_refusal(rds *r, const char *msg) {
    if (!rds__is_refusal(msg)) return;
    pthread_mutex_lock(&r->mu);
    r->refusals++;
    snprintf(r->last_refusal, sizeof r->last_refusal, "%s", msg);
    pthread_mutex_unlock(&r->mu);
}

void rds__format_reply_error(char *out, size_t cap, const char *cmd, const char *key, const char *redis_msg) {
    const char *k = key ? key : "";
    /* NOPERM names the command or says "one of the keys/channels": the
     * operator needs to know which user setting to change. */
    if (redis_msg && strncmp(redis_msg, "NOPERM", 6) == 0)
        snprintf(out, cap, "redis %s%s%.120s: the Redis user lacks a permission: %s", cmd, *k ? " " : "", k, redis_msg);
    else
        snprintf(out, cap, "redis %s%s%.120s: %s", cmd, *k ? " " : "", k, redis_msg ? redis_msg : "");
}

/* ---- entries ------------------------------------------------------------ */

/* Builds an XADD entry: XADD key [MAXLEN ~ N] * f1 v1 ... from (field,
 * value, value_len) triples. value_len (size_t)-1 means strlen. */
typedef struct field {
    const char *name;
    const char *val;
    size_t len;
} field;

static rds_entry *entry_new(const rds *r, const char *key, const char *id, const field *f, int nf) {
    char maxlen[24];
    snprintf(maxlen, sizeof maxlen, "%ld", r->cfg.stream_maxlen);
    int trim = r->cfg.stream_maxlen > 0;
    int argc = 2 + (trim ? 3 : 0) + 1 + 2 * nf;
    const char *tmpv[2 + 3 + 1 + 2 * 16];
    size_t tmpl[2 + 3 + 1 + 2 * 16];
    if (nf > 16) return NULL;
    int a = 0;
    tmpv[a] = "XADD"; tmpl[a++] = 4;
    tmpv[a] = key; tmpl[a++] = strlen(key);
    if (trim) {
        tmpv[a] = "MAXLEN"; tmpl[a++] = 6;
        tmpv[a] = "~"; tmpl[a++] = 1;
        tmpv[a] = maxlen; tmpl[a++] = strlen(maxlen);
    }
    tmpv[a] = id; tmpl[a++] = strlen(id);
    for (int i = 0; i < nf; i++) {
        tmpv[a] = f[i].name; tmpl[a++] = strlen(f[i].name);
        tmpv[a] = f[i].val; tmpl[a++] = f[i].len == (size_t)-1 ? strlen(f[i].val) : f[i].len;
    }
    size_t total = 0;
    for (int i = 0; i < argc; i++) total += tmpl[i] + 1;
    rds_entry *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    e->argv = malloc(sizeof *e->argv * (size_t)argc);
    e->argvlen = malloc(sizeof *e->argvlen * (size_t)argc);
    e->buf = malloc(total);
    if (!e->argv || !e->argvlen || !e->buf) {
        free(e->argv);
        free(e->argvlen);
        free(e->buf);
        free(e);
        return NULL;
    }
    size_t off = 0;
    for (int i = 0; i < argc; i++) {
        memcpy(e->buf + off, tmpv[i], tmpl[i]);
        e->buf[off + tmpl[i]] = 0;
        e->argv[i] = e->buf + off;
        e->argvlen[i] = tmpl[i];
        off += tmpl[i] + 1;
    }
    e->argc = argc;
    e->bytes = total + ENTRY_OVERHEAD + (size_t)argc * (sizeof(char *) + sizeof(size_t));
    return e;
}

void rds__entry_free(rds_entry *e) {
    if (!e) return;
    free(e->argv);
    free(e->argvlen);
    free(e->buf);
    free(e);
}

static void enqueue(rds *r, rds_entry *e) {
    if (r->tail) r->tail->next = e;
    else r->head = e;
    r->tail = e;
    r->n_entries++;
    r->pending_bytes += e->bytes;
}

/* ---- open token batches -------------------------------------------------- */

static rds_open *open_find(rds *r, const char *key) {
    for (rds_open *o = r->buckets[hash_key(key)]; o; o = o->hnext)
        if (strcmp(o->key, key) == 0) return o;
    return NULL;
}

static void open_unlink(rds *r, rds_open *o) {
    rds_open **pp = &r->buckets[hash_key(o->key)];
    while (*pp != o) pp = &(*pp)->hnext;
    *pp = o->hnext;
    if (o->prev) o->prev->next = o->next;
    else r->open_head = o->next;
    if (o->next) o->next->prev = o->prev;
    else r->open_tail = o->prev;
    r->n_open--;
    r->pending_bytes -= o->bytes;
}

static void open_free(rds_open *o) {
    free(o->key);
    free(o->text.p);
    free(o->ids.p);
    free(o->logprobs.p);
    free(o);
}

/* Turns the open batch into a queued entry. On allocation failure the batch
 * stays open (retried at the next seal) and INF_ENOMEM is returned. */
static int open_seal(rds *r, rds_open *o) {
    char seq[16];
    snprintf(seq, sizeof seq, "%d", o->seq);
    field f[5] = {{"event", "token", (size_t)-1},
                  {"seq", seq, (size_t)-1},
                  {"text", o->text.p ? o->text.p : "", o->text.len},
                  {"ids", o->ids.p ? o->ids.p : "", o->ids.len},
                  {"logprobs", o->logprobs.p ? o->logprobs.p : "", o->logprobs.len}};
    rds_entry *e = entry_new(r, o->key, "*", f, o->has_logprobs ? 5 : 4);
    if (!e) return INF_ENOMEM;
    /* Keep the accounting of the open batch, which reserved room for the
     * entry's fixed part up front, so sealing never exceeds the limit. */
    if (e->bytes < o->bytes) e->bytes = o->bytes;
    open_unlink(r, o);
    enqueue(r, e);
    open_free(o);
    return 0;
}

static int seal_key(rds *r, const char *key) {
    rds_open *o = open_find(r, key);
    return o ? open_seal(r, o) : 0;
}

/* Seals batches opened at least flush_ms ago (all of them when `all`). */
void rds__seal_expired(rds *r, double now, int all) {
    while (r->open_head && (all || now - r->open_head->opened_ms >= r->cfg.flush_ms))
        if (open_seal(r, r->open_head) != 0) break;
}

/* ---- emit ---------------------------------------------------------------- */

static int check_key(const char *key, inf_error *err) {
    if (!key || !*key) return inf_error_set(err, INF_EINVAL, "redis: empty stream key");
    if (strlen(key) > 1024) return inf_error_set(err, INF_EINVAL, "redis: stream key too long");
    return 0;
}

/* Seals the stream's open batch, then queues the entry built from f (with
 * EXPIRE and ack as given). Caller holds no lock. */
static int emit_entry(rds *r, const char *key, int claim, const field *f, int nf, int is_final,
                      int expire_s, void *ack_ctx, inf_error *err) {
    int rc = check_key(key, err);
    if (rc) return rc;
    pthread_mutex_lock(&r->mu);
    if (r->stopping) {
        pthread_mutex_unlock(&r->mu);
        return inf_error_set(err, INF_ESTATE, "redis: client is shutting down");
    }
    rds_entry *e = entry_new(r, key, claim ? "0-1" : "*", f, nf);
    if (!e) {
        pthread_mutex_unlock(&r->mu);
        return inf_error_set(err, INF_ENOMEM, "redis: out of memory queueing an entry");
    }
    if (claim) e->claim_id = e->argv[e->argc - 2 * nf + 3]; /* f[1] is request_id */
    if (r->pending_bytes + e->bytes > r->cfg.max_pending_bytes) {
        size_t pb = r->pending_bytes;
        pthread_mutex_unlock(&r->mu);
        rds__entry_free(e);
        return inf_error_set(err, INF_EFULL,
                             "redis: %zu bytes of entries pending (limit %zu): Redis is slow or down",
                             pb, r->cfg.max_pending_bytes);
    }
    if (seal_key(r, key) != 0) {
        pthread_mutex_unlock(&r->mu);
        rds__entry_free(e);
        return inf_error_set(err, INF_ENOMEM, "redis: out of memory flushing tokens");
    }
    e->is_final = is_final;
    e->expire_s = expire_s > 0 ? expire_s : 0;
    e->ack_ctx = ack_ctx;
    enqueue(r, e);
    pthread_cond_signal(&r->wake);
    pthread_mutex_unlock(&r->mu);
    return 0;
}

int rds_emit_start(rds *r, const char *stream_key, const char *request_id, const char *worker_id,
                   int attempt, int prompt_tokens, inf_error *err) {
    char att[16], pt[16];
    snprintf(att, sizeof att, "%d", attempt);
    snprintf(pt, sizeof pt, "%d", prompt_tokens);
    field f[5] = {{"event", "start", (size_t)-1},
                  {"request_id", request_id ? request_id : "", (size_t)-1},
                  {"worker", worker_id ? worker_id : "", (size_t)-1},
                  {"attempt", att, (size_t)-1},
                  {"prompt_tokens", pt, (size_t)-1}};
    /* The first attempt claims the stream: XADD with ID 0-1 succeeds only on
     * an empty (or missing) stream, so of two requests naming one stream
     * only the first writes; the other's entries are dropped (rds_poll_refused). */
    return emit_entry(r, stream_key, attempt == 1, f, 5, 0, r->cfg.open_expire_s, NULL, err);
}

int rds_emit_done(rds *r, const char *stream_key, const char *finish_reason, int prompt_tokens,
                  int completion_tokens, int cached_tokens, double queue_ms, double ttft_ms,
                  double e2e_ms, const char *metadata_json, void *ack_ctx, inf_error *err) {
    char pt[16], ct[16], kt[16], q[32], t[32], e2e[32];
    snprintf(pt, sizeof pt, "%d", prompt_tokens);
    snprintf(ct, sizeof ct, "%d", completion_tokens);
    snprintf(kt, sizeof kt, "%d", cached_tokens);
    snprintf(q, sizeof q, "%.3f", isfinite(queue_ms) ? queue_ms : -1.0);
    snprintf(t, sizeof t, "%.3f", isfinite(ttft_ms) ? ttft_ms : -1.0);
    snprintf(e2e, sizeof e2e, "%.3f", isfinite(e2e_ms) ? e2e_ms : -1.0);
    field f[9] = {{"event", "done", (size_t)-1},
                  {"finish_reason", finish_reason ? finish_reason : "stop", (size_t)-1},
                  {"prompt_tokens", pt, (size_t)-1},
                  {"completion_tokens", ct, (size_t)-1},
                  {"cached_tokens", kt, (size_t)-1},
                  {"queue_ms", q, (size_t)-1},
                  {"ttft_ms", t, (size_t)-1},
                  {"e2e_ms", e2e, (size_t)-1},
                  {"metadata", metadata_json ? metadata_json : "", (size_t)-1}};
    return emit_entry(r, stream_key, 0, f, metadata_json ? 9 : 8, 1, r->cfg.expire_s, ack_ctx, err);
}

int rds_emit_error(rds *r, const char *stream_key, const char *code, const char *message,
                   void *ack_ctx, inf_error *err) {
    field f[3] = {{"event", "error", (size_t)-1},
                  {"code", code ? code : "internal", (size_t)-1},
                  {"message", message ? message : "", (size_t)-1}};
    return emit_entry(r, stream_key, 0, f, 3, 1, r->cfg.expire_s, ack_ctx, err);
}

int rds_emit_token(rds *r, const char *stream_key, int seq, const char *text, size_t text_len,
                   const int32_t *ids, int n_ids, const float *logprobs, inf_error *err) {
    int rc = check_key(stream_key, err);
    if (rc) return rc;
    if (n_ids < 0 || (n_ids > 0 && !ids) || (text_len > 0 && !text))
        return inf_error_set(err, INF_EINVAL, "redis: bad token arguments");
    /* Format the additions first (outside the lock). */
    rds_buf idb = {0}, lpb = {0};
    char num[40];
    for (int i = 0; i < n_ids; i++) {
        int n = snprintf(num, sizeof num, "%s%d", i ? " " : "", (int)ids[i]);
        if (buf_add(&idb, num, (size_t)n)) goto oom;
        if (logprobs) {
            n = snprintf(num, sizeof num, "%s%.6g", i ? " " : "", (double)logprobs[i]);
            if (buf_add(&lpb, num, (size_t)n)) goto oom;
        }
    }
    int has_lp = logprobs != NULL && n_ids > 0;
    size_t add = text_len + idb.len + lpb.len + 2;

    pthread_mutex_lock(&r->mu);
    if (r->stopping) {
        pthread_mutex_unlock(&r->mu);
        free(idb.p);
        free(lpb.p);
        return inf_error_set(err, INF_ESTATE, "redis: client is shutting down");
    }
    rds_open *o = open_find(r, stream_key);
    /* A batch holds tokens all with or all without logprobs. */
    if (o && o->n_tokens > 0 && o->has_logprobs != has_lp) {
        if (open_seal(r, o) != 0) goto oom_locked;
        o = NULL;
    }
    /* A new batch reserves what its sealed entry adds beyond the token
     * bytes: key, argv arrays, fixed arguments and field names. */
    size_t fresh = o ? 0 : strlen(stream_key) + ENTRY_OVERHEAD + sizeof *o + 256;
    if (r->pending_bytes + add + fresh > r->cfg.max_pending_bytes) {
        size_t pb = r->pending_bytes;
        pthread_mutex_unlock(&r->mu);
        free(idb.p);
        free(lpb.p);
        return inf_error_set(err, INF_EFULL,
                             "redis: %zu bytes of entries pending (limit %zu): Redis is slow or down",
                             pb, r->cfg.max_pending_bytes);
    }
    if (!o) {
        o = calloc(1, sizeof *o);
        if (!o || !(o->key = strdup(stream_key))) {
            free(o);
            goto oom_locked;
        }
        o->seq = seq;
        o->has_logprobs = has_lp;
        o->opened_ms = rds__now_ms();
        o->bytes = fresh;
        unsigned h = hash_key(stream_key);
        o->hnext = r->buckets[h];
        r->buckets[h] = o;
        o->prev = r->open_tail;
        if (r->open_tail) r->open_tail->next = o;
        else r->open_head = o;
        r->open_tail = o;
        r->n_open++;
        r->pending_bytes += fresh;
    }
    if (buf_add(&o->text, text, text_len)) goto oom_locked;
    if (idb.len && o->ids.len && buf_add(&o->ids, " ", 1)) goto oom_locked;
    if (buf_add(&o->ids, idb.p, idb.len)) goto oom_locked;
    if (has_lp) {
        if (lpb.len && o->logprobs.len && buf_add(&o->logprobs, " ", 1)) goto oom_locked;
        if (buf_add(&o->logprobs, lpb.p, lpb.len)) goto oom_locked;
    }
    o->bytes += add;
    r->pending_bytes += add;
    o->n_tokens += n_ids > 0 ? n_ids : 1;
    int wake = o->n_tokens >= r->cfg.flush_tokens;
    if (wake) open_seal(r, o); /* on failure the sender seals it later */
    /* The sender must learn about a new batch's deadline, too. */
    if (wake || r->n_open == 1) pthread_cond_signal(&r->wake);
    pthread_mutex_unlock(&r->mu);
    free(idb.p);
    free(lpb.p);
    return 0;
oom_locked:
    pthread_mutex_unlock(&r->mu);
oom:
    free(idb.p);
    free(lpb.p);
    return inf_error_set(err, INF_ENOMEM, "redis: out of memory queueing tokens");
}

int rds_poll_acks(rds *r, void **ctxs, int max) {
    pthread_mutex_lock(&r->mu);
    int n = 0;
    while (n < max && (size_t)n < r->acks_len) {
        ctxs[n] = r->acks[n];
        n++;
    }
    memmove(r->acks, r->acks + n, (r->acks_len - (size_t)n) * sizeof *r->acks);
    r->acks_len -= (size_t)n;
    pthread_mutex_unlock(&r->mu);
    return n;
}

int rds_poll_refused(rds *r, void **ctxs, int max) {
    pthread_mutex_lock(&r->mu);
    int n = (int)(r->refused_len < (size_t)max ? r->refused_len : (size_t)max);
    if (n > 0) {
        memcpy(ctxs, r->refused, (size_t)n * sizeof *ctxs);
        memmove(r->refused, r->refused + n, (r->refused_len - (size_t)n) * sizeof *r->refused);
        r->refused_len -= (size_t)n;
    }
    pthread_mutex_unlock(&r->mu);
    return n;
}

int rds__ptrs_push(void ***v, size_t *len, size_t *cap, void *ctx) {
    if (*len == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        void **nv = realloc(*v, nc * sizeof *nv);
        if (!nv) return INF_ENOMEM;
        *v = nv;
        *cap = nc;
    }
    (*v)[(*len)++] = ctx;
    return 0;
}

int rds_stream_key(const rds *r, const char *request_id, const char *reply_stream, char *out,
                   size_t cap) {
    int n;
    if (reply_stream && *reply_stream) n = snprintf(out, cap, "%s", reply_stream);
    else n = snprintf(out, cap, "%s%s", r->cfg.out_prefix, request_id ? request_id : "");
    if (n < 0 || (size_t)n >= cap) return INF_ERANGE;
    return n;
}

int rds_flush(rds *r, int timeout_ms, inf_error *err) {
    struct timespec ts;
    rds__abs_deadline(&ts, timeout_ms);
    pthread_mutex_lock(&r->mu);
    rds__seal_expired(r, 0, 1);
    pthread_cond_signal(&r->wake);
    int rc = 0;
    while (r->head || r->open_head) {
        if (pthread_cond_timedwait(&r->idle, &r->mu, &ts) == ETIMEDOUT) {
            if (r->head || r->open_head)
                rc = inf_error_set(err, INF_ETIMEOUT, "redis: %zu entries still pending after %d ms",
                                   r->n_entries + r->n_open, timeout_ms);
            break;
        }
        rds__seal_expired(r, 0, 1);
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

int rds_connected(const rds *r) { return atomic_load(&((rds *)r)->connected); }

void rds_stats(rds *r, rds_stats_t *out) {
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&r->mu);
    out->pending_entries = r->n_entries + r->n_open;
    out->pending_bytes = r->pending_bytes;
    out->entries_written = r->written;
    out->write_errors = r->write_errors;
    out->reconnects = r->reconnects;
    out->last_publish_ms = r->last_publish_ms;
    snprintf(out->last_error, sizeof out->last_error, "%s", r->last_error);
    out->refusals = r->refusals;
    snprintf(out->last_refusal, sizeof out->last_refusal, "%s", r->last_refusal);
    pthread_mutex_unlock(&r->mu);
    pthread_mutex_lock(&r->cmu);
    out->cancels_received = r->cancels_received;
    pthread_mutex_unlock(&r->cmu);
    out->connected = rds_connected(r);
}

/* ---- lifecycle ----------------------------------------------------------- */

rds_config rds_config_default(void) {
    rds_config c;
    memset(&c, 0, sizeof c);
    c.url = "redis://127.0.0.1:6379";
    c.out_prefix = "inferno:out:";
    c.stream_maxlen = 10000;
    c.expire_s = 3600;
    c.flush_ms = 20;
    c.flush_tokens = 16;
    c.max_pending_bytes = (size_t)64 << 20;
    c.connect_timeout_ms = 2000;
    c.cancel_channel = "inferno:cancel";
    c.cancel_key_prefix = "inferno:cancel:";
    c.workers_zset = "inferno:workers";
    c.worker_key_prefix = "inferno:worker:";
    c.open_expire_s = 86400;
    c.free_flush_ms = 2000;
    c.scan_max_entries = 20000;
    return c;
}

static char *dup_or(const char *s, const char *dflt) { return strdup(s ? s : dflt); }

int rds_create(rds **out, const rds_config *cfg_in, inf_error *err) {
    *out = NULL;
    rds_config cfg = cfg_in ? *cfg_in : rds_config_default();
    rds_url url;
    int rc = rds_url_parse(cfg.url ? cfg.url : "redis://127.0.0.1:6379", &url, err);
    if (rc) return rc;
    if (cfg.flush_ms < 0 || cfg.flush_ms > 60000)
        return inf_error_set(err, INF_EINVAL, "redis: flush_ms must be in 0..60000 (got %d)", cfg.flush_ms);
    if (cfg.flush_tokens < 1)
        return inf_error_set(err, INF_EINVAL, "redis: flush_tokens must be >= 1 (got %d)", cfg.flush_tokens);
    if (cfg.max_pending_bytes < 4096)
        return inf_error_set(err, INF_EINVAL, "redis: max_pending_bytes must be >= 4096");
    if (cfg.connect_timeout_ms <= 0) cfg.connect_timeout_ms = 2000;
    if (cfg.free_flush_ms < 0) cfg.free_flush_ms = 0;
    if (cfg.scan_max_entries <= 0) cfg.scan_max_entries = 20000;
    /* Requests may name any reply stream under out_prefix, so the worker's
     * own keys must not lie under it. */
    const char *op = cfg.out_prefix ? cfg.out_prefix : "inferno:out:";
    const char *own[3] = {cfg.cancel_key_prefix ? cfg.cancel_key_prefix : "inferno:cancel:",
                          cfg.workers_zset ? cfg.workers_zset : "inferno:workers",
                          cfg.worker_key_prefix ? cfg.worker_key_prefix : "inferno:worker:"};
    if (!*op) return inf_error_set(err, INF_EINVAL, "redis: out_prefix must not be empty");
    for (int i = 0; i < 3; i++)
        if (strncmp(own[i], op, strlen(op)) == 0)
            return inf_error_set(err, INF_EINVAL,
                                 "redis: out_prefix \"%s\" would let requests name the worker's own key \"%s\"", op,
                                 own[i]);
    rds *r = calloc(1, sizeof *r);
    if (!r) return inf_error_set(err, INF_ENOMEM, "redis: out of memory");
    r->url = url;
    r->s_url = dup_or(cfg.url, "redis://127.0.0.1:6379");
    r->s_out_prefix = dup_or(cfg.out_prefix, "inferno:out:");
    r->s_cancel_channel = dup_or(cfg.cancel_channel, "");
    r->s_cancel_key_prefix = dup_or(cfg.cancel_key_prefix, "inferno:cancel:");
    r->s_workers_zset = dup_or(cfg.workers_zset, "inferno:workers");
    r->s_worker_key_prefix = dup_or(cfg.worker_key_prefix, "inferno:worker:");
    r->acks = malloc(64 * sizeof *r->acks);
    r->acks_cap = 64;
    r->cancel_pipe[0] = r->cancel_pipe[1] = -1;
    cfg.url = r->s_url;
    cfg.out_prefix = r->s_out_prefix;
    cfg.cancel_channel = r->s_cancel_channel;
    cfg.cancel_key_prefix = r->s_cancel_key_prefix;
    cfg.workers_zset = r->s_workers_zset;
    cfg.worker_key_prefix = r->s_worker_key_prefix;
    r->cfg = cfg;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->wake, NULL);
    pthread_cond_init(&r->idle, NULL);
    pthread_mutex_init(&r->cmu, NULL);
    pthread_mutex_init(&r->qmu, NULL);
    pthread_mutex_init(&r->kmu, NULL);
    pthread_cond_init(&r->kwake, NULL);
    if (!r->s_url || !r->s_out_prefix || !r->s_cancel_channel || !r->s_cancel_key_prefix ||
        !r->s_workers_zset || !r->s_worker_key_prefix || !r->acks) {
        rds_free(r);
        return inf_error_set(err, INF_ENOMEM, "redis: out of memory");
    }
    if (pthread_create(&r->sender, NULL, rds__sender_main, r) != 0) {
        rds_free(r);
        return inf_error_set(err, INF_EIO, "redis: cannot start the sender thread");
    }
    r->sender_started = 1;
    if ((rc = rds__checker_start(r, err)) != 0) {
        rds_free(r);
        return rc;
    }
    if (r->cfg.cancel_channel[0] && (rc = rds__cancel_start(r, err)) != 0) {
        rds_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

void rds_free(rds *r) {
    if (!r) return;
    rds__cancel_stop(r);
    rds__checker_stop(r);
    if (r->sender_started) {
        pthread_mutex_lock(&r->mu);
        r->stopping = 1;
        pthread_cond_signal(&r->wake);
        pthread_mutex_unlock(&r->mu);
        pthread_join(r->sender, NULL);
    }
    rds__query_close(r);
    while (r->head) {
        rds_entry *e = r->head;
        r->head = e->next;
        rds__entry_free(e);
    }
    while (r->open_head) {
        rds_open *o = r->open_head;
        r->open_head = o->next;
        open_free(o);
    }
    free(r->acks);
    free(r->refused);
    while (r->claimed) {
        rds_claimed *c = r->claimed;
        r->claimed = c->next;
        free(c->key);
        free(c);
    }
    free(r->cancel_ids);
    free(r->s_url);
    free(r->s_out_prefix);
    free(r->s_cancel_channel);
    free(r->s_cancel_key_prefix);
    free(r->s_workers_zset);
    free(r->s_worker_key_prefix);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->wake);
    pthread_cond_destroy(&r->idle);
    pthread_mutex_destroy(&r->cmu);
    pthread_mutex_destroy(&r->qmu);
    pthread_mutex_destroy(&r->kmu);
    pthread_cond_destroy(&r->kwake);
    free(r);
}
