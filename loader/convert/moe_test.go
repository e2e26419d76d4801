package convert_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/internal/shareddata"
	"github.com/llm-go/llm/loader/convert"
	"github.com/llm-go/llm/loader/gguf"
	"github.com/llm-go/llm/loader/safetensors"
)

// moeCase is a tiny mixture-of-experts checkpoint made from a dense
// fixture: its attention and embeddings, and random experts in place of
// its MLP.
type moeCase struct {
	name, base, arch string
	config           map[string]any
	// router and expert are the names of a layer's router and of expert
	// e's projection (gate, up, down).
	router string
	expert func(e int, proj string) string
	ffn    int // an expert's width
	refHP  refModel
	// qkNorm adds per-head q_norm/k_norm weights (Qwen3); dropBias drops
	// the base's attention biases.
	qkNorm, dropBias bool
	// sharedFFN, when not 0, adds a shared expert of that width and its
	// gate (Qwen2-MoE), and noNorm keeps the top-k weights unnormalised.
	sharedFFN int
	noNorm    bool
}

var moeCases = []moeCase{
	{
		name: "Qwen3-MoE", base: "tiny-qwen2-st", arch: "qwen3moe",
		config: map[string]any{"architectures": []string{"Qwen3MoeForCausalLM"}, "model_type": "qwen3_moe", "head_dim": 16,
			"attention_bias": false, "num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 32,
			"norm_topk_prob": true, "decoder_sparse_step": 1, "mlp_only_layers": []int{}},
		router: "mlp.gate.weight",
		expert: func(e int, proj string) string { return fmt.Sprintf("mlp.experts.%d.%s_proj.weight", e, proj) },
		ffn:    32,
		refHP:  refModel{hidden: 64, heads: 4, kvHeads: 2, headDim: 16, eps: 1e-6, invFreq: defaultInvFreq(1e6, 16)},
		qkNorm: true, dropBias: true,
	},
	{
		name: "Qwen2-MoE", base: "tiny-qwen2-st", arch: "qwen2moe",
		config: map[string]any{"architectures": []string{"Qwen2MoeForCausalLM"}, "model_type": "qwen2_moe",
			"num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 32, "shared_expert_intermediate_size": 48,
			"norm_topk_prob": false, "decoder_sparse_step": 1, "mlp_only_layers": []int{}},
		router:    "mlp.gate.weight",
		expert:    func(e int, proj string) string { return fmt.Sprintf("mlp.experts.%d.%s_proj.weight", e, proj) },
		ffn:       32,
		refHP:     refModel{hidden: 64, heads: 4, kvHeads: 2, headDim: 16, eps: 1e-6, invFreq: defaultInvFreq(1e6, 16)},
		sharedFFN: 48, noNorm: true,
	},
	{
		name: "Mixtral", base: "tiny-llama-st", arch: "llama",
		config: map[string]any{"architectures": []string{"MixtralForCausalLM"}, "model_type": "mixtral",
			"num_local_experts": 4, "num_experts_per_tok": 2, "intermediate_size": 48},
		router: "block_sparse_moe.gate.weight",
		expert: func(e int, proj string) string {
			return fmt.Sprintf("block_sparse_moe.experts.%d.%s.weight", e, map[string]string{"gate": "w1", "up": "w3", "down": "w2"}[proj])
		},
		ffn:   48,
		refHP: refModel{hidden: 64, heads: 4, kvHeads: 2, headDim: 16, eps: 1e-5, invFreq: defaultInvFreq(1e4, 16)},
	},
}

// f32Tensor is an F32 safetensors tensor of the given values.
func f32Tensor(name string, shape []int64, v []float32) stTensor {
	raw := make([]byte, 0, 4*len(v))
	for _, x := range v {
		raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(x))
	}
	return stTensor{name: name, dtype: "F32", shape: shape, data: func(w io.Writer) error { _, err := w.Write(raw); return err }}
}

