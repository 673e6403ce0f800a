/* metrics.c - see metrics.h. */
#include "metrics.h"

#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WM_MAX_BUCKETS 32

/* vLLM's buckets (vllm/engine/metrics.py), in seconds. */
static const double B_TTFT[] = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
                                1.0,   2.5,   5.0,  7.5,  10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0};
static const double B_ITL[] = {0.01, 0.025, 0.05, 0.075, 0.1,  0.15, 0.2,  0.3,  0.4, 0.5,
                               0.75, 1.0,   2.5,  5.0,   7.5,  10.0, 20.0, 40.0, 80.0};
static const double B_LATENCY[] = {0.3,  0.5,  0.8,  1.0,  1.5,  2.0,   2.5,   5.0,   10.0,  15.0, 20.0,
                                   30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};
/* Redis round trips are sub-millisecond on a LAN: finer buckets than vLLM's. */
static const double B_PUBLISH[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                   0.1,    0.25,  0.5,    1.0,   2.5,  5.0,   10.0};

typedef struct whist {
    double b[WM_MAX_BUCKETS];
    int nb;
    uint64_t c[WM_MAX_BUCKETS + 1]; /* per bucket (not cumulative); c[nb] = above the last bound */
    double sum;
    uint64_t n;
} whist;

enum { H_QUEUE, H_TTFT, H_ITL, H_E2E, H_PROMPT, H_GEN, H_PUBLISH, H_N };

struct wmetrics {
    pthread_mutex_t mu;
    char *worker_id, *version, *model;
    char *topics[KIN_MAX_TOPICS];
    int n_topics;
    int stall_ms;
    int64_t created_mono_ms;
    double start_time_s;       /* epoch seconds */
    int64_t last_loop_ms;      /* 0: the loop has not started */
    int have_gauges;
    wm_gauges g;
    char backend[32], device[128];
    uint64_t outcomes[KIN_MAX_TOPICS][WM_N_OUTCOMES];
    whist h[H_N];
};

static const char *OUTCOME_NAMES[WM_N_OUTCOMES] = {"done", "error", "abort", "deadline", "dlq"};
static const char *PRIORITY_NAMES[KIN_MAX_TOPICS] = {"high", "normal", "low"};

int64_t wm_mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void hist_init(whist *h, const double *b, int nb) {
    memset(h, 0, sizeof *h);
    if (nb > WM_MAX_BUCKETS) nb = WM_MAX_BUCKETS;
    memcpy(h->b, b, (size_t)nb * sizeof *b);
    h->nb = nb;
}

/* vLLM's build_1_2_5_buckets: 1, 2, 5, 10, 20, 50, ... up to max. */
static void hist_init_125(whist *h, int max) {
    double b[WM_MAX_BUCKETS];
    int n = 0;
    for (double m = 1; n < WM_MAX_BUCKETS; m *= 10) {
        static const double steps[] = {1, 2, 5};
        int stop = 0;
        for (int i = 0; i < 3 && n < WM_MAX_BUCKETS; i++) {
            if (steps[i] * m > max) { stop = 1; break; }
            b[n++] = steps[i] * m;
        }
        if (stop) break;
    }
    hist_init(h, b, n);
}

static void hist_observe(whist *h, double v) {
    int i = 0;
    while (i < h->nb && v > h->b[i]) i++;
    h->c[i]++;
    h->sum += v;
    h->n++;
}

static char *dup_or_empty(const char *s) { return strdup(s ? s : ""); }

