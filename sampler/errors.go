package sampler

import (
	"errors"
	"fmt"
)

// Errors that callers can test with errors.Is.
var (
	// ErrInvalidOption means a sampling option is out of its range, of the
	// wrong type or unknown. The error is an *OptionError naming it.
	ErrInvalidOption = errors.New("sampler: invalid option")

	// ErrInvalidGrammar means a GBNF grammar does not parse (or llama.cpp
	// rejected it).
	ErrInvalidGrammar = errors.New("sampler: invalid grammar")

	// ErrInvalidSchema means a JSON schema is not valid JSON or uses what
	// the converter does not support.
	ErrInvalidSchema = errors.New("sampler: invalid JSON schema")

	// ErrNeedsModel means an option needs the model's vocabulary (a grammar,
	// a JSON schema or DRY sequence breakers) but New was given none.
	ErrNeedsModel = errors.New("sampler: the option needs a model")

	// ErrVocabSize means the logits are not one per token of the vocabulary.
	ErrVocabSize = errors.New("sampler: logits do not match the vocabulary")

	// ErrNoCandidates means no token can be drawn: every logit is -Inf (all
	// tokens banned by a logit bias, or nothing the grammar allows next).
	ErrNoCandidates = errors.New("sampler: no token can be sampled")

	// ErrClosed is returned by a Sampler after Close.
	ErrClosed = errors.New("sampler: use after close")
)

// OptionError reports an invalid sampling option: its name as the caller
// spelled it (for example "top_p" or "repetition_penalty"), the value, and
// what is accepted. It wraps ErrInvalidOption, and Err when set (a grammar's
// or schema's error, with ErrInvalidGrammar or ErrInvalidSchema).
type OptionError struct {
	Name   string // the option's name
	Value  any    // the rejected value
	Reason string // what is accepted, e.g. "must be in [0, 1]"
	Err    error  // the underlying error, if any
}

// Error implements the error interface.
func (e *OptionError) Error() string {
	if e.Value == nil {
		return fmt.Sprintf("sampler: option %s: %s", e.Name, e.Reason)
	}
	return fmt.Sprintf("sampler: option %s = %v: %s", e.Name, e.Value, e.Reason)
}

// Unwrap returns ErrInvalidOption and Err.
func (e *OptionError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrInvalidOption, e.Err}
	}
	return []error{ErrInvalidOption}
}

func optErr(name string, value any, format string, args ...any) error {
	return &OptionError{Name: name, Value: value, Reason: fmt.Sprintf(format, args...)}
}
