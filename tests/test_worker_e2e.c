/* test_worker_e2e.c - suite "worker_e2e": one bin/inferno-worker subprocess
 * against a real redis-server and the (in-process) mock Kafka cluster:
 * requests from foreign clients (Python confluent-kafka + python3-avro,
 * kcat) on all three topics answered like `inferno-model generate`, every
 * kind of bad message, cancellation, deadlines, stream=false and metadata,
 * redelivery of an answered request, and bin/inferno-loadgen --json.
 * Helpers: tests/test_worker_harness.h. */
#include "test_worker_harness.h"
#include "tools/json.h"

static wh H;
static int H_ok;
static int W0 = -1;

static int suite_init(void) {
    H_ok = 0;
    if (wh_setup(&H, 3, 1) != 0) return 0; /* tests then skip */
    const char *extra[] = {"--heartbeat-ms", "500", "--max-num-seqs", "8", NULL};
    W0 = wh_worker_start(&H, "e2e-w0", extra);
    if (W0 < 0 || wh_wait_status(&H, "e2e-w0", "ready", 30000) != 0) {
        fprintf(stderr, "\nworker did not become ready\n");
        if (W0 >= 0) wh_print_log(&H, W0, 30);
        return 0;
    }
    H_ok = 1;
    return 0;
}

static int suite_clean(void) {
    if (H.n_workers && W0 >= 0 && H.workers[W0].pid > 0) {
        int rc = wh_worker_stop(&H, W0, 20000);
        if (rc != 0) fprintf(stderr, "\nworker exit status %d\n", rc);
    }
    wh_teardown(&H);
    return 0;
}

#define NEED_ENV()                                                     \
    do {                                                               \
        if (!H_ok) {                                                   \
            tu_skip("worker environment unavailable (see above)");     \
            return;                                                    \
        }                                                              \
    } while (0)

/* Greedy reference from the CLI: ids and text of `inferno-model generate`. */
static int reference(const char *prompt, int max_tokens, int32_t *ids, int *n_ids, char **text) {
    char mt[16];
    snprintf(mt, sizeof mt, "%d", max_tokens);
    char *argv[] = {(char *)tu_bin("inferno-model"), "generate", H.model, "--json", "--max-tokens", mt,
                    "--temperature", "0", "--threads", "1", (char *)prompt, NULL};
    char *out = NULL;
    if (tu_run_capture(argv, &out) != 0 || !out) { free(out); return -1; }
    json_value v;
    inf_error err = {0};
    int rc = json_parse(out, strlen(out), &v, &err);
    free(out);
    if (rc) return -1;
    const json_value *a = json_get(&v, "ids"), *t = json_get(&v, "text");
    *n_ids = 0;
    for (size_t i = 0; a && i < a->n && i < 4096; i++) ids[(*n_ids)++] = (int32_t)a->items[i].number;
    *text = t ? strdup(t->str) : NULL;
    json_free(&v);
    return 0;
}

/* Checks that request id's stream holds the greedy answer to prompt. */
static void check_answer(const char *id, const char *prompt, int max_tokens) {
    wh_stream s;
    if (wh_wait_final(&H, id, 30000, &s) != 0) {
        CU_FAIL("no final entry");
        fprintf(stderr, "\n    request %s: no final entry\n", id);
        wh_print_log(&H, W0, 20);
        return;
    }
    CU_ASSERT_EQUAL(s.n_done, 1);
    CU_ASSERT_EQUAL(s.n_error, 0);
    CU_ASSERT_EQUAL(s.n_start, 1);
    CU_ASSERT_EQUAL(s.max_attempt, 1);
    int32_t ref[4096];
    int n_ref = 0;
    char *text = NULL;
    CU_ASSERT_EQUAL_FATAL(reference(prompt, max_tokens, ref, &n_ref, &text), 0);
    CU_ASSERT_EQUAL(s.n_ids, n_ref);
    CU_ASSERT(n_ref > 0 && memcmp(s.ids, ref, (size_t)n_ref * sizeof *ref) == 0);
    CU_ASSERT_EQUAL(s.completion_tokens, n_ref);
    /* the CLI prints invalid UTF-8 as U+FFFD; the engine never emits it */
    CU_ASSERT(text && s.text && strcmp(text, s.text) == 0);
    if (!(text && s.text && strcmp(text, s.text) == 0))
        fprintf(stderr, "\n    %s: text differs:\n    worker: %s\n    cli:    %s\n", id, s.text ? s.text : "(none)",
                text ? text : "(none)");
    free(text);
    wh_stream_free(&s);
}

