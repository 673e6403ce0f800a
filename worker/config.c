/* config.c - the worker's settings table and its parsers (see config.h). */
#include "config.h"

#include "http.h"
#include "kafka_in.h"
#include "tools/pull.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <stdint.h>
#include <unistd.h>

typedef enum opt_type { T_STR, T_INT, T_LONG, T_BOOL, T_ENUM, T_LIST, T_FRAC } opt_type;

typedef struct opt {
    const char *name;    /* flag without "--"; also the config-file key */
    char short_flag;     /* 0: none */
    const char *env;     /* environment variable */
    opt_type type;
    size_t off;          /* field in wcfg */
    const char *def;     /* default, parsed like any other source; NULL: none */
    long long lo, hi;    /* T_INT / T_LONG range (T_FRAC: a double in (0, 1]) */
    const char *choices; /* T_ENUM: "a|b|c" */
    const char *metavar;
    const char *help;
} opt;

#define F(x) offsetof(wcfg, x)

/* THE table. --help, --help-markdown, the flag/env/file parsers read it. */
static const opt OPTS[] = {
    /* model and engine */
    {"model", 'm', "INFERNO_MODEL", T_STR, F(model), NULL, 0, 0, NULL, "FILE/URL",
     "GGUF model to serve (required): a file, or a URL - http(s)://..., hf://ORG/REPO/FILE.gguf or "
     "hf://ORG/REPO@REV/FILE.gguf (Hugging Face; HF_TOKEN in the environment is sent to huggingface.co for gated "
     "models) - downloaded into --model-cache-dir before loading (resumed if interrupted, reused once complete)."},
    {"model-sha256", 0, "INFERNO_MODEL_SHA256", T_STR, F(model_sha256), "", 0, 0, NULL, "HEX",
     "Expected SHA-256 of the model file (64 hex digits): a download must match it (else the worker does not "
     "start), a cached copy is reused only if it matches, a local file is checked before loading; empty = no check."},
    {"model-cache-dir", 0, "INFERNO_MODEL_CACHE_DIR", T_STR, F(model_cache_dir), "", 0, 0, NULL, "DIR",
     "Folder for models given as URLs; empty = $XDG_CACHE_HOME/inferno/models, else ~/.cache/inferno/models."},
    {"model-name", 0, "INFERNO_MODEL_NAME", T_STR, F(model_name), "", 0, 0, NULL, "NAME",
     "Model id announced in the heartbeat's model field (what inferno-gateway lists in /v1/models and routes "
     "by); empty = the model file's name without .gguf."},
    {"backend", 0, "INFERNO_BACKEND", T_ENUM, F(backend), "auto", 0, 0, "cpu|cuda|auto", "NAME",
     "Compute backend."},
    {"threads", 't', "INFERNO_THREADS", T_INT, F(threads), "0", 0, 1024, NULL, "N",
     "Backend threads; 0 = all cores."},
    {"cpu-isa", 0, "INFERNO_CPU_ISA", T_ENUM, F(cpu_isa), "auto", 0, 0, "auto|scalar|avx2|avxvnni|avx512", "ISA",
     "CPU kernel set: auto = the best cpuid reports (AVX-512 with VNNI, else AVX-VNNI, else AVX2+FMA+F16C, else "
     "scalar); a lower one can be forced, a higher one than the CPU has is refused at start."},
    {"kv-cache-mb", 0, "INFERNO_KV_CACHE_MB", T_INT, F(kv_cache_mb), "0", 0, 1 << 20, NULL, "MB",
     "KV cache budget in MiB; 0 = backend default (256 on the CPU; on a GPU, --gpu-memory-fraction "
     "of the free memory). A budget given here wins over the fraction. On the CPU the whole budget is resident "
     "from the start (docs/operations.md, \"Memory\")."},
    {"gpu-memory-fraction", 0, "INFERNO_GPU_MEMORY_FRACTION", T_FRAC, F(gpu_memory_fraction), "0.9", 0, 0,
     NULL, "F", "CUDA: share in (0, 1] of the GPU memory free after weights and workspace that the KV cache "
     "takes (ignored when --kv-cache-mb is set)."},
    {"max-num-seqs", 0, "INFERNO_MAX_NUM_SEQS", T_INT, F(max_num_seqs), "64", 1, 4096, NULL, "N",
     "Sequences decoded together at most."},
    {"max-batched-tokens", 0, "INFERNO_MAX_BATCHED_TOKENS", T_INT, F(max_batched_tokens), "512", 1,
     1 << 20, NULL, "N", "Tokens per forward pass at most (>= max-num-seqs)."},
    {"max-model-len", 0, "INFERNO_MAX_MODEL_LEN", T_INT, F(max_model_len), "0", 0, 1 << 24, NULL, "N",
     "Prompt + generated tokens per request at most; 0 = the model's context."},
    {"aging-ms", 0, "INFERNO_AGING_MS", T_INT, F(aging_ms), "1000", 0, 1000000000, NULL, "MS",
     "Priority aging: a waiting request gains one priority level per MS; 0 = off."},
    {"prefix-caching", 0, "INFERNO_PREFIX_CACHING", T_BOOL, F(prefix_caching), "true", 0, 1, NULL, "BOOL",
     "Reuse KV blocks of identical prompt prefixes."},
    /* Kafka */
    {"brokers", 'b', "INFERNO_BROKERS", T_STR, F(brokers), "127.0.0.1:9092", 0, 0, NULL, "HOST:PORT,...",
     "Kafka bootstrap servers."},
    {"topics", 0, "INFERNO_TOPICS", T_STR, F(topics_csv),
     "inferno.requests.high,inferno.requests.normal,inferno.requests.low", 0, 0, NULL, "T1,T2,T3",
     "Request topics, most urgent first (1-3); a request's priority is its topic's index unless it sets one."},
    {"group", 'g', "INFERNO_GROUP", T_STR, F(group), "inferno-workers", 0, 0, NULL, "NAME",
     "Kafka consumer group shared by the workers."},
    {"group-instance-id", 0, "INFERNO_GROUP_INSTANCE_ID", T_STR, F(group_instance_id), "", 0, 0, NULL, "ID",
     "Static group membership id (group.instance.id); empty = off."},
    {"dlq-topic", 0, "INFERNO_DLQ_TOPIC", T_STR, F(dlq_topic), "inferno.requests.dlq", 0, 0, NULL, "TOPIC",
     "Dead-letter topic for messages that cannot be served."},
    {"max-inflight", 0, "INFERNO_MAX_INFLIGHT", T_INT, F(max_inflight), "0", 0, 1 << 20, NULL, "N",
     "Requests taken from Kafka and not yet finished, at most; partitions are paused at the cap. "
     "0 = 2 x max-num-seqs."},
    {"urgent-reserve", 0, "INFERNO_URGENT_RESERVE", T_INT, F(urgent_reserve), "-1", -1, 1 << 20, NULL, "N",
     "In-flight slots kept free for more urgent topics: topic i pauses at max-inflight - i x N, so a flood "
     "of low-priority work cannot take the slots a high-priority request needs. -1 = max-inflight / 8."},
    {"max-message-bytes", 0, "INFERNO_MAX_MESSAGE_BYTES", T_INT, F(max_message_bytes), "1048576",
     KIN_MAX_MESSAGE_MIN, KIN_MAX_MESSAGE_MAX, NULL, "BYTES",
     "Largest request message (Kafka value, framing included; also any one string in it) served; a bigger one "
     "gets an error event (code request_too_large, to the id in its key) and goes to --dlq-topic, cut to fit. "
     "The consumer fetches up to 2 x BYTES (at least 1000000), the DLQ producer's message.max.bytes is "
     "BYTES + 16384; -X fetch.max.bytes or max.partition.fetch.bytes below BYTES, or message.max.bytes below "
     "BYTES + 16384, are refused at start."},
    {"kafka-prop", 'X', "INFERNO_KAFKA_PROPS", T_LIST, F(props), NULL, 0, 0, NULL, "KEY=VALUE",
     "librdkafka property passed through; repeatable (environment: KEY=VALUE;KEY=VALUE)."},
    {"schemas", 0, "INFERNO_SCHEMAS", T_STR, F(schemas), "", 0, 0, NULL, "ID=FILE,...",
     "Extra writer schemas (.avsc) to accept: Confluent schema id (or -1 for single-object fingerprint only) = file."},
    /* Redis */
    {"redis", 'r', "INFERNO_REDIS", T_STR, F(redis_url), "redis://127.0.0.1:6379", 0, 0, NULL, "URL",
     "Redis server: redis://[user:password@]host:port[/db]."},
    {"out-prefix", 0, "INFERNO_OUT_PREFIX", T_STR, F(out_prefix), "inferno:out:", 0, 0, NULL, "PREFIX",
     "Reply stream key prefix: the default stream is PREFIX + request id, and a request's reply_stream must start with PREFIX (any other key is refused)."},
    {"stream-maxlen", 0, "INFERNO_STREAM_MAXLEN", T_LONG, F(stream_maxlen), "10000", 1, 1000000000LL, NULL, "N",
     "Reply streams are trimmed to about N entries (XADD MAXLEN ~)."},
    {"stream-expire-s", 0, "INFERNO_STREAM_EXPIRE_S", T_INT, F(stream_expire_s), "3600", 1, 100000000, NULL, "S",
     "Reply streams expire S seconds after their final entry."},
    {"flush-ms", 0, "INFERNO_FLUSH_MS", T_INT, F(flush_ms), "20", 0, 60000, NULL, "MS",
     "Token entries of a stream are coalesced for at most MS milliseconds."},
    {"flush-tokens", 0, "INFERNO_FLUSH_TOKENS", T_INT, F(flush_tokens), "16", 1, 100000, NULL, "N",
     "... or at most N tokens, whichever comes first."},
    {"max-pending-mb", 0, "INFERNO_MAX_PENDING_MB", T_INT, F(max_pending_mb), "64", 1, 1 << 20, NULL, "MB",
     "Memory for entries not yet written to Redis; when full the worker stops taking new work."},
    {"cancel-channel", 0, "INFERNO_CANCEL_CHANNEL", T_STR, F(cancel_channel), "inferno:cancel", 0, 0, NULL,
     "CHANNEL", "Pub/sub channel on which request ids to cancel are published."},
    {"cancel-key-prefix", 0, "INFERNO_CANCEL_KEY_PREFIX", T_STR, F(cancel_key_prefix), "inferno:cancel:", 0, 0,
     NULL, "PREFIX", "A key PREFIX{request_id} present when the request arrives cancels it."},
    /* discovery and lifecycle */
    {"worker-id", 'i', "INFERNO_WORKER_ID", T_STR, F(worker_id), "", 0, 0, NULL, "ID",
     "Worker id (1-64 of [A-Za-z0-9._:-]); empty = <hostname>-<pid>."},
    {"heartbeat-ms", 0, "INFERNO_HEARTBEAT_MS", T_INT, F(heartbeat_ms), "2000", 50, 3600000, NULL, "MS",
     "Heartbeat interval (hash inferno:worker:{id}, sorted set inferno:workers)."},
    {"heartbeat-ttl-s", 0, "INFERNO_HEARTBEAT_TTL_S", T_INT, F(heartbeat_ttl_s), "0", 0, 86400, NULL, "S",
     "TTL of the heartbeat hash; 0 = 3 intervals (at least 1 s)."},
    {"drain-timeout-s", 0, "INFERNO_DRAIN_TIMEOUT_S", T_INT, F(drain_timeout_s), "30", 0, 86400, NULL, "S",
     "On SIGTERM, in-flight requests get S seconds to finish, then are aborted."},
    {"metrics-addr", 0, "INFERNO_METRICS_ADDR", T_STR, F(metrics_addr), "127.0.0.1:9400", 0, 0, NULL,
     "HOST:PORT", "HTTP listen address of /metrics (Prometheus), /healthz and /readyz (docs/operations.md); "
     "0.0.0.0:9400 for every interface (containers); empty or off = no endpoint."},
    {"health-stall-s", 0, "INFERNO_HEALTH_STALL_S", T_INT, F(health_stall_s), "30", 1, 86400, NULL, "S",
     "/healthz answers 503 when the worker loop (engine steps, Kafka polls) has not gone round for S seconds; /readyz turns not-ready (and /healthz says progress_stalled) when requests wait and none moved on (admission, engine step) for S seconds."},
    {"log-level", 'l', "INFERNO_LOG_LEVEL", T_ENUM, F(log_level), "info", 0, 0, "error|warn|info|debug", "LEVEL",
     "Log verbosity (stderr). No per-token lines below debug."},
    {"log-format", 0, "INFERNO_LOG_FORMAT", T_ENUM, F(log_format), "auto", 0, 0, "auto|plain|json", "FORMAT",
     "Log lines on stderr: plain text or JSON objects (ts, level, worker, request_id, msg); auto = plain on a "
     "terminal, JSON otherwise."},
    {"config", 'c', "INFERNO_CONFIG", T_STR, F(config_file), "", 0, 0, NULL, "FILE",
     "Optional config file of KEY = VALUE lines (keys are the flag names); flags and environment override it."},
};
#define N_OPTS ((int)(sizeof OPTS / sizeof OPTS[0]))

