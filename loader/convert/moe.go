package convert

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/llm-go/llm/loader/gguf"
	"github.com/llm-go/llm/loader/safetensors"
)

// moeSpec names a mixture-of-experts checkpoint's MLP tensors: in each
// layer a router and, per expert, gated-MLP projections, which the GGUF
// stacks into one 3-D tensor per projection (expert first).
type moeSpec struct {
	router  string         // per-layer suffix of the router weight [experts, hidden]
	experts *regexp.Regexp // per-layer suffix of an expert's projection: (expert, name)
	// gate, up and down are the projections' names within an expert.
	gate, up, down string
	// expertFFNKey: the expert width goes to {arch}.expert_feed_forward_length
	// (it differs from the dense intermediate_size).
	expertFFNKey bool
	// norm: llama.cpp's graph renormalises the top-k weights to sum to 1,
	// so config.json's norm_topk_prob must not say otherwise; with
	// normKey, the key is required (transformers' default is false).
	norm, normKey bool
	// shared names a shared expert, which every token runs, weighted by a
	// sigmoid gate (Qwen2-MoE): its projections' per-layer prefix and its
	// gate; "" when there is none.
	shared, sharedGate string
	// fusedGateUp and fusedDown name a layer's fused experts (without
	// ".weight") for archs with archSpec.fusedExperts: every expert's gate
	// and up projections in one tensor, the gate's outputs first, and the
	// down projections in another. fusedOutIn: they are stored [experts,
	// out, in] (GraniteMoE) rather than [experts, in, out] (Qwen3-VL-MoE).
	fusedGateUp, fusedDown string
	fusedOutIn             bool
	// ffnIsExpert: intermediate_size is an expert's width (gpt-oss,
	// MiniMax-M2), written as expert_feed_forward_length too.
	ffnIsExpert bool
	// routerBias names the router's selection bias (exp_probs_b), which
	// picks the experts but does not weight them; "" when there is none.
	// sigmoid: the router scores by sigmoid (expert_gating_func).
	routerBias string
	sigmoid    bool
}

var (
	// Qwen3-MoE (transformers' Qwen3MoeSparseMoeBlock).
	qwenMoE = &moeSpec{router: "mlp.gate.weight", experts: regexp.MustCompile(`^mlp\.experts\.(\d+)\.(\w+_proj\.weight)$`),
		gate: "gate_proj.weight", up: "up_proj.weight", down: "down_proj.weight", expertFFNKey: true, norm: true, normKey: true}
	// Qwen2-MoE (Qwen2MoeSparseMoeBlock): Qwen3-MoE's experts, without
	// renormalised weights, and a shared expert.
	qwen2MoE = &moeSpec{router: "mlp.gate.weight", experts: regexp.MustCompile(`^mlp\.experts\.(\d+)\.(\w+_proj\.weight)$`),
		gate: "gate_proj.weight", up: "up_proj.weight", down: "down_proj.weight", expertFFNKey: true,
		shared: "mlp.shared_expert.", sharedGate: "mlp.shared_expert_gate.weight"}
	// Mixtral (MixtralSparseMoeBlock): w1 is the gate, w3 the up and w2
	// the down projection.
	mixtralMoE = &moeSpec{router: "block_sparse_moe.gate.weight", experts: regexp.MustCompile(`^block_sparse_moe\.experts\.(\d+)\.(w[123]\.weight)$`),
		gate: "w1.weight", up: "w3.weight", down: "w2.weight", norm: true}
	// Qwen3-VL-MoE: Qwen3-MoE's experts, per expert or fused.
	qwenVLMoE = &moeSpec{router: "mlp.gate.weight", experts: regexp.MustCompile(`^mlp\.experts\.(\d+)\.(\w+_proj\.weight)$`),
		gate: "gate_proj.weight", up: "up_proj.weight", down: "down_proj.weight", expertFFNKey: true, norm: true, normKey: true,
		fusedGateUp: "mlp.experts.gate_up_proj", fusedDown: "mlp.experts.down_proj"}
	// GraniteMoE (GraniteMoeMoE): a router whose top-k logits are
	// softmaxed (the renormalised softmax llama.cpp computes), and fused
	// experts: input_linear [experts, 2·ffn, hidden] (gate rows, then up)
	// and output_linear [experts, hidden, ffn]; intermediate_size is an
	// expert's width.
	graniteMoE = &moeSpec{router: "block_sparse_moe.router.layer.weight", norm: true,
		fusedGateUp: "block_sparse_moe.input_linear", fusedDown: "block_sparse_moe.output_linear", fusedOutIn: true}
)