// f32Tensors reads every tensor of the checkpoint in dir as F32, for a
// fixture to edit and write again. each, when not nil, may add tensors
// after each one (copies under other names).
func f32Tensors(t *testing.T, dir string, each func(name string, shape []int64, v []float32) []stTensor) []stTensor {
	t.Helper()
	st, err := safetensors.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var ts []stTensor
	for _, ti := range st.Tensors() {
		v, err := st.Float32s(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, f32Tensor(ti.Name, ti.Shape, v))
		if each != nil {
			ts = append(ts, each(ti.Name, ti.Shape, v)...)
		}
	}
	return ts
}

// randWeights makes a fixture's random tensors from one generator.
type randWeights struct{ r *rand.Rand }

// mat is a [rows, cols] matrix of values of variance 1/cols.
func (w randWeights) mat(name string, rows, cols int64) stTensor {
	return f32Tensor(name, []int64{rows, cols}, randn(w.r, int(rows*cols), 1/math.Sqrt(float64(cols))))
}

// vec is a vector of n values around mean with standard deviation sd.
func (w randWeights) vec(name string, n int64, mean, sd float64) stTensor {
	v := randn(w.r, int(n), sd)
	for i := range v {
		v[i] += float32(mean)
	}
	return f32Tensor(name, []int64{n}, v)
}

// wideHeads replaces tiny-llama-st's attention projection s with a random
// one for 4 heads (2 KV heads) of headDim over its hidden size of 64, when
// headDim is not its 16.
func (w randWeights) wideHeads(s stTensor, headDim int) stTensor {
	p, proj, ok := strings.Cut(s.name, "self_attn.")
	if !ok || headDim == 16 {
		return s
	}
	hd := int64(headDim)
	switch proj {
	case "q_proj.weight":
		return w.mat(s.name, 4*hd, 64)
	case "k_proj.weight", "v_proj.weight":
		return w.mat(s.name, 2*hd, 64)
	case "o_proj.weight":
		return w.mat(p+"self_attn.o_proj.weight", 64, 4*hd)
	}
	return s
}

// randn returns n normal values of standard deviation sd.
func randn(r *rand.Rand, n int, sd float64) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(r.NormFloat64() * sd)
	}
	return out
}

// fixture writes the checkpoint, with edit applied to its config and
// tensors (nil: leave them) before writing, and returns its directory.
func (c moeCase) fixture(t *testing.T, edit func(cfg map[string]any, ts []stTensor) []stTensor) string {
	t.Helper()
	dir := t.TempDir()
	var cfg map[string]any
	copyHFFiles(t, c.base, dir, func(m map[string]any) {
		for k, v := range c.config {
			m[k] = v
		}
		cfg = m
	})
	st, err := safetensors.OpenDir(shareddata.Path(t, "models", "hf", c.base))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r := rand.New(rand.NewPCG(1, 2))
	var ts []stTensor
	for _, ti := range st.Tensors() {
		if strings.Contains(ti.Name, ".mlp.") || c.dropBias && strings.HasSuffix(ti.Name, "_proj.bias") {
			continue
		}
		f, err := st.Float32s(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, f32Tensor(ti.Name, ti.Shape, f))
		prefix, ok := strings.CutSuffix(ti.Name, "input_layernorm.weight")
		if !ok {
			continue
		}
		if c.qkNorm {
			for _, n := range []string{"self_attn.q_norm.weight", "self_attn.k_norm.weight"} {
				g := randn(r, 16, 0.1)
				for i := range g {
					g[i]++
				}
				ts = append(ts, f32Tensor(prefix+n, []int64{16}, g))
			}
		}
		// The router's logits spread wide, so that no two experts are
		// close to a tie that float32 rounding could break either way.
		ts = append(ts, f32Tensor(prefix+c.router, []int64{4, 64}, randn(r, 4*64, 0.5)))
		for e := range 4 {
			ts = append(ts,
				f32Tensor(prefix+c.expert(e, "gate"), []int64{int64(c.ffn), 64}, randn(r, c.ffn*64, 0.1)),
				f32Tensor(prefix+c.expert(e, "up"), []int64{int64(c.ffn), 64}, randn(r, c.ffn*64, 0.1)),
				f32Tensor(prefix+c.expert(e, "down"), []int64{64, int64(c.ffn)}, randn(r, 64*c.ffn, 0.1)))
		}
		if s := c.sharedFFN; s > 0 {
			ts = append(ts,
				f32Tensor(prefix+"mlp.shared_expert.gate_proj.weight", []int64{int64(s), 64}, randn(r, s*64, 0.1)),
				f32Tensor(prefix+"mlp.shared_expert.up_proj.weight", []int64{int64(s), 64}, randn(r, s*64, 0.1)),
				f32Tensor(prefix+"mlp.shared_expert.down_proj.weight", []int64{64, int64(s)}, randn(r, 64*s, 0.1)),
				f32Tensor(prefix+"mlp.shared_expert_gate.weight", []int64{1, 64}, randn(r, 64, 0.3)))
		}
	}
	return finishFixture(t, c.base, dir, cfg, ts, edit)
}

