package convert

import (
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/llm-go/llm/loader/gguf"
)

// A Unigram tokenizer.json (XLM-RoBERTa's: bge-m3, multilingual-e5, the
// bge-reranker-v2-m3 cross-encoder) is written as llama.cpp's "t5" (UGM)
// vocabulary, as convert_hf_to_gguf.py writes XLM-RoBERTa's: the pieces in
// id order with their log probabilities as scores, the special added
// tokens as control tokens (unk_id as the unknown token), the SentencePiece
// normalizer's precompiled_charsmap, the prefix space of the Metaspace
// pre-tokenizer and the merging of whitespace runs. llama.cpp then
// tokenizes as SentencePiece does: the charsmap, the whitespace handling,
// and the best segmentation by the pieces' scores.
//
// The normalizers transformers' SentencePiece converters write are
// accepted: Precompiled alone, or followed by Replace(" {2,}", " ") (or by
// Strip(right) and Replace(" {2,}", "▁")), whose merging of whitespace runs
// is llama.cpp's remove_extra_whitespaces. Two differences from
// transformers are left, as with convert_hf_to_gguf.py's files: with
// merging, llama.cpp drops trailing whitespace (the first form keeps one
// space, which transformers' Metaspace makes a "▁" token: a text ending in
// a space or a newline has one token fewer), and without it (Precompiled
// alone, older files) a text's leading space is one "▁" more than
// transformers makes. Any other step is refused, as are a Metaspace that
// prepends no "▁" with whitespace merging (llama.cpp then prepends one
// anyway) and a vocabulary with no unknown token (llama.cpp's UGM would
// take id 2 for it).

// unigramJSON holds what the converter reads of a Unigram tokenizer.json.
type unigramJSON struct {
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	AddedTokens   []struct {
		ID      int    `json:"id"`
		Content string `json:"content"`
		Special bool   `json:"special"`
	} `json:"added_tokens"`
	Model struct {
		Type         string              `json:"type"`
		UnkID        *int                `json:"unk_id"`
		Vocab        [][]json.RawMessage `json:"vocab"`
		ByteFallback bool                `json:"byte_fallback"`
	} `json:"model"`
}

// unigramStep is one normalizer or pre-tokenizer step of a Unigram
// tokenizer.json.
type unigramStep struct {
	Type         string        `json:"type"`
	Charsmap     *string       `json:"precompiled_charsmap"`
	Normalizers  []unigramStep `json:"normalizers"`
	Left         *bool         `json:"left"`
	Right        *bool         `json:"right"`
	Content      string        `json:"content"`
	Replacement  string        `json:"replacement"`
	AddPrefix    *bool         `json:"add_prefix_space"`
	PrependSheme *string       `json:"prepend_scheme"`
	Pattern      struct {
		Regex  *string `json:"Regex"`
		String *string `json:"String"`
	} `json:"pattern"`
}

