package gguf

import (
	"fmt"
	"slices"
	"strings"
)

// Metadata keys of a model split across several files, as llama.cpp's
// gguf-split writes them.
const (
	// KeySplitCount (u16) is the number of files of a split model.
	KeySplitCount = "split.count"
	// KeySplitNo (u16) is the zero-based index of a file within its split.
	KeySplitNo = "split.no"
	// KeySplitTensorsCount (i32) is the total number of tensors of all
	// files of a split model.
	KeySplitTensorsCount = "split.tensors.count"
)

// SplitPath returns the path of file number no (zero-based) of a model split
// into count files, as llama.cpp's llama_split_path names it:
// prefix-00001-of-00004.gguf for no 0 of 4.
func SplitPath(prefix string, no, count int) string {
	return fmt.Sprintf("%s-%05d-of-%05d.gguf", prefix, no+1, count)
}

// ValidateModel validates the GGUF file at path as [Open] does, checks the
// tokenizer metadata that llama.cpp's vocabulary loader would otherwise
// abort or read out of bounds on (tokenizer.ggml.tokens an array of unique
// strings; tokenizer.ggml.scores an f32 array and tokenizer.ggml.token_type
// an i32 array, each at least as long; tokenizer.ggml.merges an array of
// strings), the hyperparameters llama.cpp's loader asserts on (see
// checkHparams: expert counts and groups, the rope scaling type) and, when
// its metadata says it is the first file of a split
// model (split.count > 1),
// every other file of the split, named as [SplitPath] names them. It checks
// what llama.cpp's model loader requires of splits: split.count and
// split.no are u16, path is split number 0 named
// PREFIX-00001-of-NNNNN.gguf, every sibling exists, is valid and has the
// right split.no (llama.cpp aborts when that key is not a u16), tensor names
// are unique across all files, and split.tensors.count (i32) is the total
// number of tensors. It returns the first file's File.
func ValidateModel(path string) (*File, error) { return validateModel(path, true) }

// ValidateVocab validates the GGUF file at path as ValidateModel does for
// a vocabulary-only load (llama.cpp's vocab_only), which reads no
// hyperparameters and no tensors: everything but those checks.
func ValidateVocab(path string) (*File, error) { return validateModel(path, false) }

func validateModel(path string, hparams bool) (*File, error) {
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	if err := checkVocab(f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if hparams {
		if err := checkHparams(f); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	cv, ok := f.Lookup(KeySplitCount)
	if !ok {
		return f, nil
	}
	if cv.Type != ValueUint16 {
		return nil, fmt.Errorf("%s: gguf: %s has type %s, must be u16: %w", path, KeySplitCount, typeName(cv), ErrInvalid)
	}
	count := int(cv.bits)
	if count <= 1 {
		return f, nil
	}
	if err := checkSplitNo(f, 0); err != nil {
		return nil, fmt.Errorf("%s: %w (a split model must be opened by its first file)", path, err)
	}
	suffix := SplitPath("", 0, count)
	prefix, ok := strings.CutSuffix(path, suffix)
	if !ok || prefix == "" {
		return nil, fmt.Errorf("%s: gguf: the first file of a %d-file split must be named PREFIX%s: %w", path, count, suffix, ErrInvalid)
	}

	owner := make(map[string]string, len(f.Tensors))
	addTensors := func(sf *File, p string) error {
		for _, t := range sf.Tensors {
			if other, dup := owner[t.Name]; dup {
				return fmt.Errorf("%s: gguf: tensor %q is also in %s: %w", p, t.Name, other, ErrInvalid)
			}
			owner[t.Name] = p
		}
		return nil
	}
	if err := addTensors(f, path); err != nil {
		return nil, err
	}
	for no := 1; no < count; no++ {
		p := SplitPath(prefix, no, count)
		sf, err := Open(p)
		if err != nil {
			return nil, fmt.Errorf("gguf: split %d of %d: %w", no+1, count, err)
		}
		if err := checkSplitNo(sf, no); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		if err := addTensors(sf, p); err != nil {
			return nil, err
		}
	}

	tv, ok := f.Lookup(KeySplitTensorsCount)
	if !ok {
		return nil, fmt.Errorf("%s: gguf: split model without %s: %w", path, KeySplitTensorsCount, ErrInvalid)
	}
	if tv.Type != ValueInt32 {
		return nil, fmt.Errorf("%s: gguf: %s has type %s, must be i32: %w", path, KeySplitTensorsCount, typeName(tv), ErrInvalid)
	}
	if n := int64(tv.bits); n != int64(len(owner)) {
		return nil, fmt.Errorf("%s: gguf: %s is %d but the %d files hold %d tensors: %w", path, KeySplitTensorsCount, n, count, len(owner), ErrInvalid)
	}
	return f, nil
}

// AllTensors returns the tensors of the model at path, whose first file f
// ValidateModel returned: f's, then those of its other splits.
func AllTensors(path string, f *File) ([]TensorInfo, error) {
	out := slices.Clone(f.Tensors)
	cv, ok := f.Lookup(KeySplitCount)
	if !ok || cv.Type != ValueUint16 || cv.bits <= 1 {
		return out, nil
	}
	count := int(cv.bits)
	prefix, ok := strings.CutSuffix(path, SplitPath("", 0, count))
	if !ok {
		return nil, fmt.Errorf("%s: gguf: the first file of a %d-file split must be named PREFIX%s: %w", path, count, SplitPath("", 0, count), ErrInvalid)
	}
	for no := 1; no < count; no++ {
		sf, err := Open(SplitPath(prefix, no, count))
		if err != nil {
			return nil, fmt.Errorf("gguf: split %d of %d: %w", no+1, count, err)
		}
		out = append(out, sf.Tensors...)
	}
	return out, nil
}

// checkSplitNo checks that f has split.no of type u16 equal to no.
func checkSplitNo(f *File, no int) error {
	v, ok := f.Lookup(KeySplitNo)
	if !ok {
		return fmt.Errorf("gguf: split file without %s: %w", KeySplitNo, ErrInvalid)
	}
	if v.Type != ValueUint16 {
		return fmt.Errorf("gguf: %s has type %s, must be u16: %w", KeySplitNo, typeName(v), ErrInvalid)
	}
	if int(v.bits) != no {
		return fmt.Errorf("gguf: %s is %d, expected %d: %w", KeySplitNo, v.bits, no, ErrInvalid)
	}
	return nil
}
