package convert_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/internal/shareddata"
	"github.com/llm-go/llm/loader/convert"
	"github.com/llm-go/llm/loader/gguf"
)

// The pre_tokenizer and normalizer JSON of the released tokenizer.json
// files, as data: openai-community/gpt2, deepseek-ai/deepseek-coder-6.7b,
// deepseek-ai/deepseek-llm-7b-base, tiiuae/falcon-7b, bigcode/starcoder,
// meta-llama/Meta-Llama-3-8B and Qwen/Qwen2-7B.
const (
	preGPT2          = `{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true}`
	preDeepseekCoder = `{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"[\r\n]"},"behavior":"Isolated","invert":false},{"type":"Split","pattern":{"Regex":"\\s?\\p{L}+"},"behavior":"Isolated","invert":false},{"type":"Split","pattern":{"Regex":"\\s?\\p{P}+"},"behavior":"Isolated","invert":false},{"type":"Split","pattern":{"Regex":"[一-龥ࠀ-一가-퟿]+"},"behavior":"Isolated","invert":false},{"type":"Digits","individual_digits":true},{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":false}]}`
	preDeepseekLLM   = `{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"[\r\n]"},"behavior":"Isolated","invert":false},{"type":"Split","pattern":{"Regex":"\\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-ώᾀ-ᾴᾶ-ᾼιῂ-ῄῆ-ῌῐ-ΐῖ-Ίῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤΩℨK-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+"},"behavior":"Isolated","invert":false},{"type":"Split","pattern":{"Regex":"\\s?[!-/:-~！-／：-～‘-‟　-。]+"},"behavior":"Isolated","invert":false},{"type":"Split","pattern":{"Regex":"\\s+$"},"behavior":"Isolated","invert":false},{"type":"Split","pattern":{"Regex":"[一-龥ࠀ-一가-퟿]+"},"behavior":"Isolated","invert":false},{"type":"Digits","individual_digits":true},{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":false}]}`
	preFalcon        = `{"type":"Sequence","pretokenizers":[{"type":"Punctuation","behavior":"Contiguous"},{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true},{"type":"Digits","individual_digits":false},{"type":"Split","pattern":{"Regex":"[0-9][0-9][0-9]"},"behavior":"Isolated","invert":false}]}`
	preStarcoder     = `{"type":"Sequence","pretokenizers":[{"type":"Digits","individual_digits":true},{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true}]}`
	preLlama3        = `{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},"behavior":"Isolated","invert":false},{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":false}]}`
	preQwen2         = `{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},"behavior":"Isolated","invert":false},{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":false,"use_regex":false}]}`

	// preGPT4o is o200k's pre-tokenizer (GPT-4o, Phi-4-mini) as the
	// tiktoken conversions of Xenova/gpt-4o and, we take it,
	// microsoft/Phi-4-mini-instruct write it: the regex keeping its
	// matches (Removed, invert true). preGPT4oIsolated is the spelling of
	// transformers' own tiktoken conversion (Isolated, invert false); for
	// this regex, which matches every character, the two split alike.
	preGPT4o         = `{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},"behavior":"Removed","invert":true},{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":false}]}`
	preGPT4oIsolated = `{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},"behavior":"Isolated","invert":false},{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":false}]}`

	// preTekken is Mistral's Tekken pre-tokenizer (Mistral-Nemo, Mistral
	// Small 3) with the regex llama.cpp quotes from its tokenizer.json.
	preTekken = `{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},"behavior":"Isolated","invert":false},{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":false}]}`

	// preBloom is BLOOM's: words with one space before them, up to
	// whitespace or punctuation.
	preBloom = `{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":" ?[^(\\s|[.,!?…。，、।۔،])]+"},"behavior":"Isolated","invert":false},{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":false}]}`
	// preBailing is Ling's (Ling 1.0 and 2.0), with possessive
	// quantifiers.
	preBailing = `{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"'(?i:[sdmt]|ll|ve|re)|[^\\r\\n\\p{L}\\p{N}]?+\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]++[\\r\\n]*|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+"},"behavior":"Isolated","invert":false},{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":false,"use_regex":false}]}`
	// preSeedCoder is Seed-Coder's and Seed-OSS's: one digit at a time,
	// punctuation without the line breaks after it.
	preSeedCoder = `{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1}| ?[^\\s\\p{L}\\p{N}\\r\\n]+|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},"behavior":"Isolated","invert":false},{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":false,"use_regex":false}]}`

	// preDeepSeekV3 is DeepSeek-V3's: digits by three, CJK and kana runs,
	// then its word regex, whose CR and LF the file holds as characters.
	preDeepSeekV3 = `{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"\\p{N}{1,3}"},"behavior":"Isolated","invert":false},{"type":"Split","pattern":{"Regex":"[一-龥぀-ゟ゠-ヿ]+"},"behavior":"Isolated","invert":false},{"type":"Split","pattern":{"Regex":"[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_` + "`" + `{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"},"behavior":"Isolated","invert":false},{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":false}]}`

	normEmptySeq = `{"type":"Sequence","normalizers":[]}`
	normNFC      = `{"type":"NFC"}`
	// postLlama3 is Llama 3's post-processor: <|begin_of_text|> first.
	postLlama3 = `{"type":"Sequence","processors":[{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":false,"use_regex":true},{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<|begin_of_text|>","type_id":0}},{"Sequence":{"id":"A","type_id":0}}],"pair":[{"SpecialToken":{"id":"<|begin_of_text|>","type_id":0}},{"Sequence":{"id":"A","type_id":0}},{"SpecialToken":{"id":"<|begin_of_text|>","type_id":1}},{"Sequence":{"id":"B","type_id":1}}],"special_tokens":{"<|begin_of_text|>":{"id":"<|begin_of_text|>","ids":[128000],"tokens":["<|begin_of_text|>"]}}}]}`
)

