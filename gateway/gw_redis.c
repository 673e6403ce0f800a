/* gw_redis.c - reply-stream readers and the control connection (gw_redis.h). */
#include "gw_redis.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "redis_out.h"

#define BLOCK_MS 250
#define KEY_MAX 320

typedef struct leg_state {
    char key[KEY_MAX];
    char last[48];   /* last entry id read */
    int next_seq, attempt, final;
} leg_state;

typedef struct reader reader;

struct gw_sub {
    reader *r;
    gw_sub *prev, *next;
    int dead, paused;
    gw_sub_ops ops;
    void *ctx;
    int n;
    leg_state legs[];
};

struct reader {
    gw_rd *rd;
    int index;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    gw_sub *head;
    int n_subs, in_cmd, woken, stop;
    char wake_key[KEY_MAX];
    char wake_last[48];
    int connected;
    int64_t last_tick;
};

typedef struct ctl_op {
    int kind; /* 0 wake reader, 1 cancel */
    int reader;
    char id[RDS_ID_MAX + 1];
} ctl_op;

struct gw_rd {
    gw_rd_config cfg;
    char *url, *wake_prefix, *gateway_id, *cancel_channel, *cancel_key_prefix;
    rds_url u;
    reader *readers;
    int n_readers;
    unsigned next_reader;
    /* control thread */
    pthread_t ctl_th;
    pthread_mutex_t ctl_mu;
    pthread_cond_t ctl_cv;
    ctl_op *ops;
    size_t n_ops, cap_ops;
    int ctl_stop;
    /* stats */
    pthread_mutex_t st_mu;
    long long entries, wakes, cancels, errors;
};

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void count(gw_rd *rd, long long *c, long long n) {
    pthread_mutex_lock(&rd->st_mu);
    *c += n;
    pthread_mutex_unlock(&rd->st_mu);
}

/* ---- control thread ---------------------------------------------------- */

static void ctl_push(gw_rd *rd, const ctl_op *op) {
    pthread_mutex_lock(&rd->ctl_mu);
    if (rd->n_ops == rd->cap_ops) {
        size_t cap = rd->cap_ops ? rd->cap_ops * 2 : 64;
        ctl_op *n = realloc(rd->ops, cap * sizeof *n);
        if (!n) { /* a lost wake costs one BLOCK period; a lost cancel is logged by the count */
            pthread_mutex_unlock(&rd->ctl_mu);
            count(rd, &rd->errors, 1);
            return;
        }
        rd->ops = n;
        rd->cap_ops = cap;
    }
    rd->ops[rd->n_ops++] = *op;
    pthread_cond_signal(&rd->ctl_cv);
    pthread_mutex_unlock(&rd->ctl_mu);
}

void gw_rd_cancel(gw_rd *rd, const char *request_id) {
    ctl_op op = {.kind = 1};
    snprintf(op.id, sizeof op.id, "%s", request_id);
    ctl_push(rd, &op);
}

