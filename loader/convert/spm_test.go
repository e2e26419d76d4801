package convert_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
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

// spmEncodings is testdata/spm/encodings.json: what SentencePiece itself
// made of its test model.
type spmEncodings struct {
	Texts []struct {
		Text string `json:"text"`
		IDs  []int  `json:"ids"`
	} `json:"texts"`
	VocabSize int              `json:"vocab_size"`
	BOS       int              `json:"bos"`
	EOS       int              `json:"eos"`
	UNK       int              `json:"unk"`
	Pieces    map[string][]any `json:"pieces"` // id: [piece, score]
}

// spmDir writes a tiny Llama checkpoint with testdata/spm's tokenizer.model
// (model, when not nil, in its place) and no tokenizer.json; files adds
// more files by name.
func spmDir(t *testing.T, model []byte, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	if model == nil {
		var err error
		if model, err = os.ReadFile(filepath.Join("testdata", "spm", "tokenizer.model")); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.model"), model, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, s := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeTinyLlama(t, dir, 608, 1, 2)
	return dir
}

// spmPieces encodes a SentencePiece model's pieces: 3 specials, the 256
// byte pieces but those in missing, "▁a", and extra (text, type) pairs.
func spmPieces(missing []int, extra ...any) []byte {
	var b []byte
	for i, p := range []string{"<unk>", "<s>", "</s>"} {
		b = append(b, protoMsg(1, protoMsg(1, p, 2, float32(0), 3, []int{2, 3, 3}[i]))...)
	}
	for i := range 256 {
		if !slices.Contains(missing, i) {
			b = append(b, protoMsg(1, protoMsg(1, "<0x"+strings.ToUpper(strconv.FormatInt(int64(i)|0x100, 16)[1:])+">", 2, float32(0), 3, 6))...)
		}
	}
	b = append(b, protoMsg(1, protoMsg(1, "▁a", 2, float32(-1)))...)
	for i := 0; i < len(extra); i += 2 {
		b = append(b, protoMsg(1, protoMsg(1, extra[i].(string), 2, float32(-2), 3, extra[i+1].(int)))...)
	}
	return b
}

// TestSentencePieceModel converts a checkpoint whose tokenizer is only a
// real SentencePiece BPE model (tokenizer.model) and checks that llama.cpp
// tokenizes the converted GGUF exactly as SentencePiece did (digits split,
// byte fallback for CJK and an emoji, runs of spaces, a tab, a newline), the
// piece types and scores, added tokens from added_tokens.json and
// tokenizer_config.json, and the padding up to config.json's vocab_size.
func TestSentencePieceModel(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "spm", "encodings.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want spmEncodings
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	dir := spmDir(t, nil, map[string]string{
		"added_tokens.json":     `{"<tool>": 600, "<way_out>": 9999}`,
		"tokenizer_config.json": `{"add_bos_token": true, "bos_token": "<s>", "eos_token": "</s>", "added_tokens_decoder": {"601": {"content": "<|assistant|>", "special": true}}}`,
	})
	out := filepath.Join(t.TempDir(), "spm.gguf")
	if err := convert.Convert(context.Background(), dir, out, convert.Options{Name: "x"}); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := f.String("tokenizer.ggml.model"); s != "llama" {
		t.Errorf("tokenizer.ggml.model %q", s)
	}
	v := readGGUFVocab(t, out)
	if len(v.tokens) != 608 {
		t.Fatalf("%d tokens, want config.json's 608", len(v.tokens))
	}
	for id, typ := range map[int]int64{0: 2, 1: 3, 3: 3, 4: 4, 5: 6, 300: 1, 600: 4, 601: 3, 602: 5} {
		if v.types[id] != typ {
			t.Errorf("token %d %q has type %d, want %d", id, v.tokens[id], v.types[id], typ)
		}
	}
	if v.tokens[600] != "<tool>" || v.tokens[601] != "<|assistant|>" || !strings.HasPrefix(v.tokens[602], "[PAD") {
		t.Errorf("added tokens %q", v.tokens[600:603])
	}
	for k, id := range map[string]int{"bos": want.BOS, "eos": want.EOS, "unknown": want.UNK} {
		if got, ok := v.ids[k]; !ok || int(got) != id {
			t.Errorf("%s id %d (%v), want %d", k, got, ok, id)
		}
	}
	sv, _ := f.Lookup("tokenizer.ggml.scores")
	scores, _ := sv.AsFloat32s()
	for key, p := range want.Pieces {
		id, _ := strconv.Atoi(key)
		piece, _ := p[0].(string)
		score, _ := p[1].(float64)
		if v.tokens[id] != piece || scores[id] != float32(score) {
			t.Errorf("piece %d: %q %v, want %q %v", id, v.tokens[id], scores[id], p[0], score)
		}
	}

	m := loadModel(t, out, engine.ModelOptions{VocabOnly: true})
	for _, tc := range want.Texts {
		got, err := m.Tokenize(tc.Text, false, false)
		if err != nil {
			t.Fatal(err)
		}
		ids := make([]int, len(got))
		for i, g := range got {
			ids[i] = int(g)
		}
		if !slices.Equal(ids, tc.IDs) {
			t.Errorf("%q: llama.cpp %v, SentencePiece %v", tc.Text, ids, tc.IDs)
		}
	}
	if ids, err := m.Tokenize("Hello", true, false); err != nil || len(ids) == 0 || int(ids[0]) != want.BOS {
		t.Errorf("with special tokens: %v %v, want BOS first", ids, err)
	}
}

// protoMsg encodes protocol buffer fields: varints (uint64 or int), 32-bit
// floats, strings and nested messages ([]byte).
func protoMsg(fields ...any) []byte {
	var b []byte
	for i := 0; i < len(fields); i += 2 {
		num := uint64(fields[i].(int))
		switch v := fields[i+1].(type) {
		case int:
			b = binary.AppendUvarint(b, num<<3)
			b = binary.AppendUvarint(b, uint64(int64(v)))
		case float32:
			b = binary.AppendUvarint(b, num<<3|5)
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
		case string:
			b = binary.AppendUvarint(b, num<<3|2)
			b = binary.AppendUvarint(b, uint64(len(v)))
			b = append(b, v...)
		case []byte:
			b = binary.AppendUvarint(b, num<<3|2)
			b = binary.AppendUvarint(b, uint64(len(v)))
			b = append(b, v...)
		}
	}
	return b
}

// TestSentencePieceModelRefused checks that SentencePiece models llama.cpp
// would tokenize differently, and malformed ones, are refused with an error
// naming the problem; the pieces are 3 specials, 256 bytes and "▁a".
func TestSentencePieceModelRefused(t *testing.T) {
	model := func(trainer, normalizer []byte) []byte {
		return append(spmPieces(nil), protoMsg(2, trainer, 3, normalizer)...)
	}
	bpe := protoMsg(3, 2, 35, 1, 43, -1)
	identity := protoMsg(1, "identity", 3, 1, 4, 0)
	// The well-formed model converts, pad_id -1 (a 10-byte varint) and all.
	if err := convert.Convert(context.Background(), spmDir(t, model(bpe, identity), nil), filepath.Join(t.TempDir(), "ok.gguf"), convert.Options{}); err != nil {
		t.Fatalf("the well-formed model: %v", err)
	}
	for name, tc := range map[string]struct {
		model       []byte
		want        string
		unsupported bool
	}{
		"unigram":               {model(protoMsg(3, 1, 35, 1), identity), "type 1", true},
		"no byte fallback":      {model(protoMsg(3, 2), identity), "byte fallback", true},
		"NFKC":                  {model(bpe, protoMsg(1, "nmt_nfkc", 4, 0)), "nmt_nfkc", true},
		"collapsed whitespace":  {model(bpe, protoMsg(1, "identity")), "remove_extra_whitespaces", true},
		"truncated":             {model(bpe, identity)[:100], "malformed", false},
		"bos outside the model": {model(protoMsg(3, 2, 35, 1, 41, 5000), identity), "outside", false},
		"spaces kept":           {model(bpe, protoMsg(1, "identity", 4, 0, 5, 0)), "escape_whitespaces", true},
		"▁ after words":         {model(protoMsg(3, 2, 35, 1, 24, 1), identity), "treat_whitespace_as_suffix", true},
		"a byte piece missing":  {append(spmPieces([]int{0xE3}), protoMsg(2, bpe, 3, identity)...), "<0xE3>", false},
	} {
		err := convert.Convert(context.Background(), spmDir(t, tc.model, nil), filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) || errors.Is(err, convert.ErrUnsupported) != tc.unsupported {
			t.Errorf("%s: %v, want an error naming %q (unsupported: %v)", name, err, tc.want, tc.unsupported)
		}
	}
}

// TestSentencePieceModelTokens checks the vocabulary made of SentencePiece
// models beyond the test model: a user-defined piece is written with
// spaces for its ▁ (llama.cpp matches and prints it as written); with no
// ids in the checkpoint's files the trainer's BOS and EOS are used, and a
// trainer without a BOS writes add_bos_token false; an added token that
// repeats a piece's text, or replaces a byte piece, is refused (llama.cpp
// would abort or throw).
func TestSentencePieceModelTokens(t *testing.T) {
	bpe, identity := protoMsg(3, 2, 35, 1, 43, -1), protoMsg(1, "identity", 3, 1, 4, 0)
	dir := spmDir(t, append(spmPieces(nil, "▁▁b", 4), protoMsg(2, bpe, 3, identity)...), nil)
	writeTinyLlama(t, dir, 608, -1, -1)
	out := filepath.Join(t.TempDir(), "x.gguf")
	if err := convert.Convert(context.Background(), dir, out, convert.Options{}); err != nil {
		t.Fatal(err)
	}
	v := readGGUFVocab(t, out)
	if v.tokens[260] != "  b" || v.types[260] != 4 {
		t.Errorf("user-defined piece: %q type %d, want \"  b\" type 4", v.tokens[260], v.types[260])
	}
	if v.ids["bos"] != 1 || v.ids["eos"] != 2 || v.addBOS != nil {
		t.Errorf("trainer ids: %v, add_bos %v", v.ids, v.addBOS)
	}

	noBOS := protoMsg(3, 2, 35, 1, 41, -1, 43, -1)
	dir = spmDir(t, append(spmPieces(nil), protoMsg(2, noBOS, 3, identity)...), nil)
	writeTinyLlama(t, dir, 608, -1, -1)
	if err := convert.Convert(context.Background(), dir, out, convert.Options{}); err != nil {
		t.Fatal(err)
	}
	if v := readGGUFVocab(t, out); v.addBOS == nil || *v.addBOS {
		t.Errorf("no BOS: add_bos_token %v", v.addBOS)
	} else if _, ok := v.ids["bos"]; ok {
		t.Errorf("no BOS: bos id %d written", v.ids["bos"])
	}

	for name, tc := range map[string]struct{ added, want string }{
		"a piece's text again": {`{"<s>": 300}`, "duplicate"},
		"over a byte piece":    {`{"<x>": 10}`, "<0x07>"},
	} {
		dir := spmDir(t, append(spmPieces(nil), protoMsg(2, bpe, 3, identity)...), map[string]string{"added_tokens.json": tc.added})
		err := convert.Convert(context.Background(), dir, filepath.Join(t.TempDir(), "y.gguf"), convert.Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error naming %q", name, err, tc.want)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}
