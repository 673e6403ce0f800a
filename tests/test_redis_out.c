/* test_redis_out.c - reply streams against a real redis-server: fields,
 * coalescing, trimming/expiry, acks, Redis down/restarted, memory bound,
 * final state, foreign client (redis-cli). */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "redis_out.h"
#include "testutil.h"
#include "tu_redis.h"

static tu_redis *srv; /* shared by the tests that do not stop the server */

static int suite_init(void) {
    /* Small stream nodes so that MAXLEN ~ trims at a small length. */
    const char *args[] = {"--stream-node-max-entries", "8", NULL};
    srv = tu_redis_start(args);
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

static rds *make(const char *url, int flush_tokens, int flush_ms, void (*tweak)(rds_config *)) {
    rds_config c = rds_config_default();
    c.url = url;
    c.flush_tokens = flush_tokens;
    c.flush_ms = flush_ms;
    c.cancel_channel = ""; /* no subscriber thread in these tests */
    c.connect_timeout_ms = 500;
    if (tweak) tweak(&c);
    rds *r = NULL;
    inf_error err = {0};
    int rc = rds_create(&r, &c, &err);
    if (rc) fprintf(stderr, "rds_create: %s\n", err.msg);
    return r;
}

/* Polls acks until `want` arrived or timeout_ms passed; returns count. */
static int wait_acks(rds *r, void **got, int want, int timeout_ms) {
    int n = 0;
    for (int waited = 0; n < want && waited <= timeout_ms; waited += 10) {
        n += rds_poll_acks(r, got + n, want - n);
        if (n < want) msleep(10);
    }
    return n;
}

static redisReply *xrange(tu_redis *s, const char *key) {
    return tu_redis_cmd(s, "XRANGE %s - +", key);
}

/* Value of field `name` of XRANGE entry i, or NULL. */
static const char *fld(const redisReply *xr, size_t i, const char *name) {
    if (!xr || xr->type != REDIS_REPLY_ARRAY || i >= xr->elements) return NULL;
    const redisReply *kv = xr->element[i]->element[1];
    for (size_t k = 0; k + 1 < kv->elements; k += 2)
        if (strcmp(kv->element[k]->str, name) == 0) return kv->element[k + 1]->str;
    return NULL;
}

static long long cmd_int(tu_redis *s, const char *fmt, const char *key) {
    redisReply *rep = tu_redis_cmd(s, fmt, key);
    long long v = rep && rep->type == REDIS_REPLY_INTEGER ? rep->integer : -999;
    if (rep) freeReplyObject(rep);
    return v;
}

static void test_fields(void) {
    rds *r = make(tu_redis_url(srv), 1, 20, NULL);
    CU_ASSERT_FATAL(r != NULL);
    char key[256];
    CU_ASSERT_EQUAL(rds_stream_key(r, "req-fields", NULL, key, sizeof key), 22);
    CU_ASSERT_STRING_EQUAL(key, "inferno:out:req-fields");
    int32_t ids[2] = {17, 4242};
    float lp[2] = {-0.5f, -1.25f};
    int ctx = 7;
    CU_ASSERT_EQUAL(rds_emit_start(r, key, "req-fields", "w1", 2, 11, NULL), 0);
    CU_ASSERT_EQUAL(rds_emit_token(r, key, 0, "Hel", 3, ids, 1, NULL, NULL), 0);
    CU_ASSERT_EQUAL(rds_emit_token(r, key, 1, "lo w", 4, ids, 2, lp, NULL), 0);
    CU_ASSERT_EQUAL(rds_emit_done(r, key, "length", 11, 3, 4, 1.5, 2.25, 10.0, "{\"k\":\"v\"}", &ctx,
                                  NULL), 0);
    void *got[2] = {0};
    CU_ASSERT_EQUAL(wait_acks(r, got, 1, 5000), 1);
    CU_ASSERT_PTR_EQUAL(got[0], &ctx);
    redisReply *xr = xrange(srv, key);
    CU_ASSERT_FATAL(xr && xr->type == REDIS_REPLY_ARRAY && xr->elements == 4);
    CU_ASSERT_STRING_EQUAL(fld(xr, 0, "event"), "start");
    CU_ASSERT_STRING_EQUAL(fld(xr, 0, "request_id"), "req-fields");
    CU_ASSERT_STRING_EQUAL(fld(xr, 0, "worker"), "w1");
    CU_ASSERT_STRING_EQUAL(fld(xr, 0, "attempt"), "2");
    CU_ASSERT_STRING_EQUAL(fld(xr, 0, "prompt_tokens"), "11");
    CU_ASSERT_STRING_EQUAL(fld(xr, 1, "event"), "token");
    CU_ASSERT_STRING_EQUAL(fld(xr, 1, "seq"), "0");
    CU_ASSERT_STRING_EQUAL(fld(xr, 1, "text"), "Hel");
    CU_ASSERT_STRING_EQUAL(fld(xr, 1, "ids"), "17");
    CU_ASSERT_PTR_NULL(fld(xr, 1, "logprobs"));
    CU_ASSERT_STRING_EQUAL(fld(xr, 2, "seq"), "1");
    CU_ASSERT_STRING_EQUAL(fld(xr, 2, "text"), "lo w");
    CU_ASSERT_STRING_EQUAL(fld(xr, 2, "ids"), "17 4242");
    CU_ASSERT_STRING_EQUAL(fld(xr, 2, "logprobs"), "-0.5 -1.25");
    CU_ASSERT_STRING_EQUAL(fld(xr, 3, "event"), "done");
    CU_ASSERT_STRING_EQUAL(fld(xr, 3, "finish_reason"), "length");
    CU_ASSERT_STRING_EQUAL(fld(xr, 3, "prompt_tokens"), "11");
    CU_ASSERT_STRING_EQUAL(fld(xr, 3, "completion_tokens"), "3");
    CU_ASSERT_STRING_EQUAL(fld(xr, 3, "cached_tokens"), "4");
    CU_ASSERT_STRING_EQUAL(fld(xr, 3, "queue_ms"), "1.500");
    CU_ASSERT_STRING_EQUAL(fld(xr, 3, "ttft_ms"), "2.250");
    CU_ASSERT_STRING_EQUAL(fld(xr, 3, "e2e_ms"), "10.000");
    CU_ASSERT_STRING_EQUAL(fld(xr, 3, "metadata"), "{\"k\":\"v\"}");
    freeReplyObject(xr);
    long long ttl = cmd_int(srv, "TTL %s", key);
    CU_ASSERT(ttl > 0 && ttl <= 3600);
    /* error entry with its own ack */
    int ctx2 = 8;
    CU_ASSERT_EQUAL(rds_emit_error(r, "inferno:out:req-err", "invalid_request", "prompt too long", &ctx2,
                                   NULL), 0);
    CU_ASSERT_EQUAL(wait_acks(r, got, 1, 5000), 1);
    CU_ASSERT_PTR_EQUAL(got[0], &ctx2);
    xr = xrange(srv, "inferno:out:req-err");
    CU_ASSERT_FATAL(xr && xr->elements == 1);
    CU_ASSERT_STRING_EQUAL(fld(xr, 0, "event"), "error");
    CU_ASSERT_STRING_EQUAL(fld(xr, 0, "code"), "invalid_request");
    CU_ASSERT_STRING_EQUAL(fld(xr, 0, "message"), "prompt too long");
    freeReplyObject(xr);
    rds_stats_t st;
    rds_stats(r, &st);
    CU_ASSERT_EQUAL(st.entries_written, 5);
    CU_ASSERT_EQUAL(st.pending_entries, 0);
    CU_ASSERT_EQUAL(st.pending_bytes, 0);
    CU_ASSERT_EQUAL(st.connected, 1);
    rds_free(r);
}

static void test_stream_key(void) {
    rds *r = make(tu_redis_url(srv), 1, 20, NULL);
    CU_ASSERT_FATAL(r != NULL);
    char key[32];
    CU_ASSERT_EQUAL(rds_stream_key(r, "x", "my:reply", key, sizeof key), 8);
    CU_ASSERT_STRING_EQUAL(key, "my:reply");
    CU_ASSERT_EQUAL(rds_stream_key(r, "x", "", key, sizeof key), 13);
    CU_ASSERT_STRING_EQUAL(key, "inferno:out:x");
    CU_ASSERT_EQUAL(rds_stream_key(r, "a-very-long-request-id-that-does-not-fit", NULL, key, sizeof key),
                    INF_ERANGE);
    CU_ASSERT_EQUAL(rds_emit_start(r, "", "x", "w", 1, 1, NULL), INF_EINVAL);
    rds_free(r);
}

/* flush_tokens: 10 tokens with a batch of 4 -> 3 entries (4, 4, 2; the last
 * flushed by done); same text and ids as the tokens one by one. */
static void test_coalesce_count(void) {
    rds *r = make(tu_redis_url(srv), 4, 60000, NULL);
    CU_ASSERT_FATAL(r != NULL);
    const char *key = "inferno:out:coalesce";
    char want_text[256] = "", want_ids[256] = "";
    CU_ASSERT_EQUAL(rds_emit_start(r, key, "coalesce", "w", 1, 3, NULL), 0);
    for (int i = 0; i < 10; i++) {
        char t[8];
        int32_t id = 100 + i;
        snprintf(t, sizeof t, "t%d ", i);
        strcat(want_text, t);
        snprintf(want_ids + strlen(want_ids), sizeof want_ids - strlen(want_ids), "%s%d", i ? " " : "",
                 id);
        CU_ASSERT_EQUAL(rds_emit_token(r, key, i, t, strlen(t), &id, 1, NULL, NULL), 0);
    }
    int ctx;
    CU_ASSERT_EQUAL(rds_emit_done(r, key, "stop", 3, 10, 0, 0, 0, 0, NULL, &ctx, NULL), 0);
    void *got;
    CU_ASSERT_EQUAL(wait_acks(r, &got, 1, 5000), 1);
    redisReply *xr = xrange(srv, key);
    CU_ASSERT_FATAL(xr && xr->type == REDIS_REPLY_ARRAY);
    CU_ASSERT_EQUAL(xr->elements, 5); /* start, 3 token entries, done */
    char text[256] = "", ids[256] = "";
    int n_tok = 0;
    const char *seqs[3] = {"0", "4", "8"};
    for (size_t i = 0; i < xr->elements; i++) {
        if (strcmp(fld(xr, i, "event"), "token") != 0) continue;
        if (n_tok < 3) CU_ASSERT_STRING_EQUAL(fld(xr, i, "seq"), seqs[n_tok]);
        n_tok++;
        strcat(text, fld(xr, i, "text"));
        if (ids[0]) strcat(ids, " ");
        strcat(ids, fld(xr, i, "ids"));
    }
    CU_ASSERT_EQUAL(n_tok, 3);
    CU_ASSERT_STRING_EQUAL(text, want_text);
    CU_ASSERT_STRING_EQUAL(ids, want_ids);
    CU_ASSERT_STRING_EQUAL(fld(xr, xr->elements - 1, "event"), "done");
    freeReplyObject(xr);
    rds_free(r);
}

/* flush_ms: with a huge flush_tokens, the open batch still goes out on its
 * timer, without any done/flush call. */
static void test_coalesce_timer(void) {
    rds *r = make(tu_redis_url(srv), 1000, 30, NULL);
    CU_ASSERT_FATAL(r != NULL);
    const char *key = "inferno:out:timer";
    int32_t ids[3] = {1, 2, 3};
    CU_ASSERT_EQUAL(rds_emit_token(r, key, 0, "ab", 2, ids, 2, NULL, NULL), 0);
    CU_ASSERT_EQUAL(rds_emit_token(r, key, 2, "c", 1, ids + 2, 1, NULL, NULL), 0);
    long long len = 0;
    for (int waited = 0; waited < 5000 && len < 1; waited += 10) {
        msleep(10);
        len = cmd_int(srv, "XLEN %s", key);
    }
    CU_ASSERT_EQUAL(len, 1);
    redisReply *xr = xrange(srv, key);
    CU_ASSERT_FATAL(xr && xr->elements == 1);
    CU_ASSERT_STRING_EQUAL(fld(xr, 0, "text"), "abc");
    CU_ASSERT_STRING_EQUAL(fld(xr, 0, "ids"), "1 2 3");
    CU_ASSERT_STRING_EQUAL(fld(xr, 0, "seq"), "0");
    freeReplyObject(xr);
    rds_free(r);
}

static void tweak_trim(rds_config *c) {
    c->stream_maxlen = 10;
    c->expire_s = 100;
    c->open_expire_s = 0;
}

static void test_maxlen_expire(void) {
    rds *r = make(tu_redis_url(srv), 1, 20, tweak_trim);
    CU_ASSERT_FATAL(r != NULL);
    const char *key = "inferno:out:trim";
    CU_ASSERT_EQUAL(rds_emit_start(r, key, "trim", "w", 1, 1, NULL), 0);
    for (int i = 0; i < 200; i++) {
        int32_t id = i;
        CU_ASSERT_EQUAL(rds_emit_token(r, key, i, "x", 1, &id, 1, NULL, NULL), 0);
    }
    CU_ASSERT_EQUAL(rds_flush(r, 5000, NULL), 0);
    long long len = cmd_int(srv, "XLEN %s", key);
    CU_ASSERT(len >= 10 && len < 30); /* ~: whole nodes of 8 entries */
    CU_ASSERT_EQUAL(cmd_int(srv, "TTL %s", key), -1); /* no expiry before the final entry */
    int ctx;
    CU_ASSERT_EQUAL(rds_emit_done(r, key, "length", 1, 200, 0, 0, 0, 0, NULL, &ctx, NULL), 0);
    void *got;
    CU_ASSERT_EQUAL(wait_acks(r, &got, 1, 5000), 1);
    long long ttl = cmd_int(srv, "TTL %s", key);
    CU_ASSERT(ttl > 0 && ttl <= 100);
    rds_free(r);
}

/* The default open_expire_s puts a long TTL on the stream with the start
 * entry; the final entry replaces it with expire_s. */
static void test_open_expire(void) {
    rds *r = make(tu_redis_url(srv), 1, 20, NULL);
    CU_ASSERT_FATAL(r != NULL);
    const char *key = "inferno:out:openexp";
    CU_ASSERT_EQUAL(rds_emit_start(r, key, "openexp", "w", 1, 1, NULL), 0);
    CU_ASSERT_EQUAL(rds_flush(r, 5000, NULL), 0);
    long long ttl = cmd_int(srv, "TTL %s", key);
    CU_ASSERT(ttl > 3600 && ttl <= 86400);
    CU_ASSERT_EQUAL(rds_emit_done(r, key, "stop", 1, 0, 0, 0, 0, 0, NULL, NULL, NULL), 0);
    CU_ASSERT_EQUAL(rds_flush(r, 5000, NULL), 0);
    ttl = cmd_int(srv, "TTL %s", key);
    CU_ASSERT(ttl > 0 && ttl <= 3600);
    rds_free(r);
}

/* A final entry Redis can never accept (the key is a string) is dropped,
 * counted, and acked so the worker does not stall; other streams go on. */
static void test_rejected_final(void) {
    redisReply *rep = tu_redis_cmd(srv, "SET %s %s", "inferno:out:notastream", "x");
    CU_ASSERT_FATAL(rep != NULL);
    freeReplyObject(rep);
    rds *r = make(tu_redis_url(srv), 1, 20, NULL);
    CU_ASSERT_FATAL(r != NULL);
    int c1, c2;
    CU_ASSERT_EQUAL(rds_emit_done(r, "inferno:out:notastream", "stop", 1, 0, 0, 0, 0, 0, NULL, &c1, NULL), 0);
    CU_ASSERT_EQUAL(rds_emit_done(r, "inferno:out:afterbad", "stop", 1, 0, 0, 0, 0, 0, NULL, &c2, NULL), 0);
    void *got[2];
    CU_ASSERT_EQUAL(wait_acks(r, got, 2, 5000), 2);
    CU_ASSERT_PTR_EQUAL(got[0], &c1);
    CU_ASSERT_PTR_EQUAL(got[1], &c2);
    rds_stats_t st;
    rds_stats(r, &st);
    CU_ASSERT(st.write_errors >= 1);
    CU_ASSERT(strstr(st.last_error, "WRONGTYPE") != NULL);
    CU_ASSERT_EQUAL(cmd_int(srv, "XLEN %s", "inferno:out:afterbad"), 1);
    rds_free(r);
}

/* Two requests naming one stream: the first start (attempt 1) claims it
 * with ID 0-1; the second's entries are all dropped and its final's ack
 * comes back from rds_poll_refused, not rds_poll_acks. Two clients, as two
 * workers would be. A claim on a string key is refused the same way. */
static void test_claim(void) {
    rds *a = make(tu_redis_url(srv), 1, 20, NULL), *b = make(tu_redis_url(srv), 1, 20, NULL);
    CU_ASSERT_FATAL(a && b);
    const char *k = "inferno:out:claimed";
    int ca, cb, cs;
    CU_ASSERT_EQUAL(rds_emit_start(a, k, "owner", "w1", 1, 3, NULL), 0);
    int32_t ids[2] = {5, 6};
    CU_ASSERT_EQUAL(rds_emit_token(a, k, 0, "ab", 2, ids, 2, NULL, NULL), 0);
    CU_ASSERT_EQUAL(rds_emit_done(a, k, "stop", 3, 2, 0, 0, 0, 0, NULL, &ca, NULL), 0);
    void *got[2];
    CU_ASSERT_EQUAL(wait_acks(a, got, 1, 5000), 1);
    CU_ASSERT_EQUAL(cmd_int(srv, "XLEN %s", k), 3);
    CU_ASSERT_EQUAL(rds_emit_start(b, k, "intruder", "w2", 1, 3, NULL), 0);
    CU_ASSERT_EQUAL(rds_emit_token(b, k, 0, "evil", 4, ids, 2, NULL, NULL), 0);
    CU_ASSERT_EQUAL(rds_emit_done(b, k, "stop", 3, 2, 0, 0, 0, 0, NULL, &cb, NULL), 0);
    /* and a string key */
    redisReply *rep = tu_redis_cmd(srv, "SET %s %s", "inferno:out:claim-str", "x");
    if (rep) freeReplyObject(rep);
    CU_ASSERT_EQUAL(rds_emit_start(b, "inferno:out:claim-str", "s", "w2", 1, 1, NULL), 0);
    CU_ASSERT_EQUAL(rds_emit_error(b, "inferno:out:claim-str", "x", "y", &cs, NULL), 0);
    int n = 0;
    for (int waited = 0; n < 2 && waited < 5000; waited += 10) {
        n += rds_poll_refused(b, got + n, 2 - n);
        if (n < 2) msleep(10);
    }
    CU_ASSERT_EQUAL(n, 2);
    CU_ASSERT(n == 2 && got[0] == &cb && got[1] == &cs);
    CU_ASSERT_EQUAL(rds_poll_acks(b, got, 2), 0);
    CU_ASSERT_EQUAL(cmd_int(srv, "XLEN %s", k), 3);
    redisReply *xr = xrange(srv, k);
    CU_ASSERT_STRING_EQUAL(fld(xr, 0, "request_id"), "owner");
    CU_ASSERT_STRING_EQUAL(xr->element[0]->element[0]->str, "0-1");
    CU_ASSERT_STRING_EQUAL(fld(xr, 1, "text"), "ab");
    freeReplyObject(xr);
    rep = tu_redis_cmd(srv, "GET %s", "inferno:out:claim-str");
    CU_ASSERT(rep && rep->type == REDIS_REPLY_STRING && !strcmp(rep->str, "x"));
    if (rep) freeReplyObject(rep);
    /* a retry (attempt 2) appends to its own stream normally */
    CU_ASSERT_EQUAL(rds_emit_start(a, k, "owner", "w1", 2, 3, NULL), 0);
    CU_ASSERT_EQUAL(rds_flush(a, 5000, NULL), 0);
    CU_ASSERT_EQUAL(cmd_int(srv, "XLEN %s", k), 4);
    rds_free(a);
    rds_free(b);
}

/* Admission checks answered off the caller's thread: a fresh stream, an
 * owned one, another request's, a foreign one (entry 500 without event:
 * the cursor must move past it), a string key, a stream over the scan
 * bound, and the cancel key. */
static void set_scan_bound(rds_config *c) { c->scan_max_entries = 1000; }
static void test_checks(void) {
    rds *r = make(tu_redis_url(srv), 1, 20, set_scan_bound);
    CU_ASSERT_FATAL(r != NULL);
    redisContext *c = tu_redis_connect(srv);
    CU_ASSERT_FATAL(c != NULL);
    redisReply *rep;
#define RUN(...) do { rep = redisCommand(c, __VA_ARGS__); if (rep) freeReplyObject(rep); } while (0)
    RUN("XADD inferno:out:ck-own * event start request_id own attempt 2");
    RUN("XADD inferno:out:ck-own * event done finish_reason stop");
    RUN("XADD inferno:out:ck-other * event start request_id other attempt 1");
    for (int i = 0; i < 1200; i++) {
        if (i == 499) RUN("XADD inferno:out:ck-foreign * note x");
        else RUN("XADD inferno:out:ck-foreign * event token seq %d", i);
    }
    for (int i = 0; i < 1500; i++) RUN("XADD inferno:out:ck-long * event token seq %d", i);
    RUN("SET inferno:out:ck-str x");
    RUN("SET inferno:cancel:fresh 1");
#undef RUN
    redisFree(c);
    const char *keys[] = {"inferno:out:ck-fresh", "inferno:out:ck-own", "inferno:out:ck-other",
                          "inferno:out:ck-foreign", "inferno:out:ck-str", "inferno:out:ck-long"};
    const char *ids[] = {"fresh", "own", "me", "me", "me", "me"};
    int want[] = {0, 0, INF_EEXIST, INF_EFORMAT, INF_EFORMAT, INF_EFORMAT};
    intptr_t ctx[6];
    for (int i = 0; i < 6; i++) {
        ctx[i] = i + 1;
        CU_ASSERT_EQUAL(rds_check_submit(r, keys[i], ids[i], (void *)ctx[i], NULL), 0);
    }
    rds_check_result res[6];
    int n = 0;
    for (int waited = 0; n < 6 && waited < 10000; waited += 10) {
        n += rds_poll_checks(r, res + n, 6 - n);
        if (n < 6) msleep(10);
    }
    CU_ASSERT_EQUAL_FATAL(n, 6);
    for (int i = 0; i < 6; i++) {
        CU_ASSERT_EQUAL(res[i].ctx, (void *)ctx[i]); /* submit order */
        CU_ASSERT_EQUAL(res[i].status, want[i]);
        if (res[i].status != want[i]) fprintf(stderr, "\n    %s: %d %s\n", keys[i], res[i].status, res[i].message);
    }
    CU_ASSERT_EQUAL(res[0].cancelled, 1);
    CU_ASSERT_EQUAL(res[0].has_final, 0);
    CU_ASSERT_EQUAL(res[1].has_final, 1);
    CU_ASSERT_EQUAL(res[1].last_attempt, 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(res[2].message, "belongs to request other"));
    CU_ASSERT_PTR_NOT_NULL(strstr(res[3].message, "did not write"));
    CU_ASSERT_PTR_NOT_NULL(strstr(res[4].message, "not a stream"));
    CU_ASSERT_PTR_NOT_NULL(strstr(res[5].message, "more than 1000 entries"));
    CU_ASSERT_EQUAL(rds_check_submit(r, "", "x", NULL, NULL), INF_EINVAL);
    CU_ASSERT(rds_reply_key_allowed(r, "inferno:out:x"));
    CU_ASSERT(!rds_reply_key_allowed(r, "inferno:out:"));
    CU_ASSERT(!rds_reply_key_allowed(r, "inferno:worker:x"));
    CU_ASSERT(!rds_reply_key_allowed(r, "session:123"));
    rds_free(r);
}

/* A prefix over the worker's own keys is refused at create. */
static void wide_prefix(rds_config *c) { c->out_prefix = "inferno:"; }
static void test_prefix_overlap(void) {
    rds_config c = rds_config_default();
    wide_prefix(&c);
    c.cancel_channel = "";
    rds *r = NULL;
    inf_error err = {0};
    CU_ASSERT_EQUAL(rds_create(&r, &c, &err), INF_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "worker's own key"));
    CU_ASSERT_PTR_NULL(r);
}

