package server_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/llm-go/llm"
)

// streamedChoice is one choice of a streamed answer.
type streamedChoice struct {
	text        strings.Builder
	finish      string
	chunks      int
	first, last int // the positions of its first and last chunks in the stream
}

// collectChoices gathers a streamed answer by choice index: each choice's
// text (delta content or text) and finish reason. It checks that the first
// chunk of a chat choice carries the role and that its finish_reason comes
// once, on its last chunk. It returns the choices, the chunks' indexes in
// order (-1 for the usage chunk) and the usage chunk, if any.
func collectChoices(t *testing.T, body []byte, chat bool) (map[int]*streamedChoice, []int, *chatResp) {
	t.Helper()
	events := sseEvents(t, body)
	if len(events) == 0 || events[len(events)-1] != "[DONE]" {
		t.Fatalf("stream does not end with [DONE]: %s", body)
	}
	out := map[int]*streamedChoice{}
	var order []int
	var usage *chatResp
	for pos, e := range events[:len(events)-1] {
		c := decode[chatResp](t, []byte(e))
		if len(c.Choices) == 0 {
			if c.Usage == nil || usage != nil {
				t.Fatalf("a chunk without choices or usage, or a second usage chunk: %s", e)
			}
			usage = &c
			order = append(order, -1)
			continue
		}
		if len(c.Choices) != 1 || usage != nil {
			t.Fatalf("chunk %s (after the usage: %v)", e, usage != nil)
		}
		ch := c.Choices[0]
		sc := out[ch.Index]
		if sc == nil {
			sc = &streamedChoice{first: pos}
			out[ch.Index] = sc
		}
		if sc.finish != "" {
			t.Errorf("choice %d has a chunk after its finish_reason: %s", ch.Index, e)
		}
		if chat && (sc.chunks == 0) != (ch.Delta.Role == "assistant") {
			t.Errorf("choice %d chunk %d has role %q", ch.Index, sc.chunks, ch.Delta.Role)
		}
		if chat && ch.Delta.Content != nil {
			sc.text.WriteString(*ch.Delta.Content)
		}
		if !chat {
			sc.text.WriteString(ch.Text)
		}
		if ch.FinishReason != nil {
			sc.finish = *ch.FinishReason
		}
		sc.chunks++
		sc.last = pos
		order = append(order, ch.Index)
	}
	for i, sc := range out {
		if sc.finish == "" {
			t.Errorf("choice %d has no finish_reason", i)
		}
	}
	return out, order, usage
}

// TestOpenAIChatN: n choices, indexed 0..n-1, the prompt counted once in
// the usage; with a seed, choice i is what a single request with seed+i
// gives; streamed, each choice has its own role and finish chunks.
func TestOpenAIChatN(t *testing.T) {
	ref := reference(t)
	_, url := start(t, testConfig(t))
	chat := func(extra map[string]any) (*http.Response, []byte) {
		t.Helper()
		req := map[string]any{"model": storiesName, "messages": []map[string]any{{"role": "user", "content": ref.Prompt}},
			"temperature": 0, "max_tokens": ref.NPredict}
		for k, v := range extra {
			req[k] = v
		}
		return post(t, url+"/v1/chat/completions", req)
	}

	resp, body := chat(map[string]any{"n": 3})
	r := decode[chatResp](t, body)
	if resp.StatusCode != http.StatusOK || len(r.Choices) != 3 {
		t.Fatalf("greedy n=3: %d %s", resp.StatusCode, body)
	}
	for i, c := range r.Choices {
		if c.Index != i || c.Message.Content == nil || *c.Message.Content != ref.Text || *c.FinishReason != "length" {
			t.Errorf("greedy choice %d: %+v", i, c)
		}
	}
	if u := r.Usage; u == nil || u.PromptTokens != 5 || u.CompletionTokens != 3*ref.NPredict || u.TotalTokens != 5+3*ref.NPredict {
		t.Errorf("usage %+v, want 5 + 3×%d", r.Usage, ref.NPredict)
	}

	sampled := map[string]any{"n": 3, "temperature": 1, "seed": 42, "max_tokens": 16}
	_, body = chat(sampled)
	r = decode[chatResp](t, body)
	if len(r.Choices) != 3 {
		t.Fatalf("sampled n=3: %s", body)
	}
	texts := make([]string, 3)
	for i, c := range r.Choices {
		texts[i] = *c.Message.Content
		_, one := chat(map[string]any{"temperature": 1, "seed": 42 + i, "max_tokens": 16})
		if got := *decode[chatResp](t, one).Choices[0].Message.Content; got != texts[i] {
			t.Errorf("choice %d of seed 42 is %q; seed %d alone gives %q", i, texts[i], 42+i, got)
		}
	}
	if texts[0] == texts[1] && texts[1] == texts[2] {
		t.Errorf("the three sampled choices are the same: %q", texts[0])
	}

	sampled["stream"] = true
	sampled["stream_options"] = map[string]any{"include_usage": true}
	resp, body = chat(sampled)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("streamed: %d %s", resp.StatusCode, body)
	}
	got, order, usage := collectChoices(t, body, true)
	if len(got) != 3 || usage == nil || order[len(order)-1] != -1 {
		t.Fatalf("streamed choices %v, usage %v: %s", len(got), usage, body)
	}
	for i := range 3 {
		if got[i] == nil || got[i].text.String() != texts[i] {
			t.Errorf("streamed choice %d: %v, want %q", i, got[i], texts[i])
		}
	}
	if usage.Usage.PromptTokens != 5 || usage.Usage.CompletionTokens != r.Usage.CompletionTokens {
		t.Errorf("streamed usage %+v, want %+v", usage.Usage, r.Usage)
	}

	// Without a seed each choice draws its own.
	resp, body = chat(map[string]any{"n": 2, "temperature": 1})
	if r := decode[chatResp](t, body); resp.StatusCode != http.StatusOK || len(r.Choices) != 2 || r.Choices[1].Index != 1 {
		t.Errorf("random n=2: %d %s", resp.StatusCode, body)
	}
}

