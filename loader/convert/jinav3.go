package convert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/llm-go/llm/loader/gguf"
	"github.com/llm-go/llm/loader/safetensors"
)

// XLMRobertaModel with position_embedding_type "rotary" (jina-embeddings-v3;
// Jina AI's xlm-roberta-flash-implementation code) → GGUF arch
// "jina-bert-v3": XLM-RoBERTa's post-norm encoder without position
// embeddings, the queries and keys rotated instead (rotate-half, llama.cpp's
// NEOX rope, on positions from 0, base rotary_emb_base, every dimension of
// a head), with fused query/key/value projections (mixer.Wqkv), mixer.out_proj,
// norm1, mlp.fc1, mlp.fc2 and norm2, the embeddings' LayerNorm emb_ln, and
// the Unigram tokenizer of XLM-RoBERTa.
//
// Every linear layer and both embeddings carry one LoRA per task of
// lora_adaptations (parametrizations.weight.0.lora_A and lora_B, stacked
// by task, scaled by lora_alpha/lora_rank; the weight itself is
// parametrizations.weight.original). The model is written without them, as
// transformers runs it without a task; each task becomes a LoRA adapter
// GGUF of its own beside the model, named lora-TASK-<model file> (as
// convert_hf_to_gguf.py names them), with adapter.lora.task_name and the
// task's instruction from task_instructions as adapter.lora.prompt_prefix.
//
// llama.cpp's graph adds token type 0's embedding as it is, so the token
// type embedding's LoRA would be lost (convert_hf_to_gguf.py writes it,
// and llama.cpp loads it and never applies it). Its row 0 is added to every
// token, so it is folded into the word embeddings' LoRA as one more rank:
// a column of ones in A (whose other columns are scaled by (r+1)/r, since
// llama.cpp scales by alpha over the rank it reads) and the type's update
// times (r+1)/alpha in B.
//
// The pooler (and its LoRA) is skipped: the embedding is pooled by
// llama.cpp, mean unless a sentence-transformers Pooling module or
// emb_pooler says "cls". The context is max_position_embeddings less
// pad_token_id+1, as for XLM-RoBERTa (8192 as released).

// jinaV3Config holds XLMRobertaFlashConfig's rotary and LoRA fields.
type jinaV3Config struct {
	Tasks             []string          `json:"lora_adaptations"`
	Instructions      map[string]string `json:"task_instructions"`
	Rank              *int              `json:"lora_rank"`
	Alpha             *float64          `json:"lora_alpha"`
	RotaryBase        *float64          `json:"rotary_emb_base"`
	RotaryDim         *float64          `json:"rotary_emb_dim"`
	RotaryInterleaved *bool             `json:"rotary_emb_interleaved"`
	RotaryScaleBase   json.RawMessage   `json:"rotary_emb_scale_base"`
	EmbPooler         *string           `json:"emb_pooler"`
}

// jinaV3Arch turns XLMRobertaModel into jina-bert-v3 when its config has
// rotary positions; a rotary XLM-RoBERTa classifier is refused (llama.cpp's
// jina-bert-v3 has no classification head).
func (c *hfConfig) jinaV3Arch(arch archSpec) (archSpec, error) {
	if !arch.roberta || c.PositionEmbeddingType != "rotary" {
		return arch, nil
	}
	switch {
	case arch.classifier:
		return arch, fmt.Errorf("%w: %s with position_embedding_type \"rotary\": llama.cpp's rotary XLM-RoBERTa (jina-bert-v3) is an embedding model without a classification head", ErrUnsupported, arch.hf)
	case arch.hf != "XLMRobertaModel":
		return arch, fmt.Errorf("%w: %s with position_embedding_type \"rotary\": rotary positions are converted for XLMRobertaModel (jina-embeddings-v3, llama.cpp's jina-bert-v3) only", ErrUnsupported, arch.hf)
	}
	arch.gguf = "jina-bert-v3"
	return arch, nil
}

