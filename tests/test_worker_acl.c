/* test_worker_acl.c - suite "worker_acl": bin/inferno-worker as a
 * least-privilege Redis ACL user. The rule set is read from
 * docs/redis-acl.txt, the one place docs/operations.md quotes (checked
 * here too, so the docs cannot drift from what is tested). A user with
 * exactly those rules serves plain requests, a custom reply stream, a
 * hostile reply_stream outside the prefix, cancellation by key and by
 * pub/sub, heartbeats and a clean exit, and Redis logs no refused command.
 * Then, one grant at a time removed (XRANGE, XADD, the cancel channel,
 * HSET), the worker keeps running, its log names the missing permission,
 * and once the grant is back the work goes through. The test harness reads
 * and prepares keys as Redis's default user; the worker never uses it
 * (CLIENT LIST shows its connections as the ACL user). */
#include "test_worker_harness.h"

static wh H;
static int have_env;
static char rules[1024];
static char url[512];

#define ACL_USER "inferno-worker"
#define ACL_PASS "s3cret-acl-pw"
#define WID1 "acl-w1"
#define WID2 "acl-w2"
#define RULES_FILE "docs/redis-acl.txt"
#define DOC_FILE "docs/operations.md"

#define NEED_ENV() WH_NEED_ENV(have_env)

/* The rule line of docs/redis-acl.txt (the one line that is not a comment). */
static int load_rules(void) {
    char *text = tu_read_file(RULES_FILE, NULL);
    if (!text) return -1;
    int found = 0;
    for (char *save = NULL, *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        if (*l == '#' || *l == '\0') continue;
        found++;
        snprintf(rules, sizeof rules, "%s", l);
    }
    free(text);
    return found == 1 ? 0 : -1;
}

/* Runs the words of line (space-separated) as one command on the default
 * user's connection; the reply or NULL. */
static redisReply *cmd_words(const char *line) {
    char buf[2048];
    snprintf(buf, sizeof buf, "%s", line);
    const char *argv[64];
    int argc = 0;
    for (char *save = NULL, *t = strtok_r(buf, " ", &save); t && argc < 64; t = strtok_r(NULL, " ", &save))
        argv[argc++] = t;
    redisContext *c = tu_redis_connect(H.redis);
    if (!c) return NULL;
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);
    redisFree(c);
    return r;
}

/* ACL SETUSER inferno-worker <words>: 0 when Redis took it. */
static int setuser(const char *words) {
    char line[1536];
    snprintf(line, sizeof line, "ACL SETUSER " ACL_USER " %s", words);
    redisReply *r = cmd_words(line);
    int ok = r && r->type == REDIS_REPLY_STATUS && !strcmp(r->str, "OK");
    if (!ok) fprintf(stderr, "\n    %s: %s\n", line, r && r->str ? r->str : "(no reply)");
    if (r) freeReplyObject(r);
    return ok ? 0 : -1;
}

static int worker_alive(int i) { return H.workers[i].pid > 0 && kill(H.workers[i].pid, 0) == 0; }

/* Waits up to ms until worker i's log holds needle. */
static int wait_log(int i, const char *needle, int ms) {
    long long end = wh_now_ms() + ms;
    while (wh_log_count(&H, i, needle) == 0) {
        if (wh_now_ms() > end) {
            fprintf(stderr, "\n    no \"%s\" in %s's log\n", needle, H.workers[i].id);
            return -1;
        }
        wh_sleep_ms(50);
    }
    return 0;
}

static int start_worker(const char *id) {
    const char *extra[] = {"--redis", url, "--heartbeat-ms", "300", "--drain-timeout-s", "3", NULL};
    /* the harness passes its own --redis first; the later flag wins */
    int i = wh_worker_start(&H, id, extra);
    if (i < 0) return -1;
    if (wh_wait_status(&H, id, "ready", 60000) != 0) {
        wh_print_log(&H, i, 40);
        return -1;
    }
    return i;
}

static int suite_init(void) {
    if (load_rules() != 0) {
        fprintf(stderr, "\n    %s: no single rule line\n", RULES_FILE);
        return 0; /* test_docs_quote_rules fails on it */
    }
    if (wh_setup(&H, 1, 1) != 0) return 0;
    char words[1400];
    snprintf(words, sizeof words, "on >" ACL_PASS " %s", rules);
    if (setuser(words) != 0) return 0;
    redisReply *r = tu_redis_cmd(H.redis, "ACL LOG RESET");
    if (r) freeReplyObject(r);
    snprintf(url, sizeof url, "redis://" ACL_USER ":" ACL_PASS "@127.0.0.1:%d", tu_redis_port(H.redis));
    if (start_worker(WID1) != 0) return 0;
    have_env = 1;
    return 0;
}

