/* kafka_offsets.c - per-partition in-flight offset tracker (see kafka_offsets.h). */
#include "kafka_offsets.h"

#include <stdlib.h>
#include <string.h>

void kin_otrack_init(kin_otrack *t) {
    t->offs = NULL;
    t->n = t->cap = 0;
    t->max_seen = -1;
}

void kin_otrack_reset(kin_otrack *t) {
    free(t->offs);
    kin_otrack_init(t);
}

/* First index whose offset is >= off. */
static int lower_bound(const kin_otrack *t, int64_t off) {
    int lo = 0, hi = t->n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (t->offs[mid] < off) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

int kin_otrack_add(kin_otrack *t, int64_t off) {
    if (t->n == t->cap) {
        int nc = t->cap ? t->cap * 2 : 16;
        int64_t *p = realloc(t->offs, (size_t)nc * sizeof *p);
        if (!p) return -1;
        t->offs = p;
        t->cap = nc;
    }
    /* Offsets normally arrive ascending (append); a rewind (offset reset,
     * refetch) inserts in place so the minimum stays correct. */
    int i = (t->n == 0 || t->offs[t->n - 1] <= off) ? t->n : lower_bound(t, off);
    memmove(t->offs + i + 1, t->offs + i, (size_t)(t->n - i) * sizeof *t->offs);
    t->offs[i] = off;
    t->n++;
    if (off > t->max_seen) t->max_seen = off;
    return 0;
}

int kin_otrack_done(kin_otrack *t, int64_t off) {
    int i = lower_bound(t, off);
    if (i >= t->n || t->offs[i] != off) return -1;
    memmove(t->offs + i, t->offs + i + 1, (size_t)(t->n - i - 1) * sizeof *t->offs);
    t->n--;
    return 0;
}

int64_t kin_otrack_committable(const kin_otrack *t) {
    if (t->n > 0) return t->offs[0];
    return t->max_seen >= 0 ? t->max_seen + 1 : -1;
}
