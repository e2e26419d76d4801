package hub

import (
	"os"
	"path/filepath"
	"strings"
)

// DefaultEndpoint is the Hub used when HF_ENDPOINT is not set.
const DefaultEndpoint = "https://huggingface.co"

// Env is the configuration huggingface_hub reads from the environment.
type Env struct {
	Endpoint string // HF_ENDPOINT, default DefaultEndpoint; no trailing '/'
	Home     string // HF_HOME, default $XDG_CACHE_HOME/huggingface or ~/.cache/huggingface
	HubCache string // HF_HUB_CACHE (or the older HUGGINGFACE_HUB_CACHE), default $HF_HOME/hub
	Offline  bool   // HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is 1/true/yes/on
	// Token is HF_TOKEN (or the older HUGGING_FACE_HUB_TOKEN), else the
	// contents of $HF_HOME/token (HF_TOKEN_PATH overrides that path), trimmed.
	// Never print it.
	Token string
}

// LoadEnv reads the Hub settings through getenv (os.Getenv when nil).
func LoadEnv(getenv func(string) string) Env {
	if getenv == nil {
		getenv = os.Getenv
	}
	var e Env
	e.Endpoint = strings.TrimRight(strings.TrimSpace(getenv("HF_ENDPOINT")), "/")
	if e.Endpoint == "" {
		e.Endpoint = DefaultEndpoint
	}
	e.Home = expandHome(getenv("HF_HOME"), getenv)
	if e.Home == "" {
		base := expandHome(getenv("XDG_CACHE_HOME"), getenv)
		if base == "" {
			base = filepath.Join(homeDir(getenv), ".cache")
		}
		e.Home = filepath.Join(base, "huggingface")
	}
	e.HubCache = expandHome(getenv("HF_HUB_CACHE"), getenv)
	if e.HubCache == "" {
		e.HubCache = expandHome(getenv("HUGGINGFACE_HUB_CACHE"), getenv)
	}
	if e.HubCache == "" {
		e.HubCache = filepath.Join(e.Home, "hub")
	}
	e.Offline = isTrue(getenv("HF_HUB_OFFLINE")) || isTrue(getenv("TRANSFORMERS_OFFLINE"))
	e.Token = strings.TrimSpace(getenv("HF_TOKEN"))
	if e.Token == "" {
		e.Token = strings.TrimSpace(getenv("HUGGING_FACE_HUB_TOKEN"))
	}
	if e.Token == "" {
		p := expandHome(getenv("HF_TOKEN_PATH"), getenv)
		if p == "" {
			p = filepath.Join(e.Home, "token")
		}
		if b, err := os.ReadFile(p); err == nil {
			e.Token = strings.TrimSpace(string(b))
		}
	}
	return e
}

func isTrue(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}

func homeDir(getenv func(string) string) string {
	if h := getenv("HOME"); h != "" {
		return h
	}
	h, _ := os.UserHomeDir()
	return h
}

func expandHome(p string, getenv func(string) string) string {
	p = strings.TrimSpace(p)
	if p == "~" || strings.HasPrefix(p, "~/") {
		return filepath.Join(homeDir(getenv), p[1:])
	}
	return p
}
