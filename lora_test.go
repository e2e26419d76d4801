package llm_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llm-go/llm"
	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/hub"
	"github.com/llm-go/llm/hub/hubserver"
	"github.com/llm-go/llm/hub/hubtest"
	"github.com/llm-go/llm/internal/shareddata"
	"github.com/llm-go/llm/internal/testmodel"
	"github.com/llm-go/llm/loader/gguf"
	"github.com/llm-go/llm/modelfile"
)

// TestWithLoRA: a pipeline with a LoRA adapter generates what the model
// with the adapter merged into its weights does, at the scale given, and
// embeds as it does; a preset's ADAPTER applies it the same way; an
// adapter that does not fit is an error from New.
func TestWithLoRA(t *testing.T) {
	ctx := context.Background()
	stories := shareddata.Path(t, "models", "stories260K.gguf")
	adapter := testmodel.StoriesLoRA(t, nil)
	run := func(name string, opts ...llm.Option) (string, []float32) {
		t.Helper()
		p, err := llm.New(ctx, name, append([]llm.Option{llm.WithThreads(1), llm.WithCacheTypes("f32", "f32"),
			llm.WithFlashAttention(engine.FlashAttentionOff)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		res, err := p.Generate(ctx, "Once upon a time", llm.Temperature(0), llm.MaxTokens(24))
		if err != nil {
			t.Fatal(err)
		}
		vecs, err := p.Embed(ctx, "The dog ran.")
		if err != nil {
			t.Fatal(err)
		}
		return res.Text, vecs[0]
	}
	base, baseVec := run(stories)
	for _, scale := range []float32{1, 0.5} {
		want, wantVec := run(testmodel.StoriesMerged(t, float64(scale)))
		got, gotVec := run(stories, llm.WithLoRA(adapter, scale))
		if got != want || got == base {
			t.Errorf("scale %g: %q; merged %q, base %q", scale, got, want, base)
		}
		var d float64
		for i := range wantVec {
			d = max(d, math.Abs(float64(gotVec[i]-wantVec[i])))
		}
		if d > 1e-5 {
			t.Errorf("scale %g: embeddings differ from the merged model's by %.3g", scale, d)
		}
		if scale == 1 && gotVec[0] == baseVec[0] && gotVec[1] == baseVec[1] {
			t.Error("the adapter left the embeddings unchanged")
		}
	}

	// A PEFT adapter directory is converted (once, into the cache, in
	// F16): the merged model's tokens up to the first step its two best
	// are within 0.05 (the factors' F16 rounding), with an F32 cache and
	// no flash attention.
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	tokens := func(name string, opts ...llm.Option) *llm.Result {
		t.Helper()
		p, err := llm.New(ctx, name, append([]llm.Option{llm.WithThreads(1), llm.WithCacheTypes("f32", "f32"),
			llm.WithFlashAttention(engine.FlashAttentionOff)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		res, err := p.Generate(ctx, "Once upon a time", llm.Temperature(0), llm.MaxTokens(24), llm.Logprobs(2))
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	n := sameUpToTie(t, "a PEFT adapter", tokens(stories, llm.WithLoRA(testmodel.StoriesPEFT(t), 1)), tokens(testmodel.StoriesMerged(t, 1)), 0.05)
	t.Logf("a PEFT adapter: the merged model's first %d tokens", n)

	store := &modelfile.Store{Dir: t.TempDir()}
	if err := store.Save("tuned", &modelfile.Modelfile{From: stories, Adapters: []string{adapter}}); err != nil {
		t.Fatal(err)
	}
	want, _ := run(testmodel.StoriesMerged(t, 1))
	if got, _ := run("tuned", llm.WithPresets(store)); got != want {
		t.Errorf("preset with ADAPTER: %q, want %q", got, want)
	}

	other := testmodel.StoriesLoRA(t, func(w *gguf.Writer) { w.Set("general.architecture", gguf.String("qwen2")) })
	if _, err := llm.New(ctx, stories, llm.WithLoRA(other, 1)); !errors.Is(err, engine.ErrAdapter) {
		t.Errorf("an adapter for another architecture: %v", err)
	}
	if _, err := llm.New(ctx, stories, llm.WithLoRA(adapter, float32(math.Inf(1)))); err == nil {
		t.Error("an infinite scale was accepted")
	}
}

// TestLoRAFromHub: WithLoRA takes a Hub repo holding a PEFT adapter or a
// GGUF adapter, pulled like a model; naming the adapter as the model is an
// error that says what it is.
func TestLoRAFromHub(t *testing.T) {
	ctx := context.Background()
	ggufDir, peftDir := t.TempDir(), testmodel.StoriesPEFT(t)
	ggufFile := filepath.Join(ggufDir, "stories-lora-f32.gguf")
	if err := os.Rename(testmodel.StoriesLoRA(t, nil), ggufFile); err != nil {
		t.Fatal(err)
	}
	var repos []*hubserver.Repo
	for id, dir := range map[string]string{"test/stories-lora-peft": peftDir, "test/stories-lora-gguf": ggufDir} {
		r, err := hubserver.LoadRepoDir(id, dir)
		if err != nil {
			t.Fatal(err)
		}
		repos = append(repos, r)
	}
	srv := hubtest.New(t, repos...)
	client, err := hub.NewClient(hub.LoadEnv(func(k string) string {
		switch k {
		case "HF_ENDPOINT":
			return srv.URL
		case "HF_HUB_CACHE":
			return filepath.Join(t.TempDir(), "hub")
		}
		return ""
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	stories := shareddata.Path(t, "models", "stories260K.gguf")
	gen := func(name string, opts ...llm.Option) string {
		t.Helper()
		p, err := llm.New(ctx, name, append([]llm.Option{llm.WithThreads(1), llm.WithHub(client)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		res, err := p.Generate(ctx, "Once upon a time", llm.Temperature(0), llm.MaxTokens(24))
		if err != nil {
			t.Fatal(err)
		}
		return res.Text
	}
	// From the Hub as from the same files here (the PEFT adapter is
	// converted to F16 either way).
	for repo, local := range map[string]string{"test/stories-lora-peft": peftDir, "test/stories-lora-gguf": ggufFile} {
		if got, want := gen(stories, llm.WithLoRA(repo, 1)), gen(stories, llm.WithLoRA(local, 1)); got != want || got == gen(stories) {
			t.Errorf("WithLoRA(%s): %q, want %q", repo, got, want)
		}
	}
	if _, err := llm.New(ctx, "test/stories-lora-peft", llm.WithHub(client)); !errors.Is(err, llm.ErrUnsupportedModel) || !strings.Contains(err.Error(), "WithLoRA") {
		t.Errorf("an adapter as the model: %v", err)
	}
}

// TestWithTask: WithTask applies the adapter of the task found beside the
// model (lora-TASK-<model file>) and puts its instruction before every
// text Embed embeds, as WithLoRA with the instruction written out does;
// EmbedWith does the same per call, and back to no task; a task the model
// has no adapter for is ErrUnknownTask, naming those it has.
func TestWithTask(t *testing.T) {
	ctx := context.Background()
	const prefix = "Represent the query: "
	model, adapter := testmodel.StoriesWithTask(t, "stories", "query", prefix)
	dir := filepath.Dir(model)
	embed := func(text string, opts ...llm.Option) []float32 {
		t.Helper()
		p, err := llm.New(ctx, model, append([]llm.Option{llm.WithThreads(1)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		v, err := p.Embed(ctx, text)
		if err != nil {
			t.Fatal(err)
		}
		return v[0]
	}
	got := embed("The dog ran.", llm.WithTask("query"))
	want := embed(prefix+"The dog ran.", llm.WithLoRA(adapter, 1))
	var d, dBase float64
	base := embed("The dog ran.")
	for i := range want {
		d = max(d, math.Abs(float64(got[i]-want[i])))
		dBase = max(dBase, math.Abs(float64(got[i]-base[i])))
	}
	if d > 1e-6 || dBase < 1e-3 {
		t.Errorf("WithTask: %.3g from the adapter with the instruction written out, %.3g from the base model", d, dBase)
	}
	// One pipeline switches tasks per call, and back to none.
	p, err := llm.New(ctx, model, llm.WithThreads(1))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if tasks := p.Tasks(); fmt.Sprint(tasks) != "[query]" {
		t.Errorf("Tasks %v, want [query]", tasks)
	}
	for i, task := range []string{"query", "", "query"} {
		v, err := p.EmbedWith(ctx, llm.EmbedOptions{Task: task}, "The dog ran.")
		if err != nil {
			t.Fatal(err)
		}
		want := base
		if task != "" {
			want = got
		}
		if fmt.Sprint(v[0]) != fmt.Sprint(want) {
			var d float64
			for j := range want {
				d = max(d, math.Abs(float64(v[0][j]-want[j])))
			}
			if d > 1e-6 {
				t.Errorf("call %d, task %q: %.3g from the pipeline opened for it", i, task, d)
			}
		}
	}
	if _, err := p.EmbedWith(ctx, llm.EmbedOptions{Task: "passage"}, "x"); !errors.Is(err, llm.ErrUnknownTask) {
		t.Errorf("EmbedWith an unknown task: %v", err)
	}
	if _, err := llm.New(ctx, model, llm.WithTask("passage")); !errors.Is(err, llm.ErrUnknownTask) || !strings.Contains(err.Error(), "query") {
		t.Errorf("an unknown task: %v", err)
	}
	// A task's file that is no adapter is named when the task is asked for.
	broken := filepath.Join(dir, "lora-broken-stories.gguf")
	if err := os.WriteFile(broken, []byte("not a gguf"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := llm.New(ctx, model, llm.WithTask("broken")); !errors.Is(err, llm.ErrUnknownTask) || !strings.Contains(err.Error(), broken) {
		t.Errorf("a broken task adapter: %v", err)
	}
	if v := embed("The dog ran.", llm.WithTask("query")); fmt.Sprint(v) != fmt.Sprint(got) {
		t.Error("another file beside the model changed the task's embedding")
	}
	if _, err := llm.New(ctx, shareddata.Path(t, "models", "stories260K.gguf"), llm.WithTask("query")); !errors.Is(err, llm.ErrUnknownTask) {
		t.Errorf("a model without task adapters: %v", err)
	}
}