enum { SRC_DEFAULT, SRC_FILE, SRC_ENV, SRC_FLAG };

const char *wcfg_log_level_name(wcfg_log_level l) {
    static const char *names[] = {"error", "warn", "info", "debug"};
    return (int)l >= 0 && (int)l < 4 ? names[l] : "?";
}

static const opt *find_long(const char *name, size_t len) {
    for (int i = 0; i < N_OPTS; i++)
        if (strlen(OPTS[i].name) == len && strncmp(OPTS[i].name, name, len) == 0) return &OPTS[i];
    return NULL;
}

static const opt *find_short(char c) {
    for (int i = 0; i < N_OPTS; i++)
        if (OPTS[i].short_flag == c) return &OPTS[i];
    return NULL;
}

/* Index of v in "a|b|c", or -1. */
static int enum_index(const char *choices, const char *v) {
    int idx = 0;
    const char *p = choices;
    size_t vl = strlen(v);
    while (*p) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == vl && strncasecmp(p, v, n) == 0) return idx;
        idx++;
        if (!bar) break;
        p = bar + 1;
    }
    return -1;
}

static int parse_bool(const char *v) {
    if (!strcasecmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcasecmp(v, "on")) return 1;
    if (!strcasecmp(v, "0") || !strcasecmp(v, "false") || !strcasecmp(v, "no") || !strcasecmp(v, "off")) return 0;
    return -1;
}

