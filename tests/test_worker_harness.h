/* test_worker_harness.h - shared helpers of the worker end-to-end suites
 * (tests/test_worker_*.c): an in-process Kafka mock cluster (so a test can
 * take its broker down and up), bin/inferno-worker subprocesses, a Kafka
 * producer of inferno requests, and readers of the Redis reply streams.
 * Header-only (static functions): the Makefile links only tests/test_*.c.
 *
 * Every process started here is remembered by PID and stopped by PID
 * (SIGTERM with a bounded wait, then SIGKILL) in wh_teardown, also after a
 * failed assertion. Every wait is bounded. */
#ifndef INF_TEST_WORKER_HARNESS_H
#define INF_TEST_WORKER_HARNESS_H

#include <CUnit/CUnit.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "avro_codec.h"
#include "testutil.h"
#include "tu_redis.h"

/* Each suite uses a subset of these helpers. */
#pragma GCC diagnostic ignored "-Wunused-function"

#define WH_MAX_WORKERS 4
#define WH_TOPIC_H "inferno.requests.high"
#define WH_TOPIC_N "inferno.requests.normal"
#define WH_TOPIC_L "inferno.requests.low"
#define WH_TOPIC_DLQ "inferno.requests.dlq"

typedef struct wh_worker {
    pid_t pid;
    char id[64];
    char log[512];
} wh_worker;

typedef struct wh {
    rd_kafka_t *mock_rk;
    rd_kafka_mock_cluster_t *mc;
    char brokers[256];
    tu_redis *redis;
    char model[512];
    rd_kafka_t *prod;
    inf_avro_registry *reg;
    wh_worker workers[WH_MAX_WORKERS];
    int n_workers;
    /* where workers connect, when not straight to the mock broker and the
     * redis-server (a tu_proxy in between); "" = direct */
    char worker_brokers[256];
    char worker_redis[128];
} wh;

static long long wh_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long long wh_epoch_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void wh_sleep_ms(int ms) {
    struct timespec d = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&d, &d) != 0 && errno == EINTR) {}
}

/* The tiny random model all worker suites share (written once per run). */
static const char *wh_model(void) {
    const char *p = tu_tmpfile("worker-e2e-tiny.gguf");
    if (access(p, R_OK) == 0) return p;
    char *argv[] = {(char *)tu_bin("inferno-model"), "random", (char *)p, "--preset", "tiny", "--type", "f32",
                    "--seed", "1", NULL};
    char *out = NULL;
    int rc = tu_run_capture(argv, &out);
    free(out);
    return rc == 0 ? p : NULL;
}

/* A slower random model (about 600 tokens/s on one core, context 4096) for
 * tests that need a request to be still generating a moment later
 * (cancel, deadline, drain, priority). */
static const char *wh_model_slow(void) {
    const char *p = tu_tmpfile("worker-e2e-slow.gguf");
    if (access(p, R_OK) == 0) return p;
    char *argv[] = {(char *)tu_bin("inferno-model"), "random", (char *)p, "--preset", "tiny", "--type", "f32",
                    "--seed", "2", "--layers", "4", "--embd", "256", "--heads", "4", "--kv-heads", "4",
                    "--ff", "512", "--ctx", "4096", NULL};
    char *out = NULL;
    int rc = tu_run_capture(argv, &out);
    free(out);
    return rc == 0 ? p : NULL;
}

/* ---- Kafka: in-process mock cluster, producer ------------------------------ */

/* (Re)creates the test's own producer. After the mock broker was down, a
 * fresh one is used: librdkafka 2.0.2's producer was seen to stay stuck
 * against the revived mock broker (the worker's own clients recover). */
static int wh_producer_new(wh *h) {
    char errstr[512];
    if (h->prod) {
        rd_kafka_flush(h->prod, 2000);
        rd_kafka_destroy(h->prod);
    }
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", h->brokers, errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "linger.ms", "1", errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "message.timeout.ms", "60000", errstr, sizeof errstr);
    /* room for requests over the worker's limit (worker_bigmsg) */
    rd_kafka_conf_set(conf, "message.max.bytes", "16777216", errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "log_level", "2", errstr, sizeof errstr);
    h->prod = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    return h->prod ? 0 : -1;
}

