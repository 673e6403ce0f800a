/* test_kafka_in.h - helpers shared by the Kafka input suites
 * (tests/test_kafka_in.c defines them; tests/test_kafka_flow.c uses them).
 * Every wait is bounded. */
#ifndef INF_TEST_KAFKA_IN_H
#define INF_TEST_KAFKA_IN_H

#include <librdkafka/rdkafka.h>
#include <stdint.h>

#include "kafka_in.h"

#define JOIN_MS 20000 /* bound on a group (re)join on the mock cluster */

long long kt_now_ms(void);
void kt_sleep_ms(int ms);
/* A plain librdkafka producer (NULL on failure). */
rd_kafka_t *kt_new_producer(const char *bs);
/* Produces key/val (and one header when hname) to topic/part; 0 or -1. */
int kt_produce(rd_kafka_t *p, const char *topic, int32_t part, const char *key, const char *val, const char *hname,
               const char *hval);
/* Flushes (30 s bound) and destroys p; 0 when everything was delivered. */
int kt_flush_destroy(rd_kafka_t *p);
/* kin over topics "<prefix>.{high,normal,low}" (and "<prefix>.dlq" when dlq),
 * group "<prefix>-group", session timeout 6 s. NULL on failure. */
kin *kt_new_consumer(const char *bs, const char *prefix, int max_inflight, int dlq);
/* None of these use CUnit asserts: scenario threads call them. */

/* Polls k until it holds `assigned` partitions (any when < 0); messages
 * received meanwhile go to got (up to cap, count in *n) or are marked done. */
int kt_wait_assigned(kin *k, int assigned, kin_msg **got, int *n, int cap);
/* Polls until want messages are in got or ms passed; returns the count. */
int kt_poll_n(kin *k, kin_msg **got, int want, int ms);
/* Committed offset of group on topic/part read by a second, non-member
 * handle; -1 on error, RD_KAFKA_OFFSET_INVALID when none. */
int64_t kt_committed(const char *bs, const char *group, const char *topic, int32_t part);
/* Waits (10 s bound, polling k when given) until the committed offset is
 * want; messages k delivers meanwhile are finished and counted in
 * *unexpected (may be NULL). Returns the last offset read. */
int64_t kt_wait_committed(const char *bs, const char *group, const char *topic, int32_t part, int64_t want, kin *k,
                          int *unexpected);

#endif
