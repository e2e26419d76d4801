package convert_test

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/loader/convert"
	"github.com/llm-go/llm/loader/gguf"
)

// A Nemotron-H fixture: hidden size 64 (tiny-llama-st's tokenizer), the
// blocks M*-M- (Mamba-2, attention, MLP, Mamba-2, MLP); attention of 4
// heads of 32 (2 KV heads: heads × head size is twice the hidden size);
// Mamba-2 mixers of 8 heads of 12 (inner size 96, not twice the hidden
// size) in 2 groups with a state of 16 and a kernel of 4; MLPs of 96.
const (
	nhPattern, nhHidden, nhHeads, nhKV, nhHeadDim = "M*-M-", 64, 4, 2, 32
	nhMHeads, nhMHeadDim, nhGroups, nhState, nhFF = 8, 12, 2, 16, 96
	// Nemotron 3 Nano's layout: the MLP blocks are experts, "ME*ME": 8
	// experts of 32 (3 used, renormalised, scaled by 2.5) and a shared one
	// of 48.
	nhMoEPattern, nhExperts, nhUsed, nhExpertFF, nhSharedFF, nhScale = "ME*ME", 8, 3, 32, 48, 2.5
)

func nemotronHFixture(t *testing.T, prefix string, edit func(map[string]any, []stTensor) []stTensor) string {
	return nemotronHFixtureOf(t, prefix, nhPattern, false, edit)
}