static int wh_kafka_start(wh *h, int partitions) {
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", "", errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "log_level", "2", errstr, sizeof errstr);
    h->mock_rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!h->mock_rk) return -1;
    h->mc = rd_kafka_mock_cluster_new(h->mock_rk, 1);
    if (!h->mc) return -1;
    const char *topics[] = {WH_TOPIC_H, WH_TOPIC_N, WH_TOPIC_L, WH_TOPIC_DLQ};
    for (int i = 0; i < 4; i++)
        if (rd_kafka_mock_topic_create(h->mc, topics[i], i == 3 ? 1 : partitions, 1)) return -1;
    snprintf(h->brokers, sizeof h->brokers, "%s", rd_kafka_mock_cluster_bootstraps(h->mc));

    if (wh_producer_new(h)) return -1;
    inf_error err = {0};
    return inf_avro_registry_create(&h->reg, &err);
}

/* Produces value (copied) with key to topic (partition by key hash). */
static int wh_produce_raw(wh *h, const char *topic, const char *key, const void *val, size_t len) {
    rd_kafka_resp_err_t e = rd_kafka_producev(h->prod, RD_KAFKA_V_TOPIC(topic),
                                              RD_KAFKA_V_KEY(key, key ? strlen(key) : 0),
                                              RD_KAFKA_V_VALUE((void *)val, len),
                                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    rd_kafka_poll(h->prod, 0);
    return e ? -1 : 0;
}

/* Waits until everything produced so far was delivered (bounded). */
static int wh_flush(wh *h) {
    rd_kafka_resp_err_t e = rd_kafka_flush(h->prod, 30000);
    if (e) fprintf(stderr, "\n    producer flush: %s (%d still queued)\n", rd_kafka_err2str(e), rd_kafka_outq_len(h->prod));
    return e ? -1 : 0;
}

/* A request with greedy sampling; callers adjust fields before wh_send. */
static void wh_req(inf_request *r, const char *id, const char *prompt, int max_tokens) {
    inf_request_init(r);
    snprintf(r->request_id, sizeof r->request_id, "%s", id);
    r->prompt = strdup(prompt);
    r->max_tokens = max_tokens;
    r->temperature = 0;
}

/* Encodes r (single-object framing) and produces it; frees r. */
static int wh_send(wh *h, const char *topic, inf_request *r) {
    uint8_t *buf = NULL;
    size_t len = 0;
    inf_error err = {0};
    int rc = inf_avro_encode(h->reg, r, INF_AVRO_FRAMING_SINGLE_OBJECT, 0, &buf, &len, &err);
    if (!rc) rc = wh_produce_raw(h, topic, r->request_id, buf, len);
    free(buf);
    inf_request_free(r);
    return rc;
}

static int wh_send_simple(wh *h, const char *topic, const char *id, const char *prompt, int max_tokens) {
    inf_request r;
    wh_req(&r, id, prompt, max_tokens);
    return wh_send(h, topic, &r);
}

/* ---- workers ------------------------------------------------------------------ */

/* Starts bin/inferno-worker with the harness's brokers/redis/model plus the
 * extra flags (NULL-terminated); stderr goes to a log file. Returns the
 * index or -1. */
static int wh_worker_spawn(wh *h, int slot, const char *id, const char *const *extra, int append_log) {
    wh_worker *w = &h->workers[slot];
    snprintf(w->id, sizeof w->id, "%s", id);
    snprintf(w->log, sizeof w->log, "%s", tu_tmpfile(id));
    strncat(w->log, ".log", sizeof w->log - strlen(w->log) - 1);
    char *argv[64];
    int a = 0;
    argv[a++] = (char *)tu_bin("inferno-worker");
    argv[a++] = "--model";
    argv[a++] = h->model;
    argv[a++] = "--brokers";
    argv[a++] = h->worker_brokers[0] ? h->worker_brokers : h->brokers;
    argv[a++] = "--redis";
    argv[a++] = h->worker_redis[0] ? h->worker_redis : (char *)tu_redis_url(h->redis);
    argv[a++] = "--worker-id";
    argv[a++] = w->id;
    argv[a++] = "--threads";
    argv[a++] = "1";
    /* fast group membership and fetches against the mock cluster */
    argv[a++] = "-X";
    argv[a++] = "session.timeout.ms=6000";
    argv[a++] = "-X";
    argv[a++] = "heartbeat.interval.ms=500";
    argv[a++] = "-X";
    argv[a++] = "fetch.wait.max.ms=10";
    /* several workers run at once: no fixed metrics port (a test passes
     * --metrics-addr to get one); plain logs, which the suites grep */
    argv[a++] = "--metrics-addr";
    argv[a++] = "off";
    argv[a++] = "--log-format";
    argv[a++] = "plain";
    for (int i = 0; extra && extra[i] && a < 62; i++) argv[a++] = (char *)extra[i];
    argv[a] = NULL;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        /* a test binary killed by a timeout takes its workers with it */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(127);
        int fd = open(w->log, O_WRONLY | O_CREAT | (append_log ? O_APPEND : O_TRUNC), 0644);
        if (fd >= 0) {
            dup2(fd, 2);
            dup2(fd, 1);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    w->pid = pid;
    return slot;
}

static int wh_worker_start(wh *h, const char *id, const char *const *extra) {
    if (h->n_workers == WH_MAX_WORKERS) return -1;
    int i = wh_worker_spawn(h, h->n_workers, id, extra, 0);
    if (i >= 0) h->n_workers++;
    return i;
}

/* Starts worker i again (same id, same slot; its log is appended to), e.g.
 * after wh_worker_signal(h, i, SIGKILL). */
static int wh_worker_respawn(wh *h, int i, const char *const *extra) {
    if (i < 0 || i >= h->n_workers || h->workers[i].pid > 0) return -1;
    char id[64];
    snprintf(id, sizeof id, "%s", h->workers[i].id);
    return wh_worker_spawn(h, i, id, extra, 1);
}

/* Waits up to ms for the worker to exit; its exit status, or -1 (signal,
 * or still running: then it is SIGKILLed by PID). */
static int wh_wait_exit(pid_t pid, int ms) {
    long long end = wh_now_ms() + ms;
    int st;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        if (r < 0 && errno != EINTR) return -1;
        if (wh_now_ms() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        wh_sleep_ms(20);
    }
}

/* Sends sig to worker i; for SIGKILL also reaps it. */
static void wh_worker_signal(wh *h, int i, int sig) {
    if (h->workers[i].pid <= 0) return;
    kill(h->workers[i].pid, sig);
    if (sig == SIGKILL) {
        waitpid(h->workers[i].pid, NULL, 0);
        h->workers[i].pid = 0;
    }
}

/* SIGTERM, bounded wait; returns the exit status (-1: killed). */
static int wh_worker_stop(wh *h, int i, int ms) {
    if (h->workers[i].pid <= 0) return -1;
    kill(h->workers[i].pid, SIGTERM);
    int rc = wh_wait_exit(h->workers[i].pid, ms);
    h->workers[i].pid = 0;
    return rc;
}

static void wh_print_log(const wh *h, int i, int last_lines) {
    char *text = tu_read_file(h->workers[i].log, NULL);
    if (!text) return;
    int n = 0;
    char *p = text + strlen(text);
    while (p > text && n <= last_lines)
        if (*--p == '\n') n++;
    fprintf(stderr, "\n---- %s (last lines) ----\n%s\n----\n", h->workers[i].id, p);
    free(text);
}

/* Count of lines of worker i's log containing needle. */
static int wh_log_count(const wh *h, int i, const char *needle) {
    char *text = tu_read_file(h->workers[i].log, NULL);
    int n = 0;
    for (char *p = text; p && (p = strstr(p, needle)); p += strlen(needle)) n++;
    free(text);
    return n;
}

/* GET path from 127.0.0.1:port (the worker's --metrics-addr): the HTTP
 * status, the whole response into buf (NUL-terminated), -1 on failure. */
static int wh_http_get(int port, const char *path, char *buf, size_t cap) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    char req[256];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: x\r\n\r\n", path);
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        return -1;
    }
    size_t len = 0;
    ssize_t k;
    while (len + 1 < cap && (k = read(fd, buf + len, cap - 1 - len)) > 0) len += (size_t)k;
    buf[len] = '\0';
    close(fd);
    int status = -1;
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1) return -1;
    return status;
}

