package gguf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
)

// This file holds test helpers: a builder of raw GGUF bytes that can express
// malformed files, and checks on errors.

func le32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
func le64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

// gstr encodes a GGUF string.
func gstr(s string) []byte { return append(le64(uint64(len(s))), s...) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// rawKV is one metadata pair: key, then payload verbatim (value type and
// value).
type rawKV struct {
	key     string
	payload []byte
}

// kvU32 returns a u32 metadata pair.
func kvU32(key string, v uint32) rawKV { return rawKV{key, cat(le32(uint32(ValueUint32)), le32(v))} }

// rawTensor is one tensor info; nDims overrides len(dims) when set.
type rawTensor struct {
	name   string
	nDims  *uint32
	dims   []uint64
	typ    uint32
	offset uint64
}

// rawFile is a GGUF file described field by field, so that any field can be
// made wrong.
type rawFile struct {
	magic    string
	version  uint32
	nTensors *uint64 // overrides len(tensors)
	nKV      *uint64 // overrides len(kvs)
	kvs      []rawKV
	tensors  []rawTensor
	align    uint64 // padding before the data section; 0 means 32
	data     []byte
}

func ptr[T any](v T) *T { return &v }

func (r *rawFile) bytes() []byte {
	var b bytes.Buffer
	b.WriteString(r.magic)
	b.Write(le32(r.version))
	nt, nk := uint64(len(r.tensors)), uint64(len(r.kvs))
	if r.nTensors != nil {
		nt = *r.nTensors
	}
	if r.nKV != nil {
		nk = *r.nKV
	}
	b.Write(le64(nt))
	b.Write(le64(nk))
	for _, kv := range r.kvs {
		b.Write(gstr(kv.key))
		b.Write(kv.payload)
	}
	for _, t := range r.tensors {
		b.Write(gstr(t.name))
		n := uint32(len(t.dims))
		if t.nDims != nil {
			n = *t.nDims
		}
		b.Write(le32(n))
		for _, d := range t.dims {
			b.Write(le64(d))
		}
		b.Write(le32(t.typ))
		b.Write(le64(t.offset))
	}
	align := r.align
	if align == 0 {
		align = 32
	}
	for uint64(b.Len())%align != 0 {
		b.WriteByte(0)
	}
	b.Write(r.data)
	return b.Bytes()
}

// validRaw returns a small valid file: a string and a u32 pair, an F32 [8]
// tensor at 0 (32 bytes) and a Q8_0 [32 2] tensor at 32 (68 bytes).
func validRaw() *rawFile {
	return &rawFile{
		magic:   "GGUF",
		version: 3,
		kvs: []rawKV{
			{"general.architecture", cat(le32(uint32(ValueString)), gstr("llama"))},
			kvU32("llama.block_count", 1),
		},
		tensors: []rawTensor{
			{name: "a", dims: []uint64{8}, typ: uint32(TypeF32), offset: 0},
			{name: "b", dims: []uint64{32, 2}, typ: uint32(TypeQ8_0), offset: 32},
		},
		data: bytes.Repeat([]byte{0x5a}, 32+68),
	}
}

// readBytes runs Read on b, turning a panic into a test failure.
func readBytes(t testing.TB, b []byte) (f *File, err error) {
	t.Helper()
	defer func() {
		if p := recover(); p != nil {
			t.Fatalf("Read panicked: %v", p)
		}
	}()
	return Read(bytes.NewReader(b), int64(len(b)))
}

// wantErr checks that err wraps sentinel and mentions every one of words.
func wantErr(t testing.TB, err, sentinel error, words ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %v", sentinel)
	}
	if !errors.Is(err, sentinel) {
		t.Fatalf("error %q does not wrap %v", err, sentinel)
	}
	for _, w := range words {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
}

// writeBytes runs w.WriteTo into memory.
func writeBytes(t testing.TB, w *Writer) []byte {
	t.Helper()
	var b bytes.Buffer
	n, err := w.WriteTo(&b)
	if err != nil {
		t.Fatalf("WriteTo: %v", err)
	}
	if n != int64(b.Len()) {
		t.Fatalf("WriteTo returned %d, wrote %d bytes", n, b.Len())
	}
	return b.Bytes()
}

// bytesData returns a tensor data callback writing p.
func bytesData(p []byte) func(io.Writer) error {
	return func(w io.Writer) error {
		_, err := w.Write(p)
		return err
	}
}

// pattern returns n bytes that differ between tensors seeded differently.
func pattern(n uint64, seed byte) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i)*31 + seed
	}
	return p
}

func writeFileBytes(path string, b []byte) error { return os.WriteFile(path, b, 0o644) }
