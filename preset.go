package llm

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"

	"github.com/llm-go/llm/modelfile"
	"github.com/llm-go/llm/sampler"
)

// presetLoadParams are the Modelfile PARAMETERs that set how the model is
// loaded or how long it generates, not how it samples. Those New does not
// apply are accepted and ignored, as Ollama's options are on a runner
// that lacks them.
var presetLoadParams = map[string]bool{
	"num_ctx": true, "num_predict": true, "num_thread": true, "num_gpu": true,
	"num_batch": true, "num_keep": true, "main_gpu": true, "use_mmap": true, "use_mlock": true,
	"low_vram": true, "f16_kv": true, "vocab_only": true, "numa": true, "logits_all": true,
	"penalize_newline": true,
}

// lookupPreset resolves name when it names a preset (and no file), applies
// the preset's loading parameters to cfg, and returns the per-call
// defaults. It returns nil settings when name is not a preset.
func lookupPreset(name string, cfg *config) (*modelfile.Settings, []GenerateOption, error) {
	if _, err := os.Stat(name); err == nil || modelfile.ValidName(name) != nil {
		return nil, nil, nil
	}
	store := cfg.presets
	if store == nil {
		var err error
		if store, err = modelfile.DefaultStore(); err != nil {
			return nil, nil, fmt.Errorf("llm: %w", err)
		}
	}
	st, err := store.Resolve(name)
	if errors.Is(err, modelfile.ErrNotFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("llm: %w", err)
	}
	defaults, err := presetOptions(st, cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("llm: preset %s: %w", name, err)
	}
	return st, defaults, nil
}

// presetOptions turns a preset's PARAMETERs into the options of every
// call: sampling options by their Ollama names (starting from
// sampler.DefaultOptions), stop strings and num_predict. When cfg is not
// nil, num_ctx, num_thread and num_gpu set it where it is unset. An
// unknown parameter or a bad value is an error naming it.
func presetOptions(st *modelfile.Settings, cfg *config) ([]GenerateOption, error) {
	o, err := PresetSampling(st)
	if err != nil {
		return nil, err
	}
	var opts []GenerateOption
	for name, v := range st.Parameters {
		if !presetLoadParams[name] {
			continue
		}
		f, isNum := v.(float64)
		switch name {
		case "num_ctx", "num_predict", "num_thread", "num_gpu":
			if !isNum || f != float64(int(f)) {
				return nil, fmt.Errorf("PARAMETER %s %v: want a whole number", name, v)
			}
		}
		n := int(f)
		switch {
		case name == "num_predict":
			opts = append(opts, MaxTokens(n))
		case cfg == nil:
		case name == "num_ctx" && cfg.contextLength == 0:
			cfg.contextLength = n
		case name == "num_thread" && cfg.threads == 0:
			cfg.threads = n
		case name == "num_gpu" && !cfg.gpuLayersSet:
			// Ollama's num_gpu: -1 lets it choose, as AutoLayers does.
			cfg.gpuLayers, cfg.gpuLayersSet = n, true
			if n < 0 {
				cfg.gpuLayers = AutoLayers
			}
		}
	}
	opts = append([]GenerateOption{Sampling(o)}, opts...)
	if len(st.Stop) > 0 {
		opts = append(opts, Stop(st.Stop...))
	}
	return opts, nil
}

// PresetSampling returns a preset's sampling options: its sampling
// PARAMETERs by their Ollama names over sampler.DefaultOptions. An unknown
// parameter or a bad value is an error naming it.
func PresetSampling(st *modelfile.Settings) (sampler.Options, error) {
	o := sampler.DefaultOptions()
	for _, name := range slices.Sorted(maps.Keys(st.Parameters)) {
		if presetLoadParams[name] {
			continue
		}
		if err := o.SetOllama(name, st.Parameters[name]); err != nil {
			return sampler.Options{}, err
		}
	}
	return o, nil
}

// Preset returns the preset the pipeline was opened with, or nil.
func (p *Pipeline) Preset() *modelfile.Settings { return p.preset }

// presetMessages puts the preset's system prompt and messages before a
// conversation: the system prompt when the conversation has none, the
// messages after any leading system message.
func (p *Pipeline) presetMessages(messages []Message) []Message {
	st := p.preset
	if st == nil || st.System == "" && len(st.Messages) == 0 {
		return messages
	}
	var out []Message
	rest := messages
	if len(messages) > 0 && messages[0].Role == "system" {
		out, rest = append(out, messages[0]), messages[1:]
	} else if st.System != "" {
		out = append(out, Message{Role: "system", Content: st.System})
	}
	for _, m := range st.Messages {
		out = append(out, Message{Role: m.Role, Content: m.Content})
	}
	return append(out, rest...)
}

// ValidatePreset checks what New would do with a resolved preset's
// parameters: every name known, every value in range.
func ValidatePreset(st *modelfile.Settings) error {
	_, err := presetOptions(st, nil)
	return err
}
