package convert

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/llm-go/llm/internal/pyjson"
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
	ModelMaxLength        json.RawMessage `json:"model_max_length"` // Command R
	ClipQKV               *float64        `json:"clip_qkv"`         // OLMo, OLMoE
	UseBias               *bool           `json:"use_bias"`         // ERNIE 4.5
	MLPBias               *bool           `json:"mlp_bias"`         // Seed-OSS
	VocabSize             int             `json:"vocab_size"`
	TieWordEmbeddings     *bool           `json:"tie_word_embeddings"`
	HeadDim               int             `json:"head_dim"`
	BOSTokenID            json.RawMessage `json:"bos_token_id"`
	EOSTokenID            json.RawMessage `json:"eos_token_id"`
	PadTokenID            json.RawMessage `json:"pad_token_id"`
	RopeScaling           json.RawMessage `json:"rope_scaling"`
	PartialRotaryFactor   *float64        `json:"partial_rotary_factor"`
	OrigMaxPos            json.RawMessage `json:"original_max_position_embeddings"`
	SlidingWindow         json.RawMessage `json:"sliding_window"`
	AttnLogitSoftcapping  json.RawMessage `json:"attn_logit_softcapping"`
	FinalLogitSoftcapping json.RawMessage `json:"final_logit_softcapping"`
	QueryPreAttnScalar    json.RawMessage `json:"query_pre_attn_scalar"`

	// Gemma 3.
	TextConfig           json.RawMessage `json:"text_config"`
	RopeLocalBaseFreq    json.RawMessage `json:"rope_local_base_freq"`
	SlidingWindowPattern json.RawMessage `json:"sliding_window_pattern"`
	LayerTypes           json.RawMessage `json:"layer_types"`
	HiddenActivation     string          `json:"hidden_activation"`
	// EmbeddingGemma: attention both ways.
	UseBidirectionalAttention *bool `json:"use_bidirectional_attention"`

	// quantization_config: FP8 checkpoints' block size (fp8.go).
	Quant json.RawMessage `json:"quantization_config"`

	// allowMrope: rope() reads a multimodal rope as the plain one (a VL
	// model's text model).
	allowMrope bool `json:"-"`

	// Command R's logit multiplier.
	LogitScale *float64 `json:"logit_scale"`

	// Ministral 3's attention temperature, when not in rope_parameters.
	Llama4ScalingBeta *float64 `json:"llama_4_scaling_beta"`

	// Mixture of experts.
	MoE moeConfig `json:"-"`
	// gpt-oss.
	GptOSS gptOSSConfig `json:"-"`
	// DeepSeek V2 and V3, and GLM-4.5's experts.
	DeepSeek deepseekConfig `json:"-"`
	// GLM-4.5's attention.
	GLM glmConfig `json:"-"`
	// ERNIE 4.5 MoE's experts.
	Ernie ernieConfig `json:"-"`
	// Granite 4.0's layers, Mamba-2 mixers and shared MLP.
	GraniteH graniteHybridConfig `json:"-"`
	// Nemotron-H's blocks and Mamba-2 mixers.
	NemotronH nemotronHConfig `json:"-"`
	// LFM2's layers, convolutions and experts, and why they did not
	// decode (reported for LFM2 only: other configs may use the names
	// otherwise).
	LFM2    lfm2Config `json:"-"`
	lfm2Err error
	// MiniMax-M2's fields, and why they did not decode.
	MiniMax minimaxConfig `json:"-"`
	mmErr   error
	// Qwen3-Next's DeltaNet fields, and why they did not decode.
	Qwen3Next qwen3NextConfig `json:"-"`
	q3nErr    error
	// Falcon-H1's Mamba-2 sizes and multipliers, and why they did not
	// decode.
	FalconH1 falconH1Config `json:"-"`
	fh1Err   error
	// Bamba's fields, and their decoding error.
	Bamba    bambaConfig `json:"-"`
	bambaErr error
	// Apertus's fields, and their decoding error.
	Apertus    apertusConfig `json:"-"`
	apertusErr error
	// Llama 4's text fields, and their decoding error.
	Llama4 llama4Config `json:"-"`
	l4Err  error
	// NomicBertConfig's fields, and their decoding error.
	NomicBert nomicBertConfig `json:"-"`
	nbErr     error
	// jina-embeddings-v3's rotary embedding and task adapters, and their
	// decoding error.
	JinaV3 jinaV3Config `json:"-"`
	jv3Err error
	// ExaoneConfig's names, and their decoding error.
	Exaone    exaoneConfig `json:"-"`
	exaoneErr error
	// FalconConfig's names, and their decoding error.
	Falcon    falconConfig `json:"-"`
	falconErr error
	// MambaConfig's names, and their decoding error.
	Mamba    mambaConfig `json:"-"`
	mambaErr error
	// JambaConfig's names, and their decoding error.
	Jamba    jambaConfig `json:"-"`
	jambaErr error
	// Dots1Config's sliding-window names, and their decoding error.
	Dots1    dots1Config `json:"-"`
	dots1Err error
	// BloomConfig's names, and their decoding error.
	Bloom    bloomConfig `json:"-"`
	bloomErr error
	// InternLM2Config's names, and their decoding error.
	InternLM2 internlm2Config `json:"-"`
	internErr error
	// MiniCPM's µP scales, and their decoding error.
	MiniCPM    miniCPMConfig `json:"-"`
	miniCPMErr error
	// BailingMoeV2Config's names, and their decoding error.
	Bailing    bailingConfig `json:"-"`
	bailingErr error
	// DeciLMConfig's block_configs, and their decoding error.
	Deci    deciConfig `json:"-"`
	deciErr error
	// OlmoConfig's clip_qkv, and its decoding error.
	Olmo1    olmo1Config `json:"-"`
	olmo1Err error
	// GPTBigCodeConfig's names, and their decoding error.
	BigCode bigCodeConfig `json:"-"`
	bcErr   error
	// Starcoder2Config's and NemotronConfig's names, and their decoding
	// error.
	LNLlama lnLlamaConfig `json:"-"`
	lnErr   error

	// raw is config.json as read (Python's constants made JSON).
	raw json.RawMessage

	// A classifier's labels by id ("0": "LABEL_0").
	ID2Label map[string]string `json:"id2label"`

	// SmolLM3: per layer, 1 when it has a rotary embedding, 0 when not,
	// and the step of the layers without when that list is absent.
	NoRopeLayers        []int `json:"no_rope_layers"`
	NoRopeLayerInterval *int  `json:"no_rope_layer_interval"`

	// Granite's multipliers.
	EmbeddingMultiplier *float64 `json:"embedding_multiplier"`
	ResidualMultiplier  *float64 `json:"residual_multiplier"`
	AttentionMultiplier *float64 `json:"attention_multiplier"`
	LogitsScaling       *float64 `json:"logits_scaling"`

	// BERT.
	TypeVocabSize         *int     `json:"type_vocab_size"`
	LayerNormEps          *float64 `json:"layer_norm_eps"`
	HiddenAct             string   `json:"hidden_act"`
	PositionEmbeddingType string   `json:"position_embedding_type"`
	IsDecoder             bool     `json:"is_decoder"`
	// JinaBertConfig's MLP: "original" (BERT's) or a GLU ("geglu").
	FeedForwardType string `json:"feed_forward_type"`

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
	attnBias, mlpBias                                           bool    // StarCoder2's and Nemotron's biases
	parallel                                                    bool    // GPT-NeoX's use_parallel_residual
	clampKQV                                                    float64 // OLMo's clip_qkv (0: none)
	ropeDim                                                     int     // rotated dimensions per head
	rope                                                        ropeScaling
	// Gemma 2 and 3: soft-capping and sliding window (0: none).
	attnSoftcap, finalSoftcap float64
	slidingWindow             int
	// BERT: the number of token types (type_vocab_size).
	typeVocab int
	// BERT classifiers: the number of labels (id2label; 0 when none).
	labels int
	// Mixture of experts: the experts, those used per token, and an
	// expert's MLP width.
	experts, expertsUsed, expertFFN int
	sharedFFN                       int // the shared expert's width (Qwen2-MoE)
	// attnTemp is Ministral 3's attention temperature β
	// (llama_4_scaling_beta).
	attnTemp float64
	// ds holds DeepSeek's attention sizes (deepseek.go), smoe the MLP of
	// DeepSeek and GLM-4.5 (sharedmoe.go).
	ds   *deepseekHparams
	smoe *sharedMoE
	// gh is Granite 4.0's layout (granite4.go), nh Nemotron-H's
	// (nemotronh.go).
	gh *graniteHybrid
	nh *nemotronH
	// lfm is LFM2's layout (lfm2.go), q3n Qwen3-Next's (qwen3next.go),
	// fh1 Falcon-H1's (falconh1.go).
	lfm *lfm2
	q3n *qwen3Next
	fh1 *falconH1
	// l4 is Llama 4's layout (llama4.go).
	l4 *llama4
	// mamba is a Mamba-1 model's mixer, mamba2 a Mamba-2 model's
	// (mamba.go).
	mamba  *mambaDims
	mamba2 *graniteHybrid
	// jamba is a Jamba model's layout (jamba.go), deci a DeciLM model's
	// (deci.go), g3n Gemma 3n's (gemma3n.go).
	jamba *jamba
	deci  *deciLayers
	g3n   *gemma3n
	// cohereQKNorm: Command R+'s per-head q/k LayerNorms; logitScale
	// multiplies Command R's logits.
	cohereQKNorm bool
	logitScale   float64
	// normHead: Ling's norm_head, the head's columns normalised.
	normHead bool
	// mup: MiniCPM's scales (minicpm.go); mla3 MiniCPM3's attention
	// sizes (minicpm3.go).
	mup  *miniCPMScales
	mla3 *minicpm3Dims
	// posOffset is the rows of the position embeddings before position
	// 0 (RoBERTa's pad_token_id+1; 0 for BERT).
	posOffset int
	// embedding: a sentence-transformers embedding model (a Pooling
	// module): the head may be missing.
	embedding bool
	// fp8Block is quantization_config.weight_block_size, the blocks of
	// FP8 weights' scales (nil: not given).
	fp8Block []int
}

