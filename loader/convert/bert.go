package convert

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/llm-go/llm/loader/safetensors"
)

// checkWordPiece refuses a WordPiece tokenizer.json that llama.cpp's bert
// tokenizer would not reproduce. llama.cpp always applies BERT's
// normalization with lowercasing (NFD, lower case, punctuation and CJK
// characters split off, whitespace split) and "##" continuations, so the
// tokenizer must declare a BertNormalizer that lowercases, a
// BertPreTokenizer and the "##" prefix.
func checkWordPiece(tj tokenizerJSON) error {
	var norm struct {
		Type      string `json:"type"`
		Lowercase *bool  `json:"lowercase"`
	}
	if !isNull(tj.Normalizer) {
		if err := json.Unmarshal(tj.Normalizer, &norm); err != nil {
			return fmt.Errorf("convert: tokenizer.json: normalizer: %w", err)
		}
	}
	if norm.Type != "BertNormalizer" || (norm.Lowercase != nil && !*norm.Lowercase) {
		lc := "unset"
		if norm.Lowercase != nil {
			lc = fmt.Sprint(*norm.Lowercase)
		}
		return fmt.Errorf("%w WordPiece tokenizer: normalizer %q with lowercase %s; llama.cpp's bert tokenizer always normalizes as a lowercasing BertNormalizer",
			ErrUnsupported, norm.Type, lc)
	}
	var pre struct {
		Type string `json:"type"`
	}
	if !isNull(tj.PreTokenizer) {
		if err := json.Unmarshal(tj.PreTokenizer, &pre); err != nil {
			return fmt.Errorf("convert: tokenizer.json: pre_tokenizer: %w", err)
		}
	}
	if pre.Type != "BertPreTokenizer" {
		return fmt.Errorf("%w WordPiece tokenizer: pre_tokenizer %q; llama.cpp's bert tokenizer always splits as BertPreTokenizer", ErrUnsupported, pre.Type)
	}
	if p := tj.Model.ContinuingSubwordPrefix; p != nil && *p != "##" {
		return fmt.Errorf("%w WordPiece tokenizer: continuing_subword_prefix %q; llama.cpp's bert tokenizer uses \"##\"", ErrUnsupported, *p)
	}
	return nil
}

// bertHparams reads a BertModel config.json: BERT's post-norm encoder with
// learned absolute positions and token types, LayerNorm (layer_norm_eps,
// transformers' default 1e-12) and GELU.
func (c *hfConfig) bertHparams(arch archSpec) (hparams, error) {
	h := hparams{
		hidden: c.HiddenSize,
		ffn:    c.IntermediateSize,
		layers: c.NumHiddenLayers,
		heads:  c.NumAttentionHeads,
		vocab:  c.VocabSize,
		ctxLen: c.MaxPositionEmbeddings,
		rmsEps: 1e-12,
		// transformers' BertConfig default.
		typeVocab: 2,
	}
	if c.LayerNormEps != nil {
		h.rmsEps = *c.LayerNormEps
	}
	if c.TypeVocabSize != nil {
		h.typeVocab = *c.TypeVocabSize
	}
	h.labels = len(c.ID2Label)
	for _, f := range []struct {
		name string
		v    int
	}{
		{"hidden_size", h.hidden}, {"intermediate_size", h.ffn}, {"num_hidden_layers", h.layers},
		{"num_attention_heads", h.heads}, {"vocab_size", h.vocab}, {"max_position_embeddings", h.ctxLen},
		{"type_vocab_size", h.typeVocab},
	} {
		if f.v <= 0 {
			return h, fmt.Errorf("%w: config.json: %s is missing or not positive", ErrMismatch, f.name)
		}
	}
	if h.hidden%h.heads != 0 {
		return h, fmt.Errorf("%w: config.json: hidden_size %d is not a multiple of num_attention_heads %d", ErrMismatch, h.hidden, h.heads)
	}
	h.kvHeads, h.headDim = h.heads, h.hidden/h.heads
	if arch.roberta {
		// RoBERTa numbers positions from pad_token_id+1: the rows before
		// are never read, and are left out.
		pad := 1
		if n, ok := firstID(c.PadTokenID); ok {
			pad = n
		}
		h.posOffset = pad + 1
		if pad < 0 || h.ctxLen <= h.posOffset {
			return h, fmt.Errorf("%w: config.json: max_position_embeddings %d with pad_token_id %d leaves no positions", ErrMismatch, h.ctxLen, pad)
		}
		h.ctxLen -= h.posOffset
	}
	if arch.gguf == "jina-bert-v2" {
		// GEGLU's GELU is fixed; hidden_act is not read.
		return h, c.jinaBertCheck(arch)
	}
	if arch.gguf == "jina-bert-v3" {
		if err := c.jinaV3Hparams(&h); err != nil {
			return h, err
		}
	}
	switch c.HiddenAct {
	case "", "gelu", "gelu_new", "gelu_pytorch_tanh":
		// llama.cpp's bert graph uses GELU (the tanh form).
	default:
		return h, fmt.Errorf("%w: BertModel with hidden_act %q (llama.cpp's bert arch uses GELU)", ErrUnsupported, c.HiddenAct)
	}
	if p := c.PositionEmbeddingType; p != "" && p != "absolute" && arch.gguf != "jina-bert-v3" {
		return h, fmt.Errorf("%w: BertModel with position_embedding_type %q (llama.cpp's bert arch has absolute positions)", ErrUnsupported, p)
	}
	if c.IsDecoder {
		return h, fmt.Errorf("%w: BertModel with is_decoder true (llama.cpp's bert arch is a bidirectional encoder)", ErrUnsupported)
	}
	return h, nil
}

