package gguf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// window is how many bytes the decoder reads from the underlying reader at a
// time while parsing the header.
const window = 64 << 10

// decoder reads little-endian GGUF primitives sequentially from an
// io.ReaderAt of known size, through a read-ahead window. It never reads
// past size, and every length is checked against the bytes that remain
// before anything is allocated for it.
type decoder struct {
	r      io.ReaderAt
	size   int64  // file size
	off    int64  // offset of the next byte to decode
	buf    []byte // bytes of the file from bufOff
	bufOff int64
}

// remaining returns the number of bytes after the current offset.
func (d *decoder) remaining() int64 { return d.size - d.off }

// truncated returns the error for a need of n bytes that the file cannot
// satisfy.
func (d *decoder) truncated(n uint64) error {
	return fmt.Errorf("need %d bytes at offset %d but the file ends at %d: %w", n, d.off, d.size, ErrTruncated)
}

// readAt fills p from the file at off, reporting a short file as truncated.
func (d *decoder) readAt(p []byte, off int64) error {
	n, err := d.r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("file ends at offset %d, before its declared size %d: %w", off+int64(n), d.size, ErrTruncated)
	}
	return fmt.Errorf("reading %d bytes at offset %d: %w", len(p), off, err)
}

// next consumes n bytes and returns them. The slice is only valid until the
// next call.
func (d *decoder) next(n int) ([]byte, error) {
	if n < 0 || int64(n) > d.remaining() {
		return nil, d.truncated(uint64(n))
	}
	start := d.off - d.bufOff
	if d.off < d.bufOff || start+int64(n) > int64(len(d.buf)) {
		if n > window {
			p := make([]byte, n)
			if err := d.readAt(p, d.off); err != nil {
				return nil, err
			}
			d.off += int64(n)
			return p, nil
		}
		if cap(d.buf) < window {
			d.buf = make([]byte, window)
		}
		d.buf = d.buf[:min(int64(window), d.remaining())]
		if err := d.readAt(d.buf, d.off); err != nil {
			d.buf = d.buf[:0]
			return nil, err
		}
		d.bufOff, start = d.off, 0
	}
	d.off += int64(n)
	return d.buf[start : start+int64(n)], nil
}

// read consumes len(p) bytes into p.
func (d *decoder) read(p []byte) error {
	if int64(len(p)) > d.remaining() {
		return d.truncated(uint64(len(p)))
	}
	if len(p) > window {
		if err := d.readAt(p, d.off); err != nil {
			return err
		}
		d.off += int64(len(p))
		return nil
	}
	b, err := d.next(len(p))
	if err != nil {
		return err
	}
	copy(p, b)
	return nil
}

func (d *decoder) u32() (uint32, error) {
	b, err := d.next(4)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

func (d *decoder) u64() (uint64, error) {
	b, err := d.next(8)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

// string decodes a GGUF string: a uint64 length and that many bytes.
func (d *decoder) string() (string, error) {
	n, err := d.u64()
	if err != nil {
		return "", err
	}
	if n > uint64(d.remaining()) {
		return "", fmt.Errorf("string of %d bytes at offset %d but only %d bytes remain: %w", n, d.off, d.remaining(), ErrTruncated)
	}
	b, err := d.next(int(n))
	if err != nil {
		return "", err
	}
	return string(b), nil
}
