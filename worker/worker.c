/* worker.c - worker lifecycle and the main loop (see worker.h). The path of
 * a single request is in worker_job.c. */
#include "worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "worker_internal.h"
#include "gguf.h"

#include "tools/pull.h"

#define POLL_IDLE_MS 50       /* Kafka wait when the engine is idle */
#define POLL_BATCH 32         /* messages taken per loop round at most */
#define ACK_BATCH 256
#define ABORT_ACK_WAIT_MS 5000 /* after aborting: how long Redis gets to confirm */
#define CLOSE_TIMEOUT_MS 10000
#define CLOSE_AFTER_GIVEUP_MS 4000 /* Kafka close once confirmations were given up on: it is likely stuck too */
#define METRICS_REFRESH_MS 100 /* how stale /metrics and /readyz may be */
#define REFUSAL_LOG_MS 10000   /* Redis permission refusals: one log line per interval at most */

int64_t wk_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t wk_mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
#define mono_ms wk_mono_ms

double wk_mono_ms_f(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

/* Redis refused commands for want of a permission or credentials (an ACL
 * without a command, key pattern or channel the worker needs, a wrong
 * password). Every such command is retried by the thread that sent it, so
 * nothing else would say why answers, cancels or heartbeats stopped: a
 * refusal of another command than the last one logged is logged at once,
 * more of the same at most once per REFUSAL_LOG_MS while it goes on. */
static void report_refusals(struct worker *w, const rds_stats_t *st) {
    if (st->refusals == w->refusals_logged) return;
    char cmd[sizeof w->refusal_cmd] = "";
    const char *p = strncmp(st->last_refusal, "redis ", 6) == 0 ? st->last_refusal + 6 : st->last_refusal;
    snprintf(cmd, sizeof cmd, "%.*s", (int)strcspn(p, " :"), p);
    int64_t now = mono_ms();
    if (now < w->next_refusal_log_ms && strcmp(cmd, w->refusal_cmd) == 0) return;
    snprintf(w->refusal_cmd, sizeof w->refusal_cmd, "%s", cmd);
    WLOG_E(&w->log, NULL,
           "Redis refused %lld command(s) for want of a permission or credentials; the last: %s "
           "(docs/operations.md \"Redis ACL\" lists what the worker's user needs)",
           st->refusals - w->refusals_logged, st->last_refusal);
    w->refusals_logged = st->refusals;
    w->next_refusal_log_ms = now + REFUSAL_LOG_MS;
}

/* Snapshot for the HTTP thread (metrics.h): the loop thread is the only one
 * that talks to the engine and the clients. Also keeps w->st for heartbeats. */
static void refresh_metrics(struct worker *w) {
    wm_gauges g; /* about 4 KiB (Kafka partitions) */
    memset(&g, 0, sizeof g);
    if (w->eng) engine_stats_get(w->eng, &w->st);
    g.engine = w->st;
    g.state = w->status;
    g.backend = w->eng ? engine_backend_name(w->eng) : w->cfg->backend;
    g.device = w->eng ? engine_device(w->eng) : "";
    g.model_loaded = w->eng != NULL;
    g.pending = w->n_pending;
    g.progress_age_ms = w->n_pending > 0 ? mono_ms() - w->last_progress_ms : -1;
    if (w->kin) {
        kin_stats(w->kin, &g.kafka);
        g.in_flight = g.kafka.inflight;
    }
    if (w->rds) {
        rds_stats(w->rds, &g.redis);
        report_refusals(w, &g.redis);
    }
    g.last_heartbeat_ms = w->last_hb_ok_ms;
    g.heartbeat_failures = w->hb_failures;
    g.heartbeat_ok = w->hb_ok;
    wm_update(w->metrics, &g);
    w->next_metrics_ms = mono_ms() + METRICS_REFRESH_MS;
}

static void sleep_ms(int ms) {
    struct timespec d = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&d, NULL);
}