// nemotronHFixtureOf writes a Nemotron-H fixture of the given block
// pattern; fused stores its experts [experts, out, in] as transformers
// does, else per expert as the released checkpoints.
func nemotronHFixtureOf(t *testing.T, prefix, pattern string, fused bool, edit func(map[string]any, []stTensor) []stTensor) string {
	t.Helper()
	dir := t.TempDir()
	cfg := map[string]any{
		"architectures": []string{"NemotronHForCausalLM"}, "model_type": "nemotron_h",
		"hidden_size": nhHidden, "num_hidden_layers": len(pattern), "hybrid_override_pattern": pattern,
		"num_attention_heads": nhHeads, "num_key_value_heads": nhKV, "head_dim": nhHeadDim, "intermediate_size": nhFF,
		"mamba_num_heads": nhMHeads, "mamba_head_dim": nhMHeadDim, "n_groups": nhGroups, "ssm_state_size": nhState,
		"conv_kernel": 4, "use_conv_bias": true, "use_bias": false, "mlp_bias": false, "mlp_hidden_act": "relu2",
		"mamba_hidden_act": "silu", "layer_norm_epsilon": 1e-5, "rms_norm_eps": 1e-5, "attention_bias": false,
		"max_position_embeddings": 4096, "vocab_size": g4Vocab, "tie_word_embeddings": false, "bos_token_id": 1, "eos_token_id": 2,
		"expand": 2, "chunk_size": 128, "residual_in_fp32": false, "rescale_prenorm_residual": true,
	}
	if strings.Contains(pattern, "E") {
		cfg["n_routed_experts"], cfg["num_experts_per_tok"], cfg["moe_intermediate_size"] = nhExperts, nhUsed, nhExpertFF
		cfg["moe_shared_expert_intermediate_size"], cfg["n_shared_experts"], cfg["norm_topk_prob"] = nhSharedFF, 1, true
		cfg["routed_scaling_factor"], cfg["n_group"], cfg["topk_group"], cfg["num_nextn_predict_layers"] = nhScale, 1, 1, 1
	}
	copyHFFiles(t, "tiny-llama-st", dir, func(m map[string]any) {
		clear(m)
		for k, v := range cfg {
			m[k] = v
		}
	})
	r := rand.New(rand.NewPCG(41, 2))
	w := randWeights{r}
	H, DI, N, NH := int64(nhHidden), int64(nhMHeads*nhMHeadDim), int64(nhState), int64(nhMHeads)
	CD := DI + 2*nhGroups*N
	Q, KV := int64(nhHeads*nhHeadDim), int64(nhKV*nhHeadDim)
	ts := []stTensor{f32Tensor(prefix+"embeddings.weight", []int64{g4Vocab, H}, randn(r, g4Vocab*nhHidden, 1)),
		w.vec(prefix+"norm_f.weight", H, 1, 0.1), w.mat("lm_head.weight", g4Vocab, H)}
	if strings.Contains(pattern, "E") {
		ts = append(ts, w.vec("mtp.layers.0.norm.weight", H, 1, 0.1)) // multi-token prediction: skipped
	}
	for l, kind := range pattern {
		p := prefix + "layers." + string(rune('0'+l)) + "."
		ts = append(ts, w.vec(p+"norm.weight", H, 1, 0.1))
		switch kind {
		case 'E':
			ts = append(ts, w.mat(p+"mixer.gate.weight", nhExperts, H), w.vec(p+"mixer.gate.e_score_correction_bias", nhExperts, 0, 0.3),
				w.mat(p+"mixer.shared_experts.up_proj.weight", nhSharedFF, H), w.mat(p+"mixer.shared_experts.down_proj.weight", H, nhSharedFF))
			if fused {
				up, down := w.mat(p+"mixer.experts.up_proj", nhExperts*nhExpertFF, H), w.mat(p+"mixer.experts.down_proj", nhExperts*H, nhExpertFF)
				up.shape, down.shape = []int64{nhExperts, nhExpertFF, H}, []int64{nhExperts, H, nhExpertFF}
				ts = append(ts, up, down)
				break
			}
			for e := range nhExperts {
				q := p + "mixer.experts." + strconv.Itoa(e) + "."
				ts = append(ts, w.mat(q+"up_proj.weight", nhExpertFF, H), w.mat(q+"down_proj.weight", H, nhExpertFF))
			}
		case '*':
			ts = append(ts, w.mat(p+"mixer.q_proj.weight", Q, H), w.mat(p+"mixer.k_proj.weight", KV, H),
				w.mat(p+"mixer.v_proj.weight", KV, H), w.mat(p+"mixer.o_proj.weight", H, Q))
		case '-':
			ts = append(ts, w.mat(p+"mixer.up_proj.weight", nhFF, H), w.mat(p+"mixer.down_proj.weight", H, nhFF))
		case 'M':
			aLog := make([]float32, NH)
			for i := range aLog {
				aLog[i] = float32(math.Log(1 + 15*r.Float64()))
			}
			ts = append(ts, w.mat(p+"mixer.in_proj.weight", DI+CD+NH, H),
				f32Tensor(p+"mixer.conv1d.weight", []int64{CD, 1, 4}, randn(r, int(CD*4), 0.5)), w.vec(p+"mixer.conv1d.bias", CD, 0, 0.2),
				w.vec(p+"mixer.dt_bias", NH, -1, 0.5), f32Tensor(p+"mixer.A_log", []int64{NH}, aLog), w.vec(p+"mixer.D", NH, 1, 0.2),
				w.vec(p+"mixer.norm.weight", DI, 1, 0.1), w.mat(p+"mixer.out_proj.weight", H, DI))
		}
	}
	return finishFixture(t, "tiny-llama-st", dir, cfg, ts, edit)
}

// nemotronHReference reads the fixture in dir (tensors under prefix) as
// transformers' NemotronH: each block x += sublayer(rms(x)); attention
// without positions, scaled by 1/sqrt(head size); MLPs down(relu(up·h)²);
// the Mamba-2 mixers' gated norm per group.
func nemotronHReference(t *testing.T, dir, prefix string) (*refModel, []*mamba2Ref) {
	return nemotronHReferenceOf(t, dir, prefix, nhPattern, nil)
}

// nhMoERef is a Nemotron-H MoE block's reference, with knobs for the
// sensitivity checks.
type nhMoERef struct {
	noBias, noNorm, noScale, noShared bool
	// groups and topKGroup: the router keeps the topKGroup groups with
	// the best two scores (with the bias) before choosing (0: no groups).
	groups, topKGroup int
}

