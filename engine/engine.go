// Package engine is a Go binding to llama.cpp's public C API (llama.h).
//
// It loads GGUF models, tokenizes, decodes batches of tokens for one or many
// sequences, and exposes logits, embeddings, the KV memory, quantization and
// performance counters. llama.cpp is compiled into the program by cgo from the
// sources vendored by the Go module github.com/ollama/ollama; nothing is
// loaded at run time and no server runs.
//
// # Safety
//
// Every input that llama.cpp would crash on is checked in Go first: model
// files go through the GGUF validator of package loader/gguf before llama.cpp
// parses them, token ids, positions, sequence ids and output rows are checked
// against the model and context, and using a closed Model or Context returns
// [ErrClosed]. Closing twice is safe.
//
// # Concurrency
//
// A [Model] is safe for concurrent use: tokenization and model facts may be
// used from many goroutines, and many [Context] values may be created from
// one Model and used in parallel. A Context serialises its own calls with a
// mutex, so it is safe but not parallel; use one Context per goroutine for
// parallelism, or one Context with several sequences in a batch.
// [Model.Close] closes the model's open contexts first.
//
// # Logging
//
// llama.cpp's and ggml's log lines are sent to log/slog (see [SetLogger]):
// informational lines at Debug level, warnings at Warn, errors at Error.
//
// # Build flags
//
// Build with CGO_CFLAGS and CGO_CXXFLAGS set to "-O3 -march=native" (or a
// portable level such as -march=x86-64-v3); the project's Makefile does.
// Without them ggml is compiled with baseline SIMD only and runs several
// times slower. [System] reports what was compiled in. Where -march=native
// turns on AMX (Intel Xeon Sapphire Rapids and later), add -mno-amx-int8 to
// both: ggml-cpu then refers to AMX code that the vendored packages do not
// compile, and the link fails. CGO_CPPFLAGS=-DGGML_USE_CPU_REPACK turns on
// ggml's weight repacking (see [ModelOptions.NoRepack]), as llama.cpp's own
// build does. The project's Makefile does all of this, and in a checkout of
// the repository compiles the AMX code where the CPU has AMX (build tag
// llm_amx, package ggmlamx, which needs the link to ggml's sources that the
// Makefile makes).
package engine

/*
#cgo CFLAGS: -std=c11
#cgo linux LDFLAGS: -Wl,--wrap=ggml_backend_free
#include <stdlib.h>
#include "llama_api.h"
*/
import "C"

import (
	// llama.cpp and ggml (with the CPU backend) compiled from the sources that
	// the Ollama module vendors. Only these source packages are used.
	_ "github.com/ollama/ollama/llama/llama.cpp/src"
)

// LlamaCppCommit is the llama.cpp commit vendored by the Ollama module this
// package is built from (github.com/ollama/ollama v0.17.4).
const LlamaCppCommit = "ec98e2002"

func init() {
	C.llama_backend_init()
	C.llm_install_log()
}

// Token is a token id of a model's vocabulary.
type Token int32

// Pos is a token's position within its sequence.
type Pos int32

// SeqID identifies a sequence in a context's KV memory.
type SeqID int32

// NoToken is returned where a model has no such special token.
const NoToken Token = -1
