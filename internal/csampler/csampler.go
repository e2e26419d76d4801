// Package csampler is the llama.cpp side of package sampler's equivalence
// tests and benchmarks: llama.cpp's own sampler chain (llama-sampling.cpp),
// built from the samplers of its C API and applied to the same logits as the
// Go chain. It is a test harness, not a sampler for programs: use package
// sampler.
//
// A Chain owns a C buffer of llama_token_data sized to the vocabulary. Apply
// and Sample fill it from a []float32 of logits in C, the way llama.cpp's
// common_sampler does for every token, and run llama_sampler_apply on it.
package csampler

/*
#cgo CFLAGS: -std=c11 -I${SRCDIR}/../../engine
#include <stdlib.h>
#include "llama_api.h"

// cs_fill sets buf to the full vocabulary with the given logits, as
// llama.cpp's common_sampler::set_logits does.
static void cs_fill(llama_token_data *buf, const float *logits, int32_t n) {
    for (int32_t i = 0; i < n; i++) {
        buf[i].id = i;
        buf[i].logit = logits[i];
        buf[i].p = 0.0f;
    }
}

// cs_apply fills buf from logits and applies the chain. It returns the
// resulting array (whose data pointer a sampler such as XTC may have moved
// within buf).
static llama_token_data_array cs_apply(struct llama_sampler *chain, llama_token_data *buf, const float *logits, int32_t n) {
    cs_fill(buf, logits, n);
    llama_token_data_array a = { buf, (size_t)n, -1, false };
    llama_sampler_apply(chain, &a);
    return a;
}

// cs_sample is one step of llama.cpp's generation loop: fill, apply the
// chain, read the selected token and accept it. It returns -1 when the chain
// selected nothing.
static llama_token cs_sample(struct llama_sampler *chain, llama_token_data *buf, const float *logits, int32_t n) {
    llama_token_data_array a = cs_apply(chain, buf, logits, n);
    if (a.selected < 0 || (size_t)a.selected >= a.size) return -1;
    llama_token t = a.data[a.selected].id;
    llama_sampler_accept(chain, t);
    return t;
}

// cs_sample_n runs cs_sample n times on the same logits (for benchmarks,
// without a cgo call per token).
static llama_token cs_sample_n(struct llama_sampler *chain, llama_token_data *buf, const float *logits, int32_t n_vocab, int n) {
    llama_token t = -1;
    for (int i = 0; i < n; i++) t = cs_sample(chain, buf, logits, n_vocab);
    return t;
}

static struct llama_sampler *cs_chain(void) {
    struct llama_sampler_chain_params p = llama_sampler_chain_default_params();
    p.no_perf = true;
    return llama_sampler_chain_init(p);
}
*/
import "C"

import (
	"fmt"
	"unsafe"

	// Links llama.cpp into any binary that uses this package.
	_ "github.com/llm-go/llm/engine"
)

// TokenData is one candidate as llama.cpp's llama_token_data.
type TokenData struct {
	ID    int32
	Logit float32
	P     float32
}

// TokenData and llama_token_data must have the same layout.
var _ [unsafe.Sizeof(TokenData{}) - unsafe.Sizeof(C.llama_token_data{})]byte
var _ [unsafe.Sizeof(C.llama_token_data{}) - unsafe.Sizeof(TokenData{})]byte

// Result is what a chain left after llama_sampler_apply.
type Result struct {
	Candidates []TokenData // in the order the chain left them
	Selected   int         // index into Candidates, or -1
	Sorted     bool        // the chain's sorted flag
}

// Chain is a llama.cpp sampler chain with a candidate buffer for a
// vocabulary of NVocab tokens. It is not safe for concurrent use.
type Chain struct {
	c      *C.struct_llama_sampler
	buf    *C.llama_token_data
	NVocab int
}