/* Result of the last posted heartbeat, when the checker thread has one. */
static void heartbeat_result(struct worker *w) {
    int ok = 0;
    char msg[INF_ERROR_MSG_MAX];
    if (!rds_heartbeat_poll(w->rds, &ok, msg, sizeof msg)) return;
    if (!ok) {
        w->hb_failures++;
        w->hb_ok = 0;
        WLOG_W(&w->log, NULL, "heartbeat failed: %s", msg);
    } else {
        w->last_hb_ok_ms = mono_ms();
        w->hb_ok = 1;
    }
    refresh_metrics(w); /* readiness follows the heartbeat's outcome at once */
}

/* Posts a heartbeat to the checker thread (never blocks on Redis); with
 * wait_ms > 0 waits that long for its outcome (start-up only). */
static void heartbeat(struct worker *w, int wait_ms) {
    refresh_metrics(w);
    const engine_stats st = w->st;
    /* tokens/s over the time since the previous heartbeat */
    int64_t now = mono_ms();
    double tps = w->hb_prev_ms && now > w->hb_prev_ms
                     ? (double)(st.generated_tokens - w->hb_prev_tokens) * 1000.0 / (double)(now - w->hb_prev_ms)
                     : 0;
    w->hb_prev_ms = now;
    w->hb_prev_tokens = st.generated_tokens;
    rds_worker_info info = {
        .chat_template = w->has_chat_template,
        .id = w->cfg->worker_id,
        .host = w->host,
        .model = w->cfg->model_name,
        .backend = w->eng ? engine_backend_name(w->eng) : w->cfg->backend,
        .device = w->eng ? engine_device(w->eng) : "",
        .status = w->status,
        .version = WORKER_VERSION,
        .topics = w->cfg->topics_csv,
        .pid = (int)getpid(),
        .max_num_seqs = w->eng ? engine_get_config(w->eng)->max_num_seqs : w->cfg->max_num_seqs,
        .running = st.n_running,
        .waiting = st.n_waiting + w->n_pending,
        .kv_used = st.kv_blocks_used,
        .kv_total = st.kv_blocks_total,
        .tokens_per_s = tps,
        .done = w->n_done,
        .failed = w->n_failed,
        .started_at_ms = w->started_ms,
    };
    rds_heartbeat_post(w->rds, &info, w->cfg->heartbeat_ttl_s);
    for (int64_t until = mono_ms() + wait_ms; mono_ms() < until;) {
        heartbeat_result(w);
        if (w->hb_ok || w->hb_failures) break;
        sleep_ms(5);
    }
}

/* The checker thread has a result: cut the loop's Kafka wait short. The
 * consumer may not exist yet (start-up heartbeat): then nobody waits. */
static void wake_loop(void *arg) {
    struct worker *w = arg;
    kin *k = atomic_load(&w->kin_ready);
    if (k) kin_wake(k);
}

static int register_schemas(struct worker *w, inf_error *err) {
    if (!*w->cfg->schemas) return 0;
    char *s = strdup(w->cfg->schemas), *save = NULL;
    if (!s) return inf_error_set(err, INF_ENOMEM, "out of memory");
    int rc = 0;
    for (char *t = strtok_r(s, ",", &save); t && !rc; t = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(t, '=');
        *eq = '\0';
        uint64_t fp = 0;
        rc = inf_avro_registry_add_file(w->reg, eq + 1, (int32_t)atol(t), &fp, err);
        if (rc) inf_error_wrap(err, rc, "--schemas %s", eq + 1);
        else WLOG_I(&w->log, NULL, "writer schema %s registered (id %s, fingerprint %llu)", eq + 1, t,
                    (unsigned long long)fp);
    }
    free(s);
    return rc;
}

static void pull_log(void *arg, const char *msg) { WLOG_I((const wlog *)arg, NULL, "model: %s", msg); }

