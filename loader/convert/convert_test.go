package convert_test

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/internal/shareddata"
	"github.com/llm-go/llm/loader/convert"
	"github.com/llm-go/llm/loader/gguf"
)

type refPrompt struct {
	Text       string    `json:"text"`
	PromptIDs  []int     `json:"prompt_ids"`
	GreedyIDs  []int     `json:"greedy_ids"`
	LastLogits []float64 `json:"last_logits"`
}

type reference struct {
	Prompts []refPrompt `json:"prompts"`
}

func readReference(t *testing.T, name string) reference {
	t.Helper()
	raw, err := os.ReadFile(shareddata.Path(t, "testdata", "reference", name+"_reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r reference
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Prompts) == 0 {
		t.Fatalf("%s: no prompts", name)
	}
	return r
}

// converted caches one conversion per fixture and type for the test binary.
var (
	convMu    sync.Mutex
	converted = map[string]string{}
	convDir   string
)

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "convert-test-")
	if err != nil {
		panic(err)
	}
	convDir = d
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}

func convertFixture(t *testing.T, name, typ string) string {
	t.Helper()
	dir := shareddata.Path(t, "models", "hf", name)
	convMu.Lock()
	defer convMu.Unlock()
	key := name + "-" + typ
	if p, ok := converted[key]; ok {
		return p
	}
	out := filepath.Join(convDir, key+".gguf")
	if err := convert.Convert(context.Background(), dir, out, convert.Options{Type: typ}); err != nil {
		t.Fatalf("convert %s to %s: %v", name, typ, err)
	}
	converted[key] = out
	return out
}

