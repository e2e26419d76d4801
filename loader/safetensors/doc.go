// Package safetensors reads and validates safetensors files, the weights
// format of Hugging Face checkpoints, in pure Go: single files and sharded
// checkpoints (model.safetensors.index.json).
//
// # Format
//
// A safetensors file holds, in order:
//
//   - N, the length of the header, as a little-endian uint64;
//   - N bytes of header: a UTF-8 JSON object mapping each tensor name to
//     {"dtype": "F32", "shape": [rows, cols], "data_offsets": [begin, end]},
//     plus an optional "__metadata__" object of string values. The writer
//     of the reference implementation pads the header with spaces to a
//     multiple of 8 bytes;
//   - the data section: each tensor's little-endian, row-major data at
//     [begin, end) relative to the start of the section, 8 + N.
//
// # Validation
//
// [Read] and [Open] parse the header and reject what the reference (Rust)
// implementation's SafeTensors::read_metadata and Metadata::validate
// reject, with an error wrapping [ErrTruncated], [ErrInvalid],
// [ErrUnknownDType] or [ErrUnsupportedDType] that names the file, the
// tensor and the problem. They never panic, and nothing is allocated from a
// declared length before that length is checked against the file size. The
// checks, and the reference check each mirrors:
//
//   - the file holds at least the 8-byte length (HeaderTooSmall);
//   - N is at most [MaxHeaderSize], 100,000,000 (HeaderTooLarge), and
//     8 + N is within the file (InvalidHeaderLength);
//   - the header is valid UTF-8 (InvalidHeader), starts with '{'
//     (InvalidHeaderStart, which the reference declares for this) and is
//     exactly one JSON object, optionally followed by whitespace
//     (InvalidHeaderDeserialization);
//   - no key appears twice: a tensor entry's fields as serde rejects a
//     duplicate field, and, stricter than the reference, whose maps keep
//     the last entry silently, the header's and __metadata__'s keys;
//   - __metadata__ is an object of strings (its HashMap<String, String>);
//   - each tensor entry is an object with a string dtype naming a known
//     dtype, a shape of non-negative integers and data_offsets of exactly
//     two non-negative integers (its TensorInfo; unknown fields are
//     ignored as serde ignores them). Integers must be written without
//     fraction or exponent and fit in an int64;
//   - sorted by data_offsets, the tensors start at 0 and each begins where
//     the previous one ends, with begin <= end (InvalidOffset): no holes
//     and no overlaps;
//   - end - begin equals the product of the shape times the dtype size,
//     computed with overflow checks (TensorInvalidInfo,
//     ValidationOverflow);
//   - the last tensor ends exactly at the end of the file
//     (MetadataIncompleteBuffer): data beyond the file is reported as
//     [ErrTruncated], trailing bytes as [ErrInvalid].
//
// In addition, a tensor of any dtype other than F32, F16, BF16, U8 and
// F8_E4M3 is
// rejected by name with [ErrUnsupportedDType], once the layout is known to
// be sound. U8 tensors hold packed quantized data (gpt-oss's MXFP4 blocks
// and exponents), and F8_E4M3 tensors FP8 weights whose values need a
// scale tensor beside them: both are read as raw bytes ([DecodeF8E4M3]
// decodes FP8), and [File.Float32s] refuses them.
//
// [OpenDir] opens a checkpoint directory and checks the consistency of its
// shards: see its documentation.
//
// # Reading data
//
// Tensor data is read on demand, by offset, through the open file:
// [File.ReadTensor] and [File.TensorReader] give the raw bytes,
// [File.Float32s] converts F32, F16 and BF16 to float32, and [File.ReadAt]
// reads any range. Files are never loaded whole.
package safetensors
