//go:build llm_amx

// Package ggmlamx compiles ggml's AMX matrix-multiplication code (Intel
// Advanced Matrix Extensions, on Xeon Sapphire Rapids and later) from the
// sources the Ollama module vendors, which its own cgo packages leave out.
//
// Where the C flags turn AMX on (-march=native on such a CPU), ggml's CPU
// backend offers an AMX buffer type for the weights of Q4_0, Q4_1, Q8_0 and
// some K-quants and multiplies them with AMX tiles during prompt processing;
// it then needs this code at link time. The package is built only with the
// build tag llm_amx and needs ggml's source tree at ./_ggml (a symbolic
// link, not in the repository): the Makefile makes both when the CPU flags
// enable AMX, so this works in a checkout of the repository, not from the
// module's zip. Without the tag, the flags must not enable AMX (add
// -mno-amx-int8).
//
// Importing the package (for its side effect) is all there is to it.
package ggmlamx

// #cgo CXXFLAGS: -std=c++17
// #cgo CPPFLAGS: -DNDEBUG -DGGML_USE_LLAMAFILE
// #cgo linux CPPFLAGS: -D_GNU_SOURCE
// #cgo CPPFLAGS: -I${SRCDIR}/_ggml/src/ggml-cpu -I${SRCDIR}/_ggml/src -I${SRCDIR}/_ggml/include
import "C"

// The CPU backend this code belongs to. Importing it also makes Go's build
// cache, which does not see the sources included through _ggml, rebuild
// this package when the module (and so those sources) changes.
import _ "github.com/ollama/ollama/ml/backend/ggml/ggml/src/ggml-cpu"
