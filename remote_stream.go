package llm

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// stream sends a streaming request and yields its text, then, when the
// stream ends normally, a chunk with the whole Result.
func (r *RemoteModel) stream(ctx context.Context, path string, body map[string]any, g genConfig, yield func(Chunk, error) bool) {
	start := time.Now()
	first := time.Duration(-1)
	var text, thinking strings.Builder
	var lps []TokenLogprob
	ok := true
	// With Think(true), reasoning comes as reasoning_content (llama-server,
	// vLLM) or inline in a <think> block, which is split out here.
	var split *thinkSplitter
	if g.splitThinking {
		split = newThinkSplitter(false)
	}
	out := func(c Chunk) bool {
		if c.Thinking {
			thinking.WriteString(c.Text)
		} else {
			text.WriteString(c.Text)
		}
		ok = yield(c, nil)
		return ok
	}
	s := r.streamEvents(ctx, path, body, g, func(c Chunk, err error) bool {
		if err != nil {
			ok = false
			yield(c, err)
			return false
		}
		if first < 0 && (c.Text != "" || c.Logprob != nil) {
			first = time.Since(start)
		}
		if c.Logprob != nil {
			lps = append(lps, *c.Logprob)
		}
		if split == nil || c.Thinking {
			return out(c)
		}
		return yieldPieces(c, split.push(c.Text), func(c Chunk, _ error) bool { return out(c) })
	})
	if !ok || s == nil {
		return
	}
	if split != nil && !yieldPieces(Chunk{Token: -1}, split.flush(), func(c Chunk, _ error) bool { return out(c) }) {
		return
	}
	finish := FinishReason(s.finish)
	if finish == "" {
		finish = FinishStop
	}
	res := &Result{Text: text.String(), Thinking: thinking.String(), Model: r.Name(), Logprobs: lps, FinishReason: finish}
	if len(s.calls) > 0 {
		res.ToolCalls = toolCalls(s.calls)
	}
	res.Timings = timings(s.usage, s.timings, max(first, 0), time.Since(start))
	if s.usage == nil && s.timings == nil {
		res.Timings.GeneratedTokens = len(lps) // the best count there is
	}
	yield(Chunk{Token: -1, Result: res}, nil)
}

// streamEvents sends a streaming request and yields its chunks; it returns
// the stream's state when the stream ended normally, else nil.
func (r *RemoteModel) streamEvents(ctx context.Context, path string, body map[string]any, g genConfig, yield func(Chunk, error) bool) *streamState {
	data, err := json.Marshal(body)
	if err != nil {
		yield(Chunk{}, fmt.Errorf("llm: remote request: %w", err))
		return nil
	}
	resp, err := r.send(ctx, http.MethodPost, path, data, true)
	if err != nil {
		yield(Chunk{}, err)
		return nil
	}
	defer resp.close()
	if ct := resp.Header.Get("Content-Type"); strings.HasPrefix(ct, "application/json") {
		// The endpoint answered at once instead of streaming.
		var out oaiResponse
		if err := resp.decode(&out); err != nil {
			yield(Chunk{}, err)
			return nil
		}
		if msg, typ, code, ok := errorObject(out.Error); ok {
			yield(Chunk{}, &RemoteError{URL: resp.url, Attempts: resp.attempts, Message: msg, Type: typ, Code: code,
				Err: errors.New("error in the answer")})
			return nil
		}
		s := &streamState{g: g}
		if err := s.event(out); err != nil {
			yield(Chunk{}, resp.fail(err))
			return nil
		}
		for _, c := range s.flush() {
			if !yield(c, nil) {
				return nil
			}
		}
		return s
	}
	s := &streamState{g: g}
	sse := &sseReader{r: bufio.NewReaderSize(resp.Body, 16<<10), onLine: resp.att.kick}
	for {
		ev, err := sse.next()
		if errors.Is(err, io.EOF) {
			if !s.finished {
				yield(Chunk{}, resp.fail(protocolErrorf(nil, "the event stream ended before its end ([DONE] or a finish_reason)")))
				return nil
			}
			break
		}
		if err != nil {
			if ctx.Err() != nil || context.Cause(resp.att.ctx) != nil {
				err = resp.att.cause(err) // the caller's context, or the timeout
			} else if !errors.Is(err, ErrRemoteProtocol) {
				err = &markedError{msg: "the event stream broke: " + err.Error(), mark: err}
			}
			yield(Chunk{}, resp.fail(err))
			return nil
		}
		if ev.data == "[DONE]" {
			break
		}
		if ev.event == "error" {
			msg, typ, code := errorMessage([]byte(ev.data))
			yield(Chunk{}, &RemoteError{URL: resp.url, Attempts: resp.attempts, Message: msg, Type: typ, Code: code,
				Err: errors.New("error in the stream")})
			return nil
		}
		var out oaiResponse
		if err := json.Unmarshal([]byte(ev.data), &out); err != nil {
			yield(Chunk{}, resp.fail(protocolErrorf(err, "an event that is not JSON (%s)", snippet([]byte(ev.data)))))
			return nil
		}
		if msg, typ, code, ok := errorObject(out.Error); ok {
			yield(Chunk{}, &RemoteError{URL: resp.url, Attempts: resp.attempts, Message: msg, Type: typ, Code: code,
				Err: errors.New("error in the stream")})
			return nil
		}
		if err := s.event(out); err != nil {
			yield(Chunk{}, resp.fail(err))
			return nil
		}
		for _, c := range s.pending {
			if !yield(c, nil) {
				return nil
			}
		}
		s.pending = s.pending[:0]
	}
	for _, c := range s.flush() {
		if !yield(c, nil) {
			return nil
		}
	}
	return s
}

