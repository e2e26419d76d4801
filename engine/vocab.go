package engine

/*
#include "llama_api.h"
*/
import "C"

import (
	"fmt"
	"math"
	"unsafe"
)

// SpecialTokens are a model's special token ids; NoToken where the model
// has none.
type SpecialTokens struct {
	BOS, EOS, EOT, SEP, NL, PAD Token
	// FIMPre, FIMSuf and FIMMid frame a fill-in-the-middle prompt: prefix,
	// suffix, then the middle the model writes.
	FIMPre, FIMSuf, FIMMid Token
	AddBOS                 bool // tokenizing with addSpecial prepends BOS
	AddEOS                 bool // tokenizing with addSpecial appends EOS
	AddSEP                 bool // tokenizing with addSpecial appends SEP (BERT); a pair is joined with it
}

func (m *Model) readSpecialTokens() SpecialTokens {
	v := m.vocab
	return SpecialTokens{
		BOS:    Token(C.llama_vocab_bos(v)),
		EOS:    Token(C.llama_vocab_eos(v)),
		EOT:    Token(C.llama_vocab_eot(v)),
		SEP:    Token(C.llama_vocab_sep(v)),
		NL:     Token(C.llama_vocab_nl(v)),
		PAD:    Token(C.llama_vocab_pad(v)),
		FIMPre: Token(C.llama_vocab_fim_pre(v)),
		FIMSuf: Token(C.llama_vocab_fim_suf(v)),
		FIMMid: Token(C.llama_vocab_fim_mid(v)),
		AddBOS: bool(C.llama_vocab_get_add_bos(v)),
		AddEOS: bool(C.llama_vocab_get_add_eos(v)),
		AddSEP: bool(C.llama_vocab_get_add_sep(v)),
	}
}

// SpecialTokens returns the model's special tokens.
func (m *Model) SpecialTokens() SpecialTokens { return m.tokens }

// VocabSize returns the number of tokens in the vocabulary.
func (m *Model) VocabSize() int { return int(m.nVocab) }

// checkToken reports whether t is a token id of the vocabulary. llama.cpp
// indexes its tables with token ids unchecked (or throws through its C API,
// which aborts the process), so every id is checked here first.
func (m *Model) checkToken(t Token) error {
	if t < 0 || int32(t) >= m.nVocab {
		return fmt.Errorf("engine: token %d outside the vocabulary [0, %d): %w", t, m.nVocab, ErrInvalidArgument)
	}
	return nil
}

// IsEOG reports whether t ends generation (end of sequence, end of turn,
// and the model's other end-of-generation tokens).
func (m *Model) IsEOG(t Token) bool {
	if t < 0 || int32(t) >= m.nVocab || m.acquire() != nil {
		return false
	}
	defer m.mu.RUnlock()
	return bool(C.llama_vocab_is_eog(m.vocab, C.llama_token(t)))
}

// EOGTokens returns every end-of-generation token of the vocabulary.
func (m *Model) EOGTokens() []Token {
	m.eogOnce.Do(func() {
		if m.acquire() != nil {
			return
		}
		defer m.mu.RUnlock()
		for t := int32(0); t < m.nVocab; t++ {
			if C.llama_vocab_is_eog(m.vocab, C.llama_token(t)) {
				m.eog = append(m.eog, Token(t))
			}
		}
	})
	return append([]Token(nil), m.eog...)
}

// TokenText returns the vocabulary entry of t as stored (for SentencePiece
// vocabularies with "▁" for spaces, for byte-level BPE in GPT-2's byte
// alphabet). Use TokenToPiece for the text a token decodes to.
func (m *Model) TokenText(t Token) (string, error) {
	if err := m.checkToken(t); err != nil {
		return "", err
	}
	if err := m.acquire(); err != nil {
		return "", err
	}
	defer m.mu.RUnlock()
	return C.GoString(C.llama_vocab_get_text(m.vocab, C.llama_token(t))), nil
}

// FIMPrompt tokenizes a fill-in-the-middle prompt, the code before and
// after the cursor, as llama-server's /infill frames it: [BOS] FIM-prefix
// prefix FIM-suffix suffix FIM-middle, the texts without special tokens.
// The model then writes the middle. A model without the three FIM tokens
// gives ErrNoFIM.
func (m *Model) FIMPrompt(prefix, suffix string) ([]Token, error) {
	sp := m.SpecialTokens()
	if sp.FIMPre == NoToken || sp.FIMSuf == NoToken || sp.FIMMid == NoToken {
		return nil, ErrNoFIM
	}
	pre, err := m.Tokenize(prefix, false, false)
	if err != nil {
		return nil, err
	}
	suf, err := m.Tokenize(suffix, false, false)
	if err != nil {
		return nil, err
	}
	ids := make([]Token, 0, len(pre)+len(suf)+4)
	if sp.AddBOS && sp.BOS != NoToken {
		ids = append(ids, sp.BOS)
	}
	ids = append(append(append(ids, sp.FIMPre), pre...), sp.FIMSuf)
	return append(append(ids, suf...), sp.FIMMid), nil
}