/* The local file to load: --model itself, or the download of a URL model
 * into the cache folder (reused when complete); checked against
 * --model-sha256 when set. Blocks for the whole download. */
static int model_file(worker *w, char *path, size_t cap, inf_error *err) {
    const wcfg *cfg = w->cfg;
    if (pull_is_url(cfg->model)) {
        pull_opts o = pull_opts_default();
        o.url = cfg->model;
        o.sha256 = cfg->model_sha256;
        o.dir = cfg->model_cache_dir;
        o.hf_token = cfg->hf_token;
        o.user_agent = "inferno-worker/" WORKER_VERSION;
        o.log = pull_log;
        o.log_arg = &w->log;
        pull_result r;
        int rc = pull_model(&o, &r, err);
        if (rc) return inf_error_wrap(err, rc, "--model %s", cfg->model);
        WLOG_I(&w->log, NULL, "model: %s %s (%llu bytes%s%s)", r.reused ? "using cached" : "downloaded", r.path,
               (unsigned long long)r.bytes, r.sha256[0] ? ", sha256 " : "", r.sha256);
        snprintf(path, cap, "%s", r.path);
        return 0;
    }
    if (*cfg->model_sha256) {
        char have[PULL_SHA256_HEX];
        int rc = pull_sha256_file(cfg->model, have, NULL, err);
        if (rc) return rc;
        if (strcasecmp(have, cfg->model_sha256) != 0)
            return inf_error_set(err, INF_EFORMAT, "--model %s: sha256 mismatch: expected %s, got %s", cfg->model,
                                 cfg->model_sha256, have);
    }
    snprintf(path, cap, "%s", cfg->model);
    return 0;
}

