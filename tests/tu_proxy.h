/* tu_proxy.h - a fault-injecting TCP proxy for tests, between a process
 * under test (the worker) and a server (redis-server, the Kafka mock broker),
 * so the paths that need a lost reply or a connection cut in the middle of a
 * command can be tested for real.
 *
 * The proxy listens on a free loopback port and opens one upstream
 * connection per accepted client; one thread (started by tu_proxy_start)
 * forwards both directions. Faults are set from the test's thread at any
 * time and apply within about 20 ms:
 *   - tu_proxy_cut: every open connection is closed now (both sides), as a
 *     network cut or a middlebox reset would;
 *   - tu_proxy_refuse: new connections are accepted and closed at once (the
 *     server looks down) while on;
 *   - tu_proxy_pause: nothing is forwarded while on; connections stay open (a
 *     stuck server or a partitioned network without resets);
 *   - tu_proxy_arm: a one-shot (or count-shot) trigger on the next client
 *     command that matches: TU_PROXY_LOSE_REPLY forwards the command whole,
 *     then swallows everything the server sends back on that connection and
 *     closes it 200 ms later (the command ran, its reply never arrived);
 *     TU_PROXY_CUT_MIDWAY forwards only the first part of the matching bytes
 *     and closes the connection at once (a command torn in the middle of a
 *     pipeline; the server sees a truncated request and drops it).
 * A Redis proxy (TU_PROXY_RAW) matches a substring of what the client writes
 * (e.g. "done" to hit the XADD of a final entry). A Kafka proxy
 * (TU_PROXY_KAFKA) forwards whole protocol frames, matches on a request's
 * API key (1 Fetch, 8 OffsetCommit, 0 Produce, ...) and rewrites the broker
 * address in responses (Metadata, FindCoordinator) from the upstream
 * broker's port to its own, so the client's later connections go through the
 * proxy too. Kafka mode supports one upstream broker (the harness's mock
 * cluster has one) reached as 127.0.0.1.
 *
 * Functions are thread-safe. Implemented in tests/test_tu_proxy.c, which also
 * registers the suite "tu_proxy" (the proxy's own tests). */
#ifndef INF_TU_PROXY_H
#define INF_TU_PROXY_H

typedef struct tu_proxy tu_proxy;

typedef enum tu_proxy_kind { TU_PROXY_RAW = 0, TU_PROXY_KAFKA = 1 } tu_proxy_kind;

typedef enum tu_proxy_action { TU_PROXY_LOSE_REPLY = 1, TU_PROXY_CUT_MIDWAY = 2 } tu_proxy_action;

/* Starts a proxy to 127.0.0.1:upstream_port. NULL (after printing why) on
 * failure. */
tu_proxy *tu_proxy_start(int upstream_port, tu_proxy_kind kind);

/* Stops the thread, closes every socket, frees p. NULL ok. */
void tu_proxy_free(tu_proxy *p);

/* The loopback port clients connect to. */
int tu_proxy_port(const tu_proxy *p);

/* "127.0.0.1:PORT" and "redis://127.0.0.1:PORT" (static inside p). */
const char *tu_proxy_addr(const tu_proxy *p);
const char *tu_proxy_redis_url(const tu_proxy *p);

/* Closes every open connection; returns when done (bounded, 2 s). */
void tu_proxy_cut(tu_proxy *p);
void tu_proxy_refuse(tu_proxy *p, int on);
void tu_proxy_pause(tu_proxy *p, int on);

/* Arms the trigger for the next count matching client commands (count 0
 * disarms). RAW: needle is a substring of the client's bytes (a match split
 * across two reads is not seen; commands are small). KAFKA: needle is
 * ignored and api_key selects the request; -1 for RAW. */
void tu_proxy_arm(tu_proxy *p, tu_proxy_action a, const char *needle, int api_key, int count);

/* How often the trigger fired, connections accepted, cuts done. */
int tu_proxy_fired(const tu_proxy *p);
int tu_proxy_accepted(const tu_proxy *p);
int tu_proxy_open(const tu_proxy *p);

#endif
