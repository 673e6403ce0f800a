/* test_metrics.c - suite "metrics": the worker's /metrics, /healthz and
 * /readyz (worker/metrics.c, worker/http.c) and its JSON logs.
 *
 *   - in process: the HTTP server on a free port over a wmetrics state:
 *     health/readiness transitions (starting, ready, draining, stalled,
 *     Redis away), 404/405, and a rendered exposition parsed line by line;
 *   - end to end: bin/inferno-worker against a real redis-server and the
 *     mock Kafka cluster (tests/test_worker_harness.h), scraped before,
 *     during and after load; every line parsed (HELP/TYPE/sample syntax,
 *     histogram buckets monotone, _count == +Inf bucket), counters only
 *     grow and count what was sent; /readyz 503 while draining after
 *     SIGTERM; every log line is a JSON object and no line per token.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <math.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "http.h"
#include "metrics.h"
#include "test_worker_harness.h"
#include "tools/json.h"

/* ---- a tiny HTTP/1.0 client (loopback, bounded) --------------------------- */

/* GET path from 127.0.0.1:port; returns the status (or -1) and the body
 * (malloc'd, NUL-terminated) in *body when body is not NULL. */
static int http_get(int port, const char *method, const char *path, char **body) {
    if (body) *body = NULL;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    char req[256];
    int n = snprintf(req, sizeof req, "%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", method, path);
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        return -1;
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (len + 4096 > cap) buf = realloc(buf, cap *= 2);
        ssize_t r = read(fd, buf + len, cap - len - 1);
        if (r <= 0) break;
        len += (size_t)r;
    }
    close(fd);
    buf[len] = '\0';
    int status = -1;
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1) status = -1;
    char *b = strstr(buf, "\r\n\r\n");
    if (body) *body = strdup(b ? b + 4 : "");
    free(buf);
    return status;
}

/* ---- Prometheus text format 0.0.4 parser ---------------------------------- */

#define PM_MAX 4096

typedef struct pm_sample {
    char name[128];
    char labels[384]; /* canonical "k=v,k=v" without le */
    char le[32];      /* "" when none */
    double v;
} pm_sample;

typedef struct pm_family {
    char name[128];
    char type[16];
    int has_help;
} pm_family;

typedef struct pm {
    pm_sample s[PM_MAX];
    int n;
    pm_family f[512];
    int nf;
    char err[256];
} pm;

static int pm_name_ok(const char *p, size_t n) {
    if (!n || !(isalpha((unsigned char)p[0]) || p[0] == '_' || p[0] == ':')) return 0;
    for (size_t i = 1; i < n; i++)
        if (!(isalnum((unsigned char)p[i]) || p[i] == '_' || p[i] == ':')) return 0;
    return 1;
}

static pm_family *pm_family_get(pm *m, const char *name) {
    for (int i = 0; i < m->nf; i++)
        if (!strcmp(m->f[i].name, name)) return &m->f[i];
    return NULL;
}

/* The family a sample belongs to (histogram suffixes stripped). */
static pm_family *pm_family_of(pm *m, const char *sample) {
    pm_family *f = pm_family_get(m, sample);
    if (f) return f;
    static const char *suf[] = {"_bucket", "_sum", "_count"};
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(sample), k = strlen(suf[i]);
        if (n > k && !strcmp(sample + n - k, suf[i])) {
            char base[128];
            snprintf(base, sizeof base, "%.*s", (int)(n - k), sample);
            f = pm_family_get(m, base);
            if (f && !strcmp(f->type, "histogram")) return f;
        }
    }
    return NULL;
}

static int pm_fail(pm *m, int line, const char *why) {
    snprintf(m->err, sizeof m->err, "line %d: %s", line, why);
    return -1;
}

