/* infemu_runtime.cpp - the CUDA runtime API on the CPU: device memory is host
 * memory that the emulator tracks (so copies, kernel pointer arguments and
 * cuBLAS operands are checked against real allocations), every stream is
 * synchronous, and stream capture records operations into a graph that
 * replays them. Misuse that fails or corrupts memory on a real GPU aborts
 * with a message naming it.
 *
 * Environment: INFEMU_DEVICE_MB (device memory, default 2048),
 * INFEMU_SMS (multiprocessor count, default 132 like an H100 SXM). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "infemu_internal.h"

void infemu_die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("infemu: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

struct infemu_stream {
    bool capturing = false;
    std::vector<std::function<void()>> *ops = nullptr;
};
struct infemu_graph {
    std::vector<std::function<void()>> ops;
};
struct infemu_graph_exec {
    std::vector<std::function<void()>> ops;
};
struct infemu_event {
    double t = 0;
};

namespace {

enum alloc_kind { A_DEVICE, A_PINNED };
struct alloc {
    size_t size;
    alloc_kind kind;
};

std::recursive_mutex mu;
std::map<uintptr_t, alloc> allocs;
size_t device_in_use = 0;
cudaError_t last_error = cudaSuccess;
int capturing_streams = 0;
infemu_stream default_stream;
std::map<const void *, int> max_dyn_smem;

size_t env_size(const char *name, size_t dflt) {
    const char *v = getenv(name);
    if (!v || !*v) return dflt;
    char *end;
    unsigned long long x = strtoull(v, &end, 10);
    return *end || x == 0 ? dflt : (size_t)x;
}
size_t device_total() { return env_size("INFEMU_DEVICE_MB", 2048) << 20; }

double now_ms() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

cudaError_t fail(cudaError_t e) {
    last_error = e;
    return e;
}

/* The allocation containing p, or nullptr. */
const std::pair<const uintptr_t, alloc> *find_alloc(const void *p) {
    uintptr_t a = (uintptr_t)p;
    auto it = allocs.upper_bound(a);
    if (it == allocs.begin()) return nullptr;
    --it;
    if (a < it->first + (it->second.size ? it->second.size : 1)) return &*it;
    return nullptr;
}

infemu_stream *stream_of(cudaStream_t st) { return st ? st : &default_stream; }

/* API calls that would synchronize (or allocate) are not allowed while this
 * thread captures a graph in global / thread-local mode. */
cudaError_t refuse_in_capture(const char *what) {
    if (!capturing_streams) return cudaSuccess;
    fprintf(stderr, "infemu: %s during stream capture (not permitted)\n", what);
    return fail(cudaErrorStreamCaptureUnsupported);
}

const char *kind_name(int k) {
    static const char *n[] = {"HostToHost", "HostToDevice", "DeviceToHost", "DeviceToDevice",
                              "Default"};
    return k >= 0 && k <= 4 ? n[k] : "?";
}

/* Checks a copy's operands against its direction (a wrong direction or a
 * range that runs off an allocation is a fault on a GPU). */
void check_copy(void *dst, const void *src, size_t n, cudaMemcpyKind k, bool in_capture) {
    if (n == 0) return;
    bool dd = infemu_is_device(dst, n), sd = infemu_is_device(src, n);
    bool want_dd = k == cudaMemcpyHostToDevice || k == cudaMemcpyDeviceToDevice;
    bool want_sd = k == cudaMemcpyDeviceToHost || k == cudaMemcpyDeviceToDevice;
    if (k == cudaMemcpyDefault) return;
    if (dd != want_dd || sd != want_sd)
        infemu_die("cudaMemcpy%s of %zu bytes: destination %p is %s, source %p is %s",
                   kind_name(k), n, dst, dd ? "device memory" : "not (all) device memory", src,
                   sd ? "device memory" : "not (all) device memory");
    if (in_capture) {
        const void *host = k == cudaMemcpyHostToDevice ? src : k == cudaMemcpyDeviceToHost ? dst : nullptr;
        if (host) {
            auto *a = find_alloc(host);
            if (!a || a->second.kind != A_PINNED || (uintptr_t)host + n > a->first + a->second.size)
                infemu_die("cudaMemcpyAsync %s of %zu bytes captured into a graph with pageable "
                           "host memory %p (a graph needs pinned memory)", kind_name(k), n, host);
        }
    }
}

} // namespace

