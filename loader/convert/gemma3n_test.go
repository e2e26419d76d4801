package convert_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/x448/float16"

	"github.com/llm-go/llm/loader/convert"
	"github.com/llm-go/llm/loader/gguf"
)

// The Gemma 3n fixture: 22 layers (llama.cpp's gemma3n shares keys and
// values from layer 20 on, so layers 20 and 21 take theirs from 18 and
// 19), hidden 64, 4 heads of 16 over 2 key/value heads, MLPs of 320, a
// sliding window of 4 in four layers of five, the
// vocabulary of tiny-random-gpt2 (1000 tokens, padded to 1024) with
// per-layer inputs for the first 1000; the sizes llama.cpp fixes
// (AltUp's 4 streams, LAuReL's rank 64, per-layer inputs of 256) as
// released.
const (
	g3nLayers, g3nHidden, g3nHeads, g3nKV, g3nHeadDim = 22, 64, 4, 2, 16
	g3nVocab, g3nVocabPL, g3nPL, g3nRank, g3nAltup    = 1024, 1000, 256, 64, 4
	g3nWindow                                         = 4
	// g3nClip is the fixture's altup_coef_clip: it clamps some of the
	// correction coefficients (drawn with σ 0.3).
	g3nClip = 0.25
)

// g3nFFN is layer l's MLP width (one for all, which llama.cpp requires;
// config.json gives one per layer, as the released models').
func g3nFFN(int) int { return 320 }

// g3nSliding reports whether layer l uses the sliding window.
func g3nSliding(l int) bool { return l%5 < 4 }

