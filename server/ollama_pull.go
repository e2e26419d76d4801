package server

import (
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/llm-go/llm/hub"
	"github.com/llm-go/llm/loader/convert"
)

// pullRequest is Ollama's /api/pull request ("name" is the older spelling).
type pullRequest struct {
	Model  string `json:"model"`
	Name   string `json:"name"`
	Stream *bool  `json:"stream"`
}

// pullStatus is one progress line of /api/pull.
type pullStatus struct {
	Status    string `json:"status"`
	Digest    string `json:"digest,omitempty"`
	Total     int64  `json:"total,omitempty"`
	Completed int64  `json:"completed,omitempty"`
}

// pullProgress collects a pull's progress from the download goroutines.
type pullProgress struct {
	mu    sync.Mutex
	files map[string]*fileState
	order []string
}

type fileState struct {
	total, completed int64
	changed          bool
}

type fileProgress struct {
	p    *pullProgress
	name string
}

// Start implements hub.Progress.
func (p *pullProgress) Start(file string, size, done int64) hub.FileProgress {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.files[file]; !ok {
		p.order = append(p.order, file)
	}
	p.files[file] = &fileState{total: size, completed: done, changed: true}
	return &fileProgress{p: p, name: file}
}

// Advance implements hub.FileProgress.
func (f *fileProgress) Advance(n int64) {
	f.p.mu.Lock()
	s := f.p.files[f.name]
	s.completed += n
	s.changed = true
	f.p.mu.Unlock()
}

// Done implements hub.FileProgress.
func (f *fileProgress) Done(error) {
	f.p.mu.Lock()
	f.p.files[f.name].changed = true
	f.p.mu.Unlock()
}

// updates returns a status line for each file whose progress changed.
func (p *pullProgress) updates() []pullStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []pullStatus
	for _, name := range p.order {
		s := p.files[name]
		if !s.changed {
			continue
		}
		s.changed = false
		out = append(out, pullStatus{Status: "pulling " + name, Digest: name, Total: max(s.total, 0), Completed: s.completed})
	}
	return out
}

// handlePull answers POST /api/pull: it pulls a Hub model into the shared
// cache, streaming progress as Ollama does (one line per file update, at
// most every 200 ms, then "success"). org/repo:TYPE of a safetensors repo
// is converted to TYPE too ("converting to TYPE").
func (s *Server) handlePull(w http.ResponseWriter, r *http.Request) {
	var req pullRequest
	if _, err := decodeBody(r, &req); err != nil {
		writeOllamaError(w, err)
		return
	}
	name := req.Model
	if name == "" {
		name = req.Name
	}
	if name == "" {
		writeOllamaError(w, badRequest("model", "field \"model\" is required"))
		return
	}
	ref, err := hub.ParseRef(name)
	if err != nil {
		writeOllamaError(w, badRequest("model", "%q is not a Hub model name: %v", name, err))
		return
	}
	base, err := s.models.res.hubClient()
	if err != nil {
		writeOllamaError(w, err)
		return
	}
	prog := &pullProgress{files: map[string]*fileState{}}
	client := *base
	client.Progress = prog
	ctx, cancel := s.requestContext(r.Context())
	defer cancel()

	var pullErr, convErr error
	var converting atomic.Bool
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		snap, err := client.Pull(ctx, ref, hub.PullOptions{Convertible: convert.ConvertibleType, Check: convert.CheckSnapshot})
		if pullErr = err; err != nil || snap.Format() != "safetensors" || ref.Quant == "" {
			return
		}
		// org/repo:TYPE of a safetensors repo: converted now, as llm pull
		// does, rather than by the first request that loads it.
		converting.Store(true)
		_, convErr = convertDir(ctx, snap.Dir, snap.Repo+"@"+snap.Commit, convert.HubType(ref.Quant))
	}()
	stream := req.Stream == nil || *req.Stream
	if !stream {
		<-finished
		switch {
		case pullErr != nil:
			writeOllamaError(w, pullError(name, pullErr))
		case convErr != nil:
			writeOllamaError(w, asAPIError(convErr))
		default:
			writeJSON(w, http.StatusOK, pullStatus{Status: "success"})
		}
		return
	}
	es := newNDJSON(w)
	if err := es.send(pullStatus{Status: "pulling manifest"}); err != nil {
		cancel()
		<-finished
		return
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	announced := false
	for done := false; !done; {
		select {
		case <-finished:
			done = true
		case <-tick.C:
		}
		updates := prog.updates()
		if converting.Load() && !announced {
			announced = true
			updates = append(updates, pullStatus{Status: "converting to " + strings.ToUpper(ref.Quant)})
		}
		for _, u := range updates {
			if err := es.send(u); err != nil {
				cancel()
				<-finished
				return
			}
		}
	}
	switch {
	case pullErr != nil:
		es.send(map[string]string{"error": pullError(name, pullErr).msg})
		return
	case convErr != nil:
		es.send(map[string]string{"error": asAPIError(convErr).msg})
		return
	}
	for _, st := range []string{"verifying sha256 digest", "writing manifest", "success"} {
		if err := es.send(pullStatus{Status: st}); err != nil {
			return
		}
	}
}

// pullError maps a failed pull to its answer.
func pullError(name string, err error) *apiError {
	switch {
	case errors.Is(err, hub.ErrNotFound), errors.Is(err, hub.ErrInvalidName), errors.Is(err, hub.ErrAmbiguous):
		return errModelNotFound(name, err)
	case errors.Is(err, hub.ErrOffline):
		return &apiError{status: http.StatusServiceUnavailable, code: "offline", msg: "pulling " + name + ": " + err.Error(), err: err}
	case errors.Is(err, convert.ErrUnsupported), errors.Is(err, convert.ErrMismatch):
		// Refused from its config.json, before the weights.
		return &apiError{status: http.StatusBadRequest, code: "unsupported_model", param: "model", msg: "pulling " + name + ": " + err.Error(), err: err}
	}
	e := asAPIError(err)
	if e.status == http.StatusInternalServerError {
		e = &apiError{status: http.StatusBadGateway, code: "hub_error", msg: "pulling " + name + ": " + err.Error(), err: err}
	}
	return e
}