// New returns an empty chain for a vocabulary of nVocab tokens.
func New(nVocab int) *Chain {
	if nVocab <= 0 || nVocab > 1<<28 {
		panic(fmt.Sprintf("csampler: vocabulary of %d tokens", nVocab))
	}
	buf := (*C.llama_token_data)(C.malloc(C.size_t(nVocab) * C.size_t(unsafe.Sizeof(C.llama_token_data{}))))
	return &Chain{c: C.cs_chain(), buf: buf, NVocab: nVocab}
}

// Free releases the chain and its buffer.
func (c *Chain) Free() {
	if c.c != nil {
		C.llama_sampler_free(c.c)
		C.free(unsafe.Pointer(c.buf))
		c.c, c.buf = nil, nil
	}
}

func (c *Chain) add(s *C.struct_llama_sampler) *Chain {
	if s == nil {
		panic("csampler: llama.cpp returned no sampler")
	}
	C.llama_sampler_chain_add(c.c, s)
	return c
}

// TopK adds llama_sampler_init_top_k.
func (c *Chain) TopK(k int) *Chain { return c.add(C.llama_sampler_init_top_k(C.int32_t(k))) }

// TopP adds llama_sampler_init_top_p.
func (c *Chain) TopP(p float32, minKeep int) *Chain {
	return c.add(C.llama_sampler_init_top_p(C.float(p), C.size_t(minKeep)))
}

// MinP adds llama_sampler_init_min_p.
func (c *Chain) MinP(p float32, minKeep int) *Chain {
	return c.add(C.llama_sampler_init_min_p(C.float(p), C.size_t(minKeep)))
}

// Typical adds llama_sampler_init_typical.
func (c *Chain) Typical(p float32, minKeep int) *Chain {
	return c.add(C.llama_sampler_init_typical(C.float(p), C.size_t(minKeep)))
}

// Temp adds llama_sampler_init_temp.
func (c *Chain) Temp(t float32) *Chain { return c.add(C.llama_sampler_init_temp(C.float(t))) }

// TempExt adds llama_sampler_init_temp_ext (dynamic temperature).
func (c *Chain) TempExt(t, delta, exponent float32) *Chain {
	return c.add(C.llama_sampler_init_temp_ext(C.float(t), C.float(delta), C.float(exponent)))
}

// XTC adds llama_sampler_init_xtc.
func (c *Chain) XTC(p, t float32, minKeep int, seed uint32) *Chain {
	return c.add(C.llama_sampler_init_xtc(C.float(p), C.float(t), C.size_t(minKeep), C.uint32_t(seed)))
}

// TopNSigma adds llama_sampler_init_top_n_sigma.
func (c *Chain) TopNSigma(n float32) *Chain {
	return c.add(C.llama_sampler_init_top_n_sigma(C.float(n)))
}

// Penalties adds llama_sampler_init_penalties.
func (c *Chain) Penalties(lastN int, repeat, freq, present float32) *Chain {
	return c.add(C.llama_sampler_init_penalties(C.int32_t(lastN), C.float(repeat), C.float(freq), C.float(present)))
}

// DRY adds llama_sampler_init_dry. vocab is a *llama_vocab (see
// engine.VocabPointer); it may be nil when breakers is empty.
func (c *Chain) DRY(vocab unsafe.Pointer, nCtxTrain int, multiplier, base float32, allowedLength, lastN int, breakers []string) *Chain {
	if vocab == nil && len(breakers) > 0 {
		panic("csampler: DRY sequence breakers need a vocabulary")
	}
	var cb **C.char
	if len(breakers) > 0 {
		arr := (*[1 << 20]*C.char)(C.malloc(C.size_t(len(breakers)) * C.size_t(unsafe.Sizeof(uintptr(0)))))[:len(breakers):len(breakers)]
		for i, b := range breakers {
			arr[i] = C.CString(b)
		}
		defer func() {
			for _, p := range arr {
				C.free(unsafe.Pointer(p))
			}
			C.free(unsafe.Pointer(&arr[0]))
		}()
		cb = &arr[0]
	}
	return c.add(C.llama_sampler_init_dry((*C.struct_llama_vocab)(vocab), C.int32_t(nCtxTrain), C.float(multiplier),
		C.float(base), C.int32_t(allowedLength), C.int32_t(lastN), cb, C.size_t(len(breakers))))
}

