package convert

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/loader/safetensors"
)

// ToType converts the checkpoint in dir to out in any type: "f32", "f16",
// "bf16" and "q8_0" are written in Go (see Options.Type); any other
// llama.cpp type ("q4_k_m", "q6_k", ...; see engine.QuantTypes) by
// converting to F16 beside out and quantizing that through the engine with
// threads threads (0: all CPUs).
//
// progress, when not nil, receives Options.Progress's reports of the
// conversion (not of the quantization).
func ToType(ctx context.Context, dir, out, typ string, threads int, progress func(done, total int64)) error {
	t := strings.ToLower(typ)
	if _, ok := outTypes[t]; ok || t == "" {
		return Convert(ctx, dir, out, Options{Type: t, Progress: progress})
	}
	known := false
	for _, q := range engine.QuantTypes() {
		known = known || strings.EqualFold(q, typ)
	}
	if !known {
		return fmt.Errorf("convert: unknown output type %q (f32, f16, bf16, q8_0 or one of %s): %w", typ, strings.Join(engine.QuantTypes(), ", "), ErrUnsupported)
	}
	if !strings.EqualFold(typ, "mxfp4_moe") && hasMXFP4(dir) {
		return fmt.Errorf("convert: %s: the checkpoint's experts are MXFP4, which llama.cpp does not requantize to %s: convert to mxfp4_moe (the experts kept, the rest Q8_0), f16, bf16 or q8_0: %w",
			dir, typ, ErrUnsupported)
	}
	tmp := out + ".f16.tmp.gguf"
	defer os.Remove(tmp)
	if err := Convert(ctx, dir, tmp, Options{Type: "f16", Progress: progress, adapterFor: out}); err != nil {
		return err
	}
	if err := engine.Quantize(ctx, tmp, out, typ, threads); err != nil {
		removeTaskAdapters(out) // written for a model that is not there
		return fmt.Errorf("convert: quantize to %s: %w", typ, err)
	}
	return nil
}

// ConvertibleType reports whether ToType converts to typ
// (case-insensitive): f32, f16, bf16, q8_0, or a type engine.QuantTypes
// lists. A Hub name's quantization (org/repo:Q4_K_M) on a safetensors
// repo names the type it is converted to when this accepts it.
func ConvertibleType(typ string) bool {
	if _, ok := outTypes[strings.ToLower(typ)]; ok {
		return true
	}
	return slices.ContainsFunc(engine.QuantTypes(), func(q string) bool { return strings.EqualFold(q, typ) })
}

// HubType is the type a safetensors Hub repo is converted to, given the
// quantization its name carries (org/repo:Q4_K_M): that in lower case,
// else "f16".
func HubType(quant string) string {
	if quant == "" {
		return "f16"
	}
	return strings.ToLower(quant)
}

// CheckSnapshot is Check for the small files of a Hub snapshot, before
// its weights are fetched (hub.PullOptions.Check): a PEFT adapter passes
// (its base is checked when it is loaded).
func CheckSnapshot(dir string) error {
	if IsAdapterDir(dir) {
		return nil
	}
	return Check(dir)
}

// RemoveConverted deletes from cacheDir the conversions Cached made of
// the Hub repo's snapshots at commits (keys repo@commit), of type typ, or
// of every type when typ is empty. It returns the files removed and their
// bytes.
func RemoveConverted(cacheDir, repo string, commits []string, typ string) (files []string, bytes int64, err error) {
	if len(commits) == 0 {
		return nil, 0, nil
	}
	t := `[a-z0-9_]+`
	if typ != "" {
		t = regexp.QuoteMeta(strings.ToLower(typ))
	}
	alts := make([]string, len(commits))
	for i, c := range commits {
		alts[i] = regexp.QuoteMeta(safeName(c))
	}
	// With the task adapters written beside a conversion (lora-TASK-...).
	re := regexp.MustCompile(`^(lora-[A-Za-z0-9._-]+-)?` + regexp.QuoteMeta(safeName(repo)) + `-(` + strings.Join(alts, "|") + `)-` + t + `\.gguf$`)
	entries, err := os.ReadDir(cacheDir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, 0, nil
		}
		return nil, 0, fmt.Errorf("convert: %w", err)
	}
	for _, e := range entries {
		if !re.MatchString(e.Name()) {
			continue
		}
		p := filepath.Join(cacheDir, e.Name())
		info, err := e.Info()
		if err != nil {
			return files, bytes, fmt.Errorf("convert: %w", err)
		}
		if err := os.Remove(p); err != nil {
			return files, bytes, fmt.Errorf("convert: %w", err)
		}
		files, bytes = append(files, p), bytes+info.Size()
	}
	return files, bytes, nil
}

// hasMXFP4 reports whether the checkpoint in dir holds MXFP4 blocks (U8
// *_blocks tensors, as gpt-oss's releases).
func hasMXFP4(dir string) bool {
	st, err := safetensors.OpenDir(dir)
	if err != nil {
		return false // Convert reports it
	}
	defer st.Close()
	return slices.ContainsFunc(st.Tensors(), func(t safetensors.TensorInfo) bool {
		return t.DType == safetensors.U8 && strings.HasSuffix(t.Name, "_blocks")
	})
}

// Cached returns a GGUF of the checkpoint in dir in type typ, converting it
// once into cacheDir and reusing it afterwards. key names the checkpoint
// (for a Hub snapshot, repo and commit); empty derives one from dir's path
// and its files' sizes and modification times, so an edited checkpoint is
// converted again.
func Cached(ctx context.Context, dir, cacheDir, key, typ string) (string, error) {
	if key == "" {
		k, err := dirKey(dir)
		if err != nil {
			return "", err
		}
		key = k
	}
	if typ == "" {
		typ = "f16"
	}
	out := filepath.Join(cacheDir, safeName(key)+"-"+strings.ToLower(typ)+".gguf")
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", fmt.Errorf("convert: %w", err)
	}
	if err := ToType(ctx, dir, out, typ, 0, nil); err != nil {
		return "", err
	}
	return out, nil
}

// DefaultCacheDir is where Cached keeps conversions by default:
// <user cache dir>/llm/converted.
func DefaultCacheDir() (string, error) {
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("convert: %w", err)
	}
	return filepath.Join(d, "llm", "converted"), nil
}

// dirKey identifies a checkpoint directory by its absolute path and the
// names, sizes and modification times of its files.
func dirKey(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("convert: %w", err)
	}
	entries, err := os.ReadDir(abs)
	if err != nil {
		return "", fmt.Errorf("convert: %w", err)
	}
	h := sha256.New()
	fmt.Fprintln(h, abs)
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	for _, n := range names {
		st, err := os.Stat(filepath.Join(abs, n)) // follows the HF cache's symlinks
		if err != nil || st.IsDir() {
			continue
		}
		fmt.Fprintf(h, "%s %d %d\n", n, st.Size(), st.ModTime().UnixNano())
	}
	return filepath.Base(abs) + "-" + hex.EncodeToString(h.Sum(nil))[:16], nil
}

// safeName turns a key into a file name.
func safeName(key string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '-'
	}, key)
}
