/* gpu_kernel_tests.c - every CUDA kernel against a CPU reference on random
 * inputs: outputs poisoned (0xFF bytes = NaN) before each run, sizes that are
 * not multiples of the tiles, relative error thresholds per dtype. */
#ifdef INF_HAVE_CUDA
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>
#include <cuda_runtime_api.h>

#include "gpu_test.h"
#include "infk.h"
#include "quant.h"
#include "sampler.h"
#include "tests/testutil.h"

#define OK(call)                                                          \
    do {                                                                  \
        inf_error e_ = {0};                                               \
        int rc_ = (call);                                                 \
        if (rc_) fprintf(stderr, "\n  %s: %s\n", #call, e_.msg);          \
        CU_ASSERT_EQUAL_FATAL(rc_, 0);                                    \
    } while (0)
#define CU(call) CU_ASSERT_EQUAL_FATAL((call), cudaSuccess)

static uint64_t g_rng = 12345;
static float frand(float lo, float hi) { return tu_rand_uniform(&g_rng, lo, hi); }

static void *dup_dev(const void *h, size_t n) {
    void *d = NULL;
    CU_ASSERT_EQUAL(cudaMalloc(&d, n ? n : 1), cudaSuccess);
    if (n) CU_ASSERT_EQUAL(cudaMemcpy(d, h, n, cudaMemcpyHostToDevice), cudaSuccess);
    return d;
}
static void *poisoned(size_t n) {
    void *d = NULL;
    CU_ASSERT_EQUAL(cudaMalloc(&d, n ? n : 1), cudaSuccess);
    CU_ASSERT_EQUAL(cudaMemset(d, 0xff, n), cudaSuccess);
    return d;
}
static void to_host(void *h, const void *d, size_t n) {
    CU_ASSERT_EQUAL(cudaDeviceSynchronize(), cudaSuccess);
    CU_ASSERT_EQUAL(cudaMemcpy(h, d, n, cudaMemcpyDeviceToHost), cudaSuccess);
}

/* Device values of dt back to f32. */
static void dt_to_f32(const void *src, int dt, float *dst, size_t n) {
    for (size_t i = 0; i < n; i++)
        dst[i] = dt == INFK_F32   ? ((const float *)src)[i]
                 : dt == INFK_F16 ? quant_f16_to_f32(((const uint16_t *)src)[i])
                                  : quant_bf16_to_f32(((const uint16_t *)src)[i]);
}

/* A random rows x cols matrix of type dt in device layout, and its f32 value. */
typedef struct hmat {
    infk_weight w;
    float *ref;
    void *dev;
} hmat;

static void make_mat(hmat *m, int dt, int64_t rows, int64_t cols) {
    size_t n = (size_t)rows * cols, bytes = infk_weight_bytes(dt, rows, cols);
    uint8_t *h = calloc(1, bytes);
    m->ref = malloc(n * sizeof(float));
    float *row = malloc(cols * sizeof(float));
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t c = 0; c < cols; c++) row[c] = frand(-1, 1);
        if (dt == INFK_Q8_0 || dt == INFK_Q4_0) {
            int gt = dt == INFK_Q8_0 ? GGML_TYPE_Q8_0 : GGML_TYPE_Q4_0, ok = 1;
            size_t rb = quant_row_bytes(gt, cols, &ok), qb = dt == INFK_Q8_0 ? 32 : 16;
            uint8_t *blk = malloc(rb);
            quant_quantize_row(gt, row, blk, cols);
            quant_dequantize_row(gt, blk, m->ref + r * cols, cols);
            size_t qrow = (size_t)cols / (dt == INFK_Q8_0 ? 1 : 2), nb = cols / 32;
            for (size_t b = 0; b < nb; b++) {
                memcpy(h + (size_t)rows * qrow + ((size_t)r * nb + b) * 2, blk + b * (2 + qb), 2);
                memcpy(h + (size_t)r * qrow + b * qb, blk + b * (2 + qb) + 2, qb);
            }
            free(blk);
        } else {
            for (int64_t c = 0; c < cols; c++) {
                size_t i = (size_t)r * cols + c;
                if (dt == INFK_F32) ((float *)h)[i] = row[c];
                else if (dt == INFK_F16) ((uint16_t *)h)[i] = quant_f32_to_f16(row[c]);
                else ((uint16_t *)h)[i] = quant_f32_to_bf16(row[c]);
            }
            dt_to_f32(h + (size_t)r * cols * infk_dt_size(dt), dt, m->ref + r * cols, cols);
        }
    }
    m->dev = dup_dev(h, bytes);
    m->w = (infk_weight){dt, rows, cols, m->dev,
                         dt == INFK_Q8_0 || dt == INFK_Q4_0
                             ? (uint8_t *)m->dev + (size_t)rows * cols / (dt == INFK_Q8_0 ? 1 : 2)
                             : NULL};
    free(row);
    free(h);
}
static void free_mat(hmat *m) {
    cudaFree(m->dev);
    free(m->ref);
}

static const int all_dt[] = {INFK_F32, INFK_F16, INFK_BF16, INFK_Q8_0, INFK_Q4_0};

