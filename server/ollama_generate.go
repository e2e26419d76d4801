package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/llm-go/llm"
	"github.com/llm-go/llm/tokenizer"
)

// generateRequest is Ollama's /api/generate request.
type generateRequest struct {
	ollamaCommon
	Prompt   string   `json:"prompt"`
	Suffix   string   `json:"suffix"`
	System   string   `json:"system"`
	Template string   `json:"template"`
	Context  []int    `json:"context"`
	Raw      bool     `json:"raw"`
	Images   []string `json:"images"`
}

type generateResponse struct {
	Model      string          `json:"model"`
	CreatedAt  time.Time       `json:"created_at"`
	Response   string          `json:"response"`
	Thinking   string          `json:"thinking,omitempty"`
	Done       bool            `json:"done"`
	DoneReason string          `json:"done_reason,omitempty"`
	Logprobs   []ollamaLogprob `json:"logprobs,omitempty"`
	ollamaMetrics
}

// ollamaChatRequest is Ollama's /api/chat request.
type ollamaChatRequest struct {
	ollamaCommon
	Messages []ollamaMessage `json:"messages"`
	Tools    json.RawMessage `json:"tools"`
}

// ollamaMessage is a message of /api/chat, both ways.
type ollamaMessage struct {
	Role       string           `json:"role"`
	Content    string           `json:"content"`
	Thinking   string           `json:"thinking,omitempty"`
	Images     []string         `json:"images,omitempty"`
	ToolCalls  []ollamaToolCall `json:"tool_calls,omitempty"`
	ToolName   string           `json:"tool_name,omitempty"`
	ToolCallID string           `json:"tool_call_id,omitempty"`
}

// ollamaToolCall is a call in Ollama's shape: the arguments as an object.
type ollamaToolCall struct {
	ID       string `json:"id,omitempty"`
	Function struct {
		Index     int             `json:"index"`
		Name      string          `json:"name"`
		Arguments json.RawMessage `json:"arguments"`
	} `json:"function"`
}

type ollamaChatResponse struct {
	Model      string          `json:"model"`
	CreatedAt  time.Time       `json:"created_at"`
	Message    ollamaMessage   `json:"message"`
	Done       bool            `json:"done"`
	DoneReason string          `json:"done_reason,omitempty"`
	Logprobs   []ollamaLogprob `json:"logprobs,omitempty"`
	ollamaMetrics
}

// handleGenerate answers POST /api/generate. Without raw, the prompt (and
// system) go through the model's chat template when it has one. An empty
// prompt loads the model, or with keep_alive 0 unloads it, as in Ollama.
func (s *Server) handleGenerate(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	var req generateRequest
	if _, err := decodeBody(r, &req); err != nil {
		writeOllamaError(w, err)
		return
	}
	var unsupported string
	switch {
	case req.Template != "":
		unsupported = "template"
	case len(req.Context) > 0:
		unsupported = "context"
	case len(req.Images) > 0:
		unsupported = "images"
	}
	if unsupported != "" {
		writeOllamaError(w, badRequest(unsupported, "field %q is not supported (send conversations to /api/chat)", unsupported))
		return
	}
	keepAlive, err := parseKeepAlive(req.KeepAlive)
	if err != nil {
		writeOllamaError(w, err)
		return
	}
	if req.Prompt == "" && req.System == "" {
		s.loadOrUnload(w, r, req.Model, keepAlive, func(name, reason string) any {
			return generateResponse{Model: name, CreatedAt: time.Now().UTC(), Done: true, DoneReason: reason}
		})
		return
	}
	g, err := req.options(nil)
	if err != nil {
		writeOllamaError(w, err)
		return
	}
	if req.Shift == nil || *req.Shift {
		g.policy = llm.ShiftWindow
	}

	ctx, l, cancel, ok := s.leaseFor(w, r, req.Model, writeOllamaError)
	if !ok {
		return
	}
	defer cancel()
	defer func() { l.release(keepAlive) }()
	if err := g.withPreset(l, req.options); err != nil {
		writeOllamaError(w, err)
		return
	}
	switch {
	case req.Suffix != "":
		// Fill in the middle, with the model's FIM tokens: the prompt is the
		// code before the cursor, not a chat turn.
		g.prompt = req.Prompt
		g.opts = append(g.opts, llm.Suffix(req.Suffix))
	case req.Raw || !l.p.HasChatTemplate() && req.System == "":
		g.prompt = req.Prompt
	default:
		if req.System != "" {
			g.messages = append(g.messages, llm.Message{Role: "system", Content: req.System})
		}
		g.messages = append(g.messages, llm.Message{Role: "user", Content: req.Prompt})
	}

	if !req.streaming() {
		res, err := s.generate(ctx, l, g, nil)
		if err != nil {
			writeOllamaError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, generateResponse{Model: l.name, CreatedAt: time.Now().UTC(), Response: res.text, Thinking: res.thinking, Done: true,
			DoneReason: string(res.finish), Logprobs: ollamaLogprobsOf(res.logprobs, g.logprobs), ollamaMetrics: ollamaMetricsOf(res, l, start)})
		return
	}
	es := newNDJSON(w)
	res, err := s.generate(ctx, l, g, func(text string, thinking bool, lp *llm.TokenLogprob) error {
		var lps []llm.TokenLogprob
		if lp != nil {
			lps = []llm.TokenLogprob{*lp}
		}
		r := generateResponse{Model: l.name, CreatedAt: time.Now().UTC(), Response: text, Logprobs: ollamaLogprobsOf(lps, g.logprobs)}
		if thinking {
			r.Response, r.Thinking = "", text
		}
		return es.send(r)
	})
	if err != nil {
		streamError(es, w, err)
		return
	}
	es.send(generateResponse{Model: l.name, CreatedAt: time.Now().UTC(), Done: true, DoneReason: string(res.finish),
		ollamaMetrics: ollamaMetricsOf(res, l, start)})
}

