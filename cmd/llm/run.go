package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/peterh/liner"
	"golang.org/x/term"

	"github.com/llm-go/llm"
	"github.com/llm-go/llm/sampler"
	"github.com/llm-go/llm/tokenizer"
)

func init() {
	register(&command{
		name:    "run",
		usage:   "[MODEL] [flags]  (or --remote URL [MODEL])",
		summary: "chat with a model (one answer when stdin is not a terminal)",
		run:     runRun,
	})
}

// DefaultRunModel is what "llm run" chats with when no MODEL is given: a
// small instruct model (about 400 MB at Q4_K_M) with a proper chat template
// and an Apache-2.0 licence, quick enough on a laptop CPU.
const DefaultRunModel = "Qwen/Qwen2.5-0.5B-Instruct-GGUF:Q4_K_M"

// chatSession is the state of "llm run": the conversation, the system
// prompt and the sampling options, changed by the slash commands.
type chatSession struct {
	p        *llm.Pipeline
	gen      llm.Generator // with --remote, what answers instead of p
	model    string
	system   string
	messages []llm.Message
	sampling sampler.Options
	maxTok   int
	// think is --think: "" (reasoning shown apart if the model reasons by
	// itself), "true", "false" or a level; hideThinking leaves the
	// reasoning out, and gray prints it in gray (a terminal).
	think        string
	hideThinking bool
	lookup       int // --lookup: PromptLookup's draft tokens
	gray         bool
	out          io.Writer
	// answerCtx makes the context of one answer; Ctrl-C cancels it.
	answerCtx func() (context.Context, context.CancelFunc)
}

// lineReader reads the user's lines: liner on a terminal, scripted in tests.
type lineReader interface {
	Prompt(prompt string) (string, error)
	AppendHistory(item string)
}

func runRun(ctx context.Context, sio *stdio, args []string) error {
	var (
		verbose     bool
		grammarFile string
		system      string
		predict     int
		mf          modelFlags
		remote      remoteFlags
		s           chatSession
	)
	fs := newFlags("run", &verbose)
	registerSamplingFlags(fs, &s.sampling, &grammarFile)
	fs.StringVar(&system, "system", "", "system prompt")
	fs.IntVarP(&predict, "predict", "n", -1, "most tokens per answer (-1: no limit)")
	fs.StringVar(&s.think, "think", "", "ask a reasoning model to think first: true, false, or a reasoning effort high, medium or low (--think alone: true; give a value as --think=high)")
	fs.Lookup("think").NoOptDefVal = "true"
	fs.BoolVar(&s.hideThinking, "hidethinking", false, "do not show a reasoning model's reasoning")
	fs.IntVar(&s.lookup, "lookup", 0, "speculative decoding by prompt lookup: up to N draft tokens checked per step (0: off)")
	mf.register(fs)
	mf.registerDraft(fs)
	remote.register(fs)
	if err := parseFlags(fs, commands["run"], sio, args); err != nil {
		return err
	}
	if err := mf.check(); err != nil {
		return err
	}
	if _, err := thinkOption(s.think); err != nil {
		return usagef("--think: %v", err)
	}
	if s.lookup < 0 || s.lookup > llm.MaxPromptLookup {
		return usagef("--lookup must be 0 to %d, got %d", llm.MaxPromptLookup, s.lookup)
	}
	setupLogging(sio.err, verbose)
	if err := remote.check(fs); err != nil {
		return err
	}
	model := DefaultRunModel
	switch fs.NArg() {
	case 0:
		if remote.url != "" {
			model = "" // --remote-model, or the one the endpoint lists
			break
		}
		fmt.Fprintf(sio.err, "llm: no MODEL given: chatting with %s\n", model)
	case 1:
		model = fs.Arg(0)
	default:
		return usagef("at most one MODEL expected (a GGUF file, an HF directory or a Hub name), got %d", fs.NArg())
	}
	if remote.url == "" {
		if st, err := lookupPreset(model); err != nil {
			return err
		} else if st != nil {
			if err := applyPreset(fs, st, presetFlags{&s.sampling, &predict, &mf.ctxLen, &mf.threads}); err != nil {
				return err
			}
		}
	}
	if err := checkSampling(&s.sampling, grammarFile); err != nil {
		return err
	}
	if remote.url != "" {
		r, err := remote.open(model)
		if err != nil {
			return err
		}
		defer r.Close()
		s.gen, s.model = r, r.Name()
	} else {
		p, err := openPipeline(ctx, sio, model, &mf)
		if err != nil {
			return err
		}
		defer p.Close()
		s.p, s.model = p, model
		if !p.HasChatTemplate() {
			fmt.Fprintln(sio.err, "llm: this model has no chat template; the conversation is sent as plain text")
		}
	}
	s.system, s.maxTok, s.out = system, predict, sio.out

	in, isFile := sio.in.(*os.File)
	if !isFile || !term.IsTerminal(int(in.Fd())) {
		// Not a terminal: the whole input is one message, answered once.
		s.answerCtx = func() (context.Context, context.CancelFunc) { return context.WithCancel(ctx) }
		data, err := io.ReadAll(sio.in)
		if err != nil {
			return err
		}
		if msg := strings.TrimSpace(string(data)); msg != "" {
			return s.answer(msg)
		}
		return nil
	}

	// A terminal: the REPL. Ctrl-C during an answer stops that answer only.
	session := context.WithoutCancel(ctx)
	s.answerCtx = func() (context.Context, context.CancelFunc) {
		actx, cancel := context.WithCancel(session)
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt)
		go func() {
			select {
			case <-sig:
				cancel()
			case <-actx.Done():
			}
		}()
		return actx, func() { signal.Stop(sig); cancel() }
	}
	if out, ok := sio.out.(*os.File); ok && term.IsTerminal(int(out.Fd())) {
		s.gray = true
	}
	ln := liner.NewLiner()
	defer ln.Close()
	ln.SetCtrlCAborts(true)
	fmt.Fprintf(sio.out, "Chatting with %s. Type /? for help, /bye to leave.\n", s.model)
	return s.repl(ln)
}

