package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/llm-go/llm"
	"github.com/llm-go/llm/modelfile"
	"github.com/llm-go/llm/tokenizer"
)

// chatRequest is an OpenAI chat completion request.
type chatRequest struct {
	openAIRequest
	Messages    json.RawMessage `json:"messages"`
	Logprobs    bool            `json:"logprobs"`
	TopLogprobs *int            `json:"top_logprobs"`
	Tools       json.RawMessage `json:"tools"`
	ToolChoice  json.RawMessage `json:"tool_choice"`
	// ChatTemplateKwargs are variables for the chat template, as
	// llama-server and vLLM take them (enable_thinking, ...).
	ChatTemplateKwargs map[string]any `json:"chat_template_kwargs"`
	// ReasoningFormat is llama-server's: "none" leaves a reasoning model's
	// <think> block in the content; otherwise it goes to reasoning_content.
	ReasoningFormat string `json:"reasoning_format"`
	// ReasoningEffort is OpenAI's: the chat template's reasoning_effort
	// (gpt-oss's), "none" turning reasoning off where the template can.
	ReasoningEffort string `json:"reasoning_effort"`
}

// chatMessage is the assistant's message of a response.
type chatMessage struct {
	Role             string           `json:"role"`
	Content          *string          `json:"content"`
	ReasoningContent string           `json:"reasoning_content,omitempty"`
	ToolCalls        []openAIToolCall `json:"tool_calls,omitempty"`
}

