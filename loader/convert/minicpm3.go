package convert

import (
	"fmt"
	"math"
	"strconv"

	"github.com/llm-go/llm/loader/gguf"
	"github.com/llm-go/llm/loader/safetensors"
)

// MiniCPM3ForCausalLM (OpenBMB's MiniCPM3-4B) → GGUF arch "minicpm3":
// DeepSeek V2's multi-head latent attention (q_a_proj, q_a_layernorm,
// q_b_proj; kv_a_proj_with_mqa holding the compressed keys and values and
// one shared rope key, kv_a_layernorm, kv_b_proj kept whole) with Llama's
// dense MLP and MiniCPM's µP scales. MiniCPM3's rope rotates halves of the
// last qk_rope_head_dim dimensions of each query head and of the shared
// key, as llama.cpp's minicpm3 (NEOX) does, so nothing is permuted; each
// value head has hidden_size / num_attention_heads dimensions (MiniCPM3's
// code reads no v_head_dim). llama.cpp's graph fixes the scales at
// MiniCPM3-4B's (scale_emb 12, scale_depth 1.4, dim_model_base 256):
// other values are refused. MiniCPM3's code normalises q_a and kv_a with
// epsilon 1e-6 (its RMS norm's default) whatever rms_norm_eps says, and
// llama.cpp with rms_norm_eps: with another rms_norm_eps the two differ by
// under half the epsilons' difference, relative, on those vectors (whose
// mean squares are of order 1). Its longrope is MiniCPM's (minicpm.go).

// minicpm3Dims are MiniCPM3's attention sizes.
type minicpm3Dims struct {
	qLora, kvLora, nope, rope, vHead int
}

// minicpm3Defaults sets what the generic path reads: qk_rope_head_dim as
// the head size, so that the rotated dimensions (and longrope's factors)
// are sized by it until minicpm3Hparams sets the real sizes; the head tied
// when tie_word_embeddings is absent (both MiniCPM3 config classes' default).
func (c *hfConfig) minicpm3Defaults() {
	if c.DeepSeek.QKRopeHeadDim > 0 {
		c.HeadDim = c.DeepSeek.QKRopeHeadDim
	}
	if c.TieWordEmbeddings == nil {
		tied := true
		c.TieWordEmbeddings = &tied
	}
}

// minicpm3Hparams reads and checks a MiniCPM3 config; h has the generic
// fields.
func (c *hfConfig) minicpm3Hparams(arch archSpec, h *hparams) error {
	d := c.DeepSeek
	m := &minicpm3Dims{kvLora: d.KVLoraRank, nope: d.QKNopeHeadDim, rope: d.QKRopeHeadDim}
	if d.QLoraRank == nil || *d.QLoraRank == 0 {
		return fmt.Errorf("%w: %s without q_lora_rank (a dense q_proj): llama.cpp's minicpm3 reads q_a_proj and q_b_proj", ErrUnsupported, arch.hf)
	}
	m.qLora = *d.QLoraRank
	for _, f := range []struct {
		name string
		v    int
	}{{"q_lora_rank", m.qLora}, {"kv_lora_rank", m.kvLora}, {"qk_nope_head_dim", m.nope}, {"qk_rope_head_dim", m.rope}} {
		if f.v <= 0 {
			return fmt.Errorf("%w: config.json: %s is missing or not positive (llama.cpp's minicpm3 needs it)", ErrMismatch, f.name)
		}
	}
	if h.hidden%h.heads != 0 {
		return fmt.Errorf("%w: config.json: hidden_size %d is not a multiple of num_attention_heads %d", ErrMismatch, h.hidden, h.heads)
	}
	m.vHead = h.hidden / h.heads
	if d.VHeadDim > 0 && d.VHeadDim != m.vHead {
		return fmt.Errorf("%w: %s with v_head_dim %d: MiniCPM3's own code ignores it (values of hidden_size/num_attention_heads, %d), transformers' MiniCPM3 reads it", ErrUnsupported, arch.hf, d.VHeadDim, m.vHead)
	}
	if d.AttentionBias {
		return fmt.Errorf("%w: %s with attention_bias true: llama.cpp's minicpm3 has no attention biases", ErrUnsupported, arch.hf)
	}
	if c.miniCPMErr != nil {
		return fmt.Errorf("convert: config.json: %w", c.miniCPMErr)
	}
	mc := c.MiniCPM
	scales := mc.scales()
	for i, f := range []struct {
		name string
		set  bool
		want float64
	}{{"scale_emb", mc.ScaleEmb != nil, 12}, {"scale_depth", mc.ScaleDepth != nil, 1.4}, {"dim_model_base", mc.DimModelBase != nil, 256}} {
		if math.Abs(scales[i]-f.want) > 1e-9 {
			got := fmt.Sprintf("%s %v", f.name, scales[i])
			if !f.set {
				got = "no " + f.name + " (1 in MiniCPM3's own code, MiniCPM3-4B's in transformers')"
			}
			return fmt.Errorf("%w: %s with %s: llama.cpp's minicpm3 graph fixes it at %v (MiniCPM3-4B's)", ErrUnsupported, arch.hf, got, f.want)
		}
	}
	switch h.rope.kind {
	case ropeNone, ropeLinear:
	case ropeLongrope:
		if err := miniCPMLongrope(arch, *h); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%w rope scaling %q for %s: linear and longrope are converted", ErrUnsupported, h.rope.kind, arch.hf)
	}
	h.headDim, h.ropeDim, h.kvHeads = m.nope+m.rope, m.rope, h.heads
	h.mla3 = m
	return nil
}

