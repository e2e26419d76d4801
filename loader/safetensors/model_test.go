package safetensors

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// shardedDir writes a two-shard checkpoint into a temp dir and returns the
// dir. index, when not nil, replaces the index written.
func shardedDir(t *testing.T, index any) string {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, dir, "model-00001-of-00002.safetensors", writeST(map[string]string{"format": "pt"},
		tensor{"a.weight", F32, []int64{2, 2}, f32Bytes(1, 2, 3, 4)},
		tensor{"b.weight", BF16, []int64{2}, bf16Bytes(0.5, 8)},
	))
	writeFile(t, dir, "model-00002-of-00002.safetensors", writeST(map[string]string{"format": "pt"},
		tensor{"c.bias", F16, []int64{3}, f16Bytes(-1, 0, 1)},
	))
	if index == nil {
		index = map[string]any{
			"metadata": map[string]any{"total_size": 30},
			"weight_map": map[string]string{
				"a.weight": "model-00001-of-00002.safetensors",
				"b.weight": "model-00001-of-00002.safetensors",
				"c.bias":   "model-00002-of-00002.safetensors",
			},
		}
	}
	var raw []byte
	if s, ok := index.(string); ok {
		raw = []byte(s)
	} else {
		var err error
		if raw, err = json.MarshalIndent(index, "", "  "); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, dir, IndexFile, raw)
	return dir
}

func TestOpenDirSharded(t *testing.T) {
	dir := shardedDir(t, nil)
	m, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if len(m.Files) != 2 || filepath.Base(m.Files[1].Path) != "model-00002-of-00002.safetensors" {
		t.Fatalf("files = %v", m.Files)
	}
	if n, ok := m.IndexMetadata["total_size"].(json.Number); !ok || n != "30" {
		t.Errorf("index metadata = %v", m.IndexMetadata)
	}
	var names []string
	for _, ti := range m.Tensors() {
		names = append(names, ti.Name)
	}
	if !slices.Equal(names, []string{"a.weight", "b.weight", "c.bias"}) {
		t.Errorf("tensors = %v", names)
	}
	if m.ParamCount() != 9 {
		t.Errorf("ParamCount = %d", m.ParamCount())
	}
	ti, ok := m.Tensor("c.bias")
	if !ok || ti.DType != F16 || !slices.Equal(ti.Shape, []int64{3}) {
		t.Errorf("Tensor(c.bias) = %+v, %v", ti, ok)
	}
	if f, ok := m.FileOf("c.bias"); !ok || f != m.Files[1] {
		t.Errorf("FileOf(c.bias) = %v", f)
	}
	for name, want := range map[string][]float32{"a.weight": {1, 2, 3, 4}, "b.weight": {0.5, 8}, "c.bias": {-1, 0, 1}} {
		got, err := m.Float32s(name)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("Float32s(%s) = %v, %v", name, got, err)
		}
	}
	if raw, err := m.ReadTensor("b.weight", nil); err != nil || len(raw) != 4 {
		t.Errorf("ReadTensor = %v, %v", raw, err)
	}
	if _, err := m.Float32s("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing tensor: %v", err)
	}
	if _, err := m.ReadTensor("nope", nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing tensor: %v", err)
	}
	if _, ok := m.Tensor("nope"); ok {
		t.Error("Tensor(nope) found")
	}
}

func TestOpenDirSubdirShard(t *testing.T) {
	// A shard in a subdirectory is inside the model directory: allowed.
	dir := t.TempDir()
	writeFile(t, dir, "sub/w.safetensors", writeST(nil, tensor{"w", F32, []int64{1}, f32Bytes(3)}))
	writeFile(t, dir, IndexFile, []byte(`{"weight_map":{"w":"sub/w.safetensors"}}`))
	m, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if v, err := m.Float32s("w"); err != nil || v[0] != 3 {
		t.Errorf("Float32s = %v, %v", v, err)
	}
}

