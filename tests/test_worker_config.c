/* test_worker_config.c - suite "worker_config": the worker's flags,
 * INFERNO_* environment, config file, precedence, validation messages, and
 * that --help and docs/worker.md are generated from the same table. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "testutil.h"

static const char *model_file(void) {
    const char *p = tu_tmpfile("wcfg-model.gguf");
    FILE *f = fopen(p, "w");
    if (f) {
        fputs("not really a model; the config only checks readability\n", f);
        fclose(f);
    }
    return p;
}

static const char *write_file(const char *name, const char *text) {
    const char *p = tu_tmpfile(name);
    FILE *f = fopen(p, "w");
    CU_ASSERT_FATAL(f != NULL);
    fputs(text, f);
    fclose(f);
    return p;
}

/* Parses argv (NULL-terminated, without argv[0]) with env (NULL-terminated). */
static int parse(wcfg *c, const char *const *args, const char *const *env, inf_error *err) {
    char *argv[64];
    int argc = 0;
    argv[argc++] = "inferno-worker";
    for (int i = 0; args && args[i]; i++) argv[argc++] = (char *)args[i];
    argv[argc] = NULL;
    return wcfg_parse(c, argc, argv, (char **)env, err);
}

static void test_defaults(void) {
    wcfg c;
    inf_error err = {0};
    const char *args[] = {"--model", model_file(), NULL};
    CU_ASSERT_EQUAL_FATAL(parse(&c, args, NULL, &err), WCFG_RUN);
    CU_ASSERT_STRING_EQUAL(c.brokers, "127.0.0.1:9092");
    CU_ASSERT_STRING_EQUAL(c.redis_url, "redis://127.0.0.1:6379");
    CU_ASSERT_STRING_EQUAL(c.group, "inferno-workers");
    CU_ASSERT_EQUAL(c.n_topics, 3);
    CU_ASSERT_STRING_EQUAL(c.topics[0], "inferno.requests.high");
    CU_ASSERT_STRING_EQUAL(c.topics[2], "inferno.requests.low");
    CU_ASSERT_STRING_EQUAL(c.dlq_topic, "inferno.requests.dlq");
    CU_ASSERT_STRING_EQUAL(c.backend, "auto");
    CU_ASSERT_EQUAL(c.max_num_seqs, 64);
    CU_ASSERT_EQUAL(c.max_inflight, 128); /* 0 -> 2 x max_num_seqs */
    CU_ASSERT_EQUAL(c.urgent_reserve, 16); /* -1 -> max_inflight / 8 */
    CU_ASSERT_EQUAL(c.heartbeat_ms, 2000);
    CU_ASSERT_EQUAL(c.heartbeat_ttl_s, 6);
    CU_ASSERT_EQUAL(c.stream_maxlen, 10000);
    CU_ASSERT_EQUAL(c.flush_ms, 20);
    CU_ASSERT_EQUAL(c.prefix_caching, 1);
    CU_ASSERT_EQUAL(c.log_level, WCFG_LOG_INFO);
    CU_ASSERT_STRING_EQUAL(c.metrics_addr, "127.0.0.1:9400");
    CU_ASSERT_EQUAL(c.n_props, 0);
    /* default worker id: <host>-<pid> */
    char pid[32];
    snprintf(pid, sizeof pid, "-%ld", (long)getpid());
    CU_ASSERT_PTR_NOT_NULL(strstr(c.worker_id, pid));
    wcfg_free(&c);
}

