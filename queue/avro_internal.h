/* avro_internal.h - shared between the files of the avro_ module only. */
#ifndef INF_AVRO_INTERNAL_H
#define INF_AVRO_INTERNAL_H

#include "avro_codec.h"

/* Copies a value of (a projection of) our reader schema into *out, which
 * inf_request_init prepared; fields the value lacks keep their defaults. On
 * error *out holds what was copied so far (the caller frees it). */
int inf_avro_value_to_request(avro_value_t *rv, inf_request *out, inf_error *err);

/* Sets every field of a value of our reader schema from *req. */
int inf_avro_request_to_value(avro_value_t *v, const inf_request *req, inf_error *err);

#endif
