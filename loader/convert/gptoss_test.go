package convert_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/internal/shareddata"
	"github.com/llm-go/llm/loader/convert"
	"github.com/llm-go/llm/loader/gguf"
)

// The tiny gpt-oss checkpoint: tiny-qwen2-st's embeddings and norms
// (hidden 64), random attention of 4 heads of 32 (2 KV heads; 4×32 ≠ 64,
// as gpt-oss's 64×64 ≠ 2880, so the GGUF needs key_length), biases on
// every projection, sinks, a router with a bias and 4 experts of width 32
// (top 2).
const (
	ossHidden  = 64
	ossFFN     = 32
	ossExperts = 4
	ossHeads   = 4
	ossHeadDim = 32
	ossWindow  = 3 // layer 0 attends to the last 3 positions
)

// ossE2M1 are the values of the 16 E2M1 codes.
var ossE2M1 = [16]float64{0, 0.5, 1, 1.5, 2, 3, 4, 6, -0, -0.5, -1, -1.5, -2, -3, -4, -6}

// ossMX is a weight in MXFP4: per row, codes (one per value) and one
// E8M0 exponent per 32 values.
type ossMX struct {
	rows, cols int
	codes      []byte // [rows][cols], 0..15
	scales     []byte // [rows][cols/32]
}

func newOssMX(r *rand.Rand, rows, cols int) ossMX {
	m := ossMX{rows: rows, cols: cols, codes: make([]byte, rows*cols), scales: make([]byte, rows*cols/32)}
	for i := range m.codes {
		m.codes[i] = byte(r.IntN(16))
	}
	for i := range m.scales {
		m.scales[i] = byte(127 - 5 + r.IntN(3)) // 2^-5 .. 2^-3
	}
	return m
}

// value is the dequantized value at row i, column j.
func (m ossMX) value(i, j int) float64 {
	return ossE2M1[m.codes[i*m.cols+j]] * math.Ldexp(1, int(m.scales[i*m.cols/32+j/32])-127)
}

// dense is the [rows, cols] float64 matrix.
func (m ossMX) dense() []float64 {
	out := make([]float64, m.rows*m.cols)
	for i := range m.rows {
		for j := range m.cols {
			out[i*m.cols+j] = m.value(i, j)
		}
	}
	return out
}

// hfBlocks packs the codes as the checkpoints' *_blocks do: byte k of a
// row's block b holds value 2k in its low nibble and 2k+1 in its high one.
func (m ossMX) hfBlocks() []byte {
	out := make([]byte, m.rows*m.cols/2)
	for i := range out {
		out[i] = m.codes[2*i] | m.codes[2*i+1]<<4
	}
	return out
}

// ossLayer is one layer's generated gpt-oss weights.
type ossLayer struct {
	gateUp, down         []ossMX // per expert: [2·ffn, hidden] (rows interleave gate and up), [hidden, ffn]
	gateUpBias, downBias [][]float32
	router, routerBias   []float32
	sinks, bo            []float32
	wq, wk, wv, wo       []float32
	bq, bk, bv           []float32
}

// ossCase builds the tiny gpt-oss checkpoint, its experts in MXFP4 or
// dequantized to F32 (the BF16 releases' [experts, in, out] layout).
type ossCase struct {
	layers []ossLayer
}

