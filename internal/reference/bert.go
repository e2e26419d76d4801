// Package reference computes model forward passes in float64, plainly, for
// tests that check what llama.cpp computes from weights we wrote.
package reference

import "math"

// BERT is a post-norm BERT encoder as transformers' BertModel computes it
// (bidirectional attention, token type 0), with the tanh form of GELU that
// llama.cpp's bert graph uses (BertModel's "gelu" is the erf form, which
// differs by up to about 1e-3). Matrices are row-major [out][in].
type BERT struct {
	Hidden, Heads int
	Eps           float64 // layer norm epsilon
	// WordEmb is [vocab][Hidden], PosEmb [positions][Hidden] (nil: no
	// learned positions); TypeEmb starts with the row of token type 0.
	WordEmb, PosEmb, TypeEmb []float64
	EmbNormW, EmbNormB       []float64
	Layers                   []BERTLayer
	// Rope, if not nil, rotates the query and key of position pos (all
	// heads) in place, after their biases.
	Rope func(q, k []float64, pos int)
}

// BERTLayer is one encoder block.
type BERTLayer struct {
	WQ, BQ, WK, BK, WV, BV, WO, BO []float64
	AttnNormW, AttnNormB           []float64 // after attention and its residual
	WUp, BUp, WDown, BDown         []float64
	OutNormW, OutNormB             []float64 // after the feed-forward and its residual
}

// Forward returns the final hidden state of every token of ids.
func (m *BERT) Forward(ids []int) [][]float64 {
	H, hd := m.Hidden, m.Hidden/m.Heads
	T := len(ids)
	x := make([][]float64, T)
	for i, id := range ids {
		e := make([]float64, H)
		for j := range H {
			e[j] = m.WordEmb[id*H+j] + m.TypeEmb[j]
			if m.PosEmb != nil {
				e[j] += m.PosEmb[i*H+j]
			}
		}
		x[i] = m.layerNorm(e, m.EmbNormW, m.EmbNormB)
	}
	for _, L := range m.Layers {
		q, k, v := make([][]float64, T), make([][]float64, T), make([][]float64, T)
		for i := range T {
			q[i], k[i], v[i] = Affine(L.WQ, L.BQ, x[i]), Affine(L.WK, L.BK, x[i]), Affine(L.WV, L.BV, x[i])
			if m.Rope != nil {
				m.Rope(q[i], k[i], i)
			}
		}
		atts := EncoderAttention(q, k, v, m.Heads, hd, nil)
		next := make([][]float64, T)
		for i, att := range atts {
			o := Affine(L.WO, L.BO, att)
			for e := range H {
				o[e] += x[i][e]
			}
			h := m.layerNorm(o, L.AttnNormW, L.AttnNormB)
			u := Affine(L.WUp, L.BUp, h)
			for e := range u {
				u[e] = GELUTanh(u[e])
			}
			d := Affine(L.WDown, L.BDown, u)
			for e := range H {
				d[e] += h[e]
			}
			next[i] = m.layerNorm(d, L.OutNormW, L.OutNormB)
		}
		x = next
	}
	return x
}

func (m *BERT) layerNorm(x, w, b []float64) []float64 { return LayerNorm(x, w, b, m.Eps) }

// LayerNorm returns x normalised to mean 0 and variance 1 (with eps),
// times w, plus b.
func LayerNorm(x, w, b []float64, eps float64) []float64 {
	var mean, vr float64
	for _, v := range x {
		mean += v
	}
	mean /= float64(len(x))
	for _, v := range x {
		vr += (v - mean) * (v - mean)
	}
	vr /= float64(len(x))
	s := 1 / math.Sqrt(vr+eps)
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = (v-mean)*s*w[i] + b[i]
	}
	return out
}

// EncoderAttention is softmax attention of each position over all of them
// (an encoder's), with heads heads of d (one key/value head each) and
// scores scaled by 1/sqrt(d), plus bias(h, i, s) when bias is not nil
// (ALiBi's): per position, the heads' outputs side by side, before the
// output projection.
func EncoderAttention(qs, ks, vs [][]float64, heads, d int, bias func(h, i, s int) float64) [][]float64 {
	outs := make([][]float64, len(qs))
	for i := range qs {
		att := make([]float64, heads*d)
		for h := range heads {
			sc := make([]float64, len(ks))
			mx := math.Inf(-1)
			for s := range ks {
				var dot float64
				for e := range d {
					dot += qs[i][h*d+e] * ks[s][h*d+e]
				}
				sc[s] = dot / math.Sqrt(float64(d))
				if bias != nil {
					sc[s] += bias(h, i, s)
				}
				mx = max(mx, sc[s])
			}
			var z float64
			for s := range sc {
				sc[s] = math.Exp(sc[s] - mx)
				z += sc[s]
			}
			for s := range sc {
				for e := range d {
					att[h*d+e] += sc[s] / z * vs[s][h*d+e]
				}
			}
		}
		outs[i] = att
	}
	return outs
}

// Affine returns W·x + b for a row-major [len(b)][len(x)] W.
func Affine(W, b, x []float64) []float64 {
	out := make([]float64, len(b))
	for r := range out {
		s := b[r]
		row := W[r*len(x) : (r+1)*len(x)]
		for c, v := range x {
			s += row[c] * v
		}
		out[r] = s
	}
	return out
}

// GELUTanh is GELU in its tanh form.
func GELUTanh(x float64) float64 {
	return 0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x)))
}

// Pool returns the mean of the token states, or with cls the first one.
func Pool(states [][]float64, cls bool) []float64 {
	if cls {
		return states[0]
	}
	out := make([]float64, len(states[0]))
	for _, s := range states {
		for i, v := range s {
			out[i] += v / float64(len(states))
		}
	}
	return out
}

// Normalize scales v to unit length.
func Normalize(v []float64) []float64 {
	var ss float64
	for _, x := range v {
		ss += x * x
	}
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = x / math.Sqrt(ss)
	}
	return out
}
