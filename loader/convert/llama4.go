package convert

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"

	"github.com/llm-go/llm/loader/gguf"
	"github.com/llm-go/llm/loader/safetensors"
)

// Llama 4 (Llama4ForConditionalGeneration: Llama 4 Scout 17B-16E and
// Maverick 17B-128E, converted as their language model; Llama4ForCausalLM)
// → GGUF arch "llama4". Its attention rotates adjacent pairs (transformers
// rotates q and k as complex numbers), so q and k are written unpermuted
// for llama.cpp's normal rope; llama3 rope scaling is written as
// rope_freqs. Three layers in four attend within chunks of
// attention_chunk_size positions and rotate, with an RMS norm without
// weights on q and k after the rope (use_qk_norm); every fourth layer
// attends to every position, has no rope, and scales its queries by
// 1 + attn_scale·ln(1 + ⌊(pos+1)/floor_scale⌋) (attn_temperature_tuning).
// llama.cpp fixes that layout (its llama4 chunks by 8192, with floor_scale
// 8192 and attn_scale 0.1, and leaves out the rope in layers 3, 7, ...), so
// configs that differ are refused; it norms q and k unless there are 128
// experts, so use_qk_norm must say the same.
//
// The layers in moe_layers (every interleave_moe_layer_step-th, the last of
// each step) route each token to num_experts_per_tok of num_local_experts
// experts by the router's top logits, scale the expert's input (not its
// output) by the sigmoid of its logit, and add a shared expert of the same
// width (intermediate_size); the other layers have a dense gated MLP of
// intermediate_size_mlp. The experts are fused as transformers stores them
// (gate_up_proj [experts, hidden, 2·width], the gate's columns first, and
// down_proj [experts, width, hidden]), or per expert.
//
// A dense config (no experts) whose every layer attends fully
// (layer_types all full_attention, with the rope in every layer:
// MobileLLM-R1's layout) is written with sliding_window 0, which llama.cpp
// runs as a plain llama graph with the q/k norms; with experts that graph
// would route them Mixtral's way (softmax, no shared expert), so such a
// config is refused.

// llama4ChunkSize, llama4FloorScale and llama4AttnScale are what llama.cpp's
// llama4 fixes: the chunk, and the attention temperature's floor_scale and
// attn_scale; llama4NoRopeStep is its every-fourth NoPE layer.
const (
	llama4ChunkSize  = 8192
	llama4FloorScale = 8192
	llama4AttnScale  = 0.1
	llama4NoRopeStep = 4
)

// llama4Config holds config.json's Llama 4 text fields (no_rope_layers,
// no_rope_layer_interval and layer_types are hfConfig's).
type llama4Config struct {
	IntermediateSizeMLP    *int            `json:"intermediate_size_mlp"`
	InterleaveMoELayerStep *int            `json:"interleave_moe_layer_step"`
	MoELayers              json.RawMessage `json:"moe_layers"`
	NumLocalExperts        *int            `json:"num_local_experts"`
	NumExpertsPerTok       *int            `json:"num_experts_per_tok"`
	UseQKNorm              *bool           `json:"use_qk_norm"`
	AttentionChunkSize     json.RawMessage `json:"attention_chunk_size"`
	AttnTemperatureTuning  json.RawMessage `json:"attn_temperature_tuning"`
	FloorScale             json.RawMessage `json:"floor_scale"`
	AttnScale              json.RawMessage `json:"attn_scale"`
	AttentionBias          *bool           `json:"attention_bias"`
}

// llama4 holds a Llama 4 model's validated layout.
type llama4 struct {
	moe  []bool // per layer: experts (else the dense MLP)
	step int    // interleave_moe_layer_step as llama.cpp reads it (0: no experts)
	full bool   // every layer attends fully, with rope (sliding_window 0)
}

