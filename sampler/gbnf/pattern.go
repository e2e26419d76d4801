package gbnf

import (
	"fmt"
	"math"
	"regexp/syntax"
	"strings"
	"unicode"
)

// maxPatternLen bounds the regular expressions patternRule translates.
const maxPatternLen = 4096

// patternRule translates a JSON schema "pattern" (an ECMA-262 regular
// expression, read here with Go's RE2 syntax, which shares its common
// subset) to a GBNF expression for the JSON string whose content matches
// it. As in JSON schema, the pattern is not anchored unless it says so:
// without ^ any text may come first, without $ any text may follow.
// Characters JSON must escape (", \ and controls) match in their escaped
// form. Backreferences and lookaround, which RE2 lacks, are errors.
func (c *converter) patternRule(pattern string) string {
	if len(pattern) > maxPatternLen {
		c.fail("pattern of %d bytes (at most %d)", len(pattern), maxPatternLen)
	}
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		c.fail("pattern %q: %v", pattern, err)
	}
	re = re.Simplify()
	char := c.addPrimitive("char", primitiveRules["char"])
	subs := re.Sub
	if re.Op != syntax.OpConcat {
		subs = []*syntax.Regexp{re}
	}
	anchoredStart := len(subs) > 0 && (subs[0].Op == syntax.OpBeginText || subs[0].Op == syntax.OpBeginLine)
	anchoredEnd := len(subs) > 0 && (subs[len(subs)-1].Op == syntax.OpEndText || subs[len(subs)-1].Op == syntax.OpEndLine)
	if anchoredStart {
		subs = subs[1:]
	}
	if anchoredEnd && len(subs) > 0 {
		subs = subs[:len(subs)-1]
	}
	parts := []string{`"\""`}
	if !anchoredStart {
		parts = append(parts, char+"*")
	}
	for _, s := range subs {
		parts = append(parts, c.regexpExpr(s, char))
	}
	if !anchoredEnd {
		parts = append(parts, char+"*")
	}
	parts = append(parts, `"\"" space`)
	return strings.Join(parts, " ")
}

// regexpExpr translates one node of a parsed regular expression.
func (c *converter) regexpExpr(re *syntax.Regexp, char string) string {
	switch re.Op {
	case syntax.OpEmptyMatch:
		return `""`
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase != 0 {
			var parts []string
			for _, r := range re.Rune {
				parts = append(parts, classExpr(foldRanges(r)))
			}
			return "(" + strings.Join(parts, " ") + ")"
		}
		return jsonLiteral(string(re.Rune))
	case syntax.OpCharClass:
		return classExpr(re.Rune)
	case syntax.OpAnyCharNotNL, syntax.OpAnyChar:
		return char
	case syntax.OpCapture:
		return "(" + c.regexpExpr(re.Sub[0], char) + ")"
	case syntax.OpConcat:
		var parts []string
		for _, s := range re.Sub {
			parts = append(parts, c.regexpExpr(s, char))
		}
		return "(" + strings.Join(parts, " ") + ")"
	case syntax.OpAlternate:
		var parts []string
		for _, s := range re.Sub {
			parts = append(parts, c.regexpExpr(s, char))
		}
		return "(" + strings.Join(parts, " | ") + ")"
	case syntax.OpStar:
		return "(" + c.regexpExpr(re.Sub[0], char) + ")*"
	case syntax.OpPlus:
		return "(" + c.regexpExpr(re.Sub[0], char) + ")+"
	case syntax.OpQuest:
		return "(" + c.regexpExpr(re.Sub[0], char) + ")?"
	case syntax.OpRepeat:
		hi := re.Max
		if hi < 0 {
			hi = math.MaxInt32
		}
		if re.Min > MaxRepetitions || hi != math.MaxInt32 && hi > MaxRepetitions {
			c.fail("pattern repetition {%d,%d} above %d", re.Min, re.Max, MaxRepetitions)
		}
		return repetition("("+c.regexpExpr(re.Sub[0], char)+")", re.Min, hi, "")
	case syntax.OpBeginText, syntax.OpEndText, syntax.OpBeginLine, syntax.OpEndLine:
		c.fail("pattern: ^ and $ only at the start and end")
	default:
		c.fail("pattern: %s is not supported", re.Op)
	}
	return ""
}

// jsonLiteral is the GBNF literal for text as it appears inside a JSON
// string: quotes, backslashes and control characters escaped.
func jsonLiteral(s string) string {
	b, _ := jsonMarshalString(s)
	return formatLiteral(b)
}

// jsonMarshalString escapes s as encoding/json does, without the quotes
// and without HTML escaping.
func jsonMarshalString(s string) (string, error) {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String(), nil
}

// foldRanges returns the case-folding orbit of r as class ranges.
func foldRanges(r rune) []rune {
	var out []rune
	for f := r; ; {
		out = append(out, f, f)
		if f = unicode.SimpleFold(f); f == r {
			return out
		}
	}
}

// classExpr translates a character class (pairs of inclusive rune
// ranges) to GBNF. Characters JSON escapes are taken out of the ranges
// and matched in their escaped forms.
func classExpr(ranges []rune) string {
	var plain []rune
	var escaped []string
	for i := 0; i+1 < len(ranges); i += 2 {
		lo, hi := ranges[i], ranges[i+1]
		for _, special := range []rune{'"', '\\'} {
			if lo <= special && special <= hi {
				escaped = append(escaped, jsonLiteral(string(special)))
			}
		}
		if lo < 0x20 {
			for r := lo; r <= min(hi, 0x1F); r++ {
				escaped = append(escaped, jsonLiteral(string(r)))
			}
			lo = 0x20
		}
		plain = appendRange(plain, lo, hi, '"', '\\')
	}
	var alts []string
	if len(plain) > 0 {
		var b strings.Builder
		b.WriteByte('[')
		for i := 0; i+1 < len(plain); i += 2 {
			b.WriteString(classRune(plain[i]))
			if plain[i+1] != plain[i] {
				b.WriteByte('-')
				b.WriteString(classRune(plain[i+1]))
			}
		}
		b.WriteByte(']')
		alts = append(alts, b.String())
	}
	alts = append(alts, escaped...)
	switch len(alts) {
	case 0:
		return `[^\x00-\U0010FFFF]` // matches nothing
	case 1:
		return alts[0]
	}
	return "(" + strings.Join(alts, " | ") + ")"
}

// appendRange appends [lo, hi] minus the excluded runes (ascending) as
// ranges.
func appendRange(out []rune, lo, hi rune, exclude ...rune) []rune {
	for _, x := range exclude {
		if x < lo || x > hi {
			continue
		}
		if x > lo {
			out = append(out, lo, x-1)
		}
		lo = x + 1
	}
	if lo <= hi {
		out = append(out, lo, hi)
	}
	return out
}

// classRune writes r for a GBNF character class.
func classRune(r rune) string {
	switch {
	case r == ']' || r == '[' || r == '-' || r == '^' || r == '\\':
		return `\` + string(r)
	case r < 0x20 || r == 0x7F:
		return fmt.Sprintf(`\x%02X`, r)
	case r > 0xFFFF:
		return fmt.Sprintf(`\U%08X`, r)
	case r >= 0x80:
		return fmt.Sprintf(`\u%04X`, r)
	}
	return string(r)
}
