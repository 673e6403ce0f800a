/* gw_call.c - one completion request from its body to its last byte:
 * validation, admission (model, chat template, backpressure, per-key
 * limits), the fan-out into n queue requests, the reply-stream callbacks
 * (gw_redis.h) that turn entries into SSE chunks or the final body, and the
 * end (cancel what is unfinished). See gw_internal.h for the state. */
#include "gw_internal.h"

#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

static const char *PRIO_TOPIC[3] = {"high", "normal", "low"};

static void resume(gw_call *c) {
    if (c->suspended) {
        c->suspended = 0;
        MHD_resume_connection(c->conn);
    }
}

static void suspend(gw_call *c) {
    c->suspended = 1;
    MHD_suspend_connection(c->conn);
}

static void ns_add(gw_call *c, int d) { __atomic_add_fetch(&c->srv->not_started, d, __ATOMIC_RELAXED); }

/* Under the lock: every leg not yet final is cancelled on the queue. */
static void cancel_unfinished(gw_call *c) {
    int n = 0;
    for (int i = 0; i < c->n_legs; i++) {
        gw_leg *L = &c->legs[i];
        if (L->final) continue;
        L->final = 1;
        if (!L->started) {
            L->started = 1;
            ns_add(c, -1);
        }
        gw_rd_cancel(c->srv->d.rd, L->id);
        n++;
    }
    if (n) gw_metrics_cancel(c->srv->d.metrics, n);
}

static int stream_mode(const gw_call *c) { return c->p.stream; }

/* Under the lock: the request failed. Before the answer started this is its
 * HTTP error; a stream that started gets an error event and ends. */
static void fail(gw_call *c, const gw_apierr *e) {
    cancel_unfinished(c);
    if (c->phase == PH_WAIT) {
        c->err = *e;
        c->phase = PH_ERROR;
    } else if (stream_mode(c) && !c->out_done) {
        gw_buf_puts(&c->out, "data: ");
        gw_fmt_error(&c->out, e);
        gw_buf_puts(&c->out, "\n\n");
        c->out_done = 1;
    }
    resume(c);
}

/* The worker's error codes as OpenAI statuses. */
static void worker_error(const gw_rd_entry *e, gw_apierr *err) {
    const char *code = e->code ? e->code : "error", *msg = e->message ? e->message : "";
    static const char *BAD[] = {"invalid_params", "invalid_request", "prompt_too_long", "bad_message",
                                "invalid_reply_stream"};
    int status = 500;
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++)
        if (!strcmp(code, BAD[i])) status = 400;
    if (!strcmp(code, "request_too_large")) status = 413;
    gw_apierr_set(err, status, status == 500 ? "server_error" : "invalid_request_error", NULL, code, "%s", msg);
}

static void mark_started(gw_call *c, gw_leg *L, int idx, int prompt_tokens) {
    if (L->started) return;
    L->started = 1;
    L->prompt_tokens = prompt_tokens;
    c->n_started++;
    ns_add(c, -1);
    if (stream_mode(c) && c->route == 1) gw_fmt_chunk_role(&c->out, &c->resp, idx);
}

static void check_ready(gw_call *c) {
    if (c->phase == PH_WAIT && stream_mode(c) && c->n_started == c->n_legs) {
        c->phase = PH_READY;
        resume(c);
    }
}

static void on_start(void *ctx, int leg, const gw_rd_entry *e) {
    gw_call *c = ctx;
    mark_started(c, &c->legs[leg], leg, e->prompt_tokens);
    check_ready(c);
}

static void on_reset(void *ctx, int leg, const gw_rd_entry *e) {
    (void)e;
    gw_call *c = ctx;
    gw_leg *L = &c->legs[leg];
    /* a rerun from seq 0: what the client already has is skipped, the rest
     * follows (exact for greedy answers); a body not yet sent starts over */
    L->skip = stream_mode(c) ? L->tokens_sent : 0;
    L->text.len = 0;
    L->n_ids = 0;
}

