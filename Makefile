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
export CGO_ENABLED := 1
export CGO_CFLAGS := $(OPT_FLAGS) $(CPU_FLAGS)
export CGO_CXXFLAGS := $(OPT_FLAGS) $(CPU_FLAGS)

GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/llm-go/llm/internal/buildinfo.Version=$(VERSION)
FUZZTIME ?= 15s
BENCHTIME ?= 3x

.PHONY: build test test-short fuzz bench vet clean

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/llm ./cmd/llm

# The full test suite, as CI runs it: vet, unit and integration tests against
# ../shared, the ABI check of engine's C declarations, and a short fuzz run.
test: vet
	$(GO) test -count=1 -timeout 30m ./...
	$(MAKE) fuzz

test-short:
	$(GO) test -short ./...

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzRead$$' -fuzztime $(FUZZTIME) ./loader/gguf

vet:
	$(GO) vet ./...

bench:
	$(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) ./engine/...

clean:
	rm -rf bin lib
