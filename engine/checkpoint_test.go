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

// checkpointShapes are small recurrent models of each kind: Mamba-2 layers
// beside attention (granitehybrid), short convolutions (lfm2, whose state
// is the convolution's alone) and Gated DeltaNets (qwen3next).
var checkpointShapes = []synth.Shape{
	{Name: "tiny-granite", Arch: "granitehybrid", Vocab: 1000, Embd: 64, FF: 32, Layers: 4, Heads: 4, KVHeads: 2,
		Context: 512, RopeTheta: 10000, NormEps: 1e-5, Experts: 4, ExpertsUsed: 2, SharedFF: 64,
		AttnLayers: []int{1}, SSMHeads: 8, SSMState: 16, SSMGroups: 1, SSMConv: 4},
	{Name: "tiny-lfm2", Arch: "lfm2", Vocab: 1000, Embd: 64, FF: 96, Layers: 4, Heads: 4, KVHeads: 2,
		Context: 512, RopeTheta: 1e6, NormEps: 1e-5, TiedEmbeddings: true, AttnLayers: []int{1, 3}, ConvWidth: 3},
	{Name: "tiny-qwen3next", Arch: "qwen3next", Vocab: 1000, Embd: 64, FF: 32, Layers: 4, Heads: 4, KVHeads: 2, HeadSize: 32,
		Context: 512, RopeTheta: 1e4, NormEps: 1e-6, Experts: 4, ExpertsUsed: 2, SharedFF: 64, RopeDim: 8, SSMHeads: 4, SSMGroups: 2, SSMState: 32, SSMConv: 4},
}

// TestCheckpoint takes a recurrent model's checkpoint of a sequence,
// decodes past it, rewinds to it and decodes the same tokens again: the
// same logits, twice. The checkpoint holds the recurrent state alone (its
// size does not grow with the tokens, and a checkpoint reused for a later
// one keeps its memory). A checkpoint of another sequence or context, or
// past what the sequence holds, is refused and the sequence left as it
// was; a model whose memory can drop tokens takes none.
func TestCheckpoint(t *testing.T) {
	ctx := context.Background()
	for _, s := range checkpointShapes {
		t.Run(s.Arch, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "m.gguf")
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
			decode := func(seq engine.SeqID, from int, toks []engine.Token) []float32 {
				t.Helper()
				b.Clear()
				for i, tok := range toks {
					b.Add(tok, engine.Pos(from+i), i == len(toks)-1, seq)
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
			prefix, rest := []engine.Token{1, 300, 301, 302, 303, 304, 305, 306}, []engine.Token{400, 401, 402, 403, 404, 405, 406, 407}
			decode(0, 0, prefix)
			lo0, hi0, _ := c.PositionRange(0)
			cp, err := c.Checkpoint(0, nil)
			if err != nil {
				t.Fatal(err)
			}
			if cp.Pos() != engine.Pos(len(prefix)-1) || cp.Size() == 0 {
				t.Errorf("checkpoint at %d of %d bytes, want position %d", cp.Pos(), cp.Size(), len(prefix)-1)
			}
			first := decode(0, len(prefix), rest)
			// After twice the tokens the state is as large: the attention
			// memory is not in it. Reused, the checkpoint keeps its memory.
			later, err := c.Checkpoint(0, &engine.Checkpoint{})
			if err != nil || later.Size() != cp.Size() {
				t.Fatalf("a checkpoint after %d tokens: %v bytes (%v), after %d: %d", len(prefix)+len(rest), later.Size(), err, len(prefix), cp.Size())
			}
			decode(0, len(prefix)+len(rest), []engine.Token{500, 501})
			for round := range 2 {
				if err := c.RestoreCheckpoint(0, cp); err != nil {
					t.Fatal(err)
				}
				if lo, hi, _ := c.PositionRange(0); lo != lo0 || hi != hi0 {
					t.Errorf("round %d: restored, the sequence spans [%d, %d], want [%d, %d] as at the checkpoint", round, lo, hi, lo0, hi0)
				}
				if again := decode(0, len(prefix), rest); !slices.Equal(again, first) {
					t.Errorf("round %d: logits after rewinding differ from the first time's", round)
				}
			}
			again, err := c.Checkpoint(0, cp)
			if err != nil || again != cp || cp.Pos() != engine.Pos(len(prefix)+len(rest)-1) {
				t.Errorf("a checkpoint into the old one's memory: %v, the same: %v, at %d", err, again == cp, cp.Pos())
			}

			// Refused, and the sequence left as it was: another sequence's,
			// another context's, one past what the sequence holds.
			decode(1, 0, prefix[:3])
			other := newContext(t, m, engine.ContextOptions{ContextLength: 64, Threads: 1})
			lo1, hi1, _ := c.PositionRange(1)
			for name, restore := range map[string]func() error{
				"another sequence's": func() error { return c.RestoreCheckpoint(1, cp) },
				"another context's":  func() error { return other.RestoreCheckpoint(0, cp) },
				"an empty one":       func() error { return c.RestoreCheckpoint(1, &engine.Checkpoint{}) },
				"no checkpoint":      func() error { return c.RestoreCheckpoint(1, nil) },
			} {
				if err := restore(); !errors.Is(err, engine.ErrCheckpoint) {
					t.Errorf("%s: %v, want ErrCheckpoint", name, err)
				}
				if lo, hi, _ := c.PositionRange(1); lo != lo1 || hi != hi1 {
					t.Errorf("%s: sequence 1 spans [%d, %d], want [%d, %d] as before", name, lo, hi, lo1, hi1)
				}
			}
			// Sequence 1's own checkpoint, restored after the sequence was
			// cleared and holds less: refused, left as it is.
			cp1, err := c.Checkpoint(1, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.RemoveTokens(1, 0, -1); err != nil {
				t.Fatal(err)
			}
			decode(1, 0, prefix[:1])
			if err := c.RestoreCheckpoint(1, cp1); !errors.Is(err, engine.ErrCheckpoint) {
				t.Errorf("restoring past the sequence: %v, want ErrCheckpoint", err)
			}
			if _, hi, _ := c.PositionRange(1); hi != 0 {
				t.Errorf("after a refused restore sequence 1 ends at %d, want 0 as before", hi)
			}
		})
	}
	llama := loadModel(t, engine.ModelOptions{}, "models", "stories260K.gguf")
	lc := newContext(t, llama, engine.ContextOptions{ContextLength: 64})
	if _, err := lc.Checkpoint(0, nil); err == nil {
		t.Error("a checkpoint of a llama model's sequence")
	}
}
