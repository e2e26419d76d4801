package gbnf

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Limits that keep llama.cpp's recursive parser and grammar engine within
// bounds.
const (
	// MaxRepetitions is llama.cpp's limit on the bounds of x{m,n}.
	MaxRepetitions = 2000
	// MaxElements bounds the size of the grammar after repetitions are
	// expanded into rules.
	MaxElements = 1 << 20
	// MaxDepth bounds the nesting of parentheses.
	MaxDepth = 256
	// MaxSize bounds the grammar's source in bytes.
	MaxSize = 4 << 20
)

// ErrSyntax is what every error of Parse is (errors.Is).
var ErrSyntax = errors.New("gbnf: invalid grammar")

// SyntaxError is an error in a grammar, at a line and column (both 1-based;
// 0 when the error concerns the whole grammar).
type SyntaxError struct {
	Line, Column int
	Msg          string
}

// Error implements the error interface.
func (e *SyntaxError) Error() string {
	if e.Line == 0 {
		return "gbnf: " + e.Msg
	}
	return fmt.Sprintf("gbnf: line %d, column %d: %s", e.Line, e.Column, e.Msg)
}

// Is reports whether target is ErrSyntax.
func (e *SyntaxError) Is(target error) bool { return target == ErrSyntax }

// ElemType is the type of a grammar element, as llama.cpp's
// llama_gretype.
type ElemType uint8

// Element types.
const (
	End          ElemType = iota // end of a rule
	Alt                          // start of an alternate
	RuleRef                      // a reference to the rule Value
	Char                         // a character, or the start of a set of characters
	CharNot                      // the start of a negated set
	CharRngUpper                 // the upper bound of a range started by the preceding Char
	CharAlt                      // another character of a set
	CharAny                      // any character (.)
	Token                        // the token Value
	TokenNot                     // any token but Value
)

// Elem is one element of a rule.
type Elem struct {
	Type  ElemType
	Value uint32 // a code point, a rule index or a token id
}

// Grammar is a parsed grammar: its rules as llama.cpp stores them (each a
// sequence of alternates ended by End), the synthesized rules of groups and
// repetitions included.
type Grammar struct {
	Rules [][]Elem
	Names []string       // rule names by index
	index map[string]int // rule index by name

	// TokenTexts are the <text> token references, angle brackets included,
	// which llama.cpp resolves with the vocabulary (each must be one
	// token); their elements have Value 0 here.
	TokenTexts []string
}

// Rule returns the index of the named rule.
func (g *Grammar) Rule(name string) (int, bool) {
	i, ok := g.index[name]
	return i, ok
}

type parser struct {
	src     string
	g       *Grammar
	defined []bool
	refPos  map[int]int // where each rule was first referenced
	elems   int
	depth   int
}

type posError struct {
	pos int
	msg string
}

func (p *parser) fail(pos int, format string, args ...any) {
	panic(posError{pos, fmt.Sprintf(format, args...)})
}

// Parse parses a GBNF grammar whose start rule is "root".
func Parse(src string) (g *Grammar, err error) {
	return ParseRoot(src, "root")
}

// ParseRoot parses a GBNF grammar and checks that it has the rule root.
func ParseRoot(src, root string) (g *Grammar, err error) {
	if len(src) > MaxSize {
		return nil, &SyntaxError{Msg: fmt.Sprintf("the grammar has %d bytes, at most %d", len(src), MaxSize)}
	}
	p := &parser{src: src, g: &Grammar{index: map[string]int{}}, refPos: map[int]int{}}
	defer func() {
		if r := recover(); r != nil {
			pe, ok := r.(posError)
			if !ok {
				panic(r)
			}
			line, col := lineCol(src, pe.pos)
			g, err = nil, &SyntaxError{Line: line, Column: col, Msg: pe.msg}
		}
	}()
	if i := strings.IndexByte(src, 0); i >= 0 {
		p.fail(i, "NUL byte")
	}
	if !utf8.ValidString(src) {
		for i, r := range src {
			if r == utf8.RuneError {
				p.fail(i, "invalid UTF-8")
			}
		}
	}
	pos := p.space(0, true)
	for pos < len(src) {
		pos = p.rule(pos)
	}
	for i, d := range p.defined {
		if !d {
			p.fail(p.refPos[i], "undefined rule %q", p.g.Names[i])
		}
	}
	if len(p.g.Rules) == 0 {
		p.fail(0, "the grammar has no rules")
	}
	if _, ok := p.g.index[root]; !ok {
		p.fail(len(src), "no rule %q (the start rule)", root)
	}
	if i, ok := p.g.leftRecursive(); ok {
		p.fail(len(src), "rule %q is left-recursive (llama.cpp cannot use it)", p.g.Names[i])
	}
	return p.g, nil
}

