package convert

import (
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/llm-go/llm/loader/safetensors"
)

// tensorPlan is one output tensor.
type tensorPlan struct {
	hfName   string
	ggufName string
	shape    []int64 // row-major (HF) shape
	permute  int     // > 0: permute rows with this many heads
	// permuteRot, with permute, is how many of each head's leading rows
	// rotate (a partial rope: those are permuted, the rest stay in place;
	// 0: all).
	permuteRot int
	transpo    bool       // transpose a 2-D [in, out] tensor to [out, in]
	layer      int        // block number, -1 outside the blocks
	gen        []float32  // if not nil, the data, computed (hfName is empty)
	parts      []string   // if not nil, tensors stacked along a new first dimension (hfName is empty)
	shift      float32    // added to every value (Gemma's norm weights)
	scale      float32    // if not 0, multiplies every value (Falcon-H1's multipliers), before shift; only of tensors written as stored or stacked
	colScale   []float32  // if not nil, multiplies column j of every row by colScale[j] (Ling's normalised head); as scale
	oss        *ossSource // if not nil, a gpt-oss expert tensor (hfName is empty)
	// derive, if not nil, computes the data when the tensor is written
	// (DeepSeek's k_b and v_b, split from kv_b_proj).
	derive func(tw *tensorWriter) ([]float32, error)
	// padRows, if not 0, are rows written after the stored ones (shape
	// counts them), each a copy of row 0 (Gemma 3n's per-layer inputs).
	padRows int64
}

// sortPlan orders the tensors by rank, then by block number (numerically,
// so blk.10 follows blk.9), keeping the checkpoint's order otherwise.
func sortPlan(plan []tensorPlan, rank func(string) int) {
	slices.SortStableFunc(plan, func(a, b tensorPlan) int {
		if r := rank(a.ggufName) - rank(b.ggufName); r != 0 {
			return r
		}
		return a.layer - b.layer
	})
}

// outShape is the row-major shape written.
func (p tensorPlan) outShape() []int64 {
	if p.transpo {
		return []int64{p.shape[1], p.shape[0]}
	}
	return p.shape
}

var layerRE = regexp.MustCompile(`^model\.layers\.(\d+)\.(.+)$`)

// layerNames maps the per-layer HF suffixes to GGUF names.
var layerNames = map[string]string{
	"input_layernorm.weight":          "attn_norm.weight",
	"self_attn.q_proj.weight":         "attn_q.weight",
	"self_attn.k_proj.weight":         "attn_k.weight",
	"self_attn.v_proj.weight":         "attn_v.weight",
	"self_attn.o_proj.weight":         "attn_output.weight",
	"self_attn.q_proj.bias":           "attn_q.bias",
	"self_attn.k_proj.bias":           "attn_k.bias",
	"self_attn.v_proj.bias":           "attn_v.bias",
	"self_attn.o_proj.bias":           "attn_output.bias",
	"post_attention_layernorm.weight": "ffn_norm.weight",
	"mlp.gate_proj.weight":            "ffn_gate.weight",
	"mlp.up_proj.weight":              "ffn_up.weight",
	"mlp.down_proj.weight":            "ffn_down.weight",
	"self_attn.q_norm.weight":         "attn_q_norm.weight",
	"self_attn.k_norm.weight":         "attn_k_norm.weight",
	"self_attn.qkv_proj.weight":       "attn_qkv.weight",
	"mlp.gate_up_proj.weight":         "ffn_up.weight",
}

// splitOnly and fusedOnly are the per-layer suffixes accepted only
// without and only with archSpec.fused.
var (
	splitOnly = map[string]bool{
		"self_attn.q_proj.weight": true, "self_attn.k_proj.weight": true, "self_attn.v_proj.weight": true,
		"mlp.gate_proj.weight": true, "mlp.up_proj.weight": true,
	}
	fusedOnly = map[string]bool{"self_attn.qkv_proj.weight": true, "mlp.gate_up_proj.weight": true}
)

