package convert_test

import (
	"cmp"
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/loader/convert"
	"github.com/llm-go/llm/loader/gguf"
)

// l4Dims sizes a Llama 4 fixture: 4 layers over tiny-llama-st's tokenizer
// (layers 0-2 chunked with rope, layer 3 global without), experts in the
// layers interleave_moe_layer_step marks (step 0: none, moe_layers []).
type l4Dims struct {
	hidden, heads, kv, headDim int
	experts, used, ff, mlp     int
	step                       int
}

// l4Main is the fixture of most tests: 4 heads of 32 (2 KV heads; heads ×
// head size is twice the hidden size), 4 experts of 32 with 2 used and a
// shared expert in layers 1 and 3 (Maverick's interleaving), dense MLPs of
// 96 in layers 0 and 2.
var l4Main = l4Dims{hidden: 64, heads: 4, kv: 2, headDim: 32, experts: 4, used: 2, ff: 32, mlp: 96, step: 2}

// l4Long is the fixture of the long-context test, small enough for the
// reference's attention over 8300 positions: 2 heads of 8 sharing one KV
// head, experts in every layer (Scout's).
var l4Long = l4Dims{hidden: 64, heads: 2, kv: 1, headDim: 8, experts: 4, used: 1, ff: 16, mlp: 32, step: 1}

const l4Layers = 4

// moe reports whether layer l has experts.
func (d l4Dims) moe(l int) bool { return d.step > 0 && (l+1)%d.step == 0 }

// l4Dense is a dense fixture (no experts), for the fully attending layout.
var l4Dense = l4Dims{hidden: 64, heads: 4, kv: 2, headDim: 32, mlp: 96}

// l4Rope is the fixture's rope: llama3 scaling as Llama 4 Scout's (factor
// 16, both band factors 1) over an original context of 64, so that the
// lower frequencies are divided.
var l4Rope = map[string]any{"rope_type": "llama3", "factor": 16.0, "low_freq_factor": 1.0, "high_freq_factor": 1.0, "original_max_position_embeddings": 64}

// l4Layout picks the fixture's checkpoint layout.
type l4Layout struct {
	causalLM  bool // Llama4ForCausalLM, model.* names; else the VLM's language_model.* and a vision model
	perExpert bool // experts stored per expert, not fused
}

