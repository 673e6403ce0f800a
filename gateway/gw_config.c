/* gw_config.c - the gateway's settings table and its parsers (gw_config.h). */
#include "gw_config.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

typedef enum { T_STR, T_INT, T_NUM, T_LIST, T_LEVEL } opt_type;

typedef struct opt {
    const char *name; /* flag without "--"; also the config-file key */
    char short_flag;
    const char *env;
    opt_type type;
    size_t off;
    const char *def;  /* NULL: none */
    double lo, hi;    /* T_INT / T_NUM range */
    const char *metavar;
    const char *help;
} opt;

#define F(x) offsetof(gwc, x)

static const opt OPTS[] = {
    {"listen", 'l', "INFERNO_GATEWAY_LISTEN", T_STR, F(listen), "127.0.0.1:8080", 0, 0, "HOST:PORT",
     "HTTP listen address (0.0.0.0:8080 for every interface, port 0 picks a free one). The default is loopback: "
     "without --api-keys-file / --api-keys there is no authentication."},
    {"http-threads", 0, "INFERNO_GATEWAY_HTTP_THREADS", T_INT, F(http_threads), "1", 1, 64, "N",
     "HTTP event-loop threads (epoll; streams are suspended between chunks, so one thread serves thousands)."},
    {"max-connections", 0, "INFERNO_GATEWAY_MAX_CONNECTIONS", T_INT, F(max_connections), "4096", 1, 1000000, "N",
     "Open HTTP connections at most (the open-files limit is raised to fit at start)."},
    {"max-body-bytes", 0, "INFERNO_GATEWAY_MAX_BODY_BYTES", T_INT, F(max_body_bytes), "1048576", 1024,
     64 * 1048576, "BYTES", "Largest request body accepted; a bigger one gets 413."},
    {"brokers", 'b', "INFERNO_GATEWAY_BROKERS", T_STR, F(brokers), "127.0.0.1:9092", 0, 0, "HOST:PORT,...",
     "Kafka bootstrap servers."},
    {"topic-prefix", 0, "INFERNO_GATEWAY_TOPIC_PREFIX", T_STR, F(topic_prefix), "inferno.requests", 0, 0, "PREFIX",
     "Request topics PREFIX.high, PREFIX.normal, PREFIX.low (the workers' --topics) for every model without a "
     "--route."},
    {"route", 0, "INFERNO_GATEWAY_ROUTES", T_LIST, F(routes_raw), NULL, 0, 0, "MODEL=PREFIX",
     "Requests for MODEL go to PREFIX.high/.normal/.low; repeatable (environment: MODEL=PREFIX;MODEL=PREFIX)."},
    {"kafka-prop", 'X', "INFERNO_GATEWAY_KAFKA_PROPS", T_LIST, F(props), NULL, 0, 0, "KEY=VALUE",
     "librdkafka producer property passed through; repeatable (environment: KEY=VALUE;KEY=VALUE). acks=all and "
     "enable.idempotence=true are always set."},
    {"redis", 'r', "INFERNO_GATEWAY_REDIS", T_STR, F(redis_url), "redis://127.0.0.1:6379", 0, 0, "URL",
     "Redis server: redis://[user:password@]host:port[/db]."},
    {"redis-readers", 0, "INFERNO_GATEWAY_REDIS_READERS", T_INT, F(redis_readers), "4", 1, 64, "N",
     "Reply-stream reader connections (one thread each, XREAD BLOCK over its share of the open streams)."},
    {"out-prefix", 0, "INFERNO_GATEWAY_OUT_PREFIX", T_STR, F(out_prefix), "inferno:out:", 0, 0, "PREFIX",
     "The workers' --out-prefix: replies are read from PREFIX + request id (gateway-made ids only)."},
    {"cancel-channel", 0, "INFERNO_GATEWAY_CANCEL_CHANNEL", T_STR, F(cancel_channel), "inferno:cancel", 0, 0,
     "CHANNEL", "The workers' --cancel-channel: request ids of disconnected or timed-out clients are published here."},
    {"cancel-key-prefix", 0, "INFERNO_GATEWAY_CANCEL_KEY_PREFIX", T_STR, F(cancel_key_prefix), "inferno:cancel:",
     0, 0, "PREFIX", "The workers' --cancel-key-prefix: also set (EX 3600) so a request not yet consumed is "
     "cancelled when it arrives."},
    {"workers-zset", 0, "INFERNO_GATEWAY_WORKERS_ZSET", T_STR, F(workers_zset), "inferno:workers", 0, 0, "KEY",
     "Sorted set of live workers (heartbeats)."},
    {"worker-key-prefix", 0, "INFERNO_GATEWAY_WORKER_KEY_PREFIX", T_STR, F(worker_key_prefix), "inferno:worker:",
     0, 0, "PREFIX", "Heartbeat hashes PREFIX + worker id."},
    {"wake-prefix", 0, "INFERNO_GATEWAY_WAKE_PREFIX", T_STR, F(wake_prefix), "inferno:gw:", 0, 0, "PREFIX",
     "Keys PREFIX + gateway id + :wake:N (streams of one entry) that interrupt a reader's XREAD BLOCK when a new "
     "request joins it."},
    {"gateway-id", 0, "INFERNO_GATEWAY_ID", T_STR, F(gateway_id), "", 0, 0, "ID",
     "Gateway id (1-64 of [A-Za-z0-9._:-]); empty = <hostname>-<pid>."},
    {"workers-poll-ms", 0, "INFERNO_GATEWAY_WORKERS_POLL_MS", T_INT, F(workers_poll_ms), "500", 20, 60000, "MS",
     "How often the workers' heartbeats are read (models, readiness, queue depth)."},
    {"worker-stale-ms", 0, "INFERNO_GATEWAY_WORKER_STALE_MS", T_INT, F(worker_stale_ms), "10000", 100, 3600000,
     "MS", "A worker whose last heartbeat is older is not counted."},
    {"max-queued", 0, "INFERNO_GATEWAY_MAX_QUEUED", T_INT, F(max_queued), "1024", 0, 100000000, "N",
     "Backpressure: when the requests waiting in the workers plus those sent and not yet started exceed N, new "
     "requests get 429 with Retry-After; 0 = no bound. No ready worker for the model: 503 with Retry-After."},
    {"start-timeout-ms", 0, "INFERNO_GATEWAY_START_TIMEOUT_MS", T_INT, F(start_timeout_ms), "30000", 10, 86400000,
     "MS", "A request whose reply has not started (no start entry) within MS gets 504 and is cancelled."},
    {"request-timeout-s", 0, "INFERNO_GATEWAY_REQUEST_TIMEOUT_S", T_INT, F(request_timeout_s), "600", 1, 86400,
     "S", "A request not finished within S seconds is cancelled (stream: ended; otherwise 504)."},
    {"stream-buffer-kb", 0, "INFERNO_GATEWAY_STREAM_BUFFER_KB", T_INT, F(stream_buffer_kb), "64", 4, 65536, "KB",
     "Reply bytes buffered per request for a slow client; above it the reply stream is not read until it drains."},
    {"api-keys-file", 0, "INFERNO_GATEWAY_API_KEYS_FILE", T_STR, F(api_keys_file), "", 0, 0, "FILE",
     "Bearer tokens, one per line (# comments); with this or --api-keys set, requests need "
     "Authorization: Bearer KEY (401 otherwise)."},
    {"api-keys", 0, "INFERNO_GATEWAY_API_KEYS", T_STR, F(api_keys), "", 0, 0, "KEY,...",
     "Bearer tokens, comma-separated (added to the file's)."},
    {"rate-limit-rps", 0, "INFERNO_GATEWAY_RATE_LIMIT_RPS", T_NUM, F(rate_limit_rps), "0", 0, 1e9, "R",
     "Requests per second per API key (token bucket); 0 = no limit. Over it: 429."},
    {"rate-limit-burst", 0, "INFERNO_GATEWAY_RATE_LIMIT_BURST", T_INT, F(rate_limit_burst), "0", 0, 100000000, "N",
     "Bucket size of --rate-limit-rps; 0 = max(1, rps)."},
    {"max-streams-per-key", 0, "INFERNO_GATEWAY_MAX_STREAMS_PER_KEY", T_INT, F(max_streams_per_key), "0", 0,
     100000000, "N", "Requests in progress per API key at most (n > 1 counts n); 0 = no limit. Over it: 429."},
    {"log-level", 0, "INFERNO_GATEWAY_LOG_LEVEL", T_LEVEL, F(log_level), "info", 0, 0, "LEVEL",
     "Log verbosity on stderr. One of `error|warn|info|debug`."},
    {"config", 'c', "INFERNO_GATEWAY_CONFIG", T_STR, F(config_file), "", 0, 0, "FILE",
     "Optional config file of KEY = VALUE lines (keys are the flag names); flags and environment override it."},
};
#define N_OPTS ((int)(sizeof OPTS / sizeof OPTS[0]))

