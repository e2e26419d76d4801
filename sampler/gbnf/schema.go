package gbnf

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// ErrSchema is what every error of FromJSONSchema is (errors.Is).
var ErrSchema = errors.New("gbnf: unsupported or invalid JSON schema")

// SchemaError is a JSON schema that FromJSONSchema cannot convert.
type SchemaError struct{ Msg string }

// Error implements the error interface.
func (e *SchemaError) Error() string { return "gbnf: " + e.Msg }

// Is reports whether target is ErrSchema.
func (e *SchemaError) Is(target error) bool { return target == ErrSchema }

// The rules the converter builds on, as llama.cpp's PRIMITIVE_RULES.
const spaceRule = `| " " | "\n"{1,2} [ \t]{0,20}`

type builtin struct {
	content string
	deps    []string
}

var primitiveRules = map[string]builtin{
	"boolean":       {`("true" | "false") space`, nil},
	"decimal-part":  {`[0-9]{1,16}`, nil},
	"integral-part": {`[0] | [1-9] [0-9]{0,15}`, nil},
	"number":        {`("-"? integral-part) ("." decimal-part)? ([eE] [-+]? integral-part)? space`, []string{"integral-part", "decimal-part"}},
	"integer":       {`("-"? integral-part) space`, []string{"integral-part"}},
	"value":         {`object | array | string | number | boolean | null`, []string{"object", "array", "string", "number", "boolean", "null"}},
	"object":        {`"{" space ( string ":" space value ("," space string ":" space value)* )? "}" space`, []string{"string", "value"}},
	"array":         {`"[" space ( value ("," space value)* )? "]" space`, []string{"value"}},
	"uuid":          {`"\"" [0-9a-fA-F]{8} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{12} "\"" space`, nil},
	"char":          {`[^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})`, nil},
	"string":        {`"\"" char* "\"" space`, []string{"char"}},
	"null":          {`"null" space`, nil},
}

var stringFormatRules = map[string]builtin{
	"date":             {`[0-9]{4} "-" ( "0" [1-9] | "1" [0-2] ) "-" ( "0" [1-9] | [1-2] [0-9] | "3" [0-1] )`, nil},
	"time":             {`([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9] ":" [0-5] [0-9] ( "." [0-9]{3} )? ( "Z" | ( "+" | "-" ) ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] )`, nil},
	"date-time":        {`date "T" time`, []string{"date", "time"}},
	"date-string":      {`"\"" date "\"" space`, []string{"date"}},
	"time-string":      {`"\"" time "\"" space`, []string{"time"}},
	"date-time-string": {`"\"" date-time "\"" space`, []string{"date-time"}},
}

// JSONObject is the grammar of JSON mode: one JSON object (llama.cpp's
// converter's output for the schema {"type": "object"}).
var JSONObject = mustConvert(`{"type": "object"}`)

func mustConvert(schema string) string {
	g, err := FromJSONSchema([]byte(schema))
	if err != nil {
		panic(err)
	}
	return g
}

var invalidRuleChars = regexp.MustCompile(`[^a-zA-Z0-9-]+`)

func isReserved(name string) bool {
	if name == "root" {
		return true
	}
	_, p := primitiveRules[name]
	_, f := stringFormatRules[name]
	return p || f
}