/* Parses the whole exposition; -1 with m->err on the first bad line. */
static int pm_parse(pm *m, const char *text) {
    memset(m, 0, sizeof *m);
    int lineno = 0;
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        if (!nl) return pm_fail(m, lineno + 1, "last line without newline");
        size_t len = (size_t)(nl - p);
        char line[1024];
        if (len >= sizeof line) return pm_fail(m, lineno + 1, "line too long");
        memcpy(line, p, len);
        line[len] = '\0';
        p = nl + 1;
        lineno++;
        if (!len) continue;
        if (line[0] == '#') {
            char kw[8], name[128];
            int off = 0;
            if (sscanf(line, "# %7s %127s %n", kw, name, &off) < 2) continue; /* a plain comment */
            if (!strcmp(kw, "HELP") || !strcmp(kw, "TYPE")) {
                if (!pm_name_ok(name, strlen(name))) return pm_fail(m, lineno, "bad metric name in HELP/TYPE");
                pm_family *f = pm_family_get(m, name);
                if (!f) {
                    if (m->nf == 512) return pm_fail(m, lineno, "too many families");
                    f = &m->f[m->nf++];
                    snprintf(f->name, sizeof f->name, "%s", name);
                }
                if (!strcmp(kw, "HELP")) {
                    if (f->has_help) return pm_fail(m, lineno, "second HELP");
                    f->has_help = 1;
                } else {
                    const char *t = line + off;
                    if (f->type[0]) return pm_fail(m, lineno, "second TYPE");
                    if (strcmp(t, "counter") && strcmp(t, "gauge") && strcmp(t, "histogram") && strcmp(t, "summary") &&
                        strcmp(t, "untyped"))
                        return pm_fail(m, lineno, "unknown TYPE");
                    for (int i = 0; i < m->n; i++)
                        if (pm_family_of(m, m->s[i].name) == f) return pm_fail(m, lineno, "TYPE after samples");
                    snprintf(f->type, sizeof f->type, "%s", t);
                }
            }
            continue;
        }
        if (m->n == PM_MAX) return pm_fail(m, lineno, "too many samples");
        pm_sample *s = &m->s[m->n];
        memset(s, 0, sizeof *s);
        size_t i = 0;
        while (i < len && line[i] != '{' && line[i] != ' ') i++;
        if (!pm_name_ok(line, i) || i >= sizeof s->name) return pm_fail(m, lineno, "bad sample name");
        memcpy(s->name, line, i);
        if (line[i] == '{') {
            i++;
            size_t lo = 0;
            while (line[i] != '}') {
                size_t k = i;
                while (isalnum((unsigned char)line[i]) || line[i] == '_') i++;
                if (i == k || line[i] != '=' || line[i + 1] != '"') return pm_fail(m, lineno, "bad label");
                char lname[64], lval[256];
                snprintf(lname, sizeof lname, "%.*s", (int)(i - k), line + k);
                i += 2;
                size_t vn = 0;
                while (line[i] && line[i] != '"') {
                    if (line[i] == '\\') {
                        i++;
                        if (line[i] != '\\' && line[i] != '"' && line[i] != 'n')
                            return pm_fail(m, lineno, "bad escape in label value");
                    }
                    if (!line[i]) return pm_fail(m, lineno, "unterminated label value");
                    if (vn + 1 < sizeof lval) lval[vn++] = line[i];
                    i++;
                }
                if (line[i] != '"') return pm_fail(m, lineno, "unterminated label value");
                lval[vn] = '\0';
                i++;
                if (!strcmp(lname, "le")) snprintf(s->le, sizeof s->le, "%.31s", lval);
                else lo += (size_t)snprintf(s->labels + lo, sizeof s->labels - lo, "%s%s=%s", lo ? "," : "", lname, lval);
                if (line[i] == ',') i++;
                else if (line[i] != '}') return pm_fail(m, lineno, "expected , or }");
            }
            i++;
        }
        if (line[i] != ' ') return pm_fail(m, lineno, "expected a space before the value");
        const char *v = line + i + 1;
        char *end;
        if (!strcmp(v, "+Inf")) s->v = INFINITY;
        else if (!strcmp(v, "-Inf")) s->v = -INFINITY;
        else if (!strcmp(v, "NaN")) s->v = NAN;
        else {
            s->v = strtod(v, &end);
            if (end == v || (*end && *end != ' ')) return pm_fail(m, lineno, "bad value");
        }
        pm_family *f = pm_family_of(m, s->name);
        if (!f || !f->type[0]) return pm_fail(m, lineno, "sample without a TYPE");
        if (!strcmp(f->type, "counter") && (!(s->v >= 0) || strlen(s->name) < 7 ||
                                           strcmp(s->name + strlen(s->name) - 6, "_total")))
            return pm_fail(m, lineno, "counter must be >= 0 and named *_total");
        if (!strcmp(f->type, "histogram") && !strcmp(s->name, f->name))
            return pm_fail(m, lineno, "histogram sample without _bucket/_sum/_count");
        m->n++;
    }
    /* histograms: buckets ascending in le, cumulative counts non-decreasing,
     * the last le is +Inf and equals _count; _sum present */
    for (int fi = 0; fi < m->nf; fi++) {
        pm_family *f = &m->f[fi];
        if (strcmp(f->type, "histogram")) continue;
        char bname[160], cname[160], sname[160];
        snprintf(bname, sizeof bname, "%s_bucket", f->name);
        snprintf(cname, sizeof cname, "%s_count", f->name);
        snprintf(sname, sizeof sname, "%s_sum", f->name);
        int nb = 0, has_sum = 0, has_count = 0;
        double prev_le = -INFINITY, prev_c = 0, inf_c = -1, count = -2;
        for (int i = 0; i < m->n; i++) {
            const pm_sample *s = &m->s[i];
            if (!strcmp(s->name, bname)) {
                if (!s->le[0]) return pm_fail(m, 0, "bucket without le");
                double le = !strcmp(s->le, "+Inf") ? INFINITY : strtod(s->le, NULL);
                if (!(le > prev_le) || s->v < prev_c) {
                    snprintf(m->err, sizeof m->err, "%s: buckets not monotone at le=%s", f->name, s->le);
                    return -1;
                }
                prev_le = le;
                prev_c = s->v;
                if (isinf(le)) inf_c = s->v;
                nb++;
            } else if (!strcmp(s->name, cname)) {
                count = s->v;
                has_count = 1;
            } else if (!strcmp(s->name, sname)) {
                has_sum = 1;
            }
        }
        if (!nb || !has_sum || !has_count || inf_c != count) {
            snprintf(m->err, sizeof m->err, "%s: +Inf bucket %g vs _count %g (sum %d)", f->name, inf_c, count, has_sum);
            return -1;
        }
    }
    return 0;
}