func newOssCase() ossCase {
	r := rand.New(rand.NewPCG(7, 11))
	var c ossCase
	for range 2 {
		var l ossLayer
		for range ossExperts {
			l.gateUp = append(l.gateUp, newOssMX(r, 2*ossFFN, ossHidden))
			l.down = append(l.down, newOssMX(r, ossHidden, ossFFN))
			gb := randn(r, 2*ossFFN, 0.5)
			// Some biases large enough to reach the SwiGLU's clamps at ±7.
			gb[0], gb[1], gb[3] = 9, -9, 9
			l.gateUpBias = append(l.gateUpBias, gb)
			l.downBias = append(l.downBias, randn(r, ossHidden, 0.1))
		}
		l.router, l.routerBias = randn(r, ossExperts*ossHidden, 0.5), randn(r, ossExperts, 0.5)
		l.sinks, l.bo = randn(r, ossHeads, 1), randn(r, ossHidden, 0.1)
		q, kv := ossHeads*ossHeadDim, 2*ossHeadDim
		l.wq, l.wk, l.wv, l.wo = randn(r, q*ossHidden, 0.15), randn(r, kv*ossHidden, 0.15), randn(r, kv*ossHidden, 0.15), randn(r, ossHidden*q, 0.1)
		l.bq, l.bk, l.bv = randn(r, q, 0.1), randn(r, kv, 0.1), randn(r, kv, 0.1)
		c.layers = append(c.layers, l)
	}
	return c
}

// config is the checkpoint's config.json, over tiny-qwen2-st's.
func (ossCase) config(m map[string]any) {
	for k, v := range map[string]any{
		"architectures": []string{"GptOssForCausalLM"}, "model_type": "gpt_oss", "head_dim": ossHeadDim,
		"intermediate_size": ossFFN, "num_local_experts": ossExperts, "num_experts_per_tok": 2, "experts_per_token": 2,
		"sliding_window": ossWindow, "layer_types": []string{"sliding_attention", "full_attention"},
		"attention_bias": true, "swiglu_limit": 7.0, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
		"max_position_embeddings": 256,
		"rope_scaling": map[string]any{"rope_type": "yarn", "factor": 4.0, "beta_fast": 32.0, "beta_slow": 1.0,
			"truncate": true, "original_max_position_embeddings": 64},
	} {
		m[k] = v
	}
}

func u8Tensor(name string, shape []int64, b []byte) stTensor {
	return stTensor{name: name, dtype: "U8", shape: shape, data: func(w io.Writer) error { _, err := w.Write(b); return err }}
}

// fixture writes the checkpoint with mxfp4 or float experts, with edit
// applied to its config and tensors (nil: leave them), and returns its
// directory.
func (c ossCase) fixture(t *testing.T, mxfp4 bool, edit func(cfg map[string]any, ts []stTensor) []stTensor) string {
	t.Helper()
	dir := t.TempDir()
	var cfg map[string]any
	copyHFFiles(t, "tiny-qwen2-st", dir, func(m map[string]any) { c.config(m); cfg = m })
	base := shareddata.Path(t, "models", "hf", "tiny-qwen2-st")
	ts := f32Tensors(t, base, nil)
	ts = slices.DeleteFunc(ts, func(s stTensor) bool {
		return strings.Contains(s.name, ".mlp.") || strings.Contains(s.name, ".self_attn.")
	})
	E, H, I := int64(ossExperts), int64(ossHidden), int64(ossFFN)
	Q, KV := int64(ossHeads*ossHeadDim), int64(2*ossHeadDim)
	for n, l := range c.layers {
		p := layerPrefix(n)
		ts = append(ts,
			f32Tensor(p+"self_attn.q_proj.weight", []int64{Q, H}, l.wq),
			f32Tensor(p+"self_attn.k_proj.weight", []int64{KV, H}, l.wk),
			f32Tensor(p+"self_attn.v_proj.weight", []int64{KV, H}, l.wv),
			f32Tensor(p+"self_attn.o_proj.weight", []int64{H, Q}, l.wo),
			f32Tensor(p+"self_attn.q_proj.bias", []int64{Q}, l.bq),
			f32Tensor(p+"self_attn.k_proj.bias", []int64{KV}, l.bk),
			f32Tensor(p+"self_attn.v_proj.bias", []int64{KV}, l.bv),
			f32Tensor(p+"self_attn.o_proj.bias", []int64{H}, l.bo),
			f32Tensor(p+"self_attn.sinks", []int64{ossHeads}, l.sinks),
			f32Tensor(p+"mlp.router.weight", []int64{E, H}, l.router),
			f32Tensor(p+"mlp.router.bias", []int64{E}, l.routerBias),
			f32Tensor(p+"mlp.experts.gate_up_proj_bias", []int64{E, 2 * I}, slices.Concat(l.gateUpBias...)),
			f32Tensor(p+"mlp.experts.down_proj_bias", []int64{E, H}, slices.Concat(l.downBias...)))
		for _, proj := range []struct {
			name string
			m    []ossMX
		}{{"gate_up_proj", l.gateUp}, {"down_proj", l.down}} {
			rows, cols := int64(proj.m[0].rows), int64(proj.m[0].cols)
			if mxfp4 {
				var blocks, scales []byte
				for _, m := range proj.m {
					blocks, scales = append(blocks, m.hfBlocks()...), append(scales, m.scales...)
				}
				ts = append(ts,
					u8Tensor(p+"mlp.experts."+proj.name+"_blocks", []int64{E, rows, cols / 32, 16}, blocks),
					u8Tensor(p+"mlp.experts."+proj.name+"_scales", []int64{E, rows, cols / 32}, scales))
				continue
			}
			// [experts, in, out].
			var v []float32
			for _, m := range proj.m {
				for j := range m.cols {
					for i := range m.rows {
						v = append(v, float32(m.value(i, j)))
					}
				}
			}
			ts = append(ts, f32Tensor(p+"mlp.experts."+proj.name, []int64{E, cols, rows}, v))
		}
	}
	return finishFixture(t, "tiny-qwen2-st", dir, cfg, ts, edit)
}

