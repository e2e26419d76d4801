package engine

/*
#include <stdlib.h>
#include "llama_api.h"
*/
import "C"

import (
	"context"
	"fmt"
	"runtime"
	"runtime/cgo"
	"slices"
	"strings"
	"sync"
	"unsafe"

	"github.com/llm-go/llm/loader/gguf"
)

// SplitMode says how a model is split across several GPUs.
type SplitMode int

// Split modes, as llama.cpp's --split-mode.
const (
	SplitLayer SplitMode = iota // layers and KV spread across GPUs (llama.cpp's default)
	SplitNone                   // the whole model on MainGPU
	SplitRow                    // rows split across GPUs (tensor parallelism where supported)
)

// ModelOptions configures LoadModel. The zero value loads the whole model
// on the CPU with memory-mapped weights.
type ModelOptions struct {
	// GPULayers is how many layers to offload to GPUs: 0 keeps the model on
	// the CPU, a negative value offloads all layers. Without a GPU backend
	// the value has no effect.
	GPULayers int
	// MainGPU is the GPU used for the whole model with SplitNone, and for
	// intermediate results otherwise.
	MainGPU int
	// TensorSplit is the proportion of the model to put on each GPU; nil
	// splits by free memory. At most llama_max_devices entries.
	TensorSplit []float32
	// SplitMode says how to split across several GPUs.
	SplitMode SplitMode
	// NoMmap reads the weights into memory instead of mapping the file.
	NoMmap bool
	// Mlock locks the weights in RAM so that they are not swapped out.
	Mlock bool
	// NoRepack keeps every weight where the file has it, as llama.cpp's
	// --no-repack does. By default, where the build has weight repacking or
	// AMX (the Makefile's builds do; see System's CPU features REPACK and
	// AMX_INT8), the CPU backend copies the weights its faster kernels
	// take (Q4_0, Q4_K, IQ4_NL, ...) into rearranged buffers at load:
	// faster prompt processing, a slower load, and those weights held in
	// anonymous memory instead of the mapped file. With a GPU backend
	// loaded, the weights kept on the CPU go to the GPU's pinned host
	// buffers instead (llama.cpp prefers those), and nothing is repacked.
	NoRepack bool
	// VocabOnly loads only the vocabulary and metadata, not the weights:
	// enough to tokenize, and instant even for a 70B file.
	VocabOnly bool
	// Progress, when set, is called with the load progress from 0 to 1.
	Progress func(progress float32)
}

// Model is a loaded model. It is safe for concurrent use.
type Model struct {
	mu     sync.RWMutex // read-held by every call into C; write-held by Close
	c      *C.struct_llama_model
	vocab  *C.struct_llama_vocab
	closed bool

	vocabOnly bool
	path      string
	header    *gguf.File
	nVocab    int32
	info      Info
	tokens    SpecialTokens
	gpuLayers int // layers offloaded to GPUs: 0 without a GPU device

	ctxMu    sync.Mutex
	contexts map[*Context]struct{}
	adapters []*Adapter // LoRA adapters, freed with the model

	// tensors is the model's tensor table across its splits, read for
	// LoadAdapter.
	tensorsOnce sync.Once
	tensors     map[string]gguf.TensorInfo
	tensorsErr  error

	// identityHex tells the model's file from another's (SaveSequence).
	identityOnce sync.Once
	identityHex  string
	identityErr  error

	eogOnce sync.Once
	eog     []Token
}

// loadState is what the progress callback needs; it travels to C as a
// cgo.Handle.
type loadState struct {
	ctx      context.Context
	progress func(float32)
}

//export llmGoProgress
func llmGoProgress(progress C.float, handle C.uintptr_t) C.int {
	st := cgo.Handle(handle).Value().(*loadState)
	if st.ctx.Err() != nil {
		return 0 // tells llama.cpp to stop loading
	}
	if st.progress != nil {
		st.progress(float32(progress))
	}
	return 1
}

// loadMu serialises loads: llama.cpp reports why a load failed only through
// its log, and the reason must be matched to the load that failed.
var loadMu sync.Mutex

