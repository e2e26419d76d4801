package server

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/llm-go/llm/loader/gguf"
)

// modelDetails is Ollama's "details" of a model.
type modelDetails struct {
	ParentModel       string   `json:"parent_model"`
	Format            string   `json:"format"`
	Family            string   `json:"family"`
	Families          []string `json:"families"`
	ParameterSize     string   `json:"parameter_size"`
	QuantizationLevel string   `json:"quantization_level"`
}

// fileFacts are what listings show of a model file, read from its header.
type fileFacts struct {
	Path     string
	Size     int64
	Modified time.Time
	Digest   string
	Details  modelDetails
	Header   *gguf.File
}

// readFacts reads the header of the GGUF file at path. digest is used when
// known (a Hub file's ETag is the SHA-256 of its content); otherwise the
// digest is a SHA-256 of the path, size and modification time, which
// changes when the file does without reading the whole file.
func readFacts(path, digest string) (*fileFacts, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	h, err := gguf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if digest == "" {
		sum := sha256.Sum256(fmt.Appendf(nil, "%s\x00%d\x00%d", path, st.Size(), st.ModTime().UnixNano()))
		digest = hex.EncodeToString(sum[:])
	}
	arch := h.Architecture()
	d := modelDetails{Format: "gguf", Family: arch, Families: []string{arch},
		ParameterSize: humanCount(h.ParamCount()), QuantizationLevel: quantization(h)}
	return &fileFacts{Path: path, Size: st.Size(), Modified: st.ModTime(), Digest: strings.TrimPrefix(digest, "sha256:"), Details: d, Header: h}, nil
}

// humanCount formats a parameter count as Ollama does: 292.80K, 7.24B.
func humanCount(n uint64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2fB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.2fM", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.2fK", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}

// quantization names the file's quantization: general.file_type, else the
// tensor type holding most parameters.
func quantization(h *gguf.File) string {
	if ft, ok := h.Uint("general.file_type"); ok {
		return gguf.FileTypeName(ft)
	}
	name, _ := h.DominantType()
	return name
}

// maxInfoArray is the longest metadata array /api/show prints without
// verbose; longer ones (the vocabulary) are null, as Ollama prints them.
const maxInfoArray = 64

// modelInfo converts the header's metadata to JSON values for /api/show.
func modelInfo(h *gguf.File, verbose bool) map[string]any {
	out := make(map[string]any, len(h.KV))
	for _, kv := range h.KV {
		if kv.Value.IsArray() && kv.Value.Len() > maxInfoArray && !verbose {
			out[kv.Key] = nil
			continue
		}
		out[kv.Key] = ggufValue(kv.Value)
	}
	return out
}

// ggufValue converts a metadata value to a JSON-encodable value.
func ggufValue(v gguf.Value) any {
	if v.IsArray() {
		list := make([]any, v.Len())
		for i := range list {
			list[i] = ggufValue(v.Index(i))
		}
		return list
	}
	if s, ok := v.AsString(); ok {
		return s
	}
	if b, ok := v.AsBool(); ok {
		return b
	}
	if v.Type == gguf.ValueFloat32 || v.Type == gguf.ValueFloat64 {
		f, _ := v.AsFloat()
		return f
	}
	if i, ok := v.AsInt(); ok {
		return i
	}
	if u, ok := v.AsUint(); ok {
		return u
	}
	return nil
}
