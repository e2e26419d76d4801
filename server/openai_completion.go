package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/llm-go/llm"
	"github.com/llm-go/llm/modelfile"
)

// completionRequest is an OpenAI (legacy) completion request.
type completionRequest struct {
	openAIRequest
	Prompt   json.RawMessage `json:"prompt"`
	Echo     bool            `json:"echo"`
	Logprobs *int            `json:"logprobs"`
	Suffix   string          `json:"suffix"`
	BestOf   *int            `json:"best_of"`
}

type completionChoice struct {
	Text         string              `json:"text"`
	Index        int                 `json:"index"`
	Logprobs     *completionLogprobs `json:"logprobs"`
	FinishReason *string             `json:"finish_reason"`
}

// completionLogprobs is the legacy logprobs shape.
type completionLogprobs struct {
	Tokens        []string             `json:"tokens"`
	TokenLogprobs []float64            `json:"token_logprobs"`
	TopLogprobs   []map[string]float64 `json:"top_logprobs"`
	TextOffset    []int                `json:"text_offset"`
}

type completionResponse struct {
	ID                string             `json:"id"`
	Object            string             `json:"object"`
	Created           int64              `json:"created"`
	Model             string             `json:"model"`
	SystemFingerprint string             `json:"system_fingerprint"`
	Choices           []completionChoice `json:"choices"`
	Usage             *openAIUsage       `json:"usage,omitempty"`
}

// handleCompletions answers POST /v1/completions. A prompt is a string, an
// array of strings, an array of token ids or an array of arrays of token
// ids (see tokenPrompt); each prompt gets n choices (index prompt×n+j).
// The choices run n at a time, in index order: a prompt's n together, the
// next prompt's starting as they end. Suffix and best_of other than 1 are
// refused.
func (s *Server) handleCompletions(w http.ResponseWriter, r *http.Request) {
	var req completionRequest
	body, err := decodeBody(r, &req)
	if err != nil {
		writeOpenAIError(w, err)
		return
	}
	g, err := req.options(body, nil)
	if err != nil {
		writeOpenAIError(w, err)
		return
	}
	prompts, tokenPrompts, err := completionPrompts(req.Prompt)
	switch {
	case err != nil:
		writeOpenAIError(w, err)
		return
	case req.Suffix != "" && tokenPrompts != nil:
		writeOpenAIError(w, badRequest("suffix", "field \"suffix\" needs text prompts, not token ids"))
		return
	case req.BestOf != nil && *req.BestOf != 1:
		writeOpenAIError(w, badRequest("best_of", "field \"best_of\" must be 1"))
		return
	}
	if req.Logprobs != nil {
		if g.logprobs = *req.Logprobs; g.logprobs < 0 || g.logprobs > llm.MaxTopLogprobs {
			writeOpenAIError(w, badRequest("logprobs", "field \"logprobs\" must be in [0, %d], got %d", llm.MaxTopLogprobs, g.logprobs))
			return
		}
	}

	ctx, l, cancel, ok := s.leaseForN(w, r, req.Model, g.n, writeOpenAIError)
	if !ok {
		return
	}
	defer cancel()
	defer l.release(nil)
	if err := g.withPreset(l, func(st *modelfile.Settings) (genRequest, error) { return req.options(body, st) }); err != nil {
		writeOpenAIError(w, err)
		return
	}
	if req.Suffix != "" { // fill in the middle
		g.opts = append(g.opts, llm.Suffix(req.Suffix))
	}
	var promptIDs [][]llm.Token // token-id prompts, with prompts holding their text
	if tokenPrompts != nil {
		prompts = make([]string, len(tokenPrompts))
		promptIDs = make([][]llm.Token, len(tokenPrompts))
		for i, p := range tokenPrompts {
			if promptIDs[i], prompts[i], err = tokenPrompt(l, p.field, p.ids); err != nil {
				writeOpenAIError(w, err)
				return
			}
		}
	}

	base := completionResponse{ID: "cmpl-" + newRequestID(), Object: "text_completion", Created: time.Now().Unix(),
		Model: l.name, SystemFingerprint: fingerprint()}
	// Choice i is choice j = i mod n of prompt i / n. Each prompt's tokens
	// count once in the usage, however many choices it has.
	count := len(prompts) * g.n
	usage := &openAIUsage{}
	if !req.Stream {
		results := make([]*genResult, count)
		err := runChoices(ctx, count, g.n, func(ctx context.Context, i int) error {
			gi := g.forChoice(i % g.n)
			gi.prompt = prompts[i/g.n]
			if promptIDs != nil {
				gi.ids = promptIDs[i/g.n]
			}
			var err error
			results[i], err = s.generate(ctx, l, gi, nil)
			return err
		})
		if err != nil {
			writeOpenAIError(w, err)
			return
		}
		for i, res := range results {
			prompt := prompts[i/g.n]
			text, offset := res.text, 0
			if req.Echo {
				text, offset = prompt+text, len(prompt)
			}
			finish := string(res.finish)
			base.Choices = append(base.Choices, completionChoice{Text: text, Index: i, FinishReason: &finish,
				Logprobs: completionLogprobsOf(res.logprobs, g.logprobs, offset)})
			addUsage(usage, res, i%g.n == 0)
		}
		base.Usage = usage
		writeJSON(w, http.StatusOK, base)
		return
	}

	es := newSSE(w)
	var mu sync.Mutex // one event at a time, and usage
	err = runChoices(ctx, count, g.n, func(ctx context.Context, i int) error {
		gi := g.forChoice(i % g.n)
		gi.prompt = prompts[i/g.n]
		if promptIDs != nil {
			gi.ids = promptIDs[i/g.n]
		}
		offset := 0
		send := func(text string, lps []llm.TokenLogprob, finish *string) error {
			c := base
			c.Choices = []completionChoice{{Text: text, Index: i, FinishReason: finish, Logprobs: completionLogprobsOf(lps, g.logprobs, offset)}}
			offset += len(text)
			mu.Lock()
			defer mu.Unlock()
			if err := es.send(c); err != nil {
				return fmt.Errorf("streaming to the client: %w: %w", context.Canceled, err)
			}
			return nil
		}
		if req.Echo {
			if err := send(gi.prompt, nil, nil); err != nil {
				return err
			}
		}
		res, err := s.generate(ctx, l, gi, func(text string, _ bool, lp *llm.TokenLogprob) error {
			var lps []llm.TokenLogprob
			if lp != nil {
				lps = []llm.TokenLogprob{*lp}
			}
			return send(text, lps, nil)
		})
		if err != nil {
			return err
		}
		finish := string(res.finish)
		if err := send("", nil, &finish); err != nil {
			return err
		}
		mu.Lock()
		addUsage(usage, res, i%g.n == 0)
		mu.Unlock()
		return nil
	})
	if err != nil {
		streamError(es, w, err)
		return
	}
	if req.StreamOptions != nil && req.StreamOptions.IncludeUsage {
		u := base
		u.Choices = []completionChoice{}
		u.Usage = usage
		if err := es.send(u); err != nil {
			return
		}
	}
	es.sendRaw([]byte("[DONE]"))
}

