/* status.h - error codes and the error-message carrier shared by every module.
 *
 * Convention (all modules): functions return an int status, 0 on success and a
 * negative INF_E* code on failure. Functions that can fail take a trailing
 * `inf_error *err` (may be NULL); on failure they fill err->msg with one
 * human-readable sentence naming what failed and why. No module calls exit().
 */
#ifndef INF_STATUS_H
#define INF_STATUS_H

#include <stddef.h>

enum {
    INF_OK = 0,
    INF_EINVAL = -1,       /* invalid argument or parameter */
    INF_EIO = -2,          /* I/O or system call failure */
    INF_ENOMEM = -3,       /* allocation failed or budget exhausted */
    INF_EFORMAT = -4,      /* malformed input (file, message, encoding) */
    INF_EUNSUPPORTED = -5, /* well-formed but not supported */
    INF_ERANGE = -6,       /* value out of its allowed range */
    INF_EEXIST = -7,       /* already exists (duplicate id) */
    INF_ENOTFOUND = -8,    /* no such key, tensor, id */
    INF_EFULL = -9,        /* no capacity left right now; retry later */
    INF_ETIMEOUT = -10,    /* timed out */
    INF_ESTATE = -11       /* operation not valid in the current state */
};

#define INF_ERROR_MSG_MAX 512

typedef struct inf_error {
    int code;
    char msg[INF_ERROR_MSG_MAX];
} inf_error;

/* Fills err (if non-NULL) with code and a printf-style message; returns code so
 * callers can write `return inf_error_set(err, INF_EINVAL, "...")`. */
int inf_error_set(inf_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes an existing message with more context ("loading x: <old msg>");
 * returns err->code (or code if err is NULL). */
int inf_error_wrap(inf_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Clears err to "no error". */
void inf_error_clear(inf_error *err);

/* Static name of a status code, e.g. "EINVAL". */
const char *inf_status_name(int code);

#endif
