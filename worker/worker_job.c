/* worker_job.c - one request's way through the worker: decode, checks
 * against Redis (already answered? cancelled?), engine admission, engine
 * events -> stream entries, and the acknowledgements that let Kafka commit.
 * See worker.h for the overall design. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tools/json.h"
#include "tokenizer.h"
#include "worker_internal.h"

/* ---- emission backlog --------------------------------------------------- */

enum { EM_START, EM_TOKEN, EM_DONE, EM_ERROR };

struct wemit {
    int type;
    char *stream;
    /* start */
    char *request_id;
    int attempt, prompt_tokens;
    /* token */
    int seq;
    char *text;
    size_t text_len;
    int32_t *ids;
    int n_ids;
    float *logprobs;
    /* done */
    const char *reason; /* static (engine_finish_name) */
    int pt, ct, cached;
    double q_ms, ttft_ms, e2e_ms;
    char *meta;
    /* error */
    char *code, *message;
    void *ack;
    struct wemit *next;
};

static int send_one(struct worker *w, const wemit *e, inf_error *err) {
    switch (e->type) {
    case EM_START:
        return rds_emit_start(w->rds, e->stream, e->request_id, w->cfg->worker_id, e->attempt, e->prompt_tokens,
                              err);
    case EM_TOKEN:
        return rds_emit_token(w->rds, e->stream, e->seq, e->text, e->text_len, e->ids, e->n_ids, e->logprobs, err);
    case EM_DONE:
        return rds_emit_done(w->rds, e->stream, e->reason, e->pt, e->ct, e->cached, e->q_ms, e->ttft_ms, e->e2e_ms,
                             e->meta, e->ack, err);
    default:
        return rds_emit_error(w->rds, e->stream, e->code, e->message, e->ack, err);
    }
}

static char *dupn(const void *p, size_t n) {
    char *d = malloc(n + 1);
    if (!d) return NULL;
    if (n) memcpy(d, p, n);
    d[n] = '\0';
    return d;
}

static void wemit_free(wemit *e) {
    if (!e) return;
    free(e->stream);
    free(e->request_id);
    free(e->text);
    free(e->ids);
    free(e->logprobs);
    free(e->meta);
    free(e->code);
    free(e->message);
    free(e);
}

/* Deep copy of an entry built on the stack with borrowed pointers. */
static wemit *wemit_copy(const wemit *s) {
    wemit *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    *e = *s;
    e->stream = e->request_id = e->text = e->meta = e->code = e->message = NULL;
    e->ids = NULL;
    e->logprobs = NULL;
    e->next = NULL;
    int bad = !(e->stream = dupn(s->stream, strlen(s->stream)));
    if (s->request_id) bad |= !(e->request_id = dupn(s->request_id, strlen(s->request_id)));
    if (s->type == EM_TOKEN) bad |= !(e->text = dupn(s->text ? s->text : "", s->text_len));
    if (s->n_ids > 0) {
        bad |= !(e->ids = malloc((size_t)s->n_ids * sizeof *e->ids));
        if (e->ids) memcpy(e->ids, s->ids, (size_t)s->n_ids * sizeof *e->ids);
        if (s->logprobs) {
            bad |= !(e->logprobs = malloc((size_t)s->n_ids * sizeof *e->logprobs));
            if (e->logprobs) memcpy(e->logprobs, s->logprobs, (size_t)s->n_ids * sizeof *e->logprobs);
        }
    }
    if (s->meta) bad |= !(e->meta = dupn(s->meta, strlen(s->meta)));
    if (s->code) bad |= !(e->code = dupn(s->code, strlen(s->code)));
    if (s->message) bad |= !(e->message = dupn(s->message, strlen(s->message)));
    if (bad) {
        wemit_free(e);
        return NULL;
    }
    return e;
}

/* Acknowledgements (Redis final entries, DLQ copies) name their job by its
 * serial, never by its address: a job freed meanwhile could have its address
 * reused by a new job, which an address scan would then credit. */
static void *ack_ctx(const wjob *j) { return (void *)(uintptr_t)j->serial; }

/* A send failed for good (not INF_EFULL): the entry cannot be written, so a
 * final entry's acknowledgement is given now - otherwise its Kafka offset
 * would never commit and the message would block its partition forever. */
