package convert

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/x448/float16"

	"github.com/llm-go/llm/loader/gguf"
	"github.com/llm-go/llm/loader/safetensors"
)

// tensorPlan is one output tensor.
type tensorPlan struct {
	hfName   string
	ggufName string
	shape    []int64 // row-major (HF) shape
	permute  int     // > 0: permute rows with this many heads
	transpo  bool    // transpose a 2-D [in, out] tensor to [out, in]
	layer    int     // block number, -1 outside the blocks
}

// sortPlan orders the tensors by rank, then by block number (numerically,
// so blk.10 follows blk.9), keeping the checkpoint's order otherwise.
func sortPlan(plan []tensorPlan, rank func(string) int) {
	slices.SortStableFunc(plan, func(a, b tensorPlan) int {
		if r := rank(a.ggufName) - rank(b.ggufName); r != 0 {
			return r
		}
		return a.layer - b.layer
	})
}

// outShape is the row-major shape written.
func (p tensorPlan) outShape() []int64 {
	if p.transpo {
		return []int64{p.shape[1], p.shape[0]}
	}
	return p.shape
}

var layerRE = regexp.MustCompile(`^model\.layers\.(\d+)\.(.+)$`)

// layerNames maps the per-layer HF suffixes to GGUF names.
var layerNames = map[string]string{
	"input_layernorm.weight":          "attn_norm.weight",
	"self_attn.q_proj.weight":         "attn_q.weight",
	"self_attn.k_proj.weight":         "attn_k.weight",
	"self_attn.v_proj.weight":         "attn_v.weight",
	"self_attn.o_proj.weight":         "attn_output.weight",
	"self_attn.q_proj.bias":           "attn_q.bias",
	"self_attn.k_proj.bias":           "attn_k.bias",
	"self_attn.v_proj.bias":           "attn_v.bias",
	"self_attn.o_proj.bias":           "attn_output.bias",
	"post_attention_layernorm.weight": "ffn_norm.weight",
	"mlp.gate_proj.weight":            "ffn_gate.weight",
	"mlp.up_proj.weight":              "ffn_up.weight",
	"mlp.down_proj.weight":            "ffn_down.weight",
}

// expectedShape returns the row-major shape config.json implies for a
// per-layer tensor suffix.
func expectedShape(suffix string, h hparams) []int64 {
	H, I := int64(h.hidden), int64(h.ffn)
	q, kv := int64(h.heads*h.headDim), int64(h.kvHeads*h.headDim)
	switch suffix {
	case "input_layernorm.weight", "post_attention_layernorm.weight", "self_attn.o_proj.bias":
		return []int64{H}
	case "self_attn.q_proj.weight":
		return []int64{q, H}
	case "self_attn.k_proj.weight", "self_attn.v_proj.weight":
		return []int64{kv, H}
	case "self_attn.o_proj.weight":
		return []int64{H, q}
	case "self_attn.q_proj.bias":
		return []int64{q}
	case "self_attn.k_proj.bias", "self_attn.v_proj.bias":
		return []int64{kv}
	case "mlp.gate_proj.weight", "mlp.up_proj.weight":
		return []int64{I, H}
	case "mlp.down_proj.weight":
		return []int64{H, I}
	}
	return nil
}

// ignored are checkpoint tensors that carry no weights llama.cpp needs.
var ignoredRE = regexp.MustCompile(`(^|\.)rotary_emb\.inv_freq$`)

