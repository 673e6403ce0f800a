/* gw_format.c - response bodies and SSE chunks in the OpenAI shapes
 * (gw_openai.h). */
#include "gw_openai.h"

#include <string.h>

const char *gw_finish_reason(const char *w) {
    if (!w) return "stop";
    if (!strcmp(w, "length") || !strcmp(w, "deadline")) return "length"; /* out of budget (tokens or time) */
    return "stop"; /* stop, and abort (only seen by a client that is still there, e.g. a cancelled fan-out) */
}

void gw_fmt_error(gw_buf *b, const gw_apierr *e) {
    gw_buf_puts(b, "{\"error\":{\"message\":");
    gw_buf_json_str(b, e->message, strlen(e->message));
    gw_buf_puts(b, ",\"type\":");
    gw_buf_json_str(b, e->type, strlen(e->type));
    gw_buf_puts(b, ",\"param\":");
    if (*e->param) gw_buf_json_str(b, e->param, strlen(e->param));
    else gw_buf_puts(b, "null");
    gw_buf_puts(b, ",\"code\":");
    if (*e->code) gw_buf_json_str(b, e->code, strlen(e->code));
    else gw_buf_puts(b, "null");
    gw_buf_puts(b, "}}");
}

static void head(gw_buf *b, const gw_resp *r, int chunk) {
    gw_buf_puts(b, "{\"id\":");
    gw_buf_json_str(b, r->id, strlen(r->id));
    const char *obj = r->api == GW_API_CHAT ? (chunk ? "chat.completion.chunk" : "chat.completion") : "text_completion";
    gw_buf_printf(b, ",\"object\":\"%s\",\"created\":%lld,\"model\":", obj, r->created);
    gw_buf_json_str(b, r->model, strlen(r->model));
    gw_buf_puts(b, ",\"system_fingerprint\":null,\"choices\":[");
}

static void tail_chunk(gw_buf *b, const gw_resp *r) {
    gw_buf_puts(b, "]");
    if (r->include_usage) gw_buf_puts(b, ",\"usage\":null");
    gw_buf_puts(b, "}\n\n");
}

/* Text of token k of t: the entry's text when it holds one token; else the
 * id (the gateway has no tokenizer to split a coalesced entry; vLLM's
 * return_tokens_as_token_ids spelling). */
static void token_str(gw_buf *b, const gw_tokens *t, int k) {
    if (t->n == 1) {
        gw_buf_json_str(b, t->text, t->text_len);
    } else {
        char s[32];
        int n = snprintf(s, sizeof s, "token_id:%d", (int)t->ids[k]);
        gw_buf_json_str(b, s, (size_t)n);
    }
}

static void logprobs_obj(gw_buf *b, const gw_resp *r, const gw_tokens *t) {
    if (r->logprobs < 0 || !t || !t->logprobs) {
        gw_buf_puts(b, "null");
        return;
    }
    if (r->api == GW_API_CHAT) {
        gw_buf_puts(b, "{\"content\":[");
        for (int k = 0; k < t->n; k++) {
            gw_buf_puts(b, k ? ",{\"token\":" : "{\"token\":");
            token_str(b, t, k);
            gw_buf_puts(b, ",\"logprob\":");
            gw_buf_json_num(b, t->logprobs[k]);
            gw_buf_puts(b, ",\"bytes\":");
            if (t->n == 1) {
                gw_buf_puts(b, "[");
                for (size_t i = 0; i < t->text_len; i++)
                    gw_buf_printf(b, "%s%u", i ? "," : "", (unsigned)(unsigned char)t->text[i]);
                gw_buf_puts(b, "]");
            } else {
                gw_buf_puts(b, "null");
            }
            gw_buf_puts(b, ",\"top_logprobs\":[]}");
        }
        gw_buf_puts(b, "],\"refusal\":null}");
        return;
    }
    gw_buf_puts(b, "{\"tokens\":[");
    for (int k = 0; k < t->n; k++) {
        if (k) gw_buf_puts(b, ",");
        token_str(b, t, k);
    }
    gw_buf_puts(b, "],\"token_logprobs\":[");
    for (int k = 0; k < t->n; k++) {
        if (k) gw_buf_puts(b, ",");
        gw_buf_json_num(b, t->logprobs[k]);
    }
    gw_buf_puts(b, "],\"top_logprobs\":null,\"text_offset\":[");
    for (int k = 0; k < t->n; k++) gw_buf_printf(b, "%s%ld", k ? "," : "", t->text_offset);
    gw_buf_puts(b, "]}");
}

