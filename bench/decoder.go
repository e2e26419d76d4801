package bench

import (
	"context"
	"fmt"

	"github.com/llm-go/llm/engine"
)

// Decoder runs llama-bench's decode loops on one context; RunTest times
// them. Tokens are random ids: no tokenization, no sampling.
type Decoder interface {
	// Clear empties the KV memory, keeping the first keep positions (the
	// depth filled before a test): 0 clears everything. Decoding continues
	// after the positions kept.
	Clear(keep int) error
	// Prompt decodes n random tokens in batches of at most nBatch, with the
	// logits of each batch's last token, as llama-bench's test_prompt.
	Prompt(ctx context.Context, n, nBatch int) error
	// Generate decodes n random tokens one at a time, each with its
	// logits, as llama-bench's test_gen.
	Generate(ctx context.Context, n int) error
}

// EngineDecoder is the Decoder over an engine.Context, the one llm bench
// runs.
type EngineDecoder struct {
	c      *engine.Context
	b      *engine.Batch
	nVocab uint32
	bos    engine.Token // first token of a sequence; engine.NoToken for a random one
	rng    uint32
	pos    int
}

// NewEngineDecoder returns a Decoder over c, drawing tokens from a
// generator seeded with seed (the one internal/cref's C loops use, so both
// decode the same tokens). A sequence starts with BOS when the model adds
// one, as in llama-bench. Close frees its batch.
func NewEngineDecoder(c *engine.Context, seed uint32) (*EngineDecoder, error) {
	b, err := engine.NewBatch(c.BatchSize(), 1)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	m := c.Model()
	d := &EngineDecoder{c: c, b: b, nVocab: uint32(m.VocabSize()), bos: engine.NoToken, rng: seed}
	if st := m.SpecialTokens(); st.AddBOS && st.BOS >= 0 {
		d.bos = st.BOS
	}
	return d, nil
}

// Close frees the decoder's batch (not the context).
func (d *EngineDecoder) Close() { d.b.Close() }

// next is internal/cref's generator (a 32-bit LCG).
func (d *EngineDecoder) next() engine.Token {
	d.rng = d.rng*1664525 + 1013904223
	return engine.Token((d.rng >> 8) % d.nVocab)
}

// Clear implements Decoder.
func (d *EngineDecoder) Clear(keep int) error {
	if keep > 0 && keep <= d.pos {
		ok, err := d.c.RemoveTokens(0, engine.Pos(keep), -1)
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		if ok {
			d.pos = keep
			return nil
		}
	}
	if keep > 0 {
		return fmt.Errorf("bench: cannot keep %d of %d positions", keep, d.pos)
	}
	if err := d.c.ClearMemory(false); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	d.pos = 0
	return nil
}

// Prompt implements Decoder.
func (d *EngineDecoder) Prompt(ctx context.Context, n, nBatch int) error {
	nBatch = max(1, min(nBatch, d.b.Cap()))
	for done := 0; done < n; {
		k := min(n-done, nBatch)
		d.b.Clear()
		for i := range k {
			tok := d.next()
			if d.pos == 0 && i == 0 && d.bos != engine.NoToken {
				tok = d.bos
			}
			if err := d.b.Add(tok, engine.Pos(d.pos+i), i == k-1); err != nil {
				return fmt.Errorf("bench: %w", err)
			}
		}
		if err := d.c.Decode(ctx, d.b); err != nil {
			return fmt.Errorf("bench: prompt batch at position %d: %w", d.pos, err)
		}
		// Reading the logits waits for the computation, as llama-bench's
		// llama_synchronize.
		if _, err := d.c.Logits(k - 1); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		d.pos += k
		done += k
	}
	return nil
}

// Generate implements Decoder.
func (d *EngineDecoder) Generate(ctx context.Context, n int) error {
	tok := d.next()
	if d.pos == 0 && d.bos != engine.NoToken {
		tok = d.bos
	}
	for range n {
		d.b.Clear()
		if err := d.b.Add(tok, engine.Pos(d.pos), true); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		if err := d.c.Decode(ctx, d.b); err != nil {
			return fmt.Errorf("bench: generation at position %d: %w", d.pos, err)
		}
		if _, err := d.c.Logits(0); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		d.pos++
		tok = d.next()
	}
	return nil
}