func readConfig(dir string) (*hfConfig, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, fmt.Errorf("convert: %w", err)
	}
	raw = pyjson.Clean(raw)
	var c hfConfig
	if err := json.Unmarshal(raw, &c); err != nil {
		// Gemma 3n's intermediate_size is one width per layer, which
		// gemma3n.go reads; json.Unmarshal fills the other fields.
		var te *json.UnmarshalTypeError
		if !errors.As(err, &te) || te.Field != "intermediate_size" || !slices.ContainsFunc(c.Architectures, func(a string) bool { return strings.HasPrefix(a, "Gemma3n") }) {
			return nil, fmt.Errorf("convert: config.json: %w", err)
		}
	}
	c.raw = raw
	if err := json.Unmarshal(raw, &c.MoE); err != nil {
		return nil, fmt.Errorf("convert: config.json: %w", err)
	}
	if err := json.Unmarshal(raw, &c.GptOSS); err != nil {
		return nil, fmt.Errorf("convert: config.json: %w", err)
	}
	if err := json.Unmarshal(raw, &c.DeepSeek); err != nil {
		return nil, fmt.Errorf("convert: config.json: %w", err)
	}
	if err := json.Unmarshal(raw, &c.GLM); err != nil {
		return nil, fmt.Errorf("convert: config.json: %w", err)
	}
	if err := json.Unmarshal(raw, &c.Ernie); err != nil {
		return nil, fmt.Errorf("convert: config.json: %w", err)
	}
	if err := json.Unmarshal(raw, &c.GraniteH); err != nil {
		return nil, fmt.Errorf("convert: config.json: %w", err)
	}
	if err := json.Unmarshal(raw, &c.NemotronH); err != nil {
		return nil, fmt.Errorf("convert: config.json: %w", err)
	}
	c.lfm2Err = json.Unmarshal(raw, &c.LFM2)
	c.mmErr = json.Unmarshal(raw, &c.MiniMax)
	c.q3nErr = json.Unmarshal(raw, &c.Qwen3Next)
	c.fh1Err = json.Unmarshal(raw, &c.FalconH1)
	c.apertusErr = json.Unmarshal(raw, &c.Apertus)
	c.bambaErr = json.Unmarshal(raw, &c.Bamba)
	c.l4Err = json.Unmarshal(raw, &c.Llama4)
	c.nbErr = json.Unmarshal(raw, &c.NomicBert)
	c.jv3Err = json.Unmarshal(raw, &c.JinaV3)
	c.exaoneErr = json.Unmarshal(raw, &c.Exaone)
	c.lnErr = json.Unmarshal(raw, &c.LNLlama)
	c.bcErr = json.Unmarshal(raw, &c.BigCode)
	c.olmo1Err = json.Unmarshal(raw, &c.Olmo1)
	c.falconErr = json.Unmarshal(raw, &c.Falcon)
	c.mambaErr = json.Unmarshal(raw, &c.Mamba)
	c.jambaErr = json.Unmarshal(raw, &c.Jamba)
	c.dots1Err = json.Unmarshal(raw, &c.Dots1)
	c.deciErr = json.Unmarshal(raw, &c.Deci)
	c.bailingErr = json.Unmarshal(raw, &c.Bailing)
	c.miniCPMErr = json.Unmarshal(raw, &c.MiniCPM)
	c.internErr = json.Unmarshal(raw, &c.InternLM2)
	c.bloomErr = json.Unmarshal(raw, &c.Bloom)
	return &c, nil
}