int worker_create(worker **out, const wcfg *cfg, inf_error *err) {
    *out = NULL;
    worker *w = calloc(1, sizeof *w);
    if (!w) return inf_error_set(err, INF_ENOMEM, "out of memory");
    w->cfg = cfg;
    w->log.level = cfg->log_level;
    w->log.json = wlog_json_for(cfg->log_format);
    w->log.worker_id = cfg->worker_id;
    w->status = "starting";
    w->started_ms = wk_now_ms();
    if (gethostname(w->host, sizeof w->host - 1) != 0) strcpy(w->host, "localhost");

    /* Metrics and health first: a bad --metrics-addr fails before the model
     * loads, and /healthz answers while it loads. */
    const char *model_base = strrchr(cfg->model, '/');
    wm_info mi = {.worker_id = cfg->worker_id, .version = WORKER_VERSION,
                  .model = model_base ? model_base + 1 : cfg->model, .n_topics = cfg->n_topics,
                  .max_model_len = cfg->max_model_len > 0 ? cfg->max_model_len : 131072,
                  .stall_ms = cfg->health_stall_s * 1000};
    for (int i = 0; i < cfg->n_topics && i < KIN_MAX_TOPICS; i++) mi.topics[i] = cfg->topics[i];
    int rc = wm_create(&w->metrics, &mi, err);
    if (!rc && !whttp_addr_disabled(cfg->metrics_addr)) {
        rc = whttp_start(&w->http, cfg->metrics_addr, w->metrics, err);
        if (!rc) WLOG_I(&w->log, NULL, "metrics and health on http://%s (port %d): /metrics /healthz /readyz",
                        cfg->metrics_addr, whttp_port(w->http));
    }
    if (!rc) rc = inf_avro_registry_create(&w->reg, err);
    if (!rc) {
        /* One limit for a request and any of its strings: the Kafka side
         * fetches and dead-letters by the same figure (kin_config). */
        inf_avro_limits lim = inf_avro_registry_limits(w->reg);
        lim.max_message_bytes = lim.max_string_bytes = (size_t)cfg->max_message_bytes;
        inf_avro_registry_set_limits(w->reg, &lim);
    }
    if (!rc) rc = register_schemas(w, err);

    if (!rc) {
        rds_config rc_cfg = rds_config_default();
        rc_cfg.url = cfg->redis_url;
        rc_cfg.out_prefix = cfg->out_prefix;
        rc_cfg.stream_maxlen = cfg->stream_maxlen;
        rc_cfg.expire_s = cfg->stream_expire_s;
        rc_cfg.flush_ms = cfg->flush_ms;
        rc_cfg.flush_tokens = cfg->flush_tokens;
        rc_cfg.max_pending_bytes = (size_t)cfg->max_pending_mb << 20;
        rc_cfg.cancel_channel = cfg->cancel_channel;
        rc_cfg.cancel_key_prefix = cfg->cancel_key_prefix;
        /* Queries run on the loop thread: keep a dead Redis from stalling it. */
        rc_cfg.connect_timeout_ms = 1000;
        rc_cfg.notify = wake_loop;
        rc_cfg.notify_arg = w;
        rc = rds_create(&w->rds, &rc_cfg, err);
        if (rc) inf_error_wrap(err, rc, "Redis");
    }
    if (!rc) heartbeat(w, 3000); /* status "starting" while the model loads */

    if (!rc) {
        engine_config ec = engine_config_default();
        ec.backend = cfg->backend;
        ec.n_threads = cfg->threads;
        ec.cpu_isa = cfg->cpu_isa;
        ec.kv_cache_bytes = (size_t)cfg->kv_cache_mb << 20;
        ec.gpu_memory_fraction = cfg->gpu_memory_fraction; /* engine_open: kv_cache_bytes wins */
        ec.max_num_seqs = cfg->max_num_seqs;
        ec.max_num_batched_tokens = cfg->max_batched_tokens;
        ec.max_model_len = cfg->max_model_len;
        ec.aging_ms = cfg->aging_ms;
        ec.enable_prefix_caching = cfg->prefix_caching;
        /* The KV cache is the worker's largest allocation and bounded by
         * --kv-cache-mb: resident from the start, so RSS does not climb for
         * thousands of requests and a host short of memory fails now. */
        ec.kv_prefault = 1;
        char path[PULL_PATH_MAX];
        rc = model_file(w, path, sizeof path, err);
        if (!rc) rc = engine_open(&w->eng, &ec, path, err);
        if (!rc) {
            /* gateways refuse /v1/chat/completions for a model without a template */
            gguf_file *gf = NULL;
            if (gguf_open(&gf, path, NULL) == 0) {
                w->has_chat_template = gguf_find_kv(gf, "tokenizer.chat_template") != NULL;
                gguf_close(gf);
            }
        }
    }
    if (!rc) {
        kin_config kc = kin_config_default();
        kc.brokers = cfg->brokers;
        kc.group = cfg->group;
        for (int i = 0; i < cfg->n_topics; i++) kc.topics[i] = cfg->topics[i];
        kc.n_topics = cfg->n_topics;
        kc.dlq_topic = cfg->dlq_topic;
        kc.group_instance_id = *cfg->group_instance_id ? cfg->group_instance_id : NULL;
        kc.max_inflight = cfg->max_inflight;
        kc.urgent_reserve = cfg->urgent_reserve;
        kc.props = (const char *const *)cfg->props;
        kc.n_props = cfg->n_props;
        kc.client_id = cfg->worker_id;
        kc.max_message_bytes = cfg->max_message_bytes;
        rc = kin_create(&w->kin, &kc, err);
        if (rc) inf_error_wrap(err, rc, "Kafka");
        else atomic_store(&w->kin_ready, w->kin);
    }
    if (rc) {
        worker_free(w);
        return rc;
    }
    const engine_config *ec = engine_get_config(w->eng);
    WLOG_I(&w->log, NULL,
           "worker %s: model %s on %s (max_num_seqs %d, max_model_len %d), brokers %s, group %s, topics %s, "
           "redis %s, max in flight %d (urgent reserve %d)",
           cfg->worker_id, cfg->model, engine_device(w->eng), ec->max_num_seqs, ec->max_model_len, cfg->brokers,
           cfg->group, cfg->topics_csv, strchr(cfg->redis_url, '@') ? "(with credentials)" : cfg->redis_url,
           cfg->max_inflight, cfg->urgent_reserve);
    *out = w;
    return 0;
}