int wm_create(wmetrics **out, const wm_info *info, inf_error *err) {
    *out = NULL;
    wmetrics *m = calloc(1, sizeof *m);
    if (!m) return inf_error_set(err, INF_ENOMEM, "out of memory");
    pthread_mutex_init(&m->mu, NULL);
    m->worker_id = dup_or_empty(info->worker_id);
    m->version = dup_or_empty(info->version);
    m->model = dup_or_empty(info->model);
    int bad = !m->worker_id || !m->version || !m->model;
    m->n_topics = info->n_topics > KIN_MAX_TOPICS ? KIN_MAX_TOPICS : info->n_topics;
    for (int i = 0; i < m->n_topics; i++) bad |= !(m->topics[i] = dup_or_empty(info->topics[i]));
    if (bad) {
        wm_free(m);
        return inf_error_set(err, INF_ENOMEM, "out of memory");
    }
    m->stall_ms = info->stall_ms > 0 ? info->stall_ms : 30000;
    m->created_mono_ms = wm_mono_ms();
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    m->start_time_s = (double)ts.tv_sec + ts.tv_nsec / 1e9;
    m->g.state = "starting";
    hist_init(&m->h[H_QUEUE], B_LATENCY, (int)(sizeof B_LATENCY / sizeof *B_LATENCY));
    hist_init(&m->h[H_TTFT], B_TTFT, (int)(sizeof B_TTFT / sizeof *B_TTFT));
    hist_init(&m->h[H_ITL], B_ITL, (int)(sizeof B_ITL / sizeof *B_ITL));
    hist_init(&m->h[H_E2E], B_LATENCY, (int)(sizeof B_LATENCY / sizeof *B_LATENCY));
    hist_init_125(&m->h[H_PROMPT], info->max_model_len > 0 ? info->max_model_len : 8192);
    hist_init_125(&m->h[H_GEN], info->max_model_len > 0 ? info->max_model_len : 8192);
    hist_init(&m->h[H_PUBLISH], B_PUBLISH, (int)(sizeof B_PUBLISH / sizeof *B_PUBLISH));
    *out = m;
    return 0;
}

