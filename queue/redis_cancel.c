/* redis_cancel.c - the cancel subscriber: SUBSCRIBE cancel_channel on its
 * own connection (a subscribed hiredis context can do nothing else), read
 * with poll() so that rds_free can wake it through a pipe, reconnect with
 * backoff when Redis goes away. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "redis_internal.h"

#define CANCEL_QUEUE_MAX 65536 /* ids kept between polls; oldest dropped beyond */

/* A cancel request is only meaningful for a well-formed request id. */
static int valid_id(const char *s, size_t n) {
    if (n == 0 || n > RDS_ID_MAX) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c == 0x7f) return 0;
    }
    return 1;
}

static void push_id(rds *r, const char *s, size_t n) {
    pthread_mutex_lock(&r->cmu);
    if (r->cancel_len == r->cancel_cap) {
        if (r->cancel_cap >= CANCEL_QUEUE_MAX) {
            /* Nobody polls: keep the newest; old cancels are also visible
             * as cancel keys. */
            memmove(r->cancel_ids, r->cancel_ids + 1, (r->cancel_len - 1) * sizeof *r->cancel_ids);
            r->cancel_len--;
        } else {
            size_t cap = r->cancel_cap ? r->cancel_cap * 2 : 64;
            void *p = realloc(r->cancel_ids, cap * sizeof *r->cancel_ids);
            if (!p) {
                pthread_mutex_unlock(&r->cmu);
                return;
            }
            r->cancel_ids = p;
            r->cancel_cap = cap;
        }
    }
    memcpy(r->cancel_ids[r->cancel_len], s, n);
    r->cancel_ids[r->cancel_len][n] = 0;
    r->cancel_len++;
    r->cancels_received++;
    pthread_mutex_unlock(&r->cmu);
}

int rds_poll_cancels(rds *r, char (*ids)[RDS_ID_MAX + 1], int max) {
    pthread_mutex_lock(&r->cmu);
    int n = 0;
    while (n < max && (size_t)n < r->cancel_len) {
        memcpy(ids[n], r->cancel_ids[n], sizeof ids[n]);
        n++;
    }
    if (n > 0)
        memmove(r->cancel_ids, r->cancel_ids + n, (r->cancel_len - (size_t)n) * sizeof *r->cancel_ids);
    r->cancel_len -= (size_t)n;
    pthread_mutex_unlock(&r->cmu);
    return n;
}

/* Waits up to ms for the stop pipe; 1 if stop was requested. */
static int wait_stop(rds *r, int ms) {
    struct pollfd p = {r->cancel_pipe[0], POLLIN, 0};
    return poll(&p, 1, ms) > 0;
}

/* Returns 1 for the subscription's confirmation, 0 for other replies, -1
 * when Redis refused the subscription: the connection is then of
 * no use (nothing will ever arrive on it), so it is dropped and retried with
 * backoff, and the refusal is reported (rds_stats) rather than swallowed -
 * a user without the channel permission would otherwise miss every cancel
 * in silence. */
static int handle_reply(rds *r, redisReply *rep) {
    if (rep->type == REDIS_REPLY_ERROR) {
        char msg[RDS_REFUSAL_MAX];
        rds__format_reply_error(msg, sizeof msg, "SUBSCRIBE", r->cfg.cancel_channel, rep->str);
        rds__set_last_error(r, msg);
        rds__note_refusal(r, msg);
        return -1;
    }
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 3 && rep->element[0]->type == REDIS_REPLY_STRING &&
        strcmp(rep->element[0]->str, "subscribe") == 0)
        return 1;
    /* ["message", channel, payload] */
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 3 &&
        rep->element[0]->type == REDIS_REPLY_STRING && strcmp(rep->element[0]->str, "message") == 0 &&
        rep->element[2]->type == REDIS_REPLY_STRING &&
        valid_id(rep->element[2]->str, rep->element[2]->len))
        push_id(r, rep->element[2]->str, rep->element[2]->len);
    return 0;
}

static void *cancel_main(void *arg) {
    rds *r = arg;
    int backoff = 0;
    for (;;) {
        redisContext *c = NULL;
        inf_error e = {0};
        if (rds_connect(&r->url, r->cfg.connect_timeout_ms, &c, &e) != 0) {
            rds__note_refusal(r, e.msg);
            backoff = backoff ? (backoff * 2 > 2000 ? 2000 : backoff * 2) : 50;
            if (wait_stop(r, backoff)) return NULL;
            continue;
        }
        const char *argv[2] = {"SUBSCRIBE", r->cfg.cancel_channel};
        int ok = redisAppendCommandArgv(c, 2, argv, NULL) == REDIS_OK;
        int done = 0;
        while (ok && !done) ok = redisBufferWrite(c, &done) == REDIS_OK;
        while (ok) {
            void *rep = NULL;
            if (redisGetReplyFromReader(c, &rep) != REDIS_OK) break;
            if (rep) {
                int h = handle_reply(r, rep);
                freeReplyObject(rep);
                ok = h >= 0;
                /* only a confirmed subscription ends the backoff: a refused
                 * one must not reconnect at full speed */
                if (h == 1) backoff = 0;
                continue;
            }
            struct pollfd p[2] = {{c->fd, POLLIN, 0}, {r->cancel_pipe[0], POLLIN, 0}};
            int n = poll(p, 2, 1000);
            if (n < 0 && errno != EINTR) break;
            if (p[1].revents) {
                redisFree(c);
                return NULL;
            }
            if (p[0].revents && redisBufferRead(c) != REDIS_OK) break;
        }
        if (ok || c->errstr[0]) /* a refusal was recorded by handle_reply */
            rds__set_last_error(r, c->errstr[0] ? c->errstr : "redis: cancel subscriber lost its connection");
        redisFree(c);
        backoff = backoff ? (backoff * 2 > 2000 ? 2000 : backoff * 2) : 50;
        if (wait_stop(r, backoff)) return NULL;
    }
}

int rds__cancel_start(rds *r, inf_error *err) {
    if (pipe(r->cancel_pipe) != 0) {
        r->cancel_pipe[0] = r->cancel_pipe[1] = -1;
        return inf_error_set(err, INF_EIO, "redis: pipe: %s", strerror(errno));
    }
    if (pthread_create(&r->canceller, NULL, cancel_main, r) != 0)
        return inf_error_set(err, INF_EIO, "redis: cannot start the cancel subscriber thread");
    r->canceller_started = 1;
    return 0;
}

void rds__cancel_stop(rds *r) {
    if (r->canceller_started) {
        char b = 1;
        if (write(r->cancel_pipe[1], &b, 1) != 1) { /* the pipe is empty: cannot fail */ }
        pthread_join(r->canceller, NULL);
        r->canceller_started = 0;
    }
    for (int i = 0; i < 2; i++)
        if (r->cancel_pipe[i] >= 0) close(r->cancel_pipe[i]);
    r->cancel_pipe[0] = r->cancel_pipe[1] = -1;
}