// jinaV3Hparams reads the rope and checks the task adapters' settings of a
// jina-bert-v3 config (h from bertHparams), with XLMRobertaFlashConfig's
// defaults: rotary_emb_base 10000, one token type, layer_norm_eps 1e-5.
func (c *hfConfig) jinaV3Hparams(h *hparams) error {
	if c.jv3Err != nil {
		return fmt.Errorf("convert: config.json: %w", c.jv3Err)
	}
	j := c.JinaV3
	h.posOffset = 0 // no position embeddings; the context stays shortened as XLM-RoBERTa's
	// XLMRobertaFlashConfig's defaults where BertConfig's differ.
	if c.TypeVocabSize == nil {
		h.typeVocab = 1
	}
	if c.LayerNormEps == nil {
		h.rmsEps = 1e-5
	}
	if j.RotaryBase == nil {
		base := 10000.0
		j.RotaryBase = &base
	}
	switch {
	case !(*j.RotaryBase > 0) || math.IsInf(*j.RotaryBase, 0):
		return fmt.Errorf("%w: config.json: rotary_emb_base %v is not a positive number", ErrMismatch, *j.RotaryBase)
	case j.RotaryDim != nil && *j.RotaryDim != float64(h.headDim):
		return fmt.Errorf("%w: rotary_emb_dim %v: llama.cpp's jina-bert-v3 rotates whole heads of %d", ErrUnsupported, *j.RotaryDim, h.headDim)
	case j.RotaryInterleaved != nil && *j.RotaryInterleaved:
		return fmt.Errorf("%w: rotary_emb_interleaved true: llama.cpp's jina-bert-v3 rotates halves (NEOX), not adjacent pairs", ErrUnsupported)
	case !isNull(j.RotaryScaleBase):
		return fmt.Errorf("%w: rotary_emb_scale_base %s (XPos): llama.cpp's jina-bert-v3 has a plain rope", ErrUnsupported, j.RotaryScaleBase)
	case j.EmbPooler != nil && *j.EmbPooler != "cls" && *j.EmbPooler != "mean":
		return fmt.Errorf("%w: emb_pooler %q: mean or cls pooling", ErrUnsupported, *j.EmbPooler)
	}
	h.ropeTheta, h.ropeDim = *j.RotaryBase, h.headDim
	if len(j.Tasks) == 0 {
		return nil
	}
	seen := map[string]bool{}
	for _, t := range j.Tasks {
		if !taskNameRE.MatchString(t) || seen[t] {
			return fmt.Errorf("%w: config.json: lora_adaptations has %q: task names are distinct and made of letters, digits, '.', '_' and '-'", ErrMismatch, t)
		}
		seen[t] = true
		if _, ok := j.Instructions[t]; j.Instructions != nil && !ok {
			return fmt.Errorf("%w: config.json: task_instructions has no instruction for task %q", ErrMismatch, t)
		}
	}
	if r := j.rank(); r <= 0 {
		return fmt.Errorf("%w: config.json: lora_rank %d is not positive", ErrMismatch, r)
	}
	if a := j.alpha(); !(a > 0) || math.IsInf(a, 0) {
		return fmt.Errorf("%w: config.json: lora_alpha %v: the task adapters are scaled by lora_alpha/lora_rank, which must be positive", ErrMismatch, a)
	}
	return nil
}

// rank and alpha are lora_rank and lora_alpha, XLMRobertaFlashConfig's
// defaults (4 and 1) when absent.
func (j jinaV3Config) rank() int {
	if j.Rank == nil {
		return 4
	}
	return *j.Rank
}

func (j jinaV3Config) alpha() float64 {
	if j.Alpha == nil {
		return 1
	}
	return *j.Alpha
}

// taskNameRE is a task name that can be part of a file name.
var taskNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// ValidTaskName reports whether task can name a task adapter: letters,
// digits, '.', '_' and '-', starting with a letter or digit (so that
// TaskAdapterPath stays beside the model).
func ValidTaskName(task string) bool { return taskNameRE.MatchString(task) }

// loraModule is one LoRA-parametrized weight of a jina-bert-v3 checkpoint:
// its GGUF base tensor, its factors' names, and whether it is an embedding
// (whose factors are stored the other way round: A [tasks, rows, rank],
// B [tasks, rank, dim]; a linear layer's A is [tasks, rank, in] and B
// [tasks, out, rank]).
type loraModule struct {
	base      string
	a, b      string
	embedding bool
	out, in   int64 // the base weight's row-major shape
}