func loadModel(t *testing.T, path string, opts engine.ModelOptions) *engine.Model {
	t.Helper()
	m, err := engine.LoadModel(context.Background(), path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func argmax(l []float32) engine.Token {
	best := 0
	for i, v := range l {
		if v > l[best] {
			best = i
		}
	}
	return engine.Token(best)
}

// greedy decodes n tokens after prompt with a KV cache, returning them and
// the logits after the prompt.
func greedy(t *testing.T, c *engine.Context, prompt []engine.Token, n int) ([]engine.Token, []float32) {
	t.Helper()
	ctx := context.Background()
	if err := c.ClearMemory(false); err != nil {
		t.Fatal(err)
	}
	b, err := engine.NewBatch(len(prompt), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for i, tok := range prompt {
		if err := b.Add(tok, engine.Pos(i), i == len(prompt)-1); err != nil {
			t.Fatal(err)
		}
	}
	var out []engine.Token
	var first []float32
	for pos := len(prompt); len(out) < n; pos++ {
		if err := c.Decode(ctx, b); err != nil {
			t.Fatal(err)
		}
		l, err := c.Logits(b.Len() - 1)
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = slices.Clone(l)
		}
		tok := argmax(l)
		out = append(out, tok)
		b.Clear()
		if err := b.Add(tok, engine.Pos(pos), true); err != nil {
			t.Fatal(err)
		}
	}
	return out, first
}

func relErr(got []float32, want []float64) float64 {
	var maxDiff, maxRef float64
	for i, w := range want {
		maxDiff = max(maxDiff, math.Abs(float64(got[i])-w))
		maxRef = max(maxRef, math.Abs(w))
	}
	return maxDiff / maxRef
}

func toTokens(ids []int) []engine.Token {
	out := make([]engine.Token, len(ids))
	for i, id := range ids {
		out[i] = engine.Token(id)
	}
	return out
}

// TestReference converts each synthetic fixture to F32 and F16 and checks
// the logits after each reference prompt and the first 16 greedy tokens.
func TestReference(t *testing.T) {
	const nGreedy = 16
	for _, fixture := range []string{"tiny-llama-st", "tiny-llama-st-bf16", "tiny-qwen2-st"} {
		for _, tc := range []struct {
			typ string
			tol float64
		}{{"f32", 2e-3}, {"f16", 1e-2}} {
			t.Run(fixture+"/"+tc.typ, func(t *testing.T) {
				ref := readReference(t, fixture)
				path := convertFixture(t, fixture, tc.typ)
				m := loadModel(t, path, engine.ModelOptions{})
				c, err := m.NewContext(engine.ContextOptions{ContextLength: 512})
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				for _, p := range ref.Prompts {
					ids, err := m.Tokenize(p.Text, true, false)
					if err != nil {
						t.Fatal(err)
					}
					if !slices.Equal(ids, toTokens(p.PromptIDs)) {
						t.Errorf("%q tokenizes to %v, want %v", p.Text, ids, p.PromptIDs)
					}
					got, logits := greedy(t, c, toTokens(p.PromptIDs), nGreedy)
					if len(logits) != len(p.LastLogits) {
						t.Fatalf("%d logits, want %d", len(logits), len(p.LastLogits))
					}
					re := relErr(logits, p.LastLogits)
					if re > tc.tol {
						t.Errorf("%q: relative logit error %.3g > %g", p.Text, re, tc.tol)
					}
					want := toTokens(p.GreedyIDs[:nGreedy])
					matched := 0
					for matched < nGreedy && got[matched] == want[matched] {
						matched++
					}
					if matched != nGreedy {
						t.Errorf("%q: greedy %v, want %v", p.Text, got, want)
					}
					t.Logf("%q: relative logit error %.3g, greedy %d/%d", p.Text, re, matched, nGreedy)
				}
			})
		}
	}
}

// TestVocabVectors checks the converted SentencePiece-style vocabulary
// against llama.cpp's ggml-vocab-llama-spm test vectors.
func TestVocabVectors(t *testing.T) {
	base := shareddata.Path(t, "testdata", "tokenizer_vocab", "ggml-vocab-llama-spm.gguf")
	inp, err := os.ReadFile(base + ".inp")
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.ReadFile(base + ".out")
	if err != nil {
		t.Fatal(err)
	}
	inputs := strings.Split(string(inp), "\n__ggml_vocab_test__\n")
	expected := strings.Split(string(out), "\n")
	if len(inputs) != len(expected) {
		t.Fatalf("%d inputs but %d expected lines", len(inputs), len(expected))
	}
	m := loadModel(t, convertFixture(t, "tiny-llama-st", "f32"), engine.ModelOptions{VocabOnly: true})
	pass := 0
	for i, text := range inputs {
		got, err := m.Tokenize(text, false, false)
		if err != nil {
			t.Fatal(err)
		}
		gs := make([]string, len(got))
		for j, id := range got {
			gs[j] = strconv.Itoa(int(id))
		}
		if strings.Join(gs, " ") == strings.TrimSpace(expected[i]) {
			pass++
		} else {
			t.Errorf("case %d %q: got %v, want %s", i, text, got, expected[i])
		}
	}
	t.Logf("ggml-vocab-llama-spm: %d/%d", pass, len(inputs))
}

// TestMetadata checks the tokenizer and hyperparameter keys and the tensor
// set of the converted files.
func TestMetadata(t *testing.T) {
	for _, tc := range []struct {
		fixture, arch string
		tensors       int
		output        bool
		freqBase      float64
		eps           float64
	}{
		{"tiny-llama-st", "llama", 21, true, 10000, 1e-5},
		{"tiny-qwen2-st", "qwen2", 26, false, 1e6, 1e-6},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			f, err := gguf.Open(convertFixture(t, tc.fixture, "f16"))
			if err != nil {
				t.Fatal(err)
			}
			if f.Architecture() != tc.arch {
				t.Errorf("architecture %q, want %q", f.Architecture(), tc.arch)
			}
			if len(f.Tensors) != tc.tensors {
				t.Errorf("%d tensors, want %d", len(f.Tensors), tc.tensors)
			}
			if _, ok := f.Tensor("output.weight"); ok != tc.output {
				t.Errorf("output.weight present %v, want %v", ok, tc.output)
			}
			for _, ti := range f.Tensors {
				want := gguf.TypeF16
				if len(ti.Shape) == 1 {
					want = gguf.TypeF32
				}
				if ti.Type != want {
					t.Errorf("%s: type %v, want %v", ti.Name, ti.Type, want)
				}
			}
			emb, _ := f.Tensor("token_embd.weight")
			if !slices.Equal(emb.Shape, []uint64{64, 32000}) {
				t.Errorf("token_embd shape %v", emb.Shape)
			}
			if v, _ := f.Float(tc.arch + ".rope.freq_base"); v != tc.freqBase {
				t.Errorf("freq_base %v, want %v", v, tc.freqBase)
			}
			if v, _ := f.Float(tc.arch + ".attention.layer_norm_rms_epsilon"); math.Abs(v-tc.eps) > tc.eps*1e-6 {
				t.Errorf("rms eps %v, want %v", v, tc.eps)
			}
			for key, want := range map[string]uint64{
				tc.arch + ".attention.head_count":    4,
				tc.arch + ".attention.head_count_kv": 2,
				tc.arch + ".rope.dimension_count":    16,
				tc.arch + ".block_count":             2,
				"tokenizer.ggml.bos_token_id":        1,
				"tokenizer.ggml.eos_token_id":        2,
				"tokenizer.ggml.unknown_token_id":    0,
				"general.file_type":                  1,
			} {
				if v, ok := f.Uint(key); !ok || v != want {
					t.Errorf("%s = %v (%v), want %v", key, v, ok, want)
				}
			}
			if s, _ := f.String("tokenizer.ggml.model"); s != "llama" {
				t.Errorf("tokenizer model %q", s)
			}
			if b, ok := f.Bool("tokenizer.ggml.add_bos_token"); !ok || !b {
				t.Errorf("add_bos_token %v %v", b, ok)
			}
			if b, ok := f.Bool("tokenizer.ggml.add_eos_token"); !ok || b {
				t.Errorf("add_eos_token %v %v", b, ok)
			}
			if s, _ := f.String("tokenizer.chat_template"); !strings.Contains(s, "[INST]") {
				t.Errorf("chat template %.60q", s)
			}
			toks, _ := f.Strings("tokenizer.ggml.tokens")
			if len(toks) != 32000 || toks[1] != "<s>" || toks[3] != "<0x00>" {
				t.Errorf("tokens: %d, %q", len(toks), toks[:4])
			}
		})
	}
}

