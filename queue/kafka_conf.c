/* kafka_conf.c - kin_config defaults and validation, and the librdkafka
 * configurations of the consumer and the DLQ producer, with the -X
 * passthrough properties applied where they belong. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka_in_internal.h"

kin_config kin_config_default(void) {
    kin_config c;
    memset(&c, 0, sizeof c);
    c.brokers = NULL;
    c.group = "inferno-workers";
    c.topics[0] = "inferno.requests.high";
    c.topics[1] = "inferno.requests.normal";
    c.topics[2] = "inferno.requests.low";
    c.n_topics = 3;
    c.dlq_topic = "inferno.requests.dlq";
    c.group_instance_id = NULL;
    c.max_inflight = 64;
    c.urgent_reserve = 0;
    c.session_timeout_ms = 10000;
    c.max_poll_interval_ms = 300000;
    c.commit_interval_ms = 200;
    c.queued_max_kbytes = 256;
    c.client_id = "inferno-worker";
    c.max_message_bytes = KIN_MAX_MESSAGE_DEFAULT;
    return c;
}

size_t kin_max_message_bytes(const kin_config *c) {
    return c->max_message_bytes ? (size_t)c->max_message_bytes : KIN_MAX_MESSAGE_DEFAULT;
}

/* Kafka topic names: 1-249 chars of [A-Za-z0-9._-]. */
static int topic_name_ok(const char *t) {
    size_t n = t ? strlen(t) : 0;
    if (n == 0 || n > 249) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = t[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-'))
            return 0;
    }
    return 1;
}

int kin_config_validate(const kin_config *c, inf_error *err) {
    if (!c) return inf_error_set(err, INF_EINVAL, "kafka: no configuration given");
    if (!c->brokers || !*c->brokers) return inf_error_set(err, INF_EINVAL, "kafka: no bootstrap brokers given");
    if (!c->group || !*c->group) return inf_error_set(err, INF_EINVAL, "kafka: consumer group must not be empty");
    if (c->n_topics < 1 || c->n_topics > KIN_MAX_TOPICS)
        return inf_error_set(err, INF_EINVAL, "kafka: 1 to %d request topics are supported, got %d", KIN_MAX_TOPICS,
                             c->n_topics);
    for (int i = 0; i < c->n_topics; i++) {
        if (!topic_name_ok(c->topics[i]))
            return inf_error_set(err, INF_EINVAL,
                                 "kafka: request topic %d ('%s') is not a valid topic name (1-249 chars of "
                                 "[A-Za-z0-9._-])",
                                 i, c->topics[i] ? c->topics[i] : "");
        for (int j = 0; j < i; j++)
            if (strcmp(c->topics[i], c->topics[j]) == 0)
                return inf_error_set(err, INF_EINVAL, "kafka: request topic '%s' is listed twice", c->topics[i]);
    }
    if (c->dlq_topic) {
        if (!topic_name_ok(c->dlq_topic))
            return inf_error_set(err, INF_EINVAL, "kafka: dead-letter topic '%s' is not a valid topic name",
                                 c->dlq_topic);
        for (int i = 0; i < c->n_topics; i++)
            if (strcmp(c->dlq_topic, c->topics[i]) == 0)
                return inf_error_set(err, INF_EINVAL, "kafka: dead-letter topic '%s' is also a request topic",
                                     c->dlq_topic);
    }
    if (c->group_instance_id && !*c->group_instance_id)
        return inf_error_set(err, INF_EINVAL, "kafka: group instance id must not be empty (NULL turns it off)");
    if (c->max_inflight < 1 || c->max_inflight > 1000000)
        return inf_error_set(err, INF_EINVAL, "kafka: max in-flight must be 1-1000000, got %d", c->max_inflight);
    if (c->urgent_reserve < 0 || c->max_inflight - (c->n_topics - 1) * (long)c->urgent_reserve < 1)
        return inf_error_set(err, INF_EINVAL,
                             "kafka: urgent reserve %d leaves no capacity for the least urgent topic (max in-flight "
                             "%d, %d topics)",
                             c->urgent_reserve, c->max_inflight, c->n_topics);
    if (c->max_message_bytes && (c->max_message_bytes < KIN_MAX_MESSAGE_MIN || c->max_message_bytes > KIN_MAX_MESSAGE_MAX))
        return inf_error_set(err, INF_EINVAL, "kafka: max_message_bytes must be %d-%d, got %d", KIN_MAX_MESSAGE_MIN,
                             KIN_MAX_MESSAGE_MAX, c->max_message_bytes);
    if (c->session_timeout_ms < 0 || c->max_poll_interval_ms < 0 || c->commit_interval_ms < 0 ||
        c->queued_max_kbytes < 0)
        return inf_error_set(err, INF_EINVAL, "kafka: timeouts and sizes must not be negative");
    if (c->n_props < 0 || (c->n_props > 0 && !c->props))
        return inf_error_set(err, INF_EINVAL, "kafka: %d properties announced but none given", c->n_props);
    for (int i = 0; i < c->n_props; i++) {
        const char *p = c->props[i];
        const char *eq = p ? strchr(p, '=') : NULL;
        if (!eq || eq == p)
            return inf_error_set(err, INF_EINVAL, "kafka: property '%s' (-X) is not of the form key=value",
                                 p ? p : "(null)");
    }
    return 0;
}

