/* model_rope.c - rope frequency tables per layer kind (see model.h,
 * model_rope_table), shared by the CPU and CUDA backends so both rotate
 * exactly alike.
 *
 * The formulas are ggml's rope (ggml-cpu ops.cpp rope_yarn, ggml.c
 * ggml_rope_yarn_corr_dims) with llama.cpp's parameter choices
 * (llama-context.cpp: ext_factor 1 for YaRN, else 0; attn_factor times
 * rope.scaling.attn_factor; llama-model.cpp get_rope_factors: LongRoPE long
 * factors when the context exceeds the original one). */
#include <math.h>
#include <stdlib.h>

#include "model.h"
#include "quant.h"

/* ggml_rope_yarn_corr_dim, in float as ggml computes it: the floor/ceil of
 * the result decides whole dimensions, so the precision must be ggml's. */
static float corr_dim(int n_dims, int n_ctx_orig, float n_rot, float base) {
    return (float)n_dims * logf((float)n_ctx_orig / (n_rot * 2.0f * (float)M_PI)) /
           (2.0f * logf(base));
}

/* Per-pair factors (divisors of the frequency) or NULL; caller frees. */
static int read_factors(const model_desc *d, const gguf_file *f, int n_ctx, float **out,
                        inf_error *err) {
    *out = NULL;
    const gguf_tensor *t = model_tensor(f, -1, "rope_freqs.weight");
    if (!t && d->has_longrope) {
        uint32_t orig = d->rope_orig_ctx ? d->rope_orig_ctx : d->n_ctx_train;
        uint32_t ctx = n_ctx > 0 ? (uint32_t)n_ctx : d->n_ctx_train;
        t = model_tensor(f, -1, ctx > orig ? "rope_factors_long.weight" : "rope_factors_short.weight");
    }
    if (!t) return 0;
    float *v = malloc(t->n_elements * sizeof(float));
    if (!v) return inf_error_set(err, INF_ENOMEM, "out of memory for the rope table");
    quant_dequantize_row(t->type, t->data, v, t->n_elements);
    for (uint64_t i = 0; i < t->n_elements; i++)
        if (!(v[i] > 0.0f) || !isfinite(v[i])) {
            double bad = v[i];
            free(v);
            return inf_error_set(err, INF_EFORMAT, "%s: tensor '%s' element %llu is %g (must be > 0)",
                                 f->path, t->name, (unsigned long long)i, bad);
        }
    *out = v;
    return 0;
}

int model_rope_table(const model_desc *d, const gguf_file *f, int swa, int n_ctx, double *freq,
                     model_rope *r, inf_error *err) {
    int half = (int)d->n_rot / 2;
    r->freq_base = swa ? d->rope_freq_base_swa : d->rope_freq_base;
    r->freq_scale = d->rope_scaling == MODEL_ROPE_SCALING_NONE ? 1.0 : 1.0 / d->rope_scaling_factor;
    /* gemma3's local layers are never scaled (rope_freq_scale_train_swa = 1). */
    if (swa && d->arch_id == MODEL_ARCH_GEMMA3) r->freq_scale = 1.0;
    int yarn = d->rope_scaling == MODEL_ROPE_SCALING_YARN;
    r->mscale = d->rope_attn_factor;
    if (yarn) r->mscale *= 1.0 + 0.1 * log(1.0 / r->freq_scale);
    float lo = 0.0f, hi = 0.0f;
    if (yarn) {
        int orig = (int)(d->rope_orig_ctx ? d->rope_orig_ctx : d->n_ctx_train);
        float base = (float)r->freq_base;
        float start = floorf(corr_dim((int)d->n_rot, orig, d->yarn_beta_fast, base));
        float end = ceilf(corr_dim((int)d->n_rot, orig, d->yarn_beta_slow, base));
        lo = start > 0.0f ? start : 0.0f;
        hi = end < (float)(d->n_rot - 1) ? end : (float)(d->n_rot - 1);
    }
    float *factors = NULL;
    int rc = read_factors(d, f, n_ctx, &factors, err);
    if (rc) return rc;
    for (int i = 0; i < half; i++) {
        double extrap = pow(r->freq_base, -2.0 * i / (double)d->n_rot);
        if (factors) extrap /= factors[i];
        double w = r->freq_scale;
        if (yarn) {
            /* rope_yarn_ramp: 1 below lo (extrapolate), 0 above hi (interpolate). */
            float den = hi - lo > 0.001f ? hi - lo : 0.001f;
            float y = ((float)i - lo) / den;
            float mix = 1.0f - fminf(1.0f, fmaxf(0.0f, y));
            w = r->freq_scale * (1.0 - mix) + mix;
        }
        freq[i] = extrap * w;
    }
    free(factors);
    return 0;
}
