package sampler

import (
	"encoding/json"
	"maps"
	"math"
	"slices"
	"strconv"
)

// Conversions of option values as JSON decoders and callers deliver them:
// float64 from encoding/json, json.Number, Go integers and floats.

func toFloat(name string, v any) (float64, error) {
	var f float64
	switch x := v.(type) {
	case float64:
		f = x
	case float32:
		f = float64(x)
	case int:
		f = float64(x)
	case int32:
		f = float64(x)
	case int64:
		f = float64(x)
	case uint32:
		f = float64(x)
	case uint64:
		f = float64(x)
	case json.Number:
		var err error
		if f, err = x.Float64(); err != nil {
			return 0, optErr(name, v, "must be a number")
		}
	default:
		return 0, optErr(name, v, "must be a number, not %T", v)
	}
	if math.IsNaN(f) {
		return 0, optErr(name, v, "must be a number, not NaN")
	}
	return f, nil
}

func toInt(name string, v any) (int64, error) {
	switch x := v.(type) {
	case int:
		return int64(x), nil
	case int32:
		return int64(x), nil
	case int64:
		return x, nil
	case uint32:
		return int64(x), nil
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i, nil
		}
	}
	f, err := toFloat(name, v)
	if err != nil {
		return 0, optErr(name, v, "must be an integer")
	}
	if f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, optErr(name, v, "must be an integer")
	}
	return int64(f), nil
}

func toBool(name string, v any) (bool, error) {
	b, ok := v.(bool)
	if !ok {
		return false, optErr(name, v, "must be true or false")
	}
	return b, nil
}

// A setter parses one option's value into Options, checking its range and
// naming the option as the caller spelled it.
type setter func(o *Options, name string, v any) error

func floatIn(field func(*Options) *float64, lo, hi float64, note string) setter {
	return func(o *Options, name string, v any) error {
		f, err := toFloat(name, v)
		if err != nil {
			return err
		}
		if !(f >= lo && f <= hi) {
			switch {
			case math.IsInf(hi, 1) && math.IsInf(lo, -1):
				return optErr(name, v, "must be a finite number%s", note)
			case math.IsInf(hi, 1):
				return optErr(name, v, "must be ≥ %g%s", lo, note)
			}
			return optErr(name, v, "must be in [%g, %g]%s", lo, hi, note)
		}
		if math.IsInf(f, 0) {
			return optErr(name, v, "must be finite")
		}
		*field(o) = f
		return nil
	}
}

func intIn(field func(*Options) *int, lo, hi int64, note string) setter {
	return func(o *Options, name string, v any) error {
		i, err := toInt(name, v)
		if err != nil {
			return err
		}
		if i < lo || i > hi {
			if hi == math.MaxInt32 {
				return optErr(name, v, "must be ≥ %d%s", lo, note)
			}
			return optErr(name, v, "must be in [%d, %d]%s", lo, hi, note)
		}
		*field(o) = int(i)
		return nil
	}
}

func seedSetter(o *Options, name string, v any) error {
	i, err := toInt(name, v)
	if err != nil {
		return err
	}
	o.Seed = i
	return nil
}

func breakersSetter(o *Options, name string, v any) error {
	list, ok := v.([]any)
	if !ok {
		if ss, ok := v.([]string); ok {
			o.DRYSequenceBreakers = append([]string(nil), ss...)
			return nil
		}
		return optErr(name, v, "must be a list of strings")
	}
	out := make([]string, 0, len(list))
	for _, x := range list {
		s, ok := x.(string)
		if !ok || s == "" {
			return optErr(name, x, "must be a list of non-empty strings")
		}
		out = append(out, s)
	}
	o.DRYSequenceBreakers = out
	return nil
}

