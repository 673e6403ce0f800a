/* inferno-loadgen - drives inferno workers through Kafka and measures them
 * from the client side through the Redis reply streams.
 *
 *   inferno-loadgen --brokers B --redis URL [--rate R | --concurrency C]
 *       [--requests N] [--prompt-tokens N | --prompt TEXT] [--max-tokens N]
 *       [--priority-mix high:normal:low] [--timeout-s S] [--json]
 *       [--framing bare|confluent|single-object] [...]  (see --help)
 *
 * Requests (inferno.v1.InferenceRequest, encoded with queue/avro_codec) go to
 * the topic of their priority class; arrivals are Poisson at --rate per
 * second, or a new request is sent whenever fewer than --concurrency are
 * outstanding. One reader thread follows every outstanding reply stream with
 * XREAD BLOCK on its own Redis connection. Printed: TTFT, inter-token latency
 * and end-to-end latency (p50/p90/p99, client side, from produce to receipt),
 * request and token throughput, errors and timeouts, overall and per
 * priority. Exit status: 0 all requests answered with event=done, 1 some
 * failed or timed out, 2 bad arguments or setup failure. */
#include <errno.h>
#include <getopt.h>
#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "avro_codec.h"
#include "loadgen/lg_util.h"
#include "redis_out.h"
#include "tools/json.h"

enum { ST_UNSENT, ST_SENT, ST_DONE, ST_ERROR, ST_TIMEOUT };
static const char *PRIO_NAMES[4] = {"high", "normal", "low", "all"};

typedef struct lreq {
    char id[96];
    char key[320];
    int prio;
    int state;
    double t_send, t_first, t_last, t_done; /* monotonic ms */
    int next_seq, n_tokens;
    char last_entry[48];
    char finish[16];
    char error[256];
    char *text;
    size_t text_len;
} lreq;

typedef struct opts {
    const char *brokers, *redis, *prompt, *out_prefix, *id_prefix;
    const char *topics[3];
    double rate, temperature;
    int concurrency, requests, prompt_tokens, max_tokens, timeout_s, json, show, ignore_eos, stream;
    inf_avro_framing framing;
    double mix[3];
    uint64_t seed;
} opts;

typedef struct lg {
    opts o;
    lreq *reqs;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int outstanding, finished, stop;
    rds_url url;
    lg_samples itl[4];
    double t_start, t_end;
} lg;

static double mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: inferno-loadgen --brokers HOST:PORT --redis redis://HOST:PORT [options]\n"
            "  --rate R                Poisson arrivals, R requests/s (default: --concurrency 4)\n"
            "  --concurrency C         keep C requests outstanding\n"
            "  --requests N            requests to send (default 100)\n"
            "  --prompt-tokens N       random prompt of N common words (default 32)\n"
            "  --prompt TEXT           fixed prompt instead\n"
            "  --max-tokens N          max_tokens of every request (default 64)\n"
            "  --temperature T         (default 0: greedy)\n"
            "  --ignore-eos            generate exactly max-tokens tokens\n"
            "  --no-stream             ask for stream=false (one token entry + done)\n"
            "  --priority-mix H:N:L    weights of the high/normal/low topics (default 0:1:0)\n"
            "  --timeout-s S           a request not done S s after it was sent fails (default 60)\n"
            "  --framing F             bare | confluent | single-object (default single-object)\n"
            "  --topics H,N,L          topic names (default inferno.requests.{high,normal,low})\n"
            "  --out-prefix P          reply stream prefix (default inferno:out:)\n"
            "  --id-prefix P           request ids are P-<n> (default lg-<pid>-<time>)\n"
            "  --seed S                prompt / mix randomness (default 1)\n"
            "  --show                  print every answer as it completes\n"
            "  --json                  machine-readable summary on stdout\n");
}

static int parse_num(const char *flag, const char *v, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || end == v || *end || !isfinite(d) || d < lo || d > hi) {
        fprintf(stderr, "inferno-loadgen: %s: '%s' is not a number in [%g, %g]\n", flag, v, lo, hi);
        return -1;
    }
    *out = d;
    return 0;
}