/* Redis down when the client is created: nothing is acked, nothing lost;
 * when Redis comes up the queue drains. Acks only after the write. */
static void test_down_at_create(void) {
    tu_redis *s = tu_redis_start(NULL);
    CU_ASSERT_FATAL(s != NULL);
    tu_redis_stop(s);
    rds *r = make(tu_redis_url(s), 2, 20, NULL);
    CU_ASSERT_FATAL(r != NULL);
    const char *key = "inferno:out:down";
    CU_ASSERT_EQUAL(rds_emit_start(r, key, "down", "w", 1, 2, NULL), 0);
    for (int i = 0; i < 5; i++) {
        int32_t id = i;
        CU_ASSERT_EQUAL(rds_emit_token(r, key, i, "y", 1, &id, 1, NULL, NULL), 0);
    }
    int ctx;
    CU_ASSERT_EQUAL(rds_emit_done(r, key, "stop", 2, 5, 0, 0, 0, 0, NULL, &ctx, NULL), 0);
    msleep(300);
    void *got;
    CU_ASSERT_EQUAL(rds_poll_acks(r, &got, 1), 0); /* Redis is down: cannot be confirmed */
    CU_ASSERT_EQUAL(rds_connected(r), 0);
    rds_stats_t st;
    rds_stats(r, &st);
    CU_ASSERT_EQUAL(st.pending_entries, 5); /* start, 3 token entries (2+2+1), done */
    CU_ASSERT(st.last_error[0] != 0);
    CU_ASSERT_EQUAL_FATAL(tu_redis_restart(s), 0);
    CU_ASSERT_EQUAL(wait_acks(r, &got, 1, 8000), 1);
    /* acked => the final entry is in Redis */
    redisReply *xr = xrange(s, key);
    CU_ASSERT_FATAL(xr && xr->type == REDIS_REPLY_ARRAY);
    CU_ASSERT_EQUAL(xr->elements, 5);
    if (xr->elements == 5) {
        CU_ASSERT_STRING_EQUAL(fld(xr, 0, "event"), "start");
        CU_ASSERT_STRING_EQUAL(fld(xr, 1, "ids"), "0 1");
        CU_ASSERT_STRING_EQUAL(fld(xr, 3, "ids"), "4");
        CU_ASSERT_STRING_EQUAL(fld(xr, 4, "event"), "done");
    }
    freeReplyObject(xr);
    CU_ASSERT_EQUAL(rds_connected(r), 1);
    rds_free(r);
    tu_redis_free(s);
}