static void send_failed(struct worker *w, const wemit *e, const inf_error *err) {
    WLOG_E(&w->log, e->request_id, "cannot queue a Redis entry for %s: %s", e->stream, err->msg);
    if ((e->type == EM_DONE || e->type == EM_ERROR) && e->ack) wk_on_redis_ack(w, e->ack);
}

/* Sends e now, or queues a copy behind the backlog (keeps per-stream order). */
static void emit(struct worker *w, const wemit *e) {
    inf_error err = {0};
    if (!w->backlog_head) {
        int rc = send_one(w, e, &err);
        if (rc == 0) return;
        if (rc != INF_EFULL) {
            send_failed(w, e, &err);
            return;
        }
        WLOG_W(&w->log, NULL, "Redis output queue full (Redis slow or away): holding entries, not taking new work");
    }
    wemit *c = wemit_copy(e);
    if (!c) {
        /* Out of memory: nothing sensible is left; drop the entry but keep
         * the request's acknowledgement flowing. */
        inf_error_set(&err, INF_ENOMEM, "out of memory");
        send_failed(w, e, &err);
        return;
    }
    if (w->backlog_tail) w->backlog_tail->next = c;
    else w->backlog_head = c;
    w->backlog_tail = c;
    w->n_backlog++;
}

int wk_flush_backlog(struct worker *w) {
    while (w->backlog_head) {
        wemit *e = w->backlog_head;
        inf_error err = {0};
        int rc = send_one(w, e, &err);
        if (rc == INF_EFULL) return 1;
        if (rc) send_failed(w, e, &err);
        w->backlog_head = e->next;
        if (!w->backlog_head) w->backlog_tail = NULL;
        w->n_backlog--;
        wemit_free(e);
    }
    return 0;
}

void wk_backlog_free(struct worker *w) {
    while (w->backlog_head) {
        wemit *e = w->backlog_head;
        w->backlog_head = e->next;
        wemit_free(e);
    }
    w->backlog_tail = NULL;
    w->n_backlog = 0;
}

static void emit_error(struct worker *w, wjob *j, const char *code, const char *message) {
    j->final_queued_ms = wk_mono_ms_f();
    wemit e = {.type = EM_ERROR, .stream = j->stream, .request_id = j->id, .code = (char *)code,
               .message = (char *)message, .ack = ack_ctx(j)};
    emit(w, &e);
}

/* ---- job list ------------------------------------------------------------ */

static wjob *job_new(struct worker *w, kin_msg *m) {
    wjob *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    j->msg = m;
    j->serial = ++w->next_serial;
    m->user = ack_ctx(j);
    j->received_ms = wk_now_ms();
    inf_request_init(&j->req);
    j->prev = w->jobs_tail;
    if (w->jobs_tail) w->jobs_tail->next = j;
    else w->jobs_head = j;
    w->jobs_tail = j;
    w->n_jobs++;
    return j;
}

static void job_unlink_free(struct worker *w, wjob *j) {
    if (j->prev) j->prev->next = j->next;
    else w->jobs_head = j->next;
    if (j->next) j->next->prev = j->prev;
    else w->jobs_tail = j->prev;
    w->n_jobs--;
    if (j->state == WJ_CHECKING || j->state == WJ_PENDING) {
        w->n_pending--;
        w->last_progress_ms = wk_mono_ms();
    }
    if (j->has_req) inf_request_free(&j->req);
    free(j->dups);
    free(j->metadata_json);
    free(j->acc_text);
    free(j->acc_ids);
    free(j);
}

/* Everything about j is settled: its message (and redeliveries of it) may
 * be committed. */
static void job_finish(struct worker *w, wjob *j) {
    if (j->msg) kin_msg_done(w->kin, j->msg);
    for (int i = 0; i < j->n_dups; i++) kin_msg_done(w->kin, j->dups[i]);
    job_unlink_free(w, j);
}

/* The job serving request id, other than `except` (the one asking). */
static wjob *job_by_id(struct worker *w, const char *id, const wjob *except) {
    for (wjob *j = w->jobs_head; j; j = j->next)
        if (j != except && j->state != WJ_BAD && j->id[0] && strcmp(j->id, id) == 0) return j;
    return NULL;
}

/* The job other than `except` that writes (or will write) to stream. */
static wjob *job_by_stream(struct worker *w, const char *stream, const wjob *except) {
    for (wjob *j = w->jobs_head; j; j = j->next)
        if (j != except && j->stream[0] && strcmp(j->stream, stream) == 0) return j;
    return NULL;
}