// finishFixture writes a test checkpoint into dir: edit (when not nil)
// applied to its config and tensors, the config written again over
// base's files, the tensors sorted by name into model.safetensors.
func finishFixture(t *testing.T, base, dir string, cfg map[string]any, ts []stTensor, edit func(map[string]any, []stTensor) []stTensor) string {
	t.Helper()
	if edit != nil {
		ts = edit(cfg, ts)
		copyHFFiles(t, base, dir, func(m map[string]any) {
			clear(m)
			for k, v := range cfg {
				m[k] = v
			}
		})
	}
	slices.SortStableFunc(ts, func(a, b stTensor) int { return strings.Compare(a.name, b.name) })
	if err := writeSafetensors(filepath.Join(dir, "model.safetensors"), ts); err != nil {
		t.Fatal(err)
	}
	return dir
}

// dropTensor and setConfig are fixture edits: without the tensor name,
// with config.json's k set to v.
func dropTensor(name string) func(map[string]any, []stTensor) []stTensor {
	return func(_ map[string]any, ts []stTensor) []stTensor {
		return slices.DeleteFunc(ts, func(s stTensor) bool { return s.name == name })
	}
}

func setConfig(k string, v any) func(map[string]any, []stTensor) []stTensor {
	return func(cfg map[string]any, ts []stTensor) []stTensor { cfg[k] = v; return ts }
}

// reference reads the checkpoint in dir as a float64 refModel.
func (c moeCase) reference(t *testing.T, dir string) *refModel {
	t.Helper()
	r := openST(t, dir)
	m := c.refHP
	m.emb, m.norm = r.get("model.embed_tokens.weight"), r.get("model.norm.weight")
	m.out = m.emb
	if r.has("lm_head.weight") {
		m.out = r.get("lm_head.weight")
	}
	for l := range 2 {
		p := layerPrefix(l)
		L := refLayer{
			attnNorm: r.get(p + "input_layernorm.weight"),
			wq:       r.get(p + "self_attn.q_proj.weight"), wk: r.get(p + "self_attn.k_proj.weight"),
			wv: r.get(p + "self_attn.v_proj.weight"), wo: r.get(p + "self_attn.o_proj.weight"),
			ffnNorm: r.get(p + "post_attention_layernorm.weight"),
			router:  r.get(p + c.router), topK: 2, ffn: c.ffn,
		}
		if c.qkNorm {
			L.qNorm, L.kNorm = r.get(p+"self_attn.q_norm.weight"), r.get(p+"self_attn.k_norm.weight")
		}
		if !c.dropBias && r.has(p+"self_attn.q_proj.bias") {
			L.bq, L.bk, L.bv = r.get(p+"self_attn.q_proj.bias"), r.get(p+"self_attn.k_proj.bias"), r.get(p+"self_attn.v_proj.bias")
		}
		if c.sharedFFN > 0 {
			L.shared = &[3][]float64{r.get(p + "mlp.shared_expert.gate_proj.weight"), r.get(p + "mlp.shared_expert.up_proj.weight"),
				r.get(p + "mlp.shared_expert.down_proj.weight")}
			L.sharedGate, L.sharedFFN = r.get(p+"mlp.shared_expert_gate.weight"), c.sharedFFN
		}
		L.noNorm = c.noNorm
		for e := range 4 {
			L.experts = append(L.experts, [3][]float64{r.get(p + c.expert(e, "gate")), r.get(p + c.expert(e, "up")), r.get(p + c.expert(e, "down"))})
		}
		m.layers = append(m.layers, L)
	}
	return &m
}