static int suite_clean(void) {
    if (have_env && CU_get_number_of_failures() > 0)
        for (int i = 0; i < H.n_workers; i++) wh_print_log(&H, i, 30);
    wh_teardown(&H);
    have_env = 0;
    return 0;
}

/* docs/operations.md quotes the tested rule line verbatim. */
static void test_docs_quote_rules(void) {
    CU_ASSERT_EQUAL_FATAL(load_rules(), 0);
    char *doc = tu_read_file(DOC_FILE, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
    char line[1400];
    snprintf(line, sizeof line, "ACL SETUSER " ACL_USER " on >PASSWORD %s\n", rules);
    CU_ASSERT_PTR_NOT_NULL(strstr(doc, line));
    if (!strstr(doc, line)) fprintf(stderr, "\n    %s does not quote: %s", DOC_FILE, line);
    free(doc);
}

/* ACL DRYRUN (Redis 7): every command the worker sends is allowed, on the
 * keys it sends it to, and nothing beyond. Covers paths a short run does
 * not take (resend checks with XREVRANGE, SELECT). */
static void test_dryrun(void) {
    NEED_ENV();
    static const char *allowed[] = {
        "XADD inferno:out:x MAXLEN ~ 10000 0-1 event start", "XADD inferno:out:x MAXLEN ~ 10000 * event token",
        "EXPIRE inferno:out:x 3600", "XRANGE inferno:out:x - + COUNT 500", "XRANGE inferno:out:x - + COUNT 1",
        "XREVRANGE inferno:out:x + - COUNT 1", "EXISTS inferno:cancel:x", "HSET inferno:worker:w id w",
        "EXPIRE inferno:worker:w 6", "DEL inferno:worker:w", "ZADD inferno:workers 1 w",
        "ZREMRANGEBYSCORE inferno:workers -inf 0", "ZREM inferno:workers w", "SELECT 0",
        "SUBSCRIBE inferno:cancel"};
    static const char *denied[] = {
        "SET inferno:cancel:x 1", "DEL inferno:cancel:x", "XADD app:secret * a b", "GET session:123",
        "XRANGE app:clicks - +", "HSET other:hash a b", "KEYS *", "FLUSHALL", "CONFIG GET *",
        "SUBSCRIBE other", "PUBLISH inferno:cancel x", "PSUBSCRIBE *", "SCAN 0", "EVAL return 1 0"};
    redisReply *v = tu_redis_cmd(H.redis, "ACL DRYRUN default PING");
    int have_dryrun = v && v->type == REDIS_REPLY_STATUS;
    if (v) freeReplyObject(v);
    if (!have_dryrun) {
        tu_skip("ACL DRYRUN needs Redis 7");
        return;
    }
    char line[512];
    for (size_t i = 0; i < sizeof allowed / sizeof *allowed; i++) {
        snprintf(line, sizeof line, "ACL DRYRUN " ACL_USER " %s", allowed[i]);
        redisReply *r = cmd_words(line);
        int ok = r && r->type == REDIS_REPLY_STATUS && !strcmp(r->str, "OK");
        CU_ASSERT(ok);
        if (!ok) fprintf(stderr, "\n    refused: %s: %s\n", allowed[i], r && r->str ? r->str : "?");
        if (r) freeReplyObject(r);
    }
    for (size_t i = 0; i < sizeof denied / sizeof *denied; i++) {
        snprintf(line, sizeof line, "ACL DRYRUN " ACL_USER " %s", denied[i]);
        redisReply *r = cmd_words(line);
        int ok = r && r->type == REDIS_REPLY_STATUS && !strcmp(r->str, "OK");
        CU_ASSERT(!ok);
        if (ok) fprintf(stderr, "\n    allowed: %s\n", denied[i]);
        if (r) freeReplyObject(r);
    }
}

static int send_req(const char *id, const char *rs, int max_tokens, int ignore_eos) {
    inf_request r;
    wh_req(&r, id, "once upon a time", max_tokens);
    if (rs) r.reply_stream = strdup(rs);
    r.ignore_eos = ignore_eos;
    int rc = wh_send(&H, WH_TOPIC_N, &r);
    return rc ? rc : wh_flush(&H);
}

/* The request's default stream ends with done and finish_reason finish. */
static void expect_done(const char *id, const char *finish) {
    wh_stream s;
    CU_ASSERT_EQUAL_FATAL(wh_wait_final(&H, id, 30000, &s), 0);
    CU_ASSERT_EQUAL(s.n_done, 1);
    CU_ASSERT_EQUAL(s.n_error, 0);
    if (finish) {
        CU_ASSERT_STRING_EQUAL(s.finish, finish);
        if (strcmp(s.finish, finish)) fprintf(stderr, "\n    %s: finish '%s', want '%s'\n", id, s.finish, finish);
    }
    wh_stream_free(&s);
}

/* Pub/sub cancel of a long request once it streams tokens. */
static void cancel_by_publish(const char *id) {
    CU_ASSERT_EQUAL(send_req(id, NULL, 3000, 1), 0);
    CU_ASSERT_EQUAL(wh_wait_tokens(&H, id, 30000), 0);
    redisReply *r = tu_redis_cmd(H.redis, "PUBLISH inferno:cancel %s", id);
    CU_ASSERT(r && r->type == REDIS_REPLY_INTEGER && r->integer == 1);
    if (r) freeReplyObject(r);
    expect_done(id, "abort");
}

/* Every client but ours (the one running CLIENT LIST) is the ACL user.
 * Retried briefly: the harness's own short connections (default user) may
 * not be gone from the server's list yet. */
static void expect_clients_as_user(void) {
    int mine = 0, other = 0;
    char last[512] = "";
    for (int attempt = 0; attempt < 40; attempt++, wh_sleep_ms(50)) {
        redisReply *r = tu_redis_cmd(H.redis, "CLIENT LIST");
        CU_ASSERT_FATAL(r && r->type == REDIS_REPLY_STRING);
        char *text = strdup(r->str);
        freeReplyObject(r);
        mine = other = 0;
        for (char *save = NULL, *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
            if (strstr(l, "cmd=client|list")) continue;
            if (strstr(l, " user=" ACL_USER " ")) {
                mine++;
            } else {
                other++;
                snprintf(last, sizeof last, "%s", l);
            }
        }
        free(text);
        if (mine >= 3 && other == 0) break;
    }
    CU_ASSERT(mine >= 3); /* sender, checker/queries, cancel subscriber */
    CU_ASSERT_EQUAL(other, 0);
    if (other) fprintf(stderr, "\n    client not as " ACL_USER ": %s\n", last);
}

static void test_serves_as_user(void) {
    NEED_ENV();
    CU_ASSERT_EQUAL(send_req("acl-plain", NULL, 8, 0), 0);
    expect_done("acl-plain", NULL);
    /* a reply stream of the request's choosing, under the prefix */
    CU_ASSERT_EQUAL(send_req("acl-custom", "inferno:out:custom-acl", 8, 0), 0);
    wh_stream s;
    long long end = wh_now_ms() + 30000;
    while (wh_now_ms() < end) {
        CU_ASSERT_EQUAL(wh_read_stream(&H, "inferno:out:custom-acl", &s), 0);
        if (s.n_done) break;
        wh_stream_free(&s);
        wh_sleep_ms(20);
    }
    CU_ASSERT_EQUAL(s.n_done, 1);
    wh_stream_free(&s);
    /* hostile: another application's key; refused before any Redis command */
    redisReply *r = tu_redis_cmd(H.redis, "SET app:secret x");
    if (r) freeReplyObject(r);
    CU_ASSERT_EQUAL(send_req("acl-hostile", "app:secret", 8, 0), 0);
    CU_ASSERT_EQUAL_FATAL(wh_wait_final(&H, "acl-hostile", 30000, &s), 0);
    CU_ASSERT_EQUAL(s.n_error, 1);
    CU_ASSERT_STRING_EQUAL(s.code, "invalid_reply_stream");
    wh_stream_free(&s);
    r = tu_redis_cmd(H.redis, "GET app:secret");
    CU_ASSERT(r && r->type == REDIS_REPLY_STRING && !strcmp(r->str, "x"));
    if (r) freeReplyObject(r);
    /* cancel key set before the request arrives (EXISTS, read-only grant) */
    r = tu_redis_cmd(H.redis, "SET inferno:cancel:acl-key 1 EX 60");
    if (r) freeReplyObject(r);
    CU_ASSERT_EQUAL(send_req("acl-key", NULL, 8, 0), 0);
    expect_done("acl-key", "abort");
    /* pub/sub cancel (SUBSCRIBE on the granted channel) */
    cancel_by_publish("acl-pub");
    /* heartbeats: the hash and the sorted set */
    CU_ASSERT_EQUAL(wh_wait_status(&H, WID1, "ready", 5000), 0);
    r = tu_redis_cmd(H.redis, "ZSCORE inferno:workers %s", WID1);
    CU_ASSERT(r && r->type == REDIS_REPLY_STRING);
    if (r) freeReplyObject(r);
    expect_clients_as_user();
    /* Redis refused nothing the worker sent, and the worker saw no refusal */
    r = tu_redis_cmd(H.redis, "ACL LOG");
    CU_ASSERT(r && r->type == REDIS_REPLY_ARRAY && r->elements == 0);
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements) fprintf(stderr, "\n    ACL LOG: %zu entries\n", r->elements);
    if (r) freeReplyObject(r);
    CU_ASSERT_EQUAL(wh_log_count(&H, 0, "lacks a permission"), 0);
    CU_ASSERT_EQUAL(wh_log_count(&H, 0, "Redis refused"), 0);
    /* clean exit: DEL of the hash, ZREM of the member */
    CU_ASSERT_EQUAL(wh_worker_stop(&H, 0, 20000), 0);
    CU_ASSERT_EQUAL(wh_int(&H, "EXISTS inferno:worker:%s", WID1), 0);
    r = tu_redis_cmd(H.redis, "ZSCORE inferno:workers %s", WID1);
    CU_ASSERT(r && r->type == REDIS_REPLY_NIL);
    if (r) freeReplyObject(r);
}

