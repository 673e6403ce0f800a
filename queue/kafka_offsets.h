/* kafka_offsets.h - per-partition in-flight offset tracker (internal to
 * queue/kafka_*.c). Requests on one partition finish out of order; the offset
 * that may be committed is the lowest one still unfinished, or the highest
 * one handed out + 1 when none is unfinished, so a restart redelivers every
 * unfinished message and never skips one. */
#ifndef INF_KAFKA_OFFSETS_H
#define INF_KAFKA_OFFSETS_H

#include <stdint.h>

typedef struct kin_otrack {
    int64_t *offs;    /* unfinished offsets, sorted ascending (a multiset) */
    int n, cap;
    int64_t max_seen; /* highest offset ever added, -1 none */
} kin_otrack;

/* Empty tracker (no allocation). */
void kin_otrack_init(kin_otrack *t);

/* Frees the array and empties t. */
void kin_otrack_reset(kin_otrack *t);

/* Records off as in flight. 0, or -1 when out of memory. */
int kin_otrack_add(kin_otrack *t, int64_t off);

/* Marks one in-flight copy of off finished. 0, or -1 when off is not in flight. */
int kin_otrack_done(kin_otrack *t, int64_t off);

/* Offset to commit (next to consume): lowest unfinished, else max_seen + 1;
 * -1 when nothing was ever added. */
int64_t kin_otrack_committable(const kin_otrack *t);

#endif
