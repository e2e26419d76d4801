package convert

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/llm-go/llm/loader/safetensors"
)

// The layout of Jina AI's XLM-RoBERTa implementation
// (jinaai/xlm-roberta-flash-implementation, used by jina-embeddings-v3 and
// jina-reranker-v2-base-multilingual): XLM-RoBERTa's post-norm encoder with
// the embeddings' LayerNorm as emb_ln, per layer the query, key and value
// projections fused (mixer.Wqkv, their rows in that order), mixer.out_proj,
// norm1 over the attention's sum with its input, mlp.fc1, GELU, mlp.fc2 and
// norm2, all with biases; LoRA-parametrized weights
// (parametrizations.weight.original) in jina-embeddings-v3.

// flashLayer are the block tensors of the layout by suffix, with their
// GGUF names; the biases may be absent (llama.cpp loads them when there).
var flashLayer = map[string]string{
	"mixer.Wqkv.weight":     "attn_qkv.weight",
	"mixer.Wqkv.bias":       "attn_qkv.bias",
	"mixer.out_proj.weight": "attn_output.weight",
	"mixer.out_proj.bias":   "attn_output.bias",
	"norm1.weight":          "attn_output_norm.weight",
	"norm1.bias":            "attn_output_norm.bias",
	"mlp.fc1.weight":        "ffn_up.weight",
	"mlp.fc1.bias":          "ffn_up.bias",
	"mlp.fc2.weight":        "ffn_down.weight",
	"mlp.fc2.bias":          "ffn_down.bias",
	"norm2.weight":          "layer_output_norm.weight",
	"norm2.bias":            "layer_output_norm.bias",
}

// flashShape is the row-major shape of the checkpoint tensor written as
// the GGUF tensor gg (the part after blk.N. for a block's): learned
// positions with the rows before pad_token_id+1 that RoBERTa never reads.
func flashShape(gg string, h hparams) []int64 {
	H, I := int64(h.hidden), int64(h.ffn)
	switch gg {
	case "position_embd.weight":
		return []int64{int64(h.ctxLen + h.posOffset), H}
	case "cls.weight":
		return []int64{H, H}
	case "cls.output.weight":
		return []int64{int64(max(h.labels, 1)), H}
	case "cls.output.bias":
		return []int64{int64(max(h.labels, 1))}
	case "token_embd.weight":
		return []int64{int64(h.vocab), H}
	case "token_types.weight":
		return []int64{int64(h.typeVocab), H}
	case "attn_qkv.weight":
		return []int64{3 * H, H}
	case "attn_qkv.bias":
		return []int64{3 * H}
	case "attn_output.weight":
		return []int64{H, H}
	case "ffn_up.weight":
		return []int64{I, H}
	case "ffn_up.bias":
		return []int64{I}
	case "ffn_down.weight":
		return []int64{H, I}
	}
	return []int64{H} // the norms and the other biases
}

// flashName is a checkpoint tensor's name without the "roberta." prefix
// and with a parametrized weight's ".parametrizations.weight.original" as
// ".weight"; lora is "A" or "B" for a task LoRA factor (name then is the
// module's).
func flashName(hf string) (name, lora string) {
	name = strings.TrimPrefix(hf, "roberta.")
	if m, ok := strings.CutSuffix(name, ".parametrizations.weight.original"); ok {
		return m + ".weight", ""
	}
	if m := loraFactorRE.FindStringSubmatch(name); m != nil {
		return m[1], m[2]
	}
	return name, ""
}

var loraFactorRE = regexp.MustCompile(`^(.+)\.parametrizations\.weight\.0\.lora_(A|B)$`)

// flashIgnored are tensors llama.cpp has no use for: the pooler (pooling
// is llama.cpp's) and rotary frequency buffers.
func flashIgnored(name string) bool {
	return strings.HasPrefix(name, "pooler.") || strings.HasSuffix(name, ".rotary_emb.inv_freq")
}

// planFlashXLMR maps a checkpoint of Jina's XLM-RoBERTa implementation
// (xlm-roberta-flash-implementation; under "roberta." or not, its weights
// parametrized or not): jina-embeddings-v3's rotary encoder
// (jina-bert-v3), or with learned positions XLM-RoBERTa's (bert: llama.cpp
// loads the fused attn_qkv there too), such as jina-reranker-v2's with its
// classification head (cls, cls.output). The task LoRAs are left out
// (jinaV3Adapters).
func planFlashXLMR(st *safetensors.Model, h hparams, arch archSpec) ([]tensorPlan, error) {
	top := map[string]string{
		"embeddings.word_embeddings.weight":       "token_embd.weight",
		"embeddings.token_type_embeddings.weight": "token_types.weight",
		"emb_ln.weight": "token_embd_norm.weight",
		"emb_ln.bias":   "token_embd_norm.bias",
	}
	required := []string{"token_embd.weight", "token_embd_norm.weight", "token_embd_norm.bias"}
	if arch.gguf == "bert" {
		top["embeddings.position_embeddings.weight"] = "position_embd.weight"
		required = append(required, "position_embd.weight")
	}
	if arch.classifier {
		for hf, gg := range map[string]string{"classifier.dense.weight": "cls.weight", "classifier.dense.bias": "cls.bias",
			"classifier.out_proj.weight": "cls.output.weight", "classifier.out_proj.bias": "cls.output.bias"} {
			top[hf] = gg
			required = append(required, gg)
		}
	}
	pl := newPlanner(st, h)
	for _, t := range st.Tensors() {
		name, lora := flashName(t.Name)
		if lora != "" || flashIgnored(name) {
			continue
		}
		if gg, ok := top[name]; ok {
			p := tensorPlan{ggufName: gg, layer: -1}
			if gg == "position_embd.weight" && h.posOffset > 0 {
				// Without the rows before position 0 (RoBERTa's).
				rows := make([]int, h.ctxLen)
				for i := range rows {
					rows[i] = h.posOffset + i
				}
				hf, H := t.Name, h.hidden
				p.shape = []int64{int64(h.ctxLen), int64(H)}
				p.derive = func(*tensorWriter) ([]float32, error) { return readRows(st, hf, H, rows...) }
			}
			if err := pl.add(p, t, flashShape(gg, h)); err != nil {
				return nil, err
			}
			continue
		}
		n, suffix, err := blockOf(nomicLayerRE, name, h.layers, arch)
		if err != nil {
			return nil, err
		}
		gg, ok := flashLayer[suffix]
		if !ok {
			return nil, fmt.Errorf("%w tensor %q in a %s checkpoint of Jina's XLM-RoBERTa layout", ErrUnsupported, t.Name, arch.hf)
		}
		if err := pl.add(tensorPlan{ggufName: fmt.Sprintf("blk.%d.%s", n, gg), layer: n}, t, flashShape(gg, h)); err != nil {
			return nil, err
		}
	}
	if h.typeVocab > 0 {
		required = append(required, "token_types.weight")
	}
	for n := range h.layers {
		for _, gg := range flashLayer {
			if strings.HasSuffix(gg, ".weight") || strings.Contains(gg, "norm") {
				required = append(required, fmt.Sprintf("blk.%d.%s", n, gg))
			}
		}
	}
	return pl.finish(required)
}

// flashLayout reports whether a checkpoint has the layout of Jina's
// XLM-RoBERTa implementation (fused mixer.Wqkv projections).
func flashLayout(st *safetensors.Model) bool {
	for _, t := range st.Tensors() {
		if strings.Contains(t.Name, ".mixer.Wqkv.") {
			return true
		}
	}
	return false
}