// loadOrUnload answers a request without a prompt: it loads the model
// (done_reason "load"), or with keep_alive 0 unloads it ("unload").
func (s *Server) loadOrUnload(w http.ResponseWriter, r *http.Request, model string, keepAlive *time.Duration, answer func(name, reason string) any) {
	if keepAlive != nil && *keepAlive == 0 {
		canon, _, err := s.models.lookup(model)
		if err != nil {
			writeOllamaError(w, err)
			return
		}
		s.models.unload(canon)
		writeJSON(w, http.StatusOK, answer(canon, "unload"))
		return
	}
	_, l, cancel, ok := s.leaseFor(w, r, model, writeOllamaError)
	if !ok {
		return
	}
	defer cancel()
	l.release(keepAlive)
	writeJSON(w, http.StatusOK, answer(l.name, "load"))
}

// handleChat answers POST /api/chat. An empty conversation loads the
// model, or with keep_alive 0 unloads it. Older turns are left out when
// the conversation does not fit (truncate, the default); with truncate
// false the context shifts during generation unless shift is false.
func (s *Server) handleChat(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	var req ollamaChatRequest
	if _, err := decodeBody(r, &req); err != nil {
		writeOllamaError(w, err)
		return
	}
	keepAlive, err := parseKeepAlive(req.KeepAlive)
	if err != nil {
		writeOllamaError(w, err)
		return
	}
	if len(req.Messages) == 0 {
		s.loadOrUnload(w, r, req.Model, keepAlive, func(name, reason string) any {
			return ollamaChatResponse{Model: name, CreatedAt: time.Now().UTC(), Message: ollamaMessage{Role: "assistant"}, Done: true, DoneReason: reason}
		})
		return
	}
	g, err := req.options(nil)
	if err != nil {
		writeOllamaError(w, err)
		return
	}
	// Ollama's defaults: drop the oldest turns to fit, and shift the
	// window when generation fills the context.
	if req.Truncate == nil || *req.Truncate {
		g.policy |= llm.DropOldestTurns
	}
	if req.Shift == nil || *req.Shift {
		g.policy |= llm.ShiftWindow
	}
	if g.messages, err = ollamaMessages(req.Messages); err != nil {
		writeOllamaError(w, err)
		return
	}
	tools, known, err := openAITools(req.Tools, nil)
	if err != nil {
		writeOllamaError(w, err)
		return
	}

	ctx, l, cancel, ok := s.leaseFor(w, r, req.Model, writeOllamaError)
	if !ok {
		return
	}
	defer cancel()
	defer func() { l.release(keepAlive) }()
	if err := g.withPreset(l, req.options); err != nil {
		writeOllamaError(w, err)
		return
	}
	if len(tools) > 0 {
		if err := checkTools(l); err != nil {
			writeOllamaError(w, err)
			return
		}
		g.opts = append(g.opts, llm.Tools(tools...))
	}

	if !req.streaming() {
		res, err := s.generate(ctx, l, g, nil)
		if err != nil {
			writeOllamaError(w, err)
			return
		}
		msg := ollamaMessage{Role: "assistant", Content: res.text, Thinking: res.thinking}
		if known != nil {
			if c, calls, ok := replyCalls(res, res.text, known); ok {
				msg.Content, msg.ToolCalls = c, ollamaToolCalls(calls)
			}
		}
		writeJSON(w, http.StatusOK, ollamaChatResponse{Model: l.name, CreatedAt: time.Now().UTC(), Message: msg, Done: true,
			DoneReason: string(res.finish), Logprobs: ollamaLogprobsOf(res.logprobs, g.logprobs), ollamaMetrics: ollamaMetricsOf(res, l, start)})
		return
	}
	es := newNDJSON(w)
	var filter *toolFilter
	if known != nil {
		filter = &toolFilter{known: known}
	}
	send := func(msg ollamaMessage, lps []llm.TokenLogprob) error {
		return es.send(ollamaChatResponse{Model: l.name, CreatedAt: time.Now().UTC(), Message: msg, Logprobs: ollamaLogprobsOf(lps, g.logprobs)})
	}
	res, err := s.generate(ctx, l, g, func(text string, thinking bool, lp *llm.TokenLogprob) error {
		var lps []llm.TokenLogprob
		if lp != nil {
			lps = []llm.TokenLogprob{*lp}
		}
		if thinking {
			return send(ollamaMessage{Role: "assistant", Thinking: text}, lps)
		}
		if filter != nil {
			text = filter.push(text)
		}
		if text == "" && lps == nil {
			return nil
		}
		return send(ollamaMessage{Role: "assistant", Content: text}, lps)
	})
	if err != nil {
		streamError(es, w, err)
		return
	}
	if filter != nil {
		rest, calls := filter.finish()
		if len(calls) == 0 {
			calls = libraryCalls(res, known)
		}
		if rest != "" || len(calls) > 0 {
			if err := send(ollamaMessage{Role: "assistant", Content: rest, ToolCalls: ollamaToolCalls(calls)}, nil); err != nil {
				return
			}
		}
	}
	es.send(ollamaChatResponse{Model: l.name, CreatedAt: time.Now().UTC(), Message: ollamaMessage{Role: "assistant"}, Done: true,
		DoneReason: string(res.finish), ollamaMetrics: ollamaMetricsOf(res, l, start)})
}

