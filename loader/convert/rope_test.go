package convert_test

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/loader/convert"
	"github.com/llm-go/llm/loader/gguf"
)

// llama3Scaling is a llama3 rope_scaling whose original context (64) is
// short enough that tiny-llama-st's frequencies (head_dim 16, theta 1e4)
// fall in all three bands: 1 kept, 2 interpolated, 5 divided by 8.
var llama3Scaling = map[string]any{
	"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
	"original_max_position_embeddings": 64,
}

// hfLlama3InvFreq computes transformers' _compute_llama3_parameters
// inverse frequencies, in its vectorised form.
func hfLlama3InvFreq(theta float64, dim int, factor, low, high, orig float64) []float64 {
	inv := defaultInvFreq(theta, dim)
	out := make([]float64, len(inv))
	lowWave, highWave := orig/low, orig/high
	for i, f := range inv {
		wavelen := 2 * math.Pi / f
		scaled := f
		if wavelen > lowWave {
			scaled = f / factor
		}
		smooth := (orig/wavelen - low) / (high - low)
		smoothed := (1-smooth)*scaled/factor + smooth*scaled
		if !(wavelen < highWave) && !(wavelen > lowWave) {
			scaled = smoothed
		}
		out[i] = scaled
	}
	return out
}

// hfYarn returns the rope frequencies of transformers' yarn
// (_compute_yarn_parameters, truncate true) and its default magnitude
// factor get_mscale(factor) = 0.1·ln(factor) + 1.
func hfYarn(theta float64, dim int, factor, orig, fast, slow float64) ([]float64, float64) {
	corr := func(rot float64) float64 {
		return float64(dim) * math.Log(orig/(rot*2*math.Pi)) / (2 * math.Log(theta))
	}
	low, high := max(math.Floor(corr(fast)), 0), min(math.Ceil(corr(slow)), float64(dim-1))
	if low == high {
		high += 0.001
	}
	out := make([]float64, dim/2)
	for i := range out {
		extrap := math.Pow(theta, -2*float64(i)/float64(dim))
		ramp := min(max((float64(i)-low)/(high-low), 0), 1)
		out[i] = extrap/factor*ramp + extrap*(1-ramp)
	}
	return out, 0.1*math.Log(factor) + 1
}

// convertWith converts a copy of fixture with its config edited.
func convertWith(t *testing.T, fixture, typ string, edit func(map[string]any)) (string, error) {
	t.Helper()
	dir := copyFixture(t, fixture, edit)
	out := filepath.Join(t.TempDir(), "out.gguf")
	return out, convert.Convert(context.Background(), dir, out, convert.Options{Type: typ})
}

