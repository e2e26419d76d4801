package convert

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/llm-go/llm/loader/gguf"
	"github.com/llm-go/llm/loader/safetensors"
)

// Granite 4.0 (GraniteMoeHybridForCausalLM) mixes Mamba-2 layers with
// attention layers, as config.json's layer_types says (absent: all
// Mamba-2, GraniteMoeHybridConfig's default). Every layer has a shared
// MLP (shared_mlp.input_linear holds its gate rows, then its up rows),
// and with num_local_experts > 0 (default 8) also GraniteMoE's fused
// experts, whose outputs the shared MLP's are added to. Granite's four
// multipliers apply as in Granite 3. The attention rotates only with
// position_embedding_type "rope" (Granite 4.0-H has none).
//
// With some Mamba-2 layer the GGUF arch is "granitehybrid": per layer
// head_count_kv is 0 for a Mamba-2 layer, whose tensors are in_proj
// (z, then x·B·C, then dt), the causal conv1d over x·B·C ([channels, 1,
// kernel] written [channels, kernel]) and its bias (zeros when
// mamba_conv_bias is false, as llama.cpp always adds one), dt_bias, A
// written as -exp(A_log), D, the gated RMS norm and out_proj. llama.cpp
// runs only mamba_expand 2, no in/out projection biases, and normalises
// the gated output per group where transformers normalises it whole, so
// mamba_n_groups must be 1 (as in every released Granite 4.0). Without Mamba-2
// layers (Granite 4.0 Micro, 1B, 350M) the arch is "granite", or
// "granitemoe" with experts, as convert_hf_to_gguf.py writes them; the
// shared MLP is then the dense MLP or the shared expert.
//
// Unlike convert_hf_to_gguf.py, which writes a context length of 2^20 for
// the hybrid models (their attention has no positions), context_length is
// max_position_embeddings, the context the model was trained for.

// graniteHybridConfig holds config.json's Granite 4.0 fields.
type graniteHybridConfig struct {
	LayerTypes    json.RawMessage `json:"layer_types"`
	BlockTypes    json.RawMessage `json:"layers_block_type"` // layer_types' alias
	NumExperts    *int            `json:"num_local_experts"`
	ExpertsPerTok *int            `json:"num_experts_per_tok"`
	SharedFFN     *int            `json:"shared_intermediate_size"`
	AttentionBias *bool           `json:"attention_bias"`
	MambaHeads    *int            `json:"mamba_n_heads"`
	MambaGroups   *int            `json:"mamba_n_groups"`
	MambaState    *int            `json:"mamba_d_state"`
	MambaHead     json.RawMessage `json:"mamba_d_head"`
	MambaConv     *int            `json:"mamba_d_conv"`
	MambaExpand   *int            `json:"mamba_expand"`
	MambaConvBias *bool           `json:"mamba_conv_bias"`
	MambaProjBias *bool           `json:"mamba_proj_bias"`
	TimeStepLimit json.RawMessage `json:"time_step_limit"`
}

// graniteHybrid holds a Granite 4.0 model's validated layout.
type graniteHybrid struct {
	attn  []bool // per layer: attention (else Mamba-2)
	mamba bool   // some layer is Mamba-2
	rope  bool   // the attention rotates (position_embedding_type "rope")
	// The Mamba-2 mixer: kernel width, inner size, state size, heads,
	// groups, and whether conv1d has a bias.
	dConv, dInner, dState, heads, groups int
	convBias                             bool
}

// convDim is the width of conv1d's channels, x·B·C.
func (g *graniteHybrid) convDim() int { return g.dInner + 2*g.groups*g.dState }

// inProj is the width of in_proj's output: z, x·B·C, dt.
func (g *graniteHybrid) inProj() int { return g.dInner + g.convDim() + g.heads }

