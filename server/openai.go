package server

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"time"

	"github.com/llm-go/llm"
	"github.com/llm-go/llm/modelfile"
	"github.com/llm-go/llm/sampler"
)

// openAIRequest holds the fields chat and completion requests share.
// Sampling fields (temperature, top_p, seed, penalties, logit_bias,
// response_format, and llama.cpp's extra names) are read separately by
// sampler.FromOpenAI.
type openAIRequest struct {
	Model         string `json:"model"`
	Stream        bool   `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	Stop                json.RawMessage `json:"stop"`
	N                   *int            `json:"n"`
	// Grammar is llama.cpp server's extension: a GBNF grammar for the output.
	Grammar string `json:"grammar"`
}

// openAISamplingKeys are the request fields sampler.FromOpenAI reads.
var openAISamplingKeys = map[string]bool{
	"temperature": true, "top_p": true, "seed": true, "frequency_penalty": true, "presence_penalty": true,
	"logit_bias": true, "response_format": true,
	// llama.cpp server's extra sampling fields.
	"top_k": true, "min_p": true, "typical_p": true, "top_n_sigma": true, "repeat_penalty": true,
	"repeat_last_n": true, "dynatemp_range": true, "dynatemp_exponent": true, "xtc_probability": true,
	"xtc_threshold": true, "min_keep": true, "mirostat": true, "mirostat_tau": true, "mirostat_eta": true,
	"dry_multiplier": true, "dry_base": true, "dry_allowed_length": true, "dry_penalty_last_n": true,
	"dry_sequence_breakers": true,
}

// options turns the shared fields and the sampling fields of body into a
// genRequest's options. A preset's sampling parameters and num_predict
// fill in what the request leaves out.
func (o *openAIRequest) options(body []byte, preset *modelfile.Settings) (genRequest, error) {
	g := genRequest{maxTokens: -1, logprobs: -1, n: 1}
	if o.N != nil {
		if g.n = *o.N; g.n < 1 || g.n > maxChoices {
			return g, badRequest("n", "field \"n\" must be in [1, %d], got %d", maxChoices, g.n)
		}
	}
	switch {
	case o.MaxCompletionTokens != nil:
		g.maxTokens = *o.MaxCompletionTokens
		if g.maxTokens < 0 {
			return g, badRequest("max_completion_tokens", "field \"max_completion_tokens\" must be 0 or more, got %d", g.maxTokens)
		}
	case o.MaxTokens != nil:
		g.maxTokens = *o.MaxTokens
		if g.maxTokens < 0 {
			return g, badRequest("max_tokens", "field \"max_tokens\" must be 0 or more, got %d", g.maxTokens)
		}
	default:
		g.maxTokens = presetMaxTokens(preset)
	}
	stops, err := stringList("stop", o.Stop)
	if err != nil {
		return g, err
	}
	for _, s := range stops {
		if s == "" {
			return g, badRequest("stop", "field \"stop\" holds an empty string")
		}
	}
	if len(stops) > 0 {
		g.opts = append(g.opts, llm.Stop(stops...))
	}
	smp, err := openAISampling(body, preset)
	if err != nil {
		return g, err
	}
	if o.Grammar != "" {
		if smp.JSON || smp.JSONSchema != "" {
			return g, badRequest("grammar", "fields \"grammar\" and \"response_format\" cannot both constrain the output")
		}
		smp.Grammar = o.Grammar
	}
	g.opts = append(g.opts, llm.Sampling(smp))
	g.seed = smp.Seed
	return g, nil
}

// maxChoices is the largest n (choices per prompt) an OpenAI request may
// ask for. A request's n choices are admitted together and count against
// the model's limit as n requests (Config.Parallel running + Config.Queue
// waiting), so n may not exceed Parallel+Queue either.
const maxChoices = 16

// openAISampling reads the sampling fields of an OpenAI request body,
// over a preset's sampling parameters.
func openAISampling(body []byte, preset *modelfile.Settings) (sampler.Options, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return sampler.Options{}, jsonError(err)
	}
	m := map[string]any{}
	for k, v := range raw {
		if !openAISamplingKeys[k] {
			continue
		}
		var x any
		if err := json.Unmarshal(v, &x); err != nil {
			return sampler.Options{}, badRequest(k, "field %q: %v", k, err)
		}
		if k == "response_format" {
			x = keepSchemaOrder(x, v)
		}
		m[k] = x
	}
	if preset != nil {
		for k, v := range preset.Parameters {
			if _, set := m[k]; !set && openAISamplingKeys[k] {
				m[k] = v
			}
		}
	}
	o, err := sampler.FromOpenAI(m)
	if err != nil {
		return o, samplingError(err)
	}
	return o, nil
}

// presetMaxTokens is a preset's num_predict, or -1 (no limit).
func presetMaxTokens(preset *modelfile.Settings) int {
	if preset == nil {
		return -1
	}
	if n, ok := preset.Parameters["num_predict"].(float64); ok && n >= 0 && n == math.Trunc(n) && n <= math.MaxInt32 {
		return int(n)
	}
	return -1
}

// withPreset replaces g's options by those made with the lease's preset,
// when its model has one; options builds them.
func (g *genRequest) withPreset(l *lease, options func(*modelfile.Settings) (genRequest, error)) error {
	if l.preset == nil {
		return nil
	}
	pg, err := options(l.preset)
	if err != nil {
		return err
	}
	g.maxTokens, g.opts, g.seed = pg.maxTokens, pg.opts, pg.seed
	return nil
}

// keepSchemaOrder replaces response_format.json_schema.schema, decoded into
// a map, by its raw JSON, so that the grammar keeps the property order.
func keepSchemaOrder(x any, raw json.RawMessage) any {
	rf, ok := x.(map[string]any)
	if !ok {
		return x
	}
	js, ok := rf["json_schema"].(map[string]any)
	if !ok || js["schema"] == nil {
		return x
	}
	var r struct {
		JSONSchema struct {
			Schema json.RawMessage `json:"schema"`
		} `json:"json_schema"`
	}
	if json.Unmarshal(raw, &r) == nil && len(r.JSONSchema.Schema) > 0 {
		js["schema"] = r.JSONSchema.Schema
	}
	return x
}

// samplingError turns a sampler error into a 400 naming the option.
func samplingError(err error) error {
	var oe *sampler.OptionError
	if errors.As(err, &oe) {
		return &apiError{status: http.StatusBadRequest, code: "invalid_request", param: oe.Name,
			msg: clean(err), err: err}
	}
	return &apiError{status: http.StatusBadRequest, code: "invalid_request", msg: clean(err), err: err}
}

// openAIUsage is the token count of a response.
type openAIUsage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

func usageOf(r *genResult) *openAIUsage {
	return &openAIUsage{PromptTokens: r.promptTokens, CompletionTokens: r.tokens, TotalTokens: r.promptTokens + r.tokens}
}

// openAILogprob is one token of a chat response's logprobs.content.
type openAILogprob struct {
	Token       string          `json:"token"`
	Logprob     float64         `json:"logprob"`
	Bytes       []int           `json:"bytes"`
	TopLogprobs []openAILogprob `json:"top_logprobs"`
}

func openAILogprobOf(lp llm.TokenLogprob, top bool) openAILogprob {
	out := openAILogprob{Token: lp.Text, Logprob: finite(lp.Logprob), Bytes: byteList(lp.Text)}
	if top {
		out.TopLogprobs = []openAILogprob{}
		for _, t := range lp.Top {
			out.TopLogprobs = append(out.TopLogprobs, openAILogprobOf(t, false))
		}
	}
	return out
}

// finite maps -Inf (a banned token) to the most negative float JSON can hold.
func finite(v float64) float64 {
	if v < -1e308 || v != v {
		return -9999
	}
	return v
}

// byteList is a token's text as a list of byte values (OpenAI's "bytes").
func byteList(s string) []int {
	out := make([]int, len(s))
	for i := range len(s) {
		out[i] = int(s[i])
	}
	return out
}

// openAIModel is one entry of /v1/models.
type openAIModel struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

// handleOpenAIModels lists the configured and the loaded models, then the
// GGUF files of the Hub cache (as repo/file.gguf), as /api/tags does.
func (s *Server) handleOpenAIModels(w http.ResponseWriter, r *http.Request) {
	list := []openAIModel{}
	seen := map[string]bool{}
	for _, m := range s.knownModels() {
		seen[m.name] = true
		list = append(list, openAIModel{ID: m.name, Object: "model", Created: m.created.Unix(), OwnedBy: "llm"})
	}
	for _, m := range s.cachedModels() {
		if !seen[m.name] {
			seen[m.name] = true
			list = append(list, openAIModel{ID: m.name, Object: "model", Created: m.mod.Unix(), OwnedBy: "llm"})
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": list})
}

// handleOpenAIModel describes one configured or loaded model.
func (s *Server) handleOpenAIModel(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("model")
	for _, m := range s.knownModels() {
		if m.name == name {
			writeJSON(w, http.StatusOK, openAIModel{ID: m.name, Object: "model", Created: m.created.Unix(), OwnedBy: "llm"})
			return
		}
	}
	writeOpenAIError(w, errModelNotFound(name, nil))
}

// knownModel is a model the server names in listings.
type knownModel struct {
	name    string
	source  string
	path    string // empty when not loaded
	created time.Time
}

// knownModels lists the configured models, then the other loaded ones.
func (s *Server) knownModels() []knownModel {
	names, sources := s.models.configured()
	loaded := s.models.loaded()
	byName := map[string]loadedModel{}
	for _, l := range loaded {
		byName[l.name] = l
	}
	var out []knownModel
	seen := map[string]bool{}
	for i, n := range names {
		k := knownModel{name: n, source: sources[i], created: s.started}
		if l, ok := byName[n]; ok {
			k.path, k.created = l.path, l.loadedAt
		}
		out = append(out, k)
		seen[n] = true
	}
	for _, l := range loaded {
		if !seen[l.name] {
			out = append(out, knownModel{name: l.name, source: l.name, path: l.path, created: l.loadedAt})
		}
	}
	return out
}
