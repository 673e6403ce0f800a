/* wlog.h - the worker's leveled logger: one line per message on stderr,
 * written with a single write so lines of concurrent processes do not
 * interleave. Plain: "2024-01-02T03:04:05.678Z LEVEL [request_id] text".
 * JSON (one object per line, for log collectors):
 * {"ts":"2024-01-02T03:04:05.678Z","level":"info","worker":"w1","request_id":"r1","msg":"text"}
 * (worker and request_id only when known). The settings live in the
 * caller's wlog struct (no global state). */
#ifndef INF_WORKER_WLOG_H
#define INF_WORKER_WLOG_H

#include "config.h"

typedef struct wlog {
    wcfg_log_level level;
    int json;              /* 0: plain text, 1: JSON lines */
    const char *worker_id; /* NULL: not shown; must outlive the logger */
} wlog;

/* Logs when lvl <= lg->level. req_id may be NULL or "" (no request). */
void wlog_at(const wlog *lg, wcfg_log_level lvl, const char *req_id, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* 1 when --log-format `format` means JSON: "json", or "auto" (and NULL)
 * when stderr is not a terminal. */
int wlog_json_for(const char *format);

#define WLOG_E(lg, id, ...) wlog_at((lg), WCFG_LOG_ERROR, (id), __VA_ARGS__)
#define WLOG_W(lg, id, ...) wlog_at((lg), WCFG_LOG_WARN, (id), __VA_ARGS__)
#define WLOG_I(lg, id, ...) wlog_at((lg), WCFG_LOG_INFO, (id), __VA_ARGS__)
#define WLOG_D(lg, id, ...) wlog_at((lg), WCFG_LOG_DEBUG, (id), __VA_ARGS__)

#endif