void worker_free(worker *w) {
    if (!w) return;
    atomic_store(&w->kin_ready, NULL);
    rds_free(w->rds); /* before kin_free: its checker thread may wake the consumer */
    w->rds = NULL;
    whttp_stop(w->http); /* before wm_free: the HTTP thread reads w->metrics */
    if (w->kin) wk_release_all(w);
    for (int i = 0; i < w->n_held; i++) kin_msg_free(w->kin, w->held[i]);
    free(w->held);
    wk_backlog_free(w);
    kin_free(w->kin);
    engine_close(w->eng);
    inf_avro_registry_free(w->reg);
    wm_free(w->metrics);
    free(w);
}

static void service_acks(struct worker *w) {
    void *ctxs[ACK_BATCH];
    int n;
    while ((n = rds_poll_acks(w->rds, ctxs, ACK_BATCH)) > 0)
        for (int i = 0; i < n; i++) wk_on_redis_ack(w, ctxs[i]);
    while ((n = rds_poll_refused(w->rds, ctxs, ACK_BATCH)) > 0)
        for (int i = 0; i < n; i++) wk_on_redis_refused(w, ctxs[i]);
    kin_msg *msgs[ACK_BATCH];
    while ((n = kin_poll_dlq_acks(w->kin, msgs, ACK_BATCH)) > 0)
        for (int i = 0; i < n; i++) wk_on_dlq_ack(w, msgs[i]);
}

static void service_checks(struct worker *w) {
    rds_check_result res[16];
    int n;
    while ((n = rds_poll_checks(w->rds, res, 16)) > 0)
        for (int i = 0; i < n; i++) wk_on_check(w, &res[i]);
}

static void service_cancels(struct worker *w) {
    char ids[64][RDS_ID_MAX + 1];
    int n;
    while ((n = rds_poll_cancels(w->rds, ids, 64)) > 0)
        for (int i = 0; i < n; i++) wk_on_cancel(w, ids[i]);
}

/* Takes up to POLL_BATCH messages; waits up to wait_ms for the first. */
static int poll_kafka(struct worker *w, int wait_ms, inf_error *err) {
    for (int i = 0; i < POLL_BATCH; i++) {
        kin_msg *m = NULL;
        int rc = kin_poll(w->kin, i == 0 ? wait_ms : 0, &m, err);
        if (rc) return rc;
        if (!m) break;
        if (w->draining) {
            /* Not ours to serve any more: held unfinished (it still counts
             * against max_inflight, which stops the consumer from handing out
             * more) and released uncommitted at exit, for another worker. */
            if (w->n_held == w->cap_held) {
                int nc = w->cap_held ? 2 * w->cap_held : 16;
                kin_msg **nh = realloc(w->held, (size_t)nc * sizeof *nh);
                if (!nh) {
                    kin_msg_free(w->kin, m);
                    continue;
                }
                w->held = nh;
                w->cap_held = nc;
            }
            w->held[w->n_held++] = m;
            continue;
        }
        wk_on_message(w, m);
    }
    return 0;
}

