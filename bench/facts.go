package bench

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/llm-go/llm/loader/gguf"
	"github.com/llm-go/llm/synth"
)

// Facts are the sizes of a model that the benchmark's extra columns and the
// memory check need, read from its GGUF header or estimated from a synth
// shape before the file exists.
type Facts struct {
	Params      uint64   // weights
	WeightBytes uint64   // bytes of all tensors
	LayerBytes  []uint64 // bytes of each block's tensors (blk.N.*)
	EmbdBytes   uint64   // token_embd.weight
	EmbdRow     uint64   // bytes of one row of token_embd.weight
	OutputBytes uint64   // output.weight and output_norm.weight
	TiedOutput  bool     // no output.weight: the output reuses token_embd
	// ExpertBytes are the bytes of a mixture of experts' expert tensors
	// (blk.N.ffn_*_exps), of which a token reads ExpertsUsed/Experts.
	ExpertBytes uint64

	Layers, Embd, FF, Heads, KVHeads, HeadDim, Vocab int
	Experts, ExpertsUsed                             int
	// ValueDim is a value head's size in the KV cache (HeadDim when 0;
	// DeepSeek's latent attention caches fewer values than keys).
	ValueDim int
	// LayerKVHeads, when not nil, are each layer's KV heads: 0 in a
	// hybrid model's layers without attention. Those marked in
	// LayerRecurrent (its Mamba-2 or convolution layers) keep
	// RecurrentBytes of state per sequence, mostly instead of a KV cache
	// (Falcon-H1's layers keep both; Nemotron-H's MLP layers neither).
	LayerKVHeads   []int
	LayerRecurrent []bool
	RecurrentBytes uint64
}

// FactsFromFile reads the facts of the GGUF model at path from its header
// (and the headers of the other files of a split model). No tensor data is
// read.
func FactsFromFile(path string) (Facts, error) {
	h, err := gguf.Open(path)
	if err != nil {
		return Facts{}, fmt.Errorf("bench: %w", err)
	}
	files := []*gguf.File{h}
	if n, ok := h.Uint(gguf.KeySplitCount); ok && n > 1 {
		prefix, ok := splitPrefix(path, int(n))
		if !ok {
			return Facts{}, fmt.Errorf("bench: %s: split model not named PREFIX-00001-of-%05d.gguf", path, n)
		}
		for i := 1; i < int(n); i++ {
			f, err := gguf.Open(gguf.SplitPath(prefix, i, int(n)))
			if err != nil {
				return Facts{}, fmt.Errorf("bench: %w", err)
			}
			files = append(files, f)
		}
	}
	arch := h.Architecture()
	get := func(key string) int {
		v, _ := h.Uint(arch + "." + key)
		return int(min(v, 1<<31-1))
	}
	heads, _ := h.HeadCount()
	f := Facts{
		Layers: get("block_count"), Embd: get("embedding_length"), FF: get("feed_forward_length"),
		Heads: int(min(heads, 1<<31-1)), KVHeads: get("attention.head_count_kv"),
	}
	if ff, ok := h.LayerUints(arch+".feed_forward_length", f.Layers); ok && f.FF == 0 && len(ff) > 0 {
		f.FF = int(min(slices.Max(ff), 1<<31-1)) // one per layer: the widest
	}
	if f.KVHeads == 0 {
		f.KVHeads = f.Heads
	}
	if kv, ok := h.LayerKVHeads(f.Layers); ok && (slices.Contains(kv, 0) || arch == "falcon-h1") {
		f.LayerKVHeads, f.LayerRecurrent, f.KVHeads = make([]int, len(kv)), make([]bool, len(kv)), 0
		// As llama.cpp tells them apart: a layer without KV heads is
		// recurrent, unless feed_forward_length (one per layer) gives it
		// an MLP (Nemotron-H's MLP layers).
		ff, perLayerFF := h.LayerUints(arch+".feed_forward_length", f.Layers)
		if v, ok := h.Lookup(arch + ".feed_forward_length"); !ok || !v.IsArray() {
			perLayerFF = false
		}
		for i, n := range kv {
			f.LayerKVHeads[i] = int(min(n, 1<<31-1))
			// Falcon-H1's layers each keep both.
			f.LayerRecurrent[i] = (n == 0 && (!perLayerFF || ff[i] == 0)) || arch == "falcon-h1"
			f.KVHeads = max(f.KVHeads, f.LayerKVHeads[i])
		}
		conv, inner, state, groups := uint64(get("ssm.conv_kernel")), uint64(get("ssm.inner_size")), uint64(get("ssm.state_size")), uint64(get("ssm.group_count"))
		switch l := uint64(get("shortconv.l_cache")); {
		case l > 1: // LFM2: the convolution's last l-1 inputs
			f.RecurrentBytes = 4 * (l - 1) * uint64(f.Embd)
		case conv > 0:
			f.RecurrentBytes = 4 * ((conv-1)*(inner+2*groups*state) + state*inner)
		}
	}
	f.Experts, f.ExpertsUsed = get("expert_count"), get("expert_used_count")
	if f.Heads > 0 {
		f.HeadDim = f.Embd / f.Heads
	}
	if k := get("attention.key_length"); k > 0 {
		f.HeadDim = k
	}
	f.ValueDim = get("attention.value_length")
	f.LayerBytes = make([]uint64, f.Layers)
	f.TiedOutput = true
	for _, file := range files {
		for _, t := range file.Tensors {
			f.Params += t.Elements()
			f.WeightBytes += t.Size
			switch {
			case strings.HasPrefix(t.Name, "blk."):
				n, _, _ := strings.Cut(strings.TrimPrefix(t.Name, "blk."), ".")
				if i, err := strconv.Atoi(n); err == nil && i >= 0 && i < f.Layers {
					f.LayerBytes[i] += t.Size
					if strings.HasSuffix(t.Name, "_exps.weight") {
						f.ExpertBytes += t.Size
					}
				}
			case t.Name == "token_embd.weight":
				f.EmbdBytes = t.Size
				if len(t.Shape) >= 2 && t.Shape[1] > 0 {
					f.Vocab = int(t.Shape[1])
					f.EmbdRow = t.Size / t.Shape[1]
				}
			case strings.HasPrefix(t.Name, "output"):
				f.OutputBytes += t.Size
				if t.Name == "output.weight" {
					f.TiedOutput = false
				}
			}
		}
	}
	return f, nil
}

