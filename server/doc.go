// Package server serves models loaded with package llm over HTTP, with the
// APIs of OpenAI and Ollama, so that their clients work unchanged:
//
//	OpenAI:  POST /v1/chat/completions, POST /v1/completions,
//	         POST /v1/embeddings, GET /v1/models, GET /v1/models/{model}
//	Ollama:  POST /api/generate, POST /api/chat, POST /api/embed,
//	         POST /api/embeddings, GET /api/tags, POST /api/show,
//	         POST /api/pull, GET /api/ps, GET /api/version
//	Rerank:  POST /v1/rerank, POST /rerank (llama-server's and Jina's shape)
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
// OpenAI's n (1 to 16) asks /v1/chat/completions and /v1/completions for
// n choices of each prompt, indexed 0 to n-1 (for several completion
// prompts, choice i is choice i mod n of prompt i/n). A prompt's n choices
// are generated concurrently, so the pipeline decodes them together, and
// they are admitted as n requests: the request is refused (429/503) when
// n more would exceed Parallel+Queue, and an n greater than Parallel+Queue,
// which could never be admitted, is a 400. Several completion prompts run
// n at a time. With a seed, choice j samples with seed+j, so the choices
// differ and each is what a single request with seed+j gives; without one
// each draws its own. The usage counts each prompt's tokens once and the
// tokens of every choice. Streamed, the choices' chunks interleave, each
// naming its index; each choice has its own first chunk (with the role,
// for chat) and its own last chunk with its finish_reason.
//
// A /v1/completions prompt may also be an array of token ids, or an array
// of such arrays, checked against the model's vocabulary (a 400 names the
// bad id) and run as they are (llm's GenerateTokens: no BOS is added).
//
// /api/embed cuts an input longer than the embedding context (truncate,
// Ollama's default) to the longest prefix, at a character boundary, whose
// tokens fit; the tokens near the cut may differ from the full text's. With
// truncate false such an input is a 400, as it always is on /v1/embeddings.
// Both take a task (the field of Jina's embeddings API): one of the model's
// task adapters (jina-embeddings-v3's retrieval.query, ...), applied with
// its instruction before each input (llm's Pipeline.EmbedWith); the
// instruction's tokens count in the usage and the truncation.
//
// Request bodies: unknown fields are accepted and ignored, because real
// clients send fields of newer API versions; a field of the wrong type, a
// body that is not one JSON object, and values out of range are a 400 that
// names the field. A body over Config.MaxBodyBytes is a 413. Errors use
// each API's own shape: {"error": {"message", "type", "param", "code"}} on
// /v1 routes, {"error": "..."} elsewhere.
package server