static void test_precedence(void) {
    const char *file = write_file("wcfg-prec.conf",
                                  "# comment\n"
                                  "threads = 2\n"
                                  "worker_id = from-file\n"
                                  "log-level = \"debug\"\n"
                                  "X = a.b=1\n"
                                  "kafka-prop = fetch.wait.max.ms=5\n"
                                  "\n");
    const char *model = model_file();
    char cfg_env[600];
    snprintf(cfg_env, sizeof cfg_env, "INFERNO_CONFIG=%s", file);
    wcfg c;
    inf_error err = {0};
    {   /* file only */
        const char *env[] = {cfg_env, NULL};
        const char *args[] = {"--model", model, NULL};
        CU_ASSERT_EQUAL_FATAL(parse(&c, args, env, &err), WCFG_RUN);
        CU_ASSERT_EQUAL(c.threads, 2);
        CU_ASSERT_STRING_EQUAL(c.worker_id, "from-file");
        CU_ASSERT_EQUAL(c.log_level, WCFG_LOG_DEBUG);
        CU_ASSERT_EQUAL(c.n_props, 2);
        wcfg_free(&c);
    }
    {   /* env beats file; -X accumulates file, env, flags in that order */
        const char *env[] = {cfg_env, "INFERNO_THREADS=3", "INFERNO_KAFKA_PROPS=c.d=2;e.f=x,y", NULL};
        const char *args[] = {"--model", model, "-X", "g.h=4", "-Xi.j=5", NULL};
        CU_ASSERT_EQUAL_FATAL(parse(&c, args, env, &err), WCFG_RUN);
        CU_ASSERT_EQUAL(c.threads, 3);
        CU_ASSERT_EQUAL_FATAL(c.n_props, 6);
        CU_ASSERT_STRING_EQUAL(c.props[0], "a.b=1");
        CU_ASSERT_STRING_EQUAL(c.props[2], "c.d=2");
        CU_ASSERT_STRING_EQUAL(c.props[3], "e.f=x,y");
        CU_ASSERT_STRING_EQUAL(c.props[5], "i.j=5");
        wcfg_free(&c);
    }
    {   /* flag beats env beats file; --flag=value form; --config flag */
        const char *env[] = {"INFERNO_THREADS=3", "INFERNO_WORKER_ID=from-env", NULL};
        const char *args[] = {"--config", file, "--model", model, "--threads=4", NULL};
        CU_ASSERT_EQUAL_FATAL(parse(&c, args, env, &err), WCFG_RUN);
        CU_ASSERT_EQUAL(c.threads, 4);
        CU_ASSERT_STRING_EQUAL(c.worker_id, "from-env");
        CU_ASSERT_EQUAL(c.log_level, WCFG_LOG_DEBUG);
        wcfg_free(&c);
    }
    {   /* model from the environment */
        char menv[600];
        snprintf(menv, sizeof menv, "INFERNO_MODEL=%s", model);
        const char *env[] = {menv, "INFERNO_REDIS=redis://u:secret@127.0.0.1:7000/3", NULL};
        CU_ASSERT_EQUAL_FATAL(parse(&c, NULL, env, &err), WCFG_RUN);
        CU_ASSERT_STRING_EQUAL(c.model, model);
        /* the effective-config dump masks the password */
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        wcfg_print_effective(&c, f);
        fclose(f);
        CU_ASSERT_PTR_NULL(strstr(buf, "secret"));
        CU_ASSERT_PTR_NOT_NULL(strstr(buf, "redis = redis://u:****@127.0.0.1:7000/3"));
        free(buf);
        wcfg_free(&c);
    }
}

/* Expects a parse failure whose message contains every needle. */
static void expect_fail(const char *const *args, const char *const *env, const char *n1, const char *n2) {
    wcfg c;
    inf_error err = {0};
    int rc = parse(&c, args, env, &err);
    CU_ASSERT(rc < 0);
    if (rc >= 0) {
        fprintf(stderr, "\n    unexpectedly accepted (first arg %s)\n", args && args[0] ? args[0] : "-");
        wcfg_free(&c);
        return;
    }
    if (n1 && !strstr(err.msg, n1)) { CU_FAIL("message lacks the first needle"); fprintf(stderr, "\n    msg: %s\n", err.msg); }
    if (n2 && !strstr(err.msg, n2)) { CU_FAIL("message lacks the second needle"); fprintf(stderr, "\n    msg: %s\n", err.msg); }
}

