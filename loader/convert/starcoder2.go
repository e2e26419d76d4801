package convert

import (
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/llm-go/llm/loader/gguf"
	"github.com/llm-go/llm/loader/safetensors"
)

// Llama-like checkpoints with LayerNorms (weights and biases) and an
// ungated MLP, the rope rotating halves (llama.cpp's NEOX, so q and k are
// not permuted), pre-norm blocks and a final LayerNorm:
//
//   - Starcoder2ForCausalLM (StarCoder2 3B, 7B, 15B) → GGUF arch
//     "starcoder2": biases on every projection (use_bias, the default,
//     which llama.cpp's starcoder2 requires), the MLP mlp.c_fc, GELU in its
//     tanh form, mlp.c_proj, the head tied to the embeddings or not.
//     transformers attends within sliding_window (4096) positions;
//     llama.cpp's starcoder2 attends to all of them. Up to the window the
//     two are the same, so the context written is the window when it is
//     shorter than max_position_embeddings (16384).
//   - NemotronForCausalLM (Nemotron-Mini-4B, Minitron 4B) → GGUF arch
//     "nemotron": LayerNorm1P (the weights plus 1, added here), the MLP
//     mlp.up_proj, ReLU², mlp.down_proj, optional biases (attention_bias,
//     mlp_bias), a partial rope (partial_rotary_factor, 0.5), an untied
//     head (written from the embeddings when tied: llama.cpp requires
//     one).
//
//   - PhiForCausalLM (Phi-2, Phi-1.5) → GGUF arch "phi2": one LayerNorm
//     per block, its output going through the attention and the MLP side
//     by side (both added to the block's input), self_attn.dense as the
//     attention's output, the MLP mlp.fc1, GELU in its tanh form,
//     mlp.fc2, biases everywhere, model.final_layernorm, a partial rope
//     (partial_rotary_factor, 0.4), and the head with its bias.
//
//   - GPTNeoXForCausalLM (Pythia, GPT-NeoX-20B, Dolly v2, RedPajama-INCITE)
//     → GGUF arch "gptneox": gpt_neox.* names, the attention's
//     query_key_value interleaved per head (q, k, v of head 0, then head
//     1's, ...) and written as llama.cpp's q, k, v blocks, attention.dense,
//     mlp.dense_h_to_4h, GELU, mlp.dense_4h_to_h, biases everywhere, two
//     LayerNorms side by side when use_parallel_residual (the default),
//     a partial rope (rotary_pct, 0.25), embed_out as the head. Its "gelu"
//     is the exact form; llama.cpp's is the tanh form, within 1e-3.
//
// llama.cpp's graphs of all of them project the queries to the hidden
// size: heads × head size must be hidden_size.

// lnLlamaConfig holds Starcoder2Config's and NemotronConfig's names.
type lnLlamaConfig struct {
	NormEpsilon   *float64 `json:"norm_epsilon"` // Starcoder2Config
	NormEps       *float64 `json:"norm_eps"`     // NemotronConfig
	UseBias       *bool    `json:"use_bias"`     // Starcoder2Config
	AttentionBias *bool    `json:"attention_bias"`
	MLPBias       *bool    `json:"mlp_bias"`
	QKLayernorm   *bool    `json:"qk_layernorm"` // PhiConfig
	RotaryPct     *float64 `json:"rotary_pct"`   // GPTNeoXConfig
	RotaryEmbBase *float64 `json:"rotary_emb_base"`
	ParallelRes   *bool    `json:"use_parallel_residual"`
	UseQKVBias    *bool    `json:"use_qkv_bias"` // StableLmConfig
}

