package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/x448/float16"
)

// This file holds test helpers: a small safetensors writer that lays files
// out as the reference implementation does, a raw builder for malformed
// files, and checks on errors.

// tensor is one tensor to write.
type tensor struct {
	name  string
	dtype DType
	shape []int64
	data  []byte
}

// writeST returns a safetensors file holding ts, laid out as the reference
// writer lays it out: __metadata__ first, tensors in the given order with
// contiguous offsets from 0, the header padded with spaces to a multiple of
// 8.
func writeST(meta map[string]string, ts ...tensor) []byte {
	var h bytes.Buffer
	h.WriteByte('{')
	sep := ""
	if meta != nil {
		keys := make([]string, 0, len(meta))
		for k := range meta {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		h.WriteString(`"__metadata__":{`)
		for i, k := range keys {
			if i > 0 {
				h.WriteByte(',')
			}
			fmt.Fprintf(&h, "%s:%s", jsonQuote(k), jsonQuote(meta[k]))
		}
		h.WriteByte('}')
		sep = ","
	}
	var off int
	var data []byte
	for _, t := range ts {
		shape := make([]string, len(t.shape))
		for i, d := range t.shape {
			shape[i] = fmt.Sprint(d)
		}
		fmt.Fprintf(&h, `%s%s:{"dtype":%s,"shape":[%s],"data_offsets":[%d,%d]}`,
			sep, jsonQuote(t.name), jsonQuote(string(t.dtype)), strings.Join(shape, ","), off, off+len(t.data))
		sep = ","
		off += len(t.data)
		data = append(data, t.data...)
	}
	h.WriteByte('}')
	for h.Len()%8 != 0 {
		h.WriteByte(' ')
	}
	return rawST(h.String(), data)
}

// jsonQuote returns s as a JSON string.
func jsonQuote(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// rawST returns a file with the given header and data, N set to the
// header's length.
func rawST(header string, data []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	b = append(b, header...)
	return append(b, data...)
}

func f32Bytes(vs ...float32) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return b
}

func f16Bytes(vs ...float32) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint16(b, float16.Fromfloat32(v).Bits())
	}
	return b
}

func bf16Bytes(vs ...float32) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint16(b, Float32ToBF16(v))
	}
	return b
}

// sample returns a valid file with one tensor of each supported dtype.
func sample() []byte {
	return writeST(map[string]string{"format": "pt"},
		tensor{"w", F32, []int64{2, 3}, f32Bytes(1, 2, 3, 4, 5, 6)},
		tensor{"h", F16, []int64{2}, f16Bytes(0.5, -2)},
		tensor{"b", BF16, []int64{3}, bf16Bytes(1, -1.5, 256)},
	)
}

func readBytes(b []byte) (*File, error) { return Read(bytes.NewReader(b), int64(len(b))) }

// sentinels are the errors every malformed-content error wraps one of.
var sentinels = []error{ErrTruncated, ErrInvalid, ErrUnknownDType, ErrUnsupportedDType}

// wantErr checks that err wraps sentinel and no other, and mentions every
// word.
func wantErr(t *testing.T, err, sentinel error, words ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %v", sentinel)
	}
	if !errors.Is(err, sentinel) {
		t.Fatalf("error %q does not wrap %v", err, sentinel)
	}
	for _, s := range sentinels {
		if s != sentinel && errors.Is(err, s) {
			t.Fatalf("error %q wraps %v too", err, s)
		}
	}
	for _, w := range words {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
}

// writeFile writes b to dir/name and returns the path.
func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
