# kernels/cuda.mk - GPU test and benchmark targets; included by the Makefile
# after its main rules (-include kernels/cuda.mk). Uses its variables BUILD,
# BIN, CC, CFLAGS, CPPFLAGS, LDFLAGS, LDLIBS, HAVE_CUDA, CUDA_HOME.
#
#   make test-gpu    every kernel against its CPU reference, the CUDA forward
#                    against the CPU backend, engine paths on the GPU, then
#                    compute-sanitizer memcheck when the tool exists.
#                    Without a GPU (or without CUDA) prints SKIP and exits 0.
#   make bench-gpu   roofline table (BENCH_GPU_ARGS, e.g. --models 1b --quick)

GPU_TEST_OBJS := $(BUILD)/tests-gpu/test_gpu.o $(BUILD)/tests-gpu/gpu_kernel_tests.o \
                 $(BUILD)/tests-gpu/test_emu.o $(BUILD)/tests-gpu/test_gpu_arch.o \
                 $(BUILD)/tests/testutil.o
GPU_BENCH_OBJS := $(BUILD)/tests-gpu/bench_gpu.o

$(BIN)/inferno-test-gpu: $(GPU_TEST_OBJS) $(BUILD)/libinferno.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) $(GPU_TEST_OBJS) $(BUILD)/libinferno.a -lcunit $(LDLIBS) -o $@

$(BIN)/inferno-bench-gpu: $(GPU_BENCH_OBJS) $(BUILD)/libinferno.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) $(GPU_BENCH_OBJS) $(BUILD)/libinferno.a $(LDLIBS) -o $@

COMPUTE_SANITIZER ?= $(firstword $(shell command -v compute-sanitizer 2>/dev/null) \
                       $(wildcard $(CUDA_HOME)/bin/compute-sanitizer $(CUDA_HOME)/compute-sanitizer/compute-sanitizer))

test-gpu: $(BIN)/inferno-test-gpu
	$(BIN)/inferno-test-gpu $(GPU_SUITES)
	@if [ "$(HAVE_CUDA)" = 1 ] && $(BIN)/inferno-test-gpu --has-gpu >/dev/null 2>&1; then \
	  if [ -n "$(COMPUTE_SANITIZER)" ]; then \
	    echo "compute-sanitizer memcheck on the small-model suite:"; \
	    INFERNO_CUDA_GRAPHS=0 $(COMPUTE_SANITIZER) --tool memcheck --error-exitcode 1 \
	      $(BIN)/inferno-test-gpu gpu_memcheck; \
	  else echo "SKIP: compute-sanitizer not found: memcheck not run"; fi; \
	fi

bench-gpu: $(BIN)/inferno-bench-gpu
	$(BIN)/inferno-bench-gpu $(BENCH_GPU_ARGS)

# The objects whose code depends on INF_HAVE_CUDA are rebuilt when CUDA is
# switched on or off in the same build folder (the stamp names the setting;
# nothing else in the tree reads INF_HAVE_CUDA).
CUDA_STAMP := $(BUILD)/.have-cuda-$(HAVE_CUDA)
$(CUDA_STAMP):
	@mkdir -p $(@D) && rm -f $(BUILD)/.have-cuda-* && touch $@
$(BUILD)/engine/cuda_backend.o $(BUILD)/engine/cuda_load.o $(GPU_TEST_OBJS) $(GPU_BENCH_OBJS): $(CUDA_STAMP)

# make gpu-pack: the one-call GPU validation kit (docs/cuda.md, tools/gpu-run.sh).
# A real nvcc build (CUDA=1) for x86-64-v3 and nothing beyond (PORTABLE=1, the
# AVX-512 CPU set left out), in its own build folder, then tools/gpu-pack.sh
# adds the libraries the GPU machine lacks, the tiny model and a MANIFEST.
# --as-needed keeps libraries the GPU programs never call (Kafka, Redis, HTTP)
# out of the pack.
GPU_PACK ?= .gpu
GPU_PACK_BUILD ?= build-gpu
.PHONY: gpu-pack
gpu-pack:
	@$(MAKE) --no-print-directory PORTABLE=1 CUDA=1 BUILD=$(GPU_PACK_BUILD) BIN=$(GPU_PACK)/bin \
	  EXTRA_CFLAGS=-DINF_NO_AVX512 EXTRA_LDFLAGS=-Wl,--as-needed \
	  $(GPU_PACK)/bin/inferno-test-gpu $(GPU_PACK)/bin/inferno-bench-gpu
	tools/gpu-pack.sh $(GPU_PACK) $(GPU_PACK_BUILD)