// vocabVectors reads llama.cpp's tokenizer test vectors for a vocab file:
// the input texts and the expected ids of each.
func vocabVectors(t *testing.T, name string) (inputs []string, want [][]engine.Token) {
	t.Helper()
	base := shareddata.Path(t, "testdata", "tokenizer_vocab", "ggml-vocab-"+name+".gguf")
	inp, err := os.ReadFile(base + ".inp")
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.ReadFile(base + ".out")
	if err != nil {
		t.Fatal(err)
	}
	inputs = strings.Split(string(inp), "\n__ggml_vocab_test__\n")
	lines := strings.Split(string(out), "\n")
	if len(lines) < len(inputs) {
		t.Fatalf("%s: %d inputs but %d expected lines", name, len(inputs), len(lines))
	}
	for _, l := range lines[:len(inputs)] {
		var ids []engine.Token
		for _, f := range strings.Fields(l) {
			n, err := strconv.Atoi(f)
			if err != nil {
				t.Fatalf("%s: bad id %q", name, f)
			}
			ids = append(ids, engine.Token(n))
		}
		want = append(want, ids)
	}
	return inputs, want
}

// checkVectors tokenizes every input (no BOS/EOS, no special-token
// parsing, as llama.cpp's test-tokenizer-0) and reports the cases that
// differ; it returns how many match.
func checkVectors(t *testing.T, m *engine.Model, inputs []string, want [][]engine.Token) int {
	t.Helper()
	pass := 0
	for i, text := range inputs {
		got, err := m.Tokenize(text, false, false)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Equal(got, want[i]) {
			pass++
		} else {
			t.Errorf("case %d %q: got %v, want %v", i, text, got, want[i])
		}
	}
	return pass
}

// llamaShape is the shape of a synthetic Llama checkpoint with one layer,
// heads attention heads (as many KV heads) and tied embeddings.
type llamaShape struct{ vocab, hidden, ffn, heads int }