func TestOpenDirErrors(t *testing.T) {
	s1, s2 := "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
	wm := func(m map[string]string) any { return map[string]any{"weight_map": m} }
	tests := []struct {
		name     string
		index    any
		setup    func(t *testing.T, dir string)
		sentinel error // nil: an OS error wrapping fs.ErrNotExist
		words    []string
	}{
		{name: "parent traversal", index: wm(map[string]string{"a.weight": "../model.safetensors"}), sentinel: ErrInvalid,
			words: []string{`"../model.safetensors"`, "not a relative path inside"}},
		{name: "inner traversal", index: wm(map[string]string{"a.weight": "x/../../y.safetensors"}), sentinel: ErrInvalid, words: []string{"not a relative path"}},
		{name: "dotdot only", index: wm(map[string]string{"a.weight": ".."}), sentinel: ErrInvalid, words: []string{"not a relative path"}},
		{name: "absolute path", index: wm(map[string]string{"a.weight": "/etc/passwd"}), sentinel: ErrInvalid, words: []string{`"/etc/passwd"`}},
		{name: "backslash", index: wm(map[string]string{"a.weight": `..\x.safetensors`}), sentinel: ErrInvalid, words: []string{"not a relative path"}},
		{name: "empty file name", index: wm(map[string]string{"a.weight": ""}), sentinel: ErrInvalid, words: []string{"not a relative path"}},
		{name: "missing shard", index: wm(map[string]string{"a.weight": s1, "b.weight": s1, "c.bias": "model-00003-of-00003.safetensors"}),
			words: []string{"model-00003-of-00003.safetensors"}},
		{name: "tensor in the wrong file", index: wm(map[string]string{"a.weight": s1, "b.weight": s2, "c.bias": s2}), sentinel: ErrInvalid,
			words: []string{`"b.weight"`, "weight_map says " + s2}},
		{name: "tensor missing from its file", index: wm(map[string]string{"a.weight": s1, "b.weight": s1, "c.bias": s2, "d": s2}), sentinel: ErrInvalid,
			words: []string{`"d"`, "missing"}},
		{name: "tensor not in the map", index: wm(map[string]string{"a.weight": s1, "b.weight": s1, "c.bias": s2}), sentinel: ErrInvalid,
			setup: func(t *testing.T, dir string) {
				writeFile(t, dir, s2, writeST(nil,
					tensor{"c.bias", F16, []int64{3}, f16Bytes(-1, 0, 1)},
					tensor{"x", F32, []int64{1}, f32Bytes(1)}))
			},
			words: []string{`"x"`, "not in the weight_map"}},
		{name: "tensor in two shards", index: wm(map[string]string{"a.weight": s1, "b.weight": s1, "c.bias": s2}), sentinel: ErrInvalid,
			setup: func(t *testing.T, dir string) {
				writeFile(t, dir, s2, writeST(nil,
					tensor{"a.weight", F32, []int64{2, 2}, f32Bytes(1, 2, 3, 4)},
					tensor{"c.bias", F16, []int64{3}, f16Bytes(-1, 0, 1)}))
			},
			words: []string{`"a.weight"`, "also in", s1}},
		{name: "duplicate map key", index: `{"weight_map":{"a.weight":"` + s1 + `","a.weight":"` + s2 + `"}}`, sentinel: ErrInvalid, words: []string{`duplicate key "a.weight"`}},
		{name: "no weight_map", index: `{"metadata":{}}`, sentinel: ErrInvalid, words: []string{"no weight_map"}},
		{name: "weight_map not an object", index: `{"weight_map":[]}`, sentinel: ErrInvalid, words: []string{"not an object"}},
		{name: "weight_map non-string", index: `{"weight_map":{"a.weight":1}}`, sentinel: ErrInvalid, words: []string{"not a string"}},
		{name: "metadata not an object", index: `{"metadata":3,"weight_map":{}}`, sentinel: ErrInvalid, words: []string{"metadata"}},
		{name: "index not JSON", index: `{"weight_map":`, sentinel: ErrInvalid, words: []string{IndexFile, "not JSON"}},
		{name: "malformed shard", index: wm(map[string]string{"a.weight": s1, "b.weight": s1, "c.bias": s2}), sentinel: ErrTruncated,
			setup: func(t *testing.T, dir string) { writeFile(t, dir, s2, []byte{1, 2, 3}) },
			words: []string{s2}},
		{name: "unsupported dtype in shard", index: wm(map[string]string{"a.weight": s1, "b.weight": s1, "c.bias": s2}), sentinel: ErrUnsupportedDType,
			setup: func(t *testing.T, dir string) {
				writeFile(t, dir, s2, writeST(nil, tensor{"c.bias", I64, []int64{1}, make([]byte, 8)}))
			},
			words: []string{s2, `tensor "c.bias" has dtype I64`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := shardedDir(t, tc.index)
			if tc.setup != nil {
				tc.setup(t, dir)
			}
			m, err := OpenDir(dir)
			if err == nil {
				m.Close()
			}
			if tc.sentinel == nil {
				if !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("got %v, want a not-exist error", err)
				}
				for _, s := range sentinels {
					if errors.Is(err, s) {
						t.Fatalf("error %q wraps %v", err, s)
					}
				}
				return
			}
			wantErr(t, err, tc.sentinel, tc.words...)
		})
	}
}

func TestOpenDirSingleAndEmpty(t *testing.T) {
	dir := t.TempDir()
	_, err := OpenDir(dir)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("empty dir: %v", err)
	}
	writeFile(t, dir, SingleFile, sample())
	m, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Tensors()) != 3 || m.IndexMetadata != nil {
		t.Errorf("tensors %v", m.Tensors())
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, SingleFile), sample()[:10], 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = OpenDir(dir)
	wantErr(t, err, ErrTruncated, SingleFile)
	// An index that is a directory.
	if err := os.Mkdir(filepath.Join(dir, IndexFile), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err = OpenDir(dir)
	wantErr(t, err, ErrInvalid, "not a regular file")
}
