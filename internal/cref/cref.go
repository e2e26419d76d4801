// Package cref is a reference harness in C for benchmarks: llama-bench's
// prompt-processing and generation loops, calling llama_decode directly, run
// on a context that package engine created. Comparing it with the same loops
// through engine measures the cost of the Go binding.
package cref

/*
#cgo CFLAGS: -std=c11 -I${SRCDIR}/../../engine
#include <stdlib.h>
#include "llama_api.h"

// cref_rand is a small deterministic generator (llama-bench uses rand()).
static uint32_t cref_rand(uint32_t *state) {
    *state = *state * 1664525u + 1013904223u;
    return *state >> 8;
}

// cref_prompt decodes n_prompt random tokens in batches of n_batch, as
// llama-bench's test_prompt does. It returns 0 or llama_decode's error.
static int cref_prompt(struct llama_context *ctx, int n_prompt, int n_batch, int n_vocab, int bos, uint32_t seed) {
    llama_token *tokens = malloc(sizeof(llama_token) * n_batch);
    if (!tokens) return -100;
    int n_processed = 0;
    while (n_processed < n_prompt) {
        int n = n_prompt - n_processed < n_batch ? n_prompt - n_processed : n_batch;
        for (int i = 0; i < n; i++) tokens[i] = (int)(cref_rand(&seed) % (uint32_t)n_vocab);
        if (n_processed == 0 && bos >= 0) tokens[0] = bos;
        int res = llama_decode(ctx, llama_batch_get_one(tokens, n));
        if (res != 0) { free(tokens); return res; }
        n_processed += n;
    }
    llama_synchronize(ctx);
    free(tokens);
    return 0;
}

// cref_gen decodes n_gen tokens one at a time, as llama-bench's test_gen does.
static int cref_gen(struct llama_context *ctx, int n_gen, int n_vocab, int bos, uint32_t seed) {
    llama_token token = bos >= 0 ? bos : (int)(cref_rand(&seed) % (uint32_t)n_vocab);
    for (int i = 0; i < n_gen; i++) {
        int res = llama_decode(ctx, llama_batch_get_one(&token, 1));
        if (res != 0) return res;
        llama_synchronize(ctx);
        token = (int)(cref_rand(&seed) % (uint32_t)n_vocab);
    }
    return 0;
}

static void cref_clear(struct llama_context *ctx) {
    llama_memory_clear(llama_get_memory(ctx), false);
}
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// Prompt clears the context's memory and decodes nPrompt random tokens in
// batches of nBatch, the first one bos when bos ≥ 0. ctx is a
// *llama_context; the caller must not use it concurrently.
func Prompt(ctx unsafe.Pointer, nPrompt, nBatch, nVocab, bos int, seed uint32) error {
	c := (*C.struct_llama_context)(ctx)
	C.cref_clear(c)
	if rc := C.cref_prompt(c, C.int(nPrompt), C.int(nBatch), C.int(nVocab), C.int(bos), C.uint32_t(seed)); rc != 0 {
		return fmt.Errorf("cref: prompt decode failed with code %d", int(rc))
	}
	return nil
}

// Generate clears the context's memory and decodes nGen tokens one at a time.
func Generate(ctx unsafe.Pointer, nGen, nVocab, bos int, seed uint32) error {
	c := (*C.struct_llama_context)(ctx)
	C.cref_clear(c)
	if rc := C.cref_gen(c, C.int(nGen), C.int(nVocab), C.int(bos), C.uint32_t(seed)); rc != 0 {
		return fmt.Errorf("cref: generation decode failed with code %d", int(rc))
	}
	return nil
}