/* Redis killed mid-stream and started again on the same port (with an
 * fsync-always AOF, so what it confirmed survives): every accepted token is
 * in the stream in order (after the documented seq dedupe), one final, and
 * the ack arrives after recovery. */
static void test_restart_mid_stream(void) {
    const char *args[] = {"--appendonly", "yes", "--appendfsync", "always", NULL};
    tu_redis *s = tu_redis_start(args);
    CU_ASSERT_FATAL(s != NULL);
    rds *r = make(tu_redis_url(s), 3, 5, NULL);
    CU_ASSERT_FATAL(r != NULL);
    const char *key = "inferno:out:restart";
    enum { N = 200 };
    CU_ASSERT_EQUAL(rds_emit_start(r, key, "restart", "w", 1, 2, NULL), 0);
    int accepted = 0;
    for (int i = 0; i < N; i++) {
        if (i == 100) tu_redis_kill(s);
        if (i == 150) {
            void *got;
            CU_ASSERT_EQUAL(rds_poll_acks(r, &got, 1), 0);
            CU_ASSERT_EQUAL_FATAL(tu_redis_restart(s), 0);
        }
        int32_t id = i;
        char t[8];
        snprintf(t, sizeof t, "%d,", i);
        if (rds_emit_token(r, key, i, t, strlen(t), &id, 1, NULL, NULL) == 0) accepted++;
        msleep(1);
    }
    CU_ASSERT_EQUAL(accepted, N);
    int ctx;
    CU_ASSERT_EQUAL(rds_emit_done(r, key, "length", 2, N, 0, 0, 0, 0, NULL, &ctx, NULL), 0);
    void *got;
    CU_ASSERT_EQUAL(wait_acks(r, &got, 1, 10000), 1);
    redisReply *xr = xrange(s, key);
    CU_ASSERT_FATAL(xr && xr->type == REDIS_REPLY_ARRAY);
    /* Subscriber rule: drop token entries whose seq is below the next
     * expected one; stop at the first final entry. */
    int next = 0, finals = 0, starts = 0, order_ok = 1;
    for (size_t i = 0; i < xr->elements && !finals; i++) {
        const char *ev = fld(xr, i, "event");
        if (strcmp(ev, "start") == 0) starts++;
        if (strcmp(ev, "done") == 0) finals++;
        if (strcmp(ev, "token") != 0) continue;
        int seq = atoi(fld(xr, i, "seq"));
        if (seq < next) continue;
        if (seq != next) order_ok = 0;
        const char *ids = fld(xr, i, "ids");
        for (const char *p = ids; *p;) {
            if (atoi(p) != next) order_ok = 0;
            next++;
            p = strchr(p, ' ');
            if (!p) break;
            p++;
        }
    }
    CU_ASSERT(order_ok);
    CU_ASSERT_EQUAL(next, N);
    CU_ASSERT_EQUAL(finals, 1);
    CU_ASSERT(starts >= 1);
    freeReplyObject(xr);
    rds_stats_t st;
    rds_stats(r, &st);
    CU_ASSERT(st.reconnects >= 1);
    CU_ASSERT_EQUAL(st.pending_entries, 0);
    rds_free(r);
    tu_redis_free(s);
}

