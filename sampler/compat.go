package sampler

import (
	"fmt"
	"math"

	"github.com/llm-go/llm/engine"
)

// OllamaDefaults returns Ollama's default sampling options
// (api.DefaultOptions): temperature 0.8, top_k 40, top_p 0.9, min_p 0,
// typical_p 1, repeat_penalty 1.1 over repeat_last_n 64, no presence or
// frequency penalty, mirostat off (tau 5, eta 0.1), a random seed.
func OllamaDefaults() Options {
	o := DefaultOptions()
	o.TopP = 0.9
	o.MinP = 0
	o.RepeatPenalty = 1.1
	return o
}

// ollamaIgnored are Ollama options that are not the sampler's: they belong
// to model loading or the generation loop.
var ollamaIgnored = map[string]bool{
	"num_ctx": true, "num_batch": true, "num_gpu": true, "main_gpu": true, "use_mmap": true,
	"use_mlock": true, "num_thread": true, "num_keep": true, "num_predict": true, "stop": true,
	"low_vram": true, "f16_kv": true, "vocab_only": true, "numa": true, "logits_all": true,
	"penalize_newline": true,
}

// FromOllama returns the options of an Ollama request's "options" map
// (temperature, top_k, top_p, min_p, typical_p, repeat_penalty,
// repeat_last_n, presence_penalty, frequency_penalty, mirostat,
// mirostat_tau, mirostat_eta, seed, and llama.cpp's other sampling names),
// starting from OllamaDefaults. Ollama's options for model loading and the
// generation loop (num_ctx, num_predict, stop, …) are skipped; any other
// key, or a value out of range, is an *OptionError naming it.
func FromOllama(options map[string]any) (Options, error) {
	o := OllamaDefaults()
	if err := apply(&o, options, llamaSetters, ollamaIgnored, "Ollama"); err != nil {
		return Options{}, err
	}
	return o, o.Validate()
}

// OpenAIDefaults returns OpenAI's defaults: temperature 1 and nothing else,
// with the presence and frequency penalties over the whole context.
func OpenAIDefaults() Options {
	o := DefaultOptions()
	o.Temperature = 1
	o.TopK = 0
	o.TopP = 1
	o.MinP = 0
	o.RepeatLastN = -1
	return o
}

var openAIIgnored = map[string]bool{
	"model": true, "messages": true, "prompt": true, "max_tokens": true, "max_completion_tokens": true,
	"n": true, "stream": true, "stream_options": true, "stop": true, "user": true, "tools": true,
	"tool_choice": true, "parallel_tool_calls": true, "logprobs": true, "top_logprobs": true,
	"echo": true, "suffix": true, "metadata": true, "store": true, "service_tier": true,
	"modalities": true, "reasoning_effort": true,
}

// FromOpenAI returns the sampling options of an OpenAI chat or completion
// request body: temperature [0, 2], top_p [0, 1], frequency_penalty and
// presence_penalty [-2, 2], seed, logit_bias (token id strings to biases in
// [-100, 100]) and response_format ({"type": "text"}, {"type":
// "json_object"} or {"type": "json_schema", "json_schema": {"schema":
// …}}), starting from OpenAIDefaults. llama.cpp's extra names (top_k,
// min_p, repeat_penalty, …) are accepted as llama.cpp's server does; the
// request's other fields (model, messages, max_tokens, stop, …) are
// skipped. To keep a schema's property order, pass the schema as a
// json.RawMessage (a map loses it).
func FromOpenAI(request map[string]any) (Options, error) {
	o := OpenAIDefaults()
	setters := map[string]setter{}
	for k, v := range llamaSetters {
		setters[k] = v
	}
	setters["temperature"] = floatIn(func(o *Options) *float64 { return &o.Temperature }, 0, 2, " (0: greedy)")
	setters["frequency_penalty"] = floatIn(func(o *Options) *float64 { return &o.FrequencyPenalty }, -2, 2, "")
	setters["presence_penalty"] = floatIn(func(o *Options) *float64 { return &o.PresencePenalty }, -2, 2, "")
	setters["logit_bias"] = openAILogitBias
	setters["response_format"] = openAIResponseFormat
	if err := apply(&o, request, setters, openAIIgnored, "OpenAI"); err != nil {
		return Options{}, err
	}
	return o, o.Validate()
}

func openAILogitBias(o *Options, name string, v any) error {
	m, ok := v.(map[string]any)
	if !ok {
		return optErr(name, v, "must be an object of token ids to biases")
	}
	o.LogitBias = map[engine.Token]float64{}
	for _, k := range sortedKeys(m) {
		id, err := tokenKey(name, k)
		if err != nil {
			return err
		}
		b, err := toFloat(name, m[k])
		if err != nil {
			return err
		}
		if b < -100 || b > 100 {
			return optErr(name, fmt.Sprintf("%s: %v", k, m[k]), "biases must be in [-100, 100]")
		}
		if b == -100 {
			b = math.Inf(-1) // OpenAI: -100 bans the token
		}
		o.LogitBias[engine.Token(id)] = b
	}
	return nil
}

func openAIResponseFormat(o *Options, name string, v any) error {
	m, ok := v.(map[string]any)
	if !ok {
		return optErr(name, v, `must be an object with a "type"`)
	}
	switch m["type"] {
	case "text":
	case "json_object":
		o.JSON = true
	case "json_schema":
		js, ok := m["json_schema"].(map[string]any)
		if !ok || js["schema"] == nil {
			return optErr(name, nil, `type "json_schema" needs "json_schema": {"schema": …}`)
		}
		s, err := schemaText(name, js["schema"])
		if err != nil {
			return err
		}
		o.JSONSchema = s
	default:
		return optErr(name+".type", m["type"], `must be "text", "json_object" or "json_schema"`)
	}
	return nil
}

