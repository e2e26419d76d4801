package llm_test

import (
	"context"
	"encoding/json"
	"iter"
	"os"
	"strings"
	"testing"

	"github.com/llm-go/llm"
	"github.com/llm-go/llm/internal/shareddata"
	"github.com/llm-go/llm/sampler"
)

// TestChatThink: with Think(true) a reasoning-shaped reply (forced by a
// grammar, since stories260K does not reason) comes back split: the
// reasoning in Result.Thinking and in chunks marked Thinking, the answer in
// Text; without Think the reply is left as it is. A template that opens
// <think> itself (as DeepSeek-R1's does) is followed, and Think reaches the
// template as enable_thinking.
func TestChatThink(t *testing.T) {
	ctx := context.Background()
	o := sampler.DefaultOptions()
	o.Temperature = 0
	o.Grammar = `root ::= "<think>\nthe dog ran</think>\n\nand the cat sat"`
	msgs := []llm.Message{{Role: "user", Content: "Tell me."}}
	p, err := llm.New(ctx, withTemplate(t, "{% for m in messages %}{{ m.content }}{% endfor %}{% if enable_thinking is false %} (quick){% endif %}"), llm.WithThreads(1))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	raw, err := p.Chat(ctx, msgs, llm.Sampling(o), llm.MaxTokens(200))
	if err != nil {
		t.Fatal(err)
	}
	if raw.Text != "<think>\nthe dog ran</think>\n\nand the cat sat" || raw.Thinking != "" {
		t.Fatalf("without Think: %q, thinking %q", raw.Text, raw.Thinking)
	}
	res, err := p.Chat(ctx, msgs, llm.Sampling(o), llm.MaxTokens(200), llm.Think(true))
	if err != nil {
		t.Fatal(err)
	}
	if res.Thinking != "the dog ran" || res.Text != "and the cat sat" {
		t.Errorf("Think(true): thinking %q, text %q", res.Thinking, res.Text)
	}
	thinking, answer, final := collectStream(t, p.ChatStream(ctx, msgs, llm.Sampling(o), llm.MaxTokens(200), llm.Think(true)))
	if thinking != "the dog ran" || answer != "and the cat sat" || final == nil ||
		final.Thinking != res.Thinking || final.Text != res.Text || len(final.Tokens) != len(res.Tokens) {
		t.Errorf("ChatStream: thinking %q, answer %q, final %+v", thinking, answer, final)
	}

	// A prompt that happens to hold harmony's opening (quoted by the user)
	// does not make a model whose template is not harmony's a harmony one.
	quoted := []llm.Message{{Role: "user", Content: "What does <|start|>assistant mean?"}}
	if res, err := p.Chat(ctx, quoted, llm.Sampling(o), llm.MaxTokens(200), llm.Think(true)); err != nil || res.Thinking != "the dog ran" {
		t.Errorf("a quoted harmony tag: thinking %q, text %q, %v", res.Thinking, res.Text, err)
	}

	// enable_thinking reaches the template.
	quick, err := p.ChatPrompt(msgs, llm.Think(false))
	if err != nil || quick != "Tell me. (quick)" {
		t.Errorf("Think(false) prompt %q, %v", quick, err)
	}
	if full, err := p.ChatPrompt(msgs, llm.Think(true)); err != nil || full != "Tell me." {
		t.Errorf("Think(true) prompt %q, %v", full, err)
	}

	// A template that opens the block itself: the reply starts inside it.
	opened, err := llm.New(ctx, withTemplate(t, "{% for m in messages %}{{ m.content }}{% endfor %}<think>\n"), llm.WithThreads(1))
	if err != nil {
		t.Fatal(err)
	}
	defer opened.Close()
	o.Grammar = `root ::= "the dog ran\n</think>\nand the cat sat"`
	res, err = opened.Chat(ctx, msgs, llm.Sampling(o), llm.MaxTokens(200), llm.Think(true))
	if err != nil || res.Thinking != "the dog ran" || res.Text != "and the cat sat" {
		t.Errorf("opened by the template: thinking %q, text %q, %v", res.Thinking, res.Text, err)
	}
}

