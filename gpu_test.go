package llm_test

import (
	"context"
	"strings"
	"testing"

	"github.com/llm-go/llm"
	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/internal/shareddata"
	"github.com/llm-go/llm/modelfile"
)

// TestGPULayersWithoutGPU: on a machine without a GPU, the offload
// options are taken, say what they could not do through WithLoadNotes, and
// change nothing in the text; the automatic default says nothing. Which
// count wins: WithGPULayers, else the preset's num_gpu (Ollama's -1 is
// automatic), else AutoLayers.
func TestGPULayersWithoutGPU(t *testing.T) {
	if engine.HaveGPU() {
		t.Skip("a GPU is here: this test is about a machine without one")
	}
	r := references(t)[0]
	model := shareddata.Path(t, "models", "stories260K.gguf")
	store := &modelfile.Store{Dir: t.TempDir()}
	for name, numGPU := range map[string]string{"all": "99", "auto": "-1"} {
		mf, err := modelfile.Parse(strings.NewReader("FROM " + model + "\nPARAMETER num_gpu " + numGPU + "\n"))
		if err != nil {
			t.Fatal(err)
		}
		if err := store.Save(name, mf); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name  string
		model string
		opts  []llm.Option
		noGPU bool // a note says there is no GPU
	}{
		{"default (auto)", model, nil, false},
		{"AutoLayers", model, []llm.Option{llm.WithGPULayers(llm.AutoLayers)}, false},
		{"AllLayers", model, []llm.Option{llm.WithGPULayers(llm.AllLayers)}, true},
		{"3 layers, split and flash attention", model, []llm.Option{llm.WithGPULayers(3),
			llm.WithGPUSplit(engine.SplitRow, 0, 1), llm.WithFlashAttention(engine.FlashAttentionOn)}, true},
		{"preset num_gpu 99", "all", nil, true},
		{"preset num_gpu -1", "auto", nil, false},
		{"WithGPULayers(0) over the preset", "all", []llm.Option{llm.WithGPULayers(0)}, false},
	}
	ctx := context.Background()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var notes []string
			opts := append([]llm.Option{llm.WithThreads(1), llm.WithPresets(store),
				llm.WithLoadNotes(func(s string) { notes = append(notes, s) })}, tc.opts...)
			p, err := llm.New(ctx, tc.model, opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			if tc.noGPU != (len(notes) == 1 && strings.Contains(notes[0], "there is no GPU device")) || (!tc.noGPU && len(notes) > 0) {
				t.Errorf("notes %q; want a note that there is no GPU: %v", notes, tc.noGPU)
			}
			got, err := p.Generate(ctx, r.Prompt, greedy(r.NPredict)...)
			if err != nil {
				t.Fatal(err)
			}
			if got.Text != r.Text {
				t.Errorf("text %q, want the reference %q", got.Text, r.Text)
			}
			if n := p.GPULayers(); n != 0 {
				t.Errorf("%d layers on GPUs without a GPU", n)
			}
		})
	}
	if _, err := llm.New(ctx, model, llm.WithGPULayers(-3)); err == nil || !strings.Contains(err.Error(), "WithGPULayers(-3)") {
		t.Errorf("WithGPULayers(-3): %v, want an error naming it", err)
	}
	// The cache types reach the engine: q8_0 blocks of 32 do not divide
	// this model's 8-wide heads.
	if _, err := llm.New(ctx, model, llm.WithCacheTypes("q8_0", "f16")); err == nil || !strings.Contains(err.Error(), "q8_0") {
		t.Errorf("WithCacheTypes(q8_0): %v, want the engine's refusal", err)
	}
}