int worker_run(worker *w, const volatile sig_atomic_t *signals, inf_error *err) {
    const wcfg *cfg = w->cfg;
    int rc = 0;
    int64_t next_hb = mono_ms() + cfg->heartbeat_ms, drain_deadline = 0, ack_deadline = 0;
    int gave_up = 0; /* stopped waiting for confirmations: Redis or Kafka is stuck */
    w->status = "ready";
    heartbeat(w, 0);
    WLOG_I(&w->log, NULL, "ready");
    for (;;) {
        int64_t now = mono_ms();
        wm_loop_tick(w->metrics, now);
        if (now >= w->next_metrics_ms) refresh_metrics(w);
        int sig = *signals;
        if (sig >= 1 && !w->draining) {
            w->draining = 1;
            w->status = "draining";
            drain_deadline = now + (int64_t)cfg->drain_timeout_s * 1000;
            WLOG_I(&w->log, NULL, "draining: %d request(s) in flight, up to %d s", wk_busy_jobs(w),
                   cfg->drain_timeout_s);
            heartbeat(w, 0);
            next_hb = now + cfg->heartbeat_ms;
        }
        if (w->draining && !w->aborting && (sig >= 2 || now >= drain_deadline)) {
            w->aborting = 1;
            ack_deadline = now + ABORT_ACK_WAIT_MS;
            WLOG_W(&w->log, NULL, "%s: aborting %d request(s) still in flight",
                   sig >= 2 ? "second signal" : "drain timeout", engine_n_inflight(w->eng));
            wk_abort_running(w);
        }
        int full = wk_flush_backlog(w);
        service_cancels(w);
        service_checks(w);
        service_acks(w);
        heartbeat_result(w);
        wk_retry_dlq(w);
        if (!w->draining && !full) wk_admit_pending(w);
        if (now >= next_hb) {
            heartbeat(w, 0);
            next_hb = now + cfg->heartbeat_ms;
        }
        if (w->draining) {
            /* Done when every served request's final entry is confirmed. */
            if (wk_busy_jobs(w) == 0 && !engine_has_work(w->eng) && !w->backlog_head) break;
            if (w->aborting && now >= ack_deadline) {
                kin_stats_t ks;
                kin_stats(w->kin, &ks);
                WLOG_W(&w->log, NULL, "giving up waiting for confirmations: %d request(s) left uncommitted "
                       "(%d DLQ copies unconfirmed, Redis %s; they will be redelivered)", wk_busy_jobs(w),
                       ks.dlq_pending, rds_connected(w->rds) ? "connected" : "unreachable");
                gave_up = 1;
                break;
            }
        }
        int busy = engine_has_work(w->eng) && !full;
        if (busy) {
            const engine_event *ev = NULL;
            int n = 0;
            rc = engine_step(w->eng, &ev, &n, err);
            if (rc) {
                WLOG_E(&w->log, NULL, "engine failed: %s", err ? err->msg : "");
                break;
            }
            if (n > 0) w->last_progress_ms = now;
            wk_on_events(w, ev, n);
        }
        /* Keep polling even at the cap or while draining: kin_poll then
         * returns nothing new but serves rebalances and commits. */
        rc = poll_kafka(w, busy ? 0 : (full ? 10 : POLL_IDLE_MS), err);
        if (rc) {
            WLOG_E(&w->log, NULL, "Kafka consumer failed: %s", err ? err->msg : "");
            break;
        }
        if (!busy && full) sleep_ms(5);
    }
    /* Shutdown: unserved messages go back uncommitted, the rest commits. */
    w->status = "stopped";
    refresh_metrics(w);
    wk_release_all(w);
    for (int i = 0; i < w->n_held; i++) kin_msg_free(w->kin, w->held[i]);
    w->n_held = 0;
    inf_error e2 = {0};
    if (kin_close(w->kin, gave_up ? CLOSE_AFTER_GIVEUP_MS : CLOSE_TIMEOUT_MS, &e2) != 0) WLOG_W(&w->log, NULL, "Kafka close: %s", e2.msg);
    if (rds_unregister(w->rds, cfg->worker_id, &e2) != 0) WLOG_W(&w->log, NULL, "unregister: %s", e2.msg);
    WLOG_I(&w->log, NULL, "stopped: %lld done, %lld failed", w->n_done, w->n_failed);
    return rc;
}
