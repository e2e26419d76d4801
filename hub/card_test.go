package hub

import (
	"reflect"
	"testing"
)

func TestParseCard(t *testing.T) {
	readme := "---\nlicense: other\nlicense_name: llama3\npipeline_tag: text-generation\nbase_model:\n- meta/a\n- meta/b\ntags: [gguf, llama]\nlanguage: en\n---\n\n<!-- comment\nmore -->\n# Title\n\n[![badge](x)](y)\n\nThis model is\nsmall.\n\nSecond paragraph.\n"
	c, err := ParseCard([]byte(readme))
	if err != nil {
		t.Fatal(err)
	}
	want := Card{License: "other (llama3)", PipelineTag: "text-generation", BaseModels: []string{"meta/a", "meta/b"},
		Tags: []string{"gguf", "llama"}, Languages: []string{"en"}, Description: "This model is small."}
	c.Data = nil
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got %+v\nwant %+v", c, want)
	}
	c, err = ParseCard([]byte("# Just text\n\nHello world.\n"))
	if err != nil || c.Description != "Hello world." || c.License != "" {
		t.Errorf("no front matter: %+v %v", c, err)
	}
	if _, err := ParseCard([]byte("---\nlicense: [unclosed\n---\nx\n")); err == nil {
		t.Error("bad YAML accepted")
	}
	c, _ = ParseCard([]byte("---\r\nbase_model: x/y\r\n---\r\nText.\r\n"))
	if !reflect.DeepEqual(c.BaseModels, []string{"x/y"}) || c.Description != "Text." {
		t.Errorf("CRLF: %+v", c)
	}
}

func TestReadSafetensorsHeader(t *testing.T) {
	dir := t.TempDir()
	p := dir + "/m.safetensors"
	hdr := `{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"b":{"dtype":"BF16","shape":[4],"data_offsets":[24,32]}}`
	for len(hdr)%8 != 0 {
		hdr += " "
	}
	b := make([]byte, 8, 8+len(hdr)+32)
	b[0] = byte(len(hdr))
	b = append(b, hdr...)
	b = append(b, make([]byte, 32)...)
	writeFileAtomic(p, b)
	h, err := ReadSafetensorsHeader(p)
	if err != nil {
		t.Fatal(err)
	}
	if h.Tensors != 2 || h.Params != 10 || h.DTypes["F32"] != 6 || h.DTypes["BF16"] != 4 || h.Meta["format"] != "pt" {
		t.Errorf("%+v", h)
	}

	// gpt-oss's MXFP4 experts: 32 weights in 16 bytes of blocks and one
	// exponent byte.
	hdr = `{"e.gate_up_proj_blocks":{"dtype":"U8","shape":[1,1,1,16],"data_offsets":[0,16]},"e.gate_up_proj_scales":{"dtype":"U8","shape":[1,1,1],"data_offsets":[16,17]}}`
	for len(hdr)%8 != 0 {
		hdr += " "
	}
	b = make([]byte, 8, 8+len(hdr)+17)
	b[0] = byte(len(hdr))
	b = append(b, hdr...)
	b = append(b, make([]byte, 17)...)
	writeFileAtomic(p, b)
	if h, err = ReadSafetensorsHeader(p); err != nil || h.Tensors != 2 || h.Params != 32 {
		t.Errorf("MXFP4: %+v, %v", h, err)
	}
}
