package safetensors

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// File names of a Hugging Face model directory.
const (
	// IndexFile is the index of a sharded checkpoint.
	IndexFile = "model.safetensors.index.json"
	// SingleFile is the weights file of an unsharded checkpoint.
	SingleFile = "model.safetensors"
)

// maxIndexSize bounds the index file read into memory (64 MiB; real
// indexes are a few hundred KB even for the largest models).
const maxIndexSize = 64 << 20

// Model is the set of safetensors files of one checkpoint directory: a
// single model.safetensors, or the shards that model.safetensors.index.json
// lists. Tensor names are unique across its files.
type Model struct {
	// Dir is the directory the model was opened from.
	Dir string
	// Files holds the open files, sorted by path: one per shard.
	Files []*File
	// IndexMetadata holds the index's "metadata" object (numbers as
	// json.Number; typically {"total_size": ...}), or nil for a single
	// file or an index without one.
	IndexMetadata map[string]any

	tensors []TensorInfo     // all tensors, sorted by name
	owner   map[string]*File // tensor name -> file holding it
}

// OpenDir opens the checkpoint in dir. When dir holds
// model.safetensors.index.json, its "weight_map" (tensor name to file name)
// is read and checked: every file name must be a plain relative path
// inside dir (no "..", no absolute path), every file must exist and be a
// valid safetensors file ([Open]), every tensor must be in the file the map
// names, no tensor may be in two files, and every tensor of every shard
// must be listed. Otherwise dir must hold model.safetensors. The Model keeps
// all files open until [Model.Close].
func OpenDir(dir string) (*Model, error) {
	m := &Model{Dir: dir, owner: map[string]*File{}}
	indexPath := filepath.Join(dir, IndexFile)
	st, err := os.Stat(indexPath)
	switch {
	case err == nil:
		if err := m.openIndexed(indexPath, st); err != nil {
			m.Close()
			return nil, err
		}
	case errors.Is(err, fs.ErrNotExist):
		p := filepath.Join(dir, SingleFile)
		f, err := Open(p)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("safetensors: %s holds neither %s nor %s: %w", dir, IndexFile, SingleFile, err)
			}
			return nil, err
		}
		m.Files = []*File{f}
		for _, t := range f.Tensors {
			m.owner[t.Name] = f
		}
	default:
		return nil, err
	}
	for _, f := range m.Files {
		m.tensors = append(m.tensors, f.Tensors...)
	}
	sort.Slice(m.tensors, func(i, j int) bool { return m.tensors[i].Name < m.tensors[j].Name })
	return m, nil
}

// OpenFile opens the single-file checkpoint at path (a PEFT adapter's
// adapter_model.safetensors, say) as a Model of one file.
func OpenFile(path string) (*Model, error) {
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	m := &Model{Dir: filepath.Dir(path), Files: []*File{f}, owner: map[string]*File{}}
	for _, t := range f.Tensors {
		m.owner[t.Name] = f
	}
	m.tensors = append(m.tensors, f.Tensors...)
	sort.Slice(m.tensors, func(i, j int) bool { return m.tensors[i].Name < m.tensors[j].Name })
	return m, nil
}

// openIndexed reads the index and opens and checks its shards.
func (m *Model) openIndexed(indexPath string, st fs.FileInfo) error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%s: safetensors: "+format, append([]any{indexPath}, args...)...)
	}
	if !st.Mode().IsRegular() {
		return fail("not a regular file: %w", ErrInvalid)
	}
	if st.Size() > maxIndexSize {
		return fail("index of %d bytes exceeds the limit of %d: %w", st.Size(), maxIndexSize, ErrInvalid)
	}
	raw, err := os.ReadFile(indexPath)
	if err != nil {
		return err
	}
	weightMap, md, err := parseIndex(raw)
	if err != nil {
		return fail("%w", err)
	}
	m.IndexMetadata = md

	// The shards, each opened once, in sorted order.
	byFile := map[string][]string{} // shard file name -> tensor names
	for tensor, file := range weightMap {
		byFile[file] = append(byFile[file], tensor)
	}
	names := make([]string, 0, len(byFile))
	for name := range byFile {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		f, err := Open(filepath.Join(m.Dir, filepath.FromSlash(name)))
		if err != nil {
			return fmt.Errorf("safetensors: shard %q of %s: %w", name, indexPath, err)
		}
		m.Files = append(m.Files, f)
		for _, t := range f.Tensors {
			if other, dup := m.owner[t.Name]; dup {
				return fmt.Errorf("%s: safetensors: tensor %q is also in %s: %w", f.Path, t.Name, other.Path, ErrInvalid)
			}
			if want := weightMap[t.Name]; want != name {
				if _, listed := weightMap[t.Name]; !listed {
					return fmt.Errorf("%s: safetensors: tensor %q is not in the weight_map of %s: %w", f.Path, t.Name, IndexFile, ErrInvalid)
				}
				return fmt.Errorf("%s: safetensors: tensor %q is in %s, but the weight_map says %s: %w", f.Path, t.Name, name, want, ErrInvalid)
			}
			m.owner[t.Name] = f
		}
		for _, tensor := range byFile[name] {
			if _, ok := f.Tensor(tensor); !ok {
				return fmt.Errorf("%s: safetensors: tensor %q, which the weight_map puts in this file, is missing: %w", f.Path, tensor, ErrInvalid)
			}
		}
	}
	return nil
}