// g3nFixture writes a tiny Gemma 3n: Gemma3nForConditionalGeneration
// (text_config, model.language_model.*, with vision and audio tensors
// to skip) when vlm, else Gemma3nForCausalLM.
func g3nFixture(t *testing.T, vlm bool, edit func(map[string]any, []stTensor) []stTensor) string {
	t.Helper()
	dir := t.TempDir()
	ffn := make([]int, g3nLayers)
	types := make([]string, g3nLayers)
	sparsity := make([]float64, g3nLayers)
	for l := range g3nLayers {
		ffn[l], types[l] = g3nFFN(l), "full_attention"
		if g3nSliding(l) {
			types[l] = "sliding_attention"
		}
		if l < 10 {
			sparsity[l] = 0.95
		}
	}
	text := map[string]any{"model_type": "gemma3n_text", "vocab_size": g3nVocab, "vocab_size_per_layer_input": g3nVocabPL, "hidden_size": g3nHidden,
		"hidden_size_per_layer_input": g3nPL, "intermediate_size": ffn, "num_hidden_layers": g3nLayers, "num_attention_heads": g3nHeads,
		"num_key_value_heads": g3nKV, "head_dim": g3nHeadDim, "hidden_activation": "gelu_pytorch_tanh", "max_position_embeddings": 32768,
		"rms_norm_eps": 1e-6, "rope_theta": 1e6, "rope_local_base_freq": 10000.0, "rope_scaling": nil, "sliding_window": g3nWindow,
		"layer_types": types, "final_logit_softcapping": 30.0, "altup_active_idx": 0, "altup_coef_clip": g3nClip, "altup_correct_scale": true,
		"altup_num_inputs": g3nAltup, "num_kv_shared_layers": g3nLayers - 20, "laurel_rank": g3nRank, "activation_sparsity_pattern": sparsity,
		"attention_bias": false, "tie_word_embeddings": true, "bos_token_id": 98, "eos_token_id": 98, "pad_token_id": 0}
	cfg := text
	prefix := "model."
	if vlm {
		cfg = map[string]any{"architectures": []string{"Gemma3nForConditionalGeneration"}, "model_type": "gemma3n", "text_config": text,
			"vision_config": map[string]any{"hidden_size": 8}, "audio_config": map[string]any{"hidden_size": 8}, "tie_word_embeddings": true}
		prefix = "model.language_model."
	} else {
		text["architectures"] = []string{"Gemma3nForCausalLM"}
	}
	copyHFFiles(t, "tiny-random-gpt2", dir, func(m map[string]any) { clear(m); maps.Copy(m, cfg) })
	r := rand.New(rand.NewPCG(73, 8))
	w := randWeights{r}
	H, L, P := int64(g3nHidden), int64(g3nLayers), int64(g3nPL)
	ts := []stTensor{f32Tensor(prefix+"embed_tokens.weight", []int64{g3nVocab, H}, randn(r, g3nVocab*g3nHidden, 0.125)),
		f32Tensor(prefix+"embed_tokens_per_layer.weight", []int64{g3nVocabPL, L * P}, randn(r, g3nVocabPL*g3nLayers*g3nPL, 0.06)),
		w.mat(prefix+"per_layer_model_projection.weight", L*P, H), w.vec(prefix+"per_layer_projection_norm.weight", P, 1, 0.1),
		w.vec(prefix+"norm.weight", H, 1, 0.1)}
	for i := range g3nAltup - 1 {
		ts = append(ts, w.mat(fmt.Sprintf("%saltup_projections.%d.weight", prefix, i), H, H), w.mat(fmt.Sprintf("%saltup_unembed_projections.%d.weight", prefix, i), H, H))
	}
	if vlm {
		ts = append(ts, w.mat("model.vision_tower.timm_model.stem.conv.weight", 8, 8), w.mat("model.audio_tower.subsample_conv_projection.input_proj_linear.weight", 8, 8),
			w.mat("model.embed_vision.embedding_projection.weight", 8, 8), w.mat("model.embed_audio.embedding_projection.weight", 8, 8))
	}
	for l := range g3nLayers {
		p := fmt.Sprintf("%slayers.%d.", prefix, l)
		F := int64(g3nFFN(l))
		q, kv := int64(g3nHeads*g3nHeadDim), int64(g3nKV*g3nHeadDim)
		ts = append(ts, w.vec(p+"input_layernorm.weight", H, 1, 0.1), w.mat(p+"self_attn.q_proj.weight", q, H), w.mat(p+"self_attn.k_proj.weight", kv, H),
			w.mat(p+"self_attn.v_proj.weight", kv, H), w.mat(p+"self_attn.o_proj.weight", H, q), w.vec(p+"self_attn.q_norm.weight", g3nHeadDim, 1, 0.2),
			w.vec(p+"self_attn.k_norm.weight", g3nHeadDim, 1, 0.2), w.vec(p+"post_attention_layernorm.weight", H, 1, 0.1),
			w.vec(p+"pre_feedforward_layernorm.weight", H, 1, 0.1), w.mat(p+"mlp.gate_proj.weight", F, H), w.mat(p+"mlp.up_proj.weight", F, H),
			w.mat(p+"mlp.down_proj.weight", H, F), w.vec(p+"post_feedforward_layernorm.weight", H, 1, 0.1),
			w.mat(p+"per_layer_input_gate.weight", P, H), w.mat(p+"per_layer_projection.weight", H, P), w.vec(p+"post_per_layer_input_norm.weight", H, 1, 0.1),
			w.vec(p+"altup.correct_output_scale", H, 1, 0.2), f32Tensor(p+"altup.correction_coefs.weight", []int64{g3nAltup, g3nAltup}, randn(r, g3nAltup*g3nAltup, 0.3)),
			f32Tensor(p+"altup.prediction_coefs.weight", []int64{g3nAltup * g3nAltup, g3nAltup}, randn(r, g3nAltup*g3nAltup*g3nAltup, 0.3)),
			w.mat(p+"altup.modality_router.weight", g3nAltup, H), w.vec(p+"altup.router_norm.weight", H, 1, 0.1),
			w.mat(p+"laurel.linear_left.weight", g3nRank, H), w.mat(p+"laurel.linear_right.weight", H, g3nRank), w.vec(p+"laurel.post_laurel_norm.weight", H, 1, 0.1))
	}
	return finishFixture(t, "tiny-random-gpt2", dir, cfg, ts, edit)
}