// copyFixture makes a writable copy of a fixture directory with the
// config edited by edit.
func copyFixture(t *testing.T, name string, edit func(map[string]any)) string {
	t.Helper()
	src := shareddata.Path(t, "models", "hf", name)
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := os.Symlink(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(filepath.Join(src, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	edit(cfg)
	raw, err = json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dst, "config.json"))
	if err := os.WriteFile(filepath.Join(dst, "config.json"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestUnsupportedArchitecture(t *testing.T) {
	dir := copyFixture(t, "tiny-llama-st", func(c map[string]any) {
		c["architectures"] = []string{"XLNetLMHeadModel"}
	})
	out := filepath.Join(t.TempDir(), "x.gguf")
	err := convert.Convert(context.Background(), dir, out, convert.Options{})
	if !errors.Is(err, convert.ErrUnsupported) {
		t.Fatalf("got %v, want ErrUnsupported", err)
	}
	for _, s := range append(convert.Supported(), "XLNetLMHeadModel") {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not name %s", err, s)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("an output file was written")
	}
}

func TestShapeMismatch(t *testing.T) {
	dir := copyFixture(t, "tiny-llama-st", func(c map[string]any) {
		c["intermediate_size"] = 256
	})
	err := convert.Convert(context.Background(), dir, filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
	if !errors.Is(err, convert.ErrMismatch) {
		t.Fatalf("got %v, want ErrMismatch", err)
	}
	if !strings.Contains(err.Error(), "model.layers.0.mlp.down_proj.weight") {
		t.Errorf("error %q does not name the tensor", err)
	}
	t.Log(err)
}

func TestBadType(t *testing.T) {
	dir := shareddata.Path(t, "models", "hf", "tiny-llama-st")
	err := convert.Convert(context.Background(), dir, filepath.Join(t.TempDir(), "x.gguf"), convert.Options{Type: "q4_0"})
	if !errors.Is(err, convert.ErrUnsupported) {
		t.Fatalf("got %v, want ErrUnsupported", err)
	}
}

func TestCanceled(t *testing.T) {
	dir := shareddata.Path(t, "models", "hf", "tiny-llama-st")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	out := filepath.Join(t.TempDir(), "x.gguf")
	if err := convert.Convert(ctx, dir, out, convert.Options{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("an output file was written")
	}
}

type gpt2Case struct {
	Text        string    `json:"text"`
	InputIDs    []int     `json:"input_ids"`
	Logits      []float64 `json:"last_position_logits"`
	GreedyIDs   []int     `json:"greedy_generated_ids"`
	GreedySteps []struct {
		Margin float64 `json:"margin_to_second"`
	} `json:"greedy_steps"`
}

// TestGPT2Tensors compares the converted tiny-random-gpt2 with the GGUF
// llama.cpp's gguf-py writer made from it: the same tensor names, types,
// shapes and bytes.
func TestGPT2Tensors(t *testing.T) {
	refPath := shareddata.Path(t, "testdata", "reference", "tiny-random-gpt2-f32.gguf")
	got := convertFixture(t, "tiny-random-gpt2", "f32")
	ref, err := gguf.Open(refPath)
	if err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(got)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Tensors) != len(ref.Tensors) {
		t.Errorf("%d tensors, want %d", len(f.Tensors), len(ref.Tensors))
	}
	refData, err := os.ReadFile(refPath)
	if err != nil {
		t.Fatal(err)
	}
	gotData, err := os.ReadFile(got)
	if err != nil {
		t.Fatal(err)
	}
	for _, rt := range ref.Tensors {
		gt, ok := f.Tensor(rt.Name)
		if !ok {
			t.Errorf("missing tensor %s", rt.Name)
			continue
		}
		if gt.Type != rt.Type || !slices.Equal(gt.Shape, rt.Shape) {
			t.Errorf("%s: %v %v, want %v %v", rt.Name, gt.Type, gt.Shape, rt.Type, rt.Shape)
			continue
		}
		a := gotData[f.DataOffset+int64(gt.Offset):][:gt.Size]
		b := refData[ref.DataOffset+int64(rt.Offset):][:rt.Size]
		if !slices.Equal(a, b) {
			t.Errorf("%s: data differs", rt.Name)
		}
	}
	for _, key := range []string{"general.architecture", "tokenizer.ggml.model", "tokenizer.ggml.pre"} {
		a, _ := f.String(key)
		b, _ := ref.String(key)
		if a != b {
			t.Errorf("%s = %q, want %q", key, a, b)
		}
	}
	for _, key := range []string{"tokenizer.ggml.tokens", "tokenizer.ggml.merges"} {
		a, _ := f.Strings(key)
		b, _ := ref.Strings(key)
		if !slices.Equal(a, b) {
			t.Errorf("%s differs (%d vs %d entries)", key, len(a), len(b))
		}
	}
	for _, key := range []string{"gpt2.context_length", "gpt2.embedding_length", "gpt2.feed_forward_length",
		"gpt2.block_count", "gpt2.attention.head_count", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"} {
		a, ok1 := f.Uint(key)
		b, ok2 := ref.Uint(key)
		if a != b || ok1 != ok2 {
			t.Errorf("%s = %d (%v), want %d (%v)", key, a, ok1, b, ok2)
		}
	}
	ta, _ := f.Lookup("tokenizer.ggml.token_type")
	tb, _ := ref.Lookup("tokenizer.ggml.token_type")
	if ta.Len() != tb.Len() {
		t.Fatalf("token types: %d, want %d", ta.Len(), tb.Len())
	}
	for i := range ta.Len() {
		x, _ := ta.Index(i).AsInt()
		y, _ := tb.Index(i).AsInt()
		if x != y {
			t.Errorf("token %d: type %d, want %d", i, x, y)
			break
		}
	}
}

// TestGPT2Reference runs the converted tiny-random-gpt2 (F32 and F16)
// against the float64 reference: tokenization, logits after the prompt and
// 8 greedy tokens.
func TestGPT2Reference(t *testing.T) {
	raw, err := os.ReadFile(shareddata.Path(t, "testdata", "reference", "tiny-random-gpt2_reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Cases []gpt2Case `json:"cases"`
	}
	if err := json.Unmarshal(raw, &ref); err != nil {
		t.Fatal(err)
	}
	if len(ref.Cases) == 0 {
		t.Fatal("no cases")
	}
	for _, typ := range []struct {
		name string
		tol  float64
		// Steps whose reference margin is below floor may flip on rounding.
		floor float64
	}{{"f32", 2e-3, 1e-3}, {"f16", 1e-2, 1e-2}} {
		t.Run(typ.name, func(t *testing.T) {
			m := loadModel(t, convertFixture(t, "tiny-random-gpt2", typ.name), engine.ModelOptions{})
			c, err := m.NewContext(engine.ContextOptions{ContextLength: 256})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for _, tc := range ref.Cases {
				ids, err := m.Tokenize(tc.Text, true, false)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(ids, toTokens(tc.InputIDs)) {
					t.Errorf("%q tokenizes to %v, want %v", tc.Text, ids, tc.InputIDs)
				}
				got, logits := greedy(t, c, toTokens(tc.InputIDs), len(tc.GreedyIDs))
				re := relErr(logits, tc.Logits)
				if re > typ.tol {
					t.Errorf("%q: relative logit error %.3g > %g", tc.Text, re, typ.tol)
				}
				matched := 0
				for matched < len(got) && got[matched] == engine.Token(tc.GreedyIDs[matched]) {
					matched++
				}
				must := len(tc.GreedyIDs)
				for i, s := range tc.GreedySteps {
					if s.Margin < typ.floor {
						must = i
						break
					}
				}
				if matched < must {
					t.Errorf("%q: greedy %v, want %v (%d must match)", tc.Text, got, tc.GreedyIDs, must)
				}
				t.Logf("%q: relative logit error %.3g, greedy %d/%d (%d must match)", tc.Text, re, matched, len(tc.GreedyIDs), must)
			}
		})
	}
}

// replaceFile swaps a (symlinked) file of a fixture copy for new content.
func replaceFile(t *testing.T, dir, name string, data []byte) {
	t.Helper()
	os.Remove(filepath.Join(dir, name))
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestTransformers5Config checks rope_parameters (transformers 5) in place
// of rope_theta, the rejection of an unsupported rope_scaling type, and
// chat_template.jinja.
func TestTransformers5Config(t *testing.T) {
	dir := copyFixture(t, "tiny-qwen2-st", func(c map[string]any) {
		delete(c, "rope_theta")
		delete(c, "torch_dtype")
		c["dtype"] = "float16"
		c["rope_parameters"] = map[string]any{"rope_theta": 123456.0, "rope_type": "default"}
	})
	raw, err := os.ReadFile(filepath.Join(dir, "tokenizer_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var tc map[string]any
	if err := json.Unmarshal(raw, &tc); err != nil {
		t.Fatal(err)
	}
	delete(tc, "chat_template")
	raw, _ = json.Marshal(tc)
	replaceFile(t, dir, "tokenizer_config.json", raw)
	replaceFile(t, dir, "chat_template.jinja", []byte("{{ messages }}"))

	out := filepath.Join(t.TempDir(), "x.gguf")
	if err := convert.Convert(context.Background(), dir, out, convert.Options{}); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := f.Float("qwen2.rope.freq_base"); v != 123456 {
		t.Errorf("freq_base %v, want 123456", v)
	}
	if s, _ := f.String("tokenizer.chat_template"); s != "{{ messages }}" {
		t.Errorf("chat template %q", s)
	}

	dir = copyFixture(t, "tiny-llama-st", func(c map[string]any) {
		c["rope_scaling"] = map[string]any{"rope_type": "dynamic", "factor": 8.0}
	})
	err = convert.Convert(context.Background(), dir, filepath.Join(t.TempDir(), "y.gguf"), convert.Options{})
	if !errors.Is(err, convert.ErrUnsupported) || !strings.Contains(err.Error(), "rope_scaling") || !strings.Contains(err.Error(), "dynamic") {
		t.Errorf("rope_scaling: got %v, want ErrUnsupported naming rope_scaling and dynamic", err)
	}
}

// TestUnsupportedTokenizer gives a Llama checkpoint GPT-2's byte-level
// tokenizer with its ByteLevel pre-tokenizer set to add a prefix space,
// which matches none of the llama.cpp pre-tokenizers: the conversion is
// refused, naming the step found, rather than done with a guessed one.
func TestUnsupportedTokenizer(t *testing.T) {
	dir := copyFixture(t, "tiny-llama-st", func(map[string]any) {})
	raw, err := os.ReadFile(shareddata.Path(t, "models", "hf", "tiny-random-gpt2", "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	var tj map[string]any
	if err := json.Unmarshal(raw, &tj); err != nil {
		t.Fatal(err)
	}
	tj["pre_tokenizer"].(map[string]any)["add_prefix_space"] = true
	if raw, err = json.Marshal(tj); err != nil {
		t.Fatal(err)
	}
	replaceFile(t, dir, "tokenizer.json", raw)
	err = convert.Convert(context.Background(), dir, filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
	if !errors.Is(err, convert.ErrUnsupported) || !strings.Contains(err.Error(), "byte-level") ||
		!strings.Contains(err.Error(), "ByteLevel(add_prefix_space=true, use_regex=true)") {
		t.Errorf("got %v, want ErrUnsupported about the byte-level pre-tokenizer, naming its ByteLevel step", err)
	}
}

// convertDir converts the checkpoint in dir to a GGUF of type typ in a
// temporary directory and opens it.
func convertDir(t *testing.T, dir, typ string) (string, *gguf.File) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "m.gguf")
	if err := convert.Convert(context.Background(), dir, out, convert.Options{Type: typ, Name: "x"}); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	return out, f
}

// TestChatTemplateFiles: chat_template.jinja wins over tokenizer_config.json's
// template, as in transformers; without either, a processor's
// chat_template.json (vision-language repositories) gives it.
func TestChatTemplateFiles(t *testing.T) {
	withTemplate := func(t *testing.T, inConfig bool, files map[string]string) string {
		t.Helper()
		dir := copyFixture(t, "tiny-llama-st", func(map[string]any) {})
		raw, err := os.ReadFile(filepath.Join(dir, "tokenizer_config.json"))
		if err != nil {
			t.Fatal(err)
		}
		var tc map[string]any
		if err := json.Unmarshal(raw, &tc); err != nil {
			t.Fatal(err)
		}
		delete(tc, "chat_template")
		if inConfig {
			tc["chat_template"] = "from tokenizer_config"
		}
		raw, _ = json.Marshal(tc)
		replaceFile(t, dir, "tokenizer_config.json", raw)
		for name, body := range files {
			replaceFile(t, dir, name, []byte(body))
		}
		_, f := convertDir(t, dir, "f16")
		s, _ := f.String("tokenizer.chat_template")
		return s
	}
	if s := withTemplate(t, true, map[string]string{"chat_template.jinja": "from jinja"}); s != "from jinja" {
		t.Errorf("chat_template.jinja beside tokenizer_config.json's: %q", s)
	}
	if s := withTemplate(t, false, map[string]string{"chat_template.json": `{"chat_template": "from processor"}`}); s != "from processor" {
		t.Errorf("chat_template.json alone: %q", s)
	}
	if s := withTemplate(t, true, map[string]string{"chat_template.json": `{"chat_template": "from processor"}`}); s != "from tokenizer_config" {
		t.Errorf("tokenizer_config.json's beside chat_template.json: %q", s)
	}
}