static wjob *job_by_serial(struct worker *w, uint64_t serial) {
    for (wjob *j = w->jobs_head; j; j = j->next)
        if (j->serial == serial) return j;
    return NULL;
}

int wk_busy_jobs(const struct worker *w) { return w->n_jobs - w->n_pending; }

static int waiting_state(wjob_state st) { return st == WJ_CHECKING || st == WJ_PENDING; }

/* Moves j to state st, keeping the count of waiting jobs and the time of
 * the last progress (health: work waits but nothing moves). */
static void job_set_state(struct worker *w, wjob *j, wjob_state st) {
    int was = waiting_state(j->state), is = waiting_state(st);
    if (was && !is) w->last_progress_ms = wk_mono_ms();
    if (!was && is && w->n_pending == 0) w->last_progress_ms = wk_mono_ms();
    w->n_pending += is - was;
    j->state = st;
}

/* Sets j->stream to request id's default stream, or "" when that stream is
 * `refused` itself or another job of this worker writes it. */
static void default_stream(struct worker *w, wjob *j, const char *id, const char *refused) {
    char def[WJ_STREAM_MAX];
    j->stream[0] = '\0';
    if (rds_stream_key(w->rds, id, NULL, def, sizeof def) < 0) return;
    if (refused && strcmp(def, refused) == 0) return;
    if (job_by_stream(w, def, j)) return;
    snprintf(j->stream, sizeof j->stream, "%s", def);
}

/* Frees every message still held without marking it done (shutdown): those
 * offsets stay uncommitted and are redelivered to another worker. */
void wk_release_all(struct worker *w) {
    while (w->jobs_head) {
        wjob *j = w->jobs_head;
        if (j->msg) kin_msg_free(w->kin, j->msg);
        for (int i = 0; i < j->n_dups; i++) kin_msg_free(w->kin, j->dups[i]);
        job_unlink_free(w, j);
    }
}

/* ---- bad messages -------------------------------------------------------- */

/* j cannot be served: the raw message goes to the DLQ and, when its id is
 * known and j->stream names its error stream, an error entry goes there -
 * after a check that the stream belongs to this request and holds no final
 * entry yet (a redelivered bad message must not add a second one; a stream
 * of another request is never written). The message is done once both are
 * confirmed. */
static void job_dead_letter(struct worker *w, wjob *j, const char *code, const char *message) {
    job_set_state(w, j, WJ_BAD);
    snprintf(j->err_code, sizeof j->err_code, "%s", code);
    snprintf(j->dlq_reason, sizeof j->dlq_reason, "%s: %s", code, message);
    WLOG_W(&w->log, j->id, "rejected (%s/%d@%lld): %s", j->msg->topic, (int)j->msg->partition,
           (long long)j->msg->offset, j->dlq_reason);
    j->waits = 1; /* the DLQ copy */
    inf_error err = {0};
    if (j->id[0] && j->stream[0]) {
        if (rds_check_submit(w->rds, j->stream, j->id, (void *)(uintptr_t)j->serial, &err) == 0) {
            j->err_check = 1;
            j->waits++;
        } else {
            WLOG_W(&w->log, j->id, "no error entry for %s: %s", j->stream, err.msg);
        }
    }
    if (kin_send_dlq(w->kin, j->msg, j->dlq_reason, j->id[0] ? j->id : NULL, &err) != 0) {
        if (err.code == INF_ESTATE) { /* no DLQ topic configured */
            j->waits--;
        } else {
            WLOG_W(&w->log, j->id, "DLQ produce failed, will retry: %s", err.msg);
            j->dlq_unsent = 1;
        }
    }
    if (j->waits == 0) job_finish(w, j);
}

/* job_dead_letter for a message that counts as failed. */
static void job_reject(struct worker *w, wjob *j, const char *code, const char *message) {
    w->n_failed++;
    wm_request_final(w->metrics, j->msg->topic_index, WM_DLQ);
    job_dead_letter(w, j, code, message);
}

/* The answer to a rejected job's error-stream check. */
static void reject_checked(struct worker *w, wjob *j, const rds_check_result *res) {
    j->err_check = 0;
    if (res->status == 0 && !res->has_final) {
        j->final_queued_ms = wk_mono_ms_f();
        const char *msg = j->dlq_reason + strlen(j->err_code) + 2;
        wemit e = {.type = EM_ERROR, .stream = j->stream, .request_id = j->id, .code = j->err_code,
                   .message = (char *)msg, .ack = ack_ctx(j)};
        emit(w, &e);
        return;
    }
    if (res->status) WLOG_W(&w->log, j->id, "no error entry: %s; DLQ only", res->message);
    else WLOG_I(&w->log, j->id, "stream %s already holds a final entry; DLQ only", j->stream);
    if (--j->waits <= 0) job_finish(w, j);
}

