package hub

import (
	"bytes"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// Card is what a model card (README.md) says about a model: its YAML front
// matter and the first paragraph of its text.
type Card struct {
	License     string
	PipelineTag string
	LibraryName string
	BaseModels  []string
	Tags        []string
	Languages   []string
	// Description is the first paragraph of the card's text, on one line.
	Description string
	// Data is the whole front matter.
	Data map[string]any
}

// ParseCard reads a model card. A card without front matter has only a
// Description; malformed YAML is an error (with the Description still set).
func ParseCard(readme []byte) (Card, error) {
	front, body, ok := splitFrontMatter(readme)
	var c Card
	var err error
	if ok {
		var m map[string]any
		if yerr := yaml.Unmarshal(front, &m); yerr != nil {
			err = fmt.Errorf("model card front matter: %w", yerr)
		} else {
			c = CardFromData(m)
		}
	}
	c.Description = firstParagraph(body)
	return c, err
}

// CardFromData reads the card fields from front matter (or from the Hub's
// cardData).
func CardFromData(m map[string]any) Card {
	c := Card{Data: m}
	c.License = str(m["license"])
	if c.License == "other" {
		if n := str(m["license_name"]); n != "" {
			c.License = "other (" + n + ")"
		}
	}
	c.PipelineTag = str(m["pipeline_tag"])
	c.LibraryName = str(m["library_name"])
	c.BaseModels = strs(m["base_model"])
	c.Tags = strs(m["tags"])
	c.Languages = strs(m["language"])
	if len(c.Languages) == 0 {
		c.Languages = strs(m["languages"])
	}
	return c
}

func str(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case nil:
		return ""
	case []any:
		return strings.Join(strs(x), ", ")
	}
	return fmt.Sprint(v)
}

func strs(v any) []string {
	switch x := v.(type) {
	case string:
		if x == "" {
			return nil
		}
		return []string{x}
	case []any:
		var out []string
		for _, e := range x {
			if s := str(e); s != "" {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// splitFrontMatter splits "---\nYAML\n---\nbody".
func splitFrontMatter(b []byte) (front, body []byte, ok bool) {
	b = bytes.TrimPrefix(b, []byte("\ufeff"))
	s := strings.ReplaceAll(string(b), "\r\n", "\n")
	if !strings.HasPrefix(s, "---\n") {
		return nil, []byte(s), false
	}
	rest := s[4:]
	if strings.HasPrefix(rest, "---\n") || rest == "---" {
		return nil, []byte(strings.TrimPrefix(rest, "---")), true
	}
	end := strings.Index(rest, "\n---\n")
	if end < 0 {
		if strings.HasSuffix(rest, "\n---") {
			return []byte(rest[:len(rest)-3]), nil, true
		}
		return nil, []byte(s), false
	}
	return []byte(rest[:end+1]), []byte(rest[end+5:]), true
}

// firstParagraph returns the first run of prose lines of a Markdown body,
// skipping headings, HTML, images, badges, tables, code and rules.
func firstParagraph(body []byte) string {
	var para []string
	inCode, inComment := false, false
	for _, line := range strings.Split(string(body), "\n") {
		t := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(t, "```"):
			inCode = !inCode
			continue
		case inCode:
			continue
		case inComment:
			if strings.Contains(t, "-->") {
				inComment = false
			}
			continue
		case strings.HasPrefix(t, "<!--"):
			inComment = !strings.Contains(t, "-->")
			continue
		}
		prose := t != "" && !strings.HasPrefix(t, "#") && !strings.HasPrefix(t, "<") &&
			!strings.HasPrefix(t, "![") && !strings.HasPrefix(t, "[![") && !strings.HasPrefix(t, "|") &&
			!strings.HasPrefix(t, "---") && !strings.HasPrefix(t, "===") && !strings.HasPrefix(t, "***")
		if prose {
			para = append(para, t)
			continue
		}
		if len(para) > 0 {
			break
		}
	}
	s := strings.Join(para, " ")
	if r := []rune(s); len(r) > 600 {
		s = string(r[:597]) + "..."
	}
	return s
}