enum { FOR_CONSUMER = 1, FOR_PRODUCER = 2 };

static int has_prefix(const char *s, size_t n, const char *pre) {
    size_t m = strlen(pre);
    return n >= m && strncmp(s, pre, m) == 0;
}

/* Which client a librdkafka key applies to. Properties of the other kind
 * only draw a warning from librdkafka, but sending each where it belongs
 * keeps the logs quiet. Unknown keys go to both, so librdkafka names them. */
static int key_target(const char *key, size_t n) {
    static const char *const consumer_only[] = {
        "group.", "partition.assignment.strategy", "session.timeout.ms", "heartbeat.interval.ms",
        "coordinator.query.interval.ms", "max.poll.interval.ms", "enable.auto.commit", "auto.commit.interval.ms",
        "enable.auto.offset.store", "queued.", "fetch.", "enable.partition.eof", "check.crcs", "isolation.level",
        "auto.offset.reset", "consume.callback.max.messages", "offset.store."};
    static const char *const producer_only[] = {
        "transactional.id", "transaction.timeout.ms", "enable.idempotence", "enable.gapless.guarantee",
        "queue.buffering.", "message.send.max.retries", "retries", "queuing.strategy", "compression.",
        "batch.", "delivery.report.only.error", "sticky.partitioning.linger.ms", "linger.ms", "acks",
        "request.required.acks", "request.timeout.ms", "message.timeout.ms", "delivery.timeout.ms",
        "partitioner", "produce.offset.report", "msg_order_cmp"};
    for (size_t i = 0; i < sizeof consumer_only / sizeof *consumer_only; i++)
        if (has_prefix(key, n, consumer_only[i])) return FOR_CONSUMER;
    for (size_t i = 0; i < sizeof producer_only / sizeof *producer_only; i++)
        if (has_prefix(key, n, producer_only[i])) return FOR_PRODUCER;
    return FOR_CONSUMER | FOR_PRODUCER;
}

/* librdkafka's messages sometimes end in a newline. */
static void trim(char *s) {
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '.')) s[--n] = '\0';
}

static int conf_set(rd_kafka_conf_t *conf, const char *who, const char *key, const char *val, inf_error *err) {
    char errstr[512];
    rd_kafka_conf_res_t r = rd_kafka_conf_set(conf, key, val, errstr, sizeof errstr);
    if (r == RD_KAFKA_CONF_OK) return 0;
    trim(errstr);
    return inf_error_set(err, INF_EINVAL, "kafka: %s property %s=%s rejected: %s", who, key, val, errstr);
}

/* Splits the -X entry p ("key=value", validated): *key (*kn bytes) is its key
 * without a "consumer." or "producer." prefix, which restricts it to that
 * client; returns the clients it goes to. */
static int prop_split(const char *p, const char **key, size_t *kn) {
    *kn = (size_t)(strchr(p, '=') - p);
    *key = p;
    if (has_prefix(p, *kn, "consumer.") || has_prefix(p, *kn, "producer.")) {
        *key += 9;
        *kn -= 9;
        return p[0] == 'c' ? FOR_CONSUMER : FOR_PRODUCER;
    }
    return key_target(p, *kn);
}

/* 1 when the -X list sets name for a client of this kind. */
static int user_set(const kin_config *c, int kind, const char *name) {
    for (int i = 0; i < c->n_props; i++) {
        const char *key;
        size_t kn;
        if ((prop_split(c->props[i], &key, &kn) & kind) && kn == strlen(name) && !strncmp(key, name, kn)) return 1;
    }
    return 0;
}

