package convert_test

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llm-go/llm/engine"
	ref64 "github.com/llm-go/llm/internal/reference"
	"github.com/llm-go/llm/internal/shareddata"
	"github.com/llm-go/llm/loader/convert"
	"github.com/llm-go/llm/loader/gguf"
)

// xlmrPieces is the tiny XLM-RoBERTa's Unigram vocabulary after its four
// special tokens (<s>, <pad>, </s>, <unk>), with log-probability scores;
// <mask> follows.
var xlmrPieces = []struct {
	piece string
	score float64
}{
	{"▁", -3}, {"▁the", -2}, {"▁cat", -3}, {"▁sat", -3.5}, {"▁on", -3}, {"▁mat", -4}, {"▁a", -2.5}, {"▁dog", -4},
	{"s", -5}, {"a", -4.5}, {"t", -4.5}, {"c", -5}, {"h", -5}, {"e", -4}, {"o", -4.5}, {"n", -4.5}, {"m", -5}, {"d", -5},
	{"g", -5}, {"▁c", -4}, {"at", -3.5}, {"og", -4}, {".", -3}, {"▁hello", -5}, {"l", -5}, {"w", -5.5}, {"r", -5},
	{"▁w", -4.5}, {"orld", -6}, {"▁he", -4}, {"llo", -5}, {"!", -4},
}

const xlmrMaxPos = 64 + 2 // RoBERTa's rows: 2 before position 0

