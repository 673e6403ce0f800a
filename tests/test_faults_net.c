/* test_faults_net.c - suite "faults_net": one bin/inferno-worker whose Redis
 * and Kafka connections both go through fault-injecting proxies
 * (tests/tu_proxy.h), so the failures a SIGSTOP or a server restart cannot
 * produce are tested: a reply lost after Redis executed the XADD of a final
 * entry (no second final may follow the resend), a connection cut in the
 * middle of a pipelined batch (no accepted request or token may be lost or
 * doubled), and Kafka connections cut or answers lost around Fetch and
 * OffsetCommit (every request answered exactly once, every offset
 * committed). */
#include "test_worker_harness.h"
#include "tu_proxy.h"

#define P 1
#define WID "net-w1"

static wh H;
static tu_proxy *RP, *KP;
static int have_env;

#define NEED_ENV() WH_NEED_ENV(have_env)

/* RESP bytes of the field pair event=<ev> as hiredis writes an XADD */
#define RESP_EVENT(ev, n) "$5\r\nevent\r\n$" #n "\r\n" ev "\r\n"

static int suite_init(void) {
    if (wh_setup(&H, P, 0) != 0) return 0;
    const char *colon = strrchr(H.brokers, ':');
    if (!colon || strncmp(H.brokers, "127.0.0.1:", 10) != 0) {
        CU_FAIL("mock cluster is not on 127.0.0.1");
        return 0;
    }
    RP = tu_proxy_start(tu_redis_port(H.redis), TU_PROXY_RAW);
    KP = tu_proxy_start(atoi(colon + 1), TU_PROXY_KAFKA);
    if (!RP || !KP) {
        CU_FAIL("proxies did not start");
        return 0;
    }
    snprintf(H.worker_redis, sizeof H.worker_redis, "%s", tu_proxy_redis_url(RP));
    snprintf(H.worker_brokers, sizeof H.worker_brokers, "%s", tu_proxy_addr(KP));
    /* socket.timeout.ms: a Kafka request whose answer is lost (the proxy also
     * closes the connection) is given up quickly */
    const char *extra[] = {"--heartbeat-ms", "300", "-X", "socket.timeout.ms=3000", "--drain-timeout-s", "3", NULL};
    if (wh_worker_start_ready(&H, WID, extra) != 0) return 0;
    have_env = 1;
    return 0;
}

static int suite_clean(void) {
    if (have_env && CU_get_number_of_failures() > 0) wh_print_log(&H, 0, 60);
    wh_teardown(&H);
    tu_proxy_free(RP);
    tu_proxy_free(KP);
    RP = KP = NULL;
    have_env = 0;
    return 0;
}

/* Waits for the final entries of ids[0..n) and checks each stream: exactly
 * one final, a done, and every token exactly once (the ids read with
 * resent entries skipped by seq add up to completion_tokens). Also waits a
 * moment longer so a late duplicate would be seen. */
static void check_all_once(const char *prefix, int n) {
    for (int i = 0; i < n; i++) {
        char id[64];
        snprintf(id, sizeof id, "%s-%d", prefix, i);
        wh_stream s;
        int got = wh_wait_final(&H, id, 60000, &s);
        CU_ASSERT_EQUAL(got, 0);
        if (got) {
            fprintf(stderr, "\n    %s: no final entry\n", id);
            wh_stream_free(&s);
            continue;
        }
        wh_stream_free(&s);
    }
    wh_sleep_ms(1500);
    int bad = 0;
    for (int i = 0; i < n; i++) {
        char id[64], key[128];
        snprintf(id, sizeof id, "%s-%d", prefix, i);
        wh_key(key, sizeof key, id);
        wh_stream s;
        CU_ASSERT_EQUAL_FATAL(wh_read_stream(&H, key, &s), 0);
        int ok = s.n_done == 1 && s.n_error == 0 && s.completion_tokens == s.n_ids && s.n_ids > 0;
        if (!ok && bad++ < 5)
            fprintf(stderr, "\n    %s: done=%d error=%d (%s) tokens read=%d completion_tokens=%d\n", id, s.n_done,
                    s.n_error, s.code, s.n_ids, s.completion_tokens);
        CU_ASSERT(ok);
        wh_stream_free(&s);
    }
}

static void wait_committed(void) {
    long long end = wh_now_ms() + 30000, left = -1;
    while (wh_now_ms() < end && (left = wh_uncommitted(&H, "inferno-workers", P)) != 0) wh_sleep_ms(200);
    CU_ASSERT_EQUAL(left, 0);
}

/* The XADD of the final entry runs in Redis, its reply is lost and the
 * connection closed: the sender reconnects and resends, and must find the
 * final already there instead of writing a second one. */
static void test_lost_final_reply(void) {
    NEED_ENV();
    tu_proxy_arm(RP, TU_PROXY_LOSE_REPLY, RESP_EVENT("done", 4), -1, 1);
    CU_ASSERT_EQUAL(wh_send_simple(&H, WH_TOPIC_N, "lost-0", "Once upon a time", 12), 0);
    CU_ASSERT_EQUAL(wh_flush(&H), 0);
    check_all_once("lost", 1);
    CU_ASSERT_EQUAL(tu_proxy_fired(RP), 1);
    tu_proxy_arm(RP, 0, NULL, -1, 0);
    wait_committed();
}

