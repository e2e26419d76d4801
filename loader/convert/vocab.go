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

// Vocabulary kinds (tokenizer.ggml.model).
const (
	kindSPM = "llama" // SentencePiece-style BPE with byte fallback
	kindBPE = "gpt2"  // byte-level BPE
	kindWPM = "bert"  // WordPiece
	kindUGM = "t5"    // SentencePiece's Unigram (unigram.go)
)

// vocab is the tokenizer metadata written to the GGUF file.
type vocab struct {
	model  string // tokenizer.ggml.model: kindSPM, kindBPE or kindWPM
	pre    string // tokenizer.ggml.pre, "" for none
	tokens []string
	scores []float32 // SentencePiece-style only
	types  []int32
	merges []string // byte-level BPE only

	bos, eos, unk, pad int // -1 when unknown
	sep, cls, mask     int // -1 when unknown
	eot, eom           int // end of turn and of message (GLM-4.5); -1 when unknown
	addBOS, addEOS     *bool
	// addSEP, if not nil, is tokenizer.ggml.add_sep_token: a pair is
	// joined by the EOS and then the SEP (XLM-RoBERTa's </s> </s>).
	addSEP       *bool
	chatTemplate string
	// addSpacePrefix, if not nil, is tokenizer.ggml.add_space_prefix:
	// false for a SentencePiece-style vocabulary whose normalizer
	// replaces spaces with "▁" but prepends none (Gemma).
	addSpacePrefix *bool
	// typeCount, if > 0, is tokenizer.ggml.token_type_count (BERT's
	// type_vocab_size).
	typeCount int
	// A Unigram vocabulary's precompiled charsmap (nil: none) and, when
	// not nil, whether whitespace runs are merged.
	charsmap      []byte
	removeExtraWS *bool
}