// TestChatHarmony: with gpt-oss's own chat template, a harmony reply
// (forced by a grammar) comes back parsed in every chat, asked or not:
// the analysis channel in Result.Thinking and in chunks marked Thinking,
// the final channel in Text, a message to functions.NAME as a tool call.
// ThinkLevel reaches the template's system message; Generate leaves the
// reply as it is unless asked to separate it.
func TestChatHarmony(t *testing.T) {
	ctx := context.Background()
	tmpl, err := os.ReadFile(shareddata.Path(t, "testdata", "chat_templates", "jinja", "openai-gpt-oss-120b.jinja"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := llm.New(ctx, withTemplate(t, string(tmpl)), llm.WithThreads(1))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	msgs := []llm.Message{{Role: "user", Content: "Tell me."}}

	prompt, err := p.ChatPrompt(msgs, llm.ThinkLevel(llm.ThinkHigh))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(prompt, "Reasoning: high") || !strings.HasSuffix(prompt, "<|start|>assistant") {
		t.Fatalf("ThinkLevel(high) prompt:\n%s", prompt)
	}

	o := sampler.DefaultOptions()
	o.Temperature = 0
	const reply = "<|channel|>analysis<|message|>the dog ran<|end|><|start|>assistant<|channel|>final<|message|>and the cat sat"
	o.Grammar = `root ::= "` + strings.ReplaceAll(reply, `"`, `\"`) + `"`
	res, err := p.Chat(ctx, msgs, llm.Sampling(o), llm.MaxTokens(300))
	if err != nil {
		t.Fatal(err)
	}
	if res.Thinking != "the dog ran" || res.Text != "and the cat sat" || res.FinishReason != llm.FinishStop {
		t.Errorf("Chat: thinking %q, text %q, finish %s", res.Thinking, res.Text, res.FinishReason)
	}
	thinking, answer, final := collectStream(t, p.ChatStream(ctx, msgs, llm.Sampling(o), llm.MaxTokens(300)))
	if thinking != res.Thinking || answer != res.Text || final == nil || final.Text != res.Text || final.Thinking != res.Thinking {
		t.Errorf("ChatStream: thinking %q, answer %q, final %+v", thinking, answer, final)
	}

	// Generate leaves a harmony prompt's reply alone, unless asked.
	raw, err := p.Generate(ctx, prompt, llm.Sampling(o), llm.MaxTokens(300))
	if err != nil || raw.Text != reply || raw.Thinking != "" {
		t.Errorf("Generate: %q, thinking %q, %v", raw.Text, raw.Thinking, err)
	}
	sep, err := p.Generate(ctx, prompt, llm.Sampling(o), llm.MaxTokens(300), llm.SeparateThinking())
	if err != nil || sep.Text != res.Text || sep.Thinking != res.Thinking {
		t.Errorf("Generate with SeparateThinking: %q, thinking %q, %v", sep.Text, sep.Thinking, err)
	}

	// A tool call.
	tool := map[string]any{"type": "function", "function": map[string]any{"name": "get_weather", "description": "The weather.",
		"parameters": map[string]any{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}}}}
	o.Grammar = `root ::= "<|channel|>analysis<|message|>weather<|end|><|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"city\": \"Paris\"}"`
	called, err := p.Chat(ctx, msgs, llm.Sampling(o), llm.MaxTokens(300), llm.Tools(tool))
	if err != nil {
		t.Fatal(err)
	}
	if len(called.ToolCalls) != 1 || called.ToolCalls[0].Function.Name != "get_weather" || called.FinishReason != llm.FinishToolCalls || called.Text != "" || called.Thinking != "weather" {
		t.Fatalf("tool call: %+v", called)
	}
	if args, _ := called.ToolCalls[0].Function.Arguments.(json.RawMessage); string(args) != `{"city":"Paris"}` {
		t.Errorf("tool call arguments %s", args)
	}
	// The call, sent back with its result, renders as gpt-oss expects.
	msgs = append(msgs, llm.Message{Role: "assistant", ToolCalls: called.ToolCalls},
		llm.Message{Role: "tool", Content: `{"temp": 20}`})
	next, err := p.ChatPrompt(msgs, llm.Tools(tool))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(next, `<|start|>assistant to=functions.get_weather<|channel|>commentary json<|message|>{"city": "Paris"}<|call|>`) ||
		!strings.Contains(next, `<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>"{\"temp\": 20}"<|end|>`) {
		t.Errorf("the call sent back:\n%s", next)
	}
}

// collectStream reads a stream to its end: the reasoning and the answer it
// yielded, and its final Result.
func collectStream(t *testing.T, seq iter.Seq2[llm.Chunk, error]) (thinking, answer string, final *llm.Result) {
	t.Helper()
	var tb, ab strings.Builder
	for c, err := range seq {
		if err != nil {
			t.Fatal(err)
		}
		if c.Thinking {
			tb.WriteString(c.Text)
		} else {
			ab.WriteString(c.Text)
		}
		if c.Result != nil {
			final = c.Result
		}
	}
	return tb.String(), ab.String(), final
}
