package server_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestAPIKey: every route but /health needs the key as a bearer token.
func TestAPIKey(t *testing.T) {
	cfg := testConfig(t)
	cfg.APIKey = "s3cret-key"
	_, url := start(t, cfg)
	if resp, _ := get(t, url+"/health"); resp.StatusCode != http.StatusOK {
		t.Errorf("/health without a key: %d", resp.StatusCode)
	}
	tests := []struct {
		path   string
		header []string
		status int
	}{
		{"/v1/models", nil, 401},
		{"/v1/models", []string{"Authorization", "Bearer wrong"}, 401},
		{"/v1/models", []string{"Authorization", "Basic czNjcmV0LWtleQ=="}, 401},
		{"/v1/models", []string{"Authorization", "Bearer s3cret-key-and-more"}, 401},
		{"/v1/models", []string{"Authorization", "Bearer s3cret-key"}, 200},
		{"/v1/models", []string{"Authorization", "bearer s3cret-key"}, 200},
		{"/api/tags", nil, 401},
		{"/api/tags", []string{"Authorization", "Bearer s3cret-key"}, 200},
		{"/metrics", nil, 401},
		{"/metrics", []string{"Authorization", "Bearer s3cret-key"}, 200},
	}
	for _, tc := range tests {
		resp, body := get(t, url+tc.path, tc.header...)
		if resp.StatusCode != tc.status {
			t.Errorf("%s %v: %d, want %d: %s", tc.path, tc.header, resp.StatusCode, tc.status, body)
			continue
		}
		if tc.status != 401 {
			continue
		}
		if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: no WWW-Authenticate", tc.path)
		}
		if strings.HasPrefix(tc.path, "/v1/") {
			if e := decode[openAIError](t, body); *e.Error.Code != "invalid_api_key" {
				t.Errorf("%s: %s", tc.path, body)
			}
		} else if decode[map[string]string](t, body)["error"] == "" {
			t.Errorf("%s: %s", tc.path, body)
		}
	}
	resp, _ := post(t, url+"/v1/completions", map[string]any{"model": storiesName, "prompt": "Once", "max_tokens": 1},
		"Authorization", "Bearer s3cret-key")
	if resp.StatusCode != http.StatusOK {
		t.Errorf("completion with the key: %d", resp.StatusCode)
	}
}
