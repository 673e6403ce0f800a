/* test_kafka_dlq.c - suite "kafka_dlq": every message handed to the
 * dead-letter producer comes back from kin_poll_dlq_acks, so its offset
 * commits and in-flight accounting cannot leak. Against librdkafka's mock
 * cluster over loopback (its own, so produce errors can be injected):
 *   - a value bigger than the DLQ producer takes (max_message_bytes small:
 *     the local producer would refuse it with MSG_SIZE_TOO_LARGE) is
 *     truncated, with x-inferno-truncated / x-inferno-original-size;
 *   - a broker refusing the copy's size gets a truncated copy next;
 *   - a permanent error (topic authorization) is given up after a bounded
 *     number of attempts and the message is handed back all the same;
 *   - -X overrides that contradict max_message_bytes fail kin_create.
 * Every wait is bounded. */
#include <CUnit/CUnit.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka_in.h"
#include "test_kafka_in.h"
#include "testutil.h"

#define API_PRODUCE 0 /* Kafka protocol ApiKey of Produce (for error injection) */
#define LIMIT 8192    /* max_message_bytes of the suite's consumer */

static rd_kafka_t *g_mock_rk;
static rd_kafka_mock_cluster_t *g_mc;
static const char *g_bs;
static kin *g_k;
static rd_kafka_t *g_reader; /* assign() consumer of kdlq.dlq */

static int suite_init(void) {
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", "", errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "log_level", "2", errstr, sizeof errstr);
    if (!(g_mock_rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr))) return 1;
    if (!(g_mc = rd_kafka_mock_cluster_new(g_mock_rk, 1))) return 1;
    const char *topics[] = {"kdlq.high", "kdlq.normal", "kdlq.low", "kdlq.dlq"};
    for (int i = 0; i < 4; i++)
        if (rd_kafka_mock_topic_create(g_mc, topics[i], 1, 1)) return 1;
    g_bs = rd_kafka_mock_cluster_bootstraps(g_mc);
    return 0;
}

static int suite_clean(void) {
    if (g_reader) {
        rd_kafka_consumer_close(g_reader);
        rd_kafka_destroy(g_reader);
        g_reader = NULL;
    }
    if (g_k) {
        kin_close(g_k, 5000, NULL);
        kin_free(g_k);
        g_k = NULL;
    }
    if (g_mc) rd_kafka_mock_cluster_destroy(g_mc);
    if (g_mock_rk) rd_kafka_destroy(g_mock_rk);
    g_mc = NULL;
    g_mock_rk = NULL;
    return 0;
}

static const char *const PROPS[] = {"heartbeat.interval.ms=500", "log_level=2", "fetch.wait.max.ms=10"};

static kin_config suite_config(void) {
    kin_config c = kin_config_default();
    c.brokers = g_bs;
    c.group = "kdlq-group";
    c.topics[0] = "kdlq.high";
    c.topics[1] = "kdlq.normal";
    c.topics[2] = "kdlq.low";
    c.dlq_topic = "kdlq.dlq";
    c.session_timeout_ms = 6000;
    c.max_message_bytes = LIMIT;
    c.props = PROPS;
    c.n_props = 3;
    return c;
}

/* The suite's consumer, created and joined on first use. */
static kin *consumer(void) {
    if (g_k) return g_k;
    kin_config c = suite_config();
    inf_error err = {0};
    if (kin_create(&g_k, &c, &err) != 0) {
        fprintf(stderr, "\n    kin_create: %s\n", err.msg);
        return NULL;
    }
    if (kt_wait_assigned(g_k, 3, NULL, NULL, 0) != 0) fprintf(stderr, "\n    no assignment\n");
    return g_k;
}

/* Produces a value of len bytes (byte i = 'a' + i % 26) with key and a
 * traceparent header to kdlq.normal; 0 or -1. */
static int produce_value(const char *key, size_t len) {
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", g_bs, errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "message.max.bytes", "4194304", errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "linger.ms", "0", errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "log_level", "2", errstr, sizeof errstr);
    rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!p) return -1;
    char *v = malloc(len);
    for (size_t i = 0; v && i < len; i++) v[i] = (char)('a' + i % 26);
    rd_kafka_headers_t *h = rd_kafka_headers_new(1);
    rd_kafka_header_add(h, "traceparent", -1, "00-abc-01", -1);
    rd_kafka_resp_err_t e = v ? rd_kafka_producev(p, RD_KAFKA_V_TOPIC("kdlq.normal"), RD_KAFKA_V_PARTITION(0),
                                                  RD_KAFKA_V_KEY((void *)key, strlen(key)), RD_KAFKA_V_VALUE(v, len),
                                                  RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                                  RD_KAFKA_V_END)
                              : RD_KAFKA_RESP_ERR__FAIL;
    if (e) rd_kafka_headers_destroy(h);
    free(v);
    return e ? -1 : kt_flush_destroy(p);
}