static const char *LEVELS[] = {"error", "warn", "info", "debug"};

enum { SRC_DEFAULT, SRC_FILE, SRC_ENV, SRC_FLAG };

static const opt *find_long(const char *name, size_t n) {
    for (int i = 0; i < N_OPTS; i++)
        if (strlen(OPTS[i].name) == n && !strncmp(OPTS[i].name, name, n)) return &OPTS[i];
    return NULL;
}

static const opt *find_short(char c) {
    for (int i = 0; i < N_OPTS; i++)
        if (OPTS[i].short_flag == c) return &OPTS[i];
    return NULL;
}

static int list_add(gwc *c, const opt *o, const char *v, const char *where, inf_error *err) {
    char **arr = (char **)((char *)c + o->off);
    int *n = o->off == F(props) ? &c->n_props : &c->n_routes;
    const char *eq = strchr(v, '=');
    if (!eq || eq == v || !eq[1])
        return inf_error_set(err, INF_EINVAL, "%s: '%s' is not %s", where, v, o->metavar);
    if (*n == GWC_MAX_LIST) return inf_error_set(err, INF_EINVAL, "%s: at most %d entries", where, GWC_MAX_LIST);
    if (!(arr[*n] = strdup(v))) return inf_error_set(err, INF_ENOMEM, "out of memory");
    (*n)++;
    return 0;
}

