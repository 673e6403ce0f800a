/* gw_server.c - libmicrohttpd glue, routing and the simple endpoints
 * (gw_server.h); completion requests are in gw_call.c. */
#include "gw_internal.h"

#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int64_t gw_mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void gw_log(gw_server *s, int level, const char *fmt, ...) {
    if (!s->d.log || level > s->d.cfg->log_level) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    s->d.log(level, msg);
}

static enum MHD_Result reply(gw_call *c, unsigned status, const char *type, gw_buf *body, double retry_after) {
    size_t len = body->len;
    char *p = body->p ? body->p : strdup("");
    body->p = NULL;
    gw_buf_free(body);
    struct MHD_Response *r = MHD_create_response_from_buffer(len, p, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(p);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    if (c && c->resp_id[0]) MHD_add_response_header(r, "X-Request-Id", c->resp_id);
    if (retry_after > 0) {
        char ra[32];
        snprintf(ra, sizeof ra, "%d", retry_after < 1 ? 1 : retry_after > 3600 ? 3600 : (int)(retry_after + 0.999));
        MHD_add_response_header(r, "Retry-After", ra);
    }
    enum MHD_Result rc = MHD_queue_response(c->conn, status, r);
    MHD_destroy_response(r);
    if (c) {
        c->status = (int)status;
        c->phase = PH_SENT;
        gw_metrics_request(c->srv->d.metrics, c->route_name, (int)status, c->route >= 0 ? c->priority : -1);
    }
    return rc;
}

enum MHD_Result gw_send_error(gw_call *c, const gw_apierr *e, double retry_after_s) {
    gw_buf b = {0};
    gw_fmt_error(&b, e);
    gw_buf_puts(&b, "\n");
    gw_log(c->srv, 3, "%s -> %d %s", c->route_name, e->status, e->message);
    return reply(c, (unsigned)e->status, "application/json", &b, retry_after_s);
}

static enum MHD_Result simple(gw_call *c, const char *url) {
    gw_server *s = c->srv;
    gw_buf b = {0};
    if (!strcmp(url, "/metrics")) {
        gw_metrics_render(s->d.metrics, &b);
        gw_kafka_stats ks;
        gw_kafka_get_stats(s->d.kafka, &ks);
        gw_rd_stats rs;
        gw_rd_get_stats(s->d.rd, &rs);
        gw_workers_health wh;
        gw_workers_get_health(s->d.workers, &wh);
        int ns = __atomic_load_n(&s->not_started, __ATOMIC_RELAXED);
        gw_buf_printf(&b, "# TYPE inferno_gateway_kafka_produced_total counter\ninferno_gateway_kafka_produced_total %lld\n"
                          "# TYPE inferno_gateway_kafka_delivery_failed_total counter\n"
                          "inferno_gateway_kafka_delivery_failed_total %lld\n"
                          "# TYPE inferno_gateway_kafka_reachable gauge\ninferno_gateway_kafka_reachable %d\n",
                      ks.produced, ks.failed, ks.reachable);
        gw_buf_printf(&b, "# TYPE inferno_gateway_redis_entries_total counter\ninferno_gateway_redis_entries_total %lld\n"
                          "# TYPE inferno_gateway_redis_errors_total counter\ninferno_gateway_redis_errors_total %lld\n"
                          "# TYPE inferno_gateway_redis_readers_connected gauge\n"
                          "inferno_gateway_redis_readers_connected %d\n"
                          "# TYPE inferno_gateway_open_streams gauge\ninferno_gateway_open_streams %d\n"
                          "# TYPE inferno_gateway_not_started gauge\ninferno_gateway_not_started %d\n",
                      rs.entries, rs.errors, rs.connected, rs.subs, ns);
        gw_buf_printf(&b, "# TYPE inferno_gateway_workers_ready gauge\ninferno_gateway_workers_ready %d\n"
                          "# TYPE inferno_gateway_workers_live gauge\ninferno_gateway_workers_live %d\n",
                      wh.ready, wh.live);
        return reply(c, 200, "text/plain; version=0.0.4; charset=utf-8", &b, 0);
    }
    if (!strcmp(url, "/healthz")) {
        gw_buf_puts(&b, "{\"status\":\"ok\"}\n");
        return reply(c, 200, "application/json", &b, 0);
    }
    if (!strcmp(url, "/readyz")) {
        gw_kafka_stats ks;
        gw_kafka_get_stats(s->d.kafka, &ks);
        gw_workers_health wh;
        gw_workers_get_health(s->d.workers, &wh);
        int ok = ks.reachable && wh.redis_ok && wh.ready > 0;
        gw_buf_printf(&b, "{\"ready\":%s,\"kafka\":%s,\"redis\":%s,\"workers_ready\":%d}\n", ok ? "true" : "false",
                      ks.reachable ? "true" : "false", wh.redis_ok ? "true" : "false", wh.ready);
        return reply(c, ok ? 200 : 503, "application/json", &b, 0);
    }
    /* /v1/models */
    gw_workers_models_json(s->d.workers, &b);
    gw_buf_puts(&b, "\n");
    return reply(c, 200, "application/json", &b, 0);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_len, void **con_cls) {
    (void)version;
    gw_server *s = cls;
    gw_call *c = *con_cls;
    if (!c) {
        if (!(c = calloc(1, sizeof *c))) return MHD_NO;
        c->srv = s;
        c->conn = conn;
        c->refs = 1;
        c->fd = -1;
        c->route = -1;
        c->priority = -1;
        c->route_name = "other";
        *con_cls = c;
        pthread_mutex_lock(&s->mu);
        c->next = s->calls;
        if (s->calls) s->calls->prev = c;
        s->calls = c;
        pthread_mutex_unlock(&s->mu);
        gw_apierr e;
        int is_post = !strcmp(method, "POST"), is_get = !strcmp(method, "GET");
        if (!strcmp(url, "/v1/completions")) c->route = 0, c->route_name = "/v1/completions";
        else if (!strcmp(url, "/v1/chat/completions")) c->route = 1, c->route_name = "/v1/chat/completions";
        else if (!strcmp(url, "/v1/models")) c->route_name = "/v1/models";
        else if (!strcmp(url, "/healthz") || !strcmp(url, "/readyz") || !strcmp(url, "/metrics")) {
            c->route_name = url[1] == 'h' ? "/healthz" : url[1] == 'r' ? "/readyz" : "/metrics";
            if (!is_get) {
                gw_apierr_set(&e, 405, "invalid_request_error", NULL, "method_not_allowed", "Use GET %s.", url);
                return gw_send_error(c, &e, 0);
            }
            return simple(c, url);
        } else {
            gw_apierr_set(&e, 404, "invalid_request_error", NULL, "unknown_url",
                          "Unknown request URL: %s %s. Please check the URL for typos.", method, url);
            return gw_send_error(c, &e, 0);
        }
        if ((c->route >= 0 && !is_post) || (c->route < 0 && !is_get)) {
            gw_apierr_set(&e, 405, "invalid_request_error", NULL, "method_not_allowed", "Use %s %s.",
                          c->route >= 0 ? "POST" : "GET", url);
            return gw_send_error(c, &e, 0);
        }
        const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
        c->key_slot = gw_auth_check(s->d.auth, auth);
        if (c->key_slot < 0) {
            gw_apierr_set(&e, 401, "invalid_request_error", NULL, "invalid_api_key",
                          auth ? "Incorrect API key provided. You can find your API key in your gateway's key file."
                               : "You didn't provide an API key. You need to provide your API key in an "
                                 "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).");
            return gw_send_error(c, &e, 0);
        }
        if (c->route < 0) return simple(c, url);
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoll(cl, NULL, 10) > s->d.cfg->max_body_bytes) {
            gw_apierr_set(&e, 413, "invalid_request_error", NULL, "request_too_large",
                          "The request body is larger than %d bytes.", s->d.cfg->max_body_bytes);
            return gw_send_error(c, &e, 0);
        }
        c->phase = PH_BODY;
        return MHD_YES;
    }
    if (c->phase == PH_SENT) { /* an early answer is queued; the rest of the body is dropped */
        *upload_len = 0;
        return MHD_YES;
    }
    if (c->phase == PH_BODY) {
        if (*upload_len) {
            if (c->body.len + *upload_len > (size_t)s->d.cfg->max_body_bytes) c->body_too_large = 1;
            else gw_buf_put(&c->body, upload, *upload_len);
            *upload_len = 0;
            return MHD_YES;
        }
        return gw_call_body_done(c);
    }
    return gw_call_resumed(c);
}