/* One grant removed at a time: logged by name, no crash, served once back. */
static void test_missing_permission(void) {
    NEED_ENV();
    int i = start_worker(WID2);
    CU_ASSERT_FATAL(i >= 0);
    /* admission checks (the checker thread) */
    CU_ASSERT_EQUAL(setuser("-xrange"), 0);
    CU_ASSERT_EQUAL(send_req("acl-noxrange", NULL, 8, 0), 0);
    CU_ASSERT_EQUAL(wait_log(i, "redis XRANGE inferno:out:acl-noxrange: the Redis user lacks a permission", 20000), 0);
    CU_ASSERT_EQUAL(wait_log(i, "'xrange' command", 5000), 0);
    CU_ASSERT(worker_alive(i));
    CU_ASSERT_EQUAL(setuser("+xrange"), 0);
    expect_done("acl-noxrange", NULL);
    /* stream entries (the sender thread): retried without a word before */
    CU_ASSERT_EQUAL(setuser("-xadd"), 0);
    CU_ASSERT_EQUAL(send_req("acl-noxadd", NULL, 8, 0), 0);
    CU_ASSERT_EQUAL(wait_log(i, "redis XADD inferno:out:acl-noxadd: the Redis user lacks a permission", 20000), 0);
    CU_ASSERT_EQUAL(wait_log(i, "'xadd' command", 5000), 0);
    CU_ASSERT(worker_alive(i));
    CU_ASSERT_EQUAL(setuser("+xadd"), 0);
    expect_done("acl-noxadd", NULL);
    /* the cancel channel (the subscriber): Redis drops the subscribed
     * connection, the new SUBSCRIBE is refused; cancels were lost silently */
    CU_ASSERT_EQUAL(setuser("resetchannels"), 0);
    CU_ASSERT_EQUAL(wait_log(i, "redis SUBSCRIBE inferno:cancel: the Redis user lacks a permission", 20000), 0);
    CU_ASSERT(worker_alive(i));
    CU_ASSERT_EQUAL(setuser("&inferno:cancel"), 0);
    long long end = wh_now_ms() + 10000, subs = 0;
    while (wh_now_ms() < end) {
        redisReply *r = tu_redis_cmd(H.redis, "PUBSUB NUMSUB inferno:cancel");
        subs = r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 ? r->element[1]->integer : 0;
        if (r) freeReplyObject(r);
        if (subs == 1) break;
        wh_sleep_ms(50);
    }
    CU_ASSERT_EQUAL(subs, 1);
    cancel_by_publish("acl-pub2");
    /* heartbeats */
    CU_ASSERT_EQUAL(setuser("-hset"), 0);
    CU_ASSERT_EQUAL(wait_log(i, "heartbeat failed: redis HSET inferno:worker:" WID2 ": the Redis user lacks a permission",
                             10000), 0);
    CU_ASSERT_EQUAL(wait_log(i, "'hset' command", 5000), 0);
    CU_ASSERT(worker_alive(i));
    CU_ASSERT_EQUAL(setuser("+hset"), 0);
    redisReply *r = tu_redis_cmd(H.redis, "HSET inferno:worker:" WID2 " status stale");
    if (r) freeReplyObject(r);
    CU_ASSERT_EQUAL(wh_wait_status(&H, WID2, "ready", 10000), 0);
    CU_ASSERT(wh_log_count(&H, i, "Redis refused") > 0);
    CU_ASSERT_EQUAL(wh_worker_stop(&H, i, 20000), 0);
}

void test_register_worker_acl(void) {
    CU_pSuite s = CU_add_suite("worker_acl", suite_init, suite_clean);
    CU_add_test(s, "docs/operations.md quotes docs/redis-acl.txt", test_docs_quote_rules);
    CU_add_test(s, "ACL DRYRUN: the worker's commands allowed, others not", test_dryrun);
    CU_add_test(s, "serves as the ACL user: requests, cancels, hostile stream, heartbeats", test_serves_as_user);
    CU_add_test(s, "a grant removed: named in the log, no crash, served once back", test_missing_permission);
}