// emptyText gives llama_tokenize a valid pointer for the empty string.
var emptyText byte

// Tokenize converts text to token ids. addSpecial adds BOS/EOS as the model
// asks (SpecialTokens.AddBOS/AddEOS); parseSpecial turns the text of special
// tokens such as "<|im_start|>" into those tokens instead of plain text.
func (m *Model) Tokenize(text string, addSpecial, parseSpecial bool) ([]Token, error) {
	if len(text) > math.MaxInt32-16 {
		return nil, fmt.Errorf("engine: tokenize: text of %d bytes is too long: %w", len(text), ErrInvalidArgument)
	}
	if err := m.acquire(); err != nil {
		return nil, err
	}
	defer m.mu.RUnlock()

	// Go memory without Go pointers may be passed to C for the call.
	ptr := (*C.char)(unsafe.Pointer(&emptyText))
	if len(text) > 0 {
		ptr = (*C.char)(unsafe.Pointer(unsafe.StringData(text)))
	}
	out := make([]Token, len(text)+4)
	for range 2 {
		var outPtr *C.llama_token
		if len(out) > 0 {
			outPtr = (*C.llama_token)(unsafe.Pointer(&out[0]))
		}
		n := int32(C.llama_tokenize(m.vocab, ptr, C.int32_t(len(text)), outPtr, C.int32_t(len(out)),
			C.bool(addSpecial), C.bool(parseSpecial)))
		switch {
		case n == math.MinInt32:
			return nil, fmt.Errorf("engine: tokenize: result overflows int32: %w", ErrInvalidArgument)
		case n >= 0:
			return out[:n], nil
		}
		out = make([]Token, -n) // the buffer was too small: -n tokens are needed
	}
	return nil, fmt.Errorf("engine: tokenize: llama.cpp kept asking for a larger buffer: %w", ErrInvalidArgument)
}

// TokenToPiece returns the bytes token t decodes to. With special, control
// tokens such as "</s>" are rendered; without, they decode to nothing. A piece
// may be part of a UTF-8 character; see Detokenizer for streaming text.
func (m *Model) TokenToPiece(t Token, special bool) ([]byte, error) {
	return m.appendPiece(nil, t, special)
}

func (m *Model) appendPiece(dst []byte, t Token, special bool) ([]byte, error) {
	if err := m.checkToken(t); err != nil {
		return dst, err
	}
	if err := m.acquire(); err != nil {
		return dst, err
	}
	defer m.mu.RUnlock()
	var stack [64]byte
	buf := stack[:]
	for range 2 {
		n := int32(C.llama_token_to_piece(m.vocab, C.llama_token(t), (*C.char)(unsafe.Pointer(&buf[0])),
			C.int32_t(len(buf)), 0, C.bool(special)))
		if n >= 0 {
			return append(dst, buf[:n]...), nil
		}
		buf = make([]byte, -n)
	}
	return dst, fmt.Errorf("engine: token %d: piece size keeps growing: %w", t, ErrInvalidArgument)
}

// Detokenize converts tokens back to text. removeSpecial drops a leading BOS
// and trailing EOS the model adds; unparseSpecial renders special tokens as
// their text.
func (m *Model) Detokenize(tokens []Token, removeSpecial, unparseSpecial bool) (string, error) {
	if len(tokens) == 0 {
		return "", nil
	}
	if len(tokens) > math.MaxInt32/64 {
		return "", fmt.Errorf("engine: detokenize: %d tokens is too many: %w", len(tokens), ErrInvalidArgument)
	}
	for _, t := range tokens {
		if err := m.checkToken(t); err != nil {
			return "", err
		}
	}
	if err := m.acquire(); err != nil {
		return "", err
	}
	defer m.mu.RUnlock()
	buf := make([]byte, 8*len(tokens)+16)
	for range 2 {
		n := int32(C.llama_detokenize(m.vocab, (*C.llama_token)(unsafe.Pointer(&tokens[0])), C.int32_t(len(tokens)),
			(*C.char)(unsafe.Pointer(&buf[0])), C.int32_t(len(buf)), C.bool(removeSpecial), C.bool(unparseSpecial)))
		if n >= 0 {
			return string(buf[:n]), nil
		}
		buf = make([]byte, -n)
	}
	return "", fmt.Errorf("engine: detokenize: text size keeps growing: %w", ErrInvalidArgument)
}
