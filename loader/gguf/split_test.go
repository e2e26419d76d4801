package gguf

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// splitFile describes one file of a test split model.
type splitFile struct {
	kv      []KV
	tensors []string
}

// writeSplit writes files as PREFIX-0000i-of-0000n.gguf under a temporary
// directory and returns the first one's path.
func writeSplit(t *testing.T, files []splitFile) string {
	t.Helper()
	prefix := filepath.Join(t.TempDir(), "model")
	for i, sf := range files {
		w := NewWriter()
		for _, kv := range sf.kv {
			w.Set(kv.Key, kv.Value)
		}
		for _, name := range sf.tensors {
			if err := w.AddTensor(name, TypeF32, []uint64{2}, bytesData(make([]byte, 8))); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.WriteFile(SplitPath(prefix, i, len(files))); err != nil {
			t.Fatal(err)
		}
	}
	return SplitPath(prefix, 0, len(files))
}

// goodSplit returns a valid 3-file split with 4 tensors.
func goodSplit() []splitFile {
	return []splitFile{
		{kv: []KV{{"general.architecture", String("llama")}, {KeySplitNo, Uint16(0)}, {KeySplitCount, Uint16(3)}, {KeySplitTensorsCount, Int32(4)}},
			tensors: []string{"a", "b"}},
		{kv: []KV{{KeySplitNo, Uint16(1)}, {KeySplitCount, Uint16(3)}, {KeySplitTensorsCount, Int32(4)}}, tensors: []string{"c"}},
		{kv: []KV{{KeySplitNo, Uint16(2)}, {KeySplitCount, Uint16(3)}, {KeySplitTensorsCount, Int32(4)}}, tensors: []string{"d"}},
	}
}

func TestSplitPath(t *testing.T) {
	if got := SplitPath("/m/x", 1, 4); got != "/m/x-00002-of-00004.gguf" {
		t.Errorf("SplitPath = %q", got)
	}
}

func TestValidateModelSplit(t *testing.T) {
	p := writeSplit(t, goodSplit())
	f, err := ValidateModel(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Tensors) != 2 || f.Architecture() != "llama" {
		t.Errorf("first file: %d tensors, arch %q", len(f.Tensors), f.Architecture())
	}

	tests := []struct {
		name     string
		mutate   func([]splitFile) []splitFile
		open     func(first string) string // path to validate; default the first file
		sentinel error
		words    []string
	}{
		{name: "missing sibling", mutate: func(s []splitFile) []splitFile {
			s[0].kv[2].Value = Uint16(4) // claims 4 files, but they are named -of-00003
			return s
		}, sentinel: ErrInvalid, words: []string{"PREFIX-00001-of-00004.gguf"}},
		{name: "wrong split.no in sibling", mutate: func(s []splitFile) []splitFile {
			s[2].kv[0].Value = Uint16(1)
			return s
		}, sentinel: ErrInvalid, words: []string{"00003-of-00003", "split.no is 1, expected 2"}},
		{name: "split.no of wrong type in sibling", mutate: func(s []splitFile) []splitFile {
			s[1].kv[0].Value = Uint32(1)
			return s
		}, sentinel: ErrInvalid, words: []string{"split.no has type u32, must be u16"}},
		{name: "missing split.no in sibling", mutate: func(s []splitFile) []splitFile {
			s[1].kv = s[1].kv[1:]
			return s
		}, sentinel: ErrInvalid, words: []string{"without split.no"}},
		{name: "first file not split 0", open: func(first string) string {
			return first[:len(first)-len("00001-of-00003.gguf")] + "00002-of-00003.gguf"
		}, sentinel: ErrInvalid, words: []string{"split.no is 1, expected 0", "first file"}},
		{name: "split.count of wrong type", mutate: func(s []splitFile) []splitFile {
			s[0].kv[2].Value = Int32(3)
			return s
		}, sentinel: ErrInvalid, words: []string{"split.count has type i32, must be u16"}},
		{name: "duplicate tensor across files", mutate: func(s []splitFile) []splitFile {
			s[2].tensors = []string{"a"}
			return s
		}, sentinel: ErrInvalid, words: []string{`tensor "a" is also in`}},
		{name: "tensor count mismatch", mutate: func(s []splitFile) []splitFile {
			s[0].kv[3].Value = Int32(5)
			return s
		}, sentinel: ErrInvalid, words: []string{"split.tensors.count is 5", "hold 4 tensors"}},
		{name: "tensor count of wrong type", mutate: func(s []splitFile) []splitFile {
			s[0].kv[3].Value = Uint32(4)
			return s
		}, sentinel: ErrInvalid, words: []string{"must be i32"}},
		{name: "missing tensor count", mutate: func(s []splitFile) []splitFile {
			s[0].kv = s[0].kv[:3]
			return s
		}, sentinel: ErrInvalid, words: []string{"without split.tensors.count"}},
		{name: "corrupt sibling", open: func(first string) string {
			sib := first[:len(first)-len("00001-of-00003.gguf")] + "00003-of-00003.gguf"
			b, err := os.ReadFile(sib)
			if err != nil {
				panic(err)
			}
			// Cut into the last tensor, not just its padding.
			if err := os.WriteFile(sib, b[:len(b)-25], 0o644); err != nil {
				panic(err)
			}
			return first
		}, sentinel: ErrTruncated, words: []string{"split 3 of 3", "00003-of-00003.gguf"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			files := goodSplit()
			if tc.mutate != nil {
				files = tc.mutate(files)
			}
			p := writeSplit(t, files)
			if tc.open != nil {
				p = tc.open(p)
			}
			_, err := ValidateModel(p)
			wantErr(t, err, tc.sentinel, tc.words...)
		})
	}

	// A sibling that does not exist is an fs error.
	files := goodSplit()
	p = writeSplit(t, files)
	sib := p[:len(p)-len("00001-of-00003.gguf")] + "00002-of-00003.gguf"
	if err := os.Remove(sib); err != nil {
		t.Fatal(err)
	}
	if _, err := ValidateModel(p); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing sibling: %v", err)
	}
}

func TestValidateModelNotSplit(t *testing.T) {
	// split.count 1 needs no siblings, whatever the file is called.
	dir := t.TempDir()
	w := NewWriter()
	w.Set(KeySplitCount, Uint16(1))
	p := filepath.Join(dir, "single.gguf")
	if err := w.WriteFile(p); err != nil {
		t.Fatal(err)
	}
	if _, err := ValidateModel(p); err != nil {
		t.Fatal(err)
	}
	if _, err := ValidateModel(filepath.Join(dir, "missing.gguf")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	// A named split whose first file lacks the -00001-of-N suffix.
	w.Set(KeySplitCount, Uint16(2))
	w.Set(KeySplitNo, Uint16(0))
	if err := w.WriteFile(p); err != nil {
		t.Fatal(err)
	}
	_, err := ValidateModel(p)
	wantErr(t, err, ErrInvalid, "PREFIX-00001-of-00002.gguf")
}