static void test_embed(void) {
    for (int k = 0; k < 5; k++) {
        int dt = all_dt[k];
        int64_t V = 301, E = dt >= INFK_Q8_0 ? 96 : 70;
        hmat m;
        make_mat(&m, dt, V, E);
        int32_t toks[7] = {0, 300, 5, 5, 17, 299, 1};
        int32_t *dt_ = dup_dev(toks, sizeof toks);
        float *dx = poisoned(7 * E * 4), *hx = malloc(7 * E * 4), *ref = malloc(7 * E * 4);
        for (int t = 0; t < 7; t++) memcpy(ref + t * E, m.ref + toks[t] * E, E * 4);
        OK(infk_embed(&m.w, dt_, 7, dx, 0, &e_));
        to_host(hx, dx, 7 * E * 4);
        CU_ASSERT(gpu_rel_err(hx, ref, 7 * E, 1e-6) < 1e-6);
        cudaFree(dt_);
        cudaFree(dx);
        free(hx);
        free(ref);
        free_mat(&m);
    }
}

static void test_rmsnorm(void) {
    int n = 1000, rows = 5;
    float *x = malloc(rows * n * 4), *dl = malloc(rows * n * 4), *w = malloc(n * 4);
    for (int i = 0; i < rows * n; i++) {
        x[i] = frand(-2, 2);
        dl[i] = frand(-1, 1);
    }
    for (int i = 0; i < n; i++) w[i] = frand(0.5f, 1.5f);
    int32_t sel[3] = {4, 0, 2};
    for (int odt = 0; odt < 3; odt++)
        for (int mode = 0; mode < 3; mode++) { /* plain, +residual, +residual+gather */
            float *dx = dup_dev(x, rows * n * 4), *dd = dup_dev(dl, rows * n * 4), *dw = dup_dev(w, n * 4);
            int32_t *ds = dup_dev(sel, sizeof sel);
            int nr = mode == 2 ? 3 : rows;
            void *dout = poisoned((size_t)nr * n * 4);
            OK(infk_rmsnorm(dx, mode ? dd : NULL, dw, mode == 2 ? ds : NULL, nr, n, 1e-5f, dout,
                            odt, 0, &e_));
            void *hraw = malloc((size_t)nr * n * 4);
            float *ho = malloc((size_t)nr * n * 4), *ref = malloc((size_t)nr * n * 4);
            to_host(hraw, dout, (size_t)nr * n * infk_dt_size(odt));
            dt_to_f32(hraw, odt, ho, (size_t)nr * n);
            for (int i = 0; i < nr; i++) {
                int r = mode == 2 ? sel[i] : i;
                double ss = 0;
                float v[1000];
                for (int c = 0; c < n; c++) {
                    v[c] = x[r * n + c] + (mode ? dl[r * n + c] : 0);
                    ss += (double)v[c] * v[c];
                }
                double s = 1.0 / sqrt(ss / n + 1e-5);
                for (int c = 0; c < n; c++) ref[i * n + c] = (float)(v[c] * s * w[c]);
            }
            double tol = odt == INFK_F32 ? 1e-5 : odt == INFK_F16 ? 2e-3 : 1e-2;
            CU_ASSERT(gpu_rel_err(ho, ref, (size_t)nr * n, 1e-6) < tol);
            if (mode) { /* residual written back */
                float *hx = malloc(rows * n * 4);
                to_host(hx, dx, rows * n * 4);
                int r = mode == 2 ? 4 : 1;
                CU_ASSERT(fabsf(hx[r * n + 3] - (x[r * n + 3] + dl[r * n + 3])) < 1e-6f);
                free(hx);
            }
            cudaFree(dx), cudaFree(dd), cudaFree(dw), cudaFree(ds), cudaFree(dout);
            free(hraw), free(ho), free(ref);
        }
    free(x), free(dl), free(w);
}

static void test_rope(void) {
    int n = 3, nh = 4, nkv = 2, hd = 24, nrot = 20; /* partial rotation, odd sizes */
    long stride = (nh + 2 * nkv) * hd + 5, q_off = 0, k_off = nh * hd;
    int32_t pos[3] = {0, 7, 100003};
    float inv[10];
    for (int i = 0; i < nrot / 2; i++) /* linear scale 1/4 and a rope_freqs factor, as the CPU table */
        inv[i] = (float)(pow(500000.0, -2.0 * i / nrot) * 0.25 / (1.0 + 0.1 * i));
    for (int neox = 0; neox < 2; neox++) {
        float *h = malloc(n * stride * 4), *ref = malloc(n * stride * 4), *out = malloc(n * stride * 4);
        for (long i = 0; i < n * stride; i++) h[i] = ref[i] = frand(-1, 1);
        for (int t = 0; t < n; t++)
            for (int hh = 0; hh < nh + nkv; hh++) {
                float *v = ref + t * stride + (hh < nh ? q_off + hh * hd : k_off + (hh - nh) * hd);
                for (int i = 0; i < nrot / 2; i++) {
                    double th = (double)pos[t] * (double)inv[i];
                    float c = (float)cos(th), s = (float)sin(th);
                    int i0 = neox ? i : 2 * i, i1 = neox ? i + nrot / 2 : 2 * i + 1;
                    float x0 = v[i0], x1 = v[i1];
                    v[i0] = x0 * c - x1 * s;
                    v[i1] = x0 * s + x1 * c;
                }
            }
        float *d = dup_dev(h, n * stride * 4), *dinv = dup_dev(inv, sizeof inv);
        int32_t *dp = dup_dev(pos, sizeof pos);
        OK(infk_rope(d, n, stride, q_off, nh, k_off, nkv, hd, nrot, neox, dp, dinv, 0, &e_));
        to_host(out, d, n * stride * 4);
        CU_ASSERT(gpu_rel_err(out, ref, n * stride, 1e-6) < 2e-5);
        cudaFree(d), cudaFree(dinv), cudaFree(dp);
        free(h), free(ref), free(out);
    }
}