// lnLlamaDefaults sets NemotronConfig's and PhiConfig's defaults that the
// Llama path reads (partial_rotary_factor 0.5, Nemotron's hidden_act relu2
// and 4096 positions), and refuses Phi-2's first checkpoints (model_type
// "phi-msft": GPT-2's config names and Wqkv/mixer tensors).
func (c *hfConfig) lnLlamaDefaults(arch archSpec) error {
	switch arch.gguf {
	case "gptneox":
		if c.lnErr != nil {
			return fmt.Errorf("convert: config.json: %w", c.lnErr)
		}
		// GPTNeoXConfig's names and defaults: rotary_pct (which
		// transformers 4 reads over partial_rotary_factor; transformers 5
		// writes it into rope_parameters) 0.25, base rotary_emb_base
		// (10000), 2048 positions, exact GELU.
		if c.LNLlama.RotaryPct != nil {
			c.PartialRotaryFactor = c.LNLlama.RotaryPct
		} else if p, err := parseRopeJSON(c.RopeParameters, "rope_parameters"); c.PartialRotaryFactor == nil && (err != nil || p == nil || p.PartialRotaryFactor == nil) {
			pct := 0.25
			c.PartialRotaryFactor = &pct
		}
		if c.RopeTheta == nil && isNull(c.RopeParameters) && c.LNLlama.RotaryEmbBase != nil {
			c.RopeTheta = c.LNLlama.RotaryEmbBase
		}
		if c.HiddenAct == "" {
			c.HiddenAct = "gelu"
		}
		if c.MaxPositionEmbeddings <= 0 {
			c.MaxPositionEmbeddings = 2048
		}
		return nil
	case "stablelm":
		// StableLmConfig's defaults: a quarter of each head rotated, 4096
		// positions, SiLU.
		if p, err := parseRopeJSON(c.RopeParameters, "rope_parameters"); c.PartialRotaryFactor == nil && (err != nil || p == nil || p.PartialRotaryFactor == nil) {
			quarter := 0.25
			c.PartialRotaryFactor = &quarter
		}
		if c.HiddenAct == "" {
			c.HiddenAct = "silu"
		}
		if c.MaxPositionEmbeddings <= 0 {
			c.MaxPositionEmbeddings = 4096
		}
		return nil
	case "phi2":
		if c.ModelType == "phi-msft" || c.NEmbd > 0 {
			return fmt.Errorf("%w: %s in the layout of Phi-2's first revisions (model_type %q, n_embd): convert a revision in transformers' layout (model_type \"phi\")", ErrUnsupported, arch.hf, c.ModelType)
		}
	case "nemotron":
		if c.HiddenAct == "" {
			c.HiddenAct = "relu2"
		}
		if c.MaxPositionEmbeddings <= 0 {
			c.MaxPositionEmbeddings = 4096
		}
	default:
		return nil
	}
	if c.PartialRotaryFactor == nil {
		half := 0.5
		c.PartialRotaryFactor = &half
	}
	return nil
}