// llamaSetters are the options by llama.cpp's names (its server's JSON
// fields), which Ollama shares.
var llamaSetters = map[string]setter{
	"temperature":           floatIn(func(o *Options) *float64 { return &o.Temperature }, 0, math.Inf(1), " (0: greedy)"),
	"dynatemp_range":        floatIn(func(o *Options) *float64 { return &o.DynamicTempRange }, 0, math.Inf(1), " (0: off)"),
	"dynatemp_exponent":     floatIn(func(o *Options) *float64 { return &o.DynamicTempExponent }, 0, math.Inf(1), ""),
	"top_k":                 intIn(func(o *Options) *int { return &o.TopK }, 0, math.MaxInt32, " (0: off)"),
	"top_p":                 floatIn(func(o *Options) *float64 { return &o.TopP }, 0, 1, " (1: off)"),
	"min_p":                 floatIn(func(o *Options) *float64 { return &o.MinP }, 0, 1, " (0: off)"),
	"typical_p":             floatIn(func(o *Options) *float64 { return &o.TypicalP }, 0, 1, " (1: off)"),
	"top_n_sigma":           floatIn(func(o *Options) *float64 { return &o.TopNSigma }, math.Inf(-1), math.Inf(1), " (≤ 0: off)"),
	"xtc_probability":       floatIn(func(o *Options) *float64 { return &o.XTCProbability }, 0, 1, " (0: off)"),
	"xtc_threshold":         floatIn(func(o *Options) *float64 { return &o.XTCThreshold }, 0, 1, " (> 0.5: off)"),
	"min_keep":              intIn(func(o *Options) *int { return &o.MinKeep }, 0, math.MaxInt32, ""),
	"repeat_penalty":        floatIn(func(o *Options) *float64 { return &o.RepeatPenalty }, math.SmallestNonzeroFloat64, math.Inf(1), " (must be > 0; 1: off)"),
	"repeat_last_n":         intIn(func(o *Options) *int { return &o.RepeatLastN }, -1, math.MaxInt32, " (0: off, -1: the whole context)"),
	"presence_penalty":      floatIn(func(o *Options) *float64 { return &o.PresencePenalty }, math.Inf(-1), math.Inf(1), " (0: off)"),
	"frequency_penalty":     floatIn(func(o *Options) *float64 { return &o.FrequencyPenalty }, math.Inf(-1), math.Inf(1), " (0: off)"),
	"dry_multiplier":        floatIn(func(o *Options) *float64 { return &o.DRYMultiplier }, 0, math.Inf(1), " (0: off)"),
	"dry_base":              floatIn(func(o *Options) *float64 { return &o.DRYBase }, 0, math.Inf(1), " (< 1: off)"),
	"dry_allowed_length":    intIn(func(o *Options) *int { return &o.DRYAllowedLength }, 0, math.MaxInt32, ""),
	"dry_penalty_last_n":    intIn(func(o *Options) *int { return &o.DRYLastN }, -1, math.MaxInt32, " (0: off, -1: the whole context)"),
	"dry_sequence_breakers": breakersSetter,
	"mirostat":              intIn(func(o *Options) *int { return &o.Mirostat }, 0, 2, " (unknown mirostat mode: 0 off, 1 mirostat, 2 mirostat 2.0)"),
	"mirostat_tau":          floatIn(func(o *Options) *float64 { return &o.MirostatTau }, 0, math.Inf(1), ""),
	"mirostat_eta":          floatIn(func(o *Options) *float64 { return &o.MirostatEta }, 0, math.Inf(1), ""),
	"seed":                  seedSetter,
}

// apply sets the options of m found in setters, skips those in ignore, and
// fails on the others.
func apply(o *Options, m map[string]any, setters map[string]setter, ignore map[string]bool, source string) error {
	for _, k := range sortedKeys(m) {
		v := m[k]
		if set, ok := setters[k]; ok {
			if v == nil {
				continue // JSON null: the default
			}
			if err := set(o, k, v); err != nil {
				return err
			}
			continue
		}
		if ignore[k] {
			continue
		}
		return optErr(k, nil, "not a %s sampling option this sampler knows", source)
	}
	return nil
}

func sortedKeys(m map[string]any) []string { return slices.Sorted(maps.Keys(m)) }

// tokenKey parses a logit_bias key: a token id as a string.
func tokenKey(name, k string) (int64, error) {
	id, err := strconv.ParseInt(k, 10, 32)
	if err != nil || id < 0 {
		return 0, optErr(name, k, "keys must be token ids (non-negative integers)")
	}
	return id, nil
}

func schemaText(name string, v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case json.RawMessage:
		return string(x), nil
	case []byte:
		return string(x), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", optErr(name, nil, "the schema cannot be encoded as JSON: %v", err)
	}
	return string(b), nil
}