// jinaV3Modules collects the checkpoint's task LoRA factors by module and
// checks their shapes against config.json; the pooler's are skipped.
func jinaV3Modules(st *safetensors.Model, h hparams, tasks, rank int) ([]loraModule, error) {
	mods := map[string]*loraModule{}
	var order []string
	for _, t := range st.Tensors() {
		name, lora := flashName(t.Name)
		if lora == "" || flashIgnored(name) {
			continue
		}
		m := mods[name]
		if m == nil {
			gg, embedding := "", false
			var shape []int64
			switch name {
			case "embeddings.word_embeddings":
				gg, embedding = "token_embd.weight", true
				shape = flashShape(gg, h)
			case "embeddings.token_type_embeddings":
				gg, embedding = "token_types.weight", true
				shape = flashShape(gg, h)
			default:
				n, suffix, err := blockOf(nomicLayerRE, name+".weight", h.layers, archSpec{hf: "XLMRobertaModel"})
				if err != nil {
					return nil, fmt.Errorf("%w: LoRA factor %q", err, t.Name)
				}
				s, ok := flashLayer[suffix]
				if !ok || strings.Contains(s, "norm") {
					return nil, fmt.Errorf("%w LoRA factor %q: task LoRAs of the linear layers and embeddings are converted", ErrUnsupported, t.Name)
				}
				gg, shape = fmt.Sprintf("blk.%d.%s", n, s), flashShape(s, h)
			}
			m = &loraModule{base: gg, embedding: embedding, out: shape[0], in: shape[1]}
			mods[name] = m
			order = append(order, name)
		}
		if !t.DType.Supported() {
			return nil, fmt.Errorf("%w: tensor %q has dtype %s; the converter reads F32, F16 and BF16 weights", ErrUnsupported, t.Name, t.DType)
		}
		T, r := int64(tasks), int64(rank)
		var want []int64
		switch {
		case lora == "A" && m.embedding:
			want, m.a = []int64{T, m.out, r}, t.Name
		case lora == "A":
			want, m.a = []int64{T, r, m.in}, t.Name
		case m.embedding:
			want, m.b = []int64{T, r, m.in}, t.Name
		default:
			want, m.b = []int64{T, m.out, r}, t.Name
		}
		if !slices.Equal(t.Shape, want) {
			return nil, fmt.Errorf("%w: LoRA factor %q has shape %v; %d tasks (lora_adaptations) of rank %d (lora_rank) imply %v", ErrMismatch, t.Name, t.Shape, tasks, rank, want)
		}
	}
	out := make([]loraModule, 0, len(order))
	for _, name := range order {
		m := mods[name]
		if m.a == "" || m.b == "" {
			return nil, fmt.Errorf("%w: the LoRA of %s has a lora_A or a lora_B but not both", ErrMismatch, name)
		}
		out = append(out, *m)
	}
	slices.SortFunc(out, func(x, y loraModule) int { return strings.Compare(x.base, y.base) })
	return out, nil
}

// readSpan reads n values from element off of the checkpoint tensor name,
// as float32.
func readSpan(st *safetensors.Model, name string, off, n int64) ([]float32, error) {
	f, ok := st.FileOf(name)
	t, _ := st.Tensor(name)
	if !ok {
		return nil, fmt.Errorf("convert: no tensor %q", name)
	}
	r, err := f.TensorReader(name)
	if err != nil {
		return nil, fmt.Errorf("convert: %w", err)
	}
	raw := make([]byte, n*t.DType.Size())
	if _, err := r.ReadAt(raw, off*t.DType.Size()); err != nil {
		return nil, fmt.Errorf("convert: tensor %q: %w", name, err)
	}
	out := make([]float32, n)
	if err := safetensors.DecodeFloat32s(out, t.DType, raw); err != nil {
		return nil, fmt.Errorf("convert: tensor %q: %w", name, err)
	}
	return out, nil
}

// taskAdapter is one task's LoRA adapter, ready to be written.
type taskAdapter struct {
	task string
	w    *gguf.Writer
}