// lnLlamaHparams reads StarCoder2's or Nemotron's keys into h (read as
// Llama's by hparams), with their config classes' defaults: the LayerNorm
// epsilon (1e-5), biases, the activation, the tied head, and for
// StarCoder2 the context (4096 by default) cut to the sliding window.
func (c *hfConfig) lnLlamaHparams(arch archSpec, h *hparams) error {
	if c.lnErr != nil {
		return fmt.Errorf("convert: config.json: %w", c.lnErr)
	}
	n := c.LNLlama
	h.rmsEps = 1e-5
	for _, e := range []*float64{n.NormEpsilon, n.NormEps} {
		if e != nil {
			h.rmsEps = *e
		}
	}
	if h.headDim*h.heads != h.hidden {
		return fmt.Errorf("%w: %s with %d heads of %d: llama.cpp's %s projects the queries to hidden_size %d", ErrUnsupported, arch.hf, h.heads, h.headDim, arch.gguf, h.hidden)
	}
	if arch.gguf == "gptneox" {
		if c.LayerNormEps != nil {
			h.rmsEps = *c.LayerNormEps
		}
		switch c.HiddenAct {
		case "gelu", "gelu_new", "gelu_pytorch_tanh", "gelu_fast":
		default:
			return fmt.Errorf("%w: %s with hidden_act %q: llama.cpp's gptneox runs GELU", ErrUnsupported, arch.hf, c.HiddenAct)
		}
		if b := n.AttentionBias; b != nil && !*b {
			return fmt.Errorf("%w: %s with attention_bias false: llama.cpp's gptneox requires the attention's biases", ErrUnsupported, arch.hf)
		}
		h.attnBias, h.mlpBias = true, true
		h.parallel = n.ParallelRes == nil || *n.ParallelRes
		h.tied = c.TieWordEmbeddings != nil && *c.TieWordEmbeddings
		return nil
	}
	if arch.gguf == "stablelm" {
		if c.LayerNormEps != nil {
			h.rmsEps = *c.LayerNormEps
		}
		if c.HiddenAct != "silu" && c.HiddenAct != "swish" {
			return fmt.Errorf("%w: %s with hidden_act %q: llama.cpp's stablelm gates the MLP with SiLU", ErrUnsupported, arch.hf, c.HiddenAct)
		}
		h.attnBias = n.UseQKVBias != nil && *n.UseQKVBias
		h.parallel = n.ParallelRes != nil && *n.ParallelRes
		h.tied = c.TieWordEmbeddings != nil && *c.TieWordEmbeddings
		return nil
	}
	if arch.gguf == "phi2" {
		if c.LayerNormEps != nil {
			h.rmsEps = *c.LayerNormEps // PhiConfig's name
		}
		switch {
		case c.HiddenAct != "" && c.HiddenAct != "gelu_new" && c.HiddenAct != "gelu_pytorch_tanh" && c.HiddenAct != "gelu_fast":
			return fmt.Errorf("%w: %s with hidden_act %q: llama.cpp's phi2 runs GELU in its tanh form", ErrUnsupported, arch.hf, c.HiddenAct)
		case n.QKLayernorm != nil && *n.QKLayernorm:
			return fmt.Errorf("%w: %s with qk_layernorm true: llama.cpp's phi2 has no q/k norms", ErrUnsupported, arch.hf)
		}
		// Biases everywhere, which llama.cpp's phi2 requires; PhiConfig's
		// untied head by default, written from the embeddings when tied.
		h.attnBias, h.mlpBias = true, true
		h.tied = c.TieWordEmbeddings != nil && *c.TieWordEmbeddings
		return nil
	}
	if arch.gguf == "nemotron" {
		if c.HiddenAct != "relu2" {
			return fmt.Errorf("%w: %s with hidden_act %q: llama.cpp's nemotron runs ReLU² (\"relu2\")", ErrUnsupported, arch.hf, c.HiddenAct)
		}
		// NemotronConfig's defaults: no biases, an untied head.
		h.attnBias = n.AttentionBias != nil && *n.AttentionBias
		h.mlpBias = n.MLPBias != nil && *n.MLPBias
		h.tied = c.TieWordEmbeddings != nil && *c.TieWordEmbeddings
		return nil
	}
	switch c.HiddenAct {
	case "", "gelu_pytorch_tanh", "gelu_new", "gelu_fast":
		// llama.cpp's GELU is the tanh form.
	default:
		return fmt.Errorf("%w: %s with hidden_act %q: llama.cpp's starcoder2 runs GELU in its tanh form", ErrUnsupported, arch.hf, c.HiddenAct)
	}
	if n.UseBias != nil && !*n.UseBias {
		return fmt.Errorf("%w: %s with use_bias false: llama.cpp's starcoder2 requires every projection's bias", ErrUnsupported, arch.hf)
	}
	h.attnBias, h.mlpBias = true, true
	// PretrainedConfig's default: the head is the embeddings.
	h.tied = c.TieWordEmbeddings == nil || *c.TieWordEmbeddings
	if c.MaxPositionEmbeddings <= 0 {
		h.ctxLen = 4096 // Starcoder2Config's default
	}
	if w := positiveInt(c.SlidingWindow); w > 0 && w < h.ctxLen {
		slog.Info("convert: context cut to the sliding window (llama.cpp's starcoder2 attends to every position; transformers within the window)",
			"architecture", arch.hf, "max_position_embeddings", h.ctxLen, "sliding_window", w)
		h.ctxLen = w
	} else if !isNull(c.SlidingWindow) && w == 0 {
		return fmt.Errorf("%w: config.json: sliding_window %s is not a positive integer", ErrMismatch, c.SlidingWindow)
	}
	return nil
}

// lnLlamaKeys writes the LayerNorm epsilon under LayerNorm's key, and
// GPT-NeoX's parallel residual.
func lnLlamaKeys(w *gguf.Writer, a string, h hparams) {
	w.Delete(a + ".attention.layer_norm_rms_epsilon")
	w.Set(a+".attention.layer_norm_epsilon", gguf.Float32(float32(h.rmsEps)))
	if a == "gptneox" {
		w.Set(a+".use_parallel_residual", gguf.Bool(h.parallel))
	}
}