// ossYarn returns the rope frequencies and magnitude factor of
// transformers' yarn with truncate true: factor 4, original context 64,
// beta_fast 32, beta_slow 1.
func ossYarn(theta float64, dim int) ([]float64, float64) {
	return hfYarn(theta, dim, 4, 64, 32, 1)
}

// reference is the float64 gpt-oss of the checkpoint in dir (attention
// from the file, experts from the generated weights).
func (c ossCase) reference(t *testing.T, dir string) *refModel {
	t.Helper()
	r := openST(t, dir)
	invFreq, mscale := ossYarn(10000, ossHeadDim)
	m := refModel{hidden: ossHidden, heads: ossHeads, kvHeads: 2, headDim: ossHeadDim, eps: 1e-5, invFreq: invFreq, ropeAttn: mscale}
	m.emb, m.norm = r.get("model.embed_tokens.weight"), r.get("model.norm.weight")
	m.out = m.emb
	for n, l := range c.layers {
		p := layerPrefix(n)
		L := refLayer{
			attnNorm: r.get(p + "input_layernorm.weight"),
			wq:       r.get(p + "self_attn.q_proj.weight"), wk: r.get(p + "self_attn.k_proj.weight"),
			wv: r.get(p + "self_attn.v_proj.weight"), wo: r.get(p + "self_attn.o_proj.weight"),
			bq: r.get(p + "self_attn.q_proj.bias"), bk: r.get(p + "self_attn.k_proj.bias"), bv: r.get(p + "self_attn.v_proj.bias"),
			bo: toF64(l.bo), sinks: toF64(l.sinks),
			ffnNorm: r.get(p + "post_attention_layernorm.weight"),
			router:  toF64(l.router), routerBias: toF64(l.routerBias), topK: 2, ffn: ossFFN,
		}
		if n%2 == 0 {
			L.window = ossWindow
		}
		for e := range ossExperts {
			L.oss = append(L.oss, ossRefExpert{gateUp: l.gateUp[e].dense(), gateUpBias: toF64(l.gateUpBias[e]),
				down: l.down[e].dense(), downBias: toF64(l.downBias[e])})
		}
		m.layers = append(m.layers, L)
	}
	return &m
}