/* Many requests at once (the sender pipelines their entries); three times
 * the connection is cut in the middle of a batch, right inside a token
 * entry. Nothing accepted may be lost, nothing written twice. */
static void test_cut_mid_pipeline(void) {
    NEED_ENV();
    int fired0 = tu_proxy_fired(RP);
    tu_proxy_arm(RP, TU_PROXY_CUT_MIDWAY, RESP_EVENT("token", 5), -1, 3);
    for (int i = 0; i < 30; i++) {
        char id[32], prompt[64];
        snprintf(id, sizeof id, "cut-%d", i);
        snprintf(prompt, sizeof prompt, "The %d little birds", i);
        CU_ASSERT_EQUAL(wh_send_simple(&H, WH_TOPIC_N, id, prompt, 16), 0);
    }
    CU_ASSERT_EQUAL(wh_flush(&H), 0);
    check_all_once("cut", 30);
    CU_ASSERT_EQUAL(tu_proxy_fired(RP) - fired0, 3);
    tu_proxy_arm(RP, 0, NULL, -1, 0);
    wait_committed();
}

/* Kafka connections cut while requests flow, a lost OffsetCommit answer and
 * a Fetch request torn in half: each request answered exactly once and the
 * group's committed offset reaches the end. */
static void test_kafka_cuts(void) {
    NEED_ENV();
    int fired0 = tu_proxy_fired(KP);
    for (int i = 0; i < 40; i++) {
        char id[32];
        snprintf(id, sizeof id, "kcut-%d", i);
        CU_ASSERT_EQUAL(wh_send_simple(&H, i % 3 == 0 ? WH_TOPIC_H : WH_TOPIC_N, id, "A cat sat", 6), 0);
        if (i == 10) tu_proxy_cut(KP);
        if (i == 20) tu_proxy_arm(KP, TU_PROXY_LOSE_REPLY, NULL, 8 /* OffsetCommit */, 1);
        if (i == 30) {
            wh_flush(&H);
            wh_sleep_ms(500);
            tu_proxy_arm(KP, TU_PROXY_CUT_MIDWAY, NULL, 1 /* Fetch */, 1);
        }
        wh_sleep_ms(25);
    }
    CU_ASSERT_EQUAL(wh_flush(&H), 0);
    wh_sleep_ms(1000);
    tu_proxy_cut(KP);
    check_all_once("kcut", 40);
    CU_ASSERT(tu_proxy_fired(KP) - fired0 >= 1);
    tu_proxy_arm(KP, 0, NULL, -1, 0);
    wait_committed();
    CU_ASSERT(tu_proxy_accepted(KP) >= 3); /* the worker came back through the proxy each time */
}

/* Kafka and Redis both stuck (the proxies stop forwarding, no resets, so
 * no call fails fast) with a request in flight: SIGTERM still ends the
 * worker, bounded by the drain timeout (3 s) and the close timeouts. */
static void test_sigterm_all_stuck(void) {
    NEED_ENV();
    CU_ASSERT_EQUAL(wh_send_simple(&H, WH_TOPIC_N, "stuck-0", "Once upon a time", 200), 0);
    CU_ASSERT_EQUAL(wh_flush(&H), 0);
    wh_wait_tokens(&H, "stuck-0", 20000);
    tu_proxy_pause(KP, 1);
    tu_proxy_pause(RP, 1);
    wh_sleep_ms(300);
    long long t0 = wh_now_ms();
    kill(H.workers[0].pid, SIGTERM);
    int st = wh_wait_exit(H.workers[0].pid, 60000);
    long long dt = wh_now_ms() - t0;
    H.workers[0].pid = 0;
    tu_proxy_pause(KP, 0);
    tu_proxy_pause(RP, 0);
    CU_ASSERT(st >= 0); /* exited by itself (not killed by the bounded wait) */
    /* drain 3 s + confirmations 5 s + Kafka close 4 s + teardown bounds (docs/worker.md) */
    CU_ASSERT(dt < 25000);
    fprintf(stderr, "\n    SIGTERM with Kafka and Redis stuck: exit %d after %lld ms\n", st, dt);
}

void test_register_faults_net(void) {
    CU_pSuite s = CU_add_suite("faults_net", suite_init, suite_clean);
    CU_add_test(s, "redis: reply of the final XADD lost -> still one final", test_lost_final_reply);
    CU_add_test(s, "redis: connection cut inside a pipelined batch -> nothing lost or doubled", test_cut_mid_pipeline);
    CU_add_test(s, "kafka: cuts, lost OffsetCommit answer, torn Fetch -> each request once, all committed",
                test_kafka_cuts);
    CU_add_test(s, "SIGTERM with Kafka and Redis both stuck mid-request -> bounded exit", test_sigterm_all_stuck);
}
