/* qdot_avx2.c - the AVX2 build of the fused dequantize-dot tiles
 * (qdot_x86.inc; see cpu_ops_impl.h). Every function carries the target
 * attribute, so the file builds without -mavx2 and runs only after cpuid
 * said yes.
 */
#include <immintrin.h>
#include <string.h>

#include "cpu_ops_impl.h"
#include "quant.h"

#if defined(__x86_64__) || defined(__i386__)

#define TGT __attribute__((target("avx2,fma,f16c")))
/* maddubs pairs then madd: exact (see qdot_x86.inc) */
#define DOT_US(u, s) _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1))
#define SDOT_ACC(acc, u, s, kv) _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), kv))
#define QDOT_PREFIX cpu_av_tile_
#define QDOT_Q80_Q40(x)
#include "qdot_x86.inc"

#else

/* Not x86: the AVX2 set is never selected (cpu_kernels_avx2 returns NULL),
 * these only keep the table building. */
void cpu_av_tile_q4_1(CPU_TILE_ARGS) { cpu_sc_tile_q4_1(w, r0, nr, a, t0, nt, y, ys); }
void cpu_av_tile_q5_0(CPU_TILE_ARGS) { cpu_sc_tile_q5_0(w, r0, nr, a, t0, nt, y, ys); }
void cpu_av_tile_q5_1(CPU_TILE_ARGS) { cpu_sc_tile_q5_1(w, r0, nr, a, t0, nt, y, ys); }
void cpu_av_tile_q4_K(CPU_TILE_ARGS) { cpu_sc_tile_q4_K(w, r0, nr, a, t0, nt, y, ys); }
void cpu_av_tile_q5_K(CPU_TILE_ARGS) { cpu_sc_tile_q5_K(w, r0, nr, a, t0, nt, y, ys); }
void cpu_av_tile_q6_K(CPU_TILE_ARGS) { cpu_sc_tile_q6_K(w, r0, nr, a, t0, nt, y, ys); }

#endif
