/* redis_conn.c - Redis URL parsing and connecting (AUTH, SELECT). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "redis_internal.h"

double rds__now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

long long rds__epoch_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Copies s[0..n) into out (cap bytes) decoding %XX; -1 on bad escape or
 * overflow. */
static int pct_decode(const char *s, size_t n, char *out, size_t cap) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c <= ' ' || c == 0x7f) return -1; /* must be %-encoded */
        if (c == '%') {
            if (i + 2 >= n) return -1;
            int h = hexval(s[i + 1]), l = hexval(s[i + 2]);
            if (h < 0 || l < 0) return -1;
            c = h * 16 + l;
            if (c == 0) return -1;
            i += 2;
        }
        if (o + 1 >= cap) return -1;
        out[o++] = (char)c;
    }
    out[o] = 0;
    return 0;
}

/* Parses a decimal integer s[0..n) within [lo, hi]; -1 if not. */
static int parse_int(const char *s, size_t n, long lo, long hi, int *out) {
    if (n == 0 || n > 10) return -1;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i])) return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

int rds_url_parse(const char *url, rds_url *out, inf_error *err) {
    if (!url || !out) return inf_error_set(err, INF_EINVAL, "redis URL: missing");
    memset(out, 0, sizeof *out);
    out->port = 6379;
    const char *p = url;
    if (strncmp(p, "rediss://", 9) == 0)
        return inf_error_set(err, INF_EUNSUPPORTED,
                             "redis URL '%.200s': rediss:// (TLS) is not supported by this build "
                             "(hiredis 0.14 has no TLS); use redis://",
                             url);
    if (strncmp(p, "redis://", 8) != 0)
        return inf_error_set(err, INF_EINVAL,
                             "redis URL '%.200s': must start with redis:// "
                             "(form redis://[user:pass@]host:port[/db])",
                             url);
    p += 8;
    const char *end = p + strlen(p);
    if (memchr(p, '?', (size_t)(end - p)) || memchr(p, '#', (size_t)(end - p)))
        return inf_error_set(err, INF_EINVAL,
                             "redis URL '%.200s': query strings and fragments are not supported", url);
    /* The authority ends at the first '/' after the last '@' (a password may
     * contain '/' only %-encoded, but '@' is allowed raw before the last '@'). */
    const char *at = NULL;
    for (const char *q = p; q < end; q++)
        if (*q == '@') at = q;
    const char *hostp = p;
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon) {
            if (pct_decode(p, (size_t)(colon - p), out->user, sizeof out->user) != 0)
                return inf_error_set(err, INF_EINVAL,
                                     "redis URL: bad user name (too long, or a raw space/control "
                                     "character or bad %%XX escape)");
            if (pct_decode(colon + 1, (size_t)(at - colon - 1), out->pass, sizeof out->pass) != 0)
                return inf_error_set(err, INF_EINVAL,
                                     "redis URL: bad password (too long, or a raw space/control "
                                     "character or bad %%XX escape)");
        } else if (pct_decode(p, (size_t)(at - p), out->pass, sizeof out->pass) != 0) {
            /* redis://secret@host is how several clients spell a password
             * without user; keep that meaning. */
            return inf_error_set(err, INF_EINVAL,
                                 "redis URL: bad password (too long, or a raw space/control "
                                 "character or bad %%XX escape)");
        }
        if (out->user[0] && !out->pass[0])
            return inf_error_set(err, INF_EINVAL, "redis URL: user '%s' given without a password",
                                 out->user);
        hostp = at + 1;
    }
    const char *slash = memchr(hostp, '/', (size_t)(end - hostp));
    const char *hend = slash ? slash : end;
    const char *portp = NULL;
    if (hostp < hend && *hostp == '[') {
        const char *rb = memchr(hostp, ']', (size_t)(hend - hostp));
        if (!rb) return inf_error_set(err, INF_EINVAL, "redis URL '%.200s': unclosed '[' in host", url);
        size_t hl = (size_t)(rb - hostp - 1);
        if (hl == 0 || hl >= sizeof out->host)
            return inf_error_set(err, INF_EINVAL, "redis URL '%.200s': bad host", url);
        memcpy(out->host, hostp + 1, hl);
        out->host[hl] = 0;
        if (rb + 1 < hend) {
            if (rb[1] != ':') return inf_error_set(err, INF_EINVAL, "redis URL '%.200s': bad host", url);
            portp = rb + 2;
        }
    } else {
        const char *colon = memchr(hostp, ':', (size_t)(hend - hostp));
        const char *he = colon ? colon : hend;
        size_t hl = (size_t)(he - hostp);
        if (hl == 0)
            return inf_error_set(err, INF_EINVAL, "redis URL '%.200s': empty host", url);
        if (hl >= sizeof out->host)
            return inf_error_set(err, INF_EINVAL, "redis URL '%.200s': host too long", url);
        for (size_t i = 0; i < hl; i++) {
            int c = (unsigned char)hostp[i];
            if (!(isalnum(c) || c == '.' || c == '-' || c == '_'))
                return inf_error_set(err, INF_EINVAL, "redis URL '%.200s': bad character '%c' in host",
                                     url, c);
        }
        memcpy(out->host, hostp, hl);
        out->host[hl] = 0;
        if (colon) portp = colon + 1;
    }
    if (portp && parse_int(portp, (size_t)(hend - portp), 1, 65535, &out->port) != 0)
        return inf_error_set(err, INF_EINVAL, "redis URL '%.200s': port must be a number in 1..65535",
                             url);
    if (slash && slash + 1 < end &&
        parse_int(slash + 1, (size_t)(end - slash - 1), 0, 1000000, &out->db) != 0)
        return inf_error_set(err, INF_EINVAL,
                             "redis URL '%.200s': database after '/' must be a number >= 0", url);
    return 0;
}

