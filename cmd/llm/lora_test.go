package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llm-go/llm/hub/hubserver"
	"github.com/llm-go/llm/hub/hubtest"
	"github.com/llm-go/llm/internal/shareddata"
	"github.com/llm-go/llm/internal/testmodel"
	"github.com/llm-go/llm/loader/convert"
)

// TestLoRAFlags: --lora and --lora-scaled apply an adapter in generate
// and run as merging it into the weights would; a Modelfile's ADAPTER
// (relative to the Modelfile) does the same through a preset; bad values
// are usage errors and a missing file an error.
func TestLoRAFlags(t *testing.T) {
	stories := shareddata.Path(t, "models", "stories260K.gguf")
	adapter := testmodel.StoriesLoRA(t, nil)
	gen := func(args ...string) string {
		t.Helper()
		code, out, stderr := run(t, "", append([]string{"generate", "--temp", "0", "-n", "24", "-t", "1", "--cache-type-k", "f32", "--cache-type-v", "f32",
			"--flash-attn", "off"}, append(args, "Once upon a time")...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, stderr)
		}
		return out
	}
	base := gen(stories)
	merged := gen(testmodel.StoriesMerged(t, 1))
	if got := gen(stories, "--lora", adapter); got != merged || got == base {
		t.Errorf("--lora: %q; merged %q, base %q", got, merged, base)
	}
	if got, want := gen(stories, "--lora-scaled", adapter+":0.5"), gen(testmodel.StoriesMerged(t, 0.5)); got != want {
		t.Errorf("--lora-scaled :0.5: %q, want %q", got, want)
	}
	// A PEFT adapter directory: converted on the fly, or by llm convert.
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	peft := testmodel.StoriesPEFT(t)
	if got := gen(stories, "--lora", peft); got != merged {
		t.Errorf("--lora PEFT_DIR: %q, want %q", got, merged)
	}
	converted := filepath.Join(t.TempDir(), "peft.gguf")
	if code, _, stderr := run(t, "", "convert", peft, "--base", stories, "-o", converted); code != 0 {
		t.Fatalf("convert --base: exit %d: %s", code, stderr)
	}
	if got := gen(stories, "--lora", converted); got != merged {
		t.Errorf("--lora of llm convert's output: %q, want %q", got, merged)
	}
	if code, _, stderr := run(t, "", "convert", peft, "-o", converted); code != 2 || !strings.Contains(stderr, "--base") {
		t.Errorf("convert of an adapter without --base: exit %d, %s", code, stderr)
	}

	code, out, stderr := run(t, "Once upon a time", "run", stories, "--lora", adapter, "--temp", "0", "-n", "24", "-t", "1",
		"--cache-type-k", "f32", "--cache-type-v", "f32", "--flash-attn", "off")
	if code != 0 || out != merged {
		t.Errorf("run --lora: exit %d (%s): %q, want %q", code, stderr, out, merged)
	}

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--lora-scaled", adapter}, 2, "want FILE:SCALE"},
		{[]string{"--lora-scaled", adapter + ":lots"}, 2, "not a finite number"},
		{[]string{"--lora", ""}, 2, "empty file name"},
		{[]string{"--lora", "/no/such/adapter.gguf"}, 1, "no such file"},
		{[]string{"--lora", stories}, 1, "general.type"},
	} {
		code, _, stderr := run(t, "", append([]string{"generate", stories, "-n", "4"}, append(tc.args, "Hi")...)...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, %q; want %d naming %q", tc.args, code, stderr, tc.code, tc.want)
		}
	}

	dir := t.TempDir()
	t.Setenv("LLM_PRESETS", filepath.Join(dir, "presets")) // the presets of this test only
	data, err := os.ReadFile(adapter)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tuned.gguf"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	mf := filepath.Join(dir, "Modelfile")
	if err := os.WriteFile(mf, []byte("FROM "+stories+"\nADAPTER ./tuned.gguf\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := run(t, "", "create", "tuned", "-f", mf); code != 0 {
		t.Fatalf("create: exit %d: %s", code, stderr)
	}
	if got := gen("tuned"); got != merged {
		t.Errorf("a preset with ADAPTER: %q, want %q", got, merged)
	}
	if err := os.WriteFile(mf, []byte("FROM "+stories+"\nADAPTER "+stories+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := run(t, "", "create", "notlora", "-f", mf); code == 0 || !strings.Contains(stderr, "not a LoRA adapter") {
		t.Errorf("ADAPTER naming a model: exit %d, %s", code, stderr)
	}
}

// TestLoRAFromHubCommand: --lora takes a Hub repo holding a PEFT adapter,
// pulled into the shared cache, as the same files here.
func TestLoRAFromHubCommand(t *testing.T) {
	peft := testmodel.StoriesPEFT(t)
	repo, err := hubserver.LoadRepoDir("test/stories-lora-peft", peft)
	if err != nil {
		t.Fatal(err)
	}
	srv := hubtest.New(t, repo)
	t.Setenv("HF_HUB_CACHE", filepath.Join(t.TempDir(), "hub"))
	t.Setenv("HF_ENDPOINT", srv.URL)
	t.Setenv("HF_HUB_OFFLINE", "")
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	stories := shareddata.Path(t, "models", "stories260K.gguf")
	gen := func(lora string) string {
		t.Helper()
		code, out, stderr := run(t, "", "generate", stories, "--temp", "0", "-n", "24", "-t", "1", "--lora", lora, "Once upon a time")
		if code != 0 {
			t.Fatalf("--lora %s: exit %d: %s", lora, code, stderr)
		}
		return out
	}
	if got, want := gen("test/stories-lora-peft"), gen(peft); got != want {
		t.Errorf("--lora from the Hub: %q, want %q", got, want)
	}
	if code, _, stderr := run(t, "", "generate", stories, "-n", "2", "--lora", "test/no-such-adapter", "Hi"); code == 0 || !strings.Contains(stderr, "no-such-adapter") {
		t.Errorf("a missing repo: exit %d, %s", code, stderr)
	}
	// A Modelfile's ADAPTER names the Hub repo as well; a missing one
	// fails llm create.
	dir := t.TempDir()
	t.Setenv("LLM_PRESETS", filepath.Join(dir, "presets"))
	mf := filepath.Join(dir, "Modelfile")
	if err := os.WriteFile(mf, []byte("FROM "+stories+"\nADAPTER test/stories-lora-peft\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := run(t, "", "create", "hubtuned", "-f", mf); code != 0 {
		t.Fatalf("create with a Hub ADAPTER: exit %d: %s", code, stderr)
	}
	code, out, stderr := run(t, "", "generate", "hubtuned", "--temp", "0", "-n", "24", "-t", "1", "Once upon a time")
	if want := gen(peft); code != 0 || out != want {
		t.Errorf("the preset with a Hub ADAPTER: exit %d (%s): %q, want %q", code, stderr, out, want)
	}
	if err := os.WriteFile(mf, []byte("FROM "+stories+"\nADAPTER test/no-such-adapter\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := run(t, "", "create", "missing", "-f", mf); code == 0 || !strings.Contains(stderr, "no-such-adapter") {
		t.Errorf("a missing Hub ADAPTER: exit %d, %s", code, stderr)
	}

	// The adapter named as the model, here or on the Hub: said so, with
	// the flag to use.
	for _, name := range []string{peft, "test/stories-lora-peft"} {
		for _, args := range [][]string{{"generate", name, "-n", "2", "Hi"}, {"run", name, "-n", "2"}} {
			if code, _, stderr := run(t, "Hi\n", args...); code == 0 || !strings.Contains(stderr, "is a LoRA adapter") || !strings.Contains(stderr, "--lora") {
				t.Errorf("%v: exit %d, %s", args, code, stderr)
			}
		}
	}
}

// TestEmbedTaskCommand: llm embed --task applies the task adapter found
// beside the model, and says which tasks a model has when none is given;
// llm show lists them; llm quantize takes them along.
func TestEmbedTaskCommand(t *testing.T) {
	model, adapter := testmodel.StoriesWithTask(t, "stories", "query", "Query: ")
	embedding := func(args ...string) (string, string) {
		t.Helper()
		code, out, stderr := run(t, "", append([]string{"embed", model, "-t", "1"}, args...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, stderr)
		}
		var res struct {
			Data []struct {
				Embedding []float32 `json:"embedding"`
			} `json:"data"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(res.Data[0].Embedding), stderr
	}
	base, stderr := embedding("The dog ran.")
	if !strings.Contains(stderr, "task adapters (query)") {
		t.Errorf("without --task, stderr %q does not name the tasks", stderr)
	}
	task, _ := embedding("--task", "query", "The dog ran.")
	lora, _ := embedding("--lora", adapter, "Query: The dog ran.")
	if task != lora || task == base {
		t.Error("--task query: not the adapter's embedding of the text after its instruction")
	}
	if code, _, stderr := run(t, "", "embed", model, "--task", "passage", "x"); code == 0 || !strings.Contains(stderr, "query") {
		t.Errorf("--task passage: exit %d, %q", code, stderr)
	}
	if code, out, stderr := run(t, "", "show", model); code != 0 || !strings.Contains(out, "Tasks:") || !strings.Contains(out, "query") {
		t.Errorf("show: exit %d, %q %q", code, out, stderr)
	}
	if code, out, _ := run(t, "", "show", adapter); code != 0 || !strings.Contains(out, "for task query") {
		t.Errorf("show the adapter: exit %d, %q", code, out)
	}
	q := filepath.Join(t.TempDir(), "stories-f16.gguf")
	if code, _, stderr := run(t, "", "quantize", model, q, "f16"); code != 0 || !strings.Contains(stderr, "task query") {
		t.Fatalf("quantize: exit %d, %q", code, stderr)
	}
	if _, err := os.Stat(convert.TaskAdapterPath(q, "query")); err != nil {
		t.Errorf("quantize did not take the task adapter along: %v", err)
	}
}
