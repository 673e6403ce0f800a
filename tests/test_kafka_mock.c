/* test_kafka_mock.c - suite "kafka_mock": the loopback Kafka cluster
 * (queue/kafka_mock) in-process, and bin/inferno-kafka-mock as a separate
 * process talked to by librdkafka and by kcat (an independent client). Every
 * wait is bounded; a child that outlives its bound is killed by PID. */
#include <CUnit/CUnit.h>
#include <errno.h>
#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kafka_mock.h"
#include "testutil.h"

#define WAIT_MS 30000

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits up to ms for pid; returns its exit status, or -1 (killed, or
 * still running and then SIGKILLed by PID). */
static int wait_exit(pid_t pid, int ms) {
    long long end = now_ms() + ms;
    int st;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        if (r < 0 && errno != EINTR) return -1;
        if (now_ms() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        struct timespec d = {0, 20 * 1000000};
        nanosleep(&d, NULL);
    }
}

/* Reads one line from fd within ms; returns 0 and the line without '\n'. */
static int read_line(int fd, char *buf, size_t cap, int ms) {
    size_t n = 0;
    long long end = now_ms() + ms;
    while (n + 1 < cap) {
        long long left = end - now_ms();
        if (left <= 0) return -1;
        struct pollfd p = {fd, POLLIN, 0};
        int r = poll(&p, 1, (int)left);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        ssize_t k = read(fd, buf + n, 1);
        if (k <= 0) return -1;
        if (buf[n] == '\n') {
            buf[n] = '\0';
            return 0;
        }
        n++;
    }
    return -1;
}

static pid_t spawn(char *const argv[], int *stdout_fd) {
    int pfd[2];
    if (pipe(pfd) != 0) return -1;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        dup2(pfd[1], 1);
        int nul = open("/dev/null", O_WRONLY);
        if (nul >= 0) dup2(nul, 2);
        close(pfd[0]);
        close(pfd[1]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(pfd[1]);
    *stdout_fd = pfd[0];
    return pid;
}

/* ---- librdkafka helpers ---------------------------------------------- */

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    (void)opaque;
    int *state = m->_private;
    if (state) *state = m->err ? -1 : 1;
}

static int produce(const char *bootstraps, const char *topic, const void *val, size_t len) {
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps, errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "message.timeout.ms", "20000", errstr, sizeof errstr);
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!rk) return -1;
    int state = 0;
    rd_kafka_resp_err_t e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(0),
                                              RD_KAFKA_V_VALUE((void *)val, len),
                                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(&state),
                                              RD_KAFKA_V_END);
    if (!e) rd_kafka_flush(rk, WAIT_MS);
    rd_kafka_destroy(rk);
    return (!e && state == 1) ? 0 : -1;
}

/* Consumes partition 0 of topic from the beginning until a message equal
 * to want appears (0) or WAIT_MS passes (-1). Uses assign(), not
 * subscribe(), so there is no group-join delay. */
static int consume_find(const char *bootstraps, const char *topic, const void *want, size_t len) {
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps, errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof errstr);
    /* librdkafka 2.0 wants a group even for assign(); nothing joins it. */
    rd_kafka_conf_set(conf, "group.id", "inferno-test-assign", errstr, sizeof errstr);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (!rk) { fprintf(stderr, "consumer: %s\n", errstr); return -1; }
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(parts, topic, 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
    int found = -1;
    rd_kafka_resp_err_t ae = rd_kafka_assign(rk, parts);
    if (ae) fprintf(stderr, "assign: %s\n", rd_kafka_err2str(ae));
    if (ae == RD_KAFKA_RESP_ERR_NO_ERROR) {
        long long end = now_ms() + WAIT_MS;
        while (found != 0 && now_ms() < end) {
            rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
            if (!m) continue;
            if (!m->err && m->len == len && memcmp(m->payload, want, len) == 0) found = 0;
            rd_kafka_message_destroy(m);
        }
    }
    rd_kafka_topic_partition_list_destroy(parts);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return found;
}

/* Partition count of topic from cluster metadata, or -1. */
static int topic_partitions(const char *bootstraps, const char *topic) {
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps, errstr, sizeof errstr);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!rk) return -1;
    const struct rd_kafka_metadata *md = NULL;
    int n = -1;
    if (rd_kafka_metadata(rk, 1, NULL, &md, WAIT_MS) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        for (int i = 0; i < md->topic_cnt; i++)
            if (strcmp(md->topics[i].topic, topic) == 0 && !md->topics[i].err) n = md->topics[i].partition_cnt;
        rd_kafka_metadata_destroy(md);
    }
    rd_kafka_destroy(rk);
    return n;
}

/* ---- tests ------------------------------------------------------------ */

static void test_in_process(void) {
    const char *topics[] = {"t.one", "t.two"};
    inf_kafka_mock_opts o = {.brokers = 2, .partitions = 4, .topics = topics, .n_topics = 2};
    inf_kafka_mock *m = NULL;
    inf_error err = {0};
    int rc = inf_kafka_mock_start(&o, &m, &err);
    if (rc) fprintf(stderr, "\n    %s\n", err.msg);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    const char *bs = inf_kafka_mock_bootstraps(m);
    CU_ASSERT_PTR_NOT_NULL_FATAL(bs);
    CU_ASSERT_EQUAL(strncmp(bs, "127.0.0.1:", 10), 0);
    CU_ASSERT_EQUAL(topic_partitions(bs, "t.two"), 4);
    uint64_t seed = 7;
    uint8_t payload[300];
    for (size_t i = 0; i < sizeof payload; i++) payload[i] = (uint8_t)tu_rand_u64(&seed);
    CU_ASSERT_EQUAL(produce(bs, "t.one", payload, sizeof payload), 0);
    CU_ASSERT_EQUAL(consume_find(bs, "t.one", payload, sizeof payload), 0);
    inf_kafka_mock_free(m);

    o = (inf_kafka_mock_opts){.partitions = -1};
    CU_ASSERT_EQUAL(inf_kafka_mock_start(&o, &m, &err), INF_EINVAL);
    CU_ASSERT_PTR_NULL(m);
}