/* Value of sample name{labels} (labels canonical, "" for none); NAN if absent. */
static double pm_get(const pm *m, const char *name, const char *labels) {
    for (int i = 0; i < m->n; i++)
        if (!strcmp(m->s[i].name, name) && !strcmp(m->s[i].labels, labels) && !m->s[i].le[0]) return m->s[i].v;
    return NAN;
}

/* Sum over every sample called name (any labels). */
static double pm_sum(const pm *m, const char *name) {
    double t = 0;
    for (int i = 0; i < m->n; i++)
        if (!strcmp(m->s[i].name, name)) t += m->s[i].v;
    return t;
}

/* Every counter sample and histogram bucket/count of a is <= its value in b
 * (counters never go down between scrapes). Returns how many went down. */
static int pm_decreases(const pm *a, const pm *b) {
    int bad = 0;
    for (int i = 0; i < a->n; i++) {
        const pm_sample *s = &a->s[i];
        size_t n = strlen(s->name);
        int mono = (n > 6 && !strcmp(s->name + n - 6, "_total")) || (n > 7 && !strcmp(s->name + n - 7, "_bucket")) ||
                   (n > 6 && !strcmp(s->name + n - 6, "_count"));
        if (!mono) continue;
        for (int j = 0; j < b->n; j++)
            if (!strcmp(b->s[j].name, s->name) && !strcmp(b->s[j].labels, s->labels) && !strcmp(b->s[j].le, s->le)) {
                if (b->s[j].v < s->v) {
                    fprintf(stderr, "\n    %s{%s%s} went down: %g -> %g\n", s->name, s->labels, s->le, s->v, b->s[j].v);
                    bad++;
                }
                break;
            }
    }
    return bad;
}

