/* test_worker_hostile.c - suite "worker_hostile": requests a hostile (or
 * careless) producer can send, against one bin/inferno-worker with its own
 * redis-server and mock Kafka cluster. Each test reproduces a finding that
 * stalled the worker or wrote into other people's keys before the reply
 * stream rules (docs/redis.md "Reply stream rules"): a reply key of the
 * wrong type, keys outside the reply prefix (other applications' keys, the
 * worker's own heartbeat keys), another request's stream, a foreign stream
 * whose 500th entry has no event field (an endless XRANGE loop before), an
 * undecodable message whose id is only in its key, priority INT_MIN, and
 * admission stuck on Redis (readiness must say so, SIGTERM must work). After
 * each hostile request a plain one must still be answered: serving goes on. */
#include <limits.h>

#include "test_worker_harness.h"

static wh H;
static int have_env;
static int metrics_port;

#define WID "hostile-w1"
#define NEED_ENV() WH_NEED_ENV(have_env)

static int suite_init(void) {
    if (wh_setup(&H, 1, 0) != 0) return 0;
    metrics_port = tu_free_port();
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", metrics_port);
    const char *extra[] = {"--metrics-addr", addr, "--health-stall-s", "2", "--heartbeat-ms", "300",
                           "--drain-timeout-s", "3", NULL};
    /* the harness passes --metrics-addr off first; the later flag wins */
    if (wh_worker_start_ready(&H, WID, extra) != 0) return 0;
    have_env = 1;
    return 0;
}

static int suite_clean(void) {
    if (have_env && CU_get_number_of_failures() > 0) wh_print_log(&H, 0, 40);
    wh_teardown(&H);
    have_env = 0;
    return 0;
}

/* GET path on the worker's metrics port: HTTP status, body into buf. */
static int http_get(const char *path, char *buf, size_t cap) { return wh_http_get(metrics_port, path, buf, cap); }

/* Sends request id with reply_stream rs (NULL: default) on topic. */
static int send_rs(const char *topic, const char *id, const char *rs) {
    inf_request r;
    wh_req(&r, id, "once upon a time", 4);
    if (rs) r.reply_stream = strdup(rs);
    int rc = wh_send(&H, topic, &r);
    return rc ? rc : wh_flush(&H);
}

/* The request's default stream ends with exactly one error entry of code. */
static void expect_error(const char *id, const char *code) {
    wh_stream s;
    CU_ASSERT_EQUAL_FATAL(wh_wait_final(&H, id, 30000, &s), 0);
    CU_ASSERT_EQUAL(s.n_error, 1);
    CU_ASSERT_EQUAL(s.n_done, 0);
    CU_ASSERT_EQUAL(s.n_start, 0);
    CU_ASSERT_STRING_EQUAL(s.code, code);
    if (strcmp(s.code, code)) fprintf(stderr, "\n    %s: code '%s', want '%s'\n", id, s.code, code);
    wh_stream_free(&s);
}

/* A plain request is answered (the worker did not stall). */
static void expect_serving(const char *id) {
    CU_ASSERT_EQUAL(send_rs(WH_TOPIC_N, id, NULL), 0);
    wh_stream s;
    CU_ASSERT_EQUAL_FATAL(wh_wait_final(&H, id, 30000, &s), 0);
    CU_ASSERT_EQUAL(s.n_done, 1);
    wh_stream_free(&s);
}

static char *get_str(const char *fmt, const char *arg) {
    redisReply *r = tu_redis_cmd(H.redis, fmt, arg);
    char *v = r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) ? strdup(r->str) : NULL;
    if (r) freeReplyObject(r);
    return v;
}