// splitPrefix returns PREFIX of a path PREFIX-00001-of-NNNNN.gguf.
func splitPrefix(path string, n int) (string, bool) {
	suffix := fmt.Sprintf("-00001-of-%05d.gguf", n)
	if !strings.HasSuffix(path, suffix) {
		return "", false
	}
	return strings.TrimSuffix(path, suffix), filepath.Base(path) != suffix
}

// FactsFromShape estimates the facts of the model synth would make of shape
// s in type quant (see synth.Shape.WeightBytes; exact for single-type files,
// approximate for k-quant mixes), without writing it.
func FactsFromShape(s synth.Shape, quant string) (Facts, error) {
	if err := s.Validate(); err != nil {
		return Facts{}, err
	}
	total, err := s.WeightBytes(quant)
	if err != nil {
		return Facts{}, err
	}
	params := s.Params()
	b := s.Breakdown()
	scale := float64(total) / float64(params) // bytes per weight
	kvHeads, k, v := s.KVDims()
	f := Facts{
		Params: params, WeightBytes: total, TiedOutput: s.TiedEmbeddings,
		Layers: s.Layers, Embd: s.Embd, FF: s.FF, Heads: s.Heads, KVHeads: kvHeads,
		HeadDim: k, ValueDim: v, Vocab: s.Vocab, Experts: s.Experts, ExpertsUsed: s.ExpertsUsed,
		ExpertBytes: uint64(float64(b.Experts) * scale),
	}
	if s.KVLayers() != s.Layers || s.RecurrentBytes() > 0 {
		// A hybrid: KV in its attention layers only, state in its Mamba-2
		// or convolution layers only (Nemotron-H's MLP layers keep
		// neither; Falcon-H1's layers keep both).
		f.LayerKVHeads, f.LayerRecurrent, f.RecurrentBytes = s.LayerKVHeads(), s.LayerRecurrent(), s.RecurrentBytes()
	}
	f.EmbdBytes = uint64(float64(b.Embd) * scale)
	f.EmbdRow = f.EmbdBytes / uint64(s.Vocab)
	f.OutputBytes = uint64(float64(b.Output) * scale)
	f.LayerBytes = make([]uint64, s.Layers)
	for i, n := range b.Layers {
		f.LayerBytes[i] = uint64(float64(n) * scale)
	}
	return f, nil
}

// BytesPerToken is the bytes of weights read to generate one token: every
// block's tensors (of a mixture of experts, the share of the experts a
// token uses), the output norm and matrix, and one row of the token
// embeddings (the whole matrix when it is also the output).
func (f Facts) BytesPerToken() uint64 {
	var n uint64
	for _, b := range f.LayerBytes {
		n += b
	}
	if f.Experts > 0 && f.ExpertsUsed > 0 && f.ExpertsUsed < f.Experts {
		n -= f.ExpertBytes - uint64(float64(f.ExpertBytes)*float64(f.ExpertsUsed)/float64(f.Experts))
	}
	n += f.OutputBytes
	if f.TiedOutput {
		return n + f.EmbdBytes
	}
	return n + f.EmbdRow
}

// KVBytes is the size of a KV cache of nCtx positions with K and V cache
// types typeK and typeV: n_layer · n_ctx · n_kv_heads · (head_dim · bytes
// per K element + value head size · bytes per V element), summed over the
// layers where they differ, a recurrent layer counting its state for one
// sequence.
func (f Facts) KVBytes(nCtx int, typeK, typeV string) uint64 {
	bk, err1 := cacheTypeBytes(typeK)
	bv, err2 := cacheTypeBytes(typeV)
	if err1 != nil || err2 != nil {
		bk, bv = 2, 2
	}
	vd := f.ValueDim
	if vd == 0 {
		vd = f.HeadDim
	}
	if f.LayerKVHeads == nil {
		return uint64(float64(f.Layers) * float64(nCtx) * float64(f.KVHeads) * (float64(f.HeadDim)*bk + float64(vd)*bv))
	}
	var n uint64
	for i, heads := range f.LayerKVHeads {
		if i < len(f.LayerRecurrent) && f.LayerRecurrent[i] {
			n += f.RecurrentBytes // beside a KV cache in Falcon-H1's layers
		}
		n += uint64(float64(nCtx) * float64(heads) * (float64(f.HeadDim)*bk + float64(vd)*bv))
	}
	return n
}

// cacheTypeBytes is the bytes per element of a KV cache type.
func cacheTypeBytes(name string) (float64, error) {
	switch strings.ToLower(name) {
	case "f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1":
	default:
		return 0, fmt.Errorf("bench: cache type %q is not one of f32, f16, bf16, q8_0, q4_0, q4_1, iq4_nl, q5_0, q5_1", name)
	}
	t, err := gguf.ParseType(name)
	if err != nil {
		return 0, fmt.Errorf("bench: cache type %q: %w", name, err)
	}
	return float64(t.TypeSize()) / float64(t.BlockSize()), nil
}
