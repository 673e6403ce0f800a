/* gw_kafka.h - the gateway's Kafka producer: idempotent (enable.idempotence,
 * acks=all), keyed by request id, delivery reports served by an own thread.
 *
 * Threads: gw_kafka_produce may be called from any thread (librdkafka's
 * producer is thread-safe); it never blocks (INF_EFULL when the local queue
 * is full). Delivery failures are counted (gw_kafka_get_stats); the request
 * then never starts and its caller times it out (504).
 */
#ifndef INF_GW_KAFKA_H
#define INF_GW_KAFKA_H

#include <stddef.h>

#include "status.h"

typedef struct gw_kafka gw_kafka;

typedef struct gw_kafka_config {
    const char *brokers;
    const char *const *props; /* "key=value" passthrough (-X); a "producer." prefix is accepted and dropped */
    int n_props;
} gw_kafka_config;

/* Creates the producer (acks=all, enable.idempotence=true, linger.ms=0 and
 * socket.nagle.disable=true unless -X says otherwise; acks and enable.idempotence cannot be
 * overridden) and its poll thread. Does not wait for the brokers. A bad
 * property fails with INF_EINVAL naming it. */
int gw_kafka_create(gw_kafka **out, const gw_kafka_config *cfg, inf_error *err);

/* Flushes (at most 5 s) and frees. NULL is fine. */
void gw_kafka_free(gw_kafka *k);

/* Queues value (copied) with key to topic. 0, INF_EFULL, or INF_EIO. */
int gw_kafka_produce(gw_kafka *k, const char *topic, const char *key, const void *value, size_t len, inf_error *err);

typedef struct gw_kafka_stats {
    int reachable;            /* the last metadata request (every 2 s) was answered */
    long long produced, delivered, failed;
    char last_error[256];
} gw_kafka_stats;

void gw_kafka_get_stats(gw_kafka *k, gw_kafka_stats *st);

#endif