// expectedShape returns the row-major shape config.json implies for a
// per-layer tensor suffix.
func expectedShape(suffix string, h hparams) []int64 {
	H, I := int64(h.hidden), int64(h.ffn)
	q, kv := int64(h.heads*h.headDim), int64(h.kvHeads*h.headDim)
	switch suffix {
	case "input_layernorm.weight", "post_attention_layernorm.weight", "self_attn.o_proj.bias",
		"pre_feedforward_layernorm.weight", "post_feedforward_layernorm.weight",
		"post_self_attn_layernorm.weight", "post_mlp_layernorm.weight":
		return []int64{H}
	case "self_attn.q_proj.weight":
		return []int64{q, H}
	case "self_attn.k_proj.weight", "self_attn.v_proj.weight":
		return []int64{kv, H}
	case "self_attn.o_proj.weight":
		return []int64{H, q}
	case "self_attn.q_proj.bias":
		return []int64{q}
	case "self_attn.q_norm.weight", "self_attn.k_norm.weight":
		return []int64{int64(h.headDim)}
	case "self_attn.k_proj.bias", "self_attn.v_proj.bias":
		return []int64{kv}
	case "mlp.gate_proj.weight", "mlp.up_proj.weight":
		return []int64{I, H}
	case "mlp.down_proj.weight":
		return []int64{H, I}
	case "self_attn.qkv_proj.weight":
		return []int64{q + 2*kv, H}
	case "mlp.gate_up_proj.weight":
		return []int64{2 * I, H}
	}
	return nil
}

// moeDense are the dense MLP's tensors, which a mixture-of-experts layer
// does not have.
var moeDense = map[string]bool{"mlp.gate_proj.weight": true, "mlp.up_proj.weight": true, "mlp.down_proj.weight": true}

// ignored are checkpoint tensors that carry no weights llama.cpp needs.
var ignoredRE = regexp.MustCompile(`(^|\.)rotary_emb\.inv_freq$`)