func nemotronHReferenceOf(t *testing.T, dir, prefix, pattern string, moe *nhMoERef) (*refModel, []*mamba2Ref) {
	t.Helper()
	r := openST(t, dir)
	m := &refModel{hidden: nhHidden, heads: nhHeads, kvHeads: nhKV, headDim: nhHeadDim, eps: 1e-5, invFreq: defaultInvFreq(10000, nhHeadDim)}
	m.emb, m.norm, m.out = r.get(prefix+"embeddings.weight"), r.get(prefix+"norm_f.weight"), r.get("lm_head.weight")
	var mixers []*mamba2Ref
	relu2 := func(up, down []float64, h []float64, width int) []float64 {
		u := matvec(up, h, width)
		for e := range u {
			u[e] = max(u[e], 0) * max(u[e], 0)
		}
		return matvec(down, u, nhHidden)
	}
	for l, kind := range pattern {
		p := prefix + "layers." + string(rune('0'+l)) + "."
		L := refLayer{attnNorm: r.get(p + "norm.weight"), noMLP: true, noRope: true}
		switch kind {
		case 'E':
			router, bias := r.get(p+"mixer.gate.weight"), r.get(p+"mixer.gate.e_score_correction_bias")
			shUp, shDown := r.get(p+"mixer.shared_experts.up_proj.weight"), r.get(p+"mixer.shared_experts.down_proj.weight")
			var ups, downs [][]float64
			for e := range nhExperts {
				if r.has(p + "mixer.experts.up_proj") { // fused [experts, out, in]
					up, down := r.get(p+"mixer.experts.up_proj"), r.get(p+"mixer.experts.down_proj")
					n := nhExpertFF * nhHidden
					ups, downs = append(ups, up[e*n:(e+1)*n]), append(downs, down[e*n:(e+1)*n])
					continue
				}
				q := p + "mixer.experts." + strconv.Itoa(e) + "."
				ups, downs = append(ups, r.get(q+"up_proj.weight")), append(downs, r.get(q+"down_proj.weight"))
			}
			L.mixer = func(hs [][]float64) [][]float64 {
				out := make([][]float64, len(hs))
				for i, h := range hs {
					logits := matvec(router, h, nhExperts)
					score, choice := make([]float64, nhExperts), make([]float64, nhExperts)
					for e, v := range logits {
						score[e] = 1 / (1 + math.Exp(-v))
						choice[e] = score[e]
						if !moe.noBias {
							choice[e] += bias[e]
						}
					}
					if moe.groups > 1 {
						per := nhExperts / moe.groups
						type gs struct {
							g int
							s float64
						}
						var gsc []gs
						for gi := range moe.groups {
							part := slices.Clone(choice[gi*per : (gi+1)*per])
							slices.SortFunc(part, func(a, b float64) int { return cmp.Compare(b, a) })
							gsc = append(gsc, gs{gi, part[0] + part[1]})
						}
						slices.SortStableFunc(gsc, func(a, b gs) int { return cmp.Compare(b.s, a.s) })
						for _, x := range gsc[moe.topKGroup:] {
							for e := x.g * per; e < (x.g+1)*per; e++ {
								choice[e] = math.Inf(-1)
							}
						}
					}
					order := make([]int, nhExperts)
					for e := range order {
						order[e] = e
					}
					slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(choice[b], choice[a]) })
					var sum float64
					for _, e := range order[:nhUsed] {
						sum += score[e]
					}
					o := make([]float64, nhHidden)
					for _, e := range order[:nhUsed] {
						wgt := score[e]
						if !moe.noNorm {
							wgt /= sum + 1e-20
						}
						if !moe.noScale {
							wgt *= nhScale
						}
						for j, v := range relu2(ups[e], downs[e], h, nhExpertFF) {
							o[j] += wgt * v
						}
					}
					if !moe.noShared {
						for j, v := range relu2(shUp, shDown, h, nhSharedFF) {
							o[j] += v
						}
					}
					out[i] = o
				}
				return out
			}
		case '*':
			L.wq, L.wk, L.wv, L.wo = r.get(p+"mixer.q_proj.weight"), r.get(p+"mixer.k_proj.weight"), r.get(p+"mixer.v_proj.weight"), r.get(p+"mixer.o_proj.weight")
		case '-':
			up, down := r.get(p+"mixer.up_proj.weight"), r.get(p+"mixer.down_proj.weight")
			L.mixer = func(hs [][]float64) [][]float64 {
				out := make([][]float64, len(hs))
				for i, h := range hs {
					u := matvec(up, h, nhFF)
					for e := range u {
						u[e] = max(u[e], 0) * max(u[e], 0)
					}
					out[i] = matvec(down, u, nhHidden)
				}
				return out
			}
		case 'M':
			mr := &mamba2Ref{inProj: r.get(p + "mixer.in_proj.weight"), convW: r.get(p + "mixer.conv1d.weight"), convB: r.get(p + "mixer.conv1d.bias"),
				dtBias: r.get(p + "mixer.dt_bias"), aLog: r.get(p + "mixer.A_log"), d: r.get(p + "mixer.D"), norm: r.get(p + "mixer.norm.weight"),
				outProj: r.get(p + "mixer.out_proj.weight"), hidden: nhHidden, dInner: nhMHeads * nhMHeadDim, dState: nhState, heads: nhMHeads,
				groups: nhGroups, dConv: 4, eps: 1e-5}
			mixers = append(mixers, mr)
			L.mixer = mr.forward
		}
		m.layers = append(m.layers, L)
	}
	return m, mixers
}

