//go:build llm_amx

// ggml's AMX buffer type and its matrix multiplication, compiled from the
// vendored sources found through ./_ggml (see amx.go).
#include "ggml-cpu/amx/amx.cpp"