// TestMoEReference converts tiny Qwen3-MoE and Mixtral checkpoints to F32
// and checks llama.cpp's logits against a float64 evaluation of
// transformers' sparse MoE blocks (softmax router, top-2 of 4 experts
// renormalised), with an F32 KV cache and without flash attention; and
// the experts' keys and stacked tensors llama.cpp reads.
func TestMoEReference(t *testing.T) {
	for _, c := range moeCases {
		t.Run(c.name, func(t *testing.T) {
			dir := c.fixture(t, nil)
			out, f := convertDir(t, dir, "f32")
			if f.Architecture() != c.arch {
				t.Errorf("architecture %q, want %s", f.Architecture(), c.arch)
			}
			keys := map[string]uint64{c.arch + ".expert_count": 4, c.arch + ".expert_used_count": 2}
			if c.arch != "llama" {
				keys[c.arch+".expert_feed_forward_length"] = 32
			}
			if c.sharedFFN > 0 {
				keys[c.arch+".expert_shared_feed_forward_length"] = uint64(c.sharedFFN)
			}
			for key, want := range keys {
				if v, ok := f.Uint(key); !ok || v != want {
					t.Errorf("%s = %v (%v), want %v", key, v, ok, want)
				}
			}
			for name, shape := range map[string][]uint64{
				"blk.1.ffn_gate_inp.weight":  {64, 4},
				"blk.1.ffn_gate_exps.weight": {64, uint64(c.ffn), 4},
				"blk.1.ffn_up_exps.weight":   {64, uint64(c.ffn), 4},
				"blk.1.ffn_down_exps.weight": {uint64(c.ffn), 64, 4},
			} {
				if ti, ok := f.Tensor(name); !ok || !slices.Equal(ti.Shape, shape) {
					t.Errorf("%s: %v %+v, want shape %v", name, ok, ti, shape)
				}
			}
			if _, ok := f.Tensor("blk.0.ffn_gate.weight"); ok {
				t.Error("a dense ffn_gate.weight was written")
			}

			checkRef(t, refContext(t, out), readReference(t, c.base).Prompts, c.reference(t, dir).forward, 1e-5)
		})
	}
}

// TestMoEQ8 converts to Q8_0: the stacked experts are quantized, the
// router stays F32 (as convert_hf_to_gguf.py and llama.cpp's quantizer
// keep it), and the logits stay close to the reference.
func TestMoEQ8(t *testing.T) {
	c := moeCases[0]
	dir := c.fixture(t, nil)
	out := filepath.Join(t.TempDir(), "moe-q8.gguf")
	if err := convert.Convert(context.Background(), dir, out, convert.Options{Type: "q8_0"}); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	for name, typ := range map[string]gguf.Type{"blk.0.ffn_gate_inp.weight": gguf.TypeF32, "blk.0.ffn_gate_exps.weight": gguf.TypeQ8_0,
		"blk.0.ffn_down_exps.weight": gguf.TypeQ8_0, "blk.0.attn_q.weight": gguf.TypeQ8_0} {
		if ti, ok := f.Tensor(name); !ok || ti.Type != typ {
			t.Errorf("%s: %v %+v, want %v", name, ok, ti, typ)
		}
	}
	m := loadModel(t, out, engine.ModelOptions{})
	ctx, err := m.NewContext(engine.ContextOptions{ContextLength: 256})
	if err != nil {
		t.Fatal(err)
	}
	defer ctx.Close()
	p := readReference(t, c.base).Prompts[0]
	_, got := greedy(t, ctx, toTokens(p.PromptIDs), 1)
	if re := relErr(got, c.reference(t, dir).forward(p.PromptIDs)); re > 0.05 {
		t.Errorf("Q8_0: relative logit error %.3g > 0.05", re)
	} else {
		t.Logf("Q8_0: relative logit error %.3g", re)
	}
}

