package gbnf

import (
	"errors"
	"strings"
	"testing"
)

// Grammars in llama.cpp's syntax (from its grammars/ directory and README).
var validGrammars = map[string]string{
	"digits": `root ::= [0-9]+`,
	"arithmetic": `root  ::= (expr "=" ws term "\n")+
expr  ::= term ([-+*/] term)*
term  ::= ident | num | "(" ws expr ")" ws
ident ::= [a-z] [a-z0-9_]* ws
num   ::= [0-9]+ ws
ws    ::= [ \t\n]*`,
	"list": `root ::= item+
# Excludes various line break characters
item ::= "- " [^\r\n\x0b\x0c\x85\u2028\u2029]+ "\n"`,
	"json": `root   ::= object
value  ::= object | array | string | number | ("true" | "false" | "null") ws

object ::=
  "{" ws (
            string ":" ws value
    ("," ws string ":" ws value)*
  )? "}" ws

array  ::=
  "[" ws (
            value
    ("," ws value)*
  )? "]" ws

string ::=
  "\"" (
    [^"\\\x7F\x00-\x1F] |
    "\\" (["\\bfnrt] | "u" [0-9a-fA-F]{4}) # escapes
  )* "\"" ws

number ::= ("-"? ([0-9] | [1-9] [0-9]{0,15})) ("." [0-9]+)? ([eE] [-+]? [0-9] [1-9]{0,15})? ws

# Optional space: by convention, applied in this grammar after literal chars when allowed
ws ::= | " " | "\n" [ \t]{0,20}`,
	"repetitions": `root ::= "a"{3} "b"{2,} "c"{0,4} ("d" | "e"){1,2} .? [^x]*`,
	"tokens":      `root ::= <[1000]> !<[2]>* "x"`,
	"crlf":        "root ::= a\r\na ::= \"x\"\r\n",
	"nullable ok": `root ::= a* "x"
a ::= "y"?  "z"`,
}

func TestParseValid(t *testing.T) {
	for name, src := range validGrammars {
		g, err := Parse(src)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if _, ok := g.Rule("root"); !ok {
			t.Errorf("%s: no root", name)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{``, "no rules"},
		{`root ::= [0-9`, "unexpected end of input"},
		{`root ::= "abc`, "unexpected end of input"},
		{`root = "a"`, "expecting ::="},
		{`root ::= digit`, `undefined rule "digit"`},
		{`start ::= "a"`, `no rule "root"`},
		{`root ::= "a" ) "b"`, "expecting newline or end"},
		{`root ::= ("a" "b"`, "expecting ')'"},
		{`root ::= * "a"`, "expecting an item"},
		{`root ::= "a"{2001}`, "more than 2000"},
		{`root ::= "a"{5,2}`, "below the minimum"},
		{`root ::= "a"{x}`, "expecting an integer"},
		{`root ::= "a"{1;2}`, "expecting ',' or '}'"},
		{`root ::= "\q"`, "unknown escape"},
		{`root ::= "\x4"`, "hex digits"},
		{`root ::= <[12`, "expecting ']'"},
		{`root ::= <[99999999999]>`, "out of range"},
		{"root ::= \"a\x00\"", "NUL"},
		{"root ::= \"\xff\"", "invalid UTF-8"},
		{`root ::= root "a" | "b"`, "left-recursive"},
		{"root ::= a \"x\"\na ::= b a | \"y\"\nb ::= c\nc ::= \"\" | \"z\"", "left-recursive"}, // via a nullable rule llama.cpp does not see
		{`root ::= ("a"?)* "b"`, "left-recursive"},
		{`root ::= ` + strings.Repeat("(", MaxDepth+1) + `"a"` + strings.Repeat(")", MaxDepth+1), "nested deeper"},
		{`root ::= ("ab"{2000}){2000}{2000}`, "expands to more than"},
	} {
		_, err := Parse(tc.src)
		if err == nil || !errors.Is(err, ErrSyntax) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want an error containing %q", tc.src, err, tc.want)
		}
	}
}

func TestParsePositions(t *testing.T) {
	_, err := Parse("root ::= a\na ::= \"x\" |\n  \"y\" ) \"z\"\n")
	if err == nil || !strings.Contains(err.Error(), "line 3, column 7") {
		t.Errorf("error without the line: %v", err)
	}
}

func TestRepetitionRewrite(t *testing.T) {
	// x{2,4} is x x and two nested optional rules, as llama.cpp writes it.
	g, err := Parse(`root ::= "x"{2,4}`)
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Rules) != 3 {
		t.Errorf("%d rules, want 3 (root and two optional)", len(g.Rules))
	}
}