// g3nRef is transformers' Gemma3nForCausalLM of a fixture in float64. Its
// fields leave out or change a feature (the sensitivity checks): unbiased
// is llama.cpp's σ of the activation sparsity (over n−1; transformers
// divides by n).
type g3nRef struct {
	r      *stReader
	prefix string
	// exactGelu computes GELU's tanh form in float64, not from ggml's
	// F16 table.
	exactGelu bool
	// The sensitivity edits.
	unbiased, noSparsity, ownKV, noPerLayer, noAltupPredict, noLaurel, normPlusOne, noWindow bool
	transposedPredict, noCorrectOne, noClip, padZero                                         bool
}

func (m *g3nRef) get(name string) []float64 { return m.r.get(m.prefix + name) }

// rms is Gemma3nRMSNorm: x / sqrt(mean(x²) + ε), times g when not nil.
func (m *g3nRef) rms(x, g []float64) []float64 {
	var ss float64
	for _, v := range x {
		ss += v * v
	}
	s := 1 / math.Sqrt(ss/float64(len(x))+1e-6)
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = v * s
		if g != nil {
			w := g[i]
			if m.normPlusOne {
				w++
			}
			out[i] *= w
		}
	}
	return out
}

func geluTanh(x float64) float64 {
	return 0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x)))
}

// ggmlGelu is ggml's CPU GELU: the tanh form looked up in a table of F16
// inputs and outputs (GGML_GELU_FP16) between -10 and 10.
func ggmlGelu(x float64) float64 {
	switch {
	case x <= -10:
		return 0
	case x >= 10:
		return x
	}
	in := float64(float16.Fromfloat32(float32(x)).Float32())
	return float64(float16.Fromfloat32(float32(geluTanh(in))).Float32())
}

// gelu is the reference's GELU: ggml's table or the tanh form itself.
func (m *g3nRef) gelu(x float64) float64 {
	if m.exactGelu {
		return geluTanh(x)
	}
	return ggmlGelu(x)
}

// magnitude is the root mean square of v.
func magnitude(v []float64) float64 {
	var ss float64
	for _, x := range v {
		ss += x * x
	}
	return math.Sqrt(ss / float64(len(v)))
}

