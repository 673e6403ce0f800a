/* test_chaos.c - suite "chaos": three bin/inferno-worker processes in one
 * consumer group serve at least 1,000 requests over the three priority
 * topics while the test SIGKILLs workers (and restarts them), kills and
 * restarts redis-server (AOF on, fsync always: every acknowledged write
 * survives), takes the Kafka broker down and up, and mixes in hostile
 * messages of every class of docs/redis.md "Reply stream rules" (keys
 * outside the prefix, a wrong-type key and a foreign stream inside it,
 * hijacks of answered requests' streams, an oversized message, undecodable
 * bytes with and without a key, priority INT_MIN).
 *
 * Afterwards an invariant checker reads every reply stream and the whole
 * keyspace: every request with a recoverable id has exactly one final entry
 * (valid ones a done, hostile ones an error), none is lost, no stream holds
 * start entries of two request ids or entries without an event, no key
 * outside the worker's prefixes appeared and no key that existed before
 * (other applications', the victims' answered streams) changed, and every
 * partition's committed offset reached its end. It prints its figures.
 *
 * INFERNO_CHAOS_REQUESTS sets the number of valid requests (default 1000;
 * `make chaos` runs the long form with 10,000 and more kills). */
#include <limits.h>

#include "test_worker_harness.h"

#define P 3
#define N_WORKERS 3
#define N_VICTIMS 6
#define BIG_BYTES (1048576 + 1)

static wh H;

/* ---- keyspace digests ------------------------------------------------------------- */

typedef struct kd {
    char *key;
    uint64_t digest;
} kd;

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ULL;
    return h;
}

/* Hash of a reply tree; sort_pairs for unordered types (hash, set). */
static uint64_t fnv_reply(uint64_t h, const redisReply *r) {
    if (!r) return fnv(h, "nil", 3);
    if (r->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < r->elements; i++) h = fnv_reply(h, r->element[i]);
        return fnv(h, "]", 1);
    }
    if (r->str) return fnv(fnv(h, r->str, r->len), "|", 1);
    return fnv(h, &r->integer, sizeof r->integer);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Type, content and whether a TTL is set, as one 64-bit digest. */
static uint64_t key_digest(redisContext *c, const char *key) {
    uint64_t h = 1469598103934665603ULL;
    redisReply *t = redisCommand(c, "TYPE %s", key);
    if (!t) return 0;
    h = fnv(h, t->str ? t->str : "?", t->str ? strlen(t->str) : 1);
    redisReply *v = NULL;
    if (t->str && !strcmp(t->str, "string")) v = redisCommand(c, "GET %s", key);
    else if (t->str && !strcmp(t->str, "stream")) v = redisCommand(c, "XRANGE %s - +", key);
    else if (t->str && !strcmp(t->str, "list")) v = redisCommand(c, "LRANGE %s 0 -1", key);
    else if (t->str && !strcmp(t->str, "zset")) v = redisCommand(c, "ZRANGE %s 0 -1 WITHSCORES", key);
    else if (t->str && (!strcmp(t->str, "hash") || !strcmp(t->str, "set"))) {
        int hash = !strcmp(t->str, "hash");
        v = redisCommand(c, hash ? "HGETALL %s" : "SMEMBERS %s", key);
        if (v && v->type == REDIS_REPLY_ARRAY) {
            size_t step = hash ? 2 : 1, n = v->elements / step;
            char **items = calloc(n ? n : 1, sizeof *items);
            for (size_t i = 0; i < n; i++) {
                const char *a = v->element[i * step]->str, *b = hash ? v->element[i * step + 1]->str : "";
                items[i] = malloc(strlen(a) + strlen(b) + 2);
                sprintf(items[i], "%s=%s", a, b);
            }
            qsort(items, n, sizeof *items, cmp_str);
            for (size_t i = 0; i < n; i++) {
                h = fnv(h, items[i], strlen(items[i]) + 1);
                free(items[i]);
            }
            free(items);
            freeReplyObject(v);
            v = NULL;
        }
    }
    if (v) h = fnv_reply(h, v);
    freeReplyObject(v);
    freeReplyObject(t);
    redisReply *ttl = redisCommand(c, "PTTL %s", key);
    h = fnv(h, ttl && ttl->integer > 0 ? "ttl" : "none", 4);
    freeReplyObject(ttl);
    return h;
}

