package convert

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// hfConfig holds the config.json fields the converter reads.
type hfConfig struct {
	Architectures         []string        `json:"architectures"`
	ModelType             string          `json:"model_type"`
	HiddenSize            int             `json:"hidden_size"`
	IntermediateSize      int             `json:"intermediate_size"`
	NumHiddenLayers       int             `json:"num_hidden_layers"`
	NumAttentionHeads     int             `json:"num_attention_heads"`
	NumKeyValueHeads      int             `json:"num_key_value_heads"`
	RMSNormEps            *float64        `json:"rms_norm_eps"`
	RopeTheta             *float64        `json:"rope_theta"`
	RopeParameters        json.RawMessage `json:"rope_parameters"`
	MaxPositionEmbeddings int             `json:"max_position_embeddings"`
	VocabSize             int             `json:"vocab_size"`
	TieWordEmbeddings     *bool           `json:"tie_word_embeddings"`
	HeadDim               int             `json:"head_dim"`
	BOSTokenID            json.RawMessage `json:"bos_token_id"`
	EOSTokenID            json.RawMessage `json:"eos_token_id"`
	PadTokenID            json.RawMessage `json:"pad_token_id"`
	RopeScaling           json.RawMessage `json:"rope_scaling"`

	// GPT-2 names.
	NEmbd            int      `json:"n_embd"`
	NLayer           int      `json:"n_layer"`
	NHead            int      `json:"n_head"`
	NPositions       int      `json:"n_positions"`
	NInner           *int     `json:"n_inner"`
	LayerNormEpsilon *float64 `json:"layer_norm_epsilon"`
}

// hparams are the validated hyperparameters.
type hparams struct {
	hidden, ffn, layers, heads, kvHeads, headDim, vocab, ctxLen int
	rmsEps, ropeTheta                                           float64
	tied                                                        bool
}

func readConfig(dir string) (*hfConfig, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, fmt.Errorf("convert: %w", err)
	}
	var c hfConfig
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("convert: config.json: %w", err)
	}
	return &c, nil
}

func (c *hfConfig) hparams(arch archSpec) (hparams, error) {
	if arch.gguf == "gpt2" {
		return c.gpt2Hparams()
	}
	if len(c.RopeScaling) > 0 && string(c.RopeScaling) != "null" {
		return hparams{}, fmt.Errorf("%w rope_scaling %s (only plain rope is converted)", ErrUnsupported, c.RopeScaling)
	}
	h := hparams{
		hidden:  c.HiddenSize,
		ffn:     c.IntermediateSize,
		layers:  c.NumHiddenLayers,
		heads:   c.NumAttentionHeads,
		kvHeads: c.NumKeyValueHeads,
		headDim: c.HeadDim,
		vocab:   c.VocabSize,
		ctxLen:  c.MaxPositionEmbeddings,
	}
	for _, f := range []struct {
		name string
		v    int
	}{
		{"hidden_size", h.hidden}, {"intermediate_size", h.ffn}, {"num_hidden_layers", h.layers},
		{"num_attention_heads", h.heads}, {"vocab_size", h.vocab},
	} {
		if f.v <= 0 {
			return h, fmt.Errorf("%w: config.json: %s is missing or not positive", ErrMismatch, f.name)
		}
	}
	if h.kvHeads <= 0 {
		h.kvHeads = h.heads
	}
	if h.heads%h.kvHeads != 0 {
		return h, fmt.Errorf("%w: config.json: num_attention_heads %d is not a multiple of num_key_value_heads %d", ErrMismatch, h.heads, h.kvHeads)
	}
	if h.headDim <= 0 {
		if h.hidden%h.heads != 0 {
			return h, fmt.Errorf("%w: config.json: hidden_size %d is not a multiple of num_attention_heads %d", ErrMismatch, h.hidden, h.heads)
		}
		h.headDim = h.hidden / h.heads
	}
	if h.headDim%2 != 0 {
		return h, fmt.Errorf("%w: config.json: head dimension %d is odd", ErrMismatch, h.headDim)
	}
	if h.ctxLen <= 0 {
		h.ctxLen = 2048
	}
	h.rmsEps = 1e-6
	if c.RMSNormEps != nil {
		h.rmsEps = *c.RMSNormEps
	}
	h.ropeTheta = 10000
	if c.RopeTheta != nil {
		h.ropeTheta = *c.RopeTheta
	} else if len(c.RopeParameters) > 0 && string(c.RopeParameters) != "null" {
		// transformers 5: {"rope_theta": ..., "rope_type": "default"}.
		var rp struct {
			RopeTheta *float64 `json:"rope_theta"`
			RopeType  string   `json:"rope_type"`
		}
		if err := json.Unmarshal(c.RopeParameters, &rp); err != nil {
			return h, fmt.Errorf("convert: config.json: rope_parameters: %w", err)
		}
		if rp.RopeType != "" && rp.RopeType != "default" {
			return h, fmt.Errorf("%w rope_type %q (only default rope is converted)", ErrUnsupported, rp.RopeType)
		}
		if rp.RopeTheta != nil {
			h.ropeTheta = *rp.RopeTheta
		}
	}
	h.tied = c.TieWordEmbeddings != nil && *c.TieWordEmbeddings
	return h, nil
}

// firstID returns the first integer of a config token id, which may be a
// number, a list of numbers or null.
func firstID(raw json.RawMessage) (int, bool) {
	if len(raw) == 0 {
		return 0, false
	}
	var n int
	if json.Unmarshal(raw, &n) == nil {
		return n, true
	}
	var l []int
	if json.Unmarshal(raw, &l) == nil && len(l) > 0 {
		return l[0], true
	}
	return 0, false
}

// gpt2Hparams reads GPT-2's config names (n_embd, n_layer, ...).
func (c *hfConfig) gpt2Hparams() (hparams, error) {
	h := hparams{
		hidden: c.NEmbd,
		layers: c.NLayer,
		heads:  c.NHead,
		vocab:  c.VocabSize,
		ctxLen: c.NPositions,
		tied:   c.TieWordEmbeddings == nil || *c.TieWordEmbeddings,
		rmsEps: 1e-5,
	}
	if c.LayerNormEpsilon != nil {
		h.rmsEps = *c.LayerNormEpsilon
	}
	for _, f := range []struct {
		name string
		v    int
	}{
		{"n_embd", h.hidden}, {"n_layer", h.layers}, {"n_head", h.heads}, {"vocab_size", h.vocab}, {"n_positions", h.ctxLen},
	} {
		if f.v <= 0 {
			return h, fmt.Errorf("%w: config.json: %s is missing or not positive", ErrMismatch, f.name)
		}
	}
	if h.hidden%h.heads != 0 {
		return h, fmt.Errorf("%w: config.json: n_embd %d is not a multiple of n_head %d", ErrMismatch, h.hidden, h.heads)
	}
	h.kvHeads, h.headDim = h.heads, h.hidden/h.heads
	h.ffn = 4 * h.hidden
	if c.NInner != nil && *c.NInner > 0 {
		h.ffn = *c.NInner
	}
	return h, nil
}
