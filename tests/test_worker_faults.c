/* test_worker_faults.c - suites "worker_faults" and "worker_prio": the
 * worker under failures and load, each test with its own redis-server, mock
 * Kafka cluster and bin/inferno-worker subprocesses (stopped by PID):
 * SIGTERM drain (+ drain timeout, + second signal), two workers with one
 * SIGKILLed mid-generation (N = 200, exactly one done each), heartbeats
 * vanishing after a kill, the Kafka broker down and back, Redis restarted,
 * and high-priority TTFT with the low topic flooded. */
#include "test_worker_harness.h"

#define P 3 /* partitions per request topic */

static void print_logs_on_failure(wh *h, int failed_before) {
    if ((int)CU_get_number_of_failures() > failed_before)
        for (int i = 0; i < h->n_workers; i++) wh_print_log(h, i, 25);
}

/* Sends n requests id-<i> (round-robin over the topics). */
static int send_n(wh *h, const char *prefix, int n, int max_tokens, int ignore_eos) {
    const char *topics[] = {WH_TOPIC_H, WH_TOPIC_N, WH_TOPIC_L};
    for (int i = 0; i < n; i++) {
        char id[64];
        snprintf(id, sizeof id, "%s-%d", prefix, i);
        inf_request r;
        wh_req(&r, id, i % 2 ? "the little dog" : "once upon a time", max_tokens);
        r.ignore_eos = ignore_eos;
        if (wh_send(h, topics[i % 3], &r)) return -1;
    }
    return wh_flush(h);
}

/* Waits (bounded) until every request prefix-<0..n-1> has a final entry;
 * then counts those with exactly one done and no error, and the highest
 * attempt seen. Returns the number of good streams. */
static int count_answered(wh *h, const char *prefix, int n, int ms, const char *want_finish, int *redelivered) {
    long long end = wh_now_ms() + ms;
    int good = 0;
    if (redelivered) *redelivered = 0;
    for (int i = 0; i < n; i++) {
        char id[64];
        snprintf(id, sizeof id, "%s-%d", prefix, i);
        wh_stream s;
        long long left = end - wh_now_ms();
        if (wh_wait_final(h, id, left > 0 ? (int)left : 0, &s) != 0) {
            fprintf(stderr, "\n    %s: no final entry\n", id);
            continue;
        }
        if (s.n_done == 1 && s.n_error == 0 && (!want_finish || !strcmp(s.finish, want_finish))) good++;
        else fprintf(stderr, "\n    %s: %d done, %d error, finish '%s'\n", id, s.n_done, s.n_error, s.finish);
        if (redelivered && s.max_attempt > 1) (*redelivered)++;
        wh_stream_free(&s);
    }
    return good;
}

static int all_streaming(wh *h, const char *prefix, int n, int ms) {
    for (int i = 0; i < n; i++) {
        char id[64];
        snprintf(id, sizeof id, "%s-%d", prefix, i);
        if (wh_wait_tokens(h, id, ms)) return -1;
    }
    return 0;
}