/* SET session:123 x, a string under the prefix, the worker's own keys. */
static void test_wrong_type_and_foreign_keys(void) {
    NEED_ENV();
    redisReply *r = tu_redis_cmd(H.redis, "SET session:123 x");
    if (r) freeReplyObject(r);
    r = tu_redis_cmd(H.redis, "SET inferno:out:a-string y");
    if (r) freeReplyObject(r);
    CU_ASSERT_EQUAL(send_rs(WH_TOPIC_L, "h-session", "session:123"), 0);
    CU_ASSERT_EQUAL(send_rs(WH_TOPIC_L, "h-wrongtype", "inferno:out:a-string"), 0);
    CU_ASSERT_EQUAL(send_rs(WH_TOPIC_L, "h-hb", "inferno:worker:" WID), 0);
    CU_ASSERT_EQUAL(send_rs(WH_TOPIC_L, "h-zset", "inferno:workers"), 0);
    CU_ASSERT_EQUAL(send_rs(WH_TOPIC_L, "h-prefix-only", "inferno:out:"), 0);
    expect_error("h-session", "invalid_reply_stream");
    expect_error("h-wrongtype", "reply_stream_conflict");
    expect_error("h-hb", "invalid_reply_stream");
    expect_error("h-zset", "invalid_reply_stream");
    expect_error("h-prefix-only", "invalid_reply_stream");
    /* untouched: same values, no expiry, same types */
    char *v = get_str("GET %s", "session:123");
    CU_ASSERT_PTR_NOT_NULL(v);
    if (v) CU_ASSERT_STRING_EQUAL(v, "x");
    free(v);
    v = get_str("GET %s", "inferno:out:a-string");
    CU_ASSERT_PTR_NOT_NULL(v);
    if (v) CU_ASSERT_STRING_EQUAL(v, "y");
    free(v);
    CU_ASSERT_EQUAL(wh_int(&H, "TTL %s", "session:123"), -1);
    CU_ASSERT_EQUAL(wh_int(&H, "TTL %s", "inferno:out:a-string"), -1);
    v = get_str("TYPE %s", "inferno:workers");
    CU_ASSERT(v && !strcmp(v, "zset"));
    free(v);
    v = get_str("TYPE %s", "inferno:worker:" WID);
    CU_ASSERT(v && !strcmp(v, "hash"));
    free(v);
    expect_serving("h-after-types");
    /* heartbeat names the backend in use, not the setting ("auto") */
    v = get_str("HGET %s backend", "inferno:worker:" WID);
    CU_ASSERT(v && !strcmp(v, "cpu"));
    free(v);
    v = get_str("HGET %s device", "inferno:worker:" WID);
    CU_ASSERT(v && !strncmp(v, "cpu", 3));
    free(v);
}

/* Another request's stream (answered), and a foreign stream of 12,000
 * entries outside the prefix. */
static void test_hijack(void) {
    NEED_ENV();
    expect_serving("h-victim");
    long long len0 = wh_int(&H, "XLEN %s", "inferno:out:h-victim");
    CU_ASSERT(len0 >= 3);
    redisContext *c = tu_redis_connect(H.redis);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    for (int i = 0; i < 12000; i++) redisAppendCommand(c, "XADD app:clicks * user %d", i);
    for (int i = 0; i < 12000; i++) {
        redisReply *rep = NULL;
        if (redisGetReply(c, (void **)&rep) == REDIS_OK && rep) freeReplyObject(rep);
    }
    redisFree(c);
    CU_ASSERT_EQUAL(send_rs(WH_TOPIC_H, "h-attacker", "inferno:out:h-victim"), 0);
    CU_ASSERT_EQUAL(send_rs(WH_TOPIC_H, "h-clicks", "app:clicks"), 0);
    expect_error("h-attacker", "reply_stream_conflict");
    expect_error("h-clicks", "invalid_reply_stream");
    CU_ASSERT_EQUAL(wh_int(&H, "XLEN %s", "inferno:out:h-victim"), len0);
    wh_stream s;
    CU_ASSERT_EQUAL(wh_read_stream(&H, "inferno:out:h-victim", &s), 0);
    CU_ASSERT_EQUAL(s.n_start, 1);
    CU_ASSERT_EQUAL(s.n_done, 1);
    CU_ASSERT_EQUAL(s.n_error, 0);
    wh_stream_free(&s);
    CU_ASSERT_EQUAL(wh_int(&H, "XLEN %s", "app:clicks"), 12000);
    CU_ASSERT_EQUAL(wh_int(&H, "TTL %s", "app:clicks"), -1);
    /* a stream under the prefix naming another owner, never answered */
    redisReply *r = tu_redis_cmd(H.redis, "XADD inferno:out:h-owned * event start request_id someone-else attempt 1");
    if (r) freeReplyObject(r);
    CU_ASSERT_EQUAL(send_rs(WH_TOPIC_N, "h-claim", "inferno:out:h-owned"), 0);
    expect_error("h-claim", "reply_stream_conflict");
    CU_ASSERT_EQUAL(wh_int(&H, "XLEN %s", "inferno:out:h-owned"), 1);
    expect_serving("h-after-hijack");
}