/* Runs one command expecting +OK; fills err on failure. */
static int expect_ok(redisContext *c, int argc, const char **argv, const char *what,
                     inf_error *err) {
    redisReply *rep = redisCommandArgv(c, argc, argv, NULL);
    if (!rep)
        return inf_error_set(err, INF_EIO, "redis %s: %s", what, c->errstr[0] ? c->errstr : "I/O error");
    int rc = 0;
    if (rep->type == REDIS_REPLY_ERROR)
        rc = inf_error_set(err, INF_EIO, "redis %s refused: %s", what, rep->str);
    freeReplyObject(rep);
    return rc;
}

int rds_connect(const rds_url *u, int timeout_ms, struct redisContext **out, inf_error *err) {
    *out = NULL;
    if (timeout_ms <= 0) timeout_ms = 2000;
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(u->host, u->port, tv);
    if (!c) return inf_error_set(err, INF_ENOMEM, "redis connect: out of memory");
    if (c->err) {
        int rc = inf_error_set(err, INF_EIO, "redis connect to %s:%d: %s", u->host, u->port, c->errstr);
        redisFree(c);
        return rc;
    }
    redisSetTimeout(c, tv);
    if (u->pass[0]) {
        const char *argv[3] = {"AUTH", u->user, u->pass};
        int rc = u->user[0] ? expect_ok(c, 3, argv, "AUTH", err)
                            : expect_ok(c, 2, (const char *[]){"AUTH", u->pass}, "AUTH", err);
        if (rc) {
            redisFree(c);
            return rc;
        }
    }
    if (!u->pass[0]) {
        /* Without credentials, make sure the server does not require them:
         * Redis drops unauthenticated clients that send long commands, which
         * would otherwise surface as an unhelpful "connection closed". */
        redisReply *rep = redisCommand(c, "PING");
        int rc = 0;
        if (!rep)
            rc = inf_error_set(err, INF_EIO, "redis PING %s:%d: %s", u->host, u->port, c->errstr);
        else if (rep->type == REDIS_REPLY_ERROR)
            rc = inf_error_set(err, INF_EIO,
                               "redis %s:%d refused PING: %s (if it needs a password, use "
                               "redis://[user]:pass@host:port)",
                               u->host, u->port, rep->str);
        if (rep) freeReplyObject(rep);
        if (rc) {
            redisFree(c);
            return rc;
        }
    }
    if (u->db != 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", u->db);
        const char *argv[2] = {"SELECT", db};
        int rc = expect_ok(c, 2, argv, "SELECT", err);
        if (rc) {
            redisFree(c);
            return rc;
        }
    }
    *out = c;
    return 0;
}