func lineCol(src string, pos int) (int, int) {
	pos = min(pos, len(src))
	line := 1 + strings.Count(src[:pos], "\n")
	col := pos - strings.LastIndexByte(src[:pos], '\n')
	return line, col
}

func (p *parser) at(pos int) byte {
	if pos < len(p.src) {
		return p.src[pos]
	}
	return 0
}

func (p *parser) space(pos int, newlineOK bool) int {
	for {
		c := p.at(pos)
		switch {
		case c == ' ' || c == '\t':
			pos++
		case c == '#':
			for pos < len(p.src) && p.src[pos] != '\r' && p.src[pos] != '\n' {
				pos++
			}
		case newlineOK && (c == '\r' || c == '\n'):
			pos++
		default:
			return pos
		}
	}
}

func isWordChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '-' || '0' <= c && c <= '9'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func (p *parser) name(pos int) int {
	end := pos
	for isWordChar(p.at(end)) {
		end++
	}
	if end == pos {
		p.fail(pos, "expecting a name")
	}
	return end
}

func (p *parser) integer(pos int) (uint64, int) {
	end := pos
	for isDigit(p.at(end)) {
		end++
	}
	if end == pos {
		p.fail(pos, "expecting an integer")
	}
	v, err := strconv.ParseUint(p.src[pos:end], 10, 64)
	if err != nil {
		p.fail(pos, "integer out of range")
	}
	return v, end
}

// symbol returns the index of the named rule, creating it.
func (p *parser) symbol(name string, pos int) int {
	if i, ok := p.g.index[name]; ok {
		return i
	}
	i := len(p.g.Names)
	p.g.Names = append(p.g.Names, name)
	p.g.index[name] = i
	p.g.Rules = append(p.g.Rules, nil)
	p.defined = append(p.defined, false)
	p.refPos[i] = pos
	return i
}

// generate creates a synthesized rule named after base, as llama.cpp's
// generate_symbol_id.
func (p *parser) generate(base string, pos int) int {
	name := base + "_" + strconv.Itoa(len(p.g.Names))
	for {
		if _, ok := p.g.index[name]; !ok {
			break
		}
		name += "_"
	}
	return p.symbol(name, pos)
}

func (p *parser) addRule(id int, rule []Elem, pos int) {
	p.elems += len(rule)
	if p.elems > MaxElements {
		p.fail(pos, "the grammar expands to more than %d elements", MaxElements)
	}
	p.g.Rules[id] = rule
	p.defined[id] = true
}

func (p *parser) rule(pos int) int {
	start := pos
	end := p.name(pos)
	name := p.src[pos:end]
	pos = p.space(end, false)
	id := p.symbol(name, start)
	if p.defined[id] {
		// llama.cpp lets a later definition replace an earlier one.
		p.elems -= len(p.g.Rules[id])
	}
	if !strings.HasPrefix(p.src[pos:], "::=") {
		p.fail(pos, "expecting ::=")
	}
	pos = p.space(pos+3, true)
	pos = p.alternates(pos, name, id, false)
	switch c := p.at(pos); {
	case c == '\r':
		pos++
		if p.at(pos) == '\n' {
			pos++
		}
	case c == '\n':
		pos++
	case pos < len(p.src):
		p.fail(pos, "expecting newline or end")
	}
	return p.space(pos, true)
}

func (p *parser) alternates(pos int, ruleName string, id int, nested bool) int {
	start := pos
	var rule []Elem
	pos, rule = p.sequence(pos, ruleName, rule, nested)
	for p.at(pos) == '|' {
		rule = append(rule, Elem{Alt, 0})
		pos = p.space(pos+1, true)
		pos, rule = p.sequence(pos, ruleName, rule, nested)
	}
	rule = append(rule, Elem{End, 0})
	p.addRule(id, rule, start)
	return pos
}

func (p *parser) char(pos int) (uint32, int) {
	if p.at(pos) == '\\' {
		switch p.at(pos + 1) {
		case 'x':
			return p.hex(pos+2, 2)
		case 'u':
			return p.hex(pos+2, 4)
		case 'U':
			return p.hex(pos+2, 8)
		case 't':
			return '\t', pos + 2
		case 'r':
			return '\r', pos + 2
		case 'n':
			return '\n', pos + 2
		case '\\', '"', '[', ']':
			return uint32(p.at(pos + 1)), pos + 2
		}
		p.fail(pos, "unknown escape")
	}
	if pos >= len(p.src) {
		p.fail(pos, "unexpected end of input")
	}
	r, n := utf8.DecodeRuneInString(p.src[pos:])
	return uint32(r), pos + n
}