// streamState gathers a stream's chunks and its tool calls, which come in
// pieces.
type streamState struct {
	g        genConfig
	pending  []Chunk
	calls    []oaiToolCall
	finished bool
	finish   string // the finish_reason
	usage    *oaiUsage
	timings  *oaiTimings
}

// event takes one decoded event (or a whole answer).
func (s *streamState) event(out oaiResponse) error {
	if out.Usage != nil {
		s.usage = out.Usage
	}
	if out.Timings != nil {
		s.timings = out.Timings
	}
	for _, c := range out.Choices {
		if c.Index != 0 {
			continue
		}
		if c.FinishReason != nil && *c.FinishReason != "" {
			s.finished, s.finish = true, *c.FinishReason
		}
		text := ""
		msg := c.Delta
		if msg == nil {
			msg = c.Message
		}
		if msg != nil {
			text = msg.text()
			s.addCalls(msg.ToolCalls)
			if msg.Reasoning != "" {
				s.pending = append(s.pending, Chunk{Text: msg.Reasoning, Thinking: true, Token: -1})
			}
		} else if c.Text != nil {
			text = *c.Text
		}
		var lps []TokenLogprob
		if s.g.logprobs >= 0 {
			var err error
			if lps, err = logprobs(c.Logprobs); err != nil {
				return err
			}
		}
		switch {
		case len(lps) > 0:
			// One chunk per token, as a Pipeline streams with Logprobs;
			// the text goes with the last.
			for i := range lps {
				ch := Chunk{Token: lps[i].Token, Logprob: &lps[i]}
				if i == len(lps)-1 {
					ch.Text = text
				}
				s.pending = append(s.pending, ch)
			}
		case text != "":
			s.pending = append(s.pending, Chunk{Text: text, Token: -1})
		}
	}
	return nil
}

// addCalls merges streamed tool call pieces by index.
func (s *streamState) addCalls(calls []oaiToolCall) {
	for _, tc := range calls {
		i := len(s.calls)
		if tc.Index != nil {
			i = *tc.Index
		} else if tc.ID == "" && len(s.calls) > 0 {
			i = len(s.calls) - 1 // a continuation without an index
		}
		for len(s.calls) <= i {
			s.calls = append(s.calls, oaiToolCall{})
		}
		c := &s.calls[i]
		if tc.ID != "" {
			c.ID = tc.ID
		}
		if tc.Type != "" {
			c.Type = tc.Type
		}
		c.Function.Name += tc.Function.Name
		var piece string
		if json.Unmarshal(tc.Function.Arguments, &piece) == nil {
			// Streamed arguments are pieces of one JSON string.
			var whole string
			if len(c.Function.Arguments) > 0 {
				json.Unmarshal(c.Function.Arguments, &whole)
			}
			c.Function.Arguments, _ = json.Marshal(whole + piece)
		} else if len(tc.Function.Arguments) > 0 {
			c.Function.Arguments = tc.Function.Arguments
		}
	}
}

// flush returns what is left: the pending chunks and the tool calls.
func (s *streamState) flush() []Chunk {
	out := s.pending
	s.pending = nil
	if len(s.calls) > 0 {
		out = append(out, Chunk{Text: toolCallText(s.calls), Token: -1})
		s.calls = nil
	}
	return out
}

// sseEvent is one server-sent event.
type sseEvent struct {
	event string
	data  string
}

// sseReader reads server-sent events: "data:" lines (several make one
// event, joined by newlines), "event:" names, ":" comments, and blank
// lines that end an event.
type sseReader struct {
	r      *bufio.Reader
	onLine func()
}

func (s *sseReader) line() (string, error) {
	var buf []byte
	for {
		frag, err := s.r.ReadSlice('\n')
		buf = append(buf, frag...)
		if len(buf) > maxSSELine {
			return "", protocolErrorf(nil, "an event stream line longer than %d bytes", maxSSELine)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil && (err != io.EOF || len(buf) == 0) {
			return "", err
		}
		if s.onLine != nil {
			s.onLine()
		}
		return strings.TrimRight(string(buf), "\r\n"), nil
	}
}

// next returns the next event with data; io.EOF at the end.
func (s *sseReader) next() (sseEvent, error) {
	var ev sseEvent
	var data []string
	has := false
	for {
		line, err := s.line()
		if err != nil {
			if errors.Is(err, io.EOF) && has {
				ev.data = strings.Join(data, "\n")
				return ev, nil // the last event, without its blank line
			}
			return sseEvent{}, err
		}
		if line == "" {
			if has {
				ev.data = strings.Join(data, "\n")
				return ev, nil
			}
			ev = sseEvent{}
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue // a comment (a keep-alive)
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "data":
			data = append(data, value)
			has = true
		case "event":
			ev.event = value
		case "id", "retry":
		default:
			if !has && strings.HasPrefix(strings.TrimSpace(line), "{") {
				// Not SSE at all: a JSON body without "data:".
				return sseEvent{}, protocolErrorf(nil, "a line that is not an event (%s)", snippet([]byte(line)))
			}
		}
	}
}
