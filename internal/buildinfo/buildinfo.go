// Package buildinfo holds the version of llm, set at link time.
package buildinfo

// Version is the version of llm, set with -ldflags "-X
// github.com/llm-go/llm/internal/buildinfo.Version=..." by the Makefile; "dev"
// in builds that do not set it.
var Version = "dev"