static int parse_opts(opts *o, int argc, char **argv) {
    static char idp[64];
    snprintf(idp, sizeof idp, "lg-%ld-%ld", (long)getpid(), (long)time(NULL));
    *o = (opts){.out_prefix = "inferno:out:", .id_prefix = idp, .concurrency = 0, .requests = 100,
                .prompt_tokens = 32, .max_tokens = 64, .timeout_s = 60, .stream = 1,
                .framing = INF_AVRO_FRAMING_SINGLE_OBJECT, .mix = {0, 1, 0}, .seed = 1,
                .topics = {"inferno.requests.high", "inferno.requests.normal", "inferno.requests.low"}};
    static char topics_buf[512];
    static const struct option lo[] = {
        {"brokers", 1, 0, 'b'}, {"redis", 1, 0, 'r'}, {"rate", 1, 0, 'R'}, {"concurrency", 1, 0, 'c'},
        {"requests", 1, 0, 'n'}, {"prompt-tokens", 1, 0, 'p'}, {"prompt", 1, 0, 'P'}, {"max-tokens", 1, 0, 'm'},
        {"temperature", 1, 0, 'T'}, {"ignore-eos", 0, 0, 'E'}, {"no-stream", 0, 0, 'S'},
        {"priority-mix", 1, 0, 'x'}, {"timeout-s", 1, 0, 't'}, {"framing", 1, 0, 'f'}, {"topics", 1, 0, 'o'},
        {"out-prefix", 1, 0, 'O'}, {"id-prefix", 1, 0, 'I'}, {"seed", 1, 0, 's'}, {"show", 0, 0, 'w'},
        {"json", 0, 0, 'j'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    int c;
    double d;
    inf_error err = {0};
    while ((c = getopt_long(argc, argv, "b:r:n:c:h", lo, NULL)) != -1) {
        switch (c) {
        case 'b': o->brokers = optarg; break;
        case 'r': o->redis = optarg; break;
        case 'R': if (parse_num("--rate", optarg, 1e-3, 1e6, &o->rate)) return -1; break;
        case 'c': if (parse_num("--concurrency", optarg, 1, 100000, &d)) return -1; o->concurrency = (int)d; break;
        case 'n': if (parse_num("--requests", optarg, 1, 1e7, &d)) return -1; o->requests = (int)d; break;
        case 'p': if (parse_num("--prompt-tokens", optarg, 1, 100000, &d)) return -1; o->prompt_tokens = (int)d; break;
        case 'P': o->prompt = optarg; break;
        case 'm': if (parse_num("--max-tokens", optarg, 1, 1e6, &d)) return -1; o->max_tokens = (int)d; break;
        case 'T': if (parse_num("--temperature", optarg, 0, 100, &o->temperature)) return -1; break;
        case 'E': o->ignore_eos = 1; break;
        case 'S': o->stream = 0; break;
        case 'x':
            if (lg_parse_mix(optarg, o->mix, &err)) { fprintf(stderr, "inferno-loadgen: %s\n", err.msg); return -1; }
            break;
        case 't': if (parse_num("--timeout-s", optarg, 0.1, 1e6, &d)) return -1; o->timeout_s = (int)ceil(d); break;
        case 'f':
            if (!strcmp(optarg, "bare")) o->framing = INF_AVRO_FRAMING_BARE;
            else if (!strcmp(optarg, "confluent")) o->framing = INF_AVRO_FRAMING_CONFLUENT;
            else if (!strcmp(optarg, "single-object")) o->framing = INF_AVRO_FRAMING_SINGLE_OBJECT;
            else { fprintf(stderr, "inferno-loadgen: --framing: bare | confluent | single-object\n"); return -1; }
            break;
        case 'o': {
            snprintf(topics_buf, sizeof topics_buf, "%s", optarg);
            char *save = NULL, *t = strtok_r(topics_buf, ",", &save);
            for (int i = 0; i < 3; i++) {
                if (!t) { fprintf(stderr, "inferno-loadgen: --topics needs three names H,N,L\n"); return -1; }
                o->topics[i] = t;
                t = strtok_r(NULL, ",", &save);
            }
            break;
        }
        case 'O': o->out_prefix = optarg; break;
        case 'I': o->id_prefix = optarg; break;
        case 's': if (parse_num("--seed", optarg, 0, 1e18, &d)) return -1; o->seed = (uint64_t)d; break;
        case 'w': o->show = 1; break;
        case 'j': o->json = 1; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return -1;
        }
    }
    if (optind < argc) { fprintf(stderr, "inferno-loadgen: unexpected argument '%s'\n", argv[optind]); return -1; }
    if (!o->brokers || !o->redis) { fprintf(stderr, "inferno-loadgen: --brokers and --redis are required\n"); return -1; }
    if (o->rate > 0 && o->concurrency > 0) {
        fprintf(stderr, "inferno-loadgen: give --rate or --concurrency, not both\n");
        return -1;
    }
    if (o->rate <= 0 && o->concurrency <= 0) o->concurrency = 4;
    if (strlen(o->id_prefix) > 100) { fprintf(stderr, "inferno-loadgen: --id-prefix too long\n"); return -1; }
    return 0;
}

/* ---- reading the reply streams ---------------------------------------------- */

static const char *field(const redisReply *kv, const char *name) {
    for (size_t i = 0; i + 1 < kv->elements; i += 2)
        if (kv->element[i]->str && !strcmp(kv->element[i]->str, name)) return kv->element[i + 1]->str;
    return NULL;
}

static void finish_req(lg *g, lreq *q, int state, double now) {
    q->state = state;
    q->t_done = now;
    g->outstanding--;
    g->finished++;
    if (now > g->t_end) g->t_end = now;
    if (g->o.show) {
        FILE *f = g->o.json ? stderr : stdout;
        if (state == ST_DONE)
            fprintf(f, "[%s %s] %.*s  (%s, %d tokens, ttft %.0f ms, e2e %.0f ms)\n", q->id, PRIO_NAMES[q->prio],
                    (int)q->text_len, q->text ? q->text : "", q->finish, q->n_tokens,
                    q->t_first > 0 ? q->t_first - q->t_send : -1.0, now - q->t_send);
        else
            fprintf(f, "[%s %s] FAILED: %s\n", q->id, PRIO_NAMES[q->prio], q->error);
        fflush(f);
    }
    pthread_cond_broadcast(&g->cv);
}

static void on_entry(lg *g, lreq *q, const char *entry_id, const redisReply *kv, double now) {
    snprintf(q->last_entry, sizeof q->last_entry, "%s", entry_id);
    const char *ev = field(kv, "event");
    if (!ev || q->state != ST_SENT) return;
    if (!strcmp(ev, "token")) {
        const char *seq_s = field(kv, "seq"), *ids = field(kv, "ids");
        int seq = seq_s ? atoi(seq_s) : q->next_seq, k = lg_count_ids(ids);
        if (seq < q->next_seq) return; /* a resent entry (at-least-once): seen */
        if (k <= 0) return;
        if (q->t_first == 0) {
            q->t_first = now;
        } else {
            double gap = (now - q->t_last) / k;
            for (int i = 0; i < k; i++) {
                lg_samples_add(&g->itl[q->prio], gap);
                lg_samples_add(&g->itl[3], gap);
            }
        }
        q->t_last = now;
        q->next_seq = seq + k;
        q->n_tokens += k;
        const char *text = field(kv, "text");
        size_t tl = 0;
        for (size_t i = 0; i < kv->elements; i += 2)
            if (kv->element[i]->str && !strcmp(kv->element[i]->str, "text")) tl = kv->element[i + 1]->len;
        if (g->o.show && text && tl) {
            char *nt = realloc(q->text, q->text_len + tl + 1);
            if (nt) {
                memcpy(nt + q->text_len, text, tl);
                q->text = nt;
                q->text_len += tl;
                nt[q->text_len] = '\0';
            }
        }
    } else if (!strcmp(ev, "done")) {
        const char *fr = field(kv, "finish_reason"), *ct = field(kv, "completion_tokens");
        snprintf(q->finish, sizeof q->finish, "%s", fr ? fr : "?");
        if (ct && atoi(ct) > q->n_tokens) q->n_tokens = atoi(ct); /* stream=false or coalesced */
        finish_req(g, q, ST_DONE, now);
    } else if (!strcmp(ev, "error")) {
        const char *code = field(kv, "code"), *msg = field(kv, "message");
        snprintf(q->error, sizeof q->error, "%s: %s", code ? code : "?", msg ? msg : "");
        finish_req(g, q, ST_ERROR, now);
    }
}

#define XREAD_MAX_KEYS 512

static void *reader_main(void *arg) {
    lg *g = arg;
    redisContext *rc = NULL;
    const char **argv = malloc((4 + 2 * XREAD_MAX_KEYS + 2) * sizeof *argv);
    int *idx = malloc(XREAD_MAX_KEYS * sizeof *idx);
    char (*ids_copy)[48] = malloc(XREAD_MAX_KEYS * sizeof *ids_copy);
    int start = 0;
    if (!argv || !idx || !ids_copy) { fprintf(stderr, "inferno-loadgen: out of memory\n"); exit(2); }
    for (;;) {
        pthread_mutex_lock(&g->mu);
        if (g->stop) { pthread_mutex_unlock(&g->mu); break; }
        double now = mono_ms();
        /* timeouts, and the set of streams to follow (round-robin chunks) */
        int n = 0;
        for (int k = 0; k < g->o.requests; k++) {
            lreq *q = &g->reqs[(start + k) % g->o.requests];
            if (q->state != ST_SENT) continue;
            if (now - q->t_send > g->o.timeout_s * 1000.0) {
                snprintf(q->error, sizeof q->error, "no final entry within %d s", g->o.timeout_s);
                finish_req(g, q, ST_TIMEOUT, now);
                continue;
            }
            if (n < XREAD_MAX_KEYS) idx[n++] = (int)(q - g->reqs);
        }
        start = n ? (idx[n - 1] + 1) % g->o.requests : 0;
        if (n == 0) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 20 * 1000000L;
            if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
            pthread_cond_timedwait(&g->cv, &g->mu, &ts);
            pthread_mutex_unlock(&g->mu);
            continue;
        }
        int a = 0;
        argv[a++] = "XREAD";
        argv[a++] = "COUNT";
        argv[a++] = "256";
        argv[a++] = "BLOCK";
        argv[a++] = "50";
        argv[a++] = "STREAMS";
        /* last ids are copied out: the command runs without the lock */
        for (int i = 0; i < n; i++) argv[a++] = g->reqs[idx[i]].key;
        for (int i = 0; i < n; i++) {
            snprintf(ids_copy[i], sizeof ids_copy[i], "%s", g->reqs[idx[i]].last_entry);
            argv[a++] = ids_copy[i];
        }
        pthread_mutex_unlock(&g->mu);
        if (!rc) {
            inf_error err = {0};
            if (rds_connect(&g->url, 5000, &rc, &err) != 0) {
                fprintf(stderr, "inferno-loadgen: Redis: %s (retrying)\n", err.msg);
                rc = NULL;
                usleep(200000);
                continue;
            }
        }
        redisReply *rep = redisCommandArgv(rc, a, argv, NULL);
        double t = mono_ms();
        if (!rep) {
            fprintf(stderr, "inferno-loadgen: Redis: %s (reconnecting)\n", rc->errstr);
            redisFree(rc);
            rc = NULL;
            usleep(100000);
            continue;
        }
        pthread_mutex_lock(&g->mu);
        if (rep->type == REDIS_REPLY_ARRAY) {
            for (size_t s = 0; s < rep->elements; s++) {
                redisReply *sr = rep->element[s];
                if (sr->type != REDIS_REPLY_ARRAY || sr->elements != 2) continue;
                const char *key = sr->element[0]->str;
                lreq *q = NULL;
                for (int i = 0; i < n && !q; i++)
                    if (!strcmp(g->reqs[idx[i]].key, key)) q = &g->reqs[idx[i]];
                if (!q) continue;
                redisReply *entries = sr->element[1];
                for (size_t e = 0; e < entries->elements; e++) {
                    redisReply *en = entries->element[e];
                    if (en->type == REDIS_REPLY_ARRAY && en->elements == 2)
                        on_entry(g, q, en->element[0]->str, en->element[1], t);
                }
            }
        } else if (rep->type == REDIS_REPLY_ERROR) {
            fprintf(stderr, "inferno-loadgen: XREAD: %s\n", rep->str);
            usleep(100000);
        }
        pthread_mutex_unlock(&g->mu);
        freeReplyObject(rep);
    }
    if (rc) redisFree(rc);
    free(argv);
    free(idx);
    free(ids_copy);
    return NULL;
}

/* ---- producing ---------------------------------------------------------------- */

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    lg *g = opaque;
    lreq *q = m->_private;
    if (!m->err || !q) return;
    pthread_mutex_lock(&g->mu);
    if (q->state == ST_SENT) {
        snprintf(q->error, sizeof q->error, "produce failed: %s", rd_kafka_err2str(m->err));
        finish_req(g, q, ST_ERROR, mono_ms());
    }
    pthread_mutex_unlock(&g->mu);
}