static void test_swiglu_bias_convert(void) {
    int n = 3, F = 333;
    long stride = 2 * F + 3;
    float *gu = malloc(n * stride * 4), *ref = malloc(n * F * 4), *ho = malloc(n * F * 4);
    for (long i = 0; i < n * stride; i++) gu[i] = frand(-4, 4);
    for (int t = 0; t < n; t++)
        for (int i = 0; i < F; i++) {
            float g = gu[t * stride + i];
            ref[t * F + i] = g / (1.0f + expf(-g)) * gu[t * stride + F + i];
        }
    for (int odt = 0; odt < 3; odt++) {
        float *d = dup_dev(gu, n * stride * 4);
        void *dout = poisoned(n * F * 4), *raw = malloc(n * F * 4);
        OK(infk_swiglu(d, stride, F, n, dout, odt, 0, &e_));
        to_host(raw, dout, n * F * infk_dt_size(odt));
        dt_to_f32(raw, odt, ho, n * F);
        CU_ASSERT(gpu_rel_err(ho, ref, n * F, 1e-6) < (odt == INFK_F32 ? 1e-5 : odt == INFK_F16 ? 2e-3 : 1e-2));
        /* bias on a column range */
        float bias[50];
        for (int i = 0; i < 50; i++) bias[i] = frand(-1, 1);
        float *db = dup_dev(bias, sizeof bias);
        OK(infk_add_bias(d, stride, 7, 50, db, n, 0, &e_));
        float *back = malloc(n * stride * 4);
        to_host(back, d, n * stride * 4);
        int bad = 0;
        for (int t = 0; t < n; t++)
            for (long i = 0; i < stride; i++) {
                float want = gu[t * stride + i] + (i >= 7 && i < 57 ? bias[i - 7] : 0);
                bad += fabsf(back[t * stride + i] - want) > 1e-6f;
            }
        CU_ASSERT_EQUAL(bad, 0);
        cudaFree(d), cudaFree(dout), cudaFree(db);
        free(raw), free(back);
    }
    free(gu), free(ref), free(ho);
}

static void test_dequant(void) {
    for (int k = 3; k < 5; k++) {
        hmat m;
        make_mat(&m, all_dt[k], 37, 160);
        for (int odt = 0; odt < 3; odt++) {
            void *d = poisoned(30 * 160 * 4), *raw = malloc(30 * 160 * 4);
            float *ho = malloc(30 * 160 * 4);
            OK(infk_dequant_rows(&m.w, 5, 30, d, odt, 0, &e_));
            to_host(raw, d, 30 * 160 * infk_dt_size(odt));
            dt_to_f32(raw, odt, ho, 30 * 160);
            CU_ASSERT(gpu_rel_err(ho, m.ref + 5 * 160, 30 * 160, 1e-6) <
                      (odt == INFK_F32 ? 1e-6 : odt == INFK_F16 ? 1e-3 : 8e-3));
            cudaFree(d), free(raw), free(ho);
        }
        free_mat(&m);
    }
}

static void test_gemv(void) {
    /* cols: vector path (multiples of the load width) and the generic one */
    static const int64_t colsv[] = {96, 100, 4096 + 32, 320};
    for (int k = 0; k < 5; k++)
        for (int ci = 0; ci < 4; ci++) {
            int dt = all_dt[k];
            int64_t cols = colsv[ci], rows = 77;
            if ((dt == INFK_Q8_0 || dt == INFK_Q4_0) && cols % 32) continue;
            hmat m;
            make_mat(&m, dt, rows, cols);
            for (int n = 1; n <= INFK_GEMV_MAX_TOKENS; n += (n < 3 ? 1 : 5)) {
                long xs = cols, ys = rows + 3;
                float *x = malloc(n * xs * 4), *ref = calloc(n * ys, 4), *out = malloc(n * ys * 4);
                for (long i = 0; i < n * xs; i++) x[i] = frand(-1, 1);
                for (int t = 0; t < n; t++)
                    for (int64_t r = 0; r < rows; r++) {
                        double s = 0;
                        for (int64_t c = 0; c < cols; c++) s += (double)m.ref[r * cols + c] * x[t * xs + c];
                        ref[t * ys + r] = (float)s;
                    }
                float *dx = dup_dev(x, n * xs * 4), *dy = poisoned(n * ys * 4);
                OK(infk_gemv(&m.w, dx, xs, n, dy, ys, 0, &e_));
                to_host(out, dy, n * ys * 4);
                for (int t = 0; t < n; t++) /* rows past `rows` are not written: keep them equal */
                    for (long r = rows; r < ys; r++) out[t * ys + r] = 0;
                double e = gpu_rel_err(out, ref, n * ys, 1e-3);
                if (e >= 1e-5) fprintf(stderr, "\n  gemv %s cols %lld n %d: rel err %g\n", infk_dt_name(dt), (long long)cols, n, e);
                CU_ASSERT(e < 1e-5); /* f32 math on exactly representable weights */
                cudaFree(dx), cudaFree(dy);
                free(x), free(ref), free(out);
            }
            free_mat(&m);
        }
}