// llama4MoE names Llama 4's experts: the router, the shared expert and the
// experts, fused or per expert.
var llama4MoE = &moeSpec{router: "feed_forward.router.weight", experts: regexp.MustCompile(`^feed_forward\.experts\.(\d+)\.(\w+_proj\.weight)$`),
	gate: "gate_proj.weight", up: "up_proj.weight", down: "down_proj.weight", expertFFNKey: true,
	fusedGateUp: "feed_forward.experts.gate_up_proj", fusedDown: "feed_forward.experts.down_proj"}

// llama4Defaults applies Llama4TextConfig's defaults ahead of the common
// reading: head_dim 128, 8 KV heads, rms_norm_eps 1e-5, rope_theta 5e5,
// 131072 positions, intermediate_size 8192, 16 experts with 1 used.
func (c *hfConfig) llama4Defaults() error {
	if c.l4Err != nil {
		return fmt.Errorf("convert: config.json: %w", c.l4Err)
	}
	l := c.Llama4
	for _, d := range []struct {
		p *int
		v int
	}{{&c.HeadDim, 128}, {&c.NumKeyValueHeads, 8}, {&c.MaxPositionEmbeddings, 131072}, {&c.IntermediateSize, 8192}} {
		if *d.p <= 0 {
			*d.p = d.v
		}
	}
	if c.RMSNormEps == nil {
		eps := 1e-5
		c.RMSNormEps = &eps
	}
	if c.RopeTheta == nil {
		if p, err := parseRopeJSON(c.RopeParameters, "rope_parameters"); err != nil {
			return err
		} else if p == nil || p.RopeTheta == nil {
			theta := 5e5
			c.RopeTheta = &theta
		}
	}
	c.MoE.NumLocalExperts, c.MoE.NumExperts, c.MoE.NumExpertsPerTok = 16, 0, 1
	if l.NumLocalExperts != nil {
		c.MoE.NumLocalExperts = *l.NumLocalExperts
	}
	if l.NumExpertsPerTok != nil {
		c.MoE.NumExpertsPerTok = *l.NumExpertsPerTok
	}
	return nil
}

// llama4Number decodes an optional number of a Llama 4 config: def when
// absent; null is refused (transformers takes it as no chunking or no
// temperature, which llama.cpp's llama4 does not do).
func llama4Number(raw json.RawMessage, name string, def float64) (float64, error) {
	if len(raw) == 0 {
		return def, nil
	}
	if isNull(raw) {
		return 0, fmt.Errorf("%w: Llama 4 with %s null: llama.cpp's llama4 fixes it", ErrUnsupported, name)
	}
	var v float64
	if err := json.Unmarshal(raw, &v); err != nil {
		return 0, fmt.Errorf("%w: config.json: %s: %v", ErrMismatch, name, err)
	}
	return v, nil
}