static int list_append(wcfg *c, const char *item, const char *where, inf_error *err) {
    if (!strchr(item, '=') || item[0] == '=')
        return inf_error_set(err, INF_EINVAL, "%s: '%s' is not KEY=VALUE", where, item);
    if (c->n_props >= WCFG_MAX_PROPS)
        return inf_error_set(err, INF_EINVAL, "%s: more than %d Kafka properties", where, WCFG_MAX_PROPS);
    if (!(c->props[c->n_props] = strdup(item))) return inf_error_set(err, INF_ENOMEM, "out of memory");
    c->n_props++;
    return 0;
}

/* Sets one option from text. `where` names the source for messages
 * ("--threads", "INFERNO_THREADS", "worker.conf:3"). */
static int set_opt(wcfg *c, const opt *o, const char *v, const char *where, int src, inf_error *err) {
    char *base = (char *)c;
    switch (o->type) {
    case T_STR: {
        char **slot = (char **)(base + o->off);
        char *d = strdup(v);
        if (!d) return inf_error_set(err, INF_ENOMEM, "out of memory");
        free(*slot);
        *slot = d;
        return 0;
    }
    case T_INT:
    case T_LONG: {
        char *end;
        errno = 0;
        long long x = strtoll(v, &end, 10);
        while (end && isspace((unsigned char)*end)) end++;
        if (errno || end == v || *end || x < o->lo || x > o->hi)
            return inf_error_set(err, INF_EINVAL, "%s: '%s' is not an integer in [%lld, %lld]", where, v, o->lo,
                                 o->hi);
        if (o->type == T_INT) *(int *)(base + o->off) = (int)x;
        else *(long *)(base + o->off) = (long)x;
        return 0;
    }
    case T_FRAC: {
        char *end;
        errno = 0;
        double x = strtod(v, &end);
        while (end && isspace((unsigned char)*end)) end++;
        if (errno || end == v || *end || !(x > 0.0 && x <= 1.0))
            return inf_error_set(err, INF_EINVAL, "%s: '%s' is not a number in (0, 1]", where, v);
        *(double *)(base + o->off) = x;
        return 0;
    }
    case T_BOOL: {
        int b = parse_bool(v);
        if (b < 0) return inf_error_set(err, INF_EINVAL, "%s: '%s' is not a boolean (true|false|1|0)", where, v);
        *(int *)(base + o->off) = b;
        return 0;
    }
    case T_ENUM: {
        int idx = enum_index(o->choices, v);
        if (idx < 0) return inf_error_set(err, INF_EINVAL, "%s: '%s' is not one of %s", where, v, o->choices);
        if (o->off == F(log_level)) {
            c->log_level = (wcfg_log_level)idx;
        } else {
            /* string enums keep their canonical (lower-case) spelling */
            const char *p = o->choices;
            for (int k = 0; k < idx; k++) p = strchr(p, '|') + 1;
            const char *bar = strchr(p, '|');
            size_t n = bar ? (size_t)(bar - p) : strlen(p);
            char *d = strndup(p, n);
            if (!d) return inf_error_set(err, INF_ENOMEM, "out of memory");
            char **slot = (char **)(base + o->off);
            free(*slot);
            *slot = d;
        }
        return 0;
    }
    case T_LIST:
        if (src == SRC_ENV) {
            /* KEY=VALUE;KEY=VALUE (values may hold commas, e.g. broker lists) */
            char *dup = strdup(v), *save = NULL;
            if (!dup) return inf_error_set(err, INF_ENOMEM, "out of memory");
            int rc = 0;
            for (char *t = strtok_r(dup, ";", &save); t && !rc; t = strtok_r(NULL, ";", &save))
                if (*t) rc = list_append(c, t, where, err);
            free(dup);
            return rc;
        }
        return list_append(c, v, where, err);
    }
    return inf_error_set(err, INF_EINVAL, "internal: bad option type");
}

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
    return s;
}