static int set_opt(gwc *c, const opt *o, const char *v, const char *where, int src, inf_error *err) {
    char *base = (char *)c;
    switch (o->type) {
    case T_STR: {
        char *d = strdup(v);
        if (!d) return inf_error_set(err, INF_ENOMEM, "out of memory");
        char **slot = (char **)(base + o->off);
        free(*slot);
        *slot = d;
        return 0;
    }
    case T_INT:
    case T_NUM: {
        char *end;
        errno = 0;
        double x = o->type == T_INT ? (double)strtoll(v, &end, 10) : strtod(v, &end);
        while (end && isspace((unsigned char)*end)) end++;
        if (errno || end == v || *end || !(x >= o->lo && x <= o->hi))
            return inf_error_set(err, INF_EINVAL, "%s: '%s' is not %s in [%g, %g]", where, v,
                                 o->type == T_INT ? "an integer" : "a number", o->lo, o->hi);
        if (o->type == T_INT) *(int *)(base + o->off) = (int)x;
        else *(double *)(base + o->off) = x;
        return 0;
    }
    case T_LEVEL:
        for (int i = 0; i < 4; i++)
            if (!strcasecmp(v, LEVELS[i])) {
                c->log_level = i;
                return 0;
            }
        return inf_error_set(err, INF_EINVAL, "%s: '%s' is not one of error|warn|info|debug", where, v);
    case T_LIST:
        if (src == SRC_ENV) {
            char *dup = strdup(v), *save = NULL;
            if (!dup) return inf_error_set(err, INF_ENOMEM, "out of memory");
            int rc = 0;
            for (char *t = strtok_r(dup, ";", &save); t && !rc; t = strtok_r(NULL, ";", &save))
                if (*t) rc = list_add(c, o, t, where, err);
            free(dup);
            return rc;
        }
        return list_add(c, o, v, where, err);
    }
    return inf_error_set(err, INF_EINVAL, "internal: bad option type");
}

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
    return s;
}