// repl reads lines until /bye or end of input.
func (s *chatSession) repl(r lineReader) error {
	for {
		line, err := r.Prompt(">>> ")
		switch {
		case errors.Is(err, liner.ErrPromptAborted):
			fmt.Fprintln(s.out, "Use Ctrl-D or /bye to leave.")
			continue
		case errors.Is(err, io.EOF):
			fmt.Fprintln(s.out)
			return nil
		case err != nil:
			return err
		}
		if strings.HasPrefix(strings.TrimSpace(line), `"""`) {
			if line, err = s.multiline(r, strings.TrimSpace(line)[3:]); err != nil {
				return err
			}
		}
		text := strings.TrimSpace(line)
		if text == "" {
			continue
		}
		r.AppendHistory(line)
		if strings.HasPrefix(text, "/") {
			if done := s.command(text); done {
				return nil
			}
			continue
		}
		if err := s.answer(text); err != nil {
			fmt.Fprintf(s.out, "error: %v\n", err)
		}
	}
}

// multiline reads lines until one ends with """ (as in Ollama).
func (s *chatSession) multiline(r lineReader, first string) (string, error) {
	if i := strings.Index(first, `"""`); i >= 0 {
		return first[:i], nil
	}
	lines := []string{first}
	for {
		line, err := r.Prompt("... ")
		if err != nil {
			return "", err
		}
		if i := strings.Index(line, `"""`); i >= 0 {
			lines = append(lines, line[:i])
			return strings.Join(lines, "\n"), nil
		}
		lines = append(lines, line)
	}
}

