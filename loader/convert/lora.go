package convert

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/llm-go/llm/loader/gguf"
	"github.com/llm-go/llm/loader/safetensors"
)

// PEFT adapter files, as peft's save_pretrained writes them.
const (
	AdapterConfigFile  = "adapter_config.json"
	AdapterWeightsFile = "adapter_model.safetensors"
)

// IsAdapterDir reports whether dir holds a PEFT adapter
// (adapter_config.json).
func IsAdapterDir(dir string) bool {
	st, err := os.Stat(filepath.Join(dir, AdapterConfigFile))
	return err == nil && st.Mode().IsRegular()
}

// adapterConfig holds the adapter_config.json fields the converter reads.
type adapterConfig struct {
	PeftType  string          `json:"peft_type"`
	R         int             `json:"r"`
	LoRAAlpha float64         `json:"lora_alpha"`
	UseRSLoRA bool            `json:"use_rslora"`
	UseDoRA   bool            `json:"use_dora"`
	RankPat   json.RawMessage `json:"rank_pattern"`
	AlphaPat  json.RawMessage `json:"alpha_pattern"`
	BaseModel string          `json:"base_model_name_or_path"`
}

// loraTensorRE matches a PEFT LoRA tensor: the base module and A or B.
var loraTensorRE = regexp.MustCompile(`^(?:base_model\.model\.)?(.+)\.lora_([AB])\.weight$`)

