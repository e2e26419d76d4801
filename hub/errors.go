package hub

import (
	"errors"
	"fmt"
)

// Sentinel errors. Errors returned by this package wrap one of them where it
// applies, so callers test with errors.Is.
var (
	// ErrNotFound: the repo, revision or file does not exist (or the repo is
	// private and no valid token was sent).
	ErrNotFound = errors.New("not found")
	// ErrUnauthorized: the server refused the request (HTTP 401 or 403).
	ErrUnauthorized = errors.New("unauthorized")
	// ErrGated: the repo is gated; its licence must be accepted on the model
	// page and a token sent. Errors wrapping ErrGated also match ErrUnauthorized.
	ErrGated = errors.New("gated repo")
	// ErrOffline: offline (HF_HUB_OFFLINE or no network) and what was asked
	// for is not in the cache.
	ErrOffline = errors.New("not in the cache while offline")
	// ErrChecksum: downloaded bytes do not match the expected hash or size.
	ErrChecksum = errors.New("checksum mismatch")
	// ErrDiskFull: not enough free space for the download.
	ErrDiskFull = errors.New("not enough disk space")
	// ErrInvalidName: a repo id, revision, file path or ETag is malformed or
	// unsafe (absolute, "..", escaping the cache).
	ErrInvalidName = errors.New("invalid name")
	// ErrAmbiguous: a reference matches several models; name one.
	ErrAmbiguous = errors.New("ambiguous model reference")
)

// HTTPError is an unexpected HTTP status from the Hub. It unwraps to the
// matching sentinel error (ErrNotFound, ErrUnauthorized, ErrGated), when there
// is one.
type HTTPError struct {
	Method     string
	URL        string // without query string
	StatusCode int
	Code       string // X-Error-Code, e.g. "GatedRepo", "RepoNotFound"
	Message    string // X-Error-Message, or a short excerpt of the body
}

// Error describes the failed request: method, URL (without query), status,
// error code and message.
func (e *HTTPError) Error() string {
	s := fmt.Sprintf("%s %s: HTTP %d", e.Method, e.URL, e.StatusCode)
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Unwrap returns the sentinel errors the status maps to.
func (e *HTTPError) Unwrap() []error {
	switch {
	case e.Code == "GatedRepo":
		return []error{ErrGated, ErrUnauthorized}
	case e.Code == "RepoNotFound" || e.Code == "RevisionNotFound" || e.Code == "EntryNotFound":
		return []error{ErrNotFound}
	case e.StatusCode == 401 || e.StatusCode == 403:
		return []error{ErrUnauthorized}
	case e.StatusCode == 404:
		return []error{ErrNotFound}
	}
	return nil
}

// retryable reports whether a request that failed with this status may
// succeed when tried again.
func (e *HTTPError) retryable() bool {
	return e.StatusCode == 429 || e.StatusCode == 408 || e.StatusCode >= 500
}