static void *ctl_main(void *arg) {
    gw_rd *rd = arg;
    redisContext *c = NULL;
    ctl_op *batch = NULL;
    size_t cap = 0;
    int backoff = 50;
    for (;;) {
        pthread_mutex_lock(&rd->ctl_mu);
        while (!rd->n_ops && !rd->ctl_stop) pthread_cond_wait(&rd->ctl_cv, &rd->ctl_mu);
        if (rd->ctl_stop && !rd->n_ops) {
            pthread_mutex_unlock(&rd->ctl_mu);
            break;
        }
        size_t n = rd->n_ops;
        if (n > cap) {
            ctl_op *nb = realloc(batch, n * sizeof *nb);
            if (!nb) {
                pthread_mutex_unlock(&rd->ctl_mu);
                usleep(10000);
                continue;
            }
            batch = nb;
            cap = n;
        }
        memcpy(batch, rd->ops, n * sizeof *batch);
        rd->n_ops = 0;
        int stopping = rd->ctl_stop;
        pthread_mutex_unlock(&rd->ctl_mu);
        for (int tries = 0; tries < 3; tries++) {
            if (!c) {
                inf_error err = {0};
                if (rds_connect(&rd->u, 2000, &c, &err) != 0) {
                    c = NULL;
                    if (stopping) break;
                    usleep((useconds_t)backoff * 1000);
                    backoff = backoff < 2000 ? backoff * 2 : 2000;
                    continue;
                }
                backoff = 50;
            }
            int cmds = 0;
            for (size_t i = 0; i < n; i++) {
                if (batch[i].kind == 0) {
                    const char *wk = rd->readers[batch[i].reader].wake_key;
                    redisAppendCommand(c, "XADD %s MAXLEN 1 * w 1", wk);
                    redisAppendCommand(c, "EXPIRE %s 3600", wk);
                    cmds += 2;
                } else {
                    redisAppendCommand(c, "SET %s%s 1 EX 3600", rd->cancel_key_prefix, batch[i].id);
                    redisAppendCommand(c, "PUBLISH %s %s", rd->cancel_channel, batch[i].id);
                    cmds += 2;
                }
            }
            int ok = 1;
            for (int k = 0; k < cmds; k++) {
                redisReply *rep = NULL;
                if (redisGetReply(c, (void **)&rep) != REDIS_OK) {
                    ok = 0;
                    break;
                }
                if (rep && rep->type == REDIS_REPLY_ERROR) count(rd, &rd->errors, 1);
                freeReplyObject(rep);
            }
            if (ok) {
                long long w = 0, x = 0;
                for (size_t i = 0; i < n; i++) batch[i].kind ? x++ : w++;
                pthread_mutex_lock(&rd->st_mu);
                rd->wakes += w;
                rd->cancels += x;
                pthread_mutex_unlock(&rd->st_mu);
                break;
            }
            count(rd, &rd->errors, 1);
            redisFree(c);
            c = NULL;
        }
    }
    if (c) redisFree(c);
    free(batch);
    return NULL;
}

/* ---- readers ------------------------------------------------------------ */

static const char *field(const redisReply *kv, const char *name, size_t *len) {
    for (size_t i = 0; i + 1 < kv->elements; i += 2)
        if (kv->element[i]->str && !strcmp(kv->element[i]->str, name)) {
            if (len) *len = kv->element[i + 1]->len;
            return kv->element[i + 1]->str;
        }
    return NULL;
}

static int num(const redisReply *kv, const char *name) {
    const char *s = field(kv, name, NULL);
    return s ? atoi(s) : 0;
}

/* Parses space-separated ints / floats into a growable array. */
typedef struct scratch {
    int32_t *ids;
    float *lps;
    size_t cap;
} scratch;

static int parse_lists(scratch *sc, const char *ids, const char *lps) {
    size_t n = 0;
    for (const char *p = ids; p && *p; p++) n += *p == ' ';
    n += 1;
    if (n > sc->cap) {
        int32_t *a = realloc(sc->ids, n * sizeof *a);
        if (a) sc->ids = a;
        float *b = realloc(sc->lps, n * sizeof *b);
        if (b) sc->lps = b;
        if (!a || !b) return -1;
        sc->cap = n;
    }
    int k = 0;
    for (const char *p = ids; p && *p;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p) break;
        sc->ids[k++] = (int32_t)v;
        p = end;
    }
    int m = 0;
    for (const char *p = lps; p && *p && m < k;) {
        while (*p == ' ') p++;
        if (!*p) break;
        char *end;
        float v = strtof(p, &end);
        if (end == p) break;
        sc->lps[m++] = v;
        p = end;
    }
    return k;
}

