/* infemu_cublas.cpp - cublasGemmEx on the CPU for the emulator: column-major
 * C = alpha * op(A) * op(B) + beta * C with double accumulation, for the type
 * combinations cuBLAS accepts with CUBLAS_COMPUTE_32F. Operands must lie in
 * device memory over the whole extent the leading dimensions imply. */
#include <stdio.h>
#include <string.h>

#include <vector>

#include "cuda_bf16.h"
#include "cuda_fp16.h"
#include "cublas_v2.h"
#include "infemu_internal.h"

struct infemu_cublas {
    cudaStream_t st = nullptr;
};

namespace {

double load(const void *p, cudaDataType_t t, size_t i) {
    switch (t) {
    case CUDA_R_16F: return __half2float(((const __half *)p)[i]);
    case CUDA_R_16BF: return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
    case CUDA_R_64F: return ((const double *)p)[i];
    default: return ((const float *)p)[i];
    }
}
void store(void *p, cudaDataType_t t, size_t i, double v) {
    switch (t) {
    case CUDA_R_16F: ((__half *)p)[i] = __float2half_rn((float)v); break;
    case CUDA_R_16BF: ((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn((float)v); break;
    case CUDA_R_64F: ((double *)p)[i] = v; break;
    default: ((float *)p)[i] = (float)v; break;
    }
}
size_t type_size(cudaDataType_t t) {
    return t == CUDA_R_16F || t == CUDA_R_16BF ? 2 : t == CUDA_R_64F ? 8 : 4;
}

/* The column-major operand (rows x cols, leading dimension ld) must be device memory. */
void check_operand(const char *what, const void *p, cudaDataType_t t, int rows, int cols, int ld) {
    if (rows == 0 || cols == 0) return;
    if (ld < rows) infemu_die("cublasGemmEx: %s leading dimension %d < %d rows", what, ld, rows);
    size_t bytes = ((size_t)(cols - 1) * (size_t)ld + (size_t)rows) * type_size(t);
    if (!infemu_is_device(p, bytes))
        infemu_die("cublasGemmEx: %s (%p, %d x %d, ld %d) is not (all) device memory", what, p,
                   rows, cols, ld);
}

} // namespace

extern "C" {

cublasStatus_t cublasCreate(cublasHandle_t *h) {
    *h = new infemu_cublas();
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy(cublasHandle_t h) {
    delete h;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t st) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    h->st = st;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t m) {
    return h ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_NOT_INITIALIZED;
}
cublasStatus_t cublasSetWorkspace(cublasHandle_t h, void *ws, size_t bytes) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (bytes && !infemu_is_device(ws, bytes)) infemu_die("cublasSetWorkspace: not device memory");
    return CUBLAS_STATUS_SUCCESS;
}
const char *cublasGetStatusString(cublasStatus_t s) {
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    default: return "CUBLAS_STATUS_UNKNOWN";
    }
}

cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                            int n, int k, const void *alpha, const void *A, cudaDataType_t at,
                            int lda, const void *B, cudaDataType_t bt, int ldb, const void *beta,
                            void *C, cudaDataType_t ct, int ldc, cublasComputeType_t compute,
                            cublasGemmAlgo_t algo) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (m < 0 || n < 0 || k < 0 || ta == CUBLAS_OP_C || tb == CUBLAS_OP_C)
        return CUBLAS_STATUS_INVALID_VALUE;
    bool ok_types = at == bt && (at == CUDA_R_16F || at == CUDA_R_16BF || at == CUDA_R_32F) &&
                    (ct == CUDA_R_32F || ct == at);
    if (!ok_types || (compute != CUBLAS_COMPUTE_32F && compute != CUBLAS_COMPUTE_32F_FAST_16F &&
                      compute != CUBLAS_COMPUTE_32F_FAST_16BF && compute != CUBLAS_COMPUTE_32F_FAST_TF32))
        return CUBLAS_STATUS_NOT_SUPPORTED;
    /* alpha and beta are host floats (CUBLAS_POINTER_MODE_HOST, compute 32F). */
    float al = *(const float *)alpha, be = *(const float *)beta;
    check_operand("A", A, at, ta == CUBLAS_OP_N ? m : k, ta == CUBLAS_OP_N ? k : m, lda);
    check_operand("B", B, bt, tb == CUBLAS_OP_N ? k : n, tb == CUBLAS_OP_N ? n : k, ldb);
    check_operand("C", C, ct, m, n, ldc);
    auto op = [=] {
        /* op(A) as m rows of k and op(B) as n rows of k, in float: then
         * every output is a contiguous dot product. */
        std::vector<float> a((size_t)m * k), b((size_t)n * k);
        for (int i = 0; i < m; i++)
            for (int l = 0; l < k; l++)
                a[(size_t)i * k + l] = (float)load(A, at, ta == CUBLAS_OP_N ? (size_t)i + (size_t)l * lda
                                                                           : (size_t)l + (size_t)i * lda);
        for (int j = 0; j < n; j++)
            for (int l = 0; l < k; l++)
                b[(size_t)j * k + l] = (float)load(B, bt, tb == CUBLAS_OP_N ? (size_t)l + (size_t)j * ldb
                                                                           : (size_t)j + (size_t)l * ldb);
        for (int j = 0; j < n; j++)
            for (int i = 0; i < m; i++) {
                const float *x = &a[(size_t)i * k], *y = &b[(size_t)j * k];
                double s = 0;
                for (int l = 0; l < k; l++) s += (double)x[l] * y[l];
                size_t ci = (size_t)i + (size_t)j * ldc;
                /* beta == 0 means C is not read (it may hold NaN garbage). */
                double v = al * s + (be != 0.0f ? be * load(C, ct, ci) : 0.0);
                store(C, ct, ci, v);
            }
    };
    if (!infemu_capture(h->st, op)) op();
    return CUBLAS_STATUS_SUCCESS;
}

} /* extern "C" */