void wk_retry_dlq(struct worker *w) {
    for (wjob *j = w->jobs_head, *nx; j; j = nx) {
        nx = j->next;
        if (j->state != WJ_BAD || !j->dlq_unsent) continue;
        inf_error err = {0};
        if (kin_send_dlq(w->kin, j->msg, j->dlq_reason, j->id[0] ? j->id : NULL, &err) == 0) j->dlq_unsent = 0;
        else return; /* still failing: try again next round */
    }
}

void wk_on_dlq_ack(struct worker *w, kin_msg *m) {
    size_t sent = 0;
    const char *why = NULL;
    kin_dlq_outcome out = kin_dlq_result(m, &sent, &why);
    wjob *j = job_by_serial(w, (uint64_t)(uintptr_t)m->user);
    if (j && j->msg != m) j = NULL;
    const char *id = j && j->id[0] ? j->id : NULL;
    /* Either way the message is done: a copy that can never be delivered
     * must not hold its partition's commit (and a drain) forever. */
    if (out == KIN_DLQ_GAVE_UP)
        WLOG_E(&w->log, id, "DLQ copy of %s/%d@%lld given up (%s); committing it without one", m->topic,
               (int)m->partition, (long long)m->offset, why);
    else if (out == KIN_DLQ_TRUNCATED)
        WLOG_W(&w->log, id, "DLQ copy of %s/%d@%lld truncated to %zu of %zu value bytes%s%s", m->topic,
               (int)m->partition, (long long)m->offset, sent, m->value_len, why[0] ? " after: " : "", why);
    if (!j) {
        kin_msg_done(w->kin, m); /* not ours any more (should not happen) */
        return;
    }
    if (--j->waits <= 0) job_finish(w, j);
}

void wk_on_redis_ack(struct worker *w, void *ctx) {
    wjob *j = job_by_serial(w, (uint64_t)(uintptr_t)ctx);
    if (!j) return;
    if (j->final_queued_ms > 0) {
        wm_observe_publish(w->metrics, wk_mono_ms_f() - j->final_queued_ms);
        j->final_queued_ms = 0;
    }
    if (--j->waits <= 0) job_finish(w, j);
}

/* j's final entry was dropped: its stream was claimed by another request
 * before j's start entry reached it (rds_poll_refused), so nothing of j's
 * answer was written. The message goes to the DLQ, with an error on j's
 * default stream where that is another stream. */
void wk_on_redis_refused(struct worker *w, void *ctx) {
    wjob *j = job_by_serial(w, (uint64_t)(uintptr_t)ctx);
    if (!j) return;
    j->waits--;
    if (j->state == WJ_BAD) { /* its error entry met a claimed stream: DLQ only */
        if (j->waits <= 0) job_finish(w, j);
        return;
    }
    char refused[WJ_STREAM_MAX], msg[WJ_STREAM_MAX + 128];
    snprintf(refused, sizeof refused, "%s", j->stream);
    snprintf(msg, sizeof msg, "reply stream %s was claimed by another request first; the answer was not written",
             refused);
    default_stream(w, j, j->id, refused);
    job_dead_letter(w, j, "reply_stream_conflict", msg);
}

/* ---- receiving ----------------------------------------------------------- */

static char *metadata_to_json(const inf_request *r) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    fputc('{', f);
    for (size_t i = 0; i < r->n_metadata; i++) {
        if (i) fputc(',', f);
        json_write_str(f, r->metadata[i].key, strlen(r->metadata[i].key));
        fputc(':', f);
        json_write_str(f, r->metadata[i].value, strlen(r->metadata[i].value));
    }
    fputc('}', f);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* A message that cannot be decoded: the sender's id from the record if it
 * decoded that far (meta_id, may be ""), else the message key (producers key
 * by request id), so the error reaches its default stream; then the DLQ. */