// llama4Fixture writes a Llama 4 checkpoint of dims d.
func llama4Fixture(t *testing.T, d l4Dims, lay l4Layout, edit func(map[string]any, []stTensor) []stTensor) string {
	t.Helper()
	dir := t.TempDir()
	text := map[string]any{
		"model_type": "llama4_text", "hidden_size": d.hidden, "num_hidden_layers": l4Layers, "num_attention_heads": d.heads,
		"num_key_value_heads": d.kv, "head_dim": d.headDim, "intermediate_size": d.ff, "intermediate_size_mlp": d.mlp,
		"num_local_experts": d.experts, "num_experts_per_tok": d.used, "interleave_moe_layer_step": d.step,
		"no_rope_layers": []int{1, 1, 1, 0}, "attention_chunk_size": 8192, "attn_temperature_tuning": true, "floor_scale": 8192, "attn_scale": 0.1,
		"use_qk_norm": true, "attention_bias": false, "hidden_act": "silu", "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
		"rope_scaling": l4Rope, "max_position_embeddings": 16384, "vocab_size": g4Vocab, "tie_word_embeddings": false,
		"bos_token_id": 1, "eos_token_id": 2,
	}
	if d.step == 0 {
		text["interleave_moe_layer_step"], text["moe_layers"] = 1, []int{}
	}
	cfg := text
	if !lay.causalLM {
		cfg = map[string]any{"architectures": []string{"Llama4ForConditionalGeneration"}, "model_type": "llama4", "text_config": text,
			"vision_config": map[string]any{"hidden_size": 16, "num_hidden_layers": 1}, "tie_word_embeddings": false, "image_token_index": 7}
	} else {
		text["architectures"] = []string{"Llama4ForCausalLM"}
	}
	copyHFFiles(t, "tiny-llama-st", dir, func(m map[string]any) {
		clear(m)
		for k, v := range cfg {
			m[k] = v
		}
	})
	prefix, head := "language_model.model.", "language_model.lm_head.weight"
	if lay.causalLM {
		prefix, head = "model.", "lm_head.weight"
	}
	r := rand.New(rand.NewPCG(44, uint64(d.headDim)))
	w := randWeights{r}
	H, Q, KV, E, I, F := int64(d.hidden), int64(d.heads*d.headDim), int64(d.kv*d.headDim), int64(d.experts), int64(d.ff), int64(d.mlp)
	ts := []stTensor{f32Tensor(prefix+"embed_tokens.weight", []int64{g4Vocab, H}, randn(r, g4Vocab*d.hidden, 0.1)), w.vec(prefix+"norm.weight", H, 1, 0.1),
		w.mat(head, g4Vocab, H)}
	if !lay.causalLM {
		ts = append(ts, w.mat("vision_model.patch_embedding.linear.weight", 16, 48), w.mat("multi_modal_projector.linear_1.weight", H, 16))
	}
	for l := range l4Layers {
		p := prefix + "layers." + strconv.Itoa(l) + "."
		ts = append(ts, w.vec(p+"input_layernorm.weight", H, 1, 0.1), w.vec(p+"post_attention_layernorm.weight", H, 1, 0.1),
			w.mat(p+"self_attn.q_proj.weight", Q, H), w.mat(p+"self_attn.k_proj.weight", KV, H), w.mat(p+"self_attn.v_proj.weight", KV, H),
			w.mat(p+"self_attn.o_proj.weight", H, Q))
		if !d.moe(l) {
			ts = append(ts, w.mat(p+"feed_forward.gate_proj.weight", F, H), w.mat(p+"feed_forward.up_proj.weight", F, H), w.mat(p+"feed_forward.down_proj.weight", H, F))
			continue
		}
		ts = append(ts, f32Tensor(p+"feed_forward.router.weight", []int64{E, H}, randn(r, d.experts*d.hidden, 0.5)),
			w.mat(p+"feed_forward.shared_expert.gate_proj.weight", I, H), w.mat(p+"feed_forward.shared_expert.up_proj.weight", I, H),
			w.mat(p+"feed_forward.shared_expert.down_proj.weight", H, I))
		gu := randn(r, d.experts*d.hidden*2*d.ff, 1/math.Sqrt(float64(d.hidden)))
		down := randn(r, d.experts*d.ff*d.hidden, 1/math.Sqrt(float64(d.ff)))
		if !lay.perExpert {
			ts = append(ts, f32Tensor(p+"feed_forward.experts.gate_up_proj", []int64{E, H, 2 * I}, gu),
				f32Tensor(p+"feed_forward.experts.down_proj", []int64{E, I, H}, down))
			continue
		}
		// The same experts, each projection [out, in].
		for e := range d.experts {
			gate, up, dn := make([]float32, d.ff*d.hidden), make([]float32, d.ff*d.hidden), make([]float32, d.hidden*d.ff)
			for h := range d.hidden {
				for i := range d.ff {
					gate[i*d.hidden+h] = gu[(e*d.hidden+h)*2*d.ff+i]
					up[i*d.hidden+h] = gu[(e*d.hidden+h)*2*d.ff+d.ff+i]
					dn[h*d.ff+i] = down[(e*d.ff+i)*d.hidden+h]
				}
			}
			q := p + "feed_forward.experts." + strconv.Itoa(e) + "."
			ts = append(ts, f32Tensor(q+"gate_proj.weight", []int64{I, H}, gate), f32Tensor(q+"up_proj.weight", []int64{I, H}, up),
				f32Tensor(q+"down_proj.weight", []int64{H, I}, dn))
		}
	}
	return finishFixture(t, "tiny-llama-st", dir, cfg, ts, edit)
}

