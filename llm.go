// Package llm runs large language models in process: the Go counterpart of
// Hugging Face's pipeline("text-generation") and of ollama run.
//
//	p, err := llm.New(ctx, "path/to/model.gguf")
//	...
//	defer p.Close()
//	res, err := p.Generate(ctx, "Once upon a time", llm.MaxTokens(64))
//	fmt.Println(res.Text)
//
// A [Pipeline] holds one loaded model and one inference context with
// WithParallel(n) sequence slots, driven by a scheduler goroutine that
// batches continuously, as llama-server and vLLM do. Generate, Stream and
// Chat may be called from many goroutines: each call queues a request, the
// scheduler gives it a free slot, and every decode step then mixes chunks of
// new prompts with the next token of every running request, so n requests
// share one pass over the weights. Requests beyond n wait in order. Each
// slot remembers the tokens its KV memory holds, and a new request takes
// the free slot sharing the longest prefix with its prompt, so the next
// turn of a chat decodes only its new tokens. A recurrent or hybrid
// model's memory (Mamba-2, Gated DeltaNet, LFM2's convolutions) cannot
// drop its last tokens; there each slot also keeps a checkpoint of its
// state after a recent prompt but its final token (prompts of 33 tokens or
// more), so the same prompt again, or a conversation whose last answer
// comes back other than it was written, decodes from that point instead
// of from the start.
//
// With a GPU backend library installed (make cuda), New offloads the
// layers that fit in free GPU memory unless WithGPULayers says otherwise,
// and retries with fewer layers if the GPU runs out of memory.
package llm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/hub"
	"github.com/llm-go/llm/loader/convert"
	"github.com/llm-go/llm/loader/gguf"
	"github.com/llm-go/llm/modelfile"
	"github.com/llm-go/llm/tokenizer"
)

// Errors callers can test with errors.Is.
var (
	// ErrPromptTooLong means the prompt does not fit in the context.
	ErrPromptTooLong = errors.New("llm: prompt too long for the context")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("llm: pipeline closed")
	// ErrInvalidToken means a token id is not in the model's vocabulary.
	ErrInvalidToken = errors.New("llm: token id outside the vocabulary")
	// ErrEmptyPrompt means a prompt has no tokens to continue.
	ErrEmptyPrompt = errors.New("llm: the prompt is empty")
	// ErrToolsUnsupported means the model's chat template cannot show
	// tools or tool calls.
	ErrToolsUnsupported = errors.New("llm: this model's chat template cannot show tools")
	// ErrNoFIM means Suffix was given for a model without fill-in-the-middle
	// tokens. It is engine.ErrNoFIM.
	ErrNoFIM = engine.ErrNoFIM
	// ErrUnsupportedModel means the name resolved to weights this version
	// cannot run (for example a safetensors repository).
	ErrUnsupportedModel = errors.New("llm: unsupported model")
	// ErrUnknownTask is wrapped by New's error for a WithTask the model
	// has no task adapter for.
	ErrUnknownTask = errors.New("llm: unknown task")
)

// config is what New's options set.
type config struct {
	contextLength  int
	threads        int
	gpuLayers      int
	gpuLayersSet   bool // by WithGPULayers or a preset's num_gpu; AutoLayers otherwise
	parallel       int
	hubClient      *hub.Client
	presets        *modelfile.Store
	split          engine.ModelOptions // SplitMode, MainGPU, TensorSplit
	noRepack       bool                // WithNoRepack
	flashAttn      engine.FlashAttention
	typeK, typeV   engine.CacheType
	note           func(string)
	loras          []loraSpec
	task           string // WithTask's, or ""
	draft          string // WithDraft's model, or ""
	draftMax       int
	draftLayers    int // WithDraftGPULayers
	draftLayersSet bool
}

// loraSpec is a LoRA adapter to apply, with its scale.
type loraSpec struct {
	path  string
	scale float32
}

// Option configures New.
type Option func(*config)

// WithContextLength sets the context length of each request's sequence
// (default: 4096 or the model's training context, if smaller). The KV
// memory holds WithParallel times as many tokens.
func WithContextLength(n int) Option { return func(c *config) { c.contextLength = n } }

// WithThreads sets the CPU threads per request (default: all CPUs).
func WithThreads(n int) Option { return func(c *config) { c.threads = n } }

