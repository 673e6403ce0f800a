/* test_kafka_flow.c - suite "kafka_flow": queue/kafka_in under pressure on
 * librdkafka's mock cluster: the in-flight cap with paused partitions while a
 * rebalance goes on, hand-over of unfinished work when a member leaves,
 * out-of-order completion and a crash, and a broker outage. Requests are named
 * by their keys; every one must be finished at least once (nothing lost).
 *
 * Each rebalance on the mock cluster waits about session.timeout.ms - 1 s
 * (5 s; a cooperative join takes two), so the three scenarios run at the same
 * time on their own groups and topics: suite setup starts the second and
 * third on threads, the first test runs the first, and the other tests join
 * their thread and report what it recorded (CUnit asserts are not
 * thread-safe, so scenarios record failures with CHECK). Every wait is
 * bounded; a scenario thread that outlives its bound is abandoned. */
#include <CUnit/CUnit.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kafka_in.h"
#include "kafka_mock.h"
#include "test_kafka_in.h"
#include "testutil.h"

#define PARTS 2
#define SCENARIO_MS 90000 /* bound on a scenario thread */

/* What one scenario found. */
typedef struct scen {
    pthread_t th;
    int started, joined, abandoned;
    int nfail, checks;
    char fails[8][200];
} scen;

static void scen_fail(scen *s, int line, const char *what) {
    if (s->nfail < 8) snprintf(s->fails[s->nfail], sizeof s->fails[0], "line %d: %.180s", line, what);
    s->nfail++;
}

