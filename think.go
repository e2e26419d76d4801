package llm

import "strings"

// The tags reasoning models (DeepSeek-R1, Qwen3, ...) put around their
// reasoning, before the answer.
const (
	thinkOpen  = "<think>"
	thinkClose = "</think>"
	blanks     = " \t\r\n"
)

// Think asks a reasoning model to think first (on) or to answer directly
// (off), as Ollama's think option does (Chat only). It sets the chat
// template's enable_thinking variable (Qwen3's, GLM's, SmolLM3's switch)
// and thinking (DeepSeek-V3.1's, Granite's); other TemplateVars are kept.
// With on, the reasoning is separated from the answer: Result.Thinking
// holds it, without its <think> tags, and Result.Text the answer; streamed
// chunks of reasoning have Chunk.Thinking set. A model in OpenAI's harmony
// format (gpt-oss) always reasons, and its reasoning (the analysis
// channel) is always separated in a chat; ThinkLevel sets how much.
func Think(on bool) GenerateOption {
	return func(g *genConfig) {
		if g.thinkLevel != "" && g.thinkVars["reasoning_effort"] {
			// A later Think undoes an earlier ThinkLevel's effort.
			extra := make(map[string]any, len(g.extra))
			for k, v := range g.extra {
				if k != "reasoning_effort" {
					extra[k] = v
				}
			}
			g.extra = extra
		}
		g.thinkLevel = ""
		g.setVars(map[string]any{"enable_thinking": on, "thinking": on})
		g.markThinkVars("enable_thinking", "thinking")
		g.splitThinking = on
	}
}

// markThinkVars records template variables set by Think or ThinkLevel
// rather than by TemplateVars.
func (g *genConfig) markThinkVars(keys ...string) {
	m := make(map[string]bool, len(g.thinkVars)+len(keys))
	for k := range g.thinkVars {
		m[k] = true
	}
	for _, k := range keys {
		m[k] = true
	}
	g.thinkVars = m
}

// Reasoning efforts for ThinkLevel.
const (
	ThinkLow    = "low"
	ThinkMedium = "medium"
	ThinkHigh   = "high"
)

// ThinkLevel is Think(true) with a reasoning effort, ThinkLow, ThinkMedium
// or ThinkHigh (Ollama's think levels, OpenAI's reasoning_effort): it also
// sets the chat template's reasoning_effort, which gpt-oss's template
// writes into its system message. Other levels are an error.
func ThinkLevel(level string) GenerateOption {
	return func(g *genConfig) {
		Think(true)(g)
		g.setVars(map[string]any{"reasoning_effort": level})
		g.markThinkVars("reasoning_effort")
		g.thinkLevel = level
	}
}

// setVars sets chat template variables, keeping the others.
func (g *genConfig) setVars(vars map[string]any) {
	extra := make(map[string]any, len(g.extra)+len(vars))
	for k, v := range g.extra {
		extra[k] = v
	}
	for k, v := range vars {
		extra[k] = v
	}
	g.extra = extra
}

// SeparateThinking separates a reasoning model's <think> block from the
// answer as Think(true) does, without asking the chat template anything:
// for a model that reasons by itself, as llama-server's default reasoning
// format does.
func SeparateThinking() GenerateOption { return func(g *genConfig) { g.splitThinking = true } }

// thinkOpened reports whether a chat prompt ends inside an opened <think>
// block, as templates that make the model reason (DeepSeek-R1's) leave it.
func thinkOpened(prompt string) bool {
	return strings.HasSuffix(strings.TrimRight(prompt, blanks), thinkOpen)
}

// SplitThinking separates a reasoning model's reply into its reasoning and
// its answer. The reasoning is the <think> block at the start of the reply
// (or, when open says the prompt opened it, everything up to </think>),
// without its tags and the blank space around them; the answer is what
// follows. A block that never closes is all reasoning (the reply was cut
// short); a reply without one is all answer.
func SplitThinking(reply string, open bool) (thinking, answer string) {
	s := newThinkSplitter(open)
	var t, a strings.Builder
	for _, p := range append(s.push(reply), s.flush()...) {
		if p.thinking {
			t.WriteString(p.text)
		} else {
			a.WriteString(p.text)
		}
	}
	return t.String(), a.String()
}

// thinkSplitter routes a reply's text to reasoning or answer as it
// streams, holding back only what may still be a tag or blank space
// around one.
type thinkSplitter struct {
	state   thinkState
	pending string
}

type thinkState int

const (
	thinkStart  thinkState = iota // before the first non-blank text: a <think> may come
	thinkIn                       // <think> seen: blank space skipped
	thinkInText                   // in the reasoning
	thinkAfter                    // </think> seen: blank space skipped
	thinkOut                      // in the answer
)

// piece is text of the reply, reasoning or answer.
type piece struct {
	text     string
	thinking bool
}

// newThinkSplitter starts a splitter; open says the prompt already opened
// the <think> block.
func newThinkSplitter(open bool) *thinkSplitter {
	if open {
		return &thinkSplitter{state: thinkIn}
	}
	return &thinkSplitter{state: thinkStart}
}

// push takes the next text of the reply and returns what is known of it.
func (s *thinkSplitter) push(text string) []piece {
	s.pending += text
	var out []piece
	for {
		switch s.state {
		case thinkStart:
			t := strings.TrimLeft(s.pending, blanks)
			if rest, ok := strings.CutPrefix(t, thinkOpen); ok {
				s.pending, s.state = rest, thinkIn
				continue
			}
			if strings.HasPrefix(thinkOpen, t) {
				return out // blanks so far, or the start of the tag
			}
			s.state = thinkOut
		case thinkIn:
			if s.pending = strings.TrimLeft(s.pending, blanks); s.pending == "" {
				return out
			}
			s.state = thinkInText
		case thinkInText:
			if before, after, ok := strings.Cut(s.pending, thinkClose); ok {
				if before = strings.TrimRight(before, blanks); before != "" {
					out = append(out, piece{before, true})
				}
				s.pending, s.state = after, thinkAfter
				continue
			}
			// Hold back what may become </think>, and the blank space
			// before it, which the reasoning does not end with.
			hold := tagPrefixLen(s.pending, thinkClose)
			body := s.pending[:len(s.pending)-hold]
			hold += len(body) - len(strings.TrimRight(body, blanks))
			if n := len(s.pending) - hold; n > 0 {
				out = append(out, piece{s.pending[:n], true})
				s.pending = s.pending[n:]
			}
			return out
		case thinkAfter:
			if s.pending = strings.TrimLeft(s.pending, blanks); s.pending == "" {
				return out
			}
			s.state = thinkOut
		default: // thinkOut
			if s.pending != "" {
				out = append(out, piece{s.pending, false})
				s.pending = ""
			}
			return out
		}
	}
}

// flush returns what was held back, when the reply ends.
func (s *thinkSplitter) flush() []piece {
	p := s.pending
	s.pending = ""
	switch s.state {
	case thinkIn, thinkAfter:
		return nil // only blank space
	case thinkInText:
		if p = strings.TrimRight(p, blanks); p == "" {
			return nil
		}
		return []piece{{p, true}}
	}
	if p == "" {
		return nil
	}
	return []piece{{p, false}}
}

// tagPrefixLen returns the length of the longest suffix of s that is a
// proper prefix of tag: text that may yet become the tag.
func tagPrefixLen(s, tag string) int {
	for n := min(len(s), len(tag)-1); n > 0; n-- {
		if strings.HasSuffix(s, tag[:n]) {
			return n
		}
	}
	return 0
}
