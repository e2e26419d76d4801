package convert

import (
	"fmt"

	"github.com/llm-go/llm/loader/gguf"
	"github.com/llm-go/llm/loader/safetensors"
)

// DeciLMForCausalLM (NVIDIA's Llama-Nemotron: Llama-3.3-Nemotron-Super-49B
// v1 and v1.5, Llama-3.1-Nemotron-Nano-4B, Llama-3.1-Nemotron-51B;
// model_type "nemotron-nas"; and Deci's DeciLM-7B, whose layers differ in
// their key/value heads only, num_key_value_heads_per_layer) → GGUF arch
// "deci": Llama's blocks pruned layer by layer, as config.json's
// block_configs says. A block's attention
// has its own number of key/value heads (num_attention_heads /
// n_heads_in_group) or is a no-op (no norm, no tensors); its MLP has its
// own width (ffn_mult: 2·ffn_mult·hidden_size/3 rounded up to a multiple
// of 256) or is a no-op. An attention replaced with a linear layer
// (self_attn.linear_attn, Nemotron-51B) is written as the attention's
// output matrix of a layer with heads but no key/value heads, which
// llama.cpp's deci runs as that linear layer. head_count, head_count_kv and feed_forward_length
// are written per layer (0 where a no-op), as llama.cpp's deci reads them.
// q and k are permuted as Llama's, llama3 rope scaling is written as
// rope_freqs.
//
// Refused, as llama.cpp's deci does not run them as DeciLM does: MLPs
// replaced with a linear layer, an MLP no-op after a real attention
// (llama.cpp's graph then drops the attention's output), sliding windows
// and sink tokens, a first layer without attention (llama.cpp sizes every
// head by layer 0's) and a last block without MLP (llama.cpp's graph
// aborts).

// deciBlock is one of block_configs' entries.
type deciBlock struct {
	Attention struct {
		NHeadsInGroup     *int  `json:"n_heads_in_group"`
		NoOp              bool  `json:"no_op"`
		ReplaceWithLinear bool  `json:"replace_with_linear"`
		WindowLength      *int  `json:"window_length"`
		NumSinkTokens     *int  `json:"num_sink_tokens"`
		Unshifted         *bool `json:"unshifted_sink"`
	} `json:"attention"`
	FFN struct {
		FFNMult           *float64 `json:"ffn_mult"`
		NoOp              bool     `json:"no_op"`
		ReplaceWithLinear bool     `json:"replace_with_linear"`
	} `json:"ffn"`
}

// deciConfig holds DeciLMConfig's block_configs (Llama-Nemotron), or
// DeciLM-7B's key/value heads per layer.
type deciConfig struct {
	BlockConfigs []deciBlock `json:"block_configs"`
	KVPerLayer   []int       `json:"num_key_value_heads_per_layer"`
}

// deciLayers are a DeciLM model's per-layer sizes (0: a no-op).
type deciLayers struct {
	heads, kvHeads, ffn []int
}

// deciFFN is DeciLM's MLP width for ffn_mult: 2·ffn_mult·hidden/3,
// truncated, rounded up to a multiple of 256.
func deciFFN(mult float64, hidden int) int {
	n := int(2 * mult * float64(hidden) / 3)
	if r := n % 256; r != 0 {
		n += 256 - r
	}
	return n
}

// deciDefaults reads block_configs and sets the sizes the Llama path
// checks: the widest MLP as intermediate_size, and the heads' count for
// num_key_value_heads (the layers have their own).
func (c *hfConfig) deciDefaults(arch archSpec) error {
	if c.deciErr != nil {
		return fmt.Errorf("convert: config.json: %w", c.deciErr)
	}
	if c.Deci.BlockConfigs == nil && c.Deci.KVPerLayer != nil {
		// DeciLM-7B: Llama's blocks, each with its own key/value heads.
		if len(c.Deci.KVPerLayer) != c.NumHiddenLayers {
			return fmt.Errorf("%w: config.json: num_key_value_heads_per_layer has %d entries for num_hidden_layers %d", ErrMismatch, len(c.Deci.KVPerLayer), c.NumHiddenLayers)
		}
		c.NumKeyValueHeads = c.NumAttentionHeads
		return nil
	}
	if c.Deci.BlockConfigs == nil {
		return fmt.Errorf("%w: config.json: %s with neither block_configs (Llama-Nemotron) nor num_key_value_heads_per_layer (DeciLM-7B)", ErrMismatch, arch.hf)
	}
	if len(c.Deci.BlockConfigs) != c.NumHiddenLayers {
		return fmt.Errorf("%w: config.json: block_configs has %d entries for num_hidden_layers %d", ErrMismatch, len(c.Deci.BlockConfigs), c.NumHiddenLayers)
	}
	c.NumKeyValueHeads = c.NumAttentionHeads
	c.IntermediateSize = 0
	for _, b := range c.Deci.BlockConfigs {
		if m := b.FFN.FFNMult; m != nil && !b.FFN.NoOp && *m > 0 && *m < 1e6 {
			c.IntermediateSize = max(c.IntermediateSize, deciFFN(*m, c.HiddenSize))
		}
	}
	if c.IntermediateSize == 0 {
		return fmt.Errorf("%w: %s whose block_configs have no MLP", ErrUnsupported, arch.hf)
	}
	return nil
}

