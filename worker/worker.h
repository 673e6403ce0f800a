/* worker.h - the inferno worker: Kafka priority topics in, engine, Redis
 * streams out (docs/worker.md).
 *
 * One thread runs everything (worker_run): it polls Kafka with short
 * timeouts, decodes and validates requests, hands them to the engine, steps
 * the engine while it has work, turns engine events into Redis stream
 * entries, and commits a Kafka offset only after Redis confirmed the final
 * entry of every request at or below it (at-least-once). Heartbeats, cancels
 * and acknowledgements are serviced between engine steps.
 */
#ifndef INF_WORKER_H
#define INF_WORKER_H

#include <signal.h>

#include "config.h"
#include "status.h"

#define WORKER_VERSION "0.5.0"

typedef struct worker worker;

/* Loads the model and creates the Kafka consumer, the Redis client and the
 * Avro registry described by cfg (which must outlive the worker). Kafka and
 * Redis may be down: they are retried. On success *out is owned by the
 * caller (worker_free). */
int worker_create(worker **out, const wcfg *cfg, inf_error *err);

/* Serves until *signals becomes nonzero (the count of SIGTERM/SIGINT seen):
 * 1 = drain (stop taking work, finish in-flight requests for at most
 * drain_timeout_s, then abort them, wait for Redis to confirm the final
 * entries, commit), 2 or more = abort in-flight requests at once. Then
 * leaves the group, removes the heartbeat and returns 0. A negative return
 * means the engine failed (err says why); offsets of unfinished requests are
 * not committed, so they are redelivered. */
int worker_run(worker *w, const volatile sig_atomic_t *signals, inf_error *err);

/* Frees everything (the engine, the clients). NULL is fine. */
void worker_free(worker *w);

#endif
