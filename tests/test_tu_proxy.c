/* test_tu_proxy.c - the fault-injecting TCP proxy of tests/tu_proxy.h and
 * its own suite "tu_proxy" (forwarding, each fault, Kafka address rewrite,
 * against a real redis-server and the librdkafka mock cluster). */
#include "tu_proxy.h"

#include <CUnit/CUnit.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include "tu_redis.h"

#define PX_MAX_CONNS 64
#define PX_LOSE_CLOSE_MS 200

typedef struct px_buf {
    uint8_t *p;
    size_t len, cap;
} px_buf;

typedef struct px_conn {
    int cfd, ufd;        /* client side, upstream side; -1 when unused */
    int lose;            /* swallow upstream bytes from now on */
    long long close_at;  /* ms; 0: none */
    px_buf up, down;     /* Kafka: partial frames not yet forwarded */
} px_conn;

struct tu_proxy {
    tu_proxy_kind kind;
    int upstream_port, port, lfd;
    int wake[2];
    pthread_t thread;
    pthread_mutex_t mu;
    /* settings (mu) */
    int stop, refuse, pause, cut_req, cut_done;
    tu_proxy_action action;
    char needle[128];
    int api_key, armed, fired, accepted, n_open;
    px_conn conns[PX_MAX_CONNS];
    char addr[64], url[80];
};

static long long px_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void px_close(tu_proxy *p, px_conn *c) {
    if (c->cfd >= 0) close(c->cfd);
    if (c->ufd >= 0) close(c->ufd);
    free(c->up.p);
    free(c->down.p);
    memset(c, 0, sizeof *c);
    c->cfd = c->ufd = -1;
    p->n_open--;
}