// Layer counts for WithGPULayers besides a number of layers.
const (
	AllLayers  = -1 // offload every layer
	AutoLayers = -2 // offload what fits in free GPU memory (the default)
)

// WithGPULayers sets how many layers to offload to GPUs: a count,
// AllLayers or AutoLayers. By default New offloads what fits in the free
// memory of the GPUs there are, as Ollama does, and logs its decision; on
// a machine without a GPU the model runs on the CPU. Whatever the count, a
// load that runs out of GPU memory is retried with fewer layers.
func WithGPULayers(n int) Option {
	return func(c *config) { c.gpuLayers, c.gpuLayersSet = n, true }
}

// WithGPUSplit sets how the model is split across several GPUs: by
// layers (the default), by rows, or not at all (the whole model on
// mainGPU); proportions, when given, are the share of each GPU (default:
// by free memory), as llama.cpp's --split-mode, --main-gpu and
// --tensor-split.
func WithGPUSplit(mode engine.SplitMode, mainGPU int, proportions ...float32) Option {
	return func(c *config) {
		c.split = engine.ModelOptions{SplitMode: mode, MainGPU: mainGPU, TensorSplit: proportions}
	}
}

// WithNoRepack keeps the model's weights as its file has them, as
// llama.cpp's --no-repack does: by default the CPU backend rearranges the
// weights its faster kernels take (see engine.ModelOptions.NoRepack), which
// speeds prompts up and holds those weights in memory rather than in the
// mapped file.
func WithNoRepack() Option { return func(c *config) { c.noRepack = true } }

// WithFlashAttention turns flash attention on or off (default: auto, on
// where the backend supports it).
func WithFlashAttention(fa engine.FlashAttention) Option { return func(c *config) { c.flashAttn = fa } }

// WithCacheTypes sets the element types of the K and V caches (default
// f16; quantized V needs flash attention).
func WithCacheTypes(k, v engine.CacheType) Option { return func(c *config) { c.typeK, c.typeV = k, v } }

// WithLoadNotes sends New's decisions about GPU offload (the layers it
// chose, layers asked for without a GPU, retries with fewer layers after
// running out of GPU memory) to note, one sentence each, instead of
// logging them with slog at Info level.
func WithLoadNotes(note func(string)) Option { return func(c *config) { c.note = note } }

// WithLoRA applies the LoRA adapter at path (a GGUF, as
// convert_lora_to_gguf.py writes them, or a PEFT adapter directory,
// converted once into the conversion cache; or a Hub repo holding either,
// pulled like a model) with scale (1: as trained), as
// llama.cpp's --lora and --lora-scaled and Ollama's ADAPTER do. It may be
// given several times; a preset's ADAPTERs come first. An adapter that does
// not fit the model (another architecture, other tensor shapes) is an
// error from New wrapping engine.ErrAdapter.
func WithLoRA(path string, scale float32) Option {
	return func(c *config) { c.loras = append(c.loras, loraSpec{path, scale}) }
}

// WithTask sets the task Embed embeds for, one of those a model has LoRA
// adapters for (Pipeline.Tasks: jina-embeddings-v3's retrieval.query,
// retrieval.passage, separation, classification, text-matching), as its
// own encode(task=) does: the task's adapter is applied (at scale 1) and
// its instruction put before every text. EmbedWith picks a task per call.
// The adapters are the files Convert writes beside the model
// (lora-TASK-<model file>, convert.TaskAdapters). A task the model has no
// adapter for is an error from New wrapping ErrUnknownTask, naming those
// it has.
func WithTask(task string) Option { return func(c *config) { c.task = task } }

// WithParallel sets how many requests are decoded together, each in its
// own sequence of the one context (default 1; the others wait in order).
// With a recurrent or hybrid model each sequence also keeps a checkpoint
// of its recurrent state in host memory (the model's state of one
// sequence: kilobytes for LFM2, tens of megabytes for large Mamba-2 and
// DeltaNet models).
func WithParallel(n int) Option { return func(c *config) { c.parallel = n } }

// WithHub sets the Hub client used to pull models named org/repo (default:
// one configured from the environment, as huggingface_hub reads it).
func WithHub(client *hub.Client) Option { return func(c *config) { c.hubClient = client } }

// WithPresets sets the store where New looks up preset names made from
// Modelfiles (default: modelfile.DefaultStore()).
func WithPresets(s *modelfile.Store) Option { return func(c *config) { c.presets = s } }

