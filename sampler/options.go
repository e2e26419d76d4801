package sampler

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/sampler/gbnf"
)

// Options configures a Sampler: one type shared by the command line, the
// pipeline and the server. The zero value is not useful; start from
// DefaultOptions (llama.cpp's defaults) or from FromOllama, FromOpenAI or
// FromGenerationConfig. Each field names, in its comment, the option names
// it answers to and what disables it.
type Options struct {
	// Temperature divides the logits before the draw (llama.cpp temp, Ollama
	// and OpenAI temperature). 0 samples greedily. Must be ≥ 0.
	Temperature float64
	// DynamicTempRange, when > 0, turns on dynamic temperature: the
	// temperature varies in [Temperature−range, Temperature+range] with the
	// normalised entropy of the candidates (llama.cpp dynatemp_range).
	DynamicTempRange float64
	// DynamicTempExponent shapes the entropy-to-temperature map
	// (llama.cpp dynatemp_exponent, default 1).
	DynamicTempExponent float64

	// TopK keeps the K most likely tokens (top_k); 0 disables. Must be ≥ 0.
	TopK int
	// TopP keeps the most likely tokens whose probabilities add up to TopP
	// (top_p); 1 disables. In [0, 1].
	TopP float64
	// MinP drops tokens less likely than MinP times the most likely one
	// (min_p); 0 disables. In [0, 1].
	MinP float64
	// TypicalP is locally typical sampling (typical_p, typ_p); 1 disables.
	// In [0, 1].
	TypicalP float64
	// TopNSigma keeps the logits within TopNSigma standard deviations of
	// the maximum (top_n_sigma); ≤ 0 disables (llama.cpp's default is -1).
	TopNSigma float64
	// XTCProbability is the chance that XTC removes the top choices
	// (xtc_probability); 0 disables. In [0, 1].
	XTCProbability float64
	// XTCThreshold is the probability above which XTC removes all but the
	// least likely of the top tokens (xtc_threshold); > 0.5 disables. In
	// [0, 1].
	XTCThreshold float64
	// MinKeep is the fewest tokens top-p, min-p, typical-p and XTC leave
	// (min_keep); 0 means no minimum beyond one token. Must be ≥ 0.
	MinKeep int

	// RepeatPenalty divides the positive logits and multiplies the negative
	// ones of tokens seen in the last RepeatLastN tokens (repeat_penalty,
	// transformers repetition_penalty); 1 disables. Must be > 0.
	RepeatPenalty float64
	// RepeatLastN is the window of the repeat, frequency and presence
	// penalties (repeat_last_n, penalty_last_n): 0 disables them, -1 means
	// the whole context (ContextSize). Must be ≥ -1.
	RepeatLastN int
	// FrequencyPenalty is subtracted once per occurrence in the window
	// (frequency_penalty); 0 disables.
	FrequencyPenalty float64
	// PresencePenalty is subtracted once from every token in the window
	// (presence_penalty); 0 disables.
	PresencePenalty float64

	// DRYMultiplier scales the DRY penalty (dry_multiplier); 0 disables.
	// Must be ≥ 0.
	DRYMultiplier float64
	// DRYBase is the base of the DRY penalty's exponential growth
	// (dry_base, default 1.75); values below 1 disable DRY.
	DRYBase float64
	// DRYAllowedLength is the longest repetition that is not penalised
	// (dry_allowed_length, default 2). Must be ≥ 0.
	DRYAllowedLength int
	// DRYLastN is how many tokens DRY scans for repetitions
	// (dry_penalty_last_n): 0 disables, -1 means the whole context.
	DRYLastN int
	// DRYSequenceBreakers are strings that end a repetition for DRY
	// (dry_sequence_breakers, default "\n", ":", "\"", "*"). They are
	// matched against the model's vocabulary, so a Sampler with DRY on and
	// breakers needs a model.
	DRYSequenceBreakers []string

	// Mirostat selects mirostat sampling: 0 off, 1 mirostat, 2 mirostat 2.0.
	Mirostat int
	// MirostatTau is mirostat's target surprise in bits (mirostat_tau,
	// default 5). Must be ≥ 0.
	MirostatTau float64
	// MirostatEta is mirostat's learning rate (mirostat_eta, default 0.1).
	// Must be ≥ 0.
	MirostatEta float64
	// MirostatM is how many tokens mirostat v1 uses to estimate the Zipf
	// exponent (llama.cpp uses 100). Must be ≥ 1 when Mirostat is 1.
	MirostatM int

	// Seed seeds the random draws: the same seed and logits give the same
	// tokens on any machine. A negative seed (-1) picks one at random; see
	// Sampler.Seed.
	Seed int64

	// LogitBias is added to the logits of its tokens before everything else
	// (logit_bias); -Inf bans a token. Values must not be NaN or +Inf.
	LogitBias map[engine.Token]float64

	// Grammar constrains the output to a GBNF grammar whose start rule is
	// "root" (llama.cpp --grammar).
	Grammar string
	// JSONSchema constrains the output to JSON matching the schema (a JSON
	// document; see package gbnf for the supported keywords).
	JSONSchema string
	// JSON constrains the output to a JSON object (Ollama format "json",
	// OpenAI response_format json_object).
	JSON bool

	// Order is the order of the chain's stages between the logit bias and
	// the draw; nil means DefaultOrder. Stages left out are off.
	Order []Stage

	// ContextSize is the context length that RepeatLastN = -1 and
	// DRYLastN = -1 stand for; 0 means the model's training context (4096
	// without a model).
	ContextSize int
}

