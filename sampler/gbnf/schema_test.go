package gbnf

import (
	"errors"
	"strings"
	"testing"
)

// Cases from llama.cpp's tests/test-json-schema-to-grammar.cpp: the same
// schema must give the same grammar.
var llamaCppSchemaCases = []struct{ name, schema, grammar string }{
	{"min 0", `{"type": "integer", "minimum": 0}`, `
root ::= ([0] | [1-9] [0-9]{0,15}) space
space ::= | " " | "\n"{1,2} [ \t]{0,20}`},
	{"min 3", `{"type": "integer", "minimum": 3}`, `
root ::= ([1-2] [0-9]{1,15} | [3-9] [0-9]{0,15}) space
space ::= | " " | "\n"{1,2} [ \t]{0,20}`},
	{"min 10", `{"type": "integer", "minimum": 10}`, `
root ::= ([1] ([0-9]{1,15}) | [2-9] [0-9]{1,15}) space
space ::= | " " | "\n"{1,2} [ \t]{0,20}`},
	{"min 25", `{"type": "integer", "minimum": 25}`, `
root ::= ([1] [0-9]{2,15} | [2] ([0-4] [0-9]{1,14} | [5-9] [0-9]{0,14}) | [3-9] [0-9]{1,15}) space
space ::= | " " | "\n"{1,2} [ \t]{0,20}`},
	{"max 30", `{"type": "integer", "maximum": 30}`, `
root ::= ("-" [1-9] [0-9]{0,15} | [0-9] | ([1-2] [0-9] | [3] "0")) space
space ::= | " " | "\n"{1,2} [ \t]{0,20}`},
	{"min -123", `{"type": "integer", "minimum": -123}`, `
root ::= ("-" ([0-9] | ([1-8] [0-9] | [9] [0-9]) | "1" ([0-1] [0-9] | [2] [0-3])) | [0] | [1-9] [0-9]{0,15}) space
space ::= | " " | "\n"{1,2} [ \t]{0,20}`},
	{"max -5", `{"type": "integer", "maximum": -5}`, `
root ::= ("-" ([0-4] [0-9]{1,15} | [5-9] [0-9]{0,15})) space
space ::= | " " | "\n"{1,2} [ \t]{0,20}`},
	{"max 100", `{"type": "integer", "maximum": 100}`, `
root ::= ("-" [1-9] [0-9]{0,15} | [0-9] | ([1-8] [0-9] | [9] [0-9]) | "100") space
space ::= | " " | "\n"{1,2} [ \t]{0,20}`},
	{"min 15 max 300", `{"type": "integer", "minimum": 15, "maximum": 300}`, `
root ::= (([1] ([5-9]) | [2-9] [0-9]) | ([1-2] [0-9]{2} | [3] "00")) space
space ::= | " " | "\n"{1,2} [ \t]{0,20}`},
	{"min -123 max 42", `{"type": "integer", "minimum": -123, "maximum": 42}`, `
root ::= ("-" ([0-9] | ([1-8] [0-9] | [9] [0-9]) | "1" ([0-1] [0-9] | [2] [0-3])) | [0-9] | ([1-3] [0-9] | [4] [0-2])) space
space ::= | " " | "\n"{1,2} [ \t]{0,20}`},
	{"min -10 max 10", `{"type": "integer", "minimum": -10, "maximum": 10}`, `
root ::= ("-" ([0-9] | "10") | [0-9] | "10") space
space ::= | " " | "\n"{1,2} [ \t]{0,20}`},
	{"empty schema (object)", `{}`, `
array ::= "[" space ( value ("," space value)* )? "]" space
boolean ::= ("true" | "false") space
char ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})
decimal-part ::= [0-9]{1,16}
integral-part ::= [0] | [1-9] [0-9]{0,15}
null ::= "null" space
number ::= ("-"? integral-part) ("." decimal-part)? ([eE] [-+]? integral-part)? space
object ::= "{" space ( string ":" space value ("," space string ":" space value)* )? "}" space
root ::= object
space ::= | " " | "\n"{1,2} [ \t]{0,20}
string ::= "\"" char* "\"" space
value ::= object | array | string | number | boolean | null`},
	{"exotic formats", `{"items": [{"format": "date"}, {"format": "uuid"}, {"format": "time"}, {"format": "date-time"}]}`, `
date ::= [0-9]{4} "-" ( "0" [1-9] | "1" [0-2] ) "-" ( "0" [1-9] | [1-2] [0-9] | "3" [0-1] )
date-string ::= "\"" date "\"" space
date-time ::= date "T" time
date-time-string ::= "\"" date-time "\"" space
root ::= "[" space tuple-0 "," space uuid "," space tuple-2 "," space tuple-3 "]" space
space ::= | " " | "\n"{1,2} [ \t]{0,20}
time ::= ([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9] ":" [0-5] [0-9] ( "." [0-9]{3} )? ( "Z" | ( "+" | "-" ) ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] )
time-string ::= "\"" time "\"" space
tuple-0 ::= date-string
tuple-2 ::= time-string
tuple-3 ::= date-time-string
uuid ::= "\"" [0-9a-fA-F]{8} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{12} "\"" space`},
	{"string w/ min & max length", `{"type": "string", "minLength": 1, "maxLength": 4}`, `
char ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})
root ::= "\"" char{1,4} "\"" space
space ::= | " " | "\n"{1,2} [ \t]{0,20}`},
	{"non-string enum", `{"enum": ["red", "amber", "green", null, 42, ["foo"]]}`, `
root ::= ("\"red\"" | "\"amber\"" | "\"green\"" | "null" | "42" | "[\"foo\"]") space
space ::= | " " | "\n"{1,2} [ \t]{0,20}`},
	{"nullable string array", `{"type": ["array", "null"], "prefixItems": {"type": "string"}}`, `
alternative-0 ::= "[" space (string ("," space string)*)? "]" space
char ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})
null ::= "null" space
root ::= alternative-0 | null
space ::= | " " | "\n"{1,2} [ \t]{0,20}
string ::= "\"" char* "\"" space`},
	{"maxItems 2", `{"items": {"type": "boolean"}, "maxItems": 2}`, `
boolean ::= ("true" | "false") space
root ::= "[" space (boolean ("," space boolean)?)? "]" space
space ::= | " " | "\n"{1,2} [ \t]{0,20}`},
	{"min + maxItems", `{"items": {"type": ["number", "integer"]}, "minItems": 3, "maxItems": 5}`, `
decimal-part ::= [0-9]{1,16}
integer ::= ("-"? integral-part) space
integral-part ::= [0] | [1-9] [0-9]{0,15}
item ::= number | integer
number ::= ("-"? integral-part) ("." decimal-part)? ([eE] [-+]? integral-part)? space
root ::= "[" space item ("," space item){2,4} "]" space
space ::= | " " | "\n"{1,2} [ \t]{0,20}`},
	{"required props in original order", `{"type": "object", "properties": {"b": {"type": "string"}, "c": {"type": "string"}, "a": {"type": "string"}}, "required": ["a", "b", "c"], "additionalProperties": false, "definitions": {}}`, `
a-kv ::= "\"a\"" space ":" space string
b-kv ::= "\"b\"" space ":" space string
c-kv ::= "\"c\"" space ":" space string
char ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})
root ::= "{" space b-kv "," space c-kv "," space a-kv "}" space
space ::= | " " | "\n"{1,2} [ \t]{0,20}
string ::= "\"" char* "\"" space`},
	{"N optional props", `{"properties": {"a": {"type": "string"}, "b": {"type": "string"}, "c": {"type": "string"}}, "additionalProperties": false}`, `
a-kv ::= "\"a\"" space ":" space string
a-rest ::= ( "," space b-kv )? b-rest
b-kv ::= "\"b\"" space ":" space string
b-rest ::= ( "," space c-kv )?
c-kv ::= "\"c\"" space ":" space string
char ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})
root ::= "{" space  (a-kv a-rest | b-kv b-rest | c-kv )? "}" space
space ::= | " " | "\n"{1,2} [ \t]{0,20}
string ::= "\"" char* "\"" space`},
	{"required + optional props each in original order", `{"properties": {"b": {"type": "string"}, "a": {"type": "string"}, "d": {"type": "string"}, "c": {"type": "string"}}, "required": ["a", "b"], "additionalProperties": false}`, `
a-kv ::= "\"a\"" space ":" space string
b-kv ::= "\"b\"" space ":" space string
c-kv ::= "\"c\"" space ":" space string
char ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})
d-kv ::= "\"d\"" space ":" space string
d-rest ::= ( "," space c-kv )?
root ::= "{" space b-kv "," space a-kv ( "," space ( d-kv d-rest | c-kv ) )? "}" space
space ::= | " " | "\n"{1,2} [ \t]{0,20}
string ::= "\"" char* "\"" space`},
	{"additional props", `{"type": "object", "additionalProperties": {"type": "array", "items": {"type": "number"}}}`, `
additional-kv ::= string ":" space additional-value
additional-value ::= "[" space (number ("," space number)*)? "]" space
char ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})
decimal-part ::= [0-9]{1,16}
integral-part ::= [0] | [1-9] [0-9]{0,15}
number ::= ("-"? integral-part) ("." decimal-part)? ([eE] [-+]? integral-part)? space
root ::= "{" space  (additional-kv ( "," space additional-kv )* )? "}" space
space ::= | " " | "\n"{1,2} [ \t]{0,20}
string ::= "\"" char* "\"" space`},
	{"required + additional props", `{"type": "object", "properties": {"a": {"type": "number"}}, "required": ["a"], "additionalProperties": {"type": "string"}}`, `
a-kv ::= "\"a\"" space ":" space number
additional-k ::= ["] ( [a] char+ | [^"a] char* )? ["] space
additional-kv ::= additional-k ":" space string
char ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})
decimal-part ::= [0-9]{1,16}
integral-part ::= [0] | [1-9] [0-9]{0,15}
number ::= ("-"? integral-part) ("." decimal-part)? ([eE] [-+]? integral-part)? space
root ::= "{" space a-kv ( "," space ( additional-kv ( "," space additional-kv )* ) )? "}" space
space ::= | " " | "\n"{1,2} [ \t]{0,20}
string ::= "\"" char* "\"" space`},
	{"empty w/o additional props", `{"type": "object", "additionalProperties": false}`, `
root ::= "{" space  "}" space
space ::= | " " | "\n"{1,2} [ \t]{0,20}`},
}

