package server

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// eventStream writes a streamed answer: Server-Sent Events (OpenAI) or
// newline-delimited JSON (Ollama). The status line and headers go out with
// the first event, so an error found before it still gets its status.
type eventStream struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	sse     bool
	started bool
}

func newSSE(w http.ResponseWriter) *eventStream {
	return &eventStream{w: w, rc: http.NewResponseController(w), sse: true}
}

func newNDJSON(w http.ResponseWriter) *eventStream {
	return &eventStream{w: w, rc: http.NewResponseController(w)}
}

// start writes the headers once.
func (s *eventStream) start() {
	if s.started {
		return
	}
	s.started = true
	h := s.w.Header()
	if s.sse {
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
	} else {
		h.Set("Content-Type", "application/x-ndjson")
	}
	h.Set("X-Accel-Buffering", "no") // proxies must not buffer the stream
	s.w.WriteHeader(http.StatusOK)
}

// send writes one event holding v as JSON and flushes it. An error means
// the client is gone.
func (s *eventStream) send(v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding an event: %w", err)
	}
	return s.sendRaw(data)
}

// sendRaw writes one event holding data.
func (s *eventStream) sendRaw(data []byte) error {
	s.start()
	var out []byte
	if s.sse {
		out = make([]byte, 0, len(data)+8)
		out = append(append(append(out, "data: "...), data...), "\n\n"...)
	} else {
		out = append(append(make([]byte, 0, len(data)+1), data...), '\n')
	}
	if _, err := s.w.Write(out); err != nil {
		return err
	}
	return s.rc.Flush()
}
