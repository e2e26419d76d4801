package llm

import (
	"context"
	"fmt"
	"iter"
	"slices"
	"strings"

	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/tokenizer"
)

// Message is one turn of a conversation (role, content, tool calls).
type Message = tokenizer.Message

// ChatPrompt renders messages with the model's chat template, opening the
// assistant's turn, as transformers' apply_chat_template(...,
// add_generation_prompt=True) does. A model without a template gets a plain
// completion prompt: the contents joined by newlines. A preset's system
// prompt and messages come first, and its Ollama TEMPLATE, if it has one,
// is used instead of the model's.
func (p *Pipeline) ChatPrompt(messages []Message, opts ...GenerateOption) (string, error) {
	g, err := p.genConfig(opts)
	if err != nil {
		return "", err
	}
	messages = p.presetMessages(messages)
	if p.preset != nil && p.preset.Template != nil {
		out, err := p.preset.Template.Render(messages, g.tools)
		if err != nil {
			return "", fmt.Errorf("llm: the preset's template: %w", err)
		}
		return out, nil
	}
	if p.template == nil && p.builtin != "" {
		return p.builtinPrompt(messages, g)
	}
	if p.template == nil {
		parts := make([]string, 0, len(messages))
		for _, m := range messages {
			if s, ok := m.Content.(string); ok {
				parts = append(parts, s)
			}
		}
		return strings.Join(parts, "\n"), nil
	}
	out, err := p.template.Render(tokenizer.Options{
		Messages: reasoningAliases(messages), Tools: g.tools, Extra: g.extra, AddGenerationPrompt: true,
		BOS: p.source.BOS, EOS: p.source.EOS,
	})
	if err != nil {
		return "", fmt.Errorf("llm: chat template: %w", err)
	}
	return out, nil
}

// reasoningAliases gives each message's reasoning under both names chat
// templates read: "thinking" (Ollama's; gpt-oss's template) and
// "reasoning_content" (OpenAI-compatible servers'; Qwen3's and GLM's
// templates). Messages with one of them get the other, in a copy.
func reasoningAliases(messages []Message) []Message {
	out := messages
	for i, m := range messages {
		thinking, hasT := m.Extra.Get("thinking")
		reasoning, hasR := m.Extra.Get("reasoning_content")
		if hasT == hasR {
			continue
		}
		if &out[0] == &messages[0] {
			out = slices.Clone(messages)
		}
		extra := &tokenizer.Object{}
		for _, k := range m.Extra.Keys() {
			v, _ := m.Extra.Get(k)
			extra.Set(k, v)
		}
		if hasT {
			extra.Set("reasoning_content", thinking)
		} else {
			extra.Set("thinking", reasoning)
		}
		out[i].Extra = extra
	}
	return out
}

// HasChatTemplate reports whether the model, or its preset, has a chat
// template.
func (p *Pipeline) HasChatTemplate() bool {
	return p.template != nil || p.builtin != "" || p.preset != nil && p.preset.Template != nil
}

// builtinKnows reports whether llama.cpp has a built-in implementation of
// a template's format.
func builtinKnows(tmpl string) bool {
	_, err := engine.ApplyBuiltinTemplate(tmpl, nil, true)
	return err == nil
}

// builtinPrompt renders messages with llama.cpp's built-in implementation
// of the model's template format, which knows roles and text only.
func (p *Pipeline) builtinPrompt(messages []Message, g genConfig) (string, error) {
	if len(g.tools) > 0 {
		return "", fmt.Errorf("llm: the chat template runs as llama.cpp's built-in format: %w", ErrToolsUnsupported)
	}
	msgs := make([]engine.ChatMessage, 0, len(messages))
	for i, m := range messages {
		text, ok := m.Content.(string)
		if !ok && m.Content != nil {
			parts, isParts := m.Content.([]tokenizer.Part)
			if !isParts {
				return "", fmt.Errorf("llm: message %d: content of type %T", i, m.Content)
			}
			var texts []string
			for _, part := range parts {
				if part.Type == "text" {
					texts = append(texts, part.Text)
				}
			}
			text = strings.Join(texts, "\n")
		}
		if len(m.ToolCalls) > 0 {
			return "", fmt.Errorf("llm: message %d has tool calls, which llama.cpp's built-in chat formats cannot show: %w", i, ErrToolsUnsupported)
		}
		msgs = append(msgs, engine.ChatMessage{Role: m.Role, Content: text})
	}
	out, err := engine.ApplyBuiltinTemplate(p.builtin, msgs, true)
	if err != nil {
		return "", fmt.Errorf("llm: chat template: %w", err)
	}
	return out, nil
}

