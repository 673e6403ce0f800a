/* wlog.c - see wlog.h. */
#include "wlog.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 4096

int wlog_json_for(const char *format) {
    if (format && !strcmp(format, "json")) return 1;
    if (format && !strcmp(format, "plain")) return 0;
    return !isatty(STDERR_FILENO);
}

/* Appends s as a JSON string (quotes included) to out[*n..cap); truncates
 * rather than overflow (the line stays valid JSON: see wlog_at). */
static void json_str(char *out, size_t cap, size_t *n, const char *s) {
    static const char hex[] = "0123456789abcdef";
    size_t i = *n;
    if (i + 2 >= cap) return;
    out[i++] = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p && i + 8 < cap; p++) {
        unsigned char ch = *p;
        if (ch == '"' || ch == '\\') { out[i++] = '\\'; out[i++] = (char)ch; }
        else if (ch == '\n') { out[i++] = '\\'; out[i++] = 'n'; }
        else if (ch == '\t') { out[i++] = '\\'; out[i++] = 't'; }
        else if (ch == '\r') { out[i++] = '\\'; out[i++] = 'r'; }
        else if (ch < 0x20) {
            memcpy(out + i, "\\u00", 4);
            i += 4;
            out[i++] = hex[ch >> 4];
            out[i++] = hex[ch & 15];
        } else {
            out[i++] = (char)ch;
        }
    }
    out[i++] = '"';
    *n = i;
}

void wlog_at(const wlog *lg, wcfg_log_level lvl, const char *req_id, const char *fmt, ...) {
    if (lg && lvl > lg->level) return;
    static const char *names[] = {"ERROR", "WARN", "INFO", "DEBUG"};
    static const char *lower[] = {"error", "warn", "info", "debug"};
    int li = lvl < 0 || lvl > 3 ? 0 : (int)lvl;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char stamp[96];
    snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    char msg[LINE_MAX_BYTES];
    va_list ap;
    va_start(ap, fmt);
    int mn = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (mn < 0) msg[0] = '\0';

    char line[2 * LINE_MAX_BYTES];
    size_t n = 0;
    if (lg && lg->json) {
        /* the message is escaped last, so truncation can only cut it short */
        n = (size_t)snprintf(line, sizeof line, "{\"ts\":\"%s\",\"level\":\"%s\"", stamp, lower[li]);
        if (lg->worker_id && *lg->worker_id) {
            memcpy(line + n, ",\"worker\":", 10);
            n += 10;
            json_str(line, sizeof line - 64, &n, lg->worker_id);
        }
        if (req_id && *req_id) {
            memcpy(line + n, ",\"request_id\":", 14);
            n += 14;
            json_str(line, sizeof line - 64, &n, req_id);
        }
        memcpy(line + n, ",\"msg\":", 7);
        n += 7;
        json_str(line, sizeof line - 4, &n, msg);
        line[n++] = '}';
    } else {
        int k = snprintf(line, sizeof line, "%s %-5s ", stamp, names[li]);
        n = (size_t)k;
        if (req_id && *req_id) n += (size_t)snprintf(line + n, sizeof line - n, "[%s] ", req_id);
        if (n < sizeof line) n += (size_t)snprintf(line + n, sizeof line - n, "%s", msg);
        if (n >= sizeof line) n = sizeof line - 1;
    }
    /* one write per line so lines of concurrent processes do not interleave */
    line[n++] = '\n';
    fwrite(line, 1, n, stderr);
    fflush(stderr);
}
