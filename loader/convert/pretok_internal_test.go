package convert

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// TestDetectPreSpellings checks that equivalent spellings of a family's
// pre-tokenizer are recognised (a literal CR/LF or its regex escape; the
// NFC forms of the singletons in DeepSeek-LLM's letter class; an empty
// normalizer Sequence or null) and that Hugging Face's defaults apply to
// absent ByteLevel settings.
func TestDetectPreSpellings(t *testing.T) {
	seq := func(steps ...map[string]any) json.RawMessage {
		raw, err := json.Marshal(map[string]any{"type": "Sequence", "pretokenizers": steps})
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	split := func(re string) map[string]any {
		return map[string]any{"type": "Split", "pattern": map[string]any{"Regex": re}, "behavior": "Isolated", "invert": false}
	}
	// keep is a Split that keeps the matches and removes the rest.
	keep := func(re string) map[string]any {
		return map[string]any{"type": "Split", "pattern": map[string]any{"Regex": re}, "behavior": "Removed", "invert": true}
	}
	digits := map[string]any{"type": "Digits", "individual_digits": true}
	bl := map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}
	nfcLetters := strings.NewReplacer("\u1f7d", "\u03ce", "\u1fd3", "\u0390", "\u1fdb", "\u038a", "\u2126", "\u03a9", "\u212a", "K").Replace(deepseekLetters)
	if nfcLetters == deepseekLetters {
		t.Fatal("no singleton replaced")
	}
	for _, tc := range []struct {
		name      string
		pre, norm json.RawMessage
		want      string
	}{
		{"deepseek-llm, NFC letters, escaped newline", seq(split(`[\r\n]`), split(nfcLetters), split(deepseekPunct), split(`\s+$`), split(deepseekCJK), digits, bl), nil, "deepseek-llm"},
		{"deepseek-coder, null normalizer", seq(split("[\r\n]"), split(`\s?\p{L}+`), split(`\s?\p{P}+`), split(deepseekCJK), digits, bl), json.RawMessage("null"), "deepseek-coder"},
		{"gpt-2 nested in a Sequence", seq(map[string]any{"type": "ByteLevel", "add_prefix_space": false}), json.RawMessage(`{"type":"Sequence","normalizers":[]}`), "gpt-2"},
		{"qwen2 without NFC", seq(split(qwen2Regex), bl), nil, "qwen2"},
		{"gpt-4o", seq(split(gpt4oRegex), bl), nil, "gpt-4o"},
		{"gpt-4o, matches kept", seq(keep(gpt4oRegex), bl), nil, "gpt-4o"},
		{"llama-bpe, matches kept", seq(keep(llama3Regex), bl), nil, "llama-bpe"},
	} {
		got, err := detectPre(tc.pre, tc.norm)
		if err != nil || got != tc.want {
			t.Errorf("%s: got %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
	// ByteLevel's add_prefix_space defaults to true in Hugging Face's
	// tokenizers: absent, GPT-2's steps do not match.
	_, err := detectPre(json.RawMessage(`{"type":"ByteLevel"}`), nil)
	if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "add_prefix_space=true") {
		t.Errorf("default ByteLevel: got %v", err)
	}
	// Keeping the matches of a regex that leaves gaps is not isolating
	// them: DeepSeek-Coder's steps with one Split so spelled match none.
	_, err = detectPre(seq(split("[\r\n]"), keep(`\s?\p{L}+`), split(`\s?\p{P}+`), split(deepseekCJK), digits, bl), nil)
	if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "Removed, invert=true") {
		t.Errorf("kept matches of a partial regex: got %v", err)
	}
	_, err = detectPre(nil, nil)
	if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "pre_tokenizer []") {
		t.Errorf("no pre-tokenizer: got %v", err)
	}
}