// Chat answers the conversation: it renders messages with the chat
// template and generates the assistant's reply.
func (p *Pipeline) Chat(ctx context.Context, messages []Message, opts ...GenerateOption) (*Result, error) {
	prompt, ids, dropped, err := p.fitChat(messages, opts)
	if err != nil {
		return nil, err
	}
	res, err := p.collect(ctx, prompt, ids, asChat(opts))
	if res != nil {
		res.Dropped = dropped
	}
	return res, err
}

// fitChat renders and tokenizes the conversation; with DropOldestTurns it
// leaves out the oldest turns (never a leading system message or the last
// message) until the prompt fits in the context.
func (p *Pipeline) fitChat(messages []Message, opts []GenerateOption) (string, []Token, int, error) {
	g, err := p.genConfig(opts)
	if err != nil {
		return "", nil, 0, err
	}
	if g.suffix != nil {
		return "", nil, 0, errSuffixChat
	}
	limit := p.contextLength()
	dropped := 0
	for {
		prompt, ids, err := p.chatTokens(messages, opts)
		if err != nil {
			return "", nil, 0, err
		}
		if len(ids) < limit || g.policy&DropOldestTurns == 0 {
			return prompt, ids, dropped, nil
		}
		first := 0
		if len(messages) > 0 && messages[0].Role == "system" {
			first = 1
		}
		if len(messages)-first <= 1 {
			return "", nil, 0, fmt.Errorf("llm: even the last message makes a prompt of %d tokens, the context holds %d: %w", len(ids), limit, ErrPromptTooLong)
		}
		messages = append(append([]Message{}, messages[:first]...), messages[first+1:]...)
		dropped++
	}
}

// ChatStream is Chat, yielding the reply as it is made.
func (p *Pipeline) ChatStream(ctx context.Context, messages []Message, opts ...GenerateOption) iter.Seq2[Chunk, error] {
	return func(yield func(Chunk, error) bool) {
		prompt, ids, dropped, err := p.fitChat(messages, opts)
		if err != nil {
			yield(Chunk{}, err)
			return
		}
		p.streamRun(ctx, prompt, ids, asChat(opts), dropped, yield)
	}
}

// asChat adds to a chat's options the mark that it is one.
func asChat(opts []GenerateOption) []GenerateOption {
	return append(opts[:len(opts):len(opts)], func(g *genConfig) { g.chat = true })
}

// chatTokens renders and tokenizes a conversation. A rendered template
// carries its own special tokens (transformers tokenizes it with
// add_special_tokens=False); a plain prompt gets the model's BOS.
func (p *Pipeline) chatTokens(messages []Message, opts []GenerateOption) (string, []Token, error) {
	if err := p.checkOpen(); err != nil {
		return "", nil, err
	}
	prompt, err := p.ChatPrompt(messages, opts...)
	if err != nil {
		return "", nil, err
	}
	// Ollama's templates leave the BOS to the tokenizer, as its runner
	// does; a Jinja template writes its own.
	jinja := p.template != nil && (p.preset == nil || p.preset.Template == nil)
	ids, err := p.model.Tokenize(prompt, !jinja, true)
	if err != nil {
		return "", nil, engineErr(err)
	}
	return prompt, ids, nil
}