static void test_sigterm_drain(void) {
    wh h;
    int f0 = (int)CU_get_number_of_failures();
    if (wh_setup(&h, P, 1)) { wh_teardown(&h); return; }
    const char *extra[] = {"--heartbeat-ms", "300", "--max-num-seqs", "8", NULL};
    int w = wh_worker_start(&h, "drain-w", extra);
    CU_ASSERT_FATAL(w >= 0);
    CU_ASSERT_EQUAL(wh_wait_status(&h, "drain-w", "ready", 30000), 0);
    CU_ASSERT_EQUAL(send_n(&h, "drain", 6, 300, 1), 0);
    CU_ASSERT_EQUAL(all_streaming(&h, "drain", 6, 30000), 0);
    redisReply *r = tu_redis_cmd(h.redis, "ZSCORE inferno:workers drain-w");
    CU_ASSERT(r && r->type == REDIS_REPLY_STRING); /* registered while running */
    if (r) freeReplyObject(r);
    /* SIGTERM mid-generation: every request finishes normally, exit 0 */
    CU_ASSERT_EQUAL(wh_worker_stop(&h, w, 60000), 0);
    CU_ASSERT_EQUAL(count_answered(&h, "drain", 6, 1000, "length", NULL), 6);
    CU_ASSERT_EQUAL(wh_int(&h, "EXISTS %s", "inferno:worker:drain-w"), 0);
    r = tu_redis_cmd(h.redis, "ZSCORE inferno:workers drain-w");
    CU_ASSERT(r && r->type == REDIS_REPLY_NIL);
    if (r) freeReplyObject(r);
    /* offsets committed: a consumer of the group would get nothing again */
    CU_ASSERT_EQUAL(wh_uncommitted(&h, "inferno-workers", P), 0);

    /* drain timeout: long requests are aborted with a final entry */
    const char *extra2[] = {"--drain-timeout-s", "1", NULL};
    int w2 = wh_worker_start(&h, "drain-w2", extra2);
    CU_ASSERT_EQUAL(wh_wait_status(&h, "drain-w2", "ready", 30000), 0);
    CU_ASSERT_EQUAL(send_n(&h, "drainto", 2, 3500, 1), 0);
    CU_ASSERT_EQUAL(all_streaming(&h, "drainto", 2, 30000), 0);
    long long t0 = wh_now_ms();
    CU_ASSERT_EQUAL(wh_worker_stop(&h, w2, 30000), 0);
    CU_ASSERT(wh_now_ms() - t0 < 15000);
    CU_ASSERT_EQUAL(count_answered(&h, "drainto", 2, 1000, "abort", NULL), 2);
    CU_ASSERT_EQUAL(wh_uncommitted(&h, "inferno-workers", P), 0);

    /* a second signal aborts at once */
    int w3 = wh_worker_start(&h, "drain-w3", NULL);
    CU_ASSERT_EQUAL(wh_wait_status(&h, "drain-w3", "ready", 30000), 0);
    CU_ASSERT_EQUAL(send_n(&h, "drain2sig", 2, 3500, 1), 0);
    CU_ASSERT_EQUAL(all_streaming(&h, "drain2sig", 2, 30000), 0);
    wh_worker_signal(&h, w3, SIGTERM);
    wh_sleep_ms(200);
    t0 = wh_now_ms();
    CU_ASSERT_EQUAL(wh_worker_stop(&h, w3, 20000), 0); /* the second SIGTERM */
    CU_ASSERT(wh_now_ms() - t0 < 10000);
    CU_ASSERT_EQUAL(count_answered(&h, "drain2sig", 2, 1000, "abort", NULL), 2);
    print_logs_on_failure(&h, f0);
    wh_teardown(&h);
}

/* Two workers share the topics; one is SIGKILLed mid-generation. Also the
 * discovery entries: both visible with their capacity, the killed one gone
 * within its TTL (hash) and pruned from the sorted set by the survivor. */
