package gguf

import (
	"math"
	"slices"
	"strings"
	"testing"
)

func TestValueAccessors(t *testing.T) {
	type want struct {
		u     uint64
		uok   bool
		i     int64
		iok   bool
		f     float64
		fok   bool
		str   string
		sok   bool
		b     bool
		bok   bool
		print string
	}
	tests := []struct {
		v    Value
		typ  ValueType
		want want
	}{
		{Uint8(200), ValueUint8, want{u: 200, uok: true, i: 200, iok: true, f: 200, fok: true, print: "200"}},
		{Int8(-3), ValueInt8, want{i: -3, iok: true, f: -3, fok: true, print: "-3"}},
		{Int8(3), ValueInt8, want{u: 3, uok: true, i: 3, iok: true, f: 3, fok: true, print: "3"}},
		{Uint16(65535), ValueUint16, want{u: 65535, uok: true, i: 65535, iok: true, f: 65535, fok: true, print: "65535"}},
		{Int16(-32768), ValueInt16, want{i: -32768, iok: true, f: -32768, fok: true, print: "-32768"}},
		{Uint32(7), ValueUint32, want{u: 7, uok: true, i: 7, iok: true, f: 7, fok: true, print: "7"}},
		{Int32(-7), ValueInt32, want{i: -7, iok: true, f: -7, fok: true, print: "-7"}},
		{Uint64(math.MaxUint64), ValueUint64, want{u: math.MaxUint64, uok: true, f: math.MaxUint64, fok: true, print: "18446744073709551615"}},
		{Int64(math.MinInt64), ValueInt64, want{i: math.MinInt64, iok: true, f: math.MinInt64, fok: true, print: "-9223372036854775808"}},
		{Float32(0.5), ValueFloat32, want{f: 0.5, fok: true, print: "0.5"}},
		{Float32(1e-5), ValueFloat32, want{f: float64(float32(1e-5)), fok: true, print: "1e-05"}},
		{Float64(-2.25), ValueFloat64, want{f: -2.25, fok: true, print: "-2.25"}},
		{Bool(true), ValueBool, want{b: true, bok: true, print: "true"}},
		{Bool(false), ValueBool, want{bok: true, print: "false"}},
		{String("hi \"x\""), ValueString, want{str: "hi \"x\"", sok: true, print: `"hi \"x\""`}},
		{Value{}, ValueUint8, want{uok: true, iok: true, fok: true, print: "0"}},
	}
	for _, tc := range tests {
		v, w := tc.v, tc.want
		if v.Type != tc.typ || v.IsArray() || v.Len() != 0 || v.Elem() != 0 {
			t.Errorf("%v: type %v array %v len %d", v, v.Type, v.IsArray(), v.Len())
		}
		if u, ok := v.AsUint(); u != w.u || ok != w.uok {
			t.Errorf("%v.AsUint() = %d, %v", v, u, ok)
		}
		if i, ok := v.AsInt(); i != w.i || ok != w.iok {
			t.Errorf("%v.AsInt() = %d, %v", v, i, ok)
		}
		if f, ok := v.AsFloat(); f != w.f || ok != w.fok {
			t.Errorf("%v.AsFloat() = %v, %v", v, f, ok)
		}
		if s, ok := v.AsString(); s != w.str || ok != w.sok {
			t.Errorf("%v.AsString() = %q, %v", v, s, ok)
		}
		if b, ok := v.AsBool(); b != w.b || ok != w.bok {
			t.Errorf("%v.AsBool() = %v, %v", v, b, ok)
		}
		if got := v.String(); got != w.print {
			t.Errorf("String() = %q, want %q", got, w.print)
		}
		if _, ok := v.AsStrings(); ok {
			t.Errorf("%v.AsStrings() ok on a scalar", v)
		}
		if !v.Equal(v) {
			t.Errorf("%v not equal to itself", v)
		}
	}
}