// Pipeline is a loaded model ready to generate text. It is safe for
// concurrent use.
type Pipeline struct {
	name     string
	model    *engine.Model
	template *tokenizer.Template // nil when the model has none
	builtin  string              // a template llama.cpp renders itself, when template is nil
	source   *tokenizer.Source
	cfg      config
	nCtx     int           // context length of every sequence
	done     chan struct{} // closed by Close
	sched    *scheduler
	embed    embedder
	preset   *modelfile.Settings   // nil unless opened by a preset name
	defaults []GenerateOption      // the preset's parameters, applied before each call's options
	adapters []adapter             // LoRA adapters, applied to every context
	tasks    []convert.TaskAdapter // the task adapters beside the model
	task     string                // WithTask's, or ""
	taskMu   sync.Mutex
	loaded   map[string]*engine.Adapter // the task adapters loaded, by task
	harmony  bool                       // the chat template speaks harmony (gpt-oss)
	closeMu  sync.Mutex
	closed   bool
}

// New loads a model. name is a local GGUF file, a local Hugging Face model
// directory (safetensors, converted to an F16 GGUF once and cached), a
// preset made from a Modelfile (see package modelfile), or a Hugging Face
// Hub name (org/repo, org/repo:Q4_K_M, org/repo/file.gguf) that is pulled
// into the shared HF cache when missing (unless HF_HUB_OFFLINE is set) and
// converted the same way when it holds safetensors (to the type the name
// gives, org/repo:Q4_K_M, when it gives one).
//
// A preset's PARAMETERs become the defaults of every call (a call's own
// options override them; num_ctx, num_thread and num_gpu apply when the
// matching Option is not given), its SYSTEM prompt opens every chat that
// has none, its MESSAGEs come before every conversation, and its TEMPLATE
// replaces the model's chat template.
func New(ctx context.Context, name string, opts ...Option) (*Pipeline, error) {
	cfg := config{parallel: 1}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.parallel < 1 {
		return nil, fmt.Errorf("llm: WithParallel(%d): at least 1", cfg.parallel)
	}
	if cfg.gpuLayers < AutoLayers {
		return nil, fmt.Errorf("llm: WithGPULayers(%d): a layer count, AllLayers or AutoLayers", cfg.gpuLayers)
	}
	preset, defaults, err := lookupPreset(name, &cfg)
	if err != nil {
		return nil, err
	}
	if preset != nil && len(preset.Adapters) > 0 {
		var loras []loraSpec
		for _, a := range preset.Adapters {
			loras = append(loras, loraSpec{a, 1})
		}
		cfg.loras = append(loras, cfg.loras...)
	}
	for _, l := range cfg.loras {
		if math.IsNaN(float64(l.scale)) || math.IsInf(float64(l.scale), 0) {
			return nil, fmt.Errorf("llm: WithLoRA(%s, %v): the scale must be finite", l.path, l.scale)
		}
	}
	if !cfg.gpuLayersSet {
		cfg.gpuLayers = AutoLayers
	}
	modelName := name
	if preset != nil {
		modelName = preset.Model
	}
	path, err := resolve(ctx, modelName, &cfg)
	if err != nil {
		return nil, err
	}
	header, err := gguf.ValidateModel(path)
	if err != nil {
		return nil, fmt.Errorf("llm: %w", err)
	}
	tasks, err := convert.TaskAdapters(path)
	if err != nil {
		return nil, fmt.Errorf("llm: %w", err)
	}
	if cfg.task != "" {
		if _, err := findTask(tasks, path, name, cfg.task); err != nil {
			return nil, err
		}
	}
	nCtx := engine.SequenceContext(cfg.contextLength, header)
	// The chat template first: a bad one fails before the weights load.
	var (
		template *tokenizer.Template
		source   *tokenizer.Source
		builtin  string
	)
	if src, err := tokenizer.LoadSource(path, ""); err == nil {
		t, err := tokenizer.Parse(src.Template)
		switch {
		case err == nil:
			template, source = t, src
		case builtinKnows(src.Template):
			// Not Jinja we can run, but a format llama.cpp implements:
			// use that, as llama-server does without --jinja.
			slog.Warn("llm: the chat template is not valid Jinja here; using llama.cpp's built-in implementation of its format", "model", name, "error", err)
			builtin = src.Template
		default:
			return nil, fmt.Errorf("llm: the chat template of %s: %w", name, err)
		}
	} else if !errors.Is(err, tokenizer.ErrNoTemplate) {
		return nil, fmt.Errorf("llm: %w", err)
	}
	// One KV buffer shared by all sequences (llama.cpp's kv_unified), so
	// that a step's tokens form one micro-batch whatever sequences they
	// belong to: with a buffer per sequence llama.cpp splits a batch into
	// one micro-batch per run of consecutive sequence ids, passing over the
	// weights once for each.
	copts := engine.ContextOptions{ContextLength: nCtx * cfg.parallel, MaxSequences: cfg.parallel, Threads: cfg.threads,
		FlashAttention: cfg.flashAttn, TypeK: cfg.typeK, TypeV: cfg.typeV}
	mopts := cfg.split
	mopts.GPULayers = max(cfg.gpuLayers, AllLayers)
	mopts.NoRepack = cfg.noRepack
	fit := engine.Fit{Auto: cfg.gpuLayers == AutoLayers, Note: cfg.note}
	if fit.Note == nil {
		fit.Note = func(s string) { slog.Info("llm: GPU offload: "+s, "model", name) }
	}
	m, c, err := engine.LoadFitted(ctx, path, mopts, copts, fit)
	if err != nil {
		return nil, fmt.Errorf("llm: %w", err)
	}
	p := &Pipeline{name: name, model: m, cfg: cfg, done: make(chan struct{}), preset: preset, defaults: defaults, nCtx: nCtx,
		tasks: tasks, task: cfg.task}
	err = p.loadAdapters(ctx)
	if err == nil {
		err = p.applyAdapters(c)
	}
	if err == nil && cfg.task != "" {
		_, _, err = p.taskAdapter(cfg.task) // loaded now: a bad file fails New
	}
	if err != nil {
		c.Close()
		m.Close()
		return nil, err
	}
	p.template, p.source, p.builtin = template, source, builtin
	switch {
	case preset != nil && preset.Template != nil:
		p.harmony = strings.Contains(preset.Template.String(), harmonyChannel)
	case source != nil:
		p.harmony = strings.Contains(source.Template, harmonyChannel)
	default:
		p.harmony = strings.Contains(builtin, harmonyChannel)
	}
	var dm *drafter
	if cfg.draft != "" {
		if dm, err = loadDrafter(ctx, &p.cfg, m, nCtx); err != nil {
			c.Close()
			m.Close()
			return nil, err
		}
	}
	p.sched, err = newScheduler(p, c)
	if err != nil {
		if dm != nil {
			dm.close()
		}
		c.Close()
		m.Close()
		return nil, fmt.Errorf("llm: %w", err)
	}
	p.sched.dm = dm
	go p.sched.loop()
	return p, nil
}