// deciHparams reads and checks each block's sizes into h.
func (c *hfConfig) deciHparams(arch archSpec, h *hparams) error {
	d := &deciLayers{heads: make([]int, h.layers), kvHeads: make([]int, h.layers), ffn: make([]int, h.layers)}
	if c.Deci.BlockConfigs == nil {
		for i, kv := range c.Deci.KVPerLayer {
			if kv <= 0 || h.heads%kv != 0 {
				return fmt.Errorf("%w: config.json: num_key_value_heads_per_layer[%d] %d does not divide num_attention_heads %d", ErrMismatch, i, kv, h.heads)
			}
			d.heads[i], d.kvHeads[i], d.ffn[i] = h.heads, kv, h.ffn
		}
		h.deci = d
		return nil
	}
	for i, b := range c.Deci.BlockConfigs {
		a, f := b.Attention, b.FFN
		switch {
		case a.WindowLength != nil || a.NumSinkTokens != nil:
			return fmt.Errorf("%w: %s with block_configs[%d].attention's window_length or num_sink_tokens: llama.cpp's deci attends to every position", ErrUnsupported, arch.hf, i)
		case a.NoOp:
		case a.ReplaceWithLinear:
			// One hidden × hidden matrix on the normed input
			// (self_attn.linear_attn), which llama.cpp's deci runs for
			// a layer with heads but no key/value heads.
			d.heads[i] = h.heads
		case a.NHeadsInGroup == nil || *a.NHeadsInGroup <= 0 || h.heads%*a.NHeadsInGroup != 0:
			return fmt.Errorf("%w: config.json: block_configs[%d].attention.n_heads_in_group must divide num_attention_heads %d", ErrMismatch, i, h.heads)
		default:
			d.heads[i], d.kvHeads[i] = h.heads, h.heads / *a.NHeadsInGroup
		}
		switch {
		case f.ReplaceWithLinear:
			return fmt.Errorf("%w: %s with block_configs[%d].ffn.replace_with_linear: llama.cpp's deci has no linear MLP", ErrUnsupported, arch.hf, i)
		case f.NoOp && !a.NoOp:
			return fmt.Errorf("%w: %s with block_configs[%d]: an MLP no-op after attention, whose output llama.cpp's deci then drops", ErrUnsupported, arch.hf, i)
		case f.NoOp:
		case f.FFNMult == nil || !(*f.FFNMult > 0) || *f.FFNMult >= 1e6:
			return fmt.Errorf("%w: config.json: block_configs[%d].ffn.ffn_mult is missing or not a positive number", ErrMismatch, i)
		default:
			d.ffn[i] = deciFFN(*f.FFNMult, h.hidden)
		}
	}
	if d.heads[0] == 0 {
		return fmt.Errorf("%w: %s whose first layer has no attention: llama.cpp's deci sizes the heads by layer 0's", ErrUnsupported, arch.hf)
	}
	if last := h.layers - 1; d.ffn[last] == 0 {
		// llama.cpp's graph picks the rows to output in the last layer,
		// then skips the rest of a block without MLP, leaving them out
		// of the graph: it aborts.
		return fmt.Errorf("%w: %s whose last block has no MLP: llama.cpp's deci aborts on it", ErrUnsupported, arch.hf)
	}
	h.deci = d
	return nil
}

