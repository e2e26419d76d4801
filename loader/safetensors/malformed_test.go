package safetensors

import (
	"encoding/binary"
	"testing"
)

func TestMalformed(t *testing.T) {
	d8 := make([]byte, 8)
	d16 := make([]byte, 16)
	lenOnly := func(n uint64) []byte { return binary.LittleEndian.AppendUint64(nil, n) }
	tests := []struct {
		name     string
		raw      []byte
		sentinel error
		words    []string
	}{
		{"empty file", nil, ErrTruncated, []string{"shorter than the 8-byte header length"}},
		{"short length", []byte{1, 0, 0}, ErrTruncated, nil},
		{"header length beyond file", append(lenOnly(100), "{}"...), ErrTruncated, []string{"header length 100", "beyond the end"}},
		{"huge header length", append(lenOnly(1<<62), "{}"...), ErrInvalid, []string{"exceeds the limit of 100000000"}},
		{"max uint64 header length", append(lenOnly(^uint64(0)), "{}"...), ErrInvalid, []string{"exceeds the limit"}},
		{"header just over the limit", append(lenOnly(MaxHeaderSize+1), "{}"...), ErrInvalid, []string{"exceeds the limit"}},
		{"truncated header", append(lenOnly(16), `{"a":{"dty`...), ErrTruncated, nil},
		{"zero header length", lenOnly(0), ErrInvalid, []string{"does not start with '{'"}},
		{"not JSON", rawST("hello, world", nil), ErrInvalid, []string{"does not start with '{'"}},
		{"leading space", rawST(" {}", nil), ErrInvalid, []string{"does not start with '{'"}},
		{"broken JSON", rawST(`{"a":`, nil), ErrInvalid, []string{"not JSON"}},
		{"array header", rawST(`[1,2]`, nil), ErrInvalid, nil},
		{"two objects", rawST(`{} {}`, nil), ErrInvalid, []string{"after the JSON object"}},
		{"trailing garbage", rawST(`{}x`, nil), ErrInvalid, nil},
		{"invalid UTF-8", rawST("{\"\xff\":1}", nil), ErrInvalid, []string{"UTF-8"}},
		{"NUL padding", rawST("{}\x00\x00", nil), ErrInvalid, nil},
		{"overlapping offsets", rawST(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, make([]byte, 12)),
			ErrInvalid, []string{`tensor "b"`, "overlap", `"a"`}},
		{"same range twice", rawST(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, d16),
			ErrInvalid, []string{"overlap"}},
		{"hole between tensors", rawST(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}}`, make([]byte, 20)),
			ErrInvalid, []string{`tensor "b"`, "hole"}},
		{"hole at start", rawST(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, d16), ErrInvalid, []string{"hole"}},
		{"trailing bytes", rawST(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, make([]byte, 9)), ErrInvalid, []string{"trailing"}},
		{"data but no tensors", rawST(`{}`, d8), ErrInvalid, []string{"trailing"}},
		{"end beyond file", rawST(`{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`, d8), ErrTruncated, []string{`tensor "a"`, "beyond the end"}},
		{"huge end", rawST(`{"a":{"dtype":"U8","shape":[9223372036854775807],"data_offsets":[0,9223372036854775807]}}`, d8), ErrTruncated, []string{"beyond the end"}},
		{"begin after end", rawST(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}`, d8), ErrInvalid, []string{"end before they begin"}},
		{"shape x dtype too small", rawST(`{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, d8), ErrInvalid, []string{"needs 12 bytes", "hold 8"}},
		{"shape x dtype too large", rawST(`{"a":{"dtype":"F16","shape":[2],"data_offsets":[0,8]}}`, d8), ErrInvalid, []string{"needs 4 bytes"}},
		{"overflow shape", rawST(`{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}`, d8), ErrInvalid, []string{"overflows"}},
		{"overflow bytes", rawST(`{"a":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,8]}}`, d8), ErrInvalid, []string{"overflows"}},
		{"overflow wraps to a match", rawST(`{"a":{"dtype":"F32","shape":[4611686018427387906],"data_offsets":[0,8]}}`, d8), ErrInvalid, []string{"overflows"}},
		{"dimension beyond int64", rawST(`{"a":{"dtype":"F32","shape":[9223372036854775808],"data_offsets":[0,8]}}`, d8), ErrInvalid, []string{"shape"}},
		{"negative dimension", rawST(`{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}`, d8), ErrInvalid, []string{"shape"}},
		{"fractional dimension", rawST(`{"a":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}}`, d8), ErrInvalid, []string{"shape"}},
		{"exponent offset", rawST(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8e0]}}`, d8), ErrInvalid, []string{"data_offsets"}},
		{"string dimension", rawST(`{"a":{"dtype":"F32","shape":["2"],"data_offsets":[0,8]}}`, d8), ErrInvalid, []string{"shape"}},
		{"null shape", rawST(`{"a":{"dtype":"F32","shape":null,"data_offsets":[0,8]}}`, d8), ErrInvalid, []string{"not an array"}},
		{"three offsets", rawST(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8,8]}}`, d8), ErrInvalid, []string{"3 elements"}},
		{"one offset", rawST(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[8]}}`, d8), ErrInvalid, []string{"1 elements"}},
		{"missing dtype", rawST(`{"a":{"shape":[2],"data_offsets":[0,8]}}`, d8), ErrInvalid, []string{`tensor "a"`, "missing dtype"}},
		{"missing shape", rawST(`{"a":{"dtype":"F32","data_offsets":[0,8]}}`, d8), ErrInvalid, []string{"missing shape"}},
		{"missing offsets", rawST(`{"a":{"dtype":"F32","shape":[2]}}`, d8), ErrInvalid, []string{"missing data_offsets"}},
		{"numeric dtype", rawST(`{"a":{"dtype":0,"shape":[2],"data_offsets":[0,8]}}`, d8), ErrInvalid, []string{"dtype"}},
		{"entry not an object", rawST(`{"a":[1,2]}`, nil), ErrInvalid, []string{`tensor "a"`, "not an object"}},
		{"unknown dtype", rawST(`{"a":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}}`, d8), ErrUnknownDType, []string{`tensor "a"`, `"F33"`}},
		{"lowercase dtype", rawST(`{"a":{"dtype":"f32","shape":[2],"data_offsets":[0,8]}}`, d8), ErrUnknownDType, []string{`"f32"`}},
		{"unsupported dtype I64", rawST(`{"pos":{"dtype":"I64","shape":[2],"data_offsets":[0,16]}}`, d16), ErrUnsupportedDType,
			[]string{`tensor "pos" has dtype I64; only F32, F16, BF16, U8 (packed quantized data) and F8_E4M3 (FP8 weights) are supported`}},
		{"unsupported dtype F8", rawST(`{"q":{"dtype":"F8_E5M2","shape":[8],"data_offsets":[0,8]}}`, d8), ErrUnsupportedDType, []string{"F8_E5M2"}},
		{"sub-byte partial", rawST(`{"q":{"dtype":"F4","shape":[3],"data_offsets":[0,1]}}`, d8[:1]), ErrInvalid, []string{"whole bytes"}},
		{"duplicate tensor", rawST(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}`, d16),
			ErrInvalid, []string{`duplicate key "a"`}},
		{"duplicate field", rawST(`{"a":{"dtype":"F32","dtype":"F16","shape":[2],"data_offsets":[0,8]}}`, d8), ErrInvalid, []string{`duplicate key "dtype"`}},
		{"duplicate metadata", rawST(`{"__metadata__":{"k":"1"},"__metadata__":{"k":"2"}}`, nil), ErrInvalid, []string{"duplicate key"}},
		{"metadata non-string", rawST(`{"__metadata__":{"format":"pt","n":1}}`, nil), ErrInvalid, []string{"__metadata__", `"n"`, "not a string"}},
		{"metadata null value", rawST(`{"__metadata__":{"n":null}}`, nil), ErrInvalid, []string{"not a string"}},
		{"metadata not an object", rawST(`{"__metadata__":"pt"}`, nil), ErrInvalid, []string{"__metadata__"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readBytes(tc.raw)
			wantErr(t, err, tc.sentinel, tc.words...)
		})
	}
}

// TestAccepted covers the edges the reference implementation accepts.
func TestAccepted(t *testing.T) {
	tests := []struct {
		name string
		raw  []byte
	}{
		{"tensors out of order", rawST(`{"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 8))},
		{"unknown fields ignored", rawST(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"extra":[1,{}]}}`, make([]byte, 4))},
		{"whitespace padding", rawST("{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}\n\t  ", make([]byte, 4))},
		{"null metadata", rawST(`{"__metadata__":{}}`, nil)},
		{"empty name", rawST(`{"":{"dtype":"BF16","shape":[1],"data_offsets":[0,2]}}`, make([]byte, 2))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := readBytes(tc.raw); err != nil {
				t.Fatal(err)
			}
		})
	}
}
