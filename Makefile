# inferno-worker build.
#
#   make             build every program into bin/ (CUDA parts when nvcc is found)
#   make test        build and run every CUnit suite (bin/inferno-tests), then
#                    the GPU suites on the CUDA emulator (quick form)
#   make test-cuda-emu  the GPU suites on the CUDA emulator (emu/), full form
#   make asan        the same suites under -fsanitize=address,undefined
#   make bench       CPU benchmarks (tables on stdout), then the queue overhead through
#                    the mock and the gateway's TTFB (tools/bench-queue.sh; BENCH_QUEUE=0
#                    skips it); LLAMA_BIN=DIR: side by side with a llama.cpp build of
#                    your own on the same files
#   make chaos       the chaos suite's long form (CHAOS_REQUESTS=10000)
#   make soak        memory soak: the worker's RSS over 20 rounds of 1,000 requests
#   make fuzz        libFuzzer targets in turn: GGUF reader, request decoder, tokenizers,
#                    JSON-Schema compiler, GBNF parser (FUZZ_SECONDS=600 each,
#                    FUZZ_TARGETS="gguf request tokenizer jsonschema gbnf")
#   make run         the main job (README)
#
# Options: CUDA=0 skips CUDA, CUDA=1 requires it; PORTABLE=1 builds for x86-64-v3
# instead of -march=native; DEBUG=1 for -O0.

SHELL := /bin/bash
CC ?= cc
ifeq ($(origin CC),default)
CC := gcc
endif

BUILD ?= build
BIN ?= bin

ifeq ($(PORTABLE),1)
ARCHFLAGS := -march=x86-64-v3
else
ARCHFLAGS := -march=native
endif

ifeq ($(DEBUG),1)
OPTFLAGS := -O0 -g3
else
OPTFLAGS := -O2 -g
endif

WARN := -Wall -Wextra -Werror -Wno-unused-parameter
CPPFLAGS += -D_GNU_SOURCE -I. -Iengine -Iqueue -Iworker -Igateway -Ikernels
CFLAGS += -std=c11 $(OPTFLAGS) $(ARCHFLAGS) $(WARN) -fno-strict-aliasing -pthread $(EXTRA_CFLAGS)
LDLIBS += -lpcre2-8 -lrdkafka -lhiredis -lavro -lmicrohttpd -lcurl -lm -lpthread
LDFLAGS += -pthread $(EXTRA_LDFLAGS)