bool infemu_is_device(const void *p, size_t n) {
    std::lock_guard<std::recursive_mutex> g(mu);
    auto *a = find_alloc(p);
    return a && a->second.kind == A_DEVICE && (uintptr_t)p + n <= a->first + a->second.size;
}

bool infemu_capture(cudaStream_t st, std::function<void()> op) {
    infemu_stream *s = stream_of(st);
    if (!s->capturing) return false;
    s->ops->push_back(std::move(op));
    return true;
}

extern "C" {

size_t infemu_device_bytes_in_use(void) { return device_in_use; }

const char *cudaGetErrorName(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInitializationError: return "cudaErrorInitializationError";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevicePointer: return "cudaErrorInvalidDevicePointer";
    case cudaErrorInvalidMemcpyDirection: return "cudaErrorInvalidMemcpyDirection";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
    default: return "cudaErrorUnknown";
    }
}
const char *cudaGetErrorString(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    default: return "unknown error";
    }
}
cudaError_t cudaGetLastError(void) {
    cudaError_t e = last_error;
    last_error = cudaSuccess;
    return e;
}
cudaError_t cudaPeekAtLastError(void) { return last_error; }

cudaError_t cudaGetDeviceCount(int *n) {
    *n = 1;
    return cudaSuccess;
}
cudaError_t cudaGetDevice(int *d) {
    *d = 0;
    return cudaSuccess;
}
cudaError_t cudaSetDevice(int d) { return d == 0 ? cudaSuccess : fail(cudaErrorInvalidValue); }

cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *p, int dev) {
    if (dev != 0) return fail(cudaErrorInvalidValue);
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "inferno CUDA emulator (CPU)");
    p->totalGlobalMem = device_total();
    p->sharedMemPerBlock = 48 * 1024;
    p->sharedMemPerBlockOptin = 227 * 1024;
    p->warpSize = 32;
    p->maxThreadsPerBlock = 1024;
    p->major = 9;
    p->minor = 0;
    p->multiProcessorCount = (int)env_size("INFEMU_SMS", 132);
    p->clockRate = 1980000;
    p->memoryClockRate = 2619000;
    p->memoryBusWidth = 5120;
    p->l2CacheSize = 50 << 20;
    return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int *v, enum cudaDeviceAttr a, int dev) {
    if (a != cudaDevAttrMultiProcessorCount || dev != 0) return fail(cudaErrorInvalidValue);
    *v = (int)env_size("INFEMU_SMS", 132);
    return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize(void) { return refuse_in_capture("cudaDeviceSynchronize"); }
cudaError_t cudaMemGetInfo(size_t *fr, size_t *tot) {
    std::lock_guard<std::recursive_mutex> g(mu);
    *tot = device_total();
    *fr = *tot > device_in_use ? *tot - device_in_use : 0;
    return cudaSuccess;
}

/* Device memory: exact-size host blocks (so ASan sees a kernel reading past
 * the end), filled with 0xff bytes (NaN in every float type) so that a read
 * of memory nobody wrote shows up in the results. */
cudaError_t cudaMalloc(void **p, size_t n) {
    std::lock_guard<std::recursive_mutex> g(mu);
    if (cudaError_t e = refuse_in_capture("cudaMalloc")) return e;
    *p = nullptr;
    if (n == 0) return cudaSuccess;
    if (device_in_use + n > device_total()) return fail(cudaErrorMemoryAllocation);
    void *m = nullptr;
    if (posix_memalign(&m, 256, n)) return fail(cudaErrorMemoryAllocation);
    memset(m, 0xff, n);
    allocs[(uintptr_t)m] = alloc{n, A_DEVICE};
    device_in_use += n;
    *p = m;
    return cudaSuccess;
}
cudaError_t cudaFree(void *p) {
    std::lock_guard<std::recursive_mutex> g(mu);
    if (!p) return cudaSuccess;
    auto it = allocs.find((uintptr_t)p);
    if (it == allocs.end() || it->second.kind != A_DEVICE)
        infemu_die("cudaFree(%p): not a pointer cudaMalloc returned", p);
    device_in_use -= it->second.size;
    allocs.erase(it);
    free(p);
    return cudaSuccess;
}
cudaError_t cudaHostAlloc(void **p, size_t n, unsigned flags) {
    std::lock_guard<std::recursive_mutex> g(mu);
    void *m = nullptr;
    if (posix_memalign(&m, 64, n ? n : 1)) return fail(cudaErrorMemoryAllocation);
    allocs[(uintptr_t)m] = alloc{n ? n : 1, A_PINNED};
    *p = m;
    return cudaSuccess;
}
cudaError_t cudaMallocHost(void **p, size_t n) { return cudaHostAlloc(p, n, 0); }
cudaError_t cudaFreeHost(void *p) {
    std::lock_guard<std::recursive_mutex> g(mu);
    if (!p) return cudaSuccess;
    auto it = allocs.find((uintptr_t)p);
    if (it == allocs.end() || it->second.kind != A_PINNED)
        infemu_die("cudaFreeHost(%p): not a pointer cudaHostAlloc returned", p);
    allocs.erase(it);
    free(p);
    return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t st) {
    std::lock_guard<std::recursive_mutex> g(mu);
    if (n && !infemu_is_device(p, n))
        infemu_die("cudaMemset of %zu bytes at %p: not (all) device memory", n, p);
    if (infemu_capture(st, [p, v, n] { memset(p, v, n); })) return cudaSuccess;
    memset(p, v, n);
    return cudaSuccess;
}
cudaError_t cudaMemset(void *p, int v, size_t n) {
    if (cudaError_t e = refuse_in_capture("cudaMemset")) return e;
    return cudaMemsetAsync(p, v, n, nullptr);
}
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, enum cudaMemcpyKind k,
                            cudaStream_t st) {
    std::lock_guard<std::recursive_mutex> g(mu);
    infemu_stream *s = stream_of(st);
    check_copy(dst, src, n, k, s->capturing);
    if (infemu_capture(st, [dst, src, n] { memmove(dst, src, n); })) return cudaSuccess;
    if (n) memmove(dst, src, n);
    return cudaSuccess;
}
cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, enum cudaMemcpyKind k) {
    if (cudaError_t e = refuse_in_capture("cudaMemcpy")) return e;
    return cudaMemcpyAsync(dst, src, n, k, nullptr);
}

cudaError_t cudaStreamCreate(cudaStream_t *st) {
    *st = new infemu_stream();
    return cudaSuccess;
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *st, unsigned flags) { return cudaStreamCreate(st); }
cudaError_t cudaStreamDestroy(cudaStream_t st) {
    if (st && st->capturing) infemu_die("cudaStreamDestroy on a capturing stream");
    delete st;
    return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t st) { return refuse_in_capture("cudaStreamSynchronize"); }