/* ---- attention --------------------------------------------------------------- */

typedef struct attn_case {
    int n_head, n_head_kv, hd, bs, kv_dt;
} attn_case;

/* Random cache with shuffled block ids; tokens of several sequences. */
static void attn_check(const attn_case *ac, int prefill) {
    int n_seq = 3, max_ctx = 700;
    int nblk_seq = (max_ctx + ac->bs - 1) / ac->bs, n_blocks = n_seq * nblk_seq + 3;
    int kvd = ac->n_head_kv * ac->hd, qd = ac->n_head * ac->hd;
    size_t es = ac->kv_dt == INFK_F16 ? 2 : 4, slots = (size_t)n_blocks * ac->bs;
    float *kf = malloc(slots * kvd * 4), *vf = malloc(slots * kvd * 4);
    void *kh = malloc(slots * kvd * es), *vh = malloc(slots * kvd * es);
    for (size_t i = 0; i < slots * kvd; i++) {
        kf[i] = frand(-1, 1);
        vf[i] = frand(-1, 1);
        if (es == 2) {
            ((uint16_t *)kh)[i] = quant_f32_to_f16(kf[i]);
            ((uint16_t *)vh)[i] = quant_f32_to_f16(vf[i]);
            kf[i] = quant_f16_to_f32(((uint16_t *)kh)[i]);
            vf[i] = quant_f16_to_f32(((uint16_t *)vh)[i]);
        } else {
            ((float *)kh)[i] = kf[i];
            ((float *)vh)[i] = vf[i];
        }
    }
    /* shuffled table */
    int32_t *blocks = malloc(n_blocks * 4);
    for (int i = 0; i < n_blocks; i++) blocks[i] = i;
    for (int i = n_blocks - 1; i > 0; i--) {
        int j = (int)(tu_rand_u64(&g_rng) % (uint64_t)(i + 1)), t = blocks[i];
        blocks[i] = blocks[j];
        blocks[j] = t;
    }
    /* tokens: decode = one per seq at ctx {1, 333, 700}; prefill = runs of 37, 1, 20 */
    int pos[64], tab[64], ntok = 0, tiles[64], ntiles = 0, list[64], nlist = 0;
    int ctxs[3] = {1, 333, 700}, runs[3] = {37, 1, 20};
    for (int s = 0; s < n_seq; s++) {
        if (!prefill) {
            list[nlist++] = ntok;
            pos[ntok] = ctxs[s] - 1;
            tab[ntok++] = s * nblk_seq;
        } else {
            int start = ctxs[s] - runs[s];
            if (start < 0) start = 0;
            int t0 = ntok;
            for (int p = start; p < ctxs[s]; p++) {
                pos[ntok] = p;
                tab[ntok++] = s * nblk_seq;
            }
            for (int u = t0; u < ntok; u += INFK_PREFILL_TILE) {
                tiles[2 * ntiles] = u;
                tiles[2 * ntiles + 1] = ntok - u < INFK_PREFILL_TILE ? ntok - u : INFK_PREFILL_TILE;
                ntiles++;
            }
        }
    }
    float *q = malloc((size_t)ntok * qd * 4), *ref = malloc((size_t)ntok * qd * 4);
    for (int i = 0; i < ntok * qd; i++) q[i] = frand(-1, 1);
    float scale = 1.0f / sqrtf((float)ac->hd);
    int G = ac->n_head / ac->n_head_kv;
    for (int t = 0; t < ntok; t++)
        for (int h = 0; h < ac->n_head; h++) {
            int n = pos[t] + 1;
            double *sc = malloc(n * sizeof(double)), mx = -INFINITY, sum = 0;
            for (int j = 0; j < n; j++) {
                size_t row = ((size_t)blocks[tab[t] + j / ac->bs] * ac->bs + j % ac->bs) * kvd + (h / G) * ac->hd;
                double d = 0;
                for (int i = 0; i < ac->hd; i++) d += (double)q[t * qd + h * ac->hd + i] * kf[row + i];
                sc[j] = d * scale;
                if (sc[j] > mx) mx = sc[j];
            }
            for (int j = 0; j < n; j++) sum += (sc[j] = exp(sc[j] - mx));
            for (int i = 0; i < ac->hd; i++) {
                double o = 0;
                for (int j = 0; j < n; j++) {
                    size_t row = ((size_t)blocks[tab[t] + j / ac->bs] * ac->bs + j % ac->bs) * kvd + (h / G) * ac->hd;
                    o += sc[j] * vf[row + i];
                }
                ref[t * qd + h * ac->hd + i] = (float)(o / sum);
            }
            free(sc);
        }
    void *dk = dup_dev(kh, slots * kvd * es), *dv = dup_dev(vh, slots * kvd * es);
    float *dq = dup_dev(q, (size_t)ntok * qd * 4), *part = poisoned((size_t)ntok * ac->n_head * 32 * (ac->hd + 2) * 4);
    int32_t *dpos = dup_dev(pos, ntok * 4), *dtab = dup_dev(tab, ntok * 4), *dblk = dup_dev(blocks, n_blocks * 4);
    int32_t *dlist = dup_dev(list, (nlist ? nlist : 1) * 4), *dtiles = dup_dev(tiles, (ntiles ? 2 * ntiles : 1) * 4);
    for (int odt = 0; odt < 3; odt++) {
        void *dout = poisoned((size_t)ntok * qd * 4), *raw = malloc((size_t)ntok * qd * 4);
        float *out = malloc((size_t)ntok * qd * 4);
        infk_attn a = {dq, qd, dk, dv, ac->kv_dt, ac->n_head, ac->n_head_kv, ac->hd, ac->bs,
                       dpos, dtab, dblk, scale, dout, qd, odt, 0, 0.0f};
        for (int splits = 1; splits <= (prefill ? 1 : 7); splits += 6) {
            if (prefill) OK(infk_attn_prefill(&a, dtiles, ntiles, 0, &e_));
            else OK(infk_attn_decode(&a, splits == 1 ? NULL : dlist, nlist, splits, part, 0, &e_));
            to_host(raw, dout, (size_t)ntok * qd * infk_dt_size(odt));
            dt_to_f32(raw, odt, out, (size_t)ntok * qd);
            double e = gpu_rel_err(out, ref, (size_t)ntok * qd, 1e-3);
            double tol = odt == INFK_F32 ? 1e-4 : odt == INFK_F16 ? 2e-3 : 1e-2;
            if (e >= tol)
                fprintf(stderr, "\n  attn %s hd %d G %d bs %d kv %s out %s splits %d: rel err %g\n",
                        prefill ? "prefill" : "decode", ac->hd, G, ac->bs, infk_dt_name(ac->kv_dt),
                        infk_dt_name(odt), splits, e);
            CU_ASSERT(e < tol);
        }
        cudaFree(dout), free(raw), free(out);
    }
    cudaFree(dk), cudaFree(dv), cudaFree(dq), cudaFree(part), cudaFree(dpos), cudaFree(dtab);
    cudaFree(dblk), cudaFree(dlist), cudaFree(dtiles);
    free(kf), free(vf), free(kh), free(vh), free(blocks), free(q), free(ref);
}

