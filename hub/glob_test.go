package hub

import "testing"

func TestMatchGlob(t *testing.T) {
	tests := []struct {
		pat, name string
		want      bool
	}{
		{"*.gguf", "model.gguf", true},
		{"*.gguf", "sub/model.gguf", true}, // fnmatch: '*' crosses '/'
		{"*.gguf", "model.gguf.bak", false},
		{"sub/", "sub/a.json", true},
		{"sub/", "subx/a.json", false},
		{"model-?.bin", "model-1.bin", true},
		{"model-?.bin", "model-12.bin", false},
		{"[abc].txt", "b.txt", true},
		{"[!abc].txt", "b.txt", false},
		{"[a-c]x", "cx", true},
		{"*Q4_K_M*", "m-Q4_K_M-00001-of-00002.gguf", true},
		{"config.json", "config.json", true},
		{"config.json", "sub/config.json", false},
		{"*", "", true},
		{"a*b*c", "aXXbYYc", true},
		{"a*b*c", "aXXbYY", false},
		{"[", "[", true},
	}
	for _, tt := range tests {
		if got := matchGlob(tt.pat, tt.name); got != tt.want {
			t.Errorf("matchGlob(%q, %q) = %v, want %v", tt.pat, tt.name, got, tt.want)
		}
	}
}