// perExpert matches suffix against spec's per-expert projections: nil,
// or the expert and the projection's name.
func (spec *moeSpec) perExpert(suffix string) []string {
	if spec.experts == nil {
		return nil
	}
	return spec.experts.FindStringSubmatch(suffix)
}

// llama.cpp's expert gating functions (expert_gating_func):
// LLAMA_EXPERT_GATING_FUNC_TYPE_SOFTMAX and _SIGMOID.
const (
	gatingSoftmax = 1
	gatingSigmoid = 2
)

// maxExperts is llama.cpp's LLAMA_MAX_EXPERTS: it aborts loading a model
// with more.
const maxExperts = 512

// moeConfig holds config.json's mixture-of-experts fields.
type moeConfig struct {
	NumExperts          int             `json:"num_experts"`       // Qwen
	NumLocalExperts     int             `json:"num_local_experts"` // Mixtral
	NumExpertsPerTok    int             `json:"num_experts_per_tok"`
	MoeIntermediateSize int             `json:"moe_intermediate_size"`
	SharedExpertSize    int             `json:"shared_expert_intermediate_size"`
	NormTopkProb        *bool           `json:"norm_topk_prob"`
	DecoderSparseStep   *int            `json:"decoder_sparse_step"`
	MLPOnlyLayers       json.RawMessage `json:"mlp_only_layers"`
}

// moeHparams reads and checks the experts of a mixture-of-experts config.
// llama.cpp's qwen3moe and llama (Mixtral) graphs route every layer's MLP
// through the experts, with softmax gating (sigmoid with moeSpec.sigmoid)
// and the top-k weights renormalised to sum to 1 (with moeSpec.norm).
func (c *hfConfig) moeHparams(arch archSpec, h *hparams) error {
	m := c.MoE
	h.experts = max(m.NumExperts, m.NumLocalExperts)
	h.expertsUsed = m.NumExpertsPerTok
	h.expertFFN = h.ffn
	if arch.moe.expertFFNKey && !arch.moe.ffnIsExpert {
		h.expertFFN = m.MoeIntermediateSize
	}
	switch {
	case h.experts <= 1:
		return fmt.Errorf("%w: config.json: %s needs num_experts (or num_local_experts) > 1", ErrMismatch, arch.hf)
	case h.experts > maxExperts:
		return fmt.Errorf("%w: config.json: %d experts: llama.cpp runs at most %d", ErrUnsupported, h.experts, maxExperts)
	case h.expertsUsed <= 0 || h.expertsUsed > h.experts:
		return fmt.Errorf("%w: config.json: num_experts_per_tok %d must be in [1, %d]", ErrMismatch, h.expertsUsed, h.experts)
	case h.expertFFN <= 0:
		return fmt.Errorf("%w: config.json: moe_intermediate_size is missing or not positive", ErrMismatch)
	case arch.moe.norm && m.NormTopkProb != nil && !*m.NormTopkProb:
		return fmt.Errorf("%w: %s with norm_topk_prob false: llama.cpp's %s graph always renormalises the top-%d expert weights", ErrUnsupported, arch.hf, arch.gguf, h.expertsUsed)
	case arch.moe.norm && arch.moe.normKey && m.NormTopkProb == nil:
		return fmt.Errorf("%w: %s with norm_topk_prob missing (transformers' default, false): llama.cpp's %s graph always renormalises the top-%d expert weights", ErrUnsupported, arch.hf, arch.gguf, h.expertsUsed)
	case !arch.moe.norm && m.NormTopkProb != nil && *m.NormTopkProb:
		return fmt.Errorf("%w: %s with norm_topk_prob true: llama.cpp's %s graph never renormalises the expert weights", ErrUnsupported, arch.hf, arch.gguf)
	case arch.moe.shared != "" && m.SharedExpertSize <= 0:
		return fmt.Errorf("%w: config.json: shared_expert_intermediate_size is missing or not positive", ErrMismatch)
	case m.DecoderSparseStep != nil && *m.DecoderSparseStep != 1:
		return fmt.Errorf("%w: %s with decoder_sparse_step %d: llama.cpp's %s graph has experts in every layer", ErrUnsupported, arch.hf, *m.DecoderSparseStep, arch.gguf)
	}
	h.sharedFFN = m.SharedExpertSize
	var dense []int
	if !isNull(m.MLPOnlyLayers) {
		if err := json.Unmarshal(m.MLPOnlyLayers, &dense); err != nil {
			return fmt.Errorf("%w: config.json: mlp_only_layers: %v", ErrMismatch, err)
		}
	}
	if len(dense) > 0 {
		return fmt.Errorf("%w: %s with dense layers (mlp_only_layers %v): llama.cpp's %s graph has experts in every layer", ErrUnsupported, arch.hf, dense, arch.gguf)
	}
	return nil
}

