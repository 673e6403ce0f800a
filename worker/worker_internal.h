/* worker_internal.h - state shared by worker.c (lifecycle, main loop) and
 * worker_job.c (one request's path: decode, admit, events, acks). Not a
 * public interface. */
#ifndef INF_WORKER_INTERNAL_H
#define INF_WORKER_INTERNAL_H

#include <stdatomic.h>
#include <stdint.h>

#include "avro_codec.h"
#include "config.h"
#include "engine.h"
#include "http.h"
#include "kafka_in.h"
#include "metrics.h"
#include "redis_out.h"
#include "wlog.h"

#define WJ_STREAM_MAX 300

typedef enum wjob_state {
    WJ_CHECKING = 1, /* decoded, its reply stream being checked (rds_check_submit) */
    WJ_PENDING,     /* checked, waiting to be admitted (engine capacity, Redis output room) */
    WJ_RUNNING,     /* in the engine */
    WJ_FINAL_SENT,  /* final entry queued; waiting for Redis to confirm it */
    WJ_BAD          /* undecodable / rejected: DLQ (+ error entry) pending */
} wjob_state;

/* One Kafka message being served (or dead-lettered). */
typedef struct wjob {
    wjob_state state;
    uint64_t serial;                   /* unique per job: the ctx of its Redis checks */
    char id[INF_REQUEST_ID_MAX + 1];   /* "" when unknown (bad message) */
    char stream[WJ_STREAM_MAX];        /* reply stream key; "" when none */
    kin_msg *msg;                      /* owned until kin_msg_done/free */
    kin_msg **dups;                    /* redeliveries of the same id while in flight */
    int n_dups, cap_dups;
    int waits;                         /* acks outstanding (Redis final, DLQ copy) */
    int dlq_unsent;                    /* kin_send_dlq still to do (it failed; retried) */
    char dlq_reason[INF_ERROR_MSG_MAX + 64];
    inf_request req;                   /* valid while PENDING */
    int has_req;
    char *metadata_json;               /* echoed in the done entry */
    int stream_tokens;                 /* request's stream flag */
    int cancel;                        /* cancel asked before admission */
    int err_check;                     /* BAD: the error stream's check is outstanding */
    int check_warned;                  /* a transient check failure was logged */
    char err_code[48];                 /* BAD: the error entry's code (message: dlq_reason) */
    int attempt, prompt_tokens, n_out; /* n_out: completion tokens so far */
    char *acc_text;                    /* stream=false: the whole answer */
    size_t acc_len, acc_cap;
    int32_t *acc_ids;
    int acc_n, acc_idcap;
    int64_t received_ms;
    double final_queued_ms;            /* monotonic, when the final entry was queued (publish latency) */
    struct wjob *prev, *next;
} wjob;

/* An entry that rds_emit_* refused with INF_EFULL (or that queued behind
 * one): kept in order and re-sent before anything newer. */
typedef struct wemit wemit;

struct worker {
    const wcfg *cfg;
    int has_chat_template;   /* the GGUF has tokenizer.chat_template (announced in the heartbeat) */
    wlog log;
    engine *eng;
    rds *rds;
    kin *kin;
    _Atomic(kin *) kin_ready;          /* = kin once created: the checker thread's wake-up target */
    inf_avro_registry *reg;
    wjob *jobs_head, *jobs_tail;
    int n_jobs, n_pending;             /* n_pending: CHECKING + PENDING (not yet served) */
    uint64_t next_serial;
    int64_t last_progress_ms;          /* monotonic: a waiting job moved on, or the engine stepped */
    wemit *backlog_head, *backlog_tail;
    size_t n_backlog;
    long long n_done, n_failed;
    int64_t started_ms;
    kin_msg **held; /* received while draining: never served, released at exit */
    int n_held, cap_held;
    const char *status;
    char host[256];
    wmetrics *metrics;                 /* always present; served by http when --metrics-addr is set */
    whttp *http;
    engine_stats st;                   /* last engine_stats_get (refresh_metrics) */
    int64_t next_metrics_ms, last_hb_ok_ms, hb_prev_ms; /* monotonic */
    uint64_t hb_prev_tokens;
    long long hb_failures;
    int hb_ok;
    long long refusals_logged;         /* rds_stats refusals already logged */
    char refusal_cmd[32];              /* the command of the last refusal logged */
    int64_t next_refusal_log_ms;       /* monotonic: no refusal log line before */
    int draining, aborting;
};

int64_t wk_now_ms(void);
double wk_mono_ms_f(void); /* monotonic, fractional ms */

/* worker_job.c */
void wk_on_message(struct worker *w, kin_msg *m);
void wk_admit_pending(struct worker *w);
void wk_on_events(struct worker *w, const engine_event *ev, int n);
void wk_on_redis_ack(struct worker *w, void *ctx);
void wk_on_check(struct worker *w, const rds_check_result *res);
void wk_on_redis_refused(struct worker *w, void *ctx);
int64_t wk_mono_ms(void);
void wk_on_dlq_ack(struct worker *w, kin_msg *m);
void wk_retry_dlq(struct worker *w);
void wk_on_cancel(struct worker *w, const char *id);
int wk_flush_backlog(struct worker *w);
void wk_abort_running(struct worker *w);
void wk_release_all(struct worker *w);
int wk_busy_jobs(const struct worker *w); /* jobs other than PENDING */
void wk_backlog_free(struct worker *w);

#endif
