/* inferno-worker - serves LLM requests from Kafka, streams tokens to Redis.
 *
 *   inferno-worker --model FILE/URL --brokers HOST:PORT --redis redis://HOST:PORT [options]
 *
 * See --help (generated from worker/config.c) and docs/worker.md. Exit
 * status: 0 after a clean stop (SIGTERM/SIGINT), 2 for a configuration
 * error, 1 when the worker could not start or the engine failed. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "tools/pull.h"
#include "worker.h"
#include "wlog.h"

extern char **environ;

/* Count of SIGTERM/SIGINT received; read by the worker's loop. */
static volatile sig_atomic_t g_signals;

static void on_signal(int sig) {
    (void)sig;
    if (g_signals < 100) g_signals++;
}

int main(int argc, char **argv) {
    wcfg cfg;
    inf_error err = {0};
    int rc = wcfg_parse(&cfg, argc, argv, environ, &err);
    if (rc < 0) {
        fprintf(stderr, "inferno-worker: %s\n", err.msg);
        return 2;
    }
    if (rc == WCFG_HELP) { wcfg_print_help(stdout); wcfg_free(&cfg); return 0; }
    if (rc == WCFG_HELP_MD) { wcfg_print_markdown(stdout); wcfg_free(&cfg); return 0; }
    if (rc == WCFG_VERSION) { printf("inferno-worker %s\n", WORKER_VERSION); wcfg_free(&cfg); return 0; }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    wlog lg = {cfg.log_level, wlog_json_for(cfg.log_format), cfg.worker_id};
    if (cfg.log_level >= WCFG_LOG_DEBUG) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        if (f) {
            wcfg_print_effective(&cfg, f);
            fclose(f);
            WLOG_D(&lg, NULL, "effective configuration:\n%s", buf);
            free(buf);
        }
    }
    /* libcurl's global init is not thread-safe: before the worker's threads */
    if (pull_is_url(cfg.model) && pull_global_init(&err)) {
        WLOG_E(&lg, NULL, "cannot start: %s", err.msg);
        wcfg_free(&cfg);
        return 1;
    }
    worker *w = NULL;
    rc = worker_create(&w, &cfg, &err);
    if (rc) {
        WLOG_E(&lg, NULL, "cannot start: %s", err.msg);
        wcfg_free(&cfg);
        return 1;
    }
    rc = worker_run(w, &g_signals, &err);
    worker_free(w);
    wcfg_free(&cfg);
    return rc ? 1 : 0;
}
