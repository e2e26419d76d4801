package llm

import (
	"context"
	"iter"
)

// Generator is what both a local [Pipeline] and a [Remote] model do, so a
// caller can switch between them by configuration. Options that only one
// side understands are ignored by the other (a remote endpoint has no
// ContextPolicy; a local model has no API key).
type Generator interface {
	// Generate continues a prompt.
	Generate(ctx context.Context, prompt string, opts ...GenerateOption) (*Result, error)
	// Stream continues a prompt, yielding text as it is made.
	Stream(ctx context.Context, prompt string, opts ...GenerateOption) iter.Seq2[Chunk, error]
	// Chat answers a conversation.
	Chat(ctx context.Context, messages []Message, opts ...GenerateOption) (*Result, error)
	// ChatStream answers a conversation, yielding text as it is made.
	ChatStream(ctx context.Context, messages []Message, opts ...GenerateOption) iter.Seq2[Chunk, error]
	// Embed returns one unit-length embedding per text.
	Embed(ctx context.Context, texts ...string) ([][]float32, error)
	// Name names the model, as results report it in Result.Model.
	Name() string
	// Close releases the model or the connection.
	Close() error
}

var _ Generator = (*Pipeline)(nil)
