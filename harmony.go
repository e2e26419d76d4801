package llm

import (
	"strings"
)

// OpenAI's harmony format, which gpt-oss speaks: a reply is a series of
// messages, each a header and a body,
//
//	<|channel|>analysis<|message|>reasoning<|end|>
//	<|start|>assistant<|channel|>final<|message|>answer
//	<|start|>assistant to=functions.NAME<|channel|>commentary json<|message|>{args}
//
// llama.cpp renders <|channel|>, <|message|>, <|start|>, <|constrain|> and
// <|end|> as text for such a model; <|return|> and <|call|> end the
// generation and are not rendered, but are recognised here too.
const (
	harmonyStart     = "<|start|>"
	harmonyChannel   = "<|channel|>"
	harmonyMessage   = "<|message|>"
	harmonyConstrain = "<|constrain|>"
	harmonyEnd       = "<|end|>"
	harmonyCall      = "<|call|>"
	harmonyReturn    = "<|return|>"
	// harmonyAssistant is how a harmony chat template opens the reply.
	harmonyAssistant = harmonyStart + "assistant"
	// maxHarmonyHeader bounds a message header: text that goes on longer
	// without <|message|> is not a header.
	maxHarmonyHeader = 256
)

// harmonyEnds are the tags that end a message's body.
var harmonyEnds = []string{harmonyEnd, harmonyCall, harmonyReturn, harmonyStart}

// harmonyOpened returns the part of a prompt that opens the reply's first
// harmony message ("<|start|>assistant", maybe with more of its header),
// or "" when the prompt does not end inside an assistant message.
func harmonyOpened(prompt string) string {
	i := strings.LastIndex(prompt, harmonyAssistant)
	if i < 0 {
		return ""
	}
	tail := prompt[i:]
	for _, end := range []string{harmonyEnd, harmonyCall, harmonyReturn} {
		if strings.Contains(tail, end) {
			return ""
		}
	}
	return tail
}

// harmonySplitter routes a harmony reply, as it streams, to reasoning (the
// analysis channel), answer (final, and commentary meant for the user) and
// tool calls (messages to a recipient such as functions.NAME), holding
// back only what may still be a tag. A reply that does not start as a
// harmony message is all answer.
type harmonySplitter struct {
	state   harmonyState
	pending string
	// head is the start of the first header, from the prompt.
	head string
	// The message being read: its channel and recipient, and the body of a
	// call.
	channel, recipient string
	body               strings.Builder
	calls              []ToolCall
}

type harmonyState int

const (
	harmonyHeader harmonyState = iota // reading a header, up to <|message|>
	harmonyBody                       // in a message's body
	harmonyPlain                      // not harmony: all answer
)

// newHarmonySplitter starts a splitter after the prompt's opening of the
// reply (harmonyOpened).
func newHarmonySplitter(opened string) *harmonySplitter {
	s := &harmonySplitter{head: opened}
	if i := strings.Index(opened, harmonyMessage); i >= 0 {
		s.head = ""
		s.startMessage(opened[:i])
		s.state = harmonyBody
		s.push(opened[i+len(harmonyMessage):]) // prefilled by the prompt: not reply text
	}
	return s
}

// push takes the next text of the reply and returns what is known of it.
func (s *harmonySplitter) push(text string) []piece {
	s.pending += text
	var out []piece
	for {
		switch s.state {
		case harmonyHeader:
			i := strings.Index(s.pending, harmonyMessage)
			if i < 0 {
				if !s.mayBeHeader(s.pending, false) {
					s.state = harmonyPlain
					continue
				}
				return out
			}
			if !s.mayBeHeader(s.pending[:i], true) {
				s.state = harmonyPlain
				continue
			}
			s.startMessage(s.head + s.pending[:i])
			s.head = ""
			s.pending, s.state = s.pending[i+len(harmonyMessage):], harmonyBody
		case harmonyBody:
			end, tag := -1, ""
			for _, t := range harmonyEnds {
				if j := strings.Index(s.pending, t); j >= 0 && (end < 0 || j < end) {
					end, tag = j, t
				}
			}
			if end >= 0 {
				out = s.emit(out, s.pending[:end])
				out = s.endMessage(out)
				s.pending, s.state = s.pending[end:], harmonyHeader
				if tag != harmonyStart {
					s.pending = s.pending[len(tag):]
				}
				continue
			}
			hold := 0
			for _, t := range harmonyEnds {
				hold = max(hold, tagPrefixLen(s.pending, t))
			}
			out = s.emit(out, s.pending[:len(s.pending)-hold])
			s.pending = s.pending[len(s.pending)-hold:]
			return out
		default: // harmonyPlain
			if s.pending != "" {
				out = append(out, piece{s.pending, false})
				s.pending = ""
			}
			return out
		}
	}
}

