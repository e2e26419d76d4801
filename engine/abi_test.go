package engine

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// TestABI checks that llama_api.h, our own declaration of the llama.cpp C
// API subset, agrees with the upstream headers vendored in the Ollama module:
// equal sizeof and offsetof for every struct field, equal enum values, and
// prototypes and typedefs that compile after the upstream llama.h (where a
// mismatching redeclaration is an error).
func TestABI(t *testing.T) {
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "cc"
	}
	if _, err := exec.LookPath(cc); err != nil {
		t.Fatalf("a C compiler is needed for cgo and for this test: %v", err)
	}
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/ollama/ollama").Output()
	if err != nil {
		t.Fatalf("locating the Ollama module: %v", err)
	}
	modDir := strings.TrimSpace(string(out))
	upstream := []string{
		"-I" + filepath.Join(modDir, "llama", "llama.cpp", "include"),
		"-I" + filepath.Join(modDir, "ml", "backend", "ggml", "ggml", "include"),
	}
	header, err := os.ReadFile("llama_api.h")
	if err != nil {
		t.Fatal(err)
	}
	decl := parseDecls(t, string(header))
	if len(decl.structs) < 5 || len(decl.enums) < 8 || len(decl.prototypes) < 40 {
		t.Fatalf("parsed too little from llama_api.h: %d structs, %d enums, %d prototypes",
			len(decl.structs), len(decl.enums), len(decl.prototypes))
	}

	dir := t.TempDir()
	run := func(name, include string, flags []string) map[string]string {
		src := filepath.Join(dir, name+".c")
		bin := filepath.Join(dir, name)
		if err := os.WriteFile(src, []byte(decl.layoutProgram(include)), 0o644); err != nil {
			t.Fatal(err)
		}
		args := append([]string{"-std=c11", "-o", bin, src}, flags...)
		if out, err := exec.Command(cc, args...).CombinedOutput(); err != nil {
			t.Fatalf("compiling the layout program against %s: %v\n%s", include, err, out)
		}
		out, err := exec.Command(bin).Output()
		if err != nil {
			t.Fatalf("running %s: %v", bin, err)
		}
		facts := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			k, v, _ := strings.Cut(line, " = ")
			facts[k] = v
		}
		return facts
	}
	ours := run("ours", "llama_api.h", []string{"-I."})
	theirs := run("upstream", "llama.h", upstream)
	keys := make([]string, 0, len(ours))
	for k := range ours {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if ours[k] != theirs[k] {
			t.Errorf("%s: ours %s, upstream %s", k, ours[k], theirs[k])
		}
	}
	t.Logf("compared %d layout facts (%d structs, %d enums)", len(keys), len(decl.structs), len(decl.enums))

	// Prototypes and typedefs, redeclared after the upstream header.
	src := filepath.Join(dir, "protos.c")
	body := "#include \"llama.h\"\n" + strings.Join(decl.typedefs, "\n") + "\n" + strings.Join(decl.prototypes, "\n") + "\n"
	if err := os.WriteFile(src, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"-std=c11", "-Werror", "-fsyntax-only", src}, upstream...)
	if out, err := exec.Command(cc, args...).CombinedOutput(); err != nil {
		t.Errorf("our prototypes or typedefs disagree with upstream llama.h:\n%s", out)
	}
	t.Logf("checked %d prototypes and %d typedefs", len(decl.prototypes), len(decl.typedefs))
}

type cStruct struct {
	name   string // as written after "struct"
	fields []string
}

type cEnum struct {
	name   string
	consts []string
}

type decls struct {
	structs    []cStruct
	enums      []cEnum
	prototypes []string
	typedefs   []string
}

var (
	structRE = regexp.MustCompile(`(?s)struct\s+(\w+)\s*\{(.*?)\}`)
	enumRE   = regexp.MustCompile(`(?s)enum\s+(\w+)\s*\{(.*?)\}`)
	fieldRE  = regexp.MustCompile(`(\w+)\s*(\[\s*\w+\s*\])?\s*;\s*$`)
	constRE  = regexp.MustCompile(`^\s*(\w+)\s*=`)
)

func parseDecls(t *testing.T, h string) decls {
	var d decls
	for _, m := range structRE.FindAllStringSubmatch(h, -1) {
		s := cStruct{name: m[1]}
		for _, line := range strings.Split(m[2], "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "//") {
				continue
			}
			f := fieldRE.FindStringSubmatch(line)
			if f == nil {
				t.Fatalf("llama_api.h: struct %s: cannot parse field line %q", s.name, line)
			}
			s.fields = append(s.fields, f[1])
		}
		d.structs = append(d.structs, s)
	}
	for _, m := range enumRE.FindAllStringSubmatch(h, -1) {
		e := cEnum{name: m[1]}
		for _, line := range strings.Split(m[2], "\n") {
			if c := constRE.FindStringSubmatch(line); c != nil {
				e.consts = append(e.consts, c[1])
			}
		}
		d.enums = append(d.enums, e)
	}
	begin := strings.Index(h, "// BEGIN PROTOTYPES")
	end := strings.Index(h, "// END PROTOTYPES")
	if begin < 0 || end < begin {
		t.Fatal("llama_api.h: missing BEGIN/END PROTOTYPES markers")
	}
	for _, line := range strings.Split(h[begin:end], "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "//") {
			d.prototypes = append(d.prototypes, line)
		}
	}
	for _, line := range strings.Split(h, "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "typedef ") && strings.HasSuffix(line, ";") && !strings.Contains(line, "{") {
			d.typedefs = append(d.typedefs, line)
		}
	}
	return d
}

// layoutProgram returns a C program that prints the layout facts of every
// declared struct and enum, including include.
func (d decls) layoutProgram(include string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "#include <stdio.h>\n#include <stddef.h>\n#include \"%s\"\nint main(void) {\n", include)
	for _, s := range d.structs {
		fmt.Fprintf(&b, "  printf(\"sizeof(struct %[1]s) = %%zu\\n\", sizeof(struct %[1]s));\n", s.name)
		fmt.Fprintf(&b, "  printf(\"alignof(struct %[1]s) = %%zu\\n\", _Alignof(struct %[1]s));\n", s.name)
		for _, f := range s.fields {
			fmt.Fprintf(&b, "  printf(\"offsetof(%[1]s.%[2]s) = %%zu\\n\", offsetof(struct %[1]s, %[2]s));\n", s.name, f)
			fmt.Fprintf(&b, "  printf(\"sizeof(%[1]s.%[2]s) = %%zu\\n\", sizeof(((struct %[1]s *)0)->%[2]s));\n", s.name, f)
		}
	}
	for _, e := range d.enums {
		fmt.Fprintf(&b, "  printf(\"sizeof(enum %[1]s) = %%zu\\n\", sizeof(enum %[1]s));\n", e.name)
		for _, c := range e.consts {
			fmt.Fprintf(&b, "  printf(\"%[1]s = %%lld\\n\", (long long)%[1]s);\n", c)
		}
	}
	b.WriteString("  return 0;\n}\n")
	return b.String()
}