// ConvertLoRA converts the PEFT LoRA adapter in dir (adapter_config.json
// and adapter_model.safetensors) into a GGUF adapter at out that llama.cpp
// applies to base, the GGUF model the adapter was trained on (its header,
// from gguf.ValidateModel, and its tensors across splits): as
// convert_lora_to_gguf.py does, the module names become the model's tensor
// names, lora_A and lora_B become .lora_a and .lora_b, the q/k rows of
// lora_B are permuted as the base's were for llama.cpp's llama arch, and
// lora_alpha becomes adapter.lora.alpha (llama.cpp scales by alpha/r, as
// PEFT does). Every pair is checked against the base's tensor shapes.
// opts.Type is the tensors' type ("" is f16, as convert_lora_to_gguf.py's
// default). rsLoRA, DoRA, per-module ranks or alphas and embedding adapters
// are ErrUnsupported.
func ConvertLoRA(ctx context.Context, dir, out string, base *gguf.File, baseTensors []gguf.TensorInfo, opts Options) error {
	if opts.Type == "" {
		opts.Type = "f16"
	}
	outType, _, err := parseOutType(opts.Type)
	if err != nil {
		return err
	}
	raw, err := os.ReadFile(filepath.Join(dir, AdapterConfigFile))
	if err != nil {
		return fmt.Errorf("convert: %w", err)
	}
	var cfg adapterConfig
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return fmt.Errorf("convert: %s: %w", AdapterConfigFile, err)
	}
	switch {
	case cfg.PeftType != "" && cfg.PeftType != "LORA":
		return fmt.Errorf("%w PEFT type %q: only LORA adapters", ErrUnsupported, cfg.PeftType)
	case cfg.UseDoRA:
		return fmt.Errorf("%w: a DoRA adapter (use_dora): llama.cpp applies plain LoRA only", ErrUnsupported)
	case cfg.UseRSLoRA:
		return fmt.Errorf("%w: an rsLoRA adapter (use_rslora scales by alpha/sqrt(r); llama.cpp by alpha/r)", ErrUnsupported)
	case !isEmptyJSONObject(cfg.RankPat) || !isEmptyJSONObject(cfg.AlphaPat):
		return fmt.Errorf("%w: rank_pattern or alpha_pattern (per-module ranks or alphas; llama.cpp has one alpha per adapter)", ErrUnsupported)
	case cfg.R <= 0:
		return fmt.Errorf("%w: %s: r is missing or not positive", ErrMismatch, AdapterConfigFile)
	}

	st, err := safetensors.OpenFile(filepath.Join(dir, AdapterWeightsFile))
	if err != nil {
		return fmt.Errorf("convert: %w", err)
	}
	defer st.Close()

	arch := base.Architecture()
	if arch == "falcon-h1" {
		// Its µP multipliers are folded into the base weights and not
		// recorded in the GGUF, so an adapter's B matrices could not be
		// scaled to match.
		return fmt.Errorf("%w: LoRA adapters of a falcon-h1 base: its multipliers are folded into the base weights", ErrUnsupported)
	}
	heads, kvHeads, rot := loraHeads(base)
	baseLayers, _ := base.Uint(arch + ".block_count")
	layerKV, _ := base.LayerKVHeads(int(min(baseLayers, 1<<16)))
	permute := permutedArch(arch) // as Convert permutes those archs' q/k rows
	byName := make(map[string]gguf.TensorInfo, len(baseTensors))
	for _, t := range baseTensors {
		byName[t.Name] = t
	}

	var plan []tensorPlan
	for _, t := range st.Tensors() {
		m := loraTensorRE.FindStringSubmatch(t.Name)
		if m == nil {
			if strings.Contains(t.Name, "lora_embedding_") {
				return fmt.Errorf("%w tensor %q: adapters of the embeddings are not converted", ErrUnsupported, t.Name)
			}
			return fmt.Errorf("%w tensor %q in a LoRA adapter: want MODULE.lora_A.weight or MODULE.lora_B.weight", ErrUnsupported, t.Name)
		}
		g, err := loraBaseName(m[1])
		if err != nil {
			return fmt.Errorf("%w: tensor %q", err, t.Name)
		}
		if len(t.Shape) != 2 {
			return fmt.Errorf("%w: tensor %q has shape %v, not a matrix", ErrMismatch, t.Name, t.Shape)
		}
		if !t.DType.Supported() {
			return fmt.Errorf("%w: tensor %q has dtype %s; the converter reads F32, F16 and BF16 weights", ErrUnsupported, t.Name, t.DType)
		}
		p := tensorPlan{hfName: t.Name, shape: t.Shape, layer: -1}
		if m[2] == "A" {
			p.ggufName = g + ".lora_a"
			if t.Shape[0] != int64(cfg.R) {
				return fmt.Errorf("%w: tensor %q has shape %v, r is %d", ErrMismatch, t.Name, t.Shape, cfg.R)
			}
		} else {
			p.ggufName = g + ".lora_b"
			if t.Shape[1] != int64(cfg.R) {
				return fmt.Errorf("%w: tensor %q has shape %v, r is %d", ErrMismatch, t.Name, t.Shape, cfg.R)
			}
			if permute {
				switch {
				case strings.HasSuffix(g, ".attn_q.weight"):
					p.permute, p.permuteRot = int(heads), rot
				case strings.HasSuffix(g, ".attn_k.weight"):
					p.permute, p.permuteRot = int(kvHeads), rot
					// DeciLM's layers have their own key/value heads.
					var n int
					if _, err := fmt.Sscanf(g, "blk.%d.", &n); err == nil && n >= 0 && n < len(layerKV) && layerKV[n] > 0 {
						p.permute = int(layerKV[n])
					}
				}
			}
		}
		plan = append(plan, p)
	}
	if len(plan) == 0 {
		return fmt.Errorf("%w: %s holds no LoRA tensors", ErrMismatch, AdapterWeightsFile)
	}
	slices.SortFunc(plan, func(a, b tensorPlan) int { return strings.Compare(a.ggufName, b.ggufName) })

	w := gguf.NewWriter()
	w.Set(gguf.KeyArchitecture, gguf.String(arch))
	w.Set(gguf.KeyGeneralType, gguf.String("adapter"))
	w.Set(gguf.KeyAdapterType, gguf.String("lora"))
	w.Set(gguf.KeyLoRAAlpha, gguf.Float32(float32(cfg.LoRAAlpha)))
	name := opts.Name
	if name == "" {
		abs, _ := filepath.Abs(dir)
		name = filepath.Base(abs)
	}
	w.Set("general.name", gguf.String(name))
	if cfg.BaseModel != "" {
		w.Set("general.base_model.0.name", gguf.String(cfg.BaseModel))
	}
	tw := &tensorWriter{st: st, progress: opts.Progress}
	var infos []gguf.TensorInfo
	for _, p := range plan {
		typ := tensorType(p.ggufName, p.outShape(), outType)
		n := p.shape[0] * p.shape[1]
		tw.total += int64(encodedSize(typ, int(n)))
		infos = append(infos, gguf.TensorInfo{Name: p.ggufName, Type: typ, Shape: ggmlShape(p.outShape())})
		p := p
		if err := w.AddTensor(p.ggufName, typ, ggmlShape(p.outShape()), func(wr io.Writer) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			return tw.writeTensor(ctx, wr, p, typ)
		}); err != nil {
			return fmt.Errorf("convert: %w", err)
		}
	}
	// Check the pairs against the base before writing anything.
	if _, err := gguf.ValidateAdapter(&gguf.File{KV: []gguf.KV{
		{Key: gguf.KeyArchitecture, Value: gguf.String(arch)}, {Key: gguf.KeyGeneralType, Value: gguf.String("adapter")},
		{Key: gguf.KeyAdapterType, Value: gguf.String("lora")},
	}, Tensors: infos}, arch, func(n string) (gguf.TensorInfo, bool) { t, ok := byName[n]; return t, ok }); err != nil {
		return fmt.Errorf("%w: the adapter does not fit the base model: %w", ErrMismatch, err)
	}
	// A temporary file of its own: another process may be converting the
	// same adapter into the same cache.
	f, err := os.CreateTemp(filepath.Dir(out), filepath.Base(out)+".*.tmp")
	if err != nil {
		return fmt.Errorf("convert: %w", err)
	}
	tmp := f.Name()
	f.Close()
	if err := w.WriteFile(tmp); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("convert: write %s: %w", out, err)
	}
	if err := os.Rename(tmp, out); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("convert: %w", err)
	}
	return nil
}