static void handle_entry(reader *r, gw_sub *s, int leg, const char *id, const redisReply *kv, scratch *sc) {
    leg_state *L = &s->legs[leg];
    snprintf(L->last, sizeof L->last, "%s", id);
    if (L->final) return;
    const char *ev = field(kv, "event", NULL);
    if (!ev) return;
    gw_rd_entry e = {.event = ev};
    if (!strcmp(ev, "start")) {
        e.attempt = num(kv, "attempt");
        e.prompt_tokens = num(kv, "prompt_tokens");
        if (e.attempt <= L->attempt) return; /* a resent start entry */
        int again = L->attempt > 0;
        L->attempt = e.attempt;
        L->next_seq = 0;
        if (again && s->ops.on_reset) s->ops.on_reset(s->ctx, leg, &e);
        if (s->ops.on_start) s->ops.on_start(s->ctx, leg, &e);
    } else if (!strcmp(ev, "token")) {
        const char *seq = field(kv, "seq", NULL), *lp = field(kv, "logprobs", NULL);
        e.seq = seq ? atoi(seq) : L->next_seq;
        if (e.seq < L->next_seq) return; /* duplicate (at-least-once) */
        int k = parse_lists(sc, field(kv, "ids", NULL), lp);
        if (k < 0) return;
        e.ids = sc->ids;
        e.n_ids = k;
        e.logprobs = lp ? sc->lps : NULL;
        e.text = field(kv, "text", &e.text_len);
        if (!e.text) e.text = "";
        L->next_seq = e.seq + k;
        if (s->ops.on_tokens) s->ops.on_tokens(s->ctx, leg, &e);
    } else if (!strcmp(ev, "done") || !strcmp(ev, "error")) {
        e.finish_reason = field(kv, "finish_reason", NULL);
        e.prompt_tokens = num(kv, "prompt_tokens");
        e.completion_tokens = num(kv, "completion_tokens");
        e.cached_tokens = num(kv, "cached_tokens");
        e.code = field(kv, "code", NULL);
        e.message = field(kv, "message", NULL);
        L->final = 1;
        if (s->ops.on_final) s->ops.on_final(s->ctx, leg, &e);
    }
}

static void free_dead(reader *r) {
    for (gw_sub *s = r->head, *nx; s; s = nx) {
        nx = s->next;
        if (!s->dead) continue;
        if (s->prev) s->prev->next = s->next;
        else r->head = s->next;
        if (s->next) s->next->prev = s->prev;
        r->n_subs--;
        free(s);
    }
}

typedef struct argset {
    const char **argv;
    size_t *lens;
    gw_sub **sub;
    int *leg;
    char (*ids)[48];
    size_t cap;
} argset;

static int argset_grow(argset *a, size_t n) {
    if (n <= a->cap) return 0;
    size_t cap = a->cap ? a->cap : 64;
    while (cap < n) cap *= 2;
    const char **av = realloc(a->argv, (2 * cap + 8) * sizeof *av);
    if (av) a->argv = av;
    size_t *ln = realloc(a->lens, (2 * cap + 8) * sizeof *ln);
    if (ln) a->lens = ln;
    gw_sub **sb = realloc(a->sub, cap * sizeof *sb);
    if (sb) a->sub = sb;
    int *lg = realloc(a->leg, cap * sizeof *lg);
    if (lg) a->leg = lg;
    char (*ids)[48] = realloc(a->ids, cap * sizeof *ids);
    if (ids) a->ids = ids;
    if (!av || !ln || !sb || !lg || !ids) return -1;
    a->cap = cap;
    return 0;
}

