// Package gguf reads, validates and writes GGUF files, the model file format
// of llama.cpp and ggml, in pure Go.
//
// # Format
//
// A GGUF file is little-endian and holds, in order:
//
//   - the magic "GGUF" and a uint32 version (2 or 3);
//   - an int64 tensor count and an int64 metadata count;
//   - the metadata: key-value pairs, each a string key, a uint32 value type
//     ([ValueType]) and the value. An array value is an element type, a
//     uint64 count and the elements. Strings are a uint64 byte length and
//     the bytes, without terminator; bools are one byte;
//   - the tensor infos: each a string name, a uint32 dimension count, that
//     many int64 dimensions (ggml order, row length first), a uint32 tensor
//     [Type] and a uint64 data offset;
//   - zero padding up to the alignment (general.alignment, default 32);
//   - the tensor data section: each tensor's data at its offset, which is
//     relative to the start of the section.
//
// # Validation guarantee
//
// llama.cpp's C parser (ggml/src/gguf.cpp) aborts or crashes the process on
// some malformed files, so this package is run on every model before it is
// handed to C. [Read] rejects every file gguf.cpp rejects, and those it would
// crash on, with an error wrapping one of [ErrNotGGUF], [ErrVersion],
// [ErrTruncated], [ErrInvalid] or [ErrUnknownType] that names the problem.
// It never panics, and a declared count or length never drives an
// allocation: each is checked against the bytes remaining in the file
// before anything is allocated for it, so memory use is bounded by a small
// multiple of the file's size (a 2^63-element array is rejected without
// allocating).
//
// The checks, and the gguf.cpp check each mirrors:
//
//   - magic "GGUF" (gguf.cpp: invalid magic characters);
//   - version not 0, not byte-swapped (low 16 bits zero), not 1, at most 3
//     (the same four checks);
//   - tensor and metadata counts not negative as int64 (gguf.cpp: counts in
//     [0, SIZE_MAX/sizeof]) and, in addition, small enough for the
//     remaining bytes to hold them;
//   - keys: not empty (gguf.cpp asserts, aborting the process), unique
//     (duplicate key);
//   - value types: one of the 13 GGUF types (invalid GGUF type); arrays of
//     arrays are rejected as gguf.cpp rejects them; string lengths and array
//     counts fit in the remaining bytes (gguf.cpp catches the failed
//     allocation or the short read);
//   - general.alignment, if present: a u32 scalar (gguf.cpp asserts on any
//     other type) and a non-zero power of two (alignment is not a power
//     of 2);
//   - tensor names: shorter than GGML_MAX_NAME (64) bytes (tensor name too
//     long), unique (duplicate tensor name) and, in addition, without NUL
//     bytes, which ggml would silently cut;
//   - dimensions: at most 4 (invalid number of dimensions), each
//     non-negative (invalid number of elements), element count below
//     INT64_MAX by gguf.cpp's test, and no zero dimension after the first
//     (gguf.cpp divides by those, crashing the process);
//   - tensor type: below GGML_TYPE_COUNT and not removed (invalid ggml type;
//     removed types have block size 0), and a row length that is a multiple
//     of the type's block size (not a multiple of block size); the byte size
//     must not overflow;
//   - data layout: each tensor's offset equals the sum of the sizes of the
//     tensors before it, each padded to the alignment (tensor has offset X,
//     expected Y), so tensors are in order, aligned and do not overlap; the
//     padded total must not overflow (size overflow);
//   - each tensor's data lies within the file (llama.cpp's model loader:
//     tensor data is not within the file bounds). The padding after the last
//     tensor may be missing, as llama.cpp allows.
//
// [ValidateModel] adds checks on what llama.cpp's model loader reads next:
// the tokenizer arrays its vocabulary loader indexes without checking
// (tokens, scores, token types, merges), and the consistency of the files
// of a split model.
//
// Tensor data is not read: [File] gives each tensor's offset and size, for
// callers that read or map it themselves. [Writer] builds files with the
// layout llama.cpp writes, streaming tensor data from callbacks.
package gguf