// ollamaMessages converts /api/chat messages, keeping the key order of
// tool-call arguments. Images are refused.
func ollamaMessages(in []ollamaMessage) ([]llm.Message, error) {
	out := make([]llm.Message, len(in))
	for i, m := range in {
		if m.Role == "" {
			return nil, badRequest(fmt.Sprintf("messages[%d].role", i), "message %d has no role", i)
		}
		if len(m.Images) > 0 {
			return nil, badRequest(fmt.Sprintf("messages[%d].images", i), "message %d has images, which are not supported", i)
		}
		msg := llm.Message{Role: m.Role, Content: m.Content, Name: m.ToolName, ToolCallID: m.ToolCallID}
		if m.Thinking != "" {
			msg.Extra = tokenizer.NewObject("thinking", m.Thinking)
		}
		for j, c := range m.ToolCalls {
			var args any = map[string]any{}
			if !isNull(c.Function.Arguments) {
				v, err := tokenizer.DecodeJSON(c.Function.Arguments)
				if err != nil {
					return nil, badRequest(fmt.Sprintf("messages[%d].tool_calls[%d]", i, j), "the arguments of tool call %d of message %d: %v", j, i, err)
				}
				args = v
			}
			msg.ToolCalls = append(msg.ToolCalls, tokenizer.ToolCall{ID: c.ID, Type: "function",
				Function: tokenizer.FunctionCall{Name: c.Function.Name, Arguments: args}})
		}
		out[i] = msg
	}
	return out, nil
}

func ollamaToolCalls(calls []toolCall) []ollamaToolCall {
	out := make([]ollamaToolCall, len(calls))
	for i, c := range calls {
		out[i].ID = c.ID
		out[i].Function.Index, out[i].Function.Name, out[i].Function.Arguments = i, c.Name, c.Arguments
	}
	return out
}