static void reject_undecoded(struct worker *w, wjob *j, const char *meta_id, const char *code, const char *message) {
    const kin_msg *m = j->msg;
    const char *id = meta_id[0] && inf_request_id_valid(meta_id)           ? meta_id
                     : m->key && inf_request_id_valid((const char *)m->key) ? (const char *)m->key
                                                                            : NULL;
    if (id) {
        snprintf(j->id, sizeof j->id, "%s", id);
        /* The request's own id is in flight already: its stream belongs
         * to that request, so this message goes to the DLQ only. */
        if (!job_by_id(w, j->id, j)) default_stream(w, j, j->id, NULL);
    }
    job_reject(w, j, code, message);
}

void wk_on_message(struct worker *w, kin_msg *m) {
    wjob *j = job_new(w, m);
    if (!j) {
        WLOG_E(&w->log, NULL, "out of memory for a request; leaving it for redelivery");
        kin_msg_free(w->kin, m);
        return;
    }
    if (m->value_len > (size_t)w->cfg->max_message_bytes) {
        /* Not decoded at all: the sender learns the size and the limit, and
         * the DLQ gets the copy (cut to fit, kin_send_dlq). */
        char msg[160];
        snprintf(msg, sizeof msg, "request message of %zu bytes exceeds the %d-byte limit (--max-message-bytes)",
                 m->value_len, w->cfg->max_message_bytes);
        reject_undecoded(w, j, "", "request_too_large", msg);
        return;
    }
    inf_avro_meta meta;
    memset(&meta, 0, sizeof meta);
    inf_error err = {0};
    int rc = m->value ? inf_avro_decode(w->reg, m->value, m->value_len, &j->req, &meta, &err)
                      : inf_error_set(&err, INF_EFORMAT, "the message has no value");
    if (rc) {
        reject_undecoded(w, j, meta.request_id, rc == INF_ERANGE ? "invalid_params" : "bad_message", err.msg);
        return;
    }
    j->has_req = 1;
    snprintf(j->id, sizeof j->id, "%s", j->req.request_id);
    wjob *first = job_by_id(w, j->id, j);
    if (first) {
        /* A redelivery (rebalance, retry) while the first copy is served:
         * answer once; this message is committed with the first. */
        if (first->n_dups == first->cap_dups) {
            int nc = first->cap_dups ? first->cap_dups * 2 : 2;
            kin_msg **nd = realloc(first->dups, (size_t)nc * sizeof *nd);
            if (!nd) {
                kin_msg_free(w->kin, m);
                j->msg = NULL;
                job_unlink_free(w, j);
                return;
            }
            first->dups = nd;
            first->cap_dups = nc;
        }
        first->dups[first->n_dups++] = m;
        j->msg = NULL;
        WLOG_I(&w->log, first->id, "duplicate delivery (%s/%d@%lld) while in flight: answered once",
               m->topic, (int)m->partition, (long long)m->offset);
        job_unlink_free(w, j);
        return;
    }
    const char *rs = j->req.reply_stream && *j->req.reply_stream ? j->req.reply_stream : NULL;
    if (rs && (strlen(rs) >= sizeof j->stream || !rds_reply_key_allowed(w->rds, rs))) {
        /* Never another application's key or the worker's own: the error
         * goes to the request's default stream. */
        char msg[256];
        snprintf(msg, sizeof msg, "reply_stream \"%.80s%s\" is not allowed: reply streams must start with \"%s\"%s",
                 rs, strlen(rs) > 80 ? "..." : "", w->cfg->out_prefix,
                 strlen(rs) >= sizeof j->stream ? " and be shorter than 300 bytes" : "");
        default_stream(w, j, j->id, NULL);
        job_reject(w, j, "invalid_reply_stream", msg);
        return;
    }
    if (rds_stream_key(w->rds, j->id, rs, j->stream, sizeof j->stream) < 0) {
        j->stream[0] = '\0';
        job_reject(w, j, "invalid_request", "request_id is too long for a reply stream key");
        return;
    }
    wjob *other = job_by_stream(w, j->stream, j);
    if (other) {
        char msg[512];
        snprintf(msg, sizeof msg, "reply stream %s is in use by request %s", j->stream, other->id);
        char refused[WJ_STREAM_MAX];
        snprintf(refused, sizeof refused, "%s", j->stream);
        default_stream(w, j, j->id, refused);
        job_reject(w, j, "reply_stream_conflict", msg);
        return;
    }
    j->stream_tokens = j->req.stream;
    if (j->req.n_metadata && !(j->metadata_json = metadata_to_json(&j->req))) {
        job_reject(w, j, "internal", "out of memory");
        return;
    }
    job_set_state(w, j, WJ_CHECKING);
    if (rds_check_submit(w->rds, j->stream, j->id, (void *)(uintptr_t)j->serial, &err) != 0) {
        job_reject(w, j, "internal", err.msg);
        return;
    }
    WLOG_D(&w->log, j->id, "received from %s/%d@%lld", m->topic, (int)m->partition, (long long)m->offset);
}