// moeKeys writes the experts' metadata.
func moeKeys(w *gguf.Writer, a string, arch archSpec, h hparams) {
	w.Set(a+".expert_count", gguf.Uint32(uint32(h.experts)))
	w.Set(a+".expert_used_count", gguf.Uint32(uint32(h.expertsUsed)))
	if arch.moe.expertFFNKey {
		w.Set(a+".expert_feed_forward_length", gguf.Uint32(uint32(h.expertFFN)))
	}
	if arch.moe.shared != "" {
		w.Set(a+".expert_shared_feed_forward_length", gguf.Uint32(uint32(h.sharedFFN)))
	}
	if arch.moe.sigmoid {
		w.Set(a+".expert_gating_func", gguf.Uint32(gatingSigmoid))
	}
}

// sharedTensor maps a per-layer suffix of a shared expert's tensor to its
// GGUF name and shape; ok is false for other suffixes.
func (m *moeSpec) sharedTensor(suffix string, h hparams) (name string, shape []int64, ok bool) {
	if m.shared == "" {
		return "", nil, false
	}
	H, S := int64(h.hidden), int64(h.sharedFFN)
	switch suffix {
	case m.sharedGate:
		return "ffn_gate_inp_shexp.weight", []int64{1, H}, true
	case m.shared + m.gate:
		return "ffn_gate_shexp.weight", []int64{S, H}, true
	case m.shared + m.up:
		return "ffn_up_shexp.weight", []int64{S, H}, true
	case m.shared + m.down:
		return "ffn_down_shexp.weight", []int64{H, S}, true
	}
	return "", nil, false
}

// expertParts collects the per-expert projections of each layer, to be
// stacked.
type expertParts map[string][]string // "blk.N.ffn_X_exps.weight" → the HF names by expert

// add records expert e's projection proj of layer n, checking its shape.
func (ep expertParts) add(arch archSpec, h hparams, n int, e, proj, name string, shape []int64) error {
	i, err := strconv.Atoi(e)
	if err != nil || i >= h.experts {
		return fmt.Errorf("%w: tensor %q: expert %s is outside num_experts %d", ErrMismatch, name, e, h.experts)
	}
	H, I := int64(h.hidden), int64(h.expertFFN)
	var g string
	var want []int64
	switch proj {
	case arch.moe.gate:
		g, want = "ffn_gate_exps", []int64{I, H}
	case arch.moe.up:
		g, want = "ffn_up_exps", []int64{I, H}
	case arch.moe.down:
		g, want = "ffn_down_exps", []int64{H, I}
	default:
		return fmt.Errorf("%w tensor %q in a %s checkpoint", ErrUnsupported, name, arch.hf)
	}
	if !slices.Equal(shape, want) {
		return fmt.Errorf("%w: tensor %q has shape %v, config.json implies %v", ErrMismatch, name, shape, want)
	}
	key := fmt.Sprintf("blk.%d.%s.weight", n, g)
	if ep[key] == nil {
		ep[key] = make([]string, h.experts)
	}
	if ep[key][i] != "" {
		return fmt.Errorf("%w: two tensors for expert %d of %s (the second is %q)", ErrMismatch, i, key, name)
	}
	ep[key][i] = name
	return nil
}

// fusedExperts holds a layer's fused experts by layer and by name
// (moeSpec.fusedGateUp and fusedDown).
type fusedExperts map[int]map[string]safetensors.TensorInfo

