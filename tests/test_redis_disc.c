/* test_redis_disc.c - Redis URL parsing and ACL auth, cancellation (pub/sub
 * and keys), discovery heartbeats. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "redis_out.h"
#include "testutil.h"
#include "tu_redis.h"

static tu_redis *srv;

static int suite_init(void) {
    srv = tu_redis_start(NULL);
    return srv ? 0 : -1;
}

static int suite_clean(void) {
    tu_redis_free(srv);
    srv = NULL;
    return 0;
}

static void msleep(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static rds *make(const char *url, const char *cancel_channel) {
    rds_config c = rds_config_default();
    c.url = url;
    c.cancel_channel = cancel_channel;
    c.connect_timeout_ms = 500;
    rds *r = NULL;
    inf_error err = {0};
    if (rds_create(&r, &c, &err) != 0) fprintf(stderr, "rds_create: %s\n", err.msg);
    return r;
}

/* ---- URL parsing (no server) -------------------------------------------- */

static void test_url_parse(void) {
    rds_url u;
    inf_error err = {0};
    CU_ASSERT_EQUAL(rds_url_parse("redis://localhost", &u, &err), 0);
    CU_ASSERT_STRING_EQUAL(u.host, "localhost");
    CU_ASSERT_EQUAL(u.port, 6379);
    CU_ASSERT_EQUAL(u.db, 0);
    CU_ASSERT_STRING_EQUAL(u.user, "");
    CU_ASSERT_STRING_EQUAL(u.pass, "");
    CU_ASSERT_EQUAL(rds_url_parse("redis://alice:s%40cret:x@10.0.0.5:6380/3", &u, &err), 0);
    CU_ASSERT_STRING_EQUAL(u.user, "alice");
    CU_ASSERT_STRING_EQUAL(u.pass, "s@cret:x");
    CU_ASSERT_STRING_EQUAL(u.host, "10.0.0.5");
    CU_ASSERT_EQUAL(u.port, 6380);
    CU_ASSERT_EQUAL(u.db, 3);
    CU_ASSERT_EQUAL(rds_url_parse("redis://:pw@h:1/", &u, &err), 0);
    CU_ASSERT_STRING_EQUAL(u.user, "");
    CU_ASSERT_STRING_EQUAL(u.pass, "pw");
    CU_ASSERT_EQUAL(u.port, 1);
    CU_ASSERT_EQUAL(rds_url_parse("redis://[::1]:7000/2", &u, &err), 0);
    CU_ASSERT_STRING_EQUAL(u.host, "::1");
    CU_ASSERT_EQUAL(u.port, 7000);
    CU_ASSERT_EQUAL(u.db, 2);

    struct { const char *url; int code; const char *says; } bad[] = {
        {"http://h:1", INF_EINVAL, "redis://"},
        {"rediss://h:1", INF_EUNSUPPORTED, "TLS"},
        {"redis://", INF_EINVAL, "empty host"},
        {"redis://:pw@:6379", INF_EINVAL, "empty host"},
        {"redis://h:0", INF_EINVAL, "port"},
        {"redis://h:65536", INF_EINVAL, "port"},
        {"redis://h:12ab", INF_EINVAL, "port"},
        {"redis://h:", INF_EINVAL, "port"},
        {"redis://h:1/x", INF_EINVAL, "database"},
        {"redis://h:1/-1", INF_EINVAL, "database"},
        {"redis://h:1?db=2", INF_EINVAL, "query"},
        {"redis://us er@h", INF_EINVAL, "password"},
        {"redis://u s:p@h", INF_EINVAL, "user"},
        {"redis://h o:1", INF_EINVAL, "host"},
        {"redis://bob:@h:1", INF_EINVAL, "without a password"},
        {"redis://a:%zz@h", INF_EINVAL, "password"},
        {"redis://[::1:1", INF_EINVAL, "["},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        inf_error_clear(&err);
        int rc = rds_url_parse(bad[i].url, &u, &err);
        if (rc != bad[i].code || !strstr(err.msg, bad[i].says))
            fprintf(stderr, "\n  url %s: rc %d msg '%s'\n", bad[i].url, rc, err.msg);
        CU_ASSERT_EQUAL(rc, bad[i].code);
        CU_ASSERT(strstr(err.msg, bad[i].says) != NULL);
    }
    /* rds_create validates too */
    rds_config c = rds_config_default();
    c.url = "redis://h:99999";
    rds *r = (rds *)1;
    CU_ASSERT_EQUAL(rds_create(&r, &c, &err), INF_EINVAL);
    CU_ASSERT_PTR_NULL(r);
    c = rds_config_default();
    c.flush_tokens = 0;
    CU_ASSERT_EQUAL(rds_create(&r, &c, &err), INF_EINVAL);
    CU_ASSERT(strstr(err.msg, "flush_tokens") != NULL);
}