static int load_file(wcfg *c, const char *path, inf_error *err) {
    FILE *f = fopen(path, "r");
    if (!f) return inf_error_set(err, INF_EIO, "config file %s: %s", path, strerror(errno));
    char line[4096], where[600];
    int lineno = 0, rc = 0;
    while (!rc && fgets(line, sizeof line, f)) {
        lineno++;
        snprintf(where, sizeof where, "%s:%d", path, lineno);
        if (!strchr(line, '\n') && !feof(f)) {
            rc = inf_error_set(err, INF_EINVAL, "%s: line too long", where);
            break;
        }
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
        if (!o && strcmp(key, "X") == 0) o = find_short('X');
        if (!o) {
            rc = inf_error_set(err, INF_EINVAL, "%s: unknown setting '%s' (see inferno-worker --help)", where, key);
            break;
        }
        if (o->off == F(config_file)) {
            rc = inf_error_set(err, INF_EINVAL, "%s: 'config' cannot be set inside a config file", where);
            break;
        }
        rc = set_opt(c, o, val, where, SRC_FILE, err);
    }
    fclose(f);
    return rc;
}

static const char *env_get(char **envp, const char *name) {
    if (!envp) return NULL;
    size_t n = strlen(name);
    for (char **e = envp; *e; e++)
        if (strncmp(*e, name, n) == 0 && (*e)[n] == '=') return *e + n + 1;
    return NULL;
}