static pm *scrape(int port) {
    char *body = NULL;
    int st = http_get(port, "GET", "/metrics", &body);
    CU_ASSERT_EQUAL(st, 200);
    if (st != 200) {
        free(body);
        return NULL;
    }
    pm *m = malloc(sizeof *m);
    if (pm_parse(m, body) != 0) {
        CU_FAIL("the exposition does not parse");
        fprintf(stderr, "\n    /metrics: %s\n", m->err);
        free(m);
        m = NULL;
    }
    free(body);
    return m;
}

/* ---- in process ------------------------------------------------------------- */

static void test_health_states(void) {
    wmetrics *m = NULL;
    inf_error err = {0};
    wm_info info = {.worker_id = "t\"w", .version = "0.0", .model = "m.gguf", .n_topics = 3,
                    .topics = {"a", "b", "c"}, .max_model_len = 1000, .stall_ms = 1000};
    CU_ASSERT_EQUAL_FATAL(wm_create(&m, &info, &err), 0);
    whttp *h = NULL;
    CU_ASSERT_EQUAL_FATAL(whttp_start(&h, "127.0.0.1:0", m, &err), 0);
    int port = whttp_port(h);
    CU_ASSERT(port > 0);
    /* a second server on the same port fails with a clear message */
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    whttp *h2 = NULL;
    CU_ASSERT_EQUAL(whttp_start(&h2, addr, m, &err), INF_EIO);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, addr));
    CU_ASSERT_EQUAL(whttp_start(&h2, "no-port", m, &err), INF_EINVAL);
    CU_ASSERT(whttp_addr_disabled("off") && whttp_addr_disabled("") && !whttp_addr_disabled("0.0.0.0:9400"));

    char *body = NULL;
    /* starting (model loading): alive, not ready */
    CU_ASSERT_EQUAL(http_get(port, "GET", "/healthz", &body), 200);
    CU_ASSERT_PTR_NOT_NULL(body && strstr(body, "\"status\":\"ok\""));
    free(body);
    CU_ASSERT_EQUAL(http_get(port, "GET", "/readyz", &body), 503);
    CU_ASSERT_PTR_NOT_NULL(body && strstr(body, "\"ready\":false"));
    free(body);

    wm_gauges g;
    memset(&g, 0, sizeof g);
    g.state = "ready";
    g.model_loaded = 1;
    g.kafka.assigned = 3;
    g.heartbeat_ok = 1;
    g.backend = "cpu";
    g.device = "cpu \"x\"\n";
    wm_loop_tick(m, wm_mono_ms());
    wm_update(m, &g);
    CU_ASSERT_EQUAL(http_get(port, "GET", "/readyz", &body), 200);
    json_value v;
    CU_ASSERT_EQUAL_FATAL(json_parse(body, strlen(body), &v, &err), 0);
    CU_ASSERT(json_get(&v, "ready") && json_get(&v, "ready")->boolean);
    CU_ASSERT(json_get(&v, "kafka_partitions_assigned") && json_get(&v, "kafka_partitions_assigned")->number == 3);
    json_free(&v);
    free(body);
    /* no partitions, Redis away (pending output and no connection), draining: 503 each */
    g.kafka.assigned = 0;
    wm_update(m, &g);
    CU_ASSERT_EQUAL(http_get(port, "GET", "/readyz", NULL), 503);
    g.kafka.assigned = 3;
    g.redis.pending_entries = 5;
    wm_update(m, &g);
    CU_ASSERT_EQUAL(http_get(port, "GET", "/readyz", NULL), 503);
    g.redis.connected = 1;
    wm_update(m, &g);
    CU_ASSERT_EQUAL(http_get(port, "GET", "/readyz", NULL), 200);
    g.state = "draining";
    wm_update(m, &g);
    CU_ASSERT_EQUAL(http_get(port, "GET", "/readyz", &body), 503);
    CU_ASSERT_PTR_NOT_NULL(body && strstr(body, "\"draining\":true"));
    free(body);
    CU_ASSERT_EQUAL(http_get(port, "GET", "/healthz", NULL), 200);
    /* the loop stalled for longer than stall_ms: not healthy */
    wm_loop_tick(m, wm_mono_ms() - 5000);
    CU_ASSERT_EQUAL(http_get(port, "GET", "/healthz", &body), 503);
    CU_ASSERT_PTR_NOT_NULL(body && strstr(body, "\"status\":\"stalled\""));
    free(body);
    CU_ASSERT_EQUAL(http_get(port, "GET", "/nope", NULL), 404);
    CU_ASSERT_EQUAL(http_get(port, "POST", "/metrics", NULL), 405);

    /* the exposition parses, escapes label values, and histograms add up */
    wm_request_final(m, 0, WM_DONE);
    wm_request_final(m, 2, WM_DLQ);
    wm_observe_finished(m, 1.0, 25.0, 700.0, 37, 120);
    wm_observe_finished(m, 2.0, 5000.0, 99999999.0, 3000, 0);
    wm_observe_itl(m, 30.0, 3);
    wm_observe_publish(m, 0.7);
    pm *p = scrape(port);
    if (p) {
        CU_ASSERT_EQUAL(pm_get(p, "inferno_requests_total", "priority=high,outcome=done"), 1);
        CU_ASSERT_EQUAL(pm_get(p, "inferno_requests_total", "priority=low,outcome=dlq"), 1);
        CU_ASSERT_EQUAL(pm_get(p, "inferno_requests_total", "priority=normal,outcome=abort"), 0);
        CU_ASSERT_EQUAL(pm_get(p, "inferno_e2e_request_latency_seconds_count", ""), 2);
        CU_ASSERT_EQUAL(pm_get(p, "inferno_inter_token_latency_seconds_count", ""), 3);
        CU_ASSERT_EQUAL(pm_get(p, "inferno_redis_publish_latency_seconds_count", ""), 1);
        CU_ASSERT_EQUAL(pm_get(p, "inferno_worker_state", "state=draining"), 1);
        CU_ASSERT_EQUAL(pm_get(p, "inferno_info", "worker_id=t\"w,version=0.0,model=m.gguf,backend=cpu,device=cpu \"x\"n"),
                        1);
        /* 1-2-5 token buckets up to max_model_len (1000), as vLLM's */
        int nb = 0;
        for (int i = 0; i < p->n; i++)
            if (!strcmp(p->s[i].name, "inferno_request_prompt_tokens_bucket")) nb++;
        CU_ASSERT_EQUAL(nb, 11); /* 1 2 5 10 20 50 100 200 500 1000 +Inf */
        free(p);
    }
    /* the parser itself rejects what it must */
    pm *bad = malloc(sizeof *bad);
    CU_ASSERT_NOT_EQUAL(pm_parse(bad, "x 1\n"), 0); /* no TYPE */
    CU_ASSERT_NOT_EQUAL(pm_parse(bad, "# TYPE x_total counter\nx_total -1\n"), 0);
    CU_ASSERT_NOT_EQUAL(pm_parse(bad, "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\n"
                                      "h_sum 1\nh_count 1\n"), 0);
    CU_ASSERT_NOT_EQUAL(pm_parse(bad, "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n"), 0);
    CU_ASSERT_EQUAL(pm_parse(bad, "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 2\n"), 0);
    free(bad);
    whttp_stop(h);
    wm_free(m);
}

