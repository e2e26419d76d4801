package safetensors

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
)

// member is one name-value pair of a JSON object, in input order.
type member struct {
	key string
	val json.RawMessage
}

// objectMembers parses raw as exactly one JSON object, optionally surrounded
// by whitespace, and returns its members in order. Duplicate names are
// rejected, as the reference implementation's deserializer rejects them
// (serde: duplicate field) and because a second entry would silently
// replace the first. Errors wrap [ErrInvalid].
func objectMembers(raw []byte) ([]member, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("not JSON: %v: %w", err, ErrInvalid)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("not a JSON object: %w", ErrInvalid)
	}
	var ms []member
	seen := make(map[string]bool)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("not JSON: %v: %w", err, ErrInvalid)
		}
		key, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("not JSON: object key %v is not a string: %w", tok, ErrInvalid)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("not JSON: value of %q: %v: %w", key, err, ErrInvalid)
		}
		if seen[key] {
			return nil, fmt.Errorf("duplicate key %q: %w", key, ErrInvalid)
		}
		seen[key] = true
		ms = append(ms, member{key, v})
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, fmt.Errorf("not JSON: %v: %w", err, ErrInvalid)
	}
	if tok, err := dec.Token(); err != io.EOF {
		if err != nil {
			return nil, fmt.Errorf("not JSON after the object: %v: %w", err, ErrInvalid)
		}
		return nil, fmt.Errorf("unexpected %v after the JSON object: %w", tok, ErrInvalid)
	}
	return ms, nil
}

// jsonString decodes raw as a JSON string; null and other types are
// rejected.
func jsonString(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// jsonStringMap decodes raw as an object of strings, rejecting duplicate
// names and values of any other type.
func jsonStringMap(raw json.RawMessage) (map[string]string, error) {
	ms, err := objectMembers(raw)
	if err != nil {
		return nil, err
	}
	m := make(map[string]string, len(ms))
	for _, kv := range ms {
		s, ok := jsonString(kv.val)
		if !ok {
			return nil, fmt.Errorf("value of %q is %s, not a string: %w", kv.key, abbrev(kv.val), ErrInvalid)
		}
		m[kv.key] = s
	}
	return m, nil
}

// jsonUints decodes raw as an array of non-negative integers that fit in an
// int64, written without fraction or exponent (as the reference
// implementation reads a usize).
func jsonUints(raw json.RawMessage) ([]int64, error) {
	if len(raw) == 0 || raw[0] != '[' {
		return nil, fmt.Errorf("%s is not an array: %w", abbrev(raw), ErrInvalid)
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		return nil, fmt.Errorf("%s: %v: %w", abbrev(raw), err, ErrInvalid)
	}
	out := make([]int64, len(elems))
	for i, e := range elems {
		v, err := strconv.ParseInt(string(e), 10, 64)
		if err != nil || v < 0 || (len(e) > 1 && e[0] == '0') {
			return nil, fmt.Errorf("element %d, %s, is not an integer in [0, 2^63): %w", i, abbrev(e), ErrInvalid)
		}
		out[i] = v
	}
	return out, nil
}

// abbrev quotes a JSON fragment for an error message, cut to 40 bytes.
func abbrev(raw []byte) string {
	if len(raw) > 40 {
		return strconv.Quote(string(raw[:40])) + "..."
	}
	return strconv.Quote(string(raw))
}