/* The checker thread answered for job serial res->ctx. */
void wk_on_check(struct worker *w, const rds_check_result *res) {
    wjob *j = job_by_serial(w, (uint64_t)(uintptr_t)res->ctx);
    if (!j) return; /* released meanwhile (shutdown) */
    if (res->status == INF_EIO) {
        /* Redis trouble, retried by the checker; nothing is held up by it
         * that Redis itself does not hold up. */
        if (!j->check_warned) WLOG_W(&w->log, j->id, "Redis check failed, will retry: %s", res->message);
        j->check_warned = 1;
        return;
    }
    if (j->state == WJ_BAD) {
        if (j->err_check) reject_checked(w, j, res);
        return;
    }
    if (j->state != WJ_CHECKING) return;
    if (res->status) {
        /* Permanent for this message: its stream is another request's, a
         * foreign key or malformed. Tell the sender on its default stream. */
        char refused[WJ_STREAM_MAX];
        snprintf(refused, sizeof refused, "%s", j->stream);
        default_stream(w, j, j->id, refused);
        job_reject(w, j, "reply_stream_conflict", res->message);
        return;
    }
    if (res->has_final) {
        /* Redelivered after its answer was written: one answer per request. */
        WLOG_I(&w->log, j->id, "already answered on %s (redelivery): skipped", j->stream);
        job_finish(w, j);
        return;
    }
    j->attempt = res->last_attempt + 1;
    if (res->cancelled) j->cancel = 1;
    job_set_state(w, j, WJ_PENDING);
}

/* ---- admission ----------------------------------------------------------- */

static int fill_params(sampler_params *p, const inf_request *r, inf_error *err) {
    *p = sampler_params_default();
    p->temperature = r->temperature;
    p->top_k = r->top_k;
    p->top_p = r->top_p;
    p->min_p = r->min_p;
    p->repetition_penalty = r->repetition_penalty;
    p->presence_penalty = r->presence_penalty;
    p->frequency_penalty = r->frequency_penalty;
    p->has_seed = r->has_seed;
    p->seed = (uint64_t)r->seed;
    p->ignore_eos = r->ignore_eos;
    p->min_tokens = r->min_tokens;
    p->max_tokens = r->max_tokens;
    p->logprobs = r->has_logprobs ? r->logprobs : -1;
    int rc = 0;
    for (size_t i = 0; i < r->n_stop && !rc; i++) rc = sampler_params_add_stop(p, r->stop[i], err);
    for (size_t i = 0; i < r->n_stop_token_ids && !rc; i++)
        rc = sampler_params_add_stop_token(p, r->stop_token_ids[i], err);
    for (size_t i = 0; i < r->n_logit_bias && !rc; i++)
        rc = sampler_params_add_logit_bias(p, r->logit_bias[i].token_id, r->logit_bias[i].bias, err);
    return rc;
}

static void emit_start(struct worker *w, wjob *j) {
    wemit e = {.type = EM_START, .stream = j->stream, .request_id = j->id, .attempt = j->attempt,
               .prompt_tokens = j->prompt_tokens};
    emit(w, &e);
}

static void emit_done(struct worker *w, wjob *j, const char *reason, const engine_usage *u,
                      const engine_timings *t) {
    wemit e = {.type = EM_DONE, .stream = j->stream, .request_id = j->id, .reason = reason,
               .pt = u ? u->prompt_tokens : j->prompt_tokens, .ct = u ? u->completion_tokens : 0,
               .cached = u ? u->cached_tokens : 0, .q_ms = t ? t->queue_ms : -1, .ttft_ms = t ? t->ttft_ms : -1,
               .e2e_ms = t ? t->e2e_ms : (double)(wk_now_ms() - j->received_ms), .meta = j->metadata_json,
               .ack = ack_ctx(j)};
    job_set_state(w, j, WJ_FINAL_SENT);
    j->waits = 1;
    j->final_queued_ms = wk_mono_ms_f();
    emit(w, &e);
}

