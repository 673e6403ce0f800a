/* cuda_runtime.h (emulator) - the runtime API, plus, for C++ (the kernel
 * sources), the device-side language emulation. See emu/README.md. */
#ifndef INFEMU_CUDA_RUNTIME_H
#define INFEMU_CUDA_RUNTIME_H

#include "cuda_runtime_api.h"

#ifdef __cplusplus
#include "infemu_device.h"
#endif

#endif