// answer sends a user message and streams the reply. A cancelled answer
// keeps what was said so far in the conversation.
func (s *chatSession) answer(text string) error {
	s.messages = append(s.messages, llm.Message{Role: "user", Content: text})
	msgs := s.messages
	if s.system != "" {
		msgs = append([]llm.Message{{Role: "system", Content: s.system}}, s.messages...)
	}
	ctx, cancel := s.answerCtx()
	defer cancel()
	think, _ := thinkOption(s.think) // checked with the flag and by /set
	var reply, thinking strings.Builder
	var err error
	shown := false // reasoning is being shown
	for c, e := range s.generator().ChatStream(ctx, msgs, llm.Sampling(s.sampling), llm.MaxTokens(s.maxTok), think, llm.PromptLookup(s.lookup)) {
		if e != nil {
			err = e
			break
		}
		if c.Thinking {
			thinking.WriteString(c.Text)
			if !s.hideThinking {
				if !shown {
					fmt.Fprint(s.out, s.grayText("Thinking...\n"))
					shown = true
				}
				fmt.Fprint(s.out, s.grayText(c.Text))
			}
			continue
		}
		if shown && c.Text != "" {
			fmt.Fprint(s.out, s.grayText("\n...done thinking.\n\n"))
			shown = false
		}
		reply.WriteString(c.Text)
		fmt.Fprint(s.out, c.Text)
	}
	if shown {
		fmt.Fprint(s.out, s.grayText("\n...done thinking."))
	}
	fmt.Fprintln(s.out)
	if err != nil && ctx.Err() != nil {
		fmt.Fprintln(s.out, "(stopped)")
		err = nil
	}
	if err != nil {
		s.messages = s.messages[:len(s.messages)-1]
		return err
	}
	msg := llm.Message{Role: "assistant", Content: reply.String()}
	if thinking.Len() > 0 {
		msg.Extra = tokenizer.NewObject("thinking", thinking.String())
	}
	s.messages = append(s.messages, msg)
	return nil
}

// grayText is text in gray on a terminal, as it is elsewhere.
func (s *chatSession) grayText(text string) string {
	if !s.gray || text == "" {
		return text
	}
	return "\x1b[90m" + text + "\x1b[0m"
}

// thinkOption is the option for --think's value: by default the reasoning
// of a model that reasons by itself is shown apart.
func thinkOption(think string) (llm.GenerateOption, error) {
	switch think {
	case "":
		return llm.SeparateThinking(), nil
	case "true", "false":
		return llm.Think(think == "true"), nil
	case llm.ThinkHigh, llm.ThinkMedium, llm.ThinkLow:
		return llm.ThinkLevel(think), nil
	}
	return nil, fmt.Errorf("want true, false, high, medium or low, got %q", think)
}

// generator is what answers: the remote model with --remote, else the
// pipeline.
func (s *chatSession) generator() llm.Generator {
	if s.gen != nil {
		return s.gen
	}
	return s.p
}

const runHelp = `Commands:
  /set parameter NAME VALUE   set a sampling option by its Ollama name (temperature, top_k, top_p, min_p, seed, repeat_penalty, ...)
  /set system TEXT            set the system prompt
  /set think [LEVEL]          ask the model to think first (LEVEL: high, medium or low)
  /set nothink                ask the model to answer directly
  /show info|system|parameters|template
  /clear                      forget the conversation
  /save NAME, /load NAME      save or restore the conversation and settings
  /bye                        leave
Begin and end a message with """ to write several lines.`

// command runs a slash command; it returns true for /bye.
func (s *chatSession) command(text string) bool {
	fields := strings.Fields(text)
	switch fields[0] {
	case "/bye", "/exit":
		return true
	case "/?", "/help":
		fmt.Fprintln(s.out, runHelp)
	case "/clear":
		s.messages = nil
		fmt.Fprintln(s.out, "Cleared the conversation.")
	case "/set":
		s.set(fields[1:], text)
	case "/show":
		s.show(fields[1:])
	case "/save", "/load":
		if len(fields) != 2 {
			fmt.Fprintf(s.out, "usage: %s NAME\n", fields[0])
			break
		}
		if err := s.saveOrLoad(fields[0] == "/save", fields[1]); err != nil {
			fmt.Fprintf(s.out, "error: %v\n", err)
		}
	default:
		fmt.Fprintf(s.out, "Unknown command %s. Type /? for help.\n", fields[0])
	}
	return false
}

