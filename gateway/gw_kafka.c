/* gw_kafka.c - see gw_kafka.h. */
#include "gw_kafka.h"

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct gw_kafka {
    rd_kafka_t *rk;
    pthread_t th;
    pthread_mutex_t mu;
    int stop, reachable;
    long long produced, delivered, failed;
    char last_error[256];
};

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    gw_kafka *k = opaque;
    pthread_mutex_lock(&k->mu);
    if (m->err) {
        k->failed++;
        snprintf(k->last_error, sizeof k->last_error, "delivery failed: %s", rd_kafka_err2str(m->err));
    } else {
        k->delivered++;
    }
    pthread_mutex_unlock(&k->mu);
}

static void *poll_main(void *arg) {
    gw_kafka *k = arg;
    struct timespec last = {0};
    for (;;) {
        pthread_mutex_lock(&k->mu);
        int stop = k->stop;
        pthread_mutex_unlock(&k->mu);
        if (stop) break;
        rd_kafka_poll(k->rk, 100);
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - last.tv_sec >= 2) {
            last = now;
            const struct rd_kafka_metadata *md = NULL;
            rd_kafka_resp_err_t e = rd_kafka_metadata(k->rk, 0, NULL, &md, 1000);
            pthread_mutex_lock(&k->mu);
            k->reachable = e == RD_KAFKA_RESP_ERR_NO_ERROR && md && md->broker_cnt > 0;
            if (e) snprintf(k->last_error, sizeof k->last_error, "metadata: %s", rd_kafka_err2str(e));
            pthread_mutex_unlock(&k->mu);
            if (md) rd_kafka_metadata_destroy(md);
        }
    }
    return NULL;
}

int gw_kafka_create(gw_kafka **out, const gw_kafka_config *cfg, inf_error *err) {
    *out = NULL;
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
#define SET(kk, vv)                                                                                     \
    if (rd_kafka_conf_set(conf, kk, vv, errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {                   \
        rd_kafka_conf_destroy(conf);                                                                    \
        return inf_error_set(err, INF_EINVAL, "Kafka producer: %s=%s: %s", kk, vv, errstr);             \
    }
    SET("bootstrap.servers", cfg->brokers);
    SET("client.id", "inferno-gateway");
    /* the request reaches the queue at once; batching would add to every TTFB */
    SET("linger.ms", "0");
    /* requests are small single messages: Nagle would hold one back for the previous one's ACK */
    SET("socket.nagle.disable", "true");
    SET("message.timeout.ms", "30000");
    SET("log_level", "3");
    for (int i = 0; i < cfg->n_props; i++) {
        char kv[1024];
        const char *p = cfg->props[i];
        if (!strncmp(p, "producer.", 9)) p += 9;
        else if (!strncmp(p, "consumer.", 9)) continue;
        snprintf(kv, sizeof kv, "%s", p);
        char *eq = strchr(kv, '=');
        if (!eq) {
            rd_kafka_conf_destroy(conf);
            return inf_error_set(err, INF_EINVAL, "-X %s: expected KEY=VALUE", cfg->props[i]);
        }
        *eq = '\0';
        if (!strcmp(kv, "acks") || !strcmp(kv, "request.required.acks") || !strcmp(kv, "enable.idempotence")) {
            rd_kafka_conf_destroy(conf);
            return inf_error_set(err, INF_EINVAL, "-X %s: the gateway always produces with acks=all and "
                                 "enable.idempotence=true", cfg->props[i]);
        }
        SET(kv, eq + 1);
    }
    /* last, so nothing above can weaken them */
    SET("enable.idempotence", "true");
    SET("acks", "all");
#undef SET
    gw_kafka *k = calloc(1, sizeof *k);
    if (!k) {
        rd_kafka_conf_destroy(conf);
        return inf_error_set(err, INF_ENOMEM, "out of memory");
    }
    pthread_mutex_init(&k->mu, NULL);
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_conf_set_opaque(conf, k);
    k->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!k->rk) {
        pthread_mutex_destroy(&k->mu);
        free(k);
        return inf_error_set(err, INF_EINVAL, "Kafka producer: %s", errstr);
    }
    if (pthread_create(&k->th, NULL, poll_main, k) != 0) {
        rd_kafka_destroy(k->rk);
        pthread_mutex_destroy(&k->mu);
        free(k);
        return inf_error_set(err, INF_EIO, "cannot start the Kafka poll thread");
    }
    *out = k;
    return 0;
}

void gw_kafka_free(gw_kafka *k) {
    if (!k) return;
    pthread_mutex_lock(&k->mu);
    k->stop = 1;
    pthread_mutex_unlock(&k->mu);
    pthread_join(k->th, NULL);
    rd_kafka_flush(k->rk, 5000);
    rd_kafka_destroy(k->rk);
    pthread_mutex_destroy(&k->mu);
    free(k);
}

int gw_kafka_produce(gw_kafka *k, const char *topic, const char *key, const void *value, size_t len, inf_error *err) {
    rd_kafka_resp_err_t e = rd_kafka_producev(k->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, strlen(key)),
                                              RD_KAFKA_V_VALUE((void *)value, len),
                                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL)
        return inf_error_set(err, INF_EFULL, "Kafka producer queue full");
    if (e) return inf_error_set(err, INF_EIO, "Kafka produce to %s: %s", topic, rd_kafka_err2str(e));
    pthread_mutex_lock(&k->mu);
    k->produced++;
    pthread_mutex_unlock(&k->mu);
    return 0;
}

void gw_kafka_get_stats(gw_kafka *k, gw_kafka_stats *st) {
    pthread_mutex_lock(&k->mu);
    st->reachable = k->reachable;
    st->produced = k->produced;
    st->delivered = k->delivered;
    st->failed = k->failed;
    snprintf(st->last_error, sizeof st->last_error, "%s", k->last_error);
    pthread_mutex_unlock(&k->mu);
}