// parseIndex decodes an index file: a JSON object with a "weight_map"
// object of strings and an optional "metadata" object. File names are
// checked to stay inside the directory.
func parseIndex(raw []byte) (weightMap map[string]string, md map[string]any, err error) {
	ms, err := objectMembers(raw)
	if err != nil {
		return nil, nil, err
	}
	for _, kv := range ms {
		switch kv.key {
		case "weight_map":
			if len(kv.val) == 0 || kv.val[0] != '{' {
				return nil, nil, fmt.Errorf("weight_map is %s, not an object: %w", abbrev(kv.val), ErrInvalid)
			}
			if weightMap, err = jsonStringMap(kv.val); err != nil {
				return nil, nil, fmt.Errorf("weight_map: %w", err)
			}
		case "metadata":
			if string(kv.val) == "null" {
				continue
			}
			if len(kv.val) == 0 || kv.val[0] != '{' {
				return nil, nil, fmt.Errorf("metadata is %s, not an object: %w", abbrev(kv.val), ErrInvalid)
			}
			mms, err := objectMembers(kv.val)
			if err != nil {
				return nil, nil, fmt.Errorf("metadata: %w", err)
			}
			md = make(map[string]any, len(mms))
			for _, mm := range mms {
				var v any
				dec := json.NewDecoder(bytes.NewReader(mm.val))
				dec.UseNumber()
				if err := dec.Decode(&v); err != nil {
					return nil, nil, fmt.Errorf("metadata %q: %v: %w", mm.key, err, ErrInvalid)
				}
				md[mm.key] = v
			}
		}
	}
	if weightMap == nil {
		return nil, nil, fmt.Errorf("no weight_map: %w", ErrInvalid)
	}
	for tensor, file := range weightMap {
		if err := checkShardName(file); err != nil {
			return nil, nil, fmt.Errorf("weight_map: tensor %q: %w", tensor, err)
		}
	}
	return weightMap, md, nil
}

// checkShardName rejects a shard file name that could leave the model
// directory: empty, absolute, with a ".." element, or with a backslash or
// NUL (path separators of other systems).
func checkShardName(name string) error {
	if name == "" || strings.ContainsAny(name, "\\\x00") || strings.HasPrefix(name, "/") ||
		!filepath.IsLocal(filepath.FromSlash(name)) {
		return fmt.Errorf("file name %q is not a relative path inside the model directory: %w", name, ErrInvalid)
	}
	for _, el := range strings.Split(name, "/") {
		if el == ".." {
			return fmt.Errorf("file name %q is not a relative path inside the model directory: %w", name, ErrInvalid)
		}
	}
	return nil
}

// Close closes all files of the model.
func (m *Model) Close() error {
	var first error
	for _, f := range m.Files {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Tensors returns the infos of all tensors of all files, sorted by name.
// The slice is shared: do not modify it.
func (m *Model) Tensors() []TensorInfo { return m.tensors }

// Tensor returns the info of the tensor called name.
func (m *Model) Tensor(name string) (TensorInfo, bool) {
	f, ok := m.owner[name]
	if !ok {
		return TensorInfo{}, false
	}
	return f.Tensor(name)
}

// FileOf returns the file holding the tensor called name.
func (m *Model) FileOf(name string) (*File, bool) {
	f, ok := m.owner[name]
	return f, ok
}

// ParamCount returns the total number of tensor elements of all files.
func (m *Model) ParamCount() int64 {
	var n int64
	for _, f := range m.Files {
		n += f.ParamCount()
	}
	return n
}

// ReadTensor reads the raw data of the tensor called name, as
// [File.ReadTensor] does.
func (m *Model) ReadTensor(name string, dst []byte) ([]byte, error) {
	f, err := m.file(name)
	if err != nil {
		return nil, err
	}
	return f.ReadTensor(name, dst)
}

// Float32s reads the tensor called name as float32s, as [File.Float32s]
// does.
func (m *Model) Float32s(name string) ([]float32, error) {
	f, err := m.file(name)
	if err != nil {
		return nil, err
	}
	return f.Float32s(name)
}

func (m *Model) file(name string) (*File, error) {
	f, ok := m.owner[name]
	if !ok {
		return nil, fmt.Errorf("%s: safetensors: tensor %q: %w", m.Dir, name, ErrNotFound)
	}
	return f, nil
}
