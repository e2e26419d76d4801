package llm_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llm-go/llm"
	"github.com/llm-go/llm/internal/shareddata"
	"github.com/llm-go/llm/server"
)

// serveStories starts llm serve's handler on 127.0.0.1 with stories260K,
// behind wrap (nil: none), and returns its URL.
func serveStories(t *testing.T, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	srv, err := server.New(server.Config{
		Models: []string{shareddata.Path(t, "models", "stories260K.gguf")}, Threads: 1, ContextLength: 512,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	h := srv.Handler()
	if wrap != nil {
		h = wrap(h)
	}
	ts := httptest.NewServer(h)
	t.Cleanup(func() { ts.Close(); srv.Close() })
	return ts.URL
}

// TestRemoteAgainstServe: the remote client talking to llm serve (standing
// in for a hosted API) gives the same greedy text as the model in process,
// streamed or not, through completions and chat.
func TestRemoteAgainstServe(t *testing.T) {
	ctx := context.Background()
	r := references(t)[0]
	local := open(t)
	want, err := local.Generate(ctx, r.Prompt, greedy(r.NPredict)...)
	if err != nil {
		t.Fatal(err)
	}
	remote, err := llm.Remote(serveStories(t, nil), llm.RemoteModelName("stories260K"))
	if err != nil {
		t.Fatal(err)
	}
	defer remote.Close()

	got, err := remote.Generate(ctx, r.Prompt, greedy(r.NPredict)...)
	if err != nil {
		t.Fatal(err)
	}
	if got.Text != want.Text || got.Text != r.Text {
		t.Errorf("remote %q, in process %q, reference %q", got.Text, want.Text, r.Text)
	}
	if got.Timings.GeneratedTokens != r.NPredict || got.Timings.PromptTokens != want.Timings.PromptTokens || got.FinishReason != llm.FinishLength {
		t.Errorf("remote result %+v", got)
	}

	var text strings.Builder
	var final *llm.Result
	for c, err := range remote.Stream(ctx, r.Prompt, greedy(r.NPredict)...) {
		if err != nil {
			t.Fatal(err)
		}
		if c.Result != nil {
			final = c.Result
		}
		text.WriteString(c.Text)
	}
	if text.String() != r.Text || final == nil || final.Text != r.Text {
		t.Errorf("remote stream %q (final %+v), want %q", text.String(), final, r.Text)
	}

	// stories260K has no chat template: a chat is the plain prompt.
	msgs := []llm.Message{{Role: "user", Content: r.Prompt}}
	chatLocal, err := local.Chat(ctx, msgs, greedy(r.NPredict)...)
	if err != nil {
		t.Fatal(err)
	}
	chatRemote, err := remote.Chat(ctx, msgs, greedy(r.NPredict)...)
	if err != nil {
		t.Fatal(err)
	}
	if chatRemote.Text != chatLocal.Text {
		t.Errorf("remote chat %q, in process %q", chatRemote.Text, chatLocal.Text)
	}
	vecsLocal, err := local.Embed(ctx, "The little dog")
	if err != nil {
		t.Fatal(err)
	}
	vecsRemote, err := remote.Embed(ctx, "The little dog")
	if err != nil {
		t.Fatal(err)
	}
	var dot float64
	for i := range vecsLocal[0] {
		dot += float64(vecsLocal[0][i]) * float64(vecsRemote[0][i])
	}
	if dot < 0.9999 {
		t.Errorf("remote and local embeddings differ: cosine %f", dot)
	}
}

// TestRemoteRetriesServe: llm serve answering 429 once (a full queue) is
// retried, and the second attempt succeeds.
func TestRemoteRetriesServe(t *testing.T) {
	var calls atomic.Int32
	url := serveStories(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if strings.HasSuffix(req.URL.Path, "/completions") && calls.Add(1) == 1 {
				w.Header().Set("Retry-After", "0")
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusTooManyRequests)
				io.WriteString(w, `{"error":{"message":"the queue is full","type":"rate_limit_error","code":"queue_full"}}`)
				return
			}
			next.ServeHTTP(w, req)
		})
	})
	remote, err := llm.Remote(url, llm.RemoteModelName("stories260K"), llm.RemoteRetries(3, 10*time.Millisecond, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	r := references(t)[0]
	res, err := remote.Generate(context.Background(), r.Prompt, greedy(r.NPredict)...)
	if err != nil || res.Text != r.Text {
		t.Fatalf("after a 429: %v %+v", err, res)
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
}

// TestRemoteDeadServe: a server that is gone gives a clear error, fast.
func TestRemoteDeadServe(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	remote, err := llm.Remote("http://"+addr, llm.RemoteModelName("stories260K"), llm.RemoteTimeout(2*time.Second),
		llm.RemoteRetries(2, 10*time.Millisecond, 100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = remote.Generate(context.Background(), "Once upon a time", llm.MaxTokens(4))
	var re *llm.RemoteError
	if !errors.Is(err, llm.ErrRemote) || !errors.As(err, &re) || !strings.Contains(err.Error(), addr) {
		t.Errorf("dead endpoint: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the error took %v", d)
	}
}