static const attn_case attn_cases[] = {
    {8, 4, 8, 16, INFK_F32},   /* stories260K-like */
    {8, 2, 64, 16, INFK_F16},  /* GQA 4 */
    {32, 8, 128, 16, INFK_F16},/* llama 8B */
    {12, 12, 80, 7, INFK_F32}, /* odd head_dim, odd block size, MHA */
    {20, 2, 256, 32, INFK_F16},/* GQA 10 (> one head group), head_dim 256 */
};

static void test_attn_decode(void) {
    for (size_t i = 0; i < sizeof attn_cases / sizeof *attn_cases; i++) attn_check(&attn_cases[i], 0);
}
static void test_attn_prefill(void) {
    for (size_t i = 0; i < sizeof attn_cases / sizeof *attn_cases; i++) attn_check(&attn_cases[i], 1);
}

static void test_kv_write(void) {
    int n = 5, kvd = 72, slots = 64;
    long stride = 3 * kvd + 1;
    int32_t slot[5] = {3, 63, 0, 17, 18};
    float *qkv = malloc(n * stride * 4);
    for (long i = 0; i < n * stride; i++) qkv[i] = frand(-1, 1);
    for (int dt = 0; dt < 2; dt++) {
        int kdt = dt ? INFK_F16 : INFK_F32;
        size_t es = infk_dt_size(kdt);
        float *d = dup_dev(qkv, n * stride * 4);
        int32_t *ds = dup_dev(slot, sizeof slot);
        void *kc = poisoned(slots * kvd * es), *vc = poisoned(slots * kvd * es);
        OK(infk_kv_write(d, stride, kvd, 2 * kvd, kvd, n, ds, kc, vc, kdt, 0, &e_));
        void *hk = malloc(slots * kvd * es), *hv = malloc(slots * kvd * es);
        float *fk = malloc(slots * kvd * 4), *fv = malloc(slots * kvd * 4);
        to_host(hk, kc, slots * kvd * es);
        to_host(hv, vc, slots * kvd * es);
        dt_to_f32(hk, kdt, fk, slots * kvd);
        dt_to_f32(hv, kdt, fv, slots * kvd);
        double worst = 0;
        for (int t = 0; t < n; t++)
            for (int i = 0; i < kvd; i++) {
                worst = fmax(worst, fabs(fk[slot[t] * kvd + i] - qkv[t * stride + kvd + i]));
                worst = fmax(worst, fabs(fv[slot[t] * kvd + i] - qkv[t * stride + 2 * kvd + i]));
            }
        CU_ASSERT(worst < (dt ? 1e-3 : 1e-7));
        CU_ASSERT(isnan(fk[1 * kvd])); /* untouched slots keep the poison */
        cudaFree(d), cudaFree(ds), cudaFree(kc), cudaFree(vc);
        free(hk), free(hv), free(fk), free(fv);
    }
    free(qkv);
}