/* Kafka topic names: 1-249 of [A-Za-z0-9._-]. */
static int topic_name_ok(const char *t) {
    size_t n = strlen(t);
    if (n < 1 || n > 249) return 0;
    for (const char *p = t; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '_' && *p != '-') return 0;
    return 1;
}

static int id_ok(const char *s, size_t max) {
    size_t n = strlen(s);
    if (n < 1 || n > max) return 0;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("._:-", *p)) return 0;
    return 1;
}

/* redis://[user[:password]@]host[:port][/db] - the same grammar the Redis
 * client accepts; checked here so a typo fails at start with a clear message. */
static int check_redis_url(const char *u, inf_error *err) {
    const char *what = "--redis / INFERNO_REDIS";
    if (strncmp(u, "redis://", 8) != 0)
        return inf_error_set(err, INF_EINVAL, "%s: '%s' must start with redis:// "
                             "(redis://[user:password@]host:port[/db]; rediss:// TLS is not supported)", what, u);
    const char *p = u + 8;
    const char *at = strrchr(p, '@');
    if (at) p = at + 1;
    const char *slash = strchr(p, '/');
    size_t hostport_len = slash ? (size_t)(slash - p) : strlen(p);
    if (hostport_len == 0) return inf_error_set(err, INF_EINVAL, "%s: '%s' has no host", what, u);
    char hp[512];
    if (hostport_len >= sizeof hp) return inf_error_set(err, INF_EINVAL, "%s: host too long", what);
    memcpy(hp, p, hostport_len);
    hp[hostport_len] = '\0';
    char *colon = hp[0] == '[' ? strstr(hp, "]:") : strrchr(hp, ':');
    if (colon) {
        if (hp[0] == '[') colon++;
        char *end;
        errno = 0;
        long port = strtol(colon + 1, &end, 10);
        if (errno || end == colon + 1 || *end || port < 1 || port > 65535)
            return inf_error_set(err, INF_EINVAL, "%s: '%s' has an invalid port (1-65535)", what, u);
        if (colon == hp) return inf_error_set(err, INF_EINVAL, "%s: '%s' has no host", what, u);
    }
    if (slash && slash[1]) {
        char *end;
        errno = 0;
        long db = strtol(slash + 1, &end, 10);
        if (errno || *end || db < 0 || db > 1000000)
            return inf_error_set(err, INF_EINVAL, "%s: '%s' has an invalid database number", what, u);
    }
    return 0;
}

