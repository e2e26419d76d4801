package convert

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Byte-level BPE pre-tokenizers.
//
// llama.cpp does not run a tokenizer.json's pre_tokenizer: it splits the
// text with a fixed list of regexes chosen by the GGUF key
// tokenizer.ggml.pre (llama-vocab.cpp, llm_tokenizer_bpe). The converter
// must therefore name the pre-tokenizer family. convert_hf_to_gguf.py does
// it by tokenizing a fixed test text with Hugging Face's tokenizer and
// looking up a hash of the ids (get_vocab_base_pre). This package cannot
// run Hugging Face's tokenizer, so it matches the pre_tokenizer and
// normalizer JSON itself: the sequence of steps (Split regexes with their
// behaviour, ByteLevel, Digits, Punctuation and their settings) must equal,
// step for step, the one a family's released tokenizer.json declares.
// Anything else is refused with the steps found, never converted with a
// guessed pre-tokenizer: a wrong one loads, tokenizes, and gives subtly
// wrong ids.
//
// The hash also covers the vocabulary, this match does not: two families
// declaring the same pre-tokenizer JSON get the same name. That is only a
// problem where llama.cpp gives such families different regexes, and for
// the table below it does not (starcoder, refact and smollm declare the
// same steps and share llama.cpp's regexes; so do gpt-2, mpt and olmo).

// preStep is one pre-tokenizer step in canonical form.
type preStep string

// preJSON is a tokenizer.json pre_tokenizer (or one step of a Sequence).
type preJSON struct {
	Type          string    `json:"type"`
	Pretokenizers []preJSON `json:"pretokenizers"`
	Pattern       *struct {
		Regex  *string `json:"Regex"`
		String *string `json:"String"`
	} `json:"pattern"`
	Behavior         string `json:"behavior"`
	Invert           bool   `json:"invert"`
	AddPrefixSpace   *bool  `json:"add_prefix_space"`
	UseRegex         *bool  `json:"use_regex"`
	IndividualDigits bool   `json:"individual_digits"`
	Replacement      string `json:"replacement"`
}

// nfcSingletons maps the code points that Unicode normalization (NFC)
// replaces by another single code point to that code point. Some copies of
// deepseek-llm's letter class carry the normalized forms; both are
// accepted.
var nfcSingletons = strings.NewReplacer(
	"\u1f7d", "\u03ce", "\u1fd3", "\u0390", "\u1fdb", "\u038a",
	"\u2126", "\u03a9", "\u212a", "K", "\u212b", "\u00c5",
)

// canonRegex writes a Split regex so that equivalent spellings compare
// equal: a literal CR or LF becomes the escape \r or \n, and NFC
// singletons their normalized form.
func canonRegex(re string) string {
	re = strings.NewReplacer("\r", `\r`, "\n", `\n`).Replace(re)
	return nfcSingletons.Replace(re)
}

// steps flattens a pre-tokenizer into canonical steps, applying Hugging
// Face's defaults for absent settings.
func (p preJSON) steps() []preStep {
	if p.Type == "" {
		return nil
	}
	if p.Type == "Sequence" {
		var out []preStep
		for _, c := range p.Pretokenizers {
			out = append(out, c.steps()...)
		}
		return out
	}
	boolOr := func(b *bool, def bool) bool {
		if b == nil {
			return def
		}
		return *b
	}
	var s string
	switch p.Type {
	case "ByteLevel":
		s = fmt.Sprintf("ByteLevel(add_prefix_space=%v, use_regex=%v)", boolOr(p.AddPrefixSpace, true), boolOr(p.UseRegex, true))
	case "Split":
		pat := "no pattern"
		behavior, invert := p.Behavior, p.Invert
		if p.Pattern != nil && p.Pattern.Regex != nil {
			re := canonRegex(*p.Pattern.Regex)
			pat = "Regex " + fmt.Sprintf("%q", re)
			if behavior == "Removed" && invert && totalRegexes[re] {
				// Keeping the matches and removing the rest is
				// isolating the matches when nothing is left between
				// them.
				behavior, invert = "Isolated", false
			}
		} else if p.Pattern != nil && p.Pattern.String != nil {
			pat = "String " + fmt.Sprintf("%q", *p.Pattern.String)
		}
		s = fmt.Sprintf("Split(%s, %s, invert=%v)", pat, behavior, invert)
	case "Digits":
		s = fmt.Sprintf("Digits(individual_digits=%v)", p.IndividualDigits)
	case "Punctuation":
		b := p.Behavior
		if b == "" {
			b = "Isolated"
		}
		s = fmt.Sprintf("Punctuation(%s)", b)
	case "Metaspace":
		s = fmt.Sprintf("Metaspace(replacement=%q)", p.Replacement)
	default:
		s = p.Type
	}
	return []preStep{preStep(s)}
}