// GenerationConfigDefaults returns the defaults of Hugging Face
// transformers' GenerationConfig: greedy (do_sample false); when sampling,
// temperature 1, top_k 50, top_p 1, no min_p, typical_p 1, and the
// repetition penalty over the whole context. The stages run in
// transformers' order: repetition penalty, temperature, top-k, top-p,
// min-p, typical-p.
func GenerationConfigDefaults() Options {
	o := DefaultOptions()
	o.Temperature = 0
	o.TopK = 50
	o.TopP = 1
	o.MinP = 0
	o.RepeatLastN = -1
	o.Order = []Stage{StagePenalties, StageTemperature, StageTopK, StageTopP, StageMinP, StageTypicalP}
	return o
}

var generationConfigIgnored = map[string]bool{
	"max_length": true, "max_new_tokens": true, "min_length": true, "min_new_tokens": true,
	"eos_token_id": true, "bos_token_id": true, "pad_token_id": true, "decoder_start_token_id": true,
	"use_cache": true, "num_return_sequences": true, "output_scores": true, "output_logits": true,
	"return_dict_in_generate": true, "transformers_version": true, "_from_model_config": true,
	"output_attentions": true, "output_hidden_states": true, "remove_invalid_values": true,
	"early_stopping": true, "length_penalty": true, "max_time": true, "stop_strings": true,
	"forced_bos_token_id": true, "forced_eos_token_id": true, "cache_implementation": true,
}

// FromGenerationConfig returns the options of a transformers
// GenerationConfig (generation_config.json, as a map): do_sample,
// temperature, top_k, top_p, min_p, typical_p, repetition_penalty,
// suppress_tokens (banned tokens), starting from GenerationConfigDefaults.
// Without do_sample the sampler is greedy, as in transformers. Keys that
// concern the generation loop (max_new_tokens, eos_token_id, …) are
// skipped; beam search, constrained beams, n-gram bans and the
// epsilon/eta cutoffs are not supported and fail when set to anything but
// their off value.
func FromGenerationConfig(cfg map[string]any) (Options, error) {
	o := GenerationConfigDefaults()
	doSample := false
	temp := 1.0
	setters := map[string]setter{
		"do_sample": func(o *Options, name string, v any) error {
			b, err := toBool(name, v)
			doSample = b
			return err
		},
		"temperature": func(o *Options, name string, v any) error {
			f, err := toFloat(name, v)
			if err != nil {
				return err
			}
			if !(f > 0) || math.IsInf(f, 0) {
				return optErr(name, v, "must be a finite number > 0 (transformers: use do_sample false for greedy)")
			}
			temp = f
			return nil
		},
		"top_k":              intIn(func(o *Options) *int { return &o.TopK }, 0, math.MaxInt32, " (0: off)"),
		"top_p":              floatIn(func(o *Options) *float64 { return &o.TopP }, 0, 1, " (1: off)"),
		"min_p":              floatIn(func(o *Options) *float64 { return &o.MinP }, 0, 1, " (0: off)"),
		"typical_p":          floatIn(func(o *Options) *float64 { return &o.TypicalP }, 0, 1, " (1: off)"),
		"repetition_penalty": floatIn(func(o *Options) *float64 { return &o.RepeatPenalty }, math.SmallestNonzeroFloat64, math.Inf(1), " (must be > 0; 1: off)"),
		"suppress_tokens": func(o *Options, name string, v any) error {
			list, ok := v.([]any)
			if !ok {
				return optErr(name, v, "must be a list of token ids")
			}
			for _, x := range list {
				id, err := toInt(name, x)
				if err != nil || id < 0 || id > math.MaxInt32 {
					return optErr(name, x, "must be a list of token ids")
				}
				if o.LogitBias == nil {
					o.LogitBias = map[engine.Token]float64{}
				}
				o.LogitBias[engine.Token(id)] = math.Inf(-1)
			}
			return nil
		},
		"num_beams":                    mustBe(1),
		"num_beam_groups":              mustBe(1),
		"no_repeat_ngram_size":         mustBe(0),
		"encoder_no_repeat_ngram_size": mustBe(0),
		"epsilon_cutoff":               mustBe(0),
		"eta_cutoff":                   mustBe(0),
		"diversity_penalty":            mustBe(0),
		"penalty_alpha":                mustBe(0),
		"guidance_scale":               mustBe(1),
	}
	if err := apply(&o, cfg, setters, generationConfigIgnored, "transformers GenerationConfig"); err != nil {
		return Options{}, err
	}
	if doSample {
		o.Temperature = temp
	} else {
		o.Temperature = 0
	}
	return o, o.Validate()
}

// mustBe accepts only the value that turns an unsupported feature off.
func mustBe(off float64) setter {
	return func(o *Options, name string, v any) error {
		f, err := toFloat(name, v)
		if err != nil {
			return err
		}
		if f != off {
			return optErr(name, v, "is not supported: only %g (off)", off)
		}
		return nil
	}
}

// SetOllama sets one option by its Ollama name (as "/set parameter NAME
// VALUE" does in a chat session), keeping the others, and validates the
// result. value is a JSON-like value: a float64 for numbers.
func (o *Options) SetOllama(name string, value any) error {
	next := *o
	if err := apply(&next, map[string]any{name: value}, llamaSetters, map[string]bool{}, "Ollama"); err != nil {
		return err
	}
	if err := next.Validate(); err != nil {
		return err
	}
	*o = next
	return nil
}
