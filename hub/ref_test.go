package hub

import (
	"errors"
	"testing"
)

func TestParseRef(t *testing.T) {
	tests := []struct {
		in   string
		want Ref
		err  bool
	}{
		{in: "org/repo", want: Ref{Repo: "org/repo"}},
		{in: "gpt2", want: Ref{Repo: "gpt2"}},
		{in: "TheBloke/Llama-2-7B-GGUF:Q4_K_M", want: Ref{Repo: "TheBloke/Llama-2-7B-GGUF", Quant: "Q4_K_M"}},
		{in: "org/repo:q8_0", want: Ref{Repo: "org/repo", Quant: "q8_0"}},
		{in: "org/repo:UD-Q4_K_XL", want: Ref{Repo: "org/repo", Quant: "UD-Q4_K_XL"}},
		{in: "org/repo/model.gguf", want: Ref{Repo: "org/repo", File: "model.gguf"}},
		{in: "org/repo/sub/dir/model-00001-of-00003.gguf", want: Ref{Repo: "org/repo", File: "sub/dir/model-00001-of-00003.gguf"}},
		{in: "hf.co/org/repo:Q4_K_M", want: Ref{Repo: "org/repo", Quant: "Q4_K_M"}},
		{in: "huggingface.co/org/repo", want: Ref{Repo: "org/repo"}},
		{in: "https://huggingface.co/org/repo", want: Ref{Repo: "org/repo"}},
		{in: "  org/repo  ", want: Ref{Repo: "org/repo"}},
		{in: "org/repo.v2_x-y", want: Ref{Repo: "org/repo.v2_x-y"}},
		{in: "", err: true},
		{in: "org/", err: true},
		{in: "/repo", err: true},
		{in: "org//repo", err: true},
		{in: "org/repo:", err: true},
		{in: "org/repo:Q4 K", err: true},
		{in: "org/../etc", err: true},
		{in: "org/repo/../../etc/passwd", err: true},
		{in: "org/repo/./x.gguf", err: true},
		{in: "org/repo/a//b.gguf", err: true},
		{in: "org/repo/file.gguf:Q4_K_M", err: true},
		{in: "../repo", err: true},
		{in: "org/re--po", err: true},
		{in: "org/.hidden", err: true},
		{in: "org/repo-", err: true},
		{in: "o rg/repo", err: true},
		{in: "org/repo\\x.gguf", err: true},
	}
	for _, tt := range tests {
		got, err := ParseRef(tt.in)
		if tt.err {
			if err == nil {
				t.Errorf("ParseRef(%q) = %+v, want error", tt.in, got)
			} else if !errors.Is(err, ErrInvalidName) {
				t.Errorf("ParseRef(%q) error %v does not wrap ErrInvalidName", tt.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseRef(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseRef(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
		// Round trip.
		again, err := ParseRef(got.String())
		if err != nil || again != got {
			t.Errorf("ParseRef(%q.String() = %q) = %+v, %v", tt.in, got.String(), again, err)
		}
	}
}

func TestValidatePath(t *testing.T) {
	good := []string{"a", "model.gguf", "sub/dir/x.json", "Q4_K_M/m-00001-of-00002.gguf", "..a", "a..b", "ab:c"}
	bad := []string{"", "/etc/passwd", "../x", "a/../../x", "a/./b", "a//b", "a/", "a\\b", "a\x00b", "a\nb", "..", ".", "C:x", "a/.."}
	for _, p := range good {
		if err := ValidatePath(p); err != nil {
			t.Errorf("ValidatePath(%q) = %v", p, err)
		}
	}
	for _, p := range bad {
		if err := ValidatePath(p); !errors.Is(err, ErrInvalidName) {
			t.Errorf("ValidatePath(%q) = %v, want ErrInvalidName", p, err)
		}
	}
}

func TestValidateRevision(t *testing.T) {
	good := []string{"main", "v1.0", "refs/pr/1", "0123456789abcdef0123456789abcdef01234567", "feature_x-y"}
	bad := []string{"", "../main", "refs/../../x", "/main", "main/", "a//b", "ma in", "a\\b", ".hidden", "refs/.x", "x%2F"}
	for _, r := range good {
		if err := ValidateRevision(r); err != nil {
			t.Errorf("ValidateRevision(%q) = %v", r, err)
		}
	}
	for _, r := range bad {
		if err := ValidateRevision(r); !errors.Is(err, ErrInvalidName) {
			t.Errorf("ValidateRevision(%q) = %v, want ErrInvalidName", r, err)
		}
	}
}

func TestETag(t *testing.T) {
	for in, want := range map[string]string{
		`"abc"`:   "abc",
		`W/"abc"`: "abc",
		`abc`:     "abc",
		` "a1" `:  "a1",
	} {
		if got := normalizeETag(in); got != want {
			t.Errorf("normalizeETag(%q) = %q, want %q", in, got, want)
		}
	}
	for _, e := range []string{"", "../x", "a/b", ".x", "a b"} {
		if validateETag(e) == nil {
			t.Errorf("validateETag(%q) accepted", e)
		}
	}
}