static void keep_ids(gw_leg *L, const gw_rd_entry *e) {
    if (L->n_ids + e->n_ids > L->cap_ids) {
        int cap = L->cap_ids ? L->cap_ids : 64;
        while (cap < L->n_ids + e->n_ids) cap *= 2;
        int32_t *a = realloc(L->ids, (size_t)cap * sizeof *a);
        if (a) L->ids = a;
        float *b = realloc(L->lps, (size_t)cap * sizeof *b);
        if (b) L->lps = b;
        if (!a || !b) return;
        L->cap_ids = cap;
    }
    memcpy(L->ids + L->n_ids, e->ids, (size_t)e->n_ids * sizeof *e->ids);
    for (int k = 0; k < e->n_ids; k++) L->lps[L->n_ids + k] = e->logprobs ? e->logprobs[k] : 0.0f;
    L->n_ids += e->n_ids;
}

/* Stream: the entry's text (with a held-back partial character in front)
 * as one chunk, holding back a partial character at its end. */
static void emit(gw_call *c, int idx, const char *text, size_t len, const gw_rd_entry *e, int final) {
    gw_leg *L = &c->legs[idx];
    gw_buf_put(&L->text, text, len);
    size_t k = final ? L->text.len : gw_utf8_complete_prefix(L->text.p ? L->text.p : "", L->text.len);
    if (k == 0 && (!e || !e->n_ids)) return;
    gw_tokens t = {.text = L->text.p ? L->text.p : "", .text_len = k, .ids = e ? e->ids : NULL,
                   .logprobs = e ? e->logprobs : NULL, .n = e ? e->n_ids : 0, .text_offset = L->text_offset};
    if (k || (e && e->n_ids && c->resp.logprobs >= 0)) gw_fmt_chunk_text(&c->out, &c->resp, idx, &t);
    L->text_offset += (long)k;
    if (k) {
        memmove(L->text.p, L->text.p + k, L->text.len - k);
        L->text.len -= k;
    }
}

static void on_tokens(void *ctx, int leg, const gw_rd_entry *e) {
    gw_call *c = ctx;
    gw_leg *L = &c->legs[leg];
    if (L->final || c->phase == PH_ERROR) return;
    mark_started(c, L, leg, 0);
    if (!stream_mode(c)) {
        gw_buf_put(&L->text, e->text, e->text_len);
        keep_ids(L, e);
        return;
    }
    if (L->skip > 0) { /* a rerun: what was sent already */
        L->skip = e->n_ids >= L->skip ? 0 : L->skip - e->n_ids;
        return;
    }
    emit(c, leg, e->text, e->text_len, e, 0);
    L->tokens_sent += e->n_ids;
    if (c->sub && gw_buf_avail(&c->out) > (size_t)c->srv->d.cfg->stream_buffer_kb * 1024) gw_sub_set_paused(c->sub, 1);
    if (c->phase != PH_WAIT) resume(c);
    check_ready(c);
}

static void finish_body(gw_call *c) {
    gw_choice *ch = calloc((size_t)c->n_legs, sizeof *ch);
    if (!ch) {
        gw_apierr e;
        gw_apierr_set(&e, 500, "server_error", NULL, NULL, "out of memory");
        c->err = e;
        c->phase = PH_ERROR;
        return;
    }
    int pt = 0, ct = 0;
    for (int i = 0; i < c->n_legs; i++) {
        gw_leg *L = &c->legs[i];
        ch[i].tok = (gw_tokens){.text = L->text.p ? L->text.p : "", .text_len = L->text.len, .ids = L->ids,
                                .logprobs = L->lps, .n = L->n_ids};
        ch[i].finish_reason = L->finish;
        ct += L->completion_tokens;
        /* prompt tokens count once per prompt (an n > 1 fan-out repeats each prompt n times) */
        if (i % c->p.n == 0) pt += L->prompt_tokens;
    }
    gw_fmt_body(&c->out, &c->resp, ch, c->n_legs, pt, ct);
    gw_buf_puts(&c->out, "\n");
    free(ch);
    c->phase = PH_READY;
}