// planTensors maps every checkpoint tensor to its GGUF name and checks its
// shape against the config.
func planTensors(st *safetensors.Model, arch archSpec, h hparams) ([]tensorPlan, error) {
	var plan []tensorPlan
	seen := map[string]bool{}
	experts := expertParts{}
	oss := ossExperts{}
	fused := fusedExperts{}
	V, H := int64(h.vocab), int64(h.hidden)
	skipped, zeroBiases := 0, 0
	// Saved as the base model (sentence-transformers' embedding models:
	// EmbeddingGemma, Qwen3-Embedding): names without "model.".
	_, prefixed := st.Tensor("model.embed_tokens.weight")
	_, bare := st.Tensor("embed_tokens.weight")
	root := bare && !prefixed
	for _, t := range st.Tensors() {
		p := tensorPlan{layer: -1}
		var want []int64
		name := t.Name
		if fp8Aux(st, name) {
			continue // folded into its FP8 weight, or unused
		}
		if arch.vlm {
			var skip bool
			if name, skip = gemma3TextName(name); skip {
				skipped++
				continue
			}
		}
		if root {
			name = rootKeyed(name)
		}
		if arch.exaone {
			name = exaoneName(name)
		}
		if arch.internlm2 {
			name = internlm2Name(name)
			if m := internlm2QKVRE.FindStringSubmatch(name); m != nil {
				n, err := strconv.Atoi(m[1])
				switch {
				case err != nil || n >= h.layers:
					return nil, fmt.Errorf("%w: tensor %q: layer %s is outside num_hidden_layers %d", ErrMismatch, t.Name, m[1], h.layers)
				case m[2] == "bias":
					return nil, fmt.Errorf("%w tensor %q in a %s checkpoint: llama.cpp's internlm2 has no attention biases", ErrUnsupported, t.Name, arch.hf)
				}
				qkv, err := internlm2QKV(st, n, t, h)
				if err != nil {
					return nil, err
				}
				for _, p := range qkv {
					if seen[p.ggufName] {
						return nil, fmt.Errorf("%w: two tensors for %s (the second is %q)", ErrMismatch, p.ggufName, t.Name)
					}
					seen[p.ggufName] = true
				}
				plan = append(plan, qkv...)
				continue
			}
		}
		switch {
		case ignoredRE.MatchString(name):
			continue
		case name == "model.embed_tokens.weight":
			p.ggufName, want = "token_embd.weight", []int64{V, H}
		case name == "model.norm.weight" && arch.olmo1:
			return nil, fmt.Errorf("%w tensor %q in a %s checkpoint: OLMo's LayerNorms have no weights (nor llama.cpp's olmo)", ErrUnsupported, t.Name, arch.hf)
		case name == "model.norm.weight":
			p.ggufName, want, p.shift = "output_norm.weight", []int64{H}, arch.normShift
		case name == "lm_head.weight" && (arch.tiedOnly || ((arch.gemma3 || arch.exaone || arch.minicpm) && h.tied)):
			// As convert_hf_to_gguf.py for Gemma and Gemma 2: llama.cpp
			// uses the embeddings. A tied Gemma 3, EXAONE or MiniCPM (by
			// default) is the same: transformers ties the head to the
			// embeddings.
			continue
		case name == "lm_head.weight":
			p.ggufName, want = "output.weight", []int64{V, H}
		default:
			m := layerRE.FindStringSubmatch(name)
			if m == nil {
				return nil, fmt.Errorf("%w tensor %q in a %s checkpoint", ErrUnsupported, t.Name, arch.hf)
			}
			n, err := strconv.Atoi(m[1])
			if err != nil || n >= h.layers {
				return nil, fmt.Errorf("%w: tensor %q: layer %s is outside num_hidden_layers %d", ErrMismatch, t.Name, m[1], h.layers)
			}
			if arch.gptOSS {
				if oss.add(n, m[2], t) {
					continue
				}
				if g, ok := gptOSSNames[m[2]]; ok {
					p.ggufName, p.layer, want = fmt.Sprintf("blk.%d.%s", n, g), n, gptOSSShape(m[2], h)
					break
				}
			}
			if arch.moe != nil && moeDense[m[2]] {
				return nil, fmt.Errorf("%w tensor %q in a %s checkpoint: llama.cpp's %s graph has experts in every layer", ErrUnsupported, t.Name, arch.hf, arch.gguf)
			}
			if arch.fusedExperts && fused.add(arch.moe, n, m[2], t) {
				continue
			}
			if arch.moe != nil {
				if e := arch.moe.perExpert(m[2]); e != nil {
					if err := experts.add(arch, h, n, e[1], e[2], t.Name, t.Shape); err != nil {
						return nil, err
					}
					if err := checkWeightDType(st, t, h); err != nil {
						return nil, err
					}
					continue
				}
				if m[2] == arch.moe.router {
					p.ggufName, p.layer = fmt.Sprintf("blk.%d.ffn_gate_inp.weight", n), n
					want = []int64{int64(h.experts), H}
					break
				}
				if arch.moe.routerBias != "" && m[2] == arch.moe.routerBias {
					p.ggufName, p.layer = fmt.Sprintf("blk.%d.exp_probs_b.bias", n), n
					want = []int64{int64(h.experts)}
					break
				}
				if g, shape, ok := arch.moe.sharedTensor(m[2], h); ok {
					p.ggufName, p.layer, want = fmt.Sprintf("blk.%d.%s", n, g), n, shape
					break
				}
			}
			g, ok := layerNames[m[2]]
			if g2, is2 := gemma2Names[m[2]]; is2 && arch.postNorms {
				g, ok = g2, true
			}
			if g4, is4 := glm4Names[m[2]]; is4 && arch.glm4 {
				if arch.chatglm && g4 != "ffn_up.weight" {
					return nil, fmt.Errorf("%w tensor %q in a %s checkpoint: GLM-4-0414's sandwich norms (Glm4ForCausalLM), which GLM's blocks and llama.cpp's chatglm do not have", ErrUnsupported, t.Name, arch.hf)
				}
				g, ok = g4, true
			}
			if arch.reluSq && m[2] == "mlp.gate_proj.weight" {
				return nil, fmt.Errorf("%w tensor %q in a %s checkpoint: its MLP has no gate", ErrUnsupported, t.Name, arch.hf)
			}
			if arch.glm4 && m[2] == "self_attn.o_proj.bias" {
				return nil, fmt.Errorf("%w tensor %q in a %s checkpoint: llama.cpp's %s arch has no attention output bias", ErrUnsupported, t.Name, arch.hf, arch.gguf)
			}
			if arch.glm4 && (m[2] == "mlp.gate_proj.weight" || m[2] == "mlp.up_proj.weight") {
				return nil, fmt.Errorf("%w tensor %q in a %s checkpoint: llama.cpp's %s arch takes the fused gate_up_proj", ErrUnsupported, t.Name, arch.hf, arch.gguf)
			}
			if arch.olmo1 && strings.HasSuffix(m[2], "layernorm.weight") {
				return nil, fmt.Errorf("%w tensor %q in a %s checkpoint: OLMo's LayerNorms have no weights (nor llama.cpp's olmo)", ErrUnsupported, t.Name, arch.hf)
			}
			if arch.cohere && m[2] == "post_attention_layernorm.weight" {
				return nil, fmt.Errorf("%w tensor %q in a %s checkpoint: llama.cpp's %s runs attention and MLP on one norm", ErrUnsupported, t.Name, arch.hf, arch.gguf)
			}
			if arch.seedOSS {
				switch m[2] {
				case "post_attention_layernorm.weight": // its MLP's input norm, so named in llama.cpp
					g = "post_attention_norm.weight"
				case "self_attn.o_proj.bias":
					return nil, fmt.Errorf("%w tensor %q in a %s checkpoint: llama.cpp's %s has no attention output bias", ErrUnsupported, t.Name, arch.hf, arch.gguf)
				}
			}
			if arch.olmo2 {
				g, ok = olmoNames[m[2]]
				if !ok && m[2] != "input_layernorm.weight" && m[2] != "post_attention_layernorm.weight" {
					g, ok = layerNames[m[2]]
				}
			}
			if strings.HasSuffix(m[2], "norm.weight") {
				p.shift = arch.normShift
			}
			isNorm := m[2] == "self_attn.q_norm.weight" || m[2] == "self_attn.k_norm.weight"
			isBias := strings.HasPrefix(m[2], "self_attn.") && strings.HasSuffix(m[2], ".bias")
			if isBias && arch.noBias {
				// As convert_hf_to_gguf.py for Command R7B's: biases that
				// are all zero are no biases, and are left out.
				zero, err := allZero(st, t.Name)
				if err != nil {
					return nil, err
				}
				if !zero {
					return nil, fmt.Errorf("%w tensor %q in a %s checkpoint: llama.cpp's %s has no attention biases", ErrUnsupported, t.Name, arch.hf, arch.gguf)
				}
				zeroBiases++
				continue
			}
			if arch.fused && splitOnly[m[2]] {
				return nil, fmt.Errorf("%w tensor %q in a %s checkpoint: llama.cpp's %s arch takes fused qkv_proj and gate_up_proj weights", ErrUnsupported, t.Name, arch.hf, arch.gguf)
			}
			if !ok || (isNorm && !arch.qkNorm && !arch.cohere) || (isBias && arch.noBias) || (!arch.fused && fusedOnly[m[2]] && !(arch.glm4 && m[2] == "mlp.gate_up_proj.weight")) {
				return nil, fmt.Errorf("%w tensor %q in a %s checkpoint", ErrUnsupported, t.Name, arch.hf)
			}
			p.ggufName, p.layer = fmt.Sprintf("blk.%d.%s", n, g), n
			want = expectedShape(m[2], h)
			if arch.cohere && isNorm {
				if !h.cohereQKNorm {
					return nil, fmt.Errorf("%w tensor %q in a %s checkpoint with use_qk_norm false", ErrUnsupported, t.Name, arch.hf)
				}
				want = []int64{int64(h.heads), int64(h.headDim)}
				if m[2] == "self_attn.k_norm.weight" {
					want = []int64{int64(h.kvHeads), int64(h.headDim)}
				}
			}
			if arch.wideQKNorm && isNorm { // over the whole projection
				want = []int64{int64(h.heads * h.headDim)}
				if m[2] == "self_attn.k_norm.weight" {
					want = []int64{int64(h.kvHeads * h.headDim)}
				}
			}
			if arch.permute {
				switch m[2] {
				case "self_attn.q_proj.weight", "self_attn.q_proj.bias":
					p.permute = h.heads
				case "self_attn.k_proj.weight", "self_attn.k_proj.bias":
					p.permute = h.kvHeads
				}
			}
		}
		if !slices.Equal(t.Shape, want) {
			return nil, fmt.Errorf("%w: tensor %q has shape %v, config.json implies %v", ErrMismatch, t.Name, t.Shape, want)
		}
		if err := checkWeightDType(st, t, h); err != nil {
			return nil, err
		}
		if seen[p.ggufName] {
			return nil, fmt.Errorf("%w: two tensors for %s (the second is %q)", ErrMismatch, p.ggufName, t.Name)
		}
		p.hfName, p.shape = t.Name, t.Shape
		seen[p.ggufName] = true
		plan = append(plan, p)
	}
	if zeroBiases > 0 {
		slog.Info("convert: attention biases that are all zero left out (llama.cpp's graph has none)", "architecture", arch.hf, "tensors", zeroBiases)
	}
	if skipped > 0 {
		slog.Info("convert: converting the language model only; the vision tower and multi-modal projector are skipped (llama.cpp reads them from a separate mmproj file)",
			"architecture", arch.hf, "skipped_tensors", skipped)
	}

	if (h.tied || h.embedding) && arch.untiedOnly && !seen["output.weight"] {
		for _, p := range plan {
			if p.ggufName == "token_embd.weight" {
				plan = append(plan, tensorPlan{hfName: p.hfName, ggufName: "output.weight", shape: p.shape, layer: -1})
				seen["output.weight"] = true
				break
			}
		}
	}
	required := []string{"token_embd.weight", "output_norm.weight"}
	if arch.olmo1 {
		required = required[:1] // no norm weights
	}
	if !h.tied && !h.embedding || arch.untiedOnly {
		// An embedding model needs no head: llama.cpp uses the embeddings.
		required = append(required, "output.weight")
	}
	perLayer := []string{"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"}
	if arch.moe != nil {
		perLayer = []string{"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate_inp"}
		if arch.moe.shared != "" {
			perLayer = append(perLayer, "ffn_gate_inp_shexp", "ffn_gate_shexp", "ffn_up_shexp", "ffn_down_shexp")
		}
		var stacked []tensorPlan
		var err error
		if arch.gptOSS {
			perLayer = []string{"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "post_attention_norm", "ffn_gate_inp", "attn_sinks"}
			for i := range h.layers {
				for _, b := range []string{"attn_output", "ffn_gate_inp"} {
					required = append(required, fmt.Sprintf("blk.%d.%s.bias", i, b))
				}
			}
			stacked, err = oss.plans(h)
		} else if arch.fusedExperts && len(fused) > 0 {
			if len(experts) > 0 {
				return nil, fmt.Errorf("%w: %s checkpoint with both fused (%s) and per-expert tensors", ErrMismatch, arch.hf, arch.moe.fusedGateUp)
			}
			stacked, err = fused.plans(arch.moe, h)
		} else {
			stacked, err = experts.plans(h, 0)
		}
		if err != nil {
			return nil, err
		}
		for _, p := range stacked {
			seen[p.ggufName] = true
		}
		plan = append(plan, stacked...)
	}
	if arch.fused {
		perLayer = []string{"attn_norm", "attn_qkv", "attn_output", "ffn_norm", "ffn_up", "ffn_down"}
	}
	if arch.postNorms {
		perLayer = append(perLayer, "post_attention_norm", "post_ffw_norm")
	}
	if arch.olmo2 {
		perLayer = []string{"attn_q", "attn_k", "attn_v", "attn_output", "post_attention_norm", "ffn_gate", "ffn_up", "ffn_down", "post_ffw_norm"}
	}
	if arch.seedOSS {
		perLayer = []string{"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "post_attention_norm", "ffn_gate", "ffn_up", "ffn_down"}
	}
	if arch.olmo1 {
		perLayer = []string{"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"}
	}
	if arch.glm4 {
		perLayer = []string{"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_up", "ffn_down"}
		if !arch.chatglm { // GLM-4's sandwich norms
			perLayer = append(perLayer, "post_attention_norm", "post_ffw_norm")
		}
	}
	if arch.reluSq {
		perLayer = []string{"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_up", "ffn_down"}
	}
	if arch.cohere {
		perLayer = []string{"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"}
		if h.cohereQKNorm {
			perLayer = append(perLayer, "attn_q_norm", "attn_k_norm")
		}
	}
	for i := range h.layers {
		for _, s := range perLayer {
			required = append(required, fmt.Sprintf("blk.%d.%s.weight", i, s))
		}
		if arch.moe != nil && arch.moe.routerBias != "" {
			required = append(required, fmt.Sprintf("blk.%d.exp_probs_b.bias", i))
		}
		if arch.qkvBias {
			for _, s := range []string{"attn_q", "attn_k", "attn_v"} {
				required = append(required, fmt.Sprintf("blk.%d.%s.bias", i, s))
			}
		}
		if arch.qkNorm {
			for _, s := range []string{"attn_q_norm", "attn_k_norm"} {
				required = append(required, fmt.Sprintf("blk.%d.%s.weight", i, s))
			}
		}
	}
	for _, r := range required {
		if !seen[r] {
			return nil, fmt.Errorf("%w: the checkpoint has no tensor for %s", ErrMismatch, r)
		}
	}
	// Keep llama.cpp's conventional order: token_embd, blocks, output_norm,
	// output. The safetensors order (by name) already groups the blocks.
	sortPlan(plan, rank)
	return plan, nil
}

func rank(name string) int {
	switch name {
	case "token_embd.weight":
		return 0
	case "output_norm.weight", lfm2OutputNorm:
		return 2
	case "output.weight":
		return 3
	}
	return 1
}

// allZero reports whether every value of the tensor name is zero.
func allZero(st *safetensors.Model, name string) (bool, error) {
	v, err := loadFloat32s(st, name, nil)
	if err != nil {
		return false, fmt.Errorf("convert: %w", err)
	}
	for _, x := range v {
		if x != 0 {
			return false, nil
		}
	}
	return true, nil
}

// planner collects a plan tensor by tensor: each checked against the shape
// config.json implies and for its dtype, and no GGUF name twice.
type planner struct {
	st   *safetensors.Model
	h    hparams
	plan []tensorPlan
	seen map[string]bool
	// outputNorm is the final norm's GGUF name ("" for
	// output_norm.weight); outputShift is added to its weights.
	outputNorm  string
	outputShift float32
}

func newPlanner(st *safetensors.Model, h hparams) *planner {
	return &planner{st: st, h: h, seen: map[string]bool{}}
}

// add plans p for the checkpoint tensor t, which must have shape want; p
// reads t unless it derives its data or has a source of its own, and has
// t's shape unless it sets one.
func (pl *planner) add(p tensorPlan, t safetensors.TensorInfo, want []int64) error {
	if !slices.Equal(t.Shape, want) {
		return fmt.Errorf("%w: tensor %q has shape %v, config.json implies %v", ErrMismatch, t.Name, t.Shape, want)
	}
	if err := checkWeightDType(pl.st, t, pl.h); err != nil {
		return err
	}
	if pl.seen[p.ggufName] {
		return fmt.Errorf("%w: two tensors for %s (the second is %q)", ErrMismatch, p.ggufName, t.Name)
	}
	if p.hfName == "" && p.derive == nil && p.oss == nil {
		p.hfName = t.Name
	}
	if p.shape == nil {
		p.shape = t.Shape
	}
	pl.put(p)
	return nil
}

// attnProj plans layer n's attention projection suffix
// (self_attn.{q,k,v,o}_proj.weight, unpermuted) under planTensors' name
// and shape (layerNames, expectedShape); ok is false for any other suffix.
func (pl *planner) attnProj(n int, suffix string, t safetensors.TensorInfo) (ok bool, err error) {
	switch suffix {
	case "self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight", "self_attn.o_proj.weight":
	default:
		return false, nil
	}
	p := tensorPlan{ggufName: fmt.Sprintf("blk.%d.%s", n, layerNames[suffix]), layer: n}
	return true, pl.add(p, t, expectedShape(suffix, pl.h))
}

// outer plans t when it is one of the tensors outside the blocks: the
// embeddings (named emb), the final norm (norm) or the head
// (lm_head.weight), reporting whether it is.
func (pl *planner) outer(t safetensors.TensorInfo, emb, norm []string) (bool, error) {
	return pl.outerAs(t, t.Name, emb, norm)
}

// outerAs is outer for t known by name (a vision-language checkpoint's
// tensor by its text model's name).
func (pl *planner) outerAs(t safetensors.TensorInfo, name string, emb, norm []string) (bool, error) {
	V, H := int64(pl.h.vocab), int64(pl.h.hidden)
	switch {
	case slices.Contains(emb, name):
		return true, pl.add(tensorPlan{ggufName: "token_embd.weight", layer: -1}, t, []int64{V, H})
	case slices.Contains(norm, name):
		g := pl.outputNorm
		if g == "" {
			g = "output_norm.weight"
		}
		return true, pl.add(tensorPlan{ggufName: g, layer: -1, shift: pl.outputShift}, t, []int64{H})
	case name == "lm_head.weight":
		return true, pl.add(tensorPlan{ggufName: "output.weight", layer: -1}, t, []int64{V, H})
	}
	return false, nil
}

// Llama's names of the embeddings and the final norm.
var llamaEmb, llamaNorm = []string{"model.embed_tokens.weight"}, []string{"model.norm.weight"}

// put plans p as it is (a stacked or generated tensor).
func (pl *planner) put(ps ...tensorPlan) {
	for _, p := range ps {
		pl.seen[p.ggufName] = true
		pl.plan = append(pl.plan, p)
	}
}

// tiedOutput plans the embeddings again as output.weight, when no head is
// planned: tied embeddings for an arch whose llama.cpp loader requires
// its own output matrix.
func (pl *planner) tiedOutput() {
	if pl.seen["output.weight"] {
		return
	}
	for _, p := range pl.plan {
		if p.ggufName == "token_embd.weight" {
			pl.put(tensorPlan{hfName: p.hfName, ggufName: "output.weight", shape: p.shape, layer: -1})
			return
		}
	}
}

// finish checks that every required GGUF tensor is planned and returns
// the plan in llama.cpp's conventional order.
func (pl *planner) finish(required []string) ([]tensorPlan, error) {
	for _, r := range required {
		if !pl.seen[r] {
			return nil, fmt.Errorf("%w: the checkpoint has no tensor for %s", ErrMismatch, r)
		}
	}
	sortPlan(pl.plan, rank)
	return pl.plan, nil
}

// walk plans every tensor of the checkpoint: the embeddings and final norm
// named in emb and norm and the output matrix itself, each block's tensors
// through layer (with the block number and the name's rest by re). FP8
// scales, ignored tensors and those skip reports (when not nil) are passed
// over.
func (pl *planner) walk(arch archSpec, re *regexp.Regexp, emb, norm []string, skip func(name string) bool,
	layer func(n int, suffix string, t safetensors.TensorInfo) error) error {
	for _, t := range pl.st.Tensors() {
		if fp8Aux(pl.st, t.Name) || ignoredRE.MatchString(t.Name) || skip != nil && skip(t.Name) {
			continue
		}
		ok, err := pl.outer(t, emb, norm)
		if !ok && err == nil {
			n, suffix, berr := blockOf(re, t.Name, pl.h.layers, arch)
			if berr != nil {
				return berr
			}
			err = layer(n, suffix, t)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// walkText is walk for a model that may be a vision-language checkpoint's
// language model (arch.vlm): its tensors known by their text model's names
// (gemma3TextName), the vision tower and projector skipped and counted in
// a log line; a tied head's lm_head.weight is skipped too (transformers
// runs the embeddings as the head).
func (pl *planner) walkText(arch archSpec, emb, norm []string, layer func(n int, suffix string, t safetensors.TensorInfo) error) error {
	skipped := 0
	for _, t := range pl.st.Tensors() {
		name := t.Name
		if arch.vlm {
			var skip bool
			if name, skip = gemma3TextName(name); skip {
				skipped++
				continue
			}
		}
		if fp8Aux(pl.st, t.Name) || ignoredRE.MatchString(name) || name == "lm_head.weight" && pl.h.tied {
			continue
		}
		ok, err := pl.outerAs(t, name, emb, norm)
		if !ok && err == nil {
			n, suffix, berr := blockOf(layerRE, name, pl.h.layers, arch)
			if berr != nil {
				return berr
			}
			err = layer(n, suffix, t)
		}
		if err != nil {
			return err
		}
	}
	if skipped > 0 {
		slog.Info("convert: converting the language model only; the vision model and multi-modal projector are skipped (llama.cpp reads them from a separate mmproj file)",
			"architecture", arch.hf, "skipped_tensors", skipped)
	}
	return nil
}

// skipMTP is a walk skip that passes over the multi-token-prediction
// tensors (mtp.*, for speculative decoding: not converted), counting them
// in n.
func skipMTP(n *int) func(string) bool {
	return func(name string) bool {
		if strings.HasPrefix(name, "mtp.") {
			*n++
			return true
		}
		return false
	}
}

// blockOf splits a checkpoint tensor name into its block number and the
// rest with re (whose groups are those two), refusing a name re does not
// match and a block at or past layers.
func blockOf(re *regexp.Regexp, name string, layers int, arch archSpec) (int, string, error) {
	m := re.FindStringSubmatch(name)
	if m == nil {
		return 0, "", fmt.Errorf("%w tensor %q in a %s checkpoint", ErrUnsupported, name, arch.hf)
	}
	n, err := strconv.Atoi(m[1])
	if err != nil || n >= layers {
		return 0, "", fmt.Errorf("%w: tensor %q: layer %s is outside num_hidden_layers %d", ErrMismatch, name, m[1], layers)
	}
	return n, m[2], nil
}

// rowPart is a GGUF tensor (its name in a block, without ".weight") made
// of some rows of a fused checkpoint matrix, in order.
type rowPart struct {
	gguf string
	rows []int
}

// rowPlans plans layer n's parts of the checkpoint matrix name, whose rows
// have cols values.
func rowPlans(st *safetensors.Model, name string, n, cols int, parts ...rowPart) []tensorPlan {
	out := make([]tensorPlan, len(parts))
	for i, part := range parts {
		rows := part.rows
		out[i] = tensorPlan{ggufName: fmt.Sprintf("blk.%d.%s.weight", n, part.gguf), layer: n, shape: []int64{int64(len(rows)), int64(cols)},
			derive: func(*tensorWriter) ([]float32, error) { return readRows(st, name, cols, rows...) }}
	}
	return out
}

// pairRows gives the rows, from first on, of heads heads of d rows in
// llama.cpp's adjacent-pair order: within each head, row 2i+j is the
// stored row j·d/2+i (as tensorPlan.permute reorders them).
func pairRows(first, heads, d int) []int {
	rows := make([]int, 0, heads*d)
	for hd := range heads {
		for k := range d {
			rows = append(rows, first+hd*d+(k%2)*(d/2)+k/2)
		}
	}
	return rows
}

// rowRange gives the n rows from first on.
func rowRange(first, n int) []int {
	rows := make([]int, n)
	for i := range rows {
		rows[i] = first + i
	}
	return rows
}