// TestOpenAICompletionN: n choices per prompt (choice i is choice i mod n
// of prompt i / n), streamed or not, with echo; each prompt counts once in
// the usage.
func TestOpenAICompletionN(t *testing.T) {
	ref := reference(t)
	_, url := start(t, testConfig(t))
	req := map[string]any{"model": storiesName, "prompt": []string{ref.Prompt, "Lily"}, "n": 2, "temperature": 0, "max_tokens": ref.NPredict}
	resp, body := post(t, url+"/v1/completions", req)
	r := decode[chatResp](t, body)
	if resp.StatusCode != http.StatusOK || len(r.Choices) != 4 {
		t.Fatalf("two prompts × 2: %d %s", resp.StatusCode, body)
	}
	_, one := post(t, url+"/v1/completions", map[string]any{"model": storiesName, "prompt": "Lily", "temperature": 0, "max_tokens": ref.NPredict})
	lily := decode[chatResp](t, one)
	want := []string{ref.Text, ref.Text, lily.Choices[0].Text, lily.Choices[0].Text}
	for i, c := range r.Choices {
		if c.Index != i || c.Text != want[i] {
			t.Errorf("choice %d (index %d): %q, want %q", i, c.Index, c.Text, want[i])
		}
	}
	if u := r.Usage; u.PromptTokens != 5+lily.Usage.PromptTokens || u.CompletionTokens != 2*ref.NPredict+2*lily.Usage.CompletionTokens {
		t.Errorf("usage %+v", u)
	}

	// Streamed, sampled with a seed and echoed: each choice's chunks add up
	// to the choice of the same request not streamed.
	req = map[string]any{"model": storiesName, "prompt": []string{ref.Prompt, "Lily"}, "n": 3, "temperature": 1, "seed": 7,
		"max_tokens": 12, "echo": true}
	_, body = post(t, url+"/v1/completions", req)
	r = decode[chatResp](t, body)
	if len(r.Choices) != 6 {
		t.Fatalf("two prompts × 3: %s", body)
	}
	req["stream"] = true
	req["stream_options"] = map[string]any{"include_usage": true}
	resp, body = post(t, url+"/v1/completions", req)
	got, _, usage := collectChoices(t, body, false)
	if resp.StatusCode != http.StatusOK || len(got) != 6 || usage == nil {
		t.Fatalf("streamed: %d %s", resp.StatusCode, body)
	}
	for i, c := range r.Choices {
		prompt := []string{ref.Prompt, "Lily"}[i/3]
		if !strings.HasPrefix(c.Text, prompt) || got[i].text.String() != c.Text {
			t.Errorf("choice %d: streamed %q, not streamed %q", i, got[i].text.String(), c.Text)
		}
	}
	if *usage.Usage != *r.Usage {
		t.Errorf("streamed usage %+v, not streamed %+v", usage.Usage, r.Usage)
	}
}

// TestChoicesBatched: a request's n choices run together, so with
// Parallel 3 the three are decoded in the same steps: every choice's
// first chunk comes before any choice's finish chunk. Afterwards the model
// holds no admitted generations.
func TestChoicesBatched(t *testing.T) {
	cfg := testConfig(t)
	cfg.Parallel = 3
	_, url := start(t, cfg)
	for _, path := range []string{"/v1/chat/completions", "/v1/completions"} {
		req := map[string]any{"model": storiesName, "n": 3, "temperature": 0, "max_tokens": 200, "stream": true}
		req["prompt"] = "Once upon a time"
		req["messages"] = []map[string]any{{"role": "user", "content": "Once upon a time"}}
		// Whether the choices overlap depends on the goroutines being
		// scheduled in time, which a loaded machine may delay: one of three
		// tries must show it.
		var order []int
		overlapped := false
		for try := 0; try < 3 && !overlapped; try++ {
			resp, body := post(t, url+path, req)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s: %d %s", path, resp.StatusCode, body)
			}
			var got map[int]*streamedChoice
			got, order, _ = collectChoices(t, body, path == "/v1/chat/completions")
			if len(got) != 3 {
				t.Fatalf("%s: %d choices", path, len(got))
			}
			lastStart, firstEnd := 0, len(order)
			for _, c := range got {
				lastStart, firstEnd = max(lastStart, c.first), min(firstEnd, c.last)
			}
			overlapped = lastStart <= firstEnd
		}
		if !overlapped {
			t.Errorf("%s: in three tries a choice always finished before every choice began: %v", path, order)
		}
	}
	if v := metricValue(t, url, `llm_requests_admitted{model="stories260K"}`); v != 0 {
		t.Errorf("%v generations still admitted", v)
	}
}

