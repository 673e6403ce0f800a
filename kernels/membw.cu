/* membw.cu - a pure-read kernel for measuring device memory bandwidth (the
 * roofline floor of the benchmarks). */
#include "infk_common.cuh"

__global__ void read_bw_kernel(const uint4 *src, size_t n, uint32_t *sink) {
    uint32_t acc = 0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        uint4 v = __ldcs(src + i);
        acc ^= v.x ^ v.y ^ v.z ^ v.w;
    }
    /* Written only in the impossible case, so the loads stay live but no
     * store traffic is added. */
    if (acc == 0x9e3779b9u) *sink = acc;
}

int infk_read_bw(const void *src, size_t bytes, uint32_t *sink, cudaStream_t st, inf_error *err) {
    int dev = 0, sms = 0;
    cudaCheck(cudaGetDevice(&dev), err);
    cudaCheck(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev), err);
    read_bw_kernel<<<sms * 8, 512, 0, st>>>((const uint4 *)src, bytes / 16, sink);
    INFK_LAUNCH_CHECK("read_bw", st, err);
    return 0;
}