func TestFromJSONSchemaMatchesLlamaCpp(t *testing.T) {
	for _, tc := range llamaCppSchemaCases {
		got, err := FromJSONSchema([]byte(tc.schema))
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if strings.TrimSpace(got) != strings.TrimSpace(tc.grammar) {
			t.Errorf("%s:\n got:\n%s\nwant:\n%s", tc.name, got, strings.TrimSpace(tc.grammar))
		}
	}
}

func TestFromJSONSchemaRefsAndUnions(t *testing.T) {
	for _, schema := range []string{
		`{"$defs": {"pt": {"type": "object", "properties": {"x": {"type": "number"}}, "required": ["x"]}},
		  "type": "array", "items": {"$ref": "#/$defs/pt"}}`,
		`{"definitions": {"node": {"type": "object", "properties": {"next": {"anyOf": [{"$ref": "#/definitions/node"}, {"type": "null"}]}}}},
		  "$ref": "#/definitions/node"}`,
		`{"oneOf": [{"type": "string"}, {"type": "integer", "minimum": 1}]}`,
		`{"allOf": [{"properties": {"a": {"type": "string"}}}, {"properties": {"b": {"type": "boolean"}}}]}`,
		`{"type": "object", "properties": {"key with spaces/and:stuff": {"const": "\n\"x\""}}}`,
		`{"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": {"type": "integer"}}`,
		`true`,
	} {
		g, err := FromJSONSchema([]byte(schema))
		if err != nil {
			t.Errorf("%s: %v", schema, err)
			continue
		}
		if _, err := Parse(g); err != nil {
			t.Errorf("%s: the grammar does not parse: %v\n%s", schema, err, g)
		}
	}
}

