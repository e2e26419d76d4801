package hub

import (
	"errors"
	"reflect"
	"testing"
)

func TestSelectFiles(t *testing.T) {
	gguf := []string{
		".gitattributes", "README.md",
		"model-Q2_K.gguf", "model-Q4_K_M.gguf", "model-q8_0.gguf", "model-Q4_K.gguf",
		"model-f16-00001-of-00002.gguf", "model-f16-00002-of-00002.gguf",
		"mmproj-model-f16.gguf",
	}
	st := []string{
		".gitattributes", "README.md", "config.json", "generation_config.json",
		"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json",
		"pytorch_model.bin", "tf_model.h5", "flax_model.msgpack", "onnx/model.onnx",
		"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
		"original/consolidated.00.pth", "original/params.json",
	}
	tests := []struct {
		name  string
		paths []string
		sel   Selection
		want  []string
		err   error
	}{
		{"default quant", gguf, Selection{}, []string{"README.md", "model-Q4_K_M.gguf"}, nil},
		{"quant case-insensitive", gguf, Selection{Quant: "Q8_0"}, []string{"README.md", "model-q8_0.gguf"}, nil},
		{"Q4_K is not Q4_K_M", gguf, Selection{Quant: "q4_k"}, []string{"README.md", "model-Q4_K.gguf"}, nil},
		{"split quant", gguf, Selection{Quant: "F16"}, []string{"README.md", "model-f16-00001-of-00002.gguf", "model-f16-00002-of-00002.gguf"}, nil},
		{"split by file", gguf, Selection{File: "model-f16-00002-of-00002.gguf"}, []string{"README.md", "model-f16-00001-of-00002.gguf", "model-f16-00002-of-00002.gguf"}, nil},
		{"one file", gguf, Selection{File: "model-Q2_K.gguf"}, []string{"README.md", "model-Q2_K.gguf"}, nil},
		{"missing quant", gguf, Selection{Quant: "Q5_K_M"}, nil, ErrNotFound},
		{"missing file", gguf, Selection{File: "nope.gguf"}, nil, ErrNotFound},
		{"include replaces", gguf, Selection{Include: []string{"mmproj*"}}, []string{"mmproj-model-f16.gguf"}, nil},
		{"quant plus include", gguf, Selection{Quant: "Q2_K", Include: []string{"mmproj*"}}, []string{"README.md", "mmproj-model-f16.gguf", "model-Q2_K.gguf"}, nil},
		{"exclude", gguf, Selection{Quant: "Q2_K", Exclude: []string{"README.md"}}, []string{"model-Q2_K.gguf"}, nil},
		{"safetensors", st, Selection{}, []string{
			"README.md", "config.json", "generation_config.json",
			"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json",
			"special_tokens_map.json", "tokenizer.json", "tokenizer.model", "tokenizer_config.json",
		}, nil},
		{"include bin", st, Selection{Include: []string{"*.bin", "config.json"}}, []string{"config.json", "pytorch_model.bin"}, nil},
		// A sentence-transformers model: its modules' configurations and
		// Dense weights too (EmbeddingGemma's layout), not its ONNX export.
		{"sentence-transformers", []string{"config.json", "model.safetensors", "tokenizer.json", "modules.json", "1_Pooling/config.json",
			"2_Dense/config.json", "2_Dense/model.safetensors", "3_Dense/config.json", "3_Dense/model.safetensors", "onnx/model.onnx",
			"config_sentence_transformers.json", "4_Dense_1024/config.json", "4_Dense_1024/pytorch_model.bin", "0_Transformer/config.json",
			"0_Transformer/model.safetensors"}, Selection{}, []string{
			"1_Pooling/config.json", "2_Dense/config.json", "2_Dense/model.safetensors", "3_Dense/config.json", "3_Dense/model.safetensors",
			"4_Dense_1024/config.json",
			"config.json", "model.safetensors", "modules.json", "tokenizer.json",
		}, nil},
		// A quantization of a safetensors repo is the type to convert to,
		// when the caller converts and accepts it.
		{"safetensors to convert", st, Selection{Quant: "Q4_K_M", Convertible: func(q string) bool { return q == "Q4_K_M" }}, []string{
			"README.md", "config.json", "generation_config.json",
			"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json",
			"special_tokens_map.json", "tokenizer.json", "tokenizer.model", "tokenizer_config.json",
		}, nil},
		{"safetensors not convertible", st, Selection{Quant: "IQ1_S", Convertible: func(q string) bool { return q == "Q4_K_M" }}, nil, ErrNotFound},
		{"safetensors without a converter", st, Selection{Quant: "Q4_K_M"}, nil, ErrNotFound},
		{"gguf repo ignores the converter", gguf, Selection{Quant: "Q8_0", Convertible: func(string) bool { return true }}, []string{"README.md", "model-q8_0.gguf"}, nil},
		{"only bin", []string{"config.json", "pytorch_model.bin"}, Selection{}, nil, ErrNotFound},
		{"single gguf", []string{"README.md", "stories260K.gguf"}, Selection{}, []string{"README.md", "stories260K.gguf"}, nil},
		{"ambiguous", []string{"a.gguf", "b.gguf"}, Selection{}, nil, ErrAmbiguous},
		{"preference without Q4_K_M", []string{"x-Q8_0.gguf", "x-F16.gguf", "x-Q6_K.gguf"}, Selection{}, []string{"x-Q6_K.gguf"}, nil},
		{"incomplete split", []string{"m-Q4_K_M-00001-of-00003.gguf", "m-Q4_K_M-00002-of-00003.gguf"}, Selection{}, nil, ErrNotFound},
		{"quant folder", []string{"Q4_K_M/m-00001-of-00002.gguf", "Q4_K_M/m-00002-of-00002.gguf", "Q8_0/m-00001-of-00001.gguf"}, Selection{Quant: "Q8_0"}, []string{"Q8_0/m-00001-of-00001.gguf"}, nil},
		{"quant folder default", []string{"Q4_K_M/m-00001-of-00002.gguf", "Q4_K_M/m-00002-of-00002.gguf", "Q8_0/m-00001-of-00001.gguf"}, Selection{}, []string{"Q4_K_M/m-00001-of-00002.gguf", "Q4_K_M/m-00002-of-00002.gguf"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := SelectFiles(tt.paths, tt.sel)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err = %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestQuantOf(t *testing.T) {
	for in, want := range map[string]string{
		"Llama-3.2-1B-Instruct-Q4_K_M.gguf":              "Q4_K_M",
		"qwen2.5-7b-instruct-q5_k_m-00001-of-00002.gguf": "Q5_K_M",
		"model.Q8_0.gguf":                                "Q8_0",
		"model-IQ4_XS.gguf":                              "IQ4_XS",
		"model-UD-Q4_K_XL.gguf":                          "Q4_K_XL",
		"model-f16.gguf":                                 "F16",
		"model-BF16.gguf":                                "BF16",
		"stories260K.gguf":                               "",
		"Q4_K_M/model-00001-of-00002.gguf":               "Q4_K_M",
		"Qwen3-0.6B-Q8_0.gguf":                           "Q8_0",
	} {
		if got := QuantOf(in); got != want {
			t.Errorf("QuantOf(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSplitPart(t *testing.T) {
	p, n, c, ok := SplitPart("dir/model-Q4_K_M-00002-of-00005.gguf")
	if !ok || p != "dir/model-Q4_K_M" || n != 2 || c != 5 {
		t.Errorf("got %q %d %d %v", p, n, c, ok)
	}
	for _, s := range []string{"model.gguf", "model-00006-of-00005.gguf", "model-00000-of-00005.gguf", "model-1-of-2.gguf"} {
		if _, _, _, ok := SplitPart(s); ok {
			t.Errorf("SplitPart(%q) ok", s)
		}
	}
}