/* Value of the unlabelled sample `name` in a Prometheus text body; -1 when
 * absent. */
static double wh_metric(const char *body, const char *name) {
    size_t n = strlen(name);
    for (const char *p = body; p && *p; p = strchr(p, '\n')) {
        if (*p == '\n') p++;
        if (strncmp(p, name, n) == 0 && p[n] == ' ') return atof(p + n + 1);
    }
    return -1;
}

/* ---- Redis reading -------------------------------------------------------------- */

typedef struct wh_stream {
    int n_entries, n_start, n_token, n_done, n_error;
    int max_attempt;
    char finish[32];
    char code[64];
    char *text;           /* concatenated token texts (malloc'd) */
    size_t text_len;
    int32_t ids[4096];
    int n_ids;
    int completion_tokens;
    char metadata[512];
} wh_stream;

static const char *wh_field(const redisReply *kv, const char *name, size_t *len) {
    for (size_t i = 0; i + 1 < kv->elements; i += 2)
        if (kv->element[i]->str && !strcmp(kv->element[i]->str, name)) {
            if (len) *len = kv->element[i + 1]->len;
            return kv->element[i + 1]->str;
        }
    return NULL;
}

/* Reads the whole stream key into *s (XRANGE). 0, or -1 if Redis failed. */
static int wh_read_stream(wh *h, const char *key, wh_stream *s) {
    memset(s, 0, sizeof *s);
    redisReply *r = tu_redis_cmd(h->redis, "XRANGE %s - +", key);
    if (!r) return -1;
    if (r->type != REDIS_REPLY_ARRAY) { freeReplyObject(r); return -1; }
    for (size_t e = 0; e < r->elements; e++) {
        redisReply *kv = r->element[e]->element[1];
        const char *ev = wh_field(kv, "event", NULL);
        s->n_entries++;
        if (!ev) continue;
        if (!strcmp(ev, "start")) {
            s->n_start++;
            const char *a = wh_field(kv, "attempt", NULL);
            if (a && atoi(a) > s->max_attempt) s->max_attempt = atoi(a);
        } else if (!strcmp(ev, "token")) {
            s->n_token++;
            size_t tl = 0;
            const char *t = wh_field(kv, "text", &tl), *ids = wh_field(kv, "ids", NULL);
            const char *seq = wh_field(kv, "seq", NULL);
            /* a resent entry (seq below what we have) is skipped, as subscribers do */
            if (seq && atoi(seq) < s->n_ids) continue;
            if (t && tl) {
                char *nt = realloc(s->text, s->text_len + tl + 1);
                if (nt) {
                    memcpy(nt + s->text_len, t, tl);
                    s->text = nt;
                    s->text_len += tl;
                    nt[s->text_len] = '\0';
                }
            }
            for (const char *p = ids; p && *p;) {
                char *end;
                long v = strtol(p, &end, 10);
                if (end == p) break;
                if (s->n_ids < 4096) s->ids[s->n_ids++] = (int32_t)v;
                p = end;
            }
        } else if (!strcmp(ev, "done")) {
            s->n_done++;
            const char *f = wh_field(kv, "finish_reason", NULL), *ct = wh_field(kv, "completion_tokens", NULL);
            const char *md = wh_field(kv, "metadata", NULL);
            snprintf(s->finish, sizeof s->finish, "%s", f ? f : "");
            s->completion_tokens = ct ? atoi(ct) : -1;
            snprintf(s->metadata, sizeof s->metadata, "%s", md ? md : "");
        } else if (!strcmp(ev, "error")) {
            s->n_error++;
            const char *c = wh_field(kv, "code", NULL);
            snprintf(s->code, sizeof s->code, "%s", c ? c : "");
        }
    }
    freeReplyObject(r);
    return 0;
}

