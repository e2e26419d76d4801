package convert_test

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/loader/convert"
	"github.com/llm-go/llm/loader/gguf"
)

// glmCase is a tiny GLM-4.5: head_dim 16 with 4 heads over a hidden size
// of 32, half of each head rotated, one dense layer then two with 8
// experts (3 used, in 2 groups of which 1 is chosen) and a shared one,
// and a multi-token-prediction layer.
type glmCase struct {
	qkNorm bool
	vocab  int
}

const (
	glmHidden, glmHeads, glmKV, glmHeadDim, glmLayers = 32, 4, 2, 16, 3
	glmFFN, glmExpertFFN, glmExperts, glmUsed         = 48, 16, 8, 3
)

func (c glmCase) config() map[string]any {
	return map[string]any{
		"architectures": []string{"Glm4MoeForCausalLM"}, "model_type": "glm4_moe",
		"hidden_size": glmHidden, "num_hidden_layers": glmLayers, "num_attention_heads": glmHeads, "num_key_value_heads": glmKV,
		"head_dim": glmHeadDim, "partial_rotary_factor": 0.5, "attention_bias": true, "use_qk_norm": c.qkNorm,
		"intermediate_size": glmFFN, "moe_intermediate_size": glmExpertFFN, "n_routed_experts": glmExperts, "num_experts_per_tok": glmUsed,
		"n_shared_experts": 1, "first_k_dense_replace": 1, "routed_scaling_factor": 2.5, "norm_topk_prob": true,
		"n_group": 2, "topk_group": 1, "num_nextn_predict_layers": 1,
		"rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": 2048, "vocab_size": c.vocab,
		"tie_word_embeddings": false, "rope_scaling": nil, "bos_token_id": nil, "eos_token_id": []int{2},
	}
}