/* ---- ACL user and db from the URL ------------------------------------- */

static void test_acl_auth(void) {
    const char *args[] = {"--user", "default", "off", "--user", "alice", "on", ">s3cret", "~*", "&*",
                          "+@all", NULL};
    tu_redis *s = tu_redis_start(args);
    CU_ASSERT_FATAL(s != NULL);
    int port = tu_redis_port(s);
    char url[160], bad[160], noauth[160];
    snprintf(url, sizeof url, "redis://alice:s3cret@127.0.0.1:%d/2", port);
    snprintf(bad, sizeof bad, "redis://alice:wrong@127.0.0.1:%d/2", port);
    snprintf(noauth, sizeof noauth, "redis://127.0.0.1:%d", port);

    rds_url u;
    redisContext *c = NULL;
    inf_error err = {0};
    CU_ASSERT_EQUAL(rds_url_parse(bad, &u, NULL), 0);
    CU_ASSERT_EQUAL(rds_connect(&u, 1000, &c, &err), INF_EIO);
    CU_ASSERT(strstr(err.msg, "AUTH") != NULL && strstr(err.msg, "WRONGPASS") != NULL);
    CU_ASSERT_PTR_NULL(c);

    /* Without credentials the writes are refused (NOAUTH): nothing acked. */
    rds *r0 = make(noauth, "");
    CU_ASSERT_FATAL(r0 != NULL);
    CU_ASSERT_EQUAL(rds_emit_error(r0, "inferno:out:acl0", "x", "y", &port, NULL), 0);
    msleep(200);
    void *got;
    CU_ASSERT_EQUAL(rds_poll_acks(r0, &got, 1), 0);
    rds_stats_t st;
    rds_stats(r0, &st);
    if (!strstr(st.last_error, "NOAUTH")) fprintf(stderr, "\n  last_error: %s\n", st.last_error);
    CU_ASSERT(strstr(st.last_error, "NOAUTH") != NULL);
    rds_free(r0);

    rds *r = make(url, "inferno:cancel");
    CU_ASSERT_FATAL(r != NULL);
    CU_ASSERT_EQUAL(rds_emit_start(r, "inferno:out:acl", "acl", "w", 1, 1, NULL), 0);
    CU_ASSERT_EQUAL(rds_flush(r, 5000, NULL), 0);
    int fin = -1, att = -1;
    CU_ASSERT_EQUAL(rds_final_state(r, "inferno:out:acl", &fin, &att, &err), 0);
    CU_ASSERT_EQUAL(att, 1);
    rds_free(r);

    /* the entry is in db 2, written as alice */
    CU_ASSERT_EQUAL(rds_url_parse(url, &u, NULL), 0);
    CU_ASSERT_EQUAL_FATAL(rds_connect(&u, 1000, &c, &err), 0);
    redisReply *rep = redisCommand(c, "XLEN inferno:out:acl");
    CU_ASSERT(rep && rep->type == REDIS_REPLY_INTEGER && rep->integer == 1);
    freeReplyObject(rep);
    rep = redisCommand(c, "SELECT 0");
    freeReplyObject(rep);
    rep = redisCommand(c, "EXISTS inferno:out:acl");
    CU_ASSERT(rep && rep->type == REDIS_REPLY_INTEGER && rep->integer == 0);
    freeReplyObject(rep);
    redisFree(c);
    tu_redis_free(s);
}

