/* gw_chat.c - the chat part of a leg's queue request (messages, tools,
 * template arguments, constraints): filled once the request schema carries
 * them. */
#include "gw_openai.h"

int gw_chat_to_request(const gw_params *p, inf_request *r, inf_error *err) {
    (void)p;
    (void)r;
    return inf_error_set(err, INF_EUNSUPPORTED, "chat requests need the messages fields of the request schema");
}
