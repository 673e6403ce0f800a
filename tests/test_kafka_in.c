/* test_kafka_in.c - suites "kafka_offsets" (the per-partition in-flight
 * tracker) and "kafka_in" (queue/kafka_in against librdkafka's mock cluster
 * over loopback, fed by a plain librdkafka producer).
 *
 * Group joins on the mock cluster take seconds (3 s for a first member, about
 * session.timeout.ms - 1 s when a member joins or leaves later), so the suite
 * shares one cluster, and one consumer across the first three tests; every
 * wait is bounded. */
#include <CUnit/CUnit.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kafka_in.h"
#include "kafka_mock.h"
#include "kafka_offsets.h"
#include "testutil.h"
#include "test_kafka_in.h"

#define PARTS 2 /* partitions per topic */

static inf_kafka_mock *g_mock;
static const char *g_bs;
static kin *g_k1; /* shared consumer over kin1.* (tests 1-3) */

long long kt_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void kt_sleep_ms(int ms) {
    struct timespec d = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&d, NULL);
}

/* ---- kafka_offsets ----------------------------------------------------- */

static void test_otrack(void) {
    kin_otrack t;
    kin_otrack_init(&t);
    CU_ASSERT_EQUAL(kin_otrack_committable(&t), -1);
    for (int64_t o = 10; o < 15; o++) CU_ASSERT_EQUAL(kin_otrack_add(&t, o), 0);
    CU_ASSERT_EQUAL(kin_otrack_committable(&t), 10);
    CU_ASSERT_EQUAL(kin_otrack_done(&t, 12), 0);
    CU_ASSERT_EQUAL(kin_otrack_done(&t, 14), 0);
    CU_ASSERT_EQUAL(kin_otrack_committable(&t), 10); /* never past an unfinished offset */
    CU_ASSERT_EQUAL(kin_otrack_done(&t, 12), -1);    /* not in flight any more */
    CU_ASSERT_EQUAL(kin_otrack_done(&t, 10), 0);
    CU_ASSERT_EQUAL(kin_otrack_committable(&t), 11);
    CU_ASSERT_EQUAL(kin_otrack_done(&t, 11), 0);
    CU_ASSERT_EQUAL(kin_otrack_committable(&t), 13);
    CU_ASSERT_EQUAL(kin_otrack_done(&t, 13), 0);
    CU_ASSERT_EQUAL(kin_otrack_committable(&t), 15); /* all done: last + 1 */
    /* gaps (compaction) and a rewind */
    CU_ASSERT_EQUAL(kin_otrack_add(&t, 20), 0);
    CU_ASSERT_EQUAL(kin_otrack_add(&t, 17), 0);
    CU_ASSERT_EQUAL(kin_otrack_committable(&t), 17);
    CU_ASSERT_EQUAL(kin_otrack_done(&t, 17), 0);
    CU_ASSERT_EQUAL(kin_otrack_committable(&t), 20);
    CU_ASSERT_EQUAL(kin_otrack_done(&t, 20), 0);
    CU_ASSERT_EQUAL(kin_otrack_committable(&t), 21);
    /* many, finished in a scrambled order */
    uint64_t seed = 5;
    enum { N = 300 };
    int64_t order[N];
    for (int i = 0; i < N; i++) {
        order[i] = 100 + i;
        CU_ASSERT_EQUAL(kin_otrack_add(&t, 100 + i), 0);
    }
    for (int i = N - 1; i > 0; i--) {
        int j = (int)(tu_rand_u64(&seed) % (uint64_t)(i + 1));
        int64_t x = order[i];
        order[i] = order[j];
        order[j] = x;
    }
    char done[N] = {0};
    for (int i = 0; i < N; i++) {
        CU_ASSERT_EQUAL(kin_otrack_done(&t, order[i]), 0);
        done[order[i] - 100] = 1;
        int lowest = 0;
        while (lowest < N && done[lowest]) lowest++;
        CU_ASSERT_EQUAL(kin_otrack_committable(&t), 100 + lowest);
    }
    kin_otrack_reset(&t);
}

