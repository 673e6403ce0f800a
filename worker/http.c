/* http.c - see http.h. */
#include "http.h"

#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

struct whttp {
    struct MHD_Daemon *d;
    wmetrics *m;
    int port;
};

int whttp_addr_disabled(const char *a) {
    return !a || !*a || !strcasecmp(a, "off") || !strcasecmp(a, "none") || !strcmp(a, "0") ||
           !strcasecmp(a, "false");
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, const char *type, char *body, size_t len,
                             int must_free) {
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, body, must_free ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_MUST_COPY);
    if (!r) {
        if (must_free) free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    enum MHD_Result rc = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_len, void **state) {
    (void)version;
    (void)upload;
    whttp *h = cls;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        static char msg[] = "{\"error\":\"method not allowed\"}\n";
        return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, "application/json", msg, strlen(msg), 0);
    }
    /* GET has no body: answer on the first call (no upload rounds) */
    if (*upload_len) {
        *upload_len = 0;
        return MHD_YES;
    }
    (void)state;
    int64_t now = wm_mono_ms();
    if (!strcmp(url, "/metrics")) {
        char *text = NULL;
        size_t len = 0;
        inf_error err = {0};
        if (wm_render(h->m, now, &text, &len, &err) != 0) {
            static char msg[] = "out of memory\n";
            return reply(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "text/plain", msg, strlen(msg), 0);
        }
        return reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", text, len, 1);
    }
    char body[512];
    if (!strcmp(url, "/healthz") || !strcmp(url, "/readyz")) {
        int code = url[1] == 'h' ? wm_healthz(h->m, now, body, sizeof body) : wm_readyz(h->m, now, body, sizeof body);
        return reply(c, (unsigned)code, "application/json", body, strlen(body), 0);
    }
    if (!strcmp(url, "/")) {
        static char idx[] = "inferno-worker: /metrics /healthz /readyz\n";
        return reply(c, MHD_HTTP_OK, "text/plain", idx, strlen(idx), 0);
    }
    static char nf[] = "{\"error\":\"not found\"}\n";
    return reply(c, MHD_HTTP_NOT_FOUND, "application/json", nf, strlen(nf), 0);
}

/* Splits "HOST:PORT" / "[V6]:PORT" into host (may become "") and port. */
static int split_addr(const char *addr, char *host, size_t hcap, char *port, size_t pcap) {
    const char *colon;
    if (addr[0] == '[') {
        const char *rb = strchr(addr, ']');
        if (!rb || rb[1] != ':') return -1;
        if ((size_t)(rb - addr - 1) >= hcap) return -1;
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

int whttp_start(whttp **out, const char *addr, wmetrics *m, inf_error *err) {
    *out = NULL;
    char host[256], port[16];
    if (split_addr(addr, host, sizeof host, port, sizeof port) != 0)
        return inf_error_set(err, INF_EINVAL, "--metrics-addr: '%s' is not HOST:PORT", addr);
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int gai = getaddrinfo(*host ? host : NULL, port, &hints, &ai);
    if (gai != 0 || !ai)
        return inf_error_set(err, INF_EINVAL, "--metrics-addr '%s': %s", addr, gai_strerror(gai));
    /* every interface: prefer IPv4 0.0.0.0, which works on hosts without IPv6 */
    struct addrinfo *pick = ai;
    if (!*host)
        for (struct addrinfo *p = ai; p; p = p->ai_next)
            if (p->ai_family == AF_INET) { pick = p; break; }
    whttp *h = calloc(1, sizeof *h);
    if (!h) {
        freeaddrinfo(ai);
        return inf_error_set(err, INF_ENOMEM, "out of memory");
    }
    h->m = m;
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD;
    if (pick->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    h->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h, MHD_OPTION_SOCK_ADDR, pick->ai_addr,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)64, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
                            MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!h->d) {
        free(h);
        return inf_error_set(err, INF_EIO, "--metrics-addr: cannot listen on %s (in use? pass another HOST:PORT, "
                             "or \"off\")", addr);
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = di ? di->port : atoi(port);
    *out = h;
    return 0;
}

int whttp_port(const whttp *h) { return h ? h->port : 0; }

void whttp_stop(whttp *h) {
    if (!h) return;
    if (h->d) MHD_stop_daemon(h->d);
    free(h);
}
