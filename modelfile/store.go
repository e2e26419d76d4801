package modelfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ErrNotFound means no preset has the name.
var ErrNotFound = errors.New("modelfile: no such preset")

// Store keeps presets, each a Modelfile saved under its name, in one
// directory.
type Store struct {
	Dir string
}

// DefaultStore returns the store in $LLM_PRESETS, or else in the user's
// configuration directory (~/.config/llm/presets on Linux).
func DefaultStore() (*Store, error) {
	if d := os.Getenv("LLM_PRESETS"); d != "" {
		return &Store{Dir: d}, nil
	}
	d, err := os.UserConfigDir()
	if err != nil {
		return nil, fmt.Errorf("modelfile: locating the presets: %w", err)
	}
	return &Store{Dir: filepath.Join(d, "llm", "presets")}, nil
}

// ValidName checks a preset name: letters, digits, '.', '_' and '-',
// starting with a letter or digit, with an optional ":tag" of the same
// characters (as Ollama names models). A name has no '/', so it never
// looks like a Hub name (org/repo) or a path.
func ValidName(name string) error {
	base, tag, hasTag := strings.Cut(name, ":")
	if !validPart(base) || hasTag && !validPart(tag) {
		return fmt.Errorf("modelfile: preset name %q: use letters, digits, '.', '_' and '-' (and an optional :tag), starting with a letter or digit", name)
	}
	return nil
}

func validPart(s string) bool {
	if s == "" || len(s) > 100 {
		return false
	}
	for i, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		if !ok && (i == 0 || r != '.' && r != '_' && r != '-') {
			return false
		}
	}
	return true
}

// path is the file of a preset ("name:tag" is saved as name@tag).
func (s *Store) path(name string) string {
	return filepath.Join(s.Dir, strings.Replace(name, ":", "@", 1)+".Modelfile")
}

// Save stores m under name, replacing a preset of that name.
func (s *Store) Save(name string, m *Modelfile) error {
	if err := ValidName(name); err != nil {
		return err
	}
	text := m.String()
	if back, err := Parse(strings.NewReader(text)); err != nil || back.String() != text {
		return fmt.Errorf("modelfile: preset %s: a value cannot be written back (it holds \"\"\" and a newline or quote)", name)
	}
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return fmt.Errorf("modelfile: %w", err)
	}
	tmp, err := os.CreateTemp(s.Dir, ".preset-*")
	if err != nil {
		return fmt.Errorf("modelfile: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(text); err != nil {
		tmp.Close()
		return fmt.Errorf("modelfile: preset %s: %w", name, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("modelfile: preset %s: %w", name, err)
	}
	if err := os.Rename(tmp.Name(), s.path(name)); err != nil {
		return fmt.Errorf("modelfile: preset %s: %w", name, err)
	}
	return nil
}

// Get reads the preset name; ErrNotFound when there is none.
func (s *Store) Get(name string) (*Modelfile, error) {
	if ValidName(name) != nil {
		return nil, fmt.Errorf("modelfile: %q: %w", name, ErrNotFound)
	}
	f, err := os.Open(s.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("modelfile: %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("modelfile: %w", err)
	}
	defer f.Close()
	m, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("modelfile: preset %s (%s): %w", name, f.Name(), err)
	}
	return m, nil
}

// Remove deletes the preset name; ErrNotFound when there is none.
func (s *Store) Remove(name string) error {
	if ValidName(name) != nil {
		return fmt.Errorf("modelfile: %q: %w", name, ErrNotFound)
	}
	err := os.Remove(s.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("modelfile: %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("modelfile: %w", err)
	}
	return nil
}

// Entry is one preset as List reports it.
type Entry struct {
	Name     string
	From     string
	Modified time.Time
}

// List returns the presets sorted by name; an absent directory holds none.
func (s *Store) List() ([]Entry, error) {
	des, err := os.ReadDir(s.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("modelfile: %w", err)
	}
	var out []Entry
	for _, de := range des {
		base, ok := strings.CutSuffix(de.Name(), ".Modelfile")
		if !ok || de.IsDir() {
			continue
		}
		name := strings.Replace(base, "@", ":", 1)
		if ValidName(name) != nil {
			continue
		}
		m, err := s.Get(name)
		if err != nil {
			return nil, err
		}
		info, err := de.Info()
		if err != nil {
			return nil, fmt.Errorf("modelfile: %w", err)
		}
		out = append(out, Entry{Name: name, From: m.From, Modified: info.ModTime()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Settings are what a preset asks of a model, with FROM chains through
// other presets followed and merged (the nearer preset wins).
type Settings struct {
	Model      string         // the base model: a GGUF path, an HF directory or a Hub name
	Parameters map[string]any // PARAMETER values by name, typed (float64, bool or string), without stop
	Stop       []string       // PARAMETER stop values
	System     string
	Template   *Template // nil when no preset in the chain has one
	Messages   []Message
	Adapters   []string // ADAPTER paths (LoRA adapters), the base's first
	Chain      []string // the presets followed, nearest first
}

// maxChain bounds FROM chains through presets.
const maxChain = 8

// Resolve reads the preset name and follows its FROM through other presets
// to a model that is not a preset.
func (s *Store) Resolve(name string) (*Settings, error) {
	st := &Settings{Parameters: map[string]any{}}
	stopsSet := false
	for cur := name; ; {
		if len(st.Chain) == maxChain {
			return nil, fmt.Errorf("modelfile: preset %s: FROM goes through more than %d presets (a loop?)", name, maxChain)
		}
		m, err := s.Get(cur)
		if err != nil {
			return nil, err
		}
		st.Chain = append(st.Chain, cur)
		var stops []string
		for _, p := range m.Parameters {
			if p.Name == "stop" {
				stops = append(stops, p.Value)
				continue
			}
			if _, set := st.Parameters[p.Name]; !set {
				st.Parameters[p.Name] = typed(p.Value)
			}
		}
		if len(stops) > 0 && !stopsSet {
			st.Stop, stopsSet = stops, true
		}
		if st.System == "" {
			st.System = m.System
		}
		if st.Messages == nil && len(m.Messages) > 0 {
			st.Messages = m.Messages
		}
		if st.Template == nil && m.Template != "" {
			t, err := ParseTemplate(m.Template)
			if err != nil {
				return nil, fmt.Errorf("modelfile: preset %s: %w", cur, err)
			}
			st.Template = t
		}
		// A base preset's adapters apply before those stacked on it.
		st.Adapters = append(slices.Clone(m.Adapters), st.Adapters...)
		if ValidName(m.From) != nil {
			st.Model = m.From
			return st, nil
		}
		if _, err := s.Get(m.From); errors.Is(err, ErrNotFound) {
			st.Model = m.From // a bare name that is not a preset: a file name, say
			return st, nil
		}
		cur = m.From
	}
}

// typed reads a PARAMETER value as a number or a boolean when it is one.
func typed(v string) any {
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		return f
	}
	if b, err := strconv.ParseBool(v); err == nil {
		return b
	}
	return v
}
