package convert_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
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

	"github.com/llm-go/llm"
	"github.com/llm-go/llm/engine"
	ref64 "github.com/llm-go/llm/internal/reference"
	"github.com/llm-go/llm/internal/shareddata"
	"github.com/llm-go/llm/loader/convert"
	"github.com/llm-go/llm/loader/gguf"
)

// Tiny BERT shapes: 4 heads of 8, 2 layers, bge-small's vocabulary.
const (
	bertHidden = 32
	bertHeads  = 4
	bertLayers = 2
	bertFFN    = 64
	bertMaxPos = 64
	bertTypes  = 2
	bertVocab  = 30522
	bertEps    = 1e-12
)

// bgeTokenizer writes tokenizer.json and tokenizer_config.json of a
// WordPiece tokenizer made from ggml-vocab-bert-bge.gguf: its tokens with
// llama.cpp's phantom-space spelling undone ("▁word" is "word", a bare
// piece is the continuation "##piece", control tokens and "[unusedN]",
// which llama.cpp's older converter kept as they were, unchanged), its
// control tokens as the special added tokens, and bge-small-en's
// normalizer, pre-tokenizer and post-processor.
func bgeTokenizer(t *testing.T, dir string) {
	t.Helper()
	ref := readGGUFVocab(t, shareddata.Path(t, "testdata", "tokenizer_vocab", "ggml-vocab-bert-bge.gguf"))
	vocab := map[string]int{}
	var added []map[string]any
	for id, tok := range ref.tokens {
		switch {
		case ref.types[id] == 3:
			added = append(added, map[string]any{"id": id, "content": tok, "single_word": false, "lstrip": false,
				"rstrip": false, "normalized": false, "special": true})
		case strings.HasPrefix(tok, "▁"):
			tok = strings.TrimPrefix(tok, "▁")
		case strings.HasPrefix(tok, "[") && strings.HasSuffix(tok, "]"):
		default:
			tok = "##" + tok
		}
		if _, dup := vocab[tok]; dup {
			t.Fatalf("token %q twice", tok)
		}
		vocab[tok] = id
	}
	tj := map[string]any{
		"version": "1.0", "truncation": nil, "padding": nil,
		"added_tokens":  added,
		"normalizer":    json.RawMessage(`{"type":"BertNormalizer","clean_text":true,"handle_chinese_chars":true,"strip_accents":null,"lowercase":true}`),
		"pre_tokenizer": json.RawMessage(`{"type":"BertPreTokenizer"}`),
		"post_processor": json.RawMessage(`{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"[CLS]","type_id":0}},{"Sequence":{"id":"A","type_id":0}},{"SpecialToken":{"id":"[SEP]","type_id":0}}],` +
			`"pair":[{"SpecialToken":{"id":"[CLS]","type_id":0}},{"Sequence":{"id":"A","type_id":0}},{"SpecialToken":{"id":"[SEP]","type_id":0}},{"Sequence":{"id":"B","type_id":1}},{"SpecialToken":{"id":"[SEP]","type_id":1}}],` +
			`"special_tokens":{"[CLS]":{"id":"[CLS]","ids":[101],"tokens":["[CLS]"]},"[SEP]":{"id":"[SEP]","ids":[102],"tokens":["[SEP]"]}}}`),
		"decoder": json.RawMessage(`{"type":"WordPiece","prefix":"##","cleanup":true}`),
		"model": map[string]any{"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
			"max_input_chars_per_word": 100, "vocab": vocab},
	}
	raw, err := json.Marshal(tj)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	tc := `{"clean_up_tokenization_spaces":true,"cls_token":"[CLS]","do_basic_tokenize":true,"do_lower_case":true,` +
		`"mask_token":"[MASK]","model_max_length":512,"never_split":null,"pad_token":"[PAD]","sep_token":"[SEP]",` +
		`"strip_accents":null,"tokenize_chinese_chars":true,"tokenizer_class":"BertTokenizer","unk_token":"[UNK]"}`
	if err := os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(tc), 0o644); err != nil {
		t.Fatal(err)
	}
}

