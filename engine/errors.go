package engine

import "errors"

// Errors that callers can test with errors.Is.
var (
	// ErrClosed is returned by methods of a Model or Context after Close.
	ErrClosed = errors.New("engine: use after close")

	// ErrNoKVSlot means the KV memory has no room for the batch: reduce the
	// batch, free sequences, or use a larger context.
	ErrNoKVSlot = errors.New("engine: no KV slot for the batch")

	// ErrAborted means a decode was cancelled through its context.Context.
	// The KV memory may hold the micro-batches processed before the abort.
	ErrAborted = errors.New("engine: decode aborted")

	// ErrInvalidBatch means llama.cpp rejected a batch (for example, positions
	// that do not continue a sequence).
	ErrInvalidBatch = errors.New("engine: invalid batch")

	// ErrInvalidArgument means a value passed to the engine is out of range
	// (a token id, position, sequence id or output row).
	ErrInvalidArgument = errors.New("engine: invalid argument")

	// ErrLoad means llama.cpp could not load a model or create a context;
	// the log at Debug/Error level has its reason.
	ErrLoad = errors.New("engine: load failed")

	// ErrNoFIM means a fill-in-the-middle prompt was asked of a model
	// without FIM tokens.
	ErrNoFIM = errors.New("engine: this model has no fill-in-the-middle tokens (a code model that has them is needed)")

	// ErrNoDevice means a backend library loaded but offers no device: for
	// CUDA, no GPU, no driver or a driver too old for the toolkit it was
	// built with. The error that wraps it carries the backend's own reason.
	ErrNoDevice = errors.New("engine: backend found no device")
)
