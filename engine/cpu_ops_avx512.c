/* cpu_ops_avx512.c - the AVX-512 kernel set: the integer dots of every
 * quantized type on AVX512-VNNI (vpdpbusd on 256-bit vectors through
 * AVX512VL: one instruction per 32 u8 x s8 products instead of maddubs +
 * madd, with no int16 intermediate), everything else shared with the AVX2
 * set. Its own translation unit with per-function target attributes, so a
 * PORTABLE=1 (x86-64-v3) build still contains it; it is chosen only when
 * cpuid reports AVX512 F/BW/VL/VNNI (and the OS saves the zmm state, which
 * __builtin_cpu_supports checks).
 */
#include <immintrin.h>
#include <pthread.h>
#include <string.h>

#include "cpu_ops_impl.h"
#include "quant.h"

#if defined(__x86_64__) || defined(__i386__)

#define TGT __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))
#define DOT_US(u, s) _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s)
#define SDOT_ACC(acc, u, s, kv) _mm256_dpwssd_epi32(acc, _mm256_maddubs_epi16(u, s), kv)
#define QDOT_PREFIX cpu_v5_tile_
#define QDOT_Q80_Q40(x)
#include "qdot_x86.inc"

#define QT_DOT_US(u, s) _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s)
#define QT_PREFIX v5_tile_
#include "qtile_x86.inc"

static cpu_kernels avx512_kernels;
static pthread_once_t avx512_once = PTHREAD_ONCE_INIT;

/* Filled once from the AVX2 set (row kernels, float tiles, activation
 * quantizer), with the VNNI tiles for every quantized type. */
static void avx512_init(void) {
    avx512_kernels = *cpu_kernels_avx2();
    avx512_kernels.name = "avx512+vnni";
    cpu_tile_fn t[CPU_KT_COUNT] = {
        [CPU_KT_Q8_0] = v5_tile_q8_0, [CPU_KT_Q4_0] = v5_tile_q4_0, [CPU_KT_Q4_1] = cpu_v5_tile_q4_1,
        [CPU_KT_Q5_0] = cpu_v5_tile_q5_0, [CPU_KT_Q5_1] = cpu_v5_tile_q5_1, [CPU_KT_Q4_K] = cpu_v5_tile_q4_K,
        [CPU_KT_Q5_K] = cpu_v5_tile_q5_K, [CPU_KT_Q6_K] = cpu_v5_tile_q6_K};
    for (int k = CPU_KT_Q8_0; k < CPU_KT_COUNT; k++) avx512_kernels.tile[k] = t[k];
}

int cpu_avx512_supported(void) {
    __builtin_cpu_init();
    return cpu_kernels_avx2() != NULL && __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512vnni");
}

const cpu_kernels *cpu_kernels_avx512(void) {
    if (!cpu_avx512_supported()) return NULL;
    pthread_once(&avx512_once, avx512_init);
    return &avx512_kernels;
}

#else

int cpu_avx512_supported(void) { return 0; }
const cpu_kernels *cpu_kernels_avx512(void) { return NULL; }

#endif