// TestGptOSSReference converts the tiny gpt-oss with float experts to F32
// and checks llama.cpp's logits against a float64 evaluation of
// transformers' GptOss (sinks, biases, the sliding window, yarn rope,
// softmax over the top-k router logits, the clamped SwiGLU), and that the
// evaluation would see each of those left out.
func TestGptOSSReference(t *testing.T) {
	c := newOssCase()
	dir := c.fixture(t, false, nil)
	out, f := convertDir(t, dir, "f32")
	if f.Architecture() != "gpt-oss" {
		t.Errorf("architecture %q, want gpt-oss", f.Architecture())
	}
	for key, want := range map[string]uint64{"gpt-oss.expert_count": 4, "gpt-oss.expert_used_count": 2,
		"gpt-oss.expert_feed_forward_length": ossFFN, "gpt-oss.attention.sliding_window": ossWindow,
		"gpt-oss.rope.scaling.original_context_length": 64, "gpt-oss.attention.key_length": ossHeadDim,
		"gpt-oss.attention.value_length": ossHeadDim} {
		if v, ok := f.Uint(key); !ok || v != want {
			t.Errorf("%s = %v (%v), want %v", key, v, ok, want)
		}
	}
	for name, want := range map[string]struct {
		shape []uint64
		typ   gguf.Type
	}{
		"blk.1.ffn_gate_exps.weight":       {[]uint64{ossHidden, ossFFN, 4}, gguf.TypeF32},
		"blk.1.ffn_down_exps.weight":       {[]uint64{ossFFN, ossHidden, 4}, gguf.TypeF32},
		"blk.1.ffn_up_exps.bias":           {[]uint64{ossFFN, 4}, gguf.TypeF32},
		"blk.1.ffn_down_exps.bias":         {[]uint64{ossHidden, 4}, gguf.TypeF32},
		"blk.1.ffn_gate_inp.bias":          {[]uint64{4}, gguf.TypeF32},
		"blk.1.attn_sinks.weight":          {[]uint64{4}, gguf.TypeF32},
		"blk.1.post_attention_norm.weight": {[]uint64{ossHidden}, gguf.TypeF32},
		"output.weight":                    {[]uint64{ossHidden, 32000}, gguf.TypeF32},
	} {
		if ti, ok := f.Tensor(name); !ok || !slices.Equal(ti.Shape, want.shape) || ti.Type != want.typ {
			t.Errorf("%s: %v %+v, want shape %v type %v", name, ok, ti, want.shape, want.typ)
		}
	}

	ref := c.reference(t, dir)
	ctx := refContext(t, out)
	prompts := readReference(t, "tiny-qwen2-st").Prompts
	checkRef(t, ctx, prompts, ref.forward, 1e-5)

	// Each feature changes the logits far beyond the tolerance, so the
	// comparison above checks them all.
	checkSensitive(t, ctx, prompts, func() *refModel { return c.reference(t, dir) }, map[string]func(m *refModel){
		"no sinks":          func(m *refModel) { m.layers[0].sinks, m.layers[1].sinks = nil, nil },
		"no sliding window": func(m *refModel) { m.layers[0].window = 0 },
		"no yarn":           func(m *refModel) { m.invFreq, m.ropeAttn = defaultInvFreq(10000, ossHeadDim), 0 },
		"no output bias":    func(m *refModel) { m.layers[0].bo, m.layers[1].bo = nil, nil },
		"no router bias":    func(m *refModel) { m.layers[0].routerBias, m.layers[1].routerBias = nil, nil },
		"gate and up swapped": func(m *refModel) {
			for _, L := range m.layers {
				for _, x := range L.oss {
					for r := 0; r < len(x.gateUp)/ossHidden; r += 2 {
						for j := range ossHidden {
							a, b := r*ossHidden+j, (r+1)*ossHidden+j
							x.gateUp[a], x.gateUp[b] = x.gateUp[b], x.gateUp[a]
						}
						x.gateUpBias[r], x.gateUpBias[r+1] = x.gateUpBias[r+1], x.gateUpBias[r]
					}
				}
			}
		},
	})
}