func TestValueArrays(t *testing.T) {
	tokens := make([]string, 32000)
	for i := range tokens {
		tokens[i] = "t"
	}
	tests := []struct {
		v     Value
		elem  ValueType
		n     int
		print string
	}{
		{Uint32s([]uint32{1, 2, 3}), ValueUint32, 3, "[1, 2, 3]"},
		{Int32s([]int32{1, 2, 3, 4, 5, 6, 7}), ValueInt32, 7, "[1, 2, 3, ... 7 items]"},
		{Strings(tokens), ValueString, 32000, `["t", "t", "t", ... 32000 items]`},
		{Strings(nil), ValueString, 0, "[]"},
		{Float32s([]float32{0.5, -1}), ValueFloat32, 2, "[0.5, -1]"},
		{Bools([]bool{true, false}), ValueBool, 2, "[true, false]"},
		{Int8s([]int8{-1}), ValueInt8, 1, "[-1]"},
		{Array(ValueArray, []Value{Uint8s([]uint8{1, 2}), Uint8s(nil)}), ValueArray, 2, "[[1, 2], []]"},
		{Array(ValueUint16, []Value{Uint16(9)}), ValueUint16, 1, "[9]"},
		{Array(ValueUint16, []Value{Uint32(9)}), ValueUint16, 1, "[9]"}, // mismatched, kept in general form
	}
	for _, tc := range tests {
		v := tc.v
		if !v.IsArray() || v.Type != ValueArray || v.Elem() != tc.elem || v.Len() != tc.n {
			t.Errorf("%v: array %v elem %v len %d", v, v.IsArray(), v.Elem(), v.Len())
		}
		if got := v.String(); got != tc.print {
			t.Errorf("String() = %q, want %q", got, tc.print)
		}
		if !v.Equal(v) {
			t.Errorf("%v not equal to itself", v)
		}
		for _, f := range []func() (uint64, bool){v.AsUint} {
			if _, ok := f(); ok {
				t.Errorf("%v.AsUint() ok on an array", v)
			}
		}
	}

	v := Int32s([]int32{-1, 2})
	if got, ok := v.AsInt32s(); !ok || !slices.Equal(got, []int32{-1, 2}) {
		t.Errorf("AsInt32s = %v, %v", got, ok)
	}
	if got, ok := v.AsInts(); !ok || !slices.Equal(got, []int64{-1, 2}) {
		t.Errorf("AsInts = %v, %v", got, ok)
	}
	if _, ok := v.AsUints(); ok {
		t.Error("AsUints ok with a negative element")
	}
	if got, ok := v.AsFloats(); !ok || !slices.Equal(got, []float64{-1, 2}) {
		t.Errorf("AsFloats = %v, %v", got, ok)
	}
	if _, ok := v.AsFloat32s(); ok {
		t.Error("AsFloat32s ok on i32")
	}
	if got, ok := Uint64s([]uint64{1, math.MaxUint64}).AsUints(); !ok || got[1] != math.MaxUint64 {
		t.Errorf("AsUints = %v, %v", got, ok)
	}
	if got, ok := Float32s([]float32{1.5}).AsFloat32s(); !ok || got[0] != 1.5 {
		t.Errorf("AsFloat32s = %v, %v", got, ok)
	}
	if got, ok := Bools([]bool{true, false}).AsBools(); !ok || !slices.Equal(got, []bool{true, false}) {
		t.Errorf("AsBools = %v, %v", got, ok)
	}
	if got, ok := Array(ValueString, []Value{String("a"), String("b")}).AsStrings(); !ok || !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("AsStrings = %v, %v", got, ok)
	}
	if _, ok := Array(ValueString, []Value{String("a"), Uint8(1)}).AsStrings(); ok {
		t.Error("AsStrings ok on a mismatched array")
	}

	// Accessors return copies.
	s := Strings([]string{"a"})
	got, _ := s.AsStrings()
	got[0] = "changed"
	if s.Index(0).String() != `"a"` {
		t.Error("AsStrings aliases the value")
	}
	in := []string{"x"}
	s = Strings(in)
	in[0] = "changed"
	if x, _ := s.Index(0).AsString(); x != "x" {
		t.Error("Strings aliases its argument")
	}

	// Compact and general forms of the same array are equal.
	if !Uint16s([]uint16{9}).Equal(Array(ValueUint16, []Value{Uint16(9)})) {
		t.Error("Uint16s != Array(Uint16)")
	}
	if Uint16s([]uint16{9}).Equal(Uint32s([]uint32{9})) || Uint16s([]uint16{9}).Equal(Uint16s([]uint16{8})) ||
		Strings([]string{"a"}).Equal(String("a")) || Uint16s(nil).Equal(Uint16s([]uint16{0})) {
		t.Error("different values compare equal")
	}
	if !Float32(float32(math.NaN())).Equal(Float32(float32(math.NaN()))) {
		t.Error("NaN != NaN")
	}

	defer func() {
		if p := recover(); p == nil || !strings.Contains(p.(string), "out of range") {
			t.Errorf("Index out of range: panic %v", p)
		}
	}()
	Uint8s([]uint8{1}).Index(1)
}