/* ---- helpers ----------------------------------------------------------- */

rd_kafka_t *kt_new_producer(const char *bs) {
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bs, errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "message.timeout.ms", "30000", errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "linger.ms", "0", errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "log_level", "2", errstr, sizeof errstr);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!rk) fprintf(stderr, "producer: %s\n", errstr);
    return rk;
}

int kt_produce(rd_kafka_t *p, const char *topic, int32_t part, const char *key, const char *val,
                   const char *hname, const char *hval) {
    rd_kafka_headers_t *h = rd_kafka_headers_new(1);
    if (hname) rd_kafka_header_add(h, hname, -1, hval, -1);
    rd_kafka_resp_err_t e = rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(part),
                                              RD_KAFKA_V_KEY((void *)key, strlen(key)),
                                              RD_KAFKA_V_VALUE((void *)val, strlen(val)), RD_KAFKA_V_HEADERS(h),
                                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    if (e) {
        rd_kafka_headers_destroy(h);
        fprintf(stderr, "produce %s: %s\n", topic, rd_kafka_err2str(e));
    }
    return e ? -1 : 0;
}

int kt_flush_destroy(rd_kafka_t *p) {
    int rc = rd_kafka_flush(p, 30000) == RD_KAFKA_RESP_ERR_NO_ERROR && rd_kafka_outq_len(p) == 0 ? 0 : -1;
    rd_kafka_destroy(p);
    return rc;
}

static const char *const TEST_PROPS[] = {"heartbeat.interval.ms=500", "log_level=2"};

kin *kt_new_consumer(const char *bs, const char *prefix, int max_inflight, int dlq) {
    char t[3][64], d[64], g[64];
    kin_config c = kin_config_default();
    c.brokers = bs;
    snprintf(g, sizeof g, "%s-group", prefix);
    c.group = g;
    const char *lv[] = {"high", "normal", "low"};
    for (int i = 0; i < 3; i++) {
        snprintf(t[i], sizeof t[i], "%s.%s", prefix, lv[i]);
        c.topics[i] = t[i];
    }
    snprintf(d, sizeof d, "%s.dlq", prefix);
    c.dlq_topic = dlq ? d : NULL;
    c.max_inflight = max_inflight;
    c.session_timeout_ms = 6000; /* shorter sessions expire during outages on the mock */
    c.props = TEST_PROPS;
    c.n_props = 2;
    kin *k = NULL;
    inf_error err = {0};
    if (kin_create(&k, &c, &err) != 0) fprintf(stderr, "\n    kin_create: %s\n", err.msg);
    return k;
}

/* Polls k until it holds `assigned` partitions (or, with assigned < 0, any). */
int kt_wait_assigned(kin *k, int assigned, kin_msg **got, int *n, int cap) {
    long long end = kt_now_ms() + JOIN_MS;
    while (kt_now_ms() < end) {
        int a = kin_assigned(k);
        if (assigned < 0 ? a > 0 : a == assigned) return 0;
        kin_msg *m = NULL;
        kin_poll(k, 50, &m, NULL);
        if (m) {
            if (got && *n < cap) got[(*n)++] = m;
            else kin_msg_done(k, m);
        }
    }
    return -1;
}

/* Polls until want messages were received into got (or ms passed). */
int kt_poll_n(kin *k, kin_msg **got, int want, int ms) {
    int n = 0;
    long long end = kt_now_ms() + ms;
    while (n < want && kt_now_ms() < end) {
        kin_msg *m = NULL;
        if (kin_poll(k, 100, &m, NULL) == 0 && m) got[n++] = m;
    }
    return n;
}

/* Committed offset of group for topic/partition, read by a second handle
 * (it does not join the group); -1 on error, -1001 when none. */