static void tweak_small(rds_config *c) { c->max_pending_bytes = 8192; }

/* Bounded memory: with Redis down, emits fail with INF_EFULL once the
 * pending bytes would pass the limit; what was accepted arrives later. */
static void test_efull(void) {
    tu_redis *s = tu_redis_start(NULL);
    CU_ASSERT_FATAL(s != NULL);
    tu_redis_stop(s);
    rds *r = make(tu_redis_url(s), 1, 20, tweak_small);
    CU_ASSERT_FATAL(r != NULL);
    const char *key = "inferno:out:full";
    char text[100];
    memset(text, 'z', sizeof text);
    int accepted = 0, rc = 0;
    inf_error err = {0};
    for (int i = 0; i < 1000; i++) {
        int32_t id = i;
        rc = rds_emit_token(r, key, i, text, sizeof text, &id, 1, NULL, &err);
        if (rc != 0) break;
        accepted++;
    }
    CU_ASSERT_EQUAL(rc, INF_EFULL);
    CU_ASSERT(strstr(err.msg, "pending") != NULL);
    CU_ASSERT(accepted > 5 && accepted < 1000);
    rds_stats_t st;
    rds_stats(r, &st);
    CU_ASSERT(st.pending_bytes <= 8192);
    CU_ASSERT_EQUAL(rds_emit_done(r, key, "stop", 1, accepted, 0, 0, 0, 0, NULL, NULL, NULL), INF_EFULL);
    CU_ASSERT_EQUAL_FATAL(tu_redis_restart(s), 0);
    CU_ASSERT_EQUAL(rds_flush(r, 8000, NULL), 0);
    CU_ASSERT_EQUAL(cmd_int(s, "XLEN %s", key), accepted);
    /* room again */
    CU_ASSERT_EQUAL(rds_emit_done(r, key, "stop", 1, accepted, 0, 0, 0, 0, NULL, NULL, NULL), 0);
    CU_ASSERT_EQUAL(rds_flush(r, 5000, NULL), 0);
    CU_ASSERT_EQUAL(cmd_int(s, "XLEN %s", key), accepted + 1);
    rds_free(r);
    tu_redis_free(s);
}

