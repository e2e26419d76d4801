package gguf

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestValidRawBaseline(t *testing.T) {
	f, err := readBytes(t, validRaw().bytes())
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Tensors) != 2 || f.Tensors[1].Size != 68 || f.Tensors[1].Offset != 32 {
		t.Fatalf("tensors = %+v", f.Tensors)
	}
	if f.Architecture() != "llama" {
		t.Fatalf("architecture = %q", f.Architecture())
	}
}

func TestTruncatedEverywhere(t *testing.T) {
	// Every prefix that ends before the last tensor's data does must be
	// rejected as truncated. The raw file has no trailing padding; the
	// Writer's file holds every value type.
	w, _ := buildWriter(t)
	written := writeBytes(t, w)
	wf, err := readBytes(t, written)
	if err != nil {
		t.Fatal(err)
	}
	last := wf.Tensors[len(wf.Tensors)-1]
	for _, b := range [][]byte{validRaw().bytes(), written[:wf.DataOffset+int64(last.Offset+last.Size)]} {
		for n := 0; n < len(b); n++ {
			_, err := readBytes(t, b[:n])
			if !errors.Is(err, ErrTruncated) {
				t.Fatalf("prefix of %d/%d bytes: got %v, want ErrTruncated", n, len(b), err)
			}
		}
		if _, err := readBytes(t, b); err != nil {
			t.Fatalf("whole file: %v", err)
		}
	}
}

func TestReaderErrors(t *testing.T) {
	b := validRaw().bytes()
	// A size larger than the reader holds: the reader hits EOF.
	_, err := Read(bytes.NewReader(b[:40]), int64(len(b)))
	wantErr(t, err, ErrTruncated, "before its declared size")

	// An I/O error is passed on, unwrapped into no sentinel.
	ioErr := errors.New("disk on fire")
	_, err = Read(failingReader{ioErr}, 1000)
	if !errors.Is(err, ioErr) {
		t.Fatalf("got %v, want the reader's error", err)
	}

	_, err = Read(bytes.NewReader(nil), -1)
	wantErr(t, err, ErrInvalid, "negative file size")
}

type failingReader struct{ err error }

func (r failingReader) ReadAt([]byte, int64) (int, error) { return 0, r.err }

