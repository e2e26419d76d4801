package pyjson

import (
	"encoding/json"
	"testing"
)

// TestClean checks the tokens are replaced outside strings only, escapes
// included, and that the result is JSON.
func TestClean(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"a": [0.0, Infinity]}`, `{"a": [0.0, null]}`},
		{`{"a": -Infinity, "b": NaN}`, `{"a": null, "b": null}`},
		{`{"NaN": "Infinity"}`, `{"NaN": "Infinity"}`},
		{`{"s": "a\"NaN", "t": Infinity}`, `{"s": "a\"NaN", "t": null}`},
		{`{"s": "\\", "t": Infinity}`, `{"s": "\\", "t": null}`},
		{`{"s": "\\\"Infinity\\", "t": [NaN,-Infinity]}`, `{"s": "\\\"Infinity\\", "t": [null,null]}`},
		{`{"plain": 1}`, `{"plain": 1}`},
	} {
		got := string(Clean([]byte(tc.in)))
		if got != tc.want {
			t.Errorf("Clean(%s) = %s, want %s", tc.in, got, tc.want)
		}
		if !json.Valid([]byte(got)) {
			t.Errorf("Clean(%s) = %s: not JSON", tc.in, got)
		}
	}
}
