package convert

import (
	"encoding/json"
	"fmt"
	"math"
)

// Ministral 3 (Ministral3ForCausalLM, and the text model of
// Mistral3ForConditionalGeneration whose text_config says model_type
// "ministral3": Ministral 3 3B/8B/14B, Devstral Small 2) is Mistral with
// Llama 4's attention temperature: each query, after its rotary
// embedding, is multiplied by 1 + β·ln(1 + ⌊pos / original⌋), β being
// rope_parameters.llama_4_scaling_beta and original the yarn scaling's
// original_max_position_embeddings. llama.cpp's "mistral3" arch does
// exactly that, reading β from attention.temperature_scale and original
// from rope.scaling.original_context_length, so, as
// convert_hf_to_gguf.py requires, the rope scaling must be yarn; its
// mscale_all_dim is written as rope.scaling.yarn_log_multiplier.

// ministral3Text reports whether a Mistral3ForConditionalGeneration's
// text model is Ministral 3: text_config's model_type is "ministral3", or
// absent with llama_4_scaling_beta (in rope_parameters or at its top
// level). Another text model with llama_4_scaling_beta (Mistral Large 3's
// is DeepSeek V3's) is refused by name.
func (c *hfConfig) ministral3Text() (bool, error) {
	if isNull(c.TextConfig) {
		return false, nil
	}
	var text struct {
		ModelType     string          `json:"model_type"`
		Llama4Scaling json.RawMessage `json:"llama_4_scaling_beta"`
		Rope          struct {
			Llama4Scaling json.RawMessage `json:"llama_4_scaling_beta"`
		} `json:"rope_parameters"`
	}
	if err := json.Unmarshal(c.TextConfig, &text); err != nil {
		return false, fmt.Errorf("convert: config.json: text_config: %w", err)
	}
	temp := !isNull(text.Llama4Scaling) || !isNull(text.Rope.Llama4Scaling)
	switch {
	case text.ModelType == "ministral3":
		return true, nil
	case temp && text.ModelType == "":
		return true, nil
	case temp:
		return false, fmt.Errorf("%w: Mistral3ForConditionalGeneration with a %q text model and llama_4_scaling_beta: only Ministral 3's (model_type ministral3) is converted", ErrUnsupported, text.ModelType)
	}
	return false, nil
}

// ministral3Hparams reads Ministral 3's attention temperature β and yarn
// log multiplier; c is the text config.
func (c *hfConfig) ministral3Hparams(h *hparams) error {
	if h.rope.kind != ropeYarn {
		return fmt.Errorf("%w: config.json: Ministral 3 without yarn rope scaling (its attention temperature counts positions in yarn's original_max_position_embeddings)", ErrMismatch)
	}
	params, err := parseRopeJSON(c.RopeParameters, "rope_parameters")
	if err != nil {
		return err
	}
	beta := c.Llama4ScalingBeta
	if params != nil && params.Llama4ScalingBeta != nil {
		beta = params.Llama4ScalingBeta
	}
	if beta == nil {
		return fmt.Errorf("%w: config.json: Ministral 3 without rope_parameters.llama_4_scaling_beta", ErrMismatch)
	}
	if math.IsNaN(*beta) || math.IsInf(*beta, 0) || *beta < 0 {
		return fmt.Errorf("%w: config.json: llama_4_scaling_beta %v is not a non-negative number", ErrMismatch, *beta)
	}
	h.attnTemp = *beta
	src, err := c.ropeSource()
	if err != nil {
		return err
	}
	if m := src.MscaleAllDim; m != nil && *m != 0 {
		if !(*m > 0) || math.IsInf(*m, 0) {
			return fmt.Errorf("%w: config.json: mscale_all_dim %v is not a non-negative number", ErrMismatch, *m)
		}
		h.rope.logMul = m
	}
	return nil
}

// llavaText checks that a LlavaForConditionalGeneration's text model is
// one the llama arch runs: text_config's model_type "llama" or "mistral"
// (LlavaConfig's default is Llama's).
func (c *hfConfig) llavaText() error {
	if isNull(c.TextConfig) {
		return fmt.Errorf("%w: config.json: LlavaForConditionalGeneration has no text_config", ErrMismatch)
	}
	var text struct {
		ModelType string `json:"model_type"`
	}
	if err := json.Unmarshal(c.TextConfig, &text); err != nil {
		return fmt.Errorf("convert: config.json: text_config: %w", err)
	}
	switch text.ModelType {
	case "", "llama", "mistral":
		return nil
	}
	return fmt.Errorf("%w: LlavaForConditionalGeneration with a %q text model: Llama's and Mistral's are converted", ErrUnsupported, text.ModelType)
}
