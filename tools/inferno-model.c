/* inferno-model - model tool: info, tokenize, random, generate.
 *
 *   inferno-model info FILE
 *   inferno-model tokenize FILE [--no-bos] [--pieces] [--parse-special] [--file TEXTFILE | TEXT]
 *   inferno-model random OUT.gguf [--preset tiny|small|1b|8b] [--type f32|f16|bf16|q8_0|q4_0]
 *                        [--vocab-from VOCAB.gguf] [--seed N] [--layers N] [--embd N] [--heads N]
 *                        [--kv-heads N] [--ff N] [--vocab N] [--ctx N] [--tied]
 *                        [--arch llama|mistral|qwen2|qwen3|gemma2|gemma3|phi3] [--head-dim N]
 *                        [--swa N] [--attn-softcap C] [--final-softcap C] [--rope-base B]
 *                        [--rope-scaling yarn:F|linear:F] [--rope-orig-ctx N] [--no-longrope]
 *   inferno-model generate FILE [--file PROMPTFILE | PROMPT] [sampling flags] [--json]
 *   inferno-model generate FILE --batch PROMPTS.jsonl [--json]
 *   inferno-model quantize IN.gguf OUT.gguf TYPE [--threads N]
 *   inferno-model pull URL [--sha256 HEX] [--out DIR]
 *   inferno-model chat-render (MODEL.gguf | --template FILE.jinja) --messages FILE.json [--tools FILE.json]
 *                        [--bos TEXT] [--eos TEXT] [--no-generation-prompt] [--var NAME=JSON]...
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "model.h"
#include "model_chat.h"
#include "model_generate.h"
#include "model_pull.h"
#include "model_quantize.h"
#include "model_random.h"
#include "quant.h"
#include "tokenizer.h"

static void usage(FILE *out) {
    fputs("usage:\n"
          "  inferno-model info FILE\n"
          "  inferno-model tokenize FILE [--no-bos] [--pieces] [--parse-special] [--file TEXTFILE | TEXT]\n"
          "  inferno-model random OUT.gguf [--preset tiny|small|1b|8b] [--type f32|f16|bf16|q8_0|q4_0|...]\n"
          "        [--vocab-from VOCAB.gguf] [--seed N] [--layers N] [--embd N] [--heads N]\n"
          "        [--kv-heads N] [--ff N] [--vocab N] [--ctx N] [--tied]\n"
          "        [--arch llama|mistral|qwen2|qwen3|gemma2|gemma3|phi3] (the architecture's defaults)\n"
          "        [--head-dim N] [--swa N] [--attn-softcap C] [--final-softcap C] [--rope-base B]\n"
          "        [--rope-scaling yarn:F|linear:F] [--rope-orig-ctx N] [--no-longrope]\n"
          "  inferno-model generate FILE [--file PROMPTFILE | PROMPT] [--max-tokens N]\n"
          "        [--temperature T] [--top-k K] [--top-p P] [--min-p P] [--seed S] [--threads N] [--json]\n"
          "  inferno-model generate FILE --batch PROMPTS.jsonl [--json]\n"
          "  inferno-model quantize IN.gguf OUT.gguf TYPE [--threads N]\n"
          "        TYPE: f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q4_k q5_k q6_k, or the mixes q4_k_m q5_k_m\n"
          "  inferno-model pull URL [--sha256 HEX] [--out DIR]   (http(s):// or hf://ORG/REPO[@REV]/FILE.gguf)\n"
          "  inferno-model chat-render (MODEL.gguf | --template FILE.jinja) --messages FILE.json\n"
          "        [--tools FILE.json] [--bos TEXT] [--eos TEXT] [--no-generation-prompt] [--var NAME=JSON]...\n"
          "  (inferno-model generate --help lists every generation flag)\n",
          out);
}

static void print_type_counts(const gguf_file *f) {
    uint64_t count[GGML_TYPE_COUNT_] = {0};
    for (uint64_t i = 0; i < f->n_tensors; i++)
        if (f->tensors[i].type >= 0 && f->tensors[i].type < GGML_TYPE_COUNT_)
            count[f->tensors[i].type]++;
    printf("tensor_types:");
    for (int t = 0; t < GGML_TYPE_COUNT_; t++)
        if (count[t]) printf(" %s=%llu", quant_type_name(t), (unsigned long long)count[t]);
    printf("\n");
}

/* Prints one `key: value` line per fact; vocabulary-only files get the file
 * and tokenizer facts and a clear note instead of model dims. */