static void *reader_main(void *arg) {
    reader *r = arg;
    gw_rd *rd = r->rd;
    redisContext *c = NULL;
    argset A = {0};
    scratch sc = {0};
    int backoff = 50;
    for (;;) {
        pthread_mutex_lock(&r->mu);
        free_dead(r);
        int64_t now = mono_ms();
        if (now - r->last_tick >= BLOCK_MS) {
            r->last_tick = now;
            for (gw_sub *s = r->head; s; s = s->next)
                if (!s->dead && s->ops.on_tick) s->ops.on_tick(s->ctx, now);
        }
        if (r->stop) {
            pthread_mutex_unlock(&r->mu);
            break;
        }
        size_t n = 0;
        for (gw_sub *s = r->head; s; s = s->next)
            if (!s->dead && !s->paused)
                for (int i = 0; i < s->n; i++) n += !s->legs[i].final;
        if (n == 0 || argset_grow(&A, n + 1)) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += BLOCK_MS * 1000000L;
            if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
            pthread_cond_timedwait(&r->cv, &r->mu, &ts);
            pthread_mutex_unlock(&r->mu);
            continue;
        }
        int a = 0;
        A.argv[a++] = "XREAD";
        A.argv[a++] = "COUNT";
        A.argv[a++] = "64";
        A.argv[a++] = "BLOCK";
        char block[16];
        snprintf(block, sizeof block, "%d", BLOCK_MS);
        A.argv[a++] = block;
        A.argv[a++] = "STREAMS";
        size_t k = 0;
        for (gw_sub *s = r->head; s; s = s->next) {
            if (s->dead || s->paused) continue;
            for (int i = 0; i < s->n; i++) {
                if (s->legs[i].final) continue;
                A.sub[k] = s;
                A.leg[k] = i;
                memcpy(A.ids[k], s->legs[i].last, sizeof A.ids[k]);
                A.argv[a++] = s->legs[i].key;
                k++;
            }
        }
        A.argv[a++] = r->wake_key;
        for (size_t i = 0; i < k; i++) A.argv[a++] = A.ids[i];
        char wake_last[48];
        memcpy(wake_last, r->wake_last, sizeof wake_last);
        A.argv[a++] = wake_last;
        for (int i = 0; i < a; i++) A.lens[i] = strlen(A.argv[i]);
        r->in_cmd = 1;
        r->woken = 0;
        pthread_mutex_unlock(&r->mu);
        /* keys are stable while we are in the command: only this thread frees subs */
        if (!c) {
            inf_error err = {0};
            if (rds_connect(&rd->u, BLOCK_MS + 5000, &c, &err) != 0) {
                c = NULL;
                pthread_mutex_lock(&r->mu);
                r->in_cmd = 0;
                r->connected = 0;
                pthread_mutex_unlock(&r->mu);
                usleep((useconds_t)backoff * 1000);
                backoff = backoff < 2000 ? backoff * 2 : 2000;
                continue;
            }
            backoff = 50;
        }
        redisReply *rep = redisCommandArgv(c, a, A.argv, A.lens);
        pthread_mutex_lock(&r->mu);
        r->in_cmd = 0;
        r->connected = rep != NULL;
        if (!rep) {
            pthread_mutex_unlock(&r->mu);
            count(rd, &rd->errors, 1);
            redisFree(c);
            c = NULL;
            usleep(50000);
            continue;
        }
        long long n_entries = 0;
        if (rep->type == REDIS_REPLY_ARRAY) {
            size_t hint = 0;
            for (size_t si = 0; si < rep->elements; si++) {
                redisReply *sr = rep->element[si];
                if (sr->type != REDIS_REPLY_ARRAY || sr->elements != 2 || !sr->element[0]->str) continue;
                const char *key = sr->element[0]->str;
                redisReply *entries = sr->element[1];
                if (!strcmp(key, r->wake_key)) {
                    if (entries->elements) {
                        redisReply *last = entries->element[entries->elements - 1];
                        if (last->type == REDIS_REPLY_ARRAY && last->elements == 2 && last->element[0]->str)
                            snprintf(r->wake_last, sizeof r->wake_last, "%s", last->element[0]->str);
                    }
                    continue;
                }
                /* streams come back in request order: search from the last hit */
                size_t found = k;
                for (size_t t = 0; t < k; t++) {
                    size_t j = (hint + t) % k;
                    if (!strcmp(A.argv[6 + j], key)) {
                        found = j;
                        break;
                    }
                }
                if (found == k) continue;
                hint = found + 1;
                gw_sub *s = A.sub[found];
                if (s->dead) continue;
                for (size_t e = 0; e < entries->elements; e++) {
                    redisReply *en = entries->element[e];
                    if (en->type != REDIS_REPLY_ARRAY || en->elements != 2 || !en->element[0]->str) continue;
                    handle_entry(r, s, A.leg[found], en->element[0]->str, en->element[1], &sc);
                    n_entries++;
                    if (s->dead) break;
                }
            }
        } else if (rep->type == REDIS_REPLY_ERROR) {
            count(rd, &rd->errors, 1);
            pthread_mutex_unlock(&r->mu);
            freeReplyObject(rep);
            usleep(100000);
            continue;
        }
        pthread_mutex_unlock(&r->mu);
        freeReplyObject(rep);
        if (n_entries) count(rd, &rd->entries, n_entries);
    }
    pthread_mutex_lock(&r->mu);
    for (gw_sub *s = r->head; s; s = s->next) s->dead = 1;
    free_dead(r);
    pthread_mutex_unlock(&r->mu);
    if (c) redisFree(c);
    free(A.argv);
    free(A.lens);
    free(A.sub);
    free(A.leg);
    free(A.ids);
    free(sc.ids);
    free(sc.lps);
    return NULL;
}

