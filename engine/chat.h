/* chat.h - a conversation rendered with the model's chat template.
 *
 * The template (GGUF tokenizer.chat_template or a file) is rendered the way
 * Hugging Face's apply_chat_template renders it (jinja.h), with the variables
 * messages, add_generation_prompt, bos_token, eos_token, tools (only when
 * given) and the members of chat_template_kwargs.
 *
 * A message maps to a dict with the keys role, content, and name /
 * tool_call_id / tool_calls / reasoning_content when present. content is
 * always there: None when absent, as an OpenAI producer sends "content": null
 * on an assistant message that only calls tools. tool_calls is the JSON text of
 * the OpenAI tool_calls array, parsed (function.arguments stays what the
 * producer sent: a JSON string or an object).
 *
 * Threading: every function is reentrant; a chat_template may be shared.
 */
#ifndef INF_CHAT_H
#define INF_CHAT_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "gguf.h"
#include "jinja.h"
#include "status.h"
#include "tokenizer.h"

/* Same fields as the request schema's inferno.v1.ChatMessage; NULL = absent. */
typedef struct chat_message {
    const char *role; /* never NULL */
    const char *content;
    const char *name;
    const char *tool_call_id;
    const char *tool_calls;        /* JSON array text */
    const char *reasoning_content;
} chat_message;

typedef struct chat_render_args {
    /* The conversation: either messages[0..n_messages) or messages_json (a JSON
     * array of message objects, passed as they are; the model tool's --messages). */
    const chat_message *messages;
    size_t n_messages;
    const char *messages_json;
    size_t messages_json_len;
    const char *tools_json;    /* JSON text or NULL (then `tools` is undefined) */
    bool add_generation_prompt;
    const char *kwargs_json;   /* JSON object text or NULL; members become variables */
    const char *bos_token;     /* NULL = "" */
    const char *eos_token;     /* NULL = "" */
    jinja_limits limits;       /* zeros = jinja.h defaults */
    time_t now;                /* strftime_now's clock; 0 = now */
} chat_render_args;

/* Renders a conversation. *out is malloc'd (free()), NUL-terminated, *out_len
 * bytes. Errors: INF_EFORMAT for malformed JSON in a field (the message names
 * the field, e.g. "messages[2].tool_calls"), INF_EINVAL when the template
 * refuses (raise_exception's message) or fails, INF_ERANGE past a bound. */
int chat_render(const jinja_template *t, const chat_render_args *a, char **out, size_t *out_len,
                inf_error *err);

/* The template text of f's tokenizer.chat_template: *out malloc'd, or NULL
 * (and 0 returned) when the file has none. */
int chat_template_from_gguf(const gguf_file *f, char **out, size_t *len, inf_error *err);

/* The rendered text as token ids: special-token texts parsed (the template's
 * markers are special tokens), no EOS, and BOS prepended only when the
 * vocabulary adds one and the text does not already start with it. *ids is
 * malloc'd (caller frees). */
int chat_tokenize(const tokenizer *t, const char *text, size_t len, int32_t **ids, size_t *n_ids, inf_error *err);

/* bos_token / eos_token for the template: the vocabulary's texts of its BOS and
 * EOS ids ("" when it has none). Pointers into t. */
const char *chat_bos_text(const tokenizer *t);
const char *chat_eos_text(const tokenizer *t);

#endif
