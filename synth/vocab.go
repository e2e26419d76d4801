package synth

import "fmt"

// minVocab is the smallest vocabulary synth writes: <unk>, <s>, </s>, the
// 256 byte tokens and enough pieces for every printable ASCII character.
const minVocab = 512

// Token types of a SentencePiece vocabulary (llama.cpp's llama_token_type).
const (
	tokNormal  = 1
	tokUnknown = 2
	tokControl = 3
	tokByte    = 6
)

// pieceAlphabet is what the generated pieces are made of.
const pieceAlphabet = "etaoinshrdlcumwfgypbvkjxqzETAOINSHRDLCUMWFGYPBVKJXQZ0123456789.,!?'\"-:;()"

// vocabulary returns a SentencePiece ("llama") vocabulary of n tokens:
// <unk>=0, <s>=1, </s>=2, <0x00>..<0xFF>, then "▁", each printable ASCII
// character, and strings over pieceAlphabet with and without the "▁" word
// prefix, shortest first. Every piece's prefixes come before it, so the SPM
// tokenizer can reach each piece by merges; scores favour earlier pieces.
func vocabulary(n int) (tokens []string, scores []float32, types []int32) {
	tokens = make([]string, 0, n)
	types = make([]int32, 0, n)
	add := func(s string, typ int32) {
		tokens = append(tokens, s)
		types = append(types, typ)
	}
	add("<unk>", tokUnknown)
	add("<s>", tokControl)
	add("</s>", tokControl)
	for b := range 256 {
		add(fmt.Sprintf("<0x%02X>", b), tokByte)
	}
	seen := map[string]bool{}
	addPiece := func(s string) {
		if len(tokens) < n && !seen[s] {
			seen[s] = true
			add(s, tokNormal)
		}
	}
	addPiece("▁")
	for c := byte(0x21); c < 0x7f; c++ {
		addPiece(string(c))
		addPiece("▁" + string(c))
	}
	// Breadth-first over strings of pieceAlphabet: length 2, then 3, ...
	level := []string{}
	for i := range len(pieceAlphabet) {
		level = append(level, pieceAlphabet[i:i+1])
	}
	for len(tokens) < n {
		next := make([]string, 0, len(level)*len(pieceAlphabet))
		for _, s := range level {
			for i := range len(pieceAlphabet) {
				p := s + pieceAlphabet[i:i+1]
				addPiece(p)
				addPiece("▁" + p)
				if len(tokens) >= n {
					break
				}
				next = append(next, p)
			}
			if len(tokens) >= n {
				break
			}
		}
		level = next
	}
	scores = make([]float32, len(tokens))
	for i := range scores {
		if types[i] == tokNormal {
			scores[i] = -float32(i)
		}
	}
	return tokens, scores, types
}