static const char *PY_CLIENT =
    "import io, struct, sys\n"
    "import avro.schema, avro.io\n"
    "from confluent_kafka import Producer\n"
    "brokers, avsc, pcf, kcat_out = sys.argv[1:5]\n"
    "schema = avro.schema.parse(open(avsc).read())\n"
    "EMPTY = 0xc15d213aa4d7a795\n"
    "T = []\n"
    "for i in range(256):\n"
    "    fp = i\n"
    "    for _ in range(8): fp = (fp >> 1) ^ (EMPTY & -(fp & 1))\n"
    "    T.append(fp)\n"
    "def crc64(b):\n"
    "    fp = EMPTY\n"
    "    for x in b: fp = (fp >> 8) ^ T[(fp ^ x) & 0xff]\n"
    "    return fp\n"
    "assert crc64(b'\"null\"') == 7195948357588979594\n"
    "fp = crc64(open(pcf, 'rb').read().strip())\n"
    "def rec(rid, prompt):\n"
    "    return {'request_id': rid, 'prompt': prompt, 'prompt_token_ids': None, 'max_tokens': 12,\n"
    "            'min_tokens': 0, 'temperature': 0.0, 'top_k': -1, 'top_p': 1.0, 'min_p': 0.0,\n"
    "            'repetition_penalty': 1.0, 'presence_penalty': 0.0, 'frequency_penalty': 0.0,\n"
    "            'seed': None, 'stop': [], 'stop_token_ids': [], 'ignore_eos': False, 'logprobs': None,\n"
    "            'logit_bias': [], 'priority': None, 'deadline_ms': None, 'reply_stream': None,\n"
    "            'stream': True, 'metadata': {'client': 'python'}, 'messages': None, 'tools': None,\n"
    "            'add_generation_prompt': True, 'chat_template_kwargs': None, 'response_format': None,\n"
    "            'grammar': None, 'regex': None, 'choice': None}\n"
    "def body(r):\n"
    "    b = io.BytesIO(); avro.io.DatumWriter(schema).write(r, avro.io.BinaryEncoder(b)); return b.getvalue()\n"
    "p = Producer({'bootstrap.servers': brokers})\n"
    "p.produce('inferno.requests.high', key='py-high', value=body(rec('py-high', 'the happy dog')))\n"
    "p.produce('inferno.requests.normal', key='py-normal',\n"
    "          value=b'\\x00' + struct.pack('>i', 17) + body(rec('py-normal', 'once upon a time')))\n"
    "p.produce('inferno.requests.low', key='py-low',\n"
    "          value=b'\\xc3\\x01' + struct.pack('<Q', fp) + body(rec('py-low', 'a little bird')))\n"
    "assert p.flush(30) == 0\n"
    "open(kcat_out, 'wb').write(body(rec('kcat-1', 'the red ball')))\n";

