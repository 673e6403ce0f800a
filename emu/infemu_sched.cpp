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
#include <pthread.h>
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

enum { F_READY, F_RUNNING, F_WAIT_BLOCK, F_WAIT_WARP, F_DONE };

struct fiber {
    void *sp;
    int state;
    uint3 tid;
    int linear;
    void *fake_stack;
};

struct warp {
    int arrived;
    unsigned gen;
    unsigned live_mask;   /* lanes that exist and have not exited */
    unsigned wait_mask;   /* mask of the exchange in progress */
    int n_waiters;
    int waiters[32];
    uint64_t slot[2][32];
};

const size_t STACK_BYTES = 256 * 1024;
const size_t GUARD = 4096;

/* One block at a time. Runnable fibers sit in a FIFO ring; a fiber that
 * must wait switches straight to the next runnable one (one context switch
 * per wait), and the last fiber to finish switches back to the scheduler. */
struct sched {
    std::vector<fiber> fibers;
    std::vector<warp> warps;
    std::vector<int> ring, bar_waiters;
    size_t ring_head = 0, ring_len = 0;
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
    int asan_fibers = -1; /* INFEMU_ASAN_FIBERS=1: tell ASan about every switch */
    int order = -1;       /* INFEMU_SCHED: 0 fifo (default), 1 lifo, 2 random */
    uint64_t rng = 0;
    const void *sched_bottom = nullptr;
    size_t sched_size = 0;
};

sched S;

char *stack_of(int i) { return S.stacks + (size_t)i * STACK_BYTES; }

/* Reserves stacks for n fibers (a guard page under each), once per size. */
void ensure_stacks(size_t n) {
    if (n <= S.n_stacks) return;
    if (S.stacks) {
#ifdef INFEMU_ASAN
        /* Stale stack redzones in the shadow would otherwise greet whatever
         * the allocator maps here next. */
        ASAN_UNPOISON_MEMORY_REGION(S.stacks, S.n_stacks * STACK_BYTES);
#endif
        munmap(S.stacks, S.n_stacks * STACK_BYTES);
    }
    void *m = mmap(nullptr, n * STACK_BYTES, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) infemu_die("cannot map %zu fiber stacks", n);
    S.stacks = (char *)m;
    S.n_stacks = n;
    for (size_t i = 0; i < n; i++) mprotect(stack_of((int)i), GUARD, PROT_NONE);
}

void ready_push(int i) {
    S.fibers[(size_t)i].state = F_READY;
    S.ring[(S.ring_head + S.ring_len++) % S.ring.size()] = i;
}
/* The next runnable fiber. Other orders than FIFO are other legal CUDA
 * schedules: a kernel that only works in one of them lacks a barrier. */
