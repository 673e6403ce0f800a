/* gw_server.h - the gateway's HTTP server (libmicrohttpd, epoll event loop,
 * suspend/resume):
 *
 *   POST /v1/completions, /v1/chat/completions   stream true (SSE) or false
 *   GET  /v1/models                               models of the live workers
 *   GET  /healthz                                 200 while the process serves
 *   GET  /readyz                                  200 when Kafka and Redis answer and a worker is ready
 *   GET  /metrics                                 Prometheus text
 *
 * A request waiting for its reply holds no thread: its connection is
 * suspended (MHD_suspend_connection) and resumed by the Redis reader that
 * has new bytes for it, so one event-loop thread serves thousands of open
 * streams; each holds a fixed state plus its pending reply bytes (bounded by
 * --stream-buffer-kb: over it the reply stream is not read until the client
 * catches up).
 *
 * The server borrows every client it is given (they must outlive it).
 */
#ifndef INF_GW_SERVER_H
#define INF_GW_SERVER_H

#include "avro_codec.h"
#include "gw_auth.h"
#include "gw_config.h"
#include "gw_kafka.h"
#include "gw_metrics.h"
#include "gw_redis.h"
#include "gw_workers.h"
#include "status.h"

typedef struct gw_server gw_server;

typedef struct gw_server_deps {
    const gwc *cfg;
    gw_kafka *kafka;
    gw_rd *rd;
    gw_workers *workers;
    gw_auth *auth;
    gw_metrics *metrics;
    const inf_avro_registry *reg;
    void (*log)(int level, const char *msg); /* may be NULL */
} gw_server_deps;

/* Listens on cfg->listen and starts serving. INF_EIO naming the address
 * when it cannot listen. */
int gw_server_start(gw_server **out, const gw_server_deps *deps, inf_error *err);

/* The port listened on. */
int gw_server_port(const gw_server *s);

/* Ends every open request (streams are cut, waiting requests cancelled),
 * then stops the server. NULL is fine. */
void gw_server_stop(gw_server *s);

#endif
