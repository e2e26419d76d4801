package convert

import (
	"fmt"
	"math"

	"github.com/llm-go/llm/loader/gguf"
	"github.com/llm-go/llm/loader/safetensors"
)

// DeepSeek V2 and V3 (DeepseekV2ForCausalLM: DeepSeek-V2, V2-Lite, V2.5;
// DeepseekV3ForCausalLM: DeepSeek-V3, R1, V3.1; Kimi K2 and Moonlight
// ship tiktoken tokenizers, which are not converted) → GGUF arch
// "deepseek2", as convert_hf_to_gguf.py writes it:
//
//   - Multi-head latent attention. The query is q_proj, or (with
//     q_lora_rank) q_a_proj, its RMS norm and q_b_proj; kv_a_proj_with_mqa
//     gives the compressed KV (kv_lora_rank, RMS-normed by
//     kv_a_layernorm) and one rotary key shared by the heads
//     (qk_rope_head_dim), rotated in adjacent pairs as llama.cpp's "norm"
//     rope does (rope_interleave, which every release sets); kv_b_proj is
//     split per head into attn_k_b (its key rows, transposed: [heads,
//     kv_lora_rank, qk_nope_head_dim]) and attn_v_b ([heads, v_head_dim,
//     kv_lora_rank]), the layout llama.cpp's absorbed MLA multiplies with.
//     The KV cache holds one head of kv_lora_rank + qk_rope_head_dim
//     (attention.key_length, value_length kv_lora_rank), the per-head
//     sizes going to key_length_mla and value_length_mla.
//   - The MLP is a sharedMoE (sharedmoe.go): leading dense layers, then
//     routed and shared experts, softmax (V2) or sigmoid (V3) routing.
//   - Yarn: llama.cpp scales cos and sin by 1 and the attention scores by
//     get_mscale(factor, mscale_all_dim)², as DeepSeek does when mscale
//     equals mscale_all_dim (every release); other yarn magnitudes, and
//     yarn without mscale_all_dim, are refused. mscale_all_dim is written
//     ×0.1 as yarn_log_multiplier, the scale llama.cpp divides out.
//
// llama.cpp decides between q_proj and the q_a/q_b pair by the layer
// count alone (26 or 27 layers: q_proj, as DeepSeek-V2-Lite), so a
// checkpoint whose query does not match its layer count is refused.

// deepseekConfig holds config.json's DeepSeek fields.
type deepseekConfig struct {
	QLoraRank           *int     `json:"q_lora_rank"`
	KVLoraRank          int      `json:"kv_lora_rank"`
	QKNopeHeadDim       int      `json:"qk_nope_head_dim"`
	QKRopeHeadDim       int      `json:"qk_rope_head_dim"`
	VHeadDim            int      `json:"v_head_dim"`
	NRoutedExperts      int      `json:"n_routed_experts"`
	NSharedExperts      *int     `json:"n_shared_experts"`
	FirstKDenseReplace  int      `json:"first_k_dense_replace"`
	MoeLayerFreq        *int     `json:"moe_layer_freq"`
	RoutedScalingFactor *float64 `json:"routed_scaling_factor"`
	ScoringFunc         string   `json:"scoring_func"`
	TopkMethod          string   `json:"topk_method"`
	NGroup              *int     `json:"n_group"`
	TopkGroup           *int     `json:"topk_group"`
	RopeInterleave      *bool    `json:"rope_interleave"`
	NextN               int      `json:"num_nextn_predict_layers"`
	AttentionBias       bool     `json:"attention_bias"`
}

// deepseekHparams are the validated sizes of DeepSeek's multi-head
// latent attention; its MLP is a sharedMoE.
type deepseekHparams struct {
	qLora, kvLora, nope, rope, vHead int
}

// deepseekLite reports whether llama.cpp's deepseek2 graph takes a model
// of this many layers for one with q_proj (no q_lora_rank).
func deepseekLite(layers int) bool { return layers == 26 || layers == 27 }

