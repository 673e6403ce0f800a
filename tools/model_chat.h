/* model_chat.h - `inferno-model chat-render`, and the conversation prompt of
 * `inferno-model generate --messages`. */
#ifndef INF_MODEL_CHAT_H
#define INF_MODEL_CHAT_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"
#include "tokenizer.h"

/* Entry point: argv after "chat-render". Returns the process exit code. */
int chat_render_main(int argc, char **argv);

/* Renders messages_path (a JSON array of messages) with the chat template of
 * the GGUF at model_path (or template_path when non-NULL), add_generation_prompt
 * on, and tokenizes it with t (chat_tokenize). *ids malloc'd. */
int model_chat_prompt(const char *model_path, const char *template_path, const char *messages_path,
                      const tokenizer *t, int32_t **ids, size_t *n_ids, inf_error *err);

#endif