int64_t kt_committed(const char *bs, const char *group, const char *topic, int32_t part) {
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bs, errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "log_level", "2", errstr, sizeof errstr);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (!rk) return -1;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, part);
    int64_t off = -1;
    if (rd_kafka_committed(rk, l, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR && !l->elems[0].err) off = l->elems[0].offset;
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(rk);
    return off;
}

/* Waits (bounded) until the committed offset equals want; returns the last
 * read. Messages k delivers meanwhile are finished and counted in
 * *unexpected (may be NULL). No CUnit asserts: scenario threads use it. */
int64_t kt_wait_committed(const char *bs, const char *group, const char *topic, int32_t part, int64_t want, kin *k,
                          int *unexpected) {
    long long end = kt_now_ms() + 10000;
    int64_t off = -1;
    while (kt_now_ms() < end) {
        off = kt_committed(bs, group, topic, part);
        if (off == want) break;
        kin_msg *m = NULL;
        if (k) kin_poll(k, 100, &m, NULL);
        else kt_sleep_ms(100);
        if (m) {
            if (unexpected) (*unexpected)++;
            kin_msg_done(k, m);
        }
    }
    return off;
}

static int cmp_msg(const void *a, const void *b) {
    const kin_msg *x = *(kin_msg *const *)a, *y = *(kin_msg *const *)b;
    if (x->topic_index != y->topic_index) return x->topic_index - y->topic_index;
    if (x->partition != y->partition) return x->partition < y->partition ? -1 : 1;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* ---- suite setup --------------------------------------------------------- */

static int suite_init(void) {
    /* Few topics: each mock topic creation can take a second. */
    static const char *const topics[] = {"kin1.high", "kin1.normal", "kin1.low", "kin1.dlq"};
    inf_kafka_mock_opts o = {.brokers = 1, .partitions = PARTS, .topics = topics, .n_topics = 4};
    inf_error err = {0};
    if (inf_kafka_mock_start(&o, &g_mock, &err) != 0) {
        fprintf(stderr, "mock cluster: %s\n", err.msg);
        return 1;
    }
    g_bs = inf_kafka_mock_bootstraps(g_mock);
    return 0;
}

static int suite_clean(void) {
    if (g_k1) {
        kin_close(g_k1, 5000, NULL);
        kin_free(g_k1);
        g_k1 = NULL;
    }
    inf_kafka_mock_free(g_mock);
    g_mock = NULL;
    return 0;
}

/* ---- tests --------------------------------------------------------------- */

static void test_config_errors(void) {
    kin_config c = kin_config_default();
    CU_ASSERT_STRING_EQUAL(c.group, "inferno-workers");
    CU_ASSERT_STRING_EQUAL(c.topics[0], "inferno.requests.high");
    CU_ASSERT_STRING_EQUAL(c.topics[2], "inferno.requests.low");
    CU_ASSERT_STRING_EQUAL(c.dlq_topic, "inferno.requests.dlq");
    CU_ASSERT_EQUAL(c.n_topics, 3);
    c.brokers = "127.0.0.1:1";
    kin *k = NULL;
    inf_error err = {0};
    struct {
        const char *prop, *needle;
    } bad[] = {
        {"no.such.property=1", "no.such.property"},
        {"session.timeout.ms=banana", "banana"},
        {"auto.offset.reset=sideways", "auto.offset.reset"},
        {"producer.linger.ms=-5", "linger.ms"},
        {"justakey", "key=value"},
        {"=1", "key=value"},
        {"enable.auto.offset.store=true", "enable.auto.offset.store"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *props[] = {"heartbeat.interval.ms=500", bad[i].prop};
        c.props = props;
        c.n_props = 2;
        memset(&err, 0, sizeof err);
        CU_ASSERT_EQUAL(kin_create(&k, &c, &err), INF_EINVAL);
        CU_ASSERT_PTR_NULL(k);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, bad[i].needle));
        if (!strstr(err.msg, bad[i].needle)) fprintf(stderr, "\n    %s -> %s\n", bad[i].prop, err.msg);
    }
    /* Good passthrough properties, targeted or not, are accepted. */
    const char *good[] = {"producer.linger.ms=2", "consumer.fetch.wait.max.ms=50", "socket.timeout.ms=20000",
                          "log_level=2"};
    c.props = good;
    c.n_props = 4;
    CU_ASSERT_EQUAL(kin_create(&k, &c, &err), 0);
    CU_ASSERT_PTR_NOT_NULL(k);
    if (k) {
        kin_msg *m = (kin_msg *)1;
        CU_ASSERT_EQUAL(kin_poll(k, 0, &m, &err), 0);
        CU_ASSERT_PTR_NULL(m);
        CU_ASSERT_EQUAL(kin_inflight(k), 0);
        kin_free(k);
        k = NULL;
    }
    c.props = NULL;
    c.n_props = 0;
    /* invalid settings */
    kin_config b = c;
    b.n_topics = 0;
    CU_ASSERT_EQUAL(kin_create(&k, &b, &err), INF_EINVAL);
    b = c;
    b.max_inflight = 0;
    CU_ASSERT_EQUAL(kin_create(&k, &b, &err), INF_EINVAL);
    b = c;
    b.topics[1] = b.topics[0];
    CU_ASSERT_EQUAL(kin_create(&k, &b, &err), INF_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "twice"));
    b = c;
    b.dlq_topic = b.topics[2];
    CU_ASSERT_EQUAL(kin_create(&k, &b, &err), INF_EINVAL);
    b = c;
    b.topics[0] = "bad topic!";
    CU_ASSERT_EQUAL(kin_create(&k, &b, &err), INF_EINVAL);
    b = c;
    b.brokers = "";
    CU_ASSERT_EQUAL(kin_create(&k, &b, &err), INF_EINVAL);
    b = c;
    b.max_inflight = 4;
    b.urgent_reserve = 2;
    CU_ASSERT_EQUAL(kin_create(&k, &b, &err), INF_EINVAL);
    CU_ASSERT_PTR_NULL(k);
}

