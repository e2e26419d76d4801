package engine_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"

	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/synth"
)

// TestCheckpoint takes a hybrid model's checkpoint of a sequence, decodes
// past it, rewinds to it and decodes the same tokens again: the same
// logits, and the sequence holds only the positions up to the checkpoint
// in between. A checkpoint whose positions the sequence no longer holds is
// refused (the sequence cleared), as is a checkpoint of a model whose
// memory can drop tokens.
func TestCheckpoint(t *testing.T) {
	s := synth.Shape{Name: "tiny-granite", Arch: "granitehybrid", Vocab: 1000, Embd: 64, FF: 32, Layers: 4, Heads: 4, KVHeads: 2,
		Context: 512, RopeTheta: 10000, NormEps: 1e-5, Experts: 4, ExpertsUsed: 2, SharedFF: 64,
		AttnLayers: []int{1}, SSMHeads: 8, SSMState: 16, SSMGroups: 1, SSMConv: 4}
	path := filepath.Join(t.TempDir(), "g.gguf")
	ctx := context.Background()
	if err := synth.Write(ctx, path, s, synth.Options{F32: true, Seed: 5}); err != nil {
		t.Fatal(err)
	}
	m, err := engine.LoadModel(ctx, path, engine.ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	c := newContext(t, m, engine.ContextOptions{ContextLength: 256, MaxSequences: 2, Threads: 1})
	b := newBatch(t, 32, 1)
	decode := func(from int, toks []engine.Token) []float32 {
		t.Helper()
		b.Clear()
		for i, tok := range toks {
			b.Add(tok, engine.Pos(from+i), i == len(toks)-1, 0)
		}
		if err := c.Decode(ctx, b); err != nil {
			t.Fatal(err)
		}
		l, err := c.LogitsCopy(nil, len(toks)-1)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	prefix, rest := []engine.Token{1, 300, 301, 302, 303, 304, 305, 306}, []engine.Token{400, 401, 402, 403, 404, 405}
	decode(0, prefix)
	lo0, hi0, _ := c.PositionRange(0) // a hybrid's: its recurrent memory's single position
	cp, err := c.Checkpoint(0)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Pos() != engine.Pos(len(prefix)-1) || cp.Size() == 0 {
		t.Errorf("checkpoint at %d of %d bytes, want position %d", cp.Pos(), cp.Size(), len(prefix)-1)
	}
	first := decode(len(prefix), rest)
	decode(len(prefix)+len(rest), []engine.Token{500, 501})
	for round := range 2 {
		if err := c.RestoreCheckpoint(0, cp); err != nil {
			t.Fatal(err)
		}
		if lo, hi, _ := c.PositionRange(0); lo != lo0 || hi != hi0 || hi != cp.Pos() {
			t.Errorf("round %d: restored, the sequence spans [%d, %d], want [%d, %d] as at the checkpoint", round, lo, hi, lo0, hi0)
		}
		if again := decode(len(prefix), rest); !slices.Equal(again, first) {
			t.Errorf("round %d: logits after rewinding differ from the first time's", round)
		}
	}
	// Rewound past what the sequence holds: refused, and cleared.
	if _, err := c.RemoveTokens(0, 0, -1); err != nil {
		t.Fatal(err)
	}
	decode(0, prefix[:3])
	if err := c.RestoreCheckpoint(0, cp); !errors.Is(err, engine.ErrCheckpoint) {
		t.Errorf("restoring past the sequence: %v, want ErrCheckpoint", err)
	}
	if lo, hi, _ := c.PositionRange(0); lo != -1 || hi != -1 {
		t.Errorf("after a refused restore the sequence spans [%d, %d], want nothing", lo, hi)
	}
	if err := c.RestoreCheckpoint(0, nil); !errors.Is(err, engine.ErrCheckpoint) {
		t.Errorf("restoring no checkpoint: %v", err)
	}
	if _, err := c.Checkpoint(1); err == nil {
		t.Error("a checkpoint of an empty sequence")
	}

	llama := loadModel(t, engine.ModelOptions{}, "models", "stories260K.gguf")
	lc := newContext(t, llama, engine.ContextOptions{ContextLength: 64})
	if _, err := lc.Checkpoint(0); err == nil {
		t.Error("a checkpoint of a llama model's sequence")
	}
}
