package llm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/llm-go/llm/sampler"
	"github.com/llm-go/llm/tokenizer"
)

// ---- the OpenAI wire format ----

type oaiUsage struct {
	PromptTokens        int `json:"prompt_tokens"`
	CompletionTokens    int `json:"completion_tokens"`
	PromptTokensDetails *struct {
		CachedTokens int `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
}

// oaiTimings are llama-server's timings.
type oaiTimings struct {
	PromptN     int     `json:"prompt_n"`
	PromptMS    float64 `json:"prompt_ms"`
	PredictedN  int     `json:"predicted_n"`
	PredictedMS float64 `json:"predicted_ms"`
}

type oaiToolCall struct {
	Index    *int   `json:"index,omitempty"`
	ID       string `json:"id,omitempty"`
	Type     string `json:"type,omitempty"`
	Function struct {
		Name      string          `json:"name,omitempty"`
		Arguments json.RawMessage `json:"arguments,omitempty"`
	} `json:"function"`
}

type oaiMessage struct {
	Role      string          `json:"role"`
	Content   json.RawMessage `json:"content"`
	Reasoning string          `json:"reasoning_content"` // llama-server's and vLLM's separated reasoning
	ToolCalls []oaiToolCall   `json:"tool_calls"`
}

type oaiChoice struct {
	Index        int             `json:"index"`
	Text         *string         `json:"text"`
	Message      *oaiMessage     `json:"message"`
	Delta        *oaiMessage     `json:"delta"`
	FinishReason *string         `json:"finish_reason"`
	Logprobs     json.RawMessage `json:"logprobs"`
}

type oaiResponse struct {
	Model   string          `json:"model"`
	Choices []oaiChoice     `json:"choices"`
	Usage   *oaiUsage       `json:"usage"`
	Timings *oaiTimings     `json:"timings"`
	Error   json.RawMessage `json:"error"`
}

// text returns a message's content: a string, or the text of its parts.
func (m *oaiMessage) text() string {
	if m == nil || len(m.Content) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(m.Content, &s) == nil {
		return s
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if json.Unmarshal(m.Content, &parts) == nil {
		var b strings.Builder
		for _, p := range parts {
			b.WriteString(p.Text)
		}
		return b.String()
	}
	return ""
}

// requestBody maps the options to an OpenAI request's fields. chat adds
// the chat-only ones (tools, chat_template_kwargs, reasoning_effort).
func requestBody(g genConfig, model string, chat, stream bool) (map[string]any, error) {
	body := map[string]any{}
	if model != "" {
		body["model"] = model
	}
	if stream {
		body["stream"] = true
	}
	if g.maxTokens >= 0 {
		body["max_tokens"] = g.maxTokens
	}
	if len(g.stops) > 0 {
		body["stop"] = g.stops
	}
	if err := samplingFields(body, g.sampling); err != nil {
		return nil, err
	}
	if g.logprobs >= 0 {
		if chat {
			body["logprobs"] = true
			if g.logprobs > 0 {
				body["top_logprobs"] = g.logprobs
			}
		} else {
			body["logprobs"] = g.logprobs
		}
	}
	if g.suffix != nil {
		if chat {
			return nil, errSuffixChat
		}
		body["suffix"] = *g.suffix
	}
	if chat {
		if len(g.tools) > 0 {
			body["tools"] = g.tools
		}
		kwargs := g.extra
		if g.thinkLevel != "" {
			// OpenAI's own field, which OpenAI, vLLM and llama-server
			// take; the template variables ThinkLevel set stay home
			// (OpenAI refuses unknown fields such as
			// chat_template_kwargs).
			body["reasoning_effort"] = g.thinkLevel
			kwargs = make(map[string]any, len(g.extra))
			for k, v := range g.extra {
				if !g.thinkVars[k] {
					kwargs[k] = v
				}
			}
		}
		if len(kwargs) > 0 {
			body["chat_template_kwargs"] = kwargs
		}
	}
	return body, nil
}

// samplingFields adds the sampling options that differ from
// sampler.DefaultOptions.
func samplingFields(body map[string]any, o sampler.Options) error {
	if err := o.Validate(); err != nil {
		return fmt.Errorf("llm: %w", err)
	}
	d := sampler.DefaultOptions()
	setF := func(name string, v, def float64) {
		if v != def {
			body[name] = v
		}
	}
	setI := func(name string, v, def int) {
		if v != def {
			body[name] = v
		}
	}
	// OpenAI's own fields.
	setF("temperature", o.Temperature, d.Temperature)
	setF("top_p", o.TopP, d.TopP)
	setF("frequency_penalty", o.FrequencyPenalty, d.FrequencyPenalty)
	setF("presence_penalty", o.PresencePenalty, d.PresencePenalty)
	if o.Seed >= 0 {
		body["seed"] = o.Seed
	}
	if len(o.LogitBias) > 0 {
		lb := make(map[string]float64, len(o.LogitBias))
		for tok, b := range o.LogitBias {
			lb[strconv.Itoa(int(tok))] = math.Max(-100, math.Min(100, b)) // -Inf bans: -100
		}
		body["logit_bias"] = lb
	}
	switch {
	case o.JSONSchema != "":
		if !json.Valid([]byte(o.JSONSchema)) {
			return errors.New("llm: the JSON schema is not valid JSON")
		}
		body["response_format"] = map[string]any{"type": "json_schema",
			"json_schema": map[string]any{"name": "response", "schema": json.RawMessage(o.JSONSchema)}}
	case o.JSON:
		body["response_format"] = map[string]any{"type": "json_object"}
	}
	// llama.cpp's names, for llama-server, vLLM and llm serve.
	setI("top_k", o.TopK, d.TopK)
	setF("min_p", o.MinP, d.MinP)
	setF("typical_p", o.TypicalP, d.TypicalP)
	setF("top_n_sigma", o.TopNSigma, d.TopNSigma)
	setF("dynatemp_range", o.DynamicTempRange, d.DynamicTempRange)
	setF("dynatemp_exponent", o.DynamicTempExponent, d.DynamicTempExponent)
	setF("xtc_probability", o.XTCProbability, d.XTCProbability)
	setF("xtc_threshold", o.XTCThreshold, d.XTCThreshold)
	setI("min_keep", o.MinKeep, d.MinKeep)
	setF("repeat_penalty", o.RepeatPenalty, d.RepeatPenalty)
	setI("repeat_last_n", o.RepeatLastN, d.RepeatLastN)
	setF("dry_multiplier", o.DRYMultiplier, d.DRYMultiplier)
	if o.DRYMultiplier != 0 {
		setF("dry_base", o.DRYBase, d.DRYBase)
		setI("dry_allowed_length", o.DRYAllowedLength, d.DRYAllowedLength)
		setI("dry_penalty_last_n", o.DRYLastN, d.DRYLastN)
		if !slices.Equal(o.DRYSequenceBreakers, d.DRYSequenceBreakers) {
			body["dry_sequence_breakers"] = o.DRYSequenceBreakers
		}
	}
	setI("mirostat", o.Mirostat, d.Mirostat)
	if o.Mirostat != 0 {
		setF("mirostat_tau", o.MirostatTau, d.MirostatTau)
		setF("mirostat_eta", o.MirostatEta, d.MirostatEta)
	}
	if o.Grammar != "" {
		body["grammar"] = o.Grammar
	}
	return nil
}

// chatMessages converts messages to OpenAI's JSON, keeping key order:
// role, content, name, tool_calls, tool_call_id, then Extra's keys.
func chatMessages(messages []Message) ([]*tokenizer.Object, error) {
	out := make([]*tokenizer.Object, 0, len(messages))
	for i, m := range messages {
		o := tokenizer.NewObject("role", m.Role)
		switch c := m.Content.(type) {
		case nil:
			o.Set("content", nil)
		case string:
			o.Set("content", c)
		case []tokenizer.Part:
			parts := make([]*tokenizer.Object, 0, len(c))
			for _, p := range c {
				po := tokenizer.NewObject("type", p.Type)
				if p.Text != "" || p.Type == "text" {
					po.Set("text", p.Text)
				}
				copyKeys(po, p.Extra)
				parts = append(parts, po)
			}
			o.Set("content", parts)
		default:
			if _, err := json.Marshal(c); err != nil {
				return nil, fmt.Errorf("llm: message %d: content: %w", i, err)
			}
			o.Set("content", c)
		}
		if m.Name != "" {
			o.Set("name", m.Name)
		}
		if len(m.ToolCalls) > 0 {
			calls := make([]*tokenizer.Object, 0, len(m.ToolCalls))
			for _, tc := range m.ToolCalls {
				typ := tc.Type
				if typ == "" {
					typ = "function"
				}
				args, err := argumentString(tc.Function.Arguments)
				if err != nil {
					return nil, fmt.Errorf("llm: message %d: tool call %s: %w", i, tc.Function.Name, err)
				}
				co := &tokenizer.Object{}
				if tc.ID != "" {
					co.Set("id", tc.ID)
				}
				co.Set("type", typ)
				co.Set("function", tokenizer.NewObject("name", tc.Function.Name, "arguments", args))
				calls = append(calls, co)
			}
			o.Set("tool_calls", calls)
		}
		if m.ToolCallID != "" {
			o.Set("tool_call_id", m.ToolCallID)
		}
		copyKeys(o, m.Extra)
		out = append(out, o)
	}
	return out, nil
}

func copyKeys(dst, src *tokenizer.Object) {
	if src == nil {
		return
	}
	for _, k := range src.Keys() {
		if !dst.Has(k) {
			v, _ := src.Get(k)
			dst.Set(k, v)
		}
	}
}

// argumentString returns tool call arguments as OpenAI sends them: a
// string holding JSON.
func argumentString(args any) (string, error) {
	switch a := args.(type) {
	case nil:
		return "{}", nil
	case string:
		return a, nil
	default:
		data, err := json.Marshal(a)
		if err != nil {
			return "", err
		}
		return string(data), nil
	}
}

// arguments returns a call's arguments as JSON: the object a string holds
// (as OpenAI sends them), or the object itself; a string that is not JSON
// stays a JSON string.
func (tc oaiToolCall) arguments() json.RawMessage {
	args := json.RawMessage(`{}`)
	if len(tc.Function.Arguments) > 0 {
		var s string
		if json.Unmarshal(tc.Function.Arguments, &s) == nil {
			if json.Valid([]byte(s)) {
				args = json.RawMessage(s)
			} else {
				args, _ = json.Marshal(s)
			}
		} else if json.Valid(tc.Function.Arguments) {
			args = tc.Function.Arguments
		}
	}
	return args
}

// toolCalls converts the endpoint's tool calls to Result.ToolCalls.
func toolCalls(calls []oaiToolCall) []ToolCall {
	out := make([]ToolCall, 0, len(calls))
	for _, tc := range calls {
		typ := tc.Type
		if typ == "" {
			typ = "function"
		}
		out = append(out, ToolCall{ID: tc.ID, Type: typ, Function: tokenizer.FunctionCall{Name: tc.Function.Name, Arguments: tc.arguments()}})
	}
	return out
}

// toolCallText renders tool calls as Hermes-style text, as Qwen and
// Hermes models write them, so that a remote model's calls read like a
// local one's: <tool_call>{"name": …, "arguments": {…}}</tool_call>.
func toolCallText(calls []oaiToolCall) string {
	var b strings.Builder
	for _, tc := range calls {
		args := tc.arguments()
		call, _ := json.Marshal(struct {
			Name      string          `json:"name"`
			Arguments json.RawMessage `json:"arguments"`
		}{tc.Function.Name, args})
		if b.Len() > 0 {
			b.WriteString("\n")
		}
		b.WriteString("<tool_call>\n")
		b.Write(call)
		b.WriteString("\n</tool_call>")
	}
	return b.String()
}

// logprobs reads a choice's logprobs: chat's {"content": [{token,
// logprob, top_logprobs}]} or completions' {tokens, token_logprobs,
// top_logprobs}.
func logprobs(raw json.RawMessage) ([]TokenLogprob, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	type entry struct {
		ID      *int     `json:"id"`
		Token   string   `json:"token"`
		Logprob float64  `json:"logprob"`
		Top     []*entry `json:"top_logprobs"`
	}
	var v struct {
		Content       []entry              `json:"content"`
		Tokens        []string             `json:"tokens"`
		TokenLogprobs []float64            `json:"token_logprobs"`
		TopLogprobs   []map[string]float64 `json:"top_logprobs"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, protocolErrorf(err, "logprobs")
	}
	conv := func(e *entry) TokenLogprob {
		t := TokenLogprob{Token: -1, Text: e.Token, Logprob: e.Logprob}
		if e.ID != nil {
			t.Token = Token(*e.ID)
		}
		return t
	}
	var out []TokenLogprob
	for i := range v.Content {
		t := conv(&v.Content[i])
		for _, alt := range v.Content[i].Top {
			t.Top = append(t.Top, conv(alt))
		}
		out = append(out, t)
	}
	for i, tok := range v.Tokens {
		t := TokenLogprob{Token: -1, Text: tok}
		if i < len(v.TokenLogprobs) {
			t.Logprob = v.TokenLogprobs[i]
		}
		if i < len(v.TopLogprobs) {
			for text, lp := range v.TopLogprobs[i] {
				t.Top = append(t.Top, TokenLogprob{Token: -1, Text: text, Logprob: lp})
			}
			sort.Slice(t.Top, func(a, b int) bool {
				if t.Top[a].Logprob != t.Top[b].Logprob {
					return t.Top[a].Logprob > t.Top[b].Logprob
				}
				return t.Top[a].Text < t.Top[b].Text
			})
		}
		out = append(out, t)
	}
	return out, nil
}