// planTensors maps every checkpoint tensor to its GGUF name and checks its
// shape against the config.
func planTensors(st *safetensors.Model, arch archSpec, h hparams) ([]tensorPlan, error) {
	var plan []tensorPlan
	seen := map[string]bool{}
	V, H := int64(h.vocab), int64(h.hidden)
	for _, t := range st.Tensors() {
		p := tensorPlan{layer: -1}
		var want []int64
		switch {
		case ignoredRE.MatchString(t.Name):
			continue
		case t.Name == "model.embed_tokens.weight":
			p.ggufName, want = "token_embd.weight", []int64{V, H}
		case t.Name == "model.norm.weight":
			p.ggufName, want = "output_norm.weight", []int64{H}
		case t.Name == "lm_head.weight":
			p.ggufName, want = "output.weight", []int64{V, H}
		default:
			m := layerRE.FindStringSubmatch(t.Name)
			if m == nil {
				return nil, fmt.Errorf("%w tensor %q in a %s checkpoint", ErrUnsupported, t.Name, arch.hf)
			}
			n, err := strconv.Atoi(m[1])
			if err != nil || n >= h.layers {
				return nil, fmt.Errorf("%w: tensor %q: layer %s is outside num_hidden_layers %d", ErrMismatch, t.Name, m[1], h.layers)
			}
			g, ok := layerNames[m[2]]
			if !ok {
				return nil, fmt.Errorf("%w tensor %q in a %s checkpoint", ErrUnsupported, t.Name, arch.hf)
			}
			p.ggufName, p.layer = fmt.Sprintf("blk.%d.%s", n, g), n
			want = expectedShape(m[2], h)
			if arch.permute {
				switch m[2] {
				case "self_attn.q_proj.weight", "self_attn.q_proj.bias":
					p.permute = h.heads
				case "self_attn.k_proj.weight", "self_attn.k_proj.bias":
					p.permute = h.kvHeads
				}
			}
		}
		if !slices.Equal(t.Shape, want) {
			return nil, fmt.Errorf("%w: tensor %q has shape %v, config.json implies %v", ErrMismatch, t.Name, t.Shape, want)
		}
		p.hfName, p.shape = t.Name, t.Shape
		seen[p.ggufName] = true
		plan = append(plan, p)
	}

	required := []string{"token_embd.weight", "output_norm.weight"}
	if !h.tied {
		required = append(required, "output.weight")
	}
	for i := range h.layers {
		for _, s := range []string{"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"} {
			required = append(required, fmt.Sprintf("blk.%d.%s.weight", i, s))
		}
		if arch.gguf == "qwen2" {
			for _, s := range []string{"attn_q", "attn_k", "attn_v"} {
				required = append(required, fmt.Sprintf("blk.%d.%s.bias", i, s))
			}
		}
	}
	for _, r := range required {
		if !seen[r] {
			return nil, fmt.Errorf("%w: the checkpoint has no tensor for %s", ErrMismatch, r)
		}
	}
	// Keep llama.cpp's conventional order: token_embd, blocks, output_norm,
	// output. The safetensors order (by name) already groups the blocks.
	sortPlan(plan, rank)
	return plan, nil
}

func rank(name string) int {
	switch name {
	case "token_embd.weight":
		return 0
	case "output_norm.weight":
		return 2
	case "output.weight":
		return 3
	}
	return 1
}

// permuteRows reorders the rows of a [rows, cols] matrix (or a vector,
// cols = 1) from Hugging Face's rotate_half layout to the adjacent-pair
// layout: within each head, reshape (2, headDim/2) → swap → flatten, as
// convert_hf_to_gguf.py's permute(w, n_head, n_head_kv) does.
func permuteRows(src []float32, rows, cols, heads int) ([]float32, error) {
	if rows%heads != 0 || (rows/heads)%2 != 0 {
		return nil, fmt.Errorf("cannot permute %d rows over %d heads", rows, heads)
	}
	hd := rows / heads
	half := hd / 2
	dst := make([]float32, len(src))
	for h := range heads {
		for i := range half {
			for j := range 2 {
				newRow := h*hd + i*2 + j
				oldRow := h*hd + j*half + i
				copy(dst[newRow*cols:(newRow+1)*cols], src[oldRow*cols:(oldRow+1)*cols])
			}
		}
	}
	return dst, nil
}