// LogitBias adds llama_sampler_init_logit_bias with the biases in order.
func (c *Chain) LogitBias(tokens []int32, biases []float32) *Chain {
	if len(tokens) != len(biases) {
		panic("csampler: tokens and biases differ in length")
	}
	var p *C.llama_logit_bias
	if len(tokens) > 0 {
		p = (*C.llama_logit_bias)(C.malloc(C.size_t(len(tokens)) * C.size_t(unsafe.Sizeof(C.llama_logit_bias{}))))
		defer C.free(unsafe.Pointer(p))
		arr := unsafe.Slice(p, len(tokens))
		for i := range tokens {
			arr[i] = C.llama_logit_bias{token: C.llama_token(tokens[i]), bias: C.float(biases[i])}
		}
	}
	return c.add(C.llama_sampler_init_logit_bias(C.int32_t(c.NVocab), C.int32_t(len(tokens)), p))
}

// Dist adds llama_sampler_init_dist.
func (c *Chain) Dist(seed uint32) *Chain { return c.add(C.llama_sampler_init_dist(C.uint32_t(seed))) }

// Greedy adds llama_sampler_init_greedy.
func (c *Chain) Greedy() *Chain { return c.add(C.llama_sampler_init_greedy()) }

// Mirostat adds llama_sampler_init_mirostat.
func (c *Chain) Mirostat(seed uint32, tau, eta float32, m int) *Chain {
	return c.add(C.llama_sampler_init_mirostat(C.int32_t(c.NVocab), C.uint32_t(seed), C.float(tau), C.float(eta), C.int32_t(m)))
}

// MirostatV2 adds llama_sampler_init_mirostat_v2.
func (c *Chain) MirostatV2(seed uint32, tau, eta float32) *Chain {
	return c.add(C.llama_sampler_init_mirostat_v2(C.uint32_t(seed), C.float(tau), C.float(eta)))
}

// Accept tells the chain that token t was chosen (penalties and DRY keep a
// history).
func (c *Chain) Accept(t int32) {
	if t < 0 || int(t) >= c.NVocab {
		panic(fmt.Sprintf("csampler: token %d outside the vocabulary", t))
	}
	C.llama_sampler_accept(c.c, C.llama_token(t))
}

// Reset resets the chain's state (histories, random generators).
func (c *Chain) Reset() { C.llama_sampler_reset(c.c) }

func (c *Chain) check(logits []float32) {
	if len(logits) != c.NVocab {
		panic(fmt.Sprintf("csampler: %d logits for a vocabulary of %d", len(logits), c.NVocab))
	}
}

// Apply fills the candidates with logits (one per token of the vocabulary)
// and applies the chain, returning a copy of what it left.
func (c *Chain) Apply(logits []float32) Result {
	c.check(logits)
	a := C.cs_apply(c.c, c.buf, (*C.float)(unsafe.Pointer(&logits[0])), C.int32_t(len(logits)))
	out := Result{Selected: int(a.selected), Sorted: bool(a.sorted)}
	if a.size > 0 {
		src := unsafe.Slice((*TokenData)(unsafe.Pointer(a.data)), int(a.size))
		out.Candidates = append([]TokenData(nil), src...)
	}
	return out
}

// Sample is one generation step as llama.cpp runs it: fill, apply, take the
// selected token and accept it. It returns -1 if nothing was selected.
func (c *Chain) Sample(logits []float32) int32 {
	c.check(logits)
	return int32(C.cs_sample(c.c, c.buf, (*C.float)(unsafe.Pointer(&logits[0])), C.int32_t(len(logits))))
}

// SampleN runs Sample n times on the same logits in one cgo call and returns
// the last token (for benchmarks).
func (c *Chain) SampleN(logits []float32, n int) int32 {
	c.check(logits)
	return int32(C.cs_sample_n(c.c, c.buf, (*C.float)(unsafe.Pointer(&logits[0])), C.int32_t(len(logits)), C.int(n)))
}
