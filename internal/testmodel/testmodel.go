// Package testmodel makes test models from the shared ones by editing their
// GGUF metadata or weights, for tests of features the tiny shared models
// lack.
package testmodel

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/llm-go/llm/internal/shareddata"
	"github.com/llm-go/llm/loader/gguf"
)

// FIM token ids that StoriesWithFIM gives stories260K: three of its byte
// tokens, named as the fill-in-the-middle prefix, suffix and middle.
const (
	FIMPre = 3
	FIMSuf = 4
	FIMMid = 5
)

// StoriesWithFIM writes a copy of stories260K whose vocabulary has
// fill-in-the-middle tokens, named name.gguf in a temporary directory, and
// returns its path.
func StoriesWithFIM(t testing.TB, name string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name+".gguf")
	err := gguf.Rewrite(path, shareddata.Path(t, "models", "stories260K.gguf"), func(w *gguf.Writer) {
		w.Set("tokenizer.ggml.fim_pre_token_id", gguf.Uint32(FIMPre))
		w.Set("tokenizer.ggml.fim_suf_token_id", gguf.Uint32(FIMSuf))
		w.Set("tokenizer.ggml.fim_mid_token_id", gguf.Uint32(FIMMid))
	})
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// LoRATargets are the stories260K weights StoriesLoRA's adapter changes.
var LoRATargets = []string{"blk.0.attn_q.weight", "blk.2.ffn_up.weight", "blk.4.attn_output.weight", "output.weight"}

// The rank and alpha of StoriesLoRA's adapter.
const (
	LoRARank  = 4
	LoRAAlpha = 8
)

// loraFactors returns the adapter's A (rank × in, row-major) and B (out ×
// rank) for a weight of ggml shape {in, out}, fixed pseudo-random values.
func loraFactors(name string, in, out int) (a, b []float32) {
	seed := uint64(len(name))
	for _, c := range name {
		seed = seed*31 + uint64(c)
	}
	r := rand.New(rand.NewPCG(seed, 7))
	a, b = make([]float32, LoRARank*in), make([]float32, out*LoRARank)
	for i := range a {
		a[i] = float32(r.NormFloat64() * 0.3)
	}
	for i := range b {
		b[i] = float32(r.NormFloat64() * 0.3)
	}
	return a, b
}

// f32Data writes float32 values little-endian.
func f32Data(v []float32) func(io.Writer) error {
	return func(w io.Writer) error {
		buf := make([]byte, 4*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(x))
		}
		_, err := w.Write(buf)
		return err
	}
}

