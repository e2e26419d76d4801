package gguf

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
)

// Writer builds a GGUF file (version 3). It holds the metadata and, for each
// tensor, its info and a callback that streams the tensor's data when the
// file is written, so models larger than memory can be converted through it.
//
// The layout is the one llama.cpp writes and requires: header, metadata,
// tensor infos, zero padding to the alignment, then each tensor's data in
// the order the tensors were added, each padded with zeros to the alignment.
//
// A Writer is not safe for concurrent use.
type Writer struct {
	kv      []KV
	keys    map[string]int // index into kv
	tensors []writerTensor
	names   map[string]struct{}
}

type writerTensor struct {
	info TensorInfo
	data func(io.Writer) error
}

// NewWriter returns an empty Writer with the default alignment of 32 bytes.
func NewWriter() *Writer {
	return &Writer{keys: make(map[string]int), names: make(map[string]struct{})}
}

// SetAlignment sets the alignment of the tensor data, a power of two that
// fits in a uint32. It stores the general.alignment key unless n is the
// default 32 and the key is not already set.
func (w *Writer) SetAlignment(n uint64) error {
	if n == 0 || n&(n-1) != 0 || n > math.MaxUint32 {
		return fmt.Errorf("gguf: alignment %d is not a power of two that fits in a uint32: %w", n, ErrInvalid)
	}
	if _, ok := w.keys[KeyAlignment]; ok || n != DefaultAlignment {
		w.Set(KeyAlignment, Uint32(uint32(n)))
	}
	return nil
}

// Set adds the metadata pair key = v or, if key is already set, replaces
// its value in place. Pairs are written in the order their keys were first
// set. Invalid keys and values are reported by [Writer.WriteTo].
func (w *Writer) Set(key string, v Value) {
	if i, ok := w.keys[key]; ok {
		w.kv[i].Value = v
		return
	}
	w.keys[key] = len(w.kv)
	w.kv = append(w.kv, KV{Key: key, Value: v})
}

// Delete removes key from the metadata, if it is set.
func (w *Writer) Delete(key string) {
	i, ok := w.keys[key]
	if !ok {
		return
	}
	w.kv = slices.Delete(w.kv, i, i+1)
	delete(w.keys, key)
	for j := i; j < len(w.kv); j++ {
		w.keys[w.kv[j].Key] = j
	}
}

// AddTensor appends a tensor. The name must be non-empty, unique, at most
// [MaxNameLen] bytes and free of NUL bytes; the shape (ggml order, at most
// four dimensions) must pass the checks [Read] makes, and its first
// dimension must be a multiple of typ's block size. Each [Writer.WriteTo]
// calls data once, in tensor order, and data must write exactly the
// tensor's size in bytes ([TensorInfo.Size]); data may be nil for a tensor
// of zero bytes.
func (w *Writer) AddTensor(name string, typ Type, shape []uint64, data func(io.Writer) error) error {
	if name == "" {
		return fmt.Errorf("gguf: tensor %d: empty name: %w", len(w.tensors), ErrInvalid)
	}
	if err := checkTensorName(name); err != nil {
		return fmt.Errorf("gguf: tensor: %w", err)
	}
	if _, dup := w.names[name]; dup {
		return fmt.Errorf("gguf: tensor %q: duplicate tensor name: %w", name, ErrInvalid)
	}
	if err := checkShape(shape); err != nil {
		return fmt.Errorf("gguf: tensor %q: %w", name, err)
	}
	size, err := tensorSize(typ, shape)
	if err != nil {
		return fmt.Errorf("gguf: tensor %q: %w", name, err)
	}
	if data == nil && size != 0 {
		return fmt.Errorf("gguf: tensor %q: nil data callback for %d bytes: %w", name, size, ErrInvalid)
	}
	w.names[name] = struct{}{}
	w.tensors = append(w.tensors, writerTensor{
		info: TensorInfo{Name: name, Type: typ, Shape: slices.Clone(shape), Size: size},
		data: data,
	})
	return nil
}