// fixture writes the case with random weights and the tokenizer files of
// tokDir (tiny-llama-st's when ""); edit changes it.
func (c glmCase) fixture(t *testing.T, tokDir string, edit func(map[string]any, []stTensor) []stTensor) string {
	t.Helper()
	dir := t.TempDir()
	cfg := c.config()
	copyHFFiles(t, "tiny-llama-st", dir, func(m map[string]any) {
		clear(m)
		for k, v := range cfg {
			m[k] = v
		}
	})
	if tokDir != "" {
		for _, f := range []string{"tokenizer.json", "tokenizer_config.json"} {
			raw, err := os.ReadFile(filepath.Join(tokDir, f))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, f), raw, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	r := rand.New(rand.NewPCG(3, 5))
	H, Q, KV := int64(glmHidden), int64(glmHeads*glmHeadDim), int64(glmKV*glmHeadDim)
	w := randWeights{r}
	mat, vec := w.mat, w.vec
	ts := []stTensor{
		f32Tensor("model.embed_tokens.weight", []int64{int64(c.vocab), H}, randn(r, c.vocab*glmHidden, 1)),
		vec("model.norm.weight", H, 1, 0.1), mat("lm_head.weight", int64(c.vocab), H),
	}
	for l := range glmLayers + 1 {
		p := layerPrefix(l)
		ts = append(ts, vec(p+"input_layernorm.weight", H, 1, 0.1), vec(p+"post_attention_layernorm.weight", H, 1, 0.1),
			mat(p+"self_attn.q_proj.weight", Q, H), mat(p+"self_attn.k_proj.weight", KV, H), mat(p+"self_attn.v_proj.weight", KV, H),
			vec(p+"self_attn.q_proj.bias", Q, 0, 0.3), vec(p+"self_attn.k_proj.bias", KV, 0, 0.3), vec(p+"self_attn.v_proj.bias", KV, 0, 0.3),
			mat(p+"self_attn.o_proj.weight", H, Q))
		if c.qkNorm {
			ts = append(ts, vec(p+"self_attn.q_norm.weight", glmHeadDim, 1, 0.1), vec(p+"self_attn.k_norm.weight", glmHeadDim, 1, 0.1))
		}
		if l == glmLayers { // the MTP layer's own tensors
			ts = append(ts, mat(p+"eh_proj.weight", H, 2*H), vec(p+"enorm.weight", H, 1, 0), vec(p+"hnorm.weight", H, 1, 0))
		}
		if l == 0 {
			ts = append(ts, mat(p+"mlp.gate_proj.weight", glmFFN, H), mat(p+"mlp.up_proj.weight", glmFFN, H), mat(p+"mlp.down_proj.weight", H, glmFFN))
			continue
		}
		I := int64(glmExpertFFN)
		ts = append(ts, mat(p+"mlp.gate.weight", glmExperts, H), vec(p+"mlp.gate.e_score_correction_bias", glmExperts, 0, 0.3),
			mat(p+"mlp.shared_experts.gate_proj.weight", I, H), mat(p+"mlp.shared_experts.up_proj.weight", I, H),
			mat(p+"mlp.shared_experts.down_proj.weight", H, I))
		for e := range glmExperts {
			q := p + "mlp.experts." + strconv.Itoa(e) + "."
			ts = append(ts, mat(q+"gate_proj.weight", I, H), mat(q+"up_proj.weight", I, H), mat(q+"down_proj.weight", H, I))
		}
	}
	return finishFixture(t, "tiny-llama-st", dir, cfg, ts, edit)
}

// reference is the float64 GLM-4.5 of the checkpoint in dir.
func (c glmCase) reference(t *testing.T, dir string) (*refModel, *smoeRef) {
	t.Helper()
	r := openST(t, dir)
	moe := &smoeRef{hidden: glmHidden, experts: glmExperts, used: glmUsed, expertFFN: glmExpertFFN, sharedFFN: glmExpertFFN,
		groups: 2, groupsUsed: 1, sigmoid: true, norm: true, scale: 2.5}
	m := &refModel{hidden: glmHidden, heads: glmHeads, kvHeads: glmKV, headDim: glmHeadDim, eps: 1e-5, invFreq: defaultInvFreq(10000, glmHeadDim/2)}
	m.emb, m.out, m.norm = r.get("model.embed_tokens.weight"), r.get("lm_head.weight"), r.get("model.norm.weight")
	for l := range glmLayers {
		p := layerPrefix(l)
		L := refLayer{attnNorm: r.get(p + "input_layernorm.weight"), ffnNorm: r.get(p + "post_attention_layernorm.weight"),
			wq: r.get(p + "self_attn.q_proj.weight"), wk: r.get(p + "self_attn.k_proj.weight"), wv: r.get(p + "self_attn.v_proj.weight"),
			bq: r.get(p + "self_attn.q_proj.bias"), bk: r.get(p + "self_attn.k_proj.bias"), bv: r.get(p + "self_attn.v_proj.bias"),
			wo: r.get(p + "self_attn.o_proj.weight")}
		if c.qkNorm {
			L.qNorm, L.kNorm = r.get(p+"self_attn.q_norm.weight"), r.get(p+"self_attn.k_norm.weight")
		}
		if l == 0 {
			L.wg, L.wu, L.wd, L.ffn = r.get(p+"mlp.gate_proj.weight"), r.get(p+"mlp.up_proj.weight"), r.get(p+"mlp.down_proj.weight"), glmFFN
		} else {
			ml := readSMoE(r, p, glmExperts, dsBias)
			L.mlp = func(h []float64) []float64 { return moe.forward(ml, h) }
		}
		m.layers = append(m.layers, L)
	}
	return m, moe
}

// TestGLM4MoE converts GLM-4.5 checkpoints (with and without q/k norms) to
// llama.cpp's glm4moe, checks the metadata and the logits against the
// float64 reference, which would see each feature left out.
func TestGLM4MoE(t *testing.T) {
	prompts := readReference(t, "tiny-llama-st").Prompts
	for _, qkNorm := range []bool{false, true} {
		c := glmCase{qkNorm: qkNorm, vocab: dsVocab}
		t.Run("qk_norm="+strconv.FormatBool(qkNorm), func(t *testing.T) {
			dir := c.fixture(t, "", nil)
			out := filepath.Join(t.TempDir(), "glm.gguf")
			if err := convert.Convert(context.Background(), dir, out, convert.Options{Type: "f32", Name: "x"}); err != nil {
				t.Fatal(err)
			}
			f, err := gguf.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			for k, want := range map[string]float64{
				"block_count": glmLayers, "rope.dimension_count": glmHeadDim / 2, "attention.key_length": glmHeadDim,
				"attention.head_count_kv": glmKV, "expert_count": glmExperts, "expert_used_count": glmUsed,
				"expert_shared_count": 1, "leading_dense_block_count": 1, "expert_gating_func": 2,
				"expert_weights_scale": 2.5, "expert_group_count": 2, "expert_group_used_count": 1,
				"expert_feed_forward_length": glmExpertFFN,
			} {
				if v, ok := f.Float("glm4moe." + k); !ok || v != want {
					t.Errorf("%s = %v (%v), want %v", k, v, ok, want)
				}
			}
			if _, ok := f.Tensor("blk.3.attn_q.weight"); ok {
				t.Error("the multi-token-prediction layer was written")
			}
			ctx := refContext(t, out)
			fresh := func() *refModel { m, _ := c.reference(t, dir); return m }
			checkRef(t, ctx, prompts, fresh().forward, 1e-5)
			edits := map[string]func(*refModel){
				"partial rope": func(m *refModel) { m.invFreq = defaultInvFreq(10000, glmHeadDim) },
				"q/k biases":   func(m *refModel) { m.layers[1].bq, m.layers[1].bk = nil, nil },
			}
			moeEdit := func(f func(*smoeRef)) func(*refModel) {
				return func(m *refModel) {
					// The closures read the reference's smoeRef: rebuild with the edit.
					m2, moe := c.reference(t, dir)
					f(moe)
					*m = *m2
				}
			}
			edits["shared expert"] = moeEdit(func(s *smoeRef) { s.noShared = true })
			edits["score bias"] = moeEdit(func(s *smoeRef) { s.noBias = true })
			edits["groups"] = moeEdit(func(s *smoeRef) { s.noGroups = true })
			edits["routed scaling"] = moeEdit(func(s *smoeRef) { s.scale = 1 })
			if qkNorm {
				edits["q/k norms"] = func(m *refModel) {
					for i := range m.layers {
						m.layers[i].qNorm, m.layers[i].kNorm = nil, nil
					}
				}
			}
			checkSensitive(t, ctx, prompts, fresh, edits)
		})
	}
}

// TestGLM4MoEVocab: GLM-4.5's byte-level tokenizer (Llama 3's regex) is
// written as llama.cpp's glm4 pre-tokenizer, with [gMASK] as BOS and
// <|user|> and <|observation|> ending a turn, so that llama.cpp stops
// there.
func TestGLM4MoEVocab(t *testing.T) {
	tok := bpeFixture(t, preLlama3, "", "")
	path := filepath.Join(tok, "tokenizer.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var tj map[string]any
	if err := json.Unmarshal(raw, &tj); err != nil {
		t.Fatal(err)
	}
	added := tj["added_tokens"].([]any)
	for i, s := range []string{"[gMASK]", "<|user|>", "<|observation|>"} {
		added = append(added, map[string]any{"id": 1001 + i, "content": s, "special": true, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false})
	}
	tj["added_tokens"] = added
	if raw, err = json.Marshal(tj); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	dir := glmCase{vocab: 1004}.fixture(t, tok, nil)
	out := filepath.Join(t.TempDir(), "glm.gguf")
	if err := convert.Convert(context.Background(), dir, out, convert.Options{Type: "f16", Name: "x"}); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := f.String("tokenizer.ggml.pre"); s != "glm4" {
		t.Errorf("tokenizer.ggml.pre %q, want glm4", s)
	}
	for k, want := range map[string]uint64{"bos_token_id": 1001, "eot_token_id": 1002, "eom_token_id": 1003} {
		if v, ok := f.Uint("tokenizer.ggml." + k); !ok || v != want {
			t.Errorf("%s = %v (%v), want %v", k, v, ok, want)
		}
	}
	m := loadModel(t, out, engine.ModelOptions{VocabOnly: true})
	for _, id := range []engine.Token{1002, 1003} {
		if !m.IsEOG(id) {
			t.Errorf("token %d does not end generation", id)
		}
	}
}

// TestGLM4MoERefused: configs llama.cpp's glm4moe cannot follow are
// refused.
func TestGLM4MoERefused(t *testing.T) {
	c := glmCase{vocab: dsVocab}
	for _, tc := range []struct {
		name string
		edit func(map[string]any, []stTensor) []stTensor
		want error
		msg  string
	}{
		{"no attention bias", setConfig("attention_bias", false), convert.ErrUnsupported, "attention_bias"},
		{"softmax routing", setConfig("scoring_func", "softmax"), convert.ErrUnsupported, "scoring_func"},
		{"greedy routing", setConfig("topk_method", "greedy"), convert.ErrUnsupported, "topk_method"},
		{"q_norm without use_qk_norm", func(_ map[string]any, ts []stTensor) []stTensor {
			return append(ts, f32Tensor("model.layers.0.self_attn.q_norm.weight", []int64{glmHeadDim}, make([]float32, glmHeadDim)))
		}, convert.ErrUnsupported, "q_norm"},
		{"no shared experts", setConfig("n_shared_experts", 0), convert.ErrUnsupported, "n_shared_experts"},
		{"no score bias", dropTensor("model.layers.2.mlp.gate.e_score_correction_bias"), convert.ErrMismatch, "exp_probs_b"},
		{"dense past first_k_dense_replace", setConfig("first_k_dense_replace", 0), convert.ErrUnsupported, "dense MLP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := c.fixture(t, "", tc.edit)
			err := convert.Convert(context.Background(), dir, filepath.Join(t.TempDir(), "x.gguf"), convert.Options{Type: "f16"})
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("%v, want %v naming %q", err, tc.want, tc.msg)
			}
		})
	}
}

// TestGLM4VMoE converts GLM-4.5V's layout of the GLM-4.5 fixture
// (text_config with a multimodal rope, model.language_model.*, a vision
// tower) and checks it gives the text model's logits.
func TestGLM4VMoE(t *testing.T) {
	prompts := readReference(t, "tiny-llama-st").Prompts
	c := glmCase{qkNorm: true, vocab: dsVocab}
	plain := c.fixture(t, "", nil)
	vl := c.fixture(t, "", glmVisionLayout("Glm4vMoeForConditionalGeneration", "glm4v_moe"))
	outPlain, _ := convertDir(t, plain, "f32")
	outVL, f := convertDir(t, vl, "f32")
	if n, _ := f.Uint("glm4moe.expert_count"); f.Architecture() != "glm4moe" || n != glmExperts {
		t.Errorf("arch %q, expert_count %d", f.Architecture(), n)
	}
	checkSameLogits(t, prompts, outPlain, outVL, "GLM-4.5V's layout")
}