// openAIToolCall is a call in OpenAI's shape: the arguments as a string.
type openAIToolCall struct {
	Index    *int   `json:"index,omitempty"` // in streamed deltas only
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

type chatChoice struct {
	Index        int           `json:"index"`
	Message      *chatMessage  `json:"message,omitempty"`
	Delta        *chatDelta    `json:"delta,omitempty"`
	Logprobs     *chatLogprobs `json:"logprobs"`
	FinishReason *string       `json:"finish_reason"`
}

type chatDelta struct {
	Role             string           `json:"role,omitempty"`
	Content          *string          `json:"content,omitempty"`
	ReasoningContent *string          `json:"reasoning_content,omitempty"`
	ToolCalls        []openAIToolCall `json:"tool_calls,omitempty"`
}

type chatLogprobs struct {
	Content []openAILogprob `json:"content"`
}

type chatResponse struct {
	ID                string       `json:"id"`
	Object            string       `json:"object"`
	Created           int64        `json:"created"`
	Model             string       `json:"model"`
	SystemFingerprint string       `json:"system_fingerprint"`
	Choices           []chatChoice `json:"choices"`
	Usage             *openAIUsage `json:"usage,omitempty"`
}

// handleChatCompletions answers POST /v1/chat/completions.
func (s *Server) handleChatCompletions(w http.ResponseWriter, r *http.Request) {
	var req chatRequest
	body, err := decodeBody(r, &req)
	if err != nil {
		writeOpenAIError(w, err)
		return
	}
	g, err := req.options(body, nil)
	if err != nil {
		writeOpenAIError(w, err)
		return
	}
	if g.messages, err = openAIMessages(req.Messages); err != nil {
		writeOpenAIError(w, err)
		return
	}
	switch {
	case req.Logprobs:
		g.logprobs = 0
		if req.TopLogprobs != nil {
			g.logprobs = *req.TopLogprobs
		}
		if g.logprobs < 0 || g.logprobs > llm.MaxTopLogprobs {
			writeOpenAIError(w, badRequest("top_logprobs", "field \"top_logprobs\" must be in [0, %d], got %d", llm.MaxTopLogprobs, g.logprobs))
			return
		}
	case req.TopLogprobs != nil && *req.TopLogprobs > 0:
		writeOpenAIError(w, badRequest("top_logprobs", "field \"top_logprobs\" needs \"logprobs\": true"))
		return
	}
	tools, known, err := openAITools(req.Tools, req.ToolChoice)
	if err != nil {
		writeOpenAIError(w, err)
		return
	}
	thinkOpts, err := req.thinkOptions()
	if err != nil {
		writeOpenAIError(w, err)
		return
	}

	ctx, l, cancel, ok := s.leaseForN(w, r, req.Model, g.n, writeOpenAIError)
	if !ok {
		return
	}
	defer cancel()
	defer l.release(nil)
	if err := g.withPreset(l, func(st *modelfile.Settings) (genRequest, error) { return req.options(body, st) }); err != nil {
		writeOpenAIError(w, err)
		return
	}
	if len(tools) > 0 {
		if err := checkTools(l); err != nil {
			writeOpenAIError(w, err)
			return
		}
		g.opts = append(g.opts, llm.Tools(tools...))
	}
	g.opts = append(g.opts, thinkOpts...)

	id := "chatcmpl-" + newRequestID()
	base := chatResponse{ID: id, Object: "chat.completion", Created: time.Now().Unix(), Model: l.name, SystemFingerprint: fingerprint()}
	usage := &openAIUsage{}
	if !req.Stream {
		// The n choices run together; the prompt counts once in the usage.
		results := make([]*genResult, g.n)
		err := runChoices(ctx, g.n, g.n, func(ctx context.Context, i int) error {
			var err error
			results[i], err = s.generate(ctx, l, g.forChoice(i), nil)
			return err
		})
		if err != nil {
			writeOpenAIError(w, err)
			return
		}
		for i, res := range results {
			base.Choices = append(base.Choices, chatChoiceOf(i, res, known, g.logprobs))
			addUsage(usage, res, i == 0)
		}
		base.Usage = usage
		writeJSON(w, http.StatusOK, base)
		return
	}

	// Streamed, each choice's chunks carry its index: the first its role,
	// the last its finish_reason. The choices' chunks interleave as they
	// are made.
	base.Object = "chat.completion.chunk"
	es := newSSE(w)
	var mu sync.Mutex // one event at a time, and usage
	err = runChoices(ctx, g.n, g.n, func(ctx context.Context, i int) error {
		var filter *toolFilter
		if known != nil {
			filter = &toolFilter{known: known}
		}
		sentRole := false
		send := func(d chatDelta, lps []llm.TokenLogprob, finish *string) error {
			c := base
			if !sentRole {
				d.Role, sentRole = "assistant", true
			}
			c.Choices = []chatChoice{{Index: i, Delta: &d, FinishReason: finish, Logprobs: chatLogprobsOf(lps, g.logprobs)}}
			mu.Lock()
			defer mu.Unlock()
			if err := es.send(c); err != nil {
				return fmt.Errorf("streaming to the client: %w: %w", context.Canceled, err)
			}
			return nil
		}
		res, err := s.generate(ctx, l, g.forChoice(i), func(text string, thinking bool, lp *llm.TokenLogprob) error {
			if thinking {
				var lps []llm.TokenLogprob
				if lp != nil {
					lps = []llm.TokenLogprob{*lp}
				}
				return send(chatDelta{ReasoningContent: &text}, lps, nil)
			}
			if filter != nil {
				text = filter.push(text)
			}
			var lps []llm.TokenLogprob
			if lp != nil {
				lps = []llm.TokenLogprob{*lp}
			}
			if text == "" && lps == nil {
				return nil
			}
			return send(chatDelta{Content: &text}, lps, nil)
		})
		if err != nil {
			return err
		}
		finish := string(res.finish)
		if filter != nil {
			rest, calls := filter.finish()
			if len(calls) == 0 {
				calls = libraryCalls(res, known)
			}
			if rest != "" {
				if err := send(chatDelta{Content: &rest}, nil, nil); err != nil {
					return err
				}
			}
			if len(calls) > 0 {
				finish = "tool_calls"
				if err := send(chatDelta{ToolCalls: openAIToolCalls(calls, true)}, nil, nil); err != nil {
					return err
				}
			}
		}
		empty := ""
		if !sentRole {
			if err := send(chatDelta{Content: &empty}, nil, nil); err != nil {
				return err
			}
		}
		if err := send(chatDelta{}, nil, &finish); err != nil {
			return err
		}
		mu.Lock()
		addUsage(usage, res, i == 0)
		mu.Unlock()
		return nil
	})
	if err != nil {
		streamError(es, w, err)
		return
	}
	if req.StreamOptions != nil && req.StreamOptions.IncludeUsage {
		u := base
		u.Choices = []chatChoice{}
		u.Usage = usage
		if err := es.send(u); err != nil {
			return
		}
	}
	es.sendRaw([]byte("[DONE]"))
}

// thinkOptions are the options for the chat template's variables
// (reasoning_effort, then chat_template_kwargs as given) and a reasoning
// model's reasoning: unless reasoning_format is "none", its <think> block
// goes to reasoning_content, as llama-server does by default (a harmony
// reply's analysis channel always does).
func (req *chatRequest) thinkOptions() ([]llm.GenerateOption, error) {
	vars := map[string]any{}
	switch e := req.ReasoningEffort; e {
	case "":
	case "none":
		vars["enable_thinking"], vars["thinking"], vars["reasoning_effort"] = false, false, llm.ThinkLow
	case "minimal", llm.ThinkLow:
		vars["reasoning_effort"] = llm.ThinkLow
	case llm.ThinkMedium, llm.ThinkHigh:
		vars["reasoning_effort"] = e
	case "xhigh":
		vars["reasoning_effort"] = llm.ThinkHigh
	default:
		return nil, badRequest("reasoning_effort", "field \"reasoning_effort\" must be \"none\", \"minimal\", \"low\", \"medium\", \"high\" or \"xhigh\", got %q", e)
	}
	for k, v := range req.ChatTemplateKwargs {
		vars[k] = v
	}
	var opts []llm.GenerateOption
	if len(vars) > 0 {
		opts = append(opts, llm.TemplateVars(vars))
	}
	switch req.ReasoningFormat {
	case "none":
		return opts, nil
	case "", "auto", "deepseek":
		return append(opts, llm.SeparateThinking()), nil
	}
	return nil, badRequest("reasoning_format", "field \"reasoning_format\" must be \"none\", \"auto\" or \"deepseek\", got %q", req.ReasoningFormat)
}

// chatChoiceOf is choice i of a chat response; known, when not nil, are
// the tools offered, whose calls are parsed out of the text.
func chatChoiceOf(i int, res *genResult, known map[string]bool, logprobs int) chatChoice {
	msg := &chatMessage{Role: "assistant", ReasoningContent: res.thinking}
	finish := string(res.finish)
	content := res.text
	if known != nil {
		if c, calls, ok := replyCalls(res, res.text, known); ok {
			content, msg.ToolCalls, finish = c, openAIToolCalls(calls, false), "tool_calls"
		}
	}
	if content != "" || msg.ToolCalls == nil {
		msg.Content = &content
	}
	return chatChoice{Index: i, Message: msg, FinishReason: &finish, Logprobs: chatLogprobsOf(res.logprobs, logprobs)}
}

// streamError ends a stream with an error: as the status and body when
// nothing was sent yet, else as a last event in the API's error shape (an
// SSE stream is OpenAI's, an NDJSON stream Ollama's).
func streamError(es *eventStream, w http.ResponseWriter, err error) {
	e := asAPIError(err)
	if e.status == 499 {
		return
	}
	switch {
	case !es.started && es.sse:
		writeOpenAIError(w, err)
	case !es.started:
		writeOllamaError(w, err)
	case es.sse:
		es.send(e.openAI())
	default:
		es.send(map[string]string{"error": e.msg})
	}
}

// chatLogprobsOf converts log-probabilities (nil when not asked for).
func chatLogprobsOf(lps []llm.TokenLogprob, top int) *chatLogprobs {
	if top < 0 || lps == nil {
		return nil
	}
	out := &chatLogprobs{Content: make([]openAILogprob, len(lps))}
	for i, lp := range lps {
		out.Content[i] = openAILogprobOf(lp, true)
	}
	return out
}

// openAIToolCalls converts parsed calls; streamed deltas carry an index.
func openAIToolCalls(calls []toolCall, indexed bool) []openAIToolCall {
	out := make([]openAIToolCall, len(calls))
	for i, c := range calls {
		out[i].ID, out[i].Type = c.ID, "function"
		out[i].Function.Name, out[i].Function.Arguments = c.Name, string(c.Arguments)
		if indexed {
			out[i].Index = &i
		}
	}
	return out
}

// openAIMessages parses the messages of a chat request, keeping the key
// order of tool-call arguments. Text parts of a content list are joined;
// other parts (images, audio) are refused.
func openAIMessages(raw json.RawMessage) ([]llm.Message, error) {
	if isNull(raw) {
		return nil, badRequest("messages", "field \"messages\" is required")
	}
	v, err := tokenizer.DecodeJSON(raw)
	if err != nil {
		return nil, badRequest("messages", "field \"messages\": %v", err)
	}
	list, ok := v.([]any)
	if !ok {
		return nil, badRequest("messages", "field \"messages\" must be an array")
	}
	if len(list) == 0 {
		return nil, badRequest("messages", "field \"messages\" must hold at least one message")
	}
	msgs, err := tokenizer.MessagesFromValues(list)
	if err != nil {
		return nil, badRequest("messages", "field \"messages\": %s", strings.TrimPrefix(err.Error(), "tokenizer: "))
	}
	for i := range msgs {
		m := &msgs[i]
		if m.Role == "" {
			return nil, badRequest(fmt.Sprintf("messages[%d].role", i), "message %d has no role", i)
		}
		switch c := m.Content.(type) {
		case nil, string:
		case []tokenizer.Part:
			var texts []string
			for j, p := range c {
				if p.Type != "text" {
					return nil, badRequest(fmt.Sprintf("messages[%d].content[%d]", i, j),
						"message %d has a %q content part: only text is supported", i, p.Type)
				}
				texts = append(texts, p.Text)
			}
			m.Content = strings.Join(texts, "\n")
		default:
			return nil, badRequest(fmt.Sprintf("messages[%d].content", i), "the content of message %d must be a string or an array of parts", i)
		}
	}
	return msgs, nil
}

// openAITools parses tools and tool_choice. It returns the tool
// definitions for the template (key order kept) and the names offered, nil
// when no tools are to be used.
func openAITools(raw, choice json.RawMessage) ([]any, map[string]bool, error) {
	if isNull(raw) {
		return nil, nil, nil
	}
	v, err := tokenizer.DecodeJSON(raw)
	if err != nil {
		return nil, nil, badRequest("tools", "field \"tools\": %v", err)
	}
	list, ok := v.([]any)
	if !ok {
		return nil, nil, badRequest("tools", "field \"tools\" must be an array")
	}
	if len(list) == 0 {
		return nil, nil, nil
	}
	names := make([]string, len(list))
	for i, t := range list {
		o, ok := t.(*tokenizer.Object)
		if !ok {
			return nil, nil, badRequest(fmt.Sprintf("tools[%d]", i), "tool %d is not an object", i)
		}
		if typ, _ := o.Get("type"); typ != "function" {
			return nil, nil, badRequest(fmt.Sprintf("tools[%d].type", i), "tool %d: only \"type\": \"function\" is supported", i)
		}
		f, _ := o.Get("function")
		fo, ok := f.(*tokenizer.Object)
		if !ok {
			return nil, nil, badRequest(fmt.Sprintf("tools[%d].function", i), "tool %d has no \"function\" object", i)
		}
		name, _ := fo.Get("name")
		if names[i], ok = name.(string); !ok || names[i] == "" {
			return nil, nil, badRequest(fmt.Sprintf("tools[%d].function.name", i), "tool %d has no name", i)
		}
	}
	pick := ""
	if !isNull(choice) {
		var s string
		if json.Unmarshal(choice, &s) == nil {
			switch s {
			case "none":
				return nil, nil, nil
			case "auto", "required":
			default:
				return nil, nil, badRequest("tool_choice", "field \"tool_choice\" must be \"none\", \"auto\", \"required\" or a function, got %q", s)
			}
		} else {
			var named struct {
				Type     string `json:"type"`
				Function struct {
					Name string `json:"name"`
				} `json:"function"`
			}
			if err := json.Unmarshal(choice, &named); err != nil || named.Type != "function" || named.Function.Name == "" {
				return nil, nil, badRequest("tool_choice", "field \"tool_choice\" must be a string or {\"type\": \"function\", \"function\": {\"name\": …}}")
			}
			pick = named.Function.Name
		}
	}
	var tools []any
	known := map[string]bool{}
	for i, t := range list {
		if pick != "" && names[i] != pick {
			continue
		}
		tools = append(tools, t)
		known[names[i]] = true
	}
	if len(tools) == 0 {
		return nil, nil, badRequest("tool_choice", "field \"tool_choice\" names %q, which is not among the tools", pick)
	}
	return tools, known, nil
}

// checkTools refuses tools for a model whose chat template ignores them.
func checkTools(l *lease) error {
	if tmpl, ok := l.p.Model().ChatTemplate(""); !ok || !strings.Contains(tmpl, "tools") {
		return badRequest("tools", "model %q does not support tools: its chat template does not use them", l.name)
	}
	return nil
}

// fingerprint is the system_fingerprint of responses.
func fingerprint() string { return "llm-" + buildVersion() }