/* A stream of 1,200 entries under the prefix whose 500th entry has no
 * event field: the page cursor must move past it (it looped before), and
 * the stream is foreign, so it is refused. Also a long stream of our own
 * shape beyond the scan bound is refused, not scanned without end. */
static void test_paging(void) {
    NEED_ENV();
    redisContext *c = tu_redis_connect(H.redis);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    redisAppendCommand(c, "XADD inferno:out:h-page * event start request_id h-page attempt 1");
    for (int i = 1; i < 1200; i++)
        if (i == 499) redisAppendCommand(c, "XADD inferno:out:h-page * note %d", i);
        else redisAppendCommand(c, "XADD inferno:out:h-page * event token seq %d text x ids 1", i);
    for (int i = 0; i < 1200; i++) {
        redisReply *rep = NULL;
        if (redisGetReply(c, (void **)&rep) == REDIS_OK && rep) freeReplyObject(rep);
    }
    redisFree(c);
    CU_ASSERT_EQUAL(send_rs(WH_TOPIC_N, "h-page", NULL), 0);
    /* the refused stream is the default one: DLQ only; the worker goes on */
    expect_serving("h-after-page");
    CU_ASSERT_EQUAL(wh_int(&H, "XLEN %s", "inferno:out:h-page"), 1200);
    CU_ASSERT(wh_log_count(&H, 0, "h-page") > 0);
    CU_ASSERT(wh_log_count(&H, 0, "did not write") > 0);
}

/* Undecodable bytes keyed by a request id: the sender gets an error on the
 * key's default stream. priority INT_MIN is clamped to 0. */
static void test_bad_bytes_and_priority(void) {
    NEED_ENV();
    const char junk[] = "\x01\x02not avro at all\xff\xfe";
    CU_ASSERT_EQUAL(wh_produce_raw(&H, WH_TOPIC_N, "h-keyed-junk", junk, sizeof junk - 1), 0);
    CU_ASSERT_EQUAL(wh_flush(&H), 0);
    expect_error("h-keyed-junk", "bad_message");
    inf_request r;
    wh_req(&r, "h-intmin", "once upon a time", 4);
    r.has_priority = true;
    r.priority = INT_MIN;
    CU_ASSERT_EQUAL(wh_send(&H, WH_TOPIC_L, &r), 0);
    CU_ASSERT_EQUAL(wh_flush(&H), 0);
    wh_stream s;
    CU_ASSERT_EQUAL_FATAL(wh_wait_final(&H, "h-intmin", 30000, &s), 0);
    CU_ASSERT_EQUAL(s.n_done, 1);
    wh_stream_free(&s);
    CU_ASSERT(wh_log_count(&H, 0, "priority 0, from inferno.requests.low") > 0);
    CU_ASSERT_EQUAL(wh_log_count(&H, 0, "priority -2147483648"), 0);
}

/* Admission stuck on Redis (the worker's user may not XRANGE: NOPERM,
 * transient): /readyz turns not-ready with progress_stalled, /healthz
 * reports it, the log names the permission; fixed, the request is served. */
