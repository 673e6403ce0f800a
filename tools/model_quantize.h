/* model_quantize.h - rewrites a GGUF file with its matrices in another type
 * (inferno-model quantize), with our own reference quantizers (quant.h). */
#ifndef INF_MODEL_QUANTIZE_H
#define INF_MODEL_QUANTIZE_H

#include "status.h"

/* Writes in_path's metadata and tensors to out_path with every 2-D weight
 * matrix in `type`: a ggml type name (f16, q8_0, q4_0, q4_1, q5_0, q5_1,
 * q4_k, q5_k, q6_k, ...) or a llama.cpp-style mix, "q4_k_m" / "q5_k_m"
 * (attn_v and ffn_down in Q6_K on the first and last eighth of the layers and
 * every third between, output.weight in Q6_K, everything else Q4_K / Q5_K).
 * 1-D tensors (norms, biases) stay as they are; a matrix whose rows are not
 * whole blocks of the type falls back to Q8_0, then F16. n_threads <= 0: all
 * cores. */
int model_quantize(const char *in_path, const char *out_path, const char *type, int n_threads,
                   inf_error *err);

#endif