// l4Ref is a float64 Llama 4 text model as transformers runs it, with
// knobs that leave out one feature each.
type l4Ref struct {
	d              l4Dims
	emb, norm, out []float64
	invFreq        []float64
	layers         []l4RefLayer
	// The features the sensitivity checks leave out: the chunks, the
	// attention temperature, the q/k norms, the rope on adjacent pairs
	// (rotate_half instead), the router's weight before the experts
	// (after instead), the shared expert.
	noChunk, noTemp, noQKNorm, ropeHalf, weightAfter, noShared bool
}

type l4RefLayer struct {
	attnNorm, ffnNorm, wq, wk, wv, wo []float64
	rope                              bool
	wg, wu, wd                        []float64 // the dense MLP, or nil
	router                            []float64
	experts                           [][3][]float64 // each expert's gate, up, down, [out, in]
	shared                            [3][]float64
}

// llama4Reference reads the fixture in dir; names are prefixed with
// prefix ("language_model." for the VLM layout).
func llama4Reference(t *testing.T, dir string, d l4Dims, prefix string) *l4Ref {
	t.Helper()
	r := openST(t, dir)
	get := func(name string) []float64 { return r.get(prefix + name) }
	m := &l4Ref{d: d, emb: get("model.embed_tokens.weight"), norm: get("model.norm.weight"), out: get("lm_head.weight"),
		invFreq: hfLlama3InvFreq(10000, d.headDim, 16, 1, 1, 64)}
	for l := range l4Layers {
		p := layerPrefix(l)
		L := l4RefLayer{attnNorm: get(p + "input_layernorm.weight"), ffnNorm: get(p + "post_attention_layernorm.weight"),
			wq: get(p + "self_attn.q_proj.weight"), wk: get(p + "self_attn.k_proj.weight"), wv: get(p + "self_attn.v_proj.weight"),
			wo: get(p + "self_attn.o_proj.weight"), rope: (l+1)%4 != 0}
		if !d.moe(l) {
			L.wg, L.wu, L.wd = get(p+"feed_forward.gate_proj.weight"), get(p+"feed_forward.up_proj.weight"), get(p+"feed_forward.down_proj.weight")
		} else {
			L.router = get(p + "feed_forward.router.weight")
			L.shared = [3][]float64{get(p + "feed_forward.shared_expert.gate_proj.weight"), get(p + "feed_forward.shared_expert.up_proj.weight"),
				get(p + "feed_forward.shared_expert.down_proj.weight")}
			H, I := d.hidden, d.ff
			if !r.has(prefix + p + "feed_forward.experts.gate_up_proj") {
				for e := range d.experts {
					q := p + "feed_forward.experts." + strconv.Itoa(e) + "."
					L.experts = append(L.experts, [3][]float64{get(q + "gate_proj.weight"), get(q + "up_proj.weight"), get(q + "down_proj.weight")})
				}
				m.layers = append(m.layers, L)
				continue
			}
			gu, down := get(p+"feed_forward.experts.gate_up_proj"), get(p+"feed_forward.experts.down_proj")
			for e := range d.experts {
				gate, up, dn := make([]float64, I*H), make([]float64, I*H), make([]float64, H*I)
				for h := range H {
					for i := range I {
						gate[i*H+h] = gu[(e*H+h)*2*I+i]
						up[i*H+h] = gu[(e*H+h)*2*I+I+i]
						dn[h*I+i] = down[(e*I+i)*H+h]
					}
				}
				L.experts = append(L.experts, [3][]float64{gate, up, dn})
			}
		}
		m.layers = append(m.layers, L)
	}
	return m
}

func l4RMS(x, g []float64, eps float64) []float64 {
	var s float64
	for _, v := range x {
		s += v * v
	}
	r := 1 / math.Sqrt(s/float64(len(x))+eps)
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = v * r
		if g != nil {
			out[i] *= g[i]
		}
	}
	return out
}

// gated is a SiLU-gated MLP of width ff: down·(silu(gate·x) ⊙ up·x).
func (m *l4Ref) gated(g, u, dn, x []float64, ff int) []float64 {
	a, b := matvec(g, x, ff), matvec(u, x, ff)
	for i := range a {
		a[i] = a[i] / (1 + math.Exp(-a[i])) * b[i]
	}
	return matvec(dn, a, m.d.hidden)
}

