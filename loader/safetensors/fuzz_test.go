package safetensors

import (
	"bytes"
	"errors"
	"slices"
	"testing"
)

// fuzzSeeds returns valid files and near-misses for FuzzRead.
func fuzzSeeds() [][]byte {
	d8 := make([]byte, 8)
	return [][]byte{
		sample(),
		rawST("{}      ", nil),
		writeST(nil, tensor{"e", F16, []int64{0, 4}, nil}, tensor{"s", F32, nil, f32Bytes(7)}),
		writeST(map[string]string{"a": "b", "format": "pt"}, tensor{"x", BF16, []int64{1, 1, 2}, bf16Bytes(1, 2)}),
		rawST(`{"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, d8),
		rawST(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, make([]byte, 12)),
		rawST(`{"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}`, d8),
		rawST(`{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}`, d8),
		rawST(`{"__metadata__":{"n":1}}`, nil),
		rawST(`{"a":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}}`, d8[:1]),
		append(rawST(`{}`, nil)[:8], 0xff, 0xff),
	}
}

// FuzzRead checks that Read never panics, that every error wraps exactly
// one sentinel, and that what it accepts is sound: supported dtypes,
// sizes that match the shapes, ranges that tile the data section exactly,
// names sorted and unique, data that converts, and a rewrite by the test
// writer that reads back the same.
func FuzzRead(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := readBytes(b)
		if err != nil {
			n := 0
			for _, s := range sentinels {
				if errors.Is(err, s) {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("error %q wraps %d sentinels", err, n)
			}
			return
		}
		size := int64(len(b))
		if file.Size != size || file.DataOffset != 8+file.HeaderSize || file.DataOffset > size || file.HeaderSize > MaxHeaderSize {
			t.Fatalf("bad file: size %d header %d data offset %d", file.Size, file.HeaderSize, file.DataOffset)
		}
		byOffset := slices.Clone(file.Tensors)
		slices.SortStableFunc(byOffset, func(a, b TensorInfo) int {
			if a.Offset != b.Offset {
				return cmpInt(a.Offset, b.Offset)
			}
			return cmpInt(a.Size, b.Size)
		})
		end := file.DataOffset
		for i, ti := range file.Tensors {
			if i > 0 && file.Tensors[i-1].Name >= ti.Name {
				t.Fatalf("names not sorted and unique: %q, %q", file.Tensors[i-1].Name, ti.Name)
			}
			if got, ok := file.Tensor(ti.Name); !ok || got.Offset != ti.Offset {
				t.Fatalf("Tensor(%q) = %+v, %v", ti.Name, got, ok)
			}
			if !ti.DType.Supported() || ti.Size != ti.Elements()*ti.DType.Size() {
				t.Fatalf("tensor %+v accepted", ti)
			}
			v, err := file.Float32s(ti.Name)
			if err != nil || int64(len(v)) != ti.Elements() {
				t.Fatalf("Float32s(%q): %d values, %v", ti.Name, len(v), err)
			}
		}
		for _, ti := range byOffset {
			if ti.Offset != end {
				t.Fatalf("tensor %q at %d, want %d", ti.Name, ti.Offset, end)
			}
			end += ti.Size
		}
		if end != size {
			t.Fatalf("tensors end at %d in a %d-byte file", end, size)
		}

		// Rewrite and re-read.
		ts := make([]tensor, len(byOffset))
		for i, ti := range byOffset {
			ts[i] = tensor{ti.Name, ti.DType, ti.Shape, b[ti.Offset : ti.Offset+ti.Size]}
		}
		out := writeST(file.Metadata, ts...)
		g, err := readBytes(out)
		if err != nil {
			t.Fatalf("re-reading a rewritten file: %v", err)
		}
		if len(g.Tensors) != len(file.Tensors) || len(g.Metadata) != len(file.Metadata) {
			t.Fatalf("rewrite: %d tensors, %d metadata; want %d, %d", len(g.Tensors), len(g.Metadata), len(file.Tensors), len(file.Metadata))
		}
		for k, v := range file.Metadata {
			if g.Metadata[k] != v {
				t.Fatalf("rewrite: metadata %q = %q, want %q", k, g.Metadata[k], v)
			}
		}
		for i, ti := range file.Tensors {
			gi := g.Tensors[i]
			if gi.Name != ti.Name || gi.DType != ti.DType || !slices.Equal(gi.Shape, ti.Shape) || gi.Size != ti.Size ||
				!bytes.Equal(out[gi.Offset:gi.Offset+gi.Size], b[ti.Offset:ti.Offset+ti.Size]) {
				t.Fatalf("rewrite: %+v, want %+v", gi, ti)
			}
		}
	})
}
