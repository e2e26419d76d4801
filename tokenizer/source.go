package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/llm-go/llm/loader/gguf"
)

// ErrNoTemplate means a model has no chat template.
var ErrNoTemplate = errors.New("tokenizer: no chat template")

// Source is a chat template with the special-token strings its model uses.
type Source struct {
	Template string // the Jinja source
	BOS, EOS string // bos_token and eos_token
	From     string // where the template came from, for messages
}

// maxTemplateFile bounds the template and tokenizer_config.json files read.
const maxTemplateFile = 32 << 20

// LoadSource finds the chat template of the model at path, as
// apply_chat_template would: for a GGUF file, tokenizer.chat_template (or
// tokenizer.chat_template.NAME when name is set) and the texts of its BOS
// and EOS tokens; for a Hugging Face model directory, chat_template.jinja
// when present, else tokenizer_config.json's chat_template (a string, or a
// list of {name, template}), with its bos_token and eos_token; any other
// file is read as a bare template. It returns ErrNoTemplate when the model
// has none.
func LoadSource(path, name string) (*Source, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	if st.IsDir() {
		return hfSource(path, name)
	}
	if isGGUF(path) {
		return ggufSource(path, name)
	}
	data, err := readBounded(path)
	if err != nil {
		return nil, err
	}
	return &Source{Template: string(data), From: path}, nil
}

func isGGUF(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var magic [4]byte
	_, err = io.ReadFull(f, magic[:])
	return err == nil && string(magic[:]) == "GGUF"
}

func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxTemplateFile+1))
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", path, err)
	}
	if len(data) > maxTemplateFile {
		return nil, fmt.Errorf("tokenizer: %s is larger than %d bytes", path, maxTemplateFile)
	}
	return data, nil
}

func ggufSource(path, name string) (*Source, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	key := "tokenizer.chat_template"
	if name != "" {
		key += "." + name
	}
	tmpl, ok := f.String(key)
	if !ok {
		return nil, fmt.Errorf("tokenizer: %s has no %s: %w", path, key, ErrNoTemplate)
	}
	s := &Source{Template: tmpl, From: path + " (" + key + ")"}
	tokens, _ := f.Strings("tokenizer.ggml.tokens")
	text := func(key string) string {
		if id, ok := f.Uint(key); ok && id < uint64(len(tokens)) {
			return tokens[id]
		}
		return ""
	}
	s.BOS, s.EOS = text("tokenizer.ggml.bos_token_id"), text("tokenizer.ggml.eos_token_id")
	return s, nil
}

// hfSource reads a Hugging Face model directory.
func hfSource(dir, name string) (*Source, error) {
	var cfg struct {
		ChatTemplate json.RawMessage `json:"chat_template"`
		BOS          json.RawMessage `json:"bos_token"`
		EOS          json.RawMessage `json:"eos_token"`
	}
	cfgPath := filepath.Join(dir, "tokenizer_config.json")
	haveCfg := false
	if data, err := readBounded(cfgPath); err == nil {
		if err := json.Unmarshal(data, &cfg); err != nil {
			return nil, fmt.Errorf("tokenizer: %s: %w", cfgPath, err)
		}
		haveCfg = true
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	s := &Source{BOS: tokenString(cfg.BOS), EOS: tokenString(cfg.EOS)}

	jinjaPath := filepath.Join(dir, "chat_template.jinja")
	if name != "" {
		jinjaPath = filepath.Join(dir, "chat_templates", name+".jinja")
	}
	if data, err := readBounded(jinjaPath); err == nil {
		s.Template, s.From = string(data), jinjaPath
		return s, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if !haveCfg || len(cfg.ChatTemplate) == 0 || string(cfg.ChatTemplate) == "null" {
		// A vision-language repository's processor template.
		procPath := filepath.Join(dir, "chat_template.json")
		if data, err := readBounded(procPath); err == nil && name == "" {
			var pc struct {
				ChatTemplate string `json:"chat_template"`
			}
			if err := json.Unmarshal(data, &pc); err != nil {
				return nil, fmt.Errorf("tokenizer: %s: %w", procPath, err)
			}
			if pc.ChatTemplate != "" {
				s.Template, s.From = pc.ChatTemplate, procPath
				return s, nil
			}
		} else if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("tokenizer: %s has neither chat_template.jinja nor a chat_template in tokenizer_config.json or chat_template.json: %w", dir, ErrNoTemplate)
	}
	var single string
	if err := json.Unmarshal(cfg.ChatTemplate, &single); err == nil {
		if name != "" && name != "default" {
			return nil, fmt.Errorf("tokenizer: %s has one chat template, not one named %q: %w", cfgPath, name, ErrNoTemplate)
		}
		s.Template, s.From = single, cfgPath
		return s, nil
	}
	var named []struct {
		Name     string `json:"name"`
		Template string `json:"template"`
	}
	if err := json.Unmarshal(cfg.ChatTemplate, &named); err != nil {
		return nil, fmt.Errorf("tokenizer: %s: chat_template is neither a string nor a list of {name, template}", cfgPath)
	}
	want := name
	if want == "" {
		want = "default"
	}
	for _, t := range named {
		if t.Name == want {
			s.Template, s.From = t.Template, cfgPath+" ("+want+")"
			return s, nil
		}
	}
	return nil, fmt.Errorf("tokenizer: %s has no chat template named %q: %w", cfgPath, want, ErrNoTemplate)
}

// tokenString reads a special token from tokenizer_config.json: a string,
// or an AddedToken object with a "content" field.
func tokenString(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var obj struct {
		Content string `json:"content"`
	}
	if json.Unmarshal(raw, &obj) == nil {
		return obj.Content
	}
	return ""
}
