package llm_test

import (
	"context"
	"strings"
	"testing"

	"github.com/llm-go/llm"
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
	var thinking, answer strings.Builder
	var final *llm.Result
	for c, err := range p.ChatStream(ctx, msgs, llm.Sampling(o), llm.MaxTokens(200), llm.Think(true)) {
		if err != nil {
			t.Fatal(err)
		}
		if c.Thinking {
			thinking.WriteString(c.Text)
		} else {
			answer.WriteString(c.Text)
		}
		if c.Result != nil {
			final = c.Result
		}
	}
	if thinking.String() != "the dog ran" || answer.String() != "and the cat sat" || final == nil ||
		final.Thinking != res.Thinking || final.Text != res.Text || len(final.Tokens) != len(res.Tokens) {
		t.Errorf("ChatStream: thinking %q, answer %q, final %+v", thinking.String(), answer.String(), final)
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