/* Sends m to the DLQ and polls (bounded) until kin_poll_dlq_acks hands it
 * back; 0 when it did. */
static int dlq_round_trip(kin *k, kin_msg *m, const char *reason, const char *id, int ms) {
    inf_error err = {0};
    int rc = kin_send_dlq(k, m, reason, id, &err);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc) {
        fprintf(stderr, "\n    kin_send_dlq: %s\n", err.msg);
        return -1;
    }
    long long end = kt_now_ms() + ms;
    while (kt_now_ms() < end) {
        kin_msg *x = NULL, *acked[4];
        kin_poll(k, 20, &x, NULL);
        if (x) kin_msg_done(k, x);
        int n = kin_poll_dlq_acks(k, acked, 4);
        if (n == 1 && acked[0] == m) return 0;
        if (n) return -1;
    }
    return -1;
}

typedef struct dlq_rec {
    size_t value_len;
    char *value;
    rd_kafka_headers_t *hdrs;
} dlq_rec;

/* Reads the kdlq.dlq record with key (bounded). 0 when found. */
static int read_dlq(const char *key, dlq_rec *out) {
    memset(out, 0, sizeof *out);
    if (!g_reader) {
        char errstr[512];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_conf_set(conf, "bootstrap.servers", g_bs, errstr, sizeof errstr);
        rd_kafka_conf_set(conf, "group.id", "kdlq-reader", errstr, sizeof errstr);
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof errstr);
        rd_kafka_conf_set(conf, "log_level", "2", errstr, sizeof errstr);
        if (!(g_reader = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr))) return -1;
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, "kdlq.dlq", 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
        rd_kafka_assign(g_reader, l);
        rd_kafka_topic_partition_list_destroy(l);
    }
    long long end = kt_now_ms() + 10000;
    while (kt_now_ms() < end) {
        rd_kafka_message_t *r = rd_kafka_consumer_poll(g_reader, 100);
        if (!r) continue;
        int match = !r->err && r->key_len == strlen(key) && memcmp(r->key, key, r->key_len) == 0;
        if (match) {
            out->value_len = r->len;
            out->value = malloc(r->len + 1);
            if (out->value && r->len) memcpy(out->value, r->payload, r->len);
            rd_kafka_headers_t *h = NULL;
            if (rd_kafka_message_headers(r, &h) == 0 && h) out->hdrs = rd_kafka_headers_copy(h);
        }
        rd_kafka_message_destroy(r);
        if (match) return 0;
    }
    return -1;
}

static void dlq_rec_free(dlq_rec *r) {
    free(r->value);
    if (r->hdrs) rd_kafka_headers_destroy(r->hdrs);
    memset(r, 0, sizeof *r);
}

/* Header name of r equals want (NULL: must be absent). */
static void expect_header(const dlq_rec *r, const char *name, const char *want) {
    const void *v = NULL;
    size_t sz = 0;
    int found = r->hdrs && rd_kafka_header_get_last(r->hdrs, name, &v, &sz) == 0;
    if (!want) {
        CU_ASSERT_FALSE(found);
        return;
    }
    CU_ASSERT_TRUE(found && v && sz == strlen(want) && memcmp(v, want, sz) == 0);
    if (!(found && v && sz == strlen(want) && memcmp(v, want, sz) == 0))
        fprintf(stderr, "\n    header %s: '%.*s', want '%s'\n", name, found && v ? (int)sz : 0,
                found && v ? (const char *)v : "", want);
}

/* The value is a prefix of produce_value's bytes. */
static int is_prefix(const dlq_rec *r) {
    for (size_t i = 0; i < r->value_len; i++)
        if (r->value[i] != (char)('a' + i % 26)) return 0;
    return 1;
}

/* ---- tests --------------------------------------------------------------- */

/* -X settings that cannot serve max_message_bytes are refused up front,
 * naming both values; consistent ones are accepted. */