static void test_kill_one_of_two(void) {
    wh h;
    int f0 = (int)CU_get_number_of_failures();
    if (wh_setup(&h, P, 1)) { wh_teardown(&h); return; }
    const char *extra[] = {"--heartbeat-ms", "300", "--max-num-seqs", "8", "--max-inflight", "16",
                           "--drain-timeout-s", "10", NULL};
    int a = wh_worker_start(&h, "kill-a", extra), b = wh_worker_start(&h, "kill-b", extra);
    CU_ASSERT_FATAL(a >= 0 && b >= 0);
    CU_ASSERT_EQUAL(wh_wait_status(&h, "kill-a", "ready", 30000), 0);
    CU_ASSERT_EQUAL(wh_wait_status(&h, "kill-b", "ready", 30000), 0);
    /* heartbeat contents */
    redisReply *r = tu_redis_cmd(h.redis, "HGET inferno:worker:kill-a max_num_seqs");
    CU_ASSERT(r && r->type == REDIS_REPLY_STRING && !strcmp(r->str, "8"));
    if (r) freeReplyObject(r);
    r = tu_redis_cmd(h.redis, "HGET inferno:worker:kill-a pid");
    CU_ASSERT(r && r->type == REDIS_REPLY_STRING && atoi(r->str) == (int)h.workers[a].pid);
    if (r) freeReplyObject(r);
    r = tu_redis_cmd(h.redis, "HGET inferno:worker:kill-b kv_blocks_total");
    CU_ASSERT(r && r->type == REDIS_REPLY_STRING && atoi(r->str) > 0);
    if (r) freeReplyObject(r);
    CU_ASSERT_EQUAL(wh_int(&h, "ZCARD %s", "inferno:workers"), 2);
    r = tu_redis_cmd(h.redis, "TTL inferno:worker:kill-a");
    CU_ASSERT(r && r->type == REDIS_REPLY_INTEGER && r->integer > 0 && r->integer <= 1);
    if (r) freeReplyObject(r);

    enum { N = 200 };
    CU_ASSERT_EQUAL(send_n(&h, "kill", N, 24, 1), 0);
    /* wait until A is busy generating, then kill it */
    long long end = wh_now_ms() + 60000;
    int a_started = 0;
    while (wh_now_ms() < end && (a_started = wh_log_count(&h, a, "started:")) < 10) wh_sleep_ms(20);
    CU_ASSERT(a_started >= 10);
    int a_done = wh_log_count(&h, a, "] done:");
    wh_worker_signal(&h, a, SIGKILL);
    fprintf(stderr, "\n    killed worker A after %d started / %d done\n", a_started, a_done);
    int redelivered = 0;
    int good = count_answered(&h, "kill", N, 120000, "length", &redelivered);
    CU_ASSERT_EQUAL(good, N);
    fprintf(stderr, "    %d/%d requests with exactly one done; %d ran again (attempt 2)\n", good, N, redelivered);
    /* A's heartbeat expires (TTL 1 s); B prunes it from the set (3 TTLs) */
    end = wh_now_ms() + 10000;
    while (wh_now_ms() < end && wh_int(&h, "EXISTS %s", "inferno:worker:kill-a") != 0) wh_sleep_ms(100);
    CU_ASSERT_EQUAL(wh_int(&h, "EXISTS %s", "inferno:worker:kill-a"), 0);
    end = wh_now_ms() + 10000;
    while (wh_now_ms() < end && wh_int(&h, "ZCARD %s", "inferno:workers") != 1) wh_sleep_ms(100);
    r = tu_redis_cmd(h.redis, "ZRANGE inferno:workers 0 -1");
    CU_ASSERT(r && r->type == REDIS_REPLY_ARRAY && r->elements == 1 && !strcmp(r->element[0]->str, "kill-b"));
    if (r) freeReplyObject(r);
    /* Messages A had answered but not committed are redelivered to B, which
     * skips them (their streams hold a final entry) and only then commits:
     * every request is answered already, so wait for B to catch up before
     * stopping it rather than racing its backlog. */
    end = wh_now_ms() + 30000;
    while (wh_now_ms() < end && wh_uncommitted(&h, "inferno-workers", P) != 0) wh_sleep_ms(200);
    CU_ASSERT_EQUAL(wh_worker_stop(&h, b, 30000), 0);
    CU_ASSERT_EQUAL(wh_uncommitted(&h, "inferno-workers", P), 0);
    print_logs_on_failure(&h, f0);
    wh_teardown(&h);
}

