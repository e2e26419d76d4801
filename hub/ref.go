package hub

import (
	"fmt"
	"strings"
)

// DefaultRevision is the branch pulled when none is named.
const DefaultRevision = "main"

// Ref names a model on the Hub:
//
//	org/repo                   what inference needs from the repo
//	org/repo:Q4_K_M            the GGUF file(s) of one quantization
//	org/repo/path/file.gguf    one file (all parts, if it is a split GGUF)
//
// A leading "hf.co/", "huggingface.co/" or "https://huggingface.co/" is
// accepted and dropped, so Ollama-style names work too.
type Ref struct {
	Repo     string // "org/name"
	Quant    string // quantization tag as typed, e.g. "Q4_K_M"; "" for the default
	File     string // path of one file inside the repo; "" for a selection
	Revision string // branch, tag or commit; "" means DefaultRevision
}

// ParseRef parses a model name. The revision is not part of the syntax; set
// Ref.Revision from a flag.
func ParseRef(s string) (Ref, error) {
	orig := s
	s = strings.TrimSpace(s)
	for _, p := range []string{"https://", "http://"} {
		s = strings.TrimPrefix(s, p)
	}
	for _, p := range []string{"hf.co/", "huggingface.co/", "www.huggingface.co/"} {
		if strings.HasPrefix(s, p) {
			s = s[len(p):]
			break
		}
	}
	var r Ref
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		r.Quant = s[i+1:]
		s = s[:i]
		if !quantRE.MatchString(r.Quant) {
			return Ref{}, fmt.Errorf("model %q: quantization %q: %w", orig, r.Quant, ErrInvalidName)
		}
	}
	parts := strings.Split(s, "/")
	switch {
	case len(parts) <= 2:
		r.Repo = s
	default:
		r.Repo = parts[0] + "/" + parts[1]
		r.File = strings.Join(parts[2:], "/")
	}
	if err := ValidateRepoID(r.Repo); err != nil {
		return Ref{}, fmt.Errorf("model %q: %w", orig, err)
	}
	if r.File != "" {
		if r.Quant != "" {
			return Ref{}, fmt.Errorf("model %q: give a file path or a :QUANT, not both: %w", orig, ErrInvalidName)
		}
		if err := ValidatePath(r.File); err != nil {
			return Ref{}, fmt.Errorf("model %q: %w", orig, err)
		}
	}
	return r, nil
}

// String formats r back into the syntax ParseRef reads (without the
// revision).
func (r Ref) String() string {
	s := r.Repo
	switch {
	case r.File != "":
		s += "/" + r.File
	case r.Quant != "":
		s += ":" + r.Quant
	}
	return s
}

// rev returns the revision to use, DefaultRevision when unset.
func (r Ref) rev() string {
	if r.Revision == "" {
		return DefaultRevision
	}
	return r.Revision
}

// Validate checks every field of r.
func (r Ref) Validate() error {
	if err := ValidateRepoID(r.Repo); err != nil {
		return err
	}
	if r.Revision != "" {
		if err := ValidateRevision(r.Revision); err != nil {
			return err
		}
	}
	if r.File != "" {
		if err := ValidatePath(r.File); err != nil {
			return err
		}
	}
	if r.Quant != "" && !quantRE.MatchString(r.Quant) {
		return fmt.Errorf("quantization %q: %w", r.Quant, ErrInvalidName)
	}
	return nil
}