// writeLlama writes config.json and an F32 model.safetensors of a
// synthetic Llama checkpoint whose tensors hold gen(name, n), n values.
func writeLlama(t *testing.T, dir string, s llamaShape, bos, eos int, gen func(name string, n int) []float32) {
	t.Helper()
	cfg := map[string]any{
		"architectures": []string{"LlamaForCausalLM"}, "model_type": "llama",
		"hidden_size": s.hidden, "intermediate_size": s.ffn, "num_hidden_layers": 1,
		"num_attention_heads": s.heads, "num_key_value_heads": s.heads, "vocab_size": s.vocab,
		"max_position_embeddings": 256, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
		"tie_word_embeddings": true, "torch_dtype": "float32",
	}
	if bos >= 0 {
		cfg["bos_token_id"] = bos
	}
	if eos >= 0 {
		cfg["eos_token_id"] = eos
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	var ts []stTensor
	add := func(name string, shape ...int64) {
		st := stTensor{name: name, dtype: "F32", shape: shape}
		st.data = func(w io.Writer) error {
			vals := gen(name, int(st.size()/4))
			buf := make([]byte, 4*len(vals))
			for i, v := range vals {
				binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
			}
			_, err := w.Write(buf)
			return err
		}
		ts = append(ts, st)
	}
	V, H, I := int64(s.vocab), int64(s.hidden), int64(s.ffn)
	add("model.embed_tokens.weight", V, H)
	add("model.layers.0.input_layernorm.weight", H)
	add("model.layers.0.mlp.down_proj.weight", H, I)
	add("model.layers.0.mlp.gate_proj.weight", I, H)
	add("model.layers.0.mlp.up_proj.weight", I, H)
	add("model.layers.0.post_attention_layernorm.weight", H)
	add("model.layers.0.self_attn.k_proj.weight", H, H)
	add("model.layers.0.self_attn.o_proj.weight", H, H)
	add("model.layers.0.self_attn.q_proj.weight", H, H)
	add("model.layers.0.self_attn.v_proj.weight", H, H)
	add("model.norm.weight", H)
	if err := writeSafetensors(filepath.Join(dir, "model.safetensors"), ts); err != nil {
		t.Fatal(err)
	}
}

// writeTinyLlama writes config.json and model.safetensors of a tiny
// Llama-shaped checkpoint (hidden 16, 2 heads, 1 layer, FFN 32, tied
// embeddings) with vocab tokens and small deterministic weights.
func writeTinyLlama(t *testing.T, dir string, vocab int, bos, eos int) {
	t.Helper()
	writeLlama(t, dir, llamaShape{vocab: vocab, hidden: 16, ffn: 32, heads: 2}, bos, eos, func(name string, n int) []float32 {
		out := make([]float32, n)
		x := uint32(len(name)) * 2654435761
		for i := range out {
			x = x*1664525 + 1013904223
			out[i] = (float32(x>>8)/float32(1<<24) - 0.5) * 0.2
			if strings.HasSuffix(name, "norm.weight") {
				out[i]++
			}
		}
		return out
	})
}

var padTokenRE = regexp.MustCompile(`^\[PAD\d+\]$`)

// ggufVocab is the tokenizer of one of llama.cpp's vocab files.
type ggufVocab struct {
	tokens, merges []string
	types          []int64
	ids            map[string]uint64 // tokenizer.ggml.*_token_id by name
	addBOS         *bool
}

func readGGUFVocab(t *testing.T, path string) ggufVocab {
	t.Helper()
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var v ggufVocab
	v.tokens, _ = f.Strings("tokenizer.ggml.tokens")
	v.merges, _ = f.Strings("tokenizer.ggml.merges")
	tt, _ := f.Lookup("tokenizer.ggml.token_type")
	for i := range tt.Len() {
		x, _ := tt.Index(i).AsInt()
		v.types = append(v.types, x)
	}
	v.ids = map[string]uint64{}
	for _, k := range []string{"bos", "eos", "unknown", "padding"} {
		if id, ok := f.Uint("tokenizer.ggml." + k + "_token_id"); ok {
			v.ids[k] = id
		}
	}
	if b, ok := f.Bool("tokenizer.ggml.add_bos_token"); ok {
		v.addBOS = &b
	}
	return v
}

// writeTokenizerFromGGUF writes tokenizer.json and tokenizer_config.json
// made of a vocab file's tokens and merges and the given pre-tokenizer,
// normalizer and post-processor JSON: the normal tokens form the BPE
// vocabulary, the control and user-defined ones the added tokens (special
// for control), the "[PADn]" fillers of llama.cpp's old converter are
// left out (config.json's vocab_size pads them back). pairs writes the
// merges as pairs (tokenizers 0.20 and later) instead of strings.
func writeTokenizerFromGGUF(t *testing.T, dir string, v ggufVocab, pre, norm, post string, pairs bool) {
	t.Helper()
	type added struct {
		ID         int    `json:"id"`
		Content    string `json:"content"`
		SingleWord bool   `json:"single_word"`
		Lstrip     bool   `json:"lstrip"`
		Rstrip     bool   `json:"rstrip"`
		Normalized bool   `json:"normalized"`
		Special    bool   `json:"special"`
	}
	vocab := map[string]int{}
	var addedTokens []added
	for id, tok := range v.tokens {
		switch v.types[id] {
		case 1:
			vocab[tok] = id
		case 3, 4:
			if padTokenRE.MatchString(tok) {
				continue
			}
			addedTokens = append(addedTokens, added{ID: id, Content: tok, Normalized: v.types[id] == 4, Special: v.types[id] == 3})
		default:
			t.Fatalf("token %d %q: type %d", id, tok, v.types[id])
		}
	}
	var merges []any
	for _, m := range v.merges {
		if pairs {
			a, b, _ := strings.Cut(m, " ")
			merges = append(merges, []string{a, b})
		} else {
			merges = append(merges, m)
		}
	}
	orNull := func(s string) json.RawMessage {
		if s == "" {
			return json.RawMessage("null")
		}
		return json.RawMessage(s)
	}
	tj := map[string]any{
		"version": "1.0", "truncation": nil, "padding": nil,
		"added_tokens":   addedTokens,
		"normalizer":     orNull(norm),
		"pre_tokenizer":  orNull(pre),
		"post_processor": orNull(post),
		"decoder":        json.RawMessage(`{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":true,"use_regex":true}`),
		"model": map[string]any{
			"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": nil,
			"end_of_word_suffix": nil, "fuse_unk": false, "byte_fallback": false,
			"vocab": vocab, "merges": merges,
		},
	}
	raw, err := json.Marshal(tj)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	tc := map[string]any{}
	for key, name := range map[string]string{"bos": "bos_token", "eos": "eos_token", "unknown": "unk_token", "padding": "pad_token"} {
		if id, ok := v.ids[key]; ok {
			tc[name] = v.tokens[id]
		}
	}
	if v.addBOS != nil {
		tc["add_bos_token"] = *v.addBOS
	}
	if raw, err = json.Marshal(tc); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestByteLevelVocabVectors rebuilds a tokenizer.json from each of
// llama.cpp's byte-level BPE vocab files (its tokens and merges) with the
// pre-tokenizer of that family's released tokenizer.json, converts a tiny
// Llama-shaped checkpoint with it, and checks the detected
// tokenizer.ggml.pre, the vocabulary written, and that llama.cpp
// tokenizes every test input of that vocab file as expected.
func TestByteLevelVocabVectors(t *testing.T) {
	for _, tc := range []struct {
		vocab, pre, preJSON, norm string
		pairs                     bool
	}{
		{"gpt-2", "gpt-2", preGPT2, "", false},
		{"deepseek-coder", "deepseek-coder", preDeepseekCoder, normEmptySeq, false},
		{"deepseek-llm", "deepseek-llm", preDeepseekLLM, normEmptySeq, true},
		{"falcon", "falcon", preFalcon, "", true},
		{"starcoder", "starcoder", preStarcoder, "", false},
	} {
		t.Run(tc.vocab, func(t *testing.T) {
			ref := readGGUFVocab(t, shareddata.Path(t, "testdata", "tokenizer_vocab", "ggml-vocab-"+tc.vocab+".gguf"))
			dir := t.TempDir()
			bos, eos := -1, -1
			if id, ok := ref.ids["bos"]; ok {
				bos = int(id)
			}
			if id, ok := ref.ids["eos"]; ok {
				eos = int(id)
			}
			writeTinyLlama(t, dir, len(ref.tokens), bos, eos)
			writeTokenizerFromGGUF(t, dir, ref, tc.preJSON, tc.norm, "", tc.pairs)
			out := filepath.Join(t.TempDir(), "m.gguf")
			if err := convert.Convert(context.Background(), dir, out, convert.Options{}); err != nil {
				t.Fatal(err)
			}
			f, err := gguf.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			if s, _ := f.String("tokenizer.ggml.pre"); s != tc.pre {
				t.Errorf("tokenizer.ggml.pre %q, want %q", s, tc.pre)
			}
			if s, _ := f.String("tokenizer.ggml.model"); s != "gpt2" {
				t.Errorf("tokenizer.ggml.model %q, want gpt2", s)
			}
			got := readGGUFVocab(t, out)
			if !slices.Equal(got.tokens, ref.tokens) {
				t.Errorf("tokens differ from the vocab file's (%d vs %d)", len(got.tokens), len(ref.tokens))
			}
			if !slices.Equal(got.merges, ref.merges) {
				t.Errorf("merges differ from the vocab file's (%d vs %d)", len(got.merges), len(ref.merges))
			}
			for k, id := range ref.ids {
				if got.ids[k] != id {
					t.Errorf("%s_token_id %d, want %d", k, got.ids[k], id)
				}
			}
			// Token types: the same, except added tokens that
			// convert_hf_to_gguf.py's does_token_look_special now makes
			// control (the vocab files predate it) and the fillers.
			for id := range ref.types {
				if got.types[id] != ref.types[id] && !(ref.types[id] == 4 && got.types[id] == 3) && !(ref.types[id] == 4 && got.types[id] == 5) {
					t.Errorf("token %d %q: type %d, want %d", id, ref.tokens[id], got.types[id], ref.types[id])
				}
			}
			m := loadModel(t, out, engine.ModelOptions{VocabOnly: true})
			inputs, want := vocabVectors(t, tc.vocab)
			pass := checkVectors(t, m, inputs, want)
			t.Logf("ggml-vocab-%s: pre %q, %d/%d cases", tc.vocab, tc.pre, pass, len(inputs))
		})
	}
}

// bpeFixture writes a tiny Llama checkpoint with tiny-random-gpt2's
// byte-level vocabulary (1000 tokens, 806 merges) plus the added special
// token <|begin_of_text|> (id 1000, BOS), and the given pre-tokenizer,
// normalizer and post-processor.
func bpeFixture(t *testing.T, pre, norm, post string) string {
	t.Helper()
	raw, err := os.ReadFile(shareddata.Path(t, "models", "hf", "tiny-random-gpt2", "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	var tj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &tj); err != nil {
		t.Fatal(err)
	}
	orNull := func(s string) json.RawMessage {
		if s == "" {
			return json.RawMessage("null")
		}
		return json.RawMessage(s)
	}
	tj["pre_tokenizer"], tj["normalizer"], tj["post_processor"] = orNull(pre), orNull(norm), orNull(post)
	tj["added_tokens"] = json.RawMessage(`[{"id":0,"content":"<|endoftext|>","single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true},{"id":1000,"content":"<|begin_of_text|>","single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true}]`)
	dir := t.TempDir()
	if raw, err = json.Marshal(tj); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	tc := `{"bos_token":"<|begin_of_text|>","eos_token":"<|endoftext|>"}`
	if err := os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(tc), 0o644); err != nil {
		t.Fatal(err)
	}
	writeTinyLlama(t, dir, 1001, -1, -1)
	return dir
}

// TestPreTokenizerDetection checks the detection of Llama 3's and Qwen2's
// pre-tokenizers (whose vocab files are not available, so the detection
// only), Llama 3's add_bos from its post-processor, and that llama.cpp
// loads and runs the tokenizer; then the refusals of pre-tokenizers that
// match no family, each naming what it found.
func TestPreTokenizerDetection(t *testing.T) {
	for _, tc := range []struct {
		name, pre, norm, post, want string
		addBOS                      bool
	}{
		{"llama-bpe", preLlama3, "", postLlama3, "llama-bpe", true},
		{"qwen2", preQwen2, normNFC, "", "qwen2", false},
		{"gpt-4o", preGPT4o, "", "", "gpt-4o", false},
		{"gpt-4o isolated", preGPT4oIsolated, "", "", "gpt-4o", false},
		{"tekken", preTekken, "", "", "tekken", false},
		{"seed-coder", preSeedCoder, "", "", "seed-coder", false},
		{"bailingmoe", preBailing, "", "", "bailingmoe", false},
		{"bloom", preBloom, "", "", "bloom", false},
		{"deepseek-v3", preDeepSeekV3, normEmptySeq, "", "deepseek-v3", false},
		{"command-r", preStarcoder, normNFC, "", "command-r", false},
		{"olmo", preGPT2, normNFC, "", "olmo", false},
		{"gpt-2 on a Llama", preGPT2, "", "", "gpt-2", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := bpeFixture(t, tc.pre, tc.norm, tc.post)
			out := filepath.Join(t.TempDir(), "m.gguf")
			if err := convert.Convert(context.Background(), dir, out, convert.Options{}); err != nil {
				t.Fatal(err)
			}
			f, err := gguf.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			if s, _ := f.String("tokenizer.ggml.pre"); s != tc.want {
				t.Errorf("tokenizer.ggml.pre %q, want %q", s, tc.want)
			}
			if b, ok := f.Bool("tokenizer.ggml.add_bos_token"); !ok || b != tc.addBOS {
				t.Errorf("add_bos_token %v (%v), want %v", b, ok, tc.addBOS)
			}
			if id, _ := f.Uint("tokenizer.ggml.bos_token_id"); id != 1000 {
				t.Errorf("bos_token_id %d, want 1000", id)
			}
			m := loadModel(t, out, engine.ModelOptions{VocabOnly: true})
			ids, err := m.Tokenize("Hello world 12345", true, false)
			if err != nil {
				t.Fatal(err)
			}
			if (len(ids) > 0 && ids[0] == 1000) != tc.addBOS {
				t.Errorf("tokens %v: BOS first is %v, want %v", ids, !tc.addBOS, tc.addBOS)
			}
			t.Logf("%s: %v", tc.want, ids)
		})
	}

	llama3Digits4 := strings.Replace(preLlama3, `\\p{N}{1,3}`, `\\p{N}{1,4}`, 1)
	for _, tc := range []struct {
		name, pre, norm string
		mention         []string
	}{
		{"changed regex", llama3Digits4, "", []string{"Split(Regex", `\\p{N}{1,4}`, "normalizer none"}},
		{"prefix space", strings.Replace(preGPT2, `"add_prefix_space":false`, `"add_prefix_space":true`, 1), "", []string{"ByteLevel(add_prefix_space=true, use_regex=true)"}},
		{"lowercase normalizer", preQwen2, `{"type":"Sequence","normalizers":[{"type":"NFC"},{"type":"Lowercase"}]}`, []string{"normalizer Sequence[NFC, Lowercase]"}},
		{"NFC on falcon", preFalcon, normNFC, []string{"Punctuation(Contiguous)", "normalizer NFC"}},
	} {
		t.Run("refused/"+tc.name, func(t *testing.T) {
			dir := bpeFixture(t, tc.pre, tc.norm, "")
			err := convert.Convert(context.Background(), dir, filepath.Join(t.TempDir(), "m.gguf"), convert.Options{})
			if !errors.Is(err, convert.ErrUnsupported) {
				t.Fatalf("got %v, want ErrUnsupported", err)
			}
			for _, s := range append(tc.mention, "pre-tokenizer", "llama-bpe") {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
}

// TestGPT4oTokenization converts a byte-level vocabulary with o200k's
// pre-tokenizer (Phi-4-mini's) and checks that llama.cpp splits text as
// o200k's regex does: for each input, written as the pieces the regex
// cuts it into (camel-case and upper-case runs, attached contractions,
// digits by three without a space, "/" with its word, trailing newlines
// with punctuation, a space left before the last word), the tokens of the
// whole are the tokens of the pieces one after the other (byte-level BPE
// never merges across pieces), and they decode back to the input. The
// vocabulary is tiny-random-gpt2's with first-rank merges that join
// characters across the pieces of GPT-2's or Llama 3's regex ("o W",
// "/ t", "/ \n", "I '"), so that the same vocabulary with either of those
// pre-tokenizers tokenizes some input differently: the test tells them
// apart.
func TestGPT4oTokenization(t *testing.T) {
	cases := [][]string{
		{"Hello", "World"},
		{"Hello", " world", " ", "123", "45"},
		{"camel", "Case", "XMLParser"},
		{"I'm", " DONE's"},
		{"123", "45", " apples"},
		{"path", "/to", "\n\n", "file"},
		{"a", " ", " b"},
		{"x", "!!/\n"},
		{"na\u00efve", " caf\u00e9"},
		{"She'S", " DON'T", " ok"},
	}
	convertPre := func(pre string) *engine.Model {
		dir := bpeFixture(t, pre, "", "")
		addFirstMerges(t, dir, "o W", "/ t", "/ \u010a", "I '")
		out := filepath.Join(t.TempDir(), "m.gguf")
		if err := convert.Convert(context.Background(), dir, out, convert.Options{}); err != nil {
			t.Fatal(err)
		}
		return loadModel(t, out, engine.ModelOptions{VocabOnly: true})
	}
	m := convertPre(preGPT4o)
	others := map[string]*engine.Model{"gpt-2": convertPre(preGPT2), "llama-bpe": convertPre(preLlama3)}
	tokenize := func(m *engine.Model, s string) []engine.Token {
		ids, err := m.Tokenize(s, false, false)
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}
	differ := map[string]int{}
	for _, pieces := range cases {
		text := strings.Join(pieces, "")
		got := tokenize(m, text)
		var want []engine.Token
		for _, p := range pieces {
			want = append(want, tokenize(m, p)...)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%q: tokens %v, want %v (the pieces %q one by one)", text, got, want, pieces)
		}
		back, err := m.Detokenize(got, false, false)
		if err != nil {
			t.Fatal(err)
		}
		if back != text {
			t.Errorf("%q: decodes to %q", text, back)
		}
		log := fmt.Sprintf("%q: gpt-4o %v", text, got)
		for name, o := range others {
			ids := tokenize(o, text)
			if !slices.Equal(got, ids) {
				differ[name]++
			}
			log += fmt.Sprintf(", %s %v", name, ids)
		}
		t.Log(log)
	}
	for name := range others {
		if differ[name] == 0 {
			t.Errorf("the %s pre-tokenizer gives the same tokens for every input: the test cannot tell it from gpt-4o", name)
		}
	}
}

// TestTekkenTokenization: a Tekken tokenizer converts to llama.cpp's
// tekken pre-tokenizer, which splits digits one by one and keeps
// contractions apart (where gpt-4o keeps three digits and "'m" with its
// word).
func TestTekkenTokenization(t *testing.T) {
	convertPre := func(pre string) *engine.Model {
		dir := bpeFixture(t, pre, "", "")
		addFirstMerges(t, dir, "1 2", "I '", "' m")
		out := filepath.Join(t.TempDir(), "m.gguf")
		if err := convert.Convert(context.Background(), dir, out, convert.Options{}); err != nil {
			t.Fatal(err)
		}
		return loadModel(t, out, engine.ModelOptions{VocabOnly: true})
	}
	tekken, gpt4o := convertPre(preTekken), convertPre(preGPT4o)
	tokenize := func(m *engine.Model, s string) []engine.Token {
		ids, err := m.Tokenize(s, false, false)
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}
	for _, pieces := range [][]string{{"1", "2", "3"}, {"I", "'m"}, {"camel", "Case"}, {"Hello", " world"}} {
		text := strings.Join(pieces, "")
		var want []engine.Token
		for _, p := range pieces {
			want = append(want, tokenize(tekken, p)...)
		}
		if got := tokenize(tekken, text); !slices.Equal(got, want) {
			t.Errorf("%q: tekken tokens %v, want %v (the pieces %q one by one)", text, got, want, pieces)
		}
	}
	for _, text := range []string{"123", "I'm"} {
		if a, b := tokenize(tekken, text), tokenize(gpt4o, text); slices.Equal(a, b) {
			t.Errorf("%q: tekken and gpt-4o agree (%v): the test cannot tell them apart", text, a)
		}
	}
}

// TestSeedCoderTokenization: a Seed-Coder (Seed-OSS) tokenizer converts to
// llama.cpp's seed-coder pre-tokenizer, which splits digits one by one and
// keeps a line break out of the punctuation before it (where Llama 3's
// keeps three digits, and the line breaks with the punctuation).
func TestSeedCoderTokenization(t *testing.T) {
	convertPre := func(pre string) *engine.Model {
		dir := bpeFixture(t, pre, "", "")
		addFirstMerges(t, dir, "1 2", "! \u010a")
		out := filepath.Join(t.TempDir(), "m.gguf")
		if err := convert.Convert(context.Background(), dir, out, convert.Options{}); err != nil {
			t.Fatal(err)
		}
		return loadModel(t, out, engine.ModelOptions{VocabOnly: true})
	}
	seed, llama3 := convertPre(preSeedCoder), convertPre(preLlama3)
	tokenize := func(m *engine.Model, s string) []engine.Token {
		ids, err := m.Tokenize(s, false, false)
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}
	for _, pieces := range [][]string{{"1", "2", "3"}, {"x", "!", "\n"}, {"Hello", " world"}, {"I", "'m"}} {
		text := strings.Join(pieces, "")
		var want []engine.Token
		for _, p := range pieces {
			want = append(want, tokenize(seed, p)...)
		}
		if got := tokenize(seed, text); !slices.Equal(got, want) {
			t.Errorf("%q: seed-coder tokens %v, want %v (the pieces %q one by one)", text, got, want, pieces)
		}
	}
	for _, text := range []string{"123", "x!\n"} {
		if a, b := tokenize(seed, text), tokenize(llama3, text); slices.Equal(a, b) {
			t.Errorf("%q: seed-coder and llama-bpe agree (%v): the test cannot tell them apart", text, a)
		}
	}
}

// TestDeepSeekV3Tokenization: llama.cpp's deepseek-v3 pre-tokenizer, as
// detected, splits digits in threes (a merge of "3 4" is not applied
// across "123|4") and isolates CJK runs.
func TestDeepSeekV3Tokenization(t *testing.T) {
	dir := bpeFixture(t, preDeepSeekV3, normEmptySeq, "")
	addFirstMerges(t, dir, "3 4", "1 2")
	out := filepath.Join(t.TempDir(), "m.gguf")
	if err := convert.Convert(context.Background(), dir, out, convert.Options{}); err != nil {
		t.Fatal(err)
	}
	m := loadModel(t, out, engine.ModelOptions{VocabOnly: true})
	tokenize := func(s string) []engine.Token {
		ids, err := m.Tokenize(s, false, false)
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}
	for _, pieces := range [][]string{{"123", "456", "7"}, {"foo", "\u4e2d\u6587", "ABC"}, {"Hello", " world"}, {"#include"}} {
		text := strings.Join(pieces, "")
		var want []engine.Token
		for _, p := range pieces {
			want = append(want, tokenize(p)...)
		}
		if got := tokenize(text); !slices.Equal(got, want) {
			t.Errorf("%q: tokens %v, want %v (the pieces %q one by one)", text, got, want, pieces)
		}
	}
	if a, b := tokenize("1234"), tokenize("34"); slices.Contains(a, b[0]) || len(b) != 1 {
		t.Errorf("\"1234\" %v uses the \"34\" merge %v across the digit groups", a, b)
	}
}

// addFirstMerges puts merges ahead of those of the tokenizer.json in dir,
// their pieces as new tokens, and rewrites the checkpoint for the larger
// vocabulary.
func addFirstMerges(t *testing.T, dir string, merges ...string) {
	t.Helper()
	path := filepath.Join(dir, "tokenizer.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var tj map[string]any
	if err := json.Unmarshal(raw, &tj); err != nil {
		t.Fatal(err)
	}
	model := tj["model"].(map[string]any)
	vocab := model["vocab"].(map[string]any)
	n := 0
	for _, id := range vocab {
		n = max(n, int(id.(float64))+1)
	}
	for _, a := range tj["added_tokens"].([]any) {
		n = max(n, int(a.(map[string]any)["id"].(float64))+1)
	}
	var ms []any
	for _, m := range merges {
		ms = append(ms, m)
		vocab[strings.ReplaceAll(m, " ", "")] = n
		n++
	}
	model["merges"] = append(ms, model["merges"].([]any)...)
	if raw, err = json.Marshal(tj); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	writeTinyLlama(t, dir, n, -1, -1)
}
