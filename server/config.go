package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/llm-go/llm"
	"github.com/llm-go/llm/hub"
	"github.com/llm-go/llm/modelfile"
)

// Defaults of the zero fields of a Config.
const (
	DefaultKeepAlive    = 5 * time.Minute
	DefaultMaxModels    = 1
	DefaultMaxBodyBytes = 8 << 20
)

// LoaderFunc opens a model: it has llm.New's signature, and name is a local
// GGUF file (the server resolves Hub names and converts Hugging Face
// directories before calling it).
type LoaderFunc func(ctx context.Context, name string, opts ...llm.Option) (*llm.Pipeline, error)

// Config configures a Server. The zero value serves models on demand with
// one request running per model and four waiting.
type Config struct {
	// Models are loaded by New and answer to a short name: the Hub name as
	// given, or for a local file or directory its base name without
	// ".gguf". Each is a local GGUF file, a Hugging Face model directory or
	// a Hub name, as llm.New takes. The first one answers requests that
	// name no model.
	Models []string
	// Parallel is how many requests of one model are decoded together, each
	// in its own sequence of the model's context (default 1).
	Parallel int
	// Queue is how many more requests of one model may wait once Parallel
	// are running: 0 means 4×Parallel, a negative value means none (a
	// request beyond Parallel is refused at once).
	Queue int
	// ContextLength is the context of each sequence (0: 4096, or the
	// model's training context when smaller).
	ContextLength int
	// Threads are the CPU threads of each model (0: all).
	Threads int
	// GPULayers are the layers offloaded to GPUs: 0 none, a count,
	// llm.AllLayers, or llm.AutoLayers for what fits in free GPU memory
	// (counted for each model as it loads).
	GPULayers int
	// MaxModels is how many models may be loaded at once (default 1).
	MaxModels int
	// KeepAlive is how long a model stays loaded after its last request
	// (default 5 minutes; negative: forever). A request's keep_alive
	// overrides it for that model, 0 unloading it when the request ends.
	KeepAlive time.Duration
	// APIKey, when set, must be sent as "Authorization: Bearer KEY" on
	// every route but /health.
	APIKey string
	// NoLocalPaths refuses (403) request model names that are local files
	// or directories, other than the configured Models: set it when
	// clients you do not trust can reach the server.
	NoLocalPaths bool
	// RequestTimeout bounds each request, queueing and loading included
	// (0: no limit).
	RequestTimeout time.Duration
	// MaxBodyBytes bounds request bodies (default 8 MiB).
	MaxBodyBytes int64
	// PromptLookup, when positive, decodes every generation speculatively
	// with up to this many draft tokens per step (llm.PromptLookup).
	PromptLookup int
	// Drafts maps a configured model (its name as requests give it, or as
	// in Models) to the draft model it decodes speculatively with
	// (llm.WithDraft), up to DraftTokens tokens per step (0:
	// llm.DefaultDraftTokens). The memory check counts the draft model's
	// weights and KV cache against host memory.
	Drafts      map[string]string
	DraftTokens int
	// Options are more options for llm.New, given to every model after the
	// server's own: the split across GPUs, flash attention, cache types.
	Options []llm.Option
	// Loader opens models (default llm.New).
	Loader LoaderFunc
	// MemoryAvailable reports the bytes a new model may use (default:
	// MemAvailable of /proc/meminfo). When it fails, memory is not checked.
	MemoryAvailable func() (uint64, error)
	// Hub pulls models named by Hub names (default: a client configured
	// from the environment, as huggingface_hub reads it).
	Hub *hub.Client
	// Presets holds the presets (Modelfiles) that model names may name
	// (default: modelfile.DefaultStore()). A preset's SYSTEM, MESSAGEs and
	// TEMPLATE apply to every chat; its sampling PARAMETERs and
	// num_predict are the defaults a request's own fields override.
	Presets *modelfile.Store
	// Logger receives a line per request and the server's events (default
	// slog.Default()).
	Logger *slog.Logger
}

// withDefaults checks c and fills in its zero fields.
func (c Config) withDefaults() (Config, error) {
	var errs []error
	if c.Parallel < 0 {
		errs = append(errs, fmt.Errorf("Parallel must be 1 or more, got %d", c.Parallel))
	}
	if c.ContextLength < 0 {
		errs = append(errs, fmt.Errorf("ContextLength must be 0 or more, got %d", c.ContextLength))
	}
	if c.DraftTokens < 0 || c.DraftTokens > llm.MaxDraftTokens {
		errs = append(errs, fmt.Errorf("DraftTokens must be 0 to %d, got %d", llm.MaxDraftTokens, c.DraftTokens))
	}
	if c.PromptLookup < 0 || c.PromptLookup > llm.MaxPromptLookup {
		errs = append(errs, fmt.Errorf("PromptLookup must be 0 to %d, got %d", llm.MaxPromptLookup, c.PromptLookup))
	}
	if c.Threads < 0 {
		errs = append(errs, fmt.Errorf("Threads must be 0 or more, got %d", c.Threads))
	}
	if c.MaxModels < 0 {
		errs = append(errs, fmt.Errorf("MaxModels must be 1 or more, got %d", c.MaxModels))
	}
	if c.RequestTimeout < 0 {
		errs = append(errs, fmt.Errorf("RequestTimeout must be 0 or more, got %v", c.RequestTimeout))
	}
	if c.MaxBodyBytes < 0 {
		errs = append(errs, fmt.Errorf("MaxBodyBytes must be 0 or more, got %d", c.MaxBodyBytes))
	}
	if err := errors.Join(errs...); err != nil {
		return c, fmt.Errorf("server: %w", err)
	}
	if c.Parallel == 0 {
		c.Parallel = 1
	}
	switch {
	case c.Queue == 0:
		c.Queue = 4 * c.Parallel
	case c.Queue < 0:
		c.Queue = 0
	}
	if c.MaxModels == 0 {
		c.MaxModels = DefaultMaxModels
	}
	if c.KeepAlive == 0 {
		c.KeepAlive = DefaultKeepAlive
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.Loader == nil {
		c.Loader = llm.New
	}
	if c.MemoryAvailable == nil {
		c.MemoryAvailable = memAvailable
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if len(c.Models) > c.MaxModels {
		return c, fmt.Errorf("server: %d models to preload, but MaxModels is %d", len(c.Models), c.MaxModels)
	}
	return c, nil
}