// StoriesLoRA writes a LoRA adapter for stories260K (LoRATargets, rank
// LoRARank, alpha LoRAAlpha, F32), as convert_lora_to_gguf.py lays one out,
// with edit applied to its writer before the tensors are added (nil: none),
// and returns its path.
func StoriesLoRA(t testing.TB, edit func(w *gguf.Writer)) string {
	t.Helper()
	base, err := gguf.Open(shareddata.Path(t, "models", "stories260K.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	w := gguf.NewWriter()
	w.Set("general.architecture", gguf.String("llama"))
	w.Set("general.type", gguf.String("adapter"))
	w.Set("adapter.type", gguf.String("lora"))
	w.Set("adapter.lora.alpha", gguf.Float32(LoRAAlpha))
	if edit != nil {
		edit(w)
	}
	for _, name := range LoRATargets {
		ti, ok := base.Tensor(name)
		if !ok {
			t.Fatalf("stories260K has no %s", name)
		}
		in, out := ti.Shape[0], ti.Shape[1]
		a, b := loraFactors(name, int(in), int(out))
		if err := w.AddTensor(name+".lora_a", gguf.TypeF32, []uint64{in, LoRARank}, f32Data(a)); err != nil {
			t.Fatal(err)
		}
		if err := w.AddTensor(name+".lora_b", gguf.TypeF32, []uint64{LoRARank, out}, f32Data(b)); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "stories-lora.gguf")
	if err := w.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	return path
}

// StoriesMerged writes stories260K with StoriesLoRA's adapter merged into
// its weights at the given scale (W + scale·alpha/rank·B·A, in float64),
// and returns its path: what the model with the adapter applied computes.
func StoriesMerged(t testing.TB, scale float64) string {
	t.Helper()
	factor := scale * LoRAAlpha / LoRARank
	return Rewrite(t, shareddata.Path(t, "models", "stories260K.gguf"), nil, func(ti gguf.TensorInfo, raw []byte) ([]uint64, []byte) {
		if !slices.Contains(LoRATargets, ti.Name) {
			return ti.Shape, raw
		}
		if ti.Type != gguf.TypeF32 {
			t.Fatalf("%s is %v, not F32", ti.Name, ti.Type)
		}
		in, outDim := int(ti.Shape[0]), int(ti.Shape[1])
		a, b := loraFactors(ti.Name, in, outDim)
		for o := range outDim {
			for i := range in {
				var d float64
				for k := range LoRARank {
					d += float64(b[o*LoRARank+k]) * float64(a[k*in+i])
				}
				x := math.Float32frombits(binary.LittleEndian.Uint32(raw[4*(o*in+i):]))
				binary.LittleEndian.PutUint32(raw[4*(o*in+i):], math.Float32bits(float32(float64(x)+factor*d)))
			}
		}
		return ti.Shape, raw
	})
}

// Rewrite writes a copy of the GGUF file src into a temporary directory
// and returns its path: the metadata changed by meta and each tensor's
// data by data (each when not nil). data gets the tensor's bytes and may
// change them in place or return others, with the shape they have (a
// longer embedding matrix, say); the type stays.
func Rewrite(t testing.TB, src string, meta func(w *gguf.Writer), data func(ti gguf.TensorInfo, raw []byte) ([]uint64, []byte)) string {
	t.Helper()
	h, err := gguf.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := gguf.NewWriter()
	for _, kv := range h.KV {
		w.Set(kv.Key, kv.Value)
	}
	if meta != nil {
		meta(w)
	}
	for _, ti := range h.Tensors {
		raw := make([]byte, ti.Size)
		if _, err := f.ReadAt(raw, h.DataOffset+int64(ti.Offset)); err != nil {
			t.Fatal(err)
		}
		shape := ti.Shape
		if data != nil {
			shape, raw = data(ti, raw)
		}
		if err := w.AddTensor(ti.Name, ti.Type, shape, func(out io.Writer) error { _, err := out.Write(raw); return err }); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "rewritten.gguf")
	if err := w.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	return path
}

// StoriesPEFT writes StoriesLoRA's adapter as a PEFT adapter directory
// (adapter_config.json, adapter_model.safetensors with lora_A/lora_B in
// Hugging Face's names and row order: the q rows of lora_B un-permuted, as
// transformers would hold them), and returns the directory. Converted for
// stories260K it is StoriesLoRA's adapter again.
func StoriesPEFT(t testing.TB) string {
	t.Helper()
	base, err := gguf.Open(shareddata.Path(t, "models", "stories260K.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	heads, _ := base.Uint("llama.attention.head_count")
	modules := map[string]string{
		"blk.0.attn_q.weight": "model.layers.0.self_attn.q_proj", "blk.2.ffn_up.weight": "model.layers.2.mlp.up_proj",
		"blk.4.attn_output.weight": "model.layers.4.self_attn.o_proj", "output.weight": "lm_head",
	}
	type tensor struct {
		name  string
		shape []int
		data  []float32
	}
	var ts []tensor
	for _, name := range LoRATargets {
		ti, _ := base.Tensor(name)
		in, out := int(ti.Shape[0]), int(ti.Shape[1])
		a, b := loraFactors(name, in, out)
		if name == "blk.0.attn_q.weight" {
			// GGUF row h·hd+k holds Hugging Face row h·hd+(k%2)·hd/2+k/2.
			hf := make([]float32, len(b))
			hd := out / int(heads)
			for r := range out {
				h, k := r/hd, r%hd
				src := h*hd + (k%2)*(hd/2) + k/2
				copy(hf[src*LoRARank:(src+1)*LoRARank], b[r*LoRARank:(r+1)*LoRARank])
			}
			b = hf
		}
		m := "base_model.model." + modules[name]
		ts = append(ts, tensor{m + ".lora_A.weight", []int{LoRARank, in}, a}, tensor{m + ".lora_B.weight", []int{out, LoRARank}, b})
	}
	slices.SortFunc(ts, func(x, y tensor) int { return strings.Compare(x.name, y.name) })
	header := map[string]any{"__metadata__": map[string]string{"format": "pt"}}
	off := 0
	for _, x := range ts {
		header[x.name] = map[string]any{"dtype": "F32", "shape": x.shape, "data_offsets": []int{off, off + 4*len(x.data)}}
		off += 4 * len(x.data)
	}
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	for len(h)%8 != 0 {
		h = append(h, ' ')
	}
	file := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
	file = append(file, h...)
	for _, x := range ts {
		for _, v := range x.data {
			file = binary.LittleEndian.AppendUint32(file, math.Float32bits(v))
		}
	}
	dir := t.TempDir()
	cfg := fmt.Sprintf(`{"peft_type": "LORA", "r": %d, "lora_alpha": %d, "target_modules": ["q_proj", "o_proj", "up_proj", "lm_head"], "base_model_name_or_path": "stories260K"}`, LoRARank, LoRAAlpha)
	if err := os.WriteFile(filepath.Join(dir, "adapter_config.json"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "adapter_model.safetensors"), file, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// AsArch writes a copy of the llama GGUF at src as a file of arch: its
// llama.* keys renamed arch.*, general.architecture arch, then edit
// applied (set writes arch.key). It returns the copy's path, in a
// temporary directory of t.
func AsArch(t testing.TB, src, arch string, edit func(set func(key string, v gguf.Value))) string {
	t.Helper()
	f, err := gguf.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), arch+".gguf")
	err = gguf.Rewrite(path, src, func(w *gguf.Writer) {
		for _, kv := range f.KV {
			if rest, ok := strings.CutPrefix(kv.Key, "llama."); ok {
				w.Delete(kv.Key)
				w.Set(arch+"."+rest, kv.Value)
			}
		}
		w.Set("general.architecture", gguf.String(arch))
		if edit != nil {
			edit(func(key string, v gguf.Value) { w.Set(arch+"."+key, v) })
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// StoriesWithTask writes a copy of stories260K named name.gguf and, beside
// it as lora-TASK-name.gguf, StoriesLoRA's adapter made the adapter of
// task, with prefix as its instruction (adapter.lora.task_name and
// prompt_prefix, as convert writes jina-embeddings-v3's); it returns the
// model's path and the adapter's.
func StoriesWithTask(t testing.TB, name, task, prefix string) (model, adapter string) {
	t.Helper()
	dir := t.TempDir()
	model = filepath.Join(dir, name+".gguf")
	raw, err := os.ReadFile(shareddata.Path(t, "models", "stories260K.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(model, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	adapter = filepath.Join(dir, "lora-"+task+"-"+name+".gguf")
	if err := os.Rename(StoriesLoRA(t, func(w *gguf.Writer) {
		w.Set(gguf.KeyLoRATaskName, gguf.String(task))
		w.Set(gguf.KeyLoRAPromptPrefix, gguf.String(prefix))
	}), adapter); err != nil {
		t.Fatal(err)
	}
	return model, adapter
}
