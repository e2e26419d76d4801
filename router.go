package llm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"reflect"
	"regexp"
	"strings"

	"github.com/llm-go/llm/tokenizer"
)

// Errors of a Router that callers can test with errors.Is.
var (
	// ErrPrivateInput means a request was private and could not be
	// answered locally, so it was refused rather than sent to the remote
	// model. The error also matches the local failure (or
	// ErrLocalUnavailable).
	ErrPrivateInput = errors.New("llm: private input is not sent to the remote model")
	// ErrLocalUnavailable means the router has no local model.
	ErrLocalUnavailable = errors.New("llm: no local model")
)

// privateKey is the context key of WithPrivate.
type privateKey struct{}

// WithPrivate marks everything done with ctx as private: a Router answers
// it with the local model only, Embed included. It is the context's
// counterpart of the Private option, for code that handles private data
// several calls deep, and for Embed, which takes no options.
func WithPrivate(ctx context.Context) context.Context {
	return context.WithValue(ctx, privateKey{}, true)
}

// IsPrivate reports whether ctx was marked with WithPrivate.
func IsPrivate(ctx context.Context) bool {
	v, _ := ctx.Value(privateKey{}).(bool)
	return v
}

// Route is where a Router sends a request. The zero Route is RouteLocal,
// the safe choice.
type Route int

// Routes.
const (
	RouteLocal  Route = iota // the local model
	RouteRemote              // the remote model
)

// String returns "local" or "remote".
func (r Route) String() string {
	switch r {
	case RouteLocal:
		return "local"
	case RouteRemote:
		return "remote"
	}
	return fmt.Sprintf("Route(%d)", int(r))
}

// Op is the kind of a routed request.
type Op string

// The operations of a Generator.
const (
	OpGenerate Op = "generate" // Generate and Stream
	OpChat     Op = "chat"     // Chat and ChatStream
	OpEmbed    Op = "embed"    // Embed
)

// Request is what a RoutePolicy decides on.
type Request struct {
	Op       Op
	Stream   bool      // Stream or ChatStream
	Prompt   string    // Generate and Stream
	Messages []Message // Chat and ChatStream
	Texts    []string  // Embed
	// MaxTokens is the MaxTokens option (-1: no limit).
	MaxTokens int
	// Private is true when the request was marked private (the Private
	// option or WithPrivate) or a Detector found private data in its
	// input. A private request only ever goes to the local model.
	Private bool
	// Findings names what the detectors found, such as "e-mail address"
	// (the names, never the matched text, so they can be logged).
	Findings []string
}

// RoutePolicy picks the model for a request.
type RoutePolicy func(Request) Route

// PreferRemote is the default policy: private requests and embeddings go
// to the local model (vectors of two models are not comparable, so all of
// them come from one), the rest to the remote model.
func PreferRemote(req Request) Route {
	if req.Private || req.Op == OpEmbed {
		return RouteLocal
	}
	return RouteRemote
}

// PreferLocal sends everything to the local model; with RouterFallback,
// the remote model answers what is not private when the local one fails.
func PreferLocal(Request) Route { return RouteLocal }

// Detector finds one kind of private data in text.
type Detector struct {
	// Name says what it finds, such as "e-mail address"; it is what
	// Request.Findings and errors report.
	Name string
	// Match reports whether text contains such data.
	Match func(text string) bool
}

// PatternDetector is a Detector that matches re, and, when valid is not
// nil, accepts a match only when valid(match) is true (a checksum, say).
func PatternDetector(name string, re *regexp.Regexp, valid func(match string) bool) Detector {
	return Detector{Name: name, Match: func(text string) bool {
		if valid == nil {
			return re.MatchString(text)
		}
		for _, m := range re.FindAllString(text, -1) {
			if valid(m) {
				return true
			}
		}
		return false
	}}
}

var (
	emailRE = regexp.MustCompile(`(?i)[a-z0-9._%+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}`)
	ibanRE  = regexp.MustCompile(`\b[A-Z]{2}[0-9]{2}(?:[ ]?[A-Z0-9]){11,30}\b`)
	cardRE  = regexp.MustCompile(`\b(?:[0-9][ -]?){12,18}[0-9]\b`)
	phoneRE = regexp.MustCompile(`(?:\+[1-9][0-9]{0,2}[ .-]?(?:\(?[0-9]{1,4}\)?[ .-]?){1,5}[0-9]{2,4}\b` +
		`|\(?\b[2-9][0-9]{2}\)?[ .-][0-9]{3}[ .-][0-9]{4}\b)`)
	secretRE = regexp.MustCompile(`\b(?:sk-(?:proj-)?[A-Za-z0-9_-]{20,}|hf_[A-Za-z0-9]{30,}|gh[pousr]_[A-Za-z0-9]{36,}` +
		`|github_pat_[A-Za-z0-9_]{40,}|AKIA[0-9A-Z]{16}|xox[abpr]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35})\b` +
		`|-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----`)
)