func (p *parser) hex(pos, size int) (uint32, int) {
	var v uint32
	for i := 0; i < size; i++ {
		c := p.at(pos + i)
		var d byte
		switch {
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		case '0' <= c && c <= '9':
			d = c - '0'
		default:
			p.fail(pos, "expecting %d hex digits", size)
		}
		v = v<<4 | uint32(d)
	}
	return v, pos + size
}

func (p *parser) token(pos int) (uint32, int) {
	if p.at(pos) != '<' {
		p.fail(pos, "expecting '<'")
	}
	pos++
	if p.at(pos) == '[' {
		v, end := p.integer(pos + 1)
		if v > 1<<31-1 {
			p.fail(pos+1, "token id out of range")
		}
		if p.at(end) != ']' {
			p.fail(end, "expecting ']'")
		}
		if p.at(end+1) != '>' {
			p.fail(end+1, "expecting '>'")
		}
		return uint32(v), end + 2
	}
	// <text>: llama.cpp tokenizes the text, which must be one token of the
	// vocabulary; the caller checks that (Grammar.TokenTexts).
	end := strings.IndexByte(p.src[pos:], '>')
	if end < 0 {
		p.fail(pos, "expecting '>'")
	}
	p.g.TokenTexts = append(p.g.TokenTexts, p.src[pos-1:pos+end+1])
	return 0, pos + end + 1
}

func (p *parser) sequence(pos int, ruleName string, rule []Elem, nested bool) (int, []Elem) {
	lastSymStart := len(rule)
	repeat := func(at int, minTimes, maxTimes uint64, noMax bool) {
		if lastSymStart == len(rule) {
			p.fail(at, "expecting an item before */+/?/{")
		}
		prev := append([]Elem(nil), rule[lastSymStart:]...)
		if minTimes == 0 {
			rule = rule[:lastSymStart]
		} else {
			for i := uint64(1); i < minTimes; i++ {
				rule = append(rule, prev...)
				if len(rule) > MaxElements {
					p.fail(at, "the grammar expands to more than %d elements", MaxElements)
				}
			}
		}
		nOpt := uint64(1)
		if !noMax {
			nOpt = maxTimes - minTimes
		}
		lastRec := 0
		for i := uint64(0); i < nOpt; i++ {
			rec := append([]Elem(nil), prev...)
			id := p.generate(ruleName, at)
			if i > 0 || noMax {
				ref := lastRec
				if noMax {
					ref = id
				}
				rec = append(rec, Elem{RuleRef, uint32(ref)})
			}
			rec = append(rec, Elem{Alt, 0}, Elem{End, 0})
			p.addRule(id, rec, at)
			lastRec = id
		}
		if nOpt > 0 {
			rule = append(rule, Elem{RuleRef, uint32(lastRec)})
		}
	}
	for pos < len(p.src) {
		c := p.src[pos]
		switch {
		case c == '"':
			pos++
			lastSymStart = len(rule)
			for p.at(pos) != '"' {
				if pos >= len(p.src) {
					p.fail(pos, "unexpected end of input in a string")
				}
				var ch uint32
				ch, pos = p.char(pos)
				rule = append(rule, Elem{Char, ch})
			}
			pos = p.space(pos+1, nested)
		case c == '[':
			pos++
			start := Char
			if p.at(pos) == '^' {
				pos++
				start = CharNot
			}
			lastSymStart = len(rule)
			for p.at(pos) != ']' {
				if pos >= len(p.src) {
					p.fail(pos, "unexpected end of input in a character set")
				}
				var ch uint32
				ch, pos = p.char(pos)
				t := start
				if lastSymStart < len(rule) {
					t = CharAlt
				}
				rule = append(rule, Elem{t, ch})
				if p.at(pos) == '-' && p.at(pos+1) != ']' {
					if pos+1 >= len(p.src) {
						p.fail(pos, "unexpected end of input in a character set")
					}
					var hi uint32
					hi, pos = p.char(pos + 1)
					rule = append(rule, Elem{CharRngUpper, hi})
				}
			}
			pos = p.space(pos+1, nested)
		case c == '<' || c == '!':
			t := Token
			if c == '!' {
				t = TokenNot
				pos++
			}
			var v uint32
			var end int
			v, end = p.token(pos)
			lastSymStart = len(rule)
			rule = append(rule, Elem{t, v})
			pos = p.space(end, nested)
		case isWordChar(c):
			end := p.name(pos)
			id := p.symbol(p.src[pos:end], pos)
			pos = p.space(end, nested)
			lastSymStart = len(rule)
			rule = append(rule, Elem{RuleRef, uint32(id)})
		case c == '(':
			p.depth++
			if p.depth > MaxDepth {
				p.fail(pos, "parentheses nested deeper than %d", MaxDepth)
			}
			open := pos
			pos = p.space(pos+1, true)
			id := p.generate(ruleName, open)
			pos = p.alternates(pos, ruleName, id, true)
			lastSymStart = len(rule)
			rule = append(rule, Elem{RuleRef, uint32(id)})
			if p.at(pos) != ')' {
				l, c := lineCol(p.src, open)
				p.fail(pos, "expecting ')' to close the '(' at line %d, column %d", l, c)
			}
			p.depth--
			pos = p.space(pos+1, nested)
		case c == '.':
			lastSymStart = len(rule)
			rule = append(rule, Elem{CharAny, 0})
			pos = p.space(pos+1, nested)
		case c == '*':
			at := pos
			pos = p.space(pos+1, nested)
			repeat(at, 0, 0, true)
		case c == '+':
			at := pos
			pos = p.space(pos+1, nested)
			repeat(at, 1, 0, true)
		case c == '?':
			at := pos
			pos = p.space(pos+1, nested)
			repeat(at, 0, 1, false)
		case c == '{':
			at := pos
			pos = p.space(pos+1, nested)
			if !isDigit(p.at(pos)) {
				p.fail(pos, "expecting an integer")
			}
			var minTimes, maxTimes uint64
			minTimes, pos = p.integer(pos)
			pos = p.space(pos, nested)
			noMax := true
			switch p.at(pos) {
			case '}':
				maxTimes, noMax = minTimes, false
				pos = p.space(pos+1, nested)
			case ',':
				pos = p.space(pos+1, nested)
				if isDigit(p.at(pos)) {
					maxTimes, pos = p.integer(pos)
					noMax = false
					pos = p.space(pos, nested)
				}
				if p.at(pos) != '}' {
					p.fail(pos, "expecting '}'")
				}
				pos = p.space(pos+1, nested)
			default:
				p.fail(pos, "expecting ',' or '}'")
			}
			if minTimes > MaxRepetitions || !noMax && maxTimes > MaxRepetitions {
				p.fail(at, "more than %d repetitions", MaxRepetitions)
			}
			if !noMax && maxTimes < minTimes {
				p.fail(at, "repetition {%d,%d}: the maximum is below the minimum", minTimes, maxTimes)
			}
			repeat(at, minTimes, maxTimes, noMax)
		default:
			return pos, rule
		}
	}
	return pos, rule
}

