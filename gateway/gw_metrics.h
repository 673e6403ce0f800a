/* gw_metrics.h - the gateway's Prometheus metrics (text format 0.0.4):
 *
 *   inferno_gateway_requests_total{route,status,priority}  answered requests
 *   inferno_gateway_ttfb_seconds (histogram)     request complete -> first byte of a 200 answer
 *   inferno_gateway_stream_duration_seconds (histogram)  first byte -> end of a streamed answer
 *   inferno_gateway_in_flight                    requests between body and end
 *   inferno_gateway_rejected_total{reason}       429s and 503s: rate | streams | queue | no_worker
 *   inferno_gateway_cancels_total                requests cancelled (disconnect, timeout)
 * plus the Kafka and Redis client counters rendered by the caller.
 *
 * Threads: any (one mutex).
 */
#ifndef INF_GW_METRICS_H
#define INF_GW_METRICS_H

#include "gw_buf.h"

typedef struct gw_metrics gw_metrics;

gw_metrics *gw_metrics_create(void);
void gw_metrics_free(gw_metrics *m);

/* route: "/v1/completions" ...; priority: 0..2, or -1 (none). */
void gw_metrics_request(gw_metrics *m, const char *route, int status, int priority);
void gw_metrics_ttfb(gw_metrics *m, double seconds);
void gw_metrics_stream_done(gw_metrics *m, double seconds);
void gw_metrics_in_flight(gw_metrics *m, int delta);
void gw_metrics_rejected(gw_metrics *m, const char *reason);
void gw_metrics_cancel(gw_metrics *m, int n);

/* Appends the metrics above to out. */
void gw_metrics_render(gw_metrics *m, gw_buf *out);

#endif