// planLNLlama maps a StarCoder2 or Nemotron checkpoint's tensors.
func planLNLlama(st *safetensors.Model, arch archSpec, h hparams) ([]tensorPlan, error) {
	H, F := int64(h.hidden), int64(h.ffn)
	q, kv := int64(h.heads*h.headDim), int64(h.kvHeads*h.headDim)
	up, down, o, final, shift := "mlp.c_fc", "mlp.c_proj", "self_attn.o_proj", "model.norm", float32(0)
	switch arch.gguf {
	case "nemotron":
		up, down, shift = "mlp.up_proj", "mlp.down_proj", 1
	case "phi2":
		up, down, o, final = "mlp.fc1", "mlp.fc2", "self_attn.dense", "model.final_layernorm"
	}
	layer := map[string]bertTensor{
		"input_layernorm.weight":          {"attn_norm.weight", []int64{H}},
		"input_layernorm.bias":            {"attn_norm.bias", []int64{H}},
		"self_attn.q_proj.weight":         {"attn_q.weight", []int64{q, H}},
		"self_attn.k_proj.weight":         {"attn_k.weight", []int64{kv, H}},
		"self_attn.v_proj.weight":         {"attn_v.weight", []int64{kv, H}},
		o + ".weight":                     {"attn_output.weight", []int64{H, q}},
		"post_attention_layernorm.weight": {"ffn_norm.weight", []int64{H}},
		"post_attention_layernorm.bias":   {"ffn_norm.bias", []int64{H}},
		up + ".weight":                    {"ffn_up.weight", []int64{F, H}},
		down + ".weight":                  {"ffn_down.weight", []int64{H, F}},
	}
	if arch.gguf == "phi2" {
		// One norm before the attention and the MLP side by side.
		delete(layer, "post_attention_layernorm.weight")
		delete(layer, "post_attention_layernorm.bias")
	}
	attnBiases := map[string]bertTensor{
		"self_attn.q_proj.bias": {"attn_q.bias", []int64{q}},
		"self_attn.k_proj.bias": {"attn_k.bias", []int64{kv}},
		"self_attn.v_proj.bias": {"attn_v.bias", []int64{kv}},
		o + ".bias":             {"attn_output.bias", []int64{H}},
	}
	mlpBiases := map[string]bertTensor{
		up + ".bias":   {"ffn_up.bias", []int64{F}},
		down + ".bias": {"ffn_down.bias", []int64{H}},
	}
	if h.attnBias {
		maps.Copy(layer, attnBiases)
	}
	if h.mlpBias {
		maps.Copy(layer, mlpBiases)
	}
	pl := newPlanner(st, h)
	normShift := func(gg string) float32 {
		if strings.HasSuffix(gg, "norm.weight") {
			return shift
		}
		return 0
	}
	for _, t := range st.Tensors() {
		if ignoredRE.MatchString(t.Name) {
			continue
		}
		switch t.Name {
		case "lm_head.weight":
			if h.tied {
				slog.Info("convert: lm_head.weight left out: the config ties the head to the embeddings (tie_word_embeddings, true by default)", "architecture", arch.hf)
				continue
			}
		case "lm_head.bias":
			if arch.gguf == "phi2" {
				if err := pl.add(tensorPlan{ggufName: "output.bias", layer: -1}, t, []int64{int64(h.vocab)}); err != nil {
					return nil, err
				}
				continue
			}
		case final + ".weight", final + ".bias":
			gg := "output_norm" + t.Name[len(final):]
			if err := pl.add(tensorPlan{ggufName: gg, layer: -1, shift: normShift(gg)}, t, []int64{H}); err != nil {
				return nil, err
			}
			continue
		}
		if ok, err := pl.outer(t, llamaEmb, nil); ok || err != nil {
			if err != nil {
				return nil, err
			}
			continue
		}
		n, suffix, err := blockOf(layerRE, t.Name, h.layers, arch)
		if err != nil {
			return nil, err
		}
		b, ok := layer[suffix]
		if !ok {
			why := ""
			if _, bias := attnBiases[suffix]; bias {
				why = " (config.json says attention_bias false)"
			} else if _, bias := mlpBiases[suffix]; bias {
				why = " (config.json says mlp_bias false)"
			}
			return nil, fmt.Errorf("%w tensor %q in a %s checkpoint%s", ErrUnsupported, t.Name, arch.hf, why)
		}
		if err := pl.add(tensorPlan{ggufName: fmt.Sprintf("blk.%d.%s", n, b.name), layer: n, shift: normShift(b.name)}, t, b.shape); err != nil {
			return nil, err
		}
	}
	if (arch.gguf == "nemotron" || arch.gguf == "phi2") && h.tied {
		pl.tiedOutput() // llama.cpp's nemotron and phi2 require their own output matrix
	}
	required := []string{"token_embd.weight", "output_norm.weight", "output_norm.bias"}
	if !h.tied || arch.gguf == "nemotron" || arch.gguf == "phi2" {
		required = append(required, "output.weight")
	}
	if arch.gguf == "phi2" {
		required = append(required, "output.bias")
	}
	for n := range h.layers {
		for _, b := range layer {
			required = append(required, fmt.Sprintf("blk.%d.%s", n, b.name))
		}
	}
	return pl.finish(required)
}