static int validate(wcfg *c, int need_model, inf_error *err) {
    if (need_model) {
        if (!c->model || !*c->model)
            return inf_error_set(err, INF_EINVAL, "no model: pass --model FILE (or INFERNO_MODEL)");
        if (pull_is_url(c->model)) {
            char url[4096];
            if (pull_resolve_url(c->model, url, sizeof url, err)) return inf_error_wrap(err, INF_EINVAL, "--model");
            if (!*c->model_cache_dir)
                return inf_error_set(err, INF_EINVAL, "--model is a URL but there is no cache folder: set "
                                                      "--model-cache-dir (neither XDG_CACHE_HOME nor HOME is usable)");
        } else if (access(c->model, R_OK) != 0) {
            return inf_error_set(err, INF_EINVAL, "--model: cannot read '%s': %s", c->model, strerror(errno));
        }
    }
    if (*c->model_sha256 && (strlen(c->model_sha256) != 64 || strspn(c->model_sha256, "0123456789abcdefABCDEF") != 64))
        return inf_error_set(err, INF_EINVAL, "--model-sha256: '%s' is not 64 hexadecimal digits", c->model_sha256);
    if (need_model && !*c->model_name) {
        const char *b = strrchr(c->model, '/');
        b = b ? b + 1 : c->model;
        size_t n = strlen(b);
        if (n > 5 && !strcmp(b + n - 5, ".gguf")) n -= 5;
        free(c->model_name);
        if (!(c->model_name = strndup(b, n))) return inf_error_set(err, INF_ENOMEM, "out of memory");
    }
    if (!*c->brokers) return inf_error_set(err, INF_EINVAL, "--brokers / INFERNO_BROKERS must not be empty");
    for (const char *p = c->brokers; *p; p++)
        if (isspace((unsigned char)*p))
            return inf_error_set(err, INF_EINVAL, "--brokers: '%s' must not contain spaces (HOST:PORT,HOST:PORT)",
                                 c->brokers);
    int rc = check_redis_url(c->redis_url, err);
    if (rc) return rc;
    /* topics */
    for (int i = 0; i < c->n_topics; i++) free(c->topics[i]);
    c->n_topics = 0;
    char *dup = strdup(c->topics_csv), *save = NULL;
    if (!dup) return inf_error_set(err, INF_ENOMEM, "out of memory");
    for (char *t = strtok_r(dup, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        t = trim(t);
        if (!topic_name_ok(t)) {
            rc = inf_error_set(err, INF_EINVAL, "--topics: '%s' is not a valid topic name (1-249 of [A-Za-z0-9._-])", t);
            break;
        }
        if (c->n_topics == WCFG_MAX_TOPICS) {
            rc = inf_error_set(err, INF_EINVAL, "--topics: at most %d topics (high,normal,low)", WCFG_MAX_TOPICS);
            break;
        }
        for (int k = 0; k < c->n_topics; k++)
            if (!strcmp(c->topics[k], t)) rc = inf_error_set(err, INF_EINVAL, "--topics: '%s' given twice", t);
        if (rc) break;
        if (!(c->topics[c->n_topics] = strdup(t))) { rc = inf_error_set(err, INF_ENOMEM, "out of memory"); break; }
        c->n_topics++;
    }
    free(dup);
    if (rc) return rc;
    if (c->n_topics == 0) return inf_error_set(err, INF_EINVAL, "--topics: at least one topic is needed");
    if (!topic_name_ok(c->dlq_topic))
        return inf_error_set(err, INF_EINVAL, "--dlq-topic: '%s' is not a valid topic name", c->dlq_topic);
    for (int k = 0; k < c->n_topics; k++)
        if (!strcmp(c->topics[k], c->dlq_topic))
            return inf_error_set(err, INF_EINVAL, "--dlq-topic: '%s' is also a request topic", c->dlq_topic);
    if (!*c->group) return inf_error_set(err, INF_EINVAL, "--group must not be empty");
    if (*c->group_instance_id && !id_ok(c->group_instance_id, 249))
        return inf_error_set(err, INF_EINVAL, "--group-instance-id: '%s' must be 1-249 of [A-Za-z0-9._:-]",
                             c->group_instance_id);
    if (!*c->worker_id) {
        char host[256] = "localhost", id[WCFG_WORKER_ID_MAX + 1];
        if (gethostname(host, sizeof host - 1) != 0) strcpy(host, "localhost");
        host[40] = '\0';
        for (char *p = host; *p; p++)
            if (!isalnum((unsigned char)*p) && !strchr("._:-", *p)) *p = '-';
        snprintf(id, sizeof id, "%s-%ld", host, (long)getpid());
        free(c->worker_id);
        if (!(c->worker_id = strdup(id))) return inf_error_set(err, INF_ENOMEM, "out of memory");
    }
    if (!id_ok(c->worker_id, WCFG_WORKER_ID_MAX))
        return inf_error_set(err, INF_EINVAL, "--worker-id: '%s' must be 1-%d of [A-Za-z0-9._:-]", c->worker_id,
                             WCFG_WORKER_ID_MAX);
    if (c->max_batched_tokens < c->max_num_seqs)
        return inf_error_set(err, INF_EINVAL, "--max-batched-tokens (%d) must be >= --max-num-seqs (%d)",
                             c->max_batched_tokens, c->max_num_seqs);
    if (c->max_inflight == 0) c->max_inflight = 2 * c->max_num_seqs;
    if (c->urgent_reserve < 0) {
        c->urgent_reserve = c->max_inflight / 8;
        while (c->urgent_reserve > 0 && c->max_inflight - (c->n_topics - 1) * c->urgent_reserve < 1)
            c->urgent_reserve--;
    } else if (c->max_inflight - (c->n_topics - 1) * c->urgent_reserve < 1) {
        return inf_error_set(err, INF_EINVAL,
                             "--urgent-reserve %d leaves no slot for the least urgent of %d topics (max-inflight %d)",
                             c->urgent_reserve, c->n_topics, c->max_inflight);
    }
    if (c->heartbeat_ttl_s == 0) {
        c->heartbeat_ttl_s = (3 * c->heartbeat_ms + 999) / 1000;
        if (c->heartbeat_ttl_s < 1) c->heartbeat_ttl_s = 1;
    } else if (c->heartbeat_ttl_s * 1000 < c->heartbeat_ms) {
        return inf_error_set(err, INF_EINVAL, "--heartbeat-ttl-s (%d) must cover one --heartbeat-ms interval (%d ms)",
                             c->heartbeat_ttl_s, c->heartbeat_ms);
    }
    if (!whttp_addr_disabled(c->metrics_addr)) {
        const char *colon = strrchr(c->metrics_addr, ':');
        char *end;
        long port = colon ? strtol(colon + 1, &end, 10) : -1;
        if (!colon || colon == c->metrics_addr || end == colon + 1 || *end || port < 0 || port > 65535)
            return inf_error_set(err, INF_EINVAL, "--metrics-addr: '%s' is not HOST:PORT", c->metrics_addr);
    }
    if (!*c->out_prefix) return inf_error_set(err, INF_EINVAL, "--out-prefix must not be empty");
    if (!*c->cancel_channel) return inf_error_set(err, INF_EINVAL, "--cancel-channel must not be empty");
    if (!*c->cancel_key_prefix) return inf_error_set(err, INF_EINVAL, "--cancel-key-prefix must not be empty");
    if (*c->schemas) {
        char *s = strdup(c->schemas), *sv = NULL;
        if (!s) return inf_error_set(err, INF_ENOMEM, "out of memory");
        for (char *t = strtok_r(s, ",", &sv); t && !rc; t = strtok_r(NULL, ",", &sv)) {
            char *eq = strchr(t, '='), *end;
            long id = eq ? strtol(t, &end, 10) : 0;
            if (!eq || end != eq || id < -1 || id > INT32_MAX)
                rc = inf_error_set(err, INF_EINVAL, "--schemas: '%s' is not ID=FILE (ID >= 0, or -1)", t);
            else if (access(eq + 1, R_OK) != 0)
                rc = inf_error_set(err, INF_EINVAL, "--schemas: cannot read '%s': %s", eq + 1, strerror(errno));
        }
        free(s);
        if (rc) return rc;
    }
    return 0;
}

void wcfg_free(wcfg *c) {
    if (!c) return;
    char *base = (char *)c;
    for (int i = 0; i < N_OPTS; i++)
        if (OPTS[i].type == T_STR || (OPTS[i].type == T_ENUM && OPTS[i].off != F(log_level)))
            free(*(char **)(base + OPTS[i].off));
    for (int i = 0; i < c->n_props; i++) free(c->props[i]);
    for (int i = 0; i < c->n_topics; i++) free(c->topics[i]);
    free(c->hf_token);
    memset(c, 0, sizeof *c);
}

/* Splits "--name=value" / "--name value" / "-X value" / "-Xvalue". Returns the
 * option (or NULL with err set) and *val (NULL when a bare flag). */
static const opt *flag_at(int argc, char **argv, int *i, const char **val, inf_error *err) {
    const char *a = argv[*i];
    const opt *o = NULL;
    *val = NULL;
    if (a[0] == '-' && a[1] == '-') {
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t n = eq ? (size_t)(eq - name) : strlen(name);
        o = find_long(name, n);
        if (!o) {
            inf_error_set(err, INF_EINVAL, "unknown flag '%.*s' (see inferno-worker --help)", (int)(n + 2), a);
            return NULL;
        }
        if (eq) { *val = eq + 1; return o; }
    } else if (a[0] == '-' && a[1] && a[1] != '-') {
        o = find_short(a[1]);
        if (!o) {
            inf_error_set(err, INF_EINVAL, "unknown flag '-%c' (see inferno-worker --help)", a[1]);
            return NULL;
        }
        if (a[2]) { *val = a + 2; return o; }
    } else {
        inf_error_set(err, INF_EINVAL, "unexpected argument '%s' (flags only; see inferno-worker --help)", a);
        return NULL;
    }
    if (*i + 1 >= argc) {
        inf_error_set(err, INF_EINVAL, "%s needs a value (%s)", a, o->metavar);
        return NULL;
    }
    *val = argv[++*i];
    return o;
}

int wcfg_parse(wcfg *c, int argc, char **argv, char **envp, inf_error *err) {
    memset(c, 0, sizeof *c);
    int rc = 0, mode = WCFG_RUN;
    /* 1. defaults, through the same parser as every other source */
    for (int i = 0; i < N_OPTS && !rc; i++)
        if (OPTS[i].def) rc = set_opt(c, &OPTS[i], OPTS[i].def, "default", SRC_DEFAULT, err);
    /* help / version, and the config file's name (flag > environment) */
    const char *file = env_get(envp, "INFERNO_CONFIG");
    for (int i = 1; i < argc && !rc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) mode = WCFG_HELP;
        else if (!strcmp(argv[i], "--help-markdown")) mode = WCFG_HELP_MD;
        else if (!strcmp(argv[i], "--version")) mode = WCFG_VERSION;
        else {
            const char *v;
            const opt *o = flag_at(argc, argv, &i, &v, err);
            if (!o) rc = err ? err->code : INF_EINVAL;
            else if (o->off == F(config_file)) file = v;
        }
    }
    if (!rc && mode != WCFG_RUN) return mode;
    /* 2. config file */
    if (!rc && file && *file) {
        rc = set_opt(c, find_long("config", 6), file, "--config", SRC_FLAG, err);
        if (!rc) rc = load_file(c, file, err);
    }
    /* 3. environment */
    for (int i = 0; i < N_OPTS && !rc; i++) {
        if (OPTS[i].off == F(config_file)) continue;
        const char *v = env_get(envp, OPTS[i].env);
        if (v && (*v || OPTS[i].type == T_STR)) rc = set_opt(c, &OPTS[i], v, OPTS[i].env, SRC_ENV, err);
    }
    /* 4. flags */
    for (int i = 1; i < argc && !rc; i++) {
        const char *v;
        char where[96];
        const opt *o = flag_at(argc, argv, &i, &v, err);
        if (!o) { rc = INF_EINVAL; break; }
        if (o->off == F(config_file)) continue;
        snprintf(where, sizeof where, "--%s", o->name);
        rc = set_opt(c, o, v, where, SRC_FLAG, err);
    }
    /* 5. what only the environment gives: the default cache folder, the token */
    if (!rc && !*c->model_cache_dir && pull_is_url(c->model)) {
        char dir[PULL_PATH_MAX];
        if (pull_default_dir(env_get(envp, "XDG_CACHE_HOME"), env_get(envp, "HOME"), dir, sizeof dir, NULL) == 0)
            rc = set_opt(c, find_long("model-cache-dir", 15), dir, "default", SRC_DEFAULT, err);
    }
    const char *tok = env_get(envp, "HF_TOKEN");
    if (!rc && tok && *tok && !(c->hf_token = strdup(tok))) rc = inf_error_set(err, INF_ENOMEM, "out of memory");
    if (!rc) rc = validate(c, 1, err);
    if (rc) wcfg_free(c);
    return rc ? rc : WCFG_RUN;
}