func (c *hfConfig) hparams(arch archSpec) (h hparams, err error) {
	switch arch.gguf {
	case "gpt2", "starcoder":
		return c.gpt2Hparams(arch)
	case "bloom":
		return c.bloomHparams(arch)
	case "bert", "jina-bert-v2", "jina-bert-v3":
		return c.bertHparams(arch)
	case "nomic-bert":
		return c.nomicBertHparams()
	case "mamba":
		return c.mambaHparams(arch)
	case "mamba2":
		return c.mamba2Hparams(arch)
	case "gemma3n":
		return c.gemma3nHparams(arch)
	}
	if arch.gemma3 {
		if err := c.gemma3Config(arch.vlm); err != nil {
			return h, err
		}
	}
	if arch.gptOSS {
		c.gptOSSDefaults()
	}
	if arch.vlm && !arch.gemma3 {
		if err := c.textConfig(arch); err != nil {
			return h, err
		}
	}
	if arch.lfm2 {
		if err := c.lfm2Defaults(arch); err != nil {
			return h, err
		}
	}
	if arch.minimax {
		if err := c.minimaxDefaults(); err != nil {
			return h, err
		}
	}
	if arch.qwen3next {
		if err := c.qwen3NextDefaults(); err != nil {
			return h, err
		}
	}
	if arch.apertus {
		c.apertusDefaults()
	}
	if arch.llama4 {
		if err := c.llama4Defaults(); err != nil {
			return h, err
		}
	}
	if arch.falconH1 {
		c.falconH1Defaults()
	}
	if arch.bamba {
		c.bambaDefaults()
	}
	if arch.exaone {
		if err := c.exaoneDefaults(); err != nil {
			return h, err
		}
	}
	if arch.lnLlama {
		if err := c.lnLlamaDefaults(arch); err != nil {
			return h, err
		}
	}
	if arch.olmo1 {
		if err := c.olmo1Defaults(); err != nil {
			return h, err
		}
	}
	if arch.falcon {
		if err := c.falconDefaults(arch); err != nil {
			return h, err
		}
	}
	if arch.deci {
		if err := c.deciDefaults(arch); err != nil {
			return h, err
		}
	}
	if arch.jamba {
		// JambaConfig's defaults the Llama path reads.
		if c.NumKeyValueHeads == 0 {
			c.NumKeyValueHeads = 8
		}
		if c.MaxPositionEmbeddings <= 0 {
			c.MaxPositionEmbeddings = 262144
		}
	}
	if arch.bailing {
		if err := c.bailingDefaults(arch); err != nil {
			return h, err
		}
	}
	if arch.minicpm {
		c.miniCPMDefaults()
	}
	if arch.gguf == "minicpm3" {
		c.minicpm3Defaults()
	}
	if arch.internlm2 {
		if err := c.internlm2Rope(arch); err != nil {
			return h, err
		}
	}
	if arch.seedOSS && c.HeadDim <= 0 {
		c.HeadDim = 128 // SeedOssConfig's default
	}
	if arch.nemotronH && c.NumHiddenLayers == 0 {
		// transformers writes the blocks and not their count.
		if blocks, err := c.nemotronHBlocks(); err == nil {
			c.NumHiddenLayers = len(blocks)
		}
	}
	q, err := readFP8Config(c.Quant)
	if err != nil {
		return h, err
	}
	h = hparams{
		fp8Block: q.WeightBlockSize,
		hidden:   c.HiddenSize,
		ffn:      c.IntermediateSize,
		layers:   c.NumHiddenLayers,
		heads:    c.NumAttentionHeads,
		kvHeads:  c.NumKeyValueHeads,
		headDim:  c.HeadDim,
		vocab:    c.VocabSize,
		ctxLen:   c.MaxPositionEmbeddings,
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
	if h.kvHeads <= 0 || arch.deepseek != 0 {
		// DeepSeek's latent attention has one KV head, whatever
		// num_key_value_heads says; its head sizes are its own.
		h.kvHeads = h.heads
	}
	if arch.deepseek != 0 && h.headDim <= 0 {
		h.headDim = 2 // replaced by deepseekHparams
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
	switch arch.hf {
	case "OlmoeForCausalLM", "Ernie4_5ForCausalLM", "Ernie4_5_MoeForCausalLM", "Exaone4ForCausalLM", "FalconH1ForCausalLM", "ApertusForCausalLM", "BambaForCausalLM":
		h.rmsEps = 1e-5 // their configs' defaults
	case "GlmForCausalLM", "Glm4ForCausalLM":
		h.rmsEps = 1.5625e-7 // GlmConfig's and Glm4Config's default
	}
	if c.RMSNormEps != nil {
		h.rmsEps = *c.RMSNormEps
	}
	if err := c.checkActivation(arch); err != nil {
		return h, err
	}
	if (arch.glm4 || arch.glm4moe) && c.PartialRotaryFactor == nil {
		if p, err := parseRopeJSON(c.RopeParameters, "rope_parameters"); err != nil || p == nil || p.PartialRotaryFactor == nil {
			half := 0.5 // GlmConfig's, Glm4Config's and Glm4MoeConfig's default
			c.PartialRotaryFactor = &half
		}
	}
	if arch.gguf == "ernie4_5" || arch.ernieMoE {
		// Ernie4_5Config's defaults: rope_theta 500000, tied embeddings.
		if c.RopeTheta == nil && isNull(c.RopeParameters) {
			theta := 500000.0
			c.RopeTheta = &theta
		}
		if c.TieWordEmbeddings == nil {
			tied := true
			c.TieWordEmbeddings = &tied
		}
	}
	c.allowMrope = arch.mrope
	var partial, localBase float64
	if arch.gemma3 {
		h.ropeTheta, partial, localBase, h.rope, err = c.gemma3Rope(h.ctxLen)
	} else {
		h.ropeTheta, partial, h.rope, err = c.rope(h.ctxLen)
	}
	if err != nil {
		return h, err
	}
	if h.rope.kind == ropeLlama3 && !arch.ropeFreqs {
		return h, fmt.Errorf("%w: llama3 rope scaling for %s (llama.cpp's %s arch loads no rope_freqs tensor)", ErrUnsupported, arch.hf, arch.gguf)
	}
	if h.rope.kind == ropeLongrope && !arch.longrope {
		return h, fmt.Errorf("%w rope scaling type %q for %s: llama.cpp's %s arch loads no rope_factors_long/rope_factors_short tensors", ErrUnsupported, ropeLongrope, arch.hf, arch.gguf)
	}
	h.ropeDim = h.headDim
	if partial != 1 {
		if !arch.partialRotary {
			return h, fmt.Errorf("%w: partial_rotary_factor %v for %s", ErrUnsupported, partial, arch.hf)
		}
		// transformers truncates; the epsilon keeps a factor given as
		// dims/head_dim from landing a hair under its integer.
		h.ropeDim = int(partial*float64(h.headDim) + 1e-9)
		if h.ropeDim <= 0 || h.ropeDim > h.headDim || h.ropeDim%2 != 0 {
			return h, fmt.Errorf("%w: config.json: partial_rotary_factor %v gives %d rotated dimensions of %d", ErrMismatch, partial, h.ropeDim, h.headDim)
		}
	}
	if h.rope.kind == ropeLongrope {
		// llama.cpp loads the factor tensors with n_rot/2 values.
		for _, f := range []struct {
			name string
			v    []float64
		}{{"long_factor", h.rope.longFactor}, {"short_factor", h.rope.shortFactor}} {
			if len(f.v) != h.ropeDim/2 {
				return h, fmt.Errorf("%w: config.json: rope_scaling %s has %d values, the %d rotated dimensions need %d", ErrMismatch, f.name, len(f.v), h.ropeDim, h.ropeDim/2)
			}
		}
	}
	if arch.fused && h.headDim*h.heads != h.hidden {
		// llama.cpp's phi3 arch splits the fused qkv at hidden_size.
		return h, fmt.Errorf("%w: head_dim %d × %d heads differs from hidden_size %d for %s", ErrUnsupported, h.headDim, h.heads, h.hidden, arch.hf)
	}
	h.tied = c.TieWordEmbeddings != nil && *c.TieWordEmbeddings
	if arch.tiedOnly {
		if c.TieWordEmbeddings != nil && !*c.TieWordEmbeddings {
			return h, fmt.Errorf("%w: %s with tie_word_embeddings false (llama.cpp's %s arch has no output tensor)", ErrUnsupported, arch.hf, arch.gguf)
		}
		h.tied = true
	}
	if arch.noRopeStep > 0 && c.NoRopeLayers == nil && c.NoRopeLayerInterval != nil && *c.NoRopeLayerInterval != arch.noRopeStep {
		return h, fmt.Errorf("%w: %s with no_rope_layer_interval %d: llama.cpp's %s graph leaves out the rotary embedding in every %dth layer only",
			ErrUnsupported, arch.hf, *c.NoRopeLayerInterval, arch.gguf, arch.noRopeStep)
	}
	if arch.noRopeStep > 0 && c.NoRopeLayers != nil {
		for i := range h.layers {
			want := 1
			if (i+1)%arch.noRopeStep == 0 {
				want = 0
			}
			if i >= len(c.NoRopeLayers) || c.NoRopeLayers[i] != want {
				return h, fmt.Errorf("%w: %s with no_rope_layers %v: llama.cpp's %s graph leaves out the rotary embedding in every %dth layer only",
					ErrUnsupported, arch.hf, c.NoRopeLayers, arch.gguf, arch.noRopeStep)
			}
		}
	}
	switch {
	case arch.falcon:
		if err := c.falconHparams(arch, &h); err != nil {
			return h, err
		}
	case arch.olmo1:
		h.rmsEps = 1e-5 // OlmoLayerNorm's, fixed
		if c.Olmo1.ClipQKV != nil {
			h.clampKQV = *c.Olmo1.ClipQKV
		}
	case arch.lnLlama:
		if err := c.lnLlamaHparams(arch, &h); err != nil {
			return h, err
		}
	case arch.graniteHybrid:
		if err := c.graniteHybridHparams(arch, &h); err != nil {
			return h, err
		}
	case arch.bamba:
		if err := c.bambaHparams(arch, &h); err != nil {
			return h, err
		}
	case arch.nemotronH:
		if err := c.nemotronHHparams(arch, &h); err != nil {
			return h, err
		}
	case arch.lfm2:
		if err := c.lfm2Hparams(arch, &h); err != nil {
			return h, err
		}
	case arch.minimax:
		if err := c.minimaxHparams(arch, &h); err != nil {
			return h, err
		}
	case arch.qwen3next:
		if err := c.qwen3NextHparams(arch, &h); err != nil {
			return h, err
		}
	case arch.falconH1:
		if err := c.falconH1Hparams(arch, &h); err != nil {
			return h, err
		}
	case arch.apertus:
		if err := c.apertusHparams(arch, &h); err != nil {
			return h, err
		}
	case arch.llama4:
		if err := c.llama4Hparams(arch, &h); err != nil {
			return h, err
		}
	case arch.deepseek != 0:
		if err := c.deepseekHparams(arch, &h); err != nil {
			return h, err
		}
	case arch.deepseekMoE:
		if err := c.deepseekMoEHparams(arch, &h); err != nil {
			return h, err
		}
	case arch.jamba:
		if err := c.jambaHparams(arch, &h); err != nil {
			return h, err
		}
	case arch.dots1:
		if err := c.dots1Hparams(arch, &h); err != nil {
			return h, err
		}
	case arch.internlm2:
		if err := c.internlm2Hparams(arch, &h); err != nil {
			return h, err
		}
	case arch.minicpm:
		if err := c.miniCPMHparams(arch, &h); err != nil {
			return h, err
		}
	case arch.gguf == "minicpm3":
		if err := c.minicpm3Hparams(arch, &h); err != nil {
			return h, err
		}
	case arch.bailing:
		if err := c.bailingHparams(arch, &h); err != nil {
			return h, err
		}
	case arch.deci:
		if err := c.deciHparams(arch, &h); err != nil {
			return h, err
		}
	case arch.glm4moe:
		if err := c.glm4moeHparams(arch, &h); err != nil {
			return h, err
		}
	case arch.glm4:
		if err := glm4Hparams(arch, &h); err != nil {
			return h, err
		}
	case arch.cohere:
		if err := c.cohereHparams(arch, &h); err != nil {
			return h, err
		}
	case arch.ernieMoE:
		if err := c.ernieMoEHparams(arch, &h); err != nil {
			return h, err
		}
	case arch.seedOSS:
		if c.MLPBias != nil && *c.MLPBias {
			return h, fmt.Errorf("%w: %s with mlp_bias true: llama.cpp's %s graph has no MLP biases", ErrUnsupported, arch.hf, arch.gguf)
		}
	case arch.gguf == "ernie4_5":
		if c.UseBias != nil && *c.UseBias {
			return h, fmt.Errorf("%w: %s with use_bias true: llama.cpp's ernie4_5 graph has no MLP biases", ErrUnsupported, arch.hf)
		}
	case arch.reluSq:
		if c.HiddenAct != "relu2" && c.HiddenAct != "" { // ArceeConfig's default is relu2
			return h, fmt.Errorf("%w: %s with hidden_act %q: llama.cpp's %s graph squares a ReLU (relu2)", ErrUnsupported, arch.hf, c.HiddenAct, arch.gguf)
		}
	case arch.ministral3:
		if err := c.ministral3Hparams(&h); err != nil {
			return h, err
		}
	case arch.moe != nil:
		if err := c.moeHparams(arch, &h); err != nil {
			return h, err
		}
		if arch.wideQKNorm {
			if err := c.olmoHparams(arch, &h); err != nil {
				return h, err
			}
		}
		if arch.gptOSS {
			if err := c.gptOSSHparams(&h); err != nil {
				return h, err
			}
		}
	case arch.olmo2:
		if err := c.olmoHparams(arch, &h); err != nil {
			return h, err
		}
	case arch.gemma3:
		if arch.gemmaEmbed && (c.UseBidirectionalAttention == nil || !*c.UseBidirectionalAttention) {
			return h, fmt.Errorf("%w: %s without use_bidirectional_attention: llama.cpp's gemma-embedding attends both ways (convert a causal Gemma 3 as Gemma3ForCausalLM)", ErrUnsupported, arch.hf)
		}
		if err := gemma3Hparams(c, &h, localBase, arch.gemmaEmbed); err != nil {
			return h, err
		}
	case arch.postNorms:
		if err := gemma2Hparams(c, &h); err != nil {
			return h, err
		}
	}
	return h, nil
}

// slidingLayers reads layer_types, one per layer "sliding_attention" or
// "full_attention": per layer whether it uses the sliding window; nil
// when config.json has none.
func (c *hfConfig) slidingLayers(layers int) ([]bool, error) {
	if isNull(c.LayerTypes) {
		return nil, nil
	}
	var types []string
	if err := json.Unmarshal(c.LayerTypes, &types); err != nil {
		return nil, fmt.Errorf("%w: config.json: layer_types: %v", ErrMismatch, err)
	}
	if len(types) != layers {
		return nil, fmt.Errorf("%w: config.json: layer_types has %d entries for %d layers", ErrMismatch, len(types), layers)
	}
	sliding := make([]bool, layers)
	for i, t := range types {
		switch t {
		case "sliding_attention":
			sliding[i] = true
		case "full_attention":
		default:
			return nil, fmt.Errorf("%w layer type %q (layer %d): sliding_attention and full_attention are converted", ErrUnsupported, t, i)
		}
	}
	return sliding, nil
}

// checkActivation refuses a hidden_act other than SiLU for the archs
// whose llama.cpp graph gates the MLP with SiLU (all but Gemma's GELU,
// Arcee's ReLU², GPT-2's and BERT's own, and gpt-oss's clamped SwiGLU).
func (c *hfConfig) checkActivation(arch archSpec) error {
	if c.HiddenAct == "" || c.HiddenAct == "silu" || c.HiddenAct == "swish" || arch.gguf == "lfm2" || arch.apertus || // Lfm2MLP's SiLU is fixed; Apertus's xIELU is checked on its own
		arch.normShift != 0 || arch.reluSq || arch.gptOSS || arch.nemotronH || arch.gguf == "gpt2" || arch.encoder() || arch.lnLlama {
		return nil
	}
	return fmt.Errorf("%w: %s with hidden_act %q: llama.cpp's %s graph gates the MLP with SiLU", ErrUnsupported, arch.hf, c.HiddenAct, arch.gguf)
}

// textConfig makes a vision-language config.json's text_config the
// config (as convert_hf_to_gguf.py merges it over the top level), and
// refuses what the GGUF arch cannot express.
func (c *hfConfig) textConfig(arch archSpec) error {
	if isNull(c.TextConfig) && arch.mrope {
		return nil // Qwen2-VL's text fields are at the top level
	}
	if isNull(c.TextConfig) {
		return fmt.Errorf("%w: config.json: %s has no text_config", ErrMismatch, arch.hf)
	}
	if err := json.Unmarshal(c.TextConfig, c); err != nil {
		return fmt.Errorf("convert: config.json: text_config: %w", err)
	}
	if arch.lfm2 {
		c.LFM2 = lfm2Config{}
		if c.lfm2Err = json.Unmarshal(c.TextConfig, &c.LFM2); c.lfm2Err != nil {
			c.lfm2Err = fmt.Errorf("text_config: %w", c.lfm2Err)
		}
	}
	if arch.llama4 {
		c.Llama4 = llama4Config{}
		if c.l4Err = json.Unmarshal(c.TextConfig, &c.Llama4); c.l4Err != nil {
			c.l4Err = fmt.Errorf("text_config: %w", c.l4Err)
		}
	}
	if arch.glm4moe {
		// GLM-4.5V: the experts' and the attention's names.
		if err := json.Unmarshal(c.TextConfig, &c.DeepSeek); err != nil {
			return fmt.Errorf("convert: config.json: text_config: %w", err)
		}
		if err := json.Unmarshal(c.TextConfig, &c.GLM); err != nil {
			return fmt.Errorf("convert: config.json: text_config: %w", err)
		}
	}
	return json.Unmarshal(c.TextConfig, &c.MoE)
}

// positiveInt decodes an optional positive integer config value; absent,
// null or not a positive integer gives 0.
func positiveInt(raw json.RawMessage) int {
	var f float64
	if isNull(raw) || json.Unmarshal(raw, &f) != nil || f != math.Trunc(f) || f <= 0 || f > math.MaxUint32 {
		return 0
	}
	return int(f)
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
func (c *hfConfig) gpt2Hparams(arch archSpec) (hparams, error) {
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
	if arch.gguf == "starcoder" {
		return h, c.bigCodeHparams(arch, &h)
	}
	return h, nil
}

// bigCodeConfig holds GPTBigCodeConfig's names beside GPT-2's.
type bigCodeConfig struct {
	MultiQuery       *bool   `json:"multi_query"`
	Activation       *string `json:"activation_function"`
	ScaleAttnWeights *bool   `json:"scale_attn_weights"`
}

// bigCodeHparams reads GPTBigCodeConfig's multi-query attention (one
// key/value head, the default; without it, a head each, c_attn holding
// each head's q, k and v in turn) and checks its activation (llama.cpp's
// starcoder runs GELU, in its tanh form: the exact "gelu" within 1e-3) and
// attention scale (1/sqrt(head size), which llama.cpp always applies).
func (c *hfConfig) bigCodeHparams(arch archSpec, h *hparams) error {
	if c.bcErr != nil {
		return fmt.Errorf("convert: config.json: %w", c.bcErr)
	}
	switch a := c.BigCode.Activation; {
	case a == nil, *a == "gelu_pytorch_tanh", *a == "gelu_new", *a == "gelu_fast", *a == "gelu":
	default:
		return fmt.Errorf("%w: %s with activation_function %q: llama.cpp's starcoder runs GELU", ErrUnsupported, arch.hf, *a)
	}
	if s := c.BigCode.ScaleAttnWeights; s != nil && !*s {
		return fmt.Errorf("%w: %s with scale_attn_weights false: llama.cpp's starcoder scales the attention by 1/sqrt(head size)", ErrUnsupported, arch.hf)
	}
	h.kvHeads = 1
	if mq := c.BigCode.MultiQuery; mq != nil && !*mq {
		h.kvHeads = h.heads
	}
	return nil
}
