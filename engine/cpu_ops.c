/* cpu_ops.c - kernel selection, the matmul driver (activation quantization,
 * cache blocking, work split) and the portable scalar kernels. The AVX2 set
 * lives in cpu_ops_avx2.c; both follow cpu_ops_impl.h.
 */
#include "cpu_ops.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_ops_impl.h"

/* ---- scalar conversions ------------------------------------------------- */

static float bits_to_f32(uint32_t b) {
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

float cpu_f16_scalar_to_f32(inf_f16 h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    if (exp == 0x1f) return bits_to_f32(sign | 0x7f800000u | (man << 13));
    if (exp != 0) return bits_to_f32(sign | ((exp + 112u) << 23) | (man << 13));
    if (man == 0) return bits_to_f32(sign);
    /* Subnormal half: normalize into a normal float. */
    uint32_t e = 0;
    while (!(man & 0x400u)) {
        man <<= 1;
        e++;
    }
    return bits_to_f32(sign | ((113u - e) << 23) | ((man & 0x3ffu) << 13));
}

inf_f16 cpu_f32_to_f16_scalar(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint32_t sign = (x >> 16) & 0x8000u, ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) /* inf, or NaN kept quiet */
        return (inf_f16)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u | ((ax >> 13) & 0x3ffu) : 0));
    if (ax >= 0x477ff000u) return (inf_f16)(sign | 0x7c00u); /* >= 65520 rounds to inf */
    if (ax < 0x38800000u) {                                  /* below 2^-14: subnormal half */
        if (ax < 0x33000000u) return (inf_f16)sign;          /* below 2^-25: rounds to 0 */
        uint32_t e = ax >> 23, m = (ax & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126 - e, r = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1))) r++;
        return (inf_f16)(sign | r);
    }
    uint32_t r = (ax >> 13) - (112u << 10), rem = ax & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (r & 1))) r++; /* carry may bump the exponent: fine */
    return (inf_f16)(sign | r);
}

static float bf16_to_f32(inf_bf16 h) { return bits_to_f32((uint32_t)h << 16); }

/* ---- scalar row kernels --------------------------------------------------- */

static float sc_dot(const float *a, const float *b, long n) {
    /* Eight partial sums, like the SIMD lanes: keeps the error bound near
     * (n/8) ulp instead of n ulp. */
    float s[8] = {0};
    long i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) s[j] += a[i + j] * b[i + j];
    for (int j = 0; i < n; i++, j++) s[j] += a[i] * b[i];
    return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
}

static void sc_axpy(float *y, float a, const float *x, long n) {
    for (long i = 0; i < n; i++) y[i] += a * x[i];
}