/* Test 1: messages on all three topics arrive intact; finished offsets commit. */
static void test_consume_all(void) {
    g_k1 = kt_new_consumer(g_bs, "kin1", 64, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g_k1);
    CU_ASSERT_EQUAL_FATAL(kt_wait_assigned(g_k1, 3 * PARTS, NULL, NULL, 0), 0);
    rd_kafka_t *p = kt_new_producer(g_bs);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    const char *lv[] = {"high", "normal", "low"};
    for (int t = 0; t < 3; t++)
        for (int part = 0; part < PARTS; part++) {
            char topic[32], key[32], val[64];
            snprintf(topic, sizeof topic, "kin1.%s", lv[t]);
            snprintf(key, sizeof key, "req-%d-%d", t, part);
            snprintf(val, sizeof val, "value of %s/%d", lv[t], part);
            CU_ASSERT_EQUAL(kt_produce(p, topic, part, key, val, NULL, NULL), 0);
        }
    CU_ASSERT_EQUAL_FATAL(kt_flush_destroy(p), 0);
    kin_msg *got[16];
    int n = kt_poll_n(g_k1, got, 3 * PARTS, 15000);
    CU_ASSERT_EQUAL(n, 3 * PARTS);
    qsort(got, (size_t)n, sizeof *got, cmp_msg);
    for (int i = 0; i < n; i++) {
        kin_msg *m = got[i];
        char topic[32], key[32], val[64];
        int t = i / PARTS, part = i % PARTS;
        snprintf(topic, sizeof topic, "kin1.%s", lv[t]);
        snprintf(key, sizeof key, "req-%d-%d", t, part);
        snprintf(val, sizeof val, "value of %s/%d", lv[t], part);
        CU_ASSERT_EQUAL(m->topic_index, t);
        CU_ASSERT_STRING_EQUAL(m->topic, topic);
        CU_ASSERT_EQUAL(m->partition, part);
        CU_ASSERT_EQUAL(m->offset, 0);
        CU_ASSERT_TRUE(m->key_len == strlen(key) && memcmp(m->key, key, m->key_len) == 0);
        CU_ASSERT_TRUE(m->value_len == strlen(val) && memcmp(m->value, val, m->value_len) == 0);
        CU_ASSERT_TRUE(m->timestamp_ms > 0);
    }
    CU_ASSERT_EQUAL(kin_inflight(g_k1), n);
    for (int i = 0; i < n; i++) kin_msg_done(g_k1, got[i]);
    CU_ASSERT_EQUAL(kin_inflight(g_k1), 0);
    for (int t = 0; t < 3; t++)
        for (int part = 0; part < PARTS; part++) {
            char topic[32];
            snprintf(topic, sizeof topic, "kin1.%s", lv[t]);
            CU_ASSERT_EQUAL(kt_wait_committed(g_bs, "kin1-group", topic, part, 1, g_k1, NULL), 1);
        }
    kin_stats_t st;
    kin_stats(g_k1, &st);
    CU_ASSERT_EQUAL(st.assigned, 3 * PARTS);
    CU_ASSERT_EQUAL(st.received, n);
    CU_ASSERT_EQUAL(st.done, n);
    CU_ASSERT_TRUE(st.commits > 0);
}