// adapter is a loaded LoRA adapter and its scale.
type adapter struct {
	a     *engine.Adapter
	scale float32
}

// loadAdapters loads the configured LoRA adapters, converting PEFT
// adapter directories (once, into the conversion cache).
func (p *Pipeline) loadAdapters(ctx context.Context) error {
	for _, l := range p.cfg.loras {
		local, err := resolveAdapter(ctx, l.path, &p.cfg)
		if err != nil {
			return err
		}
		path, err := convert.LoRAFile(ctx, local, "", p.model.Path(), p.model.Header())
		if err != nil {
			return fmt.Errorf("llm: %w", err)
		}
		a, err := p.model.LoadAdapter(path)
		if err != nil {
			return fmt.Errorf("llm: %w", err)
		}
		p.adapters = append(p.adapters, adapter{a, l.scale})
	}
	return nil
}

// fileExists reports whether path names a file.
func fileExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && !st.IsDir()
}

// Tasks returns the tasks the model has LoRA adapters for (see WithTask),
// sorted; none for most models.
func (p *Pipeline) Tasks() []string {
	out := make([]string, len(p.tasks))
	for i, t := range p.tasks {
		out[i] = t.Task
	}
	return out
}

// TaskInstruction returns the instruction put before each text embedded
// for task ("": WithTask's), "" for a task without one or for no task.
func (p *Pipeline) TaskInstruction(task string) (string, error) {
	if task == "" {
		task = p.task
	}
	if task == "" {
		return "", nil
	}
	t, err := findTask(p.tasks, p.model.Path(), p.name, task)
	return t.PromptPrefix, err
}

