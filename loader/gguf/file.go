package gguf

import "slices"

// KV is one metadata key-value pair.
type KV struct {
	Key   string
	Value Value
}

// TensorInfo describes one tensor of a GGUF file. Its data is Size bytes at
// absolute file offset [File.DataOffset] + Offset.
type TensorInfo struct {
	// Name is the tensor's name, at most 63 bytes.
	Name string
	// Type is the element type.
	Type Type
	// Shape is ne[0..n_dims) in ggml order: Shape[0] is the row length, the
	// fastest-varying dimension. It has at most four entries and may be
	// empty (a one-element tensor).
	Shape []uint64
	// Offset is the data offset relative to [File.DataOffset].
	Offset uint64
	// Size is the number of bytes of data.
	Size uint64
}

// Elements returns the number of elements: the product of Shape (1 for an
// empty Shape).
func (t TensorInfo) Elements() uint64 {
	n := uint64(1)
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// File is the parsed and validated header of a GGUF file: its metadata and
// tensor infos, without tensor data.
type File struct {
	// Version is the GGUF version, 2 or 3.
	Version uint32
	// Alignment is the data alignment: general.alignment, or 32.
	Alignment uint64
	// KV holds the metadata in file order.
	KV []KV
	// Tensors holds the tensor infos in file order.
	Tensors []TensorInfo
	// DataOffset is the absolute offset of the tensor data section: the end
	// of the tensor infos, rounded up to Alignment. In a file without tensor
	// data it may lie beyond Size.
	DataOffset int64
	// Size is the size of the file in bytes.
	Size int64
}

// Lookup returns the value of key.
func (f *File) Lookup(key string) (Value, bool) {
	for i := range f.KV {
		if f.KV[i].Key == key {
			return f.KV[i].Value, true
		}
	}
	return Value{}, false
}

// String returns the value of key if it is a string.
func (f *File) String(key string) (string, bool) {
	v, ok := f.Lookup(key)
	if !ok {
		return "", false
	}
	return v.AsString()
}

// Uint returns the value of key if it is a non-negative integer of any
// integer type.
func (f *File) Uint(key string) (uint64, bool) {
	v, ok := f.Lookup(key)
	if !ok {
		return 0, false
	}
	return v.AsUint()
}

// LayerUints returns the value of key for each of n blocks: one
// non-negative integer for all of them, or an array of one per block, as
// llama.cpp reads per-layer hyperparameters (attention.head_count_kv of a
// hybrid model is 0 in its recurrent layers). ok is false when key is
// absent, is not made of non-negative integers, or is an array of another
// length.
func (f *File) LayerUints(key string, n int) ([]uint64, bool) {
	v, ok := f.Lookup(key)
	if !ok || n < 0 {
		return nil, false
	}
	if x, ok := v.AsUint(); ok {
		out := make([]uint64, n)
		for i := range out {
			out[i] = x
		}
		return out, true
	}
	xs, ok := v.AsUints()
	if !ok || len(xs) != n {
		return nil, false
	}
	return xs, true
}

// HeadCount returns {arch}.attention.head_count as llama.cpp's n_head()
// reads it, sizing every head by it: the one number, or layer 0's when
// there is one per layer (DeciLM's, 0 in its layers without attention).
func (f *File) HeadCount() (uint64, bool) {
	v, ok := f.Lookup(f.Architecture() + ".attention.head_count")
	if !ok {
		return 0, false
	}
	if x, ok := v.AsUint(); ok {
		return x, true
	}
	if xs, ok := v.AsUints(); ok && len(xs) > 0 {
		return xs[0], true
	}
	return 0, false
}

// gemma3nKVLayers is how many of gemma3n's first layers keep keys and
// values (llama.cpp's n_layer_kv_from_start); the others share theirs.
const gemma3nKVLayers = 20

// LayerKVHeads returns the KV heads of each of n blocks as llama.cpp sizes
// their KV cache: {arch}.attention.head_count_kv (else head_count), one
// for all blocks or one per block, 0 in a hybrid model's recurrent layers;
// for qwen3next, whose recurrent layers llama.cpp fixes by position (all
// but every fourth) whatever head_count_kv says, 0 there too; for gemma3n,
// 0 in the layers from 20 on, which share the keys and values of earlier
// ones. ok is as LayerUints's.
func (f *File) LayerKVHeads(n int) ([]uint64, bool) {
	arch := f.Architecture()
	kv, ok := f.LayerUints(arch+".attention.head_count_kv", n)
	if !ok {
		kv, ok = f.LayerUints(arch+".attention.head_count", n)
	}
	if ok && arch == "qwen3next" {
		kv = slices.Clone(kv)
		for i := range kv {
			if (i+1)%4 != 0 {
				kv[i] = 0
			}
		}
	}
	if ok && arch == "gemma3n" && len(kv) > gemma3nKVLayers {
		// Its layers from 20 on read the keys and values of layers 18
		// and 19 and keep none of their own.
		kv = slices.Clone(kv)
		clear(kv[gemma3nKVLayers:])
	}
	return kv, ok
}

// Int returns the value of key if it is an integer of any integer type that
// fits in an int64.
func (f *File) Int(key string) (int64, bool) {
	v, ok := f.Lookup(key)
	if !ok {
		return 0, false
	}
	return v.AsInt()
}

// Float returns the value of key if it is a float or an integer.
func (f *File) Float(key string) (float64, bool) {
	v, ok := f.Lookup(key)
	if !ok {
		return 0, false
	}
	return v.AsFloat()
}

// Bool returns the value of key if it is a bool.
func (f *File) Bool(key string) (bool, bool) {
	v, ok := f.Lookup(key)
	if !ok {
		return false, false
	}
	return v.AsBool()
}

// Strings returns the value of key if it is an array of strings.
func (f *File) Strings(key string) ([]string, bool) {
	v, ok := f.Lookup(key)
	if !ok {
		return nil, false
	}
	return v.AsStrings()
}

// Architecture returns general.architecture, or "" if it is absent or not a
// string.
func (f *File) Architecture() string {
	s, _ := f.String("general.architecture")
	return s
}

// Tensor returns the info of the tensor called name.
func (f *File) Tensor(name string) (TensorInfo, bool) {
	for i := range f.Tensors {
		if f.Tensors[i].Name == name {
			return f.Tensors[i], true
		}
	}
	return TensorInfo{}, false
}

// ParamCount returns the total number of tensor elements.
func (f *File) ParamCount() uint64 {
	var n uint64
	for i := range f.Tensors {
		n += f.Tensors[i].Elements()
	}
	return n
}