static void test_broker_down(void) {
    wh h;
    int f0 = (int)CU_get_number_of_failures();
    if (wh_setup(&h, P, 1)) { wh_teardown(&h); return; }
    int w = wh_worker_start(&h, "bd-w", (const char *const[]){"--drain-timeout-s", "10", NULL});
    CU_ASSERT_EQUAL_FATAL(wh_wait_status(&h, "bd-w", "ready", 30000), 0);
    CU_ASSERT_EQUAL(send_n(&h, "bd1", 6, 400, 1), 0);
    CU_ASSERT_EQUAL(all_streaming(&h, "bd1", 1, 30000), 0);
    /* the broker goes away while requests are generating */
    rd_kafka_mock_broker_set_down(h.mc, 1);
    wh_sleep_ms(3000);
    rd_kafka_mock_broker_set_up(h.mc, 1);
    CU_ASSERT_EQUAL_FATAL(wh_producer_new(&h), 0);
    CU_ASSERT_EQUAL(send_n(&h, "bd2", 6, 16, 0), 0);
    CU_ASSERT_EQUAL(count_answered(&h, "bd1", 6, 60000, NULL, NULL), 6);
    CU_ASSERT_EQUAL(count_answered(&h, "bd2", 6, 60000, NULL, NULL), 6);
    /* everything committed once the broker is back */
    long long end = wh_now_ms() + 20000;
    long long unc;
    while ((unc = wh_uncommitted(&h, "inferno-workers", P)) != 0 && wh_now_ms() < end) wh_sleep_ms(200);
    CU_ASSERT_EQUAL(unc, 0);
    CU_ASSERT_EQUAL(wh_worker_stop(&h, w, 30000), 0);
    print_logs_on_failure(&h, f0);
    wh_teardown(&h);
}

static void test_redis_restart(void) {
    wh h;
    int f0 = (int)CU_get_number_of_failures();
    if (wh_setup(&h, P, 1)) { wh_teardown(&h); return; }
    int w = wh_worker_start(&h, "rr-w", (const char *const[]){"--drain-timeout-s", "10", NULL});
    CU_ASSERT_EQUAL_FATAL(wh_wait_status(&h, "rr-w", "ready", 30000), 0);
    CU_ASSERT_EQUAL(send_n(&h, "rr1", 4, 600, 1), 0);
    CU_ASSERT_EQUAL(all_streaming(&h, "rr1", 4, 30000), 0);
    /* Redis goes away mid-generation; more requests arrive meanwhile */
    CU_ASSERT_EQUAL_FATAL(tu_redis_stop(h.redis), 0);
    CU_ASSERT_EQUAL(send_n(&h, "rr2", 4, 16, 0), 0);
    wh_sleep_ms(2500);
    CU_ASSERT_EQUAL_FATAL(tu_redis_restart(h.redis), 0); /* empty: persistence is off */
    /* the in-flight ones end with their final entry (written after the
     * restart), the ones that arrived meanwhile are served in full */
    CU_ASSERT_EQUAL(count_answered(&h, "rr1", 4, 60000, "length", NULL), 4);
    CU_ASSERT_EQUAL(count_answered(&h, "rr2", 4, 60000, NULL, NULL), 4);
    for (int i = 0; i < 4; i++) {
        char key[64];
        snprintf(key, sizeof key, "inferno:out:rr2-%d", i);
        wh_stream s;
        CU_ASSERT_EQUAL(wh_read_stream(&h, key, &s), 0);
        CU_ASSERT_EQUAL(s.n_start, 1);
        CU_ASSERT(s.n_ids > 0 && s.n_ids == s.completion_tokens);
        wh_stream_free(&s);
    }
    /* the heartbeat is back too */
    CU_ASSERT_EQUAL(wh_wait_status(&h, "rr-w", "ready", 10000), 0);
    CU_ASSERT_EQUAL(wh_worker_stop(&h, w, 30000), 0);
    CU_ASSERT_EQUAL(wh_uncommitted(&h, "inferno-workers", P), 0);
    print_logs_on_failure(&h, f0);
    wh_teardown(&h);
}