static void tweak_nomax(rds_config *c) { c->stream_maxlen = 0; }

static void test_final_state(void) {
    rds *r = make(tu_redis_url(srv), 1, 20, tweak_nomax);
    CU_ASSERT_FATAL(r != NULL);
    int fin = -1, att = -1;
    CU_ASSERT_EQUAL(rds_final_state(r, "inferno:out:nosuch", &fin, &att, NULL), 0);
    CU_ASSERT_EQUAL(fin, 0);
    CU_ASSERT_EQUAL(att, 0);
    const char *key = "inferno:out:fstate";
    CU_ASSERT_EQUAL(rds_emit_start(r, key, "fstate", "w1", 1, 1, NULL), 0);
    /* more than one XRANGE page (500) */
    for (int i = 0; i < 1100; i++) {
        int32_t id = i;
        CU_ASSERT_EQUAL(rds_emit_token(r, key, i, "a", 1, &id, 1, NULL, NULL), 0);
    }
    CU_ASSERT_EQUAL(rds_emit_start(r, key, "fstate", "w2", 2, 1, NULL), 0);
    CU_ASSERT_EQUAL(rds_flush(r, 5000, NULL), 0);
    CU_ASSERT_EQUAL(rds_final_state(r, key, &fin, &att, NULL), 0);
    CU_ASSERT_EQUAL(fin, 0);
    CU_ASSERT_EQUAL(att, 2);
    for (int i = 0; i < 600; i++) {
        int32_t id = i;
        CU_ASSERT_EQUAL(rds_emit_token(r, key, i, "b", 1, &id, 1, NULL, NULL), 0);
    }
    CU_ASSERT_EQUAL(rds_emit_start(r, key, "fstate", "w3", 3, 1, NULL), 0);
    CU_ASSERT_EQUAL(rds_emit_done(r, key, "stop", 1, 600, 0, 0, 0, 0, NULL, NULL, NULL), 0);
    CU_ASSERT_EQUAL(rds_flush(r, 5000, NULL), 0);
    CU_ASSERT_EQUAL(rds_final_state(r, key, &fin, &att, NULL), 0);
    CU_ASSERT_EQUAL(fin, 1);
    CU_ASSERT_EQUAL(att, 3);
    CU_ASSERT_EQUAL(rds_emit_error(r, "inferno:out:ferr", "bad", "m", NULL, NULL), 0);
    CU_ASSERT_EQUAL(rds_flush(r, 5000, NULL), 0);
    CU_ASSERT_EQUAL(rds_final_state(r, "inferno:out:ferr", &fin, &att, NULL), 0);
    CU_ASSERT_EQUAL(fin, 1);
    CU_ASSERT_EQUAL(att, 0);
    rds_free(r);
}