long long kin_conf_num(const rd_kafka_conf_t *conf, const char *key) {
    char buf[64];
    size_t n = sizeof buf;
    if (rd_kafka_conf_get(conf, key, buf, &n) != RD_KAFKA_CONF_OK) return -1;
    return strtoll(buf, NULL, 10);
}

/* Applies the -X list to conf for one client kind. */
static int apply_props(rd_kafka_conf_t *conf, int kind, const kin_config *c, inf_error *err) {
    for (int i = 0; i < c->n_props; i++) {
        const char *p;
        size_t kn;
        int target = prop_split(c->props[i], &p, &kn);
        const char *eq = p + kn;
        if (!(target & kind) || kn == 0) {
            if (kn == 0)
                return inf_error_set(err, INF_EINVAL, "kafka: property '%s' (-X) has an empty key", c->props[i]);
            continue;
        }
        char key[256];
        if (kn >= sizeof key)
            return inf_error_set(err, INF_EINVAL, "kafka: property key in '%.60s...' (-X) is too long", c->props[i]);
        memcpy(key, p, kn);
        key[kn] = '\0';
        if (strcmp(key, "enable.auto.offset.store") == 0)
            return inf_error_set(err, INF_EINVAL,
                                 "kafka: property enable.auto.offset.store (-X) cannot be set: the worker stores "
                                 "offsets itself only when requests finish (at-least-once)");
        char errstr[512];
        rd_kafka_conf_res_t r = rd_kafka_conf_set(conf, key, eq + 1, errstr, sizeof errstr);
        trim(errstr);
        if (r == RD_KAFKA_CONF_UNKNOWN)
            return inf_error_set(err, INF_EINVAL, "kafka: unknown librdkafka property '%s' (-X %s): %s", key,
                                 c->props[i], errstr);
        if (r != RD_KAFKA_CONF_OK)
            return inf_error_set(err, INF_EINVAL, "kafka: bad value '%s' for librdkafka property '%s' (-X): %s",
                                 eq + 1, key, errstr);
    }
    return 0;
}

/* After -X: the consumer's fetch limits must still serve max_message_bytes.
 * A limit the user did not set follows what librdkafka requires of it
 * (an unprefixed -X message.max.bytes reaches the consumer too). */
static int check_consumer_limits(rd_kafka_conf_t *conf, const kin_config *c, inf_error *err) {
    long long mm = (long long)kin_max_message_bytes(c);
    long long fetch = kin_conf_num(conf, "fetch.max.bytes"), part = kin_conf_num(conf, "max.partition.fetch.bytes");
    long long recv = kin_conf_num(conf, "receive.message.max.bytes"), cmsg = kin_conf_num(conf, "message.max.bytes");
    char num[32];
    int rc = 0;
    if (fetch < cmsg && !user_set(c, FOR_CONSUMER, "fetch.max.bytes")) {
        fetch = cmsg;
        snprintf(num, sizeof num, "%lld", fetch);
        rc = conf_set(conf, "consumer", "fetch.max.bytes", num, err);
    }
    if (!rc && recv < fetch + 512 && !user_set(c, FOR_CONSUMER, "receive.message.max.bytes")) {
        recv = fetch + 65536 < 2147483647LL ? fetch + 65536 : 2147483647LL;
        snprintf(num, sizeof num, "%lld", recv);
        rc = conf_set(conf, "consumer", "receive.message.max.bytes", num, err);
    }
    if (rc) return rc;
    if (fetch < mm)
        return inf_error_set(err, INF_EINVAL,
                             "kafka: consumer property fetch.max.bytes=%lld (-X) is smaller than max_message_bytes "
                             "%lld (--max-message-bytes): requests of the allowed size could not be fetched",
                             fetch, mm);
    if (part < mm)
        return inf_error_set(err, INF_EINVAL,
                             "kafka: consumer property max.partition.fetch.bytes=%lld (-X) is smaller than "
                             "max_message_bytes %lld (--max-message-bytes): requests of the allowed size could not "
                             "be fetched",
                             part, mm);
    if (recv < fetch + 512)
        return inf_error_set(err, INF_EINVAL,
                             "kafka: consumer property receive.message.max.bytes=%lld (-X) must be at least "
                             "fetch.max.bytes=%lld + 512 (protocol framing)",
                             recv, fetch);
    return 0;
}

int kin_consumer_conf(const kin_config *c, rd_kafka_conf_t **out, inf_error *err) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char num[32];
    int rc = 0;
