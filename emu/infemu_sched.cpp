/* infemu_sched.cpp - runs emulated kernels: every CUDA thread of a block is a
 * fiber on the calling thread; fibers switch only at barriers (block
 * barrier, warp exchange for shuffles and votes, __syncwarp), round-robin,
 * so one block is one legal CUDA schedule. Blocks run one after another.
 * A barrier that can never complete (divergent __syncthreads, a shuffle
 * waiting for a lane that exited) is reported and aborts: on a GPU it would
 * hang or be undefined. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <vector>

#include "infemu_internal.h"

#if defined(__SANITIZE_ADDRESS__)
#define INFEMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define INFEMU_ASAN 1
#endif
#endif
#ifdef INFEMU_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

uint3 infemu_thread_idx, infemu_block_idx;
dim3 infemu_block_dim, infemu_grid_dim;

/* ---- context switch ---------------------------------------------------------- */
#if defined(__x86_64__)
/* Saves the callee-saved registers on the current stack, stores its stack
 * pointer in *save, and resumes the context whose stack pointer is `to`. */
extern "C" void infemu_ctx_switch(void **save, void *to);
extern "C" void infemu_ctx_trampoline(void);
asm(R"(
    .text
    .globl infemu_ctx_switch
    .type infemu_ctx_switch,@function
infemu_ctx_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size infemu_ctx_switch,.-infemu_ctx_switch
    .globl infemu_ctx_trampoline
    .type infemu_ctx_trampoline,@function
infemu_ctx_trampoline:
    movq %r12, %rdi
    callq *%r13
    ud2
    .size infemu_ctx_trampoline,.-infemu_ctx_trampoline
)");
#else
#error "the CUDA emulator's fibers are written for x86-64"
#endif

