package jinja

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// This file holds the additions of the llm project's patch (see PATCHES.md).

// undefinedHint is stored in an undefined Value to say why it is undefined.
type undefinedHint string

// UndefinedError is returned when a template does arithmetic (such as
// "text" + x) on an undefined value, as Python Jinja2's UndefinedError.
type UndefinedError struct {
	// Message is Python's message, e.g. "'functions' is undefined".
	Message string
}

func (e *UndefinedError) Error() string { return "UndefinedError: " + e.Message }

// ErrUndefined is matched by errors.Is for every *UndefinedError.
var ErrUndefined = errors.New("undefined value")

// Is reports whether target is ErrUndefined.
func (e *UndefinedError) Is(target error) bool { return target == ErrUndefined }

func undefinedError(v Value) error {
	if h, ok := v.v.(undefinedHint); ok {
		return &UndefinedError{Message: string(h)}
	}
	return &UndefinedError{Message: "value is undefined"}
}

// IsMarkup reports whether v is a string marked safe (markupsafe.Markup).
func (v Value) IsMarkup() bool { return v.kind == KindString && v.markup }

// markupEscaper is markupsafe.escape.
var markupEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "'", "&#39;", `"`, "&#34;")

// addMarkup implements + when one operand is Markup and the other a string:
// the plain string is HTML-escaped and the result is Markup.
func addMarkup(a, b Value) (Value, bool) {
	if !a.IsString() || !b.IsString() || (!a.markup && !b.markup) {
		return Value{}, false
	}
	as, bs := a.AsString(), b.AsString()
	if !a.markup {
		as = markupEscaper.Replace(as)
	}
	if !b.markup {
		bs = markupEscaper.Replace(bs)
	}
	return Value{kind: KindString, v: as + bs, markup: true}, true
}

// pyFloatString formats f as Python's str(float) / repr(float).
func pyFloatString(f float64) string {
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	case f == 0:
		if math.Signbit(f) {
			return "-0.0"
		}
		return "0.0"
	}
	// Python switches to exponent notation when the decimal exponent is
	// below -4 or at least 16.
	if exp := math.Floor(math.Log10(math.Abs(f))); exp < -4 || exp >= 16 {
		s := strconv.FormatFloat(f, 'e', -1, 64)
		mant, ex, _ := strings.Cut(s, "e")
		digits := strings.TrimLeft(ex[1:], "0")
		for len(digits) < 2 {
			digits = "0" + digits
		}
		return mant + "e" + ex[:1] + digits
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.Contains(s, ".") {
		s += ".0"
	}
	return s
}

// decodeOrderedJSON decodes one JSON value into a Value, keeping the key
// order of objects and decoding integers as Int (Python's json.loads).
func decodeOrderedJSON(s string) (Value, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	v, err := decodeJSONValue(dec)
	if err != nil {
		return Undefined(), err
	}
	if _, err := dec.Token(); err != io.EOF {
		return Undefined(), errors.New("trailing data after JSON value")
	}
	return v, nil
}

func decodeJSONValue(dec *json.Decoder) (Value, error) {
	tok, err := dec.Token()
	if err != nil {
		return Undefined(), err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			d := NewDict()
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return Undefined(), err
				}
				k, _ := kt.(string)
				v, err := decodeJSONValue(dec)
				if err != nil {
					return Undefined(), err
				}
				d.AsDict().Set(k, v)
			}
			if _, err := dec.Token(); err != nil {
				return Undefined(), err
			}
			return d, nil
		case '[':
			items := []Value{}
			for dec.More() {
				v, err := decodeJSONValue(dec)
				if err != nil {
					return Undefined(), err
				}
				items = append(items, v)
			}
			if _, err := dec.Token(); err != nil {
				return Undefined(), err
			}
			return NewList(items), nil
		}
		return Undefined(), fmt.Errorf("unexpected delimiter %v", t)
	case nil:
		return None(), nil
	default:
		// string, bool and json.Number (Int unless it has '.', 'e' or 'E').
		return FromGoValue(t), nil
	}
}