// deepseekHparams reads and checks a DeepSeek config; h has the generic
// fields.
func (c *hfConfig) deepseekHparams(arch archSpec, h *hparams) error {
	d := c.DeepSeek
	ds := &deepseekHparams{kvLora: d.KVLoraRank, nope: d.QKNopeHeadDim, rope: d.QKRopeHeadDim, vHead: d.VHeadDim}
	var err error
	for _, f := range []struct {
		name string
		v    int
	}{{"kv_lora_rank", ds.kvLora}, {"qk_nope_head_dim", ds.nope}, {"qk_rope_head_dim", ds.rope}, {"v_head_dim", ds.vHead}} {
		if f.v <= 0 {
			return fmt.Errorf("%w: config.json: %s is missing or not positive", ErrMismatch, f.name)
		}
	}
	if ds.rope%2 != 0 {
		return fmt.Errorf("%w: config.json: qk_rope_head_dim %d is odd", ErrMismatch, ds.rope)
	}
	if d.QLoraRank != nil {
		ds.qLora = *d.QLoraRank
	}
	switch lite := deepseekLite(h.layers); {
	case ds.qLora < 0:
		return fmt.Errorf("%w: config.json: q_lora_rank %d is negative", ErrMismatch, ds.qLora)
	case ds.qLora == 0 && !lite:
		return fmt.Errorf("%w: %s without q_lora_rank and with %d layers: llama.cpp's deepseek2 graph reads q_proj only for 26 or 27 layers (DeepSeek-V2-Lite)", ErrUnsupported, arch.hf, h.layers)
	case ds.qLora > 0 && lite:
		return fmt.Errorf("%w: %s with q_lora_rank and %d layers: llama.cpp's deepseek2 graph reads q_proj, not q_a_proj and q_b_proj, for 26 or 27 layers", ErrUnsupported, arch.hf, h.layers)
	}
	if d.RopeInterleave != nil && !*d.RopeInterleave {
		return fmt.Errorf("%w: %s with rope_interleave false (llama.cpp's deepseek2 graph rotates adjacent pairs)", ErrUnsupported, arch.hf)
	}
	if d.AttentionBias {
		return fmt.Errorf("%w: %s with attention_bias true (llama.cpp's deepseek2 graph has no attention biases)", ErrUnsupported, arch.hf)
	}
	if h.smoe, err = c.sharedMoEHparams(arch, h); err != nil {
		return err
	}

	// Rope: llama.cpp's deepseek2 yarn (see above).
	switch h.rope.kind {
	case ropeNone:
	case ropeYarn:
		params, err := c.ropeSource()
		if err != nil {
			return err
		}
		if params.MscaleAllDim == nil || !(*params.MscaleAllDim > 0) {
			return fmt.Errorf("%w: %s with yarn rope scaling but no mscale_all_dim: llama.cpp's deepseek2 graph scales the attention by get_mscale(factor, mscale_all_dim)², which DeepSeek does only with mscale_all_dim", ErrUnsupported, arch.hf)
		}
		if math.Abs(h.rope.yarnAttn-1) > 1e-6 {
			return fmt.Errorf("%w: %s with yarn whose cos and sin magnitude is %v (mscale %v, mscale_all_dim %v): llama.cpp's deepseek2 graph uses 1, as when mscale equals mscale_all_dim",
				ErrUnsupported, arch.hf, h.rope.yarnAttn, deref(params.Mscale), *params.MscaleAllDim)
		}
		logMul := 0.1 * *params.MscaleAllDim
		h.rope.logMul, h.rope.fixedAttn = &logMul, true
	default:
		return fmt.Errorf("%w rope scaling %q for %s: llama.cpp's deepseek2 graph scales the attention for yarn only", ErrUnsupported, h.rope.kind, arch.hf)
	}
	h.headDim, h.ropeDim, h.kvHeads = ds.nope+ds.rope, ds.rope, 1
	h.ds = ds
	return nil
}

// deref returns *p, or 0 for nil.
func deref(p *float64) float64 {
	if p == nil {
		return 0
	}
	return *p
}

// deepseekKeys writes the deepseek2 metadata.
func deepseekKeys(w *gguf.Writer, a string, h hparams) {
	ds := h.ds
	u := func(k string, v int) { w.Set(a+"."+k, gguf.Uint32(uint32(v))) }
	u("attention.head_count_kv", 1)
	u("attention.key_length", ds.kvLora+ds.rope)
	u("attention.value_length", ds.kvLora)
	u("attention.key_length_mla", ds.nope+ds.rope)
	u("attention.value_length_mla", ds.vHead)
	if ds.qLora > 0 {
		u("attention.q_lora_rank", ds.qLora)
	}
	u("attention.kv_lora_rank", ds.kvLora)
	sharedMoEKeys(w, a, h)
}