static int load_file(gwc *c, const char *path, inf_error *err) {
    FILE *f = fopen(path, "r");
    if (!f) return inf_error_set(err, INF_EIO, "config file %s: %s", path, strerror(errno));
    char line[4096], where[600];
    int lineno = 0, rc = 0;
    while (!rc && fgets(line, sizeof line, f)) {
        lineno++;
        snprintf(where, sizeof where, "%s:%d", path, lineno);
        char *s = trim(line);
        if (!*s || *s == '#') continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            rc = inf_error_set(err, INF_EINVAL, "%s: expected KEY = VALUE, got '%s'", where, s);
            break;
        }
        *eq = '\0';
        char *key = trim(s), *val = trim(eq + 1);
        size_t vl = strlen(val);
        if (vl >= 2 && ((val[0] == '"' && val[vl - 1] == '"') || (val[0] == '\'' && val[vl - 1] == '\''))) {
            val[vl - 1] = '\0';
            val++;
        }
        for (char *p = key; *p; p++)
            if (*p == '_') *p = '-';
        const opt *o = find_long(key, strlen(key));
        if (!o && !strcmp(key, "X")) o = find_short('X');
        if (!o) rc = inf_error_set(err, INF_EINVAL, "%s: unknown setting '%s' (see inferno-gateway --help)", where, key);
        else if (o->off == F(config_file))
            rc = inf_error_set(err, INF_EINVAL, "%s: 'config' cannot be set inside a config file", where);
        else rc = set_opt(c, o, val, where, SRC_FILE, err);
    }
    fclose(f);
    return rc;
}

static const char *env_get(char **envp, const char *name) {
    if (!envp) return NULL;
    size_t n = strlen(name);
    for (char **e = envp; *e; e++)
        if (!strncmp(*e, name, n) && (*e)[n] == '=') return *e + n + 1;
    return NULL;
}

static int id_ok(const char *s, size_t max) {
    size_t n = strlen(s);
    if (n < 1 || n > max) return 0;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("._:-", *p)) return 0;
    return 1;
}

static int topic_prefix_ok(const char *t) {
    size_t n = strlen(t);
    if (n < 1 || n > 240) return 0;
    for (const char *p = t; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("._-", *p)) return 0;
    return 1;
}