static void test_errors(void) {
    const char *m = model_file();
    { const char *a[] = {NULL}; expect_fail(a, NULL, "--model", NULL); }
    { const char *a[] = {"--model", "/nonexistent/x.gguf", NULL}; expect_fail(a, NULL, "/nonexistent/x.gguf", NULL); }
    { const char *a[] = {"--model", m, "--bogus", "1", NULL}; expect_fail(a, NULL, "unknown flag", "--bogus"); }
    { const char *a[] = {"--model", m, "--threads", "abc", NULL}; expect_fail(a, NULL, "--threads", "abc"); }
    { const char *a[] = {"--model", m, "--threads", "-1", NULL}; expect_fail(a, NULL, "--threads", "[0, 1024]"); }
    { const char *a[] = {"--model", m, "--threads", NULL}; expect_fail(a, NULL, "needs a value", NULL); }
    { const char *a[] = {"--model", m, "--backend", "gpu", NULL}; expect_fail(a, NULL, "cpu|cuda|auto", "gpu"); }
    { const char *a[] = {"--model", m, "--log-level", "loud", NULL}; expect_fail(a, NULL, "--log-level", NULL); }
    { const char *a[] = {"--model", m, "--prefix-caching", "maybe", NULL}; expect_fail(a, NULL, "boolean", NULL); }
    { const char *a[] = {"--model", m, "--redis", "http://x:1", NULL}; expect_fail(a, NULL, "redis://", NULL); }
    { const char *a[] = {"--model", m, "--redis", "redis://h:99999", NULL}; expect_fail(a, NULL, "port", NULL); }
    { const char *a[] = {"--model", m, "--redis", "redis://h:1/x", NULL}; expect_fail(a, NULL, "database", NULL); }
    { const char *a[] = {"--model", m, "--brokers", "", NULL}; expect_fail(a, NULL, "--brokers", NULL); }
    { const char *a[] = {"--model", m, "--topics", "a,b,c,d", NULL}; expect_fail(a, NULL, "at most 3", NULL); }
    { const char *a[] = {"--model", m, "--topics", "a,a", NULL}; expect_fail(a, NULL, "twice", NULL); }
    { const char *a[] = {"--model", m, "--topics", "a,b c", NULL}; expect_fail(a, NULL, "topic name", NULL); }
    { const char *a[] = {"--model", m, "--topics", "a,q", "--dlq-topic", "q", NULL}; expect_fail(a, NULL, "--dlq-topic", NULL); }
    { const char *a[] = {"--model", m, "--worker-id", "bad id!", NULL}; expect_fail(a, NULL, "--worker-id", NULL); }
    { const char *a[] = {"--model", m, "--max-num-seqs", "64", "--max-batched-tokens", "32", NULL};
      expect_fail(a, NULL, "--max-batched-tokens", NULL); }
    { const char *a[] = {"--model", m, "--max-inflight", "4", "--urgent-reserve", "2", NULL};
      expect_fail(a, NULL, "--urgent-reserve", NULL); }
    { const char *a[] = {"--model", m, "-X", "novalue", NULL}; expect_fail(a, NULL, "KEY=VALUE", NULL); }
    { const char *a[] = {"--model", m, "--metrics-addr", "nowhere", NULL}; expect_fail(a, NULL, "--metrics-addr", NULL); }
    { const char *a[] = {"--model", m, "--heartbeat-ms", "5000", "--heartbeat-ttl-s", "2", NULL};
      expect_fail(a, NULL, "--heartbeat-ttl-s", NULL); }
    { const char *a[] = {"--model", m, "--schemas", "7=/nonexistent.avsc", NULL}; expect_fail(a, NULL, "--schemas", NULL); }
    { const char *a[] = {"--model", m, "stray", NULL}; expect_fail(a, NULL, "unexpected argument", NULL); }
    /* the environment is named in its errors */
    { const char *a[] = {"--model", m, NULL}; const char *e[] = {"INFERNO_MAX_NUM_SEQS=lots", NULL};
      expect_fail(a, e, "INFERNO_MAX_NUM_SEQS", NULL); }
    /* the config file: file:line */
    {
        const char *f = write_file("wcfg-bad.conf", "threads = 1\n\nnot-a-setting = 3\n");
        const char *a[] = {"--model", m, "--config", f, NULL};
        char where[600];
        snprintf(where, sizeof where, "%s:3", f);
        expect_fail(a, NULL, where, "not-a-setting");
        const char *g = write_file("wcfg-bad2.conf", "threads\n");
        const char *b[] = {"--model", m, "--config", g, NULL};
        expect_fail(b, NULL, "KEY = VALUE", NULL);
        const char *c[] = {"--model", m, "--config", "/nonexistent/w.conf", NULL};
        expect_fail(c, NULL, "/nonexistent/w.conf", NULL);
    }
}

static char *capture(void (*fn)(FILE *)) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    fn(f);
    fclose(f);
    return buf;
}