namespace {

enum { F_READY, F_WAIT_BLOCK, F_WAIT_WARP, F_DONE };

struct fiber {
    void *sp;
    int state;
    unsigned wait_gen;
    unsigned wait_mask;
    uint3 tid;
    int linear;
#ifdef INFEMU_ASAN
    void *fake_stack;
#endif
};

struct warp {
    int arrived;
    unsigned gen;
    unsigned live_mask;   /* lanes that exist and have not exited */
    unsigned wait_mask;   /* mask of the exchange in progress */
    uint64_t slot[2][32];
};

const size_t STACK_BYTES = 256 * 1024;

struct sched {
    std::vector<fiber> fibers;
    std::vector<warp> warps;
    char *stacks = nullptr;
    size_t n_stacks = 0;
    void *sched_sp = nullptr;
    fiber *cur = nullptr;
    int live = 0;
    int bar_arrived = 0;
    unsigned bar_gen = 0;
    int red_acc[2] = {0, 0};
    int red_result[2] = {0, 0};
    const std::function<void()> *body = nullptr;
    const char *kernel = "";
    std::vector<unsigned char> dyn_smem;
#ifdef INFEMU_ASAN
    const void *sched_stack_bottom = nullptr;
    size_t sched_stack_size = 0;
#endif
};

sched S;

char *stack_of(int i) { return S.stacks + (size_t)i * STACK_BYTES; }

/* Reserves stacks for n fibers (a guard page under each), once per size. */
void ensure_stacks(size_t n) {
    if (n <= S.n_stacks) return;
    if (S.stacks) munmap(S.stacks, S.n_stacks * STACK_BYTES);
    void *m = mmap(nullptr, n * STACK_BYTES, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) infemu_die("cannot map %zu fiber stacks", n);
    S.stacks = (char *)m;
    S.n_stacks = n;
    for (size_t i = 0; i < n; i++) mprotect(stack_of((int)i), 4096, PROT_NONE);
}

/* Switches from the scheduler into fiber f. */
void resume(fiber *f) {
    S.cur = f;
    infemu_thread_idx = f->tid;
#ifdef INFEMU_ASAN
    void *fake = nullptr;
    __sanitizer_start_switch_fiber(&fake, stack_of(f->linear) + 4096, STACK_BYTES - 4096);
    infemu_ctx_switch(&S.sched_sp, f->sp);
    __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#else
    infemu_ctx_switch(&S.sched_sp, f->sp);
#endif
    S.cur = nullptr;
}

/* Switches from the current fiber back to the scheduler; returns when the
 * scheduler resumes this fiber. */
void yield_to_sched() {
    fiber *f = S.cur;
#ifdef INFEMU_ASAN
    __sanitizer_start_switch_fiber(f->state == F_DONE ? nullptr : &f->fake_stack,
                                   S.sched_stack_bottom, S.sched_stack_size);
    infemu_ctx_switch(&f->sp, S.sched_sp);
    __sanitizer_finish_switch_fiber(f->fake_stack, nullptr, nullptr);
#else
    infemu_ctx_switch(&f->sp, S.sched_sp);
#endif
}

void release_block_barrier() {
    S.bar_arrived = 0;
    S.bar_gen++;
}

/* A lane left its warp: an exchange that was waiting only for it can never
 * finish. */
void lane_exit(fiber *f) {
    warp &w = S.warps[(size_t)f->linear / 32];
    unsigned bit = 1u << (f->linear % 32);
    w.live_mask &= ~bit;
    if (w.arrived > 0 && (w.wait_mask & bit))
        infemu_die("kernel %s: thread %d exited while its warp waits for it in a shuffle / "
                   "vote / __syncwarp whose mask names it (undefined on a GPU)",
                   S.kernel, f->linear);
}

/* First code a fiber runs: the kernel body, then the exit bookkeeping. */
extern "C" void infemu_fiber_main(fiber *f) {
#ifdef INFEMU_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &S.sched_stack_bottom, &S.sched_stack_size);
#endif
    (*S.body)();
    f->state = F_DONE;
    S.live--;
    lane_exit(f);
    /* Threads that exited no longer count at __syncthreads (as on sm_70+). */
    if (S.bar_arrived > 0 && S.bar_arrived == S.live) release_block_barrier();
    yield_to_sched();
    infemu_die("finished fiber resumed");
}

void init_fiber(fiber *f) {
    char *top = stack_of(f->linear) + STACK_BYTES;
#ifdef INFEMU_ASAN
    /* Frames that returned were unpoisoned by ASan itself; only the frames
     * live at the previous fiber's final switch (its entry and the switch)
     * are left poisoned, and they sit at the top of the stack. */
    ASAN_UNPOISON_MEMORY_REGION(top - 16384, 16384);
#endif
    void **sp = (void **)((uintptr_t)top & ~(uintptr_t)15);
    *--sp = (void *)infemu_ctx_trampoline;
    *--sp = nullptr;                       /* rbp */
    *--sp = nullptr;                       /* rbx */
    *--sp = (void *)f;                     /* r12: argument */
    *--sp = (void *)infemu_fiber_main;     /* r13: entry */
    *--sp = nullptr;                       /* r14 */
    *--sp = nullptr;                       /* r15 */
    f->sp = sp;
    f->state = F_READY;
}

bool released(const fiber &f) {
    if (f.state == F_WAIT_BLOCK) return S.bar_gen != f.wait_gen;
    if (f.state == F_WAIT_WARP) return S.warps[(size_t)f.linear / 32].gen != f.wait_gen;
    return f.state == F_READY;
}

[[noreturn]] void deadlock() {
    fprintf(stderr, "infemu: kernel %s block (%u,%u,%u) can never finish:\n", S.kernel,
            infemu_block_idx.x, infemu_block_idx.y, infemu_block_idx.z);
    int shown = 0;
    for (const fiber &f : S.fibers) {
        if (f.state == F_DONE || shown >= 8) continue;
        shown++;
        fprintf(stderr, "  thread (%u,%u,%u) waits at %s\n", f.tid.x, f.tid.y, f.tid.z,
                f.state == F_WAIT_BLOCK ? "__syncthreads" : "a warp shuffle / vote / __syncwarp");
    }
    fprintf(stderr, "  %d of %zu threads still live; __syncthreads reached by %d\n", S.live,
            S.fibers.size(), S.bar_arrived);
    abort();
}

/* Runs one block to completion. */
void run_block(unsigned n_threads) {
    S.fibers.assign(n_threads, fiber{});
    S.warps.assign((n_threads + 31) / 32, warp{});
    for (unsigned w = 0; w < S.warps.size(); w++) {
        unsigned lanes = n_threads - w * 32 >= 32 ? 32 : n_threads - w * 32;
        S.warps[w].live_mask = lanes == 32 ? 0xffffffffu : (1u << lanes) - 1u;
    }
    unsigned bx = infemu_block_dim.x, by = infemu_block_dim.y;
    for (unsigned i = 0; i < n_threads; i++) {
        fiber &f = S.fibers[i];
        f.linear = (int)i;
        f.tid = uint3{i % bx, (i / bx) % by, i / (bx * by)};
        init_fiber(&f);
    }
    S.live = (int)n_threads;
    S.bar_arrived = 0;
    S.red_acc[0] = S.red_acc[1] = 0;
    int done = 0;
    while (done < (int)n_threads) {
        bool progress = false;
        for (fiber &f : S.fibers) {
            if (f.state == F_DONE || !released(f)) continue;
            f.state = F_READY;
            resume(&f);
            progress = true;
            if (f.state == F_DONE) done++;
        }
        if (!progress) deadlock();
    }
}

} // namespace

/* ---- device-side API used by infemu_device.h ------------------------------------ */