// isEndOfSequence reports whether e ends an alternate.
func isEndOfSequence(e Elem) bool { return e.Type == End || e.Type == Alt }

// nullable returns, for each rule, whether it can match the empty string.
func (g *Grammar) nullable() []bool {
	null := make([]bool, len(g.Rules))
	for changed := true; changed; {
		changed = false
		for i, rule := range g.Rules {
			if null[i] {
				continue
			}
			ok := true // the current alternate is nullable so far
			for _, e := range rule {
				if isEndOfSequence(e) {
					if ok {
						null[i] = true
						changed = true
						break
					}
					ok = true
					continue
				}
				if ok && !(e.Type == RuleRef && null[e.Value]) {
					ok = false
				}
			}
		}
	}
	return null
}

// leftRecursive finds a rule that can reach itself without consuming
// input, and returns it.
func (g *Grammar) leftRecursive() (int, bool) {
	null := g.nullable()
	// edges: rule → rules reachable at the left of one of its alternates
	const (
		white = iota
		grey
		black
	)
	color := make([]uint8, len(g.Rules))
	type frame struct{ rule, elem int }
	for startRule := range g.Rules {
		if color[startRule] != white {
			continue
		}
		stack := []frame{{startRule, 0}}
		color[startRule] = grey
		for len(stack) > 0 {
			f := &stack[len(stack)-1]
			rule := g.Rules[f.rule]
			// find the next left-reachable reference from f.elem on
			next := -1
			for f.elem < len(rule) {
				e := rule[f.elem]
				f.elem++
				if e.Type == RuleRef && g.leftReachable(rule, f.elem-1, null) {
					next = int(e.Value)
					break
				}
			}
			if next < 0 {
				color[f.rule] = black
				stack = stack[:len(stack)-1]
				continue
			}
			switch color[next] {
			case grey:
				return next, true
			case white:
				color[next] = grey
				stack = append(stack, frame{next, 0})
			}
		}
	}
	return 0, false
}

// leftReachable reports whether element i of rule is at the left of its
// alternate, after nullable references only.
func (g *Grammar) leftReachable(rule []Elem, i int, null []bool) bool {
	for j := i - 1; j >= 0; j-- {
		e := rule[j]
		if isEndOfSequence(e) {
			return true
		}
		if !(e.Type == RuleRef && null[e.Value]) {
			return false
		}
	}
	return true
}