// checkSensitive checks, on the longest prompt, that each edit of the
// reference (a feature left out) moves its logits from llama.cpp's by
// more than 1e-3, so that a comparison within 1e-5 would see the feature.
// fresh makes an unedited reference.
func checkSensitive[M interface{ forward([]int) []float64 }](t *testing.T, c *engine.Context, prompts []refPrompt, fresh func() M, edits map[string]func(M)) {
	t.Helper()
	checkSensitiveAbove(t, c, prompts, fresh, 1e-3, edits)
}

// checkSensitiveAbove is checkSensitive for a comparison within tol: each
// edit must move the reference further than tol.
func checkSensitiveAbove[M interface{ forward([]int) []float64 }](t *testing.T, c *engine.Context, prompts []refPrompt, fresh func() M, tol float64, edits map[string]func(M)) {
	t.Helper()
	long := slices.MaxFunc(prompts, func(a, b refPrompt) int { return len(a.PromptIDs) - len(b.PromptIDs) })
	_, got := greedy(t, c, toTokens(long.PromptIDs), 1)
	for name, edit := range edits {
		m := fresh()
		edit(m)
		if d := relErr(got, m.forward(long.PromptIDs)); !(d > tol) { // NaN too: no comparison
			t.Errorf("%s: the reference differs by only %.3g", name, d)
		} else {
			t.Logf("%s: %.3g from llama.cpp", name, d)
		}
	}
}

// ossDequant decodes one ggml MXFP4 row: per block of 32 values an E8M0
// exponent, then 16 bytes, byte j holding value j (low nibble) and j+16
// (high nibble).
func ossDequant(b []byte, cols int) []float64 {
	out := make([]float64, cols)
	for blk := range cols / 32 {
		q := b[blk*17 : (blk+1)*17]
		s := math.Ldexp(1, int(q[0])-127)
		for j := range 16 {
			out[blk*32+j] = ossE2M1[q[1+j]&0x0f] * s
			out[blk*32+j+16] = ossE2M1[q[1+j]>>4] * s
		}
	}
	return out
}

// TestGptOSSMXFP4 converts the MXFP4 release layout: the experts stay
// MXFP4 whatever the output type, their blocks decode to exactly the
// checkpoint's values (gate and up split from the interleaved rows), and
// llama.cpp's logits stay close to the reference (its MXFP4 products
// quantize the activations to 8 bits).
func TestGptOSSMXFP4(t *testing.T) {
	c := newOssCase()
	dir := c.fixture(t, true, nil)
	for _, typ := range []string{"f32", "q8_0"} {
		t.Run(typ, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "gpt-oss.gguf")
			if err := convert.Convert(context.Background(), dir, out, convert.Options{Type: typ}); err != nil {
				t.Fatal(err)
			}
			f, err := gguf.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			file, err := os.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			defer file.Close()
			for n, l := range c.layers {
				for _, g := range []struct {
					name string
					want func(e, r, j int) float64
					rows int
					cols int
				}{
					{"ffn_gate_exps", func(e, r, j int) float64 { return l.gateUp[e].value(2*r, j) }, ossFFN, ossHidden},
					{"ffn_up_exps", func(e, r, j int) float64 { return l.gateUp[e].value(2*r+1, j) }, ossFFN, ossHidden},
					{"ffn_down_exps", func(e, r, j int) float64 { return l.down[e].value(r, j) }, ossHidden, ossFFN},
				} {
					name := fmt.Sprintf("blk.%d.%s.weight", n, g.name)
					ti, ok := f.Tensor(name)
					if !ok || ti.Type != gguf.TypeMXFP4 {
						t.Fatalf("%s: %v %+v, want MXFP4", name, ok, ti)
					}
					raw := make([]byte, ti.Size)
					if _, err := file.ReadAt(raw, f.DataOffset+int64(ti.Offset)); err != nil {
						t.Fatal(err)
					}
					rowBytes := g.cols / 32 * 17
					for e := range ossExperts {
						for r := range g.rows {
							row := ossDequant(raw[(e*g.rows+r)*rowBytes:], g.cols)
							for j, v := range row {
								if w := g.want(e, r, j); v != w {
									t.Fatalf("%s expert %d row %d value %d: %v, want %v", name, e, r, j, v, w)
								}
							}
						}
					}
				}
			}
			if ti, _ := f.Tensor("blk.0.ffn_gate_exps.bias"); ti.Type != gguf.TypeF32 {
				t.Errorf("expert bias type %v, want F32", ti.Type)
			}
			// F32 elsewhere: within 2%. Q8_0 elsewhere as well: a token's
			// second and third experts can trade places, moving the logits
			// by up to about 10%. Wrong MXFP4 weights move them by over 100%.
			tol := 0.05
			if typ != "f32" {
				tol = 0.25
			}
			checkRef(t, refContext(t, out), readReference(t, "tiny-qwen2-st").Prompts, c.reference(t, dir).forward, tol)
		})
	}
}