// planDeepSeek2 maps a DeepSeek checkpoint's tensors to deepseek2's.
func planDeepSeek2(st *safetensors.Model, arch archSpec, h hparams) ([]tensorPlan, error) {
	ds := h.ds
	H, heads := int64(h.hidden), int64(h.heads)
	qk, nope, vh, kvl, rope := int64(ds.nope+ds.rope), int64(ds.nope), int64(ds.vHead), int64(ds.kvLora), int64(ds.rope)
	attn := func(n int, suffix string, t safetensors.TensorInfo, add addFunc) (bool, error) {
		blk := func(g string) tensorPlan { return tensorPlan{ggufName: fmt.Sprintf("blk.%d.%s", n, g), layer: n} }
		refuse := func(why string) (bool, error) {
			return true, fmt.Errorf("%w tensor %q in a %s checkpoint: %s", ErrUnsupported, t.Name, arch.hf, why)
		}
		switch suffix {
		case "input_layernorm.weight":
			return true, add(blk("attn_norm.weight"), t, []int64{H})
		case "post_attention_layernorm.weight":
			return true, add(blk("ffn_norm.weight"), t, []int64{H})
		case "self_attn.q_proj.weight":
			if ds.qLora > 0 {
				return refuse("q_proj with q_lora_rank set")
			}
			return true, add(blk("attn_q.weight"), t, []int64{heads * qk, H})
		case "self_attn.q_a_proj.weight", "self_attn.q_a_layernorm.weight", "self_attn.q_b_proj.weight":
			if ds.qLora == 0 {
				return refuse("a q_lora_rank projection without q_lora_rank")
			}
			q := int64(ds.qLora)
			switch suffix {
			case "self_attn.q_a_proj.weight":
				return true, add(blk("attn_q_a.weight"), t, []int64{q, H})
			case "self_attn.q_a_layernorm.weight":
				return true, add(blk("attn_q_a_norm.weight"), t, []int64{q})
			}
			return true, add(blk("attn_q_b.weight"), t, []int64{heads * qk, q})
		case "self_attn.kv_a_proj_with_mqa.weight":
			return true, add(blk("attn_kv_a_mqa.weight"), t, []int64{kvl + rope, H})
		case "self_attn.kv_a_layernorm.weight":
			return true, add(blk("attn_kv_a_norm.weight"), t, []int64{kvl})
		case "self_attn.kv_b_proj.weight":
			want := []int64{heads * (nope + vh), kvl}
			name := t.Name
			k := blk("attn_k_b.weight")
			k.shape, k.derive = []int64{heads, kvl, nope}, func(tw *tensorWriter) ([]float32, error) {
				return splitKVB(tw, name, int(heads), int(nope), int(vh), int(kvl), true)
			}
			v := blk("attn_v_b.weight")
			v.shape, v.derive = []int64{heads, vh, kvl}, func(tw *tensorWriter) ([]float32, error) {
				return splitKVB(tw, name, int(heads), int(nope), int(vh), int(kvl), false)
			}
			if err := add(k, t, want); err != nil {
				return true, err
			}
			return true, add(v, t, want)
		case "self_attn.o_proj.weight":
			return true, add(blk("attn_output.weight"), t, []int64{H, heads * vh})
		}
		return false, nil
	}
	required := []string{"attn_norm", "attn_kv_a_mqa", "attn_kv_a_norm", "attn_k_b", "attn_v_b", "attn_output", "ffn_norm"}
	if ds.qLora > 0 {
		required = append(required, "attn_q_a", "attn_q_a_norm", "attn_q_b")
	} else {
		required = append(required, "attn_q")
	}
	return planSharedMoEModel(st, arch, h, attn, required)
}

// splitKVB reads kv_b_proj ([heads·(nope+v), kvLora]: per head its key
// rows, then its value rows) and returns the keys transposed per head,
// [heads, kvLora, nope] (k), or the values, [heads, v, kvLora].
func splitKVB(tw *tensorWriter, name string, heads, nope, v, kvLora int, k bool) ([]float32, error) {
	src, err := loadFloat32s(tw.st, name, tw.fp8Block)
	if err != nil {
		return nil, err
	}
	if len(src) != heads*(nope+v)*kvLora {
		return nil, fmt.Errorf("%w: tensor %q has %d values, not %d", ErrMismatch, name, len(src), heads*(nope+v)*kvLora)
	}
	if !k {
		out := make([]float32, 0, heads*v*kvLora)
		for hd := range heads {
			base := (hd*(nope+v) + nope) * kvLora
			out = append(out, src[base:base+v*kvLora]...)
		}
		return out, nil
	}
	out := make([]float32, heads*kvLora*nope)
	for hd := range heads {
		for c := range nope {
			row := src[(hd*(nope+v)+c)*kvLora:][:kvLora]
			for r, x := range row {
				out[(hd*kvLora+r)*nope+c] = x
			}
		}
	}
	return out, nil
}