// jinaV3Adapters prepares one LoRA adapter GGUF per task of a jina-bert-v3
// checkpoint (none when config.json lists no tasks), its tensors read when
// written.
func jinaV3Adapters(ctx context.Context, st *safetensors.Model, cfg *hfConfig, h hparams, name string) ([]taskAdapter, error) {
	j := cfg.JinaV3
	if len(j.Tasks) == 0 {
		return nil, nil
	}
	T, r, alpha := len(j.Tasks), j.rank(), j.alpha()
	mods, err := jinaV3Modules(st, h, T, r)
	if err != nil {
		return nil, err
	}
	if len(mods) == 0 {
		return nil, fmt.Errorf("%w: config.json lists task adapters (lora_adaptations) but the checkpoint has no LoRA factors (parametrizations.weight.0.lora_A)", ErrMismatch)
	}
	var word, typ *loraModule
	var linear []loraModule
	for i := range mods {
		switch mods[i].base {
		case "token_embd.weight":
			word = &mods[i]
		case "token_types.weight":
			typ = &mods[i]
		default:
			linear = append(linear, mods[i])
		}
	}
	H, V := int64(h.hidden), int64(h.vocab)
	R := int64(r)
	base := map[string]gguf.TensorInfo{}
	for _, m := range mods {
		base[m.base] = gguf.TensorInfo{Name: m.base, Type: gguf.TypeF32, Shape: ggmlShape([]int64{m.out, m.in})}
	}
	base["token_embd.weight"] = gguf.TensorInfo{Name: "token_embd.weight", Type: gguf.TypeF32, Shape: ggmlShape([]int64{V, H})}

	var out []taskAdapter
	for ti, task := range j.Tasks {
		w := gguf.NewWriter()
		w.Set(gguf.KeyArchitecture, gguf.String("jina-bert-v3"))
		w.Set(gguf.KeyGeneralType, gguf.String("adapter"))
		w.Set(gguf.KeyAdapterType, gguf.String("lora"))
		w.Set(gguf.KeyLoRAAlpha, gguf.Float32(float32(alpha)))
		w.Set(gguf.KeyLoRATaskName, gguf.String(task))
		if inst, ok := j.Instructions[task]; ok {
			w.Set(gguf.KeyLoRAPromptPrefix, gguf.String(inst))
		}
		w.Set("general.name", gguf.String(name+" "+task))
		var infos []gguf.TensorInfo
		add := func(gg string, shape []int64, data func() ([]float32, error)) error {
			info := gguf.TensorInfo{Name: gg, Type: gguf.TypeF32, Shape: ggmlShape(shape)}
			infos = append(infos, info)
			tw := &tensorWriter{st: st}
			return w.AddTensor(gg, gguf.TypeF32, info.Shape, func(wr io.Writer) error {
				if err := ctx.Err(); err != nil {
					return err
				}
				v, err := data()
				if err != nil {
					return err
				}
				return tw.encode(wr, v, gguf.TypeF32)
			})
		}
		t := int64(ti)
		for _, m := range linear {
			m := m
			// A [rank, in] and B [out, rank], as llama.cpp applies B·A.
			if err := add(m.base+".lora_a", []int64{R, m.in}, func() ([]float32, error) { return readSpan(st, m.a, t*R*m.in, R*m.in) }); err != nil {
				return nil, fmt.Errorf("convert: %w", err)
			}
			if err := add(m.base+".lora_b", []int64{m.out, R}, func() ([]float32, error) { return readSpan(st, m.b, t*m.out*R, m.out*R) }); err != nil {
				return nil, fmt.Errorf("convert: %w", err)
			}
		}
		if word != nil || typ != nil {
			// llama.cpp's embedding LoRA: A [vocab, rank] read by token,
			// then B [dim, rank] (not transposed) times that row.
			rw := int64(0)
			if word != nil {
				rw = R
			}
			rr := rw
			if typ != nil {
				rr++
			}
			emb := func() (a, b []float32, err error) {
				a, b = make([]float32, V*rr), make([]float32, H*rr)
				if word != nil {
					wa, err := readSpan(st, word.a, t*V*R, V*R) // [vocab, rank]
					if err != nil {
						return nil, nil, err
					}
					wb, err := readSpan(st, word.b, t*R*H, R*H) // [rank, dim]
					if err != nil {
						return nil, nil, err
					}
					// The ranks' scale alpha/r becomes alpha/rr.
					f := float32(float64(rr) / float64(rw))
					for v := range V {
						for k := range rw {
							a[v*rr+k] = wa[v*R+k] * f
						}
					}
					for k := range rw {
						for d := range H {
							b[d*rr+k] = wb[k*H+d]
						}
					}
				}
				if typ != nil {
					// Type 0's update, alpha/r·A[0]·B, added to every
					// token: A's last column ones, B's the update over
					// the scale alpha/rr.
					ta, err := readSpan(st, typ.a, t*typ.out*R, R) // row 0 of [types, rank]
					if err != nil {
						return nil, nil, err
					}
					tb, err := readSpan(st, typ.b, t*R*H, R*H) // [rank, dim]
					if err != nil {
						return nil, nil, err
					}
					for v := range V {
						a[v*rr+rr-1] = 1
					}
					for d := range H {
						var u float64
						for k := range R {
							u += float64(ta[k]) * float64(tb[k*H+d])
						}
						b[d*rr+rr-1] = float32(u / float64(R) * float64(rr))
					}
				}
				return a, b, nil
			}
			// A is written first and computes both; B is kept for its turn.
			var keptB []float32
			if err := add("token_embd.weight.lora_a", []int64{V, rr}, func() ([]float32, error) {
				a, b, err := emb()
				keptB = b
				return a, err
			}); err != nil {
				return nil, fmt.Errorf("convert: %w", err)
			}
			if err := add("token_embd.weight.lora_b", []int64{H, rr}, func() ([]float32, error) {
				b := keptB
				keptB = nil
				if b == nil {
					_, b, err := emb()
					return b, err
				}
				return b, nil
			}); err != nil {
				return nil, fmt.Errorf("convert: %w", err)
			}
		}
		if _, err := gguf.ValidateAdapter(&gguf.File{KV: []gguf.KV{
			{Key: gguf.KeyArchitecture, Value: gguf.String("jina-bert-v3")}, {Key: gguf.KeyGeneralType, Value: gguf.String("adapter")},
			{Key: gguf.KeyAdapterType, Value: gguf.String("lora")},
		}, Tensors: infos}, "jina-bert-v3", func(n string) (gguf.TensorInfo, bool) { b, ok := base[n]; return b, ok }); err != nil {
			return nil, fmt.Errorf("%w: task %s's adapter does not fit the model: %w", ErrMismatch, task, err)
		}
		out = append(out, taskAdapter{task, w})
	}
	return out, nil
}