/* ---- cancellation ------------------------------------------------------ */

static long long publish(const char *chan, const char *msg) {
    redisReply *rep = tu_redis_cmd(srv, "PUBLISH %s %s", chan, msg);
    long long n = rep && rep->type == REDIS_REPLY_INTEGER ? rep->integer : -1;
    if (rep) freeReplyObject(rep);
    return n;
}

/* Waits until the subscriber is subscribed (PUBLISH reaches 1 client). */
static int wait_subscribed(const char *chan) {
    for (int i = 0; i < 500; i++) {
        redisReply *rep = tu_redis_cmd(srv, "PUBSUB NUMSUB %s", chan);
        long long n = rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2
                          ? rep->element[1]->integer
                          : 0;
        if (rep) freeReplyObject(rep);
        if (n >= 1) return 1;
        msleep(10);
    }
    return 0;
}

static int wait_cancels(rds *r, char (*ids)[RDS_ID_MAX + 1], int want) {
    int n = 0;
    for (int i = 0; i < 500 && n < want; i++) {
        n += rds_poll_cancels(r, ids + n, want - n);
        if (n < want) msleep(10);
    }
    return n;
}

static void test_cancel_pubsub(void) {
    rds *r = make(tu_redis_url(srv), "test:cancel");
    CU_ASSERT_FATAL(r != NULL);
    CU_ASSERT_FATAL(wait_subscribed("test:cancel"));
    CU_ASSERT_EQUAL(publish("test:cancel", "req-1"), 1);
    CU_ASSERT_EQUAL(publish("test:cancel", "has space"), 1); /* not an id: ignored */
    CU_ASSERT_EQUAL(publish("test:cancel", "req-2"), 1);
    CU_ASSERT_EQUAL(publish("other", "req-x"), 0);
    char ids[4][RDS_ID_MAX + 1];
    CU_ASSERT_EQUAL(wait_cancels(r, ids, 2), 2);
    CU_ASSERT_STRING_EQUAL(ids[0], "req-1");
    CU_ASSERT_STRING_EQUAL(ids[1], "req-2");
    CU_ASSERT_EQUAL(rds_poll_cancels(r, ids, 4), 0); /* consumed */
    rds_stats_t st;
    rds_stats(r, &st);
    CU_ASSERT_EQUAL(st.cancels_received, 2);
    rds_free(r);
}

/* The subscriber comes back after Redis restarts. */
static void test_cancel_resubscribe(void) {
    tu_redis *s = tu_redis_start(NULL);
    CU_ASSERT_FATAL(s != NULL);
    rds *r = make(tu_redis_url(s), "inferno:cancel");
    CU_ASSERT_FATAL(r != NULL);
    int subscribed = 0;
    for (int round = 0; round < 2; round++) {
        subscribed = 0;
        for (int i = 0; i < 500 && !subscribed; i++) {
            redisReply *rep = tu_redis_cmd(s, "PUBLISH inferno:cancel warmup-%d", round);
            subscribed = rep && rep->type == REDIS_REPLY_INTEGER && rep->integer == 1;
            if (rep) freeReplyObject(rep);
            if (!subscribed) msleep(10);
        }
        CU_ASSERT_FATAL(subscribed);
        char ids[8][RDS_ID_MAX + 1];
        char want[32];
        snprintf(want, sizeof want, "warmup-%d", round);
        CU_ASSERT_EQUAL(wait_cancels(r, ids, 1), 1);
        CU_ASSERT_STRING_EQUAL(ids[0], want);
        rds_poll_cancels(r, ids, 8);
        if (round == 0) CU_ASSERT_EQUAL_FATAL(tu_redis_restart(s), 0);
    }
    rds_free(r);
    tu_redis_free(s);
}

