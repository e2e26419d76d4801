# Build, test and benchmark llm.
#
# llama.cpp and ggml are compiled by cgo from the Go module
# github.com/ollama/ollama. Without optimisation and SIMD flags ggml builds
# with baseline SIMD only and runs several times slower, so every target here
# sets CGO_CFLAGS/CGO_CXXFLAGS. Override CPU_FLAGS for portable binaries:
#   make build CPU_FLAGS=-march=x86-64-v3
#   make build CPU_FLAGS="-mavx2 -mfma -mf16c"
# Changing the flags rebuilds llama.cpp (a few minutes on 2 cores).

CPU_FLAGS ?= -march=native
OPT_FLAGS ?= -O3
GO ?= go
comma := ,
empty :=
space := $(empty) $(empty)
# goenv reads a go setting as the go command would see it: from this make's
# command line when given there, else from the environment or go env -w.
goenv = $(if $(filter command line,$(origin $(1))),$($(1)),$(shell $(GO) env $(1)))

# AMX (Intel Xeon Sapphire Rapids and later): where CPU_FLAGS turn it on
# (-march=native on such a CPU), ggml's CPU backend refers to its AMX code,
# which the vendored cgo packages leave out. Package internal/ggmlamx
# compiles it (build tag llm_amx; ggml's sources linked at
# internal/ggmlamx/_ggml by amx-link), and Q4_0, Q4_1, Q8_0, Q4_K, Q5_K,
# Q6_K and IQ4_XS matrices then run on AMX tiles. AMX=off leaves AMX out
# (-mno-amx-int8), as a plain go build with such flags must. ggml compiles
# its AMX code where both AMX-INT8 and AVX512-VNNI are on.
CPU_AMX := $(if $(filter 2,$(shell echo | $$($(GO) env CC) $(CPU_FLAGS) -dM -E - 2>/dev/null | grep -c -E '^\#define (__AMX_INT8__|__AVX512VNNI__) ')),on)
AMX ?= $(CPU_AMX)
# The tag joins the build tags already in GOFLAGS (the go command keeps only
# the last -tags); a make run by this one, with other CPU_FLAGS, decides
# again.
GOFLAGS_BASE := $(call goenv,GOFLAGS)
GO_TAGS := $(filter-out llm_amx,$(subst $(comma),$(space),$(patsubst -tags=%,%,$(lastword $(filter -tags=%,$(GOFLAGS_BASE))))))
ifeq ($(CPU_AMX)$(AMX),onon)
GO_TAGS += llm_amx
AMX_LINK := amx-link
else ifeq ($(CPU_AMX),on)
NO_AMX := -mno-amx-int8
endif
override GOFLAGS := $(strip $(filter-out -tags=%,$(GOFLAGS_BASE)) $(if $(strip $(GO_TAGS)),-tags=$(subst $(space),$(comma),$(strip $(GO_TAGS)))))
export GOFLAGS
# Weight repacking (llama.cpp's default, GGML_CPU_REPACK in its CMake
# build): at load, ggml's CPU backend rearranges Q4_0, Q4_K and IQ4_NL
# weights (Q2_K too with AVX-512) into interleaved blocks that its AVX2 and
# NEON kernels multiply faster. The vendored cgo packages leave it off; it
# needs one definition when ggml-cpu is compiled. REPACK=off leaves it off.
REPACK ?= on
override CGO_CPPFLAGS := $(strip $(filter-out -DGGML_USE_CPU_REPACK,$(call goenv,CGO_CPPFLAGS)) $(if $(filter on,$(REPACK)),-DGGML_USE_CPU_REPACK))
export CGO_CPPFLAGS
export CGO_ENABLED := 1
export CGO_CFLAGS := $(OPT_FLAGS) $(CPU_FLAGS) $(NO_AMX)
export CGO_CXXFLAGS := $(OPT_FLAGS) $(CPU_FLAGS) $(NO_AMX)

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/llm-go/llm/internal/buildinfo.Version=$(VERSION)
# Fuzz budgets are counts of executions, not durations: with a duration, Go
# 1.26's fuzz coordinator can fail a clean run with "context deadline
# exceeded" at the deadline (golang/go#75804, fixed in Go 1.27).
FUZZTIME ?= 400000x
BENCHTIME ?= 3x

.PHONY: amx-link build test test-short test-race test-backends fuzz bench vet clean cuda metal gpu-check-prepare gpu-bench-binary

# GPU backends: ggml's CUDA (or Metal) backend built by CMake from the same
# vendored sources as a shared library in lib/, which bin/llm loads at start
# (LLM_BACKEND_PATH overrides where). Needs CMake and the CUDA toolkit; no
# CUDA is needed to build or link bin/llm itself.
OLLAMA_DIR = $(shell $(GO) list -m -f '{{.Dir}}' github.com/ollama/ollama)
GGML_SRC ?= $(OLLAMA_DIR)/ml/backend/ggml/ggml
CUDA_ARCHITECTURES ?= native
# OFF leaves out the CUDA flash-attention kernels: a third of the build time.
CUDA_FA ?= ON
LLAMA_COMMIT = $(shell sed -n 's/^const LlamaCppCommit = "\(.*\)"/\1/p' engine/engine.go)

build: $(AMX_LINK)
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/llm ./cmd/llm

# The full test suite, as CI runs it: vet, unit and integration tests against
# ../shared, the ABI check of engine's C declarations, and a short fuzz run.
test: vet
	$(GO) test -count=1 -timeout 30m ./...
	$(MAKE) test-backends
	$(MAKE) fuzz