void gw_call_unref(gw_call *c) {
    if (--c->refs > 0) return;
    gw_server *s = c->srv;
    pthread_mutex_lock(&s->mu);
    if (c->prev) c->prev->next = c->next;
    else s->calls = c->next;
    if (c->next) c->next->prev = c->prev;
    pthread_mutex_unlock(&s->mu);
    gw_params_free(&c->p);
    for (int i = 0; i < c->n_legs; i++) {
        gw_buf_free(&c->legs[i].text);
        free(c->legs[i].ids);
        free(c->legs[i].lps);
    }
    free(c->legs);
    gw_buf_free(&c->body);
    gw_buf_free(&c->out);
    free(c);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)cls;
    (void)conn;
    gw_call *c = *con_cls;
    if (!c) return;
    *con_cls = NULL;
    gw_call_completed(c, toe);
    gw_call_unref(c);
}

/* Splits "HOST:PORT" / "[V6]:PORT". */
static int split_addr(const char *addr, char *host, size_t hcap, char *port, size_t pcap) {
    const char *colon;
    if (addr[0] == '[') {
        const char *rb = strchr(addr, ']');
        if (!rb || rb[1] != ':' || (size_t)(rb - addr - 1) >= hcap) return -1;
        memcpy(host, addr + 1, (size_t)(rb - addr - 1));
        host[rb - addr - 1] = '\0';
        colon = rb + 1;
    } else {
        colon = strrchr(addr, ':');
        if (!colon || (size_t)(colon - addr) >= hcap) return -1;
        memcpy(host, addr, (size_t)(colon - addr));
        host[colon - addr] = '\0';
    }
    if (!colon[1] || strlen(colon + 1) >= pcap) return -1;
    snprintf(port, pcap, "%s", colon + 1);
    if (!strcmp(host, "*")) host[0] = '\0';
    return 0;
}