// llama.cpp pooling types (llama_pooling_type).
const (
	poolingMean = 1
	poolingCLS  = 2
	poolingLast = 3
	poolingRank = 4
)

// readPooling returns the pooling type of a sentence-transformers
// checkpoint (see readSentence), mean when it names none.
func readPooling(dir string) (uint32, error) {
	st, err := readSentence(dir)
	if err == nil {
		err = st.check(false)
	}
	if err != nil || st.found {
		return st.pooling, err
	}
	return poolingMean, nil
}

// sentenceKinds are the sentence-transformers modules (the last part of
// modules.json's type) the converter knows: the model itself, its pooling,
// Dense projections (which llama.cpp runs for gemma-embedding only) and the
// normalisation (which Embed always does).
var sentenceKinds = []string{"Transformer", "Pooling", "Dense", "Normalize"}

// sentence describes a sentence-transformers checkpoint's modules.
type sentence struct {
	pooling uint32 // llama.cpp's pooling type
	found   bool   // a Pooling module names it
	// dense are the Dense modules after the pooling, in order.
	dense []denseModule
	// unknown says why llama.cpp cannot reproduce the embedding: a module
	// it does not run, a Dense module before the pooling ("" when none).
	unknown string
}

// check refuses a checkpoint whose modules llama.cpp does not run, for an
// embedding model (a reranker's modules act on its scores, which llama.cpp
// computes its own way).
func (st sentence) check(reranker bool) error {
	if st.unknown != "" && !reranker {
		return fmt.Errorf("%w: %s", ErrUnsupported, st.unknown)
	}
	return nil
}

// denseModule is a sentence-transformers Dense module: a linear layer
// from in to out features, without bias or activation, its weight
// linear.weight [out, in] in dir/model.safetensors.
type denseModule struct {
	dir     string
	in, out int
}