void wm_free(wmetrics *m) {
    if (!m) return;
    free(m->worker_id);
    free(m->version);
    free(m->model);
    for (int i = 0; i < KIN_MAX_TOPICS; i++) free(m->topics[i]);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

void wm_loop_tick(wmetrics *m, int64_t mono_ms) {
    pthread_mutex_lock(&m->mu);
    m->last_loop_ms = mono_ms;
    pthread_mutex_unlock(&m->mu);
}

void wm_update(wmetrics *m, const wm_gauges *g) {
    pthread_mutex_lock(&m->mu);
    m->g = *g;
    /* the strings may not outlive the call: keep copies */
    snprintf(m->backend, sizeof m->backend, "%s", g->backend ? g->backend : "");
    snprintf(m->device, sizeof m->device, "%s", g->device ? g->device : "");
    m->g.backend = m->g.device = NULL;
    m->have_gauges = 1;
    pthread_mutex_unlock(&m->mu);
}

void wm_request_final(wmetrics *m, int topic_index, wm_outcome o) {
    if (topic_index < 0 || topic_index >= KIN_MAX_TOPICS || (int)o < 0 || o >= WM_N_OUTCOMES) return;
    pthread_mutex_lock(&m->mu);
    m->outcomes[topic_index][o]++;
    pthread_mutex_unlock(&m->mu);
}

void wm_observe_finished(wmetrics *m, double queue_ms, double ttft_ms, double e2e_ms, int prompt_tokens,
                         int generation_tokens) {
    pthread_mutex_lock(&m->mu);
    if (queue_ms >= 0) hist_observe(&m->h[H_QUEUE], queue_ms / 1000.0);
    if (ttft_ms >= 0) hist_observe(&m->h[H_TTFT], ttft_ms / 1000.0);
    if (e2e_ms >= 0) hist_observe(&m->h[H_E2E], e2e_ms / 1000.0);
    if (prompt_tokens >= 0) hist_observe(&m->h[H_PROMPT], prompt_tokens);
    if (generation_tokens >= 0) hist_observe(&m->h[H_GEN], generation_tokens);
    pthread_mutex_unlock(&m->mu);
}

void wm_observe_itl(wmetrics *m, double itl_ms, int n_tokens) {
    if (itl_ms < 0 || n_tokens <= 0) return;
    pthread_mutex_lock(&m->mu);
    /* several tokens in one event share the gap (vLLM does the same) */
    for (int i = 0; i < n_tokens; i++) hist_observe(&m->h[H_ITL], itl_ms / 1000.0 / n_tokens);
    pthread_mutex_unlock(&m->mu);
}

void wm_observe_publish(wmetrics *m, double ms) {
    if (ms < 0) return;
    pthread_mutex_lock(&m->mu);
    hist_observe(&m->h[H_PUBLISH], ms / 1000.0);
    pthread_mutex_unlock(&m->mu);
}

/* ---- rendering ------------------------------------------------------------ */

/* A label value, escaped as the text format requires (\\, \", \n). */
static void put_label(FILE *f, const char *v) {
    fputc('"', f);
    for (const char *p = v ? v : ""; *p; p++) {
        if (*p == '\\') fputs("\\\\", f);
        else if (*p == '"') fputs("\\\"", f);
        else if (*p == '\n') fputs("\\n", f);
        else fputc(*p, f);
    }
    fputc('"', f);
}

static void head(FILE *f, const char *name, const char *type, const char *help) {
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* %.15g: short for round numbers (0.1, not 0.10000000000000001), integers without a fraction. */
static void gauge(FILE *f, const char *name, const char *help, double v) {
    head(f, name, "gauge", help);
    fprintf(f, "%s %.15g\n", name, v);
}

static void counter(FILE *f, const char *name, const char *help, double v) {
    head(f, name, "counter", help);
    fprintf(f, "%s %.15g\n", name, v);
}

static void histogram(FILE *f, const char *name, const char *help, const whist *h) {
    head(f, name, "histogram", help);
    uint64_t cum = 0;
    for (int i = 0; i < h->nb; i++) {
        cum += h->c[i];
        fprintf(f, "%s_bucket{le=\"%.15g\"} %llu\n", name, h->b[i], (unsigned long long)cum);
    }
    cum += h->c[h->nb];
    fprintf(f, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
    fprintf(f, "%s_sum %.15g\n", name, h->sum);
    fprintf(f, "%s_count %llu\n", name, (unsigned long long)h->n);
}

static const char *topic_name(const wmetrics *m, int idx) {
    return idx >= 0 && idx < m->n_topics ? m->topics[idx] : "?";
}

/* Process memory, read at scrape time on the HTTP thread (nothing the loop
 * owns): resident set from /proc/self/statm, and glibc's own view of the
 * heap, so a dashboard can tell memory the program holds (in use) from
 * memory malloc keeps after free (fragmentation, arena retention). */
typedef struct wm_mem {
    double rss_bytes, heap_inuse_bytes, heap_free_bytes; /* < 0: unknown */
} wm_mem;

static void read_mem(wm_mem *mem) {
    mem->rss_bytes = mem->heap_inuse_bytes = mem->heap_free_bytes = -1;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        unsigned long size = 0, resident = 0;
        if (fscanf(f, "%lu %lu", &size, &resident) == 2) mem->rss_bytes = (double)resident * (double)sysconf(_SC_PAGESIZE);
        fclose(f);
    }
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
    /* mallinfo2 walks every arena's free lists under its lock: fine once a
     * scrape, never called on the loop thread. */
    struct mallinfo2 mi = mallinfo2();
    mem->heap_inuse_bytes = (double)(mi.uordblks + mi.hblkhd);
    mem->heap_free_bytes = (double)mi.fordblks;
#endif
}

static void render_locked(wmetrics *m, int64_t now, const wm_mem *mem, FILE *f) {
    const wm_gauges *g = &m->g;
    const engine_stats *e = &g->engine;
    head(f, "inferno_info", "gauge", "Worker identity (value 1).");
    fputs("inferno_info{worker_id=", f);
    put_label(f, m->worker_id);
    fputs(",version=", f);
    put_label(f, m->version);
    fputs(",model=", f);
    put_label(f, m->model);
    fputs(",backend=", f);
    put_label(f, m->backend);
    fputs(",device=", f);
    put_label(f, m->device);
    fputs("} 1\n", f);
    gauge(f, "process_start_time_seconds", "Start time of the process since the Unix epoch in seconds.",
          m->start_time_s);
    if (mem->rss_bytes >= 0) gauge(f, "process_resident_memory_bytes", "Resident memory size in bytes.", mem->rss_bytes);
    if (mem->heap_inuse_bytes >= 0) {
        gauge(f, "inferno_heap_inuse_bytes",
              "Bytes allocated with malloc and not freed (glibc mallinfo2 uordblks + hblkhd; the KV cache included).",
              mem->heap_inuse_bytes);
        gauge(f, "inferno_heap_free_bytes",
              "Bytes freed but kept by malloc for reuse (glibc mallinfo2 fordblks): fragmentation, not a leak.",
              mem->heap_free_bytes);
    }

    static const char *STATES[] = {"starting", "ready", "draining", "stopped"};
    head(f, "inferno_worker_state", "gauge", "1 for the worker's current state.");
    for (int i = 0; i < 4; i++)
        fprintf(f, "inferno_worker_state{state=\"%s\"} %d\n", STATES[i], g->state && !strcmp(g->state, STATES[i]));
    gauge(f, "inferno_loop_age_seconds", "Seconds since the worker loop last went round (-1: not started).",
          m->last_loop_ms ? (double)(now - m->last_loop_ms) / 1000.0 : -1);

    head(f, "inferno_requests_total", "counter", "Requests that reached a final state, by source priority and outcome.");
    for (int t = 0; t < m->n_topics; t++)
        for (int o = 0; o < WM_N_OUTCOMES; o++)
            fprintf(f, "inferno_requests_total{priority=\"%s\",outcome=\"%s\"} %llu\n", PRIORITY_NAMES[t],
                    OUTCOME_NAMES[o], (unsigned long long)m->outcomes[t][o]);
    gauge(f, "inferno_requests_in_flight", "Requests taken from Kafka and not yet finished.", g->in_flight);
    gauge(f, "inferno_num_requests_running", "Sequences in the running batch.", e->n_running);
    gauge(f, "inferno_num_requests_waiting", "Requests waiting for the engine (queued, preempted, or not yet admitted).",
          e->n_waiting + g->pending);
    gauge(f, "inferno_kv_cache_usage_perc", "KV-cache usage: 1 means 100 percent.",
          e->kv_blocks_total > 0 ? (double)e->kv_blocks_used / e->kv_blocks_total : 0);
    gauge(f, "inferno_kv_cache_blocks_used", "KV-cache blocks in use.", e->kv_blocks_used);
    gauge(f, "inferno_kv_cache_blocks_total", "KV-cache blocks in the pool.", e->kv_blocks_total);
    gauge(f, "inferno_prefix_cache_hit_rate", "Prompt tokens served from the prefix cache / prompt tokens looked up.",
          e->prefix_hit_rate);
    counter(f, "inferno_prefix_cache_queries_total", "Prompt tokens looked up in the prefix cache.",
            (double)e->prefix_query_tokens);
    counter(f, "inferno_prefix_cache_hits_total", "Prompt tokens served from the prefix cache.",
            (double)e->prefix_hit_tokens);
    counter(f, "inferno_num_preemptions_total", "Sequences preempted (KV blocks freed, recomputed later).",
            (double)e->n_preemptions);
    counter(f, "inferno_prompt_tokens_total", "Prompt tokens computed (prefill, recomputation included).",
            (double)e->prompt_tokens_computed);
    counter(f, "inferno_generation_tokens_total", "Tokens generated.", (double)e->generated_tokens);
    counter(f, "inferno_engine_steps_total", "Engine iterations (forward passes).", (double)e->n_steps);
    head(f, "inferno_sampled_tokens_total", "counter",
         "Tokens sampled, by where: on the device (logits kept there) or on the host (logits copied).");
    fprintf(f, "inferno_sampled_tokens_total{where=\"device\"} %llu\n",
            (unsigned long long)e->device_sampled_rows);
    fprintf(f, "inferno_sampled_tokens_total{where=\"host\"} %llu\n",
            (unsigned long long)e->host_sampled_rows);

    histogram(f, "inferno_request_queue_time_seconds", "Arrival to first scheduling.", &m->h[H_QUEUE]);
    histogram(f, "inferno_time_to_first_token_seconds", "Arrival to first token.", &m->h[H_TTFT]);
    histogram(f, "inferno_inter_token_latency_seconds", "Time between two tokens of a request.", &m->h[H_ITL]);
    histogram(f, "inferno_e2e_request_latency_seconds", "Arrival to final event.", &m->h[H_E2E]);
    histogram(f, "inferno_request_prompt_tokens", "Prompt tokens per finished request.", &m->h[H_PROMPT]);
    histogram(f, "inferno_request_generation_tokens", "Generated tokens per finished request.", &m->h[H_GEN]);

    const kin_stats_t *k = &g->kafka;
    gauge(f, "inferno_kafka_partitions_assigned", "Request partitions assigned to this worker.", k->assigned);
    gauge(f, "inferno_kafka_partitions_paused", "Assigned partitions paused (in-flight cap).", k->paused);
    head(f, "inferno_kafka_consumer_lag", "gauge", "Messages behind the high watermark, per partition (where known).");
    for (int i = 0; i < k->n_parts && i < KIN_STATS_MAX_PARTS; i++) {
        if (k->parts[i].lag < 0) continue;
        fputs("inferno_kafka_consumer_lag{topic=", f);
        put_label(f, topic_name(m, k->parts[i].topic_index));
        fprintf(f, ",partition=\"%d\"} %lld\n", (int)k->parts[i].partition, (long long)k->parts[i].lag);
    }
    head(f, "inferno_kafka_partition_paused", "gauge", "1 while the partition is paused.");
    for (int i = 0; i < k->n_parts && i < KIN_STATS_MAX_PARTS; i++) {
        fputs("inferno_kafka_partition_paused{topic=", f);
        put_label(f, topic_name(m, k->parts[i].topic_index));
        fprintf(f, ",partition=\"%d\"} %d\n", (int)k->parts[i].partition, k->parts[i].paused ? 1 : 0);
    }
    gauge(f, "inferno_kafka_brokers_up", "0 when librdkafka last reported all brokers down.", m->have_gauges ? k->brokers_up : 0);
    counter(f, "inferno_kafka_messages_received_total", "Request messages received.", (double)k->received);
    counter(f, "inferno_kafka_commits_total", "Offset commits.", (double)k->commits);
    counter(f, "inferno_kafka_commit_errors_total", "Failed offset commits.", (double)k->commit_errors);
    counter(f, "inferno_kafka_rebalances_total", "Consumer group rebalances.", (double)k->rebalances);
    counter(f, "inferno_kafka_dlq_messages_total", "Messages produced to the dead-letter topic.", (double)k->dlq_sent);
    /* Every message handed to the DLQ ends delivered (whole or truncated) or
     * given up; pending ones hold their partition's commit back. */
    counter(f, "inferno_dlq_sent_total", "Messages handed to the dead-letter producer.", (double)k->dlq_sent);
    counter(f, "inferno_dlq_failed_total", "Failed delivery attempts of dead-letter copies (each retry counts).",
            (double)k->dlq_failed);
    counter(f, "inferno_dlq_given_up_total",
            "Dead-letter copies given up after permanent errors (the message was committed without one).",
            (double)k->dlq_given_up);
    counter(f, "inferno_dlq_truncated_total", "Dead-letter copies delivered with their value cut to fit.",
            (double)k->dlq_truncated);
    gauge(f, "inferno_dlq_pending", "Dead-letter copies neither delivered nor given up yet.", k->dlq_pending);

    const rds_stats_t *r = &g->redis;
    gauge(f, "inferno_redis_connected", "1 while the Redis output connection is up.", r->connected ? 1 : 0);
    gauge(f, "inferno_redis_pending_entries", "Stream entries queued, not yet confirmed by Redis.",
          (double)r->pending_entries);
    gauge(f, "inferno_redis_pending_bytes", "Bytes of stream entries queued, not yet confirmed.", (double)r->pending_bytes);
    counter(f, "inferno_redis_entries_written_total", "Stream entries confirmed by Redis.", (double)r->entries_written);
    counter(f, "inferno_redis_write_errors_total", "Failed Redis writes (batches and rejected entries).",
            (double)r->write_errors);
    counter(f, "inferno_redis_reconnects_total", "Redis reconnections.", (double)r->reconnects);
    counter(f, "inferno_redis_permission_errors_total",
            "Redis commands refused for want of a permission or credentials (NOPERM, NOAUTH, WRONGPASS).",
            (double)r->refusals);
    gauge(f, "inferno_redis_batch_latency_seconds", "Round trip of the last pipelined batch.", r->last_publish_ms / 1000.0);
    histogram(f, "inferno_redis_publish_latency_seconds", "Final entry queued to confirmed by Redis.", &m->h[H_PUBLISH]);

    gauge(f, "inferno_heartbeat_age_seconds", "Seconds since the last successful heartbeat (since start if none).",
          (double)(now - (g->last_heartbeat_ms ? g->last_heartbeat_ms : m->created_mono_ms)) / 1000.0);
    counter(f, "inferno_heartbeat_failures_total", "Heartbeats Redis did not take.", (double)g->heartbeat_failures);
}

int wm_render(wmetrics *m, int64_t now_mono_ms, char **out, size_t *len, inf_error *err) {
    *out = NULL;
    *len = 0;
    FILE *f = open_memstream(out, len);
    if (!f) return inf_error_set(err, INF_ENOMEM, "out of memory");
    wm_mem mem;
    read_mem(&mem); /* outside the lock: the loop thread never waits for it */
    pthread_mutex_lock(&m->mu);
    render_locked(m, now_mono_ms, &mem, f);
    pthread_mutex_unlock(&m->mu);
    if (fclose(f) != 0) {
        free(*out);
        *out = NULL;
        return inf_error_set(err, INF_ENOMEM, "out of memory");
    }
    return 0;
}

int wm_healthz(wmetrics *m, int64_t now_mono_ms, char *body, size_t cap) {
    pthread_mutex_lock(&m->mu);
    int started = m->last_loop_ms != 0;
    int64_t age = started ? now_mono_ms - m->last_loop_ms : -1;
    int ok = !started || age <= m->stall_ms;
    /* Requests waiting while nothing moves (no admission, no engine step):
     * reported here, and /readyz turns not-ready; the loop itself is alive,
     * so liveness stays 200 (a restart would not help, e.g. Redis away). */
    int adm = m->have_gauges && m->g.progress_age_ms > m->stall_ms;
    snprintf(body, cap,
             "{\"status\":\"%s\",\"state\":\"%s\",\"loop_age_ms\":%lld,\"stall_ms\":%d,"
             "\"progress_stalled\":%s,\"progress_age_ms\":%lld}\n",
             ok ? (adm ? "degraded" : "ok") : "stalled", m->g.state ? m->g.state : "starting", (long long)age,
             m->stall_ms, adm ? "true" : "false", (long long)(m->have_gauges ? m->g.progress_age_ms : -1));
    pthread_mutex_unlock(&m->mu);
    return ok ? 200 : 503;
}

int wm_readyz(wmetrics *m, int64_t now_mono_ms, char *body, size_t cap) {
    pthread_mutex_lock(&m->mu);
    const wm_gauges *g = &m->g;
    int stalled = m->last_loop_ms && now_mono_ms - m->last_loop_ms > m->stall_ms;
    int adm = m->have_gauges && g->progress_age_ms > m->stall_ms;
    int state_ready = g->state && !strcmp(g->state, "ready");
    int redis_ok = g->heartbeat_ok && (g->redis.connected || g->redis.pending_entries == 0);
    int ready = m->have_gauges && g->model_loaded && state_ready && g->kafka.assigned > 0 && redis_ok && !stalled &&
                !adm;
    snprintf(body, cap,
             "{\"ready\":%s,\"state\":\"%s\",\"model_loaded\":%s,\"kafka_partitions_assigned\":%d,"
             "\"redis_reachable\":%s,\"draining\":%s,\"loop_stalled\":%s,\"progress_stalled\":%s}\n",
             ready ? "true" : "false", g->state ? g->state : "starting", g->model_loaded ? "true" : "false",
             g->kafka.assigned, redis_ok ? "true" : "false",
             g->state && !strcmp(g->state, "draining") ? "true" : "false", stalled ? "true" : "false",
             adm ? "true" : "false");
    pthread_mutex_unlock(&m->mu);
    return ready ? 200 : 503;
}
