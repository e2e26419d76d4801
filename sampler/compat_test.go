package sampler

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/llm-go/llm/engine"
)

func decodeMap(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestFromOllama(t *testing.T) {
	o, err := FromOllama(decodeMap(t, `{"temperature": 0.5, "top_k": 20, "top_p": 0.8, "min_p": 0.1,
		"typical_p": 0.95, "repeat_penalty": 1.3, "repeat_last_n": 128, "presence_penalty": 0.4,
		"frequency_penalty": 0.2, "mirostat": 2, "mirostat_tau": 4, "mirostat_eta": 0.2, "seed": 7,
		"num_ctx": 4096, "num_predict": 100, "stop": ["\n"]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := OllamaDefaults()
	want.Temperature, want.TopK, want.TopP, want.MinP, want.TypicalP = 0.5, 20, 0.8, 0.1, 0.95
	want.RepeatPenalty, want.RepeatLastN, want.PresencePenalty, want.FrequencyPenalty = 1.3, 128, 0.4, 0.2
	want.Mirostat, want.MirostatTau, want.MirostatEta, want.Seed = 2, 4, 0.2, 7
	if !equalOptions(o, want) {
		t.Errorf("FromOllama:\n got %+v\nwant %+v", o, want)
	}
	d, _ := FromOllama(nil)
	if d.Temperature != 0.8 || d.TopK != 40 || d.TopP != 0.9 || d.RepeatPenalty != 1.1 || d.RepeatLastN != 64 || d.Seed != -1 {
		t.Errorf("Ollama defaults %+v", d)
	}
}

func TestFromOpenAI(t *testing.T) {
	o, err := FromOpenAI(decodeMap(t, `{"model": "x", "messages": [], "max_tokens": 5, "temperature": 1.2,
		"top_p": 0.9, "frequency_penalty": -0.5, "presence_penalty": 1, "seed": 3,
		"logit_bias": {"5": 10, "9": -100}, "response_format": {"type": "json_object"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if o.Temperature != 1.2 || o.TopP != 0.9 || o.FrequencyPenalty != -0.5 || o.PresencePenalty != 1 || o.Seed != 3 || !o.JSON {
		t.Errorf("FromOpenAI: %+v", o)
	}
	if o.LogitBias[5] != 10 || !math.IsInf(o.LogitBias[9], -1) || o.TopK != 0 || o.MinP != 0 || o.RepeatLastN != -1 {
		t.Errorf("FromOpenAI: bias %v, top_k %d, min_p %g, window %d", o.LogitBias, o.TopK, o.MinP, o.RepeatLastN)
	}
	o, err = FromOpenAI(map[string]any{"response_format": map[string]any{"type": "json_schema",
		"json_schema": map[string]any{"name": "x", "schema": json.RawMessage(`{"type":"object","properties":{"b":{"type":"string"},"a":{"type":"integer"}}}`)}}})
	if err != nil || !strings.Contains(o.JSONSchema, `"b"`) {
		t.Errorf("json_schema: %v, %q", err, o.JSONSchema)
	}
}

func TestFromGenerationConfig(t *testing.T) {
	o, err := FromGenerationConfig(decodeMap(t, `{"do_sample": true, "temperature": 0.6, "top_k": 20,
		"top_p": 0.95, "min_p": 0.02, "typical_p": 0.9, "repetition_penalty": 1.05, "max_new_tokens": 512,
		"eos_token_id": [1, 2], "transformers_version": "4.51.0", "num_beams": 1, "suppress_tokens": [7]}`))
	if err != nil {
		t.Fatal(err)
	}
	if o.Temperature != 0.6 || o.TopK != 20 || o.TopP != 0.95 || o.MinP != 0.02 || o.TypicalP != 0.9 || o.RepeatPenalty != 1.05 {
		t.Errorf("FromGenerationConfig: %+v", o)
	}
	if !math.IsInf(o.LogitBias[7], -1) || o.Order[1] != StageTemperature {
		t.Errorf("suppress_tokens %v, order %v", o.LogitBias, o.Order)
	}
	g, _ := FromGenerationConfig(decodeMap(t, `{"temperature": 0.6, "top_k": 20}`))
	if g.Temperature != 0 {
		t.Errorf("without do_sample: temperature %g, want 0 (greedy)", g.Temperature)
	}
}

// Bad options: an *OptionError naming the option (as the caller spelled
// it) and what is accepted; never a panic.
func TestBadOptions(t *testing.T) {
	cases := []struct {
		name string
		get  func() error
		opt  string // the option the error must name
		want string // and a piece of its message
	}{
		{"negative top_k", func() error { _, err := FromOllama(map[string]any{"top_k": -1.0}); return err }, "top_k", "≥ 0"},
		{"top_p above 1", func() error { _, err := FromOllama(map[string]any{"top_p": 1.5}); return err }, "top_p", "[0, 1]"},
		{"unknown mirostat", func() error { _, err := FromOllama(map[string]any{"mirostat": 3.0}); return err }, "mirostat", "unknown mirostat mode"},
		{"fractional top_k", func() error { _, err := FromOllama(map[string]any{"top_k": 2.5}); return err }, "top_k", "integer"},
		{"string temperature", func() error { _, err := FromOllama(map[string]any{"temperature": "hot"}); return err }, "temperature", "number"},
		{"unknown key", func() error { _, err := FromOllama(map[string]any{"tfs_z": 1.0}); return err }, "tfs_z", "not a"},
		{"zero repeat_penalty", func() error { _, err := FromOllama(map[string]any{"repeat_penalty": 0.0}); return err }, "repeat_penalty", "> 0"},
		{"repeat_last_n -2", func() error { _, err := FromOllama(map[string]any{"repeat_last_n": -2.0}); return err }, "repeat_last_n", "-1"},
		{"openai temperature 3", func() error { _, err := FromOpenAI(map[string]any{"temperature": 3.0}); return err }, "temperature", "[0, 2]"},
		{"openai penalty", func() error { _, err := FromOpenAI(map[string]any{"presence_penalty": -2.5}); return err }, "presence_penalty", "[-2, 2]"},
		{"openai bias key", func() error {
			_, err := FromOpenAI(map[string]any{"logit_bias": map[string]any{"x": 1.0}})
			return err
		}, "logit_bias", "token ids"},
		{"openai bias range", func() error {
			_, err := FromOpenAI(map[string]any{"logit_bias": map[string]any{"3": 101.0}})
			return err
		}, "logit_bias", "[-100, 100]"},
		{"openai format", func() error {
			_, err := FromOpenAI(map[string]any{"response_format": map[string]any{"type": "yaml"}})
			return err
		}, "response_format.type", "json_object"},
		{"hf beams", func() error { _, err := FromGenerationConfig(map[string]any{"num_beams": 4.0}); return err }, "num_beams", "not supported"},
		{"hf temperature 0", func() error {
			_, err := FromGenerationConfig(map[string]any{"do_sample": true, "temperature": 0.0})
			return err
		}, "temperature", "> 0"},
		{"hf repetition_penalty", func() error {
			_, err := FromGenerationConfig(map[string]any{"repetition_penalty": -1.0})
			return err
		}, "repetition_penalty", "> 0"},
		{"Options top_k", func() error { o := DefaultOptions(); o.TopK = -3; return o.Validate() }, "top_k", "≥ 0"},
		{"Options top_p", func() error { o := DefaultOptions(); o.TopP = 1.01; return o.Validate() }, "top_p", "[0, 1]"},
		{"Options NaN temperature", func() error { o := DefaultOptions(); o.Temperature = math.NaN(); return o.Validate() }, "temperature", "≥ 0"},
		{"Options mirostat", func() error { o := DefaultOptions(); o.Mirostat = 5; return o.Validate() }, "mirostat", "unknown mirostat mode"},
		{"Options order", func() error { o := DefaultOptions(); o.Order = []Stage{"top_q"}; return o.Validate() }, "samplers", "unknown stage"},
		{"Options two grammars", func() error { o := DefaultOptions(); o.Grammar, o.JSON = "root ::= \"a\"", true; return o.Validate() }, "grammar", "at most one"},
		{"Options +Inf bias", func() error {
			o := DefaultOptions()
			o.LogitBias = map[engine.Token]float64{1: math.Inf(1)}
			return o.Validate()
		}, "logit_bias", "-Inf"},
		{"bias beyond the vocabulary", func() error {
			o := DefaultOptions()
			o.LogitBias = map[engine.Token]float64{10: 1}
			_, err := NewForVocab(o, 10)
			return err
		}, "logit_bias", "below the vocabulary size"},
		{"grammar without a model", func() error {
			o := DefaultOptions()
			o.Grammar = `root ::= [0-9]+`
			_, err := NewForVocab(o, 10)
			if !errors.Is(err, ErrNeedsModel) {
				return errors.New("want ErrNeedsModel")
			}
			return &OptionError{Name: "grammar", Reason: "needs a model"}
		}, "grammar", "needs a model"},
		{"parse order", func() error { _, err := ParseOrder("top_k;bogus"); return err }, "samplers", "unknown stage"},
	}
	for _, tc := range cases {
		err := tc.get()
		var oe *OptionError
		if !errors.As(err, &oe) || !errors.Is(err, ErrInvalidOption) {
			t.Errorf("%s: %v, want an *OptionError", tc.name, err)
			continue
		}
		if oe.Name != tc.opt || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %q (option %q), want option %q and %q", tc.name, err, oe.Name, tc.opt, tc.want)
		}
	}
}

func TestParseOrder(t *testing.T) {
	got, err := ParseOrder("penalties;dry;top_k;typical_p;top_p;min_p;xtc;temp")
	if err != nil {
		t.Fatal(err)
	}
	want := []Stage{StagePenalties, StageDRY, StageTopK, StageTypicalP, StageTopP, StageMinP, StageXTC, StageTemperature}
	if len(got) != len(want) {
		t.Fatalf("%v", got)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("%v, want %v", got, want)
		}
	}
}

func equalOptions(a, b Options) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

func TestSetOllama(t *testing.T) {
	o := DefaultOptions()
	if err := o.SetOllama("temperature", 0.0); err != nil || o.Temperature != 0 {
		t.Errorf("temperature: %v %v", err, o.Temperature)
	}
	if err := o.SetOllama("top_k", 5.0); err != nil || o.TopK != 5 {
		t.Errorf("top_k: %v %v", err, o.TopK)
	}
	topP := o.TopP
	if err := o.SetOllama("top_p", 1.5); err == nil || o.TopP != topP {
		t.Errorf("top_p 1.5: %v; top_p is now %v", err, o.TopP)
	}
	if err := o.SetOllama("no_such_option", 1.0); err == nil {
		t.Error("an unknown name was accepted")
	}
}
