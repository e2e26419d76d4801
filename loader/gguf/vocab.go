package gguf

import (
	"fmt"
	"strconv"
	"strings"
)

// Tokenizer metadata keys that llama.cpp's vocabulary loader indexes without
// checking their types or lengths.
const (
	keyTokens    = "tokenizer.ggml.tokens"
	keyScores    = "tokenizer.ggml.scores"
	keyTokenType = "tokenizer.ggml.token_type"
	keyMerges    = "tokenizer.ggml.merges"
)

// checkVocab checks the tokenizer metadata of f where llama.cpp's vocabulary
// loader (llama-vocab.cpp) would abort or read out of bounds instead of
// failing cleanly:
//
//   - tokenizer.ggml.tokens must be an array of strings (gguf_get_arr_str
//     asserts the type) whose entries are unique once an empty token i is
//     renamed "[EMPTY_i]" as llama.cpp renames it (it asserts that its
//     token-to-id map is as long as the token list);
//   - tokenizer.ggml.scores must be an array of f32, and
//     tokenizer.ggml.token_type an array of i32, with at least one entry per
//     token (llama.cpp reads them as raw arrays indexed by token id);
//   - tokenizer.ggml.merges must be an array of strings;
//   - tokenizer.ggml.precompiled_charsmap must be an array of bytes that
//     CheckCharsmap accepts.
func checkVocab(f *File) error {
	if v, ok := f.Lookup(keyMerges); ok && v.Elem() != ValueString {
		return fmt.Errorf("gguf: %s has type %s, must be arr[str]: %w", keyMerges, typeName(v), ErrInvalid)
	}
	if v, ok := f.Lookup(keyCharsmap); ok {
		if v.Type != ValueArray || (v.Elem() != ValueUint8 && v.Elem() != ValueInt8) {
			return fmt.Errorf("gguf: %s has type %s, must be arr[u8]: %w", keyCharsmap, typeName(v), ErrInvalid)
		}
		if err := CheckCharsmap(v.raw); err != nil {
			return err
		}
	}
	tv, ok := f.Lookup(keyTokens)
	if !ok {
		return nil
	}
	tokens, ok := tv.AsStrings()
	if !ok {
		return fmt.Errorf("gguf: %s has type %s, must be arr[str]: %w", keyTokens, typeName(tv), ErrInvalid)
	}
	if i, j, tok, dup := DuplicateToken(tokens); dup {
		return fmt.Errorf("gguf: %s: token %d %q duplicates token %d (llama.cpp aborts on duplicate tokens): %w", keyTokens, i, tok, j, ErrInvalid)
	}
	for _, arr := range []struct {
		key  string
		elem ValueType
	}{{keyScores, ValueFloat32}, {keyTokenType, ValueInt32}} {
		v, ok := f.Lookup(arr.key)
		if !ok {
			continue
		}
		if v.Type != ValueArray || v.Elem() != arr.elem {
			return fmt.Errorf("gguf: %s has type %s, must be arr[%s]: %w", arr.key, typeName(v), arr.elem, ErrInvalid)
		}
		if v.Len() < len(tokens) {
			return fmt.Errorf("gguf: %s has %d entries for %d tokens: %w", arr.key, v.Len(), len(tokens), ErrInvalid)
		}
	}
	return nil
}

// DuplicateToken finds the first token i whose text, as llama.cpp reads
// it, is token j's: llama.cpp aborts loading such a vocabulary. llama.cpp
// reads a token as a C string, up to a NUL byte, and renames an empty one
// "[EMPTY_i]"; text is the token so read.
func DuplicateToken(tokens []string) (i, j int, text string, dup bool) {
	seen := make(map[string]int, len(tokens))
	for i, tok := range tokens {
		if n := strings.IndexByte(tok, 0); n >= 0 {
			tok = tok[:n]
		}
		if tok == "" {
			tok = "[EMPTY_" + strconv.Itoa(i) + "]"
		}
		if j, ok := seen[tok]; ok {
			return i, j, tok, true
		}
		seen[tok] = i
	}
	return 0, 0, "", false
}
