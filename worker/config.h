/* config.h - inferno-worker configuration: command-line flags, INFERNO_*
 * environment variables and an optional key=value file.
 *
 * Every setting is one row of a single table (config.c): its flag, its
 * environment variable, its config-file key, its default and its help text.
 * --help, the Markdown reference in docs/worker.md (--help-markdown) and the
 * parser are all generated from that table, so they cannot drift apart.
 *
 * Precedence, per setting: flag > environment > config file > default. The
 * list setting -X (librdkafka properties) accumulates from every source in
 * the order file, environment, flags, so a later source overrides a key that
 * an earlier one set.
 */
#ifndef INF_WORKER_CONFIG_H
#define INF_WORKER_CONFIG_H

#include <stdio.h>

#include "status.h"

#define WCFG_MAX_TOPICS 3
#define WCFG_MAX_PROPS 64
#define WCFG_WORKER_ID_MAX 64

typedef enum wcfg_log_level {
    WCFG_LOG_ERROR = 0,
    WCFG_LOG_WARN = 1,
    WCFG_LOG_INFO = 2,
    WCFG_LOG_DEBUG = 3
} wcfg_log_level;

/* The resolved configuration. Every string is owned by the struct (freed by
 * wcfg_free); numeric fields hold validated values. */
typedef struct wcfg {
    /* model and engine */
    char *model;              /* a file, or an http(s):// / hf:// URL (tools/pull.h) */
    char *model_sha256;       /* expected digest of the model file; "" = not checked */
    char *model_cache_dir;    /* where URL models go; resolved from XDG_CACHE_HOME / HOME when empty */
    char *hf_token;           /* HF_TOKEN from the environment (a credential: no setting, never printed); NULL none */
    char *model_name;         /* announced model id; default: file name without .gguf */
    char *backend;            /* cpu | cuda | auto */
    int threads;              /* 0: all cores */
    char *cpu_isa;            /* auto | scalar | avx2 | avxvnni | avx512 */
    int kv_cache_mb;          /* 0: backend default */
    double gpu_memory_fraction; /* (0, 1]: KV share of free GPU memory (unless kv_cache_mb) */
    int max_num_seqs;
    int max_batched_tokens;
    int max_model_len;        /* 0: the model's context */
    int aging_ms;
    int prefix_caching;       /* 0/1 */
    /* Kafka */
    char *brokers;
    char *topics_csv;
    char *topics[WCFG_MAX_TOPICS]; /* split topics_csv, most urgent first */
    int n_topics;
    char *group;
    char *group_instance_id;  /* "" = static membership off */
    char *dlq_topic;
    int max_inflight;         /* 0: 2 x max_num_seqs */
    int urgent_reserve;       /* -1: max_inflight / 8 */
    int max_message_bytes;    /* request size limit; Kafka fetch and DLQ limits follow */
    char *props[WCFG_MAX_PROPS]; /* "key=value" librdkafka passthrough */
    int n_props;
    /* Redis */
    char *redis_url;
    char *out_prefix;
    long stream_maxlen;
    int stream_expire_s;
    int flush_ms;
    int flush_tokens;
    int max_pending_mb;
    char *cancel_channel;
    char *cancel_key_prefix;
    /* discovery and lifecycle */
    char *worker_id;          /* default: <hostname>-<pid> */
    int heartbeat_ms;
    int heartbeat_ttl_s;      /* 0: 3 heartbeat intervals, at least 1 s */
    int drain_timeout_s;
    char *metrics_addr;       /* HOST:PORT of /metrics /healthz /readyz; "" or "off": none */
    int health_stall_s;       /* /healthz fails when the loop stalls longer */
    wcfg_log_level log_level;
    char *log_format;         /* auto | plain | json (auto: plain on a TTY) */
    char *config_file;        /* "" when none */
    char *schemas;            /* "ID=FILE.avsc,..." extra writer schemas; "" none */
} wcfg;

/* Outcome of wcfg_parse besides errors. */
enum {
    WCFG_RUN = 0,       /* start the worker */
    WCFG_HELP = 1,      /* --help was given: print wcfg_print_help and exit 0 */
    WCFG_HELP_MD = 2,   /* --help-markdown: print wcfg_print_markdown, exit 0 */
    WCFG_VERSION = 3    /* --version */
};

/* Resolves the configuration from argv (argv[0] is skipped), the environment
 * (envp: NULL-terminated "NAME=value" list, e.g. `environ`; NULL = none) and
 * the config file named by --config / INFERNO_CONFIG. On success *cfg is
 * filled (caller frees with wcfg_free) and the return value is WCFG_RUN or
 * one of the WCFG_HELP* codes (then *cfg holds only defaults). On failure
 * returns INF_EINVAL / INF_EIO with a message naming the flag, variable or
 * file line and the accepted values; *cfg is left freed. Validation includes
 * that the model file is readable, or the model URL well-formed (only when
 * WCFG_RUN). A URL model's cache folder, when not given, is resolved here from
 * XDG_CACHE_HOME / HOME in envp, and HF_TOKEN is read from envp. */
int wcfg_parse(wcfg *cfg, int argc, char **argv, char **envp, inf_error *err);

/* Frees every string the config owns and zeroes it. NULL is fine. */
void wcfg_free(wcfg *cfg);

/* Prints usage and one line per setting: flag, environment variable, default
 * and help (generated from the table). */
void wcfg_print_help(FILE *out);

/* Prints the configuration reference as a Markdown table (docs/worker.md). */
void wcfg_print_markdown(FILE *out);

/* Prints "key = value" for every setting of cfg (the effective
 * configuration; the password in the Redis URL is masked). */
void wcfg_print_effective(const wcfg *cfg, FILE *out);

/* Static name of a log level ("error", "warn", "info", "debug"). */
const char *wcfg_log_level_name(wcfg_log_level l);

#endif
