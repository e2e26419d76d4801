package llm

import (
	"context"
	"encoding/json"
	"errors"
	"iter"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/llm-go/llm/internal/shareddata"
	"github.com/llm-go/llm/tokenizer"
)

// fakeLocal is a local Generator for router tests: it answers, or fails
// with err, and records what it was asked.
type fakeLocal struct {
	name string
	err  error
	mu   sync.Mutex
	got  []string // the ops it was asked to do
}

var errLocalBroken = errors.New("fake local model: out of memory")

func (f *fakeLocal) record(op string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, op)
	return f.err
}

func (f *fakeLocal) calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.got...)
}

func (f *fakeLocal) Generate(ctx context.Context, prompt string, opts ...GenerateOption) (*Result, error) {
	if err := f.record("generate"); err != nil {
		return nil, err
	}
	return &Result{Text: "local: " + prompt, Model: f.name, FinishReason: FinishStop}, nil
}

func (f *fakeLocal) Chat(ctx context.Context, messages []Message, opts ...GenerateOption) (*Result, error) {
	if err := f.record("chat"); err != nil {
		return nil, err
	}
	return &Result{Text: "local chat", FinishReason: FinishStop}, nil // Model left empty: the router fills it
}

func (f *fakeLocal) Stream(ctx context.Context, prompt string, opts ...GenerateOption) iter.Seq2[Chunk, error] {
	return f.stream("stream")
}

func (f *fakeLocal) ChatStream(ctx context.Context, messages []Message, opts ...GenerateOption) iter.Seq2[Chunk, error] {
	return f.stream("chatstream")
}

func (f *fakeLocal) stream(op string) iter.Seq2[Chunk, error] {
	return func(yield func(Chunk, error) bool) {
		if err := f.record(op); err != nil {
			yield(Chunk{}, err)
			return
		}
		for _, s := range []string{"local ", "stream"} {
			if !yield(Chunk{Text: s}, nil) {
				return
			}
		}
	}
}

func (f *fakeLocal) Embed(ctx context.Context, texts ...string) ([][]float32, error) {
	if err := f.record("embed"); err != nil {
		return nil, err
	}
	out := make([][]float32, len(texts))
	for i := range out {
		out[i] = []float32{1, 0}
	}
	return out, nil
}

func (f *fakeLocal) Name() string { return f.name }
func (f *fakeLocal) Close() error { return nil }

// remoteBodies returns everything the fake remote received, as text, to
// look for private data in it.
func remoteBodies(f *fakeAPI) string {
	var b strings.Builder
	for _, r := range f.received() {
		data, _ := json.Marshal(r.Body)
		b.WriteString(r.Method + " " + r.Path + " " + string(data) + "\n")
	}
	return b.String()
}

// remotePosts counts the generation requests the fake remote received.
func remotePosts(f *fakeAPI) int {
	n := 0
	for _, r := range f.received() {
		if r.Method == "POST" {
			n++
		}
	}
	return n
}

const (
	secretEmail = "jane.doe@example.org"
	secretIBAN  = "DE89 3704 0044 0532 0130 00"
)