// WriteTo writes the GGUF file to out: header, metadata, tensor infos,
// padding, then each tensor's data from its callback, padded to the
// alignment. It validates the metadata first (non-empty keys, known value
// types, no arrays of arrays, a valid general.alignment) and writes nothing
// if that fails. It returns the number of bytes written.
func (w *Writer) WriteTo(out io.Writer) (int64, error) {
	align, err := w.check()
	if err != nil {
		return 0, err
	}
	cw := &countWriter{w: out}
	e := &encoder{w: bufio.NewWriterSize(cw, 1<<20)}

	e.bytes([]byte(magic))
	e.u32(maxVersion)
	e.u64(uint64(len(w.tensors)))
	e.u64(uint64(len(w.kv)))
	for _, kv := range w.kv {
		e.string(kv.Key)
		e.value(kv.Value)
	}
	var off uint64
	for i := range w.tensors {
		t := &w.tensors[i].info
		t.Offset = off
		e.string(t.Name)
		e.u32(uint32(len(t.Shape)))
		for _, d := range t.Shape {
			e.u64(d)
		}
		e.u32(uint32(t.Type))
		e.u64(t.Offset)
		padded, _ := padUp(t.Size, align)
		off += padded
	}
	e.pad(align)

	for _, wt := range w.tensors {
		if wt.data != nil {
			if err := writeData(wt, e.w); err != nil {
				return cw.n, err
			}
		}
		e.written += wt.info.Size
		e.pad(align)
	}
	if err := e.w.Flush(); err != nil {
		return cw.n, fmt.Errorf("gguf: writing: %w", err)
	}
	return cw.n, nil
}

// WriteFile writes the GGUF file to path+".tmp", syncs it, and renames it to
// path, so path never holds a partial file. It removes the temporary file on
// error.
func (w *Writer) WriteFile(path string) error {
	tmp := path + ".tmp"
	fh, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("gguf: %w", err)
	}
	if err := w.writeSynced(fh); err != nil {
		fh.Close()
		os.Remove(tmp)
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := fh.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("gguf: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("gguf: %w", err)
	}
	return nil
}

// writeSynced writes the file to fh and flushes it to stable storage.
func (w *Writer) writeSynced(fh *os.File) error {
	if _, err := w.WriteTo(fh); err != nil {
		return err
	}
	return fh.Sync()
}

// check validates the metadata and returns the alignment it sets.
func (w *Writer) check() (uint64, error) {
	align := uint64(DefaultAlignment)
	for i, kv := range w.kv {
		if kv.Key == "" {
			return 0, fmt.Errorf("gguf: metadata pair %d: empty key: %w", i, ErrInvalid)
		}
		if err := checkValue(kv.Value); err != nil {
			return 0, fmt.Errorf("gguf: metadata key %q: %w", kv.Key, err)
		}
		if kv.Key == KeyAlignment {
			a, err := checkAlignment(kv.Value)
			if err != nil {
				return 0, err
			}
			align = a
		}
	}
	return align, nil
}

// checkValue reports whether v can be written in a form llama.cpp reads.
func checkValue(v Value) error {
	switch {
	case v.Type == ValueArray:
		switch {
		case v.elem == ValueArray:
			return fmt.Errorf("array of arrays: llama.cpp does not support nested arrays: %w", ErrInvalid)
		case !v.elem.Valid():
			return fmt.Errorf("array of invalid element type %d: %w", uint32(v.elem), ErrUnknownType)
		}
		for i, e := range v.vals { // only arrays built by Array from mismatched elements
			if e.Type != v.elem {
				return fmt.Errorf("array of %s: element %d has type %s: %w", v.elem, i, typeName(e), ErrInvalid)
			}
		}
	case !v.Type.Valid():
		return fmt.Errorf("invalid value type %d: %w", uint32(v.Type), ErrUnknownType)
	}
	return nil
}

// encoder writes little-endian GGUF primitives, counting bytes for padding.
// Write errors stick in the bufio.Writer and surface at Flush.
type encoder struct {
	w       *bufio.Writer
	written uint64
	buf     [8]byte
}

func (e *encoder) bytes(b []byte) {
	e.w.Write(b)
	e.written += uint64(len(b))
}