/* The documented range of `priority` (docs/protocol.md): the topic
 * indices, 0 = high. Anything else is clamped, so no value outranks the high
 * topic or sinks below the low one. */
static int clamp_priority(int p) { return p < 0 ? 0 : p > KIN_MAX_TOPICS - 1 ? KIN_MAX_TOPICS - 1 : p; }

/* Admits one checked job (its stream is its own and holds no final entry):
 * into the engine, or finished (cancelled), or rejected. No Redis calls. */
static void admit_one(struct worker *w, wjob *j) {
    inf_error err = {0};
    const inf_request *r = &j->req;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    /* Placeholders until chat templates and constrained decoding reach the
     * worker: a clear refusal, never a silently ignored field. */
    if (r->messages) {
        job_reject(w, j, "invalid_request", "chat requests (messages) are not supported by this worker yet");
        return;
    }
    if (r->response_format || r->grammar || r->regex || r->choice) {
        job_reject(w, j, "invalid_request",
                   "output constraints (response_format, grammar, regex, choice) are not supported by this worker yet");
        return;
    }
    if (r->prompt_token_ids) {
        n_ids = r->n_prompt_token_ids;
    } else if (tok_encode(engine_tokenizer(w->eng), r->prompt, strlen(r->prompt), 1, 0, &ids, &n_ids, &err) != 0) {
        job_reject(w, j, "invalid_request", err.msg);
        return;
    }
    j->prompt_tokens = (int)n_ids;
    if (j->cancel) {
        WLOG_I(&w->log, j->id, "cancelled before it started");
        wm_request_final(w->metrics, j->msg->topic_index, WM_ABORT);
        free(ids);
        emit_start(w, j);
        emit_done(w, j, engine_finish_name(ENGINE_FINISH_ABORT), NULL, NULL);
        return;
    }
    int max_len = engine_get_config(w->eng)->max_model_len;
    if ((int64_t)n_ids >= max_len) {
        char msg[256];
        snprintf(msg, sizeof msg, "the prompt has %zu tokens but max_model_len is %d", n_ids, max_len);
        free(ids);
        job_reject(w, j, "prompt_too_long", msg);
        return;
    }
    sampler_params sp;
    int rc = fill_params(&sp, r, &err);
    if (!rc) {
        engine_request q = engine_request_default();
        q.id = j->id;
        q.prompt_tokens = ids ? ids : r->prompt_token_ids;
        q.n_prompt_tokens = (int)n_ids;
        q.params = &sp;
        q.priority = r->has_priority ? clamp_priority(r->priority) : j->msg->topic_index;
        q.deadline_ms = r->has_deadline_ms ? r->deadline_ms : 0;
        q.user = j;
        rc = engine_add(w->eng, &q, &err);
    }
    sampler_params_free(&sp);
    free(ids);
    if (rc) {
        job_reject(w, j, "invalid_request", err.msg);
        return;
    }
    job_set_state(w, j, WJ_RUNNING);
    emit_start(w, j);
    WLOG_I(&w->log, j->id, "started: attempt %d, %d prompt tokens, priority %d, from %s/%d@%lld", j->attempt,
           j->prompt_tokens, r->has_priority ? clamp_priority(r->priority) : j->msg->topic_index, j->msg->topic,
           (int)j->msg->partition, (long long)j->msg->offset);
    inf_request_free(&j->req); /* the engine holds its own copy */
    j->has_req = 0;
}

void wk_admit_pending(struct worker *w) {
    if (w->n_pending == 0) return;
    for (wjob *j = w->jobs_head, *nx; j; j = nx) {
        nx = j->next;
        if (j->state != WJ_PENDING) continue;
        if (w->backlog_head) return; /* Redis output full: take nothing new */
        admit_one(w, j);
    }
}

/* ---- engine events ------------------------------------------------------- */

