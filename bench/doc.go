// Package bench benchmarks models the way llama.cpp's llama-bench does, so
// that its numbers line up with the tables people publish, and adds what
// llama-bench does not print: the weight bytes read per generated token, the
// bandwidth achieved and its share of the machine's measured memory-read
// bandwidth, load time, time to first token and peak RSS.
//
// # Semantics
//
// [Params] holds lists of values; every combination is one [Instance]
// ([Params.Instances], the cross product in llama-bench's order). Each
// instance is one test:
//
//   - ppN: N random tokens decoded in batches of n_batch, the logits of each
//     batch's last token computed (prompt processing);
//   - tgN: N tokens decoded one at a time (generation);
//   - ppN+tgM: both, in one timed run;
//   - any of them "@ dD": D tokens are decoded into the KV cache first, and
//     only the test after them is timed.
//
// The KV memory is cleared before each repetition, a warm-up run precedes
// them, and tokenization and sampling are not involved: tokens are random
// ids and no logits are sampled. t/s is the mean ± sample standard
// deviation of the per-repetition rates, as llama-bench computes them.
//
// # Output
//
// The formats md, csv, json, jsonl and sql ([NewPrinter]) print
// llama-bench's fields under its names and in its order (those of the
// llama.cpp commit the engine is built from), then this package's extra
// fields ([ExtraFields]).
package bench