// writeTensor reads one tensor, converts it and writes it as typ.
func writeTensor(w io.Writer, st *safetensors.Model, p tensorPlan, typ gguf.Type) error {
	data, err := st.Float32s(p.hfName)
	if err != nil {
		return err
	}
	if p.transpo {
		data = transpose(data, int(p.shape[0]), int(p.shape[1]))
	}
	if p.permute > 0 {
		rows, cols := int(p.shape[0]), 1
		if len(p.shape) == 2 {
			cols = int(p.shape[1])
		}
		if data, err = permuteRows(data, rows, cols, p.permute); err != nil {
			return fmt.Errorf("tensor %q: %w", p.hfName, err)
		}
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	var buf [4]byte
	switch typ {
	case gguf.TypeF32:
		for _, v := range data {
			binary.LittleEndian.PutUint32(buf[:], math.Float32bits(v))
			if _, err := bw.Write(buf[:4]); err != nil {
				return err
			}
		}
	case gguf.TypeF16:
		for _, v := range data {
			binary.LittleEndian.PutUint16(buf[:], float16.Fromfloat32(v).Bits())
			if _, err := bw.Write(buf[:2]); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("tensor %q: output type %v: %w", p.hfName, typ, ErrUnsupported)
	}
	return bw.Flush()
}

// transpose returns the [cols, rows] transpose of a row-major [rows, cols]
// matrix.
func transpose(src []float32, rows, cols int) []float32 {
	dst := make([]float32, len(src))
	for r := range rows {
		for c := range cols {
			dst[c*rows+r] = src[r*cols+c]
		}
	}
	return dst
}

var gpt2LayerRE = regexp.MustCompile(`^h\.(\d+)\.(.+)$`)

// gpt2Ignored are GPT-2 buffers (attention masks) some checkpoints carry.
var gpt2Ignored = regexp.MustCompile(`^h\.\d+\.attn\.(bias|masked_bias)$`)

// planGPT2 maps a GPT2LMHeadModel checkpoint (with or without the
// "transformer." prefix).
func planGPT2(st *safetensors.Model, h hparams) ([]tensorPlan, error) {
	H, I, V, P := int64(h.hidden), int64(h.ffn), int64(h.vocab), int64(h.ctxLen)
	layer := map[string]struct {
		name  string
		shape []int64
		trans bool
	}{
		"ln_1.weight":        {"attn_norm.weight", []int64{H}, false},
		"ln_1.bias":          {"attn_norm.bias", []int64{H}, false},
		"attn.c_attn.weight": {"attn_qkv.weight", []int64{H, 3 * H}, true},
		"attn.c_attn.bias":   {"attn_qkv.bias", []int64{3 * H}, false},
		"attn.c_proj.weight": {"attn_output.weight", []int64{H, H}, true},
		"attn.c_proj.bias":   {"attn_output.bias", []int64{H}, false},
		"ln_2.weight":        {"ffn_norm.weight", []int64{H}, false},
		"ln_2.bias":          {"ffn_norm.bias", []int64{H}, false},
		"mlp.c_fc.weight":    {"ffn_up.weight", []int64{H, I}, true},
		"mlp.c_fc.bias":      {"ffn_up.bias", []int64{I}, false},
		"mlp.c_proj.weight":  {"ffn_down.weight", []int64{I, H}, true},
		"mlp.c_proj.bias":    {"ffn_down.bias", []int64{H}, false},
	}
	var plan []tensorPlan
	seen := map[string]bool{}
	for _, t := range st.Tensors() {
		name := strings.TrimPrefix(t.Name, "transformer.")
		p := tensorPlan{layer: -1}
		var want []int64
		switch {
		case gpt2Ignored.MatchString(name):
			continue
		case name == "wte.weight":
			p.ggufName, want = "token_embd.weight", []int64{V, H}
		case name == "wpe.weight":
			p.ggufName, want = "position_embd.weight", []int64{P, H}
		case name == "ln_f.weight":
			p.ggufName, want = "output_norm.weight", []int64{H}
		case name == "ln_f.bias":
			p.ggufName, want = "output_norm.bias", []int64{H}
		case name == "lm_head.weight":
			if h.tied {
				continue // the same values as wte; llama.cpp ties output to token_embd
			}
			p.ggufName, want = "output.weight", []int64{V, H}
		default:
			m := gpt2LayerRE.FindStringSubmatch(name)
			if m == nil {
				return nil, fmt.Errorf("%w tensor %q in a GPT2LMHeadModel checkpoint", ErrUnsupported, t.Name)
			}
			n, err := strconv.Atoi(m[1])
			if err != nil || n >= h.layers {
				return nil, fmt.Errorf("%w: tensor %q: layer %s is outside n_layer %d", ErrMismatch, t.Name, m[1], h.layers)
			}
			l, ok := layer[m[2]]
			if !ok {
				return nil, fmt.Errorf("%w tensor %q in a GPT2LMHeadModel checkpoint", ErrUnsupported, t.Name)
			}
			p.ggufName, want, p.transpo, p.layer = fmt.Sprintf("blk.%d.%s", n, l.name), l.shape, l.trans, n
		}
		if !slices.Equal(t.Shape, want) {
			return nil, fmt.Errorf("%w: tensor %q has shape %v, config.json implies %v", ErrMismatch, t.Name, t.Shape, want)
		}
		if seen[p.ggufName] {
			return nil, fmt.Errorf("%w: tensor %q appears twice", ErrMismatch, p.ggufName)
		}
		p.hfName, p.shape = t.Name, t.Shape
		seen[p.ggufName] = true
		plan = append(plan, p)
	}
	required := []string{"token_embd.weight", "position_embd.weight", "output_norm.weight", "output_norm.bias"}
	if !h.tied {
		required = append(required, "output.weight")
	}
	for i := range h.layers {
		for _, l := range layer {
			required = append(required, fmt.Sprintf("blk.%d.%s", i, l.name))
		}
	}
	for _, r := range required {
		if !seen[r] {
			return nil, fmt.Errorf("%w: the checkpoint has no tensor for %s", ErrMismatch, r)
		}
	}
	sortPlan(plan, gpt2Rank)
	return plan, nil
}

// gpt2Rank orders the GPT-2 tensors as llama.cpp's converter writes them.
func gpt2Rank(name string) int {
	switch name {
	case "token_embd.weight":
		return 0
	case "position_embd.weight":
		return 1
	case "output_norm.weight":
		return 3
	case "output_norm.bias":
		return 4
	case "output.weight":
		return 5
	}
	return 2
}
