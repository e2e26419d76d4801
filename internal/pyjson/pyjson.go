// Package pyjson reads the JSON that Python's json module writes, which
// may hold the non-JSON tokens Infinity, -Infinity and NaN (Hugging Face
// config.json files do: Nemotron-H's time_step_limit is [0.0, Infinity]).
package pyjson

import "bytes"

// Clean returns raw with the Infinity, -Infinity and NaN that Python's json
// module writes for floats outside strings (they are not JSON) replaced by
// null, so that encoding/json reads the rest. raw is returned as it is when
// it has none.
func Clean(raw []byte) []byte {
	if !bytes.Contains(raw, []byte("Infinity")) && !bytes.Contains(raw, []byte("NaN")) {
		return raw
	}
	out := make([]byte, 0, len(raw))
	inString := false
	for i := 0; i < len(raw); i++ {
		b := raw[i]
		if inString {
			out = append(out, b)
			switch b {
			case '\\':
				if i+1 < len(raw) {
					i++
					out = append(out, raw[i])
				}
			case '"':
				inString = false
			}
			continue
		}
		if b == '"' {
			inString = true
		}
		matched := false
		for _, tok := range []string{"-Infinity", "Infinity", "NaN"} {
			if bytes.HasPrefix(raw[i:], []byte(tok)) {
				out = append(out, "null"...)
				i += len(tok) - 1
				matched = true
				break
			}
		}
		if !matched {
			out = append(out, b)
		}
	}
	return out
}
