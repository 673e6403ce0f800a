/* cpu_arch.c - GeGLU, soft-capping and windowed attention rows (cpu_arch.h). */
#include "cpu_arch.h"

#include <math.h>
#include <string.h>

void cpu_arch_geglu(float *out, const float *gate, const float *up, long n) {
    const float c = 0.79788456080286535588f; /* sqrt(2/pi) */
    for (long i = 0; i < n; i++) {
        float x = gate[i];
        out[i] = 0.5f * x * (1.0f + tanhf(c * x * (1.0f + 0.044715f * x * x))) * up[i];
    }
}

void cpu_arch_softcap(float *x, long n, float cap) {
    float inv = 1.0f / cap;
    for (long i = 0; i < n; i++) x[i] = cap * tanhf(x[i] * inv);
}

static const uint8_t *row_at(const cpu_kv_rows *r, int j) {
    size_t slot = (size_t)r->blocks[j / r->block_size] * r->block_size + (size_t)(j % r->block_size);
    return r->base + slot * r->row_stride;
}

void cpu_arch_attn_head(const float *q, int hd, const cpu_kv_rows *k, const cpu_kv_rows *v,
                        int lo, int n, float scale, float softcap, float *scores, float *out,
                        float *tmp) {
    int m = n - lo;
    for (int j = 0; j < m; j++) {
        const uint8_t *p = row_at(k, lo + j);
        const float *kf = (const float *)p;
        if (k->f16) {
            cpu_f16_to_f32((const inf_f16 *)p, tmp, hd);
            kf = tmp;
        }
        scores[j] = cpu_dot_f32(q, kf, hd) * scale;
    }
    if (softcap > 0.0f) cpu_arch_softcap(scores, m, softcap);
    cpu_softmax(scores, m);
    memset(out, 0, (size_t)hd * sizeof(float));
    for (int j = 0; j < m; j++) {
        const uint8_t *p = row_at(v, lo + j);
        const float *vf = (const float *)p;
        if (v->f16) {
            cpu_f16_to_f32((const inf_f16 *)p, tmp, hd);
            vf = tmp;
        }
        cpu_axpy_f32(out, scores[j], vf, hd);
    }
}