// xlmrFixture writes a tiny XLM-RoBERTa: the tiny BERT's shape with the
// Unigram vocabulary above, one token type, position embeddings counted from
// pad_token_id+1 = 2, CLS pooling (bge-m3's); as
// XLMRobertaForSequenceClassification with a "roberta." prefix and a
// classification head when reranker. edit changes tokenizer.json.
func xlmrFixture(t *testing.T, reranker bool, edit func(tj map[string]any)) string {
	t.Helper()
	dir := t.TempDir()
	V := 4 + len(xlmrPieces) + 1
	arch, prefix := "XLMRobertaModel", ""
	if reranker {
		arch, prefix = "XLMRobertaForSequenceClassification", "roberta."
	}
	cfg := map[string]any{"architectures": []string{arch}, "model_type": "xlm-roberta", "hidden_size": bertHidden, "intermediate_size": bertFFN,
		"num_hidden_layers": bertLayers, "num_attention_heads": bertHeads, "max_position_embeddings": xlmrMaxPos, "type_vocab_size": 1,
		"vocab_size": V, "layer_norm_eps": 1e-5, "hidden_act": "gelu", "position_embedding_type": "absolute", "pad_token_id": 1,
		"bos_token_id": 0, "eos_token_id": 2}
	if reranker {
		cfg["id2label"] = map[string]string{"0": "LABEL_0"}
	}
	vocab := [][]any{{"<s>", 0.0}, {"<pad>", 0.0}, {"</s>", 0.0}, {"<unk>", 0.0}}
	for _, p := range xlmrPieces {
		vocab = append(vocab, []any{p.piece, p.score})
	}
	vocab = append(vocab, []any{"<mask>", 0.0})
	added := []map[string]any{}
	for id, s := range map[int]string{0: "<s>", 1: "<pad>", 2: "</s>", 3: "<unk>", V - 1: "<mask>"} {
		added = append(added, map[string]any{"id": id, "content": s, "special": true, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false})
	}
	tj := map[string]any{
		"version": "1.0", "added_tokens": added,
		"normalizer": map[string]any{"type": "Sequence", "normalizers": []any{
			map[string]any{"type": "Precompiled", "precompiled_charsmap": ""},
			map[string]any{"type": "Replace", "pattern": map[string]any{"Regex": " {2,}"}, "content": " "}}},
		"pre_tokenizer": map[string]any{"type": "Metaspace", "replacement": "▁", "add_prefix_space": true},
		"post_processor": map[string]any{"type": "TemplateProcessing",
			"single": []any{map[string]any{"SpecialToken": map[string]any{"id": "<s>", "type_id": 0}}, map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}}, map[string]any{"SpecialToken": map[string]any{"id": "</s>", "type_id": 0}}},
			"pair": []any{map[string]any{"SpecialToken": map[string]any{"id": "<s>", "type_id": 0}}, map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}},
				map[string]any{"SpecialToken": map[string]any{"id": "</s>", "type_id": 0}}, map[string]any{"SpecialToken": map[string]any{"id": "</s>", "type_id": 0}},
				map[string]any{"Sequence": map[string]any{"id": "B", "type_id": 0}}, map[string]any{"SpecialToken": map[string]any{"id": "</s>", "type_id": 0}}},
			"special_tokens": map[string]any{}},
		"model": map[string]any{"type": "Unigram", "unk_id": 3, "vocab": vocab},
	}
	if edit != nil {
		edit(tj)
	}
	tc := map[string]any{"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "sep_token": "</s>", "cls_token": "<s>",
		"pad_token": "<pad>", "mask_token": "<mask>", "tokenizer_class": "XLMRobertaTokenizer"}
	for name, v := range map[string]any{"config.json": cfg, "tokenizer.json": tj, "tokenizer_config.json": tc} {
		raw, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if !reranker {
		writeSentenceModules(t, dir, "cls")
		pc := `{"word_embedding_dimension": 32, "pooling_mode_cls_token": true, "pooling_mode_mean_tokens": false}`
		if err := os.WriteFile(filepath.Join(dir, "1_Pooling", "config.json"), []byte(pc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	w := randWeights{rand.New(rand.NewPCG(3, 14))}
	H, I := int64(bertHidden), int64(bertFFN)
	ts := []stTensor{w.mat(prefix+"embeddings.word_embeddings.weight", int64(V), H), w.mat(prefix+"embeddings.position_embeddings.weight", xlmrMaxPos, H),
		w.mat(prefix+"embeddings.token_type_embeddings.weight", 1, H), w.vec(prefix+"embeddings.LayerNorm.weight", H, 1, 0.1),
		w.vec(prefix+"embeddings.LayerNorm.bias", H, 0, 0.1)}
	for l := range bertLayers {
		p := fmt.Sprintf("%sencoder.layer.%d.", prefix, l)
		for _, n := range []string{"query", "key", "value"} {
			ts = append(ts, w.mat(p+"attention.self."+n+".weight", H, H), w.vec(p+"attention.self."+n+".bias", H, 0, 0.1))
		}
		ts = append(ts, w.mat(p+"attention.output.dense.weight", H, H), w.vec(p+"attention.output.dense.bias", H, 0, 0.1),
			w.vec(p+"attention.output.LayerNorm.weight", H, 1, 0.1), w.vec(p+"attention.output.LayerNorm.bias", H, 0, 0.1),
			w.mat(p+"intermediate.dense.weight", I, H), w.vec(p+"intermediate.dense.bias", I, 0, 0.1),
			w.mat(p+"output.dense.weight", H, I), w.vec(p+"output.dense.bias", H, 0, 0.1),
			w.vec(p+"output.LayerNorm.weight", H, 1, 0.1), w.vec(p+"output.LayerNorm.bias", H, 0, 0.1))
	}
	if reranker {
		ts = append(ts, w.mat("classifier.dense.weight", H, H), w.vec("classifier.dense.bias", H, 0, 0.1),
			w.mat("classifier.out_proj.weight", 1, H), w.vec("classifier.out_proj.bias", 1, 0, 0.1))
	}
	if err := writeSafetensors(filepath.Join(dir, "model.safetensors"), ts); err != nil {
		t.Fatal(err)
	}
	return dir
}

// unigramViterbi is SentencePiece's Unigram segmentation of text, with
// llama.cpp's remove_extra_whitespaces and prefix space: whitespace runs
// merged and trimmed, spaces as "▁", a leading "▁", then the pieces of
// the highest total score (texts here use known pieces only).
func unigramViterbi(text string) []int {
	text = "▁" + strings.Join(strings.Fields(text), "▁")
	rs := []rune(text)
	best := make([]float64, len(rs)+1)
	from := make([]int, len(rs)+1)
	piece := make([]int, len(rs)+1)
	for i := 1; i <= len(rs); i++ {
		best[i] = math.Inf(-1)
		for id, p := range xlmrPieces {
			pr := []rune(p.piece)
			if j := i - len(pr); j >= 0 && !math.IsInf(best[j], -1) && string(rs[j:i]) == p.piece {
				if s := best[j] + p.score; s > best[i] {
					best[i], from[i], piece[i] = s, j, 4+id
				}
			}
		}
	}
	var out []int
	for i := len(rs); i > 0; i = from[i] {
		out = append([]int{piece[i]}, out...)
	}
	return out
}

// TestXLMRoberta converts the tiny XLM-RoBERTa and checks its Unigram
// vocabulary (llama.cpp's UGM segmentation equals SentencePiece's Viterbi,
// <s> ... </s> around), and its CLS-pooled embedding against the reference
// BERT reading positions from row 2, which would see the rows not dropped.
func TestXLMRoberta(t *testing.T) {
	dir := xlmrFixture(t, false, nil)
	out, f := convertDir(t, dir, "f32")
	if model, _ := f.String("tokenizer.ggml.model"); model != "t5" {
		t.Errorf("tokenizer model %q, want t5", model)
	}
	// A pair is <s> A </s> </s> B </s>: llama.cpp's EOS, then its SEP.
	if sep, ok := f.Bool("tokenizer.ggml.add_sep_token"); !ok || !sep {
		t.Errorf("add_sep_token %v (%v), want true", sep, ok)
	}
	for k, want := range map[string]uint64{"bert.context_length": 64, "bert.pooling_type": 2, "tokenizer.ggml.unknown_token_id": 3, "tokenizer.ggml.mask_token_id": 36} {
		if got, ok := f.Uint(k); !ok || got != want {
			t.Errorf("%s = %d (%v), want %d", k, got, ok, want)
		}
	}
	if ti, ok := f.Tensor("position_embd.weight"); !ok || ti.Shape[1] != 64 {
		t.Errorf("position_embd.weight %+v (%v), want 64 rows", ti, ok)
	}
	m := loadModel(t, out, engine.ModelOptions{})
	r := openST(t, dir)
	pos := r.get("embeddings.position_embeddings.weight")
	ref := &ref64.BERT{Hidden: bertHidden, Heads: bertHeads, Eps: 1e-5, WordEmb: r.get("embeddings.word_embeddings.weight"), PosEmb: pos[2*bertHidden:],
		TypeEmb: r.get("embeddings.token_type_embeddings.weight"), EmbNormW: r.get("embeddings.LayerNorm.weight"), EmbNormB: r.get("embeddings.LayerNorm.bias")}
	loaded := loadBertRef(t, dir, "")
	ref.Layers = loaded.Layers
	c, err := m.NewContext(engine.ContextOptions{ContextLength: 64, BatchSize: 64, MicroBatchSize: 64, Threads: 1, Embeddings: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, text := range []string{"the cat sat on the mat.", "  hello   world!", "a dog", "the dogs sat"} {
		toks, err := m.Tokenize(text, true, false)
		if err != nil {
			t.Fatal(err)
		}
		want := append(append([]int{0}, unigramViterbi(text)...), 2)
		ids := make([]int, len(toks))
		for i, id := range toks {
			ids[i] = int(id)
		}
		if fmt.Sprint(ids) != fmt.Sprint(want) {
			t.Errorf("%q: tokens %v, want %v", text, ids, want)
			continue
		}
		got := pooledEmbedding(t, c, ids)
		if re := relErr(got, ref64.Pool(ref.Forward(ids), true)); !(re < 2e-3) {
			t.Errorf("%q: relative error %.3g", text, re)
		} else {
			t.Logf("%q: tokens %v, relative error %.3g", text, ids, re)
		}
		if text == "the cat sat on the mat." {
			shifted := *ref
			shifted.PosEmb = pos
			if d := relErr(got, ref64.Pool(shifted.Forward(ids), true)); !(d > 1e-2) {
				t.Errorf("positions from row 0: the reference differs by only %.3g", d)
			}
		}
	}
}

// TestXLMRobertaCharsmap: the tokenizer's precompiled charsmap reaches
// llama.cpp, which normalizes with it: a charsmap mapping "A" to "a"
// tokenizes "A cat" as "a cat".
func TestXLMRobertaCharsmap(t *testing.T) {
	units := make([]uint32, 256)
	units[65] = 37<<10 | 1<<8 | 'A' // 'A' from the root: a leaf whose value (unit 100) is replacement 0
	cm := binary.LittleEndian.AppendUint32(nil, uint32(4*len(units)))
	for _, u := range units {
		cm = binary.LittleEndian.AppendUint32(cm, u)
	}
	cm = append(cm, 'a', 0)
	dir := xlmrFixture(t, false, func(tj map[string]any) {
		tj["normalizer"].(map[string]any)["normalizers"].([]any)[0].(map[string]any)["precompiled_charsmap"] = base64.StdEncoding.EncodeToString(cm)
	})
	out := filepath.Join(t.TempDir(), "xlmr.gguf")
	if err := convert.Convert(context.Background(), dir, out, convert.Options{}); err != nil {
		t.Fatal(err)
	}
	m := loadModel(t, out, engine.ModelOptions{})
	got, err := m.Tokenize("A cat", true, false)
	if err != nil {
		t.Fatal(err)
	}
	want := append(append([]int{0}, unigramViterbi("a cat")...), 2)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("tokens %v, want %v (\"a cat\")", got, want)
	}
}

// TestXLMRobertaReranker converts the tiny XLMRobertaForSequenceClassification
// (bge-reranker-v2-m3's layout) and checks llama.cpp's rank score against
// the classification head on the first token's state.
func TestXLMRobertaReranker(t *testing.T) {
	dir := xlmrFixture(t, true, nil)
	out := filepath.Join(t.TempDir(), "rr.gguf")
	if err := convert.Convert(context.Background(), dir, out, convert.Options{Type: "f32"}); err != nil {
		t.Fatal(err)
	}
	m := loadModel(t, out, engine.ModelOptions{})
	r := openST(t, dir)
	g := func(n string) []float64 { return r.get("roberta." + n) }
	pos := g("embeddings.position_embeddings.weight")
	ref := &ref64.BERT{Hidden: bertHidden, Heads: bertHeads, Eps: 1e-5, WordEmb: g("embeddings.word_embeddings.weight"), PosEmb: pos[2*bertHidden:],
		TypeEmb: g("embeddings.token_type_embeddings.weight"), EmbNormW: g("embeddings.LayerNorm.weight"), EmbNormB: g("embeddings.LayerNorm.bias")}
	ref.Layers = loadBertRef(t, dir, "roberta.").Layers
	c, err := m.NewContext(engine.ContextOptions{ContextLength: 64, BatchSize: 64, MicroBatchSize: 64, Threads: 1, Embeddings: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Pooling() != engine.PoolingRank {
		t.Fatalf("pooling %v, want rank", c.Pooling())
	}
	// A query and a document are joined by </s> </s>: the EOS, then the
	// SEP llama.cpp adds.
	if sp := m.SpecialTokens(); !sp.AddEOS || !sp.AddSEP || sp.EOS != 2 || sp.SEP != 2 {
		t.Errorf("special tokens %+v: want EOS and SEP </s>, both added", sp)
	}
	ids := []int{0, 5, 6, 2, 2, 8, 7, 2}
	got := pooledEmbedding(t, c, ids)
	h0 := ref.Forward(ids)[0]
	x := ref64.Affine(r.get("classifier.dense.weight"), r.get("classifier.dense.bias"), h0)
	for i := range x {
		x[i] = math.Tanh(x[i])
	}
	score := ref64.Affine(r.get("classifier.out_proj.weight"), r.get("classifier.out_proj.bias"), x)[0]
	if len(got) < 1 || math.Abs(float64(got[0])-score) > 2e-3*max(1, math.Abs(score)) {
		t.Errorf("score %v, want %.6f", got, score)
	} else {
		t.Logf("score %.6f (reference %.6f)", got[0], score)
	}
}

// TestXLMRobertaRefused: Unigram tokenizers llama.cpp's UGM would not
// reproduce are refused.
func TestXLMRobertaRefused(t *testing.T) {
	for name, edit := range map[string]func(map[string]any){
		"lowercase":     func(tj map[string]any) { tj["normalizer"] = map[string]any{"type": "Lowercase"} },
		"byte fallback": func(tj map[string]any) { tj["model"].(map[string]any)["byte_fallback"] = true },
		"whitespace":    func(tj map[string]any) { tj["pre_tokenizer"] = map[string]any{"type": "Whitespace"} },
		"bad charsmap": func(tj map[string]any) {
			tj["normalizer"] = map[string]any{"type": "Precompiled", "precompiled_charsmap": "AAAA"}
		},
		"no unk_id": func(tj map[string]any) { delete(tj["model"].(map[string]any), "unk_id") },
		"no prefix, merged": func(tj map[string]any) {
			tj["pre_tokenizer"] = map[string]any{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "never"}
		},
	} {
		t.Run(name, func(t *testing.T) {
			err := convert.Check(xlmrFixture(t, false, edit))
			if !errors.Is(err, convert.ErrUnsupported) && !errors.Is(err, convert.ErrMismatch) {
				t.Errorf("%v, want a refusal", err)
			} else {
				t.Log(err)
			}
		})
	}
}

// TestBertUnigram converts a BertModel with XLM-RoBERTa's Unigram tokenizer
// (multilingual-e5-small's and paraphrase-multilingual-MiniLM's layout):
// BERT's positions from row 0, the t5 vocabulary.
func TestBertUnigram(t *testing.T) {
	dir := xlmrFixture(t, false, nil)
	editJSON(t, filepath.Join(dir, "config.json"), func(c map[string]any) {
		c["architectures"], c["model_type"], c["max_position_embeddings"] = []string{"BertModel"}, "bert", xlmrMaxPos
	})
	out := filepath.Join(t.TempDir(), "bert.gguf")
	if err := convert.Convert(context.Background(), dir, out, convert.Options{}); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	if model, _ := f.String("tokenizer.ggml.model"); model != "t5" {
		t.Errorf("tokenizer model %q, want t5", model)
	}
	if ti, ok := f.Tensor("position_embd.weight"); !ok || ti.Shape[1] != xlmrMaxPos {
		t.Errorf("position_embd.weight %+v (%v), want all %d rows", ti, ok, xlmrMaxPos)
	}
	m := loadModel(t, out, engine.ModelOptions{})
	got, err := m.Tokenize("the cat", true, false)
	if err != nil {
		t.Fatal(err)
	}
	if want := append(append([]int{0}, unigramViterbi("the cat")...), 2); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("tokens %v, want %v", got, want)
	}
}

// robertaVocab is robertaTokenizer's vocabulary: GPT-2's 1000 tokens, then
// <s> <pad> </s> <unk> <mask>.
const robertaVocab = 1005

// robertaTokenizer writes tiny-random-gpt2's byte-level BPE tokenizer made
// RoBERTa's (its special tokens after GPT-2's, RobertaProcessing, and
// RobertaTokenizer's tokenizer_config.json) to dir.
func robertaTokenizer(t *testing.T, dir string) {
	t.Helper()
	raw, err := os.ReadFile(shareddata.Path(t, "models", "hf", "tiny-random-gpt2", "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	var tj map[string]any
	if err := json.Unmarshal(raw, &tj); err != nil {
		t.Fatal(err)
	}
	var added []any
	for i, s := range []string{"<s>", "<pad>", "</s>", "<unk>", "<mask>"} {
		added = append(added, map[string]any{"id": 1000 + i, "content": s, "special": true, "single_word": false, "lstrip": s == "<mask>", "rstrip": false, "normalized": false})
	}
	tj["added_tokens"] = added
	tj["post_processor"] = map[string]any{"type": "RobertaProcessing", "sep": []any{"</s>", 1002}, "cls": []any{"<s>", 1000}, "trim_offsets": true, "add_prefix_space": false}
	if raw, err = json.Marshal(tj); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	tc := `{"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "sep_token": "</s>", "cls_token": "<s>", "pad_token": "<pad>",
		"mask_token": "<mask>", "tokenizer_class": "RobertaTokenizer"}`
	if err := os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(tc), 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkRobertaTokens checks that m, converted with robertaTokenizer,
// tokenizes the GPT-2 reference texts as <s>, GPT-2's tokens, </s>.
func checkRobertaTokens(t *testing.T, m *engine.Model) {
	t.Helper()
	var ref struct {
		Cases []gpt2Case `json:"cases"`
	}
	raw, err := os.ReadFile(shareddata.Path(t, "testdata", "reference", "tiny-random-gpt2_reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &ref); err != nil {
		t.Fatal(err)
	}
	for _, tc := range ref.Cases {
		toks, err := m.Tokenize(tc.Text, true, false)
		if err != nil {
			t.Fatal(err)
		}
		if want := append(append([]int{1000}, tc.InputIDs...), 1002); fmt.Sprint(toks) != fmt.Sprint(want) {
			t.Errorf("%q: tokens %v, want %v", tc.Text, toks, want)
		}
	}
}

// TestRoberta converts the tiny XLM-RoBERTa's weights as a RobertaModel
// with tiny-random-gpt2's byte-level BPE tokenizer made RoBERTa's (its
// special tokens, RobertaProcessing): the pre-tokenizer is written
// roberta-bpe, a text is <s> GPT-2's tokens </s> (checked on the GPT-2
// reference texts), a pair is joined by </s> </s>, and the embedding is
// the reference's.
func TestRoberta(t *testing.T) {
	dir := xlmrFixture(t, false, nil)
	const V = robertaVocab
	robertaTokenizer(t, dir)
	editJSON(t, filepath.Join(dir, "config.json"), func(c map[string]any) {
		c["architectures"], c["model_type"], c["vocab_size"] = []string{"RobertaModel"}, "roberta", V
	})
	w := randWeights{rand.New(rand.NewPCG(9, 9))}
	var ts []stTensor
	for _, s := range f32Tensors(t, dir, nil) {
		if s.name == "embeddings.word_embeddings.weight" {
			s = w.mat(s.name, V, bertHidden)
		}
		ts = append(ts, s)
	}
	if err := writeSafetensors(filepath.Join(dir, "model.safetensors"), ts); err != nil {
		t.Fatal(err)
	}
	out, f := convertDir(t, dir, "f32")
	if pre, _ := f.String("tokenizer.ggml.pre"); pre != "roberta-bpe" {
		t.Errorf("pre-tokenizer %q, want roberta-bpe", pre)
	}
	m := loadModel(t, out, engine.ModelOptions{})
	if sp := m.SpecialTokens(); !sp.AddBOS || !sp.AddEOS || !sp.AddSEP || sp.BOS != 1000 || sp.EOS != 1002 {
		t.Errorf("special tokens %+v: want <s> and </s> added, a pair joined by </s> </s>", sp)
	}
	var ref struct {
		Cases []gpt2Case `json:"cases"`
	}
	raw, err := os.ReadFile(shareddata.Path(t, "testdata", "reference", "tiny-random-gpt2_reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &ref); err != nil {
		t.Fatal(err)
	}
	r := openST(t, dir)
	pos := r.get("embeddings.position_embeddings.weight")
	model := &ref64.BERT{Hidden: bertHidden, Heads: bertHeads, Eps: 1e-5, WordEmb: r.get("embeddings.word_embeddings.weight"), PosEmb: pos[2*bertHidden:],
		TypeEmb: r.get("embeddings.token_type_embeddings.weight"), EmbNormW: r.get("embeddings.LayerNorm.weight"), EmbNormB: r.get("embeddings.LayerNorm.bias")}
	model.Layers = loadBertRef(t, dir, "").Layers
	c, err := m.NewContext(engine.ContextOptions{ContextLength: 64, BatchSize: 64, MicroBatchSize: 64, Threads: 1, Embeddings: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, tc := range ref.Cases {
		toks, err := m.Tokenize(tc.Text, true, false)
		if err != nil {
			t.Fatal(err)
		}
		want := append(append([]int{1000}, tc.InputIDs...), 1002)
		if len(want) > 64 {
			continue
		}
		if fmt.Sprint(toks) != fmt.Sprint(want) {
			t.Errorf("%q: tokens %v, want %v", tc.Text, toks, want)
			continue
		}
		if re := relErr(pooledEmbedding(t, c, want), ref64.Pool(model.Forward(want), true)); !(re < 2e-3) {
			t.Errorf("%q: relative error %.3g", tc.Text, re)
		} else {
			t.Logf("%q: %d tokens, relative error %.3g", tc.Text, len(want), re)
		}
	}
}