static int validate(gwc *c, inf_error *err) {
    const char *colon = strrchr(c->listen, ':');
    if (!colon || !colon[1]) return inf_error_set(err, INF_EINVAL, "--listen: '%s' is not HOST:PORT", c->listen);
    if (!*c->brokers) return inf_error_set(err, INF_EINVAL, "--brokers must not be empty");
    if (strncmp(c->redis_url, "redis://", 8) != 0)
        return inf_error_set(err, INF_EINVAL, "--redis: '%s' must start with redis://", c->redis_url);
    if (!topic_prefix_ok(c->topic_prefix))
        return inf_error_set(err, INF_EINVAL, "--topic-prefix: '%s' is not a topic name prefix (1-240 of "
                             "[A-Za-z0-9._-])", c->topic_prefix);
    for (int i = 0; i < c->n_routes; i++) {
        char *d = strdup(c->routes_raw[i]);
        if (!d) return inf_error_set(err, INF_ENOMEM, "out of memory");
        char *eq = strchr(d, '=');
        *eq = '\0';
        if (!topic_prefix_ok(eq + 1)) {
            int rc = inf_error_set(err, INF_EINVAL, "--route: '%s' is not a topic name prefix", eq + 1);
            free(d);
            return rc;
        }
        c->routes[i].model = d;
        c->routes[i].topic_prefix = eq + 1;
    }
    const char *must[] = {c->out_prefix, c->cancel_channel, c->cancel_key_prefix, c->workers_zset,
                          c->worker_key_prefix, c->wake_prefix};
    const char *names[] = {"--out-prefix", "--cancel-channel", "--cancel-key-prefix", "--workers-zset",
                           "--worker-key-prefix", "--wake-prefix"};
    for (int i = 0; i < 6; i++)
        if (!*must[i]) return inf_error_set(err, INF_EINVAL, "%s must not be empty", names[i]);
    if (!strncmp(c->wake_prefix, c->out_prefix, strlen(c->out_prefix)))
        return inf_error_set(err, INF_EINVAL, "--wake-prefix '%s' must not lie under --out-prefix '%s'",
                             c->wake_prefix, c->out_prefix);
    if (!*c->gateway_id) {
        char host[256] = "localhost", id[80];
        if (gethostname(host, sizeof host - 1) != 0) strcpy(host, "localhost");
        host[40] = '\0';
        for (char *p = host; *p; p++)
            if (!isalnum((unsigned char)*p) && !strchr("._:-", *p)) *p = '-';
        snprintf(id, sizeof id, "%s-%ld", host, (long)getpid());
        free(c->gateway_id);
        if (!(c->gateway_id = strdup(id))) return inf_error_set(err, INF_ENOMEM, "out of memory");
    }
    if (!id_ok(c->gateway_id, 64))
        return inf_error_set(err, INF_EINVAL, "--gateway-id: '%s' must be 1-64 of [A-Za-z0-9._:-]", c->gateway_id);
    if (*c->api_keys_file && access(c->api_keys_file, R_OK) != 0)
        return inf_error_set(err, INF_EINVAL, "--api-keys-file: cannot read '%s': %s", c->api_keys_file,
                             strerror(errno));
    if (c->rate_limit_burst == 0) c->rate_limit_burst = c->rate_limit_rps >= 1 ? (int)c->rate_limit_rps : 1;
    return 0;
}

void gwc_free(gwc *c) {
    if (!c) return;
    char *base = (char *)c;
    for (int i = 0; i < N_OPTS; i++)
        if (OPTS[i].type == T_STR) free(*(char **)(base + OPTS[i].off));
    for (int i = 0; i < c->n_props; i++) free(c->props[i]);
    for (int i = 0; i < c->n_routes; i++) {
        free(c->routes_raw[i]);
        free(c->routes[i].model);
    }
    memset(c, 0, sizeof *c);
}

/* "--name=value" / "--name value" / "-X value" / "-Xvalue": the option and *val. */
static const opt *flag_at(int argc, char **argv, int *i, const char **val, inf_error *err) {
    const char *a = argv[*i];
    const opt *o = NULL;
    *val = NULL;
    if (a[0] == '-' && a[1] == '-') {
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t n = eq ? (size_t)(eq - name) : strlen(name);
        if (!(o = find_long(name, n))) {
            inf_error_set(err, INF_EINVAL, "unknown flag '%.*s' (see inferno-gateway --help)", (int)(n + 2), a);
            return NULL;
        }
        if (eq) { *val = eq + 1; return o; }
    } else if (a[0] == '-' && a[1] && a[1] != '-') {
        if (!(o = find_short(a[1]))) {
            inf_error_set(err, INF_EINVAL, "unknown flag '-%c' (see inferno-gateway --help)", a[1]);
            return NULL;
        }
        if (a[2]) { *val = a + 2; return o; }
    } else {
        inf_error_set(err, INF_EINVAL, "unexpected argument '%s' (flags only; see inferno-gateway --help)", a);
        return NULL;
    }
    if (*i + 1 >= argc) {
        inf_error_set(err, INF_EINVAL, "%s needs a value (%s)", a, o->metavar);
        return NULL;
    }
    *val = argv[++*i];
    return o;
}

