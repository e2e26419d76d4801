package convert

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/llm-go/llm/loader/safetensors"
)

// Bamba (BambaForCausalLM: IBM's Bamba-9B) → GGUF arch "granitehybrid", as
// convert_hf_to_gguf.py writes it: Mamba-2 layers with attention in the
// layers attn_layer_indices lists, every layer with a gated MLP
// (feed_forward), no multipliers. Its Mamba-2 mixers are Granite 4.0's
// (granite4.go: mamba_* keys of the same names and defaults), with one
// group (transformers normalises the gated output whole, llama.cpp per
// group). The attention rotates half of each head (partial_rotary_factor
// 0.5 unless config.json says otherwise; rope scaling is refused): the q/k
// rows of the rotated part go to llama.cpp's adjacent-pair layout, the
// rest stays in place.
// (convert_hf_to_gguf.py permutes whole heads, which pairs different
// dimensions than transformers rotates.)

// bambaConfig holds config.json's Bamba fields.
type bambaConfig struct {
	AttnLayers json.RawMessage `json:"attn_layer_indices"`
	AttnRotary *int            `json:"attn_rotary_emb"`
}

// bambaHparams reads and checks a Bamba config.
func (c *hfConfig) bambaHparams(arch archSpec, h *hparams) error {
	if c.bambaErr != nil {
		return fmt.Errorf("convert: config.json: %w", c.bambaErr)
	}
	bc := c.Bamba
	g := &graniteHybrid{attn: make([]bool, h.layers), rope: true, mamba: true}
	var idx []int
	if !isNull(bc.AttnLayers) {
		if err := json.Unmarshal(bc.AttnLayers, &idx); err != nil {
			return fmt.Errorf("%w: config.json: attn_layer_indices %s: want a list of layer numbers", ErrMismatch, bc.AttnLayers)
		}
	}
	for _, i := range idx {
		if i < 0 || i >= h.layers || g.attn[i] {
			return fmt.Errorf("%w: config.json: attn_layer_indices %v: want distinct layers below %d", ErrMismatch, idx, h.layers)
		}
		g.attn[i] = true
	}
	if len(idx) == h.layers {
		return fmt.Errorf("%w: %s with attention in every layer: a Bamba without Mamba-2 layers is not converted", ErrUnsupported, arch.hf)
	}
	if gc := c.GraniteH; gc.AttentionBias != nil && *gc.AttentionBias {
		return fmt.Errorf("%w: %s with attention_bias true: llama.cpp's %s adds no attention biases", ErrUnsupported, arch.hf, arch.gguf)
	}
	if c.MLPBias != nil && *c.MLPBias {
		return fmt.Errorf("%w: %s with mlp_bias true: llama.cpp's %s adds no MLP biases", ErrUnsupported, arch.hf, arch.gguf)
	}
	// attn_rotary_emb, which transformers does not read, must agree with
	// partial_rotary_factor (bambaDefaults).
	switch {
	case h.rope.kind != ropeNone:
		return fmt.Errorf("%w: %s with rope scaling %q: not converted", ErrUnsupported, arch.hf, h.rope.kind)
	case bc.AttnRotary != nil && *bc.AttnRotary != h.ropeDim:
		return fmt.Errorf("%w: config.json: attn_rotary_emb %d: partial_rotary_factor rotates %d of each head of %d", ErrMismatch, *bc.AttnRotary, h.ropeDim, h.headDim)
	}
	h.gh = g
	// BambaRMSNormGated normalises the gated output over the whole inner
	// size, llama.cpp per group: one group only.
	return c.graniteMamba2(arch, h, g, false)
}

