/* infemu_internal.h - shared by the emulator's own sources (emu/ .cpp files). */
#ifndef INFEMU_INTERNAL_H
#define INFEMU_INTERNAL_H

#include <functional>

#include "cuda_runtime.h"

/* Prints "infemu: <message>" and aborts: the program used the CUDA API in a
 * way that is an error on a real GPU (the point of the emulator is to stop
 * there, where the mistake is). */
[[noreturn]] void infemu_die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Runs every block of a launch now (infemu_sched.cpp). */
void infemu_run_grid(const infemu::launch_cfg &c, const char *name,
                     const std::function<void()> &body);

/* Device allocation containing [p, p + n), or false (infemu_runtime.cpp). */
bool infemu_is_device(const void *p, size_t n);

/* Records op into st's graph when st is capturing (returns true), else false. */
bool infemu_capture(cudaStream_t st, std::function<void()> op);

#endif
