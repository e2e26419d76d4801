package gbnf

import (
	"bytes"
	"encoding/json"
	"github.com/llm-go/llm/internal/orderedjson"
	"strings"
)

// object is a JSON object that keeps its keys in order (llama.cpp's
// converter uses nlohmann::ordered_json: properties come out in the order
// the schema lists them).
type object = orderedjson.Object

// decodeOrdered decodes JSON into nil, bool, json.Number, string, []any and
// *object values.
func decodeOrdered(data []byte) (any, error) { return orderedjson.Decode(data) }

// val returns o's value under k, or nil.
func val(o *object, k string) any {
	v, _ := o.Get(k)
	return v
}

// dump writes v as compact JSON, as nlohmann's dump() does (UTF-8 kept,
// no HTML escaping).
func dump(v any) string {
	var b strings.Builder
	dumpTo(&b, v)
	return b.String()
}

func dumpTo(b *strings.Builder, v any) {
	switch t := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		if t {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case json.Number:
		b.WriteString(t.String())
	case string:
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		enc.Encode(t)
		b.Write(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
	case []any:
		b.WriteByte('[')
		for i, x := range t {
			if i > 0 {
				b.WriteByte(',')
			}
			dumpTo(b, x)
		}
		b.WriteByte(']')
	case *object:
		b.WriteByte('{')
		for i, k := range t.Keys() {
			if i > 0 {
				b.WriteByte(',')
			}
			dumpTo(b, k)
			b.WriteByte(':')
			v, _ := t.Get(k)
			dumpTo(b, v)
		}
		b.WriteByte('}')
	}
}
