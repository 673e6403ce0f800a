/* http.h - the worker's HTTP endpoint (libmicrohttpd, one internal thread):
 *
 *   GET /metrics   Prometheus text format 0.0.4 (metrics.h)
 *   GET /healthz   200 {"status":"ok",...} while the worker loop goes round,
 *                  503 when it stalled
 *   GET /readyz    200 {"ready":true,...} when the model is loaded, Kafka
 *                  partitions are assigned and Redis is connected; 503 while
 *                  starting, draining or disconnected
 *
 * The thread only reads the wmetrics state (under its mutex); it never calls
 * the engine or the Kafka/Redis clients.
 */
#ifndef INF_WORKER_HTTP_H
#define INF_WORKER_HTTP_H

#include "metrics.h"
#include "status.h"

typedef struct whttp whttp;

/* Listens on addr ("HOST:PORT"; HOST may be an IPv4/IPv6 address, a name,
 * "*" or empty for every interface; "[::1]:9400" for IPv6; port 0 picks a
 * free one) and serves m, which must outlive the server. Fails with INF_EIO
 * and a message naming the address when it cannot listen. *out is owned by
 * the caller (whttp_stop). */
int whttp_start(whttp **out, const char *addr, wmetrics *m, inf_error *err);

/* The port actually listened on. */
int whttp_port(const whttp *h);

/* Stops the thread and closes the socket. NULL is fine. */
void whttp_stop(whttp *h);

/* 1 when addr means "no endpoint": "", "off", "none", "0" or "false". */
int whttp_addr_disabled(const char *addr);

#endif