int gw_server_start(gw_server **out, const gw_server_deps *d, inf_error *err) {
    *out = NULL;
    const char *addr = d->cfg->listen;
    char host[256], port[16];
    if (split_addr(addr, host, sizeof host, port, sizeof port) != 0)
        return inf_error_set(err, INF_EINVAL, "--listen: '%s' is not HOST:PORT", addr);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV}, *ai = NULL;
    int gai = getaddrinfo(*host ? host : NULL, port, &hints, &ai);
    if (gai != 0 || !ai) return inf_error_set(err, INF_EINVAL, "--listen '%s': %s", addr, gai_strerror(gai));
    struct addrinfo *pick = ai;
    if (!*host)
        for (struct addrinfo *p = ai; p; p = p->ai_next)
            if (p->ai_family == AF_INET) { pick = p; break; }
    gw_server *s = calloc(1, sizeof *s);
    if (!s) {
        freeaddrinfo(ai);
        return inf_error_set(err, INF_ENOMEM, "out of memory");
    }
    s->d = *d;
    pthread_mutex_init(&s->mu, NULL);
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME;
    if (pick->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    struct MHD_OptionItem pool[] = {
        {d->cfg->http_threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, d->cfg->http_threads, NULL},
        {MHD_OPTION_END, 0, NULL}};
    s->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, pick->ai_addr,
                              MHD_OPTION_CONNECTION_LIMIT, (unsigned)d->cfg->max_connections,
                              /* idle connections (a client that stopped reading) go after 60 s */
                              MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60,
                              MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)4096,
                              /* per connection: headers, the body being read, the chunk being written */
                              MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)32768,
                              MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                              MHD_OPTION_ARRAY, pool, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!s->mhd) {
        pthread_mutex_destroy(&s->mu);
        free(s);
        return inf_error_set(err, INF_EIO, "--listen: cannot listen on %s (in use? pass another HOST:PORT)", addr);
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : atoi(port);
    *out = s;
    return 0;
}

int gw_server_port(const gw_server *s) { return s ? s->port : 0; }

void gw_server_stop(gw_server *s) {
    if (!s) return;
    MHD_quiesce_daemon(s->mhd); /* no new connections */
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    for (gw_call *c = s->calls; c; c = c->next) {
        if (!c->sub) continue;
        gw_sub_lock(c->sub);
        if (c->suspended) {
            c->suspended = 0;
            MHD_resume_connection(c->conn);
        }
        gw_sub_unlock(c->sub);
    }
    pthread_mutex_unlock(&s->mu);
    /* resumed requests end on the event loop (cut streams, cancels); give it a moment */
    for (int i = 0; i < 100; i++) {
        pthread_mutex_lock(&s->mu);
        int left = 0;
        for (gw_call *c = s->calls; c; c = c->next)
            if (c->sub) {
                gw_sub_lock(c->sub);
                left += c->suspended;
                gw_sub_unlock(c->sub);
            }
        pthread_mutex_unlock(&s->mu);
        if (!left) break;
        usleep(20000);
    }
    usleep(50000);
    MHD_stop_daemon(s->mhd);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