// readUnigram reads a Unigram tokenizer.json's vocabulary and
// normalization into v.
func readUnigram(raw []byte, v *vocab) (json.RawMessage, error) {
	var uj unigramJSON
	if err := json.Unmarshal(raw, &uj); err != nil {
		return nil, fmt.Errorf("convert: tokenizer.json: %w", err)
	}
	if uj.Model.ByteFallback {
		return nil, fmt.Errorf("%w tokenizer: a Unigram model with byte_fallback (llama.cpp's UGM has none)", ErrUnsupported)
	}
	n := len(uj.Model.Vocab)
	for _, a := range uj.AddedTokens {
		if a.ID < 0 {
			return nil, fmt.Errorf("convert: tokenizer.json: negative token id %d", a.ID)
		}
		n = max(n, a.ID+1)
	}
	v.model, v.pre = kindUGM, "default"
	v.tokens, v.scores, v.types = make([]string, n), make([]float32, n), make([]int32, n)
	for id, e := range uj.Model.Vocab {
		var piece string
		var score float64
		if len(e) != 2 || json.Unmarshal(e[0], &piece) != nil || json.Unmarshal(e[1], &score) != nil {
			return nil, fmt.Errorf("convert: tokenizer.json: Unigram vocab entry %d is not [piece, score]", id)
		}
		v.tokens[id], v.scores[id], v.types[id] = piece, float32(score), tokNormal
	}
	for id := len(uj.Model.Vocab); id < n; id++ {
		// A score no segmentation would choose, as convert_hf_to_gguf.py
		// gives them (llama.cpp's UGM matches unused tokens in the text).
		v.tokens[id], v.scores[id], v.types[id] = fmt.Sprintf("[PAD%d]", id), -10000, tokUnused
	}
	for _, a := range uj.AddedTokens {
		if a.ID < len(uj.Model.Vocab) && v.tokens[a.ID] != a.Content {
			return nil, fmt.Errorf("convert: tokenizer.json: added token %q reuses id %d of %q", a.Content, a.ID, v.tokens[a.ID])
		}
		v.tokens[a.ID] = a.Content
		v.types[a.ID] = tokUserDefined
		if a.Special {
			v.types[a.ID] = tokControl
		}
	}
	u := uj.Model.UnkID
	switch {
	case u == nil:
		return nil, fmt.Errorf("%w tokenizer: a Unigram model without unk_id (llama.cpp's UGM would take token 2 as the unknown token)", ErrUnsupported)
	case *u < 0 || *u >= n:
		return nil, fmt.Errorf("%w: tokenizer.json: unk_id %d is outside the %d tokens", ErrMismatch, *u, n)
	}
	v.unk, v.types[*u] = *u, tokUnknown

	var norm unigramStep
	if !isNull(uj.Normalizer) {
		if err := json.Unmarshal(uj.Normalizer, &norm); err != nil {
			return nil, fmt.Errorf("convert: tokenizer.json: normalizer: %w", err)
		}
	}
	steps := []unigramStep{norm}
	if norm.Type == "Sequence" {
		steps = norm.Normalizers
	} else if isNull(uj.Normalizer) {
		steps = nil
	}
	var mergeWS bool
	for i, s := range steps {
		switch {
		case s.Type == "Precompiled" && i == 0:
			if s.Charsmap == nil || *s.Charsmap == "" {
				continue
			}
			cm, err := base64.StdEncoding.DecodeString(*s.Charsmap)
			if err != nil {
				return nil, fmt.Errorf("%w: tokenizer.json: precompiled_charsmap: %v", ErrMismatch, err)
			}
			if err := gguf.CheckCharsmap(cm); err != nil {
				return nil, fmt.Errorf("%w: tokenizer.json: precompiled_charsmap: %v", ErrMismatch, err)
			}
			v.charsmap = cm
		case s.Type == "Strip" && s.Left != nil && !*s.Left && s.Right != nil && *s.Right:
		case s.Type == "Replace" && s.Pattern.Regex != nil && *s.Pattern.Regex == " {2,}" && (s.Content == " " || s.Content == "▁"):
			mergeWS = true
		default:
			return nil, fmt.Errorf("%w tokenizer: Unigram normalizer step %d %q: llama.cpp's UGM applies the precompiled charsmap and merges whitespace runs only", ErrUnsupported, i, s.Type)
		}
	}
	v.removeExtraWS = &mergeWS

	var pre unigramStep
	if err := json.Unmarshal(uj.PreTokenizer, &pre); err != nil || pre.Type != "Metaspace" || pre.Replacement != "▁" {
		return nil, fmt.Errorf("%w tokenizer: a Unigram tokenizer's pre_tokenizer must be Metaspace with \"▁\" (SentencePiece's), as llama.cpp's UGM splits", ErrUnsupported)
	}
	prefix := pre.AddPrefix == nil || *pre.AddPrefix
	if pre.PrependSheme != nil {
		switch *pre.PrependSheme {
		case "always", "first":
			prefix = true
		case "never":
			prefix = false
		default:
			return nil, fmt.Errorf("%w tokenizer: Metaspace prepend_scheme %q", ErrUnsupported, *pre.PrependSheme)
		}
	}
	if !prefix && mergeWS {
		return nil, fmt.Errorf("%w tokenizer: a Metaspace that prepends no \"▁\" with whitespace runs merged (llama.cpp then prepends one)", ErrUnsupported)
	}
	v.addSpacePrefix = &prefix
	return uj.PostProcessor, nil
}