// TestMoEErrors: mixture-of-experts checkpoints llama.cpp's graphs cannot
// run, or whose experts disagree with config.json, are refused with the
// reason.
func TestMoEErrors(t *testing.T) {
	qwen, qwen2, mixtral := moeCases[0], moeCases[1], moeCases[2]
	drop := dropTensor
	setCfg := setConfig
	for _, tc := range []struct {
		name   string
		c      moeCase
		edit   func(map[string]any, []stTensor) []stTensor
		target error
		want   string
	}{
		{"norm_topk_prob false", qwen, setCfg("norm_topk_prob", false), convert.ErrUnsupported, "norm_topk_prob"},
		{"norm_topk_prob missing (false)", qwen, func(cfg map[string]any, ts []stTensor) []stTensor { delete(cfg, "norm_topk_prob"); return ts },
			convert.ErrUnsupported, "missing"},
		{"Qwen2-MoE with norm_topk_prob true", qwen2, setCfg("norm_topk_prob", true), convert.ErrUnsupported, "never renormalises"},
		{"a missing shared expert", qwen2, drop("model.layers.1.mlp.shared_expert.up_proj.weight"), convert.ErrMismatch, "blk.1.ffn_up_shexp"},
		{"dense layers", qwen, setCfg("mlp_only_layers", []int{1}), convert.ErrUnsupported, "mlp_only_layers"},
		{"sparse step 2", qwen, setCfg("decoder_sparse_step", 2), convert.ErrUnsupported, "decoder_sparse_step"},
		{"one expert", qwen, setCfg("num_experts", 1), convert.ErrMismatch, "num_experts"},
		{"top-k above the experts", mixtral, setCfg("num_experts_per_tok", 5), convert.ErrMismatch, "num_experts_per_tok"},
		{"a missing expert", mixtral, drop("model.layers.1.block_sparse_moe.experts.2.w3.weight"), convert.ErrMismatch, "expert 2 of blk.1.ffn_up_exps"},
		{"a missing router", qwen, drop("model.layers.0.mlp.gate.weight"), convert.ErrMismatch, "blk.0.ffn_gate_inp"},
		{"an expert beyond num_experts", qwen, func(cfg map[string]any, ts []stTensor) []stTensor {
			return append(ts, f32Tensor("model.layers.0.mlp.experts.4.up_proj.weight", []int64{32, 64}, make([]float32, 32*64)))
		}, convert.ErrMismatch, "expert 4 is outside num_experts 4"},
		{"an expert of the wrong width", qwen, setCfg("moe_intermediate_size", 16), convert.ErrMismatch, "config.json implies [64 16]"},
		{"a dense MLP beside the experts", qwen, func(cfg map[string]any, ts []stTensor) []stTensor {
			return append(ts, f32Tensor("model.layers.0.mlp.up_proj.weight", []int64{128, 64}, make([]float32, 128*64)))
		}, convert.ErrUnsupported, "experts in every layer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := tc.c.fixture(t, tc.edit)
			err := convert.Convert(context.Background(), dir, filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
			if !errors.Is(err, tc.target) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want %v naming %q", err, tc.target, tc.want)
			}
		})
	}
}