// LoadModel loads the GGUF model at path. The file (and every split of a
// split model) is validated in Go first, so that a malformed file returns an
// error instead of crashing the process in llama.cpp's parser. Cancelling ctx
// stops the load between tensors.
func LoadModel(ctx context.Context, path string, opts ModelOptions) (*Model, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	loadDefaultBackends()
	validate := gguf.ValidateModel
	if opts.VocabOnly {
		validate = gguf.ValidateVocab // llama.cpp reads no hyperparameters then
	}
	header, err := validate(path)
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	if !opts.VocabOnly { // llama.cpp then loads no tensor
		if err := loadable(header); err != nil {
			return nil, fmt.Errorf("engine: loading %s: %w", path, err)
		}
	}
	if opts.TensorSplit != nil && len(opts.TensorSplit) > int(C.llama_max_devices()) {
		return nil, fmt.Errorf("engine: %d tensor split entries, at most %d: %w",
			len(opts.TensorSplit), int(C.llama_max_devices()), ErrInvalidArgument)
	}
	if opts.MainGPU < 0 {
		return nil, fmt.Errorf("engine: main GPU %d: %w", opts.MainGPU, ErrInvalidArgument)
	}

	params := C.llama_model_default_params()
	params.n_gpu_layers = C.int32_t(opts.GPULayers)
	if opts.GPULayers < 0 {
		// More layers than the model has offloads everything, the output
		// layer included.
		blocks, _ := header.Uint(header.Architecture() + ".block_count")
		params.n_gpu_layers = C.int32_t(min(blocks, 1<<20) + 1)
	}
	params.main_gpu = C.int32_t(opts.MainGPU)
	switch opts.SplitMode {
	case SplitLayer:
		params.split_mode = C.LLAMA_SPLIT_MODE_LAYER
	case SplitNone:
		params.split_mode = C.LLAMA_SPLIT_MODE_NONE
	case SplitRow:
		params.split_mode = C.LLAMA_SPLIT_MODE_ROW
	default:
		return nil, fmt.Errorf("engine: split mode %d: %w", opts.SplitMode, ErrInvalidArgument)
	}
	params.use_mmap = C.bool(!opts.NoMmap)
	params.use_mlock = C.bool(opts.Mlock)
	params.use_extra_bufts = C.bool(!opts.NoRepack)
	params.vocab_only = C.bool(opts.VocabOnly)

	var pinner runtime.Pinner
	defer pinner.Unpin()
	if len(opts.TensorSplit) > 0 {
		split := make([]float32, int(C.llama_max_devices()))
		copy(split, opts.TensorSplit)
		pinner.Pin(&split[0])
		params.tensor_split = (*C.float)(unsafe.Pointer(&split[0]))
	}
	if o := loadWorkarounds(header); len(o) > 0 {
		// A zeroed entry ends the list.
		p := C.calloc(C.size_t(len(o)+1), C.size_t(unsafe.Sizeof(C.struct_llama_model_kv_override{})))
		if p == nil {
			return nil, fmt.Errorf("engine: loading %s: out of memory for %d metadata overrides: %w", path, len(o), ErrLoad)
		}
		defer C.free(p)
		list := unsafe.Slice((*C.struct_llama_model_kv_override)(p), len(o)+1)
		for i, kv := range o {
			key := C.CString(kv.key)
			C.llm_set_int_override(&list[i], key, C.int64_t(kv.value))
			C.free(unsafe.Pointer(key))
		}
		params.kv_overrides = &list[0]
	}
	handle := cgo.NewHandle(&loadState{ctx: ctx, progress: opts.Progress})
	defer handle.Delete()
	C.llm_set_progress(&params, C.uintptr_t(handle))

	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))

	loadMu.Lock()
	takeLastError()
	cm := C.llama_model_load_from_file(cpath, params)
	reason := takeLastError()
	loadMu.Unlock()
	if cm == nil {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("engine: loading %s: %w", path, err)
		}
		if reason == "" {
			reason = "llama.cpp gave no reason"
		}
		return nil, fmt.Errorf("engine: loading %s: %s: %w", path, reason, ErrLoad)
	}

	m := &Model{
		c:         cm,
		vocab:     C.llama_model_get_vocab(cm),
		path:      path,
		header:    header,
		vocabOnly: opts.VocabOnly,
		contexts:  map[*Context]struct{}{},
	}
	m.nVocab = int32(C.llama_vocab_n_tokens(m.vocab))
	m.info = m.readInfo()
	m.tokens = m.readSpecialTokens()
	if !opts.VocabOnly && HaveGPU() {
		blocks, _ := header.Uint(header.Architecture() + ".block_count")
		m.gpuLayers = min(int(params.n_gpu_layers), int(min(blocks, 1<<20))+1)
	}
	return m, nil
}

