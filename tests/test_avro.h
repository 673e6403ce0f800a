/* test_avro.h - helpers shared by the avro suites (test_avro.c defines them). */
#ifndef INF_TEST_AVRO_H
#define INF_TEST_AVRO_H

#include <stdint.h>
#include <stddef.h>

#include "avro_codec.h"

#define SCHEMA_FILE "schemas/inference_request.avsc"
#define SCHEMA_V1_FILE "schemas/history/inference_request.v1.avsc"

/* A python3 that imports avro (python3-avro), or NULL. */
const char *ta_python(void);
/* Runs `python3 -c script a1 a2 a3`; its stdout (caller frees) or NULL. */
char *ta_py(const char *script, const char *a1, const char *a2, const char *a3);
/* Hex digits up to the first newline -> bytes (caller frees). */
uint8_t *ta_unhex(const char *s, size_t *n);
/* A registry of our schema (asserts fatally on failure). */
inf_avro_registry *ta_new_reg(void);
/* First differing chat/constraint field of two requests, or NULL
 * (test_avro_chat.c). */
const char *ta_diff_chat(const inf_request *a, const inf_request *b);

#endif