func (e *encoder) u32(v uint32) {
	binary.LittleEndian.PutUint32(e.buf[:], v)
	e.bytes(e.buf[:4])
}

func (e *encoder) u64(v uint64) {
	binary.LittleEndian.PutUint64(e.buf[:], v)
	e.bytes(e.buf[:8])
}

func (e *encoder) string(s string) {
	e.u64(uint64(len(s)))
	e.w.WriteString(s)
	e.written += uint64(len(s))
}

var zeros [256]byte

// pad writes zeros up to the next multiple of align.
func (e *encoder) pad(align uint64) {
	for e.written%align != 0 {
		n := min(align-e.written%align, uint64(len(zeros)))
		e.bytes(zeros[:n])
	}
}

// value writes a value's type and payload; v has passed checkValue.
func (e *encoder) value(v Value) {
	e.u32(uint32(v.Type))
	switch {
	case v.Type == ValueArray:
		e.u32(uint32(v.elem))
		e.u64(uint64(v.Len()))
		switch {
		case v.vals != nil:
			for _, x := range v.vals {
				e.payload(x)
			}
		case v.elem == ValueString:
			for _, s := range v.strs {
				e.string(s)
			}
		default:
			e.bytes(v.raw)
		}
	default:
		e.payload(v)
	}
}

// payload writes a scalar's bytes without its type.
func (e *encoder) payload(v Value) {
	if v.Type == ValueString {
		e.string(v.str)
		return
	}
	size := v.Type.size()
	putBits(e.buf[:], size, v.bits)
	e.bytes(e.buf[:size])
}

// countWriter counts the bytes written through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// writeData streams one tensor's data through its callback, checking that
// it writes exactly the tensor's size.
func writeData(wt writerTensor, w io.Writer) error {
	lw := &limitWriter{w: w, left: wt.info.Size}
	err := wt.data(lw)
	switch {
	case lw.wrote > wt.info.Size:
		return fmt.Errorf("gguf: tensor %q: data callback wrote at least %d bytes, want exactly %d: %w",
			wt.info.Name, lw.wrote, wt.info.Size, ErrInvalid)
	case err != nil:
		return fmt.Errorf("gguf: tensor %q: writing data: %w", wt.info.Name, err)
	case lw.err != nil:
		return fmt.Errorf("gguf: tensor %q: writing data: %w", wt.info.Name, lw.err)
	case lw.wrote != wt.info.Size:
		return fmt.Errorf("gguf: tensor %q: data callback wrote %d bytes, want exactly %d: %w",
			wt.info.Name, lw.wrote, wt.info.Size, ErrInvalid)
	}
	return nil
}

// limitWriter passes at most left bytes to w. wrote counts every byte
// offered, including refused ones.
type limitWriter struct {
	w     io.Writer
	left  uint64
	wrote uint64
	err   error // first error of w
}

var errTooMuch = errors.New("gguf: tensor data callback wrote more than the tensor's size")

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	if uint64(len(p)) > l.left {
		l.wrote += uint64(len(p))
		l.left = 0
		return 0, errTooMuch
	}
	n, err := l.w.Write(p)
	l.left -= uint64(n)
	l.wrote += uint64(n)
	if err != nil {
		l.err = err
	}
	return n, err
}

// Rewrite writes a copy of the GGUF file src to dst with the metadata
// changed by edit (for example a chat template set with w.Set), the tensors
// copied as they are.
func Rewrite(dst, src string, edit func(w *Writer)) error {
	h, err := Open(src)
	if err != nil {
		return err
	}
	f, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("gguf: %w", err)
	}
	defer f.Close()
	w := NewWriter()
	for _, kv := range h.KV {
		w.Set(kv.Key, kv.Value)
	}
	edit(w)
	for _, ti := range h.Tensors {
		if err := w.AddTensor(ti.Name, ti.Type, ti.Shape, func(out io.Writer) error {
			_, err := io.Copy(out, io.NewSectionReader(f, h.DataOffset+int64(ti.Offset), int64(ti.Size)))
			return err
		}); err != nil {
			return err
		}
	}
	return w.WriteFile(dst)
}