// moe is transformers' Llama4TextMoe: the router's top-k logits, each
// chosen expert run on the input times the sigmoid of its logit, summed,
// plus the shared expert.
func (m *l4Ref) moe(L l4RefLayer, x []float64) []float64 {
	logits := matvec(L.router, x, m.d.experts)
	order := make([]int, len(logits))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(logits[b], logits[a]) })
	out := make([]float64, m.d.hidden)
	for _, e := range order[:m.d.used] {
		s := 1 / (1 + math.Exp(-logits[e]))
		in := slices.Clone(x)
		if !m.weightAfter {
			for i := range in {
				in[i] *= s
			}
		}
		y := m.gated(L.experts[e][0], L.experts[e][1], L.experts[e][2], in, m.d.ff)
		for i, v := range y {
			if m.weightAfter {
				v *= s
			}
			out[i] += v
		}
	}
	if !m.noShared {
		for i, v := range m.gated(L.shared[0], L.shared[1], L.shared[2], x, m.d.ff) {
			out[i] += v
		}
	}
	return out
}

// forward returns the logits after ids.
func (m *l4Ref) forward(ids []int) []float64 {
	d := m.d
	H, nh, nkv, hd, T := d.hidden, d.heads, d.kv, d.headDim, len(ids)
	const chunk, eps = 8192, 1e-5
	x := make([][]float64, T)
	for i, id := range ids {
		x[i] = slices.Clone(m.emb[id*H : (id+1)*H])
	}
	for _, L := range m.layers {
		qs, ks, vs := make([][]float64, T), make([][]float64, T), make([][]float64, T)
		for i := range T {
			h := l4RMS(x[i], L.attnNorm, eps)
			q, k := matvec(L.wq, h, nh*hd), matvec(L.wk, h, nkv*hd)
			for j, v := range [][]float64{q, k} {
				n := []int{nh, nkv}[j]
				for hh := range n {
					head := v[hh*hd : (hh+1)*hd]
					if !L.rope {
						continue
					}
					if m.ropeHalf {
						rope(head, i, m.invFreq, 1)
					} else {
						ropePairs(head, i, m.invFreq, 1)
					}
					if !m.noQKNorm {
						copy(head, l4RMS(head, nil, eps))
					}
				}
			}
			if !L.rope && !m.noTemp {
				s := 1 + 0.1*math.Log(1+math.Floor(float64(i+1)/8192))
				for e := range q {
					q[e] *= s
				}
			}
			qs[i], ks[i], vs[i] = q, k, matvec(L.wv, h, nkv*hd)
		}
		att := make([][]float64, T)
		var wg sync.WaitGroup
		for part := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sc := make([]float64, T)
				for i := part; i < T; i += 2 {
					s0 := 0
					if L.rope && !m.noChunk {
						s0 = i / chunk * chunk
					}
					a := make([]float64, nh*hd)
					for j := range nh {
						kv := j / (nh / nkv)
						mx := math.Inf(-1)
						for s := s0; s <= i; s++ {
							var dot float64
							for e := range hd {
								dot += qs[i][j*hd+e] * ks[s][kv*hd+e]
							}
							sc[s] = dot / math.Sqrt(float64(hd))
							mx = max(mx, sc[s])
						}
						var z float64
						for s := s0; s <= i; s++ {
							sc[s] = math.Exp(sc[s] - mx)
							z += sc[s]
						}
						for s := s0; s <= i; s++ {
							w := sc[s] / z
							for e := range hd {
								a[j*hd+e] += w * vs[s][kv*hd+e]
							}
						}
					}
					att[i] = a
				}
			}()
		}
		wg.Wait()
		for i := range T {
			for e, v := range matvec(L.wo, att[i], H) {
				x[i][e] += v
			}
			h := l4RMS(x[i], L.ffnNorm, eps)
			var y []float64
			if L.router != nil {
				y = m.moe(L, h)
			} else {
				y = m.gated(L.wg, L.wu, L.wd, h, d.mlp)
			}
			for e, v := range y {
				x[i][e] += v
			}
		}
	}
	return matvec(m.out, l4RMS(x[T-1], m.norm, eps), len(m.out)/H)
}