// bambaDefaults fills in what BambaConfig assumes when config.json leaves
// it out: half of each head rotated (BambaConfig sets
// partial_rotary_factor 0.5; transformers 5 forces it, 4 lets config.json
// give another), 8 KV heads, 262144 positions.
func (c *hfConfig) bambaDefaults() {
	if c.PartialRotaryFactor == nil {
		if p, err := parseRopeJSON(c.RopeParameters, "rope_parameters"); err == nil && (p == nil || p.PartialRotaryFactor == nil) {
			half := 0.5
			c.PartialRotaryFactor = &half
		}
	}
	if c.NumKeyValueHeads == 0 {
		c.NumKeyValueHeads = 8
	}
	if c.MaxPositionEmbeddings == 0 {
		c.MaxPositionEmbeddings = 262144
	}
}

// bambaNorm is Bamba's final norm.
var bambaNorm = []string{"model.final_layernorm.weight"}

// planBamba maps a Bamba checkpoint's tensors.
func planBamba(st *safetensors.Model, arch archSpec, h hparams) ([]tensorPlan, error) {
	g := h.gh
	H, F := int64(h.hidden), int64(h.ffn)
	Q, KV := int64(h.heads*h.headDim), int64(h.kvHeads*h.headDim)
	pl := newPlanner(st, h)
	add := pl.add
	layer := func(n int, suffix string, t safetensors.TensorInfo) error {
		blk := func(name string) tensorPlan { return tensorPlan{ggufName: fmt.Sprintf("blk.%d.%s", n, name), layer: n} }
		refuse := func(why string) error {
			return fmt.Errorf("%w tensor %q in a %s checkpoint: %s", ErrUnsupported, t.Name, arch.hf, why)
		}
		attn := g.attn[n]
		if rest, ok := strings.CutPrefix(suffix, "mamba."); ok {
			if attn {
				return refuse(fmt.Sprintf("Mamba-2 weights in layer %d, an attention layer in attn_layer_indices", n))
			}
			if ok, err := mamba2Tensor(g, blk, add, rest, t, H); ok || err != nil {
				return err
			}
		}
		if strings.HasPrefix(suffix, "self_attn.") && !attn {
			return refuse(fmt.Sprintf("attention weights in layer %d, which attn_layer_indices does not list", n))
		}
		switch suffix {
		case "input_layernorm.weight":
			return add(blk("attn_norm.weight"), t, []int64{H})
		case "pre_ff_layernorm.weight":
			return add(blk("ffn_norm.weight"), t, []int64{H})
		case "self_attn.q_proj.weight":
			p := blk("attn_q.weight")
			p.permute, p.permuteRot = h.heads, h.ropeDim
			return add(p, t, []int64{Q, H})
		case "self_attn.k_proj.weight":
			p := blk("attn_k.weight")
			p.permute, p.permuteRot = h.kvHeads, h.ropeDim
			return add(p, t, []int64{KV, H})
		case "self_attn.v_proj.weight":
			return add(blk("attn_v.weight"), t, []int64{KV, H})
		case "self_attn.o_proj.weight":
			return add(blk("attn_output.weight"), t, []int64{H, Q})
		case "feed_forward.gate_proj.weight":
			return add(blk("ffn_gate.weight"), t, []int64{F, H})
		case "feed_forward.up_proj.weight":
			return add(blk("ffn_up.weight"), t, []int64{F, H})
		case "feed_forward.down_proj.weight":
			return add(blk("ffn_down.weight"), t, []int64{H, F})
		}
		return refuse("not a tensor of the model")
	}
	if err := pl.walk(arch, layerRE, llamaEmb, bambaNorm, nil, layer); err != nil {
		return nil, err
	}
	required := []string{"token_embd.weight", "output_norm.weight"}
	if !h.tied {
		required = append(required, "output.weight")
	}
	for n, attn := range g.attn {
		names := []string{"attn_norm.weight", "ffn_norm.weight", "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight"}
		if attn {
			names = append(names, "attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight")
		} else {
			pl.put(g.zeroConvBias(n)...)
			names = append(names, mamba2Required...)
		}
		for _, s := range names {
			required = append(required, fmt.Sprintf("blk.%d.%s", n, s))
		}
	}
	return pl.finish(required)
}