// gptNeoXLayerRE splits a GPT-NeoX block tensor's name.
var gptNeoXLayerRE = regexp.MustCompile(`^gpt_neox\.layers\.(\d+)\.(.+)$`)

// gptNeoXIgnored are GPT-NeoX buffers some checkpoints saved: the causal
// mask, its fill value, the rope frequencies.
var gptNeoXIgnored = regexp.MustCompile(`\.attention\.(bias|masked_bias|rotary_emb\.inv_freq)$`)

// planGPTNeoX maps a GPTNeoXForCausalLM checkpoint's tensors.
func planGPTNeoX(st *safetensors.Model, arch archSpec, h hparams) ([]tensorPlan, error) {
	layer := neoxBlock("attention", h)
	regroup := perHeadQKV(h.heads, h.headDim)
	return planNamed(st, arch, h, namedCheckpoint{embed: "gpt_neox.embed_in.weight", finalNorm: "gpt_neox.final_layer_norm",
		head: "embed_out.weight", blockRE: gptNeoXLayerRE, layer: layer, ignore: gptNeoXIgnored, needOutput: true,
		regroup: map[string][]int{"attention.query_key_value.weight": regroup, "attention.query_key_value.bias": regroup}})
}

// neoxBlock names the tensors of a GPT-NeoX or BLOOM block (attn is its
// attention's name: "attention" or "self_attention"): LayerNorms, a fused
// query_key_value (per-head q, k, v), dense, and an ungated MLP, all with
// biases.
func neoxBlock(attn string, h hparams) map[string]bertTensor {
	H, F := int64(h.hidden), int64(h.ffn)
	return map[string]bertTensor{
		"input_layernorm.weight":          {"attn_norm.weight", []int64{H}},
		"input_layernorm.bias":            {"attn_norm.bias", []int64{H}},
		attn + ".query_key_value.weight":  {"attn_qkv.weight", []int64{3 * H, H}},
		attn + ".query_key_value.bias":    {"attn_qkv.bias", []int64{3 * H}},
		attn + ".dense.weight":            {"attn_output.weight", []int64{H, H}},
		attn + ".dense.bias":              {"attn_output.bias", []int64{H}},
		"post_attention_layernorm.weight": {"ffn_norm.weight", []int64{H}},
		"post_attention_layernorm.bias":   {"ffn_norm.bias", []int64{H}},
		"mlp.dense_h_to_4h.weight":        {"ffn_up.weight", []int64{F, H}},
		"mlp.dense_h_to_4h.bias":          {"ffn_up.bias", []int64{F}},
		"mlp.dense_4h_to_h.weight":        {"ffn_down.weight", []int64{H, F}},
		"mlp.dense_4h_to_h.bias":          {"ffn_down.bias", []int64{H}},
	}
}

// namedCheckpoint describes a checkpoint for planNamed: the names of its
// embeddings, final LayerNorm (weight and bias) and head, its blocks'
// names and tensors, the fused projections whose rows are read in another
// order (by suffix), the buffers to pass over, and whether llama.cpp
// requires an output matrix (the tied embeddings are then written again).
type namedCheckpoint struct {
	embed, finalNorm, head string
	blockRE                *regexp.Regexp
	layer                  map[string]bertTensor
	regroup                map[string][]int
	ignore                 *regexp.Regexp
	needOutput             bool
	// perHead are the per-head module lists written stacked, by their
	// suffixes' prefix (StableLM 2's q/k LayerNorms).
	perHead map[string]perHeadStack
	// outer are other tensors outside the blocks, all required (BLOOM's
	// embedding LayerNorm).
	outer map[string]bertTensor
}