func TestFileGetters(t *testing.T) {
	f := &File{KV: []KV{
		{"general.architecture", String("llama")},
		{"n", Uint32(5)},
		{"neg", Int32(-5)},
		{"eps", Float32(0.25)},
		{"flag", Bool(true)},
		{"toks", Strings([]string{"a", "b"})},
		{"kv", Uint32s([]uint32{0, 4, 0})},
	}, Tensors: []TensorInfo{
		{Name: "x", Shape: []uint64{2, 3}},
		{Name: "y", Shape: []uint64{4}},
	}}
	if f.Architecture() != "llama" {
		t.Error("Architecture")
	}
	if v, ok := f.Uint("n"); !ok || v != 5 {
		t.Error("Uint")
	}
	if _, ok := f.Uint("neg"); ok {
		t.Error("Uint of a negative")
	}
	if v, ok := f.Int("neg"); !ok || v != -5 {
		t.Error("Int")
	}
	if v, ok := f.Float("n"); !ok || v != 5 {
		t.Error("Float of an integer")
	}
	if v, ok := f.Float("eps"); !ok || v != 0.25 {
		t.Error("Float")
	}
	if v, ok := f.Bool("flag"); !ok || !v {
		t.Error("Bool")
	}
	if v, ok := f.Strings("toks"); !ok || len(v) != 2 {
		t.Error("Strings")
	}
	if _, ok := f.String("n"); ok {
		t.Error("String of a u32")
	}
	for _, tc := range []struct {
		key  string
		n    int
		want []uint64
	}{{"n", 3, []uint64{5, 5, 5}}, {"kv", 3, []uint64{0, 4, 0}}, {"kv", 4, nil}, {"neg", 3, nil}, {"toks", 2, nil}, {"missing", 1, nil}} {
		got, ok := f.LayerUints(tc.key, tc.n)
		if ok != (tc.want != nil) || !slices.Equal(got, tc.want) {
			t.Errorf("LayerUints(%q, %d) = %v, %v; want %v", tc.key, tc.n, got, ok, tc.want)
		}
	}
	// LayerKVHeads: head_count_kv, else head_count; qwen3next's recurrent
	// layers (all but every fourth) have none whatever it says.
	for _, tc := range []struct {
		arch string
		kv   []KV
		want []uint64
	}{
		{"llama", []KV{{"llama.attention.head_count_kv", Uint32(2)}}, []uint64{2, 2, 2, 2, 2}},
		{"llama", []KV{{"llama.attention.head_count", Uint32(8)}}, []uint64{8, 8, 8, 8, 8}},
		{"granitehybrid", []KV{{"granitehybrid.attention.head_count_kv", Uint32s([]uint32{0, 4, 0, 0, 4})}}, []uint64{0, 4, 0, 0, 4}},
		{"qwen3next", []KV{{"qwen3next.attention.head_count_kv", Uint32(2)}}, []uint64{0, 0, 0, 2, 0}},
		{"gemma3n", []KV{{"gemma3n.attention.head_count_kv", Uint32(2)}}, []uint64{2, 2, 2, 2, 2}},
		{"llama", nil, nil},
	} {
		g := &File{KV: append([]KV{{"general.architecture", String(tc.arch)}}, tc.kv...)}
		if got, ok := g.LayerKVHeads(5); ok != (tc.want != nil) || !slices.Equal(got, tc.want) {
			t.Errorf("%s: LayerKVHeads = %v, %v; want %v", tc.arch, got, ok, tc.want)
		}
	}
	// HeadCount: the one number, or layer 0's of one per layer.
	for _, tc := range []struct {
		kv   []KV
		want uint64
		ok   bool
	}{
		{[]KV{{"deci.attention.head_count", Uint32(8)}}, 8, true},
		{[]KV{{"deci.attention.head_count", Uint32s([]uint32{8, 0, 8})}}, 8, true},
		{[]KV{{"deci.attention.head_count", Float32(8)}}, 0, false},
		{nil, 0, false},
	} {
		g := &File{KV: append([]KV{{"general.architecture", String("deci")}}, tc.kv...)}
		if got, ok := g.HeadCount(); got != tc.want || ok != tc.ok {
			t.Errorf("%v: HeadCount = %d, %v; want %d, %v", tc.kv, got, ok, tc.want, tc.ok)
		}
	}
	g3n := &File{KV: []KV{{"general.architecture", String("gemma3n")}, {"gemma3n.attention.head_count_kv", Uint32(2)}}}
	if kv, ok := g3n.LayerKVHeads(22); !ok || kv[19] != 2 || kv[20] != 0 || kv[21] != 0 {
		t.Errorf("gemma3n of 22 layers: LayerKVHeads = %v, %v; want 2 to layer 19, then 0", kv, ok)
	}
	for _, get := range []func(string) bool{
		func(k string) bool { _, ok := f.String(k); return ok },
		func(k string) bool { _, ok := f.Uint(k); return ok },
		func(k string) bool { _, ok := f.Int(k); return ok },
		func(k string) bool { _, ok := f.Float(k); return ok },
		func(k string) bool { _, ok := f.Bool(k); return ok },
		func(k string) bool { _, ok := f.Strings(k); return ok },
		func(k string) bool { _, ok := f.Lookup(k); return ok },
	} {
		if get("missing") {
			t.Error("missing key found")
		}
	}
	if f.ParamCount() != 10 {
		t.Errorf("ParamCount = %d", f.ParamCount())
	}
	if (&File{}).Architecture() != "" {
		t.Error("Architecture of an empty file")
	}
}