// DefaultDetectors returns the detectors a Router uses unless told
// otherwise: e-mail addresses, IBANs (with their mod-97 check digits),
// payment card numbers (13 to 19 digits passing the Luhn check),
// international (+CC …) and North American phone numbers, and access
// tokens and private keys (OpenAI, Hugging Face, GitHub, AWS, Slack and
// Google keys, PEM private keys).
func DefaultDetectors() []Detector {
	return []Detector{
		PatternDetector("e-mail address", emailRE, nil),
		PatternDetector("IBAN", ibanRE, validIBAN),
		PatternDetector("payment card number", cardRE, validCard),
		PatternDetector("phone number", phoneRE, validPhone),
		PatternDetector("access token or private key", secretRE, nil),
	}
}

// validIBAN reports whether s, without its spaces, or a prefix of it of
// at least 15 characters (the shortest IBAN) has valid check digits.
func validIBAN(s string) bool {
	s = strings.ReplaceAll(s, " ", "")
	for n := min(len(s), 34); n >= 15; n-- {
		if ibanMod97(s[:n]) == 1 {
			return true
		}
	}
	return false
}

// ibanMod97 is the IBAN checksum: the first four characters moved to the
// end, letters as 10 to 35, the number modulo 97.
func ibanMod97(s string) int {
	r := 0
	for _, c := range s[4:] + s[:4] {
		switch {
		case c >= '0' && c <= '9':
			r = (r*10 + int(c-'0')) % 97
		case c >= 'A' && c <= 'Z':
			r = (r*100 + int(c-'A') + 10) % 97
		default:
			return -1
		}
	}
	return r
}