static int acc_append(wjob *j, const engine_event *ev) {
    if (j->acc_len + ev->text_len + 1 > j->acc_cap) {
        size_t nc = (j->acc_cap ? j->acc_cap * 2 : 256) + ev->text_len;
        char *t = realloc(j->acc_text, nc);
        if (!t) return -1;
        j->acc_text = t;
        j->acc_cap = nc;
    }
    if (ev->text_len) memcpy(j->acc_text + j->acc_len, ev->text, ev->text_len);
    j->acc_len += ev->text_len;
    if (j->acc_n + ev->n_tokens > j->acc_idcap) {
        int nc = (j->acc_idcap ? j->acc_idcap * 2 : 64) + ev->n_tokens;
        int32_t *t = realloc(j->acc_ids, (size_t)nc * sizeof *t);
        if (!t) return -1;
        j->acc_ids = t;
        j->acc_idcap = nc;
    }
    memcpy(j->acc_ids + j->acc_n, ev->tokens, (size_t)ev->n_tokens * sizeof *ev->tokens);
    j->acc_n += ev->n_tokens;
    return 0;
}

void wk_on_events(struct worker *w, const engine_event *evs, int n) {
    for (int i = 0; i < n; i++) {
        const engine_event *ev = &evs[i];
        wjob *j = ev->user;
        if (!j) continue;
        if (ev->type == ENGINE_EVENT_TOKEN) {
            if (j->stream_tokens) {
                wemit e = {.type = EM_TOKEN, .stream = j->stream, .request_id = j->id, .seq = j->n_out,
                           .text = (char *)ev->text, .text_len = ev->text_len, .ids = (int32_t *)ev->tokens,
                           .n_ids = ev->n_tokens, .logprobs = (float *)ev->logprobs};
                emit(w, &e);
            } else if (acc_append(j, ev) != 0) {
                WLOG_E(&w->log, j->id, "out of memory collecting the answer; aborting it");
                engine_abort(w->eng, j->id);
            }
            j->n_out += ev->n_tokens;
            if (!ev->first) wm_observe_itl(w->metrics, ev->itl_ms, ev->n_tokens);
            if (ev->first) WLOG_D(&w->log, j->id, "first token after %.1f ms", ev->ttft_ms);
        } else if (ev->type == ENGINE_EVENT_FINISHED) {
            if (!j->stream_tokens && j->acc_n > 0) {
                /* stream=false: the whole answer as one token entry */
                wemit e = {.type = EM_TOKEN, .stream = j->stream, .request_id = j->id, .seq = 0,
                           .text = j->acc_text, .text_len = j->acc_len, .ids = j->acc_ids, .n_ids = j->acc_n};
                emit(w, &e);
            }
            w->n_done++;
            wm_observe_finished(w->metrics, ev->timings.queue_ms, ev->timings.ttft_ms, ev->timings.e2e_ms,
                                ev->usage.prompt_tokens, ev->usage.completion_tokens);
            wm_request_final(w->metrics, j->msg ? j->msg->topic_index : -1,
                             ev->reason == ENGINE_FINISH_ABORT      ? WM_ABORT
                             : ev->reason == ENGINE_FINISH_DEADLINE ? WM_DEADLINE
                                                                    : WM_DONE);
            WLOG_I(&w->log, j->id, "done: %s, %d prompt + %d completion tokens, ttft %.1f ms, e2e %.1f ms",
                   engine_finish_name(ev->reason), ev->usage.prompt_tokens, ev->usage.completion_tokens,
                   ev->timings.ttft_ms, ev->timings.e2e_ms);
            emit_done(w, j, engine_finish_name(ev->reason), &ev->usage, &ev->timings);
        } else if (ev->type == ENGINE_EVENT_ERROR) {
            w->n_failed++;
            wm_request_final(w->metrics, j->msg ? j->msg->topic_index : -1, WM_ERROR);
            WLOG_W(&w->log, j->id, "failed: %s", ev->message ? ev->message : "");
            j->state = WJ_FINAL_SENT;
            j->waits = 1;
            char code[64];
            snprintf(code, sizeof code, "engine_%s", inf_status_name(ev->code));
            for (char *p = code; *p; p++)
                if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
            emit_error(w, j, code, ev->message ? ev->message : "engine error");
        }
    }
}

/* ---- cancellation, abort -------------------------------------------------- */

void wk_on_cancel(struct worker *w, const char *id) {
    wjob *j = job_by_id(w, id, NULL);
    if (!j) return;
    if (j->state == WJ_CHECKING || j->state == WJ_PENDING) {
        j->cancel = 1;
    } else if (j->state == WJ_RUNNING) {
        WLOG_I(&w->log, id, "cancel requested");
        engine_abort(w->eng, id);
    }
}

void wk_abort_running(struct worker *w) {
    for (wjob *j = w->jobs_head; j; j = j->next)
        if (j->state == WJ_RUNNING) engine_abort(w->eng, j->id);
}