static void test_stuck_admission_health(void) {
    NEED_ENV();
    char body[2048];
    CU_ASSERT_EQUAL(http_get("/readyz", body, sizeof body), 200);
    redisReply *r = tu_redis_cmd(H.redis, "ACL SETUSER default -xrange");
    CU_ASSERT_PTR_NOT_NULL(r);
    if (r) freeReplyObject(r);
    CU_ASSERT_EQUAL(send_rs(WH_TOPIC_H, "h-stuck", NULL), 0);
    int st = 0;
    long long end = wh_now_ms() + 20000;
    while (wh_now_ms() < end && (st = http_get("/readyz", body, sizeof body)) == 200) wh_sleep_ms(100);
    CU_ASSERT_EQUAL(st, 503);
    CU_ASSERT_PTR_NOT_NULL(strstr(body, "\"progress_stalled\":true"));
    CU_ASSERT_EQUAL(http_get("/healthz", body, sizeof body), 200);
    CU_ASSERT_PTR_NOT_NULL(strstr(body, "\"progress_stalled\":true"));
    CU_ASSERT(wh_log_count(&H, 0, "NOPERM") > 0);
    CU_ASSERT(wh_log_count(&H, 0, "lacks a permission") > 0);
    r = tu_redis_cmd(H.redis, "ACL SETUSER default +xrange");
    if (r) freeReplyObject(r);
    wh_stream s;
    CU_ASSERT_EQUAL_FATAL(wh_wait_final(&H, "h-stuck", 30000, &s), 0);
    CU_ASSERT_EQUAL(s.n_done, 1);
    wh_stream_free(&s);
    end = wh_now_ms() + 10000;
    while (wh_now_ms() < end && (st = http_get("/readyz", body, sizeof body)) != 200) wh_sleep_ms(100);
    CU_ASSERT_EQUAL(st, 200);
}

/* Every message of the suite ended: all offsets committed. Then SIGTERM
 * while Redis is stopped (SIGSTOP): the worker still exits, bounded by its
 * drain timeout and close timeouts, not by Redis. */
static void test_committed_and_sigterm_with_redis_stopped(void) {
    NEED_ENV();
    long long left = -1;
    long long end = wh_now_ms() + 30000;
    while (wh_now_ms() < end && (left = wh_uncommitted(&H, "inferno-workers", 1)) != 0) wh_sleep_ms(200);
    CU_ASSERT_EQUAL(left, 0);
    pid_t rp = tu_redis_pid(H.redis);
    CU_ASSERT_FATAL(rp > 0);
    CU_ASSERT_EQUAL(send_rs(WH_TOPIC_N, "h-during-stop", NULL), 0);
    kill(rp, SIGSTOP);
    wh_sleep_ms(300);
    long long t0 = wh_now_ms();
    kill(H.workers[0].pid, SIGTERM);
    int st = wh_wait_exit(H.workers[0].pid, 45000);
    long long dt = wh_now_ms() - t0;
    kill(rp, SIGCONT);
    H.workers[0].pid = 0;
    CU_ASSERT_EQUAL(st, 0);
    fprintf(stderr, "\n    SIGTERM with Redis stopped: exit %d after %lld ms\n", st, dt);
}

void test_register_worker_hostile(void) {
    CU_pSuite s = CU_add_suite("worker_hostile", suite_init, suite_clean);
    CU_add_test(s, "reply key of the wrong type, keys outside the prefix", test_wrong_type_and_foreign_keys);
    CU_add_test(s, "another request's stream, a foreign stream", test_hijack);
    CU_add_test(s, "500th entry without event: bounded paging", test_paging);
    CU_add_test(s, "undecodable keyed message, priority INT_MIN", test_bad_bytes_and_priority);
    CU_add_test(s, "admission stuck on Redis: readiness, NOPERM named", test_stuck_admission_health);
    CU_add_test(s, "all committed; SIGTERM with Redis stopped", test_committed_and_sigterm_with_redis_stopped);
}