// validCard reports whether the digits of s pass the Luhn check and are
// not all the same.
func validCard(s string) bool {
	var digits []int
	for _, c := range s {
		if c >= '0' && c <= '9' {
			digits = append(digits, int(c-'0'))
		}
	}
	if len(digits) < 13 || len(digits) > 19 {
		return false
	}
	same := true
	sum := 0
	for i := range digits {
		d := digits[len(digits)-1-i]
		if i%2 == 1 {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
		same = same && digits[i] == digits[0]
	}
	return !same && sum%10 == 0
}

// validPhone accepts 10 to 15 digits (E.164 allows 15).
func validPhone(s string) bool {
	n := 0
	for _, c := range s {
		if c >= '0' && c <= '9' {
			n++
		}
	}
	return n >= 10 && n <= 15
}

// RouterOption configures NewRouter.
type RouterOption func(*Router)

// RouterPolicy sets the policy that picks local or remote for requests
// that are not private (default PreferRemote). A private request goes to
// the local model whatever the policy says.
func RouterPolicy(p RoutePolicy) RouterOption { return func(r *Router) { r.policy = p } }

// RouterDetectors sets the detectors of private input (default:
// DefaultDetectors). With none, only requests marked with Private or
// WithPrivate are private.
func RouterDetectors(d ...Detector) RouterOption {
	return func(r *Router) { r.detectors = append([]Detector(nil), d...) }
}

// RouterFallback lets the other model answer a request that is not
// private when the chosen one fails (a stream only before its first
// chunk). Private requests never fall back to the remote model.
func RouterFallback() RouterOption { return func(r *Router) { r.fallback = true } }

// RouterOnRoute calls fn each time the router sends a request to a model
// (again for a fallback), for logging or auditing.
func RouterOnRoute(fn func(Request, Route)) RouterOption { return func(r *Router) { r.onRoute = fn } }

// Router is a Generator that sends each request to a local or a remote
// model. Input marked private (the Private option, or a context from
// WithPrivate) or in which a Detector finds private data (by default
// e-mail addresses, IBANs, card and phone numbers, access tokens) only
// ever goes to the local model: when there is none, or it fails, the
// router returns ErrPrivateInput instead of asking the remote model. A
// RoutePolicy places the rest. Result.Model names the model that
// answered. A Router is safe for concurrent use when its models are.
type Router struct {
	local, remote Generator
	policy        RoutePolicy
	detectors     []Detector
	fallback      bool
	onRoute       func(Request, Route)
}

var _ Generator = (*Router)(nil)

// NewRouter returns a router between a local and a remote model. Either
// may be nil (a model that failed to load, or no remote endpoint): then
// everything goes to the other, except private input, which is refused
// without a local model.
func NewRouter(local, remote Generator, opts ...RouterOption) *Router {
	r := &Router{local: nilIfNil(local), remote: nilIfNil(remote), policy: PreferRemote, detectors: DefaultDetectors()}
	for _, o := range opts {
		o(r)
	}
	if r.policy == nil {
		r.policy = PreferRemote
	}
	return r
}

// nilIfNil turns a nil pointer in an interface (a *Pipeline that failed
// to load) into a nil Generator.
func nilIfNil(g Generator) Generator {
	if g == nil {
		return nil
	}
	if v := reflect.ValueOf(g); v.Kind() == reflect.Pointer && v.IsNil() {
		return nil
	}
	return g
}

// Local returns the local model (nil when there is none).
func (r *Router) Local() Generator { return r.local }

// Remote returns the remote model (nil when there is none).
func (r *Router) Remote() Generator { return r.remote }

// Name names both models: "router(local: NAME, remote: NAME)".
func (r *Router) Name() string {
	name := func(g Generator) string {
		if g == nil {
			return "none"
		}
		return g.Name()
	}
	return "router(local: " + name(r.local) + ", remote: " + name(r.remote) + ")"
}

// Close closes both models.
func (r *Router) Close() error {
	var errs []error
	for _, g := range []Generator{r.local, r.remote} {
		if g != nil {
			errs = append(errs, g.Close())
		}
	}
	return errors.Join(errs...)
}

// Classify returns the Request the router makes of a call, with its
// Private flag and Findings, without sending it anywhere: to show a user
// where their input would go.
func (r *Router) Classify(ctx context.Context, req Request, opts ...GenerateOption) Request {
	g, _ := remoteGenConfig(opts)
	req.MaxTokens = g.maxTokens
	req.Private = g.private || IsPrivate(ctx)
	req.Findings = nil
	seen := map[string]bool{}
	for _, text := range requestTexts(req) {
		for _, d := range r.detectors {
			if d.Match != nil && !seen[d.Name] && d.Match(text) {
				seen[d.Name] = true
				req.Findings = append(req.Findings, d.Name)
			}
		}
	}
	if len(req.Findings) > 0 {
		req.Private = true
	}
	return req
}

// requestTexts returns the text of a request's input.
func requestTexts(req Request) []string {
	texts := append([]string{req.Prompt}, req.Texts...)
	for _, m := range req.Messages {
		switch c := m.Content.(type) {
		case nil:
		case string:
			texts = append(texts, c)
		case []tokenizer.Part:
			for _, p := range c {
				texts = append(texts, p.Text)
				if p.Extra != nil {
					if data, err := json.Marshal(p.Extra); err == nil {
						texts = append(texts, string(data))
					}
				}
			}
		default:
			if data, err := json.Marshal(c); err == nil {
				texts = append(texts, string(data))
			}
		}
		for _, tc := range m.ToolCalls {
			if args, err := argumentString(tc.Function.Arguments); err == nil {
				texts = append(texts, args)
			}
		}
		if m.Extra != nil {
			if data, err := json.Marshal(m.Extra); err == nil {
				texts = append(texts, string(data))
			}
		}
	}
	return texts
}

// step is one model to try.
type step struct {
	route Route
	gen   Generator
}

// plan returns the models to try, in order.
func (r *Router) plan(req Request) ([]step, error) {
	choice := r.policy(req)
	if req.Private {
		if r.local == nil {
			return nil, r.refusal(req, ErrLocalUnavailable)
		}
		return []step{{RouteLocal, r.local}}, nil
	}
	first, second := step{RouteRemote, r.remote}, step{RouteLocal, r.local}
	if choice != RouteRemote {
		first, second = second, first
	}
	var steps []step
	if first.gen != nil {
		steps = append(steps, first)
	}
	if second.gen != nil && (first.gen == nil || r.fallback) {
		steps = append(steps, second)
	}
	if len(steps) == 0 {
		return nil, fmt.Errorf("llm: router: neither a local nor a remote model: %w", ErrLocalUnavailable)
	}
	return steps, nil
}

// refusal is the error of a private request the local model could not
// answer.
func (r *Router) refusal(req Request, cause error) error {
	why := "marked private"
	if len(req.Findings) > 0 {
		why = "it contains: " + strings.Join(req.Findings, ", ")
	}
	var msg string
	if errors.Is(cause, ErrLocalUnavailable) && r.local == nil {
		msg = fmt.Sprintf("llm: router: private input (%s) and no local model: not sent to the remote model", why)
	} else {
		msg = fmt.Sprintf("llm: router: private input (%s), not sent to the remote model, and the local model %s failed: %v",
			why, r.local.Name(), cause)
	}
	return &markedError{msg: msg, mark: ErrPrivateInput, err: cause}
}

// failure wraps the error of step s.
func (r *Router) failure(req Request, s step, err error) error {
	if req.Private {
		return r.refusal(req, err)
	}
	return err
}

// routed runs call on the planned models until one succeeds.
func routed[T any](ctx context.Context, r *Router, req Request, call func(Generator) (T, error)) (T, error) {
	var zero T
	steps, err := r.plan(req)
	if err != nil {
		return zero, err
	}
	var errs []error
	for _, s := range steps {
		if r.onRoute != nil {
			r.onRoute(req, s.route)
		}
		v, err := call(s.gen)
		if err == nil {
			return v, nil
		}
		err = r.failure(req, s, err)
		if len(errs) == 0 && (len(steps) == 1 || ctx.Err() != nil) {
			return zero, err // the model's own error, which names its side
		}
		errs = append(errs, fmt.Errorf("%s model %s: %w", s.route, s.gen.Name(), err))
		if ctx.Err() != nil {
			break
		}
	}
	return zero, fmt.Errorf("llm: router: every model failed: %w", errors.Join(errs...))
}

// result fills in Result.Model when a Generator left it empty.
func result(g Generator) func(*Result, error) (*Result, error) {
	return func(res *Result, err error) (*Result, error) {
		if res != nil && res.Model == "" {
			res.Model = g.Name()
		}
		return res, err
	}
}

// Generate continues prompt with the model the router picks.
func (r *Router) Generate(ctx context.Context, prompt string, opts ...GenerateOption) (*Result, error) {
	req := r.Classify(ctx, Request{Op: OpGenerate, Prompt: prompt}, opts...)
	return routed(ctx, r, req, func(g Generator) (*Result, error) {
		return result(g)(g.Generate(ctx, prompt, opts...))
	})
}

// Chat answers the conversation with the model the router picks.
func (r *Router) Chat(ctx context.Context, messages []Message, opts ...GenerateOption) (*Result, error) {
	req := r.Classify(ctx, Request{Op: OpChat, Messages: messages}, opts...)
	return routed(ctx, r, req, func(g Generator) (*Result, error) {
		return result(g)(g.Chat(ctx, messages, opts...))
	})
}

// Embed embeds texts with the model the router picks (by default the
// local one: see PreferRemote).
func (r *Router) Embed(ctx context.Context, texts ...string) ([][]float32, error) {
	req := r.Classify(ctx, Request{Op: OpEmbed, Texts: texts})
	return routed(ctx, r, req, func(g Generator) ([][]float32, error) { return g.Embed(ctx, texts...) })
}

// Stream continues prompt with the model the router picks. Chunks do not
// say which model made them: RouterOnRoute or Classify tell.
func (r *Router) Stream(ctx context.Context, prompt string, opts ...GenerateOption) iter.Seq2[Chunk, error] {
	req := r.Classify(ctx, Request{Op: OpGenerate, Stream: true, Prompt: prompt}, opts...)
	return r.stream(ctx, req, func(g Generator) iter.Seq2[Chunk, error] { return g.Stream(ctx, prompt, opts...) })
}

// ChatStream answers the conversation with the model the router picks,
// yielding the reply as it is made.
func (r *Router) ChatStream(ctx context.Context, messages []Message, opts ...GenerateOption) iter.Seq2[Chunk, error] {
	req := r.Classify(ctx, Request{Op: OpChat, Stream: true, Messages: messages}, opts...)
	return r.stream(ctx, req, func(g Generator) iter.Seq2[Chunk, error] { return g.ChatStream(ctx, messages, opts...) })
}

// stream yields the chunks of the first planned model that starts
// answering; with RouterFallback, a model that fails before its first
// chunk gives way to the next.
func (r *Router) stream(ctx context.Context, req Request, start func(Generator) iter.Seq2[Chunk, error]) iter.Seq2[Chunk, error] {
	return func(yield func(Chunk, error) bool) {
		steps, err := r.plan(req)
		if err != nil {
			yield(Chunk{}, err)
			return
		}
		var errs []error
		for i, s := range steps {
			if r.onRoute != nil {
				r.onRoute(req, s.route)
			}
			started := false
			var failed error
			for c, err := range start(s.gen) {
				if err != nil {
					failed = err
					break
				}
				started = true
				if !yield(c, nil) {
					return
				}
			}
			if failed == nil {
				return
			}
			failed = r.failure(req, s, failed)
			if started || i == len(steps)-1 || ctx.Err() != nil {
				if len(errs) > 0 {
					errs = append(errs, fmt.Errorf("%s model %s: %w", s.route, s.gen.Name(), failed))
					failed = fmt.Errorf("llm: router: every model failed: %w", errors.Join(errs...))
				}
				yield(Chunk{}, failed)
				return
			}
			errs = append(errs, fmt.Errorf("%s model %s: %w", s.route, s.gen.Name(), failed))
		}
	}
}