static void test_limits_checked(void) {
    kin_config c = suite_config();
    c.brokers = "127.0.0.1:1";
    c.max_message_bytes = 1048576;
    struct {
        const char *prop, *n1, *n2;
    } bad[] = {
        {"producer.message.max.bytes=1000000", "message.max.bytes=1000000", "1048576"},
        {"fetch.max.bytes=500000", "fetch.max.bytes=500000", "1048576"},
        {"max.partition.fetch.bytes=65536", "max.partition.fetch.bytes=65536", "1048576"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *props[] = {"log_level=2", bad[i].prop};
        c.props = props;
        c.n_props = 2;
        kin *k = NULL;
        inf_error err = {0};
        CU_ASSERT_EQUAL(kin_create(&k, &c, &err), INF_EINVAL);
        CU_ASSERT_PTR_NULL(k);
        int ok = strstr(err.msg, bad[i].n1) && strstr(err.msg, bad[i].n2);
        CU_ASSERT_TRUE(ok);
        if (!ok) fprintf(stderr, "\n    %s -> '%s'\n", bad[i].prop, err.msg);
        kin_free(k);
    }
    kin_config b = c;
    b.max_message_bytes = 100; /* below the 1 KiB floor */
    b.props = NULL;
    b.n_props = 0;
    kin *k = NULL;
    inf_error err = {0};
    CU_ASSERT_EQUAL(kin_create(&k, &b, &err), INF_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "max_message_bytes"));
    kin_free(k);
    k = NULL;
    /* bigger limits than needed are fine */
    const char *good[] = {"log_level=2", "producer.message.max.bytes=4000000", "fetch.max.bytes=8000000"};
    c.props = good;
    c.n_props = 3;
    CU_ASSERT_EQUAL(kin_create(&k, &c, &err), 0);
    if (!k) fprintf(stderr, "\n    %s\n", err.msg);
    kin_free(k);
}

/* A value far over what the DLQ producer takes: the copy is cut to fit and
 * says so; the message comes back and its offset commits. */
static void test_truncated_copy(void) {
    kin *k = consumer();
    CU_ASSERT_PTR_NOT_NULL_FATAL(k);
    enum { BIG = 65536 };
    CU_ASSERT_EQUAL_FATAL(produce_value("kdlq-big-1", BIG), 0);
    kin_msg *m = NULL;
    CU_ASSERT_EQUAL_FATAL(kt_poll_n(k, &m, 1, 15000), 1);
    CU_ASSERT_EQUAL(m->value_len, BIG);
    int64_t off = m->offset;
    CU_ASSERT_EQUAL_FATAL(dlq_round_trip(k, m, "request_too_large: too big", "kdlq-big-1", 15000), 0);
    size_t sent = 0;
    const char *why = NULL;
    CU_ASSERT_EQUAL(kin_dlq_result(m, &sent, &why), KIN_DLQ_TRUNCATED);
    /* the producer takes LIMIT + KIN_DLQ_HEADROOM bytes: most of that is value */
    CU_ASSERT_TRUE(sent > LIMIT && sent < LIMIT + KIN_DLQ_HEADROOM);
    kin_msg_done(k, m);
    CU_ASSERT_EQUAL(kin_inflight(k), 0);

    dlq_rec r;
    CU_ASSERT_EQUAL_FATAL(read_dlq("kdlq-big-1", &r), 0);
    CU_ASSERT_EQUAL(r.value_len, sent);
    CU_ASSERT_TRUE(is_prefix(&r));
    char num[32];
    expect_header(&r, "x-inferno-truncated", "1");
    snprintf(num, sizeof num, "%d", BIG);
    expect_header(&r, "x-inferno-original-size", num);
    expect_header(&r, "x-inferno-reason", "request_too_large: too big");
    expect_header(&r, "x-inferno-source-topic", "kdlq.normal");
    expect_header(&r, "x-inferno-source-partition", "0");
    snprintf(num, sizeof num, "%" PRId64, off);
    expect_header(&r, "x-inferno-source-offset", num);
    expect_header(&r, "x-inferno-request-id", "kdlq-big-1");
    expect_header(&r, "traceparent", "00-abc-01");
    dlq_rec_free(&r);
    CU_ASSERT_EQUAL(kt_wait_committed(g_bs, "kdlq-group", "kdlq.normal", 0, off + 1, k, NULL), off + 1);
    kin_stats_t st;
    kin_stats(k, &st);
    CU_ASSERT_EQUAL(st.dlq_truncated, 1);
    CU_ASSERT_EQUAL(st.dlq_given_up, 0);
    CU_ASSERT_EQUAL(st.dlq_pending, 0);
}

/* A copy that fits locally but that the broker refuses as too large is
 * sent again, truncated. */