/* Test 2: with low, normal and high all ready, the most urgent comes first
 * (produced least urgent first, so arrival order would be the reverse). */
static void test_urgency_order(void) {
    CU_ASSERT_PTR_NOT_NULL_FATAL(g_k1);
    rd_kafka_t *p = kt_new_producer(g_bs);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    const char *lv[] = {"low", "normal", "high"};
    enum { PER = 4 };
    for (int t = 0; t < 3; t++)
        for (int i = 0; i < PER; i++) {
            char topic[32], key[32];
            snprintf(topic, sizeof topic, "kin1.%s", lv[t]);
            snprintf(key, sizeof key, "%s-%d", lv[t], i);
            CU_ASSERT_EQUAL(kt_produce(p, topic, i % PARTS, key, "x", NULL, NULL), 0);
        }
    CU_ASSERT_EQUAL_FATAL(kt_flush_destroy(p), 0);
    /* Wait (bounded) until everything is fetched locally, so the order seen
     * below is kin_poll's choice and not arrival luck. */
    long long end = kt_now_ms() + 10000;
    kin_stats_t st;
    do {
        kt_sleep_ms(20);
        kin_stats(g_k1, &st);
    } while ((st.queued[0] < PER || st.queued[1] < PER || st.queued[2] < PER) && kt_now_ms() < end);
    CU_ASSERT_TRUE(st.queued[0] >= PER && st.queued[1] >= PER && st.queued[2] >= PER);
    kin_msg *got[3 * PER];
    int n = kt_poll_n(g_k1, got, 3 * PER, 10000);
    CU_ASSERT_EQUAL(n, 3 * PER);
    for (int i = 0; i < n; i++) {
        CU_ASSERT_EQUAL(got[i]->topic_index, i / PER);
        if (got[i]->topic_index != i / PER) fprintf(stderr, "\n    #%d came from topic %d\n", i, got[i]->topic_index);
    }
    for (int i = 0; i < n; i++) kin_msg_done(g_k1, got[i]);
}

/* Test 3: a message sent to the dead-letter topic keeps its bytes and key and
 * carries the reason and source headers (and its own headers). */
