// Package hubtest runs a fake Hugging Face Hub for tests: a hubserver on one
// httptest listener (the endpoint, HF_ENDPOINT) that redirects LFS downloads
// to a second listener on another 127.0.0.1 port (the "CDN"), the way the Hub
// sends them to its CDN. It logs every request, counts the bytes served per
// file, and injects faults: dropped connections after N bytes, throttled or
// delayed responses, corrupted bytes, error statuses. Gated repos answer 401
// (403 with a wrong token) unless a token from Server.Tokens is sent.
package hubtest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/llm-go/llm/hub/hubserver"
	"github.com/llm-go/llm/internal/shareddata"
)

// Token is the token a Server accepts for gated and private repos.
const Token = "hf_hubtest_token_0123456789"

// Server is a running fake Hub.
type Server struct {
	URL    string // the endpoint: set HF_ENDPOINT or Client.Endpoint to it
	CDNURL string // where LFS files are served
	Hub    *hubserver.Server

	hubSrv, cdnSrv *httptest.Server

	mu       sync.Mutex
	idle     *sync.Cond // signalled when inFlight falls to 0
	inFlight int        // requests whose handlers have not returned
	faults   []*Fault
	reqs     []Request
	served   map[string]int64 // "repo/path" -> body bytes written
}

// Request is one request the server received.
type Request struct {
	Server string // "hub" or "cdn"
	Method string
	Path   string
	Range  string
	Auth   bool // an Authorization header was present
	Agent  string
	Status int
}

// New starts a fake Hub serving repos and closes it when the test ends.
func New(tb testing.TB, repos ...*hubserver.Repo) *Server {
	tb.Helper()
	s := &Server{served: map[string]int64{}}
	s.idle = sync.NewCond(&s.mu)
	s.Hub = hubserver.New(repos, hubserver.Options{Tokens: []string{Token}, Wrap: s.wrap})
	s.hubSrv = httptest.NewServer(s.logged("hub", s.Hub))
	s.cdnSrv = httptest.NewServer(s.logged("cdn", s.Hub.CDNHandler()))
	s.URL, s.CDNURL = s.hubSrv.URL, s.cdnSrv.URL
	s.Hub.SetCDN(s.CDNURL)
	tb.Cleanup(s.Close)
	return s
}

// NewTree starts a fake Hub serving every folder root/org/name as a repo.
func NewTree(tb testing.TB, root string) *Server {
	tb.Helper()
	repos, err := hubserver.LoadTree(root)
	if err != nil {
		tb.Fatalf("hubtest: %v", err)
	}
	return New(tb, repos...)
}

// Shared starts a fake Hub serving the project's shared models
// (../shared/models) as repos:
//
//	test/stories260K         stories260K.gguf, llama-2-tiny-random.gguf, README.md
//	test/tiny-random-gpt2    models/hf/tiny-random-gpt2/*
//	test/tiny-llama-st, test/tiny-llama-st-bf16, test/tiny-qwen2-st
//
// It skips the test when ../shared is missing (fails under CI=true).
func Shared(tb testing.TB) *Server {
	tb.Helper()
	models := shareddata.Path(tb, "models")
	var repos []*hubserver.Repo
	var files []*hubserver.File
	for _, name := range []string{"stories260K.gguf", "llama-2-tiny-random.gguf"} {
		f, err := hubserver.DiskFile(name, filepath.Join(models, name))
		if err != nil {
			tb.Fatalf("hubtest: %v", err)
		}
		files = append(files, f)
	}
	files = append(files, hubserver.MemFile("README.md", []byte(storiesCard)))
	repos = append(repos, hubserver.NewRepo("test/stories260K", files...))
	for _, name := range []string{"tiny-random-gpt2", "tiny-llama-st", "tiny-llama-st-bf16", "tiny-qwen2-st"} {
		r, err := hubserver.LoadRepoDir("test/"+name, filepath.Join(models, "hf", name))
		if err != nil {
			tb.Fatalf("hubtest: %v", err)
		}
		repos = append(repos, r)
	}
	return New(tb, repos...)
}

const storiesCard = `---
license: mit
pipeline_tag: text-generation
base_model: karpathy/tinyllamas
tags:
- llama
- gguf
- tinystories
language:
- en
---

# stories260K

A 260K-parameter Llama trained on TinyStories by Andrej Karpathy (llama2.c),
converted to GGUF. It writes short children's stories.

The repo also holds llama-2-tiny-random.gguf, a random Llama-2-shaped model.
`

// Close shuts both listeners down.
func (s *Server) Close() {
	s.hubSrv.Close()
	s.cdnSrv.Close()
}

// Add serves another repo.
func (s *Server) Add(r *hubserver.Repo) { s.Hub.Add(r) }

// statusRecorder remembers the status written.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) ReadFrom(src io.Reader) (int64, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	if rf, ok := r.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(struct{ io.Writer }{r.ResponseWriter}, src)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (s *Server) logged(name string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w}
		s.mu.Lock()
		s.inFlight++
		s.mu.Unlock()
		defer func() {
			s.mu.Lock()
			s.reqs = append(s.reqs, Request{
				Server: name, Method: r.Method, Path: r.URL.Path, Range: r.Header.Get("Range"),
				Auth: r.Header.Get("Authorization") != "", Agent: r.UserAgent(), Status: rec.status,
			})
			if s.inFlight--; s.inFlight == 0 {
				s.idle.Broadcast()
			}
			s.mu.Unlock()
		}()
		h.ServeHTTP(rec, r)
	})
}

// settled locks s once no request is being handled: a client may have
// read a whole response before its handler returned and was logged, so
// the log and counts are read only when every handler is done.
func (s *Server) settled() {
	s.mu.Lock()
	for s.inFlight > 0 {
		s.idle.Wait()
	}
}

// Requests returns the requests received so far, once none is being
// handled.
func (s *Server) Requests() []Request {
	s.settled()
	defer s.mu.Unlock()
	return append([]Request(nil), s.reqs...)
}

// Served returns the content bytes sent for a repo's file so far, over all
// requests (resolve and CDN), once no request is being handled.
func (s *Server) Served(repo, file string) int64 {
	s.settled()
	defer s.mu.Unlock()
	return s.served[repo+"/"+file]
}

// ServedTotal returns all content bytes sent so far, once no request is
// being handled.
func (s *Server) ServedTotal() int64 {
	s.settled()
	defer s.mu.Unlock()
	var n int64
	for _, v := range s.served {
		n += v
	}
	return n
}

// Reset forgets the request log, byte counts and faults, once no request
// is being handled (a request cut off earlier is not counted after it).
func (s *Server) Reset() {
	s.settled()
	defer s.mu.Unlock()
	s.reqs, s.faults, s.served = nil, nil, map[string]int64{}
}

// sleepCtx sleeps for d or until the request is cancelled.
func sleepCtx(r *http.Request, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}