// permutedArch reports whether Convert permutes the q/k rows of the GGUF
// arch's models (llama.cpp's "norm" rope type: llama, smollm3, granite).
func permutedArch(gguf string) bool {
	for _, a := range archs {
		if a.gguf == gguf && a.permute {
			return true
		}
	}
	return false
}

// loraHeads returns what permuting an adapter's q/k rows takes from its
// base: the heads, the KV heads (of a hybrid's attention layers, when one
// per layer) and, for a partial rope (Bamba's), how many of each head's
// rows rotate (0: all).
func loraHeads(base *gguf.File) (heads, kvHeads uint64, rot int) {
	arch := base.Architecture()
	heads, _ = base.HeadCount()
	kvHeads, ok := base.Uint(arch + ".attention.head_count_kv")
	if !ok {
		kvHeads = heads
		layers, _ := base.Uint(arch + ".block_count")
		if kv, ok := base.LayerKVHeads(int(min(layers, 1<<16))); ok {
			kvHeads = slices.Max(append(kv, 0))
		}
	}
	if r, ok := base.Uint(arch + ".rope.dimension_count"); ok && heads > 0 {
		hd, ok := base.Uint(arch + ".attention.key_length")
		if !ok {
			embd, _ := base.Uint(arch + ".embedding_length")
			hd = embd / heads
		}
		if r < hd {
			rot = int(r)
		}
	}
	return heads, kvHeads, rot
}

// loRAFormat versions LoRAFile's conversions: a change to ConvertLoRA's
// output changes the cache's file names.
const loRAFormat = "v3" // v3: a hybrid's per-layer KV heads, a partial rope's rows

// loraBaseName maps a PEFT module name (model.layers.N.self_attn.q_proj,
// lm_head) to the GGUF tensor it adapts.
func loraBaseName(module string) (string, error) {
	if module == "lm_head" {
		return "output.weight", nil
	}
	m := layerRE.FindStringSubmatch(module + ".weight")
	if m == nil {
		return "", fmt.Errorf("%w module %q: not a decoder layer's projection or lm_head", ErrUnsupported, module)
	}
	g, ok := layerNames[m[2]]
	if !ok || !strings.HasSuffix(m[2], "_proj.weight") {
		return "", fmt.Errorf("%w module %q", ErrUnsupported, module)
	}
	return "blk." + m[1] + "." + g, nil
}

// isEmptyJSONObject reports whether raw is absent, null or {}.
func isEmptyJSONObject(raw json.RawMessage) bool {
	if isNull(raw) {
		return true
	}
	var m map[string]any
	return json.Unmarshal(raw, &m) == nil && len(m) == 0
}

// LoRAFile returns a GGUF LoRA adapter for the model at basePath (its
// header base, from gguf.ValidateModel): path itself when it is a file, or,
// when it is a PEFT adapter directory, its conversion by ConvertLoRA (F16),
// made once into cacheDir ("": DefaultCacheDir) and reused while the
// directory's files and the base's architecture stay the same.
func LoRAFile(ctx context.Context, path, cacheDir, basePath string, base *gguf.File) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("convert: LoRA adapter: %w", err)
	}
	if !st.IsDir() {
		return path, nil
	}
	if !IsAdapterDir(path) {
		return "", fmt.Errorf("convert: LoRA adapter %s: a directory without %s (not a PEFT adapter): %w", path, AdapterConfigFile, ErrUnsupported)
	}
	if cacheDir == "" {
		if cacheDir, err = DefaultCacheDir(); err != nil {
			return "", err
		}
	}
	key, err := dirKey(path)
	if err != nil {
		return "", err
	}
	// The conversion depends on the base's names and heads (the permuted
	// q/k rows), not on its weights.
	arch := base.Architecture()
	heads, kvHeads, rot := loraHeads(base)
	layers, _ := base.Uint(arch + ".block_count")
	if kv, ok := base.LayerKVHeads(int(min(layers, 1<<16))); ok && len(kv) > 0 && slices.Min(kv) != slices.Max(kv) {
		// DeciLM's per-layer key/value heads permute each layer's own.
		h := fnv.New32a()
		fmt.Fprint(h, kv)
		kvHeads = uint64(h.Sum32())<<8 | kvHeads
	}
	out := filepath.Join(cacheDir, safeName(fmt.Sprintf("lora-%s-%s-%s-%d-%d-%d", loRAFormat, key, arch, heads, kvHeads, rot))+"-f16.gguf")
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	tensors, err := gguf.AllTensors(basePath, base)
	if err != nil {
		return "", fmt.Errorf("convert: %w", err)
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", fmt.Errorf("convert: %w", err)
	}
	if err := ConvertLoRA(ctx, path, out, base, tensors, Options{}); err != nil {
		return "", err
	}
	return out, nil
}