func TestFromJSONSchemaErrors(t *testing.T) {
	for _, tc := range []struct{ schema, want string }{
		{`{"type": `, "not JSON"},
		{`{"type": "kaboom"}`, "unrecognized schema"},
		{`{"type": 123}`, "unrecognized schema"},
		{`{"type": "string", "pattern": "^(a"}`, "pattern"},
		{`{"type": "string", "pattern": 7}`, "pattern must be a string"},
		{`{"$ref": "#/$defs/missing"}`, "cannot resolve"},
		{`{"$ref": "https://example.com/x.json"}`, "unsupported $ref"},
		{`{"type": "array", "items": {}, "minItems": 5, "maxItems": 2}`, "above maxItems"},
		{`{"type": "string", "maxLength": -1}`, "must be in"},
		{`{"type": "integer", "minimum": 5, "maximum": 1}`, "empty"},
		{`{"enum": []}`, "non-empty"},
		{`[1, 2]`, "must be an object"},
		{`{} {}`, "after the JSON value"},
	} {
		_, err := FromJSONSchema([]byte(tc.schema))
		if err == nil || !errors.Is(err, ErrSchema) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.schema, err, tc.want)
		}
	}
}

func TestJSONObjectGrammar(t *testing.T) {
	if _, err := Parse(JSONObject); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(JSONObject, "root ::= object") {
		t.Errorf("JSON mode grammar:\n%s", JSONObject)
	}
}