// TestChoicesQueue: a request with n choices counts as n requests against
// the model's Parallel+Queue: while it waits, another that would go over
// the limit is refused (429), one that fits is admitted.
func TestChoicesQueue(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	cfg := testConfig(t)
	cfg.Models, cfg.Parallel, cfg.Queue = nil, 1, 2
	cfg.Loader = func(ctx context.Context, name string, opts ...llm.Option) (*llm.Pipeline, error) {
		once.Do(func() { close(entered) })
		<-release
		return llm.New(ctx, name, opts...)
	}
	_, url := start(t, cfg)
	model := storiesPath(t)
	admitted := `llm_requests_admitted{model="` + model + `"}`
	var wg sync.WaitGroup
	for i, n := range []int{2, 1} {
		wg.Go(func() {
			resp, body := post(t, url+"/v1/chat/completions", map[string]any{"model": model, "n": n, "max_tokens": 2,
				"messages": []map[string]any{{"role": "user", "content": "Hi"}}})
			if r := decode[chatResp](t, body); resp.StatusCode != http.StatusOK || len(r.Choices) != n {
				t.Errorf("request %d (n=%d): %d %s", i, n, resp.StatusCode, body)
			}
		})
		if i == 0 {
			<-entered
		}
		waitFor(t, strconv.Itoa(2+i)+" admitted", func() bool { return metricValue(t, url, admitted) == float64(2+i) })
		if i == 0 {
			resp, body := post(t, url+"/v1/completions", map[string]any{"model": model, "prompt": "Once", "n": 2})
			if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
				t.Errorf("n=2 over the limit: %d %s", resp.StatusCode, body)
			}
		}
	}
	resp, body := post(t, url+"/v1/completions", map[string]any{"model": model, "prompt": "Once", "max_tokens": 2})
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("a full model: %d %s", resp.StatusCode, body)
	}
	close(release)
	wg.Wait()
	waitFor(t, "no generation admitted", func() bool { return metricValue(t, url, admitted) == 0 })
	resp, body = post(t, url+"/v1/completions", map[string]any{"model": model, "prompt": "Once", "max_tokens": 2, "n": 3})
	if r := decode[chatResp](t, body); resp.StatusCode != http.StatusOK || len(r.Choices) != 3 {
		t.Errorf("n=3 after the queue drained: %d %s", resp.StatusCode, body)
	}
}

// TestTokenPrompts: a prompt of token ids (the model's own tokenization,
// BOS first) completes as its text does; several are several prompts.
func TestTokenPrompts(t *testing.T) {
	ref := reference(t)
	_, url := start(t, testConfig(t))
	ids := []int{1, 403, 407, 261, 378} // "Once upon a time"
	resp, body := post(t, url+"/v1/completions", map[string]any{"model": storiesName, "prompt": ids, "temperature": 0, "max_tokens": ref.NPredict})
	r := decode[chatResp](t, body)
	if resp.StatusCode != http.StatusOK || len(r.Choices) != 1 || r.Choices[0].Text != ref.Text || r.Usage.PromptTokens != len(ids) {
		t.Fatalf("token prompt: %d %s", resp.StatusCode, body)
	}
	// Ids are run as they are: without the BOS the model continues
	// another prompt than the text's, and prompt_tokens counts what was
	// sent.
	resp, body = post(t, url+"/v1/completions", map[string]any{"model": storiesName, "prompt": ids[1:], "temperature": 0, "max_tokens": ref.NPredict})
	if r := decode[chatResp](t, body); resp.StatusCode != http.StatusOK || r.Usage.PromptTokens != len(ids)-1 || r.Choices[0].Text == ref.Text {
		t.Errorf("token prompt without BOS: %d %s", resp.StatusCode, body)
	}
	for _, stream := range []bool{false, true} {
		resp, body = post(t, url+"/v1/completions", map[string]any{"model": storiesName, "prompt": [][]int{ids, {1, 403}},
			"temperature": 0, "max_tokens": 4, "echo": true, "n": 2, "stream": stream})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("stream %v: %d %s", stream, resp.StatusCode, body)
		}
		texts := map[int]string{}
		if stream {
			got, _, _ := collectChoices(t, body, false)
			for i, c := range got {
				texts[i] = c.text.String()
			}
		} else {
			for _, c := range decode[chatResp](t, body).Choices {
				texts[c.Index] = c.Text
			}
		}
		want := []string{"Once upon a time, there was a", "Once upon a time, there was a", "Once upon a time,", "Once upon a time,"}
		for i, w := range want {
			if texts[i] != w {
				t.Errorf("stream %v: choice %d %q, want %q", stream, i, texts[i], w)
			}
		}
	}
}