static int send_req(lg *g, rd_kafka_t *rk, const inf_avro_registry *reg, lreq *q, uint64_t *rng) {
    inf_request r;
    inf_request_init(&r);
    char prompt[8192];
    snprintf(r.request_id, sizeof r.request_id, "%s", q->id);
    if (g->o.prompt) snprintf(prompt, sizeof prompt, "%s", g->o.prompt);
    else lg_make_prompt(rng, g->o.prompt_tokens, prompt, sizeof prompt);
    r.prompt = prompt;
    r.max_tokens = g->o.max_tokens;
    r.temperature = (float)g->o.temperature;
    r.ignore_eos = g->o.ignore_eos;
    r.stream = g->o.stream;
    uint8_t *buf = NULL;
    size_t len = 0;
    inf_error err = {0};
    int rc = inf_avro_encode(reg, &r, g->o.framing, 1, &buf, &len, &err);
    r.prompt = NULL; /* on the stack */
    inf_request_free(&r);
    if (rc) {
        fprintf(stderr, "inferno-loadgen: encode: %s\n", err.msg);
        return -1;
    }
    pthread_mutex_lock(&g->mu);
    q->state = ST_SENT;
    q->t_send = mono_ms();
    if (g->t_start == 0) g->t_start = q->t_send;
    g->outstanding++;
    pthread_mutex_unlock(&g->mu);
    rd_kafka_resp_err_t e;
    for (;;) {
        e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(g->o.topics[q->prio]), RD_KAFKA_V_KEY(q->id, strlen(q->id)),
                              RD_KAFKA_V_VALUE(buf, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                              RD_KAFKA_V_OPAQUE(q), RD_KAFKA_V_END);
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) break;
        rd_kafka_poll(rk, 50);
    }
    free(buf);
    if (e) {
        pthread_mutex_lock(&g->mu);
        snprintf(q->error, sizeof q->error, "produce: %s", rd_kafka_err2str(e));
        finish_req(g, q, ST_ERROR, mono_ms());
        pthread_mutex_unlock(&g->mu);
    }
    rd_kafka_poll(rk, 0);
    return 0;
}