static void test_cancel_key(void) {
    rds *r = make(tu_redis_url(srv), "");
    CU_ASSERT_FATAL(r != NULL);
    redisReply *rep = tu_redis_cmd(srv, "SET inferno:cancel:req-ck 1 EX 60");
    CU_ASSERT_FATAL(rep != NULL);
    freeReplyObject(rep);
    int ex = -1;
    CU_ASSERT_EQUAL(rds_cancel_key_exists(r, "req-ck", &ex, NULL), 0);
    CU_ASSERT_EQUAL(ex, 1);
    CU_ASSERT_EQUAL(rds_cancel_key_exists(r, "req-other", &ex, NULL), 0);
    CU_ASSERT_EQUAL(ex, 0);
    CU_ASSERT_EQUAL(rds_cancel_key_exists(r, "", &ex, NULL), INF_EINVAL);
    rds_free(r);
}

/* Queries fail with a clear error while Redis is down, then recover. */
static void test_query_down(void) {
    tu_redis *s = tu_redis_start(NULL);
    CU_ASSERT_FATAL(s != NULL);
    rds *r = make(tu_redis_url(s), "");
    CU_ASSERT_FATAL(r != NULL);
    int ex = -1;
    CU_ASSERT_EQUAL(rds_cancel_key_exists(r, "q", &ex, NULL), 0);
    tu_redis_stop(s);
    inf_error err = {0};
    CU_ASSERT_EQUAL(rds_cancel_key_exists(r, "q", &ex, &err), INF_EIO);
    CU_ASSERT(strstr(err.msg, "redis") != NULL);
    CU_ASSERT_EQUAL_FATAL(tu_redis_restart(s), 0);
    CU_ASSERT_EQUAL(rds_cancel_key_exists(r, "q", &ex, &err), 0);
    rds_free(r);
    tu_redis_free(s);
}

/* ---- discovery --------------------------------------------------------- */

static const char *hget(redisReply *h, const char *name) {
    for (size_t i = 0; h && i + 1 < h->elements; i += 2)
        if (strcmp(h->element[i]->str, name) == 0) return h->element[i + 1]->str;
    return NULL;
}