fiber *ready_pop() {
    if (!S.ring_len) return nullptr;
    size_t n = S.ring.size();
    if (S.order == 1) return &S.fibers[(size_t)S.ring[(S.ring_head + --S.ring_len) % n]];
    if (S.order == 2) {
        S.rng = S.rng * 6364136223846793005ull + 1442695040888963407ull;
        size_t k = (S.ring_head + (size_t)((S.rng >> 33) % S.ring_len)) % n;
        int j = S.ring[S.ring_head];
        S.ring[S.ring_head] = S.ring[k];
        S.ring[k] = j;
    }
    int i = S.ring[S.ring_head];
    S.ring_head = (S.ring_head + 1) % S.ring.size();
    S.ring_len--;
    return &S.fibers[(size_t)i];
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

/* Saves the running context (a fiber, or the scheduler when from is NULL)
 * and runs `to` (the scheduler when NULL). Returns when `from` is resumed. */
void switch_to(fiber *from, fiber *to) {
    void **save = from ? &from->sp : &S.sched_sp;
    void *target = to ? to->sp : S.sched_sp;
    S.cur = to;
    if (to) {
        to->state = F_RUNNING;
        infemu_thread_idx = to->tid;
    }
#ifdef INFEMU_ASAN
    if (S.asan_fibers) {
        void *keep = nullptr;
        void **fake = from ? (from->state == F_DONE ? nullptr : &from->fake_stack) : &keep;
        __sanitizer_start_switch_fiber(fake, to ? stack_of(to->linear) + GUARD : S.sched_bottom,
                                       to ? STACK_BYTES - GUARD : S.sched_size);
        infemu_ctx_switch(save, target);
        __sanitizer_finish_switch_fiber(from ? from->fake_stack : keep, nullptr, nullptr);
        return;
    }
#endif
    infemu_ctx_switch(save, target);
}

/* The current fiber waits (its state says for what): run the next one. */
void block_current() {
    fiber *next = ready_pop();
    if (!next) deadlock();
    switch_to(S.cur, next);
}

void release_block_barrier() {
    S.bar_arrived = 0;
    S.bar_gen++;
    for (int i : S.bar_waiters) ready_push(i);
    S.bar_waiters.clear();
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
    if (S.asan_fibers) __sanitizer_finish_switch_fiber(nullptr, nullptr, nullptr);
#endif
    (*S.body)();
    f->state = F_DONE;
    S.live--;
    lane_exit(f);
    /* Threads that exited no longer count at __syncthreads (as on sm_70+). */
    if (S.bar_arrived > 0 && S.bar_arrived == S.live) release_block_barrier();
    fiber *next = ready_pop();
    if (!next && S.live > 0) deadlock();
    switch_to(f, next); /* NULL: back to the scheduler */
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
    f->fake_stack = nullptr;
}

/* Runs one block to completion. */
void run_block(unsigned n_threads) {
    S.fibers.resize(n_threads);
    S.warps.assign((n_threads + 31) / 32, warp{});
    for (unsigned w = 0; w < S.warps.size(); w++) {
        unsigned lanes = n_threads - w * 32 >= 32 ? 32 : n_threads - w * 32;
        S.warps[w].live_mask = lanes == 32 ? 0xffffffffu : (1u << lanes) - 1u;
    }
    S.ring.resize(n_threads);
    S.ring_head = S.ring_len = 0;
    S.bar_waiters.clear();
    unsigned bx = infemu_block_dim.x, by = infemu_block_dim.y;
    for (unsigned i = 0; i < n_threads; i++) {
        fiber &f = S.fibers[i];
        f.linear = (int)i;
        f.tid = uint3{i % bx, (i / bx) % by, i / (bx * by)};
        init_fiber(&f);
        ready_push((int)i);
    }
    S.live = (int)n_threads;
    S.bar_arrived = 0;
    S.red_acc[0] = S.red_acc[1] = 0;
    switch_to(nullptr, ready_pop());
    if (S.live != 0) infemu_die("kernel %s: scheduler resumed with live threads", S.kernel);
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
    S.bar_waiters.push_back(S.cur->linear);
    block_current();
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
        for (int i = 0; i < w.n_waiters; i++) ready_push(w.waiters[i]);
        w.n_waiters = 0;
        return;
    }
    f->state = F_WAIT_WARP;
    w.waiters[w.n_waiters++] = f->linear;
    block_current();
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

/* Picks the order runnable threads run in (0 fifo, 1 lifo, 2 random with
 * seed), for every later launch; the default comes from INFEMU_SCHED. */
extern "C" void infemu_set_schedule(int order, unsigned long long seed) {
    S.order = order < 0 || order > 2 ? -1 : order;
    S.rng = seed;
}

/* Runs every block of a launch now (the caller checked the configuration). */
void infemu_run_grid(const infemu::launch_cfg &c, const char *name,
                     const std::function<void()> &body) {
    if (S.body) infemu_die("kernel %s launched from inside kernel %s", name, S.kernel);
    unsigned n_threads = c.block.x * c.block.y * c.block.z;
    ensure_stacks(n_threads);
    if (S.asan_fibers < 0) {
        const char *v = getenv("INFEMU_ASAN_FIBERS");
        S.asan_fibers = v && *v == '1';
    }
    if (S.order < 0) {
        const char *v = getenv("INFEMU_SCHED");
        S.order = v && !strcmp(v, "lifo") ? 1 : v && !strcmp(v, "random") ? 2 : 0;
        v = getenv("INFEMU_SEED");
        S.rng = v ? strtoull(v, nullptr, 10) : 1;
    }
#ifdef INFEMU_ASAN
    if (S.asan_fibers) {
        /* The calling thread's stack, for ASan when a fiber switches back. */
        pthread_attr_t at;
        if (pthread_getattr_np(pthread_self(), &at) == 0) {
            void *addr;
            size_t size;
            pthread_attr_getstack(&at, &addr, &size);
            S.sched_bottom = addr;
            S.sched_size = size;
            pthread_attr_destroy(&at);
        }
    }
#endif
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