static void on_final(void *ctx, int leg, const gw_rd_entry *e) {
    gw_call *c = ctx;
    gw_leg *L = &c->legs[leg];
    if (L->final || c->phase == PH_ERROR) return;
    if (!strcmp(e->event, "error")) {
        gw_apierr err;
        worker_error(e, &err);
        L->final = 1; /* its stream is over already: no cancel for it */
        if (!L->started) {
            L->started = 1;
            c->n_started++;
            ns_add(c, -1);
        }
        fail(c, &err);
        return;
    }
    mark_started(c, L, leg, e->prompt_tokens);
    L->final = 1;
    c->n_final++;
    L->prompt_tokens = e->prompt_tokens;
    L->completion_tokens = e->completion_tokens;
    snprintf(L->finish, sizeof L->finish, "%s", gw_finish_reason(e->finish_reason));
    if (stream_mode(c)) {
        if (L->text.len) emit(c, leg, "", 0, NULL, 1);
        gw_fmt_chunk_finish(&c->out, &c->resp, leg, L->finish);
        if (c->n_final == c->n_legs) {
            if (c->resp.include_usage) {
                int pt = 0, ct = 0;
                for (int i = 0; i < c->n_legs; i++) {
                    ct += c->legs[i].completion_tokens;
                    if (i % c->p.n == 0) pt += c->legs[i].prompt_tokens;
                }
                gw_fmt_chunk_usage(&c->out, &c->resp, pt, ct);
            }
            gw_fmt_done(&c->out);
            c->out_done = 1;
        }
        check_ready(c);
        if (c->phase != PH_WAIT) resume(c);
    } else if (c->n_final == c->n_legs) {
        finish_body(c);
        resume(c);
    }
}

static void on_tick(void *ctx, int64_t now) {
    gw_call *c = ctx;
    gw_server *s = c->srv;
    int finished = stream_mode(c) ? c->out_done : c->phase != PH_WAIT;
    if (c->phase == PH_WAIT && c->n_started < c->n_legs && now > c->start_deadline_ms) {
        gw_apierr e;
        gw_apierr_set(&e, 504, "server_error", NULL, "timeout",
                      "The request did not start within %d ms (queue backlog or no worker); it was cancelled.",
                      s->d.cfg->start_timeout_ms);
        fail(c, &e);
        return;
    }
    if (!finished && now > c->end_deadline_ms) {
        gw_apierr e;
        gw_apierr_set(&e, 504, "server_error", NULL, "timeout", "The request did not finish within its time "
                      "(--request-timeout-s or X-Inferno-Deadline-Ms); it was cancelled.");
        fail(c, &e);
        return;
    }
    /* a suspended connection is not watched by MHD: look for the client's hang-up ourselves */
    if (c->suspended && c->fd >= 0) {
        struct pollfd pf = {.fd = c->fd, .events = POLLRDHUP};
        if (poll(&pf, 1, 0) > 0 && (pf.revents & (POLLRDHUP | POLLHUP | POLLERR))) {
            c->client_gone = 1;
            resume(c);
        }
    }
}

static const gw_sub_ops OPS = {on_start, on_reset, on_tokens, on_final, on_tick};

/* ---- the MHD side ----------------------------------------------------------- */

static ssize_t content_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    gw_call *c = cls;
    if (!c->sub) return MHD_CONTENT_READER_END_WITH_ERROR;
    gw_sub_lock(c->sub);
    size_t avail = gw_buf_avail(&c->out);
    if (avail) {
        size_t n = avail < max ? avail : max;
        memcpy(buf, c->out.p + c->out.off, n);
        gw_buf_consume(&c->out, n);
        if (gw_buf_avail(&c->out) < (size_t)c->srv->d.cfg->stream_buffer_kb * 512) gw_sub_set_paused(c->sub, 0);
        if (!c->t_first_byte_ms) {
            c->t_first_byte_ms = gw_mono_ms();
            gw_metrics_ttfb(c->srv->d.metrics, (double)(c->t_first_byte_ms - c->t_body_ms) / 1000.0);
        }
        gw_sub_unlock(c->sub);
        return (ssize_t)n;
    }
    ssize_t rc = 0;
    if (c->client_gone || c->srv->stopping) rc = MHD_CONTENT_READER_END_WITH_ERROR;
    else if (c->out_done) rc = MHD_CONTENT_READER_END_OF_STREAM;
    else suspend(c);
    gw_sub_unlock(c->sub);
    return rc;
}

static void content_free(void *cls) { gw_call_unref(cls); }

