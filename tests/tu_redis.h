/* tu_redis.h - a private redis-server for tests.
 *
 * tu_redis_start() runs `redis-server --port P --bind 127.0.0.1 --save ''
 * --appendonly no --daemonize no --dir <own temp dir>` (plus extra config
 * arguments) on a free loopback port, waits (bounded, 5 s) until it answers
 * PING, and remembers its PID. Everything it starts is stopped by PID: by
 * tu_redis_stop/tu_redis_free, and as a safety net at process exit and (via
 * PR_SET_PDEATHSIG) when the test process dies. Start servers from the main
 * thread (the death signal follows the thread that forked).
 *
 * Typical use:
 *     tu_redis *srv = tu_redis_start(NULL);
 *     if (!srv) { tu_skip("redis-server unavailable"); return; }
 *     ... tu_redis_url(srv) ... tu_redis_port(srv) ...
 *     tu_redis_stop(srv);            // server down, port kept
 *     tu_redis_restart(srv);         // same port, same arguments, empty data
 *     tu_redis_free(srv);            // stops it if running, frees
 *
 * Implemented in tests/test_tu_redis.c (named test_*.c so the Makefile links
 * it into bin/inferno-tests; it also registers the suite "tu_redis"). With
 * tools/devtest.sh pass tests/test_tu_redis.c among the sources.
 */
#ifndef INF_TU_REDIS_H
#define INF_TU_REDIS_H

#include <sys/types.h>

#include <hiredis/hiredis.h>

typedef struct tu_redis tu_redis;

/* 1 if /usr/bin/redis-server (or redis-server on PATH) can be run. */
int tu_redis_available(void);

/* Starts a server; extra_args is NULL or a NULL-terminated list of further
 * redis-server arguments, e.g. {"--user", "alice", "on", ">pw", "~*", "&*",
 * "+@all", NULL}. Returns NULL (after printing why to stderr) on failure. */
tu_redis *tu_redis_start(const char *const *extra_args);

/* Stops the server (SIGTERM, bounded wait, then SIGKILL) and reaps it; the
 * port and arguments are kept for tu_redis_restart. 0 if it was stopped (or
 * was not running). */
int tu_redis_stop(tu_redis *r);

/* Like tu_redis_stop but with SIGKILL at once (a crash). */
int tu_redis_kill(tu_redis *r);

/* Starts the server again on the same port with the same arguments and the
 * same directory (data is gone unless extra_args turned persistence on,
 * e.g. "--appendonly" "yes": then it is reloaded) and waits for PING; retries for up to 5 s while
 * the port is still busy. 0 on success, -1 on failure. */
int tu_redis_restart(tu_redis *r);

/* Stops the server if running, removes its temp dir, frees r. NULL ok. */
void tu_redis_free(tu_redis *r);

int tu_redis_port(const tu_redis *r);
pid_t tu_redis_pid(const tu_redis *r);       /* 0 while stopped */
int tu_redis_running(const tu_redis *r);

/* "redis://127.0.0.1:PORT" (static inside r). */
const char *tu_redis_url(const tu_redis *r);

/* New blocking hiredis context to the server (default user, 2 s timeouts),
 * or NULL. Caller redisFree()s it. */
redisContext *tu_redis_connect(const tu_redis *r);

/* Runs one command (redisCommand format) on a fresh connection and returns
 * the reply (caller freeReplyObject()s) or NULL on connection failure. */
redisReply *tu_redis_cmd(const tu_redis *r, const char *fmt, ...);

/* Path of the server's log file (static inside r), for failure messages. */
const char *tu_redis_log(const tu_redis *r);

#endif
