/* model_chat.c - `inferno-model chat-render (MODEL.gguf | --template FILE)
 * --messages FILE [--tools FILE] [--bos TEXT] [--eos TEXT]
 * [--no-generation-prompt] [--var NAME=JSON]... [--now EPOCH]`: the rendered
 * text on stdout, byte for byte, no newline added. --now pins strftime_now's
 * clock (tests compare against a reference renderer). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "gguf.h"
#include "model_chat.h"
#include "model_generate.h"

#define MAX_VARS 64

static void usage(void) {
    fputs("usage: inferno-model chat-render (MODEL.gguf | --template FILE.jinja) --messages FILE.json\n"
          "        [--tools FILE.json] [--bos TEXT] [--eos TEXT] [--no-generation-prompt]\n"
          "        [--var NAME=JSON]... [--now EPOCH_SECONDS]\n",
          stderr);
}

/* Template text (and the vocabulary's BOS/EOS texts when from a model). */
static int load_template(const char *model, const char *tpl, char **text, size_t *len, char **bos, char **eos,
                         inf_error *err) {
    *text = NULL;
    if (tpl) {
        if (gen_read_file(tpl, text, len)) return inf_error_set(err, INF_EIO, "cannot read %s", tpl);
        if (!model) return 0;
    }
    gguf_file *f = NULL;
    int rc = gguf_open(&f, model, err);
    if (rc) return rc;
    if (!*text) {
        rc = chat_template_from_gguf(f, text, len, err);
        if (!rc && !*text) rc = inf_error_set(err, INF_ENOTFOUND, "%s has no tokenizer.chat_template", model);
    }
    if (!rc && bos) {
        tokenizer *t = NULL;
        if (!tok_create_ex(&t, f, TOK_CREATE_PRE_FALLBACK, NULL)) {
            *bos = strdup(chat_bos_text(t));
            *eos = strdup(chat_eos_text(t));
            tok_free(t);
        }
    }
    gguf_close(f);
    return rc;
}

int chat_render_main(int argc, char **argv) {
    const char *model = NULL, *tpl = NULL, *msgs = NULL, *tools = NULL, *bos = NULL, *eos = NULL;
    int agp = 1;
    long long now = 0;
    const char *var_args[MAX_VARS];
    int nv = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--template") && v) tpl = argv[++i];
        else if (!strcmp(a, "--messages") && v) msgs = argv[++i];
        else if (!strcmp(a, "--tools") && v) tools = argv[++i];
        else if (!strcmp(a, "--bos") && v) bos = argv[++i];
        else if (!strcmp(a, "--eos") && v) eos = argv[++i];
        else if (!strcmp(a, "--now") && v) now = strtoll(argv[++i], NULL, 10);
        else if (!strcmp(a, "--no-generation-prompt")) agp = 0;
        else if (!strcmp(a, "--var") && v && nv < MAX_VARS) var_args[nv++] = argv[++i];
        else if (a[0] != '-' && !model) model = a;
        else {
            fprintf(stderr, "inferno-model: unknown or incomplete option '%s'\n", a);
            usage();
            return 2;
        }
    }
    if ((!model && !tpl) || !msgs) { usage(); return 2; }
    inf_error err = {0};
    char *text = NULL, *mj = NULL, *tj = NULL, *vbos = NULL, *veos = NULL, *out = NULL;
    size_t tlen = 0, mlen = 0, tjl = 0, olen = 0;
    jinja_template *t = NULL;
    int rc = load_template(model, tpl, &text, &tlen, &vbos, &veos, &err);
    if (!rc && gen_read_file(msgs, &mj, &mlen)) rc = inf_error_set(&err, INF_EIO, "cannot read %s", msgs);
    if (!rc && tools && gen_read_file(tools, &tj, &tjl)) rc = inf_error_set(&err, INF_EIO, "cannot read %s", tools);
    /* --var NAME=JSON pairs become one JSON object: the chat_template_kwargs path */
    char *kw = NULL;
    if (!rc && nv) {
        size_t cap = 16;
        for (int i = 0; i < nv; i++) cap += strlen(var_args[i]) * 2 + 16;
        kw = malloc(cap);
        size_t k = 0;
        kw[k++] = '{';
        for (int i = 0; i < nv && !rc; i++) {
            const char *eq = strchr(var_args[i], '=');
            if (!eq || eq == var_args[i]) { rc = inf_error_set(&err, INF_EINVAL, "--var wants NAME=JSON, got '%s'", var_args[i]); break; }
            k += (size_t)snprintf(kw + k, cap - k, "%s\"%.*s\": %s", i ? ", " : "", (int)(eq - var_args[i]),
                                  var_args[i], eq + 1);
        }
        snprintf(kw + k, cap - k, "}");
    }
    if (!rc) rc = jinja_template_create(&t, text, tlen, &err);
    if (!rc) {
        chat_render_args a = {.messages_json = mj, .messages_json_len = mlen, .tools_json = tj,
                              .add_generation_prompt = agp, .kwargs_json = kw,
                              .bos_token = bos ? bos : vbos, .eos_token = eos ? eos : veos, .now = (time_t)now};
        rc = chat_render(t, &a, &out, &olen, &err);
    }
    if (!rc) fwrite(out, 1, olen, stdout);
    else fprintf(stderr, "inferno-model: %s\n", err.msg);
    jinja_template_destroy(t);
    free(text); free(mj); free(tj); free(vbos); free(veos); free(out); free(kw);
    return rc ? 1 : 0;
}

int model_chat_prompt(const char *model_path, const char *template_path, const char *messages_path,
                      const tokenizer *tk, int32_t **ids, size_t *n_ids, inf_error *err) {
    char *text = NULL, *mj = NULL, *out = NULL;
    size_t tlen = 0, mlen = 0, olen = 0;
    jinja_template *t = NULL;
    int rc = load_template(template_path ? NULL : model_path, template_path, &text, &tlen, NULL, NULL, err);
    if (!rc && gen_read_file(messages_path, &mj, &mlen)) rc = inf_error_set(err, INF_EIO, "cannot read %s", messages_path);
    if (!rc) rc = jinja_template_create(&t, text, tlen, err);
    if (!rc) {
        chat_render_args a = {.messages_json = mj, .messages_json_len = mlen, .add_generation_prompt = true,
                              .bos_token = chat_bos_text(tk), .eos_token = chat_eos_text(tk)};
        rc = chat_render(t, &a, &out, &olen, err);
    }
    if (!rc) rc = chat_tokenize(tk, out, olen, ids, n_ids, err);
    jinja_template_destroy(t);
    free(text); free(mj); free(out);
    return rc;
}
