/* embed.cu - token embedding gather, and the dtype helpers of infk.h. */
#include "infk_common.cuh"

size_t infk_dt_size(int dt) {
    switch (dt) {
    case INFK_F32: return 4;
    case INFK_F16:
    case INFK_BF16: return 2;
    default: return 0;
    }
}

const char *infk_dt_name(int dt) {
    static const char *names[] = {"F32", "F16", "BF16", "Q8_0", "Q4_0"};
    return dt >= 0 && dt <= INFK_Q4_0 ? names[dt] : "unknown";
}

size_t infk_weight_bytes(int dt, int64_t rows, int64_t cols) {
    size_t n = (size_t)rows * (size_t)cols;
    if (dt == INFK_Q8_0) return n + n / 32 * 2;
    if (dt == INFK_Q4_0) return n / 2 + n / 32 * 2;
    return n * infk_dt_size(dt);
}

/* One block per token; threads stride over the row. */
__global__ void embed_kernel(const void *data, const void *scales, int dt, int64_t cols,
                             const int32_t *tokens, float *x) {
    int64_t r = tokens[blockIdx.x];
    float *out = x + (size_t)blockIdx.x * cols;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x)
        out[c] = infk_w_elem(data, scales, dt, cols, r, c);
}

int infk_embed(const infk_weight *t, const int32_t *tokens, int n, float *x, cudaStream_t st,
               inf_error *err) {
    if (n <= 0) return 0;
    embed_kernel<<<n, 256, 0, st>>>(t->data, t->scales, t->dt, t->cols, tokens, x);
    INFK_LAUNCH_CHECK("embed", st, err);
    return 0;
}
