/* gw_metrics.c - see gw_metrics.h. */
#include "gw_metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SERIES 256
#define N_BUCKETS 14

static const double BUCKETS[N_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                          0.1,    0.25,  0.5,    1,     2.5,  10,    60};

typedef struct hist {
    long long b[N_BUCKETS + 1];
    double sum;
    long long n;
} hist;

typedef struct series {
    char route[32];
    int status, priority;
    long long n;
} series;

struct gw_metrics {
    pthread_mutex_t mu;
    series s[MAX_SERIES];
    int n_s;
    hist ttfb, dur;
    long long in_flight, cancels;
    long long rej[4];
};

static const char *REASONS[4] = {"rate", "streams", "queue", "no_worker"};
static const char *PRIOS[4] = {"high", "normal", "low", "none"};

gw_metrics *gw_metrics_create(void) {
    gw_metrics *m = calloc(1, sizeof *m);
    if (m) pthread_mutex_init(&m->mu, NULL);
    return m;
}

void gw_metrics_free(gw_metrics *m) {
    if (!m) return;
    pthread_mutex_destroy(&m->mu);
    free(m);
}

void gw_metrics_request(gw_metrics *m, const char *route, int status, int priority) {
    if (priority < 0 || priority > 2) priority = 3;
    pthread_mutex_lock(&m->mu);
    int i = 0;
    while (i < m->n_s && (m->s[i].status != status || m->s[i].priority != priority || strcmp(m->s[i].route, route)))
        i++;
    if (i == m->n_s && m->n_s < MAX_SERIES) {
        snprintf(m->s[i].route, sizeof m->s[i].route, "%s", route);
        m->s[i].status = status;
        m->s[i].priority = priority;
        m->n_s++;
    }
    if (i < m->n_s) m->s[i].n++;
    pthread_mutex_unlock(&m->mu);
}

static void observe(hist *h, double x) {
    int k = 0;
    while (k < N_BUCKETS && x > BUCKETS[k]) k++;
    h->b[k]++;
    h->sum += x;
    h->n++;
}

void gw_metrics_ttfb(gw_metrics *m, double s) {
    pthread_mutex_lock(&m->mu);
    observe(&m->ttfb, s);
    pthread_mutex_unlock(&m->mu);
}

void gw_metrics_stream_done(gw_metrics *m, double s) {
    pthread_mutex_lock(&m->mu);
    observe(&m->dur, s);
    pthread_mutex_unlock(&m->mu);
}

void gw_metrics_in_flight(gw_metrics *m, int d) {
    pthread_mutex_lock(&m->mu);
    m->in_flight += d;
    pthread_mutex_unlock(&m->mu);
}

void gw_metrics_rejected(gw_metrics *m, const char *reason) {
    pthread_mutex_lock(&m->mu);
    for (int i = 0; i < 4; i++)
        if (!strcmp(reason, REASONS[i])) m->rej[i]++;
    pthread_mutex_unlock(&m->mu);
}

void gw_metrics_cancel(gw_metrics *m, int n) {
    pthread_mutex_lock(&m->mu);
    m->cancels += n;
    pthread_mutex_unlock(&m->mu);
}

static void render_hist(gw_buf *o, const char *name, const char *help, const hist *h) {
    gw_buf_printf(o, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    long long cum = 0;
    for (int k = 0; k < N_BUCKETS; k++) {
        cum += h->b[k];
        gw_buf_printf(o, "%s_bucket{le=\"%g\"} %lld\n", name, BUCKETS[k], cum);
    }
    cum += h->b[N_BUCKETS];
    gw_buf_printf(o, "%s_bucket{le=\"+Inf\"} %lld\n%s_sum %.6f\n%s_count %lld\n", name, cum, name, h->sum, name, h->n);
}

void gw_metrics_render(gw_metrics *m, gw_buf *o) {
    pthread_mutex_lock(&m->mu);
    gw_buf_puts(o, "# HELP inferno_gateway_requests_total HTTP requests answered, by route, status and priority.\n"
                   "# TYPE inferno_gateway_requests_total counter\n");
    for (int i = 0; i < m->n_s; i++)
        gw_buf_printf(o, "inferno_gateway_requests_total{route=\"%s\",status=\"%d\",priority=\"%s\"} %lld\n",
                      m->s[i].route, m->s[i].status, PRIOS[m->s[i].priority], m->s[i].n);
    render_hist(o, "inferno_gateway_ttfb_seconds", "Request body received to the first byte of a 200 answer.",
                &m->ttfb);
    render_hist(o, "inferno_gateway_stream_duration_seconds", "First byte to the end of a streamed answer.",
                &m->dur);
    gw_buf_printf(o, "# HELP inferno_gateway_in_flight Requests in progress.\n# TYPE inferno_gateway_in_flight gauge\n"
                     "inferno_gateway_in_flight %lld\n", m->in_flight);
    gw_buf_puts(o, "# HELP inferno_gateway_rejected_total Requests refused with 429 or 503, by reason.\n"
                   "# TYPE inferno_gateway_rejected_total counter\n");
    for (int i = 0; i < 4; i++)
        gw_buf_printf(o, "inferno_gateway_rejected_total{reason=\"%s\"} %lld\n", REASONS[i], m->rej[i]);
    gw_buf_printf(o, "# HELP inferno_gateway_cancels_total Requests cancelled on the queue (client gone, timeout).\n"
                     "# TYPE inferno_gateway_cancels_total counter\ninferno_gateway_cancels_total %lld\n", m->cancels);
    pthread_mutex_unlock(&m->mu);
}
