//go:build llm_amx

package engine

// ggml's AMX code, needed where the C flags enable AMX (see package ggmlamx).
import _ "github.com/llm-go/llm/internal/ggmlamx"