// IsRecurrent reports whether the model keeps a recurrent state (Mamba,
// RWKV, hybrids): its memory cannot drop the last tokens of a sequence,
// only the whole sequence.
func (m *Model) IsRecurrent() bool {
	if m.acquire() != nil {
		return false
	}
	defer m.mu.RUnlock()
	return bool(C.llama_model_is_recurrent(m.c)) || bool(C.llama_model_is_hybrid(m.c))
}

// GPULayers returns how many of the model's layers were offloaded to GPUs
// (its block count + 1 when the output layer went too): 0 on a machine
// without a GPU device, whatever ModelOptions.GPULayers asked.
func (m *Model) GPULayers() int { return m.gpuLayers }

// Close frees the model after closing its open contexts. It is safe to call
// more than once; later calls return nil.
func (m *Model) Close() error {
	if m == nil {
		return nil
	}
	m.ctxMu.Lock()
	open := make([]*Context, 0, len(m.contexts))
	for c := range m.contexts {
		open = append(open, c)
	}
	m.ctxMu.Unlock()
	for _, c := range open {
		c.Close()
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.freeAdapters()
	C.llama_model_free(m.c)
	m.c, m.vocab, m.closed = nil, nil, true
	return nil
}

// acquire read-locks the model for a call into C. The caller must call
// m.mu.RUnlock when it succeeds.
func (m *Model) acquire() error {
	m.mu.RLock()
	if m.closed {
		m.mu.RUnlock()
		return ErrClosed
	}
	return nil
}

// Path returns the file the model was loaded from.
func (m *Model) Path() string { return m.path }

// VocabType is the kind of tokenizer a model uses.
type VocabType int

// Vocabulary types, as llama.cpp's enum llama_vocab_type.
const (
	VocabNone   VocabType = C.LLAMA_VOCAB_TYPE_NONE
	VocabSPM    VocabType = C.LLAMA_VOCAB_TYPE_SPM // SentencePiece-style BPE with byte fallback (Llama 2)
	VocabBPE    VocabType = C.LLAMA_VOCAB_TYPE_BPE // byte-level BPE (GPT-2, Llama 3, Qwen)
	VocabWPM    VocabType = C.LLAMA_VOCAB_TYPE_WPM // WordPiece (BERT)
	VocabUGM    VocabType = C.LLAMA_VOCAB_TYPE_UGM // Unigram (T5)
	VocabRWKV   VocabType = C.LLAMA_VOCAB_TYPE_RWKV
	VocabPLaMo2 VocabType = C.LLAMA_VOCAB_TYPE_PLAMO2
)

// String returns the name llama.cpp uses for the vocabulary type.
func (v VocabType) String() string {
	switch v {
	case VocabNone:
		return "none"
	case VocabSPM:
		return "spm"
	case VocabBPE:
		return "bpe"
	case VocabWPM:
		return "wpm"
	case VocabUGM:
		return "ugm"
	case VocabRWKV:
		return "rwkv"
	case VocabPLaMo2:
		return "plamo2"
	}
	return fmt.Sprintf("VocabType(%d)", int(v))
}

// Info holds a model's facts.
type Info struct {
	Architecture  string    // general.architecture, e.g. "llama"
	Name          string    // general.name, if the file has one
	Description   string    // llama.cpp's one-line description, e.g. "llama 7B Q4_K - Medium"
	Parameters    uint64    // number of weights
	SizeBytes     uint64    // bytes of weights
	TrainContext  int       // context length the model was trained with
	EmbeddingSize int       // width of the hidden state
	Layers        int       // number of blocks
	Heads         int       // attention heads
	KVHeads       int       // key/value heads (of the layers with the most: a hybrid model's recurrent layers have none)
	VocabSize     int       // number of tokens
	VocabType     VocabType // tokenizer kind
	HasEncoder    bool      // an encoder (BERT, T5); false with VocabOnly
	HasDecoder    bool      // a decoder (most text generators); false with VocabOnly
}

func (m *Model) readInfo() Info {
	h := m.header
	arch := h.Architecture()
	name, _ := h.String("general.name")
	info := Info{
		Architecture: arch,
		Name:         name,
		VocabSize:    int(m.nVocab),
		VocabType:    VocabType(C.llama_vocab_type(m.vocab)),
	}
	if m.vocabOnly {
		// llama.cpp has no hyperparameters without weights (asking for them
		// aborts the process), so the facts come from the metadata.
		get := func(key string) int {
			v, _ := h.Uint(arch + "." + key)
			return int(min(v, 1<<31-1))
		}
		info.TrainContext = get("context_length")
		info.EmbeddingSize = get("embedding_length")
		info.Layers = get("block_count")
		heads, _ := h.HeadCount()
		info.Heads = int(min(heads, 1<<31-1))
		info.KVHeads = get("attention.head_count_kv")
		if kv := maxLayerKVHeads(h, arch, info.Layers); kv > 0 {
			info.KVHeads = kv
		}
		info.Parameters = h.ParamCount()
		for _, t := range h.Tensors {
			info.SizeBytes += t.Size
		}
		return info
	}
	var buf [256]C.char
	if n := C.llama_model_desc(m.c, &buf[0], C.size_t(len(buf))); n > 0 {
		info.Description = C.GoStringN(&buf[0], C.int(min(int(n), len(buf)-1)))
	}
	info.Parameters = uint64(C.llama_model_n_params(m.c))
	info.SizeBytes = uint64(C.llama_model_size(m.c))
	info.TrainContext = int(C.llama_model_n_ctx_train(m.c))
	info.EmbeddingSize = int(C.llama_model_n_embd(m.c))
	info.Layers = int(C.llama_model_n_layer(m.c))
	info.Heads = int(C.llama_model_n_head(m.c))
	info.KVHeads = int(C.llama_model_n_head_kv(m.c)) // layer 0's
	if kv := maxLayerKVHeads(h, arch, info.Layers); kv > 0 {
		info.KVHeads = kv
	}
	info.HasEncoder = bool(C.llama_model_has_encoder(m.c))
	info.HasDecoder = bool(C.llama_model_has_decoder(m.c))
	return info
}

// maxLayerKVHeads is the most KV heads of any of the model's layers when
// attention.head_count_kv is one number per layer (a hybrid model's
// recurrent layers have none), or 0.
func maxLayerKVHeads(h *gguf.File, arch string, layers int) int {
	v, ok := h.Lookup(arch + ".attention.head_count_kv")
	if !ok || !v.IsArray() {
		return 0
	}
	kv, ok := h.LayerUints(arch+".attention.head_count_kv", layers)
	if !ok || len(kv) == 0 {
		return 0
	}
	return int(min(slices.Max(kv), 1<<31-1))
}

// Info returns the model's facts. With ModelOptions.VocabOnly they are read
// from the GGUF metadata, and Description is empty.
func (m *Model) Info() Info { return m.info }

// Metadata returns every key/value pair of the model's GGUF header, in file
// order, with its type. The slice is shared: do not modify it.
func (m *Model) Metadata() []gguf.KV { return m.header.KV }

// Header returns the model's validated GGUF header (metadata and tensor
// table). It is shared: do not modify it.
func (m *Model) Header() *gguf.File { return m.header }

// ChatTemplate returns the model's chat template: the default one for name
// "", or the named one (tokenizer.chat_template.NAME). ok is false when the
// model has none.
func (m *Model) ChatTemplate(name string) (tmpl string, ok bool) {
	key := "tokenizer.chat_template"
	if name != "" {
		key += "." + name
	}
	return m.header.String(key)
}

// ChatTemplates returns all chat templates of the model by name; the
// default template has the name "".
func (m *Model) ChatTemplates() map[string]string {
	out := map[string]string{}
	for _, kv := range m.header.KV {
		name, ok := strings.CutPrefix(kv.Key, "tokenizer.chat_template")
		if !ok || (name != "" && name[0] != '.') {
			continue
		}
		if s, ok := kv.Value.AsString(); ok {
			out[strings.TrimPrefix(name, ".")] = s
		}
	}
	return out
}

// intOverride is a metadata key the loader reads as value.
type intOverride struct {
	key   string
	value int64
}

// NonCausal reports whether the model attends both ways (an encoder: BERT,
// nomic-bert, EmbeddingGemma): its metadata says attention.causal false,
// or its arch is one llama.cpp decodes so itself (gemma-embedding, the
// diffusion models).
// Such a model decodes a sequence in one micro-batch and generates
// nothing.
func (m *Model) NonCausal() bool {
	arch := m.header.Architecture()
	if slices.Contains(memorylessArchs, arch) {
		return true
	}
	causal, ok := m.header.Bool(arch + ".attention.causal")
	return ok && !causal
}

// memorylessArchs are the archs llama.cpp gives no KV memory and decodes as
// encoders whatever their metadata says: EmbeddingGemma and the diffusion
// models.
var memorylessArchs = []string{"gemma-embedding", "dream", "llada", "llada-moe", "rnd1"}

// loadable refuses, with the reason, a valid file this llama.cpp cannot
// load although others can: an lfm2 model whose final norm is named as
// convert_hf_to_gguf.py (token_embd_norm.weight) or Ollama
// (output_norm.weight) names it, where this llama.cpp looks for
// "output_norm", the name llm convert writes; a falcon-h1 model whose MLP
// norms carry the .weight suffix this llama.cpp does not look for.
func loadable(h *gguf.File) error {
	if h.Architecture() == "falcon-h1" {
		_, bare := h.Tensor("blk.0.ffn_norm")
		if _, suffixed := h.Tensor("blk.0.ffn_norm.weight"); suffixed && !bare {
			return fmt.Errorf("the falcon-h1 model's MLP norms are named blk.N.ffn_norm.weight, which the llama.cpp this build carries does not load: "+
				"it looks for blk.N.ffn_norm; convert the model from its safetensors with llm convert: %w", ErrLoad)
		}
		// llama.cpp takes the convolution's bias as optional but adds it
		// unconditionally: without it the first decode would crash.
		n, _ := h.Uint("falcon-h1.block_count")
		for i := range min(n, 1<<16) {
			if _, ok := h.Tensor(fmt.Sprintf("blk.%d.ssm_conv1d.bias", i)); !ok {
				return fmt.Errorf("the falcon-h1 model has no blk.%d.ssm_conv1d.bias, which the llama.cpp this build carries needs (it would crash); "+
					"convert the model with llm convert, which writes zeros where the checkpoint has none: %w", i, ErrLoad)
			}
		}
		return nil
	}
	if h.Architecture() != "lfm2" {
		return nil
	}
	if _, ok := h.Tensor("output_norm"); ok {
		return nil
	}
	for _, name := range []string{"token_embd_norm.weight", "output_norm.weight"} {
		if _, ok := h.Tensor(name); ok {
			return fmt.Errorf("the lfm2 model's final norm is %s, which the llama.cpp this build carries (Ollama v0.17.4's) does not load: "+
				"it looks for \"output_norm\"; convert the model from its safetensors with llm convert: %w", name, ErrLoad)
		}
	}
	return nil
}

// loadWorkarounds are the metadata values llama.cpp must read in place of
// a valid file's to load it without crashing: its nemotron_h (Nemotron-H,
// Nemotron Nano 2) divides the MLP width by expert_used_count, 0 without
// experts (a division by zero that kills the process), unless
// expert_feed_forward_length is set, which a model without experts does
// not otherwise read.
func loadWorkarounds(h *gguf.File) []intOverride {
	arch := h.Architecture()
	if arch != "nemotron_h" && arch != "nemotron_h_moe" {
		return nil
	}
	if n, ok := h.Uint(arch + ".expert_feed_forward_length"); ok && n > 0 {
		return nil
	}
	if n, _ := h.Uint(arch + ".expert_used_count"); n > 0 {
		return nil
	}
	return []intOverride{{arch + ".expert_feed_forward_length", 1}}
}
