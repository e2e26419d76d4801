package server

import (
	"encoding/json"
	"net/http"
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

// handleCompletions answers POST /v1/completions. A prompt is a string or
// an array of strings (one choice each, generated in turn); token-id
// prompts, suffix and best_of other than 1 are refused.
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
	prompts, err := stringList("prompt", req.Prompt)
	switch {
	case err != nil:
		writeOpenAIError(w, badRequest("prompt", "field \"prompt\" must be a string or an array of strings (token ids are not supported)"))
		return
	case prompts == nil:
		writeOpenAIError(w, badRequest("prompt", "field \"prompt\" is required"))
		return
	case len(prompts) == 0:
		writeOpenAIError(w, badRequest("prompt", "field \"prompt\" must hold at least one prompt"))
		return
	case req.Suffix != "":
		writeOpenAIError(w, badRequest("suffix", "field \"suffix\" is not supported"))
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

	ctx, l, cancel, ok := s.leaseFor(w, r, req.Model, writeOpenAIError)
	if !ok {
		return
	}
	defer cancel()
	defer l.release(nil)
	if err := g.withPreset(l, func(st *modelfile.Settings) (genRequest, error) { return req.options(body, st) }); err != nil {
		writeOpenAIError(w, err)
		return
	}

	base := completionResponse{ID: "cmpl-" + newRequestID(), Object: "text_completion", Created: time.Now().Unix(),
		Model: l.name, SystemFingerprint: fingerprint()}
	total := &openAIUsage{}
	if !req.Stream {
		for i, prompt := range prompts {
			g.prompt = prompt
			res, err := s.generate(ctx, l, g, nil)
			if err != nil {
				writeOpenAIError(w, err)
				return
			}
			text, offset := res.text, 0
			if req.Echo {
				text, offset = prompt+text, len(prompt)
			}
			finish := string(res.finish)
			base.Choices = append(base.Choices, completionChoice{Text: text, Index: i, FinishReason: &finish,
				Logprobs: completionLogprobsOf(res.logprobs, g.logprobs, offset)})
			addUsage(total, res)
		}
		base.Usage = total
		writeJSON(w, http.StatusOK, base)
		return
	}

	es := newSSE(w)
	for i, prompt := range prompts {
		g.prompt = prompt
		offset := 0
		send := func(text string, lps []llm.TokenLogprob, finish *string) error {
			c := base
			c.Choices = []completionChoice{{Text: text, Index: i, FinishReason: finish, Logprobs: completionLogprobsOf(lps, g.logprobs, offset)}}
			offset += len(text)
			return es.send(c)
		}
		if req.Echo {
			if err := send(prompt, nil, nil); err != nil {
				return
			}
		}
		res, err := s.generate(ctx, l, g, func(text string, lp *llm.TokenLogprob) error {
			var lps []llm.TokenLogprob
			if lp != nil {
				lps = []llm.TokenLogprob{*lp}
			}
			return send(text, lps, nil)
		})
		if err != nil {
			streamError(es, w, err)
			return
		}
		finish := string(res.finish)
		if err := send("", nil, &finish); err != nil {
			return
		}
		addUsage(total, res)
	}
	if req.StreamOptions != nil && req.StreamOptions.IncludeUsage {
		u := base
		u.Choices = []completionChoice{}
		u.Usage = total
		if err := es.send(u); err != nil {
			return
		}
	}
	es.sendRaw([]byte("[DONE]"))
}

func addUsage(u *openAIUsage, r *genResult) {
	u.PromptTokens += r.promptTokens
	u.CompletionTokens += r.tokens
	u.TotalTokens = u.PromptTokens + u.CompletionTokens
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