static int cmd_info(int argc, char **argv) {
    if (argc < 1) { usage(stderr); return 2; }
    inf_error err = {0};
    gguf_file *f = NULL;
    if (gguf_open(&f, argv[0], &err)) {
        fprintf(stderr, "inferno-model: %s\n", err.msg);
        return 1;
    }
    printf("file: %s\ngguf_version: %u\ntensors: %llu\nmetadata_keys: %llu\n", argv[0], f->version,
           (unsigned long long)f->n_tensors, (unsigned long long)f->n_kv);
    char tm[64] = "", pre[64] = "";
    gguf_get_cstr(f, "tokenizer.ggml.model", tm, sizeof tm, NULL);
    gguf_get_cstr(f, "tokenizer.ggml.pre", pre, sizeof pre, NULL);
    if (tm[0]) printf("tokenizer: %s\n", tm);
    if (pre[0]) printf("tokenizer_pre: %s\n", pre);
    model_desc d;
    int rc = model_desc_from_gguf(&d, f, &err);
    if (rc) {
        fprintf(stderr, "inferno-model: not a runnable model: %s\n", err.msg);
        gguf_close(f);
        return 1;
    }
    printf("architecture: %s\n", d.arch);
    if (d.name[0]) printf("name: %s\n", d.name);
    printf("n_layer: %u\nn_embd: %u\nn_head: %u\nn_head_kv: %u\nn_ff: %u\nhead_dim: %u\n"
           "n_rot: %u\nn_vocab: %u\nn_ctx_train: %u\n",
           d.n_layer, d.n_embd, d.n_head, d.n_head_kv, d.n_ff, d.head_dim, d.n_rot, d.n_vocab,
           d.n_ctx_train);
    printf("rope_type: %s\nrope_freq_base: %g\nrope_scaling: %s\nrope_scaling_factor: %g\n",
           d.rope_neox ? "neox" : "normal", d.rope_freq_base,
           d.rope_scaling == MODEL_ROPE_SCALING_NONE     ? "none"
           : d.rope_scaling == MODEL_ROPE_SCALING_LINEAR ? "linear"
                                                         : "yarn",
           d.rope_scaling_factor);
    printf("rms_eps: %g\ntied_embeddings: %s\nqkv_bias: %s\nrope_freq_factors: %s\n", d.rms_eps,
           d.tied_embeddings ? "yes" : "no", d.has_qkv_bias ? "yes" : "no",
           d.has_rope_freq_factors ? "yes" : "no");
    printf("weight_type: %s\n", quant_type_name(model_weight_type(f)));
    print_type_counts(f);
    printf("parameters: %llu\nbytes: %llu\n", (unsigned long long)d.n_params,
           (unsigned long long)d.n_bytes);
    gguf_close(f);
    return 0;
}

static int cmd_tokenize(int argc, char **argv) {
    const char *path = NULL, *text = NULL, *textfile = NULL;
    int bos = 1, pieces = 0, special = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--no-bos") == 0) bos = 0;
        else if (strcmp(argv[i], "--pieces") == 0) pieces = 1;
        else if (strcmp(argv[i], "--parse-special") == 0) special = 1;
        else if (strcmp(argv[i], "--file") == 0 && i + 1 < argc) textfile = argv[++i];
        else if (!path) path = argv[i];
        else if (!text) text = argv[i];
        else { usage(stderr); return 2; }
    }
    if (!path || (!text && !textfile)) { usage(stderr); return 2; }
    size_t len = text ? strlen(text) : 0;
    char *buf = NULL;
    if (textfile) {
        if (gen_read_file(textfile, &buf, &len) != 0) {
            fprintf(stderr, "inferno-model: cannot read %s\n", textfile);
            return 1;
        }
        text = buf;
    }
    inf_error err = {0};
    gguf_file *f = NULL;
    tokenizer *tok = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = gguf_open(&f, path, &err);
    if (!rc) rc = tok_create(&tok, f, &err);
    if (!rc) rc = tok_encode(tok, text, len, bos, special, &ids, &n, &err);
    if (rc) {
        fprintf(stderr, "inferno-model: %s\n", err.msg);
    } else {
        for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
        printf("\n");
        if (pieces) {
            for (size_t i = 0; i < n; i++) {
                size_t pl = 0;
                const char *p = tok_token_text(tok, ids[i], &pl);
                printf(i ? " " : "");
                gen_print_json_str(stdout, p, pl);
            }
            printf("\n");
        }
    }
    free(ids);
    tok_free(tok);
    gguf_close(f);
    free(buf);
    return rc ? 1 : 0;
}

static int parse_u32(const char *s, uint32_t *out) {
    char *e;
    unsigned long v = strtoul(s, &e, 10);
    if (*e || e == s || v > 0xFFFFFFFFul) return -1;
    *out = (uint32_t)v;
    return 0;
}