/* ---- end to end ---------------------------------------------------------------- */

static int wait_http(int port, const char *path, int want, int ms) {
    long long end = wh_now_ms() + ms;
    for (;;) {
        if (http_get(port, "GET", path, NULL) == want) return 0;
        if (wh_now_ms() > end) return -1;
        wh_sleep_ms(50);
    }
}

static void test_worker_metrics(void) {
    wh h;
    int f0 = (int)CU_get_number_of_failures();
    if (wh_setup(&h, 2, 1)) {
        wh_teardown(&h);
        return;
    }
    int port = tu_free_port();
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    const char *extra[] = {"--metrics-addr", addr, "--log-format", "json", "--heartbeat-ms", "300",
                           "--max-num-seqs", "4", "--drain-timeout-s", "60", NULL};
    int w = wh_worker_start(&h, "metrics-w", extra);
    CU_ASSERT_FATAL(w >= 0);
    CU_ASSERT_EQUAL(wh_wait_status(&h, "metrics-w", "ready", 30000), 0);
    CU_ASSERT_EQUAL(wait_http(port, "/readyz", 200, 20000), 0);
    CU_ASSERT_EQUAL(http_get(port, "GET", "/healthz", NULL), 200);
    pm *s0 = scrape(port);

    /* load: 3 per topic, long enough to be scraped mid-way, plus one bad message */
    const char *topics[] = {WH_TOPIC_H, WH_TOPIC_N, WH_TOPIC_L};
    for (int i = 0; i < 9; i++) {
        char id[32];
        snprintf(id, sizeof id, "met-%d", i);
        inf_request r;
        wh_req(&r, id, "once upon a time", 400);
        r.ignore_eos = 1;
        CU_ASSERT_EQUAL(wh_send(&h, topics[i % 3], &r), 0);
    }
    CU_ASSERT_EQUAL(wh_produce_raw(&h, WH_TOPIC_L, "junk", "\x02\xff\xff garbage", 11), 0);
    CU_ASSERT_EQUAL(wh_flush(&h), 0);
    CU_ASSERT_EQUAL(wh_wait_tokens(&h, "met-0", 30000), 0);
    /* during load (the snapshot lags by up to 100 ms: wait for it to show work) */
    pm *s1 = NULL;
    for (long long until = wh_now_ms() + 10000;;) {
        free(s1);
        s1 = scrape(port);
        if (!s1 || wh_now_ms() > until) break;
        if (pm_get(s1, "inferno_num_requests_running", "") > 0 && pm_get(s1, "inferno_generation_tokens_total", "") > 0)
            break;
        wh_sleep_ms(20);
    }
    int answered = 0;
    for (int i = 0; i < 9; i++) {
        char id[32];
        snprintf(id, sizeof id, "met-%d", i);
        wh_stream st;
        if (wh_wait_final(&h, id, 60000, &st) == 0 && st.n_done == 1) answered++;
        wh_stream_free(&st);
    }
    CU_ASSERT_EQUAL(answered, 9);
    /* the snapshot is refreshed every 100 ms and acks follow the entries */
    long long end = wh_now_ms() + 10000;
    pm *s2 = NULL;
    for (;;) {
        free(s2);
        s2 = scrape(port);
        if (!s2 || wh_now_ms() > end) break;
        if (pm_sum(s2, "inferno_requests_total") >= 10 && pm_get(s2, "inferno_requests_in_flight", "") == 0) break;
        wh_sleep_ms(100);
    }
    if (s0 && s1 && s2) {
        CU_ASSERT_EQUAL(pm_decreases(s0, s1), 0);
        CU_ASSERT_EQUAL(pm_decreases(s1, s2), 0);
        CU_ASSERT_EQUAL(pm_sum(s0, "inferno_requests_total"), 0);
        CU_ASSERT(pm_get(s1, "inferno_generation_tokens_total", "") > 0);
        CU_ASSERT(pm_get(s1, "inferno_num_requests_running", "") > 0);
        CU_ASSERT(pm_get(s1, "inferno_kv_cache_usage_perc", "") > 0);
        static const char *pri[] = {"high", "normal", "low"};
        for (int t = 0; t < 3; t++) {
            char l[64];
            snprintf(l, sizeof l, "priority=%s,outcome=done", pri[t]);
            CU_ASSERT_EQUAL(pm_get(s2, "inferno_requests_total", l), 3);
        }
        CU_ASSERT_EQUAL(pm_get(s2, "inferno_requests_total", "priority=low,outcome=dlq"), 1);
        CU_ASSERT_EQUAL(pm_get(s2, "inferno_e2e_request_latency_seconds_count", ""), 9);
        CU_ASSERT_EQUAL(pm_get(s2, "inferno_time_to_first_token_seconds_count", ""), 9);
        CU_ASSERT_EQUAL(pm_get(s2, "inferno_request_generation_tokens_sum", ""), 9 * 400);
        CU_ASSERT_EQUAL(pm_get(s2, "inferno_inter_token_latency_seconds_count", ""), 9 * 399);
        CU_ASSERT(pm_get(s2, "inferno_generation_tokens_total", "") >= 9 * 400);
        CU_ASSERT(pm_get(s2, "inferno_redis_publish_latency_seconds_count", "") >= 9);
        CU_ASSERT(pm_get(s2, "inferno_redis_entries_written_total", "") > pm_get(s1, "inferno_redis_entries_written_total", ""));
        CU_ASSERT_EQUAL(pm_get(s2, "inferno_kafka_partitions_assigned", ""), 6);
        CU_ASSERT_EQUAL(pm_get(s2, "inferno_requests_in_flight", ""), 0);
        CU_ASSERT_EQUAL(pm_get(s2, "inferno_kafka_dlq_messages_total", ""), 1);
        CU_ASSERT(pm_get(s2, "inferno_heartbeat_age_seconds", "") < 5);
        CU_ASSERT_EQUAL(pm_get(s2, "inferno_worker_state", "state=ready"), 1);
        int lag_series = 0;
        for (int i = 0; i < s2->n; i++)
            if (!strcmp(s2->s[i].name, "inferno_kafka_partition_paused")) lag_series++;
        CU_ASSERT_EQUAL(lag_series, 6);
    }
    free(s0);
    free(s1);
    free(s2);

    /* SIGTERM with a long request in flight: not ready while draining, still alive */
    inf_request r;
    wh_req(&r, "met-long", "the sky", 1500);
    r.ignore_eos = 1;
    CU_ASSERT_EQUAL(wh_send(&h, WH_TOPIC_H, &r), 0);
    CU_ASSERT_EQUAL(wh_flush(&h), 0);
    CU_ASSERT_EQUAL(wh_wait_tokens(&h, "met-long", 30000), 0);
    wh_worker_signal(&h, w, SIGTERM);
    CU_ASSERT_EQUAL(wait_http(port, "/readyz", 503, 5000), 0);
    char *body = NULL;
    CU_ASSERT_EQUAL(http_get(port, "GET", "/readyz", &body), 503);
    /* still draining (the request is generating) or already stopped */
    CU_ASSERT_PTR_NOT_NULL(body && (strstr(body, "\"state\":\"draining\"") || strstr(body, "\"state\":\"stopped\"")));
    free(body);
    int hz = http_get(port, "GET", "/healthz", NULL);
    CU_ASSERT(hz == 200 || hz == -1); /* -1: it finished and exited meanwhile */
    CU_ASSERT_EQUAL(wh_wait_exit(h.workers[w].pid, 60000), 0);
    h.workers[w].pid = 0;
    wh_stream st;
    CU_ASSERT_EQUAL(wh_wait_final(&h, "met-long", 1000, &st), 0);
    CU_ASSERT_STRING_EQUAL(st.finish, "length");
    wh_stream_free(&st);

    /* logs: every line a JSON object with ts/level/msg; no line per token */
    char *log = tu_read_file(h.workers[w].log, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(log);
    int lines = 0, bad = 0, with_id = 0;
    for (char *p = log, *nl; *p; p = nl + 1) {
        nl = strchr(p, '\n');
        if (!nl) break;
        json_value v;
        inf_error err = {0};
        if (json_parse(p, (size_t)(nl - p), &v, &err) != 0 || v.type != JSON_OBJECT || !json_get(&v, "ts") ||
            !json_get(&v, "level") || !json_get(&v, "msg")) {
            if (bad++ < 3) fprintf(stderr, "\n    not a JSON log line: %.*s\n", (int)(nl - p), p);
        } else {
            const json_value *rid = json_get(&v, "request_id");
            if (rid && !strcmp(rid->str, "met-long")) with_id++;
            json_free(&v);
        }
        lines++;
    }
    free(log);
    CU_ASSERT(lines > 5);
    CU_ASSERT_EQUAL(bad, 0);
    /* started + done (1500 tokens, none logged one by one at info) */
    CU_ASSERT(with_id >= 2 && with_id <= 4);
    if ((int)CU_get_number_of_failures() > f0) wh_print_log(&h, w, 30);
    wh_teardown(&h);
}

void test_register_metrics(void) {
    CU_pSuite s = CU_add_suite("metrics", NULL, NULL);
    CU_add_test(s, "health_states_and_exposition", test_health_states);
    CU_add_test(s, "worker_scrape_drain_logs", test_worker_metrics);
}
