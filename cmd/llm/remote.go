package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/llm-go/llm"
)

// remoteFlags send a command's generation to an OpenAI-compatible
// endpoint (--remote) instead of loading a model.
type remoteFlags struct {
	url    string
	model  string
	keyEnv string
}

func (f *remoteFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.url, "remote", "", "use the OpenAI-compatible API at this URL instead of a local model (e.g. https://router.huggingface.co/v1, http://127.0.0.1:8080/v1)")
	fs.StringVar(&f.model, "remote-model", "", "the model to ask for with --remote (default: the one model the endpoint lists)")
	fs.StringVar(&f.keyEnv, "api-key-env", "", "the environment variable holding the API key for --remote (default: HF_TOKEN for huggingface.co, OPENAI_API_KEY for api.openai.com, none elsewhere)")
}

// localOnlyFlags are the flags that mean nothing with --remote.
var localOnlyFlags = []string{"threads", "ctx-size", "ngl", "main-gpu", "tensor-split", "split-mode", "no-repack",
	"flash-attn", "cache-type-k", "cache-type-v", "draft", "draft-max", "ngl-draft"}

// check rejects the remote flags without --remote, and the local-only
// flags with it.
func (f *remoteFlags) check(fs *pflag.FlagSet) error {
	if f.url == "" {
		for _, name := range []string{"remote-model", "api-key-env"} {
			if fs.Changed(name) {
				return usagef("--%s needs --remote URL", name)
			}
		}
		return nil
	}
	for _, name := range localOnlyFlags {
		if fs.Lookup(name) != nil && fs.Changed(name) {
			return usagef("--%s sets up a local model and has no effect with --remote", name)
		}
	}
	return nil
}

// defaultKeyEnv names the variable whose key goes to host when
// --api-key-env is not given: a token is only sent to its own service.
func defaultKeyEnv(host string) string {
	host = strings.ToLower(host)
	switch {
	case host == "huggingface.co" || strings.HasSuffix(host, ".huggingface.co"):
		return "HF_TOKEN"
	case host == "api.openai.com":
		return "OPENAI_API_KEY"
	}
	return ""
}

// open returns the remote model; model names it when --remote-model does
// not.
func (f *remoteFlags) open(model string) (*llm.RemoteModel, error) {
	if f.model != "" && model != "" && f.model != model {
		return nil, usagef("the model is named twice: %q and --remote-model %q", model, f.model)
	}
	if f.model != "" {
		model = f.model
	}
	u, err := url.Parse(f.url)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usagef("--remote %q: want an http(s) URL such as https://router.huggingface.co/v1", f.url)
	}
	opts := []llm.RemoteOption{llm.RemoteModelName(model)}
	env := f.keyEnv
	if env == "" {
		env = defaultKeyEnv(u.Hostname())
	} else if os.Getenv(env) == "" {
		return nil, usagef("--api-key-env %s: the variable is not set", env)
	}
	if env != "" {
		opts = append(opts, llm.RemoteAPIKeyFromEnv(env))
	}
	r, err := llm.Remote(f.url, opts...)
	if err != nil {
		return nil, usagef("--remote: %v", err)
	}
	return r, nil
}

// remoteHint adds advice to an error from an endpoint without
// /completions (chat-only APIs such as Hugging Face's router).
func remoteHint(err error) error {
	var re *llm.RemoteError
	if errors.As(err, &re) && re.StatusCode == 404 && strings.HasSuffix(re.URL, "/completions") &&
		!strings.HasSuffix(re.URL, "/chat/completions") {
		return fmt.Errorf("%w (the endpoint may answer only chat: try llm run --remote)", err)
	}
	return err
}

// runGenerateRemote is generate with --remote: the arguments are [MODEL]
// [PROMPT] (one argument is the prompt), the model may also come from -m
// or --remote-model.
func runGenerateRemote(ctx context.Context, sio *stdio, o generateOptions, rest []string) error {
	switch {
	case len(rest) > 2:
		return usagef("with --remote, at most a MODEL and a PROMPT are expected, got %d arguments (quote the prompt)", len(rest))
	case len(rest) == 2 && o.model != "":
		return usagef("the model is named twice: -m %q and %q", o.model, rest[0])
	case len(rest) == 2:
		o.model, rest = rest[0], rest[1:]
	}
	if o.predict < -1 {
		return usagef("--predict must be -1 or more, got %d", o.predict)
	}
	if err := checkSampling(&o.sampling, o.grammarFile); err != nil {
		return err
	}
	r, err := o.remote.open(o.model)
	if err != nil {
		return err
	}
	prompt := ""
	if len(rest) == 1 {
		prompt = rest[0]
	} else {
		data, err := io.ReadAll(sio.in)
		if err != nil {
			r.Close()
			return fmt.Errorf("reading the prompt from stdin: %w", err)
		}
		prompt = strings.TrimSuffix(string(data), "\n")
	}
	return generateRemote(ctx, sio, o, r, prompt)
}

// generateRemote is "llm generate --remote": the prompt is continued by
// the endpoint's /completions, streamed to stdout.
func generateRemote(ctx context.Context, sio *stdio, o generateOptions, r *llm.RemoteModel, prompt string) error {
	defer r.Close()
	start := time.Now()
	var first time.Duration
	chunks := 0
	var err error
	opts := []llm.GenerateOption{llm.Sampling(o.sampling), llm.MaxTokens(o.predict)}
	if o.fim {
		opts = append(opts, llm.Suffix(o.suffix))
	}
	for c, e := range r.Stream(ctx, prompt, opts...) {
		if e != nil {
			err = e
			break
		}
		if chunks == 0 {
			first = time.Since(start)
		}
		chunks++
		if _, werr := io.WriteString(sio.out, c.Text); werr != nil {
			return werr
		}
	}
	fmt.Fprintln(sio.out)
	if err != nil {
		if ctx.Err() != nil {
			return errors.New("interrupted")
		}
		return remoteHint(err)
	}
	if o.verbose {
		fmt.Fprintf(sio.err, "remote: %s\n", r)
		fmt.Fprintf(sio.err, "first text after %v, %d chunks in %v\n", first.Round(time.Millisecond), chunks,
			time.Since(start).Round(time.Millisecond))
	}
	return nil
}