static void test_heartbeat(void) {
    rds *r = make(tu_redis_url(srv), "");
    CU_ASSERT_FATAL(r != NULL);
    /* a long-dead worker in the set is swept by the next heartbeat */
    redisReply *rep = tu_redis_cmd(srv, "ZADD inferno:workers 1000 ghost");
    freeReplyObject(rep);
    rds_worker_info w = {.id = "w-hb", .host = "box1", .model = "stories260K", .backend = "cpu",
                         .device = "cpu", .status = "ready", .version = "0.1.0",
                         .topics = "inferno.requests.high,inferno.requests.normal",
                         .pid = 4321, .max_num_seqs = 64, .running = 3, .waiting = 2,
                         .kv_used = 10, .kv_total = 100, .tokens_per_s = 123.456,
                         .done = 77, .failed = 1, .started_at_ms = 1700000000000LL};
    CU_ASSERT_EQUAL(rds_heartbeat(r, &w, 5, NULL), 0);
    redisReply *h = tu_redis_cmd(srv, "HGETALL inferno:worker:w-hb");
    CU_ASSERT_FATAL(h && h->type == REDIS_REPLY_ARRAY);
    CU_ASSERT_EQUAL(h->elements, 2 * 20); /* chat_template added */
    CU_ASSERT_STRING_EQUAL(hget(h, "chat_template"), "false");
    CU_ASSERT_STRING_EQUAL(hget(h, "id"), "w-hb");
    CU_ASSERT_STRING_EQUAL(hget(h, "host"), "box1");
    CU_ASSERT_STRING_EQUAL(hget(h, "pid"), "4321");
    CU_ASSERT_STRING_EQUAL(hget(h, "model"), "stories260K");
    CU_ASSERT_STRING_EQUAL(hget(h, "backend"), "cpu");
    CU_ASSERT_STRING_EQUAL(hget(h, "device"), "cpu");
    CU_ASSERT_STRING_EQUAL(hget(h, "status"), "ready");
    CU_ASSERT_STRING_EQUAL(hget(h, "max_num_seqs"), "64");
    CU_ASSERT_STRING_EQUAL(hget(h, "running"), "3");
    CU_ASSERT_STRING_EQUAL(hget(h, "waiting"), "2");
    CU_ASSERT_STRING_EQUAL(hget(h, "kv_blocks_used"), "10");
    CU_ASSERT_STRING_EQUAL(hget(h, "kv_blocks_total"), "100");
    CU_ASSERT_STRING_EQUAL(hget(h, "tokens_per_s"), "123.46");
    CU_ASSERT_STRING_EQUAL(hget(h, "requests_done"), "77");
    CU_ASSERT_STRING_EQUAL(hget(h, "requests_failed"), "1");
    CU_ASSERT_STRING_EQUAL(hget(h, "started_at"), "1700000000000");
    CU_ASSERT_STRING_EQUAL(hget(h, "version"), "0.1.0");
    CU_ASSERT_STRING_EQUAL(hget(h, "topics"), "inferno.requests.high,inferno.requests.normal");
    const char *ls = hget(h, "last_seen");
    CU_ASSERT_FATAL(ls != NULL);
    long long last_seen = atoll(ls);
    CU_ASSERT(last_seen > 1700000000000LL);
    freeReplyObject(h);
    rep = tu_redis_cmd(srv, "TTL inferno:worker:w-hb");
    CU_ASSERT(rep && rep->integer > 0 && rep->integer <= 5);
    freeReplyObject(rep);
    rep = tu_redis_cmd(srv, "ZSCORE inferno:workers w-hb");
    CU_ASSERT(rep && rep->type == REDIS_REPLY_STRING && atoll(rep->str) == last_seen);
    freeReplyObject(rep);
    rep = tu_redis_cmd(srv, "ZSCORE inferno:workers ghost");
    CU_ASSERT(rep && rep->type == REDIS_REPLY_NIL);
    freeReplyObject(rep);
    /* a status change is visible at the next beat */
    w.status = "draining";
    CU_ASSERT_EQUAL(rds_heartbeat(r, &w, 5, NULL), 0);
    rep = tu_redis_cmd(srv, "HGET inferno:worker:w-hb status");
    CU_ASSERT(rep && rep->type == REDIS_REPLY_STRING && strcmp(rep->str, "draining") == 0);
    freeReplyObject(rep);

    CU_ASSERT_EQUAL(rds_unregister(r, "w-hb", NULL), 0);
    rep = tu_redis_cmd(srv, "EXISTS inferno:worker:w-hb");
    CU_ASSERT(rep && rep->integer == 0);
    freeReplyObject(rep);
    rep = tu_redis_cmd(srv, "ZSCORE inferno:workers w-hb");
    CU_ASSERT(rep && rep->type == REDIS_REPLY_NIL);
    freeReplyObject(rep);
    rds_worker_info none = {0};
    CU_ASSERT_EQUAL(rds_heartbeat(r, &none, 5, NULL), INF_EINVAL);
    rds_free(r);
}

void test_register_redis_disc(void) {
    CU_pSuite s = CU_add_suite("redis_disc", suite_init, suite_clean);
    CU_add_test(s, "URL parsing", test_url_parse);
    CU_add_test(s, "ACL user, password and db from the URL", test_acl_auth);
    CU_add_test(s, "cancel via pub/sub", test_cancel_pubsub);
    CU_add_test(s, "cancel subscriber survives a restart", test_cancel_resubscribe);
    CU_add_test(s, "cancel key", test_cancel_key);
    CU_add_test(s, "queries while Redis is down", test_query_down);
    CU_add_test(s, "heartbeat and unregister", test_heartbeat);
}