static void test_help_and_docs(void) {
    wcfg c;
    inf_error err = {0};
    const char *a[] = {"--threads", "2", "--help", NULL};
    CU_ASSERT_EQUAL(parse(&c, a, NULL, &err), WCFG_HELP); /* no model needed for --help */
    wcfg_free(&c);
    char *help = capture(wcfg_print_help);
    char *md = capture(wcfg_print_markdown);
    /* every row of the table is in --help, with its environment variable */
    int rows = 0;
    for (char *line = strtok(md, "\n"); line; line = strtok(NULL, "\n")) {
        const char *fl = strstr(line, "`--");
        if (!fl) continue;
        rows++;
        char flag[64];
        size_t n = strcspn(fl + 1, " `");
        snprintf(flag, sizeof flag, "%.*s", (int)n, fl + 1);
        if (!strstr(help, flag)) { CU_FAIL("flag missing from --help"); fprintf(stderr, "\n    %s\n", flag); }
    }
    CU_ASSERT(rows >= 30);
    CU_ASSERT_PTR_NOT_NULL(strstr(help, "INFERNO_DRAIN_TIMEOUT_S"));
    CU_ASSERT_PTR_NOT_NULL(strstr(help, "default 30"));
    free(md);
    /* docs/worker.md holds the generated table verbatim (regenerate it with
     * bin/inferno-worker --help-markdown when a setting changes) */
    md = capture(wcfg_print_markdown);
    char *doc = tu_read_file("docs/worker.md", NULL);
    CU_ASSERT_PTR_NOT_NULL(doc);
    if (doc && !strstr(doc, md)) CU_FAIL("docs/worker.md does not contain the output of --help-markdown");
    free(doc);
    free(md);
    free(help);
    /* the program itself */
    const char *bin = tu_bin("inferno-worker");
    if (access(bin, X_OK) != 0) {
        tu_skip("%s not built", bin);
        return;
    }
    char *out = NULL;
    char *argv[] = {(char *)bin, "--help", NULL};
    CU_ASSERT_EQUAL(tu_run_capture(argv, &out), 0);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "--max-inflight"));
    free(out);
    out = NULL;
    char *argv2[] = {(char *)bin, "--model", "/nonexistent.gguf", NULL};
    CU_ASSERT_EQUAL(tu_run_capture(argv2, &out), 2);
    free(out);
}

/* --gpu-memory-fraction: default 0.9, env and flag, (0, 1] enforced. */
static void test_gpu_memory_fraction(void) {
    wcfg c;
    inf_error err = {0};
    const char *args[] = {"--model", model_file(), NULL};
    CU_ASSERT_EQUAL_FATAL(parse(&c, args, NULL, &err), WCFG_RUN);
    CU_ASSERT_DOUBLE_EQUAL(c.gpu_memory_fraction, 0.9, 1e-12);
    wcfg_free(&c);
    const char *env[] = {"INFERNO_GPU_MEMORY_FRACTION=0.5", NULL};
    CU_ASSERT_EQUAL_FATAL(parse(&c, args, env, &err), WCFG_RUN);
    CU_ASSERT_DOUBLE_EQUAL(c.gpu_memory_fraction, 0.5, 1e-12);
    wcfg_free(&c);
    const char *args2[] = {"--model", model_file(), "--gpu-memory-fraction=1", NULL};
    CU_ASSERT_EQUAL_FATAL(parse(&c, args2, env, &err), WCFG_RUN);
    CU_ASSERT_DOUBLE_EQUAL(c.gpu_memory_fraction, 1.0, 1e-12);
    wcfg_free(&c);
    static const char *bad[] = {"0", "1.5", "-0.1", "abc", "0.5x", "nan"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *a[] = {"--model", model_file(), "--gpu-memory-fraction", bad[i], NULL};
        CU_ASSERT_EQUAL(parse(&c, a, NULL, &err), INF_EINVAL);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "--gpu-memory-fraction"));
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "(0, 1]"));
    }
}

void test_register_worker_config(void) {
    CU_pSuite s = CU_add_suite("worker_config", NULL, NULL);
    CU_add_test(s, "defaults", test_defaults);
    CU_add_test(s, "precedence flag > env > file > default", test_precedence);
    CU_add_test(s, "validation messages", test_errors);
    CU_add_test(s, "help and docs from one table", test_help_and_docs);
    CU_add_test(s, "gpu-memory-fraction", test_gpu_memory_fraction);
}