// addUsage adds a generation's tokens to u; prompt says whether its
// prompt tokens count (once per prompt, however many choices it has, as
// OpenAI counts them).
func addUsage(u *openAIUsage, r *genResult, prompt bool) {
	if prompt {
		u.PromptTokens += r.promptTokens
	}
	u.CompletionTokens += r.tokens
	u.TotalTokens = u.PromptTokens + u.CompletionTokens
}

// tokenIDs is a prompt of token ids and the field that holds it.
type tokenIDs struct {
	field string // "prompt", or "prompt[i]" in an array of them
	ids   []int64
}

// completionPrompts parses a completion's prompt: a string or an array of
// strings (texts), or an array of token ids or an array of arrays of them
// (ids, checked against the model's vocabulary once it is loaded).
func completionPrompts(raw json.RawMessage) (texts []string, ids []tokenIDs, err error) {
	if isNull(raw) {
		return nil, nil, badRequest("prompt", "field \"prompt\" is required")
	}
	var one string
	var list []string
	var flat []int64
	var nested [][]int64
	switch {
	case json.Unmarshal(raw, &one) == nil:
		texts = []string{one}
	case json.Unmarshal(raw, &list) == nil:
		texts = list
	case json.Unmarshal(raw, &flat) == nil:
		ids = []tokenIDs{{field: "prompt", ids: flat}}
	case json.Unmarshal(raw, &nested) == nil:
		for i, p := range nested {
			ids = append(ids, tokenIDs{field: fmt.Sprintf("prompt[%d]", i), ids: p})
		}
	default:
		return nil, nil, badRequest("prompt", "field \"prompt\" must be a string, an array of strings, an array of token ids or an array of arrays of token ids")
	}
	if len(texts) == 0 && len(ids) == 0 {
		return nil, nil, badRequest("prompt", "field \"prompt\" must hold at least one prompt")
	}
	return texts, ids, nil
}

// tokenPrompt checks a prompt of token ids against the model's vocabulary
// and returns them, with their text for echo. The ids are run as they are
// (llm's GenerateTokens adds no BOS).
func tokenPrompt(l *lease, field string, ids []int64) ([]llm.Token, string, error) {
	m := l.p.Model()
	vocab := m.VocabSize()
	if len(ids) == 0 {
		return nil, "", badRequest(field, "field %q holds an empty list of token ids", field)
	}
	toks := make([]llm.Token, len(ids))
	for k, id := range ids {
		if id < 0 || id >= int64(vocab) {
			return nil, "", badRequest(fmt.Sprintf("%s[%d]", field, k), "token id %d (%s[%d]) is not in the vocabulary of model %q: ids go from 0 to %d",
				id, field, k, l.name, vocab-1)
		}
		toks[k] = llm.Token(id)
	}
	// Without its BOS, llama.cpp's detokenizer also drops the space that
	// SentencePiece adds before the first word.
	body := toks
	if sp := m.SpecialTokens(); sp.AddBOS && toks[0] == sp.BOS {
		body = toks[1:]
	}
	text, err := m.Detokenize(body, false, false)
	if err != nil {
		return nil, "", fmt.Errorf("detokenizing %s: %w", field, err)
	}
	return toks, text, nil
}

// completionLogprobsOf converts log-probabilities to the legacy shape;
// offset is where the first token's text starts in the choice's text.
func completionLogprobsOf(lps []llm.TokenLogprob, top, offset int) *completionLogprobs {
	if top < 0 || lps == nil {
		return nil
	}
	out := &completionLogprobs{Tokens: []string{}, TokenLogprobs: []float64{}, TopLogprobs: []map[string]float64{}, TextOffset: []int{}}
	for _, lp := range lps {
		out.Tokens = append(out.Tokens, lp.Text)
		out.TokenLogprobs = append(out.TokenLogprobs, finite(lp.Logprob))
		alts := map[string]float64{}
		for _, t := range lp.Top {
			alts[t.Text] = finite(t.Logprob)
		}
		out.TopLogprobs = append(out.TopLogprobs, alts)
		out.TextOffset = append(out.TextOffset, offset)
		offset += len(lp.Text)
	}
	return out
}