static void sc_rmsnorm(float *out, const float *x, const float *w, long n, float eps) {
    double ss = 0;
    for (long i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float scale = 1.0f / sqrtf((float)(ss / (double)n) + eps);
    for (long i = 0; i < n; i++) out[i] = w ? x[i] * scale * w[i] : x[i] * scale;
}

static void sc_softmax(float *x, long n) {
    float mx = -INFINITY;
    for (long i = 0; i < n; i++)
        if (x[i] > mx) mx = x[i];
    if (mx == -INFINITY) { /* nothing to attend to: all weights zero */
        for (long i = 0; i < n; i++) x[i] = 0.0f;
        return;
    }
    double sum = 0;
    for (long i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    float inv = (float)(1.0 / sum);
    for (long i = 0; i < n; i++) x[i] *= inv;
}

static void sc_swiglu(float *out, const float *gate, const float *up, long n) {
    for (long i = 0; i < n; i++) {
        float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

static void sc_f16_to_f32(const inf_f16 *src, float *dst, long n) {
    for (long i = 0; i < n; i++) dst[i] = cpu_f16_scalar_to_f32(src[i]);
}

static void sc_f32_to_f16(const float *src, inf_f16 *dst, long n) {
    for (long i = 0; i < n; i++) dst[i] = cpu_f32_to_f16_scalar(src[i]);
}

static void sc_quantize_q8(const float *x, int8_t *q, float *d, float *m, long n) {
    for (long b = 0; b < n / 32; b++) {
        const float *xb = x + b * 32;
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(xb[j]));
        float db = amax / 127.0f, id = db != 0.0f ? 1.0f / db : 0.0f;
        int sum = 0;
        for (int j = 0; j < 32; j++) {
            int v = (int)nearbyintf(xb[j] * id);
            q[b * 32 + j] = (int8_t)v;
            sum += v;
        }
        d[b] = db;
        m[b] = -db * (float)sum;
    }
}

/* ---- scalar matmul tiles ------------------------------------------------- */

static float sc_wval(int kt, const uint8_t *row, long c) {
    inf_f16 h;
    switch (kt) {
    case CPU_KT_F32: {
        float f;
        memcpy(&f, row + c * 4, 4);
        return f;
    }
    case CPU_KT_F16:
        memcpy(&h, row + c * 2, 2);
        return cpu_f16_scalar_to_f32(h);
    default:
        memcpy(&h, row + c * 2, 2);
        return bf16_to_f32(h);
    }
}

static void sc_tile_fp(int kt, const cpu_weight *w, int64_t r0, int nr, const cpu_act *a, int t0,
                       int nt, float *y, long ys) {
    for (int r = 0; r < nr; r++) {
        const uint8_t *row = (const uint8_t *)w->data + (size_t)(r0 + r) * w->row_bytes;
        for (int t = 0; t < nt; t++) {
            const float *x = a->x + (long)(t0 + t) * a->x_stride;
            float s[8] = {0};
            for (long c = 0; c < w->cols; c++) s[c & 7] += sc_wval(kt, row, c) * x[c];
            y[(long)(t0 + t) * ys + r0 + r] =
                ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
        }
    }
}

static void sc_tile_f32(const cpu_weight *w, int64_t r0, int nr, const cpu_act *a, int t0, int nt,
                        float *y, long ys) {
    sc_tile_fp(CPU_KT_F32, w, r0, nr, a, t0, nt, y, ys);
}
static void sc_tile_f16(const cpu_weight *w, int64_t r0, int nr, const cpu_act *a, int t0, int nt,
                        float *y, long ys) {
    sc_tile_fp(CPU_KT_F16, w, r0, nr, a, t0, nt, y, ys);
}
static void sc_tile_bf16(const cpu_weight *w, int64_t r0, int nr, const cpu_act *a, int t0, int nt,
                         float *y, long ys) {
    sc_tile_fp(CPU_KT_BF16, w, r0, nr, a, t0, nt, y, ys);
}

static void sc_tile_quant(int kt, const cpu_weight *w, int64_t r0, int nr, const cpu_act *a,
                          int t0, int nt, float *y, long ys) {
    long nb = w->cols / 32;
    for (int r = 0; r < nr; r++) {
        const uint8_t *row = (const uint8_t *)w->data + (size_t)(r0 + r) * w->row_bytes;
        for (int t = 0; t < nt; t++) {
            const int8_t *aq = a->q + (long)(t0 + t) * a->q_stride;
            const float *ad = a->d + (long)(t0 + t) * a->d_stride;
            float s = 0.0f;
            for (long b = 0; b < nb; b++) {
                int isum = 0;
                inf_f16 dh;
                if (kt == CPU_KT_Q8_0) {
                    const block_q8_0 *blk = (const block_q8_0 *)row + b;
                    for (int j = 0; j < 32; j++) isum += blk->qs[j] * aq[b * 32 + j];
                    dh = blk->d;
                } else {
                    const block_q4_0 *blk = (const block_q4_0 *)row + b;
                    for (int j = 0; j < 16; j++) {
                        isum += ((blk->qs[j] & 0x0f) - 8) * aq[b * 32 + j];
                        isum += ((blk->qs[j] >> 4) - 8) * aq[b * 32 + 16 + j];
                    }
                    dh = blk->d;
                }
                s += (float)isum * (cpu_f16_scalar_to_f32(dh) * ad[b]);
            }
            y[(long)(t0 + t) * ys + r0 + r] = s;
        }
    }
}

static void sc_tile_q8_0(const cpu_weight *w, int64_t r0, int nr, const cpu_act *a, int t0, int nt,
                         float *y, long ys) {
    sc_tile_quant(CPU_KT_Q8_0, w, r0, nr, a, t0, nt, y, ys);
}
static void sc_tile_q4_0(const cpu_weight *w, int64_t r0, int nr, const cpu_act *a, int t0, int nt,
                         float *y, long ys) {
    sc_tile_quant(CPU_KT_Q4_0, w, r0, nr, a, t0, nt, y, ys);
}

void cpu_attn_head_rows(const cpu_kernels *k, const float *q, int hd, const cpu_kv_rows *kr,
                        const cpu_kv_rows *vr, int n, float scale, float *scores, float *out,
                        float *tmp) {
    for (int j = 0; j < n; j++) {
        const uint8_t *p = cpu_kv_at(kr, j);
        const float *kf = (const float *)p;
        if (kr->f16) {
            k->f16_to_f32((const inf_f16 *)p, tmp, hd);
            kf = tmp;
        }
        scores[j] = k->dot(q, kf, hd) * scale;
    }
    k->softmax(scores, n);
    memset(out, 0, (size_t)hd * sizeof(float));
    for (int j = 0; j < n; j++) {
        const uint8_t *p = cpu_kv_at(vr, j);
        const float *vf = (const float *)p;
        if (vr->f16) {
            k->f16_to_f32((const inf_f16 *)p, tmp, hd);
            vf = tmp;
        }
        k->axpy(out, scores[j], vf, hd);
    }
}

static const cpu_kernels scalar_kernels;

static void sc_attn_head(const float *q, int hd, const cpu_kv_rows *k, const cpu_kv_rows *v, int n,
                         float scale, float *scores, float *out, float *tmp) {
    cpu_attn_head_rows(&scalar_kernels, q, hd, k, v, n, scale, scores, out, tmp);
}

static const cpu_kernels scalar_kernels = {
    .name = "scalar",
    .tile = {sc_tile_f32, sc_tile_f16, sc_tile_bf16, sc_tile_q8_0, sc_tile_q4_0, cpu_sc_tile_q4_1,
             cpu_sc_tile_q5_0, cpu_sc_tile_q5_1, cpu_sc_tile_q4_K, cpu_sc_tile_q5_K, cpu_sc_tile_q6_K},
    .rm = {4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4},
    .rn = {4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4},
    .rm1 = {4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4},
    .quantize_q8 = sc_quantize_q8,
    .dot = sc_dot,
    .axpy = sc_axpy,
    .rmsnorm = sc_rmsnorm,
    .softmax = sc_softmax,
    .swiglu = sc_swiglu,
    .f16_to_f32 = sc_f16_to_f32,
    .f32_to_f16 = sc_f32_to_f16,
    .attn_head = sc_attn_head,
};

/* ---- selection ------------------------------------------------------------ */

/* The once-chosen dispatch table: the best set cpuid allows, picked on first
 * use, or what cpu_ops_select / cpu_ops_set_simd asked for. The only global
 * the kernels have; atomic so a racing first use is harmless. */
static _Atomic(const cpu_kernels *) g_kernels;

static const cpu_kernels *kernels_for(int isa) {
    switch (isa) {
    case CPU_ISA_AVX512: return cpu_kernels_avx512();
    case CPU_ISA_AVXVNNI: return cpu_kernels_avxvnni();
    case CPU_ISA_AVX2: return cpu_kernels_avx2();
    case CPU_ISA_SCALAR: return &scalar_kernels;
    default: return NULL;
    }
}

int cpu_ops_isa_best(void) {
    for (int i = CPU_ISA_MAX; i > CPU_ISA_SCALAR; i--)
        if (kernels_for(i)) return i;
    return CPU_ISA_SCALAR;
}

int cpu_ops_isa_available(int isa) { return kernels_for(isa) != NULL; }

const char *cpu_ops_isa_requires(int isa) {
    switch (isa) {
    case CPU_ISA_SCALAR: return "nothing";
    case CPU_ISA_AVX2: return "AVX2, FMA and F16C";
    case CPU_ISA_AVXVNNI: return "AVX-VNNI with AVX2, FMA and F16C";
    case CPU_ISA_AVX512: return "AVX512 F/BW/VL/VNNI with AVX2, FMA and F16C";
    default: return "an unknown kernel set";
    }
}

static const cpu_kernels *kern(void) {
    const cpu_kernels *k = atomic_load_explicit(&g_kernels, memory_order_relaxed);
    if (!k) {
        k = kernels_for(cpu_ops_isa_best());
        atomic_store_explicit(&g_kernels, k, memory_order_relaxed);
    }
    return k;
}

const char *cpu_ops_isa_name(int isa) {
    switch (isa) {
    case CPU_ISA_SCALAR: return "scalar";
    case CPU_ISA_AVX2: return "avx2";
    case CPU_ISA_AVXVNNI: return "avxvnni";
    case CPU_ISA_AVX512: return "avx512";
    default: return "unknown";
    }
}

int cpu_ops_isa(void) {
    const cpu_kernels *k = kern();
    for (int i = CPU_ISA_SCALAR; i <= CPU_ISA_MAX; i++)
        if (kernels_for(i) == k) return i;
    return CPU_ISA_SCALAR;
}

int cpu_ops_isa_parse(const char *name) {
    if (!name || !*name || strcmp(name, "auto") == 0) return CPU_ISA_AUTO;
    for (int i = CPU_ISA_SCALAR; i <= CPU_ISA_MAX; i++)
        if (strcmp(name, cpu_ops_isa_name(i)) == 0) return i;
    return -2;
}

int cpu_ops_select(const char *name, inf_error *err) {
    int isa = cpu_ops_isa_parse(name);
    if (isa == -2)
        return inf_error_set(err, INF_EINVAL, "cpu isa '%s' is unknown (use auto, scalar, avx2, avxvnni or avx512)",
                             name);
    if (isa == CPU_ISA_AUTO) isa = cpu_ops_isa_best();
    const cpu_kernels *k = kernels_for(isa);
    if (!k)
        return inf_error_set(err, INF_EUNSUPPORTED,
                             "cpu isa '%s' is not available on this CPU (best available: %s)", name,
                             cpu_ops_isa_name(cpu_ops_isa_best()));
    atomic_store_explicit(&g_kernels, k, memory_order_relaxed);
    return 0;
}

int cpu_ops_set_isa(int isa) {
    int prev = cpu_ops_isa();
    const cpu_kernels *k = kernels_for(isa == CPU_ISA_AUTO ? cpu_ops_isa_best() : isa);
    if (!k) return -1;
    atomic_store_explicit(&g_kernels, k, memory_order_relaxed);
    return prev;
}

int cpu_ops_set_simd(int enable) {
    int prev = kern() != &scalar_kernels;
    cpu_ops_set_isa(enable ? cpu_ops_isa_best() : CPU_ISA_SCALAR);
    return prev;
}

int cpu_ops_simd_active(void) { return kern() != &scalar_kernels; }

const char *cpu_ops_describe(void) { return kern()->name; }

/* ---- row kernels (public) -------------------------------------------------- */

float cpu_dot_f32(const float *a, const float *b, long n) { return kern()->dot(a, b, n); }
void cpu_axpy_f32(float *y, float a, const float *x, long n) { kern()->axpy(y, a, x, n); }
void cpu_rmsnorm(float *out, const float *x, const float *w, long n, float eps) {
    kern()->rmsnorm(out, x, w, n, eps);
}
void cpu_softmax(float *x, long n) { kern()->softmax(x, n); }
void cpu_swiglu(float *out, const float *gate, const float *up, long n) {
    kern()->swiglu(out, gate, up, n);
}
void cpu_f16_to_f32(const inf_f16 *src, float *dst, long n) { kern()->f16_to_f32(src, dst, n); }
void cpu_f32_to_f16(const float *src, inf_f16 *dst, long n) { kern()->f32_to_f16(src, dst, n); }
void cpu_attn_head(const float *q, int hd, const cpu_kv_rows *k, const cpu_kv_rows *v, int n,
                   float scale, float *scores, float *out, float *tmp) {
    kern()->attn_head(q, hd, k, v, n, scale, scores, out, tmp);
}

static void rope_pair(float *x0, float *x1, float c, float s) {
    float a = *x0, b = *x1;
    *x0 = a * c - b * s;
    *x1 = a * s + b * c;
}

void cpu_rope(float *x, int n_heads, int head_dim, int n_rot, int pos, float freq_base,
              float freq_scale, int neox) {
    if (n_rot > head_dim) n_rot = head_dim;
    int half = n_rot / 2;
    /* The angles are shared by all heads: compute them once, in double so
     * large positions keep their precision. */
    enum { MAXH = 512 };
    float cs[MAXH], sn[MAXH];
    for (int i0 = 0; i0 < half; i0 += MAXH) {
        int i1 = half - i0 < MAXH ? half : i0 + MAXH;
        for (int i = i0; i < i1; i++) {
            double th = (double)pos * freq_scale * pow(freq_base, -2.0 * i / n_rot);
            cs[i - i0] = (float)cos(th);
            sn[i - i0] = (float)sin(th);
        }
        for (int h = 0; h < n_heads; h++) {
            float *v = x + (long)h * head_dim;
            for (int i = i0; i < i1; i++) {
                if (neox)
                    rope_pair(&v[i], &v[i + half], cs[i - i0], sn[i - i0]);
                else
                    rope_pair(&v[2 * i], &v[2 * i + 1], cs[i - i0], sn[i - i0]);
            }
        }
    }
}

/* ---- matmul driver --------------------------------------------------------- */

static int kt_of(int type) {
    switch (type) {
    case GGML_TYPE_F32: return CPU_KT_F32;
    case GGML_TYPE_F16: return CPU_KT_F16;
    case GGML_TYPE_BF16: return CPU_KT_BF16;
    case GGML_TYPE_Q8_0: return CPU_KT_Q8_0;
    case GGML_TYPE_Q4_0: return CPU_KT_Q4_0;
    case GGML_TYPE_Q4_1: return CPU_KT_Q4_1;
    case GGML_TYPE_Q5_0: return CPU_KT_Q5_0;
    case GGML_TYPE_Q5_1: return CPU_KT_Q5_1;
    case GGML_TYPE_Q4_K: return CPU_KT_Q4_K;
    case GGML_TYPE_Q5_K: return CPU_KT_Q5_K;
    case GGML_TYPE_Q6_K: return CPU_KT_Q6_K;
    default: return -1;
    }
}

int cpu_matmul_supports(int type) { return kt_of(type) >= 0; }

/* Q8_K activations (see cpu_act), as ggml's quantize_row_q8_K: the value of
 * largest magnitude maps to -127, q = round-to-nearest-even(x * -127/max),
 * d = 1 / (-127/max). One portable routine for every kernel set, so all
 * paths see bit-identical activations. */
static int q8k_round(float v) {
    if (!(v >= -127.0f)) return v != v ? 0 : -127; /* nan guard; finite input stays in range */
    if (v > 127.0f) return 127;
    return (int)nearbyintf(v);
}

static void quantize_q8k(const float *x, int8_t *q, float *d, int16_t *bs, long n) {
    for (long b = 0; b < n / QK_K; b++, x += QK_K, q += QK_K, bs += QK_K / 16) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < QK_K; j++)
            if (fabsf(x[j]) > amax) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        if (amax == 0.0f) {
            d[b] = 0.0f;
            memset(q, 0, QK_K);
            memset(bs, 0, QK_K / 16 * sizeof *bs);
            continue;
        }
        float iscale = -127.0f / max;
        for (int j = 0; j < QK_K; j++) q[j] = (int8_t)q8k_round(iscale * x[j]);
        for (int g = 0; g < QK_K / 16; g++) {
            int sum = 0;
            for (int l = 0; l < 16; l++) sum += q[16 * g + l];
            bs[g] = (int16_t)sum;
        }
        d[b] = 1.0f / iscale;
    }
}

void cpu_scratch_free(cpu_scratch *s) {
    if (!s) return;
    free(s->buf);
    s->buf = NULL;
    s->cap = 0;
}

static int scratch_reserve(cpu_scratch *s, size_t need) {
    if (s->cap >= need) return 0;
    need = (need + 4095) & ~(size_t)4095;
    void *b = aligned_alloc(64, need);
    if (!b) return INF_ENOMEM;
    free(s->buf);
    s->buf = b;
    s->cap = need;
    return 0;
}

/* Rows of weights a thread keeps hot in L2 while it sweeps every token tile. */
#define MM_BLOCK_BYTES (192 * 1024)
/* Below this many multiply-adds the fork-join costs more than it saves. */
#define MM_MIN_PARALLEL_MACS (64 * 1024)

/* Most weights one cpu_matmul_multi call takes. */
#define MM_MAX_W 4

typedef struct mm_out {
    const cpu_weight *w;
    float *y;
    long ys;
    int rm, rn;
    long row_block;
} mm_out;

typedef struct mm_task {
    const cpu_kernels *k;
    const cpu_weight *w; /* the first weight: type and cols shared by all */
    cpu_act act;
    int kt, n_tok;
    int nw;
    mm_out out[MM_MAX_W];
    /* activation quantization (first pass) */
    const float *x;
    long xs;
    int8_t *q;
    float *d, *m;
    int16_t *bs;
} mm_task;

static void mm_quant_worker(void *ctx, int ith, int nth) {
    mm_task *tk = ctx;
    long lo, hi;
    inf_pool_range(tk->n_tok, ith, nth, &lo, &hi);
    for (long t = lo; t < hi; t++) {
        if (cpu_kt_is_k(tk->kt))
            quantize_q8k(tk->x + t * tk->xs, tk->q + t * tk->act.q_stride, tk->d + t * tk->act.d_stride,
                         tk->bs + t * tk->act.bs_stride, tk->w->cols);
        else
            tk->k->quantize_q8(tk->x + t * tk->xs, tk->q + t * tk->act.q_stride,
                               tk->d + t * tk->act.d_stride, tk->m + t * tk->act.d_stride, tk->w->cols);
    }
}

/* This thread's share of one weight's rows, every token. */
static void mm_one(const mm_task *tk, const mm_out *o, int ith, int nth) {
    const int64_t rows = o->w->rows;
    const int rm = o->rm, rn = o->rn;
    /* Split whole tiles so every thread but the last runs full-height tiles. */
    long lo, hi;
    inf_pool_range((rows + rm - 1) / rm, ith, nth, &lo, &hi);
    int64_t r_lo = lo * rm, r_hi = hi * rm < rows ? hi * rm : rows;
    cpu_tile_fn tile = tk->k->tile[tk->kt];
    for (int64_t rb = r_lo; rb < r_hi; rb += o->row_block) {
        int64_t rb_end = rb + o->row_block < r_hi ? rb + o->row_block : r_hi;
        for (int t0 = 0; t0 < tk->n_tok; t0 += rn) {
            int nt = tk->n_tok - t0 < rn ? tk->n_tok - t0 : rn;
            for (int64_t r = rb; r < rb_end; r += rm) {
                int nr = rb_end - r < rm ? (int)(rb_end - r) : rm;
                tile(o->w, r, nr, &tk->act, t0, nt, o->y, o->ys);
            }
        }
    }
}

static void mm_worker(void *ctx, int ith, int nth) {
    const mm_task *tk = ctx;
    for (int i = 0; i < tk->nw; i++) mm_one(tk, &tk->out[i], ith, nth);
}

/* Weights that can share one activation quantization and one fork-join:
 * the same kernel type and the same cols. */
static int mm_compatible(const cpu_weight *a, const cpu_weight *b) {
    return a->type == b->type && a->cols == b->cols;
}

static int mm_run(inf_pool *pool, cpu_scratch *scratch, int nw, const cpu_weight *const *ws,
                  const float *x, long x_stride, int n_tok, float *const *ys, const long *y_strides) {
    const cpu_weight *w = ws[0];
    int kt = kt_of(w->type);
    if (kt < 0) return INF_EUNSUPPORTED;
    if (n_tok <= 0) return 0;
    if (w->cols <= 0 || (n_tok > 1 && x_stride < w->cols)) return INF_EINVAL;
    double macs = 0;
    for (int i = 0; i < nw; i++) {
        if (ws[i]->row_bytes == 0 || (n_tok > 1 && y_strides[i] < ws[i]->rows)) return INF_EINVAL;
        macs += (double)ws[i]->rows * (double)ws[i]->cols * n_tok;
    }
    const int quant = kt >= CPU_KT_Q8_0;
    if (quant && w->cols % (cpu_kt_is_k(kt) ? QK_K : 32)) return INF_EINVAL;

    const cpu_kernels *k = kern();
    mm_task tk = {.k = k, .w = w, .kt = kt, .n_tok = n_tok};
    tk.act.x = x;
    tk.act.x_stride = x_stride;
    cpu_scratch local = {0};
    int nth = inf_pool_size(pool);
    if (macs < MM_MIN_PARALLEL_MACS) nth = 1;
    if (quant) {
        cpu_scratch *s = scratch ? scratch : &local;
        /* per token: int8 values, f32 scales and m values per 32, int16 sums
         * per 16 (K types only); strides keep every row 64-byte aligned */
        long qs = (w->cols + 63) & ~63L, ds = ((w->cols / 32) + 15) & ~15L;
        long bss = cpu_kt_is_k(kt) ? ((w->cols / 16) + 31) & ~31L : 0;
        size_t need = (size_t)n_tok * (size_t)qs + 2 * (size_t)n_tok * (size_t)ds * sizeof(float) +
                      (size_t)n_tok * (size_t)bss * sizeof(int16_t);
        if (scratch_reserve(s, need)) return INF_ENOMEM;
        tk.q = s->buf;
        tk.d = (float *)((char *)s->buf + (size_t)n_tok * qs);
        tk.m = tk.d + (size_t)n_tok * ds;
        tk.bs = bss ? (int16_t *)(tk.m + (size_t)n_tok * ds) : NULL;
        tk.act.q = tk.q;
        tk.act.q_stride = qs;
        tk.act.d = tk.d;
        tk.act.m = cpu_kt_is_k(kt) ? NULL : tk.m;
        tk.act.d_stride = ds;
        tk.act.bsums = tk.bs;
        tk.act.bs_stride = bss;
        tk.x = x;
        tk.xs = x_stride;
        if (nth > 1 && n_tok > 1)
            inf_pool_run(pool, mm_quant_worker, &tk);
        else
            mm_quant_worker(&tk, 0, 1);
    }
    for (int i = 0; i < nw; i++) {
        mm_out *o = &tk.out[tk.nw];
        if (ws[i]->rows <= 0) continue;
        o->w = ws[i];
        o->y = ys[i];
        o->ys = y_strides[i];
        o->rm = n_tok == 1 ? k->rm1[kt] : k->rm[kt];
        o->rn = n_tok == 1 ? 1 : k->rn[kt];
        long rows_fit = (long)(MM_BLOCK_BYTES / ws[i]->row_bytes);
        rows_fit = rows_fit / o->rm * o->rm;
        o->row_block = rows_fit > o->rm ? rows_fit : o->rm;
        tk.nw++;
    }
    if (nth > 1)
        inf_pool_run(pool, mm_worker, &tk);
    else
        mm_worker(&tk, 0, 1);
    cpu_scratch_free(&local);
    return 0;
}

int cpu_matmul_multi(inf_pool *pool, cpu_scratch *scratch, int nw, const cpu_weight *const *w,
                     const float *x, long x_stride, int n_tok, float *const *y, const long *y_stride) {
    if (nw <= 0) return 0;
    for (int i = 0; i < nw; i++)
        if (kt_of(w[i]->type) < 0) return INF_EUNSUPPORTED;
    /* runs of compatible weights, in order */
    for (int i = 0; i < nw;) {
        int j = i + 1;
        while (j < nw && j - i < MM_MAX_W && mm_compatible(w[i], w[j])) j++;
        int rc = mm_run(pool, scratch, j - i, w + i, x, x_stride, n_tok, y + i, y_stride + i);
        if (rc) return rc;
        i = j;
    }
    return 0;
}

int cpu_matmul(inf_pool *pool, cpu_scratch *scratch, const cpu_weight *w, const float *x,
               long x_stride, int n_tok, float *y, long y_stride) {
    if (kt_of(w->type) < 0) return INF_EUNSUPPORTED;
    if (n_tok <= 0 || w->rows <= 0) return 0;
    return mm_run(pool, scratch, 1, &w, x, x_stride, n_tok, &y, &y_stride);
}
