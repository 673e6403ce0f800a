/* gw_internal.h - state shared by gw_server.c (HTTP glue, simple routes)
 * and gw_call.c (a completion request from body to last byte). Not a public
 * interface. */
#ifndef INF_GW_INTERNAL_H
#define INF_GW_INTERNAL_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdint.h>

#include "gw_openai.h"
#include "gw_server.h"

struct gw_server {
    gw_server_deps d;
    struct MHD_Daemon *mhd;
    int port;
    pthread_mutex_t mu;      /* calls list, stopping; taken before a subscription lock, never inside one */
    struct gw_call *calls;
    int stopping;
    int not_started;         /* legs produced whose start entry has not come (atomic: callbacks
                                change it under a subscription lock, which never nests mu) */
};

typedef enum call_phase {
    PH_BODY = 0,   /* reading the body */
    PH_WAIT,       /* produced; waiting for the start (stream) or the end (not stream) */
    PH_READY,      /* the answer can be sent: stream started, or the whole body is ready */
    PH_ERROR,      /* an error answer is ready (err) */
    PH_SENT        /* a response was queued */
} call_phase;

typedef struct gw_leg {
    char id[INF_REQUEST_ID_MAX + 1];
    int started, final;
    char finish[16];
    int prompt_tokens, completion_tokens;
    int tokens_sent;   /* stream: tokens passed to the client (a rerun skips as many) */
    int skip;          /* tokens of a rerun still to skip */
    gw_buf text;       /* not stream: the answer; stream: a held-back partial UTF-8 tail */
    int32_t *ids;      /* not stream, logprobs: every id ... */
    float *lps;        /* ... and its logprob */
    int n_ids, cap_ids;
    long text_offset;  /* completions logprobs */
} gw_leg;

typedef struct gw_call {
    gw_server *srv;
    struct MHD_Connection *conn;
    struct gw_call *prev, *next;
    int refs;              /* connection + streaming response */
    int route;             /* 0 completions, 1 chat */
    const char *route_name;
    call_phase phase;
    gw_buf body;
    int body_too_large;
    int key_slot, admitted;
    gw_params p;
    int priority;
    char base[40];         /* random hex: response id and leg ids */
    char resp_id[64];
    gw_resp resp;
    gw_sub *sub;
    gw_leg *legs;
    int n_legs, n_started, n_final;
    int suspended, client_gone, fd;
    int64_t t_body_ms, start_deadline_ms, end_deadline_ms, t_first_byte_ms;
    gw_buf out;            /* bytes for the client not yet taken by MHD */
    int out_done;          /* stream: everything is in out ([DONE] or an error event) */
    int status;            /* HTTP status sent */
    gw_apierr err;
    double retry_after_s;  /* > 0: Retry-After on the error */
} gw_call;

int64_t gw_mono_ms(void);
void gw_log(gw_server *s, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* gw_call.c: called by the access handler once the body is complete; the
 * return value is the handler's. */
enum MHD_Result gw_call_body_done(gw_call *c);

/* gw_call.c: the access handler again, after a resume. */
enum MHD_Result gw_call_resumed(gw_call *c);

/* gw_call.c: the request ended (normal end or client gone): cancel what is
 * unfinished, release the subscription and the limits. */
void gw_call_completed(gw_call *c, enum MHD_RequestTerminationCode toe);

/* gw_server.c: queue an error answer (JSON body, Retry-After when > 0). */
enum MHD_Result gw_send_error(gw_call *c, const gw_apierr *e, double retry_after_s);

/* gw_server.c: drop a reference; frees c at zero. */
void gw_call_unref(gw_call *c);

#endif