static int cmd_random(int argc, char **argv) {
    const char *out = NULL, *preset = "tiny";
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--preset") == 0 && i + 1 < argc) preset = argv[++i];
    model_random_opts o;
    model_random_arch_opts x;
    inf_error err = {0};
    if (model_random_preset(&o, preset, &err)) {
        fprintf(stderr, "inferno-model: %s\n", err.msg);
        return 2;
    }
    /* --ctx and --arch first: an architecture's defaults depend on the context */
    for (int i = 0; i + 1 < argc; i++)
        if (strcmp(argv[i], "--ctx") == 0 && parse_u32(argv[i + 1], &o.n_ctx)) {
            fprintf(stderr, "inferno-model: --ctx needs a number\n");
            return 2;
        }
    model_random_arch_defaults(&o, &x);
    for (int i = 0; i + 1 < argc; i++)
        if (strcmp(argv[i], "--arch") == 0 && model_random_arch(&o, &x, argv[i + 1], &err)) {
            fprintf(stderr, "inferno-model: %s\n", err.msg);
            return 2;
        }
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        uint32_t *dim = strcmp(a, "--layers") == 0 ? &o.n_layer
                      : strcmp(a, "--embd") == 0 ? &o.n_embd
                      : strcmp(a, "--heads") == 0 ? &o.n_head
                      : strcmp(a, "--kv-heads") == 0 ? &o.n_head_kv
                      : strcmp(a, "--ff") == 0 ? &o.n_ff
                      : strcmp(a, "--vocab") == 0 ? &o.n_vocab
                      : strcmp(a, "--ctx") == 0 ? &o.n_ctx
                      : strcmp(a, "--head-dim") == 0 ? &x.head_dim
                      : strcmp(a, "--swa") == 0 ? &x.n_swa
                      : strcmp(a, "--rope-orig-ctx") == 0 ? &x.rope_orig_ctx : NULL;
        if (dim) {
            if (!v || parse_u32(v, dim)) { fprintf(stderr, "inferno-model: %s needs a number\n", a); return 2; }
            i++;
        } else if (strcmp(a, "--preset") == 0) {
            i++;
        } else if (strcmp(a, "--type") == 0 && v) {
            o.type = quant_type_from_name(v);
            i++;
        } else if (strcmp(a, "--vocab-from") == 0 && v) {
            o.vocab_from = v;
            i++;
        } else if (strcmp(a, "--seed") == 0 && v) {
            o.seed = strtoull(v, NULL, 10);
            i++;
        } else if (strcmp(a, "--arch") == 0 && v) {
            i++; /* applied above */
        } else if ((strcmp(a, "--attn-softcap") == 0 || strcmp(a, "--final-softcap") == 0) && v) {
            *(strcmp(a, "--attn-softcap") == 0 ? &x.attn_softcap : &x.final_softcap) = strtof(v, NULL);
            i++;
        } else if (strcmp(a, "--rope-base") == 0 && v) {
            o.rope_freq_base = strtof(v, NULL);
            i++;
        } else if (strcmp(a, "--rope-scaling") == 0 && v) {
            /* TYPE:FACTOR, e.g. yarn:4 or linear:2 */
            static char type[16];
            const char *colon = strchr(v, ':');
            size_t tl = colon ? (size_t)(colon - v) : strlen(v);
            if (!colon || tl == 0 || tl >= sizeof type || !(strtof(colon + 1, NULL) > 0.0f)) {
                fprintf(stderr, "inferno-model: --rope-scaling needs TYPE:FACTOR (yarn:4, linear:2)\n");
                return 2;
            }
            memcpy(type, v, tl);
            type[tl] = '\0';
            x.rope_scaling = type;
            x.rope_scaling_factor = strtof(colon + 1, NULL);
            i++;
        } else if (strcmp(a, "--no-longrope") == 0) {
            x.longrope = 0;
        } else if (strcmp(a, "--tied") == 0) {
            o.tied = 1;
        } else if (!out && a[0] != '-') {
            out = a;
        } else {
            fprintf(stderr, "inferno-model: unknown or incomplete option '%s'\n", a);
            return 2;
        }
    }
    if (!out) { usage(stderr); return 2; }
    if (model_random_write_arch(out, &o, &x, &err)) {
        fprintf(stderr, "inferno-model: %s\n", err.msg);
        return 1;
    }
    fprintf(stderr, "wrote %s (%s, %u layers, n_embd %u, vocab %u)\n", out, quant_type_name(o.type),
            o.n_layer, o.n_embd, o.n_vocab);
    return 0;
}

static int cmd_quantize(int argc, char **argv) {
    const char *pos[3] = {0};
    int np = 0, threads = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) threads = atoi(argv[++i]);
        else if (np < 3 && argv[i][0] != '-') pos[np++] = argv[i];
        else { usage(stderr); return 2; }
    }
    if (np != 3) { usage(stderr); return 2; }
    inf_error err = {0};
    if (model_quantize(pos[0], pos[1], pos[2], threads, &err)) {
        fprintf(stderr, "inferno-model: %s\n", err.msg);
        return 1;
    }
    fprintf(stderr, "wrote %s (%s)\n", pos[1], pos[2]);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "info") == 0) return cmd_info(argc - 2, argv + 2);
    if (strcmp(cmd, "tokenize") == 0) return cmd_tokenize(argc - 2, argv + 2);
    if (strcmp(cmd, "random") == 0) return cmd_random(argc - 2, argv + 2);
    if (strcmp(cmd, "generate") == 0) return gen_main(argc - 2, argv + 2);
    if (strcmp(cmd, "quantize") == 0) return cmd_quantize(argc - 2, argv + 2);
    if (strcmp(cmd, "pull") == 0) return model_pull_main(argc - 2, argv + 2);
    if (strcmp(cmd, "chat-render") == 0) return chat_render_main(argc - 2, argv + 2);
    fprintf(stderr, "inferno-model: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