// minicpm3Keys writes minicpm3's attention sizes.
func minicpm3Keys(w *gguf.Writer, a string, h hparams) {
	m := h.mla3
	u := func(k string, v int) { w.Set(a+"."+k, gguf.Uint32(uint32(v))) }
	u("attention.head_count_kv", h.heads)
	u("attention.key_length", m.nope+m.rope)
	u("attention.value_length", m.vHead)
	u("attention.q_lora_rank", m.qLora)
	u("attention.kv_lora_rank", m.kvLora)
}

// planMiniCPM3 maps a MiniCPM3 checkpoint's tensors.
func planMiniCPM3(st *safetensors.Model, arch archSpec, h hparams) ([]tensorPlan, error) {
	m := h.mla3
	H, heads, F := int64(h.hidden), int64(h.heads), int64(h.ffn)
	q, kv, qk, nope, vh, rope := int64(m.qLora), int64(m.kvLora), int64(m.nope+m.rope), int64(m.nope), int64(m.vHead), int64(m.rope)
	names := map[string]bertTensor{
		"input_layernorm.weight":              {"attn_norm.weight", []int64{H}},
		"post_attention_layernorm.weight":     {"ffn_norm.weight", []int64{H}},
		"self_attn.q_a_proj.weight":           {"attn_q_a.weight", []int64{q, H}},
		"self_attn.q_a_layernorm.weight":      {"attn_q_a_norm.weight", []int64{q}},
		"self_attn.q_b_proj.weight":           {"attn_q_b.weight", []int64{heads * qk, q}},
		"self_attn.kv_a_proj_with_mqa.weight": {"attn_kv_a_mqa.weight", []int64{kv + rope, H}},
		"self_attn.kv_a_layernorm.weight":     {"attn_kv_a_norm.weight", []int64{kv}},
		"self_attn.kv_b_proj.weight":          {"attn_kv_b.weight", []int64{heads * (nope + vh), kv}},
		"self_attn.o_proj.weight":             {"attn_output.weight", []int64{H, heads * vh}},
		"mlp.gate_proj.weight":                {"ffn_gate.weight", []int64{F, H}},
		"mlp.up_proj.weight":                  {"ffn_up.weight", []int64{F, H}},
		"mlp.down_proj.weight":                {"ffn_down.weight", []int64{H, F}},
	}
	pl := newPlanner(st, h)
	for _, t := range st.Tensors() {
		if fp8Aux(st, t.Name) || ignoredRE.MatchString(t.Name) || t.Name == "lm_head.weight" && h.tied {
			continue
		}
		if ok, err := pl.outer(t, llamaEmb, llamaNorm); ok || err != nil {
			if err != nil {
				return nil, err
			}
			continue
		}
		lm := layerRE.FindStringSubmatch(t.Name)
		if lm == nil {
			return nil, fmt.Errorf("%w tensor %q in a %s checkpoint", ErrUnsupported, t.Name, arch.hf)
		}
		n, err := strconv.Atoi(lm[1])
		if err != nil || n >= h.layers {
			return nil, fmt.Errorf("%w: tensor %q: layer %s is outside num_hidden_layers %d", ErrMismatch, t.Name, lm[1], h.layers)
		}
		b, ok := names[lm[2]]
		if !ok {
			return nil, fmt.Errorf("%w tensor %q in a %s checkpoint", ErrUnsupported, t.Name, arch.hf)
		}
		if err := pl.add(tensorPlan{ggufName: fmt.Sprintf("blk.%d.%s", n, b.name), layer: n}, t, b.shape); err != nil {
			return nil, err
		}
	}
	required := []string{"token_embd.weight", "output_norm.weight"}
	if !h.tied {
		required = append(required, "output.weight")
	}
	for i := range h.layers {
		for _, b := range names {
			required = append(required, fmt.Sprintf("blk.%d.%s", i, b.name))
		}
	}
	return pl.finish(required)
}
