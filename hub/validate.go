package hub

import (
	"fmt"
	"regexp"
	"strings"
)

var (
	repoPartRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	commitRE   = regexp.MustCompile(`^[0-9a-f]{40}$`)
	etagRE     = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$`)
	quantRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
)

// ValidateRepoID checks a repo id: "name" or "org/name", each part of ASCII
// letters, digits, '-', '_' and '.', not starting with a punctuation mark,
// without "--" or "..", at most 96 characters (the Hub's rules).
func ValidateRepoID(id string) error {
	bad := func(why string) error {
		return fmt.Errorf("repo id %q: %s: %w", id, why, ErrInvalidName)
	}
	if id == "" {
		return bad("empty")
	}
	if len(id) > 96 {
		return bad("longer than 96 characters")
	}
	if strings.Contains(id, "--") || strings.Contains(id, "..") {
		return bad(`contains "--" or ".."`)
	}
	parts := strings.Split(id, "/")
	if len(parts) > 2 {
		return bad("more than one '/'")
	}
	for _, p := range parts {
		if !repoPartRE.MatchString(p) || strings.HasSuffix(p, ".") || strings.HasSuffix(p, "-") {
			return bad("each part must be letters, digits, '-', '_' or '.'")
		}
	}
	return nil
}

// ValidateRevision checks a branch, tag or commit name: letters, digits and
// "._-/", with no empty, "." or ".." segment, not absolute, at most 256
// characters. "refs/pr/1" is valid.
func ValidateRevision(rev string) error {
	bad := func(why string) error {
		return fmt.Errorf("revision %q: %s: %w", rev, why, ErrInvalidName)
	}
	if rev == "" {
		return bad("empty")
	}
	if len(rev) > 256 {
		return bad("too long")
	}
	for _, r := range rev {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-/", r)) {
			return bad(fmt.Sprintf("character %q not allowed", r))
		}
	}
	for _, seg := range strings.Split(rev, "/") {
		if seg == "" || seg == "." || seg == ".." || strings.HasPrefix(seg, ".") {
			return bad("empty, dot or dot-dot segment")
		}
	}
	return nil
}

// ValidatePath checks a file path inside a repo, as given by a user or a
// server: relative, '/'-separated, no empty, "." or ".." segment, no
// backslash, NUL or control character, at most 1024 bytes.
func ValidatePath(p string) error {
	bad := func(why string) error {
		return fmt.Errorf("file path %q: %s: %w", p, why, ErrInvalidName)
	}
	if p == "" {
		return bad("empty")
	}
	if len(p) > 1024 {
		return bad("too long")
	}
	if strings.HasPrefix(p, "/") {
		return bad("absolute")
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f || r == '\\' {
			return bad("backslash or control character")
		}
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return bad(`empty, "." or ".." segment`)
		}
	}
	if len(p) >= 2 && p[1] == ':' {
		return bad("drive letter")
	}
	return nil
}

// validateCommit checks a commit sha as the Hub gives it: 40 lowercase hex
// digits.
func validateCommit(c string) error {
	if !commitRE.MatchString(c) {
		return fmt.Errorf("commit %q is not a 40-digit hex sha: %w", c, ErrInvalidName)
	}
	return nil
}

// validateETag checks that an ETag can name a blob file: no separators, no
// leading dot, at most 128 characters.
func validateETag(e string) error {
	if !etagRE.MatchString(e) {
		return fmt.Errorf("etag %q cannot name a blob: %w", e, ErrInvalidName)
	}
	return nil
}

// normalizeETag strips the weak prefix and quotes, as huggingface_hub does.
func normalizeETag(e string) string {
	e = strings.TrimSpace(e)
	e = strings.TrimPrefix(e, "W/")
	return strings.Trim(e, `"`)
}

// IsCommit reports whether rev is a full commit sha.
func IsCommit(rev string) bool { return commitRE.MatchString(rev) }