// TestLlama4 converts a Llama 4 checkpoint, as the VLM stores it (the
// vision model skipped) and as Llama4ForCausalLM with experts per expert,
// and checks the keys and the logits against the float64 reference, which
// would see each feature left out.
func TestLlama4(t *testing.T) {
	prompts := readReference(t, "tiny-llama-st").Prompts
	for _, lay := range []l4Layout{{}, {causalLM: true, perExpert: true}} {
		name := "Llama4ForConditionalGeneration"
		prefix := "language_model."
		if lay.causalLM {
			name, prefix = "Llama4ForCausalLM per expert", ""
		}
		t.Run(name, func(t *testing.T) {
			dir := llama4Fixture(t, l4Main, lay, nil)
			out := filepath.Join(t.TempDir(), "l4.gguf")
			if err := convert.Convert(context.Background(), dir, out, convert.Options{Type: "f32", Name: "x"}); err != nil {
				t.Fatal(err)
			}
			f, err := gguf.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			if f.Architecture() != "llama4" {
				t.Fatalf("architecture %q", f.Architecture())
			}
			d := l4Main
			for k, v := range map[string]uint64{"feed_forward_length": uint64(d.mlp), "expert_feed_forward_length": uint64(d.ff), "expert_count": uint64(d.experts),
				"expert_used_count": uint64(d.used), "interleave_moe_layer_step": uint64(d.step), "attention.key_length": uint64(d.headDim),
				"rope.dimension_count": uint64(d.headDim), "context_length": 16384} {
				if got, ok := f.Uint("llama4." + k); !ok || got != v {
					t.Errorf("%s = %d (%v), want %d", k, got, ok, v)
				}
			}
			if _, ok := f.Uint("llama4.attention.sliding_window"); ok {
				t.Error("attention.sliding_window written for a chunked model")
			}
			for name, shape := range map[string][]uint64{"blk.1.ffn_gate_inp.weight": {64, 4}, "blk.3.ffn_up_exps.weight": {64, 32, 4},
				"blk.3.ffn_down_exps.weight": {32, 64, 4}, "blk.1.ffn_gate_shexp.weight": {64, 32}, "blk.2.ffn_down.weight": {96, 64},
				"rope_freqs.weight": {16}} {
				if ti, ok := f.Tensor(name); !ok || !slices.Equal(ti.Shape, shape) {
					t.Errorf("%s: %+v (%v), want shape %v", name, ti, ok, shape)
				}
			}
			for _, absent := range []string{"blk.0.ffn_gate_inp.weight", "blk.1.ffn_gate.weight", "v.patch_embd.weight"} {
				if _, ok := f.Tensor(absent); ok {
					t.Errorf("%s written", absent)
				}
			}
			ctx := refContext(t, out)
			checkRef(t, ctx, prompts, llama4Reference(t, dir, d, prefix).forward, 1e-5)
			if lay.causalLM {
				return
			}
			checkSensitive(t, ctx, prompts, func() *l4Ref { return llama4Reference(t, dir, d, prefix) }, map[string]func(*l4Ref){
				"q/k norms":           func(m *l4Ref) { m.noQKNorm = true },
				"rope as rotate_half": func(m *l4Ref) { m.ropeHalf = true },
				"router weight after": func(m *l4Ref) { m.weightAfter = true },
				"shared expert":       func(m *l4Ref) { m.noShared = true },
				"llama3 scaling":      func(m *l4Ref) { m.invFreq = defaultInvFreq(10000, d.headDim) },
				"rope in every layer": func(m *l4Ref) { m.layers[3].rope = true },
				"gate and up swapped": func(m *l4Ref) {
					for _, L := range m.layers {
						for e := range L.experts {
							L.experts[e][0], L.experts[e][1] = L.experts[e][1], L.experts[e][0]
						}
					}
				},
			})
		})
	}
}