/* All keys (SCAN). Caller frees each and the array. */
static char **all_keys(redisContext *c, size_t *n_out) {
    size_t n = 0, cap = 1024;
    char **keys = malloc(cap * sizeof *keys);
    char cursor[32] = "0";
    do {
        redisReply *r = redisCommand(c, "SCAN %s COUNT 1000", cursor);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            freeReplyObject(r);
            break;
        }
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        for (size_t i = 0; i < r->element[1]->elements; i++) {
            if (n == cap) keys = realloc(keys, (cap *= 2) * sizeof *keys);
            keys[n++] = strdup(r->element[1]->element[i]->str);
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    *n_out = n;
    return keys;
}

static int is_worker_key(const char *k) {
    return !strncmp(k, "inferno:worker:", 15) || !strcmp(k, "inferno:workers") || !strncmp(k, "inferno:cancel:", 15);
}

/* ---- requests -------------------------------------------------------------------- */

typedef struct expect {
    char id[48];
    int want_error; /* hostile: an error final; else a done */
} expect;

static expect *EX;
static int n_ex, cap_ex;

static void expect_add(const char *id, int want_error) {
    if (n_ex == cap_ex) EX = realloc(EX, (size_t)(cap_ex = cap_ex ? cap_ex * 2 : 2048) * sizeof *EX);
    snprintf(EX[n_ex].id, sizeof EX[n_ex].id, "%s", id);
    EX[n_ex++].want_error = want_error;
}

static const char *const PROMPTS[] = {"Once upon a time", "The little dog", "A girl named Lily", "The sun was",
                                      "Tom and his mom", "In the park", "One day, a bird"};
static const char *const TOPICS[] = {WH_TOPIC_H, WH_TOPIC_N, WH_TOPIC_L};

static int send_valid(int i, uint64_t *rng) {
    char id[48];
    snprintf(id, sizeof id, "chaos-%05d", i);
    inf_request r;
    /* mostly short answers; every tenth a longer one, so that kills catch
     * requests in the middle of generating */
    int max_tokens = i % 10 == 0 ? 24 + (int)(tu_rand_u64(rng) % 40) : 1 + (int)(tu_rand_u64(rng) % 6);
    wh_req(&r, id, PROMPTS[tu_rand_u64(rng) % 7], max_tokens);
    if (tu_rand_u64(rng) % 2) {
        r.temperature = 0.8f;
        r.has_seed = true;
        r.seed = i;
    }
    if (i % 250 == 7) { /* hostile priority: clamped, served normally */
        r.has_priority = true;
        r.priority = INT_MIN;
    }
    expect_add(id, 0);
    return wh_send(&H, TOPICS[tu_rand_u64(rng) % 3], &r);
}

static int send_reply_to(const char *id, const char *reply_stream, const char *topic) {
    inf_request r;
    wh_req(&r, id, "Once upon a time", 4);
    r.reply_stream = strdup(reply_stream);
    expect_add(id, 1);
    return wh_send(&H, topic, &r);
}

/* One hostile message of class k (k cycles through the classes); returns
 * 0 on a produce success. */
static int send_hostile(int k, uint64_t *rng) {
    char id[48];
    const char *topic = TOPICS[k % 3];
    switch (k % 8) {
    case 0: snprintf(id, sizeof id, "evil-out-%d", k); return send_reply_to(id, "session:123", topic);
    case 1: snprintf(id, sizeof id, "evil-app-%d", k); return send_reply_to(id, "app:clicks", topic);
    case 2: snprintf(id, sizeof id, "evil-type-%d", k); return send_reply_to(id, "inferno:out:wt-string", topic);
    case 3: snprintf(id, sizeof id, "evil-junk-%d", k); return send_reply_to(id, "inferno:out:junk", topic);
    case 4: {
        char victim[64];
        snprintf(id, sizeof id, "evil-hijack-%d", k);
        snprintf(victim, sizeof victim, "inferno:out:victim-%d", (int)(tu_rand_u64(rng) % N_VICTIMS));
        return send_reply_to(id, victim, topic);
    }
    case 5: { /* 1 MiB + 1 byte: over the request limit */
        snprintf(id, sizeof id, "evil-big-%d", k);
        char *big = malloc(BIG_BYTES);
        memset(big, 'x', BIG_BYTES);
        expect_add(id, 1);
        int rc = wh_produce_raw(&H, topic, id, big, BIG_BYTES);
        free(big);
        return rc;
    }
    case 6: { /* undecodable, id only in the key */
        static const char junk[] = "\x01\x02not avro at all\xff\xfe";
        snprintf(id, sizeof id, "evil-bytes-%d", k);
        expect_add(id, 1);
        return wh_produce_raw(&H, topic, id, junk, sizeof junk - 1);
    }
    default: { /* undecodable, no key: DLQ only, no stream */
        static const char junk[] = "\x4f\x01\xff\xff\xff\xff\x0f garbage";
        return wh_produce_raw(&H, topic, NULL, junk, sizeof junk - 1);
    }
    }
}

/* ---- the run ---------------------------------------------------------------------- */

static const char *const WORKER_ARGS[] = {"--heartbeat-ms", "500", "--drain-timeout-s", "5", NULL};

typedef struct figures {
    int kills, worker_restarts, redis_restarts, broker_outages, hostile;
    long long t_produced_ms, t_done_ms;
} figures;

static void kill_one(uint64_t *rng, figures *f) {
    int i = (int)(tu_rand_u64(rng) % N_WORKERS);
    wh_worker_signal(&H, i, SIGKILL);
    f->kills++;
    wh_sleep_ms(200);
    if (wh_worker_respawn(&H, i, WORKER_ARGS) == i) f->worker_restarts++;
}

/* Ids whose stream has no final entry yet (last entry done/error). */
static int count_unfinished(redisContext *c, int verbose) {
    int n = 0;
    for (int i = 0; i < n_ex; i++) redisAppendCommand(c, "XREVRANGE inferno:out:%s + - COUNT 1", EX[i].id);
    for (int i = 0; i < n_ex; i++) {
        redisReply *r = NULL;
        if (redisGetReply(c, (void **)&r) != REDIS_OK) return -1;
        int fin = 0;
        if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 1) {
            const char *ev = wh_field(r->element[0]->element[1], "event", NULL);
            fin = ev && (!strcmp(ev, "done") || !strcmp(ev, "error"));
        }
        if (!fin && verbose && n < 5) fprintf(stderr, "\n    unfinished: %s", EX[i].id);
        n += !fin;
        freeReplyObject(r);
    }
    return n;
}

