package convert

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/llm-go/llm/loader/gguf"
)

// llama.cpp token types (llama_token_type).
const (
	tokNormal      = 1
	tokUnknown     = 2
	tokControl     = 3
	tokUserDefined = 4
	tokUnused      = 5
	tokByte        = 6
)

// vocab is the tokenizer metadata written to the GGUF file.
type vocab struct {
	model  string // tokenizer.ggml.model
	pre    string // tokenizer.ggml.pre, "" for none
	tokens []string
	scores []float32 // nil for a byte-level BPE
	types  []int32
	merges []string // byte-level BPE only

	bos, eos, unk, pad int // -1 when unknown
	addBOS, addEOS     *bool
	chatTemplate       string
	// addSpacePrefix, if not nil, is tokenizer.ggml.add_space_prefix:
	// false for a SentencePiece-style vocabulary whose normalizer
	// replaces spaces with "▁" but prepends none (Gemma).
	addSpacePrefix *bool
}

type tokenizerJSON struct {
	Normalizer   json.RawMessage `json:"normalizer"`
	PreTokenizer json.RawMessage `json:"pre_tokenizer"`
	AddedTokens  []struct {
		ID      int    `json:"id"`
		Content string `json:"content"`
		Special bool   `json:"special"`
	} `json:"added_tokens"`
	Model struct {
		Type         string            `json:"type"`
		Vocab        map[string]int    `json:"vocab"`
		Merges       []json.RawMessage `json:"merges"`
		ByteFallback bool              `json:"byte_fallback"`
		UnkToken     *string           `json:"unk_token"`
	} `json:"model"`
}

type normalizerJSON struct {
	Type    string `json:"type"`
	Prepend string `json:"prepend"`
	Pattern struct {
		String *string `json:"String"`
	} `json:"pattern"`
	Content       string           `json:"content"`
	Normalizers   []normalizerJSON `json:"normalizers"`
	PreTokenizers []normalizerJSON `json:"pretokenizers"`
}

// has reports whether n or one of its children has the type typ.
func (n normalizerJSON) has(typ string) bool {
	if n.Type == typ {
		return true
	}
	for _, c := range append(slices.Clone(n.Normalizers), n.PreTokenizers...) {
		if c.has(typ) {
			return true
		}
	}
	return false
}

func (n normalizerJSON) prepends(s string) bool {
	if n.Type == "Prepend" && n.Prepend == s {
		return true
	}
	for _, c := range n.Normalizers {
		if c.prepends(s) {
			return true
		}
	}
	return false
}

// replaces reports whether n or one of its children replaces the string
// from with to.
func (n normalizerJSON) replaces(from, to string) bool {
	if n.Type == "Replace" && n.Pattern.String != nil && *n.Pattern.String == from && n.Content == to {
		return true
	}
	for _, c := range n.Normalizers {
		if c.replaces(from, to) {
			return true
		}
	}
	return false
}

var byteTokenRE = regexp.MustCompile(`^<0x[0-9A-F]{2}>$`)