func (s *chatSession) set(args []string, text string) {
	switch {
	case len(args) >= 1 && args[0] == "system":
		s.system = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(strings.TrimPrefix(text, "/set")), "system"))
		fmt.Fprintln(s.out, "Set the system prompt.")
	case len(args) == 1 && args[0] == "nothink":
		s.think = "false"
		fmt.Fprintln(s.out, "Set 'nothink' mode.")
	case len(args) <= 2 && len(args) >= 1 && args[0] == "think":
		level := "true"
		if len(args) == 2 {
			level = args[1]
		}
		if _, err := thinkOption(level); err != nil || level == "false" {
			fmt.Fprintln(s.out, "usage: /set think [high|medium|low]")
			return
		}
		s.think = level
		fmt.Fprintln(s.out, "Set 'think' mode.")
	case len(args) == 3 && args[0] == "parameter":
		var v any = args[2]
		if f, err := strconv.ParseFloat(args[2], 64); err == nil {
			v = f
		}
		if args[1] == "num_predict" {
			if n, err := strconv.Atoi(args[2]); err == nil && n >= -1 {
				s.maxTok = n
				fmt.Fprintf(s.out, "Set num_predict to %d.\n", n)
				return
			}
		}
		if err := s.sampling.SetOllama(args[1], v); err != nil {
			fmt.Fprintf(s.out, "error: %v\n", err)
			return
		}
		fmt.Fprintf(s.out, "Set %s to %s.\n", args[1], args[2])
	default:
		fmt.Fprintln(s.out, "usage: /set parameter NAME VALUE, /set system TEXT, /set think [LEVEL] or /set nothink")
	}
}

func (s *chatSession) show(args []string) {
	what := "info"
	if len(args) > 0 {
		what = args[0]
	}
	if s.p == nil && (what == "info" || what == "template") {
		// --remote: there is no model here to describe.
		if what == "info" {
			fmt.Fprintf(s.out, "%s, %d messages so far\n", s.gen, len(s.messages))
		} else {
			fmt.Fprintln(s.out, "(a remote model: its server applies the chat template)")
		}
		return
	}
	switch what {
	case "info":
		info := s.p.Model().Info()
		fmt.Fprintf(s.out, "%s: %s, %s parameters, context %d, %d messages so far\n",
			s.model, info.Description, humanCount(info.Parameters), info.TrainContext, len(s.messages))
	case "system":
		fmt.Fprintln(s.out, s.system)
	case "parameters":
		o := s.sampling
		fmt.Fprintf(s.out, "temperature %g, top_k %d, top_p %g, min_p %g, repeat_penalty %g, seed %d, num_predict %d\n",
			o.Temperature, o.TopK, o.TopP, o.MinP, o.RepeatPenalty, o.Seed, s.maxTok)
	case "template":
		if tmpl, ok := s.p.Model().ChatTemplate(""); ok {
			fmt.Fprintln(s.out, tmpl)
		} else {
			fmt.Fprintln(s.out, "(no chat template: the conversation is sent as plain text)")
		}
	default:
		fmt.Fprintln(s.out, "usage: /show info|system|parameters|template")
	}
}

// savedSession is what /save writes.
type savedSession struct {
	System   string          `json:"system"`
	Messages []llm.Message   `json:"messages"`
	Sampling sampler.Options `json:"sampling"`
	MaxTok   int             `json:"num_predict"`
	Think    string          `json:"think,omitempty"` // --think / /set think: "", "true", "false" or a level
}

func sessionPath(name string) (string, error) {
	if name == "" || strings.ContainsAny(name, `/\`) || name == "." || name == ".." {
		return "", fmt.Errorf("a session name is a plain name, not %q", name)
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "llm", "sessions", name+".json"), nil
}

func (s *chatSession) saveOrLoad(save bool, name string) error {
	path, err := sessionPath(name)
	if err != nil {
		return err
	}
	if save {
		data, err := json.MarshalIndent(savedSession{s.system, s.messages, s.sampling, s.maxTok, s.think}, "", "  ")
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(s.out, "Saved the session as %s.\n", name)
		return nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var saved savedSession
	if err := json.Unmarshal(data, &saved); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := saved.Sampling.Validate(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if _, err := thinkOption(saved.Think); err != nil {
		return fmt.Errorf("%s: think: %w", path, err)
	}
	s.system, s.messages, s.sampling, s.maxTok, s.think = saved.System, saved.Messages, saved.Sampling, saved.MaxTok, saved.Think
	fmt.Fprintf(s.out, "Loaded session %s (%d messages).\n", name, len(s.messages))
	return nil
}