// TestNemotronH converts Nemotron-H checkpoints (tensors under backbone.,
// as released, and model.) to llama.cpp's nemotron_h and checks the keys
// llama.cpp tells the blocks apart by and the logits against the float64
// reference, which would see the per-group norm made whole, D, the gate,
// the MLP's square or positions in the attention.
func TestNemotronH(t *testing.T) {
	prompts := readReference(t, "tiny-llama-st").Prompts
	for _, prefix := range []string{"backbone.", "model."} {
		dir := nemotronHFixture(t, prefix, nil)
		out := filepath.Join(t.TempDir(), "nh.gguf")
		if err := convert.Convert(context.Background(), dir, out, convert.Options{Type: "f32", Name: "x"}); err != nil {
			t.Fatal(err)
		}
		f, err := gguf.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		if f.Architecture() != "nemotron_h" {
			t.Fatalf("architecture %q", f.Architecture())
		}
		for key, want := range map[string][]uint64{"attention.head_count_kv": {0, nhKV, 0, 0, 0}, "feed_forward_length": {0, 0, nhFF, 0, nhFF}} {
			if v, ok := f.Lookup("nemotron_h." + key); !ok {
				t.Errorf("no %s", key)
			} else if got, ok := v.AsUints(); !ok || !slices.Equal(got, want) {
				t.Errorf("%s = %v, want %v", key, v, want)
			}
		}
		for key, want := range map[string]uint64{"ssm.inner_size": nhMHeads * nhMHeadDim, "ssm.group_count": nhGroups, "ssm.time_step_rank": nhMHeads,
			"ssm.state_size": nhState, "ssm.conv_kernel": 4, "attention.key_length": nhHeadDim} {
			if v, ok := f.Uint("nemotron_h." + key); !ok || v != want {
				t.Errorf("%s = %v (%v), want %v", key, v, ok, want)
			}
		}
		if m := loadModel(t, out, engine.ModelOptions{}); !m.IsRecurrent() || m.Info().KVHeads != nhKV {
			t.Errorf("recurrent %v, KV heads %d", m.IsRecurrent(), m.Info().KVHeads)
		}
		// Without expert_feed_forward_length, as convert_hf_to_gguf.py
		// writes Nemotron-H, this llama.cpp divides by zero loading it: the
		// engine overrides the key, and the model runs the same.
		bare := filepath.Join(t.TempDir(), "bare.gguf")
		if err := gguf.Rewrite(bare, out, func(w *gguf.Writer) { w.Delete("nemotron_h.expert_feed_forward_length") }); err != nil {
			t.Fatal(err)
		}
		_, want := greedy(t, refContext(t, out), toTokens(prompts[0].PromptIDs), 1)
		if _, got := greedy(t, refContext(t, bare), toTokens(prompts[0].PromptIDs), 1); !slices.Equal(got, want) {
			t.Error("without expert_feed_forward_length: other logits")
		}
		fresh := func() *refModel { m, _ := nemotronHReference(t, dir, prefix); return m }
		mixerEdit := func(edit func(*mamba2Ref)) func(*refModel) {
			return func(m *refModel) {
				m2, mixers := nemotronHReference(t, dir, prefix)
				for _, mr := range mixers {
					edit(mr)
				}
				*m = *m2
			}
		}
		ctx := refContext(t, out)
		checkRef(t, ctx, prompts, fresh().forward, 1e-5)
		checkSensitive(t, ctx, prompts, fresh, map[string]func(*refModel){
			"norm over all groups": mixerEdit(func(mr *mamba2Ref) { mr.wholeNorm = true }),
			"D":                    mixerEdit(func(mr *mamba2Ref) { mr.noD = true }),
			"gate":                 mixerEdit(func(mr *mamba2Ref) { mr.noGate = true }),
			"positions": func(m *refModel) {
				for i := range m.layers {
					m.layers[i].noRope = false
				}
			},
			"MLP unsquared": func(m *refModel) {
				up := openST(t, dir).get(prefix + "layers.2.mixer.up_proj.weight")
				down := openST(t, dir).get(prefix + "layers.2.mixer.down_proj.weight")
				m.layers[2].mixer = func(hs [][]float64) [][]float64 {
					out := make([][]float64, len(hs))
					for i, h := range hs {
						u := matvec(up, h, nhFF)
						for e := range u {
							u[e] = max(u[e], 0)
						}
						out[i] = matvec(down, u, nhHidden)
					}
					return out
				}
			},
		})
	}
}

