// Package sampler chooses the next token from a row of logits: the full
// sampler chain of llama.cpp, written in Go, with the names that users of
// llama.cpp, Ollama, OpenAI and Hugging Face transformers know.
//
// # The chain
//
// A [Sampler] applies, to the logits of one row (the engine's borrowed
// []float32, which it neither keeps nor modifies), in llama.cpp's default
// order (common_params_sampling.samplers):
//
//  1. logit bias (always first, as in llama.cpp);
//  2. penalties: repeat (divides positive logits, multiplies negative ones),
//     frequency and presence, over the last RepeatLastN tokens of the history;
//  3. DRY ("don't repeat yourself"): multiplier·base^(n−allowed length) for
//     tokens that would extend a repetition of n ≥ allowed length tokens,
//     with sequence breakers;
//  4. top-n-sigma (keeps logits within n standard deviations of the maximum);
//  5. top-k;
//  6. typical-p (locally typical sampling);
//  7. top-p (nucleus);
//  8. min-p;
//  9. XTC (exclude top choices);
//  10. temperature, or dynamic temperature (entropy-based);
//
// and then draws the token: at random from the softmax of what is left
// (seeded), greedily when the temperature is 0, or with mirostat v1/v2, which
// replaces stages 4–9 (the truncations) with its own. Stages 2–10 may be
// reordered or left out with [Options.Order], like llama.cpp's --samplers. Each
// stage does exactly what llama.cpp's sampler of the same name does (see
// llama-sampling.cpp); tests check every deterministic stage against
// llama.cpp's own on the same logits. Where the implementations differ in
// speed only (top-k selects from the logits without building and sorting
// the whole candidate array) the resulting candidates and probabilities are
// the same.
//
// Two deliberate differences: under mirostat the repetition penalties and
// DRY still apply (llama.cpp's common sampler drops them when mirostat is
// on; the option names promise them), and typical-p counts a token of
// probability 0 as contributing 0 to the entropy (llama.cpp gets NaN and an
// arbitrary order).
//
// # Constrained output
//
// [Options.Grammar] (GBNF), [Options.JSONSchema] and [Options.JSON]
// constrain the output with llama.cpp's grammar sampler, bridged through
// package engine: a token is drawn by the chain first and kept if the
// grammar accepts it; otherwise the grammar masks the whole vocabulary and
// the chain runs again, so the output always follows the grammar. JSON
// schemas are converted to GBNF by package gbnf, in Go.
//
// # Reproducibility
//
// The random draws come from the Sampler's own generator (xoshiro256**,
// seeded with splitmix64), never from math/rand's global source, and the
// softmax uses an exp written in portable Go arithmetic: the same seed and
// the same logits give the same tokens on any machine.
//
// # Performance
//
// A Sampler preallocates its buffers for the vocabulary: sampling allocates
// nothing in steady state. With top-k on, it selects the k best logits in one
// pass over the row instead of building and sorting a candidate array, so
// the default chain costs one read of the logits and a little work on k
// candidates.
package sampler