/* A client that is not ours (Debian's redis-cli) reads the entries. */
static void test_foreign_cli(void) {
    rds *r = make(tu_redis_url(srv), 16, 20, NULL);
    CU_ASSERT_FATAL(r != NULL);
    const char *key = "inferno:out:cli";
    int32_t ids[2] = {5, 6};
    CU_ASSERT_EQUAL(rds_emit_start(r, key, "cli", "wcli", 1, 4, NULL), 0);
    CU_ASSERT_EQUAL(rds_emit_token(r, key, 0, "Once upon", 9, ids, 2, NULL, NULL), 0);
    CU_ASSERT_EQUAL(rds_emit_done(r, key, "stop", 4, 2, 0, 1, 2, 3, NULL, NULL, NULL), 0);
    CU_ASSERT_EQUAL(rds_flush(r, 5000, NULL), 0);
    char port[16];
    snprintf(port, sizeof port, "%d", tu_redis_port(srv));
    char *argv[] = {"/usr/bin/redis-cli", "-h", "127.0.0.1", "-p", port, "--raw", "XRANGE", (char *)key, "-", "+", NULL};
    char *out = NULL;
    int rc = tu_run_capture(argv, &out);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_FATAL(out != NULL);
    CU_ASSERT(strstr(out, "event\nstart\nrequest_id\ncli\nworker\nwcli\nattempt\n1\n") != NULL);
    CU_ASSERT(strstr(out, "event\ntoken\nseq\n0\ntext\nOnce upon\nids\n5 6\n") != NULL);
    CU_ASSERT(strstr(out, "event\ndone\nfinish_reason\nstop\n") != NULL);
    free(out);
    rds_free(r);
}

