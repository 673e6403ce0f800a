/* kafka_mock.c - librdkafka mock cluster wrapper (see kafka_mock.h). */
#include "kafka_mock.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdlib.h>
#include <string.h>

struct inf_kafka_mock {
    rd_kafka_t *rk; /* the handle the mock cluster lives on */
    rd_kafka_mock_cluster_t *mc;
    char *bootstraps;
};

static const char *const DEFAULT_TOPICS[] = {
    "inferno.requests.high", "inferno.requests.normal", "inferno.requests.low", "inferno.requests.dlq"};

const char *const *inf_kafka_mock_default_topics(size_t *n) {
    if (n) *n = sizeof DEFAULT_TOPICS / sizeof *DEFAULT_TOPICS;
    return DEFAULT_TOPICS;
}

int inf_kafka_mock_start(const inf_kafka_mock_opts *opts, inf_kafka_mock **out, inf_error *err) {
    *out = NULL;
    inf_kafka_mock_opts o = {0};
    if (opts) o = *opts;
    if (o.brokers == 0) o.brokers = 1;
    if (o.partitions == 0) o.partitions = 3;
    if (!o.topics) o.topics = inf_kafka_mock_default_topics(&o.n_topics);
    if (o.brokers < 1 || o.brokers > 64) return inf_error_set(err, INF_EINVAL, "brokers must be 1-64, got %d", o.brokers);
    if (o.partitions < 1 || o.partitions > 10000)
        return inf_error_set(err, INF_EINVAL, "partitions must be 1-10000, got %d", o.partitions);

    inf_kafka_mock *m = calloc(1, sizeof *m);
    if (!m) return inf_error_set(err, INF_ENOMEM, "out of memory starting the mock cluster");
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* The handle only hosts the cluster; it never connects anywhere. */
    if (rd_kafka_conf_set(conf, "bootstrap.servers", "", errstr, sizeof errstr) != RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        free(m);
        return inf_error_set(err, INF_EINVAL, "mock cluster config: %s", errstr);
    }
    m->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!m->rk) {
        rd_kafka_conf_destroy(conf);
        free(m);
        return inf_error_set(err, INF_EIO, "cannot create the mock cluster's Kafka handle: %s", errstr);
    }
    if (!(m->mc = rd_kafka_mock_cluster_new(m->rk, o.brokers))) {
        inf_kafka_mock_free(m);
        return inf_error_set(err, INF_EIO, "librdkafka could not start a mock cluster of %d brokers", o.brokers);
    }
    int replication = o.brokers < 3 ? o.brokers : 3;
    for (size_t i = 0; i < o.n_topics; i++) {
        rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(m->mc, o.topics[i], o.partitions, replication);
        if (e) {
            int rc = inf_error_set(err, INF_EIO, "cannot create mock topic %s: %s", o.topics[i], rd_kafka_err2str(e));
            inf_kafka_mock_free(m);
            return rc;
        }
    }
    const char *bs = rd_kafka_mock_cluster_bootstraps(m->mc);
    if (!bs || !(m->bootstraps = strdup(bs))) {
        inf_kafka_mock_free(m);
        return inf_error_set(err, INF_EIO, "mock cluster has no bootstrap address");
    }
    *out = m;
    return 0;
}

const char *inf_kafka_mock_bootstraps(const inf_kafka_mock *m) { return m ? m->bootstraps : NULL; }

void inf_kafka_mock_free(inf_kafka_mock *m) {
    if (!m) return;
    if (m->mc) rd_kafka_mock_cluster_destroy(m->mc);
    if (m->rk) rd_kafka_destroy(m->rk);
    free(m->bootstraps);
    free(m);
}