int infemu_lane(void) { return S.cur ? S.cur->linear % 32 : 0; }

void *infemu_dyn_smem(void) { return S.dyn_smem.empty() ? nullptr : S.dyn_smem.data(); }

void infemu_syncthreads(void) {
    if (!S.cur) infemu_die("__syncthreads outside a kernel");
    if (++S.bar_arrived == S.live) {
        release_block_barrier();
        return;
    }
    S.cur->state = F_WAIT_BLOCK;
    S.cur->wait_gen = S.bar_gen;
    yield_to_sched();
}

/* __syncthreads_count / _and / _or: the barrier, plus a reduction whose
 * accumulator alternates with the barrier generation so that a fast thread
 * entering the next reduction cannot disturb this one. */
int infemu_syncthreads_reduce(int pred, int op) {
    int buf = (int)(S.bar_gen & 1);
    int v = pred != 0;
    if (S.bar_arrived == 0) S.red_acc[buf] = op == 1 ? 1 : 0;
    if (op == 0) S.red_acc[buf] += v;
    else if (op == 1) S.red_acc[buf] &= v;
    else S.red_acc[buf] |= v;
    if (S.bar_arrived + 1 == S.live) S.red_result[buf] = S.red_acc[buf];
    infemu_syncthreads();
    return S.red_result[buf];
}

/* Waits until every lane of mask has arrived at this warp exchange. */
static void warp_arrive(unsigned mask) {
    fiber *f = S.cur;
    if (!f) infemu_die("warp intrinsic outside a kernel");
    warp &w = S.warps[(size_t)f->linear / 32];
    unsigned bit = 1u << (f->linear % 32);
    if (!(mask & bit))
        infemu_die("kernel %s: thread %d calls a warp intrinsic with a mask (0x%08x) that "
                   "does not name its own lane", S.kernel, f->linear, mask);
    if (mask & ~w.live_mask)
        infemu_die("kernel %s: warp intrinsic mask 0x%08x names lanes that do not exist or "
                   "have exited (live 0x%08x)", S.kernel, mask, w.live_mask);
    if (w.arrived == 0) w.wait_mask = mask;
    else if (w.wait_mask != mask)
        infemu_die("kernel %s: lanes of one warp use different masks (0x%08x, 0x%08x)",
                   S.kernel, w.wait_mask, mask);
    if (++w.arrived == __builtin_popcount(mask)) {
        w.arrived = 0;
        w.gen++;
        return;
    }
    f->state = F_WAIT_WARP;
    f->wait_gen = w.gen;
    yield_to_sched();
}

uint64_t infemu_warp_exchange(unsigned mask, uint64_t bits, int src_lane) {
    fiber *f = S.cur;
    if (!f) infemu_die("warp shuffle outside a kernel");
    warp &w = S.warps[(size_t)f->linear / 32];
    int buf = (int)(w.gen & 1), lane = f->linear % 32;
    w.slot[buf][lane] = bits;
    warp_arrive(mask);
    if (src_lane < 0 || src_lane > 31 || !(mask & (1u << src_lane)))
        return bits; /* undefined on a GPU; the own value is the common outcome */
    return w.slot[buf][src_lane];
}

unsigned infemu_warp_ballot(unsigned mask, int pred) {
    fiber *f = S.cur;
    if (!f) infemu_die("warp vote outside a kernel");
    warp &w = S.warps[(size_t)f->linear / 32];
    int buf = (int)(w.gen & 1);
    w.slot[buf][f->linear % 32] = pred != 0;
    warp_arrive(mask);
    unsigned r = 0;
    for (int l = 0; l < 32; l++)
        if ((mask >> l & 1u) && w.slot[buf][l]) r |= 1u << l;
    return r;
}

void infemu_syncwarp(unsigned mask) { warp_arrive(mask); }

/* Runs every block of a launch now (the caller checked the configuration). */
void infemu_run_grid(const infemu::launch_cfg &c, const char *name,
                     const std::function<void()> &body) {
    if (S.body) infemu_die("kernel %s launched from inside kernel %s", name, S.kernel);
    unsigned n_threads = c.block.x * c.block.y * c.block.z;
    ensure_stacks(n_threads);
    S.body = &body;
    S.kernel = name;
    infemu_block_dim = c.block;
    infemu_grid_dim = c.grid;
    for (unsigned z = 0; z < c.grid.z; z++)
        for (unsigned y = 0; y < c.grid.y; y++)
            for (unsigned x = 0; x < c.grid.x; x++) {
                infemu_block_idx = uint3{x, y, z};
                /* Dynamic shared memory starts as NaN bytes, like stale data. */
                S.dyn_smem.assign(c.smem, 0xff);
                run_block(n_threads);
            }
    S.body = nullptr;
    S.kernel = "";
}
