// Package gbnf reads GBNF grammars, llama.cpp's BNF dialect for constrained
// sampling, and writes them from JSON schemas.
//
// Parse checks a grammar the way llama.cpp's parser reads it (the same
// syntax, the same rewriting of repetitions into rules) and rejects, with
// the line and column, what llama.cpp would reject or crash on: syntax
// errors, undefined rules, a missing root, repetition bounds out of order or
// above llama.cpp's limit of 2000, grammars that expand beyond MaxElements,
// nesting deeper than MaxDepth, and left recursion (found with full
// nullability, so also the cases llama.cpp's own check misses and then
// overflows its stack on).
//
// FromJSONSchema converts a JSON schema to GBNF as llama.cpp's
// common/json-schema-to-grammar.cpp does, for the keywords listed there.
package gbnf