func TestMalformed(t *testing.T) {
	huge := uint64(1) << 62
	tests := []struct {
		name     string
		mutate   func(*rawFile)
		raw      []byte // used instead of mutate when set
		sentinel error
		words    []string
	}{
		{name: "empty file", raw: []byte{}, sentinel: ErrTruncated, words: []string{"magic"}},
		{name: "short non-magic", raw: []byte("GX"), sentinel: ErrNotGGUF},
		{name: "bad magic", mutate: func(r *rawFile) { r.magic = "GGML" }, sentinel: ErrNotGGUF, words: []string{`"GGML"`}},
		{name: "lowercase magic", mutate: func(r *rawFile) { r.magic = "gguf" }, sentinel: ErrNotGGUF},
		{name: "version 0", mutate: func(r *rawFile) { r.version = 0 }, sentinel: ErrVersion, words: []string{"version 0"}},
		{name: "version 1", mutate: func(r *rawFile) { r.version = 1 }, sentinel: ErrVersion, words: []string{"version 1"}},
		{name: "version 4", mutate: func(r *rawFile) { r.version = 4 }, sentinel: ErrVersion, words: []string{"version 4"}},
		{name: "version byte-swapped", mutate: func(r *rawFile) { r.version = 0x03000000 }, sentinel: ErrVersion, words: []string{"byte-swapped"}},
		{name: "version 2 byte-swapped", mutate: func(r *rawFile) { r.version = 0x00020000 }, sentinel: ErrVersion, words: []string{"byte-swapped"}},
		{name: "tensor count huge", mutate: func(r *rawFile) { r.nTensors = ptr(huge) }, sentinel: ErrTruncated, words: []string{"4611686018427387904 tensors"}},
		{name: "tensor count negative", mutate: func(r *rawFile) { r.nTensors = ptr(^uint64(0)) }, sentinel: ErrInvalid, words: []string{"tensor count -1"}},
		{name: "kv count huge", mutate: func(r *rawFile) { r.nKV = ptr(huge) }, sentinel: ErrTruncated, words: []string{"4611686018427387904 metadata"}},
		{name: "kv count max", mutate: func(r *rawFile) { r.nKV = ptr(uint64(1<<63 - 1)) }, sentinel: ErrTruncated},
		{name: "kv count negative", mutate: func(r *rawFile) { r.nKV = ptr(uint64(1) << 63) }, sentinel: ErrInvalid, words: []string{"metadata count"}},
		// The third pair is decoded from the tensor infos, which then run short.
		{name: "kv count one too many", mutate: func(r *rawFile) { r.nKV = ptr(uint64(3)) }, sentinel: ErrTruncated},
		{
			name:     "key length huge",
			raw:      cat([]byte("GGUF"), le32(3), le64(0), le64(1), le64(huge), []byte("xxxxxxxxxxxxxxxxxxxxxxxx")),
			sentinel: ErrTruncated, words: []string{"metadata pair 0", "string of 4611686018427387904 bytes"},
		},
		{
			name: "string value length huge",
			mutate: func(r *rawFile) {
				r.kvs[0].payload = cat(le32(uint32(ValueString)), le64(huge), []byte("llama"))
			},
			sentinel: ErrTruncated, words: []string{`"general.architecture"`, "string of"},
		},
		{
			name: "string value length max",
			mutate: func(r *rawFile) {
				r.kvs[0].payload = cat(le32(uint32(ValueString)), le64(^uint64(0)), []byte("llama"))
			},
			sentinel: ErrTruncated,
		},
		{
			name: "u32 array count huge",
			mutate: func(r *rawFile) {
				r.kvs = append(r.kvs, rawKV{"arr", cat(le32(uint32(ValueArray)), le32(uint32(ValueUint32)), le64(huge))})
			},
			sentinel: ErrTruncated, words: []string{`"arr"`, "array of 4611686018427387904 u32"},
		},
		{
			name: "u64 array count max",
			mutate: func(r *rawFile) {
				r.kvs = append(r.kvs, rawKV{"arr", cat(le32(uint32(ValueArray)), le32(uint32(ValueUint64)), le64(^uint64(0)))})
			},
			sentinel: ErrTruncated, words: []string{"array of"},
		},
		{
			name: "string array count huge",
			mutate: func(r *rawFile) {
				r.kvs = append(r.kvs, rawKV{"arr", cat(le32(uint32(ValueArray)), le32(uint32(ValueString)), le64(huge))})
			},
			sentinel: ErrTruncated, words: []string{"array of 4611686018427387904 strings"},
		},
		{
			name: "string array element length huge",
			mutate: func(r *rawFile) {
				r.kvs = append(r.kvs, rawKV{"arr", cat(le32(uint32(ValueArray)), le32(uint32(ValueString)), le64(2), gstr("ok"), le64(huge))})
			},
			sentinel: ErrTruncated, words: []string{"array element 1"},
		},
		{
			name: "nested array",
			mutate: func(r *rawFile) {
				r.kvs = append(r.kvs, rawKV{"nest", cat(le32(uint32(ValueArray)), le32(uint32(ValueArray)), le64(1),
					le32(uint32(ValueUint8)), le64(1), []byte{7})})
			},
			sentinel: ErrInvalid, words: []string{`"nest"`, "nested arrays"},
		},
		{
			name: "nested array depth bomb",
			mutate: func(r *rawFile) {
				p := cat(le32(uint32(ValueArray)))
				for range 100000 {
					p = append(p, le32(uint32(ValueArray))...)
					p = append(p, le64(1)...)
				}
				r.kvs = append(r.kvs, rawKV{"bomb", p})
			},
			sentinel: ErrInvalid, words: []string{`"bomb"`, "nested arrays"},
		},
		{
			name:     "unknown value type",
			mutate:   func(r *rawFile) { r.kvs[1].payload = cat(le32(13), le32(1)) },
			sentinel: ErrUnknownType, words: []string{`"llama.block_count"`, "invalid value type 13"},
		},
		{
			name:     "negative value type",
			mutate:   func(r *rawFile) { r.kvs[1].payload = cat(le32(0xFFFFFFFF), le32(1)) },
			sentinel: ErrUnknownType, words: []string{"invalid value type -1"},
		},
		{
			name: "unknown array element type",
			mutate: func(r *rawFile) {
				r.kvs = append(r.kvs, rawKV{"arr", cat(le32(uint32(ValueArray)), le32(99), le64(0))})
			},
			sentinel: ErrUnknownType, words: []string{"invalid element type 99"},
		},
		{name: "duplicate key", mutate: func(r *rawFile) { r.kvs = append(r.kvs, kvU32("llama.block_count", 2)) }, sentinel: ErrInvalid,
			words: []string{`duplicate key "llama.block_count"`}},
		{name: "empty key", mutate: func(r *rawFile) { r.kvs = append(r.kvs, kvU32("", 2)) }, sentinel: ErrInvalid, words: []string{"empty key"}},
		{name: "alignment 0", mutate: func(r *rawFile) { r.kvs = append(r.kvs, kvU32(KeyAlignment, 0)) }, sentinel: ErrInvalid,
			words: []string{"general.alignment is 0", "power of two"}},
		{name: "alignment 3", mutate: func(r *rawFile) { r.kvs = append(r.kvs, kvU32(KeyAlignment, 3)) }, sentinel: ErrInvalid,
			words: []string{"general.alignment is 3"}},
		{
			name: "alignment u64",
			mutate: func(r *rawFile) {
				r.kvs = append(r.kvs, rawKV{KeyAlignment, cat(le32(uint32(ValueUint64)), le64(32))})
			},
			sentinel: ErrInvalid, words: []string{"general.alignment has type u64, must be u32"},
		},
		{
			name: "alignment string",
			mutate: func(r *rawFile) {
				r.kvs = append(r.kvs, rawKV{KeyAlignment, cat(le32(uint32(ValueString)), gstr("32"))})
			},
			sentinel: ErrInvalid, words: []string{"has type str"},
		},
		{
			name: "alignment array",
			mutate: func(r *rawFile) {
				r.kvs = append(r.kvs, rawKV{KeyAlignment, cat(le32(uint32(ValueArray)), le32(uint32(ValueUint32)), le64(1), le32(32))})
			},
			sentinel: ErrInvalid, words: []string{"has type arr[u32]"},
		},
		{
			name:     "unknown tensor type",
			mutate:   func(r *rawFile) { r.tensors[0].typ = 40 },
			sentinel: ErrUnknownType, words: []string{`tensor "a"`, "invalid type 40"},
		},
		{
			name:     "negative tensor type",
			mutate:   func(r *rawFile) { r.tensors[0].typ = 0xFFFFFFFF },
			sentinel: ErrUnknownType, words: []string{"invalid type -1"},
		},
		{
			name:     "removed tensor type Q4_2",
			mutate:   func(r *rawFile) { r.tensors[0].typ = 4 },
			sentinel: ErrUnknownType, words: []string{"type 4 (Q4_2) was removed"},
		},
		{
			name:     "removed tensor type Q4_0_4_4",
			mutate:   func(r *rawFile) { r.tensors[0].typ = 31 },
			sentinel: ErrUnknownType, words: []string{"Q4_0_4_4"},
		},
		{
			name:     "removed tensor type IQ4_NL_8_8",
			mutate:   func(r *rawFile) { r.tensors[0].typ = 38 },
			sentinel: ErrUnknownType, words: []string{"IQ4_NL_8_8"},
		},
		{
			name:     "5 dims",
			mutate:   func(r *rawFile) { r.tensors[0].dims = []uint64{8, 1, 1, 1, 1} },
			sentinel: ErrInvalid, words: []string{`tensor "a"`, "5 dimensions"},
		},
		{
			name:     "huge dims count",
			mutate:   func(r *rawFile) { r.tensors[0].nDims = ptr(uint32(0xFFFFFFFF)) },
			sentinel: ErrInvalid, words: []string{"4294967295 dimensions"},
		},
		{
			name:     "negative dim",
			mutate:   func(r *rawFile) { r.tensors[0].dims = []uint64{8, ^uint64(0)} },
			sentinel: ErrInvalid, words: []string{"dimension 1 is -1"},
		},
		{
			name:     "zero second dim",
			mutate:   func(r *rawFile) { r.tensors[0].dims = []uint64{8, 0} },
			sentinel: ErrInvalid, words: []string{"dimension 1 is 0"},
		},
		{
			name:     "element count overflow",
			mutate:   func(r *rawFile) { r.tensors[0].dims = []uint64{1 << 32, 1 << 31} },
			sentinel: ErrInvalid, words: []string{"too many elements"},
		},
		{
			name:     "element count overflow 4d",
			mutate:   func(r *rawFile) { r.tensors[0].dims = []uint64{1 << 16, 1 << 16, 1 << 16, 1 << 15} },
			sentinel: ErrInvalid, words: []string{"too many elements"},
		},
		{
			name:     "byte size overflow",
			mutate:   func(r *rawFile) { r.tensors[0].dims = []uint64{1 << 62}; r.tensors[0].typ = uint32(TypeF64) },
			sentinel: ErrInvalid, words: []string{"overflows"},
		},
		{
			name:     "row not a block multiple",
			mutate:   func(r *rawFile) { r.tensors[1].dims = []uint64{16, 2} },
			sentinel: ErrInvalid, words: []string{`tensor "b"`, "16 elements", "block size 32"},
		},
		{
			name:     "tensor name 64 bytes",
			mutate:   func(r *rawFile) { r.tensors[0].name = string(bytes.Repeat([]byte("n"), 64)) },
			sentinel: ErrInvalid, words: []string{"64 bytes long", "at most 63"},
		},
		{
			name:     "tensor name with NUL",
			mutate:   func(r *rawFile) { r.tensors[0].name = "a\x00x" },
			sentinel: ErrInvalid, words: []string{"NUL"},
		},
		{
			name:     "tensor name length huge",
			raw:      cat([]byte("GGUF"), le32(3), le64(1), le64(0), le64(huge), make([]byte, 40)),
			sentinel: ErrTruncated, words: []string{"tensor 0: name"},
		},
		{
			name:     "duplicate tensor name",
			mutate:   func(r *rawFile) { r.tensors[1].name = "a" },
			sentinel: ErrInvalid, words: []string{`duplicate tensor name "a"`},
		},
		{
			name:     "offset misaligned",
			mutate:   func(r *rawFile) { r.tensors[1].offset = 33 },
			sentinel: ErrInvalid, words: []string{`tensor "b"`, "offset 33 is not a multiple of the alignment 32"},
		},
		{
			name:     "first offset not zero",
			mutate:   func(r *rawFile) { r.tensors[0].offset = 32; r.tensors[1].offset = 64 },
			sentinel: ErrInvalid, words: []string{`tensor "a"`, "gap", "expected 0"},
		},
		{
			name: "overlapping tensors",
			mutate: func(r *rawFile) {
				r.tensors[0].dims = []uint64{16} // 64 bytes, but b still starts at 32
				r.data = append(r.data, make([]byte, 32)...)
			},
			sentinel: ErrInvalid, words: []string{`tensor "b"`, `overlaps tensor "a"`},
		},
		{
			name:     "tensors out of order",
			mutate:   func(r *rawFile) { r.tensors[0].offset, r.tensors[1].offset = 96, 0 },
			sentinel: ErrInvalid, words: []string{`tensor "a"`},
		},
		{
			name:     "offset gap",
			mutate:   func(r *rawFile) { r.tensors[1].offset = 64; r.data = append(r.data, make([]byte, 32)...) },
			sentinel: ErrInvalid, words: []string{`tensor "b"`, "gap", "expected 32"},
		},
		{
			name:     "data beyond end of file",
			mutate:   func(r *rawFile) { r.data = r.data[:99] },
			sentinel: ErrTruncated, words: []string{`tensor "b"`, "beyond the end of the file"},
		},
		{
			name:     "huge tensor beyond end of file",
			mutate:   func(r *rawFile) { r.tensors[1].dims = []uint64{1 << 40, 1 << 20} },
			sentinel: ErrTruncated, words: []string{`tensor "b"`, "beyond the end"},
		},
		{
			name:     "offset huge",
			mutate:   func(r *rawFile) { r.tensors[1].offset = ^uint64(0) &^ 31 },
			sentinel: ErrInvalid, words: []string{`tensor "b"`, "gap"},
		},
		{
			name: "wrong alignment layout",
			mutate: func(r *rawFile) {
				// general.alignment 64 makes b's offset 32 misaligned.
				r.kvs = append(r.kvs, kvU32(KeyAlignment, 64))
				r.align = 64
			},
			sentinel: ErrInvalid, words: []string{"alignment 64"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.raw
			if b == nil {
				r := validRaw()
				tc.mutate(r)
				b = r.bytes()
			}
			f, err := readBytes(t, b)
			if err == nil {
				t.Fatalf("accepted: %+v", f)
			}
			t.Log(err)
			wantErr(t, err, tc.sentinel, tc.words...)
			// Exactly one sentinel.
			n := 0
			for _, s := range []error{ErrNotGGUF, ErrVersion, ErrTruncated, ErrInvalid, ErrUnknownType} {
				if errors.Is(err, s) {
					n++
				}
			}
			if n != 1 {
				t.Errorf("error %q wraps %d sentinels", err, n)
			}
		})
	}
}