int gwc_parse(gwc *c, int argc, char **argv, char **envp, inf_error *err) {
    memset(c, 0, sizeof *c);
    int rc = 0, mode = GWC_RUN;
    for (int i = 0; i < N_OPTS && !rc; i++)
        if (OPTS[i].def) rc = set_opt(c, &OPTS[i], OPTS[i].def, "default", SRC_DEFAULT, err);
    const char *file = env_get(envp, "INFERNO_GATEWAY_CONFIG");
    for (int i = 1; i < argc && !rc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) mode = GWC_HELP;
        else if (!strcmp(argv[i], "--help-markdown")) mode = GWC_HELP_MD;
        else {
            const char *v;
            const opt *o = flag_at(argc, argv, &i, &v, err);
            if (!o) rc = INF_EINVAL;
            else if (o->off == F(config_file)) file = v;
        }
    }
    if (!rc && mode != GWC_RUN) return mode;
    if (!rc && file && *file) {
        rc = set_opt(c, find_long("config", 6), file, "--config", SRC_FLAG, err);
        if (!rc) rc = load_file(c, file, err);
    }
    for (int i = 0; i < N_OPTS && !rc; i++) {
        if (OPTS[i].off == F(config_file)) continue;
        const char *v = env_get(envp, OPTS[i].env);
        if (v && (*v || OPTS[i].type == T_STR)) rc = set_opt(c, &OPTS[i], v, OPTS[i].env, SRC_ENV, err);
    }
    for (int i = 1; i < argc && !rc; i++) {
        const char *v;
        char where[96];
        const opt *o = flag_at(argc, argv, &i, &v, err);
        if (!o) { rc = INF_EINVAL; break; }
        if (o->off == F(config_file)) continue;
        snprintf(where, sizeof where, "--%s", o->name);
        rc = set_opt(c, o, v, where, SRC_FLAG, err);
    }
    if (!rc) rc = validate(c, err);
    if (rc) gwc_free(c);
    return rc ? rc : GWC_RUN;
}

const char *gwc_topic_prefix(const gwc *c, const char *model) {
    for (int i = 0; model && i < c->n_routes; i++)
        if (!strcmp(c->routes[i].model, model)) return c->routes[i].topic_prefix;
    return c->topic_prefix;
}

static const char *shown_default(const opt *o) {
    if (o->type == T_LIST) return "(none)";
    if (!o->def) return "(required)";
    if (!*o->def) return "\"\"";
    return o->def;
}

void gwc_print_help(FILE *out) {
    fprintf(out,
            "usage: inferno-gateway --brokers HOST:PORT --redis redis://HOST:PORT [--listen HOST:PORT]\n"
            "                       [--api-keys-file FILE] [options]\n"
            "\n"
            "The OpenAI HTTP API (/v1/chat/completions, /v1/completions, /v1/models) in front of\n"
            "the inferno queue: requests go to Kafka, replies come back from the Redis reply\n"
            "streams as server-sent events (docs/gateway.md). Every flag can also be given as\n"
            "the environment variable shown, or as `name = value` in the --config file;\n"
            "precedence: flag > environment > file > default.\n\n");
    for (int i = 0; i < N_OPTS; i++) {
        const opt *o = &OPTS[i];
        char flag[96];
        if (o->short_flag) snprintf(flag, sizeof flag, "-%c, --%s %s", o->short_flag, o->name, o->metavar);
        else snprintf(flag, sizeof flag, "    --%s %s", o->name, o->metavar);
        fprintf(out, "  %-36s %s\n", flag, o->help);
        fprintf(out, "  %-36s [env %s; default %s]\n", "", o->env, shown_default(o));
    }
    fprintf(out, "\n  -h, --help                           this text\n"
                 "      --help-markdown                  the same reference as a Markdown table\n"
                 "\nSignals: SIGTERM/SIGINT stop accepting, end open streams, exit 0.\n");
}

void gwc_print_markdown(FILE *out) {
    fprintf(out, "| flag | environment | default | meaning |\n|---|---|---|---|\n");
    for (int i = 0; i < N_OPTS; i++) {
        const opt *o = &OPTS[i];
        fprintf(out, "| `--%s %s`", o->name, o->metavar);
        if (o->short_flag) fprintf(out, " (`-%c`)", o->short_flag);
        const char *d = shown_default(o);
        fprintf(out, " | `%s` | %s%s%s | %s |\n", o->env, d[0] == '(' ? "" : "`", d, d[0] == '(' ? "" : "`",
                o->help);
    }
}
