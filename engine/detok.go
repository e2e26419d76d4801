package engine

import (
	"unicode/utf8"
)

// Detokenizer turns a stream of tokens into text without ever emitting a
// broken UTF-8 sequence: byte-fallback and byte-level tokens can split a
// character across tokens, so bytes that start a character are held back
// until it is complete. Bytes that can never form a character are replaced
// by U+FFFD. A Detokenizer is not safe for concurrent use.
type Detokenizer struct {
	m       *Model
	special bool
	pending []byte
}

// NewDetokenizer returns a Detokenizer for m. With special, control tokens
// are rendered as their text.
func (m *Model) NewDetokenizer(special bool) *Detokenizer {
	return &Detokenizer{m: m, special: special}
}

// Next adds token t and returns the text that is now complete, possibly "".
func (d *Detokenizer) Next(t Token) (string, error) {
	var err error
	d.pending, err = d.m.appendPiece(d.pending, t, d.special)
	if err != nil {
		return "", err
	}
	return d.take(false), nil
}

// Flush returns the text held back, with any incomplete character replaced
// by U+FFFD, and resets the Detokenizer.
func (d *Detokenizer) Flush() string { return d.take(true) }

// Reset drops any held-back bytes.
func (d *Detokenizer) Reset() { d.pending = d.pending[:0] }

// take returns the complete prefix of pending (all of it when final) and
// keeps the rest.
func (d *Detokenizer) take(final bool) string {
	cut := len(d.pending)
	if !final {
		cut -= incompleteSuffix(d.pending)
	}
	if cut == 0 {
		return ""
	}
	out := validUTF8(d.pending[:cut])
	d.pending = append(d.pending[:0], d.pending[cut:]...)
	return out
}

// incompleteSuffix returns how many trailing bytes of b form the start of a
// UTF-8 sequence that more bytes could complete.
func incompleteSuffix(b []byte) int {
	// A character is at most 4 bytes: look back at most 3 for its first byte.
	for i := 1; i <= 3 && i <= len(b); i++ {
		c := b[len(b)-i]
		if c < 0x80 {
			return 0 // ASCII: nothing is pending
		}
		if c >= 0xC0 { // a lead byte: is it followed by fewer bytes than it needs?
			need := 2
			switch {
			case c >= 0xF8:
				return 0 // never valid
			case c >= 0xF0:
				need = 4
			case c >= 0xE0:
				need = 3
			}
			if i < need && !utf8.FullRune(b[len(b)-i:]) {
				return i
			}
			return 0
		}
		// a continuation byte: keep looking for the lead byte
	}
	return 0
}

// validUTF8 converts b to a string, replacing invalid bytes by U+FFFD.
func validUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	out := make([]rune, 0, len(b))
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		out = append(out, r) // RuneError for an invalid byte
		b = b[n:]
	}
	return string(out)
}