# ---- CUDA detection ---------------------------------------------------------
CUDA_HOME ?= $(firstword $(wildcard /usr/local/cuda /usr/local/cuda-*))
NVCC ?= $(shell command -v nvcc 2>/dev/null || ( test -x $(CUDA_HOME)/bin/nvcc && echo $(CUDA_HOME)/bin/nvcc ))
CUDA_SRCS := $(wildcard kernels/*.cu)
ifeq ($(CUDA_EMU),1)
# The CUDA emulator (emu/, make test-cuda-emu): the .cu files built as C++
# against emulated runtime/cuBLAS headers; no nvcc or GPU needed.
HAVE_CUDA := emu
else ifeq ($(CUDA),0)
HAVE_CUDA := 0
else ifneq ($(NVCC),)
HAVE_CUDA := 1
else ifeq ($(CUDA),1)
$(error CUDA=1 but nvcc was not found (set NVCC or CUDA_HOME))
else
HAVE_CUDA := 0
endif
NVCCFLAGS ?= -O3 -std=c++17 -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
             -Xcompiler -Wall,-Wextra,-Werror,-Wno-unused-parameter -I. -Iengine -Ikernels
ifeq ($(HAVE_CUDA),emu)
CXX ?= g++
ifeq ($(origin CXX),default)
CXX := g++
endif
CPPFLAGS += -DINF_HAVE_CUDA=1 -DINFEMU=1 -Iemu/include
EMU_CXXFLAGS := -std=c++17 $(OPTFLAGS) $(ARCHFLAGS) $(WARN) -Wno-unknown-pragmas -fno-strict-aliasing \
                -pthread $(EXTRA_CFLAGS)
EMU_OBJS := $(patsubst %.cpp,$(BUILD)/%.o,$(wildcard emu/*.cpp))
CUDA_OBJS := $(CUDA_SRCS:%.cu=$(BUILD)/%.cu.o) $(EMU_OBJS) $(BUILD)/emu/selfcheck.cu.o
LDLIBS += -lstdc++
endif
ifeq ($(HAVE_CUDA),1)
CPPFLAGS += -DINF_HAVE_CUDA=1 -I$(CUDA_HOME)/include
LDLIBS += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublas -lcudart -lstdc++
CUDA_OBJS := $(CUDA_SRCS:%.cu=$(BUILD)/%.cu.o)
endif

# ---- sources ----------------------------------------------------------------
# Files named */inferno-*.c hold a program's main(); everything else is library.
LIB_DIRS := engine queue worker loadgen tools gateway
ALL_C := $(foreach d,$(LIB_DIRS),$(wildcard $(d)/*.c))
PROG_SRCS := $(foreach d,$(LIB_DIRS),$(wildcard $(d)/inferno-*.c))
LIB_SRCS := $(filter-out $(PROG_SRCS),$(ALL_C))
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o) $(CUDA_OBJS)
PROGS := $(foreach s,$(PROG_SRCS),$(BIN)/$(basename $(notdir $(s))))

TEST_SRCS := $(wildcard tests/test_*.c)
TEST_NAMES := $(patsubst tests/test_%.c,%,$(TEST_SRCS))
TEST_OBJS := $(TEST_SRCS:%.c=$(BUILD)/%.o) $(BUILD)/tests/testutil.o $(BUILD)/tests/runner.o $(BUILD)/tests/registry.o

.PHONY: all test asan bench chaos soak fuzz run deps clean test-cuda-emu
all: $(PROGS) $(BIN)/inferno-tests

deps:
	@tools/bootstrap.sh

$(BUILD)/libinferno.a: $(LIB_OBJS)
	@mkdir -p $(@D)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

ifeq ($(HAVE_CUDA),emu)
$(BUILD)/%.cu.cpp: %.cu emu/cu2cpp.sh
	@mkdir -p $(@D)
	emu/cu2cpp.sh $< > $@
$(BUILD)/%.cu.o: $(BUILD)/%.cu.cpp
	$(CXX) $(CPPFLAGS) -Iemu $(EMU_CXXFLAGS) -include emu/include/infemu_device.h -MMD -MP -c $< -o $@
$(BUILD)/emu/%.o: emu/%.cpp
	@mkdir -p $(@D)
	$(CXX) $(CPPFLAGS) -Iemu $(EMU_CXXFLAGS) -MMD -MP -c $< -o $@
else
$(BUILD)/%.cu.o: %.cu
	@mkdir -p $(@D)
	$(NVCC) $(NVCCFLAGS) -DINF_HAVE_CUDA=1 -c $< -o $@
endif

# One link rule per program main.
define PROG_RULE
$(BIN)/$(basename $(notdir $(1))): $(BUILD)/$(1:.c=.o) $(BUILD)/libinferno.a
	@mkdir -p $$(@D)
	$$(CC) $$(CFLAGS) $$(LDFLAGS) $$^ $$(LDLIBS) -o $$@
endef
$(foreach s,$(PROG_SRCS),$(eval $(call PROG_RULE,$(s))))

# The registry calls test_register_<name>() for every tests/test_<name>.c.
$(BUILD)/tests/registry.c: $(TEST_SRCS) Makefile
	@mkdir -p $(@D)
	@{ echo '/* generated by Makefile */'; \
	   for n in $(TEST_NAMES); do echo "void test_register_$$n(void);"; done; \
	   echo 'void tu_register_all(void) {'; \
	   for n in $(TEST_NAMES); do echo "    test_register_$$n();"; done; \
	   echo '}'; } > $@

$(BUILD)/tests/registry.o: $(BUILD)/tests/registry.c
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(BIN)/inferno-tests: $(TEST_OBJS) $(BUILD)/libinferno.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) $(TEST_OBJS) $(BUILD)/libinferno.a -lcunit $(LDLIBS) -o $@

# make test: install what is missing, build everything, run every suite,
# then (unless SUITES picks suites or CUDA_EMU_TESTS=0) the GPU suites on the
# CUDA emulator in their quick form.
# With nvcc present the GPU pack is built first (make gpu-pack, minutes the
# first time) so the gpu_pack suite checks it; GPU_PACK_TEST=0 skips that.
test: deps
	@$(MAKE) --no-print-directory all
ifneq ($(NVCC),)
ifneq ($(GPU_PACK_TEST),0)
	@if [ -z "$(SUITES)" ] || echo " $(SUITES) " | grep -q ' gpu_pack '; then \
	  $(MAKE) --no-print-directory gpu-pack || { echo "make gpu-pack FAILED"; exit 1; }; fi
endif
endif
	$(BIN)/inferno-tests $(SUITES)
ifeq ($(SUITES),)
ifneq ($(CUDA_EMU_TESTS),0)
	@$(MAKE) --no-print-directory test-cuda-emu INFERNO_GPU_TEST_QUICK=1
endif
endif

# Same suites, separate build tree, sanitizers on.
asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan BIN=bin-asan CUDA=0 \
	  EXTRA_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	  EXTRA_LDFLAGS="-fsanitize=address,undefined" all
	ASAN_OPTIONS=detect_leaks=1 INFERNO_BIN=bin-asan bin-asan/inferno-tests $(SUITES)

# make bench: our tables alone, with the bandwidth floors. make bench
# LLAMA_BIN=DIR (a llama.cpp CPU build of your own: llama-bench,
# llama-batched-bench, llama-quantize): side by side with llama.cpp on the same
# files, BENCH_ROUNDS alternating rounds on BENCH_THREADS threads
# (tools/bench-vs-llama.py; BENCH_VS_ARGS passes more options).
LLAMA_BIN ?=
BENCH_ROUNDS ?= 3
BENCH_THREADS ?= 2
bench: deps
	@$(MAKE) --no-print-directory all
ifeq ($(strip $(LLAMA_BIN)),)
	$(BIN)/inferno-bench $(BENCH_ARGS)
ifneq ($(BENCH_QUEUE),0)
	tools/bench-queue.sh
endif
else
	python3 tools/bench-vs-llama.py --llama-bin $(LLAMA_BIN) --bin $(BIN) --dir $(BUILD)/bench-vs-llama \
	  --rounds $(BENCH_ROUNDS) --threads $(BENCH_THREADS) $(BENCH_VS_ARGS)
endif

# The chaos suite's long form (make test runs it with 1,000 requests):
# CHAOS_REQUESTS valid requests, more worker kills; several minutes.
CHAOS_REQUESTS ?= 10000
chaos: deps
	@$(MAKE) --no-print-directory all
	INFERNO_CHAOS_REQUESTS=$(CHAOS_REQUESTS) $(BIN)/inferno-tests chaos

# Embedded deployment (mock Kafka, redis-server, worker on the tiny model)
# under SOAK_ROUNDS x SOAK_REQUESTS requests; one RSS row per round, exit 1
# unless RSS stays within SOAK_TOLERANCE_PCT after SOAK_WARMUP rounds.
soak: deps
	@$(MAKE) --no-print-directory all
	tools/soak.sh

# libFuzzer targets (fuzz/fuzz_<name>.c), each linked with only the library
# sources it needs, built with clang's -fsanitize=fuzzer,address,undefined
# (UB aborts). make fuzz runs each target in FUZZ_TARGETS in turn for
# FUZZ_SECONDS, on the working corpus $(BUILD)/fuzz/corpus-<name> (new inputs
# land there) plus the committed seeds fuzz/corpus/<name> (read-only); crash
# inputs go to $(BUILD)/fuzz/. make fuzz-build only builds them.
FUZZ_SECONDS ?= 600
FUZZ_TARGETS ?= gguf request tokenizer jsonschema gbnf
FUZZ_CC ?= clang
FUZZ_CFLAGS := -std=c11 -g -O1 -D_GNU_SOURCE -I. -Iengine -Iqueue -Wall -Wextra -Wno-unused-parameter \
               -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZ_DEPS := engine/status.h engine/gguf.h engine/quant.h
FUZZ_SRCS_gguf := engine/gguf.c engine/quant.c engine/status.c
FUZZ_LIBS_gguf := -lm
FUZZ_MAXLEN_gguf := 65536
FUZZ_SRCS_request := queue/avro_codec.c queue/avro_value.c queue/avro_canon.c queue/avro_scan.c queue/avro_request.c \
                     engine/status.c
FUZZ_DEPS_request := fuzz/request_schemas.h queue/avro_codec.h
FUZZ_LIBS_request := -lavro -lm
FUZZ_MAXLEN_request := 4096
FUZZ_SRCS_tokenizer := engine/tokenizer.c engine/tok_spm.c engine/tok_bpe.c engine/tok_stream.c \
                       engine/gguf.c engine/quant.c engine/status.c
FUZZ_DEPS_tokenizer := engine/tokenizer.h engine/tok_internal.h
FUZZ_LIBS_tokenizer := -lpcre2-8 -lm
FUZZ_MAXLEN_tokenizer := 1024
GRAMMAR_SRCS := engine/grammar_parse.c engine/grammar_match.c engine/grammar_mask.c engine/tokenizer.c \
                engine/tok_spm.c engine/tok_bpe.c engine/tok_stream.c engine/gguf.c engine/quant.c engine/status.c
FUZZ_SRCS_gbnf := $(GRAMMAR_SRCS)
FUZZ_DEPS_gbnf := engine/grammar.h engine/grammar_internal.h
FUZZ_LIBS_gbnf := -lpcre2-8 -lm -lpthread
FUZZ_MAXLEN_gbnf := 2048
FUZZ_SRCS_jsonschema := engine/jsonschema.c engine/regex.c engine/gtext.c tools/json.c $(GRAMMAR_SRCS)
FUZZ_DEPS_jsonschema := engine/jsonschema.h engine/regex.h engine/gtext.h engine/grammar.h
FUZZ_LIBS_jsonschema := -lpcre2-8 -lm -lpthread
FUZZ_MAXLEN_jsonschema := 4096

define FUZZ_RULE
$(BUILD)/fuzz/fuzz_$(1): fuzz/fuzz_$(1).c $(FUZZ_SRCS_$(1)) $(FUZZ_DEPS_$(1)) $(FUZZ_DEPS) Makefile
	@mkdir -p $$(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) fuzz/fuzz_$(1).c $(FUZZ_SRCS_$(1)) $(FUZZ_LIBS_$(1)) -o $$@
endef
$(foreach t,$(FUZZ_TARGETS),$(eval $(call FUZZ_RULE,$(t))))

.PHONY: fuzz-build
fuzz-build: $(foreach t,$(FUZZ_TARGETS),$(BUILD)/fuzz/fuzz_$(t))

# One recipe line per target, so they run one after another and each is echoed.
define FUZZ_RUN
	$(BUILD)/fuzz/fuzz_$(1) -max_total_time=$(FUZZ_SECONDS) -max_len=$(FUZZ_MAXLEN_$(1)) \
	  -print_final_stats=1 -artifact_prefix=$(BUILD)/fuzz/$(1)- $(BUILD)/fuzz/corpus-$(1) fuzz/corpus/$(1)

endef
fuzz: deps fuzz-build
	@mkdir -p $(foreach t,$(FUZZ_TARGETS),$(BUILD)/fuzz/corpus-$(t))
	$(foreach t,$(FUZZ_TARGETS),$(call FUZZ_RUN,$(t)))

run: deps
	@$(MAKE) --no-print-directory all
	tools/run-demo.sh

# The CUDA backend, kernels and GPU suites on the CPU through the emulator
# (emu/README.md), under ASan/UBSan. Needs neither nvcc nor a GPU.
EMU_SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
test-cuda-emu: deps
	@$(MAKE) --no-print-directory BUILD=build-emu BIN=bin-emu CUDA_EMU=1 \
	  EXTRA_CFLAGS="$(EMU_SAN)" EXTRA_LDFLAGS="-fsanitize=address,undefined" \
	  bin-emu/inferno-test-gpu bin-emu/inferno-bench-gpu
	@export ASAN_OPTIONS=detect_leaks=1 INFERNO_BIN=bin-emu $(if $(INFERNO_GPU_TEST_QUICK),INFERNO_GPU_TEST_QUICK=1); \
	if [ -n "$(GPU_SUITES)" ]; then exec bin-emu/inferno-test-gpu $(GPU_SUITES); fi; \
	echo "GPU suites on the CUDA emulator (gpu_engine in a second process; its log follows)"; \
	bin-emu/inferno-test-gpu gpu_engine > build-emu/gpu_engine.log 2>&1 & pid=$$!; \
	bin-emu/inferno-test-gpu emu_selfcheck gpu_kernels gpu_memcheck gpu_forward gpu_arch; rc=$$?; \
	wait $$pid; rc2=$$?; cat build-emu/gpu_engine.log; \
	echo "gpu_kernels and gpu_memcheck again under LIFO and random thread orders (a missing barrier shows):"; \
	INFEMU_SCHED=lifo bin-emu/inferno-test-gpu gpu_kernels gpu_memcheck > build-emu/lifo.log 2>&1 & pid=$$!; \
	seed=$$RANDOM; echo "random order: INFEMU_SEED=$$seed"; \
	INFEMU_SCHED=random INFEMU_SEED=$$seed bin-emu/inferno-test-gpu gpu_kernels gpu_memcheck > build-emu/random.log 2>&1; rc4=$$?; \
	wait $$pid || rc4=1; grep -hE 'asserts|FAIL|^ +[0-9]+\. ' build-emu/lifo.log build-emu/random.log; \
	echo "bench-gpu --smoke on the CUDA emulator (every benchmark path runs; figures meaningless):"; \
	bin-emu/inferno-bench-gpu --smoke --dir build-emu > build-emu/bench-smoke.log; rc3=$$?; cat build-emu/bench-smoke.log; \
	grep -q 'decode step, batch 8' build-emu/bench-smoke.log && grep -q 'prefill 256 tok' build-emu/bench-smoke.log || rc3=1; \
	[ $$rc = 0 ] && [ $$rc2 = 0 ] && [ $$rc3 = 0 ] && [ $$rc4 = 0 ] || { echo "CUDA emulator suites FAILED"; exit 1; }

clean:
	rm -rf build build-asan build-emu bin bin-asan bin-emu

# GPU checks (make test-gpu, make bench-gpu) live beside the kernels.
-include kernels/cuda.mk

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