cudaError_t cudaStreamBeginCapture(cudaStream_t st, enum cudaStreamCaptureMode mode) {
    std::lock_guard<std::recursive_mutex> g(mu);
    infemu_stream *s = stream_of(st);
    if (!st) return fail(cudaErrorStreamCaptureUnsupported); /* legacy stream cannot capture */
    if (s->capturing) return fail(cudaErrorInvalidValue);
    s->capturing = true;
    s->ops = new std::vector<std::function<void()>>();
    capturing_streams++;
    return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t st, cudaGraph_t *out) {
    std::lock_guard<std::recursive_mutex> g(mu);
    infemu_stream *s = stream_of(st);
    *out = nullptr;
    if (!s->capturing) return fail(cudaErrorInvalidValue);
    infemu_graph *gr = new infemu_graph();
    gr->ops = std::move(*s->ops);
    delete s->ops;
    s->ops = nullptr;
    s->capturing = false;
    capturing_streams--;
    *out = gr;
    return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *ge, cudaGraph_t g, unsigned long long flags) {
    if (!g) return fail(cudaErrorInvalidValue);
    infemu_graph_exec *x = new infemu_graph_exec();
    x->ops = g->ops;
    *ge = x;
    return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t ge, cudaStream_t st) {
    std::lock_guard<std::recursive_mutex> g(mu);
    if (!ge) return fail(cudaErrorInvalidValue);
    if (stream_of(st)->capturing) infemu_die("graph launch into a capturing stream is not emulated");
    for (auto &op : ge->ops) op();
    return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t g) {
    delete g;
    return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t ge) {
    delete ge;
    return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t *ev) {
    *ev = new infemu_event();
    return cudaSuccess;
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *ev, unsigned flags) { return cudaEventCreate(ev); }
cudaError_t cudaEventDestroy(cudaEvent_t ev) {
    delete ev;
    return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t ev, cudaStream_t st) {
    if (!ev) return fail(cudaErrorInvalidResourceHandle);
    if (infemu_capture(st, [ev] { ev->t = now_ms(); })) return cudaSuccess;
    ev->t = now_ms();
    return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t ev) {
    if (!ev) return fail(cudaErrorInvalidResourceHandle);
    return refuse_in_capture("cudaEventSynchronize");
}
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b) {
    if (!a || !b) return fail(cudaErrorInvalidResourceHandle);
    *ms = (float)(b->t - a->t);
    return cudaSuccess;
}

} /* extern "C" */

cudaError_t infemu_func_set_attribute(const void *fn, int attr, int value) {
    std::lock_guard<std::recursive_mutex> g(mu);
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize || value < 0 || value > 227 * 1024)
        return fail(cudaErrorInvalidValue);
    max_dyn_smem[fn] = value;
    return cudaSuccess;
}

namespace infemu {

void check_arg_pointer(const char *name, int index, const void *p) {
    std::lock_guard<std::recursive_mutex> g(mu);
    if (!p) return;
    auto *a = find_alloc(p);
    /* One past the end is a valid (empty) range. */
    if (!a) {
        auto it = allocs.upper_bound((uintptr_t)p);
        if (it != allocs.begin()) {
            --it;
            if ((uintptr_t)p == it->first + it->second.size) a = &*it;
        }
    }
    if (!a || a->second.kind != A_DEVICE)
        infemu_die("kernel %s: pointer argument %d (%p) is not device memory", name, index, p);
}

/* Checks the launch configuration as the driver would, then runs the grid or
 * records it into the capturing stream's graph. */
void launch(const launch_cfg &c, const char *name, const void *fn, std::function<void()> body) {
    std::lock_guard<std::recursive_mutex> g(mu);
    unsigned long long nt = (unsigned long long)c.block.x * c.block.y * c.block.z;
    auto it = max_dyn_smem.find(fn);
    size_t smem_max = it == max_dyn_smem.end() ? 48 * 1024 : (size_t)it->second;
    const char *bad = nullptr;
    if (c.grid.x == 0 || c.grid.y == 0 || c.grid.z == 0) bad = "an empty grid";
    else if (c.grid.y > 65535 || c.grid.z > 65535) bad = "gridDim.y or .z above 65535";
    else if (nt == 0 || nt > 1024 || c.block.z > 64) bad = "a block of 0 or more than 1024 threads";
    else if (c.smem > smem_max) bad = "more dynamic shared memory than allowed";
    if (bad) {
        fprintf(stderr, "infemu: kernel %s: %s (grid %u,%u,%u block %u,%u,%u smem %zu)\n", name,
                bad, c.grid.x, c.grid.y, c.grid.z, c.block.x, c.block.y, c.block.z, c.smem);
        fail(cudaErrorInvalidConfiguration);
        return;
    }
    launch_cfg cc = c;
    std::string kname = name;
    if (infemu_capture(c.st, [cc, kname, body] { infemu_run_grid(cc, kname.c_str(), body); })) return;
    infemu_run_grid(c, name, body);
}

} // namespace infemu