// forward returns the logits after the last of ids.
func (m *g3nRef) forward(ids []int) []float64 {
	const H, A, L, P, nh, nkv, d = g3nHidden, g3nAltup, g3nLayers, g3nPL, g3nHeads, g3nKV, g3nHeadDim
	T := len(ids)
	emb, ple := m.get("embed_tokens.weight"), m.get("embed_tokens_per_layer.weight")
	plProj, plNorm := m.get("per_layer_model_projection.weight"), m.get("per_layer_projection_norm.weight")
	x0 := make([][]float64, T)
	perLayer := make([][][]float64, T) // [t][l][P]
	for t, id := range ids {
		x0[t] = make([]float64, H)
		for e := range H {
			x0[t][e] = emb[id*H+e] * math.Sqrt(H)
		}
		proj := matvec(plProj, x0[t], L*P)
		perLayer[t] = make([][]float64, L)
		for l := range L {
			pr := proj[l*P : (l+1)*P]
			for e := range pr {
				pr[e] /= math.Sqrt(H)
			}
			pr = m.rms(pr, plNorm)
			in := make([]float64, P)
			for e := range P {
				pid := id // transformers reads id 0's for the ids past the per-layer vocabulary
				if id >= g3nVocabPL {
					pid = 0
				}
				if !m.noPerLayer && !(m.padZero && id >= g3nVocabPL) {
					in[e] = ple[pid*L*P+l*P+e] * math.Sqrt(P)
				}
				in[e] = (in[e] + pr[e]) / math.Sqrt2
			}
			perLayer[t][l] = in
		}
	}
	// AltUp's streams: the embeddings and three projections of them at
	// the embeddings' magnitude.
	streams := make([][][]float64, A) // [i][t][H]
	streams[0] = x0
	for i := 1; i < A; i++ {
		w := m.get(fmt.Sprintf("altup_projections.%d.weight", i-1))
		streams[i] = make([][]float64, T)
		for t := range T {
			a := matvec(w, x0[t], H)
			s := magnitude(x0[t]) / math.Sqrt(max(magnitude(a)*magnitude(a), 1e-5))
			for e := range a {
				a[e] *= s
			}
			streams[i][t] = a
		}
	}
	keys, values := make([][][]float64, L), make([][][]float64, L) // per layer, per position
	for l := range L {
		p := fmt.Sprintf("layers.%d.", l)
		g := func(n string) []float64 { return m.get(p + n) }
		router, routerNorm := g("altup.modality_router.weight"), g("altup.router_norm.weight")
		modalities := func(x []float64) []float64 {
			in := m.rms(x, routerNorm)
			for e := range in {
				in[e] /= H
			}
			out := matvec(router, in, A)
			for i := range out {
				out[i] = math.Tanh(out[i])
			}
			return out
		}
		predCoef, corrCoef := g("altup.prediction_coefs.weight"), g("altup.correction_coefs.weight")
		if !m.noClip {
			for i, c := range corrCoef {
				corrCoef[i] = max(-g3nClip, min(g3nClip, c))
			}
		}
		pred := make([][][]float64, A)
		for i := range A {
			pred[i] = make([][]float64, T)
		}
		for t := range T {
			c := matvec(predCoef, modalities(streams[0][t]), A*A)
			for i := range A {
				v := slices.Clone(streams[i][t])
				for j := range A {
					if m.noAltupPredict {
						break
					}
					k := i*A + j
					if m.transposedPredict {
						k = j*A + i
					}
					for e := range H {
						v[e] += c[k] * streams[j][t][e]
					}
				}
				pred[i][t] = v
			}
		}
		normed, laurel := make([][]float64, T), make([][]float64, T)
		left, right, laurelNorm := g("laurel.linear_left.weight"), g("laurel.linear_right.weight"), g("laurel.post_laurel_norm.weight")
		for t := range T {
			normed[t] = m.rms(pred[0][t], g("input_layernorm.weight"))
			lo := m.rms(matvec(right, matvec(left, normed[t], g3nRank), H), laurelNorm)
			laurel[t] = slices.Clone(normed[t])
			if !m.noLaurel {
				for e := range H {
					laurel[t][e] += lo[e]
				}
			}
		}
		// Attention: layers 20 and 21 read the keys and values of the last
		// layer of their kind before them (18 sliding, 19 full).
		sliding := g3nSliding(l)
		theta := 1e6
		if sliding {
			theta = 10000
		}
		freq := defaultInvFreq(theta, d)
		src := l
		if l >= 20 && !m.ownKV {
			src = 19
			if sliding {
				src = 18
			}
		}
		qn, kn := g("self_attn.q_norm.weight"), g("self_attn.k_norm.weight")
		qs := make([][]float64, T)
		if src == l {
			keys[l], values[l] = make([][]float64, T), make([][]float64, T)
		}
		for t := range T {
			q := matvec(g("self_attn.q_proj.weight"), normed[t], nh*d)
			for h := range nh {
				copy(q[h*d:(h+1)*d], m.rms(q[h*d:(h+1)*d], qn))
				rope(q[h*d:(h+1)*d], t, freq, 1)
			}
			qs[t] = q
			if src != l {
				continue
			}
			k, v := matvec(g("self_attn.k_proj.weight"), normed[t], nkv*d), matvec(g("self_attn.v_proj.weight"), normed[t], nkv*d)
			for h := range nkv {
				copy(k[h*d:(h+1)*d], m.rms(k[h*d:(h+1)*d], kn))
				rope(k[h*d:(h+1)*d], t, freq, 1)
				copy(v[h*d:(h+1)*d], m.rms(v[h*d:(h+1)*d], nil))
			}
			keys[l][t], values[l][t] = k, v
		}
		wo := g("self_attn.o_proj.weight")
		corrected := make([][][]float64, A)
		for i := range A {
			corrected[i] = make([][]float64, T)
		}
		for t := range T {
			att := make([]float64, nh*d)
			for h := range nh {
				kvh := h / (nh / nkv)
				sc := make([]float64, t+1)
				mx := math.Inf(-1)
				for s := range t + 1 {
					if sliding && !m.noWindow && t-s >= g3nWindow {
						sc[s] = math.Inf(-1)
						continue
					}
					var dot float64
					for e := range d {
						dot += qs[t][h*d+e] * keys[src][s][kvh*d+e]
					}
					sc[s] = dot // scaled by 1
					mx = max(mx, dot)
				}
				var z float64
				for s := range sc {
					sc[s] = math.Exp(sc[s] - mx)
					z += sc[s]
				}
				for s := range sc {
					for e := range d {
						att[h*d+e] += sc[s] / z * values[src][s][kvh*d+e]
					}
				}
			}
			attn := m.rms(matvec(wo, att, H), g("post_attention_layernorm.weight"))
			attnLaurel := make([]float64, H)
			for e := range H {
				attnLaurel[e] = (pred[0][t][e] + attn[e] + laurel[t][e]) / math.Sqrt2
			}
			in := m.rms(attnLaurel, g("pre_feedforward_layernorm.weight"))
			F := g3nFFN(l)
			gate, up := matvec(g("mlp.gate_proj.weight"), in, F), matvec(g("mlp.up_proj.weight"), in, F)
			if l < 10 && !m.noSparsity {
				var mean, ss float64
				for _, x := range gate {
					mean += x
				}
				mean /= float64(F)
				for _, x := range gate {
					ss += (x - mean) * (x - mean)
				}
				n := float64(F)
				if m.unbiased {
					n--
				}
				cut := mean + math.Sqrt(ss/n)*1.6448533535003662
				for e := range gate {
					gate[e] = max(gate[e]-cut, 0)
				}
			}
			for e := range gate {
				gate[e] = m.gelu(gate[e]) * up[e]
			}
			ffw := m.rms(matvec(g("mlp.down_proj.weight"), gate, H), g("post_feedforward_layernorm.weight"))
			out := make([]float64, H)
			for e := range H {
				out[e] = attnLaurel[e] + ffw[e]
			}
			// AltUp's correction, then the per-layer input.
			cc := matvec(corrCoef, modalities(out), A)
			for i := range A {
				c := make([]float64, H)
				for e := range H {
					one := 1.0
					if m.noCorrectOne {
						one = 0
					}
					c[e] = pred[i][t][e] + (out[e]-pred[0][t][e])*(cc[i]+one)
				}
				corrected[i][t] = c
			}
			first := slices.Clone(corrected[0][t])
			scale := g("altup.correct_output_scale")
			for e := range H {
				first[e] *= scale[e]
			}
			gated := matvec(g("per_layer_input_gate.weight"), first, P)
			for e := range gated {
				gated[e] = m.gelu(gated[e]) * perLayer[t][l][e]
			}
			pp := m.rms(matvec(g("per_layer_projection.weight"), gated, H), g("post_per_layer_input_norm.weight"))
			for i := 1; i < A; i++ {
				for e := range H {
					corrected[i][t][e] += pp[e]
				}
			}
		}
		streams = corrected
	}
	// The streams brought back to the first's magnitude, averaged.
	last := T - 1
	h := slices.Clone(streams[0][last])
	for i := 1; i < A; i++ {
		u := matvec(m.get(fmt.Sprintf("altup_unembed_projections.%d.weight", i-1)), streams[i][last], H)
		s := magnitude(streams[0][last]) / math.Sqrt(max(magnitude(u)*magnitude(u), 1e-5))
		for e := range H {
			h[e] += u[e] * s
		}
	}
	for e := range h {
		h[e] /= A
	}
	logits := matvec(emb, m.rms(h, m.get("norm.weight")), g3nVocab)
	for i := range logits {
		logits[i] = 30 * math.Tanh(logits[i]/30)
	}
	return logits
}