/* Under r->mu: make the reader see a changed set of streams now. */
static void poke(reader *r) {
    if (!r->in_cmd) {
        pthread_cond_signal(&r->cv);
        return;
    }
    if (r->woken) return;
    r->woken = 1;
    ctl_op op = {.kind = 0, .reader = r->index};
    ctl_push(r->rd, &op);
}

int gw_sub_create(gw_rd *rd, const char *const *keys, int n_keys, const gw_sub_ops *ops, void *ctx, gw_sub **out) {
    *out = NULL;
    gw_sub *s = calloc(1, sizeof *s + (size_t)n_keys * sizeof s->legs[0]);
    if (!s) return INF_ENOMEM;
    s->ops = *ops;
    s->ctx = ctx;
    s->n = n_keys;
    for (int i = 0; i < n_keys; i++) {
        snprintf(s->legs[i].key, sizeof s->legs[i].key, "%s", keys[i]);
        snprintf(s->legs[i].last, sizeof s->legs[i].last, "0-0");
    }
    /* the least loaded of two readers (cheap and even enough) */
    unsigned i0 = __atomic_fetch_add(&rd->next_reader, 1, __ATOMIC_RELAXED) % (unsigned)rd->n_readers;
    unsigned i1 = (i0 + 1) % (unsigned)rd->n_readers;
    int n0 = __atomic_load_n(&rd->readers[i0].n_subs, __ATOMIC_RELAXED);
    int n1 = __atomic_load_n(&rd->readers[i1].n_subs, __ATOMIC_RELAXED);
    reader *r = &rd->readers[n1 < n0 ? i1 : i0];
    s->r = r;
    pthread_mutex_lock(&r->mu);
    *out = s;
    s->next = r->head;
    if (r->head) r->head->prev = s;
    r->head = s;
    r->n_subs++;
    poke(r);
    pthread_mutex_unlock(&r->mu);
    return 0;
}

void gw_sub_lock(gw_sub *s) { pthread_mutex_lock(&s->r->mu); }
void gw_sub_unlock(gw_sub *s) { pthread_mutex_unlock(&s->r->mu); }

void gw_sub_set_paused(gw_sub *s, int paused) {
    if (s->paused == paused) return;
    s->paused = paused;
    if (!paused) poke(s->r);
}

void gw_sub_release(gw_sub *s) {
    if (!s) return;
    pthread_mutex_lock(&s->r->mu);
    s->dead = 1;
    pthread_mutex_unlock(&s->r->mu);
}

void gw_rd_get_stats(gw_rd *rd, gw_rd_stats *st) {
    memset(st, 0, sizeof *st);
    for (int i = 0; i < rd->n_readers; i++) {
        reader *r = &rd->readers[i];
        pthread_mutex_lock(&r->mu);
        st->connected += r->connected;
        for (gw_sub *s = r->head; s; s = s->next) st->subs += !s->dead;
        pthread_mutex_unlock(&r->mu);
    }
    pthread_mutex_lock(&rd->st_mu);
    st->entries = rd->entries;
    st->wakes = rd->wakes;
    st->cancels = rd->cancels;
    st->errors = rd->errors;
    pthread_mutex_unlock(&rd->st_mu);
}