type tokenizerJSON struct {
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	AddedTokens   []struct {
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
		// WordPiece's continuation prefix ("##").
		ContinuingSubwordPrefix *string `json:"continuing_subword_prefix"`
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

// prepends reports whether n or one of its children prepends s.
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

// readVocab reads tokenizer.json (or, without it, tokenizer.model: spm.go),
// tokenizer_config.json, special_tokens_map.json and chat_template.jinja.
func readVocab(dir string, cfg *hfConfig, arch archSpec) (*vocab, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "tokenizer.json"))
	if errors.Is(err, fs.ErrNotExist) && hasFile(dir, "tokenizer.model") {
		return readVocabSPM(dir, cfg, arch)
	}
	if err != nil {
		return nil, fmt.Errorf("convert: %w", err)
	}
	var probe struct {
		Model struct {
			Type string `json:"type"`
		} `json:"model"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		return nil, fmt.Errorf("convert: tokenizer.json: %w", err)
	}
	if probe.Model.Type == "Unigram" {
		if arch.gguf != "bert" && arch.gguf != "jina-bert-v3" {
			return nil, fmt.Errorf("%w tokenizer: a Unigram tokenizer.json is converted for BERT and XLM-RoBERTa encoders only, not for %s", ErrUnsupported, arch.hf)
		}
		v := &vocab{bos: -1, eos: -1, unk: -1, pad: -1, sep: -1, cls: -1, mask: -1, eot: -1, eom: -1}
		post, err := readUnigram(raw, v)
		if err != nil {
			return nil, err
		}
		if err := v.readSpecial(dir, cfg, post); err != nil {
			return nil, err
		}
		return v, nil
	}
	var tj tokenizerJSON
	if err := json.Unmarshal(raw, &tj); err != nil {
		return nil, fmt.Errorf("convert: tokenizer.json: %w", err)
	}
	var norm normalizerJSON
	if !isNull(tj.Normalizer) {
		if err := json.Unmarshal(tj.Normalizer, &norm); err != nil {
			return nil, fmt.Errorf("convert: tokenizer.json: normalizer: %w", err)
		}
	}
	var pre normalizerJSON
	if !isNull(tj.PreTokenizer) {
		if err := json.Unmarshal(tj.PreTokenizer, &pre); err != nil {
			return nil, fmt.Errorf("convert: tokenizer.json: pre_tokenizer: %w", err)
		}
	}
	spacePrefix := norm.prepends("▁")
	v := &vocab{bos: -1, eos: -1, unk: -1, pad: -1, sep: -1, cls: -1, mask: -1, eot: -1, eom: -1}
	switch {
	case (arch.roberta || arch.gguf == "jina-bert-v2") && tj.Model.Type == "BPE" && !tj.Model.ByteFallback && pre.has("ByteLevel"):
		// RoBERTa's byte-level BPE: GPT-2's pre-tokenizer, which llama.cpp
		// calls roberta-bpe when a pair is joined by </s> </s>, and
		// jina-v2-code for jina-bert-v2 (<mask> taking the space before it,
		// as RoBERTa's does). The German and Spanish models' tokenizers,
		// if they are plain ByteLevel, get that name too: llama.cpp's
		// jina-v2-de and -es differ from it only in the default pair
		// separator, and the post-processor's is written (see addSEP).
		v.model = kindBPE
		if v.pre, err = detectPre(tj.PreTokenizer, tj.Normalizer); err != nil {
			return nil, err
		}
		if v.pre != "gpt-2" {
			return nil, fmt.Errorf("%w tokenizer: %s with the %s pre-tokenizer: a RoBERTa-style byte-level BPE's is GPT-2's", ErrUnsupported, arch.hf, v.pre)
		}
		v.pre = "roberta-bpe"
		if arch.gguf == "jina-bert-v2" {
			v.pre = "jina-v2-code"
		}
	case arch.roberta:
		return nil, fmt.Errorf("%w tokenizer: %s is converted with a Unigram (XLM-RoBERTa) or byte-level BPE (RoBERTa) tokenizer.json; this one has model %q", ErrUnsupported, arch.hf, tj.Model.Type)
	case tj.Model.Type == "WordPiece" && arch.encoder():
		if err := checkWordPiece(tj); err != nil {
			return nil, err
		}
		v.model = kindWPM
	case tj.Model.Type == "WordPiece":
		return nil, fmt.Errorf("%w tokenizer: a WordPiece tokenizer is converted only for BERT, not for %s", ErrUnsupported, arch.hf)
	case arch.encoder():
		return nil, fmt.Errorf("%w tokenizer: %s is converted only with a WordPiece tokenizer.json (llama.cpp's bert vocabulary); this one has model %q",
			ErrUnsupported, arch.hf, tj.Model.Type)
	case tj.Model.Type == "BPE" && tj.Model.ByteFallback && (spacePrefix || norm.replaces(" ", "▁")):
		v.model = kindSPM
		if !spacePrefix {
			f := false
			v.addSpacePrefix = &f
		}
	case tj.Model.Type == "BPE" && !tj.Model.ByteFallback && pre.has("ByteLevel"):
		v.model = kindBPE
		if v.pre, err = detectPre(tj.PreTokenizer, tj.Normalizer); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("%w tokenizer: only SentencePiece-style BPE (byte_fallback and a normalizer with Prepend(\"▁\") or Replace(\" \", \"▁\")), byte-level BPE (a ByteLevel pre-tokenizer) and, for BERT, WordPiece tokenizer.json files are converted; this one has model %q, byte_fallback %v",
			ErrUnsupported, tj.Model.Type, tj.Model.ByteFallback)
	}
	spm := v.model == kindSPM

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
		switch {
		case a.Special, !spm && looksSpecial(a.Content):
			v.types[a.ID] = tokControl
		case spm:
			v.types[a.ID] = tokUserDefined
		default:
			// As convert_hf_to_gguf.py's get_vocab_base: llama.cpp
			// matches user-defined tokens in the raw text.
			v.tokens[a.ID] = strings.ReplaceAll(a.Content, "▁", " ")
			v.types[a.ID] = tokUserDefined
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

	switch v.model {
	case kindSPM:
		// Scores from the merge ranks: the earlier a merge, the higher
		// the score of the piece it produces; llama.cpp's SPM tokenizer
		// merges the highest-scoring pair first, so this reproduces the
		// BPE merge order.
		v.scores = make([]float32, n)
		scored := make([]bool, n)
		for rank, m := range tj.Model.Merges {
			a, b, _, err := parseMerge(m)
			if err != nil {
				return nil, fmt.Errorf("convert: tokenizer.json: merge %d: %w", rank, err)
			}
			id, ok := tj.Model.Vocab[a+b]
			if !ok || scored[id] {
				continue
			}
			scored[id] = true
			v.scores[id] = -float32(rank)
		}
	case kindBPE:
		// A byte-level BPE keeps the merges themselves.
		v.merges = make([]string, 0, len(tj.Model.Merges))
		for rank, m := range tj.Model.Merges {
			a, b, pair, err := parseMerge(m)
			if err != nil {
				return nil, fmt.Errorf("convert: tokenizer.json: merge %d: %w", rank, err)
			}
			if pair {
				// As gguf-py: a space inside a piece of the pair format
				// is written as its byte-level form U+0120.
				a, b = strings.ReplaceAll(a, " ", "\u0120"), strings.ReplaceAll(b, " ", "\u0120")
			}
			if a == "" || b == "" || strings.Contains(a, " ") || strings.Contains(b, " ") {
				return nil, fmt.Errorf("convert: tokenizer.json: merge %d: %q and %q are not two pieces without spaces", rank, a, b)
			}
			v.merges = append(v.merges, a+" "+b)
		}
	}

	if err := v.readSpecial(dir, cfg, tj.PostProcessor); err != nil {
		return nil, err
	}
	if arch.glm4moe || arch.glm4 {
		glmVocab(v)
	}
	if arch.cohere && v.pre == "starcoder" {
		v.pre = "command-r" // the same regex; llama.cpp keeps spaces as they are
	}
	if v.model == kindBPE && v.addBOS == nil {
		// GPT-2's tokenizer adds no BOS.
		f := false
		v.addBOS = &f
	}
	if v.model == kindWPM {
		v.phantomSpaces()
	}
	return v, nil
}

// looksSpecial reports whether an added token that tokenizer.json does not
// mark special ought to be a control token anyway, as
// convert_hf_to_gguf.py's does_token_look_special decides (DeepSeek's
// <｜...｜> and <pad>, <|...|>, Gemma's <unusedN>, <mask>, <2mass>,
// [@BOS@]).
func looksSpecial(t string) bool {
	switch t {
	case "<pad>", "<mask>", "<2mass>", "[@BOS@]":
		return true
	}
	return (strings.HasPrefix(t, "<|") && strings.HasSuffix(t, "|>")) ||
		(strings.HasPrefix(t, "<｜") && strings.HasSuffix(t, "｜>")) ||
		(strings.HasPrefix(t, "<unused") && strings.HasSuffix(t, ">"))
}

// parseMerge decodes a merge: the string "a b" or (tokenizers 0.20 and
// later) the pair ["a", "b"], which reports pair true.
func parseMerge(raw json.RawMessage) (a, b string, pair bool, err error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		a, b, ok := strings.Cut(s, " ")
		if !ok {
			return "", "", false, fmt.Errorf("%q is not two pieces", s)
		}
		return a, b, false, nil
	}
	var l []string
	if err := json.Unmarshal(raw, &l); err != nil || len(l) != 2 {
		return "", "", false, fmt.Errorf("%s is not a pair of pieces", raw)
	}
	return l[0], l[1], true, nil
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
// chat_template.jinja, config.json and tokenizer.json's post_processor, as
// gguf-py's SpecialVocab does: a token named in tokenizer_config.json (or
// special_tokens_map.json) first, else config.json's id; a missing BOS is
// the CLS token and a missing EOS the SEP token (BERT); add_bos/add_eos
// from the post-processor's template, overridden by tokenizer_config.json.
// The unknown token becomes a token of type unknown in a
// SentencePiece-style vocabulary only.
func (v *vocab) readSpecial(dir string, cfg *hfConfig, postProc json.RawMessage) error {
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

	// name returns the token named for key ("bos_token", ...), "" if none.
	name := func(key string) string {
		for _, src := range []map[string]json.RawMessage{tc, sm} {
			if raw, ok := src[key]; ok {
				if n := tokenName(raw); n != "" {
					if _, ok := ids[n]; ok {
						return n
					}
				}
			}
		}
		return ""
	}
	id := func(name string) int {
		if i, ok := ids[name]; ok && name != "" {
			return i
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
	bosName, eosName, clsName, sepName := name("bos_token"), name("eos_token"), name("cls_token"), name("sep_token")
	if bosName == "" {
		bosName = clsName
	}
	if eosName == "" {
		eosName = sepName
	}
	if last := postProcessorLast(postProc); last != "" && eosName != "" && last != eosName && id(last) >= 0 {
		// The post-processor appends a token other than the EOS
		// (Qwen3-Embedding's <|endoftext|> after each text, its EOS
		// <|im_end|>): as gguf-py, that token becomes the EOS, added, and
		// the named EOS the end of turn.
		v.eot, eosName = id(eosName), last
	}
	v.bos = fallback(id(bosName), cfg.BOSTokenID)
	v.eos = fallback(id(eosName), cfg.EOSTokenID)
	v.pad = fallback(id(name("pad_token")), cfg.PadTokenID)
	v.cls, v.sep, v.mask = id(clsName), id(sepName), id(name("mask_token"))
	if u := id(name("unk_token")); u >= 0 {
		v.unk = u
		if v.model == kindSPM || v.model == kindUGM {
			v.types[u] = tokUnknown
		}
	}

	v.addBOS, v.addEOS = postProcessorAdds(postProc, bosName, clsName, eosName)
	if sep := pairSeparators(postProc) == 2; sep || v.pre == "jina-v2-code" && !isNull(postProc) {
		// As gguf-py: the pair template joins the sequences with two
		// special tokens (XLM-RoBERTa's "</s> </s>"), llama.cpp's EOS then
		// SEP. jina-v2-code adds the SEP unless told not to by a
		// post-processor that joins them otherwise.
		v.addSEP = &sep
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
	// chat_template.jinja wins over tokenizer_config.json's, as in
	// transformers; a processor's chat_template.json (vision-language
	// repositories) comes last.
	if raw, err := os.ReadFile(filepath.Join(dir, "chat_template.jinja")); err == nil {
		v.chatTemplate = string(raw)
	}
	if v.chatTemplate == "" {
		if raw, err := os.ReadFile(filepath.Join(dir, "chat_template.json")); err == nil {
			var pc struct {
				ChatTemplate string `json:"chat_template"`
			}
			if err := json.Unmarshal(raw, &pc); err != nil {
				return fmt.Errorf("convert: chat_template.json: %w", err)
			}
			v.chatTemplate = pc.ChatTemplate
		}
	}
	return nil
}

// postProcessorAdds reads whether tokenizer.json's post_processor adds
// a BOS and an EOS, as gguf-py does: RobertaProcessing adds both; a
// TemplateProcessing whose single-sequence template starts with the BOS
// (or CLS) token adds BOS, one that ends with the EOS token adds EOS (with
// no named BOS or EOS, any special token there counts). nil: not said.
func postProcessorAdds(raw json.RawMessage, bos, cls, eos string) (addBOS, addEOS *bool) {
	if isNull(raw) {
		return nil, nil
	}
	type special struct {
		SpecialToken *struct {
			ID string `json:"id"`
		} `json:"SpecialToken"`
	}
	type processor struct {
		Type       string      `json:"type"`
		Processors []processor `json:"processors"`
		Single     []special   `json:"single"`
	}
	var p processor
	if json.Unmarshal(raw, &p) != nil {
		return nil, nil
	}
	procs := []processor{p}
	if p.Type == "Sequence" {
		procs = p.Processors
	}
	yes := func(b bool) *bool { return &b }
	for _, q := range procs {
		switch q.Type {
		case "RobertaProcessing":
			addBOS, addEOS = yes(true), yes(true)
		case "TemplateProcessing":
			if len(q.Single) < 2 {
				continue
			}
			if f := q.Single[0].SpecialToken; f != nil {
				addBOS = yes(bos == "" || f.ID == bos || f.ID == cls)
			}
			if l := q.Single[len(q.Single)-1].SpecialToken; l != nil {
				addEOS = yes(eos == "" || l.ID == eos)
			}
		}
	}
	return addBOS, addEOS
}

// pairSeparators returns how many special tokens a TemplateProcessing
// post-processor (alone or in a Sequence) puts between the two sequences of
// a pair (0: none, or no pair template).
func pairSeparators(raw json.RawMessage) int {
	var p struct {
		Type       string            `json:"type"`
		Processors []json.RawMessage `json:"processors"`
		Pair       []struct {
			SpecialToken *struct{} `json:"SpecialToken"`
			Sequence     *struct {
				ID string `json:"id"`
			} `json:"Sequence"`
		} `json:"pair"`
	}
	if isNull(raw) || json.Unmarshal(raw, &p) != nil {
		return 0
	}
	switch p.Type {
	case "Sequence":
		for _, q := range p.Processors {
			if n := pairSeparators(q); n > 0 {
				return n
			}
		}
		return 0
	case "RobertaProcessing": // <s> A </s> </s> B </s>
		return 2
	}
	n, inA := 0, false
	for _, e := range p.Pair {
		switch {
		case e.Sequence != nil && e.Sequence.ID == "A":
			inA = true
		case e.Sequence != nil && e.Sequence.ID == "B":
			if inA {
				return n
			}
			return 0
		case e.SpecialToken != nil && inA:
			n++
		}
	}
	return 0
}

// postProcessorLast returns the special token a TemplateProcessing
// post-processor (alone or in a Sequence) appends to a single sequence, ""
// when none.
func postProcessorLast(raw json.RawMessage) string {
	var p struct {
		Type       string            `json:"type"`
		Processors []json.RawMessage `json:"processors"`
		Single     []struct {
			SpecialToken *struct {
				ID string `json:"id"`
			} `json:"SpecialToken"`
		} `json:"single"`
	}
	if isNull(raw) || json.Unmarshal(raw, &p) != nil {
		return ""
	}
	if p.Type == "Sequence" {
		for _, q := range p.Processors {
			if last := postProcessorLast(q); last != "" {
				return last
			}
		}
		return ""
	}
	if p.Type != "TemplateProcessing" || len(p.Single) < 2 {
		return ""
	}
	if l := p.Single[len(p.Single)-1].SpecialToken; l != nil {
		return l.ID
	}
	return ""
}

// phantomSpaces rewrites a WordPiece vocabulary as llama.cpp's bert
// tokenizer reads it (convert_hf_to_gguf.py's BertModel.set_vocab): a
// word-initial piece gets the phantom space "▁", a continuation loses its
// "##"; control tokens are kept.
func (v *vocab) phantomSpaces() {
	for i, t := range v.tokens {
		switch {
		case v.types[i] == tokControl:
		case strings.HasPrefix(t, "##"):
			v.tokens[i] = t[2:]
		default:
			v.tokens[i] = "▁" + t
		}
	}
}

// checkUnique checks that no two tokens have the same text as llama.cpp
// reads it (gguf.DuplicateToken): llama.cpp aborts loading such a
// vocabulary.
func (v *vocab) checkUnique() error {
	if i, j, t, dup := gguf.DuplicateToken(v.tokens); dup {
		return fmt.Errorf("convert: tokenizer: token %d %q has the text of token %d (llama.cpp aborts on duplicate tokens)", i, t, j)
	}
	return nil
}

// padScore is the score of a filler token, as convert_hf_to_gguf.py
// writes it.
const padScore = -1000

// padTo extends the vocabulary to n tokens, as convert_hf_to_gguf.py does
// when config.json's vocab_size exceeds the tokenizer's.
func (v *vocab) padTo(n int) {
	for id := len(v.tokens); id < n; id++ {
		v.tokens = append(v.tokens, fmt.Sprintf("[PAD%d]", id))
		if v.scores != nil {
			v.scores = append(v.scores, padScore)
		}
		v.types = append(v.types, tokUnused)
	}
}

// write sets the tokenizer.* keys.
func (v *vocab) write(w *gguf.Writer) {
	w.Set("tokenizer.ggml.model", gguf.String(v.model))
	if v.typeCount > 0 {
		w.Set("tokenizer.ggml.token_type_count", gguf.Uint32(uint32(v.typeCount)))
	}
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
		{"tokenizer.ggml.seperator_token_id", v.sep}, // llama.cpp's spelling
		{"tokenizer.ggml.cls_token_id", v.cls},
		{"tokenizer.ggml.mask_token_id", v.mask},
		{"tokenizer.ggml.eot_token_id", v.eot},
		{"tokenizer.ggml.eom_token_id", v.eom},
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
	if v.addSEP != nil {
		w.Set("tokenizer.ggml.add_sep_token", gguf.Bool(*v.addSEP))
	}
	if v.addSpacePrefix != nil {
		w.Set("tokenizer.ggml.add_space_prefix", gguf.Bool(*v.addSpacePrefix))
	}
	if v.removeExtraWS != nil {
		w.Set("tokenizer.ggml.remove_extra_whitespaces", gguf.Bool(*v.removeExtraWS))
	}
	if v.charsmap != nil {
		w.Set("tokenizer.ggml.precompiled_charsmap", gguf.Uint8s(v.charsmap))
	}
	if v.chatTemplate != "" {
		w.Set("tokenizer.chat_template", gguf.String(v.chatTemplate))
	}
}

// hasFile reports whether dir has a file called name.
func hasFile(dir, name string) bool {
	fi, err := os.Stat(filepath.Join(dir, name))
	return err == nil && fi.Mode().IsRegular()
}