// graniteLayerTypes reads layer_types: true for an attention layer.
func (c *hfConfig) graniteLayerTypes() ([]bool, error) {
	n := c.NumHiddenLayers
	raw := c.GraniteH.LayerTypes
	if isNull(raw) {
		raw = c.GraniteH.BlockTypes
	}
	var types []string
	if !isNull(raw) {
		if err := json.Unmarshal(raw, &types); err != nil {
			return nil, fmt.Errorf("%w: config.json: layer_types: %v", ErrMismatch, err)
		}
	}
	if len(types) == 0 {
		return make([]bool, max(n, 0)), nil // all Mamba-2, GraniteMoeHybridConfig's default
	}
	if len(types) != n {
		return nil, fmt.Errorf("%w: config.json: layer_types has %d entries for %d layers", ErrMismatch, len(types), n)
	}
	attn := make([]bool, n)
	for i, t := range types {
		switch t {
		case "attention":
			attn[i] = true
		case "mamba":
		default:
			return nil, fmt.Errorf("%w: config.json: layer_types[%d] is %q; Granite's layers are \"mamba\" or \"attention\"", ErrMismatch, i, t)
		}
	}
	return attn, nil
}

// graniteHybridArch is the GGUF arch of a Granite 4.0 checkpoint.
func (c *hfConfig) graniteHybridArch() (string, error) {
	attn, err := c.graniteLayerTypes()
	if err != nil {
		return "", err
	}
	switch {
	case slices.Contains(attn, false):
		return "granitehybrid", nil
	case c.graniteExperts() > 0:
		return "granitemoe", nil
	}
	return "granite", nil
}

// graniteExperts is num_local_experts, 8 when absent.
func (c *hfConfig) graniteExperts() int {
	if c.GraniteH.NumExperts == nil {
		return 8
	}
	return *c.GraniteH.NumExperts
}

// graniteHybridHparams reads and checks a Granite 4.0 config.
func (c *hfConfig) graniteHybridHparams(arch archSpec, h *hparams) error {
	gc := c.GraniteH
	g := &graniteHybrid{}
	var err error
	if g.attn, err = c.graniteLayerTypes(); err != nil {
		return err
	}
	g.mamba = slices.Contains(g.attn, false)
	switch c.PositionEmbeddingType {
	case "rope":
		g.rope = true
	case "", "nope":
	default:
		return fmt.Errorf("%w: config.json: position_embedding_type %q; Granite 4.0's attention has \"rope\" or none", ErrUnsupported, c.PositionEmbeddingType)
	}
	if gc.AttentionBias != nil && *gc.AttentionBias {
		return fmt.Errorf("%w: %s with attention_bias true is not converted", ErrUnsupported, arch.hf)
	}
	// GraniteMoeHybridAttention's head size is hidden_size / heads,
	// whatever head_dim says.
	if h.hidden%h.heads != 0 {
		return fmt.Errorf("%w: config.json: hidden_size %d is not a multiple of num_attention_heads %d", ErrMismatch, h.hidden, h.heads)
	}
	h.headDim, h.ropeDim = h.hidden/h.heads, h.hidden/h.heads
	if h.headDim%2 != 0 {
		return fmt.Errorf("%w: config.json: head dimension %d is odd", ErrMismatch, h.headDim)
	}
	shared := 1024 // GraniteMoeHybridConfig's default
	if gc.SharedFFN != nil {
		shared = *gc.SharedFFN
	}
	if shared <= 0 {
		return fmt.Errorf("%w: config.json: shared_intermediate_size %d is not positive", ErrMismatch, shared)
	}
	if experts := c.graniteExperts(); experts == 0 {
		h.ffn = shared // the shared MLP is the dense MLP
	} else {
		used := 2
		if gc.ExpertsPerTok != nil {
			used = *gc.ExpertsPerTok
		}
		h.experts, h.expertsUsed, h.expertFFN, h.sharedFFN = experts, used, h.ffn, shared
		switch {
		case experts < 2:
			return fmt.Errorf("%w: config.json: num_local_experts %d: a mixture needs 2 or more (0: none)", ErrMismatch, experts)
		case experts > maxExperts:
			return fmt.Errorf("%w: config.json: num_local_experts %d: llama.cpp runs at most %d experts", ErrUnsupported, experts, maxExperts)
		case used <= 0 || used > experts:
			return fmt.Errorf("%w: config.json: num_experts_per_tok %d must be in [1, %d]", ErrMismatch, used, experts)
		}
	}
	h.gh = g
	if !g.mamba {
		return nil
	}
	return c.graniteMamba2(arch, h, g, false)
}

