package safetensors

import "errors"

// Sentinel errors. Every error that [Read], [Open] and [OpenDir] return for
// malformed content wraps exactly one of these, with context naming the file
// and, where there is one, the tensor; test for them with [errors.Is].
// Errors of the operating system (a missing file, a failed read) are passed
// on wrapped in the same context, and wrap none of them.
var (
	// ErrTruncated reports a file that ends before a structure it declares:
	// shorter than the 8-byte header length, a header length beyond the end
	// of the file, or tensor data that extends beyond the end of the file.
	ErrTruncated = errors.New("truncated safetensors file")

	// ErrInvalid reports any other malformed content: a header that is not
	// a UTF-8 JSON object of the expected form, a header too large, bad
	// offsets or shapes, and inconsistent sharded repositories.
	ErrInvalid = errors.New("invalid safetensors file")

	// ErrUnknownDType reports a dtype name that is not a safetensors dtype.
	ErrUnknownDType = errors.New("unknown safetensors dtype")

	// ErrUnsupportedDType reports a tensor of a valid safetensors dtype that
	// this package does not read: only F32, F16, BF16, U8 and F8_E4M3 (raw bytes) are supported.
	ErrUnsupportedDType = errors.New("unsupported dtype")

	// ErrNotFound reports a tensor name that the file or model does not hold.
	ErrNotFound = errors.New("tensor not found")
)