// Stage is one step of the sampler chain, named as llama.cpp's --samplers.
type Stage string

// The stages of the chain.
const (
	StagePenalties   Stage = "penalties"
	StageDRY         Stage = "dry"
	StageTopNSigma   Stage = "top_n_sigma"
	StageTopK        Stage = "top_k"
	StageTypicalP    Stage = "typ_p"
	StageTopP        Stage = "top_p"
	StageMinP        Stage = "min_p"
	StageXTC         Stage = "xtc"
	StageTemperature Stage = "temperature"
)

// DefaultOrder returns llama.cpp's default order of the chain's stages.
func DefaultOrder() []Stage {
	return []Stage{StagePenalties, StageDRY, StageTopNSigma, StageTopK, StageTypicalP,
		StageTopP, StageMinP, StageXTC, StageTemperature}
}

var stageAliases = map[string]Stage{
	"penalties": StagePenalties, "dry": StageDRY, "top_n_sigma": StageTopNSigma,
	"top_k": StageTopK, "typ_p": StageTypicalP, "typical_p": StageTypicalP, "typical": StageTypicalP,
	"top_p": StageTopP, "nucleus": StageTopP, "min_p": StageMinP, "xtc": StageXTC,
	"temperature": StageTemperature, "temp": StageTemperature,
}

// ParseOrder parses a list of stage names separated by ';' or ',' (as
// llama.cpp's --samplers, with its aliases such as "typical_p" and "temp").
func ParseOrder(s string) ([]Stage, error) {
	var out []Stage
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ';' || r == ',' || r == ' ' }) {
		st, ok := stageAliases[strings.ToLower(strings.ReplaceAll(f, "-", "_"))]
		if !ok {
			return nil, optErr("samplers", f, "unknown stage; known: penalties, dry, top_n_sigma, top_k, typ_p, top_p, min_p, xtc, temperature")
		}
		out = append(out, st)
	}
	return out, nil
}

// DefaultOptions returns llama.cpp's defaults (common_params_sampling):
// temperature 0.8, top-k 40, top-p 0.95, min-p 0.05, penalties off over a
// window of 64, DRY off, mirostat off, a random seed.
func DefaultOptions() Options {
	return Options{
		Temperature:         0.8,
		DynamicTempExponent: 1,
		TopK:                40,
		TopP:                0.95,
		MinP:                0.05,
		TypicalP:            1,
		TopNSigma:           -1,
		XTCThreshold:        0.1,
		RepeatPenalty:       1,
		RepeatLastN:         64,
		DRYBase:             1.75,
		DRYAllowedLength:    2,
		DRYLastN:            -1,
		DRYSequenceBreakers: []string{"\n", ":", "\"", "*"},
		MirostatTau:         5,
		MirostatEta:         0.1,
		MirostatM:           100,
		Seed:                -1,
	}
}