// readVocab reads tokenizer.json, tokenizer_config.json,
// special_tokens_map.json and chat_template.jinja.
func readVocab(dir string, cfg *hfConfig, arch archSpec) (*vocab, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "tokenizer.json"))
	if err != nil {
		return nil, fmt.Errorf("convert: %w", err)
	}
	var tj tokenizerJSON
	if err := json.Unmarshal(raw, &tj); err != nil {
		return nil, fmt.Errorf("convert: tokenizer.json: %w", err)
	}
	var norm normalizerJSON
	if len(tj.Normalizer) > 0 && string(tj.Normalizer) != "null" {
		if err := json.Unmarshal(tj.Normalizer, &norm); err != nil {
			return nil, fmt.Errorf("convert: tokenizer.json: normalizer: %w", err)
		}
	}
	var pre normalizerJSON
	if len(tj.PreTokenizer) > 0 && string(tj.PreTokenizer) != "null" {
		if err := json.Unmarshal(tj.PreTokenizer, &pre); err != nil {
			return nil, fmt.Errorf("convert: tokenizer.json: pre_tokenizer: %w", err)
		}
	}
	spacePrefix := norm.prepends("▁")
	spm := tj.Model.Type == "BPE" && tj.Model.ByteFallback && (spacePrefix || norm.replaces(" ", "▁"))
	byteLevel := tj.Model.Type == "BPE" && !tj.Model.ByteFallback && pre.has("ByteLevel")
	switch {
	case spm:
	case byteLevel && arch.gguf == "gpt2":
	case byteLevel:
		return nil, fmt.Errorf("%w tokenizer: a byte-level BPE tokenizer is converted only for GPT2LMHeadModel (its pre-tokenizer for %s is not known)",
			ErrUnsupported, arch.hf)
	default:
		return nil, fmt.Errorf("%w tokenizer: only SentencePiece-style BPE (byte_fallback and a normalizer with Prepend(\"▁\") or Replace(\" \", \"▁\")) and GPT-2 byte-level BPE tokenizer.json files are converted; this one has model %q, byte_fallback %v",
			ErrUnsupported, tj.Model.Type, tj.Model.ByteFallback)
	}

	v := &vocab{model: "llama", bos: -1, eos: -1, unk: -1, pad: -1}
	if byteLevel {
		v.model, v.pre = "gpt2", "gpt-2"
	}
	if spm && !spacePrefix {
		f := false
		v.addSpacePrefix = &f
	}
	n := 0
	for _, id := range tj.Model.Vocab {
		if id < 0 {
			return nil, fmt.Errorf("convert: tokenizer.json: negative token id %d", id)
		}
		n = max(n, id+1)
	}
	for _, a := range tj.AddedTokens {
		if a.ID < 0 {
			return nil, fmt.Errorf("convert: tokenizer.json: negative token id %d", a.ID)
		}
		n = max(n, a.ID+1)
	}
	v.tokens = make([]string, n)
	v.scores = make([]float32, n)
	v.types = make([]int32, n)
	set := make([]bool, n)
	for tok, id := range tj.Model.Vocab {
		if set[id] {
			return nil, fmt.Errorf("convert: tokenizer.json: token id %d is used twice", id)
		}
		v.tokens[id], set[id] = tok, true
		v.types[id] = tokNormal
		if spm && byteTokenRE.MatchString(tok) {
			v.types[id] = tokByte
		}
	}
	for _, a := range tj.AddedTokens {
		if set[a.ID] && v.tokens[a.ID] != a.Content {
			return nil, fmt.Errorf("convert: tokenizer.json: added token %q reuses id %d of %q", a.Content, a.ID, v.tokens[a.ID])
		}
		v.tokens[a.ID], set[a.ID] = a.Content, true
		v.types[a.ID] = tokUserDefined
		if a.Special {
			v.types[a.ID] = tokControl
		}
	}
	for id := range n {
		if !set[id] {
			v.tokens[id], v.types[id] = fmt.Sprintf("[PAD%d]", id), tokUnused
		}
	}
	if spm && tj.Model.UnkToken != nil {
		if id, ok := tj.Model.Vocab[*tj.Model.UnkToken]; ok {
			v.types[id] = tokUnknown
			v.unk = id
		}
	}

	// Scores from the merge ranks: the earlier a merge, the higher the score
	// of the piece it produces; llama.cpp's SPM tokenizer merges the
	// highest-scoring pair first, so this reproduces the BPE merge order.
	// A byte-level BPE keeps the merges themselves instead.
	scored := make([]bool, n)
	for rank, m := range tj.Model.Merges {
		a, b, err := parseMerge(m)
		if err != nil {
			return nil, fmt.Errorf("convert: tokenizer.json: merge %d: %w", rank, err)
		}
		if byteLevel {
			if strings.Contains(a, " ") || strings.Contains(b, " ") {
				return nil, fmt.Errorf("convert: tokenizer.json: merge %d: piece with a space", rank)
			}
			v.merges = append(v.merges, a+" "+b)
			continue
		}
		id, ok := tj.Model.Vocab[a+b]
		if !ok || scored[id] {
			continue
		}
		scored[id] = true
		v.scores[id] = -float32(rank)
	}

	if byteLevel {
		v.scores = nil
	}
	if err := v.readSpecial(dir, cfg, spm); err != nil {
		return nil, err
	}
	if byteLevel && v.addBOS == nil {
		// GPT-2's tokenizer adds no BOS.
		f := false
		v.addBOS = &f
	}
	return v, nil
}

func parseMerge(raw json.RawMessage) (string, string, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		a, b, ok := strings.Cut(s, " ")
		if !ok {
			return "", "", fmt.Errorf("%q is not two pieces", s)
		}
		return a, b, nil
	}
	var l []string
	if err := json.Unmarshal(raw, &l); err != nil || len(l) != 2 {
		return "", "", fmt.Errorf("%s is not a pair of pieces", raw)
	}
	return l[0], l[1], nil
}

// tokenName decodes a special-token entry: a string or {"content": ...}.
func tokenName(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var o struct {
		Content string `json:"content"`
	}
	if json.Unmarshal(raw, &o) == nil {
		return o.Content
	}
	return ""
}

