/* inferno-gateway - the OpenAI HTTP API in front of the inferno queue
 * (docs/gateway.md): HTTP -> Kafka -> workers -> Redis reply streams -> SSE.
 *
 * The configuration layer (gw_config.c) reads flags, INFERNO_GATEWAY_*
 * variables and the config file; this file wires the modules together,
 * prints "inferno-gateway: listening on http://HOST:PORT" on stdout once
 * serving, and stops on SIGTERM/SIGINT (exit 0). Exit 2: configuration
 * error; 1: cannot start. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "avro_codec.h"
#include "gw_auth.h"
#include "gw_config.h"
#include "gw_kafka.h"
#include "gw_metrics.h"
#include "gw_redis.h"
#include "gw_server.h"
#include "gw_workers.h"

extern char **environ;

static const char *LEVEL[] = {"ERROR", "WARN ", "INFO ", "DEBUG"};

static void log_line(int level, const char *msg) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s gateway: %s\n", tm.tm_year + 1900, tm.tm_mon + 1,
            tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, LEVEL[level & 3], msg);
}

/* Every stream is a socket: lift the soft open-files limit to what
 * --max-connections needs (up to the hard limit). */
static void raise_nofile(int want) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    rlim_t need = (rlim_t)want + 256;
    if (rl.rlim_cur >= need) return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need ? need : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < need) {
        char m[160];
        snprintf(m, sizeof m, "open-files limit %llu is below --max-connections %d + 256",
                 (unsigned long long)rl.rlim_cur, want);
        log_line(1, m);
    }
}

int main(int argc, char **argv) {
    gwc cfg;
    inf_error err = {0};
    int mode = gwc_parse(&cfg, argc, argv, environ, &err);
    if (mode < 0) {
        fprintf(stderr, "inferno-gateway: %s\n", err.msg);
        return 2;
    }
    if (mode == GWC_HELP || mode == GWC_HELP_MD) {
        if (mode == GWC_HELP) gwc_print_help(stdout);
        else gwc_print_markdown(stdout);
        gwc_free(&cfg);
        return 0;
    }
    /* signals are taken by sigwait below; threads started from here inherit the mask */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    raise_nofile(cfg.max_connections);

    int rc = 0;
    inf_avro_registry *reg = NULL;
    gw_kafka *kafka = NULL;
    gw_rd *rd = NULL;
    gw_workers *workers = NULL;
    gw_auth *auth = NULL;
    gw_metrics *metrics = gw_metrics_create();
    gw_server *srv = NULL;
    gw_kafka_config kc = {.brokers = cfg.brokers, .props = (const char *const *)cfg.props, .n_props = cfg.n_props};
    gw_rd_config rc_ = {.url = cfg.redis_url, .n_readers = cfg.redis_readers, .wake_prefix = cfg.wake_prefix,
                        .gateway_id = cfg.gateway_id, .cancel_channel = cfg.cancel_channel,
                        .cancel_key_prefix = cfg.cancel_key_prefix};
    gw_workers_config wc = {.url = cfg.redis_url, .zset = cfg.workers_zset, .key_prefix = cfg.worker_key_prefix,
                            .poll_ms = cfg.workers_poll_ms, .stale_ms = cfg.worker_stale_ms};
    gw_auth_config ac = {.keys_file = cfg.api_keys_file, .keys_csv = cfg.api_keys, .rps = cfg.rate_limit_rps,
                         .burst = cfg.rate_limit_burst, .max_streams = cfg.max_streams_per_key};
    if (!metrics) rc = inf_error_set(&err, INF_ENOMEM, "out of memory");
    if (!rc) rc = gw_auth_create(&auth, &ac, &err);
    if (rc) {
        fprintf(stderr, "inferno-gateway: %s\n", err.msg);
        gw_metrics_free(metrics);
        gwc_free(&cfg);
        return 2;
    }
    if (!rc) rc = inf_avro_registry_create(&reg, &err);
    if (!rc) rc = gw_kafka_create(&kafka, &kc, &err);
    if (!rc) rc = gw_rd_create(&rd, &rc_, &err);
    if (!rc) rc = gw_workers_create(&workers, &wc, &err);
    if (!rc) {
        gw_workers_poll_now(workers, NULL); /* models known before the first request */
        gw_server_deps d = {.cfg = &cfg, .kafka = kafka, .rd = rd, .workers = workers, .auth = auth,
                            .metrics = metrics, .reg = reg, .log = log_line};
        rc = gw_server_start(&srv, &d, &err);
    }
    if (rc) {
        fprintf(stderr, "inferno-gateway: %s\n", err.msg);
    } else {
        char m[512];
        snprintf(m, sizeof m, "gateway %s: listening on port %d (%s), brokers %s, redis readers %d, %s", cfg.gateway_id,
                 gw_server_port(srv), cfg.listen, cfg.brokers, cfg.redis_readers,
                 gw_auth_n_keys(auth) ? "API keys required" : "no authentication");
        log_line(2, m);
        char host[256];
        snprintf(host, sizeof host, "%s", cfg.listen);
        char *colon = strrchr(host, ':');
        if (colon) *colon = '\0';
        printf("inferno-gateway: listening on http://%s:%d\n", *host ? host : "0.0.0.0", gw_server_port(srv));
        fflush(stdout);
        int sig = 0;
        sigwait(&set, &sig);
        snprintf(m, sizeof m, "signal %d: stopping", sig);
        log_line(2, m);
    }
    gw_server_stop(srv);
    gw_workers_free(workers);
    gw_rd_free(rd);
    gw_kafka_free(kafka);
    inf_avro_registry_free(reg);
    gw_auth_free(auth);
    gw_metrics_free(metrics);
    gwc_free(&cfg);
    return rc ? 1 : 0;
}
