package engine

/*
#include <stdlib.h>
#include "llama_api.h"

// llm_grammar_apply applies a grammar sampler to n candidates; the array
// header lives on the C stack, so that Go passes only the data pointer.
static void llm_grammar_apply(struct llama_sampler *s, llama_token_data *data, size_t n) {
    llama_token_data_array a = { data, n, -1, false };
    llama_sampler_apply(s, &a);
}
*/
import "C"

import (
	"fmt"
	"math"
	"runtime"
	"sync"
	"unsafe"

	"github.com/llm-go/llm/sampler/gbnf"
)

// TokenData is a candidate token as llama.cpp's llama_token_data: its id,
// logit and probability.
type TokenData struct {
	ID    Token
	Logit float32
	P     float32
}

// The layouts must agree: TokenData slices are handed to llama.cpp as they
// are.
var _ [unsafe.Sizeof(TokenData{}) - unsafe.Sizeof(C.llama_token_data{})]byte
var _ [unsafe.Sizeof(C.llama_token_data{}) - unsafe.Sizeof(TokenData{})]byte

// Grammar is llama.cpp's grammar sampler for a GBNF grammar over a model's
// vocabulary: it says which tokens may come next and follows the tokens
// chosen. A Grammar is not safe for concurrent use (it serialises its calls,
// but its state is that of one sequence). Close it when done; a Grammar
// that becomes unreachable is freed by the garbage collector.
type Grammar struct {
	m      *Model
	mu     sync.Mutex
	c      *C.struct_llama_sampler
	src    string
	one    [1]TokenData
	free   runtime.Cleanup
	closed bool
}

// NewGrammar parses a GBNF grammar whose start rule is "root" for m's
// vocabulary. The grammar is checked in Go first (package gbnf): syntax
// errors, undefined rules, left recursion and grammars too large for
// llama.cpp are returned with their line and column, never passed to C.
// Token references <text> must each be one token of the vocabulary.
func (m *Model) NewGrammar(gbnfSource string) (*Grammar, error) {
	parsed, err := gbnf.Parse(gbnfSource)
	if err != nil {
		return nil, fmt.Errorf("engine: invalid grammar: %w: %w", err, ErrInvalidArgument)
	}
	for _, text := range parsed.TokenTexts {
		if toks, err := m.Tokenize(text, false, true); err != nil || len(toks) != 1 {
			return nil, fmt.Errorf("engine: invalid grammar: token reference %s is not one token of the vocabulary: %w", text, ErrInvalidArgument)
		}
	}
	if err := m.acquire(); err != nil {
		return nil, err
	}
	defer m.mu.RUnlock()
	csrc := C.CString(gbnfSource)
	defer C.free(unsafe.Pointer(csrc))
	croot := C.CString("root")
	defer C.free(unsafe.Pointer(croot))

	loadMu.Lock() // the reason, if any, comes through the log
	takeLastError()
	c := C.llama_sampler_init_grammar(m.vocab, csrc, croot)
	reason := takeLastError()
	loadMu.Unlock()
	if c == nil {
		if reason == "" {
			reason = "llama.cpp rejected it (its parser writes the reason to stderr)"
		}
		return nil, fmt.Errorf("engine: invalid grammar: %s: %w", reason, ErrInvalidArgument)
	}
	g := &Grammar{m: m, c: c, src: gbnfSource}
	g.free = runtime.AddCleanup(g, func(c *C.struct_llama_sampler) { C.llama_sampler_free(c) }, c)
	return g, nil
}

// lock locks the grammar and read-locks its model for a call into C. The
// caller must call g.unlock when it succeeds.
func (g *Grammar) lock() error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return ErrClosed
	}
	if err := g.m.acquire(); err != nil {
		g.mu.Unlock()
		return err
	}
	return nil
}

func (g *Grammar) unlock() {
	g.m.mu.RUnlock()
	g.mu.Unlock()
}

// Apply sets to -Inf the logit of every candidate the grammar does not
// allow next. Every id must be a token of the model's vocabulary.
func (g *Grammar) Apply(cands []TokenData) error {
	if len(cands) == 0 {
		return nil
	}
	for _, c := range cands {
		if err := g.m.checkToken(c.ID); err != nil {
			return err
		}
	}
	if err := g.lock(); err != nil {
		return err
	}
	defer g.unlock()
	C.llm_grammar_apply(g.c, (*C.llama_token_data)(unsafe.Pointer(&cands[0])), C.size_t(len(cands)))
	return nil
}

// Allows reports whether the grammar allows token t next. An
// end-of-generation token is allowed only where the grammar may end.
func (g *Grammar) Allows(t Token) (bool, error) {
	if err := g.m.checkToken(t); err != nil {
		return false, err
	}
	if err := g.lock(); err != nil {
		return false, err
	}
	defer g.unlock()
	return g.allows(t), nil
}

func (g *Grammar) allows(t Token) bool {
	g.one[0] = TokenData{ID: t}
	C.llm_grammar_apply(g.c, (*C.llama_token_data)(unsafe.Pointer(&g.one[0])), 1)
	return !math.IsInf(float64(g.one[0].Logit), -1)
}

// Accept advances the grammar past token t. It fails, leaving the grammar
// as it was, when the grammar does not allow t (llama.cpp would abort the
// process).
func (g *Grammar) Accept(t Token) error {
	if err := g.m.checkToken(t); err != nil {
		return err
	}
	if err := g.lock(); err != nil {
		return err
	}
	defer g.unlock()
	if !g.allows(t) {
		return fmt.Errorf("engine: the grammar does not allow token %d here: %w", t, ErrInvalidArgument)
	}
	C.llama_sampler_accept(g.c, C.llama_token(t))
	return nil
}

// Reset returns the grammar to its start.
func (g *Grammar) Reset() error {
	if err := g.lock(); err != nil {
		return err
	}
	defer g.unlock()
	C.llama_sampler_reset(g.c)
	return nil
}

// Source returns the grammar's GBNF text.
func (g *Grammar) Source() string { return g.src }

// Close frees the grammar. It is safe to call more than once.
func (g *Grammar) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil
	}
	g.closed = true
	g.free.Stop()
	C.llama_sampler_free(g.c)
	g.c = nil
	return nil
}

// VocabPointer returns m's *llama_vocab, for tests and benchmarks that
// drive llama.cpp's own samplers (internal/csampler) with the same
// vocabulary; it is not for programs. The pointer is valid until m is
// closed.
func VocabPointer(m *Model) unsafe.Pointer { return unsafe.Pointer(m.vocab) }
