package engine

import "unsafe"

// ContextPointer exposes a context's *llama_context to the benchmarks that
// compare the Go decode loop with a C one (internal/cref).
func ContextPointer(c *Context) unsafe.Pointer { return unsafe.Pointer(c.c) }

// DeferredBackendFrees counts the backends freed after llama_free returned.
var DeferredBackendFrees = deferredBackendFrees
