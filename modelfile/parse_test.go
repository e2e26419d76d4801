package modelfile

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	const src = "\ufeff# a pirate\r\n" + `FROM Qwen/Qwen2.5-0.5B-Instruct-GGUF:Q4_K_M
parameter temperature 0.2
PARAMETER stop "<|im_end|>"
PARAMETER	stop   ###
PARAMETER num_ctx 2048
SYSTEM """You are a pirate.
Answer in "one" sentence."""
TEMPLATE "{{ .System }} {{ .Prompt }}"
MESSAGE user Who are you?
MESSAGE Assistant """Arr,
a pirate."""
LICENSE MIT
REQUIRES 0.5.0
`
	m, err := Parse(strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	want := &Modelfile{
		From: "Qwen/Qwen2.5-0.5B-Instruct-GGUF:Q4_K_M",
		Parameters: []Parameter{
			{"temperature", "0.2"}, {"stop", "<|im_end|>"}, {"stop", "###"}, {"num_ctx", "2048"},
		},
		System:   "You are a pirate.\nAnswer in \"one\" sentence.",
		Template: "{{ .System }} {{ .Prompt }}",
		Messages: []Message{{"user", "Who are you?"}, {"assistant", "Arr,\na pirate."}},
		License:  []string{"MIT"},
		Other:    []Parameter{{"requires", "0.5.0"}},
	}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("got  %+v\nwant %+v", m, want)
	}
	// String reads back to the same Modelfile.
	back, err := Parse(strings.NewReader(m.String()))
	if err != nil {
		t.Fatalf("%v in\n%s", err, m.String())
	}
	if !reflect.DeepEqual(back, m) {
		t.Errorf("round trip:\n got %+v\nwant %+v\ntext:\n%s", back, m, m.String())
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct {
		src, want string
		line      int
	}{
		{"PARAMETER temperature 1\n", "", 0},
		{"FROM x\nBOGUS y\n", `unknown command "BOGUS"`, 2},
		{"FROM x\nMESSAGE robot hi\n", `MESSAGE role "robot"`, 2},
		{"FROM x\nPARAMETER temperature\n", "PARAMETER needs a name and a value", 2},
		{"FROM x\nPARAMETER te-mp 1\n", `PARAMETER name "te-mp"`, 2},
		{"FROM x\nSYSTEM \"\"\"never closed\nstill open\n", `no closing """`, 2},
		{"FROM x\nSYSTEM \"one\" two\n", `text "two" after the closing "`, 2},
		{"FROM\n", "FROM needs a model", 1},
	} {
		_, err := Parse(strings.NewReader(c.src))
		if c.want == "" {
			if !errors.Is(err, ErrNoFrom) {
				t.Errorf("%q: %v, want ErrNoFrom", c.src, err)
			}
			continue
		}
		var se *SyntaxError
		if !errors.As(err, &se) || se.Line != c.line || !strings.Contains(se.Msg, c.want) {
			t.Errorf("%q: %v, want line %d: %s", c.src, err, c.line, c.want)
		}
	}
}

func TestStore(t *testing.T) {
	s := &Store{Dir: t.TempDir()}
	base := &Modelfile{From: "/models/x.gguf", Parameters: []Parameter{{"temperature", "0.5"}, {"top_k", "20"}, {"stop", "A"}},
		System: "base system", Template: "{{ .Prompt }}"}
	if err := s.Save("base", base); err != nil {
		t.Fatal(err)
	}
	child := &Modelfile{From: "base", Parameters: []Parameter{{"temperature", "0.1"}, {"use_mmap", "false"}}, System: "child system"}
	if err := s.Save("child:v1", child); err != nil {
		t.Fatal(err)
	}
	st, err := s.Resolve("child:v1")
	if err != nil {
		t.Fatal(err)
	}
	if st.Model != "/models/x.gguf" || st.System != "child system" || st.Template == nil ||
		st.Parameters["temperature"] != 0.1 || st.Parameters["top_k"] != 20.0 || st.Parameters["use_mmap"] != false ||
		!reflect.DeepEqual(st.Stop, []string{"A"}) || !reflect.DeepEqual(st.Chain, []string{"child:v1", "base"}) {
		t.Errorf("resolved %+v", st)
	}
	list, err := s.List()
	if err != nil || len(list) != 2 || list[0].Name != "base" || list[1].Name != "child:v1" || list[1].From != "base" {
		t.Errorf("List: %+v, %v", list, err)
	}
	if err := s.Save("loop", &Modelfile{From: "loop"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Resolve("loop"); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("a FROM loop: %v", err)
	}
	if err := s.Save("lora", &Modelfile{From: "/m.gguf", Adapters: []string{"/a.gguf"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Save("lora2", &Modelfile{From: "lora", Adapters: []string{"/b.gguf"}}); err != nil {
		t.Fatal(err)
	}
	if st, err := s.Resolve("lora2"); err != nil || !slices.Equal(st.Adapters, []string{"/a.gguf", "/b.gguf"}) {
		t.Errorf("ADAPTERs through FROM: %+v, %v", st, err)
	}
	for _, bad := range []string{"", "org/repo", "-x", "a:b:c", "../up", "x:"} {
		if err := s.Save(bad, base); err == nil {
			t.Errorf("name %q accepted", bad)
		}
	}
	if _, err := s.Get("missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get missing: %v", err)
	}
	if err := s.Remove("base"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Resolve("child:v1"); err != nil {
		// base is gone: child's FROM is now just a name, not a preset.
		t.Fatal(err)
	} else if st, _ := s.Resolve("child:v1"); st.Model != "base" {
		t.Errorf("after removing base, child resolves to %q", st.Model)
	}
	if err := s.Remove("base"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Remove: %v", err)
	}
}
