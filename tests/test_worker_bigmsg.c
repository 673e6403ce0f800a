/* test_worker_bigmsg.c - suite "worker_bigmsg": request messages over the
 * worker's size limit (--max-message-bytes) end like any bad message, against
 * bin/inferno-worker with its own redis-server and mock Kafka cluster. The
 * finding: a request 1 byte over the 1 MiB limit was rejected, but its DLQ
 * copy was refused by the producer (message.max.bytes) and retried forever,
 * so the request stayed in flight, its partition's commit was stuck behind
 * it and SIGTERM waited the whole drain timeout. Now: the sender gets an
 * error (id from the message key), the DLQ gets the copy (cut to fit where
 * needed, with x-inferno-truncated / x-inferno-original-size), in-flight goes
 * back to 0, the offset commits and SIGTERM is quick. */
#include "test_worker_harness.h"

#define DRAIN_S "20" /* the drain timeout a stuck request would make SIGTERM wait */

static void print_logs_on_failure(wh *h, int failed_before) {
    if ((int)CU_get_number_of_failures() > failed_before)
        for (int i = 0; i < h->n_workers; i++) wh_print_log(h, i, 30);
}

/* An encoded request (single-object framing) of exactly len bytes: a
 * prompt of 'a's sized to fit. malloc'd; NULL on failure. */
static uint8_t *request_of_size(wh *h, const char *id, size_t len) {
    size_t plen = len > 64 ? len - 64 : 1;
    for (int round = 0; round < 8; round++) {
        inf_request r;
        char *p = malloc(plen + 1);
        if (!p) return NULL;
        memset(p, 'a', plen);
        p[plen] = '\0';
        wh_req(&r, id, "", 4);
        free(r.prompt);
        r.prompt = p;
        uint8_t *buf = NULL;
        size_t got = 0;
        inf_error err = {0};
        int rc = inf_avro_encode(h->reg, &r, INF_AVRO_FRAMING_SINGLE_OBJECT, 0, &buf, &got, &err);
        inf_request_free(&r);
        if (rc) return NULL;
        if (got == len) return buf;
        free(buf);
        plen = plen + len - got; /* the varint of the length may shift it by a byte: go again */
    }
    return NULL;
}

/* The "message" field of the stream's error entry (static buffer). */
static const char *error_message(wh *h, const char *id) {
    static char msg[512];
    msg[0] = '\0';
    char key[300];
    wh_key(key, sizeof key, id);
    redisReply *r = tu_redis_cmd(h->redis, "XRANGE %s - +", key);
    for (size_t e = 0; r && r->type == REDIS_REPLY_ARRAY && e < r->elements; e++) {
        const redisReply *kv = r->element[e]->element[1];
        const char *ev = wh_field(kv, "event", NULL), *m = wh_field(kv, "message", NULL);
        if (ev && !strcmp(ev, "error") && m) snprintf(msg, sizeof msg, "%s", m);
    }
    if (r) freeReplyObject(r);
    return msg;
}

typedef struct dlq_copy {
    int found;
    size_t value_len;
    int value_prefix_ok; /* the value is a prefix of the original */
    char reason[256], request_id[160], truncated[8], original_size[32], topic[128];
} dlq_copy;

static void header_str(rd_kafka_headers_t *h, const char *name, char *out, size_t cap) {
    const void *v = NULL;
    size_t sz = 0;
    out[0] = '\0';
    if (h && rd_kafka_header_get_last(h, name, &v, &sz) == 0 && v)
        snprintf(out, cap, "%.*s", (int)(sz < cap ? sz : cap - 1), (const char *)v);
}