/* ---- sampling ------------------------------------------------------------------ */

/* The device kernel against the CPU sampler itself: sampler A samples on the
 * host (sampler_sample), sampler B (same seed, same history) hands its step
 * to the kernel through sampler_device_row; every row of every step must give
 * A's token, logprob and top-N. All cases are rows of one launch, so the
 * modifier and top-N offsets of many rows are exercised too. */
typedef struct scase {
    float temp;
    int top_k;
    float top_p, min_p, rep, pres, freq;
    int logprobs, min_tokens, bias, ties;
} scase;

static const scase g_scases[] = {
    {0, -1, 1, 0, 1, 0, 0, 1, 0, 0, 0},           {0.8f, -1, 1, 0, 1, 0, 0, 0, 0, 0, 0},
    {1.0f, 40, 1, 0, 1, 0, 0, 5, 0, 0, 0},        {0.7f, -1, 0.9f, 0, 1, 0, 0, -1, 0, 0, 0},
    {1.3f, 50, 0.8f, 0.05f, 1, 0, 0, 20, 0, 0, 0}, {1.0f, -1, 1, 0.1f, 1, 0, 0, -1, 0, 0, 0},
    {0.9f, 20, 1, 0, 1.3f, 0.5f, 0.2f, 0, 0, 1, 0}, {0, -1, 1, 0, 1.5f, 1.0f, 0.3f, 5, 0, 0, 0},
    {1.0f, -1, 1, 0, 1.2f, 0, 0.1f, 3, 5, 1, 0},  {1.0f, 7, 1, 0, 1, 0, 0, 3, 0, 0, 1},
    {1.0f, -1, 0.35f, 0, 1, 0, 0, 5, 0, 0, 1},    {2.0f, 9, 0.5f, 0, 1, 0, 0, 0, 0, 0, 1},
    {0.5f, 300, 0.97f, 0, 1, 0, 0, 0, 0, 0, 1},   {0, -1, 1, 0, 1, 0, 0, 20, 0, 0, 1},
    {1.0f, -1, 0.6f, 0.01f, 1, 0, 0, 2, 0, 1, 1},
};
#define N_SCASES ((int)(sizeof g_scases / sizeof *g_scases))

static void sample_logits(float *l, int V, int ties) {
    for (int i = 0; i < V; i++) {
        if (ties) {
            int lvl = (int)(tu_rand_u64(&g_rng) % 6);
            l[i] = lvl == 5 ? 3.0f : lvl == 4 ? 2.5f : (float)lvl * 0.25f - 1.0f;
        } else {
            l[i] = frand(-8, 8);
        }
    }
}

