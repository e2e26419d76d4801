package convert_test

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/llm-go/llm/engine"
	ref64 "github.com/llm-go/llm/internal/reference"
	"github.com/llm-go/llm/loader/convert"
	"github.com/llm-go/llm/loader/gguf"
)

// The tiny nomic-bert: bge-small's vocabulary (30522, padded to 30528 as
// pad_vocab_size_multiple 64 says), 4 heads of 8, 2 layers, n_inner 64,
// which NomicBertModel rounds up to an MLP of 256.
const (
	nbHidden, nbHeads, nbLayers, nbInner, nbFFN = 32, 4, 2, 64, 256
	nbVocab                                     = 30528
	nbBase                                      = 1000.0
)

// nomicBertFixture writes the tiny NomicBertModel checkpoint with the
// sentence-transformers pooling pooling ("mean" or "cls"); edit changes
// config.json.
func nomicBertFixture(t *testing.T, pooling string, edit func(map[string]any)) string {
	t.Helper()
	dir := t.TempDir()
	cfg := map[string]any{
		"architectures": []string{"NomicBertModel"}, "model_type": "nomic_bert", "n_embd": nbHidden, "n_head": nbHeads, "n_layer": nbLayers,
		"n_inner": nbInner, "n_positions": 8192, "max_trained_positions": 2048, "vocab_size": 30522, "pad_vocab_size_multiple": 64,
		"type_vocab_size": 2, "layer_norm_epsilon": 1e-12, "activation_function": "swiglu", "causal": false, "prenorm": false,
		"qkv_proj_bias": false, "mlp_fc1_bias": false, "mlp_fc2_bias": false, "rotary_emb_fraction": 1.0, "rotary_emb_base": nbBase,
		"rotary_emb_interleaved": false, "rotary_emb_scale_base": nil, "rotary_scaling_factor": nil, "use_flash_attn": true,
	}
	if edit != nil {
		edit(cfg)
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	bgeTokenizer(t, dir)
	writeSentenceModules(t, dir, pooling)
	if pooling == "cls" {
		pc := `{"word_embedding_dimension": 32, "pooling_mode_cls_token": true, "pooling_mode_mean_tokens": false}`
		if err := os.WriteFile(filepath.Join(dir, "1_Pooling", "config.json"), []byte(pc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	w := randWeights{rand.New(rand.NewPCG(11, 3))}
	H := int64(nbHidden)
	ts := []stTensor{w.mat("embeddings.word_embeddings.weight", nbVocab, H), w.mat("embeddings.token_type_embeddings.weight", 2, H),
		w.vec("emb_ln.weight", H, 1, 0.1), w.vec("emb_ln.bias", H, 0, 0.1)}
	for l := range nbLayers {
		p := "encoder.layers." + strconv.Itoa(l) + "."
		ts = append(ts, w.mat(p+"attn.Wqkv.weight", 3*H, H), w.mat(p+"attn.out_proj.weight", H, H),
			w.vec(p+"norm1.weight", H, 1, 0.1), w.vec(p+"norm1.bias", H, 0, 0.1),
			w.mat(p+"mlp.fc11.weight", nbFFN, H), w.mat(p+"mlp.fc12.weight", nbFFN, H), w.mat(p+"mlp.fc2.weight", H, nbFFN),
			w.vec(p+"norm2.weight", H, 1, 0.1), w.vec(p+"norm2.bias", H, 0, 0.1))
	}
	if err := writeSafetensors(filepath.Join(dir, "model.safetensors"), ts); err != nil {
		t.Fatal(err)
	}
	return dir
}

// nbRef is the float64 NomicBertModel of the custom modeling code, with
// knobs that change one feature each.
type nbRef struct {
	r                  *stReader
	interleaved, noTyp bool
	swapGate           bool
	base               float64
}

func (m *nbRef) layerNorm(x []float64, w, b string) []float64 {
	return ref64.LayerNorm(x, m.r.get(w), m.r.get(b), 1e-12)
}

// states returns the last hidden state of every position.
func (m *nbRef) states(ids []int) [][]float64 {
	H, d, T := nbHidden, nbHidden/nbHeads, len(ids)
	emb, typ := m.r.get("embeddings.word_embeddings.weight"), m.r.get("embeddings.token_type_embeddings.weight")
	x := make([][]float64, T)
	for i, id := range ids {
		v := make([]float64, H)
		for e := range H {
			v[e] = emb[id*H+e]
			if !m.noTyp {
				v[e] += typ[e]
			}
		}
		x[i] = m.layerNorm(v, "emb_ln.weight", "emb_ln.bias")
	}
	freq := defaultInvFreq(m.base, d)
	for l := range nbLayers {
		p := "encoder.layers." + strconv.Itoa(l) + "."
		wqkv, wo := m.r.get(p+"attn.Wqkv.weight"), m.r.get(p+"attn.out_proj.weight")
		qs, ks, vs := make([][]float64, T), make([][]float64, T), make([][]float64, T)
		for i := range T {
			qkv := matvec(wqkv, x[i], 3*H)
			q, k := qkv[:H], qkv[H:2*H]
			for h := range nbHeads {
				if m.interleaved {
					ropePairs(q[h*d:(h+1)*d], i, freq, 1)
					ropePairs(k[h*d:(h+1)*d], i, freq, 1)
				} else {
					rope(q[h*d:(h+1)*d], i, freq, 1)
					rope(k[h*d:(h+1)*d], i, freq, 1)
				}
			}
			qs[i], ks[i], vs[i] = q, k, qkv[2*H:]
		}
		for i, att := range ref64.EncoderAttention(qs, ks, vs, nbHeads, d, nil) {
			o := matvec(wo, att, H)
			for e := range H {
				o[e] += x[i][e]
			}
			qs[i] = m.layerNorm(o, p+"norm1.weight", p+"norm1.bias") // reused as the block's middle
		}
		up, gate, down := m.r.get(p+"mlp.fc11.weight"), m.r.get(p+"mlp.fc12.weight"), m.r.get(p+"mlp.fc2.weight")
		if m.swapGate {
			up, gate = gate, up
		}
		for i := range T {
			h := qs[i]
			u, g := matvec(up, h, nbFFN), matvec(gate, h, nbFFN)
			for e := range u {
				u[e] *= g[e] / (1 + math.Exp(-g[e]))
			}
			y := matvec(down, u, H)
			for e := range H {
				y[e] += h[e]
			}
			x[i] = m.layerNorm(y, p+"norm2.weight", p+"norm2.bias")
		}
	}
	return x
}

func (m *nbRef) pooled(ids []int, cls bool) []float64 {
	s := m.states(ids)
	if cls {
		return s[0]
	}
	mean := make([]float64, nbHidden)
	for _, v := range s {
		for e := range v {
			mean[e] += v[e] / float64(len(s))
		}
	}
	return mean
}

// TestNomicBert converts the tiny NomicBertModel with mean and CLS pooling
// and checks the keys and llama.cpp's pooled embeddings against the
// reference, which would see the rope on adjacent pairs, fc11 and fc12
// swapped, the token type left out or another rope base.
func TestNomicBert(t *testing.T) {
	// The longest last: the sensitivity checks use it.
	texts := []string{"cats", "search_query: Hello world", "search_document: The quick brown fox jumps over the lazy dog."}
	for _, pooling := range []string{"mean", "cls"} {
		t.Run(pooling, func(t *testing.T) {
			dir := nomicBertFixture(t, pooling, nil)
			if err := convert.Check(dir); err != nil {
				t.Fatal(err)
			}
			out, f := convertDir(t, dir, "f32")
			want := map[string]uint64{"feed_forward_length": nbFFN, "context_length": 2048, "vocab_size": nbVocab, "rope.dimension_count": nbHidden / nbHeads,
				"pooling_type": map[string]uint64{"mean": 1, "cls": 2}[pooling]}
			for k, v := range want {
				if got, ok := f.Uint("nomic-bert." + k); !ok || got != v {
					t.Errorf("%s = %d (%v), want %d", k, got, ok, v)
				}
			}
			if b, ok := f.Float("nomic-bert.rope.freq_base"); !ok || b != nbBase {
				t.Errorf("rope.freq_base %v (%v), want %v", b, ok, nbBase)
			}
			m := loadModel(t, out, engine.ModelOptions{})
			ref := &nbRef{r: openST(t, dir), base: nbBase}
			got, ids := checkEncoder(t, m, texts, func(ids []int) []float64 { return ref.pooled(ids, pooling == "cls") })
			// got and ids are the last, longest text's.
			for name, r := range map[string]*nbRef{
				"rope on pairs":   {r: ref.r, base: nbBase, interleaved: true},
				"fc11/fc12 swap":  {r: ref.r, base: nbBase, swapGate: true},
				"no token type":   {r: ref.r, base: nbBase, noTyp: true},
				"rope base 10000": {r: ref.r, base: 10000},
			} {
				if d := relErr(got, r.pooled(ids, pooling == "cls")); !(d > 5e-3) {
					t.Errorf("%s: the reference differs by only %.3g", name, d)
				} else {
					t.Logf("%s: %.3g from llama.cpp", name, d)
				}
			}
		})
	}
}

// TestNomicBertRefused checks the NomicBert configurations llama.cpp's
// nomic-bert cannot run are refused.
func TestNomicBertRefused(t *testing.T) {
	for name, edit := range map[string]func(map[string]any){
		"gelu":              func(c map[string]any) { c["activation_function"] = "gelu" },
		"causal":            func(c map[string]any) { c["causal"] = true },
		"qkv bias":          func(c map[string]any) { c["qkv_proj_bias"] = true },
		"fc1 bias default":  func(c map[string]any) { delete(c, "mlp_fc1_bias") },
		"prenorm":           func(c map[string]any) { c["prenorm"] = true },
		"partial rope":      func(c map[string]any) { c["rotary_emb_fraction"] = 0.5 },
		"learned positions": func(c map[string]any) { delete(c, "rotary_emb_fraction") },
		"interleaved":       func(c map[string]any) { c["rotary_emb_interleaved"] = true },
		"xpos":              func(c map[string]any) { c["rotary_emb_scale_base"] = 512 },
		"rotary_head_dim":   func(c map[string]any) { c["rotary_head_dim"] = true },
		"gqa":               func(c map[string]any) { c["num_heads_kv"] = 2 },
	} {
		t.Run(name, func(t *testing.T) {
			err := convert.Check(nomicBertFixture(t, "mean", edit))
			if !errors.Is(err, convert.ErrUnsupported) {
				t.Errorf("%v, want ErrUnsupported", err)
			} else {
				t.Log(err)
			}
		})
	}
	// Dynamic NTK scaling: the context is max_trained_positions.
	dir := nomicBertFixture(t, "mean", func(c map[string]any) { c["rotary_scaling_factor"] = 2.0 })
	out := filepath.Join(t.TempDir(), "nb.gguf")
	if err := convert.Convert(context.Background(), dir, out, convert.Options{}); err != nil {
		t.Fatal(err)
	}
	if f, err := gguf.Open(out); err != nil {
		t.Fatal(err)
	} else if n, _ := f.Uint("nomic-bert.context_length"); n != 2048 {
		t.Errorf("context_length %d with rotary_scaling_factor, want max_trained_positions 2048", n)
	}
}