// add records layer n's tensor t when suffix is one of spec's fused
// expert tensors.
func (fe fusedExperts) add(spec *moeSpec, n int, suffix string, t safetensors.TensorInfo) bool {
	suffix = strings.TrimSuffix(suffix, ".weight")
	if suffix != spec.fusedGateUp && suffix != spec.fusedDown {
		return false
	}
	if fe[n] == nil {
		fe[n] = map[string]safetensors.TensorInfo{}
	}
	fe[n][suffix] = t
	return true
}

// plans checks each layer's fused experts and returns the GGUF expert
// tensors, each expert's matrix written (out, in).
func (fe fusedExperts) plans(spec *moeSpec, h hparams) ([]tensorPlan, error) {
	var out []tensorPlan
	for n := range h.layers {
		ps, err := fe.layerPlans(spec, h, n)
		if err != nil {
			return nil, err
		}
		out = append(out, ps...)
	}
	return out, nil
}

// layerPlans checks layer n's fused experts and returns its GGUF expert
// tensors.
func (fe fusedExperts) layerPlans(spec *moeSpec, h hparams, n int) ([]tensorPlan, error) {
	E, H, I := int64(h.experts), int64(h.hidden), int64(h.expertFFN)
	var out []tensorPlan
	for _, f := range []struct {
		suffix  string
		in, out int64
		gguf    []string
		sel     []int
	}{
		{spec.fusedGateUp, H, 2 * I, []string{"ffn_gate_exps", "ffn_up_exps"}, []int{rowsFirst, rowsSecond}},
		{spec.fusedDown, I, H, []string{"ffn_down_exps"}, []int{rowsAll}},
	} {
		t, ok := fe[n][f.suffix]
		if !ok {
			return nil, fmt.Errorf("%w: the checkpoint has no tensor for layer %d's %s", ErrMismatch, n, f.suffix)
		}
		shape := []int64{E, f.in, f.out}
		if spec.fusedOutIn {
			shape = []int64{E, f.out, f.in}
		}
		if !slices.Equal(t.Shape, shape) {
			return nil, fmt.Errorf("%w: tensor %q has shape %v, config.json implies %v", ErrMismatch, t.Name, t.Shape, shape)
		}
		if !t.DType.Supported() {
			return nil, fmt.Errorf("%w: tensor %q has dtype %s; the converter reads F32, F16 and BF16 fused experts", ErrUnsupported, t.Name, t.DType)
		}
		for i, g := range f.gguf {
			src := &ossSource{weight: t.Name, sel: f.sel[i], experts: int(E), rows: int(f.out), cols: int(f.in), outIn: spec.fusedOutIn}
			out = append(out, tensorPlan{ggufName: fmt.Sprintf("blk.%d.%s.weight", n, g), shape: []int64{E, int64(src.outRows()), f.in}, layer: n, oss: src})
		}
	}
	return out, nil
}

// plans returns one stacked tensor per layer and projection, in layer
// order, from layer first on; every expert must be present.
func (ep expertParts) plans(h hparams, first int) ([]tensorPlan, error) {
	var out []tensorPlan
	for n := first; n < h.layers; n++ {
		ps, err := ep.plansLayer(h, n)
		if err != nil {
			return nil, err
		}
		out = append(out, ps...)
	}
	return out, nil
}

// plansLayer returns layer n's stacked tensors, one per projection.
func (ep expertParts) plansLayer(h hparams, n int) ([]tensorPlan, error) {
	var out []tensorPlan
	for _, g := range []string{"ffn_gate_exps", "ffn_down_exps", "ffn_up_exps"} {
		key := fmt.Sprintf("blk.%d.%s.weight", n, g)
		parts := ep[key]
		if parts == nil {
			return nil, fmt.Errorf("%w: the checkpoint has no tensor for %s", ErrMismatch, key)
		}
		if i := slices.Index(parts, ""); i >= 0 {
			return nil, fmt.Errorf("%w: the checkpoint has no tensor for expert %d of %s", ErrMismatch, i, key)
		}
		shape := []int64{int64(h.experts), int64(h.expertFFN), int64(h.hidden)}
		if g == "ffn_down_exps" {
			shape[1], shape[2] = shape[2], shape[1]
		}
		out = append(out, tensorPlan{ggufName: key, parts: parts, shape: shape, layer: n})
	}
	return out, nil
}