static void sample_vs_cpu(int V, int steps) {
    enum { CAP = 8192 };
    const int R = N_SCASES;
    sampler *a[N_SCASES], *b[N_SCASES];
    sampler_params sp[N_SCASES];
    int32_t eos[2] = {2, 5}, prompt[8] = {3, 4, 5, 11, 11, 17, 900 % V, 3};
    inf_error err = {0};
    for (int r = 0; r < R; r++) {
        const scase *c = &g_scases[r];
        sp[r] = sampler_params_default();
        sp[r].temperature = c->temp;
        sp[r].top_k = c->top_k;
        sp[r].top_p = c->top_p;
        sp[r].min_p = c->min_p;
        sp[r].repetition_penalty = c->rep;
        sp[r].presence_penalty = c->pres;
        sp[r].frequency_penalty = c->freq;
        sp[r].logprobs = c->logprobs;
        sp[r].min_tokens = c->min_tokens;
        sp[r].max_tokens = 1000;
        sp[r].has_seed = 1;
        sp[r].seed = 500 + (uint64_t)r;
        if (c->bias) {
            sampler_params_add_logit_bias(&sp[r], 11, 2.5f, &err);
            sampler_params_add_logit_bias(&sp[r], V - 1, 6.0f, &err);
        }
        if (c->min_tokens) sampler_params_add_stop_token(&sp[r], 7, &err);
        CU_ASSERT_EQUAL_FATAL(sampler_create(&a[r], &sp[r], V, eos, 2, prompt, 8, 1, &err), 0);
        CU_ASSERT_EQUAL_FATAL(sampler_create(&b[r], &sp[r], V, eos, 2, prompt, 8, 2, &err), 0);
    }
    float *lg = malloc((size_t)R * V * 4), *tmp = malloc((size_t)V * 4);
    infk_sample_params hp[N_SCASES];
    infk_sample_mod *hm = malloc(CAP * sizeof *hm);
    sampler_mod *mods = malloc(CAP * sizeof *mods);
    float *dl = poisoned((size_t)R * V * 4);
    infk_sample_params *dp = poisoned(sizeof hp);
    infk_sample_mod *dm = poisoned(CAP * sizeof *hm);
    int32_t *dtok = poisoned(R * 4), *dst = poisoned(R * 4), *dtop = poisoned(R * 20 * 4);
    float *dlp = poisoned(R * 4), *dtlp = poisoned(R * 20 * 4);
    int bad = 0;
    for (int step = 0; step < steps; step++) {
        int off = 0, top = 0;
        for (int r = 0; r < R; r++) {
            sample_logits(lg + (size_t)r * V, V, g_scases[r].ties);
            sampler_row row;
            CU_ASSERT_EQUAL_FATAL(sampler_device_row(b[r], &row, mods, CAP - off, &err), 0);
            hp[r] = (infk_sample_params){row.temperature, row.top_k, row.top_p, row.min_p,
                                         row.repetition_penalty, row.presence_penalty,
                                         row.frequency_penalty, row.u, row.want_logprob, row.n_top,
                                         top, off, row.n_mod, -1};
            for (int k = 0; k < row.n_mod; k++) hm[off + k] = (infk_sample_mod){mods[k], 0.0f};
            off += row.n_mod;
            top += row.n_top;
        }
        CU(cudaMemcpy(dl, lg, (size_t)R * V * 4, cudaMemcpyHostToDevice));
        CU(cudaMemcpy(dp, hp, sizeof hp, cudaMemcpyHostToDevice));
        CU(cudaMemcpy(dm, hm, (size_t)(off ? off : 1) * sizeof *hm, cudaMemcpyHostToDevice));
        OK(infk_sample(dl, R, V, dp, dm, NULL, dtok, dlp, dst, dtop, dtlp, 0, &e_));
        int32_t tok[N_SCASES], st[N_SCASES], ttok[N_SCASES * 20];
        float lp[N_SCASES], tlp[N_SCASES * 20];
        to_host(tok, dtok, R * 4);
        to_host(st, dst, R * 4);
        to_host(lp, dlp, R * 4);
        if (top) {
            to_host(ttok, dtop, (size_t)top * 4);
            to_host(tlp, dtlp, (size_t)top * 4);
        }
        for (int r = 0; r < R; r++) {
            sampler_result res;
            memcpy(tmp, lg + (size_t)r * V, (size_t)V * 4);
            CU_ASSERT_EQUAL_FATAL(sampler_sample(a[r], tmp, V, &res, &err), 0);
            CU_ASSERT_EQUAL(st[r], 0);
            if (tok[r] != res.token) {
                bad++;
                fprintf(stderr, "\n  V %d step %d case %d: device %d, cpu %d", V, step, r, tok[r],
                        res.token);
            }
            if (g_scases[r].logprobs >= 0) CU_ASSERT(fabsf(lp[r] - res.logprob) < 1e-4f);
            if (g_scases[r].logprobs < 0) CU_ASSERT(isnan(lp[r]));
            CU_ASSERT_EQUAL(hp[r].n_top, res.n_top);
            for (int k = 0; k < res.n_top && k < hp[r].n_top; k++) {
                CU_ASSERT_EQUAL(ttok[hp[r].top_off + k], res.top[k].token);
                CU_ASSERT(fabsf(tlp[hp[r].top_off + k] - res.top[k].logprob) < 1e-4f);
            }
            CU_ASSERT_EQUAL(sampler_accept(a[r], res.token, &err), 0);
            CU_ASSERT_EQUAL(sampler_accept(b[r], res.token, &err), 0);
        }
    }
    CU_ASSERT_EQUAL(bad, 0);
    for (int r = 0; r < R; r++) {
        sampler_free(a[r]);
        sampler_free(b[r]);
        sampler_params_free(&sp[r]);
    }
    cudaFree(dl), cudaFree(dp), cudaFree(dm), cudaFree(dtok), cudaFree(dst), cudaFree(dtop);
    cudaFree(dlp), cudaFree(dtlp);
    free(lg), free(tmp), free(hm), free(mods);
}

static void test_sample(void) {
    sample_vs_cpu(3001, 8);
    sample_vs_cpu(128256, 2); /* a Llama-3 vocabulary: chunks of 126 ids per thread */
    sample_vs_cpu(37, 4);     /* fewer ids than threads */
}

/* Ties at the cuts and the top-N rule, on hand-made rows: top_k = 3 over
 * five tokens tied at the top keeps ids 1, 4, 6 (the lowest); top_p cuts
 * inside a tie group after its 5 lowest ids; top-N lists tied tokens by id; NaN and all-masked rows
 * report their status. */