static const char *type_default(const opt *o) {
    if (o->type == T_LIST) return "(none)";
    if (!o->def) return "(required)";
    if (!*o->def) return "\"\"";
    return o->def;
}

void wcfg_print_help(FILE *out) {
    fprintf(out,
            "usage: inferno-worker --model FILE/URL --brokers HOST:PORT --redis redis://HOST:PORT [options]\n"
            "\n"
            "Serves LLM generation requests from Kafka priority topics and streams the\n"
            "tokens to Redis (docs/worker.md). Every flag can also be given as the\n"
            "environment variable shown, or as `name = value` in the --config file;\n"
            "precedence: flag > environment > file > default.\n\n");
    for (int i = 0; i < N_OPTS; i++) {
        const opt *o = &OPTS[i];
        char flag[96];
        if (o->short_flag) snprintf(flag, sizeof flag, "-%c, --%s %s", o->short_flag, o->name, o->metavar);
        else snprintf(flag, sizeof flag, "    --%s %s", o->name, o->metavar);
        fprintf(out, "  %-36s %s\n", flag, o->help);
        fprintf(out, "  %-36s [env %s; default %s]\n", "", o->env, type_default(o));
        if (o->choices) fprintf(out, "  %-36s [one of %s]\n", "", o->choices);
    }
    fprintf(out, "\n  -h, --help                           this text\n"
                 "      --help-markdown                  the same reference as a Markdown table\n"
                 "      --version                        print the version\n"
                 "\nSignals: SIGTERM/SIGINT drain (finish in-flight requests up to --drain-timeout-s,\n"
                 "then abort them), a second one aborts at once; exit status 0 after a clean stop.\n");
}