// TestAcceptedEdgeCases checks files gguf.cpp accepts, which must not be
// rejected either.
func TestAcceptedEdgeCases(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*rawFile)
		check  func(*testing.T, *File)
	}{
		{"version 2", func(r *rawFile) { r.version = 2 }, func(t *testing.T, f *File) {
			if f.Version != 2 {
				t.Errorf("version %d", f.Version)
			}
		}},
		{"zero dims", func(r *rawFile) {
			r.tensors[0].dims = nil // one element: 4 bytes, padded to 32
		}, func(t *testing.T, f *File) {
			if ti := f.Tensors[0]; len(ti.Shape) != 0 || ti.Elements() != 1 || ti.Size != 4 {
				t.Errorf("tensor %+v", ti)
			}
		}},
		{"empty first dim", func(r *rawFile) {
			r.tensors[0].dims = []uint64{0, 3}
			r.tensors[1].offset = 0
			r.data = r.data[:68]
		}, func(t *testing.T, f *File) {
			if ti := f.Tensors[0]; ti.Elements() != 0 || ti.Size != 0 {
				t.Errorf("tensor %+v", ti)
			}
		}},
		{"alignment 64", func(r *rawFile) {
			r.kvs = append(r.kvs, kvU32(KeyAlignment, 64))
			r.align = 64
			r.tensors[1].offset = 64
			r.data = append(r.data[:32], append(make([]byte, 32), r.data[32:]...)...)
		}, func(t *testing.T, f *File) {
			if f.Alignment != 64 || f.DataOffset%64 != 0 {
				t.Errorf("alignment %d, data offset %d", f.Alignment, f.DataOffset)
			}
		}},
		{"alignment 1", func(r *rawFile) {
			r.kvs = append(r.kvs, kvU32(KeyAlignment, 1))
			r.align = 1
		}, func(t *testing.T, f *File) {
			if f.Alignment != 1 {
				t.Errorf("alignment %d", f.Alignment)
			}
		}},
		{"tensor name 63 bytes", func(r *rawFile) { r.tensors[0].name = string(bytes.Repeat([]byte("n"), 63)) }, nil},
		{"empty tensor name", func(r *rawFile) { r.tensors[0].name = "" }, nil},
		{"bool byte 2", func(r *rawFile) { r.kvs = append(r.kvs, rawKV{"b", cat(le32(uint32(ValueBool)), []byte{2})}) },
			func(t *testing.T, f *File) {
				if b, ok := f.Bool("b"); !b || !ok {
					t.Errorf("bool = %v, %v", b, ok)
				}
			}},
		{"trailing bytes", func(r *rawFile) { r.data = append(r.data, 1, 2, 3) }, nil},
		{"no tensors, no padding", func(r *rawFile) {
			r.tensors, r.data, r.align = nil, nil, 1
		}, func(t *testing.T, f *File) {
			if f.DataOffset < f.Size || f.DataOffset%32 != 0 {
				t.Errorf("data offset %d, size %d", f.DataOffset, f.Size)
			}
		}},
		{"non-UTF-8 key", func(r *rawFile) { r.kvs = append(r.kvs, kvU32("\xff\xfe", 1)) }, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := validRaw()
			tc.mutate(r)
			f, err := readBytes(t, r.bytes())
			if err != nil {
				t.Fatal(err)
			}
			if tc.check != nil {
				tc.check(t, f)
			}
		})
	}
}

// TestOpenErrors checks that Open prefixes errors with the path.
func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	p := dir + "/bad.gguf"
	r := validRaw()
	r.version = 1
	if err := writeFileBytes(p, r.bytes()); err != nil {
		t.Fatal(err)
	}
	_, err := Open(p)
	wantErr(t, err, ErrVersion, p+": gguf: version 1")
	if _, err := Open(dir + "/missing.gguf"); err == nil {
		t.Fatal("missing file accepted")
	}
	if _, err := Open(dir); err == nil {
		t.Fatal("directory accepted")
	}
}

var _ io.ReaderAt = failingReader{}