/* Client-side TTFT of one high request: produce -> first token entry. */
static double ttft_ms(wh *h, const char *id) {
    inf_request r;
    wh_req(&r, id, "the happy dog", 8);
    long long t0 = wh_now_ms();
    if (wh_send(h, WH_TOPIC_H, &r) || wh_flush(h)) return -1;
    if (wh_wait_tokens(h, id, 60000)) return -1;
    double t = (double)(wh_now_ms() - t0);
    wh_stream s;
    wh_wait_final(h, id, 60000, &s);
    wh_stream_free(&s);
    return t;
}

static int cmp_dbl(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void test_priority_ttft(void) {
    wh h;
    int f0 = (int)CU_get_number_of_failures();
    if (wh_setup(&h, P, 1)) { wh_teardown(&h); return; }
    const char *extra[] = {"--max-num-seqs", "4", "--max-inflight", "8", "--drain-timeout-s", "2", NULL};
    int w = wh_worker_start(&h, "prio-w", extra);
    CU_ASSERT_EQUAL_FATAL(wh_wait_status(&h, "prio-w", "ready", 30000), 0);
    enum { K = 5 };
    double idle[K], loaded[K];
    for (int i = 0; i < K; i++) {
        char id[32];
        snprintf(id, sizeof id, "prio-idle-%d", i);
        idle[i] = ttft_ms(&h, id);
        CU_ASSERT(idle[i] >= 0);
    }
    /* flood the low topic: far more work than the worker can hold */
    for (int i = 0; i < 150; i++) {
        char id[32];
        snprintf(id, sizeof id, "prio-low-%d", i);
        inf_request r;
        wh_req(&r, id, "once upon a time there was", 128);
        r.ignore_eos = true;
        CU_ASSERT_EQUAL(wh_send(&h, WH_TOPIC_L, &r), 0);
    }
    CU_ASSERT_EQUAL(wh_flush(&h), 0);
    CU_ASSERT_EQUAL(wh_wait_tokens(&h, "prio-low-0", 30000), 0);
    for (int i = 0; i < K; i++) {
        char id[32];
        snprintf(id, sizeof id, "prio-high-%d", i);
        loaded[i] = ttft_ms(&h, id);
        CU_ASSERT(loaded[i] >= 0);
    }
    /* the flood is still there (so the figure was taken under load) */
    char key[64];
    snprintf(key, sizeof key, "inferno:out:prio-low-149");
    wh_stream s;
    CU_ASSERT_EQUAL(wh_read_stream(&h, key, &s), 0);
    int flood_pending = s.n_done == 0;
    wh_stream_free(&s);
    qsort(idle, K, sizeof *idle, cmp_dbl);
    qsort(loaded, K, sizeof *loaded, cmp_dbl);
    fprintf(stderr, "\n    high-priority TTFT (client side, produce -> first token entry): idle median %.0f ms, "
                    "low topic flooded median %.0f ms (%.1fx)%s\n",
            idle[K / 2], loaded[K / 2], idle[K / 2] > 0 ? loaded[K / 2] / idle[K / 2] : 0,
            flood_pending ? "" : " [flood already served]");
    CU_ASSERT(flood_pending);
    CU_ASSERT(loaded[K / 2] <= 5 * idle[K / 2] + 500);
    CU_ASSERT_EQUAL(wh_worker_stop(&h, w, 30000), 0);
    print_logs_on_failure(&h, f0);
    wh_teardown(&h);
}

void test_register_worker_faults(void) {
    CU_pSuite s = CU_add_suite("worker_faults", NULL, NULL);
    CU_add_test(s, "SIGTERM drain, drain timeout, second signal", test_sigterm_drain);
    CU_add_test(s, "two workers, one SIGKILLed: one done each (N=200); heartbeats", test_kill_one_of_two);
    CU_add_test(s, "Kafka broker down and back", test_broker_down);
    CU_add_test(s, "Redis restarted", test_redis_restart);
    CU_pSuite p = CU_add_suite("worker_prio", NULL, NULL);
    CU_add_test(p, "high TTFT with the low topic flooded", test_priority_ttft);
}