// Validate checks every option and returns all that are invalid, each an
// *OptionError naming the option and its accepted range.
func (o Options) Validate() error {
	var errs []error
	bad := func(name string, v any, format string, args ...any) {
		errs = append(errs, optErr(name, v, format, args...))
	}
	finite := func(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
	inRange := func(name string, v, lo, hi float64, note string) {
		if !(v >= lo && v <= hi) {
			bad(name, v, "must be in [%g, %g]%s", lo, hi, note)
		}
	}
	atLeast := func(name string, v, lo float64, note string) {
		if !finite(v) || v < lo {
			bad(name, v, "must be a number ≥ %g%s", lo, note)
		}
	}
	atLeast("temperature", o.Temperature, 0, " (0: greedy)")
	atLeast("dynatemp_range", o.DynamicTempRange, 0, " (0: off)")
	atLeast("dynatemp_exponent", o.DynamicTempExponent, 0, "")
	if o.TopK < 0 {
		bad("top_k", o.TopK, "must be ≥ 0 (0: off)")
	}
	inRange("top_p", o.TopP, 0, 1, " (1: off)")
	inRange("min_p", o.MinP, 0, 1, " (0: off)")
	inRange("typical_p", o.TypicalP, 0, 1, " (1: off)")
	if !finite(o.TopNSigma) {
		bad("top_n_sigma", o.TopNSigma, "must be a finite number (≤ 0: off)")
	}
	inRange("xtc_probability", o.XTCProbability, 0, 1, " (0: off)")
	inRange("xtc_threshold", o.XTCThreshold, 0, 1, " (> 0.5: off)")
	if o.MinKeep < 0 {
		bad("min_keep", o.MinKeep, "must be ≥ 0")
	}
	if !finite(o.RepeatPenalty) || o.RepeatPenalty <= 0 {
		bad("repeat_penalty", o.RepeatPenalty, "must be a number > 0 (1: off)")
	}
	if o.RepeatLastN < -1 {
		bad("repeat_last_n", o.RepeatLastN, "must be ≥ -1 (0: off, -1: the whole context)")
	}
	if !finite(o.FrequencyPenalty) {
		bad("frequency_penalty", o.FrequencyPenalty, "must be a finite number (0: off)")
	}
	if !finite(o.PresencePenalty) {
		bad("presence_penalty", o.PresencePenalty, "must be a finite number (0: off)")
	}
	atLeast("dry_multiplier", o.DRYMultiplier, 0, " (0: off)")
	atLeast("dry_base", o.DRYBase, 0, " (< 1: off)")
	if o.DRYAllowedLength < 0 {
		bad("dry_allowed_length", o.DRYAllowedLength, "must be ≥ 0")
	}
	if o.DRYLastN < -1 {
		bad("dry_penalty_last_n", o.DRYLastN, "must be ≥ -1 (0: off, -1: the whole context)")
	}
	for _, b := range o.DRYSequenceBreakers {
		if b == "" {
			bad("dry_sequence_breakers", `""`, "a breaker must not be empty")
		}
	}
	if o.Mirostat < 0 || o.Mirostat > 2 {
		bad("mirostat", o.Mirostat, "unknown mirostat mode: must be 0 (off), 1 (mirostat) or 2 (mirostat 2.0)")
	}
	atLeast("mirostat_tau", o.MirostatTau, 0, "")
	atLeast("mirostat_eta", o.MirostatEta, 0, "")
	if o.Mirostat == 1 && o.MirostatM < 1 {
		bad("mirostat_m", o.MirostatM, "must be ≥ 1")
	}
	for t, b := range o.LogitBias {
		if t < 0 {
			bad("logit_bias", fmt.Sprintf("token %d", t), "token ids must be ≥ 0")
		}
		if math.IsNaN(b) || math.IsInf(b, 1) {
			bad("logit_bias", fmt.Sprintf("token %d: %v", t, b), "a bias must be a finite number or -Inf (ban)")
		}
	}
	n := 0
	for _, on := range []bool{o.Grammar != "", o.JSONSchema != "", o.JSON} {
		if on {
			n++
		}
	}
	if n > 1 {
		bad("grammar", nil, "at most one of a grammar, a JSON schema and JSON mode")
	}
	if o.Grammar != "" {
		if _, err := gbnf.Parse(o.Grammar); err != nil {
			errs = append(errs, &OptionError{Name: "grammar", Reason: err.Error(), Err: errors.Join(ErrInvalidGrammar, err)})
		}
	}
	if o.JSONSchema != "" {
		if _, err := gbnf.FromJSONSchema([]byte(o.JSONSchema)); err != nil {
			errs = append(errs, &OptionError{Name: "json_schema", Reason: err.Error(), Err: errors.Join(ErrInvalidSchema, err)})
		}
	}
	seen := map[Stage]bool{}
	for _, st := range o.Order {
		if _, ok := stageAliases[string(st)]; !ok || stageAliases[string(st)] != st {
			bad("samplers", st, "unknown stage; known: penalties, dry, top_n_sigma, top_k, typ_p, top_p, min_p, xtc, temperature")
		} else if seen[st] {
			bad("samplers", st, "a stage may appear once")
		}
		seen[st] = true
	}
	if o.ContextSize < 0 {
		bad("context_size", o.ContextSize, "must be ≥ 0 (0: the model's)")
	}
	return errors.Join(errs...)
}