int gw_rd_create(gw_rd **out, const gw_rd_config *cfg, inf_error *err) {
    *out = NULL;
    gw_rd *rd = calloc(1, sizeof *rd);
    if (!rd) return inf_error_set(err, INF_ENOMEM, "out of memory");
    if (rds_url_parse(cfg->url, &rd->u, err) != 0) {
        free(rd);
        return INF_EINVAL;
    }
    rd->cancel_channel = strdup(cfg->cancel_channel);
    rd->cancel_key_prefix = strdup(cfg->cancel_key_prefix);
    rd->n_readers = cfg->n_readers > 0 ? cfg->n_readers : 1;
    rd->readers = calloc((size_t)rd->n_readers, sizeof *rd->readers);
    if (!rd->cancel_channel || !rd->cancel_key_prefix || !rd->readers) {
        free(rd->cancel_channel);
        free(rd->cancel_key_prefix);
        free(rd->readers);
        free(rd);
        return inf_error_set(err, INF_ENOMEM, "out of memory");
    }
    pthread_mutex_init(&rd->ctl_mu, NULL);
    pthread_cond_init(&rd->ctl_cv, NULL);
    pthread_mutex_init(&rd->st_mu, NULL);
    for (int i = 0; i < rd->n_readers; i++) {
        reader *r = &rd->readers[i];
        r->rd = rd;
        r->index = i;
        pthread_mutex_init(&r->mu, NULL);
        pthread_cond_init(&r->cv, NULL);
        snprintf(r->wake_key, sizeof r->wake_key, "%s%s:wake:%d", cfg->wake_prefix, cfg->gateway_id, i);
        /* a wake entry left by an earlier process only makes the first XREAD return early */
        snprintf(r->wake_last, sizeof r->wake_last, "0-0");
    }
    *out = rd;
    if (pthread_create(&rd->ctl_th, NULL, ctl_main, rd) != 0) {
        gw_rd_free(rd);
        *out = NULL;
        return inf_error_set(err, INF_EIO, "cannot start the Redis control thread");
    }
    for (int i = 0; i < rd->n_readers; i++)
        if (pthread_create(&rd->readers[i].th, NULL, reader_main, &rd->readers[i]) != 0) {
            rd->n_readers = i; /* gw_rd_free joins those started */
            gw_rd_free(rd);
            *out = NULL;
            return inf_error_set(err, INF_EIO, "cannot start a Redis reader thread");
        }
    return 0;
}

void gw_rd_free(gw_rd *rd) {
    if (!rd) return;
    for (int i = 0; i < rd->n_readers; i++) {
        reader *r = &rd->readers[i];
        pthread_mutex_lock(&r->mu);
        r->stop = 1;
        pthread_cond_signal(&r->cv);
        pthread_mutex_unlock(&r->mu);
    }
    for (int i = 0; i < rd->n_readers; i++) pthread_join(rd->readers[i].th, NULL);
    if (rd->ctl_th) {
        pthread_mutex_lock(&rd->ctl_mu);
        rd->ctl_stop = 1;
        pthread_cond_signal(&rd->ctl_cv);
        pthread_mutex_unlock(&rd->ctl_mu);
        pthread_join(rd->ctl_th, NULL);
    }
    for (int i = 0; i < rd->n_readers; i++) {
        pthread_mutex_destroy(&rd->readers[i].mu);
        pthread_cond_destroy(&rd->readers[i].cv);
    }
    free(rd->readers);
    free(rd->ops);
    free(rd->cancel_channel);
    free(rd->cancel_key_prefix);
    pthread_mutex_destroy(&rd->ctl_mu);
    pthread_cond_destroy(&rd->ctl_cv);
    pthread_mutex_destroy(&rd->st_mu);
    free(rd);
}
