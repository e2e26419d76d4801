package hub

import (
	"os"
	"path/filepath"
	"testing"
)

func TestLoadEnv(t *testing.T) {
	home := t.TempDir()
	env := func(m map[string]string) func(string) string {
		return func(k string) string { return m[k] }
	}
	e := LoadEnv(env(map[string]string{"HOME": home}))
	if e.Endpoint != DefaultEndpoint || e.Home != filepath.Join(home, ".cache", "huggingface") ||
		e.HubCache != filepath.Join(home, ".cache", "huggingface", "hub") || e.Offline || e.Token != "" {
		t.Errorf("defaults: %+v", e)
	}
	hfHome := filepath.Join(home, "hf")
	os.MkdirAll(hfHome, 0o755)
	os.WriteFile(filepath.Join(hfHome, "token"), []byte("hf_fromfile\n"), 0o600)
	e = LoadEnv(env(map[string]string{"HOME": home, "HF_HOME": hfHome, "HF_ENDPOINT": "http://127.0.0.1:1/", "HF_HUB_OFFLINE": "1"}))
	if e.Endpoint != "http://127.0.0.1:1" || e.HubCache != filepath.Join(hfHome, "hub") || !e.Offline || e.Token != "hf_fromfile" {
		t.Errorf("HF_HOME: %+v", e)
	}
	e = LoadEnv(env(map[string]string{"HOME": home, "HF_HOME": hfHome, "HF_TOKEN": "hf_env", "HF_HUB_CACHE": "~/c"}))
	if e.Token != "hf_env" || e.HubCache != filepath.Join(home, "c") {
		t.Errorf("HF_TOKEN/HF_HUB_CACHE: %+v", e)
	}
	e = LoadEnv(env(map[string]string{"HOME": home, "XDG_CACHE_HOME": filepath.Join(home, "xdg"), "HF_HUB_OFFLINE": "0"}))
	if e.Home != filepath.Join(home, "xdg", "huggingface") || e.Offline {
		t.Errorf("XDG: %+v", e)
	}
}