#define SET(K, V)                                                      \
    do {                                                               \
        if (!rc) rc = conf_set(conf, "consumer", (K), (V), err);       \
    } while (0)
#define SETI(K, V)                                                     \
    do {                                                               \
        snprintf(num, sizeof num, "%d", (int)(V));                     \
        SET(K, num);                                                   \
    } while (0)
#define SET2(K, V)                                                     \
    do {                                                               \
        snprintf(num, sizeof num, "%lld", (long long)(V));             \
        SET(K, num);                                                   \
    } while (0)
    SET("bootstrap.servers", c->brokers);
    SET("group.id", c->group);
    SET("client.id", c->client_id ? c->client_id : "inferno-worker");
    SET("partition.assignment.strategy", "cooperative-sticky");
    SET("enable.auto.offset.store", "false");
    /* Auto commit only ever commits what we stored (the lowest unfinished
     * offset); it covers revocation and close besides our explicit commits. */
    SET("enable.auto.commit", "true");
    SET("auto.commit.interval.ms", "1000");
    SET("auto.offset.reset", "earliest");
    SETI("session.timeout.ms", c->session_timeout_ms ? c->session_timeout_ms : 10000);
    SETI("max.poll.interval.ms", c->max_poll_interval_ms ? c->max_poll_interval_ms : 300000);
    /* Small local buffers: a busy worker should not hoard requests that
     * another worker could serve, and pausing drops what was prefetched. */
    SETI("queued.max.messages.kbytes", c->queued_max_kbytes ? c->queued_max_kbytes : 256);
    SET("queued.min.messages", "64");
    SET("fetch.wait.max.ms", "100");
    if (c->group_instance_id) SET("group.instance.id", c->group_instance_id);
    /* Fetch room for twice the request limit (kafka_in.h, max_message_bytes):
     * an oversized request must be fetched to be rejected; one the consumer
     * cannot fetch would stall its partition. librdkafka wants fetch.max.bytes
     * >= its own message.max.bytes (1000000 by default) as well. */
    long long mm = (long long)kin_max_message_bytes(c);
    long long fetch = 2 * mm > 1000000 ? 2 * mm : 1000000;
    SET2("fetch.max.bytes", fetch);
    SET2("max.partition.fetch.bytes", fetch);
    SET2("receive.message.max.bytes", fetch + 65536 > 100000000 ? fetch + 65536 : 100000000);
#undef SET
#undef SETI
#undef SET2
    if (!rc) rc = apply_props(conf, FOR_CONSUMER, c, err);
    if (!rc) rc = check_consumer_limits(conf, c, err);
    if (rc) {
        rd_kafka_conf_destroy(conf);
        return rc;
    }
    *out = conf;
    return 0;
}

int kin_producer_conf(const kin_config *c, rd_kafka_conf_t **out, inf_error *err) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    int rc = conf_set(conf, "producer", "bootstrap.servers", c->brokers, err);
    if (!rc) rc = conf_set(conf, "producer", "client.id", c->client_id ? c->client_id : "inferno-worker", err);
    /* Dead letters are few; send them at once, and never give up on one
     * (a failed delivery is retried by kafka_dlq.c as well). */
    if (!rc) rc = conf_set(conf, "producer", "linger.ms", "5", err);
    if (!rc) rc = conf_set(conf, "producer", "acks", "all", err);
    /* Room for a whole copy of any servable request with its key and
     * headers; bigger values are cut to this (kafka_dlq.c). */
    long long need = (long long)kin_max_message_bytes(c) + KIN_DLQ_HEADROOM;
    char num[32];
    snprintf(num, sizeof num, "%lld", need);
    if (!rc) rc = conf_set(conf, "producer", "message.max.bytes", num, err);
    if (!rc) rc = apply_props(conf, FOR_PRODUCER, c, err);
    long long have = rc ? 0 : kin_conf_num(conf, "message.max.bytes");
    if (!rc && have < need)
        rc = inf_error_set(err, INF_EINVAL,
                           "kafka: producer property message.max.bytes=%lld (-X) is smaller than max_message_bytes "
                           "%zu (--max-message-bytes) + %d bytes for the key and headers of a dead-letter copy (%lld)",
                           have, kin_max_message_bytes(c), KIN_DLQ_HEADROOM, need);
    if (rc) {
        rd_kafka_conf_destroy(conf);
        return rc;
    }
    *out = conf;
    return 0;
}