// prepare checks the options and the client and starts the request body.
func (r *RemoteModel) prepare(ctx context.Context, opts []GenerateOption, chat, stream bool) (genConfig, map[string]any, error) {
	if err := r.checkOpen(); err != nil {
		return genConfig{}, nil, err
	}
	g, err := remoteGenConfig(opts)
	if err != nil {
		return g, nil, err
	}
	model, err := r.modelName(ctx, false)
	if err != nil {
		return g, nil, err
	}
	body, err := requestBody(g, model, chat, stream)
	return g, body, err
}

// complete sends a non-streaming request and reads its Result.
func (r *RemoteModel) complete(ctx context.Context, path string, body map[string]any, g genConfig) (*Result, error) {
	data, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("llm: remote request: %w", err)
	}
	resp, err := r.send(ctx, http.MethodPost, path, data, false)
	if err != nil {
		return nil, err
	}
	defer resp.close()
	var out oaiResponse
	if err := resp.decode(&out); err != nil {
		return nil, err
	}
	if msg, typ, code, ok := errorObject(out.Error); ok {
		return nil, &RemoteError{URL: resp.url, Attempts: resp.attempts, Message: msg, Type: typ, Code: code,
			Err: errors.New("error in the answer")}
	}
	if len(out.Choices) == 0 {
		return nil, resp.fail(protocolErrorf(nil, "an answer without choices"))
	}
	end := time.Now()
	c := out.Choices[0]
	res := &Result{Model: r.Name()}
	var calls []oaiToolCall
	switch {
	case c.Message != nil:
		res.Text, calls, res.Thinking = c.Message.text(), c.Message.ToolCalls, c.Message.Reasoning
		if g.splitThinking && res.Thinking == "" {
			res.Thinking, res.Text = SplitThinking(res.Text, false)
		}
	case c.Text != nil:
		res.Text = *c.Text
	}
	if len(calls) > 0 {
		if res.Text != "" {
			res.Text += "\n"
		}
		res.Text += toolCallText(calls)
		res.ToolCalls = toolCalls(calls)
	}
	if c.FinishReason != nil {
		res.FinishReason = FinishReason(*c.FinishReason)
	}
	if g.logprobs >= 0 {
		if res.Logprobs, err = logprobs(c.Logprobs); err != nil {
			return nil, resp.fail(err)
		}
	}
	res.Timings = timings(out.Usage, out.Timings, resp.headers.Sub(resp.start), end.Sub(resp.start))
	return res, nil
}

// timings fills Timings from the usage (and llama-server's timings) and
// what the client measured: the time to the answer's headers (which, for
// a request that does not stream, come with the whole answer) and the
// whole request.
func timings(u *oaiUsage, st *oaiTimings, first, total time.Duration) Timings {
	t := Timings{TimeToFirstToken: first, GenerateDuration: total}
	if u != nil {
		t.PromptTokens, t.GeneratedTokens = u.PromptTokens, u.CompletionTokens
		t.PromptEvaluated = u.PromptTokens
		if u.PromptTokensDetails != nil {
			t.PromptEvaluated = max(u.PromptTokens-u.PromptTokensDetails.CachedTokens, 0)
		}
	}
	if st != nil {
		if u == nil {
			t.GeneratedTokens = st.PredictedN
		}
		t.PromptEvaluated = st.PromptN
		t.PromptDuration = time.Duration(st.PromptMS * float64(time.Millisecond))
		t.GenerateDuration = time.Duration(st.PredictedMS * float64(time.Millisecond))
	}
	return t
}
