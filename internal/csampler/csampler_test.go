package csampler_test

import (
	"testing"

	"github.com/llm-go/llm/internal/csampler"
)

func TestChain(t *testing.T) {
	logits := []float32{0.5, 3, 1, -2, 2.5}
	c := csampler.New(len(logits))
	defer c.Free()
	c.TopK(3).Greedy()
	r := c.Apply(logits)
	if len(r.Candidates) != 3 || !r.Sorted || r.Candidates[r.Selected].ID != 1 {
		t.Errorf("top-k 3 + greedy: %+v", r)
	}
	if tok := c.Sample(logits); tok != 1 {
		t.Errorf("Sample: %d", tok)
	}
	if tok := c.SampleN(logits, 5); tok != 1 {
		t.Errorf("SampleN: %d", tok)
	}

	d := csampler.New(len(logits))
	defer d.Free()
	d.Penalties(4, 2, 0, 0)
	d.Accept(1)
	r = d.Apply(logits)
	if r.Candidates[1].Logit != 1.5 {
		t.Errorf("repeat penalty 2 on a logit of 3: %g", r.Candidates[1].Logit)
	}
}