# Run-time loading of a backend library, tested with ggml's BLAS backend
# (needs CMake, Ninja and OpenBLAS), built like make cuda builds CUDA; and a
# backend that finds no device, as CUDA does without a usable driver.
test-backends: $(AMX_LINK)
	cmake -S backends -B build/blas -G Ninja -DGGML_SRC=$(GGML_SRC) -DLLM_BACKEND=blas > build-blas.log 2>&1 || (cat build-blas.log; exit 1)
	cmake --build build/blas --target ggml-blas >> build-blas.log 2>&1 || (cat build-blas.log; exit 1)
	rm -rf build/blas/backends && mkdir -p build/blas/backends
	cp -P build/blas/lib/libggml-base.so* build/blas/lib/libggml-blas.so build/blas/backends/
	echo $(LLAMA_COMMIT) > build/blas/backends/ggml-backends.commit
	LLM_TEST_BACKEND_DIR=$(CURDIR)/build/blas/backends $(GO) test -count=1 -run '^TestLoadedBackend$$' -v ./engine
	cmake --build build/blas --target ggml-nodevice >> build-blas.log 2>&1 || (cat build-blas.log; exit 1)
	rm -rf build/blas/nodevice && mkdir -p build/blas/nodevice
	cp -P build/blas/lib/libggml-base.so* build/blas/lib/libggml-nodevice.so build/blas/nodevice/
	echo $(LLAMA_COMMIT) > build/blas/nodevice/ggml-backends.commit
	LLM_TEST_NODEVICE_DIR=$(CURDIR)/build/blas/nodevice $(GO) test -count=1 -run '^TestBackendWithoutDevice$$' -v ./engine

# Every package under the race detector. Not part of make test: -race
# rebuilds llama.cpp (about 3 minutes cold), then takes about 5 minutes on
# 2 cores.
test-race: $(AMX_LINK)
	$(GO) test -race -count=1 -timeout 30m ./...

test-short: $(AMX_LINK)
	$(GO) test -short ./...

fuzz: $(AMX_LINK)
	$(GO) test -run '^$$' -fuzz '^FuzzRead$$' -fuzztime $(FUZZTIME) ./loader/gguf
	$(GO) test -run '^$$' -fuzz '^FuzzRead$$' -fuzztime $(FUZZTIME) ./loader/safetensors
	$(GO) test -run '^$$' -fuzz '^FuzzSplitters$$' -fuzztime 100000x .

vet: $(AMX_LINK)
	$(GO) vet ./...

bench: $(AMX_LINK)
	$(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) ./engine/...

cuda:
	cmake -S backends -B build/cuda -G Ninja -DGGML_SRC=$(GGML_SRC) -DLLM_BACKEND=cuda -DCMAKE_CUDA_ARCHITECTURES=$(CUDA_ARCHITECTURES) -DLLM_CUDA_FA=$(CUDA_FA)
	cmake --build build/cuda --target ggml-cuda
	mkdir -p lib && cp -P build/cuda/lib/libggml-base.so* build/cuda/lib/libggml-cuda.so lib/
	echo $(LLAMA_COMMIT) > lib/ggml-backends.commit

# Metal, for macOS: the same mechanism; untested (no Mac was available).
metal:
	cmake -S backends -B build/metal -G Ninja -DGGML_SRC=$(GGML_SRC) -DLLM_BACKEND=metal
	cmake --build build/metal --target ggml-metal
	mkdir -p lib && cp -P build/metal/lib/libggml-base*.dylib build/metal/lib/libggml-metal*.dylib lib/
	echo $(LLAMA_COMMIT) > lib/ggml-backends.commit

# Prepare bench/gpu/check.sh for a GPU machine without Go or network: a
# portable bin/llm, the ggml sources and the test model, in .gpu/ (ignored).
gpu-check-prepare:
	$(MAKE) build CPU_FLAGS=-march=x86-64-v3
	rm -rf .gpu && mkdir -p .gpu/ggml
	$(MAKE) gpu-bench-binary CPU_FLAGS=-march=x86-64-v3
	cp -r $(GGML_SRC)/. .gpu/ggml/ && chmod -R u+w .gpu/ggml
	echo $(LLAMA_COMMIT) > .gpu/llama-commit
	cp ../shared/models/stories260K.gguf .gpu/
	python3 -c 'import json; p=json.load(open("../shared/testdata/reference/stories260K_reference.json"))["prompts"][0]; open(".gpu/expected.txt","w").write(p["generated_text"]+"\n"); open(".gpu/prompt.txt","w").write(p["prompt"])'

# The root package's test binary, for its continuous-batching benchmark on
# the GPU machine (bench/gpu/check.sh runs it).
gpu-bench-binary: $(AMX_LINK)
	mkdir -p .gpu && $(GO) test -c -trimpath -ldflags '-s -w' -o .gpu/llm.test .

# ggml's sources where package ggmlamx finds them (see AMX above), made
# again each time in case the module's directory changed. (A name starting
# with _ keeps ./... patterns from looking into it.)
amx-link:
	$(GO) mod download github.com/ollama/ollama
	ln -sfn "$$($(GO) list -m -f '{{.Dir}}' github.com/ollama/ollama)/ml/backend/ggml/ggml" internal/ggmlamx/_ggml
	test -f internal/ggmlamx/_ggml/src/ggml-cpu/amx/amx.cpp

clean:
	rm -rf bin lib build .gpu build-blas.log internal/ggmlamx/_ggml
