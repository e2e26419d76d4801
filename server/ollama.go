package server

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/llm-go/llm"
	"github.com/llm-go/llm/modelfile"
	"github.com/llm-go/llm/sampler"
)

// ollamaMetrics are the timings and counts of Ollama's final response.
type ollamaMetrics struct {
	TotalDuration      int64 `json:"total_duration,omitempty"`
	LoadDuration       int64 `json:"load_duration,omitempty"`
	PromptEvalCount    int   `json:"prompt_eval_count,omitempty"`
	PromptEvalDuration int64 `json:"prompt_eval_duration,omitempty"`
	EvalCount          int   `json:"eval_count,omitempty"`
	EvalDuration       int64 `json:"eval_duration,omitempty"`
}

func ollamaMetricsOf(res *genResult, l *lease, start time.Time) ollamaMetrics {
	return ollamaMetrics{TotalDuration: int64(time.Since(start)), LoadDuration: int64(l.loadDuration),
		PromptEvalCount: res.promptTokens, PromptEvalDuration: int64(res.promptDur),
		EvalCount: res.tokens, EvalDuration: int64(res.genDur)}
}

// ollamaLogprob is one token's log-probability in Ollama's shape.
type ollamaLogprob struct {
	Token       string          `json:"token"`
	Logprob     float64         `json:"logprob"`
	Bytes       []int           `json:"bytes,omitempty"`
	TopLogprobs []ollamaLogprob `json:"top_logprobs,omitempty"`
}

func ollamaLogprobsOf(lps []llm.TokenLogprob, top int) []ollamaLogprob {
	if top < 0 || lps == nil {
		return nil
	}
	out := make([]ollamaLogprob, len(lps))
	for i, lp := range lps {
		out[i] = ollamaLogprob{Token: lp.Text, Logprob: finite(lp.Logprob), Bytes: byteList(lp.Text)}
		for _, t := range lp.Top {
			out[i].TopLogprobs = append(out[i].TopLogprobs, ollamaLogprob{Token: t.Text, Logprob: finite(t.Logprob), Bytes: byteList(t.Text)})
		}
	}
	return out
}

// ollamaCommon holds the fields /api/generate and /api/chat share.
type ollamaCommon struct {
	Model       string          `json:"model"`
	Stream      *bool           `json:"stream"`
	Format      json.RawMessage `json:"format"`
	KeepAlive   json.RawMessage `json:"keep_alive"`
	Options     map[string]any  `json:"options"`
	Think       json.RawMessage `json:"think"`
	Truncate    *bool           `json:"truncate"`
	Shift       *bool           `json:"shift"`
	Logprobs    bool            `json:"logprobs"`
	TopLogprobs int             `json:"top_logprobs"`
}

// streaming reports whether the answer streams (Ollama's default).
func (c *ollamaCommon) streaming() bool { return c.Stream == nil || *c.Stream }

// options turns the shared fields into a genRequest. A preset's
// parameters are the defaults of the request's options, as a Modelfile's
// are in Ollama.
func (c *ollamaCommon) options(preset *modelfile.Settings) (genRequest, error) {
	g := genRequest{maxTokens: -1, logprobs: -1}
	if !isNull(c.Think) {
		// true or false, or a level ("high", "medium", "low"): true, with
		// the template's reasoning_effort (gpt-oss's).
		var on bool
		var level string
		switch {
		case json.Unmarshal(c.Think, &on) == nil:
			g.opts = append(g.opts, llm.Think(on))
		case json.Unmarshal(c.Think, &level) == nil && (level == llm.ThinkHigh || level == llm.ThinkMedium || level == llm.ThinkLow):
			g.opts = append(g.opts, llm.ThinkLevel(level))
		default:
			return g, badRequest("think", "field \"think\" must be true, false, \"high\", \"medium\" or \"low\", got %s", c.Think)
		}
	}
	if c.Logprobs {
		if c.TopLogprobs < 0 || c.TopLogprobs > llm.MaxTopLogprobs {
			return g, badRequest("top_logprobs", "field \"top_logprobs\" must be in [0, %d], got %d", llm.MaxTopLogprobs, c.TopLogprobs)
		}
		g.logprobs = c.TopLogprobs
	} else if c.TopLogprobs != 0 {
		return g, badRequest("top_logprobs", "field \"top_logprobs\" needs \"logprobs\": true")
	}
	opts := c.Options
	if preset != nil {
		opts = make(map[string]any, len(preset.Parameters)+len(c.Options))
		for k, v := range preset.Parameters {
			opts[k] = v
		}
		for k, v := range c.Options {
			opts[k] = v
		}
	}
	if v, ok := opts["num_predict"]; ok && v != nil {
		n, ok := v.(float64)
		if !ok || n != math.Trunc(n) || n < -2 || n > math.MaxInt32 {
			return g, badRequest("options.num_predict", "option \"num_predict\" must be an integer, -1 for no limit, got %v", v)
		}
		if n >= 0 {
			g.maxTokens = int(n)
		}
	}
	if v, ok := opts["stop"]; ok && v != nil {
		raw, _ := json.Marshal(v)
		stops, err := stringList("options.stop", raw)
		if err != nil {
			return g, err
		}
		for _, s := range stops {
			if s == "" {
				return g, badRequest("options.stop", "option \"stop\" holds an empty string")
			}
		}
		if len(stops) > 0 {
			g.opts = append(g.opts, llm.Stop(stops...))
		}
	}
	smp, err := sampler.FromOllama(opts)
	if err != nil {
		return g, samplingError(err)
	}
	if err := ollamaFormat(c.Format, &smp); err != nil {
		return g, err
	}
	g.opts = append(g.opts, llm.Sampling(smp))
	return g, nil
}

// ollamaFormat applies format: "json", a JSON schema, or nothing.
func ollamaFormat(raw json.RawMessage, o *sampler.Options) error {
	raw = bytes.TrimSpace(raw)
	if isNull(raw) {
		return nil
	}
	switch raw[0] {
	case '"':
		var s string
		json.Unmarshal(raw, &s)
		switch s {
		case "":
		case "json":
			o.JSON = true
		default:
			return badRequest("format", "field \"format\" must be \"json\" or a JSON schema object, got %q", s)
		}
	case '{':
		o.JSONSchema = string(raw)
	default:
		return badRequest("format", "field \"format\" must be \"json\" or a JSON schema object")
	}
	return nil
}

// parseKeepAlive reads keep_alive: a number of seconds, or a duration
// string ("5m", "1h", "0"); negative means forever. Absent is nil.
func parseKeepAlive(raw json.RawMessage) (*time.Duration, error) {
	if isNull(raw) {
		return nil, nil
	}
	var d time.Duration
	var n float64
	var s string
	switch {
	case json.Unmarshal(raw, &n) == nil:
		d = time.Duration(n * float64(time.Second))
	case json.Unmarshal(raw, &s) == nil:
		if f, err := strconv.ParseFloat(strings.TrimSpace(s), 64); err == nil {
			d = time.Duration(f * float64(time.Second))
		} else if d, err = time.ParseDuration(strings.TrimSpace(s)); err != nil {
			return nil, badRequest("keep_alive", "field \"keep_alive\" must be a number of seconds or a duration such as \"5m\", got %q", s)
		}
	default:
		return nil, badRequest("keep_alive", "field \"keep_alive\" must be a number of seconds or a duration such as \"5m\"")
	}
	if d < 0 {
		d = -1
	}
	return &d, nil
}