// TestGptOSSErrors: gpt-oss checkpoints llama.cpp's graph cannot run, or
// whose experts disagree with config.json, are refused with the reason.
func TestGptOSSErrors(t *testing.T) {
	c := newOssCase()
	drop := dropTensor
	setCfg := setConfig
	for _, tc := range []struct {
		name   string
		mxfp4  bool
		edit   func(map[string]any, []stTensor) []stTensor
		target error
		want   string
	}{
		{"another swiglu_limit", true, setCfg("swiglu_limit", 8.0), convert.ErrUnsupported, "swiglu_limit 8"},
		{"full attention everywhere", true, setCfg("layer_types", []string{"full_attention", "full_attention"}), convert.ErrUnsupported, "layer_types"},
		{"layer_types of the wrong length", true, setCfg("layer_types", []string{"sliding_attention"}), convert.ErrMismatch, "1 entries for 2 layers"},
		{"no attention biases", true, setCfg("attention_bias", false), convert.ErrUnsupported, "attention_bias"},
		{"MXFP4 scales missing", true, drop("model.layers.1.mlp.experts.down_proj_scales"), convert.ErrMismatch, "MXFP4 scales"},
		{"MXFP4 blocks missing", true, drop("model.layers.0.mlp.experts.gate_up_proj_blocks"), convert.ErrMismatch, "_blocks"},
		{"a missing expert bias", false, drop("model.layers.0.mlp.experts.down_proj_bias"), convert.ErrMismatch, "bias"},
		{"missing sinks", true, drop("model.layers.1.self_attn.sinks"), convert.ErrMismatch, "blk.1.attn_sinks"},
		{"a missing router bias", true, drop("model.layers.0.mlp.router.bias"), convert.ErrMismatch, "blk.0.ffn_gate_inp.bias"},
		{"blocks that are not U8", true, func(_ map[string]any, ts []stTensor) []stTensor {
			ts = slices.DeleteFunc(ts, func(s stTensor) bool { return s.name == "model.layers.0.mlp.experts.down_proj_scales" })
			return append(ts, f32Tensor("model.layers.0.mlp.experts.down_proj_scales", []int64{ossExperts, ossHidden, 1}, make([]float32, ossExperts*ossHidden)))
		}, convert.ErrMismatch, "U8"},
		{"experts of another width", false, setCfg("intermediate_size", 64), convert.ErrMismatch, "config.json implies"},
		{"a dense MLP beside the experts", true, func(_ map[string]any, ts []stTensor) []stTensor {
			return append(ts, f32Tensor("model.layers.0.mlp.gate_proj.weight", []int64{ossFFN, ossHidden}, make([]float32, ossFFN*ossHidden)))
		}, convert.ErrUnsupported, "experts in every layer"},
		{"float blocks", true, func(_ map[string]any, ts []stTensor) []stTensor {
			ts = slices.DeleteFunc(ts, func(s stTensor) bool { return s.name == "model.layers.1.mlp.experts.gate_up_proj_blocks" })
			n := ossExperts * 2 * ossFFN * 2 * 16
			return append(ts, f32Tensor("model.layers.1.mlp.experts.gate_up_proj_blocks", []int64{ossExperts, 2 * ossFFN, 2, 16}, make([]float32, n)))
		}, convert.ErrMismatch, "U8"},
		{"more experts than the router has", true, setCfg("num_local_experts", 8), convert.ErrMismatch, "config.json implies [8]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := c.fixture(t, tc.mxfp4, tc.edit)
			err := convert.Convert(context.Background(), dir, filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
			if !errors.Is(err, tc.target) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want %v naming %q", err, tc.target, tc.want)
			}
		})
	}
}