void gw_fmt_chunk_role(gw_buf *b, const gw_resp *r, int index) {
    gw_buf_puts(b, "data: ");
    head(b, r, 1);
    gw_buf_printf(b, "{\"index\":%d,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null},"
                     "\"logprobs\":null,\"finish_reason\":null}", index);
    tail_chunk(b, r);
}

void gw_fmt_chunk_text(gw_buf *b, const gw_resp *r, int index, const gw_tokens *t) {
    gw_buf_puts(b, "data: ");
    head(b, r, 1);
    if (r->api == GW_API_CHAT) {
        gw_buf_printf(b, "{\"index\":%d,\"delta\":{\"content\":", index);
        gw_buf_json_str(b, t->text, t->text_len);
        gw_buf_puts(b, "},\"logprobs\":");
    } else {
        gw_buf_puts(b, "{\"text\":");
        gw_buf_json_str(b, t->text, t->text_len);
        gw_buf_printf(b, ",\"index\":%d,\"logprobs\":", index);
    }
    logprobs_obj(b, r, t);
    gw_buf_puts(b, ",\"finish_reason\":null}");
    tail_chunk(b, r);
}

void gw_fmt_chunk_finish(gw_buf *b, const gw_resp *r, int index, const char *finish_reason) {
    gw_buf_puts(b, "data: ");
    head(b, r, 1);
    if (r->api == GW_API_CHAT) gw_buf_printf(b, "{\"index\":%d,\"delta\":{},\"logprobs\":null,\"finish_reason\":", index);
    else gw_buf_printf(b, "{\"text\":\"\",\"index\":%d,\"logprobs\":null,\"finish_reason\":", index);
    gw_buf_json_str(b, finish_reason, strlen(finish_reason));
    gw_buf_puts(b, "}");
    tail_chunk(b, r);
}

static void usage(gw_buf *b, int prompt_tokens, int completion_tokens) {
    gw_buf_printf(b, "\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d,\"total_tokens\":%d}", prompt_tokens,
                  completion_tokens, prompt_tokens + completion_tokens);
}

void gw_fmt_chunk_usage(gw_buf *b, const gw_resp *r, int prompt_tokens, int completion_tokens) {
    gw_buf_puts(b, "data: ");
    head(b, r, 1);
    gw_buf_puts(b, "],");
    usage(b, prompt_tokens, completion_tokens);
    gw_buf_puts(b, "}\n\n");
}

void gw_fmt_done(gw_buf *b) { gw_buf_puts(b, "data: [DONE]\n\n"); }

void gw_fmt_body(gw_buf *b, const gw_resp *r, const gw_choice *c, int n, int prompt_tokens, int completion_tokens) {
    head(b, r, 0);
    for (int i = 0; i < n; i++) {
        if (i) gw_buf_puts(b, ",");
        if (r->api == GW_API_CHAT) {
            gw_buf_printf(b, "{\"index\":%d,\"message\":{\"role\":\"assistant\",\"content\":", i);
            gw_buf_json_str(b, c[i].tok.text ? c[i].tok.text : "", c[i].tok.text_len);
            gw_buf_puts(b, ",\"refusal\":null},\"logprobs\":");
        } else {
            gw_buf_puts(b, "{\"text\":");
            gw_buf_json_str(b, c[i].tok.text ? c[i].tok.text : "", c[i].tok.text_len);
            gw_buf_printf(b, ",\"index\":%d,\"logprobs\":", i);
        }
        logprobs_obj(b, r, &c[i].tok);
        gw_buf_puts(b, ",\"finish_reason\":");
        gw_buf_json_str(b, c[i].finish_reason, strlen(c[i].finish_reason));
        gw_buf_puts(b, "}");
    }
    gw_buf_puts(b, "],");
    usage(b, prompt_tokens, completion_tokens);
    gw_buf_puts(b, "}");
}