static int px_write_all(int fd, const uint8_t *b, size_t n) {
    while (n) {
        /* MSG_NOSIGNAL: a peer that closed must not SIGPIPE the test process */
        ssize_t k = send(fd, b, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        b += k;
        n -= (size_t)k;
    }
    return 0;
}

static int px_append(px_buf *b, const uint8_t *d, size_t n) {
    if (b->len + n > b->cap) {
        size_t nc = b->cap ? b->cap : 65536;
        while (nc < b->len + n) nc *= 2;
        uint8_t *q = realloc(b->p, nc);
        if (!q) return -1;
        b->p = q;
        b->cap = nc;
    }
    memcpy(b->p + b->len, d, n);
    b->len += n;
    return 0;
}

static void px_consume(px_buf *b, size_t n) {
    memmove(b->p, b->p + n, b->len - n);
    b->len -= n;
}

static int px_connect_upstream(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void px_sockopts(int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval tv = {5, 0}; /* a client that stops reading cannot hang the proxy for good */
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

static void px_accept(tu_proxy *p) {
    int fd = accept(p->lfd, NULL, NULL);
    if (fd < 0) return;
    pthread_mutex_lock(&p->mu);
    int refuse = p->refuse;
    p->accepted++;
    pthread_mutex_unlock(&p->mu);
    int ufd = refuse ? -1 : px_connect_upstream(p->upstream_port);
    px_conn *c = NULL;
    for (int i = 0; i < PX_MAX_CONNS && ufd >= 0; i++)
        if (p->conns[i].cfd < 0) {
            c = &p->conns[i];
            break;
        }
    if (!c) {
        close(fd);
        if (ufd >= 0) close(ufd);
        return;
    }
    px_sockopts(fd);
    px_sockopts(ufd);
    c->cfd = fd;
    c->ufd = ufd;
    p->n_open++;
}

/* Takes the trigger if it is armed for this command (mu held by caller). */
static int px_take(tu_proxy *p) {
    if (p->armed <= 0) return 0;
    p->armed--;
    p->fired++;
    return p->action;
}

/* Responses carry broker addresses as a host string then an INT32 port:
 * "127.0.0.1" + port of the upstream broker becomes the proxy's port. */
static void px_rewrite(tu_proxy *p, uint8_t *b, size_t n) {
    static const char host[] = "127.0.0.1";
    const size_t hl = sizeof host - 1;
    uint8_t from[4], to[4];
    for (int i = 0; i < 4; i++) {
        from[i] = (uint8_t)((unsigned)p->upstream_port >> (24 - 8 * i));
        to[i] = (uint8_t)((unsigned)p->port >> (24 - 8 * i));
    }
    for (size_t i = 0; i + hl + 4 <= n; i++)
        if (!memcmp(b + i, host, hl) && !memcmp(b + i + hl, from, 4)) memcpy(b + i + hl, to, 4);
}

/* Client -> server bytes. Returns -1 when the connection is to be closed. */
static int px_from_client(tu_proxy *p, px_conn *c, const uint8_t *d, size_t n) {
    if (p->kind == TU_PROXY_RAW) {
        pthread_mutex_lock(&p->mu);
        int act = 0;
        const uint8_t *hit = NULL;
        if (p->armed > 0 && p->needle[0]) hit = memmem(d, n, p->needle, strlen(p->needle));
        if (hit) act = px_take(p);
        size_t half = hit ? (size_t)(hit - d) + strlen(p->needle) / 2 : 0;
        pthread_mutex_unlock(&p->mu);
        if (act == TU_PROXY_CUT_MIDWAY) {
            px_write_all(c->ufd, d, half);
            return -1;
        }
        if (px_write_all(c->ufd, d, n)) return -1;
        if (act == TU_PROXY_LOSE_REPLY) {
            c->lose = 1;
            c->close_at = px_now_ms() + PX_LOSE_CLOSE_MS;
        }
        return 0;
    }
    if (px_append(&c->up, d, n)) return -1;
    while (c->up.len >= 6) {
        uint32_t flen = (uint32_t)c->up.p[0] << 24 | (uint32_t)c->up.p[1] << 16 | (uint32_t)c->up.p[2] << 8 | c->up.p[3];
        size_t total = 4 + (size_t)flen;
        if (c->up.len < total) break;
        int api = (int)((unsigned)c->up.p[4] << 8 | c->up.p[5]);
        pthread_mutex_lock(&p->mu);
        int act = p->armed > 0 && p->api_key == api ? px_take(p) : 0;
        pthread_mutex_unlock(&p->mu);
        if (act == TU_PROXY_CUT_MIDWAY) {
            px_write_all(c->ufd, c->up.p, total / 2);
            return -1;
        }
        if (px_write_all(c->ufd, c->up.p, total)) return -1;
        px_consume(&c->up, total);
        if (act == TU_PROXY_LOSE_REPLY) {
            c->lose = 1;
            c->close_at = px_now_ms() + PX_LOSE_CLOSE_MS;
        }
    }
    return 0;
}

static int px_from_server(tu_proxy *p, px_conn *c, const uint8_t *d, size_t n) {
    if (c->lose) return 0;
    if (p->kind == TU_PROXY_RAW) return px_write_all(c->cfd, d, n);
    if (px_append(&c->down, d, n)) return -1;
    while (c->down.len >= 4) {
        uint32_t flen = (uint32_t)c->down.p[0] << 24 | (uint32_t)c->down.p[1] << 16 | (uint32_t)c->down.p[2] << 8 |
                        c->down.p[3];
        size_t total = 4 + (size_t)flen;
        if (c->down.len < total) break;
        px_rewrite(p, c->down.p + 4, flen);
        if (px_write_all(c->cfd, c->down.p, total)) return -1;
        px_consume(&c->down, total);
    }
    return 0;
}

static void *px_main(void *arg) {
    tu_proxy *p = arg;
    static uint8_t buf[1 << 16];
    for (;;) {
        pthread_mutex_lock(&p->mu);
        int stop = p->stop, pause = p->pause, cut = p->cut_req != p->cut_done;
        pthread_mutex_unlock(&p->mu);
        if (stop) break;
        if (cut) {
            for (int i = 0; i < PX_MAX_CONNS; i++)
                if (p->conns[i].cfd >= 0) px_close(p, &p->conns[i]);
            pthread_mutex_lock(&p->mu);
            p->cut_done = p->cut_req;
            pthread_mutex_unlock(&p->mu);
        }
        struct pollfd pf[2 + 2 * PX_MAX_CONNS];
        int map[2 + 2 * PX_MAX_CONNS];
        int n = 0;
        pf[n++] = (struct pollfd){.fd = p->wake[0], .events = POLLIN};
        pf[n++] = (struct pollfd){.fd = p->lfd, .events = POLLIN};
        long long now = px_now_ms();
        for (int i = 0; i < PX_MAX_CONNS; i++) {
            px_conn *c = &p->conns[i];
            if (c->cfd < 0) continue;
            if (c->close_at && now >= c->close_at) {
                px_close(p, c);
                continue;
            }
            if (pause) continue;
            map[n] = i;
            pf[n++] = (struct pollfd){.fd = c->cfd, .events = POLLIN};
            map[n] = i;
            pf[n++] = (struct pollfd){.fd = c->ufd, .events = POLLIN};
        }
        if (poll(pf, (nfds_t)n, 20) <= 0) continue;
        if (pf[0].revents) {
            char junk[64];
            while (read(p->wake[0], junk, sizeof junk) > 0) {}
        }
        if (pf[1].revents & POLLIN) px_accept(p);
        for (int k = 2; k < n; k++) {
            if (!pf[k].revents) continue;
            px_conn *c = &p->conns[map[k]];
            if (c->cfd < 0 || (pf[k].fd != c->cfd && pf[k].fd != c->ufd)) continue; /* closed this round */
            ssize_t got = read(pf[k].fd, buf, sizeof buf);
            int bad = got <= 0;
            if (!bad) bad = pf[k].fd == c->cfd ? px_from_client(p, c, buf, (size_t)got) : px_from_server(p, c, buf, (size_t)got);
            if (bad) px_close(p, c);
        }
    }
    for (int i = 0; i < PX_MAX_CONNS; i++)
        if (p->conns[i].cfd >= 0) px_close(p, &p->conns[i]);
    return NULL;
}

tu_proxy *tu_proxy_start(int upstream_port, tu_proxy_kind kind) {
    tu_proxy *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->kind = kind;
    p->upstream_port = upstream_port;
    for (int i = 0; i < PX_MAX_CONNS; i++) p->conns[i].cfd = p->conns[i].ufd = -1;
    pthread_mutex_init(&p->mu, NULL);
    p->lfd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(p->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (p->lfd < 0 || bind(p->lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(p->lfd, 64) != 0 ||
        getsockname(p->lfd, (struct sockaddr *)&a, &al) != 0 || pipe2(p->wake, O_NONBLOCK | O_CLOEXEC) != 0) {
        fprintf(stderr, "tu_proxy: cannot listen: %s\n", strerror(errno));
        if (p->lfd >= 0) close(p->lfd);
        free(p);
        return NULL;
    }
    p->port = ntohs(a.sin_port);
    snprintf(p->addr, sizeof p->addr, "127.0.0.1:%d", p->port);
    snprintf(p->url, sizeof p->url, "redis://127.0.0.1:%d", p->port);
    if (pthread_create(&p->thread, NULL, px_main, p) != 0) {
        close(p->lfd);
        close(p->wake[0]);
        close(p->wake[1]);
        free(p);
        return NULL;
    }
    return p;
}

static void px_wake(tu_proxy *p) {
    ssize_t k = write(p->wake[1], "x", 1);
    (void)k;
}

void tu_proxy_free(tu_proxy *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_mutex_unlock(&p->mu);
    px_wake(p);
    pthread_join(p->thread, NULL);
    close(p->lfd);
    close(p->wake[0]);
    close(p->wake[1]);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

int tu_proxy_port(const tu_proxy *p) { return p->port; }
const char *tu_proxy_addr(const tu_proxy *p) { return p->addr; }
const char *tu_proxy_redis_url(const tu_proxy *p) { return p->url; }

void tu_proxy_cut(tu_proxy *p) {
    pthread_mutex_lock(&p->mu);
    int want = ++p->cut_req;
    pthread_mutex_unlock(&p->mu);
    px_wake(p);
    for (long long end = px_now_ms() + 2000; px_now_ms() < end;) {
        pthread_mutex_lock(&p->mu);
        int done = p->cut_done >= want;
        pthread_mutex_unlock(&p->mu);
        if (done) return;
        usleep(2000);
    }
}

#define PX_SET(field, v)                                                                            \
    do {                                                                                            \
        pthread_mutex_lock(&p->mu);                                                                 \
        p->field = (v);                                                                             \
        pthread_mutex_unlock(&p->mu);                                                               \
        px_wake(p);                                                                                 \
    } while (0)

void tu_proxy_refuse(tu_proxy *p, int on) { PX_SET(refuse, on); }
void tu_proxy_pause(tu_proxy *p, int on) { PX_SET(pause, on); }

void tu_proxy_arm(tu_proxy *p, tu_proxy_action a, const char *needle, int api_key, int count) {
    pthread_mutex_lock(&p->mu);
    p->action = a;
    snprintf(p->needle, sizeof p->needle, "%s", needle ? needle : "");
    p->api_key = api_key;
    p->armed = count;
    pthread_mutex_unlock(&p->mu);
}

#define PX_GET(field)                                                                               \
    do {                                                                                            \
        tu_proxy *q = (tu_proxy *)p;                                                                \
        pthread_mutex_lock(&q->mu);                                                                 \
        int v = q->field;                                                                           \
        pthread_mutex_unlock(&q->mu);                                                               \
        return v;                                                                                   \
    } while (0)

int tu_proxy_fired(const tu_proxy *p) { PX_GET(fired); }
int tu_proxy_accepted(const tu_proxy *p) { PX_GET(accepted); }
int tu_proxy_open(const tu_proxy *p) { PX_GET(n_open); }

/* ---- the proxy's own tests ------------------------------------------------------ */

static redisContext *px_redis(const tu_proxy *p) {
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", tu_proxy_port(p), tv);
    if (c && !c->err) redisSetTimeout(c, tv);
    return c;
}

/* Forwarding, cut, refuse, lost reply (the command ran), torn command (it
 * did not). */
static void test_redis_faults(void) {
    if (!tu_redis_available()) {
        tu_skip("redis-server unavailable");
        return;
    }
    tu_redis *srv = tu_redis_start(NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    tu_proxy *p = tu_proxy_start(tu_redis_port(srv), TU_PROXY_RAW);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);

    redisContext *c = px_redis(p);
    CU_ASSERT_FATAL(c && !c->err);
    redisReply *r = redisCommand(c, "SET k1 v1");
    CU_ASSERT(r && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);

    tu_proxy_cut(p);
    r = redisCommand(c, "GET k1");
    CU_ASSERT_PTR_NULL(r); /* the connection was cut under the client */
    redisFree(c);

    /* lost reply: the INCR runs, the client never hears of it */
    c = px_redis(p);
    tu_proxy_arm(p, TU_PROXY_LOSE_REPLY, "INCR", -1, 1);
    r = redisCommand(c, "INCR counter");
    CU_ASSERT_PTR_NULL(r);
    redisFree(c);
    CU_ASSERT_EQUAL(tu_proxy_fired(p), 1);
    r = tu_redis_cmd(srv, "GET counter");
    CU_ASSERT(r && r->type == REDIS_REPLY_STRING && !strcmp(r->str, "1"));
    freeReplyObject(r);

    /* torn command: half an XADD reaches the server, which runs nothing */
    c = px_redis(p);
    tu_proxy_arm(p, TU_PROXY_CUT_MIDWAY, "torn-field", -1, 1);
    r = redisCommand(c, "XADD s * torn-field value");
    CU_ASSERT_PTR_NULL(r);
    redisFree(c);
    r = tu_redis_cmd(srv, "EXISTS s");
    CU_ASSERT(r && r->type == REDIS_REPLY_INTEGER && r->integer == 0);
    freeReplyObject(r);

    /* refuse: connections die at once; off again: served */
    tu_proxy_refuse(p, 1);
    c = px_redis(p);
    r = c && !c->err ? redisCommand(c, "PING") : NULL;
    CU_ASSERT_PTR_NULL(r);
    if (c) redisFree(c);
    tu_proxy_refuse(p, 0);
    c = px_redis(p);
    r = redisCommand(c, "GET k1");
    CU_ASSERT(r && r->type == REDIS_REPLY_STRING && !strcmp(r->str, "v1"));
    freeReplyObject(r);

    /* pause: the command waits (client times out), nothing is lost after */
    tu_proxy_pause(p, 1);
    struct timeval shortv = {0, 300000};
    redisSetTimeout(c, shortv);
    r = redisCommand(c, "SET k2 v2");
    CU_ASSERT_PTR_NULL(r);
    tu_proxy_pause(p, 0);
    redisFree(c);
    for (int i = 0; i < 50; i++) {
        r = tu_redis_cmd(srv, "GET k2");
        int ok = r && r->type == REDIS_REPLY_STRING;
        freeReplyObject(r);
        if (ok) break;
        usleep(20000);
    }
    r = tu_redis_cmd(srv, "GET k2");
    CU_ASSERT(r && r->type == REDIS_REPLY_STRING && !strcmp(r->str, "v2"));
    freeReplyObject(r);

    tu_proxy_free(p);
    tu_redis_free(srv);
}

/* A Kafka client bootstrapped through the proxy stays on it (the broker
 * address in Metadata is rewritten) and survives a cut; a lost Produce
 * response is retried by the client. */
static void test_kafka_rewrite(void) {
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "2", errstr, sizeof errstr);
    rd_kafka_t *mrk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    CU_ASSERT_PTR_NOT_NULL_FATAL(mrk);
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(mrk, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(mc);
    rd_kafka_mock_topic_create(mc, "px", 1, 1);
    const char *boot = rd_kafka_mock_cluster_bootstraps(mc);
    const char *colon = strrchr(boot, ':');
    CU_ASSERT_FATAL(colon && !strncmp(boot, "127.0.0.1:", 10));
    tu_proxy *p = tu_proxy_start(atoi(colon + 1), TU_PROXY_KAFKA);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);

    conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", tu_proxy_addr(p), errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "linger.ms", "1", errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "socket.timeout.ms", "2000", errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "log_level", "0", errstr, sizeof errstr);
    rd_kafka_t *prod = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    CU_ASSERT_PTR_NOT_NULL_FATAL(prod);
    for (int round = 0; round < 3; round++) {
        if (round == 1) tu_proxy_cut(p);
        if (round == 2) tu_proxy_arm(p, TU_PROXY_LOSE_REPLY, NULL, 0 /* Produce */, 1);
        char v[32];
        snprintf(v, sizeof v, "value-%d", round);
        CU_ASSERT_EQUAL(rd_kafka_producev(prod, RD_KAFKA_V_TOPIC("px"), RD_KAFKA_V_VALUE(v, strlen(v)),
                                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
                        0);
        CU_ASSERT_EQUAL(rd_kafka_flush(prod, 20000), 0);
    }
    CU_ASSERT_EQUAL(tu_proxy_fired(p), 1);
    /* every connection the client makes goes through the proxy: with the
     * rewrite missing, the client would talk to the broker directly after
     * the first Metadata, and this produce would not wait for the proxy */
    tu_proxy_refuse(p, 1);
    tu_proxy_cut(p);
    CU_ASSERT_EQUAL(rd_kafka_producev(prod, RD_KAFKA_V_TOPIC("px"), RD_KAFKA_V_VALUE("held", 4),
                                      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
                    0);
    CU_ASSERT_NOT_EQUAL(rd_kafka_flush(prod, 1500), 0);
    tu_proxy_refuse(p, 0);
    CU_ASSERT_EQUAL(rd_kafka_flush(prod, 20000), 0);
    CU_ASSERT(tu_proxy_accepted(p) >= 2);
    int64_t lo = 0, hi = 0;
    CU_ASSERT_EQUAL(rd_kafka_query_watermark_offsets(prod, "px", 0, &lo, &hi, 5000), 0);
    CU_ASSERT(hi >= 4); /* the lost response may have been retried into a duplicate: at least once */
    rd_kafka_destroy(prod);
    tu_proxy_free(p);
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(mrk);
}

void test_register_tu_proxy(void) {
    CU_pSuite s = CU_add_suite("tu_proxy", NULL, NULL);
    CU_add_test(s, "redis: forward, cut, lost reply, torn command, refuse, pause", test_redis_faults);
    CU_add_test(s, "kafka: address rewrite keeps the client on the proxy; cut; lost Produce reply", test_kafka_rewrite);
}