// TestGptOSSQuantize quantizes the MXFP4 conversion through llama.cpp's
// quantizer (ToType, as `llm convert --type mxfp4_moe` does): the experts
// are kept as they are, the rest is Q8_0, and the logits stay near the
// reference; a k-quant, which llama.cpp would requantize the experts to,
// is refused with the types that work.
func TestGptOSSQuantize(t *testing.T) {
	c := newOssCase()
	dir := c.fixture(t, true, nil)
	err := convert.ToType(context.Background(), dir, filepath.Join(t.TempDir(), "x.gguf"), "q4_k_m", 2, nil)
	if !errors.Is(err, convert.ErrUnsupported) || !strings.Contains(err.Error(), "mxfp4_moe") {
		t.Errorf("q4_k_m: got %v, want ErrUnsupported naming mxfp4_moe", err)
	}
	out := filepath.Join(t.TempDir(), "gpt-oss-mxfp4.gguf")
	if err := convert.ToType(context.Background(), dir, out, "mxfp4_moe", 2, nil); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]gguf.Type{"blk.0.ffn_down_exps.weight": gguf.TypeMXFP4, "blk.1.ffn_gate_exps.weight": gguf.TypeMXFP4,
		"blk.0.attn_q.weight": gguf.TypeQ8_0, "blk.0.ffn_gate_exps.bias": gguf.TypeF32} {
		if ti, _ := f.Tensor(name); ti.Type != want {
			t.Errorf("%s: %v, want %v", name, ti.Type, want)
		}
	}
	checkRef(t, refContext(t, out), readReference(t, "tiny-qwen2-st").Prompts, c.reference(t, dir).forward, 0.25) // as TestGptOSSMXFP4's q8_0
}

// TestU8Refused: a U8 tensor (which the safetensors reader now opens, for
// gpt-oss's MXFP4 blocks) where a float weight belongs is refused by name
// before anything is written, for every planner.
func TestU8Refused(t *testing.T) {
	for _, tc := range []struct{ fixture, name string }{
		{"tiny-llama-st", "model.norm.weight"},
		{"tiny-random-gpt2", "ln_f.weight"},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			dir := t.TempDir()
			copyHFFiles(t, tc.fixture, dir, func(map[string]any) {})
			ts := f32Tensors(t, shareddata.Path(t, "models", "hf", tc.fixture), nil)
			for i, s := range ts {
				if strings.TrimPrefix(s.name, "transformer.") == tc.name {
					n := s.size() / 4
					ts[i] = u8Tensor(s.name, s.shape, make([]byte, n))
				}
			}
			if err := writeSafetensors(filepath.Join(dir, "model.safetensors"), ts); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(t.TempDir(), "x.gguf")
			err := convert.Convert(context.Background(), dir, out, convert.Options{})
			if !errors.Is(err, convert.ErrUnsupported) || !strings.Contains(err.Error(), "dtype U8") {
				t.Errorf("got %v, want ErrUnsupported naming dtype U8", err)
			}
			if _, err := os.Stat(out + ".tmp"); err == nil {
				t.Error("a partial output was left")
			}
		})
	}
}