// readSentence reads a sentence-transformers checkpoint's modules.json
// (or, without one, 1_Pooling/config.json): the pooling and the Dense
// modules. Modules the converter does not know, or Dense modules before
// the pooling, are reported in unknown (see check); Dense modules with a
// bias or an activation are refused: the embeddings would silently
// differ.
func readSentence(dir string) (sentence, error) {
	var st sentence
	path := ""
	if raw, err := os.ReadFile(filepath.Join(dir, "modules.json")); err == nil {
		var mods []struct {
			Type string `json:"type"`
			Path string `json:"path"`
		}
		if err := json.Unmarshal(raw, &mods); err != nil {
			return st, fmt.Errorf("convert: modules.json: %w", err)
		}
		for _, m := range mods {
			kind := m.Type[strings.LastIndex(m.Type, ".")+1:]
			switch {
			case !slices.Contains(sentenceKinds, kind):
				if st.unknown == "" {
					st.unknown = fmt.Sprintf("sentence-transformers module %q (modules.json): llama.cpp runs the model, its pooling, Dense projections (gemma-embedding) and normalisation only", m.Type)
				}
			case kind == "Pooling" && path == "":
				path = m.Path
			case kind == "Dense" && path == "":
				if st.unknown == "" {
					st.unknown = fmt.Sprintf("a sentence-transformers Dense module (%s) before the pooling: llama.cpp projects the pooled embedding", m.Path)
				}
			case kind == "Dense":
				d, err := readDense(dir, m.Path)
				if err != nil {
					return st, err
				}
				st.dense = append(st.dense, d)
			}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return st, fmt.Errorf("convert: %w", err)
	} else if _, err := os.Stat(filepath.Join(dir, "1_Pooling", "config.json")); err == nil {
		path = "1_Pooling"
	}
	if path == "" {
		return st, nil
	}
	file := filepath.Join(dir, filepath.FromSlash(path), "config.json")
	raw, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return st, fmt.Errorf("%w: modules.json names the Pooling module %s, which has no config.json", ErrMismatch, path)
	}
	if err != nil {
		return st, fmt.Errorf("convert: pooling: %w", err)
	}
	var pc struct {
		Mean bool   `json:"pooling_mode_mean_tokens"`
		CLS  bool   `json:"pooling_mode_cls_token"`
		Last bool   `json:"pooling_mode_lasttoken"`
		Mode string `json:"pooling_mode"`
	}
	if err := json.Unmarshal(raw, &pc); err != nil {
		return st, fmt.Errorf("convert: %s: %w", file, err)
	}
	st.found = true
	switch {
	case pc.Mean || pc.Mode == "mean":
		st.pooling = poolingMean
	case pc.CLS || pc.Mode == "cls":
		st.pooling = poolingCLS
	case pc.Last || pc.Mode == "lasttoken":
		st.pooling = poolingLast
	default:
		return st, fmt.Errorf("%w pooling in %s: only mean, cls and lasttoken pooling are in llama.cpp", ErrUnsupported, file)
	}
	return st, nil
}

// readDense reads the config.json of the Dense module in dir/path: a
// linear layer without bias and with the identity activation, as
// llama.cpp runs it.
func readDense(dir, path string) (denseModule, error) {
	d := denseModule{dir: filepath.Join(dir, filepath.FromSlash(path))}
	file := filepath.Join(d.dir, "config.json")
	raw, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return d, fmt.Errorf("%w: modules.json names the Dense module %s, which has no config.json", ErrMismatch, path)
	}
	if err != nil {
		return d, fmt.Errorf("convert: Dense module: %w", err)
	}
	var dc struct {
		In   int    `json:"in_features"`
		Out  int    `json:"out_features"`
		Bias *bool  `json:"bias"`
		Act  string `json:"activation_function"`
	}
	if err := json.Unmarshal(raw, &dc); err != nil {
		return d, fmt.Errorf("convert: %s: %w", file, err)
	}
	switch {
	case dc.In <= 0 || dc.Out <= 0:
		return d, fmt.Errorf("%w: %s: in_features %d and out_features %d must be positive", ErrMismatch, file, dc.In, dc.Out)
	case dc.Bias == nil || *dc.Bias:
		return d, fmt.Errorf("%w: a sentence-transformers Dense module with a bias (%s): llama.cpp's projection has none", ErrUnsupported, file)
	case !strings.HasSuffix(dc.Act, "Identity"):
		return d, fmt.Errorf("%w: a sentence-transformers Dense module with activation %q (%s): llama.cpp's projection is linear", ErrUnsupported, dc.Act, file)
	}
	d.in, d.out = dc.In, dc.Out
	return d, nil
}

// bertTensor is the GGUF name and the row-major shape of a BERT tensor.
type bertTensor struct {
	name  string
	shape []int64
}

var bertLayerRE = regexp.MustCompile(`^encoder\.layer\.(\d+)\.(.+)$`)