// totalRegexes are the Split regexes (canonical) that match every
// character: their matches tile the whole text, so a Split that isolates
// the matches (Isolated, invert false, as transformers' tiktoken
// conversion writes it) and one that keeps the matches and removes what
// lies between them (Removed, invert true, as other tiktoken conversions
// write it) give the same pieces. Each has a catch-all for whitespace
// (\s+) and the complements of letters, numbers and whitespace.
var totalRegexes = map[string]bool{
	canonRegex(llama3Regex):    true,
	canonRegex(qwen2Regex):     true,
	canonRegex(gpt4oRegex):     true,
	canonRegex(seedCoderRegex): true,
}

// byteLevelStep is the canonical ByteLevel step; withRegex: it also applies
// GPT-2's split regex (use_regex).
func byteLevelStep(withRegex bool) preStep {
	return preStep(fmt.Sprintf("ByteLevel(add_prefix_space=false, use_regex=%v)", withRegex))
}

// splitStep is the canonical Split step for an isolated regex.
func splitStep(re string) preStep {
	return preStep(fmt.Sprintf("Split(Regex %q, Isolated, invert=false)", canonRegex(re)))
}

// The Split regexes of the released tokenizer.json files, as llama.cpp's
// llama-vocab.cpp also quotes them.
const (
	llama3Regex = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	qwen2Regex  = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	// gpt4oRegex is o200k's (GPT-4o, Phi-4-mini): cased-letter runs
	// split at lower-to-upper changes, contractions attached, up to three
	// digits, and "/" kept with trailing newlines.
	gpt4oRegex = `[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	// tekkenRegex is Mistral's Tekken tokenizer's (Mistral-Nemo, Mistral
	// Small 3, Pixtral): o200k's cased-letter runs without the
	// contractions, and one digit at a time.
	tekkenRegex = `[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	// seedCoderRegex is Seed-Coder's and Seed-OSS's: Qwen2's with a
	// single digit spelled \p{N}{1}, and punctuation runs that keep
	// line breaks out.
	seedCoderRegex = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+`
	// bloomRegex is BLOOM's: a word with one space before it, up to
	// whitespace or one of its punctuation marks.
	bloomRegex = ` ?[^(\s|[.,!?…。，、।۔،])]+`
	// bailingRegex is Ling's (Ling 1.0 and 2.0): Qwen2's with the
	// contractions after one apostrophe, possessive quantifiers (which
	// match as the greedy ones here, since backtracking cannot help them)
	// and one line break per whitespace run.
	bailingRegex = `'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+`
	// deepseekV3Regex is DeepSeek-V3's third Split (after its digits and
	// kana-and-CJK ones): a symbol fused to the ASCII word after it,
	// letters with their marks, and punctuation runs.
	deepseekV3Regex = `[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_` + "`" + `{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	// deepseekV3CJK is DeepSeek-V3's run of CJK ideographs and kana.
	deepseekV3CJK = "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+"
	// deepseekLetters is DeepSeek-LLM's class of cased letters.
	deepseekLetters = "\\s?[A-Za-z\u00b5\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u01ba\u01bc-\u01bf\u01c4-\u0293\u0295-\u02af" +
		"\u0370-\u0373\u0376\u0377\u037b-\u037d\u037f\u0386\u0388-\u038a\u038c\u038e-\u03a1\u03a3-\u03f5\u03f7-\u0481" +
		"\u048a-\u052f\u0531-\u0556\u10a0-\u10c5\u13a0-\u13f5\u13f8-\u13fd\u1c90-\u1cba\u1cbd-\u1cbf\u1d00-\u1d2b" +
		"\u1d6b-\u1d77\u1d79-\u1d9a\u1e00-\u1f15\u1f18-\u1f1d\u1f20-\u1f45\u1f48-\u1f4d\u1f50-\u1f57\u1f59\u1f5b\u1f5d" +
		"\u1f5f-\u1f7d\u1f80-\u1fb4\u1fb6-\u1fbc\u1fbe\u1fc2-\u1fc4\u1fc6-\u1fcc\u1fd0-\u1fd3\u1fd6-\u1fdb\u1fe0-\u1fec" +
		"\u1ff2-\u1ff4\u1ff6-\u1ffc\u2102\u2107\u210a-\u2113\u2115\u2119-\u211d\u2124\u2126\u2128\u212a-\u212d" +
		"\u212f-\u2134\u2139\u213c-\u213f\u2145-\u2149\u214e\u2183\u2184\u2c00-\u2c7b\u2c7e-\u2ce4\u2ceb-\u2cee" +
		"\u2cf2\u2cf3\ua640-\ua66d\ua680-\ua69b\ua722-\ua76f\ua771-\ua787\ua78b-\ua78e\uab70-\uabbf\ufb00-\ufb06" +
		"\ufb13-\ufb17\uff21-\uff3a\uff41-\uff5a\U00010400-\U0001044f\U000104b0-\U000104d3\U000104d8-\U000104fb" +
		"\U00010c80-\U00010cb2\U00010cc0-\U00010cf2\U000118a0-\U000118df\U0001e900-\U0001e943]+"
	deepseekPunct = "\\s?[!-/:-~\uff01-\uff0f\uff1a-\uff5e\u2018-\u201f\u3000-\u3002]+"
	// deepseekCJK is the CJK and Hangul class both DeepSeek tokenizers
	// isolate.
	deepseekCJK = "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+"
)

// Normalizers, canonical.
const (
	normNone = "none" // null, or an empty Sequence
	normNFC  = "NFC"
)

// preFamily is a byte-level pre-tokenizer llama.cpp knows.
type preFamily struct {
	name  string    // tokenizer.ggml.pre
	steps []preStep // the pre_tokenizer's steps
	norms []string  // the normalizers its tokenizer.json files declare
	from  string    // a model whose tokenizer.json declares this
}

// preFamilies are the byte-level pre-tokenizers detected, with the steps
// their models' tokenizer.json files declare. llama.cpp's regexes for each
// name (llama-vocab.cpp) implement those steps: a Split regex directly,
// ByteLevel with use_regex as GPT-2's regex, Digits as \p{N} (one digit) or
// \p{N}+, Punctuation as a class of punctuation and ASCII symbols.
var preFamilies = []preFamily{
	{name: "gpt-2", steps: []preStep{byteLevelStep(true)}, norms: []string{normNone}, from: "openai-community/gpt2"},
	{name: "llama-bpe", steps: []preStep{splitStep(llama3Regex), byteLevelStep(false)}, norms: []string{normNone}, from: "meta-llama/Meta-Llama-3-8B"},
	{name: "qwen2", steps: []preStep{splitStep(qwen2Regex), byteLevelStep(false)}, norms: []string{normNFC, normNone}, from: "Qwen/Qwen2-7B"},
	// llama.cpp implements o200k's regex with its own: letter classes as
	// "a letter not in a-z" and "a letter not in A-Z", the contractions
	// spelled out in both cases (llama-vocab.cpp, LLAMA_VOCAB_PRE_TYPE_GPT4O).
	{name: "gpt-4o", steps: []preStep{splitStep(gpt4oRegex), byteLevelStep(false)}, norms: []string{normNone}, from: "microsoft/Phi-4-mini-instruct (llama.cpp: Xenova/gpt-4o)"},
	// The regex llama.cpp quotes as Tekken's tokenizer.json's
	// (llama-vocab.cpp, LLAMA_VOCAB_PRE_TYPE_TEKKEN).
	{name: "tekken", steps: []preStep{splitStep(tekkenRegex), byteLevelStep(false)}, norms: []string{normNone}, from: "mistralai/Mistral-Nemo-Instruct-2407"},
	// The regex llama.cpp quotes as Seed-Coder's tokenizer.json's
	// (llama-vocab.cpp, LLAMA_VOCAB_PRE_TYPE_SEED_CODER), which Seed-OSS
	// shares.
	{name: "seed-coder", steps: []preStep{splitStep(seedCoderRegex), byteLevelStep(false)}, norms: []string{normNone}, from: "ByteDance-Seed/Seed-Coder-8B-Base, ByteDance-Seed/Seed-OSS-36B-Instruct"},
	// The regex llama.cpp quotes as Ling's tokenizer.json's
	// (llama-vocab.cpp, LLAMA_VOCAB_PRE_TYPE_BAILINGMOE), which it runs
	// with greedy quantifiers for the possessive ones.
	{name: "bailingmoe", steps: []preStep{splitStep(bailingRegex), byteLevelStep(false)}, norms: []string{normNone}, from: "inclusionAI/Ling-mini-2.0"},
	// BLOOM's tokenizer.json; llama.cpp's bloom regex spells the same
	// class without the nested brackets.
	{name: "bloom", steps: []preStep{splitStep(bloomRegex), byteLevelStep(false)}, norms: []string{normNone}, from: "bigscience/bloom-560m"},
	{name: "deepseek-llm", steps: []preStep{
		splitStep("[\r\n]"), splitStep(deepseekLetters), splitStep(deepseekPunct), splitStep(`\s+$`), splitStep(deepseekCJK),
		"Digits(individual_digits=true)", byteLevelStep(false),
	}, norms: []string{normNone}, from: "deepseek-ai/deepseek-llm-7b-base"},
	{name: "deepseek-coder", steps: []preStep{
		splitStep("[\r\n]"), splitStep(`\s?\p{L}+`), splitStep(`\s?\p{P}+`), splitStep(deepseekCJK),
		"Digits(individual_digits=true)", byteLevelStep(false),
	}, norms: []string{normNone}, from: "deepseek-ai/deepseek-coder-6.7b-base"},
	{name: "deepseek-v3", steps: []preStep{
		splitStep(`\p{N}{1,3}`), splitStep(deepseekV3CJK), splitStep(deepseekV3Regex), byteLevelStep(false),
	}, norms: []string{normNone}, from: "deepseek-ai/DeepSeek-V3"},
	{name: "falcon", steps: []preStep{
		"Punctuation(Contiguous)", byteLevelStep(true), "Digits(individual_digits=false)", splitStep("[0-9][0-9][0-9]"),
	}, norms: []string{normNone}, from: "tiiuae/falcon-7b"},
	{name: "starcoder", steps: []preStep{"Digits(individual_digits=true)", byteLevelStep(true)}, norms: []string{normNone}, from: "bigcode/starcoder"},
	// Command R's: StarCoder's steps with an NFC normalizer, which
	// llama.cpp's command-r does not apply (text is nearly always NFC).
	{name: "command-r", steps: []preStep{"Digits(individual_digits=true)", byteLevelStep(true)}, norms: []string{normNFC}, from: "CohereForAI/c4ai-command-r-v01"},
	// GPT-NeoX's tokenizer (OLMo, OLMoE): GPT-2's step with an NFC
	// normalizer, which llama.cpp's olmo does not apply either.
	{name: "olmo", steps: []preStep{byteLevelStep(true)}, norms: []string{normNFC}, from: "allenai/OLMoE-1B-7B-0924"},
}

// PreTokenizers returns the tokenizer.ggml.pre names Convert detects for a
// byte-level BPE tokenizer.json.
func PreTokenizers() []string {
	out := make([]string, len(preFamilies))
	for i, f := range preFamilies {
		out[i] = f.name
	}
	return out
}

// canonNormalizer describes a tokenizer.json normalizer: normNone, normNFC
// or, for any other, its type tree.
func canonNormalizer(raw json.RawMessage) (string, error) {
	if isNull(raw) {
		return normNone, nil
	}
	var n struct {
		Type        string            `json:"type"`
		Normalizers []json.RawMessage `json:"normalizers"`
	}
	if err := json.Unmarshal(raw, &n); err != nil {
		return "", err
	}
	if n.Type != "Sequence" {
		return n.Type, nil
	}
	var parts []string
	for _, c := range n.Normalizers {
		s, err := canonNormalizer(c)
		if err != nil {
			return "", err
		}
		if s != normNone {
			parts = append(parts, s)
		}
	}
	switch len(parts) {
	case 0:
		return normNone, nil
	case 1:
		return parts[0], nil
	}
	return "Sequence[" + strings.Join(parts, ", ") + "]", nil
}

// detectPre names the llama.cpp pre-tokenizer of a byte-level BPE
// tokenizer.json from its pre_tokenizer and normalizer, or fails with
// ErrUnsupported describing what was found.
func detectPre(preRaw, normRaw json.RawMessage) (string, error) {
	var p preJSON
	if !isNull(preRaw) {
		if err := json.Unmarshal(preRaw, &p); err != nil {
			return "", fmt.Errorf("convert: tokenizer.json: pre_tokenizer: %w", err)
		}
	}
	steps := p.steps()
	norm, err := canonNormalizer(normRaw)
	if err != nil {
		return "", fmt.Errorf("convert: tokenizer.json: normalizer: %w", err)
	}
	for _, f := range preFamilies {
		if slices.Equal(steps, f.steps) && slices.Contains(f.norms, norm) {
			return f.name, nil
		}
	}
	desc := make([]string, len(steps))
	for i, s := range steps {
		desc[i] = string(s)
	}
	return "", fmt.Errorf("%w byte-level BPE pre-tokenizer: tokenizer.json has pre_tokenizer [%s] and normalizer %s, which match none of the llama.cpp pre-tokenizers detected (%s)",
		ErrUnsupported, strings.Join(desc, "; "), norm, strings.Join(PreTokenizers(), ", "))
}