/* Reads the DLQ record keyed `key` (bounded); orig: the original value. */
static dlq_copy read_dlq(wh *h, const char *key, const uint8_t *orig, size_t orig_len) {
    dlq_copy d;
    memset(&d, 0, sizeof d);
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", h->brokers, errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "group.id", "bigmsg-dlq-reader", errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "log_level", "2", errstr, sizeof errstr);
    rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (!c) return d;
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(parts, WH_TOPIC_DLQ, 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(c, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    long long end = wh_now_ms() + 20000;
    while (!d.found && wh_now_ms() < end) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 100);
        if (!m) continue;
        if (!m->err && m->key_len == strlen(key) && !memcmp(m->key, key, m->key_len)) {
            d.found = 1;
            d.value_len = m->len;
            d.value_prefix_ok = m->len <= orig_len && (m->len == 0 || !memcmp(m->payload, orig, m->len));
            rd_kafka_headers_t *hd = NULL;
            rd_kafka_message_headers(m, &hd);
            header_str(hd, "x-inferno-reason", d.reason, sizeof d.reason);
            header_str(hd, "x-inferno-request-id", d.request_id, sizeof d.request_id);
            header_str(hd, "x-inferno-truncated", d.truncated, sizeof d.truncated);
            header_str(hd, "x-inferno-original-size", d.original_size, sizeof d.original_size);
            header_str(hd, "x-inferno-source-topic", d.topic, sizeof d.topic);
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    return d;
}

/* Polls /metrics until name == want (bounded); the last value read. */
static double wait_metric(int port, const char *name, double want, int ms) {
    static char body[1 << 17];
    long long end = wh_now_ms() + ms;
    double v = -1;
    do {
        if (wh_http_get(port, "/metrics", body, sizeof body) == 200) v = wh_metric(body, name);
        if (v == want) break;
        wh_sleep_ms(100);
    } while (wh_now_ms() < end);
    return v;
}

/* The sender's error, the DLQ copy, in-flight 0, the offset committed and
 * a quick SIGTERM, for a value of len bytes against a worker started with
 * extra flags (limit: its --max-message-bytes). */
static void run_case(const char *wid, const char *id, size_t len, size_t limit, const char *const *extra_flags,
                     int raw, dlq_copy *out) {
    wh h;
    int f0 = (int)CU_get_number_of_failures();
    memset(out, 0, sizeof *out);
    if (wh_setup(&h, 1, 0)) {
        wh_teardown(&h);
        return;
    }
    int port = tu_free_port();
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    const char *extra[16] = {"--metrics-addr", addr, "--drain-timeout-s", DRAIN_S, "--heartbeat-ms", "300"};
    int n = 6;
    for (int i = 0; extra_flags && extra_flags[i] && n < 15; i++) extra[n++] = extra_flags[i];
    extra[n] = NULL;
    int w = wh_worker_start(&h, wid, extra);
    CU_ASSERT_FATAL(w >= 0);
    if (wh_wait_status(&h, wid, "ready", 30000) != 0) {
        CU_FAIL("worker not ready");
        print_logs_on_failure(&h, f0);
        wh_teardown(&h);
        return;
    }
    uint8_t *val = NULL;
    if (raw) {
        val = malloc(len);
        for (size_t i = 0; val && i < len; i++) val[i] = (uint8_t)(i * 7 + 3);
    } else {
        val = request_of_size(&h, id, len);
    }
    CU_ASSERT_PTR_NOT_NULL_FATAL(val);
    CU_ASSERT_EQUAL(wh_produce_raw(&h, WH_TOPIC_N, id, val, len), 0);
    /* a plain request behind it on the same partition */
    char after[64];
    snprintf(after, sizeof after, "%s-after", id);
    CU_ASSERT_EQUAL(wh_send_simple(&h, WH_TOPIC_N, after, "once upon a time", 4), 0);
    CU_ASSERT_EQUAL(wh_flush(&h), 0);

    /* the sender learns why, on its default stream (id from the key) */
    wh_stream s;
    CU_ASSERT_EQUAL(wh_wait_final(&h, id, 30000, &s), 0);
    CU_ASSERT_EQUAL(s.n_error, 1);
    CU_ASSERT_EQUAL(s.n_start, 0);
    CU_ASSERT_STRING_EQUAL(s.code, "request_too_large");
    wh_stream_free(&s);
    char sz[32], lim[32];
    snprintf(sz, sizeof sz, "%zu", len);
    snprintf(lim, sizeof lim, "%zu", limit);
    const char *msg = error_message(&h, id);
    CU_ASSERT_TRUE(strstr(msg, sz) && strstr(msg, lim));
    if (!(strstr(msg, sz) && strstr(msg, lim))) fprintf(stderr, "\n    error message: '%s'\n", msg);
    CU_ASSERT_EQUAL(wh_wait_final(&h, after, 30000, &s), 0);
    CU_ASSERT_EQUAL(s.n_done, 1);
    wh_stream_free(&s);

    *out = read_dlq(&h, id, val, len);
    CU_ASSERT_TRUE(out->found);
    CU_ASSERT_TRUE(out->value_prefix_ok);
    CU_ASSERT_EQUAL(strncmp(out->reason, "request_too_large", 17), 0);
    CU_ASSERT_STRING_EQUAL(out->request_id, id);
    CU_ASSERT_STRING_EQUAL(out->topic, WH_TOPIC_N);
    if (out->truncated[0]) {
        CU_ASSERT_STRING_EQUAL(out->truncated, "1");
        CU_ASSERT_STRING_EQUAL(out->original_size, sz);
        CU_ASSERT_TRUE(out->value_len < len);
    } else {
        CU_ASSERT_EQUAL(out->value_len, len);
    }

    /* nothing left in flight, nothing pending, the partition committed */
    CU_ASSERT_EQUAL(wait_metric(port, "inferno_requests_in_flight", 0, 20000), 0);
    CU_ASSERT_EQUAL(wait_metric(port, "inferno_dlq_pending", 0, 5000), 0);
    CU_ASSERT_EQUAL(wait_metric(port, "inferno_dlq_given_up_total", 0, 1000), 0);
    CU_ASSERT_EQUAL(wait_metric(port, "inferno_dlq_truncated_total", out->truncated[0] ? 1 : 0, 1000),
                    out->truncated[0] ? 1 : 0);
    long long end = wh_now_ms() + 20000, unc;
    while ((unc = wh_uncommitted(&h, "inferno-workers", 1)) != 0 && wh_now_ms() < end) wh_sleep_ms(200);
    CU_ASSERT_EQUAL(unc, 0);

    /* SIGTERM: nothing to wait for, so well under the drain timeout */
    long long t0 = wh_now_ms();
    CU_ASSERT_EQUAL(wh_worker_stop(&h, w, 40000), 0);
    long long took = wh_now_ms() - t0;
    CU_ASSERT(took < 5000);
    if (took >= 5000) fprintf(stderr, "\n    SIGTERM took %lld ms (drain timeout %s s)\n", took, DRAIN_S);
    free(val);
    print_logs_on_failure(&h, f0);
    wh_teardown(&h);
}

/* 1 MiB + 1 byte against the default limit. */
static void test_just_over_default_limit(void) {
    dlq_copy d;
    run_case("bigmsg-w1", "bigmsg-1", 1048577, 1048576, NULL, 0, &d);
}

/* A small --max-message-bytes: the DLQ producer's limit follows it, so the
 * copy of a much bigger value must be cut to fit. */
static void test_small_limit_truncated_copy(void) {
    dlq_copy d;
    const char *flags[] = {"--max-message-bytes", "65536", NULL};
    run_case("bigmsg-w2", "bigmsg-2", 200000, 65536, flags, 1, &d);
    CU_ASSERT_STRING_EQUAL(d.truncated, "1");
    CU_ASSERT_TRUE(d.value_len > 65536 / 2 && d.value_len < 200000);
}

void test_register_worker_bigmsg(void) {
    CU_pSuite s = CU_add_suite("worker_bigmsg", NULL, NULL);
    CU_add_test(s, "1 MiB + 1 byte: error to the sender, DLQ copy, committed, quick SIGTERM",
                test_just_over_default_limit);
    CU_add_test(s, "--max-message-bytes 64 KiB, 200 kB value: truncated DLQ copy", test_small_limit_truncated_copy);
}