static void test_broker_refuses_size(void) {
    kin *k = consumer();
    CU_ASSERT_PTR_NOT_NULL_FATAL(k);
    enum { LEN = 6000 }; /* fits the producer's limit whole */
    CU_ASSERT_EQUAL_FATAL(produce_value("kdlq-big-2", LEN), 0);
    kin_msg *m = NULL;
    CU_ASSERT_EQUAL_FATAL(kt_poll_n(k, &m, 1, 15000), 1);
    int64_t off = m->offset;
    rd_kafka_mock_push_request_errors(g_mc, API_PRODUCE, 1, RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
    CU_ASSERT_EQUAL_FATAL(dlq_round_trip(k, m, "bad_message: x", "kdlq-big-2", 15000), 0);
    size_t sent = 0;
    CU_ASSERT_EQUAL(kin_dlq_result(m, &sent, NULL), KIN_DLQ_TRUNCATED);
    CU_ASSERT_TRUE(sent > 0 && sent < LEN);
    kin_msg_done(k, m);
    dlq_rec r;
    CU_ASSERT_EQUAL_FATAL(read_dlq("kdlq-big-2", &r), 0);
    CU_ASSERT_EQUAL(r.value_len, sent);
    CU_ASSERT_TRUE(is_prefix(&r));
    expect_header(&r, "x-inferno-truncated", "1");
    expect_header(&r, "x-inferno-original-size", "6000");
    expect_header(&r, "x-inferno-reason", "bad_message: x");
    dlq_rec_free(&r);
    CU_ASSERT_EQUAL(kt_wait_committed(g_bs, "kdlq-group", "kdlq.normal", 0, off + 1, k, NULL), off + 1);
    kin_stats_t st;
    kin_stats(k, &st);
    CU_ASSERT_EQUAL(st.dlq_truncated, 2);
    CU_ASSERT_TRUE(st.dlq_failed >= 1);
    CU_ASSERT_EQUAL(st.dlq_given_up, 0);
}

/* A permanent refusal that no truncation cures: bounded attempts, then the
 * message is handed back anyway (given up, counted). */
static void test_permanent_error_given_up(void) {
    kin *k = consumer();
    CU_ASSERT_PTR_NOT_NULL_FATAL(k);
    CU_ASSERT_EQUAL_FATAL(produce_value("kdlq-denied", 100), 0);
    kin_msg *m = NULL;
    CU_ASSERT_EQUAL_FATAL(kt_poll_n(k, &m, 1, 15000), 1);
    int64_t off = m->offset;
    kin_stats_t st0;
    kin_stats(k, &st0);
    rd_kafka_resp_err_t errs[50];
    for (int i = 0; i < 50; i++) errs[i] = RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED;
    rd_kafka_mock_push_request_errors_array(g_mc, API_PRODUCE, 50, errs);
    long long t0 = kt_now_ms();
    int back = dlq_round_trip(k, m, "bad_message: y", "kdlq-denied", 20000);
    long long took = kt_now_ms() - t0;
    rd_kafka_mock_clear_request_errors(g_mc, API_PRODUCE);
    CU_ASSERT_EQUAL_FATAL(back, 0); /* else m is still the producer's */
    const char *why = NULL;
    CU_ASSERT_EQUAL(kin_dlq_result(m, NULL, &why), KIN_DLQ_GAVE_UP);
    CU_ASSERT_TRUE(why && strstr(why, "uthoriz"));
    if (why) fprintf(stderr, "\n    given up after %lld ms: %s\n", took, why);
    kin_msg_done(k, m);
    CU_ASSERT_EQUAL(kin_inflight(k), 0);
    CU_ASSERT_EQUAL(kt_wait_committed(g_bs, "kdlq-group", "kdlq.normal", 0, off + 1, k, NULL), off + 1);
    kin_stats_t st;
    kin_stats(k, &st);
    CU_ASSERT_EQUAL(st.dlq_given_up, st0.dlq_given_up + 1);
    CU_ASSERT_TRUE(st.dlq_failed > st0.dlq_failed);
    CU_ASSERT_EQUAL(st.dlq_pending, 0);
    /* the producer still works for the next one */
    CU_ASSERT_EQUAL_FATAL(produce_value("kdlq-after", 10), 0);
    CU_ASSERT_EQUAL_FATAL(kt_poll_n(k, &m, 1, 15000), 1);
    CU_ASSERT_EQUAL(dlq_round_trip(k, m, "bad_message: z", "kdlq-after", 15000), 0);
    CU_ASSERT_EQUAL(kin_dlq_result(m, NULL, NULL), KIN_DLQ_DELIVERED);
    kin_msg_done(k, m);
}

void test_register_kafka_dlq(void) {
    CU_pSuite s = CU_add_suite("kafka_dlq", suite_init, suite_clean);
    CU_add_test(s, "limits: contradicting -X overrides refused", test_limits_checked);
    CU_add_test(s, "value over the producer limit: truncated copy, handed back", test_truncated_copy);
    CU_add_test(s, "broker refuses the size: truncated copy next", test_broker_refuses_size);
    CU_add_test(s, "permanent error: bounded attempts, given up, handed back", test_permanent_error_given_up);
}