static void test_foreign_clients(void) {
    NEED_ENV();
    const char *script = tu_tmpfile("e2e-client.py"), *kfile = tu_tmpfile("e2e-kcat.bin");
    FILE *f = fopen(script, "w");
    CU_ASSERT_FATAL(f != NULL);
    fputs(PY_CLIENT, f);
    fclose(f);
    if (access("/usr/bin/python3", X_OK) != 0) {
        tu_skip("/usr/bin/python3 missing");
        return;
    }
    char *argv[] = {"/usr/bin/python3", (char *)script, H.brokers, "schemas/inference_request.avsc",
                    "schemas/inference_request.pcf.json", (char *)kfile, NULL};
    char *out = NULL;
    int rc = tu_run_capture(argv, &out);
    free(out);
    if (rc != 0) {
        tu_skip("python3 confluent_kafka/avro client failed (exit %d): python3-confluent-kafka and python3-avro "
                "are needed", rc);
        return;
    }
    check_answer("py-high", "the happy dog", 12);
    check_answer("py-normal", "once upon a time", 12);
    check_answer("py-low", "a little bird", 12);
    wh_stream s;
    if (wh_wait_final(&H, "py-low", 100, &s) == 0) {
        CU_ASSERT_STRING_EQUAL(s.metadata, "{\"client\":\"python\"}");
        wh_stream_free(&s);
    }
    if (access("/usr/bin/kcat", X_OK) != 0) {
        tu_skip("kcat missing");
        return;
    }
    char *kargv[] = {"/usr/bin/kcat", "-b", H.brokers, "-P", "-t", WH_TOPIC_N, "-k", "kcat-1", (char *)kfile, NULL};
    out = NULL;
    CU_ASSERT_EQUAL(tu_run_capture(kargv, &out), 0);
    free(out);
    check_answer("kcat-1", "the red ball", 12);
}

