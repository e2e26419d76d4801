package gguf

import (
	"path/filepath"
	"testing"
)

func TestValidateModelVocab(t *testing.T) {
	toks := Strings([]string{"<unk>", "a", "", "b"})
	tests := []struct {
		name  string
		kv    []KV
		words []string // nil: valid
	}{
		{name: "valid", kv: []KV{{keyTokens, toks}, {keyScores, Float32s(make([]float32, 4))}, {keyTokenType, Int32s(make([]int32, 4))},
			{keyMerges, Strings([]string{"a b"})}}},
		{name: "no tokenizer"},
		{name: "empty tokens renamed", kv: []KV{{keyTokens, Strings([]string{"", "[EMPTY_1]", ""})}}},
		{name: "longer scores", kv: []KV{{keyTokens, toks}, {keyScores, Float32s(make([]float32, 9))}}},
		{name: "tokens not strings", kv: []KV{{keyTokens, Uint32s([]uint32{1, 2})}}, words: []string{"tokenizer.ggml.tokens has type arr[u32]"}},
		{name: "tokens scalar", kv: []KV{{keyTokens, Uint32(2)}}, words: []string{"has type u32"}},
		{name: "duplicate token", kv: []KV{{keyTokens, Strings([]string{"a", "b", "a"})}}, words: []string{`token 2 "a" duplicates token 0`}},
		{name: "empty token collides", kv: []KV{{keyTokens, Strings([]string{"[EMPTY_1]", ""})}}, words: []string{"token 1", "duplicates token 0"}},
		{name: "token cut at NUL collides", kv: []KV{{keyTokens, Strings([]string{"a", "a\x00b"})}}, words: []string{"token 1", "duplicates token 0"}},
		{name: "NUL token is empty", kv: []KV{{keyTokens, Strings([]string{"[EMPTY_1]", "\x00"})}}, words: []string{"token 1", "duplicates token 0"}},
		{name: "short scores", kv: []KV{{keyTokens, toks}, {keyScores, Float32s(make([]float32, 3))}}, words: []string{"tokenizer.ggml.scores has 3 entries for 4 tokens"}},
		{name: "scores f64", kv: []KV{{keyTokens, toks}, {keyScores, Float64s(make([]float64, 4))}}, words: []string{"must be arr[f32]"}},
		{name: "short token types", kv: []KV{{keyTokens, toks}, {keyTokenType, Int32s(nil)}}, words: []string{"0 entries for 4 tokens"}},
		{name: "token types u8", kv: []KV{{keyTokens, toks}, {keyTokenType, Uint8s(make([]uint8, 4))}}, words: []string{"must be arr[i32]"}},
		{name: "merges not strings", kv: []KV{{keyMerges, Int32s([]int32{1})}}, words: []string{"tokenizer.ggml.merges has type arr[i32]"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := NewWriter()
			for _, kv := range tc.kv {
				w.Set(kv.Key, kv.Value)
			}
			p := filepath.Join(t.TempDir(), "v.gguf")
			if err := w.WriteFile(p); err != nil {
				t.Fatal(err)
			}
			// Open checks the format only; ValidateModel adds the vocabulary.
			if _, err := Open(p); err != nil {
				t.Fatal(err)
			}
			_, err := ValidateModel(p)
			if tc.words == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantErr(t, err, ErrInvalid, append(tc.words, p)...)
		})
	}
}