static void wh_stream_free(wh_stream *s) {
    free(s->text);
    s->text = NULL;
}

static void wh_key(char *out, size_t cap, const char *id) { snprintf(out, cap, "inferno:out:%s", id); }

/* Waits up to ms for the request's stream to hold a final entry; fills *s.
 * Returns 0 when found. */
static int wh_wait_final(wh *h, const char *id, int ms, wh_stream *s) {
    char key[300];
    wh_key(key, sizeof key, id);
    long long end = wh_now_ms() + ms;
    for (;;) {
        if (wh_read_stream(h, key, s) == 0 && (s->n_done + s->n_error) > 0) return 0;
        if (wh_now_ms() > end) return -1;
        wh_stream_free(s);
        wh_sleep_ms(20);
    }
}

/* Waits up to ms until the stream has at least one token entry. */
static int wh_wait_tokens(wh *h, const char *id, int ms) {
    char key[300];
    wh_key(key, sizeof key, id);
    long long end = wh_now_ms() + ms;
    for (;;) {
        wh_stream s;
        int ok = wh_read_stream(h, key, &s) == 0 && s.n_token > 0;
        wh_stream_free(&s);
        if (ok) return 0;
        if (wh_now_ms() > end) return -1;
        wh_sleep_ms(10);
    }
}