// bertIgnored are BertModel and BertForMaskedLM tensors llama.cpp's bert
// arch has no use for: the position ids buffer, the pooler and the
// pre-training heads (as convert_hf_to_gguf.py skips them).
var bertIgnored = regexp.MustCompile(`^(embeddings\.position_ids|pooler\..*|cls\.(predictions|seq_relationship)\..*)$`)

// planBERT maps a BertModel checkpoint, with or without the "bert." prefix
// (the sentence-transformers layout has none), to llama.cpp's bert names.
// Old checkpoints' LayerNorm gamma and beta are read as weight and bias.
// With classifier (BertForSequenceClassification), the pooler becomes
// llama.cpp's cls (a dense layer and tanh) and the classifier cls.output.
func planBERT(st *safetensors.Model, h hparams, arch archSpec) ([]tensorPlan, error) {
	if arch.roberta && flashLayout(st) {
		return planFlashXLMR(st, h, arch)
	}
	classifier := arch.classifier
	H, I, V, P, T := int64(h.hidden), int64(h.ffn), int64(h.vocab), int64(h.ctxLen), int64(h.typeVocab)
	top := map[string]bertTensor{
		"embeddings.word_embeddings.weight":       {"token_embd.weight", []int64{V, H}},
		"embeddings.position_embeddings.weight":   {"position_embd.weight", []int64{P, H}},
		"embeddings.token_type_embeddings.weight": {"token_types.weight", []int64{T, H}},
		"embeddings.LayerNorm.weight":             {"token_embd_norm.weight", []int64{H}},
		"embeddings.LayerNorm.bias":               {"token_embd_norm.bias", []int64{H}},
	}
	switch {
	case classifier && arch.roberta:
		// RobertaClassificationHead: the first token through dense, tanh,
		// out_proj.
		L := int64(max(h.labels, 1))
		top["classifier.dense.weight"] = bertTensor{"cls.weight", []int64{H, H}}
		top["classifier.dense.bias"] = bertTensor{"cls.bias", []int64{H}}
		top["classifier.out_proj.weight"] = bertTensor{"cls.output.weight", []int64{L, H}}
		top["classifier.out_proj.bias"] = bertTensor{"cls.output.bias", []int64{L}}
	case classifier:
		L := int64(max(h.labels, 1))
		top["pooler.dense.weight"] = bertTensor{"cls.weight", []int64{H, H}}
		top["pooler.dense.bias"] = bertTensor{"cls.bias", []int64{H}}
		top["classifier.weight"] = bertTensor{"cls.output.weight", []int64{L, H}}
		top["classifier.bias"] = bertTensor{"cls.output.bias", []int64{L}}
	}
	if h.posOffset > 0 {
		top["embeddings.position_embeddings.weight"] = bertTensor{"position_embd.weight", []int64{P + int64(h.posOffset), H}}
	}
	layer := map[string]bertTensor{
		"attention.self.query.weight":       {"attn_q.weight", []int64{H, H}},
		"attention.self.query.bias":         {"attn_q.bias", []int64{H}},
		"attention.self.key.weight":         {"attn_k.weight", []int64{H, H}},
		"attention.self.key.bias":           {"attn_k.bias", []int64{H}},
		"attention.self.value.weight":       {"attn_v.weight", []int64{H, H}},
		"attention.self.value.bias":         {"attn_v.bias", []int64{H}},
		"attention.output.dense.weight":     {"attn_output.weight", []int64{H, H}},
		"attention.output.dense.bias":       {"attn_output.bias", []int64{H}},
		"attention.output.LayerNorm.weight": {"attn_output_norm.weight", []int64{H}},
		"attention.output.LayerNorm.bias":   {"attn_output_norm.bias", []int64{H}},
		"intermediate.dense.weight":         {"ffn_up.weight", []int64{I, H}},
		"intermediate.dense.bias":           {"ffn_up.bias", []int64{I}},
		"output.dense.weight":               {"ffn_down.weight", []int64{H, I}},
		"output.dense.bias":                 {"ffn_down.bias", []int64{H}},
		"output.LayerNorm.weight":           {"layer_output_norm.weight", []int64{H}},
		"output.LayerNorm.bias":             {"layer_output_norm.bias", []int64{H}},
	}
	if arch.gguf == "jina-bert-v2" {
		delete(top, "embeddings.position_embeddings.weight")
		jinaLayer(layer, st, h)
	}
	var plan []tensorPlan
	seen := map[string]bool{}
	for _, t := range st.Tensors() {
		name := strings.TrimPrefix(strings.TrimPrefix(t.Name, "bert."), "roberta.")
		if n, ok := strings.CutSuffix(name, ".gamma"); ok {
			name = n + ".weight"
		} else if n, ok := strings.CutSuffix(name, ".beta"); ok {
			name = n + ".bias"
		}
		if _, head := top[name]; !head && bertIgnored.MatchString(name) {
			continue
		}
		p := tensorPlan{layer: -1}
		var want []int64
		if e, ok := top[name]; ok {
			p.ggufName, want = e.name, e.shape
		} else {
			m := bertLayerRE.FindStringSubmatch(name)
			if m == nil {
				return nil, fmt.Errorf("%w tensor %q in a %s checkpoint", ErrUnsupported, t.Name, arch.hf)
			}
			n, err := strconv.Atoi(m[1])
			if err != nil || n >= h.layers {
				return nil, fmt.Errorf("%w: tensor %q: layer %s is outside num_hidden_layers %d", ErrMismatch, t.Name, m[1], h.layers)
			}
			e, ok := layer[m[2]]
			if !ok {
				return nil, fmt.Errorf("%w tensor %q in a %s checkpoint", ErrUnsupported, t.Name, arch.hf)
			}
			p.ggufName, want, p.layer = fmt.Sprintf("blk.%d.%s", n, e.name), e.shape, n
		}
		if !slices.Equal(t.Shape, want) {
			return nil, fmt.Errorf("%w: tensor %q has shape %v, config.json implies %v", ErrMismatch, t.Name, t.Shape, want)
		}
		if !t.DType.Supported() {
			return nil, fmt.Errorf("%w: tensor %q has dtype %s; the converter reads F32, F16 and BF16 weights", ErrUnsupported, t.Name, t.DType)
		}
		if seen[p.ggufName] {
			return nil, fmt.Errorf("%w: tensor %q appears twice", ErrMismatch, p.ggufName)
		}
		p.hfName, p.shape = t.Name, t.Shape
		if p.ggufName == "position_embd.weight" && h.posOffset > 0 {
			// Without the rows before position 0 (RoBERTa's).
			rows := make([]int, P)
			for i := range rows {
				rows[i] = h.posOffset + i
			}
			name := t.Name
			p.hfName, p.shape = "", []int64{P, H}
			p.derive = func(*tensorWriter) ([]float32, error) { return readRows(st, name, int(H), rows...) }
		}
		if arch.gguf == "jina-bert-v2" && strings.HasSuffix(name, ".mlp.up_gated_layer.weight") {
			// The code model's multiplier first, its gate second: the
			// halves are swapped for llama.cpp's GEGLU (jinabert.go).
			half := int(want[0] / 2)
			rows := make([]int, 2*half)
			for i := range rows {
				rows[i] = (i + half) % (2 * half)
			}
			name, cols := t.Name, int(want[1])
			p.hfName = ""
			p.derive = func(*tensorWriter) ([]float32, error) { return readRows(st, name, cols, rows...) }
		}
		seen[p.ggufName] = true
		plan = append(plan, p)
	}
	var required []string
	for _, e := range top {
		required = append(required, e.name)
	}
	for i := range h.layers {
		for _, e := range layer {
			required = append(required, fmt.Sprintf("blk.%d.%s", i, e.name))
		}
	}
	slices.Sort(required)
	for _, r := range required {
		if !seen[r] {
			return nil, fmt.Errorf("%w: the checkpoint has no tensor for %s", ErrMismatch, r)
		}
	}
	sortPlan(plan, bertRank)
	return plan, nil
}

// bertRank orders the embeddings first, then the blocks.
func bertRank(name string) int {
	switch name {
	case "token_embd.weight":
		return 0
	case "token_types.weight":
		return 1
	case "position_embd.weight":
		return 2
	case "token_embd_norm.weight":
		return 3
	case "token_embd_norm.bias":
		return 4
	}
	return 5
}