/* ---- report ---------------------------------------------------------------------- */

static void json_num(FILE *f, double x) {
    if (isfinite(x)) fprintf(f, "%.3f", x);
    else fputs("null", f);
}

static void report(lg *g) {
    lg_samples ttft[4] = {{0}}, e2e[4] = {{0}};
    int cnt[4] = {0}, ok[4] = {0}, errs[4] = {0}, tmo[4] = {0};
    long long toks[4] = {0};
    int n_stop = 0, n_length = 0, n_other = 0;
    for (int i = 0; i < g->o.requests; i++) {
        lreq *q = &g->reqs[i];
        int ps[2] = {q->prio, 3};
        for (int k = 0; k < 2; k++) {
            int p = ps[k];
            cnt[p]++;
            if (q->state == ST_DONE) {
                ok[p]++;
                toks[p] += q->n_tokens;
                if (q->t_first > 0) lg_samples_add(&ttft[p], q->t_first - q->t_send);
                lg_samples_add(&e2e[p], q->t_done - q->t_send);
            } else if (q->state == ST_TIMEOUT) {
                tmo[p]++;
            } else {
                errs[p]++;
            }
        }
        if (q->state == ST_DONE) {
            if (!strcmp(q->finish, "stop")) n_stop++;
            else if (!strcmp(q->finish, "length")) n_length++;
            else n_other++;
        }
    }
    double dur_s = g->t_end > g->t_start ? (g->t_end - g->t_start) / 1000.0 : 0;
    if (g->o.json) {
        FILE *f = stdout;
        fprintf(f, "{\"requests\":%d,\"ok\":%d,\"errors\":%d,\"timeouts\":%d,\"duration_s\":", cnt[3], ok[3],
                errs[3], tmo[3]);
        json_num(f, dur_s);
        fprintf(f, ",\"requests_per_s\":");
        json_num(f, dur_s > 0 ? ok[3] / dur_s : NAN);
        fprintf(f, ",\"tokens_per_s\":");
        json_num(f, dur_s > 0 ? toks[3] / dur_s : NAN);
        fprintf(f, ",\"mode\":\"%s\",\"rate\":", g->o.rate > 0 ? "rate" : "concurrency");
        json_num(f, g->o.rate > 0 ? g->o.rate : NAN);
        fprintf(f, ",\"concurrency\":%d,\"max_tokens\":%d,\"finish_reasons\":{\"stop\":%d,\"length\":%d,\"other\":%d}",
                g->o.concurrency, g->o.max_tokens, n_stop, n_length, n_other);
        fprintf(f, ",\"priorities\":{");
        int first = 1;
        for (int p = 3; p >= 0; p--) {
            if (p < 3 && cnt[p] == 0) continue;
            fprintf(f, "%s\"%s\":{\"requests\":%d,\"ok\":%d,\"errors\":%d,\"timeouts\":%d,\"tokens\":%lld", first ? "" : ",",
                    PRIO_NAMES[p], cnt[p], ok[p], errs[p], tmo[p], toks[p]);
            first = 0;
            lg_samples *sets[3] = {&ttft[p], &g->itl[p], &e2e[p]};
            const char *names[3] = {"ttft_ms", "itl_ms", "e2e_ms"};
            for (int s = 0; s < 3; s++) {
                fprintf(f, ",\"%s\":{\"p50\":", names[s]);
                json_num(f, lg_percentile(sets[s], 50));
                fprintf(f, ",\"p90\":");
                json_num(f, lg_percentile(sets[s], 90));
                fprintf(f, ",\"p99\":");
                json_num(f, lg_percentile(sets[s], 99));
                fprintf(f, ",\"mean\":");
                json_num(f, lg_mean(sets[s]));
                fprintf(f, "}");
            }
            fprintf(f, "}");
        }
        fprintf(f, "}");
        int shown = 0;
        fprintf(f, ",\"failures\":[");
        for (int i = 0; i < g->o.requests && shown < 20; i++)
            if (g->reqs[i].state != ST_DONE) {
                fprintf(f, "%s{\"id\":", shown++ ? "," : "");
                json_write_str(f, g->reqs[i].id, strlen(g->reqs[i].id));
                fprintf(f, ",\"error\":");
                json_write_str(f, g->reqs[i].error, strlen(g->reqs[i].error));
                fprintf(f, "}");
            }
        fprintf(f, "]}\n");
    } else {
        printf("requests: %d sent, %d ok, %d errors, %d timeouts in %.2f s\n", cnt[3], ok[3], errs[3], tmo[3], dur_s);
        printf("throughput: %.2f requests/s, %.1f tokens/s (finish: %d stop, %d length, %d other)\n",
               dur_s > 0 ? ok[3] / dur_s : 0, dur_s > 0 ? toks[3] / dur_s : 0, n_stop, n_length, n_other);
        printf("%-8s %6s %6s %8s   %-26s %-26s %-26s\n", "priority", "ok", "failed", "tokens", "TTFT ms p50/p90/p99",
               "ITL ms p50/p90/p99", "E2E ms p50/p90/p99");
        for (int p = 3; p >= 0; p--) {
            if (p < 3 && cnt[p] == 0) continue;
            char cols[3][64];
            lg_samples *sets[3] = {&ttft[p], &g->itl[p], &e2e[p]};
            for (int s = 0; s < 3; s++)
                snprintf(cols[s], sizeof cols[s], "%.1f/%.1f/%.1f", lg_percentile(sets[s], 50),
                         lg_percentile(sets[s], 90), lg_percentile(sets[s], 99));
            printf("%-8s %6d %6d %8lld   %-26s %-26s %-26s\n", PRIO_NAMES[p], ok[p], errs[p] + tmo[p], toks[p],
                   cols[0], cols[1], cols[2]);
        }
        int shown = 0;
        for (int i = 0; i < g->o.requests && shown < 10; i++)
            if (g->reqs[i].state != ST_DONE) {
                printf("failed: %s: %s\n", g->reqs[i].id, g->reqs[i].error);
                shown++;
            }
    }
    for (int p = 0; p < 4; p++) {
        lg_samples_free(&ttft[p]);
        lg_samples_free(&e2e[p]);
    }
}

