/* kafka_mock.h - an in-process Kafka cluster on loopback, for tests and the
 * bin/inferno-kafka-mock program. Wraps librdkafka's mock cluster
 * (rdkafka_mock.h), which speaks the real protocol, so any client (including
 * external ones such as kcat) can connect to its bootstrap address.
 * Group consumers against it need session.timeout.ms >= 6000. */
#ifndef INF_KAFKA_MOCK_H
#define INF_KAFKA_MOCK_H

#include <stddef.h>

#include "status.h"

typedef struct inf_kafka_mock inf_kafka_mock;

typedef struct inf_kafka_mock_opts {
    int brokers;               /* 0 -> 1 */
    int partitions;            /* per topic; 0 -> 3 */
    const char *const *topics; /* NULL -> inf_kafka_mock_default_topics() */
    size_t n_topics;
} inf_kafka_mock_opts;

/* The inferno topics: inferno.requests.{high,normal,low,dlq}. Static. */
const char *const *inf_kafka_mock_default_topics(size_t *n);

/* Starts the cluster and creates the topics. opts may be NULL. The caller
 * frees *out with inf_kafka_mock_free. */
int inf_kafka_mock_start(const inf_kafka_mock_opts *opts, inf_kafka_mock **out, inf_error *err);

/* "host:port,..." bootstrap list; owned by m, valid until inf_kafka_mock_free. */
const char *inf_kafka_mock_bootstraps(const inf_kafka_mock *m);

/* Stops the cluster (closing its listeners) and frees m. NULL is fine. */
void inf_kafka_mock_free(inf_kafka_mock *m);

#endif