static void seed_foreign_keys(redisContext *c) {
    redisReply *r;
    r = redisCommand(c, "SET session:123 x");
    freeReplyObject(r);
    r = redisCommand(c, "HSET user:42 name ann plan pro");
    freeReplyObject(r);
    r = redisCommand(c, "SET inferno:out:wt-string not-a-stream");
    freeReplyObject(r);
    for (int i = 0; i < 600; i++) redisAppendCommand(c, "XADD app:clicks * user %d", i);
    /* a stream inside the prefix that the worker did not write: its 500th
     * entry has no event field (the page-loop finding) */
    for (int i = 0; i < 600; i++) {
        if (i == 499) redisAppendCommand(c, "XADD inferno:out:junk * note %d", i);
        else redisAppendCommand(c, "XADD inferno:out:junk * event token seq %d text x", i);
    }
    for (int i = 0; i < 1200; i++) {
        redisGetReply(c, (void **)&r);
        freeReplyObject(r);
    }
}

static void test_chaos(void) {
    const char *env = getenv("INFERNO_CHAOS_REQUESTS");
    int n_valid = env && atoi(env) > 0 ? atoi(env) : 1000;
    int n_kills = n_valid <= 1000 ? 3 : 3 + n_valid / 2000;
    int n_hostile = 24 + n_valid / 500;
    figures f = {0};
    uint64_t rng = 0x5eed0000ULL + (uint64_t)n_valid;
    long long t0 = wh_now_ms();

    memset(&H, 0, sizeof H);
    if (access(tu_bin("inferno-worker"), X_OK) != 0) {
        tu_skip("%s is not built", tu_bin("inferno-worker"));
        return;
    }
    if (!tu_redis_available()) {
        tu_skip("redis-server unavailable");
        return;
    }
    /* the slower random model (about 600 tokens/s a core): kills and
     * outages catch requests in the middle of generating */
    const char *m = wh_model_slow();
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    snprintf(H.model, sizeof H.model, "%s", m);
    const char *aof[] = {"--appendonly", "yes", "--appendfsync", "always", NULL};
    H.redis = tu_redis_start(aof);
    CU_ASSERT_PTR_NOT_NULL_FATAL(H.redis);
    CU_ASSERT_EQUAL_FATAL(wh_kafka_start(&H, P), 0);
    redisContext *c = tu_redis_connect(H.redis);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    seed_foreign_keys(c);

    char id[32];
    for (int i = 0; i < N_WORKERS; i++) {
        snprintf(id, sizeof id, "chaos-w%d", i + 1);
        CU_ASSERT_FATAL(wh_worker_start(&H, id, WORKER_ARGS) == i);
    }
    for (int i = 0; i < N_WORKERS; i++) CU_ASSERT_FATAL(wh_wait_status(&H, H.workers[i].id, "ready", 60000) == 0);

    /* phase 0: the victims' answered streams */
    for (int v = 0; v < N_VICTIMS; v++) {
        snprintf(id, sizeof id, "victim-%d", v);
        CU_ASSERT_EQUAL(wh_send_simple(&H, TOPICS[v % 3], id, "The little dog", 5), 0);
        expect_add(id, 0);
    }
    CU_ASSERT_EQUAL(wh_flush(&H), 0);
    for (int v = 0; v < N_VICTIMS; v++) {
        wh_stream s;
        snprintf(id, sizeof id, "victim-%d", v);
        CU_ASSERT_EQUAL(wh_wait_final(&H, id, 60000, &s), 0);
        wh_stream_free(&s);
    }

    /* the snapshot: every key but the workers' own heartbeat keys */
    size_t n_before = 0;
    char **before = all_keys(c, &n_before);
    kd *snap = calloc(n_before ? n_before : 1, sizeof *snap);
    size_t n_snap = 0;
    for (size_t i = 0; i < n_before; i++) {
        if (!is_worker_key(before[i])) snap[n_snap++] = (kd){strdup(before[i]), key_digest(c, before[i])};
        free(before[i]);
    }
    free(before);

    /* phase 1: valid and hostile requests with faults along the way */
    int next_kill = 1, redis_done = 0, hostile_sent = 0;
    long long t_prod = wh_now_ms();
    for (int i = 0; i < n_valid; i++) {
        CU_ASSERT_EQUAL(send_valid(i, &rng), 0);
        while (hostile_sent < n_hostile && (long long)hostile_sent * n_valid <= (long long)i * n_hostile) {
            CU_ASSERT_EQUAL(send_hostile(hostile_sent, &rng), 0);
            hostile_sent++;
        }
        /* about 100 requests per second: faults land while work is in flight */
        if (i % 10 == 9) wh_sleep_ms(100);
        if (next_kill <= n_kills && (long long)i * (n_kills + 2) >= (long long)next_kill * n_valid) {
            kill_one(&rng, &f);
            next_kill++;
        }
        if (!redis_done && i >= n_valid * 2 / 5) {
            tu_redis_kill(H.redis);
            wh_sleep_ms(300);
            CU_ASSERT_EQUAL(tu_redis_restart(H.redis), 0);
            f.redis_restarts++;
            redis_done = 1;
            redisFree(c);
            c = tu_redis_connect(H.redis);
        }
    }
    while (hostile_sent < n_hostile) CU_ASSERT_EQUAL(send_hostile(hostile_sent++, &rng), 0);
    f.hostile = hostile_sent;
    CU_ASSERT_EQUAL(wh_flush(&H), 0);
    f.t_produced_ms = wh_now_ms() - t_prod;

    /* the broker goes away with work still queued, then comes back */
    rd_kafka_mock_broker_set_down(H.mc, 1);
    wh_sleep_ms(2000);
    rd_kafka_mock_broker_set_up(H.mc, 1);
    f.broker_outages++;
    kill_one(&rng, &f); /* a last kill during the recovery */

    /* wait for every final and every commit (bounded) */
    long long end = wh_now_ms() + 120000;
    int left = -1;
    while (wh_now_ms() < end && (left = count_unfinished(c, 0)) != 0) wh_sleep_ms(500);
    if (left) count_unfinished(c, 1);
    CU_ASSERT_EQUAL(left, 0);
    long long unc = -1;
    while (wh_now_ms() < end && (unc = wh_uncommitted(&H, "inferno-workers", P)) != 0) wh_sleep_ms(300);
    CU_ASSERT_EQUAL(unc, 0);
    f.t_done_ms = wh_now_ms() - t_prod;
    wh_sleep_ms(1500); /* a late duplicate would land now */

    /* ---- invariants ---- */
    int finals_hist[4] = {0}, wrong_kind = 0, retried = 0;
    for (int i = 0; i < n_ex; i++) {
        char key[96];
        wh_key(key, sizeof key, EX[i].id);
        wh_stream s;
        if (wh_read_stream(&H, key, &s) != 0) memset(&s, 0, sizeof s);
        int fin = s.n_done + s.n_error;
        finals_hist[fin > 3 ? 3 : fin]++;
        if (fin == 1 && (EX[i].want_error ? s.n_error != 1 : s.n_done != 1)) {
            if (wrong_kind++ < 5)
                fprintf(stderr, "\n    %s: done=%d error=%d code=%s", EX[i].id, s.n_done, s.n_error, s.code);
        }
        if (fin != 1 && finals_hist[0] + finals_hist[2] + finals_hist[3] <= 5)
            fprintf(stderr, "\n    %s: %d final entries", EX[i].id, fin);
        if (s.max_attempt > 1) retried++;
        wh_stream_free(&s);
    }
    CU_ASSERT_EQUAL(finals_hist[1], n_ex);
    CU_ASSERT_EQUAL(wrong_kind, 0);

    /* every stream: one owner, every entry written by a worker; the
     * keyspace outside the prefixes and every key of the snapshot unchanged */
    size_t n_after = 0;
    char **after = all_keys(c, &n_after);
    int two_owners = 0, foreign_new = 0, n_out = 0, n_worker = 0, changed = 0;
    for (size_t i = 0; i < n_after; i++) {
        const char *k = after[i];
        size_t j = 0;
        while (j < n_snap && strcmp(snap[j].key, k)) j++;
        if (j < n_snap) {
            free(after[i]);
            continue; /* checked below */
        }
        if (is_worker_key(k)) n_worker++;
        else if (!strncmp(k, "inferno:out:", 12)) {
            n_out++;
            redisReply *r = redisCommand(c, "XRANGE %s - +", k);
            for (size_t e = 0; r && r->type == REDIS_REPLY_ARRAY && e < r->elements; e++) {
                redisReply *kv = r->element[e]->element[1];
                const char *ev = wh_field(kv, "event", NULL), *rid = wh_field(kv, "request_id", NULL);
                if (!ev || (!strcmp(ev, "start") && (!rid || strcmp(rid, k + 12)))) {
                    if (two_owners++ < 5) fprintf(stderr, "\n    %s: entry %zu event=%s request_id=%s", k, e,
                                                  ev ? ev : "(none)", rid ? rid : "(none)");
                    break;
                }
            }
            freeReplyObject(r);
        } else {
            if (foreign_new++ < 5) fprintf(stderr, "\n    new key outside the prefixes: %s", k);
        }
        free(after[i]);
    }
    free(after);
    for (size_t j = 0; j < n_snap; j++) {
        if (key_digest(c, snap[j].key) != snap[j].digest) {
            if (changed++ < 5) fprintf(stderr, "\n    key changed: %s", snap[j].key);
        }
        free(snap[j].key);
    }
    free(snap);
    CU_ASSERT_EQUAL(two_owners, 0);
    CU_ASSERT_EQUAL(foreign_new, 0);
    CU_ASSERT_EQUAL(changed, 0);

    int64_t lo = 0, dlq = -1;
    /* a fresh client: the test's producer may still be stuck on the broker outage */
    CU_ASSERT_EQUAL(wh_producer_new(&H), 0);
    CU_ASSERT_EQUAL(rd_kafka_query_watermark_offsets(H.prod, WH_TOPIC_DLQ, 0, &lo, &dlq, 10000), 0);
    /* every hostile message that is not a priority game ends in the DLQ */
    CU_ASSERT(dlq >= f.hostile);

    fprintf(stderr,
            "\n    chaos: %d valid + %d hostile requests over 3 topics x %d partitions, %d workers; "
            "SIGKILLs %d (restarted %d), redis restarts %d (SIGKILL, AOF fsync always), broker down/up %d (2 s); "
            "finals per id: exactly 1 for %d of %d ids (0: %d, 2: %d, 3+: %d); wrong final kind %d; "
            "retried (attempt > 1) %d; streams with a foreign entry %d; keys: %zu in the snapshot, %d changed, "
            "%d new reply streams, %d worker keys, %d new keys elsewhere; uncommitted %lld; DLQ records %lld; "
            "produced in %.1f s, all final and committed %.1f s after the first, whole test %.1f s\n",
            n_valid + N_VICTIMS, f.hostile, P, N_WORKERS, f.kills, f.worker_restarts, f.redis_restarts,
            f.broker_outages, finals_hist[1], n_ex, finals_hist[0], finals_hist[2], finals_hist[3], wrong_kind,
            retried, two_owners, n_snap, changed, n_out, n_worker, foreign_new, unc, (long long)dlq,
            f.t_produced_ms / 1000.0, f.t_done_ms / 1000.0, (wh_now_ms() - t0) / 1000.0);
    if (CU_get_number_of_failures() > 0)
        for (int i = 0; i < N_WORKERS; i++) wh_print_log(&H, i, 30);
    redisFree(c);
    wh_teardown(&H);
    free(EX);
    EX = NULL;
    n_ex = cap_ex = 0;
}

void test_register_chaos(void) {
    CU_pSuite s = CU_add_suite("chaos", NULL, NULL);
    CU_add_test(s, "3 workers, kills, Redis AOF restart, broker down/up, hostile mix: every invariant holds",
                test_chaos);
}