int main(int argc, char **argv) {
    lg g;
    memset(&g, 0, sizeof g);
    if (parse_opts(&g.o, argc, argv)) return 2;
    inf_error err = {0};
    if (rds_url_parse(g.o.redis, &g.url, &err)) {
        fprintf(stderr, "inferno-loadgen: --redis: %s\n", err.msg);
        return 2;
    }
    inf_avro_registry *reg = NULL;
    if (inf_avro_registry_create(&reg, &err)) {
        fprintf(stderr, "inferno-loadgen: %s\n", err.msg);
        return 2;
    }
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", g.o.brokers, errstr, sizeof errstr) ||
        rd_kafka_conf_set(conf, "linger.ms", "1", errstr, sizeof errstr) ||
        rd_kafka_conf_set(conf, "message.timeout.ms", "30000", errstr, sizeof errstr)) {
        fprintf(stderr, "inferno-loadgen: Kafka config: %s\n", errstr);
        return 2;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_conf_set_opaque(conf, &g);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!rk) {
        fprintf(stderr, "inferno-loadgen: Kafka producer: %s\n", errstr);
        return 2;
    }
    g.reqs = calloc((size_t)g.o.requests, sizeof *g.reqs);
    if (!g.reqs) return 2;
    uint64_t rng = g.o.seed * 0x9E3779B97F4A7C15ull + 7;
    for (int i = 0; i < g.o.requests; i++) {
        lreq *q = &g.reqs[i];
        snprintf(q->id, sizeof q->id, "%s-%d", g.o.id_prefix, i);
        snprintf(q->key, sizeof q->key, "%s%s", g.o.out_prefix, q->id);
        snprintf(q->last_entry, sizeof q->last_entry, "0-0");
        q->prio = lg_pick(&rng, g.o.mix);
    }
    pthread_mutex_init(&g.mu, NULL);
    pthread_cond_init(&g.cv, NULL);
    pthread_t reader;
    if (pthread_create(&reader, NULL, reader_main, &g) != 0) return 2;

    double t0 = mono_ms(), next = t0;
    for (int i = 0; i < g.o.requests; i++) {
        if (g.o.rate > 0) {
            next += lg_exp_interval(&rng, g.o.rate) * 1000.0;
            for (double now; (now = mono_ms()) < next;) {
                rd_kafka_poll(rk, 0);
                double w = next - now;
                usleep((useconds_t)(w > 20 ? 20000 : w * 1000));
            }
        } else {
            pthread_mutex_lock(&g.mu);
            while (g.outstanding >= g.o.concurrency) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += 10 * 1000000L;
                if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
                pthread_cond_timedwait(&g.cv, &g.mu, &ts);
                pthread_mutex_unlock(&g.mu);
                rd_kafka_poll(rk, 0);
                pthread_mutex_lock(&g.mu);
            }
            pthread_mutex_unlock(&g.mu);
        }
        if (send_req(&g, rk, reg, &g.reqs[i], &rng)) return 2;
    }
    /* wait for every answer (the reader times requests out) */
    pthread_mutex_lock(&g.mu);
    while (g.finished < g.o.requests) {
        pthread_mutex_unlock(&g.mu);
        rd_kafka_poll(rk, 20);
        pthread_mutex_lock(&g.mu);
    }
    g.stop = 1;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    pthread_join(reader, NULL);
    rd_kafka_flush(rk, 5000);
    rd_kafka_destroy(rk);
    report(&g);
    int failed = 0;
    for (int i = 0; i < g.o.requests; i++) {
        failed += g.reqs[i].state != ST_DONE;
        free(g.reqs[i].text);
    }
    for (int p = 0; p < 4; p++) lg_samples_free(&g.itl[p]);
    free(g.reqs);
    inf_avro_registry_free(reg);
    pthread_mutex_destroy(&g.mu);
    pthread_cond_destroy(&g.cv);
    return failed ? 1 : 0;
}