#define CHECK(s, cond)                                  \
    do {                                                \
        (s)->checks++;                                  \
        if (!(cond)) scen_fail((s), __LINE__, #cond);   \
    } while (0)
/* Records a failure and leaves the scenario (its cleanup follows `out:`). */
#define REQUIRE(s, cond)                                \
    do {                                                \
        (s)->checks++;                                  \
        if (!(cond)) {                                  \
            scen_fail((s), __LINE__, #cond);            \
            goto out;                                   \
        }                                               \
    } while (0)

/* Turns a scenario's record into CUnit results (main thread). */
static void scen_report(const scen *s) {
    CU_ASSERT_FALSE(s->abandoned);
    CU_ASSERT_TRUE(s->checks > 0);
    for (int i = 0; i < s->nfail && i < 8; i++) {
        fprintf(stderr, "\n    %s", s->fails[i]);
        CU_FAIL(s->fails[i]);
    }
    CU_ASSERT_EQUAL(s->nfail, 0);
}

static inf_kafka_mock *g_mock;
static const char *g_bs;
static scen g_ooo, g_down;

/* Keys produced by a scenario and how often each was finished. */
typedef struct keyset {
    char keys[64][32];
    int done[64];
    int n;
} keyset;

static int ks_find(const keyset *ks, const kin_msg *m) {
    for (int i = 0; i < ks->n; i++)
        if (m->key_len == strlen(ks->keys[i]) && memcmp(m->key, ks->keys[i], m->key_len) == 0) return i;
    return -1;
}

static void ks_done(scen *s, keyset *ks, kin *k, kin_msg *m) {
    int i = ks_find(ks, m);
    CHECK(s, i >= 0);
    if (i >= 0) ks->done[i]++;
    kin_msg_done(k, m);
}

static int ks_all_done(const keyset *ks) {
    for (int i = 0; i < ks->n; i++)
        if (!ks->done[i]) return 0;
    return 1;
}

/* Produces per_part keyed messages to each partition of the given levels. */
static int ks_produce(keyset *ks, const char *bs, const char *prefix, const char *const *levels, int n_levels,
                      int per_part) {
    rd_kafka_t *p = kt_new_producer(bs);
    if (!p) return -1;
    int rc = 0;
    for (int t = 0; t < n_levels; t++)
        for (int part = 0; part < PARTS; part++)
            for (int i = 0; i < per_part && ks->n < 64; i++) {
                char topic[64];
                snprintf(topic, sizeof topic, "%s.%s", prefix, levels[t]);
                snprintf(ks->keys[ks->n], sizeof ks->keys[0], "%s-%d-%d", levels[t], part, i);
                rc |= kt_produce(p, topic, part, ks->keys[ks->n], "payload", NULL, NULL);
                ks->done[ks->n++] = 0;
            }
    return kt_flush_destroy(p) | rc;
}

/* ---- scenario 1: cap, pause, rebalance, hand-over ------------------------ */

/* At the cap kin_poll returns nothing and every partition stays paused, even
 * through a rebalance that a second member triggers; when the second member
 * closes with a request unfinished, the first gets its partitions and that
 * request again. */
static void scen_cap_handover(scen *s) {
    const char *lv[] = {"high", "normal", "low"};
    keyset ks = {0};
    kin *a = NULL, *b = NULL;
    kin_msg *held_a[2] = {0}, *held_b = NULL, *m = NULL;
    kin_stats_t st;
    inf_error err = {0};
    a = kt_new_consumer(g_bs, "kfl1", 2, 0);
    REQUIRE(s, a != NULL);
    REQUIRE(s, kt_wait_assigned(a, 3 * PARTS, NULL, NULL, 0) == 0);
    REQUIRE(s, ks_produce(&ks, g_bs, "kfl1", lv, 3, 2) == 0);
    REQUIRE(s, kt_poll_n(a, held_a, 2, 10000) == 2);
    CHECK(s, kin_poll(a, 300, &m, NULL) == 0 && m == NULL);
    kin_stats(a, &st);
    CHECK(s, st.inflight == 2);
    CHECK(s, st.assigned == 3 * PARTS);
    CHECK(s, st.paused == 3 * PARTS);
    long long rebal0 = st.rebalances;

    b = kt_new_consumer(g_bs, "kfl1", 100, 0);
    REQUIRE(s, b != NULL);
    int split = 0, a_quiet = 1, a_paused = 1;
    long long end = kt_now_ms() + JOIN_MS;
    while (kt_now_ms() < end) {
        m = NULL;
        kin_poll(a, 20, &m, NULL);
        if (m) { /* a must stay at its cap throughout */
            a_quiet = 0;
            ks_done(s, &ks, a, m);
        }
        m = NULL;
        kin_poll(b, 20, &m, NULL);
        /* b keeps its first request that is not one of a's (a's unfinished
         * ones come to b again when their partition moves) unfinished */
        int i = m ? ks_find(&ks, m) : -1;
        if (m && !held_b && i != ks_find(&ks, held_a[0]) && i != ks_find(&ks, held_a[1])) held_b = m;
        else if (m) ks_done(s, &ks, b, m);
        kin_stats(a, &st);
        if (st.paused != st.assigned) a_paused = 0;
        int na = kin_assigned(a), nb = kin_assigned(b);
        if (na > 0 && nb > 0 && na + nb == 3 * PARTS && st.rebalances > rebal0 && held_b) {
            split = 1;
            break;
        }
    }
    CHECK(s, a_quiet);
    CHECK(s, a_paused);
    REQUIRE(s, split);
    CHECK(s, kin_inflight(a) == 2);

    /* capacity frees: a resumes; both finish everything but b's held one */
    ks_done(s, &ks, a, held_a[0]);
    ks_done(s, &ks, a, held_a[1]);
    held_a[0] = held_a[1] = NULL;
    int held_idx = ks_find(&ks, held_b);
    end = kt_now_ms() + 15000;
    while (kt_now_ms() < end) {
        int missing = 0;
        for (int i = 0; i < ks.n; i++) missing += !ks.done[i] && i != held_idx;
        if (!missing) break;
        m = NULL;
        kin_poll(a, 20, &m, NULL);
        if (m) ks_done(s, &ks, a, m);
        m = NULL;
        kin_poll(b, 20, &m, NULL);
        if (m) ks_done(s, &ks, b, m);
    }
    kin_stats(a, &st);
    CHECK(s, st.paused == 0);
    CHECK(s, ks.done[held_idx] == 0);

    /* b leaves with held_b unfinished: a gets everything and held_b again */
    CHECK(s, kin_close(b, 10000, &err) == 0);
    kin_msg_free(b, held_b);
    held_b = NULL;
    kin_free(b);
    b = NULL;
    end = kt_now_ms() + JOIN_MS;
    while (kt_now_ms() < end && !(ks_all_done(&ks) && kin_assigned(a) == 3 * PARTS)) {
        m = NULL;
        kin_poll(a, 50, &m, NULL);
        if (m) ks_done(s, &ks, a, m);
    }
    CHECK(s, kin_assigned(a) == 3 * PARTS);
    CHECK(s, ks_all_done(&ks));
    CHECK(s, ks.done[held_idx] == 1);
    CHECK(s, kin_close(a, 10000, &err) == 0);
out:
    for (int i = 0; i < 2; i++)
        if (held_a[i]) kin_msg_free(a, held_a[i]);
    if (held_b) kin_msg_free(b, held_b);
    kin_free(b);
    kin_free(a);
}

/* ---- scenario 2: out-of-order completion and a crash --------------------- */

/* Requests finished out of order: the committed offset stays at the lowest
 * unfinished one. After a crash (no close, no commit), a restarted consumer
 * gets exactly the messages from that offset on: the unfinished one and the
 * finished one above it; nothing below. */
static void scen_out_of_order_crash(scen *s) {
    kin *a = NULL, *b = NULL;
    kin_msg *got[6] = {0}, *by_off[6] = {0}, *again[8] = {0};
    int n = 0, n2 = 0;
    inf_error err = {0};
    rd_kafka_t *p = kt_new_producer(g_bs);
    REQUIRE(s, p != NULL);
    for (int i = 0; i < 6; i++) {
        char key[16];
        snprintf(key, sizeof key, "ooo-%d", i);
        CHECK(s, kt_produce(p, "kfl2.normal", 0, key, "v", NULL, NULL) == 0);
    }
    REQUIRE(s, kt_flush_destroy(p) == 0);
    a = kt_new_consumer(g_bs, "kfl2", 10, 0);
    REQUIRE(s, a != NULL);
    n = kt_poll_n(a, got, 6, JOIN_MS);
    REQUIRE(s, n == 6);
    for (int i = 0; i < 6; i++) {
        REQUIRE(s, got[i]->partition == 0 && got[i]->offset >= 0 && got[i]->offset < 6);
        by_off[got[i]->offset] = got[i];
    }
    for (int i = 0; i < 6; i++) REQUIRE(s, by_off[i] != NULL);
    memset(got, 0, sizeof got); /* now owned through by_off */
    kin_msg_done(a, by_off[0]);
    by_off[0] = NULL;
    int unexpected = 0;
    CHECK(s, kt_wait_committed(g_bs, "kfl2-group", "kfl2.normal", 0, 1, a, &unexpected) == 1);
    for (int i = 2; i < 6; i += (i == 3 ? 2 : 1)) { /* 2, 3, 5 */
        kin_msg_done(a, by_off[i]);
        by_off[i] = NULL;
    }
    /* Give commits the chance to (wrongly) move past offset 1: explicit ones
     * go out within 200 ms and auto commit runs every second. */
    long long end = kt_now_ms() + 1500;
    while (kt_now_ms() < end) {
        kin_msg *m = NULL;
        kin_poll(a, 100, &m, NULL);
        CHECK(s, m == NULL);
        if (m) kin_msg_done(a, m);
    }
    CHECK(s, kt_committed(g_bs, "kfl2-group", "kfl2.normal", 0) == 1);
    kin_stats_t st;
    kin_stats(a, &st);
    int seen = 0;
    for (int i = 0; i < st.n_parts; i++)
        if (st.parts[i].topic_index == 1 && st.parts[i].partition == 0) {
            seen = 1;
            CHECK(s, st.parts[i].inflight == 2);
            CHECK(s, st.parts[i].stored == 1);
            CHECK(s, st.parts[i].high_watermark < 0 || st.parts[i].lag == 5);
        }
    CHECK(s, seen);
    kin_msg_done(a, by_off[1]);
    by_off[1] = NULL;
    CHECK(s, kt_wait_committed(g_bs, "kfl2-group", "kfl2.normal", 0, 4, a, &unexpected) == 4);
    CHECK(s, unexpected == 0);

    /* crash: offset 4 unfinished, 5 finished */
    kin_msg_free(a, by_off[4]);
    by_off[4] = NULL;
    kin_free(a);
    a = NULL;
    b = kt_new_consumer(g_bs, "kfl2", 10, 0);
    REQUIRE(s, b != NULL);
    n2 = kt_poll_n(b, again, 2, JOIN_MS + 10000); /* the dead member's session must expire first */
    CHECK(s, n2 == 2);
    n2 += kt_poll_n(b, again + n2, 1, 500); /* and nothing else comes */
    CHECK(s, n2 == 2);
    int seen4 = 0, seen5 = 0;
    for (int i = 0; i < n2; i++) {
        CHECK(s, again[i]->partition == 0);
        seen4 += again[i]->offset == 4;
        seen5 += again[i]->offset == 5;
        CHECK(s, again[i]->key_len == 5 &&
                     memcmp(again[i]->key, again[i]->offset == 4 ? "ooo-4" : "ooo-5", 5) == 0);
        kin_msg_done(b, again[i]);
        again[i] = NULL;
    }
    CHECK(s, seen4 == 1 && seen5 == 1);
    CHECK(s, kin_close(b, 10000, &err) == 0);
    CHECK(s, kt_committed(g_bs, "kfl2-group", "kfl2.normal", 0) == 6);
out:
    for (int i = 0; i < 6; i++) {
        if (got[i]) kin_msg_free(a, got[i]);
        else if (by_off[i]) kin_msg_free(a, by_off[i]);
    }
    for (int i = 0; i < 8; i++)
        if (again[i]) kin_msg_free(b, again[i]);
    kin_free(a);
    kin_free(b);
}

/* ---- scenario 3: broker down and up -------------------------------------- */

/* The only broker goes down with requests in flight and more produced
 * meanwhile; after it is back every request is finished and, after a clean
 * close, every offset committed. Its own cluster: set_down needs the mock
 * handle. */
static void scen_broker_down(scen *s) {
    char errstr[512];
    const char *lv[] = {"high", "normal", "low"};
    keyset ks = {0};
    kin *a = NULL;
    kin_msg *got[8] = {0};
    rd_kafka_t *p = NULL;
    rd_kafka_mock_cluster_t *mc = NULL;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "2", errstr, sizeof errstr);
    rd_kafka_t *host = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    REQUIRE(s, host != NULL);
    mc = rd_kafka_mock_cluster_new(host, 1);
    REQUIRE(s, mc != NULL);
    for (int i = 0; i < 3; i++) {
        char t[32];
        snprintf(t, sizeof t, "kdn.%s", lv[i]);
        REQUIRE(s, rd_kafka_mock_topic_create(mc, t, PARTS, 1) == 0);
    }
    const char *bs = rd_kafka_mock_cluster_bootstraps(mc);
    a = kt_new_consumer(bs, "kdn", 100, 0);
    REQUIRE(s, a != NULL);
    REQUIRE(s, kt_wait_assigned(a, 3 * PARTS, NULL, NULL, 0) == 0);
    REQUIRE(s, ks_produce(&ks, bs, "kdn", lv + 1, 2, 2) == 0);
    int n = kt_poll_n(a, got, 8, 10000);
    CHECK(s, n == 8);
    for (int i = 0; i < n; i += 2) { /* the odd ones stay in flight */
        ks_done(s, &ks, a, got[i]);
        got[i] = NULL;
    }

    rd_kafka_mock_broker_set_down(mc, 1);
    p = kt_new_producer(bs); /* produced while down: delivered after */
    REQUIRE(s, p != NULL);
    for (int i = 0; i < 6; i++) {
        snprintf(ks.keys[ks.n], sizeof ks.keys[0], "late-%d", i);
        CHECK(s, kt_produce(p, "kdn.high", i % PARTS, ks.keys[ks.n], "v", NULL, NULL) == 0);
        ks.done[ks.n++] = 0;
    }
    long long end = kt_now_ms() + 1500;
    while (kt_now_ms() < end) {
        kin_msg *m = NULL;
        kin_poll(a, 50, &m, NULL);
        if (m) ks_done(s, &ks, a, m);
    }
    for (int i = 1; i < n; i += 2) { /* finished during the outage */
        ks_done(s, &ks, a, got[i]);
        got[i] = NULL;
    }
    rd_kafka_mock_broker_set_up(mc, 1);
    CHECK(s, kt_flush_destroy(p) == 0);
    p = NULL;
    end = kt_now_ms() + JOIN_MS;
    while (kt_now_ms() < end && !ks_all_done(&ks)) {
        kin_msg *m = NULL;
        kin_poll(a, 50, &m, NULL);
        if (m) ks_done(s, &ks, a, m);
    }
    CHECK(s, ks_all_done(&ks));
    kin_stats_t st;
    kin_stats(a, &st);
    CHECK(s, st.errors > 0); /* the outage was noticed */
    inf_error err = {0};
    int rc = kin_close(a, 15000, &err);
    CHECK(s, rc == 0);
    if (rc) scen_fail(s, __LINE__, err.msg);
    /* all committed: 2 per partition of normal and low, 3 of high */
    for (int t = 0; t < 3; t++)
        for (int part = 0; part < PARTS; part++) {
            char topic[32];
            snprintf(topic, sizeof topic, "kdn.%s", lv[t]);
            CHECK(s, kt_committed(bs, "kdn-group", topic, part) == (t == 0 ? 3 : 2));
        }
out:
    for (int i = 0; i < 8; i++)
        if (got[i]) kin_msg_free(a, got[i]);
    if (p) rd_kafka_destroy(p);
    kin_free(a);
    if (mc) rd_kafka_mock_cluster_destroy(mc);
    if (host) rd_kafka_destroy(host);
}

/* ---- suite ---------------------------------------------------------------- */

static void *run_ooo(void *arg) {
    scen_out_of_order_crash(arg);
    return NULL;
}

static void *run_down(void *arg) {
    scen_broker_down(arg);
    return NULL;
}

/* Joins a scenario thread within its bound; abandons it otherwise. */
static void scen_join(scen *s) {
    if (!s->started || s->joined || s->abandoned) return;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += SCENARIO_MS / 1000;
    if (pthread_timedjoin_np(s->th, NULL, &until) == 0) {
        s->joined = 1;
    } else {
        pthread_detach(s->th);
        s->abandoned = 1;
    }
}

static int suite_init(void) {
    static char names[2][3][32];
    static const char *topics[6];
    const char *lv[] = {"high", "normal", "low"};
    int n = 0;
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++) {
            snprintf(names[i][j], sizeof names[i][j], "kfl%d.%s", i + 1, lv[j]);
            topics[n++] = names[i][j];
        }
    inf_kafka_mock_opts o = {.brokers = 1, .partitions = PARTS, .topics = topics, .n_topics = (size_t)n};
    inf_error err = {0};
    if (inf_kafka_mock_start(&o, &g_mock, &err) != 0) {
        fprintf(stderr, "mock cluster: %s\n", err.msg);
        return 1;
    }
    g_bs = inf_kafka_mock_bootstraps(g_mock);
    memset(&g_ooo, 0, sizeof g_ooo);
    memset(&g_down, 0, sizeof g_down);
    g_ooo.started = pthread_create(&g_ooo.th, NULL, run_ooo, &g_ooo) == 0;
    g_down.started = pthread_create(&g_down.th, NULL, run_down, &g_down) == 0;
    return 0;
}

static int suite_clean(void) {
    scen_join(&g_ooo);
    scen_join(&g_down);
    /* A hung scenario may still use the cluster: leak it rather than crash. */
    if (!g_ooo.abandoned) inf_kafka_mock_free(g_mock);
    g_mock = NULL;
    return 0;
}

static void test_cap_handover(void) {
    scen s = {0};
    scen_cap_handover(&s);
    scen_report(&s);
}

static void test_out_of_order_crash(void) {
    CU_ASSERT_TRUE_FATAL(g_ooo.started);
    scen_join(&g_ooo);
    scen_report(&g_ooo);
}

static void test_broker_down(void) {
    CU_ASSERT_TRUE_FATAL(g_down.started);
    scen_join(&g_down);
    scen_report(&g_down);
}

void test_register_kafka_flow(void) {
    CU_pSuite s = CU_add_suite("kafka_flow", suite_init, suite_clean);
    CU_add_test(s, "cap pauses partitions through a rebalance; a leaving member hands over", test_cap_handover);
    CU_add_test(s, "out-of-order done never commits past unfinished; crash redelivers", test_out_of_order_crash);
    CU_add_test(s, "broker down and up with requests in flight: nothing lost", test_broker_down);
}
