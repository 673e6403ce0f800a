/* inferno-gguf-template - copies a GGUF model adding (or replacing) its
 * tokenizer.chat_template, so a model without one can serve
 * /v1/chat/completions through inferno-gateway (make run does this for the
 * tiny stories260K model, the gateway_e2e suite likewise).
 *
 *   inferno-gguf-template IN.gguf OUT.gguf TEMPLATE.jinja
 *
 * Exit 0, or 1 with a message. */
#include <stdio.h>
#include <stdlib.h>

#include "gguf.h"

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    if (b) b[n] = '\0';
    fclose(f);
    return b;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: inferno-gguf-template IN.gguf OUT.gguf TEMPLATE.jinja\n");
        return 1;
    }
    char *tmpl = slurp(argv[3]);
    if (!tmpl) {
        fprintf(stderr, "inferno-gguf-template: cannot read %s\n", argv[3]);
        return 1;
    }
    gguf_file *f = NULL;
    inf_error err = {0};
    int rc = gguf_open(&f, argv[1], &err);
    gguf_writer *w = rc ? NULL : gguf_writer_new();
    if (!rc && !w) rc = inf_error_set(&err, INF_ENOMEM, "out of memory");
    if (!rc) rc = gguf_writer_copy_kvs(w, f, "");
    if (!rc) rc = gguf_writer_set_str(w, "tokenizer.chat_template", tmpl);
    for (uint64_t i = 0; !rc && i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        rc = gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, NULL, NULL);
    }
    if (!rc) rc = gguf_writer_write(w, argv[2], &err);
    if (rc) fprintf(stderr, "inferno-gguf-template: %s\n", err.msg[0] ? err.msg : inf_status_name(rc));
    gguf_writer_free(w);
    gguf_close(f);
    free(tmpl);
    return rc ? 1 : 0;
}