/* Under the lock: answer if we can, else wait (suspended). */
static enum MHD_Result decide(gw_call *c) {
    if (c->client_gone || c->srv->stopping) return MHD_NO;
    if (c->phase == PH_WAIT) {
        suspend(c);
        return MHD_YES;
    }
    if (c->phase == PH_ERROR) return gw_send_error(c, &c->err, c->retry_after_s);
    if (c->phase != PH_READY) return MHD_YES;
    struct MHD_Response *r;
    if (stream_mode(c)) {
        r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, content_reader, c, content_free);
        if (!r) return MHD_NO;
        c->refs++;
        MHD_add_response_header(r, "Content-Type", "text/event-stream; charset=utf-8");
        MHD_add_response_header(r, "Cache-Control", "no-cache");
        MHD_add_response_header(r, "X-Accel-Buffering", "no");
    } else {
        size_t n = gw_buf_avail(&c->out);
        r = MHD_create_response_from_buffer(n, c->out.p ? c->out.p + c->out.off : (void *)"", MHD_RESPMEM_MUST_COPY);
        gw_buf_free(&c->out);
        if (!r) return MHD_NO;
        MHD_add_response_header(r, "Content-Type", "application/json");
        c->t_first_byte_ms = gw_mono_ms();
        gw_metrics_ttfb(c->srv->d.metrics, (double)(c->t_first_byte_ms - c->t_body_ms) / 1000.0);
    }
    MHD_add_response_header(r, "X-Request-Id", c->resp_id);
    enum MHD_Result rc = MHD_queue_response(c->conn, 200, r);
    MHD_destroy_response(r);
    c->status = 200;
    c->phase = PH_SENT;
    gw_metrics_request(c->srv->d.metrics, c->route_name, 200, c->priority);
    return rc;
}

enum MHD_Result gw_call_resumed(gw_call *c) {
    if (!c->sub) return MHD_NO;
    gw_sub_lock(c->sub);
    enum MHD_Result rc = decide(c);
    gw_sub_unlock(c->sub);
    return rc;
}

static long long epoch_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void random_hex(char *out, size_t nbytes) {
    unsigned char b[32];
    if (nbytes > sizeof b) nbytes = sizeof b;
    if (getrandom(b, nbytes, 0) != (ssize_t)nbytes) { /* never expected; still unique per process */
        static unsigned long long ctr;
        unsigned long long x = __atomic_add_fetch(&ctr, 1, __ATOMIC_RELAXED) * 0x9E3779B97F4A7C15ull ^
                               (unsigned long long)epoch_ms();
        for (size_t i = 0; i < nbytes; i++) b[i] = (unsigned char)(x >> (8 * (i % 8)));
    }
    for (size_t i = 0; i < nbytes; i++) sprintf(out + 2 * i, "%02x", b[i]);
}

