/* gw_chat.c - the chat part of a leg's queue request (messages, tools,
 * template arguments) and the output constraints (gw_chat_to_request,
 * gw_openai.h). */
#include "gw_openai.h"

#include <stdlib.h>
#include <string.h>

static char *dup0(const char *s, int *oom) {
    if (!s) return NULL;
    char *d = strdup(s);
    if (!d) *oom = 1;
    return d;
}

int gw_chat_to_request(const gw_params *p, inf_request *r, inf_error *err) {
    int oom = 0;
    if (p->api == GW_API_CHAT && p->n_messages) {
        if (!(r->messages = calloc(p->n_messages, sizeof *r->messages))) oom = 1;
        for (size_t i = 0; !oom && i < p->n_messages; i++) {
            const gw_msg *m = &p->messages[i];
            inf_chat_message *d = &r->messages[i];
            r->n_messages++;
            d->role = dup0(m->role, &oom);
            d->content = dup0(m->content, &oom);
            d->name = dup0(m->name, &oom);
            d->tool_call_id = dup0(m->tool_call_id, &oom);
            d->tool_calls = dup0(m->tool_calls, &oom);
            d->reasoning_content = dup0(m->reasoning_content, &oom);
        }
        r->tools = dup0(p->tools, &oom);
        r->chat_template_kwargs = dup0(p->chat_template_kwargs, &oom);
        r->add_generation_prompt = p->add_generation_prompt != 0;
    }
    r->response_format = dup0(p->response_format, &oom);
    r->grammar = dup0(p->grammar, &oom);
    r->regex = dup0(p->regex, &oom);
    if (p->n_choice) {
        if ((r->choice = calloc(p->n_choice, sizeof *r->choice)))
            for (size_t i = 0; i < p->n_choice; i++)
                if ((r->choice[i] = dup0(p->choice[i], &oom))) r->n_choice++;
        if (!r->choice) oom = 1;
    }
    return oom ? inf_error_set(err, INF_ENOMEM, "out of memory") : 0;
}