// taskAdapter returns task's adapter (loaded once) and instruction; task
// "" is WithTask's, and with none of either, the adapter is nil.
func (p *Pipeline) taskAdapter(task string) (*engine.Adapter, string, error) {
	if task == "" {
		task = p.task
	}
	if task == "" {
		return nil, "", nil
	}
	t, err := findTask(p.tasks, p.model.Path(), p.name, task)
	if err != nil {
		return nil, "", err
	}
	p.taskMu.Lock()
	defer p.taskMu.Unlock()
	if a := p.loaded[task]; a != nil {
		return a, t.PromptPrefix, nil
	}
	a, err := p.model.LoadAdapter(t.Path)
	if err != nil {
		return nil, "", fmt.Errorf("llm: the adapter of task %s: %w", task, err)
	}
	if p.loaded == nil {
		p.loaded = map[string]*engine.Adapter{}
	}
	p.loaded[task] = a
	return a, t.PromptPrefix, nil
}

// findTask finds task among the task adapters beside the model file path
// (the model opened as name).
func findTask(tasks []convert.TaskAdapter, path, name, task string) (convert.TaskAdapter, error) {
	names := make([]string, len(tasks))
	for i, t := range tasks {
		if t.Task == task {
			return t, nil
		}
		names[i] = t.Task
	}
	if !convert.ValidTaskName(task) {
		return convert.TaskAdapter{}, fmt.Errorf("llm: task %q: not a task name (letters, digits, '.', '_' and '-'): %w", task, ErrUnknownTask)
	}
	if file := convert.TaskAdapterPath(path, task); fileExists(file) {
		// There, but not a task adapter TaskAdapters could read.
		f, err := gguf.Open(file)
		if err == nil {
			name, _ := f.String(gguf.KeyLoRATaskName)
			err = fmt.Errorf("its %s is %q", gguf.KeyLoRATaskName, name)
		}
		return convert.TaskAdapter{}, fmt.Errorf("llm: task %q: %s: %w: %w", task, file, err, ErrUnknownTask)
	}
	if len(names) == 0 {
		return convert.TaskAdapter{}, fmt.Errorf("llm: task %q: %s has no task adapters (LoRA files named lora-TASK-%s beside it): %w", task, name, filepath.Base(path), ErrUnknownTask)
	}
	return convert.TaskAdapter{}, fmt.Errorf("llm: task %q: %s has task adapters for %s only: %w", task, name, strings.Join(names, ", "), ErrUnknownTask)
}

// applyAdapters applies the pipeline's LoRA adapters to a context of its
// model.
func (p *Pipeline) applyAdapters(c *engine.Context) error {
	for _, a := range p.adapters {
		if err := c.SetAdapter(a.a, a.scale); err != nil {
			return fmt.Errorf("llm: LoRA adapter %s: %w", a.a.Path(), err)
		}
	}
	return nil
}

// resolve turns a model name into a local GGUF path.
func resolve(ctx context.Context, name string, cfg *config) (string, error) {
	if st, err := os.Stat(name); err == nil {
		if st.IsDir() && convert.IsAdapterDir(name) {
			return "", fmt.Errorf("llm: %s is a LoRA adapter (adapter_config.json): load its base model with WithLoRA(%q, 1): %w", name, name, ErrUnsupportedModel)
		}
		if st.IsDir() {
			return convertOnce(ctx, name, "", "f16")
		}
		return name, nil
	}
	snap, err := pullHub(ctx, name, cfg)
	if err != nil {
		return "", err
	}
	if convert.IsAdapterDir(snap.Dir) {
		return "", fmt.Errorf("llm: %s is a LoRA adapter (adapter_config.json): load its base model with WithLoRA(%q, 1): %w", name, name, ErrUnsupportedModel)
	}
	if snap.Format() == "safetensors" {
		ref, _ := hub.ParseRef(name) // parsed by pullHub already
		return convertOnce(ctx, snap.Dir, snap.Repo+"@"+snap.Commit, convert.HubType(ref.Quant))
	}
	if snap.Format() != "gguf" {
		return "", fmt.Errorf("llm: %s holds %s weights: %w", name, snap.Format(), ErrUnsupportedModel)
	}
	return snap.ModelPath(), nil
}

