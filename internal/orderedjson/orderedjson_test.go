package orderedjson

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestDecodeKeepsOrder(t *testing.T) {
	v, err := Decode([]byte(`{"z": 1, "a": {"y": [true, null, "s"], "b": 2.5}, "z": 3}`))
	if err != nil {
		t.Fatal(err)
	}
	o := v.(*Object)
	if strings.Join(o.Keys(), ",") != "z,a" {
		t.Errorf("keys %v", o.Keys())
	}
	if z, _ := o.Get("z"); z != json.Number("3") {
		t.Errorf("a repeated key keeps its last value: %v", z)
	}
	inner, _ := o.Get("a")
	if strings.Join(inner.(*Object).Keys(), ",") != "y,b" || !o.Has("a") || o.Has("b") {
		t.Errorf("nested keys %v", inner.(*Object).Keys())
	}
	out, err := json.Marshal(o)
	if err != nil || string(out) != `{"z":3,"a":{"y":[true,null,"s"],"b":2.5}}` {
		t.Errorf("marshal: %s %v", out, err)
	}
	var back Object
	if err := json.Unmarshal(out, &back); err != nil || strings.Join(back.Keys(), ",") != "z,a" {
		t.Errorf("unmarshal: %v %v", back.Keys(), err)
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, in := range []string{``, `{`, `{"a":1} x`, `[1,]`, strings.Repeat("[", MaxDepth+2) + strings.Repeat("]", MaxDepth+2)} {
		if _, err := Decode([]byte(in)); err == nil {
			t.Errorf("%.40q decoded", in)
		}
	}
	var o Object
	if err := json.Unmarshal([]byte(`[1]`), &o); err == nil {
		t.Error("an array unmarshalled into an Object")
	}
	var nilObj *Object
	if nilObj.Len() != 0 || nilObj.Keys() != nil || nilObj.Has("x") {
		t.Error("a nil Object is not empty")
	}
}