// tensorF32s reads an F32 tensor of a GGUF file.
func tensorF32s(t *testing.T, path, name string) []float32 {
	t.Helper()
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	ti, ok := f.Tensor(name)
	if !ok {
		t.Fatalf("no tensor %s", name)
	}
	if ti.Type != gguf.TypeF32 {
		t.Fatalf("%s: type %v, want F32", name, ti.Type)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b := raw[f.DataOffset+int64(ti.Offset):][:ti.Size]
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}

// TestRopeScalingKeys converts tiny-llama-st with each rope scaling and
// checks the GGUF keys and the rope_freqs tensor llama.cpp reads.
func TestRopeScalingKeys(t *testing.T) {
	setScaling := func(rs map[string]any) func(map[string]any) {
		return func(c map[string]any) { c["rope_scaling"] = rs }
	}
	const p = "llama.rope."
	for _, tc := range []struct {
		name   string
		edit   func(map[string]any)
		str    map[string]string
		num    map[string]float64
		absent []string
		freqs  bool
	}{
		{"linear", setScaling(map[string]any{"type": "linear", "factor": 2.0}),
			map[string]string{p + "scaling.type": "linear"},
			map[string]float64{p + "scaling.factor": 2, p + "freq_base": 10000},
			[]string{p + "scaling.original_context_length"}, false},
		{"linear/rope_parameters", func(c map[string]any) {
			delete(c, "rope_theta")
			delete(c, "rope_scaling")
			c["rope_parameters"] = map[string]any{"rope_type": "linear", "factor": 4.0, "rope_theta": 500000.0}
		},
			map[string]string{p + "scaling.type": "linear"},
			map[string]float64{p + "scaling.factor": 4, p + "freq_base": 500000}, nil, false},
		{"yarn", setScaling(map[string]any{"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 512,
			"beta_fast": 32.0, "beta_slow": 1.0, "attention_factor": 1.25, "extrapolation_factor": 1.0}),
			map[string]string{p + "scaling.type": "yarn"},
			map[string]float64{p + "scaling.factor": 4, p + "scaling.original_context_length": 512,
				p + "scaling.yarn_beta_fast": 32, p + "scaling.yarn_beta_slow": 1,
				// llama.cpp's yarn multiplies by 1 + 0.1·ln(factor) itself.
				p + "scaling.attn_factor": float64(float32(1.25 / (1 + 0.1*math.Log(4)))), p + "scaling.yarn_ext_factor": 1},
			[]string{p + "scaling.yarn_attn_factor"}, false},
		{"yarn/defaults", setScaling(map[string]any{"type": "yarn", "factor": 2.0}),
			map[string]string{p + "scaling.type": "yarn"},
			map[string]float64{p + "scaling.factor": 2, p + "scaling.original_context_length": 2048},
			[]string{p + "scaling.yarn_beta_fast", p + "scaling.yarn_beta_slow", p + "scaling.attn_factor"}, false},
		{"default", setScaling(map[string]any{"rope_type": "default"}), nil, nil,
			[]string{p + "scaling.type", p + "scaling.factor"}, false},
		{"llama3", setScaling(llama3Scaling), nil, nil,
			[]string{p + "scaling.type", p + "scaling.factor", p + "scaling.original_context_length"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := convertWith(t, "tiny-llama-st", "f16", tc.edit)
			if err != nil {
				t.Fatal(err)
			}
			f, err := gguf.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			for k, want := range tc.str {
				if v, ok := f.String(k); !ok || v != want {
					t.Errorf("%s = %q (%v), want %q", k, v, ok, want)
				}
			}
			for k, want := range tc.num {
				if v, ok := f.Float(k); ok {
					if v != want {
						t.Errorf("%s = %v, want %v", k, v, want)
					}
				} else if u, ok := f.Uint(k); !ok || float64(u) != want {
					t.Errorf("%s = %v (%v), want %v", k, u, ok, want)
				}
			}
			for _, k := range tc.absent {
				if _, ok := f.Lookup(k); ok {
					t.Errorf("unexpected key %s", k)
				}
			}
			_, has := f.Tensor("rope_freqs.weight")
			if has != tc.freqs {
				t.Fatalf("rope_freqs.weight present %v, want %v", has, tc.freqs)
			}
			if !has {
				return
			}
			got := tensorF32s(t, out, "rope_freqs.weight")
			plain := defaultInvFreq(10000, 16)
			scaled := hfLlama3InvFreq(10000, 16, 8, 1, 4, 64)
			if len(got) != len(plain) {
				t.Fatalf("rope_freqs has %d values, want %d", len(got), len(plain))
			}
			bands := map[string]int{}
			for i := range got {
				want := plain[i] / scaled[i]
				if math.Abs(float64(got[i])-want) > 1e-6*want {
					t.Errorf("rope_freqs[%d] = %v, want %v", i, got[i], want)
				}
				switch {
				case want == 1:
					bands["kept"]++
				case want == 8:
					bands["scaled"]++
				default:
					bands["interpolated"]++
				}
			}
			if len(bands) != 3 {
				t.Errorf("the test frequencies cover the bands %v, want all three", bands)
			}
			t.Logf("rope_freqs %v", got)
		})
	}
}

// TestRopeScalingErrors checks the rope scalings refused, and why.
func TestRopeScalingErrors(t *testing.T) {
	for _, tc := range []struct {
		name, fixture string
		edit          func(map[string]any)
		want          error
		mention       string
	}{
		{"dynamic", "tiny-llama-st", func(c map[string]any) {
			c["rope_scaling"] = map[string]any{"type": "dynamic", "factor": 2.0}
		}, convert.ErrUnsupported, `"dynamic"`},
		{"longrope", "tiny-llama-st", func(c map[string]any) {
			c["rope_scaling"] = map[string]any{"rope_type": "longrope", "long_factor": []float64{1}, "short_factor": []float64{1}}
		}, convert.ErrUnsupported, `"longrope"`},
		{"unknown", "tiny-llama-st", func(c map[string]any) {
			c["rope_scaling"] = map[string]any{"rope_type": "fancy", "factor": 2.0}
		}, convert.ErrUnsupported, `"fancy"`},
		{"rope_parameters dynamic", "tiny-llama-st", func(c map[string]any) {
			delete(c, "rope_scaling")
			c["rope_parameters"] = map[string]any{"rope_type": "dynamic", "factor": 2.0, "rope_theta": 1e4}
		}, convert.ErrUnsupported, `rope_parameters type "dynamic"`},
		{"linear without factor", "tiny-llama-st", func(c map[string]any) {
			c["rope_scaling"] = map[string]any{"type": "linear"}
		}, convert.ErrMismatch, "factor"},
		{"llama3 without low_freq_factor", "tiny-llama-st", func(c map[string]any) {
			c["rope_scaling"] = map[string]any{"rope_type": "llama3", "factor": 8.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
		}, convert.ErrMismatch, "low_freq_factor"},
		{"llama3 bands reversed", "tiny-llama-st", func(c map[string]any) {
			c["rope_scaling"] = map[string]any{"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 4.0, "high_freq_factor": 2.0, "original_max_position_embeddings": 8192}
		}, convert.ErrMismatch, "high_freq_factor"},
		{"llama3 for qwen2", "tiny-qwen2-st", func(c map[string]any) { c["rope_scaling"] = llama3Scaling },
			convert.ErrUnsupported, "rope_freqs"},
		{"partial rotary for llama", "tiny-llama-st", func(c map[string]any) { c["partial_rotary_factor"] = 0.5 },
			convert.ErrUnsupported, "partial_rotary_factor"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := convertWith(t, tc.fixture, "f16", tc.edit)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("got %v, want %v mentioning %s", err, tc.want, tc.mention)
			}
			t.Log(err)
		})
	}
}

// refContext is a context whose logits are close to a float64 reference:
// an F32 KV cache, no flash attention (whose CPU path rounds to F16), one
// thread.
func refContext(t *testing.T, path string) *engine.Context {
	t.Helper()
	m := loadModel(t, path, engine.ModelOptions{})
	c, err := m.NewContext(engine.ContextOptions{ContextLength: 256, TypeK: "f32", TypeV: "f32",
		FlashAttention: engine.FlashAttentionOff, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestRopeScalingReference runs tiny-llama-st converted to F32 with no,
// linear, llama3 and yarn rope scaling against the float64 reference with
// the frequencies and magnitude transformers computes for each (yarn's
// from its default, an explicit attention_factor, and mscale over
// mscale_all_dim), and checks that the scaling changes the logits (the
// comparison can tell them apart).
func TestRopeScalingReference(t *testing.T) {
	prompts := readReference(t, "tiny-llama-st").Prompts
	base := refModel{hidden: 64, heads: 4, kvHeads: 2, headDim: 16, eps: 1e-5}
	yarn, yarnAttn := hfYarn(10000, 16, 4, 512, 32, 1)
	var plain [][]float32
	for _, tc := range []struct {
		name    string
		scaling map[string]any
		invFreq []float64 // nil: no reference
		attn    float64   // the rope magnitude factor (0: 1)
	}{
		{"none", nil, defaultInvFreq(10000, 16), 0},
		{"linear", map[string]any{"type": "linear", "factor": 4.0}, func() []float64 {
			f := defaultInvFreq(10000, 16)
			for i := range f {
				f[i] /= 4
			}
			return f
		}(), 0},
		{"llama3", llama3Scaling, hfLlama3InvFreq(10000, 16, 8, 1, 4, 64), 0},
		{"yarn", map[string]any{"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 512}, yarn, yarnAttn},
		{"yarn/attention_factor", map[string]any{"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 512,
			"attention_factor": 0.8}, yarn, 0.8},
		{"yarn/mscale", map[string]any{"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 512,
			"mscale": 1.0, "mscale_all_dim": 0.5}, yarn, (0.1*math.Log(4) + 1) / (0.05*math.Log(4) + 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyFixture(t, "tiny-llama-st", func(c map[string]any) {
				if tc.scaling != nil {
					c["rope_scaling"] = tc.scaling
				}
			})
			out := filepath.Join(t.TempDir(), "out.gguf")
			if err := convert.Convert(context.Background(), dir, out, convert.Options{Type: "f32"}); err != nil {
				t.Fatal(err)
			}
			c := refContext(t, out)
			var ref *refModel
			if tc.invFreq != nil {
				m := base
				m.invFreq, m.ropeAttn = tc.invFreq, tc.attn
				ref = loadLlamaRef(t, dir, m, 2)
			}
			for i, p := range prompts {
				_, got := greedy(t, c, toTokens(p.PromptIDs), 1)
				for _, v := range got {
					if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
						t.Fatalf("%q: non-finite logit", p.Text)
					}
				}
				if tc.name == "none" {
					plain = append(plain, got)
				} else if len(plain) > i {
					d := relErr(got, toF64(plain[i]))
					if d < 1e-3 {
						t.Errorf("%q: logits within %.3g of unscaled rope", p.Text, d)
					}
					t.Logf("%q: %.3g from unscaled rope", p.Text, d)
				}
				if ref == nil {
					continue
				}
				re := relErr(got, ref.forward(p.PromptIDs))
				if re > 1e-5 {
					t.Errorf("%q: relative logit error %.3g > 1e-5", p.Text, re)
				}
				t.Logf("%q: relative logit error %.3g", p.Text, re)
			}
		})
	}
}

func toF64(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// checkRef compares, for each prompt, the logits c gives after it with
// forward's, and fails beyond the relative error tol.
func checkRef(t *testing.T, c *engine.Context, prompts []refPrompt, forward func([]int) []float64, tol float64) {
	t.Helper()
	for _, p := range prompts {
		_, got := greedy(t, c, toTokens(p.PromptIDs), 1)
		re := relErr(got, forward(p.PromptIDs))
		if re > tol {
			t.Errorf("%q: relative logit error %.3g > %g", p.Text, re, tol)
		}
		t.Logf("%q: relative logit error %.3g", p.Text, re)
	}
}
