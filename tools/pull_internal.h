/* pull_internal.h - between pull.c (files, cache, checks) and pull_http.c
 * (the libcurl transfer). Not part of the public API. */
#ifndef INF_PULL_INTERNAL_H
#define INF_PULL_INTERNAL_H

#include "pull.h"

/* Downloads url into the open, locked file fd (path `part`, for messages)
 * until it holds the whole body: resumes from fd's current size with a Range
 * request, starts over when the server answers 200, treats 416 with a total
 * equal to the size as complete, retries dropped connections and 408/429/5xx
 * (o->max_retries failed attempts in a row). *requests counts the transfers.
 * On error fd keeps what was received (resumable). */
int pull_http_download(const pull_opts *o, const char *url, int fd, const char *part, int *requests,
                       inf_error *err);

/* Emits one printf-style line through o->log (nothing when it is NULL). */
void pull_logf(const pull_opts *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