/* Waits up to ms for the heartbeat hash of id to show status (e.g. "ready"). */
static int wh_wait_status(wh *h, const char *id, const char *status, int ms) {
    long long end = wh_now_ms() + ms;
    for (;;) {
        redisReply *r = tu_redis_cmd(h->redis, "HGET inferno:worker:%s status", id);
        int ok = r && r->type == REDIS_REPLY_STRING && !strcmp(r->str, status);
        if (r) freeReplyObject(r);
        if (ok) return 0;
        if (wh_now_ms() > end) return -1;
        wh_sleep_ms(50);
    }
}

/* Integer reply of a command (e.g. EXISTS), or -1. */
static long long wh_int(wh *h, const char *fmt, const char *arg) {
    redisReply *r = tu_redis_cmd(h->redis, fmt, arg);
    long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    if (r) freeReplyObject(r);
    return v;
}

/* Messages on the three request topics (P partitions each) that the group
 * `group` has not committed past: sum over partitions of high watermark -
 * committed offset. -1 if Kafka could not be asked. */
static long long wh_uncommitted(wh *h, const char *group, int partitions) {
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", h->brokers, errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "log_level", "2", errstr, sizeof errstr);
    rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (!c) return -1;
    const char *topics[] = {WH_TOPIC_H, WH_TOPIC_N, WH_TOPIC_L};
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(3 * partitions);
    for (int t = 0; t < 3; t++)
        for (int p = 0; p < partitions; p++) rd_kafka_topic_partition_list_add(l, topics[t], p);
    long long missing = -1;
    if (rd_kafka_committed(c, l, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        missing = 0;
        for (int i = 0; i < l->cnt; i++) {
            int64_t lo = 0, hi = 0;
            if (rd_kafka_query_watermark_offsets(c, l->elems[i].topic, l->elems[i].partition, &lo, &hi, 5000)) {
                missing = -1;
                break;
            }
            int64_t done = l->elems[i].offset < 0 ? 0 : l->elems[i].offset;
            if (hi > done) missing += hi - done;
        }
    }
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(c);
    return missing;
}

/* ---- setup / teardown ------------------------------------------------------------- */

/* In a test: skip (with the reason) unless the suite's environment came up. */
#define WH_NEED_ENV(ok)                                                                             \
    do {                                                                                            \
        if (!(ok)) {                                                                                \
            tu_skip("worker environment unavailable");                                              \
            return;                                                                                 \
        }                                                                                           \
    } while (0)

/* Starts a worker and waits (60 s) for its heartbeat to say ready; on
 * failure prints its log. 0 when ready. */
static int wh_worker_start_ready(wh *h, const char *id, const char *const *extra) {
    if (wh_worker_start(h, id, extra) < 0 || wh_wait_status(h, id, "ready", 60000) != 0) {
        if (h->n_workers) wh_print_log(h, h->n_workers - 1, 40);
        return -1;
    }
    return 0;
}

/* Starts Redis and the mock cluster and writes the model. 0 or -1 (with a
 * SKIP printed when a prerequisite is missing). */
static int wh_setup(wh *h, int partitions, int slow_model) {
    memset(h, 0, sizeof *h);
    if (access(tu_bin("inferno-worker"), X_OK) != 0) {
        tu_skip("%s is not built", tu_bin("inferno-worker"));
        return -1;
    }
    if (!tu_redis_available()) {
        tu_skip("redis-server unavailable");
        return -1;
    }
    const char *m = slow_model ? wh_model_slow() : wh_model();
    if (!m) {
        CU_FAIL("could not write the tiny random model");
        return -1;
    }
    snprintf(h->model, sizeof h->model, "%s", m);
    h->redis = tu_redis_start(NULL);
    if (!h->redis) {
        CU_FAIL("redis-server did not start");
        return -1;
    }
    if (wh_kafka_start(h, partitions) != 0) {
        CU_FAIL("mock Kafka cluster did not start");
        return -1;
    }
    return 0;
}

static void wh_teardown(wh *h) {
    for (int i = 0; i < h->n_workers; i++)
        if (h->workers[i].pid > 0) {
            kill(h->workers[i].pid, SIGTERM);
            wh_wait_exit(h->workers[i].pid, 15000);
            h->workers[i].pid = 0;
        }
    if (h->prod) {
        rd_kafka_flush(h->prod, 2000);
        rd_kafka_destroy(h->prod);
    }
    if (h->mc) rd_kafka_mock_cluster_destroy(h->mc);
    if (h->mock_rk) rd_kafka_destroy(h->mock_rk);
    inf_avro_registry_free(h->reg);
    tu_redis_free(h->redis);
    memset(h, 0, sizeof *h);
}

#endif