// graniteMamba2 reads and checks the mamba_* sizes Granite 4.0 and Bamba
// share (their configs' defaults). perGroupNorm says the model normalises
// the gated output per group, as llama.cpp does (Bamba); Granite 4.0
// normalises it whole, which agrees for one group only.
func (c *hfConfig) graniteMamba2(arch archSpec, h *hparams, g *graniteHybrid, perGroupNorm bool) error {
	gc := c.GraniteH
	intOr := func(p *int, def int) int {
		if p == nil {
			return def
		}
		return *p
	}
	// GraniteMoeHybridConfig's defaults.
	expand := intOr(gc.MambaExpand, 2)
	g.heads, g.groups = intOr(gc.MambaHeads, 128), intOr(gc.MambaGroups, 1)
	g.dState, g.dConv = intOr(gc.MambaState, 256), intOr(gc.MambaConv, 4)
	g.convBias = gc.MambaConvBias == nil || *gc.MambaConvBias
	g.dInner = expand * h.hidden
	switch {
	case expand != 2:
		return fmt.Errorf("%w: %s with mamba_expand %d: llama.cpp runs Mamba-2 layers twice as wide as the hidden size only", ErrUnsupported, arch.hf, expand)
	case gc.MambaProjBias != nil && *gc.MambaProjBias:
		return fmt.Errorf("%w: %s with mamba_proj_bias true: llama.cpp's %s has no in_proj or out_proj bias", ErrUnsupported, arch.hf, arch.gguf)
	case g.heads <= 0 || g.dInner%g.heads != 0:
		return fmt.Errorf("%w: config.json: mamba_n_heads %d does not divide the Mamba-2 inner size %d", ErrMismatch, g.heads, g.dInner)
	case g.groups <= 0 || g.heads%g.groups != 0:
		return fmt.Errorf("%w: config.json: mamba_n_groups %d does not divide mamba_n_heads %d", ErrMismatch, g.groups, g.heads)
	case g.groups != 1 && !perGroupNorm:
		// transformers' GraniteMoeHybridRMSNormGated normalises over the
		// whole inner size, llama.cpp per group: they agree for one group
		// (every released Granite 4.0) only.
		return fmt.Errorf("%w: %s with mamba_n_groups %d: transformers normalises the gated output over all groups at once, llama.cpp per group", ErrUnsupported, arch.hf, g.groups)
	case g.dState <= 0:
		return fmt.Errorf("%w: config.json: mamba_d_state %d is not positive", ErrMismatch, g.dState)
	case g.dConv != 3 && g.dConv != 4:
		return fmt.Errorf("%w: %s with mamba_d_conv %d: ggml's CUDA convolution runs kernels of 3 or 4 only (others abort)", ErrUnsupported, arch.hf, g.dConv)
	}
	// The mixers clamp the time step to time_step_limit (BambaMixer's,
	// which Granite 4.0's reuses); llama.cpp does not clamp.
	if err := checkTimeStepLimit(gc.TimeStepLimit); err != nil {
		return fmt.Errorf("%w: %s with %v", ErrUnsupported, arch.hf, err)
	}
	if !isNull(gc.MambaHead) {
		var auto string
		if json.Unmarshal(gc.MambaHead, &auto) != nil || auto != "auto" {
			d := positiveInt(gc.MambaHead)
			if d*g.heads != g.dInner {
				return fmt.Errorf("%w: config.json: mamba_d_head %s × mamba_n_heads %d is not the Mamba-2 inner size %d", ErrMismatch, gc.MambaHead, g.heads, g.dInner)
			}
		}
	}
	return nil
}

// graniteHybridKeys writes what llama.cpp's granite, granitemoe and
// granitehybrid read beyond the common keys: whether the attention
// rotates, the experts, and the Mamba-2 sizes with one KV head count per
// layer (0: a Mamba-2 layer).
func graniteHybridKeys(w *gguf.Writer, a string, h hparams) {
	g := h.gh
	w.Set(a+".rope.scaling.finetuned", gguf.Bool(g.rope))
	if h.experts > 0 {
		w.Set(a+".expert_count", gguf.Uint32(uint32(h.experts)))
		w.Set(a+".expert_used_count", gguf.Uint32(uint32(h.expertsUsed)))
		w.Set(a+".expert_shared_feed_forward_length", gguf.Uint32(uint32(h.sharedFFN)))
	}
	if !g.mamba {
		return
	}
	w.Set(a+".ssm.conv_kernel", gguf.Uint32(uint32(g.dConv)))
	w.Set(a+".ssm.inner_size", gguf.Uint32(uint32(g.dInner)))
	w.Set(a+".ssm.state_size", gguf.Uint32(uint32(g.dState)))
	w.Set(a+".ssm.time_step_rank", gguf.Uint32(uint32(g.heads)))
	w.Set(a+".ssm.group_count", gguf.Uint32(uint32(g.groups)))
	layerKVHeads(w, a, g.attn, h.kvHeads)
}