// pullHub pulls the Hub repo name into the shared cache (when missing).
func pullHub(ctx context.Context, name string, cfg *config) (*hub.Snapshot, error) {
	ref, err := hub.ParseRef(name)
	if err != nil {
		return nil, fmt.Errorf("llm: %q is neither a file nor a Hub model name: %w", name, err)
	}
	client := cfg.hubClient
	if client == nil {
		if client, err = hub.NewClient(hub.LoadEnv(nil)); err != nil {
			return nil, fmt.Errorf("llm: %w", err)
		}
	}
	snap, err := client.Pull(ctx, ref, hub.PullOptions{Convertible: convert.ConvertibleType, Check: convert.CheckSnapshot})
	if err != nil {
		if errors.Is(err, convert.ErrUnsupported) || errors.Is(err, convert.ErrMismatch) {
			// Refused from its config.json, before the weights.
			return nil, fmt.Errorf("llm: %w: %w", ErrUnsupportedModel, err)
		}
		return nil, fmt.Errorf("llm: %w", err)
	}
	return snap, nil
}

// resolveAdapter turns a LoRA adapter's name into a local GGUF file or
// PEFT directory: a path as it is, else a Hub repo (a GGUF adapter, or a
// PEFT adapter's files) pulled into the shared cache.
func resolveAdapter(ctx context.Context, name string, cfg *config) (string, error) {
	if _, err := os.Stat(name); err == nil {
		return name, nil
	}
	snap, err := pullHub(ctx, name, cfg)
	if err != nil {
		return "", err
	}
	switch {
	case snap.Format() == "gguf":
		return snap.ModelPath(), nil
	case convert.IsAdapterDir(snap.Dir):
		return snap.Dir, nil
	}
	return "", fmt.Errorf("llm: %s holds no LoRA adapter (neither a GGUF file nor a PEFT adapter_config.json)", name)
}

// convertOnce converts a Hugging Face safetensors checkpoint to a GGUF of
// type typ (f16, or the quantization a Hub name gives) in the user cache
// the first time, and reuses it afterwards.
func convertOnce(ctx context.Context, dir, key, typ string) (string, error) {
	cache, err := convert.DefaultCacheDir()
	if err != nil {
		return "", fmt.Errorf("llm: %w", err)
	}
	path, err := convert.Cached(ctx, dir, cache, key, typ)
	if err != nil {
		if errors.Is(err, convert.ErrUnsupported) {
			return "", fmt.Errorf("llm: %w: %w", ErrUnsupportedModel, err)
		}
		return "", fmt.Errorf("llm: %w", err)
	}
	return path, nil
}

// contextLength returns the context length of each sequence.
func (p *Pipeline) contextLength() int { return p.nCtx }

// ContextLength returns the context length of each request's sequence.
func (p *Pipeline) ContextLength() int { return p.nCtx }

// Name returns the name the pipeline was opened with.
func (p *Pipeline) Name() string { return p.name }

// Model returns the loaded model, for its facts and tokenizer.
func (p *Pipeline) Model() *engine.Model { return p.model }

// GPULayers returns how many layers New offloaded to GPUs, after the
// automatic count and any retry with fewer (0 without a GPU).
func (p *Pipeline) GPULayers() int { return p.model.GPULayers() }

// Close frees the model and its contexts. Requests still running or
// waiting end with ErrClosed.
func (p *Pipeline) Close() error {
	p.closeMu.Lock()
	if p.closed {
		p.closeMu.Unlock()
		return nil
	}
	p.closed = true
	close(p.done)
	p.closeMu.Unlock()
	p.sched.cancel()
	<-p.sched.exited
	p.sched.batch.Close()
	p.sched.c.Close()
	if p.sched.dm != nil {
		p.sched.dm.close()
	}
	p.embed.mu.Lock()
	if p.embed.batch != nil {
		p.embed.batch.Close()
	}
	p.embed.mu.Unlock()
	return p.model.Close() // closes the embeddings context too
}

// engineErr wraps an engine error for the caller; the engine's use after
// close (a request racing Close) is ErrClosed too.
func engineErr(err error) error {
	if errors.Is(err, engine.ErrClosed) {
		return fmt.Errorf("%w (%w)", ErrClosed, err)
	}
	return fmt.Errorf("llm: %w", err)
}

// checkOpen returns ErrClosed after Close.
func (p *Pipeline) checkOpen() error {
	select {
	case <-p.done:
		return ErrClosed
	default:
		return nil
	}
}
