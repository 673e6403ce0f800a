/* fuzz_jsonschema.c - libFuzzer target for the JSON Schema compiler
 * (make fuzz FUZZ_TARGETS=jsonschema).
 *
 * The input is a schema text. Checked beyond "no crash, no leak": a
 * failure has a known code and a "json schema" message, and every GBNF the
 * compiler produces is accepted by the GBNF parser (the compiler never emits
 * a grammar it cannot run). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grammar.h"
#include "jsonschema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *gbnf = NULL;
    inf_error err = {0};
    int rc = jsonschema_to_gbnf((const char *)data, size, &gbnf, &err);
    if (rc) {
        if (rc != INF_EFORMAT && rc != INF_EINVAL && rc != INF_EUNSUPPORTED && rc != INF_ERANGE && rc != INF_ENOMEM)
            abort();
        if (strncmp(err.msg, "json schema", 11)) abort();
        return 0;
    }
    grammar *g = NULL;
    rc = grammar_parse(&g, gbnf, strlen(gbnf), &err);
    if (rc && rc != INF_ERANGE && rc != INF_ENOMEM) {
        fprintf(stderr, "compiled grammar does not parse: %s\n%s\n", err.msg, gbnf);
        abort();
    }
    grammar_free(g);
    free(gbnf);
    return 0;
}