// TestLlama4LongContext decodes 8300 positions, past llama.cpp's chunk of
// 8192: the chunked layers then attend only within the second chunk, and
// the global layer's queries from position 8191 on are scaled by the
// attention temperature 1 + 0.1·ln 2. Both are checked against the
// reference, which would see either left out.
func TestLlama4LongContext(t *testing.T) {
	if testing.Short() {
		t.Skip("long context: -short")
	}
	dir := llama4Fixture(t, l4Long, l4Layout{causalLM: true}, nil)
	out := filepath.Join(t.TempDir(), "l4.gguf")
	if err := convert.Convert(context.Background(), dir, out, convert.Options{Type: "f32", Name: "x"}); err != nil {
		t.Fatal(err)
	}
	const n, batch = 8300, 512
	m := loadModel(t, out, engine.ModelOptions{})
	c, err := m.NewContext(engine.ContextOptions{ContextLength: n + 20, BatchSize: batch, TypeK: "f32", TypeV: "f32",
		FlashAttention: engine.FlashAttentionOff})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := rand.New(rand.NewPCG(5, 8))
	ids := make([]int, n)
	for i := range ids {
		ids[i] = 3 + r.IntN(g4Vocab-3)
	}
	b, err := engine.NewBatch(batch, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for start := 0; start < n; start += batch {
		b.Clear()
		for i := start; i < min(start+batch, n); i++ {
			if err := b.Add(engine.Token(ids[i]), engine.Pos(i), i == n-1); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.Decode(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	got, err := c.Logits(b.Len() - 1)
	if err != nil {
		t.Fatal(err)
	}
	ref := llama4Reference(t, dir, l4Long, "")
	if re := relErr(got, ref.forward(ids)); re > 1e-4 {
		t.Errorf("relative logit error %.3g after %d positions", re, n)
	} else {
		t.Logf("relative logit error %.3g after %d positions", re, n)
	}
	for name, edit := range map[string]func(*l4Ref){"chunks": func(m *l4Ref) { m.noChunk = true }, "temperature": func(m *l4Ref) { m.noTemp = true }} {
		m := llama4Reference(t, dir, l4Long, "")
		edit(m)
		if re := relErr(got, m.forward(ids)); !(re > 1e-3) {
			t.Errorf("without the %s the reference differs by only %.3g", name, re)
		} else {
			t.Logf("without the %s: %.3g from llama.cpp", name, re)
		}
	}
}

// TestLlama4Q8 checks a Q8_0 conversion against the reference.
func TestLlama4Q8(t *testing.T) {
	dir := llama4Fixture(t, l4Main, l4Layout{}, nil)
	out := filepath.Join(t.TempDir(), "l4.gguf")
	if err := convert.Convert(context.Background(), dir, out, convert.Options{Type: "q8_0", Name: "x"}); err != nil {
		t.Fatal(err)
	}
	checkRef(t, refContext(t, out), readReference(t, "tiny-llama-st").Prompts, llama4Reference(t, dir, l4Main, "language_model.").forward, 0.15)
}

// textConfig edits the fixture's text_config.
func l4Text(edit func(map[string]any)) func(map[string]any, []stTensor) []stTensor {
	return func(cfg map[string]any, ts []stTensor) []stTensor {
		edit(cfg["text_config"].(map[string]any))
		return ts
	}
}

func l4Set(k string, v any) func(map[string]any, []stTensor) []stTensor {
	return l4Text(func(c map[string]any) { c[k] = v })
}

// TestLlama4Config converts configs that leave Llama4TextConfig's defaults
// out, or say them as transformers 5 and Llama 4 Scout do, and checks the
// keys.
func TestLlama4Config(t *testing.T) {
	for name, tc := range map[string]struct {
		edit func(map[string]any, []stTensor) []stTensor
		want map[string]float64
		full bool
	}{
		"defaults": {l4Text(func(c map[string]any) {
			for _, k := range []string{"rope_theta", "max_position_embeddings", "rms_norm_eps", "no_rope_layers", "attention_chunk_size",
				"attn_temperature_tuning", "floor_scale", "attn_scale", "use_qk_norm"} {
				delete(c, k)
			}
		}), map[string]float64{"rope.freq_base": 5e5, "context_length": 131072, "attention.layer_norm_rms_epsilon": 1e-5}, false},
		"transformers 5": {l4Text(func(c map[string]any) {
			delete(c, "rope_theta")
			delete(c, "rope_scaling")
			c["rope_parameters"] = map[string]any{"rope_type": "llama3", "rope_theta": 2e4, "factor": 16.0, "low_freq_factor": 1.0, "high_freq_factor": 1.0,
				"original_max_position_embeddings": 64}
			c["layer_types"] = []string{"chunked_attention", "chunked_attention", "chunked_attention", "full_attention"}
			c["attn_temperature_tuning"] = 4 // as Llama 4 Scout's config.json says
		}), map[string]float64{"rope.freq_base": 2e4}, false},
	} {
		t.Run(name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "x.gguf")
			if err := convert.Convert(context.Background(), llama4Fixture(t, l4Main, l4Layout{}, tc.edit), out, convert.Options{}); err != nil {
				t.Fatal(err)
			}
			f, err := gguf.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			for k, want := range tc.want {
				got, ok := f.Float("llama4." + k)
				if u, isU := f.Uint("llama4." + k); isU {
					got, ok = float64(u), true
				}
				if !ok || math.Abs(got-want) > 1e-6*max(1, want) {
					t.Errorf("%s = %v (%v), want %v", k, got, ok, want)
				}
			}
			if _, ok := f.Uint("llama4.attention.sliding_window"); ok != tc.full {
				t.Errorf("attention.sliding_window written: %v, want %v", ok, tc.full)
			}
		})
	}
}

// TestLlama4Refused checks the Llama 4 layouts llama.cpp's llama4 cannot
// run, or that contradict their config, are refused with the error kind.
func TestLlama4Refused(t *testing.T) {
	swap := func(from, to string) func(map[string]any, []stTensor) []stTensor {
		return func(_ map[string]any, ts []stTensor) []stTensor {
			for i := range ts {
				ts[i].name = strings.Replace(ts[i].name, from, to, 1)
			}
			return ts
		}
	}
	for name, tc := range map[string]struct {
		edit func(map[string]any, []stTensor) []stTensor
		want error
	}{
		"chunk 4096":              {l4Set("attention_chunk_size", 4096), convert.ErrUnsupported},
		"no temperature":          {l4Set("attn_temperature_tuning", false), convert.ErrUnsupported},
		"floor_scale":             {l4Set("floor_scale", 4096), convert.ErrUnsupported},
		"attn_scale":              {l4Set("attn_scale", 0.2), convert.ErrUnsupported},
		"NoPE every third layer":  {l4Set("no_rope_layers", []int{1, 1, 0, 1}), convert.ErrUnsupported},
		"no_rope_layer_interval":  {l4Text(func(c map[string]any) { delete(c, "no_rope_layers"); c["no_rope_layer_interval"] = 2 }), convert.ErrUnsupported},
		"no_rope_layers short":    {l4Set("no_rope_layers", []int{1, 1}), convert.ErrMismatch},
		"layer_types disagree":    {l4Set("layer_types", []string{"chunked_attention", "full_attention", "chunked_attention", "full_attention"}), convert.ErrUnsupported},
		"sliding layer type":      {l4Set("layer_types", []string{"sliding_attention", "chunked_attention", "chunked_attention", "full_attention"}), convert.ErrUnsupported},
		"full without rope":       {l4Set("layer_types", []string{"full_attention", "full_attention", "full_attention", "full_attention"}), convert.ErrUnsupported},
		"no q/k norm, 4 experts":  {l4Set("use_qk_norm", false), convert.ErrUnsupported},
		"attention bias":          {l4Set("attention_bias", true), convert.ErrUnsupported},
		"moe_layers not a step":   {l4Set("moe_layers", []int{1, 2}), convert.ErrUnsupported},
		"moe_layers out of range": {l4Set("moe_layers", []int{1, 9}), convert.ErrMismatch},
		"step 0":                  {l4Set("interleave_moe_layer_step", 0), convert.ErrMismatch},
		"yarn":                    {l4Set("rope_scaling", map[string]any{"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64}), convert.ErrUnsupported},
		"gelu":                    {l4Set("hidden_act", "gelu"), convert.ErrUnsupported},
		"chunk null":              {l4Set("attention_chunk_size", nil), convert.ErrUnsupported},
		"temperature null":        {l4Set("attn_temperature_tuning", nil), convert.ErrUnsupported},
		"full with experts": {l4Text(func(c map[string]any) {
			c["no_rope_layers"] = []int{1, 1, 1, 1}
			c["layer_types"] = []string{"full_attention", "full_attention", "full_attention", "full_attention"}
		}), convert.ErrUnsupported},
		"a bias in a dense MLP": {func(c map[string]any, ts []stTensor) []stTensor {
			return append(ts, f32Tensor("language_model.model.layers.0.feed_forward.up_proj.bias", []int64{96}, make([]float32, 96)))
		}, convert.ErrUnsupported},
		"experts in a dense layer": {func(c map[string]any, ts []stTensor) []stTensor {
			return append(ts, f32Tensor("language_model.model.layers.0.feed_forward.router.weight", []int64{4, 64}, make([]float32, 256)))
		}, convert.ErrMismatch},
		"no shared expert":            {dropTensor("language_model.model.layers.1.feed_forward.shared_expert.up_proj.weight"), convert.ErrMismatch},
		"no fused down_proj":          {dropTensor("language_model.model.layers.3.feed_forward.experts.down_proj"), convert.ErrMismatch},
		"dense MLP in a sparse layer": {swap("layers.2.feed_forward.gate_proj", "layers.3.feed_forward.gate_proj"), convert.ErrMismatch},
		"a qkv bias": {func(c map[string]any, ts []stTensor) []stTensor {
			return append(ts, f32Tensor("language_model.model.layers.0.self_attn.q_proj.bias", []int64{128}, make([]float32, 128)))
		}, convert.ErrUnsupported},
	} {
		t.Run(name, func(t *testing.T) {
			err := convert.Convert(context.Background(), llama4Fixture(t, l4Main, l4Layout{}, tc.edit), filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
			if !errors.Is(err, tc.want) {
				t.Errorf("%v, want %v", err, tc.want)
			} else {
				t.Log(err)
			}
		})
	}
}

// TestLlama4Full converts a dense Llama 4 whose every layer attends fully
// with rope (MobileLLM-R1's layout): written with sliding_window 0, which
// llama.cpp runs as its plain llama graph with the q/k norms, and checked
// against the reference.
func TestLlama4Full(t *testing.T) {
	full := l4Text(func(c map[string]any) {
		c["no_rope_layers"] = []int{1, 1, 1, 1}
		c["layer_types"] = []string{"full_attention", "full_attention", "full_attention", "full_attention"}
	})
	dir := llama4Fixture(t, l4Dense, l4Layout{}, full)
	out := filepath.Join(t.TempDir(), "l4.gguf")
	if err := convert.Convert(context.Background(), dir, out, convert.Options{Type: "f32", Name: "x"}); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]uint64{"attention.sliding_window": 0, "interleave_moe_layer_step": 0, "expert_count": 0, "feed_forward_length": 96} {
		if got, ok := f.Uint("llama4." + k); !ok || got != v {
			t.Errorf("%s = %d (%v), want %d", k, got, ok, v)
		}
	}
	fresh := func() *l4Ref {
		m := llama4Reference(t, dir, l4Dense, "language_model.")
		for i := range m.layers {
			m.layers[i].rope = true
		}
		return m
	}
	prompts := readReference(t, "tiny-llama-st").Prompts
	ctx := refContext(t, out)
	checkRef(t, ctx, prompts, fresh().forward, 1e-5)
	checkSensitive(t, ctx, prompts, fresh, map[string]func(*l4Ref){
		"q/k norms":          func(m *l4Ref) { m.noQKNorm = true },
		"no rope in layer 3": func(m *l4Ref) { m.layers[3].rope = false },
	})
}