static void test_dlq(void) {
    CU_ASSERT_PTR_NOT_NULL_FATAL(g_k1);
    rd_kafka_t *p = kt_new_producer(g_bs);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    const char *val = "\x00\x00\x00\x00\x07garbage";
    CU_ASSERT_EQUAL(kt_produce(p, "kin1.normal", 1, "req-dlq-1", "garbage-bytes", "traceparent", "00-abc-01"), 0);
    CU_ASSERT_EQUAL_FATAL(kt_flush_destroy(p), 0);
    (void)val;
    kin_msg *m = NULL;
    CU_ASSERT_EQUAL_FATAL(kt_poll_n(g_k1, &m, 1, 10000), 1);
    inf_error err = {0};
    CU_ASSERT_EQUAL_FATAL(kin_send_dlq(g_k1, m, "avro: unknown framing", "req-dlq-1", &err), 0);
    kin_msg *acked[4];
    int na = 0;
    long long end = kt_now_ms() + 10000;
    while (na == 0 && kt_now_ms() < end) {
        kin_msg *x = NULL;
        kin_poll(g_k1, 50, &x, NULL);
        CU_ASSERT_PTR_NULL(x);
        if (x) kin_msg_done(g_k1, x);
        na = kin_poll_dlq_acks(g_k1, acked, 4);
    }
    CU_ASSERT_EQUAL_FATAL(na, 1);
    CU_ASSERT_PTR_EQUAL(acked[0], m);
    int64_t src_off = m->offset;
    kin_msg_done(g_k1, m);

    /* Read it back with an independent assign() consumer. */
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", g_bs, errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "group.id", "kin1-dlq-reader", errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof errstr);
    rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(PARTS);
    for (int i = 0; i < PARTS; i++) rd_kafka_topic_partition_list_add(l, "kin1.dlq", i)->offset = RD_KAFKA_OFFSET_BEGINNING;
    CU_ASSERT_EQUAL(rd_kafka_assign(c, l), 0);
    rd_kafka_topic_partition_list_destroy(l);
    int found = 0;
    end = kt_now_ms() + 10000;
    while (!found && kt_now_ms() < end) {
        rd_kafka_message_t *r = rd_kafka_consumer_poll(c, 100);
        if (!r) continue;
        if (!r->err && r->key_len == 9 && memcmp(r->key, "req-dlq-1", 9) == 0) {
            found = 1;
            CU_ASSERT_TRUE(r->len == 13 && memcmp(r->payload, "garbage-bytes", 13) == 0);
            rd_kafka_headers_t *h = NULL;
            CU_ASSERT_EQUAL(rd_kafka_message_headers(r, &h), 0);
            char off[32];
            snprintf(off, sizeof off, "%" PRId64, src_off);
            struct {
                const char *name, *want;
            } hs[] = {{"x-inferno-reason", "avro: unknown framing"},
                      {"x-inferno-source-topic", "kin1.normal"},
                      {"x-inferno-source-partition", "1"},
                      {"x-inferno-source-offset", off},
                      {"x-inferno-request-id", "req-dlq-1"},
                      {"traceparent", "00-abc-01"}};
            for (size_t i = 0; h && i < sizeof hs / sizeof *hs; i++) {
                const void *v = NULL;
                size_t sz = 0;
                CU_ASSERT_EQUAL(rd_kafka_header_get_last(h, hs[i].name, &v, &sz), 0);
                CU_ASSERT_TRUE(v && sz == strlen(hs[i].want) && memcmp(v, hs[i].want, sz) == 0);
            }
        }
        rd_kafka_message_destroy(r);
    }
    CU_ASSERT_TRUE(found);
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    kin_stats_t st;
    kin_stats(g_k1, &st);
    CU_ASSERT_EQUAL(st.dlq_sent, 1);
    CU_ASSERT_EQUAL(st.dlq_pending, 0);
    CU_ASSERT_EQUAL(kin_inflight(g_k1), 0);
}

void test_register_kafka_in(void) {
    CU_pSuite s = CU_add_suite("kafka_offsets", NULL, NULL);
    CU_add_test(s, "in-flight tracker: lowest unfinished offset", test_otrack);
    s = CU_add_suite("kafka_in", suite_init, suite_clean);
    CU_add_test(s, "config validation and bad -X properties", test_config_errors);
    CU_add_test(s, "consume from all three topics, commit finished", test_consume_all);
    CU_add_test(s, "most urgent topic first", test_urgency_order);
    CU_add_test(s, "dead-letter record with headers", test_dlq);
}