// llama4Hparams reads and checks a Llama 4 config's layers and experts
// against what llama.cpp's llama4 fixes.
func (c *hfConfig) llama4Hparams(arch archSpec, h *hparams) error {
	l := c.Llama4
	unsupported := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s with "+format, append([]any{ErrUnsupported, arch.hf}, args...)...)
	}
	mismatch := func(format string, args ...any) error {
		return fmt.Errorf("%w: config.json: "+format, append([]any{ErrMismatch}, args...)...)
	}
	g := &llama4{}
	h.l4 = g
	h.expertFFN = h.ffn // intermediate_size: an expert's and the shared expert's width
	h.ffn = 16384
	if l.IntermediateSizeMLP != nil {
		h.ffn = *l.IntermediateSizeMLP
	}
	h.experts, h.expertsUsed = c.MoE.NumLocalExperts, c.MoE.NumExpertsPerTok
	h.sharedFFN = h.expertFFN
	if l.AttentionBias != nil && *l.AttentionBias {
		return unsupported("attention_bias true: llama.cpp's %s has no attention biases", arch.gguf)
	}
	if h.rope.kind != ropeNone && h.rope.kind != ropeLlama3 {
		return unsupported("%s rope scaling: Llama 4's llama3 scaling (Scout) or none (Maverick) is converted", h.rope.kind)
	}

	// The MLPs: experts in moe_layers (by default the last layer of each
	// interleave_moe_layer_step), which llama.cpp puts in the layers n
	// with (n+1) % step == 0.
	step := 1
	if l.InterleaveMoELayerStep != nil {
		step = *l.InterleaveMoELayerStep
	}
	g.moe = make([]bool, h.layers)
	switch {
	case !isNull(l.MoELayers):
		var idx []int
		if err := json.Unmarshal(l.MoELayers, &idx); err != nil {
			return mismatch("moe_layers: %v", err)
		}
		for _, i := range idx {
			if i < 0 || i >= h.layers || g.moe[i] {
				return mismatch("moe_layers %v: layer %d is repeated or outside num_hidden_layers %d", idx, i, h.layers)
			}
			g.moe[i] = true
		}
	case step <= 0:
		return mismatch("interleave_moe_layer_step %d is not positive", step)
	default:
		for i := step - 1; i < h.layers; i += step {
			g.moe[i] = true
		}
	}
	if first := slices.Index(g.moe, true); first >= 0 {
		g.step = first + 1
		for i := range g.moe {
			if g.moe[i] != ((i+1)%g.step == 0) {
				return unsupported("experts in layers %v: llama.cpp's %s puts them in the layers n where n+1 is a multiple of one step (here %d)", llama4Indices(g.moe), arch.gguf, g.step)
			}
		}
		switch {
		case h.experts <= 0:
			return mismatch("num_local_experts %d is not positive, and layers have experts", h.experts)
		case h.experts > maxExperts:
			return unsupported("%d experts: llama.cpp runs at most %d", h.experts, maxExperts)
		case h.expertsUsed <= 0 || h.expertsUsed > h.experts:
			return mismatch("num_experts_per_tok %d must be in [1, %d]", h.expertsUsed, h.experts)
		case h.expertFFN <= 0:
			return mismatch("intermediate_size %d is not positive", h.expertFFN)
		}
	} else {
		h.experts, h.expertsUsed = 0, 0
	}
	if h.ffn <= 0 && slices.Contains(g.moe, false) {
		return mismatch("intermediate_size_mlp %d is not positive", h.ffn)
	}
	// llama.cpp norms q and k (in the rope layers) unless there are 128
	// experts, Maverick's count.
	qkNorm := l.UseQKNorm == nil || *l.UseQKNorm
	if cppNorm := h.experts != 128; qkNorm != cppNorm {
		return unsupported("use_qk_norm %v and %d experts: llama.cpp's %s norms q and k exactly when there are not 128 experts", qkNorm, h.experts, arch.gguf)
	}

	// The attention: which layers rotate, and which attend within chunks.
	rope := make([]bool, h.layers)
	switch {
	case len(c.NoRopeLayers) > 0:
		if len(c.NoRopeLayers) < h.layers {
			return mismatch("no_rope_layers has %d entries for %d layers", len(c.NoRopeLayers), h.layers)
		}
		for i := range rope {
			rope[i] = c.NoRopeLayers[i] != 0
		}
	default:
		every := llama4NoRopeStep
		if c.NoRopeLayerInterval != nil {
			every = *c.NoRopeLayerInterval
		}
		if every <= 0 {
			return mismatch("no_rope_layer_interval %d is not positive", every)
		}
		for i := range rope {
			rope[i] = (i+1)%every != 0
		}
	}
	chunked := slices.Clone(rope) // transformers' default layer_types
	if !isNull(c.LayerTypes) {
		var types []string
		if err := json.Unmarshal(c.LayerTypes, &types); err != nil {
			return mismatch("layer_types: %v", err)
		}
		if len(types) != h.layers {
			return mismatch("layer_types has %d entries for %d layers", len(types), h.layers)
		}
		for i, t := range types {
			switch t {
			case "chunked_attention":
				chunked[i] = true
			case "full_attention":
				chunked[i] = false
			default:
				return fmt.Errorf("%w layer type %q (layer %d) for %s: chunked_attention and full_attention are converted", ErrUnsupported, t, i, arch.hf)
			}
		}
	}
	if !slices.Contains(chunked, true) {
		// Every layer attends fully: llama.cpp's plain graph, which
		// rotates in every layer.
		if i := slices.Index(rope, false); i >= 0 {
			return unsupported("every layer attending fully and layer %d without rope (no_rope_layers): llama.cpp's %s then rotates in every layer", i, arch.gguf)
		}
		if h.experts > 0 {
			return unsupported("every layer attending fully and experts: llama.cpp's %s then runs its plain llama graph, which routes experts by softmax without the shared expert", arch.gguf)
		}
		g.full = true
		return nil
	}
	for i := range h.layers {
		want := (i+1)%llama4NoRopeStep != 0
		if rope[i] != want || chunked[i] != want {
			return unsupported("layer %d %s and %s: llama.cpp's %s attends within chunks and rotates in three layers of four, and fully without rope in every fourth (3, 7, ...)",
				i, llama4Kind(chunked[i], "chunked", "full attention"), llama4Kind(rope[i], "rope", "no rope"), arch.gguf)
		}
	}
	chunk, err := llama4Number(l.AttentionChunkSize, "attention_chunk_size", llama4ChunkSize)
	if err != nil {
		return err
	}
	if chunk != llama4ChunkSize {
		return unsupported("attention_chunk_size %v: llama.cpp's %s attends within chunks of %d", chunk, arch.gguf, llama4ChunkSize)
	}
	if h.layers < llama4NoRopeStep {
		return nil // no layer without rope: the temperature is never applied
	}
	tuning, err := llama4Number(l.AttnTemperatureTuning, "attn_temperature_tuning", 1)
	if err != nil {
		var b bool
		if json.Unmarshal(l.AttnTemperatureTuning, &b) != nil {
			return err
		}
		tuning = 0
		if b {
			tuning = 1
		}
	}
	if tuning == 0 {
		return unsupported("attn_temperature_tuning off: llama.cpp's %s scales the queries of the layers without rope", arch.gguf)
	}
	floor, err := llama4Number(l.FloorScale, "floor_scale", llama4FloorScale)
	if err != nil {
		return err
	}
	scale, err := llama4Number(l.AttnScale, "attn_scale", llama4AttnScale)
	if err != nil {
		return err
	}
	if floor != llama4FloorScale || math.Abs(scale-llama4AttnScale) > 1e-9 {
		return unsupported("floor_scale %v and attn_scale %v: llama.cpp's %s fixes them at %d and %v", floor, scale, arch.gguf, llama4FloorScale, llama4AttnScale)
	}
	return nil
}