static void test_sample_ties_status(void) {
    enum { V = 2000, R = 5 };
    float *lg = malloc((size_t)R * V * 4);
    for (int i = 0; i < R * V; i++) lg[i] = -5.0f;
    int tied[5] = {1, 4, 6, 1500, 1999};
    for (int k = 0; k < 5; k++) lg[tied[k]] = 2.0f;             /* row 0: top_k 3 */
    for (int k = 0; k < 40; k++) lg[V + 100 + 7 * k] = 1.0f;     /* row 1: top_p 0.11 */
    for (int k = 0; k < 30; k++) lg[2 * V + 1000 - 13 * k] = 0.5f; /* row 2: top-20 */
    lg[3 * V + 17] = NAN;                                        /* row 3: NaN */
    infk_sample_mod mask = {{9, 0, 0, 1, 0.0f}, 0.0f};           /* row 4: all masked */
    for (int i = 0; i < V; i++) lg[4 * V + i] = -INFINITY;
    lg[4 * V + 9] = 1.0f;
    infk_sample_params hp[R] = {
        {1.0f, 3, 1.0f, 0, 1, 0, 0, 0.999, 1, 0, 0, 0, 0, -1},
        {1.0f, -1, 0.11f, 0, 1, 0, 0, 0.999, 0, 0, 0, 0, 0, -1},
        {0.0f, -1, 1.0f, 0, 1, 0, 0, 0.5, 1, 20, 0, 0, 0, -1},
        {0.0f, -1, 1.0f, 0, 1, 0, 0, 0.5, 0, 0, 0, 0, 0, -1},
        {0.0f, -1, 1.0f, 0, 1, 0, 0, 0.5, 0, 0, 0, 0, 1, -1},
    };
    float *dl = dup_dev(lg, (size_t)R * V * 4);
    void *dp = dup_dev(hp, sizeof hp), *dm = dup_dev(&mask, sizeof mask);
    int32_t *dtok = poisoned(R * 4), *dst = poisoned(R * 4), *dtop = poisoned(20 * 4);
    float *dlp = poisoned(R * 4), *dtlp = poisoned(20 * 4);
    OK(infk_sample(dl, R, V, dp, dm, NULL, dtok, dlp, dst, dtop, dtlp, 0, &e_));
    int32_t tok[R], st[R], ttok[20];
    float tlp[20];
    to_host(tok, dtok, sizeof tok);
    to_host(st, dst, sizeof st);
    to_host(ttok, dtop, sizeof ttok);
    to_host(tlp, dtlp, sizeof tlp);
    /* u = 0.999 draws the last kept id: 6 (not 1500 or 1999) */
    CU_ASSERT_EQUAL(tok[0], 6);
    /* 40 tied tokens of weight 1 and 1960 of e^-6, top_p 0.11: the target is
     * 0.11 * 44.86 = 4.93, so tied tokens 0..4 (mass above < 4.93) stay and
     * u = 0.999 draws the 5th lowest id */
    CU_ASSERT_EQUAL(tok[1], 100 + 7 * 4);
    CU_ASSERT_EQUAL(tok[2], 1000 - 13 * 29); /* greedy: the lowest tied id */
    for (int k = 0; k < 20; k++) {
        CU_ASSERT_EQUAL(ttok[k], 1000 - 13 * (29 - k));
        CU_ASSERT(fabsf(tlp[k] - tlp[0]) == 0.0f);
    }
    CU_ASSERT_EQUAL(st[0], 0);
    CU_ASSERT_EQUAL(st[3], 1);
    CU_ASSERT_EQUAL(tok[3], -1);
    CU_ASSERT_EQUAL(st[4], 2);
    /* the same rows through the CPU sampler's rules */
    sampler_params sp = sampler_params_default();
    sp.top_k = 3;
    sp.has_seed = 1;
    inf_error err = {0};
    sampler *s = NULL;
    CU_ASSERT_EQUAL_FATAL(sampler_create(&s, &sp, V, NULL, 0, NULL, 0, 1, &err), 0);
    int32_t ids[V];
    float probs[V];
    int m = 0;
    CU_ASSERT_EQUAL(sampler_candidates(s, lg, V, ids, probs, &m, &err), 0);
    CU_ASSERT_EQUAL(m, 3);
    for (int k = 0; k < m; k++) CU_ASSERT(ids[k] == 1 || ids[k] == 4 || ids[k] == 6);
    sampler_free(s);
    cudaFree(dl), cudaFree(dp), cudaFree(dm), cudaFree(dtok), cudaFree(dst), cudaFree(dtop);
    cudaFree(dlp), cudaFree(dtlp);
    free(lg);
}

void gpu_register_kernel_tests(void) {
    CU_pSuite s = CU_add_suite("gpu_kernels", NULL, NULL);
    CU_add_test(s, "embedding gather, every weight type", test_embed);
    CU_add_test(s, "rmsnorm + residual + gather, every out type", test_rmsnorm);
    CU_add_test(s, "rope normal and neox, scaled table, long positions", test_rope);
    CU_add_test(s, "swiglu, bias add", test_swiglu_bias_convert);
    CU_add_test(s, "Q8_0/Q4_0 row dequantization", test_dequant);
    CU_add_test(s, "gemv every type, 1..8 tokens, vector and generic widths", test_gemv);
    CU_add_test(s, "kv cache write", test_kv_write);
    CU_add_test(s, "paged decode attention, split-K, GQA, odd shapes", test_attn_decode);
    CU_add_test(s, "varlen prefill attention, causal tiles", test_attn_prefill);
    CU_add_test(s, "device sampling = the CPU sampler (tokens, logprobs, top-N), many rows", test_sample);
    CU_add_test(s, "device sampling: ties at top_k / top_p cuts, top-N ties, status", test_sample_ties_status);
}

#else /* built without CUDA: test_gpu.c prints SKIP before registering */
#include "gpu_test.h"
void gpu_register_kernel_tests(void) {}
#endif

/* In both builds: test_gpu.c links against it. */
#include <math.h>
double gpu_rel_err(const float *a, const float *b, size_t n, double floor) {
    double md = 0, mr = floor;
    for (size_t i = 0; i < n; i++) {
        if (isnan(a[i]) != isnan(b[i])) return INFINITY;
        double d = fabs((double)a[i] - b[i]);
        if (d > md) md = d;
        if (fabs(b[i]) > mr) mr = fabs(b[i]);
    }
    return md / mr;
}