// bertFixture writes a tiny random BertModel checkpoint with
// bgeTokenizer's vocabulary. prefix is "" for the sentence-transformers
// layout (which also gets modules.json and a 1_Pooling/config.json with
// pooling, "mean" or "cls") or "bert." for a transformers BertModel save,
// which also carries the pooler that is not converted.
func bertFixture(t *testing.T, prefix, pooling string) string {
	t.Helper()
	dir := t.TempDir()
	cfg := map[string]any{
		"architectures": []string{"BertModel"}, "model_type": "bert",
		"hidden_size": bertHidden, "intermediate_size": bertFFN, "num_hidden_layers": bertLayers,
		"num_attention_heads": bertHeads, "max_position_embeddings": bertMaxPos, "type_vocab_size": bertTypes,
		"vocab_size": bertVocab, "layer_norm_eps": bertEps, "hidden_act": "gelu",
		"position_embedding_type": "absolute", "pad_token_id": 0, "torch_dtype": "float32",
		"attention_probs_dropout_prob": 0.1, "hidden_dropout_prob": 0.1,
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	bgeTokenizer(t, dir)
	if prefix == "" {
		modules := `[{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},` +
			`{"idx":1,"name":"1","path":"1_Pooling","type":"sentence_transformers.models.Pooling"},` +
			`{"idx":2,"name":"2","path":"2_Normalize","type":"sentence_transformers.models.Normalize"}]`
		if err := os.WriteFile(filepath.Join(dir, "modules.json"), []byte(modules), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(filepath.Join(dir, "1_Pooling"), 0o755); err != nil {
			t.Fatal(err)
		}
		pc := fmt.Sprintf(`{"word_embedding_dimension":%d,"pooling_mode_cls_token":%v,"pooling_mode_mean_tokens":%v,`+
			`"pooling_mode_max_tokens":false,"pooling_mode_mean_sqrt_len_tokens":false}`, bertHidden, pooling == "cls", pooling == "mean")
		if err := os.WriteFile(filepath.Join(dir, "1_Pooling", "config.json"), []byte(pc), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	r := rand.New(rand.NewPCG(20261127, 5))
	var ts []stTensor
	// add appends a tensor of scale·z (+ shift) with z standard normal.
	add := func(name string, scale, shift float64, shape ...int64) {
		st := stTensor{name: prefix + name, dtype: "F32", shape: shape}
		buf := make([]byte, st.size())
		for i := 0; i < len(buf); i += 4 {
			binary.LittleEndian.PutUint32(buf[i:], math.Float32bits(float32(shift+scale*r.NormFloat64())))
		}
		st.data = func(w io.Writer) error { _, err := w.Write(buf); return err }
		ts = append(ts, st)
	}
	H, I := int64(bertHidden), int64(bertFFN)
	add("embeddings.word_embeddings.weight", 1, 0, bertVocab, H)
	add("embeddings.position_embeddings.weight", 0.5, 0, bertMaxPos, H)
	add("embeddings.token_type_embeddings.weight", 0.5, 0, bertTypes, H)
	add("embeddings.LayerNorm.weight", 0.1, 1, H)
	add("embeddings.LayerNorm.bias", 0.1, 0, H)
	for l := range bertLayers {
		p := fmt.Sprintf("encoder.layer.%d.", l)
		for _, n := range []string{"query", "key", "value"} {
			add(p+"attention.self."+n+".weight", 1/math.Sqrt(float64(H)), 0, H, H)
			add(p+"attention.self."+n+".bias", 0.1, 0, H)
		}
		add(p+"attention.output.dense.weight", 1/math.Sqrt(float64(H)), 0, H, H)
		add(p+"attention.output.dense.bias", 0.1, 0, H)
		add(p+"attention.output.LayerNorm.weight", 0.1, 1, H)
		add(p+"attention.output.LayerNorm.bias", 0.1, 0, H)
		add(p+"intermediate.dense.weight", 1/math.Sqrt(float64(H)), 0, I, H)
		add(p+"intermediate.dense.bias", 0.1, 0, I)
		add(p+"output.dense.weight", 1/math.Sqrt(float64(I)), 0, H, I)
		add(p+"output.dense.bias", 0.1, 0, H)
		add(p+"output.LayerNorm.weight", 0.1, 1, H)
		add(p+"output.LayerNorm.bias", 0.1, 0, H)
	}
	if prefix != "" {
		add("pooler.dense.weight", 1/math.Sqrt(float64(H)), 0, H, H)
		add("pooler.dense.bias", 0.1, 0, H)
	}
	slices.SortStableFunc(ts, func(a, b stTensor) int { return strings.Compare(a.name, b.name) })
	if err := writeSafetensors(filepath.Join(dir, "model.safetensors"), ts); err != nil {
		t.Fatal(err)
	}
	return dir
}

// loadBertRef reads a BertModel checkpoint's weights into the float64
// reference encoder.
func loadBertRef(t *testing.T, dir, prefix string) *ref64.BERT {
	t.Helper()
	r := openST(t, dir)
	g := func(name string) []float64 { return r.get(prefix + name) }
	m := &ref64.BERT{
		Hidden: bertHidden, Heads: bertHeads, Eps: bertEps,
		WordEmb: g("embeddings.word_embeddings.weight"), PosEmb: g("embeddings.position_embeddings.weight"),
		TypeEmb:  g("embeddings.token_type_embeddings.weight"),
		EmbNormW: g("embeddings.LayerNorm.weight"), EmbNormB: g("embeddings.LayerNorm.bias"),
	}
	for l := range bertLayers {
		p := fmt.Sprintf("encoder.layer.%d.", l)
		m.Layers = append(m.Layers, ref64.BERTLayer{
			WQ: g(p + "attention.self.query.weight"), BQ: g(p + "attention.self.query.bias"),
			WK: g(p + "attention.self.key.weight"), BK: g(p + "attention.self.key.bias"),
			WV: g(p + "attention.self.value.weight"), BV: g(p + "attention.self.value.bias"),
			WO: g(p + "attention.output.dense.weight"), BO: g(p + "attention.output.dense.bias"),
			AttnNormW: g(p + "attention.output.LayerNorm.weight"), AttnNormB: g(p + "attention.output.LayerNorm.bias"),
			WUp: g(p + "intermediate.dense.weight"), BUp: g(p + "intermediate.dense.bias"),
			WDown: g(p + "output.dense.weight"), BDown: g(p + "output.dense.bias"),
			OutNormW: g(p + "output.LayerNorm.weight"), OutNormB: g(p + "output.LayerNorm.bias"),
		})
	}
	return m
}

// TestBERTVocabVectors converts a tiny BertModel whose WordPiece
// tokenizer.json holds bge-small-en's vocabulary and checks the vocabulary
// metadata and that llama.cpp tokenizes every test input of
// ggml-vocab-bert-bge as expected.
func TestBERTVocabVectors(t *testing.T) {
	dir := bertFixture(t, "", "mean")
	out := filepath.Join(t.TempDir(), "bert.gguf")
	if err := convert.Convert(context.Background(), dir, out, convert.Options{}); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := f.String("tokenizer.ggml.model"); s != "bert" {
		t.Errorf("tokenizer.ggml.model %q, want bert", s)
	}
	for key, want := range map[string]uint64{
		"tokenizer.ggml.unknown_token_id":   100,
		"tokenizer.ggml.cls_token_id":       101,
		"tokenizer.ggml.seperator_token_id": 102,
		"tokenizer.ggml.mask_token_id":      103,
		"tokenizer.ggml.padding_token_id":   0,
		"tokenizer.ggml.bos_token_id":       101,
		"tokenizer.ggml.eos_token_id":       102,
		"tokenizer.ggml.token_type_count":   bertTypes,
	} {
		if v, ok := f.Uint(key); !ok || v != want {
			t.Errorf("%s = %d (%v), want %d", key, v, ok, want)
		}
	}
	ref := readGGUFVocab(t, shareddata.Path(t, "testdata", "tokenizer_vocab", "ggml-vocab-bert-bge.gguf"))
	got := readGGUFVocab(t, out)
	if !slices.Equal(got.types, ref.types) {
		t.Error("token types differ from ggml-vocab-bert-bge's")
	}
	differ := 0
	for i, tok := range ref.tokens {
		if got.tokens[i] != tok {
			// llama.cpp's converter now spells "[unusedN]" (a normal
			// token) "▁[unusedN]"; the vocab file predates that.
			if got.tokens[i] != "▁"+tok || !strings.HasPrefix(tok, "[unused") {
				t.Errorf("token %d: %q, want %q", i, got.tokens[i], tok)
			}
			differ++
		}
	}
	t.Logf("%d tokens spelled \"▁[unusedN]\" where the vocab file has \"[unusedN]\"", differ)

	m := loadModel(t, out, engine.ModelOptions{VocabOnly: true})
	inputs, want := vocabVectors(t, "bert-bge")
	pass := checkVectors(t, m, inputs, want)
	t.Logf("ggml-vocab-bert-bge: %d/%d cases", pass, len(inputs))
}

// TestBERTReference converts tiny BertModel checkpoints (the
// sentence-transformers layout with mean and with CLS pooling, and the
// "bert."-prefixed layout with a pooler, which gets mean pooling) to F32
// and F16 and compares llama.cpp's pooled embeddings with the float64
// reference for a few texts.
func TestBERTReference(t *testing.T) {
	texts := []string{
		"Hello world",
		"The quick brown fox jumps over the lazy dog.",
		"llama.cpp runs BERT embeddings: 3 layers, 12 heads, 384 dims!",
		"Ein kleiner Test mit Umlauten: Äpfel, Öl und Übermut.",
	}
	for _, tc := range []struct {
		name, prefix, pooling string
		want                  engine.Pooling
	}{
		{"sentence-transformers mean", "", "mean", engine.PoolingMean},
		{"sentence-transformers cls", "", "cls", engine.PoolingCLS},
		{"bert prefix", "bert.", "", engine.PoolingMean},
	} {
		dir := bertFixture(t, tc.prefix, tc.pooling)
		ref := loadBertRef(t, dir, tc.prefix)
		for _, typ := range []struct {
			name string
			tol  float64
		}{{"f32", 2e-3}, {"f16", 1e-2}} {
			t.Run(tc.name+"/"+typ.name, func(t *testing.T) {
				out := filepath.Join(t.TempDir(), "bert.gguf")
				if err := convert.Convert(context.Background(), dir, out, convert.Options{Type: typ.name}); err != nil {
					t.Fatal(err)
				}
				m := loadModel(t, out, engine.ModelOptions{})
				c, err := m.NewContext(engine.ContextOptions{ContextLength: bertMaxPos, BatchSize: bertMaxPos,
					MicroBatchSize: bertMaxPos, Threads: 1, Embeddings: true})
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				if c.Pooling() != tc.want {
					t.Errorf("pooling %v, want %v", c.Pooling(), tc.want)
				}
				b, err := engine.NewBatch(bertMaxPos, 1)
				if err != nil {
					t.Fatal(err)
				}
				defer b.Close()
				worst := 0.0
				for _, text := range texts {
					ids, err := m.Tokenize(text, true, false)
					if err != nil {
						t.Fatal(err)
					}
					if len(ids) < 3 || ids[0] != 101 || ids[len(ids)-1] != 102 {
						t.Fatalf("%q tokenizes to %v: want [CLS] ... [SEP]", text, ids)
					}
					if err := c.ClearMemory(false); err != nil {
						t.Fatal(err)
					}
					b.Clear()
					ints := make([]int, len(ids))
					for i, id := range ids {
						ints[i] = int(id)
						if err := b.Add(id, engine.Pos(i), true); err != nil {
							t.Fatal(err)
						}
					}
					if err := c.Decode(context.Background(), b); err != nil {
						t.Fatal(err)
					}
					got, err := c.SequenceEmbeddings(0)
					if err != nil {
						t.Fatal(err)
					}
					want := ref64.Pool(ref.Forward(ints), tc.want == engine.PoolingCLS)
					if len(got) != len(want) {
						t.Fatalf("embedding of %d values, want %d", len(got), len(want))
					}
					re := relErr(got, want)
					worst = max(worst, re)
					if re > typ.tol {
						t.Errorf("%q (%d tokens): relative error %.3g > %g", text, len(ids), re, typ.tol)
					}
				}
				t.Logf("largest relative embedding error %.3g over %d texts", worst, len(texts))
			})
		}
	}
}

// TestBERTRefused checks the BERT configurations and tokenizers llama.cpp
// cannot reproduce are refused.
func TestBERTRefused(t *testing.T) {
	for _, tc := range []struct {
		name    string
		edit    func(dir string)
		mention string
	}{
		{"relu", func(dir string) {
			editJSON(t, filepath.Join(dir, "config.json"), func(m map[string]any) { m["hidden_act"] = "relu" })
		}, "hidden_act"},
		{"relative positions", func(dir string) {
			editJSON(t, filepath.Join(dir, "config.json"), func(m map[string]any) { m["position_embedding_type"] = "relative_key" })
		}, "position_embedding_type"},
		{"cased", func(dir string) {
			editJSON(t, filepath.Join(dir, "tokenizer.json"), func(m map[string]any) {
				m["normalizer"].(map[string]any)["lowercase"] = false
			})
		}, "lowercase"},
		{"max pooling", func(dir string) {
			os.WriteFile(filepath.Join(dir, "1_Pooling", "config.json"), []byte(`{"pooling_mode_max_tokens":true}`), 0o644)
		}, "pooling"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := bertFixture(t, "", "mean")
			tc.edit(dir)
			err := convert.Convert(context.Background(), dir, filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
			if !errors.Is(err, convert.ErrUnsupported) || !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("got %v, want ErrUnsupported mentioning %q", err, tc.mention)
			}
		})
	}
}

// editJSON rewrites a JSON object file through edit.
func editJSON(t *testing.T, path string, edit func(map[string]any)) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	if raw, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestBERTReranker converts a tiny BertForSequenceClassification (a
// cross-encoder: BERT, its pooler and a one-label classifier) into a
// reranker GGUF (rank pooling, cls and cls.output) whose scores, through
// llm.Pipeline.Rerank, are the float64 reference's: the first token's
// final state through the pooler (tanh) and the classifier, for the pair
// as llama-server joins it. The tokenizer's post-processor adds [SEP] as
// the EOS, as gguf-py reads it, so that is [CLS] query [SEP] [SEP]
// document [SEP] (XLM-RoBERTa's pair form; BERT's own has one [SEP]
// between and token types, which llama.cpp does not give).
func TestBERTReranker(t *testing.T) {
	dir := bertFixture(t, "bert.", "")
	raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["architectures"] = []string{"BertForSequenceClassification"}
	cfg["id2label"] = map[string]string{"0": "LABEL_0"}
	raw, _ = json.Marshal(cfg)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	ts := f32Tensors(t, dir, nil)
	r := rand.New(rand.NewPCG(9, 9))
	ts = append(ts, f32Tensor("classifier.weight", []int64{1, bertHidden}, randn(r, bertHidden, 1)),
		f32Tensor("classifier.bias", []int64{1}, []float32{0.25}))
	slices.SortStableFunc(ts, func(a, b stTensor) int { return strings.Compare(a.name, b.name) })
	if err := writeSafetensors(filepath.Join(dir, "model.safetensors"), ts); err != nil {
		t.Fatal(err)
	}

	out, f := convertDir(t, dir, "f32")
	if p, _ := f.Uint("bert.pooling_type"); p != 4 {
		t.Errorf("pooling_type %d, want 4 (rank)", p)
	}
	for name, shape := range map[string][]uint64{"cls.weight": {bertHidden, bertHidden}, "cls.bias": {bertHidden},
		"cls.output.weight": {bertHidden, 1}, "cls.output.bias": {1}} {
		if ti, ok := f.Tensor(name); !ok || !slices.Equal(ti.Shape, shape) {
			t.Errorf("%s: %v %+v", name, ok, ti)
		}
	}

	p, err := llm.New(context.Background(), out, llm.WithThreads(1), llm.WithCacheTypes("f32", "f32"), llm.WithFlashAttention(engine.FlashAttentionOff))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	query, docs := "what is a cat", []string{"a cat is a small animal", "the stock market fell today", "cats"}
	scores, err := p.Rerank(context.Background(), query, docs...)
	if err != nil {
		t.Fatal(err)
	}
	ref := loadBertRef(t, dir, "bert.")
	rd := openST(t, dir)
	tok := func(s string) []int {
		ids, err := p.Model().Tokenize(s, false, false)
		if err != nil {
			t.Fatal(err)
		}
		out := make([]int, len(ids))
		for i, id := range ids {
			out[i] = int(id)
		}
		return out
	}
	if sp := p.Model().SpecialTokens(); !sp.AddBOS || !sp.AddEOS || !sp.AddSEP || sp.BOS != 101 || sp.EOS != 102 || sp.SEP != 102 {
		t.Fatalf("special tokens %+v", sp)
	}
	for i, d := range docs {
		ids := slices.Concat([]int{101}, tok(query), []int{102, 102}, tok(d), []int{102})
		h := ref64.Affine(rd.get("bert.pooler.dense.weight"), rd.get("bert.pooler.dense.bias"), ref.Forward(ids)[0])
		for k := range h {
			h[k] = math.Tanh(h[k])
		}
		want := ref64.Affine(rd.get("classifier.weight"), rd.get("classifier.bias"), h)[0]
		// ggml's CPU GELU reads an F16 table: about 1e-3 of error.
		if math.Abs(scores[i]-want) > 3e-3*max(1, math.Abs(want)) {
			t.Errorf("%q: score %.5f, reference %.5f", d, scores[i], want)
		}
		t.Logf("%q: score %.5f, reference %.5f", d, scores[i], want)
	}
}
