// Package shareddata locates the project's shared test data: real model
// files and reference outputs kept beside the repository in ../shared.
//
// Tests call [Dir] or [Path]. When the directory is missing the test is
// skipped, except under CI (CI=true), where a missing ../shared is a failure:
// CI must never pass by skipping the tests that matter.
//
// The location can be overridden with LLM_SHARED_DIR.
package shareddata

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

var (
	once    sync.Once
	found   string
	findErr error
)

// Locate returns the shared data directory without a testing.TB: it is
// LLM_SHARED_DIR when set, else the directory "shared" beside the module root
// (the first ancestor of the working directory holding go.mod).
func Locate() (string, error) {
	once.Do(func() { found, findErr = locate() })
	return found, findErr
}

func locate() (string, error) {
	if d := os.Getenv("LLM_SHARED_DIR"); d != "" {
		if st, err := os.Stat(d); err != nil || !st.IsDir() {
			return "", fmt.Errorf("shareddata: LLM_SHARED_DIR=%q is not a directory", d)
		}
		return filepath.Abs(d)
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("shareddata: %w", err)
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			cand := filepath.Join(filepath.Dir(dir), "shared")
			if st, err := os.Stat(cand); err == nil && st.IsDir() {
				return cand, nil
			}
			return "", fmt.Errorf("shareddata: no shared directory at %s (set LLM_SHARED_DIR)", cand)
		}
		if filepath.Dir(dir) == dir {
			return "", fmt.Errorf("shareddata: no go.mod above %s", wd)
		}
	}
}

// Dir returns the shared data directory. It skips the test when the directory
// is missing, or fails it when the environment variable CI is "true".
func Dir(tb testing.TB) string {
	tb.Helper()
	d, err := Locate()
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("%v (required under CI)", err)
		}
		tb.Skipf("%v", err)
	}
	return d
}

// Path joins elems below the shared data directory and checks that the result
// exists, with the same skip-or-fail rule as [Dir].
func Path(tb testing.TB, elems ...string) string {
	tb.Helper()
	p := filepath.Join(append([]string{Dir(tb)}, elems...)...)
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("shareddata: %v (required under CI)", err)
		}
		tb.Skipf("shareddata: %v", err)
	}
	return p
}
