/* inferno-kafka-mock - a throwaway Kafka cluster on loopback for demos and
 * tests (librdkafka's mock cluster, see queue/kafka_mock.h).
 *
 *   inferno-kafka-mock [--brokers N] [--partitions P] [--topics a,b,c]
 *                      [--bootstrap-file F]
 *
 * Prints the bootstrap address as its first stdout line (flushed), writes it
 * to F too (atomically, before printing), then serves until SIGTERM/SIGINT
 * and exits 0. Exit 2 on bad arguments, 1 if the cluster cannot start. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka_mock.h"

static void usage(FILE *f) {
    fprintf(f, "usage: inferno-kafka-mock [--brokers N] [--partitions P] [--topics a,b,c] [--bootstrap-file F]\n");
}

static int parse_int(const char *s, int lo, int hi, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

static int write_file_atomic(const char *path, const char *text) {
    size_t n = strlen(path) + 16;
    char *tmp = malloc(n);
    if (!tmp) return -1;
    snprintf(tmp, n, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    int ok = f && fprintf(f, "%s\n", text) >= 0;
    if (f && fclose(f) != 0) ok = 0;
    if (ok && rename(tmp, path) != 0) ok = 0;
    if (!ok) remove(tmp);
    free(tmp);
    return ok ? 0 : -1;
}

int main(int argc, char **argv) {
    inf_kafka_mock_opts opts = {0};
    const char *bootstrap_file = NULL;
    char *topics_arg = NULL;
    static const struct option longopts[] = {{"brokers", required_argument, NULL, 'b'},
                                             {"partitions", required_argument, NULL, 'p'},
                                             {"topics", required_argument, NULL, 't'},
                                             {"bootstrap-file", required_argument, NULL, 'f'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "b:p:t:f:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'b':
            if (parse_int(optarg, 1, 64, &opts.brokers)) {
                fprintf(stderr, "inferno-kafka-mock: --brokers must be 1-64\n");
                return 2;
            }
            break;
        case 'p':
            if (parse_int(optarg, 1, 10000, &opts.partitions)) {
                fprintf(stderr, "inferno-kafka-mock: --partitions must be 1-10000\n");
                return 2;
            }
            break;
        case 't': topics_arg = optarg; break;
        case 'f': bootstrap_file = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }

    const char *topics[256];
    char *topics_copy = NULL;
    if (topics_arg) {
        topics_copy = strdup(topics_arg);
        size_t n = 0;
        for (char *save = NULL, *t = strtok_r(topics_copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            if (n == sizeof topics / sizeof *topics) {
                fprintf(stderr, "inferno-kafka-mock: at most 256 topics\n");
                free(topics_copy);
                return 2;
            }
            topics[n++] = t;
        }
        if (n == 0) {
            fprintf(stderr, "inferno-kafka-mock: --topics names no topic\n");
            free(topics_copy);
            return 2;
        }
        opts.topics = topics;
        opts.n_topics = n;
    }

    /* Block the stop signals before librdkafka starts its threads, so they
     * inherit the mask and only sigwait below ever sees the signals. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    inf_kafka_mock *m = NULL;
    inf_error err = {0};
    if (inf_kafka_mock_start(&opts, &m, &err) != 0) {
        fprintf(stderr, "inferno-kafka-mock: %s\n", err.msg);
        free(topics_copy);
        return 1;
    }
    const char *bs = inf_kafka_mock_bootstraps(m);
    if (bootstrap_file && write_file_atomic(bootstrap_file, bs) != 0) {
        fprintf(stderr, "inferno-kafka-mock: cannot write %s\n", bootstrap_file);
        inf_kafka_mock_free(m);
        free(topics_copy);
        return 1;
    }
    printf("%s\n", bs);
    fflush(stdout);
    fprintf(stderr, "inferno-kafka-mock: serving on %s until SIGTERM/SIGINT\n", bs);

    int sig = 0;
    while (sigwait(&stop, &sig) != 0) {
    }
    fprintf(stderr, "inferno-kafka-mock: signal %d, stopping\n", sig);
    inf_kafka_mock_free(m);
    free(topics_copy);
    return 0;
}