void test_register_redis_out(void) {
    CU_pSuite s = CU_add_suite("redis_out", suite_init, suite_clean);
    CU_add_test(s, "start/token/done/error fields", test_fields);
    CU_add_test(s, "stream key", test_stream_key);
    CU_add_test(s, "coalescing by flush_tokens", test_coalesce_count);
    CU_add_test(s, "coalescing by flush_ms", test_coalesce_timer);
    CU_add_test(s, "MAXLEN ~ and EXPIRE after final", test_maxlen_expire);
    CU_add_test(s, "open expiry replaced by final expiry", test_open_expire);
    CU_add_test(s, "rejected final acked, others go on", test_rejected_final);
    CU_add_test(s, "claim: the first request owns a stream", test_claim);
    CU_add_test(s, "admission checks: ownership, bounds, cancel key", test_checks);
    CU_add_test(s, "out_prefix over the worker's own keys refused", test_prefix_overlap);
    CU_add_test(s, "Redis down at create", test_down_at_create);
    CU_add_test(s, "Redis restarted mid-stream", test_restart_mid_stream);
    CU_add_test(s, "INF_EFULL while Redis is down", test_efull);
    CU_add_test(s, "final_state", test_final_state);
    CU_add_test(s, "redis-cli reads the entries", test_foreign_cli);
}