// TaskAdapterPath is where Convert writes the LoRA adapter of a model's
// task (jina-embeddings-v3's retrieval.query, ...): beside the model, its
// file name prefixed with lora-TASK- (convert_hf_to_gguf.py's names).
func TaskAdapterPath(model, task string) string {
	return filepath.Join(filepath.Dir(model), "lora-"+task+"-"+filepath.Base(model))
}

// TaskAdapter is a LoRA adapter made for one task of a model, as
// jina-embeddings-v3's are.
type TaskAdapter struct {
	// Task is the adapter's adapter.lora.task_name.
	Task string
	// PromptPrefix is the instruction put before each text
	// (adapter.lora.prompt_prefix; empty when none).
	PromptPrefix string
	// Path is the adapter's GGUF file.
	Path string
}

// TaskAdapters lists the task adapters beside the model file model: the
// LoRA adapter GGUFs at TaskAdapterPath(model, TASK) whose
// adapter.lora.task_name is TASK, sorted by task. A model without any has
// none (and no error); files that cannot be read are passed over with a
// warning.
func TaskAdapters(model string) ([]TaskAdapter, error) {
	dir, file := filepath.Split(model)
	if dir == "" {
		dir = "."
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("convert: %w", err)
	}
	var out []TaskAdapter
	for _, e := range entries {
		n := e.Name()
		task, ok := strings.CutPrefix(n, "lora-")
		if ok {
			task, ok = strings.CutSuffix(task, "-"+file)
		}
		if !ok || task == "" || e.IsDir() {
			continue
		}
		path := filepath.Join(dir, n)
		f, err := gguf.Open(path)
		if err != nil {
			// Perhaps another model's (lora-TASK-x-<file> is the adapter
			// of x-<file>): passed over; WithTask reports it when asked
			// for its task.
			slog.Warn("convert: not a task adapter", "file", path, "error", err)
			continue
		}
		name, _ := f.String(gguf.KeyLoRATaskName)
		if typ, _ := f.String(gguf.KeyGeneralType); typ != "adapter" || name != task {
			continue // not this model's adapter of the task its name says
		}
		prefix, _ := f.String(gguf.KeyLoRAPromptPrefix)
		out = append(out, TaskAdapter{Task: name, PromptPrefix: prefix, Path: path})
	}
	slices.SortFunc(out, func(a, b TaskAdapter) int { return strings.Compare(a.Task, b.Task) })
	return out, nil
}

// removeTaskAdapters deletes the task adapters beside the model file
// model.
func removeTaskAdapters(model string) error {
	old, err := TaskAdapters(model)
	if err != nil {
		return err
	}
	for _, a := range old {
		if err := os.Remove(a.Path); err != nil {
			return fmt.Errorf("convert: %w", err)
		}
	}
	return nil
}
