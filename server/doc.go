// Package server serves models loaded with package llm over HTTP, with the
// APIs of OpenAI and Ollama, so that their clients work unchanged:
//
//	OpenAI:  POST /v1/chat/completions, POST /v1/completions,
//	         POST /v1/embeddings, GET /v1/models, GET /v1/models/{model}
//	Ollama:  POST /api/generate, POST /api/chat, POST /api/embed,
//	         POST /api/embeddings, GET /api/tags, POST /api/show,
//	         POST /api/pull, GET /api/ps, GET /api/version
//	Other:   GET /health, GET /metrics (Prometheus text format)
//
// A model is named by a configured model's short name, a local GGUF file,
// a Hugging Face model directory, a preset (package modelfile) or a Hub
// name (pulled into the shared cache on first use), as "llm run" takes
// them. Models load on first use and unload after their keep-alive; at most
// Config.MaxModels are held at once (the least recently used idle one
// makes room), and a model whose estimated memory (weights plus KV cache)
// exceeds the available memory is refused. Each model runs
// Config.Parallel requests together (continuous batching inside the
// pipeline); up to Config.Queue more wait, and beyond that a request is
// refused at once (429 on OpenAI routes, 503 on Ollama routes, both with
// Retry-After).
//
// Request bodies: unknown fields are accepted and ignored, because real
// clients send fields of newer API versions; a field of the wrong type, a
// body that is not one JSON object, and values out of range are a 400 that
// names the field. A body over Config.MaxBodyBytes is a 413. Errors use
// each API's own shape: {"error": {"message", "type", "param", "code"}} on
// /v1 routes, {"error": "..."} elsewhere.
package server
