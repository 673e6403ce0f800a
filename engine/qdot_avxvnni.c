/* qdot_avxvnni.c - the AVX-VNNI kernel set: the AVX2 set with the integer
 * dots of the quantized types on the VEX-coded VNNI instructions of
 * Alder Lake / Sapphire Rapids / Zen 5 class CPUs (vpdpbusd: 32 u8 x s8
 * products into 8 int32 lanes in one instruction instead of maddubs + madd;
 * vpdpwssd: the K-quant scales applied and accumulated in one). Results equal
 * the AVX2 set's: the integer sums are exact either way and the float
 * operations are the same.
 *
 * Own translation unit with per-function target attributes, so builds for
 * older CPUs (PORTABLE=1: x86-64-v3) still contain it; chosen only when cpuid
 * reports AVX-VNNI and the AVX2 set is usable (which includes the OS saving
 * the ymm state: __builtin_cpu_supports checks XCR0).
 */
#include <immintrin.h>
#include <pthread.h>
#include <string.h>

#include "cpu_ops_impl.h"
#include "quant.h"

#if defined(__x86_64__) || defined(__i386__)

#define TGT __attribute__((target("avx2,fma,f16c,avxvnni")))
#define DOT_US(u, s) _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), u, s)
#define SDOT_ACC(acc, u, s, kv) _mm256_dpwssd_avx_epi32(acc, _mm256_maddubs_epi16(u, s), kv)
#define QDOT_PREFIX cpu_vn_tile_
#define QDOT_Q80_Q40(x)
#include "qdot_x86.inc"

#define QT_DOT_US(u, s) _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), u, s)
#define QT_PREFIX vn_tile_
#include "qtile_x86.inc"

static cpu_kernels vnni_kernels;
static pthread_once_t vnni_once = PTHREAD_ONCE_INIT;

/* The AVX2 set (row kernels, float tiles, activation quantizer, tile
 * shapes) with the VNNI tiles of every quantized type. */
static void vnni_init(void) {
    vnni_kernels = *cpu_kernels_avx2();
    vnni_kernels.name = "avx2+avxvnni";
    cpu_tile_fn t[CPU_KT_COUNT] = {
        [CPU_KT_Q8_0] = vn_tile_q8_0,        [CPU_KT_Q4_0] = vn_tile_q4_0,
        [CPU_KT_Q4_1] = cpu_vn_tile_q4_1, [CPU_KT_Q5_0] = cpu_vn_tile_q5_0, [CPU_KT_Q5_1] = cpu_vn_tile_q5_1,
        [CPU_KT_Q4_K] = cpu_vn_tile_q4_K, [CPU_KT_Q5_K] = cpu_vn_tile_q5_K, [CPU_KT_Q6_K] = cpu_vn_tile_q6_K};
    for (int k = CPU_KT_Q8_0; k < CPU_KT_COUNT; k++) vnni_kernels.tile[k] = t[k];
}

int cpu_avxvnni_supported(void) {
    __builtin_cpu_init();
    return cpu_kernels_avx2() != NULL && __builtin_cpu_supports("avxvnni");
}

const cpu_kernels *cpu_kernels_avxvnni(void) {
    if (!cpu_avxvnni_supported()) return NULL;
    pthread_once(&vnni_once, vnni_init);
    return &vnni_kernels;
}

#else

int cpu_avxvnni_supported(void) { return 0; }
const cpu_kernels *cpu_kernels_avxvnni(void) { return NULL; }

#endif
