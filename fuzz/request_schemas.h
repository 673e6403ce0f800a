/* request_schemas.h - the writer schemas besides our own that fuzz_request.c
 * registers and make_request_seeds.c writes seeds with: an older producer
 * (most optional fields missing, int promoted to long) and a newer one (extra
 * fields of every kind, other field order, a LogitBias with an extra member).
 * The same two as the avro suite's evolution test, so both resolve. */
#ifndef FUZZ_REQUEST_SCHEMAS_H
#define FUZZ_REQUEST_SCHEMAS_H

/* Confluent ids the fuzzer registers: ours, the old and the new writer. */
enum { FZ_ID_OURS = 1, FZ_ID_OLD = 7, FZ_ID_NEW = 8 };

static const char FZ_SCHEMA_OLD[] =
    "{\"type\":\"record\",\"name\":\"InferenceRequest\",\"namespace\":\"inferno.v1\",\"fields\":["
    "{\"name\":\"request_id\",\"type\":\"string\"},{\"name\":\"prompt\",\"type\":[\"null\",\"string\"]},"
    "{\"name\":\"max_tokens\",\"type\":\"int\"},{\"name\":\"temperature\",\"type\":\"float\"},"
    "{\"name\":\"stop\",\"type\":{\"type\":\"array\",\"items\":\"string\"}}]}";

static const char FZ_SCHEMA_NEW[] =
    "{\"type\":\"record\",\"name\":\"InferenceRequest\",\"namespace\":\"inferno.v1\",\"fields\":["
    "{\"name\":\"tenant\",\"type\":\"string\"},"
    "{\"name\":\"prompt_token_ids\",\"type\":[\"null\",{\"type\":\"array\",\"items\":\"int\"}]},"
    "{\"name\":\"request_id\",\"type\":\"string\"},"
    "{\"name\":\"beams\",\"type\":{\"type\":\"array\",\"items\":\"double\"}},"
    "{\"name\":\"seed\",\"type\":[\"null\",\"long\"]},"
    "{\"name\":\"logit_bias\",\"type\":{\"type\":\"array\",\"items\":{\"type\":\"record\",\"name\":\"LogitBias\","
    "\"fields\":[{\"name\":\"note\",\"type\":\"string\"},{\"name\":\"token_id\",\"type\":\"int\"},"
    "{\"name\":\"bias\",\"type\":\"float\"}]}}},"
    "{\"name\":\"metadata\",\"type\":{\"type\":\"map\",\"values\":\"string\"}},"
    "{\"name\":\"stream\",\"type\":\"boolean\"},"
    "{\"name\":\"future\",\"type\":[\"null\",{\"type\":\"map\",\"values\":\"long\"}]}]}";

/* Input layout shared by the fuzzer and the seed generator:
 *   byte 0  mode: bits 0-1 framing (0 the rest verbatim: the codec detects
 *           the framing itself; 1 Confluent header; 2 single-object header;
 *           3 verbatim again), bit 2 registry with the three writers
 *           registered (else only our schema, by fingerprint), bit 3 small
 *           limits (so every bound is reachable with short inputs)
 *   byte 1  for framings 1 and 2 only: the writer (0 ours, 1 old, 2 new,
 *           else an unregistered id 1000+b / fingerprint derived from b)
 *   rest    the Avro body */
enum { FZ_FRAME_VERBATIM = 0, FZ_FRAME_CONFLUENT = 1, FZ_FRAME_SINGLE = 2 };
enum { FZ_MODE_FULL_REG = 4, FZ_MODE_SMALL_LIMITS = 8 };

#endif