// readSpecial sets the special token ids, add_bos/add_eos and the chat
// template from tokenizer_config.json, special_tokens_map.json,
// chat_template.jinja and config.json, in that order of precedence.
// The unknown token is used by SentencePiece-style vocabularies only (spm).
func (v *vocab) readSpecial(dir string, cfg *hfConfig, spm bool) error {
	ids := map[string]int{}
	for id, t := range v.tokens {
		if _, dup := ids[t]; !dup {
			ids[t] = id
		}
	}
	var tc map[string]json.RawMessage
	if raw, err := os.ReadFile(filepath.Join(dir, "tokenizer_config.json")); err == nil {
		if err := json.Unmarshal(raw, &tc); err != nil {
			return fmt.Errorf("convert: tokenizer_config.json: %w", err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("convert: %w", err)
	}
	var sm map[string]json.RawMessage
	if raw, err := os.ReadFile(filepath.Join(dir, "special_tokens_map.json")); err == nil {
		if err := json.Unmarshal(raw, &sm); err != nil {
			return fmt.Errorf("convert: special_tokens_map.json: %w", err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("convert: %w", err)
	}

	lookup := func(key string) int {
		for _, src := range []map[string]json.RawMessage{tc, sm} {
			if raw, ok := src[key]; ok {
				if id, ok := ids[tokenName(raw)]; ok {
					return id
				}
			}
		}
		return -1
	}
	fallback := func(id int, raw json.RawMessage) int {
		if id >= 0 {
			return id
		}
		if n, ok := firstID(raw); ok && n >= 0 && n < len(v.tokens) {
			return n
		}
		return -1
	}
	v.bos = fallback(lookup("bos_token"), cfg.BOSTokenID)
	v.eos = fallback(lookup("eos_token"), cfg.EOSTokenID)
	v.pad = fallback(lookup("pad_token"), cfg.PadTokenID)
	if id := lookup("unk_token"); spm && id >= 0 {
		v.unk = id
		v.types[id] = tokUnknown
	}

	for key, dst := range map[string]**bool{"add_bos_token": &v.addBOS, "add_eos_token": &v.addEOS} {
		if raw, ok := tc[key]; ok {
			var b bool
			if json.Unmarshal(raw, &b) == nil {
				*dst = &b
			}
		}
	}

	if raw, ok := tc["chat_template"]; ok {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			v.chatTemplate = s
		} else {
			// A list of named templates: use "default".
			var named []struct {
				Name     string `json:"name"`
				Template string `json:"template"`
			}
			if json.Unmarshal(raw, &named) == nil {
				for _, t := range named {
					if t.Name == "default" {
						v.chatTemplate = t.Template
					}
				}
			}
		}
	}
	if v.chatTemplate == "" {
		if raw, err := os.ReadFile(filepath.Join(dir, "chat_template.jinja")); err == nil {
			v.chatTemplate = string(raw)
		}
	}
	return nil
}

// padTo extends the vocabulary to n tokens, as convert_hf_to_gguf.py does
// when config.json's vocab_size exceeds the tokenizer's.
func (v *vocab) padTo(n int) {
	for id := len(v.tokens); id < n; id++ {
		v.tokens = append(v.tokens, fmt.Sprintf("[PAD%d]", id))
		if v.scores != nil {
			v.scores = append(v.scores, 0)
		}
		v.types = append(v.types, tokUnused)
	}
}

func (v *vocab) write(w *gguf.Writer) {
	w.Set("tokenizer.ggml.model", gguf.String(v.model))
	if v.pre != "" {
		w.Set("tokenizer.ggml.pre", gguf.String(v.pre))
	}
	w.Set("tokenizer.ggml.tokens", gguf.Strings(v.tokens))
	if v.scores != nil {
		w.Set("tokenizer.ggml.scores", gguf.Float32s(v.scores))
	}
	w.Set("tokenizer.ggml.token_type", gguf.Int32s(v.types))
	if v.merges != nil {
		w.Set("tokenizer.ggml.merges", gguf.Strings(v.merges))
	}
	for _, s := range []struct {
		key string
		id  int
	}{
		{"tokenizer.ggml.bos_token_id", v.bos},
		{"tokenizer.ggml.eos_token_id", v.eos},
		{"tokenizer.ggml.unknown_token_id", v.unk},
		{"tokenizer.ggml.padding_token_id", v.pad},
	} {
		if s.id >= 0 {
			w.Set(s.key, gguf.Uint32(uint32(s.id)))
		}
	}
	if v.addBOS != nil {
		w.Set("tokenizer.ggml.add_bos_token", gguf.Bool(*v.addBOS))
	}
	if v.addEOS != nil {
		w.Set("tokenizer.ggml.add_eos_token", gguf.Bool(*v.addEOS))
	}
	if v.addSpacePrefix != nil {
		w.Set("tokenizer.ggml.add_space_prefix", gguf.Bool(*v.addSpacePrefix))
	}
	if v.chatTemplate != "" {
		w.Set("tokenizer.chat_template", gguf.String(v.chatTemplate))
	}
}