// TestNemotronHRefused checks the Nemotron-H layouts llama.cpp cannot run,
// or that contradict their config, are refused with the error kind; a
// time_step_limit of [0, Infinity] as Python writes it (not JSON) is
// accepted, and Infinity and NaN inside strings are left alone.
func TestNemotronHRefused(t *testing.T) {
	inf := nemotronHFixture(t, "backbone.", nil)
	replaceFile(t, inf, "config.json", []byte(`{"architectures": ["NemotronHForCausalLM"], "hidden_size": 64, "num_hidden_layers": 5,
		"hybrid_override_pattern": "M*-M-", "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 32, "intermediate_size": 96,
		"mamba_num_heads": 8, "mamba_head_dim": 12, "n_groups": 2, "ssm_state_size": 16, "conv_kernel": 4, "vocab_size": 32000,
		"layer_norm_epsilon": 1e-5, "time_step_limit": [0.0, Infinity], "max_position_embeddings": 4096, "bos_token_id": 1, "eos_token_id": 2,
		"_name_or_path": "NaN \"Infinity\" -Infinity"}`))
	if err := convert.Convert(context.Background(), inf, filepath.Join(t.TempDir(), "inf.gguf"), convert.Options{}); err != nil {
		t.Errorf("time_step_limit [0.0, Infinity]: %v", err)
	}
	alias := nemotronHFixture(t, "backbone.", func(c map[string]any, ts []stTensor) []stTensor {
		c["mamba_n_groups"] = c["n_groups"]
		delete(c, "n_groups")
		return ts
	})
	if err := convert.Convert(context.Background(), alias, filepath.Join(t.TempDir(), "alias.gguf"), convert.Options{}); err != nil {
		t.Errorf("mamba_n_groups for n_groups: %v", err)
	}
	// As current transformers saves it: layers_block_type with its names
	// (over a pattern that says otherwise), no num_hidden_layers, a
	// dataclass default n_routed_experts 8 on a dense model, the older
	// names of conv_kernel and use_conv_bias, swish, and an unclamped
	// time step written [-Infinity, Infinity].
	current := nemotronHFixture(t, "backbone.", func(c map[string]any, ts []stTensor) []stTensor {
		c["layers_block_type"] = []string{"linear_attention", "full_attention", "mlp", "linear_attention", "mlp"}
		c["hybrid_override_pattern"] = "MMMMM"
		delete(c, "num_hidden_layers")
		c["n_routed_experts"] = 8
		c["mamba_d_conv"], c["mamba_conv_bias"] = c["conv_kernel"], c["use_conv_bias"]
		delete(c, "conv_kernel")
		delete(c, "use_conv_bias")
		c["mamba_hidden_act"] = "swish"
		return ts
	})
	cfg, err := os.ReadFile(filepath.Join(current, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	cfg = bytes.Replace(cfg, []byte(`"rms_norm_eps"`), []byte(`"time_step_limit": [-Infinity, Infinity], "rms_norm_eps"`), 1)
	replaceFile(t, current, "config.json", cfg)
	if err := convert.Convert(context.Background(), current, filepath.Join(t.TempDir(), "current.gguf"), convert.Options{}); err != nil {
		t.Errorf("a config as current transformers writes it: %v", err)
	}
	for name, tc := range map[string]struct {
		edit func(map[string]any, []stTensor) []stTensor
		want error
	}{
		"experts":                {setConfig("hybrid_override_pattern", "M*-ME"), convert.ErrUnsupported},
		"a pattern too short":    {setConfig("hybrid_override_pattern", "M*-M"), convert.ErrMismatch},
		"an unknown block":       {setConfig("hybrid_override_pattern", "M*-MX"), convert.ErrMismatch},
		"gelu MLP":               {setConfig("mlp_hidden_act", "gelu"), convert.ErrUnsupported},
		"use_bias":               {setConfig("use_bias", true), convert.ErrUnsupported},
		"a time step limit":      {setConfig("time_step_limit", []float64{0.001, 0.1}), convert.ErrUnsupported},
		"a mamba_dt_limit":       {setConfig("mamba_dt_limit", []float64{0.0, 0.1}), convert.ErrUnsupported},
		"conv_kernel 5":          {setConfig("conv_kernel", 5), convert.ErrUnsupported},
		"moe blocks":             {setConfig("layers_block_type", []string{"mamba", "attention", "mlp", "mamba", "moe"}), convert.ErrUnsupported},
		"an odd head size":       {func(c map[string]any, ts []stTensor) []stTensor { c["head_dim"] = 31; return ts }, convert.ErrMismatch},
		"3 groups":               {setConfig("n_groups", 3), convert.ErrMismatch},
		"no mamba_head_dim":      {func(c map[string]any, ts []stTensor) []stTensor { delete(c, "mamba_head_dim"); return ts }, convert.ErrMismatch},
		"MLP where attention is": {setConfig("hybrid_override_pattern", "M--M-"), convert.ErrUnsupported},
		"no A_log":               {dropTensor("backbone.layers.3.mixer.A_log"), convert.ErrMismatch},
		"no conv1d bias": {func(c map[string]any, ts []stTensor) []stTensor {
			c["use_conv_bias"] = true
			return slices.DeleteFunc(ts, func(s stTensor) bool { return s.name == "backbone.layers.0.mixer.conv1d.bias" })
		}, convert.ErrMismatch},
	} {
		err := convert.Convert(context.Background(), nemotronHFixture(t, "backbone.", tc.edit), filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

// TestNemotronHMoE converts Nemotron 3 Nano layouts (expert blocks in
// place of the MLPs; experts per expert, as released, and fused, as
// transformers stores them) to llama.cpp's nemotron_h_moe and checks the
// keys and the logits against the float64 reference, which would see the
// selection bias, the renormalisation, the routed scale or the shared
// expert left out.
func TestNemotronHMoE(t *testing.T) {
	prompts := readReference(t, "tiny-llama-st").Prompts
	for _, fused := range []bool{false, true} {
		dir := nemotronHFixtureOf(t, "backbone.", nhMoEPattern, fused, nil)
		out := filepath.Join(t.TempDir(), "nhmoe.gguf")
		if err := convert.Convert(context.Background(), dir, out, convert.Options{Type: "f32", Name: "x"}); err != nil {
			t.Fatal(err)
		}
		f, err := gguf.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		if f.Architecture() != "nemotron_h_moe" {
			t.Fatalf("architecture %q", f.Architecture())
		}
		for key, want := range map[string]uint64{"expert_count": nhExperts, "expert_used_count": nhUsed, "expert_feed_forward_length": nhExpertFF,
			"expert_shared_feed_forward_length": nhSharedFF, "expert_shared_count": 1} {
			if v, ok := f.Uint("nemotron_h_moe." + key); !ok || v != want {
				t.Errorf("%s = %v (%v), want %v", key, v, ok, want)
			}
		}
		if v, ok := f.Lookup("nemotron_h_moe.feed_forward_length"); !ok {
			t.Error("no feed_forward_length")
		} else if got, _ := v.AsUints(); !slices.Equal(got, []uint64{0, nhExpertFF, 0, 0, nhExpertFF}) {
			t.Errorf("feed_forward_length %v", got)
		}
		if s, _ := f.Float("nemotron_h_moe.expert_weights_scale"); s != nhScale {
			t.Errorf("expert_weights_scale %v", s)
		}
		fresh := func(m *nhMoERef) func() *refModel {
			return func() *refModel { ref, _ := nemotronHReferenceOf(t, dir, "backbone.", nhMoEPattern, m); return ref }
		}
		ctx := refContext(t, out)
		checkRef(t, ctx, prompts, fresh(&nhMoERef{})().forward, 1e-5)
		for name, m := range map[string]*nhMoERef{"selection bias": {noBias: true}, "renormalisation": {noNorm: true},
			"routed scale": {noScale: true}, "shared expert": {noShared: true}} {
			checkSensitive(t, ctx, prompts, fresh(m), map[string]func(*refModel){name: func(*refModel) {}})
		}
	}
	for name, tc := range map[string]struct {
		edit func(map[string]any, []stTensor) []stTensor
		want error
	}{
		"latent experts":    {setConfig("moe_latent_size", 16), convert.ErrUnsupported},
		"groups of one":     {func(c map[string]any, ts []stTensor) []stTensor { c["n_group"], c["topk_group"] = 8, 4; return ts }, convert.ErrMismatch},
		"an expert missing": {dropTensor("backbone.layers.4.mixer.experts.5.down_proj.weight"), convert.ErrMismatch},
		"no selection bias": {dropTensor("backbone.layers.1.mixer.gate.e_score_correction_bias"), convert.ErrMismatch},
		"an expert too many": {func(_ map[string]any, ts []stTensor) []stTensor {
			return append(ts, f32Tensor("backbone.layers.1.mixer.experts.8.up_proj.weight", []int64{nhExpertFF, nhHidden}, make([]float32, nhExpertFF*nhHidden)))
		}, convert.ErrMismatch},
	} {
		err := convert.Convert(context.Background(), nemotronHFixtureOf(t, "backbone.", nhMoEPattern, false, tc.edit), filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
}

// TestNemotronHMoEGroups: with n_group 4 and topk_group 2 the router keeps
// the two groups (of two experts) with the best scores before choosing, as
// llama.cpp does with expert_group_count and expert_group_used_count;
// the reference would see the groups left out.
func TestNemotronHMoEGroups(t *testing.T) {
	prompts := readReference(t, "tiny-llama-st").Prompts
	dir := nemotronHFixtureOf(t, "backbone.", nhMoEPattern, false, func(c map[string]any, ts []stTensor) []stTensor {
		c["n_group"], c["topk_group"] = 4, 2
		delete(c, "n_shared_experts") // transformers' default: one
		return ts
	})
	out := filepath.Join(t.TempDir(), "groups.gguf")
	if err := convert.Convert(context.Background(), dir, out, convert.Options{Type: "f32", Name: "x"}); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]uint64{"expert_group_count": 4, "expert_group_used_count": 2, "expert_shared_count": 1} {
		if v, ok := f.Uint("nemotron_h_moe." + key); !ok || v != want {
			t.Errorf("%s = %v (%v), want %v", key, v, ok, want)
		}
	}
	fresh := func(m *nhMoERef) func() *refModel {
		return func() *refModel { ref, _ := nemotronHReferenceOf(t, dir, "backbone.", nhMoEPattern, m); return ref }
	}
	ctx := refContext(t, out)
	checkRef(t, ctx, prompts, fresh(&nhMoERef{groups: 4, topKGroup: 2})().forward, 1e-5)
	checkSensitive(t, ctx, prompts, fresh(&nhMoERef{}), map[string]func(*refModel){"expert groups": func(*refModel) {}})
}
