package convert

import (
	"fmt"
	"regexp"
)

// ExaoneForCausalLM (EXAONE 3.0 and 3.5, EXAONE Deep; LG AI Research's
// custom modeling code) → GGUF arch "exaone": Llama's blocks under other
// names (transformer.wte, transformer.h.N.ln_1, attn.attention.q_proj,
// k_proj, v_proj and out_proj, ln_2, mlp.c_fc_0 the gate, mlp.c_fc_1 the
// up projection, mlp.c_proj, transformer.ln_f, lm_head) and config keys
// (num_layers, layer_norm_epsilon, activation_function), RMS norms, no
// biases, and the rope rotating halves (rotate_half: llama.cpp's exaone is
// NEOX, so q and k are not permuted), with llama3 scaling in EXAONE 3.5.

// exaoneConfig holds ExaoneConfig's names for Llama's keys.
type exaoneConfig struct {
	NumLayers  *int    `json:"num_layers"`
	Activation *string `json:"activation_function"`
}

// exaoneDefaults reads ExaoneConfig's names into the keys the Llama path
// reads, with ExaoneConfig's defaults: num_layers, layer_norm_epsilon
// (1e-5), activation_function (SiLU), tie_word_embeddings (true).
func (c *hfConfig) exaoneDefaults() error {
	if c.exaoneErr != nil {
		return fmt.Errorf("convert: config.json: %w", c.exaoneErr)
	}
	if c.NumHiddenLayers == 0 && c.Exaone.NumLayers != nil {
		c.NumHiddenLayers = *c.Exaone.NumLayers
	}
	if c.RMSNormEps == nil {
		eps := 1e-5 // ExaoneConfig's default (EXAONE 3.5's)
		if c.LayerNormEpsilon != nil {
			eps = *c.LayerNormEpsilon
		}
		c.RMSNormEps = &eps
	}
	if c.TieWordEmbeddings == nil {
		tied := true // ExaoneConfig's default
		c.TieWordEmbeddings = &tied
	}
	if c.HiddenAct == "" {
		c.HiddenAct = "silu"
		if c.Exaone.Activation != nil {
			c.HiddenAct = *c.Exaone.Activation
		}
	}
	return nil
}

// exaoneNames maps EXAONE's tensor names to Llama's, by pattern.
var exaoneNames = []struct {
	re   *regexp.Regexp
	repl string
}{
	{regexp.MustCompile(`^transformer\.wte\.weight$`), "model.embed_tokens.weight"},
	{regexp.MustCompile(`^transformer\.ln_f\.weight$`), "model.norm.weight"},
	{regexp.MustCompile(`^transformer\.h\.(\d+)\.ln_1\.weight$`), "model.layers.$1.input_layernorm.weight"},
	{regexp.MustCompile(`^transformer\.h\.(\d+)\.ln_2\.weight$`), "model.layers.$1.post_attention_layernorm.weight"},
	{regexp.MustCompile(`^transformer\.h\.(\d+)\.attn\.attention\.([qkv])_proj\.(weight|bias)$`), "model.layers.$1.self_attn.${2}_proj.$3"},
	{regexp.MustCompile(`^transformer\.h\.(\d+)\.attn\.attention\.out_proj\.(weight|bias)$`), "model.layers.$1.self_attn.o_proj.$2"},
	{regexp.MustCompile(`^transformer\.h\.(\d+)\.mlp\.c_fc_0\.(weight|bias)$`), "model.layers.$1.mlp.gate_proj.$2"},
	{regexp.MustCompile(`^transformer\.h\.(\d+)\.mlp\.c_fc_1\.(weight|bias)$`), "model.layers.$1.mlp.up_proj.$2"},
	{regexp.MustCompile(`^transformer\.h\.(\d+)\.mlp\.c_proj\.(weight|bias)$`), "model.layers.$1.mlp.down_proj.$2"},
}

// exaoneName is the Llama name of an EXAONE checkpoint tensor (the name as
// it is when none matches: lm_head.weight, or an unknown tensor that
// planTensors reports).
func exaoneName(name string) string {
	for _, n := range exaoneNames {
		if n.re.MatchString(name) {
			return n.re.ReplaceAllString(name, n.repl)
		}
	}
	return name
}