// formatLiteral quotes s as a GBNF string literal.
func formatLiteral(s string) string {
	r := strings.NewReplacer("\r", `\r`, "\n", `\n`, `"`, `\"`, `\`, `\\`)
	return `"` + r.Replace(s) + `"`
}

type converter struct {
	rules     map[string]string
	refs      map[string]any
	resolving map[string]bool
	errs      []string
}

// FromJSONSchema converts a JSON schema to a GBNF grammar whose root rule
// matches the JSON documents the schema allows, following llama.cpp's
// json-schema-to-grammar.cpp. Supported: type (string, number, integer,
// boolean, null, object, array, and lists of types), properties, required,
// additionalProperties, enum, const, anyOf, oneOf, allOf (of objects and
// enums), items, prefixItems, minItems, maxItems, minLength, maxLength,
// minimum/maximum and their exclusive forms for integers, the formats date,
// time, date-time and uuid, local $ref ("#/$defs/…", "#/definitions/…"),
// and pattern (see patternRule). Unsupported: remote $ref, and number
// bounds (which llama.cpp does not enforce either). Properties not listed as required are optional;
// additional properties are not allowed unless additionalProperties says so.
func FromJSONSchema(schema []byte) (string, error) {
	v, err := decodeOrdered(schema)
	if err != nil {
		return "", &SchemaError{Msg: "the schema is not JSON: " + err.Error()}
	}
	c := &converter{
		rules:     map[string]string{"space": spaceRule},
		refs:      map[string]any{},
		resolving: map[string]bool{},
	}
	c.resolveRefs(v, v)
	if len(c.errs) == 0 {
		func() {
			defer func() {
				if r := recover(); r != nil {
					if e, ok := r.(schemaPanic); ok {
						c.errs = append(c.errs, string(e))
						return
					}
					panic(r)
				}
			}()
			c.visit(v, "")
		}()
	}
	if len(c.errs) > 0 {
		return "", &SchemaError{Msg: strings.Join(c.errs, "; ")}
	}
	names := make([]string, 0, len(c.rules))
	for n := range c.rules {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "%s ::= %s\n", n, c.rules[n])
	}
	out := b.String()
	if _, err := Parse(out); err != nil {
		return "", &SchemaError{Msg: "the grammar it gives is invalid: " + err.Error()}
	}
	return out, nil
}

type schemaPanic string

func (c *converter) fail(format string, args ...any) {
	panic(schemaPanic(fmt.Sprintf(format, args...)))
}

func (c *converter) addRule(name, rule string) string {
	esc := invalidRuleChars.ReplaceAllString(name, "-")
	if old, ok := c.rules[esc]; !ok || old == rule {
		c.rules[esc] = rule
		return esc
	}
	for i := 0; ; i++ {
		key := esc + strconv.Itoa(i)
		if old, ok := c.rules[key]; !ok || old == rule {
			c.rules[key] = rule
			return key
		}
	}
}

func (c *converter) addPrimitive(name string, r builtin) string {
	n := c.addRule(name, r.content)
	for _, dep := range r.deps {
		d, ok := primitiveRules[dep]
		if !ok {
			d, ok = stringFormatRules[dep]
		}
		if !ok {
			c.errs = append(c.errs, "rule "+dep+" not known")
			continue
		}
		if _, done := c.rules[dep]; !done {
			c.addPrimitive(dep, d)
		}
	}
	return n
}

// resolveRefs records the targets of the local $refs of n.
func (c *converter) resolveRefs(n, root any) {
	switch t := n.(type) {
	case []any:
		for _, x := range t {
			c.resolveRefs(x, root)
		}
	case *object:
		if r, ok := t.Get("$ref"); ok {
			ref, ok := r.(string)
			if !ok {
				c.errs = append(c.errs, "$ref must be a string")
				return
			}
			if _, done := c.refs[ref]; done {
				return
			}
			if !strings.HasPrefix(ref, "#/") && ref != "#" {
				c.errs = append(c.errs, "unsupported $ref "+ref+" (only local references such as #/$defs/name)")
				return
			}
			target := root
			for _, sel := range strings.Split(ref[1:], "/")[1:] {
				sel = strings.ReplaceAll(strings.ReplaceAll(sel, "~1", "/"), "~0", "~")
				switch tt := target.(type) {
				case *object:
					v, ok := tt.Get(sel)
					if !ok {
						c.errs = append(c.errs, "cannot resolve $ref "+ref+": no "+sel)
						return
					}
					target = v
				case []any:
					i, err := strconv.Atoi(sel)
					if err != nil || i < 0 || i >= len(tt) {
						c.errs = append(c.errs, "cannot resolve $ref "+ref+": no "+sel)
						return
					}
					target = tt[i]
				default:
					c.errs = append(c.errs, "cannot resolve $ref "+ref+": no "+sel)
					return
				}
			}
			c.refs[ref] = target
			return
		}
		for _, k := range t.Keys() {
			v, _ := t.Get(k)
			c.resolveRefs(v, root)
		}
	}
}

func (c *converter) resolveRef(ref string) string {
	frag := ref
	if i := strings.IndexByte(ref, '#'); i >= 0 {
		frag = ref[i+1:]
	}
	name := "ref" + invalidRuleChars.ReplaceAllString(frag, "-")
	if _, ok := c.rules[name]; !ok && !c.resolving[ref] {
		c.resolving[ref] = true
		name = c.visit(c.refs[ref], name)
		delete(c.resolving, ref)
	}
	return name
}

func joinName(name, suffix string) string {
	if name == "" {
		return suffix
	}
	return name + "-" + suffix
}

func (c *converter) unionRule(name string, alts []any) string {
	var rules []string
	for i, a := range alts {
		prefix := name + "-"
		if name == "" {
			prefix = "alternative-"
		}
		rules = append(rules, c.visit(a, prefix+strconv.Itoa(i)))
	}
	return strings.Join(rules, " | ")
}

func asInt(v any, what string, c *converter) (int64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		c.fail("%s must be an integer, got %s", what, dump(v))
	}
	i, err := n.Int64()
	if err != nil {
		f, ferr := n.Float64()
		if ferr != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
			c.fail("%s must be an integer, got %s", what, n)
		}
		i = int64(f)
	}
	return i, true
}

func (c *converter) visit(schemaV any, name string) string {
	schema, ok := schemaV.(*object)
	if !ok {
		if b, isBool := schemaV.(bool); isBool && b {
			return c.addRule(ruleNameFor(name), c.addPrimitive("value", primitiveRules["value"]))
		}
		c.fail("a schema must be an object, got %s", dump(schemaV))
	}
	typ, _ := schema.Get("type")
	format := ""
	if f, ok := schema.Get("format"); ok {
		format, _ = f.(string)
	}
	ruleName := ruleNameFor(name)
	typeIs := func(t string) bool { s, ok := typ.(string); return ok && s == t }
	untyped := typ == nil

	switch {
	case schema.Has("$ref"):
		r, _ := schema.Get("$ref")
		return c.addRule(ruleName, c.resolveRef(r.(string)))
	case schema.Has("oneOf") || schema.Has("anyOf"):
		alts, _ := schema.Get("oneOf")
		if alts == nil {
			alts, _ = schema.Get("anyOf")
		}
		list, ok := alts.([]any)
		if !ok {
			c.fail("oneOf/anyOf must be a list")
		}
		return c.addRule(ruleName, c.unionRule(name, list))
	case isList(typ):
		var alts []any
		for _, t := range typ.([]any) {
			cp := &object{}
			for _, k := range schema.Keys() {
				v, _ := schema.Get(k)
				cp.Set(k, v)
			}
			cp.Set("type", t)
			alts = append(alts, cp)
		}
		return c.addRule(ruleName, c.unionRule(name, alts))
	case schema.Has("const"):
		v, _ := schema.Get("const")
		return c.addRule(ruleName, formatLiteral(dump(v))+" space")
	case schema.Has("enum"):
		e, _ := schema.Get("enum")
		list, ok := e.([]any)
		if !ok || len(list) == 0 {
			c.fail("enum must be a non-empty list")
		}
		var vals []string
		for _, v := range list {
			vals = append(vals, formatLiteral(dump(v)))
		}
		return c.addRule(ruleName, "("+strings.Join(vals, " | ")+") space")
	case (untyped || typeIs("object")) && (schema.Has("properties") || schema.Has("additionalProperties") && !isTrue(val(schema, "additionalProperties"))):
		required := map[string]bool{}
		if r, ok := schema.Get("required"); ok {
			if list, ok := r.([]any); ok {
				for _, x := range list {
					if s, ok := x.(string); ok {
						required[s] = true
					}
				}
			}
		}
		var props []prop
		if p, ok := schema.Get("properties"); ok {
			po, ok := p.(*object)
			if !ok {
				c.fail("properties must be an object")
			}
			for _, k := range po.Keys() {
				props = append(props, prop{k, val(po, k)})
			}
		}
		add, _ := schema.Get("additionalProperties")
		return c.addRule(ruleName, c.objectRule(props, required, name, add))
	case (untyped || typeIs("object") || typeIs("string")) && schema.Has("allOf"):
		return c.allOf(schema, name, ruleName)
	case (untyped || typeIs("array")) && (schema.Has("items") || schema.Has("prefixItems")):
		items, ok := schema.Get("items")
		if !ok {
			items, _ = schema.Get("prefixItems")
		}
		if list, ok := items.([]any); ok {
			rule := `"[" space `
			for i, it := range list {
				if i > 0 {
					rule += ` "," space `
				}
				rule += c.visit(it, joinName(name, "tuple-"+strconv.Itoa(i)))
			}
			return c.addRule(ruleName, rule+` "]" space`)
		}
		item := c.visit(items, joinName(name, "item"))
		minItems, maxItems := int64(0), int64(math.MaxInt32)
		if v, ok := schema.Get("minItems"); ok {
			minItems, _ = asInt(v, "minItems", c)
		}
		if v, ok := schema.Get("maxItems"); ok {
			maxItems, _ = asInt(v, "maxItems", c)
		}
		c.checkCounts("minItems", "maxItems", minItems, maxItems)
		return c.addRule(ruleName, `"[" space `+repetition(item, int(minItems), int(maxItems), `"," space`)+` "]" space`)
	case (untyped || typeIs("string")) && schema.Has("pattern"):
		p, _ := schema.Get("pattern")
		ps, ok := p.(string)
		if !ok {
			c.fail("pattern must be a string")
		}
		return c.addRule(ruleName, c.patternRule(ps))
	case (untyped || typeIs("string")) && regexp.MustCompile(`^uuid[1-5]?$`).MatchString(format):
		n := format
		if ruleName == "root" {
			n = "root"
		}
		return c.addPrimitive(n, primitiveRules["uuid"])
	case (untyped || typeIs("string")) && stringFormatRules[format+"-string"].content != "":
		prim := format + "-string"
		return c.addRule(ruleName, c.addPrimitive(prim, stringFormatRules[prim]))
	case typeIs("string") && (schema.Has("minLength") || schema.Has("maxLength")):
		char := c.addPrimitive("char", primitiveRules["char"])
		minLen, maxLen := int64(0), int64(math.MaxInt32)
		if v, ok := schema.Get("minLength"); ok {
			minLen, _ = asInt(v, "minLength", c)
		}
		if v, ok := schema.Get("maxLength"); ok {
			maxLen, _ = asInt(v, "maxLength", c)
		}
		c.checkCounts("minLength", "maxLength", minLen, maxLen)
		return c.addRule(ruleName, `"\"" `+repetition(char, int(minLen), int(maxLen), "")+` "\"" space`)
	case typeIs("integer") && (schema.Has("minimum") || schema.Has("exclusiveMinimum") || schema.Has("maximum") || schema.Has("exclusiveMaximum")):
		minV, maxV := int64(math.MinInt64), int64(math.MaxInt64)
		if v, ok := schema.Get("minimum"); ok {
			minV, _ = asInt(v, "minimum", c)
		} else if v, ok := schema.Get("exclusiveMinimum"); ok {
			minV, _ = asInt(v, "exclusiveMinimum", c)
			minV++
		}
		if v, ok := schema.Get("maximum"); ok {
			maxV, _ = asInt(v, "maximum", c)
		} else if v, ok := schema.Get("exclusiveMaximum"); ok {
			maxV, _ = asInt(v, "exclusiveMaximum", c)
			maxV--
		}
		if minV > maxV {
			c.fail("integer range [%d, %d] is empty", minV, maxV)
		}
		var b strings.Builder
		b.WriteString("(")
		buildMinMaxInt(minV, maxV, &b, 16, true)
		b.WriteString(") space")
		return c.addRule(ruleName, b.String())
	case schema.Len() == 0 || typeIs("object"):
		return c.addRule(ruleName, c.addPrimitive("object", primitiveRules["object"]))
	}
	t, ok := typ.(string)
	prim, known := primitiveRules[t]
	if !ok || !known {
		c.fail("unrecognized schema %s", dump(schema))
	}
	if ruleName != "root" {
		ruleName = t
	}
	return c.addPrimitive(ruleName, prim)
}

func (c *converter) checkCounts(minName, maxName string, lo, hi int64) {
	if lo < 0 || hi < 0 || lo > MaxRepetitions && lo != math.MaxInt32 || hi > MaxRepetitions && hi != math.MaxInt32 {
		c.fail("%s/%s must be in [0, %d]", minName, maxName, MaxRepetitions)
	}
	if lo > hi {
		c.fail("%s %d is above %s %d", minName, lo, maxName, hi)
	}
}

func ruleNameFor(name string) string {
	switch {
	case isReserved(name):
		return name + "-"
	case name == "":
		return "root"
	}
	return name
}

func isList(v any) bool { _, ok := v.([]any); return ok }

func isTrue(v any) bool { b, ok := v.(bool); return ok && b }

type prop struct {
	name   string
	schema any
}

func (c *converter) objectRule(props []prop, required map[string]bool, name string, additional any) string {
	var req, opt []string
	kv := map[string]string{}
	var names []string
	for _, p := range props {
		ruleName := c.visit(p.schema, joinName(name, p.name))
		kv[p.name] = c.addRule(joinName(name, p.name+"-kv"), formatLiteral(dump(p.name))+` space ":" space `+ruleName)
		if required[p.name] {
			req = append(req, p.name)
		} else {
			opt = append(opt, p.name)
		}
		names = append(names, p.name)
	}
	if isTrue(additional) || isObject(additional) {
		sub := joinName(name, "additional")
		var value string
		if isObject(additional) {
			value = c.visit(additional, sub+"-value")
		} else {
			value = c.addPrimitive("value", primitiveRules["value"])
		}
		var key string
		if len(names) == 0 {
			key = c.addPrimitive("string", primitiveRules["string"])
		} else {
			key = c.addRule(sub+"-k", c.notStrings(names))
		}
		kv["*"] = c.addRule(sub+"-kv", key+` ":" space `+value)
		opt = append(opt, "*")
	}
	rule := `"{" space `
	for i, r := range req {
		if i > 0 {
			rule += ` "," space `
		}
		rule += kv[r]
	}
	if len(opt) > 0 {
		rule += " ("
		if len(req) > 0 {
			rule += ` "," space ( `
		}
		var rec func(ks []string, firstOptional bool) string
		rec = func(ks []string, firstOptional bool) string {
			if len(ks) == 0 {
				return ""
			}
			k := ks[0]
			comma := `( "," space ` + kv[k] + ` )`
			var res string
			switch {
			case firstOptional && k == "*":
				res = comma + "*"
			case firstOptional:
				res = comma + "?"
			case k == "*":
				res = kv[k] + " " + comma + "*"
			default:
				res = kv[k]
			}
			if len(ks) > 1 {
				res += " " + c.addRule(joinName(name, k+"-rest"), rec(ks[1:], true))
			}
			return res
		}
		for i := range opt {
			if i > 0 {
				rule += " | "
			}
			rule += rec(opt[i:], false)
		}
		if len(req) > 0 {
			rule += " )"
		}
		rule += " )?"
	}
	return rule + ` "}" space`
}

func isObject(v any) bool { _, ok := v.(*object); return ok }

// notStrings returns a rule for a JSON string that is none of strs.
func (c *converter) notStrings(strs []string) string {
	type node struct {
		children map[byte]*node
		end      bool
	}
	root := &node{children: map[byte]*node{}}
	for _, s := range strs {
		n := root
		for i := 0; i < len(s); i++ {
			ch, ok := n.children[s[i]]
			if !ok {
				ch = &node{children: map[byte]*node{}}
				n.children[s[i]] = ch
			}
			n = ch
		}
		n.end = true
	}
	char := c.addPrimitive("char", primitiveRules["char"])
	var b strings.Builder
	b.WriteString(`["] ( `)
	var walk func(n *node)
	walk = func(n *node) {
		keys := make([]int, 0, len(n.children))
		for k := range n.children {
			keys = append(keys, int(k))
		}
		sort.Ints(keys)
		var rejects strings.Builder
		for i, k := range keys {
			ch := n.children[byte(k)]
			rejects.WriteString(classChar(byte(k)))
			if i > 0 {
				b.WriteString(" | ")
			}
			b.WriteString("[" + classChar(byte(k)) + "]")
			if len(ch.children) > 0 {
				b.WriteString(" (")
				walk(ch)
				b.WriteString(")")
			} else if ch.end {
				b.WriteString(" " + char + "+")
			}
		}
		if len(keys) > 0 {
			b.WriteString(" | ")
			b.WriteString(`[^"` + rejects.String() + "] " + char + "*")
		}
	}
	walk(root)
	b.WriteString(" )")
	if !root.end {
		b.WriteString("?")
	}
	b.WriteString(` ["] space`)
	return b.String()
}

// classChar escapes a byte for a GBNF character class.
func classChar(c byte) string {
	switch c {
	case '\\', ']', '[', '"':
		return `\` + string(c)
	case '-':
		return `\x2D`
	case '\n':
		return `\n`
	case '\r':
		return `\r`
	case '\t':
		return `\t`
	}
	if c < 0x20 || c >= 0x7F {
		return fmt.Sprintf(`\x%02X`, c)
	}
	return string(c)
}

func (c *converter) allOf(schema *object, name, ruleName string) string {
	required := map[string]bool{}
	var props []prop
	enumCount := map[string]int{}
	var enumOrder []string
	var add func(comp any, isRequired bool)
	add = func(comp any, isRequired bool) {
		o, ok := comp.(*object)
		if !ok {
			return
		}
		if r, ok := o.Get("$ref"); ok {
			add(c.refs[r.(string)], isRequired)
		} else if p, ok := o.Get("properties"); ok {
			if po, ok := p.(*object); ok {
				for _, k := range po.Keys() {
					props = append(props, prop{k, val(po, k)})
					if isRequired {
						required[k] = true
					}
				}
			}
		} else if e, ok := o.Get("enum"); ok {
			if list, ok := e.([]any); ok {
				for _, v := range list {
					r := formatLiteral(dump(v))
					if _, seen := enumCount[r]; !seen {
						enumOrder = append(enumOrder, r)
					}
					enumCount[r]++
				}
			}
		}
	}
	all, _ := schema.Get("allOf")
	list, ok := all.([]any)
	if !ok {
		c.fail("allOf must be a list")
	}
	for _, t := range list {
		if to, ok := t.(*object); ok && to.Has("anyOf") {
			if any, ok := val(to, "anyOf").([]any); ok {
				for _, tt := range any {
					add(tt, false)
				}
			}
		} else {
			add(t, true)
		}
	}
	if len(enumOrder) > 0 {
		sort.Strings(enumOrder)
		var inter []string
		for _, r := range enumOrder {
			if enumCount[r] == len(list) {
				inter = append(inter, r)
			}
		}
		if len(inter) > 0 {
			return c.addRule(ruleName, "("+strings.Join(inter, " | ")+") space")
		}
	}
	return c.addRule(ruleName, c.objectRule(props, required, name, nil))
}

// repetition writes item repeated min to max times (max = MaxInt32: no
// maximum), with separator between items, as llama.cpp's build_repetition.
func repetition(item string, minItems, maxItems int, sep string) string {
	hasMax := maxItems != math.MaxInt32
	if maxItems == 0 {
		return ""
	}
	if minItems == 0 && maxItems == 1 {
		return item + "?"
	}
	if sep == "" {
		switch {
		case minItems == 1 && !hasMax:
			return item + "+"
		case minItems == 0 && !hasMax:
			return item + "*"
		}
		s := item + "{" + strconv.Itoa(minItems) + ","
		if hasMax {
			s += strconv.Itoa(maxItems)
		}
		return s + "}"
	}
	lo := max(minItems-1, 0)
	hi := maxItems
	if hasMax {
		hi = maxItems - 1
	}
	res := item + " " + repetition("("+sep+" "+item+")", lo, hi, "")
	if minItems == 0 {
		res = "(" + res + ")?"
	}
	return res
}

// buildMinMaxInt writes a rule for the integers in [minV, maxV] (either end
// may be open: math.MinInt64 / math.MaxInt64), as llama.cpp's
// _build_min_max_int.
func buildMinMaxInt(minV, maxV int64, out *strings.Builder, decimalsLeft int, topLevel bool) {
	hasMin := minV != math.MinInt64
	hasMax := maxV != math.MaxInt64
	digitRange := func(from, to byte) {
		out.WriteString("[")
		if from == to {
			out.WriteByte(from)
		} else {
			out.WriteByte(from)
			out.WriteString("-")
			out.WriteByte(to)
		}
		out.WriteString("]")
	}
	moreDigits := func(minD, maxD int) {
		out.WriteString("[0-9]")
		if minD == maxD && minD == 1 {
			return
		}
		out.WriteString("{" + strconv.Itoa(minD))
		if maxD != minD {
			out.WriteString(",")
			if maxD != math.MaxInt32 {
				out.WriteString(strconv.Itoa(maxD))
			}
		}
		out.WriteString("}")
	}
	var uniformRange func(from, to string)
	uniformRange = func(from, to string) {
		i := 0
		for i < len(from) && i < len(to) && from[i] == to[i] {
			i++
		}
		if i > 0 {
			out.WriteString(`"` + from[:i] + `"`)
		}
		if i < len(from) && i < len(to) {
			if i > 0 {
				out.WriteString(" ")
			}
			subLen := len(from) - i - 1
			if subLen > 0 {
				fromSub, toSub := from[i+1:], to[i+1:]
				zeros, nines := strings.Repeat("0", subLen), strings.Repeat("9", subLen)
				toReached := false
				out.WriteString("(")
				if fromSub == zeros {
					digitRange(from[i], to[i]-1)
					out.WriteString(" ")
					moreDigits(subLen, subLen)
				} else {
					out.WriteString("[" + string(from[i]) + "] ")
					out.WriteString("(")
					uniformRange(fromSub, nines)
					out.WriteString(")")
					if from[i] < to[i]-1 {
						out.WriteString(" | ")
						if toSub == nines {
							digitRange(from[i]+1, to[i])
							toReached = true
						} else {
							digitRange(from[i]+1, to[i]-1)
						}
						out.WriteString(" ")
						moreDigits(subLen, subLen)
					}
				}
				if !toReached {
					out.WriteString(" | ")
					digitRange(to[i], to[i])
					out.WriteString(" ")
					uniformRange(zeros, toSub)
				}
				out.WriteString(")")
			} else {
				out.WriteString("[" + string(from[i]) + "-" + string(to[i]) + "]")
			}
		}
	}

	if hasMin && hasMax {
		if minV < 0 && maxV < 0 {
			out.WriteString(`"-" (`)
			buildMinMaxInt(-maxV, -minV, out, decimalsLeft, true)
			out.WriteString(")")
			return
		}
		if minV < 0 {
			out.WriteString(`"-" (`)
			buildMinMaxInt(0, -minV, out, decimalsLeft, true)
			out.WriteString(") | ")
			minV = 0
		}
		minS, maxS := strconv.FormatInt(minV, 10), strconv.FormatInt(maxV, 10)
		for digits := len(minS); digits < len(maxS); digits++ {
			uniformRange(minS, strings.Repeat("9", digits))
			minS = "1" + strings.Repeat("0", digits)
			out.WriteString(" | ")
		}
		uniformRange(minS, maxS)
		return
	}
	less := max(decimalsLeft-1, 1)
	if hasMin {
		switch {
		case minV < 0:
			out.WriteString(`"-" (`)
			buildMinMaxInt(math.MinInt64, -minV, out, decimalsLeft, false)
			out.WriteString(") | [0] | [1-9] ")
			moreDigits(0, decimalsLeft-1)
		case minV == 0:
			if topLevel {
				out.WriteString("[0] | [1-9] ")
				moreDigits(0, less)
			} else {
				moreDigits(1, decimalsLeft)
			}
		case minV <= 9:
			c := byte('0' + minV)
			start := byte('0')
			if topLevel {
				start = '1'
			}
			if c > start {
				digitRange(start, c-1)
				out.WriteString(" ")
				moreDigits(1, less)
				out.WriteString(" | ")
			}
			digitRange(c, '9')
			out.WriteString(" ")
			moreDigits(0, less)
		default:
			minS := strconv.FormatInt(minV, 10)
			n := len(minS)
			c := minS[0]
			if c > '1' {
				start := byte('0')
				if topLevel {
					start = '1'
				}
				digitRange(start, c-1)
				out.WriteString(" ")
				moreDigits(n, less)
				out.WriteString(" | ")
			}
			digitRange(c, c)
			out.WriteString(" (")
			rest, _ := strconv.ParseInt(minS[1:], 10, 64)
			buildMinMaxInt(rest, math.MaxInt64, out, less, false)
			out.WriteString(")")
			if c < '9' {
				out.WriteString(" | ")
				digitRange(c+1, '9')
				out.WriteString(" ")
				moreDigits(n-1, less)
			}
		}
		return
	}
	// hasMax only
	if maxV >= 0 {
		if topLevel {
			out.WriteString(`"-" [1-9] `)
			moreDigits(0, less)
			out.WriteString(" | ")
		}
		buildMinMaxInt(0, maxV, out, decimalsLeft, true)
	} else {
		out.WriteString(`"-" (`)
		buildMinMaxInt(-maxV, math.MaxInt64, out, decimalsLeft, false)
		out.WriteString(")")
	}
}
