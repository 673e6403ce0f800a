/* gw_config.h - inferno-gateway configuration: command-line flags,
 * INFERNO_GATEWAY_* environment variables and an optional key = value file.
 *
 * As for the worker (worker/config.h), every setting is one row of a table
 * (gw_config.c) with its flag, environment variable, config-file key,
 * default and help; --help, --help-markdown (docs/gateway.md) and the
 * parsers are generated from it. Precedence: flag > environment > file >
 * default; the list settings (-X, --route) accumulate file, environment,
 * flags in that order.
 *
 * Library code: the environment comes in as an envp list, never from
 * getenv(); nothing here exits.
 */
#ifndef INF_GW_CONFIG_H
#define INF_GW_CONFIG_H

#include <stdio.h>

#include "status.h"

#define GWC_MAX_LIST 64

typedef struct gw_route {
    char *model;        /* model id as the workers announce it */
    char *topic_prefix; /* topics PREFIX.high, PREFIX.normal, PREFIX.low */
} gw_route;

/* The resolved configuration; every string is owned (gwc_free). */
typedef struct gwc {
    char *listen;             /* HOST:PORT */
    int http_threads;
    int max_connections;
    int max_body_bytes;
    char *brokers;
    char *topic_prefix;       /* default topic set for every model */
    char *props[GWC_MAX_LIST];/* librdkafka "key=value" */
    int n_props;
    char *routes_raw[GWC_MAX_LIST]; /* "MODEL=PREFIX" as given */
    int n_routes;
    gw_route routes[GWC_MAX_LIST];  /* parsed routes_raw */
    char *redis_url;
    int redis_readers;
    char *out_prefix;
    char *cancel_channel;
    char *cancel_key_prefix;
    char *workers_zset;
    char *worker_key_prefix;
    char *wake_prefix;
    char *gateway_id;         /* "" -> <hostname>-<pid> */
    int workers_poll_ms;
    int worker_stale_ms;
    int max_queued;           /* 0 = no bound */
    int start_timeout_ms;
    int request_timeout_s;
    int stream_buffer_kb;
    char *api_keys_file;
    char *api_keys;           /* comma-separated */
    double rate_limit_rps;    /* per key; 0 = off */
    int rate_limit_burst;
    int max_streams_per_key;  /* 0 = off */
    int log_level;            /* 0 error .. 3 debug */
    char *config_file;
} gwc;

enum { GWC_RUN = 0, GWC_HELP = 1, GWC_HELP_MD = 2 };

/* Resolves the configuration from argv (argv[0] skipped), envp (a
 * NULL-terminated "NAME=value" list; NULL = none) and the file named by
 * --config / INFERNO_GATEWAY_CONFIG. Returns GWC_RUN with *c filled (free
 * with gwc_free), GWC_HELP / GWC_HELP_MD (then *c holds defaults and must
 * still be freed), or INF_EINVAL / INF_EIO with a message naming the flag,
 * variable or file line (then *c is freed). */
int gwc_parse(gwc *c, int argc, char **argv, char **envp, inf_error *err);

/* Frees every string c owns and zeroes it; NULL is fine. */
void gwc_free(gwc *c);

/* Usage text and one entry per setting (generated from the table). */
void gwc_print_help(FILE *out);

/* The reference as a Markdown table (docs/gateway.md embeds it verbatim). */
void gwc_print_markdown(FILE *out);

/* The topic prefix serving model (its --route, else --topic-prefix). The
 * string belongs to c. */
const char *gwc_topic_prefix(const gwc *c, const char *model);

#endif