// deciKeys writes the per-layer heads, key/value heads and MLP widths.
func deciKeys(w *gguf.Writer, a string, h hparams) {
	u32 := func(v []int) gguf.Value {
		out := make([]uint32, len(v))
		for i, x := range v {
			out[i] = uint32(x)
		}
		return gguf.Uint32s(out)
	}
	w.Set(a+".attention.head_count", u32(h.deci.heads))
	w.Set(a+".attention.head_count_kv", u32(h.deci.kvHeads))
	w.Set(a+".feed_forward_length", u32(h.deci.ffn))
}

// planDeci maps a DeciLM checkpoint's tensors, each layer's by its sizes.
func planDeci(st *safetensors.Model, arch archSpec, h hparams) ([]tensorPlan, error) {
	d := h.deci
	H, D := int64(h.hidden), int64(h.headDim)
	pl := newPlanner(st, h)
	err := pl.walk(arch, layerRE, llamaEmb, llamaNorm, nil, func(n int, suffix string, t safetensors.TensorInfo) error {
		Q, KV, F := int64(d.heads[n])*D, int64(d.kvHeads[n])*D, int64(d.ffn[n])
		p := tensorPlan{ggufName: fmt.Sprintf("blk.%d.", n), layer: n}
		var want []int64
		attn, mlp := d.kvHeads[n] > 0, d.ffn[n] > 0
		linear := d.heads[n] > 0 && !attn
		switch {
		case suffix == "input_layernorm.weight" && linear:
			p.ggufName, want = p.ggufName+"attn_norm.weight", []int64{H}
		case suffix == "self_attn.linear_attn.weight" && linear:
			p.ggufName, want = p.ggufName+"attn_output.weight", []int64{H, H}
		case suffix == "input_layernorm.weight" && attn:
			p.ggufName, want = p.ggufName+"attn_norm.weight", []int64{H}
		case suffix == "self_attn.q_proj.weight" && attn:
			p.ggufName, want, p.permute = p.ggufName+"attn_q.weight", []int64{Q, H}, d.heads[n]
		case suffix == "self_attn.k_proj.weight" && attn:
			p.ggufName, want, p.permute = p.ggufName+"attn_k.weight", []int64{KV, H}, d.kvHeads[n]
		case suffix == "self_attn.v_proj.weight" && attn:
			p.ggufName, want = p.ggufName+"attn_v.weight", []int64{KV, H}
		case suffix == "self_attn.o_proj.weight" && attn:
			p.ggufName, want = p.ggufName+"attn_output.weight", []int64{H, Q}
		case suffix == "post_attention_layernorm.weight" && mlp:
			p.ggufName, want = p.ggufName+"ffn_norm.weight", []int64{H}
		case suffix == "mlp.gate_proj.weight" && mlp:
			p.ggufName, want = p.ggufName+"ffn_gate.weight", []int64{F, H}
		case suffix == "mlp.up_proj.weight" && mlp:
			p.ggufName, want = p.ggufName+"ffn_up.weight", []int64{F, H}
		case suffix == "mlp.down_proj.weight" && mlp:
			p.ggufName, want = p.ggufName+"ffn_down.weight", []int64{H, F}
		default:
			why := ""
			if !attn || !mlp {
				why = fmt.Sprintf(" (block_configs[%d] makes its attention linear or a no-op, or its MLP a no-op)", n)
			}
			return fmt.Errorf("%w tensor %q in a %s checkpoint%s", ErrUnsupported, t.Name, arch.hf, why)
		}
		return pl.add(p, t, want)
	})
	if err != nil {
		return nil, err
	}
	required := []string{"token_embd.weight", "output_norm.weight"}
	if !h.tied {
		required = append(required, "output.weight")
	}
	for n := range h.layers {
		var per []string
		switch {
		case d.kvHeads[n] > 0:
			per = append(per, "attn_norm", "attn_q", "attn_k", "attn_v", "attn_output")
		case d.heads[n] > 0:
			per = append(per, "attn_norm", "attn_output")
		}
		if d.ffn[n] > 0 {
			per = append(per, "ffn_norm", "ffn_gate", "ffn_up", "ffn_down")
		}
		for _, r := range per {
			required = append(required, fmt.Sprintf("blk.%d.%s.weight", n, r))
		}
	}
	return pl.finish(required)
}