static void test_program(void) {
    const char *prog = tu_bin("inferno-kafka-mock");
    if (access(prog, X_OK) != 0) {
        tu_skip("%s is not built (make builds it before the tests run)", prog);
        return;
    }
    const char *bsfile = tu_tmpfile("bootstrap.txt");
    char *argv[] = {(char *)prog, "--partitions", "2", "--bootstrap-file", (char *)bsfile, NULL};
    int fd = -1;
    pid_t pid = spawn(argv, &fd);
    CU_ASSERT_FATAL(pid > 0);
    char bs[512];
    int got = read_line(fd, bs, sizeof bs, WAIT_MS);
    CU_ASSERT_EQUAL(got, 0);
    if (got != 0) {
        kill(pid, SIGKILL);
        wait_exit(pid, WAIT_MS);
        close(fd);
        return;
    }
    size_t n;
    char *filed = tu_read_file(bsfile, &n);
    CU_ASSERT_PTR_NOT_NULL(filed);
    if (filed) {
        filed[strcspn(filed, "\n")] = '\0';
        CU_ASSERT_STRING_EQUAL(filed, bs);
    }
    free(filed);

    size_t nt;
    const char *const *topics = inf_kafka_mock_default_topics(&nt);
    CU_ASSERT_EQUAL(nt, 4);
    for (size_t i = 0; i < nt; i++) CU_ASSERT_EQUAL(topic_partitions(bs, topics[i]), 2);

    /* librdkafka -> librdkafka */
    char msg1[64];
    uint64_t seed = (uint64_t)getpid();
    snprintf(msg1, sizeof msg1, "from-librdkafka-%016llx", (unsigned long long)tu_rand_u64(&seed));
    CU_ASSERT_EQUAL(produce(bs, "inferno.requests.normal", msg1, strlen(msg1)), 0);
    CU_ASSERT_EQUAL(consume_find(bs, "inferno.requests.normal", msg1, strlen(msg1)), 0);

    if (access("/usr/bin/kcat", X_OK) != 0 && access("/usr/local/bin/kcat", X_OK) != 0) {
        tu_skip("kcat is not installed; cross-client checks skipped");
    } else {
        /* kcat -> librdkafka: kcat -P sends each named file as one message. */
        char msg2[64];
        snprintf(msg2, sizeof msg2, "from-kcat-%016llx", (unsigned long long)tu_rand_u64(&seed));
        const char *mfile = tu_tmpfile("kcat-msg.txt");
        FILE *f = fopen(mfile, "w");
        CU_ASSERT_PTR_NOT_NULL_FATAL(f);
        fputs(msg2, f);
        fclose(f);
        char *pargv[] = {"/usr/bin/timeout", "30", "kcat", "-b", bs, "-P", "-t", "inferno.requests.low",
                         "-p", "0", (char *)mfile, NULL};
        CU_ASSERT_EQUAL(tu_run_capture(pargv, NULL), 0);
        CU_ASSERT_EQUAL(consume_find(bs, "inferno.requests.low", msg2, strlen(msg2)), 0);

        /* librdkafka -> kcat */
        char *cargv[] = {"/usr/bin/timeout", "30", "kcat", "-b", bs, "-C", "-t", "inferno.requests.normal",
                         "-p", "0", "-o", "beginning", "-e", "-q", NULL};
        char *out = NULL;
        CU_ASSERT_EQUAL(tu_run_capture(cargv, &out), 0);
        CU_ASSERT_TRUE(out && strstr(out, msg1) != NULL);
        free(out);
    }

    CU_ASSERT_EQUAL(kill(pid, SIGTERM), 0);
    CU_ASSERT_EQUAL(wait_exit(pid, WAIT_MS), 0);
    close(fd);
}

static void test_program_bad_args(void) {
    const char *prog = tu_bin("inferno-kafka-mock");
    if (access(prog, X_OK) != 0) {
        tu_skip("%s is not built (make builds it before the tests run)", prog);
        return;
    }
    char *bad[][4] = {{(char *)prog, "--partitions", "0", NULL},
                      {(char *)prog, "--no-such-flag", NULL, NULL},
                      {(char *)prog, "--topics", ",,", NULL}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int fd = -1;
        pid_t pid = spawn(bad[i], &fd);
        CU_ASSERT_FATAL(pid > 0);
        CU_ASSERT_EQUAL(wait_exit(pid, WAIT_MS), 2);
        close(fd);
    }
}

void test_register_kafka_mock(void) {
    CU_pSuite s = CU_add_suite("kafka_mock", NULL, NULL);
    CU_add_test(s, "in-process cluster", test_in_process);
    CU_add_test(s, "inferno-kafka-mock with librdkafka and kcat", test_program);
    CU_add_test(s, "inferno-kafka-mock bad arguments", test_program_bad_args);
}