/* Bad messages of every kind; the worker keeps serving; DLQ + error entries. */
static void test_bad_messages(void) {
    NEED_ENV();
    uint8_t *buf = NULL;
    size_t len = 0;
    inf_error err = {0};
    /* 1. not Avro at all */
    CU_ASSERT_EQUAL(wh_produce_raw(&H, WH_TOPIC_H, "junk", "\x02\xff\xff\xff garbage", 12), 0);
    /* 2. single-object with a fingerprint nobody registered */
    inf_request r;
    wh_req(&r, "e2e-unknown-fp", "hello", 4);
    CU_ASSERT_EQUAL_FATAL(inf_avro_encode(H.reg, &r, INF_AVRO_FRAMING_BARE, 0, &buf, &len, &err), 0);
    uint8_t *framed = NULL;
    size_t flen = 0;
    CU_ASSERT_EQUAL_FATAL(inf_avro_frame(INF_AVRO_FRAMING_SINGLE_OBJECT, 0, 0x1234567890abcdefull, buf, len, &framed,
                                         &flen, &err), 0);
    CU_ASSERT_EQUAL(wh_produce_raw(&H, WH_TOPIC_N, "e2e-unknown-fp", framed, flen), 0);
    free(buf);
    free(framed);
    inf_request_free(&r);
    /* 3. invalid request id */
    wh_req(&r, "bad id!", "hello", 4);
    CU_ASSERT_EQUAL(wh_send(&H, WH_TOPIC_L, &r), 0);
    /* 4. a parameter out of range (id known) */
    wh_req(&r, "e2e-bad-params", "hello", 4);
    r.top_p = 5.0f;
    CU_ASSERT_EQUAL(wh_send(&H, WH_TOPIC_H, &r), 0);
    /* 5. a prompt longer than the context (4096 tokens) */
    size_t cap = 40000, n = 0;
    char *longp = malloc(cap);
    CU_ASSERT_FATAL(longp != NULL);
    while (n + 12 < cap) n += (size_t)snprintf(longp + n, cap - n, "dog cat %zu ", n);
    wh_req(&r, "e2e-too-long", longp, 4);
    free(longp);
    CU_ASSERT_EQUAL(wh_send(&H, WH_TOPIC_N, &r), 0);
    /* 6. accepted by the codec, refused by the engine: token outside the vocabulary */
    wh_req(&r, "e2e-bad-bias", "hello", 4);
    r.logit_bias = calloc(1, sizeof *r.logit_bias);
    r.logit_bias[0].token_id = 100000;
    r.logit_bias[0].bias = 1;
    r.n_logit_bias = 1;
    CU_ASSERT_EQUAL(wh_send(&H, WH_TOPIC_L, &r), 0);
    /* 7. no value at all */
    CU_ASSERT_EQUAL(wh_produce_raw(&H, WH_TOPIC_H, "e2e-null", NULL, 0), 0);
    /* and a good one after them all */
    CU_ASSERT_EQUAL(wh_send_simple(&H, WH_TOPIC_L, "e2e-after-bad", "the cat sat", 6), 0);
    CU_ASSERT_EQUAL(wh_flush(&H), 0);
    check_answer("e2e-after-bad", "the cat sat", 6);

    const char *with_id[] = {"e2e-bad-params", "e2e-too-long", "e2e-bad-bias"};
    const char *codes[] = {"invalid_params", "prompt_too_long", "invalid_request"};
    for (int i = 0; i < 3; i++) {
        wh_stream s;
        if (wh_wait_final(&H, with_id[i], 20000, &s) != 0) {
            CU_FAIL("no error entry");
            fprintf(stderr, "\n    %s: no error entry\n", with_id[i]);
            wh_print_log(&H, W0, 30);
            continue;
        }
        CU_ASSERT_EQUAL(s.n_error, 1);
        CU_ASSERT_EQUAL(s.n_done, 0);
        CU_ASSERT_STRING_EQUAL(s.code, codes[i]);
        wh_stream_free(&s);
    }
    /* the DLQ holds all seven, with the reason and (when known) the id */
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", H.brokers, errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "group.id", "e2e-dlq-reader", errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof errstr);
    rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    CU_ASSERT_FATAL(c != NULL);
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(parts, WH_TOPIC_DLQ, 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(c, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    int n_dlq = 0, ids_seen = 0, reasons = 0;
    long long end = wh_now_ms() + 20000;
    while (n_dlq < 7 && wh_now_ms() < end) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 100);
        if (!m) continue;
        if (!m->err) {
            n_dlq++;
            rd_kafka_headers_t *hdrs = NULL;
            const void *v;
            size_t vl;
            if (rd_kafka_message_headers(m, &hdrs) == 0) {
                if (rd_kafka_header_get_last(hdrs, "x-inferno-reason", &v, &vl) == 0 && vl > 0) reasons++;
                if (rd_kafka_header_get_last(hdrs, "x-inferno-request-id", &v, &vl) == 0)
                    for (int i = 0; i < 3; i++)
                        if (vl == strlen(with_id[i]) && memcmp(v, with_id[i], vl) == 0) ids_seen++;
            }
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    CU_ASSERT_EQUAL(n_dlq, 7);
    CU_ASSERT_EQUAL(reasons, n_dlq);
    CU_ASSERT_EQUAL(ids_seen, 3);
    CU_ASSERT(H.workers[W0].pid > 0 && waitpid(H.workers[W0].pid, NULL, WNOHANG) == 0); /* still running */
}

static void test_cancel(void) {
    NEED_ENV();
    inf_request r;
    wh_req(&r, "e2e-cancel", "the dog ran", 3000);
    r.ignore_eos = true;
    CU_ASSERT_EQUAL(wh_send(&H, WH_TOPIC_N, &r), 0);
    CU_ASSERT_EQUAL_FATAL(wh_wait_tokens(&H, "e2e-cancel", 20000), 0);
    redisReply *rep = tu_redis_cmd(H.redis, "PUBLISH inferno:cancel e2e-cancel");
    CU_ASSERT(rep && rep->type == REDIS_REPLY_INTEGER && rep->integer >= 1); /* the worker listens */
    if (rep) freeReplyObject(rep);
    wh_stream s;
    CU_ASSERT_EQUAL_FATAL(wh_wait_final(&H, "e2e-cancel", 20000, &s), 0);
    CU_ASSERT_STRING_EQUAL(s.finish, "abort");
    CU_ASSERT(s.completion_tokens > 0 && s.completion_tokens < 3000);
    wh_stream_free(&s);
    /* a cancel key set before the request arrives */
    rep = tu_redis_cmd(H.redis, "SET inferno:cancel:e2e-cancel-early 1");
    if (rep) freeReplyObject(rep);
    CU_ASSERT_EQUAL(wh_send_simple(&H, WH_TOPIC_H, "e2e-cancel-early", "the dog ran", 50), 0);
    CU_ASSERT_EQUAL_FATAL(wh_wait_final(&H, "e2e-cancel-early", 20000, &s), 0);
    CU_ASSERT_STRING_EQUAL(s.finish, "abort");
    CU_ASSERT_EQUAL(s.n_token, 0);
    wh_stream_free(&s);
}

static void test_deadline(void) {
    NEED_ENV();
    inf_request r;
    wh_req(&r, "e2e-deadline", "the dog ran", 3000);
    r.ignore_eos = true;
    r.has_deadline_ms = true;
    r.deadline_ms = wh_epoch_ms() + 700;
    CU_ASSERT_EQUAL(wh_send(&H, WH_TOPIC_N, &r), 0);
    wh_req(&r, "e2e-deadline-past", "the dog ran", 50);
    r.has_deadline_ms = true;
    r.deadline_ms = wh_epoch_ms() - 1000;
    CU_ASSERT_EQUAL(wh_send(&H, WH_TOPIC_N, &r), 0);
    wh_stream s;
    CU_ASSERT_EQUAL_FATAL(wh_wait_final(&H, "e2e-deadline", 30000, &s), 0);
    CU_ASSERT_STRING_EQUAL(s.finish, "deadline");
    CU_ASSERT(s.completion_tokens < 3000);
    wh_stream_free(&s);
    CU_ASSERT_EQUAL_FATAL(wh_wait_final(&H, "e2e-deadline-past", 30000, &s), 0);
    CU_ASSERT_STRING_EQUAL(s.finish, "deadline");
    wh_stream_free(&s);
}

static void test_nostream_metadata_reply(void) {
    NEED_ENV();
    inf_request r;
    wh_req(&r, "e2e-nostream", "once upon a time", 10);
    r.stream = false;
    r.metadata = calloc(2, sizeof *r.metadata);
    r.metadata[0].key = strdup("user");
    r.metadata[0].value = strdup("a\"b");
    r.metadata[1].key = strdup("trace");
    r.metadata[1].value = strdup("42");
    r.n_metadata = 2;
    r.reply_stream = strdup("inferno:out:e2e-custom-reply");
    CU_ASSERT_EQUAL(wh_send(&H, WH_TOPIC_H, &r), 0);
    wh_stream s;
    long long end = wh_now_ms() + 20000;
    int found = 0;
    while (!found && wh_now_ms() < end) {
        if (wh_read_stream(&H, "inferno:out:e2e-custom-reply", &s) == 0 && s.n_done) found = 1;
        else { wh_stream_free(&s); wh_sleep_ms(20); }
    }
    CU_ASSERT_FATAL(found);
    CU_ASSERT_EQUAL(s.n_token, 1); /* stream=false: the whole answer in one entry */
    CU_ASSERT_EQUAL(s.n_ids, 10);
    CU_ASSERT_PTR_NOT_NULL(strstr(s.metadata, "\"user\":\"a\\\"b\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(s.metadata, "\"trace\":\"42\""));
    wh_stream_free(&s);
    CU_ASSERT_EQUAL(wh_int(&H, "EXISTS %s", "inferno:out:e2e-nostream"), 0);
    /* the final entry got an expiry */
    redisReply *rep = tu_redis_cmd(H.redis, "TTL inferno:out:e2e-custom-reply");
    CU_ASSERT(rep && rep->type == REDIS_REPLY_INTEGER && rep->integer > 0);
    if (rep) freeReplyObject(rep);
}

/* The same request again after it was answered (a producer retry, or a
 * redelivery after a crash): skipped, one final answer. And twice at once. */
static void test_redelivery_answered_once(void) {
    NEED_ENV();
    CU_ASSERT_EQUAL(wh_send_simple(&H, WH_TOPIC_N, "e2e-dup", "the sun", 8), 0);
    wh_stream s;
    CU_ASSERT_EQUAL_FATAL(wh_wait_final(&H, "e2e-dup", 20000, &s), 0);
    wh_stream_free(&s);
    /* skipped either because its stream holds the answer, or (if the first
     * copy's acknowledgement is still pending) as a duplicate in flight */
#define SKIPS() (wh_log_count(&H, W0, "already answered") + wh_log_count(&H, W0, "duplicate delivery"))
    int skipped_before = SKIPS();
    CU_ASSERT_EQUAL(wh_send_simple(&H, WH_TOPIC_H, "e2e-dup", "the sun", 8), 0);
    /* twice back to back: the second arrives while the first is in flight */
    CU_ASSERT_EQUAL(wh_send_simple(&H, WH_TOPIC_L, "e2e-dup2", "the moon", 2000), 0);
    CU_ASSERT_EQUAL(wh_send_simple(&H, WH_TOPIC_L, "e2e-dup2", "the moon", 2000), 0);
    CU_ASSERT_EQUAL(wh_flush(&H), 0);
    long long end = wh_now_ms() + 20000;
    while (SKIPS() < skipped_before + 2 && wh_now_ms() < end) wh_sleep_ms(50);
    CU_ASSERT(SKIPS() >= skipped_before + 2);
    CU_ASSERT_EQUAL_FATAL(wh_wait_final(&H, "e2e-dup2", 30000, &s), 0);
    wh_stream_free(&s);
    wh_sleep_ms(300);
    char key[64];
    wh_key(key, sizeof key, "e2e-dup");
    CU_ASSERT_EQUAL(wh_read_stream(&H, key, &s), 0);
    CU_ASSERT_EQUAL(s.n_done, 1);
    CU_ASSERT_EQUAL(s.n_start, 1);
    wh_stream_free(&s);
    wh_key(key, sizeof key, "e2e-dup2");
    CU_ASSERT_EQUAL(wh_read_stream(&H, key, &s), 0);
    CU_ASSERT_EQUAL(s.n_done, 1);
    CU_ASSERT_EQUAL(s.n_start, 1);
    wh_stream_free(&s);
}

static void test_loadgen_json(void) {
    NEED_ENV();
    const char *lg = tu_bin("inferno-loadgen");
    if (access(lg, X_OK) != 0) {
        tu_skip("%s not built", lg);
        return;
    }
    char *argv[] = {(char *)lg, "--brokers", H.brokers, "--redis", (char *)tu_redis_url(H.redis), "--requests", "24",
                    "--concurrency", "6", "--max-tokens", "8", "--prompt-tokens", "8", "--priority-mix", "1:1:1",
                    "--framing", "confluent", "--timeout-s", "60", "--json", "--id-prefix", "e2e-lg", NULL};
    char *out = NULL;
    int rc = tu_run_capture(argv, &out);
    CU_ASSERT_EQUAL(rc, 0);
    json_value v;
    inf_error err = {0};
    CU_ASSERT_FATAL(out && json_parse(out, strlen(out), &v, &err) == 0);
    const json_value *ok = json_get(&v, "ok"), *pr = json_get(&v, "priorities");
    CU_ASSERT(ok && ok->number == 24);
    const json_value *all = pr ? json_get(pr, "all") : NULL;
    const json_value *ttft = all ? json_get(all, "ttft_ms") : NULL;
    CU_ASSERT(ttft && json_get(ttft, "p50") && json_get(ttft, "p50")->type == JSON_NUMBER);
    CU_ASSERT(pr && json_get(pr, "high") && json_get(pr, "low"));
    const json_value *tps = json_get(&v, "tokens_per_s");
    CU_ASSERT(tps && tps->type == JSON_NUMBER && tps->number > 0);
    if (out && rc) fprintf(stderr, "\n    loadgen: %s\n", out);
    json_free(&v);
    free(out);
}

void test_register_worker_e2e(void) {
    CU_pSuite s = CU_add_suite("worker_e2e", suite_init, suite_clean);
    CU_add_test(s, "foreign clients on all topics, greedy answers", test_foreign_clients);
    CU_add_test(s, "bad messages: DLQ + error entries, keeps serving", test_bad_messages);
    CU_add_test(s, "cancel by pub/sub and by key", test_cancel);
    CU_add_test(s, "deadline", test_deadline);
    CU_add_test(s, "stream=false, metadata, reply_stream", test_nostream_metadata_reply);
    CU_add_test(s, "redelivered request answered once", test_redelivery_answered_once);
    CU_add_test(s, "loadgen --json", test_loadgen_json);
}
