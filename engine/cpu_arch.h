/* cpu_arch.h - the CPU row kernels that only some architectures need
 * (gemma's GeGLU and soft-capping, sliding-window attention), kept apart
 * from cpu_ops so the llama path stays as it is.
 *
 * All functions are single-threaded, allocate nothing and cannot fail. */
#ifndef INF_CPU_ARCH_H
#define INF_CPU_ARCH_H

#include "cpu_ops.h"

/* out[i] = gelu(gate[i]) * up[i] with the tanh approximation
 * 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (ggml_gelu). out may alias gate. */
void cpu_arch_geglu(float *out, const float *gate, const float *up, long n);

/* x[i] = cap * tanh(x[i] / cap). */
void cpu_arch_softcap(float *x, long n, float cap);

/* One head of attention over positions [lo, n): scores s_j = q.k_j * scale,
 * then (softcap > 0) s_j = softcap * tanh(s_j / softcap), softmax, out =
 * sum p_j v_j. scores: n - lo floats of scratch, tmp: hd floats. */
void cpu_arch_attn_head(const float *q, int hd, const cpu_kv_rows *k, const cpu_kv_rows *v,
                        int lo, int n, float scale, float softcap, float *scores, float *out,
                        float *tmp);

#endif