/* Admission and fan-out; the answer (or the wait) follows. */
enum MHD_Result gw_call_body_done(gw_call *c) {
    gw_server *s = c->srv;
    const gwc *cfg = s->d.cfg;
    gw_apierr e;
    c->t_body_ms = gw_mono_ms();
    if (c->body_too_large) {
        gw_apierr_set(&e, 413, "invalid_request_error", NULL, "request_too_large",
                      "The request body is larger than %d bytes.", cfg->max_body_bytes);
        return gw_send_error(c, &e, 0);
    }
    if (gw_params_parse(c->route ? GW_API_CHAT : GW_API_COMPLETIONS, c->body.p ? c->body.p : "", c->body.len, &c->p,
                        &e))
        return gw_send_error(c, &e, 0);
    gw_buf_free(&c->body);
    const gw_params *p = &c->p;
    /* priority: the body's field, else the header, else normal */
    const char *ph = MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND, "X-Inferno-Priority");
    c->priority = p->priority >= 0 ? p->priority : 1;
    if (p->priority < 0 && ph) {
        c->priority = gw_priority_parse(ph);
        if (c->priority < 0) {
            c->priority = -1;
            gw_apierr_set(&e, 400, "invalid_request_error", "X-Inferno-Priority", NULL,
                          "Invalid X-Inferno-Priority header '%s': expected high, normal, low or 0..2.", ph);
            return gw_send_error(c, &e, 0);
        }
    }
    long long deadline_ms = 0;
    int64_t end = c->t_body_ms + (int64_t)cfg->request_timeout_s * 1000;
    const char *dh = MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND, "X-Inferno-Deadline-Ms");
    if (dh) {
        char *x;
        long long v = strtoll(dh, &x, 10);
        if (x == dh || *x || v < 1 || v > 86400000LL) {
            gw_apierr_set(&e, 400, "invalid_request_error", "X-Inferno-Deadline-Ms", NULL,
                          "Invalid X-Inferno-Deadline-Ms header '%s': milliseconds from now, 1..86400000.", dh);
            return gw_send_error(c, &e, 0);
        }
        deadline_ms = epoch_ms() + v;
        /* the worker ends it at the deadline (finish_reason length); the gateway waits a little longer */
        if (c->t_body_ms + v + 2000 < end) end = c->t_body_ms + v + 2000;
    }
    gw_model_state st;
    if (!gw_workers_model(s->d.workers, p->model, &st)) {
        gw_apierr_set(&e, 404, "invalid_request_error", "model", "model_not_found",
                      "The model `%s` does not exist or you do not have access to it.", p->model);
        return gw_send_error(c, &e, 0);
    }
    if (c->route == 1 && !st.chat_template) {
        gw_apierr_set(&e, 400, "invalid_request_error", "messages", "no_chat_template",
                      "The model `%s` has no chat template, so /v1/chat/completions cannot format messages for it; "
                      "use /v1/completions with a prompt.", p->model);
        return gw_send_error(c, &e, 0);
    }
    int n_legs = p->n * (int)(c->route ? 1 : p->n_prompts);
    if (st.ready == 0) {
        gw_metrics_rejected(s->d.metrics, "no_worker");
        gw_apierr_set(&e, 503, "server_error", NULL, "no_ready_worker",
                      "No worker serving `%s` is ready; retry later.", p->model);
        return gw_send_error(c, &e, 2);
    }
    long long queued = st.waiting + __atomic_load_n(&s->not_started, __ATOMIC_RELAXED);
    if (cfg->max_queued > 0 && queued + n_legs > cfg->max_queued) {
        gw_metrics_rejected(s->d.metrics, "queue");
        double rate = st.requests_per_s > 0.1 ? st.requests_per_s : 0.1;
        double ra = ceil((double)(queued + n_legs - cfg->max_queued) / rate);
        gw_apierr_set(&e, 429, "rate_limit_error", NULL, "queue_full",
                      "The queue for `%s` is full (%lld requests waiting, bound %d); retry after %.0f s.", p->model,
                      queued, cfg->max_queued, ra < 1 ? 1 : ra > 60 ? 60 : ra);
        return gw_send_error(c, &e, ra < 1 ? 1 : ra > 60 ? 60 : ra);
    }
    double ra = 0;
    int adm = gw_auth_admit(s->d.auth, c->key_slot, n_legs, (double)c->t_body_ms / 1000.0, &ra);
    if (adm != GW_ADMIT_OK) {
        gw_metrics_rejected(s->d.metrics, adm == GW_ADMIT_RATE ? "rate" : "streams");
        if (adm == GW_ADMIT_RATE)
            gw_apierr_set(&e, 429, "requests", NULL, "rate_limit_exceeded",
                          "Rate limit reached for requests: %g per second for this API key.", cfg->rate_limit_rps);
        else
            gw_apierr_set(&e, 429, "requests", NULL, "rate_limit_exceeded",
                          "Too many requests in progress for this API key (at most %d).", cfg->max_streams_per_key);
        return gw_send_error(c, &e, ra);
    }
    c->admitted = n_legs;
    /* the fan-out */
    random_hex(c->base, 12);
    snprintf(c->resp_id, sizeof c->resp_id, "%s-%s", c->route ? "chatcmpl" : "cmpl", c->base);
    c->resp = (gw_resp){.api = c->route ? GW_API_CHAT : GW_API_COMPLETIONS, .id = c->resp_id,
                        .created = (long long)time(NULL), .model = p->model, .include_usage = p->include_usage,
                        .logprobs = p->logprobs};
    if (!(c->legs = calloc((size_t)n_legs, sizeof *c->legs))) {
        gw_apierr_set(&e, 500, "server_error", NULL, NULL, "out of memory");
        return gw_send_error(c, &e, 0);
    }
    c->n_legs = n_legs;
    char topic[300];
    snprintf(topic, sizeof topic, "%s.%s", gwc_topic_prefix(cfg, p->model), PRIO_TOPIC[c->priority]);
    char **keys = calloc((size_t)n_legs, sizeof *keys);
    int rc = keys ? 0 : INF_ENOMEM;
    inf_error ierr = {0};
    for (int i = 0; i < n_legs && !rc; i++) {
        gw_leg *L = &c->legs[i];
        snprintf(L->id, sizeof L->id, "gw%s-%d", c->base, i);
        if (!(keys[i] = malloc(strlen(cfg->out_prefix) + strlen(L->id) + 1))) {
            rc = INF_ENOMEM;
            break;
        }
        sprintf(keys[i], "%s%s", cfg->out_prefix, L->id);
        inf_request r;
        /* choice index i: prompt i / n, sample i % n */
        rc = gw_params_to_request(p, (size_t)(i / p->n), L->id, deadline_ms, &r, &ierr);
        if (!rc && p->has_seed && p->n > 1) r.seed = p->seed + i % p->n;
        uint8_t *buf = NULL;
        size_t len = 0;
        if (!rc) rc = inf_avro_encode(s->d.reg, &r, INF_AVRO_FRAMING_SINGLE_OBJECT, 0, &buf, &len, &ierr);
        inf_request_free(&r);
        if (!rc) rc = gw_kafka_produce(s->d.kafka, topic, L->id, buf, len, &ierr);
        free(buf);
        if (!rc) ns_add(c, 1);
        else L->started = L->final = 1; /* never sent: nothing to cancel or wait for */
    }
    if (!rc) {
        c->phase = PH_WAIT;
        c->start_deadline_ms = c->t_body_ms + cfg->start_timeout_ms;
        c->end_deadline_ms = end;
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        c->fd = ci ? ci->connect_fd : -1;
        gw_metrics_in_flight(s->d.metrics, 1);
        pthread_mutex_lock(&s->mu);
        rc = gw_sub_create(s->d.rd, (const char *const *)keys, n_legs, &OPS, c, &c->sub);
        pthread_mutex_unlock(&s->mu);
    }
    for (int i = 0; keys && i < n_legs; i++) free(keys[i]);
    free(keys);
    if (rc) {
        /* some legs may be on the queue already: cancel them */
        for (int i = 0; i < n_legs; i++)
            if (!c->legs[i].final) {
                c->legs[i].final = 1;
                ns_add(c, -1);
                gw_rd_cancel(s->d.rd, c->legs[i].id);
            }
        if (c->phase == PH_WAIT) gw_metrics_in_flight(s->d.metrics, -1);
        c->phase = PH_BODY;
        gw_apierr_set(&e, rc == INF_EFULL ? 503 : 500, "server_error", NULL, NULL, "%s",
                      ierr.msg[0] ? ierr.msg : "out of memory");
        return gw_send_error(c, &e, rc == INF_EFULL ? 1 : 0);
    }
    gw_log(s, 3, "%s %s: %d leg(s) on %s", c->route_name, c->resp_id, n_legs, topic);
    gw_sub_lock(c->sub);
    enum MHD_Result mr = decide(c);
    gw_sub_unlock(c->sub);
    return mr;
}

void gw_call_completed(gw_call *c, enum MHD_RequestTerminationCode toe) {
    gw_server *s = c->srv;
    pthread_mutex_lock(&s->mu);
    gw_sub *sub = c->sub;
    c->sub = NULL;
    pthread_mutex_unlock(&s->mu);
    if (sub) {
        gw_sub_lock(sub);
        cancel_unfinished(c); /* the client left (or the stream was cut) before the end */
        gw_sub_unlock(sub);
        gw_sub_release(sub);
        gw_metrics_in_flight(s->d.metrics, -1);
        if (stream_mode(c) && c->t_first_byte_ms)
            gw_metrics_stream_done(s->d.metrics, (double)(gw_mono_ms() - c->t_first_byte_ms) / 1000.0);
        if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
            gw_log(s, 3, "%s %s: ended early (code %d)", c->route_name, c->resp_id, (int)toe);
    }
    if (c->admitted) gw_auth_release(s->d.auth, c->key_slot, c->admitted);
    c->admitted = 0;
    if (c->status == 0 && c->route >= 0 && c->phase != PH_BODY) /* no answer: the client went away */
        gw_metrics_request(s->d.metrics, c->route_name, 499, c->priority);
}
