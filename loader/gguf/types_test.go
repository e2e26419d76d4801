package gguf

import (
	"errors"
	"testing"
)

func TestTypeTable(t *testing.T) {
	tests := []struct {
		typ        Type
		name       string
		block, siz uint64
	}{
		{TypeF32, "F32", 1, 4},
		{TypeF16, "F16", 1, 2},
		{TypeQ4_0, "Q4_0", 32, 18},
		{TypeQ4_1, "Q4_1", 32, 20},
		{TypeQ5_0, "Q5_0", 32, 22},
		{TypeQ5_1, "Q5_1", 32, 24},
		{TypeQ8_0, "Q8_0", 32, 34},
		{TypeQ8_1, "Q8_1", 32, 36},
		{TypeQ2_K, "Q2_K", 256, 84},
		{TypeQ3_K, "Q3_K", 256, 110},
		{TypeQ4_K, "Q4_K", 256, 144},
		{TypeQ5_K, "Q5_K", 256, 176},
		{TypeQ6_K, "Q6_K", 256, 210},
		{TypeQ8_K, "Q8_K", 256, 292},
		{TypeIQ2_XXS, "IQ2_XXS", 256, 66},
		{TypeIQ2_XS, "IQ2_XS", 256, 74},
		{TypeIQ3_XXS, "IQ3_XXS", 256, 98},
		{TypeIQ1_S, "IQ1_S", 256, 50},
		{TypeIQ4_NL, "IQ4_NL", 32, 18},
		{TypeIQ3_S, "IQ3_S", 256, 110},
		{TypeIQ2_S, "IQ2_S", 256, 82},
		{TypeIQ4_XS, "IQ4_XS", 256, 136},
		{TypeI8, "I8", 1, 1},
		{TypeI16, "I16", 1, 2},
		{TypeI32, "I32", 1, 4},
		{TypeI64, "I64", 1, 8},
		{TypeF64, "F64", 1, 8},
		{TypeIQ1_M, "IQ1_M", 256, 56},
		{TypeBF16, "BF16", 1, 2},
		{TypeTQ1_0, "TQ1_0", 256, 54},
		{TypeTQ2_0, "TQ2_0", 256, 66},
		{TypeMXFP4, "MXFP4", 32, 17},
	}
	known := 0
	for i := range typeCount + 5 {
		if Type(i).Known() {
			known++
		}
	}
	if known != len(tests) {
		t.Errorf("%d known types, table has %d", known, len(tests))
	}
	for _, tc := range tests {
		if got := tc.typ.String(); got != tc.name {
			t.Errorf("Type(%d).String() = %q, want %q", tc.typ, got, tc.name)
		}
		if !tc.typ.Known() || tc.typ.BlockSize() != tc.block || tc.typ.TypeSize() != tc.siz {
			t.Errorf("%s: known %v block %d size %d, want %d %d", tc.name, tc.typ.Known(), tc.typ.BlockSize(), tc.typ.TypeSize(), tc.block, tc.siz)
		}
		for _, s := range []string{tc.name, lower(tc.name)} {
			if got, err := ParseType(s); err != nil || got != tc.typ {
				t.Errorf("ParseType(%q) = %v, %v", s, got, err)
			}
		}
		row, err := tc.typ.RowSize(tc.block * 3)
		if err != nil || row != tc.siz*3 {
			t.Errorf("%s.RowSize(%d) = %d, %v", tc.name, tc.block*3, row, err)
		}
		if tc.block > 1 {
			if _, err := tc.typ.RowSize(tc.block + 1); !errors.Is(err, ErrInvalid) {
				t.Errorf("%s.RowSize(%d): got %v", tc.name, tc.block+1, err)
			}
		}
	}
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func TestRemovedAndUnknownTypes(t *testing.T) {
	for _, id := range []Type{4, 5, 31, 32, 33, 36, 37, 38} {
		if id.Known() || id.BlockSize() != 0 || id.TypeSize() != 0 {
			t.Errorf("removed type %d reported live", id)
		}
		if _, err := id.RowSize(32); !errors.Is(err, ErrUnknownType) {
			t.Errorf("RowSize of removed type %d: %v", id, err)
		}
	}
	if s := Type(4).String(); s != "Q4_2 (removed)" {
		t.Errorf("Type(4) = %q", s)
	}
	if s := Type(40).String(); s != "Type(40)" {
		t.Errorf("Type(40) = %q", s)
	}
	if Type(40).Known() || Type(1<<31).Known() {
		t.Error("out of range type reported live")
	}
	for _, s := range []string{"", "Q4_2", "q4_0_4_4", "F8", "DEPRECATED"} {
		if _, err := ParseType(s); !errors.Is(err, ErrUnknownType) {
			t.Errorf("ParseType(%q): %v", s, err)
		}
	}
	if _, err := TypeF32.RowSize(1 << 63); !errors.Is(err, ErrInvalid) {
		t.Errorf("RowSize overflow: %v", err)
	}
}

func TestValueTypeString(t *testing.T) {
	want := []string{"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "str", "arr", "u64", "i64", "f64"}
	for i, w := range want {
		if got := ValueType(i).String(); got != w || !ValueType(i).Valid() {
			t.Errorf("ValueType(%d) = %q, want %q", i, got, w)
		}
	}
	if got := ValueType(13).String(); got != "ValueType(13)" || ValueType(13).Valid() {
		t.Errorf("ValueType(13) = %q", got)
	}
}