func TestRouter(t *testing.T) {
	user := func(s string) []Message { return []Message{{Role: "user", Content: s}} }
	type call func(ctx context.Context, r *Router) (text, model string, err error)
	chat := func(msgs []Message, opts ...GenerateOption) call {
		return func(ctx context.Context, r *Router) (string, string, error) {
			res, err := r.Chat(ctx, msgs, opts...)
			if err != nil {
				return "", "", err
			}
			return res.Text, res.Model, nil
		}
	}
	generate := func(prompt string, opts ...GenerateOption) call {
		return func(ctx context.Context, r *Router) (string, string, error) {
			res, err := r.Generate(ctx, prompt, opts...)
			if err != nil {
				return "", "", err
			}
			return res.Text, res.Model, nil
		}
	}
	chatStream := func(msgs []Message, opts ...GenerateOption) call {
		return func(ctx context.Context, r *Router) (string, string, error) {
			text, err := collect(t, r.ChatStream(ctx, msgs, opts...))
			return text, "", err
		}
	}
	embed := func(texts ...string) call {
		return func(ctx context.Context, r *Router) (string, string, error) {
			v, err := r.Embed(ctx, texts...)
			if err != nil {
				return "", "", err
			}
			return strings.Repeat("v", len(v)), "", nil
		}
	}
	cases := []struct {
		name      string
		call      call
		private   bool  // mark the context
		localErr  error // the local model fails with it
		noLocal   bool
		opts      []RouterOption
		wantModel string // "local" or "remote"; "" for an error
		wantText  string
		wantIs    []error
		sendsData bool // detection is off: the e-mail address may go remote
	}{
		{name: "not private goes remote", call: chat(user("What is the capital of France?")),
			wantModel: "remote", wantText: "echo: What is the capital of France?"},
		{name: "generate not private goes remote", call: generate("Once"), wantModel: "remote", wantText: " upon a time"},
		{name: "marked with the Private option", call: chat(user("my diary"), Private()), wantModel: "local", wantText: "local chat"},
		{name: "marked in the context", call: generate("my diary"), private: true, wantModel: "local", wantText: "local: my diary"},
		{name: "an e-mail address", call: chat(user("Write to " + secretEmail + " please")), wantModel: "local"},
		{name: "an IBAN in a system message", call: chat([]Message{{Role: "system", Content: "Account " + secretIBAN},
			{Role: "user", Content: "Summarise"}}), wantModel: "local"},
		{name: "a card number in a content part", call: chat([]Message{{Role: "user",
			Content: []tokenizer.Part{{Type: "text", Text: "card 4111 1111 1111 1111"}}}}), wantModel: "local"},
		{name: "a phone number in tool call arguments", call: chat([]Message{{Role: "assistant", ToolCalls: []tokenizer.ToolCall{
			{Function: tokenizer.FunctionCall{Name: "call", Arguments: map[string]any{"number": "+44 20 7946 0958"}}}}}}),
			wantModel: "local"},
		{name: "an access token", call: generate("use hf_abcdefghijklmnopqrstuvwxyz0123456789"), wantModel: "local"},
		{name: "a private stream", call: chatStream(user("mail " + secretEmail)), wantModel: "local", wantText: "local stream"},
		{name: "a stream that is not private", call: chatStream(user("hello")), wantModel: "remote", wantText: "echo: hello"},
		{name: "embeddings stay local by default", call: embed("a", "b"), wantModel: "local", wantText: "vv"},

		{name: "private, the local model fails", call: chat(user("IBAN " + secretIBAN)), localErr: errLocalBroken,
			wantIs: []error{ErrPrivateInput, errLocalBroken}},
		{name: "private, the local model fails, even with fallback", call: chat(user(secretEmail)), localErr: errLocalBroken,
			opts: []RouterOption{RouterFallback()}, wantIs: []error{ErrPrivateInput, errLocalBroken}},
		{name: "private stream, the local model fails, with fallback", call: chatStream(user(secretEmail)), localErr: errLocalBroken,
			opts: []RouterOption{RouterFallback()}, wantIs: []error{ErrPrivateInput, errLocalBroken}},
		{name: "private, no local model", call: generate("to " + secretEmail), noLocal: true,
			wantIs: []error{ErrPrivateInput, ErrLocalUnavailable}},
		{name: "private embeddings, no local model", call: embed("x"), private: true, noLocal: true,
			wantIs: []error{ErrPrivateInput, ErrLocalUnavailable}},
		{name: "a policy that says remote cannot send private input", call: chat(user(secretEmail)),
			opts: []RouterOption{RouterPolicy(func(Request) Route { return RouteRemote })}, wantModel: "local"},
		{name: "without detectors only marks count", call: chat(user(secretEmail)), opts: []RouterOption{RouterDetectors()},
			wantModel: "remote", sendsData: true},

		{name: "prefer local", call: chat(user("hi")), opts: []RouterOption{RouterPolicy(PreferLocal)}, wantModel: "local"},
		{name: "prefer local, it fails, no fallback", call: chat(user("hi")), localErr: errLocalBroken,
			opts: []RouterOption{RouterPolicy(PreferLocal)}, wantIs: []error{errLocalBroken}},
		{name: "prefer local, it fails, fallback to remote", call: chat(user("hi")), localErr: errLocalBroken,
			opts: []RouterOption{RouterPolicy(PreferLocal), RouterFallback()}, wantModel: "remote", wantText: "echo: hi"},
		{name: "prefer local, no local model", call: chat(user("hi")), noLocal: true,
			opts: []RouterOption{RouterPolicy(PreferLocal)}, wantModel: "remote"},
		{name: "prefer local stream, it fails, fallback", call: chatStream(user("hi")), localErr: errLocalBroken,
			opts: []RouterOption{RouterPolicy(PreferLocal), RouterFallback()}, wantModel: "remote", wantText: "echo: hi"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			api := newFakeAPI(t)
			remote := newTestRemote(t, api)
			local := &fakeLocal{name: "local-model", err: tc.localErr}
			var lg Generator = local
			if tc.noLocal {
				var none *fakeLocal // a typed nil, as from a failed load
				lg = none
			}
			var routes []Route
			opts := append([]RouterOption{RouterOnRoute(func(_ Request, to Route) { routes = append(routes, to) })}, tc.opts...)
			r := NewRouter(lg, remote, opts...)
			ctx := context.Background()
			if tc.private {
				ctx = WithPrivate(ctx)
			}
			text, model, err := tc.call(ctx, r)

			if tc.wantModel == "" {
				if err == nil {
					t.Fatalf("no error; answered %q by %q", text, model)
				}
				for _, target := range tc.wantIs {
					if !errors.Is(err, target) {
						t.Errorf("error %v does not match %v", err, target)
					}
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if tc.wantText != "" && text != tc.wantText {
				t.Errorf("text %q, want %q", text, tc.wantText)
			}
			wantName := map[string]string{"local": "local-model", "remote": "fake-model"}[tc.wantModel]
			if model != "" && model != wantName {
				t.Errorf("Result.Model %q, want %q", model, wantName)
			}
			if tc.wantModel == "remote" && remotePosts(api) == 0 {
				t.Error("the remote model was not asked")
			}
			if tc.wantModel == "local" && remotePosts(api) != 0 {
				t.Errorf("the remote model was asked:\n%s", remoteBodies(api))
			}
			if tc.wantModel == "" && len(tc.wantIs) > 0 && errors.Is(err, ErrPrivateInput) && remotePosts(api) != 0 {
				t.Errorf("private input reached the remote model:\n%s", remoteBodies(api))
			}
			// Whatever happened, private data never reached the remote.
			for _, secret := range []string{secretEmail, secretIBAN, "4111 1111", "7946", "hf_abc", "my diary"} {
				if !tc.sendsData && strings.Contains(remoteBodies(api), secret) {
					t.Errorf("%q reached the remote model", secret)
				}
			}
			if tc.wantModel == "local" && !slices.Equal(routes, []Route{RouteLocal}) {
				t.Errorf("routes %v", routes)
			}
		})
	}
}

func TestRouterClassify(t *testing.T) {
	r := NewRouter(&fakeLocal{name: "l"}, nil)
	req := r.Classify(context.Background(), Request{Op: OpChat, Messages: []Message{
		{Role: "user", Content: "Mail " + secretEmail + ", pay to " + secretIBAN}}}, MaxTokens(9))
	if !req.Private || !reflect.DeepEqual(req.Findings, []string{"e-mail address", "IBAN"}) || req.MaxTokens != 9 {
		t.Errorf("request %+v", req)
	}
	if req := r.Classify(WithPrivate(context.Background()), Request{Prompt: "x"}); !req.Private || req.Findings != nil {
		t.Errorf("marked request %+v", req)
	}
	if req := r.Classify(context.Background(), Request{Prompt: "x"}); req.Private {
		t.Errorf("plain request %+v", req)
	}
	if got := r.Name(); got != "router(local: l, remote: none)" {
		t.Errorf("Name %q", got)
	}
	// The error says why, without the private text.
	_, err := NewRouter(nil, nil).Chat(context.Background(), []Message{{Role: "user", Content: secretEmail}})
	if !errors.Is(err, ErrPrivateInput) || strings.Contains(err.Error(), secretEmail) ||
		!strings.Contains(err.Error(), "private input (it contains: e-mail address) and no local model") {
		t.Errorf("error %v", err)
	}
	_, err = NewRouter(&fakeLocal{name: "l", err: errLocalBroken}, nil).Generate(context.Background(), "x", Private())
	if want := "llm: router: private input (marked private), not sent to the remote model, and the local model l failed: fake local model: out of memory"; err == nil || err.Error() != want {
		t.Errorf("error %v, want %s", err, want)
	}
}

func TestDetectors(t *testing.T) {
	cases := []struct {
		text string
		want []string
	}{
		{"write to jane.doe+work@mail.example.co.uk today", []string{"e-mail address"}},
		{"IBAN: GB82 WEST 1234 5698 7654 32.", []string{"IBAN"}},
		{"IBAN DE89370400440532013000 IBAN", []string{"IBAN"}},
		{"IBAN DE88 3704 0044 0532 0130 00 (a wrong check digit)", nil},
		{"card 4111-1111-1111-1111", []string{"payment card number"}},
		{"card 4111 1111 1111 1112 (fails Luhn)", nil},
		{"order 0000000000000000", nil},
		{"call +1 (555) 010-9999 or +49 30 901820", []string{"phone number"}},
		{"call (212) 555-0142", []string{"phone number"}},
		{"on 2024-01-15 at 10:30, version 1.2.3, 42 items, 3.14159", nil},
		{"key sk-proj-abcdefghijklmnopqrstuvwxyz", []string{"access token or private key"}},
		{"-----BEGIN OPENSSH PRIVATE KEY-----", []string{"access token or private key"}},
		{"What is the capital of France?", nil},
	}
	r := NewRouter(nil, nil)
	for _, tc := range cases {
		req := r.Classify(context.Background(), Request{Prompt: tc.text})
		if !slices.Equal(req.Findings, tc.want) {
			t.Errorf("%q: found %q, want %q", tc.text, req.Findings, tc.want)
		}
	}
}

// TestRouterWithPipeline routes between a real local model and the fake
// remote: Result.Model names the side that answered.
func TestRouterWithPipeline(t *testing.T) {
	path := shareddata.Path(t, "models", "stories260K.gguf")
	p, err := New(context.Background(), path, WithThreads(1))
	if err != nil {
		t.Fatal(err)
	}
	api := newFakeAPI(t)
	r := NewRouter(p, newTestRemote(t, api))
	defer r.Close()
	ctx := context.Background()

	res, err := r.Generate(ctx, "Once upon a time, "+secretEmail, MaxTokens(4), Temperature(0))
	if err != nil {
		t.Fatal(err)
	}
	if res.Model != p.Name() || res.Model != path || res.Timings.GeneratedTokens == 0 {
		t.Errorf("private: answered by %q (%+v), want the local %q", res.Model, res.Timings, p.Name())
	}
	if remotePosts(api) != 0 {
		t.Errorf("the remote model was asked:\n%s", remoteBodies(api))
	}
	res, err = r.Generate(ctx, "Once upon a time", MaxTokens(4))
	if err != nil {
		t.Fatal(err)
	}
	if res.Model != "fake-model" || remotePosts(api) != 1 {
		t.Errorf("not private: answered by %q, %d remote requests", res.Model, remotePosts(api))
	}
}
