package convert

import (
	"fmt"

	"github.com/llm-go/llm/loader/gguf"
	"github.com/llm-go/llm/loader/safetensors"
)

// ERNIE 4.5 (Ernie4_5ForCausalLM, ERNIE-4.5-0.3B) → GGUF arch "ernie4_5":
// Llama's blocks whose rope turns interleaved pairs, so q and k are written
// as they are. ERNIE 4.5 MoE (Ernie4_5_MoeForCausalLM, ERNIE-4.5-21B-A3B
// and 300B-A47B) → "ernie4_5-moe": the same attention, a dense MLP in the
// first moe_layer_start_index layers and experts in the others, which are
// a sharedMoE (sharedmoe.go) with a softmax router whose
// moe_statics.e_score_correction_bias ([1, experts]) picks the experts but
// does not weight them, the top moe_k weights renormalised, and
// moe_num_shared_experts shared experts added unweighted (their width
// moe_num_shared_experts × moe_intermediate_size). llama.cpp puts experts
// in every layer from moe_layer_start_index on, so moe_layer_interval must
// be 1 and moe_layer_end_index the last layer. The multi-token-prediction
// tensors (model.mtp_*) are skipped.

// ernieConfig holds config.json's ERNIE 4.5 MoE fields.
type ernieConfig struct {
	NumExperts       *int `json:"moe_num_experts"`
	K                *int `json:"moe_k"`
	NumSharedExperts *int `json:"moe_num_shared_experts"`
	LayerStart       *int `json:"moe_layer_start_index"`
	LayerEnd         *int `json:"moe_layer_end_index"`
	LayerInterval    *int `json:"moe_layer_interval"`
}

// ernieMoEHparams reads and checks an ERNIE 4.5 MoE config.
func (c *hfConfig) ernieMoEHparams(arch archSpec, h *hparams) error {
	e := c.Ernie
	if c.UseBias != nil && *c.UseBias {
		return fmt.Errorf("%w: %s with use_bias true: llama.cpp's %s graph has no MLP biases", ErrUnsupported, arch.hf, arch.gguf)
	}
	for _, f := range []struct {
		name string
		v    *int
	}{{"moe_num_experts", e.NumExperts}, {"moe_k", e.K}, {"moe_num_shared_experts", e.NumSharedExperts}, {"moe_layer_start_index", e.LayerStart}} {
		if f.v == nil {
			return fmt.Errorf("%w: config.json: %s has no %s", ErrMismatch, arch.hf, f.name)
		}
	}
	h.experts, h.expertsUsed, h.expertFFN = *e.NumExperts, *e.K, c.MoE.MoeIntermediateSize
	s := &sharedMoE{dense: *e.LayerStart, shared: *e.NumSharedExperts, norm: true, scoreBias: true, scale: 1}
	switch {
	case h.experts < 2:
		return fmt.Errorf("%w: config.json: moe_num_experts %d: a mixture needs 2 or more", ErrMismatch, h.experts)
	case h.experts > maxExperts:
		return fmt.Errorf("%w: config.json: moe_num_experts %d: llama.cpp runs at most %d experts", ErrUnsupported, h.experts, maxExperts)
	case h.expertsUsed <= 0 || h.expertsUsed > h.experts:
		return fmt.Errorf("%w: config.json: moe_k %d must be in [1, %d]", ErrMismatch, h.expertsUsed, h.experts)
	case h.expertFFN <= 0:
		return fmt.Errorf("%w: config.json: moe_intermediate_size is missing or not positive", ErrMismatch)
	case s.shared < 0:
		return fmt.Errorf("%w: config.json: moe_num_shared_experts %d is negative", ErrMismatch, s.shared)
	case s.dense < 0 || s.dense >= h.layers:
		return fmt.Errorf("%w: config.json: moe_layer_start_index %d must be in [0, %d)", ErrMismatch, s.dense, h.layers)
	case s.dense > 0 && h.ffn <= 0:
		return fmt.Errorf("%w: config.json: intermediate_size is missing or not positive", ErrMismatch)
	case e.LayerInterval != nil && *e.LayerInterval != 1:
		return fmt.Errorf("%w: %s with moe_layer_interval %d: llama.cpp's %s has experts in every layer from moe_layer_start_index on", ErrUnsupported, arch.hf, *e.LayerInterval, arch.gguf)
	case e.LayerEnd != nil && *e.LayerEnd != -1 && *e.LayerEnd != h.layers-1:
		return fmt.Errorf("%w: %s with moe_layer_end_index %d of %d layers: llama.cpp's %s has experts up to the last layer", ErrUnsupported, arch.hf, *e.LayerEnd, h.layers, arch.gguf)
	}
	h.smoe = s
	return nil
}

// ernieMoEKeys writes the experts' metadata llama.cpp's ernie4_5-moe
// reads: the sharedMoE keys, the interleave step (1) and the shared
// experts' total width (none without shared experts).
func ernieMoEKeys(w *gguf.Writer, a string, h hparams) {
	sharedMoEKeys(w, a, h)
	w.Set(a+".interleave_moe_layer_step", gguf.Uint32(1))
	if h.smoe.shared > 0 {
		w.Set(a+".expert_shared_feed_forward_length", gguf.Uint32(uint32(h.smoe.shared*h.expertFFN)))
	}
}

// planErnieMoE maps an ERNIE 4.5 MoE checkpoint's tensors.
func planErnieMoE(st *safetensors.Model, arch archSpec, h hparams) ([]tensorPlan, error) {
	H, hd, E := int64(h.hidden), int64(h.headDim), int64(h.experts)
	Q, KV := int64(h.heads)*hd, int64(h.kvHeads)*hd
	shapes := map[string]struct {
		gguf  string
		shape []int64
	}{
		"input_layernorm.weight":          {"attn_norm.weight", []int64{H}},
		"post_attention_layernorm.weight": {"ffn_norm.weight", []int64{H}},
		"self_attn.q_proj.weight":         {"attn_q.weight", []int64{Q, H}},
		"self_attn.k_proj.weight":         {"attn_k.weight", []int64{KV, H}},
		"self_attn.v_proj.weight":         {"attn_v.weight", []int64{KV, H}},
		"self_attn.o_proj.weight":         {"attn_output.weight", []int64{H, Q}},
	}
	attn := func(n int, suffix string, t safetensors.TensorInfo, add addFunc) (bool, error) {
		if suffix == "mlp.moe_statics.e_score_correction_bias" {
			if n < h.smoe.dense {
				return true, fmt.Errorf("%w tensor %q in a %s checkpoint: a router bias in dense layer %d", ErrUnsupported, t.Name, arch.hf, n)
			}
			return true, add(tensorPlan{ggufName: fmt.Sprintf("blk.%d.exp_probs_b.bias", n), layer: n, shape: []int64{E}}, t, []int64{1, E})
		}
		s, ok := shapes[suffix]
		if !ok {
			return false, nil
		}
		return true, add(tensorPlan{ggufName: fmt.Sprintf("blk.%d.%s", n, s.gguf), layer: n}, t, s.shape)
	}
	return planSharedMoEModel(st, arch, h, attn, []string{"attn_norm", "ffn_norm", "attn_q", "attn_k", "attn_v", "attn_output"})
}
