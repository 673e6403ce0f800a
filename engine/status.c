/* status.c - error carrier helpers (see status.h). */
#include "status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int inf_error_set(inf_error *err, int code, const char *fmt, ...) {
    if (!err) return code;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return code;
}

int inf_error_wrap(inf_error *err, int code, const char *fmt, ...) {
    if (!err) return code;
    char prefix[INF_ERROR_MSG_MAX];
    char old[INF_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    old[sizeof old - 1] = '\0';
    if (err->code == 0) err->code = code;
    /* Truncation is acceptable: the message is for humans and stays bounded. */
    size_t n = strnlen(prefix, sizeof err->msg - 3);
    memcpy(err->msg, prefix, n);
    memcpy(err->msg + n, ": ", 2);
    size_t room = sizeof err->msg - n - 3;
    size_t m = strnlen(old, room);
    memcpy(err->msg + n + 2, old, m);
    err->msg[n + 2 + m] = '\0';
    return err->code;
}

void inf_error_clear(inf_error *err) {
    if (!err) return;
    err->code = 0;
    err->msg[0] = '\0';
}

const char *inf_status_name(int code) {
    switch (code) {
    case INF_OK: return "OK";
    case INF_EINVAL: return "EINVAL";
    case INF_EIO: return "EIO";
    case INF_ENOMEM: return "ENOMEM";
    case INF_EFORMAT: return "EFORMAT";
    case INF_EUNSUPPORTED: return "EUNSUPPORTED";
    case INF_ERANGE: return "ERANGE";
    case INF_EEXIST: return "EEXIST";
    case INF_ENOTFOUND: return "ENOTFOUND";
    case INF_EFULL: return "EFULL";
    case INF_ETIMEOUT: return "ETIMEOUT";
    case INF_ESTATE: return "ESTATE";
    default: return "EUNKNOWN";
    }
}
