package gguf

import "errors"

// Sentinel errors. Every error returned by [Read], [Open] and
// [ValidateModel] for malformed content wraps exactly one of these, with
// context naming the offending structure; test for them with [errors.Is].
var (
	// ErrNotGGUF reports a file that does not start with the GGUF magic.
	ErrNotGGUF = errors.New("not a GGUF file")

	// ErrVersion reports an unsupported GGUF version (only 2 and 3 are
	// accepted, as by llama.cpp).
	ErrVersion = errors.New("unsupported GGUF version")

	// ErrTruncated reports a file that ends before a structure it declares,
	// including counts and lengths that could not fit in the remaining bytes.
	ErrTruncated = errors.New("truncated GGUF file")

	// ErrInvalid reports any other malformed content.
	ErrInvalid = errors.New("invalid GGUF file")

	// ErrUnknownType reports an unknown or removed tensor type, or an
	// unknown metadata value type.
	ErrUnknownType = errors.New("unknown type")
)
