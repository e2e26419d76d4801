package convert

import "github.com/llm-go/llm/loader/gguf"

// phi3Keys sets the GGUF keys particular to llama.cpp's phi3 arch, as
// convert_hf_to_gguf.py's Phi3MiniModel writes them: the sliding window
// (0 when config.json has none; llama.cpp currently disables Phi-3's
// sliding window whatever the value) and original_max_position_embeddings
// as rope.scaling.original_context_length. A yarn rope scaling written
// after this replaces the latter with its own.
func phi3Keys(w *gguf.Writer, cfg *hfConfig) {
	w.Set("phi3.attention.sliding_window", gguf.Uint32(uint32(positiveInt(cfg.SlidingWindow))))
	if n := positiveInt(cfg.OrigMaxPos); n > 0 {
		w.Set("phi3.rope.scaling.original_context_length", gguf.Uint32(uint32(n)))
	}
}
