/* wlog.h - the worker's leveled logger: one line per message on stderr,
 * "2024-01-02T03:04:05.678Z LEVEL [request_id] text". The level lives in the
 * caller's wlog struct (no global state); the output stream is stderr. */
#ifndef INF_WORKER_WLOG_H
#define INF_WORKER_WLOG_H

#include "config.h"

typedef struct wlog {
    wcfg_log_level level;
} wlog;

/* Logs when lvl <= lg->level. req_id may be NULL or "" (no request). */
void wlog_at(const wlog *lg, wcfg_log_level lvl, const char *req_id, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define WLOG_E(lg, id, ...) wlog_at((lg), WCFG_LOG_ERROR, (id), __VA_ARGS__)
#define WLOG_W(lg, id, ...) wlog_at((lg), WCFG_LOG_WARN, (id), __VA_ARGS__)
#define WLOG_I(lg, id, ...) wlog_at((lg), WCFG_LOG_INFO, (id), __VA_ARGS__)
#define WLOG_D(lg, id, ...) wlog_at((lg), WCFG_LOG_DEBUG, (id), __VA_ARGS__)

#endif
