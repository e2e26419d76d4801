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
	"strings"
	"testing"

	"github.com/llm-go/llm/engine"
	ref64 "github.com/llm-go/llm/internal/reference"
	"github.com/llm-go/llm/loader/convert"
)

// The tiny JinaBert: bge-small's vocabulary in jina-embeddings-v2's
// embedding of 30528 rows, 6 heads of 8 (not a power of two, so that the
// last two heads take ALiBi's interleaved slopes), 2 layers, a GEGLU MLP
// of 2×64.
const (
	jbHidden, jbHeads, jbLayers, jbFFN = 48, 6, 2, 64
	jbVocab                            = 30528
)

// jbFixture says how jinaBertFixture writes the tiny JinaBert.
type jbFixture struct {
	edit   func(map[string]any) // changes config.json
	rename func(string) string  // renames the tensors
	// code writes jina-embeddings-v2-base-code's layout with a RoBERTa
	// BPE tokenizer.
	code  bool
	extra []stTensor // more tensors
}

// jinaBertFixture writes the tiny JinaBertForMaskedLM checkpoint as
// jina-embeddings-v2-base-en's config.json describes it, with the
// sentence-transformers mean pooling and the tensor names of JinaBertModel
// under "bert.", changed as o says.
func jinaBertFixture(t *testing.T, o jbFixture) string {
	t.Helper()
	dir := t.TempDir()
	V := int64(jbVocab)
	cfg := map[string]any{
		"architectures": []string{"JinaBertForMaskedLM"}, "model_type": "bert", "hidden_size": jbHidden, "num_attention_heads": jbHeads,
		"num_hidden_layers": jbLayers, "intermediate_size": jbFFN, "max_position_embeddings": 8192, "vocab_size": jbVocab,
		"type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_act": "gelu", "feed_forward_type": "geglu",
		"position_embedding_type": "alibi", "emb_pooler": "mean", "attn_implementation": "torch", "pad_token_id": 0,
	}
	if o.code {
		V = robertaVocab
		cfg["vocab_size"] = robertaVocab
		robertaTokenizer(t, dir)
	} else {
		bgeTokenizer(t, dir)
	}
	if o.edit != nil {
		o.edit(cfg)
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	writeSentenceModules(t, dir, "mean")
	w := randWeights{rand.New(rand.NewPCG(17, 5))}
	H := int64(jbHidden)
	norm := func(name string) []stTensor {
		return []stTensor{w.vec(name+".weight", H, 1, 0.1), w.vec(name+".bias", H, 0, 0.1)}
	}
	ts := []stTensor{w.mat("bert.embeddings.word_embeddings.weight", V, H), w.mat("bert.embeddings.token_type_embeddings.weight", 2, H),
		w.mat("bert.pooler.dense.weight", H, H), w.vec("bert.pooler.dense.bias", H, 0, 0.1), w.mat("cls.predictions.transform.dense.weight", H, H)}
	ts = append(ts, norm("bert.embeddings.LayerNorm")...)
	for l := range jbLayers {
		p := "bert.encoder.layer." + strconv.Itoa(l) + "."
		for _, n := range []string{"query", "key", "value"} {
			ts = append(ts, w.mat(p+"attention.self."+n+".weight", H, H), w.vec(p+"attention.self."+n+".bias", H, 0, 0.1))
		}
		ts = append(ts, w.mat(p+"attention.output.dense.weight", H, H), w.vec(p+"attention.output.dense.bias", H, 0, 0.1))
		ts = append(ts, norm(p+"attention.output.LayerNorm")...)
		if o.code {
			for _, n := range []string{"attention.self.layer_norm_q", "attention.self.layer_norm_k", "layer_norm_1", "layer_norm_2"} {
				ts = append(ts, norm(p+n)...)
			}
			ts = append(ts, w.mat(p+"mlp.up_gated_layer.weight", 2*jbFFN, H), w.mat(p+"mlp.down_layer.weight", H, jbFFN),
				w.vec(p+"mlp.down_layer.bias", H, 0, 0.1))
			continue
		}
		ts = append(ts, w.mat(p+"mlp.gated_layers.weight", 2*jbFFN, H), w.mat(p+"mlp.wo.weight", H, jbFFN), w.vec(p+"mlp.wo.bias", H, 0, 0.1))
		ts = append(ts, norm(p+"mlp.layernorm")...)
	}
	if o.rename != nil {
		for i := range ts {
			ts[i].name = o.rename(ts[i].name)
		}
	}
	if err := writeSafetensors(filepath.Join(dir, "model.safetensors"), append(ts, o.extra...)); err != nil {
		t.Fatal(err)
	}
	return dir
}

// jbRef is the float64 JinaBertModel of Jina AI's modeling code (ALiBi
// bias -slope×|i-j|, the GLU MLP with erf GELU), with knobs that change
// one feature each.
type jbRef struct {
	r          *stReader
	rename     func(string) string // the fixture's, or nil
	noAlibi    bool                // no position information at all
	pow2Slopes bool                // every head's slope by the power-of-two formula
	swapGLU    bool                // GELU of the other half, times the gating one
	noTyp      bool                // no token type embedding
	code       bool                // jina-embeddings-v2-base-code's layout
	noNorm1    bool                // the code layout without layer_norm_1
	noQKNorm   bool                // the code layout without the q/k norms
}

// slope is ALiBi's slope of head h of n: 2^(-8(h+1)/n) when n is a power
// of two; otherwise the closest power c's, then every other one of 2c's.
func (m *jbRef) slope(h, n int) float64 {
	c := 1 << int(math.Floor(math.Log2(float64(n))))
	if m.pow2Slopes || c == n {
		return math.Pow(2, -8*float64(h+1)/float64(n))
	}
	if h < c {
		return math.Pow(2, -8*float64(h+1)/float64(c))
	}
	return math.Pow(2, -8*float64(2*(h-c)+1)/float64(2*c))
}

// nm is the checkpoint's name of the tensor the reference calls name.
func (m *jbRef) nm(name string) string {
	if m.rename == nil {
		return name
	}
	return m.rename(name)
}

func (m *jbRef) get(name string) []float64 { return m.r.get(m.nm(name)) }

func (m *jbRef) ln(x []float64, name string) []float64 {
	return (&nbRef{r: m.r}).layerNorm(x, m.nm(name+".weight"), m.nm(name+".bias"))
}

func (m *jbRef) linear(x []float64, name string, rows int) []float64 {
	y := matvec(m.get(name+".weight"), x, rows)
	if b := name + ".bias"; m.r.has(m.nm(b)) {
		for i, v := range m.get(b) {
			y[i] += v
		}
	}
	return y
}

// pooled is the mean of the last hidden states.
func (m *jbRef) pooled(ids []int) []float64 {
	H, d, T := jbHidden, jbHidden/jbHeads, len(ids)
	emb, typ := m.get("bert.embeddings.word_embeddings.weight"), m.get("bert.embeddings.token_type_embeddings.weight")
	x := make([][]float64, T)
	for i, id := range ids {
		v := make([]float64, H)
		for e := range H {
			v[e] = emb[id*H+e]
			if !m.noTyp {
				v[e] += typ[e]
			}
		}
		x[i] = m.ln(v, "bert.embeddings.LayerNorm")
	}
	for l := range jbLayers {
		p := "bert.encoder.layer." + strconv.Itoa(l) + "."
		qs, ks, vs := make([][]float64, T), make([][]float64, T), make([][]float64, T)
		for i := range T {
			qs[i], ks[i], vs[i] = m.linear(x[i], p+"attention.self.query", H), m.linear(x[i], p+"attention.self.key", H), m.linear(x[i], p+"attention.self.value", H)
			if m.code && !m.noQKNorm {
				qs[i], ks[i] = m.ln(qs[i], p+"attention.self.layer_norm_q"), m.ln(ks[i], p+"attention.self.layer_norm_k")
			}
		}
		alibi := func(h, i, s int) float64 {
			if m.noAlibi {
				return 0
			}
			return -m.slope(h, jbHeads) * math.Abs(float64(i-s))
		}
		atts := ref64.EncoderAttention(qs, ks, vs, jbHeads, d, alibi)
		for i, att := range atts {
			o := m.linear(att, p+"attention.output.dense", H)
			for e := range H {
				o[e] += x[i][e]
			}
			qs[i] = m.ln(o, p+"attention.output.LayerNorm") // the MLP's input
			if m.code && !m.noNorm1 {
				for e := range H {
					o[e] = qs[i][e] + x[i][e]
				}
				qs[i] = m.ln(o, p+"layer_norm_1")
			}
		}
		for i := range T {
			glu, down, out := "mlp.gated_layers", "mlp.wo", "mlp.layernorm"
			if m.code {
				glu, down, out = "mlp.up_gated_layer", "mlp.down_layer", "layer_norm_2"
			}
			g := matvec(m.get(p+glu+".weight"), qs[i], 2*jbFFN)
			gate, up := g[:jbFFN], g[jbFFN:]
			if m.code != m.swapGLU { // the code model gates with the second half
				gate, up = up, gate
			}
			u := make([]float64, jbFFN)
			for e := range u {
				u[e] = 0.5 * gate[e] * (1 + math.Erf(gate[e]/math.Sqrt2)) * up[e]
			}
			y := m.linear(u, p+down, H)
			for e := range H {
				y[e] += qs[i][e]
			}
			x[i] = m.ln(y, p+out)
		}
	}
	mean := make([]float64, H)
	for _, v := range x {
		for e := range v {
			mean[e] += v[e] / float64(T)
		}
	}
	return mean
}

// TestJinaBert converts the tiny JinaBertForMaskedLM, with its tensors
// under "bert." and as released (unprefixed; here also with old
// LayerNorms' gamma and beta), and in jina-embeddings-v2-base-code's
// layout with a RoBERTa tokenizer, and checks the keys and llama.cpp's
// mean-pooled embeddings against the reference, which would see ALiBi left
// out, the power-of-two slopes in every head, the GLU's halves swapped,
// the token type or the code model's second attention norm left out.
func TestJinaBert(t *testing.T) {
	unprefixed := func(n string) string { return strings.TrimPrefix(n, "bert.") }
	released := func(n string) string {
		n = unprefixed(n)
		if b, ok := strings.CutSuffix(n, "LayerNorm.weight"); ok {
			return b + "LayerNorm.gamma"
		}
		if b, ok := strings.CutSuffix(n, "LayerNorm.bias"); ok {
			return b + "LayerNorm.beta"
		}
		return n
	}
	t.Run("bert. prefix", func(t *testing.T) {
		ref, got, ids := testJinaBert(t, jbFixture{})
		sensitive(t, got, map[string][]float64{
			"no ALiBi":                (&jbRef{r: ref.r, noAlibi: true}).pooled(ids),
			"power-of-two slopes":     (&jbRef{r: ref.r, pow2Slopes: true}).pooled(ids),
			"GELU of the second half": (&jbRef{r: ref.r, swapGLU: true}).pooled(ids),
			"no token type":           (&jbRef{r: ref.r, noTyp: true}).pooled(ids),
		})
	})
	t.Run("unprefixed, gamma and beta", func(t *testing.T) { testJinaBert(t, jbFixture{rename: released}) })
	t.Run("base-code", func(t *testing.T) {
		ref, got, ids := testJinaBert(t, jbFixture{rename: unprefixed, code: true})
		sensitive(t, got, map[string][]float64{
			"GELU of the first half": (&jbRef{r: ref.r, rename: unprefixed, code: true, swapGLU: true}).pooled(ids),
			"no layer_norm_1":        (&jbRef{r: ref.r, rename: unprefixed, code: true, noNorm1: true}).pooled(ids),
			"no q/k norms":           (&jbRef{r: ref.r, rename: unprefixed, code: true, noQKNorm: true}).pooled(ids),
			"no ALiBi":               (&jbRef{r: ref.r, rename: unprefixed, code: true, noAlibi: true}).pooled(ids),
		})
	})
}

// sensitive checks that each reference with a feature left out lies more
// than 5e-3 from llama.cpp's embedding got.
func sensitive(t *testing.T, got []float32, refs map[string][]float64) {
	t.Helper()
	for name, ref := range refs {
		if d := relErr(got, ref); !(d > 5e-3) {
			t.Errorf("%s: the reference differs by only %.3g", name, d)
		} else {
			t.Logf("%s: %.3g from llama.cpp", name, d)
		}
	}
}

// testJinaBert is TestJinaBert for one fixture: it returns the reference
// and the last, longest text's embedding and ids.
func testJinaBert(t *testing.T, o jbFixture) (*jbRef, []float32, []int) {
	// The longest last: the sensitivity checks use it.
	texts := []string{"cats", "Hello world, how are you?", "The quick brown fox jumps over the lazy dog, and then it runs far away into the woods."}
	dir := jinaBertFixture(t, o)
	if err := convert.Check(dir); err != nil {
		t.Fatal(err)
	}
	out, f := convertDir(t, dir, "f32")
	if a := f.Architecture(); a != "jina-bert-v2" {
		t.Fatalf("arch %q", a)
	}
	vocab := uint64(jbVocab)
	if o.code {
		vocab = robertaVocab
	}
	for k, v := range map[string]uint64{"feed_forward_length": jbFFN, "context_length": 8192, "vocab_size": vocab, "pooling_type": 1} {
		if got, ok := f.Uint("jina-bert-v2." + k); !ok || got != v {
			t.Errorf("%s = %d (%v), want %d", k, got, ok, v)
		}
	}
	if c, ok := f.Bool("jina-bert-v2.attention.causal"); !ok || c {
		t.Errorf("attention.causal %v (%v), want false", c, ok)
	}
	for _, name := range []string{"position_embd.weight", "blk.0.ffn_gate.weight"} {
		if _, ok := f.Tensor(name); ok {
			t.Errorf("tensor %s written", name)
		}
	}
	if ti, ok := f.Tensor("blk.1.ffn_up.weight"); !ok || len(ti.Shape) != 2 || ti.Shape[1] != 2*jbFFN {
		t.Errorf("blk.1.ffn_up.weight %v (%v), want the whole GLU projection [%d %d]", ti.Shape, ok, jbHidden, 2*jbFFN)
	}
	m := loadModel(t, out, engine.ModelOptions{})
	if !m.NonCausal() {
		t.Error("the model is not an encoder")
	}
	if o.code {
		// RoBERTa's byte-level BPE: <s> text </s>, a pair joined by </s> </s>.
		if pre, _ := f.String("tokenizer.ggml.pre"); pre != "jina-v2-code" {
			t.Errorf("pre-tokenizer %q, want jina-v2-code", pre)
		}
		if sp := m.SpecialTokens(); !sp.AddBOS || !sp.AddEOS || !sp.AddSEP || sp.BOS != 1000 || sp.EOS != 1002 {
			t.Errorf("special tokens %+v: want <s> and </s> added, a pair joined by </s> </s>", sp)
		}
		checkRobertaTokens(t, m)
	}
	ref := &jbRef{r: openST(t, dir), rename: o.rename, code: o.code}
	// ggml's GEGLU uses the tanh form of GELU.
	got, ids := checkEncoder(t, m, texts, ref.pooled)
	return ref, got, ids
}

// TestJinaBertRefused checks the JinaBert configurations and layouts
// llama.cpp's jina-bert-v2 cannot run are refused.
func TestJinaBertRefused(t *testing.T) {
	for name, edit := range map[string]func(map[string]any){
		"absolute positions": func(c map[string]any) { c["position_embedding_type"] = "absolute" },
		"no position type":   func(c map[string]any) { delete(c, "position_embedding_type") },
		"reglu":              func(c map[string]any) { c["feed_forward_type"] = "reglu" },
		"original MLP":       func(c map[string]any) { c["feed_forward_type"] = "original" },
		"decoder":            func(c map[string]any) { c["is_decoder"] = true },
	} {
		t.Run(name, func(t *testing.T) {
			err := convert.Check(jinaBertFixture(t, jbFixture{edit: edit}))
			if !errors.Is(err, convert.ErrUnsupported) {
				t.Errorf("%v, want ErrUnsupported", err)
			} else {
				t.Log(err)
			}
		})
	}
	// Layouts mixed, a bias the GLU does not have, and no
	// feed_forward_type (JinaBertConfig's "original").
	w := randWeights{rand.New(rand.NewPCG(1, 1))}
	for name, o := range map[string]jbFixture{
		"q norm in the en layout":         {extra: []stTensor{w.vec("bert.encoder.layer.0.attention.self.layer_norm_q.weight", jbHidden, 1, 0.1)}},
		"up_gated_layer in the en layout": {extra: []stTensor{w.mat("bert.encoder.layer.1.mlp.up_gated_layer.weight", 2*jbFFN, jbHidden)}},
		"gated_layers bias":               {extra: []stTensor{w.vec("bert.encoder.layer.1.mlp.gated_layers.bias", 2*jbFFN, 0, 0.1)}},
		"no feed_forward_type":            {edit: func(c map[string]any) { delete(c, "feed_forward_type") }},
		"code, no feed_forward_type":      {code: true, edit: func(c map[string]any) { delete(c, "feed_forward_type") }},
	} {
		t.Run(name, func(t *testing.T) {
			dir := jinaBertFixture(t, o)
			out := filepath.Join(t.TempDir(), "jb.gguf")
			if err := convert.Convert(context.Background(), dir, out, convert.Options{}); !errors.Is(err, convert.ErrUnsupported) {
				t.Errorf("%v, want ErrUnsupported", err)
			} else {
				t.Log(err)
			}
		})
	}
}
