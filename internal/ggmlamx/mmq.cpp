//go:build llm_amx

// ggml's AMX quantized matrix multiplication kernels (see amx.go).
#include "ggml-cpu/amx/mmq.cpp"
