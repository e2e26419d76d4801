package hub

import (
	"fmt"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Selection says which files of a repo to fetch. The zero value selects
// what inference needs (see SelectFiles).
type Selection struct {
	Quant   string   // GGUF quantization tag, case-insensitive ("Q4_K_M")
	File    string   // one file; a split GGUF brings all its parts
	Include []string // fnmatch globs; when set they replace the default choice
	Exclude []string // fnmatch globs removed from the result
	// Convertible, when not nil, lets Quant name the type a repo of
	// safetensors weights (with no GGUF file) is to be converted to:
	// when it accepts Quant, such a repo's default files are selected,
	// and the caller converts them.
	Convertible func(quant string) bool
}

// DefaultQuant is the quantization picked from a GGUF repo when none is
// named and the repo has it, as llama.cpp and Ollama choose.
const DefaultQuant = "Q4_K_M"

// quantPreference orders the quantizations tried, after DefaultQuant, when a
// GGUF repo has several and none was named.
var quantPreference = []string{
	"Q4_K_M", "Q4_K_S", "Q4_0", "Q5_K_M", "Q5_K_S", "Q5_0", "Q6_K", "Q8_0",
	"IQ4_XS", "IQ4_NL", "Q3_K_M", "Q3_K_L", "Q3_K_S", "Q2_K", "BF16", "F16", "F32",
}

// auxFiles are the small files a safetensors model needs besides weights.
var auxFiles = map[string]bool{
	"config.json": true, "generation_config.json": true,
	"tokenizer.json": true, "tokenizer_config.json": true, "tokenizer.model": true,
	"special_tokens_map.json": true, "added_tokens.json": true,
	"vocab.json": true, "merges.txt": true, "vocab.txt": true,
	"chat_template.json": true, "chat_template.jinja": true,
	"preprocessor_config.json": true, "processor_config.json": true,
	"adapter_config.json": true, // a PEFT adapter's (with adapter_model.safetensors)
	// A sentence-transformers model's module list, which names its
	// pooling and projections (sentenceModuleRE).
	"modules.json": true,
}

// sentenceModuleRE matches the files of a sentence-transformers model's
// modules, in the folders it numbers (1_Pooling, 2_Dense, 2_Dense_1024,
// ...): their config.json and a Dense projection's weights (not a legacy
// 0_Transformer's copy of the model). The converter reads
// them for the embedding's pooling and projections.
var sentenceModuleRE = regexp.MustCompile(`^\d+_(Pooling|Dense|Normalize)[^/]*/(config\.json|model\.safetensors)$`)

var (
	splitRE      = regexp.MustCompile(`(?i)^(.*)-(\d{5})-of-(\d{5})\.gguf$`)
	quantTokenRE = regexp.MustCompile(`(?i)(?:^|[-._/])(I?Q\d(?:_[A-Z0-9]{1,3})*|TQ\d_\d|BF16|F16|F32|FP16|FP32|MXFP4)(?:$|[-./])`)
)

// SplitPart parses a split GGUF name "name-00002-of-00005.gguf" into its
// prefix, part number and part count. ok is false for other names.
func SplitPart(p string) (prefix string, part, count int, ok bool) {
	m := splitRE.FindStringSubmatch(p)
	if m == nil {
		return "", 0, 0, false
	}
	part, _ = strconv.Atoi(m[2])
	count, _ = strconv.Atoi(m[3])
	if part < 1 || count < 1 || part > count {
		return "", 0, 0, false
	}
	return m[1], part, count, true
}

// QuantOf returns the quantization tag found in a GGUF file name
// ("Q4_K_M", "F16", ...), upper-cased, or "" when the name has none.
func QuantOf(p string) string {
	base := path.Base(p)
	if prefix, _, _, ok := SplitPart(base); ok {
		base = prefix
	} else {
		base = strings.TrimSuffix(strings.TrimSuffix(base, ".gguf"), ".GGUF")
	}
	ms := quantTokenRE.FindAllStringSubmatch(base, -1)
	if len(ms) == 0 {
		// A quant folder: "Q4_K_M/model-00001-of-00002.gguf".
		if d := path.Dir(p); d != "." {
			return QuantOf(d + ".gguf")
		}
		return ""
	}
	return strings.ToUpper(ms[len(ms)-1][1])
}

// hasQuant reports whether p names quantization q: q occurs in it, ignoring
// case, between separators (start, '-', '.', '_' or '/' before it; end, '-',
// '.' or '/' after it), so "Q4_K" does not match "Q4_K_M".
func hasQuant(p, q string) bool {
	lp, lq := strings.ToLower(p), strings.ToLower(q)
	for i := 0; ; {
		j := strings.Index(lp[i:], lq)
		if j < 0 {
			return false
		}
		s, e := i+j, i+j+len(lq)
		before := s == 0 || strings.ContainsRune("-._/", rune(lp[s-1]))
		after := e == len(lp) || strings.ContainsRune("-./", rune(lp[e]))
		if before && after {
			return true
		}
		i = s + 1
	}
}

func isGGUF(p string) bool { return strings.HasSuffix(strings.ToLower(p), ".gguf") }

func isMMProj(p string) bool { return strings.HasPrefix(strings.ToLower(path.Base(p)), "mmproj") }

// ggufGroup is one GGUF model: a single file or all parts of a split file.
type ggufGroup struct {
	key   string   // the file, or the split prefix
	files []string // sorted
	quant string
	count int // parts expected (1 for a single file)
}

func groupGGUF(paths []string) []*ggufGroup {
	byKey := map[string]*ggufGroup{}
	var order []*ggufGroup
	for _, p := range paths {
		if !isGGUF(p) || isMMProj(p) {
			continue
		}
		key, count := p, 1
		if prefix, _, n, ok := SplitPart(p); ok {
			key, count = prefix, n
		}
		g := byKey[key]
		if g == nil {
			g = &ggufGroup{key: key, count: count, quant: QuantOf(p)}
			byKey[key] = g
			order = append(order, g)
		}
		g.files = append(g.files, p)
	}
	for _, g := range order {
		sort.Strings(g.files)
	}
	return order
}

func (g *ggufGroup) complete() error {
	if len(g.files) != g.count {
		return fmt.Errorf("split GGUF %s: %d of %d parts present: %w", g.key, len(g.files), g.count, ErrNotFound)
	}
	return nil
}

// SelectFiles picks, from the paths of a repo's files, the ones sel asks
// for, sorted. With a zero Selection it picks what inference needs: one GGUF
// model (DefaultQuant when there are several, else the best of the others by
// a fixed preference; split files with all their parts), or else the
// top-level *.safetensors weights, their index, and the config, tokenizer and
// generation files. *.bin, *.pt, ONNX, Flax and TF weights are left out unless
// included. README.md (the model card, small) comes along when present,
// except with Include.
func SelectFiles(paths []string, sel Selection) ([]string, error) {
	have := make(map[string]bool, len(paths))
	for _, p := range paths {
		have[p] = true
	}
	out := map[string]bool{}
	addReadme := func() {
		if have["README.md"] {
			out["README.md"] = true
		}
	}
	addDefault := func() error {
		files, err := defaultFiles(paths)
		if err != nil {
			return err
		}
		for _, f := range files {
			out[f] = true
		}
		addReadme()
		return nil
	}
	switch {
	case sel.File != "":
		if !have[sel.File] {
			return nil, fmt.Errorf("file %s: %w", sel.File, ErrNotFound)
		}
		out[sel.File] = true
		addReadme()
		if prefix, _, n, ok := SplitPart(sel.File); ok {
			for _, g := range groupGGUF(paths) {
				if g.key == prefix && g.count == n {
					if err := g.complete(); err != nil {
						return nil, err
					}
					for _, f := range g.files {
						out[f] = true
					}
				}
			}
		}
	case sel.Quant != "" && sel.Convertible != nil && len(groupGGUF(paths)) == 0 && hasSafetensors(paths):
		if !sel.Convertible(sel.Quant) {
			return nil, fmt.Errorf("quantization %s: the repo holds safetensors weights (no GGUF file), and they do not convert to %s: %w", sel.Quant, sel.Quant, ErrNotFound)
		}
		if err := addDefault(); err != nil {
			return nil, err
		}
	case sel.Quant != "":
		var match []*ggufGroup
		for _, g := range groupGGUF(paths) {
			if hasQuant(g.files[0], sel.Quant) {
				match = append(match, g)
			}
		}
		switch len(match) {
		case 0:
			return nil, fmt.Errorf("no GGUF file with quantization %s (available: %s): %w",
				sel.Quant, availableQuants(paths), ErrNotFound)
		case 1:
		default:
			return nil, fmt.Errorf("quantization %s matches several models (%s); name a file: %w",
				sel.Quant, groupNames(match), ErrAmbiguous)
		}
		if err := match[0].complete(); err != nil {
			return nil, err
		}
		for _, f := range match[0].files {
			out[f] = true
		}
		addReadme()
	case len(sel.Include) == 0:
		if err := addDefault(); err != nil {
			return nil, err
		}
	}
	for _, p := range paths {
		if len(sel.Include) > 0 && matchAny(sel.Include, p) {
			out[p] = true
		}
	}
	for p := range out {
		if matchAny(sel.Exclude, p) {
			delete(out, p)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no files selected: %w", ErrNotFound)
	}
	res := make([]string, 0, len(out))
	for p := range out {
		res = append(res, p)
	}
	sort.Strings(res)
	return res, nil
}

// hasSafetensors reports whether the repo has top-level safetensors
// weights.
func hasSafetensors(paths []string) bool {
	for _, p := range paths {
		if !strings.Contains(p, "/") && strings.HasSuffix(p, ".safetensors") {
			return true
		}
	}
	return false
}

func defaultFiles(paths []string) ([]string, error) {
	if groups := groupGGUF(paths); len(groups) > 0 {
		g, err := pickGroup(groups)
		if err != nil {
			return nil, err
		}
		if err := g.complete(); err != nil {
			return nil, err
		}
		return g.files, nil
	}
	var out []string
	weights := false
	for _, p := range paths {
		if sentenceModuleRE.MatchString(p) {
			out = append(out, p)
			continue
		}
		if strings.Contains(p, "/") {
			continue
		}
		switch {
		case strings.HasSuffix(p, ".safetensors"):
			weights = true
			out = append(out, p)
		case strings.HasSuffix(p, ".safetensors.index.json"), auxFiles[p]:
			out = append(out, p)
		}
	}
	if !weights {
		return nil, fmt.Errorf("no GGUF or safetensors weights in the repo (use --include to pick files): %w", ErrNotFound)
	}
	return out, nil
}

// pickGroup chooses one GGUF model when none was named.
func pickGroup(groups []*ggufGroup) (*ggufGroup, error) {
	if len(groups) == 1 {
		return groups[0], nil
	}
	for _, q := range quantPreference {
		var match []*ggufGroup
		for _, g := range groups {
			if g.quant == q {
				match = append(match, g)
			}
		}
		if len(match) == 1 {
			return match[0], nil
		}
		if len(match) > 1 {
			return nil, fmt.Errorf("several %s models (%s); name a file: %w", q, groupNames(match), ErrAmbiguous)
		}
	}
	return nil, fmt.Errorf("the repo has several GGUF models (%s); name one as REPO/FILE or REPO:QUANT: %w",
		groupNames(groups), ErrAmbiguous)
}

func groupNames(gs []*ggufGroup) string {
	var names []string
	for _, g := range gs {
		names = append(names, g.files[0])
	}
	return strings.Join(names, ", ")
}

func availableQuants(paths []string) string {
	seen := map[string]bool{}
	var qs []string
	for _, g := range groupGGUF(paths) {
		if g.quant != "" && !seen[g.quant] {
			seen[g.quant] = true
			qs = append(qs, g.quant)
		}
	}
	if len(qs) == 0 {
		return "none"
	}
	sort.Strings(qs)
	return strings.Join(qs, ", ")
}
