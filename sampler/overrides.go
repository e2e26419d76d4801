package sampler

// overrides holds the logits that the sparse stages at the head of the chain
// (logit bias, penalties, DRY) changed, for the few tokens they touch, so
// that the row of logits is neither copied nor modified.
type overrides struct {
	pos  []int32 // per token: 1 + its index in ids, 0 when untouched
	ids  []int32
	vals []float32
}

func newOverrides(nVocab int) overrides {
	return overrides{pos: make([]int32, nVocab)}
}

// value returns token id's current logit.
func (o *overrides) value(id int32, logits []float32) float32 {
	if i := o.pos[id]; i != 0 {
		return o.vals[i-1]
	}
	v := logits[id]
	if v != v {
		v = negInf
	}
	return v
}

func (o *overrides) set(id int32, v float32) {
	if i := o.pos[id]; i != 0 {
		o.vals[i-1] = v
		return
	}
	o.ids = append(o.ids, id)
	o.vals = append(o.vals, v)
	o.pos[id] = int32(len(o.ids))
}

func (o *overrides) reset() {
	for _, id := range o.ids {
		o.pos[id] = 0
	}
	o.ids = o.ids[:0]
	o.vals = o.vals[:0]
}