void wcfg_print_markdown(FILE *out) {
    fprintf(out, "| flag | environment | default | meaning |\n|---|---|---|---|\n");
    for (int i = 0; i < N_OPTS; i++) {
        const opt *o = &OPTS[i];
        fprintf(out, "| `--%s %s`", o->name, o->metavar);
        if (o->short_flag) fprintf(out, " (`-%c`)", o->short_flag);
        fprintf(out, " | `%s` | ", o->env);
        const char *d = type_default(o);
        if (d[0] == '(') fprintf(out, "%s", d);
        else fprintf(out, "`%s`", d);
        fprintf(out, " | %s", o->help);
        if (o->choices) fprintf(out, " One of `%s`.", o->choices);
        fprintf(out, " |\n");
    }
}

void wcfg_print_effective(const wcfg *c, FILE *out) {
    const char *base = (const char *)c;
    for (int i = 0; i < N_OPTS; i++) {
        const opt *o = &OPTS[i];
        fprintf(out, "%s = ", o->name);
        switch (o->type) {
        case T_STR:
        case T_ENUM: {
            if (o->off == F(log_level)) { fprintf(out, "%s\n", wcfg_log_level_name(c->log_level)); break; }
            const char *s = *(char *const *)(base + o->off);
            if (o->off == F(redis_url) && s && strchr(s, '@')) {
                /* mask the password: redis://user:****@host */
                const char *at = strrchr(s, '@'), *colon = strchr(s + 8, ':');
                if (colon && colon < at) fprintf(out, "%.*s:****%s\n", (int)(colon - s), s, at);
                else fprintf(out, "%s\n", s);
            } else {
                fprintf(out, "%s\n", s ? s : "");
            }
            break;
        }
        case T_INT:
        case T_BOOL: fprintf(out, "%d\n", *(const int *)(base + o->off)); break;
        case T_LONG: fprintf(out, "%ld\n", *(const long *)(base + o->off)); break;
        case T_FRAC: fprintf(out, "%g\n", *(const double *)(base + o->off)); break;
        case T_LIST:
            for (int k = 0; k < c->n_props; k++) fprintf(out, "%s%s", k ? " " : "", c->props[k]);
            fprintf(out, "\n");
            break;
        }
    }
}