// flush returns what was held back, when the reply ends; the last message
// needs no end tag (<|return|> and <|call|> end the generation unseen).
func (s *harmonySplitter) flush() []piece {
	var out []piece
	switch s.state {
	case harmonyBody:
		out = s.emit(out, s.pending)
		out = s.endMessage(out)
	case harmonyPlain:
		if s.pending != "" {
			out = append(out, piece{s.pending, false})
		}
	}
	// A header cut short carries no text.
	s.pending = ""
	return out
}

// mayBeHeader reports whether text, read where a header is expected, is
// a header (complete: all of it up to <|message|>) or may still become
// one: not too long, and starting as a header does (after the prompt's
// role: a recipient, a channel or the message; else <|start|> or a
// channel). The same text gets the same answer whether it came whole or
// in pieces.
func (s *harmonySplitter) mayBeHeader(text string, complete bool) bool {
	if !complete {
		text = text[:len(text)-tagPrefixLen(text, harmonyMessage)]
	}
	if len(text) > maxHarmonyHeader {
		return false
	}
	t := strings.TrimLeft(text, blanks)
	opens := []string{harmonyStart, harmonyChannel}
	if s.head != "" {
		t = text
		if t == "" {
			return true // the message right after the role
		}
		opens = []string{harmonyChannel, " to=", harmonyConstrain} // after the role
	}
	for _, open := range opens {
		if strings.HasPrefix(t, open) || !complete && strings.HasPrefix(open, t) {
			return true
		}
	}
	return false
}

// startMessage reads a header: "<|start|>ROLE to=RECIPIENT<|channel|>NAME
// to=RECIPIENT <|constrain|>TYPE", each part optional.
func (s *harmonySplitter) startMessage(header string) {
	s.channel, s.recipient = "", ""
	s.body.Reset()
	header = strings.ReplaceAll(strings.TrimPrefix(strings.TrimLeft(header, blanks), harmonyStart), harmonyConstrain, " ")
	role, channel, _ := strings.Cut(header, harmonyChannel)
	for _, f := range strings.Fields(role) {
		if to, ok := strings.CutPrefix(f, "to="); ok {
			s.recipient = to
		}
	}
	for i, f := range strings.Fields(channel) {
		if to, ok := strings.CutPrefix(f, "to="); ok {
			s.recipient = to
		} else if i == 0 {
			s.channel = f
		}
	}
}

// emit routes body text of the current message.
func (s *harmonySplitter) emit(out []piece, text string) []piece {
	switch {
	case text == "":
	case s.recipient != "":
		s.body.WriteString(text)
	default:
		out = append(out, piece{text, s.channel == "analysis"})
	}
	return out
}

// endMessage ends the current message: a message to a recipient becomes a
// tool call (functions.NAME calls NAME), or, when its arguments are not a
// JSON object, answer text.
func (s *harmonySplitter) endMessage(out []piece) []piece {
	if s.recipient == "" {
		return out
	}
	name := strings.TrimPrefix(s.recipient, "functions.")
	args := strings.TrimSpace(s.body.String())
	if args == "" {
		args = "{}"
	}
	c, err := newCall(name, []byte(args))
	switch {
	case err != nil && s.body.Len() > 0:
		out = append(out, piece{s.body.String(), false})
	case err == nil:
		s.calls = append(s.calls, c)
	}
	s.recipient = ""
	s.body.Reset()
	return out
}
