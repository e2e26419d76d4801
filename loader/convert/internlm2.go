package convert

import (
	"fmt"
	"log/slog"
	"regexp"
	"strings"

	"github.com/llm-go/llm/loader/safetensors"
)

// InternLM2ForCausalLM (Shanghai AI Lab's InternLM2 and InternLM2.5: 1.8B,
// 7B, 20B, their chat and math models) → GGUF arch "internlm2": Llama's
// blocks under InternLM2's names (tok_embeddings, attention_norm,
// attention.wo, ffn_norm, feed_forward.w1/w3/w2 for gate/up/down, output),
// with the attention's wqkv split into q, k and v. wqkv holds, per
// key/value head, its num_attention_heads/num_key_value_heads query heads,
// then its key head, then its value head; q and k are permuted for
// llama.cpp's adjacent-pair rope. InternLM2Config's bias defaults to true,
// and llama.cpp's internlm2 has no biases: a config without bias false is
// refused. Its "dynamic" rope scaling (NTK-aware, InternLM2.5's) changes
// nothing up to max_position_embeddings, so it is converted as no scaling
// within that context, which is logged.

// internlm2Names are InternLM2's names of Llama's tensors.
var internlm2Names = []struct {
	re   *regexp.Regexp
	repl string
}{
	{regexp.MustCompile(`^model\.tok_embeddings\.weight$`), "model.embed_tokens.weight"},
	{regexp.MustCompile(`^output\.weight$`), "lm_head.weight"},
	{regexp.MustCompile(`^model\.layers\.(\d+)\.attention_norm\.weight$`), "model.layers.$1.input_layernorm.weight"},
	{regexp.MustCompile(`^model\.layers\.(\d+)\.ffn_norm\.weight$`), "model.layers.$1.post_attention_layernorm.weight"},
	{regexp.MustCompile(`^model\.layers\.(\d+)\.attention\.wo\.(weight|bias)$`), "model.layers.$1.self_attn.o_proj.$2"},
	{regexp.MustCompile(`^model\.layers\.(\d+)\.feed_forward\.w1\.weight$`), "model.layers.$1.mlp.gate_proj.weight"},
	{regexp.MustCompile(`^model\.layers\.(\d+)\.feed_forward\.w3\.weight$`), "model.layers.$1.mlp.up_proj.weight"},
	{regexp.MustCompile(`^model\.layers\.(\d+)\.feed_forward\.w2\.weight$`), "model.layers.$1.mlp.down_proj.weight"},
}

// internlm2Name is the Llama name of an InternLM2 checkpoint tensor (the
// name as it is when none matches: wqkv, or an unknown tensor, refused
// later by that name).
func internlm2Name(name string) string {
	for _, n := range internlm2Names {
		if n.re.MatchString(name) {
			return n.re.ReplaceAllString(name, n.repl)
		}
	}
	return name
}

// internlm2Config holds InternLM2Config's names.
type internlm2Config struct {
	Bias *bool `json:"bias"`
}

// internlm2QKVRE matches a layer's fused attention projection.
var internlm2QKVRE = regexp.MustCompile(`^model\.layers\.(\d+)\.attention\.wqkv\.(weight|bias)$`)

// internlm2Hparams checks an InternLM2 config; h has the generic fields.
func (c *hfConfig) internlm2Hparams(arch archSpec, h *hparams) error {
	if c.internErr != nil {
		return fmt.Errorf("convert: config.json: %w", c.internErr)
	}
	bias := c.InternLM2.Bias
	if bias == nil {
		return fmt.Errorf("%w: %s with no bias (InternLM2Config's default is true): llama.cpp's internlm2 has no attention biases", ErrUnsupported, arch.hf)
	}
	if *bias {
		return fmt.Errorf("%w: %s with bias true: llama.cpp's internlm2 has no attention biases", ErrUnsupported, arch.hf)
	}
	if h.heads*h.headDim != h.hidden {
		return fmt.Errorf("%w: %s with %d heads of %d for hidden_size %d: llama.cpp's internlm2 projects the queries to the hidden size", ErrUnsupported, arch.hf, h.heads, h.headDim, h.hidden)
	}
	return nil
}

// internlm2Rope drops InternLM2's dynamic rope scaling, which changes no
// position below max_position_embeddings.
func (c *hfConfig) internlm2Rope(arch archSpec) error {
	s, err := parseRopeJSON(c.RopeScaling, "rope_scaling")
	if err != nil || s == nil {
		return err
	}
	kind := s.RopeType
	if kind == "" {
		kind = s.Type
	}
	if strings.ToLower(kind) == "dynamic" {
		slog.Info("convert: dynamic (NTK) rope scaling only changes positions past max_position_embeddings; converted without it, for contexts up to that length",
			"architecture", arch.hf, "max_position_embeddings", c.MaxPositionEmbeddings)
		c.RopeScaling = nil
	}
	return nil
}

// internlm2QKV plans layer n's wqkv t as attn_q, attn_k and attn_v, q and k
// rows in llama.cpp's adjacent-pair order.
func internlm2QKV(st *safetensors.Model, n int, t safetensors.TensorInfo, h hparams) ([]tensorPlan, error) {
	D, g := h.headDim, h.heads/h.kvHeads
	H := int64(h.hidden)
	if want := []int64{int64((h.heads + 2*h.kvHeads) * D), H}; len(t.Shape) != 2 || t.Shape[0] != want[0] || t.Shape[1] != want[1] {
		return nil, fmt.Errorf("%w: tensor %q has shape %v, config.json implies %v", ErrMismatch, t.Name, t.Shape, want)
	}
	if t.DType == safetensors.F8E4M3 || !t.DType.Supported() {
		return nil, fmt.Errorf("%w: tensor %q has dtype %s; its split reads F32, F16 and BF16 weights", ErrUnsupported, t.Name, t.DType)
	}
	block := (g + 2) * D // one key/value head's rows
	var q, k, v []int
	for j := range h.kvHeads {
		for i := range g {
			q = append(q, pairRows(j*block+i*D, 1, D)...)
		}
		k = append(k, pairRows(j*block+g*D, 1, D)...)
		v = append(v, rowRange(j*block+(g+1)*D, D)...)
	}
	return rowPlans(st, t.Name, n, h.hidden, rowPart{"attn_q", q}, rowPart{"attn_k", k}, rowPart{"attn_v", v}), nil
}