// planGraniteHybrid maps a Granite 4.0 checkpoint's tensors.
func planGraniteHybrid(st *safetensors.Model, arch archSpec, h hparams) ([]tensorPlan, error) {
	g := h.gh
	H := int64(h.hidden)
	Q, KV := int64(h.heads*h.headDim), int64(h.kvHeads*h.headDim)
	S := int64(h.ffn)
	moe := h.experts > 0
	if moe {
		S = int64(h.sharedFFN)
	}
	pl := newPlanner(st, h)
	add := pl.add
	fused := fusedExperts{}
	// The shared MLP is the dense MLP without experts.
	gate, up, down := "ffn_gate", "ffn_up", "ffn_down"
	if moe {
		gate, up, down = "ffn_gate_shexp", "ffn_up_shexp", "ffn_down_shexp"
	}
	layer := func(n int, suffix string, t safetensors.TensorInfo) error {
		blk := func(name string) tensorPlan { return tensorPlan{ggufName: fmt.Sprintf("blk.%d.%s", n, name), layer: n} }
		refuse := func(why string) error {
			return fmt.Errorf("%w tensor %q in a %s checkpoint: %s", ErrUnsupported, t.Name, arch.hf, why)
		}
		attn := g.attn[n]
		if attn && len(suffix) > 6 && suffix[:6] == "mamba." {
			return refuse(fmt.Sprintf("Mamba-2 weights in layer %d, an attention layer in layer_types", n))
		}
		if !attn && len(suffix) > 10 && suffix[:10] == "self_attn." {
			return refuse(fmt.Sprintf("attention weights in layer %d, a Mamba-2 layer in layer_types", n))
		}
		if rest, ok := strings.CutPrefix(suffix, "mamba."); ok {
			if ok, err := mamba2Tensor(g, blk, add, rest, t, H); ok || err != nil {
				return err
			}
		}
		switch suffix {
		case "input_layernorm.weight":
			return add(blk("attn_norm.weight"), t, []int64{H})
		case "post_attention_layernorm.weight":
			return add(blk("ffn_norm.weight"), t, []int64{H})
		case "self_attn.q_proj.weight":
			p := blk("attn_q.weight")
			p.permute = h.heads
			return add(p, t, []int64{Q, H})
		case "self_attn.k_proj.weight":
			p := blk("attn_k.weight")
			p.permute = h.kvHeads
			return add(p, t, []int64{KV, H})
		case "self_attn.v_proj.weight":
			return add(blk("attn_v.weight"), t, []int64{KV, H})
		case "self_attn.o_proj.weight":
			return add(blk("attn_output.weight"), t, []int64{H, Q})
		case "shared_mlp.input_linear.weight":
			if !t.DType.Supported() {
				return fmt.Errorf("%w: tensor %q has dtype %s; the converter reads F32, F16 and BF16 fused MLPs", ErrUnsupported, t.Name, t.DType)
			}
			for _, half := range []struct {
				name string
				sel  int
			}{{gate, rowsFirst}, {up, rowsSecond}} {
				p := blk(half.name + ".weight")
				p.shape = []int64{S, H}
				p.oss = &ossSource{weight: t.Name, sel: half.sel, experts: 1, rows: int(2 * S), cols: int(H), outIn: true}
				if err := add(p, t, []int64{2 * S, H}); err != nil {
					return err
				}
			}
			return nil
		case "shared_mlp.output_linear.weight":
			return add(blk(down+".weight"), t, []int64{H, S})
		case "block_sparse_moe.router.layer.weight":
			if !moe {
				return refuse("a router with num_local_experts 0")
			}
			return add(blk("ffn_gate_inp.weight"), t, []int64{int64(h.experts), H})
		}
		if moe && fused.add(graniteMoE, n, suffix, t) {
			return checkWeightDType(st, t, h)
		}
		return refuse("not a tensor of the model")
	}
	if err := pl.walk(arch, layerRE, llamaEmb, llamaNorm, nil, layer); err != nil {
		return nil, err
	}
	if moe {
		stacked, err := fused.plans(graniteMoE, h)
		if err != nil {
			return nil, err
		}
		pl.put(stacked...)
	}
	required := []string{"token_embd.weight", "output_norm.weight"}
	if !h.tied {
		required = append(required, "output.weight")
	}
	for n, attn := range g.attn {
		names := []string{"attn_norm.weight", "ffn_norm.weight", gate + ".weight", up + ".weight", down + ".weight"}
		if moe {
			names = append(names, "ffn_gate_inp.weight")
		}
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

// mamba2Required are the tensors of a Mamba-2 layer, after "blk.N.".
var mamba2Required = []string{"ssm_in.weight", "ssm_conv1d.weight", "ssm_conv1d.bias", "ssm_dt.bias", "ssm_a", "ssm_d", "ssm_norm.weight", "ssm_out.weight"}

// mamba2Tensor plans the Mamba-2 mixer tensor suffix (in_proj.weight,
// conv1d.weight, ..., after the mixer's prefix) of the layer blk names,
// reporting whether suffix is one: conv1d [C, 1, K] written [C, K], A
// written -exp(A_log) [heads, 1], D [heads, 1], the gated norm [groups,
// inner/groups].
func mamba2Tensor(g *graniteHybrid, blk func(string) tensorPlan, add addFunc, suffix string, t safetensors.TensorInfo, H int64) (bool, error) {
	NH, DI, CD := int64(g.heads), int64(g.dInner), int64(g.convDim())
	switch suffix {
	case "in_proj.weight":
		return true, add(blk("ssm_in.weight"), t, []int64{int64(g.inProj()), H})
	case "conv1d.weight":
		p := blk("ssm_conv1d.weight")
		p.shape = []int64{CD, int64(g.dConv)}
		return true, add(p, t, []int64{CD, 1, int64(g.dConv)})
	case "conv1d.bias":
		if !g.convBias {
			return true, fmt.Errorf("%w: tensor %q: a conv1d bias where the config says there is none", ErrMismatch, t.Name)
		}
		return true, add(blk("ssm_conv1d.bias"), t, []int64{CD})
	case "dt_bias":
		return true, add(blk("ssm_dt.bias"), t, []int64{NH})
	case "A_log":
		p := blk("ssm_a")
		name := t.Name
		p.shape, p.derive = []int64{NH, 1}, func(tw *tensorWriter) ([]float32, error) {
			v, err := loadFloat32s(tw.st, name, tw.fp8Block)
			for i := range v {
				v[i] = float32(-math.Exp(float64(v[i])))
			}
			return v, err
		}
		return true, add(p, t, []int64{NH})
	case "D":
		p := blk("ssm_d")
		p.shape = []int64{NH, 1}
		return true, add(p, t, []int64{NH})
	case "norm.weight":
		p := blk("ssm_norm.weight")
		p.shape = []int64{int64(g.groups), DI / int64(g.groups)}
		return true, add(p, t, []int64{DI})
	case "out_proj.weight":
		return true, add(blk("ssm_out.weight"), t, []int64{H, DI})
	}
	return false, nil
}

// zeroConvBias plans layer n's conv1d bias as zeros when the mixers have
// none (llama.cpp adds one whatever).
func (g *graniteHybrid) zeroConvBias(n int) []tensorPlan {
	if g.convBias {
		return nil
	}
	name := fmt.Sprintf("blk.%d.ssm_conv1d.bias", n)
	cd := int64(g.convDim())
	return []tensorPlan{{ggufName: name, shape: []int64{cd}, gen: make([]float32, cd), layer: n}}
}

// layerKVHeads writes head_count_kv per layer: kvHeads in the layers that
// attend, 0 in the others (the recurrent or convolution layers llama.cpp
// tells apart by it).
func layerKVHeads(w *gguf.Writer, a string, attn []bool, kvHeads int) {
	kv := make([]uint32, len(attn))
	for i, at := range attn {
		if at {
			kv[i] = uint32(kvHeads)
		}
	}
	w.Set(a+".attention.head_count_kv", gguf.Uint32s(kv))
}