// planNamed maps the tensors of a checkpoint nc describes (Falcon's,
// GPT-NeoX's, StableLM's, BLOOM's).
func planNamed(st *safetensors.Model, arch archSpec, h hparams, nc namedCheckpoint) ([]tensorPlan, error) {
	H, V := int64(h.hidden), int64(h.vocab)
	pl := newPlanner(st, h)
	type stackKey struct {
		layer  int
		prefix string
	}
	stacks := map[stackKey][]string{}
	for _, t := range st.Tensors() {
		if nc.ignore != nil && nc.ignore.MatchString(t.Name) {
			continue
		}
		switch t.Name {
		case nc.embed:
			if err := pl.add(tensorPlan{ggufName: "token_embd.weight", layer: -1}, t, []int64{V, H}); err != nil {
				return nil, err
			}
			continue
		case nc.finalNorm + ".weight", nc.finalNorm + ".bias":
			gg := "output_norm" + t.Name[len(nc.finalNorm):]
			if err := pl.add(tensorPlan{ggufName: gg, layer: -1}, t, []int64{H}); err != nil {
				return nil, err
			}
			continue
		case nc.head:
			if h.tied {
				slog.Info("convert: the head left out: the config ties it to the embeddings", "architecture", arch.hf, "tensor", t.Name)
				continue
			}
			if err := pl.add(tensorPlan{ggufName: "output.weight", layer: -1}, t, []int64{V, H}); err != nil {
				return nil, err
			}
			continue
		}
		if b, ok := nc.outer[t.Name]; ok {
			if err := pl.add(tensorPlan{ggufName: b.name, layer: -1}, t, b.shape); err != nil {
				return nil, err
			}
			continue
		}
		n, suffix, err := blockOf(nc.blockRE, t.Name, h.layers, arch)
		if err != nil {
			return nil, err
		}
		if prefix, head, ok := nc.perHeadPart(suffix); ok {
			s := nc.perHead[prefix]
			switch {
			case head < 0:
				return nil, fmt.Errorf("%w: tensor %q: not one of the %d heads' %sN.weight", ErrMismatch, t.Name, s.heads, prefix)
			case !slices.Equal(t.Shape, []int64{s.size}):
				return nil, fmt.Errorf("%w: tensor %q has shape %v, config.json implies [%d]", ErrMismatch, t.Name, t.Shape, s.size)
			}
			if err := checkWeightDType(st, t, h); err != nil {
				return nil, err
			}
			k := stackKey{n, prefix}
			if stacks[k] == nil {
				stacks[k] = make([]string, s.heads)
			}
			stacks[k][head] = t.Name
			continue
		}
		b, ok := nc.layer[suffix]
		if !ok {
			return nil, fmt.Errorf("%w tensor %q in a %s checkpoint", ErrUnsupported, t.Name, arch.hf)
		}
		p := tensorPlan{ggufName: fmt.Sprintf("blk.%d.%s", n, b.name), layer: n}
		if rows := nc.regroup[suffix]; rows != nil {
			name, cols := t.Name, 1
			if len(b.shape) == 2 {
				cols = int(b.shape[1])
			}
			p.shape = b.shape
			p.derive = func(*tensorWriter) ([]float32, error) { return readRows(st, name, cols, rows...) }
		}
		if err := pl.add(p, t, b.shape); err != nil {
			return nil, err
		}
	}
	if h.tied && nc.needOutput {
		pl.tiedOutput()
	}
	required := []string{"token_embd.weight", "output_norm.weight", "output_norm.bias"}
	for _, b := range nc.outer {
		required = append(required, b.name)
	}
	if !h.tied || nc.needOutput {
		required = append(required, "output.weight")
	}
	for n := range h.layers {
		for _, b := range nc.layer {
			required = append(required, fmt.Sprintf("blk.%d.%s", n, b.name))
		}
		for prefix, s := range nc.perHead {
			parts := stacks[stackKey{n, prefix}]
			if i := slices.Index(parts, ""); parts == nil || i >= 0 {
				return nil, fmt.Errorf("%w: the checkpoint has no tensor %s%d.weight in layer %d", ErrMismatch, prefix, max(i, 0), n)
			}
			pl.put(tensorPlan{ggufName: fmt.Sprintf("blk.%d.%s", n, s.name), parts: parts, shape: []int64{int64(s.heads), s.size}, layer: n})
		}
	}
	return pl.finish(required)
}

// perHeadQKV are the rows to read, in order, from a fused projection that
// holds each head's query, key and value (D rows each) one head after
// another (GPT-NeoX's query_key_value, GPTBigCode's c_attn without
// multi_query), for llama.cpp's all queries, then all keys, then all
// values.
func perHeadQKV(heads, D int) []int {
	rows := make([]int, 3*heads*D)
	for part := range 3 {
		for hd := range heads {
			for j := range D {
				rows[(part*heads+hd)*D+j] = (hd*3+part)*D + j
			}
		}
	}
	return rows
}