// g3nPrompts are token ids of tiny-random-gpt2's vocabulary, longer than
// the window, one of them past the per-layer inputs' vocabulary (a padding
// token of the converted vocabulary).
var g3nPrompts = []refPrompt{{Text: "a", PromptIDs: []int{98, 5, 17, 300, 42, 1010, 64}}, {Text: "b", PromptIDs: []int{98, 700, 3, 3, 1023, 128, 1, 77, 640, 23}}}

// TestGemma3n converts tiny Gemma 3n checkpoints (Gemma3nForConditional-
// Generation's, its vision and audio towers skipped, and Gemma3nForCausalLM's)
// to llama.cpp's gemma3n and checks the metadata and the logits against
// the float64 reference, which would see the sparsity, the shared keys and
// values, the per-layer inputs, AltUp's prediction, LAuReL, the window and
// Gemma 1–3's norm weights plus one; what llama.cpp's gemma3n fixes
// otherwise is refused.
func TestGemma3n(t *testing.T) {
	for _, vlm := range []bool{true, false} {
		t.Run(fmt.Sprintf("vlm=%v", vlm), func(t *testing.T) {
			dir := g3nFixture(t, vlm, nil)
			out, f := convertDir(t, dir, "f32")
			ff, _ := f.LayerUints("gemma3n.feed_forward_length", g3nLayers)
			pl, _ := f.Tensor("per_layer_token_embd.weight")
			ap, _ := f.Tensor("altup_proj.weight")
			if f.Architecture() != "gemma3n" || len(ff) != g3nLayers || ff[0] != 320 || ff[21] != 320 ||
				!slices.Equal(pl.Shape, []uint64{g3nLayers * g3nPL, g3nVocab}) || !slices.Equal(ap.Shape, []uint64{g3nHidden, g3nHidden, g3nAltup - 1}) {
				t.Errorf("arch %q, feed_forward_length %v, per_layer_token_embd %v, altup_proj %v", f.Architecture(), ff, pl.Shape, ap.Shape)
			}
			if _, ok := f.Tensor("output.weight"); ok {
				t.Error("the tied head was written")
			}
			ctx := refContext(t, out)
			r := openST(t, dir)
			prefix := "model."
			if vlm {
				prefix = "model.language_model."
			}
			fresh := func() *g3nRef { return &g3nRef{r: r, prefix: prefix, unbiased: true} }
			// ggml's F16 GELU table flips an F16 rounding here and there
			// over 22 layers: within 3e-3 (GELU in float64 lies 5e-3 away).
			checkRef(t, ctx, g3nPrompts, fresh().forward, 3e-3)
			checkSensitiveAbove(t, ctx, g3nPrompts, fresh, 3e-3, map[string]func(*g3nRef){
				"prediction coefficients transposed":          func(m *g3nRef) { m.transposedPredict = true },
				"correction without its +1":                   func(m *g3nRef) { m.noCorrectOne = true },
				"correction coefficients unclamped":           func(m *g3nRef) { m.noClip = true },
				"zero per-layer inputs past their vocabulary": func(m *g3nRef) { m.padZero = true },
				"no activation sparsity":                      func(m *g3nRef) { m.noSparsity = true },
				"no shared keys and values":                   func(m *g3nRef) { m.ownKV = true },
				"no per-layer embeddings":                     func(m *g3nRef) { m.noPerLayer = true },
				"no AltUp prediction":                         func(m *g3nRef) { m.noAltupPredict = true },
				"no LAuReL":                                   func(m *g3nRef) { m.noLaurel = true },
				"norm weights plus one":                       func(m *g3nRef) { m.normPlusOne = true },
				"no sliding window":                           func(m *g3nRef) { m.noWindow = true },
			})
			if !vlm {
				// Q8_0: AltUp's coefficients stay F32, its matrices and
				// LAuReL's F16 (llama.cpp's quantizer leaves them), the
				// rest Q8_0; the model loads and runs.
				q8, fq := convertDir(t, dir, "q8_0")
				for name, want := range map[string]gguf.Type{"blk.0.altup_correct_coef.weight": gguf.TypeF32, "blk.0.altup_predict_coef.weight": gguf.TypeF32,
					"altup_proj.weight": gguf.TypeF16, "blk.0.laurel_l.weight": gguf.TypeF16, "per_layer_model_proj.weight": gguf.TypeF16,
					"blk.0.attn_q.weight": gguf.TypeQ8_0, "per_layer_token_embd.weight": gguf.TypeQ8_0} {
					if ti, _ := fq.Tensor(name); ti.Type != want {
						t.Errorf("Q8_0: %s is %v, want %v", name, ti.Type, want)
					}
				}
				if toks, _ := greedy(t, refContext(t, q8), toTokens(g3nPrompts[0].PromptIDs), 2); len(toks) != 2 {
					t.Errorf("Q8_0 generated %v", toks)
				}
			}
			// transformers' σ over n, against llama.cpp's over n−1.
			long := g3nPrompts[1]
			_, got := greedy(t, ctx, toTokens(long.PromptIDs), 1)
			t.Logf("transformers' σ over n: %.3g from llama.cpp; GELU in float64: %.3g", relErr(got, (&g3nRef{r: r, prefix: prefix}).forward(long.PromptIDs)),
				relErr(got, (&g3nRef{r: r, prefix: prefix, unbiased: true, exactGelu: true}).forward(long.PromptIDs)))
		})
	}
	text := func(k string, v any) func(map[string]any, []stTensor) []stTensor {
		return func(c map[string]any, ts []stTensor) []stTensor {
			c["text_config"].(map[string]any)[k] = v
			return ts
		}
	}
	for name, c := range map[string]struct {
		edit func(map[string]any, []stTensor) []stTensor
		want error
	}{
		"3 AltUp streams":         {text("altup_num_inputs", 3), convert.ErrUnsupported},
		"LAuReL rank 32":          {text("laurel_rank", 32), convert.ErrUnsupported},
		"no shared keys":          {text("num_kv_shared_layers", 0), convert.ErrUnsupported},
		"softcap 50":              {text("final_logit_softcapping", 50.0), convert.ErrUnsupported},
		"all layers full":         {text("layer_types", slices.Repeat([]string{"full_attention"}, g3nLayers)), convert.ErrUnsupported},
		"local rope base 1e5":     {text("rope_local_base_freq", 1e5), convert.ErrUnsupported},
		"sparsity everywhere":     {text("activation_sparsity_pattern", slices.Repeat([]float64{0.95}, g3nLayers)), convert.ErrUnsupported},
		"a missing AltUp stream":  {dropTensor("model.language_model.altup_projections.2.weight"), convert.ErrMismatch},
		"per-layer vocab too big": {text("vocab_size_per_layer_input", 2048), convert.ErrMismatch},
		"a short ffn list":        {text("intermediate_size", []int{256, 320}), convert.ErrMismatch},
		"no softcap":              {text("final_logit_softcapping", nil), convert.ErrUnsupported},
		"10 layers, no sparsity pattern": {func(c map[string]any, ts []stTensor) []stTensor {
			tc := c["text_config"].(map[string]any)
			tc["num_hidden_layers"], tc["num_kv_shared_layers"], tc["intermediate_size"] = 10, 0, 320
			delete(tc, "layer_types")
			delete(tc, "activation_sparsity_pattern")
			return ts
		}, convert.ErrUnsupported},
		"two MLP widths": {func(c map[string]any, ts []stTensor) []stTensor {
			ffn := slices.Repeat([]int{320}, g3nLayers)
			ffn[3] = 256
			c["text_config"].(map[string]any)["intermediate_size"] = ffn
			return ts
		}, convert.ErrUnsupported},
	} {
		err := convert.Convert(context.Background(), g3nFixture(t, true, c.edit), filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		} else if !strings.Contains(err.Error(), "gemma3n") && !strings.Contains(err.Error(), "tensor") && !strings.Contains(err.Error(), "config.json") {
			t.Errorf("%s: %v names neither the arch, the tensor nor config.json", name, err)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}