func llama4Kind(b bool, yes, no string) string {
	if b {
		return yes
	}
	return no
}

// llama4Indices lists the layers marked in set.
func llama4Indices(set []bool) []int {
	var out []int
	for i, v := range set {
		if v {
			out = append(out, i)
		}
	}
	return out
}

// llama4Keys writes the layers with experts (moeKeys the experts) and, for
// a model attending fully in every layer, the sliding window 0 that tells
// llama.cpp so.
func llama4Keys(w *gguf.Writer, a string, h hparams) {
	w.Set(a+".interleave_moe_layer_step", gguf.Uint32(uint32(h.l4.step)))
	if h.l4.full {
		w.Set(a+".attention.sliding_window", gguf.Uint32(0))
	}
}

// planLlama4 maps a Llama 4 checkpoint's tensors: its language model's for
// Llama4ForConditionalGeneration, the vision model and projector skipped.
func planLlama4(st *safetensors.Model, arch archSpec, h hparams) ([]tensorPlan, error) {
	g := h.l4
	H, F, I, E := int64(h.hidden), int64(h.ffn), int64(h.expertFFN), int64(h.experts)
	pl := newPlanner(st, h)
	add := pl.add
	experts, fused := expertParts{}, fusedExperts{}
	layer := func(n int, suffix string, t safetensors.TensorInfo) error {
		blk := func(name string) tensorPlan { return tensorPlan{ggufName: fmt.Sprintf("blk.%d.%s", n, name), layer: n} }
		if ok, err := pl.attnProj(n, suffix, t); ok {
			return err
		}
		switch suffix {
		case "input_layernorm.weight":
			return add(blk("attn_norm.weight"), t, []int64{H})
		case "post_attention_layernorm.weight":
			return add(blk("ffn_norm.weight"), t, []int64{H})
		}
		if !g.moe[n] {
			switch suffix {
			case "feed_forward.gate_proj.weight":
				return add(blk("ffn_gate.weight"), t, []int64{F, H})
			case "feed_forward.up_proj.weight":
				return add(blk("ffn_up.weight"), t, []int64{F, H})
			case "feed_forward.down_proj.weight":
				return add(blk("ffn_down.weight"), t, []int64{H, F})
			}
			for _, p := range []string{"feed_forward.router.", "feed_forward.experts.", "feed_forward.shared_expert."} {
				if strings.HasPrefix(suffix, p) {
					return fmt.Errorf("%w: tensor %q: experts in layer %d, which has a dense MLP by moe_layers (interleave_moe_layer_step)", ErrMismatch, t.Name, n)
				}
			}
			return fmt.Errorf("%w tensor %q in a %s checkpoint", ErrUnsupported, t.Name, arch.hf)
		}
		switch suffix {
		case "feed_forward.router.weight":
			return add(blk("ffn_gate_inp.weight"), t, []int64{E, H})
		case "feed_forward.shared_expert.gate_proj.weight":
			return add(blk("ffn_gate_shexp.weight"), t, []int64{I, H})
		case "feed_forward.shared_expert.up_proj.weight":
			return add(blk("ffn_up_shexp.weight"), t, []int64{I, H})
		case "feed_forward.shared_expert.down_proj.weight":
			return add(blk("ffn_down_shexp.weight"), t, []int64{H, I})
		}
		if e := llama4MoE.perExpert(suffix); e != nil {
			if err := checkWeightDType(st, t, h); err != nil {
				return err
			}
			return experts.add(arch, h, n, e[1], e[2], t.Name, t.Shape)
		}
		if fused.add(llama4MoE, n, suffix, t) {
			return nil
		}
		if strings.HasPrefix(suffix, "feed_forward.") && strings.HasSuffix(suffix, "_proj.weight") {
			return fmt.Errorf("%w: tensor %q: a dense MLP in layer %d, which has experts by moe_layers (interleave_moe_layer_step)", ErrMismatch, t.Name, n)
		}
		return fmt.Errorf("%w tensor %q in a %s checkpoint", ErrUnsupported, t.Name, arch.hf)
	}
	if err := pl.walkText(arch, llamaEmb, llamaNorm, layer); err != nil {
		return nil, err
	}
	if err := stackExperts(pl, llama4MoE, experts, fused, h, g.moe); err != nil {
		return nil, err
	}
	required := []string{"token_embd.weight", "output_norm.weight"}
	if !h.tied {
		required = append(required, "output.weight")
	}
	for n := range h.layers {
		names := []string{"attn_norm.weight", "ffn_norm.weight", "attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight"}
		if g.moe[n] {
			names = append(names, "ffn_gate_inp.weight", "ffn_gate_shexp.weight", "ffn_up_shexp.weight", "ffn_down_shexp.weight")
		} else {
			names = append(names, "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight")
		}
		for _, s := range names {
			required = append(required, fmt.Sprintf("blk.%d.%s", n, s))
		}
	}
	return pl.finish(required)
}
