package tokenizer

import (
	"fmt"
	"github.com/llm-go/llm/internal/orderedjson"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Object is a JSON object that remembers the order of its keys, like a Python
// dict. Chat templates print tool schemas and tool-call arguments with
// tojson, and Python keeps insertion order there; a Go map would not.
//
// The zero value is an empty object ready to use.
type Object = orderedjson.Object

// NewObject returns an object holding the given key/value pairs in order:
// NewObject("a", 1, "b", 2). It panics when a key is not a string or a value
// is missing.
func NewObject(kv ...any) *Object {
	if len(kv)%2 != 0 {
		panic("tokenizer.NewObject: odd number of arguments")
	}
	o := &Object{}
	for i := 0; i < len(kv); i += 2 {
		k, ok := kv[i].(string)
		if !ok {
			panic(fmt.Sprintf("tokenizer.NewObject: key %v is not a string", kv[i]))
		}
		o.Set(k, kv[i+1])
	}
	return o
}

// DecodeJSON decodes one JSON value keeping the key order of every object:
// objects become *Object, arrays []any, numbers json.Number, and strings,
// booleans and null their usual Go values.
func DecodeJSON(data []byte) (any, error) {
	v, err := orderedjson.Decode(data)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	return v, nil
}

// pyJSON holds the arguments of Python's json.dumps that chat templates use
// through tojson: indent, separators and sort_keys (ensure_ascii is always
// false, as in transformers).
type pyJSON struct {
	indent   string // one level of indentation
	hasInd   bool   // indent was given: newlines between items
	itemSep  string
	keySep   string
	sortKeys bool
}

// newPyJSON returns the json.dumps defaults for the given indent: ", " and
// ": " without indent, "," and ": " with one.
func newPyJSON(indent *int, sep *[2]string, sortKeys bool) pyJSON {
	p := pyJSON{itemSep: ", ", keySep: ": ", sortKeys: sortKeys}
	if indent != nil {
		p.hasInd = true
		p.indent = strings.Repeat(" ", max(*indent, 0))
		p.itemSep = ","
	}
	if sep != nil {
		p.itemSep, p.keySep = sep[0], sep[1]
	}
	return p
}

// pyList and pyDict are the list and dict of the tree the Python encoder
// walks; its leaves are nil, bool, int64, float64 and string.
type pyList []any

// pyKV is one entry of a pyDict.
type pyKV struct {
	k string
	v any
}

// pyDict is a dict in insertion order.
type pyDict []pyKV

func (p pyJSON) encode(b *strings.Builder, v any, level int) error {
	switch x := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		if x {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case int64:
		b.WriteString(strconv.FormatInt(x, 10))
	case float64:
		b.WriteString(pyFloatRepr(x))
	case string:
		writePyString(b, x)
	case pyList:
		if len(x) == 0 {
			b.WriteString("[]")
			return nil
		}
		b.WriteByte('[')
		for i, it := range x {
			if i > 0 {
				b.WriteString(p.itemSep)
			}
			p.newline(b, level+1)
			if err := p.encode(b, it, level+1); err != nil {
				return err
			}
		}
		p.newline(b, level)
		b.WriteByte(']')
	case pyDict:
		if len(x) == 0 {
			b.WriteString("{}")
			return nil
		}
		if p.sortKeys {
			x = append(pyDict(nil), x...)
			sort.SliceStable(x, func(i, j int) bool { return x[i].k < x[j].k })
		}
		b.WriteByte('{')
		for i, kv := range x {
			if i > 0 {
				b.WriteString(p.itemSep)
			}
			p.newline(b, level+1)
			writePyString(b, kv.k)
			b.WriteString(p.keySep)
			if err := p.encode(b, kv.v, level+1); err != nil {
				return err
			}
		}
		p.newline(b, level)
		b.WriteByte('}')
	default:
		return fmt.Errorf("Object of type %T is not JSON serializable", v)
	}
	return nil
}

func (p pyJSON) newline(b *strings.Builder, level int) {
	if !p.hasInd {
		return
	}
	b.WriteByte('\n')
	for range level {
		b.WriteString(p.indent)
	}
}

// writePyString writes s as json.dumps(s, ensure_ascii=False) does: only
// '"', '\\' and control characters below 0x20 are escaped.
func writePyString(b *strings.Builder, s string) {
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			if r < 0x20 {
				fmt.Fprintf(b, `\u%04x`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
}

// pyFloatRepr formats f as json.dumps does: float.__repr__, with NaN,
// Infinity and -Infinity for the special values.
func pyFloatRepr(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	if f == 0 {
		if math.Signbit(f) {
			return "-0.0"
		}
		return "0.0"
	}
	exp := math.Floor(math.Log10(math.Abs(f)))
	if exp < -4 || exp >= 16 {
		s := strconv.FormatFloat(f, 'e', -1, 64)
		// Go writes e+06 / e-05; Python writes e+16 / e-05 (two digits minimum).
		mant, ex, _ := strings.Cut(s, "e")
		sign := ex[0]
		digits := strings.TrimLeft(ex[1:], "0")
		if len(digits) < 2 {
			digits = strings.Repeat("0", 2-len(digits)) + digits
		}
		return mant + "e" + string(sign) + digits
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.ContainsAny(s, ".") {
		s += ".0"
	}
	return s
}
